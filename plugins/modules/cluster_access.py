#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_access
short_description: Grant the collection exactly the rights it uses in one cluster, with a bounded token
version_added: 0.2.0
description:
  - Run with an administrator's credentials. Creates, for the mesh of O(plan), the ServiceAccount
    C(<service_account_namespace>/meshlink-<mesh>) and what it needs and nothing more - a ClusterRole
    C(meshlink-<mesh>-reader) for the cluster-wide reads (namespaces, nodes for the nodePort fallback,
    the Istio networking objects) and the label changes of the plan's namespaces; a Role
    C(meshlink-<mesh>) in every namespace of the plan (the Istio objects, and with O(sample_apps) the
    sample workloads); a Role C(meshlink-<mesh>-verify) in every consumer namespace (read pods,
    C(pods/exec), only what verify uses); a Role C(meshlink-<mesh>-istio) in each namespace a component lives
    in - istiod's (its Deployment, the mesh config), the VIP store's (create, and read/update/delete of
    its own name only), the gateways' (their Services); a Role in
    C(kube-system) to read the C(coredns)/C(kube-dns) ConfigMaps. The plan's namespaces are created
    when missing, so the Roles have somewhere to live; a teardown keeps them (they hold the grants).
  - With O(kubeconfig_path), requests a token for the ServiceAccount with a bounded lifetime
    (TokenRequest, O(token_lifetime)) and writes a kubeconfig for it (mode 0600); the token is never
    returned or logged. Run again to renew it.
  - With O(render_to), writes the RBAC objects as YAML to that file and changes nothing, for review
    or C(kubectl apply -f).
  - O(state=absent) removes the grants and the namespaces it created once nothing else is in them.
author:
  - Meshlink contributors (@meshlink)
options:
  state:
    description: V(present) grants, V(absent) revokes.
    type: str
    choices: [present, absent]
    default: present
  service_account_namespace:
    description: Namespace of the collection's ServiceAccount (created when missing).
    type: str
    default: meshlink-system
  istio_namespace:
    description:
      - istiod's namespace - its Deployment, the mesh config and root certificate, and in the multi-network
        topologies the remote secrets, the reader ServiceAccounts and istiod's debug port.
    type: str
    default: istio-system
  vip_store_namespace:
    description:
      - Namespace of the VIP store (meshlink_vip_store_namespace); default O(istio_namespace). Created (as this
        access's) when it is none of the plan's, the ServiceAccount's or istiod's.
    type: str
  gateway_namespace:
    description: Namespace of the ingress gateway Service (meshlink_gateway_namespace); default O(istio_namespace).
    type: str
  eastwest_gateway_namespace:
    description:
      - Multi-network - namespace of the east-west gateway Service and its Gateway object
        (meshlink_eastwest_gateway_namespace); default O(istio_namespace).
    type: str
  vip_store_name:
    description: Name of the VIP store (default C(meshlink-vips-<mesh>)).
    type: str
  extra_namespaces:
    description: Namespaces to grant beyond the plan's (for example for services added later).
    type: list
    elements: str
    default: []
  sample_apps:
    description: Also grant the sample workloads' kinds (Deployments, Services, ServiceAccounts) in the plan's namespaces.
    type: bool
    default: true
  token_lifetime:
    description: Seconds the token of O(kubeconfig_path) is valid (600 to 604800).
    type: raw
    default: 28800
  kubeconfig_path:
    description: Where to write the ServiceAccount's kubeconfig (one context named after O(cluster)).
    type: path
  server:
    description: The API server URL to put in that kubeconfig; default the one this task connects to.
    type: str
  render_to:
    description: Write the objects as YAML to this file instead of applying them.
    type: path
  reader_secrets:
    description:
      - Multi-network topologies - the reader ClusterRole C(meshlink-<mesh>-istio-reader) (Istio's reader
        rules, which peers' istiods use to read this cluster) includes Secrets. It is granted here, so that
        setup only binds it (creating a role with rules one does not hold needs an unrestricted C(escalate)).
    type: bool
    default: true
extends_documentation_fragment:
  - meshlink.multicluster.cluster_of_plan
  - meshlink.multicluster.connection
attributes:
  check_mode:
    description: Writes are dry runs; no token is requested and no file written.
    support: full
  diff_mode:
    description: Returns every object before and after.
    support: full
  idempotent:
    description: A second run changes no object (a new token is requested whenever O(kubeconfig_path) is set).
    support: partial
'''

EXAMPLES = r'''
---
- name: Grant the collection its rights in this cluster and write a kubeconfig valid 8 hours
  meshlink.multicluster.cluster_access:
    kubeconfig: ~/.kube/admin.yaml
    context: "{{ inventory_hostname }}"
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
    kubeconfig_path: "~/.kube/meshlink/{{ inventory_hostname }}.kubeconfig"

- name: Only write the RBAC for review
  meshlink.multicluster.cluster_access:
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
    render_to: "/tmp/{{ inventory_hostname }}-rbac.yaml"
'''

RETURN = r'''
objects:
  description: Every object granted (or removed), with its C(action).
  returned: success
  type: list
  elements: dict
service_account:
  description: The ServiceAccount as C(namespace/name).
  returned: success
  type: str
  sample: meshlink-system/meshlink-default
kubeconfig:
  description: The kubeconfig written.
  returned: when kubeconfig_path is set
  type: str
expires:
  description: When its token expires.
  returned: when kubeconfig_path is set
  type: str
  sample: '2026-12-03T23:00:00Z'
lines:
  description: What was done, as printable lines.
  returned: success
  type: list
  elements: str
'''

from typing import Any

from ansible_collections.meshlink.multicluster.plugins.module_utils._access import DEFAULT_TOKEN_SECONDS, reconcile_access
from ansible_collections.meshlink.multicluster.plugins.module_utils._module import PLAN_ARGUMENT_SPEC, kube_module, run_with_cluster


ARGUMENT_SPEC = {
    **PLAN_ARGUMENT_SPEC,
    'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    'service_account_namespace': {'type': 'str', 'default': 'meshlink-system'},
    'istio_namespace': {'type': 'str', 'default': 'istio-system'},
    'vip_store_name': {'type': 'str'},
    'vip_store_namespace': {'type': 'str'},
    'gateway_namespace': {'type': 'str'},
    'eastwest_gateway_namespace': {'type': 'str'},
    'extra_namespaces': {'type': 'list', 'elements': 'str', 'default': []},
    'sample_apps': {'type': 'bool', 'default': True},
    'token_lifetime': {'type': 'raw', 'default': DEFAULT_TOKEN_SECONDS, 'no_log': False},
    'kubeconfig_path': {'type': 'path'},
    'server': {'type': 'str'},
    'render_to': {'type': 'path'},
    'reader_secrets': {'type': 'bool', 'default': True},
}


def run(module: Any) -> None:
    """The module's work on ``module``: an AnsibleModule, or the action plugin's in-process one."""
    params = module.params
    run_with_cluster(module, lambda cluster: reconcile_access(
        cluster, params['plan'], params['cluster'], state=params['state'],
        sa_namespace=params['service_account_namespace'], istio_namespace=params['istio_namespace'],
        store_name=params['vip_store_name'], extra_namespaces=params['extra_namespaces'],
        sample_apps=params['sample_apps'], token_lifetime=params['token_lifetime'],
        kubeconfig_path=params['kubeconfig_path'], server=params['server'], render_to=params['render_to'],
        reader_secrets=params['reader_secrets'], store_namespace=params['vip_store_namespace'],
        gateway_namespace=params['gateway_namespace'], eastwest_namespace=params['eastwest_gateway_namespace']))


def main() -> None:
    run(kube_module(ARGUMENT_SPEC))


if __name__ == '__main__':
    main()
