#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: preflight
short_description: Check that a cluster is ready for multicluster .global services, before anything is written
version_added: 0.1.0
description:
  - Reads one cluster and reports, per check, V(pass), V(warn) or V(fail) with a message and a
    hint. Writes nothing.
  - 'Checks: V(api) (the context answers); V(networking_api) (C(networking.istio.io) is served,
    and which version is used); V(istio_namespace); V(istio_version) (istiod image tag: from
    1.8.6/1.9.5 the procedure needs C(PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH=true) on istiod (a
    warning: it re-opens CVE-2021-31921; missing, a failure) and C(ISTIO_META_ROUTER_MODE=sni-dnat)
    on the ingress gateways; from 1.19 it cannot work); V(ingress_gateway) (a Service
    C(app=istio-ingressgateway) in istio-system with port 15443); V(multicluster_gateway) (a
    Gateway with tls mode AUTO_PASSTHROUGH for C(*.global) on 15443); V(global_destination_rule)
    (a DestinationRule for C(*.global) with ISTIO_MUTUAL); V(global_dns) (a C(global:53) block
    in the CoreDNS Corefile, a C(global) stubDomain of kube-dns, or Istio DNS proxying with
    C(ISTIO_META_DNS_CAPTURE) in the mesh config); V(egress_gateway) (when a service consumed
    here uses mode C(egress_gateway): the egress gateway Service and
    C(ISTIO_META_REQUESTED_NETWORK_VIEW=external)); V(vip_pool) (the pool suits the Istio version).'
  - The gateway checks only fail in a cluster that exports services, the DestinationRule and DNS
    checks only in one that consumes them; elsewhere they pass with "not needed".
  - When the context does not answer, only the V(api) check is reported.
author:
  - Meshlink contributors (@meshlink)
options:
  services:
    description:
      - The services of the mesh, normally RV(meshlink.multicluster.mesh_plan#module:services);
        they decide what this cluster exports and consumes.
    type: list
    elements: dict
    default: []
  cluster:
    description: The inventory host name of this cluster, as used in the services.
    type: str
    required: true
  vip_pool:
    description: The VIP pool that will be used; default the pool for the cluster's istiod version.
    type: str
  checks:
    description: The checks to run; default all.
    type: list
    elements: str
    choices: [api, networking_api, istio_namespace, istio_version, ingress_gateway, multicluster_gateway,
              global_destination_rule, global_dns, egress_gateway, vip_pool]
  fail_on:
    description:
      - V(fail) fails the task when a check fails, V(warn) also when one warns, V(never) only
        reports. The message lists every failing check with its hint.
    type: str
    choices: [fail, warn, never]
    default: fail
extends_documentation_fragment:
  - meshlink.multicluster.connection
  - meshlink.multicluster.connection.action_group
  - meshlink.multicluster.attributes.read_only
'''

EXAMPLES = r'''
---
- name: Preflight of every cluster of the mesh
  meshlink.multicluster.preflight:
    context: "{{ meshlink_context }}"
    cluster: "{{ inventory_hostname }}"
    services: "{{ meshlink_plan.services }}"

- name: Only the Istio version and DNS, report without failing
  meshlink.multicluster.preflight:
    context: cluster1
    cluster: cluster1
    services: "{{ meshlink_plan.services }}"
    checks: [istio_version, global_dns]
    fail_on: never
  register: preflight
'''

RETURN = r'''
checks:
  description: One entry per check run, in a fixed order; a check may report more than one entry (V(istio_version)).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: global_dns, status: fail, message: Nothing resolves .global names, hint: Turn on Istio DNS proxying}
istio_version:
  description: The istiod version, null when it could not be read.
  returned: always
  type: str
  sample: 1.7.8
networking_api_version:
  description: The C(networking.istio.io) version the other modules will use, null when not served.
  returned: always
  type: str
  sample: v1
default_vip_pool:
  description: The VIP pool for this istiod version.
  returned: always
  type: str
  sample: 240.0.0.0/16
summary:
  description: Number of checks per status.
  returned: always
  type: dict
  sample: {pass: 9, warn: 1, fail: 0}
'''

from ansible_collections.meshlink.multicluster.plugins.module_utils._module import kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._preflight import CHECKS, preflight_report


def main() -> None:
    module = kube_module({
        'services': {'type': 'list', 'elements': 'dict', 'default': []},
        'cluster': {'type': 'str', 'required': True},
        'vip_pool': {'type': 'str'},
        'checks': {'type': 'list', 'elements': 'str', 'choices': list(CHECKS)},
        'fail_on': {'type': 'str', 'choices': ['fail', 'warn', 'never'], 'default': 'fail'},
    })
    params = module.params
    run_with_cluster(module, lambda cluster: preflight_report(
        cluster, params['services'], params['cluster'], vip_pool=params['vip_pool'], checks=params['checks'],
        fail_on=params['fail_on']))


if __name__ == '__main__':
    main()
