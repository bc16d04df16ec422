#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mesh_plan
short_description: Validate and normalise the mesh definition of remote services
version_added: 0.1.0
description:
  - Validates O(services) (usually the inventory variable C(meshlink_services)) against
    O(clusters) (the inventory hosts, one per cluster) and returns the normalised services and,
    per cluster, what it exports and consumes.
  - 'Makes no API call. Every problem is reported at once, each naming its field path, for example
    C(services[0].ports[1].number: 70000 is not a port (1-65535)).'
  - Feed RV(services) to M(meshlink.multicluster.remote_services) and
    M(meshlink.multicluster.preflight).
author:
  - Meshlink contributors (@meshlink)
options:
  services:
    description:
      - The remote services of the mesh. Each is a mapping with the keys below; unknown keys are
        errors, so a misspelt key cannot silently fall back to a default.
      - C(name) and C(namespace) (DNS-1123 labels) of the service in its source cluster; the mesh
        host becomes C(<name>.<namespace>.global).
      - C(cluster), the inventory host that runs it.
      - C(consumers), the inventory hosts that call it, each a host name or a mapping
        C({cluster, namespace}); the namespace (where the ServiceEntry goes) defaults to
        O(consumer_namespace). The source cluster cannot consume its own service.
      - 'C(ports), default C([{name: http1, number: 8000, protocol: http}]); names are DNS-1123
        labels, numbers 1-65535, both unique; C(protocol) is one of C(HTTP), C(HTTPS), C(GRPC),
        C(HTTP2), C(MONGO), C(TCP), C(TLS) in any case and is kept as written.'
      - C(mode), C(sidecar) (default) or C(egress_gateway) (traffic leaves through this cluster's
        egress gateway).
      - C(endpoint_labels), labels on the gateway endpoint of the ServiceEntry.
      - C(subsets), versioned routing, each C({name, endpoint_labels, pod_labels}); then
        C(route_subset) names the subset the VirtualService routes to.
      - C(vip), an optional fixed IPv4 address for the host (must be inside the VIP pool and free).
    type: list
    elements: dict
    required: true
  clusters:
    description:
      - The inventory hosts (clusters) of the mesh, usually C(groups['all']).
    type: list
    elements: str
    required: true
  consumer_namespace:
    description:
      - Namespace of the consumer-side objects when a consumer does not name one.
    type: str
    default: istio-system
extends_documentation_fragment:
  - meshlink.multicluster.attributes.read_only
notes:
  - Normalising twice gives the same result, so the returned services can be passed back in.
  - Takes no connection options, so it is not in the C(meshlink.multicluster.k8s) action group.
'''

EXAMPLES = r'''
---
- name: Validate the mesh once for the whole run
  meshlink.multicluster.mesh_plan:
    services: "{{ meshlink_services }}"
    clusters: "{{ groups['all'] }}"
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
      C(consumer_namespace)), C(consumer_namespaces) and C(needs_egress).
  returned: success
  type: dict
  sample:
    cluster1:
      exports: []
      consumes:
        - {name: httpbin, namespace: bar, host: httpbin.bar.global, consumer_namespace: foo}
      consumer_namespaces: [foo]
      needs_egress: false
    cluster2:
      exports:
        - {name: httpbin, namespace: bar, host: httpbin.bar.global}
      consumes: []
      consumer_namespaces: []
      needs_egress: false
errors:
  description: Every validation problem, each starting with its field path.
  returned: failure
  type: list
  elements: str
  sample: ["services[0].ports[1].number: 70000 is not a port (1-65535)"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import build_plan


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            'services': {'type': 'list', 'elements': 'dict', 'required': True},
            'clusters': {'type': 'list', 'elements': 'str', 'required': True},
            'consumer_namespace': {'type': 'str', 'default': 'istio-system'},
        },
        supports_check_mode=True,
    )
    failure = plan = None
    try:
        plan = build_plan(module.params['services'], module.params['clusters'], module.params['consumer_namespace'])
    except InputError as error:
        failure = error
    if failure is not None:
        # Outside the except block, so that no traceback is attached to an input error.
        module.fail_json(msg=str(failure), errors=failure.errors)
    module.exit_json(changed=False, **plan)


if __name__ == '__main__':
    main()
