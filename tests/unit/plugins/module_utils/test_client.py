# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The client: option handling, client construction order, and the HTTP behaviour of
``Cluster`` against a local fake API server (the one place a fake at the HTTP layer is needed:
the content type, query and error parsing are what the real server sees)."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import (
    CONNECTION_OPTIONS,
    Cluster,
    ObjectRef,
    apply_conflicts,
    build_api_client,
    cluster_from_params,
    connection_argument_spec,
    connection_problems,
    connection_source,
    force_conflicts_argument_spec,
    resolve_connection,
    group_path,
    newest_version,
    status_message,
    warning_texts,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, ApplyConflict, ClientError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import COLLECTION_VERSION

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_collection_version_matches_galaxy_yml():
    with open(os.path.join(REPO, 'galaxy.yml')) as handle:
        assert yaml.safe_load(handle)['version'] == COLLECTION_VERSION


@pytest.mark.parametrize('served, expected', [
    (['v1alpha3', 'v1beta1', 'v1'], 'v1'),
    (['v1alpha3', 'v1beta1'], 'v1beta1'),
    (['v1alpha3'], 'v1alpha3'),
    (['v1beta1', 'v1beta2', 'v1alpha9'], 'v1beta2'),
    (['v2alpha1', 'v1'], 'v1'),
    (['v2', 'v1'], 'v2'),
    (['v1alpha1', 'v1alpha3'], 'v1alpha3'),
    (['v1', 'foo'], 'v1'),
    ([], None),
])
def test_newest_served_version(served, expected):
    assert newest_version(served) == expected


def test_status_message_of_an_api_status():
    body = json.dumps({'kind': 'Status', 'status': 'Failure', 'message': 'serviceentries "x" is forbidden',
                       'reason': 'Forbidden', 'code': 403})
    assert status_message(body) == ('serviceentries "x" is forbidden', 'Forbidden')
    assert status_message('<html>bad gateway</html>') == (None, None)
    assert status_message(b'{"kind": "ServiceEntry"}') == (None, None)


def test_warning_headers():
    assert warning_texts(['299 - "networking.istio.io/v1alpha3 ServiceEntry is deprecated"', 'odd']) == [
        'networking.istio.io/v1alpha3 ServiceEntry is deprecated', 'odd']


@pytest.mark.parametrize('params, in_cluster, default_exists, expected', [
    ({'host': 'https://h', 'api_key': 't'}, True, True, 'explicit'),
    ({'host': 'https://h', 'client_cert': 'c', 'client_key': 'k'}, True, True, 'explicit'),
    ({'host': 'https://h', 'client_cert': 'c'}, False, True, 'kubeconfig'),
    ({'host': 'https://h', 'username': 'u', 'password': 'p'}, True, True, 'explicit'),
    ({'host': 'https://h', 'username': 'u'}, False, True, 'kubeconfig'),
    ({'kubeconfig': '/k'}, True, False, 'kubeconfig'),
    ({'context': 'cluster1'}, True, False, 'kubeconfig'),
    ({}, True, True, 'kubeconfig'),
    ({}, True, False, 'in_cluster'),
    ({'api_key': 't'}, True, False, 'in_cluster'),
    ({'host': 'https://h'}, False, False, 'host_only'),
])
def test_connection_source_order(params, in_cluster, default_exists, expected):
    assert connection_source(params, in_cluster=in_cluster, default_kubeconfig_exists=default_exists) == expected


def test_no_source_at_all_is_a_clear_error():
    with pytest.raises(ClientError) as caught:
        connection_source({}, in_cluster=False, default_kubeconfig_exists=False)
    assert str(caught.value).startswith('Could not create API client: no kubeconfig')


def _kubeconfig(tmp_path, insecure=False):
    config = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'cluster1',
        'clusters': [{'name': 'c1', 'cluster': {'server': 'https://127.0.0.1:16443',
                                                'insecure-skip-tls-verify': insecure}},
                     {'name': 'c2', 'cluster': {'server': 'https://127.0.0.1:26443'}}],
        'users': [{'name': 'u', 'user': {'token': 'kubeconfig-token'}}],
        'contexts': [{'name': 'cluster1', 'context': {'cluster': 'c1', 'user': 'u'}},
                     {'name': 'cluster2', 'context': {'cluster': 'c2', 'user': 'u'}}],
    }
    path = tmp_path / 'kubeconfig'
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_kubeconfig_context_is_used_without_touching_the_global_default(tmp_path):
    import kubernetes.client
    before = kubernetes.client.Configuration.get_default_copy().host
    client, context = build_api_client({'kubeconfig': _kubeconfig(tmp_path), 'context': 'cluster2'})
    assert context == 'cluster2'
    assert client.configuration.host == 'https://127.0.0.1:26443'
    assert client.configuration.auth_settings()['BearerToken']['value'] == 'Bearer kubeconfig-token'
    assert kubernetes.client.Configuration.get_default_copy().host == before


def test_current_context_is_the_display_name(tmp_path):
    _client, context = build_api_client({'kubeconfig': _kubeconfig(tmp_path)})
    assert context == 'cluster1'


@pytest.mark.parametrize('validate_certs, expected', [(None, True), (True, True), (False, False)])
def test_validate_certs_decides_over_an_insecure_kubeconfig(tmp_path, validate_certs, expected):
    client, _context = build_api_client({'kubeconfig': _kubeconfig(tmp_path, insecure=True),
                                         'validate_certs': validate_certs})
    assert client.configuration.verify_ssl is expected


def test_explicit_api_key_replaces_the_kubeconfig_user(tmp_path):
    client, _context = build_api_client({'kubeconfig': _kubeconfig(tmp_path), 'api_key': 'explicit',
                                         'host': 'https://10.0.0.1:6443/'})
    assert client.configuration.auth_settings()['BearerToken']['value'] == 'Bearer explicit'
    assert client.configuration.host == 'https://10.0.0.1:6443'


@pytest.mark.parametrize('params, text', [
    ({'kubeconfig': '/nonexistent/kubeconfig'}, 'kubeconfig /nonexistent/kubeconfig does not exist'),
    ({'host': 'https://h', 'api_key': 't', 'ca_cert': '/nonexistent/ca.crt'}, 'ca_cert /nonexistent/ca.crt does not exist'),
])
def test_client_errors(params, text):
    with pytest.raises(ClientError) as caught:
        build_api_client(params)
    assert text in str(caught.value) and str(caught.value).startswith('Could not create API client')


def test_unknown_context(tmp_path):
    with pytest.raises(ClientError) as caught:
        build_api_client({'kubeconfig': _kubeconfig(tmp_path), 'context': 'cluster9'})
    assert 'cluster9' in str(caught.value)


def test_the_spec_declares_no_environment_fallback_and_no_validate_certs_default():
    spec = connection_argument_spec()
    assert not [option for option, entry in spec.items() if 'fallback' in entry]
    assert 'default' not in spec['validate_certs']
    assert {option for option, entry in spec.items() if entry.get('no_log')} == {'api_key', 'password'}
    assert {key for key, entry in spec['proxy_headers']['options'].items() if entry.get('no_log')} == {
        'proxy_basic_auth', 'basic_auth'}
    assert {'username', 'password', 'no_proxy', 'proxy_headers', 'persist_config', 'impersonate_user',
            'impersonate_groups'} <= set(spec)


def test_the_module_sees_no_environment_value(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_KUBECONFIG', '/env/kubeconfig')
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'false')
    with patch_module_args({'context': 'explicit'}):
        module = AnsibleModule(argument_spec=connection_argument_spec())
    assert module.params['kubeconfig'] is None and module.params['validate_certs'] is None
    assert module.params['request_timeout'] == 30


def test_verify_ssl_alias_and_no_default():
    with patch_module_args({}):
        assert AnsibleModule(argument_spec=connection_argument_spec()).params['validate_certs'] is None
    with patch_module_args({'verify_ssl': False}):
        assert AnsibleModule(argument_spec=connection_argument_spec()).params['validate_certs'] is False


def test_force_conflicts_snippet():
    assert force_conflicts_argument_spec() == {'force_conflicts': {'type': 'bool', 'default': False}}
    with patch_module_args({}):
        spec = dict(connection_argument_spec(), **force_conflicts_argument_spec())
        assert AnsibleModule(argument_spec=spec).params['force_conflicts'] is False


# -- the connection bundle --------------------------------------------------------------------

AWX = {'K8S_AUTH_HOST': 'https://other-cluster:6443', 'K8S_AUTH_API_KEY': 'secret-token-of-other-cluster',
       'K8S_AUTH_VERIFY_SSL': 'no', 'K8S_AUTH_SSL_CA_CERT': '/awx/ca.crt'}


@pytest.mark.parametrize('task', [{'context': 'cluster1'}, {'kubeconfig': '/k'}, {'host': 'https://h:6443'},
                                  {'context': 'cluster1', 'validate_certs': None}])
def test_a_task_that_names_its_cluster_ignores_every_k8s_auth_variable(task):
    options, source, notes = resolve_connection(task, AWX)
    assert source == 'task'
    assert {k: v for k, v in options.items() if v is not None} == {k: v for k, v in task.items() if v is not None}
    assert len(notes) == 1
    for name in AWX:
        assert name in notes[0]
    for value in ('https://other-cluster:6443', 'secret-token-of-other-cluster', '/awx/ca.crt'):
        assert value not in notes[0]  # never the values: one of them is a token


def test_a_task_that_names_its_cluster_gets_no_warning_without_variables():
    assert resolve_connection({'context': 'cluster1'}, {'HOME': '/root'}) == (
        dict.fromkeys(CONNECTION_OPTIONS, None, ) | {'context': 'cluster1'}, 'task', [])


def test_a_task_that_names_no_cluster_takes_the_variables():
    options, source, notes = resolve_connection({'request_timeout': 5}, AWX)
    assert source == 'environment' and notes == []
    assert (options['host'], options['api_key'], options['validate_certs'], options['ca_cert']) == (
        'https://other-cluster:6443', 'secret-token-of-other-cluster', False, '/awx/ca.crt')
    assert options['request_timeout'] == 5


def test_an_option_of_a_task_that_names_no_cluster_wins_over_its_variable():
    options, _source, _notes = resolve_connection({'validate_certs': True, 'api_key': 'task-token'}, AWX)
    assert (options['validate_certs'], options['api_key'], options['host']) == (
        True, 'task-token', 'https://other-cluster:6443')


def test_nothing_anywhere_is_the_default_source():
    options, source, notes = resolve_connection({}, {})
    assert source == 'default' and notes == [] and set(options) == set(CONNECTION_OPTIONS)
    assert all(value is None for value in options.values())


@pytest.mark.parametrize('environ, option, expected', [
    # kubernetes.core's names: K8S_AUTH_<option> first, then K8S_AUTH_<client name>
    ({'K8S_AUTH_VALIDATE_CERTS': 'false', 'K8S_AUTH_VERIFY_SSL': 'true'}, 'validate_certs', False),
    ({'K8S_AUTH_VERIFY_SSL': 'false'}, 'validate_certs', False),
    ({'K8S_AUTH_VALIDATE_CERTS': '', 'K8S_AUTH_VERIFY_SSL': 'no'}, 'validate_certs', False),
    ({'K8S_AUTH_CA_CERT': '/a', 'K8S_AUTH_SSL_CA_CERT': '/b'}, 'ca_cert', '/a'),
    ({'K8S_AUTH_SSL_CA_CERT': '/b'}, 'ca_cert', '/b'),
    ({'K8S_AUTH_CLIENT_CERT': '/c', 'K8S_AUTH_CERT_FILE': '/d'}, 'client_cert', '/c'),
    ({'K8S_AUTH_CERT_FILE': '/d'}, 'client_cert', '/d'),
    ({'K8S_AUTH_CLIENT_KEY': '/e', 'K8S_AUTH_KEY_FILE': '/f'}, 'client_key', '/e'),
    ({'K8S_AUTH_KEY_FILE': '/f'}, 'client_key', '/f'),
    ({'K8S_AUTH_KUBECONFIG': '/k'}, 'kubeconfig', '/k'),
    ({'K8S_AUTH_CONTEXT': 'c'}, 'context', 'c'),
    ({'K8S_AUTH_USERNAME': 'u'}, 'username', 'u'),
    ({'K8S_AUTH_PASSWORD': 'p'}, 'password', 'p'),
    ({'K8S_AUTH_PROXY': 'http://proxy:3128'}, 'proxy', 'http://proxy:3128'),
    ({'K8S_AUTH_NO_PROXY': '.svc,10.0.0.0/8'}, 'no_proxy', '.svc,10.0.0.0/8'),
    ({'K8S_AUTH_PERSIST_CONFIG': 'yes'}, 'persist_config', True),
    ({'K8S_AUTH_IMPERSONATE_USER': 'alice'}, 'impersonate_user', 'alice'),
    ({'K8S_AUTH_IMPERSONATE_GROUPS': 'dev,,ops,'}, 'impersonate_groups', ['dev', 'ops']),
    ({'K8S_AUTH_IMPERSONATE_GROUPS': ','}, 'impersonate_groups', None),
    ({'K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH': 'u:p', 'K8S_AUTH_PROXY_HEADERS_USER_AGENT': 'ua'}, 'proxy_headers',
     {'proxy_basic_auth': 'u:p', 'user_agent': 'ua'}),
    ({'K8S_AUTH_PROXY_HEADERS_BASIC_AUTH': 'u:p'}, 'proxy_headers', {'basic_auth': 'u:p'}),
])
def test_every_variable_kubernetes_core_reads(environ, option, expected):
    options, _source, _notes = resolve_connection({}, environ)
    assert options[option] == expected


@pytest.mark.parametrize('text, expected, warned', [
    ('0', False, False), ('false', False, False), ('False', False, False), ('NO', False, False),
    ('1', True, False), ('true', True, False), ('YES', True, False),
    # kubernetes.core reads anything else as true: so do we, with a warning
    ('off', True, True), ('n', True, True), ('disabled', True, True),
])
def test_booleans_are_read_as_kubernetes_core_reads_them(text, expected, warned):
    options, _source, notes = resolve_connection({}, {'K8S_AUTH_VERIFY_SSL': text})
    assert options['validate_certs'] is expected
    assert bool(notes) is warned
    if warned:
        assert 'K8S_AUTH_VERIFY_SSL' in notes[0] and repr(text) not in notes[0] and '=' not in notes[0]


@pytest.mark.parametrize('options, text', [
    ({'username': 'u'}, 'username and password go together'),
    ({'password': 'p'}, 'username and password go together'),
    ({'impersonate_groups': ['dev']}, 'impersonate_groups needs impersonate_user'),
    ({'host': 'https://h:6443\n'}, "host: 'https://h:6443\\n' is not the URL of an API server"),
    ({'host': '10.0.0.1:6443'}, 'host: '),
    ({'host': 'https://h:6443 '}, 'host: '),
])
def test_impossible_combinations_fail_before_any_request(options, text):
    problems = connection_problems(options)
    assert any(text in p for p in problems), problems
    with pytest.raises(ClientError) as caught:
        build_api_client(options)
    assert text in str(caught.value)


def test_the_awx_mix_reaches_the_context_of_the_task(tmp_path):
    """context: cluster2 + an AWX credential of another cluster: writes and messages agree."""
    cluster = cluster_from_params({'kubeconfig': _kubeconfig(tmp_path), 'context': 'cluster2'}, environ=AWX)
    assert cluster.server == 'https://127.0.0.1:26443' and cluster.context == 'cluster2'
    assert cluster.api_client.configuration.auth_settings()['BearerToken']['value'] == 'Bearer kubeconfig-token'
    assert cluster.api_client.configuration.verify_ssl is True
    assert cluster.source == 'task' and 'K8S_AUTH_HOST' in cluster.connection_warnings[0]


def test_variables_apply_when_the_task_names_no_cluster(tmp_path):
    cluster = cluster_from_params({}, environ={'K8S_AUTH_KUBECONFIG': _kubeconfig(tmp_path),
                                               'K8S_AUTH_CONTEXT': 'cluster2', 'K8S_AUTH_API_KEY': 'env-token'})
    assert (cluster.context, cluster.server, cluster.source) == ('cluster2', 'https://127.0.0.1:26443', 'environment')
    assert cluster.api_client.configuration.auth_settings()['BearerToken']['value'] == 'Bearer env-token'


def test_nothing_given_uses_the_current_context_of_the_default_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv('KUBECONFIG', _kubeconfig(tmp_path))
    cluster = cluster_from_params({}, environ={})
    assert (cluster.context, cluster.server, cluster.source) == ('cluster1', 'https://127.0.0.1:16443', 'default')
    assert cluster.connection_facts() == {'context': 'cluster1', 'server': 'https://127.0.0.1:16443',
                                          'source': 'default'}


def test_username_and_password_are_basic_authentication():
    client, _context = build_api_client({'host': 'https://h:6443', 'username': 'alice', 'password': 's3cret'})
    assert client.configuration.auth_settings()['BearerToken']['value'] == 'Basic YWxpY2U6czNjcmV0'


def test_api_key_wins_over_username_and_password():
    client, _context = build_api_client({'host': 'https://h:6443', 'api_key': 't', 'username': 'u', 'password': 'p'})
    assert client.configuration.auth_settings()['BearerToken']['value'] == 'Bearer t'


def test_proxy_options_reach_the_configuration():
    client, _context = build_api_client({'host': 'https://h:6443', 'api_key': 't', 'proxy': 'http://proxy:3128',
                                         'no_proxy': '.svc', 'proxy_headers': {'proxy_basic_auth': 'u:p',
                                                                               'basic_auth': None,
                                                                               'user_agent': 'meshlink-test'}})
    configuration = client.configuration
    assert (configuration.proxy, configuration.no_proxy) == ('http://proxy:3128', '.svc')
    assert configuration.proxy_headers == {'proxy-authorization': 'Basic dTpw', 'user-agent': 'meshlink-test'}


# -- HTTP behaviour against a local fake API server -----------------------------------------

class FakeApiServer:
    """Answers from a table ``(method, path) -> (status, body, headers)``; records every request."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length).decode() if length else ''
                url = urlparse(self.path)
                server.requests.append({'method': self.command, 'path': url.path, 'query': parse_qs(url.query),
                                        'headers': {k.title(): v for k, v in self.headers.items()}, 'body': body,
                                        'header_lists': {k.title(): self.headers.get_all(k) for k in self.headers}})
                if server.delay:
                    time.sleep(server.delay)
                status, payload, headers = server.routes.get((self.command, url.path),
                                                             (404, {'kind': 'Status', 'message': 'not found',
                                                                    'reason': 'NotFound', 'code': 404}, {}))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the timeout test hangs up on purpose; the write that follows fails

        self.httpd = Server(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api():
    server = FakeApiServer()
    yield server
    server.close()


def _cluster(api, dry_run=False, timeout=5, **options):
    client, _context = build_api_client(dict({'host': api.url, 'api_key': 'test-token'}, **options))
    return Cluster(client, 'test', request_timeout=timeout, dry_run=dry_run)


SE_PATH = group_path('networking.istio.io', 'v1', 'serviceentries', 'foo', 'httpbin-bar')
SE_REF = ObjectRef('ServiceEntry', 'foo', 'httpbin-bar')
SE_BODY = {'apiVersion': 'networking.istio.io/v1', 'kind': 'ServiceEntry',
           'metadata': {'name': 'httpbin-bar', 'namespace': 'foo'}, 'spec': {'hosts': ['httpbin.bar.global']}}


@pytest.mark.parametrize('dry_run', [False, True])
def test_apply_is_a_server_side_apply_with_our_field_manager(api, dry_run):
    api.routes[('PATCH', SE_PATH)] = (200, SE_BODY, {'Warning': '299 - "v1alpha3 is deprecated"'})
    cluster = _cluster(api, dry_run=dry_run)
    assert cluster.apply(SE_PATH, SE_BODY, SE_REF) == SE_BODY
    request = api.requests[-1]
    assert request['method'] == 'PATCH'
    assert request['headers']['Content-Type'] == 'application/apply-patch+yaml'
    assert request['headers']['Authorization'] == 'Bearer test-token'
    assert request['headers']['User-Agent'] == 'meshlink.multicluster/%s' % COLLECTION_VERSION
    assert request['query']['fieldManager'] == ['meshlink'] and request['query']['force'] == ['false']
    assert request['query'].get('dryRun') == (['All'] if dry_run else None)
    assert json.loads(request['body']) == SE_BODY
    assert cluster.warnings == ['v1alpha3 is deprecated']


def test_api_errors_name_the_verb_object_context_and_reason(api):
    api.routes[('PATCH', SE_PATH)] = (422, {'kind': 'Status', 'status': 'Failure', 'reason': 'Invalid', 'code': 422,
                                            'message': 'ServiceEntry.networking.istio.io "httpbin-bar" is invalid: '
                                                       'spec.endpoints[0].address: Required value'}, {})
    with pytest.raises(ApiError) as caught:
        _cluster(api).apply(SE_PATH, SE_BODY, SE_REF)
    assert str(caught.value) == ('Could not apply ServiceEntry foo/httpbin-bar in context test: ServiceEntry.'
                                 'networking.istio.io "httpbin-bar" is invalid: spec.endpoints[0].address: '
                                 'Required value')
    assert caught.value.status == 422 and caught.value.reason == 'Invalid'


def test_get_of_a_missing_object_is_none_and_conflicts_are_marked(api):
    cluster = _cluster(api)
    assert cluster.get(SE_PATH, SE_REF) is None
    api.routes[('PUT', '/api/v1/namespaces/istio-system/configmaps/meshlink-vips')] = (
        409, {'kind': 'Status', 'reason': 'Conflict', 'message': 'the object has been modified', 'code': 409}, {})
    with pytest.raises(ApiError) as caught:
        cluster.replace('/api/v1/namespaces/istio-system/configmaps/meshlink-vips', {}, ObjectRef('ConfigMap'))
    assert caught.value.is_conflict


def test_discovery_happens_once_per_cluster_and_picks_the_newest_version(api):
    api.routes[('GET', '/apis')] = (200, {'kind': 'APIGroupList', 'groups': [
        {'name': 'networking.istio.io', 'versions': [{'version': 'v1alpha3'}, {'version': 'v1beta1'}]},
        {'name': 'apps', 'versions': [{'version': 'v1'}]}]}, {})
    cluster = _cluster(api)
    assert cluster.networking_version() == 'v1beta1'
    assert cluster.served_versions('apps') == ['v1']
    assert cluster.networking_version() == 'v1beta1'
    assert [r['path'] for r in api.requests] == ['/apis']


def test_missing_istio_api_is_a_clear_error(api):
    api.routes[('GET', '/apis')] = (200, {'kind': 'APIGroupList', 'groups': []}, {})
    with pytest.raises(ApiError) as caught:
        _cluster(api).networking_version()
    assert 'does not serve the networking.istio.io API: Istio (its CRDs) is not installed' in str(caught.value)


def test_list_passes_the_label_selector(api):
    api.routes[('GET', '/apis/networking.istio.io/v1/serviceentries')] = (200, {'items': [SE_BODY]}, {})
    items = _cluster(api).list(group_path('networking.istio.io', 'v1', 'serviceentries'), ObjectRef('ServiceEntry'),
                               label_selector='app.kubernetes.io/managed-by=meshlink')
    assert items == [SE_BODY]
    assert api.requests[-1]['query']['labelSelector'] == ['app.kubernetes.io/managed-by=meshlink']


def test_delete_with_a_resource_version_precondition(api):
    path = '/api/v1/namespaces/istio-system/configmaps/meshlink-vips'
    api.routes[('DELETE', path)] = (200, {'kind': 'Status', 'status': 'Success'}, {})
    assert _cluster(api).delete(path, ObjectRef('ConfigMap'), resource_version='42') is True
    assert json.loads(api.requests[-1]['body'])['preconditions'] == {'resourceVersion': '42'}
    assert _cluster(api).delete('/api/v1/namespaces/x/configmaps/gone', ObjectRef('ConfigMap')) is False


@pytest.mark.parametrize('dry_run', [True, False])
def test_check_mode_delete_carries_dry_run_in_the_body(api, dry_run):
    # The API server takes DeleteOptions from the body when there is one and then ignores a
    # dryRun query parameter: in check mode the body itself must say dryRun.
    path = '/api/v1/namespaces/istio-system/configmaps/meshlink-vips'
    api.routes[('DELETE', path)] = (200, {'kind': 'Status', 'status': 'Success'}, {})
    _cluster(api, dry_run=dry_run).delete(path, ObjectRef('ConfigMap'))
    body = json.loads(api.requests[-1]['body'])
    assert body.get('dryRun') == (['All'] if dry_run else None)


def test_unreachable_server():
    client, _context = build_api_client({'host': 'http://127.0.0.1:9', 'api_key': 't'})
    with pytest.raises(ApiError) as caught:
        Cluster(client, 'down', request_timeout=2).server_version()
    assert 'Could not read server version in context down: cannot reach the API server http://127.0.0.1:9' \
        in str(caught.value)
    assert caught.value.status is None


def test_request_timeout_bounds_the_call_reads_are_not_retried(api):
    api.delay = 1.5
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        _cluster(api, timeout=0.5).server_version()
    assert time.monotonic() - started < 1.2
    assert 'no answer within request_timeout=0.5s' in str(caught.value)
    assert len(api.requests) == 1


# -- server-side apply without force ----------------------------------------------------------

def _conflict_status(causes=None, message=None):
    status = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'reason': 'Conflict',
              'code': 409, 'message': message or ('Apply failed with 1 conflict: conflict with '
                                                  '"kubectl-client-side-apply" using networking.istio.io/v1: '
                                                  '.spec.hosts')}
    if causes is not None:
        status['details'] = {'causes': causes}
    return status


KUBECTL_CAUSE = {'reason': 'FieldManagerConflict', 'field': '.spec.hosts',
                 'message': 'conflict with "kubectl-client-side-apply" using networking.istio.io/v1'}


@pytest.mark.parametrize('force, expected', [(False, ['false']), (True, ['true'])])
def test_apply_forces_only_when_asked(api, force, expected):
    api.routes[('PATCH', SE_PATH)] = (200, SE_BODY, {})
    _cluster(api).apply(SE_PATH, SE_BODY, SE_REF, force=force)
    assert api.requests[-1]['query']['force'] == expected


def test_apply_default_does_not_force(api):
    api.routes[('PATCH', SE_PATH)] = (200, SE_BODY, {})
    _cluster(api).apply(SE_PATH, SE_BODY, SE_REF)
    assert api.requests[-1]['query']['force'] == ['false']


@pytest.mark.parametrize('dry_run', [False, True])
def test_a_conflict_names_the_manager_the_field_and_the_way_out(api, dry_run):
    api.routes[('PATCH', SE_PATH)] = (409, _conflict_status([KUBECTL_CAUSE]), {})
    with pytest.raises(ApplyConflict) as caught:
        _cluster(api, dry_run=dry_run).apply(SE_PATH, SE_BODY, SE_REF)
    error = caught.value
    assert isinstance(error, ApiError) and error.status == 409 and error.is_conflict
    assert error.managers == ['kubectl-client-side-apply'] and error.fields == ['.spec.hosts']
    assert str(error).startswith('Could not apply ServiceEntry foo/httpbin-bar in context test: field .spec.hosts is '
                                 'owned by field manager "kubectl-client-side-apply" (through networking.istio.io/v1)')
    assert 'Set force_conflicts: true to take them over' in str(error)


def test_a_conflict_with_several_managers_and_fields(api):
    causes = [KUBECTL_CAUSE,
              dict(KUBECTL_CAUSE, field='.spec.ports'),
              {'reason': 'FieldManagerConflict', 'field': '.metadata.labels.team',
               'message': 'conflict with "argocd-controller" using networking.istio.io/v1beta1'}]
    api.routes[('PATCH', SE_PATH)] = (409, _conflict_status(causes, 'Apply failed with 3 conflicts: ...'), {})
    with pytest.raises(ApplyConflict) as caught:
        _cluster(api).apply(SE_PATH, SE_BODY, SE_REF)
    assert caught.value.managers == ['kubectl-client-side-apply', 'argocd-controller']
    assert caught.value.fields == ['.spec.hosts', '.spec.ports', '.metadata.labels.team']
    assert ('fields .spec.hosts, .spec.ports are owned by field manager "kubectl-client-side-apply"'
            in str(caught.value))
    assert 'field .metadata.labels.team is owned by field manager "argocd-controller"' in str(caught.value)


def test_other_409s_of_an_apply_stay_api_errors(api):
    api.routes[('PATCH', SE_PATH)] = (409, {'kind': 'Status', 'reason': 'Conflict', 'code': 409,
                                            'message': 'Operation cannot be fulfilled: the object has been modified'},
                                      {})
    with pytest.raises(ApiError) as caught:
        _cluster(api).apply(SE_PATH, SE_BODY, SE_REF)
    assert not isinstance(caught.value, ApplyConflict) and caught.value.is_conflict


@pytest.mark.parametrize('status, expected', [
    (_conflict_status([KUBECTL_CAUSE]),
     [{'manager': 'kubectl-client-side-apply', 'api_version': 'networking.istio.io/v1', 'field': '.spec.hosts'}]),
    # the field given in the cause message only
    (_conflict_status([{'type': 'FieldManagerConflict',
                        'message': 'conflict with "kubectl-client-side-apply" using networking.istio.io/v1: '
                                   '.spec.hosts'}]),
     [{'manager': 'kubectl-client-side-apply', 'api_version': 'networking.istio.io/v1', 'field': '.spec.hosts'}]),
    # a manager name with a quote, a subresource
    (_conflict_status([{'reason': 'FieldManagerConflict', 'field': '.status',
                        'message': 'conflict with "my \\"tool\\"" with subresource "status" using v1'}]),
     [{'manager': 'my "tool"', 'api_version': 'v1', 'field': '.status'}]),
    # no causes: the message
    (_conflict_status(None), [{'manager': 'kubectl-client-side-apply', 'api_version': 'networking.istio.io/v1',
                               'field': '.spec.hosts'}]),
    (_conflict_status(None, 'Apply failed with 3 conflicts: conflicts with "kubectl" using v1:\n- .spec.a\n- .spec.b'
                            '\nconflict with "helm" using v1: .spec.c'),
     [{'manager': 'kubectl', 'api_version': 'v1', 'field': '.spec.a'},
      {'manager': 'kubectl', 'api_version': 'v1', 'field': '.spec.b'},
      {'manager': 'helm', 'api_version': 'v1', 'field': '.spec.c'}]),
    # not an apply conflict
    ({'kind': 'Status', 'code': 409, 'message': 'the object has been modified'}, []),
    (_conflict_status([{'reason': 'FieldValueInvalid', 'message': 'x', 'field': 'spec'}], 'invalid'), []),
    (None, []),
])
def test_apply_conflicts_are_parsed_from_the_status(status, expected):
    assert apply_conflicts(status) == expected


# -- identity and impersonation ---------------------------------------------------------------

def test_identity_is_the_server_and_the_kube_system_uid_read_once(api):
    api.routes[('GET', '/api/v1/namespaces/kube-system')] = (
        200, {'kind': 'Namespace', 'metadata': {'name': 'kube-system', 'uid': '6f0c-uid'}}, {})
    cluster = _cluster(api)
    assert cluster.known_identity() == {'server': api.url, 'kube_system_uid': None}
    assert cluster.identity() == {'server': api.url, 'kube_system_uid': '6f0c-uid'}
    assert cluster.identity() == cluster.known_identity() == {'server': api.url, 'kube_system_uid': '6f0c-uid'}
    assert [r['path'] for r in api.requests] == ['/api/v1/namespaces/kube-system']


def test_identity_without_permission_has_no_uid(api):
    api.routes[('GET', '/api/v1/namespaces/kube-system')] = (
        403, {'kind': 'Status', 'reason': 'Forbidden', 'code': 403, 'message': 'namespaces "kube-system" is forbidden'},
        {})
    assert _cluster(api).identity() == {'server': api.url, 'kube_system_uid': None}


def test_identity_raises_other_errors(api):
    api.routes[('GET', '/api/v1/namespaces/kube-system')] = (500, {'kind': 'Status', 'code': 500, 'message': 'etcd'},
                                                             {})
    with pytest.raises(ApiError):
        _cluster(api).identity()


def test_impersonation_headers_are_on_every_request_one_per_group(api):
    api.routes[('GET', '/version')] = (200, {'gitVersion': 'v1.36.1'}, {})
    api.routes[('PATCH', SE_PATH)] = (200, SE_BODY, {})
    cluster = _cluster(api, impersonate_user='alice', impersonate_groups=['dev', 'ops'])
    assert cluster.impersonating
    cluster.server_version()
    cluster.apply(SE_PATH, SE_BODY, SE_REF)
    for request in api.requests:
        assert request['header_lists']['Impersonate-User'] == ['alice']
        assert request['header_lists']['Impersonate-Group'] == ['dev', 'ops']
        assert request['headers']['Authorization'] == 'Bearer test-token'
    assert api.requests[-1]['headers']['Content-Type'] == 'application/apply-patch+yaml'


def test_no_impersonation_headers_by_default(api):
    api.routes[('GET', '/version')] = (200, {'gitVersion': 'v1.36.1'}, {})
    cluster = _cluster(api)
    cluster.server_version()
    assert not cluster.impersonating
    assert 'Impersonate-User' not in api.requests[-1]['headers']


def test_a_context_alone_is_looked_up_in_the_kubeconfig_of_an_awx_credential(tmp_path, monkeypatch):
    # AWX's kubeconfig credential injects K8S_AUTH_KUBECONFIG; the inventory host names its
    # context: a file of contexts is no cluster of its own, so the context is found there
    monkeypatch.setenv('KUBECONFIG', str(tmp_path / 'absent'))
    cluster = cluster_from_params({'context': 'cluster2'}, environ={'K8S_AUTH_KUBECONFIG': _kubeconfig(tmp_path),
                                                                    'K8S_AUTH_HOST': 'https://127.0.0.9:6443'})
    assert cluster.server == 'https://127.0.0.1:26443'
    # the credential's host of another cluster is still ignored, and said so
    assert cluster.connection_warnings == [
        'The task names its cluster (context), so every connection value comes from the task and these '
        'environment variables are ignored: K8S_AUTH_HOST. Unset them, or name no cluster in the task to use '
        'them.']
    # a task that gives its own kubeconfig does not read the credential's
    cluster = cluster_from_params({'context': 'cluster2', 'kubeconfig': _kubeconfig(tmp_path)},
                                  environ={'K8S_AUTH_KUBECONFIG': str(tmp_path / 'other')})
    assert cluster.server == 'https://127.0.0.1:26443' and cluster.connection_warnings == [
        'The task names its cluster (kubeconfig, context), so every connection value comes from the task and these '
        'environment variables are ignored: K8S_AUTH_KUBECONFIG. Unset them, or name no cluster in the task to use '
        'them.']


def test_request_sends_the_accept_header_asked_for(api):
    api.routes[('GET', '/apis')] = (200, {'kind': 'APIGroupDiscoveryList', 'items': []}, {})
    accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json'
    assert _cluster(api).request('GET', '/apis', ObjectRef('API discovery'), 'discover', accept=accept) == {
        'kind': 'APIGroupDiscoveryList', 'items': []}
    assert api.requests[-1]['headers']['Accept'] == accept
