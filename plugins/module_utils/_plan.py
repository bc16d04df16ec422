# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The plan of a mesh: computed once per run, on the controller, and passed on normalised.

``build_plan`` validates the whole mesh definition (services, mesh name, topology, and for the
multi-network topologies each cluster's Istio identity) and says, per cluster, what it exports,
consumes, which namespaces it needs and (multi-network) which peers it reads and is read by.
Every problem is reported at once with its field path. The result carries a ``fingerprint``
(SHA-256 of its canonical JSON): the per-cluster modules check it instead of validating the
plan again, so a plan edited by hand between the plan step and a writing step is refused.

Topologies:
  global_serviceentries  the seed's procedure (Istio <= 1.18): ``<name>.<ns>.global`` hosts,
                         ServiceEntries with a VIP and the source gateway as endpoint.
  multi_primary          current Istio: every cluster runs istiod (unless its host says
                         ``meshlink_istio_role: remote``); istiods read each other through
                         remote secrets; cross-network traffic goes through east-west gateways.
  primary_remote         current Istio: clusters are remotes of a primary unless their host says
                         ``meshlink_istio_role: primary``.

Pure Python: no Ansible, no kubernetes client.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import (
    consumed_by,
    exported_by,
    normalize_services,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import dns1123_label_problem
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import address_problem
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import DEFAULT_MESH

SEED_TOPOLOGY = 'global_serviceentries'
MULTI_NETWORK_TOPOLOGIES = ('multi_primary', 'primary_remote')
TOPOLOGIES = (SEED_TOPOLOGY,) + MULTI_NETWORK_TOPOLOGIES
ISTIO_ROLES = ('primary', 'remote')

# Per-host variables of the multi-network topologies (inventory name -> plan key).
CLUSTER_SETTINGS = {
    'meshlink_istio_cluster_name': 'cluster_name',
    'meshlink_network': 'network',
    'meshlink_istio_role': 'role',
    'meshlink_istio_primary': 'primary',
    'meshlink_api_server_for_peers': 'api_server',
}

PLAN_VERSION = 1


def is_multi_network(topology: str) -> bool:
    return topology in MULTI_NETWORK_TOPOLOGIES


def local_host(name: str, namespace: str) -> str:
    """The name of a service in current Istio: ``<name>.<namespace>.svc.cluster.local``."""
    return '%s.%s.svc.cluster.local' % (name, namespace)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _api_server_problem(value: Any) -> Optional[str]:
    """An https URL with a host: what a peer's istiod dials (its kubeconfig ``server``)."""
    from urllib.parse import urlsplit  # pylint: disable=import-outside-toplevel

    if not isinstance(value, str) or not value:
        return 'must be an https:// URL of the API server as the peers reach it'
    if value != value.strip() or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return '%r contains whitespace or control characters' % (value,)
    parts = urlsplit(value)
    if parts.scheme != 'https' or not parts.hostname:
        return "'%s' is not an https:// URL with a host (istiod needs https://host[:port])" % value
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535 or parts.netloc.endswith(':'):
        return "'%s' has no valid port (1-65535) after the host" % value
    problem = address_problem(parts.hostname)
    if problem:
        return "'%s': the host %s" % (value, problem)
    if parts.path not in ('', '/') or parts.query or parts.fragment:
        return "'%s' has a path, query or fragment; give https://host[:port] only" % value
    return None


def _cluster_settings(clusters: Sequence[str], topology: str, raw: Dict[str, Dict[str, Any]],
                      errors: List[str]) -> Dict[str, Dict[str, Any]]:
    """Validated Istio identity of every cluster for the multi-network topologies."""
    settings: Dict[str, Dict[str, Any]] = {}
    default_role = 'primary' if topology == 'multi_primary' else 'remote'
    for cluster in clusters:
        values = raw.get(cluster) or {}
        if not isinstance(values, dict):
            errors.append('hostvars.%s: the cluster settings must be a mapping' % cluster)
            continue
        path = 'hostvars.%s.' % cluster
        name = values.get('meshlink_istio_cluster_name')
        if name is None or name == '':
            name = cluster
            problem = dns1123_label_problem(name)
            if problem:
                errors.append('%smeshlink_istio_cluster_name: the inventory host name %s; set '
                              'meshlink_istio_cluster_name to the cluster name istiod uses (CLUSTER_ID)'
                              % (path, problem))
        else:
            problem = dns1123_label_problem(name)
            if problem:
                errors.append('%smeshlink_istio_cluster_name: %s (it becomes the CLUSTER_ID and the remote secret '
                              'key)' % (path, problem))
        network = values.get('meshlink_network')
        if network is None or network == '':
            errors.append('%smeshlink_network: is required with topology %s: the network of this cluster\'s '
                          'pods, e.g. network1 (the same value in clusters whose pods reach each other directly)'
                          % (path, topology))
        else:
            problem = dns1123_label_problem(network)
            if problem:
                errors.append('%smeshlink_network: %s' % (path, problem))
        role = values.get('meshlink_istio_role')
        if role is None or role == '':
            role = default_role
        elif role not in ISTIO_ROLES:
            errors.append('%smeshlink_istio_role: %r is not primary or remote' % (path, role))
        primary = values.get('meshlink_istio_primary')
        if primary in ('', None):
            primary = None
        elif not _is_text(primary):
            errors.append('%smeshlink_istio_primary: must be the inventory host of the primary cluster' % path)
            primary = None
        api_server = values.get('meshlink_api_server_for_peers')
        if api_server in ('', None):
            api_server = None
        else:
            problem = _api_server_problem(api_server)
            if problem:
                errors.append('%smeshlink_api_server_for_peers: %s' % (path, problem))
        settings[cluster] = {'cluster_name': name, 'network': network, 'role': role, 'primary': primary,
                             'api_server': api_server}

    primaries = [c for c in clusters if settings.get(c, {}).get('role') == 'primary']
    if clusters and not primaries and settings:
        errors.append('hostvars: no cluster is a primary - set meshlink_istio_role: primary on the cluster(s) whose '
                      'istiod serves the mesh')
    for cluster in clusters:
        entry = settings.get(cluster)
        if not entry:
            continue
        path = 'hostvars.%s.meshlink_istio_primary' % cluster
        if entry['role'] == 'primary':
            if entry['primary'] not in (None, cluster):
                errors.append('%s: %s is a primary; only remotes name a primary - drop it' % (path, cluster))
            entry['primary'] = cluster
            continue
        if entry['primary'] is None:
            if len(primaries) == 1:
                entry['primary'] = primaries[0]
            else:
                errors.append('%s: is required for the remote %s: the inventory host whose istiod serves it (%s)'
                              % (path, cluster, ', '.join(primaries) or 'no primary in the inventory'))
        elif entry['primary'] not in clusters:
            errors.append("%s: '%s' is not a cluster of this mesh (%s)" % (path, entry['primary'], ', '.join(clusters)))
        elif settings.get(entry['primary'], {}).get('role') != 'primary':
            errors.append("%s: '%s' is not a primary (meshlink_istio_role)" % (path, entry['primary']))

    seen: Dict[str, str] = {}
    for cluster in clusters:
        entry = settings.get(cluster)
        if not entry or not _is_text(entry['cluster_name']):
            continue
        other = seen.get(entry['cluster_name'])
        if other:
            errors.append("hostvars.%s.meshlink_istio_cluster_name: '%s' is also the cluster name of %s - cluster "
                          "names must be unique in the mesh (istiod ignores a second cluster with the same ID)"
                          % (cluster, entry['cluster_name'], other))
        else:
            seen[entry['cluster_name']] = cluster
    return settings


def _multi_network_service_problems(services: Sequence[Dict[str, Any]], topology: str, errors: List[str]) -> None:
    """Fields that only mean something for ``.global`` ServiceEntries."""
    for index, service in enumerate(services):
        path = 'services[%d]' % index
        if service.get('vip'):
            errors.append('%s.vip: VIPs belong to .global ServiceEntries; topology %s keeps the '
                          '.svc.cluster.local name - drop vip' % (path, topology))
        if service.get('mode') not in (None, 'sidecar'):
            errors.append('%s.mode: %s is a mode of the .global topology; with %s traffic to another network '
                          'always goes through its east-west gateway - drop mode' % (path, service['mode'], topology))
        if service.get('endpoint_labels'):
            errors.append('%s.endpoint_labels: labels of a .global gateway endpoint; with %s subsets select pods '
                          'by pod_labels - drop endpoint_labels' % (path, topology))


# What the fingerprint covers: the plan itself, not what Ansible adds to a registered result
# (changed, failed, lines, ...).
PLAN_KEYS = ('version', 'mesh', 'topology', 'consumer_namespace', 'services', 'clusters', 'istio')


def _fingerprint(plan: Dict[str, Any]) -> str:
    body = {k: plan[k] for k in PLAN_KEYS if k in plan}
    text = json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def remote_rule_services(part: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The services with versioned subsets a cluster consumes and exports: ``(consumes, exports)``."""
    return ([s for s in part['consumes'] if s.get('subsets')], [s for s in part['exports'] if s.get('subsets')])


def _route_config_to_primaries(plan_clusters: Dict[str, Dict[str, Any]], settings: Dict[str, Dict[str, Any]]) -> None:
    """A remote's Istio configuration lives in its primary: istiod reads DestinationRules and
    VirtualServices from its own cluster only, so the subset rules of a remote's services are
    written there (``config_for``), and the primary needs their namespaces."""
    for cluster, entry in plan_clusters.items():
        entry['config_for'] = []
    for cluster, entry in plan_clusters.items():
        own = settings[cluster]
        if own['role'] != 'remote':
            continue
        primary = plan_clusters[own['primary']]
        primary['config_for'].append(cluster)
        consumes, exports = remote_rule_services(entry)
        extra = {s['consumer_namespace'] for s in consumes} | {s['namespace'] for s in exports}
        primary['namespaces'] = sorted(set(primary['namespaces']) | extra)


def build_plan(services: Any, clusters: Any, mesh: Any = DEFAULT_MESH, topology: Any = SEED_TOPOLOGY,
               consumer_namespace: Any = 'istio-system',
               cluster_settings: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The validated, normalised plan; raises :class:`InputError` listing every problem.

    ``cluster_settings``: inventory host -> its ``meshlink_*`` variables of CLUSTER_SETTINGS
    (only read for the multi-network topologies).
    """
    errors: List[str] = []
    problem = dns1123_label_problem(mesh)
    if problem:
        errors.append('mesh: %s (meshlink_mesh names the mesh in the meshlink.io/mesh label of every object)'
                      % problem)
    if topology not in TOPOLOGIES:
        errors.append('topology: %r is not one of %s' % (topology, ', '.join(TOPOLOGIES)))
    try:
        normalised = normalize_services(services, clusters, consumer_namespace,
                                        gateway_endpoints=not is_multi_network(topology))
    except InputError as error:
        errors.extend(error.errors)
        normalised = []
    if errors:
        raise InputError(errors)

    cluster_list = list(clusters)
    multi_network = is_multi_network(topology)
    settings: Dict[str, Dict[str, Any]] = {}
    if multi_network:
        _multi_network_service_problems(normalised, topology, errors)
        settings = _cluster_settings(cluster_list, topology, cluster_settings or {}, errors)
        for service in normalised:
            service['host'] = local_host(service['name'], service['namespace'])
    if errors:
        raise InputError(errors)

    plan_clusters: Dict[str, Dict[str, Any]] = {}
    for cluster in cluster_list:
        consumes = consumed_by(normalised, cluster)
        exports = exported_by(normalised, cluster)
        consumer_namespaces = sorted({s['consumer_namespace'] for s in consumes})
        namespaces = set(consumer_namespaces) | {s['namespace'] for s in exports}
        if multi_network:
            # The consumer cluster resolves <name>.<namespace>.svc.cluster.local through a stub
            # Service in the service's namespace, so that namespace is needed there too.
            namespaces |= {s['namespace'] for s in consumes}
        entry: Dict[str, Any] = {
            'exports': exports,
            'consumes': consumes,
            'consumer_namespaces': consumer_namespaces,
            'namespaces': sorted(namespaces),
            'needs_egress': any(s['mode'] == 'egress_gateway' for s in consumes),
        }
        if multi_network:
            own = settings[cluster]
            entry['istio'] = dict(own)
            primaries = [c for c in cluster_list if settings[c]['role'] == 'primary']
            # Every primary reads every other cluster of the mesh (a remote only through its
            # primary's istiod, but every primary discovers its endpoints).
            entry['reads'] = sorted(c for c in cluster_list if c != cluster) if own['role'] == 'primary' else []
            entry['read_by'] = sorted(p for p in primaries if p != cluster)
        plan_clusters[cluster] = entry
    if multi_network:
        _route_config_to_primaries(plan_clusters, settings)

    plan: Dict[str, Any] = {
        'version': PLAN_VERSION,
        'mesh': mesh,
        'topology': topology,
        'consumer_namespace': consumer_namespace,
        'services': normalised,
        'clusters': plan_clusters,
    }
    if multi_network:
        plan['istio'] = {c: dict(settings[c]) for c in cluster_list}
    plan['fingerprint'] = _fingerprint(plan)
    return plan


def checked_plan(plan: Any, cluster: Optional[str] = None) -> Dict[str, Any]:
    """The plan as passed to a per-cluster module, after checking its fingerprint (no re-validation).

    Raises :class:`InputError` naming the ``plan`` option when it is not a plan of this version,
    was changed after ``mesh_plan`` computed it, or does not know ``cluster``.
    """
    if plan is None:
        raise InputError(['plan: missing - pass the registered result of meshlink.multicluster.mesh_plan, or register '
                          'it as meshlink_plan earlier in the play (the action plugin then passes it)'])
    if not isinstance(plan, dict) or plan.get('version') != PLAN_VERSION or 'fingerprint' not in plan:
        raise InputError(['plan: is not a plan of meshlink.multicluster.mesh_plan (version %d): pass the registered '
                          'result of mesh_plan' % PLAN_VERSION])
    if _fingerprint(plan) != plan.get('fingerprint'):
        raise InputError(['plan: its content does not match its fingerprint - it was changed after mesh_plan '
                          'computed it; compute it again with meshlink.multicluster.mesh_plan instead of editing it'])
    if cluster is not None and cluster not in (plan.get('clusters') or {}):
        raise InputError(["cluster: '%s' is not a cluster of the plan (%s) - add it to meshlink_clusters or fix the "
                          "inventory host name" % (cluster, ', '.join(sorted(plan.get('clusters') or {})))])
    return plan


def check_state(state: Any, plan: Dict[str, Any], name: str) -> Dict[str, Any]:
    """The inspection's state must be of this cluster and mesh (it is the base of every write)."""
    if state is None:
        raise InputError(['inspection: missing - pass RV(state) of meshlink.multicluster.cluster_inspect for %s, or '
                          'register its result as meshlink_inspection earlier in the play' % name])
    if not isinstance(state, dict) or not isinstance(state.get('objects'), list) or 'vip_store' not in state:
        raise InputError(['inspection: is not the state of meshlink.multicluster.cluster_inspect for %s: pass its '
                          'registered result (RV(state))' % name])
    return state


def cluster_part(plan: Dict[str, Any], cluster: str) -> Dict[str, Any]:
    """``plan['clusters'][cluster]`` (a copy, so callers may annotate it)."""
    return copy.deepcopy(plan['clusters'][cluster])


def describe(plan: Dict[str, Any]) -> List[str]:
    """One line per service, for the run's output."""
    lines = []
    for service in plan['services']:
        consumers = ', '.join('%s/%s' % (c['cluster'], c['namespace']) for c in service['consumers']) or 'nobody'
        line = '%s: served by %s, consumed by %s, port(s) %s' % (
            service['host'], service['cluster'], consumers, '/'.join(str(p['number']) for p in service['ports']))
        if plan['topology'] == SEED_TOPOLOGY:
            line += ', %s' % service['mode']
        if service.get('subsets'):
            line += ', subsets %s, route to %s' % ('/'.join(s['name'] for s in service['subsets']),
                                                   service['route_subset'])
        lines.append(line)
    if plan.get('istio'):
        for cluster in sorted(plan['istio']):
            entry = plan['istio'][cluster]
            lines.append('%s: Istio cluster %s, network %s, %s%s' % (
                cluster, entry['cluster_name'], entry['network'], entry['role'],
                '' if entry['role'] == 'primary' else ' of %s' % entry['primary']))
    return lines or ['meshlink_services is empty: nothing to connect']
