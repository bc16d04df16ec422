# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs meshlink.multicluster.cluster_inspect with the host's connection (plugin_utils/_cluster_action.py).

Also checks the ``meshlink_gateway_overrides`` this cluster would use (``override_problems``):
the inspection is the barrier before any write, so a bad override must stop the run here, not
at this cluster's reconcile, after the other clusters may have written."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ansible_collections.meshlink.multicluster.plugins.modules import cluster_inspect as module_code
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    ClusterAction,
    override_problems,
)


class ActionModule(ClusterAction):
    MODULE = 'meshlink.multicluster.cluster_inspect'
    CODE = module_code

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        plan = self.module_args.get('plan')
        if not isinstance(plan, Mapping) or plan.get('topology') != 'global_serviceentries':
            return result
        cluster = self._task.args.get('cluster')
        problems = override_problems(plan, cluster, self._var(task_vars, 'meshlink_gateway_overrides'))
        if problems:
            previous = result.get('msg')
            result['failed'] = True
            result['msg'] = ('Inspection of %s: %d problem(s) in meshlink_gateway_overrides, nothing was written: %s%s'
                             % (cluster, len(problems), '; '.join(problems), '; %s' % previous if previous else ''))
            result['lines'] = list(result.get('lines') or []) + ['FAIL  gateway_overrides          %s' % p
                                                                 for p in problems]
        return result
