# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The Ansible side of every module: argument spec merging, result shaping and error mapping.

Kept apart from the logic so that the logic imports without Ansible.

Every result of :func:`run_with_cluster` has ``cluster_identity`` (``{server,
kube_system_uid}``, see ``Cluster.identity``) and ``connection`` (``{context, server,
source}``), and has ``diff`` keys only when the module runs with ``--diff``.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import (
    KUBERNETES_IMPORT_ERROR,
    connection_argument_spec,
    cluster_from_params,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError


# The options of the doc fragment cluster_of_plan: every per-cluster module takes the plan
# (mesh_plan's result) and the inventory host it works for.
PLAN_ARGUMENT_SPEC: Dict[str, Any] = {
    'plan': {'type': 'dict'},
    'cluster': {'type': 'str', 'required': True},
}


def kube_module(argument_spec: Dict[str, Any], **kwargs: Any) -> AnsibleModule:
    """An AnsibleModule with the connection options merged in; fails early without the kubernetes library."""
    spec = connection_argument_spec()
    spec.update(argument_spec)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
    if KUBERNETES_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('kubernetes'),
                         exception=''.join(traceback.format_exception(None, KUBERNETES_IMPORT_ERROR,
                                                                      KUBERNETES_IMPORT_ERROR.__traceback__)))
    return module


def fail(module: AnsibleModule, error: Exception, **result: Any) -> None:
    """fail_json for one of our errors; input errors also return their list as ``errors``."""
    if isinstance(error, InputError):
        module.fail_json(msg=str(error), errors=error.errors, **result)
    module.fail_json(msg=str(error), **result)


def without_diff(result: Dict[str, Any]) -> Dict[str, Any]:
    """``result`` without ``diff`` keys: at the top and in the entries of its lists and mappings
    (``objects[i].diff``, ``results[i].diff``), which is where modules put per-item diffs."""
    cleaned = {key: value for key, value in result.items() if key != 'diff'}
    for key, value in cleaned.items():
        if isinstance(value, list):
            cleaned[key] = [{k: v for k, v in item.items() if k != 'diff'} if isinstance(item, dict) else item
                            for item in value]
        elif isinstance(value, dict):
            cleaned[key] = {k: ({kk: vv for kk, vv in v.items() if kk != 'diff'} if isinstance(v, dict) else v)
                            for k, v in value.items()}
    return cleaned


def shape_result(module: AnsibleModule, result: Dict[str, Any]) -> Dict[str, Any]:
    """The result as the module returns it: ``diff`` only in diff mode (``--diff``)."""
    return result if getattr(module, '_diff', False) else without_diff(result)


def cluster_facts(cluster: Any, fetch: bool = True) -> Tuple[Dict[str, Any], List[str]]:
    """``{cluster_identity, connection}`` of a Cluster for the module result, and warnings.

    ``fetch``: read the identity if it is not known yet (one GET); otherwise (after a failure,
    when the cluster may be unreachable) only what is known. Test doubles without
    ``identity()`` give no facts. Returns ``(facts, warnings)``.
    """
    facts: Dict[str, Any] = {}
    notes = []
    if hasattr(cluster, 'identity'):
        if fetch:
            try:
                facts['cluster_identity'] = cluster.identity()
            except MeshlinkError as error:
                facts['cluster_identity'] = cluster.known_identity()
                notes.append('Could not read the identity of the cluster (namespace kube-system): %s' % error)
        else:
            facts['cluster_identity'] = cluster.known_identity()
    if hasattr(cluster, 'connection_facts'):
        facts['connection'] = cluster.connection_facts()
    return facts, notes


def run_with_cluster(module: AnsibleModule, call: Callable[[Any], Dict[str, Any]]) -> None:
    """Build the cluster client, run ``call(cluster)``, exit with its result or fail with our message.

    ``call`` returns the module result; ``warnings`` in it become module warnings, and a
    ``failed`` result (a check that did not pass) fails with its ``msg`` and every field.
    The connection is resolved as one bundle (``_client.resolve_connection``); its warnings
    (ignored ``K8S_AUTH_*`` variables, ...) become module warnings. ``cluster_identity`` and
    ``connection`` are added to every result once the client exists (after a failure, the
    identity has ``kube_system_uid`` only if it was read before), and ``diff`` keys only
    reach the result in diff mode.
    """
    cluster: Optional[Any] = None
    failure: Optional[MeshlinkError] = None
    result: Dict[str, Any] = {}
    try:
        cluster = cluster_from_params(module.params, check_mode=module.check_mode)
        for text in getattr(cluster, 'connection_warnings', None) or []:
            module.warn(text)
        if not getattr(cluster, 'verify_ssl', True):
            module.warn('TLS certificate verification of the API server is off (validate_certs=false)')
        result = call(cluster)
    except MeshlinkError as error:
        failure = error
    # Failing outside the except block: our errors are complete messages for the user, and
    # ansible-core would otherwise attach the pending exception as an unexpected traceback.
    if failure is not None:
        facts: Dict[str, Any] = {}
        if cluster is not None:
            for text in cluster.warnings:
                module.warn('API server warning: %s' % text)
            facts, _notes = cluster_facts(cluster, fetch=False)
        fail(module, failure, **facts)
    facts, notes = cluster_facts(cluster)
    result.update(facts)
    for text in (result.pop('warnings', []) or []) + notes:
        module.warn(text)
    for text in cluster.warnings:
        module.warn('API server warning: %s' % text)
    result.setdefault('changed', False)
    result = shape_result(module, result)
    if result.get('failed'):
        module.fail_json(**result)
    module.exit_json(**result)
