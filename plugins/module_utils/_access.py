# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Least privilege for the collection: the RBAC it needs, its ServiceAccount, a bounded token.

``access_objects`` (pure) renders, for one cluster of a plan, what an administrator grants so
that the collection's playbooks run with exactly the rights they use:

  ServiceAccount  <sa_namespace>/meshlink-<mesh>
  ClusterRole     meshlink-<mesh>-reader: the cluster-wide reads (namespaces, nodes for the
                  nodePort fallback, the Istio networking objects - every ServiceEntry address
                  must be avoided by a new VIP), and label changes of the plan's namespaces
  Role            meshlink-<mesh> in every namespace of the plan: the objects setup writes there
  Role            meshlink-<mesh>-verify in every consumer namespace: read pods, ``pods/exec``
  Role            meshlink-<mesh>-istio in each namespace a component lives in (one Role
                  when they are one namespace): istiod's namespace - its Deployment and the
                  gateways' (read), the mesh config and root certificate (read by name); the
                  VIP store's - create, and read/update/delete of the store's own name; the
                  ingress (and east-west) gateway's - its Services (read)
  Role            meshlink-<mesh>-dns in kube-system: read the coredns / kube-dns ConfigMaps
  and their bindings; the plan's namespaces are created (as this access's) so that the Roles
  have somewhere to live.

``request_token`` asks the API for a token of bounded lifetime (TokenRequest), and
``render_kubeconfig`` writes what a user or istiod needs to use it. Both serve the access
playbook and, for current Istio, the remote secrets.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import json

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    ISTIO_PLURALS,
    NETWORKING_GROUP,
    dns1123_label_problem,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import (
    Change,
    Desired,
    Writer,
    object_key,
    plan_changes,
    resource_path,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    ACCESS,
    COMPONENT_LABEL,
    is_access_object,
    is_ours,
    ownership_labels,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import checked_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import store_name_for

RBAC_GROUP = 'rbac.authorization.k8s.io'
MIN_TOKEN_SECONDS = 600          # the API server's own minimum for a TokenRequest
MAX_TOKEN_SECONDS = 7 * 86400
DEFAULT_TOKEN_SECONDS = 8 * 3600


def access_labels(mesh: str) -> Dict[str, str]:
    labels = ownership_labels(mesh, ACCESS)
    labels[COMPONENT_LABEL] = ACCESS
    return labels


def account_name(mesh: str) -> str:
    return 'meshlink-%s' % mesh


def _meta(name: str, namespace: Optional[str], mesh: str) -> Dict[str, Any]:
    meta: Dict[str, Any] = {'name': name, 'labels': access_labels(mesh)}
    if namespace:
        meta['namespace'] = namespace
    return meta


def _rule(groups: Sequence[str], resources: Sequence[str], verbs: Sequence[str],
          names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    rule: Dict[str, Any] = {'apiGroups': list(groups), 'resources': list(resources), 'verbs': list(verbs)}
    if names:
        rule['resourceNames'] = sorted(set(names))
    return rule


def _binding(kind: str, name: str, namespace: Optional[str], role_kind: str, role_name: str, mesh: str,
             sa_namespace: str) -> Dict[str, Any]:
    return {'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': kind, 'metadata': _meta(name, namespace, mesh),
            'roleRef': {'apiGroup': RBAC_GROUP, 'kind': role_kind, 'name': role_name},
            'subjects': [{'kind': 'ServiceAccount', 'name': account_name(mesh), 'namespace': sa_namespace}]}


ISTIO_KINDS = tuple(ISTIO_PLURALS.values())
WRITE = ('get', 'list', 'create', 'update', 'patch', 'delete')


def multinetwork_rules(plan: Dict[str, Any], cluster: str) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The multi-network topologies' extra rules: ``(cluster-wide, Istio namespace)``.

    Cluster-wide: the reader ClusterRole and its bindings, by name (``escalate``/``bind`` only
    on that role: the ServiceAccount grants Istio's reader rules without holding them), the
    network label of the Istio namespace. In the Istio namespace: the east-west Gateway and
    istiod's exposure, the reader ServiceAccounts and their tokens, the remote secrets, and
    (verify on a primary) the port-forward to istiod's debug port.
    """
    from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet as mn  # noqa: E501 pylint: disable=import-outside-toplevel
    mesh = plan['mesh']
    part = plan['clusters'][cluster]
    readers = [plan['istio'][r]['cluster_name'] for r in part['read_by']]
    role = mn.reader_role(mesh)
    # The reader ClusterRole itself is granted here (reader_role_object): creating a role with
    # rules one does not hold needs an unrestricted ``escalate``, which no least-privilege
    # account should have. Binding it needs only ``bind`` on its name.
    cluster_wide = [
        # Stub Services are found by label wherever they are (one left behind when its consumer left).
        _rule([''], ['services'], ['list']),
        _rule([RBAC_GROUP], ['clusterroles', 'clusterrolebindings'], ['list']),
        _rule([RBAC_GROUP], ['clusterrolebindings'], ['create']),
        _rule([RBAC_GROUP], ['clusterroles'], ['get', 'bind'], [role]),
        _rule([RBAC_GROUP], ['clusterrolebindings'], ['get', 'update', 'patch', 'delete'],
              [mn.reader_binding(mesh, r) for r in readers] or [mn.reader_binding(mesh, 'none')]),
    ]
    istio = [
        _rule([''], ['secrets', 'serviceaccounts'], ['create', 'get', 'list', 'update', 'patch', 'delete']),
        _rule([''], ['serviceaccounts/token'], ['create']),
        _rule([''], ['pods'], ['get', 'list']),
        _rule([''], ['pods/portforward'], ['create', 'get']),
        _rule([NETWORKING_GROUP], ISTIO_KINDS, WRITE),
    ]
    return cluster_wide, istio


def reader_role_object(mesh: str, secrets: bool) -> Dict[str, Any]:
    """The multi-network reader ClusterRole (Istio's reader rules), provisioned by the access
    playbook so that setup only binds it."""
    from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet as mn  # noqa: E501 pylint: disable=import-outside-toplevel
    return {'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': 'ClusterRole', 'metadata': _meta(mn.reader_role(mesh), None, mesh),
            'rules': mn.reader_rules(secrets)}


def _merged_rules(rules: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rules without repeats, in first-seen order (two component namespaces may be one)."""
    merged: List[Dict[str, Any]] = []
    for rule in rules:
        if rule not in merged:
            merged.append(rule)
    return merged


def component_rules(istio_namespace: str, store_namespace: str, store: str, gateway_namespace: str,
                    multinetwork: Optional[Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]] = None,
                    eastwest_namespace: Optional[str] = None) -> Dict[str, List[Dict[str, Any]]]:
    """The rules of Role ``meshlink-<mesh>-istio`` per namespace: each component where it lives.

    istiod's namespace: its Deployment and the gateways' (read), the mesh config and root
    certificate (read by name), and in the multi-network topologies the remote secrets, reader
    accounts and istiod's exposure. The VIP store's namespace: create, and the store's own name.
    The ingress gateway's and the east-west gateway's namespaces: their Services (read), and the
    east-west Gateway object (written). When some of them are one namespace, one Role holds all.
    """
    rules: Dict[str, List[Dict[str, Any]]] = {}

    def add(namespace: str, *more: Dict[str, Any]) -> None:
        rules[namespace] = _merged_rules(rules.get(namespace, []) + list(more))

    add(istio_namespace,
        _rule([''], ['configmaps'], ['get'], ['istio', 'istio-ca-root-cert']),
        _rule([''], ['services'], ['get', 'list']),
        _rule(['apps'], ['deployments'], ['get', 'list']),
        *(multinetwork[1] if multinetwork else []))
    add(store_namespace,
        _rule([''], ['configmaps'], ['create', 'list']),
        _rule([''], ['configmaps'], ['get', 'update', 'delete'], [store]))
    add(gateway_namespace, _rule([''], ['services'], ['get', 'list']))
    if multinetwork and eastwest_namespace:
        add(eastwest_namespace, _rule([''], ['services'], ['get', 'list']),
            _rule([NETWORKING_GROUP], ISTIO_KINDS, WRITE))
    return rules


def access_objects(part: Dict[str, Any], mesh: str, sa_namespace: str = 'meshlink-system',
                   istio_namespace: str = 'istio-system', store_name: Optional[str] = None,
                   extra_namespaces: Sequence[str] = (), sample_apps: bool = True,
                   multinetwork: Optional[Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]] = None,
                   store_namespace: Optional[str] = None, gateway_namespace: Optional[str] = None,
                   eastwest_namespace: Optional[str] = None) -> List[Dict[str, Any]]:
    """Everything an administrator grants in one cluster (module docstring), in apply order.

    ``store_namespace``, ``gateway_namespace`` and ``eastwest_namespace`` default to
    ``istio_namespace``; a component namespace that is none of the plan's, the ServiceAccount's
    or istiod's is created (as this access's) so that its Role has somewhere to live.
    """
    store_namespace = store_namespace or istio_namespace
    gateway_namespace = gateway_namespace or istio_namespace
    eastwest_namespace = eastwest_namespace or istio_namespace
    name = account_name(mesh)
    store = store_name or store_name_for(mesh)
    namespaces = sorted(set(part['namespaces']) | set(extra_namespaces))
    consumer_namespaces = sorted(set(part['consumer_namespaces']) | set(extra_namespaces))
    objects: List[Dict[str, Any]] = [
        {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _meta(sa_namespace, None, mesh)},
        {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': _meta(name, sa_namespace, mesh)},
    ]
    istio_roles = component_rules(istio_namespace, store_namespace, store, gateway_namespace, multinetwork,
                                  eastwest_namespace)
    # istiod's namespace is Istio's to create; the plan's namespaces and a store's of its own are ours.
    created = sorted((set(namespaces) | {store_namespace}) - {sa_namespace, istio_namespace, 'kube-system'})
    for namespace in created:
        objects.append({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _meta(namespace, None, mesh)})

    reader = '%s-reader' % name
    labelled = namespaces + ([istio_namespace] if multinetwork else [])
    reader_rules = [
        _rule([''], ['namespaces'], ['get', 'list']),
        _rule([''], ['namespaces'], ['patch', 'update'], labelled),
        _rule([''], ['nodes'], ['list']),
        _rule([NETWORKING_GROUP], ISTIO_KINDS, ['get', 'list']),
    ] + (multinetwork[0] if multinetwork else [])
    objects.append({'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': 'ClusterRole', 'metadata': _meta(reader, None, mesh),
                    'rules': reader_rules})
    objects.append(_binding('ClusterRoleBinding', reader, None, 'ClusterRole', reader, mesh, sa_namespace))

    writer_rules = [_rule([NETWORKING_GROUP], ISTIO_KINDS, WRITE)]
    if multinetwork and not sample_apps:
        writer_rules.append(_rule([''], ['services'], WRITE))  # stub Services
    if sample_apps:
        writer_rules += [_rule([''], ['services', 'serviceaccounts'], WRITE), _rule(['apps'], ['deployments'], WRITE)]
    for namespace in namespaces:
        objects.append({'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': 'Role', 'metadata': _meta(name, namespace, mesh),
                        'rules': writer_rules})
        objects.append(_binding('RoleBinding', name, namespace, 'Role', name, mesh, sa_namespace))
    verify = '%s-verify' % name
    for namespace in consumer_namespaces:
        objects.append({'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': 'Role', 'metadata': _meta(verify, namespace, mesh),
                        'rules': [_rule([''], ['pods'], ['get', 'list']), _rule([''], ['pods/exec'], ['create', 'get'])]})
        objects.append(_binding('RoleBinding', verify, namespace, 'Role', verify, mesh, sa_namespace))

    istio = '%s-istio' % name
    for namespace in sorted(istio_roles):
        objects.append({'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': 'Role', 'metadata': _meta(istio, namespace, mesh),
                        'rules': istio_roles[namespace]})
        objects.append(_binding('RoleBinding', istio, namespace, 'Role', istio, mesh, sa_namespace))
    dns = '%s-dns' % name
    objects.append({'apiVersion': '%s/v1' % RBAC_GROUP, 'kind': 'Role', 'metadata': _meta(dns, 'kube-system', mesh),
                    'rules': [_rule([''], ['configmaps'], ['get'], ['coredns', 'kube-dns'])]})
    objects.append(_binding('RoleBinding', dns, 'kube-system', 'Role', dns, mesh, sa_namespace))
    return objects


def token_seconds(value: Any) -> int:
    """A token lifetime: an int (or ASCII digits) between the API's minimum and a week."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    if number is None or not MIN_TOKEN_SECONDS <= number <= MAX_TOKEN_SECONDS:
        raise InputError(['token_lifetime: %r is not a number of seconds between %d and %d (tokens are bounded: '
                          'run the access playbook again to renew)' % (value, MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS)])
    return number


def request_token(cluster: Any, namespace: str, service_account: str, seconds: int,
                  audiences: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """A token of ``service_account`` valid ``seconds`` (TokenRequest): ``{token, expires}``.

    Always asks the API server (a TokenRequest has no dry run that says anything): callers in
    check mode do not call it.
    """
    spec: Dict[str, Any] = {'expirationSeconds': int(seconds)}
    if audiences:
        spec['audiences'] = list(audiences)
    body = {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenRequest', 'spec': spec}
    path = core_path('serviceaccounts', namespace, service_account) + '/token'
    answer = cluster.request('POST', path, ObjectRef('token of ServiceAccount', namespace, service_account),
                             'request', body=body) or {}
    status = answer.get('status') or {}
    if not status.get('token'):
        raise MeshlinkError('The API server of %s returned no token for ServiceAccount %s/%s'
                            % (cluster.context, namespace, service_account))
    return {'token': status['token'], 'expires': status.get('expirationTimestamp') or ''}


def ca_data(cluster: Any) -> Optional[str]:
    """Base64 of the CA bundle the connection trusts, for a kubeconfig (None: the system's)."""
    configuration = getattr(getattr(cluster, 'api_client', None), 'configuration', None)
    path = getattr(configuration, 'ssl_ca_cert', None)
    if not path or not os.path.exists(path):
        return None
    with open(path, 'rb') as handle:
        return base64.b64encode(handle.read()).decode('ascii')


def render_kubeconfig(name: str, server: str, token: str, ca: Optional[str] = None, insecure: bool = False,
                      tls_server_name: Optional[str] = None, namespace: Optional[str] = None) -> Dict[str, Any]:
    """A kubeconfig with one context ``name`` and inline credentials (what istiod accepts)."""
    cluster: Dict[str, Any] = {'server': server}
    if ca:
        cluster['certificate-authority-data'] = ca
    if insecure:
        cluster['insecure-skip-tls-verify'] = True
    if tls_server_name:
        cluster['tls-server-name'] = tls_server_name
    context: Dict[str, Any] = {'cluster': name, 'user': name}
    if namespace:
        context['namespace'] = namespace
    return {'apiVersion': 'v1', 'kind': 'Config', 'preferences': {}, 'current-context': name,
            'clusters': [{'name': name, 'cluster': cluster}],
            'contexts': [{'name': name, 'context': context}],
            'users': [{'name': name, 'user': {'token': token}}]}


def _existing(cluster: Any, desired: Sequence[Dict[str, Any]]) -> Dict[Any, Dict[str, Any]]:
    """The objects at the desired names, read one by one (an access run writes a few dozen)."""
    found = {}
    for obj in desired:
        key = object_key(obj)
        current = cluster.get(resource_path(key[0], key[1] or None, key[2]), ObjectRef(*key))
        if current is not None:
            current.setdefault('kind', key[0])
            found[key] = current
    return found


def reconcile_access(cluster: Any, plan: Any, name: str, state: str = 'present',
                     sa_namespace: str = 'meshlink-system', istio_namespace: str = 'istio-system',
                     store_name: Optional[str] = None, extra_namespaces: Sequence[str] = (),
                     sample_apps: bool = True, token_lifetime: Any = DEFAULT_TOKEN_SECONDS,
                     kubeconfig_path: Optional[str] = None, server: Optional[str] = None,
                     render_to: Optional[str] = None, reader_secrets: bool = True,
                     store_namespace: Optional[str] = None, gateway_namespace: Optional[str] = None,
                     eastwest_namespace: Optional[str] = None) -> Dict[str, Any]:
    """The ``cluster_access`` module: grant (or revoke) the collection's rights in one cluster."""
    plan = checked_plan(plan, name)
    mesh = plan['mesh']
    errors = []
    for option, value in (('service_account_namespace', sa_namespace), ('istio_namespace', istio_namespace),
                          ('vip_store_namespace', store_namespace), ('gateway_namespace', gateway_namespace),
                          ('eastwest_gateway_namespace', eastwest_namespace)):
        if value is None and option not in ('service_account_namespace', 'istio_namespace'):
            continue
        problem = dns1123_label_problem(value)
        if problem:
            errors.append('%s: %s' % (option, problem))
    for index, namespace in enumerate(extra_namespaces or []):
        problem = dns1123_label_problem(namespace)
        if problem:
            errors.append('extra_namespaces[%d]: %s' % (index, problem))
    seconds = token_seconds(token_lifetime) if state == 'present' and kubeconfig_path else None
    if errors:
        raise InputError(errors)
    extra_rules = multinetwork_rules(plan, name) if plan.get('istio') else None
    objects = access_objects(plan['clusters'][name], mesh, sa_namespace, istio_namespace, store_name,
                             extra_namespaces, sample_apps, extra_rules, store_namespace=store_namespace,
                             gateway_namespace=gateway_namespace, eastwest_namespace=eastwest_namespace)
    if plan.get('istio'):
        objects.append(reader_role_object(mesh, reader_secrets))
    if render_to:
        os.makedirs(os.path.dirname(os.path.abspath(render_to)), exist_ok=True)
        with open(render_to, 'w', encoding='utf-8') as handle:
            handle.write(''.join('---\n%s\n' % json.dumps(o, indent=2, sort_keys=False) for o in objects))
        return {'changed': False, 'objects': [{'kind': o['kind'], 'namespace': o['metadata'].get('namespace', ''),
                                               'name': o['metadata']['name'], 'action': 'rendered'} for o in objects],
                'rendered': render_to,
                'lines': ['%s: %d objects written to %s for review (nothing granted)' % (name, len(objects), render_to)]}
    existing = _existing(cluster, objects)
    if state == 'present':
        # A namespace that exists and is a user's stays as it is: only the Roles go into it. One
        # this mesh's setup created becomes the access's (it now holds the grants).
        desired = []
        for obj in objects:
            current = existing.get(object_key(obj))
            if obj['kind'] == 'Namespace' and current is not None and not (is_access_object(current)
                                                                           and is_ours(current, mesh)):
                if is_ours(current, mesh):
                    desired.append(Desired(obj, compare='labels', owned=False))
                continue
            desired.append(Desired(obj))
        changes, conflicts = plan_changes(desired, existing, mesh)
        if conflicts:
            raise MeshlinkError('Nothing was changed in %s: %s' % (cluster.context, '; '.join(conflicts)))
    else:
        changes = [Change('delete', key, existing=obj) for key, obj in existing.items()
                   if is_access_object(obj) and key[0] != 'Namespace']
        conflicts = []
    outcome = Writer(cluster, mesh).execute(changes)
    counts: Dict[str, int] = {}
    for obj in outcome.objects:
        counts[obj['action']] = counts.get(obj['action'], 0) + 1
    result: Dict[str, Any] = {'changed': outcome.changed, 'objects': outcome.objects, 'diff': outcome.diff,
                              'warnings': outcome.warnings, 'service_account': '%s/%s' % (sa_namespace,
                                                                                          account_name(mesh)),
                              'lines': ['%s: %s of ServiceAccount %s/%s: %s' % (
                                  name, 'grants' if state == 'present' else 'removal of the grants', sa_namespace,
                                  account_name(mesh), ', '.join('%d %s' % (n, a) for a, n in sorted(counts.items()))
                                  or 'nothing to do')]}
    if state == 'absent':
        namespaces = {k[2]: o for k, o in existing.items() if k[0] == 'Namespace' and is_access_object(o)}
        # Imported here: _teardown imports _multinet_flow, which imports this module (a cycle at import time).
        from ansible_collections.meshlink.multicluster.plugins.module_utils._teardown import (  # pylint: disable=import-outside-toplevel
            remove_empty_namespaces,
        )
        kept = remove_empty_namespaces(cluster, namespaces, mesh, name, outcome, Writer(cluster, mesh),
                                       keep_access=False)
        result['changed'] = outcome.changed
        result['lines'] += kept
        return result
    if kubeconfig_path:
        if getattr(cluster, 'dry_run', False):
            result['kubeconfig'] = None
            result['lines'].append('%s: would write %s with a token valid %ds' % (name, kubeconfig_path, seconds))
            return result
        token = request_token(cluster, sa_namespace, account_name(mesh), seconds)
        identity = cluster.identity()
        config = render_kubeconfig(name, server or identity['server'], token['token'], ca=ca_data(cluster),
                                   insecure=not getattr(cluster, 'verify_ssl', True))
        directory = os.path.dirname(os.path.abspath(kubeconfig_path))
        os.makedirs(directory, exist_ok=True)
        descriptor = os.open(kubeconfig_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, 'w', encoding='utf-8') as handle:
            handle.write(json.dumps(config, indent=2))
        os.chmod(kubeconfig_path, 0o600)
        result.update({'kubeconfig': kubeconfig_path, 'expires': token['expires'], 'changed': True})
        result['lines'].append('%s: %s written (context %s, token of %s valid until %s)'
                               % (name, kubeconfig_path, name, result['service_account'], token['expires']))
    return result
