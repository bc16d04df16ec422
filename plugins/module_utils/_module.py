# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The Ansible side of every module: argument spec merging and error mapping.

Kept apart from the logic so that the logic imports without Ansible.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable, Dict, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import (
    KUBERNETES_IMPORT_ERROR,
    connection_argument_spec,
    cluster_from_params,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError


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


def run_with_cluster(module: AnsibleModule, call: Callable[[Any], Dict[str, Any]]) -> None:
    """Build the cluster client, run ``call(cluster)``, exit with its result or fail with our message.

    ``call`` returns the module result; ``warnings`` in it become module warnings, and a
    ``failed`` result (a check that did not pass) fails with its ``msg`` and every field.
    """
    cluster: Optional[Any] = None
    failure: Optional[MeshlinkError] = None
    result: Dict[str, Any] = {}
    try:
        cluster = cluster_from_params(module.params, check_mode=module.check_mode)
        if not module.params.get('validate_certs', True):
            module.warn('TLS certificate verification of the API server is off (validate_certs=false)')
        result = call(cluster)
    except MeshlinkError as error:
        failure = error
    # Failing outside the except block: our errors are complete messages for the user, and
    # ansible-core would otherwise attach the pending exception as an unexpected traceback.
    if failure is not None:
        for text in cluster.warnings if cluster is not None else []:
            module.warn('API server warning: %s' % text)
        fail(module, failure)
    for text in result.pop('warnings', []) or []:
        module.warn(text)
    for text in cluster.warnings:
        module.warn('API server warning: %s' % text)
    result.setdefault('changed', False)
    if result.get('failed'):
        module.fail_json(**result)
    module.exit_json(**result)
