# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""Virtual IPs for ``.global`` hosts, one per host and cluster (seed step 4).

Pure part: ``allocate_vips`` (the rule), ``parse_pool``, ``pool_warnings``,
``used_addresses`` (what the ServiceEntries of a cluster already use).

Store part: allocations live in the ConfigMap ``istio-system/meshlink-vips-<mesh>`` (data
``<host>: <ip>``, labelled as the mesh's, ``meshlink.io/component=vip-store``), one per mesh:
the addresses other meshes' stores hold on the same cluster are avoided like the addresses
of ServiceEntries, and never written. ``reconcile_vips``
reads it, allocates, and writes it back guarded by its resourceVersion, so two runs that
allocate at the same time cannot hand out one address twice: the loser gets 409 Conflict
(or AlreadyExists on create), re-reads and allocates again. The store is an interface
(``read``/``write``/``delete``) so the unit tests drive the retry with a fake.

Allocation rule:
  - a host keeps the address the store has for it (stable), unless that address left the
    pool, is excluded, or is now used by a ServiceEntry of another host;
  - a ``fixed`` address must be inside the pool, usable, not excluded and not used by
    another host, else it is an error;
  - a new host gets the first free usable address, probing from a position derived from a
    hash of the host, so a host tends to get the same address in every cluster and two
    concurrent runs rarely race for the same address;
  - usable means: inside the pool, not its network or broadcast address (pools up to /30),
    not excluded, not used by any ServiceEntry of the cluster or any other stored host.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError, MeshlinkError
from ansible_collections.meshlink.multicluster.plugins.module_utils import _istio
from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError
from ansible_collections.meshlink.multicluster.plugins.module_utils._reader import ClusterReader
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import mesh_name_problem
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    ISTIO_NAMESPACE,
    NETWORKING_GROUP,
    split_global_host,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    COMPONENT_LABEL,
    DEFAULT_MESH,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MESH_LABEL,
    VIP_STORE,
    is_ours,
    labels_of,
    owner_of,
    ownership_labels,
)

STORE_PREFIX = 'meshlink-vips'
STORE_SELECTOR = '%s=%s,%s=%s' % (MANAGED_BY_LABEL, MANAGED_BY_VALUE, COMPONENT_LABEL, VIP_STORE)


def store_name_for(mesh: str) -> str:
    """The VIP store's ConfigMap name of a mesh: ``meshlink-vips-<mesh>``."""
    return '%s-%s' % (STORE_PREFIX, mesh)


ISTIO_AUTO_ALLOCATION = ipaddress.ip_network('240.240.0.0/16')  # Istio's own DNS auto-allocation range
LOOPBACK = ipaddress.ip_network('127.0.0.0/8')
MULTICAST = ipaddress.ip_network('224.0.0.0/4')


class PoolExhausted(MeshlinkError):
    """No free address left in the pool."""


class StoreConflict(MeshlinkError):
    """The store changed since it was read (409): re-read and try again."""


class UsedAddresses:
    """Addresses taken by ServiceEntries: single IPs and CIDRs, each with the hosts using it."""

    def __init__(self) -> None:
        self.single: Dict[ipaddress.IPv4Address, Set[str]] = {}
        self.networks: List[Tuple[ipaddress.IPv4Network, Set[str], str]] = []
        self.where: Dict[ipaddress.IPv4Address, str] = {}

    def add(self, address: str, hosts: Iterable[str], where: str = '') -> None:
        try:
            network = ipaddress.ip_network(address, strict=False)
        except ValueError:
            return  # not an address (Istio would reject it anyway): nothing is taken
        if network.version != 4:
            return
        if network.num_addresses == 1:
            ip = network.network_address
            self.single.setdefault(ip, set()).update(hosts)
            self.where.setdefault(ip, where)
        else:
            self.networks.append((network, set(hosts), where))

    def owners(self, ip: ipaddress.IPv4Address) -> Set[str]:
        """Hosts of every ServiceEntry that uses ``ip`` (empty when it is free)."""
        owners = set(self.single.get(ip, set()))
        for network, hosts, _where in self.networks:
            if ip in network:
                owners |= hosts or {'(no host)'}
        return owners

    def describe(self, ip: ipaddress.IPv4Address) -> str:
        if ip in self.where:
            return self.where[ip]
        for network, _hosts, where in self.networks:
            if ip in network:
                return '%s (%s)' % (where, network)
        return ''

    def free_for(self, ip: ipaddress.IPv4Address, host: str) -> bool:
        """Free for ``host``: unused, or used only by ServiceEntries of that same host."""
        return self.owners(ip) <= {host}


def used_addresses(service_entries: Sequence[Dict[str, Any]]) -> UsedAddresses:
    """The addresses of every ServiceEntry (``spec.addresses``), with the hosts using them."""
    used = UsedAddresses()
    for entry in service_entries:
        spec = entry.get('spec') or {}
        metadata = entry.get('metadata') or {}
        where = 'ServiceEntry %s/%s' % (metadata.get('namespace', '?'), metadata.get('name', '?'))
        for address in spec.get('addresses') or []:
            used.add(address, spec.get('hosts') or [], where)
    return used


def parse_pool(pool: Any) -> ipaddress.IPv4Network:
    """The pool as a network; errors name the option and say what to write instead."""
    if isinstance(pool, ipaddress.IPv4Network):
        return pool
    if not isinstance(pool, str) or not pool.strip():
        raise InputError(['pool: must be an IPv4 CIDR such as 240.0.0.0/16'])
    text = pool.strip()
    try:
        network = ipaddress.ip_network(text)
    except ValueError as error:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise InputError(["pool: '%s' is not an IPv4 CIDR (%s); write it like 240.0.0.0/16" % (text, error)]) \
                from error
        raise InputError(["pool: '%s' has host bits set; did you mean %s?" % (text, loose)]) from error
    if network.version != 4:
        raise InputError(["pool: '%s' is not IPv4; VIPs are IPv4 (e.g. 240.0.0.0/16)" % text])
    if network.overlaps(MULTICAST):
        raise InputError(["pool: '%s' overlaps the multicast range 224.0.0.0/4, where connections fail with "
                          "ENETUNREACH; use 240.0.0.0/16" % text])
    return network


def parse_exclude(exclude: Optional[Sequence[Any]]) -> List[ipaddress.IPv4Network]:
    networks = []
    errors = []
    for index, item in enumerate(exclude or []):
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            errors.append("exclude[%d]: '%s' is not an IP address or CIDR" % (index, item))
    if errors:
        raise InputError(errors)
    return networks


def pool_warnings(pool: ipaddress.IPv4Network, istio_version: Optional[Tuple[int, int, int]]) -> List[str]:
    """Warnings for a pool that works badly with Istio (the user may still insist)."""
    messages = []
    if pool.overlaps(ISTIO_AUTO_ALLOCATION):
        messages.append('VIP pool %s overlaps 240.240.0.0/16, the range of Istio\'s own DNS auto-allocation: '
                        'addresses may collide with auto-allocated ones; prefer 240.0.0.0/16' % pool)
    if pool.overlaps(LOOPBACK) and istio_version is not None and istio_version >= (1, 3, 0):
        messages.append('VIP pool %s is loopback and istiod is %s: since Istio 1.3 the sidecar sends loopback '
                        'traffic to its inbound listener (istio/istio#17261), so these VIPs do not work; use '
                        '240.0.0.0/16' % (pool, '.'.join(str(p) for p in istio_version)))
    return messages


def usable_range(pool: ipaddress.IPv4Network) -> Tuple[int, int]:
    """First and last usable address (as ints): the network and broadcast addresses are skipped
    for pools up to /30; /31 and /32 have no such addresses (RFC 3021)."""
    first = int(pool.network_address)
    last = int(pool.broadcast_address)
    if pool.prefixlen <= 30:
        first += 1
        last -= 1
    return first, last


def _start_offset(host: str, size: int, mesh: str = DEFAULT_MESH) -> int:
    # Another mesh consuming the same host on the same cluster starts its probe elsewhere, so
    # two meshes allocating at the same moment rarely reach for the same address.
    seed = host if mesh == DEFAULT_MESH else '%s/%s' % (mesh, host)
    digest = hashlib.sha256(seed.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big') % size


class Allocation:
    """Result of :func:`allocate_vips`."""

    def __init__(self) -> None:
        self.vips: Dict[str, str] = {}        # requested host -> address
        self.allocated: List[str] = []        # hosts given a new (or moved) address
        self.warnings: List[str] = []


def allocate_vips(hosts: Sequence[str], pool: Any, used: Optional[UsedAddresses] = None,
                  existing: Optional[Dict[str, str]] = None, fixed: Optional[Dict[str, str]] = None,
                  exclude: Optional[Sequence[Any]] = None, mesh: str = DEFAULT_MESH) -> Allocation:
    """Addresses for ``hosts`` (rule in the module docstring). Pure: no I/O.

    ``existing``: the store (host -> ip) including hosts not requested now, whose addresses
    stay reserved. ``used``: addresses of the cluster's ServiceEntries.
    """
    network = parse_pool(pool)
    excluded = parse_exclude(exclude)
    used = used or UsedAddresses()
    existing = dict(existing or {})
    fixed = dict(fixed or {})
    first, last = usable_range(network)
    size = last - first + 1
    result = Allocation()

    def is_excluded(ip: ipaddress.IPv4Address) -> bool:
        return any(ip in net for net in excluded)

    def in_usable_pool(ip: ipaddress.IPv4Address) -> bool:
        return first <= int(ip) <= last

    # Addresses reserved by other hosts of the store (requested or not) and by fixed entries.
    reserved: Dict[ipaddress.IPv4Address, str] = {}
    for host, text in existing.items():
        try:
            reserved.setdefault(ipaddress.ip_address(text), host)
        except ValueError:
            continue  # a hand-edited, broken entry: ignored, the host gets a new address

    errors = []
    fixed_ips: Dict[str, ipaddress.IPv4Address] = {}
    for host, text in sorted(fixed.items()):
        try:
            ip = ipaddress.ip_address(str(text).strip())
        except ValueError:
            errors.append("fixed.%s: '%s' is not an IPv4 address" % (host, text))
            continue
        if ip.version != 4 or ip not in network:
            errors.append('fixed.%s: %s is outside the pool %s - pick an address inside it or change pool'
                          % (host, ip, network))
        elif not in_usable_pool(ip):
            errors.append('fixed.%s: %s is the network or broadcast address of %s' % (host, ip, network))
        elif is_excluded(ip):
            errors.append('fixed.%s: %s is excluded (exclude option)' % (host, ip))
        elif not used.free_for(ip, host):
            errors.append('fixed.%s: %s is already used by %s for %s' % (
                host, ip, used.describe(ip), ', '.join(sorted(used.owners(ip) - {host}))))
        elif reserved.get(ip, host) != host:
            errors.append('fixed.%s: %s is already allocated to %s' % (host, ip, reserved[ip]))
        elif ip in fixed_ips.values():
            other = [h for h, v in fixed_ips.items() if v == ip][0]
            errors.append('fixed.%s: %s is also the fixed address of %s' % (host, ip, other))
        fixed_ips[host] = ip
    if errors:
        raise InputError(errors)
    for host, ip in fixed_ips.items():
        reserved[ip] = host

    def free(ip: ipaddress.IPv4Address, host: str) -> bool:
        return (in_usable_pool(ip) and not is_excluded(ip) and used.free_for(ip, host)
                and reserved.get(ip, host) == host)

    for host in hosts:
        if host in fixed_ips:
            ip = fixed_ips[host]
            result.vips[host] = str(ip)
            if existing.get(host) != str(ip):
                result.allocated.append(host)
            continue
        current = existing.get(host)
        if current:
            try:
                current_ip = ipaddress.ip_address(current)
            except ValueError:
                current_ip = None
            if current_ip is not None and free(current_ip, host):
                result.vips[host] = current
                continue
            reason = 'is not a valid address'
            if current_ip is not None:
                if not in_usable_pool(current_ip):
                    reason = 'is outside the pool %s' % network
                elif is_excluded(current_ip):
                    reason = 'is excluded'
                else:
                    reason = 'is now used by %s' % (used.describe(current_ip) or reserved.get(current_ip))
            result.warnings.append('%s had %s, which %s: it gets a new address' % (host, current, reason))
            if current_ip is not None and reserved.get(current_ip) == host:
                del reserved[current_ip]
        offset = _start_offset(host, size, mesh)
        chosen = None
        for step in range(size):
            candidate = ipaddress.ip_address(first + (offset + step) % size)
            if free(candidate, host):
                chosen = candidate
                break
        if chosen is None:
            raise PoolExhausted('The VIP pool %s has no free address for %s: its %d usable addresses are used by '
                                'ServiceEntries, other hosts or exclusions. Use a larger pool (e.g. '
                                '240.0.0.0/16) or release hosts (state=absent)' % (network, host, size))
        reserved[chosen] = host
        result.vips[host] = str(chosen)
        result.allocated.append(host)
    return result


def validate_hosts(hosts: Any, option: str = 'hosts') -> List[str]:
    """Hosts must be ``<name>.<namespace>.global`` (the form the ServiceEntries use)."""
    if not isinstance(hosts, list):
        raise InputError(['%s: must be a list of <name>.<namespace>.global hosts' % option])
    errors = []
    seen = set()
    for index, host in enumerate(hosts):
        if split_global_host(host) is None:
            errors.append("%s[%d]: '%s' is not <name>.<namespace>.global (DNS-1123 labels, e.g. httpbin.bar.global)"
                          % (option, index, host))
        elif host in seen:
            errors.append("%s[%d]: '%s' is listed twice" % (option, index, host))
        seen.add(host)
    if errors:
        raise InputError(errors)
    return list(hosts)


class StoreState:
    """What the store holds: ``data`` (host -> ip), ``version`` (None when absent), ``managed``."""

    def __init__(self, data: Dict[str, str], version: Optional[str], exists: bool, managed: bool) -> None:
        self.data = data
        self.version = version
        self.exists = exists
        self.managed = managed
        self.owner = 'this mesh'


class VipResult:
    def __init__(self) -> None:
        self.vips: Dict[str, str] = {}
        self.allocated: List[str] = []
        self.released: List[str] = []
        self.changed = False
        self.before: Dict[str, str] = {}
        self.after: Dict[str, str] = {}
        self.warnings: List[str] = []
        self.attempts = 0


def reconcile_vips(store: Any, used: UsedAddresses, hosts: Sequence[str], pool: Any, state: str = 'present',
                   fixed: Optional[Dict[str, str]] = None, exclude: Optional[Sequence[Any]] = None,
                   check_mode: bool = False, retries: int = 10,
                   sleep: Callable[[float], None] = time.sleep, release: Sequence[str] = (),
                   first_read: Optional['StoreState'] = None, mesh: str = DEFAULT_MESH) -> VipResult:
    """Allocate (present) or release (absent) ``hosts`` in ``store``, retrying on conflicts.

    ``store`` has ``read() -> StoreState``, ``write(data, version)`` (create when version is
    None) and ``delete(version)``, the last two raising :class:`StoreConflict` on 409.
    ``release``: with ``present``, hosts to drop in the same write (no longer consumed).
    ``first_read``: the store as an earlier read-only step saw it, used for the first round
    (a conflict re-reads). Check mode computes the same answer and writes nothing.
    """
    network = parse_pool(pool) if state == 'present' else None
    attempts = 0
    while True:
        attempts += 1
        current = first_read if (attempts == 1 and first_read is not None) else store.read()
        if current.exists and not current.managed:
            raise MeshlinkError('%s exists and %s: it was not created by this mesh, so it is left alone. '
                                'Delete or rename it, or set store_name to another name'
                                % (getattr(store, 'description', 'The VIP store'), current.owner))
        result = VipResult()
        result.attempts = attempts
        result.before = dict(current.data)
        if state == 'present':
            allocation = allocate_vips(hosts, network, used=used, existing=current.data, fixed=fixed,
                                       exclude=exclude, mesh=mesh)
            after = {host: ip for host, ip in current.data.items() if host not in release or host in hosts}
            after.update(allocation.vips)
            result.released = [host for host in release if host in current.data and host not in hosts]
            result.vips = allocation.vips
            result.allocated = allocation.allocated
            result.warnings = allocation.warnings
        else:
            after = {host: ip for host, ip in current.data.items() if host not in hosts}
            result.released = [host for host in hosts if host in current.data]
        result.after = after
        result.changed = after != current.data
        if not result.changed or check_mode:
            return result
        try:
            if after:
                store.write(after, current.version)
            else:
                # The last host left: the ConfigMap goes (it carries our label, read() checked).
                store.delete(current.version)
            return result
        except StoreConflict:
            if attempts > retries:
                raise MeshlinkError('The VIP store changed under this run %d times in a row (concurrent '
                                    'allocations); run again or raise retries' % attempts)
            # Jittered backoff: two runs that conflicted should not retry in lock-step.
            sleep(min(2.0, 0.05 * attempts) * (0.5 + random.random()))


def store_state(obj: Optional[Dict[str, Any]], mesh: str) -> 'StoreState':
    """The store as read (None when absent), for this mesh."""
    if obj is None:
        return StoreState({}, None, exists=False, managed=True)
    data = {str(k): str(v) for k, v in (obj.get('data') or {}).items()}
    state = StoreState(data, (obj.get('metadata') or {}).get('resourceVersion'), exists=True,
                       managed=is_ours(obj, mesh))
    state.owner = owner_of(obj)
    return state


def other_store_reservations(configmaps: Sequence[Dict[str, Any]], mesh: str, used: UsedAddresses) -> None:
    """Add the addresses other meshes' VIP stores hold to ``used`` (read, never written)."""
    for obj in configmaps:
        labels = labels_of(obj)
        other = labels.get(MESH_LABEL)
        if not other or other == mesh or labels.get(COMPONENT_LABEL) != VIP_STORE:
            continue
        metadata = obj.get('metadata') or {}
        where = 'the VIP store %s/%s of mesh %s' % (metadata.get('namespace'), metadata.get('name'), other)
        for host, address in (obj.get('data') or {}).items():
            # Marked with the other mesh, so a host of the same name is never "the same owner".
            used.add(str(address), ['%s (mesh %s)' % (host, other)], where)


class ConfigMapStore:
    """The VIP store as a ConfigMap (data ``<host>: <ip>``), guarded by its resourceVersion."""

    def __init__(self, cluster: Any, namespace: str, name: str, mesh: str = DEFAULT_MESH) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.mesh = mesh
        self.ref = ObjectRef('ConfigMap', namespace, name)
        self.description = 'ConfigMap %s/%s' % (namespace, name)

    def read(self) -> StoreState:
        return store_state(self.cluster.get(core_path('configmaps', self.namespace, self.name), self.ref), self.mesh)

    def write(self, data: Dict[str, str], version: Optional[str]) -> None:
        labels = ownership_labels(self.mesh)
        labels[COMPONENT_LABEL] = VIP_STORE
        metadata: Dict[str, Any] = {'name': self.name, 'namespace': self.namespace, 'labels': labels}
        body = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': metadata, 'data': dict(sorted(data.items()))}
        try:
            if version is None:
                self.cluster.create(core_path('configmaps', self.namespace), body, self.ref)
            else:
                # The resourceVersion makes the write conditional: 409 when someone wrote since
                # our read.
                metadata['resourceVersion'] = version
                self.cluster.replace(core_path('configmaps', self.namespace, self.name), body, self.ref)
        except ApiError as error:
            # 404 on replace: deleted since our read (a concurrent release); re-read and create.
            if error.is_conflict or (version is not None and error.status == 404):
                raise StoreConflict(str(error)) from error
            raise

    def delete(self, version: Optional[str]) -> None:
        try:
            self.cluster.delete(core_path('configmaps', self.namespace, self.name), self.ref,
                                resource_version=version)
        except ApiError as error:
            if error.is_conflict:
                raise StoreConflict(str(error)) from error
            raise


def pool_for(pool: Optional[str], version: Optional[Tuple[int, int, int]]) -> Tuple[ipaddress.IPv4Network, List[str]]:
    """The pool to allocate from (given, or the default for the istiod version) and its warnings."""
    warnings: List[str] = []
    if not pool and version is None:
        warnings.append('The istiod version is unknown (no istiod Deployment with a version tag in %s): using the '
                        'pool 240.0.0.0/16' % ISTIO_NAMESPACE)
    network = parse_pool(pool or _istio.default_pool_for(version))
    warnings.extend(pool_warnings(network, version))
    return network, warnings


def reserved_addresses(service_entries: Sequence[Dict[str, Any]], store_configmaps: Sequence[Dict[str, Any]],
                       mesh: str) -> UsedAddresses:
    """What a new VIP must avoid: every ServiceEntry address and other meshes' stores."""
    used = used_addresses(service_entries)
    other_store_reservations(store_configmaps, mesh, used)
    return used


def validate_fixed(fixed: Any) -> Dict[str, str]:
    """``fixed`` host -> IPv4 address, exactly as given (no stripping)."""
    if not isinstance(fixed, dict):
        raise InputError(['fixed: must be a mapping of <name>.<namespace>.global hosts to IPv4 addresses'])
    errors = []
    result: Dict[str, str] = {}
    for host, value in fixed.items():
        if split_global_host(host) is None:
            errors.append("fixed: key %r is not <name>.<namespace>.global" % (host,))
            continue
        try:
            if not isinstance(value, str) or ipaddress.ip_address(value).version != 4:
                raise ValueError(value)
        except ValueError:
            errors.append("fixed.%s: %r is not an IPv4 address" % (host, value))
            continue
        result[host] = value
    if errors:
        raise InputError(errors)
    return result


def allocate_in_cluster(cluster: Any, hosts: Any, pool: Optional[str] = None, exclude: Optional[Sequence[Any]] = None,
                        fixed: Optional[Dict[str, Any]] = None, state: str = 'present',
                        store_namespace: str = 'istio-system', store_name: Optional[str] = None,
                        retries: int = 10, check_mode: bool = False, mesh: str = DEFAULT_MESH) -> Dict[str, Any]:
    """The ``vip_allocate`` module: validate, read the cluster, reconcile the store."""
    hosts = validate_hosts(hosts)
    errors = []
    try:
        fixed = validate_fixed(fixed or {})
    except InputError as error:
        errors.extend(error.errors)
        fixed = {}
    if retries < 0:
        errors.append('retries: must be 0 or more')
    problem = mesh_name_problem(mesh)
    if problem:
        errors.append('mesh: %s' % problem)
    if errors:
        raise InputError(errors)
    parse_exclude(exclude)
    if pool:
        parse_pool(pool)
    store_name = store_name or store_name_for(mesh)

    reader = ClusterReader(cluster)
    warnings: List[str] = []
    version = None
    network = None
    used = UsedAddresses()
    if state == 'present':
        istiod = _istio.find_istiod(reader.deployments(ISTIO_NAMESPACE))
        version = istiod['version'] if istiod else None
        network, pool_messages = pool_for(pool, version)
        warnings.extend(pool_messages)
        if not cluster.served_versions(NETWORKING_GROUP):
            warnings.append('networking.istio.io is not served in %s: no ServiceEntry addresses to avoid (is Istio '
                            'installed?)' % cluster.context)
        used = reserved_addresses(reader.istio_objects('ServiceEntry'),
                                  reader.configmaps(store_namespace, STORE_SELECTOR), mesh)

    store = ConfigMapStore(cluster, store_namespace, store_name, mesh)
    outcome = reconcile_vips(store, used, hosts, network, state=state,
                             fixed={h: v for h, v in fixed.items() if h in hosts},
                             exclude=exclude, check_mode=check_mode, retries=retries, mesh=mesh)
    warnings.extend(outcome.warnings)
    return {
        'vips': outcome.vips,
        'allocated': outcome.allocated,
        'released': outcome.released,
        'pool': str(network) if network else None,
        'store': '%s/%s' % (store_namespace, store_name),
        'istio_version': _istio.format_version(version),
        'changed': outcome.changed,
        'diff': {'before_header': 'ConfigMap %s/%s data' % (store_namespace, store_name),
                 'after_header': 'ConfigMap %s/%s data' % (store_namespace, store_name),
                 'before': outcome.before, 'after': outcome.after},
        'warnings': warnings,
        'attempts': outcome.attempts,
    }
