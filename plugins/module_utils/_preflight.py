# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Preflight: can this cluster take part in the ``.global`` mesh, before anything is written?

Each check returns ``{name, status, message, hint}`` with status pass, warn or fail. The
evaluation functions (``evaluate_*``) are pure and take the objects as the API returns them;
``run_preflight`` reads those objects (one list per kind) and calls them.

Checks (DESIGN.md section 1, "Before you begin", and the pitfalls):
  api                      the context answers (GET /version)
  networking_api           networking.istio.io is served (and which version is used)
  istio_namespace          istio-system exists
  istio_version            istiod version rules (1.8.6+/1.9.5+ legacy flag, 1.19+ impossible)
  ingress_gateway          a Service app=istio-ingressgateway in istio-system with port 15443
  multicluster_gateway     a Gateway with tls AUTO_PASSTHROUGH for *.global on port 15443
  global_destination_rule  a DestinationRule for *.global with ISTIO_MUTUAL
  global_dns               DNS for .global: CoreDNS server block, kube-dns stubDomains, or
                           Istio DNS proxying (ISTIO_META_DNS_CAPTURE)
  egress_gateway           when a consumed service uses mode egress_gateway: the egress gateway
                           Service and ISTIO_META_REQUESTED_NETWORK_VIEW=external
  vip_pool                 the VIP pool is valid and suits the Istio version
The gateway checks matter where the cluster exports services, the DestinationRule and DNS
checks where it consumes them; elsewhere a missing piece is reported as pass ("not needed").
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.meshlink.multicluster.plugins.module_utils import _istio
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import (
    ObjectRef,
    core_path,
    group_path,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._mesh import (
    consumed_by,
    exported_by,
    normalize_services,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    ISTIO_NAMESPACE,
    ISTIO_PLURALS,
    MULTICLUSTER_GATEWAY_PORT,
    NETWORKING_GROUP,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import parse_pool, pool_warnings

try:
    import yaml
except ImportError:  # PyYAML comes with the kubernetes library; without it the mesh config is scanned
    yaml = None

CHECKS = ('api', 'networking_api', 'istio_namespace', 'istio_version', 'ingress_gateway', 'multicluster_gateway',
          'global_destination_rule', 'global_dns', 'egress_gateway', 'vip_pool')
STATUSES = ('pass', 'warn', 'fail')


def result(name: str, status: str, message: str, hint: str = '') -> Dict[str, str]:
    return {'name': name, 'status': status, 'message': message, 'hint': hint}


# -- pure evaluations ------------------------------------------------------------------------

def evaluate_ingress_gateway(services: Sequence[Dict[str, Any]], exports: bool) -> Dict[str, str]:
    """A Service labelled app=istio-ingressgateway in istio-system exposing port 15443."""
    name = 'ingress_gateway'
    with_port = [s for s in services
                 if any(p.get('port') == MULTICLUSTER_GATEWAY_PORT for p in (s.get('spec') or {}).get('ports') or [])]
    if with_port:
        names = ', '.join(sorted(s['metadata']['name'] for s in with_port))
        return result(name, 'pass', 'Service %s/%s exposes port %d' % (ISTIO_NAMESPACE, names, MULTICLUSTER_GATEWAY_PORT))
    status = 'fail' if exports else 'pass'
    suffix = '' if exports else ' (not needed: this cluster exports no service)'
    if services:
        names = ', '.join(sorted(s['metadata']['name'] for s in services))
        return result(name, status, 'The ingress gateway Service %s/%s has no port %d%s'
                      % (ISTIO_NAMESPACE, names, MULTICLUSTER_GATEWAY_PORT, suffix),
                      'Add the tls port 15443 to the ingress gateway (the multicluster gateways install does)')
    return result(name, status, 'No Service labelled app=istio-ingressgateway in %s%s' % (ISTIO_NAMESPACE, suffix),
                  'Install the Istio ingress gateway with port 15443 in this cluster')


def _gateway_serves_global(server: Dict[str, Any]) -> bool:
    port = server.get('port') or {}
    tls = server.get('tls') or {}
    hosts = [h.split('/', 1)[-1] for h in server.get('hosts') or []]
    return (port.get('number') == MULTICLUSTER_GATEWAY_PORT and tls.get('mode') == 'AUTO_PASSTHROUGH'
            and any(h in ('*.global', '*') for h in hosts))


def evaluate_multicluster_gateway(gateways: Sequence[Dict[str, Any]], exports: bool) -> Dict[str, str]:
    """A Gateway with a server on 15443, tls mode AUTO_PASSTHROUGH, hosts ``*.global``."""
    name = 'multicluster_gateway'
    for gateway in gateways:
        if any(_gateway_serves_global(s) for s in (gateway.get('spec') or {}).get('servers') or []):
            meta = gateway['metadata']
            return result(name, 'pass', 'Gateway %s/%s passes *.global through on port %d'
                          % (meta.get('namespace'), meta.get('name'), MULTICLUSTER_GATEWAY_PORT))
    if not exports:
        return result(name, 'pass', 'No AUTO_PASSTHROUGH Gateway for *.global (not needed: this cluster exports '
                      'no service)')
    return result(name, 'fail', 'No Gateway passes *.global through on port %d (tls mode AUTO_PASSTHROUGH)'
                  % MULTICLUSTER_GATEWAY_PORT,
                  'Create the multicluster Gateway of the gateways install: hosts ["*.global"], port 15443, '
                  'protocol TLS, tls.mode AUTO_PASSTHROUGH, selector istio: ingressgateway')


def evaluate_global_destination_rule(rules: Sequence[Dict[str, Any]], consumes: bool) -> Dict[str, str]:
    """A DestinationRule for host ``*.global`` with ``trafficPolicy.tls.mode: ISTIO_MUTUAL``."""
    name = 'global_destination_rule'
    found_other = None
    for rule in rules:
        spec = rule.get('spec') or {}
        if spec.get('host') != '*.global':
            continue
        meta = rule['metadata']
        mode = ((spec.get('trafficPolicy') or {}).get('tls') or {}).get('mode')
        if mode == 'ISTIO_MUTUAL':
            return result(name, 'pass', 'DestinationRule %s/%s sets ISTIO_MUTUAL for *.global'
                          % (meta.get('namespace'), meta.get('name')))
        found_other = '%s/%s has tls mode %s' % (meta.get('namespace'), meta.get('name'), mode or '(unset)')
    if not consumes:
        return result(name, 'pass', 'No ISTIO_MUTUAL DestinationRule for *.global (not needed: this cluster '
                      'consumes no service)')
    return result(name, 'fail', 'No DestinationRule for *.global with ISTIO_MUTUAL%s'
                  % ('; DestinationRule %s' % found_other if found_other else ''),
                  'Create a DestinationRule in istio-system: host "*.global", trafficPolicy.tls.mode ISTIO_MUTUAL '
                  '(traffic to 15443 must be mutual TLS for the gateway to route it by SNI)')


_GLOBAL_SERVER_BLOCK = re.compile(r'(^|\s)\.?global\.?:53\s*\{', re.MULTILINE)


def corefile_has_global(corefile: Optional[str]) -> bool:
    """True when a CoreDNS Corefile has a ``global:53 { ... }`` server block."""
    return bool(corefile) and bool(_GLOBAL_SERVER_BLOCK.search(corefile or ''))


def kube_dns_has_global(stub_domains: Optional[str]) -> bool:
    """True when kube-dns ``stubDomains`` (JSON) has a ``global`` entry."""
    if not stub_domains:
        return False
    try:
        domains = json.loads(stub_domains)
    except ValueError:
        return False
    return isinstance(domains, dict) and any(k.strip('.') == 'global' for k in domains)


def mesh_dns_capture(mesh_config: Optional[str]) -> bool:
    """True when the mesh config (``istio`` ConfigMap, key ``mesh``) turns on DNS proxying:
    ``defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE: "true"``."""
    if not mesh_config:
        return False
    if yaml is not None:
        try:
            mesh = yaml.safe_load(mesh_config)
        except yaml.YAMLError:
            return False
        metadata = ((mesh or {}).get('defaultConfig') or {}).get('proxyMetadata') or {}
        return str(metadata.get('ISTIO_META_DNS_CAPTURE', '')).lower() == 'true'
    return bool(re.search(r'ISTIO_META_DNS_CAPTURE:\s*["\']?true', mesh_config, re.IGNORECASE))


def evaluate_global_dns(coredns: Optional[Dict[str, Any]], kube_dns: Optional[Dict[str, Any]],
                        istio_config: Optional[Dict[str, Any]], consumes: bool) -> Dict[str, str]:
    """Something resolves ``.global`` names: CoreDNS, kube-dns, or Istio's DNS proxying."""
    name = 'global_dns'
    if coredns is not None and corefile_has_global((coredns.get('data') or {}).get('Corefile')):
        return result(name, 'pass', 'CoreDNS (kube-system/coredns) has a global:53 server block')
    if kube_dns is not None and kube_dns_has_global((kube_dns.get('data') or {}).get('stubDomains')):
        return result(name, 'pass', 'kube-dns (kube-system/kube-dns) has a stubDomain for global')
    if istio_config is not None and mesh_dns_capture((istio_config.get('data') or {}).get('mesh')):
        return result(name, 'pass', 'Istio DNS proxying is on (ISTIO_META_DNS_CAPTURE in %s/istio mesh config)'
                      % ISTIO_NAMESPACE)
    if not consumes:
        return result(name, 'pass', 'No DNS for .global found (not needed: this cluster consumes no service)')
    return result(name, 'fail', 'Nothing resolves .global names: no global:53 block in kube-system/coredns, no '
                  'global stubDomain in kube-system/kube-dns, no ISTIO_META_DNS_CAPTURE in the %s/istio mesh config'
                  % ISTIO_NAMESPACE,
                  'Turn on Istio DNS proxying (meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE: '
                  '"true") or forward global:53 to istiocoredns in the CoreDNS Corefile; otherwise clients fail '
                  'with "Could not resolve host"')


def evaluate_egress_gateway(services: Sequence[Dict[str, Any]], deployments: Sequence[Dict[str, Any]],
                            needs_egress: bool) -> Dict[str, str]:
    """With egress mode: an egress gateway Service and ISTIO_META_REQUESTED_NETWORK_VIEW=external."""
    name = 'egress_gateway'
    if not needs_egress:
        return result(name, 'pass', 'Not needed: no service consumed here uses mode egress_gateway')
    if not services:
        return result(name, 'fail', 'No Service labelled app=istio-egressgateway in %s, but a consumed service '
                      'uses mode egress_gateway' % ISTIO_NAMESPACE,
                      'Install the Istio egress gateway, or use mode sidecar for those services')
    if not deployments:
        return result(name, 'warn', 'No istio-egressgateway Deployment found to check %s' % _istio.NETWORK_VIEW_ENV,
                      'The egress gateway needs %s=external' % _istio.NETWORK_VIEW_ENV)
    missing = []
    for deployment in deployments:
        views = _istio.proxy_env(deployment).get(_istio.NETWORK_VIEW_ENV, '')
        if 'external' not in [v.strip() for v in views.split(',')]:
            missing.append('%s (%s=%s)' % (deployment['metadata']['name'], _istio.NETWORK_VIEW_ENV, views or 'unset'))
    if missing:
        return result(name, 'fail', 'Egress gateway Deployment %s does not request the external network view'
                      % ', '.join(missing),
                      'Set %s=external in the egress gateway environment (values.gateways.istio-egressgateway.env), '
                      'else it drops traffic for the network: external endpoints' % _istio.NETWORK_VIEW_ENV)
    return result(name, 'pass', 'The egress gateway requests the external network view')


def evaluate_vip_pool(pool: Optional[str], version: Optional[_istio.Version]) -> Dict[str, str]:
    name = 'vip_pool'
    chosen = pool or _istio.default_pool_for(version)
    try:
        network = parse_pool(chosen)
    except InputError as error:
        return result(name, 'fail', str(error).replace('pool:', 'vip_pool:', 1), 'Use a CIDR such as 240.0.0.0/16')
    messages = pool_warnings(network, version)
    source = 'given' if pool else 'default for istiod %s' % (_istio.format_version(version) or 'of unknown version')
    if messages:
        return result(name, 'warn', ' '.join(messages), 'Set vip_pool to 240.0.0.0/16 (class E, never routed)')
    return result(name, 'pass', 'VIP pool %s (%s)' % (network, source))


def summarize(checks: Sequence[Dict[str, str]]) -> Dict[str, int]:
    summary = {status: 0 for status in STATUSES}
    for check in checks:
        summary[check['status']] += 1
    return summary


def failing(checks: Sequence[Dict[str, str]], fail_on: str) -> List[Dict[str, str]]:
    """The checks that make the module fail for ``fail_on`` (fail | warn | never)."""
    statuses = {'fail': ('fail',), 'warn': ('fail', 'warn'), 'never': ()}[fail_on]
    return [c for c in checks if c['status'] in statuses]


# -- reading the cluster ---------------------------------------------------------------------

def run_preflight(cluster: Any, exports: bool, consumes: bool, needs_egress: bool, vip_pool: Optional[str],
                  selected: Sequence[str]) -> Dict[str, Any]:
    """Run the selected checks against one cluster; returns the module result (without ``changed``)."""
    checks: List[Dict[str, str]] = []
    out: Dict[str, Any] = {'checks': checks, 'istio_version': None, 'networking_api_version': None,
                           'default_vip_pool': _istio.default_pool_for(None)}
    want = set(selected)

    def add(name: str, evaluate: Callable[[], Dict[str, str]]) -> None:
        if name not in want:
            return
        try:
            checks.append(evaluate())
        except ApiError as error:
            checks.append(result(name, 'fail', str(error), 'Check the permissions of the credentials on this '
                                 'cluster' if error.status in (401, 403) else ''))

    # Without a working context every other check would fail with the same connection error.
    try:
        version = cluster.server_version()
    except ApiError as error:
        checks.append(result('api', 'fail', str(error), 'Check kubeconfig/context (or host/api_key) for this '
                             'cluster and that the API server is up'))
        out['summary'] = summarize(checks)
        return out
    if 'api' in want:
        checks.append(result('api', 'pass', 'Context %s answers (Kubernetes %s)'
                             % (cluster.context, version.get('gitVersion', '?'))))

    served: List[str] = []
    networking_version: Optional[str] = None
    discovery_error: Optional[ApiError] = None
    try:
        served = cluster.served_versions(NETWORKING_GROUP)
        if served:
            networking_version = cluster.networking_version()
            out['networking_api_version'] = networking_version
    except ApiError as error:
        discovery_error = error

    def networking() -> Dict[str, str]:
        if discovery_error is not None:
            raise discovery_error
        if not served:
            return result('networking_api', 'fail', '%s is not served: Istio is not installed' % NETWORKING_GROUP,
                          'Install Istio (its CRDs and istiod) in this cluster')
        return result('networking_api', 'pass', '%s served: %s (using %s)'
                      % (NETWORKING_GROUP, ', '.join(served), networking_version))

    add('networking_api', networking)

    namespace: Optional[Dict[str, Any]] = None
    namespace_error: Optional[ApiError] = None
    try:
        namespace = cluster.get(core_path('namespaces', name=ISTIO_NAMESPACE),
                                ObjectRef('Namespace', name=ISTIO_NAMESPACE))
    except ApiError as error:
        namespace_error = error

    def istio_namespace() -> Dict[str, str]:
        if namespace_error is not None:
            raise namespace_error
        if namespace is None:
            return result('istio_namespace', 'fail', 'Namespace %s does not exist' % ISTIO_NAMESPACE,
                          'Install Istio in this cluster')
        return result('istio_namespace', 'pass', 'Namespace %s exists' % ISTIO_NAMESPACE)
    add('istio_namespace', istio_namespace)

    deployments: List[Dict[str, Any]] = []
    if want & {'istio_version', 'egress_gateway', 'vip_pool'}:
        try:
            deployments = cluster.list(group_path('apps', 'v1', 'deployments', ISTIO_NAMESPACE),
                                       ObjectRef('Deployment', ISTIO_NAMESPACE))
        except ApiError as error:
            if 'istio_version' in want:
                checks.append(result('istio_version', 'fail', str(error), 'The credentials need to list '
                                     'Deployments in %s to read the istiod version' % ISTIO_NAMESPACE))
                want.discard('istio_version')
    istiod = _istio.find_istiod(deployments)
    istio_version = istiod['version'] if istiod else None
    out['istio_version'] = _istio.format_version(istio_version)
    out['default_vip_pool'] = _istio.default_pool_for(istio_version)

    if 'istio_version' in want:
        if istiod is None:
            checks.append(result('istio_version', 'fail', 'No istiod (or istio-pilot) Deployment in %s'
                                 % ISTIO_NAMESPACE, 'Install Istio; the version decides whether .global works'))
        else:
            gateway_envs = {d['metadata']['name']: _istio.proxy_env(d)
                            for d in _istio.gateway_deployments(deployments, 'istio-ingressgateway')}
            for finding in _istio.version_findings(istio_version, istiod['env'], gateway_envs):
                checks.append(result('istio_version', finding['status'], finding['message'], finding['hint']))

    def services_with(app: str) -> List[Dict[str, Any]]:
        return cluster.list(core_path('services', ISTIO_NAMESPACE), ObjectRef('Service', ISTIO_NAMESPACE),
                            label_selector='app=%s' % app)

    add('ingress_gateway', lambda: evaluate_ingress_gateway(services_with('istio-ingressgateway'), exports))

    def istio_objects(kind: str) -> List[Dict[str, Any]]:
        if not networking_version:
            return []
        return cluster.list(group_path(NETWORKING_GROUP, networking_version, ISTIO_PLURALS[kind]), ObjectRef(kind))

    add('multicluster_gateway', lambda: evaluate_multicluster_gateway(istio_objects('Gateway'), exports))
    add('global_destination_rule',
        lambda: evaluate_global_destination_rule(istio_objects('DestinationRule'), consumes))

    def dns() -> Dict[str, str]:
        coredns = cluster.get(core_path('configmaps', 'kube-system', 'coredns'),
                              ObjectRef('ConfigMap', 'kube-system', 'coredns'))
        kube_dns = None if coredns is not None and corefile_has_global((coredns.get('data') or {}).get('Corefile')) \
            else cluster.get(core_path('configmaps', 'kube-system', 'kube-dns'),
                             ObjectRef('ConfigMap', 'kube-system', 'kube-dns'))
        istio_config = cluster.get(core_path('configmaps', ISTIO_NAMESPACE, 'istio'),
                                   ObjectRef('ConfigMap', ISTIO_NAMESPACE, 'istio'))
        return evaluate_global_dns(coredns, kube_dns, istio_config, consumes)

    add('global_dns', dns)
    add('egress_gateway', lambda: evaluate_egress_gateway(
        services_with('istio-egressgateway') if needs_egress else [],
        _istio.gateway_deployments(deployments, 'istio-egressgateway'), needs_egress))
    add('vip_pool', lambda: evaluate_vip_pool(vip_pool, istio_version))

    order = {name: index for index, name in enumerate(CHECKS)}
    checks.sort(key=lambda c: order.get(c['name'], len(order)))
    out['summary'] = summarize(checks)
    return out


def preflight_report(cluster: Any, services: Any, cluster_name: str, vip_pool: Optional[str] = None,
                     checks: Optional[Sequence[str]] = None, fail_on: str = 'fail') -> Dict[str, Any]:
    """The ``preflight`` module: what this cluster exports/consumes decides what must pass.

    Sets ``failed`` and ``msg`` (every failing check with its hint) when ``fail_on`` says so.
    """
    normalised = normalize_services(services, None)
    unknown = [c for c in checks or [] if c not in CHECKS]
    if unknown:
        raise InputError(['checks: unknown check(s) %s (known: %s)' % (', '.join(unknown), ', '.join(CHECKS))])
    if fail_on not in ('fail', 'warn', 'never'):
        raise InputError(['fail_on: %r is not fail, warn or never' % (fail_on,)])
    consumes = consumed_by(normalised, cluster_name)
    report = run_preflight(cluster, exports=bool(exported_by(normalised, cluster_name)), consumes=bool(consumes),
                           needs_egress=any(s['mode'] == 'egress_gateway' for s in consumes),
                           vip_pool=vip_pool, selected=list(checks or CHECKS))
    bad = failing(report['checks'], fail_on)
    if bad:
        report['failed'] = True
        report['msg'] = 'Preflight of %s (context %s): %d check(s) did not pass: %s' % (
            cluster_name, cluster.context, len(bad),
            '; '.join('[%s] %s%s' % (c['name'], c['message'], ' - hint: %s' % c['hint'] if c['hint'] else '')
                      for c in bad))
    return report


def report_lines(cluster_name: str, report: Dict[str, Any], vip_pool: Optional[str] = None) -> List[str]:
    """The report of one cluster as printable lines: a summary, then one line per check (and
    its hint when it did not pass)."""
    summary = report.get('summary') or {}
    lines = ['%s: Istio %s, networking.istio.io/%s, VIP pool %s | %d pass, %d warn, %d fail' % (
        cluster_name, report.get('istio_version') or 'unknown', report.get('networking_api_version') or '?',
        vip_pool or report.get('default_vip_pool') or '?', summary.get('pass', 0), summary.get('warn', 0),
        summary.get('fail', 0))]
    for check in report.get('checks') or []:
        lines.append('%-4s  %-26s %s' % (check['status'].upper(), check['name'], check.get('message') or ''))
        if check['status'] != 'pass' and check.get('hint'):
            lines.append('      %-26s hint: %s' % ('', check['hint']))
    return lines
