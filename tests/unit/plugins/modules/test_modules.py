# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The modules as Ansible runs them: main() with module arguments, results and failures.

``exit_json``/``fail_json`` are replaced by exceptions carrying the result. The cluster is
either a FakeCluster (to see what a module does) or a real client on a kubeconfig whose every
HTTP request fails the test (to prove bad input made no API call at all).
"""

from __future__ import annotations

import json

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.meshlink.multicluster.plugins.module_utils import _client, _module
from ansible_collections.meshlink.multicluster.plugins.modules import (
    connectivity_check,
    gateway_address,
    mesh_plan,
    preflight,
    remote_services,
    vip_allocate,
)
from meshlink_fakes import FakeCluster, seed_service


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    warnings = []

    def exit_json(self, **result):
        result['warnings'] = list(warnings)
        raise ExitJson(result)

    def fail_json(self, msg, **result):
        result['msg'] = msg
        result['warnings'] = list(warnings)
        raise FailJson(result)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warnings.append(text))
    for name in [n for n in __import__('os').environ if n.startswith('K8S_AUTH_')]:
        monkeypatch.delenv(name)


@pytest.fixture
def no_http(monkeypatch, tmp_path):
    """A kubeconfig for a real client whose HTTP layer fails the test when used."""
    path = tmp_path / 'kubeconfig'
    path.write_text(yaml.safe_dump({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'cluster1',
        'clusters': [{'name': 'c', 'cluster': {'server': 'https://127.0.0.1:1'}}],
        'users': [{'name': 'u', 'user': {'token': 't'}}],
        'contexts': [{'name': 'cluster1', 'context': {'cluster': 'c', 'user': 'u'}}]}))
    calls = []

    def send(self, method, path, *args, **kwargs):
        calls.append((method, path))
        raise AssertionError('API call %s %s although the input was invalid' % (method, path))

    monkeypatch.setattr(_client.Cluster, '_send', send)
    return {'kubeconfig': str(path), 'calls': calls}


class ConnectedFake(FakeCluster):
    """A FakeCluster with what ``run_with_cluster`` reads of a real Cluster besides the verbs."""

    server = 'https://fake.example:6443'
    source = 'task'
    verify_ssl = True
    connection_warnings: list = []

    def identity(self):
        self._record('read', '/api/v1/namespaces/kube-system')
        return {'server': self.server, 'kube_system_uid': 'uid-of-fake'}

    def known_identity(self):
        return {'server': self.server, 'kube_system_uid': None}

    def connection_facts(self):
        return {'context': self.context, 'server': self.server, 'source': self.source}


@pytest.fixture
def fake_cluster(monkeypatch):
    """Every module gets this FakeCluster; ``dry_run`` follows the module's check mode, the
    connection (source, TLS verification, warnings) follows the module's options."""
    holder = {'cluster': ConnectedFake(), 'check_mode': None}

    def from_params(params, check_mode=False):
        options, source, notes = _client.resolve_connection(params)
        holder['check_mode'] = check_mode
        holder['cluster'].dry_run = check_mode
        holder['cluster'].source = source
        holder['cluster'].connection_warnings = notes
        holder['cluster'].verify_ssl = options['validate_certs'] is not False
        return holder['cluster']

    monkeypatch.setattr(_module, 'cluster_from_params', from_params)
    return holder


def run(module, args, expect=ExitJson):
    with patch_module_args(args):
        with pytest.raises((ExitJson, FailJson)) as caught:
            module.main()
    assert isinstance(caught.value, expect), caught.value.args[0]
    return caught.value.args[0]


# -- mesh_plan -------------------------------------------------------------------------------

def test_mesh_plan_returns_the_plan():
    result = run(mesh_plan, {'services': [seed_service()], 'clusters': ['cluster1', 'cluster2']})
    assert result['changed'] is False
    assert result['services'][0]['host'] == 'httpbin.bar.global'
    assert result['clusters']['cluster1']['consumer_namespaces'] == ['foo']


def test_mesh_plan_errors_name_the_field():
    bad = seed_service(ports=[{'name': 'http1', 'number': 70000, 'protocol': 'http'}], consumers=['cluster9'])
    result = run(mesh_plan, {'services': [bad], 'clusters': ['cluster1', 'cluster2']}, FailJson)
    assert 'services[0].ports[0].number: 70000 is not a port (1-65535)' in result['msg']
    assert [e.split(':')[0] for e in result['errors']] == ['services[0].consumers[0].cluster',
                                                           'services[0].ports[0].number']


def test_mesh_plan_in_check_mode_is_the_same():
    args = {'services': [seed_service()], 'clusters': ['cluster1', 'cluster2']}
    assert run(mesh_plan, dict(args, _ansible_check_mode=True)) == run(mesh_plan, args)


# -- gateway_address -------------------------------------------------------------------------

def test_gateway_override_needs_no_cluster(monkeypatch):
    monkeypatch.setattr(_module, 'cluster_from_params', lambda *a, **k: pytest.fail('client built'))
    result = run(gateway_address, {'address': 'gw.example.org', 'address_port': 443})
    assert (result['address'], result['port'], result['kind'], result['changed']) == ('gw.example.org', 443,
                                                                                      'override', False)


def test_gateway_bad_option_fails_before_the_client(monkeypatch):
    monkeypatch.setattr(_module, 'cluster_from_params', lambda *a, **k: pytest.fail('client built'))
    result = run(gateway_address, {'node_address_types': ['PublicIP']}, FailJson)
    assert result['msg'].startswith("node_address_types[0]: 'PublicIP' is not a node address type")


def test_gateway_from_the_cluster(fake_cluster):
    fake_cluster['cluster'].put('services', {
        'metadata': {'name': 'istio-ingressgateway', 'namespace': 'istio-system',
                     'labels': {'app': 'istio-ingressgateway'}},
        'spec': {'type': 'LoadBalancer', 'ports': [{'name': 'tls', 'port': 15443, 'nodePort': 31550}]},
        'status': {'loadBalancer': {'ingress': [{'hostname': 'gateway.cluster2.lab.meshlink.test'}]}}})
    result = run(gateway_address, {'context': 'cluster2', '_ansible_check_mode': True})
    assert (result['address'], result['port'], result['kind']) == ('gateway.cluster2.lab.meshlink.test', 15443,
                                                                   'hostname')
    assert fake_cluster['cluster'].writes() == []


# -- vip_allocate ----------------------------------------------------------------------------

def test_vip_allocate_bad_host_makes_no_api_call(no_http):
    result = run(vip_allocate, {'kubeconfig': no_http['kubeconfig'], 'hosts': ['httpbin.bar']}, FailJson)
    assert result['msg'].startswith("hosts[0]: 'httpbin.bar' is not <name>.<namespace>.global")
    assert no_http['calls'] == []


def test_vip_allocate_bad_pool_makes_no_api_call(no_http):
    result = run(vip_allocate, {'kubeconfig': no_http['kubeconfig'], 'hosts': ['httpbin.bar.global'],
                                'pool': '240.0.0.0/33'}, FailJson)
    assert result['msg'].startswith("pool: '240.0.0.0/33' is not an IPv4 CIDR")
    assert no_http['calls'] == []


def test_vip_allocate_check_mode_reports_without_writing(fake_cluster):
    result = run(vip_allocate, {'hosts': ['httpbin.bar.global'], '_ansible_check_mode': True})
    assert result['changed'] and result['allocated'] == ['httpbin.bar.global'] and result['pool'] == '240.0.0.0/16'
    assert fake_cluster['check_mode'] is True and fake_cluster['cluster'].writes() == []
    assert any('istiod version is unknown' in w for w in result['warnings'])


def test_vip_allocate_allocates_then_is_unchanged(fake_cluster):
    first = run(vip_allocate, {'hosts': ['httpbin.bar.global']})
    second = run(vip_allocate, {'hosts': ['httpbin.bar.global'], '_ansible_diff': True})
    assert first['changed'] and not second['changed'] and first['vips'] == second['vips']
    assert second['diff']['before'] == second['diff']['after'] == first['vips']


# -- remote_services -------------------------------------------------------------------------

def test_remote_services_bad_service_makes_no_api_call(no_http):
    result = run(remote_services, {'kubeconfig': no_http['kubeconfig'], 'role': 'consumer', 'cluster': 'cluster1',
                                   'services': [seed_service(mode='mesh')]}, FailJson)
    assert result['msg'] == "services[0].mode: 'mesh' is not a mode - use sidecar or egress_gateway"
    assert no_http['calls'] == []


def test_remote_services_missing_gateway_makes_no_api_call(no_http):
    result = run(remote_services, {'kubeconfig': no_http['kubeconfig'], 'role': 'consumer', 'cluster': 'cluster1',
                                   'services': [seed_service()], 'vips': {'httpbin.bar.global': '240.0.0.1'}},
                 FailJson)
    assert result['msg'].startswith('gateways.cluster2: missing')
    assert no_http['calls'] == []


def test_remote_services_bad_role_is_rejected_by_the_spec(no_http):
    result = run(remote_services, {'kubeconfig': no_http['kubeconfig'], 'role': 'client', 'cluster': 'cluster1',
                                   'services': []}, FailJson)
    assert 'role' in result['msg'] and 'consumer, source' in result['msg']


def test_remote_services_check_mode_is_a_dry_run(fake_cluster):
    args = {'role': 'consumer', 'cluster': 'cluster1', 'services': [seed_service()],
            'gateways': {'cluster2': {'address': '192.0.2.10', 'port': 15443}},
            'vips': {'httpbin.bar.global': '240.0.0.1'}, '_ansible_check_mode': True}
    result = run(remote_services, args)
    assert result['changed'] and result['objects'][0]['action'] == 'would_create'
    assert fake_cluster['cluster'].objects('serviceentries') == []


def test_remote_services_foreign_object_fails_the_task(fake_cluster):
    fake_cluster['cluster'].put('serviceentries', {'metadata': {'name': 'httpbin-bar', 'namespace': 'foo'},
                                                   'spec': {}})
    result = run(remote_services, {'role': 'consumer', 'cluster': 'cluster1', 'services': [seed_service()],
                                   'gateways': {'cluster2': {'address': '192.0.2.10', 'port': 15443}},
                                   'vips': {'httpbin.bar.global': '240.0.0.1'}}, FailJson)
    assert 'Nothing was changed in fake: ServiceEntry foo/httpbin-bar exists and was not made by meshlink' \
        in result['msg']


# -- connectivity_check ----------------------------------------------------------------------

def test_connectivity_pod_and_selector_are_exclusive(no_http):
    result = run(connectivity_check, {'kubeconfig': no_http['kubeconfig'], 'namespace': 'foo', 'pod': 'sleep',
                                      'label_selector': 'app=sleep', 'url': 'http://x'}, FailJson)
    assert 'mutually exclusive' in result['msg'] and 'pod|label_selector' in result['msg']
    assert no_http['calls'] == []


def test_connectivity_bad_numbers_make_no_api_call(no_http):
    result = run(connectivity_check, {'kubeconfig': no_http['kubeconfig'], 'namespace': 'foo', 'pod': 'sleep',
                                      'url': 'http://x', 'timeout': 0, 'expected_status': [42]}, FailJson)
    assert 'timeout: must be more than 0 seconds' in result['msg'] and 'expected_status[0]: 42' in result['msg']
    assert no_http['calls'] == []


def test_connectivity_failure_returns_the_results(fake_cluster):
    result = run(connectivity_check, {'namespace': 'foo', 'label_selector': 'app=sleep', 'url': 'http://x',
                                      'retries': 0, 'timeout': 5, '_ansible_check_mode': True}, FailJson)
    assert result['changed'] is False and result['results'][0]['ok'] is False
    assert 'No pod in namespace foo matches the selector app=sleep' in result['msg']


# -- preflight -------------------------------------------------------------------------------

def test_preflight_unknown_check_is_rejected_by_the_spec(no_http):
    result = run(preflight, {'kubeconfig': no_http['kubeconfig'], 'cluster': 'cluster1', 'checks': ['dns']}, FailJson)
    assert 'checks' in result['msg'] and 'global_dns' in result['msg']
    assert no_http['calls'] == []


def test_preflight_fails_with_every_failing_check_and_keeps_the_report(fake_cluster):
    fake_cluster['cluster'].served = {}
    result = run(preflight, {'cluster': 'cluster1', 'services': [seed_service()]}, FailJson)
    assert result['msg'].startswith('Preflight of cluster1 (context fake):')
    assert '[networking_api]' in result['msg'] and '[global_dns]' in result['msg']
    assert result['summary']['fail'] >= 2 and result['checks']


def test_preflight_fail_on_never_reports(fake_cluster):
    fake_cluster['cluster'].served = {}
    result = run(preflight, {'cluster': 'cluster1', 'fail_on': 'never'})
    assert result['changed'] is False and result['summary']['fail'] >= 1


# -- shared behaviour ------------------------------------------------------------------------

def test_missing_kubernetes_library_is_reported(monkeypatch):
    monkeypatch.setattr(_module, 'KUBERNETES_IMPORT_ERROR', ImportError('No module named kubernetes'))
    result = run(preflight, {'cluster': 'cluster1'}, FailJson)
    assert 'kubernetes' in result['msg'] and 'Python library' in result['msg'].replace('python', 'Python')


def test_client_errors_fail_the_task(tmp_path):
    result = run(preflight, {'cluster': 'cluster1', 'kubeconfig': str(tmp_path / 'missing')}, FailJson)
    assert result['msg'] == 'Could not create API client: kubeconfig %s does not exist' % (tmp_path / 'missing')


def test_tls_off_is_a_warning(fake_cluster):
    result = run(gateway_address, {'validate_certs': False, 'address': 'gw', 'port': 'tls', 'service': 'gw'},
                 FailJson)
    assert result['msg'] == 'Service istio-system/gw does not exist; set service (or selector) to the ingress gateway ' \
                            'Service'
    assert result['warnings'] == ['TLS certificate verification of the API server is off (validate_certs=false)']


# -- connection and diff (every module through run_with_cluster) ---------------------------------

GATEWAY_SERVICE = {
    'metadata': {'name': 'istio-ingressgateway', 'namespace': 'istio-system', 'labels': {'app': 'istio-ingressgateway'}},
    'spec': {'type': 'LoadBalancer', 'ports': [{'name': 'tls', 'port': 15443, 'nodePort': 31550}]},
    'status': {'loadBalancer': {'ingress': [{'ip': '192.0.2.10'}]}}}


def test_diff_only_in_diff_mode(fake_cluster):
    without = run(vip_allocate, {'hosts': ['httpbin.bar.global']})
    assert 'diff' not in without
    fake_cluster['cluster'] = ConnectedFake()
    with_diff = run(vip_allocate, {'hosts': ['httpbin.bar.global'], '_ansible_diff': True})
    assert with_diff['diff']['after'] == with_diff['vips']


def test_per_item_diffs_only_in_diff_mode():
    result = {'diff': [1], 'objects': [{'name': 'a', 'diff': {'before': 1}}, 'text'],
              'clusters': {'c': {'diff': 2, 'x': 1}}, 'changed': True}
    assert _module.without_diff(result) == {'objects': [{'name': 'a'}, 'text'], 'clusters': {'c': {'x': 1}},
                                            'changed': True}
    assert result['objects'][0]['diff'] == {'before': 1}  # the input is not changed


def test_every_result_says_which_cluster_and_connection(fake_cluster):
    fake_cluster['cluster'].put('services', GATEWAY_SERVICE)
    result = run(gateway_address, {'context': 'cluster2'})
    assert result['cluster_identity'] == {'server': 'https://fake.example:6443', 'kube_system_uid': 'uid-of-fake'}
    assert result['connection'] == {'context': 'fake', 'server': 'https://fake.example:6443', 'source': 'task'}


def test_a_failed_check_says_which_cluster(fake_cluster):
    result = run(connectivity_check, {'namespace': 'foo', 'label_selector': 'app=sleep', 'url': 'http://x',
                                      'retries': 0, 'timeout': 5}, FailJson)
    assert result['cluster_identity'] == {'server': 'https://fake.example:6443', 'kube_system_uid': 'uid-of-fake'}
    assert result['connection']['source'] == 'default'


def test_an_api_error_says_which_cluster_without_another_request(fake_cluster):
    fake_cluster['cluster'].fail_next['list'] = _client.ApiError('Could not list Deployment in namespace '
                                                                 'istio-system in context fake: boom')
    result = run(vip_allocate, {'hosts': ['httpbin.bar.global'], 'context': 'cluster1'}, FailJson)
    assert result['msg'].endswith(': boom')
    assert result['cluster_identity'] == {'server': 'https://fake.example:6443', 'kube_system_uid': None}
    assert result['connection']['server'] == 'https://fake.example:6443'
    assert ('read', '/api/v1/namespaces/kube-system') not in fake_cluster['cluster'].calls


def test_the_task_context_wins_over_an_awx_credential(fake_cluster, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://other-cluster:6443')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'secret-token-of-other-cluster')
    fake_cluster['cluster'].put('services', GATEWAY_SERVICE)
    result = run(gateway_address, {'context': 'cluster2'})
    assert result['connection']['source'] == 'task'
    assert any('K8S_AUTH_HOST, K8S_AUTH_API_KEY' in w and 'secret-token' not in w for w in result['warnings'])


def test_env_credential_applies_when_the_task_names_no_cluster(fake_cluster, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://other-cluster:6443')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'token')
    fake_cluster['cluster'].put('services', GATEWAY_SERVICE)
    result = run(gateway_address, {})
    assert result['connection']['source'] == 'environment' and not result['warnings']


def test_env_verify_ssl_false_is_ignored_when_the_task_names_its_cluster(fake_cluster, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'false')
    fake_cluster['cluster'].put('services', GATEWAY_SERVICE)
    result = run(gateway_address, {'context': 'cluster2'})
    assert 'TLS certificate verification of the API server is off (validate_certs=false)' not in result['warnings']
    result = run(gateway_address, {})
    assert 'TLS certificate verification of the API server is off (validate_certs=false)' in result['warnings']


@pytest.fixture
def canned_http(monkeypatch, tmp_path):
    """A real client (kubeconfig with two contexts) whose HTTP layer answers from a table and
    records which server and credentials each request used."""
    path = tmp_path / 'kubeconfig'
    path.write_text(yaml.safe_dump({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'cluster1',
        'clusters': [{'name': 'c1', 'cluster': {'server': 'https://127.0.0.1:16443'}},
                     {'name': 'c2', 'cluster': {'server': 'https://127.0.0.1:26443'}}],
        'users': [{'name': 'u', 'user': {'token': 'kubeconfig-token'}}],
        'contexts': [{'name': 'cluster1', 'context': {'cluster': 'c1', 'user': 'u'}},
                     {'name': 'cluster2', 'context': {'cluster': 'c2', 'user': 'u'}}]}))
    seen = []
    answers = {'/api/v1/namespaces/kube-system': {'metadata': {'uid': 'uid-cluster2'}},
               '/api/v1/namespaces/istio-system/services': {'items': [GATEWAY_SERVICE]}}

    def send(self, method, api_path, query, headers, body):
        configuration = self.api_client.configuration
        seen.append((method, configuration.host + api_path, configuration.auth_settings()['BearerToken']['value']))
        return 200, json.dumps(answers[api_path]).encode(), []

    monkeypatch.setattr(_client.Cluster, '_send', send)
    return {'kubeconfig': str(path), 'seen': seen}


def test_an_awx_credential_of_another_cluster_never_gets_the_requests(canned_http, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://other-cluster:6443')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'secret-token-of-other-cluster')
    monkeypatch.setenv('K8S_AUTH_CA_CERT', '/nonexistent/ca.crt')
    result = run(gateway_address, {'kubeconfig': canned_http['kubeconfig'], 'context': 'cluster2'})
    assert result['address'] == '192.0.2.10'
    assert {(url.split('/api')[0], auth) for _m, url, auth in canned_http['seen']} == {
        ('https://127.0.0.1:26443', 'Bearer kubeconfig-token')}
    assert result['cluster_identity'] == {'server': 'https://127.0.0.1:26443', 'kube_system_uid': 'uid-cluster2'}
    assert result['connection'] == {'context': 'cluster2', 'server': 'https://127.0.0.1:26443', 'source': 'task'}


def test_the_current_context_when_nothing_is_given(canned_http, monkeypatch):
    monkeypatch.setenv('KUBECONFIG', canned_http['kubeconfig'])
    result = run(gateway_address, {})
    assert result['connection'] == {'context': 'cluster1', 'server': 'https://127.0.0.1:16443', 'source': 'default'}


def test_impersonation_is_refused_by_connectivity_check_before_any_request(canned_http):
    result = run(connectivity_check, {'kubeconfig': canned_http['kubeconfig'], 'namespace': 'foo', 'pod': 'sleep',
                                      'url': 'http://httpbin.bar.global:8000/ip', 'impersonate_user': 'alice'},
                 FailJson)
    assert result['msg'].startswith('impersonate_user, impersonate_groups: connectivity_check cannot impersonate')
    assert canned_http['seen'] == []


@pytest.mark.parametrize('args, text', [
    ({'address': 'https://gw.example.com', 'address_port': 443}, "address: 'https://gw.example.com' is not an IP"),
    ({'address': 'gw.example.com\n', 'address_port': 443}, "address: 'gw.example.com\\n' is not an IP"),
    ({'address': 'gw.example.com', 'address_port': True}, 'address_port: True is not a port'),
    ({'address': 'gw.example.com', 'address_port': '٤٤٣'}, "address_port: '٤٤٣' is not a port"),
    ({'address': 'gw.example.com', 'address_port': 443.0}, 'address_port: 443.0 is not a port'),
    ({'port': ' 15443'}, "port: ' 15443' is not a port number"),
])
def test_gateway_bad_override_fails_before_the_client(monkeypatch, args, text):
    monkeypatch.setattr(_module, 'cluster_from_params', lambda *a, **k: pytest.fail('client built'))
    result = run(gateway_address, args, FailJson)
    assert result['msg'].startswith(text), result['msg']


def test_gateway_override_address_port_as_text(monkeypatch):
    monkeypatch.setattr(_module, 'cluster_from_params', lambda *a, **k: pytest.fail('client built'))
    result = run(gateway_address, {'address': '192.0.2.99', 'address_port': '443'})
    assert (result['address'], result['port']) == ('192.0.2.99', 443)


def test_connectivity_url_starting_with_a_dash_makes_no_api_call(no_http):
    result = run(connectivity_check, {'kubeconfig': no_http['kubeconfig'], 'namespace': 'foo', 'pod': 'sleep',
                                      'url': '-o/tmp/pwned'}, FailJson)
    assert result['msg'].startswith("url: '-o/tmp/pwned' is not an http(s) URL")
    assert no_http['calls'] == []
