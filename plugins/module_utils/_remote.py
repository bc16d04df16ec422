# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The ``remote_services`` module: the objects of remote services in one cluster, for users' own plays.

Role ``consumer``: ServiceEntry, and with subsets DestinationRule + VirtualService
``-global``, for every listed service this cluster consumes. Role ``source``: the
DestinationRule ``-local`` for every listed service with subsets that runs here.

The objects are rendered by ``_seed``/``_render`` and written by the one write engine
(``_objects``), exactly as ``cluster_reconcile`` does in a setup:
  1. every input is validated and every object rendered before the first API call;
  2. one list per kind gives this mesh's objects and whatever holds a wanted name; an object in
     the way (a user's, another mesh's) stops the run before anything is written;
  3. an object is written only when its spec or our labels differ (creates are POSTs, updates
     server-side applies), so a second run writes nothing;
  4. this mesh's objects of a listed service that are no longer wanted (subsets removed,
     consumer namespace changed) are deleted; with ``prune``, also those of services no longer
     listed; ``state=absent`` deletes every object of the listed services;
  5. check mode sends the same writes with ``dryRun=All``.

Which of our objects belong to a role is decided by kind and name (docs/architecture.md):
consumer = ServiceEntries, VirtualServices and DestinationRules named ``*-global``; source =
DestinationRules named ``*-local``.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.meshlink.multicluster.plugins.module_utils import _render
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import (
    consumed_by,
    exported_by,
    normalize_services,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import NETWORKING_GROUP, service_key
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Desired,
    Key,
    Writer,
    object_key,
    plan_changes,
    strip_object,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import DEFAULT_MESH, is_ours, part_of
from ansible_collections.meshlink.multicluster.plugins.module_utils._reader import ClusterReader
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import mesh_name_problem

ROLES = ('consumer', 'source')
ROLE_KINDS = {'consumer': ('ServiceEntry', 'DestinationRule', 'VirtualService'), 'source': ('DestinationRule',)}


def in_role_scope(role: str, kind: str, name: str) -> bool:
    """Whether one of our objects belongs to ``role`` (see the module docstring)."""
    if role == 'source':
        return kind == 'DestinationRule' and name.endswith('-local')
    if kind == 'DestinationRule':
        return name.endswith('-global')
    return kind in ('ServiceEntry', 'VirtualService')


def needs_apply(desired: Dict[str, Any], existing: Optional[Dict[str, Any]]) -> bool:
    """True when applying ``desired`` would change ``existing``: it is absent, its spec differs,
    or one of our labels is missing or different (labels others added are not ours to judge)."""
    if existing is None:
        return True
    if existing.get('spec') != desired.get('spec'):
        return True
    have = (existing.get('metadata') or {}).get('labels') or {}
    want = (desired.get('metadata') or {}).get('labels') or {}
    return any(have.get(key) != value for key, value in want.items())


def _port(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 65535 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return _port(int(value))
    return None


def desired_objects(services: Sequence[Dict[str, Any]], role: str, cluster: str, gateways: Optional[Dict[str, Any]],
                    vips: Optional[Dict[str, Any]], api_version: str, mesh: str = DEFAULT_MESH) -> List[Dict[str, Any]]:
    """Render what ``cluster`` should hold for ``role`` (pure). Raises :class:`InputError` when a
    gateway or VIP is missing or invalid, naming the option and what to run to get it."""
    errors: List[str] = []
    objects: List[Dict[str, Any]] = []
    if role == 'source':
        for service in exported_by(services, cluster):
            objects.extend(_render.render_source_objects(service, api_version, mesh))
        return objects
    gateways = gateways or {}
    vips = vips or {}
    for service in consumed_by(services, cluster):
        gateway = gateways.get(service['cluster'])
        address = port = None
        if not isinstance(gateway, dict):
            errors.append('gateways.%s: missing - the gateway of %s (source of %s) is needed; run '
                          'meshlink.multicluster.gateway_address against %s and pass {address, port}'
                          % (service['cluster'], service['cluster'], service['host'], service['cluster']))
        else:
            address = gateway.get('address')
            port = _port(gateway.get('port'))
            if not isinstance(address, str) or not address:
                errors.append('gateways.%s.address: is empty - an empty endpoint address must never reach a '
                              'ServiceEntry; pass the address from gateway_address' % service['cluster'])
            if port is None:
                errors.append('gateways.%s.port: %r is not a port (1-65535)' % (service['cluster'], gateway.get('port')))
        vip = vips.get(service['host']) or service.get('vip')
        if service.get('vip') and vips.get(service['host']) and vips[service['host']] != service['vip']:
            errors.append('vips.%s: %s differs from the fixed vip %s of the service - pass the vip_allocate result '
                          'that used fixed' % (service['host'], vips[service['host']], service['vip']))
        if not vip:
            errors.append('vips.%s: missing - allocate it with meshlink.multicluster.vip_allocate in %s'
                          % (service['host'], cluster))
        else:
            try:
                if not isinstance(vip, str) or ipaddress.ip_address(vip).version != 4:
                    raise ValueError(vip)
            except ValueError:
                errors.append('vips.%s: %r is not an IPv4 address' % (service['host'], vip))
        if errors:
            continue
        objects.extend(_render.render_consumer_objects(service, service['consumer_namespace'], address, port,
                                                       vip, api_version, mesh))
    if errors:
        raise InputError(errors)
    return objects


def reconcile_remote_services(cluster: Any, services: Any, role: str, cluster_name: str,
                              gateways: Optional[Dict[str, Any]] = None, vips: Optional[Dict[str, Any]] = None,
                              state: str = 'present', prune: bool = False, mesh: str = DEFAULT_MESH,
                              force_conflicts: bool = False) -> Dict[str, Any]:
    """Bring one cluster to the wanted state; returns ``{objects, api_version, changed, diff}``.

    Check mode is the cluster's ``dry_run``: writes are sent with ``dryRun=All``.
    """
    if role not in ROLES:
        raise InputError(['role: %r is not one of %s' % (role, ', '.join(ROLES))])
    problem = mesh_name_problem(mesh)
    if problem:
        raise InputError(['mesh: %s' % problem])
    normalised = normalize_services(services, None)
    listed = {service_key(s['name'], s['namespace']) for s in normalised}
    # Rendered before the first API call so that a missing gateway or VIP fails with nothing
    # read or written; the apiVersion is set by the writer after discovery.
    desired = [Desired(obj, compare='spec')
               for obj in (desired_objects(normalised, role, cluster_name, gateways, vips, 'v1', mesh)
                           if state == 'present' else [])]
    if not cluster.served_versions(NETWORKING_GROUP):
        # Without Istio's API none of our objects can exist: absent is done; present is an
        # error only when something is wanted.
        if desired:
            cluster.networking_version()  # raises the "Istio is not installed" error
        return {'objects': [], 'api_version': None, 'changed': False, 'diff': []}
    api_version = cluster.networking_version()

    reader = ClusterReader(cluster)
    wanted = {item.key for item in desired}
    existing: Dict[Key, Dict[str, Any]] = {}
    for kind in ROLE_KINDS[role]:
        for obj in reader.istio_objects(kind):
            key = object_key(obj)
            if key in wanted or (is_ours(obj, mesh) and in_role_scope(role, kind, key[2])):
                existing[key] = obj

    def prunable(key: Key, obj: Dict[str, Any]) -> bool:
        return in_role_scope(role, key[0], key[2]) and (part_of(obj) in listed or (state == 'present' and prune))

    changes, conflicts = plan_changes(desired, existing, mesh, prunable)
    if conflicts:
        raise MeshlinkError('Nothing was changed in %s: %s' % (cluster.context, '; '.join(conflicts)))
    outcome = Writer(cluster, mesh, api_version, force_conflicts=force_conflicts).execute(changes)
    return {'objects': outcome.objects, 'api_version': api_version, 'changed': outcome.changed,
            'diff': outcome.diff, 'warnings': outcome.warnings}


__all__ = ['ROLES', 'ROLE_KINDS', 'in_role_scope', 'needs_apply', 'desired_objects', 'reconcile_remote_services',
           'strip_object']
