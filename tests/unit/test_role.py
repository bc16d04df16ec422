# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The role meshlink.multicluster.mesh agrees with itself: meta/argument_specs.yml documents
every variable its tasks use with the defaults of defaults/main.yml, the same way in every entry
point, and the playbooks need no module_defaults."""

from __future__ import annotations

import functools
import glob
import os
from typing import Any, Dict, Iterator, List, Set

import pytest
import yaml
from jinja2 import Environment, meta

from ansible_collections.meshlink.multicluster.plugins.action.mesh_plan import MESH_VARIABLES
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import HOST_VARIABLES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, 'roles', 'mesh')

# Variables Ansible itself provides to a task.
MAGIC = {'inventory_hostname', 'groups', 'hostvars', 'omit', 'item', 'play_hosts', 'ansible_play_hosts',
         'ansible_play_hosts_all', 'ansible_check_mode', 'ansible_diff_mode', 'playbook_dir', 'role_path'}
# Task keywords that are not a module or its arguments.
KEYWORDS = {'name', 'register', 'tags', 'run_once', 'delegate_to', 'no_log', 'become', 'environment', 'vars',
            'any_errors_fatal', 'ignore_errors', 'changed_when', 'failed_when', 'when', 'loop', 'loop_control',
            'until', 'retries', 'delay', 'check_mode', 'diff', 'block', 'rescue', 'always', 'module_defaults',
            'notify', 'listen', 'throttle', 'timeout'}
INCLUDES = ('ansible.builtin.import_tasks', 'ansible.builtin.include_tasks', 'import_tasks', 'include_tasks')


def load(*parts: str) -> Any:
    with open(os.path.join(*parts), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


SPECS: Dict[str, Dict[str, Any]] = load(ROLE, 'meta', 'argument_specs.yml')['argument_specs']
DEFAULTS: Dict[str, Any] = load(ROLE, 'defaults', 'main.yml')
VARS: Dict[str, Any] = load(ROLE, 'vars', 'main.yml')
ENTRY_POINTS = sorted(SPECS)


class _AnyName(dict):
    """Filters and tests of Ansible (``bool``, ``default``, ...) are known to Jinja by any name."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> Any:
        return lambda value, *args, **kwargs: value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]


JINJA = Environment()
JINJA.filters = _AnyName(JINJA.filters)
JINJA.tests = _AnyName(JINJA.tests)


def options(entry_point: str) -> Dict[str, Dict[str, Any]]:
    return SPECS[entry_point].get('options') or {}


def documented() -> Set[str]:
    return {name for entry_point in SPECS for name in options(entry_point)}


# -- argument_specs.yml and defaults/main.yml --------------------------------------------------

def test_every_entry_point_has_a_task_file():
    for entry_point in ENTRY_POINTS:
        assert os.path.exists(os.path.join(ROLE, 'tasks', '%s.yml' % entry_point)), entry_point
    assert 'main' in SPECS


@pytest.mark.parametrize('variable', sorted(DEFAULTS))
def test_every_default_is_documented_with_the_same_default(variable):
    listing = [ep for ep in ENTRY_POINTS if variable in options(ep)]
    assert listing, '%s has a default but no entry point documents it' % variable
    for entry_point in listing:
        spec = options(entry_point)[variable]
        assert 'default' in spec, '%s: %s has no default in argument_specs' % (entry_point, variable)
        assert spec['default'] == DEFAULTS[variable], entry_point


@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_every_documented_default_is_in_defaults(entry_point):
    missing = [name for name, spec in options(entry_point).items() if 'default' in spec and name not in DEFAULTS]
    assert missing == []


def test_an_option_is_the_same_in_every_entry_point():
    seen: Dict[str, Dict[str, Any]] = {}
    for entry_point in ENTRY_POINTS:
        for name, spec in options(entry_point).items():
            first = seen.setdefault(name, spec)
            assert spec == first, '%s differs in %s' % (name, entry_point)


def test_options_are_role_prefixed_and_described():
    for entry_point in ENTRY_POINTS:
        for name, spec in options(entry_point).items():
            assert name.startswith('meshlink_'), name
            assert spec.get('description') and spec.get('type'), (entry_point, name)


@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_every_entry_point_documents_the_host_connection(entry_point):
    # Every entry point runs a per-cluster action, which reads these host variables.
    missing = sorted(set(HOST_VARIABLES.values()) - set(options(entry_point)))
    assert missing == []


def test_connection_variables_have_no_default():
    # A host without them must fail, never reach the kubeconfig's current context.
    assert set(HOST_VARIABLES.values()) & set(DEFAULTS) == set()
    for entry_point in ENTRY_POINTS:
        for variable in HOST_VARIABLES.values():
            assert 'default' not in options(entry_point).get(variable, {}), (entry_point, variable)


# -- the tasks use only what is documented -----------------------------------------------------

def variables_in(value: Any, expression: bool = False) -> Set[str]:
    """Undeclared Jinja variables in a task value (``when`` and friends are bare expressions)."""
    found: Set[str] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= variables_in(item, expression)
    elif isinstance(value, list):
        for item in value:
            found |= variables_in(item, expression)
    elif isinstance(value, str):
        found |= _undeclared('{{ %s }}' % value if expression else value)
    return found


@functools.lru_cache(maxsize=None)
def _undeclared(text: str) -> Set[str]:
    return set(meta.find_undeclared_variables(JINJA.parse(text)))


@functools.lru_cache(maxsize=None)
def _task_file(path: str) -> Any:
    return load(path)


def tasks_of(path: str) -> Iterator[Dict[str, Any]]:
    for task in _task_file(path) or []:
        yield task
        for section in ('block', 'rescue', 'always'):
            yield from task.get(section) or []


def included(task: Dict[str, Any]) -> List[str]:
    for module in INCLUDES:
        if module in task:
            value = task[module]
            return [value['file'] if isinstance(value, dict) else value]
    return []


def reachable(entry_point: str) -> List[str]:
    """The task files an entry point runs, following import_tasks/include_tasks."""
    order: List[str] = []
    pending = ['%s.yml' % entry_point]
    while pending:
        name = pending.pop(0)
        if name in order:
            continue
        order.append(name)
        for task in tasks_of(os.path.join(ROLE, 'tasks', name)):
            pending.extend(included(task))
    return order


def used_variables(entry_point: str) -> Dict[str, Set[str]]:
    """Variable -> task files using it (through vars/main.yml too), and the variables registered."""
    used: Dict[str, Set[str]] = {}
    for name in reachable(entry_point):
        for task in tasks_of(os.path.join(ROLE, 'tasks', name)):
            for key, value in task.items():
                if key in ('name', 'register', 'tags', 'block', 'rescue', 'always'):
                    continue
                expression = key in ('when', 'changed_when', 'failed_when', 'until')
                for variable in variables_in(value, expression):
                    used.setdefault(variable, set()).add(name)
    # vars/main.yml: its mappings stand for the variables they are made of.
    for key, value in VARS.items():
        if key in used:
            for variable in variables_in(value):
                used.setdefault(variable, set()).update(used[key])
    return used


def registered(entry_point: str) -> Set[str]:
    return {task['register'] for name in reachable(entry_point)
            for task in tasks_of(os.path.join(ROLE, 'tasks', name)) if 'register' in task}


@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_tasks_use_only_documented_variables(entry_point):
    allowed = set(options(entry_point)) | set(VARS) | registered(entry_point) | MAGIC
    undocumented = {v: sorted(files) for v, files in used_variables(entry_point).items()
                    if v not in allowed and not v.startswith('ansible_')}
    assert undocumented == {}, 'used by entry point %s but not in its options' % entry_point


@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_the_plan_s_variables_are_documented(entry_point):
    # mesh_plan compares these between the hosts of a run: they belong to every entry point
    # that plans.
    if 'plan.yml' not in reachable(entry_point):
        pytest.skip('%s does not plan' % entry_point)
    assert set(MESH_VARIABLES.values()) - set(options(entry_point)) == set()


def test_gateway_overrides_are_documented_where_setup_reconciles():
    for entry_point in ENTRY_POINTS:
        calls_reconcile = any('meshlink.multicluster.cluster_reconcile' in task
                              for name in reachable(entry_point)
                              for task in tasks_of(os.path.join(ROLE, 'tasks', name)))
        if calls_reconcile:
            assert 'meshlink_gateway_overrides' in options(entry_point), entry_point


def test_vars_are_all_used_by_tasks():
    used: Set[str] = set()
    for path in glob.glob(os.path.join(ROLE, 'tasks', '*.yml')):
        for task in tasks_of(path):
            used |= variables_in({k: v for k, v in task.items() if k not in ('name', 'register')})
    assert sorted(set(VARS) - used) == []


def test_every_default_is_used():
    used: Set[str] = set()
    for entry_point in ENTRY_POINTS:
        used |= set(used_variables(entry_point))
    # Read by the action plugins rather than by a task: the gateways of sources outside the run,
    # the targets of a run (the playbooks' hosts), and whether the modules run in the action's process.
    used |= {'meshlink_gateway_overrides', 'meshlink_in_process'}
    assert sorted(set(DEFAULTS) - used) == []


# -- the playbooks -----------------------------------------------------------------------------

PLAYBOOKS = sorted(glob.glob(os.path.join(ROOT, 'playbooks', '*.yml')))


def _all_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _all_keys(item)


@pytest.mark.parametrize('path', PLAYBOOKS, ids=[os.path.basename(p) for p in PLAYBOOKS])
def test_playbooks_have_no_module_defaults(path):
    assert 'module_defaults' not in set(_all_keys(load(path)))


@pytest.mark.parametrize('path', PLAYBOOKS, ids=[os.path.basename(p) for p in PLAYBOOKS])
def test_playbooks_run_an_entry_point_of_the_role(path):
    roles = [task for task in _tasks_of_plays(load(path)) if 'ansible.builtin.import_role' in task]
    assert roles
    for task in roles:
        spec = task['ansible.builtin.import_role']
        assert spec['name'] == 'meshlink.multicluster.mesh' and spec.get('tasks_from', 'main') in SPECS


def _tasks_of_plays(plays: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    for play in plays:
        pending = list(play.get('tasks') or [])
        while pending:
            task = pending.pop(0)
            yield task
            for section in ('block', 'rescue', 'always'):
                pending.extend(task.get(section) or [])
