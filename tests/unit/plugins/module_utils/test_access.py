# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Least privilege (_access.py): what an administrator grants per cluster for the seed plan and
for a multi-network plan (the reader ClusterRole granted here, so that setup only binds it:
``bind``, never ``escalate``), token lifetimes, the TokenRequest and the kubeconfig it goes into."""

from __future__ import annotations

import base64
import types

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet as mn
from ansible_collections.meshlink.multicluster.plugins.module_utils._access import (
    MAX_TOKEN_SECONDS,
    MIN_TOKEN_SECONDS,
    access_objects,
    ca_data,
    multinetwork_rules,
    reader_role_object,
    reconcile_access,
    render_kubeconfig,
    request_token,
    token_seconds,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    COMPONENT_LABEL,
    MANAGED_BY_LABEL,
    MESH_LABEL,
    SERVICE_LABEL,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from meshlink_fakes import CurrentFakeCluster, seed_service

MESH = 'blue'
RBAC = 'rbac.authorization.k8s.io'
ISTIO_KINDS = ['serviceentries', 'virtualservices', 'destinationrules', 'gateways']
WRITE = ['get', 'list', 'create', 'update', 'patch', 'delete']
ACCESS_LABELS = {MANAGED_BY_LABEL: 'meshlink', MESH_LABEL: MESH, SERVICE_LABEL: 'access', COMPONENT_LABEL: 'access'}


def seed_plan():
    return build_plan([seed_service()], ['cluster1', 'cluster2'], mesh=MESH)


def current_plan():
    """west and east primaries, edge a remote of west: east's httpbin consumed in west/foo."""
    return build_plan([seed_service(cluster='east', consumers=[{'cluster': 'west', 'namespace': 'foo'}])],
                      ['east', 'edge', 'west'], mesh=MESH, topology='multi_primary', cluster_settings={
                          'west': {'meshlink_network': 'n1'}, 'east': {'meshlink_network': 'n2'},
                          'edge': {'meshlink_network': 'n1', 'meshlink_istio_role': 'remote',
                                   'meshlink_istio_primary': 'west'}})


def names(objects):
    return [(o['kind'], o['metadata'].get('namespace', ''), o['metadata']['name']) for o in objects]


def find(objects, kind, name, namespace=''):
    return next(o for o in objects if (o['kind'], o['metadata'].get('namespace', ''), o['metadata']['name'])
                == (kind, namespace, name))


def rule(groups, resources, verbs, resource_names=None):
    out = {'apiGroups': groups, 'resources': resources, 'verbs': verbs}
    if resource_names:
        out['resourceNames'] = resource_names
    return out


# -- access_objects: the seed plan ----------------------------------------------------------------

def test_access_objects_of_a_seed_consumer():
    objects = access_objects(seed_plan()['clusters']['cluster1'], MESH)
    assert names(objects) == [
        ('Namespace', '', 'meshlink-system'),
        ('ServiceAccount', 'meshlink-system', 'meshlink-blue'),
        ('Namespace', '', 'foo'),
        ('ClusterRole', '', 'meshlink-blue-reader'),
        ('ClusterRoleBinding', '', 'meshlink-blue-reader'),
        ('Role', 'foo', 'meshlink-blue'),
        ('RoleBinding', 'foo', 'meshlink-blue'),
        ('Role', 'foo', 'meshlink-blue-verify'),
        ('RoleBinding', 'foo', 'meshlink-blue-verify'),
        ('Role', 'istio-system', 'meshlink-blue-istio'),
        ('RoleBinding', 'istio-system', 'meshlink-blue-istio'),
        ('Role', 'kube-system', 'meshlink-blue-dns'),
        ('RoleBinding', 'kube-system', 'meshlink-blue-dns'),
    ]
    assert all(o['metadata']['labels'] == ACCESS_LABELS for o in objects)
    for binding in (o for o in objects if o['kind'].endswith('Binding')):
        assert binding['subjects'] == [{'kind': 'ServiceAccount', 'name': 'meshlink-blue', 'namespace': 'meshlink-system'}]
        assert binding['roleRef'] == {'apiGroup': RBAC, 'kind': binding['kind'].replace('Binding', ''),
                                      'name': binding['metadata']['name']}
    assert find(objects, 'ClusterRole', 'meshlink-blue-reader')['rules'] == [
        rule([''], ['namespaces'], ['get', 'list']),
        rule([''], ['namespaces'], ['patch', 'update'], ['foo']),
        rule([''], ['nodes'], ['list']),
        rule(['networking.istio.io'], ISTIO_KINDS, ['get', 'list']),
    ]
    assert find(objects, 'Role', 'meshlink-blue', 'foo')['rules'] == [
        rule(['networking.istio.io'], ISTIO_KINDS, WRITE),
        rule([''], ['services', 'serviceaccounts'], WRITE),
        rule(['apps'], ['deployments'], WRITE),
    ]
    assert find(objects, 'Role', 'meshlink-blue-verify', 'foo')['rules'] == [
        rule([''], ['pods'], ['get', 'list']), rule([''], ['pods/exec'], ['create', 'get'])]
    assert find(objects, 'Role', 'meshlink-blue-istio', 'istio-system')['rules'] == [
        rule([''], ['configmaps'], ['get'], ['istio', 'istio-ca-root-cert']),
        rule([''], ['services'], ['get', 'list']),
        rule(['apps'], ['deployments'], ['get', 'list']),
        rule([''], ['configmaps'], ['create', 'list']),
        rule([''], ['configmaps'], ['get', 'update', 'delete'], ['meshlink-vips-blue']),
    ]
    assert find(objects, 'Role', 'meshlink-blue-dns', 'kube-system')['rules'] == [
        rule([''], ['configmaps'], ['get'], ['coredns', 'kube-dns'])]


def test_access_objects_without_sample_apps_write_only_istio_objects():
    objects = access_objects(seed_plan()['clusters']['cluster2'], MESH, sample_apps=False, sa_namespace='ops',
                             store_name='vips')
    assert find(objects, 'Role', 'meshlink-blue', 'bar')['rules'] == [rule(['networking.istio.io'], ISTIO_KINDS, WRITE)]
    assert ('Role', 'bar', 'meshlink-blue-verify') not in names(objects)          # cluster2 consumes nothing
    assert names(objects)[:2] == [('Namespace', '', 'ops'), ('ServiceAccount', 'ops', 'meshlink-blue')]
    assert find(objects, 'Role', 'meshlink-blue-istio', 'istio-system')['rules'][4]['resourceNames'] == ['vips']


def test_each_component_namespace_gets_its_own_rules():
    """A VIP store, an ingress gateway and an istiod in three namespaces: each Role grants what
    lives there and no more, and the store's namespace (none of the plan's) is created."""
    objects = access_objects(seed_plan()['clusters']['cluster1'], MESH, istio_namespace='istio-control',
                             store_namespace='meshlink-state', gateway_namespace='istio-gateways')
    roles = {o['metadata']['namespace']: o['rules'] for o in objects
             if o['kind'] == 'Role' and o['metadata']['name'] == 'meshlink-blue-istio'}
    assert roles == {
        'istio-control': [rule([''], ['configmaps'], ['get'], ['istio', 'istio-ca-root-cert']),
                          rule([''], ['services'], ['get', 'list']),
                          rule(['apps'], ['deployments'], ['get', 'list'])],
        'meshlink-state': [rule([''], ['configmaps'], ['create', 'list']),
                           rule([''], ['configmaps'], ['get', 'update', 'delete'], ['meshlink-vips-blue'])],
        'istio-gateways': [rule([''], ['services'], ['get', 'list'])],
    }
    bindings = {o['metadata']['namespace'] for o in objects
                if o['kind'] == 'RoleBinding' and o['metadata']['name'] == 'meshlink-blue-istio'}
    assert bindings == set(roles)
    created = [o['metadata']['name'] for o in objects if o['kind'] == 'Namespace']
    assert created == ['meshlink-system', 'foo', 'meshlink-state']     # never istiod's or the gateway's


def test_the_east_west_namespace_may_hold_the_gateway_object():
    plan = current_plan()
    objects = access_objects(plan['clusters']['east'], MESH, multinetwork=multinetwork_rules(plan, 'east'),
                             eastwest_namespace='istio-eastwest')
    role = find(objects, 'Role', 'meshlink-blue-istio', 'istio-eastwest')
    assert role['rules'] == [rule([''], ['services'], ['get', 'list']), rule(['networking.istio.io'], ISTIO_KINDS, WRITE)]
    assert ('Namespace', '', 'istio-eastwest') not in names(objects)     # the gateway's namespace is Istio's


def test_access_objects_never_create_the_system_namespaces():
    part = seed_plan()['clusters']['cluster1']
    objects = access_objects(part, MESH, extra_namespaces=['istio-system', 'kube-system', 'meshlink-system', 'tools'])
    namespaces = [o['metadata']['name'] for o in objects if o['kind'] == 'Namespace']
    assert namespaces == ['meshlink-system', 'foo', 'tools']


# -- the multi-network additions ------------------------------------------------------------------

def all_rules(objects):
    return [r for o in objects for r in o.get('rules') or []]


def test_multinetwork_rules_of_a_read_cluster():
    plan = current_plan()
    cluster_wide, istio = multinetwork_rules(plan, 'east')          # read by west (edge is a remote: no reader)
    assert cluster_wide == [
        rule([''], ['services'], ['list']),
        rule([RBAC], ['clusterroles', 'clusterrolebindings'], ['list']),
        rule([RBAC], ['clusterrolebindings'], ['create']),
        rule([RBAC], ['clusterroles'], ['get', 'bind'], ['meshlink-blue-istio-reader']),
        rule([RBAC], ['clusterrolebindings'], ['get', 'update', 'patch', 'delete'], ['meshlink-blue-istio-reader-west']),
    ]
    assert istio == [
        rule([''], ['secrets', 'serviceaccounts'], ['create', 'get', 'list', 'update', 'patch', 'delete']),
        rule([''], ['serviceaccounts/token'], ['create']),
        rule([''], ['pods'], ['get', 'list']),
        rule([''], ['pods/portforward'], ['create', 'get']),
        rule(['networking.istio.io'], ISTIO_KINDS, WRITE),
    ]


@pytest.mark.parametrize('cluster, bindings', [
    ('east', ['meshlink-blue-istio-reader-west']),
    ('edge', ['meshlink-blue-istio-reader-east', 'meshlink-blue-istio-reader-west']),
    ('west', ['meshlink-blue-istio-reader-east']),
], ids=['east', 'remote-read-by-both', 'west'])
def test_multinetwork_rules_name_the_bindings_of_the_readers(cluster, bindings):
    cluster_wide, _istio = multinetwork_rules(current_plan(), cluster)
    assert cluster_wide[4]['resourceNames'] == bindings


def test_multinetwork_rules_of_a_cluster_nobody_reads_name_no_real_binding():
    plan = build_plan([], ['hub', 'spoke'], mesh=MESH, topology='primary_remote', cluster_settings={
        'hub': {'meshlink_network': 'n1', 'meshlink_istio_role': 'primary'}, 'spoke': {'meshlink_network': 'n2'}})
    cluster_wide, _istio = multinetwork_rules(plan, 'hub')
    assert cluster_wide[4]['resourceNames'] == ['meshlink-blue-istio-reader-none']


@pytest.mark.parametrize('cluster', ['east', 'edge', 'west'])
def test_the_collection_binds_the_reader_role_but_cannot_escalate(cluster):
    plan = current_plan()
    objects = access_objects(plan['clusters'][cluster], MESH, multinetwork=multinetwork_rules(plan, cluster))
    objects.append(reader_role_object(MESH, True))
    granted = [r for o in objects if o['metadata']['name'] != mn.reader_role(MESH) for r in o.get('rules') or []]
    assert not any('escalate' in r['verbs'] for r in all_rules(objects))
    assert not any('*' in r['verbs'] or '*' in r['resources'] for r in granted)
    # clusterroles: no create, update, patch or delete - the role is the access playbook's
    assert {v for r in granted if 'clusterroles' in r['resources'] for v in r['verbs']} == {'list', 'get', 'bind'}
    bind = next(r for r in granted if 'bind' in r['verbs'])
    assert bind['resourceNames'] == ['meshlink-blue-istio-reader']
    # the network label of the Istio namespace may be written, only there and in the plan's namespaces
    reader = find(objects, 'ClusterRole', 'meshlink-blue-reader')
    patch = next(r for r in reader['rules'] if 'patch' in r['verbs'] and r['resources'] == ['namespaces'])
    assert 'istio-system' in patch['resourceNames']
    assert set(patch['resourceNames']) == set(plan['clusters'][cluster]['namespaces']) | {'istio-system'}


def test_multinetwork_without_sample_apps_still_writes_stub_services():
    plan = current_plan()
    objects = access_objects(plan['clusters']['west'], MESH, sample_apps=False,
                             multinetwork=multinetwork_rules(plan, 'west'))
    assert find(objects, 'Role', 'meshlink-blue', 'bar')['rules'] == [
        rule(['networking.istio.io'], ISTIO_KINDS, WRITE), rule([''], ['services'], WRITE)]
    istio_role = find(objects, 'Role', 'meshlink-blue-istio', 'istio-system')
    assert rule([''], ['serviceaccounts/token'], ['create']) in istio_role['rules']
    assert rule([''], ['pods/portforward'], ['create', 'get']) in istio_role['rules']


@pytest.mark.parametrize('secrets', [True, False], ids=['with-secrets', 'without-secrets'])
def test_reader_role_object_is_the_reader_role_setup_binds(secrets):
    role = reader_role_object(MESH, secrets)
    assert role == {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole',
                    'metadata': {'name': 'meshlink-blue-istio-reader', 'labels': ACCESS_LABELS},
                    'rules': mn.reader_rules(secrets)}
    # the same rules the reconcile would write: an access grant replaces it one for one
    assert role['rules'] == mn.render_reader_role(MESH, secrets)['rules']


# -- token_seconds --------------------------------------------------------------------------------

@pytest.mark.parametrize('value, expected', [
    (600, 600), (3600, 3600), (604800, 604800), ('28800', 28800), ('600', 600),
], ids=['minimum', 'hour', 'week', 'text', 'text-minimum'])
def test_token_seconds(value, expected):
    assert token_seconds(value) == expected


@pytest.mark.parametrize('value', [599, 0, -1, 604801, True, False, 3600.0, '1h', '', None, '３６００', ' 3600'],
                         ids=['below-minimum', 'zero', 'negative', 'above-week', 'true', 'false', 'float', 'unit',
                              'empty', 'none', 'fullwidth-digits', 'space'])
def test_token_seconds_refused(value):
    with pytest.raises(InputError) as caught:
        token_seconds(value)
    assert caught.value.errors == [
        'token_lifetime: %r is not a number of seconds between %d and %d (tokens are bounded: run the access playbook '
        'again to renew)' % (value, MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS)]


# -- request_token, ca_data, render_kubeconfig ----------------------------------------------------

def test_request_token_asks_a_bounded_token_of_the_service_account():
    cluster = CurrentFakeCluster(objects=[('serviceaccounts', {'metadata': {'name': 'reader', 'namespace': 'ns'}})],
                                 token_expires='2026-05-02T12:00:00Z')
    assert request_token(cluster, 'ns', 'reader', 3600, audiences=['istio-ca']) == {
        'token': 'token-1-for-reader', 'expires': '2026-05-02T12:00:00Z'}
    assert cluster.minted == [('ns', 'reader', {'expirationSeconds': 3600, 'audiences': ['istio-ca']})]
    assert ('request', '/api/v1/namespaces/ns/serviceaccounts/reader/token') in cluster.calls


def test_request_token_without_a_token_in_the_answer_fails_naming_the_account():
    cluster = types.SimpleNamespace(context='ctx-east', request=lambda *args, **kwargs: {'status': {}})
    with pytest.raises(MeshlinkError) as caught:
        request_token(cluster, 'istio-system', 'meshlink-reader-west', 3600)
    assert str(caught.value) == ('The API server of ctx-east returned no token for ServiceAccount '
                                 'istio-system/meshlink-reader-west')


def test_ca_data_is_the_ca_the_connection_trusts(tmp_path):
    path = tmp_path / 'ca.crt'
    path.write_bytes(b'-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    cluster = types.SimpleNamespace(api_client=types.SimpleNamespace(
        configuration=types.SimpleNamespace(ssl_ca_cert=str(path))))
    assert base64.b64decode(ca_data(cluster)) == path.read_bytes()
    cluster.api_client.configuration.ssl_ca_cert = str(tmp_path / 'gone.crt')
    assert ca_data(cluster) is None
    assert ca_data(types.SimpleNamespace()) is None                 # no client: the system's CAs


def test_render_kubeconfig_minimal():
    assert render_kubeconfig('east', 'https://10.0.0.2:6443', 'tok') == {
        'apiVersion': 'v1', 'kind': 'Config', 'preferences': {}, 'current-context': 'east',
        'clusters': [{'name': 'east', 'cluster': {'server': 'https://10.0.0.2:6443'}}],
        'contexts': [{'name': 'east', 'context': {'cluster': 'east', 'user': 'east'}}],
        'users': [{'name': 'east', 'user': {'token': 'tok'}}]}


def test_render_kubeconfig_with_every_option():
    config = render_kubeconfig('east', 'https://api.east:6443', 'tok', ca='Q0E=', insecure=True,
                               tls_server_name='kubernetes.default', namespace='istio-system')
    assert config['clusters'] == [{'name': 'east', 'cluster': {
        'server': 'https://api.east:6443', 'certificate-authority-data': 'Q0E=', 'insecure-skip-tls-verify': True,
        'tls-server-name': 'kubernetes.default'}}]
    assert config['contexts'] == [{'name': 'east', 'context': {'cluster': 'east', 'user': 'east',
                                                               'namespace': 'istio-system'}}]
    assert config['users'] == [{'name': 'east', 'user': {'token': 'tok'}}]     # inline: no exec, no file


# -- render_to: review only --------------------------------------------------------------------------

class _NoCalls:
    """A cluster that fails the test on any API call: rendering grants nothing."""
    context = 'cluster1'

    def __getattr__(self, name):
        raise AssertionError('render_to called the API (%s)' % name)


def test_render_to_creates_its_directory_and_says_what_it_wrote(tmp_path):
    target = tmp_path / 'not' / 'yet' / 'cluster1-rbac.yaml'
    plan = seed_plan()
    result = reconcile_access(_NoCalls(), plan, 'cluster1', render_to=str(target))
    assert result['changed'] is False
    written = target.read_text().count('---\n')
    assert written == len(result['objects']) == len(access_objects(plan['clusters']['cluster1'], MESH))
    assert result['lines'] == ['cluster1: %d objects written to %s for review (nothing granted)' % (written, target)]


@pytest.mark.parametrize('option', ['vip_store_namespace', 'gateway_namespace', 'eastwest_gateway_namespace'])
def test_a_bad_component_namespace_is_named(tmp_path, option):
    keyword = {'vip_store_namespace': 'store_namespace', 'eastwest_gateway_namespace': 'eastwest_namespace'}.get(
        option, option)
    with pytest.raises(InputError) as raised:
        reconcile_access(_NoCalls(), seed_plan(), 'cluster1', render_to=str(tmp_path / 'x.yaml'),
                         **{keyword: 'Istio_System'})
    assert str(raised.value).startswith('%s: ' % option) or ('%s: ' % option) in str(raised.value)
