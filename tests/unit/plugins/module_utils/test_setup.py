# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""cluster_reconcile end to end (_setup.py) against FakeClusters: the first run creates, the
next one writes nothing, a consumer that left the inventory is pruned, nothing is written
while anything is in the way, and two meshes on one cluster keep to themselves."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._inspect import inspect_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan, check_state
from ansible_collections.meshlink.multicluster.plugins.module_utils._teardown import teardown_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._setup import (
    reconcile_cluster,
    wait_for_deployments,
)
from meshlink_clusters import GATEWAY_IPS, NO_WAIT, istio_cluster, mesh_object, run_setup, user_object
from meshlink_fakes import FakeCluster, seed_service

MESH = 'blue'
HOSTS = ['cluster1', 'cluster2']
HTTPBIN = 'httpbin.bar.global'
ORDERS = 'orders.shop.global'
SUBSETS = [{'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
           {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}]


def services(orders_consumers=({'cluster': 'cluster2', 'namespace': 'clients'},)):
    return [seed_service(),
            seed_service(name='orders', namespace='shop', cluster='cluster1', consumers=list(orders_consumers),
                         subsets=SUBSETS, route_subset='v2')]


def plan(mesh=MESH, **kwargs):
    return build_plan(services(**kwargs), HOSTS, mesh=mesh)


def lab():
    return {'cluster1': istio_cluster('cluster1'), 'cluster2': istio_cluster('cluster2')}


def names(result, action=None):
    return sorted('%s %s/%s' % (o['kind'], o['namespace'], o['name']) for o in result['objects']
                  if action is None or o['action'] == action)


def istio_objects(cluster, plural):
    return {(o['metadata']['namespace'], o['metadata']['name']): o for o in cluster.objects(plural)}


def vip_store(cluster, mesh=MESH):
    return cluster.store.get(('configmaps', 'istio-system', 'meshlink-vips-%s' % mesh))


# -- first run, second run ---------------------------------------------------------------------

FIRST_RUN = {
    False: {
        'cluster1': ['DestinationRule shop/orders-shop-local', 'Namespace /foo', 'Namespace /shop',
                     'ServiceEntry foo/httpbin-bar'],
        'cluster2': ['DestinationRule clients/orders-shop-global', 'Namespace /bar', 'Namespace /clients',
                     'ServiceEntry clients/orders-shop', 'VirtualService clients/orders-shop-global'],
    },
    True: {
        'cluster1': ['DestinationRule shop/orders-shop-local', 'Deployment foo/sleep', 'Deployment shop/orders-v1',
                     'Deployment shop/orders-v2', 'Namespace /foo', 'Namespace /shop', 'Service foo/sleep',
                     'Service shop/orders', 'ServiceAccount foo/sleep', 'ServiceAccount shop/orders',
                     'ServiceEntry foo/httpbin-bar'],
        'cluster2': ['DestinationRule clients/orders-shop-global', 'Deployment bar/httpbin', 'Deployment clients/sleep',
                     'Namespace /bar', 'Namespace /clients', 'Service bar/httpbin', 'Service clients/sleep',
                     'ServiceAccount bar/httpbin', 'ServiceAccount clients/sleep', 'ServiceEntry clients/orders-shop',
                     'VirtualService clients/orders-shop-global'],
    },
}


@pytest.mark.parametrize('samples', [False, True])
def test_first_run_creates_and_second_run_writes_nothing(samples):
    clusters = lab()
    sample_apps = NO_WAIT if samples else None
    _inspections, first = run_setup(clusters, plan(), sample_apps=sample_apps)
    for name in HOSTS:
        assert first[name]['changed']
        assert names(first[name], 'created') == sorted(FIRST_RUN[samples][name])
        assert names(first[name]) == sorted(FIRST_RUN[samples][name])
    assert list(first['cluster1']['vips']) == [HTTPBIN] and list(first['cluster2']['vips']) == [ORDERS]
    assert first['cluster1']['allocated'] == [HTTPBIN]
    entry = istio_objects(clusters['cluster1'], 'serviceentries')[('foo', 'httpbin-bar')]
    assert entry['spec']['addresses'] == [first['cluster1']['vips'][HTTPBIN]]
    assert entry['spec']['endpoints'] == [{'address': GATEWAY_IPS['cluster2'], 'ports': {'http1': 15443}}]
    orders = istio_objects(clusters['cluster2'], 'serviceentries')[('clients', 'orders-shop')]
    assert {e['address'] for e in orders['spec']['endpoints']} == {GATEWAY_IPS['cluster1']}
    assert vip_store(clusters['cluster1'])['data'] == first['cluster1']['vips']

    for cluster in clusters.values():
        cluster.calls.clear()
    _inspections, second = run_setup(clusters, plan(), sample_apps=sample_apps)
    for name, cluster in clusters.items():
        assert cluster.writes() == [], name
        assert not second[name]['changed'] and second[name]['diff'] == []
        assert names(second[name], 'unchanged') == sorted(FIRST_RUN[samples][name])
        assert second[name]['vips'] == first[name]['vips'] and second[name]['allocated'] == []


def test_first_run_diff_and_lines():
    _inspections, first = run_setup(lab(), plan())
    result = first['cluster1']
    vip = result['vips'][HTTPBIN]
    assert result['diff'][0] == {'before_header': 'ConfigMap istio-system/meshlink-vips-blue data',
                                 'after_header': 'ConfigMap istio-system/meshlink-vips-blue data',
                                 'before': {}, 'after': {HTTPBIN: vip}}
    assert result['lines'][0] == 'cluster1/foo: %s -> VIP %s, gateway %s:15443 of cluster2 (sidecar)' % (
        HTTPBIN, vip, GATEWAY_IPS['cluster2'])
    assert '  VIP of %s: %s allocated' % (HTTPBIN, vip) in result['lines']
    assert ipaddress.ip_address(vip) in ipaddress.ip_network('240.0.0.0/16')


def test_the_vip_pool_is_used():
    _inspections, first = run_setup(lab(), plan(), vip={'pool': '10.10.0.0/24'})
    assert ipaddress.ip_address(first['cluster1']['vips'][HTTPBIN]) in ipaddress.ip_network('10.10.0.0/24')


def test_check_mode_writes_nothing_and_predicts_the_run():
    clusters = lab()
    for cluster in clusters.values():
        cluster.dry_run = True
    before = {name: copy.deepcopy(c.store) for name, c in clusters.items()}
    _inspections, results = run_setup(clusters, plan())
    for name, cluster in clusters.items():
        assert cluster.store == before[name]
        assert results[name]['changed']
        assert {o['action'] for o in results[name]['objects']} == {'would_create'}
    assert '  VIP of %s: %s would be allocated' % (HTTPBIN, results['cluster1']['vips'][HTTPBIN]) in \
        results['cluster1']['lines']


# -- convergence: what left the inventory goes ------------------------------------------------

def test_a_removed_consumer_is_pruned_and_its_vip_released():
    clusters = lab()
    run_setup(clusters, plan())
    assert vip_store(clusters['cluster2'])['data'].keys() == {ORDERS}
    for cluster in clusters.values():
        cluster.calls.clear()
    _inspections, results = run_setup(clusters, plan(orders_consumers=()))
    result = results['cluster2']
    assert result['changed']
    assert names(result, 'deleted') == ['DestinationRule clients/orders-shop-global',
                                        'ServiceEntry clients/orders-shop', 'VirtualService clients/orders-shop-global']
    assert result['released'] == [ORDERS] and '  VIP of %s: released' % ORDERS in result['lines']
    assert istio_objects(clusters['cluster2'], 'serviceentries') == {}
    assert vip_store(clusters['cluster2']) is None          # the last host left: the store goes
    # The other cluster's objects of the mesh are untouched (it still consumes httpbin).
    assert clusters['cluster1'].writes() == []
    assert ('foo', 'httpbin-bar') in istio_objects(clusters['cluster1'], 'serviceentries')


def test_a_removed_service_keeps_the_other_vips():
    clusters = lab()
    two = build_plan([seed_service(), seed_service(name='users', consumers=[{'cluster': 'cluster1',
                                                                             'namespace': 'foo'}])], HOSTS, mesh=MESH)
    _inspections, first = run_setup(clusters, two)
    users_vip = first['cluster1']['vips']['users.bar.global']
    _inspections, results = run_setup(clusters, build_plan(
        [seed_service(name='users', consumers=[{'cluster': 'cluster1', 'namespace': 'foo'}])], HOSTS, mesh=MESH))
    assert results['cluster1']['released'] == [HTTPBIN]
    assert names(results['cluster1'], 'deleted') == ['ServiceEntry foo/httpbin-bar']
    assert vip_store(clusters['cluster1'])['data'] == {'users.bar.global': users_vip}
    assert results['cluster1']['vips'] == {'users.bar.global': users_vip}


def test_without_prune_nothing_is_deleted_or_released():
    clusters = lab()
    _inspections, first = run_setup(clusters, plan())
    for cluster in clusters.values():
        cluster.calls.clear()
    _inspections, results = run_setup(clusters, plan(orders_consumers=()), prune=False)
    assert clusters['cluster2'].writes() == []
    assert not results['cluster2']['changed'] and results['cluster2']['released'] == []
    assert ('clients', 'orders-shop') in istio_objects(clusters['cluster2'], 'serviceentries')
    assert vip_store(clusters['cluster2'])['data'] == first['cluster2']['vips']


def test_samples_of_a_removed_consumer_namespace_are_left_for_teardown():
    # prune_scope: sample objects are listed (and pruned) in the plan's namespaces only; the
    # Istio objects of the consumer that left go, its sample client stays for a teardown.
    clusters = lab()
    run_setup(clusters, plan(), sample_apps=NO_WAIT)
    _inspections, results = run_setup(clusters, plan(orders_consumers=()), sample_apps=NO_WAIT)
    assert names(results['cluster2'], 'deleted') == [
        'DestinationRule clients/orders-shop-global', 'ServiceEntry clients/orders-shop',
        'VirtualService clients/orders-shop-global']
    assert clusters['cluster2'].store.get(('deployments', 'clients', 'sleep')) is not None
    assert clusters['cluster2'].store.get(('deployments', 'bar', 'httpbin')) is not None


def test_samples_turned_off_are_left_alone_and_teardown_removes_them():
    clusters = lab()
    run_setup(clusters, plan(), sample_apps=NO_WAIT)
    _inspections, results = run_setup(clusters, plan())
    assert names(results['cluster1'], 'deleted') == []
    assert ('deployments', 'foo', 'sleep') in clusters['cluster1'].store
    teardown_cluster(clusters['cluster1'], plan(), 'cluster1', wait=False)
    assert ('deployments', 'foo', 'sleep') not in clusters['cluster1'].store


# -- nothing is written while something is in the way ------------------------------------------

def in_the_way():
    return [user_object('serviceentries', 'httpbin-bar', 'foo', hosts=['theirs.example.com'])]


def test_a_foreign_object_stops_reconcile_before_any_write():
    cluster = istio_cluster('cluster1', in_the_way())
    inspection = inspect_cluster(cluster, plan(), 'cluster1')
    assert inspection['conflicts'] and inspection['failed']
    cluster.calls.clear()
    gateways = {'cluster2': {'address': GATEWAY_IPS['cluster2'], 'port': 15443}}
    with pytest.raises(MeshlinkError) as caught:
        reconcile_cluster(cluster, plan(), 'cluster1', inspection['state'], gateways=gateways)
    assert str(caught.value).startswith('Nothing was changed in ctx-cluster1: ServiceEntry foo/httpbin-bar exists and '
                                        'was not made by meshlink')
    assert cluster.writes() == []
    assert vip_store(cluster) is None


def test_a_missing_gateway_stops_reconcile_before_any_write():
    cluster = istio_cluster('cluster1')
    inspection = inspect_cluster(cluster, plan(), 'cluster1')
    cluster.calls.clear()
    with pytest.raises(InputError) as caught:
        reconcile_cluster(cluster, plan(), 'cluster1', inspection['state'], gateways={})
    assert 'meshlink_gateway_overrides.cluster2' in str(caught.value)
    assert cluster.writes() == []


@pytest.mark.parametrize('state', [None, {}, {'objects': []}, {'objects': {}, 'vip_store': {}}, 'state'])
def test_a_state_that_is_no_inspection_is_refused(state):
    with pytest.raises(InputError) as caught:
        check_state(state, plan(), 'cluster1')
    assert caught.value.errors[0].startswith('inspection: ') and 'cluster_inspect for cluster1' in \
        caught.value.errors[0]


def test_bad_inputs_make_no_call():
    cluster = FakeCluster()
    edited = plan()
    edited['mesh'] = 'green'
    for call in (lambda: reconcile_cluster(cluster, edited, 'cluster1', {'objects': [], 'vip_store': {}}),
                 lambda: reconcile_cluster(cluster, plan(), 'cluster1', {}),
                 lambda: reconcile_cluster(cluster, plan(), 'cluster1', {'objects': [], 'vip_store': {}},
                                           sample_apps={'replicas': True})):
        with pytest.raises(InputError):
            call()
    assert cluster.calls == []


# -- namespaces and samples --------------------------------------------------------------------

def test_a_user_namespace_only_gets_the_injection_label_with_a_warning():
    clusters = lab()
    clusters['cluster1'].put(*user_object('namespaces', 'foo', None))
    _inspections, results = run_setup(clusters, plan(), sample_apps=NO_WAIT)
    labels = clusters['cluster1'].store[('namespaces', None, 'foo')]['metadata']['labels']
    assert labels == {'team': 'payments', 'istio-injection': 'enabled'}
    assert any('namespace foo exists and is not this mesh\'s' in w for w in results['cluster1']['warnings'])
    assert 'Namespace /foo' in names(results['cluster1'], 'updated')


def test_excluded_namespaces_get_no_samples_and_the_run_says_so():
    clusters = lab()
    excluded = build_plan([seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'kube-system'}])], HOSTS,
                          mesh=MESH)
    _inspections, results = run_setup(clusters, excluded, sample_apps=NO_WAIT)
    assert not [o for o in results['cluster1']['objects'] if o['kind'] == 'Deployment']
    assert any('no sample apps in kube-system' in line for line in results['cluster1']['lines'])


def test_wait_for_deployments():
    ready = {'metadata': {'name': 'sleep', 'namespace': 'foo', 'generation': 1},
             'spec': {'replicas': 1}, 'status': {'readyReplicas': 1, 'updatedReplicas': 1, 'observedGeneration': 1}}
    cluster = FakeCluster(objects=[('deployments', ready)])
    wait_for_deployments(cluster, [('Deployment', 'foo', 'sleep')], 10, clock=lambda: 0, sleep=lambda s: None)

    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    pending = FakeCluster(objects=[('deployments', dict(ready, status={}))])
    with pytest.raises(MeshlinkError) as caught:
        wait_for_deployments(pending, [('Deployment', 'foo', 'sleep')], 3, clock=lambda: now[0], sleep=sleep)
    assert str(caught.value) == 'Sample Deployments not Available after 3s in fake: foo/sleep (0 of 1 ready)'
    assert now[0] == 3


# -- two meshes on one cluster -----------------------------------------------------------------

def test_two_meshes_keep_separate_vip_stores_and_addresses():
    shared = istio_cluster('cluster1')
    source = istio_cluster('cluster2')
    # The same host, consumed by both meshes into their own namespaces, from a pool of two.
    blue = build_plan([seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'blue-apps'}])], HOSTS, mesh='blue')
    green = build_plan([seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'green-apps'}])], HOSTS,
                       mesh='green')
    pool = {'pool': '10.20.0.0/30'}
    _i, blue_run = run_setup({'cluster1': shared, 'cluster2': source}, blue, vip=pool)
    _i, green_run = run_setup({'cluster1': shared, 'cluster2': source}, green, vip=pool)
    blue_vip, green_vip = blue_run['cluster1']['vips'][HTTPBIN], green_run['cluster1']['vips'][HTTPBIN]
    assert blue_vip != green_vip
    assert vip_store(shared, 'blue')['data'] == {HTTPBIN: blue_vip}
    assert vip_store(shared, 'green')['data'] == {HTTPBIN: green_vip}
    assert vip_store(shared, 'blue')['metadata']['labels']['meshlink.io/mesh'] == 'blue'

    # Either mesh again: nothing changes, and neither touches the other's objects.
    shared.calls.clear()
    _i, again = run_setup({'cluster1': shared, 'cluster2': source}, blue, vip=pool)
    assert shared.writes() == [] and again['cluster1']['vips'] == {HTTPBIN: blue_vip}

    # A third mesh finds the pool full: it never takes an address another mesh holds.
    red = build_plan([seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'red-apps'}])], HOSTS, mesh='red')
    inspection = inspect_cluster(shared, red, 'cluster1', vip=pool)
    with pytest.raises(MeshlinkError):
        reconcile_cluster(shared, red, 'cluster1', inspection['state'], vip=pool,
                          gateways={'cluster2': {'address': GATEWAY_IPS['cluster2'], 'port': 15443}})
    assert vip_store(shared, 'red') is None


def test_another_mesh_s_objects_are_never_pruned():
    cluster = istio_cluster('cluster1', [
        mesh_object('serviceentries', 'old-green', 'foo', 'green', 'old.bar', hosts=['old.bar.global']),
        mesh_object('deployments', 'sleep', 'green-apps', 'green', 'sample-apps'),
    ])
    inspection = inspect_cluster(cluster, plan(), 'cluster1', sample_apps=NO_WAIT)
    result = reconcile_cluster(cluster, plan(), 'cluster1', inspection['state'], sample_apps=NO_WAIT,
                               gateways={'cluster2': {'address': GATEWAY_IPS['cluster2'], 'port': 15443}})
    assert not [o for o in result['objects'] if o['action'] == 'deleted']
    assert ('foo', 'old-green') in istio_objects(cluster, 'serviceentries')
    assert cluster.store.get(('deployments', 'green-apps', 'sleep')) is not None
