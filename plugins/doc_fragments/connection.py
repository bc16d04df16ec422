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
      - Setting it names the cluster, so the E(K8S_AUTH_*) variables are ignored (see the notes).
      - When the task names no cluster and no E(K8S_AUTH_*) variable does either, the default
        kubeconfig (E(KUBECONFIG), else C(~/.kube/config)) and its current context are used when
        it exists, then the in-cluster service account.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_KUBECONFIG).
    type: path
  context:
    description:
      - Name of the kubeconfig context of the cluster; one inventory host per context.
      - Setting it names the cluster, so the E(K8S_AUTH_*) variables are ignored (see the notes).
      - If not set, the kubeconfig's current context. The result's C(connection.context)
        says which context was used.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://127.0.0.1:6443).
      - With O(api_key), O(username) and O(password), or O(client_cert) and O(client_key), no
        kubeconfig is read at all; otherwise it overrides the server of the kubeconfig context.
      - Setting it names the cluster, so the E(K8S_AUTH_*) variables are ignored (see the notes).
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token to authenticate with; it replaces the credentials of the kubeconfig user and
        wins over O(username)/O(password).
      - Keep it in Ansible Vault or an AWX/AAP credential; it is never logged.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - User name for HTTP basic authentication, together with O(password).
      - Kubernetes API servers since 1.19 do not accept basic authentication themselves; this is
        for an authenticating proxy in front of the API server.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password of O(username); never logged.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Not set means V(true).
      - This option decides, also over a kubeconfig that says C(insecure-skip-tls-verify).
        Set V(false) only for throwaway clusters.
      - Environment variables (only when the task names no cluster) E(K8S_AUTH_VALIDATE_CERTS),
        else E(K8S_AUTH_VERIFY_SSL); as for M(kubernetes.core.k8s), only V(0), V(false) and V(no)
        (any case) mean false.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate (bundle) that signed the API server's certificate.
      - Environment variables (only when the task names no cluster) E(K8S_AUTH_CA_CERT), else
        E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate to authenticate with.
      - Environment variables (only when the task names no cluster) E(K8S_AUTH_CLIENT_CERT), else
        E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Environment variables (only when the task names no cluster) E(K8S_AUTH_CLIENT_KEY), else
        E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through.
      - When not set, the kubernetes Python library decides; its recent releases use the proxy
        variables of the environment (E(HTTPS_PROXY), E(NO_PROXY)), as M(kubernetes.core.k8s) does
        with the same library.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_PROXY).
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, domains and networks reached without O(proxy), for example
        V(localhost,.svc,10.0.0.0/8).
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description:
      - Headers for the proxy of O(proxy).
      - Environment variables (only when the task names no cluster)
        E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH), E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) and
        E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - V(user:password) for the proxy (C(Proxy-Authorization) basic); never logged.
        type: str
      basic_auth:
        description:
          - V(user:password) sent as C(Authorization) basic to the proxy; never logged.
        type: str
      user_agent:
        description: C(User-Agent) for the proxy.
        type: str
  persist_config:
    description:
      - Whether to write refreshed credentials (an expired OIDC token, for example) back to the
        kubeconfig file, as the kubernetes Python library can. Not set means V(false).
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_PERSIST_CONFIG).
    type: bool
  impersonate_user:
    description:
      - User to act as (C(Impersonate-User) header on every request, like C(kubectl --as)); the
        credential needs the C(impersonate) permission.
      - M(meshlink.multicluster.connectivity_check) refuses it, because the exec API connection of the
        kubernetes Python library cannot carry the header.
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to act as (one C(Impersonate-Group) header each, like C(kubectl --as-group)); needs
        O(impersonate_user).
      - Environment variable (only when the task names no cluster) E(K8S_AUTH_IMPERSONATE_GROUPS),
        comma-separated.
    type: list
    elements: str
  request_timeout:
    description:
      - Seconds to wait for each API request, so that an unreachable cluster fails the task
        instead of hanging it.
    type: int
    default: 30
requirements:
  - kubernetes >= 31.0.0 (the Python client)
notes:
  - 'The connection is one bundle. When the task names its cluster (O(kubeconfig), O(context) or
    O(host) set, in the task or through C(module_defaults)), every connection value comes from the
    task and every E(K8S_AUTH_*) environment variable is ignored; a warning names the ignored
    variables. Only when the task names no cluster are the E(K8S_AUTH_*) variables used, each for the
    option the task leaves unset. So an AWX/AAP Kubernetes credential (E(K8S_AUTH_HOST),
    E(K8S_AUTH_API_KEY), ...) of one cluster never mixes with a O(context) of another.'
  - The variables, their alternative names and their reading are the ones M(kubernetes.core.k8s)
    uses, so a credential means the same cluster to both collections' tasks when the task names no
    cluster.
  - One API client is built per module call and every list of services is handled in that
    one call, so a cluster costs one connection and one discovery per task.
  - Results have C(connection) (V(context), V(server) and V(source) - V(task), V(environment) or
    V(default)) and C(cluster_identity) (V(server) and V(kube_system_uid), the uid of namespace
    C(kube-system), null when the credential may not read it), so two tasks can tell whether they
    reached the same cluster.
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
