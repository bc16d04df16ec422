#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_verify
short_description: Request every service one cluster consumes, from its client pod
version_added: 0.2.0
description:
  - For every host this cluster consumes in the plan, runs the request from the client pod of the
    consumer namespace through the Kubernetes exec API, with retries until a deadline, exactly as
    M(meshlink.multicluster.connectivity_check) does (no kubectl binary needed).
  - The URL is C(<scheme>://<host>:<first port><path>) unless C(request.urls) names the host.
  - 'Multi-network topologies, on a primary: first what its istiod shows, read as C(istioctl) reads
    it (port-forward to the istiod pod through the Kubernetes API, C(pods/portforward)) - every
    cluster it reads is C(synced) (C(/debug/clusterz), what C(istioctl remote-clusters) prints),
    and for every cluster it serves and every service consumed there, a connected sidecar of the
    consumer namespace has the endpoints behind the source network''s east-west gateway
    (C(/debug/edsz), gateways from C(/debug/networkz)). Then the requests, with the
    C(.svc.cluster.local) names.'
  - Changes nothing, so it runs in check mode too.
author:
  - Meshlink contributors (@meshlink)
options:
  client:
    description: The client pod - C(namespace) (default each consumer namespace), C(label_selector) (default
      C(app=sleep)), C(container) (default C(sleep)).
    type: dict
    default: {}
  request:
    description: C(scheme) (V(http) or V(https)), C(path) (default C(/ip)), C(urls) (host to URL), C(expected_status) (default C([200])),
      C(version_path) and C(version_samples) (see O(versions)).
    type: dict
    default: {}
  retries:
    description: Attempts after the first.
    type: int
    default: 30
  delay:
    description: Seconds between attempts.
    type: int
    default: 2
  timeout:
    description: Deadline of each pair, in seconds.
    type: int
    default: 120
  attempt_timeout:
    description: Deadline of one attempt, in seconds.
    type: int
    default: 10
  fail:
    description: Fail when a pair does not answer (after reporting every pair).
    type: bool
    default: true
  istio_namespace:
    description: Multi-network - the namespace of istiod, whose debug endpoints a primary's run reads.
    type: str
    default: istio-system
  versions:
    description:
      - For each service with versioned routing, also request C(request.version_path) (default
        C(/hostname), which go-httpbin - Istio's httpbin sample - answers with the pod's name)
        C(request.version_samples) times (default 3); every answer must come from a pod of the
        routed subset, whose Deployment the sample apps name C(<service>-<subset>).
      - Meant for the sample apps (the role sets it with C(meshlink_deploy_sample_apps)); with your own
        apps name the Deployments that way or leave it off.
    type: bool
    default: false
extends_documentation_fragment:
  - meshlink.multicluster.cluster_of_plan
  - meshlink.multicluster.connection
  - meshlink.multicluster.attributes.read_only
'''

EXAMPLES = r'''
---
- name: Request every remote service from this cluster's sleep pods
  meshlink.multicluster.cluster_verify:
    plan: "{{ meshlink_plan }}"
    cluster: "{{ inventory_hostname }}"
    request:
      path: /headers
'''

RETURN = r'''
lines:
  description: One line per consumer and host - status, latency, attempts, or why it failed.
  returned: always
  type: list
  elements: str
  sample: ['cluster1 → httpbin.bar.global: 200 in 41 ms after 1 attempt(s)']
results:
  description: The result of every request, as connectivity_check returns it per target, with its C(namespace).
  returned: always
  type: list
  elements: dict
pairs:
  description: Number of consumer and host pairs checked.
  returned: always
  type: int
failed_pairs:
  description: Number of pairs that did not answer.
  returned: always
  type: int
'''

from typing import Any

from ansible_collections.meshlink.multicluster.plugins.module_utils._module import PLAN_ARGUMENT_SPEC, kube_module, run_with_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._verify import verify_cluster


ARGUMENT_SPEC = {
    **PLAN_ARGUMENT_SPEC,
    'client': {'type': 'dict', 'default': {}},
    'request': {'type': 'dict', 'default': {}},
    'retries': {'type': 'int', 'default': 30},
    'delay': {'type': 'int', 'default': 2},
    'timeout': {'type': 'int', 'default': 120},
    'attempt_timeout': {'type': 'int', 'default': 10},
    'fail': {'type': 'bool', 'default': True},
    'istio_namespace': {'type': 'str', 'default': 'istio-system'},
    'versions': {'type': 'bool', 'default': False},
}


def run(module: Any) -> None:
    """The module's work on ``module``: an AnsibleModule, or the action plugin's in-process one."""
    params = module.params
    run_with_cluster(module, lambda cluster: verify_cluster(
        cluster, params['plan'], params['cluster'], client=params['client'], request=params['request'],
        retries=params['retries'], delay=params['delay'], timeout=params['timeout'],
        attempt_timeout=params['attempt_timeout'], fail=params['fail'], istio_namespace=params['istio_namespace'],
        versions=params['versions']))


def main() -> None:
    run(kube_module(ARGUMENT_SPEC))


if __name__ == '__main__':
    main()
