# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The write engine (_objects.py): what counts as a change, what is refused as someone
else's object, and how the writes reach a cluster (order, check mode, races, conflicts)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import (
    ApiError,
    ApplyConflict,
    MeshlinkError,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Change,
    Desired,
    Outcome,
    Writer,
    contains,
    differs,
    object_key,
    plan_changes,
    resource_path,
    strip_object,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import ownership_labels
from meshlink_fakes import FakeCluster, _split

MESH = 'blue'
SE_SPEC = {'hosts': ['httpbin.bar.global'], 'location': 'MESH_INTERNAL', 'resolution': 'DNS',
           'addresses': ['240.0.0.2'], 'ports': [{'name': 'http1', 'number': 8000, 'protocol': 'http'}],
           'endpoints': [{'address': '192.0.2.10', 'ports': {'http1': 15443}}]}
PLURALS = {'Namespace': 'namespaces', 'ServiceAccount': 'serviceaccounts', 'ConfigMap': 'configmaps',
           'Service': 'services', 'Deployment': 'deployments', 'DestinationRule': 'destinationrules',
           'ServiceEntry': 'serviceentries', 'VirtualService': 'virtualservices', 'Gateway': 'gateways',
           'RoleBinding': 'rolebindings', 'Role': 'roles'}


def labels(mesh=MESH, part='httpbin.bar', **extra):
    result = ownership_labels(mesh, part) if mesh else {}
    result.update(extra)
    return result


def make(kind, name, namespace='foo', spec=None, obj_labels=None, **top):
    metadata = {'name': name, 'labels': labels() if obj_labels is None else obj_labels}
    if namespace:
        metadata['namespace'] = namespace
    obj = {'apiVersion': 'v1', 'kind': kind, 'metadata': metadata}
    if spec is not None:
        obj['spec'] = spec
    obj.update(top)
    return obj


def stored(cluster, kind, name, namespace='foo'):
    return cluster.store.get((PLURALS[kind], namespace if kind != 'Namespace' else None, name))


def put(cluster, obj):
    return cluster.put(PLURALS[obj['kind']], obj)


def written(cluster, verbs=('create', 'apply', 'delete', 'replace')):
    """``(verb, kind plural, name)`` of every write, in order (a create names the body's object)."""
    result = []
    for verb, path in cluster.calls:
        if verb in verbs:
            plural, _namespace, name = _split(path)
            result.append((verb, plural, name))
    return result


# -- comparing ---------------------------------------------------------------------------------

@pytest.mark.parametrize('have, want, expected', [
    ({'a': 1, 'b': 2}, {'a': 1}, True),                                   # the server added b
    ({'a': {'x': 1, 'y': 2}}, {'a': {'x': 1}}, True),
    ({'a': [{'x': 1, 'default': 'z'}]}, {'a': [{'x': 1}]}, True),       # defaults inside list items
    ({'a': [1, 2]}, {'a': [1]}, False),                                   # lists: same length
    ({'a': [2, 1]}, {'a': [1, 2]}, False),                                # and order
    ({'a': 1}, {'a': 2}, False),
    ({}, {'a': None}, False),                                             # a key we set is missing
    ({'a': '1'}, {'a': 1}, False),                                        # no type juggling
    ({'a': 1}, {}, True),
])
def test_contains(have, want, expected):
    assert contains(have, want) is expected


def deployment(replicas=1, image='kong/httpbin:0.1.0', obj_labels=None):
    return make('Deployment', 'httpbin', 'bar', obj_labels=obj_labels, spec={
        'replicas': replicas, 'selector': {'matchLabels': {'app': 'httpbin'}},
        'template': {'metadata': {'labels': {'app': 'httpbin'}},
                     'spec': {'containers': [{'name': 'httpbin', 'image': image}]}}})


def with_server_defaults(obj):
    """The object as the API server returns it: bookkeeping and defaults added."""
    result = copy.deepcopy(obj)
    result['metadata'].update(resourceVersion='7', uid='u-1', generation=2, managedFields=[{'manager': 'meshlink'}])
    spec = result.get('spec')
    if spec and 'template' in spec:
        spec['strategy'] = {'type': 'RollingUpdate'}
        spec['template']['spec']['containers'][0]['terminationMessagePath'] = '/dev/termination-log'
        spec['template']['spec']['dnsPolicy'] = 'ClusterFirst'
    result['status'] = {'readyReplicas': 1}
    return result


NAMESPACE_WANTED = make('Namespace', 'foo', None, obj_labels=dict(labels(part='namespace'),
                                                                  **{'istio-injection': 'enabled'}))

# (case id, desired, existing, differs)
DIFFERS = [
    ('contains: server defaults only', Desired(deployment()), with_server_defaults(deployment()), False),
    ('contains: replicas changed', Desired(deployment(replicas=2)), with_server_defaults(deployment()), True),
    ('contains: image changed', Desired(deployment(image='x')), with_server_defaults(deployment()), True),
    ('contains: extra label of others', Desired(deployment()),
     with_server_defaults(deployment(obj_labels=labels(team='payments'))), False),
    ('contains: our label changed', Desired(deployment()),
     with_server_defaults(deployment(obj_labels=labels(part='other.bar'))), True),
    ('spec: equal', Desired(make('ServiceEntry', 'httpbin-bar', spec=SE_SPEC), 'spec'),
     with_server_defaults(make('ServiceEntry', 'httpbin-bar', spec=SE_SPEC)), False),
    ('spec: an extra field is a difference', Desired(make('ServiceEntry', 'httpbin-bar', spec=SE_SPEC), 'spec'),
     make('ServiceEntry', 'httpbin-bar', spec=dict(SE_SPEC, exportTo=['.'])), True),
    ('spec: a changed address', Desired(make('ServiceEntry', 'httpbin-bar', spec=SE_SPEC), 'spec'),
     make('ServiceEntry', 'httpbin-bar', spec=dict(SE_SPEC, addresses=['240.0.0.3'])), True),
    ('spec: a missing label of ours', Desired(make('ServiceEntry', 'httpbin-bar', spec=SE_SPEC), 'spec'),
     make('ServiceEntry', 'httpbin-bar', spec=SE_SPEC, obj_labels=labels(part=None)), True),
    ('labels: all there, others added more', Desired(NAMESPACE_WANTED, 'labels'),
     make('Namespace', 'foo', None, obj_labels=dict(NAMESPACE_WANTED['metadata']['labels'], team='a'),
          spec={'finalizers': ['kubernetes']}), False),
    ('labels: ours missing', Desired(NAMESPACE_WANTED, 'labels'),
     make('Namespace', 'foo', None, obj_labels={'istio-injection': 'enabled'}), True),
    ('labels: injection changed', Desired(NAMESPACE_WANTED, 'labels'),
     make('Namespace', 'foo', None, obj_labels=dict(NAMESPACE_WANTED['metadata']['labels'],
                                                    **{'istio-injection': 'disabled'})), True),
    ('labels: no labels at all', Desired(NAMESPACE_WANTED, 'labels'), make('Namespace', 'foo', None, obj_labels={}),
     True),
]


@pytest.mark.parametrize('case, desired, existing, expected', DIFFERS, ids=[c[0] for c in DIFFERS])
def test_differs(case, desired, existing, expected):
    assert differs(desired, existing) is expected


def test_a_changed_annotation_of_ours_counts():
    want = make('ConfigMap', 'c')
    want['metadata']['annotations'] = {'meshlink.io/note': 'x'}
    have = make('ConfigMap', 'c')
    assert differs(Desired(want), have)
    have['metadata']['annotations'] = {'meshlink.io/note': 'x', 'other': 'y'}
    assert not differs(Desired(want), have)


def test_strip_object_drops_bookkeeping():
    assert strip_object(with_server_defaults(deployment()))['metadata'] == deployment()['metadata']
    assert 'status' not in strip_object(with_server_defaults(deployment()))
    assert strip_object(None) == {}


# -- plan_changes: create, update, unchanged, delete, conflicts --------------------------------

def se(name='httpbin-bar', obj_labels=None, spec=None, namespace='foo'):
    return make('ServiceEntry', name, namespace, spec=SE_SPEC if spec is None else spec, obj_labels=obj_labels)


def key(obj):
    return object_key(obj)


def actions(changes):
    return [(c.action, c.key[2]) for c in changes]


def test_create_update_unchanged():
    wanted = [Desired(se('a'), 'spec'), Desired(se('b'), 'spec'), Desired(se('c'), 'spec')]
    existing = {key(se('b')): se('b', spec=dict(SE_SPEC, addresses=['240.0.0.9'])), key(se('c')): se('c')}
    changes, conflicts = plan_changes(wanted, existing, MESH)
    assert conflicts == []
    assert actions(changes) == [('create', 'a'), ('update', 'b'), ('unchanged', 'c')]
    assert changes[1].existing == existing[key(se('b'))]


def test_prune_deletes_only_ours_in_scope():
    existing = {key(o): o for o in [
        se('wanted'), se('stale'), se('other-kind-stale', namespace='bar'),
        se('other-mesh', obj_labels=labels(mesh='green')), se('users', obj_labels={'app': 'x'}),
        se('old', obj_labels={'app.kubernetes.io/managed-by': 'meshlink'}),
    ]}

    def in_scope(key_, _obj):
        return key_[1] == 'foo'

    changes, conflicts = plan_changes([Desired(se('wanted'), 'spec')], existing, MESH, in_scope)
    assert conflicts == []
    assert actions(changes) == [('unchanged', 'wanted'), ('delete', 'stale')]
    assert changes[1].existing is existing[key(se('stale'))]


def test_without_prune_scope_nothing_is_deleted():
    existing = {key(se('stale')): se('stale')}
    assert plan_changes([], existing, MESH) == ([], [])
    assert actions(plan_changes([], existing, MESH, lambda k, o: False)[0]) == []


# (case id, labels of the object at the wanted name, text of the conflict)
CONFLICTS = [
    ('a user object', {'app': 'httpbin'},
     'ServiceEntry foo/httpbin-bar exists and was not made by meshlink (no app.kubernetes.io/managed-by=meshlink '
     'label): it is never overwritten - rename or delete it'),
    ('another tool', {'app.kubernetes.io/managed-by': 'Helm'},
     'ServiceEntry foo/httpbin-bar exists and was not made by meshlink (app.kubernetes.io/managed-by=Helm)'),
    ('another mesh', labels(mesh='green'), 'ServiceEntry foo/httpbin-bar exists and belongs to mesh green'),
    ('a 0.1.0 object', {'app.kubernetes.io/managed-by': 'meshlink',
                        'multicluster.meshlink.io/service': 'httpbin.bar'},
     'ServiceEntry foo/httpbin-bar exists and was made by meshlink 0.1.0, without a meshlink.io/mesh label'),
    ('another service of ours', labels(part='httpbin-bar.x'),
     'ServiceEntry foo/httpbin-bar belongs to httpbin-bar.x, not httpbin.bar - two services map to this name; '
     'rename one'),
]


@pytest.mark.parametrize('case, existing_labels, text', CONFLICTS, ids=[c[0] for c in CONFLICTS])
def test_conflicts(case, existing_labels, text):
    existing = {key(se()): se(obj_labels=existing_labels)}
    changes, conflicts = plan_changes([Desired(se(), 'spec'), Desired(se('free'), 'spec')], existing, MESH,
                                      lambda k, o: True)
    assert len(conflicts) == 1 and conflicts[0].startswith(text)
    # The object in the way is neither changed nor deleted; the other object is still planned
    # (the caller refuses to write anything while there is a conflict).
    assert actions(changes) == [('create', 'free')]


def test_a_label_only_object_need_not_be_ours():
    users_namespace = make('Namespace', 'foo', None, obj_labels={'team': 'a'})
    wanted = Desired(make('Namespace', 'foo', None, obj_labels={'istio-injection': 'enabled'}), 'labels', owned=False)
    changes, conflicts = plan_changes([wanted], {key(users_namespace): users_namespace}, MESH, lambda k, o: True)
    assert conflicts == [] and actions(changes) == [('update', 'foo')]


# -- Writer: the writes ------------------------------------------------------------------------

def change_of(action, obj, existing=None, compare='spec'):
    return Change(action, object_key(obj), Desired(obj, compare) if action != 'delete' else None, existing)


RANKED = [
    make('VirtualService', 'vs', spec={'hosts': ['h']}),
    make('ServiceEntry', 'se', spec=SE_SPEC),
    make('Deployment', 'dep', spec={'replicas': 1}),
    make('DestinationRule', 'dr', spec={'host': 'h'}),
    make('Service', 'svc', spec={'ports': [{'port': 80}]}),
    make('RoleBinding', 'rb'),
    make('ServiceAccount', 'sa'),
    make('Namespace', 'foo', None, obj_labels=labels(part='namespace')),
]
RANK_ORDER = ['namespaces', 'serviceaccounts', 'rolebindings', 'services', 'deployments', 'destinationrules',
              'serviceentries', 'virtualservices']


@pytest.mark.parametrize('workers', [1, 4])
def test_writes_by_rank_and_deletes_in_reverse(workers):
    cluster = FakeCluster()
    Writer(cluster, MESH, 'v1', workers=workers).execute([change_of('create', o) for o in RANKED])
    assert [w[1] for w in written(cluster)] == RANK_ORDER
    existing = {o['kind']: stored(cluster, o['kind'], o['metadata']['name']) for o in RANKED}
    cluster.calls.clear()
    outcome = Writer(cluster, MESH, 'v1', workers=workers).execute(
        [Change('delete', object_key(o), existing=existing[o['kind']]) for o in RANKED])
    assert [w[1] for w in written(cluster)] == list(reversed(RANK_ORDER))
    assert all(o['action'] == 'deleted' for o in outcome.objects) and cluster.store == {}


def test_writes_come_before_deletes():
    cluster = FakeCluster()
    old = put(cluster, make('Namespace', 'old', None))
    Writer(cluster, MESH, 'v1').execute([Change('delete', object_key(old), existing=old),
                                         change_of('create', make('VirtualService', 'vs', spec={}))])
    assert [w[0] for w in written(cluster)] == ['create', 'delete']


def test_istio_objects_use_the_served_version():
    cluster = FakeCluster()
    Writer(cluster, MESH, 'v1alpha3').execute([change_of('create', se())])
    assert cluster.calls == [('create', '/apis/networking.istio.io/v1alpha3/namespaces/foo/serviceentries')]
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar')['apiVersion'] == 'networking.istio.io/v1alpha3'


def _mixed(cluster):
    """One rank (ServiceEntries): two creates around an unchanged one, an update, and a delete."""
    unchanged = put(cluster, se('b'))
    updated = put(cluster, se('d', spec=dict(SE_SPEC, addresses=['240.0.0.9'])))
    stale = put(cluster, se('e'))
    return [change_of('create', se('a')), Change('unchanged', key(unchanged), Desired(se('b'), 'spec'), unchanged),
            change_of('create', se('c')), change_of('update', se('d'), updated),
            Change('delete', key(stale), existing=stale)]


def _creates(_cluster):
    return [change_of('create', se(name)) for name in 'abcdefgh']


@pytest.mark.parametrize('changes_of', [_creates, _mixed])
def test_a_thread_pool_gives_the_same_result_as_one_worker(changes_of):
    results = []
    for workers in (1, 4):
        cluster = FakeCluster()
        outcome = Writer(cluster, MESH, 'v1', workers=workers).execute(changes_of(cluster))
        contents = {k: strip_object(v) for k, v in cluster.store.items()}
        results.append((outcome.objects, [d['after_header'] for d in outcome.diff], outcome.changed, contents))
    assert results[0] == results[1]


def test_check_mode_sends_dry_runs_and_stores_nothing():
    cluster = FakeCluster(dry_run=True)
    changes = _mixed(cluster)
    before = copy.deepcopy(cluster.store)
    outcome = Writer(cluster, MESH, 'v1').execute(changes)
    assert cluster.store == before
    assert sorted((o['name'], o['action']) for o in outcome.objects) == [
        ('a', 'would_create'), ('b', 'unchanged'), ('c', 'would_create'), ('d', 'would_update'), ('e', 'would_delete')]
    # Each write went to the server (as a dry run: FakeCluster(dry_run=True) is Cluster(dry_run=True)).
    assert sorted(written(cluster)) == [('apply', 'serviceentries', 'd'), ('create', 'serviceentries', None),
                                        ('create', 'serviceentries', None), ('delete', 'serviceentries', 'e')]
    assert outcome.changed


def test_check_mode_predicts_a_create_into_a_namespace_not_created_yet():
    cluster = FakeCluster(dry_run=True)
    cluster.fail_next['create'] = ApiError('namespaces "foo" not found', status=404, reason='NotFound')
    outcome = Writer(cluster, MESH, 'v1').execute([change_of('create', se())])
    assert outcome.objects == [{'kind': 'ServiceEntry', 'namespace': 'foo', 'name': 'httpbin-bar',
                                'action': 'would_create'}]
    assert 'namespace foo does not exist yet' in outcome.warnings[0]


def test_a_missing_namespace_is_an_error_in_a_real_run():
    cluster = FakeCluster()
    cluster.fail_next['create'] = ApiError('namespaces "foo" not found', status=404, reason='NotFound')
    with pytest.raises(ApiError):
        Writer(cluster, MESH, 'v1').execute([change_of('create', se())])


def test_unchanged_writes_nothing():
    cluster = FakeCluster()
    current = put(cluster, se())
    outcome = Writer(cluster, MESH, 'v1').execute([Change('unchanged', key(current), Desired(se(), 'spec'), current)])
    assert cluster.writes() == [] and not outcome.changed and outcome.diff == []


def test_update_diff_has_no_bookkeeping():
    cluster = FakeCluster()
    current = put(cluster, se(spec=dict(SE_SPEC, addresses=['240.0.0.9'])))
    outcome = Writer(cluster, MESH, 'v1').execute([change_of('update', se(), current)])
    assert outcome.objects[0]['action'] == 'updated'
    diff = outcome.diff[0]
    assert diff['before_header'] == 'ServiceEntry foo/httpbin-bar'
    assert (diff['before']['spec']['addresses'], diff['after']['spec']['addresses']) == (['240.0.0.9'], ['240.0.0.2'])
    for side in (diff['before'], diff['after']):
        assert not {'resourceVersion', 'uid', 'managedFields'} & set(side['metadata'])


def test_an_apply_the_server_finds_no_change_in_is_unchanged():
    # Another manager's field makes the stored spec look different; our apply changes nothing.
    cluster = FakeCluster()
    current = put(cluster, dict(se(spec=dict(SE_SPEC, exportTo=['.'])), apiVersion='networking.istio.io/v1'))
    assert differs(Desired(se(), 'spec'), current)
    outcome = Writer(cluster, MESH, 'v1').execute([change_of('update', se(), current)])
    assert outcome.objects[0]['action'] == 'unchanged' and not outcome.changed


# -- Writer: races and conflicts ----------------------------------------------------------------

@pytest.mark.parametrize('appeared, action', [
    (se(), 'unchanged'),                                             # ours, as wanted
    (se(spec=dict(SE_SPEC, addresses=['240.0.0.9'])), 'updated'),    # ours, different
])
def test_a_create_racing_our_own_object_compares_it_again(appeared, action):
    cluster = FakeCluster()
    put(cluster, appeared)
    outcome = Writer(cluster, MESH, 'v1').execute([change_of('create', se())])
    assert outcome.objects == [{'kind': 'ServiceEntry', 'namespace': 'foo', 'name': 'httpbin-bar', 'action': action}]
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar')['spec'] == SE_SPEC


@pytest.mark.parametrize('foreign_labels, owner', [
    ({'app': 'mine'}, 'was not made by meshlink'),
    (labels(mesh='green'), 'belongs to mesh green'),
])
def test_a_create_racing_a_foreign_object_stops_the_run(foreign_labels, owner):
    cluster = FakeCluster()
    put(cluster, se(obj_labels=foreign_labels, spec={'hosts': ['theirs']}))
    changes = [change_of('create', se()), change_of('create', make('VirtualService', 'later', spec={'hosts': ['h']}))]
    with pytest.raises(MeshlinkError) as caught:
        Writer(cluster, MESH, 'v1', workers=1).execute(changes)
    assert str(caught.value).startswith('Stopped in fake: ServiceEntry foo/httpbin-bar exists and ')
    assert owner in str(caught.value)
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar')['spec'] == {'hosts': ['theirs']}
    assert stored(cluster, 'VirtualService', 'later') is None
    assert [w[0] for w in written(cluster)] == ['create']


def _path(obj):
    return resource_path(obj['kind'], obj['metadata'].get('namespace'), obj['metadata']['name'], 'v1')


def test_an_apply_conflict_with_ourselves_is_retried_with_force():
    cluster = FakeCluster()
    current = put(cluster, se(spec=dict(SE_SPEC, addresses=['240.0.0.9'])))
    cluster.apply_managers[_path(current)] = ['meshlink']
    outcome = Writer(cluster, MESH, 'v1').execute([change_of('update', se(), current)])
    assert outcome.objects[0]['action'] == 'updated'
    assert [w[0] for w in written(cluster)] == ['apply', 'apply']
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar')['spec'] == SE_SPEC


@pytest.mark.parametrize('managers', [['kubectl-edit'], ['meshlink', 'kubectl-edit']])
def test_an_apply_conflict_with_another_manager_fails_naming_it(managers):
    cluster = FakeCluster()
    current = put(cluster, se(spec=dict(SE_SPEC, addresses=['240.0.0.9'])))
    cluster.apply_managers[_path(current)] = managers
    with pytest.raises(ApplyConflict) as caught:
        Writer(cluster, MESH, 'v1').execute([change_of('update', se(), current)])
    assert 'kubectl-edit' in caught.value.managers and 'kubectl-edit' in str(caught.value)
    assert [w[0] for w in written(cluster)] == ['apply']
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar')['spec']['addresses'] == ['240.0.0.9']


def test_force_conflicts_takes_the_fields_over():
    cluster = FakeCluster()
    current = put(cluster, se(spec=dict(SE_SPEC, addresses=['240.0.0.9'])))
    cluster.apply_managers[_path(current)] = ['kubectl-edit']
    outcome = Writer(cluster, MESH, 'v1', force_conflicts=True).execute([change_of('update', se(), current)])
    assert outcome.objects[0]['action'] == 'updated' and [w[0] for w in written(cluster)] == ['apply']


def test_delete_sends_the_preconditions_read():
    cluster = FakeCluster()
    current = put(cluster, se())
    outcome = Writer(cluster, MESH, 'v1').execute([Change('delete', key(current), existing=current)])
    assert outcome.objects[0]['action'] == 'deleted' and cluster.store == {}


@pytest.mark.parametrize('what', ['replaced', 'changed'])
def test_a_replaced_or_changed_object_is_not_deleted(what):
    cluster = FakeCluster()
    read = put(cluster, se())
    # Since the read: deleted and created again by someone (only the uid tells), or changed
    # (only the resourceVersion tells): each precondition is sent.
    now = put(cluster, se(obj_labels={'app': 'theirs'}))
    if what == 'changed':
        now['metadata']['uid'] = read['metadata']['uid']
    else:
        now['metadata']['resourceVersion'] = read['metadata']['resourceVersion']
    with pytest.raises(ApiError) as caught:
        Writer(cluster, MESH, 'v1').execute([Change('delete', key(read), existing=read)])
    assert caught.value.status == 409
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar')['metadata']['labels'] == {'app': 'theirs'}


def test_a_delete_of_an_object_already_gone_records_nothing():
    cluster = FakeCluster()
    gone = se()
    gone['metadata'].update(uid='u', resourceVersion='1')
    outcome = Writer(cluster, MESH, 'v1').execute([Change('delete', key(gone), existing=gone)])
    assert outcome.objects == [] and not outcome.changed


def test_a_delete_this_account_may_not_make_is_kept_with_a_warning():
    """Ours, found by a cluster-wide list, in a namespace the account was never granted: the
    rest of the run goes on; the object stays and the warning says how to remove it."""
    class Forbidden(FakeCluster):
        def delete(self, path, what, resource_version=None, uid=None):
            raise ApiError('Could not delete %s: forbidden' % (what,), status=403, reason='Forbidden')
    cluster = Forbidden()
    current = put(cluster, se())
    outcome = Writer(cluster, MESH, 'v1').execute([Change('delete', key(current), existing=current)])
    assert outcome.objects == [{'kind': 'ServiceEntry', 'namespace': current['metadata']['namespace'],
                                'name': 'httpbin-bar', 'action': 'kept'}]
    assert not outcome.changed and outcome.diff == []
    assert 'may not delete it there' in outcome.warnings[0] and 'meshlink_access_extra_namespaces' in outcome.warnings[0]
    assert stored(cluster, 'ServiceEntry', 'httpbin-bar') is not None


def test_outcome_records_only_changes_in_diff():
    outcome = Outcome()
    outcome.record(('ServiceEntry', 'foo', 'a'), 'unchanged')
    assert not outcome.changed and outcome.diff == []
    outcome.record(('Namespace', '', 'foo'), 'created', None, {'metadata': {'name': 'foo', 'uid': 'x'}})
    assert outcome.changed and outcome.diff[0]['after_header'] == 'Namespace foo'
    assert outcome.diff[0]['after'] == {'metadata': {'name': 'foo'}}
