"""The lab's network rule, in one place: only loopback is ever dialed.

Every hop of the emulated data plane opens its upstream connections through `dial()`.
Addresses of the lab's address plan that stand for cluster networks are translated first:

  198.18.N.x  (pod IPs, kwok's `cidr`)       -> 127.18.N.x  (where the pod's listener is bound)
  127.0.0.0/8 (node IPs, load balancer IPs)  -> unchanged

Anything else is refused, and so is 127.255.0.0/16, the seed's VIP pool: VIPs are matched by
the emulated sidecar the way Envoy's listeners match them, never dialed. Service ClusterIPs
(198.19.N.0/24), class E VIPs (240.0.0.0/4), private and public addresses are all refused.
Refusals raise `DialRefused` (an OSError, so callers treat it like a failed connect) and are
counted and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading

log = logging.getLogger("meshlab.dataplane.net")

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
POD_NETWORK = ipaddress.ip_network("198.18.0.0/16")
POD_LOOPBACK = ipaddress.ip_network("127.18.0.0/16")
LOOPBACK_VIP_POOL = ipaddress.ip_network("127.255.0.0/16")
# Lab addresses that stand for routable addresses outside the clusters: node IPs and
# load balancer IPs. A sidecar may pass traffic through to these without a ServiceEntry.
NODE_NETWORK = ipaddress.ip_network("127.50.0.0/16")
LB_NETWORK = ipaddress.ip_network("127.100.0.0/16")

CONNECT_TIMEOUT = 2.0

_refusals_lock = threading.Lock()
refusals: list[str] = []  # the last refusals, newest last (bounded)


class DialRefused(OSError):
    """The network rule forbids this destination."""


def parse_ip(address: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address in `address`, or None when it is not an IPv4 literal."""
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        return None
    return ip if isinstance(ip, ipaddress.IPv4Address) else None


def map_address(address: str) -> str:
    """Translate a lab address to where it is served on this host (pod IPs -> 127.18/16).

    Non-IP strings and addresses outside the pod network come back unchanged.
    """
    ip = parse_ip(address)
    if ip is None or ip not in POD_NETWORK:
        return str(address)
    offset = int(ip) - int(POD_NETWORK.network_address)
    return str(ipaddress.IPv4Address(int(POD_LOOPBACK.network_address) + offset))


def dialable(address: str, port: int) -> tuple[str, int]:
    """(mapped address, port) when the rule allows dialing it, else raise DialRefused."""
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise DialRefused(f"refused to dial {address}:{port}: not a port number") from None
    if not 1 <= port <= 65535:
        raise DialRefused(f"refused to dial {address}:{port}: port out of range")
    ip = parse_ip(address)
    if ip is None:
        raise DialRefused(f"refused to dial {address}:{port}: not an IPv4 address "
                          "(names are resolved by the data plane, never by DNS)")
    mapped = parse_ip(map_address(str(ip)))
    assert mapped is not None
    if mapped not in LOOPBACK:
        raise DialRefused(f"refused to dial {ip}:{port}: not in 127.0.0.0/8 after mapping "
                          "(lab network rule: only loopback is ever dialed)")
    if mapped in LOOPBACK_VIP_POOL:
        raise DialRefused(f"refused to dial {ip}:{port}: 127.255.0.0/16 is the VIP pool; "
                          "VIPs are matched by the sidecar, never dialed")
    return str(mapped), port


def dial(address: str, port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """Open a TCP connection to a lab address; the only way the data plane connects anywhere.

    Raises DialRefused (recorded) for anything the network rule forbids, OSError when the
    connection fails. The returned socket has `timeout` as its I/O timeout; callers adjust.
    """
    try:
        host, port = dialable(address, port)
    except DialRefused as exc:
        with _refusals_lock:
            refusals.append(str(exc))
            del refusals[:-100]
        log.warning("%s", exc)
        raise
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def is_external_lab_address(address: str) -> bool:
    """Node IPs and load balancer IPs: lab stand-ins for addresses routable outside pods."""
    ip = parse_ip(address)
    return ip is not None and (ip in NODE_NETWORK or ip in LB_NETWORK)


def listen(address: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket on a loopback address (binding elsewhere is refused too)."""
    ip = parse_ip(address)
    if ip is None or ip not in LOOPBACK:
        raise DialRefused(f"refused to listen on {address}:{port}: not a loopback address")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(ip), int(port)))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
