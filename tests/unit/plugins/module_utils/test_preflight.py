# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._preflight import (
    CHECKS,
    corefile_has_global,
    evaluate_egress_gateway,
    evaluate_global_destination_rule,
    evaluate_global_dns,
    evaluate_ingress_gateway,
    evaluate_multicluster_gateway,
    evaluate_vip_pool,
    failing,
    kube_dns_has_global,
    mesh_dns_capture,
    preflight_report,
)
from meshlink_fakes import FakeCluster, seed_service

COREFILE_WITH_GLOBAL = """.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa
    forward . /etc/resolv.conf
}
global:53 {
    errors
    cache 30
    forward . 10.96.0.77:53
}
"""


@pytest.mark.parametrize('corefile, expected', [
    (COREFILE_WITH_GLOBAL, True),
    ('.:53 {\n  forward . /etc/resolv.conf\n}\n', False),
    ('.global:53 {\n forward . 1.2.3.4\n}', True),
    ('# global:53 is planned\n.:53 {}', False),
    (None, False),
])
def test_corefile(corefile, expected):
    assert corefile_has_global(corefile) is expected


@pytest.mark.parametrize('stub_domains, expected', [
    (json.dumps({'global': ['10.96.0.77']}), True),
    (json.dumps({'acme.local': ['1.2.3.4']}), False),
    ('not json', False),
    (None, False),
])
def test_kube_dns(stub_domains, expected):
    assert kube_dns_has_global(stub_domains) is expected


@pytest.mark.parametrize('mesh, expected', [
    ('defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n', True),
    ('defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "false"\n', False),
    ('defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n', False),
    ('accessLogFile: /dev/stdout\n', False),
    (': bad yaml: [', False),
    (None, False),
])
def test_mesh_dns_capture(mesh, expected):
    assert mesh_dns_capture(mesh) is expected


def svc(name, ports, labels=None):
    return {'metadata': {'name': name, 'namespace': 'istio-system', 'labels': labels or {'app': name}},
            'spec': {'ports': [{'name': 'p%d' % p, 'port': p} for p in ports]}}


@pytest.mark.parametrize('services, exports, status, text', [
    ([svc('istio-ingressgateway', [80, 15443])], True, 'pass', 'exposes port 15443'),
    ([svc('istio-ingressgateway', [80, 443])], True, 'fail', 'has no port 15443'),
    ([], True, 'fail', 'No Service labelled app=istio-ingressgateway'),
    ([], False, 'pass', 'not needed'),
])
def test_ingress_gateway(services, exports, status, text):
    check = evaluate_ingress_gateway(services, exports)
    assert (check['name'], check['status']) == ('ingress_gateway', status) and text in check['message']


def gateway(hosts, port=15443, mode='AUTO_PASSTHROUGH'):
    return {'metadata': {'name': 'istio-multicluster-ingressgateway', 'namespace': 'istio-system'},
            'spec': {'servers': [{'hosts': hosts, 'port': {'number': port, 'name': 'tls', 'protocol': 'TLS'},
                                  'tls': {'mode': mode}}]}}


@pytest.mark.parametrize('gateways, exports, status', [
    ([gateway(['*.global'])], True, 'pass'),
    ([gateway(['*/*.global'])], True, 'pass'),
    ([gateway(['*'])], True, 'pass'),
    ([gateway(['*.global'], mode='PASSTHROUGH')], True, 'fail'),
    ([gateway(['*.global'], port=443)], True, 'fail'),
    ([gateway(['*.example.com'])], True, 'fail'),
    ([], True, 'fail'),
    ([], False, 'pass'),
])
def test_multicluster_gateway(gateways, exports, status):
    assert evaluate_multicluster_gateway(gateways, exports)['status'] == status


def rule(host, mode):
    spec = {'host': host}
    if mode:
        spec['trafficPolicy'] = {'tls': {'mode': mode}}
    return {'metadata': {'name': 'istio-multicluster-destinationrule', 'namespace': 'istio-system'}, 'spec': spec}


@pytest.mark.parametrize('rules, consumes, status, text', [
    ([rule('*.global', 'ISTIO_MUTUAL')], True, 'pass', 'sets ISTIO_MUTUAL'),
    ([rule('*.global', 'DISABLE')], True, 'fail', 'has tls mode DISABLE'),
    ([rule('*.global', None)], True, 'fail', '(unset)'),
    ([rule('httpbin.bar.global', 'ISTIO_MUTUAL')], True, 'fail', 'No DestinationRule for *.global'),
    ([], False, 'pass', 'not needed'),
])
def test_global_destination_rule(rules, consumes, status, text):
    check = evaluate_global_destination_rule(rules, consumes)
    assert check['status'] == status and text in check['message']


def config_map(key, value):
    return {'data': {key: value}}


@pytest.mark.parametrize('coredns, kube_dns, istio, consumes, status', [
    (config_map('Corefile', COREFILE_WITH_GLOBAL), None, None, True, 'pass'),
    (None, config_map('stubDomains', '{"global": ["10.0.0.1"]}'), None, True, 'pass'),
    (config_map('Corefile', '.:53 {}'), None,
     config_map('mesh', 'defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n'), True, 'pass'),
    (config_map('Corefile', '.:53 {}'), None, config_map('mesh', 'accessLogFile: /dev/stdout'), True, 'fail'),
    (None, None, None, False, 'pass'),
])
def test_global_dns(coredns, kube_dns, istio, consumes, status):
    check = evaluate_global_dns(coredns, kube_dns, istio, consumes)
    assert check['status'] == status
    if status == 'fail':
        assert 'Could not resolve host' in check['hint']


def egress_deployment(view):
    env = [{'name': 'ISTIO_META_REQUESTED_NETWORK_VIEW', 'value': view}] if view else []
    return {'metadata': {'name': 'istio-egressgateway', 'labels': {'app': 'istio-egressgateway'}},
            'spec': {'template': {'spec': {'containers': [{'name': 'istio-proxy', 'env': env}]}}}}


@pytest.mark.parametrize('services, deployments, needs, status', [
    ([], [], False, 'pass'),
    ([svc('istio-egressgateway', [443, 15443])], [egress_deployment('external')], True, 'pass'),
    ([svc('istio-egressgateway', [443, 15443])], [egress_deployment('network1,external')], True, 'pass'),
    ([svc('istio-egressgateway', [443, 15443])], [egress_deployment(None)], True, 'fail'),
    ([], [egress_deployment('external')], True, 'fail'),
    ([svc('istio-egressgateway', [443])], [], True, 'warn'),
])
def test_egress_gateway(services, deployments, needs, status):
    assert evaluate_egress_gateway(services, deployments, needs)['status'] == status


@pytest.mark.parametrize('pool, version, status', [
    (None, (1, 7, 8), 'pass'),
    (None, (1, 2, 0), 'pass'),
    ('127.255.0.0/16', (1, 7, 8), 'warn'),
    ('240.240.0.0/16', (1, 7, 8), 'warn'),
    ('240.0.0.1/16', (1, 7, 8), 'fail'),
])
def test_vip_pool(pool, version, status):
    assert evaluate_vip_pool(pool, version)['status'] == status


def test_failing_by_fail_on():
    checks = [{'status': 'pass'}, {'status': 'warn'}, {'status': 'fail'}]
    assert [len(failing(checks, f)) for f in ('fail', 'warn', 'never')] == [1, 2, 0]


def lab_cluster(version='1.7.8', dns=True, legacy=False):
    """Objects of a cluster set up for the .global procedure (like the lab's manifests)."""
    env = [{'name': 'PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH', 'value': 'true'}] if legacy else []
    objects = [
        ('namespaces', {'metadata': {'name': 'istio-system'}}),
        ('deployments', {'metadata': {'name': 'istiod', 'namespace': 'istio-system', 'labels': {'app': 'istiod'}},
                         'spec': {'template': {'spec': {'containers': [
                             {'name': 'discovery', 'image': 'docker.io/istio/pilot:%s' % version, 'env': env}]}}}}),
        ('deployments', {'metadata': {'name': 'istio-ingressgateway', 'namespace': 'istio-system',
                                      'labels': {'app': 'istio-ingressgateway'}},
                         'spec': {'template': {'spec': {'containers': [
                             {'name': 'istio-proxy', 'env': [{'name': 'ISTIO_META_ROUTER_MODE',
                                                              'value': 'sni-dnat'}]}]}}}}),
        ('services', svc('istio-ingressgateway', [80, 15443])),
        ('gateways', gateway(['*.global'])),
        ('destinationrules', rule('*.global', 'ISTIO_MUTUAL')),
    ]
    if dns:
        objects.append(('configmaps', {'metadata': {'name': 'coredns', 'namespace': 'kube-system'},
                                       'data': {'Corefile': COREFILE_WITH_GLOBAL}}))
    return FakeCluster(objects=objects, served={'networking.istio.io': ['v1alpha3']})


def test_a_ready_consumer_passes_every_check():
    report = preflight_report(lab_cluster(), [seed_service()], 'cluster1')
    assert [c['name'] for c in report['checks']] == list(CHECKS)
    assert report['summary'] == {'pass': 10, 'warn': 0, 'fail': 0}
    assert (report['istio_version'], report['networking_api_version'], report['default_vip_pool']) == \
        ('1.7.8', 'v1alpha3', '240.0.0.0/16')
    assert 'failed' not in report


def test_missing_dns_fails_a_consumer_with_the_hint():
    report = preflight_report(lab_cluster(dns=False), [seed_service()], 'cluster1')
    assert report['failed'] and report['summary']['fail'] == 1
    assert '[global_dns] Nothing resolves .global names' in report['msg'] and 'hint: Turn on' in report['msg']


def test_version_rules_and_fail_on_warn():
    cluster = lab_cluster(version='1.9.5', legacy=True)
    assert 'failed' not in preflight_report(cluster, [seed_service()], 'cluster2', checks=['istio_version'])
    report = preflight_report(cluster, [seed_service()], 'cluster2', checks=['istio_version'], fail_on='warn')
    assert report['failed'] and 'CVE-2021-31921' in report['msg']


def test_selected_checks_only():
    report = preflight_report(lab_cluster(), [], 'cluster1', checks=['api', 'global_dns'])
    assert [c['name'] for c in report['checks']] == ['api', 'global_dns']


def test_unreachable_cluster_reports_only_the_api_check():
    cluster = lab_cluster()
    cluster.fail_next['read'] = ApiError('Could not read server version in context fake: cannot reach the API '
                                         'server https://127.0.0.1:1: Connection refused')
    report = preflight_report(cluster, [seed_service()], 'cluster1')
    assert [(c['name'], c['status']) for c in report['checks']] == [('api', 'fail')]
    assert report['failed'] and 'Connection refused' in report['msg']


def test_istio_not_installed():
    cluster = FakeCluster(served={})
    report = preflight_report(cluster, [seed_service()], 'cluster2', fail_on='never')
    statuses = {c['name']: c['status'] for c in report['checks']}
    assert statuses['networking_api'] == 'fail' and statuses['istio_namespace'] == 'fail'
    assert statuses['istio_version'] == 'fail' and statuses['ingress_gateway'] == 'fail'
    assert report['networking_api_version'] is None and 'failed' not in report


def test_bad_services_fail_before_any_call():
    cluster = lab_cluster()
    with pytest.raises(InputError):
        preflight_report(cluster, [seed_service(ports=[{'name': 'x', 'number': 0, 'protocol': 'http'}])], 'cluster1')
    assert cluster.calls == []
