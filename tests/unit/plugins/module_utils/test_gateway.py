# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._gateway import (
    GatewayNotFound,
    GatewayPending,
    choose_gateway_address,
    find_port,
    pick_service,
    resolve_gateway_address,
    selector_string,
    static_override,
    validate_options,
    wait_for_gateway_address,
)
from meshlink_fakes import FakeCluster


def gateway_service(type_='LoadBalancer', ingress=None, external_ips=None, node_port=31550, name='istio-ingressgateway'):
    ports = [{'name': 'http2', 'port': 80, 'nodePort': 30080},
             {'name': 'tls', 'port': 15443}]
    if node_port:
        ports[1]['nodePort'] = node_port
    service = {'metadata': {'name': name, 'namespace': 'istio-system', 'labels': {'app': 'istio-ingressgateway'}},
               'spec': {'type': type_, 'ports': ports}, 'status': {'loadBalancer': {}}}
    if ingress is not None:
        service['status']['loadBalancer']['ingress'] = ingress
    if external_ips is not None:
        service['spec']['externalIPs'] = external_ips
    return service


def node(name, ready=True, **addresses):
    return {'metadata': {'name': name},
            'status': {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}],
                       'addresses': [{'type': t, 'address': a} for t, a in addresses.items()]}}


NODES = [node('node-b', InternalIP='10.0.0.2', ExternalIP='203.0.113.2'),
         node('node-a', InternalIP='10.0.0.1')]

CHOICES = [
    ('lb ip', gateway_service(ingress=[{'ip': '192.0.2.10'}]), NODES, {}, ('192.0.2.10', 15443, 'ip')),
    ('lb hostname', gateway_service(ingress=[{'hostname': 'gw.example.com'}]), NODES, {},
     ('gw.example.com', 15443, 'hostname')),
    ('lb ip before hostname', gateway_service(ingress=[{'ip': '192.0.2.10', 'hostname': 'gw.example.com'}]), NODES,
     {}, ('192.0.2.10', 15443, 'ip')),
    ('empty ingress entry skipped', gateway_service(ingress=[{'ip': ''}, {'hostname': 'gw.example.com'}]), NODES, {},
     ('gw.example.com', 15443, 'hostname')),
    ('externalIPs', gateway_service(type_='ClusterIP', external_ips=['198.51.100.7'], node_port=None), NODES, {},
     ('198.51.100.7', 15443, 'external_ip')),
    ('lb pending, externalIPs', gateway_service(external_ips=['198.51.100.7']), NODES, {},
     ('198.51.100.7', 15443, 'external_ip')),
    ('nodePort ExternalIP first', gateway_service(type_='NodePort'), NODES, {}, ('203.0.113.2', 31550, 'node')),
    ('nodePort InternalIP order', gateway_service(type_='NodePort'), NODES,
     {'node_address_types': ['InternalIP', 'ExternalIP']}, ('10.0.0.1', 31550, 'node')),
    ('nodePort only InternalIP', gateway_service(type_='NodePort'), [node('n', InternalIP='127.50.2.1')], {},
     ('127.50.2.1', 31550, 'node')),
    ('nodePort Hostname type', gateway_service(type_='NodePort'), [node('n', Hostname='worker-1')],
     {'node_address_types': ['Hostname']}, ('worker-1', 31550, 'node')),
    ('nodePort Ready node first', gateway_service(type_='NodePort'),
     [node('a-down', ready=False, InternalIP='10.0.0.9'), node('z-up', InternalIP='10.0.0.3')],
     {'node_address_types': ['InternalIP']}, ('10.0.0.3', 31550, 'node')),
    ('lb pending falls back to node', gateway_service(), NODES, {}, ('203.0.113.2', 31550, 'node')),
    ('port by name', gateway_service(ingress=[{'ip': '192.0.2.10'}]), NODES, {'port': 'http2'},
     ('192.0.2.10', 80, 'ip')),
    ('address_port overrides', gateway_service(ingress=[{'ip': '192.0.2.10'}]), NODES, {'address_port': 443},
     ('192.0.2.10', 443, 'ip')),
    ('override with service port', gateway_service(), NODES, {'address': 'gw.example.org', 'port': 'tls'},
     ('gw.example.org', 15443, 'override')),
    ('override and port', None, [], {'address': 'gw.example.org', 'address_port': 443},
     ('gw.example.org', 443, 'override')),
    ('override numeric port without service', None, [], {'address': '192.0.2.99'},
     ('192.0.2.99', 15443, 'override')),
    ('override IPv6 and int port', None, [], {'address': '2001:db8::99', 'port': 15443},
     ('2001:db8::99', 15443, 'override')),
]


@pytest.mark.parametrize('service, nodes, options, expected', [c[1:] for c in CHOICES], ids=[c[0] for c in CHOICES])
def test_address_choice(service, nodes, options, expected):
    result = choose_gateway_address(service, nodes, **options)
    assert (result['address'], result['port'], result['kind']) == expected
    assert result['source']


NOT_FOUND = [
    ('no nodePort, no lb', gateway_service(type_='ClusterIP', node_port=None), NODES, {},
     ['istio-system/istio-ingressgateway', 'port 15443', 'no load balancer ingress', 'no externalIPs',
      'has no nodePort']),
    ('fallback disabled', gateway_service(type_='NodePort'), NODES, {'node_port_fallback': False},
     ['node_port_fallback is false']),
    ('no node with the address type', gateway_service(type_='NodePort'), [node('n', InternalIP='10.0.0.1')],
     {'node_address_types': ['ExternalIP']}, ['no node has an address of type ExternalIP']),
    ('no nodes', gateway_service(type_='NodePort'), [], {}, ['no node has an address']),
    ('unknown port', gateway_service(ingress=[{'ip': '192.0.2.10'}]), NODES, {'port': '15444'},
     ['has no port 15444', 'http2:80', 'tls:15443']),
    ('unknown port name', gateway_service(ingress=[{'ip': '192.0.2.10'}]), NODES, {'port': 'mtls'},
     ['has no port mtls']),
]


@pytest.mark.parametrize('service, nodes, options, texts', [c[1:] for c in NOT_FOUND], ids=[c[0] for c in NOT_FOUND])
def test_nothing_found_names_what_was_searched(service, nodes, options, texts):
    with pytest.raises(GatewayNotFound) as caught:
        choose_gateway_address(service, nodes, **options)
    for text in texts:
        assert text in str(caught.value)


def test_pending_load_balancer_is_reported_while_waiting():
    with pytest.raises(GatewayPending):
        choose_gateway_address(gateway_service(), NODES, wait_for_load_balancer=True)


def test_nodes_are_listed_only_when_the_fallback_is_reached():
    def nodes():
        raise AssertionError('nodes listed although the load balancer had an address')
    assert choose_gateway_address(gateway_service(ingress=[{'ip': '192.0.2.10'}]), nodes)['kind'] == 'ip'


def test_selector_matching_several_services_is_an_error():
    with pytest.raises(GatewayNotFound) as caught:
        pick_service([gateway_service(name='a'), gateway_service(name='b')], 'istio-system', 'app=istio-ingressgateway')
    assert 'matches 2 Services' in str(caught.value) and 'a, b' in str(caught.value)


def test_selector_matching_nothing_is_an_error():
    with pytest.raises(GatewayNotFound) as caught:
        pick_service([], 'istio-system', 'app=istio-ingressgateway')
    assert 'No Service in namespace istio-system matches the selector app=istio-ingressgateway' in str(caught.value)


def test_selector_string_is_sorted():
    assert selector_string({'istio': 'ingressgateway', 'app': 'gw'}) == 'app=gw,istio=ingressgateway'


@pytest.mark.parametrize('options, field', [
    ({'port': '70000'}, 'port:'),
    ({'port': ' '}, 'port:'),
    ({'address_port': 0}, 'address_port:'),
    ({'node_address_types': ['PublicIP']}, 'node_address_types[0]:'),
    ({'wait_timeout': -1}, 'wait_timeout:'),
    ({'wait_interval': 0}, 'wait_interval:'),
])
def test_option_errors(options, field):
    arguments = dict(port='15443', address_port=None, node_address_types=['InternalIP'], wait_timeout=60,
                     wait_interval=2)
    arguments.update(options)
    with pytest.raises(InputError) as caught:
        validate_options(**arguments)
    assert caught.value.errors[0].startswith(field)


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_waits_for_the_load_balancer_until_it_has_an_address():
    clock = Clock()
    answers = [gateway_service(), gateway_service(), gateway_service(ingress=[{'ip': '192.0.2.10'}])]
    result = wait_for_gateway_address(lambda: answers.pop(0), NODES, wait_timeout=60, wait_interval=2,
                                      sleep=clock.sleep, clock=clock, port='15443')
    assert (result['address'], result['kind'], result['waited']) == ('192.0.2.10', 'ip', 4)
    assert clock.sleeps == [2, 2]


def test_wait_timeout_then_node_port_fallback():
    clock = Clock()
    result = wait_for_gateway_address(gateway_service, NODES, wait_timeout=5, wait_interval=2,
                                      sleep=clock.sleep, clock=clock, port='15443')
    assert result['kind'] == 'node'
    assert clock.sleeps == [2, 2, 1]  # never sleeps past the deadline


def test_wait_timeout_zero_does_not_wait():
    clock = Clock()
    result = wait_for_gateway_address(gateway_service, NODES, wait_timeout=0, wait_interval=2,
                                      sleep=clock.sleep, clock=clock, port='15443')
    assert result['kind'] == 'node' and clock.sleeps == []


def test_resolve_reads_by_selector_and_lists_nodes_only_for_the_fallback():
    cluster = FakeCluster(objects=[('services', gateway_service(ingress=[{'ip': '192.0.2.10'}]))])
    result = resolve_gateway_address(cluster)
    assert result['service'] == 'istio-system/istio-ingressgateway'
    assert [verb for verb, _path in cluster.calls] == ['list']


def test_resolve_override_with_port_makes_no_call():
    cluster = FakeCluster()
    result = resolve_gateway_address(cluster, address='gw.example.org', address_port=15443)
    assert result['kind'] == 'override' and cluster.calls == []


def test_resolve_missing_named_service():
    with pytest.raises(GatewayNotFound) as caught:
        resolve_gateway_address(FakeCluster(), service='gateway')
    assert 'Service istio-system/gateway does not exist' in str(caught.value)


# -- exact input, by classes of bad input -----------------------------------------------------

WHITESPACE = ['{}\n', '{}\t', ' {}', '{} ', '{}\u00a0', '{}\u200b']
BAD_ADDRESSES = [t.format('gw.example.com') for t in WHITESPACE] + [t.format('192.0.2.10') for t in WHITESPACE] + [
    'gw.exаmple.com', '１９２.０.２.１０',                                    # look-alikes, non-ASCII digits
    True, 3221225994, 1.5, ['192.0.2.10'], {'ip': '192.0.2.10'},          # types
    'http://gw.example.com', 'https://192.0.2.10:15443/', 'gw.example.com:15443', '192.0.2.10:15443',
    '192.0.2.0/24', '192.0.2.300', 'fe80::1%eth0', '[2001:db8::1]', 'gw.example.com.', 'gw_1.example.com',
]
BAD_PORTS = ['15443\n', ' 15443', '15443 ', '15443\u00a0', '１５４４３', '٣', 'TLS', 'tls\n', 'http://x', '70000', '0',
             True, 15443.0, ['15443']]
BAD_ADDRESS_PORTS = ['443\n', ' 443', '４４３', '٤٤٣', True, False, 443.0, '443.0', '+443', 0, 65536, '', ['443']]


def _options(**overrides):
    arguments = dict(port='15443', address_port=None, node_address_types=['InternalIP'], wait_timeout=60,
                     wait_interval=2)
    arguments.update(overrides)
    return arguments


@pytest.mark.parametrize('address', BAD_ADDRESSES)
def test_address_override_must_be_an_ip_or_a_host_name(address):
    with pytest.raises(InputError) as caught:
        validate_options(**_options(address=address))
    assert caught.value.errors[0].startswith('address: '), caught.value.errors
    assert 'address_port' in caught.value.errors[0]


@pytest.mark.parametrize('address', BAD_ADDRESSES)
def test_a_bad_override_never_becomes_a_result(address):
    for call in (lambda: static_override(address, 443, '15443'),
                 lambda: choose_gateway_address(None, [], address=address, address_port=443),
                 lambda: resolve_gateway_address(FakeCluster(), address=address, address_port=443)):
        with pytest.raises(InputError):
            call()


def test_an_override_given_as_a_url_says_what_to_write():
    with pytest.raises(InputError) as caught:
        static_override('https://gw.example.com:15443', None, '15443')
    assert caught.value.errors == [
        "address: 'https://gw.example.com:15443' is not an IP address or host name: it is a URL - give only the "
        'host part (give the IP address or DNS name other clusters reach the gateway at, and the port in '
        'address_port)']


@pytest.mark.parametrize('port', BAD_PORTS)
def test_port_must_be_a_number_or_a_port_name(port):
    with pytest.raises(InputError) as caught:
        validate_options(**_options(port=port))
    assert caught.value.errors[0].startswith('port: ')


@pytest.mark.parametrize('address_port', BAD_ADDRESS_PORTS)
def test_address_port_is_exact(address_port):
    with pytest.raises(InputError) as caught:
        validate_options(**_options(address_port=address_port))
    assert caught.value.errors[0].startswith('address_port: ')


@pytest.mark.parametrize('field, value', [
    ('namespace', 'istio-system\n'), ('namespace', 'Istio-System'), ('service', 'istio-ingressgateway '),
    ('service', 'gw.example.com'), ('selector', {'app': 'istio-ingressgateway\n'}), ('selector', {'app ': 'x'}),
    ('selector', {'app': True}), ('selector', 'app=istio-ingressgateway'),
])
def test_names_and_selector_are_exact(field, value):
    with pytest.raises(InputError) as caught:
        validate_options(**_options(**{field: value}))
    assert caught.value.errors[0].startswith(field), caught.value.errors


@pytest.mark.parametrize('port, expected', [(15443, 15443), ('15443', 15443), ('tls', 15443), ('http2', 80)])
def test_find_port_by_number_or_name(port, expected):
    assert find_port(gateway_service(), port)['port'] == expected


@pytest.mark.parametrize('port', [' 15443', '15443\n', '１５４４３', 'tls\n', ' tls', 'TLS'])
def test_find_port_does_not_strip_or_coerce(port):
    with pytest.raises(GatewayNotFound):
        find_port(gateway_service(), port)


@pytest.mark.parametrize('address, address_port, port, expected', [
    ('gw.example.org', 443, '15443', ('gw.example.org', 443)),
    ('gw.example.org', '443', '15443', ('gw.example.org', 443)),
    ('192.0.2.10', None, '15443', ('192.0.2.10', 15443)),
    ('192.0.2.10', None, 15443, ('192.0.2.10', 15443)),
])
def test_static_override(address, address_port, port, expected):
    result = static_override(address, address_port, port)
    assert (result['address'], result['port'], result['kind']) == expected + ('override',)


def test_static_override_with_a_port_name_needs_the_cluster():
    assert static_override('gw.example.org', None, 'tls') is None
    assert static_override(None, 443, '15443') is None
