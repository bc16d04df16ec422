# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The multi-network rules and objects (_multinet.py), pure: the preflight verdicts a user reads
(istiod, network labels, the east-west gateway and its address, DNS, the API server peers dial,
the exported Services), and the objects istiod reads (the east-west Gateway, istiod's exposure,
the reader RBAC, the remote secret, stub Services, subset rules), and when a token is renewed."""

from __future__ import annotations

import base64
import datetime

import pytest
import yaml

from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet as mn
from ansible_collections.meshlink.multicluster.plugins.module_utils._access import render_kubeconfig
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    COMPONENT_LABEL,
    MANAGED_BY_LABEL,
    MESH_LABEL,
    SERVICE_LABEL,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from meshlink_fakes import seed_service

MESH = 'blue'
NET = mn.NETWORK_LABEL
SUBSETS = [{'name': 'v1', 'pod_labels': {'version': 'v1'}}, {'name': 'v2', 'pod_labels': {'version': 'v2'}}]


def labels(mesh=MESH, part=None):
    out = {MANAGED_BY_LABEL: 'meshlink', MESH_LABEL: mesh}
    if part:
        out[SERVICE_LABEL] = part
    return out


# -- a plan: west (primary, n1) with its remote edge (n1), east (primary, n2), north (primary, n3) --

HOSTS = ['east', 'edge', 'north', 'west']
SETTINGS = {'west': {'meshlink_network': 'n1'},
            'edge': {'meshlink_network': 'n1', 'meshlink_istio_role': 'remote', 'meshlink_istio_primary': 'west'},
            'east': {'meshlink_network': 'n2'},
            'north': {'meshlink_network': 'n3'}}


def plan(services=None):
    if services is None:
        services = [
            # exported by east, consumed in west
            seed_service(cluster='east', consumers=[{'cluster': 'west', 'namespace': 'foo'}]),
            # exported by the remote edge (served by west's istiod), consumed in east, with subsets
            seed_service(name='orders', namespace='shop', cluster='edge', consumers=[{'cluster': 'east'}],
                         subsets=SUBSETS, route_subset='v2'),
            # exported by west, consumed nowhere
            seed_service(name='idle', namespace='shop', cluster='west', consumers=[]),
            # exported by north, consumed by the remote edge
            seed_service(name='users', namespace='crm', cluster='north',
                         consumers=[{'cluster': 'edge', 'namespace': 'apps'}]),
        ]
    return build_plan(services, HOSTS, mesh=MESH, topology='multi_primary', cluster_settings=SETTINGS)


# -- names and digests ----------------------------------------------------------------------------

def test_names_istioctl_and_istiod_use():
    assert mn.secret_name('cluster2') == 'istio-remote-secret-cluster2'
    assert mn.reader_account('cluster1') == 'meshlink-reader-cluster1'
    assert mn.reader_role(MESH) == 'meshlink-blue-istio-reader'
    assert mn.reader_binding(MESH, 'cluster1') == 'meshlink-blue-istio-reader-cluster1'
    assert mn.remote_rule_name('httpbin', 'bar') == 'httpbin-bar-remote'
    assert mn.local_rule_name('httpbin', 'bar') == 'httpbin-bar-local'
    assert mn.fqdn({'name': 'httpbin', 'namespace': 'bar'}) == 'httpbin.bar.svc.cluster.local'


BASE_DIGEST = ('c2', 'https://10.0.0.2:6443', 'Q0E=', None)


@pytest.mark.parametrize('changed, same', [
    (('c3', 'https://10.0.0.2:6443', 'Q0E=', None), False),        # the cluster name (the secret's key)
    (('c2', 'https://10.0.0.9:6443', 'Q0E=', None), False),        # the server
    (('c2', 'https://10.0.0.2:6443', 'T1RIRVI=', None), False),    # the CA
    (('c2', 'https://10.0.0.2:6443', None, None), False),          # the CA dropped (system CAs)
    (('c2', 'https://10.0.0.2:6443', 'Q0E=', 'api.c2'), False),    # a TLS server name
    (('c2', 'https://10.0.0.2:6443', 'Q0E=', None), True),         # the same (the token is not in it)
], ids=['name', 'server', 'ca', 'ca-dropped', 'tls-server-name', 'same'])
def test_kubeconfig_digest_changes_with_everything_but_the_token(changed, same):
    assert (mn.kubeconfig_digest(*changed) == mn.kubeconfig_digest(*BASE_DIGEST)) is same
    assert len(mn.kubeconfig_digest(*BASE_DIGEST)) == 16


ROOT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'


@pytest.mark.parametrize('configmap, same_as_root', [
    ({'data': {'root-cert.pem': ROOT}}, True),
    ({'data': {'root-cert.pem': '\n' + ROOT.strip() + '\n\n'}}, True),   # surrounding whitespace ignored
    ({'data': {'root-cert.pem': ROOT.replace('MIIB', 'MIIC')}}, False),
], ids=['root', 'whitespace', 'other-root'])
def test_root_digest(configmap, same_as_root):
    assert (mn.root_digest(configmap) == mn.root_digest({'data': {'root-cert.pem': ROOT}})) is same_as_root


@pytest.mark.parametrize('configmap', [None, {}, {'data': {}}, {'data': {'root-cert.pem': ''}}],
                         ids=['none', 'empty', 'no-data', 'empty-cert'])
def test_root_digest_without_a_root(configmap):
    assert mn.root_digest(configmap) is None


@pytest.mark.parametrize('mesh_text, expected', [
    ('defaultConfig:\n  meshId: mesh1\n', 'mesh1'),
    ('defaultConfig:\n  discoveryAddress: istiod:15012\n  meshId: prod\n', 'prod'),
    ('meshId: top\n', 'top'),
    ('defaultConfig:\n  meshId: 42\n', '42'),
    ('defaultConfig:\n  discoveryAddress: istiod:15012\n', None),
    ('', None),
    ('defaultConfig: [unclosed\n', None),
], ids=['meshId', 'among-others', 'top-level', 'number', 'absent', 'empty', 'not-yaml'])
def test_mesh_id_of(mesh_text, expected):
    assert mn.mesh_id_of({'data': {'mesh': mesh_text}}) == expected


def test_mesh_id_of_without_config():
    assert mn.mesh_id_of(None) is None
    assert mn.mesh_id_of({'data': {}}) is None


# -- evaluate_istiod ------------------------------------------------------------------------------

def istiod(cluster_id=None, version='1.24.3', name='istiod'):
    env = [{'name': 'PILOT_TRACE_SAMPLING', 'value': '1'}]
    if cluster_id is not None:
        env.append({'name': 'CLUSTER_ID', 'value': cluster_id})
    return {'metadata': {'name': name, 'labels': {'app': 'istiod'}},
            'spec': {'template': {'spec': {'containers': [
                {'name': 'discovery', 'image': 'docker.io/istio/pilot:%s' % version, 'env': env}]}}}}


def identity(name='cluster1', role='primary'):
    return {'cluster_name': name, 'role': role}


def namespace(labels=None, annotations=None, name='istio-system'):
    metadata = {'name': name}
    if labels is not None:
        metadata['labels'] = labels
    if annotations is not None:
        metadata['annotations'] = annotations
    return {'metadata': metadata}


def by_name(checks):
    return {c['name']: c for c in checks}


@pytest.mark.parametrize('cluster_id, status, words', [
    ('cluster1', 'pass', ['istiod istiod serves cluster cluster1 (CLUSTER_ID)']),
    ('cluster9', 'fail', ['CLUSTER_ID=cluster9', 'calls this cluster cluster1']),
    (None, 'fail', ['CLUSTER_ID=Kubernetes', 'calls this cluster cluster1']),
    ('', 'fail', ['CLUSTER_ID=Kubernetes']),
], ids=['equal', 'different', 'missing-is-Kubernetes', 'empty-is-Kubernetes'])
def test_evaluate_istiod_primary_cluster_id(cluster_id, status, words):
    checks, facts = mn.evaluate_istiod([istiod(cluster_id)], namespace(), identity(), 'cluster1')
    check = by_name(checks)['istiod']
    assert check['status'] == status
    for word in words:
        assert word in check['message']
    assert facts == {'istio_version': '1.24.3', 'cluster_id': cluster_id or 'Kubernetes'}
    if status == 'fail':
        # the hint names both ways out: the inventory variable or istiod's install value
        assert 'meshlink_istio_cluster_name: %s' % (cluster_id or 'Kubernetes') in check['hint']
        assert 'values.global.multiCluster.clusterName=cluster1' in check['hint']
    assert by_name(checks)['istio_version']['status'] == 'pass'


def test_evaluate_istiod_primary_without_istiod_fails_with_the_way_out():
    checks, facts = mn.evaluate_istiod([], namespace(), identity(), 'cluster1')
    assert [c['name'] for c in checks] == ['istiod']
    assert checks[0]['status'] == 'fail'
    assert 'No istiod Deployment' in checks[0]['message'] and 'cluster1' in checks[0]['message']
    assert 'meshlink_istio_role: remote' in checks[0]['hint']
    assert facts == {'istio_version': None, 'cluster_id': None}


def test_evaluate_istiod_old_release_warns():
    checks, _facts = mn.evaluate_istiod([istiod('cluster1', version='1.18.2')], namespace(), identity(), 'cluster1')
    assert by_name(checks)['istio_version']['status'] == 'warn'
    assert '1.18.2' in by_name(checks)['istio_version']['message']


@pytest.mark.parametrize('deployments, planes, statuses, words', [
    ([], None, ['pass'], ['Remote of cluster1', 'no topology.istio.io/controlPlaneClusters annotation']),
    ([], 'cluster1', ['pass'], ['Remote of cluster1']),
    ([], 'cluster1, cluster4', ['pass'], ['Remote of cluster1']),
    ([], '*', ['pass'], ['Remote of cluster1']),          # Istio: "a list of clusters (or * for any)"
    ([], 'cluster7', ['fail'], ['names cluster7 as control plane', 'the inventory says cluster1']),
    ([istiod('cluster2')], 'cluster1', ['fail'], ['runs an istiod of its own (istiod)']),
    ([istiod('cluster2')], 'cluster7', ['fail', 'fail'], ['istiod of its own', 'names cluster7']),
], ids=['no-annotation', 'annotated', 'among-several', 'any', 'other-primary', 'own-istiod',
        'own-istiod-and-other-primary'])
def test_evaluate_istiod_remote(deployments, planes, statuses, words):
    annotations = {mn.CONTROL_PLANE_ANNOTATION: planes} if planes is not None else None
    checks, facts = mn.evaluate_istiod(deployments, namespace(annotations=annotations),
                                       identity('cluster2', 'remote'), 'cluster1')
    assert [c['status'] for c in checks] == statuses
    assert all(c['name'] == 'istiod' for c in checks)
    text = ' '.join(c['message'] for c in checks)
    for word in words:
        assert word in text
    assert facts['cluster_id'] is None
    assert facts['istio_version'] == ('1.24.3' if deployments else None)


# -- evaluate_network -----------------------------------------------------------------------------

def eastwest_service(network='n1', name='istio-eastwestgateway', ports=(15021, 15443, 15012, 15017), ingress=None,
                     extra_labels=None, annotations=None, external_ips=None, service_type='LoadBalancer'):
    service_labels = {'istio': 'eastwestgateway', 'app': 'istio-eastwestgateway'}
    if network is not None:
        service_labels[NET] = network
    service_labels.update(extra_labels or {})
    metadata = {'name': name, 'namespace': 'istio-system', 'labels': service_labels}
    if annotations:
        metadata['annotations'] = annotations
    spec = {'type': service_type, 'ports': [{'name': 'p%d' % p, 'port': p, 'nodePort': 30000 + p % 1000}
                                            for p in ports]}
    if external_ips:
        spec['externalIPs'] = list(external_ips)
    return {'metadata': metadata, 'spec': spec,
            'status': {'loadBalancer': {'ingress': ingress if ingress is not None else [{'ip': '192.0.2.40'}]}}}


def istiod_deployment(network=None):
    template_labels = {'app': 'istiod'}
    if network is not None:
        template_labels[NET] = network
    return {'metadata': {'name': 'istiod'}, 'spec': {'template': {'metadata': {'labels': template_labels}}}}


@pytest.mark.parametrize('ns, gateway, deployment, status, words', [
    (namespace(), None, None, 'pass', ['not labelled yet: setup labels it']),
    (namespace({NET: 'n1'}), eastwest_service('n1'), istiod_deployment('n1'), 'pass', ['Network n1', 'labelled)']),
    (namespace({NET: 'n1'}), None, istiod_deployment(), 'pass', ['labelled']),     # istiod's pods unlabelled: ok
    (namespace({NET: 'n2'}), None, None, 'fail', ['the Istio namespace is labelled topology.istio.io/network=n2']),
    (namespace(), eastwest_service('n2'), None, 'fail',
     ['the east-west gateway Service istio-eastwestgateway has topology.istio.io/network=n2']),
    (namespace(), eastwest_service(None), None, 'fail', ['istio-eastwestgateway has topology.istio.io/network=(none)']),
    (namespace(), None, istiod_deployment('n2'), 'fail', ["istiod's pods are labelled topology.istio.io/network=n2"]),
    (namespace({NET: 'n7'}), eastwest_service('n8'), istiod_deployment('n9'), 'fail',
     ['labelled topology.istio.io/network=n7', 'has topology.istio.io/network=n8',
      "istiod's pods are labelled topology.istio.io/network=n9"]),
], ids=['absent-label', 'all-agree', 'pods-unlabelled', 'namespace-differs', 'gateway-differs', 'gateway-unlabelled',
        'istiod-differs', 'all-three-differ'])
def test_evaluate_network(ns, gateway, deployment, status, words):
    checks = mn.evaluate_network(ns, gateway, deployment, 'n1')
    assert len(checks) == 1 and checks[0]['name'] == 'network' and checks[0]['status'] == status
    for word in words:
        assert word in checks[0]['message']
    if status == 'fail':
        assert checks[0]['message'].startswith('The inventory puts this cluster on network n1, but ')
        assert 'meshlink_network' in checks[0]['hint']


# -- gateway_address ------------------------------------------------------------------------------

def node(*addresses, node_labels=None):
    return {'metadata': {'name': 'node', 'labels': node_labels or {}},
            'status': {'addresses': [{'type': t, 'address': a} for t, a in addresses]}}


ZONE_A = {'topology.kubernetes.io/zone': 'a'}
ZONE_B = {'topology.kubernetes.io/zone': 'b'}
SELECTED = {mn.NODE_SELECTOR_ANNOTATION: '{"topology.kubernetes.io/zone": "a"}'}   # JSON, as istiod reads it
NODE_PORT_GATEWAY = dict(ingress=[], service_type='NodePort', annotations=SELECTED)


@pytest.mark.parametrize('service, nodes, expected', [
    (eastwest_service(), [], {'address': '192.0.2.40', 'port': 15443, 'kind': 'ip'}),
    (eastwest_service(ingress=[{'hostname': 'ew.elb.example.com'}]), [],
     {'address': 'ew.elb.example.com', 'port': 15443, 'kind': 'hostname'}),
    (eastwest_service(ingress=[{'hostname': 'ew.elb.example.com', 'ip': '192.0.2.41'}]), [],
     {'address': '192.0.2.41', 'port': 15443, 'kind': 'ip'}),
    (eastwest_service(ingress=[], external_ips=['198.51.100.7', '198.51.100.8']), [],
     {'address': '198.51.100.7', 'port': 15443, 'kind': 'external_ip'}),
    (eastwest_service(**NODE_PORT_GATEWAY), [node(('ExternalIP', '203.0.113.5'), node_labels=ZONE_A)],
     {'address': '203.0.113.5', 'port': 30443, 'kind': 'node'}),
    # istiod publishes a node's ExternalIP, whatever the order of its addresses; a node without one is skipped
    (eastwest_service(**NODE_PORT_GATEWAY), [node(('InternalIP', '10.0.0.5'), ('ExternalIP', '203.0.113.5'),
                                                  node_labels=ZONE_A)],
     {'address': '203.0.113.5', 'port': 30443, 'kind': 'node'}),
    (eastwest_service(**NODE_PORT_GATEWAY), [node(('InternalIP', '10.0.0.5'), node_labels=ZONE_A)], None),
    # only the nodes the annotation's labels select
    (eastwest_service(**NODE_PORT_GATEWAY), [node(('ExternalIP', '203.0.113.6'), node_labels=ZONE_B),
                                             node(('ExternalIP', '203.0.113.5'), node_labels=ZONE_A)],
     {'address': '203.0.113.5', 'port': 30443, 'kind': 'node'}),
    # a nodePort without the annotation, or the annotation on a pending LoadBalancer: istiod uses no node
    (eastwest_service(ingress=[], service_type='NodePort'), [node(('ExternalIP', '203.0.113.5'))], None),
    (eastwest_service(ingress=[], annotations=SELECTED), [node(('ExternalIP', '203.0.113.5'), node_labels=ZONE_A)],
     None),
    (eastwest_service(ingress=[], extra_labels={mn.GATEWAY_PORT_LABEL: '16443'}, external_ips=['198.51.100.7']), [],
     {'address': '198.51.100.7', 'port': 16443, 'kind': 'external_ip'}),
    (eastwest_service(extra_labels={mn.GATEWAY_PORT_LABEL: '16443'}), [],
     {'address': '192.0.2.40', 'port': 16443, 'kind': 'ip'}),
    (eastwest_service(extra_labels={mn.GATEWAY_PORT_LABEL: 'tls'}), [],      # not a number: 15443
     {'address': '192.0.2.40', 'port': 15443, 'kind': 'ip'}),
    (eastwest_service(ingress=[]), [], None),
    (eastwest_service(ingress=[{}]), [], None),
], ids=['lb-ip', 'lb-hostname', 'lb-ip-first', 'external-ips', 'node-port', 'node-external-ip-preferred',
        'node-internal-ip-only', 'node-selected-by-labels', 'node-port-without-annotation', 'annotated-load-balancer',
        'gateway-port-label', 'gateway-port-label-lb', 'gateway-port-label-not-a-number', 'nothing', 'empty-ingress'])
def test_gateway_address(service, nodes, expected):
    assert mn.gateway_address(service, nodes) == expected


# -- evaluate_eastwest ----------------------------------------------------------------------------

@pytest.mark.parametrize('services, istiod_ports, status, words, address', [
    ([], False, 'fail', ['No east-west gateway Service in istio-system (selector istio=eastwestgateway)'], None),
    ([eastwest_service(), eastwest_service(name='istio-eastwestgateway-2')], False, 'fail',
     ['matches 2 Services in istio-system (istio-eastwestgateway, istio-eastwestgateway-2)'], None),
    ([eastwest_service(ports=(15021, 15012, 15017))], False, 'fail', ['has no port 15443'], None),
    ([eastwest_service(ports=(15021, 15443))], False, 'pass', ['istio-system/istio-eastwestgateway at 192.0.2.40:15443'],
     {'address': '192.0.2.40', 'port': 15443, 'kind': 'ip'}),
    ([eastwest_service(ports=(15021, 15443))], True, 'fail', ['has no port 15012, 15017'], None),
    ([eastwest_service(ports=(15021, 15443, 15012))], True, 'fail', ['has no port 15017'], None),
    ([eastwest_service()], True, 'pass', ['(ip)'], {'address': '192.0.2.40', 'port': 15443, 'kind': 'ip'}),
    ([eastwest_service(ingress=[])], False, 'fail', ['has no address', mn.NODE_SELECTOR_ANNOTATION], None),
], ids=['none', 'two', 'missing-15443', 'no-remotes-no-istiod-ports', 'remotes-need-15012-15017',
        'remotes-need-15017', 'remotes-all-ports', 'no-address'])
def test_evaluate_eastwest(services, istiod_ports, status, words, address):
    check, found = mn.evaluate_eastwest(services, [], istiod_ports, 'istio=eastwestgateway', 'istio-system')
    assert check['name'] == 'eastwest_gateway' and check['status'] == status
    for word in words:
        assert word in check['message']
    assert found == address
    if status == 'fail':
        assert check['hint']


# -- evaluate_dns ---------------------------------------------------------------------------------

CAPTURE_ON = {'data': {'mesh': 'defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n'}}
CAPTURE_OFF = {'data': {'mesh': 'defaultConfig:\n  proxyMetadata: {}\n'}}

# (mode, capture, consumes, status, stubs, words)
DNS_CASES = [
    ('auto', True, True, 'pass', False, 'DNS proxy answers'),
    ('auto', False, True, 'pass', True, 'stub Service per remote service (DNS proxying is off)'),
    ('stub_services', True, True, 'pass', True, 'stub Service per remote service (asked)'),
    ('stub_services', False, True, 'pass', True, 'stub Service per remote service (asked)'),
    ('dns_proxy', True, True, 'pass', False, 'DNS proxy answers'),
    ('dns_proxy', False, True, 'fail', False, 'dns_proxy but DNS proxying is off'),
]
DNS_CASES += [(mode, capture, False, 'pass', False, 'consumes no service')
              for mode in ('auto', 'stub_services', 'dns_proxy') for capture in (True, False)]


@pytest.mark.parametrize('mode, capture, consumes, status, stubs, words', DNS_CASES,
                         ids=['%s-%s-%s' % (c[0], 'capture' if c[1] else 'nocapture', 'consumes' if c[2] else 'idle')
                              for c in DNS_CASES])
def test_evaluate_dns(mode, capture, consumes, status, stubs, words):
    check, needs_stubs = mn.evaluate_dns(CAPTURE_ON if capture else CAPTURE_OFF, mode, consumes)
    assert check['name'] == 'dns' and check['status'] == status
    assert needs_stubs is stubs
    assert words in check['message']
    if status == 'fail':
        assert 'ISTIO_META_DNS_CAPTURE' in check['hint'] and 'meshlink_multinetwork_dns: auto' in check['hint']


def test_evaluate_dns_without_mesh_config_writes_stubs():
    check, needs_stubs = mn.evaluate_dns(None, 'auto', True)
    assert check['status'] == 'pass' and needs_stubs is True


# -- evaluate_peer_api_server ---------------------------------------------------------------------

def resolver(known=('api.c1.example.com',)):
    asked = []

    def resolve(host, port):
        asked.append(host)
        if host not in known:
            raise OSError('[Errno -2] Name or service not known')
        return [(2, 1, 6, '', ('192.0.2.1', 0))]
    resolve.asked = asked
    return resolve


# (server, given, allow_loopback, status, words, names looked up)
PEER_SERVERS = [
    ('https://127.0.0.1:6443', False, False, 'fail', ['loopback address', 'the address this run connects to'], []),
    ('https://127.0.0.1:6443', True, False, 'fail', ['(meshlink_api_server_for_peers)'], []),
    ('https://[::1]:6443', False, False, 'fail', ['loopback'], []),
    ('https://localhost:6443', False, False, 'fail', ['loopback'], []),
    ('https://LOCALHOST:6443', False, False, 'fail', ['loopback'], []),
    ('https://kind.localhost:6443', False, False, 'fail', ['loopback'], []),
    ('https://127.0.0.1:6443', False, True, 'warn', ['loopback address', 'works only where every istiod runs'], []),
    ('https://localhost:6443', False, True, 'warn', ['loopback'], []),
    # given by the user: the istiods resolve it from their networks, the controller may not
    ('https://api.nowhere.invalid:6443', True, False, 'warn',
     ['(meshlink_api_server_for_peers); the controller cannot resolve api.nowhere.invalid', 'Name or service not known',
      "the other clusters' istiods must"], ['api.nowhere.invalid']),
    # the run's own connection: it just connected, a name that does not resolve here is a contradiction
    ('https://api.nowhere.invalid:6443', False, False, 'fail',
     ['api.nowhere.invalid (the address this run connects to) does not resolve here'], ['api.nowhere.invalid']),
    ('https://10.1.2.3:6443', False, False, 'pass', ['Peers reach this API server at https://10.1.2.3:6443'], []),
    ('https://[2001:db8::1]:6443', True, False, 'pass', ['(meshlink_api_server_for_peers)'], []),
    ('https://api.c1.example.com', True, False, 'pass', ['https://api.c1.example.com'], ['api.c1.example.com']),
]


@pytest.mark.parametrize('server, given, allow, status, words, asked', PEER_SERVERS,
                         ids=['ipv4-loopback', 'given-loopback', 'ipv6-loopback', 'localhost', 'LOCALHOST',
                              'dot-localhost', 'allowed-loopback', 'allowed-localhost', 'unresolvable-given',
                              'unresolvable-connected', 'ip',
                              'ipv6', 'resolvable'])
def test_evaluate_peer_api_server(server, given, allow, status, words, asked):
    resolve = resolver()
    check = mn.evaluate_peer_api_server(server, given, allow, resolve=resolve)
    assert check['name'] == 'peer_api_server' and check['status'] == status
    for word in words:
        assert word in check['message']
    if status == 'fail':
        assert 'meshlink_api_server_for_peers' in check['hint']
    assert resolve.asked == asked          # addresses and loopback names are judged without a lookup


def test_evaluate_peer_api_server_loopback_hint_names_the_lab_switch():
    check = mn.evaluate_peer_api_server('https://127.0.0.1:6443', False, True, resolve=resolver())
    assert 'meshlink_allow_loopback_api_server is true' in check['hint']
    check = mn.evaluate_peer_api_server('https://127.0.0.1:6443', False, False, resolve=resolver())
    assert 'istio#31081' in check['hint']


# -- evaluate_exported ----------------------------------------------------------------------------

def source_service(ports):
    return {'metadata': {'name': 'httpbin', 'namespace': 'bar'}, 'spec': {'selector': {'app': 'httpbin'}, 'ports': ports}}


def test_evaluate_exported_copies_the_ports_of_the_found_service():
    part = plan()['clusters']['east']
    found = source_service([
        {'name': 'http', 'port': 8000, 'targetPort': 8080, 'protocol': 'TCP', 'appProtocol': 'http'},
        {'name': 'grpc', 'port': 9000, 'targetPort': 9090, 'protocol': 'TCP', 'nodePort': 31000},
    ])
    check, ports = mn.evaluate_exported(part, {'httpbin.bar': found}, samples=False)
    assert check == {'name': 'exported_services', 'status': 'pass', 'message': 'Exported: httpbin.bar', 'hint': ''}
    # name, port, protocol, appProtocol only: targetPort and nodePort are the source's own
    assert ports == {'httpbin.bar': [{'name': 'http', 'port': 8000, 'protocol': 'TCP', 'appProtocol': 'http'},
                                     {'name': 'grpc', 'port': 9000, 'protocol': 'TCP'}]}


@pytest.mark.parametrize('ports, expected', [
    ([{'name': 'http1', 'number': 8000, 'protocol': 'http'}], [{'name': 'http', 'port': 8000, 'protocol': 'TCP'}]),
    ([{'name': 'web', 'number': 8000, 'protocol': 'HTTP'}, {'name': 'rpc', 'number': 9000, 'protocol': 'GRPC'}],
     [{'name': 'http-web', 'port': 8000, 'protocol': 'TCP'}, {'name': 'grpc-rpc', 'port': 9000, 'protocol': 'TCP'}]),
], ids=['one-port', 'two-ports'])
def test_evaluate_exported_missing_with_sample_apps_takes_the_sample_port_names(ports, expected):
    services = [seed_service(cluster='east', consumers=[{'cluster': 'west'}], ports=ports)]
    part = plan(services)['clusters']['east']
    check, found = mn.evaluate_exported(part, {'httpbin.bar': None}, samples=True)
    assert check['status'] == 'pass'
    assert found == {'httpbin.bar': expected}


def test_evaluate_exported_missing_without_sample_apps_fails_naming_it():
    part = plan()['clusters']['edge']
    check, ports = mn.evaluate_exported(part, {'orders.shop': None}, samples=False)
    assert check['status'] == 'fail'
    assert check['message'] == 'Exported but missing here: Service shop/orders'
    assert 'meshlink_services' in check['hint']
    assert ports == {}


def test_evaluate_exported_nothing_exported():
    part = plan()['clusters']['north']
    part = dict(part, exports=[])
    check, ports = mn.evaluate_exported(part, {}, samples=False)
    assert check['status'] == 'pass' and 'exports no service' in check['message'] and ports == {}


# -- exposed_hosts and the east-west Gateway --------------------------------------------------------

@pytest.mark.parametrize('primary, hosts', [
    # its own consumed export is not there (idle has no consumer); its remote edge's is
    ('west', ['orders.shop.svc.cluster.local']),
    ('east', ['httpbin.bar.svc.cluster.local']),
    ('north', ['users.crm.svc.cluster.local']),
], ids=['west-serves-edge', 'east', 'north'])
def test_exposed_hosts_are_the_consumed_exports_of_the_primary_and_its_remotes(primary, hosts):
    assert mn.exposed_hosts(plan(), primary) == hosts


EASTWEST = dict(mn.EASTWEST_DEFAULTS)


@pytest.mark.parametrize('expose_all, hosts', [(False, ['orders.shop.svc.cluster.local']), (True, ['*.local'])],
                         ids=['allow-list', 'expose-all'])
def test_render_eastwest_gateway(expose_all, hosts):
    settings = dict(EASTWEST, expose_all=expose_all)
    assert mn.render_eastwest_gateway(plan(), 'west', settings, MESH) == {
        'apiVersion': 'networking.istio.io/v1', 'kind': 'Gateway',
        'metadata': {'name': 'cross-network-gateway', 'namespace': 'istio-system', 'labels': labels(part='eastwest')},
        'spec': {'selector': {'istio': 'eastwestgateway'},
                 'servers': [{'port': {'number': 15443, 'name': 'tls', 'protocol': 'TLS'},
                              'tls': {'mode': 'AUTO_PASSTHROUGH'}, 'hosts': hosts}]},
    }


def test_render_eastwest_gateway_takes_the_selector_name_and_namespace_given():
    settings = dict(EASTWEST, selector={'app': 'ew', 'istio.io/rev': 'canary'}, namespace='gateways',
                    gateway_name='ew-passthrough')
    gateway = mn.render_eastwest_gateway(plan(), 'east', settings, MESH)
    assert (gateway['metadata']['namespace'], gateway['metadata']['name']) == ('gateways', 'ew-passthrough')
    assert gateway['spec']['selector'] == {'app': 'ew', 'istio.io/rev': 'canary'}
    assert gateway['spec']['selector'] is not settings['selector']      # a copy: the settings stay untouched


def test_render_istiod_exposure():
    gateway, route = mn.render_istiod_exposure(EASTWEST, 'istio-system', MESH)
    assert gateway == {
        'apiVersion': 'networking.istio.io/v1', 'kind': 'Gateway',
        'metadata': {'name': 'istiod-gateway', 'namespace': 'istio-system', 'labels': labels(part='eastwest')},
        'spec': {'selector': {'istio': 'eastwestgateway'}, 'servers': [
            {'port': {'name': 'tls-istiod', 'number': 15012, 'protocol': 'tls'}, 'tls': {'mode': 'PASSTHROUGH'},
             'hosts': ['*']},
            {'port': {'name': 'tls-istiodwebhook', 'number': 15017, 'protocol': 'tls'}, 'tls': {'mode': 'PASSTHROUGH'},
             'hosts': ['*']}]}}
    assert route == {
        'apiVersion': 'networking.istio.io/v1', 'kind': 'VirtualService',
        'metadata': {'name': 'istiod-vs', 'namespace': 'istio-system', 'labels': labels(part='eastwest')},
        'spec': {'hosts': ['*'], 'gateways': ['istiod-gateway'], 'tls': [
            {'match': [{'port': 15012, 'sniHosts': ['*']}],
             'route': [{'destination': {'host': 'istiod.istio-system.svc.cluster.local', 'port': {'number': 15012}}}]},
            {'match': [{'port': 15017, 'sniHosts': ['*']}],
             'route': [{'destination': {'host': 'istiod.istio-system.svc.cluster.local', 'port': {'number': 443}}}]}]}}


# -- the reader RBAC ------------------------------------------------------------------------------

def core_resources(rules):
    return next(r['resources'] for r in rules if r['apiGroups'] == [''])


@pytest.mark.parametrize('secrets', [True, False], ids=['with-secrets', 'without-secrets'])
def test_reader_rules_are_istios_reader_rules(secrets):
    rules = mn.reader_rules(secrets)
    assert ('secrets' in core_resources(rules)) is secrets
    assert set(core_resources(rules)) >= {'endpoints', 'pods', 'services', 'nodes', 'namespaces', 'configmaps'}
    by_group = {tuple(r['apiGroups']): r for r in rules}
    assert by_group[('discovery.k8s.io',)] == {'apiGroups': ['discovery.k8s.io'], 'resources': ['endpointslices'],
                                               'verbs': ['get', 'list', 'watch']}
    assert by_group[('authentication.k8s.io',)]['verbs'] == ['create']
    assert by_group[('authorization.k8s.io',)]['verbs'] == ['create']
    serviceexports = next(r for r in rules if r['resources'] == ['serviceexports'])
    assert serviceexports['verbs'] == ['get', 'list', 'watch', 'create', 'delete']
    assert 'networking.istio.io' in by_group[tuple(rules[0]['apiGroups'])]['apiGroups']
    # nothing else writes: reads, and the two reviews and serviceexports
    for rule in rules:
        writes = set(rule['verbs']) - {'get', 'list', 'watch'}
        assert not writes or rule['resources'] in (['serviceexports'], ['tokenreviews'], ['subjectaccessreviews'])


@pytest.mark.parametrize('secrets', [True, False], ids=['with-secrets', 'without-secrets'])
def test_render_reader_role(secrets):
    assert mn.render_reader_role(MESH, secrets) == {
        'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole',
        'metadata': {'name': 'meshlink-blue-istio-reader', 'labels': labels(part='remote-reader')},
        'rules': mn.reader_rules(secrets)}


def test_render_reader_account_and_binding():
    account, binding = mn.render_reader(MESH, 'cluster1', 'istio-system')
    assert account == {'apiVersion': 'v1', 'kind': 'ServiceAccount',
                       'metadata': {'name': 'meshlink-reader-cluster1', 'namespace': 'istio-system',
                                    'labels': labels(part='remote-reader')}}
    assert binding == {
        'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
        'metadata': {'name': 'meshlink-blue-istio-reader-cluster1', 'labels': labels(part='remote-reader')},
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'meshlink-blue-istio-reader'},
        'subjects': [{'kind': 'ServiceAccount', 'name': 'meshlink-reader-cluster1', 'namespace': 'istio-system'}]}


# -- the remote secret ----------------------------------------------------------------------------

def test_render_remote_secret_is_what_istiod_reads():
    config = render_kubeconfig('cluster2', 'https://10.0.0.2:6443', 'tok-en', ca='Q0E=')
    secret = mn.render_remote_secret(MESH, 'cluster2', 'istio-system', config, '2030-01-01T00:00:00Z', 'abcd')
    assert secret['apiVersion'] == 'v1' and secret['kind'] == 'Secret' and secret['type'] == 'Opaque'
    assert secret['metadata']['name'] == 'istio-remote-secret-cluster2'
    assert secret['metadata']['namespace'] == 'istio-system'
    assert secret['metadata']['labels'] == dict(labels(part='remote-secret'), **{'istio/multiCluster': 'true'})
    assert secret['metadata']['annotations'] == {'networking.istio.io/cluster': 'cluster2',
                                                 'meshlink.io/token-expires': '2030-01-01T00:00:00Z',
                                                 'meshlink.io/kubeconfig-digest': 'abcd'}
    assert list(secret['data']) == ['cluster2']                 # one key: the peer's cluster name (istiod's ID)
    kubeconfig = yaml.safe_load(base64.b64decode(secret['data']['cluster2']))
    assert kubeconfig == config
    assert kubeconfig['current-context'] == 'cluster2'
    assert kubeconfig['clusters'] == [{'name': 'cluster2', 'cluster': {
        'server': 'https://10.0.0.2:6443', 'certificate-authority-data': 'Q0E='}}]
    assert kubeconfig['users'] == [{'name': 'cluster2', 'user': {'token': 'tok-en'}}]   # inline, no exec or file


# -- stub Services and subset rules ---------------------------------------------------------------

def test_render_stub_service_copies_the_ports_and_has_no_selector():
    service = plan()['clusters']['west']['consumes'][0]
    ports = [{'name': 'http', 'port': 8000, 'protocol': 'TCP', 'appProtocol': 'http'}]
    stub = mn.render_stub_service(service, ports, MESH)
    assert stub == {'apiVersion': 'v1', 'kind': 'Service',
                    'metadata': {'name': 'httpbin', 'namespace': 'bar',
                                 'labels': dict(labels(part='httpbin.bar'), **{COMPONENT_LABEL: 'stub-service'})},
                    'spec': {'ports': ports}}
    assert stub['spec']['ports'][0] is not ports[0]


@pytest.mark.parametrize('consumer, names', [
    (True, [('DestinationRule', 'clients', 'orders-shop-remote'), ('VirtualService', 'clients', 'orders-shop-remote')]),
    (False, [('DestinationRule', 'shop', 'orders-shop-local')]),
], ids=['consumer', 'source'])
def test_render_subset_rules(consumer, names):
    service = plan()['clusters']['edge']['exports'][0]
    namespace_ = 'clients' if consumer else 'shop'
    objects = mn.render_subset_rules(service, namespace_, MESH, consumer=consumer)
    assert [(o['kind'], o['metadata']['namespace'], o['metadata']['name']) for o in objects] == names
    rule = objects[0]
    assert rule['metadata']['labels'] == labels(part='orders.shop')
    assert rule['spec'] == {'host': 'orders.shop.svc.cluster.local',
                            'subsets': [{'name': 'v1', 'labels': {'version': 'v1'}},
                                        {'name': 'v2', 'labels': {'version': 'v2'}}]}
    if consumer:
        assert objects[1]['spec'] == {'hosts': ['orders.shop.svc.cluster.local'], 'http': [
            {'route': [{'destination': {'host': 'orders.shop.svc.cluster.local', 'subset': 'v2'}}]}]}


def test_render_subset_rules_without_subsets_is_nothing():
    service = plan()['clusters']['east']['exports'][0]
    assert mn.render_subset_rules(service, 'bar', MESH, consumer=True) == []
    assert mn.render_subset_rules(service, 'bar', MESH, consumer=False) == []


def test_render_network_label_notes_who_added_it():
    assert mn.render_network_label('istio-system', 'n1', MESH) == {
        'apiVersion': 'v1', 'kind': 'Namespace',
        'metadata': {'name': 'istio-system', 'labels': {NET: 'n1'},
                     'annotations': {'meshlink.io/network-label-added-by': MESH}}}


def test_desired_compares_istio_specs_whole_and_the_rest_by_containment():
    objects = [mn.render_eastwest_gateway(plan(), 'west', EASTWEST, MESH), mn.render_reader_role(MESH, True)]
    assert [d.compare for d in mn.desired(objects)] == ['spec', 'contains']


# -- token_needs_renewal --------------------------------------------------------------------------

NOW = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
DIGEST = 'd1'


def secret_meta(**overrides):
    meta = {'exists': True, 'ours': True, 'expires': '2026-05-02T12:00:00Z', 'digest': DIGEST}  # 24 h left
    meta.update(overrides)
    return meta


# (secret metadata, rotate, renewal window seconds, expected reason or None)
RENEWALS = [
    (None, False, 3600, 'no remote secret yet'),
    ({}, False, 3600, 'no remote secret yet'),
    (secret_meta(exists=False), False, 3600, 'no remote secret yet'),
    (secret_meta(ours=False), False, 3600, None),                      # a user's: the inspection reports it
    (secret_meta(ours=False), True, 3600, None),                       # ... even when rotation is asked
    (secret_meta(), True, 3600, 'rotation asked (meshlink_remote_secret_rotate)'),
    (secret_meta(digest='other'), False, 3600, 'the server, CA or cluster name changed'),
    (secret_meta(digest=None), False, 3600, 'the server, CA or cluster name changed'),
    (secret_meta(), False, 3600, None),                                # 24 h left, window 1 h
    (secret_meta(), False, 86400, 'its token expires in 86400s (renewal window 86400s)'),    # on the edge
    (secret_meta(), False, 90000, 'its token expires in 86400s (renewal window 90000s)'),
    (secret_meta(expires='2026-04-30T12:00:00Z'), False, 3600, 'its token expires in 0s (renewal window 3600s)'),
    (secret_meta(expires='tomorrow'), False, 3600, 'its expiry is unknown'),
    (secret_meta(expires=None), False, 3600, 'its expiry is unknown'),
    (secret_meta(expires='2026-05-02 12:00:00'), False, 3600, 'its expiry is unknown'),
]


@pytest.mark.parametrize('meta, rotate, window, expected', RENEWALS,
                         ids=['absent', 'empty', 'not-existing', 'foreign', 'foreign-rotate', 'rotate', 'digest-changed',
                              'digest-missing', 'outside-window', 'edge-of-window', 'inside-window', 'expired',
                              'unparsable', 'no-expiry', 'not-rfc3339'])
def test_token_needs_renewal(meta, rotate, window, expected):
    assert mn.token_needs_renewal(meta, DIGEST, window, rotate, NOW) == expected
