#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mesh_check
short_description: Cross-cluster checks of the inspections, before the first write
version_added: 0.2.0
description:
  - Runs on the controller (an action plugin) after M(meshlink.multicluster.cluster_inspect) ran on
    every host of the play, and compares what no single cluster can judge alone.
  - Fails when two inventory hosts reach the same cluster (the same C(kube-system) namespace uid),
    naming both hosts - a copy-pasted context would otherwise make one cluster hold two hosts'
    objects.
  - For the multi-network topologies also that every cluster shares one mesh ID (the mesh config's
    C(defaultConfig.meshId)), one root of trust (the root certificate istiod publishes in
    C(istio-ca-root-cert)), and Istio minor versions within one of each other.
author:
  - Meshlink contributors (@meshlink)
options:
  inspections:
    description: Inventory host to its C(cluster_inspect) result. Default - the C(meshlink_inspection)
      registered on each host of O(hosts).
    type: dict
  hosts:
    description: The hosts to compare. Default - the hosts of the play.
    type: list
    elements: str
  results_of:
    description:
      - The variable each host registered its per-cluster result in, when O(inspections) is not given.
      - V(meshlink_inspection) (C(cluster_inspect)'s) runs every check. Any other (V(meshlink_access) after
        M(meshlink.multicluster.cluster_access)) runs only the check that two hosts are not one cluster, from the
        C(cluster_identity) every per-cluster module returns.
    type: str
    default: meshlink_inspection
extends_documentation_fragment:
  - meshlink.multicluster.attributes.read_only
'''

EXAMPLES = r'''
---
- name: Two hosts must not be one cluster
  meshlink.multicluster.mesh_check:
  run_once: true
'''

RETURN = r'''
clusters:
  description: Inventory host to the API server it reached.
  returned: success
  type: dict
  sample: {cluster1: https://127.0.0.1:32001, cluster2: https://127.0.0.1:32002}
'''

from ansible.module_utils.basic import AnsibleModule

# The one list of options: the action plugin, which does the work, validates against it too.
ARGUMENT_SPEC = {
    'inspections': {'type': 'dict'},
    'hosts': {'type': 'list', 'elements': 'str'},
    'results_of': {'type': 'str', 'default': 'meshlink_inspection'},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg='meshlink.multicluster.mesh_check runs on the controller as an action plugin; it cannot '
                         'run as a module')


if __name__ == '__main__':
    main()
