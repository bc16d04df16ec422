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
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import checked_plan

REQUEST_DEFAULTS = {'scheme': 'http', 'path': '/ip', 'urls': {}, 'expected_status': [200]}
CLIENT_DEFAULTS = {'namespace': None, 'label_selector': 'app=sleep', 'container': 'sleep'}


def verify_targets(part: Dict[str, Any], request: Dict[str, Any], client_namespace: Optional[str] = None) -> List[Dict[str, Any]]:
    """``[{namespace, targets: [{name, url, expected_status}]}]`` of one consumer cluster (pure)."""
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
    return [{'namespace': ns, 'targets': calls[ns]} for ns in sorted(calls)]


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


def verify_cluster(cluster: Any, plan: Any, name: str, client: Optional[Dict[str, Any]] = None,
                   request: Optional[Dict[str, Any]] = None, retries: int = 30, delay: float = 2,
                   timeout: float = 120, attempt_timeout: float = 10, fail: bool = True) -> Dict[str, Any]:
    """The ``cluster_verify`` module (module docstring)."""
    plan = checked_plan(plan, name)
    part = plan['clusters'][name]
    client_settings = dict(CLIENT_DEFAULTS)
    client_settings.update({k: v for k, v in (client or {}).items() if v not in (None, '')})
    request_settings = dict(REQUEST_DEFAULTS)
    request_settings.update({k: v for k, v in (request or {}).items() if v is not None})
    calls = verify_targets(part, request_settings, client_settings['namespace'])
    for call in calls:
        # The same rules as connectivity_check (URL grammar, statuses), before any request.
        validate_targets(None, None, request_settings['expected_status'], call['targets'])

    lines: List[Dict[str, Any]] = []
    results: List[Dict[str, Any]] = []
    for call in calls:
        runner = PodExec(cluster, call['namespace'], None, client_settings['label_selector'],
                         client_settings['container'])
        for target in call['targets']:
            outcome = check_target(runner, target, retries, delay, timeout, attempt_timeout)
            outcome['namespace'] = call['namespace']
            results.append(outcome)
            lines.append(_line(name, call['namespace'], target, outcome))
    out: Dict[str, Any] = {'changed': False, 'results': results, 'lines': [line['text'] for line in lines],
                           'pairs': len(lines), 'failed_pairs': sum(1 for line in lines if not line['ok'])}
    if not lines:
        out['lines'] = ['%s: consumes no service, nothing to verify' % name]
    if fail and out['failed_pairs']:
        out['failed'] = True
        out['msg'] = 'Connectivity failed for %d of %d pair(s): %s' % (
            out['failed_pairs'], len(lines), '; '.join(line['text'] for line in lines if not line['ok']))
    return out


def pairs(plan: Dict[str, Any], clusters: Sequence[str]) -> List[str]:
    """``consumer → host`` of every pair the plan has among ``clusters`` (for messages)."""
    result = []
    for cluster in clusters:
        for service in plan['clusters'].get(cluster, {}).get('consumes') or []:
            result.append('%s → %s' % (cluster, service['host']))
    return result
