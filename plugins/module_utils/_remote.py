# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Apply and delete the Istio objects of remote services in one cluster.

Role ``consumer``: ServiceEntry, and with subsets DestinationRule + VirtualService
``-global``, for every listed service this cluster consumes. Role ``source``: the
DestinationRule ``-local`` for every listed service with subsets that runs here.

How a run goes, so that it is safe and idempotent:
  1. every input is validated and every object rendered before the first API call that
     writes (bad input never leaves half a change behind);
  2. one list per kind (label ``app.kubernetes.io/managed-by=meshlink``, all namespaces)
     gives our existing objects; for a wanted object not among them, one get by name tells
     whether a foreign object (no label, or another service's) has that name: then the run
     stops before writing anything, naming the object;
  3. an object is applied (server-side apply, field manager ``meshlink``) only when its
     spec or our labels differ from what is stored, so a second run writes nothing; a
     no-op apply (another manager owns extra fields) is detected by the unchanged
     resourceVersion and reported as unchanged;
  4. our objects of a listed service that are no longer wanted (subsets removed, consumer
     namespace or cluster changed) are deleted; with ``prune``, also those of services no
     longer listed; ``state=absent`` deletes every object of the listed services;
  5. check mode sends the same writes with ``dryRun=All``, so the server validates them.

Which of our objects belong to a role is decided by kind and name, as fixed in
docs/architecture.md: consumer = ServiceEntries, VirtualServices and DestinationRules named
``*-global``; source = DestinationRules named ``*-local``.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils import _render
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, group_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import (
    consumed_by,
    exported_by,
    normalize_services,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    ISTIO_PLURALS,
    MANAGED_BY_LABEL,
    MANAGED_SELECTOR,
    NETWORKING_GROUP,
    SERVICE_LABEL,
    service_key,
)

ROLES = ('consumer', 'source')
ROLE_KINDS = {'consumer': ('ServiceEntry', 'DestinationRule', 'VirtualService'), 'source': ('DestinationRule',)}
# Deletion order: routes before the rules they route to, before the entry they refine.
DELETE_ORDER = {'VirtualService': 0, 'DestinationRule': 1, 'ServiceEntry': 2}
VOLATILE_METADATA = ('managedFields', 'resourceVersion', 'generation', 'uid', 'creationTimestamp', 'selfLink')

Key = Tuple[str, str, str]  # kind, namespace, name


def in_role_scope(role: str, kind: str, name: str) -> bool:
    """Whether one of our objects belongs to ``role`` (see the module docstring)."""
    if role == 'source':
        return kind == 'DestinationRule' and name.endswith('-local')
    if kind == 'DestinationRule':
        return name.endswith('-global')
    return kind in ('ServiceEntry', 'VirtualService')


def object_key(obj: Dict[str, Any]) -> Key:
    metadata = obj.get('metadata') or {}
    return obj.get('kind', ''), metadata.get('namespace', ''), metadata.get('name', '')


def strip_object(obj: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The object without server bookkeeping, for diffs (and equality of dry-run answers)."""
    if not obj:
        return {}
    result = copy.deepcopy(obj)
    metadata = result.get('metadata') or {}
    for field in VOLATILE_METADATA:
        metadata.pop(field, None)
    result.pop('status', None)
    return result


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
    if isinstance(value, str) and value.strip().isdigit():
        return _port(int(value.strip()))
    return None


def desired_objects(services: Sequence[Dict[str, Any]], role: str, cluster: str, gateways: Optional[Dict[str, Any]],
                    vips: Optional[Dict[str, Any]], api_version: str) -> List[Dict[str, Any]]:
    """Render what ``cluster`` should hold for ``role`` (pure). Raises :class:`InputError` when a
    gateway or VIP is missing or invalid, naming the option and what to run to get it."""
    errors: List[str] = []
    objects: List[Dict[str, Any]] = []
    if role == 'source':
        for service in exported_by(services, cluster):
            objects.extend(_render.render_source_objects(service, api_version))
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
            if not isinstance(address, str) or not address.strip():
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
                if ipaddress.ip_address(str(vip)).version != 4:
                    raise ValueError(vip)
            except ValueError:
                errors.append('vips.%s: %r is not an IPv4 address' % (service['host'], vip))
        if errors:
            continue
        objects.extend(_render.render_consumer_objects(service, service['consumer_namespace'], address.strip(),
                                                       port, str(vip), api_version))
    if errors:
        raise InputError(errors)
    return objects


def _plural_path(api_version: str, kind: str, namespace: Optional[str] = None, name: Optional[str] = None) -> str:
    return group_path(NETWORKING_GROUP, api_version, ISTIO_PLURALS[kind], namespace, name)


def _ref(key: Key) -> ObjectRef:
    return ObjectRef(key[0], key[1], key[2])


def _entry(key: Key, action: str) -> Dict[str, str]:
    return {'kind': key[0], 'namespace': key[1], 'name': key[2], 'action': action}


def _diff(key: Key, before: Optional[Dict[str, Any]], after: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    header = '%s %s/%s' % key
    return {'before_header': header, 'after_header': header, 'before': strip_object(before),
            'after': strip_object(after)}


def reconcile_remote_services(cluster: Any, services: Any, role: str, cluster_name: str,
                              gateways: Optional[Dict[str, Any]] = None, vips: Optional[Dict[str, Any]] = None,
                              state: str = 'present', prune: bool = False) -> Dict[str, Any]:
    """Bring one cluster to the wanted state; returns ``{objects, api_version, changed, diff}``.

    Check mode is the cluster's ``dry_run``: writes are sent with ``dryRun=All``.
    """
    if role not in ROLES:
        raise InputError(['role: %r is not one of %s' % (role, ', '.join(ROLES))])
    normalised = normalize_services(services, None)
    listed = {service_key(s['name'], s['namespace']) for s in normalised}
    # Rendered before the first API call so that a missing gateway or VIP fails with nothing
    # read or written; the apiVersion is filled in after discovery.
    desired = desired_objects(normalised, role, cluster_name, gateways, vips, 'v1') if state == 'present' else []
    served = cluster.served_versions(NETWORKING_GROUP)
    if not served:
        # Without Istio's API none of our objects can exist: absent is done; present is an
        # error only when something is wanted.
        if desired:
            cluster.networking_version()  # raises the "Istio is not installed" error
        return {'objects': [], 'api_version': None, 'changed': False, 'diff': []}
    api_version = cluster.networking_version()
    for obj in desired:
        obj['apiVersion'] = '%s/%s' % (NETWORKING_GROUP, api_version)

    existing: Dict[Key, Dict[str, Any]] = {}
    for kind in ROLE_KINDS[role]:
        for obj in cluster.list(_plural_path(api_version, kind), ObjectRef(kind), label_selector=MANAGED_SELECTOR):
            obj.setdefault('kind', kind)
            key = object_key(obj)
            if in_role_scope(role, kind, key[2]):
                existing[key] = obj

    # Foreign objects block the whole run, before any write.
    conflicts: List[str] = []
    plan: List[Tuple[Key, Dict[str, Any], Optional[Dict[str, Any]]]] = []
    desired_keys = set()
    for obj in desired:
        key = object_key(obj)
        desired_keys.add(key)
        current = existing.get(key)
        if current is None:
            current = cluster.get(_plural_path(api_version, key[0], key[1], key[2]), _ref(key))
            if current is not None:
                conflicts.append('%s %s/%s exists but is not managed by meshlink (no label %s=meshlink) - rename or '
                                 'delete it, it is never overwritten' % (key + (MANAGED_BY_LABEL,)))
                continue
        else:
            have = ((current.get('metadata') or {}).get('labels') or {}).get(SERVICE_LABEL)
            want = obj['metadata']['labels'][SERVICE_LABEL]
            if have != want:
                conflicts.append('%s %s/%s belongs to service %s, not %s - two services map to this name; rename '
                                 'one' % (key + (have, want)))
                continue
        plan.append((key, obj, current))
    if conflicts:
        raise MeshlinkError('Nothing was changed in %s: %s' % (cluster.context, '; '.join(conflicts)))

    to_delete: List[Key] = []
    for key, obj in existing.items():
        if key in desired_keys:
            continue
        owner = ((obj.get('metadata') or {}).get('labels') or {}).get(SERVICE_LABEL)
        if owner in listed or (state == 'present' and prune):
            to_delete.append(key)
    to_delete.sort(key=lambda k: (DELETE_ORDER.get(k[0], 9), k[1], k[2]))

    check_mode = bool(getattr(cluster, 'dry_run', False))
    warnings: List[str] = []
    objects: List[Dict[str, str]] = []
    diffs: List[Dict[str, Any]] = []
    changed = False
    for key, obj, current in plan:
        if not needs_apply(obj, current):
            objects.append(_entry(key, 'unchanged'))
            continue
        try:
            answer = cluster.apply(_plural_path(api_version, key[0], key[1], key[2]), obj, _ref(key))
        except ApiError as error:
            if not (check_mode and current is None and error.status == 404 and key[1]):
                raise
            # Check mode of a whole setup: the namespace is created by an earlier step that
            # only pretended to, so the server cannot dry-run into it. Predict the create.
            warnings.append('%s %s/%s: namespace %s does not exist yet; the create is predicted without a '
                            'server-side dry run' % (key[0], key[1], key[2], key[1]))
            answer = None
        if current is None:
            action = 'would_create' if check_mode else 'created'
        else:
            same_version = (answer or {}).get('metadata', {}).get('resourceVersion') == \
                current.get('metadata', {}).get('resourceVersion')
            same_content = strip_object(answer) == strip_object(current)
            if (same_version and not check_mode) or same_content:
                # Applied, but the server changed nothing: other managers' fields made the
                # stored spec differ from ours while holding everything we set.
                objects.append(_entry(key, 'unchanged'))
                continue
            action = 'would_update' if check_mode else 'updated'
        changed = True
        objects.append(_entry(key, action))
        diffs.append(_diff(key, current, answer or obj))
    for key in to_delete:
        gone = cluster.delete(_plural_path(api_version, key[0], key[1], key[2]), _ref(key))
        if not gone:
            continue  # deleted by someone else meanwhile: nothing changed by us
        changed = True
        objects.append(_entry(key, 'would_delete' if check_mode else 'deleted'))
        diffs.append(_diff(key, existing[key], None))
    return {'objects': objects, 'api_version': api_version, 'changed': changed, 'diff': diffs, 'warnings': warnings}
