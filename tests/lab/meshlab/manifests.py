"""The "before you begin" state of the seed, per lab cluster, as plain objects.

Each lab cluster stands for one Istio version (`istio_version`): istiod's image tag, the
gateways' env, the `.global` DNS mechanism of that era and the networking.istio.io API
versions it served all follow from it, so that preflight meets the objects it reads on a
real cluster. `without` names pieces to leave out so that preflight failures can be tested:

  dns            no `.global` DNS (no CoreDNS stub domain, no Istio DNS capture)
  gateway        no AUTO_PASSTHROUGH Gateway for *.global on 15443
  destinationrule  no *.global ISTIO_MUTUAL DestinationRule
  ingressgateway no istio-ingressgateway Service/Deployment
  egressgateway  no istio-egressgateway Service/Deployment
  egress-network-view  egress gateway without ISTIO_META_REQUESTED_NETWORK_VIEW=external
  legacy-flag    istiod without PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH (matters from 1.8.6)
"""

from __future__ import annotations

from typing import Any

WITHOUT_CHOICES = frozenset({
    "dns", "gateway", "destinationrule", "ingressgateway", "egressgateway",
    "egress-network-view", "legacy-flag",
})

LAB_LABEL = {"lab.meshlink.io/part-of": "lab"}


def parse_version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split("-")[0].split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def served_networking_versions(istio_version: str) -> set[str]:
    """networking.istio.io versions an Istio release served: v1beta1 from 1.5, v1 from 1.22."""
    ver = parse_version(istio_version)
    served = {"v1alpha3"}
    if ver >= (1, 5, 0):
        served.add("v1beta1")
    if ver >= (1, 22, 0):
        served.add("v1")
    return served


def needs_legacy_flag(istio_version: str) -> bool:
    """From 1.8.6 (and 1.9.5) `.global` AUTO_PASSTHROUGH needs the legacy flag on istiod."""
    ver = parse_version(istio_version)
    return ver >= (1, 9, 5) or (1, 8, 6) <= ver < (1, 9, 0)


def istio_crds_for_version(crds: list[dict[str, Any]], istio_version: str) -> list[dict[str, Any]]:
    """Istio's CRDs with only the networking versions that release served marked served."""
    served = served_networking_versions(istio_version)
    out = []
    for crd in crds:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        if crd["spec"]["group"] == "networking.istio.io":
            for version in crd["spec"]["versions"]:
                # the storage version must stay served for the API server to accept the CRD
                version["served"] = version["name"] in served or bool(version.get("storage"))
        crd.setdefault("metadata", {}).setdefault("labels", {}).update(LAB_LABEL)
        out.append(crd)
    return out


def _meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": {**LAB_LABEL, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _deployment(name: str, labels: dict, image: str, ports: list[int], env: dict[str, str]) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(name, "istio-system", labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{
                        "name": "istio-proxy" if "gateway" in name else "discovery",
                        "image": image,
                        "ports": [{"containerPort": p} for p in ports],
                        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                    }],
                },
            },
        },
    }


def _gateway_service(name: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(name, "istio-system", labels),
        "spec": {
            "type": "LoadBalancer",
            "selector": labels,
            "ports": [
                {"name": "status-port", "port": 15021, "targetPort": 15021},
                {"name": "http2", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 8443},
                {"name": "tls", "port": 15443, "targetPort": 15443},
            ],
        },
    }


def corefile(istiocoredns_ip: str | None) -> str:
    """The cluster's CoreDNS Corefile, with the `global:53` stub domain when given."""
    base = (
        ".:53 {\n    errors\n    health\n    ready\n"
        "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n"
        "       fallthrough in-addr.arpa ip6.arpa\n    }\n"
        "    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n"
        "    reload\n    loadbalance\n}\n"
    )
    if istiocoredns_ip:
        base += f"global:53 {{\n    errors\n    cache 30\n    forward . {istiocoredns_ip}:53\n}}\n"
    return base


def node(name: str, node_ip: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {**LAB_LABEL, "kubernetes.io/hostname": name, "kubernetes.io/role": "agent",
                       "type": "kwok"},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": node_ip}],
        },
    }


def before_you_begin(index: int, istio_version: str, without: set[str]) -> list[dict]:
    """Objects of the seed's "before you begin" for lab cluster `index`, minus `without`."""
    unknown = without - WITHOUT_CHOICES
    if unknown:
        raise ValueError(f"unknown LAB_WITHOUT item(s) {sorted(unknown)}; choose from {sorted(WITHOUT_CHOICES)}")
    ver = parse_version(istio_version)
    objs: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("istio-system")},
    ]
    istiod_env = {"PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH": "true"} if (
        needs_legacy_flag(istio_version) and "legacy-flag" not in without) else {}
    objs.append(_deployment("istiod", {"app": "istiod", "istio": "pilot"},
                            f"docker.io/istio/pilot:{istio_version}", [15010, 15012, 15017], istiod_env))

    mesh_lines = ["defaultConfig:", "  proxyMetadata: {}"]
    istiocoredns_ip = None
    if "dns" not in without:
        if ver < (1, 8, 0):
            # Istio up to 1.7: istiocoredns plus a CoreDNS stub domain for `global`.
            istiocoredns_ip = f"198.19.{index}.53"
            objs.append(_deployment("istiocoredns", {"app": "istiocoredns"},
                                    "docker.io/coredns/coredns:1.6.2", [53], {}))
            objs.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": _meta("istiocoredns", "istio-system", {"app": "istiocoredns"}),
                "spec": {"clusterIP": istiocoredns_ip, "selector": {"app": "istiocoredns"},
                         "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                   {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
            })
        else:
            # From 1.8 the sidecar's DNS proxy answers `.global` names from ServiceEntries.
            mesh_lines = ["defaultConfig:", "  proxyMetadata:",
                          '    ISTIO_META_DNS_CAPTURE: "true"']
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("istio", "istio-system"),
                 "data": {"mesh": "\n".join(mesh_lines) + "\n"}})
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("coredns", "kube-system"),
                 "data": {"Corefile": corefile(istiocoredns_ip)}})

    gateway_env = {"ISTIO_META_ROUTER_MODE": "sni-dnat"}
    if "ingressgateway" not in without:
        labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
        objs.append(_gateway_service("istio-ingressgateway", labels))
        objs.append(_deployment("istio-ingressgateway", labels, f"docker.io/istio/proxyv2:{istio_version}",
                                [8080, 8443, 15021, 15443], gateway_env))
    if "egressgateway" not in without:
        labels = {"app": "istio-egressgateway", "istio": "egressgateway"}
        env = dict(gateway_env)
        if "egress-network-view" not in without:
            env["ISTIO_META_REQUESTED_NETWORK_VIEW"] = "external"
        objs.append(_gateway_service("istio-egressgateway", labels))
        objs.append(_deployment("istio-egressgateway", labels, f"docker.io/istio/proxyv2:{istio_version}",
                                [8080, 8443, 15021, 15443], env))
    if "gateway" not in without:
        objs.append({
            "apiVersion": "networking.istio.io/v1alpha3", "kind": "Gateway",
            "metadata": _meta("istio-multicluster-ingressgateway", "istio-system"),
            "spec": {"selector": {"istio": "ingressgateway"},
                     "servers": [{"hosts": ["*.global"],
                                  "port": {"name": "tls", "number": 15443, "protocol": "TLS"},
                                  "tls": {"mode": "AUTO_PASSTHROUGH"}}]},
        })
    if "destinationrule" not in without:
        objs.append({
            "apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule",
            "metadata": _meta("istio-multicluster-destinationrule", "istio-system"),
            "spec": {"host": "*.global", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        })
    return objs
