# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Exact validators of the values users give: names, labels, ports, addresses, URLs.

Pure Python (no Ansible, no kubernetes client). The rules, for every validator:

- the whole value is checked (``re.fullmatch`` with ASCII-only character classes: a trailing
  newline from a YAML block scalar does not slip past a ``$``);
- nothing is stripped or coerced: ``' 80 '``, ``True``, ``8000.0``, ``None`` and lists are not
  ports; non-ASCII characters (``'８０００'``, ``'٣'``, a Cyrillic ``'а'`` in a name) are refused
  and named, because Python's ``str.isdigit()``/``int()`` accept them and DNS does not;
- an integer is accepted as an ``int`` or as a string of ASCII digits only (templating
  yields strings);
- the ``*_problem`` functions return None when the value is valid, else one sentence that
  starts with the value as given (``repr``, so whitespace shows) and ends with the fix. The
  caller prefixes the field path: ``services[0].ports[1].number: '８０００' is not a port ...``.

Public helpers: :func:`show`, :func:`text_problem`, :func:`dns1123_label_problem`,
:func:`dns1123_subdomain_problem`, :func:`label_key_problem`, :func:`label_value_problem`,
:func:`port_number`, :func:`port_problem`, :func:`port_or_name_problem`, :func:`ip_address`,
:func:`ip_problem`, :func:`ipv4_problem`, :func:`ipv6_problem`, :func:`hostname_problem`,
:func:`address_problem`, :func:`ip_network`, :func:`cidr_problem`, :func:`ip_or_cidr_problem`,
:func:`mesh_name_problem`, :func:`global_host_problem`, :func:`check_url_problem`,
:func:`field_errors`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Any, Iterable, List, Optional, Tuple, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

MAX_LABEL_LENGTH = 63
MAX_SUBDOMAIN_LENGTH = 253
MAX_HOSTNAME_LENGTH = 253

# Used with fullmatch only. Explicit ASCII classes: never \d or \w (they match any script).
_DNS1123_LABEL = re.compile(r'[a-z0-9](?:[-a-z0-9]*[a-z0-9])?')
_DNS1123_SUBDOMAIN = re.compile(r'[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*')
_QUALIFIED_NAME = re.compile(r'[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?')
_HOSTNAME_LABEL = re.compile(r'[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?')
_ASCII_DIGITS = re.compile(r'[0-9]+')
_URL_SCHEMES = ('http', 'https')

_CONTROL_NAMES = {
    '\n': 'LINE FEED', '\r': 'CARRIAGE RETURN', '\t': 'CHARACTER TABULATION', '\x0b': 'LINE TABULATION',
    '\x0c': 'FORM FEED', '\x00': 'NULL', '\x1b': 'ESCAPE', '\x7f': 'DELETE', '\x85': 'NEXT LINE',
}


def show(value: Any) -> str:
    """How a value appears in messages: ``repr`` (quotes, ``\\n``, ``\\xa0`` and ``\\u200b`` visible)."""
    return repr(value)


def _type_name(value: Any) -> str:
    if value is None:
        return 'null'
    return {bool: 'a boolean', int: 'an integer', float: 'a float', list: 'a list', dict: 'a mapping',
            tuple: 'a list'}.get(type(value), type(value).__name__)


def _got(value: Any) -> str:
    """``a boolean True``, ``an integer 8000``, ``null``: what a value of the wrong type is."""
    return 'null' if value is None else '%s %s' % (_type_name(value), show(value))


def _char(char: str) -> str:
    name = unicodedata.name(char, None) or _CONTROL_NAMES.get(char) or 'control character'
    return 'U+%04X %s' % (ord(char), name)


def _invisible(char: str) -> bool:
    # Whitespace (space, tab, newline, NBSP, ...) and every "other" category: controls, format
    # characters (zero-width space, BOM, bidi marks), unassigned and private-use code points.
    return char.isspace() or unicodedata.category(char).startswith('C')


def _character_problem(value: str, ascii_only: bool = True) -> Optional[str]:
    """Why the characters of ``value`` cannot be right whatever the grammar, or None."""
    for index, char in enumerate(value):
        if _invisible(char):
            hint = ''
            if char == '\n' and index == len(value) - 1:
                hint = " (a YAML block scalar '|' or '>' ends with a newline: use '|-', '>-' or a quoted string)"
            return 'it contains %s at position %d - remove it%s' % (_char(char), index, hint)
    if ascii_only:
        for index, char in enumerate(value):
            if ord(char) > 127:
                return ("it contains the non-ASCII character %r (%s) at position %d - type it in plain ASCII "
                        "(look-alike letters and digits of other scripts are different characters)"
                        % (char, _char(char), index))
    return None


def text_problem(value: Any, what: str, allow_empty: bool = False, ascii_only: bool = True) -> Optional[str]:
    """Checks every text value shares: a string (no coercion), not empty, no whitespace or
    control characters anywhere, ASCII only (unless ``ascii_only`` is false).

    ``what`` names the grammar for the message (``a DNS-1123 label``).
    """
    if not isinstance(value, str):
        return 'must be a non-empty string (%s), got %s - quote it if it is meant as text' % (what, _got(value))
    if value == '':
        return None if allow_empty else 'must be a non-empty string (%s)' % what
    problem = _character_problem(value, ascii_only)
    if problem:
        return '%s is not %s: %s' % (show(value), what, problem)
    return None


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _other_grammar_hint(value: str) -> str:
    """A hint when ``value`` is obviously of another field's grammar (URL, host:port, CIDR, IP)."""
    if '://' in value:
        return ' (it is a URL: give only the host part)'
    if '/' in value:
        return ' (it contains \'/\': a CIDR or a path is not accepted here)'
    if _looks_like_ip(value):
        return ' (it is an IP address, not a name)'
    if value.count(':') == 1:
        return ' (host:port? give the port in its own field)'
    return ''


# -- Kubernetes names and labels -----------------------------------------------------------

def dns1123_label_problem(value: Any, what: str = 'a DNS-1123 label', max_length: int = MAX_LABEL_LENGTH) -> Optional[str]:
    """Why ``value`` is not a DNS-1123 label (namespace, Service, port name), or None.

    Lower case ASCII letters, digits and ``-``, starting and ending with a letter or digit,
    at most ``max_length`` (63) characters.
    """
    problem = text_problem(value, what)
    if problem:
        return problem
    if len(value) > max_length:
        return '%s is %d characters long; %s has at most %d' % (show(value), len(value), what, max_length)
    if not _DNS1123_LABEL.fullmatch(value):
        hint = _other_grammar_hint(value)
        if not hint and '.' in value:
            hint = " (it contains '.': a label is a single name)"
        if not hint and value.lower() != value and _DNS1123_LABEL.fullmatch(value.lower()):
            hint = ' (use lower case: %s)' % show(value.lower())
        return ("%s is not %s: use lower case letters, digits and '-', starting and ending with a letter or "
                "digit%s" % (show(value), what, hint))
    return None


def dns1123_subdomain_problem(value: Any, what: str = 'a DNS-1123 subdomain') -> Optional[str]:
    """Why ``value`` is not a DNS-1123 subdomain (object name, label key prefix), or None.

    DNS-1123 labels joined by ``.``, at most 253 characters (Kubernetes' rule).
    """
    problem = text_problem(value, what)
    if problem:
        return problem
    if len(value) > MAX_SUBDOMAIN_LENGTH:
        return '%s is longer than %d characters (%s)' % (show(value), MAX_SUBDOMAIN_LENGTH, what)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        hint = ' (it is a URL: give only the name)' if '://' in value else ''
        return ("%s is not %s: use lower case letters, digits, '-' and '.', each part starting and ending with a "
                "letter or digit%s" % (show(value), what, hint))
    return None


def label_key_problem(key: Any) -> Optional[str]:
    """Why ``key`` is not a Kubernetes label key (``[prefix/]name``), or None."""
    if not isinstance(key, str) or not key:
        return 'label keys must be non-empty strings, got %s' % _got(key)
    problem = _character_problem(key)
    if problem:
        return 'label key %s: %s' % (show(key), problem)
    if key.count('/') > 1:
        return "label key %s has more than one '/': write [prefix/]name" % show(key)
    prefix, separator, name = key.rpartition('/')
    if separator:
        if not prefix:
            return "label key %s has an empty prefix before '/': drop the '/' or give a DNS subdomain" % show(key)
        problem = dns1123_subdomain_problem(prefix)
        if problem:
            return 'label key %s: prefix %s' % (show(key), problem)
    if not name or len(name) > MAX_LABEL_LENGTH or not _QUALIFIED_NAME.fullmatch(name):
        return ("label key %s: the name part must be 1 to 63 characters of letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit" % show(key))
    return None


def label_value_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a Kubernetes label value (a string, may be empty), or None.

    Callers that accept ``version: 1`` turn integers into strings first; booleans, floats and
    null are never label values (YAML reads ``true``, ``1.0`` and ``~`` as those).
    """
    if not isinstance(value, str):
        if value is None:
            return 'label values must be strings, got null - write "" for an empty value'
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return 'label values must be strings, got %s - quote it: "%s"' % (_got(value), text)
    if value == '':
        return None
    problem = _character_problem(value)
    if problem:
        return 'label value %s: %s' % (show(value), problem)
    if len(value) > MAX_LABEL_LENGTH or not _QUALIFIED_NAME.fullmatch(value):
        return ("label value %s must be at most 63 characters of letters, digits, '-', '_' or '.', starting and "
                "ending with a letter or digit" % show(value))
    return None


def mesh_name_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a mesh name (a DNS-1123 label, at most 63 characters), or None."""
    return dns1123_label_problem(value, what='a mesh name (a DNS-1123 label)')


def global_host_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a ``<name>.<namespace>.global`` host, or None.

    ``name`` and ``namespace`` are DNS-1123 labels; nothing before, after or between them.
    """
    problem = text_problem(value, '<name>.<namespace>.global')
    if problem:
        return problem
    parts = value.split('.')
    if len(parts) != 3 or parts[2] != 'global':
        return '%s is not <name>.<namespace>.global (e.g. httpbin.bar.global)' % show(value)
    for part, role in ((parts[0], 'name'), (parts[1], 'namespace')):
        if dns1123_label_problem(part):
            return ('%s is not <name>.<namespace>.global: the %s %s is not a DNS-1123 label (lower case letters, '
                    "digits and '-')" % (show(value), role, show(part)))
    return None


# -- numbers -------------------------------------------------------------------------------

def port_number(value: Any) -> Optional[int]:
    """The port of ``value`` (1-65535) from an ``int`` or a string of ASCII digits, else None.

    Never from a bool, a float, None, a list, a signed or padded string, or other scripts' digits.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 1 <= number <= 65535 else None


def port_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a port number (see :func:`port_number`), or None."""
    if port_number(value) is not None:
        return None
    reason = ''
    if isinstance(value, bool):
        reason = ': a boolean - write a number such as 8000'
    elif isinstance(value, float):
        reason = ': a float - write %s' % (int(value) if value.is_integer() else 'a whole number')
    elif value is None or isinstance(value, (list, dict, tuple)):
        reason = ': %s - write a number such as 8000' % _type_name(value)
    elif isinstance(value, str):
        if value == '':
            reason = ': empty - write a number such as 8000'
        else:
            problem = _character_problem(value)
            if problem:
                reason = ': ' + problem
            elif not _ASCII_DIGITS.fullmatch(value):
                reason = ': use the digits 0-9 only'
    return '%s is not a port (1-65535)%s' % (show(value), reason)


def port_or_name_problem(value: Any) -> Optional[str]:
    """Why ``value`` is neither a port number nor a Service port name (a DNS-1123 label), or None.

    An ``int`` or text of ASCII digits is a number; any other text must be a port name.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return 'must be a port number or a port name, got %s' % _got(value)
    if isinstance(value, int) or _ASCII_DIGITS.fullmatch(value):
        return port_problem(value)
    if value == '':
        return 'must be a port number or a port name, got an empty string'
    reason = _character_problem(value)
    if reason is None and _DNS1123_LABEL.fullmatch(value) and len(value) <= MAX_LABEL_LENGTH:
        return None
    return ('%s is not a port number (1-65535) or a port name: %s'
            % (show(value), reason or "a port name is a DNS-1123 label (lower case letters, digits and '-'), e.g. tls"))


# -- addresses -----------------------------------------------------------------------------

def ip_address(value: Any, version: Optional[int] = None) -> Optional[IPAddress]:
    """The IP address of ``value`` when it is exactly one (no whitespace, zone or prefix), else None."""
    if not isinstance(value, str) or not value or _character_problem(value) or '%' in value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if version is not None and address.version != version:
        return None
    return address


def _ip_reason(value: str, version: Optional[int]) -> str:
    """Why the clean text ``value`` (no whitespace, ASCII) is not an IP address of ``version``."""
    if '%' in value:
        return "a zone index ('%...') is not accepted - drop it"
    if '://' in value:
        return 'it is a URL - give only the address'
    if '/' in value:
        if ip_network(value, strict=False) is not None:
            return 'it is a CIDR (a network) - give a single address without the /prefix'
        return "it contains '/' - give a single address"
    if _looks_like_ip(value):
        return 'it is an IPv%d address' % ipaddress.ip_address(value).version
    if _hostname_reason(value) is None:
        return 'it is a host name - give an IP address'
    return 'write it like %s' % ('2001:db8::10' if version == 6 else '192.0.2.10')


def ip_problem(value: Any, version: Optional[int] = None) -> Optional[str]:
    """Why ``value`` is not an IP address (of ``version`` 4 or 6 when given), or None."""
    if ip_address(value, version) is not None:
        return None
    what = 'an IPv%d address' % version if version else 'an IP address'
    return text_problem(value, what) or '%s is not %s: %s' % (show(value), what, _ip_reason(value, version))


def ipv4_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not an IPv4 address, or None."""
    return ip_problem(value, 4)


def ipv6_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not an IPv6 address, or None."""
    return ip_problem(value, 6)


def _hostname_reason(value: str) -> Optional[str]:
    """Why the clean text ``value`` is not an RFC 1123 host name, or None."""
    if '://' in value:
        return 'it is a URL - give only the host part'
    if '/' in value:
        return "it contains '/' - a CIDR or a path is not a host name"
    if ':' in value:
        return "it contains ':' - give the port in its own field (an IPv6 address is not a host name)"
    if len(value) > MAX_HOSTNAME_LENGTH:
        return 'it is longer than %d characters' % MAX_HOSTNAME_LENGTH
    if value.endswith('.'):
        return 'drop the trailing dot'
    labels = value.split('.')
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            return 'the part %s is longer than 63 characters' % show(label)
        if not _HOSTNAME_LABEL.fullmatch(label):
            return ("each part between dots is letters, digits and '-', starting and ending with a letter or digit "
                    "(the part %s is not)" % show(label))
    if _ASCII_DIGITS.fullmatch(labels[-1]):
        return 'it ends with a number, so it is no host name, and it is no valid IP address either - check it'
    return None


def hostname_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not an RFC 1123 host name, or None.

    Labels of ASCII letters, digits and ``-`` (not at either end), 1-63 characters each,
    joined by ``.``, at most 253 characters; no scheme, port, path, trailing dot or
    whitespace; the last label is not all digits (that would be a mistyped IPv4 address).
    """
    problem = text_problem(value, 'a host name')
    if problem:
        return problem
    reason = _hostname_reason(value)
    return '%s is not a host name: %s' % (show(value), reason) if reason else None


def address_problem(value: Any) -> Optional[str]:
    """Why ``value`` is neither an IP address nor a host name (see :func:`hostname_problem`), or None."""
    if ip_address(value) is not None:
        return None
    problem = text_problem(value, 'an IP address or host name')
    if problem:
        return problem
    if '%' in value or ('/' in value and '://' not in value):
        reason: Optional[str] = _ip_reason(value, None)
    else:
        reason = _hostname_reason(value)
        if reason is not None and ':' in value and '://' not in value:
            reason = "it contains ':' - give the port in its own field"
    if reason is None:
        return None
    return '%s is not an IP address or host name: %s' % (show(value), reason)


def ip_network(value: Any, version: Optional[int] = None, strict: bool = True) -> Optional[IPNetwork]:
    """The network of a CIDR ``value`` (``10.0.0.0/8``: the ``/prefix`` is required), else None.

    ``strict``: host bits must be zero (``10.0.0.1/8`` is refused).
    """
    if not isinstance(value, str) or value.count('/') != 1:
        return None
    address, _slash, prefix = value.partition('/')
    if not _ASCII_DIGITS.fullmatch(prefix) or ip_address(address) is None:
        return None
    try:
        network = ipaddress.ip_network(value, strict=strict)
    except ValueError:
        return None
    if version is not None and network.version != version:
        return None
    return network


def _cidr_reason(value: str, version: Optional[int], strict: bool) -> str:
    """Why the clean text ``value`` is not a CIDR of ``version``."""
    example = '2001:db8::/64' if version == 6 else '240.0.0.0/16'
    if '/' not in value:
        address = ip_address(value)
        if address is not None:
            return 'it is a single address - add the prefix length (e.g. %s/%d)' % (
                value, 32 if address.version == 4 else 128)
        if '://' in value:
            return 'it is a URL - write a network like %s' % example
        return 'write it like %s' % example
    loose = ip_network(value, version, strict=False)
    if strict and loose is not None:
        return 'it has host bits set - did you mean %s?' % loose
    other = ip_network(value, None, strict=False)
    if other is not None and version is not None and other.version != version:
        return 'it is an IPv%d network - write it like %s' % (other.version, example)
    return 'write it like %s' % example


def cidr_problem(value: Any, version: Optional[int] = None, strict: bool = True) -> Optional[str]:
    """Why ``value`` is not a CIDR (of ``version`` when given; host bits zero when ``strict``), or None."""
    if ip_network(value, version, strict) is not None:
        return None
    what = 'an IPv%d CIDR' % version if version else 'a CIDR'
    return text_problem(value, what) or '%s is not %s: %s' % (show(value), what, _cidr_reason(value, version, strict))


def ip_or_cidr_problem(value: Any, version: Optional[int] = None) -> Optional[str]:
    """Why ``value`` is neither an IP address nor a CIDR (host bits allowed), or None."""
    if ip_address(value, version) is not None or ip_network(value, version, strict=False) is not None:
        return None
    what = 'an IPv%d address or CIDR' % version if version else 'an IP address or CIDR'
    problem = text_problem(value, what)
    if problem:
        return problem
    reason = _cidr_reason(value, version, False) if '/' in value else _ip_reason(value, version)
    return '%s is not %s: %s' % (show(value), what, reason)


# -- URLs ----------------------------------------------------------------------------------

def check_url_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a URL a connectivity check may request, or None.

    ``http://`` or ``https://`` (scheme in any case), then a host (a host name or an IP
    address, IPv6 in brackets) and an optional ``:port`` (1-65535); no whitespace or control
    characters anywhere and ASCII only (percent-encode other characters of the path, use the
    ``xn--`` form of an international host name).
    """
    problem = text_problem(value, 'an http(s) URL')
    if problem:
        return problem
    example = ' (e.g. http://httpbin.bar.global:8000/ip)'
    scheme, separator, rest = value.partition('://')
    if not separator or scheme.lower() not in _URL_SCHEMES:
        return '%s is not an http(s) URL: it must start with http:// or https://%s' % (show(value), example)
    authority = re.split(r'[/?#]', rest, maxsplit=1)[0]
    host_port = authority.rpartition('@')[2]
    if host_port.startswith('['):
        inside, bracket, after = host_port[1:].partition(']')
        if not bracket or ip_address(inside, 6) is None:
            return '%s is not an http(s) URL: %s is not an IPv6 address in brackets' % (show(value), show(host_port))
        if after and not after.startswith(':'):
            return '%s is not an http(s) URL: only :port may follow the host' % show(value)
        has_port, port_text = bool(after), after[1:]
    else:
        if host_port.count(':') > 1:
            return '%s is not an http(s) URL: write an IPv6 host in brackets (http://[2001:db8::1]/)' % show(value)
        host, colon, port_text = host_port.partition(':')
        has_port = bool(colon)
        if not host:
            return '%s is not an http(s) URL: it has no host%s' % (show(value), example)
        problem = address_problem(host)
        if problem:
            return '%s is not an http(s) URL: its host %s' % (show(value), problem)
    if has_port and port_number(port_text) is None:
        return '%s is not an http(s) URL: its port %s' % (show(value), port_problem(port_text))
    return None


# -- collecting ----------------------------------------------------------------------------

def field_errors(checks: Iterable[Tuple[str, Optional[str]]]) -> List[str]:
    """``['<path>: <problem>', ...]`` for every check whose problem is not None, in order.

    ``field_errors([('pool', cidr_problem(pool, 4)), ('exclude[0]', ip_or_cidr_problem(e, 4))])``
    """
    return ['%s: %s' % (path, problem) for path, problem in checks if problem is not None]
