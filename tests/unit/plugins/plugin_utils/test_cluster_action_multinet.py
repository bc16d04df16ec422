# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The controller's glue of the multi-network runs (plugin_utils/_cluster_action.py): which remote
secret states a read cluster's reconcile gets, which source ports a consumer's, which minted
tokens a primary's secrets step, and what mesh_check refuses across clusters (mesh ID, root of
trust, Istio minor versions)."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    cross_cluster_problems,
    minted_tokens,
    reader_states,
    source_ports,
)
from meshlink_fakes import seed_service

HOSTS = ['east', 'edge', 'west']


def plan():
    """west and east primaries, edge west's remote: east's httpbin consumed in west and edge, edge's
    orders consumed in east."""
    services = [seed_service(cluster='east', consumers=[{'cluster': 'west', 'namespace': 'foo'},
                                                        {'cluster': 'edge', 'namespace': 'apps'}]),
                seed_service(name='orders', namespace='shop', cluster='edge', consumers=[{'cluster': 'east'}])]
    return build_plan(services, HOSTS, topology='multi_primary', cluster_settings={
        'west': {'meshlink_network': 'n1'}, 'east': {'meshlink_network': 'n2'},
        'edge': {'meshlink_network': 'n1', 'meshlink_istio_role': 'remote', 'meshlink_istio_primary': 'west'}})


SECRET = {'exists': True, 'ours': True, 'expires': '2030-01-01T00:00:00Z', 'digest': 'd'}
HTTPBIN_PORTS = [{'name': 'http', 'port': 8000, 'protocol': 'TCP'}]
ORDERS_PORTS = [{'name': 'http', 'port': 8000, 'protocol': 'TCP', 'appProtocol': 'http'}]
INSPECTIONS = {
    'west': {'state': {'remote_secrets': {'east': SECRET, 'edge': dict(SECRET, exists=False, ours=False)}},
             'exported_ports': {}},
    'east': {'state': {'remote_secrets': {'west': dict(SECRET, digest='e'), 'edge': None}},
             'exported_ports': {'httpbin.bar': HTTPBIN_PORTS}},
    'edge': {'state': {'remote_secrets': {}}, 'exported_ports': {'orders.shop': ORDERS_PORTS}},
}


@pytest.mark.parametrize('cluster, expected', [
    ('east', {'west': {'remote_secret': SECRET}}),
    ('west', {'east': {'remote_secret': dict(SECRET, digest='e')}}),
    # a remote is read by every primary; east's inspection saw no secret for it
    ('edge', {'east': {'remote_secret': None}, 'west': {'remote_secret': dict(SECRET, exists=False, ours=False)}}),
], ids=['east', 'west', 'remote'])
def test_reader_states_are_the_readers_view_of_the_secret(cluster, expected):
    assert reader_states(plan(), cluster, INSPECTIONS.get) == expected


@pytest.mark.parametrize('inspections', [{}, {'west': None, 'east': 'failed'}, {'west': {'state': None}},
                                         {'west': {'state': {'remote_secrets': None}}}],
                         ids=['not-inspected', 'not-mappings', 'no-state', 'no-secrets'])
def test_reader_states_of_readers_not_inspected_are_none(inspections):
    assert reader_states(plan(), 'east', inspections.get) == {'west': {'remote_secret': None}}


def test_reader_states_of_an_unknown_cluster_or_plan_are_empty():
    assert reader_states(plan(), 'nowhere', INSPECTIONS.get) == {}
    assert reader_states({}, 'east', INSPECTIONS.get) == {}


@pytest.mark.parametrize('cluster, inspections, expected', [
    ('west', INSPECTIONS, {'httpbin.bar': HTTPBIN_PORTS}),
    ('edge', INSPECTIONS, {'httpbin.bar': HTTPBIN_PORTS}),
    ('east', INSPECTIONS, {'orders.shop': ORDERS_PORTS}),
    ('east', {'edge': {'exported_ports': {'orders.shop': []}}}, {}),     # no ports found: none passed
    ('east', {}, {}),                                                    # source not inspected in this run
], ids=['west', 'remote', 'east', 'empty-ports', 'not-inspected'])
def test_source_ports(cluster, inspections, expected):
    assert source_ports(plan(), cluster, inspections.get) == expected


TOKEN = {'token': 't', 'expires': '2030-01-01T00:00:00Z', 'why': 'no remote secret yet', 'digest': 'd',
         'connection': {'cluster_name': 'east', 'server': 'https://192.0.2.2:6443', 'ca': None}}


@pytest.mark.parametrize('cluster, reconciles, expected', [
    ('west', {'east': {'peer_tokens': {'west': TOKEN}}, 'edge': {'peer_tokens': {}}},
     {'east': {'token': TOKEN}, 'edge': {'token': None}}),
    ('east', {'west': {'peer_tokens': {'east': TOKEN}}, 'edge': {'peer_tokens': {'east': TOKEN, 'west': TOKEN}}},
     {'west': {'token': TOKEN}, 'edge': {'token': TOKEN}}),
    ('east', {}, {'west': {'token': None}, 'edge': {'token': None}}),
    ('edge', {'west': {'peer_tokens': {'edge': TOKEN}}}, {}),            # a remote holds no secret
], ids=['west', 'east', 'not-reconciled', 'remote'])
def test_minted_tokens_are_those_minted_for_this_primary(cluster, reconciles, expected):
    assert minted_tokens(plan(), cluster, reconciles.get) == expected


# -- cross_cluster_problems -----------------------------------------------------------------------

def inspection(mesh_id='mesh1', root='r1', version='1.24.3'):
    return {'mesh_id': mesh_id, 'root_digest': root, 'istio_version': version}


@pytest.mark.parametrize('inspections, expected', [
    ({'a': inspection(), 'b': inspection()}, []),
    ({'a': inspection(version='1.23.0'), 'b': inspection(version='1.24.5')}, []),
    ({'a': inspection(version='1.23.0'), 'b': inspection(version='1.24.5'), 'c': inspection(version='1.22.1')},
     ['Istio minor versions differ by more than one (a: 1.23, b: 1.24, c: 1.22): upgrade one minor version at a time']),
    ({'a': inspection(mesh_id='mesh1'), 'b': inspection(mesh_id='prod')},
     ['the clusters do not share one mesh ID (a: mesh1, b: prod): set values.global.meshID the same everywhere']),
    ({'a': inspection(root='r1'), 'b': inspection(root='r2')},
     ['the clusters do not share one root of trust (root certificate in istio-ca-root-cert: a: r1, b: r2): plug '
      "the same root into every cluster's cacerts"]),
    # unknown values judge nothing: a remote has no istiod (no version), a mesh without meshId
    ({'a': inspection(), 'b': inspection(mesh_id=None, root=None, version=None)}, []),
    ({'a': inspection(version='1.20.0'), 'b': inspection(version=None), 'c': inspection(version='latest')}, []),
    ({'a': inspection(mesh_id='x', root='r1', version='1.20.0'), 'b': inspection(mesh_id='y', root='r2',
                                                                                 version='1.22.0')},
     ['the clusters do not share one mesh ID (a: x, b: y): set values.global.meshID the same everywhere',
      'the clusters do not share one root of trust (root certificate in istio-ca-root-cert: a: r1, b: r2): plug '
      "the same root into every cluster's cacerts",
      'Istio minor versions differ by more than one (a: 1.20, b: 1.22): upgrade one minor version at a time']),
    ({}, []),
], ids=['same', 'one-minor-apart', 'two-minors-apart', 'mesh-id', 'root', 'unknowns', 'unknown-versions',
        'everything', 'nothing'])
def test_cross_cluster_problems(inspections, expected):
    assert cross_cluster_problems(inspections) == expected
