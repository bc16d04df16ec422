# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Names the collection shares with its roles, the lab and the docs (docs/architecture.md).

Labels, field manager, object names and the Kubernetes/Istio name rules used to validate them
(the rules themselves live in _validate.py). Pure Python: no Ansible, no kubernetes client.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from ansible_collections.meshlink.multicluster.plugins.module_utils import _validate

COLLECTION_VERSION = '0.2.0'  # kept equal to galaxy.yml by tests/unit (test_client.py)

FIELD_MANAGER = 'meshlink'
MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
MANAGED_BY_VALUE = 'meshlink'
SERVICE_LABEL = 'multicluster.meshlink.io/service'
MANAGED_SELECTOR = '%s=%s' % (MANAGED_BY_LABEL, MANAGED_BY_VALUE)

ISTIO_NAMESPACE = 'istio-system'
NETWORKING_GROUP = 'networking.istio.io'
GLOBAL_SUFFIX = '.global'
EGRESS_GATEWAY_HOST = 'istio-egressgateway.istio-system.svc.cluster.local'
# The multicluster gateway port: the SNI-aware AUTO_PASSTHROUGH listener of every gateway.
MULTICLUSTER_GATEWAY_PORT = 15443

# kind -> plural resource name of the Istio objects the collection reads or writes.
ISTIO_PLURALS = {
    'ServiceEntry': 'serviceentries',
    'VirtualService': 'virtualservices',
    'DestinationRule': 'destinationrules',
    'Gateway': 'gateways',
}

# ``<name>.<namespace>.global``: used with fullmatch (``$`` would accept a trailing newline).
_GLOBAL_HOST = re.compile(r'([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.global')

# The Kubernetes name rules, exact (fullmatch, ASCII only, no strip): see _validate.py. Kept
# importable from here for the callers that know them by this module.
dns1123_label_problem = _validate.dns1123_label_problem
dns1123_subdomain_problem = _validate.dns1123_subdomain_problem
label_key_problem = _validate.label_key_problem
label_value_problem = _validate.label_value_problem


def global_host(name: str, namespace: str) -> str:
    """The mesh-wide host of a remote service: ``<name>.<namespace>.global``."""
    return '%s.%s%s' % (name, namespace, GLOBAL_SUFFIX)


def split_global_host(host: Any) -> Optional[tuple]:
    """``(name, namespace)`` of a ``<name>.<namespace>.global`` host, or None if it is not one."""
    if not isinstance(host, str):
        return None
    match = _GLOBAL_HOST.fullmatch(host)
    if not match or len(match.group(1)) > 63 or len(match.group(2)) > 63:
        return None
    return match.group(1), match.group(2)


def service_key(name: str, namespace: str) -> str:
    """Value of the ``multicluster.meshlink.io/service`` label: ``<name>.<namespace>``."""
    return '%s.%s' % (name, namespace)


def object_labels(name: str, namespace: str) -> Dict[str, str]:
    """The labels on every object the collection creates for one remote service."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, SERVICE_LABEL: service_key(name, namespace)}


def service_entry_name(name: str, namespace: str) -> str:
    """ServiceEntry name in a consumer cluster: ``<name>-<namespace>`` (the seed's httpbin-bar)."""
    return '%s-%s' % (name, namespace)


def global_rule_name(name: str, namespace: str) -> str:
    """VirtualService / DestinationRule name for the ``.global`` host in a consumer cluster."""
    return '%s-%s-global' % (name, namespace)


def local_rule_name(name: str, namespace: str) -> str:
    """DestinationRule name for the local service in the source cluster."""
    return '%s-%s-local' % (name, namespace)


def is_managed(obj: Dict[str, Any]) -> bool:
    """True when the object carries ``app.kubernetes.io/managed-by=meshlink``."""
    labels = (obj.get('metadata') or {}).get('labels') or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
