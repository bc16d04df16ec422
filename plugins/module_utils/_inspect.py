# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The read-only run of one cluster (``cluster_inspect``): everything setup needs, nothing written.

One pass over the cluster, each collection read once (``_reader``): the preflight checks, the
gateway address (when the cluster exports services), the istiod version, the objects of this
mesh and every object with a name the mesh wants (so a user's object in the way is named now,
before anything is written to any cluster), the VIP store and what it must avoid, and the
namespaces. Its ``state`` is what ``cluster_reconcile`` starts from.

Also every setting of this cluster (gateway, VIP pool, sample apps) is validated here, with its
field path: the inspect play runs on every cluster before the first write of the run.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils import _gateway, _istio, _preflight, _samples, _seed
from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet_flow
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, json_copy
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import ISTIO_NAMESPACE
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Desired,
    Key,
    object_key,
    plan_changes,
    resource_path,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    is_ours,
    mesh_selector,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import SEED_TOPOLOGY, checked_plan, is_multi_network
from ansible_collections.meshlink.multicluster.plugins.module_utils._reader import ClusterReader
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import (
    STORE_SELECTOR,
    parse_exclude,
    parse_pool,
    pool_for,
    reserved_addresses,
    store_name_for,
    store_state,
)

GATEWAY_DEFAULTS = {
    'namespace': ISTIO_NAMESPACE, 'service': None, 'selector': {'app': 'istio-ingressgateway'}, 'port': '15443',
    'address': None, 'address_port': None, 'node_port_fallback': True,
    'node_address_types': list(_gateway.DEFAULT_NODE_ADDRESS_TYPES), 'wait_timeout': 60,
}
VIP_DEFAULTS = {'pool': None, 'exclude': [], 'store_namespace': ISTIO_NAMESPACE, 'store_name': None}
SAMPLE_KINDS_LISTED = ('ServiceAccount', 'Service', 'Deployment')


def light(obj: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """An object as the next step needs it: without managedFields and status (small, no noise),
    with resourceVersion and uid (the preconditions of its deletion)."""
    if obj is None:
        return None
    result = {key: json_copy(value) for key, value in obj.items() if key not in ('status', 'metadata')}
    if 'metadata' in obj:
        result['metadata'] = {key: json_copy(value) for key, value in (obj['metadata'] or {}).items()
                              if key != 'managedFields'}
    return result


def merged(defaults: Dict[str, Any], given: Optional[Dict[str, Any]], option: str) -> Dict[str, Any]:
    values = dict(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            raise InputError(["%s: unknown key '%s' (known: %s)" % (option, key, ', '.join(sorted(defaults)))])
        if value is None or value == '':
            continue
        if key == 'address_port' and value in (0, '0'):
            continue  # the role's "unset"
        values[key] = value
    return values


class _PollingReader:
    """The reader for the gateway lookup: the first read of a collection comes from the cache
    (preflight read it already), every later one is fresh (it polls a pending load balancer)."""

    def __init__(self, reader: ClusterReader) -> None:
        self.reader = reader
        self.seen: set = set()

    def list(self, path: str, what: Any, label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        key = ('list', path, label_selector)
        fresh = key in self.seen
        self.seen.add(key)
        return self.reader.list(path, what, label_selector, fresh=fresh)

    def get(self, path: str, what: Any) -> Optional[Dict[str, Any]]:
        key = ('get', path)
        fresh = key in self.seen
        self.seen.add(key)
        return self.reader.get(path, what, fresh=fresh)


def validate_settings(gateway: Dict[str, Any], vip: Dict[str, Any]) -> None:
    """Every setting of the cluster, before anything is read: errors name the option."""
    errors: List[str] = []
    try:
        _gateway.validate_options(gateway['port'], gateway['address_port'], gateway['node_address_types'],
                                  gateway['wait_timeout'], 2)
    except InputError as error:
        errors.extend('gateway.%s' % e for e in error.errors)
    if vip['pool']:
        try:
            parse_pool(vip['pool'])
        except InputError as error:
            errors.extend('vip.%s' % e for e in error.errors)
    try:
        parse_exclude(vip['exclude'])
    except InputError as error:
        errors.extend('vip.%s' % e for e in error.errors)
    if errors:
        raise InputError(errors)


def resolve_gateway(reader: ClusterReader, settings: Dict[str, Any]) -> Dict[str, Any]:
    return _gateway.resolve_gateway_address(
        _PollingReader(reader), namespace=settings['namespace'], service=settings['service'] or None,
        selector=settings['selector'], port=settings['port'], address=settings['address'] or None,
        address_port=settings['address_port'], node_port_fallback=settings['node_port_fallback'],
        node_address_types=settings['node_address_types'], wait_timeout=settings['wait_timeout'])


def _seed_objects(reader: ClusterReader, part: Dict[str, Any], mesh: str) -> Tuple[Dict[Key, Dict[str, Any]], List[str]]:
    """The Istio objects the seed topology compares against: this mesh's (all namespaces) and any
    object at a name the cluster wants; plus the conflicts those give."""
    wanted = _seed.wanted_keys(part)
    existing: Dict[Key, Dict[str, Any]] = {}
    for kind in _seed.ISTIO_KINDS:
        # One LIST per kind for the whole cluster: the ServiceEntries' addresses are needed for
        # the VIP rule anyway, and a user's object at a wanted name must be found before any write.
        for obj in reader.istio_objects(kind):
            key = object_key(obj)
            if key in wanted or is_ours(obj, mesh):
                existing[key] = light(obj)
    _changes, conflicts = plan_changes(_seed.placeholders(part, mesh), existing, mesh)
    return existing, conflicts


def _sample_state(reader: ClusterReader, part: Dict[str, Any], settings: Dict[str, Any],
                  mesh: str) -> Tuple[Dict[Key, Dict[str, Any]], List[str]]:
    """This mesh's sample objects (by label, all namespaces) and whatever holds a wanted name."""
    wanted = [d.key for d in _samples.sample_objects(part, settings, mesh)]
    existing: Dict[Key, Dict[str, Any]] = {}
    for namespace in part['namespaces']:
        # Per namespace of the plan: the credentials need no cluster-wide read of workloads.
        for kind in SAMPLE_KINDS_LISTED:
            for obj in reader.list(resource_path(kind, namespace), ObjectRef(kind, namespace),
                                   label_selector=mesh_selector(mesh)):
                obj.setdefault('kind', kind)
                existing[object_key(obj)] = light(obj)
    for key in wanted:
        if key not in existing:
            # Read only the names the plan wants: never a list of the user's workloads.
            found = reader.get(resource_path(key[0], key[1] or None, key[2]), ObjectRef(*key))
            if found is not None:
                found.setdefault('kind', key[0])
                existing[key] = {'kind': key[0], 'metadata': {k: v for k, v in (found.get('metadata') or {}).items()
                                                              if k in ('name', 'namespace', 'labels')}}
    desired = [Desired({'kind': k[0], 'metadata': {'namespace': k[1], 'name': k[2]}}) for k in wanted]
    _changes, conflicts = plan_changes(desired, existing, mesh)
    return existing, conflicts


def namespace_state(reader: ClusterReader, names: Sequence[str]) -> Dict[str, Optional[Dict[str, Any]]]:
    """The plan's namespaces as they are (by name; None when absent)."""
    return {name: light(reader.namespace(name)) for name in names}


def inspect_cluster(cluster: Any, plan: Any, name: str, gateway: Optional[Dict[str, Any]] = None,
                    vip: Optional[Dict[str, Any]] = None, sample_apps: Optional[Dict[str, Any]] = None,
                    checks: Optional[Sequence[str]] = None, fail_on: str = 'fail',
                    multinetwork: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``cluster_inspect`` module (module docstring)."""
    plan = checked_plan(plan, name)
    if is_multi_network(plan['topology']):
        if fail_on not in ('fail', 'warn', 'never'):
            raise InputError(['fail_on: %r is not fail, warn or never' % (fail_on,)])
        unknown = [c for c in checks or [] if c not in _multinet_flow.CHECKS]
        if unknown:
            raise InputError(['checks: unknown check(s) %s (known: %s)' % (', '.join(unknown),
                                                                           ', '.join(_multinet_flow.CHECKS))])
        return _multinet_flow.inspect_multinet(cluster, plan, name, multinetwork=multinetwork,
                                               sample_apps=sample_apps, checks=checks, fail_on=fail_on)
    part = plan['clusters'][name]
    mesh = plan['mesh']
    gateway_settings = merged(GATEWAY_DEFAULTS, gateway, 'gateway')
    vip_settings = merged(VIP_DEFAULTS, vip, 'vip')
    samples = _samples.sample_settings(sample_apps) if sample_apps is not None else None
    if fail_on not in ('fail', 'warn', 'never'):
        raise InputError(['fail_on: %r is not fail, warn or never' % (fail_on,)])
    unknown = [c for c in checks or [] if c not in _preflight.CHECKS]
    if unknown:
        raise InputError(['checks: unknown check(s) %s (known: %s)' % (', '.join(unknown), ', '.join(_preflight.CHECKS))])
    if plan['topology'] != SEED_TOPOLOGY:
        raise MeshlinkError('topology %s: not handled by this version of cluster_inspect' % plan['topology'])
    validate_settings(gateway_settings, vip_settings)

    reader = ClusterReader(cluster)
    result: Dict[str, Any] = {'cluster': name, 'mesh': mesh, 'topology': plan['topology'], 'gateway': None,
                              'conflicts': [], 'warnings': []}
    report = _preflight.run_preflight(
        reader, exports=bool(part['exports']), consumes=bool(part['consumes']), needs_egress=part['needs_egress'],
        vip_pool=vip_settings['pool'], selected=list(checks or _preflight.CHECKS))
    result.update(report)
    problems: List[str] = []
    if report['summary']['fail'] and any(c['name'] == 'api' and c['status'] == 'fail' for c in report['checks']):
        # Without the API nothing else can be read; the report says why.
        return _finish(result, name, cluster, fail_on, problems, vip_settings)

    if part['exports']:
        try:
            result['gateway'] = resolve_gateway(reader, gateway_settings)
        except (MeshlinkError, ApiError) as error:
            problems.append('[gateway_address] %s' % error)

    state: Dict[str, Any] = {'networking_version': reader.networking_version_or_none(),
                             'istio_version': report.get('istio_version')}
    objects, conflicts = _seed_objects(reader, part, mesh)
    result['conflicts'].extend(conflicts)

    store_namespace = vip_settings['store_namespace']
    store_name = vip_settings['store_name'] or store_name_for(mesh)
    stores = reader.configmaps(store_namespace, STORE_SELECTOR)
    store_obj = next((s for s in stores if (s.get('metadata') or {}).get('name') == store_name), None)
    if store_obj is None:
        # Not found by our selector: a ConfigMap of that name that is not ours is in the way.
        store_obj = reader.configmap(store_namespace, store_name)
    store = store_state(light(store_obj), mesh)
    if store.exists and not store.managed:
        result['conflicts'].append('ConfigMap %s/%s (the VIP store) exists and %s - delete or rename it, '
                                   'or set meshlink_vip_store_name' % (store_namespace, store_name, store.owner))
    used = reserved_addresses(reader.istio_objects('ServiceEntry'), stores, mesh)
    state['vip_store'] = {'namespace': store_namespace, 'name': store_name, 'data': store.data,
                          'resourceVersion': store.version, 'exists': store.exists, 'managed': store.managed}
    state['reserved'] = [{'address': str(ip), 'hosts': sorted(hosts), 'where': used.where.get(ip, '')}
                         for ip, hosts in used.single.items()]
    state['reserved'] += [{'address': str(network), 'hosts': sorted(hosts), 'where': where}
                          for network, hosts, where in used.networks]
    if part['consumes']:
        try:
            version = report.get('istio_version')
            _network, pool_messages = pool_for(vip_settings['pool'], _istio.parse_version(version) if version else None)
            result['warnings'].extend(pool_messages)
        except InputError as error:
            problems.extend('vip.%s' % e for e in error.errors)

    if samples is not None:
        sample_objects, sample_conflicts = _sample_state(reader, part, samples, mesh)
        objects.update(sample_objects)
        result['conflicts'].extend(sample_conflicts)
    state['namespaces'] = namespace_state(reader, part['namespaces'])
    state['objects'] = [objects[k] for k in sorted(objects)]
    result['state'] = state
    return _finish(result, name, cluster, fail_on, problems, vip_settings)


def _finish(result: Dict[str, Any], name: str, cluster: Any, fail_on: str, problems: List[str],
            vip_settings: Dict[str, Any]) -> Dict[str, Any]:
    bad = _preflight.failing(result.get('checks') or [], fail_on)
    reasons = ['[%s] %s%s' % (c['name'], c['message'], ' - hint: %s' % c['hint'] if c['hint'] else '') for c in bad]
    reasons += problems
    reasons += ['[ownership] %s' % c for c in result['conflicts']]
    result['lines'] = _preflight.report_lines(name, result, vip_settings['pool'])
    if result.get('gateway'):
        gw = result['gateway']
        result['lines'].append('gateway %s:%s (%s, %s)' % (gw['address'], gw['port'], gw['kind'], gw['source']))
    if reasons:
        result['failed'] = True
        result['msg'] = 'Inspection of %s (context %s): %d problem(s), nothing was written: %s' % (
            name, cluster.context, len(reasons), '; '.join(reasons))
    return result
