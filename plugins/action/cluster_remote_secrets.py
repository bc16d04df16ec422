# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs meshlink.multicluster.cluster_remote_secrets with the host's connection and, unless the
task gives ``peers``, the tokens the read clusters minted for this primary in this run (their
registered ``meshlink_reconcile``, kept out of every log by the role)."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ansible_collections.meshlink.multicluster.plugins.modules import cluster_remote_secrets as module_code
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import ClusterAction, minted_tokens


class ActionModule(ClusterAction):
    MODULE = 'meshlink.multicluster.cluster_remote_secrets'
    CODE = module_code
    REGISTERED_DEFAULTS = {**ClusterAction.REGISTERED_DEFAULTS, 'inspection': ('meshlink_inspection', 'state')}

    def extra_args(self, args: Dict[str, Any], task_vars: Mapping[str, Any]) -> Dict[str, Any]:
        if args.get('peers') is not None or not isinstance(args.get('plan'), Mapping):
            return {}
        return {'peers': minted_tokens(args['plan'], args.get('cluster'),
                                       lambda host: self._registered(task_vars, host, 'meshlink_reconcile'))}
