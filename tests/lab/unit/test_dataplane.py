"""Unit tests of the lab's emulated data plane: the network rule, the mTLS preamble and HTTP
framing, the hop log and the API client's loopback check; and the objects of a two-cluster lab
that the other test_dataplane_* modules build their views from (no cluster, no sockets except
the dial tests on loopback)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package

from meshlab.dataplane import hops, net, wire  # noqa: E402
from meshlab.dataplane.view import ClusterView  # noqa: E402


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


def test_preamble_round_trip():
    line = wire.encode_preamble("outbound_.8000_._.httpbin.bar.global", "abc-123")
    assert line == b"MESHLINK-SNI outbound_.8000_._.httpbin.bar.global abc-123\r\n"
    assert wire.parse_preamble(line) == ("outbound_.8000_._.httpbin.bar.global", "abc-123")
    with pytest.raises(wire.ProtocolError):
        wire.parse_preamble(b"GET /ip HTTP/1.1\r\n")
    with pytest.raises(ValueError):
        wire.encode_preamble("bad sni", "x")


# ---------------------------------------------------------------- ServiceEntry match, subsets, network view


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
