#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_teardown
short_description: Remove this mesh's objects from one cluster, and nothing else
version_added: 0.2.0
description:
  - Deletes, in one run, the Istio objects of this mesh (labels C(app.kubernetes.io/managed-by=meshlink)
    and C(meshlink.io/mesh=<mesh>)) that serve a service of the plan - with O(everything), every object
    of this mesh - and with O(sample_apps) the mesh's sample apps; releases the VIPs of the hosts this
    cluster consumed and deletes the mesh's VIP store once it is empty.
  - With O(sample_apps), a namespace the mesh created is deleted only when nothing but the mesh's
    objects is left in it. Every namespaced kind the credentials can list is checked (metadata only);
    objects made by a controller from another object (ownerReferences) and the ones Kubernetes puts
    in every namespace do not count. Otherwise the namespace stays and RV(lines) says which objects
    kept it (or which kinds could not be listed to prove it empty).
  - Deletes carry the uid and resourceVersion read as preconditions. Objects without this mesh's
    labels - a user's, another tool's, another mesh's - are never deleted.
author:
  - Meshlink contributors (@meshlink)
options:
  vip_store_namespace:
    description: Namespace of the VIP store.
    type: str
    default: istio-system
  vip_store_name:
    description: Name of the VIP store (default C(meshlink-vips-<mesh>)).
    type: str
  sample_apps:
    description: Also delete the mesh's sample apps, and the namespaces the mesh created once empty.
    type: bool
    default: true
  everything:
    description: Delete every object of this mesh in the cluster, also of services no longer in the plan, and the whole VIP store.
    type: bool
    default: false
  wait:
    description: Wait until the deleted Deployments and namespaces are gone.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 300
  workers:
    description: Deletes of one kind sent at a time.
    type: int
    default: 4
  multinetwork:
    description: The multi-network settings, as for M(meshlink.multicluster.cluster_inspect).
    type: dict
    default: {}
extends_documentation_fragment:
  - meshlink.multicluster.cluster_of_plan
  - meshlink.multicluster.connection
attributes:
  check_mode:
    description: Deletes are sent with C(dryRun=All); nothing is removed.
    support: full
  diff_mode:
    description: Returns each deleted object and the VIP store before and after.
    support: full
  idempotent:
    description: A second run finds nothing to delete.
    support: full
'''

EXAMPLES = r'''
---
- name: Remove this mesh from the cluster
  meshlink.multicluster.cluster_teardown:
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
'''

RETURN = r'''
objects:
  description: Every object deleted (C(kind), C(namespace), C(name), C(action)).
  returned: success
  type: list
  elements: dict
released:
  description: Hosts whose VIP was released.
  returned: success
  type: list
  elements: str
lines:
  description: What was done (and which namespaces stayed, and why), as printable lines.
  returned: success
  type: list
  elements: str
'''

from typing import Any

from ansible_collections.meshlink.multicluster.plugins.module_utils._module import PLAN_ARGUMENT_SPEC, kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._teardown import teardown_cluster


ARGUMENT_SPEC = {
    **PLAN_ARGUMENT_SPEC,
    'vip_store_namespace': {'type': 'str', 'default': 'istio-system'},
    'vip_store_name': {'type': 'str'},
    'sample_apps': {'type': 'bool', 'default': True},
    'everything': {'type': 'bool', 'default': False},
    'wait': {'type': 'bool', 'default': True},
    'wait_timeout': {'type': 'int', 'default': 300},
    'workers': {'type': 'int', 'default': 4},
    'multinetwork': {'type': 'dict', 'default': {}},
}


def run(module: Any) -> None:
    """The module's work on ``module``: an AnsibleModule, or the action plugin's in-process one."""
    params = module.params
    run_with_cluster(module, lambda cluster: teardown_cluster(
        cluster, params['plan'], params['cluster'], store_namespace=params['vip_store_namespace'],
        store_name=params['vip_store_name'], sample_apps=params['sample_apps'], everything=params['everything'],
        wait=params['wait'], wait_timeout=params['wait_timeout'], workers=params['workers'],
        multinetwork=params['multinetwork']))


def main() -> None:
    run(kube_module(ARGUMENT_SPEC))


if __name__ == '__main__':
    main()
