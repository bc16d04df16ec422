"""The data plane's I/O layer end to end on loopback, without a cluster.

Two clusters' objects are given as plain dicts (as if read from their API servers); the real
listeners, real httpbin processes and the real curl move the requests. The lab clusters
here are numbered 20 and 21 (per xdist worker: +2n) so as not to collide with a running lab.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshlab.dataplane import hops, lbcontroller  # noqa: E402
from meshlab.dataplane.view import ClusterView, httpbin_workloads  # noqa: E402
from meshlab.dataplane.servers import Handlers, Listener  # noqa: E402
from meshlab.dataplane.workloads import Workloads  # noqa: E402
from test_dataplane import _dr, _vs, consumer_objects, seed_se, source_objects, view  # noqa: E402

# consumer and source lab cluster indexes: above a real lab's 1..9, one pair per xdist worker
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").lstrip("gw") or 0)
C, S = 20 + 2 * _WORKER, 21 + 2 * _WORKER
HTTPBIN_PORT = 8080  # unprivileged, so the test runs as any user
LB = f"127.100.{S}.1"

# curl is a lab requirement (.ci/run installs it): without it these tests fail, not skip.


class FakeDataPlane:
    def __init__(self, state_dir: Path):
        self.state_dir = str(state_dir)
        self.lab_hosts: dict[str, str] = {}
        self.views: dict[str, ClusterView] = {}
        self.clusters: dict[str, dict] = {}  # seed-era clusters: no flavour, no xDS
        self.xds = None

    def view(self, cluster):
        return self.views.get(cluster)

    def cluster_config(self, cluster):
        return self.clusters.get(cluster, {})


def source(**kw):
    objs = source_objects(S, **kw)
    for p in objs["pods"]:
        if p["metadata"]["namespace"] == "bar":
            p["spec"]["containers"][0]["ports"] = [{"containerPort": HTTPBIN_PORT}]
    objs["endpointslices"][-1]["ports"][0]["port"] = HTTPBIN_PORT
    return objs


def consumer(se=None, **kw):
    return consumer_objects(C, se=se if se is not None else seed_se(address=LB), **kw)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    dp = FakeDataPlane(state)
    dp.views = {f"cluster{C}": view(C, consumer()), f"cluster{S}": view(S, source())}
    handlers = Handlers(dp)
    slots = {"istio-system/istio-ingressgateway": 1, "istio-system/istio-egressgateway": 2}
    listeners = []
    for v in dp.views.values():
        for (ip, port), spec in lbcontroller.desired_listeners(v, slots).items():
            listeners.append(Listener(ip, port, spec, handlers.for_spec(spec)))
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


def curl(url: str, *extra: str) -> tuple[int, dict, str]:
    env = {**os.environ, "http_proxy": f"http://127.60.{C}.1:15001", "no_proxy": ""}
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


def test_seed_request_reaches_httpbin_through_the_remote_gateway(views):
    rc, h, body = curl("http://httpbin.bar.global:8000/ip")
    assert rc == 0 and h[":status"] == "200", body
    assert "origin" in json.loads(body)
    path = h["x-meshlink-path"]
    assert path.startswith(f"sidecar[cluster{C}] > lb[cluster{S} {LB}:15443] > "
                           f"ingress-gateway[cluster{S} istio-system/istio-ingressgateway-aaa] > "
                           f"pod[cluster{S} bar/httpbin-v")
    recorded = hops.path(views.state_dir, h["x-request-id"] if "x-request-id" in h else "last")
    assert [x["hop"] for x in recorded] == ["sidecar", "lb", "ingress-gateway", "pod"]
    assert recorded[0]["sni"] == "outbound_.8000_._.httpbin.bar.global"
    assert recorded[-1]["sni"].endswith("httpbin.bar.svc.cluster.local")


def test_request_id_and_body_are_carried(views):
    rc, h, body = curl("http://httpbin.bar.global:8000/post?show_env=1", "-H", "x-request-id: my-req-1",
                       "-H", "content-type: text/plain", "--data-binary", "hello mesh")
    assert rc == 0 and h[":status"] == "200", body
    data = json.loads(body)
    assert data["data"] == "hello mesh"
    assert data["headers"]["X-Request-Id"] == "my-req-1"
    assert [x["hop"] for x in hops.path(views.state_dir, "my-req-1")] == ["sidecar", "lb", "ingress-gateway", "pod"]


def test_node_port_endpoint(views):
    views.views[f"cluster{C}"] = view(C, consumer(se=seed_se(address=f"127.50.{S}.1", port=31443)))
    rc, h, body = curl("http://httpbin.bar.global:8000/get", "-H", "x-request-id: np-1")
    assert rc == 0 and h[":status"] == "200", body
    assert [x["hop"] for x in hops.path(views.state_dir, "np-1")] == ["sidecar", "nodeport", "ingress-gateway", "pod"]


def test_egress_gateway_variant(views):
    se = seed_se(endpoints=[
        {"address": LB, "network": "external", "ports": {"http1": 15443}},
        {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http1": 15443}}])
    views.views[f"cluster{C}"] = view(C, consumer(se=se))
    rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: eg-1")
    assert rc == 0 and h[":status"] == "200", body
    assert [x["hop"] for x in hops.path(views.state_dir, "eg-1")] == [
        "sidecar", "egress-gateway", "lb", "ingress-gateway", "pod"]
    views.views[f"cluster{C}"] = view(C, consumer(se=se, egress_env={}))
    rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: eg-2")
    assert h[":status"] == "503" and "ISTIO_META_REQUESTED_NETWORK_VIEW" in h["x-meshlink-lab-error"]


def test_versioned_routing_needs_the_source_destination_rule(views):
    se = seed_se(endpoints=[{"address": LB, "labels": {"version": "v1"}, "ports": {"http1": 15443}}])
    objs = consumer(se=se)
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"})]))
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v1"}}]}])]
    views.views[f"cluster{C}"] = view(C, objs)
    src = source()
    src["destinationrules"].append(_dr("httpbin.bar.svc.cluster.local", [("v1", {"version": "v2"})], ns="bar"))
    views.views[f"cluster{S}"] = view(S, src)
    for i in range(4):
        rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", f"x-request-id: v-{i}")
        assert rc == 0 and h[":status"] == "200", body
        assert h["x-meshlink-path"].endswith(f"pod[cluster{S} bar/httpbin-v2]")  # the DR's subset labels


def test_missing_gateway_is_a_recorded_503(views):
    src = source()
    src["gateways"] = []
    views.views[f"cluster{S}"] = view(S, src)
    rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: nogw-1")
    assert rc == 0 and h[":status"] == "503"
    assert "AUTO_PASSTHROUGH" in h["x-meshlink-lab-error"]
    recorded = hops.path(views.state_dir, "nogw-1")
    assert [x["hop"] for x in recorded] == ["sidecar", "lb", "ingress-gateway"]
    assert "error" in recorded[-1] and "error" in recorded[0]


def test_version_gate_on_the_remote_cluster(views):
    views.views[f"cluster{S}"] = view(S, source(version="1.9.5"))
    rc, h, body = curl("http://httpbin.bar.global:8000/ip")
    assert h[":status"] == "503" and "CVE-2021-31921" in h["x-meshlink-lab-error"]
    views.views[f"cluster{S}"] = view(S, source(version="1.9.5",
                                               istiod_env={"PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH": "true"}))
    rc, h, body = curl("http://httpbin.bar.global:8000/ip")
    assert h[":status"] == "200", body


def test_plain_text_without_istio_mutual_fails_at_the_gateway(views):
    objs = consumer()
    objs["destinationrules"] = []
    views.views[f"cluster{C}"] = view(C, objs)
    rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: plain-1")
    assert h[":status"] == "503"
    recorded = hops.path(views.state_dir, "plain-1")
    assert "TLS handshake failed" in recorded[-1]["error"]


def test_dns_failure_closes_like_curl_could_not_resolve(views):
    objs = consumer()
    objs["configmaps"]["kube-system/coredns"]["data"]["Corefile"] = ".:53 {\n}\n"
    views.views[f"cluster{C}"] = view(C, objs)
    rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: dns-1")
    assert rc == 52, (rc, h, body)  # curl: (52) Empty reply from server
    recorded = hops.path(views.state_dir, "dns-1")
    assert "Could not resolve host" in recorded[0]["error"]


def test_loopback_vip_fails_on_istio_1_3_and_later(views):
    views.views[f"cluster{C}"] = view(C, consumer(se=seed_se(address=LB, vip="127.255.0.2")))
    rc, _, _ = curl("http://httpbin.bar.global:8000/ip")
    assert rc == 52
    views.views[f"cluster{C}"] = view(C, consumer(se=seed_se(address=LB, vip="127.255.0.2"), version="1.2.10"))
    rc, h, body = curl("http://httpbin.bar.global:8000/ip")
    assert rc == 0 and h[":status"] == "200", body


def test_endpoint_outside_loopback_is_refused(views):
    views.views[f"cluster{C}"] = view(C, consumer(se=seed_se(address="10.1.2.3")))
    rc, h, body = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: ref-1")
    assert h[":status"] == "503"
    assert "refused to dial 10.1.2.3" in hops.path(views.state_dir, "ref-1")[0]["error"]


def test_views_are_shared_not_copied(views):
    # the fixture restores views between tests: the seed works again
    rc, h, body = curl("http://httpbin.bar.global:8000/headers")
    assert rc == 0 and h[":status"] == "200", body
    assert json.loads(body)["headers"]["Host"] == "httpbin.bar.global:8000"
    assert copy.deepcopy(h)["server"] == "envoy"


def test_gateway_status_port_through_the_load_balancer(lab):
    proc = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                           f"http://{LB}:15021/healthz/ready"], capture_output=True, text=True, timeout=30)
    assert proc.stdout == "200", proc.stderr
