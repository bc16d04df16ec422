# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Reads of one cluster for one module run, each made once.

Preflight, the gateway address, the VIP store and the ownership checks all read the same few
collections (the Services and Deployments of istio-system, the Istio objects, ...).
``ClusterReader`` answers them from one request per (path, label selector) and per object,
so the read-only run of a cluster costs one LIST per kind and namespace however many services
the mesh has. ``fresh=True`` skips the cache where the caller polls (a pending load balancer).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path, group_path, json_copy
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import ISTIO_PLURALS, NETWORKING_GROUP


class ClusterReader:
    """A caching reader over a ``_client.Cluster``."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self._lists: Dict[Tuple[str, Optional[str]], List[Dict[str, Any]]] = {}
        self._objects: Dict[str, Optional[Dict[str, Any]]] = {}
        self._version: Optional[Dict[str, Any]] = None
        self._discovered: Dict[str, Optional[str]] = {}

    @property
    def context(self) -> str:
        return self.cluster.context

    # -- what a Cluster answers, so the reader stands in for one in read-only code ------------

    def server_version(self) -> Dict[str, Any]:
        if self._version is None:
            self._version = self.cluster.server_version()
        return self._version

    def served_versions(self, group: str) -> List[str]:
        return self.cluster.served_versions(group)

    def networking_version(self) -> str:
        """The newest served networking.istio.io version; raises when Istio's API is not served."""
        return self.cluster.networking_version()

    # -- generic ---------------------------------------------------------------------------

    def list(self, path: str, what: ObjectRef, label_selector: Optional[str] = None,
             fresh: bool = False) -> List[Dict[str, Any]]:
        key = (path, label_selector)
        if fresh or key not in self._lists:
            self._lists[key] = self.cluster.list(path, what, label_selector=label_selector)
        return json_copy(self._lists[key])

    def get(self, path: str, what: ObjectRef, fresh: bool = False) -> Optional[Dict[str, Any]]:
        if fresh or path not in self._objects:
            self._objects[path] = self.cluster.get(path, what)
        return json_copy(self._objects[path])

    # -- the collections the collection reads ----------------------------------------------

    def services(self, namespace: str, label_selector: Optional[str] = None, fresh: bool = False):
        return self.list(core_path('services', namespace), ObjectRef('Service', namespace), label_selector, fresh)

    def deployments(self, namespace: str) -> List[Dict[str, Any]]:
        return self.list(group_path('apps', 'v1', 'deployments', namespace), ObjectRef('Deployment', namespace))

    def nodes(self) -> List[Dict[str, Any]]:
        return self.list(core_path('nodes'), ObjectRef('Node'))

    def configmap(self, namespace: str, name: str) -> Optional[Dict[str, Any]]:
        return self.get(core_path('configmaps', namespace, name), ObjectRef('ConfigMap', namespace, name))

    def configmaps(self, namespace: str, label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        return self.list(core_path('configmaps', namespace), ObjectRef('ConfigMap', namespace), label_selector)

    def namespace(self, name: str) -> Optional[Dict[str, Any]]:
        return self.get(core_path('namespaces', name=name), ObjectRef('Namespace', name=name))

    def networking_version_or_none(self) -> Optional[str]:
        """The newest served networking.istio.io version, None when Istio's API is not served."""
        if 'networking' not in self._discovered:
            served = self.cluster.served_versions(NETWORKING_GROUP)
            self._discovered['networking'] = self.cluster.networking_version() if served else None
        return self._discovered['networking']

    def istio_objects(self, kind: str, namespace: Optional[str] = None,
                      label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        """Objects of an Istio networking kind (all namespaces by default); [] without Istio's API."""
        version = self.networking_version_or_none()
        if version is None:
            return []
        items = self.list(group_path(NETWORKING_GROUP, version, ISTIO_PLURALS[kind], namespace),
                          ObjectRef(kind, namespace), label_selector)
        for item in items:
            item.setdefault('kind', kind)
        return items
