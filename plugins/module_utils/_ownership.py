# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Who owns an object: the labels the collection writes and the one rule that reads them.

Every object the collection creates carries

  app.kubernetes.io/managed-by: meshlink     the collection made it
  meshlink.io/mesh: <mesh>                   which mesh (inventory) it belongs to
  multicluster.meshlink.io/service: <name>.<namespace>   (or a component name) what it serves

and every list, prune and delete is scoped by the first two (``mesh_selector``), so two
inventories (two meshes) on the same clusters never see, change or delete each other's
objects, and nothing a user made is ever touched. ``owner_of`` says who an object belongs
to in words, for the refusals ("belongs to mesh blue", "not made by meshlink").

Pure Python: no Ansible, no kubernetes client.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
MANAGED_BY_VALUE = 'meshlink'
MESH_LABEL = 'meshlink.io/mesh'
SERVICE_LABEL = 'multicluster.meshlink.io/service'
COMPONENT_LABEL = 'meshlink.io/component'

DEFAULT_MESH = 'default'

# Values of COMPONENT_LABEL (and of SERVICE_LABEL for objects that serve no single service).
VIP_STORE = 'vip-store'
SAMPLE_APPS = 'sample-apps'
NAMESPACE = 'namespace'
ACCESS = 'access'


def labels_of(obj: Optional[Dict[str, Any]]) -> Dict[str, str]:
    return ((obj or {}).get('metadata') or {}).get('labels') or {}


def mesh_selector(mesh: str) -> str:
    """Label selector of everything of one mesh: ``managed-by=meshlink,meshlink.io/mesh=<mesh>``."""
    return '%s=%s,%s=%s' % (MANAGED_BY_LABEL, MANAGED_BY_VALUE, MESH_LABEL, mesh)


def managed_selector() -> str:
    """Selector of everything the collection made, whatever the mesh (read-only uses only)."""
    return '%s=%s' % (MANAGED_BY_LABEL, MANAGED_BY_VALUE)


def ownership_labels(mesh: str, part: Optional[str] = None) -> Dict[str, str]:
    """The labels that make an object this mesh's; ``part`` is the service key or component."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, MESH_LABEL: mesh}
    if part:
        labels[SERVICE_LABEL] = part
    return labels


def is_meshlink(obj: Optional[Dict[str, Any]]) -> bool:
    """Made by the collection (any mesh)."""
    return labels_of(obj).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def is_ours(obj: Optional[Dict[str, Any]], mesh: str) -> bool:
    """Made by the collection for this mesh: the only objects a run may change or delete."""
    labels = labels_of(obj)
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(MESH_LABEL) == mesh


def owner_of(obj: Optional[Dict[str, Any]]) -> str:
    """Whose an object is, as the end of "<object> exists and ...": ``belongs to mesh blue``,
    ``was not made by meshlink (no ... label)``; for messages only."""
    labels = labels_of(obj)
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        other = labels.get(MANAGED_BY_LABEL)
        if other:
            return 'was not made by meshlink (%s=%s)' % (MANAGED_BY_LABEL, other)
        return 'was not made by meshlink (no %s=%s label)' % (MANAGED_BY_LABEL, MANAGED_BY_VALUE)
    mesh = labels.get(MESH_LABEL)
    if not mesh:
        return ('was made by meshlink 0.1.0, without a %s label (label it %s=<mesh> to adopt it, or delete it)'
                % (MESH_LABEL, MESH_LABEL))
    return 'belongs to mesh %s' % mesh


def is_access_object(obj: Optional[Dict[str, Any]]) -> bool:
    """Provisioned by the access playbook (an administrator's grant): a setup or teardown never
    deletes it, and a namespace holding it is kept."""
    return labels_of(obj).get(COMPONENT_LABEL) == ACCESS


def part_of(obj: Optional[Dict[str, Any]]) -> Optional[str]:
    """The service key (or component) an object of ours serves."""
    return labels_of(obj).get(SERVICE_LABEL)
