"""Unit tests of routing by xDS (`meshlab.dataplane.xds`) and of the xDS client processes
(`meshlab.dataplane.xdsclients`).

The two snapshots in data/xds are real: written by meshlab-xds for a sleep pod of cluster1 and
for the east-west gateway of cluster2, from istiods (istio.io/istio eed52ebb66ad) of a
two-network lab with httpbin v1 in cluster1, v2 in cluster2, a DestinationRule with subsets
v1/v2 and a VirtualService (/headers -> v2, else 50/50), trimmed to httpbin's parts."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package

from meshlab.dataplane import xds, xdsclients  # noqa: E402
from meshlab.dataplane.view import RouteError  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "xds"
HOST = "httpbin.bar.svc.cluster.local"
C = "outbound|8000||" + HOST
C1 = "outbound|8000|v1|" + HOST
C2 = "outbound|8000|v2|" + HOST


@pytest.fixture(scope="module")
def sidecar() -> xds.Snapshot:
    return xds.Snapshot.parse((DATA / "sidecar-sleep-cluster1.json").read_text(), "sidecar")


@pytest.fixture(scope="module")
def router() -> xds.Snapshot:
    return xds.Snapshot.parse((DATA / "router-eastwest-cluster2.json").read_text(), "router")


def req(path="/ip", host=HOST + ":8000", **headers):
    return {"method": "GET", "path": path, "authority": host, "headers": {"host": host, **headers}}


# ---------------------------------------------------------------- snapshots and names


def test_snapshot_parse(sidecar):
    assert sidecar.node.startswith("sidecar~198.18.41.6~sleep-")
    assert sidecar.connected and sidecar.complete
    assert set(sidecar.versions) == {"cds", "eds", "lds", "rds"}
    assert "cds=" in sidecar.version_text("cds", "eds")
    with pytest.raises(ValueError):
        xds.Snapshot.parse('{"node": "x"}')
    with pytest.raises(ValueError):
        xds.Snapshot.parse("[1]")


def test_cluster_endpoints_eds_and_inline(sidecar):
    eps = sidecar.cluster_endpoints(C)
    assert sorted((e["address"], e["port"]) for e in eps) == [("127.100.42.3", 15443), ("198.18.41.5", 80)]
    snap = xds.Snapshot({"clusters": {"s": {"type": "STRICT_DNS", "endpoints": [{"address": "a", "port": 1}]}}})
    assert snap.cluster_endpoints("s") == [{"address": "a", "port": 1}]
    assert snap.cluster_endpoints("missing") == []


@pytest.mark.parametrize("name, parsed, sni", [
    (C, ("outbound", 8000, "", HOST), "outbound_.8000_._." + HOST),
    (C2, ("outbound", 8000, "v2", HOST), "outbound_.8000_.v2_." + HOST),
    ("PassthroughCluster", None, ""),
])
def test_cluster_names(name, parsed, sni):
    assert xds.parse_cluster_name(name) == parsed
    assert xds.sni_of_cluster(name) == sni
    if parsed:
        assert xds.istio_cluster_name(parsed[1], parsed[2], parsed[3]) == name


@pytest.mark.parametrize("host, ns, fqdn", [
    ("httpbin", "bar", HOST), ("httpbin.bar", "foo", HOST), ("httpbin.bar.svc", "foo", HOST),
    (HOST, "foo", HOST), ("HTTPBIN.bar.svc.cluster.local.", "foo", HOST),
    ("example.com.x", "foo", None), ("a.b.c.svc.cluster.local", "foo", None),
])
def test_service_fqdn_follows_the_kube_dns_search_path(host, ns, fqdn):
    assert xds.service_fqdn(host, ns) == fqdn


def test_known_host(sidecar):
    assert xds.known_host(sidecar, HOST)
    assert not xds.known_host(sidecar, "nope.bar.svc.cluster.local")


# ---------------------------------------------------------------- Envoy matching


@pytest.mark.parametrize("domains, authority, expected", [
    (["a.b"], "a.b", (3, 3)), (["*.b"], "a.b", (2, 3)), (["a.*"], "a.b", (1, 3)), (["*"], "x", (0, 0)),
    (["*.b", "a.b"], "A.B", (3, 3)), (["c.d"], "a.b", None), (["*.b"], ".b", None),
])
def test_domain_match(domains, authority, expected):
    assert xds.domain_match(domains, authority) == expected


def test_virtual_host_exact_beats_allow_any(sidecar):
    rc = sidecar.routes["8000"]
    assert xds.find_virtual_host(rc, HOST)["name"] == HOST + ":8000"
    assert xds.find_virtual_host(rc, "198.19.41.63")["name"] == HOST + ":8000"
    assert xds.find_virtual_host(rc, "other.example")["name"] == "allow_any"


@pytest.mark.parametrize("match, request_, ok", [
    ({"prefix": "/"}, {"path": "/ip"}, True),
    ({"prefix": "/headers"}, {"path": "/headers?x=1"}, True),
    ({"prefix": "/headers"}, {"path": "/ip"}, False),
    ({"path": "/ip"}, {"path": "/ip?x"}, True),
    ({"path": "/IP", "case_insensitive": True}, {"path": "/ip"}, True),
    ({"regex": "/status/[0-9]+"}, {"path": "/status/418"}, True),
    ({"path_separated_prefix": "/api"}, {"path": "/api/v1"}, True),
    ({"path_separated_prefix": "/api"}, {"path": "/apiv1"}, False),
    ({"prefix": "/", "headers": [{"name": "end-user", "exact": "jason"}]}, {"headers": {"end-user": "jason"}}, True),
    ({"prefix": "/", "headers": [{"name": "end-user", "exact": "jason"}]}, {"headers": {}}, False),
    ({"prefix": "/", "headers": [{"name": "x", "present": True, "invert": True}]}, {"headers": {}}, True),
    ({"prefix": "/", "headers": [{"name": ":method", "exact": "POST"}]}, {"method": "GET"}, False),
    ({"prefix": "/", "query_parameters": [{"name": "v", "exact": "2"}]}, {"path": "/ip?v=2"}, True),
    ({"prefix": "/", "unsupported": "connect_matcher"}, {"path": "/"}, False),
])
def test_route_matches(match, request_, ok):
    r = {"method": "GET", "path": "/", "headers": {}, **request_}
    assert xds.route_matches(match, r) is ok


def test_choose_weighted_is_deterministic_and_honours_zero():
    items = [("a", 0), ("b", 100)]
    assert {xds.choose_weighted(items, f"r{i}") for i in range(50)} == {"b"}
    both = {xds.choose_weighted([("a", 50), ("b", 50)], f"r{i}") for i in range(50)}
    assert both == {"a", "b"}
    assert xds.choose_weighted([("a", 50), ("b", 50)], "same") == xds.choose_weighted([("a", 50), ("b", 50)], "same")


# ---------------------------------------------------------------- the sidecar


def test_sidecar_route_by_virtual_service(sidecar):
    c, how = xds.sidecar_cluster(sidecar, HOST, 8000, req("/headers"), "r", "198.19.41.63")
    assert c == C2 and "route 8000" in how
    picks = {xds.sidecar_cluster(sidecar, HOST, 8000, req("/ip"), f"r{i}", None)[0] for i in range(40)}
    assert picks == {C1, C2}  # the 50/50 weighted route


def test_sidecar_port_is_ignored_in_host_match(sidecar):
    # ignore_port_in_host_matching: "httpbin.bar:8000" matches the domain "httpbin.bar"
    c, _ = xds.sidecar_cluster(sidecar, "httpbin.bar", 8000, req("/headers", host="httpbin.bar:8000"), "r", None)
    assert c == C2


def test_sidecar_unknown_host_takes_allow_any_to_passthrough(sidecar):
    c, _ = xds.sidecar_cluster(sidecar, "other.example", 8000, req(host="other.example:8000"), "r", None)
    assert c == "PassthroughCluster"
    with pytest.raises(RouteError) as e:
        xds.endpoint_targets(sidecar, c, "r", {}, {})
    assert e.value.kind == "passthrough" and e.value.status is None


def test_sidecar_without_a_listener_for_the_port(sidecar):
    with pytest.raises(RouteError) as e:
        xds.sidecar_cluster(sidecar, HOST, 9999, req(host=HOST + ":9999"), "r", None)
    assert e.value.kind == "no-listener" and e.value.status is None


def test_endpoint_targets_local_pod_and_remote_network_gateway(sidecar):
    local = {"198.18.41.5": "bar/httpbin-v1"}
    ts = xds.endpoint_targets(sidecar, C, "r", {}, local)
    by_addr = {t.address: t for t in ts}
    assert set(by_addr) == {"198.18.41.5", "127.100.42.3"}
    assert by_addr["198.18.41.5"].pod == "bar/httpbin-v1" and by_addr["198.18.41.5"].port == 80
    assert by_addr["127.100.42.3"].port == 15443 and "cluster2" in by_addr["127.100.42.3"].desc
    # the SNI is the one istiod put in the cluster's tlsMode-istio transport socket
    assert {t.sni for t in ts} == {"outbound_.8000_._." + HOST}
    v2 = xds.endpoint_targets(sidecar, C2, "r", {}, local)
    assert [(t.address, t.port, t.sni) for t in v2] == [("127.100.42.3", 15443, "outbound_.8000_.v2_." + HOST)]


def test_endpoint_choice_spreads_by_request_id(sidecar):
    firsts = {xds.endpoint_targets(sidecar, C, f"r{i}", {}, {})[0].address for i in range(40)}
    assert firsts == {"198.18.41.5", "127.100.42.3"}


def test_endpoint_transport_and_health():
    cluster = {"type": "EDS", "eds_name": "e", "transports": [
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "tls": True, "sni": "outbound_.80_._.a"},
        {"name": "tlsMode-disabled", "tls": False}]}
    snap = xds.Snapshot({"node": "n", "clusters": {"outbound|80||a": cluster}, "endpoints": {"e": [
        {"address": "198.18.1.1", "port": 80, "health": "HEALTHY"},
        {"address": "198.18.1.2", "port": 80, "health": "UNHEALTHY",
         "metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}},
        {"address": "198.18.1.3", "port": 80, "priority": 1,
         "metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}]}})
    ts = xds.endpoint_targets(snap, "outbound|80||a", "r", {}, {})
    assert [(t.address, t.sni) for t in ts] == [("198.18.1.1", "")]  # no tlsMode label: plain text
    snap.data["endpoints"]["e"][0]["health"] = "DRAINING"
    ts = xds.endpoint_targets(snap, "outbound|80||a", "r", {}, {})
    assert [(t.address, t.sni) for t in ts] == [("198.18.1.3", "outbound_.80_._.a")]  # next priority
    with pytest.raises(RouteError) as e:
        xds.endpoint_targets(snap, "outbound|81||a", "r", {}, {})
    assert e.value.kind == "no-cluster"


def test_strict_dns_endpoint_with_a_lab_load_balancer_name():
    snap = xds.Snapshot({"node": "n", "clusters": {"c": {"type": "STRICT_DNS", "endpoints": [
        {"address": "gw.cluster2.lab.meshlink.test", "port": 15443}]}}})
    ts = xds.endpoint_targets(snap, "c", "r", {"gw.cluster2.lab.meshlink.test": "127.100.2.1"}, {})
    assert [(t.address, t.port) for t in ts] == [("127.100.2.1", 15443)]


# ---------------------------------------------------------------- the east-west gateway


def test_gateway_routes_the_sni_to_its_local_pods(router):
    c, how = xds.gateway_cluster(router, 15443, "outbound_.8000_.v2_." + HOST)
    assert c == "outbound_.8000_.v2_." + HOST and "0.0.0.0_15443" in how
    ts = xds.endpoint_targets(router, c, "r", {}, {"198.18.42.5": "bar/httpbin-v2"})
    assert [(t.address, t.port, t.pod) for t in ts] == [("198.18.42.5", 80, "bar/httpbin-v2")]


def test_gateway_closes_an_sni_without_a_filter_chain(router):
    # the Gateway's hosts allow-list: istiod keeps the SNI clusters but no filter chain for them
    assert "outbound_.443_._.kubernetes.default.svc.cluster.local" in router.clusters
    for sni in ("outbound_.443_._.kubernetes.default.svc.cluster.local", "outbound_.8000_._.nope.bar.svc.cluster.local"):
        with pytest.raises(RouteError) as e:
            xds.gateway_cluster(router, 15443, sni)
        assert e.value.kind == "no-filter-chain"
    with pytest.raises(RouteError):
        xds.gateway_cluster(router, 15444, "outbound_.8000_._." + HOST)


def test_gateway_wildcard_server_names_and_missing_cluster():
    snap = xds.Snapshot({"node": "n", "clusters": {"outbound_.80_._.a.local": {"type": "EDS", "eds_name": "x"}},
                         "listeners": {"l": {"address": "0.0.0.0", "port": 15443, "filter_chains": [
                             {"server_names": ["*.local"], "filters": [{"name": "envoy.filters.network.sni_cluster"},
                                                                      {"name": "envoy.filters.network.tcp_proxy"}]}]}}})
    assert xds.gateway_cluster(snap, 15443, "outbound_.80_._.a.local")[0] == "outbound_.80_._.a.local"
    with pytest.raises(RouteError) as e:
        xds.gateway_cluster(snap, 15443, "outbound_.80_._.b.local")
    assert e.value.kind == "no-cluster"
    assert xds.server_name_match(["*.local", "a.local"], "a.local") == (2, 7)
    assert xds.server_name_match(["*.bar.local"], "a.local") is None


# ---------------------------------------------------------------- which proxies the lab runs


def _pod(ns, name, ip, labels=None, env=None, phase="Running", annotations=None):
    m = {"namespace": ns, "name": name, "uid": f"u-{name}", "labels": labels or {}}
    if annotations:
        m["annotations"] = annotations
    c = {"name": "c", "image": "x", "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    return {"metadata": m, "spec": {"containers": [c], "serviceAccountName": "sleep"},
            "status": {"phase": phase, "podIP": ip}}


CURRENT = {"name": "cluster1", "flavour": "current", "network": "net1", "mesh_id": "mesh1", "istio_version": "1.26.0"}
ISTIOD = {"grpc": "127.0.0.1:15010", "version": "1.31-dev+eed52ebb66ad"}


def test_desired_proxies_for_current_clusters_only():
    pods = [_pod("foo", "sleep-1", "198.18.1.6", {"app": "sleep"}),
            _pod("bar", "httpbin-1", "198.18.1.5", annotations={"sidecar.istio.io/inject": "false"}),
            _pod("bar", "pending", "198.18.1.7", phase="Pending"),
            _pod("kube-system", "coredns", "198.18.1.2"),
            _pod("istio-system", "istio-ingressgateway-1", "198.18.1.3", {"app": "istio-ingressgateway"}),
            _pod("istio-system", "istio-eastwestgateway-1", "198.18.1.4",
                 {"app": "istio-eastwestgateway", "istio": "eastwestgateway"},
                 {"ISTIO_META_REQUESTED_NETWORK_VIEW": "net1", "ISTIO_META_ROUTER_MODE": "sni-dnat"})]
    specs = {s.pod: s for s in xds.desired_proxies(CURRENT, pods, ISTIOD)}
    assert sorted(specs) == ["istio-eastwestgateway-1", "sleep-1"]
    s = specs["sleep-1"]
    assert s.node == "sidecar~198.18.1.6~sleep-1.foo~foo.svc.cluster.local" and not s.router
    assert s.server == "127.0.0.1:15010"
    assert {k: s.metadata[k] for k in ("CLUSTER_ID", "NETWORK", "NAMESPACE", "ISTIO_VERSION", "MESH_ID")} == {
        "CLUSTER_ID": "cluster1", "NETWORK": "net1", "NAMESPACE": "foo", "ISTIO_VERSION": "1.31.0", "MESH_ID": "mesh1"}
    assert s.metadata["LABELS"] == {"app": "sleep"} and s.metadata["SERVICE_ACCOUNT"] == "sleep"
    g = specs["istio-eastwestgateway-1"]
    assert g.router and g.node == ("router~198.18.1.4~istio-eastwestgateway-1.istio-system~"
                                   "istio-system.svc.cluster.local")
    assert g.metadata["REQUESTED_NETWORK_VIEW"] == "net1" and g.metadata["ROUTER_MODE"] == "sni-dnat"
    assert xds.desired_proxies({**CURRENT, "flavour": "seed"}, pods, ISTIOD) == []
    assert xds.desired_proxies(CURRENT, pods, None) == []
    listeners = xds.sidecar_listeners(list(specs.values()))
    assert listeners == {("127.18.1.6", 15001): ("sidecar", "cluster1", "foo", "sleep-1")}


def test_istio_meta_env_becomes_metadata():
    pod = _pod("istio-system", "istio-eastwestgateway-1", "198.18.1.4", {"app": "istio-eastwestgateway"},
               {"ISTIO_META_REQUESTED_NETWORK_VIEW": "net9", "ISTIO_META_DNS_CAPTURE": "true", "OTHER": "x"})
    md = xds.proxy_metadata(CURRENT, pod, "1.31.0", router=True)
    assert md["REQUESTED_NETWORK_VIEW"] == "net9" and md["DNS_CAPTURE"] == "true" and "OTHER" not in md


# ---------------------------------------------------------------- the client processes


def test_source_hash_follows_the_sources(tmp_path):
    for n in ("main.go", "go.mod", "go.sum"):
        (tmp_path / n).write_text(n)
    h = xdsclients.source_hash(tmp_path)
    assert len(h) == 12 and h == xdsclients.source_hash(tmp_path)
    (tmp_path / "main_test.go").write_text("tests do not change the binary")
    assert xdsclients.source_hash(tmp_path) == h
    (tmp_path / "main.go").write_text("changed")
    assert xdsclients.source_hash(tmp_path) != h
    assert xdsclients.binary_path().parent.name == f"xds-{xdsclients.source_hash()}"


def test_read_istiod_only_on_loopback(tmp_path):
    (tmp_path / "istiod").mkdir()
    (tmp_path / "istiod" / "c1.json").write_text(json.dumps({"grpc": "127.0.0.1:15010"}))
    (tmp_path / "istiod" / "c2.json").write_text(json.dumps({"grpc": "10.0.0.1:15010"}))
    (tmp_path / "istiod" / "c3.json").write_text("not json")
    assert xdsclients.read_istiod(tmp_path, "c1")["grpc"] == "127.0.0.1:15010"
    assert xdsclients.read_istiod(tmp_path, "c2") is None
    assert xdsclients.read_istiod(tmp_path, "c3") is None
    assert xdsclients.read_istiod(tmp_path, "c4") is None


FAKE_CLIENT = """#!{python}
import json, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
snap = {{"node": args["--node"], "server": args["--server"], "connected": True, "complete": True,
         "versions": {{"cds": "v1"}}, "clusters": {{}}, "endpoints": {{}}, "listeners": {{}}, "routes": {{}},
         "metadata": json.loads(args["--metadata"])}}
open(args["--out"], "w").write(json.dumps(snap))
time.sleep(60)
"""


def test_clients_are_started_served_and_stopped(tmp_path, monkeypatch):
    fake = tmp_path / "fake-xds"
    fake.write_text(FAKE_CLIENT.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(xdsclients.ENV_BINARY, str(fake))
    clients = xdsclients.XdsClients(tmp_path)
    spec = xds.desired_proxies(CURRENT, [_pod("foo", "sleep-1", "198.18.1.6", {"app": "sleep"})], ISTIOD)[0]
    try:
        clients.apply([spec])
        deadline = time.monotonic() + 10
        while clients.snapshot("cluster1", "foo", "sleep-1") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        snap = clients.snapshot("cluster1", "foo", "sleep-1")
        assert snap is not None and snap.node == spec.node and snap.data["metadata"]["CLUSTER_ID"] == "cluster1"
        assert clients.snapshot("cluster1", "foo", "sleep-1") is snap  # cached while the file is unchanged
        assert [s.pod for s in clients.specs("cluster1")] == ["sleep-1"]
        (d,) = clients.describe()
        assert d["alive"] and d["connected"] and d["versions"] == {"cds": "v1"}
        pid = d["pid"]
        clients.apply([])
        assert clients.snapshot("cluster1", "foo", "sleep-1") is None
        assert not (tmp_path / "xds" / "cluster1" / "foo_sleep-1.json").exists()
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.05)
    finally:
        clients.stop_all()


def test_go_xds_client_tests():
    """The xDS client's own tests (tests/lab/build/xds/main_test.go): resource conversion and the
    ADS protocol against an in-process fake istiod on loopback."""
    import shutil
    import subprocess

    go = shutil.which("go")
    assert go, "go is a lab requirement"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "grpc_proxy")}
    proc = subprocess.run([go, "test", "-count=1", "./..."], cwd=xdsclients.SOURCE_DIR, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
