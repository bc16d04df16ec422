# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs meshlink.multicluster.cluster_reconcile with the host's connection and what other
clusters reported in this run (the one barrier between inspection and writes), unless the task
gives it: the source gateways (``gateways``: their ``meshlink_inspection`` or
``meshlink_gateway_overrides``) and, for the multi-network topologies, the readers' remote
secret states (``peers``) and the source Services' ports (``peer_services``)."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ansible_collections.meshlink.multicluster.plugins.modules import cluster_reconcile as module_code
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    ClusterAction,
    reader_states,
    source_gateways,
    source_ports,
)


class ActionModule(ClusterAction):
    MODULE = 'meshlink.multicluster.cluster_reconcile'
    CODE = module_code
    REGISTERED_DEFAULTS = {**ClusterAction.REGISTERED_DEFAULTS, 'inspection': ('meshlink_inspection', 'state')}

    def extra_args(self, args: Dict[str, Any], task_vars: Mapping[str, Any]) -> Dict[str, Any]:
        plan = args.get('plan')
        if not isinstance(plan, Mapping):
            return {}
        cluster = args.get('cluster')

        def inspection_of(host: str) -> Any:
            return self._registered(task_vars, host, 'meshlink_inspection')

        extra: Dict[str, Any] = {}
        if plan.get('topology') == 'global_serviceentries':
            if args.get('gateways') is None:
                overrides = self._var(task_vars, 'meshlink_gateway_overrides') or {}
                extra['gateways'] = source_gateways(plan, cluster, inspection_of, overrides)
            return extra
        if args.get('peers') is None:
            extra['peers'] = reader_states(plan, cluster, inspection_of)
        if args.get('peer_services') is None:
            extra['peer_services'] = source_ports(plan, cluster, inspection_of)
        return extra
