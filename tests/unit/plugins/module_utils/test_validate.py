# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The exact validators, by classes of bad input: whitespace (a YAML block scalar's trailing
newline, tab, NBSP, zero-width space), look-alikes of other scripts and non-ASCII digits,
types Python would coerce (True, 8000.0, None, lists), and values of another field's grammar
(a URL where an address goes, a CIDR where an IP goes, an IP where a name goes)."""

from __future__ import annotations

import pytest

from ansible_collections.meshlink.multicluster.plugins.module_utils import _validate as v

WHITESPACE = ['{}\n', '{}\t', ' {}', '{} ', '{}\u00a0', '\u200b{}', '{}\r\n', '\ufeff{}']
WRONG_TYPES = [True, False, None, 8000.0, [], ['x'], {'a': 'b'}]


def _spaced(good):
    return [template.format(good) for template in WHITESPACE]


# validator -> (good values, bad values by class)
CASES = {
    'dns1123_label': (v.dns1123_label_problem, ['httpbin', 'a', 'a-1', '0', 'x' * 63], {
        'whitespace': _spaced('httpbin'),
        'non-ascii': ['httpbіn', 'ｈｔｔｐｂｉｎ', 'bar٣', 'ǉ'],
        'types': WRONG_TYPES + [8000],
        'other grammar': ['http.bin', '10.0.0.1', 'http://httpbin', 'httpbin:80', 'HttpBin', 'x' * 64, '', '-a', 'a-',
                          'a_b'],
    }),
    'dns1123_subdomain': (v.dns1123_subdomain_problem, ['example.com', 'a', 'a.b-c.d'], {
        'whitespace': _spaced('example.com'),
        'non-ascii': ['exаmple.com', 'example.cоm'],
        'types': WRONG_TYPES,
        'other grammar': ['https://example.com', 'example.com:443', 'Example.com', '.a', 'a..b', 'a' * 254],
    }),
    'label_key': (v.label_key_problem, ['app', 'app.kubernetes.io/name', 'Version_2', 'a.b'], {
        'whitespace': _spaced('app'),
        'non-ascii': ['аpp', 'vers٣'],
        'types': [True, None, 1, 1.0],
        'other grammar': ['/app', 'a/b/c', '-app', 'app-', 'UPPER.io/app', 'x' * 64, 'http://x/app'],
    }),
    'label_value': (v.label_value_problem, ['v1', '', 'v1.2_beta-3', 'x' * 63], {
        'whitespace': _spaced('v1'),
        'non-ascii': ['v١', 'ｖ1'],
        'types': [True, False, None, 1.0, ['v1'], {'a': 1}, 1],
        'other grammar': ['v 1', 'x' * 64, '-v1', 'a/b', 'http://x'],
    }),
    'port': (v.port_problem, [1, 80, 8000, 65535, '8000', '1'], {
        'whitespace': _spaced('8000'),
        'non-ascii': ['８０００', '٣', '۸۰', '8000\u0663'],
        'types': [True, False, None, 8000.0, 80.5, [8000], {'port': 80}],
        'other grammar': [0, 65536, -1, '0', '70000', '+80', '-80', '8e3', '0x50', 'http', '80.0', '1_000', ''],
    }),
    'port_or_name': (v.port_or_name_problem, [15443, '15443', 'tls', 'http2', 'status-port'], {
        'whitespace': _spaced('tls') + _spaced('15443'),
        'non-ascii': ['ｔｌｓ', '１５４４３'],
        'types': [True, None, 15443.0, ['tls']],
        'other grammar': ['TLS', 'tls_1', '70000', '0', 'http://x', 'a.b', ''],
    }),
    'ipv4': (v.ipv4_problem, ['192.0.2.10', '240.0.0.1', '0.0.0.0'], {
        'whitespace': _spaced('192.0.2.10'),
        'non-ascii': ['１９２.０.２.１０', '192.0.2.١'],
        'types': WRONG_TYPES + [3221225994],
        'other grammar': ['192.0.2.0/24', 'fd00::1', 'gw.example.com', 'http://192.0.2.10', '192.0.2.10:80',
                          '192.0.2.300', '192.0.2', '010.0.0.1'],
    }),
    'ip': (v.ip_problem, ['192.0.2.10', '2001:db8::1', '::1'], {
        'whitespace': _spaced('2001:db8::1'),
        'non-ascii': ['2001:db8::１'],
        'types': WRONG_TYPES,
        'other grammar': ['2001:db8::/64', 'fe80::1%eth0', '[2001:db8::1]', 'gw.example.com'],
    }),
    'hostname': (v.hostname_problem, ['gw.example.com', 'localhost', 'Gateway-1.Example.COM', 'a1.b2'], {
        'whitespace': _spaced('gw.example.com'),
        'non-ascii': ['gw.exаmple.com', 'bücher.de', 'gw。example。com'],
        'types': WRONG_TYPES,
        'other grammar': ['http://gw.example.com', 'gw.example.com:443', 'gw.example.com/x', 'gw.example.com.',
                          '192.0.2.300', '10.0.0.0/8', '-gw.example.com', 'gw_1.example.com', 'a..b',
                          ('a' * 64) + '.com', 'fd00::1'],
    }),
    'address': (v.address_problem, ['gw.example.com', '192.0.2.10', '2001:db8::10', 'localhost'], {
        'whitespace': _spaced('gw.example.com') + _spaced('192.0.2.10'),
        'non-ascii': ['gw.exаmple.com', '１９２.０.２.１０'],
        'types': WRONG_TYPES + [3221225994],
        'other grammar': ['http://gw.example.com', 'https://192.0.2.10/', 'gw.example.com:15443', '192.0.2.10:15443',
                          '192.0.2.0/24', '192.0.2.300', 'fe80::1%eth0', '[2001:db8::10]', 'gw.example.com.', ''],
    }),
    'cidr': (v.cidr_problem, ['240.0.0.0/16', '10.0.0.0/8', '2001:db8::/64', '192.0.2.10/32'], {
        'whitespace': _spaced('240.0.0.0/16'),
        'non-ascii': ['240.0.0.0/１６', '２40.0.0.0/16'],
        'types': WRONG_TYPES,
        'other grammar': ['240.0.0.1', '240.0.0.1/16', '240.0.0.0/33', '240.0.0.0/', '/16', 'pool.example.com/16',
                          'http://240.0.0.0/16', '240.0.0.0/16/1', '240.0.0.0/+16'],
    }),
    'ip_or_cidr': (v.ip_or_cidr_problem, ['240.0.0.7', '240.0.1.0/24', '240.0.1.9/24'], {
        'whitespace': _spaced('240.0.0.7'),
        'non-ascii': ['240.0.0.٧'],
        'types': WRONG_TYPES,
        'other grammar': ['gw.example.com', 'http://240.0.0.7', '240.0.0.0/33', '240.0.0.7:80'],
    }),
    'mesh_name': (v.mesh_name_problem, ['mesh1', 'prod-eu'], {
        'whitespace': _spaced('mesh1'),
        'non-ascii': ['mеsh1'],
        'types': WRONG_TYPES + [1],
        'other grammar': ['Mesh1', 'mesh.one', 'x' * 64, '', '10.0.0.1'],
    }),
    'global_host': (v.global_host_problem, ['httpbin.bar.global', 'a.b.global'], {
        'whitespace': _spaced('httpbin.bar.global'),
        'non-ascii': ['httpbіn.bar.global'],
        'types': WRONG_TYPES,
        'other grammar': ['httpbin.bar', 'httpbin.bar.svc.cluster.local', 'a.b.c.global', 'Httpbin.bar.global',
                          'http://httpbin.bar.global', 'httpbin.bar.global:8000', '.bar.global', 'httpbin..global'],
    }),
    'check_url': (v.check_url_problem, ['http://httpbin.bar.global:8000/ip', 'https://192.0.2.10/',
                                        'http://[2001:db8::1]:8080/status/418', 'HTTP://X/', 'http://h/a b'.replace(' ', '%20'),
                                        'http://h?q=1#f', 'http://user@h:80/'], {
        'whitespace': _spaced('http://httpbin.bar.global:8000/ip') + ['http://h/a b', 'http://h/\x00', 'http://h/\x7f'],
        'non-ascii': ['http://httpbіn.bar.global/', 'http://h:８０/', 'http://h/ünï'],
        'types': WRONG_TYPES,
        'other grammar': ['-o/tmp/x', '--config=/etc/passwd', 'httpbin.bar.global:8000/ip', 'ftp://h/', 'file:///etc/passwd',
                          'http://', 'http:///x', 'http://h:0/', 'http://h:70000/', 'http://h:/', 'http://h:80a/',
                          'http://::1/', 'http://[zz]/', 'http://[::1]x/', 'http://h_1/', 'http://192.0.2.300/',
                          'gopher://h/', 'javascript:alert(1)', ''],
    }),
}


def _cases(kind):
    for name, (check, good, bad) in CASES.items():
        if kind == 'good':
            for value in good:
                yield pytest.param(check, value, id='%s-%r' % (name, value))
        else:
            for klass, values in bad.items():
                for value in values:
                    yield pytest.param(check, value, id='%s-%s-%r' % (name, klass, value))


@pytest.mark.parametrize('check, value', list(_cases('good')))
def test_valid_values_pass(check, value):
    assert check(value) is None


@pytest.mark.parametrize('check, value', list(_cases('bad')))
def test_every_class_of_bad_input_is_refused_with_a_sentence(check, value):
    problem = check(value)
    assert isinstance(problem, str) and problem, value
    # The message says what the value is (repr, so invisible characters show) or its type.
    if isinstance(value, str) and value:
        assert repr(value) in problem or 'label key %r' % value in problem, problem


@pytest.mark.parametrize('value, expected', [
    ('httpbin\n', "U+000A LINE FEED at position 7 - remove it (a YAML block scalar '|' or '>' ends with a newline"),
    ('http\u00a0bin', 'U+00A0 NO-BREAK SPACE at position 4'),
    ('httpbin\u200b', 'U+200B ZERO WIDTH SPACE'),
    ('httpbіn', "non-ASCII character 'і' (U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I) at position 5"),
    ('HttpBin', "(use lower case: 'httpbin')"),
    ('10.0.0.1', 'it is an IP address, not a name'),
    ('http.bin', "it contains '.'"),
    (True, 'got a boolean True - quote it'),
    (None, 'must be a non-empty string (a DNS-1123 label), got null'),
])
def test_label_messages_name_the_cause_and_the_fix(value, expected):
    assert expected in v.dns1123_label_problem(value)


@pytest.mark.parametrize('value, expected', [
    ('８０００', "non-ASCII character '８' (U+FF18 FULLWIDTH DIGIT EIGHT)"),
    ('٣', 'U+0663 ARABIC-INDIC DIGIT THREE'),
    (' 80 ', 'U+0020 SPACE at position 0'),
    (True, 'a boolean - write a number such as 8000'),
    (8000.0, 'a float - write 8000'),
    ([80], 'a list'),
    (70000, '70000 is not a port (1-65535)'),
    ('+80', 'use the digits 0-9 only'),
])
def test_port_messages(value, expected):
    assert expected in v.port_problem(value)


@pytest.mark.parametrize('value, number', [(8000, 8000), ('8000', 8000), ('08000', 8000), ('65535', 65535)])
def test_port_number_from_int_or_ascii_digits(value, number):
    assert v.port_number(value) == number


@pytest.mark.parametrize('value', [True, False, 8000.0, None, ' 8000', '8000\n', '８０００', '٣', '+8000', '8_000', 0, 65536])
def test_port_number_never_coerces(value):
    assert v.port_number(value) is None


@pytest.mark.parametrize('check, value, expected', [
    (v.address_problem, 'http://gw.example.com', 'it is a URL - give only the host part'),
    (v.address_problem, 'gw.example.com:15443', "it contains ':' - give the port in its own field"),
    (v.address_problem, '192.0.2.0/24', 'it is a CIDR (a network) - give a single address'),
    (v.address_problem, '192.0.2.300', 'it ends with a number'),
    (v.ip_problem, 'gw.example.com', 'it is a host name - give an IP address'),
    (v.ipv4_problem, 'fd00::1', 'it is an IPv6 address'),
    (v.cidr_problem, '240.0.0.1/16', 'it has host bits set - did you mean 240.0.0.0/16?'),
    (v.cidr_problem, '240.0.0.1', 'it is a single address - add the prefix length (e.g. 240.0.0.1/32)'),
    (v.check_url_problem, '-o/tmp/x', 'it must start with http:// or https://'),
    (v.check_url_problem, 'http://h:70000/', "its port '70000' is not a port (1-65535)"),
    (v.check_url_problem, 'http://gw.example.com:15443:1/', 'write an IPv6 host in brackets'),
])
def test_other_grammar_is_named(check, value, expected):
    assert expected in check(value)


@pytest.mark.parametrize('check, value, version', [
    (v.cidr_problem, '2001:db8::/64', 4), (v.cidr_problem, '240.0.0.0/16', 6),
    (v.ip_problem, '2001:db8::1', 4), (v.ip_problem, '192.0.2.1', 6), (v.ip_or_cidr_problem, '2001:db8::/64', 4),
])
def test_version_is_enforced(check, value, version):
    assert 'IPv%d' % version in check(value, version)


def test_ip_network_and_address_parse_only_exact_text():
    assert str(v.ip_network('240.0.0.0/16', 4)) == '240.0.0.0/16'
    assert v.ip_network('240.0.0.1/16') is None and str(v.ip_network('240.0.0.1/16', strict=False)) == '240.0.0.0/16'
    assert v.ip_network('240.0.0.0/16 ') is None and v.ip_network('240.0.0.0') is None
    assert str(v.ip_address('2001:DB8::1', 6)) == '2001:db8::1'
    assert v.ip_address('192.0.2.1\n') is None and v.ip_address('192.0.2.1', 6) is None


def test_field_errors_prefix_the_path_and_keep_the_order():
    assert v.field_errors([('pool', v.cidr_problem('240.0.0.1', 4)), ('exclude[0]', None),
                           ('fixed.a.b.global', v.ipv4_problem(True))]) == [
        "pool: '240.0.0.1' is not an IPv4 CIDR: it is a single address - add the prefix length (e.g. 240.0.0.1/32)",
        'fixed.a.b.global: must be a non-empty string (an IPv4 address), got a boolean True - quote it if it is meant '
        'as text']
