# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller side of the per-cluster modules (plugin_utils/_cluster_action.py): which cluster a
host connects to, the gateway addresses a consumer gets, and two hosts that are one cluster."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import (
    CONNECTION_OPTIONS,
    connection_argument_spec,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    HOST_VARIABLES,
    ConnectionMissing,
    duplicate_identities,
    host_connection,
    registered,
    source_gateways,
)
from meshlink_fakes import seed_service


def lookup_of(variables):
    return variables.get


# -- host_connection ---------------------------------------------------------------------------

# (case id, task args, host variables, environment, expected connection options added)
CONNECTIONS = [
    ('host context', {}, {'meshlink_context': 'kind-c1'}, {}, {'context': 'kind-c1'}),
    ('host kubeconfig and context', {}, {'meshlink_kubeconfig': '/k/c1', 'meshlink_context': 'c1'}, {},
     {'kubeconfig': '/k/c1', 'context': 'c1'}),
    ('host API server and token', {},
     {'meshlink_host': 'https://10.0.0.1:6443', 'meshlink_api_key': 't', 'meshlink_validate_certs': False,
      'meshlink_ca_cert': '/ca.pem', 'meshlink_request_timeout': 60},
     {}, {'host': 'https://10.0.0.1:6443', 'api_key': 't', 'validate_certs': False, 'ca_cert': '/ca.pem',
          'request_timeout': 60}),
    ('every host variable', {}, {v: 'x-%s' % o for o, v in HOST_VARIABLES.items()}, {},
     {o: 'x-%s' % o for o in HOST_VARIABLES}),
    ('empty values are not set', {}, {'meshlink_context': 'c1', 'meshlink_proxy': '', 'meshlink_impersonate_groups': [],
                                      'meshlink_username': None}, {}, {'context': 'c1'}),
    ('task options win whole', {'context': 'task-ctx'}, {'meshlink_context': 'c1', 'meshlink_api_key': 't'}, {}, {}),
    ('task naming by kubeconfig wins whole', {'kubeconfig': '/task/k'}, {'meshlink_context': 'c1'}, {}, {}),
    ('task naming by host wins whole', {'host': 'https://k:6443', 'api_key': 't'},
     {'meshlink_context': 'c1', 'meshlink_ca_cert': '/ca.pem'}, {}, {}),
    ('env names the cluster: host extras still apply', {},
     {'meshlink_validate_certs': False, 'meshlink_request_timeout': 5},
     {'K8S_AUTH_HOST': 'https://awx.example:6443'}, {'validate_certs': False, 'request_timeout': 5}),
    ('env kubeconfig names the cluster', {}, {}, {'K8S_AUTH_KUBECONFIG': '/awx/kubeconfig'}, {}),
    ('env context names the cluster', {}, {}, {'K8S_AUTH_CONTEXT': 'awx'}, {}),
    ('host naming wins over env', {}, {'meshlink_context': 'c1'}, {'K8S_AUTH_HOST': 'https://awx'}, {'context': 'c1'}),
]


@pytest.mark.parametrize('case, task_args, variables, environ, expected', CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
def test_host_connection(case, task_args, variables, environ, expected):
    assert host_connection(task_args, lookup_of(variables), environ, 'cluster1') == expected


@pytest.mark.parametrize('variables, environ', [
    ({}, {}),
    ({'meshlink_api_key': 't', 'meshlink_validate_certs': False}, {}),        # credentials, but which cluster?
    ({}, {'K8S_AUTH_API_KEY': 't', 'K8S_AUTH_VERIFY_SSL': 'no'}),          # the same from AWX
    ({}, {'K8S_AUTH_HOST': ''}),
    ({'meshlink_context': ''}, {'KUBECONFIG': '/home/u/.kube/config'}),    # the current context is never used
])
def test_no_cluster_named_fails_naming_the_variables(variables, environ):
    with pytest.raises(ConnectionMissing) as caught:
        host_connection({}, lookup_of(variables), environ, 'cluster1')
    message = str(caught.value)
    assert message.startswith('Host cluster1 names no cluster to connect to: set meshlink_context')
    assert 'meshlink_kubeconfig' in message and 'meshlink_host' in message and 'K8S_AUTH_HOST' in message


@pytest.mark.parametrize('task_args', [{'validate_certs': False}, {'request_timeout': 5}, {'ca_cert': '/ca.pem'}])
def test_a_task_option_that_names_no_cluster_never_leads_to_the_current_context(task_args):
    # A task (or module_defaults) with validate_certs only, on a host with meshlink_context: the
    # module must still get a cluster named, else it falls through to the kubeconfig's current
    # context - which the module docstring rules out.
    try:
        added = host_connection(task_args, lookup_of({'meshlink_context': 'c1'}), {}, 'cluster1')
    except ConnectionMissing:
        return
    merged = dict(task_args, **added)
    assert any(merged.get(option) for option in ('kubeconfig', 'context', 'host')), merged


def test_empty_task_options_do_not_count_as_given():
    assert host_connection({'context': '', 'kubeconfig': None, 'impersonate_groups': []},
                           lookup_of({'meshlink_context': 'c1'}), {}, 'cluster1') == {'context': 'c1'}


def test_host_variables_cover_the_connection_options():
    # Every option of the modules' connection spec has a host variable, except the two that are
    # no per-host setting: persist_config (writes the kubeconfig back) and proxy_headers.
    assert set(HOST_VARIABLES) == set(CONNECTION_OPTIONS) - {'persist_config', 'proxy_headers'}
    assert set(CONNECTION_OPTIONS) == set(connection_argument_spec())
    assert {o: v for o, v in HOST_VARIABLES.items() if v != 'meshlink_' + o} == {}


# -- source_gateways ---------------------------------------------------------------------------

def plan():
    services = [
        seed_service(),                                                               # from cluster2
        seed_service(name='orders', cluster='cluster2', consumers=['cluster1']),     # cluster2 again
        seed_service(name='users', cluster='cluster3', consumers=['cluster1']),
        seed_service(name='pay', cluster='cluster4', consumers=['cluster1']),
    ]
    return build_plan(services, ['cluster1', 'cluster2', 'cluster3', 'cluster4'])


def inspection(address, port=15443):
    return {'gateway': {'address': address, 'port': port, 'kind': 'ip', 'source': '...'}, 'state': {}}


def test_source_gateways():
    inspections = {'cluster2': inspection('192.0.2.10'), 'cluster3': inspection('192.0.2.13', 31443),
                   'cluster4': inspection('192.0.2.14')}
    overrides = {'cluster3': {'address': 'gw3.example.com', 'port': 443}}
    asked = []

    def inspection_of(host):
        asked.append(host)
        return inspections.get(host)

    assert source_gateways(plan(), 'cluster1', inspection_of, overrides) == {
        'cluster2': {'address': '192.0.2.10', 'port': 15443},
        'cluster3': {'address': 'gw3.example.com', 'port': 443},         # the override first
        'cluster4': {'address': '192.0.2.14', 'port': 15443},
    }
    assert asked == ['cluster2', 'cluster4']                               # each source once, overrides not read


@pytest.mark.parametrize('inspections', [
    {},                                                                    # not in this run
    {'cluster2': None},
    {'cluster2': {'failed': True, 'msg': 'unreachable'}},                 # no gateway found
    {'cluster2': {'gateway': None}},
    {'cluster2': {'gateway': {'address': '', 'port': 15443}}},
    {'cluster2': 'not a result'},
])
def test_a_missing_gateway_stays_missing(inspections):
    single = build_plan([seed_service()], ['cluster1', 'cluster2'])
    assert source_gateways(single, 'cluster1', inspections.get, {}) == {}


@pytest.mark.parametrize('overrides', [None, {}, {'cluster2': {}}, {'cluster2': None}, {'cluster9': {'address': 'x'}}])
def test_empty_overrides_fall_back_to_the_inspection(overrides):
    single = build_plan([seed_service()], ['cluster1', 'cluster2'])
    assert source_gateways(single, 'cluster1', {'cluster2': inspection('192.0.2.10')}.get, overrides) == \
        {'cluster2': {'address': '192.0.2.10', 'port': 15443}}


def test_a_cluster_that_consumes_nothing_needs_no_gateway():
    assert source_gateways(plan(), 'cluster2', lambda host: pytest.fail('read %s' % host), {}) == {}
    assert source_gateways(plan(), 'cluster9', lambda host: pytest.fail('read %s' % host), {}) == {}


# -- duplicate_identities ----------------------------------------------------------------------

@pytest.mark.parametrize('identities, problems', [
    ({'c1': {'kube_system_uid': 'a'}, 'c2': {'kube_system_uid': 'b'}}, []),
    ({'c1': {'kube_system_uid': 'a', 'server': 'https://k:6443'}, 'c2': {'kube_system_uid': 'a'}},
     ['inventory hosts c1 and c2 reach the same cluster (?, kube-system uid a): each host must be its own cluster - '
      'fix their meshlink_context/meshlink_host']),
    ({'c2': {'kube_system_uid': 'a', 'server': 'https://k:6443'}, 'c1': {'kube_system_uid': 'a',
                                                                         'server': 'https://k:6443'}},
     ['inventory hosts c1 and c2 reach the same cluster (https://k:6443, kube-system uid a): each host must be its own '
      'cluster - fix their meshlink_context/meshlink_host']),
    ({'c1': {'kube_system_uid': 'a'}, 'c2': {'kube_system_uid': 'a'}, 'c3': {'kube_system_uid': 'a'}}, 2),
    ({'c1': None, 'c2': {}, 'c3': {'kube_system_uid': ''}, 'c4': {'kube_system_uid': None}}, []),
])
def test_duplicate_identities(identities, problems):
    found = duplicate_identities(identities)
    if isinstance(problems, int):
        assert len(found) == problems and all(p.startswith('inventory hosts c1 and ') for p in found)
    else:
        assert found == problems


# -- the reconcile action: gateways from the other hosts' inspections ---------------------------

class _Templar:
    def template(self, value):
        return value


def _reconcile_action():
    from ansible_collections.meshlink.multicluster.plugins.action.cluster_reconcile import ActionModule
    action = ActionModule.__new__(ActionModule)
    action._templar = _Templar()
    return action


def test_reconcile_action_adds_the_gateways_of_the_run():
    single = build_plan([seed_service()], ['cluster1', 'cluster2'])
    task_vars = {'hostvars': {'cluster2': {'meshlink_inspection': inspection('192.0.2.10')}, 'cluster1': {}}}
    action = _reconcile_action()
    assert action.extra_args({'plan': single, 'cluster': 'cluster1'}, task_vars) == \
        {'gateways': {'cluster2': {'address': '192.0.2.10', 'port': 15443}}}
    task_vars['meshlink_gateway_overrides'] = {'cluster2': {'address': 'gw.example.com', 'port': 443}}
    assert action.extra_args({'plan': single, 'cluster': 'cluster1'}, task_vars) == \
        {'gateways': {'cluster2': {'address': 'gw.example.com', 'port': 443}}}
    # Gateways given in the task are the task's; a plan that is no mapping is the module's to refuse.
    assert action.extra_args({'plan': single, 'cluster': 'cluster1', 'gateways': {}}, task_vars) == {}
    assert action.extra_args({'plan': 'x', 'cluster': 'cluster1'}, task_vars) == {}


# -- override_problems: a bad meshlink_gateway_overrides entry stops the run at the inspection --

@pytest.mark.parametrize('overrides, problems', [
    (None, []),
    ({}, []),
    ({'cluster2': {}}, []),                                                # empty: the inspection's gateway
    ({'cluster9': {'address': 'https://x'}}, []),                          # a source cluster1 does not consume
    ({'cluster2': {'address': 'gw.example.com', 'port': 443}}, []),
    ({'cluster2': {'address': '192.0.2.10', 'port': '15443'}}, []),
    ({'cluster2': {'address': '192.0.2.10\n', 'port': 15443}}, ['meshlink_gateway_overrides.cluster2.address']),
    ({'cluster2': {'address': ' 192.0.2.10', 'port': 15443}}, ['meshlink_gateway_overrides.cluster2.address']),
    ({'cluster2': {'address': 'https://192.0.2.10:15443', 'port': 15443}},
     ['meshlink_gateway_overrides.cluster2.address']),
    ({'cluster2': {'address': '192.0.2.10:15443', 'port': 15443}}, ['meshlink_gateway_overrides.cluster2.address']),
    ({'cluster2': {'address': '', 'port': 15443}}, ['meshlink_gateway_overrides.cluster2.address']),
    ({'cluster2': {'address': '192.0.2.10', 'port': '15443x'}}, ['meshlink_gateway_overrides.cluster2.port']),
    ({'cluster2': {'address': '192.0.2.10', 'port': True}}, ['meshlink_gateway_overrides.cluster2.port']),
    ({'cluster2': {'address': '192.0.2.10'}}, ['meshlink_gateway_overrides.cluster2.port']),
    ({'cluster2': {'address': 'https://x', 'port': 0}},
     ['meshlink_gateway_overrides.cluster2.address', 'meshlink_gateway_overrides.cluster2.port']),
])
def test_override_problems(overrides, problems):
    from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import override_problems
    single = build_plan([seed_service()], ['cluster1', 'cluster2'])
    found = override_problems(single, 'cluster1', overrides)
    assert [p.split(':')[0] for p in found] == problems, found
    assert override_problems(single, 'cluster2', overrides) == []          # cluster2 consumes nothing


# -- registered: another task's result read as stored, not templated --------------------------

class _HostVars(dict):
    """What the action gets as ``hostvars``: ``raw_get`` gives a host's variables untemplated."""

    def raw_get(self, host):
        return self[host]


def _not_templated():
    raise AssertionError('a registered result was templated')


def test_a_registered_result_is_read_as_stored():
    inspection = {'gateway': {'address': '192.0.2.10', 'port': 15443}, 'state': {'objects': []}}
    plan = {'mesh': 'blue'}
    task_vars = {'inventory_hostname': 'cluster1', 'meshlink_plan': plan,
                 'hostvars': _HostVars(cluster1={'meshlink_plan': plan}, cluster2={'meshlink_inspection': inspection})}
    assert registered(task_vars, 'cluster1', 'meshlink_plan', _not_templated) is plan
    assert registered(task_vars, 'cluster2', 'meshlink_inspection', _not_templated) is inspection
    assert registered(task_vars, 'cluster2', 'meshlink_plan', _not_templated) is None
    assert registered(task_vars, 'cluster1', 'meshlink_inspection', _not_templated) is None


@pytest.mark.parametrize('task_vars', [
    {'inventory_hostname': 'cluster1', 'hostvars': _HostVars(cluster2={'meshlink_inspection': '{{ x }}'})},
    {'inventory_hostname': 'cluster1', 'hostvars': {'cluster2': {'meshlink_inspection': {'gateway': None}}}},
    {'inventory_hostname': 'cluster1', 'hostvars': _HostVars(cluster1={})},
], ids=['not-a-mapping', 'no-raw-get', 'unknown-host'])
def test_what_is_no_registered_result_is_templated(task_vars):
    assert registered(task_vars, 'cluster2', 'meshlink_inspection', lambda: 'templated') == 'templated'


def test_the_reconcile_action_reads_the_other_inspections_without_templating_them():
    single = build_plan([seed_service()], ['cluster1', 'cluster2'])
    task_vars = {'inventory_hostname': 'cluster1',
                 'hostvars': _HostVars(cluster1={}, cluster2={'meshlink_inspection': inspection('192.0.2.10')})}
    action = _reconcile_action()
    action._templar = type('Refusing', (), {'template': staticmethod(lambda value: _not_templated())})()
    assert action.extra_args({'plan': single, 'cluster': 'cluster1'}, task_vars) == \
        {'gateways': {'cluster2': {'address': '192.0.2.10', 'port': 15443}}}


@pytest.mark.parametrize('name, options', [
    ('cluster_access', {'plan'}), ('cluster_inspect', {'plan'}), ('cluster_teardown', {'plan'}),
    ('cluster_verify', {'plan'}), ('cluster_reconcile', {'plan', 'inspection'}),
    ('cluster_remote_secrets', {'plan', 'inspection'}),
])
def test_the_options_the_role_leaves_out_are_taken_as_registered(name, options):
    import importlib  # pylint: disable=import-outside-toplevel
    action = importlib.import_module('ansible_collections.meshlink.multicluster.plugins.action.%s' % name).ActionModule
    assert set(action.REGISTERED_DEFAULTS) == options
    assert action.REGISTERED_DEFAULTS['plan'] == ('meshlink_plan',)
    if 'inspection' in options:
        assert action.REGISTERED_DEFAULTS['inspection'] == ('meshlink_inspection', 'state')
