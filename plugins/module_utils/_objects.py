# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The one write engine: desired objects against what a cluster holds, then the writes.

``plan_changes`` (pure) compares the desired objects with the existing ones and decides, per
object: ``create``, ``update``, ``unchanged``, ``delete`` (an object of ours that is no longer
wanted and that the caller says is in scope), or a *conflict*: an object with a wanted name
that is not this mesh's (a user's, another tool's, another mesh's). Conflicts stop the run
before any write; nothing that is not this mesh's is ever changed or deleted.

``execute`` sends the writes: a create is a POST (so an object that appeared since the cluster
was read is never merged into: the server answers AlreadyExists and the object is compared
again), an update is a server-side apply with field manager ``meshlink`` (no force unless the
user asks: another manager's field is a conflict that names it), a delete carries the uid and
resourceVersion read, as preconditions. Writes of one kind rank run in a small thread pool;
ranks run in order (namespaces before what lives in them, DestinationRules before the
VirtualServices routing to their subsets) and deletes in the reverse order. Check mode sends
every write with ``dryRun=All``, so the server validates what a real run would write.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path, group_path, json_copy
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, ApplyConflict, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import FIELD_MANAGER, ISTIO_PLURALS, NETWORKING_GROUP
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    SERVICE_LABEL,
    is_access_object,
    is_ours,
    labels_of,
    owner_of,
)

Key = Tuple[str, str, str]  # kind, namespace ('' when cluster-scoped), name

# kind -> (api group, version, plural, namespaced). Istio kinds use the served version.
RESOURCES: Dict[str, Tuple[str, str, str, bool]] = {
    'Namespace': ('', 'v1', 'namespaces', False),
    'ServiceAccount': ('', 'v1', 'serviceaccounts', True),
    'Service': ('', 'v1', 'services', True),
    'ConfigMap': ('', 'v1', 'configmaps', True),
    'Secret': ('', 'v1', 'secrets', True),
    'Deployment': ('apps', 'v1', 'deployments', True),
    'ClusterRole': ('rbac.authorization.k8s.io', 'v1', 'clusterroles', False),
    'ClusterRoleBinding': ('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', False),
    'Role': ('rbac.authorization.k8s.io', 'v1', 'roles', True),
    'RoleBinding': ('rbac.authorization.k8s.io', 'v1', 'rolebindings', True),
}
for _kind, _plural in ISTIO_PLURALS.items():
    RESOURCES[_kind] = (NETWORKING_GROUP, '', _plural, True)

# Write order: what others refer to first. Deletes run in the reverse order.
RANKS = {
    'Namespace': 0,
    'ServiceAccount': 1, 'ConfigMap': 1, 'Secret': 1, 'ClusterRole': 1, 'Role': 1,
    'ClusterRoleBinding': 2, 'RoleBinding': 2,
    'Service': 3, 'Deployment': 4,
    'Gateway': 5, 'DestinationRule': 5, 'ServiceEntry': 6, 'VirtualService': 7,
}
VOLATILE_METADATA = ('managedFields', 'resourceVersion', 'generation', 'uid', 'creationTimestamp', 'selfLink')
DEFAULT_WORKERS = 4


def object_key(obj: Dict[str, Any]) -> Key:
    metadata = obj.get('metadata') or {}
    return obj.get('kind', ''), metadata.get('namespace', '') or '', metadata.get('name', '')


def describe_key(key: Key) -> str:
    kind, namespace, name = key
    return '%s %s/%s' % (kind, namespace, name) if namespace else '%s %s' % (kind, name)


def resource_path(kind: str, namespace: Optional[str] = None, name: Optional[str] = None,
                  networking_version: Optional[str] = None) -> str:
    group, version, plural, namespaced = RESOURCES[kind]
    if group == NETWORKING_GROUP:
        version = networking_version or 'v1'
    if not namespaced:
        namespace = None
    if not group:
        return core_path(plural, namespace, name)
    return group_path(group, version, plural, namespace, name)


def strip_object(obj: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The object without server bookkeeping, for diffs and comparisons."""
    if not obj:
        return {}
    result = json_copy(obj)
    metadata = result.get('metadata') or {}
    for field in VOLATILE_METADATA:
        metadata.pop(field, None)
    result.pop('status', None)
    return result


def contains(have: Any, want: Any) -> bool:
    """True when ``have`` holds everything ``want`` sets (mappings recursively, lists item by item,
    same length): the server adds defaults (a Deployment's strategy, a container's
    terminationMessagePath) that are not ours to compare."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(contains(h, w) for h, w in zip(have, want))
    return have == want


class Desired:
    """One object a run wants, with how to compare it.

    ``compare``: ``spec`` (the stored spec must equal ours: the Istio objects, whose spec is
    entirely ours), ``contains`` (the stored object must hold what we set: workloads and the
    other Kubernetes kinds), or ``labels`` (only our labels; a namespace that is not ours gets
    ``istio-injection`` added and nothing else). ``owned=False`` marks that last case: the
    object need not be this mesh's.
    """

    def __init__(self, obj: Dict[str, Any], compare: str = 'contains', owned: bool = True) -> None:
        self.obj = obj
        self.key = object_key(obj)
        self.compare = compare
        self.owned = owned


def differs(desired: Desired, existing: Dict[str, Any]) -> bool:
    want_meta = desired.obj.get('metadata') or {}
    have_meta = existing.get('metadata') or {}
    for field in ('labels', 'annotations'):
        want = want_meta.get(field) or {}
        have = have_meta.get(field) or {}
        if any(have.get(k) != v for k, v in want.items()):
            return True
    if desired.compare == 'labels':
        return False
    if desired.compare == 'spec':
        return existing.get('spec') != desired.obj.get('spec')
    body = {k: v for k, v in desired.obj.items() if k not in ('apiVersion', 'kind', 'metadata')}
    return not contains(existing, body)


class Change:
    """What ``execute`` does for one object."""

    def __init__(self, action: str, key: Key, desired: Optional[Desired] = None,
                 existing: Optional[Dict[str, Any]] = None) -> None:
        self.action = action  # create | update | unchanged | delete
        self.key = key
        self.desired = desired
        self.existing = existing


def plan_changes(desired: Sequence[Desired], existing: Dict[Key, Dict[str, Any]], mesh: str,
                 prunable: Optional[Callable[[Key, Dict[str, Any]], bool]] = None) -> Tuple[List[Change], List[str]]:
    """Changes to make and conflicts that forbid any write (pure).

    ``existing``: every object found under the keys that matter (ours and others'). An object of
    this mesh that is not desired is deleted when ``prunable(key, obj)`` says it is in scope.
    """
    changes: List[Change] = []
    conflicts: List[str] = []
    wanted = set()
    for item in desired:
        wanted.add(item.key)
        current = existing.get(item.key)
        if current is None:
            changes.append(Change('create', item.key, item))
            continue
        if item.owned:
            if not is_ours(current, mesh):
                conflicts.append('%s exists and %s: it is never overwritten - rename or delete it'
                                 % (describe_key(item.key), owner_of(current)))
                continue
            want_part = labels_of(item.obj).get(SERVICE_LABEL)
            have_part = labels_of(current).get(SERVICE_LABEL)
            if want_part and have_part and want_part != have_part:
                conflicts.append('%s belongs to %s, not %s - two services map to this name; rename one'
                                 % (describe_key(item.key), have_part, want_part))
                continue
        changes.append(Change('update' if differs(item, current) else 'unchanged', item.key, item, current))
    if prunable is not None:
        for key in sorted(existing):
            obj = existing[key]
            # Grants of the access playbook are an administrator's: only cluster_access removes them.
            if key not in wanted and is_ours(obj, mesh) and not is_access_object(obj) and prunable(key, obj):
                changes.append(Change('delete', key, existing=obj))
    return changes, conflicts


def _past(action: str, check_mode: bool) -> str:
    return {'create': 'would_create', 'update': 'would_update', 'delete': 'would_delete'}[action] if check_mode \
        else {'create': 'created', 'update': 'updated', 'delete': 'deleted'}[action]


def _diff(key: Key, before: Optional[Dict[str, Any]], after: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    header = describe_key(key)
    sides = []
    for obj in (before, after):
        side = strip_object(obj)
        side.pop('apiVersion', None)  # list items carry none; the header names the object
        sides.append(side)
    return {'before_header': header, 'after_header': header, 'before': sides[0], 'after': sides[1]}


class Outcome:
    """What ``execute`` did: ``objects`` (kind, namespace, name, action), ``diff``, ``warnings``."""

    def __init__(self) -> None:
        self.objects: List[Dict[str, str]] = []
        self.diff: List[Dict[str, Any]] = []
        self.warnings: List[str] = []
        self.changed = False

    def record(self, key: Key, action: str, before: Optional[Dict[str, Any]] = None,
               after: Optional[Dict[str, Any]] = None) -> None:
        self.objects.append({'kind': key[0], 'namespace': key[1], 'name': key[2], 'action': action})
        if action not in ('unchanged', 'kept'):
            self.changed = True
            self.diff.append(_diff(key, before, after))


class Writer:
    """Sends the changes of one cluster (see the module docstring)."""

    def __init__(self, cluster: Any, mesh: str, networking_version: Optional[str] = None,
                 force_conflicts: bool = False, workers: int = DEFAULT_WORKERS) -> None:
        self.cluster = cluster
        self.mesh = mesh
        self.networking_version = networking_version
        self.force_conflicts = force_conflicts
        self.workers = max(1, int(workers))
        self.check_mode = bool(getattr(cluster, 'dry_run', False))

    def path(self, key: Key, with_name: bool = True) -> str:
        return resource_path(key[0], key[1] or None, key[2] if with_name else None, self.networking_version)

    def _body(self, desired: Desired) -> Dict[str, Any]:
        body = json_copy(desired.obj)
        group, version, _plural, _namespaced = RESOURCES[desired.key[0]]
        if group == NETWORKING_GROUP:
            version = self.networking_version or 'v1'
        body['apiVersion'] = '%s/%s' % (group, version) if group else version
        return body

    def _create(self, change: Change, outcome: Outcome) -> None:
        key = change.key
        body = self._body(change.desired)
        try:
            answer = self.cluster.create(self.path(key, with_name=False), body, ObjectRef(*key))
        except ApiError as error:
            if error.status == 409:
                # Appeared since the cluster was read: compare it like any existing object.
                current = self.cluster.get(self.path(key), ObjectRef(*key))
                if current is None:
                    raise
                again, conflicts = plan_changes([change.desired], {key: current}, self.mesh)
                if conflicts:
                    raise MeshlinkError('Stopped in %s: %s' % (self.cluster.context, conflicts[0])) from error
                self._run(again[0], outcome)
                return
            if not (self.check_mode and error.status == 404 and key[1]):
                raise
            # Check mode of a whole setup: the namespace is created by a step that only
            # pretended to, so the server cannot dry-run into it. Predict the create.
            outcome.warnings.append('%s: namespace %s does not exist yet; the create is predicted without a '
                                    'server-side dry run' % (describe_key(key), key[1]))
            answer = None
        outcome.record(key, _past('create', self.check_mode), None, answer or body)

    def _update(self, change: Change, outcome: Outcome) -> None:
        key = change.key
        body = self._body(change.desired)
        try:
            answer = self.cluster.apply(self.path(key), body, ObjectRef(*key), force=self.force_conflicts)
        except ApplyConflict as conflict:
            if set(conflict.managers) != {FIELD_MANAGER}:
                raise
            # The fields are ours already: this run's creates are POSTs (so they can never merge
            # into an object that appeared meanwhile), which the server records as an update by
            # "meshlink"; the first apply takes them over from ourselves, nobody else's.
            answer = self.cluster.apply(self.path(key), body, ObjectRef(*key), force=True)
        current = change.existing or {}
        same_version = (answer or {}).get('metadata', {}).get('resourceVersion') == \
            current.get('metadata', {}).get('resourceVersion')
        if (same_version and not self.check_mode) or strip_object(answer) == strip_object(current):
            # Applied, but the server changed nothing: what we set is held, other managers'
            # fields made the stored object look different.
            outcome.record(key, 'unchanged')
            return
        outcome.record(key, _past('update', self.check_mode), current, answer or body)

    def _delete(self, change: Change, outcome: Outcome) -> None:
        key = change.key
        metadata = (change.existing or {}).get('metadata') or {}
        try:
            gone = self.cluster.delete(self.path(key), ObjectRef(*key),
                                       resource_version=metadata.get('resourceVersion'), uid=metadata.get('uid'))
        except ApiError as error:
            if error.status != 403:
                raise
            # Ours, listed through a cluster-wide read, in a namespace this account was never
            # granted (or no longer is): what it may write is done; this one waits for someone who may.
            outcome.warnings.append('%s is no longer wanted but was kept: this account may not delete it there (%s) - '
                                    'grant its namespace (access.yml, meshlink_access_extra_namespaces) or delete it '
                                    'as an administrator' % (describe_key(key), error))
            outcome.record(key, 'kept')
            return
        if gone:
            outcome.record(key, _past('delete', self.check_mode), change.existing, None)

    def _run(self, change: Change, outcome: Outcome) -> None:
        if change.action == 'create':
            self._create(change, outcome)
        elif change.action == 'update':
            self._update(change, outcome)
        elif change.action == 'delete':
            self._delete(change, outcome)
        else:
            outcome.record(change.key, 'unchanged')

    def execute(self, changes: Iterable[Change], outcome: Optional[Outcome] = None) -> Outcome:
        """Send ``changes``: writes by rank (deletes in reverse), each rank in the thread pool."""
        outcome = outcome or Outcome()
        changes = list(changes)
        writes = [c for c in changes if c.action in ('create', 'update', 'unchanged')]
        deletes = [c for c in changes if c.action == 'delete']
        groups: List[List[Change]] = []
        for rank in sorted({RANKS.get(c.key[0], 9) for c in writes}):
            groups.append([c for c in writes if RANKS.get(c.key[0], 9) == rank])
        for rank in sorted({RANKS.get(c.key[0], 9) for c in deletes}, reverse=True):
            groups.append([c for c in deletes if RANKS.get(c.key[0], 9) == rank])
        for group in groups:
            self._run_group(group, outcome)
        return outcome

    def _run_group(self, group: List[Change], outcome: Outcome) -> None:
        busy = [c for c in group if c.action != 'unchanged']
        if len(busy) <= 1 or self.workers == 1:
            for change in group:
                self._run(change, outcome)
            return
        # Each change records into its own outcome, merged in the input order afterwards, so
        # the result does not depend on the number of workers or on thread timing.
        parts = [Outcome() for _change in group]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(busy))) as pool:
            futures = [pool.submit(self._run, change, part) for change, part in zip(group, parts)]
        errors = [f.exception() for f in futures if f.exception() is not None]
        for part in parts:
            outcome.objects.extend(part.objects)
            outcome.diff.extend(part.diff)
            outcome.warnings.extend(part.warnings)
            outcome.changed = outcome.changed or part.changed
        if errors:
            done = [o for o in outcome.objects if o['action'] != 'unchanged']
            if done and isinstance(errors[0], MeshlinkError) and not isinstance(errors[0], ApiError):
                raise MeshlinkError('%s (%d object(s) were written before the stop, including writes of the same kind '
                                    'sent at the same time; a rerun converges)' % (errors[0], len(done)))
            raise errors[0]
