# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Connection options shared by every module of meshlink.multicluster that talks to a cluster."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(meshlink.multicluster.connection) and C(meshlink.multicluster.connection.action_group)."""

    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file. Several paths may be joined with V(:) as in E(KUBECONFIG).
      - When neither this option nor O(context) nor complete explicit credentials (O(host) with
        O(api_key), or O(host) with O(client_cert) and O(client_key)) are given, the default
        kubeconfig (E(KUBECONFIG), else C(~/.kube/config)) is used when it exists, then the
        in-cluster service account.
      - If not set, the value of the E(K8S_AUTH_KUBECONFIG) environment variable is used.
    type: path
  context:
    description:
      - Name of the kubeconfig context of the cluster; one inventory host per context.
      - If not set, the value of the E(K8S_AUTH_CONTEXT) environment variable is used, else the
        kubeconfig's current context.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://127.0.0.1:6443).
      - With O(api_key) (or O(client_cert) and O(client_key)) no kubeconfig is read at all;
        otherwise it overrides the server of the kubeconfig context.
      - If not set, the value of the E(K8S_AUTH_HOST) environment variable is used.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with; it replaces the credentials of the kubeconfig user.
      - If not set, the value of the E(K8S_AUTH_API_KEY) environment variable is used.
      - Keep it in Ansible Vault or an AWX/AAP credential; it is never logged.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - This option decides, also over a kubeconfig that says C(insecure-skip-tls-verify).
        Set V(false) only for throwaway clusters.
      - If not set, the value of the E(K8S_AUTH_VERIFY_SSL) environment variable is used.
    type: bool
    default: true
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate (bundle) that signed the API server's certificate.
      - If not set, the value of the E(K8S_AUTH_SSL_CA_CERT) environment variable is used.
    type: path
  client_cert:
    description:
      - Path to a client certificate to authenticate with.
      - If not set, the value of the E(K8S_AUTH_CERT_FILE) environment variable is used.
    type: path
  client_key:
    description:
      - Path to the key of O(client_cert).
      - If not set, the value of the E(K8S_AUTH_KEY_FILE) environment variable is used.
    type: path
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through.
      - Proxy settings of the environment (E(HTTPS_PROXY)) are not used.
      - If not set, the value of the E(K8S_AUTH_PROXY) environment variable is used.
    type: str
  request_timeout:
    description:
      - Seconds to wait for each API request, so that an unreachable cluster fails the task
        instead of hanging it.
    type: int
    default: 30
requirements:
  - kubernetes >= 31.0.0 (the Python client)
notes:
  - One API client is built per module call and every list of services is handled in that
    one call, so a cluster costs one connection and one discovery per task.
  - The environment variables are the ones M(kubernetes.core.k8s) reads, so an AWX/AAP
    Kubernetes credential works for both collections.
'''

    # Fragment ``meshlink.multicluster.connection.action_group``: the modules that belong to
    # the action group of meta/runtime.yml.
    ACTION_GROUP = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/meshlink.multicluster.k8s) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - meshlink.multicluster.k8s
'''
