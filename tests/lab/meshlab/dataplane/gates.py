"""The gates of an Istio version and of a cluster's DNS: pure functions over a `ClusterView`.

Whose istiod serves the cluster's sidecars (seed: its own istiod Deployment; current: the
`control_plane` of clusters.json, so a remote's pods are its primary's proxies), which Istio
version a cluster runs (istiod's image tag) and what that version allows
(`.global` AUTO_PASSTHROUGH, loopback VIPs); which names a pod of the cluster can resolve
(CoreDNS `global:53` stub domain, the sidecar's DNS capture, kube-dns Service names).
A name that does not resolve raises `RouteError(kind="dns", status=None)`.
"""

from __future__ import annotations

import ipaddress
import re

import yaml

from .net import LOOPBACK, parse_ip
from .view import (CLUSTER_DOMAIN, ISTIO_NAMESPACE, ClusterView, Obj, RouteError, key, spec)


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


def istiod(view: ClusterView) -> Obj | None:
    return view.deployment(ISTIO_NAMESPACE, "istiod") or view.deployment(ISTIO_NAMESPACE, "istio-pilot")


def sidecar_control_plane(view: ClusterView) -> tuple[str | None, str]:
    """(the cluster whose istiod serves the sidecars of this cluster's pods, how that was decided);
    (None, why) when its pods have no sidecar.

    Seed-era clusters: their own istiod Deployment (`istio-system/istiod` or `istio-pilot`); none
    means no sidecar and no mesh DNS. Current clusters: `control_plane` of clusters.json, itself
    for a primary, its primary for a remote, which rightly has no istiod Deployment (the remote
    profile installs none): that cluster's real istiod serves its pods by xDS."""
    c = view.cluster
    if c.get("flavour") == "current":
        plane = c.get("control_plane") or (view.name if c.get("istio_role", "primary") == "primary" else "")
        if not plane:
            return None, f"{view.name} is a remote that names no control plane (clusters.json): no sidecar"
        if plane == view.name:
            return plane, f"the istiod of {plane}"
        return plane, f"the istiod of its primary {plane} ({view.name} is a remote)"
    dep = istiod(view)
    if dep is None:
        return None, f"no istiod Deployment in {ISTIO_NAMESPACE} of {view.name}: no sidecar, no mesh DNS"
    return view.name, f"istiod Deployment {key(dep)}"


def istio_version(view: ClusterView) -> tuple[int, int, int] | None:
    """The Istio version a cluster runs: the image tag of istiod's container; for a current
    cluster without one (a remote: its primary's istiod serves it), the version clusters.json
    declares for it."""
    dep = istiod(view)
    if not dep:
        if view.cluster.get("flavour") == "current":
            return parse_version(view.cluster.get("istio_version"))
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
