"""Routing decisions of the emulated mesh (object-based, the seed-era clusters).

Nothing here does I/O. The `plan_*` functions say where a hop sends a request, or raise
`RouteError` saying why it cannot (and how the failure shows to the client: a closed
connection, like curl's "Could not resolve host", or an HTTP status, like Envoy's 503 "no
healthy upstream").

The rules follow Istio's "multicluster via gateways" procedure as the lab emulates it; see
tests/lab/README-dataplane.md for the list of honoured fields.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from .gates import (global_host, istio_version, istiod, kube_service_name,
                    legacy_passthrough_allowed, loopback_vip_allowed, resolve_name, sidecar_control_plane)
from .net import is_external_lab_address, parse_ip
from .view import (CLUSTER_DOMAIN, EGRESS_APP, ISTIO_NAMESPACE, ClusterView, Obj, RouteError,
                   Target, deployment_env, endpoint_targets, key, labels_match, meta, pick_order,
                   pod_spec_env, service_endpoints, service_port, spec)


@dataclass
class Plan:
    """A routing decision: try `targets` in order; send `sni` as emulated mTLS (None: plain)."""

    targets: list[Target]
    sni: str | None
    detail: list[str] = field(default_factory=list)
    host: str = ""
    xds: dict = field(default_factory=dict)  # what an xDS-routed hop decided (for the hop log)


# ---------------------------------------------------------------- hosts, SNI

def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, `*`, or `*.suffix` (case-insensitive)."""
    p, h = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if p == "*":
        return True
    if p.startswith("*."):
        return h.endswith(p[1:])
    return p == h


def fqdn(host: str, namespace: str) -> str:
    """Istio's short-name rule: a host without a dot is `<host>.<namespace>.svc.cluster.local`."""
    if host == "*" or "." in host or parse_ip(host):
        return host.lower()
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}".lower()


def build_sni(port: int, subset: str | None, host: str) -> str:
    """Istio's cluster name, sent as SNI: `outbound_.<port>_.<subset>_.<host>`."""
    return f"outbound_.{int(port)}_.{subset or ''}_.{host.lower()}"


_SNI = re.compile(r"^(outbound|inbound)_\.(\d{1,5})_\.([^_]*)_\.([A-Za-z0-9*.\-]+)$")


@dataclass
class Sni:
    direction: str
    port: int
    subset: str
    host: str


def parse_sni(sni: str) -> Sni | None:
    m = _SNI.match(sni or "")
    if not m:
        return None
    return Sni(m.group(1), int(m.group(2)), m.group(3), m.group(4).lower())


# ---------------------------------------------------------------- Istio config lookups

def find_destination_rule(view: ClusterView, host: str) -> Obj | None:
    """The DestinationRule that applies to `host`: exact host (oldest), else the most specific
    wildcard (longest pattern, oldest)."""
    exact, wild = [], []
    for dr in view.destinationrules:
        h = fqdn(spec(dr).get("host") or "", meta(dr).get("namespace") or "")
        if h == host.lower():
            exact.append(dr)
        elif "*" in h and host_matches(h, host):
            wild.append((len(h), dr))
    if exact:
        return exact[0]
    if wild:
        best = max(n for n, _ in wild)
        return next(dr for n, dr in wild if n == best)
    return None


def subset_of(dr: Obj | None, name: str) -> Obj | None:
    for s in spec(dr or {}).get("subsets") or []:
        if s.get("name") == name:
            return s
    return None


def tls_mode(dr: Obj | None, port: int, subset: Obj | None = None) -> str:
    """The DestinationRule's TLS mode for `port` (subset > port-level > top level), "" if unset."""
    def from_policy(policy: Obj | None) -> str:
        policy = policy or {}
        for pls in policy.get("portLevelSettings") or []:
            if str((pls.get("port") or {}).get("number")) == str(port) and (pls.get("tls") or {}).get("mode"):
                return pls["tls"]["mode"]
        return (policy.get("tls") or {}).get("mode") or ""
    if subset:
        mode = from_policy(subset.get("trafficPolicy"))
        if mode:
            return mode
    return from_policy(spec(dr or {}).get("trafficPolicy"))


def find_virtual_service(view: ClusterView, host: str, gateway: str = "mesh") -> Obj | None:
    exact, wild = [], []
    for vs in view.virtualservices:
        gws = spec(vs).get("gateways") or ["mesh"]
        if gateway not in gws:
            continue
        ns = meta(vs).get("namespace") or ""
        hosts = [fqdn(h, ns) for h in spec(vs).get("hosts") or []]
        if host.lower() in hosts:
            exact.append(vs)
        elif any("*" in h and host_matches(h, host) for h in hosts):
            wild.append(vs)
    return (exact or wild or [None])[0]


def _string_match(m: Obj | None, value: str | None, ignore_case: bool = False) -> bool:
    if not m:
        return True
    if value is None:
        return False
    if ignore_case:
        value = value.lower()
    if "exact" in m:
        return value == (m["exact"].lower() if ignore_case else m["exact"])
    if "prefix" in m:
        return value.startswith(m["prefix"].lower() if ignore_case else m["prefix"])
    if "regex" in m:
        return re.fullmatch(m["regex"], value) is not None
    return True


def http_match(match: Obj, request: Obj) -> bool:
    """One HTTPMatchRequest against {method, path, headers (lower-case keys), port, authority}."""
    path = (request.get("path") or "/").split("?", 1)[0]
    if not _string_match(match.get("uri"), path, bool(match.get("ignoreUriCase"))):
        return False
    if not _string_match(match.get("method"), request.get("method")):
        return False
    if not _string_match(match.get("authority"), request.get("authority")):
        return False
    if match.get("port") and int(match["port"]) != int(request.get("port") or 0):
        return False
    headers = request.get("headers") or {}
    for name, m in (match.get("headers") or {}).items():
        if not _string_match(m, headers.get(name.lower())):
            return False
    if match.get("sourceLabels") or match.get("sourceNamespace"):
        return False  # the lab's sidecar does not know which pod is calling
    return True


def choose_destination(view: ClusterView, host: str, request: Obj, seed: str) -> tuple[Obj | None, str]:
    """The VirtualService destination for a request to `host` (None: no VirtualService)."""
    vs = find_virtual_service(view, host)
    if not vs:
        return None, ""
    for i, route in enumerate(spec(vs).get("http") or []):
        matches = route.get("match") or []
        if matches and not any(http_match(m, request) for m in matches):
            continue
        dests = route.get("route") or []
        if not dests:
            raise RouteError(f"VirtualService {key(vs)} http[{i}] has no route (redirects and direct "
                             "responses are not emulated)", "no-route", 404)
        weights = [int(d.get("weight") or 0) for d in dests]
        if not any(weights):
            weights = [1] * len(dests)
        n = int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16) % sum(weights)
        for d, w in zip(dests, weights):
            if n < w:
                return d.get("destination") or {}, f"VirtualService {key(vs)} http[{i}]"
            n -= w
    raise RouteError(f"no route of VirtualService {key(vs)} matches (Envoy: 404 NR)", "no-route", 404)


# ---------------------------------------------------------------- endpoint addresses

def resolve_endpoint(view: ClusterView, address: str, port: int,
                     lab_hosts: dict[str, str]) -> list[Target]:
    """Targets for a ServiceEntry endpoint address as this cluster's proxies resolve it.

    An IP (a load balancer or node IP of the lab; a ClusterIP of this cluster is resolved to
    its Service's endpoints), a lab load balancer hostname (lb-hosts.json), or
    `<svc>.<ns>.svc.cluster.local` of this cluster (`port` is the Service port).
    """
    if parse_ip(address):
        svc = view.service_by_cluster_ip(address)
        if svc:
            eps = service_endpoints(view, meta(svc)["namespace"], meta(svc)["name"], port)
            return endpoint_targets(eps, f"(Service {key(svc)} ClusterIP {address}:{port})")
        return [Target(address, int(port), f"{address}:{port}")]
    a = address.lower().rstrip(".")
    if a in lab_hosts:
        return [Target(lab_hosts[a], int(port), f"{a} ({lab_hosts[a]}):{port}")]
    svc_name = kube_service_name(a, require_svc=True)
    if svc_name and view.service(svc_name[1], svc_name[0]):
        eps = service_endpoints(view, svc_name[1], svc_name[0], port)
        return endpoint_targets(eps, f"(Service {svc_name[1]}/{svc_name[0]}:{port})")
    raise RouteError(f"cannot resolve endpoint address {address} in {view.name} (the lab resolves "
                     "IPs, lab load balancer names and this cluster's Services)")


def se_endpoint_port(endpoint: Obj, se_port: Obj) -> int:
    """Endpoint `ports[<SE port name>]`, else the SE port's targetPort, else its number."""
    ports = endpoint.get("ports") or {}
    name = se_port.get("name")
    if name in ports:
        return int(ports[name])
    return int(se_port.get("targetPort") or se_port["number"])


def filter_endpoints(endpoints: list[Obj], labels: dict[str, str] | None,
                     networks: set[str] | None) -> list[Obj]:
    """SE endpoints a proxy sees: those in its network view (None/empty set = only endpoints
    without `network`) that carry the subset's labels."""
    out = []
    for e in endpoints:
        net = e.get("network") or ""
        if networks:
            if net not in networks:
                continue
        elif net:
            continue
        if labels_match(labels, e.get("labels")):
            out.append(e)
    return out


def _se_targets(view: ClusterView, endpoints: list[Obj], se_port: Obj, seed: str,
                lab_hosts: dict[str, str], detail: list[str]) -> list[Target]:
    targets: list[Target] = []
    errors: list[str] = []
    for e in pick_order(endpoints, seed):
        port = se_endpoint_port(e, se_port)
        try:
            ts = resolve_endpoint(view, str(e.get("address", "")), port, lab_hosts)
        except RouteError as exc:
            errors.append(exc.message)
            continue
        targets += pick_order(ts, seed)
    if not targets:
        raise RouteError("no healthy upstream: " + ("; ".join(errors) or "no endpoints"), "no-endpoints")
    if errors:
        detail.append("skipped: " + "; ".join(errors))
    return targets


# ---------------------------------------------------------------- hops

def match_service_entry(view: ClusterView, ip: str, port: int) -> tuple[Obj, Obj] | None:
    """(ServiceEntry, port) whose addresses contain `ip` and whose ports include `port`."""
    addr = parse_ip(ip)
    if addr is None:
        return None
    for se in view.serviceentries:
        hit = False
        for a in spec(se).get("addresses") or []:
            try:
                hit = hit or addr in ipaddress.ip_network(a, strict=False)
            except ValueError:
                continue
        if not hit:
            continue
        for p in spec(se).get("ports") or []:
            if str(p.get("number")) == str(port):
                return se, p
    return None


def plan_sidecar(view: ClusterView, host: str, port: int, request: Obj, request_id: str,
                 lab_hosts: dict[str, str]) -> Plan:
    """Where the sidecar of `view`'s cluster sends an HTTP request for `host:port`."""
    detail: list[str] = []
    version = istio_version(view)
    served_by, why = sidecar_control_plane(view)
    if served_by is None:
        raise RouteError(why, "dns", None)
    ip, how = resolve_name(view, host, lab_hosts)
    detail.append(f"dns {host} -> {ip} ({how})")

    svc = view.service_by_cluster_ip(ip)
    if svc:  # a Kubernetes Service of this cluster
        ns, name = meta(svc)["namespace"], meta(svc)["name"]
        if not service_port(svc, port):
            raise RouteError(f"Service {ns}/{name} has no port {port}: passthrough to ClusterIP "
                             f"{ip} is not dialed", "no-route", None)
        svc_host = f"{name}.{ns}.{CLUSTER_DOMAIN}"
        eps = service_endpoints(view, ns, name, port)
        dest, why = choose_destination(view, svc_host, request, request_id)
        subset = (dest or {}).get("subset") or ""
        if subset:
            s = subset_of(find_destination_rule(view, svc_host), subset)
            if not s:
                raise RouteError(f"no healthy upstream: subset {subset} of {svc_host} is not defined by "
                                 "a DestinationRule", "no-subset")
            eps = [e for e in eps if labels_match(s.get("labels"), e.labels)]
            detail.append(f"{why} -> subset {subset} {s.get('labels') or {}}")
        if not eps:
            raise RouteError(f"no healthy upstream: Service {ns}/{name} has no ready endpoints"
                             + (f" in subset {subset}" if subset else ""), "no-endpoints")
        mode = tls_mode(find_destination_rule(view, svc_host), port)
        sni = None if mode == "DISABLE" else build_sni(port, subset, svc_host)
        return Plan(pick_order(endpoint_targets(eps, f"(Service {ns}/{name})"), request_id), sni,
                    detail, svc_host)

    found = match_service_entry(view, ip, port)
    if not found:
        if is_external_lab_address(ip):
            detail.append("PassthroughCluster (no ServiceEntry for this address)")
            return Plan([Target(ip, int(port), f"{ip}:{port} (passthrough)")], None, detail, host)
        raise RouteError(f"no ServiceEntry in {view.name} has address {ip} and port {port}: "
                         f"passthrough to {ip} is not dialed", "no-route", None)
    se, se_port = found
    ok, why = loopback_vip_allowed(version, ip)
    if not ok:
        raise RouteError(why, "loopback-vip", None)
    se_hosts = [h.lower() for h in spec(se).get("hosts") or []]
    route_host = host.lower() if host.lower() in se_hosts else (se_hosts[0] if se_hosts else host.lower())
    detail.append(f"ServiceEntry {key(se)} port {se_port.get('name')}/{se_port.get('number')}")

    dest, why = choose_destination(view, route_host, request, request_id)
    if dest and "." in (dest.get("host") or "") and dest["host"].lower() != route_host:
        raise RouteError(f"{why} routes {route_host} to another host {dest['host']}: not emulated",
                         "unsupported")
    subset = (dest or {}).get("subset") or ""
    dr = find_destination_rule(view, route_host)
    labels = None
    s = None
    if subset:
        s = subset_of(dr, subset)
        if not s:
            raise RouteError(f"no healthy upstream: {why} routes to subset {subset} but no "
                             f"DestinationRule for {route_host} defines it", "no-subset")
        labels = s.get("labels") or {}
        detail.append(f"{why} -> subset {subset} (DestinationRule {key(dr)} labels {labels})")
    mode = tls_mode(dr, int(se_port["number"]), s)
    mtls = mode == "ISTIO_MUTUAL"
    source = f" (DestinationRule {key(dr)})" if dr else " (no DestinationRule: plain text)"
    detail.append(f"tls {mode or 'none'}{source}")

    endpoints = spec(se).get("endpoints") or []
    visible = filter_endpoints(endpoints, labels, None)
    if not visible:
        raise RouteError(f"no healthy upstream: ServiceEntry {key(se)} has no endpoint without "
                         "`network`" + (f" carrying {labels}" if labels else "")
                         + f" ({len(endpoints)} endpoints in all)", "no-endpoints")
    targets = _se_targets(view, visible, se_port, request_id, lab_hosts, detail)
    sni = build_sni(int(se_port["number"]), subset, route_host)
    return Plan(targets, sni if mtls else None, detail, route_host)


def find_passthrough_server(view: ClusterView, pod_labels: dict[str, str], port: int,
                            host: str) -> tuple[Obj, Obj] | None:
    """A Gateway server selecting this gateway pod: port, tls AUTO_PASSTHROUGH, host match."""
    for gw in view.gateways:
        if not labels_match(spec(gw).get("selector"), pod_labels):
            continue
        for server in spec(gw).get("servers") or []:
            if str((server.get("port") or {}).get("number")) != str(port):
                continue
            if (server.get("tls") or {}).get("mode") != "AUTO_PASSTHROUGH":
                continue
            hosts = [h.split("/", 1)[-1] for h in server.get("hosts") or []]
            if any(host_matches(h, host) for h in hosts):
                return gw, server
    return None


def plan_ingress(view: ClusterView, pod: Obj, port: int, sni: str) -> Plan:
    """Where an ingress gateway (AUTO_PASSTHROUGH on 15443) sends a connection with `sni`."""
    detail: list[str] = []
    parsed = parse_sni(sni)
    if not parsed or parsed.direction != "outbound":
        raise RouteError(f"SNI {sni!r} is not an Istio outbound cluster name", "sni")
    host = parsed.host
    found = find_passthrough_server(view, meta(pod).get("labels") or {}, port, host)
    if not found:
        raise RouteError(f"no Gateway selecting {key(pod)} has a server on port {port} with tls "
                         f"AUTO_PASSTHROUGH for {host}", "no-gateway")
    detail.append(f"Gateway {key(found[0])}")
    g = global_host(host)
    if g:
        ok, why = legacy_passthrough_allowed(istio_version(view), deployment_env(istiod(view)))
        if not ok:
            raise RouteError(why, "version")
        name, ns = g
    else:
        svc_name = kube_service_name(host, require_svc=True)
        if not svc_name:
            raise RouteError(f"SNI host {host} is neither <name>.<ns>.global nor a Service name", "sni")
        name, ns = svc_name
    svc_host = f"{name}.{ns}.{CLUSTER_DOMAIN}"
    eps = service_endpoints(view, ns, name, parsed.port)
    subset = parsed.subset
    if subset:
        dr = find_destination_rule(view, svc_host)
        s = subset_of(dr, subset)
        if s:
            eps = [e for e in eps if labels_match(s.get("labels"), e.labels)]
            detail.append(f"subset {subset}: DestinationRule {key(dr)} selects pods {s.get('labels') or {}}")
        else:
            detail.append(f"subset {subset} ignored: no DestinationRule for {svc_host} defines it")
    if not eps:
        raise RouteError(f"no ready endpoints of Service {ns}/{name} port {parsed.port}"
                         + (f" in subset {subset}" if subset else ""), "no-endpoints")
    detail.append(f"{host} -> Service {ns}/{name}:{parsed.port}")
    return Plan(endpoint_targets(eps, ""), build_sni(parsed.port, subset, svc_host), detail, svc_host)


def requested_network_view(view: ClusterView, pod: Obj) -> set[str]:
    """ISTIO_META_REQUESTED_NETWORK_VIEW of a gateway: the pod's env, else its Deployment's."""
    name = "ISTIO_META_REQUESTED_NETWORK_VIEW"
    env = pod_spec_env(spec(pod))
    if name not in env:
        env = deployment_env(view.deployment(ISTIO_NAMESPACE, EGRESS_APP))
    return {n.strip() for n in env.get(name, "").split(",") if n.strip()}


def plan_egress(view: ClusterView, pod: Obj, sni: str, lab_hosts: dict[str, str],
                request_id: str) -> Plan:
    """Where the egress gateway sends a sidecar's connection: the SE endpoints in its network view."""
    detail: list[str] = []
    parsed = parse_sni(sni)
    if not parsed or parsed.direction != "outbound":
        raise RouteError(f"SNI {sni!r} is not an Istio outbound cluster name", "sni")
    networks = requested_network_view(view, pod)
    if not networks:
        raise RouteError("istio-egressgateway has no ISTIO_META_REQUESTED_NETWORK_VIEW: it sees only "
                         "endpoints without `network` (itself) and cannot reach the remote gateway",
                         "network-view")
    found = None
    for se in view.serviceentries:
        if parsed.host in [h.lower() for h in spec(se).get("hosts") or []]:
            for p in spec(se).get("ports") or []:
                if str(p.get("number")) == str(parsed.port):
                    found = (se, p)
                    break
        if found:
            break
    if not found:
        raise RouteError(f"no ServiceEntry in {view.name} for {parsed.host} port {parsed.port}", "no-route")
    se, se_port = found
    detail.append(f"ServiceEntry {key(se)}; network view {sorted(networks)}")
    labels = None
    if parsed.subset:
        dr = find_destination_rule(view, parsed.host)
        s = subset_of(dr, parsed.subset)
        if not s:
            raise RouteError(f"subset {parsed.subset} of {parsed.host} is not defined by a "
                             "DestinationRule", "no-subset")
        labels = s.get("labels") or {}
        detail.append(f"subset {parsed.subset} labels {labels}")
    eps = filter_endpoints(spec(se).get("endpoints") or [], labels, networks)
    if not eps:
        raise RouteError(f"ServiceEntry {key(se)} has no endpoint in network(s) {sorted(networks)}"
                         + (f" carrying {labels}" if labels else ""), "no-endpoints")
    targets = _se_targets(view, eps, se_port, request_id, lab_hosts, detail)
    return Plan(targets, sni, detail, parsed.host)
