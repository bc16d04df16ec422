#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vip_allocate
short_description: Allocate and release virtual IPs for .global hosts in a cluster
version_added: 0.1.0
description:
  - Gives every C(<name>.<namespace>.global) host of O(hosts) an address unique in the cluster,
    for the C(addresses) of its ServiceEntry, or releases it with O(state=absent).
  - The same host keeps the same address on every run. A new host never gets an address used by
    any ServiceEntry of the cluster (all namespaces), by another allocated host, or excluded by
    O(exclude); the network and broadcast addresses of the pool are skipped.
  - 'Allocations are stored in the ConfigMap O(store_namespace)/O(store_name) (data
    C(<host>: <ip>), labels C(app.kubernetes.io/managed-by=meshlink), C(meshlink.io/mesh=<mesh>),
    C(meshlink.io/component=vip-store)) and written with its resourceVersion, so two runs
    allocating at once cannot hand out one address twice; a conflicting write is retried up to
    O(retries) times. The ConfigMap is deleted when its last host is released. A ConfigMap of
    that name that is not this mesh''s is never touched.'
  - The addresses other meshes' VIP stores hold in the same cluster are avoided too (read, never written).
author:
  - Meshlink contributors (@meshlink)
options:
  hosts:
    description: The hosts to allocate (or release), each C(<name>.<namespace>.global).
    type: list
    elements: str
    required: true
  pool:
    description:
      - CIDR to allocate from.
      - Default by the istiod version of the cluster, V(240.0.0.0/16) (class E, never routed), or
        V(127.255.0.0/16) when istiod is older than 1.3.
      - A pool overlapping 240.240.0.0/16 (Istio's own DNS auto-allocation) or a loopback pool on
        istiod 1.3 or later works badly and gives a warning; a multicast pool is an error.
    type: str
  exclude:
    description: Addresses or CIDRs of the pool never to allocate.
    type: list
    elements: str
    default: []
  fixed:
    description:
      - Host to address for hosts that must have a given address (the C(vip) of a service).
        The address must be inside the pool, not excluded, and not used by another host.
      - Entries for hosts not in O(hosts) are ignored.
    type: dict
    default: {}
  state:
    description: V(present) allocates, V(absent) releases.
    type: str
    choices: [present, absent]
    default: present
  store_namespace:
    description: Namespace of the ConfigMap holding the allocations.
    type: str
    default: istio-system
  store_name:
    description: Name of the ConfigMap holding the allocations; default C(meshlink-vips-<mesh>).
    type: str
  mesh:
    description: The mesh the allocations belong to (label C(meshlink.io/mesh)).
    type: str
    default: default
  retries:
    description: How many times a write that lost a race (HTTP 409) is retried after re-reading.
    type: int
    default: 10
extends_documentation_fragment:
  - meshlink.multicluster.connection
  - meshlink.multicluster.connection.action_group
attributes:
  check_mode:
    description: Reports the addresses it would allocate or release, without writing.
    support: full
  diff_mode:
    description: Returns the store's data before and after.
    support: full
  idempotent:
    description: A second run with the same hosts changes nothing.
    support: full
'''

EXAMPLES = r'''
---
- name: VIPs for the hosts cluster1 consumes
  meshlink.multicluster.vip_allocate:
    context: cluster1
    hosts: "{{ meshlink_plan.clusters['cluster1'].consumes | map(attribute='host') | list }}"
  register: cluster1_vips

- name: Keep the seed's address for httpbin on an old Istio
  meshlink.multicluster.vip_allocate:
    context: cluster1
    hosts: [httpbin.bar.global]
    pool: 127.255.0.0/16
    fixed:
      httpbin.bar.global: 127.255.0.2

- name: Release on teardown
  meshlink.multicluster.vip_allocate:
    context: cluster1
    hosts: [httpbin.bar.global]
    state: absent
'''

RETURN = r'''
vips:
  description: Host to address for every requested host (empty with O(state=absent)).
  returned: success
  type: dict
  sample: {httpbin.bar.global: 240.0.23.7}
allocated:
  description: Hosts that got a new address in this run (or would, in check mode).
  returned: success
  type: list
  elements: str
  sample: [httpbin.bar.global]
released:
  description: Hosts whose address was released (or would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: []
pool:
  description: The pool used.
  returned: success
  type: str
  sample: 240.0.0.0/16
store:
  description: The VIP store as C(namespace/name).
  returned: success
  type: str
  sample: istio-system/meshlink-vips-default
istio_version:
  description: The istiod version read from the cluster, null when unknown.
  returned: success
  type: str
  sample: 1.7.8
attempts:
  description: Read-allocate-write rounds needed (more than 1 when a concurrent run won a race).
  returned: success
  type: int
  sample: 1
diff:
  description: The store's data before and after.
  returned: success
  type: dict
  sample: {before: {}, after: {httpbin.bar.global: 240.0.23.7}}
'''

from ansible_collections.meshlink.multicluster.plugins.module_utils._module import kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import allocate_in_cluster


def main() -> None:
    module = kube_module({
        'hosts': {'type': 'list', 'elements': 'str', 'required': True},
        'pool': {'type': 'str'},
        'exclude': {'type': 'list', 'elements': 'str', 'default': []},
        'fixed': {'type': 'dict', 'default': {}},
        'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
        'store_namespace': {'type': 'str', 'default': 'istio-system'},
        'store_name': {'type': 'str'},
        'mesh': {'type': 'str', 'default': 'default'},
        'retries': {'type': 'int', 'default': 10},
    })
    params = module.params
    run_with_cluster(module, lambda cluster: allocate_in_cluster(
        cluster, params['hosts'], pool=params['pool'], exclude=params['exclude'], fixed=params['fixed'],
        state=params['state'], store_namespace=params['store_namespace'], store_name=params['store_name'],
        retries=params['retries'], check_mode=module.check_mode, mesh=params['mesh']))


if __name__ == '__main__':
    main()
