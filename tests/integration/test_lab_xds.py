"""The lab's data plane routes current-Istio clusters by what the real istiods programmed (xDS).

A small lab of its own (LAB_INDEX_BASE=90, own state directory): two current primaries on two
networks, each with its real istiod, and a remote of cluster1 on a third network (served by
cluster1's istiod). The test writes what the collection's setup would (the
istio-system network label, remote secrets both ways, Gateway cross-network-gateway with a
hosts allow-list) and sample apps (httpbin v1 in cluster1, v2 in cluster2, sleep in cluster1)
in namespaces labelled istio-injection=enabled, the pods without injection labels: the lab's
emulated injector adds security.istio.io/tlsMode (which istiod needs to send another network's
endpoints) and the canonical-service labels. Then it checks that curl in the sleep pod takes
the path istiod programmed: the xDS cluster and endpoint each hop recorded are the ones
istiod's own debug endpoints show for that proxy; and that a sleep pod of the remote reaches
both other networks through their east-west gateways (primary-remote). Torn down at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab" / "lab"
sys.path.insert(0, str(REPO / "tests" / "lab"))
from meshlab import versions  # noqa: E402
from meshlab.dataplane import hops  # noqa: E402

INDEX_BASE = 90
SETTINGS = {"LAB_CLUSTERS": "3", "LAB_INDEX_BASE": str(INDEX_BASE), "LAB_ISTIO_VERSION": "1.26.0",
            "LAB_ISTIO_ROLE": "cluster3=remote:cluster1", "LAB_MESH_ID": "mesh1", "LAB_NETWORK": "", "LAB_LB": "ip", "LAB_WITHOUT": ""}
HOST = "httpbin.bar.svc.cluster.local"
ALLOWED = [HOST]  # the cross-network Gateway's hosts allow-list (echo.baz is left out)


class Lab:
    def __init__(self, state: Path):
        self.state = state
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        self.env = {**env, **SETTINGS, "LAB_STATE_DIR": str(state)}

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(LAB), *args], capture_output=True, text=True, env=self.env, check=False,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} rc={proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, context: str, *args: str, stdin: str | None = None, check: bool = True,
                env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(versions.kube_bin("kubectl")), "--kubeconfig", str(self.state / "kubeconfig"),
                               "--context", context, *args], input=stdin, capture_output=True, text=True,
                              check=False, timeout=120, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl --context {context} {' '.join(args)}:\n{proc.stdout}{proc.stderr}")
        return proc

    def apply(self, context: str, objs: list[dict]) -> None:
        self.kubectl(context, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))

    def config(self) -> dict[str, Any]:
        return json.loads((self.state / "clusters.json").read_text(encoding="utf-8"))

    def istiod(self, name: str) -> dict[str, Any]:
        return json.loads((self.state / "istiod" / f"{name}.json").read_text(encoding="utf-8"))

    def pod(self, context: str, namespace: str, selector: str) -> dict:
        items = json.loads(self.kubectl(context, "get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)
        running = [p for p in items["items"] if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
        assert running, f"no running pod {selector} in {context}/{namespace}"
        return running[0]


def get_json(url: str) -> Any:
    assert url.startswith("http://127.0.0.1:"), url  # the network rule: loopback only
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


def deployment(name: str, ns: str, labels: dict, image: str) -> dict:
    selector = {k: v for k, v in labels.items() if k in ("app", "version")}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": labels},  # no injection labels: the lab adds them
                                  "spec": {"containers": [{"name": "main", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}}}}


def service(name: str, ns: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": 80}]}}


def namespaces(*names: str, inject: bool = True) -> list[dict]:
    labels = {"istio-injection": "enabled"} if inject else {}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}} for n in names]


def istio_objects(subsets: bool, virtual_service: bool) -> list[dict]:
    out = [{"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "cross-network-gateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "eastwestgateway"},
                     "servers": [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                                  "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ALLOWED}]}}]
    if subsets:
        out.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                    "metadata": {"name": "httpbin", "namespace": "bar"},
                    "spec": {"host": HOST, "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                       {"name": "v2", "labels": {"version": "v2"}}]}})
    if virtual_service:
        out.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "httpbin", "namespace": "bar"},
                    "spec": {"hosts": [HOST], "http": [
                        {"match": [{"uri": {"prefix": "/headers"}}],
                         "route": [{"destination": {"host": HOST, "subset": "v2"}}]},
                        {"route": [{"destination": {"host": HOST, "subset": "v1"}}]}]}})
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    the_lab = Lab(tmp_path_factory.mktemp("lab-xds"))
    try:
        the_lab.run("up")
        config = the_lab.config()
        names = [c["name"] for c in config["clusters"]]
        roles = [(c["flavour"], c["istio_role"], c["control_plane"]) for c in config["clusters"]]
        assert roles == [("current", "primary", "cluster1"), ("current", "primary", "cluster2"),
                         ("current", "remote", "cluster1")], roles
        for c in config["clusters"]:
            ctx = c["context"]
            # what the collection's setup writes: the network label, remote secrets (in each primary,
            # for every other cluster), the Gateway
            the_lab.kubectl(ctx, "label", "namespace", "istio-system", f"topology.istio.io/network={c['network']}",
                            "--overwrite")
            if c["istio_role"] != "primary":
                continue
            for peer in names:
                if peer == c["name"]:
                    continue
                kc = the_lab.kubectl(peer, "config", "view", "--raw", "--flatten", "--minify", "--context", peer).stdout
                the_lab.apply(ctx, [{"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": f"istio-remote-secret-{peer}", "namespace": "istio-system",
                                                  "labels": {"istio/multiCluster": "true"},
                                                  "annotations": {"networking.istio.io/cluster": peer}},
                                     "stringData": {peer: kc}}])
        c1, c2, c3 = names
        the_lab.apply(c1, namespaces("foo", "bar", "baz") + [
            deployment("sleep", "foo", {"app": "sleep"}, "curlimages/curl"),
            deployment("httpbin-v1", "bar", {"app": "httpbin", "version": "v1"}, "docker.io/kennethreitz/httpbin"),
            service("httpbin", "bar", 8000),
            service("echo", "baz", 8080)])  # a stub: echo runs in cluster2 only
        the_lab.apply(c1, namespaces("qux", inject=False) + [
            deployment("plain", "qux", {"app": "plain"}, "curlimages/curl")])
        the_lab.apply(c2, namespaces("bar", "baz") + [
            deployment("httpbin-v2", "bar", {"app": "httpbin", "version": "v2"}, "docker.io/kennethreitz/httpbin"),
            service("httpbin", "bar", 8000),
            deployment("echo", "baz", {"app": "echo"}, "docker.io/kennethreitz/httpbin"),
            service("echo", "baz", 8080)])
        the_lab.apply(c3, namespaces("foo") + [deployment("sleep", "foo", {"app": "sleep"}, "curlimages/curl")])
        the_lab.apply(c1, istio_objects(subsets=True, virtual_service=True))
        the_lab.apply(c2, istio_objects(subsets=True, virtual_service=False))
        yield the_lab
    finally:
        the_lab.run("down", check=False)


def sleep_snapshot(lab: Lab, context: str = "cluster1") -> dict:
    pod = lab.pod(context, "foo", "app=sleep")
    path = lab.state / "xds" / context / f"foo_{pod['metadata']['name']}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def wait_for(cond, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except (OSError, ValueError, KeyError, AssertionError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout:.0f}s (last: {last!r})")


def exec_curl(lab: Lab, url: str, request_id: str, context: str = "cluster1") -> tuple[int, dict[str, str]]:
    """curl in the sleep pod, through `kubectl exec` (kwok runs it on the host with the cluster's
    sidecar address as http_proxy)."""
    proc = lab.kubectl(context, "-n", "foo", "exec", "deploy/sleep", "--", "curl", "-sS", "-o", "/dev/null",
                       "-D", "-", "--max-time", "20", "-H", f"x-request-id: {request_id}", url, check=False)
    headers: dict[str, str] = {}
    lines = proc.stdout.replace("\r\n", "\n").split("\n")
    if proc.returncode == 0 and lines and lines[0].startswith("HTTP/"):
        headers[":status"] = lines[0].split(" ")[1]
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return proc.returncode, headers


def eds_of(istiod_http: str, proxy: str, cluster: str) -> list[tuple[str, int]]:
    """The endpoints istiod itself says it sends `proxy` for `cluster` (/debug/edsz)."""
    dump = get_json(f"http://{istiod_http}/debug/edsz?proxyID={proxy}")
    out = []
    for cla in dump.get("configs") or []:
        if cla.get("clusterName") != cluster:
            continue
        for loc in cla.get("endpoints") or []:
            for ep in loc.get("lbEndpoints") or []:
                sa = ep["endpoint"]["address"]["socketAddress"]
                out.append((sa["address"], int(sa["portValue"])))
    return out


INJECTED = ("security.istio.io/tlsMode", "service.istio.io/canonical-name", "service.istio.io/canonical-revision")


def test_pods_of_injection_enabled_namespaces_get_the_injection_labels(lab: Lab):
    def labelled(context, ns, selector):
        pod = lab.pod(context, ns, selector)
        labels = pod["metadata"]["labels"]
        return {k: labels[k] for k in INJECTED} if INJECTED[0] in labels else None
    assert wait_for(lambda: labelled("cluster1", "bar", "app=httpbin"), "httpbin-v1 labelled") == {
        "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "httpbin",
        "service.istio.io/canonical-revision": "v1"}
    assert wait_for(lambda: labelled("cluster2", "bar", "app=httpbin"), "httpbin-v2 labelled")[
        "service.istio.io/canonical-revision"] == "v2"
    assert wait_for(lambda: labelled("cluster1", "foo", "app=sleep"), "sleep labelled") == {
        "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "sleep",
        "service.istio.io/canonical-revision": "latest"}
    # by the lab's field manager, with a merge patch (an Update in managedFields)
    pod = lab.pod("cluster1", "foo", "app=sleep")
    managed = json.loads(lab.kubectl("cluster1", "get", "pod", "-n", "foo", pod["metadata"]["name"], "-o", "json",
                                     "--show-managed-fields").stdout)["metadata"]["managedFields"]
    assert [(m["operation"], sorted(m["fieldsV1"]["f:metadata"]["f:labels"])) for m in managed
            if m["manager"] == "meshlab-injector"] == [("Update", sorted(f"f:{k}" for k in INJECTED))]
    # a namespace without the label: never touched
    time.sleep(2)
    assert not set(INJECTED) & set(lab.pod("cluster1", "qux", "app=plain")["metadata"]["labels"])


def test_each_sidecar_and_gateway_pod_is_a_proxy_connected_to_its_istiod(lab: Lab):
    sleep = lab.pod("cluster1", "foo", "app=sleep")
    proxy = f"{sleep['metadata']['name']}.foo"
    http1 = lab.istiod("cluster1")["http"]

    def connected():
        ids = {s.get("proxy") for s in get_json(f"http://{http1}/debug/syncz")}
        return proxy in ids and any(i and i.startswith("istio-eastwestgateway-") for i in ids)
    wait_for(connected, "sleep and the east-west gateway connected to istiod cluster1")
    dump = get_json(f"http://{http1}/debug/config_dump?proxyID={proxy}")
    kinds = {c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]}
    assert {"ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump"} <= kinds
    status = json.loads((lab.state / "dataplane-status.json").read_text(encoding="utf-8"))
    mine = [c for c in status["xds_clients"] if c["pod"] == sleep["metadata"]["name"]]
    assert mine and mine[0]["connected"] and mine[0]["server"] == lab.istiod("cluster1")["grpc"]


def test_cross_network_subset_request_takes_the_path_istiod_programmed(lab: Lab):
    v2 = f"outbound|8000|v2|{HOST}"
    gw = lab.kubectl("cluster2", "get", "svc", "-n", "istio-system", "istio-eastwestgateway", "-o",
                     "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout
    assert gw.startswith(f"127.100.{INDEX_BASE + 2}.")
    # istiod of cluster1 replaces the v2 pod of network2 by network2's gateway address:15443
    wait_for(lambda: (gw, 15443) in [(e["address"], e["port"]) for e in sleep_snapshot(lab)["endpoints"][v2]],
             "cluster2's gateway in the sleep pod's EDS for subset v2")
    rid = "lab-xds-v2-1"
    rc, h = wait_for(lambda: (lambda r: r if r[1].get(":status") == "200" else None)(
        exec_curl(lab, f"http://{HOST}:8000/headers", rid)), "a 200 through the east-west gateway")
    path = hops.path(lab.state, rid)
    assert [x["hop"] for x in path][-4:] == ["sidecar", "lb", "eastwest-gateway", "pod"], path
    side, lb, ew, pod = path[-4:]
    sleep = lab.pod("cluster1", "foo", "app=sleep")
    # the sidecar: the route istiod sent (VirtualService /headers -> v2), its endpoint, its SNI
    assert side["xds"]["node"].startswith(f"sidecar~{sleep['status']['podIP']}~{sleep['metadata']['name']}.foo~")
    assert side["xds"]["cluster"] == v2 and side["xds"]["endpoint"] == f"{gw}:15443"
    assert (gw, 15443) in eds_of(lab.istiod("cluster1")["http"], f"{sleep['metadata']['name']}.foo", v2)
    assert side["sni"] == f"outbound_.8000_.v2_.{HOST}" and side["xds"]["versions"]["rds"]
    assert lb["cluster"] == "cluster2" and lb["address"] == f"{gw}:15443"
    # the east-west gateway: the SNI cluster of its own xDS, a local v2 pod
    httpbin_v2 = lab.pod("cluster2", "bar", "app=httpbin,version=v2")
    ew_pod = lab.pod("cluster2", "istio-system", "app=istio-eastwestgateway")
    assert ew["xds"]["node"].startswith(f"router~{ew_pod['status']['podIP']}~")
    assert ew["xds"]["cluster"] == f"outbound_.8000_.v2_.{HOST}"
    assert ew["xds"]["endpoint"] == f"{httpbin_v2['status']['podIP']}:80"
    assert (httpbin_v2["status"]["podIP"], 80) in eds_of(
        lab.istiod("cluster2")["http"], f"{ew_pod['metadata']['name']}.istio-system", f"outbound_.8000_.v2_.{HOST}")
    assert pod["pod"] == httpbin_v2["metadata"]["name"] and pod["sni"] == f"outbound_.8000_.v2_.{HOST}"
    assert h["x-meshlink-path"].endswith(f"pod[cluster2 bar/{httpbin_v2['metadata']['name']}]")


def test_local_subset_goes_straight_to_the_pod(lab: Lab):
    rc, h = wait_for(lambda: (lambda r: r if r[1].get(":status") == "200" else None)(
        exec_curl(lab, f"http://{HOST}:8000/ip", "lab-xds-v1-1")), "a 200 from the local v1 pod")
    side, pod = hops.path(lab.state, "lab-xds-v1-1")[-2:]
    v1 = lab.pod("cluster1", "bar", "app=httpbin,version=v1")
    assert side["xds"]["cluster"] == f"outbound|8000|v1|{HOST}"
    assert side["xds"]["endpoint"] == f"{v1['status']['podIP']}:80"
    assert pod["hop"] == "pod" and pod["cluster"] == "cluster1"


def test_a_host_outside_the_gateway_allow_list_is_refused_at_the_gateway(lab: Lab):
    wait_for(lambda: any(e["port"] == 15443 for e in sleep_snapshot(lab)["endpoints"][
        "outbound|8080||echo.baz.svc.cluster.local"]), "cluster2's gateway as echo's endpoint")
    rc, h = exec_curl(lab, "http://echo.baz.svc.cluster.local:8080/ip", "lab-xds-echo-1")
    assert rc == 0 and h[":status"] == "503", h
    ew = [x for x in hops.path(lab.state, "lab-xds-echo-1") if x["hop"] == "eastwest-gateway"]
    assert ew and "no filter chain" in ew[0]["error"], ew


def test_a_remote_client_reaches_both_other_networks_through_their_east_west_gateways(lab: Lab):
    """cluster3 (network3) is a remote of cluster1: its sleep pod is a proxy of cluster1's istiod,
    routed by cluster1's VirtualService (/headers -> v2 in network2, else v1 in network1); each
    subset's endpoint is that network's east-west gateway."""
    gw = {c: lab.kubectl(c, "get", "svc", "-n", "istio-system", "istio-eastwestgateway", "-o",
                         "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout for c in ("cluster1", "cluster2")}
    sleep = lab.pod("cluster3", "foo", "app=sleep")
    proxy = f"{sleep['metadata']['name']}.foo"
    http1 = lab.istiod("cluster1")["http"]
    for subset, context in (("v1", "cluster1"), ("v2", "cluster2")):
        name = f"outbound|8000|{subset}|{HOST}"
        wait_for(lambda: (gw[context], 15443) in [(e["address"], e["port"])
                                                 for e in sleep_snapshot(lab, "cluster3")["endpoints"][name]],
                 f"{context}'s gateway in the remote sleep's EDS for subset {subset}")
        assert (gw[context], 15443) in eds_of(http1, proxy, name)  # what istiod says it sends that proxy
    for path, subset, context in (("/ip", "v1", "cluster1"), ("/headers", "v2", "cluster2")):
        rid = f"lab-xds-remote-{subset}"
        wait_for(lambda: (lambda r: r if r[1].get(":status") == "200" else None)(
            exec_curl(lab, f"http://{HOST}:8000{path}", rid, "cluster3")), f"a 200 from the remote for {path}")
        hop_list = hops.path(lab.state, rid)
        assert [x["hop"] for x in hop_list][-4:] == ["sidecar", "lb", "eastwest-gateway", "pod"], hop_list
        side, lb, ew, pod = hop_list[-4:]
        assert side["cluster"] == "cluster3" and side["xds"]["cluster"] == f"outbound|8000|{subset}|{HOST}"
        assert side["xds"]["node"].startswith(f"sidecar~{sleep['status']['podIP']}~{proxy}~")
        assert side["xds"]["endpoint"] == f"{gw[context]}:15443" and side["sni"] == f"outbound_.8000_.{subset}_.{HOST}"
        assert lb["cluster"] == context and ew["cluster"] == context
        target = lab.pod(context, "bar", f"app=httpbin,version={subset}")
        assert pod["cluster"] == context and pod["pod"] == target["metadata"]["name"]
