"""Routing by what a real istiod programmed: pure functions over xDS snapshots.

A snapshot is the JSON the lab's xDS client (`tests/lab/build/xds`, `meshlab-xds`) writes for
one proxy after every update from istiod: `clusters` (type, EDS name, inline endpoints,
transport sockets with the SNI istiod set), `endpoints` (EDS: ClusterLoadAssignment name ->
address, port, weight, priority, health, metadata), `listeners` (filter chains: server names,
HTTP connection manager RDS names, tcp_proxy clusters) and `routes` (RDS: virtual hosts ->
routes -> cluster or weighted clusters), plus the `versions` of each type istiod sent.

Nothing here does I/O. The decisions follow Envoy's: an HTTP request on an outbound port
takes the HTTP connection manager of the port's listener, the route configuration it names,
the virtual host by the request's authority, the first matching route, a cluster (weighted
by a hash of the request id), and an endpoint of that cluster (weighted, healthy, lowest
priority first); a TLS connection to a gateway takes the filter chain whose server names match
its SNI and the cluster the SNI names (sni_cluster) or the chain's tcp_proxy names.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .net import map_address
from .view import CLUSTER_DOMAIN, EASTWEST_APP, RouteError, Target

Obj = dict[str, Any]

OUTBOUND_CAPTURE_PORT = 15001  # Envoy's outbound capture port: a pod's own sidecar listener in the lab
SYSTEM_NAMESPACES = frozenset({"istio-system", "kube-system", "kube-public", "kube-node-lease",
                               "local-path-storage"})
HEALTHY = ("HEALTHY", "UNKNOWN", "")


@dataclass
class Snapshot:
    """One proxy's xDS state as the xDS client wrote it."""

    data: Obj
    path: str = ""

    @classmethod
    def parse(cls, text: str | bytes, path: str = "") -> Snapshot:
        data = json.loads(text)
        if not isinstance(data, dict) or "clusters" not in data:
            raise ValueError(f"{path or 'snapshot'}: not an xDS snapshot")
        return cls(data, path)

    @property
    def node(self) -> str:
        return self.data.get("node", "")

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.data.get("versions") or {})

    @property
    def clusters(self) -> dict[str, Obj]:
        return self.data.get("clusters") or {}

    @property
    def listeners(self) -> dict[str, Obj]:
        return self.data.get("listeners") or {}

    @property
    def routes(self) -> dict[str, Obj]:
        return self.data.get("routes") or {}

    @property
    def connected(self) -> bool:
        return bool(self.data.get("connected"))

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    def cluster_endpoints(self, name: str) -> list[Obj]:
        """The endpoints of a cluster: EDS (by its service name) or the inline load assignment."""
        c = self.clusters.get(name)
        if c is None:
            return []
        if c.get("type") == "EDS":
            return list((self.data.get("endpoints") or {}).get(c.get("eds_name") or name) or [])
        return list(c.get("endpoints") or [])

    def version_text(self, *types: str) -> str:
        v = self.versions
        return " ".join(f"{t}={v.get(t, '-')}" for t in types)


# ---------------------------------------------------------------- names

def istio_cluster_name(port: int, subset: str, host: str) -> str:
    """Istio's outbound cluster name: `outbound|<port>|<subset>|<host>`."""
    return f"outbound|{int(port)}|{subset or ''}|{host.lower()}"


def parse_cluster_name(name: str) -> tuple[str, int, str, str] | None:
    """(direction, port, subset, host) of `outbound|8000|v1|httpbin.bar.svc.cluster.local`."""
    parts = name.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def sni_of_cluster(name: str) -> str:
    """The SNI Istio derives from a cluster name: `outbound_.<port>_.<subset>_.<host>`."""
    parsed = parse_cluster_name(name)
    if not parsed:
        return ""
    d, port, subset, host = parsed
    return f"{d}_.{port}_.{subset}_.{host}"


def service_fqdn(host: str, namespace: str) -> str | None:
    """The `<svc>.<ns>.svc.cluster.local` a pod in `namespace` means by `host` (kube-dns search
    path: `<ns>.svc.cluster.local`, `svc.cluster.local`, `cluster.local`), else None."""
    h = host.lower().rstrip(".")
    parts = h.split(".")
    if h.endswith("." + CLUSTER_DOMAIN):
        return h if len(parts) == 5 else None
    if h.endswith(".svc") and len(parts) == 3:
        return f"{h}.cluster.local"
    if len(parts) == 1 and namespace:
        return f"{h}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{h}.{CLUSTER_DOMAIN}"
    return None


def known_host(snap: Snapshot, fqdn: str) -> bool:
    """Does istiod know `fqdn` (an outbound cluster of it is in the proxy's CDS)? What Istio's
    DNS proxy would answer from, in the lab's approximation (the lab does not subscribe NDS)."""
    suffix = "|" + fqdn.lower()
    return any(n.startswith("outbound|") and n.endswith(suffix) for n in snap.clusters)


# ---------------------------------------------------------------- matching (Envoy semantics)

def _hash(seed: str) -> int:
    return int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16)


def domain_match(domains: list[str], authority: str) -> tuple[int, int] | None:
    """How well a virtual host's domains match `authority`: (rank, length), larger is better;
    None when none matches. Envoy: exact > longest `*suffix` > longest `prefix*` > `*`."""
    a = authority.lower()
    best: tuple[int, int] | None = None
    for d in domains:
        d = d.lower()
        if d == "*":
            score = (0, 0)
        elif d == a:
            score = (3, len(d))
        elif d.startswith("*") and a.endswith(d[1:]) and len(a) > len(d) - 1:
            score = (2, len(d))
        elif d.endswith("*") and a.startswith(d[:-1]) and len(a) > len(d) - 1:
            score = (1, len(d))
        else:
            continue
        if best is None or score > best:
            best = score
    return best


def find_virtual_host(route_config: Obj, authority: str) -> Obj | None:
    best, best_score = None, None
    for vh in route_config.get("virtual_hosts") or []:
        score = domain_match(vh.get("domains") or [], authority)
        if score is not None and (best_score is None or score > best_score):
            best, best_score = vh, score
    return best


def _string_match(m: Obj, value: str | None) -> bool:
    if m.get("present") is not None and not any(k in m for k in ("exact", "prefix", "suffix", "contains", "regex")):
        return (value is not None) == bool(m["present"])
    if value is None:
        return False
    v = value.lower() if m.get("ignore_case") else value

    def norm(x: str) -> str:
        return x.lower() if m.get("ignore_case") else x

    if "exact" in m:
        return v == norm(m["exact"])
    if "prefix" in m:
        return v.startswith(norm(m["prefix"]))
    if "suffix" in m:
        return v.endswith(norm(m["suffix"]))
    if "contains" in m:
        return norm(m["contains"]) in v
    if "regex" in m:
        return re.fullmatch(m["regex"], value) is not None
    return True


def route_matches(match: Obj, request: Obj) -> bool:
    """One Envoy RouteMatch against {method, path, authority, headers (lower-case keys)}."""
    if match.get("unsupported"):
        return False
    full = request.get("path") or "/"
    path, _, query = full.partition("?")
    ci = bool(match.get("case_insensitive"))
    p = path.lower() if ci else path

    def n(x: str) -> str:
        return x.lower() if ci else x

    if match.get("path"):
        if p != n(match["path"]):
            return False
    elif match.get("path_separated_prefix"):
        pre = n(match["path_separated_prefix"])
        if not (p == pre or p.startswith(pre.rstrip("/") + "/")):
            return False
    elif match.get("regex"):
        if re.fullmatch(match["regex"], path) is None:
            return False
    elif match.get("prefix") is not None and not p.startswith(n(match.get("prefix") or "")):
        return False
    headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
    headers.setdefault(":method", request.get("method") or "GET")
    headers.setdefault(":path", full)
    headers.setdefault(":authority", request.get("authority") or headers.get("host") or "")
    headers.setdefault(":scheme", "http")
    for h in match.get("headers") or []:
        ok = _string_match(h, headers.get(h["name"].lower()))
        if ok == bool(h.get("invert")):
            return False
    params: dict[str, str] = {}
    for kv in query.split("&") if query else []:
        k, _, v = kv.partition("=")
        params.setdefault(k, v)
    for q in match.get("query_parameters") or []:
        if not _string_match(q, params.get(q["name"])):
            return False
    return True


def choose_weighted(items: list[tuple[str, int]], seed: str) -> str:
    total = sum(max(0, w) for _, w in items)
    if total <= 0:
        return items[0][0]
    n = _hash(seed) % total
    for name, w in items:
        if n < w:
            return name
        n -= max(0, w)
    return items[-1][0]


# ---------------------------------------------------------------- listeners

def _ip_in(prefixes: list[str], ip: str) -> bool:
    import ipaddress  # noqa: PLC0415

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for p in prefixes:
        try:
            if addr in ipaddress.ip_network(p, strict=False):
                return True
        except ValueError:
            continue
    return False


def outbound_chain(snap: Snapshot, port: int, dest_ip: str | None) -> tuple[str, Obj, Obj] | None:
    """(listener name, listener, filter chain) that an outbound HTTP connection to
    dest_ip:port takes: a listener bound to that IP:port, else 0.0.0.0:port; among its chains
    one whose prefix ranges hold the IP (or that has none) and that carries an HTTP connection
    manager, else one with a tcp_proxy."""
    candidates = []
    for name, lst in snap.listeners.items():
        if int(lst.get("port") or 0) != int(port):
            continue
        addr = lst.get("address") or ""
        if dest_ip and addr == dest_ip:
            candidates.append((0, name, lst))
        elif addr in ("0.0.0.0", "::"):
            candidates.append((1, name, lst))
    for _, name, lst in sorted(candidates, key=lambda c: c[0]):
        chains = [fc for fc in lst.get("filter_chains") or []
                  if fc.get("transport_protocol") in (None, "", "raw_buffer")]
        scoped = [fc for fc in chains if fc.get("prefix_ranges") and dest_ip and _ip_in(fc["prefix_ranges"], dest_ip)]
        plain = [fc for fc in chains if not fc.get("prefix_ranges")]
        for group in (scoped, plain):
            for want in ("http", "tcp"):
                for fc in group:
                    kinds = {_filter_kind(f) for f in fc.get("filters") or []}
                    if want in kinds:
                        return name, lst, fc
    return None


def _filter_kind(f: Obj) -> str:
    if f.get("rds") or f.get("inline_route") is not None or f.get("name") == "envoy.filters.network.http_connection_manager":
        return "http"
    if f.get("cluster") or f.get("weighted_clusters") or f.get("name") == "envoy.filters.network.tcp_proxy":
        return "tcp"
    if f.get("name") == "envoy.filters.network.sni_cluster":
        return "sni_cluster"
    return "other"


def server_name_match(server_names: list[str], sni: str) -> tuple[int, int] | None:
    """Envoy's filter chain match on server names: exact > longest wildcard `*.suffix`."""
    s = sni.lower()
    best = None
    for n in server_names:
        n = n.lower()
        if n == s:
            score = (2, len(n))
        elif n.startswith("*.") and s.endswith(n[1:]):
            score = (1, len(n))
        else:
            continue
        best = score if best is None or score > best else best
    return best


# ---------------------------------------------------------------- endpoints

@dataclass
class XdsDecision:
    """What a hop decided from its snapshot (for the hop log)."""

    node: str
    cluster: str = ""
    route: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    endpoints: int = 0

    def record(self, endpoint: str = "") -> Obj:
        out: Obj = {"node": self.node, "cluster": self.cluster, "versions": self.versions,
                    "endpoints": self.endpoints}
        if self.route:
            out["route"] = self.route
        if endpoint:
            out["endpoint"] = endpoint
        return out


def endpoint_transport(cluster: Obj, endpoint: Obj) -> tuple[bool, str]:
    """(tls, sni) for one endpoint: the first transport_socket_match whose `match` the endpoint's
    `envoy.transport_socket_match` metadata carries, else the cluster's default socket."""
    md = ((endpoint.get("metadata") or {}).get("envoy.transport_socket_match") or {})
    transports = cluster.get("transports") or []
    for t in transports:
        if t.get("name") == "default":
            continue
        match = t.get("match") or {}
        if all(str(md.get(k)) == str(v) for k, v in match.items()):
            return bool(t.get("tls")), t.get("sni") or ""
    for t in transports:
        if t.get("name") == "default":
            return bool(t.get("tls")), t.get("sni") or ""
    return False, ""


def endpoint_cluster_id(endpoint: Obj) -> str:
    """The cluster ID istiod put in the endpoint's `istio.workload` metadata (last field)."""
    wl = ((endpoint.get("metadata") or {}).get("istio") or {}).get("workload") or ""
    return wl.split(";")[-1] if ";" in wl else ""


def order_endpoints(endpoints: list[Obj], seed: str) -> list[Obj]:
    """Healthy endpoints of the lowest priority that has any, the first chosen by weight (a
    hash of `seed`), then the others in order (connect failures try the next)."""
    healthy = [e for e in endpoints if (e.get("health") or "") in HEALTHY]
    if not healthy:
        return []
    prio = min(int(e.get("priority") or 0) for e in healthy)
    tier = [e for e in healthy if int(e.get("priority") or 0) == prio]
    tier.sort(key=lambda e: (e.get("address", ""), int(e.get("port") or 0)))
    first = choose_weighted([(str(i), int(e.get("weight") or 1)) for i, e in enumerate(tier)], seed)
    i = int(first)
    return tier[i:] + tier[:i]


def endpoint_targets(snap: Snapshot, cluster_name: str, seed: str, lab_hosts: dict[str, str],
                     local_pods: dict[str, str]) -> list[Target]:
    """Targets for a cluster's endpoints; each Target's `sni` is what this proxy's transport
    socket sends ("" = plain text). `local_pods` maps pod IPs of this cluster to "ns/name"."""
    cluster = snap.clusters.get(cluster_name)
    if cluster is None:
        raise RouteError(f"no cluster {cluster_name} in the xDS of {snap.node} (Envoy: 503 NC)", "no-cluster")
    ctype = cluster.get("type")
    if ctype == "ORIGINAL_DST":
        raise RouteError(f"cluster {cluster_name} is {ctype} (passthrough): not dialed by the lab", "passthrough", None)
    eps = order_endpoints(snap.cluster_endpoints(cluster_name), seed)
    if not eps:
        raise RouteError(f"no healthy upstream: cluster {cluster_name} has no healthy endpoint in the xDS "
                         f"of {snap.node} ({snap.version_text('cds', 'eds')})", "no-endpoints")
    out = []
    for e in eps:
        addr = str(e.get("address") or "")
        if addr.lower() in lab_hosts:  # a STRICT_DNS endpoint with a lab load balancer name
            addr = lab_hosts[addr.lower()]
        tls, sni = endpoint_transport(cluster, e)
        if tls and not sni:
            sni = sni_of_cluster(cluster_name)
        cid = endpoint_cluster_id(e)
        pod = local_pods.get(addr)
        what = f"pod {pod}" if pod else ("endpoint" + (f" of {cid}" if cid else ""))
        desc = f"{what} {addr}:{e.get('port')} (xDS {cluster_name}, weight {e.get('weight', 1)})"
        out.append(Target(addr, int(e.get("port") or 0), desc, pod, sni=sni if tls else ""))
    return out


# ---------------------------------------------------------------- the sidecar

def sidecar_cluster(snap: Snapshot, host: str, port: int, request: Obj, seed: str,
                    dest_ip: str | None) -> tuple[str, str]:
    """(cluster name, how) for an HTTP request to host:port, as the proxy's listener, route
    configuration and virtual host say. RouteError as Envoy fails (404 NR, 503 NC, ...)."""
    found = outbound_chain(snap, port, dest_ip)
    if not found:
        raise RouteError(f"no outbound listener for port {port} in the xDS of {snap.node} "
                         f"({snap.version_text('lds')}): passthrough is not dialed", "no-listener", None)
    lname, _lst, fc = found
    hcm = next((f for f in fc.get("filters") or [] if _filter_kind(f) == "http"), None)
    if hcm is None:
        tcp = next((f for f in fc.get("filters") or [] if _filter_kind(f) == "tcp"), None)
        assert tcp is not None
        if tcp.get("weighted_clusters"):
            c = choose_weighted([(w["name"], int(w.get("weight") or 0)) for w in tcp["weighted_clusters"]], seed)
        else:
            c = tcp.get("cluster") or ""
        return c, f"listener {lname} tcp_proxy -> {c}"
    if hcm.get("rds"):
        rc_name = hcm["rds"]
        rc = snap.routes.get(rc_name)
        if rc is None:
            raise RouteError(f"route configuration {rc_name} not received yet in the xDS of {snap.node}",
                             "no-route", 404)
    else:
        rc_name, rc = "(inline)", hcm.get("inline_route") or {}
    authority = (request.get("headers") or {}).get("host") or request.get("authority") or host
    if hcm.get("strip_any_host_port") or rc.get("ignore_port_in_host_matching"):
        authority = re.sub(r":\d+$", "", authority)  # Istio: SIDECAR_IGNORE_PORT_IN_HOST_MATCH
    vh = find_virtual_host(rc, authority)
    if vh is None:
        raise RouteError(f"no virtual host for {authority} in route {rc_name} of {snap.node} "
                         f"({snap.version_text('rds')}) (Envoy: 404 NR)", "no-route", 404)
    for i, r in enumerate(vh.get("routes") or []):
        if not route_matches(r.get("match") or {}, request):
            continue
        where = f"route {rc_name} vhost {vh.get('name')} route[{i}]{' ' + r['name'] if r.get('name') else ''}"
        if r.get("direct_response"):
            raise RouteError(f"{where}: direct response {r['direct_response']}", "direct-response",
                             int(r["direct_response"]))
        if r.get("redirect") or r.get("non_forwarding") or r.get("cluster_header"):
            raise RouteError(f"{where}: redirects and non-forwarding routes are not emulated", "unsupported")
        if r.get("weighted_clusters"):
            c = choose_weighted([(w["name"], int(w.get("weight") or 0)) for w in r["weighted_clusters"]], seed)
            return c, f"{where} weighted -> {c}"
        return r.get("cluster") or "", f"{where} -> {r.get('cluster')}"
    raise RouteError(f"no route of vhost {vh.get('name')} in {rc_name} matches (Envoy: 404 NR)", "no-route", 404)


# ---------------------------------------------------------------- gateways (AUTO_PASSTHROUGH)

def gateway_cluster(snap: Snapshot, port: int, sni: str) -> tuple[str, str]:
    """(cluster name, how) for a TLS connection with `sni` on the gateway's `port`: the filter
    chain whose server names match (Envoy closes the connection when none does), then the
    cluster the SNI names (sni_cluster) or the chain's tcp_proxy cluster."""
    best = None
    for lname, lst in snap.listeners.items():
        if int(lst.get("port") or 0) != int(port):
            continue
        for fc in lst.get("filter_chains") or []:
            names = fc.get("server_names") or []
            score = server_name_match(names, sni) if names else (0, 0)
            if score is None:
                continue
            if best is None or score > best[0]:
                best = (score, lname, fc)
    if best is None:
        raise RouteError(f"no filter chain of a listener on {port} in the xDS of {snap.node} matches SNI {sni} "
                         f"({snap.version_text('lds')}): Envoy closes the connection", "no-filter-chain")
    _, lname, fc = best
    kinds = [_filter_kind(f) for f in fc.get("filters") or []]
    how = f"listener {lname} chain {fc.get('name') or '-'} server_names {fc.get('server_names') or '*'}"
    if "sni_cluster" in kinds:
        cluster = sni
        how += " sni_cluster"
    else:
        tcp = next((f for f in fc.get("filters") or [] if _filter_kind(f) == "tcp"), None)
        if tcp is None:
            raise RouteError(f"{how}: no tcp_proxy (not an AUTO_PASSTHROUGH chain)", "no-filter-chain")
        cluster = tcp.get("cluster") or sni
    if cluster not in snap.clusters:
        raise RouteError(f"{how}: no cluster {cluster} in the xDS of {snap.node} ({snap.version_text('cds')}): "
                         "Envoy closes the connection (no Gateway with AUTO_PASSTHROUGH lists this host?)",
                         "no-cluster")
    return cluster, how + f" -> {cluster}"


# ---------------------------------------------------------------- which proxies the lab runs

def pod_env(pod: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for e in c.get("env") or []:
            if "name" in e and "value" in e:
                env[e["name"]] = str(e["value"])
    return env


def proxy_metadata(cluster: Obj, pod: Obj, istio_version: str, router: bool) -> Obj:
    """Node metadata as istio-agent would send it for this pod (the parts istiod reads)."""
    m = pod.get("metadata") or {}
    st = pod.get("status") or {}
    sp = pod.get("spec") or {}
    labels = dict(m.get("labels") or {})
    owner = next((o.get("name", "") for o in m.get("ownerReferences") or []), "")
    workload = owner.rsplit("-", 1)[0] if owner and "pod-template-hash" in labels else (owner or m.get("name", ""))
    md: Obj = {
        "CLUSTER_ID": cluster["name"],
        "NETWORK": cluster.get("network") or "",
        "NAMESPACE": m.get("namespace", ""),
        "ISTIO_VERSION": istio_version,
        "LABELS": labels,
        "WORKLOAD_NAME": workload,
        "INSTANCE_IPS": st.get("podIP", ""),
        "INTERCEPTION_MODE": "REDIRECT",
        "SERVICE_ACCOUNT": sp.get("serviceAccountName") or "default",
        "MESH_ID": cluster.get("mesh_id") or "",
        "NAME": m.get("name", ""),
        "POD_NAME": m.get("name", ""),
    }
    if router:
        md["ROUTER_MODE"] = "sni-dnat"
        md["REQUESTED_NETWORK_VIEW"] = cluster.get("network") or ""
    for k, v in pod_env(pod).items():  # istio-agent: ISTIO_META_<X> becomes metadata <X>
        if k.startswith("ISTIO_META_") and len(k) > len("ISTIO_META_"):
            md[k[len("ISTIO_META_"):]] = v
    return {k: v for k, v in md.items() if v not in ("", None)}


def node_id(pod: Obj, router: bool) -> str:
    m = pod.get("metadata") or {}
    ns = m.get("namespace", "")
    kind = "router" if router else "sidecar"
    return f"{kind}~{(pod.get('status') or {}).get('podIP', '')}~{m.get('name', '')}.{ns}~{ns}.svc.cluster.local"


def wants_sidecar(pod: Obj) -> bool:
    """Running pods outside the system namespaces, unless sidecar injection is turned off."""
    m = pod.get("metadata") or {}
    st = pod.get("status") or {}
    if m.get("namespace") in SYSTEM_NAMESPACES or m.get("deletionTimestamp"):
        return False
    if st.get("phase") != "Running" or not st.get("podIP"):
        return False
    off = ((m.get("annotations") or {}).get("sidecar.istio.io/inject")
           or (m.get("labels") or {}).get("sidecar.istio.io/inject") or "").lower()
    return off != "false"


def is_eastwest_gateway(pod: Obj) -> bool:
    m = pod.get("metadata") or {}
    st = pod.get("status") or {}
    return (m.get("namespace") == "istio-system" and (m.get("labels") or {}).get("app") == EASTWEST_APP
            and st.get("phase") == "Running" and bool(st.get("podIP")) and not m.get("deletionTimestamp"))


@dataclass
class ProxySpec:
    """One xDS client the lab keeps: a pod's sidecar or an east-west gateway (router)."""

    cluster: str
    namespace: str
    pod: str
    uid: str
    pod_ip: str
    node: str
    server: str
    metadata: Obj
    router: bool

    @property
    def key(self) -> tuple:
        return (self.cluster, self.namespace, self.pod, self.uid, self.pod_ip, self.server,
                json.dumps(self.metadata, sort_keys=True))


def desired_proxies(cluster: Obj, pods: list[Obj], istiod: Obj | None) -> list[ProxySpec]:
    """The xDS clients a current-Istio cluster needs: one per sidecar pod and per east-west
    gateway pod, connected to the istiod of the cluster's control plane (`istiod`: that
    istiod's STATE/istiod/<cluster>.json)."""
    if cluster.get("flavour") != "current" or not istiod or not istiod.get("grpc"):
        return []
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(istiod.get("version") or "")) or \
        re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(cluster.get("istio_version") or ""))
    version = f"{m.group(1)}.{m.group(2)}.{m.group(3) or 0}" if m else ""
    out = []
    for pod in pods:
        router = is_eastwest_gateway(pod)
        if not router and not wants_sidecar(pod):
            continue
        m = pod.get("metadata") or {}
        out.append(ProxySpec(cluster["name"], m.get("namespace", ""), m.get("name", ""), m.get("uid", ""),
                             pod["status"]["podIP"], node_id(pod, router), str(istiod["grpc"]),
                             proxy_metadata(cluster, pod, version, router), router))
    return sorted(out, key=lambda p: (p.namespace, p.pod))


def sidecar_listeners(specs: list[ProxySpec]) -> dict[tuple[str, int], tuple]:
    """Each sidecar pod's own outbound listener: its mapped pod IP, port 15001 (where Envoy
    captures outbound traffic); a client that uses it as HTTP proxy is known to be that pod."""
    return {(map_address(s.pod_ip), OUTBOUND_CAPTURE_PORT): ("sidecar", s.cluster, s.namespace, s.pod)
            for s in specs if not s.router}
