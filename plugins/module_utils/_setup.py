# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The writing run of one cluster (``cluster_reconcile``): everything setup writes there.

It starts from what ``cluster_inspect`` read (``state``) and the data other clusters reported
(their gateway addresses), so it reads nothing the inspection already read:

  1. every check that needs no VIP, before anything is written: the gateways other clusters
     reported, and that nothing that is not this mesh's holds a name it wants;
  2. the VIPs of the hosts this cluster consumes (the store is written once, guarded by the
     resourceVersion the inspection saw; a concurrent writer makes it re-read and retry);
  3. the desired objects (the namespaces the plan needs, the sample apps when asked, the
     ServiceEntries/VirtualServices/DestinationRules of the topology) against the inspected
     ones (``_objects.plan_changes``): creates, updates, and (with ``prune``) deletes of this
     mesh's objects that are no longer wanted, which converges the cluster when a consumer or
     a service left the inventory;
  4. the writes, in rank order from a small thread pool (``_objects.Writer``);
  5. the sample Deployments are waited for.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet_flow, _samples, _seed
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._istio import parse_version
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Desired,
    Key,
    Outcome,
    Writer,
    describe_key,
    object_key,
    plan_changes,
    resource_path,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import SEED_TOPOLOGY, check_state, checked_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import (
    ConfigMapStore,
    StoreState,
    UsedAddresses,
    parse_exclude,
    pool_for,
    reconcile_vips,
)

SAMPLE_KINDS = set(_samples.SAMPLE_KINDS)


def used_from_state(reserved: Sequence[Dict[str, Any]]) -> UsedAddresses:
    used = UsedAddresses()
    for item in reserved or []:
        used.add(item['address'], item.get('hosts') or [], item.get('where') or '')
    return used


def store_from_state(store: Dict[str, Any]) -> StoreState:
    state = StoreState(dict(store.get('data') or {}), store.get('resourceVersion'), exists=bool(store.get('exists')),
                       managed=bool(store.get('managed', True)))
    return state


def prune_scope(samples_on: bool) -> Callable[[Key, Dict[str, Any]], bool]:
    """Which of this mesh's objects a setup may delete when no longer wanted: its Istio objects
    (found cluster-wide by the mesh's labels), and while sample apps are on, the sample objects
    of the plan's namespaces (the inspection lists them there only: with sample apps off, or in
    a namespace that left the plan, they are left for a teardown).
    """
    def in_scope(key: Key, _obj: Dict[str, Any]) -> bool:
        if _seed.is_seed_object(key):
            return True
        return samples_on and key[0] in SAMPLE_KINDS
    return in_scope


def wait_for_deployments(cluster: Any, wanted: Sequence[Key], timeout: float,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> None:
    namespaces = sorted({k[1] for k in wanted})
    targets = [(k[1], k[2]) for k in wanted]
    deadline = clock() + timeout
    while True:
        deployments: List[Dict[str, Any]] = []
        for namespace in namespaces:
            deployments.extend(cluster.list(resource_path('Deployment', namespace), ObjectRef('Deployment', namespace)))
        waiting = _samples.deployments_ready(deployments, targets)
        if not waiting:
            return
        if clock() >= deadline:
            raise MeshlinkError('Sample Deployments not Available after %ds in %s: %s'
                                % (timeout, cluster.context, ', '.join(waiting)))
        sleep(1)


def reconcile_cluster(cluster: Any, plan: Any, name: str, state: Any, gateways: Optional[Dict[str, Any]] = None,
                      vip: Optional[Dict[str, Any]] = None, sample_apps: Optional[Dict[str, Any]] = None,
                      prune: bool = True, force_conflicts: bool = False, workers: int = 4,
                      multinetwork: Optional[Dict[str, Any]] = None, peers: Optional[Dict[str, Any]] = None,
                      peer_services: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``cluster_reconcile`` module (module docstring)."""
    plan = checked_plan(plan, name)
    state = check_state(state, plan, name)
    part = plan['clusters'][name]
    mesh = plan['mesh']
    if plan['topology'] != SEED_TOPOLOGY:
        return _multinet_flow.reconcile_multinet(cluster, plan, name, state, peers=peers, peer_services=peer_services,
                                                 multinetwork=multinetwork, sample_apps=sample_apps, prune=prune,
                                                 force_conflicts=force_conflicts, workers=workers)
    vip = dict(vip or {})
    samples = _samples.sample_settings(sample_apps) if sample_apps is not None else None
    exclude = vip.get('exclude') or []
    parse_exclude(exclude)
    check_mode = bool(getattr(cluster, 'dry_run', False))
    warnings: List[str] = []
    lines: List[str] = []

    # 1. Everything that can be checked without a VIP, before the first write: the gateways
    #    other clusters reported, and nothing in the way of any object this cluster wants.
    _seed.check_gateways(part, gateways or {})
    existing = {object_key(o): o for o in state['objects']}
    namespaces = state.get('namespaces') or {}
    for namespace, obj in namespaces.items():
        if obj is not None:
            existing[('Namespace', '', namespace)] = obj
    inject: List[str] = []
    desired: List[Desired] = []
    if samples is not None:
        sleep_ns, export_ns, skipped = _samples.sample_namespaces(part, samples)
        inject = sorted(set(sleep_ns) | set(export_ns))
        if skipped:
            lines.append('%s: no sample apps in %s (meshlink_sample_excluded_namespaces): deploy your own client or '
                         'service there' % (name, ', '.join(skipped)))
    namespace_desired, messages = _samples.namespace_objects(part['namespaces'], namespaces, mesh, inject)
    desired.extend(namespace_desired)
    warnings.extend('%s: %s' % (name, m) for m in messages)
    if samples is not None:
        desired.extend(_samples.sample_objects(part, samples, mesh))
    desired.extend(_seed.source_objects(part, mesh))
    _changes, conflicts = plan_changes(desired + _seed.placeholders(part, mesh), existing, mesh)
    if conflicts:
        raise MeshlinkError('Nothing was changed in %s: %s' % (cluster.context, '; '.join(conflicts)))

    # 2. VIPs (the ServiceEntries need them; the store is written before them). Hosts no longer
    #    consumed are released in the same write: their ServiceEntries still hold the addresses
    #    until they are deleted below, so no other allocation can take them meanwhile.
    hosts = _seed.consumed_hosts(part)
    store_info = state['vip_store']
    store = ConfigMapStore(cluster, store_info['namespace'], store_info['name'], mesh)
    first_read = store_from_state(store_info)
    stale = [h for h in first_read.data if h not in hosts] if prune else []
    vips: Dict[str, str] = {}
    vip_outcome = None
    if hosts:
        version = state.get('istio_version')
        network, pool_messages = pool_for(vip.get('pool') or None, parse_version(version) if version else None)
        warnings.extend(pool_messages)
        vip_outcome = reconcile_vips(store, used_from_state(state.get('reserved')), hosts, network,
                                     fixed=_seed.fixed_vips(part), exclude=exclude, check_mode=check_mode,
                                     first_read=first_read, release=stale, mesh=mesh)
        vips = vip_outcome.vips
        warnings.extend(vip_outcome.warnings)
    elif stale:
        vip_outcome = reconcile_vips(store, UsedAddresses(), stale, None, state='absent', check_mode=check_mode,
                                     first_read=first_read, mesh=mesh)

    # 3. The changes, with the ServiceEntries rendered.
    desired.extend(_seed.consumer_objects(part, gateways or {}, vips, mesh))
    changes, conflicts = plan_changes(desired, existing, mesh, prune_scope(samples is not None) if prune else None)
    if conflicts:  # only a plan that changed under this run could get here
        raise MeshlinkError('Stopped in %s: %s' % (cluster.context, '; '.join(conflicts)))

    # 4. The writes.
    writer = Writer(cluster, mesh, state.get('networking_version'), force_conflicts=force_conflicts, workers=workers)
    outcome = Outcome()
    if vip_outcome is not None and vip_outcome.changed:
        outcome.changed = True
    writer.execute(changes, outcome)

    # 5. Sample Deployments Available.
    if samples is not None and samples['wait'] and not check_mode:
        wanted = [c.key for c in changes if c.key[0] == 'Deployment' and c.action != 'delete']
        if wanted:
            wait_for_deployments(cluster, wanted, samples['wait_timeout'])

    for service in part['consumes']:
        gateway = (gateways or {}).get(service['cluster']) or {}
        lines.append('%s/%s: %s -> VIP %s, gateway %s:%s of %s (%s)' % (
            name, service['consumer_namespace'], service['host'], vips.get(service['host'], '?'),
            gateway.get('address', '?'), gateway.get('port', '?'), service['cluster'], service['mode']))
    for obj in outcome.objects:
        if obj['action'] != 'unchanged' or len(outcome.objects) <= 20:
            lines.append('  %s: %s' % (describe_key((obj['kind'], obj['namespace'], obj['name'])), obj['action']))
    for host in (vip_outcome.allocated if vip_outcome else []):
        lines.append('  VIP of %s: %s %s' % (host, vips[host], 'would be allocated' if check_mode else 'allocated'))
    released = vip_outcome.released if vip_outcome else []
    for host in released:
        lines.append('  VIP of %s: %s' % (host, 'would be released' if check_mode else 'released'))

    diff = list(outcome.diff)
    if vip_outcome is not None and vip_outcome.changed:
        header = 'ConfigMap %s/%s data' % (store_info['namespace'], store_info['name'])
        diff.insert(0, {'before_header': header, 'after_header': header, 'before': vip_outcome.before,
                        'after': vip_outcome.after})
    warnings.extend(outcome.warnings)
    return {
        'changed': outcome.changed,
        'objects': outcome.objects,
        'vips': vips,
        'allocated': vip_outcome.allocated if vip_outcome else [],
        'released': released,
        'lines': lines or ['%s: nothing to do' % name],
        'diff': diff,
        'warnings': warnings,
    }
