# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The runs of the multi-network topologies, per cluster (objects and rules: ``_multinet``).

  inspect    read-only: the preflight rules, the east-west gateway's address, what peers need
             to read this cluster (its API server for peers, its CA), the ports of the services
             it exports, the state of the remote secrets it holds, this mesh's objects and any
             object in the way
  reconcile  the network label, the east-west Gateway (and istiod's exposure), the reader
             ServiceAccounts of the primaries that read this cluster and - when their remote
             secret needs one - a token of bounded lifetime for each, the stub Services, the
             subset rules, the namespaces and sample apps; prunes what left the inventory
  secrets    a primary's remote secrets, with the tokens its peers minted in this run
  teardown   all of it, and only it; the network label only where this mesh added it

Tokens cross from the read cluster's run to the reader's through the controller, in results
the role keeps out of every log (``no_log``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet as mn
from ansible_collections.meshlink.multicluster.plugins.module_utils import _preflight, _samples
from ansible_collections.meshlink.multicluster.plugins.module_utils._access import ca_data, render_kubeconfig, request_token
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Change,
    Desired,
    Key,
    Outcome,
    Writer,
    describe_key,
    object_key,
    plan_changes,
    resource_path,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    COMPONENT_LABEL,
    is_access_object,
    is_ours,
    mesh_selector,
    part_of,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import check_state, checked_plan, remote_rule_services
from ansible_collections.meshlink.multicluster.plugins.module_utils._reader import ClusterReader

METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json'
METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json'
WAIT_INTERVAL = 2  # seconds between two reads of a pending east-west load balancer

CHECKS = ('api', 'networking_api', 'istio_namespace', 'istio_version', 'istiod', 'network', 'eastwest_gateway',
          'exported_services', 'dns', 'peer_api_server', 'remote_secrets')
# Kinds this topology writes, listed by the mesh's labels for pruning.
ISTIO_KINDS = ('Gateway', 'VirtualService', 'DestinationRule')
PARTS = (mn.EASTWEST_PART, mn.READER_PART, mn.SECRET_PART)


_TRUE = ('true', 'yes', 'on', '1', 'y', 't')
_FALSE = ('false', 'no', 'off', '0', 'n', 'f')


def _switch(value: Any, path: str, errors: List[str]) -> bool:
    """A boolean option as Ansible reads one: a templated or ``-e`` value arrives as text, and
    ``"false"`` must not turn a switch on."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    errors.append('%s: %r is not true or false' % (path, value))
    return False


def settings_of(raw: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The ``multinetwork`` option, validated: ``eastwest``, ``reader``, ``dns``,
    ``allow_loopback_api_server``, ``istio_namespace``."""
    raw = dict(raw or {})
    errors: List[str] = []
    known = ('eastwest', 'reader', 'dns', 'allow_loopback_api_server', 'istio_namespace')
    for key in raw:
        if key not in known:
            errors.append("multinetwork: unknown key '%s' (known: %s)" % (key, ', '.join(known)))
    eastwest = _section('eastwest', mn.EASTWEST_DEFAULTS, raw.get('eastwest'), errors)
    reader = _section('reader', mn.READER_DEFAULTS, raw.get('reader'), errors)
    for section, values, key in (('reader', reader, 'token_lifetime'), ('reader', reader, 'renew_before'),
                                 ('eastwest', eastwest, 'wait_timeout')):
        value = values[key]
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isascii()
                                                                      and value.isdigit())):
            errors.append('multinetwork.%s.%s: %r is not a number of seconds' % (section, key, value))
        else:
            values[key] = int(value)
    if not errors and not 600 <= reader['token_lifetime'] <= 7 * 86400:
        errors.append('multinetwork.reader.token_lifetime: %d is not between 600 and 604800 seconds'
                      % reader['token_lifetime'])
    if not errors and not 0 <= reader['renew_before'] < reader['token_lifetime']:
        errors.append('multinetwork.reader.renew_before: %d must be less than token_lifetime (%d)'
                      % (reader['renew_before'], reader['token_lifetime']))
    eastwest['expose_all'] = _switch(eastwest['expose_all'], 'multinetwork.eastwest.expose_all', errors)
    for key in ('rotate', 'secrets'):
        reader[key] = _switch(reader[key], 'multinetwork.reader.%s' % key, errors)
    loopback = raw.get('allow_loopback_api_server')
    loopback = _switch(loopback, 'multinetwork.allow_loopback_api_server', errors) if loopback not in (None, '') \
        else False
    dns = raw.get('dns') or 'auto'
    if dns not in mn.DNS_MODES:
        errors.append('multinetwork.dns: %r is not one of %s' % (dns, ', '.join(mn.DNS_MODES)))
    if not isinstance(eastwest['selector'], dict) or not eastwest['selector']:
        errors.append('multinetwork.eastwest.selector: must be a mapping of labels')
    if errors:
        raise InputError(errors)
    return {'eastwest': eastwest, 'reader': reader, 'dns': dns,
            'allow_loopback_api_server': loopback,
            'istio_namespace': raw.get('istio_namespace') or 'istio-system'}


def _section(name: str, defaults: Dict[str, Any], given: Any, errors: List[str]) -> Dict[str, Any]:
    """One section of ``multinetwork`` over its defaults; unknown keys are errors, empty values keep the default."""
    values = dict(defaults)
    for key, value in (given or {}).items():
        if key not in values:
            errors.append("multinetwork.%s: unknown key '%s' (known: %s)" % (name, key, ', '.join(sorted(values))))
        elif value not in (None, ''):
            values[key] = value
    return values


def _selector(labels: Dict[str, str]) -> str:
    return ','.join('%s=%s' % (k, labels[k]) for k in sorted(labels))


def _light(obj: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if obj is None:
        return None
    out = dict(obj)
    metadata = dict(out.get('metadata') or {})
    metadata.pop('managedFields', None)
    out['metadata'] = metadata
    out.pop('status', None)
    return out


def _metadata_get(cluster: Any, kind: str, namespace: str, name: str) -> Optional[Dict[str, Any]]:
    """An object's metadata only (a Secret's data never reaches this run)."""
    try:
        answer = cluster.request('GET', resource_path(kind, namespace, name), ObjectRef(kind, namespace, name), 'read',
                                 accept=METADATA)
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    if answer is not None:
        answer['kind'] = kind
        answer.pop('apiVersion', None)
    return answer


def wanted(plan: Dict[str, Any], name: str, settings: Dict[str, Any], needs_stubs: bool,
           samples: bool) -> Dict[Key, str]:
    """Every object this cluster should hold, with the part it plays (a service key or a
    component): known before any token or address, so what is in the way is found first."""
    part = plan['clusters'][name]
    istio = plan['istio'][name]
    mesh_ns = settings['istio_namespace']
    keys: Dict[Key, str] = {}
    if istio['role'] == 'primary':
        if settings['eastwest']['expose_all'] or mn.exposed_hosts(plan, name):
            keys[('Gateway', settings['eastwest']['namespace'], settings['eastwest']['gateway_name'])] = \
                mn.EASTWEST_PART
        if any(s['primary'] == name and c != name for c, s in plan['istio'].items()):
            keys[('Gateway', mesh_ns, 'istiod-gateway')] = mn.EASTWEST_PART
            keys[('VirtualService', mesh_ns, 'istiod-vs')] = mn.EASTWEST_PART
        for peer in part['reads']:
            keys[('Secret', mesh_ns, mn.secret_name(plan['istio'][peer]['cluster_name']))] = mn.SECRET_PART
    if part['read_by']:
        keys[('ClusterRole', '', mn.reader_role(plan['mesh']))] = mn.READER_PART
        for reader in part['read_by']:
            reader_name = plan['istio'][reader]['cluster_name']
            keys[('ServiceAccount', mesh_ns, mn.reader_account(reader_name))] = mn.READER_PART
            keys[('ClusterRoleBinding', '', mn.reader_binding(plan['mesh'], reader_name))] = mn.READER_PART
    for service in part['consumes']:
        if needs_stubs:
            keys[('Service', service['namespace'], service['name'])] = '%s.%s' % (service['name'], service['namespace'])
    for rule in subset_rules(plan, name):
        keys[object_key(rule)] = part_of(rule)
    del samples
    return keys


def _placeholders(keys: Dict[Key, str], mesh: str) -> List[Desired]:
    from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import ownership_labels  # noqa: E501 pylint: disable=import-outside-toplevel
    return [Desired({'kind': k[0], 'metadata': {'namespace': k[1], 'name': k[2], 'labels': ownership_labels(mesh, p)}})
            for k, p in sorted(keys.items())]


def _ours_listed(reader: ClusterReader, cluster: Any, mesh: str, namespaces: Sequence[str],
                 istio_namespace: str) -> Dict[Key, Dict[str, Any]]:
    """This mesh's objects of the kinds this topology writes (for pruning)."""
    found: Dict[Key, Dict[str, Any]] = {}
    selector = mesh_selector(mesh)
    for kind in ISTIO_KINDS:
        for obj in reader.istio_objects(kind, label_selector=selector):
            found[object_key(obj)] = _light(obj)
    for kind, namespace in (('ServiceAccount', istio_namespace), ('ClusterRole', None), ('ClusterRoleBinding', None)):
        for obj in reader.list(resource_path(kind, namespace), ObjectRef(kind, namespace), label_selector=selector):
            obj['kind'] = kind
            if part_of(obj) in PARTS:
                found[object_key(obj)] = _light(obj)
    answer = cluster.request('GET', resource_path('Secret', istio_namespace), ObjectRef('Secret', istio_namespace),
                             'list', query={'labelSelector': selector}, accept=METADATA_LIST) or {}
    for obj in answer.get('items') or []:
        obj['kind'] = 'Secret'
        if part_of(obj) == mn.SECRET_PART:
            found[object_key(obj)] = obj
    # Stub Services anywhere (metadata only): the stub of a service no longer consumed here sits
    # in a namespace that left this cluster's part of the plan with its consumer.
    answer = cluster.request('GET', resource_path('Service', None), ObjectRef('Service'), 'list',
                             query={'labelSelector': '%s,%s=%s' % (selector, COMPONENT_LABEL, mn.STUB_PART)},
                             accept=METADATA_LIST) or {}
    for obj in answer.get('items') or []:
        obj['kind'] = 'Service'
        found[object_key(obj)] = obj
    # In the plan's namespaces, whole objects: what setup compares its stubs and samples with.
    for namespace in namespaces:
        for obj in reader.list(resource_path('Service', namespace), ObjectRef('Service', namespace),
                               label_selector=selector):
            obj['kind'] = 'Service'
            found[object_key(obj)] = _light(obj)
    return found


def inspect_multinet(cluster: Any, plan: Dict[str, Any], name: str, multinetwork: Optional[Dict[str, Any]] = None,
                     sample_apps: Optional[Dict[str, Any]] = None, checks: Optional[Sequence[str]] = None,
                     fail_on: str = 'fail', sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> Dict[str, Any]:
    """``cluster_inspect`` for the multi-network topologies (module docstring)."""
    settings = settings_of(multinetwork)
    samples = _samples.sample_settings(sample_apps) if sample_apps is not None else None
    part = plan['clusters'][name]
    istio = plan['istio'][name]
    mesh = plan['mesh']
    mesh_ns = settings['istio_namespace']
    selected = set(checks or CHECKS)
    reader = ClusterReader(cluster)
    out: Dict[str, Any] = {'cluster': name, 'mesh': mesh, 'topology': plan['topology'], 'checks': [], 'conflicts': [],
                           'warnings': [], 'gateway': None, 'eastwest': None}

    def add(check: Dict[str, str]) -> None:
        if check['name'] in selected:
            out['checks'].append(check)

    try:
        version = reader.server_version()
    except ApiError as error:
        add(mn.result('api', 'fail', str(error), 'Check the connection of this host'))
        return _finish(out, name, cluster, fail_on, [], istio['role'])
    add(mn.result('api', 'pass', 'Context %s answers (Kubernetes %s)' % (cluster.context, version.get('gitVersion', '?'))))
    networking = reader.networking_version_or_none()
    add(mn.result('networking_api', 'pass' if networking else 'fail',
                  'networking.istio.io %s' % ('served (using %s)' % networking if networking else 'is not served'),
                  '' if networking else 'Install Istio (its CRDs)'))
    namespace = reader.namespace(mesh_ns)
    add(mn.result('istio_namespace', 'pass' if namespace else 'fail', 'Namespace %s %s' % (
        mesh_ns, 'exists' if namespace else 'does not exist'), '' if namespace else 'Install Istio in this cluster'))
    identity = cluster.identity()
    deployments = reader.deployments(mesh_ns) if namespace else []
    # The annotation of a remote lists cluster names (CLUSTER_IDs), not inventory hosts.
    primary_name = plan['istio'][istio['primary']]['cluster_name']
    istiod_checks, facts = mn.evaluate_istiod(deployments, namespace, istio, primary_name)
    for check in istiod_checks:
        add(check)
    out.update(facts)
    mesh_config = reader.configmap(mesh_ns, 'istio') if namespace else None
    out['mesh_id'] = mn.mesh_id_of(mesh_config)
    out['root_digest'] = mn.root_digest(reader.configmap(mesh_ns, 'istio-ca-root-cert') if namespace else None)

    eastwest = settings['eastwest']

    def eastwest_services(fresh: bool = False) -> List[Dict[str, Any]]:
        if eastwest['service']:
            found = reader.get(core_path('services', eastwest['namespace'], eastwest['service']),
                               ObjectRef('Service', eastwest['namespace'], eastwest['service']), fresh=fresh)
            return [found] if found else []
        return reader.services(eastwest['namespace'], _selector(eastwest['selector']), fresh=fresh) if namespace else []
    services = eastwest_services()
    serves_remotes = any(s['primary'] == name and c != name for c, s in plan['istio'].items())

    def evaluate() -> Tuple[Dict[str, str], Optional[Dict[str, Any]]]:
        return mn.evaluate_eastwest(services, reader.nodes() if services else [],
                                    istio['role'] == 'primary' and serves_remotes,
                                    _selector(eastwest['selector']), eastwest['namespace'])
    check, address = evaluate()
    # A load balancer still being provisioned: wait for its address up to wait_timeout, as the
    # seed topology waits for the ingress gateway's (a fresh install is the common case).
    started = clock()
    while address is None and len(services) == 1 and mn.load_balancer_pending(services[0]) \
            and clock() - started < eastwest['wait_timeout']:
        sleep(min(WAIT_INTERVAL, max(0.0, eastwest['wait_timeout'] - (clock() - started))))
        services = eastwest_services(fresh=True)
        check, address = evaluate()
    if clock() - started >= 1:
        check = dict(check, message='%s (waited %ds for the load balancer)' % (check['message'], clock() - started))
    add(check)
    out['eastwest'] = address
    istiod_deployment = next((d for d in deployments if (d.get('metadata') or {}).get('name') == 'istiod'), None)
    for check in mn.evaluate_network(namespace, services[0] if len(services) == 1 else None, istiod_deployment,
                                     istio['network']):
        add(check)

    exported = {}
    for service in part['exports']:
        exported['%s.%s' % (service['name'], service['namespace'])] = reader.get(
            core_path('services', service['namespace'], service['name']),
            ObjectRef('Service', service['namespace'], service['name']))
    check, ports = mn.evaluate_exported(part, exported, samples is not None)
    add(check)
    out['exported_ports'] = ports
    check, needs_stubs = mn.evaluate_dns(mesh_config, settings['dns'], bool(part['consumes']))
    add(check)
    server = istio['api_server'] or identity['server']
    add(mn.evaluate_peer_api_server(server, bool(istio['api_server']), settings['allow_loopback_api_server']))
    out['peer_connection'] = {'cluster_name': istio['cluster_name'], 'server': server, 'ca': ca_data(cluster)}

    # Objects: this mesh's, and whatever holds a wanted name (Secrets by metadata only).
    keys = wanted(plan, name, settings, needs_stubs, samples is not None)
    existing = _ours_listed(reader, cluster, mesh, sorted(set(part['namespaces'])), mesh_ns)
    for key in keys:
        if key in existing:
            continue
        if key[0] == 'Secret':
            current = _metadata_get(cluster, 'Secret', key[1], key[2])
        elif key[0] in ISTIO_KINDS:
            current = reader.get(resource_path(key[0], key[1], key[2], networking), ObjectRef(*key))
        else:
            current = reader.get(resource_path(key[0], key[1] or None, key[2]), ObjectRef(*key))
        if current is not None:
            current['kind'] = key[0]
            existing[key] = _light(current)
    for key in [k for k in keys if k[0] == 'ClusterRole' and is_access_object(existing.get(k))
                and is_ours(existing.get(k), mesh)]:
        del keys[key]  # the reader role the access playbook granted: bound as it is
    _changes, conflicts = plan_changes(_placeholders(keys, mesh), existing, mesh)
    out['conflicts'].extend(conflicts)

    # Remote secrets this primary holds (for the peers' decision to mint a token), and
    # duplicates: another secret for the same peer would make istiod ignore one of them.
    secrets: Dict[str, Dict[str, Any]] = {}
    duplicates: List[str] = []
    if istio['role'] == 'primary':
        answer = cluster.request('GET', resource_path('Secret', mesh_ns), ObjectRef('Secret', mesh_ns), 'list',
                                 query={'labelSelector': '%s=true' % mn.MULTICLUSTER_LABEL}, accept=METADATA_LIST) or {}
        multicluster = answer.get('items') or []
        for peer in part['reads']:
            peer_name = plan['istio'][peer]['cluster_name']
            obj = existing.get(('Secret', mesh_ns, mn.secret_name(peer_name)))
            notes = mn.annotations_of(obj)
            secrets[peer] = {'exists': obj is not None, 'ours': bool(obj) and is_ours(obj, mesh),
                             'expires': notes.get(mn.TOKEN_EXPIRES_ANNOTATION),
                             'digest': notes.get(mn.KUBECONFIG_DIGEST_ANNOTATION)}
            for other in multicluster:
                meta = other.get('metadata') or {}
                if meta.get('name') != mn.secret_name(peer_name) and \
                        mn.annotations_of(other).get(mn.CLUSTER_ANNOTATION) == peer_name:
                    duplicates.append('Secret %s/%s is also a remote secret for cluster %s' % (
                        mesh_ns, meta.get('name'), peer_name))
    add(mn.result('remote_secrets', 'fail' if duplicates else 'pass',
                  '; '.join(duplicates) if duplicates else '%d remote secret(s) to hold' % len(part['reads']),
                  'istiod registers a cluster ID once ("cluster has already been registered"): delete the other '
                  'secret (istioctl create-remote-secret made it?)' if duplicates else ''))

    samples_state: Dict[Key, Dict[str, Any]] = {}
    if samples is not None:
        from ansible_collections.meshlink.multicluster.plugins.module_utils._inspect import _sample_state  # noqa: E501 pylint: disable=import-outside-toplevel
        samples_state, sample_conflicts = _sample_state(reader, part, samples, mesh)
        out['conflicts'].extend(sample_conflicts)
    existing.update(samples_state)
    namespaces = {n: _light(reader.namespace(n)) for n in part['namespaces']}
    out['state'] = {'networking_version': networking, 'objects': [existing[k] for k in sorted(existing)],
                    'namespaces': namespaces, 'istio_namespace': _light(namespace), 'needs_stubs': needs_stubs,
                    'remote_secrets': secrets, 'vip_store': {}, 'istio_version': out.get('istio_version')}
    return _finish(out, name, cluster, fail_on, [], istio['role'])


def _finish(out: Dict[str, Any], name: str, cluster: Any, fail_on: str, problems: List[str],
            role: str) -> Dict[str, Any]:
    out['summary'] = _preflight.summarize(out['checks'])
    bad = _preflight.failing(out['checks'], fail_on)
    reasons = ['[%s] %s%s' % (c['name'], c['message'], ' - hint: %s' % c['hint'] if c['hint'] else '') for c in bad]
    reasons += problems + ['[ownership] %s' % c for c in out['conflicts']]
    summary = out['summary']
    out['lines'] = ['%s: Istio %s, %s %s, network %s | %d pass, %d warn, %d fail' % (
        name, out.get('istio_version') or 'unknown', out.get('topology'), role,
        (out.get('state') or {}).get('istio_namespace') and
        mn.labels_of(out['state']['istio_namespace']).get(mn.NETWORK_LABEL) or '(unlabelled)',
        summary.get('pass', 0), summary.get('warn', 0), summary.get('fail', 0))]
    for check in out['checks']:
        out['lines'].append('%-4s  %-26s %s' % (check['status'].upper(), check['name'], check['message']))
        if check['status'] != 'pass' and check['hint']:
            out['lines'].append('      %-26s hint: %s' % ('', check['hint']))
    if reasons:
        out['failed'] = True
        out['msg'] = 'Inspection of %s (context %s): %d problem(s), nothing was written: %s' % (
            name, cluster.context, len(reasons), '; '.join(reasons))
    return out


# ---------------------------------------------------------------- reconcile

def _network_label(namespace: Optional[Dict[str, Any]], network: str, mesh: str) -> List[Desired]:
    """The label, only where absent (preflight refused a different one)."""
    if namespace is None or mn.labels_of(namespace).get(mn.NETWORK_LABEL):
        return []
    name = (namespace.get('metadata') or {}).get('name')
    return [Desired(mn.render_network_label(name, network, mesh), compare='labels', owned=False)]


def subset_rules(plan: Dict[str, Any], name: str) -> List[Dict[str, Any]]:
    """The versioned-routing rules this cluster holds: a primary's own and those of the remotes
    it serves (istiod reads Istio configuration from its own cluster only; a remote holds none).
    A rule two of them need (one service consumed into one namespace) is written once."""
    if plan['istio'][name]['role'] != 'primary':
        return []
    rules: Dict[Key, Dict[str, Any]] = {}
    for cluster in [name] + list(plan['clusters'][name].get('config_for') or []):
        consumes, exports = remote_rule_services(plan['clusters'][cluster])
        for service in consumes:
            for obj in mn.render_subset_rules(service, service['consumer_namespace'], plan['mesh'], consumer=True):
                rules.setdefault(object_key(obj), obj)
        for service in exports:
            for obj in mn.render_subset_rules(service, service['namespace'], plan['mesh'], consumer=False):
                rules.setdefault(object_key(obj), obj)
    return list(rules.values())


def reconcile_multinet(cluster: Any, plan: Dict[str, Any], name: str, state: Dict[str, Any],
                       peers: Optional[Dict[str, Any]] = None, peer_services: Optional[Dict[str, Any]] = None,
                       multinetwork: Optional[Dict[str, Any]] = None, sample_apps: Optional[Dict[str, Any]] = None,
                       prune: bool = True, force_conflicts: bool = False, workers: int = 4,
                       clock=time.time) -> Dict[str, Any]:
    """``cluster_reconcile`` for the multi-network topologies (module docstring). Returns
    ``peer_tokens`` (reader host -> {token, expires}): the role keeps the result out of logs."""
    settings = settings_of(multinetwork)
    samples = _samples.sample_settings(sample_apps) if sample_apps is not None else None
    part = plan['clusters'][name]
    istio = plan['istio'][name]
    mesh = plan['mesh']
    mesh_ns = settings['istio_namespace']
    peers = peers or {}
    check_mode = bool(getattr(cluster, 'dry_run', False))
    lines: List[str] = []
    warnings: List[str] = []

    objects: List[Dict[str, Any]] = []
    if istio['role'] == 'primary':
        if settings['eastwest']['expose_all'] or mn.exposed_hosts(plan, name):
            # Nothing exported through this istiod: no Gateway (Istio refuses one without hosts).
            objects.append(mn.render_eastwest_gateway(plan, name, settings['eastwest'], mesh))
        if any(s['primary'] == name and c != name for c, s in plan['istio'].items()):
            objects.extend(mn.render_istiod_exposure(settings['eastwest'], mesh_ns, mesh))
    if part['read_by']:
        provisioned = next((o for o in state['objects'] if o.get('kind') == 'ClusterRole'
                            and (o.get('metadata') or {}).get('name') == mn.reader_role(mesh)
                            and is_access_object(o)), None)
        if provisioned is None:
            objects.append(mn.render_reader_role(mesh, settings['reader']['secrets']))
        for reader in part['read_by']:
            objects.extend(mn.render_reader(mesh, plan['istio'][reader]['cluster_name'], mesh_ns))
        if settings['reader']['secrets']:
            warnings.append('%s: the reader role %s lets the istiods of %s read every Secret of this cluster (Istio\'s '
                            'reader rules; meshlink_istio_reader_secrets: false leaves Secrets out)'
                            % (name, mn.reader_role(mesh), ', '.join(part['read_by'])))
    errors = []
    for service in part['consumes']:
        key = '%s.%s' % (service['name'], service['namespace'])
        if state.get('needs_stubs'):
            ports = (peer_services or {}).get(key)
            if not ports:
                errors.append('peer_services.%s: the ports of %s are unknown - %s (its source) was not inspected in '
                              'this run; include it' % (key, key, service['cluster']))
            else:
                objects.append(mn.render_stub_service(service, ports, mesh))
    rules = subset_rules(plan, name)
    objects.extend(rules)
    if errors:
        raise InputError(errors)

    existing = {object_key(o): o for o in state['objects']}
    namespaces = state.get('namespaces') or {}
    for namespace, obj in namespaces.items():
        if obj is not None:
            existing[('Namespace', '', namespace)] = obj
    desired: List[Desired] = mn.desired(objects)
    desired.extend(_network_label(state.get('istio_namespace'), istio['network'], mesh))
    inject: List[str] = []
    if samples is not None:
        sleep_ns, export_ns, _skipped = _samples.sample_namespaces(part, samples)
        inject = sorted(set(sleep_ns) | set(export_ns))
    # The services' own namespaces are needed in a consumer cluster only for stub Services.
    needed = set(part['consumer_namespaces']) | {s['namespace'] for s in part['exports']}
    needed |= {o['metadata']['namespace'] for o in rules}
    if state.get('needs_stubs'):
        needed |= {s['namespace'] for s in part['consumes']}
    namespace_desired, messages = _samples.namespace_objects(sorted(needed), namespaces, mesh, inject)
    desired = namespace_desired + desired
    warnings.extend('%s: %s' % (name, m) for m in messages)
    if samples is not None:
        desired.extend(_samples.sample_objects(part, samples, mesh))
    if state.get('istio_namespace') is not None:
        existing[('Namespace', '', mesh_ns)] = state['istio_namespace']

    wanted_keys = {d.key for d in desired}

    def prunable(key: Key, obj: Dict[str, Any]) -> bool:
        # Remote secrets go in the secrets step (after their replacement is known); sample
        # objects only while sample apps are on (as in the seed topology). A reader's
        # ServiceAccount and a stub Service are this topology's, whatever the sample apps.
        if key[0] == 'Secret':
            return False
        if key[0] in _samples.SAMPLE_KINDS and part_of(obj) not in PARTS \
                and mn.labels_of(obj).get(COMPONENT_LABEL) != mn.STUB_PART:
            return samples is not None and key not in wanted_keys
        return key not in wanted_keys

    changes, conflicts = plan_changes(desired, existing, mesh, prunable if prune else None)
    if conflicts:
        raise MeshlinkError('Nothing was changed in %s: %s' % (cluster.context, '; '.join(conflicts)))
    outcome = Writer(cluster, mesh, state.get('networking_version'), force_conflicts=force_conflicts,
                     workers=workers).execute(changes)

    # Tokens for the primaries that read this cluster and whose remote secret needs one.
    tokens: Dict[str, Dict[str, str]] = {}
    connection = {'cluster_name': istio['cluster_name'], 'server': istio['api_server'] or cluster.identity()['server'],
                  'ca': ca_data(cluster)}
    expected = mn.kubeconfig_digest(connection['cluster_name'], connection['server'], connection['ca'])
    for reader in part['read_by']:
        reader_name = plan['istio'][reader]['cluster_name']
        why = mn.token_needs_renewal((peers.get(reader) or {}).get('remote_secret'), expected,
                                     settings['reader']['renew_before'], bool(settings['reader']['rotate']), clock())
        if why is None:
            continue
        if check_mode:
            lines.append('%s: would mint a token for the istiod of %s (%s)' % (name, reader, why))
            tokens[reader] = {'token': '', 'expires': '', 'why': why}
            outcome.changed = True  # as the real run reports it
            continue
        token = request_token(cluster, mesh_ns, mn.reader_account(reader_name), settings['reader']['token_lifetime'])
        tokens[reader] = {'token': token['token'], 'expires': token['expires'], 'why': why,
                          'digest': expected, 'connection': connection}
        outcome.changed = True
        lines.append('%s: token for the istiod of %s, valid until %s (%s)' % (name, reader, token['expires'], why))

    for obj in outcome.objects:
        if obj['action'] != 'unchanged':
            lines.append('  %s: %s' % (describe_key((obj['kind'], obj['namespace'], obj['name'])), obj['action']))
    return {'changed': outcome.changed, 'objects': outcome.objects, 'lines': lines or ['%s: nothing to do' % name],
            'diff': outcome.diff, 'warnings': warnings + outcome.warnings, 'peer_tokens': tokens,
            'peer_connection': connection}


# ---------------------------------------------------------------- remote secrets

def write_remote_secrets(cluster: Any, plan: Any, name: str, state: Any, peers: Optional[Dict[str, Any]] = None,
                         multinetwork: Optional[Dict[str, Any]] = None, prune: bool = True,
                         workers: int = 4) -> Dict[str, Any]:
    """The ``cluster_remote_secrets`` module: the remote secrets of a primary.

    ``peers``: read host -> ``{token: {token, expires, digest, connection} | None}`` from the
    peers' reconcile of this run. A peer without a new token keeps its secret, which the
    peer's run judged current.
    """
    plan = checked_plan(plan, name)
    state = check_state(state, plan, name)
    settings = settings_of(multinetwork)
    part = plan['clusters'][name]
    mesh = plan['mesh']
    mesh_ns = settings['istio_namespace']
    peers = peers or {}
    existing = {object_key(o): o for o in state['objects'] if o.get('kind') == 'Secret'}
    desired: List[Desired] = []
    lines: List[str] = []
    missing = []
    keep = set()
    would_change = False
    for peer in part['reads']:
        peer_name = plan['istio'][peer]['cluster_name']
        key = ('Secret', mesh_ns, mn.secret_name(peer_name))
        keep.add(key)
        token = (peers.get(peer) or {}).get('token')
        if not token:
            if key not in existing:
                missing.append('%s (%s was not set up in this run: include it)' % (describe_key(key), peer))
            continue
        if not token.get('token'):  # check mode: the peer would mint one
            lines.append('%s: %s would get a new token (%s)' % (name, describe_key(key), token.get('why')))
            would_change = True
            continue
        connection = token['connection']
        config = render_kubeconfig(peer_name, connection['server'], token['token'], ca=connection.get('ca'))
        desired.append(Desired(mn.render_remote_secret(mesh, peer_name, mesh_ns, config, token['expires'],
                                                       token['digest'])))
        lines.append('%s: %s for cluster %s (token until %s: %s)' % (name, describe_key(key), peer_name,
                                                                     token['expires'], token.get('why')))
    if missing:
        raise MeshlinkError('Remote secrets cannot be written in %s: %s' % (cluster.context, '; '.join(missing)))
    # A Secret of ours is compared by its annotations (its data holds a token that is new every time).
    for item in desired:
        item.compare = 'contains'
    changes, conflicts = plan_changes(desired, existing, mesh,
                                      (lambda key, obj: key not in keep and part_of(obj) == mn.SECRET_PART)
                                      if prune else None)
    if conflicts:
        raise MeshlinkError('Nothing was changed in %s: %s' % (cluster.context, '; '.join(conflicts)))
    outcome = Writer(cluster, mesh, workers=workers).execute(changes)
    for obj in outcome.objects:
        if obj['action'].endswith('delete') or obj['action'] == 'deleted':
            lines.append('%s: %s: %s (its cluster left the mesh)' % (name, describe_key(
                (obj['kind'], obj['namespace'], obj['name'])), obj['action']))
    # Secret data never goes into a diff.
    diff = [{'before_header': d['before_header'], 'after_header': d['after_header'],
             'before': _redacted(d['before']), 'after': _redacted(d['after'])} for d in outcome.diff]
    return {'changed': outcome.changed or would_change, 'objects': outcome.objects,
            'lines': lines or ['%s: remote secrets current' % name],
            'diff': diff, 'warnings': outcome.warnings}


def _redacted(obj: Dict[str, Any]) -> Dict[str, Any]:
    if obj and obj.get('data'):
        obj = dict(obj)
        obj['data'] = {k: '(redacted)' for k in obj['data']}
    return obj


# ---------------------------------------------------------------- teardown

def teardown_multinet(cluster: Any, plan: Dict[str, Any], name: str, multinetwork: Optional[Dict[str, Any]] = None,
                      sample_apps: bool = True, everything: bool = False, workers: int = 4) -> Tuple[Outcome, List[str]]:
    """Everything of this mesh the multi-network topology wrote in this cluster, and only it."""
    settings = settings_of(multinetwork)
    mesh = plan['mesh']
    mesh_ns = settings['istio_namespace']
    part = plan['clusters'][name]
    reader = ClusterReader(cluster)
    found = _ours_listed(reader, cluster, mesh, sorted(set(part['namespaces'])), mesh_ns)
    services = {'%s.%s' % (s['name'], s['namespace']) for s in plan['services']}
    lines: List[str] = []

    def in_scope(obj: Dict[str, Any]) -> bool:
        what = part_of(obj)
        return everything or what in PARTS or what in services

    changes = [Change('delete', key, existing=obj) for key, obj in sorted(found.items()) if in_scope(obj)]
    networking = reader.networking_version_or_none()
    writer = Writer(cluster, mesh, networking, workers=workers)
    outcome = writer.execute(changes)
    namespace = reader.namespace(mesh_ns)
    if namespace is not None and mn.annotations_of(namespace).get(mn.NETWORK_ADDED_ANNOTATION) == mesh:
        # The label was written by this mesh (it was absent): it goes, with its note.
        body = {'metadata': {'labels': {mn.NETWORK_LABEL: None}, 'annotations': {mn.NETWORK_ADDED_ANNOTATION: None}}}
        cluster.request('PATCH', resource_path('Namespace', None, mesh_ns), ObjectRef('Namespace', None, mesh_ns),
                        'patch', body=body, content_type='application/merge-patch+json',
                        query={'fieldManager': 'meshlink', 'dryRun': 'All' if writer.check_mode else None})
        outcome.changed = True
        outcome.objects.append({'kind': 'Namespace', 'namespace': '', 'name': mesh_ns,
                                'action': 'would_update' if writer.check_mode else 'updated'})
        lines.append('%s: label %s removed from namespace %s (this mesh had added it)' % (name, mn.NETWORK_LABEL,
                                                                                          mesh_ns))
    del sample_apps
    return outcome, lines
