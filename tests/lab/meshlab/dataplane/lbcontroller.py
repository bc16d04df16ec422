"""The lab's load balancer controller (MetalLB stand-in) and kube-proxy: pure decisions.

Stable slots K of the load balancer addresses 127.100.N.K, the `status.loadBalancer.ingress`
each LoadBalancer Service should have per the cluster's `lb` mode, the lab resolver's names
(`lb-hosts.json`), and every loopback listener a cluster needs (sidecar, load balancer
addresses, nodePorts, externalIPs, gateway pods). Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress

from .net import LOOPBACK, map_address, parse_ip
from .view import (GATEWAY_PORT, INGRESS_APP, ISTIO_NAMESPACE, STATUS_PORT, ClusterView, Obj, RouteError,
                   Target, endpoint_targets, gateway_pods, meta, pick_order, service_endpoints, spec)

LB_DOMAIN = "lab.meshlink.test"
INGRESS_SERVICE_KEY = f"{ISTIO_NAMESPACE}/{INGRESS_APP}"


def plan_service_forward(view: ClusterView, namespace: str, name: str, port: int, seed: str) -> list[Target]:
    """kube-proxy: a Service port (via LB IP or nodePort) to its ready endpoints."""
    eps = service_endpoints(view, namespace, name, port)
    if not eps:
        raise RouteError(f"Service {namespace}/{name} port {port} has no ready endpoints", "no-endpoints")
    return pick_order(endpoint_targets(eps, ""), seed)


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
