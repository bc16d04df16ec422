# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Rendered objects compared field by field with the seed's (000_68559be6559f3dab.txt)."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import normalize_services
from ansible_collections.meshlink.multicluster.plugins.module_utils._render import (
    render_consumer_objects,
    render_global_destination_rule,
    render_local_destination_rule,
    render_service_entry,
    render_source_objects,
    render_virtual_service,
    service_entry_endpoints,
)
from meshlink_fakes import (
    SEED_EGRESS_ENDPOINTS,
    SEED_GATEWAY,
    SEED_SIDECAR_SPEC,
    SEED_VERSIONED_ENDPOINTS,
    SEED_VIP,
    seed_service,
)

LABELS = {'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': 'default',
          'multicluster.meshlink.io/service': 'httpbin.bar'}
SUBSETS = [
    {'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
    {'name': 'v2', 'endpoint_labels': {'version': 'v2'}, 'pod_labels': {'version': 'v2', 'track': 'beta'}},
]


def service(**overrides):
    return normalize_services([seed_service(**overrides)], ['cluster1', 'cluster2'])[0]


def test_sidecar_service_entry_is_the_seeds():
    entry = render_service_entry(service(), 'foo', SEED_GATEWAY, 15443, SEED_VIP, 'v1alpha3')
    assert entry['apiVersion'] == 'networking.istio.io/v1alpha3'
    assert entry['kind'] == 'ServiceEntry'
    assert entry['metadata'] == {'name': 'httpbin-bar', 'namespace': 'foo', 'labels': LABELS}
    for field, value in SEED_SIDECAR_SPEC.items():
        assert entry['spec'][field] == value, field
    assert set(entry['spec']) == set(SEED_SIDECAR_SPEC)


def test_egress_gateway_variant_is_the_seeds():
    entry = render_service_entry(service(mode='egress_gateway'), 'foo', SEED_GATEWAY, 15443, SEED_VIP, 'v1')
    assert entry['spec']['endpoints'] == SEED_EGRESS_ENDPOINTS
    assert {k: v for k, v in entry['spec'].items() if k != 'endpoints'} == \
        {k: v for k, v in SEED_SIDECAR_SPEC.items() if k != 'endpoints'}


def test_versioned_variant_is_the_seeds():
    labels = {'version': 'beta', 'some': 'thing', 'foo': 'bar'}
    entry = render_service_entry(service(endpoint_labels=labels), 'foo', SEED_GATEWAY, 15443, SEED_VIP, 'v1')
    assert entry['spec']['endpoints'] == SEED_VERSIONED_ENDPOINTS


def test_node_port_replaces_15443_in_every_endpoint_port():
    svc = service(ports=[{'name': 'http1', 'number': 8000, 'protocol': 'http'},
                         {'name': 'tcp-db', 'number': 5432, 'protocol': 'TCP'}])
    assert service_entry_endpoints(svc, '127.50.2.1', 31550) == [
        {'address': '127.50.2.1', 'ports': {'http1': 31550, 'tcp-db': 31550}}]


def test_egress_endpoint_keeps_15443_when_the_gateway_uses_a_node_port():
    endpoints = service_entry_endpoints(service(mode='egress_gateway'), '127.50.2.1', 31550)
    assert [e['ports'] for e in endpoints] == [{'http1': 31550}, {'http1': 15443}]


@pytest.mark.parametrize('mode, expected', [
    ('sidecar', [
        {'address': SEED_GATEWAY, 'labels': {'zone': 'a', 'version': 'v1'}, 'ports': {'http1': 15443}},
        {'address': SEED_GATEWAY, 'labels': {'zone': 'a', 'version': 'v2'}, 'ports': {'http1': 15443}},
    ]),
    ('egress_gateway', [
        {'address': SEED_GATEWAY, 'network': 'external', 'labels': {'zone': 'a', 'version': 'v1'},
         'ports': {'http1': 15443}},
        {'address': 'istio-egressgateway.istio-system.svc.cluster.local', 'labels': {'zone': 'a', 'version': 'v1'},
         'ports': {'http1': 15443}},
        {'address': SEED_GATEWAY, 'network': 'external', 'labels': {'zone': 'a', 'version': 'v2'},
         'ports': {'http1': 15443}},
        {'address': 'istio-egressgateway.istio-system.svc.cluster.local', 'labels': {'zone': 'a', 'version': 'v2'},
         'ports': {'http1': 15443}},
    ]),
])
def test_one_endpoint_group_per_subset_with_labels_merged(mode, expected):
    svc = service(mode=mode, endpoint_labels={'zone': 'a'}, subsets=SUBSETS, route_subset='v1')
    assert service_entry_endpoints(svc, SEED_GATEWAY, 15443) == expected


@pytest.mark.parametrize('address', ['', None])
def test_an_empty_gateway_address_is_never_rendered(address):
    with pytest.raises(ValueError):
        render_service_entry(service(), 'foo', address, 15443, SEED_VIP, 'v1')


def test_an_empty_vip_is_never_rendered():
    with pytest.raises(ValueError):
        render_service_entry(service(), 'foo', SEED_GATEWAY, 15443, '', 'v1')


def test_consumer_destination_rule():
    rule = render_global_destination_rule(service(subsets=SUBSETS, route_subset='v2'), 'foo', 'v1beta1')
    assert rule == {
        'apiVersion': 'networking.istio.io/v1beta1',
        'kind': 'DestinationRule',
        'metadata': {'name': 'httpbin-bar-global', 'namespace': 'foo', 'labels': LABELS},
        'spec': {
            'host': 'httpbin.bar.global',
            'trafficPolicy': {'tls': {'mode': 'ISTIO_MUTUAL'}},
            'subsets': [{'name': 'v1', 'labels': {'version': 'v1'}}, {'name': 'v2', 'labels': {'version': 'v2'}}],
        },
    }


def test_source_destination_rule_selects_pod_labels_in_the_service_namespace():
    rule = render_local_destination_rule(service(subsets=SUBSETS, route_subset='v2'), 'v1')
    assert rule['metadata'] == {'name': 'httpbin-bar-local', 'namespace': 'bar', 'labels': LABELS}
    assert rule['spec'] == {
        'host': 'httpbin.bar.svc.cluster.local',
        'subsets': [{'name': 'v1', 'labels': {'version': 'v1'}},
                    {'name': 'v2', 'labels': {'version': 'v2', 'track': 'beta'}}],
    }


@pytest.mark.parametrize('protocols, sections', [
    (['http'], {'http'}),
    (['GRPC', 'http2'], {'http'}),
    (['TCP'], {'tcp'}),
    (['mongo'], {'tcp'}),
    (['TLS'], {'tls'}),
    (['http', 'TCP', 'https'], {'http', 'tcp', 'tls'}),
])
def test_virtual_service_routes_every_protocol_to_the_subset(protocols, sections):
    ports = [{'name': 'p%d' % i, 'number': 8000 + i, 'protocol': p} for i, p in enumerate(protocols)]
    vs = render_virtual_service(service(ports=ports, subsets=SUBSETS, route_subset='v2'), 'foo', 'v1')
    assert vs['metadata'] == {'name': 'httpbin-bar-global', 'namespace': 'foo', 'labels': LABELS}
    assert vs['spec']['hosts'] == ['httpbin.bar.global']
    assert set(vs['spec']) - {'hosts'} == sections
    for section in sections:
        assert vs['spec'][section][0]['route'] == [{'destination': {'host': 'httpbin.bar.global', 'subset': 'v2'}}]
    if 'tls' in sections:
        assert vs['spec']['tls'][0]['match'][0]['sniHosts'] == ['httpbin.bar.global']


def test_consumer_objects_without_subsets_are_only_the_service_entry():
    objects = render_consumer_objects(service(), 'foo', SEED_GATEWAY, 15443, SEED_VIP, 'v1')
    assert [o['kind'] for o in objects] == ['ServiceEntry']
    assert render_source_objects(service(), 'v1') == []


def test_consumer_objects_with_subsets_put_the_rule_before_the_route():
    objects = render_consumer_objects(service(subsets=SUBSETS, route_subset='v1'), 'foo', SEED_GATEWAY, 15443,
                                      SEED_VIP, 'v1')
    assert [(o['kind'], o['metadata']['name']) for o in objects] == [
        ('ServiceEntry', 'httpbin-bar'), ('DestinationRule', 'httpbin-bar-global'),
        ('VirtualService', 'httpbin-bar-global')]
    assert all(o['metadata']['labels'] == LABELS for o in objects)
