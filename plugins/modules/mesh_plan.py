#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mesh_plan
short_description: Validate the mesh definition once and plan what each cluster exports, consumes and needs
version_added: 0.1.0
description:
  - Validates O(services) (usually the inventory variable C(meshlink_services)) against
    O(clusters) (the inventory hosts, one per cluster), with the mesh name O(mesh) and the
    O(topology), and returns the normalised plan - per cluster what it exports and consumes, the
    namespaces it needs and, for the multi-network topologies, its Istio cluster name, network,
    role and which peers it reads - with a C(fingerprint).
  - 'Runs on the controller as an action plugin, in the worker process: no module is shipped and
    no API call is made. Every problem is reported at once, each naming its field path, for
    example C(services[0].ports[1].number: 70000 is not a port (1-65535)).'
  - Also checks the run - every host of the play is one of O(clusters), and C(meshlink_services),
    C(meshlink_mesh) and C(meshlink_topology) are the same on every host that sets them.
  - The per-cluster modules (M(meshlink.multicluster.cluster_inspect),
    M(meshlink.multicluster.cluster_reconcile), M(meshlink.multicluster.cluster_teardown),
    M(meshlink.multicluster.cluster_verify)) take the plan as it is and check its fingerprint
    instead of validating it again; a plan edited in between is refused.
author:
  - Meshlink contributors (@meshlink)
options:
  services:
    description:
      - The remote services of the mesh. Each is a mapping with the keys below; unknown keys are
        errors, so a misspelt key cannot silently fall back to a default.
      - C(name) and C(namespace) (DNS-1123 labels) of the service in its source cluster; the mesh
        host becomes C(<name>.<namespace>.global) (topology V(global_serviceentries)) or stays
        C(<name>.<namespace>.svc.cluster.local) (multi-network topologies).
      - C(cluster), the inventory host that runs it.
      - C(consumers), the inventory hosts that call it, each a host name or a mapping
        C({cluster, namespace}); the namespace (of the client, and of the consumer-side objects)
        defaults to O(consumer_namespace). The source cluster cannot consume its own service.
      - 'C(ports), default C([{name: http1, number: 8000, protocol: http}]); names are DNS-1123
        labels, numbers 1-65535, both unique; C(protocol) is one of C(HTTP), C(HTTPS), C(GRPC),
        C(HTTP2), C(MONGO), C(TCP), C(TLS) in any case and is kept as written.'
      - C(mode), C(sidecar) (default) or C(egress_gateway) (traffic leaves through this cluster's
        egress gateway); topology V(global_serviceentries) only.
      - C(endpoint_labels), labels on the gateway endpoint of the ServiceEntry (V(global_serviceentries) only).
      - C(subsets), versioned routing, each C({name, endpoint_labels, pod_labels}); then
        C(route_subset) names the subset the VirtualService routes to.
      - C(vip), an optional fixed IPv4 address for the host (V(global_serviceentries) only).
    type: list
    elements: dict
    required: true
  clusters:
    description:
      - The inventory hosts (clusters) of the mesh. Default C(groups['all']).
    type: list
    elements: str
  mesh:
    description:
      - The name of the mesh (a DNS-1123 label), written as label C(meshlink.io/mesh) on every object
        the collection creates. Two inventories with different names share clusters without ever
        seeing, changing or deleting each other's objects.
    type: str
    default: default
  topology:
    description:
      - V(global_serviceentries), the seed's C(.global) ServiceEntries (Istio up to 1.18);
        V(multi_primary) or V(primary_remote), current Istio's multi-network mesh (remote secrets,
        east-west gateways).
    type: str
    choices: [global_serviceentries, multi_primary, primary_remote]
    default: global_serviceentries
  consumer_namespace:
    description:
      - Namespace of the consumer-side objects when a consumer does not name one.
    type: str
    default: istio-system
  cluster_settings:
    description:
      - Multi-network topologies - inventory host to its C(meshlink_istio_cluster_name),
        C(meshlink_network), C(meshlink_istio_role), C(meshlink_istio_primary) and
        C(meshlink_api_server_for_peers). When omitted they are read from each host's variables.
    type: dict
extends_documentation_fragment:
  - meshlink.multicluster.attributes.read_only
notes:
  - Takes no connection options, so it is not in the C(meshlink.multicluster.k8s) action group.
'''

EXAMPLES = r'''
---
- name: Plan the mesh once for the whole run
  meshlink.multicluster.mesh_plan:
    services: "{{ meshlink_services }}"
    mesh: "{{ meshlink_mesh }}"
  register: meshlink_plan
  run_once: true

- name: The seed's httpbin in cluster2, called from cluster1, with versioned routing
  meshlink.multicluster.mesh_plan:
    clusters: [cluster1, cluster2]
    services:
      - name: httpbin
        namespace: bar
        cluster: cluster2
        consumers:
          - cluster: cluster1
            namespace: foo
        subsets:
          - name: v1
            endpoint_labels: {version: v1}
            pod_labels: {version: v1}
        route_subset: v1
'''

RETURN = r'''
mesh:
  description: The mesh name.
  returned: success
  type: str
  sample: default
topology:
  description: The topology.
  returned: success
  type: str
  sample: global_serviceentries
services:
  description: The normalised services, with every default filled in.
  returned: success
  type: list
  elements: dict
  sample:
    - name: httpbin
      namespace: bar
      cluster: cluster2
      host: httpbin.bar.global
      consumers: [{cluster: cluster1, namespace: foo}]
      ports: [{name: http1, number: 8000, protocol: http}]
      mode: sidecar
      endpoint_labels: {}
      subsets: []
      route_subset: null
      vip: null
clusters:
  description:
    - Per cluster, C(exports) (services it runs), C(consumes) (services it calls, each with
      C(consumer_namespace)), C(consumer_namespaces), C(namespaces) (every namespace its objects
      go into) and C(needs_egress); for the multi-network topologies also C(istio) (cluster name,
      network, role, primary), C(reads) and C(read_by) (the peers whose API it reads and that read it).
  returned: success
  type: dict
  sample:
    cluster1:
      exports: []
      consumes:
        - {name: httpbin, namespace: bar, host: httpbin.bar.global, consumer_namespace: foo}
      consumer_namespaces: [foo]
      namespaces: [foo]
      needs_egress: false
fingerprint:
  description: SHA-256 of the plan; the per-cluster modules refuse a plan that does not match it.
  returned: success
  type: str
lines:
  description: One line per service (and per cluster's Istio identity), for the run's output.
  returned: success
  type: list
  elements: str
errors:
  description: Every validation problem, each starting with its field path.
  returned: failure
  type: list
  elements: str
  sample: ["services[0].ports[1].number: 70000 is not a port (1-65535)"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import TOPOLOGIES, build_plan, describe


def main() -> None:
    # Ansible runs the action plugin of the same name; this module gives the same answer when
    # run on its own (ansible -m, or a controller without the action plugin).
    module = AnsibleModule(
        argument_spec={
            'services': {'type': 'list', 'elements': 'dict', 'required': True},
            'clusters': {'type': 'list', 'elements': 'str'},
            'mesh': {'type': 'str', 'default': 'default'},
            'topology': {'type': 'str', 'choices': list(TOPOLOGIES), 'default': 'global_serviceentries'},
            'consumer_namespace': {'type': 'str', 'default': 'istio-system'},
            'cluster_settings': {'type': 'dict'},
        },
        supports_check_mode=True,
    )
    params = module.params
    failure = plan = None
    try:
        plan = build_plan(params['services'], params['clusters'] or [], mesh=params['mesh'],
                          topology=params['topology'], consumer_namespace=params['consumer_namespace'],
                          cluster_settings=params['cluster_settings'])
    except InputError as error:
        failure = error
    if failure is not None:
        # Outside the except block, so that no traceback is attached to an input error.
        module.fail_json(msg=str(failure), errors=failure.errors)
    module.exit_json(changed=False, lines=describe(plan), **plan)


if __name__ == '__main__':
    main()
