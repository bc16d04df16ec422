# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The name rules of _names.py are the exact validators: no trailing newline slips past ``$``."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils import _names


@pytest.mark.parametrize('host, expected', [
    ('httpbin.bar.global', ('httpbin', 'bar')),
    ('a-1.b-2.global', ('a-1', 'b-2')),
    ('httpbin.bar.global\n', None),
    ('httpbin.bar.global ', None),
    (' httpbin.bar.global', None),
    ('httpbіn.bar.global', None),
    ('Httpbin.bar.global', None),
    ('httpbin.bar.global.', None),
    ('a.b.c.global', None),
    ('%s.bar.global' % ('a' * 64), None),
    (True, None),
    (None, None),
])
def test_split_global_host_is_exact(host, expected):
    assert _names.split_global_host(host) == expected


@pytest.mark.parametrize('check, value', [
    (_names.dns1123_label_problem, 'httpbin\n'),
    (_names.dns1123_label_problem, '８０００'),
    (_names.dns1123_subdomain_problem, 'example.com\n'),
    (_names.label_key_problem, 'app\n'),
    (_names.label_value_problem, 'v1\n'),
    (_names.label_value_problem, 'v١'),
])
def test_name_rules_refuse_a_trailing_newline_and_non_ascii(check, value):
    assert check(value) is not None
