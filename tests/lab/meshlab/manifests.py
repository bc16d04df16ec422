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
  cacerts        no `istio-system/cacerts` Secret (istiod falls back to its self-signed CA)
  shared-root    `cacerts` from a root CA of this cluster alone instead of the lab's one root

A cluster whose Istio version is >= 1.22 serves networking.istio.io/v1 and is "current"
(`current_istio`): it gets what `istioctl install` (default profile, or the remote profile)
and `gen-eastwest-gateway.sh` leave, minus what the collection's setup writes itself (the
istio-system network label, the cross-network Gateway, remote secrets, reader service
accounts). Its own `without` items (the seed's items above that have no meaning there are
ignored; `dns`, `ingressgateway`, `cacerts` and `shared-root` apply):

  eastwestgateway  no istio-eastwestgateway Service/Deployment
  gateway-network  the east-west gateway carries another network (`<network>-other`) in its
                   Service/pod label and REQUESTED_NETWORK_VIEW than the cluster's network
  shared-mesh-id   mesh config with a mesh ID of its own (`<mesh_id>-<cluster>`)
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

SEED_WITHOUT = frozenset({
    "dns", "gateway", "destinationrule", "ingressgateway", "egressgateway",
    "egress-network-view", "legacy-flag", "cacerts", "shared-root",
})
CURRENT_WITHOUT = frozenset({
    "dns", "ingressgateway", "cacerts", "shared-root", "eastwestgateway", "gateway-network", "shared-mesh-id",
})
WITHOUT_CHOICES = SEED_WITHOUT | CURRENT_WITHOUT

LAB_LABEL = {"lab.meshlink.io/part-of": "lab"}
NETWORK_LABEL = "topology.istio.io/network"
CONTROL_PLANE_ANNOTATION = "topology.istio.io/controlPlaneClusters"
# The real istiod's version (versions.ISTIOD) accepts these; the fakes stand for the declared one.
CURRENT_MIN = (1, 22, 0)


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


def is_current(istio_version: str) -> bool:
    """A "current Istio" cluster: serves networking.istio.io/v1, gets a real istiod."""
    return parse_version(istio_version) >= CURRENT_MIN


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


def _deployment(name: str, labels: dict, image: str, ports: list[int], env: dict[str, str],
                selector: dict | None = None, pod_labels: dict | None = None) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(name, "istio-system", labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector or labels},
            "template": {
                "metadata": {"labels": pod_labels or labels},
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


# ---------------------------------------------------------------- every cluster

def cacerts_secret(files: dict[str, bytes]) -> dict:
    """`istio-system/cacerts`: the plugged-in CA of the cluster's istiod (keys as Istio names them)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta("cacerts", "istio-system"),
            "data": {k: base64.b64encode(v).decode() for k, v in sorted(files.items())}}


def cluster_objects(c: dict[str, Any], cacerts: dict[str, bytes] | None, remotes: list[str] | tuple = ()) -> list[dict]:
    """Everything the lab installs in cluster `c` (an entry of clusters.json): the seed's
    "before you begin" or, for a current cluster, `current_istio`; plus its `cacerts`."""
    without = set(c.get("without", []))
    if is_current(c["istio_version"]):
        objs = current_istio(c, remotes)
    else:
        objs = before_you_begin(c["index"], c["istio_version"], without)
    if cacerts is not None and "cacerts" not in without:
        objs.append(cacerts_secret(cacerts))
    return objs


def possible_objects(c: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object the lab may install in `c`, whatever its flavour,
    role and `without`: what is not wanted now is deleted by `up`."""
    full = {**c, "without": [], "istio_role": "primary", "control_plane": c["name"]}
    objs = before_you_begin(c["index"], "1.7.8", set()) + before_you_begin(c["index"], "1.9.5", set())
    objs += current_istio({**full, "istio_version": "1.22.0"}, ["x"])
    objs.append(cacerts_secret({}))
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs}


# ---------------------------------------------------------------- current Istio (>= 1.22)

def mesh_config(mesh_id: str, dns_capture: bool) -> str:
    """The `mesh` key of ConfigMap istio-system/istio as the istiod chart renders it for a
    multi-network mesh (`meshConfig.defaultConfig.meshId` = values.global.meshID).

    DNS: `ISTIO_META_DNS_CAPTURE` (the sidecar's DNS proxy answers cross-cluster
    `.svc.cluster.local` names, which the multicluster docs recommend instead of stub Services);
    not `ISTIO_META_DNS_AUTO_ALLOCATE`: the current design has no ServiceEntries that would need
    allocated addresses (and istiod allocates them itself since 1.25)."""
    default: dict[str, Any] = {"discoveryAddress": "istiod.istio-system.svc:15012", "meshId": mesh_id,
                               "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"} if dns_capture else {}}
    return yaml.safe_dump({"defaultConfig": default, "enablePrometheusMerge": True,
                           "rootNamespace": "istio-system", "trustDomain": "cluster.local"}, sort_keys=True)


def current_istio(c: dict[str, Any], remotes: list[str] | tuple = ()) -> list[dict]:
    """What `istioctl install` (default profile on a primary, remote profile on a remote) and
    `gen-eastwest-gateway.sh --network <network>` leave in cluster `c`, minus what the
    collection's setup writes (istio-system's network label, Gateway cross-network-gateway,
    remote secrets, reader service accounts). `remotes`: clusters this primary is the control
    plane of (its istiod then runs with EXTERNAL_ISTIOD=true, `global.externalIstiod`)."""
    without = set(c.get("without", []))
    name, version, network = c["name"], c["istio_version"], c["network"]
    mesh_id = c["mesh_id"] if "shared-mesh-id" not in without else f"{c['mesh_id']}-{name}"
    namespace: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("istio-system")}
    if c["istio_role"] == "remote":
        namespace["metadata"]["annotations"] = {CONTROL_PLANE_ANNOTATION: c["control_plane"]}
    objs: list[dict] = [namespace]
    if c["istio_role"] == "primary":
        labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}
        env = {"CLUSTER_ID": name, "REVISION": "default", "PILOT_CERT_PROVIDER": "istiod"}
        if remotes:
            env["EXTERNAL_ISTIOD"] = "true"
        objs.append(_deployment("istiod", labels, f"docker.io/istio/pilot:{version}", [8080, 15010, 15012, 15014, 15017],
                                env, selector={"app": "istiod", "istio": "pilot"},
                                pod_labels={**labels, NETWORK_LABEL: network, "sidecar.istio.io/inject": "false"}))
        objs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": _meta("istiod", "istio-system", labels),
            "spec": {"selector": {"app": "istiod", "istio": "pilot"}, "ports": [
                {"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
                {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
                {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
                {"name": "http-monitoring", "port": 15014, "protocol": "TCP", "targetPort": 15014},
            ]},
        })
    else:
        objs.append(remote_istiod_service())
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("istio", "istio-system"),
                 "data": {"mesh": mesh_config(mesh_id, "dns" not in without), "meshNetworks": "networks: {}\n"}})
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("coredns", "kube-system"),
                 "data": {"Corefile": corefile(None)}})
    if "ingressgateway" not in without:
        labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
        objs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": _meta("istio-ingressgateway", "istio-system", labels),
            "spec": {"type": "LoadBalancer", "selector": labels, "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
            ]},
        })
        objs.append(_deployment("istio-ingressgateway", labels, f"docker.io/istio/proxyv2:{version}",
                                [8080, 8443, 15021, 15090], {}))
    if "eastwestgateway" not in without:
        gw_network = network if "gateway-network" not in without else f"{network}-other"
        selector = {"app": "istio-eastwestgateway", "istio": "eastwestgateway"}
        labels = {**selector, NETWORK_LABEL: gw_network}
        objs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": _meta("istio-eastwestgateway", "istio-system", labels),
            "spec": {"type": "LoadBalancer", "selector": selector, "ports": [
                {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                {"name": "tls", "port": 15443, "protocol": "TCP", "targetPort": 15443},
                {"name": "tls-istiod", "port": 15012, "protocol": "TCP", "targetPort": 15012},
                {"name": "tls-webhook", "port": 15017, "protocol": "TCP", "targetPort": 15017},
            ]},
        })
        objs.append(_deployment("istio-eastwestgateway", labels, f"docker.io/istio/proxyv2:{version}",
                                [15012, 15017, 15021, 15443, 15090],
                                {"ISTIO_META_REQUESTED_NETWORK_VIEW": gw_network, "ISTIO_META_ROUTER_MODE": "sni-dnat"},
                                selector=selector))
    return objs


def remote_istiod_service() -> dict:
    """The remote profile's Service `istiod` (chart istio-discovery, remote-istiod-service.yaml):
    no selector, 15012 and 443 -> 15017, how the remote's proxies and webhooks reach the primary.
    The chart's EndpointSlice beside it holds `global.remotePilotAddress`, the primary's east-west
    gateway address; in the lab that is a loopback load balancer address (127.100.N.K), which the
    API server refuses in an EndpointSlice or Endpoints ("may not be in the loopback range"), so
    the lab's Service has no endpoints (its proxies reach the primary's istiod on loopback)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta("istiod", "istio-system", {"istio.io/rev": "default", "app.kubernetes.io/name": "istiod"}),
        "spec": {"ports": [{"name": "tcp-istiod", "port": 15012, "protocol": "TCP"},
                           {"name": "tcp-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017}]},
    }


# ---------------------------------------------------------------- the real istiod's hooks

VALIDATION_GROUPS = ["extensions.istio.io", "networking.istio.io", "security.istio.io", "telemetry.istio.io"]


def validation_webhook(config_name: str, webhook_name: str, url: str, ready_url: str, *,
                       ca_bundle: str | None = None, failure_policy: str = "Ignore",
                       revision_label: bool = True, served_by: str = "") -> dict:
    """A ValidatingWebhookConfiguration for Istio's config kinds, calling istiod's `/validate`
    at `url` (istiod runs out of cluster on loopback, hence a URL rather than a Service).

    `revision_label` (istio.io/rev=default): the istiod of this cluster finds it, patches its
    caBundle and, once a dry-run invalid object is refused, sets failurePolicy Fail (as the
    istiod chart's webhook starts). Without it the lab sets `ca_bundle` and `failure_policy`.
    `ready_url` (an annotation) is what `lab up` checks before trusting the webhook: a webhook
    whose istiod does not answer is deleted, so that a dead istiod never blocks the lab."""
    labels = {"app": "istiod", "istio": "istiod"}
    if revision_label:
        labels["istio.io/rev"] = "default"
    meta = _meta(config_name, None, labels)
    meta["annotations"] = {"lab.meshlink.io/istiod-ready-url": ready_url, "lab.meshlink.io/served-by": served_by}
    client: dict[str, Any] = {"url": url}
    if ca_bundle:
        client["caBundle"] = ca_bundle
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": meta,
        "webhooks": [{
            "name": webhook_name, "clientConfig": client, "failurePolicy": failure_policy,
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 10,
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": VALIDATION_GROUPS,
                       "apiVersions": ["*"], "resources": ["*"], "scope": "*"}],
        }],
    }


PORT_FORWARD_NAME = "meshlink-lab-istiod"
# pod port in istio-system -> the istiod port it reaches (keys of istiod.ports())
PORT_FORWARDS = {15010: "grpc", 15012: "secure_grpc", 15014: "monitoring", 15017: "https"}


def istiod_port_forward(ports: dict[str, int]) -> dict:
    """kwok ClusterPortForward: `kubectl port-forward` to a pod in istio-system (the istiod pod)
    reaches the real istiod on loopback, its ports mapped like the istiod container's."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
        "metadata": {"name": PORT_FORWARD_NAME, "labels": dict(LAB_LABEL)},
        "spec": {"selector": {"matchNamespaces": ["istio-system"]},
                 "forwards": [{"ports": [pod_port], "target": {"address": "127.0.0.1", "port": ports[key]}}
                              for pod_port, key in sorted(PORT_FORWARDS.items())]},
    }
