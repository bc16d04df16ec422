# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan of a mesh (_plan.py): what each cluster exports, consumes and needs, every input
problem with its field path, and the fingerprint that refuses a plan edited by hand."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import (
    build_plan,
    checked_plan,
    cluster_part,
    describe,
)
from meshlink_fakes import seed_service

CLUSTERS = ['cluster1', 'cluster2', 'cluster3']


def _errors(*args, **kwargs):
    with pytest.raises(InputError) as caught:
        build_plan(*args, **kwargs)
    return caught.value.errors


def _one_error(*args, **kwargs):
    errors = _errors(*args, **kwargs)
    assert len(errors) == 1, errors
    return errors[0]


# -- the seed topology: what every cluster exports, consumes and needs -------------------------

def test_seed_plan_per_cluster():
    services = [
        seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'foo'}, 'cluster3']),
        seed_service(name='orders', namespace='shop', cluster='cluster1', consumers=['cluster2'],
                     mode='egress_gateway'),
    ]
    plan = build_plan(services, CLUSTERS, mesh='blue', consumer_namespace='clients')
    assert (plan['mesh'], plan['topology'], plan['consumer_namespace']) == ('blue', 'global_serviceentries', 'clients')
    assert 'istio' not in plan

    def summary(cluster):
        part = plan['clusters'][cluster]
        return ([s['host'] for s in part['exports']],
                [(s['host'], s['consumer_namespace']) for s in part['consumes']],
                part['consumer_namespaces'], part['namespaces'], part['needs_egress'])

    assert summary('cluster1') == (['orders.shop.global'], [('httpbin.bar.global', 'foo')], ['foo'],
                                   ['foo', 'shop'], False)
    assert summary('cluster2') == (['httpbin.bar.global'], [('orders.shop.global', 'clients')], ['clients'],
                                   ['bar', 'clients'], True)
    # A plain cluster name consumes into the consumer namespace; the seed topology needs no
    # namespace of the service itself on the consumer side.
    assert summary('cluster3') == ([], [('httpbin.bar.global', 'clients')], ['clients'], ['clients'], False)
    for part in plan['clusters'].values():
        assert 'reads' not in part and 'read_by' not in part and 'istio' not in part


def test_a_cluster_without_services_has_an_empty_part():
    plan = build_plan([], ['cluster1'])
    assert plan['clusters'] == {'cluster1': {'exports': [], 'consumes': [], 'consumer_namespaces': [],
                                             'namespaces': [], 'needs_egress': False}}
    assert describe(plan) == ['meshlink_services is empty: nothing to connect']


def test_services_none_is_an_empty_mesh():
    assert build_plan(None, ['cluster1'])['services'] == []


def test_describe_names_every_service():
    plan = build_plan([seed_service()], ['cluster1', 'cluster2'])
    assert describe(plan) == ['httpbin.bar.global: served by cluster2, consumed by cluster1/foo, port(s) 8000, '
                              'sidecar']


def test_cluster_part_is_a_copy():
    plan = build_plan([seed_service()], ['cluster1', 'cluster2'])
    part = cluster_part(plan, 'cluster1')
    part['consumes'].clear()
    assert plan['clusters']['cluster1']['consumes']


# -- mesh name and topology --------------------------------------------------------------------

@pytest.mark.parametrize('mesh, text', [
    ('Blue', "use lower case: 'blue'"),
    ('', 'non-empty'),
    (None, 'non-empty'),
    (3, 'non-empty'),
    ('blue\n', 'LINE FEED'),
    (' blue', 'blue'),
    ('blue_green', 'DNS-1123'),
    ('a' * 64, 'at most 63'),
    ('blue.green', 'DNS-1123'),
])
def test_bad_mesh_names_are_refused_naming_the_field(mesh, text):
    error = _one_error([seed_service()], ['cluster1', 'cluster2'], mesh=mesh)
    assert error.startswith('mesh: ') and text in error and 'meshlink_mesh' in error


@pytest.mark.parametrize('mesh', ['default', 'blue', 'mesh-2', 'a' * 63, '0'])
def test_good_mesh_names(mesh):
    assert build_plan([seed_service()], ['cluster1', 'cluster2'], mesh=mesh)['mesh'] == mesh


@pytest.mark.parametrize('topology', ['global', 'Multi_Primary', '', None, 'multi-primary'])
def test_unknown_topology_is_refused(topology):
    error = _one_error([], ['cluster1'], topology=topology)
    assert error.startswith('topology: ') and 'global_serviceentries, multi_primary, primary_remote' in error


def test_every_problem_is_reported_at_once():
    errors = _errors([seed_service(name='Bad')], ['cluster1', 'cluster2'], mesh='Blue', topology='mesh')
    assert [e.split(':')[0] for e in errors] == ['mesh', 'topology', 'services[0].name']


# -- multi-network topologies: the Istio identity of every cluster -----------------------------

TWO = ['east', 'west']


def settings(**per_host):
    """``cluster_settings`` with a network for every host unless given."""
    result = {}
    for host in TWO + list(per_host):
        values = {'meshlink_network': 'net-%s' % host}
        values.update(per_host.get(host) or {})
        result[host] = values
    return result


def test_multi_primary_defaults():
    plan = build_plan([seed_service(cluster='west', consumers=['east'])], TWO, topology='multi_primary',
                      cluster_settings=settings())
    assert plan['istio'] == {
        'east': {'cluster_name': 'east', 'network': 'net-east', 'role': 'primary', 'primary': 'east',
                 'api_server': None},
        'west': {'cluster_name': 'west', 'network': 'net-west', 'role': 'primary', 'primary': 'west',
                 'api_server': None},
    }
    east = plan['clusters']['east']
    assert (east['reads'], east['read_by']) == (['west'], ['west'])
    assert east['istio'] == plan['istio']['east']
    # The consumer resolves <name>.<namespace>.svc.cluster.local: the service's namespace is
    # needed there too (a stub Service), besides the consumer namespace.
    assert east['namespaces'] == ['bar', 'istio-system']
    assert [s['host'] for s in east['consumes']] == ['httpbin.bar.svc.cluster.local']
    assert [s['host'] for s in plan['services']] == ['httpbin.bar.svc.cluster.local']
    assert describe(plan)[0].startswith('httpbin.bar.svc.cluster.local: served by west')
    assert 'east: Istio cluster east, network net-east, primary' in describe(plan)


def test_primary_remote_defaults_to_remotes_of_the_one_primary():
    hosts = ['hub', 'spoke1', 'spoke2']
    given = {'hub': {'meshlink_network': 'n1', 'meshlink_istio_role': 'primary'},
             'spoke1': {'meshlink_network': 'n1'}, 'spoke2': {'meshlink_network': 'n2'}}
    plan = build_plan([], hosts, topology='primary_remote', cluster_settings=given)
    assert {h: (plan['istio'][h]['role'], plan['istio'][h]['primary']) for h in hosts} == {
        'hub': ('primary', 'hub'), 'spoke1': ('remote', 'hub'), 'spoke2': ('remote', 'hub')}
    reads = {h: (plan['clusters'][h]['reads'], plan['clusters'][h]['read_by']) for h in hosts}
    assert reads == {'hub': (['spoke1', 'spoke2'], []), 'spoke1': ([], ['hub']), 'spoke2': ([], ['hub'])}
    assert 'spoke2: Istio cluster spoke2, network n2, remote of hub' in describe(plan)


def test_reads_and_read_by_with_two_primaries_and_a_remote():
    hosts = ['p1', 'p2', 'r1']
    given = {'p1': {'meshlink_network': 'n1'}, 'p2': {'meshlink_network': 'n2'},
             'r1': {'meshlink_network': 'n2', 'meshlink_istio_role': 'remote', 'meshlink_istio_primary': 'p2'}}
    plan = build_plan([], hosts, topology='multi_primary', cluster_settings=given)
    reads = {h: (plan['clusters'][h]['reads'], plan['clusters'][h]['read_by']) for h in hosts}
    assert reads == {'p1': (['p2', 'r1'], ['p2']), 'p2': (['p1', 'r1'], ['p1']), 'r1': ([], ['p1', 'p2'])}
    assert plan['istio']['r1']['primary'] == 'p2'


def test_explicit_identity_is_kept():
    given = settings(east={'meshlink_istio_cluster_name': 'cluster-a',
                           'meshlink_api_server_for_peers': 'https://10.0.0.1:6443'})
    plan = build_plan([], TWO, topology='multi_primary', cluster_settings=given)
    assert (plan['istio']['east']['cluster_name'], plan['istio']['east']['api_server']) == \
        ('cluster-a', 'https://10.0.0.1:6443')


# (case id, topology, hosts, cluster_settings, field path of the error, text of the error)
MULTI_NETWORK_INVALID = [
    ('network missing', 'multi_primary', TWO, {'east': {}, 'west': {'meshlink_network': 'n'}},
     'hostvars.east.meshlink_network', 'is required with topology multi_primary'),
    ('network empty', 'multi_primary', TWO, settings(east={'meshlink_network': ''}),
     'hostvars.east.meshlink_network', 'is required'),
    ('network bad', 'multi_primary', TWO, settings(east={'meshlink_network': 'Net 1'}),
     'hostvars.east.meshlink_network', 'DNS-1123'),
    ('settings not a mapping', 'multi_primary', TWO, {'east': ['n1'], 'west': {'meshlink_network': 'n'}},
     'hostvars.east', 'must be a mapping'),
    ('bad role', 'multi_primary', TWO, settings(east={'meshlink_istio_role': 'main'}),
     'hostvars.east.meshlink_istio_role', "'main' is not primary or remote"),
    ('role with capital', 'multi_primary', TWO, settings(east={'meshlink_istio_role': 'Primary'}),
     'hostvars.east.meshlink_istio_role', 'is not primary or remote'),
    ('remote of an unknown host', 'multi_primary', TWO,
     settings(west={'meshlink_istio_role': 'remote', 'meshlink_istio_primary': 'north'}),
     'hostvars.west.meshlink_istio_primary', "'north' is not a cluster of this mesh (east, west)"),
    ('remote of a remote', 'primary_remote', ['hub', 'a', 'b'],
     {'hub': {'meshlink_network': 'n', 'meshlink_istio_role': 'primary'}, 'a': {'meshlink_network': 'n'},
      'b': {'meshlink_network': 'n', 'meshlink_istio_primary': 'a'}},
     'hostvars.b.meshlink_istio_primary', "'a' is not a primary"),
    ('primary naming a primary', 'multi_primary', TWO, settings(east={'meshlink_istio_primary': 'west'}),
     'hostvars.east.meshlink_istio_primary', 'east is a primary; only remotes name a primary'),
    ('primary not text', 'multi_primary', ['p1', 'p2', 'r'],
     {'p1': {'meshlink_network': 'n'}, 'p2': {'meshlink_network': 'n'},
      'r': {'meshlink_network': 'n', 'meshlink_istio_role': 'remote', 'meshlink_istio_primary': ['p1']}},
     'hostvars.r.meshlink_istio_primary', 'must be the inventory host'),
    ('no primary at all', 'primary_remote', TWO, settings(),
     'hostvars', 'no cluster is a primary'),
    ('duplicate cluster names', 'multi_primary', TWO,
     settings(east={'meshlink_istio_cluster_name': 'c1'}, west={'meshlink_istio_cluster_name': 'c1'}),
     'hostvars.west.meshlink_istio_cluster_name', "'c1' is also the cluster name of east"),
    ('default name equals an explicit one', 'multi_primary', TWO,
     settings(west={'meshlink_istio_cluster_name': 'east'}),
     'hostvars.west.meshlink_istio_cluster_name', "'east' is also the cluster name of east"),
    ('cluster name bad', 'multi_primary', TWO, settings(east={'meshlink_istio_cluster_name': 'Cluster_A'}),
     'hostvars.east.meshlink_istio_cluster_name', 'CLUSTER_ID'),
    ('host name is no cluster name', 'multi_primary', ['East_1', 'west'],
     {'East_1': {'meshlink_network': 'n'}, 'west': {'meshlink_network': 'n'}},
     'hostvars.East_1.meshlink_istio_cluster_name', 'the inventory host name'),
    ('api server http', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'http://10.0.0.1:6443'}),
     'hostvars.east.meshlink_api_server_for_peers', 'is not an https:// URL'),
    ('api server without scheme', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': '10.0.0.1:6443'}),
     'hostvars.east.meshlink_api_server_for_peers', 'is not an https:// URL'),
    ('api server without host', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'https://'}),
     'hostvars.east.meshlink_api_server_for_peers', 'with a host'),
    ('api server with path', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'https://api.example.com/k8s'}),
     'hostvars.east.meshlink_api_server_for_peers', 'has a path, query or fragment'),
    ('api server with query', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'https://api.example.com?x=1'}),
     'hostvars.east.meshlink_api_server_for_peers', 'has a path, query or fragment'),
    ('api server trailing newline', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'https://api.example.com:6443\n'}),
     'hostvars.east.meshlink_api_server_for_peers', 'whitespace or control characters'),
    ('api server inner space', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'https://api example.com'}),
     'hostvars.east.meshlink_api_server_for_peers', 'whitespace or control characters'),
    ('api server leading space', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': ' https://api.example.com'}),
     'hostvars.east.meshlink_api_server_for_peers', 'whitespace or control characters'),
    ('api server tab', 'multi_primary', TWO,
     settings(east={'meshlink_api_server_for_peers': 'https://api.example.com\t'}),
     'hostvars.east.meshlink_api_server_for_peers', 'whitespace or control characters'),
    ('api server not text', 'multi_primary', TWO, settings(east={'meshlink_api_server_for_peers': 6443}),
     'hostvars.east.meshlink_api_server_for_peers', 'must be an https:// URL'),
]


@pytest.mark.parametrize('case, topology, hosts, given, field, text', MULTI_NETWORK_INVALID,
                         ids=[c[0] for c in MULTI_NETWORK_INVALID])
def test_multi_network_rules_name_the_field(case, topology, hosts, given, field, text):
    errors = _errors([], hosts, topology=topology, cluster_settings=given)
    matching = [e for e in errors if e.startswith(field + ': ') and text in e]
    assert matching, errors


@pytest.mark.parametrize('field, value, text', [
    ('vip', '240.0.0.9', 'drop vip'),
    ('mode', 'egress_gateway', 'drop mode'),
    ('endpoint_labels', {'network': 'external'}, 'drop endpoint_labels'),
])
def test_global_only_service_fields_are_refused_with_multi_network(field, value, text):
    service = seed_service(cluster='west', consumers=['east'], **{field: value})
    error = _one_error([service], TWO, topology='primary_remote',
                       cluster_settings=settings(east={'meshlink_istio_role': 'primary'}))
    assert error.startswith('services[0].%s: ' % field) and text in error


@pytest.mark.parametrize('api_server', [
    'https://api.example.com', 'https://api.example.com:6443', 'https://api.example.com/', 'https://10.0.0.1:6443',
    'https://[2001:db8::1]:6443',
])
def test_good_api_servers(api_server):
    plan = build_plan([], TWO, topology='multi_primary',
                      cluster_settings=settings(east={'meshlink_api_server_for_peers': api_server}))
    assert plan['istio']['east']['api_server'] == api_server


@pytest.mark.parametrize('api_server', [
    'https://api.example.com:99999', 'https://api.example.com:port', 'https://api.example.com:-1',
    'https://api.example.com:0',
])
def test_api_server_port_must_be_a_port(api_server):
    # istiod dials it as it is: a port that is not 1-65535 is as wrong as a path.
    error = _one_error([], TWO, topology='multi_primary',
                       cluster_settings=settings(east={'meshlink_api_server_for_peers': api_server}))
    assert error.startswith('hostvars.east.meshlink_api_server_for_peers: ')


def test_seed_topology_ignores_cluster_settings():
    plan = build_plan([seed_service()], ['cluster1', 'cluster2'],
                      cluster_settings={'cluster1': {'meshlink_istio_role': 'nonsense'}})
    assert 'istio' not in plan


def test_every_multi_network_problem_at_once():
    given = {'east': {'meshlink_istio_role': 'boss'}, 'west': {'meshlink_network': 'N'}}
    errors = _errors([], TWO, topology='multi_primary', cluster_settings=given)
    assert {e.split(':')[0] for e in errors} >= {'hostvars.east.meshlink_network', 'hostvars.east.meshlink_istio_role',
                                                 'hostvars.west.meshlink_network'}


# -- checked_plan: what the per-cluster modules accept -----------------------------------------

def registered(plan):
    """The plan as Ansible registers the result of mesh_plan (extra keys of the task result)."""
    result = copy.deepcopy(plan)
    result.update(changed=False, failed=False, lines=describe(plan), invocation={'module_args': {}})
    return result


def test_registered_result_is_accepted():
    plan = build_plan([seed_service()], ['cluster1', 'cluster2'])
    assert checked_plan(registered(plan), 'cluster1')['clusters'] == plan['clusters']
    assert checked_plan(registered(plan))['fingerprint'] == plan['fingerprint']


def test_fingerprint_is_stable_and_follows_content():
    one = build_plan([seed_service()], ['cluster1', 'cluster2'])
    assert build_plan([seed_service()], ['cluster1', 'cluster2'])['fingerprint'] == one['fingerprint']
    assert build_plan([seed_service()], ['cluster1', 'cluster2'], mesh='blue')['fingerprint'] != one['fingerprint']


def _edit_vip(plan):
    plan['clusters']['cluster1']['consumes'][0]['vip'] = '240.0.0.66'


def _edit_mesh(plan):
    plan['mesh'] = 'other'


def _drop_consumer(plan):
    plan['clusters']['cluster1']['consumes'] = []


def _add_cluster(plan):
    plan['clusters']['cluster9'] = copy.deepcopy(plan['clusters']['cluster1'])


@pytest.mark.parametrize('edit', [_edit_vip, _edit_mesh, _drop_consumer, _add_cluster])
def test_edited_plan_is_refused(edit):
    plan = registered(build_plan([seed_service()], ['cluster1', 'cluster2']))
    edit(plan)
    with pytest.raises(InputError) as caught:
        checked_plan(plan, 'cluster1')
    assert caught.value.errors[0].startswith('plan: ') and 'fingerprint' in caught.value.errors[0]


@pytest.mark.parametrize('value', [
    None, [], 'plan', {}, {'services': [], 'clusters': {}},
    {'version': 2, 'fingerprint': 'x', 'clusters': {}},
    {'version': 1, 'clusters': {}},
])
def test_non_plan_is_refused(value):
    with pytest.raises(InputError) as caught:
        checked_plan(value, 'cluster1')
    assert caught.value.errors[0].startswith('plan: ') and 'mesh_plan' in caught.value.errors[0]


def test_unknown_cluster_is_refused_naming_the_known_ones():
    plan = build_plan([seed_service()], ['cluster1', 'cluster2'])
    with pytest.raises(InputError) as caught:
        checked_plan(plan, 'cluster9')
    assert caught.value.errors == ["cluster: 'cluster9' is not a cluster of the plan (cluster1, cluster2) - add it to "
                                   "meshlink_clusters or fix the inventory host name"]
