# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Names the collection shares with its roles, the lab and the docs (docs/architecture.md).

Labels, field manager, object names and the Kubernetes/Istio name rules used to validate them.
Pure Python: no Ansible, no kubernetes client.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

COLLECTION_VERSION = '0.1.0'  # kept equal to galaxy.yml by tests/unit (test_client.py)

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

_DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
_DNS1123_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
_LABEL_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
_GLOBAL_HOST = re.compile(r'^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.global$')


def dns1123_label_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a DNS-1123 label (Kubernetes namespace/Service name), or None."""
    if not isinstance(value, str) or not value:
        return 'must be a non-empty string'
    if len(value) > 63:
        return "'%s' is %d characters long; a DNS-1123 label has at most 63" % (value, len(value))
    if not _DNS1123_LABEL.match(value):
        return ("'%s' is not a DNS-1123 label: use lower case letters, digits and '-', starting and "
                "ending with a letter or digit" % value)
    return None


def dns1123_subdomain_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a DNS-1123 subdomain (label key prefix, object name), or None."""
    if not isinstance(value, str) or not value:
        return 'must be a non-empty string'
    if len(value) > 253:
        return "'%s' is longer than 253 characters" % value
    if not _DNS1123_SUBDOMAIN.match(value):
        return "'%s' is not a DNS-1123 subdomain (lower case letters, digits, '-' and '.')" % value
    return None


def label_key_problem(key: Any) -> Optional[str]:
    """Why ``key`` is not a valid Kubernetes label key (``[prefix/]name``), or None."""
    if not isinstance(key, str) or not key:
        return 'label keys must be non-empty strings'
    prefix, sep, name = key.rpartition('/')
    if sep:
        problem = dns1123_subdomain_problem(prefix)
        if problem:
            return "label key '%s': prefix %s" % (key, problem)
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return ("label key '%s': the name part must be at most 63 characters of letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit" % key)
    return None


def label_value_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a valid Kubernetes label value (may be empty), or None."""
    if not isinstance(value, str):
        return 'label values must be strings'
    if value == '':
        return None
    if len(value) > 63 or not _LABEL_NAME.match(value):
        return ("label value '%s' must be at most 63 characters of letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit" % value)
    return None


def global_host(name: str, namespace: str) -> str:
    """The mesh-wide host of a remote service: ``<name>.<namespace>.global``."""
    return '%s.%s%s' % (name, namespace, GLOBAL_SUFFIX)


def split_global_host(host: Any) -> Optional[tuple]:
    """``(name, namespace)`` of a ``<name>.<namespace>.global`` host, or None if it is not one."""
    if not isinstance(host, str):
        return None
    match = _GLOBAL_HOST.match(host)
    if not match:
        return None
    return match.group(1), match.group(3)


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
