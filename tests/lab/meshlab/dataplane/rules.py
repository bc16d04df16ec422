"""Routing decisions of the emulated mesh: pure functions over API objects as plain dicts.

Nothing here does I/O. A `ClusterView` is one cluster's objects as read from its API server
(the JSON of `kubectl get -o json`), with indexes; the `plan_*` functions say where a hop sends
a request, or raise `RouteError` saying why it cannot (and how the failure shows to the
client: a closed connection, like curl's "Could not resolve host", or an HTTP status, like
Envoy's 503 "no healthy upstream").

The rules follow Istio's "multicluster via gateways" procedure as the lab emulates it; see
tests/lab/README-dataplane.md for the list of honoured fields.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from .net import LOOPBACK, is_external_lab_address, map_address, parse_ip

Obj = dict[str, Any]

ISTIO_NAMESPACE = "istio-system"
INGRESS_APP = "istio-ingressgateway"
EGRESS_APP = "istio-egressgateway"
GATEWAY_PORT = 15443
STATUS_PORT = 15021  # the gateways' health endpoint (GET /healthz/ready)
CLUSTER_DOMAIN = "svc.cluster.local"
LB_DOMAIN = "lab.meshlink.test"
INGRESS_SERVICE_KEY = f"{ISTIO_NAMESPACE}/{INGRESS_APP}"


class RouteError(Exception):
    """A hop cannot route. `status` None: close the connection without a response."""

    def __init__(self, message: str, kind: str = "no-route", status: int | None = 503):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status


@dataclass
class Target:
    """Where to dial: `address` as the lab knows it (dial() maps pod IPs to loopback)."""

    address: str
    port: int
    desc: str
    pod: str | None = None  # "<ns>/<name>" when the target is a pod


@dataclass
class Plan:
    """A routing decision: try `targets` in order; send `sni` as emulated mTLS (None: plain)."""

    targets: list[Target]
    sni: str | None
    detail: list[str] = field(default_factory=list)
    host: str = ""


# ---------------------------------------------------------------- objects and indexes

def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def key(obj: Obj) -> str:
    m = meta(obj)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def age_order(objs: Iterable[Obj]) -> list[Obj]:
    """Oldest first (Istio's tie-break for conflicting config), then namespace/name."""
    return sorted(objs, key=lambda o: (meta(o).get("creationTimestamp") or "",
                                       meta(o).get("namespace") or "", meta(o).get("name") or ""))


class ClusterView:
    """One cluster's objects (`objects` maps a kind's plural to a list of dicts)."""

    def __init__(self, cluster: Obj, objects: dict[str, Any]):
        self.cluster = cluster
        self.name: str = cluster.get("name", "")
        self.pods: list[Obj] = list(objects.get("pods") or [])
        self.services: list[Obj] = list(objects.get("services") or [])
        self.endpointslices: list[Obj] = list(objects.get("endpointslices") or [])
        self.serviceentries = age_order(objects.get("serviceentries") or [])
        self.virtualservices = age_order(objects.get("virtualservices") or [])
        self.destinationrules = age_order(objects.get("destinationrules") or [])
        self.gateways = age_order(objects.get("gateways") or [])
        self.deployments: list[Obj] = list(objects.get("deployments") or [])
        self.configmaps: dict[str, Obj | None] = dict(objects.get("configmaps") or {})
        self._pods = {key(p): p for p in self.pods}
        self._services = {key(s): s for s in self.services}
        self._by_cluster_ip: dict[str, Obj] = {}
        for s in self.services:
            for ip in [spec(s).get("clusterIP"), *(spec(s).get("clusterIPs") or [])]:
                if ip and ip != "None":
                    self._by_cluster_ip[ip] = s
        self._slices: dict[str, list[Obj]] = {}
        for sl in self.endpointslices:
            svc = (meta(sl).get("labels") or {}).get("kubernetes.io/service-name")
            if svc:
                self._slices.setdefault(f"{meta(sl).get('namespace', '')}/{svc}", []).append(sl)
        self._deployments = {key(d): d for d in self.deployments}

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self._pods.get(f"{namespace}/{name}")

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._services.get(f"{namespace}/{name}")

    def service_by_cluster_ip(self, ip: str) -> Obj | None:
        return self._by_cluster_ip.get(ip)

    def slices(self, namespace: str, name: str) -> list[Obj]:
        return sorted(self._slices.get(f"{namespace}/{name}", []), key=key)

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self._deployments.get(f"{namespace}/{name}")

    def configmap(self, namespace: str, name: str) -> Obj | None:
        return self.configmaps.get(f"{namespace}/{name}")


# ---------------------------------------------------------------- versions

def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """`1.7.8`, `1.9`, `v1.10.0-beta.1`, `1.7.8-distroless` -> (major, minor, patch)."""
    if not text:
        return None
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text).strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def image_version(image: str | None) -> tuple[int, int, int] | None:
    """The version in an image reference's tag (`docker.io/istio/pilot:1.7.8`)."""
    if not image:
        return None
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    return parse_version(last.rsplit(":", 1)[1])


def fmt_version(version: tuple[int, int, int] | None) -> str:
    return ".".join(map(str, version)) if version else "unknown"


def pod_spec_env(pod_spec: Obj) -> dict[str, str]:
    """Literal env values of all containers of a pod spec (valueFrom is not evaluated)."""
    env: dict[str, str] = {}
    for c in pod_spec.get("containers") or []:
        for e in c.get("env") or []:
            if "name" in e and "value" in e:
                env[e["name"]] = str(e["value"])
    return env


def deployment_env(dep: Obj | None) -> dict[str, str]:
    if not dep:
        return {}
    return pod_spec_env(spec(spec(dep).get("template") or {}))


def istiod(view: ClusterView) -> Obj | None:
    return view.deployment(ISTIO_NAMESPACE, "istiod") or view.deployment(ISTIO_NAMESPACE, "istio-pilot")


def istio_version(view: ClusterView) -> tuple[int, int, int] | None:
    """The Istio version a cluster runs: the image tag of istiod's container."""
    dep = istiod(view)
    if not dep:
        return None
    containers = spec(spec(dep).get("template") or {}).get("containers") or []
    ordered = sorted(containers, key=lambda c: c.get("name") not in ("discovery", "pilot"))
    for c in ordered:
        v = image_version(c.get("image"))
        if v:
            return v
    return None


def legacy_passthrough_allowed(version: tuple[int, int, int] | None,
                               istiod_env: dict[str, str]) -> tuple[bool, str]:
    """Does istiod still program AUTO_PASSTHROUGH for `.global` SNIs?

    Up to 1.8.5 and 1.9.4: yes. From 1.8.6 / 1.9.5 (CVE-2021-31921): only with
    PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH=true on istiod. From 1.19: never (flag removed).
    """
    v = fmt_version(version)
    if version is None:
        return False, "istiod version unknown (no istiod Deployment with a tagged image)"
    if version >= (1, 19, 0):
        return False, (f"Istio {v}: PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH is gone since 1.19; "
                       ".global AUTO_PASSTHROUGH cannot work")
    if version < (1, 8, 6) or (1, 9, 0) <= version < (1, 9, 5):
        return True, f"Istio {v} accepts .global SNIs on AUTO_PASSTHROUGH"
    if istiod_env.get("PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH", "").strip().lower() == "true":
        return True, f"Istio {v} with PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH=true on istiod"
    return False, (f"Istio {v} >= 1.8.6/1.9.5 (CVE-2021-31921) ignores .global SNIs unless istiod "
                   "has PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH=true")


def loopback_vip_allowed(version: tuple[int, int, int] | None, vip: str) -> tuple[bool, str]:
    """A VIP in 127.0.0.0/8 works only before Istio 1.3 (istio/istio#17261)."""
    ip = parse_ip(vip)
    if ip is None or ip not in LOOPBACK:
        return True, ""
    if version is not None and version < (1, 3, 0):
        return True, f"loopback VIP {vip} on Istio {fmt_version(version)} (< 1.3)"
    return False, (f"VIP {vip} is in 127.0.0.0/8: from Istio 1.3 the sidecar's iptables send loopback "
                   f"traffic to the inbound listener (istio/istio#17261); istiod is "
                   f"{fmt_version(version)}")


# ---------------------------------------------------------------- DNS

def corefile_zones(corefile: str) -> list[tuple[str, str]]:
    """(zone, port) of every server block key of a CoreDNS Corefile (port "" when omitted)."""
    text = re.sub(r"#[^\n]*", "", corefile or "")
    tokens = re.findall(r"\{|\}|[^\s{}]+", text)
    zones: list[tuple[str, str]] = []
    depth = 0
    pending: list[str] = []
    for tok in tokens:
        if tok == "{":
            if depth == 0:
                for k in pending:
                    zones.append(_zone_key(k))
                pending = []
            depth += 1
        elif tok == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            pending.append(tok)
    return zones


def _zone_key(k: str) -> tuple[str, str]:
    k = re.sub(r"^[a-z]+://", "", k.strip().lower())
    port = ""
    m = re.match(r"^(.*?):(\d+)$", k)
    if m:
        k, port = m.group(1), m.group(2)
    k = k.rstrip(".") or "."
    return k, port


def corefile_has_global(corefile: str) -> bool:
    """A `global:53` (or `global`) server block: the stub domain to istiocoredns."""
    return any(zone == "global" and port in ("", "53") for zone, port in corefile_zones(corefile))


def mesh_dns_capture(mesh_text: str) -> bool:
    """meshConfig `defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE: "true"`."""
    try:
        mesh = yaml.safe_load(mesh_text or "") or {}
    except yaml.YAMLError:
        return False
    if not isinstance(mesh, dict):
        return False
    meta_ = ((mesh.get("defaultConfig") or {}).get("proxyMetadata") or {})
    return str(meta_.get("ISTIO_META_DNS_CAPTURE", "")).strip().lower() == "true"


def dns_config(view: ClusterView) -> tuple[bool, bool, str]:
    """(`.global` resolves, sidecar DNS capture on, how) for a cluster."""
    cm = view.configmap("kube-system", "coredns")
    coredns = bool(cm and corefile_has_global((cm.get("data") or {}).get("Corefile", "")))
    cm = view.configmap(ISTIO_NAMESPACE, "istio")
    capture = bool(cm and mesh_dns_capture((cm.get("data") or {}).get("mesh", "")))
    if capture:
        how = "sidecar DNS proxy (ISTIO_META_DNS_CAPTURE)"
    elif coredns:
        how = "CoreDNS global:53 stub domain"
    else:
        how = ("no .global DNS: no global:53 block in kube-system/coredns and no "
               "ISTIO_META_DNS_CAPTURE in istio-system/istio")
    return coredns or capture, capture, how


def kube_service_name(host: str, require_svc: bool = False) -> tuple[str, str] | None:
    """(name, namespace) of `<name>.<ns>[.svc[.cluster.local]]`, else None."""
    h = host.lower().rstrip(".")
    for suffix in ("." + CLUSTER_DOMAIN, ".svc"):
        if h.endswith(suffix):
            parts = h[: -len(suffix)].split(".")
            return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None
    if require_svc:
        return None
    parts = h.split(".")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def global_host(host: str) -> tuple[str, str] | None:
    """(name, namespace) of `<name>.<namespace>.global`, else None."""
    parts = host.lower().rstrip(".").split(".")
    if len(parts) == 3 and parts[2] == "global" and parts[0] and parts[1]:
        return parts[0], parts[1]
    return None


def se_address_for_host(view: ClusterView, host: str) -> tuple[str, Obj] | None:
    """The first address of the oldest ServiceEntry listing `host` (what DNS answers)."""
    h = host.lower().rstrip(".")
    for se in view.serviceentries:
        if h in [x.lower() for x in spec(se).get("hosts") or []]:
            for addr in spec(se).get("addresses") or []:
                try:
                    net = ipaddress.ip_network(addr, strict=False)
                except ValueError:
                    continue
                if net.num_addresses == 1:
                    return str(net.network_address), se
    return None


def resolve_name(view: ClusterView, host: str, lab_hosts: dict[str, str]) -> tuple[str, str]:
    """(ip, how) that a pod in this cluster gets for `host`; RouteError(kind="dns") if none."""
    h = host.lower().rstrip(".")
    if parse_ip(h):
        return h, "IP literal"
    global_ok, capture, how = dns_config(view)
    if h.endswith(".global"):
        if not global_ok:
            raise RouteError(f"Could not resolve host: {host} ({how})", "dns", None)
        found = se_address_for_host(view, h)
        if not found:
            raise RouteError(f"Could not resolve host: {host} (no ServiceEntry with an address "
                             f"lists it; {how})", "dns", None)
        return found[0], f"{how}: ServiceEntry {key(found[1])}"
    svc_name = kube_service_name(h)
    if svc_name:
        svc = view.service(svc_name[1], svc_name[0])
        if svc:
            ip = spec(svc).get("clusterIP")
            if ip and ip != "None":
                return ip, f"kube-dns: Service {key(svc)}"
    if capture:
        found = se_address_for_host(view, h)
        if found:
            return found[0], f"{how}: ServiceEntry {key(found[1])}"
    if h in lab_hosts:
        return lab_hosts[h], "lab resolver (lb-hosts.json)"
    raise RouteError(f"Could not resolve host: {host}", "dns", None)


# ---------------------------------------------------------------- hosts, labels, SNI

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


def labels_match(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (selector or {}).items())


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


def pick_order(items: list[Any], seed: str) -> list[Any]:
    """A deterministic rotation of `items` by a hash of `seed` (load balancing per request)."""
    if len(items) < 2:
        return list(items)
    n = int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16) % len(items)
    return items[n:] + items[:n]


# ---------------------------------------------------------------- Kubernetes services

@dataclass
class Endpoint:
    address: str  # pod IP as in the EndpointSlice
    port: int  # the target port
    pod: Obj | None

    @property
    def pod_key(self) -> str | None:
        return key(self.pod) if self.pod else None

    @property
    def labels(self) -> dict[str, str]:
        return (meta(self.pod).get("labels") or {}) if self.pod else {}


def service_port(svc: Obj, port: int | str) -> Obj | None:
    for p in spec(svc).get("ports") or []:
        if str(p.get("port")) == str(port) or (isinstance(port, str) and p.get("name") == port):
            return p
    return None


def service_endpoints(view: ClusterView, namespace: str, name: str, port: int) -> list[Endpoint]:
    """Ready endpoints of Service port `port` (kube-proxy's view: the EndpointSlices).

    The target port is the EndpointSlice port named like the Service port, so named
    targetPorts are resolved the way the EndpointSlice controller resolved them.
    """
    svc = view.service(namespace, name)
    if not svc:
        raise RouteError(f"no Service {namespace}/{name} in {view.name}", "no-service")
    sport = service_port(svc, int(port))
    if not sport:
        raise RouteError(f"Service {namespace}/{name} in {view.name} has no port {port}", "no-service")
    pname = sport.get("name") or ""
    proto = sport.get("protocol") or "TCP"
    out: list[Endpoint] = []
    seen: set[tuple[str, int]] = set()
    for sl in view.slices(namespace, name):
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        target = None
        for p in sl.get("ports") or []:
            if (p.get("name") or "") == pname and (p.get("protocol") or "TCP") == proto and p.get("port"):
                target = int(p["port"])
        if target is None:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            addrs = ep.get("addresses") or []
            if not addrs or (addrs[0], target) in seen:
                continue
            seen.add((addrs[0], target))
            ref = ep.get("targetRef") or {}
            pod = view.pod(ref.get("namespace") or namespace, ref["name"]) if (
                ref.get("kind") == "Pod" and ref.get("name")) else None
            out.append(Endpoint(addrs[0], target, pod))
    return sorted(out, key=lambda e: (e.address, e.port))


def endpoint_targets(eps: list[Endpoint], what: str) -> list[Target]:
    out = []
    for e in eps:
        desc = f"{e.pod_key or 'endpoint'} {e.address}:{e.port} ({map_address(e.address)}:{e.port}) {what}"
        out.append(Target(e.address, e.port, desc.rstrip(), e.pod_key))
    return out


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
    if not istiod(view):
        raise RouteError(f"no istiod Deployment in {ISTIO_NAMESPACE} of {view.name}: no sidecar, "
                         "no mesh DNS", "dns", None)
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


def plan_service_forward(view: ClusterView, namespace: str, name: str, port: int, seed: str) -> list[Target]:
    """kube-proxy: a Service port (via LB IP or nodePort) to its ready endpoints."""
    eps = service_endpoints(view, namespace, name, port)
    if not eps:
        raise RouteError(f"Service {namespace}/{name} port {port} has no ready endpoints", "no-endpoints")
    return pick_order(endpoint_targets(eps, ""), seed)


# ---------------------------------------------------------------- what runs where

def pod_running(pod: Obj) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and bool(st.get("podIP")) and not meta(pod).get("deletionTimestamp")


def httpbin_workloads(view: ClusterView) -> list[Obj]:
    """Running pods with an httpbin container: where a real httpbin must listen."""
    out = []
    for pod in view.pods:
        if not pod_running(pod):
            continue
        for c in spec(pod).get("containers") or []:
            if "httpbin" in (c.get("image") or ""):
                ports = [p.get("containerPort") for p in c.get("ports") or [] if p.get("containerPort")]
                out.append({"cluster": view.name, "namespace": meta(pod)["namespace"],
                            "pod": meta(pod)["name"], "uid": meta(pod).get("uid", ""),
                            "ip": map_address(pod["status"]["podIP"]), "pod_ip": pod["status"]["podIP"],
                            "port": int(ports[0]) if ports else 80})
                break
    return out


def gateway_pods(view: ClusterView) -> list[tuple[str, Obj]]:
    """("ingress-gateway"|"egress-gateway", pod) for running gateway pods in istio-system."""
    out = []
    for pod in view.pods:
        if meta(pod).get("namespace") != ISTIO_NAMESPACE or not pod_running(pod):
            continue
        app = (meta(pod).get("labels") or {}).get("app")
        if app == INGRESS_APP:
            out.append(("ingress-gateway", pod))
        elif app == EGRESS_APP:
            out.append(("egress-gateway", pod))
    return out


def lb_services(view: ClusterView) -> list[Obj]:
    return [s for s in view.services if spec(s).get("type") == "LoadBalancer"]


def lb_ip(cluster_index: int, slot: int) -> str:
    return f"127.100.{int(cluster_index)}.{int(slot)}"


def lb_hostname(service: str, namespace: str, cluster: str) -> str:
    return f"{service}.{namespace}.{cluster}.{LB_DOMAIN}"


def assign_lb_slots(existing: dict[str, int], services: list[str]) -> dict[str, int]:
    """Stable load balancer slots (the K of 127.100.N.K) per `ns/name`.

    Slots are never reused while recorded; slot 1 is kept for istio-system/istio-ingressgateway.
    """
    result = dict(existing)
    used = set(result.values())
    for k in sorted(services, key=lambda s: (s != INGRESS_SERVICE_KEY,)):
        if k in result:
            continue
        if k == INGRESS_SERVICE_KEY and 1 not in used:
            slot = 1
        else:
            slot = next((i for i in range(2, 255) if i not in used), None)
            if slot is None:
                continue
        result[k] = slot
        used.add(slot)
    return result


def _lab_owned_ingress(entry: Obj) -> bool:
    ip = parse_ip(entry.get("ip") or "")
    return bool((ip and ip in ipaddress.ip_network("127.100.0.0/16"))
                or (entry.get("hostname") or "").endswith("." + LB_DOMAIN))


def desired_lb_ingress(cluster: Obj, svc: Obj, slot: int | None) -> list[Obj] | None:
    """status.loadBalancer.ingress for a LoadBalancer Service; None: leave it as it is.

    In `none` mode an address the lab gave earlier (the cluster was in another mode) is
    taken back (`[]`: pending again); anything else is left alone.
    """
    mode = cluster.get("lb", "ip")
    if mode == "none":
        have = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [] if have and all(_lab_owned_ingress(i) for i in have) else None
    if slot is None:
        return None
    if mode == "hostname":
        return [{"hostname": lb_hostname(meta(svc)["name"], meta(svc)["namespace"], cluster["name"])}]
    return [{"ip": lb_ip(cluster["index"], slot), "ipMode": "VIP"}]


def lab_hosts_for(cluster: Obj, slots: dict[str, int]) -> dict[str, str]:
    """Lab resolver entries of a cluster in `hostname` mode: name -> load balancer IP."""
    if cluster.get("lb") != "hostname":
        return {}
    out = {}
    for k, slot in slots.items():
        ns, name = k.split("/", 1)
        out[lb_hostname(name, ns, cluster["name"])] = lb_ip(cluster["index"], slot)
        if k == INGRESS_SERVICE_KEY:
            out[f"gateway.{cluster['name']}.{LB_DOMAIN}"] = lb_ip(cluster["index"], slot)
    return out


def _external_ip_servable(ip: str) -> bool:
    """spec.externalIPs the lab can serve: loopback, outside the VIP pool and the pod range."""
    addr = parse_ip(ip)
    return bool(addr and addr in LOOPBACK and not ip.startswith("127.255.") and not ip.startswith("127.18.")
                and not ip.startswith("127.60."))


def desired_listeners(view: ClusterView, slots: dict[str, int]) -> dict[tuple[str, int], tuple]:
    """(ip, port) -> listener spec for everything this cluster serves on loopback."""
    c = view.cluster
    out: dict[tuple[str, int], tuple] = {}
    sp_host, sp_port = c["sidecar_proxy"].rsplit(":", 1)
    out[(sp_host, int(sp_port))] = ("sidecar", view.name)
    for svc in view.services:
        stype = spec(svc).get("type")
        ns, name = meta(svc)["namespace"], meta(svc)["name"]
        external = [ip for ip in spec(svc).get("externalIPs") or [] if _external_ip_servable(ip)]
        if stype not in ("NodePort", "LoadBalancer") and not external:
            continue
        slot = slots.get(f"{ns}/{name}")
        for p in spec(svc).get("ports") or []:
            if (p.get("protocol") or "TCP") != "TCP":
                continue
            for ip in external:  # kube-proxy serves spec.externalIPs like a load balancer address
                out.setdefault((ip, int(p["port"])), ("lb", view.name, ns, name, int(p["port"])))
            if p.get("nodePort"):
                out.setdefault((c["node_ip"], int(p["nodePort"])),
                               ("nodeport", view.name, ns, name, int(p["port"])))
            if stype == "LoadBalancer" and slot and c.get("lb", "ip") != "none":
                out.setdefault((lb_ip(c["index"], slot), int(p["port"])),
                               ("lb", view.name, ns, name, int(p["port"])))
    for kind, pod in gateway_pods(view):
        ports = [p.get("containerPort") for ct in spec(pod).get("containers") or []
                 for p in ct.get("ports") or []]
        ip = map_address(pod["status"]["podIP"])
        if GATEWAY_PORT in ports or not ports:
            out.setdefault((ip, GATEWAY_PORT), (kind, view.name, meta(pod)["namespace"], meta(pod)["name"]))
        if STATUS_PORT in ports:
            out.setdefault((ip, STATUS_PORT),
                           ("status-port", view.name, meta(pod)["namespace"], meta(pod)["name"], kind))
    return out
