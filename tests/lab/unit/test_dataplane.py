"""Unit tests of the lab's emulated data plane: the pure routing rules (no cluster, no sockets
except the dial-refusal tests on loopback)."""

from __future__ import annotations

import copy
import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package

from meshlab.dataplane import hops, net, rules, wire  # noqa: E402
from meshlab.dataplane.rules import ClusterView, RouteError  # noqa: E402

# ---------------------------------------------------------------- objects of a two-cluster lab


def cluster_cfg(i: int, lb: str = "ip") -> dict:
    return {"name": f"cluster{i}", "index": i, "context": f"cluster{i}", "lb": lb,
            "istio_version": "1.7.8", "pod_cidr": f"198.18.{i}.0/24", "service_cidr": f"198.19.{i}.0/24",
            "node_ip": f"127.50.{i}.1", "sidecar_proxy": f"127.60.{i}.1:15001"}


def _meta(ns, name, labels=None, created="2026-01-01T00:00:00Z"):
    m = {"namespace": ns, "name": name, "uid": f"uid-{ns}-{name}", "creationTimestamp": created}
    if labels:
        m["labels"] = labels
    return m


def pod(ns, name, ip, labels=None, image="docker.io/kennethreitz/httpbin", ports=(80,), env=None,
        phase="Running"):
    c = {"name": "main", "image": image, "ports": [{"containerPort": p} for p in ports]}
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"metadata": _meta(ns, name, labels), "spec": {"containers": [c]},
            "status": {"phase": phase, "podIP": ip}}


def deployment(ns, name, image, env=None, labels=None):
    c = {"name": "discovery" if name == "istiod" else "istio-proxy", "image": image,
         "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    return {"metadata": _meta(ns, name), "spec": {"template": {"metadata": {"labels": labels or {}},
                                                                "spec": {"containers": [c]}}}}


def service(ns, name, ports, cluster_ip, stype="ClusterIP", selector=None):
    return {"metadata": _meta(ns, name),
            "spec": {"type": stype, "clusterIP": cluster_ip, "selector": selector or {"app": name},
                     "ports": [dict(p, protocol="TCP") for p in ports]}}


def eslice(ns, svc, ports, endpoints, ready=True):
    return {"metadata": _meta(ns, f"{svc}-abcde", {"kubernetes.io/service-name": svc}),
            "addressType": "IPv4",
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "namespace": ns, "name": podname}}
                          for ip, podname in endpoints]}


GW_PORTS = [{"name": "status-port", "port": 15021, "targetPort": 15021, "nodePort": 31021},
            {"name": "tls", "port": 15443, "targetPort": 15443, "nodePort": 31443}]
COREFILE = ".:53 {\n    errors\n    forward . /etc/resolv.conf\n}\nglobal:53 {\n    errors\n    cache 30\n" \
           "    forward . 198.19.1.53:53\n}\n"


def istio_base(i: int, version: str = "1.7.8", istiod_env=None, egress_env=None) -> dict:
    """The seed's "before you begin" objects of lab cluster `i`."""
    ing_labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    egr_labels = {"app": "istio-egressgateway", "istio": "egressgateway"}
    return {
        "deployments": [
            deployment("istio-system", "istiod", f"docker.io/istio/pilot:{version}", istiod_env),
            deployment("istio-system", "istio-egressgateway", f"docker.io/istio/proxyv2:{version}",
                       {"ISTIO_META_REQUESTED_NETWORK_VIEW": "external"} if egress_env is None else egress_env),
        ],
        "pods": [
            pod("istio-system", "istio-ingressgateway-aaa", f"198.18.{i}.10", ing_labels,
                image=f"docker.io/istio/proxyv2:{version}", ports=(8080, 15021, 15443)),
            pod("istio-system", "istio-egressgateway-bbb", f"198.18.{i}.11", egr_labels,
                image=f"docker.io/istio/proxyv2:{version}", ports=(8080, 15021, 15443)),
        ],
        "services": [
            service("istio-system", "istio-ingressgateway", GW_PORTS, f"198.19.{i}.10", "LoadBalancer", ing_labels),
            service("istio-system", "istio-egressgateway", [dict(p, nodePort=p["nodePort"] + 1000) for p in GW_PORTS],
                    f"198.19.{i}.11", "LoadBalancer", egr_labels),
        ],
        "endpointslices": [
            eslice("istio-system", "istio-ingressgateway", [("status-port", 15021), ("tls", 15443)],
                   [(f"198.18.{i}.10", "istio-ingressgateway-aaa")]),
            eslice("istio-system", "istio-egressgateway", [("status-port", 15021), ("tls", 15443)],
                   [(f"198.18.{i}.11", "istio-egressgateway-bbb")]),
        ],
        "gateways": [{"metadata": _meta("istio-system", "istio-multicluster-ingressgateway"),
                      "spec": {"selector": {"istio": "ingressgateway"},
                               "servers": [{"hosts": ["*.global"], "tls": {"mode": "AUTO_PASSTHROUGH"},
                                            "port": {"name": "tls", "number": 15443, "protocol": "TLS"}}]}}],
        "destinationrules": [{"metadata": _meta("istio-system", "istio-multicluster-destinationrule"),
                              "spec": {"host": "*.global", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}}],
        "serviceentries": [], "virtualservices": [],
        "configmaps": {"kube-system/coredns": {"data": {"Corefile": COREFILE}},
                       "istio-system/istio": {"data": {"mesh": "defaultConfig:\n  proxyMetadata: {}\n"}}},
    }


def seed_se(address="127.100.2.1", port=15443, vip="240.0.0.2", endpoints=None) -> dict:
    return {"metadata": _meta("foo", "httpbin-bar"),
            "spec": {"hosts": ["httpbin.bar.global"], "location": "MESH_INTERNAL",
                     "ports": [{"name": "http1", "number": 8000, "protocol": "http"}],
                     "resolution": "DNS", "addresses": [vip],
                     "endpoints": endpoints or [{"address": address, "ports": {"http1": port}}]}}


def source_objects(i: int = 2, **kw) -> dict:
    objs = istio_base(i, **kw)
    objs["pods"] += [pod("bar", "httpbin-v1", f"198.18.{i}.20", {"app": "httpbin", "version": "v1"}),
                     pod("bar", "httpbin-v2", f"198.18.{i}.21", {"app": "httpbin", "version": "v2"})]
    objs["services"].append(service("bar", "httpbin", [{"name": "http", "port": 8000, "targetPort": 80}],
                                    f"198.19.{i}.20"))
    objs["endpointslices"].append(eslice("bar", "httpbin", [("http", 80)],
                                         [(f"198.18.{i}.20", "httpbin-v1"), (f"198.18.{i}.21", "httpbin-v2")]))
    return objs


def consumer_objects(i: int = 1, se=None, **kw) -> dict:
    objs = istio_base(i, **kw)
    objs["pods"].append(pod("foo", "sleep-1", f"198.18.{i}.30", {"app": "sleep"}, image="curlimages/curl"))
    objs["serviceentries"].append(se if se is not None else seed_se())
    return objs


def view(i: int, objs: dict, lb: str = "ip") -> ClusterView:
    return ClusterView(cluster_cfg(i, lb), objs)


REQ = {"method": "GET", "path": "/ip", "port": 8000, "headers": {}}


# ---------------------------------------------------------------- network rule


@pytest.mark.parametrize("address, mapped", [
    ("198.18.2.5", "127.18.2.5"), ("198.18.1.254", "127.18.1.254"), ("127.100.2.1", "127.100.2.1"),
    ("198.19.1.5", "198.19.1.5"), ("gateway.example", "gateway.example"),
])
def test_map_address(address, mapped):
    assert net.map_address(address) == mapped


@pytest.mark.parametrize("address", [
    "10.0.0.1", "10.96.0.10", "172.16.0.1", "172.31.255.1", "192.168.1.1", "240.0.0.10", "240.240.0.1",
    "8.8.8.8", "1.1.1.1", "198.19.1.5", "224.0.0.1", "0.0.0.0", "127.255.0.2", "::1",
    "httpbin.bar.global", "localhost", "",
])
def test_dial_refuses_everything_but_loopback(address):
    before = len(net.refusals)
    with pytest.raises(net.DialRefused):
        net.dial(address, 80, timeout=0.2)
    assert len(net.refusals) == min(before + 1, 100) or net.refusals[-1].startswith("refused")


@pytest.mark.parametrize("port", [0, 70000, "x"])
def test_dial_refuses_bad_ports(port):
    with pytest.raises(net.DialRefused):
        net.dialable("127.0.0.1", port)


@pytest.mark.parametrize("address, expected", [
    ("127.100.2.1", ("127.100.2.1", 15443)), ("198.18.2.5", ("127.18.2.5", 15443)),
    ("127.50.1.1", ("127.50.1.1", 15443)),
])
def test_dialable_maps_and_allows_loopback(address, expected):
    assert net.dialable(address, 15443) == expected


def test_dial_connects_to_a_mapped_pod_address():
    srv = net.listen("127.18.250.7", 0)
    try:
        port = srv.getsockname()[1]
        conn = net.dial("198.18.250.7", port, timeout=1)
        peer, _ = srv.accept()
        assert conn.getpeername() == ("127.18.250.7", port)
        conn.close()
        peer.close()
    finally:
        srv.close()


def test_listen_refuses_non_loopback():
    with pytest.raises(net.DialRefused):
        net.listen("0.0.0.0", 0)


# ---------------------------------------------------------------- SNI and the mTLS preamble


@pytest.mark.parametrize("port, subset, host, sni", [
    (8000, "", "httpbin.bar.global", "outbound_.8000_._.httpbin.bar.global"),
    (8000, None, "httpbin.bar.global", "outbound_.8000_._.httpbin.bar.global"),
    (8000, "v1", "httpbin.bar.global", "outbound_.8000_.v1_.httpbin.bar.global"),
    (80, "beta", "httpbin.bar.svc.cluster.local", "outbound_.80_.beta_.httpbin.bar.svc.cluster.local"),
])
def test_sni_build_and_parse(port, subset, host, sni):
    assert rules.build_sni(port, subset, host) == sni
    parsed = rules.parse_sni(sni)
    assert (parsed.direction, parsed.port, parsed.subset, parsed.host) == ("outbound", port, subset or "", host)


@pytest.mark.parametrize("sni", ["", "httpbin.bar.global", "outbound_.x_._.a.global", "outbound_.8000_.a"])
def test_sni_parse_rejects(sni):
    assert rules.parse_sni(sni) is None


def test_preamble_round_trip():
    line = wire.encode_preamble("outbound_.8000_._.httpbin.bar.global", "abc-123")
    assert line == b"MESHLINK-SNI outbound_.8000_._.httpbin.bar.global abc-123\r\n"
    assert wire.parse_preamble(line) == ("outbound_.8000_._.httpbin.bar.global", "abc-123")
    with pytest.raises(wire.ProtocolError):
        wire.parse_preamble(b"GET /ip HTTP/1.1\r\n")
    with pytest.raises(ValueError):
        wire.encode_preamble("bad sni", "x")


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize("text, version", [
    ("1.7.8", (1, 7, 8)), ("1.9", (1, 9, 0)), ("v1.10.0-beta.1", (1, 10, 0)), ("1.7.8-distroless", (1, 7, 8)),
    ("latest", None), ("", None),
])
def test_parse_version(text, version):
    assert rules.parse_version(text) == version


@pytest.mark.parametrize("image, version", [
    ("docker.io/istio/pilot:1.7.8", (1, 7, 8)), ("localhost:5000/istio/pilot:1.20.1", (1, 20, 1)),
    ("istio/pilot", None), ("istio/pilot@sha256:abc", None),
])
def test_image_version(image, version):
    assert rules.image_version(image) == version


@pytest.mark.parametrize("version, flag, ok", [
    ((1, 7, 8), False, True), ((1, 8, 5), False, True), ((1, 8, 6), False, False), ((1, 8, 6), True, True),
    ((1, 9, 4), False, True), ((1, 9, 5), False, False), ((1, 9, 5), True, True), ((1, 10, 0), False, False),
    ((1, 18, 7), True, True), ((1, 19, 0), True, False), ((1, 24, 2), True, False), (None, True, False),
])
def test_legacy_passthrough_gate(version, flag, ok):
    env = {"PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH": "true"} if flag else {}
    assert rules.legacy_passthrough_allowed(version, env)[0] is ok


@pytest.mark.parametrize("version, vip, ok", [
    ((1, 2, 9), "127.255.0.2", True), ((1, 3, 0), "127.255.0.2", False), ((1, 7, 8), "127.255.0.2", False),
    ((1, 7, 8), "240.0.0.2", True), ((1, 24, 0), "240.0.0.2", True), ((1, 0, 0), "240.0.0.2", True),
    (None, "127.255.0.2", False),
])
def test_loopback_vip_gate(version, vip, ok):
    assert rules.loopback_vip_allowed(version, vip)[0] is ok


def test_istio_version_from_istiod_image():
    assert rules.istio_version(view(1, consumer_objects(version="1.9.5"))) == (1, 9, 5)
    objs = consumer_objects()
    objs["deployments"] = [d for d in objs["deployments"] if d["metadata"]["name"] != "istiod"]
    assert rules.istio_version(view(1, objs)) is None


# ---------------------------------------------------------------- DNS


@pytest.mark.parametrize("corefile, has", [
    (COREFILE, True),
    (".:53 {\n forward . /etc/resolv.conf\n}\n", False),
    ("global {\n forward . 1.2.3.4\n}", True),
    ("global.:53 {\n forward . 1.2.3.4\n}", True),
    ("dns://global:53 {\n}", True),
    ("global:5353 {\n}", False),
    ("# global:53 {\n.:53 {\n}", False),
    (".:53 {\n  hosts {\n    1.2.3.4 global\n  }\n}", False),
    ("cluster.local:53 global:53 {\n}", True),
])
def test_corefile_global_block(corefile, has):
    assert rules.corefile_has_global(corefile) is has


@pytest.mark.parametrize("mesh, on", [
    ('defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n', True),
    ("defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: true\n", True),
    ('defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "false"\n', False),
    ("defaultConfig:\n  proxyMetadata: {}\n", False),
    ("", False), ("- not a mapping", False), ("{{{", False),
])
def test_mesh_dns_capture(mesh, on):
    assert rules.mesh_dns_capture(mesh) is on


def test_global_name_resolves_to_the_first_se_address():
    v = view(1, consumer_objects())
    assert rules.resolve_name(v, "httpbin.bar.global", {})[0] == "240.0.0.2"


def test_global_name_does_not_resolve_without_global_dns():
    objs = consumer_objects()
    objs["configmaps"]["kube-system/coredns"]["data"]["Corefile"] = ".:53 {\n}\n"
    with pytest.raises(RouteError) as e:
        rules.resolve_name(view(1, objs), "httpbin.bar.global", {})
    assert e.value.kind == "dns" and e.value.status is None
    assert "Could not resolve host" in e.value.message


def test_global_name_resolves_with_dns_capture_only():
    objs = consumer_objects()
    objs["configmaps"]["kube-system/coredns"] = None
    objs["configmaps"]["istio-system/istio"]["data"]["mesh"] = (
        'defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n')
    assert rules.resolve_name(view(1, objs), "httpbin.bar.global", {})[0] == "240.0.0.2"


def test_global_name_without_se_address_does_not_resolve():
    objs = consumer_objects(se=seed_se())
    objs["serviceentries"][0]["spec"]["addresses"] = []
    with pytest.raises(RouteError) as e:
        rules.resolve_name(view(1, objs), "httpbin.bar.global", {})
    assert e.value.kind == "dns"


def test_other_names():
    v = view(2, source_objects())
    assert rules.resolve_name(v, "httpbin.bar.svc.cluster.local", {})[0] == "198.19.2.20"
    assert rules.resolve_name(v, "httpbin.bar", {})[0] == "198.19.2.20"
    assert rules.resolve_name(v, "240.0.0.9", {})[0] == "240.0.0.9"
    assert rules.resolve_name(v, "gw.cluster1.lab.meshlink.test", {"gw.cluster1.lab.meshlink.test": "127.100.1.1"})[0] \
        == "127.100.1.1"
    with pytest.raises(RouteError):
        rules.resolve_name(v, "example.com", {})


# ---------------------------------------------------------------- ServiceEntry match, subsets, network view


def test_se_match_by_address_and_port():
    v = view(1, consumer_objects())
    se, port = rules.match_service_entry(v, "240.0.0.2", 8000)
    assert se["metadata"]["name"] == "httpbin-bar" and port["name"] == "http1"
    assert rules.match_service_entry(v, "240.0.0.2", 8001) is None
    assert rules.match_service_entry(v, "240.0.0.3", 8000) is None


def test_se_match_cidr_address():
    se = seed_se(vip="240.0.1.0/24")
    v = view(1, consumer_objects(se=se))
    assert rules.match_service_entry(v, "240.0.1.77", 8000) is not None


def _vs(host, routes, ns="foo", gateways=None):
    s = {"hosts": [host], "http": routes}
    if gateways:
        s["gateways"] = gateways
    return {"metadata": _meta(ns, "vs"), "spec": s}


def _dr(host, subsets, ns="foo", tls="ISTIO_MUTUAL", name="dr"):
    s = {"host": host, "subsets": [{"name": n, "labels": lab} for n, lab in subsets]}
    if tls:
        s["trafficPolicy"] = {"tls": {"mode": tls}}
    return {"metadata": _meta(ns, name), "spec": s}


def test_choose_destination():
    objs = consumer_objects()
    v = view(1, objs)
    assert rules.choose_destination(v, "httpbin.bar.global", REQ, "r")[0] is None
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"match": [{"uri": {"prefix": "/headers"}}], "route": [{"destination": {"host": "httpbin.bar.global",
                                                                                "subset": "v2"}}]},
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v1"}}]}])]
    v = view(1, objs)
    assert rules.choose_destination(v, "httpbin.bar.global", REQ, "r")[0]["subset"] == "v1"
    assert rules.choose_destination(v, "httpbin.bar.global", dict(REQ, path="/headers"), "r")[0]["subset"] == "v2"


def test_choose_destination_weights_and_gateway_binding():
    objs = consumer_objects()
    objs["virtualservices"] = [_vs("httpbin.bar.global", [{"route": [
        {"destination": {"host": "httpbin.bar.global", "subset": "v1"}, "weight": 0},
        {"destination": {"host": "httpbin.bar.global", "subset": "v2"}, "weight": 100}]}])]
    assert rules.choose_destination(view(1, objs), "httpbin.bar.global", REQ, "any")[0]["subset"] == "v2"
    objs["virtualservices"][0]["spec"]["gateways"] = ["istio-system/some-gateway"]
    assert rules.choose_destination(view(1, objs), "httpbin.bar.global", REQ, "any")[0] is None


def test_no_matching_route_is_404():
    objs = consumer_objects()
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"match": [{"uri": {"exact": "/only"}}], "route": [{"destination": {"host": "httpbin.bar.global"}}]}])]
    with pytest.raises(RouteError) as e:
        rules.choose_destination(view(1, objs), "httpbin.bar.global", REQ, "r")
    assert e.value.status == 404


@pytest.mark.parametrize("labels, networks, expected", [
    (None, None, ["gw"]),
    (None, {"external"}, ["remote"]),
    ({"version": "beta"}, None, []),
    (None, {"external", "other"}, ["remote", "other"]),
])
def test_filter_endpoints_network_view_and_labels(labels, networks, expected):
    eps = [{"address": "remote", "network": "external", "labels": {"version": "beta"}},
           {"address": "gw"}, {"address": "other", "network": "other"}]
    assert [e["address"] for e in rules.filter_endpoints(eps, labels, networks)] == expected


def test_find_destination_rule_prefers_exact_host():
    objs = consumer_objects()
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"})]))
    v = view(1, objs)
    assert rules.find_destination_rule(v, "httpbin.bar.global")["metadata"]["name"] == "dr"
    assert rules.find_destination_rule(v, "other.baz.global")["metadata"]["name"] == \
        "istio-multicluster-destinationrule"
    objs["destinationrules"].append(_dr("httpbin", [("v1", {"version": "v1"})], ns="bar", name="local"))
    assert rules.find_destination_rule(view(1, objs), "httpbin.bar.svc.cluster.local")["metadata"]["name"] == "local"


@pytest.mark.parametrize("pattern, host, ok", [
    ("*.global", "httpbin.bar.global", True), ("*", "x.y", True), ("*.global", "global", False),
    ("httpbin.bar.global", "HTTPBIN.bar.global", True), ("*.bar.global", "httpbin.baz.global", False),
])
def test_host_matches(pattern, host, ok):
    assert rules.host_matches(pattern, host) is ok


# ---------------------------------------------------------------- the sidecar


def test_sidecar_seed_plan_goes_to_the_remote_gateway():
    plan = rules.plan_sidecar(view(1, consumer_objects()), "httpbin.bar.global", 8000, REQ, "rid-1", {})
    assert plan.sni == "outbound_.8000_._.httpbin.bar.global"
    assert [(t.address, t.port) for t in plan.targets] == [("127.100.2.1", 15443)]


def test_sidecar_without_istio_mutual_sends_plain_text():
    objs = consumer_objects()
    objs["destinationrules"] = []
    plan = rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert plan.sni is None


def test_sidecar_node_port_endpoint():
    se = seed_se(address="127.50.2.1", port=31443)
    plan = rules.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert [(t.address, t.port) for t in plan.targets] == [("127.50.2.1", 31443)]


def test_sidecar_hostname_endpoint_via_lab_resolver():
    name = "istio-ingressgateway.istio-system.cluster2.lab.meshlink.test"
    se = seed_se(address=name)
    plan = rules.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r",
                              {name: "127.100.2.1"})
    assert [(t.address, t.port) for t in plan.targets] == [("127.100.2.1", 15443)]
    with pytest.raises(RouteError) as e:
        rules.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-endpoints" and e.value.status == 503


def test_sidecar_egress_variant_goes_to_the_egress_gateway_pod():
    se = seed_se(endpoints=[
        {"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}},
        {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http1": 15443}}])
    plan = rules.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert [(t.address, t.port, t.pod) for t in plan.targets] == [
        ("198.18.1.11", 15443, "istio-system/istio-egressgateway-bbb")]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.global"


def test_sidecar_egress_cluster_ip_endpoint_static():
    se = seed_se(endpoints=[
        {"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}},
        {"address": "198.19.1.11", "ports": {"http1": 15443}}])
    plan = rules.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert [(t.address, t.port) for t in plan.targets] == [("198.18.1.11", 15443)]


def test_sidecar_only_external_endpoint_is_invisible():
    se = seed_se(endpoints=[{"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}}])
    with pytest.raises(RouteError) as e:
        rules.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-endpoints"


@pytest.mark.parametrize("version, ok", [("1.2.10", True), ("1.3.0", False), ("1.7.8", False)])
def test_sidecar_loopback_vip(version, ok):
    v = view(1, consumer_objects(se=seed_se(vip="127.255.0.2"), version=version))
    if ok:
        assert rules.plan_sidecar(v, "httpbin.bar.global", 8000, REQ, "r", {}).targets
    else:
        with pytest.raises(RouteError) as e:
            rules.plan_sidecar(v, "httpbin.bar.global", 8000, REQ, "r", {})
        assert e.value.kind == "loopback-vip" and "17261" in e.value.message


def test_sidecar_wrong_port_is_not_routed():
    with pytest.raises(RouteError) as e:
        rules.plan_sidecar(view(1, consumer_objects()), "httpbin.bar.global", 8080, REQ, "r", {})
    assert e.value.kind == "no-route" and e.value.status is None


def test_sidecar_versioned_routing():
    se = seed_se(endpoints=[
        {"address": "127.100.2.1", "labels": {"version": "v1"}, "ports": {"http1": 15443}},
        {"address": "127.100.2.1", "labels": {"version": "v2"}, "ports": {"http1": 15443}}])
    objs = consumer_objects(se=se)
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"}), ("v2", {"version": "v2"})]))
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v2"}}]}])]
    plan = rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert plan.sni == "outbound_.8000_.v2_.httpbin.bar.global"
    # the subset's DestinationRule without tls: plain text (the *.global DR no longer applies)
    objs["destinationrules"][-1]["spec"].pop("trafficPolicy")
    assert rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {}).sni is None


def test_sidecar_subset_labels_select_endpoints():
    se = seed_se(endpoints=[{"address": "127.100.2.1", "labels": {"version": "beta"}, "ports": {"http1": 15443}}])
    objs = consumer_objects(se=se)
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"})]))
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v1"}}]}])]
    with pytest.raises(RouteError) as e:
        rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-endpoints"


def test_sidecar_undefined_subset_is_503():
    objs = consumer_objects()
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v9"}}]}])]
    with pytest.raises(RouteError) as e:
        rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-subset" and e.value.status == 503


def test_sidecar_needs_istiod():
    objs = consumer_objects()
    objs["deployments"] = []
    with pytest.raises(RouteError) as e:
        rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.status is None


def test_sidecar_local_service():
    plan = rules.plan_sidecar(view(2, source_objects()), "httpbin.bar.svc.cluster.local", 8000, REQ, "r", {})
    assert sorted((t.address, t.port) for t in plan.targets) == [("198.18.2.20", 80), ("198.18.2.21", 80)]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.svc.cluster.local"


def test_sidecar_passthrough_to_lab_external_address_only():
    v = view(1, consumer_objects())
    plan = rules.plan_sidecar(v, "127.100.2.1", 15021, REQ, "r", {})
    assert plan.sni is None and plan.targets[0].address == "127.100.2.1"
    with pytest.raises(RouteError):
        rules.plan_sidecar(v, "240.0.0.99", 8000, REQ, "r", {})


# ---------------------------------------------------------------- gateways


def _ingress_pod(v):
    return v.pod("istio-system", "istio-ingressgateway-aaa")


def test_ingress_routes_global_sni_to_the_service_pods():
    v = view(2, source_objects())
    plan = rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    assert sorted((t.address, t.port) for t in plan.targets) == [("198.18.2.20", 80), ("198.18.2.21", 80)]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.svc.cluster.local"


def test_ingress_needs_the_auto_passthrough_gateway():
    objs = source_objects()
    objs["gateways"][0]["spec"]["servers"][0]["tls"]["mode"] = "PASSTHROUGH"
    v = view(2, objs)
    with pytest.raises(RouteError) as e:
        rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    assert e.value.kind == "no-gateway"
    objs = source_objects()
    objs["gateways"][0]["spec"]["selector"] = {"istio": "other"}
    v = view(2, objs)
    with pytest.raises(RouteError):
        rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")


@pytest.mark.parametrize("version, flag, ok", [
    ("1.7.8", False, True), ("1.8.6", False, False), ("1.8.6", True, True), ("1.19.0", True, False),
])
def test_ingress_version_gate(version, flag, ok):
    env = {"PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH": "true"} if flag else None
    v = view(2, source_objects(version=version, istiod_env=env))
    if ok:
        rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    else:
        with pytest.raises(RouteError) as e:
            rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
        assert e.value.kind == "version"


def test_ingress_subset_uses_the_source_destination_rule():
    objs = source_objects()
    v = view(2, objs)
    plan = rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_.v1_.httpbin.bar.global")
    assert len(plan.targets) == 2 and "ignored" in " ".join(plan.detail)  # silently ignored
    objs["destinationrules"].append(_dr("httpbin.bar.svc.cluster.local", [("v1", {"version": "v1"})], ns="bar"))
    v = view(2, objs)
    plan = rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_.v1_.httpbin.bar.global")
    assert [t.pod for t in plan.targets] == ["bar/httpbin-v1"]
    assert plan.sni == "outbound_.8000_.v1_.httpbin.bar.svc.cluster.local"
    objs["destinationrules"][-1] = _dr("httpbin", [("v1", {"version": "v2"})], ns="bar")  # short name
    v = view(2, objs)
    plan = rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_.v1_.httpbin.bar.global")
    assert [t.pod for t in plan.targets] == ["bar/httpbin-v2"]


def test_ingress_unknown_service_or_port():
    v = view(2, source_objects())
    for sni in ("outbound_.8000_._.nope.bar.global", "outbound_.9000_._.httpbin.bar.global"):
        with pytest.raises(RouteError):
            rules.plan_ingress(v, _ingress_pod(v), 15443, sni)


def test_ingress_skips_unready_endpoints():
    objs = source_objects()
    for ep in objs["endpointslices"][-1]["endpoints"]:
        ep["conditions"]["ready"] = False
    v = view(2, objs)
    with pytest.raises(RouteError) as e:
        rules.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    assert e.value.kind == "no-endpoints"


def _egress_se():
    return seed_se(endpoints=[
        {"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}},
        {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http1": 15443}}])


def test_egress_uses_the_external_network_view():
    v = view(1, consumer_objects(se=_egress_se()))
    pod = v.pod("istio-system", "istio-egressgateway-bbb")
    plan = rules.plan_egress(v, pod, "outbound_.8000_._.httpbin.bar.global", {}, "r")
    assert [(t.address, t.port) for t in plan.targets] == [("127.100.2.1", 15443)]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.global"


def test_egress_without_network_view_fails():
    v = view(1, consumer_objects(se=_egress_se(), egress_env={}))
    pod = v.pod("istio-system", "istio-egressgateway-bbb")
    with pytest.raises(RouteError) as e:
        rules.plan_egress(v, pod, "outbound_.8000_._.httpbin.bar.global", {}, "r")
    assert e.value.kind == "network-view"


# ---------------------------------------------------------------- load balancers, listeners, workloads


def test_assign_lb_slots_stable_ingress_first():
    slots = rules.assign_lb_slots(
        {}, ["bar/web", "istio-system/istio-ingressgateway", "istio-system/istio-egressgateway"])
    assert slots["istio-system/istio-ingressgateway"] == 1
    assert sorted(slots.values()) == [1, 2, 3]
    again = rules.assign_lb_slots(slots, ["istio-system/istio-egressgateway"])
    assert again == slots
    later = rules.assign_lb_slots({"bar/web": 2}, ["istio-system/istio-ingressgateway", "x/y"])
    assert later == {"bar/web": 2, "istio-system/istio-ingressgateway": 1, "x/y": 3}
    assert rules.assign_lb_slots({}, ["a/b"]) == {"a/b": 2}  # 1 stays the ingress gateway's


def test_desired_lb_ingress_modes():
    svc = service("istio-system", "istio-ingressgateway", GW_PORTS, "198.19.2.10", "LoadBalancer")
    assert rules.desired_lb_ingress(cluster_cfg(2), svc, 1) == [{"ip": "127.100.2.1", "ipMode": "VIP"}]
    assert rules.desired_lb_ingress(cluster_cfg(2, "hostname"), svc, 1) == [
        {"hostname": "istio-ingressgateway.istio-system.cluster2.lab.meshlink.test"}]
    assert rules.desired_lb_ingress(cluster_cfg(2, "none"), svc, 1) is None
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "127.100.2.1", "ipMode": "VIP"}]}}
    assert rules.desired_lb_ingress(cluster_cfg(2, "none"), svc, 1) == []  # taken back: pending again
    svc["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
    assert rules.desired_lb_ingress(cluster_cfg(2, "none"), svc, 1) is None  # not the lab's: left alone
    assert rules.lab_hosts_for(cluster_cfg(2, "hostname"), {"istio-system/istio-ingressgateway": 1}) == {
        "istio-ingressgateway.istio-system.cluster2.lab.meshlink.test": "127.100.2.1",
        "gateway.cluster2.lab.meshlink.test": "127.100.2.1"}
    assert rules.lab_hosts_for(cluster_cfg(2, "ip"), {"istio-system/istio-ingressgateway": 1}) == {}


def test_desired_listeners():
    v = view(2, source_objects())
    slots = {"istio-system/istio-ingressgateway": 1, "istio-system/istio-egressgateway": 2}
    lst = rules.desired_listeners(v, slots)
    assert lst[("127.60.2.1", 15001)] == ("sidecar", "cluster2")
    assert lst[("127.100.2.1", 15443)] == ("lb", "cluster2", "istio-system", "istio-ingressgateway", 15443)
    assert lst[("127.50.2.1", 31443)] == ("nodeport", "cluster2", "istio-system", "istio-ingressgateway", 15443)
    assert lst[("127.18.2.10", 15443)] == ("ingress-gateway", "cluster2", "istio-system", "istio-ingressgateway-aaa")
    assert lst[("127.18.2.11", 15443)][0] == "egress-gateway"
    assert lst[("127.18.2.10", 15021)] == ("status-port", "cluster2", "istio-system", "istio-ingressgateway-aaa",
                                           "ingress-gateway")
    none = rules.desired_listeners(ClusterView(cluster_cfg(2, "none"), source_objects()), slots)
    assert not [k for k in none if k[0].startswith("127.100.")]
    assert ("127.50.2.1", 31443) in none


def test_httpbin_workloads():
    objs = source_objects()
    objs["pods"].append(pod("bar", "httpbin-pending", "198.18.2.22", phase="Pending"))
    objs["pods"].append(pod("bar", "go-httpbin", "198.18.2.23", image="mccutchen/go-httpbin:v2", ports=(8080,)))
    ws = {w["pod"]: w for w in rules.httpbin_workloads(view(2, objs))}
    assert sorted(ws) == ["go-httpbin", "httpbin-v1", "httpbin-v2"]
    assert (ws["httpbin-v1"]["ip"], ws["httpbin-v1"]["port"]) == ("127.18.2.20", 80)
    assert ws["go-httpbin"]["port"] == 8080


def test_service_endpoints_named_target_port():
    objs = source_objects()
    objs["services"][-1]["spec"]["ports"][0]["targetPort"] = "http-web"
    objs["endpointslices"][-1]["ports"] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = rules.service_endpoints(view(2, objs), "bar", "httpbin", 8000)
    assert {e.port for e in eps} == {8080}


# ---------------------------------------------------------------- hop log


def test_hop_path_order_and_cli(tmp_path, capsys):
    hops.record(tmp_path, {"ts": 3.0, "request_id": "r1", "cluster": "cluster2", "hop": "pod", "pod": "httpbin-v1",
                           "namespace": "bar"})
    hops.record(tmp_path, {"ts": 1.0, "request_id": "r1", "cluster": "cluster1", "hop": "sidecar",
                           "address": "127.60.1.1:15001", "sni": "outbound_.8000_._.httpbin.bar.global"})
    hops.record(tmp_path, {"ts": 2.0, "request_id": "r1", "cluster": "cluster2", "hop": "lb",
                           "address": "127.100.2.1:15443"})
    hops.record(tmp_path, {"ts": 2.5, "request_id": "other", "cluster": "cluster2", "hop": "lb"})
    path = hops.path(str(tmp_path), "r1")
    assert [h["hop"] for h in path] == ["sidecar", "lb", "pod"]
    assert all("time" in h for h in path)
    assert hops.main([str(tmp_path), "r1"]) == 0
    out = capsys.readouterr().out
    assert "sidecar[cluster1] > lb[cluster2 127.100.2.1:15443] > pod[cluster2 bar/httpbin-v1]" in out
    assert hops.main([str(tmp_path), "nope"]) == 1
    assert hops.last_request_id(tmp_path) == "r1"
    assert hops.main([str(tmp_path), "last", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [h["hop"] for h in lines] == ["sidecar", "lb", "pod"]


def test_hop_log_rotation_keeps_one_generation(tmp_path):
    hops.record(tmp_path, {"ts": 1.0, "request_id": "old", "cluster": "c", "hop": "sidecar"})
    hops.rotate(tmp_path, limit=1)
    hops.record(tmp_path, {"ts": 2.0, "request_id": "old", "cluster": "c", "hop": "pod"})
    assert [h["hop"] for h in hops.path(tmp_path, "old")] == ["sidecar", "pod"]


# ---------------------------------------------------------------- HTTP framing


def _pair():
    a, b = socket.socketpair()
    a.settimeout(2)
    b.settimeout(2)
    return a, b


def test_read_head_and_chunked_body():
    a, b = _pair()
    a.sendall(b"POST http://x.global:8000/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    rf = b.makefile("rb")
    head = wire.read_head(rf, "request")
    assert head.method == "POST" and head.get("HOST") == "x"
    assert wire.read_body(rf, head) == b"hello world"
    a.close()
    b.close()


def test_copy_response_body_keeps_chunked_framing():
    a, b = _pair()
    c, d = _pair()
    raw = b"4\r\nabcd\r\n0\r\n\r\n"
    a.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + raw)
    rf = b.makefile("rb")
    head = wire.read_head(rf, "response")
    wire.copy_response_body(rf, c, head, "GET")
    assert d.recv(100) == raw
    for s in (a, b, c, d):
        s.close()


def test_prepend_path():
    head = wire.Head(["HTTP/1.1", "200", "OK"], [("x-meshlink-path", "pod[c2 bar/h]")])
    wire.prepend_path(head, "lb[c2 127.100.2.1:15443]")
    assert head.get("x-meshlink-path") == "lb[c2 127.100.2.1:15443] > pod[c2 bar/h]"


def test_views_are_not_mutated_by_planning():
    objs = consumer_objects()
    before = copy.deepcopy(objs)
    rules.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert objs == before


def test_external_ips_are_served_when_loopback():
    objs = source_objects()
    objs["services"][-1]["spec"]["externalIPs"] = ["127.101.2.9", "10.0.0.9", "127.255.0.1"]
    lst = rules.desired_listeners(view(2, objs), {})
    assert lst[("127.101.2.9", 8000)] == ("lb", "cluster2", "bar", "httpbin", 8000)
    assert not [k for k in lst if k[0] in ("10.0.0.9", "127.255.0.1")]


def test_api_server_outside_loopback_is_refused(tmp_path):
    from meshlab.dataplane import kube

    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "kubeconfig").write_text(json.dumps(cfg))
    client = kube.ClusterClient(str(tmp_path / "kubeconfig"), "c")
    with pytest.raises(kube.ApiError, match="not on loopback"):
        client.fetch()
