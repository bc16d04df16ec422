#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: remote_services
short_description: Apply or delete the Istio objects that make remote services callable in a cluster
version_added: 0.1.0
description:
  - 'With O(role=consumer), for every service of O(services) that O(cluster) consumes, in its
    consumer namespace: the ServiceEntry C(<name>-<namespace>) for host C(<name>.<namespace>.global)
    (location MESH_INTERNAL, resolution DNS, the VIP, the source cluster''s gateway as endpoint) and,
    for services with subsets, the DestinationRule and VirtualService C(<name>-<namespace>-global).'
  - With O(role=source), for every service of O(services) with subsets that runs in O(cluster),
    the DestinationRule C(<name>-<namespace>-local) on C(<name>.<namespace>.svc.cluster.local),
    whose subsets select the pods by C(pod_labels). Without it, versioned routing is silently ignored.
  - Mode C(egress_gateway) gives the gateway endpoint C(network=external) and adds the endpoint
    C(istio-egressgateway.istio-system.svc.cluster.local) on port 15443 (with subsets, one such
    pair per subset).
  - Objects are created (POST) or updated by server-side apply with field manager C(meshlink), only
    when their spec or labels differ, so a second run writes nothing and reports no change. The
    API version is the newest C(networking.istio.io) version the cluster serves.
  - Every object carries C(app.kubernetes.io/managed-by=meshlink), C(meshlink.io/mesh=<mesh>) and
    C(multicluster.meshlink.io/service=<name>.<namespace>). An object with a wanted name that is
    not this mesh's is never overwritten; the task fails before writing anything.
  - Objects of listed services that are no longer wanted (subsets removed, consumer moved) are
    deleted. O(state=absent) deletes every object of the listed services in this cluster
    (found by label); O(prune) also deletes objects of services no longer listed.
author:
  - Meshlink contributors (@meshlink)
options:
  services:
    description:
      - The services, normally RV(meshlink.multicluster.mesh_plan#module:services). They are
        validated again (without the cluster list).
    type: list
    elements: dict
    required: true
  role:
    description: Which side of the services this cluster is.
    type: str
    choices: [consumer, source]
    required: true
  cluster:
    description: The inventory host name of this cluster, as used in the services' C(cluster) and C(consumers).
    type: str
    required: true
  gateways:
    description:
      - Source cluster name to C({address, port}) of its gateway, from
        M(meshlink.multicluster.gateway_address). Needed with O(role=consumer) and O(state=present)
        for every source cluster of a consumed service.
    type: dict
    default: {}
  vips:
    description:
      - Host to VIP in this cluster, from M(meshlink.multicluster.vip_allocate). Needed with
        O(role=consumer) and O(state=present) for every consumed host without a fixed C(vip).
    type: dict
    default: {}
  state:
    description: V(present) applies, V(absent) deletes the objects of the listed services.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - With O(state=present), also delete this mesh's objects of this O(role) in this cluster that
        belong to services no longer in O(services).
    type: bool
    default: false
  mesh:
    description: The mesh the objects belong to (label C(meshlink.io/mesh)).
    type: str
    default: default
extends_documentation_fragment:
  - meshlink.multicluster.force_conflicts
  - meshlink.multicluster.connection
  - meshlink.multicluster.connection.action_group
attributes:
  check_mode:
    description: Sends every write as a server-side dry run (C(dryRun=All)), so the server validates it.
    support: full
  diff_mode:
    description: Returns one diff per object written or deleted, without server bookkeeping fields.
    support: full
  idempotent:
    description: A second run with the same input writes nothing.
    support: full
seealso:
  - module: meshlink.multicluster.mesh_plan
  - module: meshlink.multicluster.gateway_address
  - module: meshlink.multicluster.vip_allocate
'''

EXAMPLES = r'''
---
- name: ServiceEntries (and routing) in cluster1 for what it consumes
  meshlink.multicluster.remote_services:
    context: cluster1
    cluster: cluster1
    role: consumer
    services: "{{ meshlink_plan.services }}"
    gateways:
      cluster2: {address: "{{ cluster2_gateway.address }}", port: "{{ cluster2_gateway.port }}"}
    vips: "{{ cluster1_vips.vips }}"

- name: DestinationRules on the local services of cluster2 for versioned routing
  meshlink.multicluster.remote_services:
    context: cluster2
    cluster: cluster2
    role: source
    services: "{{ meshlink_plan.services }}"

- name: Remove everything cluster1 holds for these services
  meshlink.multicluster.remote_services:
    context: cluster1
    cluster: cluster1
    role: consumer
    services: "{{ meshlink_plan.services }}"
    state: absent
'''

RETURN = r'''
objects:
  description:
    - One entry per object considered, with what happened to it.
    - C(action) is V(created), V(updated), V(unchanged) or V(deleted); in check mode
      V(would_create), V(would_update) or V(would_delete).
  returned: success
  type: list
  elements: dict
  sample:
    - {kind: ServiceEntry, namespace: foo, name: httpbin-bar, action: created}
api_version:
  description: The C(networking.istio.io) version used; null when the cluster does not serve it (nothing to do).
  returned: success
  type: str
  sample: v1
diff:
  description: Before and after of every object written or deleted.
  returned: success
  type: list
  elements: dict
  sample:
    - before_header: ServiceEntry foo/httpbin-bar
      after_header: ServiceEntry foo/httpbin-bar
      before: {}
      after: {kind: ServiceEntry, metadata: {name: httpbin-bar, namespace: foo}, spec: {hosts: [httpbin.bar.global]}}
'''

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import force_conflicts_argument_spec
from ansible_collections.meshlink.multicluster.plugins.module_utils._module import kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._remote import ROLES, reconcile_remote_services


def main() -> None:
    spec = {
        'services': {'type': 'list', 'elements': 'dict', 'required': True},
        'role': {'type': 'str', 'choices': list(ROLES), 'required': True},
        'cluster': {'type': 'str', 'required': True},
        'gateways': {'type': 'dict', 'default': {}},
        'vips': {'type': 'dict', 'default': {}},
        'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
        'prune': {'type': 'bool', 'default': False},
        'mesh': {'type': 'str', 'default': 'default'},
    }
    spec.update(force_conflicts_argument_spec())
    module = kube_module(spec)
    params = module.params
    run_with_cluster(module, lambda cluster: reconcile_remote_services(
        cluster, params['services'], params['role'], params['cluster'], gateways=params['gateways'],
        vips=params['vips'], state=params['state'], prune=params['prune'], mesh=params['mesh'],
        force_conflicts=params['force_conflicts']))


if __name__ == '__main__':
    main()
