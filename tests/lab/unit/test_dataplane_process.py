"""The data plane process (`python -m meshlab.dataplane`) against a fake API server.

A small HTTP server on 127.0.0.1 answers the list/get/patch calls the data plane makes, for
two clusters (10 and 11, path-prefixed), from plain dicts. This checks the process contract
with the lab: ready file, LoadBalancer status, listeners, httpbin processes following pods,
an API server going away, and a clean exit on SIGTERM.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshlab.dataplane import hops  # noqa: E402
from test_dataplane import cluster_cfg, consumer_objects, seed_se, source_objects  # noqa: E402

LAB_DIR = Path(__file__).resolve().parents[1]
C, S = 10, 11  # above a real lab's 1..9, below test_dataplane_io's 20+

# curl is a lab requirement (.ci/run installs it): without it these tests fail, not skip.

ROUTES = {
    "/api/v1/pods": "pods", "/api/v1/services": "services",
    "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices",
    "/apis/apps/v1/namespaces/istio-system/deployments": "deployments",
    "/apis/networking.istio.io/v1alpha3/serviceentries": "serviceentries",
    "/apis/networking.istio.io/v1alpha3/virtualservices": "virtualservices",
    "/apis/networking.istio.io/v1alpha3/destinationrules": "destinationrules",
    "/apis/networking.istio.io/v1alpha3/gateways": "gateways",
}


class FakeApi:
    """cluster name -> objects (as in test_dataplane's builders); `down` clusters answer 503."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.down: set[str] = set()
        self.patches: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _split(self):
                _, cluster, rest = self.path.split("?")[0].split("/", 2)
                return cluster, "/" + rest

            def do_GET(self):
                cluster, path = self._split()
                with api.lock:
                    if cluster in api.down or cluster not in api.objects:
                        return self._send(503, {"message": "down"})
                    objs = api.objects[cluster]
                    if path == "/apis/networking.istio.io":
                        return self._send(200, {"preferredVersion": {"version": "v1alpha3"}})
                    if path in ROUTES:
                        return self._send(200, {"items": copy.deepcopy(objs.get(ROUTES[path], []))})
                    cm = {"/api/v1/namespaces/kube-system/configmaps/coredns": "kube-system/coredns",
                          "/api/v1/namespaces/istio-system/configmaps/istio": "istio-system/istio"}.get(path)
                    if cm and objs["configmaps"].get(cm):
                        return self._send(200, objs["configmaps"][cm])
                return self._send(404, {"message": "not found"})

            def do_PATCH(self):
                cluster, path = self._split()
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                assert self.headers["content-type"] == "application/merge-patch+json"
                parts = path.split("/")  # /api/v1/namespaces/NS/services/NAME/status
                with api.lock:
                    api.patches.append((cluster, f"{parts[4]}/{parts[6]}", body))
                    for svc in api.objects[cluster]["services"]:
                        if (svc["metadata"]["namespace"], svc["metadata"]["name"]) == (parts[4], parts[6]):
                            svc.setdefault("status", {}).update(body["status"])
                            return self._send(200, svc)
                return self._send(404, {"message": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _port_open(ip, port):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((ip, port)) == 0


def _wait(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture()
def running(tmp_path):
    api = FakeApi()
    src = source_objects(S)
    for p in src["pods"]:
        if p["metadata"]["namespace"] == "bar":
            p["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    src["endpointslices"][-1]["ports"][0]["port"] = 8080
    name = f"istio-ingressgateway.istio-system.cluster{S}.lab.meshlink.test"
    api.objects = {f"cluster{C}": consumer_objects(C, se=seed_se(address=name)), f"cluster{S}": src}
    clusters = [cluster_cfg(C), cluster_cfg(S, lb="hostname")]
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": clusters[0]["name"],
        "clusters": [{"name": c["name"], "cluster": {"server": f"http://127.0.0.1:{api.port}/{c['name']}"}}
                     for c in clusters],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": c["name"], "context": {"cluster": c["name"], "user": "u"}} for c in clusters],
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    (tmp_path / "clusters.json").write_text(json.dumps({"kubeconfig": str(tmp_path / "kubeconfig"),
                                                        "clusters": clusters}))
    log = open(tmp_path / "dataplane.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "meshlab.dataplane", "--state-dir", str(tmp_path)],
                            cwd=LAB_DIR, env={**os.environ, "PYTHONPATH": str(LAB_DIR)},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _wait(lambda: (tmp_path / "dataplane.ready").exists() or proc.poll() is not None, 40), \
            (tmp_path / "dataplane.log").read_text()
        assert proc.poll() is None, (tmp_path / "dataplane.log").read_text()
        yield api, proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        api.server.shutdown()


def curl(url, *extra):
    env = {**os.environ, "http_proxy": f"http://127.60.{C}.1:15001", "no_proxy": ""}
    return subprocess.run(["curl", "-sS", "--max-time", "20", "-D", "-", *extra, url],
                          capture_output=True, text=True, env=env, timeout=30)


def test_process_contract(running):
    api, proc, state = running
    ready = json.loads((state / "dataplane.ready").read_text())
    assert ready["clusters"] == {f"cluster{C}": "ok", f"cluster{S}": "ok"}

    # load balancers: ip mode in cluster7, hostname mode (+ lab resolver) in cluster8
    svc = {(c, k): b for c, k, b in api.patches}
    assert svc[(f"cluster{C}", "istio-system/istio-ingressgateway")]["status"]["loadBalancer"]["ingress"] == [
        {"ip": f"127.100.{C}.1", "ipMode": "VIP"}]
    name = f"istio-ingressgateway.istio-system.cluster{S}.lab.meshlink.test"
    assert svc[(f"cluster{S}", "istio-system/istio-ingressgateway")]["status"]["loadBalancer"]["ingress"] == [
        {"hostname": name}]
    assert json.loads((state / "lb-hosts.json").read_text())[name] == f"127.100.{S}.1"
    assert json.loads((state / "lb-allocations.json").read_text())[f"cluster{S}"][
        "istio-system/istio-ingressgateway"] == 1
    n_patches = len(api.patches)

    # the seed request, through the hostname endpoint
    out = curl("http://httpbin.bar.global:8000/ip", "-H", "x-request-id: proc-1")
    assert out.returncode == 0 and " 200 " in out.stdout.splitlines()[0], out.stdout + out.stderr
    assert [h["hop"] for h in hops.path(state, "proc-1")] == ["sidecar", "lb", "ingress-gateway", "pod"]
    time.sleep(1.5)
    assert len(api.patches) == n_patches  # statuses are written once, not on every poll

    # a pod goes away: its httpbin stops; one comes back: it starts
    with api.lock:
        pods = api.objects[f"cluster{S}"]["pods"]
        gone = next(p for p in pods if p["metadata"]["name"] == "httpbin-v2")
        pods.remove(gone)
    assert _wait(lambda: not _port_open(f"127.18.{S}.21", 8080))
    with api.lock:
        pods.append(gone)
    assert _wait(lambda: _port_open(f"127.18.{S}.21", 8080))

    # an API server going away: the other cluster keeps being served, the last view is kept
    with api.lock:
        api.down.add(f"cluster{S}")
    time.sleep(2.5)
    assert proc.poll() is None
    out = curl("http://httpbin.bar.global:8000/ip")
    assert out.returncode == 0 and " 200 " in out.stdout.splitlines()[0]
    status = json.loads((state / "dataplane-status.json").read_text())
    assert status["clusters"][f"cluster{S}"]["ok"] is False
    with api.lock:
        api.down.clear()

    # SIGTERM: listeners and httpbin processes stop, the ready file goes
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert not (state / "dataplane.ready").exists()
    assert not _port_open(f"127.60.{C}.1", 15001)
    assert not _port_open(f"127.18.{S}.20", 8080)
    assert not _port_open(f"127.100.{S}.1", 15443)
