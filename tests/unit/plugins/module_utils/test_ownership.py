# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Who owns an object (_ownership.py): the selectors every list, prune and delete uses, and
the words of the refusals."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    is_meshlink,
    is_ours,
    managed_selector,
    mesh_selector,
    owner_of,
    ownership_labels,
    part_of,
)
from meshlink_fakes import FakeCluster


def obj(labels=None):
    return {'metadata': {'name': 'x', 'namespace': 'foo', 'labels': labels}}


OURS = {'app.kubernetes.io/managed-by': 'meshlink', 'meshlink.io/mesh': 'blue'}


def test_selectors():
    assert mesh_selector('blue') == 'app.kubernetes.io/managed-by=meshlink,meshlink.io/mesh=blue'
    assert managed_selector() == 'app.kubernetes.io/managed-by=meshlink'


def test_ownership_labels():
    assert ownership_labels('blue') == OURS
    assert ownership_labels('blue', 'httpbin.bar') == dict(OURS, **{'multicluster.meshlink.io/service': 'httpbin.bar'})


def test_mesh_selector_finds_only_the_mesh():
    cluster = FakeCluster(objects=[
        ('configmaps', {'metadata': {'name': 'blue', 'namespace': 'n', 'labels': ownership_labels('blue')}}),
        ('configmaps', {'metadata': {'name': 'green', 'namespace': 'n', 'labels': ownership_labels('green')}}),
        ('configmaps', {'metadata': {'name': 'old', 'namespace': 'n',
                                     'labels': {'app.kubernetes.io/managed-by': 'meshlink'}}}),
        ('configmaps', {'metadata': {'name': 'user', 'namespace': 'n'}}),
    ])
    names = [o['metadata']['name'] for o in cluster.list('/api/v1/namespaces/n/configmaps', None,
                                                         label_selector=mesh_selector('blue'))]
    assert names == ['blue']
    everything = cluster.list('/api/v1/namespaces/n/configmaps', None, label_selector=managed_selector())
    assert sorted(o['metadata']['name'] for o in everything) == ['blue', 'green', 'old']


# (labels, is_meshlink, is_ours for mesh blue, owner_of phrase)
CASES = [
    (OURS, True, True, 'belongs to mesh blue'),
    (dict(OURS, **{'meshlink.io/mesh': 'green'}), True, False, 'belongs to mesh green'),
    ({'app.kubernetes.io/managed-by': 'meshlink'}, True, False,
     'was made by meshlink 0.1.0, without a meshlink.io/mesh label (label it meshlink.io/mesh=<mesh> to adopt it, '
     'or delete it)'),
    ({'app.kubernetes.io/managed-by': 'Helm', 'meshlink.io/mesh': 'blue'}, False, False,
     'was not made by meshlink (app.kubernetes.io/managed-by=Helm)'),
    ({'app': 'httpbin'}, False, False,
     'was not made by meshlink (no app.kubernetes.io/managed-by=meshlink label)'),
    (None, False, False, 'was not made by meshlink (no app.kubernetes.io/managed-by=meshlink label)'),
    ({'app.kubernetes.io/managed-by': 'MeshLink', 'meshlink.io/mesh': 'blue'}, False, False,
     'was not made by meshlink (app.kubernetes.io/managed-by=MeshLink)'),
]


@pytest.mark.parametrize('labels, made_by_us, ours, phrase', CASES)
def test_ownership_rule(labels, made_by_us, ours, phrase):
    assert is_meshlink(obj(labels)) is made_by_us
    assert is_ours(obj(labels), 'blue') is ours
    assert owner_of(obj(labels)) == phrase


@pytest.mark.parametrize('value', [None, {}, {'metadata': None}, {'metadata': {'labels': None}}])
def test_objects_without_labels(value):
    assert not is_ours(value, 'default') and not is_meshlink(value) and part_of(value) is None
    assert owner_of(value).startswith('was not made by meshlink')


def test_part_of():
    assert part_of(obj(ownership_labels('blue', 'httpbin.bar'))) == 'httpbin.bar'
    assert part_of(obj(ownership_labels('blue'))) is None
