#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: gateway_address
short_description: Find the address other clusters use to reach a cluster's ingress gateway
version_added: 0.1.0
description:
  - Returns the address and port of the multicluster ingress gateway of one cluster, the value a
    ServiceEntry endpoint needs in every consumer cluster (step 3 of Istio's "multicluster via
    gateways" procedure).
  - 'The address is, in this order: O(address) when given (kind V(override)); the load balancer
    ingress IP (V(ip)) or hostname (V(hostname)) of the Service; its first C(externalIPs) entry
    (V(external_ip)); for a LoadBalancer Service without an address yet, it waits up to
    O(wait_timeout) seconds; then a node address with the nodePort of the port (V(node)), when
    O(node_port_fallback) allows.'
  - With a node address the nodePort replaces the Service port, as the procedure requires when
    there is no external load balancer (minikube, kind, bare metal).
  - The result never has an empty address; when nothing is found the task fails naming the
    namespace, the Service or selector and the port it searched.
author:
  - Meshlink contributors (@meshlink)
options:
  namespace:
    description: Namespace of the gateway Service.
    type: str
    default: istio-system
  service:
    description:
      - Name of the gateway Service. When not set, O(selector) finds it.
    type: str
  selector:
    description:
      - Labels of the gateway Service, used when O(service) is not set. Must match exactly one Service.
    type: dict
    default: {app: istio-ingressgateway}
  port:
    description:
      - The Service port to reach, as a number (matched against C(port)) or a port name (matched
        against C(name)); exact, nothing is stripped.
    type: str
    default: '15443'
  address:
    description:
      - Use this address instead of looking it up (kind V(override)), for example a DNS name of
        an external load balancer the cluster does not know about.
      - Exactly an IP address or a host name (RFC 1123), as it is written into every consumer's
        ServiceEntry; not a URL, not V(host:port) (the port goes into O(address_port)), not a CIDR,
        and without spaces or a trailing newline.
      - With O(address_port), or a numeric O(port), no API call is made.
    type: str
  address_port:
    description:
      - Return this port instead of the discovered one (the Service port, or the nodePort for a node address).
      - A number 1-65535, as an integer or a string of the digits 0-9 (a boolean, a decimal number
        or other scripts' digits are refused).
    type: raw
  node_port_fallback:
    description:
      - Whether a node address and the nodePort may be used when the Service has no load balancer
        address and no externalIPs (or the wait for the load balancer timed out).
    type: bool
    default: true
  node_address_types:
    description:
      - Node address types to try, in order. For each type Ready nodes come first, then by name,
        so the same node is chosen on every run.
    type: list
    elements: str
    default: [ExternalIP, InternalIP]
  wait_timeout:
    description:
      - Seconds to wait for a pending load balancer to get an address. V(0) does not wait.
    type: int
    default: 60
  wait_interval:
    description: Seconds between two reads of a pending load balancer Service.
    type: int
    default: 2
extends_documentation_fragment:
  - meshlink.multicluster.connection
  - meshlink.multicluster.connection.action_group
  - meshlink.multicluster.attributes.read_only
notes:
  - Listing Nodes needs cluster-wide read access; it happens only when the nodePort fallback is reached.
seealso:
  - module: meshlink.multicluster.remote_services
'''

EXAMPLES = r'''
---
- name: Address of cluster2's multicluster gateway
  meshlink.multicluster.gateway_address:
    context: cluster2
  register: cluster2_gateway

- name: A lab without load balancers - do not wait, use an InternalIP and the nodePort
  meshlink.multicluster.gateway_address:
    kubeconfig: "{{ lookup('ansible.builtin.env', 'MESHLINK_LAB_KUBECONFIG') }}"
    context: cluster2
    wait_timeout: 0
    node_address_types: [InternalIP]

- name: A gateway published under a DNS name the cluster does not know
  meshlink.multicluster.gateway_address:
    context: cluster2
    address: mesh-gateway.cluster2.example.com
    address_port: 15443
'''

RETURN = r'''
address:
  description: The address (IP or DNS name) other clusters use; never empty.
  returned: success
  type: str
  sample: 192.0.2.10
port:
  description: The port to use with RV(address) (the nodePort for kind V(node)).
  returned: success
  type: int
  sample: 15443
kind:
  description: Where the address comes from.
  returned: success
  type: str
  choices: [ip, hostname, external_ip, node, override]
  sample: ip
source:
  description: Which field of which object the address was taken from.
  returned: success
  type: str
  sample: Service istio-system/istio-ingressgateway status.loadBalancer.ingress ip
service:
  description: The gateway Service as C(namespace/name); null for an override without lookup.
  returned: success
  type: str
  sample: istio-system/istio-ingressgateway
waited:
  description: Seconds spent waiting for a pending load balancer.
  returned: when the cluster was read
  type: int
  sample: 0
cluster_identity:
  description:
    - Which cluster answered, whatever its context is called. Not returned for an override that
      needed no cluster.
  returned: when the module connected to a cluster
  type: dict
  contains:
    server:
      description: URL of the API server used.
      type: str
      sample: https://127.0.0.1:6443
    kube_system_uid:
      description: UID of namespace C(kube-system); null when the credential may not read it.
      type: str
      sample: 4f1c8a52-7f5e-4d8e-9d6e-0b7f6a0c2a11
connection:
  description: The connection used.
  returned: when the module connected to a cluster
  type: dict
  contains:
    context:
      description: The kubeconfig context (the current context when none was given), else the server.
      type: str
      sample: cluster2
    server:
      description: URL of the API server.
      type: str
      sample: https://127.0.0.1:6443
    source:
      description:
        - V(task) when the task named the cluster (K8S_AUTH_* variables ignored), V(environment)
          when K8S_AUTH_* variables were used, V(default) for the default kubeconfig or in-cluster
          service account.
      type: str
      sample: task
'''

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._gateway import (
    DEFAULT_NODE_ADDRESS_TYPES,
    resolve_gateway_address,
    static_override,
    validate_options,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._module import fail, kube_module, run_with_cluster


def main() -> None:
    module = kube_module({
        'namespace': {'type': 'str', 'default': 'istio-system'},
        'service': {'type': 'str'},
        'selector': {'type': 'dict', 'default': {'app': 'istio-ingressgateway'}},
        'port': {'type': 'str', 'default': '15443'},
        'address': {'type': 'str'},
        'address_port': {'type': 'raw'},
        'node_port_fallback': {'type': 'bool', 'default': True},
        'node_address_types': {'type': 'list', 'elements': 'str', 'default': list(DEFAULT_NODE_ADDRESS_TYPES)},
        'wait_timeout': {'type': 'int', 'default': 60},
        'wait_interval': {'type': 'int', 'default': 2},
    })
    params = module.params
    failure = static = None
    try:
        validate_options(params['port'], params['address_port'], params['node_address_types'],
                         params['wait_timeout'], params['wait_interval'], address=params['address'],
                         namespace=params['namespace'], service=params['service'], selector=params['selector'])
        # An override with a known port needs no cluster at all (not even a kubeconfig).
        static = static_override(params['address'], params['address_port'], params['port'])
    except MeshlinkError as error:
        failure = error
    if failure is not None:
        fail(module, failure)
    if static is not None:
        module.exit_json(changed=False, **static)
    run_with_cluster(module, lambda cluster: resolve_gateway_address(
        cluster, namespace=params['namespace'], service=params['service'], selector=params['selector'],
        port=params['port'], address=params['address'], address_port=params['address_port'],
        node_port_fallback=params['node_port_fallback'], node_address_types=params['node_address_types'],
        wait_timeout=params['wait_timeout'], wait_interval=params['wait_interval']))


if __name__ == '__main__':
    main()
