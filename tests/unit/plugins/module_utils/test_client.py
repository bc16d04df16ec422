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
    Cluster,
    ObjectRef,
    build_api_client,
    connection_argument_spec,
    connection_source,
    group_path,
    newest_version,
    status_message,
    warning_texts,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, ClientError
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


def test_environment_fallbacks_are_declared_in_the_spec(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_KUBECONFIG', '/env/kubeconfig')
    monkeypatch.setenv('K8S_AUTH_CONTEXT', 'from-env')
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'false')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'secret-from-env')
    with patch_module_args({'context': 'explicit'}):
        module = AnsibleModule(argument_spec=connection_argument_spec())
    assert module.params['kubeconfig'] == '/env/kubeconfig'
    assert module.params['context'] == 'explicit'  # an option beats the environment
    assert module.params['validate_certs'] is False
    assert module.params['request_timeout'] == 30
    assert 'secret-from-env' in module.no_log_values


def test_verify_ssl_alias_and_default():
    with patch_module_args({}):
        assert AnsibleModule(argument_spec=connection_argument_spec()).params['validate_certs'] is True
    with patch_module_args({'verify_ssl': False}):
        assert AnsibleModule(argument_spec=connection_argument_spec()).params['validate_certs'] is False


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
                                        'headers': {k.title(): v for k, v in self.headers.items()}, 'body': body})
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


def _cluster(api, dry_run=False, timeout=5):
    client, _context = build_api_client({'host': api.url, 'api_key': 'test-token'})
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
    assert request['query']['fieldManager'] == ['meshlink'] and request['query']['force'] == ['true']
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
