# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The seed's topology (``global_serviceentries``) for one cluster: what it must hold.

Consumer side, in the consumer namespace: the ServiceEntry ``<name>-<namespace>`` of
``<name>.<namespace>.global`` with its VIP and the source cluster's gateway as endpoint, and
with subsets the DestinationRule and VirtualService ``<name>-<namespace>-global``. Source
side: with subsets, the DestinationRule ``<name>-<namespace>-local`` on the local service.
The objects are rendered by ``_render``; this file decides which, from the plan, and checks
the inputs that come from other clusters (gateway addresses) and from the VIP store.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils import _render
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    ISTIO_PLURALS,
    global_rule_name,
    local_rule_name,
    service_entry_name,
    service_key,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import ownership_labels
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import Desired, Key
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import address_problem, port_number

ISTIO_KINDS = tuple(k for k in ISTIO_PLURALS if k != 'Gateway')


def consumer_keys(service: Dict[str, Any]) -> List[Key]:
    """Keys of the objects a consumer cluster holds for one consumed service."""
    namespace = service['consumer_namespace']
    keys: List[Key] = [('ServiceEntry', namespace, service_entry_name(service['name'], service['namespace']))]
    if service.get('subsets'):
        rule = global_rule_name(service['name'], service['namespace'])
        keys += [('DestinationRule', namespace, rule), ('VirtualService', namespace, rule)]
    return keys


def source_keys(service: Dict[str, Any]) -> List[Key]:
    if not service.get('subsets'):
        return []
    return [('DestinationRule', service['namespace'], local_rule_name(service['name'], service['namespace']))]


def wanted_keys(part: Dict[str, Any]) -> Dict[Key, str]:
    """Every Istio object the cluster should hold, with the service it serves (known before any
    gateway address or VIP, so that what is in the way is found before anything is written)."""
    keys: Dict[Key, str] = {}
    for service in part['consumes']:
        for key in consumer_keys(service):
            keys[key] = service_key(service['name'], service['namespace'])
    for service in part['exports']:
        for key in source_keys(service):
            keys[key] = service_key(service['name'], service['namespace'])
    return keys


def placeholders(part: Dict[str, Any], mesh: str) -> List[Desired]:
    """The wanted objects as names and labels only: enough to find conflicts."""
    return [Desired({'kind': key[0], 'metadata': {'namespace': key[1], 'name': key[2],
                                                  'labels': ownership_labels(mesh, owner)}})
            for key, owner in sorted(wanted_keys(part).items())]


def consumed_hosts(part: Dict[str, Any]) -> List[str]:
    """The ``.global`` hosts the cluster consumes (each once, in plan order)."""
    hosts: List[str] = []
    for service in part['consumes']:
        if service['host'] not in hosts:
            hosts.append(service['host'])
    return hosts


def fixed_vips(part: Dict[str, Any]) -> Dict[str, str]:
    return {s['host']: s['vip'] for s in part['consumes'] if s.get('vip')}


def _gateway_of(service: Dict[str, Any], gateways: Dict[str, Any], errors: List[str]) -> Optional[Tuple[str, int]]:
    source = service['cluster']
    gateway = gateways.get(source)
    if not isinstance(gateway, dict):
        errors.append('gateways.%s: unknown - %s (source of %s) did not report its gateway in this run: include it '
                      'in the run (meshlink_target_hosts, --limit) or set meshlink_gateway_overrides.%s to '
                      '{address, port}' % (source, source, service['host'], source))
        return None
    address = gateway.get('address')
    port = port_number(gateway.get('port'))
    if not isinstance(address, str) or not address:
        errors.append('gateways.%s.address: is empty - an empty endpoint address must never reach a ServiceEntry'
                      % source)
        return None
    problem = address_problem(address)
    if problem:
        # The same rule as gateway_address: an override is an IP or a host name, nothing else.
        errors.append('gateways.%s.address: %s (meshlink_gateway_overrides.%s.address takes an IP address or a '
                      'host name)' % (source, problem, source))
        return None
    if port is None:
        errors.append('gateways.%s.port: %r is not a port (1-65535) (meshlink_gateway_overrides.%s.port takes a port '
                      'number)' % (source, gateway.get('port'), source))
        return None
    return address, port


def check_gateways(part: Dict[str, Any], gateways: Dict[str, Any]) -> None:
    """Every source gateway the cluster needs is known and valid; :class:`InputError` otherwise."""
    errors: List[str] = []
    seen = set()
    for service in part['consumes']:
        if service['cluster'] not in seen:
            seen.add(service['cluster'])
            _gateway_of(service, gateways, errors)
    if errors:
        raise InputError(errors)


def consumer_objects(part: Dict[str, Any], gateways: Dict[str, Any], vips: Dict[str, str],
                     mesh: str) -> List[Desired]:
    """The consumer-side objects (pure); :class:`InputError` naming what is missing."""
    errors: List[str] = []
    objects: List[Desired] = []
    for service in part['consumes']:
        gateway = _gateway_of(service, gateways, errors)
        vip = vips.get(service['host'])
        if not vip:
            errors.append('vips.%s: no address allocated' % service['host'])
        else:
            try:
                if ipaddress.ip_address(vip).version != 4:
                    raise ValueError(vip)
            except ValueError:
                errors.append('vips.%s: %r is not an IPv4 address' % (service['host'], vip))
        if errors or gateway is None:
            continue
        for obj in _render.render_consumer_objects(service, service['consumer_namespace'], gateway[0], gateway[1],
                                                   vip, 'v1', mesh):
            objects.append(Desired(obj, compare='spec'))
    if errors:
        raise InputError(errors)
    return objects


def source_objects(part: Dict[str, Any], mesh: str) -> List[Desired]:
    objects: List[Desired] = []
    for service in part['exports']:
        for obj in _render.render_source_objects(service, 'v1', mesh):
            objects.append(Desired(obj, compare='spec'))
    return objects


def is_seed_object(key: Key) -> bool:
    """The Istio kinds this topology writes (all of ours of these kinds are in prune scope)."""
    return key[0] in ISTIO_KINDS


def service_entry_addresses(entries: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``[{address, hosts, where}]`` of every ServiceEntry address (for the VIP rule)."""
    used = []
    for entry in entries:
        spec = entry.get('spec') or {}
        metadata = entry.get('metadata') or {}
        where = 'ServiceEntry %s/%s' % (metadata.get('namespace', '?'), metadata.get('name', '?'))
        for address in spec.get('addresses') or []:
            used.append({'address': address, 'hosts': list(spec.get('hosts') or []), 'where': where})
    return used
