#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_remote_secrets
short_description: Write a primary's remote secrets with the tokens its peers minted in this run
version_added: 0.2.0
description:
  - Multi-network topologies only. For every cluster the primary O(cluster) reads, the Secret
    C(istio-remote-secret-<peer>) in the Istio namespace - label C(istio/multiCluster=true),
    annotation C(networking.istio.io/cluster=<peer>), data key C(<peer>) (the peer's cluster name,
    which istiod uses as its ID) holding a kubeconfig with inline credentials - from the token of
    bounded lifetime the peer's M(meshlink.multicluster.cluster_reconcile) minted (TokenRequest).
  - A peer that minted no token in this run keeps its secret (its run judged it current). Updating a
    secret in place rotates the token without dropping the peer's endpoints (istiod swaps the
    cluster once the new one is synced).
  - With O(prune), this mesh's remote secrets for clusters that left the mesh are deleted.
  - Secret data never reaches the result or a diff.
author:
  - Meshlink contributors (@meshlink)
options:
  inspection:
    description:
      - RV(meshlink.multicluster.cluster_inspect#module:state) of this cluster.
      - When omitted, the action plugin passes C(meshlink_inspection.state) as this host registered it.
    type: dict
  peers:
    description:
      - Read host to C({token}), the token its reconcile minted for this cluster's istiod. When
        omitted, the action plugin takes them from the peers' registered C(meshlink_reconcile).
    type: dict
  multinetwork:
    description: The multi-network settings, as for M(meshlink.multicluster.cluster_inspect).
    type: dict
    default: {}
  prune:
    description: Delete this mesh's remote secrets of clusters no longer read.
    type: bool
    default: true
  workers:
    description: Writes sent at a time.
    type: int
    default: 4
extends_documentation_fragment:
  - meshlink.multicluster.cluster_of_plan
  - meshlink.multicluster.connection
attributes:
  check_mode:
    description: Writes are dry runs; a token a peer would mint is reported, not written.
    support: full
  diff_mode:
    description: Returns the secrets before and after, their data redacted.
    support: full
  idempotent:
    description: Without new tokens nothing is written.
    support: full
'''

EXAMPLES = r'''
---
- name: Remote secrets of this primary (after cluster_reconcile on every cluster)
  meshlink.multicluster.cluster_remote_secrets:
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
    inspection: "{{ meshlink_inspection.state }}"
  no_log: true
'''

RETURN = r'''
objects:
  description: The secrets written or deleted, with C(action).
  returned: success
  type: list
  elements: dict
lines:
  description: What was done, as printable lines.
  returned: success
  type: list
  elements: str
'''

from typing import Any

from ansible_collections.meshlink.multicluster.plugins.module_utils._module import PLAN_ARGUMENT_SPEC, kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._multinet_flow import write_remote_secrets


ARGUMENT_SPEC = {
    **PLAN_ARGUMENT_SPEC,
    'inspection': {'type': 'dict'},
    # Not no_log as a whole (its cluster names and expiries are what the output reports);
    # the tokens in it are, below.
    'peers': {'type': 'dict', 'no_log': False},
    'multinetwork': {'type': 'dict', 'default': {}},
    'prune': {'type': 'bool', 'default': True},
    'workers': {'type': 'int', 'default': 4},
}


def run(module: Any) -> None:
    """The module's work on ``module``: an AnsibleModule, or the action plugin's in-process one."""
    params = module.params
    for peer in (params['peers'] or {}).values():
        token = ((peer or {}).get('token') or {}).get('token') if isinstance(peer, dict) else None
        if token:
            module.no_log_values.add(token)
    run_with_cluster(module, lambda cluster: write_remote_secrets(
        cluster, params['plan'], params['cluster'], params['inspection'], peers=params['peers'],
        multinetwork=params['multinetwork'], prune=params['prune'], workers=params['workers']))


def main() -> None:
    run(kube_module(ARGUMENT_SPEC))


if __name__ == '__main__':
    main()
