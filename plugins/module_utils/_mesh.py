# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Validation and normalisation of the mesh definition (``meshlink_services``), and the plan.

Pure Python. Every problem is reported at once, each as ``<field path>: <what is wrong>[;
<how to fix>]`` (for example ``services[0].ports[1].number: 70000 is not a port (1-65535)``),
so a user fixes the inventory in one round trip.

Normalisation is idempotent: feeding the normalised services back in (as ``remote_services``
and ``preflight`` do with the output of ``mesh_plan``) gives the same services.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    global_host,
    service_entry_name,
    service_key,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import (
    dns1123_label_problem,
    ipv4_problem,
    label_key_problem,
    label_value_problem,
    port_number,
    port_problem,
    show,
    text_problem,
)

# Port protocols a ServiceEntry port accepts (Istio's protocol list; UDP is not supported).
ISTIO_PROTOCOLS = ('HTTP', 'HTTPS', 'GRPC', 'HTTP2', 'MONGO', 'TCP', 'TLS')
MODES = ('sidecar', 'egress_gateway')
DEFAULT_PORTS = ({'name': 'http1', 'number': 8000, 'protocol': 'http'},)

SERVICE_KEYS = ('name', 'namespace', 'cluster', 'host', 'consumers', 'ports', 'mode',
                'endpoint_labels', 'subsets', 'route_subset', 'vip')
# Keys the plan adds to a service (``clusters[c].consumes`` entries); accepted back as input
# and recomputed, never trusted.
DERIVED_KEYS = ('consumer_namespace',)
CONSUMER_KEYS = ('cluster', 'namespace')
PORT_KEYS = ('name', 'number', 'protocol')
SUBSET_KEYS = ('name', 'endpoint_labels', 'pod_labels')

# Label values (multicluster.meshlink.io/service: <name>.<namespace>) allow 63 characters.
_MAX_LABEL_VALUE = 63


class _Errors:
    """Collects problems; each is prefixed with the path of the field it concerns."""

    def __init__(self) -> None:
        self.items: List[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append('%s: %s' % (path, message))

    def unknown_keys(self, path: str, value: Dict[str, Any], known: Sequence[str]) -> None:
        # A misspelt key (``consumer:``, ``endpointLabels:``) would otherwise be silently
        # ignored and the user would get a default instead of what they wrote.
        for key in value:
            if key not in known:
                self.add(path, "unknown key '%s' (known keys: %s)" % (key, ', '.join(known)))


def _port_number(value: Any) -> Optional[int]:
    """The port (1-65535) of an int or a string of ASCII digits (templating yields strings), else None.

    Exact: no strip, no bools, floats or other scripts' digits (see ``_validate.port_number``).
    """
    return port_number(value)


def _cluster_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not an inventory host name (any text without whitespace), or None."""
    if value is None or value == '':
        return None  # the caller says what is required
    return text_problem(value, 'an inventory host name', ascii_only=False)


def _labels(value: Any, path: str, errors: _Errors, required: bool = False) -> Dict[str, str]:
    """Validate a label map; integers are accepted and turned into strings (``version: 1``).

    Booleans, floats and null are not (YAML reads ``true``, ``1.0`` and ``~`` as those): the
    message says to quote them. Keys and values are checked exactly, never stripped.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.add(path, 'must be a mapping of label keys to values, got %s' % type(value).__name__)
        return {}
    if required and not value:
        errors.add(path, 'must not be empty')
    result: Dict[str, str] = {}
    for key, raw in value.items():
        problem = label_key_problem(key)
        if problem:
            errors.add(path, problem)
            continue
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        problem = label_value_problem(text)
        if problem:
            errors.add('%s.%s' % (path, key), problem)
            continue
        result[key] = text
    return result


def _ports(value: Any, path: str, errors: _Errors) -> List[Dict[str, Any]]:
    if value is None:
        return [dict(port) for port in DEFAULT_PORTS]
    if not isinstance(value, list) or not value:
        errors.add(path, 'must be a non-empty list of {name, number, protocol}')
        return []
    ports: List[Dict[str, Any]] = []
    seen_names: Dict[str, int] = {}
    seen_numbers: Dict[int, int] = {}
    for index, port in enumerate(value):
        port_path = '%s[%d]' % (path, index)
        if not isinstance(port, dict):
            errors.add(port_path, 'must be a mapping with name, number and protocol')
            continue
        errors.unknown_keys(port_path, port, PORT_KEYS)
        name = port.get('name')
        problem = dns1123_label_problem(name)
        if problem:
            errors.add(port_path + '.name', problem + ' (Istio port names are DNS-1123 labels, e.g. http1)')
        elif name in seen_names:
            errors.add(port_path + '.name', "'%s' is already used by %s[%d] - port names must be unique"
                       % (name, path, seen_names[name]))
        else:
            seen_names[name] = index
        raw_number = port.get('number')
        number = _port_number(raw_number)
        if number is None:
            errors.add(port_path + '.number', port_problem(raw_number) if raw_number is not None
                       else 'is required (1-65535)')
        elif number in seen_numbers:
            errors.add(port_path + '.number', '%d is already used by %s[%d] - port numbers must be unique'
                       % (number, path, seen_numbers[number]))
        else:
            seen_numbers[number] = index
        protocol = port.get('protocol')
        # Exact: ' http' or 'http\n' is not a protocol (Istio would refuse it), no strip.
        if not isinstance(protocol, str) or not protocol.isascii() or protocol.upper() not in ISTIO_PROTOCOLS:
            errors.add(port_path + '.protocol', '%s - use one of %s (any case)'
                       % ('is required' if protocol is None else '%s is not an Istio protocol' % show(protocol),
                          ', '.join(ISTIO_PROTOCOLS)))
        # The protocol is kept exactly as written: Istio matches it case-insensitively and the
        # seed writes ``http``; rewriting it would make every existing object look changed.
        ports.append({'name': name, 'number': number, 'protocol': protocol})
    return ports


def _consumers(value: Any, path: str, source_cluster: Any, clusters: Optional[Sequence[str]],
               default_namespace: str, errors: _Errors) -> List[Dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(path, 'must be a list of cluster names or {cluster, namespace} mappings')
        return []
    consumers: List[Dict[str, str]] = []
    seen: Dict[str, int] = {}
    for index, item in enumerate(value):
        item_path = '%s[%d]' % (path, index)
        if isinstance(item, str):
            item = {'cluster': item}
        if not isinstance(item, dict):
            errors.add(item_path, 'must be a cluster name or a {cluster, namespace} mapping')
            continue
        errors.unknown_keys(item_path, item, CONSUMER_KEYS)
        cluster = item.get('cluster')
        namespace = item.get('namespace')
        if namespace is None:
            namespace = default_namespace
        if not isinstance(cluster, str) or not cluster:
            errors.add(item_path + '.cluster', 'is required (an inventory host name)' if cluster in (None, '')
                       else _cluster_problem(cluster))
            continue
        problem = _cluster_problem(cluster)
        if problem:
            errors.add(item_path + '.cluster', problem)
        elif clusters is not None and cluster not in clusters:
            errors.add(item_path + '.cluster', "'%s' is not a known cluster (%s) - add it to the inventory or fix "
                       "the name" % (cluster, ', '.join(clusters) or 'none'))
        elif cluster == source_cluster:
            errors.add(item_path + '.cluster', "'%s' runs the service itself - a cluster does not consume its own "
                       "service through .global" % cluster)
        if cluster in seen:
            errors.add(item_path + '.cluster', "'%s' is already listed at %s[%d] - list each consumer once"
                       % (cluster, path, seen[cluster]))
        else:
            seen[cluster] = index
        problem = dns1123_label_problem(namespace)
        if problem:
            errors.add(item_path + '.namespace', problem)
        consumers.append({'cluster': cluster, 'namespace': namespace})
    return consumers


def _subsets(value: Any, path: str, endpoint_labels: Dict[str, str], errors: _Errors,
             gateway_endpoints: bool = True) -> List[Dict[str, Any]]:
    """Subsets. ``gateway_endpoints``: the ``.global`` topology, where a subset also selects the
    labelled gateway endpoint of the ServiceEntry (``endpoint_labels``); the multi-network
    topologies select pods only, and ``endpoint_labels`` are refused there."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(path, 'must be a list of {name, endpoint_labels, pod_labels}')
        return []
    subsets: List[Dict[str, Any]] = []
    seen: Dict[str, int] = {}
    for index, item in enumerate(value):
        item_path = '%s[%d]' % (path, index)
        if not isinstance(item, dict):
            errors.add(item_path, 'must be a mapping with name, endpoint_labels and pod_labels')
            continue
        errors.unknown_keys(item_path, item, SUBSET_KEYS)
        name = item.get('name')
        problem = dns1123_label_problem(name)
        if problem:
            errors.add(item_path + '.name', problem)
        elif name in seen:
            errors.add(item_path + '.name', "'%s' is already used by %s[%d] - subset names must be unique"
                       % (name, path, seen[name]))
        else:
            seen[name] = index
        if not gateway_endpoints:
            if item.get('endpoint_labels') is not None:
                errors.add(item_path + '.endpoint_labels', 'labels of a .global gateway endpoint: the multi-network '
                           'topologies route subsets by pod_labels only - drop endpoint_labels')
            subset_endpoint = {}
        elif item.get('endpoint_labels') is None:
            errors.add(item_path + '.endpoint_labels', 'is required: the labels on the gateway endpoint this '
                       'subset selects (e.g. {version: v1})')
            subset_endpoint = {}
        else:
            subset_endpoint = _labels(item.get('endpoint_labels'), item_path + '.endpoint_labels', errors, True)
        if item.get('pod_labels') is None:
            errors.add(item_path + '.pod_labels', 'is required: the labels of the pods of this version in the '
                       'source cluster (e.g. {version: v1})')
            pod_labels = {}
        else:
            pod_labels = _labels(item.get('pod_labels'), item_path + '.pod_labels', errors, True)
        subsets.append({'name': name, 'endpoint_labels': subset_endpoint, 'pod_labels': pod_labels})
    # A subset selects every endpoint whose labels contain its endpoint_labels. When one
    # subset's labels are contained in another subset's endpoint, both subsets would route
    # to that endpoint and the versions would silently mix.
    for i, first in enumerate(subsets):
        for j, second in enumerate(subsets):
            if i == j or not first['endpoint_labels'] or not second['endpoint_labels']:
                continue
            merged_second = dict(endpoint_labels)
            merged_second.update(second['endpoint_labels'])
            if all(merged_second.get(k) == v for k, v in first['endpoint_labels'].items()):
                errors.add('%s[%d].endpoint_labels' % (path, i),
                           'also match the endpoint of %s[%d] - give each subset a distinct label value '
                           '(e.g. version: v1 / version: v2)' % (path, j))
    return subsets


def _vip(value: Any, path: str, errors: _Errors) -> Optional[str]:
    """A fixed VIP: exactly an IPv4 address (no strip); null or '' means none."""
    if value is None or value == '':
        return None
    problem = ipv4_problem(value)
    if problem:
        errors.add(path, problem + ' - VIPs are IPv4 (e.g. 240.0.0.10)')
        return None
    return value


def normalize_service(raw: Any, index: int, clusters: Optional[Sequence[str]], consumer_namespace: str,
                      errors: _Errors, gateway_endpoints: bool = True) -> Optional[Dict[str, Any]]:
    """Validate one service and return its normalised form (None when it is not a mapping)."""
    path = 'services[%d]' % index
    if not isinstance(raw, dict):
        errors.add(path, 'must be a mapping with at least name, namespace, cluster and consumers')
        return None
    errors.unknown_keys(path, raw, SERVICE_KEYS + DERIVED_KEYS)

    name = raw.get('name')
    problem = dns1123_label_problem(name)
    if problem:
        errors.add(path + '.name', problem)
    namespace = raw.get('namespace')
    problem = dns1123_label_problem(namespace)
    if problem:
        errors.add(path + '.namespace', problem)
    names_ok = isinstance(name, str) and isinstance(namespace, str)
    host = global_host(name, namespace) if names_ok else None
    if names_ok and len(service_key(name, namespace)) > _MAX_LABEL_VALUE:
        errors.add(path, "'%s' is %d characters - the service label value allows %d: shorten the name or the "
                   "namespace" % (service_key(name, namespace), len(service_key(name, namespace)), _MAX_LABEL_VALUE))
    if raw.get('host') is not None and raw.get('host') != host:
        errors.add(path + '.host', "%s does not match name and namespace (%s) - the host is always "
                   "<name>.<namespace>.global: drop the host key" % (show(raw.get('host')), host))

    cluster = raw.get('cluster')
    if cluster is None or cluster == '':
        errors.add(path + '.cluster', 'is required: the inventory host (cluster) that runs the service')
    elif _cluster_problem(cluster):
        errors.add(path + '.cluster', _cluster_problem(cluster))
    elif clusters is not None and cluster not in clusters:
        errors.add(path + '.cluster', "'%s' is not a known cluster (%s) - add it to the inventory or fix the name"
                   % (cluster, ', '.join(clusters) or 'none'))

    consumers = _consumers(raw.get('consumers'), path + '.consumers', cluster, clusters, consumer_namespace, errors)
    ports = _ports(raw.get('ports'), path + '.ports', errors)

    mode = raw.get('mode')
    if mode is None:
        mode = 'sidecar'
    if not isinstance(mode, str) or mode not in MODES:
        errors.add(path + '.mode', '%s is not a mode - use sidecar or egress_gateway' % show(mode))

    endpoint_labels = _labels(raw.get('endpoint_labels'), path + '.endpoint_labels', errors)
    subsets = _subsets(raw.get('subsets'), path + '.subsets', endpoint_labels, errors, gateway_endpoints)
    route_subset = raw.get('route_subset')
    if route_subset in ('', None):
        route_subset = None
        if subsets:
            errors.add(path + '.route_subset', 'is required when subsets are set: name the subset the '
                       'VirtualService routes to (%s)' % ', '.join(str(s['name']) for s in subsets))
    elif not isinstance(route_subset, str):
        errors.add(path + '.route_subset', 'must be the name of a subset, got %s' % show(route_subset))
    elif not subsets:
        errors.add(path + '.route_subset', "'%s' is set but the service has no subsets - add subsets or drop "
                   "route_subset" % (route_subset,))
    elif route_subset not in [s['name'] for s in subsets]:
        errors.add(path + '.route_subset', "%s is not one of the subsets (%s)"
                   % (show(route_subset), ', '.join(str(s['name']) for s in subsets)))

    vip = _vip(raw.get('vip'), path + '.vip', errors)
    return {
        'name': name,
        'namespace': namespace,
        'cluster': cluster,
        'host': host,
        'consumers': consumers,
        'ports': ports,
        'mode': mode,
        'endpoint_labels': endpoint_labels,
        'subsets': subsets,
        'route_subset': route_subset,
        'vip': vip,
    }


def normalize_services(services: Any, clusters: Optional[Sequence[str]] = None,
                       consumer_namespace: str = 'istio-system', gateway_endpoints: bool = True) -> List[Dict[str, Any]]:
    """Validate and normalise the services list; raise :class:`InputError` listing every problem.

    ``clusters`` is the list of known inventory hosts; None skips the known-cluster checks
    (modules that only see one cluster cannot know the others).
    """
    errors = _Errors()
    problem = dns1123_label_problem(consumer_namespace)
    if problem:
        errors.add('consumer_namespace', problem)
    if clusters is not None:
        if not isinstance(clusters, (list, tuple)) or not all(isinstance(c, str) and c for c in clusters):
            errors.add('clusters', 'must be a list of inventory host names')
            clusters = []
        else:
            for position, name in enumerate(clusters):
                problem = _cluster_problem(name)
                if problem:
                    errors.add('clusters[%d]' % position, problem)
            if len(set(clusters)) != len(clusters):
                errors.add('clusters', 'lists a cluster more than once')
    if services is None:
        services = []
    if not isinstance(services, list):
        raise InputError(['services: must be a list of services, got %s' % type(services).__name__])

    normalised: List[Dict[str, Any]] = []
    hosts: Dict[str, int] = {}
    object_names: Dict[str, int] = {}
    vips: Dict[str, int] = {}
    for index, raw in enumerate(services):
        service = normalize_service(raw, index, clusters, consumer_namespace, errors, gateway_endpoints)
        if service is None:
            continue
        normalised.append(service)
        host = service['host']
        if host is not None:
            if host in hosts:
                errors.add('services[%d]' % index, 'host %s is already defined by services[%d] - list each '
                           '<name>.<namespace> once (add its consumers there)' % (host, hosts[host]))
            else:
                hosts[host] = index
                # ``a-b``/``c`` and ``a``/``b-c`` give the same object names (a-b-c, a-b-c-global,
                # a-b-c-local): the second would overwrite the first's objects.
                object_name = service_entry_name(service['name'], service['namespace'])
                if object_name in object_names:
                    errors.add('services[%d]' % index, "its object name '%s' is also the object name of "
                               "services[%d] - rename one of the services" % (object_name, object_names[object_name]))
                else:
                    object_names[object_name] = index
        vip = service['vip']
        if vip is not None:
            if vip in vips:
                errors.add('services[%d].vip' % index, '%s is already the vip of services[%d] - each host needs '
                           'its own address' % (vip, vips[vip]))
            else:
                vips[vip] = index
    if errors.items:
        raise InputError(errors.items)
    return normalised


def build_plan(services: Any, clusters: Sequence[str], consumer_namespace: str = 'istio-system') -> Dict[str, Any]:
    """The normalised services and, per cluster, what it exports and consumes.

    ``clusters[c]``: ``exports`` (services it runs), ``consumes`` (services it calls, each
    with ``consumer_namespace``), ``consumer_namespaces`` (sorted) and ``needs_egress``.
    """
    normalised = normalize_services(services, clusters, consumer_namespace)
    plan: Dict[str, Dict[str, Any]] = {}
    for cluster in clusters:
        consumes = consumed_by(normalised, cluster)
        plan[cluster] = {
            'exports': exported_by(normalised, cluster),
            'consumes': consumes,
            'consumer_namespaces': sorted({s['consumer_namespace'] for s in consumes}),
            'needs_egress': any(s['mode'] == 'egress_gateway' for s in consumes),
        }
    return {'services': normalised, 'clusters': plan}


def consumed_by(services: Sequence[Dict[str, Any]], cluster: str) -> List[Dict[str, Any]]:
    """Services (normalised) that ``cluster`` consumes, each with its ``consumer_namespace``."""
    result = []
    for service in services:
        for consumer in service['consumers']:
            if consumer['cluster'] == cluster:
                entry = dict(service)
                entry['consumer_namespace'] = consumer['namespace']
                result.append(entry)
    return result


def exported_by(services: Sequence[Dict[str, Any]], cluster: str) -> List[Dict[str, Any]]:
    """Services (normalised) that run in ``cluster``."""
    return [s for s in services if s['cluster'] == cluster]
