# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every module's DOCUMENTATION, EXAMPLES and RETURN (and every doc fragment) is YAML that
ansible-doc can render: a stray ': ' or an apostrophe in a quoted description otherwise only
shows in `ansible-test sanity`, minutes into `make test`."""

from __future__ import annotations

import ast
import glob
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(glob.glob(os.path.join(ROOT, 'plugins', 'modules', '*.py')))
FRAGMENTS = sorted(glob.glob(os.path.join(ROOT, 'plugins', 'doc_fragments', '*.py')))


def _string_constants(path):
    """Module-level and class-level string assignments of a file, by name."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


@pytest.mark.parametrize('path', [p for p in MODULES if not p.endswith('__init__.py')], ids=os.path.basename)
def test_module_documentation_parses(path):
    constants = _string_constants(path)
    for name in ('DOCUMENTATION', 'EXAMPLES', 'RETURN'):
        assert name in constants, '%s has no %s' % (os.path.basename(path), name)
        try:
            parsed = yaml.safe_load(constants[name])
        except yaml.YAMLError as exc:
            pytest.fail('%s: %s is not valid YAML: %s' % (os.path.basename(path), name, exc))
        if name == 'DOCUMENTATION':
            assert parsed['module'] == os.path.basename(path)[:-3]
            assert isinstance(parsed['options'], dict)
            for option, spec in parsed['options'].items():
                assert spec.get('description'), '%s: option %s has no description' % (path, option)


@pytest.mark.parametrize('path', [p for p in FRAGMENTS if not p.endswith('__init__.py')], ids=os.path.basename)
def test_doc_fragment_parses(path):
    constants = _string_constants(path)
    assert constants, '%s holds no documentation string' % path
    for name, text in constants.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail('%s: %s is not valid YAML: %s' % (os.path.basename(path), name, exc))
