# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The seed topology for one cluster (_seed.py): which objects it holds, and the refusals of
inputs that come from other clusters (gateway addresses) and from the VIP store."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._seed import (
    consumed_hosts,
    consumer_objects,
    fixed_vips,
    is_seed_object,
    service_entry_addresses,
    source_objects,
    wanted_keys,
)
from meshlink_fakes import SEED_GATEWAY, SEED_SIDECAR_SPEC, SEED_VIP, seed_service

MESH = 'blue'
SUBSETS = [{'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
           {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}]
GATEWAYS = {'cluster2': {'address': SEED_GATEWAY, 'port': 15443},
            'cluster3': {'address': 'gw3.example.com', 'port': 31443}}


def plan():
    services = [
        seed_service(),
        seed_service(name='orders', namespace='shop', cluster='cluster3', vip='240.0.0.77',
                     consumers=[{'cluster': 'cluster1', 'namespace': 'foo'}, {'cluster': 'cluster2'}],
                     subsets=SUBSETS, route_subset='v1'),
    ]
    return build_plan(services, ['cluster1', 'cluster2', 'cluster3'], mesh=MESH)


def part(cluster):
    return plan()['clusters'][cluster]


VIPS = {'httpbin.bar.global': SEED_VIP, 'orders.shop.global': '240.0.0.77'}


@pytest.mark.parametrize('cluster, keys', [
    ('cluster1', {('ServiceEntry', 'foo', 'httpbin-bar'), ('ServiceEntry', 'foo', 'orders-shop'),
                  ('DestinationRule', 'foo', 'orders-shop-global'), ('VirtualService', 'foo', 'orders-shop-global')}),
    ('cluster2', {('ServiceEntry', 'istio-system', 'orders-shop'),
                  ('DestinationRule', 'istio-system', 'orders-shop-global'),
                  ('VirtualService', 'istio-system', 'orders-shop-global')}),
    ('cluster3', {('DestinationRule', 'shop', 'orders-shop-local')}),
])
def test_wanted_keys(cluster, keys):
    assert set(wanted_keys(part(cluster))) == keys


def test_wanted_keys_are_what_is_rendered():
    for cluster in ('cluster1', 'cluster2', 'cluster3'):
        p = part(cluster)
        gateways = GATEWAYS if p['consumes'] else {}
        rendered = consumer_objects(p, gateways, VIPS, MESH) + source_objects(p, MESH)
        assert {d.key for d in rendered} == set(wanted_keys(p))
        # and each with the service it serves, as the rendered object's label says
        assert {d.key: d.obj['metadata']['labels']['multicluster.meshlink.io/service'] for d in rendered} == \
            wanted_keys(p)


def test_consumed_hosts_and_fixed_vips():
    assert consumed_hosts(part('cluster1')) == ['httpbin.bar.global', 'orders.shop.global']
    assert consumed_hosts(part('cluster3')) == []
    assert fixed_vips(part('cluster1')) == {'orders.shop.global': '240.0.0.77'}


def test_consumer_objects_are_the_seed_s():
    desired = consumer_objects(part('cluster1'), GATEWAYS, VIPS, MESH)
    by_key = {d.key: d for d in desired}
    entry = by_key[('ServiceEntry', 'foo', 'httpbin-bar')]
    assert entry.obj['spec'] == SEED_SIDECAR_SPEC and entry.compare == 'spec' and entry.owned
    assert entry.obj['metadata']['labels'] == {'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': MESH,
                                               'multicluster.meshlink.io/service': 'httpbin.bar'}
    orders = by_key[('ServiceEntry', 'foo', 'orders-shop')].obj['spec']
    assert orders['addresses'] == ['240.0.0.77']
    assert {(e['address'], e['ports']['http1']) for e in orders['endpoints']} == {('gw3.example.com', 31443)}
    assert all(d.compare == 'spec' for d in desired)


def test_source_objects():
    desired = source_objects(part('cluster3'), MESH)
    assert [d.key for d in desired] == [('DestinationRule', 'shop', 'orders-shop-local')]
    assert desired[0].obj['spec']['host'] == 'orders.shop.svc.cluster.local'
    assert source_objects(part('cluster2'), MESH) == []


# (case id, gateways, vips, field path, text)
INVALID = [
    ('gateway unknown', {'cluster3': GATEWAYS['cluster3']}, VIPS, 'gateways.cluster2',
     'unknown - cluster2 (source of httpbin.bar.global) did not report its gateway in this run: include it in the run '
     '(meshlink_target_hosts, --limit) or set meshlink_gateway_overrides.cluster2 to {address, port}'),
    ('gateway not a mapping', dict(GATEWAYS, cluster2='192.0.2.10:15443'), VIPS, 'gateways.cluster2',
     'meshlink_gateway_overrides.cluster2'),
    ('empty address', dict(GATEWAYS, cluster2={'address': '', 'port': 15443}), VIPS, 'gateways.cluster2.address',
     'is empty'),
    ('no address', dict(GATEWAYS, cluster2={'port': 15443}), VIPS, 'gateways.cluster2.address', 'is empty'),
    ('port zero', dict(GATEWAYS, cluster2={'address': SEED_GATEWAY, 'port': 0}), VIPS, 'gateways.cluster2.port',
     '0 is not a port (1-65535)'),
    ('port as padded text', dict(GATEWAYS, cluster2={'address': SEED_GATEWAY, 'port': ' 15443'}), VIPS,
     'gateways.cluster2.port', 'is not a port'),
    ('port bool', dict(GATEWAYS, cluster2={'address': SEED_GATEWAY, 'port': True}), VIPS, 'gateways.cluster2.port',
     'is not a port'),
    ('port too big', dict(GATEWAYS, cluster2={'address': SEED_GATEWAY, 'port': 65536}), VIPS,
     'gateways.cluster2.port', 'is not a port'),
    ('port missing', dict(GATEWAYS, cluster2={'address': SEED_GATEWAY}), VIPS, 'gateways.cluster2.port',
     'None is not a port'),
    ('vip missing', GATEWAYS, {'orders.shop.global': '240.0.0.77'}, 'vips.httpbin.bar.global', 'no address allocated'),
    ('vip empty', GATEWAYS, dict(VIPS, **{'httpbin.bar.global': ''}), 'vips.httpbin.bar.global',
     'no address allocated'),
    ('vip IPv6', GATEWAYS, dict(VIPS, **{'httpbin.bar.global': '2001:db8::1'}), 'vips.httpbin.bar.global',
     'is not an IPv4 address'),
    ('vip not an address', GATEWAYS, dict(VIPS, **{'httpbin.bar.global': '240.0.0.300'}), 'vips.httpbin.bar.global',
     'is not an IPv4 address'),
    ('vip with newline', GATEWAYS, dict(VIPS, **{'httpbin.bar.global': '240.0.0.3\n'}), 'vips.httpbin.bar.global',
     'is not an IPv4 address'),
]


@pytest.mark.parametrize('case, gateways, vips, field, text', INVALID, ids=[c[0] for c in INVALID])
def test_consumer_objects_refuse_bad_inputs(case, gateways, vips, field, text):
    with pytest.raises(InputError) as caught:
        consumer_objects(part('cluster1'), gateways, vips, MESH)
    errors = caught.value.errors
    assert len(errors) == 1 and errors[0].startswith(field + ': ') and text in errors[0], errors


def test_every_consumer_problem_at_once():
    with pytest.raises(InputError) as caught:
        consumer_objects(part('cluster1'), {}, {}, MESH)
    assert [e.split(': ')[0] for e in caught.value.errors] == [
        'gateways.cluster2', 'vips.httpbin.bar.global', 'gateways.cluster3', 'vips.orders.shop.global']


@pytest.mark.parametrize('key, expected', [
    (('ServiceEntry', 'foo', 'x'), True), (('VirtualService', 'foo', 'x'), True),
    (('DestinationRule', 'foo', 'x'), True), (('Gateway', 'istio-system', 'x'), False),
    (('Deployment', 'foo', 'x'), False), (('Namespace', '', 'foo'), False),
])
def test_is_seed_object(key, expected):
    assert is_seed_object(key) is expected


def test_service_entry_addresses():
    entries = [{'metadata': {'name': 'a', 'namespace': 'foo'},
                'spec': {'hosts': ['a.b.global'], 'addresses': ['240.0.0.1', '10.0.0.0/24']}},
               {'metadata': {'name': 'no-address', 'namespace': 'foo'}, 'spec': {'hosts': ['x']}}]
    assert service_entry_addresses(entries) == [
        {'address': '240.0.0.1', 'hosts': ['a.b.global'], 'where': 'ServiceEntry foo/a'},
        {'address': '10.0.0.0/24', 'hosts': ['a.b.global'], 'where': 'ServiceEntry foo/a'}]


@pytest.mark.parametrize('address', ['192.0.2.10:15443', 'https://gw.example.com', '192.0.2.10\n', ' 192.0.2.10',
                                     'gw.example.com/x'])
def test_a_gateway_address_that_is_no_address_is_refused(address):
    # An override (meshlink_gateway_overrides) reaches here unchecked, and the address is
    # written as it is into the endpoint of every consumer's ServiceEntry: the same rule as
    # gateway_address's ``address`` option (an IP address or a host name, nothing else).
    gateways = dict(GATEWAYS, cluster2={'address': address, 'port': 15443})
    with pytest.raises(InputError) as caught:
        consumer_objects(part('cluster1'), gateways, VIPS, MESH)
    assert caught.value.errors[0].startswith('gateways.cluster2.address: ')
