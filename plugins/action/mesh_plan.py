# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""meshlink.multicluster.mesh_plan runs here, on the controller, in the worker's own process:
no module is shipped and no Python is started for it (module_utils/_plan.py does the work).

Besides the plan it checks the run: every host of the play belongs to the mesh
(``meshlink_clusters``), and the mesh-level variables are the same on every host that sets
them. Unless ``cluster_settings`` is given, the multi-network topologies read each cluster's
``meshlink_istio_cluster_name``, ``meshlink_network``, ``meshlink_istio_role``,
``meshlink_istio_primary`` and ``meshlink_api_server_for_peers`` from its host variables.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import (
    CLUSTER_SETTINGS,
    build_plan,
    describe,
    is_multi_network,
)
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    stored_variables,
    templated_host_var,
)

ARGS = ('services', 'clusters', 'mesh', 'topology', 'consumer_namespace', 'cluster_settings')
# Mesh-level variables that must be the same on every host of a run.
MESH_VARIABLES = {'services': 'meshlink_services', 'mesh': 'meshlink_mesh', 'topology': 'meshlink_topology'}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGS)

    def _host_var(self, task_vars: Dict[str, Any], host: str, name: str) -> Any:
        return templated_host_var(self._templar, task_vars, host, name)

    def _same_untemplated(self, task_vars: Dict[str, Any], hosts: List[str], name: str) -> bool:
        """True when every host holds the same value of ``name`` before templating and it holds no
        template, so that the rendered values are equal too. Rendering a 1,000-entry services list
        once per host took most of the plan's time at 8 clusters (2.3 of 2.8 s); the usual
        inventory sets it once for the group and lands here."""
        raw_values = []
        for host in hosts:
            variables = stored_variables(task_vars, host)
            if variables is None:
                return False
            raw_values.append(variables.get(name))
        first = raw_values[0] if raw_values else None
        if any(value is not first and value != first for value in raw_values[1:]):
            return False
        return not self._templar.is_template(first)

    def _run_problems(self, args: Dict[str, Any], task_vars: Dict[str, Any], clusters: List[str]) -> List[str]:
        problems = []
        play_hosts = list(task_vars.get('ansible_play_hosts_all') or [])
        outside = [h for h in play_hosts if h not in clusters]
        if outside:
            problems.append('Hosts %s are not in meshlink_clusters (%s): run one mesh (environment) at a time, e.g. '
                            '-e meshlink_target_hosts=<group>, or add them to meshlink_clusters'
                            % (', '.join(outside), ', '.join(clusters)))
        for option, variable in MESH_VARIABLES.items():
            if option not in args:
                continue
            # The hosts' values compared with each other (not with the task's argument: a task may
            # pass its own value, e.g. services: [...] in a user's play, whatever the inventory holds).
            if self._same_untemplated(task_vars, play_hosts, variable):
                continue
            values = {}
            for host in play_hosts:
                value = self._host_var(task_vars, host, variable)
                if value is not None:
                    values[host] = json.dumps(value, sort_keys=True, default=str)
            if len(set(values.values())) < 2:
                continue
            me = task_vars.get('inventory_hostname')
            reference = me if me in values else next(iter(values))
            differing = [h for h, v in values.items() if v != values[reference]]
            problems.append('%s differs between the hosts of this run (%s differ from %s): set it once for the '
                            'mesh (group_vars of the environment), not per host'
                            % (variable, ', '.join(differing), reference))
        return problems

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        clusters = args.get('clusters')
        if clusters is None:
            clusters = list((task_vars.get('groups') or {}).get('all') or [])
        if not isinstance(clusters, list) or not all(isinstance(c, str) for c in clusters):
            raise AnsibleActionFail('clusters: must be a list of inventory host names')
        problems = self._run_problems(args, task_vars, clusters)
        if problems:
            raise AnsibleActionFail('; '.join(problems))
        topology = args.get('topology', 'global_serviceentries')
        settings = args.get('cluster_settings')
        if settings is None and is_multi_network(topology):
            settings = {c: {v: self._host_var(task_vars, c, v) for v in CLUSTER_SETTINGS} for c in clusters}
        try:
            plan = build_plan(args.get('services'), clusters, mesh=args.get('mesh', 'default'), topology=topology,
                              consumer_namespace=args.get('consumer_namespace', 'istio-system'),
                              cluster_settings=settings)
        except InputError as error:
            result.update(failed=True, msg=str(error), errors=error.errors)
            return result
        result.update(plan)
        result['lines'] = describe(plan)
        result['changed'] = False
        return result
