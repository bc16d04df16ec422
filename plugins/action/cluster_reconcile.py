# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs meshlink.multicluster.cluster_reconcile with the host's connection and, unless the task
gives ``gateways``, the gateway addresses other clusters reported in this run (their registered
``meshlink_inspection``) or ``meshlink_gateway_overrides``: the one barrier between the plays."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    ClusterAction,
    source_gateways,
)


class ActionModule(ClusterAction):
    MODULE = 'meshlink.multicluster.cluster_reconcile'

    def extra_args(self, args: Dict[str, Any], task_vars: Mapping[str, Any]) -> Dict[str, Any]:
        if args.get('gateways') is not None or not isinstance(args.get('plan'), Mapping):
            return {}
        overrides = self._var(task_vars, 'meshlink_gateway_overrides') or {}
        gateways = source_gateways(args['plan'], args.get('cluster'),
                                   lambda host: self._host_var(task_vars, host, 'meshlink_inspection'), overrides)
        return {'gateways': gateways}
