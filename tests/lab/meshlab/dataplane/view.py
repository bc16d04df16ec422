"""The Kubernetes object view of one lab cluster: objects as plain dicts, with indexes.

Nothing here does I/O. A `ClusterView` is one cluster's objects as read from its API server
(the JSON of `kubectl get -o json`). Also here: the small vocabulary every concern shares
(`RouteError`, `Target`), Services to ready endpoints the way kube-proxy sees them
(EndpointSlices), and which pods run what (httpbin workloads, gateway pods).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable

from .net import map_address

Obj = dict[str, Any]

ISTIO_NAMESPACE = "istio-system"
INGRESS_APP = "istio-ingressgateway"
EGRESS_APP = "istio-egressgateway"
EASTWEST_APP = "istio-eastwestgateway"  # current Istio's east-west gateway (routed by its xDS)
GATEWAY_PORT = 15443
STATUS_PORT = 15021  # the gateways' health endpoint (GET /healthz/ready)
CLUSTER_DOMAIN = "svc.cluster.local"


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
    sni: str | None = None  # this target's own emulated mTLS SNI ("" = plain text); None: the plan's


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


def labels_match(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (selector or {}).items())


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
    """("ingress-gateway"|"egress-gateway"|"eastwest-gateway", pod) for running gateway pods in
    istio-system."""
    out = []
    for pod in view.pods:
        if meta(pod).get("namespace") != ISTIO_NAMESPACE or not pod_running(pod):
            continue
        app = (meta(pod).get("labels") or {}).get("app")
        if app == INGRESS_APP:
            out.append(("ingress-gateway", pod))
        elif app == EGRESS_APP:
            out.append(("egress-gateway", pod))
        elif app == EASTWEST_APP:
            out.append(("eastwest-gateway", pod))
    return out
