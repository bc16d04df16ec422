# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import (
    ConfigMapStore,
    PoolExhausted,
    StoreConflict,
    StoreState,
    allocate_in_cluster,
    allocate_vips,
    parse_pool,
    pool_warnings,
    reconcile_vips,
    used_addresses,
    validate_hosts,
)
from meshlink_fakes import FakeCluster

H1 = 'httpbin.bar.global'
H2 = 'orders.shop.global'
H3 = 'users.shop.global'


def service_entry(name, hosts, addresses, namespace='foo', labels=None):
    return {'apiVersion': 'networking.istio.io/v1', 'kind': 'ServiceEntry',
            'metadata': {'name': name, 'namespace': namespace, 'labels': labels or {}},
            'spec': {'hosts': hosts, 'addresses': addresses}}


def test_same_host_same_address_every_time():
    first = allocate_vips([H1, H2], '240.0.0.0/16').vips
    again = allocate_vips([H2, H1], '240.0.0.0/16').vips
    assert first == again
    assert first[H1] != first[H2]


def test_existing_allocation_is_kept():
    result = allocate_vips([H1], '240.0.0.0/16', existing={H1: '240.0.0.77'})
    assert result.vips == {H1: '240.0.0.77'} and result.allocated == []


def test_skips_addresses_used_by_any_service_entry_and_other_hosts():
    # Usable .1-.6; taken: .1/.2 by a foreign ServiceEntry, .3 by another stored host, .4-.5 by
    # a ServiceEntry with a CIDR address: the only address left is .6.
    used = used_addresses([service_entry('a', ['foreign.example.com'], ['10.9.9.1', '10.9.9.2']),
                           service_entry('b', ['x.y.global'], ['10.9.9.4/31'])])
    result = allocate_vips([H1], '10.9.9.0/29', used=used, existing={H3: '10.9.9.3'})
    assert result.vips == {H1: '10.9.9.6'}
    with pytest.raises(PoolExhausted):
        allocate_vips([H1, H2], '10.9.9.0/29', used=used, existing={H3: '10.9.9.3'})


def test_network_and_broadcast_are_never_allocated():
    result = allocate_vips(['a.b.global', 'c.d.global'], '192.0.2.0/30')
    assert sorted(result.vips.values()) == ['192.0.2.1', '192.0.2.2']


@pytest.mark.parametrize('pool, expected', [('192.0.2.4/31', {'192.0.2.4', '192.0.2.5'}),
                                            ('192.0.2.9/32', {'192.0.2.9'})])
def test_point_to_point_pools_use_every_address(pool, expected):
    hosts = ['h%d.ns.global' % i for i in range(len(expected))]
    assert set(allocate_vips(hosts, pool).vips.values()) == expected


def test_exclusions_are_skipped():
    exclude = ['192.0.2.1', '192.0.2.2/31', '192.0.2.4']
    result = allocate_vips(['a.b.global', 'c.d.global'], '192.0.2.0/29', exclude=exclude)
    assert sorted(result.vips.values()) == ['192.0.2.5', '192.0.2.6']


def test_full_pool_is_a_clear_error():
    used = used_addresses([service_entry('a', ['x.y.global'], ['192.0.2.1', '192.0.2.2'])])
    with pytest.raises(PoolExhausted) as caught:
        allocate_vips([H1], '192.0.2.0/30', used=used)
    assert 'The VIP pool 192.0.2.0/30 has no free address for httpbin.bar.global' in str(caught.value)


def test_a_service_entry_of_the_same_host_does_not_block_its_address():
    used = used_addresses([service_entry('httpbin-bar', [H1], ['240.0.0.77'])])
    assert allocate_vips([H1], '240.0.0.0/16', used=used, existing={H1: '240.0.0.77'}).vips[H1] == '240.0.0.77'


def test_an_address_taken_by_another_host_moves_with_a_warning():
    used = used_addresses([service_entry('rogue', ['rogue.example.com'], ['240.0.0.77'])])
    result = allocate_vips([H1], '240.0.0.0/16', used=used, existing={H1: '240.0.0.77'})
    assert result.vips[H1] != '240.0.0.77' and result.allocated == [H1]
    assert 'is now used by ServiceEntry foo/rogue' in result.warnings[0]


def test_an_address_outside_a_new_pool_moves():
    result = allocate_vips([H1], '240.0.0.0/16', existing={H1: '127.255.0.2'})
    assert ipaddress.ip_address(result.vips[H1]) in ipaddress.ip_network('240.0.0.0/16')
    assert 'outside the pool' in result.warnings[0]


def test_fixed_address_is_used():
    result = allocate_vips([H1], '127.255.0.0/16', fixed={H1: '127.255.0.2'})
    assert result.vips == {H1: '127.255.0.2'} and result.allocated == [H1]


@pytest.mark.parametrize('fixed, used, existing, text', [
    ({H1: '10.0.0.1'}, [], {}, 'outside the pool 240.0.0.0/16'),
    ({H1: '240.0.0.0'}, [], {}, 'network or broadcast'),
    ({H1: '240.0.0.9'}, [service_entry('x', ['x.example.com'], ['240.0.0.9'])], {}, 'already used by ServiceEntry foo/x'),
    ({H1: '240.0.0.9'}, [], {H2: '240.0.0.9'}, 'already allocated to orders.shop.global'),
    ({H1: '240.0.0.9', H2: '240.0.0.9'}, [], {}, 'also the fixed address of'),
    ({H1: '240.0.0.3'}, [], {}, 'is excluded'),
    ({H1: 'nope'}, [], {}, 'is not an IPv4 address'),
])
def test_fixed_address_errors(fixed, used, existing, text):
    with pytest.raises(InputError) as caught:
        allocate_vips(list(fixed), '240.0.0.0/16', used=used_addresses(used), existing=existing, fixed=fixed,
                      exclude=['240.0.0.3'])
    assert any(text in e and e.startswith('fixed.') for e in caught.value.errors), caught.value.errors


@pytest.mark.parametrize('pool, text', [
    ('240.0.0.0/33', 'is not an IPv4 CIDR'),
    ('banana', 'is not an IPv4 CIDR'),
    ('240.0.0.1/16', 'has host bits set; did you mean 240.0.0.0/16'),
    ('fd00::/64', 'is not IPv4'),
    ('224.0.0.0/8', 'multicast'),
    ('', 'must be an IPv4 CIDR'),
])
def test_bad_pools(pool, text):
    with pytest.raises(InputError) as caught:
        parse_pool(pool)
    assert caught.value.errors[0].startswith('pool:') and text in caught.value.errors[0]


@pytest.mark.parametrize('pool, version, expected', [
    ('240.0.0.0/16', (1, 7, 8), []),
    ('240.240.0.0/16', (1, 7, 8), ['240.240.0.0/16']),
    ('240.0.0.0/4', None, ['240.240.0.0/16']),
    ('127.255.0.0/16', (1, 2, 9), []),
    ('127.255.0.0/16', (1, 3, 0), ['istio/istio#17261']),
    ('127.255.0.0/16', None, []),
])
def test_pool_warnings(pool, version, expected):
    messages = pool_warnings(parse_pool(pool), version)
    assert len(messages) == len(expected)
    for message, text in zip(messages, expected):
        assert text in message


@pytest.mark.parametrize('hosts, text', [
    (['httpbin.bar'], "'httpbin.bar' is not <name>.<namespace>.global"),
    (['HttpBin.bar.global'], 'is not <name>.<namespace>.global'),
    ([H1, H1], 'is listed twice'),
    ('httpbin.bar.global', 'must be a list'),
])
def test_host_validation(hosts, text):
    with pytest.raises(InputError) as caught:
        validate_hosts(hosts)
    assert text in str(caught.value)


class FakeStore:
    """The store interface; ``race`` simulates runs that write between our read and our write."""

    def __init__(self, data=None, managed=True, race=()):
        self.data = dict(data or {})
        self.version = 1 if data is not None else None
        self.managed = managed
        self.race = list(race)
        self.reads = 0
        self.writes = []
        self.deleted = False
        self.description = 'ConfigMap istio-system/meshlink-vips'

    def read(self):
        self.reads += 1
        return StoreState(dict(self.data), None if self.version is None else str(self.version),
                          exists=self.version is not None, managed=self.managed)

    def _check(self, version):
        if self.race:
            host, ip = self.race.pop(0)
            self.data[host] = ip
            self.version = (self.version or 0) + 1
        if (None if self.version is None else str(self.version)) != version:
            raise StoreConflict('409')

    def write(self, data, version):
        self._check(version)
        self.data = dict(data)
        self.version = (self.version or 0) + 1
        self.writes.append(dict(data))

    def delete(self, version):
        self._check(version)
        self.data = {}
        self.version = None
        self.deleted = True


def test_conflict_is_retried_and_the_concurrent_allocation_respected():
    pool = '192.0.2.0/30'  # two usable addresses
    first_choice = allocate_vips([H1], pool).vips[H1]
    store = FakeStore(data={}, race=[(H2, first_choice)])  # another run takes our address meanwhile
    result = reconcile_vips(store, used_addresses([]), [H1], pool, sleep=lambda s: None)
    assert result.attempts == 2 and store.reads == 2
    assert result.vips[H1] != first_choice
    assert store.data == {H2: first_choice, H1: result.vips[H1]}


def test_too_many_conflicts_give_up():
    store = FakeStore(data={}, race=[('x%d.y.global' % i, '240.0.%d.1' % i) for i in range(5)])
    with pytest.raises(MeshlinkError) as caught:
        reconcile_vips(store, used_addresses([]), [H1], '240.0.0.0/16', retries=2, sleep=lambda s: None)
    assert 'changed under this run 3 times' in str(caught.value)


def test_second_run_does_not_write():
    store = FakeStore(data=None)
    first = reconcile_vips(store, used_addresses([]), [H1, H2], '240.0.0.0/16')
    second = reconcile_vips(store, used_addresses([]), [H1, H2], '240.0.0.0/16')
    assert first.changed and sorted(first.allocated) == [H1, H2]
    assert not second.changed and second.vips == first.vips and len(store.writes) == 1


def test_check_mode_reports_without_writing():
    store = FakeStore(data=None)
    result = reconcile_vips(store, used_addresses([]), [H1], '240.0.0.0/16', check_mode=True)
    assert result.changed and result.allocated == [H1] and store.writes == []


def test_release_keeps_other_hosts():
    store = FakeStore(data={H1: '240.0.0.1', H2: '240.0.0.2'})
    result = reconcile_vips(store, used_addresses([]), [H1], None, state='absent')
    assert result.released == [H1] and store.data == {H2: '240.0.0.2'} and not store.deleted


def test_releasing_the_last_host_deletes_the_store():
    store = FakeStore(data={H1: '240.0.0.1'})
    result = reconcile_vips(store, used_addresses([]), [H1, H2], None, state='absent')
    assert result.released == [H1] and store.deleted and result.after == {}


def test_release_of_unknown_hosts_changes_nothing():
    store = FakeStore(data={H1: '240.0.0.1'})
    assert not reconcile_vips(store, used_addresses([]), [H2], None, state='absent').changed


def test_a_foreign_store_is_refused():
    with pytest.raises(MeshlinkError) as caught:
        reconcile_vips(FakeStore(data={}, managed=False), used_addresses([]), [H1], '240.0.0.0/16')
    assert 'it was not created by this mesh, so it is left alone' in str(caught.value)


def istiod(version):
    container = {'name': 'discovery', 'image': 'docker.io/istio/pilot:%s' % version}
    return {'metadata': {'name': 'istiod', 'namespace': 'istio-system', 'labels': {'app': 'istiod'}},
            'spec': {'template': {'spec': {'containers': [container]}}}}


def test_allocate_in_cluster_writes_a_labelled_config_map_and_avoids_service_entry_addresses():
    cluster = FakeCluster(objects=[('deployments', istiod('1.7.8')),
                                   ('serviceentries', service_entry('x', ['x.example.com'], ['240.0.0.0/17']))])
    result = allocate_in_cluster(cluster, [H1])
    assert result['pool'] == '240.0.0.0/16' and result['changed'] and result['allocated'] == [H1]
    assert ipaddress.ip_address(result['vips'][H1]) in ipaddress.ip_network('240.0.128.0/17')
    stored = cluster.objects('configmaps')[0]
    assert stored['metadata']['name'] == 'meshlink-vips-default'
    assert stored['metadata']['labels'] == {'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': 'default',
                                            'meshlink.io/component': 'vip-store'}
    assert stored['data'] == {H1: result['vips'][H1]}
    # Deployments once, ServiceEntries once, the VIP stores of every mesh once
    assert [v for v, _p in cluster.calls].count('list') == 3


def test_allocate_in_cluster_default_pool_for_old_istio():
    cluster = FakeCluster(objects=[('deployments', istiod('1.2.4'))])
    result = allocate_in_cluster(cluster, [H1], check_mode=True)
    assert result['pool'] == '127.255.0.0/16' and result['istio_version'] == '1.2.4'
    assert cluster.writes() == []


def test_allocate_in_cluster_rejects_bad_input_before_any_call():
    cluster = FakeCluster()
    with pytest.raises(InputError):
        allocate_in_cluster(cluster, [H1], fixed={'httpbin.bar': '240.0.0.1'})
    with pytest.raises(InputError):
        allocate_in_cluster(cluster, [H1], pool='240.0.0.0/33')
    assert cluster.calls == []


def test_config_map_store_turns_409_into_a_conflict():
    cluster = FakeCluster()
    store = ConfigMapStore(cluster, 'istio-system', 'meshlink-vips')
    store.write({H1: '240.0.0.1'}, None)
    with pytest.raises(StoreConflict):
        store.write({H1: '240.0.0.2'}, None)  # AlreadyExists
    with pytest.raises(StoreConflict):
        store.write({H1: '240.0.0.2'}, '1')  # stale resourceVersion
    state = store.read()
    assert state.exists and state.managed and state.data == {H1: '240.0.0.1'}
