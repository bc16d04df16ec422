# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import build_plan, normalize_services
from meshlink_fakes import seed_service

CLUSTERS = ('cluster1', 'cluster2', 'cluster3')


def _errors(services, clusters=CLUSTERS, consumer_namespace='istio-system'):
    with pytest.raises(InputError) as caught:
        normalize_services(services, clusters, consumer_namespace)
    return caught.value.errors


# (case id, services, field path the error must start with, text the error must contain)
INVALID = [
    ('services not a list', {'name': 'x'}, 'services', 'must be a list'),
    ('service not a mapping', ['httpbin'], 'services[0]', 'must be a mapping'),
    ('unknown key', [seed_service(consumer=['cluster1'])], 'services[0]', "unknown key 'consumer'"),
    ('name missing', [seed_service(name=None)], 'services[0].name', 'non-empty string'),
    ('name upper case', [seed_service(name='HttpBin')], 'services[0].name', 'not a DNS-1123 label'),
    ('name too long', [seed_service(name='a' * 64)], 'services[0].name', 'at most 63'),
    ('name with dot', [seed_service(name='http.bin')], 'services[0].name', 'DNS-1123'),
    ('namespace trailing dash', [seed_service(namespace='bar-')], 'services[0].namespace', 'DNS-1123'),
    ('label value too long', [seed_service(name='a' * 40, namespace='b' * 40)], 'services[0]',
     'service label value allows 63'),
    ('host mismatch', [seed_service(host='httpbin.foo.global')], 'services[0].host', 'does not match'),
    ('cluster missing', [seed_service(cluster=None)], 'services[0].cluster', 'is required'),
    ('cluster unknown', [seed_service(cluster='cluster9')], 'services[0].cluster', "'cluster9' is not a known cluster"),
    ('consumers not a list', [seed_service(consumers='cluster1')], 'services[0].consumers', 'must be a list'),
    ('consumer unknown', [seed_service(consumers=['cluster9'])], 'services[0].consumers[0].cluster',
     'not a known cluster'),
    ('consumer is source', [seed_service(consumers=['cluster2'])], 'services[0].consumers[0].cluster',
     'runs the service itself'),
    ('consumer twice', [seed_service(consumers=['cluster1', {'cluster': 'cluster1', 'namespace': 'x'}])],
     'services[0].consumers[1].cluster', 'already listed'),
    ('consumer bad namespace', [seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'Foo'}])],
     'services[0].consumers[0].namespace', 'DNS-1123'),
    ('consumer without cluster', [seed_service(consumers=[{'namespace': 'foo'}])],
     'services[0].consumers[0].cluster', 'is required'),
    ('consumer unknown key', [seed_service(consumers=[{'cluster': 'cluster1', 'ns': 'foo'}])],
     'services[0].consumers[0]', "unknown key 'ns'"),
    ('ports empty', [seed_service(ports=[])], 'services[0].ports', 'non-empty list'),
    ('port number too big', [seed_service(ports=[{'name': 'http1', 'number': 70000, 'protocol': 'http'}])],
     'services[0].ports[0].number', '70000 is not a port (1-65535)'),
    ('port number zero', [seed_service(ports=[{'name': 'http1', 'number': 0, 'protocol': 'http'}])],
     'services[0].ports[0].number', 'is not a port'),
    ('port number bool', [seed_service(ports=[{'name': 'http1', 'number': True, 'protocol': 'http'}])],
     'services[0].ports[0].number', 'is not a port'),
    ('port number missing', [seed_service(ports=[{'name': 'http1', 'protocol': 'http'}])],
     'services[0].ports[0].number', 'is required'),
    ('port name missing', [seed_service(ports=[{'number': 8000, 'protocol': 'http'}])],
     'services[0].ports[0].name', 'non-empty string'),
    ('port name upper', [seed_service(ports=[{'name': 'HTTP', 'number': 8000, 'protocol': 'http'}])],
     'services[0].ports[0].name', 'DNS-1123'),
    ('port names twice', [seed_service(ports=[{'name': 'http1', 'number': 8000, 'protocol': 'http'},
                                              {'name': 'http1', 'number': 8001, 'protocol': 'http'}])],
     'services[0].ports[1].name', 'already used by services[0].ports[0]'),
    ('port numbers twice', [seed_service(ports=[{'name': 'http1', 'number': 8000, 'protocol': 'http'},
                                                {'name': 'http2', 'number': '8000', 'protocol': 'http'}])],
     'services[0].ports[1].number', '8000 is already used'),
    ('protocol udp', [seed_service(ports=[{'name': 'dns', 'number': 53, 'protocol': 'udp'}])],
     'services[0].ports[0].protocol', "'udp' is not an Istio protocol"),
    ('protocol missing', [seed_service(ports=[{'name': 'http1', 'number': 8000}])],
     'services[0].ports[0].protocol', 'is required'),
    ('port unknown key', [seed_service(ports=[{'name': 'http1', 'number': 8000, 'protocol': 'http', 'port': 1}])],
     'services[0].ports[0]', "unknown key 'port'"),
    ('mode unknown', [seed_service(mode='egress')], 'services[0].mode', "'egress' is not a mode"),
    ('endpoint_labels not a dict', [seed_service(endpoint_labels=['version'])], 'services[0].endpoint_labels',
     'must be a mapping'),
    ('endpoint label bad key', [seed_service(endpoint_labels={'-bad': 'x'})], 'services[0].endpoint_labels',
     "label key '-bad'"),
    ('endpoint label bool value', [seed_service(endpoint_labels={'canary': True})],
     'services[0].endpoint_labels.canary', 'quote it'),
    ('endpoint label value bad', [seed_service(endpoint_labels={'version': 'v 1'})],
     'services[0].endpoint_labels.version', "label value 'v 1'"),
    ('subset without endpoint_labels', [seed_service(subsets=[{'name': 'v1', 'pod_labels': {'version': 'v1'}}],
                                                     route_subset='v1')],
     'services[0].subsets[0].endpoint_labels', 'is required'),
    ('subset without pod_labels', [seed_service(subsets=[{'name': 'v1', 'endpoint_labels': {'version': 'v1'}}],
                                                route_subset='v1')],
     'services[0].subsets[0].pod_labels', 'is required'),
    ('subset empty pod_labels', [seed_service(subsets=[{'name': 'v1', 'endpoint_labels': {'version': 'v1'},
                                                        'pod_labels': {}}], route_subset='v1')],
     'services[0].subsets[0].pod_labels', 'must not be empty'),
    ('subset without name', [seed_service(subsets=[{'endpoint_labels': {'v': '1'}, 'pod_labels': {'v': '1'}}])],
     'services[0].subsets[0].name', 'non-empty string'),
    ('subset names twice', [seed_service(subsets=[
        {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
        {'name': 'v1', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}], route_subset='v1')],
     'services[0].subsets[1].name', 'already used'),
    ('subsets overlap', [seed_service(subsets=[
        {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
        {'name': 'v1b', 'endpoint_labels': {'version': 'v1', 'tier': 'b'}, 'pod_labels': {'version': 'v2'}}],
        route_subset='v1')],
     'services[0].subsets[0].endpoint_labels', 'also match the endpoint of services[0].subsets[1]'),
    ('route_subset missing', [seed_service(subsets=[
        {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}}])],
     'services[0].route_subset', 'is required when subsets are set'),
    ('route_subset unknown', [seed_service(subsets=[
        {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}}], route_subset='v2')],
     'services[0].route_subset', "'v2' is not one of the subsets (v1)"),
    ('route_subset without subsets', [seed_service(route_subset='v1')], 'services[0].route_subset',
     'has no subsets'),
    ('vip not an address', [seed_service(vip='240.0.0.300')], 'services[0].vip', 'not an IPv4 address'),
    ('vip ipv6', [seed_service(vip='fd00::1')], 'services[0].vip', 'not an IPv4 address'),
    ('duplicate host', [seed_service(), seed_service(consumers=['cluster3'])], 'services[1]',
     'host httpbin.bar.global is already defined by services[0]'),
    ('object name collision', [seed_service(name='a-b', namespace='c'), seed_service(name='a', namespace='b-c')],
     'services[1]', "object name 'a-b-c'"),
    ('duplicate vip', [seed_service(vip='240.0.0.10'), seed_service(name='other', vip='240.0.0.10')],
     'services[1].vip', 'already the vip of services[0]'),
]


@pytest.mark.parametrize('services, path, text', [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_services_name_the_field(services, path, text):
    errors = _errors(services)
    matching = [e for e in errors if e.startswith(path + ':') and text in e]
    assert matching, 'no error at %s containing %r in %r' % (path, text, errors)


def test_every_problem_is_reported_at_once():
    service = seed_service(name='Bad', ports=[{'name': 'http1', 'number': 70000, 'protocol': 'udp'}], mode='x')
    errors = _errors([service])
    assert {e.split(':', 1)[0] for e in errors} >= {
        'services[0].name', 'services[0].ports[0].number', 'services[0].ports[0].protocol', 'services[0].mode'}


def test_bad_consumer_namespace_option():
    assert any(e.startswith('consumer_namespace:') for e in _errors([seed_service()], consumer_namespace='Istio'))


def test_clusters_listed_twice():
    assert any(e.startswith('clusters:') for e in _errors([seed_service()], clusters=['cluster1', 'cluster1']))


def test_defaults_are_filled_in():
    service = normalize_services([{'name': 'httpbin', 'namespace': 'bar', 'cluster': 'cluster2',
                                   'consumers': ['cluster1']}], CLUSTERS, 'istio-system')[0]
    assert service == {
        'name': 'httpbin', 'namespace': 'bar', 'cluster': 'cluster2', 'host': 'httpbin.bar.global',
        'consumers': [{'cluster': 'cluster1', 'namespace': 'istio-system'}],
        'ports': [{'name': 'http1', 'number': 8000, 'protocol': 'http'}], 'mode': 'sidecar',
        'endpoint_labels': {}, 'subsets': [], 'route_subset': None, 'vip': None,
    }


@pytest.mark.parametrize('protocol', ['http', 'HTTP', 'Http2', 'grpc', 'tcp', 'TLS', 'https', 'mongo'])
def test_protocol_any_case_is_kept_as_written(protocol):
    service = normalize_services([seed_service(ports=[{'name': 'p', 'number': 1, 'protocol': protocol}])], CLUSTERS)[0]
    assert service['ports'][0]['protocol'] == protocol


def test_strings_from_templating_become_numbers_and_label_ints_strings():
    service = normalize_services([seed_service(ports=[{'name': 'http1', 'number': '8000', 'protocol': 'http'}],
                                               endpoint_labels={'version': 1})], CLUSTERS)[0]
    assert service['ports'][0]['number'] == 8000
    assert service['endpoint_labels'] == {'version': '1'}


def test_normalising_is_idempotent():
    raw = [seed_service(mode='egress_gateway', vip='240.0.0.9', subsets=[
        {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
        {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2'}}], route_subset='v2')]
    once = normalize_services(copy.deepcopy(raw), CLUSTERS)
    assert normalize_services(copy.deepcopy(once), CLUSTERS) == once
    # without the cluster list too, as remote_services and preflight call it
    assert normalize_services(copy.deepcopy(once), None) == once


def test_empty_mesh_is_valid():
    assert build_plan([], CLUSTERS)['clusters']['cluster1'] == {
        'exports': [], 'consumes': [], 'consumer_namespaces': [], 'needs_egress': False}


def test_plan_per_cluster():
    services = [
        seed_service(),
        seed_service(name='orders', namespace='shop', cluster='cluster1', mode='egress_gateway',
                     consumers=['cluster3', {'cluster': 'cluster2', 'namespace': 'foo'}]),
    ]
    plan = build_plan(services, list(CLUSTERS), 'mesh')
    cluster1, cluster2, cluster3 = (plan['clusters'][c] for c in CLUSTERS)
    assert [s['host'] for s in cluster1['exports']] == ['orders.shop.global']
    assert [(s['host'], s['consumer_namespace']) for s in cluster1['consumes']] == [('httpbin.bar.global', 'foo')]
    assert cluster1['needs_egress'] is False
    assert [(s['host'], s['consumer_namespace']) for s in cluster2['consumes']] == [('orders.shop.global', 'foo')]
    assert cluster2['needs_egress'] is True
    assert cluster3['consumer_namespaces'] == ['mesh']
    assert [s['host'] for s in plan['services']] == ['httpbin.bar.global', 'orders.shop.global']
