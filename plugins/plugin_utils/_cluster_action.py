# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Controller-side help for the per-cluster modules (cluster_inspect, cluster_reconcile, ...).

One inventory host is one cluster. Its connection is the host's ``meshlink_*`` variables,
resolved here once for every per-cluster module, so that roles and plays need no
``module_defaults`` and a role imported into a user's own play cannot silently fall through to
the kubeconfig's current context:

- a task that names its cluster (kubeconfig, context or host among its options) wins, as one
  bundle (the module ignores ``K8S_AUTH_*`` then); other task options (validate_certs, a
  timeout) apply on top of the host's connection;
- else the host variables (``meshlink_context``, ``meshlink_kubeconfig``, ``meshlink_host``, ...);
- else, when the host names no cluster, the ``K8S_AUTH_*`` environment (AWX's Kubernetes
  credential), which the module reads itself;
- else the task fails naming the variables to set.

On the controller (``connection: local``) the module's work runs in the action plugin's own
process (``_in_process``): the action plugins import their module, and with it the kubernetes
library, when ansible-core loads them in its main process, so every worker inherits the imports.
The helpers above the ActionBase import are plain Python, imported by unit tests without Ansible.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

# Module option -> host variable. Kept equal to _client.CONNECTION_OPTIONS by a unit test.
HOST_VARIABLES = {
    'kubeconfig': 'meshlink_kubeconfig',
    'context': 'meshlink_context',
    'host': 'meshlink_host',
    'api_key': 'meshlink_api_key',
    'username': 'meshlink_username',
    'password': 'meshlink_password',
    'validate_certs': 'meshlink_validate_certs',
    'ca_cert': 'meshlink_ca_cert',
    'client_cert': 'meshlink_client_cert',
    'client_key': 'meshlink_client_key',
    'proxy': 'meshlink_proxy',
    'no_proxy': 'meshlink_no_proxy',
    'impersonate_user': 'meshlink_impersonate_user',
    'impersonate_groups': 'meshlink_impersonate_groups',
    'request_timeout': 'meshlink_request_timeout',
}
NAMING = ('kubeconfig', 'context', 'host')
NAMING_ENVIRONMENT = ('K8S_AUTH_KUBECONFIG', 'K8S_AUTH_CONTEXT', 'K8S_AUTH_HOST')


class ConnectionMissing(Exception):
    """The host names no cluster and the environment names none either."""


def _given(value: Any) -> bool:
    return value is not None and value != '' and value != [] and value != {}


def host_connection(task_args: Mapping[str, Any], lookup: Callable[[str], Any], environ: Mapping[str, str],
                    host: str) -> Dict[str, Any]:
    """Connection options to add to a per-cluster module's arguments (module docstring).

    ``lookup(variable)`` returns the templated host variable, or None when it is not set.
    """
    if any(_given(task_args.get(option)) for option in NAMING):
        return {}  # the task names its cluster: its options are the connection, whole
    found = {}
    for option, variable in HOST_VARIABLES.items():
        if _given(task_args.get(option)):
            continue  # a task option that names no cluster (validate_certs, a timeout) applies on top
        value = lookup(variable)
        if _given(value):
            found[option] = value
    if any(option in found for option in NAMING):
        return found
    if any(environ.get(name) for name in NAMING_ENVIRONMENT):
        # The module takes the K8S_AUTH_* bundle; host values that do not name a cluster
        # (validate_certs, a CA, a timeout) still apply on top of it.
        return found
    raise ConnectionMissing(
        'Host %s names no cluster to connect to: set meshlink_context (a context of meshlink_kubeconfig, or of '
        '~/.kube/config), or meshlink_kubeconfig, or meshlink_host with meshlink_api_key, for this host - or run with '
        'a Kubernetes credential that sets K8S_AUTH_HOST (AWX). The kubeconfig\'s current context is never used '
        'implicitly: it may be another cluster.' % host)


def source_gateways(plan: Mapping[str, Any], cluster: str, inspection_of: Callable[[str], Optional[Mapping[str, Any]]],
                    overrides: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``{source: {address, port}}`` for the clusters ``cluster`` consumes from: an override
    (``meshlink_gateway_overrides``) first, else what that cluster's inspection found."""
    result: Dict[str, Any] = {}
    overrides = overrides or {}
    part = (plan.get('clusters') or {}).get(cluster) or {}
    for service in part.get('consumes') or []:
        source = service.get('cluster')
        if source in result:
            continue
        override = overrides.get(source)
        if isinstance(override, Mapping) and override:
            result[source] = {'address': override.get('address'), 'port': override.get('port')}
            continue
        inspection = inspection_of(source) or {}
        gateway = inspection.get('gateway') if isinstance(inspection, Mapping) else None
        if isinstance(gateway, Mapping) and gateway.get('address'):
            result[source] = {'address': gateway.get('address'), 'port': gateway.get('port')}
    return result


def override_problems(plan: Mapping[str, Any], cluster: str, overrides: Any) -> List[str]:
    """The ``meshlink_gateway_overrides`` entries ``cluster`` would use (the sources it consumes
    from), checked as its reconcile checks them - an IP address or a host name, a port 1-65535 -
    so that the inspection, before any cluster is written, stops the run on a bad one (the
    reconcile of the consumer comes after the other clusters may have written)."""
    from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import (  # pylint: disable=import-outside-toplevel
        address_problem,
        port_number,
    )
    if not isinstance(overrides, Mapping):
        return []
    problems: List[str] = []
    seen = set()
    part = (plan.get('clusters') or {}).get(cluster) or {}
    for service in part.get('consumes') or []:
        source = service.get('cluster')
        override = overrides.get(source)
        if source in seen or not (isinstance(override, Mapping) and override):
            continue  # no override: the source's inspection gives the gateway
        seen.add(source)
        address = override.get('address')
        if not isinstance(address, str) or not address:
            problems.append('meshlink_gateway_overrides.%s.address: %r is empty or not text - give the IP address or '
                            'host name of the gateway of %s' % (source, address, source))
        else:
            problem = address_problem(address)
            if problem:
                problems.append('meshlink_gateway_overrides.%s.address: %s (an IP address or a host name)'
                                % (source, problem))
        if port_number(override.get('port')) is None:
            problems.append('meshlink_gateway_overrides.%s.port: %r is not a port (1-65535)'
                            % (source, override.get('port')))
    return problems


def _get(mapping: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def reader_states(plan: Mapping[str, Any], cluster: str,
                  inspection_of: Callable[[str], Optional[Mapping[str, Any]]]) -> Dict[str, Any]:
    """Multi-network: for each primary that reads ``cluster``, the state of its remote secret for
    ``cluster`` as that primary's inspection saw it (decides whether a token is minted)."""
    part = _get(plan, 'clusters', cluster) or {}
    return {reader: {'remote_secret': _get(inspection_of(reader), 'state', 'remote_secrets', cluster)}
            for reader in part.get('read_by') or []}


def source_ports(plan: Mapping[str, Any], cluster: str,
                 inspection_of: Callable[[str], Optional[Mapping[str, Any]]]) -> Dict[str, Any]:
    """Multi-network: the ports of each source Service ``cluster`` consumes (for stub Services)."""
    part = _get(plan, 'clusters', cluster) or {}
    ports: Dict[str, Any] = {}
    for service in part.get('consumes') or []:
        key = '%s.%s' % (service.get('name'), service.get('namespace'))
        found = _get(inspection_of(service.get('cluster')), 'exported_ports', key)
        if found:
            ports[key] = found
    return ports


def minted_tokens(plan: Mapping[str, Any], cluster: str,
                  reconcile_of: Callable[[str], Optional[Mapping[str, Any]]]) -> Dict[str, Any]:
    """Multi-network: for each cluster the primary ``cluster`` reads, the token that cluster's
    reconcile minted for it in this run (None: none was needed)."""
    part = _get(plan, 'clusters', cluster) or {}
    return {peer: {'token': _get(reconcile_of(peer), 'peer_tokens', cluster)} for peer in part.get('reads') or []}


def cross_cluster_problems(inspections: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """Multi-network: what no cluster can judge alone - one mesh ID, one root of trust, Istio
    minor versions within one of each other (on the clusters of this run)."""
    from ansible_collections.meshlink.multicluster.plugins.module_utils._istio import parse_version  # noqa: E501 pylint: disable=import-outside-toplevel
    problems = []
    ids = {h: i.get('mesh_id') for h, i in inspections.items() if i.get('mesh_id')}
    if len(set(ids.values())) > 1:
        problems.append('the clusters do not share one mesh ID (%s): set values.global.meshID the same everywhere'
                        % ', '.join('%s: %s' % kv for kv in sorted(ids.items())))
    roots = {h: i.get('root_digest') for h, i in inspections.items() if i.get('root_digest')}
    if len(set(roots.values())) > 1:
        problems.append('the clusters do not share one root of trust (root certificate in istio-ca-root-cert: %s): '
                        'plug the same root into every cluster\'s cacerts'
                        % ', '.join('%s: %s' % kv for kv in sorted(roots.items())))
    versions = {h: parse_version(i.get('istio_version')) for h, i in inspections.items() if i.get('istio_version')}
    minors = {h: v[:2] for h, v in versions.items() if v}
    if minors and max(m[1] for m in minors.values()) - min(m[1] for m in minors.values()) > 1:
        problems.append('Istio minor versions differ by more than one (%s): upgrade one minor version at a time'
                        % ', '.join('%s: %d.%d' % (h, m[0], m[1]) for h, m in sorted(minors.items())))
    return problems


def duplicate_identities(identities: Mapping[str, Optional[Mapping[str, Any]]]) -> List[str]:
    """Problems when two inventory hosts reach the same cluster (same kube-system namespace uid)."""
    seen: Dict[str, str] = {}
    problems = []
    for host in sorted(identities):
        identity = identities[host] or {}
        uid = identity.get('kube_system_uid')
        if not uid:
            continue
        if uid in seen:
            problems.append('inventory hosts %s and %s reach the same cluster (%s, kube-system uid %s): each host must '
                            'be its own cluster - fix their meshlink_context/meshlink_host'
                            % (seen[uid], host, identity.get('server', '?'), uid))
        else:
            seen[uid] = host
    return problems


try:  # the helpers above are plain Python (unit tests import them without Ansible)
    from ansible.errors import AnsibleActionFail
    from ansible.plugins.action import ActionBase

    from ansible_collections.meshlink.multicluster.plugins.plugin_utils._in_process import (
        can_run_in_process,
        module_argument_spec,
        run_in_process,
        task_environment,
    )
except ImportError:  # pragma: no cover
    ActionBase = object  # type: ignore[assignment,misc]
    AnsibleActionFail = Exception  # type: ignore[assignment,misc]


def stored_variables(task_vars: Mapping[str, Any], host: str) -> Optional[Mapping[str, Any]]:
    """``host``'s variables as stored, before templating (this host's are ``task_vars``); None
    when ``hostvars`` cannot give them (no ``raw_get``, unknown host)."""
    if host == task_vars.get('inventory_hostname'):
        return task_vars
    hostvars = task_vars.get('hostvars')
    raw_get = getattr(hostvars, 'raw_get', None)
    if raw_get is None or host not in hostvars:
        return None
    variables = raw_get(host)
    return variables if isinstance(variables, Mapping) else None


def templated_host_var(templar: Any, task_vars: Mapping[str, Any], host: str, name: str) -> Any:
    """``hostvars[host][name]`` templated (in that host's context), None when not set."""
    hostvars = task_vars.get('hostvars') or {}
    if host not in hostvars or name not in hostvars[host]:
        return None
    return templar.template(hostvars[host][name])


def registered(task_vars: Mapping[str, Any], host: str, name: str, templated: Callable[[], Any]) -> Any:
    """What ``host`` registered as ``name`` in this run, as stored (None when nothing).

    A task's result holds nothing Ansible would template (its strings are untrusted data), so
    the stored value is what templating gives, without the copy templating makes of every
    string: templating each cluster's inspection and the plan into every task's arguments took
    most of setup's controller time at 8 clusters (a 1.2 MB plan, per task and host;
    benchmarks/README.md). Callers only read the value; what a module gets is copied on the way
    (a JSON round trip). A value that is not a mapping is no registered result: ``templated()``
    gives it, templated as any variable."""
    variables = stored_variables(task_vars, host)
    if variables is None:
        return templated()
    if name not in variables:
        return None
    value = variables[name]
    return value if isinstance(value, Mapping) else templated()


class ClusterAction(ActionBase):  # type: ignore[misc,valid-type]
    """Runs the per-cluster module with the host's connection (``host_connection``) added, the
    options the task leaves out that this host registered earlier in the run
    (``REGISTERED_DEFAULTS``), and whatever else ``extra_args`` adds from the controller's view
    of the run."""

    MODULE = ''
    # Option -> (registered variable, key path in it): taken as registered when the task omits
    # the option. The role's tasks omit them (see ``_registered``).
    REGISTERED_DEFAULTS: Dict[str, tuple] = {'plan': ('meshlink_plan',)}
    # What the module ran with (set by ``run``; subclasses read the plan from it).
    module_args: Mapping[str, Any] = {}
    # The module file (its ARGUMENT_SPEC and run), imported with the action plugin so that it
    # runs in this process on the controller (plugin_utils/_in_process.py); None: always shipped.
    CODE: Any = None
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()  # the module validates its own arguments

    def _var(self, task_vars: Mapping[str, Any], name: str) -> Any:
        if name not in task_vars:
            return None
        return self._templar.template(task_vars[name])

    def _host_var(self, task_vars: Mapping[str, Any], host: str, name: str) -> Any:
        return templated_host_var(self._templar, task_vars, host, name)

    def _registered(self, task_vars: Mapping[str, Any], host: str, name: str) -> Any:
        return registered(task_vars, host, name, lambda: self._host_var(task_vars, host, name))

    def extra_args(self, args: Dict[str, Any], task_vars: Mapping[str, Any]) -> Dict[str, Any]:
        """Arguments the action adds (subclasses); ``args`` are the task's."""
        return {}

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        import os  # pylint: disable=import-outside-toplevel

        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        host = task_vars.get('inventory_hostname', '?')
        try:
            args.update(host_connection(args, lambda name: self._var(task_vars, name), os.environ, host))
        except ConnectionMissing as error:
            raise AnsibleActionFail(str(error)) from None
        for option, (variable, *path) in self.REGISTERED_DEFAULTS.items():
            if args.get(option) is None:
                value = _get(self._registered(task_vars, host, variable), *path)
                if value is not None:
                    args[option] = value
        args.update(self.extra_args(args, task_vars))
        self.module_args = args
        code = self.CODE
        if code is not None and can_run_in_process(self._connection.transport, self._var(task_vars, 'meshlink_in_process')):
            environment: Dict[str, Any] = {}
            self._compute_environment_string(environment)
            with task_environment(environment):
                result.update(run_in_process(self.MODULE, module_argument_spec(code.ARGUMENT_SPEC), code.run, args,
                                             check_mode=bool(self._task.check_mode), diff=bool(self._task.diff)))
            return result
        result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
        return result
