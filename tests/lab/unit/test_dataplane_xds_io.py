"""I/O tests of the xDS-routed hops: a pod's own sidecar listener and an east-west gateway listener,
with real sockets, real curl and a real httpbin, routed by hand-made xDS snapshots (the shape
meshlab-xds writes; see data/xds for real ones). No istiod, no cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package
sys.path.insert(0, str(Path(__file__).resolve().parent))

from meshlab.dataplane import hops, xds  # noqa: E402
from meshlab.dataplane.servers import Handlers, Listener  # noqa: E402
from meshlab.dataplane.view import ClusterView, httpbin_workloads  # noqa: E402
from meshlab.dataplane.workloads import Workloads  # noqa: E402
from test_dataplane import cluster_cfg, eslice, pod, service  # noqa: E402

_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").lstrip("gw") or 0)
C, S = 80 + 2 * _WORKER, 81 + 2 * _WORKER
HOST = "httpbin.bar.svc.cluster.local"
HTTPBIN_PORT = 8080
SLEEP_IP, HTTPBIN_IP, EW_IP = f"198.18.{C}.30", f"198.18.{S}.20", f"198.18.{S}.10"
EW_POD = "istio-eastwestgateway-aaa"
SNI_V2 = f"outbound_.8000_.v2_.{HOST}"


def _transports(sni: str) -> list[dict]:
    return [{"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "tls": True, "sni": sni},
            {"name": "tlsMode-disabled", "tls": False}]


def _ep(address: str, port: int) -> dict:
    return {"address": address, "port": port, "weight": 1, "priority": 0, "health": "HEALTHY",
            "metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}


def sidecar_snapshot() -> dict:
    """The sleep pod of cluster C: /headers -> subset v2 (behind cluster S's east-west gateway);
    anything else -> the default subset, whose only endpoint is that gateway too."""
    names = {"": f"outbound|8000||{HOST}", "v2": f"outbound|8000|v2|{HOST}"}
    return {
        "node": f"sidecar~{SLEEP_IP}~sleep-1.foo~foo.svc.cluster.local", "connected": True, "complete": True,
        "versions": {"cds": "c1", "eds": "e1", "lds": "l1", "rds": "r1"},
        "clusters": {n: {"type": "EDS", "eds_name": n, "transports": _transports(f"outbound_.8000_.{s}_.{HOST}")}
                     for s, n in names.items()},
        "endpoints": {n: [_ep(EW_IP, 15443)] for n in names.values()},
        "listeners": {"0.0.0.0_8000": {"address": "0.0.0.0", "port": 8000, "filter_chains": [
            {"transport_protocol": "raw_buffer", "filters": [
                {"name": "envoy.filters.network.http_connection_manager", "rds": "8000"}]},
            {"default": True, "filters": [{"name": "envoy.filters.network.tcp_proxy", "cluster": "PassthroughCluster"}]}]}},
        "routes": {"8000": {"ignore_port_in_host_matching": True, "virtual_hosts": [
            {"name": f"{HOST}:8000", "domains": [HOST, "httpbin.bar"], "routes": [
                {"match": {"prefix": "/headers"}, "cluster": names["v2"]},
                {"match": {"prefix": "/"}, "cluster": names[""]}]}]}},
    }


def router_snapshot() -> dict:
    """Cluster S's east-west gateway: a filter chain (and SNI cluster) for subset v2 only."""
    return {
        "node": f"router~{EW_IP}~{EW_POD}.istio-system~istio-system.svc.cluster.local", "connected": True,
        "complete": True, "versions": {"cds": "gc1", "eds": "ge1", "lds": "gl1"},
        "clusters": {SNI_V2: {"type": "EDS", "eds_name": SNI_V2},
                     f"outbound_.8000_._.{HOST}": {"type": "EDS", "eds_name": f"outbound_.8000_._.{HOST}"}},
        "endpoints": {SNI_V2: [_ep(HTTPBIN_IP, HTTPBIN_PORT)], f"outbound_.8000_._.{HOST}": [_ep(HTTPBIN_IP, HTTPBIN_PORT)]},
        "listeners": {"0.0.0.0_15443": {"address": "0.0.0.0", "port": 15443, "filter_chains": [
            {"server_names": [SNI_V2], "filters": [{"name": "envoy.filters.network.tcp_proxy", "cluster": SNI_V2}]}]}},
        "routes": {},
    }


class FakeXds:
    def __init__(self):
        self.snaps: dict[tuple[str, str, str], xds.Snapshot] = {}

    def snapshot(self, cluster, namespace, pod_name):
        return self.snaps.get((cluster, namespace, pod_name))

    def specs(self, cluster):
        return [xds.ProxySpec(c, ns, p, "", "", s.node, "", {"LABELS": {"app": "sleep"}}, s.node.startswith("router"))
                for (c, ns, p), s in self.snaps.items() if c == cluster]


class FakeDataPlane:
    def __init__(self, state_dir: Path):
        self.state_dir = str(state_dir)
        self.lab_hosts: dict[str, str] = {}
        self.views: dict[str, ClusterView] = {}
        self.xds = FakeXds()

    def view(self, cluster):
        return self.views.get(cluster)

    def cluster_config(self, cluster):
        return {"name": cluster, "flavour": "current"}


def current_cfg(i: int) -> dict:
    """A current primary's entry of clusters.json."""
    return {**cluster_cfg(i), "istio_version": "1.26.0", "flavour": "current", "istio_role": "primary",
            "control_plane": f"cluster{i}"}


def _mesh_config(capture: bool) -> dict:
    meta = '    ISTIO_META_DNS_CAPTURE: "true"\n' if capture else ""
    return {"istio-system/istio": {"data": {"mesh": "defaultConfig:\n  proxyMetadata:\n" + (meta or "    {}\n")}}}


def consumer_view(capture: bool = False, stub: bool = True) -> ClusterView:
    objs = {"pods": [pod("foo", "sleep-1", SLEEP_IP, {"app": "sleep"}, image="curlimages/curl")],
            "services": [service("bar", "httpbin", [{"name": "http", "port": 8000, "targetPort": 80}], f"198.19.{C}.20")]
            if stub else [], "configmaps": _mesh_config(capture)}
    return ClusterView(current_cfg(C), objs)


def source_view() -> ClusterView:
    p = pod("bar", "httpbin-v2", HTTPBIN_IP, {"app": "httpbin", "version": "v2"}, ports=(HTTPBIN_PORT,))
    ew = pod("istio-system", EW_POD, EW_IP, {"app": "istio-eastwestgateway", "istio": "eastwestgateway"},
             image="docker.io/istio/proxyv2:1.26.0", ports=(15021, 15443))
    objs = {"pods": [p, ew],
            "services": [service("bar", "httpbin", [{"name": "http", "port": 8000, "targetPort": HTTPBIN_PORT}],
                                 f"198.19.{S}.20")],
            "endpointslices": [eslice("bar", "httpbin", [("http", HTTPBIN_PORT)], [(HTTPBIN_IP, "httpbin-v2")])]}
    return ClusterView(current_cfg(S), objs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    dp = FakeDataPlane(state)
    dp.views = {f"cluster{C}": consumer_view(), f"cluster{S}": source_view()}
    dp.xds.snaps = {(f"cluster{C}", "foo", "sleep-1"): xds.Snapshot(sidecar_snapshot()),
                    (f"cluster{S}", "istio-system", EW_POD): xds.Snapshot(router_snapshot())}
    handlers = Handlers(dp)
    specs = {(f"127.18.{C}.30", 15001): ("sidecar", f"cluster{C}", "foo", "sleep-1"),
             (f"127.60.{C}.1", 15001): ("sidecar", f"cluster{C}"),
             (f"127.18.{S}.10", 15443): ("eastwest-gateway", f"cluster{S}", "istio-system", EW_POD)}
    listeners = [Listener(ip, port, spec, handlers.for_spec(spec)) for (ip, port), spec in specs.items()]
    work = Workloads(state)
    work.apply(httpbin_workloads(dp.views[f"cluster{S}"]))
    assert work.wait_listening(20) == []
    yield dp
    for lst in listeners:
        lst.stop()
    work.stop_all()


@pytest.fixture()
def views(lab):
    saved = dict(lab.views)
    yield lab
    lab.views = saved


def curl(url: str, proxy: str, *extra: str) -> tuple[int, dict, str]:
    env = {**os.environ, "http_proxy": f"http://{proxy}", "no_proxy": ""}
    proc = subprocess.run(["curl", "-sS", "-D", "-", "--max-time", "20", *extra, url],
                          capture_output=True, text=True, env=env, timeout=30)
    headers: dict[str, str] = {}
    body = ""
    if proc.returncode == 0:
        head, _, body = proc.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        headers[":status"] = lines[0].split(" ")[1]
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return proc.returncode, headers, body or proc.stderr


POD_PROXY = f"127.18.{C}.30:15001"


def test_subset_route_through_the_east_west_gateway(views):
    rc, h, body = curl(f"http://{HOST}:8000/headers", POD_PROXY, "-H", "x-request-id: xds-io-1")
    assert rc == 0 and h[":status"] == "200", body
    assert h["x-meshlink-path"] == (f"sidecar[cluster{C} foo/sleep-1] > eastwest-gateway[cluster{S} istio-system/"
                                    f"{EW_POD}] > pod[cluster{S} bar/httpbin-v2]")
    side, gw, p = hops.path(views.state_dir, "xds-io-1")
    assert side["xds"]["cluster"] == f"outbound|8000|v2|{HOST}" and side["xds"]["endpoint"] == f"{EW_IP}:15443"
    assert side["xds"]["versions"]["rds"] == "r1" and side["sni"] == SNI_V2
    assert gw["hop"] == "eastwest-gateway" and gw["xds"]["cluster"] == SNI_V2
    assert gw["xds"]["endpoint"] == f"{HTTPBIN_IP}:{HTTPBIN_PORT}" and gw["xds"]["versions"]["lds"] == "gl1"
    assert p["sni"] == SNI_V2  # AUTO_PASSTHROUGH: the SNI goes on unchanged


def test_sni_without_a_filter_chain_is_reset_by_the_gateway(views):
    rc, h, body = curl("http://httpbin.bar:8000/ip", POD_PROXY, "-H", "x-request-id: xds-io-2")
    assert rc == 0 and h[":status"] == "503", body
    assert "no filter chain" in h["x-meshlink-lab-error"] and "eastwest-gateway" in h["x-meshlink-lab-error"]
    side, gw = hops.path(views.state_dir, "xds-io-2")
    assert side["sni"] == f"outbound_.8000_._.{HOST}" and "error" in gw


def test_name_gate_needs_a_stub_service_or_dns_capture(views):
    views.views[f"cluster{C}"] = consumer_view(capture=False, stub=False)
    rc, _, err = curl(f"http://{HOST}:8000/headers", POD_PROXY)
    assert rc == 52, err  # curl: (52) Empty reply from server, as for "Could not resolve host"
    views.views[f"cluster{C}"] = consumer_view(capture=True, stub=False)
    rc, h, body = curl(f"http://{HOST}:8000/headers", POD_PROXY)
    assert rc == 0 and h[":status"] == "200", body


def test_the_shared_sidecar_address_routes_by_a_sleep_pod(views):
    rc, h, body = curl(f"http://{HOST}:8000/headers", f"127.60.{C}.1:15001", "-H", "x-request-id: xds-io-3")
    assert rc == 0 and h[":status"] == "200", body
    side = hops.path(views.state_dir, "xds-io-3")[0]
    assert "caller unknown" in side["detail"] and side["xds"]["node"].startswith(f"sidecar~{SLEEP_IP}~sleep-1")


def test_no_snapshot_is_a_503(views):
    saved = dict(views.xds.snaps)
    try:
        views.xds.snaps.pop((f"cluster{C}", "foo", "sleep-1"))
        rc, h, _ = curl(f"http://{HOST}:8000/headers", POD_PROXY)
        assert rc == 0 and h[":status"] == "503" and h["x-meshlink-lab-error"].startswith("no-xds")
    finally:
        views.xds.snaps = saved


def test_plain_text_to_the_gateway_is_a_failed_handshake(views):
    curl(f"http://127.18.{S}.10:15443/ip", f"127.18.{S}.10:15443")  # plain text to a TLS port
    last = [json.loads(x) for x in Path(views.state_dir, "hops.jsonl").read_text().splitlines()][-1]
    assert last["hop"] == "eastwest-gateway" and "TLS handshake failed" in last["error"]


def test_a_remote_without_an_istiod_deployment_has_sidecars(views):
    """A remote's pods are its primary's proxies: decided by control_plane, not by an istiod
    Deployment (the consumer view has none); a remote naming no control plane has no sidecar."""
    remote = {**current_cfg(C), "istio_role": "remote", "control_plane": f"cluster{S}"}
    objs = {"pods": consumer_view().pods, "services": consumer_view().services, "configmaps": _mesh_config(False)}
    views.views[f"cluster{C}"] = ClusterView(remote, objs)
    rc, h, body = curl(f"http://{HOST}:8000/headers", POD_PROXY, "-H", "x-request-id: xds-io-remote-1")
    assert rc == 0 and h[":status"] == "200", body
    views.views[f"cluster{C}"] = ClusterView({**remote, "control_plane": ""}, objs)
    rc, _, err = curl(f"http://{HOST}:8000/headers", POD_PROXY, "-H", "x-request-id: xds-io-remote-2")
    assert rc == 52, err
    assert "names no control plane" in hops.path(views.state_dir, "xds-io-remote-2")[0]["error"]
