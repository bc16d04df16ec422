# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""cluster_teardown end to end (_teardown.py) against FakeClusters: this mesh's objects go,
another mesh's and a user's stay, and a namespace the mesh created goes only when nothing but
the mesh's objects is left in it."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._teardown import (
    leftovers,
    namespaced_resources,
    teardown_cluster,
)
from meshlink_clusters import NO_WAIT, istio_cluster, mesh_object, run_setup, user_object
from meshlink_fakes import FakeCluster, seed_service

MESH = 'blue'
HOSTS = ['cluster1', 'cluster2']
SUBSETS = [{'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
           {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}]


def plan(mesh=MESH, extra=()):
    services = [seed_service(),
                seed_service(name='orders', namespace='shop', cluster='cluster2', consumers=['cluster1'],
                             subsets=SUBSETS, route_subset='v1')] + list(extra)
    return build_plan(services, HOSTS, mesh=mesh)


def set_up(extra1=(), extra2=(), sample_apps=NO_WAIT, mesh_plan=None):
    """Both clusters set up by the mesh (with sample apps); ``extra*``: objects of others."""
    clusters = {'cluster1': istio_cluster('cluster1', list(extra1)),
                'cluster2': istio_cluster('cluster2', list(extra2))}
    run_setup(clusters, mesh_plan or plan(), sample_apps=sample_apps)
    for cluster in clusters.values():
        cluster.calls.clear()
    return clusters


def teardown(cluster, name='cluster1', mesh_plan=None, **options):
    options.setdefault('clock', lambda: 0)
    options.setdefault('sleep', lambda seconds: None)
    return teardown_cluster(cluster, mesh_plan or plan(), name, **options)


def keys(cluster, *plurals):
    return sorted((p, ns, n) for (p, ns, n) in cluster.store if p in plurals)


def deleted(result):
    return sorted('%s %s/%s' % (o['kind'], o['namespace'], o['name']) for o in result['objects']
                  if o['action'] in ('deleted', 'would_delete'))


CLUSTER1_DELETED = ['ConfigMap istio-system/meshlink-vips-blue', 'Deployment foo/sleep',
                    'DestinationRule istio-system/orders-shop-global', 'Namespace /foo', 'Service foo/sleep',
                    'ServiceAccount foo/sleep', 'ServiceEntry foo/httpbin-bar', 'ServiceEntry istio-system/orders-shop',
                    'VirtualService istio-system/orders-shop-global']
ISTIO = ('serviceentries', 'virtualservices', 'destinationrules')


def test_teardown_deletes_only_this_mesh_s_objects():
    others = [
        mesh_object('serviceentries', 'httpbin-bar', 'green-apps', 'green', 'httpbin.bar', hosts=['x']),
        mesh_object('deployments', 'sleep', 'green-apps', 'green', 'sample-apps'),
        user_object('serviceentries', 'users-api', 'istio-system', hosts=['api.example.com']),
        user_object('deployments', 'users', 'istio-system'),
        ('configmaps', {'metadata': {'name': 'meshlink-vips-green', 'namespace': 'istio-system', 'labels': {
            'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': 'green',
            'meshlink.io/component': 'vip-store'}}, 'data': {'httpbin.bar.global': '240.0.0.9'}}),
    ]
    clusters = set_up(extra1=others)
    cluster = clusters['cluster1']
    theirs = {k: copy.deepcopy(v) for k, v in cluster.store.items()
              if (v.get('metadata') or {}).get('labels', {}).get('meshlink.io/mesh') != MESH}
    result = teardown(cluster)
    assert result['changed'] and deleted(result) == CLUSTER1_DELETED
    assert sorted(result['released']) == ['httpbin.bar.global', 'orders.shop.global']
    # Everything that is not this mesh's is still there, unchanged.
    for key, obj in theirs.items():
        assert cluster.store.get(key) == obj, key
    assert [k for k, v in cluster.store.items() if v['metadata'].get('labels', {}).get('meshlink.io/mesh') == MESH] \
        == []
    assert 'cluster1: VIP of httpbin.bar.global: released' in result['lines']


def test_teardown_of_the_source_deletes_its_rules_and_samples():
    clusters = set_up(extra2=[user_object('namespaces', 'shop', None)])
    result = teardown(clusters['cluster2'], 'cluster2')
    assert deleted(result) == ['Deployment bar/httpbin', 'Deployment shop/orders-v1', 'Deployment shop/orders-v2',
                               'DestinationRule shop/orders-shop-local', 'Namespace /bar', 'Service bar/httpbin',
                               'Service shop/orders', 'ServiceAccount bar/httpbin', 'ServiceAccount shop/orders']
    # The user's namespace got the injection label for the samples, and stays.
    assert clusters['cluster2'].store[('namespaces', None, 'shop')]['metadata']['labels']['team'] == 'payments'


def test_a_second_teardown_finds_nothing():
    clusters = set_up()
    teardown(clusters['cluster1'])
    clusters['cluster1'].calls.clear()
    result = teardown(clusters['cluster1'])
    assert not result['changed'] and result['objects'] == [] and clusters['cluster1'].writes() == []
    assert result['lines'] == ['cluster1: nothing of mesh blue left']


def test_check_mode_deletes_nothing():
    clusters = set_up()
    cluster = clusters['cluster1']
    cluster.dry_run = True
    before = copy.deepcopy(cluster.store)
    result = teardown(cluster)
    assert cluster.store == before
    assert result['changed'] and deleted(result) == CLUSTER1_DELETED
    assert {o['action'] for o in result['objects']} == {'would_delete'}
    assert 'cluster1: VIP of httpbin.bar.global: would be released' in result['lines']


def test_without_sample_apps_the_samples_and_namespaces_stay():
    clusters = set_up()
    result = teardown(clusters['cluster1'], sample_apps=False)
    assert deleted(result) == ['ConfigMap istio-system/meshlink-vips-blue',
                               'DestinationRule istio-system/orders-shop-global', 'ServiceEntry foo/httpbin-bar',
                               'ServiceEntry istio-system/orders-shop', 'VirtualService istio-system/orders-shop-global']
    assert keys(clusters['cluster1'], 'deployments') == [
        ('deployments', 'foo', 'sleep'), ('deployments', 'istio-system', 'istio-ingressgateway'),
        ('deployments', 'istio-system', 'istiod')]
    assert ('namespaces', None, 'foo') in clusters['cluster1'].store


def test_objects_of_services_left_out_of_the_plan_need_everything():
    clusters = set_up(mesh_plan=plan(extra=[seed_service(name='users', consumers=['cluster1'])]))
    cluster = clusters['cluster1']
    result = teardown(cluster)                      # the plan without users
    assert ('serviceentries', 'istio-system', 'users-bar') in cluster.store
    assert sorted(result['released']) == ['httpbin.bar.global', 'orders.shop.global']
    assert cluster.store[('configmaps', 'istio-system', 'meshlink-vips-blue')]['data'].keys() == {'users.bar.global'}
    result = teardown(cluster, everything=True)
    assert deleted(result) == ['ConfigMap istio-system/meshlink-vips-blue', 'ServiceEntry istio-system/users-bar']
    assert result['released'] == ['users.bar.global']


def test_a_vip_store_that_is_not_ours_is_left_alone():
    store = user_object('configmaps', 'meshlink-vips-blue', 'istio-system')
    cluster = istio_cluster('cluster1', [store])
    result = teardown(cluster)
    assert cluster.writes() == [] and ('configmaps', 'istio-system', 'meshlink-vips-blue') in cluster.store
    assert result['warnings'] == ['ConfigMap istio-system/meshlink-vips-blue was not made by meshlink (no '
                                  'app.kubernetes.io/managed-by=meshlink label): left alone']


# -- namespaces the mesh created ---------------------------------------------------------------

KUBERNETES_PUTS_THERE = [
    ('configmaps', {'metadata': {'name': 'kube-root-ca.crt', 'namespace': 'foo'}}),
    ('configmaps', {'metadata': {'name': 'istio-ca-root-cert', 'namespace': 'foo'}}),
    ('serviceaccounts', {'metadata': {'name': 'default', 'namespace': 'foo'}}),
    ('events', {'metadata': {'name': 'sleep.1', 'namespace': 'foo'}}),
    ('endpoints', {'metadata': {'name': 'sleep', 'namespace': 'foo'}}),
    ('pods', {'metadata': {'name': 'sleep-abc', 'namespace': 'foo',
                           'ownerReferences': [{'kind': 'ReplicaSet', 'name': 'sleep-1'}]}}),
]


def test_a_namespace_holding_only_what_kubernetes_puts_there_is_deleted():
    clusters = set_up(extra1=KUBERNETES_PUTS_THERE)
    result = teardown(clusters['cluster1'])
    assert 'Namespace /foo' in deleted(result) and result['kept_namespaces'] == []


@pytest.mark.parametrize('obj, held', [
    (user_object('configmaps', 'settings', 'foo'),
     'configmaps/settings (it was not made by meshlink (no app.kubernetes.io/managed-by=meshlink label))'),
    (user_object('deployments', 'api', 'foo'), 'deployments.apps/api (it was not made by meshlink'),
    (mesh_object('serviceentries', 'x-y', 'foo', 'green', 'x.y'),
     'serviceentries.networking.istio.io/x-y (it belongs to mesh green)'),
    (user_object('secrets', 'tls', 'foo'), 'secrets/tls'),
])
def test_a_namespace_with_a_user_object_is_kept(obj, held):
    clusters = set_up(extra1=[obj])
    cluster = clusters['cluster1']
    result = teardown(cluster)
    assert 'Namespace /foo' not in deleted(result)
    assert ('namespaces', None, 'foo') in cluster.store
    assert len(result['kept_namespaces']) == 1
    line = result['kept_namespaces'][0]
    assert line.startswith('cluster1: namespace foo was created by this mesh but stays: it holds ') and held in line
    assert line in result['lines']
    # The mesh's own objects in it are gone all the same.
    assert not [k for k in cluster.store if k[1] == 'foo' and k[2] == 'sleep']


def test_a_namespace_that_cannot_be_proved_empty_is_kept():
    clusters = set_up()
    cluster = clusters['cluster1']
    cluster.request_errors['/api/v1/namespaces/foo/secrets'] = ApiError('forbidden', status=403, reason='Forbidden')
    result = teardown(cluster)
    assert ('namespaces', None, 'foo') in cluster.store
    assert result['kept_namespaces'] == ['cluster1: namespace foo was created by this mesh but stays: these kinds '
                                         'could not be listed to prove it empty: secrets (403)']


def test_a_user_namespace_is_never_deleted():
    clusters = set_up(extra1=[user_object('namespaces', 'foo', None)])
    cluster = clusters['cluster1']
    result = teardown(cluster)
    assert 'Namespace /foo' not in deleted(result) and ('namespaces', None, 'foo') in cluster.store
    assert result['kept_namespaces'] == []
    assert not [c for c in cluster.calls if c[1] == '/api/v1/namespaces/foo/configmaps']


def test_leftovers_and_discovery():
    cluster = FakeCluster(objects=KUBERNETES_PUTS_THERE + [
        user_object('services', 'api', 'foo'),
        mesh_object('services', 'sleep', 'foo', MESH, 'sample-apps'),
        mesh_object('services', 'other', 'foo', 'green', 'sample-apps'),
        user_object('services', 'elsewhere', 'bar'),
    ])
    resources = namespaced_resources(cluster)
    assert ('', 'v1', 'services') in resources and ('apps', 'v1', 'deployments') in resources
    assert ('networking.istio.io', 'v1', 'serviceentries') in resources
    assert not [r for r in resources if r[2] in ('events', 'endpoints', 'leases')]
    foreign, unreadable = leftovers(cluster, 'foo', MESH, resources)
    assert foreign == ['services/api (it was not made by meshlink (no app.kubernetes.io/managed-by=meshlink label))',
                       'services/other (it belongs to mesh green)']
    assert unreadable == []


def test_bad_plan_makes_no_call():
    cluster = FakeCluster()
    edited = plan()
    edited['clusters']['cluster1']['namespaces'].append('kube-system')
    with pytest.raises(InputError):
        teardown(cluster, mesh_plan=edited)
    with pytest.raises(InputError):
        teardown(cluster, name='cluster9')
    assert cluster.calls == []


def test_everything_deletes_every_object_of_the_mesh():
    # meshlink_teardown_all: "Delete every object of this mesh, also of services no longer listed".
    old = plan(extra=[seed_service(name='users', consumers=[{'cluster': 'cluster1', 'namespace': 'team-a'}])])
    clusters = set_up(extra1=[user_object('namespaces', 'team-a', None)], mesh_plan=old)
    cluster = clusters['cluster1']
    assert ('deployments', 'team-a', 'sleep') in cluster.store
    teardown(cluster, everything=True)                  # with the plan of today: no users, no team-a
    assert [k for k, v in cluster.store.items() if v['metadata'].get('labels', {}).get('meshlink.io/mesh') == MESH] \
        == []
