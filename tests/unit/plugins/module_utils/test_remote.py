# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._remote import (
    in_role_scope,
    needs_apply,
    reconcile_remote_services,
    strip_object,
)
from meshlink_fakes import SEED_GATEWAY, SEED_SIDECAR_SPEC, SEED_VIP, FakeCluster, seed_service

GATEWAYS = {'cluster2': {'address': SEED_GATEWAY, 'port': 15443}}
VIPS = {'httpbin.bar.global': SEED_VIP}
SUBSETS = [{'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
           {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}]


def consumer(cluster, services, **options):
    options.setdefault('gateways', GATEWAYS)
    options.setdefault('vips', VIPS)
    return reconcile_remote_services(cluster, services, 'consumer', 'cluster1', **options)


def actions(result):
    return [(o['kind'], o['namespace'], o['name'], o['action']) for o in result['objects']]


def test_first_run_creates_the_seeds_service_entry_second_run_writes_nothing():
    cluster = FakeCluster()
    first = consumer(cluster, [seed_service()])
    assert actions(first) == [('ServiceEntry', 'foo', 'httpbin-bar', 'created')]
    assert first['changed'] and first['api_version'] == 'v1'
    stored = cluster.objects('serviceentries')[0]
    assert stored['spec'] == SEED_SIDECAR_SPEC and stored['apiVersion'] == 'networking.istio.io/v1'

    writes_before = len(cluster.writes())
    second = consumer(cluster, [seed_service()])
    assert actions(second) == [('ServiceEntry', 'foo', 'httpbin-bar', 'unchanged')]
    assert not second['changed'] and second['diff'] == []
    assert len(cluster.writes()) == writes_before


def test_one_list_per_kind_and_discovery_once():
    cluster = FakeCluster()
    consumer(cluster, [seed_service(), seed_service(name='other')],
             vips={'httpbin.bar.global': SEED_VIP, 'other.bar.global': '127.255.0.3'})
    verbs = [verb for verb, _path in cluster.calls]
    # discovery is cached by the real Cluster (one GET /apis); the reader asks once for the version
    assert verbs.count('list') == 3 and verbs.count('get') == 0


def test_subsets_add_rule_and_route_and_removing_them_deletes_both():
    cluster = FakeCluster()
    versioned = seed_service(subsets=SUBSETS, route_subset='v2')
    # written in rank order: the rule before the entry, the route (to its subsets) last
    assert [a[:3] for a in actions(consumer(cluster, [versioned]))] == [
        ('DestinationRule', 'foo', 'httpbin-bar-global'), ('ServiceEntry', 'foo', 'httpbin-bar'),
        ('VirtualService', 'foo', 'httpbin-bar-global')]
    result = consumer(cluster, [seed_service()])
    assert actions(result) == [('ServiceEntry', 'foo', 'httpbin-bar', 'updated'),
                               ('VirtualService', 'foo', 'httpbin-bar-global', 'deleted'),
                               ('DestinationRule', 'foo', 'httpbin-bar-global', 'deleted')]
    assert cluster.objects('virtualservices') == [] and cluster.objects('destinationrules') == []


def test_diff_strips_server_bookkeeping():
    cluster = FakeCluster()
    consumer(cluster, [seed_service()])
    result = consumer(cluster, [seed_service()], vips={'httpbin.bar.global': '127.255.0.9'})
    diff = result['diff'][0]
    assert diff['before_header'] == 'ServiceEntry foo/httpbin-bar'
    assert 'resourceVersion' not in diff['before']['metadata'] and 'resourceVersion' not in diff['after']['metadata']
    assert diff['before']['spec']['addresses'] == [SEED_VIP] and diff['after']['spec']['addresses'] == ['127.255.0.9']


def test_a_foreign_object_is_never_overwritten_and_nothing_is_written():
    foreign = {'apiVersion': 'networking.istio.io/v1', 'kind': 'ServiceEntry',
               'metadata': {'name': 'httpbin-bar', 'namespace': 'foo'}, 'spec': {'hosts': ['hand.made']}}
    cluster = FakeCluster(objects=[('serviceentries', foreign)])
    with pytest.raises(MeshlinkError) as caught:
        consumer(cluster, [seed_service(), seed_service(name='other')],
                 vips={'httpbin.bar.global': SEED_VIP, 'other.bar.global': '127.255.0.3'})
    assert 'ServiceEntry foo/httpbin-bar exists and was not made by meshlink' in str(caught.value)
    assert 'rename or delete it' in str(caught.value)
    assert cluster.writes() == []
    assert cluster.objects('serviceentries')[0]['spec'] == {'hosts': ['hand.made']}


def test_check_mode_predicts_without_storing():
    cluster = FakeCluster(dry_run=True)
    result = consumer(cluster, [seed_service(subsets=SUBSETS, route_subset='v1')])
    assert [a[3] for a in actions(result)] == ['would_create'] * 3 and result['changed']
    assert cluster.objects('serviceentries') == []
    assert [verb for verb, _path in cluster.writes()] == ['create'] * 3  # sent, as dry runs


@pytest.mark.parametrize('dry_run,predicted', [(True, True), (False, False)])
def test_missing_namespace_is_predicted_in_check_mode_only(monkeypatch, dry_run, predicted):
    # In a whole `setup --check`, the consumer namespace is created by an earlier step that
    # only pretended to: the server answers 404 to the dry-run apply into it.
    cluster = FakeCluster(dry_run=dry_run)

    def no_namespace(path, body, what):
        raise ApiError('Could not create %s: namespaces "foo" not found' % (what,), status=404, reason='NotFound')
    monkeypatch.setattr(cluster, 'create', no_namespace)
    if predicted:
        result = consumer(cluster, [seed_service()])
        assert [a[3] for a in actions(result)] == ['would_create'] and result['changed']
        assert 'namespace foo does not exist yet' in result['warnings'][0]
    else:
        with pytest.raises(ApiError, match='namespaces "foo" not found'):
            consumer(cluster, [seed_service()])


def test_check_mode_after_a_real_run_reports_unchanged():
    cluster = FakeCluster()
    consumer(cluster, [seed_service()])
    cluster.dry_run = True
    assert not consumer(cluster, [seed_service()])['changed']


def test_an_apply_the_server_does_not_change_is_unchanged():
    # Another field manager added a field: our spec differs from the stored one, the apply
    # happens, but the server keeps the object as it was (same resourceVersion).
    cluster = FakeCluster()
    consumer(cluster, [seed_service()])
    stored = cluster.objects('serviceentries')[0]
    stored['spec']['exportTo'] = ['.']
    cluster.put('serviceentries', stored)
    result = consumer(cluster, [seed_service()])
    assert actions(result) == [('ServiceEntry', 'foo', 'httpbin-bar', 'unchanged')] and not result['changed']


def test_absent_deletes_only_our_objects_of_the_listed_services():
    cluster = FakeCluster()
    consumer(cluster, [seed_service(), seed_service(name='keep')],
             vips={'httpbin.bar.global': SEED_VIP, 'keep.bar.global': '127.255.0.3'})
    result = consumer(cluster, [seed_service()], state='absent', gateways={}, vips={})
    assert actions(result) == [('ServiceEntry', 'foo', 'httpbin-bar', 'deleted')]
    assert [o['metadata']['name'] for o in cluster.objects('serviceentries')] == ['keep-bar']


def test_absent_without_istio_is_a_no_op():
    result = consumer(FakeCluster(served={}), [seed_service()], state='absent')
    assert result == {'objects': [], 'api_version': None, 'changed': False, 'diff': []}


def test_present_without_istio_is_an_error():
    with pytest.raises(MeshlinkError) as caught:
        consumer(FakeCluster(served={}), [seed_service()])
    assert 'networking.istio.io' in str(caught.value)


def test_prune_removes_services_no_longer_listed():
    cluster = FakeCluster()
    consumer(cluster, [seed_service(), seed_service(name='gone')],
             vips={'httpbin.bar.global': SEED_VIP, 'gone.bar.global': '127.255.0.3'})
    kept = consumer(cluster, [seed_service()])
    assert len(cluster.objects('serviceentries')) == 2 and not kept['changed']
    pruned = consumer(cluster, [seed_service()], prune=True)
    assert ('ServiceEntry', 'foo', 'gone-bar', 'deleted') in actions(pruned)
    assert [o['metadata']['name'] for o in cluster.objects('serviceentries')] == ['httpbin-bar']


def test_moving_the_consumer_namespace_moves_the_object():
    cluster = FakeCluster()
    consumer(cluster, [seed_service()])
    result = consumer(cluster, [seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'mesh'}])])
    assert actions(result) == [('ServiceEntry', 'mesh', 'httpbin-bar', 'created'),
                               ('ServiceEntry', 'foo', 'httpbin-bar', 'deleted')]


def test_source_role_writes_only_the_local_rule_and_leaves_consumer_objects_alone():
    cluster = FakeCluster()
    # cluster1 consumes httpbin and also runs 'orders' (with subsets) for cluster3
    orders = seed_service(name='orders', namespace='shop', cluster='cluster1', consumers=['cluster3'],
                          subsets=SUBSETS, route_subset='v1')
    consumer(cluster, [seed_service(), orders])
    result = reconcile_remote_services(cluster, [seed_service(), orders], 'source', 'cluster1', prune=True)
    assert actions(result) == [('DestinationRule', 'shop', 'orders-shop-local', 'created')]
    rule = cluster.objects('destinationrules')[0]
    assert rule['spec']['host'] == 'orders.shop.svc.cluster.local'
    assert len(cluster.objects('serviceentries')) == 1  # the consumer side was not pruned by the source role


@pytest.mark.parametrize('gateways, vips, texts', [
    ({}, VIPS, ['gateways.cluster2: missing', 'gateway_address']),
    ({'cluster2': {'address': '', 'port': 15443}}, VIPS, ['gateways.cluster2.address: is empty']),
    ({'cluster2': {'address': SEED_GATEWAY, 'port': 0}}, VIPS, ['gateways.cluster2.port: 0 is not a port']),
    (GATEWAYS, {}, ['vips.httpbin.bar.global: missing', 'vip_allocate']),
    (GATEWAYS, {'httpbin.bar.global': '240.0.0.300'}, ['is not an IPv4 address']),
])
def test_missing_inputs_fail_before_any_call(gateways, vips, texts):
    cluster = FakeCluster()
    with pytest.raises(InputError) as caught:
        consumer(cluster, [seed_service()], gateways=gateways, vips=vips)
    for text in texts:
        assert text in str(caught.value)
    assert cluster.calls == []


def test_fixed_vip_is_used_and_a_contradicting_allocation_is_an_error():
    cluster = FakeCluster()
    consumer(cluster, [seed_service(vip='240.0.0.10')], vips={})
    assert cluster.objects('serviceentries')[0]['spec']['addresses'] == ['240.0.0.10']
    with pytest.raises(InputError):
        consumer(cluster, [seed_service(vip='240.0.0.10')], vips={'httpbin.bar.global': '240.0.0.11'})


def test_port_from_templating_may_be_a_string():
    cluster = FakeCluster()
    consumer(cluster, [seed_service()], gateways={'cluster2': {'address': '127.50.2.1', 'port': '31550'}})
    assert cluster.objects('serviceentries')[0]['spec']['endpoints'] == [
        {'address': '127.50.2.1', 'ports': {'http1': 31550}}]


def test_newest_served_version_is_used():
    cluster = FakeCluster(served={'networking.istio.io': ['v1alpha3']})
    assert consumer(cluster, [seed_service()])['api_version'] == 'v1alpha3'
    assert cluster.objects('serviceentries')[0]['apiVersion'] == 'networking.istio.io/v1alpha3'


@pytest.mark.parametrize('role, kind, name, expected', [
    ('consumer', 'ServiceEntry', 'httpbin-bar', True),
    ('consumer', 'VirtualService', 'httpbin-bar-global', True),
    ('consumer', 'DestinationRule', 'httpbin-bar-global', True),
    ('consumer', 'DestinationRule', 'httpbin-bar-local', False),
    ('source', 'DestinationRule', 'httpbin-bar-local', True),
    ('source', 'DestinationRule', 'httpbin-bar-global', False),
    ('source', 'ServiceEntry', 'httpbin-bar', False),
])
def test_role_scope(role, kind, name, expected):
    assert in_role_scope(role, kind, name) is expected


def test_needs_apply_and_strip():
    desired = {'metadata': {'labels': {'a': '1'}}, 'spec': {'x': 1}}
    assert needs_apply(desired, None)
    assert not needs_apply(desired, {'metadata': {'labels': {'a': '1', 'other': 'kept'}}, 'spec': {'x': 1}})
    assert needs_apply(desired, {'metadata': {'labels': {}}, 'spec': {'x': 1}})
    assert needs_apply(desired, {'metadata': {'labels': {'a': '1'}}, 'spec': {'x': 2}})
    stripped = strip_object({'metadata': {'name': 'n', 'uid': 'u', 'resourceVersion': '1', 'generation': 2,
                                          'managedFields': [], 'creationTimestamp': 't'}, 'status': {}})
    assert stripped == {'metadata': {'name': 'n'}}
