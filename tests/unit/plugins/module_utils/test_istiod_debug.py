# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""istiod's debug endpoints (_istiod_debug.py) and what verify makes of them (_verify.mesh_lines):
one HTTP response read off the forwarded socket (Content-Length, chunked, cut anywhere), the
answers of clusterz/networkz/syncz/edsz as istiod shapes them, the polling, and the lines a user
reads - peers synced, a consumer's endpoints behind the source network's east-west gateway."""

from __future__ import annotations

import json
import types

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._istiod_debug import (
    DebugError,
    IstiodDebug,
    cluster_endpoints,
    cluster_status,
    connected_proxies,
    network_gateways,
    parse_http_response,
    pick_istiod,
    wait_for,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._verify import (
    REQUEST_DEFAULTS,
    mesh_lines,
    verify_targets,
    version_of,
)
from meshlink_fakes import seed_service

BODY = json.dumps([{'id': 'cluster2', 'secretName': 'istio-system/istio-remote-secret-cluster2',
                    'syncStatus': 'synced'}]).encode()


def content_length(body=BODY, status='200 OK', extra=b''):
    return (b'HTTP/1.1 ' + status.encode() + b'\r\nContent-Type: application/json\r\nContent-Length: '
            + str(len(body)).encode() + b'\r\n' + extra + b'\r\n' + body)


def chunked(body=BODY, sizes=(7, 1, 50), extension=False):
    out = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
    rest = body
    for size in sizes:
        if not rest:
            break
        piece, rest = rest[:size], rest[size:]
        out += b'%x%s\r\n' % (len(piece), b';name=value' if extension else b'') + piece + b'\r\n'
    if rest:
        out += b'%x\r\n' % len(rest) + rest + b'\r\n'
    return out + b'0\r\n\r\n'


# -- parse_http_response --------------------------------------------------------------------------

@pytest.mark.parametrize('data, status, body', [
    (content_length(), 200, BODY),
    (content_length() + b'trailing bytes of a next response', 200, BODY),
    (content_length(b'', status='204 No Content'), 204, b''),
    (content_length(b'not found', status='404 Not Found'), 404, b'not found'),
    (content_length(extra=b'content-length: 999\r\n').replace(b'Content-Length: %d\r\n' % len(BODY), b''), None, None),
    (chunked(), 200, BODY),
    (chunked(sizes=(len(BODY),)), 200, BODY),
    (chunked(sizes=(1,) * len(BODY)), 200, BODY),
    (chunked(extension=True), 200, BODY),
    (chunked().replace(b'Transfer-Encoding: chunked', b'transfer-encoding: Chunked'), 200, BODY),
    (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 200, b''),
], ids=['content-length', 'extra-bytes-ignored', 'empty-body', 'error-status', 'length-larger-than-data', 'chunked',
        'one-chunk', 'byte-chunks', 'chunk-extension', 'header-case', 'no-chunk'])
def test_parse_http_response(data, status, body):
    assert parse_http_response(data) == (status, body)


@pytest.mark.parametrize('response', [content_length(), chunked(), chunked(extension=True),
                                      chunked(sizes=(3,) * 200)],
                         ids=['content-length', 'chunked', 'chunk-extension', 'many-chunks'])
def test_parse_http_response_is_incomplete_at_every_cut(response):
    """The forwarded socket delivers any prefix: every one short of the body's end is incomplete,
    never an error (chunked: the body ends with the last-chunk line ``0``, before the final CRLF)."""
    end = len(response) - (2 if b'chunked' in response else 0)
    for cut in range(end):
        assert parse_http_response(response[:cut]) == (None, None), cut
    for cut in range(end, len(response) + 1):
        assert parse_http_response(response[:cut]) == (200, BODY), cut


@pytest.mark.parametrize('data', [b'\x00\x01garbage\r\n\r\n', b'SSH-2.0-OpenSSH_9.6\r\n\r\n',
                                  b'HTTP/1.1 abc OK\r\n\r\n'], ids=['binary', 'ssh', 'status-not-a-number'])
def test_parse_http_response_refuses_what_is_not_http(data):
    with pytest.raises(DebugError) as caught:
        parse_http_response(data)
    assert str(caught.value).startswith('not an HTTP response: ')


def test_parse_http_response_without_length_waits_for_the_close():
    assert parse_http_response(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"partial": ') == (None, None)


# -- the answers ----------------------------------------------------------------------------------

CLUSTERZ = [
    {'id': 'cluster1', 'secretName': '', 'syncStatus': 'synced'},
    {'id': 'cluster2', 'secretName': 'istio-system/istio-remote-secret-cluster2', 'syncStatus': 'synced'},
    {'id': 'cluster3', 'secretName': 'istio-system/istio-remote-secret-cluster3', 'syncStatus': 'timeout'},
    {'secretName': 'no id'},
    'not an object',
]


def test_cluster_status():
    assert cluster_status(CLUSTERZ) == {
        'cluster1': {'secret': '', 'status': 'synced'},
        'cluster2': {'secret': 'istio-system/istio-remote-secret-cluster2', 'status': 'synced'},
        'cluster3': {'secret': 'istio-system/istio-remote-secret-cluster3', 'status': 'timeout'},
    }
    assert cluster_status(None) == cluster_status([]) == {}


NETWORKZ = [
    {'Network': 'network1', 'Cluster': 'cluster1', 'Addr': '198.51.100.1', 'Port': 15443, 'HBONEPort': 15008},
    {'Network': 'network2', 'Cluster': 'cluster2', 'Addr': '198.51.100.2', 'Port': 15443, 'HBONEPort': 15008},
    {'Network': 'network2', 'Cluster': 'cluster3', 'Addr': 'ew.elb.example.com', 'Port': 16443},
    {'Network': '', 'Addr': '198.51.100.9', 'Port': 15443},
]


def test_network_gateways():
    assert network_gateways(NETWORKZ) == {
        'network1': [('198.51.100.1', 15443)],
        'network2': [('198.51.100.2', 15443), ('ew.elb.example.com', 16443)],
    }
    assert network_gateways(None) == {}


SYNCZ = [
    {'cluster_id': 'cluster1', 'proxy': 'curl-5d8f7-abcde.sample', 'proxy_type': 'sidecar', 'proxy_version': '1.24.3',
     'cluster_sent': 'nonce', 'cluster_acked': 'nonce'},
    {'cluster_id': 'cluster2', 'proxy': 'curl-6c9a8-fghij.sample', 'proxy_type': 'sidecar'},
    {'cluster_id': 'cluster1', 'proxy': 'istio-eastwestgateway-7b-klmno.istio-system', 'proxy_type': 'router'},
    {'clusterId': 'cluster4', 'proxyId': 'old-shape.sample', 'proxyType': 'sidecar'},
    {'cluster_id': 'cluster1'},
]


def test_connected_proxies():
    assert connected_proxies(SYNCZ) == [
        {'proxy': 'curl-5d8f7-abcde.sample', 'cluster': 'cluster1', 'type': 'sidecar'},
        {'proxy': 'curl-6c9a8-fghij.sample', 'cluster': 'cluster2', 'type': 'sidecar'},
        {'proxy': 'istio-eastwestgateway-7b-klmno.istio-system', 'cluster': 'cluster1', 'type': 'router'},
        {'proxy': 'old-shape.sample', 'cluster': 'cluster4', 'type': 'sidecar'},
    ]


def assignment(cluster_name, *endpoints):
    return {'@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
            'clusterName': cluster_name,
            'endpoints': [{'locality': {}, 'lbEndpoints': [
                {'endpoint': {'address': {'socketAddress': {'address': address, 'portValue': port}}},
                 'healthStatus': 'HEALTHY', 'loadBalancingWeight': 1} for address, port in endpoints]}]}


HELLO = 'outbound|5000||helloworld.sample.svc.cluster.local'
EDSZ = {'configs': [
    assignment('outbound|80||kubernetes.default.svc.cluster.local', ('10.96.0.1', 443)),
    assignment(HELLO, ('10.244.1.7', 5000), ('198.51.100.2', 15443)),
    assignment('inbound|5000||', ('10.244.1.8', 5000)),
]}


@pytest.mark.parametrize('edsz', [
    EDSZ,
    {'resources': EDSZ['configs']},
    EDSZ['configs'],
    {'configs': [{'clusterLoadAssignment': c} for c in EDSZ['configs']]},
], ids=['configs', 'resources', 'list', 'wrapped'])
def test_cluster_endpoints(edsz):
    assert cluster_endpoints(edsz, HELLO) == [('10.244.1.7', 5000), ('198.51.100.2', 15443)]
    assert cluster_endpoints(edsz, 'outbound|5000||absent.sample.svc.cluster.local') == []


def test_cluster_endpoints_of_nothing():
    assert cluster_endpoints(None, HELLO) == cluster_endpoints({}, HELLO) == []


def test_pick_istiod_takes_a_running_pod_by_name():
    pods = [{'metadata': {'name': 'istiod-c'}, 'status': {'phase': 'Running'}},
            {'metadata': {'name': 'istiod-a', 'deletionTimestamp': '2026-01-01T00:00:00Z'}, 'status': {'phase': 'Running'}},
            {'metadata': {'name': 'istiod-b'}, 'status': {'phase': 'Running'}},
            {'metadata': {'name': 'istiod-0'}, 'status': {'phase': 'Pending'}}]
    assert pick_istiod(pods)['metadata']['name'] == 'istiod-b'
    assert pick_istiod(pods[1:2] + pods[3:]) is None


# -- wait_for with a fake clock -------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize('answers, timeout, result, sleeps', [
    ([None], 10, None, []),
    (['syncing', 'syncing', None], 10, None, [2, 2]),
    (['syncing'] * 20, 5, 'syncing', [2, 2, 2]),
    (['a', 'b', 'c', 'd'], 4, 'c', [2, 2]),
    (['late'], 0, 'late', []),
], ids=['at-once', 'after-two', 'deadline', 'last-why', 'no-time'])
def test_wait_for(answers, timeout, result, sleeps):
    clock = Clock()
    answers = list(answers)
    assert wait_for(lambda: answers.pop(0), timeout, delay=2, clock=clock, sleep=clock.sleep) == result
    assert clock.sleeps == sleeps


# -- mesh_lines on a primary ----------------------------------------------------------------------

class FakeDebug:
    """Answers ``get(path)`` from a table (the edsz answer per proxy); records the paths."""

    def __init__(self, clusterz, networkz, syncz, edsz):
        self.answers = {'/debug/clusterz': clusterz, '/debug/networkz': networkz, '/debug/syncz': syncz}
        self.edsz = edsz
        self.paths = []

    def get(self, path):
        self.paths.append(path)
        if path.startswith('/debug/edsz?proxyID='):
            return self.edsz.get(path.split('=', 1)[1])
        return self.answers[path]


def current_plan():
    """cluster1 (network1, primary) consumes helloworld from cluster2 (network2, primary) in sample,
    and from cluster3 (network1, cluster1's remote) in sample; cluster3 consumes it from cluster2."""
    services = [
        seed_service(name='helloworld', namespace='sample', cluster='cluster2',
                     ports=[{'name': 'http', 'number': 5000, 'protocol': 'HTTP'}],
                     consumers=[{'cluster': 'cluster1', 'namespace': 'sample'},
                                {'cluster': 'cluster3', 'namespace': 'sample'}]),
        seed_service(name='echo', namespace='sample', cluster='cluster3',
                     ports=[{'name': 'http', 'number': 8080, 'protocol': 'HTTP'}],
                     consumers=[{'cluster': 'cluster1', 'namespace': 'sample'}]),
    ]
    settings = {'cluster1': {'meshlink_network': 'network1'}, 'cluster2': {'meshlink_network': 'network2'},
                'cluster3': {'meshlink_network': 'network1', 'meshlink_istio_role': 'remote',
                             'meshlink_istio_primary': 'cluster1'}}
    return build_plan(services, ['cluster1', 'cluster2', 'cluster3'], topology='multi_primary',
                      cluster_settings=settings)


ECHO = 'outbound|8080||echo.sample.svc.cluster.local'
GOOD_CLUSTERZ = [{'id': 'cluster1', 'secretName': '', 'syncStatus': 'synced'},
                 {'id': 'cluster2', 'secretName': 'istio-system/istio-remote-secret-cluster2', 'syncStatus': 'synced'},
                 {'id': 'cluster3', 'secretName': 'istio-system/istio-remote-secret-cluster3', 'syncStatus': 'synced'}]
GOOD_SYNCZ = [{'cluster_id': 'cluster1', 'proxy': 'curl-1.sample', 'proxy_type': 'sidecar'},
              {'cluster_id': 'cluster3', 'proxy': 'curl-3.sample', 'proxy_type': 'sidecar'},
              {'cluster_id': 'cluster1', 'proxy': 'istio-eastwestgateway-1.istio-system', 'proxy_type': 'router'}]
GOOD_EDSZ = {
    # cluster1: helloworld behind network2's gateway, echo (cluster3, same network) as a pod
    'curl-1.sample': {'configs': [assignment(HELLO, ('198.51.100.2', 15443)), assignment(ECHO, ('10.244.3.9', 8080))]},
    'curl-3.sample': {'configs': [assignment(HELLO, ('198.51.100.2', 15443))]},
}


def debug(clusterz=None, networkz=None, syncz=None, edsz=None):
    return FakeDebug(GOOD_CLUSTERZ if clusterz is None else clusterz, NETWORKZ[:2] if networkz is None else networkz,
                     GOOD_SYNCZ if syncz is None else syncz, GOOD_EDSZ if edsz is None else edsz)


def test_mesh_lines_all_good():
    fake = debug()
    lines = mesh_lines(None, current_plan(), 'cluster1', 'istio-system', timeout=0, debug=fake)
    assert [line['ok'] for line in lines] == [True] * 5
    assert [line['text'] for line in lines] == [
        'cluster1: istiod reads cluster2 (cluster2): synced via istio-system/istio-remote-secret-cluster2',
        'cluster1: istiod reads cluster3 (cluster3): synced via istio-system/istio-remote-secret-cluster3',
        'cluster1: cluster1/curl-1.sample → helloworld.sample.svc.cluster.local: endpoints 198.51.100.2:15443, '
        'behind the east-west gateway of network2 198.51.100.2:15443',
        'cluster1: cluster1/curl-1.sample → echo.sample.svc.cluster.local: endpoints 10.244.3.9:8080, behind the '
        'pods (same network)',
        'cluster1: cluster3/curl-3.sample → helloworld.sample.svc.cluster.local: endpoints 198.51.100.2:15443, '
        'behind the east-west gateway of network2 198.51.100.2:15443',
    ]
    assert [line['kind'] for line in lines] == ['clusterz', 'clusterz', 'edsz', 'edsz', 'edsz']
    assert '/debug/edsz?proxyID=curl-1.sample' in fake.paths


def test_mesh_lines_of_a_primary_that_serves_no_consumer():
    lines = mesh_lines(None, current_plan(), 'cluster2', 'istio-system', timeout=0, debug=debug())
    assert [(line['ok'], line['kind']) for line in lines] == [(True, 'clusterz'), (True, 'clusterz')]


@pytest.mark.parametrize('clusterz, words', [
    (GOOD_CLUSTERZ[:2] + [dict(GOOD_CLUSTERZ[2], syncStatus='timeout')],
     ['cluster1: istiod reads cluster3 (cluster3): timeout via', 'not synced within 0s: cluster3 (timeout)']),
    (GOOD_CLUSTERZ[:2], ['cluster1: istiod reads cluster3 (cluster3): absent', 'cluster3 (absent)']),
    ([], ['cluster2 (absent), cluster3 (absent)']),
], ids=['timeout', 'no-secret', 'none'])
def test_mesh_lines_unsynced_peers(clusterz, words):
    lines = mesh_lines(None, current_plan(), 'cluster1', 'istio-system', timeout=0, debug=debug(clusterz=clusterz))
    failed = [line['text'] for line in lines if not line['ok']]
    for word in words:
        assert any(word in text for text in failed), (word, failed)
    assert all(line['kind'] == 'clusterz' for line in lines if not line['ok'])


@pytest.mark.parametrize('edsz, words', [
    # the pod IP of another network: the network or the gateway was not resolved
    ({'curl-1.sample': {'configs': [assignment(HELLO, ('10.245.0.7', 5000)), assignment(ECHO, ('10.244.3.9', 8080))]},
      'curl-3.sample': GOOD_EDSZ['curl-3.sample']},
     "sidecar curl-1.sample reaches outbound|5000||helloworld.sample.svc.cluster.local at [('10.245.0.7', 5000)], "
     "not through the east-west gateway of network2 ([('198.51.100.2', 15443)])"),
    # no endpoint at all: a bad secret
    ({'curl-1.sample': {'configs': [assignment(ECHO, ('10.244.3.9', 8080))]},
      'curl-3.sample': GOOD_EDSZ['curl-3.sample']},
     'sidecar curl-1.sample has no endpoint for outbound|5000||helloworld.sample.svc.cluster.local'),
], ids=['pod-ip-of-another-network', 'no-endpoint'])
def test_mesh_lines_endpoints_not_behind_the_gateway(edsz, words):
    lines = mesh_lines(None, current_plan(), 'cluster1', 'istio-system', timeout=0, debug=debug(edsz=edsz))
    failed = [line for line in lines if not line['ok']]
    assert len(failed) == 1 and failed[0]['kind'] == 'edsz'
    assert failed[0]['text'].startswith('cluster1: cluster1/')
    assert 'helloworld.sample.svc.cluster.local: FAILED (' + words in failed[0]['text']


def test_mesh_lines_gateway_of_the_source_network_unknown():
    lines = mesh_lines(None, current_plan(), 'cluster1', 'istio-system', timeout=0, debug=debug(networkz=NETWORKZ[:1]))
    failed = [line['text'] for line in lines if not line['ok']]
    assert len(failed) == 2
    assert all('not through the east-west gateway of network2 (none known)' in text for text in failed)


@pytest.mark.parametrize('syncz, failing', [
    ([], 3),
    (GOOD_SYNCZ[1:], 2),                                        # no sidecar of cluster1
    ([dict(GOOD_SYNCZ[0], proxy='curl-1.other'), GOOD_SYNCZ[1]], 2),   # a sidecar of another namespace
    ([dict(GOOD_SYNCZ[0], proxy_type='router'), GOOD_SYNCZ[1]], 2),    # a gateway is not a client
], ids=['none', 'other-cluster', 'other-namespace', 'router'])
def test_mesh_lines_without_a_connected_sidecar(syncz, failing):
    lines = mesh_lines(None, current_plan(), 'cluster1', 'istio-system', timeout=0, debug=debug(syncz=syncz))
    failed = [line['text'] for line in lines if not line['ok']]
    assert len(failed) == failing
    assert all('FAILED (no sidecar of cluster' in text and '/sample is connected to this istiod)' in text
               for text in failed)


def test_mesh_lines_wait_until_istiod_catches_up():
    """clusterz shows the peer syncing, then synced: one line, ok (wait_for polls with the real clock: delay 0)."""
    states = [[dict(GOOD_CLUSTERZ[1], syncStatus='syncing'), GOOD_CLUSTERZ[2]], GOOD_CLUSTERZ]
    fake = debug()
    fake.answers['/debug/clusterz'] = None

    def get(path, original=fake.get):
        if path == '/debug/clusterz':
            fake.paths.append(path)
            return states.pop(0) if len(states) > 1 else states[0]
        return original(path)
    fake.get = get
    lines = mesh_lines(None, current_plan(), 'cluster1', 'istio-system', timeout=5, delay=0, debug=fake)
    assert all(line['ok'] for line in lines)
    assert fake.paths.count('/debug/clusterz') == 2


# -- verify_targets with versions, version_of ----------------------------------------------------

def test_verify_targets_with_versions_adds_version_samples():
    subsets = [{'name': 'v1', 'pod_labels': {'version': 'v1'}}, {'name': 'v10', 'pod_labels': {'version': 'v10'}}]
    plan = build_plan([seed_service(name='helloworld', namespace='sample', cluster='cluster2',
                                    ports=[{'name': 'http', 'number': 5000, 'protocol': 'HTTP'}],
                                    consumers=[{'cluster': 'cluster1', 'namespace': 'sample'}],
                                    subsets=subsets, route_subset='v10')],
                      ['cluster1', 'cluster2'], topology='multi_primary',
                      cluster_settings={'cluster1': {'meshlink_network': 'n1'}, 'cluster2': {'meshlink_network': 'n2'}})
    request = dict(REQUEST_DEFAULTS, version_samples=2)
    part = plan['clusters']['cluster1']
    plain = verify_targets(part, request)
    assert plain == [{'namespace': 'sample', 'targets': [
        {'name': 'helloworld.sample.svc.cluster.local', 'url': 'http://helloworld.sample.svc.cluster.local:5000/ip',
         'expected_status': [200]}]}]
    versioned = verify_targets(part, request, versions=True)
    version = {'route': 'v10', 'prefixes': {'v1': 'helloworld-v1-', 'v10': 'helloworld-v10-'}}
    assert versioned == [{'namespace': 'sample', 'targets': plain[0]['targets'] + [
        {'name': 'helloworld.sample.svc.cluster.local version 1',
         'url': 'http://helloworld.sample.svc.cluster.local:5000/hostname', 'expected_status': [200], 'version': version},
        {'name': 'helloworld.sample.svc.cluster.local version 2',
         'url': 'http://helloworld.sample.svc.cluster.local:5000/hostname', 'expected_status': [200], 'version': version},
    ]}]


PREFIXES = {'v1': 'helloworld-v1-', 'v10': 'helloworld-v10-', 'v1-canary': 'helloworld-v1-canary-'}


@pytest.mark.parametrize('body, expected', [
    ('{"hostname": "helloworld-v1-5c9d8f-abcde"}', 'v1'),
    ('{"hostname": "helloworld-v10-7f6b5-fghij"}', 'v10'),
    ('{"hostname": "helloworld-v1-canary-6d7c-klmno"}', 'v1-canary'),     # the longest prefix wins
    ('{"hostname": "other-v1-5c9d8f-abcde"}', None),
    ('{"hostname": ""}', None),
    ('{}', None),
    ('', None),
    ('Hello version: v1, instance: helloworld-v1-abc', None),
    ('["helloworld-v1-abc"]', None),
], ids=['v1', 'v10', 'longest-prefix', 'other-app', 'empty-hostname', 'no-hostname', 'empty', 'not-json', 'list'])
def test_version_of(body, expected):
    assert version_of(body, PREFIXES) == expected


# -- IstiodDebug.get through a fake port-forward --------------------------------------------------

class FakeSocket:
    """Hands out ``pieces`` one recv at a time (an OSError piece is a recv timeout), then b'' (closed)."""

    def __init__(self, pieces):
        self.pieces = list(pieces)
        self.sent = b''
        self.closed = False

    def settimeout(self, seconds):
        self.timeout = seconds

    def sendall(self, data):
        self.sent += data

    def close(self):
        self.closed = True

    def recv(self, size):
        if not self.pieces:
            return b''
        piece = self.pieces.pop(0)
        if isinstance(piece, Exception):
            raise piece
        return piece


class FakeForward:
    def __init__(self, sock):
        self.sock = sock
        self.closed = False

    def socket(self, port):
        self.port = port
        return self.sock

    def close(self):
        self.closed = True


def istiod_cluster(pods=None):
    from meshlink_fakes import FakeCluster
    if pods is None:
        pods = [{'metadata': {'name': 'istiod-7f9c-abcde', 'namespace': 'istio-system', 'labels': {'app': 'istiod'}},
                 'status': {'phase': 'Running'}}]
    cluster = FakeCluster(objects=[('pods', p) for p in pods], context='ctx-east')
    cluster.api_client = object()
    return cluster


@pytest.fixture
def forward(monkeypatch):
    """Install a fake port-forward; returns a function that sets what the socket answers."""
    from ansible_collections.meshlink.multicluster.plugins.module_utils import _istiod_debug
    made = {}

    class Core:
        def __init__(self, api_client):
            self.connect_get_namespaced_pod_portforward = 'connect'

    def portforward(connect, pod, namespace, ports):
        made.update(pod=pod, namespace=namespace, ports=ports)
        if isinstance(made['pieces'], Exception):
            raise made['pieces']
        made['forward'] = FakeForward(FakeSocket(made['pieces']))
        return made['forward']

    monkeypatch.setattr(_istiod_debug, 'kubernetes_client', types.SimpleNamespace(CoreV1Api=Core))
    monkeypatch.setattr(_istiod_debug, 'kubernetes_portforward', portforward)

    def answer(*pieces):
        made['pieces'] = pieces[0] if len(pieces) == 1 and isinstance(pieces[0], Exception) else list(pieces)
        return made
    return answer


def test_istiod_debug_get_reads_one_response_in_pieces(forward):
    response = chunked()
    made = forward(response[:10], OSError('timed out'), response[10:100], response[100:])
    answer = IstiodDebug(istiod_cluster()).get('/debug/clusterz')
    assert answer == json.loads(BODY)
    assert (made['pod'], made['namespace'], made['ports']) == ('istiod-7f9c-abcde', 'istio-system', '15014')
    assert made['forward'].sock.sent == b'GET /debug/clusterz HTTP/1.1\r\nHost: localhost:15014\r\nConnection: close\r\n\r\n'
    assert made['forward'].closed and made['forward'].sock.closed


@pytest.mark.parametrize('pieces, words', [
    ([content_length(b'no such page', status='404 Not Found')],
     'istiod pod istio-system/istiod-7f9c-abcde answered 404 to GET /debug/clusterz: '),
    ([content_length(b'<html>')], 'answered GET /debug/clusterz with something that is not JSON'),
    ([], 'answered nothing complete to GET /debug/clusterz within'),
    ([b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"cut'], 'answered nothing complete'),
], ids=['status', 'not-json', 'closed-at-once', 'closed-mid-body'])
def test_istiod_debug_get_errors(forward, pieces, words):
    forward(*pieces)
    with pytest.raises(DebugError) as caught:
        IstiodDebug(istiod_cluster(), timeout=1).get('/debug/clusterz')
    assert words in str(caught.value)


def test_istiod_debug_get_forbidden_names_the_permission(forward):
    forward(Exception('(403) Reason: Forbidden: pods "istiod-7f9c-abcde" is forbidden: cannot create pods/portforward'))
    with pytest.raises(DebugError) as caught:
        IstiodDebug(istiod_cluster()).get('/debug/clusterz')
    assert str(caught.value).startswith('Could not port-forward to istiod pod istio-system/istiod-7f9c-abcde:15014 in '
                                        'context ctx-east: (403)')
    assert str(caught.value).endswith('(needs the pods/portforward permission in istio-system)')


def test_istiod_debug_without_a_running_istiod(forward):
    forward(content_length())
    pods = [{'metadata': {'name': 'istiod-0', 'namespace': 'istio-system', 'labels': {'app': 'istiod'}},
             'status': {'phase': 'Pending'}}]
    with pytest.raises(DebugError) as caught:
        IstiodDebug(istiod_cluster(pods)).get('/debug/clusterz')
    assert str(caught.value) == 'No Running istiod pod in istio-system (selector app=istiod) in context ctx-east'
