# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The mesh_plan action's check that every host of a run holds the same mesh variables
(meshlink_services, meshlink_mesh, meshlink_topology): set once for the mesh, not per host."""

from __future__ import annotations

import json

import pytest

from ansible_collections.meshlink.multicluster.plugins.action.mesh_plan import ActionModule

HOSTS = ['cluster1', 'cluster2', 'cluster3']
SERVICES = [{'name': 'httpbin', 'namespace': 'bar', 'cluster': 'cluster2', 'consumers': ['cluster1']}]


class _HostVars(dict):
    """hostvars: ``hosts[h][name]`` is the value templated for host h, ``raw_get(h)`` the stored one."""

    def __init__(self, raw, rendered):
        super().__init__(rendered)
        self._raw = raw

    def raw_get(self, host):
        return self._raw[host]


class _Templar:
    def __init__(self):
        self.rendered = 0

    def is_template(self, value):
        return '{{' in json.dumps(value)

    def template(self, value):
        self.rendered += 1
        return value


def problems_of(raw, rendered=None):
    action = ActionModule.__new__(ActionModule)
    action._templar = _Templar()  # pylint: disable=protected-access
    # As in Ansible, the task's own variables are the running host's (cluster1) as stored.
    task_vars = dict(raw['cluster1'], inventory_hostname='cluster1', ansible_play_hosts_all=list(raw),
                     hostvars=_HostVars(raw, rendered or raw))
    found = action._run_problems({'services': SERVICES}, task_vars, HOSTS)  # pylint: disable=protected-access
    return found, action._templar.rendered  # pylint: disable=protected-access


def test_one_value_for_the_group_is_not_rendered_per_host():
    found, rendered = problems_of({h: {'meshlink_services': SERVICES} for h in HOSTS})
    assert found == [] and rendered == 0


def test_equal_copies_agree_without_rendering():
    found, rendered = problems_of({h: {'meshlink_services': json.loads(json.dumps(SERVICES))} for h in HOSTS})
    assert found == [] and rendered == 0


def test_a_host_with_its_own_services_is_named():
    raw = {h: {'meshlink_services': SERVICES} for h in HOSTS}
    raw['cluster3'] = {'meshlink_services': SERVICES + [dict(SERVICES[0], name='echo')]}
    found, _rendered = problems_of(raw)
    assert found == ['meshlink_services differs between the hosts of this run (cluster3 differ from cluster1): set '
                     'it once for the mesh (group_vars of the environment), not per host']


@pytest.mark.parametrize('per_host', [True, False], ids=['renders-per-host', 'renders-the-same'])
def test_one_template_for_the_group_is_judged_by_what_it_renders_on_each_host(per_host):
    # "{{ services_of[inventory_hostname] }}" is one raw value that may render differently per host.
    raw = {h: {'meshlink_services': '{{ services_of[inventory_hostname] }}'} for h in HOSTS}
    rendered = {h: {'meshlink_services': SERVICES} for h in HOSTS}
    if per_host:
        rendered['cluster2'] = {'meshlink_services': []}
    found, count = problems_of(raw, rendered)
    assert count == len(HOSTS)
    assert [p.split(' (')[1].split(')')[0] for p in found] == (['cluster2 differ from cluster1'] if per_host else [])
