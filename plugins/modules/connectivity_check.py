#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: connectivity_check
short_description: Check that a pod reaches a URL (or runs a command) through the Kubernetes exec API
version_added: 0.1.0
description:
  - Runs the request from inside a pod, the way step 5 of Istio's "multicluster via gateways"
    procedure does with C(kubectl exec ... curl httpbin.bar.global:8000/ip), but through the
    exec API (no kubectl binary).
  - 'A URL target runs C(curl -sS -w "\n%{http_code}" --max-time N --url URL) in the container (the
    image needs curl) and passes when the HTTP status is in O(expected_status). The URL is given to
    curl with C(--url) and no shell runs, so it is never read as a curl option or a shell word. A
    command target passes when it exits 0.'
  - Failed attempts (no Running pod yet, connection errors, another status) are repeated after
    O(delay) seconds, at most O(retries) more times and never past O(timeout) seconds; the task
    then fails with the last error. Errors retrying cannot fix (no such container, no permission
    to exec, curl missing) fail at once.
  - Changes nothing, so it reports C(changed=false) and runs in check mode too.
author:
  - Meshlink contributors (@meshlink)
options:
  namespace:
    description: Namespace of the pod.
    type: str
    required: true
  pod:
    description: Name of the pod. Exactly one of O(pod) and O(label_selector).
    type: str
  label_selector:
    description:
      - Label selector of the pod, for example V(app=sleep); the first Running pod by name is used.
    type: str
  container:
    description:
      - Container to run in. Default the pod's C(kubectl.kubernetes.io/default-container)
        annotation, else its first container.
    type: str
  url:
    description:
      - URL to request, for example V(http://httpbin.bar.global:8000/ip).
      - Checked before anything runs - V(http://) or V(https://), a host name or IP address (IPv6 in
        brackets), an optional port 1-65535; no whitespace (a YAML block scalar's trailing newline
        included) or control characters, ASCII only (percent-encode other characters of the path).
    type: str
  command:
    description: Command (argv, no shell) to run instead of a request.
    type: list
    elements: str
  expected_status:
    description: HTTP statuses that count as success for URL targets.
    type: list
    elements: int
    default: [200]
  retries:
    description: How many times a failed attempt is repeated (so at most O(retries) + 1 attempts).
    type: int
    default: 30
  delay:
    description: Seconds between two attempts.
    type: int
    default: 2
  timeout:
    description: Deadline in seconds for all attempts of one target.
    type: int
    default: 120
  attempt_timeout:
    description:
      - Seconds one attempt may take (passed to curl as C(--max-time)), never more than what is
        left of O(timeout).
    type: int
    default: 10
  targets:
    description:
      - Several checks from the same pod in one task, each with its own O(timeout). Instead of
        O(url)/O(command).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the target in the results; default the URL or the command.
        type: str
      url:
        description: URL to request, checked as O(url).
        type: str
      command:
        description: Command to run.
        type: list
        elements: str
      expected_status:
        description: HTTP statuses that count as success; default O(expected_status).
        type: list
        elements: int
extends_documentation_fragment:
  - meshlink.multicluster.connection
  - meshlink.multicluster.connection.action_group
  - meshlink.multicluster.attributes.read_only
notes:
  - Needs the C(pods/exec) permission (C(create)) in O(namespace).
  - O(impersonate_user) and O(impersonate_groups) are refused - the exec API connection of the
    kubernetes Python library cannot send the impersonation headers, so the command would run with
    the credential's own rights.
'''

EXAMPLES = r'''
---
- name: Seed step 5 - httpbin in cluster2 from the sleep pod of cluster1
  meshlink.multicluster.connectivity_check:
    context: cluster1
    namespace: foo
    label_selector: app=sleep
    container: sleep
    url: http://httpbin.bar.global:8000/ip
  register: check

- name: Several services at once, with a shorter deadline each
  meshlink.multicluster.connectivity_check:
    context: cluster1
    namespace: foo
    label_selector: app=sleep
    container: sleep
    timeout: 60
    targets:
      - name: httpbin
        url: http://httpbin.bar.global:8000/status/200
      - name: teapot
        url: http://httpbin.bar.global:8000/status/418
        expected_status: [418]
'''

RETURN = r'''
status_code:
  description: HTTP status of the first target's last attempt; null for a command or when no response came.
  returned: always
  type: int
  sample: 200
body:
  description: Response body (URL) or standard output (command) of the first target, at most 64 KiB.
  returned: always
  type: str
  sample: '{"origin": "127.0.0.6"}'
attempts:
  description: Attempts made, all targets together.
  returned: always
  type: int
  sample: 1
elapsed_ms:
  description: Milliseconds spent, all targets together.
  returned: always
  type: int
  sample: 142
pod:
  description: The pod the checks ran in.
  returned: always
  type: str
  sample: sleep-5d8c8f8d8b-abcde
container:
  description: The container the checks ran in.
  returned: always
  type: str
  sample: sleep
cluster_identity:
  description: Which cluster answered, whatever its context is called.
  returned: always
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
  returned: always
  type: dict
  contains:
    context:
      description: The kubeconfig context (the current context when none was given), else the server.
      type: str
      sample: cluster1
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
results:
  description:
    - One entry per target with C(name), C(url), C(command), C(ok), C(status_code), C(body), C(rc),
      C(stderr), C(attempts), C(elapsed_ms), C(pod), C(container) and C(error) (the last error
      when it failed).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: 'http://httpbin.bar.global:8000/ip', ok: true, status_code: 200, attempts: 1, error: null}
'''

from ansible_collections.meshlink.multicluster.plugins.module_utils._check import run_connectivity_check
from ansible_collections.meshlink.multicluster.plugins.module_utils._module import kube_module, run_with_cluster


def main() -> None:
    module = kube_module(
        {
            'namespace': {'type': 'str', 'required': True},
            'pod': {'type': 'str'},
            'label_selector': {'type': 'str'},
            'container': {'type': 'str'},
            'url': {'type': 'str'},
            'command': {'type': 'list', 'elements': 'str'},
            'expected_status': {'type': 'list', 'elements': 'int', 'default': [200]},
            'retries': {'type': 'int', 'default': 30},
            'delay': {'type': 'int', 'default': 2},
            'timeout': {'type': 'int', 'default': 120},
            'attempt_timeout': {'type': 'int', 'default': 10},
            'targets': {'type': 'list', 'elements': 'dict', 'options': {
                'name': {'type': 'str'},
                'url': {'type': 'str'},
                'command': {'type': 'list', 'elements': 'str'},
                'expected_status': {'type': 'list', 'elements': 'int'},
            }},
        },
        mutually_exclusive=[('pod', 'label_selector'), ('url', 'command', 'targets')],
        required_one_of=[('pod', 'label_selector'), ('url', 'command', 'targets')],
    )
    params = module.params
    run_with_cluster(module, lambda cluster: run_connectivity_check(
        cluster, params['namespace'], pod=params['pod'], label_selector=params['label_selector'],
        container=params['container'], url=params['url'], command=params['command'],
        expected_status=params['expected_status'], targets=params['targets'], retries=params['retries'],
        delay=params['delay'], timeout=params['timeout'], attempt_timeout=params['attempt_timeout']))


if __name__ == '__main__':
    main()
