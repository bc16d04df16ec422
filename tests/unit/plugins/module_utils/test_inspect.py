# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""cluster_inspect end to end (_inspect.py) against FakeClusters: a read-only pass that names
everything in the way before anything is written, and the state reconcile starts from."""

from __future__ import annotations

import collections

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._inspect import inspect_cluster, light, merged
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from meshlink_clusters import GATEWAY_IPS, istio_cluster, mesh_object, user_object
from meshlink_fakes import seed_service

MESH = 'blue'
HOSTS = ['cluster1', 'cluster2']
SUBSETS = [{'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
           {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}]


def plan(**kwargs):
    services = [seed_service(),
                seed_service(name='orders', namespace='shop', cluster='cluster1',
                             consumers=[{'cluster': 'cluster2', 'namespace': 'clients'}],
                             subsets=SUBSETS, route_subset='v1')]
    return build_plan(services, HOSTS, mesh=MESH, **kwargs)


def test_a_ready_cluster_passes_and_nothing_is_written():
    cluster = istio_cluster('cluster1')
    result = inspect_cluster(cluster, plan(), 'cluster1')
    assert 'failed' not in result and result['conflicts'] == []
    assert result['summary'] == {'pass': 10, 'warn': 0, 'fail': 0}
    assert (result['cluster'], result['mesh'], result['topology']) == ('cluster1', MESH, 'global_serviceentries')
    assert result['gateway']['address'] == GATEWAY_IPS['cluster1'] and result['gateway']['port'] == 15443
    assert result['lines'][-1].startswith('gateway %s:15443 (ip, ' % GATEWAY_IPS['cluster1'])
    state = result['state']
    assert (state['networking_version'], state['istio_version']) == ('v1', '1.7.8')
    assert state['vip_store'] == {'namespace': 'istio-system', 'name': 'meshlink-vips-blue', 'data': {},
                                  'resourceVersion': None, 'exists': False, 'managed': True}
    assert state['namespaces'] == {'foo': None, 'shop': None}
    assert state['objects'] == [] and state['reserved'] == []
    assert cluster.writes() == []


def test_each_collection_is_read_once():
    cluster = istio_cluster('cluster1')
    inspect_cluster(cluster, plan(), 'cluster1', sample_apps={})
    reads = collections.Counter(call for call in cluster.calls if call[0] in ('list', 'get'))
    assert [call for call, count in reads.items() if count > 1] == []


def test_a_consumer_only_cluster_looks_up_no_gateway():
    cluster = istio_cluster('cluster2')
    result = inspect_cluster(cluster, build_plan([seed_service(cluster='cluster1', consumers=['cluster2'])], HOSTS),
                             'cluster2')
    assert result['gateway'] is None and 'failed' not in result


def test_the_state_holds_the_mesh_s_objects_light():
    cluster = istio_cluster('cluster1', [
        mesh_object('serviceentries', 'httpbin-bar', 'foo', MESH, 'httpbin.bar', hosts=['httpbin.bar.global'],
                    addresses=['240.0.0.5']),
        mesh_object('serviceentries', 'gone-bar', 'elsewhere', MESH, 'gone.bar', hosts=['gone.bar.global'],
                    addresses=['240.0.0.6']),
        mesh_object('serviceentries', 'green', 'foo', 'green', 'x.y', hosts=['x.y.global'], addresses=['240.0.0.7']),
        user_object('serviceentries', 'users', 'foo', hosts=['api.example.com'], addresses=['240.0.0.8']),
        ('namespaces', {'metadata': {'name': 'foo', 'labels': {'team': 'a'}}}),
    ])
    cluster.store[('serviceentries', 'foo', 'httpbin-bar')]['metadata']['managedFields'] = [{'manager': 'meshlink'}]
    cluster.store[('serviceentries', 'foo', 'httpbin-bar')]['status'] = {'conditions': []}
    state = inspect_cluster(cluster, plan(), 'cluster1')['state']
    # Ours, wherever they are (a prune candidate in another namespace too); never the others'.
    assert [(o['metadata']['namespace'], o['metadata']['name']) for o in state['objects']] == [
        ('elsewhere', 'gone-bar'), ('foo', 'httpbin-bar')]
    entry = state['objects'][1]
    assert entry['kind'] == 'ServiceEntry' and 'managedFields' not in entry['metadata'] and 'status' not in entry
    assert entry['metadata']['resourceVersion'] and entry['metadata']['uid']
    # Every address a new VIP must avoid, whoever holds it.
    assert sorted(r['address'] for r in state['reserved']) == ['240.0.0.5', '240.0.0.6', '240.0.0.7', '240.0.0.8']
    assert state['namespaces']['foo']['metadata']['labels'] == {'team': 'a'}


def test_the_vip_store_and_other_meshes_stores():
    store = ('configmaps', {'metadata': {'name': 'meshlink-vips-blue', 'namespace': 'istio-system', 'labels': {
        'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': MESH, 'meshlink.io/component': 'vip-store'}},
        'data': {'httpbin.bar.global': '240.0.0.5'}})
    green = ('configmaps', {'metadata': {'name': 'meshlink-vips-green', 'namespace': 'istio-system', 'labels': {
        'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': 'green', 'meshlink.io/component': 'vip-store'}},
        'data': {'httpbin.bar.global': '240.0.0.9'}})
    state = inspect_cluster(istio_cluster('cluster1', [store, green]), plan(), 'cluster1')['state']
    assert state['vip_store']['data'] == {'httpbin.bar.global': '240.0.0.5'}
    assert state['vip_store']['exists'] and state['vip_store']['managed'] and state['vip_store']['resourceVersion']
    assert [(r['address'], r['hosts']) for r in state['reserved']] == [('240.0.0.9',
                                                                        ['httpbin.bar.global (mesh green)'])]


# -- everything in the way is named now, before any write --------------------------------------

# (case id, cluster, object in the way, sample apps, the conflict)
IN_THE_WAY = [
    ('a user ServiceEntry', 'cluster1', user_object('serviceentries', 'httpbin-bar', 'foo', hosts=['x']), None,
     'ServiceEntry foo/httpbin-bar exists and was not made by meshlink (no app.kubernetes.io/managed-by=meshlink '
     'label): it is never overwritten - rename or delete it'),
    ('another mesh', 'cluster1', mesh_object('serviceentries', 'httpbin-bar', 'foo', 'green', 'httpbin.bar'), None,
     'ServiceEntry foo/httpbin-bar exists and belongs to mesh green'),
    ('a 0.1.0 object', 'cluster1',
     ('serviceentries', {'metadata': {'name': 'httpbin-bar', 'namespace': 'foo', 'labels': {
         'app.kubernetes.io/managed-by': 'meshlink', 'multicluster.meshlink.io/service': 'httpbin.bar'}}}), None,
     'ServiceEntry foo/httpbin-bar exists and was made by meshlink 0.1.0'),
    ('a user VirtualService at a subset rule name', 'cluster2',
     user_object('virtualservices', 'orders-shop-global', 'clients', hosts=['x']), None,
     'VirtualService clients/orders-shop-global exists and was not made by meshlink'),
    ('a user DestinationRule on the source', 'cluster1',
     user_object('destinationrules', 'orders-shop-local', 'shop', host='x'), None,
     'DestinationRule shop/orders-shop-local exists and was not made by meshlink'),
    ('a user Deployment at the sleep name', 'cluster1', user_object('deployments', 'sleep', 'foo'), {},
     'Deployment foo/sleep exists and was not made by meshlink'),
    ('a user Service at the sample service name', 'cluster1', user_object('services', 'orders', 'shop'), {},
     'Service shop/orders exists and was not made by meshlink'),
    ('a ConfigMap at the VIP store name', 'cluster1',
     user_object('configmaps', 'meshlink-vips-blue', 'istio-system'), None,
     'ConfigMap istio-system/meshlink-vips-blue (the VIP store) exists and was not made by meshlink'),
]


@pytest.mark.parametrize('case, name, obj, sample_apps, conflict', IN_THE_WAY, ids=[c[0] for c in IN_THE_WAY])
def test_an_object_in_the_way_is_a_conflict(case, name, obj, sample_apps, conflict):
    cluster = istio_cluster(name, [obj])
    result = inspect_cluster(cluster, plan(), name, sample_apps=sample_apps)
    assert len(result['conflicts']) == 1 and result['conflicts'][0].startswith(conflict), result['conflicts']
    assert result['failed']
    assert result['msg'].startswith('Inspection of %s (context ctx-%s): 1 problem(s), nothing was written: '
                                    '[ownership] %s' % (name, name, conflict))
    assert cluster.writes() == []


def test_a_user_object_with_another_name_is_no_conflict():
    cluster = istio_cluster('cluster1', [user_object('serviceentries', 'httpbin', 'foo', hosts=['x']),
                                         user_object('deployments', 'sleep', 'other')])
    result = inspect_cluster(cluster, plan(), 'cluster1', sample_apps={})
    assert result['conflicts'] == [] and 'failed' not in result


def test_sample_conflicts_only_with_sample_apps():
    cluster = istio_cluster('cluster1', [user_object('deployments', 'sleep', 'foo')])
    assert 'failed' not in inspect_cluster(cluster, plan(), 'cluster1')


# -- problems of the cluster -------------------------------------------------------------------

def test_an_exporting_cluster_without_gateway_address_fails():
    cluster = istio_cluster('cluster1')
    del cluster.store[('services', 'istio-system', 'istio-ingressgateway')]['status']
    cluster.store[('services', 'istio-system', 'istio-ingressgateway')]['spec']['type'] = 'ClusterIP'
    result = inspect_cluster(cluster, plan(), 'cluster1', gateway={'wait_timeout': 0})
    assert result['failed'] and '[gateway_address] No address for the gateway Service' in result['msg']
    assert result['gateway'] is None and 'state' in result


def test_a_gateway_override_needs_no_service():
    cluster = istio_cluster('cluster1')
    result = inspect_cluster(cluster, plan(), 'cluster1', gateway={'address': 'gw.example.com', 'address_port': 443})
    assert (result['gateway']['address'], result['gateway']['port']) == ('gw.example.com', 443)


def test_role_unset_values_mean_the_defaults():
    # The role passes "" and 0 for what the user did not set.
    assert merged({'a': 1, 'address_port': None}, {'a': '', 'address_port': 0}, 'gateway') == \
        {'a': 1, 'address_port': None}
    assert merged({'a': 1, 'address_port': None}, {'a': 2, 'address_port': '0'}, 'gateway') == \
        {'a': 2, 'address_port': None}


def test_an_unreachable_cluster_reports_only_the_api():
    cluster = istio_cluster('cluster1')
    cluster.fail_next['read'] = ApiError('Could not read server version in context ctx-cluster1: cannot reach the '
                                         'API server https://127.0.0.1:1: Connection refused')
    result = inspect_cluster(cluster, plan(), 'cluster1')
    assert [(c['name'], c['status']) for c in result['checks']] == [('api', 'fail')]
    assert result['failed'] and 'Connection refused' in result['msg'] and 'state' not in result


@pytest.mark.parametrize('fail_on, failed', [('fail', True), ('warn', True), ('never', False)])
def test_fail_on(fail_on, failed):
    cluster = istio_cluster('cluster1')
    del cluster.store[('configmaps', 'kube-system', 'coredns')]
    result = inspect_cluster(cluster, plan(), 'cluster1', fail_on=fail_on)
    assert bool(result.get('failed')) is failed
    assert 'state' in result


def test_fail_on_never_still_fails_on_conflicts():
    cluster = istio_cluster('cluster1', [user_object('serviceentries', 'httpbin-bar', 'foo')])
    assert inspect_cluster(cluster, plan(), 'cluster1', fail_on='never')['failed']


# -- bad input: refused before any request -----------------------------------------------------

def _edited():
    edited = plan()
    edited['mesh'] = 'green'
    return edited


# (case id, call options, the field the error names)
BAD_INPUT = [
    ('edited plan', {'plan': _edited()}, 'plan: '),
    ('unknown cluster', {'name': 'cluster9'}, "cluster: 'cluster9'"),
    ('unknown gateway key', {'gateway': {'adress': '1.2.3.4'}}, "gateway: unknown key 'adress'"),
    ('bad gateway port', {'gateway': {'port': 70000}}, 'gateway.port: '),
    ('bad gateway address port', {'gateway': {'address_port': 'x'}}, 'gateway.address_port: '),
    ('unknown vip key', {'vip': {'cidr': '10.0.0.0/8'}}, "vip: unknown key 'cidr'"),
    ('bad vip pool', {'vip': {'pool': '10.0.0.0/33'}}, 'vip.'),
    ('bad vip exclude', {'vip': {'exclude': ['x']}}, 'vip.'),
    ('bad sample apps', {'sample_apps': {'replicas': 'many'}}, 'sample_apps.replicas: '),
    ('bad fail_on', {'fail_on': 'always'}, "fail_on: 'always'"),
    ('unknown check', {'checks': ['api', 'dns']}, 'checks: unknown check(s) dns'),
]


@pytest.mark.parametrize('case, options, field', BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_makes_no_call(case, options, field):
    cluster = istio_cluster('cluster1')
    options = dict(options)
    given_plan = options.pop('plan', plan())
    name = options.pop('name', 'cluster1')
    with pytest.raises(InputError) as caught:
        inspect_cluster(cluster, given_plan, name, **options)
    assert str(caught.value).startswith(field), str(caught.value)
    assert cluster.calls == []


def test_a_multi_network_plan_refuses_seed_checks_before_any_call():
    cluster = istio_cluster('cluster1')
    current = build_plan([], HOSTS, topology='multi_primary',
                         cluster_settings={h: {'meshlink_network': 'n'} for h in HOSTS})
    with pytest.raises(InputError) as caught:
        inspect_cluster(cluster, current, 'cluster1', checks=['global_dns'])
    assert "checks: unknown check(s) global_dns" in str(caught.value) and 'eastwest_gateway' in str(caught.value)
    assert cluster.calls == []


def test_light():
    obj = {'metadata': {'name': 'x', 'uid': 'u', 'resourceVersion': '3', 'managedFields': []}, 'status': {}, 'spec': {}}
    assert light(obj) == {'metadata': {'name': 'x', 'uid': 'u', 'resourceVersion': '3'}, 'spec': {}}
    assert light(None) is None
    assert 'managedFields' in obj['metadata']
