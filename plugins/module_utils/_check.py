# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Connectivity check from a pod through the Kubernetes exec API (seed step 5), no kubectl.

Pure parts (unit tested): ``curl_command``, ``parse_curl_output``, ``parse_exec_status``,
``pick_pod``, ``pick_container``, ``run_with_retries``. ``PodExec`` does the exec.

A URL target runs ``curl -sS -w '\\n%{http_code}' --max-time N --url URL`` in the container: the
body, a newline, then the HTTP status (``000`` when no response came), so one exec gives
both. The check passes when the status is in ``expected_status``; a command target passes
when it exits 0. Attempts repeat after ``delay`` seconds until one passes, the retries are
used up, or the deadline (``timeout``) would pass; a failure carries the last error.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import check_url_problem

try:
    from kubernetes import client as kubernetes_client
    from kubernetes.stream import stream as kubernetes_stream
except ImportError:  # reported by the module through missing_required_lib
    kubernetes_client = None
    kubernetes_stream = None

BODY_LIMIT = 65536  # characters of body returned; a check is about reachability, not content
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
ERROR_CHANNEL = 3

CURL_HINTS = {
    6: 'the name does not resolve: check DNS for .global (preflight check global_dns)',
    7: 'connection refused: check the ServiceEntry endpoint (gateway address and port)',
    28: 'timed out: check the gateway address/port and that the remote gateway accepts 15443',
    35: 'TLS handshake failed',
    52: 'empty reply from server: the gateway closed the connection (mTLS / SNI routing)',
    56: 'connection reset: the gateway closed the connection (mTLS / SNI routing)',
}


class CheckFailed(MeshlinkError):
    """An attempt failed in a way worth retrying (no pod yet, wrong status, curl error)."""


class CheckAborted(MeshlinkError):
    """An attempt failed in a way retrying cannot fix (no such container, forbidden)."""


def curl_command(url: str, max_time: int) -> List[str]:
    """argv of the request: no shell interprets the URL, and ``--url`` makes curl take it as
    the URL even when it starts with ``-`` (it can never become a curl option)."""
    return ['curl', '-sS', '-w', '\n%{http_code}', '--max-time', str(int(max_time)), '--url', url]


def parse_curl_output(stdout: str, stderr: str, rc: Optional[int]) -> Dict[str, Any]:
    """``{status_code, body, error}`` from what :func:`curl_command` printed.

    The last line of stdout is the status written by ``-w``; ``000`` (or no line at all)
    means no HTTP response, and then ``error`` is curl's message with a hint by exit code.
    """
    stdout = stdout or ''
    body, separator, last = stdout.rpartition('\n')
    code_text = last.strip()
    if not separator:
        body = ''
    status_code = int(code_text) if code_text.isdigit() and int(code_text) > 0 else None
    error = None
    if status_code is None:
        message = (stderr or '').strip() or 'no HTTP response'
        hint = CURL_HINTS.get(rc) if rc is not None else None
        if rc not in (None, 0):
            message = '%s (curl exit code %s%s)' % (message, rc, ': ' + hint if hint else '')
        error = message
        if not separator:
            body = stdout
    return {'status_code': status_code, 'body': body, 'error': error}


_EXIT_IN_MESSAGE = re.compile(r'exit (?:status|code):? (\d+)')


def parse_exec_status(text: Optional[str]) -> Tuple[Optional[int], Optional[str]]:
    """``(exit code, error)`` from the exec error channel (a ``metav1.Status`` as JSON).

    ``Success`` -> (0, None). A non-zero exit -> (code, None): the kubelet sends reason
    ``NonZeroExitCode`` with an ``ExitCode`` cause; other runtimes (kwok, some CRI shims)
    only say ``... exit status N`` in the message, which is read as well. Anything else
    means the command could not start (e.g. "executable file not found") -> (None, message).
    Nothing on the channel -> (None, None): the stream ended without a status.
    """
    if not text or not text.strip():
        return None, None
    try:
        status = json.loads(text)
    except ValueError:
        return None, text.strip()
    if status.get('status') == 'Success':
        return 0, None
    for cause in ((status.get('details') or {}).get('causes') or []):
        if cause.get('reason') == 'ExitCode' and str(cause.get('message', '')).isdigit():
            return int(cause['message']), None
    message = status.get('message') or text.strip()
    match = _EXIT_IN_MESSAGE.search(message)
    if match:
        return int(match.group(1)), None
    return None, message


def _is_running(pod: Dict[str, Any]) -> bool:
    return ((pod.get('status') or {}).get('phase') == 'Running'
            and not (pod.get('metadata') or {}).get('deletionTimestamp'))


def pick_pod(pods: Sequence[Dict[str, Any]], namespace: str, description: str) -> Dict[str, Any]:
    """The first Running pod (not terminating) by name; :class:`CheckFailed` naming what was found."""
    running = sorted((p for p in pods if _is_running(p)), key=lambda p: p['metadata']['name'])
    if running:
        return running[0]
    if not pods:
        raise CheckFailed('No pod in namespace %s matches %s' % (namespace, description))
    seen = ', '.join('%s %s' % (p['metadata']['name'], (p.get('status') or {}).get('phase', '?'))
                     for p in sorted(pods, key=lambda p: p['metadata']['name']))
    raise CheckFailed('No Running pod in namespace %s matches %s (found: %s)' % (namespace, description, seen))


def pick_container(pod: Dict[str, Any], container: Optional[str]) -> str:
    """The container to exec in: the one asked for, else the pod's default container
    (annotation ``kubectl.kubernetes.io/default-container``, as kubectl does), else the first."""
    names = [c.get('name') for c in (pod.get('spec') or {}).get('containers') or []]
    pod_name = pod['metadata']['name']
    if container:
        if container not in names:
            raise CheckAborted('Pod %s has no container %s (containers: %s)'
                               % (pod_name, container, ', '.join(names) or 'none'))
        return container
    default = ((pod.get('metadata') or {}).get('annotations') or {}).get('kubectl.kubernetes.io/default-container')
    if default in names:
        return default
    if not names:
        raise CheckAborted('Pod %s has no containers' % pod_name)
    return names[0]


def validate_targets(url: Optional[str], command: Optional[List[str]], expected_status: List[int],
                     targets: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """The list of targets to check (``targets``, or one from url/command); errors name the option."""
    errors = []
    result = []
    for index, status in enumerate(expected_status or []):
        if not 100 <= int(status) <= 599:
            errors.append('expected_status[%d]: %s is not an HTTP status' % (index, status))
    if targets:
        if url or command:
            errors.append('targets: set either targets or url/command, not both')
        names = set()
        for index, target in enumerate(targets):
            path = 'targets[%d]' % index
            name = target.get('name') or target.get('url') or ' '.join(target.get('command') or [])
            if name in names:
                errors.append('%s.name: %r is used twice' % (path, name))
            names.add(name)
            if bool(target.get('url')) == bool(target.get('command')):
                errors.append('%s: set exactly one of url and command' % path)
            elif target.get('url'):
                problem = check_url_problem(target['url'])
                if problem:
                    errors.append('%s.url: %s' % (path, problem))
            statuses = target.get('expected_status') or expected_status
            for position, status in enumerate(statuses or []):
                if not 100 <= int(status) <= 599:
                    errors.append('%s.expected_status[%d]: %s is not an HTTP status' % (path, position, status))
            result.append({'name': name, 'url': target.get('url'), 'command': target.get('command'),
                           'expected_status': [int(s) for s in statuses or []]})
    else:
        if bool(url) == bool(command):
            errors.append('url, command: set exactly one of them (or targets)')
        elif url:
            problem = check_url_problem(url)
            if problem:
                errors.append('url: %s' % problem)
        result.append({'name': url or ' '.join(command or []), 'url': url, 'command': command,
                       'expected_status': [int(s) for s in expected_status or []]})
    if errors:
        raise InputError(errors)
    return result


def run_with_retries(attempt: Callable[[float], Dict[str, Any]], retries: int, delay: float, timeout: float,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Call ``attempt(remaining_seconds)`` until it returns, up to ``retries + 1`` times, before the deadline.

    ``attempt`` raises :class:`CheckFailed` to be retried and :class:`CheckAborted` to stop.
    Returns the attempt's result plus ``attempts``, ``elapsed_ms``, ``ok`` and ``error`` (the
    last error when every attempt failed).
    """
    start = clock()
    deadline = start + timeout
    attempts = 0
    last_error = 'no attempt was made (timeout is 0)'
    last_result: Dict[str, Any] = {}
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        attempts += 1
        try:
            result = attempt(remaining)
        except CheckAborted as error:
            last_error = str(error)
            break
        except CheckFailed as error:
            last_error = str(error)
            last_result = dict(getattr(error, 'result', None) or {})
        else:
            result.update({'ok': True, 'error': None, 'attempts': attempts,
                           'elapsed_ms': int((clock() - start) * 1000)})
            return result
        if attempts > retries or clock() + delay >= deadline:
            break
        sleep(delay)
    last_result.update({'ok': False, 'error': last_error, 'attempts': attempts,
                        'elapsed_ms': int((clock() - start) * 1000)})
    return last_result


class PodExec:
    """Runs commands in a pod of one cluster through the exec (websocket) API."""

    def __init__(self, cluster: Any, namespace: str, pod: Optional[str], label_selector: Optional[str],
                 container: Optional[str]) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.pod = pod
        self.label_selector = label_selector
        self.container = container
        self.chosen: Dict[str, Optional[str]] = {'pod': None, 'container': None}

    def find_pod(self) -> Dict[str, Any]:
        if self.pod:
            obj = self.cluster.get(core_path('pods', self.namespace, self.pod), ObjectRef('Pod', self.namespace, self.pod))
            if obj is None:
                raise CheckFailed('Pod %s/%s does not exist' % (self.namespace, self.pod))
            return pick_pod([obj], self.namespace, 'the name %s' % self.pod)
        pods = self.cluster.list(core_path('pods', self.namespace), ObjectRef('Pod', self.namespace),
                                 label_selector=self.label_selector)
        return pick_pod(pods, self.namespace, 'the selector %s' % self.label_selector)

    def run(self, command: List[str], timeout: float) -> Dict[str, Any]:
        """``{stdout, stderr, rc}`` of one command; raises CheckFailed/CheckAborted."""
        try:
            pod = self.find_pod()
        except ApiError as error:
            raise (CheckAborted if error.status in (401, 403) else CheckFailed)(str(error)) from error
        name = pod['metadata']['name']
        container = pick_container(pod, self.container)
        self.chosen = {'pod': name, 'container': container}
        core = kubernetes_client.CoreV1Api(self.cluster.api_client)
        try:
            ws = kubernetes_stream(core.connect_get_namespaced_pod_exec, name, self.namespace, command=command,
                                   container=container, stderr=True, stdin=False, stdout=True, tty=False,
                                   _preload_content=False)
        except Exception as error:  # pylint: disable=broad-except
            message = getattr(error, 'reason', None) or str(error)
            text = 'Could not exec in Pod %s/%s (container %s) in context %s: %s' % (
                self.namespace, name, container, self.cluster.context, message)
            if '403' in str(message) or 'Forbidden' in str(message):
                raise CheckAborted(text + ' (needs the pods/exec permission)') from error
            raise CheckFailed(text) from error
        stdout: List[str] = []
        stderr: List[str] = []
        end = time.monotonic() + timeout
        try:
            while ws.is_open() and time.monotonic() < end:
                ws.update(timeout=min(1.0, max(0.05, end - time.monotonic())))
                stdout.append(ws.read_channel(STDOUT_CHANNEL, timeout=0) or '')
                stderr.append(ws.read_channel(STDERR_CHANNEL, timeout=0) or '')
            timed_out = ws.is_open()
            stdout.append(ws.read_channel(STDOUT_CHANNEL, timeout=0) or '')
            stderr.append(ws.read_channel(STDERR_CHANNEL, timeout=0) or '')
            status_text = ws.read_channel(ERROR_CHANNEL, timeout=0)
        finally:
            ws.close()
        if timed_out:
            raise CheckFailed('The command in Pod %s/%s did not finish within %.0f s' % (self.namespace, name, timeout))
        rc, exec_error = parse_exec_status(status_text)
        if exec_error:
            # The command could not start (no curl in the image, ...): retrying will not help.
            raise CheckAborted('Could not run %s in Pod %s/%s container %s: %s'
                               % (command[0], self.namespace, name, container, exec_error))
        return {'stdout': ''.join(stdout), 'stderr': ''.join(stderr), 'rc': rc}


def check_target(runner: Any, target: Dict[str, Any], retries: int, delay: float, timeout: float,
                 attempt_timeout: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Dict[str, Any]:
    """Check one target with retries; the result is what the module returns per target."""

    def attempt(remaining: float) -> Dict[str, Any]:
        budget = max(1, int(min(attempt_timeout, remaining)))
        if target.get('url'):
            output = runner.run(curl_command(target['url'], budget), budget + 5)
            parsed = parse_curl_output(output['stdout'], output['stderr'], output['rc'])
            result = {'status_code': parsed['status_code'], 'body': parsed['body'][:BODY_LIMIT],
                      'rc': output['rc'], 'stderr': output['stderr']}
            if parsed['status_code'] is None:
                failure = CheckFailed(parsed['error'])
            elif parsed['status_code'] not in target['expected_status']:
                failure = CheckFailed('answered HTTP %s, expected %s' % (
                    parsed['status_code'], ' or '.join(str(s) for s in target['expected_status'])))
            else:
                return result
        else:
            output = runner.run(list(target['command']), budget)
            result = {'status_code': None, 'body': output['stdout'][:BODY_LIMIT], 'rc': output['rc'],
                      'stderr': output['stderr']}
            if output['rc'] == 0:
                return result
            failure = CheckFailed('exited with %s%s' % (
                output['rc'], ': ' + output['stderr'].strip() if output['stderr'].strip() else ''))
        failure.result = result  # type: ignore[attr-defined]
        raise failure

    outcome = run_with_retries(attempt, retries, delay, timeout, clock=clock, sleep=sleep)
    result = {'name': target['name'], 'url': target.get('url'), 'command': target.get('command'),
              'status_code': None, 'body': '', 'rc': None, 'stderr': ''}
    result.update(outcome)
    result.update(runner.chosen)
    return result


def run_connectivity_check(cluster: Any, namespace: str, pod: Optional[str] = None,
                           label_selector: Optional[str] = None, container: Optional[str] = None,
                           url: Optional[str] = None, command: Optional[List[str]] = None,
                           expected_status: Optional[List[int]] = None, targets: Optional[List[Dict[str, Any]]] = None,
                           retries: int = 30, delay: float = 2, timeout: float = 120,
                           attempt_timeout: float = 10) -> Dict[str, Any]:
    """The ``connectivity_check`` module: every target in turn, each with its own deadline.

    Returns the module result; ``failed`` and ``msg`` are set when a target failed.
    """
    errors = []
    if bool(pod) == bool(label_selector):
        errors.append('pod, label_selector: set exactly one of them')
    if retries < 0:
        errors.append('retries: must be 0 or more')
    if delay < 0:
        errors.append('delay: must be 0 or more seconds')
    if timeout <= 0:
        errors.append('timeout: must be more than 0 seconds')
    if attempt_timeout <= 0:
        errors.append('attempt_timeout: must be more than 0 seconds')
    if getattr(cluster, 'impersonating', False):
        # The exec API is a websocket, and the kubernetes library's websocket sends only the
        # Authorization header: the command would run as the credential itself, not as the
        # impersonated user. Refuse rather than run with other rights than asked.
        errors.append('impersonate_user, impersonate_groups: connectivity_check cannot impersonate - the exec API '
                      'connection of the kubernetes Python library does not send Impersonate headers; run it with a '
                      'credential that may create pods/exec itself')
    try:
        target_list = validate_targets(url, command, expected_status if expected_status is not None else [200],
                                       targets)
    except InputError as error:
        errors.extend(error.errors)
    if errors:
        raise InputError(errors)

    runner = PodExec(cluster, namespace, pod, label_selector, container)
    results = [check_target(runner, target, retries, delay, timeout, attempt_timeout) for target in target_list]
    first = results[0]
    out: Dict[str, Any] = {
        'status_code': first.get('status_code'),
        'body': first.get('body', ''),
        'attempts': sum(r.get('attempts', 0) for r in results),
        'elapsed_ms': sum(r.get('elapsed_ms', 0) for r in results),
        'pod': runner.chosen.get('pod'),
        'container': runner.chosen.get('container'),
        'results': results,
        'changed': False,
    }
    failed = [r for r in results if not r.get('ok')]
    if failed:
        out['failed'] = True
        out['msg'] = 'Connectivity check failed from %s/%s in %s: %s' % (
            namespace, runner.chosen.get('pod') or pod or label_selector, cluster.context,
            '; '.join('%s: %s after %d attempt(s)' % (r['name'], r.get('error'), r.get('attempts', 0))
                      for r in failed))
    return out
