# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Rendering of the Istio objects of a remote service (docs/architecture.md, "Objects").

Pure functions of a normalised service (see ``_mesh.normalize_services``): no API calls,
no defaults looked up anywhere else, so the unit tests compare them with the seed's objects.

Consumer cluster, in the consumer namespace:
  - ServiceEntry ``<name>-<namespace>`` for ``<name>.<namespace>.global``;
  - with subsets: DestinationRule and VirtualService ``<name>-<namespace>-global``.
Source cluster, in the service namespace:
  - with subsets: DestinationRule ``<name>-<namespace>-local`` on the local service, with the
    same subset names, because the subset travels in the SNI to the source cluster's gateway.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    EGRESS_GATEWAY_HOST,
    MULTICLUSTER_GATEWAY_PORT,
    NETWORKING_GROUP,
    global_rule_name,
    local_rule_name,
    service_entry_name,
    service_key,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import DEFAULT_MESH, ownership_labels

# Port protocols routed by ``http`` / ``tcp`` / ``tls`` sections of a VirtualService.
_HTTP_PROTOCOLS = ('HTTP', 'HTTP2', 'GRPC')
_TLS_PROTOCOLS = ('HTTPS', 'TLS')


def _metadata(name: str, namespace: str, service: Dict[str, Any], mesh: str) -> Dict[str, Any]:
    return {
        'name': name,
        'namespace': namespace,
        'labels': ownership_labels(mesh, service_key(service['name'], service['namespace'])),
    }


def _object(kind: str, api_version: str, metadata: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
    return {
        'apiVersion': '%s/%s' % (NETWORKING_GROUP, api_version),
        'kind': kind,
        'metadata': metadata,
        'spec': spec,
    }


def _endpoint(address: str, ports: Dict[str, int], labels: Optional[Dict[str, str]],
              network: Optional[str] = None) -> Dict[str, Any]:
    endpoint: Dict[str, Any] = {'address': address}
    if network:
        endpoint['network'] = network
    if labels:
        endpoint['labels'] = dict(labels)
    endpoint['ports'] = dict(ports)
    return endpoint


def service_entry_endpoints(service: Dict[str, Any], gateway_address: str, gateway_port: int) -> List[Dict[str, Any]]:
    """The endpoints of the consumer's ServiceEntry.

    sidecar: one endpoint, the source cluster's gateway (``address``, port map of every
    service port to the gateway port), with ``endpoint_labels`` as ``labels`` when set.

    egress_gateway: the gateway endpoint gets ``network: external`` and a second endpoint,
    this cluster's egress gateway on 15443, carries the traffic out (seed step 6). Both carry
    the same labels, because the sidecar only sees the egress endpoint and a subset must
    find an endpoint in its view.

    subsets: one such group of endpoints per subset, labels = the service's
    ``endpoint_labels`` with the subset's ``endpoint_labels`` over them.
    """
    if not gateway_address:
        # A ServiceEntry with an empty endpoint address is rejected by Istio's webhook or,
        # worse, accepted and black-holes traffic: never render one.
        raise ValueError('gateway address is empty')
    gateway_ports = {port['name']: int(gateway_port) for port in service['ports']}
    egress_ports = {port['name']: MULTICLUSTER_GATEWAY_PORT for port in service['ports']}
    label_sets: List[Dict[str, str]] = []
    if service.get('subsets'):
        for subset in service['subsets']:
            labels = dict(service.get('endpoint_labels') or {})
            labels.update(subset['endpoint_labels'])
            label_sets.append(labels)
    else:
        label_sets.append(dict(service.get('endpoint_labels') or {}))

    endpoints: List[Dict[str, Any]] = []
    for labels in label_sets:
        if service['mode'] == 'egress_gateway':
            endpoints.append(_endpoint(gateway_address, gateway_ports, labels, network='external'))
            endpoints.append(_endpoint(EGRESS_GATEWAY_HOST, egress_ports, labels))
        else:
            endpoints.append(_endpoint(gateway_address, gateway_ports, labels))
    return endpoints


def render_service_entry(service: Dict[str, Any], namespace: str, gateway_address: str, gateway_port: int,
                         vip: str, api_version: str, mesh: str = DEFAULT_MESH) -> Dict[str, Any]:
    """ServiceEntry ``<name>-<namespace>`` in the consumer namespace (seed step 4)."""
    if not vip:
        raise ValueError('VIP is empty')
    spec = {
        'hosts': [service['host']],
        'location': 'MESH_INTERNAL',
        'ports': [{'name': p['name'], 'number': int(p['number']), 'protocol': p['protocol']}
                  for p in service['ports']],
        'resolution': 'DNS',
        'addresses': [vip],
        'endpoints': service_entry_endpoints(service, gateway_address, gateway_port),
    }
    metadata = _metadata(service_entry_name(service['name'], service['namespace']), namespace, service, mesh)
    return _object('ServiceEntry', api_version, metadata, spec)


def render_global_destination_rule(service: Dict[str, Any], namespace: str, api_version: str,
                                   mesh: str = DEFAULT_MESH) -> Dict[str, Any]:
    """DestinationRule ``<name>-<namespace>-global``: subsets of the ``.global`` host by endpoint labels.

    ``trafficPolicy.tls.mode: ISTIO_MUTUAL`` is repeated here on purpose: a DestinationRule
    for an exact host replaces the cluster's ``*.global`` rule for that host, and without
    mutual TLS the gateway's AUTO_PASSTHROUGH listener (it routes by SNI) drops the traffic.
    """
    spec = {
        'host': service['host'],
        'trafficPolicy': {'tls': {'mode': 'ISTIO_MUTUAL'}},
        'subsets': [{'name': s['name'], 'labels': dict(s['endpoint_labels'])} for s in service['subsets']],
    }
    metadata = _metadata(global_rule_name(service['name'], service['namespace']), namespace, service, mesh)
    return _object('DestinationRule', api_version, metadata, spec)


def render_virtual_service(service: Dict[str, Any], namespace: str, api_version: str,
                           mesh: str = DEFAULT_MESH) -> Dict[str, Any]:
    """VirtualService ``<name>-<namespace>-global``: all traffic of the host to ``route_subset``.

    HTTP-family ports are routed by an ``http`` route, TCP/MONGO by a ``tcp`` route and
    TLS/HTTPS by a ``tls`` route matching the host in the SNI (Istio requires a match there).
    """
    destination = {'host': service['host'], 'subset': service['route_subset']}
    protocols = {p['protocol'].upper() for p in service['ports']}
    spec: Dict[str, Any] = {'hosts': [service['host']]}
    if protocols & set(_HTTP_PROTOCOLS):
        spec['http'] = [{'route': [{'destination': dict(destination)}]}]
    tls_ports = [int(p['number']) for p in service['ports'] if p['protocol'].upper() in _TLS_PROTOCOLS]
    if tls_ports:
        spec['tls'] = [{'match': [{'port': number, 'sniHosts': [service['host']]} for number in tls_ports],
                        'route': [{'destination': dict(destination)}]}]
    if protocols - set(_HTTP_PROTOCOLS) - set(_TLS_PROTOCOLS):
        spec['tcp'] = [{'route': [{'destination': dict(destination)}]}]
    metadata = _metadata(global_rule_name(service['name'], service['namespace']), namespace, service, mesh)
    return _object('VirtualService', api_version, metadata, spec)


def render_local_destination_rule(service: Dict[str, Any], api_version: str, mesh: str = DEFAULT_MESH) -> Dict[str, Any]:
    """DestinationRule ``<name>-<namespace>-local`` in the source cluster: subsets by pod labels."""
    spec = {
        'host': '%s.%s.svc.cluster.local' % (service['name'], service['namespace']),
        'subsets': [{'name': s['name'], 'labels': dict(s['pod_labels'])} for s in service['subsets']],
    }
    metadata = _metadata(local_rule_name(service['name'], service['namespace']), service['namespace'], service, mesh)
    return _object('DestinationRule', api_version, metadata, spec)


def render_consumer_objects(service: Dict[str, Any], namespace: str, gateway_address: str, gateway_port: int,
                            vip: str, api_version: str, mesh: str = DEFAULT_MESH) -> List[Dict[str, Any]]:
    """Every object a consumer cluster needs for one service, in apply order."""
    objects = [render_service_entry(service, namespace, gateway_address, gateway_port, vip, api_version, mesh)]
    if service.get('subsets'):
        # The DestinationRule first: a VirtualService routing to a subset that no rule
        # defines yet makes Envoy return 503 for the time in between.
        objects.append(render_global_destination_rule(service, namespace, api_version, mesh))
        objects.append(render_virtual_service(service, namespace, api_version, mesh))
    return objects


def render_source_objects(service: Dict[str, Any], api_version: str, mesh: str = DEFAULT_MESH) -> List[Dict[str, Any]]:
    """Every object the source cluster needs for one service (none without subsets)."""
    if not service.get('subsets'):
        return []
    return [render_local_destination_rule(service, api_version, mesh)]
