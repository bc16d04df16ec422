# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._istio import (
    default_pool_for,
    find_istiod,
    needs_legacy_passthrough,
    parse_version,
    version_findings,
)


@pytest.mark.parametrize('image, expected', [
    ('docker.io/istio/pilot:1.7.8', (1, 7, 8)),
    ('gcr.io/istio-release/pilot:1.20.3-distroless', (1, 20, 3)),
    ('localhost:5000/istio/pilot:1.9.5@sha256:0123abcd', (1, 9, 5)),
    ('istio/pilot:1.8', (1, 8, 0)),
    ('pilot:v1.2.4', (1, 2, 4)),
    ('1.19.0', (1, 19, 0)),
    ('docker.io/istio/pilot:latest', None),
    ('docker.io/istio/pilot', None),
    ('localhost:5000/istio/pilot', None),
    ('', None),
    (None, None),
])
def test_parse_version(image, expected):
    assert parse_version(image) == expected


@pytest.mark.parametrize('version, needed', [
    ((1, 7, 8), False), ((1, 8, 5), False), ((1, 8, 6), True), ((1, 9, 0), False), ((1, 9, 4), False),
    ((1, 9, 5), True), ((1, 10, 0), True), ((1, 18, 9), True), ((1, 19, 0), False),
])
def test_versions_that_need_the_legacy_flag(version, needed):
    assert needs_legacy_passthrough(version) is needed


GATEWAY_OK = {'istio-ingressgateway': {'ISTIO_META_ROUTER_MODE': 'sni-dnat'}}
LEGACY = {'PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH': 'true'}


@pytest.mark.parametrize('version, istiod_env, gateway_envs, statuses, text', [
    ((1, 2, 9), {}, GATEWAY_OK, ['pass'], '127.255.0.0/16 VIPs still work'),
    ((1, 7, 8), {}, {}, ['pass'], 'supports the .global procedure'),
    ((1, 8, 5), {}, {}, ['pass'], 'supports'),
    ((1, 9, 2), {}, {}, ['pass'], 'supports'),
    ((1, 8, 6), LEGACY, GATEWAY_OK, ['warn'], 'CVE-2021-31921'),
    ((1, 9, 5), {}, GATEWAY_OK, ['fail'], 'lacks PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH=true'),
    ((1, 12, 0), LEGACY, {'istio-ingressgateway': {}}, ['warn', 'fail'], 'ISTIO_META_ROUTER_MODE=(unset)'),
    ((1, 12, 0), LEGACY, {}, ['warn', 'warn'], 'No ingress gateway Deployment'),
    ((1, 19, 0), LEGACY, GATEWAY_OK, ['fail'], 'does not work from Istio 1.19'),
    ((1, 24, 2), {}, {}, ['fail'], 'multi-primary'),
    (None, {}, {}, ['warn'], 'could not be read'),
])
def test_version_rules(version, istiod_env, gateway_envs, statuses, text):
    findings = version_findings(version, istiod_env, gateway_envs)
    assert [f['status'] for f in findings] == statuses
    assert any(text in f['message'] + f['hint'] for f in findings)
    assert all(f['hint'] for f in findings if f['status'] != 'pass')


@pytest.mark.parametrize('version, pool', [((1, 2, 9), '127.255.0.0/16'), ((1, 3, 0), '240.0.0.0/16'),
                                           ((1, 24, 2), '240.0.0.0/16'), (None, '240.0.0.0/16')])
def test_default_pool(version, pool):
    assert default_pool_for(version) == pool


def deployment(name, image, labels=None, container='discovery', env=None):
    return {'metadata': {'name': name, 'labels': labels or {}},
            'spec': {'template': {'spec': {'containers': [
                {'name': container, 'image': image, 'env': [{'name': k, 'value': v} for k, v in (env or {}).items()]},
                {'name': 'sidecar', 'image': 'docker.io/istio/proxyv2:%s' % image.rsplit(':', 1)[-1]}]}}}}


@pytest.mark.parametrize('deployments, name, version', [
    ([deployment('istiod', 'docker.io/istio/pilot:1.7.8', {'app': 'istiod'})], 'istiod', (1, 7, 8)),
    ([deployment('istio-pilot', 'docker.io/istio/pilot:1.1.7', {'app': 'pilot'})], 'istio-pilot', (1, 1, 7)),
    ([deployment('istiod-1-9-5', 'docker.io/istio/pilot:1.9.5', {'app': 'istiod'}),
      deployment('istiod-1-8-2', 'docker.io/istio/pilot:1.8.2', {'app': 'istiod'})], 'istiod-1-9-5', (1, 9, 5)),
    ([deployment('control', 'registry.local/mesh/pilot:1.6.14', {'app': 'istiod'}, container='main')], 'control',
     (1, 6, 14)),
])
def test_find_istiod(deployments, name, version):
    others = [deployment('istio-ingressgateway', 'docker.io/istio/proxyv2:1.7.8', {'app': 'istio-ingressgateway'},
                         container='istio-proxy')]
    found = find_istiod(others + deployments)
    assert (found['name'], found['version']) == (name, version)


def test_find_istiod_reads_the_environment():
    found = find_istiod([deployment('istiod', 'docker.io/istio/pilot:1.9.5', {'app': 'istiod'}, env=LEGACY)])
    assert found['env'] == LEGACY


def test_no_istiod():
    assert find_istiod([deployment('istio-ingressgateway', 'docker.io/istio/proxyv2:1.7.8',
                                   {'app': 'istio-ingressgateway'}, container='istio-proxy')]) is None
