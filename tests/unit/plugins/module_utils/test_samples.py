# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Namespaces and sample apps (_samples.py): settings validation, which namespaces are created
or only labelled (a user's namespace is never claimed), the sleep/httpbin objects."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import ownership_labels
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.module_utils._samples import (
    DEFAULTS,
    deployments_ready,
    image_ref,
    namespace_objects,
    sample_namespaces,
    sample_objects,
    sample_settings,
)
from meshlink_fakes import seed_service

MESH = 'blue'


# -- settings ----------------------------------------------------------------------------------

def test_defaults():
    assert sample_settings(None) == DEFAULTS
    assert sample_settings({'registry': None, 'replicas': None}) == DEFAULTS


@pytest.mark.parametrize('given, expected', [
    ({'httpbin_port': '8080'}, {'httpbin_port': 8080}),          # templating yields strings
    ({'replicas': '0'}, {'replicas': 0}),
    ({'wait_timeout': 86400}, {'wait_timeout': 86400}),
    ({'registry': ''}, {'registry': ''}),
    ({'excluded_namespaces': []}, {'excluded_namespaces': []}),
    ({'pull_policy': 'Always', 'wait': False}, {'pull_policy': 'Always', 'wait': False}),
])
def test_good_settings(given, expected):
    settings = sample_settings(given)
    assert {k: settings[k] for k in expected} == expected


# (case id, given, field path, text)
INVALID = [
    ('image with trailing newline', {'sleep_image': 'curlimages/curl:8.8.0\n'}, 'sample_apps.sleep_image',
     'whitespace, control or non-ASCII'),
    ('image with a space', {'httpbin_image': 'kong/httpbin :0.1.0'}, 'sample_apps.httpbin_image', 'whitespace'),
    ('image non-ASCII', {'httpbin_image': 'kong/httpbín'}, 'sample_apps.httpbin_image', 'non-ASCII'),
    ('image empty', {'sleep_image': ''}, 'sample_apps.sleep_image', 'non-empty image reference'),
    ('image not text', {'sleep_image': 3}, 'sample_apps.sleep_image', 'non-empty image reference'),
    ('registry with tab', {'registry': 'docker.io\t'}, 'sample_apps.registry', '"" to use the images as given'),
    ('port Arabic-Indic digits', {'httpbin_port': '\u0668\u0660'}, 'sample_apps.httpbin_port', 'is not a port'),
    ('port fullwidth digits', {'httpbin_port': '\uff18\uff10'}, 'sample_apps.httpbin_port', 'is not a port'),
    ('port bool', {'httpbin_port': True}, 'sample_apps.httpbin_port', 'is not a port'),
    ('port float', {'httpbin_port': 80.0}, 'sample_apps.httpbin_port', 'is not a port'),
    ('port zero', {'httpbin_port': 0}, 'sample_apps.httpbin_port', 'is not a port (1-65535)'),
    ('port too big', {'httpbin_port': 65536}, 'sample_apps.httpbin_port', 'is not a port'),
    ('port with spaces', {'httpbin_port': ' 80'}, 'sample_apps.httpbin_port', 'is not a port'),
    ('port negative', {'httpbin_port': '-1'}, 'sample_apps.httpbin_port', 'is not a port'),
    ('replicas bool', {'replicas': False}, 'sample_apps.replicas', 'is not a number of replicas'),
    ('replicas float', {'replicas': 1.0}, 'sample_apps.replicas', 'is not a number of replicas'),
    ('replicas negative', {'replicas': -1}, 'sample_apps.replicas', 'is not a number of replicas'),
    ('replicas superscript', {'replicas': '\u00b2'}, 'sample_apps.replicas', 'is not a number of replicas'),
    ('wait timeout zero', {'wait_timeout': 0}, 'sample_apps.wait_timeout', 'is not a number of seconds'),
    ('wait timeout bool', {'wait_timeout': True}, 'sample_apps.wait_timeout', 'is not a number of seconds'),
    ('pull policy lower case', {'pull_policy': 'always'}, 'sample_apps.pull_policy',
     "'always' is not one of Always, IfNotPresent, Never"),
    ('pull policy empty', {'pull_policy': ''}, 'sample_apps.pull_policy', 'is not one of'),
    ('wait as text', {'wait': 'yes'}, 'sample_apps.wait', 'is not true or false'),
    ('excluded not a list', {'excluded_namespaces': 'kube-system'}, 'sample_apps.excluded_namespaces',
     'must be a list'),
    ('excluded bad name', {'excluded_namespaces': ['kube-system', 'Kube_Public']},
     'sample_apps.excluded_namespaces[1]', 'DNS-1123'),
    ('unknown key', {'image': 'x'}, 'sample_apps', "unknown key 'image'"),
]


@pytest.mark.parametrize('case, given, field, text', INVALID, ids=[c[0] for c in INVALID])
def test_bad_settings_name_the_field(case, given, field, text):
    with pytest.raises(InputError) as caught:
        sample_settings(given)
    errors = caught.value.errors
    assert len(errors) == 1 and errors[0].startswith(field + ': ') and text in errors[0], errors


def test_every_settings_problem_at_once():
    with pytest.raises(InputError) as caught:
        sample_settings({'replicas': True, 'pull_policy': 'x', 'sleep_image': ' '})
    assert len(caught.value.errors) == 3


@pytest.mark.parametrize('registry, image, expected', [
    ('docker.io', 'kong/httpbin:0.1.0', 'docker.io/kong/httpbin:0.1.0'),
    ('', 'registry.local/kong/httpbin:0.1.0', 'registry.local/kong/httpbin:0.1.0'),
])
def test_image_ref(registry, image, expected):
    assert image_ref(sample_settings({'registry': registry}), image) == expected


# -- namespaces --------------------------------------------------------------------------------

def ns(name, labels=None):
    return {'kind': 'Namespace', 'metadata': {'name': name, 'labels': labels or {}}}


OURS = ownership_labels(MESH, 'namespace')


def test_an_absent_namespace_is_created_as_the_mesh_s():
    desired, messages = namespace_objects(['foo'], {'foo': None}, MESH, inject=['foo'])
    assert messages == []
    assert [(d.key, d.compare, d.owned) for d in desired] == [(('Namespace', '', 'foo'), 'labels', True)]
    assert desired[0].obj['metadata'] == {'name': 'foo', 'labels': dict(OURS, **{'istio-injection': 'enabled'})}


def test_our_namespace_keeps_its_labels():
    desired, messages = namespace_objects(['foo'], {'foo': ns('foo', OURS)}, MESH)
    assert messages == [] and desired[0].owned and desired[0].obj['metadata']['labels'] == OURS


@pytest.mark.parametrize('labels, message', [
    ({'team': 'a'}, True),
    ({'istio-injection': 'enabled'}, False),                        # nothing to add, nothing to say
    (ownership_labels('green', 'namespace'), True),               # another mesh's: not ours either
])
def test_a_user_namespace_only_gets_the_injection_label(labels, message):
    desired, messages = namespace_objects(['foo'], {'foo': ns('foo', labels)}, MESH, inject=['foo'])
    assert [(d.key, d.compare, d.owned) for d in desired] == [(('Namespace', '', 'foo'), 'labels', False)]
    assert desired[0].obj['metadata']['labels'] == {'istio-injection': 'enabled'}
    assert bool(messages) is message
    if message:
        assert messages == ["namespace foo exists and is not this mesh's: label istio-injection=enabled added for the "
                            "sample apps (it stays after teardown; the namespace is never deleted)"]


def test_a_user_namespace_without_samples_is_left_alone():
    desired, messages = namespace_objects(['foo', 'bar'], {'foo': ns('foo', {'team': 'a'}), 'bar': None}, MESH)
    assert [d.key[2] for d in desired] == ['bar'] and messages == []
    assert 'istio-injection' not in desired[0].obj['metadata']['labels']


def test_without_samples_no_injection_label():
    desired, _messages = namespace_objects(['foo'], {'foo': None}, MESH)
    assert desired[0].obj['metadata']['labels'] == OURS


def test_namespaces_are_sorted_and_unique():
    desired, _messages = namespace_objects(['b', 'a', 'b'], {}, MESH)
    assert [d.key[2] for d in desired] == ['a', 'b']


# -- the sample objects ------------------------------------------------------------------------

def plan():
    services = [
        seed_service(consumers=[{'cluster': 'cluster1', 'namespace': 'foo'},
                                {'cluster': 'cluster3', 'namespace': 'kube-system'}]),
        seed_service(name='orders', namespace='shop', cluster='cluster1', consumers=['cluster2'],
                     endpoint_labels={'network': 'n2'},
                     ports=[{'name': 'http1', 'number': 8000, 'protocol': 'http'},
                            {'name': 'grpc', 'number': 9000, 'protocol': 'GRPC'}],
                     subsets=[{'name': 'v1', 'endpoint_labels': {'version': 'v1'}, 'pod_labels': {'version': 'v1'}},
                              {'name': 'v2', 'endpoint_labels': {'version': 'v2'},
                               'pod_labels': {'version': 'v2', 'track': 'canary'}}],
                     route_subset='v2'),
    ]
    return build_plan(services, ['cluster1', 'cluster2', 'cluster3'], mesh=MESH)


def objects_of(cluster, **settings):
    return sample_objects(plan()['clusters'][cluster], sample_settings(settings), MESH)


def keys(desired):
    return [d.key for d in desired]


def test_cluster1_gets_sleep_and_one_deployment_per_subset():
    desired = objects_of('cluster1')
    assert keys(desired) == [
        ('ServiceAccount', 'foo', 'sleep'), ('Service', 'foo', 'sleep'), ('Deployment', 'foo', 'sleep'),
        ('ServiceAccount', 'shop', 'orders'), ('Service', 'shop', 'orders'),
        ('Deployment', 'shop', 'orders-v1'), ('Deployment', 'shop', 'orders-v2'),
    ]
    by_key = {d.key: d.obj for d in desired}
    v2 = by_key[('Deployment', 'shop', 'orders-v2')]
    pods = {'app': 'orders', 'version': 'v2', 'track': 'canary'}
    assert v2['spec']['selector']['matchLabels'] == pods and v2['spec']['template']['metadata']['labels'] == pods
    assert by_key[('Deployment', 'shop', 'orders-v1')]['spec']['template']['metadata']['labels'] == \
        {'app': 'orders', 'version': 'v1'}
    # Several ports: <protocol>-<name>, all to httpbin's port.
    assert by_key[('Service', 'shop', 'orders')]['spec']['ports'] == [
        {'name': 'http-http1', 'port': 8000, 'targetPort': 80}, {'name': 'grpc-grpc', 'port': 9000, 'targetPort': 80}]
    for desired_obj in desired:
        labels = desired_obj.obj['metadata']['labels']
        assert labels['app.kubernetes.io/managed-by'] == 'meshlink' and labels['meshlink.io/mesh'] == MESH
        assert desired_obj.compare == 'contains' and desired_obj.owned


def test_a_service_without_subsets_gets_one_deployment_and_a_single_http_port():
    desired = objects_of('cluster2', registry='', httpbin_image='mirror/httpbin:1', httpbin_port='8080',
                         replicas=2, pull_policy='Always')
    by_key = {d.key: d.obj for d in desired}
    assert sorted(k for k in by_key if k[1] == 'bar') == [
        ('Deployment', 'bar', 'httpbin'), ('Service', 'bar', 'httpbin'), ('ServiceAccount', 'bar', 'httpbin')]
    assert by_key[('Service', 'bar', 'httpbin')]['spec']['ports'] == [
        {'name': 'http', 'port': 8000, 'targetPort': 8080}]
    deployment = by_key[('Deployment', 'bar', 'httpbin')]
    assert deployment['spec']['replicas'] == 2
    assert deployment['spec']['template']['metadata']['labels'] == {'app': 'httpbin', 'version': 'v1'}
    container = deployment['spec']['template']['spec']['containers'][0]
    assert (container['image'], container['imagePullPolicy'], container['ports']) == \
        ('mirror/httpbin:1', 'Always', [{'containerPort': 8080}])
    assert deployment['metadata']['labels']['multicluster.meshlink.io/service'] == 'httpbin.bar'
    # cluster2 consumes orders in istio-system, an excluded namespace: no sleep there.
    assert not [k for k in by_key if k[2] == 'sleep']


def test_excluded_namespaces_get_nothing():
    assert objects_of('cluster3') == []
    assert sample_namespaces(plan()['clusters']['cluster3'], sample_settings(None)) == ([], [], ['kube-system'])
    # Not excluded any more: sleep goes there.
    assert keys(objects_of('cluster3', excluded_namespaces=[]))[0] == ('ServiceAccount', 'kube-system', 'sleep')


def test_sample_namespaces():
    assert sample_namespaces(plan()['clusters']['cluster1'], sample_settings(None)) == (['foo'], ['shop'], [])
    assert sample_namespaces(plan()['clusters']['cluster2'], sample_settings(None)) == ([], ['bar'], ['istio-system'])


def test_sleep_objects():
    by_key = {d.key: d.obj for d in objects_of('cluster1', registry='r.example')}
    sleep = by_key[('Deployment', 'foo', 'sleep')]
    assert sleep['spec']['template']['spec']['containers'][0]['image'] == 'r.example/curlimages/curl:8.8.0'
    assert sleep['spec']['selector']['matchLabels'] == {'app': 'sleep'}
    assert by_key[('Service', 'foo', 'sleep')]['spec']['selector'] == {'app': 'sleep'}
    assert sleep['metadata']['labels']['multicluster.meshlink.io/service'] == 'sample-apps'


# -- readiness ---------------------------------------------------------------------------------

def dep(name, replicas=1, ready=1, updated=1, generation=1, observed=1, namespace='foo'):
    return {'metadata': {'name': name, 'namespace': namespace, 'generation': generation},
            'spec': {'replicas': replicas},
            'status': {'readyReplicas': ready, 'updatedReplicas': updated, 'observedGeneration': observed}}


@pytest.mark.parametrize('deployment, waiting', [
    (dep('sleep'), []),
    (dep('sleep', replicas=2, ready=1, updated=2), ['foo/sleep (1 of 2 ready)']),
    (dep('sleep', ready=1, updated=0), ['foo/sleep (1 of 1 ready)']),                 # old pods still serving
    (dep('sleep', generation=2, observed=1), ['foo/sleep (1 of 1 ready)']),           # new spec not seen yet
    (dep('sleep', replicas=0, ready=0, updated=0), []),
    ({'metadata': {'name': 'sleep', 'namespace': 'foo'}, 'spec': {}}, ['foo/sleep (0 of 1 ready)']),
    (dep('other'), ['foo/sleep (not found)']),
    (dep('sleep', namespace='bar'), ['foo/sleep (not found)']),
])
def test_deployments_ready(deployment, waiting):
    assert deployments_ready([deployment], [('foo', 'sleep')]) == waiting
