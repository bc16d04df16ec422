# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Teardown of one cluster (``cluster_teardown``): this mesh's objects, and only them.

What goes, in one run:
  - the Istio objects of this mesh (labels ``managed-by=meshlink`` and ``meshlink.io/mesh``)
    that serve a service of the plan (with ``everything``: every object of this mesh);
  - with ``sample_apps``: this mesh's sample apps (the same labels);
  - the VIPs of the hosts this cluster consumed, and the mesh's VIP store once empty;
  - a namespace the mesh created (it carries the mesh's labels), only when nothing but the
    mesh's objects is left in it: every namespaced kind the credentials can list is checked
    (metadata only), objects made by a controller from ours (ownerReferences) and the ones
    Kubernetes puts in every namespace do not count. Otherwise it stays, and the run says
    which objects kept it.
Nothing without this mesh's labels is ever deleted. Deletes carry the uid and
resourceVersion read as preconditions, so an object replaced meanwhile is left alone.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet_flow, _samples, _seed
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import NETWORKING_GROUP
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Change,
    Key,
    Outcome,
    Writer,
    describe_key,
    object_key,
    resource_path,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    SAMPLE_APPS,
    is_access_object,
    is_ours,
    mesh_selector,
    owner_of,
    part_of,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import checked_plan, is_multi_network
from ansible_collections.meshlink.multicluster.plugins.module_utils._reader import ClusterReader
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import ConfigMapStore, reconcile_vips, store_name_for

AGGREGATED_DISCOVERY = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json'
METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json'

# Objects Kubernetes (or Istio) puts into every namespace, and kinds derived from others.
IGNORED_RESOURCES = {('', 'events'), ('events.k8s.io', 'events'), ('', 'endpoints'),
                     ('discovery.k8s.io', 'endpointslices'), ('coordination.k8s.io', 'leases'),
                     ('authorization.k8s.io', 'localsubjectaccessreviews')}
IGNORED_OBJECTS = {('configmaps', 'kube-root-ca.crt'), ('configmaps', 'istio-ca-root-cert'), ('configmaps', 'istio-ca-crl'),
                   ('serviceaccounts', 'default')}


def namespaced_resources(cluster: Any) -> List[Tuple[str, str, str]]:
    """``(group, version, plural)`` of every namespaced kind that can be listed (preferred version
    of each group), from aggregated discovery (two requests), else the classic per-group walk."""
    found: List[Tuple[str, str, str]] = []
    for root in ('/api', '/apis'):
        answer = cluster.request('GET', root, ObjectRef('API discovery'), 'discover', accept=AGGREGATED_DISCOVERY) or {}
        if answer.get('kind') == 'APIGroupDiscoveryList':
            for group in answer.get('items') or []:
                name = (group.get('metadata') or {}).get('name', '')
                versions = group.get('versions') or []
                if not versions:
                    continue
                preferred = versions[0]  # the server lists the preferred version first
                for resource in preferred.get('resources') or []:
                    if resource.get('scope') == 'Namespaced' and 'list' in (resource.get('verbs') or []):
                        found.append((name, preferred.get('version', ''), resource.get('resource', '')))
            continue
        # An older API server: /api answers APIVersions, /apis APIGroupList.
        if root == '/api':
            group_versions = [('', v) for v in answer.get('versions') or ['v1']]
        else:
            group_versions = [(g.get('name', ''), (g.get('preferredVersion') or {}).get('version', ''))
                              for g in answer.get('groups') or []]
        for group, version in group_versions:
            path = '/api/%s' % version if not group else '/apis/%s/%s' % (group, version)
            listing = cluster.request('GET', path, ObjectRef('API resources of %s' % (group or 'core')), 'discover') or {}
            for resource in listing.get('resources') or []:
                if resource.get('namespaced') and '/' not in resource.get('name', '') and \
                        'list' in (resource.get('verbs') or []):
                    found.append((group, version, resource['name']))
    return [r for r in found if (r[0], r[2]) not in IGNORED_RESOURCES]


def leftovers(cluster: Any, namespace: str, mesh: str, resources: Sequence[Tuple[str, str, str]]) -> Tuple[List[str], List[str]]:
    """``(objects that are not this mesh's, kinds that could not be listed)`` in ``namespace``."""
    foreign: List[str] = []
    unreadable: List[str] = []
    for group, version, plural in resources:
        prefix = '/api/%s' % version if not group else '/apis/%s/%s' % (group, version)
        path = '%s/namespaces/%s/%s' % (prefix, namespace, plural)
        try:
            answer = cluster.request('GET', path, ObjectRef(plural, namespace), 'list', accept=METADATA_LIST) or {}
        except ApiError as error:
            if error.status == 404:
                continue
            unreadable.append('%s%s (%s)' % (plural, '.' + group if group else '', error.status or 'unreachable'))
            continue
        for item in answer.get('items') or []:
            metadata = item.get('metadata') or {}
            if metadata.get('ownerReferences') or (plural, metadata.get('name')) in IGNORED_OBJECTS:
                continue
            if is_ours(item, mesh):
                continue
            foreign.append('%s%s/%s (it %s)' % (plural, '.' + group if group else '', metadata.get('name'),
                                                owner_of(item)))
    return foreign, unreadable


def remove_empty_namespaces(cluster: Any, namespaces: Dict[str, Dict[str, Any]], mesh: str, name: str,
                            outcome: Outcome, writer: Writer, keep_access: bool = True) -> List[str]:
    """Delete each namespace of ``namespaces`` (this mesh's, as read) that holds nothing but the
    mesh's objects; return a line for each one kept, saying why. Namespaces provisioned by the
    access playbook hold an administrator's grants: only ``cluster_access`` removes them."""
    kept: List[str] = []
    resources: Optional[List[Tuple[str, str, str]]] = None
    for namespace in sorted(namespaces):
        obj = namespaces[namespace]
        if keep_access and is_access_object(obj):
            kept.append('%s: namespace %s stays: it was provisioned by the access playbook and holds its grants (remove '
                        'them with playbooks/access.yml -e meshlink_access_state=absent)' % (name, namespace))
            continue
        if resources is None:
            resources = namespaced_resources(cluster)
        # In check mode the deletions before were dry runs; the mesh's objects do not count
        # either way, so the answer is the same.
        foreign, unreadable = leftovers(cluster, namespace, mesh, resources)
        if foreign or unreadable:
            why = []
            if foreign:
                why.append('it holds %s' % ', '.join(foreign[:10]) + (' and %d more' % (len(foreign) - 10)
                                                                      if len(foreign) > 10 else ''))
            if unreadable:
                why.append('these kinds could not be listed to prove it empty: %s' % ', '.join(unreadable[:10]))
            kept.append('%s: namespace %s was created by this mesh but stays: %s' % (name, namespace, '; '.join(why)))
            continue
        writer.execute([Change('delete', ('Namespace', '', namespace), existing=obj)], outcome)
    return kept


def _listed(reader: ClusterReader, kinds: Sequence[str], mesh: str, namespaces: Sequence[str],
            everywhere: bool = False, warnings: Optional[List[str]] = None,
            strict: Sequence[str] = ()) -> Dict[Key, Dict[str, Any]]:
    """This mesh's objects of ``kinds``: Istio kinds cluster-wide, the others per namespace - or,
    with ``everywhere``, cluster-wide when the credentials may (else per namespace, said in
    ``warnings``)."""
    found: Dict[Key, Dict[str, Any]] = {}
    for kind in kinds:
        if kind in _seed.ISTIO_KINDS:
            items = reader.istio_objects(kind, label_selector=mesh_selector(mesh))
        else:
            items = None
            if everywhere:
                try:
                    items = reader.list(resource_path(kind), ObjectRef(kind), label_selector=mesh_selector(mesh))
                except ApiError as error:
                    if error.status != 403:
                        raise
                    if warnings is not None:
                        warnings.append('%s of this mesh were looked for in the namespaces of the plan and the ones the '
                                        'mesh created only: these credentials may not list them cluster-wide (%s)'
                                        % (kind, error))
            if items is None:
                items = []
                for namespace in namespaces:
                    try:
                        items += reader.list(resource_path(kind, namespace), ObjectRef(kind, namespace),
                                             label_selector=mesh_selector(mesh))
                    except ApiError as error:
                        # Only the namespaces beyond the plan's may be out of reach (everything).
                        if error.status != 403 or namespace in strict:
                            raise
                        if warnings is not None:
                            warnings.append('%s in namespace %s could not be listed with these credentials: left as '
                                            'they are (%s)' % (kind, namespace, error))
        for obj in items:
            obj.setdefault('kind', kind)
            if is_ours(obj, mesh):
                found[object_key(obj)] = obj
    return found


def teardown_cluster(cluster: Any, plan: Any, name: str, store_namespace: str = 'istio-system',
                     store_name: Optional[str] = None, sample_apps: bool = True, everything: bool = False,
                     wait: bool = True, wait_timeout: int = 300, workers: int = 4,
                     multinetwork: Optional[Dict[str, Any]] = None,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """The ``cluster_teardown`` module (module docstring)."""
    plan = checked_plan(plan, name)
    part = plan['clusters'][name]
    mesh = plan['mesh']
    check_mode = bool(getattr(cluster, 'dry_run', False))
    reader = ClusterReader(cluster)
    lines: List[str] = []
    multinet_outcome = None
    if is_multi_network(plan['topology']):
        # The topology's own objects first (remote secrets, readers, gateways, stubs, rules,
        # the network label where this mesh added it); the sample apps and namespaces below.
        multinet_outcome, lines = _multinet_flow.teardown_multinet(cluster, plan, name, multinetwork=multinetwork,
                                                                   everything=everything, workers=workers)
    services = {'%s.%s' % (s['name'], s['namespace']) for s in plan['services']}
    kept: List[str] = []
    warnings: List[str] = []

    def in_scope(obj: Dict[str, Any]) -> bool:
        return everything or part_of(obj) in services or (sample_apps and part_of(obj) == SAMPLE_APPS)

    kinds = list(_seed.ISTIO_KINDS) + (list(_samples.SAMPLE_KINDS) if sample_apps else [])
    namespaces = list(part['namespaces'])
    if everything:
        namespaces += [(o.get('metadata') or {}).get('name') for o in
                       reader.list(resource_path('Namespace'), ObjectRef('Namespace'), label_selector=mesh_selector(mesh))]
    namespaces = sorted(set(namespaces))
    found = {k: o for k, o in _listed(reader, kinds, mesh, namespaces, everything, warnings,
                                      strict=part['namespaces']).items() if in_scope(o)}
    changes = [Change('delete', key, existing=obj) for key, obj in sorted(found.items())]
    networking_version = reader.networking_version_or_none() if cluster.served_versions(NETWORKING_GROUP) else None
    writer = Writer(cluster, mesh, networking_version, workers=workers)
    outcome = multinet_outcome or Outcome()
    done = {(o['kind'], o['namespace'], o['name']) for o in outcome.objects}
    writer.execute([c for c in changes if c.key not in done], outcome)

    # VIPs of the hosts this cluster consumed (everything: the whole store).
    store = ConfigMapStore(cluster, store_namespace, store_name or store_name_for(mesh), mesh)
    current = store.read()
    released: List[str] = []
    if current.exists:
        if not current.managed:
            warnings.append('%s %s: left alone' % (store.description, current.owner))
        else:
            hosts = list(current.data) if everything else _seed.consumed_hosts(part)
            vip_outcome = reconcile_vips(store, None, hosts, None, state='absent', check_mode=check_mode,
                                         first_read=current, mesh=mesh)
            released = vip_outcome.released
            if vip_outcome.changed:
                outcome.changed = True
                header = 'ConfigMap %s data' % store.description.split(' ', 1)[1]
                outcome.diff.append({'before_header': header, 'after_header': header, 'before': vip_outcome.before,
                                     'after': vip_outcome.after})
            if vip_outcome.changed and not vip_outcome.after:
                outcome.objects.append({'kind': 'ConfigMap', 'namespace': store_namespace, 'name': store.name,
                                        'action': 'would_delete' if check_mode else 'deleted'})

    # Namespaces the mesh created, when nothing but the mesh's objects is left in them.
    if sample_apps:
        candidates = {n: reader.namespace(n) for n in part['namespaces']}
        if everything:
            for obj in reader.list(resource_path('Namespace'), ObjectRef('Namespace'), label_selector=mesh_selector(mesh)):
                candidates[(obj.get('metadata') or {}).get('name')] = obj
        ours = {n: o for n, o in candidates.items() if o is not None and is_ours(o, mesh)}
        kept = remove_empty_namespaces(cluster, ours, mesh, name, outcome, writer)

    if wait and not check_mode:
        _wait_gone(cluster, [o for o in outcome.objects if o['action'] == 'deleted'], wait_timeout, clock, sleep,
                   networking_version)

    for obj in outcome.objects:
        lines.append('%s: %s: %s' % (name, describe_key((obj['kind'], obj['namespace'], obj['name'])), obj['action']))
    for host in released:
        lines.append('%s: VIP of %s: %s' % (name, host, 'would be released' if check_mode else 'released'))
    lines.extend(kept if sample_apps else [])
    if not lines:
        lines.append('%s: nothing of mesh %s left' % (name, mesh))
    return {'changed': outcome.changed, 'objects': outcome.objects, 'released': released, 'lines': lines,
            'kept_namespaces': kept,
            'diff': outcome.diff, 'warnings': warnings + outcome.warnings}


def _wait_gone(cluster: Any, deleted: Sequence[Dict[str, str]], timeout: int, clock: Callable[[], float],
               sleep: Callable[[float], None], networking_version: Optional[str]) -> None:
    """Wait until the deleted Deployments and namespaces are gone (the others go at once)."""
    pending = [(o['kind'], o['namespace'], o['name']) for o in deleted if o['kind'] in ('Deployment', 'Namespace')]
    deadline = clock() + timeout
    while pending:
        pending = [k for k in pending
                   if cluster.get(resource_path(k[0], k[1] or None, k[2], networking_version), ObjectRef(*k)) is not None]
        if not pending:
            return
        if clock() >= deadline:
            raise MeshlinkError('Still there after %ds in %s: %s' % (timeout, cluster.context,
                                                                     ', '.join(describe_key(k) for k in pending)))
        sleep(1)
