# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Verify one consumer cluster (``cluster_verify``): every service it consumes, from its client pod.

``verify_targets`` (pure) turns the plan's share of a cluster into requests: per consumer
namespace (or the one client namespace given), one URL per consumed host,
``<scheme>://<host>:<first port><path>`` unless ``urls`` names the host. ``verify_cluster``
runs them through the Kubernetes exec API (``_check``), each with its retries and deadline,
and returns one line per pair; ``failed`` when a pair did not answer.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.meshlink.multicluster.plugins.module_utils._check import PodExec, check_target, validate_targets
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._istiod_debug import (
    IstiodDebug,
    cluster_endpoints,
    cluster_status,
    connected_proxies,
    network_gateways,
    wait_for,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import checked_plan, is_multi_network

REQUEST_DEFAULTS = {'scheme': 'http', 'path': '/ip', 'urls': {}, 'expected_status': [200], 'version_path': '/hostname',
                    'version_samples': 3}
CLIENT_DEFAULTS = {'namespace': None, 'label_selector': 'app=sleep', 'container': 'sleep'}


def verify_targets(part: Dict[str, Any], request: Dict[str, Any], client_namespace: Optional[str] = None,
                   versions: bool = False) -> List[Dict[str, Any]]:
    """``[{namespace, targets: [{name, url, expected_status}]}]`` of one consumer cluster (pure).

    ``versions``: for each service with versioned routing, also ``version_samples`` requests of
    ``version_path`` (``/hostname``: the answering pod's name, as go-httpbin, Istio's sample,
    answers it) whose answer must be a pod of the routed subset (``version_of``)."""
    if request['scheme'] not in ('http', 'https'):
        raise InputError(['request.scheme: %r is not http or https' % (request['scheme'],)])
    path = request['path']
    if not isinstance(path, str) or any(ch.isspace() or ord(ch) < 32 for ch in path):
        raise InputError(['request.path: %r must be a URL path without whitespace' % (path,)])
    path = path if path.startswith('/') else '/' + path
    calls: Dict[str, List[Dict[str, Any]]] = {}
    for service in part['consumes']:
        namespace = client_namespace or service['consumer_namespace']
        url = (request.get('urls') or {}).get(service['host']) or '%s://%s:%s%s' % (
            request['scheme'], service['host'], service['ports'][0]['number'], path)
        targets = calls.setdefault(namespace, [])
        if all(t['name'] != service['host'] for t in targets):
            targets.append({'name': service['host'], 'url': url,
                            'expected_status': list(request['expected_status'])})
            if versions and service.get('subsets'):
                version_url = '%s://%s:%s%s' % (request['scheme'], service['host'], service['ports'][0]['number'],
                                                request['version_path'])
                for sample in range(int(request['version_samples'])):
                    targets.append({'name': '%s version %d' % (service['host'], sample + 1), 'url': version_url,
                                    'expected_status': [200], 'version': {
                                        'route': service['route_subset'],
                                        'prefixes': {s['name']: '%s-%s-' % (service['name'], s['name'])
                                                     for s in service['subsets']}}})
    return [{'namespace': ns, 'targets': calls[ns]} for ns in sorted(calls)]


def version_of(body: str, prefixes: Dict[str, str]) -> Optional[str]:
    """The subset whose sample Deployment (``<name>-<subset>``) the answering pod belongs to."""
    import json  # pylint: disable=import-outside-toplevel
    try:
        hostname = str((json.loads(body or '{}') or {}).get('hostname') or '')
    except (ValueError, AttributeError):
        return None
    matches = [subset for subset, prefix in prefixes.items() if hostname.startswith(prefix)]
    # The longest prefix wins (subsets v1 and v10: httpbin-v10-... is v10).
    return max(matches, key=lambda m: len(prefixes[m])) if matches else None


def _line(cluster_name: str, namespace: str, target: Dict[str, Any], result: Dict[str, Any]) -> Dict[str, Any]:
    if result.get('ok'):
        text = '%s → %s: %s in %d ms after %d attempt(s)' % (cluster_name, target['name'], result.get('status_code'),
                                                             result.get('elapsed_ms') or 0, result.get('attempts') or 1)
        return {'ok': True, 'text': text}
    status = 'status %s, ' % result['status_code'] if result.get('status_code') is not None else ''
    text = '%s → %s: FAILED (%s%s) after %d attempt(s) from %s/%s, url %s' % (
        cluster_name, target['name'], status, result.get('error') or 'no result', result.get('attempts') or 0,
        namespace, result.get('pod') or '?', target['url'])
    return {'ok': False, 'text': text}


def mesh_lines(cluster: Any, plan: Dict[str, Any], name: str, istio_namespace: str, timeout: float,
               delay: float = 2, debug: Optional[Any] = None) -> List[Dict[str, Any]]:
    """Multi-network, on a primary: what its istiod shows, read through the Kubernetes API as
    ``istioctl`` reads it. Every cluster it reads is synced (``/debug/clusterz``, what
    ``istioctl remote-clusters`` prints); for every cluster it serves (itself and its remotes)
    and every service consumed there, a connected sidecar of the consumer namespace has the
    service's endpoints behind the source network's east-west gateway (``/debug/edsz``,
    gateways from ``/debug/networkz``), or the pods themselves on the same network."""
    debug = debug or IstiodDebug(cluster, istio_namespace)
    lines: List[Dict[str, Any]] = []
    part = plan['clusters'][name]
    peers = {plan['istio'][p]['cluster_name']: p for p in part['reads']}
    state: Dict[str, Any] = {}

    def synced() -> Optional[str]:
        state['clusters'] = cluster_status(debug.get('/debug/clusterz'))
        lagging = ['%s (%s)' % (cid, (state['clusters'].get(cid) or {}).get('status') or 'absent') for cid in peers
                   if (state['clusters'].get(cid) or {}).get('status') != 'synced']
        return ', '.join(lagging) or None
    why = wait_for(synced, timeout, delay)
    for cid, host in sorted(peers.items()):
        entry = state['clusters'].get(cid) or {}
        ok = entry.get('status') == 'synced'
        lines.append({'ok': ok, 'text': '%s: istiod reads %s (%s): %s%s' % (
            name, host, cid, entry.get('status') or 'absent', ' via %s' % entry['secret'] if entry.get('secret') else ''),
            'kind': 'clusterz'})
    if why:
        lines.append({'ok': False, 'text': '%s: not synced within %ds: %s' % (name, timeout, why), 'kind': 'clusterz'})

    served = [c for c, s in plan['istio'].items() if s['primary'] == name]
    gateways = network_gateways(debug.get('/debug/networkz'))
    for consumer in sorted(served):
        network = plan['istio'][consumer]['network']
        for service in plan['clusters'][consumer]['consumes']:
            source_network = plan['istio'][service['cluster']]['network']
            envoy_cluster = 'outbound|%s||%s' % (service['ports'][0]['number'], service['host'])
            expected = gateways.get(source_network) or []
            found: Dict[str, Any] = {}

            def programmed() -> Optional[str]:
                proxies = [p for p in connected_proxies(debug.get('/debug/syncz'))
                           if p['cluster'] == plan['istio'][consumer]['cluster_name'] and p['type'] == 'sidecar'
                           and p['proxy'].endswith('.%s' % service['consumer_namespace'])]
                if not proxies:
                    return 'no sidecar of %s/%s is connected to this istiod' % (consumer, service['consumer_namespace'])
                found['proxy'] = sorted(p['proxy'] for p in proxies)[0]
                found['endpoints'] = cluster_endpoints(debug.get('/debug/edsz?proxyID=%s' % found['proxy']),
                                                       envoy_cluster)
                if not found['endpoints']:
                    return 'sidecar %s has no endpoint for %s' % (found['proxy'], envoy_cluster)
                if source_network != network and not set(expected) & set(found['endpoints']):
                    return 'sidecar %s reaches %s at %s, not through the east-west gateway of %s (%s)' % (
                        found['proxy'], envoy_cluster, found['endpoints'], source_network, expected or 'none known')
                return None
            why = wait_for(programmed, timeout, delay)
            where = ('the east-west gateway of %s %s' % (source_network, ', '.join('%s:%s' % e for e in expected))
                     if source_network != network else 'the pods (same network)')
            text = '%s: %s/%s → %s: %s' % (name, consumer, found.get('proxy', '?'), service['host'],
                                           'endpoints %s, behind %s' % (', '.join('%s:%s' % e for e in
                                                                                  found.get('endpoints') or []), where)
                                           if why is None else 'FAILED (%s)' % why)
            lines.append({'ok': why is None, 'text': text, 'kind': 'edsz'})
    return lines


def verify_cluster(cluster: Any, plan: Any, name: str, client: Optional[Dict[str, Any]] = None,
                   request: Optional[Dict[str, Any]] = None, retries: int = 30, delay: float = 2,
                   timeout: float = 120, attempt_timeout: float = 10, fail: bool = True,
                   istio_namespace: str = 'istio-system', versions: bool = False) -> Dict[str, Any]:
    """The ``cluster_verify`` module (module docstring)."""
    plan = checked_plan(plan, name)
    part = plan['clusters'][name]
    client_settings = dict(CLIENT_DEFAULTS)
    client_settings.update({k: v for k, v in (client or {}).items() if v not in (None, '')})
    request_settings = dict(REQUEST_DEFAULTS)
    request_settings.update({k: v for k, v in (request or {}).items() if v is not None})
    calls = verify_targets(part, request_settings, client_settings['namespace'], versions)
    for call in calls:
        # The same rules as connectivity_check (URL grammar, statuses), before any request.
        validate_targets(None, None, request_settings['expected_status'],
                         [{k: v for k, v in t.items() if k != 'version'} for t in call['targets']])

    lines: List[Dict[str, Any]] = []
    results: List[Dict[str, Any]] = []
    if is_multi_network(plan['topology']) and plan['istio'][name]['role'] == 'primary':
        lines.extend(mesh_lines(cluster, plan, name, istio_namespace, timeout, delay))
    for call in calls:
        runner = PodExec(cluster, call['namespace'], None, client_settings['label_selector'],
                         client_settings['container'])
        for target in call['targets']:
            outcome = check_target(runner, {k: v for k, v in target.items() if k != 'version'}, retries, delay,
                                   timeout, attempt_timeout)
            outcome['namespace'] = call['namespace']
            results.append(outcome)
            line = _line(name, call['namespace'], target, outcome)
            if target.get('version') and outcome.get('ok'):
                answered = version_of(outcome.get('body') or '', target['version']['prefixes'])
                outcome['version'] = answered
                line['ok'] = answered == target['version']['route']
                line['text'] = '%s → %s: answered by %s (version %s), routed to %s%s' % (
                    name, target['name'], _hostname(outcome.get('body')), answered or 'unknown',
                    target['version']['route'], '' if line['ok'] else ': FAILED')
            lines.append(line)
    out: Dict[str, Any] = {'changed': False, 'results': results, 'lines': [line['text'] for line in lines],
                           'pairs': len(lines), 'failed_pairs': sum(1 for line in lines if not line['ok'])}
    if not lines:
        out['lines'] = ['%s: consumes no service, nothing to verify' % name]
    out['mesh_checks'] = [line for line in lines if line.get('kind')]
    if fail and out['failed_pairs']:
        out['failed'] = True
        out['msg'] = 'Connectivity failed for %d of %d pair(s): %s' % (
            out['failed_pairs'], len(lines), '; '.join(line['text'] for line in lines if not line['ok']))
    return out


def _hostname(body: Any) -> str:
    import json  # pylint: disable=import-outside-toplevel
    try:
        return str((json.loads(body or '{}') or {}).get('hostname') or '?')
    except (ValueError, AttributeError):
        return '?'


def pairs(plan: Dict[str, Any], clusters: Sequence[str]) -> List[str]:
    """``consumer → host`` of every pair the plan has among ``clusters`` (for messages)."""
    result = []
    for cluster in clusters:
        for service in plan['clusters'].get(cluster, {}).get('consumes') or []:
            result.append('%s → %s' % (cluster, service['host']))
    return result
