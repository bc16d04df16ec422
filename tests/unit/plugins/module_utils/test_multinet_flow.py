# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The multi-network runs (_multinet_flow.py) against fake current-Istio clusters: the option's
validation, what each cluster should hold, the inspection (checks, facts, remote secret states
read metadata-only, duplicates, objects in the way), the reconcile (rank order, tokens minted only
where a secret needs one, check mode), the remote secrets (written from tokens, kept, pruned,
never in a diff) and the teardown (only this mesh's, the network label only where it added it).

The setup below runs the per-cluster steps as the role does, with the controller-side glue of
plugin_utils/_cluster_action.py in between: inspect every cluster, reconcile each with its
readers' secret states and its sources' ports, then write each primary's remote secrets with the
tokens its peers minted.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest
import yaml

from ansible_collections.meshlink.multicluster.plugins.module_utils import _multinet as mn
from ansible_collections.meshlink.multicluster.plugins.module_utils._access import reader_role_object
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils._multinet_flow import (
    CHECKS,
    inspect_multinet,
    reconcile_multinet,
    settings_of,
    teardown_multinet,
    wanted,
    write_remote_secrets,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import RANKS
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import is_ours, ownership_labels
from ansible_collections.meshlink.multicluster.plugins.module_utils._plan import build_plan
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import (
    minted_tokens,
    reader_states,
    source_ports,
)
from meshlink_fakes import CurrentFakeCluster, seed_service

MESH = 'blue'
NET = mn.NETWORK_LABEL
SYSTEM = 'istio-system'
EXPIRES = '2030-01-01T00:00:00Z'
ROOT = '-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n'
SUBSETS = [{'name': 'v1', 'pod_labels': {'version': 'v1'}}, {'name': 'v2', 'pod_labels': {'version': 'v2'}}]
SERVERS = {'west': 'https://192.0.2.1:6443', 'east': 'https://192.0.2.2:6443', 'north': 'https://192.0.2.3:6443',
           'hub': 'https://192.0.2.4:6443', 'spoke': 'https://192.0.2.5:6443'}
GATEWAYS = {'west': '198.51.100.1', 'east': '198.51.100.2', 'north': '198.51.100.3', 'hub': '198.51.100.4',
            'spoke': '198.51.100.5'}
HTTPBIN_PORTS = [{'name': 'http', 'port': 8000, 'targetPort': 8080, 'protocol': 'TCP', 'appProtocol': 'http'}]
ORDERS_PORTS = [{'name': 'http-web', 'port': 8000, 'targetPort': 8080, 'protocol': 'TCP'},
                {'name': 'grpc-rpc', 'port': 9000, 'targetPort': 9090, 'protocol': 'TCP'}]


def clock_at(text):
    moment = datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp


NOW = clock_at('2026-05-01T12:00:00Z')


# -- fake current clusters ------------------------------------------------------------------------

def current_cluster(name, network, cluster_id=None, istiod=True, namespace_labels=None, namespace_annotations=None,
                    eastwest=True, eastwest_network=None, mesh_id='mesh1', dns_capture=False, root=ROOT,
                    sources=(), extra=(), dry_run=False, version='1.24.3'):
    """A cluster with current Istio installed as its docs say: istio-system (labelled or not),
    istiod (CLUSTER_ID, its pods' network label), the east-west gateway Service with a load
    balancer address, the mesh config (meshId, DNS capture) and root certificate, and the
    source Services (name, namespace, ports) in their namespaces."""
    ns_meta = {'name': SYSTEM}
    if namespace_labels is not None:
        ns_meta['labels'] = dict(namespace_labels)
    if namespace_annotations is not None:
        ns_meta['annotations'] = dict(namespace_annotations)
    objects = [('namespaces', {'metadata': ns_meta})]
    if istiod:
        objects.append(('deployments', {
            'metadata': {'name': 'istiod', 'namespace': SYSTEM, 'labels': {'app': 'istiod'}},
            'spec': {'template': {'metadata': {'labels': {'app': 'istiod', NET: network}}, 'spec': {'containers': [
                {'name': 'discovery', 'image': 'docker.io/istio/pilot:%s' % version,
                 'env': [{'name': 'CLUSTER_ID', 'value': cluster_id or name}]}]}}}}))
    if eastwest:
        objects.append(('services', {
            'metadata': {'name': 'istio-eastwestgateway', 'namespace': SYSTEM, 'labels': {
                'istio': 'eastwestgateway', 'app': 'istio-eastwestgateway', NET: eastwest_network or network}},
            'spec': {'type': 'LoadBalancer', 'ports': [
                {'name': 'status-port', 'port': 15021}, {'name': 'tls', 'port': 15443},
                {'name': 'tls-istiod', 'port': 15012}, {'name': 'tls-webhook', 'port': 15017}]},
            'status': {'loadBalancer': {'ingress': [{'ip': GATEWAYS[name]}]}}}))
    mesh = 'defaultConfig:\n  meshId: %s\n' % mesh_id
    if dns_capture:
        mesh += '  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n'
    objects.append(('configmaps', {'metadata': {'name': 'istio', 'namespace': SYSTEM}, 'data': {'mesh': mesh}}))
    objects.append(('configmaps', {'metadata': {'name': 'istio-ca-root-cert', 'namespace': SYSTEM},
                                   'data': {'root-cert.pem': root}}))
    for service_name, service_namespace, ports in sources:
        objects.append(('namespaces', {'metadata': {'name': service_namespace}}))
        objects.append(('services', {'metadata': {'name': service_name, 'namespace': service_namespace,
                                                  'labels': {'app': service_name}},
                                     'spec': {'selector': {'app': service_name}, 'ports': ports}}))
    return CurrentFakeCluster(objects=objects + list(extra), dry_run=dry_run, context='ctx-%s' % name,
                              server=SERVERS[name], kube_system_uid='uid-%s' % name, token_expires=EXPIRES)


def user_object(plural, name, namespace, labels=None, annotations=None, **body):
    metadata = {'name': name, 'labels': dict(labels or {'team': 'payments'})}
    if namespace:
        metadata['namespace'] = namespace
    if annotations:
        metadata['annotations'] = dict(annotations)
    obj = {'metadata': metadata}
    obj.update(body)
    return plural, obj


def mesh_object(plural, name, namespace, part, mesh=MESH, annotations=None, **body):
    return user_object(plural, name, namespace, labels=ownership_labels(mesh, part), annotations=annotations, **body)


# -- the meshes -----------------------------------------------------------------------------------

def services():
    return [seed_service(cluster='east', consumers=[{'cluster': 'west', 'namespace': 'foo'}]),
            seed_service(name='orders', namespace='shop', cluster='west', consumers=[{'cluster': 'east'}],
                         ports=[{'name': 'web', 'number': 8000, 'protocol': 'HTTP'},
                                {'name': 'rpc', 'number': 9000, 'protocol': 'GRPC'}],
                         subsets=SUBSETS, route_subset='v2')]


def two_primaries(hosts=('east', 'west'), service_list=None, mesh=MESH):
    """west (n1) and east (n2), both primaries: east's httpbin consumed in west/foo, west's orders
    (two ports, subsets, routed to v2) in east/istio-system."""
    settings = {'west': {'meshlink_network': 'n1', 'meshlink_api_server_for_peers': None},   # None: not given
                'east': {'meshlink_network': 'n2'}, 'north': {'meshlink_network': 'n3'}}
    return build_plan(services() if service_list is None else service_list, list(hosts), mesh=mesh,
                      topology='multi_primary', cluster_settings={h: settings[h] for h in hosts})


def lab(dry_run=False, west=None, east=None):
    """The clusters of ``two_primaries``, ready; ``west``/``east``: what differs (current_cluster's options)."""
    west_options = {'network': 'n1', 'sources': [('orders', 'shop', ORDERS_PORTS)]}
    west_options.update(west or {})
    east_options = {'network': 'n2', 'sources': [('httpbin', 'bar', HTTPBIN_PORTS)]}
    east_options.update(east or {})
    return {'west': current_cluster('west', dry_run=dry_run, **west_options),
            'east': current_cluster('east', dry_run=dry_run, **east_options)}


def hub_and_spoke(spoke_primary_name='cluster1'):
    """primary_remote: hub (cluster1, n1) serves spoke (cluster2, n2), which exports httpbin to hub."""
    plan = build_plan([seed_service(cluster='spoke', consumers=[{'cluster': 'hub', 'namespace': 'foo'}])],
                      ['hub', 'spoke'], mesh=MESH, topology='primary_remote', cluster_settings={
                          'hub': {'meshlink_network': 'n1', 'meshlink_istio_role': 'primary',
                                  'meshlink_istio_cluster_name': 'cluster1'},
                          'spoke': {'meshlink_network': 'n2', 'meshlink_istio_cluster_name': 'cluster2'}})
    clusters = {'hub': current_cluster('hub', 'n1', cluster_id='cluster1'),
                'spoke': current_cluster('spoke', 'n2', istiod=False, sources=[('httpbin', 'bar', HTTPBIN_PORTS)],
                                         namespace_annotations={mn.CONTROL_PLANE_ANNOTATION: spoke_primary_name})}
    return plan, clusters


def inspect_all(clusters, plan, multinetwork=None, must_pass=True):
    inspections = {h: inspect_multinet(c, plan, h, multinetwork=multinetwork) for h, c in clusters.items()}
    if must_pass:
        for host, result in inspections.items():
            assert not result.get('failed'), '%s: %s' % (host, result.get('msg'))
    return inspections


def setup(clusters, plan, multinetwork=None, clock=NOW, inspections=None):
    """``(inspections, reconciles, secrets)`` of one setup run, as the role runs it."""
    inspections = inspections or inspect_all(clusters, plan, multinetwork)
    reconciles = {h: reconcile_multinet(c, plan, h, inspections[h]['state'],
                                        peers=reader_states(plan, h, inspections.get),
                                        peer_services=source_ports(plan, h, inspections.get),
                                        multinetwork=multinetwork, clock=clock, workers=1)
                  for h, c in clusters.items()}
    secrets = {h: write_remote_secrets(c, plan, h, inspections[h]['state'], peers=minted_tokens(plan, h, reconciles.get),
                                       multinetwork=multinetwork, workers=1)
               for h, c in clusters.items() if plan['istio'][h]['role'] == 'primary'}
    return inspections, reconciles, secrets


def stored(cluster, plural, name, namespace=SYSTEM):
    return cluster.store.get((plural, namespace, name))


def kubeconfig_in(secret, key):
    return yaml.safe_load(base64.b64decode(secret['data'][key]))


def keys_of(cluster, mesh=MESH):
    """(plural, namespace, name) of every object of ``mesh`` in the cluster."""
    return sorted((k[0], k[1] or '', k[2]) for k, o in cluster.store.items() if is_ours(o, mesh))


# -- settings_of ----------------------------------------------------------------------------------

def test_settings_of_defaults():
    assert settings_of(None) == settings_of({}) == {
        'eastwest': {'namespace': 'istio-system', 'selector': {'istio': 'eastwestgateway'}, 'service': '',
                     'gateway_name': 'cross-network-gateway', 'expose_all': False, 'wait_timeout': 60},
        'reader': {'token_lifetime': 86400, 'renew_before': 28800, 'rotate': False, 'secrets': True},
        'dns': 'auto', 'allow_loopback_api_server': False, 'istio_namespace': 'istio-system'}


def test_settings_of_takes_given_values_and_ignores_empty_ones():
    settings = settings_of({'eastwest': {'namespace': 'gateways', 'service': 'ew', 'selector': None,
                                         'gateway_name': ''},
                            'reader': {'token_lifetime': '3600', 'renew_before': 600, 'rotate': True},
                            'dns': 'dns_proxy', 'allow_loopback_api_server': True, 'istio_namespace': 'mesh-system'})
    assert settings['eastwest']['namespace'] == 'gateways' and settings['eastwest']['service'] == 'ew'
    assert settings['eastwest']['selector'] == {'istio': 'eastwestgateway'}
    assert settings['eastwest']['gateway_name'] == 'cross-network-gateway'
    assert settings['reader'] == {'token_lifetime': 3600, 'renew_before': 600, 'rotate': True, 'secrets': True}
    assert (settings['dns'], settings['allow_loopback_api_server'], settings['istio_namespace']) == (
        'dns_proxy', True, 'mesh-system')


# (raw option, error expected, each starting with the field it names)
SETTINGS_ERRORS = [
    ({'bogus': 1}, ["multinetwork: unknown key 'bogus' (known: eastwest, reader, dns, allow_loopback_api_server, "
                    "istio_namespace)"]),
    ({'eastwest': {'port': 15443}}, ["multinetwork.eastwest: unknown key 'port' (known: expose_all, gateway_name, "
                                     "namespace, selector, service, wait_timeout)"]),
    ({'reader': {'ttl': 60}}, ["multinetwork.reader: unknown key 'ttl' (known: renew_before, rotate, secrets, "
                               "token_lifetime)"]),
    ({'reader': {'token_lifetime': 'a day'}}, ["multinetwork.reader.token_lifetime: 'a day' is not a number of seconds"]),
    ({'reader': {'token_lifetime': True}}, ['multinetwork.reader.token_lifetime: True is not a number of seconds']),
    ({'reader': {'token_lifetime': 1.5}}, ['multinetwork.reader.token_lifetime: 1.5 is not a number of seconds']),
    ({'reader': {'token_lifetime': 599, 'renew_before': 0}},
     ['multinetwork.reader.token_lifetime: 599 is not between 600 and 604800 seconds']),
    ({'reader': {'token_lifetime': 604801}},
     ['multinetwork.reader.token_lifetime: 604801 is not between 600 and 604800 seconds']),
    ({'reader': {'renew_before': '8h'}}, ["multinetwork.reader.renew_before: '8h' is not a number of seconds"]),
    ({'reader': {'renew_before': 86400}},
     ['multinetwork.reader.renew_before: 86400 must be less than token_lifetime (86400)']),
    ({'reader': {'renew_before': -1}}, ['multinetwork.reader.renew_before: -1 must be less than token_lifetime (86400)']),
    ({'eastwest': {'wait_timeout': '1m'}}, ["multinetwork.eastwest.wait_timeout: '1m' is not a number of seconds"]),
    ({'eastwest': {'wait_timeout': False}}, ['multinetwork.eastwest.wait_timeout: False is not a number of seconds']),
    ({'dns': 'coredns'}, ["multinetwork.dns: 'coredns' is not one of auto, stub_services, dns_proxy"]),
    ({'eastwest': {'selector': 'istio=eastwestgateway'}}, ['multinetwork.eastwest.selector: must be a mapping of labels']),
    ({'eastwest': {'selector': {}}}, ['multinetwork.eastwest.selector: must be a mapping of labels']),
    ({'reader': {'rotate': 'maybe'}}, ["multinetwork.reader.rotate: 'maybe' is not true or false"]),
    ({'reader': {'secrets': 2}}, ['multinetwork.reader.secrets: 2 is not true or false']),
    ({'eastwest': {'expose_all': 'everything'}}, ["multinetwork.eastwest.expose_all: 'everything' is not true or false"]),
    ({'allow_loopback_api_server': 'lab'}, ["multinetwork.allow_loopback_api_server: 'lab' is not true or false"]),
    ({'bogus': 1, 'dns': 'x', 'reader': {'token_lifetime': 'y'}},
     ["multinetwork: unknown key 'bogus'", "multinetwork.reader.token_lifetime: 'y'", "multinetwork.dns: 'x'"]),
]


@pytest.mark.parametrize('raw, expected', SETTINGS_ERRORS,
                         ids=['unknown-key', 'eastwest-unknown', 'reader-unknown', 'lifetime-text', 'lifetime-bool',
                              'lifetime-float', 'lifetime-too-short', 'lifetime-too-long', 'renew-text',
                              'renew-not-less', 'renew-negative', 'wait-text', 'wait-bool', 'dns-mode', 'selector-text', 'selector-empty',
                              'rotate-not-bool', 'secrets-not-bool', 'expose-all-not-bool', 'loopback-not-bool',
                              'all-at-once'])
def test_settings_of_errors_name_their_field(raw, expected):
    with pytest.raises(InputError) as caught:
        settings_of(raw)
    errors = caught.value.errors
    assert len(errors) == len(expected)
    for want in expected:
        assert any(e.startswith(want) for e in errors), (want, errors)


# Ansible passes a templated or -e value as text: "false" must not turn a switch on.
@pytest.mark.parametrize('text, value', [('false', False), ('False', False), ('no', False), ('off', False),
                                         ('0', False), ('true', True), ('yes', True), ('on', True), ('1', True)])
@pytest.mark.parametrize('path', [('reader', 'rotate'), ('reader', 'secrets'), ('eastwest', 'expose_all'),
                                  ('allow_loopback_api_server',)], ids='.'.join)
def test_settings_of_reads_switches_given_as_text(path, text, value):
    raw = {path[0]: text} if len(path) == 1 else {path[0]: {path[1]: text}}
    settings = settings_of(raw)
    got = settings[path[0]] if len(path) == 1 else settings[path[0]][path[1]]
    assert got is value


# -- wanted ---------------------------------------------------------------------------------------

def test_wanted_of_two_primaries():
    plan = two_primaries()
    settings = settings_of({})
    assert wanted(plan, 'west', settings, needs_stubs=True, samples=False) == {
        ('Gateway', SYSTEM, 'cross-network-gateway'): 'eastwest',        # orders is consumed in east
        ('Secret', SYSTEM, 'istio-remote-secret-east'): 'remote-secret',
        ('ClusterRole', '', 'meshlink-blue-istio-reader'): 'remote-reader',
        ('ServiceAccount', SYSTEM, 'meshlink-reader-east'): 'remote-reader',
        ('ClusterRoleBinding', '', 'meshlink-blue-istio-reader-east'): 'remote-reader',
        ('Service', 'bar', 'httpbin'): 'httpbin.bar',                     # the stub of what it consumes
        ('DestinationRule', 'shop', 'orders-shop-local'): 'orders.shop',  # its export with subsets
    }
    assert wanted(plan, 'east', settings, needs_stubs=False, samples=False) == {
        ('Gateway', SYSTEM, 'cross-network-gateway'): 'eastwest',
        ('Secret', SYSTEM, 'istio-remote-secret-west'): 'remote-secret',
        ('ClusterRole', '', 'meshlink-blue-istio-reader'): 'remote-reader',
        ('ServiceAccount', SYSTEM, 'meshlink-reader-west'): 'remote-reader',
        ('ClusterRoleBinding', '', 'meshlink-blue-istio-reader-west'): 'remote-reader',
        ('DestinationRule', SYSTEM, 'orders-shop-remote'): 'orders.shop',   # DNS proxying: no stub
        ('VirtualService', SYSTEM, 'orders-shop-remote'): 'orders.shop',
    }


def test_wanted_of_a_primary_with_a_remote_and_of_the_remote():
    plan, _clusters = hub_and_spoke()
    settings = settings_of({'istio_namespace': 'mesh-system', 'eastwest': {'namespace': 'gw', 'gateway_name': 'ew'}})
    # hub: nothing exported through it (spoke's httpbin is, spoke is its remote), istiod exposed to its remote
    assert wanted(plan, 'hub', settings, needs_stubs=True, samples=False) == {
        ('Gateway', 'gw', 'ew'): 'eastwest',
        ('Gateway', 'mesh-system', 'istiod-gateway'): 'eastwest',
        ('VirtualService', 'mesh-system', 'istiod-vs'): 'eastwest',
        ('Secret', 'mesh-system', 'istio-remote-secret-cluster2'): 'remote-secret',   # keyed by cluster name
        ('Service', 'bar', 'httpbin'): 'httpbin.bar',
    }
    # the remote holds no secret, no Gateway: it is read by hub (with hub's cluster name)
    assert wanted(plan, 'spoke', settings, needs_stubs=True, samples=False) == {
        ('ClusterRole', '', 'meshlink-blue-istio-reader'): 'remote-reader',
        ('ServiceAccount', 'mesh-system', 'meshlink-reader-cluster1'): 'remote-reader',
        ('ClusterRoleBinding', '', 'meshlink-blue-istio-reader-cluster1'): 'remote-reader',
    }


def test_wanted_gateway_only_with_something_to_expose_unless_expose_all():
    plan = two_primaries(service_list=[seed_service(cluster='east', consumers=[{'cluster': 'west'}])])
    assert ('Gateway', SYSTEM, 'cross-network-gateway') not in wanted(plan, 'west', settings_of({}), False, False)
    expose_all = settings_of({'eastwest': {'expose_all': True}})
    assert wanted(plan, 'west', expose_all, False, False)[('Gateway', SYSTEM, 'cross-network-gateway')] == 'eastwest'


# -- inspect --------------------------------------------------------------------------------------

def by_name(result):
    return {c['name']: c for c in result['checks']}


def test_inspect_ready_primary_passes_with_its_facts():
    clusters = lab()
    result = inspect_multinet(clusters['west'], two_primaries(), 'west')
    assert not result.get('failed'), result.get('msg')
    assert [c['name'] for c in result['checks']] == ['api', 'networking_api', 'istio_namespace', 'istio_version',
                                                     'istiod', 'eastwest_gateway', 'network', 'exported_services',
                                                     'dns', 'peer_api_server', 'remote_secrets']
    assert set(CHECKS) == set(by_name(result))
    assert {c['status'] for c in result['checks']} == {'pass'}
    assert (result['istio_version'], result['cluster_id'], result['mesh_id']) == ('1.24.3', 'west', 'mesh1')
    assert result['root_digest'] == mn.root_digest({'data': {'root-cert.pem': ROOT}})
    assert result['eastwest'] == {'address': '198.51.100.1', 'port': 15443, 'kind': 'ip'}
    assert result['exported_ports'] == {'orders.shop': [{'name': 'http-web', 'port': 8000, 'protocol': 'TCP'},
                                                        {'name': 'grpc-rpc', 'port': 9000, 'protocol': 'TCP'}]}
    assert result['peer_connection'] == {'cluster_name': 'west', 'server': SERVERS['west'], 'ca': None}
    assert result['conflicts'] == []
    state = result['state']
    assert state['needs_stubs'] is True
    assert state['remote_secrets'] == {'east': {'exists': False, 'ours': False, 'expires': None, 'digest': None}}
    assert state['istio_namespace']['metadata']['name'] == SYSTEM
    assert 'Network n1 (Istio namespace not labelled yet: setup labels it)' in by_name(result)['network']['message']
    assert clusters['west'].writes() == []


def test_inspect_uses_the_api_server_for_peers_when_given():
    plan = build_plan(services(), ['east', 'west'], mesh=MESH, topology='multi_primary', cluster_settings={
        'west': {'meshlink_network': 'n1', 'meshlink_api_server_for_peers': 'https://10.9.9.9:443'},
        'east': {'meshlink_network': 'n2'}})
    result = inspect_multinet(lab()['west'], plan, 'west')
    assert result['peer_connection']['server'] == 'https://10.9.9.9:443'
    assert '(meshlink_api_server_for_peers)' in by_name(result)['peer_api_server']['message']


def test_inspect_with_dns_capture_needs_no_stubs():
    result = inspect_multinet(lab(west={'dns_capture': True})['west'], two_primaries(), 'west')
    assert result['state']['needs_stubs'] is False
    assert 'DNS proxy answers' in by_name(result)['dns']['message']


def test_the_summary_line_names_the_inventory_role_even_without_istiod():
    result = inspect_multinet(lab(west={'istiod': False})['west'], two_primaries(), 'west')
    assert result['failed'] and result['lines'][0].startswith('west: Istio unknown, multi_primary primary, network ')


class FakeTime:
    """A clock that sleeping advances; ``on_sleep`` runs at each sleep (the world changing meanwhile)."""

    def __init__(self, on_sleep=None):
        self.now = 0.0
        self.slept = []
        self.on_sleep = on_sleep

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.slept))


def pending(cluster):
    cluster.store[('services', SYSTEM, 'istio-eastwestgateway')]['status'] = {'loadBalancer': {}}


def test_inspect_waits_for_a_pending_east_west_load_balancer():
    west = lab()['west']
    pending(west)

    def provisioned(sleeps):
        if sleeps == 3:
            west.store[('services', SYSTEM, 'istio-eastwestgateway')]['status'] = {
                'loadBalancer': {'ingress': [{'ip': GATEWAYS['west']}]}}
    fake = FakeTime(provisioned)
    result = inspect_multinet(west, two_primaries(), 'west', sleep=fake.sleep, clock=fake.clock)
    assert not result.get('failed'), result.get('msg')
    assert fake.slept == [2, 2, 2]
    check = by_name(result)['eastwest_gateway']
    assert check['status'] == 'pass' and check['message'].endswith('(waited 6s for the load balancer)')
    assert GATEWAYS['west'] in check['message']


@pytest.mark.parametrize('wait_timeout, sleeps', [(5, [2, 2, 1]), (0, [])])
def test_inspect_gives_up_on_a_pending_load_balancer_at_wait_timeout(wait_timeout, sleeps):
    west = lab()['west']
    pending(west)
    fake = FakeTime()
    result = inspect_multinet(west, two_primaries(), 'west', multinetwork={'eastwest': {'wait_timeout': wait_timeout}},
                              sleep=fake.sleep, clock=fake.clock)
    assert result['failed'] and fake.slept == sleeps
    assert 'has no address: no load balancer ingress' in by_name(result)['eastwest_gateway']['message']
    assert west.writes() == []


@pytest.mark.parametrize('per_cluster, check, words', [
    ({'namespace_labels': {NET: 'n9'}}, 'network', 'the Istio namespace is labelled topology.istio.io/network=n9'),
    ({'eastwest_network': 'n9'}, 'network', 'istio-eastwestgateway has topology.istio.io/network=n9'),
    ({'cluster_id': 'Kubernetes'}, 'istiod', 'CLUSTER_ID=Kubernetes'),
    ({'istiod': False}, 'istiod', 'No istiod Deployment'),
    ({'eastwest': False}, 'eastwest_gateway', 'No east-west gateway Service'),
    ({'sources': []}, 'exported_services', 'Exported but missing here: Service shop/orders'),
], ids=['namespace-network', 'gateway-network', 'cluster-id', 'no-istiod', 'no-eastwest', 'export-missing'])
def test_inspect_failures_stop_before_any_write(per_cluster, check, words):
    cluster = lab(west=per_cluster)['west']
    result = inspect_multinet(cluster, two_primaries(), 'west')
    assert result['failed'] is True
    assert by_name(result)[check]['status'] == 'fail' and words in by_name(result)[check]['message']
    assert '[%s]' % check in result['msg'] and 'nothing was written' in result['msg']
    assert cluster.writes() == []


def test_inspect_reads_remote_secrets_metadata_only():
    clusters = lab()
    plan = two_primaries()
    setup(clusters, plan)
    result = inspect_multinet(clusters['west'], plan, 'west')
    assert result['state']['remote_secrets'] == {'east': {
        'exists': True, 'ours': True, 'expires': EXPIRES,
        'digest': mn.kubeconfig_digest('east', SERVERS['east'], None)}}
    secret_calls = [path for _verb, path in clusters['west'].calls if '/secrets' in path]
    assert secret_calls and set(secret_calls) <= set(clusters['west'].metadata_reads)
    assert 'token-1-for' not in json.dumps(result)      # no token, no data in the inspection


@pytest.mark.parametrize('secret, duplicate', [
    # what istioctl create-remote-secret --name east-old made: labelled, annotated for east
    (user_object('secrets', 'east-old', SYSTEM, labels={'istio/multiCluster': 'true'},
                 annotations={mn.CLUSTER_ANNOTATION: 'east'}, data={'east': 'eA=='}), True),
    (user_object('secrets', 'east-unlabelled', SYSTEM, annotations={mn.CLUSTER_ANNOTATION: 'east'}), False),
    (user_object('secrets', 'north-secret', SYSTEM, labels={'istio/multiCluster': 'true'},
                 annotations={mn.CLUSTER_ANNOTATION: 'north'}), False),
], ids=['duplicate', 'not-a-remote-secret', 'other-peer'])
def test_inspect_remote_secret_duplicates(secret, duplicate):
    cluster = lab(west={'extra': [secret]})['west']
    result = inspect_multinet(cluster, two_primaries(), 'west')
    check = by_name(result)['remote_secrets']
    if duplicate:
        assert check['status'] == 'fail'
        assert check['message'] == 'Secret istio-system/east-old is also a remote secret for cluster east'
        assert 'cluster has already been registered' in check['hint']
        assert result['failed'] is True
    else:
        assert check == {'name': 'remote_secrets', 'status': 'pass', 'message': '1 remote secret(s) to hold', 'hint': ''}


@pytest.mark.parametrize('obj, words', [
    (user_object('gateways', 'cross-network-gateway', SYSTEM, spec={'selector': {'istio': 'eastwestgateway'}}),
     'Gateway istio-system/cross-network-gateway exists and was not made by meshlink'),
    (user_object('secrets', 'istio-remote-secret-east', SYSTEM, labels={'istio/multiCluster': 'true'}),
     'Secret istio-system/istio-remote-secret-east exists and was not made by meshlink'),
    (mesh_object('secrets', 'istio-remote-secret-east', SYSTEM, 'remote-secret', mesh='green'),
     'Secret istio-system/istio-remote-secret-east exists and belongs to mesh green'),
    (user_object('serviceaccounts', 'meshlink-reader-east', SYSTEM),
     'ServiceAccount istio-system/meshlink-reader-east exists and was not made by meshlink'),
    (user_object('clusterrolebindings', 'meshlink-blue-istio-reader-east', None),
     'ClusterRoleBinding meshlink-blue-istio-reader-east exists and was not made by meshlink'),
    (user_object('services', 'httpbin', 'bar', spec={'selector': {'app': 'httpbin'}}),
     'Service bar/httpbin exists and was not made by meshlink'),
    (mesh_object('destinationrules', 'orders-shop-local', 'shop', 'payments.shop'),
     'DestinationRule shop/orders-shop-local belongs to payments.shop, not orders.shop'),
], ids=['user-gateway', 'istioctl-secret', 'other-mesh-secret', 'user-account', 'user-binding', 'user-service',
        'other-service-rule'])
def test_inspect_reports_what_is_in_the_way(obj, words):
    cluster = lab(west={'extra': [obj]})['west']
    result = inspect_multinet(cluster, two_primaries(), 'west')
    assert any(words in c for c in result['conflicts']), result['conflicts']
    assert result['failed'] is True and '[ownership] ' + words in result['msg']
    assert cluster.writes() == []


def test_inspect_remote_served_by_its_primary():
    plan, clusters = hub_and_spoke()
    result = inspect_multinet(clusters['spoke'], plan, 'spoke')
    assert not result.get('failed'), result.get('msg')
    # the annotation names the primary by its cluster name (cluster1), the inventory by its host (hub)
    assert by_name(result)['istiod']['status'] == 'pass'
    assert result['state']['remote_secrets'] == {}          # a remote holds none
    hub = inspect_multinet(clusters['hub'], plan, 'hub')
    assert not hub.get('failed'), hub.get('msg')
    assert hub['state']['remote_secrets'] == {'spoke': {'exists': False, 'ours': False, 'expires': None,
                                                        'digest': None}}


def test_inspect_remote_annotated_for_another_primary_fails():
    plan, clusters = hub_and_spoke(spoke_primary_name='cluster9')
    result = inspect_multinet(clusters['spoke'], plan, 'spoke')
    assert result['failed'] is True
    assert 'names cluster9 as control plane' in by_name(result)['istiod']['message']


def test_inspect_primary_serving_remotes_needs_istiods_ports():
    plan, clusters = hub_and_spoke()
    gateway = stored(clusters['hub'], 'services', 'istio-eastwestgateway')
    gateway['spec']['ports'] = [p for p in gateway['spec']['ports'] if p['port'] != 15017]
    result = inspect_multinet(clusters['hub'], plan, 'hub')
    assert result['failed'] is True
    assert 'has no port 15017' in by_name(result)['eastwest_gateway']['message']


def test_inspect_keeps_the_reader_role_the_access_playbook_granted():
    obj = reader_role_object(MESH, True)
    cluster = lab(west={'extra': [('clusterroles', obj)]})['west']
    result = inspect_multinet(cluster, two_primaries(), 'west')
    assert not result.get('failed'), result.get('msg')


# -- reconcile ------------------------------------------------------------------------------------

def test_setup_writes_every_object_in_rank_order():
    clusters = lab()
    plan = two_primaries()
    _inspections, reconciles, secrets = setup(clusters, plan)
    west, east = clusters['west'], clusters['east']
    for result in list(reconciles.values()) + list(secrets.values()):
        ranks = [RANKS.get(o['kind'], 9) for o in result['objects'] if o['action'] != 'unchanged']
        assert ranks == sorted(ranks)
        assert result['changed'] is True
    created = [(o['kind'], o['namespace'], o['name']) for o in reconciles['west']['objects'] if o['action'] == 'created']
    assert created == [
        ('Namespace', '', 'bar'),                         # for the stub Service
        ('Namespace', '', 'foo'),                         # the consumer namespace
        ('ClusterRole', '', 'meshlink-blue-istio-reader'),
        ('ServiceAccount', SYSTEM, 'meshlink-reader-east'),
        ('ClusterRoleBinding', '', 'meshlink-blue-istio-reader-east'),
        ('Service', 'bar', 'httpbin'),
        ('Gateway', SYSTEM, 'cross-network-gateway'),
        ('DestinationRule', 'shop', 'orders-shop-local'),
    ]
    assert [(o['kind'], o['name'], o['action']) for o in reconciles['west']['objects'] if o['kind'] == 'Namespace'
            and o['name'] == SYSTEM] == [('Namespace', SYSTEM, 'updated')]
    # the network label, noted as added by this mesh
    namespace = stored(west, 'namespaces', SYSTEM, None)
    assert namespace['metadata']['labels'][NET] == 'n1'
    assert namespace['metadata']['annotations'][mn.NETWORK_ADDED_ANNOTATION] == MESH
    # the allow-list: what west exports and someone consumes
    gateway = stored(west, 'gateways', 'cross-network-gateway')
    assert gateway['spec']['servers'][0]['hosts'] == ['orders.shop.svc.cluster.local']
    assert stored(east, 'gateways', 'cross-network-gateway')['spec']['servers'][0]['hosts'] == [
        'httpbin.bar.svc.cluster.local']
    # the stub Service: east's ports (name, port, protocol, appProtocol), no selector
    stub = stored(west, 'services', 'httpbin', 'bar')
    assert stub['spec']['ports'] == [{'name': 'http', 'port': 8000, 'protocol': 'TCP', 'appProtocol': 'http'}]
    assert 'selector' not in stub['spec']
    assert stub['metadata']['labels']['meshlink.io/component'] == 'stub-service'
    # subsets: routed in the consumer, selected in the source
    assert stored(east, 'virtualservices', 'orders-shop-remote')['spec']['http'][0]['route'][0]['destination'] == {
        'host': 'orders.shop.svc.cluster.local', 'subset': 'v2'}
    assert stored(west, 'destinationrules', 'orders-shop-local', 'shop')['spec']['host'] == \
        'orders.shop.svc.cluster.local'
    # the reader's binding
    binding = stored(east, 'clusterrolebindings', 'meshlink-blue-istio-reader-west', None)
    assert binding['subjects'] == [{'kind': 'ServiceAccount', 'name': 'meshlink-reader-west', 'namespace': SYSTEM}]
    assert any('read every Secret of this cluster' in w for w in reconciles['east']['warnings'])


def test_setup_mints_one_bounded_token_per_reader_and_writes_the_remote_secrets():
    clusters = lab()
    plan = two_primaries()
    _inspections, reconciles, secrets = setup(clusters, plan)
    # each read cluster minted one token, for the other's istiod, of the default lifetime
    assert clusters['east'].minted == [(SYSTEM, 'meshlink-reader-west', {'expirationSeconds': 86400})]
    assert clusters['west'].minted == [(SYSTEM, 'meshlink-reader-east', {'expirationSeconds': 86400})]
    assert sorted(reconciles['east']['peer_tokens']) == ['west']
    token = reconciles['east']['peer_tokens']['west']
    assert token['token'] == 'token-1-for-meshlink-reader-west' and token['expires'] == EXPIRES
    assert token['why'] == 'no remote secret yet'
    assert token['digest'] == mn.kubeconfig_digest('east', SERVERS['east'], None)
    assert token['connection'] == {'cluster_name': 'east', 'server': SERVERS['east'], 'ca': None}
    # west holds east's secret, keyed as istiod expects, with the token east minted
    secret = stored(clusters['west'], 'secrets', 'istio-remote-secret-east')
    assert secret['metadata']['labels']['istio/multiCluster'] == 'true'
    assert secret['metadata']['annotations'] == {mn.CLUSTER_ANNOTATION: 'east', mn.TOKEN_EXPIRES_ANNOTATION: EXPIRES,
                                                 mn.KUBECONFIG_DIGEST_ANNOTATION: token['digest']}
    assert list(secret['data']) == ['east']
    kubeconfig = kubeconfig_in(secret, 'east')
    assert kubeconfig['clusters'] == [{'name': 'east', 'cluster': {'server': SERVERS['east']}}]
    assert kubeconfig['users'] == [{'name': 'east', 'user': {'token': 'token-1-for-meshlink-reader-west'}}]
    assert kubeconfig['current-context'] == 'east'
    assert kubeconfig_in(stored(clusters['east'], 'secrets', 'istio-remote-secret-west'), 'west')['users'][0] == {
        'name': 'west', 'user': {'token': 'token-1-for-meshlink-reader-east'}}
    # the tokens are in no line, no diff
    for result in secrets.values():
        text = json.dumps(result)
        assert 'token-1-for' not in text
        for diff in result['diff']:
            assert set((diff['after'] or {}).get('data', {}).values()) <= {'(redacted)'}
    assert 'token-1-for' not in json.dumps([r['lines'] for r in reconciles.values()])
    assert secrets['west']['lines'] == [
        'west: Secret istio-system/istio-remote-secret-east for cluster east (token until %s: no remote secret yet)'
        % EXPIRES]


def test_second_setup_writes_nothing_and_mints_nothing():
    clusters = lab()
    plan = two_primaries()
    setup(clusters, plan)
    minted = {h: list(c.minted) for h, c in clusters.items()}
    writes = {h: len(c.writes()) for h, c in clusters.items()}
    _inspections, reconciles, secrets = setup(clusters, plan)
    for host in clusters:
        assert reconciles[host]['changed'] is False, reconciles[host]['lines']
        assert reconciles[host]['peer_tokens'] == {}
        assert reconciles[host]['lines'] == ['%s: nothing to do' % host]
        assert secrets[host]['changed'] is False
        assert secrets[host]['lines'] == ['%s: remote secrets current' % host]
        assert clusters[host].minted == minted[host]
        assert len(clusters[host].writes()) == writes[host]


# (option, clock, what changes, why east mints a new token for west, whether west mints one for east too)
@pytest.mark.parametrize('multinetwork, clock, change, why, both', [
    ({'reader': {'rotate': True}}, NOW, None, 'rotation asked (meshlink_remote_secret_rotate)', True),
    (None, clock_at('2029-12-31T23:00:00Z'), None, 'its token expires in 3600s (renewal window 28800s)', True),
    ({'reader': {'renew_before': 600}}, clock_at('2029-12-31T23:00:00Z'), None, None, False),
    (None, NOW, 'server', 'the server, CA or cluster name changed', False),
], ids=['rotate', 'inside-window', 'outside-window', 'server-changed'])
def test_a_token_is_minted_only_where_the_secret_needs_one(multinetwork, clock, change, why, both):
    clusters = lab()
    plan = two_primaries()
    setup(clusters, plan)
    if change == 'server':
        clusters['east'].server = 'https://192.0.2.22:6443'
    before = stored(clusters['west'], 'secrets', 'istio-remote-secret-east')
    _inspections, reconciles, secrets = setup(clusters, plan, multinetwork=multinetwork, clock=clock)
    after = stored(clusters['west'], 'secrets', 'istio-remote-secret-east')
    if why is None:
        assert len(clusters['east'].minted) == 1 and reconciles['east']['peer_tokens'] == {}
        assert after == before and secrets['west']['changed'] is False
        return
    assert len(clusters['east'].minted) == 2
    assert reconciles['east']['peer_tokens']['west']['why'] == why
    assert reconciles['east']['changed'] is True
    assert any(('token for the istiod of west, valid until %s (%s)' % (EXPIRES, why)) in line
               for line in reconciles['east']['lines'])
    assert secrets['west']['changed'] is True
    kubeconfig = kubeconfig_in(after, 'east')
    assert kubeconfig['users'][0]['user']['token'] == 'token-2-for-meshlink-reader-west'
    assert kubeconfig['clusters'][0]['cluster']['server'] == clusters['east'].server
    assert after['metadata']['annotations'][mn.KUBECONFIG_DIGEST_ANNOTATION] == mn.kubeconfig_digest(
        'east', clusters['east'].server, None)
    assert 'token-2-for' not in json.dumps(secrets['west'])
    # west mints for east only when east's secret needs it too (rotation asked, the same expiry)
    assert len(clusters['west'].minted) == (2 if both else 1)


def test_check_mode_mints_nothing_and_says_what_it_would_do():
    clusters = lab(dry_run=True)
    plan = two_primaries()
    _inspections, reconciles, secrets = setup(clusters, plan)
    for cluster in clusters.values():
        assert cluster.minted == []
    assert reconciles['east']['peer_tokens'] == {'west': {'token': '', 'expires': '', 'why': 'no remote secret yet'}}
    assert 'east: would mint a token for the istiod of west (no remote secret yet)' in reconciles['east']['lines']
    assert all(o['action'].startswith('would_') or o['action'] == 'unchanged' for o in reconciles['east']['objects'])
    assert secrets['west']['lines'] == ['west: Secret istio-system/istio-remote-secret-east would get a new token '
                                        '(no remote secret yet)']
    assert secrets['west']['changed'] is True
    assert stored(clusters['west'], 'secrets', 'istio-remote-secret-east') is None
    assert stored(clusters['west'], 'serviceaccounts', 'meshlink-reader-east') is None


def test_check_mode_of_a_rotation_reports_a_change():
    clusters = lab()
    plan = two_primaries()
    setup(clusters, plan)
    for cluster in clusters.values():
        cluster.dry_run = True
    _inspections, reconciles, secrets = setup(clusters, plan, multinetwork={'reader': {'rotate': True}})
    for host, cluster in clusters.items():
        assert len(cluster.minted) == 1                  # the first run's only
        assert reconciles[host]['changed'] is True       # a real run would mint
        assert secrets[host]['changed'] is True          # ... and rewrite the secret
        assert reconciles[host]['peer_tokens'][[h for h in clusters if h != host][0]]['token'] == ''


def test_reconcile_refuses_stubs_without_the_source_ports_before_any_write():
    clusters = lab()
    plan = two_primaries()
    inspections = inspect_all(clusters, plan)
    with pytest.raises(InputError) as caught:
        reconcile_multinet(clusters['west'], plan, 'west', inspections['west']['state'], peers={}, peer_services={})
    assert caught.value.errors == ['peer_services.httpbin.bar: the ports of httpbin.bar are unknown - east (its source) '
                                   'was not inspected in this run; include it']
    assert clusters['west'].writes() == []


def test_reconcile_refuses_what_appeared_in_the_way_since_the_inspection():
    clusters = lab()
    plan = two_primaries()
    inspections = inspect_all(clusters, plan)
    clusters['west'].put(*user_object('gateways', 'cross-network-gateway', SYSTEM, spec={}))
    state = dict(inspections['west']['state'])
    state['objects'] = state['objects'] + [dict(stored(clusters['west'], 'gateways', 'cross-network-gateway'),
                                                kind='Gateway')]
    with pytest.raises(MeshlinkError) as caught:
        reconcile_multinet(clusters['west'], plan, 'west', state, peers=reader_states(plan, 'west', inspections.get),
                           peer_services=source_ports(plan, 'west', inspections.get))
    assert str(caught.value).startswith('Nothing was changed in ctx-west: Gateway istio-system/cross-network-gateway '
                                        'exists and was not made by meshlink')
    assert clusters['west'].writes() == [] and clusters['west'].minted == []


def test_reconcile_binds_the_reader_role_the_access_playbook_granted():
    granted = reader_role_object(MESH, False)
    clusters = lab(east={'extra': [('clusterroles', granted)]})
    setup(clusters, two_primaries())
    assert [c for c in clusters['east'].writes() if '/clusterroles' in c[1]] == []
    assert stored(clusters['east'], 'clusterroles', 'meshlink-blue-istio-reader', None)['rules'] == granted['rules']
    assert stored(clusters['east'], 'clusterrolebindings', 'meshlink-blue-istio-reader-west', None) is not None


def test_reconcile_with_dns_proxying_writes_no_stub():
    clusters = lab(west={'dns_capture': True})
    setup(clusters, two_primaries())
    assert stored(clusters['west'], 'services', 'httpbin', 'bar') is None


def test_stubs_go_when_dns_proxying_is_turned_on():
    clusters = lab()
    plan = two_primaries()
    setup(clusters, plan)
    assert stored(clusters['west'], 'services', 'httpbin', 'bar') is not None
    config = stored(clusters['west'], 'configmaps', 'istio')
    config['data']['mesh'] += '  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n'
    _inspections, reconciles, _secrets = setup(clusters, plan)
    assert stored(clusters['west'], 'services', 'httpbin', 'bar') is None
    assert '  Service bar/httpbin: deleted' in reconciles['west']['lines']
    assert stored(clusters['west'], 'services', 'orders', 'shop') is not None       # the user's own Service


def test_a_consumer_that_left_is_pruned_and_the_allow_list_follows():
    clusters = lab()
    setup(clusters, two_primaries())
    # orders is no longer consumed in east: east's rules and stub go, west's Gateway has nothing to pass
    only_httpbin = two_primaries(service_list=services()[:1] + [seed_service(
        name='orders', namespace='shop', cluster='west', consumers=[], subsets=SUBSETS, route_subset='v2')])
    _inspections, reconciles, secrets = setup(clusters, only_httpbin)
    east, west = clusters['east'], clusters['west']
    assert stored(east, 'destinationrules', 'orders-shop-remote') is None
    assert stored(east, 'virtualservices', 'orders-shop-remote') is None
    assert stored(west, 'gateways', 'cross-network-gateway') is None          # Istio refuses a Gateway without hosts
    assert stored(east, 'gateways', 'cross-network-gateway') is not None
    assert stored(west, 'destinationrules', 'orders-shop-local', 'shop') is not None   # still exported with subsets
    # the readers and secrets stay: both clusters are still in the mesh
    assert stored(west, 'secrets', 'istio-remote-secret-east') is not None
    assert secrets['west']['changed'] is False and secrets['east']['changed'] is False
    assert {o['action'] for o in reconciles['west']['objects'] if o['action'] != 'unchanged'} == {'deleted'}


def test_the_stub_of_a_service_no_longer_consumed_is_pruned():
    clusters = lab()
    setup(clusters, two_primaries())
    assert stored(clusters['east'], 'services', 'orders', 'shop') is not None
    only_httpbin = two_primaries(service_list=services()[:1] + [seed_service(
        name='orders', namespace='shop', cluster='west', consumers=[], subsets=SUBSETS, route_subset='v2')])
    setup(clusters, only_httpbin)
    assert stored(clusters['east'], 'services', 'orders', 'shop') is None


def test_a_cluster_that_left_is_pruned_from_the_others():
    clusters = dict(lab(), north=current_cluster('north', 'n3'))
    three = two_primaries(hosts=('east', 'north', 'west'))
    setup(clusters, three)
    west = clusters['west']
    assert stored(west, 'secrets', 'istio-remote-secret-north') is not None
    assert stored(west, 'serviceaccounts', 'meshlink-reader-north') is not None
    del clusters['north']
    _inspections, reconciles, secrets = setup(clusters, two_primaries())
    assert stored(west, 'secrets', 'istio-remote-secret-north') is None
    assert stored(west, 'serviceaccounts', 'meshlink-reader-north') is None
    assert stored(west, 'clusterrolebindings', 'meshlink-blue-istio-reader-north', None) is None
    assert stored(west, 'secrets', 'istio-remote-secret-east') is not None
    assert 'west: Secret istio-system/istio-remote-secret-north: deleted (its cluster left the mesh)' in \
        secrets['west']['lines']
    assert '  ServiceAccount istio-system/meshlink-reader-north: deleted' in reconciles['west']['lines']


def test_primary_remote_setup_exposes_istiod_and_reads_the_remote():
    plan, clusters = hub_and_spoke()
    _inspections, reconciles, secrets = setup(clusters, plan)
    hub, spoke = clusters['hub'], clusters['spoke']
    assert stored(hub, 'gateways', 'istiod-gateway') is not None
    assert stored(hub, 'virtualservices', 'istiod-vs')['spec']['gateways'] == ['istiod-gateway']
    # hub's east-west gateway passes spoke's httpbin: spoke's pods sit behind spoke's gateway, which is
    # hub's remote, so hub's Gateway lists it
    assert stored(hub, 'gateways', 'cross-network-gateway')['spec']['servers'][0]['hosts'] == [
        'httpbin.bar.svc.cluster.local']
    assert stored(spoke, 'gateways', 'cross-network-gateway') is None
    assert spoke.minted == [(SYSTEM, 'meshlink-reader-cluster1', {'expirationSeconds': 86400})]
    assert hub.minted == []                                   # nobody reads the primary
    secret = stored(hub, 'secrets', 'istio-remote-secret-cluster2')
    assert list(secret['data']) == ['cluster2'] and secret['metadata']['annotations'][mn.CLUSTER_ANNOTATION] == 'cluster2'
    assert kubeconfig_in(secret, 'cluster2')['clusters'][0]['cluster']['server'] == SERVERS['spoke']
    assert 'spoke' not in secrets
    assert reconciles['spoke']['peer_tokens']['hub']['connection']['cluster_name'] == 'cluster2'


def test_a_remotes_versioned_routing_is_written_in_its_primary():
    """istiod reads DestinationRules and VirtualServices from its own cluster only: the subset
    rules a remote consumer needs go to its primary (next to the primary's own), none to the
    remote, and one the remote still holds from before is pruned."""
    plan = build_plan([seed_service(name='orders', namespace='shop', cluster='hub',
                                    consumers=[{'cluster': 'spoke', 'namespace': 'foo'}],
                                    ports=[{'name': 'web', 'number': 8000, 'protocol': 'HTTP'}],
                                    subsets=SUBSETS, route_subset='v2')],
                      ['hub', 'spoke'], mesh=MESH, topology='primary_remote', cluster_settings={
                          'hub': {'meshlink_network': 'n1', 'meshlink_istio_role': 'primary',
                                  'meshlink_istio_cluster_name': 'cluster1'},
                          'spoke': {'meshlink_network': 'n2', 'meshlink_istio_cluster_name': 'cluster2'}})
    assert plan['clusters']['hub']['config_for'] == ['spoke']
    assert plan['clusters']['hub']['namespaces'] == ['foo', 'shop']       # foo: the spoke's rules live there
    stale = mesh_object('destinationrules', 'orders-shop-remote', 'foo', 'orders.shop', spec={'host': 'x'})
    clusters = {'hub': current_cluster('hub', 'n1', cluster_id='cluster1', sources=[('orders', 'shop', ORDERS_PORTS)]),
                'spoke': current_cluster('spoke', 'n2', istiod=False, extra=[stale],
                                         namespace_annotations={mn.CONTROL_PLANE_ANNOTATION: 'cluster1'})}
    setup(clusters, plan)
    hub, spoke = clusters['hub'], clusters['spoke']
    assert stored(hub, 'destinationrules', 'orders-shop-local', 'shop')['spec']['subsets'][1]['name'] == 'v2'
    route = stored(hub, 'virtualservices', 'orders-shop-remote', 'foo')['spec']['http'][0]['route']
    assert route == [{'destination': {'host': 'orders.shop.svc.cluster.local', 'subset': 'v2'}}]
    assert stored(hub, 'destinationrules', 'orders-shop-remote', 'foo') is not None
    assert stored(spoke, 'destinationrules', 'orders-shop-remote', 'foo') is None     # pruned
    assert not [k for k in spoke.store if k[0] in ('destinationrules', 'virtualservices')]
    assert stored(spoke, 'services', 'orders', 'shop') is not None            # the stub stays the remote's


# -- remote secrets -------------------------------------------------------------------------------

def test_remote_secret_missing_without_a_token_is_an_error_naming_the_peer():
    clusters = lab()
    plan = two_primaries()
    inspections = inspect_all(clusters, plan)
    with pytest.raises(MeshlinkError) as caught:
        write_remote_secrets(clusters['west'], plan, 'west', inspections['west']['state'], peers={'east': {'token': None}})
    assert str(caught.value) == ('Remote secrets cannot be written in ctx-west: Secret istio-system/'
                                 'istio-remote-secret-east (east was not set up in this run: include it)')
    assert clusters['west'].writes() == []


def test_remote_secrets_prune_the_secret_of_a_peer_that_left_and_keep_a_users():
    gone = mesh_object('secrets', 'istio-remote-secret-gone', SYSTEM, 'remote-secret',
                       annotations={mn.CLUSTER_ANNOTATION: 'gone'}, data={'gone': 'c2VjcmV0'})
    users = user_object('secrets', 'istio-remote-secret-legacy', SYSTEM, labels={'istio/multiCluster': 'true'},
                        annotations={mn.CLUSTER_ANNOTATION: 'legacy'}, data={'legacy': 'c2VjcmV0'})
    other_mesh = mesh_object('secrets', 'istio-remote-secret-green', SYSTEM, 'remote-secret', mesh='green')
    clusters = lab(west={'extra': [gone, users, other_mesh]})
    _inspections, _reconciles, secrets = setup(clusters, two_primaries())
    west = clusters['west']
    assert stored(west, 'secrets', 'istio-remote-secret-gone') is None
    assert stored(west, 'secrets', 'istio-remote-secret-legacy') is not None
    assert stored(west, 'secrets', 'istio-remote-secret-green') is not None
    assert 'west: Secret istio-system/istio-remote-secret-gone: deleted (its cluster left the mesh)' in \
        secrets['west']['lines']
    deleted = [d for d in secrets['west']['diff'] if d['before_header'].endswith('istio-remote-secret-gone')]
    assert deleted and 'c2VjcmV0' not in json.dumps(secrets['west']['diff'])


def test_remote_secrets_without_prune_keep_the_secret_of_a_peer_that_left():
    gone = mesh_object('secrets', 'istio-remote-secret-gone', SYSTEM, 'remote-secret')
    clusters = lab(west={'extra': [gone]})
    plan = two_primaries()
    inspections = inspect_all(clusters, plan)
    reconciles = {h: reconcile_multinet(c, plan, h, inspections[h]['state'], peers=reader_states(plan, h, inspections.get),
                                        peer_services=source_ports(plan, h, inspections.get), clock=NOW)
                  for h, c in clusters.items()}
    result = write_remote_secrets(clusters['west'], plan, 'west', inspections['west']['state'],
                                  peers=minted_tokens(plan, 'west', reconciles.get), prune=False)
    assert stored(clusters['west'], 'secrets', 'istio-remote-secret-gone') is not None
    assert [o['name'] for o in result['objects']] == ['istio-remote-secret-east']


def test_remote_secrets_refuse_a_plan_edited_after_mesh_plan():
    clusters = lab()
    plan = two_primaries()
    edited = json.loads(json.dumps(plan))
    edited['istio']['east']['cluster_name'] = 'evil'
    with pytest.raises(InputError) as caught:
        write_remote_secrets(clusters['west'], edited, 'west', {'objects': []}, peers={})
    assert 'does not match its fingerprint' in caught.value.errors[0]


# -- teardown -------------------------------------------------------------------------------------

def test_teardown_removes_everything_of_the_mesh_and_the_label_it_added():
    users = user_object('secrets', 'istio-remote-secret-legacy', SYSTEM, labels={'istio/multiCluster': 'true'})
    other_mesh = mesh_object('gateways', 'green-gateway', SYSTEM, 'eastwest', mesh='green')
    clusters = lab(west={'extra': [users, other_mesh]})
    plan = two_primaries()
    setup(clusters, plan)
    assert keys_of(clusters['west'])
    for host, cluster in clusters.items():
        outcome, lines = teardown_multinet(cluster, plan, host, workers=1)
        assert outcome.changed is True
        assert lines == ['%s: label %s removed from namespace %s (this mesh had added it)' % (host, NET, SYSTEM)]
        remaining = [k for k in keys_of(cluster) if k[0] != 'namespaces']
        assert remaining == []
        namespace = stored(cluster, 'namespaces', SYSTEM, None)
        assert NET not in namespace['metadata'].get('labels', {})
        assert mn.NETWORK_ADDED_ANNOTATION not in namespace['metadata'].get('annotations', {})
    west = clusters['west']
    assert stored(west, 'secrets', 'istio-remote-secret-legacy') is not None
    assert stored(west, 'gateways', 'green-gateway') is not None
    assert stored(west, 'services', 'orders', 'shop') is not None              # the user's source Service
    assert stored(west, 'configmaps', 'istio') is not None


def test_teardown_keeps_a_network_label_the_user_set():
    clusters = lab(west={'namespace_labels': {NET: 'n1'}})
    plan = two_primaries()
    setup(clusters, plan)
    outcome, lines = teardown_multinet(clusters['west'], plan, 'west', workers=1)
    assert lines == []
    assert stored(clusters['west'], 'namespaces', SYSTEM, None)['metadata']['labels'][NET] == 'n1'
    assert not any(verb == 'patch' for verb, _path in clusters['west'].calls)
    assert all(o['kind'] != 'Namespace' for o in outcome.objects)


def test_teardown_check_mode_changes_nothing():
    clusters = lab()
    plan = two_primaries()
    setup(clusters, plan)
    before = json.dumps({h: sorted(map(str, c.store.items())) for h, c in clusters.items()})
    for host, cluster in clusters.items():
        cluster.dry_run = True
        outcome, lines = teardown_multinet(cluster, plan, host, workers=1)
        assert outcome.changed is True and lines
        assert {o['action'] for o in outcome.objects} <= {'would_delete', 'would_update'}
    assert json.dumps({h: sorted(map(str, c.store.items())) for h, c in clusters.items()}) == before


def test_teardown_keeps_the_access_grants():
    granted = reader_role_object(MESH, True)
    clusters = lab(east={'extra': [('clusterroles', granted)]})
    plan = two_primaries()
    setup(clusters, plan)
    teardown_multinet(clusters['east'], plan, 'east', workers=1)
    assert stored(clusters['east'], 'clusterroles', 'meshlink-blue-istio-reader', None) is not None
    assert stored(clusters['east'], 'clusterrolebindings', 'meshlink-blue-istio-reader-west', None) is None
