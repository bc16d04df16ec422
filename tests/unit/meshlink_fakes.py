# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Test doubles and seed data shared by the unit tests.

``FakeCluster`` stands in for ``_client.Cluster`` at its verb level (get/list/apply/...):
an in-memory object store that behaves like the API server where the logic depends on it
(404 as None, label selectors, resourceVersion bumps only on real changes, 409 on a stale
resourceVersion, dry run that stores nothing). Every call is recorded, so tests can assert
that bad input made no call and that a second run wrote nothing.

Opt-in hooks (unset, the fake behaves as before):
  ``apply_managers``  path -> other field managers owning fields an apply to that path sets:
                      an apply without force raises ``ApplyConflict`` naming them (the API
                      server's 409), a forced one takes the fields over (the entry goes).
  ``request``         the raw GETs ``_teardown`` sends: aggregated discovery of ``/api`` and
                      ``/apis`` (``DISCOVERY`` plus the served Istio group) and metadata-only
                      lists of a namespaced collection; ``request_errors`` (path -> ApiError)
                      makes chosen paths fail.

``CurrentFakeCluster`` (opt-in subclass) adds what the multi-network runs use: the cluster's
identity, metadata-only reads of one object, the TokenRequest, merge patches of labels.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, ApplyConflict

WRITE_VERBS = ('create', 'replace', 'delete', 'apply')

# The seed's objects (000_68559be6559f3dab.txt), as the API returns them, with the gateway
# address placeholder filled in.
SEED_GATEWAY = '192.0.2.10'
SEED_VIP = '127.255.0.2'
SEED_SIDECAR_SPEC = {
    'hosts': ['httpbin.bar.global'],
    'location': 'MESH_INTERNAL',
    'ports': [{'name': 'http1', 'number': 8000, 'protocol': 'http'}],
    'resolution': 'DNS',
    'addresses': [SEED_VIP],
    'endpoints': [{'address': SEED_GATEWAY, 'ports': {'http1': 15443}}],
}
SEED_EGRESS_ENDPOINTS = [
    {'address': SEED_GATEWAY, 'network': 'external', 'ports': {'http1': 15443}},
    {'address': 'istio-egressgateway.istio-system.svc.cluster.local', 'ports': {'http1': 15443}},
]
SEED_VERSIONED_ENDPOINTS = [
    {'address': SEED_GATEWAY, 'labels': {'version': 'beta', 'some': 'thing', 'foo': 'bar'}, 'ports': {'http1': 15443}},
]


def seed_service(**overrides: Any) -> Dict[str, Any]:
    """The seed's httpbin in cluster2's ``bar``, consumed from cluster1's ``foo`` (raw inventory form)."""
    service = {'name': 'httpbin', 'namespace': 'bar', 'cluster': 'cluster2',
               'consumers': [{'cluster': 'cluster1', 'namespace': 'foo'}]}
    service.update(overrides)
    return service


def _split(path: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``(plural, namespace, name)`` of an API path built by ``_client.core_path/group_path``."""
    parts = path.strip('/').split('/')
    parts = parts[2:] if parts[0] == 'api' else parts[3:]
    namespace = None
    if parts and parts[0] == 'namespaces' and len(parts) >= 3:
        namespace = parts[1]
        parts = parts[2:]
    if parts[0] == 'namespaces' and len(parts) == 2:
        return 'namespaces', None, parts[1]
    return parts[0], namespace, parts[1] if len(parts) > 1 else None


def _matches(obj: Dict[str, Any], selector: Optional[str]) -> bool:
    if not selector:
        return True
    labels = (obj.get('metadata') or {}).get('labels') or {}
    for term in selector.split(','):
        key, _separator, value = term.partition('=')
        if labels.get(key) != value:
            return False
    return True


# What ``request('GET', '/api' | '/apis')`` discovers: group -> (version, namespaced plurals).
DISCOVERY = {
    '': ('v1', ('configmaps', 'endpoints', 'events', 'pods', 'secrets', 'serviceaccounts', 'services')),
    'apps': ('v1', ('deployments',)),
    'coordination.k8s.io': ('v1', ('leases',)),
}
ISTIO_DISCOVERED = ('destinationrules', 'gateways', 'serviceentries', 'virtualservices')


class FakeCluster:
    """In-memory stand-in for ``_client.Cluster`` (see the module docstring)."""

    def __init__(self, objects: Optional[List[Tuple[str, Dict[str, Any]]]] = None,
                 served: Optional[Dict[str, List[str]]] = None, dry_run: bool = False,
                 context: str = 'fake') -> None:
        self.context = context
        self.dry_run = dry_run
        self.warnings: List[str] = []
        self.calls: List[Tuple[str, str]] = []
        self.served = {'networking.istio.io': ['v1alpha3', 'v1beta1', 'v1']} if served is None else served
        self.store: Dict[Tuple[str, Optional[str], str], Dict[str, Any]] = {}
        self._version = 100
        self.fail_next: Dict[str, ApiError] = {}
        self.apply_managers: Dict[str, List[str]] = {}
        self.request_errors: Dict[str, ApiError] = {}
        for plural, obj in objects or []:
            self.put(plural, obj)

    # -- helpers for tests ---------------------------------------------------------------

    def put(self, plural: str, obj: Dict[str, Any]) -> Dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault('metadata', {})
        self._version += 1
        meta['resourceVersion'] = str(self._version)
        meta.setdefault('uid', 'uid-%d' % self._version)
        self.store[(plural, meta.get('namespace'), meta['name'])] = obj
        return obj

    def writes(self) -> List[Tuple[str, str]]:
        return [call for call in self.calls if call[0] in WRITE_VERBS]

    def objects(self, plural: str) -> List[Dict[str, Any]]:
        return [obj for (kind, _ns, _name), obj in sorted(self.store.items(), key=lambda i: str(i[0])) if kind == plural]

    # -- the Cluster interface -----------------------------------------------------------

    def _record(self, verb: str, path: str) -> None:
        self.calls.append((verb, path))
        if verb in self.fail_next:
            raise self.fail_next.pop(verb)

    def served_versions(self, group: str) -> List[str]:
        self._record('discover', '/apis')
        return list(self.served.get(group, []))

    def networking_version(self) -> str:
        from ansible_collections.meshlink.multicluster.plugins.module_utils._client import newest_version
        version = newest_version(self.served.get('networking.istio.io', []))
        if version is None:
            raise ApiError('Context %s does not serve the networking.istio.io API' % self.context, status=404)
        return version

    def server_version(self) -> Dict[str, Any]:
        self._record('read', '/version')
        return {'gitVersion': 'v1.36.1'}

    def get(self, path: str, what: Any) -> Optional[Dict[str, Any]]:
        self._record('get', path)
        plural, namespace, name = _split(path)
        obj = self.store.get((plural, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, path: str, what: Any, label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        self._record('list', path)
        plural, namespace, _name = _split(path)
        return [copy.deepcopy(obj) for (kind, ns, _n), obj in sorted(self.store.items(), key=lambda i: str(i[0]))
                if kind == plural and (namespace is None or ns == namespace) and _matches(obj, label_selector)]

    def create(self, path: str, body: Dict[str, Any], what: Any) -> Dict[str, Any]:
        self._record('create', path)
        plural, namespace, _name = _split(path)
        key = (plural, namespace, body['metadata']['name'])
        if key in self.store:
            raise ApiError('Could not create %s: already exists' % (what,), status=409, reason='AlreadyExists')
        return copy.deepcopy(body) if self.dry_run else self.put(plural, body)

    def replace(self, path: str, body: Dict[str, Any], what: Any) -> Dict[str, Any]:
        self._record('replace', path)
        plural, namespace, name = _split(path)
        current = self.store.get((plural, namespace, name))
        if current is None:
            raise ApiError('Could not replace %s: not found' % (what,), status=404, reason='NotFound')
        wanted = body['metadata'].get('resourceVersion')
        if wanted and wanted != current['metadata']['resourceVersion']:
            raise ApiError('Could not replace %s: the object has been modified' % (what,), status=409,
                           reason='Conflict')
        return copy.deepcopy(body) if self.dry_run else self.put(plural, body)

    def delete(self, path: str, what: Any, resource_version: Optional[str] = None, uid: Optional[str] = None) -> bool:
        self._record('delete', path)
        plural, namespace, name = _split(path)
        current = self.store.get((plural, namespace, name))
        if current is None:
            return False
        if resource_version and resource_version != current['metadata']['resourceVersion']:
            raise ApiError('Could not delete %s: precondition failed' % (what,), status=409, reason='Conflict')
        if uid and uid != current['metadata'].get('uid'):
            raise ApiError('Could not delete %s: precondition failed (uid)' % (what,), status=409, reason='Conflict')
        if not self.dry_run:
            del self.store[(plural, namespace, name)]
        return True

    def apply(self, path: str, body: Dict[str, Any], what: Any, force: bool = True) -> Dict[str, Any]:
        """Server-side apply as far as the logic sees it: our fields replace, others' stay."""
        self._record('apply', path)
        managers = self.apply_managers.get(path)
        if managers:
            if not force:
                conflicts = [{'manager': m, 'api_version': body.get('apiVersion'), 'field': '.spec'} for m in managers]
                raise ApplyConflict('Could not apply %s in context %s: conflicts with %s' % (
                    what, self.context, ', '.join(managers)), conflicts=conflicts)
            if not self.dry_run:
                del self.apply_managers[path]
        plural, namespace, name = _split(path)
        current = self.store.get((plural, namespace, name))
        merged = copy.deepcopy(current) if current else {'metadata': {'name': name, 'namespace': namespace}}
        merged['apiVersion'] = body['apiVersion']
        merged['kind'] = body['kind']
        merged.setdefault('metadata', {}).setdefault('labels', {}).update(body['metadata'].get('labels') or {})
        merged_spec = dict(merged.get('spec') or {})
        merged_spec.update(body.get('spec') or {})
        merged['spec'] = merged_spec
        if current is not None and json.dumps(merged, sort_keys=True) == json.dumps(current, sort_keys=True):
            return copy.deepcopy(current)  # a no-op apply keeps the resourceVersion
        if self.dry_run:
            return merged
        return self.put(plural, merged)

    def request(self, method: str, path: str, what: Any, verb: str, query: Optional[Dict[str, Any]] = None,
                body: Any = None, content_type: str = 'application/json',
                accept: str = 'application/json') -> Optional[Dict[str, Any]]:
        """Raw GETs (see the module docstring): discovery and metadata-only lists."""
        self._record(verb, path)
        if path in self.request_errors:
            raise self.request_errors[path]
        if method != 'GET':
            raise NotImplementedError('FakeCluster.request only answers GET, not %s %s' % (method, path))
        if path in ('/api', '/apis'):
            groups = {g: v for g, v in DISCOVERY.items() if (g == '') == (path == '/api')}
            istio = self.served.get('networking.istio.io') or []
            if path == '/apis' and istio:
                from ansible_collections.meshlink.multicluster.plugins.module_utils._client import newest_version
                groups['networking.istio.io'] = (newest_version(istio), ISTIO_DISCOVERED)
            return {'kind': 'APIGroupDiscoveryList', 'items': [
                {'metadata': {'name': group}, 'versions': [{'version': version, 'resources': [
                    {'resource': plural, 'scope': 'Namespaced', 'verbs': ['get', 'list', 'delete']}
                    for plural in plurals]}]}
                for group, (version, plurals) in sorted(groups.items())]}
        plural, namespace, _name = _split(path)
        return {'kind': 'PartialObjectMetadataList', 'items': [
            {'metadata': copy.deepcopy(obj.get('metadata') or {})}
            for (kind, ns, _n), obj in sorted(self.store.items(), key=lambda i: str(i[0]))
            if kind == plural and ns == namespace]}


class CurrentFakeCluster(FakeCluster):
    """A FakeCluster for the multi-network topologies (opt-in: the seed-era tests keep theirs).

    Adds what ``_multinet_flow`` needs beyond the verbs above:
      ``identity()``  ``{server, kube_system_uid}``
      ``request``     a metadata-only GET of one object (404 as ApiError), metadata-only lists
                      that honour ``query['labelSelector']`` (paths read metadata-only are
                      recorded in ``metadata_reads``), the TokenRequest POST
                      (``.../serviceaccounts/<name>/token``: a new token per call, recorded in
                      ``minted``; 404 when the ServiceAccount does not exist), and a merge PATCH
                      of labels and annotations (``dryRun`` honoured)
      ``apply``       also sets annotations and the top-level fields a Secret or an RBAC object
                      carries (``data``, ``type``, ``rules``, ``roleRef``, ``subjects``), as the
                      server-side apply of those fields does
    """

    TOP_LEVEL = ('data', 'type', 'rules', 'roleRef', 'subjects')

    def __init__(self, *args: Any, server: str = 'https://fake.example:6443', kube_system_uid: str = 'uid-kube-system',
                 token_expires: str = '2030-01-01T00:00:00Z', **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.kube_system_uid = kube_system_uid
        self.token_expires = token_expires
        self.minted: List[Tuple[str, str, Dict[str, Any]]] = []  # (namespace, ServiceAccount, TokenRequest spec)
        self.metadata_reads: List[str] = []

    def identity(self) -> Dict[str, Any]:
        self._record('read', '/api/v1/namespaces/kube-system')
        return {'server': self.server, 'kube_system_uid': self.kube_system_uid}

    def apply(self, path: str, body: Dict[str, Any], what: Any, force: bool = True) -> Dict[str, Any]:
        extra = {k: copy.deepcopy(body[k]) for k in self.TOP_LEVEL if k in body}
        annotations = (body.get('metadata') or {}).get('annotations') or {}
        if not extra and not annotations:
            return super().apply(path, body, what, force)
        plural, namespace, name = _split(path)
        before = copy.deepcopy(self.store.get((plural, namespace, name)))
        dry_run, self.dry_run = self.dry_run, True  # let the base merge labels and spec without storing
        try:
            merged = super().apply(path, body, what, force)
        finally:
            self.dry_run = dry_run
        merged = copy.deepcopy(merged)
        merged['metadata'].setdefault('annotations', {}).update(annotations)
        merged.update(extra)
        if before is not None and json.dumps(merged, sort_keys=True) == json.dumps(before, sort_keys=True):
            return before
        return merged if self.dry_run else self.put(plural, merged)

    def request(self, method: str, path: str, what: Any, verb: str, query: Optional[Dict[str, Any]] = None,
                body: Any = None, content_type: str = 'application/json',
                accept: str = 'application/json') -> Optional[Dict[str, Any]]:
        if path in ('/api', '/apis'):
            return super().request(method, path, what, verb, query, body, content_type, accept)
        self._record(verb, path)
        if path in self.request_errors:
            raise self.request_errors[path]
        if 'as=PartialObjectMetadata' in accept:
            self.metadata_reads.append(path)
        query = query or {}
        if method == 'POST' and path.endswith('/token'):
            plural, namespace, name = _split(path[:-len('/token')])
            if (plural, namespace, name) not in self.store:
                raise ApiError('Could not request %s: serviceaccounts "%s" not found' % (what, name), status=404,
                               reason='NotFound')
            self.minted.append((namespace or '', name or '', copy.deepcopy((body or {}).get('spec') or {})))
            return {'status': {'token': 'token-%d-for-%s' % (len(self.minted), name),
                               'expirationTimestamp': self.token_expires}}
        plural, namespace, name = _split(path)
        if method == 'PATCH':
            current = self.store.get((plural, namespace, name))
            if current is None:
                raise ApiError('Could not patch %s: not found' % (what,), status=404, reason='NotFound')
            patched = copy.deepcopy(current)
            for field in ('labels', 'annotations'):
                change = ((body or {}).get('metadata') or {}).get(field) or {}
                values = patched['metadata'].setdefault(field, {})
                for key, value in change.items():
                    if value is None:
                        values.pop(key, None)
                    else:
                        values[key] = value
            return patched if query.get('dryRun') == 'All' or self.dry_run else self.put(plural, patched)
        if method != 'GET':
            raise NotImplementedError('CurrentFakeCluster.request does not answer %s %s' % (method, path))
        if name is not None:
            obj = self.store.get((plural, namespace, name))
            if obj is None:
                raise ApiError('Could not read %s: not found' % (what,), status=404, reason='NotFound')
            return {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1',
                    'metadata': copy.deepcopy(obj.get('metadata') or {})}
        return {'kind': 'PartialObjectMetadataList', 'items': [
            {'metadata': copy.deepcopy(obj.get('metadata') or {})}
            for (kind, ns, _n), obj in sorted(self.store.items(), key=lambda i: str(i[0]))
            # no namespace in the path: every namespace (as the API lists a namespaced kind cluster-wide)
            if kind == plural and (namespace is None or ns == namespace) and _matches(obj, query.get('labelSelector'))]}
