"""The lab's "current Istio" side against the real istiod, on a small lab of its own.

Its own state directory and address index base (LAB_INDEX_BASE=60), so it runs beside the
suite's lab: cluster1 a current primary, cluster2 a remote of cluster1 on another network,
cluster3 seed-era (Istio 1.7.8, validated by the lab's validator istiod). Besides the lab's
objects and istiods: the emulated sidecar injector (labels on the pods of injection-enabled
namespaces, in the primary and in its remote) and a request from the remote's client pod to a
service of the primary's network through the primary's east-west gateway, on the path istiod
programmed for the remote's proxy. Torn down at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab" / "lab"
sys.path.insert(0, str(REPO / "tests" / "lab"))
from meshlab import istiod, versions  # noqa: E402
from meshlab.dataplane import hops  # noqa: E402

INDEX_BASE = 60
SETTINGS = {"LAB_CLUSTERS": "3", "LAB_INDEX_BASE": str(INDEX_BASE), "LAB_ISTIO_VERSION": "1.26.0,cluster3=1.7.8",
            "LAB_ISTIO_ROLE": "cluster2=remote:cluster1", "LAB_MESH_ID": "mesh1", "LAB_NETWORK": "",
            "LAB_LB": "ip", "LAB_WITHOUT": ""}


class Lab:
    def __init__(self, state: Path):
        self.state = state
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        self.env = {**env, **SETTINGS, "LAB_STATE_DIR": str(state)}

    def run(self, *args: str, check: bool = True, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(LAB), *args], capture_output=True, text=True, env={**self.env, **env},
                              check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} rc={proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, context: str, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(versions.kube_bin("kubectl")), "--kubeconfig", str(self.state / "kubeconfig"),
                               "--context", context, *args], input=stdin, capture_output=True, text=True,
                              check=False, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl --context {context} {' '.join(args)}:\n{proc.stdout}{proc.stderr}")
        return proc

    def apply(self, context: str, obj: dict, check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl(context, "apply", "-f", "-", stdin=json.dumps(obj), check=check)

    def config(self) -> dict[str, Any]:
        return json.loads((self.state / "clusters.json").read_text(encoding="utf-8"))

    def istiod(self, name: str) -> dict[str, Any]:
        return json.loads((self.state / "istiod" / f"{name}.json").read_text(encoding="utf-8"))

    def istiod_pod(self, context: str) -> str:
        return self.kubectl(context, "get", "pod", "-n", "istio-system", "-l", "app=istiod", "-o",
                            "jsonpath={.items[0].metadata.name}").stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    the_lab = Lab(tmp_path_factory.mktemp("lab-current-istio"))
    try:
        the_lab.run("up")
        yield the_lab
    finally:
        the_lab.run("down", check=False)


def get_json(url: str) -> Any:
    assert url.startswith("http://127.0.0.1:"), url  # the network rule: loopback only
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


def service_entry(version: str, name: str, addresses: list[str] | None = None) -> dict:
    spec: dict[str, Any] = {"hosts": [f"{name}.example.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
                            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}
    if addresses is not None:
        spec["addresses"] = addresses
        spec["resolution"] = "STATIC"
        spec["endpoints"] = [{"address": "127.100.1.1"}]
    return {"apiVersion": f"networking.istio.io/{version}", "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


class PortForward:
    """`kubectl port-forward` to a pod, on a local port kubectl picks."""

    def __init__(self, lab: Lab, context: str, pod: str, pod_port: int):
        self.proc = subprocess.Popen(
            [str(versions.kube_bin("kubectl")), "--kubeconfig", str(lab.state / "kubeconfig"), "--context", context,
             "port-forward", "-n", "istio-system", f"pod/{pod}", f":{pod_port}",
             "--address", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        if not match:
            self.close()
            raise AssertionError(f"kubectl port-forward: {line}")
        self.local = int(match.group(1))

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def test_lab_records_the_topology_and_runs_a_ready_istiod(lab: Lab):
    config = lab.config()
    c1, c2, c3 = config["clusters"]
    assert (c1["flavour"], c1["istio_role"], c1["control_plane"], c1["network"], c1["mesh_id"]) == (
        "current", "primary", "cluster1", "network1", "mesh1")
    assert (c2["flavour"], c2["istio_role"], c2["control_plane"], c2["network"]) == (
        "current", "remote", "cluster1", "network2")
    assert (c3["flavour"], c3["validated_by"]) == ("seed", "validator")
    info = lab.istiod("cluster1")
    assert info["version"] == versions.ISTIOD_VERSION and info["cluster"] == "cluster1"
    ports = istiod.ports(INDEX_BASE + 1)
    assert info["grpc"] == f"127.0.0.1:{ports['grpc']}" and info["monitoring"] == f"127.0.0.1:{ports['monitoring']}"
    assert {"pid", "secure_grpc", "http", "https"} <= set(info)
    with urllib.request.urlopen(f"http://{info['http']}/ready", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
    assert not (lab.state / "istiod" / "cluster2.json").exists()  # a remote's istiod is its primary's
    status = lab.run("status")
    assert "istiod cluster1" in status.stdout and "NOT READY" not in status.stdout
    # what setup must write itself is not there
    ns = json.loads(lab.kubectl("cluster1", "get", "namespace", "istio-system", "-o", "json").stdout)
    assert "topology.istio.io/network" not in ns["metadata"].get("labels", {})
    remote_ns = json.loads(lab.kubectl("cluster2", "get", "namespace", "istio-system", "-o", "json").stdout)
    assert remote_ns["metadata"]["annotations"]["topology.istio.io/controlPlaneClusters"] == "cluster1"
    assert lab.kubectl("cluster1", "get", "gateways.networking.istio.io", "-A", "-o", "name").stdout.strip() == ""
    # the cluster's cacerts Secret is istiod's CA
    log = Path(info["log"]).read_text(encoding="utf-8")
    assert "cacerts Secret found in config cluster" in log and "Use local CA certificate" in log


@pytest.mark.parametrize("context", ["cluster1", "cluster2"])
def test_webhook_refuses_an_invalid_service_entry(lab: Lab, context: str):
    hooks = json.loads(lab.kubectl(context, "get", "validatingwebhookconfiguration", "istio-validator-istio-system",
                                   "-o", "json").stdout)["webhooks"]
    assert hooks[0]["failurePolicy"] == "Fail" and hooks[0]["clientConfig"]["caBundle"]
    assert hooks[0]["clientConfig"]["url"] == f"https://{lab.istiod('cluster1')['https']}/validate"
    bad = lab.apply(context, service_entry("v1", "bad", ["not-an-ip"]), check=False)
    assert bad.returncode != 0
    assert 'admission webhook "rev.validation.istio.io" denied the request' in bad.stderr
    assert "not-an-ip is not a valid IP" in bad.stderr
    good = lab.apply(context, service_entry("v1", "good", ["240.0.0.5"]))
    assert "created" in good.stdout or "configured" in good.stdout


def test_seed_cluster_refuses_an_invalid_service_entry(lab: Lab):
    assert lab.kubectl("cluster3", "get", "serviceentries.v1.networking.istio.io", check=False).returncode != 0
    bad = lab.apply("cluster3", service_entry("v1alpha3", "bad", ["not-an-ip"]), check=False)
    assert bad.returncode != 0
    assert 'admission webhook "validation.istio.io" denied the request' in bad.stderr
    assert "not-an-ip is not a valid IP" in bad.stderr
    lab.apply("cluster3", service_entry("v1alpha3", "good", ["240.0.0.6"]))
    validator = lab.istiod("validator")
    assert validator["cluster"] == "cluster3" and validator["version"] == versions.ISTIOD_VERSION


def test_clusterz_through_kubectl_port_forward(lab: Lab):
    forward = PortForward(lab, "cluster1", lab.istiod_pod("cluster1"), 15014)
    try:
        clusterz = get_json(f"http://127.0.0.1:{forward.local}/debug/clusterz")
    finally:
        forward.close()
    assert {"id": "cluster1", "secretName": "", "syncStatus": "synced"} in clusterz


def test_clusterz_through_the_python_client_port_forward(lab: Lab):
    from kubernetes import client, config
    from kubernetes.stream import portforward

    api = client.CoreV1Api(config.new_client_from_config(str(lab.state / "kubeconfig"), context="cluster1"))
    pf = portforward(api.connect_get_namespaced_pod_portforward, lab.istiod_pod("cluster1"), "istio-system",
                     ports="15014")
    try:
        sock = pf.socket(15014)
        sock.settimeout(10)
        sock.sendall(b"GET /debug/clusterz HTTP/1.1\r\nHost: istiod\r\nConnection: close\r\n\r\n")
        data = read_http_response(sock)
    finally:
        pf.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert {"id": "cluster1", "secretName": "", "syncStatus": "synced"} in json.loads(body)


def read_http_response(sock) -> bytes:
    """One HTTP/1.1 response, read up to its Content-Length: a stream forwarded by the Python
    client does not report the server's close."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: (\d+)", head)
        if sep and length and len(body) >= int(length.group(1)):
            return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_grpc_through_port_forward(lab: Lab):
    """15010 on the istiod pod is istiod's plaintext gRPC (ADS) port."""
    forward = PortForward(lab, "cluster1", lab.istiod_pod("cluster1"), 15010)
    try:
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "--max-time", "5",
                              "-X", "POST", "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "--data-binary", "@-", f"http://127.0.0.1:{forward.local}/grpc.health.v1.Health/Check"],
                             input=b"\0\0\0\0\0", capture_output=True, check=False, timeout=30)
    finally:
        forward.close()
    assert b"content-type: application/grpc" in out.stdout, out
    assert b"grpc-status: 12" in out.stdout  # UNIMPLEMENTED: a gRPC server that has no health service


def setup_like(lab: Lab) -> None:
    """What the collection's setup writes for cluster1 and its remote cluster2 (idempotent): the
    network labels, the remote secret, the cross-network Gateway on the primary."""
    lab.kubectl("cluster1", "label", "--overwrite", "namespace", "istio-system", "topology.istio.io/network=network1")
    lab.kubectl("cluster2", "label", "--overwrite", "namespace", "istio-system", "topology.istio.io/network=network2")
    kubeconfig = yaml.safe_load((lab.state / "kubeconfig").read_text(encoding="utf-8"))
    lab.apply("cluster1", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "istio-remote-secret-cluster2", "namespace": "istio-system",
                     "labels": {"istio/multiCluster": "true"},
                     "annotations": {"networking.istio.io/cluster": "cluster2"}},
        "stringData": {"cluster2": yaml.safe_dump(istiod.inline_kubeconfig(kubeconfig, "cluster2"))}})
    lab.apply("cluster1", {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "cross-network-gateway", "namespace": "istio-system"},
        "spec": {"selector": {"istio": "eastwestgateway"},
                 "servers": [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                              "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]}})


def lb_ip(lab: Lab, context: str) -> str:
    svc = json.loads(lab.kubectl(context, "get", "service", "-n", "istio-system", "istio-eastwestgateway", "-o",
                                 "json").stdout)
    return svc["status"]["loadBalancer"]["ingress"][0]["ip"]


def test_networkz_and_remote_cluster_after_setup_like_labels(lab: Lab):
    """What the collection's setup does (network labels, a remote secret) shows in istiod's debug."""
    setup_like(lab)
    monitoring = lab.istiod("cluster1")["monitoring"]
    want = {("network1", "cluster1", lb_ip(lab, "cluster1"), 15443),
            ("network2", "cluster2", lb_ip(lab, "cluster2"), 15443)}
    deadline = time.monotonic() + 30
    while True:
        networkz = {(g["Network"], g["Cluster"], g["Addr"], g["Port"])
                    for g in get_json(f"http://{monitoring}/debug/networkz")}
        clusterz = {c["id"]: c for c in get_json(f"http://{monitoring}/debug/clusterz")}
        if want <= networkz and clusterz.get("cluster2", {}).get("syncStatus") == "synced":
            break
        assert time.monotonic() < deadline, (networkz, clusterz)
        time.sleep(0.5)
    assert clusterz["cluster2"]["secretName"] == "istio-system/istio-remote-secret-cluster2"
    # EXTERNAL_ISTIOD + the remote's controlPlaneClusters annotation: istiod leads in cluster2
    deadline = time.monotonic() + 30
    while lab.kubectl("cluster2", "get", "configmap", "-n", "default", "istio-ca-root-cert",
                      check=False).returncode != 0:
        assert time.monotonic() < deadline, "istiod wrote no istio-ca-root-cert into its remote"
        time.sleep(0.5)


INJECTED = ("security.istio.io/tlsMode", "service.istio.io/canonical-name", "service.istio.io/canonical-revision")


def sample_apps(lab: Lab) -> None:
    """httpbin (v1) in cluster1/bar, sleep in cluster2/foo, both namespaces labelled for injection,
    no injection labels on the pods; `plain` in cluster2/qux, a namespace without the label."""
    def namespace(name: str, inject: bool) -> dict:
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"istio-injection": "enabled"} if inject else {}}}

    def deployment(name: str, ns: str, labels: dict, image: str) -> dict:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "main", "image": image,
                                                               "ports": [{"containerPort": 80}]}]}}}}

    for obj in [namespace("bar", True), deployment("httpbin-v1", "bar", {"app": "httpbin", "version": "v1"},
                                                   "docker.io/kennethreitz/httpbin"),
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin", "namespace": "bar"},
                 "spec": {"selector": {"app": "httpbin"},
                          "ports": [{"name": "http", "port": 8000, "targetPort": 80}]}}]:
        lab.apply("cluster1", obj)
    for obj in [namespace("foo", True), deployment("sleep", "foo", {"app": "sleep"}, "curlimages/curl"),
                namespace("qux", False), deployment("plain", "qux", {"app": "plain"}, "curlimages/curl")]:
        lab.apply("cluster2", obj)


def running_pod(lab: Lab, context: str, ns: str, selector: str, managed_fields: bool = False) -> dict:
    extra = ["--show-managed-fields"] if managed_fields else []
    items = json.loads(lab.kubectl(context, "get", "pods", "-n", ns, "-l", selector, "-o", "json", *extra).stdout)
    running = [p for p in items["items"] if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
    assert running, f"no running pod {selector} in {context}/{ns}"
    return running[0]


def wait_for(cond, what: str, timeout: float = 60.0):
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


def test_injection_labels_pods_of_enabled_namespaces_in_primary_and_remote(lab: Lab):
    sample_apps(lab)
    httpbin = wait_for(lambda: (lambda p: p if INJECTED[0] in p["metadata"]["labels"] else None)(
        running_pod(lab, "cluster1", "bar", "app=httpbin", managed_fields=True)), "injection labels on httpbin")
    labels = httpbin["metadata"]["labels"]
    assert {k: labels[k] for k in INJECTED} == {"security.istio.io/tlsMode": "istio",
                                                "service.istio.io/canonical-name": "httpbin",
                                                "service.istio.io/canonical-revision": "v1"}
    mine = [m for m in httpbin["metadata"]["managedFields"] if m["manager"] == "meshlab-injector"]
    assert mine and set(mine[0]["fieldsV1"]["f:metadata"]["f:labels"]) == {f"f:{k}" for k in INJECTED}
    # the remote's pods too (the remote profile's injector is the primary's istiod)
    sleep = wait_for(lambda: (lambda p: p if INJECTED[0] in p["metadata"]["labels"] else None)(
        running_pod(lab, "cluster2", "foo", "app=sleep")), "injection labels on the remote's sleep")
    assert sleep["metadata"]["labels"]["service.istio.io/canonical-name"] == "sleep"
    assert sleep["metadata"]["labels"]["service.istio.io/canonical-revision"] == "latest"
    wait_for(lambda: running_pod(lab, "cluster2", "qux", "app=plain"), "the pod of a namespace without the label")
    time.sleep(2)  # two polls of the data plane
    plain = running_pod(lab, "cluster2", "qux", "app=plain")
    assert not set(INJECTED) & set(plain["metadata"]["labels"])  # never touched


def test_remote_client_reaches_the_primary_network_through_its_east_west_gateway(lab: Lab):
    """Primary-remote: the remote's sleep pod is a proxy of the primary's istiod; istiod gives it
    the primary network's east-west gateway for httpbin (a pod of network1, labelled by the
    injector), and the request takes that path."""
    setup_like(lab)
    sample_apps(lab)
    host, cluster = "httpbin.bar.svc.cluster.local", "outbound|8000||httpbin.bar.svc.cluster.local"
    gw = lb_ip(lab, "cluster1")
    assert gw.startswith(f"127.100.{INDEX_BASE + 1}.")
    sleep = running_pod(lab, "cluster2", "foo", "app=sleep")
    name = sleep["metadata"]["name"]
    snapshot = lab.state / "xds" / "cluster2" / f"foo_{name}.json"

    def gateway_in_eds():
        snap = json.loads(snapshot.read_text(encoding="utf-8"))
        return (gw, 15443) in [(e["address"], e["port"]) for e in snap["endpoints"].get(cluster, [])]
    wait_for(gateway_in_eds, "cluster1's east-west gateway in the remote sleep's EDS for httpbin", 90)
    http = lab.istiod("cluster1")["http"]
    assert f"{name}.foo" in {s.get("proxy") for s in get_json(f"http://{http}/debug/syncz")}
    rid = "lab-current-remote-1"

    def curl():
        proc = lab.kubectl("cluster2", "-n", "foo", "exec", "deploy/sleep", "--", "curl", "-sS", "-o", "/dev/null",
                           "-w", "%{http_code}", "--max-time", "20", "-H", f"x-request-id: {rid}",
                           f"http://{host}:8000/ip", check=False)
        return proc.stdout == "200"
    wait_for(curl, "a 200 from the remote's sleep through cluster1's east-west gateway", 60)
    path = hops.path(lab.state, rid)
    assert [h["hop"] for h in path][-4:] == ["sidecar", "lb", "eastwest-gateway", "pod"], path
    side, lb, ew, pod = path[-4:]
    assert side["cluster"] == "cluster2" and side["xds"]["cluster"] == cluster
    assert side["xds"]["node"].startswith(f"sidecar~{sleep['status']['podIP']}~{name}.foo~")
    assert side["xds"]["endpoint"] == f"{gw}:15443" and side["sni"] == f"outbound_.8000_._.{host}"
    # what istiod itself says it sends that proxy
    eds = get_json(f"http://{http}/debug/edsz?proxyID={name}.foo")
    sockets = [ep["endpoint"]["address"]["socketAddress"] for cla in eds.get("configs") or []
               if cla.get("clusterName") == cluster for loc in cla.get("endpoints") or []
               for ep in loc.get("lbEndpoints") or []]
    addrs = [(sa["address"], sa["portValue"]) for sa in sockets]
    assert (gw, 15443) in addrs, addrs
    assert lb["cluster"] == "cluster1" and lb["address"] == f"{gw}:15443"
    httpbin = running_pod(lab, "cluster1", "bar", "app=httpbin")
    assert ew["cluster"] == "cluster1" and ew["xds"]["endpoint"] == f"{httpbin['status']['podIP']}:80"
    assert pod["cluster"] == "cluster1" and pod["pod"] == httpbin["metadata"]["name"]


def test_remote_has_the_remote_profiles_istiod_service(lab: Lab):
    svc = json.loads(lab.kubectl("cluster2", "get", "service", "-n", "istio-system", "istiod", "-o", "json").stdout)
    assert "selector" not in svc["spec"] and svc["spec"]["type"] == "ClusterIP"
    assert {(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        ("tcp-istiod", 15012, 15012), ("tcp-webhook", 443, 15017)}
    slices = lab.kubectl("cluster2", "get", "endpointslices", "-n", "istio-system", "-l",
                         "kubernetes.io/service-name=istiod", "-o", "name").stdout
    assert slices.strip() == ""  # the primary's loopback gateway address would be refused


def test_up_repairs_the_webhook_of_a_dead_istiod(lab: Lab):
    """failurePolicy Fail with istiod gone refuses every Istio write; `lab up` repairs that."""
    blocked_pid = lab.istiod("cluster1")["pid"]
    os.kill(blocked_pid, signal.SIGKILL)
    time.sleep(0.5)
    blocked = lab.apply("cluster1", service_entry("v1", "while-down"), check=False)
    assert blocked.returncode != 0 and "failed calling webhook" in blocked.stderr
    # (the data plane keeps running: restarting it is not what this is about, and takes time)
    up = lab.run("up", LAB_DATAPLANE="off")
    assert "istiod behind webhook istio-validator-istio-system is down: webhook removed" in up.stdout
    assert lab.istiod("cluster1")["pid"] != blocked_pid
    lab.apply("cluster1", service_entry("v1", "while-down"))
    bad = lab.apply("cluster1", service_entry("v1", "bad-again", ["not-an-ip"]), check=False)
    assert "denied the request" in bad.stderr
