# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What cluster_verify requests (_verify.py): one call per consumer namespace, one URL per
consumed host, and the refusals before any request."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._verify import (
    REQUEST_DEFAULTS,
    pairs,
    verify_cluster,
    verify_targets,
)
from meshlink_fakes import FakeCluster, seed_service

HOSTS = ['cluster1', 'cluster2', 'cluster3']


def plan():
    services = [
        seed_service(),                                                        # cluster1/foo, port 8000
        seed_service(name='orders', namespace='shop', cluster='cluster3',
                     consumers=[{'cluster': 'cluster1', 'namespace': 'foo'}, {'cluster': 'cluster2'}],
                     ports=[{'name': 'grpc', 'number': 9000, 'protocol': 'GRPC'},
                            {'name': 'http', 'number': 8080, 'protocol': 'HTTP'}]),
        seed_service(name='users', namespace='bar', cluster='cluster3',
                     consumers=[{'cluster': 'cluster1', 'namespace': 'clients'}]),
    ]
    return build_plan(services, HOSTS)


def request(**overrides):
    result = dict(REQUEST_DEFAULTS)
    result.update(overrides)
    return result


def part(cluster='cluster1'):
    return plan()['clusters'][cluster]


def test_one_call_per_consumer_namespace_and_one_url_per_host():
    assert verify_targets(part(), request()) == [
        {'namespace': 'clients', 'targets': [
            {'name': 'users.bar.global', 'url': 'http://users.bar.global:8000/ip', 'expected_status': [200]}]},
        {'namespace': 'foo', 'targets': [
            {'name': 'httpbin.bar.global', 'url': 'http://httpbin.bar.global:8000/ip', 'expected_status': [200]},
            {'name': 'orders.shop.global', 'url': 'http://orders.shop.global:9000/ip', 'expected_status': [200]}]},
    ]


def test_one_client_namespace_for_all():
    calls = verify_targets(part(), request(), client_namespace='tools')
    assert [c['namespace'] for c in calls] == ['tools']
    assert [t['name'] for t in calls[0]['targets']] == ['httpbin.bar.global', 'orders.shop.global', 'users.bar.global']


@pytest.mark.parametrize('overrides, url', [
    ({'scheme': 'https'}, 'https://httpbin.bar.global:8000/ip'),
    ({'path': '/status/200'}, 'http://httpbin.bar.global:8000/status/200'),
    ({'path': 'headers'}, 'http://httpbin.bar.global:8000/headers'),
    ({'path': ''}, 'http://httpbin.bar.global:8000/'),
    ({'urls': {'httpbin.bar.global': 'http://httpbin.bar.global:8000/get?x=1'}},
     'http://httpbin.bar.global:8000/get?x=1'),
    ({'urls': {'other.bar.global': 'http://x/'}}, 'http://httpbin.bar.global:8000/ip'),
])
def test_url(overrides, url):
    calls = verify_targets(part(), request(**overrides))
    assert calls[1]['targets'][0]['url'] == url


def test_urls_override_only_its_host():
    calls = verify_targets(part(), request(urls={'orders.shop.global': 'http://orders.shop.global:8080/health'}))
    assert [t['url'] for t in calls[1]['targets']] == ['http://httpbin.bar.global:8000/ip',
                                                       'http://orders.shop.global:8080/health']


def test_expected_status_is_copied_per_target():
    statuses = [200, 204]
    calls = verify_targets(part(), request(expected_status=statuses))
    calls[0]['targets'][0]['expected_status'].append(500)
    assert statuses == [200, 204]


@pytest.mark.parametrize('overrides, field', [
    ({'scheme': 'ftp'}, 'request.scheme'),
    ({'scheme': 'HTTP'}, 'request.scheme'),
    ({'scheme': None}, 'request.scheme'),
    ({'path': '/ip x'}, 'request.path'),
    ({'path': '/ip\n'}, 'request.path'),
    ({'path': '/ip\t'}, 'request.path'),
    ({'path': None}, 'request.path'),
    ({'path': 3}, 'request.path'),
])
def test_bad_request_is_refused(overrides, field):
    with pytest.raises(InputError) as caught:
        verify_targets(part(), request(**overrides))
    assert caught.value.errors[0].startswith(field + ': ')


def test_a_cluster_that_consumes_nothing():
    assert verify_targets(part('cluster3'), request()) == []
    cluster = FakeCluster()
    result = verify_cluster(cluster, plan(), 'cluster3')
    assert result['lines'] == ['cluster3: consumes no service, nothing to verify']
    assert (result['pairs'], result['failed_pairs'], result['changed']) == (0, 0, False) and 'failed' not in result
    assert cluster.calls == []


@pytest.mark.parametrize('options', [
    {'request': {'urls': {'httpbin.bar.global': 'httpbin.bar.global:8000/ip'}}},
    {'request': {'urls': {'httpbin.bar.global': 'http://httpbin.bar.global:8000/ip\n'}}},
    {'request': {'expected_status': [99]}},
    {'request': {'scheme': 'gopher'}},
])
def test_bad_input_makes_no_request(options):
    cluster = FakeCluster()
    with pytest.raises(InputError):
        verify_cluster(cluster, plan(), 'cluster1', **options)
    assert cluster.calls == []


def test_an_edited_plan_is_refused():
    edited = plan()
    edited['clusters']['cluster1']['consumes'][0]['host'] = 'evil.example.com'
    with pytest.raises(InputError) as caught:
        verify_cluster(FakeCluster(), edited, 'cluster1')
    assert 'fingerprint' in str(caught.value)


def test_pairs():
    assert pairs(plan(), ['cluster1', 'cluster2', 'cluster9']) == [
        'cluster1 → httpbin.bar.global', 'cluster1 → orders.shop.global', 'cluster1 → users.bar.global',
        'cluster2 → orders.shop.global']
