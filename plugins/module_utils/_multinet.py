# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Current Istio's multi-network mesh (topologies ``multi_primary`` and ``primary_remote``).

Services keep their ``<name>.<namespace>.svc.cluster.local`` names. Every primary's istiod
reads the API servers of the other clusters through *remote secrets*; an endpoint on another
network is replaced by that network's *east-west gateway* (port 15443, AUTO_PASSTHROUGH by
SNI). What the collection writes, per cluster (the plan says which cluster is what):

  every cluster    the label ``topology.istio.io/network`` on the Istio namespace, where absent
  a primary        Gateway ``cross-network-gateway`` on its east-west gateway, exposing only the
                   hosts the inventory exports from it and its remotes (an allow-list, not
                   ``*.local``, unless ``expose_all``); with remotes also Gateway
                   ``istiod-gateway`` and VirtualService ``istiod-vs`` (15012/15017 to istiod)
  a read cluster   per primary that reads it: ServiceAccount ``meshlink-reader-<reader>``,
                   bound to ClusterRole ``meshlink-<mesh>-istio-reader`` (Istio's reader
                   rules), whose token of bounded lifetime (TokenRequest) goes to the reader
  a primary        per cluster it reads: Secret ``istio-remote-secret-<peer>`` in the Istio
                   namespace, label ``istio/multiCluster=true``, annotation
                   ``networking.istio.io/cluster=<peer>``, data key ``<peer>`` (the peer's
                   cluster name, which istiod uses as its ID) = a kubeconfig with inline
                   credentials; rotated inside a renewal window, pruned when the peer leaves
  a consumer       DNS for the remote names: stub Services (no selector, the source Service's
                   ports) unless the sidecars' DNS proxying answers them; with subsets the
                   DestinationRule and VirtualService ``<name>-<namespace>-remote``
  a source         with subsets the DestinationRule ``<name>-<namespace>-local`` (the
                   east-west gateway routes a subset's SNI by it)

The ``evaluate_*`` functions are the preflight rules (pure); ``render_*`` the objects (pure).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import socket
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ansible_collections.meshlink.multicluster.plugins.module_utils import _istio
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import Desired
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import COMPONENT_LABEL, ownership_labels

NETWORK_LABEL = 'topology.istio.io/network'
CONTROL_PLANE_ANNOTATION = 'topology.istio.io/controlPlaneClusters'
MULTICLUSTER_LABEL = 'istio/multiCluster'
CLUSTER_ANNOTATION = 'networking.istio.io/cluster'
TOKEN_EXPIRES_ANNOTATION = 'meshlink.io/token-expires'
KUBECONFIG_DIGEST_ANNOTATION = 'meshlink.io/kubeconfig-digest'
NETWORK_ADDED_ANNOTATION = 'meshlink.io/network-label-added-by'
GATEWAY_PORT_LABEL = 'networking.istio.io/gatewayPort'
NODE_SELECTOR_ANNOTATION = 'traffic.istio.io/nodeSelector'
EASTWEST_PORT = 15443
ISTIOD_PORTS = (15012, 15017)
NETWORK_PART = 'network'
STUB_PART = 'stub-service'
EASTWEST_PART = 'eastwest'
READER_PART = 'remote-reader'
SECRET_PART = 'remote-secret'
DNS_MODES = ('auto', 'stub_services', 'dns_proxy')

EASTWEST_DEFAULTS = {'namespace': 'istio-system', 'selector': {'istio': 'eastwestgateway'}, 'service': '',
                     'gateway_name': 'cross-network-gateway', 'expose_all': False, 'wait_timeout': 60}
READER_DEFAULTS = {'token_lifetime': 86400, 'renew_before': 28800, 'rotate': False, 'secrets': True}


def result(name: str, status: str, message: str, hint: str = '') -> Dict[str, str]:
    return {'name': name, 'status': status, 'message': message, 'hint': hint}


def labels_of(obj: Optional[Dict[str, Any]]) -> Dict[str, str]:
    return ((obj or {}).get('metadata') or {}).get('labels') or {}


def annotations_of(obj: Optional[Dict[str, Any]]) -> Dict[str, str]:
    return ((obj or {}).get('metadata') or {}).get('annotations') or {}


# ---------------------------------------------------------------- names

def reader_account(reader_cluster_name: str) -> str:
    return 'meshlink-reader-%s' % reader_cluster_name


def reader_role(mesh: str) -> str:
    return 'meshlink-%s-istio-reader' % mesh


def reader_binding(mesh: str, reader_cluster_name: str) -> str:
    return 'meshlink-%s-istio-reader-%s' % (mesh, reader_cluster_name)


def secret_name(peer_cluster_name: str) -> str:
    """The name ``istioctl create-remote-secret`` gives: ``istio-remote-secret-<peer>``."""
    return 'istio-remote-secret-%s' % peer_cluster_name


def remote_rule_name(name: str, namespace: str) -> str:
    return '%s-%s-remote' % (name, namespace)


def local_rule_name(name: str, namespace: str) -> str:
    return '%s-%s-local' % (name, namespace)


def fqdn(service: Dict[str, Any]) -> str:
    return '%s.%s.svc.cluster.local' % (service['name'], service['namespace'])


# ---------------------------------------------------------------- what a peer needs to read a cluster

def digest(text: str) -> str:
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def kubeconfig_digest(cluster_name: str, server: str, ca: Optional[str], tls_server_name: Optional[str] = None) -> str:
    """A digest of everything in a remote secret but its token: a change of server or CA (or
    of the name) makes the secret stale even when its token is still valid."""
    return digest(json.dumps([cluster_name, server, ca or '', tls_server_name or ''], sort_keys=True))


def root_digest(configmap: Optional[Dict[str, Any]]) -> Optional[str]:
    """SHA-256 of the mesh root certificate istiod publishes (ConfigMap istio-ca-root-cert)."""
    text = ((configmap or {}).get('data') or {}).get('root-cert.pem')
    if not text:
        return None
    return hashlib.sha256(text.strip().encode('utf-8')).hexdigest()[:16]


def mesh_id_of(mesh_config: Optional[Dict[str, Any]]) -> Optional[str]:
    """``defaultConfig.meshId`` of the mesh config (ConfigMap ``istio``, key ``mesh``)."""
    text = ((mesh_config or {}).get('data') or {}).get('mesh')
    if not text:
        return None
    try:
        import yaml  # pylint: disable=import-outside-toplevel
        mesh = yaml.safe_load(text) or {}
    except Exception:  # pylint: disable=broad-except
        return None
    value = ((mesh.get('defaultConfig') or {}).get('meshId')) or mesh.get('meshId')
    return str(value) if value else None


def dns_capture_on(mesh_config: Optional[Dict[str, Any]]) -> bool:
    from ansible_collections.meshlink.multicluster.plugins.module_utils._preflight import mesh_dns_capture  # noqa: E501 pylint: disable=import-outside-toplevel
    return mesh_dns_capture(((mesh_config or {}).get('data') or {}).get('mesh'))


# ---------------------------------------------------------------- preflight rules (pure)

def evaluate_istiod(deployments: Sequence[Dict[str, Any]], namespace: Optional[Dict[str, Any]],
                    identity: Dict[str, Any], primary_name: Optional[str]) -> Tuple[List[Dict[str, str]], Dict[str, Any]]:
    """istiod of a primary: present, its CLUSTER_ID the plan's cluster name; a remote: no istiod
    of its own, and its Istio namespace names its primary as control plane. ``primary_name`` is
    the primary's cluster name (its CLUSTER_ID), which the annotation lists (or ``*``: any)."""
    facts: Dict[str, Any] = {'istio_version': None, 'cluster_id': None}
    istiod = _istio.find_istiod(deployments)
    name = identity['cluster_name']
    if identity['role'] == 'remote':
        checks = []
        if istiod is not None:
            facts['istio_version'] = _istio.format_version(istiod['version'])
            checks.append(result('istiod', 'fail', 'The remote %s runs an istiod of its own (%s)' % (name, istiod['name']),
                                 'A remote is served by its primary\'s istiod (%s): install it with the remote profile, or '
                                 'set meshlink_istio_role: primary' % primary_name))
        planes = [p.strip() for p in annotations_of(namespace).get(CONTROL_PLANE_ANNOTATION, '').split(',') if p.strip()]
        if planes and primary_name not in planes and '*' not in planes:
            checks.append(result('istiod', 'fail', 'The Istio namespace names %s as control plane (%s), the inventory '
                                 'says %s' % (', '.join(planes), CONTROL_PLANE_ANNOTATION, primary_name),
                                 'Set meshlink_istio_primary to the cluster whose istiod serves this remote'))
        elif not checks:
            checks.append(result('istiod', 'pass', 'Remote of %s (served by its istiod)%s' % (
                primary_name, '' if planes else '; no %s annotation on the Istio namespace' % CONTROL_PLANE_ANNOTATION)))
        return checks, facts
    if istiod is None:
        return [result('istiod', 'fail', 'No istiod Deployment in the Istio namespace of primary %s' % name,
                       'Install Istio in this cluster, or set meshlink_istio_role: remote and meshlink_istio_primary')], facts
    version = istiod['version']
    facts['istio_version'] = _istio.format_version(version)
    cluster_id = istiod['env'].get('CLUSTER_ID') or 'Kubernetes'
    facts['cluster_id'] = cluster_id
    checks = []
    if version is not None and version < (1, 19, 0):
        checks.append(result('istio_version', 'warn', 'istiod %s: the multi-network mesh works, but this release is out '
                             'of support' % facts['istio_version'], 'Upgrade Istio'))
    else:
        checks.append(result('istio_version', 'pass', 'istiod %s' % (facts['istio_version'] or 'of unknown version')))
    if cluster_id != name:
        checks.append(result('istiod', 'fail', 'istiod runs with CLUSTER_ID=%s, the inventory calls this cluster %s'
                             % (cluster_id, name),
                             'The remote secrets are keyed by the cluster name and istiod skips its own ID: set '
                             'meshlink_istio_cluster_name: %s, or install Istio with '
                             'values.global.multiCluster.clusterName=%s' % (cluster_id, name)))
    else:
        checks.append(result('istiod', 'pass', 'istiod %s serves cluster %s (CLUSTER_ID)' % (istiod['name'], name)))
    return checks, facts


def evaluate_network(namespace: Optional[Dict[str, Any]], gateway: Optional[Dict[str, Any]],
                     istiod_deployment: Optional[Dict[str, Any]], network: str) -> List[Dict[str, str]]:
    """The network label agrees where it is set: the Istio namespace (written when absent), the
    east-west gateway Service, istiod's pods."""
    problems = []
    have = labels_of(namespace).get(NETWORK_LABEL)
    if have and have != network:
        problems.append('the Istio namespace is labelled %s=%s' % (NETWORK_LABEL, have))
    if gateway is not None:
        gateway_network = labels_of(gateway).get(NETWORK_LABEL)
        if gateway_network != network:
            problems.append('the east-west gateway Service %s has %s=%s' % (
                (gateway.get('metadata') or {}).get('name'), NETWORK_LABEL, gateway_network or '(none)'))
    if istiod_deployment is not None:
        template = (((istiod_deployment.get('spec') or {}).get('template') or {}).get('metadata') or {})
        istiod_network = (template.get('labels') or {}).get(NETWORK_LABEL)
        if istiod_network and istiod_network != network:
            problems.append('istiod\'s pods are labelled %s=%s' % (NETWORK_LABEL, istiod_network))
    if problems:
        return [result('network', 'fail', 'The inventory puts this cluster on network %s, but %s' % (
            network, '; '.join(problems)),
            'Set meshlink_network to the network Istio was installed with (values.global.network), or relabel')]
    how = 'labelled' if have else 'not labelled yet: setup labels it'
    return [result('network', 'pass', 'Network %s (Istio namespace %s)' % (network, how))]


def gateway_address(service: Dict[str, Any], nodes: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Where istiod finds the east-west gateway: load balancer IP or host name, externalIPs, or
    for a NodePort Service with the nodeSelector annotation the ExternalIP of a node whose labels
    hold the annotation's (a JSON object; unreadable: any node) and the nodePort (Istio's kube
    controller: nodes without an ExternalIP are skipped)."""
    port_label = labels_of(service).get(GATEWAY_PORT_LABEL)
    port = int(port_label) if port_label and port_label.isascii() and port_label.isdigit() else EASTWEST_PORT
    for item in ((service.get('status') or {}).get('loadBalancer') or {}).get('ingress') or []:
        if item.get('ip'):
            return {'address': item['ip'], 'port': port, 'kind': 'ip'}
        if item.get('hostname'):
            return {'address': item['hostname'], 'port': port, 'kind': 'hostname'}
    spec = service.get('spec') or {}
    for address in spec.get('externalIPs') or []:
        return {'address': address, 'port': port, 'kind': 'external_ip'}
    notes = annotations_of(service)
    if NODE_SELECTOR_ANNOTATION in notes and spec.get('type') == 'NodePort':
        try:
            selector = json.loads(notes[NODE_SELECTOR_ANNOTATION] or '{}')
        except ValueError:
            selector = {}
        if not isinstance(selector, dict):
            selector = {}
        node_port = next((p.get('nodePort') for p in spec.get('ports') or []
                          if p.get('port') == port and p.get('nodePort')), None)
        for node in nodes if node_port else []:
            node_labels = labels_of(node)
            if any(node_labels.get(k) != v for k, v in selector.items()):
                continue
            for entry in (node.get('status') or {}).get('addresses') or []:
                if entry.get('type') == 'ExternalIP' and entry.get('address'):
                    return {'address': entry['address'], 'port': node_port, 'kind': 'node'}
    return None


def load_balancer_pending(service: Dict[str, Any]) -> bool:
    """A LoadBalancer Service whose load balancer has not published an address yet."""
    return (service.get('spec') or {}).get('type') == 'LoadBalancer' and \
        not ((service.get('status') or {}).get('loadBalancer') or {}).get('ingress')


def evaluate_eastwest(services: Sequence[Dict[str, Any]], nodes: Sequence[Dict[str, Any]], needs_istiod_ports: bool,
                      selector: str, namespace: str) -> Tuple[Dict[str, str], Optional[Dict[str, Any]]]:
    """The east-west gateway: one Service, port 15443 (15012 and 15017 too on a primary with
    remotes), and an address istiod can publish to the other networks."""
    name = 'eastwest_gateway'
    if not services:
        return result(name, 'fail', 'No east-west gateway Service in %s (selector %s)' % (namespace, selector),
                      'Install it (samples/multicluster/gen-eastwest-gateway.sh --network <network>, or the istio/gateway '
                      'chart with networkGateway=<network>), or set meshlink_eastwest_gateway_selector'), None
    if len(services) > 1:
        names = ', '.join(sorted((s.get('metadata') or {}).get('name', '?') for s in services))
        return result(name, 'fail', 'The selector %s matches %d Services in %s (%s)' % (selector, len(services),
                                                                                        namespace, names),
                      'Set meshlink_eastwest_gateway_service to the east-west gateway'), None
    service = services[0]
    ports = {p.get('port') for p in (service.get('spec') or {}).get('ports') or []}
    wanted = {EASTWEST_PORT} | (set(ISTIOD_PORTS) if needs_istiod_ports else set())
    missing = sorted(wanted - ports)
    ref = '%s/%s' % (namespace, (service.get('metadata') or {}).get('name'))
    if missing:
        return result(name, 'fail', 'The east-west gateway Service %s has no port %s' % (
            ref, ', '.join(str(p) for p in missing)),
            '15443 carries cross-network traffic%s' % ('; 15012 and 15017 reach istiod from the remotes'
                                                       if needs_istiod_ports else '')), None
    address = gateway_address(service, nodes)
    if address is None:
        return result(name, 'fail', 'The east-west gateway Service %s has no address: no load balancer ingress, no '
                      'externalIPs, no %s annotation' % (ref, NODE_SELECTOR_ANNOTATION),
                      'Give it a load balancer, externalIPs, or the %s annotation (istiod then uses a node address '
                      'and the nodePort)' % NODE_SELECTOR_ANNOTATION), None
    return result(name, 'pass', 'East-west gateway %s at %s:%s (%s)' % (ref, address['address'], address['port'],
                                                                        address['kind'])), address


def evaluate_dns(mesh_config: Optional[Dict[str, Any]], mode: str, consumes: bool) -> Tuple[Dict[str, str], bool]:
    """DNS for the remote names: stub Services are written unless DNS proxying answers them.
    Returns the check and whether stub Services are needed."""
    name = 'dns'
    capture = dns_capture_on(mesh_config)
    if not consumes:
        return result(name, 'pass', 'Not needed: this cluster consumes no service'), False
    if mode == 'dns_proxy':
        if not capture:
            return result(name, 'fail', 'meshlink_multinetwork_dns is dns_proxy but DNS proxying is off (no '
                          'ISTIO_META_DNS_CAPTURE in the mesh config)',
                          'Turn on meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE: "true", or let setup '
                          'write stub Services (meshlink_multinetwork_dns: auto)'), False
        return result(name, 'pass', 'The sidecars\' DNS proxy answers the remote names'), False
    if mode == 'stub_services' or not capture:
        return result(name, 'pass', 'Setup writes a stub Service per remote service (%s)'
                      % ('asked' if mode == 'stub_services' else 'DNS proxying is off')), True
    return result(name, 'pass', 'The sidecars\' DNS proxy answers the remote names (ISTIO_META_DNS_CAPTURE)'), False


def _loopback(host: str) -> bool:
    if host.lower() in ('localhost', 'localhost.localdomain') or host.lower().endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def evaluate_peer_api_server(server: str, given: bool, allow_loopback: bool,
                             resolve=socket.getaddrinfo) -> Dict[str, str]:
    """The API server address the other clusters' istiods dial (the remote secrets' server)."""
    name = 'peer_api_server'
    host = urlsplit(server).hostname or ''
    source = 'meshlink_api_server_for_peers' if given else 'the address this run connects to'
    if _loopback(host):
        if allow_loopback:
            return result(name, 'warn', 'Peers reach this API server at %s, a loopback address (%s): works only where '
                          'every istiod runs on this machine' % (server, source),
                          'meshlink_allow_loopback_api_server is true: a lab only')
        return result(name, 'fail', 'Peers would reach this API server at %s (%s), a loopback address: the other '
                      'clusters\' istiods cannot dial it' % (server, source),
                      'Set meshlink_api_server_for_peers to an https URL the other clusters reach (istio#31081)')
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            resolve(host, None)
        except (OSError, UnicodeError) as error:
            if given:
                # The istiods dial it from their networks, which may resolve names the controller does not.
                return result(name, 'warn', 'Peers reach this API server at %s (%s); the controller cannot resolve %s '
                              '(%s): the other clusters\' istiods must' % (server, source, host, error),
                              'Make sure the name resolves where istiod runs, or give an IP address')
            return result(name, 'fail', 'The API server host %s (%s) does not resolve here: %s' % (host, source, error),
                          'Set meshlink_api_server_for_peers to a name the other clusters resolve, or an IP address')
    return result(name, 'pass', 'Peers reach this API server at %s (%s)' % (server, source))


def evaluate_exported(part: Dict[str, Any], services: Dict[str, Optional[Dict[str, Any]]],
                      samples: bool) -> Tuple[Dict[str, str], Dict[str, List[Dict[str, Any]]]]:
    """Every service this cluster exports exists (or the sample apps create it); returns its
    ports (name, port, protocol, appProtocol) for the consumers' stub Services."""
    from ansible_collections.meshlink.multicluster.plugins.module_utils._samples import service_port_name  # noqa: E501 pylint: disable=import-outside-toplevel
    name = 'exported_services'
    ports: Dict[str, List[Dict[str, Any]]] = {}
    missing = []
    for service in part['exports']:
        key = '%s.%s' % (service['name'], service['namespace'])
        found = services.get(key)
        if found is not None:
            ports[key] = [{k: p[k] for k in ('name', 'port', 'protocol', 'appProtocol') if k in p}
                          for p in (found.get('spec') or {}).get('ports') or []]
        elif samples:
            single = len(service['ports']) == 1
            ports[key] = [{'name': service_port_name(p, single), 'port': int(p['number']), 'protocol': 'TCP'}
                          for p in service['ports']]
        else:
            missing.append('%s/%s' % (service['namespace'], service['name']))
    if not part['exports']:
        return result(name, 'pass', 'Not needed: this cluster exports no service'), ports
    if missing:
        return result(name, 'fail', 'Exported but missing here: Service %s' % ', '.join(missing),
                      'Deploy the service, or fix name/namespace/cluster in meshlink_services'), ports
    return result(name, 'pass', 'Exported: %s' % ', '.join(sorted(ports))), ports


# ---------------------------------------------------------------- objects (pure)

def _object(kind: str, api_version: str, name: str, namespace: Optional[str], labels: Dict[str, str],
            body: Dict[str, Any], annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    metadata: Dict[str, Any] = {'name': name, 'labels': labels}
    if namespace:
        metadata['namespace'] = namespace
    if annotations:
        metadata['annotations'] = annotations
    obj = {'apiVersion': api_version, 'kind': kind, 'metadata': metadata}
    obj.update(body)
    return obj


def exposed_hosts(plan: Dict[str, Any], primary: str) -> List[str]:
    """The hosts the east-west gateways of ``primary``'s istiod must pass through: the services
    exported by it and by the remotes it serves, that some other cluster consumes."""
    served = {c for c, s in plan['istio'].items() if s['primary'] == primary}
    return sorted({fqdn(s) for s in plan['services'] if s['cluster'] in served and s['consumers']})


def render_eastwest_gateway(plan: Dict[str, Any], primary: str, settings: Dict[str, Any], mesh: str) -> Dict[str, Any]:
    """Gateway ``cross-network-gateway``: 15443, TLS AUTO_PASSTHROUGH, the allow-list of hosts."""
    hosts = ['*.local'] if settings['expose_all'] else exposed_hosts(plan, primary)
    spec = {'selector': dict(settings['selector']),
            'servers': [{'port': {'number': EASTWEST_PORT, 'name': 'tls', 'protocol': 'TLS'},
                         'tls': {'mode': 'AUTO_PASSTHROUGH'}, 'hosts': hosts}]}
    return _object('Gateway', 'networking.istio.io/v1', settings['gateway_name'], settings['namespace'],
                   ownership_labels(mesh, EASTWEST_PART), {'spec': spec})


def render_istiod_exposure(settings: Dict[str, Any], istio_namespace: str, mesh: str) -> List[Dict[str, Any]]:
    """Gateway ``istiod-gateway`` and VirtualService ``istiod-vs``: the remotes' proxies and
    injection reach istiod through the east-west gateway (15012, 15017)."""
    labels = ownership_labels(mesh, EASTWEST_PART)
    gateway = _object('Gateway', 'networking.istio.io/v1', 'istiod-gateway', istio_namespace, labels, {'spec': {
        'selector': dict(settings['selector']),
        'servers': [{'port': {'name': 'tls-istiod', 'number': 15012, 'protocol': 'tls'}, 'tls': {'mode': 'PASSTHROUGH'},
                     'hosts': ['*']},
                    {'port': {'name': 'tls-istiodwebhook', 'number': 15017, 'protocol': 'tls'},
                     'tls': {'mode': 'PASSTHROUGH'}, 'hosts': ['*']}]}})
    istiod = 'istiod.%s.svc.cluster.local' % istio_namespace
    route = _object('VirtualService', 'networking.istio.io/v1', 'istiod-vs', istio_namespace, labels, {'spec': {
        'hosts': ['*'], 'gateways': ['istiod-gateway'],
        'tls': [{'match': [{'port': 15012, 'sniHosts': ['*']}],
                 'route': [{'destination': {'host': istiod, 'port': {'number': 15012}}}]},
                {'match': [{'port': 15017, 'sniHosts': ['*']}],
                 'route': [{'destination': {'host': istiod, 'port': {'number': 443}}}]}]}})
    return [gateway, route]


def reader_rules(secrets: bool) -> List[Dict[str, Any]]:
    """Istio's reader rules (istio-reader-clusterrole): what a peer's istiod reads here."""
    core = ['endpoints', 'pods', 'services', 'nodes', 'replicationcontrollers', 'namespaces', 'configmaps']
    if secrets:
        core.append('secrets')
    read = ['get', 'list', 'watch']
    return [
        {'apiGroups': ['config.istio.io', 'security.istio.io', 'networking.istio.io', 'authentication.istio.io',
                       'rbac.istio.io', 'telemetry.istio.io', 'extensions.istio.io'], 'resources': ['*'], 'verbs': read},
        {'apiGroups': [''], 'resources': core, 'verbs': read},
        {'apiGroups': ['networking.x-k8s.io', 'gateway.networking.k8s.io'], 'resources': ['gateways'], 'verbs': read},
        {'apiGroups': ['apiextensions.k8s.io'], 'resources': ['customresourcedefinitions'], 'verbs': read},
        {'apiGroups': ['discovery.k8s.io'], 'resources': ['endpointslices'], 'verbs': read},
        {'apiGroups': ['multicluster.x-k8s.io'], 'resources': ['serviceexports'], 'verbs': read + ['create', 'delete']},
        {'apiGroups': ['multicluster.x-k8s.io'], 'resources': ['serviceimports'], 'verbs': read},
        {'apiGroups': ['apps'], 'resources': ['replicasets'], 'verbs': read},
        {'apiGroups': ['authentication.k8s.io'], 'resources': ['tokenreviews'], 'verbs': ['create']},
        {'apiGroups': ['authorization.k8s.io'], 'resources': ['subjectaccessreviews'], 'verbs': ['create']},
    ]


def render_reader_role(mesh: str, secrets: bool) -> Dict[str, Any]:
    return _object('ClusterRole', 'rbac.authorization.k8s.io/v1', reader_role(mesh), None,
                   ownership_labels(mesh, READER_PART), {'rules': reader_rules(secrets)})


def render_reader(mesh: str, reader_name: str, istio_namespace: str) -> List[Dict[str, Any]]:
    """ServiceAccount and ClusterRoleBinding of the istiod of cluster ``reader_name``."""
    labels = ownership_labels(mesh, READER_PART)
    account = _object('ServiceAccount', 'v1', reader_account(reader_name), istio_namespace, labels, {})
    binding = _object('ClusterRoleBinding', 'rbac.authorization.k8s.io/v1', reader_binding(mesh, reader_name), None,
                      labels, {'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole',
                                           'name': reader_role(mesh)},
                               'subjects': [{'kind': 'ServiceAccount', 'name': reader_account(reader_name),
                                             'namespace': istio_namespace}]})
    return [account, binding]


def render_remote_secret(mesh: str, peer_name: str, istio_namespace: str, kubeconfig: Dict[str, Any],
                         expires: str, config_digest: str) -> Dict[str, Any]:
    """The remote secret istiod reads: key = the peer's cluster name, value = its kubeconfig."""
    import yaml  # pylint: disable=import-outside-toplevel
    labels = ownership_labels(mesh, SECRET_PART)
    labels[MULTICLUSTER_LABEL] = 'true'
    text = yaml.safe_dump(kubeconfig, sort_keys=False)
    return _object('Secret', 'v1', secret_name(peer_name), istio_namespace, labels,
                   {'type': 'Opaque', 'data': {peer_name: base64.b64encode(text.encode('utf-8')).decode('ascii')}},
                   annotations={CLUSTER_ANNOTATION: peer_name, TOKEN_EXPIRES_ANNOTATION: expires,
                                KUBECONFIG_DIGEST_ANNOTATION: config_digest})


def render_stub_service(service: Dict[str, Any], ports: Sequence[Dict[str, Any]], mesh: str) -> Dict[str, Any]:
    """A Service without selector of the remote service's name and ports: kube-dns answers its
    name, istiod merges it with the remote endpoints (by port name, so the names must match)."""
    labels = ownership_labels(mesh, '%s.%s' % (service['name'], service['namespace']))
    labels[COMPONENT_LABEL] = STUB_PART
    return _object('Service', 'v1', service['name'], service['namespace'], labels,
                   {'spec': {'ports': [dict(p) for p in ports]}})


def render_subset_rules(service: Dict[str, Any], namespace: str, mesh: str, consumer: bool) -> List[Dict[str, Any]]:
    """DestinationRule (subsets by pod labels) on the ``.svc.cluster.local`` host, and on the
    consumer side the VirtualService routing everything to ``route_subset``."""
    if not service.get('subsets'):
        return []
    labels = ownership_labels(mesh, '%s.%s' % (service['name'], service['namespace']))
    name = remote_rule_name(service['name'], service['namespace']) if consumer else \
        local_rule_name(service['name'], service['namespace'])
    host = fqdn(service)
    rule = _object('DestinationRule', 'networking.istio.io/v1', name, namespace, labels, {'spec': {
        'host': host, 'subsets': [{'name': s['name'], 'labels': dict(s['pod_labels'])} for s in service['subsets']]}})
    if not consumer:
        return [rule]
    route = _object('VirtualService', 'networking.istio.io/v1', name, namespace, labels, {'spec': {
        'hosts': [host], 'http': [{'route': [{'destination': {'host': host, 'subset': service['route_subset']}}]}]}})
    return [rule, route]


def render_network_label(istio_namespace: str, network: str, mesh: str) -> Dict[str, Any]:
    """The network label on the Istio namespace (written only where absent: see reconcile)."""
    return _object('Namespace', 'v1', istio_namespace, None, {NETWORK_LABEL: network}, {},
                   annotations={NETWORK_ADDED_ANNOTATION: mesh})


def desired(objs: Sequence[Dict[str, Any]], compare: str = 'contains') -> List[Desired]:
    return [Desired(o, compare=('spec' if o.get('spec') is not None and o['apiVersion'].startswith('networking')
                                else compare)) for o in objs]


def token_needs_renewal(secret_meta: Optional[Dict[str, Any]], expected_digest: str, renew_before: int, rotate: bool,
                        now: float) -> Optional[str]:
    """Why the reader's remote secret needs a new token (None: it does not): absent, written by
    someone else, for another server/CA, expiring within ``renew_before`` seconds, or asked."""
    import datetime  # pylint: disable=import-outside-toplevel
    if not secret_meta or not secret_meta.get('exists'):
        return 'no remote secret yet'
    if not secret_meta.get('ours'):
        return None  # a conflict, reported by the reader's inspection
    if rotate:
        return 'rotation asked (meshlink_remote_secret_rotate)'
    if secret_meta.get('digest') != expected_digest:
        return 'the server, CA or cluster name changed'
    expires = secret_meta.get('expires') or ''
    try:
        moment = datetime.datetime.strptime(expires, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return 'its expiry is unknown'
    left = moment.timestamp() - now
    if left <= renew_before:
        return 'its token expires in %ds (renewal window %ds)' % (max(0, int(left)), renew_before)
    return None
