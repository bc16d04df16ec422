# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The address other clusters use to reach a cluster's ingress gateway (seed step 3).

``choose_gateway_address`` is pure: it takes the gateway Service and the Nodes as the API
returns them (JSON dicts) and applies the rule below. ``resolve_gateway_address`` reads
them from a cluster and waits for a pending load balancer.

Order:
  1. ``address`` given by the user (kind ``override``);
  2. ``status.loadBalancer.ingress[0]``: its ``ip`` (kind ``ip``), else its ``hostname``
     (kind ``hostname``); the Service port;
  3. ``spec.externalIPs[0]`` (kind ``external_ip``); the Service port;
  4. a LoadBalancer Service without ingress yet is *pending*: wait until the deadline;
  5. the nodePort of the port on a node address, node address types tried in the order
     given (default ExternalIP, then InternalIP), Ready nodes first, then by name (kind
     ``node``); the nodePort replaces the Service port, as in the seed;
  6. nothing: an error naming the namespace, the selector or name, and the port searched.
The result never has an empty address.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import (
    address_problem,
    dns1123_label_problem,
    label_key_problem,
    label_value_problem,
    port_number,
    port_or_name_problem,
    port_problem,
    show,
)

DEFAULT_NODE_ADDRESS_TYPES = ('ExternalIP', 'InternalIP')
NODE_ADDRESS_TYPES = ('ExternalIP', 'InternalIP', 'Hostname', 'ExternalDNS', 'InternalDNS')

Nodes = Union[Sequence[Dict[str, Any]], Callable[[], Sequence[Dict[str, Any]]]]


class GatewayNotFound(MeshlinkError):
    """No usable address: the message says what was searched and what to set."""


class GatewayPending(MeshlinkError):
    """The Service is a LoadBalancer whose address is not assigned yet (worth waiting for)."""


def _service_ref(service: Dict[str, Any]) -> str:
    metadata = service.get('metadata') or {}
    return '%s/%s' % (metadata.get('namespace', '?'), metadata.get('name', '?'))


def find_port(service: Dict[str, Any], port: Union[str, int]) -> Dict[str, Any]:
    """The entry of ``spec.ports`` matching ``port``: a number (an int or ASCII digits) matches
    ``port``, other text a ``name``; exact, nothing is stripped."""
    ports = (service.get('spec') or {}).get('ports') or []
    number = port_number(port)
    for entry in ports:
        if number is not None and entry.get('port') == number:
            return entry
        if number is None and entry.get('name') == port:
            return entry
    available = ', '.join('%s:%s' % (p.get('name', '-'), p.get('port')) for p in ports) or 'none'
    raise GatewayNotFound('Service %s has no port %s (ports: %s); set port to one of them'
                          % (_service_ref(service), port, available))


def _node_ready(node: Dict[str, Any]) -> bool:
    for condition in (node.get('status') or {}).get('conditions') or []:
        if condition.get('type') == 'Ready':
            return condition.get('status') == 'True'
    return False


def node_address(nodes: Sequence[Dict[str, Any]], address_types: Sequence[str]):
    """``(address, node name, address type)`` of the first node address by type order, or None.

    For each type in order, Ready nodes first and then by name, so the choice is stable
    between runs (a changing gateway address would rewrite every ServiceEntry).
    """
    ordered = sorted(nodes, key=lambda n: (not _node_ready(n), (n.get('metadata') or {}).get('name', '')))
    for address_type in address_types:
        for node in ordered:
            for entry in (node.get('status') or {}).get('addresses') or []:
                value = (entry.get('address') or '').strip()
                if entry.get('type') == address_type and value:
                    return value, (node.get('metadata') or {}).get('name', '?'), address_type
    return None


def _result(address: str, port: int, kind: str, source: str, service_ref: Optional[str]) -> Dict[str, Any]:
    if not address or not str(address).strip():
        # Defensive: every branch checks, but an empty address must never reach a ServiceEntry.
        raise GatewayNotFound('internal error: empty gateway address from %s' % source)
    return {'address': str(address).strip(), 'port': int(port), 'kind': kind, 'source': source,
            'service': service_ref}


def choose_gateway_address(service: Optional[Dict[str, Any]], nodes: Nodes, port: Union[str, int] = '15443',
                           address: Optional[str] = None, address_port: Optional[int] = None,
                           node_port_fallback: bool = True,
                           node_address_types: Sequence[str] = DEFAULT_NODE_ADDRESS_TYPES,
                           wait_for_load_balancer: bool = False) -> Dict[str, Any]:
    """Apply the address rule (module docstring) to one Service.

    ``nodes`` may be a list or a zero-argument callable: it is called at most once and only
    when the nodePort fallback is reached, because listing Nodes needs cluster-wide read
    access that the other paths do not.

    Raises :class:`GatewayPending` when ``wait_for_load_balancer`` and the load balancer has
    no address yet, :class:`GatewayNotFound` when nothing usable exists.
    """
    if address is not None and address != '':
        problem = address_problem(address)
        if problem:
            raise InputError([_address_error(problem)])
        if address_port is not None:
            return _result(address, address_port, 'override', 'address option', None)
        if service is None:
            if port_number(port) is not None:
                return _result(address, port_number(port), 'override', 'address option', None)
            raise GatewayNotFound('address is set but port %s is a name and no Service was read to resolve it; '
                                  'set address_port' % port)
        entry = find_port(service, port)
        return _result(address, entry['port'], 'override', 'address option, port %s of Service %s'
                       % (entry['port'], _service_ref(service)), _service_ref(service))
    if service is None:
        raise GatewayNotFound('no gateway Service and no address given')

    ref = _service_ref(service)
    entry = find_port(service, port)
    service_port = int(entry['port'])
    chosen_port = int(address_port) if address_port is not None else service_port
    spec = service.get('spec') or {}
    ingress = ((service.get('status') or {}).get('loadBalancer') or {}).get('ingress') or []
    for item in ingress:
        ip = (item.get('ip') or '').strip()
        if ip:
            return _result(ip, chosen_port, 'ip', 'Service %s status.loadBalancer.ingress ip' % ref, ref)
        hostname = (item.get('hostname') or '').strip()
        if hostname:
            return _result(hostname, chosen_port, 'hostname',
                           'Service %s status.loadBalancer.ingress hostname' % ref, ref)
    for external_ip in spec.get('externalIPs') or []:
        if external_ip and external_ip.strip():
            return _result(external_ip, chosen_port, 'external_ip', 'Service %s spec.externalIPs' % ref, ref)
    if spec.get('type') == 'LoadBalancer' and wait_for_load_balancer:
        raise GatewayPending('Service %s is a LoadBalancer without an address yet' % ref)

    searched = ['no load balancer ingress', 'no externalIPs']
    node_port = entry.get('nodePort')
    if not node_port_fallback:
        searched.append('node_port_fallback is false')
    elif not node_port:
        searched.append('port %s has no nodePort (type %s)' % (service_port, spec.get('type', 'ClusterIP')))
    else:
        node_list = nodes() if callable(nodes) else nodes
        found = node_address(node_list or [], node_address_types)
        if found:
            value, node_name, address_type = found
            port_out = int(address_port) if address_port is not None else int(node_port)
            return _result(value, port_out, 'node', 'node %s %s, nodePort %s of port %s of Service %s'
                           % (node_name, address_type, node_port, service_port, ref), ref)
        searched.append('no node has an address of type %s' % ' or '.join(node_address_types))
    raise GatewayNotFound('No address for the gateway Service %s port %s: %s. Set address (and address_port) '
                          'to the address other clusters use to reach this gateway'
                          % (ref, service_port, ', '.join(searched)))


def pick_service(services: Sequence[Dict[str, Any]], namespace: str, selector: str) -> Dict[str, Any]:
    """The one Service a selector found; none or several is an error naming them."""
    if not services:
        raise GatewayNotFound('No Service in namespace %s matches the selector %s; set service or selector to '
                              'the ingress gateway Service' % (namespace, selector or '(empty)'))
    if len(services) > 1:
        names = ', '.join(sorted((s.get('metadata') or {}).get('name', '?') for s in services))
        raise GatewayNotFound('The selector %s matches %d Services in namespace %s (%s); set service to the one '
                              'that is the multicluster gateway' % (selector, len(services), namespace, names))
    return services[0]


def selector_string(selector: Dict[str, Any]) -> str:
    """``{app: istio-ingressgateway}`` -> ``app=istio-ingressgateway`` (keys sorted)."""
    return ','.join('%s=%s' % (key, selector[key]) for key in sorted(selector))


def _address_error(problem: str) -> str:
    return ('address: %s (give the IP address or DNS name other clusters reach the gateway at, and the port in '
            'address_port)' % problem)


def validate_options(port: Any, address_port: Any, node_address_types: Sequence[str], wait_timeout: int,
                     wait_interval: int, address: Any = None, namespace: Any = None, service: Any = None,
                     selector: Any = None) -> None:
    """Input checks that do not need the cluster; raise :class:`InputError` naming the option.

    Exact (``_validate``): ``port`` is a port number or a Service port name, ``address_port``
    a port number (an int or ASCII digits; not a bool or float), ``address`` an IP address or
    a host name (not a URL, not host:port, not a CIDR) because it is written as it is into
    every consumer's ServiceEntry; ``namespace``, ``service`` and ``selector`` when given.
    """
    errors: List[str] = []
    if port is None or port == '':
        errors.append('port: must be a port number or a port name')
    else:
        problem = port_or_name_problem(port)
        if problem:
            errors.append('port: %s' % problem)
    if address_port is not None:
        problem = port_problem(address_port)
        if problem:
            errors.append('address_port: %s' % problem)
    if address is not None and address != '':
        problem = address_problem(address)
        if problem:
            errors.append(_address_error(problem))
    if namespace is not None:
        problem = dns1123_label_problem(namespace, 'a namespace name (a DNS-1123 label)')
        if problem:
            errors.append('namespace: %s' % problem)
    if service is not None and service != '':
        problem = dns1123_label_problem(service, 'a Service name (a DNS-1123 label)')
        if problem:
            errors.append('service: %s' % problem)
    if selector is not None:
        if not isinstance(selector, dict):
            errors.append('selector: must be a mapping of label keys to values, got %s' % show(selector))
        else:
            for key, value in selector.items():
                problem = label_key_problem(key) or label_value_problem(value)
                if problem:
                    errors.append('selector.%s: %s' % (key, problem))
    for index, address_type in enumerate(node_address_types):
        if address_type not in NODE_ADDRESS_TYPES:
            errors.append('node_address_types[%d]: %r is not a node address type (%s)'
                          % (index, address_type, ', '.join(NODE_ADDRESS_TYPES)))
    if wait_timeout < 0:
        errors.append('wait_timeout: must be 0 or more seconds')
    if wait_interval < 1:
        errors.append('wait_interval: must be at least 1 second')
    if errors:
        raise InputError(errors)


def wait_for_gateway_address(get_service: Callable[[], Optional[Dict[str, Any]]], nodes: Nodes,
                             wait_timeout: float, wait_interval: float,
                             sleep: Callable[[float], None] = time.sleep,
                             clock: Callable[[], float] = time.monotonic, **choose_options: Any) -> Dict[str, Any]:
    """Poll ``get_service`` until the address rule gives an address or the deadline passes.

    While the load balancer is pending and time is left it waits ``wait_interval``; at the
    deadline the rule runs once more without waiting, so the nodePort fallback applies.
    The result gets ``waited`` (seconds, rounded) so users see a slow load balancer.
    """
    start = clock()
    deadline = start + max(0.0, wait_timeout)
    cached_nodes: List[Sequence[Dict[str, Any]]] = []

    def nodes_once() -> Sequence[Dict[str, Any]]:
        if not cached_nodes:
            cached_nodes.append(nodes() if callable(nodes) else nodes)
        return cached_nodes[0]

    while True:
        service = get_service()
        remaining = deadline - clock()
        try:
            result = choose_gateway_address(service, nodes_once, wait_for_load_balancer=remaining > 0,
                                            **choose_options)
        except GatewayPending:
            sleep(max(0.0, min(wait_interval, remaining)))
            continue
        result['waited'] = int(round(clock() - start))
        return result


def static_override(address: Optional[str], address_port: Optional[Any],
                    port: Union[str, int]) -> Optional[Dict[str, Any]]:
    """The result for an ``address`` override whose port is known without reading the Service
    (``address_port`` or a numeric ``port``); None when the cluster must be read.

    Validates the override first (:func:`validate_options` rules for address and ports), so
    nothing that is not an IP address or host name is ever returned.
    """
    if address is None or address == '':
        return None
    errors = [_address_error(address_problem(address))] if address_problem(address) else []
    errors += ['%s: %s' % (field, problem) for field, problem in (
        ('address_port', port_problem(address_port) if address_port is not None else None),
        ('port', port_or_name_problem(port))) if problem]
    if errors:
        raise InputError(errors)
    if address_port is not None or port_number(port) is not None:
        return choose_gateway_address(None, [], port=port, address=address,
                                      address_port=port_number(address_port) if address_port is not None else None)
    return None


def resolve_gateway_address(cluster: Any, namespace: str = 'istio-system', service: Optional[str] = None,
                            selector: Optional[Dict[str, Any]] = None, port: Union[str, int] = '15443',
                            address: Optional[str] = None, address_port: Optional[int] = None,
                            node_port_fallback: bool = True,
                            node_address_types: Sequence[str] = DEFAULT_NODE_ADDRESS_TYPES,
                            wait_timeout: float = 60, wait_interval: float = 2,
                            sleep: Callable[[float], None] = time.sleep,
                            clock: Callable[[], float] = time.monotonic) -> Dict[str, Any]:
    """The gateway address of one cluster (module ``gateway_address``).

    With ``address`` and a known port (``address_port`` or a numeric ``port``) nothing is
    read from the cluster: users without read access to istio-system can still override.
    """
    validate_options(port, address_port, node_address_types, wait_timeout, wait_interval, address=address,
                     namespace=namespace, service=service, selector=selector)
    if address_port is not None:
        address_port = port_number(address_port)
    choose_options = dict(port=port, address=address, address_port=address_port,
                          node_port_fallback=node_port_fallback, node_address_types=node_address_types)
    static = static_override(address, address_port, port)
    if static is not None:
        return static

    if service:
        def get_service() -> Optional[Dict[str, Any]]:
            found = cluster.get(core_path('services', namespace, service), ObjectRef('Service', namespace, service))
            if found is None:
                raise GatewayNotFound('Service %s/%s does not exist; set service (or selector) to the ingress gateway '
                                      'Service' % (namespace, service))
            return found
    else:
        text = selector_string(selector or {'app': 'istio-ingressgateway'})

        def get_service() -> Optional[Dict[str, Any]]:
            found = cluster.list(core_path('services', namespace), ObjectRef('Service', namespace), label_selector=text)
            return pick_service(found, namespace, text)

    def get_nodes() -> Sequence[Dict[str, Any]]:
        return cluster.list(core_path('nodes'), ObjectRef('Node'))

    return wait_for_gateway_address(get_service, get_nodes, wait_timeout, wait_interval, sleep=sleep, clock=clock,
                                    **choose_options)
