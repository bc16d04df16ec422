# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._check import (
    CheckAborted,
    CheckFailed,
    check_target,
    curl_command,
    parse_curl_output,
    parse_exec_status,
    pick_container,
    pick_pod,
    run_connectivity_check,
    run_with_retries,
    validate_targets,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from meshlink_fakes import FakeCluster


def test_curl_command_is_an_argv_without_shell():
    assert curl_command('http://httpbin.bar.global:8000/ip', 7) == [
        'curl', '-sS', '-w', '\n%{http_code}', '--max-time', '7', '--url', 'http://httpbin.bar.global:8000/ip']


@pytest.mark.parametrize('url', ['-o/tmp/x', '--config=/etc/passwd', '-K', '@/etc/passwd'])
def test_a_url_is_always_the_value_of_url_never_an_option(url):
    argv = curl_command(url, 7)
    assert argv[-2:] == ['--url', url] and argv.count(url) == 1


@pytest.mark.parametrize('stdout, stderr, rc, expected', [
    ('{"origin": "127.0.0.6"}\n\n200', '', 0, (200, '{"origin": "127.0.0.6"}\n', None)),
    ('no newline at end\n404', '', 0, (404, 'no newline at end', None)),
    ('\n204', '', 0, (204, '', None)),
    ('first\nsecond\n503', '', 0, (503, 'first\nsecond', None)),
    ('\n000', 'curl: (6) Could not resolve host: httpbin.bar.global\n', 6,
     (None, '', 'curl: (6) Could not resolve host: httpbin.bar.global (curl exit code 6: the name does not resolve: '
                'check DNS for .global (preflight check global_dns))')),
    ('\n000', 'curl: (7) Failed to connect\n', 7, (None, '', 'curl: (7) Failed to connect (curl exit code 7: '
                                                             'connection refused: check the ServiceEntry endpoint '
                                                             '(gateway address and port))')),
    ('\n000', '', 28, (None, '', 'no HTTP response (curl exit code 28: timed out: check the gateway address/port '
                                 'and that the remote gateway accepts 15443)')),
    ('', 'sh: curl: not found', 127, (None, '', 'sh: curl: not found (curl exit code 127)')),
    ('garbage', '', 0, (None, 'garbage', 'no HTTP response')),
])
def test_parse_curl_output(stdout, stderr, rc, expected):
    parsed = parse_curl_output(stdout, stderr, rc)
    assert (parsed['status_code'], parsed['body'], parsed['error']) == expected


@pytest.mark.parametrize('text, expected', [
    (json.dumps({'metadata': {}, 'status': 'Success'}), (0, None)),
    (json.dumps({'status': 'Failure', 'reason': 'NonZeroExitCode', 'message': 'command terminated with exit code 6',
                 'details': {'causes': [{'reason': 'ExitCode', 'message': '6'}]}}), (6, None)),
    (json.dumps({'status': 'Failure', 'reason': 'NonZeroExitCode',
                 'message': 'command terminated with non-zero exit code: error executing command [curl], exit code 7'}),
     (7, None)),
    (json.dumps({'status': 'Failure', 'reason': 'InternalError', 'code': 500,
                 'message': 'Internal error occurred: error executing command in container: cmd wait: false : exit '
                            'status 1'}), (1, None)),
    (json.dumps({'status': 'Failure', 'message': 'exec: "curl": executable file not found in $PATH'}),
     (None, 'exec: "curl": executable file not found in $PATH')),
    ('', (None, None)),
    (None, (None, None)),
    ('not json', (None, 'not json')),
])
def test_parse_exec_status(text, expected):
    assert parse_exec_status(text) == expected


def pod(name, phase='Running', containers=('sleep', 'istio-proxy'), deleting=False, default=None):
    metadata = {'name': name, 'namespace': 'foo', 'labels': {'app': 'sleep'}}
    if deleting:
        metadata['deletionTimestamp'] = '2026-01-01T00:00:00Z'
    if default:
        metadata['annotations'] = {'kubectl.kubernetes.io/default-container': default}
    return {'metadata': metadata, 'spec': {'containers': [{'name': c} for c in containers]},
            'status': {'phase': phase}}


def test_first_running_pod_by_name():
    pods = [pod('sleep-c'), pod('sleep-a', phase='Pending'), pod('sleep-b'), pod('sleep-0', deleting=True)]
    assert pick_pod(pods, 'foo', 'the selector app=sleep')['metadata']['name'] == 'sleep-b'


def test_no_running_pod_says_what_it_found():
    with pytest.raises(CheckFailed) as caught:
        pick_pod([pod('sleep-a', phase='Pending')], 'foo', 'the selector app=sleep')
    assert str(caught.value) == 'No Running pod in namespace foo matches the selector app=sleep (found: sleep-a Pending)'
    with pytest.raises(CheckFailed):
        pick_pod([], 'foo', 'the selector app=sleep')


@pytest.mark.parametrize('the_pod, container, expected', [
    (pod('p'), 'istio-proxy', 'istio-proxy'),
    (pod('p'), None, 'sleep'),
    (pod('p', default='istio-proxy'), None, 'istio-proxy'),
])
def test_container_choice(the_pod, container, expected):
    assert pick_container(the_pod, container) == expected


def test_unknown_container_is_not_retried():
    with pytest.raises(CheckAborted) as caught:
        pick_container(pod('p'), 'curl')
    assert 'Pod p has no container curl (containers: sleep, istio-proxy)' == str(caught.value)


@pytest.mark.parametrize('arguments, text', [
    (dict(url=None, command=None, expected_status=[200], targets=None), 'url, command: set exactly one'),
    (dict(url='http://x', command=['true'], expected_status=[200], targets=None), 'url, command: set exactly one'),
    (dict(url='http://x', command=None, expected_status=[99], targets=None), 'expected_status[0]: 99'),
    (dict(url='http://x', command=None, expected_status=[200], targets=[{'url': 'http://y'}]), 'targets: set either'),
    (dict(url=None, command=None, expected_status=[200], targets=[{'name': 'a'}]), 'targets[0]: set exactly one'),
    (dict(url=None, command=None, expected_status=[200], targets=[{'url': 'http://y'}, {'url': 'http://y'}]),
     "targets[1].name: 'http://y' is used twice"),
    (dict(url=None, command=None, expected_status=[200], targets=[{'url': 'http://y', 'expected_status': [600]}]),
     'targets[0].expected_status[0]: 600'),
])
def test_target_validation(arguments, text):
    with pytest.raises(InputError) as caught:
        validate_targets(**arguments)
    assert any(text in e for e in caught.value.errors), caught.value.errors


class Clock:
    def __init__(self, attempt_cost=0.0):
        self.now = 0.0
        self.attempt_cost = attempt_cost
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_retries_until_success():
    clock = Clock()
    outcomes = [CheckFailed('no pod yet'), CheckFailed('503'), {'status_code': 200}]

    def attempt(_remaining):
        clock.now += 1
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = run_with_retries(attempt, retries=5, delay=2, timeout=60, clock=clock, sleep=clock.sleep)
    assert result['ok'] and result['attempts'] == 3 and result['status_code'] == 200
    assert result['elapsed_ms'] == 7000 and clock.sleeps == [2, 2]


def test_retries_are_counted_after_the_first_attempt():
    clock = Clock()

    def attempt(_remaining):
        raise CheckFailed('still failing')

    result = run_with_retries(attempt, retries=2, delay=1, timeout=60, clock=clock, sleep=clock.sleep)
    assert not result['ok'] and result['attempts'] == 3 and result['error'] == 'still failing'


def test_the_deadline_stops_retrying_and_keeps_the_last_error():
    clock = Clock()
    errors = iter(['first', 'second', 'third', 'fourth'])

    def attempt(remaining):
        assert remaining > 0
        clock.now += 4
        raise CheckFailed(next(errors))

    result = run_with_retries(attempt, retries=30, delay=2, timeout=10, clock=clock, sleep=clock.sleep)
    assert result['attempts'] == 2 and result['error'] == 'second'  # 4 + 2 + 4 = 10: no time left for a third


def test_an_aborted_attempt_is_not_retried():
    clock = Clock()

    def attempt(_remaining):
        raise CheckAborted('forbidden')

    result = run_with_retries(attempt, retries=30, delay=2, timeout=60, clock=clock, sleep=clock.sleep)
    assert result['attempts'] == 1 and result['error'] == 'forbidden' and clock.sleeps == []


class FakeRunner:
    """Stands in for PodExec: returns canned outputs in order."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.commands = []
        self.chosen = {'pod': 'sleep-a', 'container': 'sleep'}

    def run(self, command, timeout):
        self.commands.append((command, timeout))
        return self.outputs.pop(0)


def test_url_target_checks_the_status_and_retries_on_a_wrong_one():
    runner = FakeRunner([{'stdout': 'busy\n503', 'stderr': '', 'rc': 0},
                         {'stdout': '{"origin": "127.0.0.6"}\n200', 'stderr': '', 'rc': 0}])
    clock = Clock()
    result = check_target(runner, {'name': 'ip', 'url': 'http://httpbin.bar.global:8000/ip', 'command': None,
                                   'expected_status': [200]}, retries=3, delay=1, timeout=30, attempt_timeout=10,
                          clock=clock, sleep=clock.sleep)
    assert result['ok'] and result['status_code'] == 200 and result['body'] == '{"origin": "127.0.0.6"}'
    assert result['attempts'] == 2 and result['pod'] == 'sleep-a' and result['container'] == 'sleep'
    assert runner.commands[0][0][-4:] == ['--max-time', '10', '--url', 'http://httpbin.bar.global:8000/ip']


def test_failed_url_target_keeps_the_last_answer():
    runner = FakeRunner([{'stdout': 'nope\n404', 'stderr': '', 'rc': 0}] * 2)
    clock = Clock()
    result = check_target(runner, {'name': 'x', 'url': 'http://h/x', 'command': None, 'expected_status': [200]},
                          retries=1, delay=1, timeout=30, attempt_timeout=10, clock=clock, sleep=clock.sleep)
    assert not result['ok'] and result['status_code'] == 404 and result['body'] == 'nope'
    assert result['error'] == 'answered HTTP 404, expected 200'


def test_command_target_passes_on_exit_zero():
    runner = FakeRunner([{'stdout': '', 'stderr': 'boom', 'rc': 1}, {'stdout': 'ok', 'stderr': '', 'rc': 0}])
    clock = Clock()
    result = check_target(runner, {'name': 'c', 'url': None, 'command': ['getent', 'hosts', 'x'],
                                   'expected_status': []}, retries=2, delay=1, timeout=30, attempt_timeout=10,
                          clock=clock, sleep=clock.sleep)
    assert result['ok'] and result['rc'] == 0 and result['body'] == 'ok' and result['attempts'] == 2


def test_bad_options_fail_before_any_api_call():
    cluster = FakeCluster()
    with pytest.raises(InputError) as caught:
        run_connectivity_check(cluster, 'foo', pod='a', label_selector='app=sleep', url='http://x', retries=-1)
    assert {e.split(':')[0] for e in caught.value.errors} == {'pod, label_selector', 'retries'}
    assert cluster.calls == []


def test_no_running_pod_fails_after_the_deadline_with_the_last_error():
    cluster = FakeCluster(objects=[('pods', pod('sleep-a', phase='Pending'))])
    result = run_connectivity_check(cluster, 'foo', label_selector='app=sleep', url='http://x', retries=0,
                                    timeout=5)
    assert result['failed'] and result['attempts'] == 1
    assert 'No Running pod in namespace foo matches the selector app=sleep (found: sleep-a Pending)' in result['msg']
    assert result['changed'] is False


# -- URLs are checked exactly before anything runs ----------------------------------------------

BAD_URLS = [
    'http://httpbin.bar.global:8000/ip\n', ' http://httpbin.bar.global:8000/ip', 'http://httpbin.bar.global:8000/ip\t',
    'http://httpbin.bar.global:8000/ip\u00a0', 'http://h/a b', 'http://h/\x1b[2J',     # whitespace, controls
    'http://httpbіn.bar.global:8000/ip', 'http://h:８０００/',                         # look-alike, non-ASCII digit
    '-o/tmp/pwned', '--config=/etc/passwd', 'httpbin.bar.global:8000/ip', 'ftp://h/', 'file:///etc/passwd',
    'http://', 'http://h:0/', 'http://h:70000/', 'http://h:/', 'http://::1/', 'http://192.0.2.300/',
]


@pytest.mark.parametrize('url', BAD_URLS)
def test_bad_url_fails_before_any_api_call(url):
    cluster = FakeCluster()
    with pytest.raises(InputError) as caught:
        run_connectivity_check(cluster, 'foo', pod='sleep', url=url, retries=0, timeout=1)
    assert caught.value.errors[0].startswith('url: %r' % url), caught.value.errors
    assert cluster.calls == []


@pytest.mark.parametrize('url', BAD_URLS)
def test_bad_target_url_names_the_target(url):
    with pytest.raises(InputError) as caught:
        validate_targets(None, None, [200], [{'name': 'ok', 'url': 'http://h/'}, {'name': 'bad', 'url': url}])
    assert [e.split(':')[0] for e in caught.value.errors] == ['targets[1].url']


@pytest.mark.parametrize('url', ['http://httpbin.bar.global:8000/ip', 'https://192.0.2.10/status/418',
                                 'http://[2001:db8::1]:8080/', 'http://h/p%20q?x=1'])
def test_good_urls_pass(url):
    assert validate_targets(url, None, [200], None)[0]['url'] == url


def test_impersonation_is_refused_before_any_api_call():
    cluster = FakeCluster()
    cluster.impersonating = True
    with pytest.raises(InputError) as caught:
        run_connectivity_check(cluster, 'foo', pod='sleep', url='http://h/', retries=0, timeout=1)
    assert caught.value.errors[0].startswith('impersonate_user, impersonate_groups: connectivity_check cannot '
                                             'impersonate')
    assert cluster.calls == []
