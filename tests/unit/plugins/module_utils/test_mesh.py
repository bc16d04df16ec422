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


# -- exactness, by classes of bad input ----------------------------------------------------
# Nothing is stripped or coerced: a value from a YAML block scalar (trailing newline), a tab or
# NBSP, a look-alike of another script, a non-ASCII digit, a type Python would coerce, or a
# value of another field's grammar fails with the field path, never silently normalised.

WHITESPACE = ['{}\n', '{}\t', ' {}', '{} ', '{}\u00a0', '{}\u200b']


def _with(**overrides):
    return [seed_service(**overrides)]


def _port(**overrides):
    port = {'name': 'http1', 'number': 8000, 'protocol': 'http'}
    port.update(overrides)
    return _with(ports=[port])


def _subset(**overrides):
    subset = {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}}
    subset.update(overrides)
    return _with(subsets=[subset], route_subset=subset['name'] if isinstance(subset['name'], str) else 'v1')


FIELDS = {
    # path: (make services from one value, valid value, bad values by class)
    'services[0].name': (lambda x: _with(name=x), 'httpbin', {
        'whitespace': WHITESPACE, 'non-ascii': ['httpbіn', 'ｈｔｔｐｂｉｎ'], 'types': [True, 8000, 1.5, ['httpbin']],
        'other grammar': ['httpbin.bar.global', '10.0.0.1', 'http://httpbin']}),
    'services[0].namespace': (lambda x: _with(namespace=x), 'bar', {
        'whitespace': WHITESPACE, 'non-ascii': ['bаr', 'bar٣'], 'types': [True, 1, {'a': 1}],
        'other grammar': ['bar.svc', 'Bar']}),
    'services[0].consumers[0].namespace': (lambda x: _with(consumers=[{'cluster': 'cluster1', 'namespace': x}]),
                                           'foo', {'whitespace': WHITESPACE, 'non-ascii': ['fоo'],
                                                   'types': [True, 1], 'other grammar': ['foo/bar']}),
    'services[0].ports[0].name': (lambda x: _port(name=x), 'http1', {
        'whitespace': WHITESPACE, 'non-ascii': ['httр1'], 'types': [True, 80, None],
        'other grammar': ['HTTP', 'http_1', 'http.1']}),
    'services[0].ports[0].number': (lambda x: _port(number=x), 8000, {
        'whitespace': ['8000\n', ' 8000', '8000 ', '8000\t', '8000\u00a0'],
        'non-ascii': ['８０００', '٣', '۸۰۰۰'],
        'types': [True, False, 8000.0, [8000], {'n': 1}],
        'other grammar': ['http1', '0x1f40', '+8000', '8e3', 0, 65536, '']}),
    'services[0].ports[0].protocol': (lambda x: _port(protocol=x), 'http', {
        'whitespace': WHITESPACE, 'non-ascii': ['ｈｔｔｐ', 'httр'], 'types': [True, 1, ['http']],
        'other grammar': ['udp', 'http://']}),
    'services[0].mode': (lambda x: _with(mode=x), 'egress_gateway', {
        'whitespace': ['sidecar\n', ' sidecar', 'sidecar\u00a0'], 'non-ascii': ['sіdecar'],
        'types': [True, 1, ['sidecar']], 'other grammar': ['Sidecar', 'egress-gateway']}),
    'services[0].endpoint_labels.version': (lambda x: _with(endpoint_labels={'version': x}), 'v1', {
        'whitespace': WHITESPACE, 'non-ascii': ['v١', 'ｖ1'], 'types': [True, None, 1.0, ['v1']],
        'other grammar': ['v 1', 'x' * 64, 'a/b']}),
    'services[0].endpoint_labels': (lambda x: _with(endpoint_labels={x: 'v1'}), 'version', {
        'whitespace': ['version\n', ' version', 'version\u00a0'], 'non-ascii': ['vеrsion'],
        'other grammar': ['-version', 'a/b/c', '/version']}),
    'services[0].subsets[0].name': (lambda x: _subset(name=x), 'v1', {
        'whitespace': WHITESPACE, 'non-ascii': ['ｖ1'], 'types': [True, 1], 'other grammar': ['V1', 'v.1']}),
    'services[0].subsets[0].pod_labels.version': (
        lambda x: _subset(pod_labels={'version': x}), 'v1', {
            'whitespace': WHITESPACE, 'types': [False, None, 2.5], 'non-ascii': ['v١']}),
    'services[0].vip': (lambda x: _with(vip=x), '240.0.0.10', {
        'whitespace': WHITESPACE, 'non-ascii': ['２４０.0.0.10', '240.0.0.١٠'],
        'types': [True, 4026531850, 240.0, ['240.0.0.10']],
        'other grammar': ['240.0.0.0/16', 'fd00::10', 'vip.example.com', 'http://240.0.0.10', '240.0.0.10:80']}),
    'services[0].cluster': (lambda x: _with(cluster=x), 'cluster2', {
        'whitespace': WHITESPACE, 'types': [True, 2, ['cluster2']]}),
    'services[0].consumers[0].cluster': (lambda x: _with(consumers=[{'cluster': x}]), 'cluster1', {
        'whitespace': WHITESPACE, 'types': [True, 1, ['cluster1']]}),
    'services[0].route_subset': (lambda x: _with(subsets=[{'name': 'v1', 'endpoint_labels': {'version': 'v1'},
                                                          'pod_labels': {'version': 'v1'}}], route_subset=x), 'v1', {
        'whitespace': WHITESPACE, 'types': [True, 1, ['v1']]}),
}


def _field_cases():
    for path, (make, _good, classes) in FIELDS.items():
        for klass, values in classes.items():
            for value in values:
                if isinstance(value, str) and '{}' in value:
                    value = value.format(_good)
                yield pytest.param(path, make, value, id='%s-%s-%r' % (path, klass, value))


@pytest.mark.parametrize('path, make, value', list(_field_cases()))
def test_bad_values_of_every_class_fail_at_their_field(path, make, value):
    errors = _errors(make(value))
    assert any(e.startswith(path + ':') or e.startswith(path + '.') for e in errors), (path, value, errors)


@pytest.mark.parametrize('path', list(FIELDS))
def test_the_valid_value_of_each_field_passes(path):
    make, good, _classes = FIELDS[path]
    assert normalize_services(make(good), CLUSTERS)


@pytest.mark.parametrize('value, expected', [
    ('8000\n', "services[0].ports[0].number: '8000\\n' is not a port (1-65535): it contains U+000A LINE FEED"),
    ('８０００', "services[0].ports[0].number: '８０００' is not a port (1-65535): it contains the non-ASCII character"),
    (' 80 ', "services[0].ports[0].number: ' 80 ' is not a port (1-65535): it contains U+0020 SPACE at position 0"),
    (8000.0, 'services[0].ports[0].number: 8000.0 is not a port (1-65535): a float - write 8000'),
])
def test_port_errors_say_why_and_how_to_fix(value, expected):
    errors = _errors(_port(number=value))
    assert any(e.startswith(expected) for e in errors), errors


def test_a_name_from_a_block_scalar_says_where_the_newline_comes_from():
    errors = _errors(_with(name='httpbin\n'))
    assert errors[0].startswith("services[0].name: 'httpbin\\n' is not a DNS-1123 label: it contains U+000A LINE "
                                "FEED at position 7 - remove it (a YAML block scalar")


@pytest.mark.parametrize('consumer_namespace', ['istio-system\n', 'іstio-system', True])
def test_consumer_namespace_option_is_exact(consumer_namespace):
    errors = _errors([seed_service()], consumer_namespace=consumer_namespace)
    assert any(e.startswith('consumer_namespace:') for e in errors)


@pytest.mark.parametrize('clusters', [['cluster1\n', 'cluster2'], ['cluster1', ' cluster2']])
def test_cluster_names_with_whitespace_are_refused(clusters):
    errors = _errors([], clusters=clusters)
    assert any(e.startswith('clusters[') for e in errors), errors


def test_valid_values_are_kept_exactly():
    service = normalize_services(_with(vip='240.0.0.10', endpoint_labels={'version': 'v1', 'rev': 2},
                                       ports=[{'name': 'http1', 'number': '8000', 'protocol': 'Http'}]), CLUSTERS)[0]
    assert service['vip'] == '240.0.0.10'
    assert service['endpoint_labels'] == {'version': 'v1', 'rev': '2'}
    assert service['ports'] == [{'name': 'http1', 'number': 8000, 'protocol': 'Http'}]
