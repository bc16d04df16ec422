# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise.

"""Run a per-cluster module's work inside the action plugin's process.

The collection's playbooks run their per-cluster tasks on the controller (``connection:
local``). Shipping a module there anyway costs, per task and host, a module payload built on
the controller (every module_utils file parsed and zipped), a new Python, and the imports of
``ansible.module_utils.basic`` and the ``kubernetes`` library (about 2 s of CPU per task at
100 services; benchmarks/README.md). When the task would run on the controller, the action
plugin instead calls the module's own ``run(module)`` with :class:`InProcessModule`, which
gives it what it uses of an AnsibleModule - validated ``params`` (the same argument-spec
validator AnsibleModule uses, so the same errors and defaults), ``check_mode``, ``_diff``,
``warn``, ``no_log_values``, ``exit_json``/``fail_json`` - and returns the result with the
no_log values removed, as a module's JSON would be. On any other connection, or when the
controller's Python cannot import the module's requirements, the module is shipped as usual.

The module and its module_utils are imported by the action plugin at load time, which
ansible-core does once in its main process (to look the action up) before forking a worker
per task and host: the workers inherit the imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import connection_argument_spec


class ModuleExit(Exception):
    """Raised by :meth:`InProcessModule.exit_json` / ``fail_json``: carries the result."""

    def __init__(self, result: Dict[str, Any]) -> None:
        super().__init__(result.get('msg', ''))
        self.result = result


def module_argument_spec(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """The argument spec a per-cluster module runs with: the connection options and its own
    (what ``_module.kube_module`` builds)."""
    merged = connection_argument_spec()
    merged.update(spec)
    return merged


def is_pass_through(spec: Any) -> bool:
    """An option whose value is a mapping the validator would only check the type of: ``type:
    dict`` without suboptions, not ``no_log`` (its values would be collected to mask them)."""
    return isinstance(spec, Mapping) and spec.get('type') == 'dict' and not spec.get('options') and \
        not spec.get('no_log')


class InProcessModule:
    """What the collection's per-cluster modules use of an AnsibleModule, without a process."""

    def __init__(self, name: str, argument_spec: Mapping[str, Any], args: Mapping[str, Any], check_mode: bool,
                 diff: bool) -> None:
        self._name = name
        self.check_mode = bool(check_mode)
        self._diff = bool(diff)
        self._warnings: List[str] = []
        self.no_log_values: Set[str] = set()
        # A JSON round trip, as a shipped module's arguments take: plain dicts, lists and strings.
        plain = json.loads(json.dumps(dict(args)))
        # The validator deep-copies what it checks; a pass-through mapping (the plan, an
        # inspection: 1.2 MB at 8 clusters) is checked for its type with an empty stand-in.
        passed = {k: v for k, v in plain.items() if isinstance(v, dict) and is_pass_through(argument_spec.get(k))}
        validation = ModuleArgumentSpecValidator(dict(argument_spec)).validate({**plain, **dict.fromkeys(passed, {})})
        self.no_log_values.update(validation._no_log_values)  # pylint: disable=protected-access
        self.params = plain
        self.params.update(validation.validated_parameters)
        self.params.update(passed)
        if validation.error_messages:
            message = validation.errors.msg
            if type(validation.errors[0]).__name__ == 'UnsupportedError':
                message = 'Unsupported parameters for (%s) module: %s' % (name, message)
            self.fail_json(msg=message)

    def warn(self, text: str) -> None:
        self._warnings.append(str(text))

    def _result(self, result: Dict[str, Any]) -> Dict[str, Any]:
        if self._warnings:
            result['warnings'] = self._warnings
        # As AnsibleModule does: booleans and None survive, every no_log value is masked.
        preserved = {k: v for k, v in result.items() if v is None or isinstance(v, bool)}
        result = remove_values(result, self.no_log_values)
        result.update(preserved)
        return json.loads(json.dumps(result))

    def exit_json(self, **result: Any) -> None:
        raise ModuleExit(self._result(result))

    def fail_json(self, msg: str, **result: Any) -> None:
        result.update(failed=True, msg=str(msg))
        raise ModuleExit(self._result(result))


def run_in_process(name: str, argument_spec: Mapping[str, Any], run: Callable[[Any], None], args: Mapping[str, Any],
                   check_mode: bool, diff: bool) -> Dict[str, Any]:
    """The result of ``run(module)`` for the module ``name``; an unexpected exception becomes a
    failed result with its traceback, as a module's would."""
    try:
        module = InProcessModule(name, argument_spec, args, check_mode, diff)
        run(module)
    except ModuleExit as done:
        return done.result
    # A module's unexpected failure, reported as one (as the module path reports a traceback).
    except Exception as error:  # pylint: disable=broad-except
        return {'failed': True, 'msg': '%s failed in the controller process: %s: %s'
                % (name, type(error).__name__, error), 'exception': traceback.format_exc()}
    return {'failed': True, 'msg': '%s returned without a result (neither exit_json nor fail_json)' % name}


def can_run_in_process(connection: Optional[str], switch: Any = None) -> bool:
    """Whether a task may run in the action plugin's process: its connection is ``local``, the
    controller's Python has the kubernetes library, and ``meshlink_in_process`` (``switch``)
    is not false."""
    from ansible_collections.meshlink.multicluster.plugins.module_utils._client import (  # pylint: disable=import-outside-toplevel
        KUBERNETES_IMPORT_ERROR,
    )
    from ansible.module_utils.parsing.convert_bool import boolean  # pylint: disable=import-outside-toplevel
    if switch is not None and not boolean(switch, strict=False):
        return False
    return (connection or '').split('.')[-1] == 'local' and KUBERNETES_IMPORT_ERROR is None


@contextlib.contextmanager
def task_environment(environment: Mapping[str, Any]) -> Iterator[None]:
    """The task's ``environment:`` in os.environ while the work runs (a shipped module gets it
    in its process; here the worker process is the task's own, and it is restored anyway)."""
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update({str(k): str(v) for k, v in environment.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
