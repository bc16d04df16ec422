# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The per-cluster modules run in the action plugin's process on the controller
(plugin_utils/_in_process.py): the same validation, defaults, check/diff mode, warnings and
no_log masking as a shipped module, and a module's failure reported as a failure."""

from __future__ import annotations

import importlib
import os

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils import _client
from ansible_collections.meshlink.multicluster.plugins.plugin_utils import _in_process
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._in_process import (
    can_run_in_process,
    is_pass_through,
    module_argument_spec,
    run_in_process,
    task_environment,
)

SPEC = module_argument_spec({
    'plan': {'type': 'dict', 'required': True},
    'cluster': {'type': 'str', 'required': True},
    'workers': {'type': 'int', 'default': 4},
    'secret': {'type': 'str', 'no_log': True},
})
ARGS = {'plan': {'mesh': 'blue'}, 'cluster': 'cluster1'}


def run(args, work, check_mode=False, diff=False):
    return run_in_process('meshlink.multicluster.test', SPEC, work, args, check_mode=check_mode, diff=diff)


def test_params_are_validated_with_defaults_and_types():
    seen = {}

    def work(module):
        seen.update(module.params)
        module.exit_json(changed=False)
    assert run(dict(ARGS, workers='8'), work) == {'changed': False}
    assert seen['workers'] == 8 and seen['plan'] == {'mesh': 'blue'}
    assert seen['request_timeout'] == _client.DEFAULT_REQUEST_TIMEOUT          # a connection option's default


@pytest.mark.parametrize('args, words', [
    ({'cluster': 'cluster1'}, 'missing required arguments: plan'),
    (dict(ARGS, workers='many'), "workers"),
    (dict(ARGS, colour='red'), 'Unsupported parameters for (meshlink.multicluster.test) module: colour'),
], ids=['missing', 'type', 'unknown'])
def test_bad_arguments_fail_before_the_work_runs(args, words):
    def work(module):
        raise AssertionError('ran with bad arguments')
    result = run(args, work)
    assert result['failed'] is True and words in result['msg'], result


def test_a_pass_through_mapping_reaches_the_module_whole_without_the_validator_copying_it(monkeypatch):
    # The plan of 8 clusters is 1.2 MB: the validator (which deep-copies what it checks) sees an
    # empty stand-in of the right type, the module the value itself.
    seen, validated = {}, []
    real = _in_process.ModuleArgumentSpecValidator.validate

    def recording(self, parameters, *args, **kwargs):
        validated.append(parameters['plan'])
        return real(self, parameters, *args, **kwargs)
    monkeypatch.setattr(_in_process.ModuleArgumentSpecValidator, 'validate', recording)
    plan = {'mesh': 'blue', 'clusters': {'cluster%d' % i: {'consumes': [{'host': 'h%d.bar.global' % j, 'port': j}
                                                                        for j in range(50)]} for i in range(8)}}

    def work(module):
        seen.update(module.params)
        module.exit_json(changed=False)
    assert run(dict(ARGS, plan=plan), work) == {'changed': False}
    assert seen['plan'] == plan and validated == [{}]


@pytest.mark.parametrize('plan', ['a plan', ['cluster1'], 3], ids=['text', 'list', 'int'])
def test_a_pass_through_option_of_the_wrong_type_is_still_refused(plan):
    def work(module):
        raise AssertionError('ran with bad arguments')
    result = run(dict(ARGS, plan=plan), work)
    assert result['failed'] is True and 'plan' in result['msg'], result


@pytest.mark.parametrize('spec, expected', [
    ({'type': 'dict'}, True),
    ({'type': 'dict', 'required': True}, True),
    ({'type': 'dict', 'no_log': True}, False),                            # its values are collected to mask them
    ({'type': 'dict', 'options': {'pool': {'type': 'str'}}}, False),      # suboptions get defaults and types
    ({'type': 'list', 'elements': 'dict'}, False),
    ({'type': 'str'}, False),
    (None, False),
])
def test_which_options_pass_through(spec, expected):
    assert is_pass_through(spec) is expected


def test_check_and_diff_mode_reach_the_module():
    def work(module):
        module.exit_json(changed=True, check=module.check_mode, diff=module._diff)  # pylint: disable=protected-access
    assert run(ARGS, work, check_mode=True, diff=True) == {'changed': True, 'check': True, 'diff': True}
    assert run(ARGS, work) == {'changed': True, 'check': False, 'diff': False}


def test_warnings_come_back_as_the_results_warnings():
    def work(module):
        module.warn('the store is old')
        module.exit_json(changed=False)
    assert run(ARGS, work)['warnings'] == ['the store is old']


def test_no_log_values_are_masked_in_the_result_and_the_failure():
    def ok(module):
        module.no_log_values.add('t0ken-abc')
        module.exit_json(changed=True, lines=['minted t0ken-abc'], echo=module.params['secret'])

    def failing(module):
        module.fail_json(msg='server refused s3cret-value', ok=True)
    result = run(dict(ARGS, secret='s3cret-value'), ok)
    assert result['lines'] == ['minted ********'] and result['echo'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    failure = run(dict(ARGS, secret='s3cret-value'), failing)
    assert failure == {'failed': True, 'msg': 'server refused ********', 'ok': True}


def test_results_are_plain_json():
    def work(module):
        module.exit_json(changed=False, pair=('a', 'b'), nested={'t': (1, 2)})
    assert run(ARGS, work) == {'changed': False, 'pair': ['a', 'b'], 'nested': {'t': [1, 2]}}


def test_an_unexpected_exception_is_a_failure_with_its_traceback():
    def work(module):
        raise KeyError('clusters')
    result = run(ARGS, work)
    assert result['failed'] is True
    assert result['msg'] == "meshlink.multicluster.test failed in the controller process: KeyError: 'clusters'"
    assert 'Traceback' in result['exception']


def test_work_that_returns_without_a_result_is_a_failure():
    assert run(ARGS, lambda module: None)['failed'] is True


@pytest.mark.parametrize('connection, switch, expected', [
    ('local', None, True),
    ('ansible.builtin.local', None, True),
    ('ssh', None, False),
    ('ansible.netcommon.network_cli', None, False),
    ('local', False, False),
    ('local', 'false', False),
    ('local', 'yes', True),
])
def test_only_local_tasks_run_in_process(connection, switch, expected):
    assert can_run_in_process(connection, switch) is (expected and _client.KUBERNETES_IMPORT_ERROR is None)


def test_the_task_environment_applies_while_the_work_runs_and_is_restored(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_CONTEXT', 'before')
    monkeypatch.delenv('K8S_AUTH_KUBECONFIG', raising=False)
    with task_environment({'K8S_AUTH_CONTEXT': 'cluster2', 'K8S_AUTH_KUBECONFIG': '/k/c'}):
        assert os.environ['K8S_AUTH_CONTEXT'] == 'cluster2' and os.environ['K8S_AUTH_KUBECONFIG'] == '/k/c'
    assert os.environ['K8S_AUTH_CONTEXT'] == 'before' and 'K8S_AUTH_KUBECONFIG' not in os.environ


@pytest.mark.parametrize('name', ['cluster_access', 'cluster_inspect', 'cluster_reconcile', 'cluster_remote_secrets',
                                  'cluster_teardown', 'cluster_verify'])
def test_every_per_cluster_action_runs_its_modules_code(name):
    action = importlib.import_module('ansible_collections.meshlink.multicluster.plugins.action.%s' % name)
    module = importlib.import_module('ansible_collections.meshlink.multicluster.plugins.modules.%s' % name)
    assert action.ActionModule.MODULE == 'meshlink.multicluster.%s' % name
    assert action.ActionModule.CODE is module
    assert callable(module.run) and 'plan' in module.ARGUMENT_SPEC
