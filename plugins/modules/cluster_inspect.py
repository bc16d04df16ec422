#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_inspect
short_description: Read everything setup needs from one cluster of the mesh, and check it
version_added: 0.2.0
description:
  - The read-only half of a setup (the other is M(meshlink.multicluster.cluster_reconcile)). In one
    pass over the cluster, reading each collection once, it runs the preflight checks of
    M(meshlink.multicluster.preflight), finds the gateway address when the cluster exports services
    (as M(meshlink.multicluster.gateway_address) does), and reads this mesh's objects, every object at a
    name the mesh wants, the VIP store and what new VIPs must avoid, and the plan's namespaces.
  - Fails, before anything is written to any cluster, when a check fails (O(fail_on)), the gateway
    has no address, a setting of this cluster is invalid (its field is named), or an object that
    is not this mesh's holds a name the mesh wants.
  - Returns RV(state), the base of M(meshlink.multicluster.cluster_reconcile), and RV(lines), the
    report to print.
  - The connection options default to the host's C(meshlink_*) variables (see the action plugin
    notes below), so a role or play needs no C(module_defaults).
author:
  - Meshlink contributors (@meshlink)
options:
  gateway:
    description:
      - How to find this cluster's gateway (used when it exports services); keys as the options of
        M(meshlink.multicluster.gateway_address) - C(namespace), C(service), C(selector), C(port),
        C(address), C(address_port), C(node_port_fallback), C(node_address_types), C(wait_timeout).
        Unset keys take that module's defaults.
    type: dict
    default: {}
  vip:
    description:
      - The VIP settings of this cluster - C(pool) (default by istiod version), C(exclude),
        C(store_namespace) (default V(istio-system)), C(store_name) (default C(meshlink-vips-<mesh>)).
    type: dict
    default: {}
  sample_apps:
    description:
      - When set, the sample apps are part of setup and their names are checked too. Keys
        C(registry), C(sleep_image), C(httpbin_image), C(httpbin_port), C(pull_policy), C(replicas),
        C(wait), C(wait_timeout), C(excluded_namespaces).
    type: dict
  checks:
    description: The preflight checks to run (default all), as for M(meshlink.multicluster.preflight).
    type: list
    elements: str
    default: []
  fail_on:
    description: V(fail) fails on failing checks, V(warn) also on warnings, V(never) only reports.
    type: str
    choices: [fail, warn, never]
    default: fail
  multinetwork:
    description:
      - Settings of the multi-network topologies (V(multi_primary), V(primary_remote)); ignored by
        V(global_serviceentries). Keys C(eastwest) (C(namespace), C(selector), C(service),
        C(gateway_name), C(expose_all), C(wait_timeout)), C(reader) (C(token_lifetime),
        C(renew_before), C(rotate), C(secrets)), C(dns) (V(auto), V(stub_services), V(dns_proxy)),
        C(allow_loopback_api_server), C(istio_namespace).
      - 'Checks then are: C(api), C(networking_api), C(istio_namespace), C(istio_version),
        C(istiod) (CLUSTER_ID equals the cluster name; a remote has no istiod and names its primary),
        C(network) (the label agrees on the Istio namespace, the east-west gateway Service and istiod),
        C(eastwest_gateway) (15443, and 15012/15017 on a primary with remotes, with an address),
        C(exported_services), C(dns), C(peer_api_server) (loopback or unresolvable is refused),
        C(remote_secrets) (no second secret for the same peer).'
    type: dict
    default: {}
extends_documentation_fragment:
  - meshlink.multicluster.cluster_of_plan
  - meshlink.multicluster.connection
  - meshlink.multicluster.attributes.read_only
notes:
  - 'Connection: options given in the task win as one bundle; otherwise the host variables
    C(meshlink_kubeconfig), C(meshlink_context), C(meshlink_host), C(meshlink_api_key),
    C(meshlink_validate_certs), C(meshlink_ca_cert), C(meshlink_client_cert), C(meshlink_client_key),
    C(meshlink_proxy) are used; with none of them the C(K8S_AUTH_*) environment; with nothing at all
    the task fails naming the variables to set (it never falls back to the current context of
    C(~/.kube/config)).'
'''

EXAMPLES = r'''
---
- name: Plan the mesh once
  meshlink.multicluster.mesh_plan:
    services: "{{ meshlink_services }}"
  register: meshlink_plan
  run_once: true

- name: Inspect every cluster (read-only)
  meshlink.multicluster.cluster_inspect:
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
    gateway:
      wait_timeout: 0
  register: meshlink_inspection
'''

RETURN = r'''
checks:
  description: The preflight checks, each C({name, status, message, hint}).
  returned: always
  type: list
  elements: dict
summary:
  description: Number of checks per status.
  returned: always
  type: dict
  sample: {pass: 10, warn: 0, fail: 0}
istio_version:
  description: The istiod version read from the cluster.
  returned: always
  type: str
  sample: 1.7.8
gateway:
  description: The gateway address of this cluster when it exports services (as gateway_address returns it), else null.
  returned: always
  type: dict
  sample: {address: 192.0.2.10, port: 15443, kind: ip, source: Service istio-system/istio-ingressgateway ..., service: istio-system/istio-ingressgateway}
conflicts:
  description: Objects in the way (not this mesh's, at a name the mesh wants).
  returned: always
  type: list
  elements: str
state:
  description: What cluster_reconcile starts from (objects as read, VIP store, reserved addresses, namespaces).
  returned: success
  type: dict
lines:
  description: The report as printable lines.
  returned: always
  type: list
  elements: str
cluster_identity:
  description: The cluster talked to.
  returned: always
  type: dict
  sample: {server: https://127.0.0.1:6443, kube_system_uid: 1b4e28ba-2fa1-11d2-883f-0016d3cca427}
'''

from typing import Any

from ansible_collections.meshlink.multicluster.plugins.module_utils._inspect import inspect_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._module import PLAN_ARGUMENT_SPEC, kube_module, run_with_cluster


ARGUMENT_SPEC = {
    **PLAN_ARGUMENT_SPEC,
    'gateway': {'type': 'dict', 'default': {}},
    'vip': {'type': 'dict', 'default': {}},
    'sample_apps': {'type': 'dict'},
    'checks': {'type': 'list', 'elements': 'str', 'default': []},
    'fail_on': {'type': 'str', 'choices': ['fail', 'warn', 'never'], 'default': 'fail'},
    'multinetwork': {'type': 'dict', 'default': {}},
}


def run(module: Any) -> None:
    """The module's work on ``module``: an AnsibleModule, or the action plugin's in-process one."""
    params = module.params
    run_with_cluster(module, lambda cluster: inspect_cluster(
        cluster, params['plan'], params['cluster'], gateway=params['gateway'], vip=params['vip'],
        sample_apps=params['sample_apps'], checks=params['checks'], fail_on=params['fail_on'],
        multinetwork=params['multinetwork']))


def main() -> None:
    run(kube_module(ARGUMENT_SPEC))


if __name__ == '__main__':
    main()
