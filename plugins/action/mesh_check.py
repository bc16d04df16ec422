# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""meshlink.multicluster.mesh_check: cross-cluster checks of the inspections, on the controller.

After cluster_inspect ran on every host of the play (its results registered as
``meshlink_inspection``), this compares what no single cluster can judge alone, before the
first write of the run: two inventory hosts must not reach the same cluster; for the
multi-network topologies also one mesh ID, one root of trust, and Istio minor versions within
one of each other.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import json_copy
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    cross_cluster_problems,
    duplicate_identities,
    registered,
    templated_host_var,
)
from ansible_collections.meshlink.multicluster.plugins.modules.mesh_check import ARGUMENT_SPEC


# The keys of a registered inspection (or access result) the checks read.
COMPARED = ('cluster_identity', 'topology', 'mesh_id', 'root_digest', 'istio_version')


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        hosts = args.get('hosts') or list(task_vars.get('ansible_play_hosts') or [])
        inspections = args.get('inspections')
        results_of = args['results_of']
        if inspections is None:
            inspections = {}
            for host in hosts:
                found = registered(task_vars, host, results_of,
                                   lambda h=host: templated_host_var(self._templar, task_vars, h, results_of))
                if isinstance(found, Mapping):
                    # Only what the checks read: an inspection also holds every object of its cluster.
                    inspections[host] = json_copy({k: found[k] for k in COMPARED if k in found})
        identities = {h: (i or {}).get('cluster_identity') for h, i in inspections.items() if isinstance(i, dict)}
        problems = duplicate_identities(identities)
        if results_of != 'meshlink_inspection':
            # After a write (access): the grants of both hosts went to one cluster, the other got none.
            if problems:
                raise AnsibleActionFail('Two inventory hosts reached one cluster, which got the writes of both while '
                                        'the other got none: %s' % '; '.join(problems))
        elif any((i or {}).get('topology') in ('multi_primary', 'primary_remote') for i in inspections.values()
                 if isinstance(i, dict)):
            problems += cross_cluster_problems({h: i for h, i in inspections.items() if isinstance(i, dict)})
        if problems:
            raise AnsibleActionFail('Nothing was written to any cluster: %s' % '; '.join(problems))
        result['changed'] = False
        result['clusters'] = {h: (i or {}).get('server') for h, i in identities.items()}
        return result
