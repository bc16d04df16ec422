#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_reconcile
short_description: Write everything one cluster of the mesh should hold, and remove what it no longer should
version_added: 0.2.0
description:
  - The writing half of a setup, after M(meshlink.multicluster.cluster_inspect) on every cluster.
    Starts from the inspection's RV(meshlink.multicluster.cluster_inspect#module:state) and reads
    nothing it already read.
  - Allocates the VIPs of the hosts this cluster consumes (the rules of
    M(meshlink.multicluster.vip_allocate)), creates the namespaces the plan needs (labelled as the
    mesh's), the sample apps when O(sample_apps) is set, the ServiceEntries, VirtualServices and
    DestinationRules of the topology (as M(meshlink.multicluster.remote_services) renders them), and
    with O(prune) deletes this mesh's objects that are no longer wanted and releases their VIPs.
  - Creates are POSTs (an object that appeared since the inspection is never merged into), updates
    are server-side applies with field manager C(meshlink) (a field owned by another manager is a
    conflict naming it, unless O(force_conflicts)), deletes carry the uid and resourceVersion read.
    Writes of one kind run O(workers) at a time.
  - Every object carries C(app.kubernetes.io/managed-by=meshlink) and C(meshlink.io/mesh=<mesh>);
    nothing without them is changed or deleted.
author:
  - Meshlink contributors (@meshlink)
options:
  inspection:
    description:
      - RV(meshlink.multicluster.cluster_inspect#module:state) of this cluster, from this run.
      - When omitted, the action plugin passes C(meshlink_inspection.state) as this host registered it.
    type: dict
  gateways:
    description:
      - Source cluster to C({address, port}) of its gateway, for the clusters this one consumes from.
      - When omitted, the action plugin takes them from the other hosts' registered
        C(meshlink_inspection) (the barrier between the two plays of setup) and from
        C(meshlink_gateway_overrides).
    type: dict
  vip:
    description: C(pool) and C(exclude), as for M(meshlink.multicluster.cluster_inspect).
    type: dict
    default: {}
  sample_apps:
    description: The sample app settings; unset means no sample apps.
    type: dict
  prune:
    description: Delete this mesh's objects that are no longer wanted and release their VIPs.
    type: bool
    default: true
  workers:
    description: Writes of one kind sent at a time.
    type: int
    default: 4
  multinetwork:
    description: The multi-network settings, as for M(meshlink.multicluster.cluster_inspect).
    type: dict
    default: {}
  peers:
    description:
      - Multi-network - reading host to C({remote_secret}), the state of its remote secret for this
        cluster from its inspection; a token is minted for a reader whose secret is missing, stale or
        inside its renewal window (then RV(peer_tokens) carries it; keep the result out of logs).
      - When omitted, the action plugin takes them from the readers' registered C(meshlink_inspection).
    type: dict
  peer_services:
    description:
      - Multi-network - service key to the ports of the source Service (for the stub Services).
        When omitted, taken from the sources' registered C(meshlink_inspection).
    type: dict
extends_documentation_fragment:
  - meshlink.multicluster.cluster_of_plan
  - meshlink.multicluster.connection
  - meshlink.multicluster.force_conflicts
attributes:
  check_mode:
    description: Every write is sent with C(dryRun=All), so the server validates it; nothing is stored.
    support: full
  diff_mode:
    description: Returns the objects and the VIP store before and after.
    support: full
  idempotent:
    description: A second run writes nothing and reports no change.
    support: full
'''

EXAMPLES = r'''
---
- name: Write what this cluster should hold (after cluster_inspect on every host)
  meshlink.multicluster.cluster_reconcile:
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
    inspection: "{{ meshlink_inspection.state }}"
    vip:
      pool: 240.0.0.0/16
  register: meshlink_reconcile
'''

RETURN = r'''
objects:
  description: Every object considered, with C(kind), C(namespace), C(name) and C(action) (created,
    updated, deleted, unchanged, or would_* in check mode).
  returned: success
  type: list
  elements: dict
vips:
  description: Host to VIP of every host this cluster consumes.
  returned: success
  type: dict
  sample: {httpbin.bar.global: 240.0.23.7}
allocated:
  description: Hosts that got a new VIP.
  returned: success
  type: list
  elements: str
released:
  description: Hosts whose VIP was released (no longer consumed).
  returned: success
  type: list
  elements: str
lines:
  description: What was done, as printable lines.
  returned: success
  type: list
  elements: str
peer_tokens:
  description: Multi-network - reading host to the token minted for its istiod (secret; the role keeps the task out of logs).
  returned: success
  type: dict
'''

from typing import Any

from ansible_collections.meshlink.multicluster.plugins.module_utils._module import PLAN_ARGUMENT_SPEC, kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import force_conflicts_argument_spec
from ansible_collections.meshlink.multicluster.plugins.module_utils._setup import reconcile_cluster


ARGUMENT_SPEC = {
    **PLAN_ARGUMENT_SPEC,
    'inspection': {'type': 'dict'},
    'gateways': {'type': 'dict'},
    'vip': {'type': 'dict', 'default': {}},
    'sample_apps': {'type': 'dict'},
    'prune': {'type': 'bool', 'default': True},
    'workers': {'type': 'int', 'default': 4},
    'multinetwork': {'type': 'dict', 'default': {}},
    'peers': {'type': 'dict'},
    'peer_services': {'type': 'dict'},
}
ARGUMENT_SPEC.update(force_conflicts_argument_spec())


def run(module: Any) -> None:
    """The module's work on ``module``: an AnsibleModule, or the action plugin's in-process one."""
    params = module.params
    run_with_cluster(module, lambda cluster: reconcile_cluster(
        cluster, params['plan'], params['cluster'], params['inspection'], gateways=params['gateways'],
        vip=params['vip'], sample_apps=params['sample_apps'], prune=params['prune'],
        force_conflicts=params['force_conflicts'], workers=params['workers'], multinetwork=params['multinetwork'],
        peers=params['peers'], peer_services=params['peer_services']))


def main() -> None:
    run(kube_module(ARGUMENT_SPEC))


if __name__ == '__main__':
    main()
