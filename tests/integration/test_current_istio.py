"""Current Istio (issue 11): the multi-network mesh, driven by the same inventory, proven
against real istiods.

The module brings up its own lab (tests/lab/state-current, address index base 10): three
clusters standing for Istio 1.30 with a real istiod (pilot-discovery built from istio.io/istio)
per primary, each on its own network with an east-west gateway:

    cluster1  primary, network1      exports echo (subsets v1/v2, routed to v2)
    cluster2  primary, network2      exports httpbin; consumes echo and hello
    cluster3  remote of cluster1, network3   exports hello; consumes httpbin and echo

so the mesh is multi-primary on two networks plus one primary-remote pair. The playbooks run
as the collection's own ServiceAccount (access.yml, run with the lab's admin credentials).
Assertions read istiod's own debug endpoints (clusterz, networkz, endpointShardz, edsz,
registryz), on its HTTP debug port on loopback (the collection reads them through
pods/portforward, as istioctl does; the lab's answer is the same process), and the hops the
data plane recorded, which follow what istiod programmed over xDS.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BIN, KUBECTL, LAB, REPO, Run, playbook_env

STATE = REPO / "tests" / "lab" / "state-current"
LAB_ENV = {"LAB_STATE_DIR": str(STATE), "LAB_INDEX_BASE": "10", "LAB_CLUSTERS": "3", "LAB_ISTIO_VERSION": "1.30.0",
           "LAB_ISTIO_ROLE": "cluster3=remote:cluster1"}
CLUSTERS = ("cluster1", "cluster2", "cluster3")
NETWORKS = {"cluster1": "network1", "cluster2": "network2", "cluster3": "network3"}
PORTS = [{"name": "http1", "number": 8000, "protocol": "http"}]
SUBSETS = [{"name": "v1", "pod_labels": {"version": "v1"}}, {"name": "v2", "pod_labels": {"version": "v2"}}]
SERVICES = [
    {"name": "httpbin", "namespace": "bar", "cluster": "cluster2", "ports": PORTS,
     "consumers": [{"cluster": "cluster1", "namespace": "foo"}, {"cluster": "cluster3", "namespace": "foo"}]},
    {"name": "echo", "namespace": "echo", "cluster": "cluster1", "ports": PORTS, "subsets": SUBSETS,
     "route_subset": "v2", "consumers": [{"cluster": "cluster2", "namespace": "foo"},
                                          {"cluster": "cluster3", "namespace": "foo"}]},
    {"name": "hello", "namespace": "baz", "cluster": "cluster3", "ports": PORTS,
     "consumers": [{"cluster": "cluster2", "namespace": "foo"}]},
]
MESH_LABEL = "meshlink.io/mesh=default"


def run_lab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(LAB), *args], capture_output=True, text=True, env={**os.environ, **LAB_ENV},
                          check=False, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class Current:
    """The lab, its istiods' debug ports, and playbook runs as the collection's ServiceAccount."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.admin = str(STATE / "kubeconfig")
        self.kubeconfigs: dict[str, str] = {}

    def kubectl(self, ctx: str, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(KUBECTL), "--kubeconfig", self.admin, "--context", ctx, *args], input=stdin,
                              capture_output=True, text=True, check=False, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl --context {ctx} {' '.join(args)}: {proc.stderr}")
        return proc

    def get(self, ctx: str, *args: str) -> Any:
        proc = self.kubectl(ctx, "get", *args, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return json.loads(proc.stdout)

    def debug(self, cluster: str, path: str) -> Any:
        """istiod's debug endpoint of a primary (its HTTP port on loopback)."""
        address = json.loads((STATE / "istiod" / f"{cluster}.json").read_text(encoding="utf-8"))["http"]
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())

    def hosts(self, **per_host: dict) -> dict:
        hosts = {}
        for c in CLUSTERS:
            hosts[c] = {"meshlink_kubeconfig": self.kubeconfigs.get(c, self.admin), "meshlink_context": c,
                        "meshlink_network": NETWORKS[c]}
        hosts["cluster3"].update(meshlink_istio_role="remote", meshlink_istio_primary="cluster1")
        for host, extra in per_host.items():
            hosts[host].update(extra)
        return hosts

    def play(self, playbook: str, *flags: str, services: list | None = None, hosts: dict | None = None,
             **extra: Any) -> Run:
        inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                "meshlink_topology": "multi_primary", "meshlink_allow_loopback_api_server": True,
                                "meshlink_deploy_sample_apps": True, "meshlink_connectivity_timeout": 90,
                                "meshlink_services": SERVICES if services is None else services, **extra},
                       "hosts": hosts or self.hosts()}}
        path = self.tmp / f"inventory-{uuid.uuid4().hex[:8]}.yml"
        path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path),
                               str(REPO / "playbooks" / f"{playbook}.yml"), *flags],
                              capture_output=True, text=True, cwd=REPO, env=playbook_env(), check=False, timeout=900)
        return Run(proc)

    def exec_curl(self, ctx: str, namespace: str, url: str, request_id: str) -> subprocess.CompletedProcess:
        pod = self.kubectl(ctx, "get", "pod", "-n", namespace, "-l", "app=sleep", "-o",
                           "jsonpath={.items[0].metadata.name}").stdout
        return self.kubectl(ctx, "exec", "-n", namespace, pod, "-c", "sleep", "--", "curl", "-sS", "--max-time", "10",
                            "-H", f"x-request-id: {request_id}", url, check=False)

    def hops(self, request_id: str) -> list[dict]:
        out = run_lab("hops", request_id).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def current(tmp_path_factory):
    run_lab("up")
    lab = Current(tmp_path_factory.mktemp("current"))
    try:
        access = lab.play("access", hosts=lab.hosts(), meshlink_access_kubeconfig_dir=str(lab.tmp / "sa"),
                          meshlink_access_extra_namespaces=["foo", "bar", "echo", "baz"])
        assert access.rc == 0, access.report()
        lab.kubeconfigs = {c: str(lab.tmp / "sa" / f"{c}.kubeconfig") for c in CLUSTERS}
        yield lab
    finally:
        run_lab("down", check=False)


def edsz_endpoints(lab: Current, istiod: str, client_cluster: str, namespace: str, cluster_name: str) -> list[str]:
    """The endpoints istiod sent a sleep sidecar of ``client_cluster`` for one Envoy cluster."""
    proxies = sorted(p["proxy"] for p in lab.debug(istiod, "/debug/syncz")
                     if p["proxy"].startswith("sleep-") and p["proxy"].endswith("." + namespace)
                     and p.get("cluster_id") == client_cluster)
    assert proxies, f"no sleep proxy of {client_cluster}/{namespace} connected to istiod of {istiod}"
    answer = lab.debug(istiod, f"/debug/edsz?proxyID={proxies[0]}")
    found = []
    for item in answer.get("configs") or []:
        if item.get("clusterName") == cluster_name:
            for locality in item.get("endpoints") or []:
                for endpoint in locality.get("lbEndpoints") or []:
                    socket = endpoint["endpoint"]["address"]["socketAddress"]
                    found.append(f"{socket['address']}:{socket['portValue']}")
    return found


def eastwest_address(lab: Current, ctx: str) -> str:
    svc = lab.get(ctx, "service", "istio-eastwestgateway", "-n", "istio-system")
    return f"{svc['status']['loadBalancer']['ingress'][0]['ip']}:15443"


# ---------------------------------------------------------------- preflight, before any write

def test_a_loopback_api_server_is_refused_without_the_lab_opt_in(current):
    run = current.play("preflight", meshlink_allow_loopback_api_server=False)
    assert run.rc != 0
    text = " ".join(run.out.split())
    assert "a loopback address: the other clusters' istiods cannot dial it" in text, run.report()
    assert "Set meshlink_api_server_for_peers" in text


def test_a_cluster_name_that_is_not_istiods_cluster_id_is_named(current):
    run = current.play("preflight", hosts=current.hosts(cluster2={"meshlink_istio_cluster_name": "cluster-two"}))
    assert run.rc != 0
    text = " ".join(run.out.split())
    assert "istiod runs with CLUSTER_ID=cluster2, the inventory calls this cluster cluster-two" in text, run.report()


def test_two_mesh_ids_stop_the_run(current):
    config = current.get("cluster2", "configmap", "istio", "-n", "istio-system")
    changed = copy.deepcopy(config)
    changed["data"]["mesh"] = config["data"]["mesh"].replace("meshId: mesh1", "meshId: other-mesh")
    assert changed["data"]["mesh"] != config["data"]["mesh"], config["data"]["mesh"]
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        changed["metadata"].pop(key, None)
    try:
        current.kubectl("cluster2", "apply", "-f", "-", stdin=json.dumps(changed))
        run = current.play("preflight")
        assert run.rc != 0
        assert "do not share one mesh ID" in " ".join(run.out.split()), run.report()
        assert current.get("cluster1", "secret", "-n", "istio-system", "-l", "istio/multiCluster=true")["items"] == []
    finally:
        restore = copy.deepcopy(config)
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            restore["metadata"].pop(key, None)
        current.kubectl("cluster2", "apply", "-f", "-", stdin=json.dumps(restore))


# ---------------------------------------------------------------- setup

def test_setup_writes_what_istiod_expects_and_only_that(current):
    run = current.play("setup")
    assert run.rc == 0, run.report()
    for ctx in CLUSTERS:
        ns = current.get(ctx, "namespace", "istio-system")
        assert ns["metadata"]["labels"]["topology.istio.io/network"] == NETWORKS[ctx]
    # remote secrets: in each primary, one per cluster it reads, named and keyed as istiod expects
    for primary, peers in (("cluster1", ("cluster2", "cluster3")), ("cluster2", ("cluster1", "cluster3"))):
        secrets = current.get(primary, "secret", "-n", "istio-system", "-l", "istio/multiCluster=true")["items"]
        assert sorted(s["metadata"]["name"] for s in secrets) == sorted(f"istio-remote-secret-{p}" for p in peers)
        for secret in secrets:
            peer = secret["metadata"]["annotations"]["networking.istio.io/cluster"]
            assert list(secret["data"]) == [peer]
            config = yaml.safe_load(base64.b64decode(secret["data"][peer]))
            user = config["users"][0]["user"]
            assert set(user) == {"token"}, "inline credentials only (istiod refuses files and exec)"
            assert secret["metadata"]["annotations"]["meshlink.io/token-expires"].endswith("Z")
            # the token is bounded: a TokenRequest token, of the reader ServiceAccount of this primary
            claims = json.loads(base64.urlsafe_b64decode(user["token"].split(".")[1] + "=="))
            assert claims["sub"] == f"system:serviceaccount:istio-system:meshlink-reader-{primary}"
            assert 0 < claims["exp"] - time.time() <= 86400 + 60
    # the east-west Gateway exposes the exported hosts only (an allow-list), per primary
    gw1 = current.get("cluster1", "gateways.networking.istio.io", "cross-network-gateway", "-n", "istio-system")
    gw2 = current.get("cluster2", "gateways.networking.istio.io", "cross-network-gateway", "-n", "istio-system")
    assert gw1["spec"]["servers"][0]["hosts"] == ["echo.echo.svc.cluster.local", "hello.baz.svc.cluster.local"]
    assert gw2["spec"]["servers"][0]["hosts"] == ["httpbin.bar.svc.cluster.local"]
    assert gw1["spec"]["servers"][0]["tls"] == {"mode": "AUTO_PASSTHROUGH"}
    assert current.get("cluster1", "gateways.networking.istio.io", "istiod-gateway", "-n", "istio-system")
    assert current.get("cluster3", "gateways.networking.istio.io", "-n", "istio-system")["items"] == []
    # subsets on the .svc.cluster.local host, both sides
    assert current.get("cluster2", "destinationrules.networking.istio.io", "echo-echo-remote", "-n", "foo")
    assert current.get("cluster1", "destinationrules.networking.istio.io", "echo-echo-local", "-n", "echo")
    # the remote cluster3's routing lives in its primary, where cluster1's istiod reads it; none in cluster3
    assert current.get("cluster1", "virtualservices.networking.istio.io", "echo-echo-remote", "-n", "foo")
    for kind in ("destinationrules.networking.istio.io", "virtualservices.networking.istio.io"):
        assert current.get("cluster3", kind, "-A")["items"] == [], kind


def test_every_peer_is_synced_in_istiod(current):
    for primary, peers in (("cluster1", {"cluster2", "cluster3"}), ("cluster2", {"cluster1", "cluster3"})):
        deadline = time.time() + 60
        while True:
            status = {c["id"]: c for c in current.debug(primary, "/debug/clusterz")}
            if all(status.get(p, {}).get("syncStatus") == "synced" for p in peers) or time.time() > deadline:
                break
            time.sleep(1)
        for peer in peers:
            assert status[peer]["syncStatus"] == "synced", status
            assert status[peer]["secretName"] == f"istio-system/istio-remote-secret-{peer}", status


def test_cross_network_endpoints_are_the_peers_east_west_gateways(current):
    gateways = {g["Network"]: f"{g['Addr']}:{g['Port']}" for g in current.debug("cluster1", "/debug/networkz")}
    assert gateways == {NETWORKS[c]: eastwest_address(current, c) for c in CLUSTERS}, gateways
    shards = current.debug("cluster1", "/debug/endpointShardz")
    httpbin = shards["httpbin.bar.svc.cluster.local"]["bar"]["Shards"]
    assert "Kubernetes/cluster2" in httpbin, list(httpbin)

    def settled(istiod: str, client: str, envoy: str, expected: str) -> list[str]:
        deadline = time.time() + 60
        while True:
            found = edsz_endpoints(current, istiod, client, "foo", envoy)
            if found == [expected] or time.time() > deadline:
                return found
            time.sleep(1)
    httpbin = "outbound|8000||httpbin.bar.svc.cluster.local"
    # cluster1's sleep, and the remote cluster3's sleep (served by cluster1's istiod)
    for client in ("cluster1", "cluster3"):
        assert settled("cluster1", client, httpbin, eastwest_address(current, "cluster2")) == \
            [eastwest_address(current, "cluster2")], client
    # cluster2's client reaches hello in the remote cluster3 through cluster3's gateway
    hello = "outbound|8000||hello.baz.svc.cluster.local"
    assert settled("cluster2", "cluster2", hello, eastwest_address(current, "cluster3")) == \
        [eastwest_address(current, "cluster3")]


def test_verify_reads_istiod_through_the_api_and_every_pair_answers(current):
    run = current.play("verify")
    assert run.rc == 0, run.report()
    text = " ".join(run.out.split())
    assert "cluster1: istiod reads cluster2 (cluster2): synced via istio-system/istio-remote-secret-cluster2" in text
    assert "cluster2: istiod reads cluster3 (cluster3): synced" in text
    assert f"behind the east-west gateway of network2 {eastwest_address(current, 'cluster2')}" in text, run.report()
    for line in ("cluster1 → httpbin.bar.svc.cluster.local: 200", "cluster3 → httpbin.bar.svc.cluster.local: 200",
                 "cluster2 → hello.baz.svc.cluster.local: 200", "cluster2 → echo.echo.svc.cluster.local: 200",
                 "cluster3 → echo.echo.svc.cluster.local: 200"):
        assert line in text, run.report()
    assert "(version v2), routed to v2" in text and "routed to v2: FAILED" not in text, run.report()


def test_a_request_takes_the_path_istiod_programmed(current):
    rid = f"ci-{uuid.uuid4().hex[:10]}"
    proc = current.exec_curl("cluster1", "foo", "http://httpbin.bar.svc.cluster.local:8000/ip", rid)
    assert proc.returncode == 0 and "origin" in proc.stdout, (proc.stdout, proc.stderr)
    path = current.hops(rid)
    kinds = [h["hop"] for h in path]
    assert kinds[0] == "sidecar" and "eastwest-gateway" in kinds and kinds[-1] == "pod", path
    sidecar = path[0]
    assert sidecar["xds"]["cluster"] == "outbound|8000||httpbin.bar.svc.cluster.local", sidecar
    assert sidecar["xds"]["endpoint"] == eastwest_address(current, "cluster2"), sidecar
    assert path[-1]["cluster"] == "cluster2" and path[-1]["pod"].startswith("httpbin-"), path


@pytest.mark.parametrize("client", ["cluster2", "cluster3"], ids=["primary", "remote"])
def test_versioned_routing_answers_from_the_routed_subset(current, client):
    """cluster2 holds its own routing; the remote cluster3's is in cluster1, its istiod's cluster."""
    answered = set()
    for _ in range(4):
        rid = f"cv-{uuid.uuid4().hex[:10]}"
        proc = current.exec_curl(client, "foo", "http://echo.echo.svc.cluster.local:8000/ip", rid)
        assert proc.returncode == 0, proc.stderr
        path = current.hops(rid)
        assert any("_.v2_." in (h.get("sni") or "") for h in path), path
        pod = current.get("cluster1", "pod", path[-1]["pod"], "-n", "echo")
        answered.add(pod["metadata"]["labels"]["version"])
    assert answered == {"v2"}


def test_a_second_setup_changes_nothing(current):
    run = current.play("setup")
    assert run.rc == 0 and run.changed() == 0, run.report()


# ---------------------------------------------------------------- rotation, removal, the seed's SE

def test_token_rotation_keeps_the_peer_synced_with_no_gap_in_endpoints(current):
    before = current.get("cluster1", "secret", "istio-remote-secret-cluster2", "-n", "istio-system")
    envoy = "outbound|8000||httpbin.bar.svc.cluster.local"
    samples: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                count = len(edsz_endpoints(current, "cluster1", "cluster1", "foo", envoy))
                shards = current.debug("cluster1", "/debug/endpointShardz")["httpbin.bar.svc.cluster.local"]["bar"]
                synced = {c["id"]: c["syncStatus"] for c in current.debug("cluster1", "/debug/clusterz")}
                # endpoints the sidecar was sent, the shard of cluster2 in istiod, the peer's status
                samples.append((time.time(), min(count, len(shards["Shards"].get("Kubernetes/cluster2") or [])),
                                synced.get("cluster2", "absent")))
            except Exception as error:  # pylint: disable=broad-except
                samples.append((time.time(), -1, str(error)[:80]))
            time.sleep(0.2)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = current.play("setup", meshlink_remote_secret_rotate=True)
        time.sleep(3)
    finally:
        stop.set()
        watcher.join(5)
    assert run.rc == 0, run.report()
    after = current.get("cluster1", "secret", "istio-remote-secret-cluster2", "-n", "istio-system")
    assert after["data"] != before["data"], "the token was not rotated"
    assert len(samples) > 20, samples
    # istiod builds the rotated cluster beside the old one (clusterz says "syncing" meanwhile) and
    # swaps once it is synced: the endpoints never go away, and the peer ends synced.
    gaps = [s for s in samples if s[1] < 1]
    assert gaps == [], f"{len(gaps)} of {len(samples)} samples without endpoints: {gaps[:5]}"
    assert samples[-1][2] == "synced", samples[-5:]
    syncing = [s for s in samples if s[2] != "synced"]
    print(f"ROTATION: {len(samples)} samples over {samples[-1][0] - samples[0][0]:.1f}s, endpoints always >= 1, "
          f"{len(syncing)} sample(s) with cluster2 {sorted({s[2] for s in syncing})} during the swap")


def test_the_seeds_global_service_entry_is_accepted_into_istiods_registry(current, tmp_path):
    """The seed topology's objects, rendered by the same code, on a cluster whose istiod is
    real: the ServiceEntry passes the real validation webhook and istiod registers its VIP."""
    play = [{"name": "The seed's ServiceEntry on a current cluster", "hosts": "cluster1", "gather_facts": False,
             "connection": "local", "tasks": [
                 {"name": "VIP", "meshlink.multicluster.vip_allocate": {
                     "kubeconfig": current.admin, "context": "cluster1", "hosts": ["seed.bar.global"]},
                  "register": "vip"},
                 {"name": "ServiceEntry", "meshlink.multicluster.remote_services": {
                     "kubeconfig": current.admin, "context": "cluster1", "cluster": "cluster1", "role": "consumer",
                     "services": [{"name": "seed", "namespace": "bar", "cluster": "cluster2",
                                   "consumers": [{"cluster": "cluster1", "namespace": "foo"}]}],
                     "gateways": {"cluster2": {"address": "127.100.12.1", "port": 15443}},
                     "vips": "{{ vip.vips }}"}}]}]
    cleanup = copy.deepcopy(play)
    cleanup[0]["tasks"] = [{"name": "ServiceEntry gone", "meshlink.multicluster.remote_services": {
        **play[0]["tasks"][1]["meshlink.multicluster.remote_services"], "state": "absent", "vips": {}}},
        {"name": "VIP released", "meshlink.multicluster.vip_allocate": {
            "kubeconfig": current.admin, "context": "cluster1", "hosts": ["seed.bar.global"], "state": "absent"}}]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"cluster1": {"ansible_python_interpreter": sys.executable}}}}))
    for name, body in (("seed.yml", play), ("cleanup.yml", cleanup)):
        (tmp_path / name).write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    try:
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(tmp_path / "seed.yml")],
                              capture_output=True, text=True, cwd=REPO, env=playbook_env(), check=False, timeout=300)
        assert proc.returncode == 0, proc.stdout[-4000:]
        store = current.get("cluster1", "configmap", "meshlink-vips-default", "-n", "istio-system")
        assert store is not None, proc.stdout[-4000:]
        vip = store["data"]["seed.bar.global"]
        deadline = time.time() + 30
        while True:
            registry = [s for s in current.debug("cluster1", "/debug/registryz")
                        if s.get("hostname") == "seed.bar.global"]
            if registry or time.time() > deadline:
                break
            time.sleep(1)
        assert registry, "istiod did not register seed.bar.global"
        addresses = json.dumps(registry[0])
        assert vip in addresses, registry[0]
    finally:
        subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(tmp_path / "cleanup.yml")],
                       capture_output=True, text=True, cwd=REPO, env=playbook_env(), check=False, timeout=300)


def test_a_cluster_leaving_the_mesh_loses_its_remote_secrets(current):
    trimmed = copy.deepcopy([s for s in SERVICES if s["cluster"] != "cluster3"])
    for service in trimmed:
        service["consumers"] = [c for c in service["consumers"] if c["cluster"] != "cluster3"]
    hosts = current.hosts()
    del hosts["cluster3"]
    try:
        run = current.play("setup", services=trimmed, hosts=hosts, meshlink_clusters=["cluster1", "cluster2"])
        assert run.rc == 0, run.report()
        for primary in ("cluster1", "cluster2"):
            names = [s["metadata"]["name"] for s in
                     current.get(primary, "secret", "-n", "istio-system", "-l", "istio/multiCluster=true")["items"]]
            assert "istio-remote-secret-cluster3" not in names, names
            deadline = time.time() + 30
            while time.time() < deadline and "cluster3" in {c["id"] for c in current.debug(primary, "/debug/clusterz")}:
                time.sleep(1)
            assert "cluster3" not in {c["id"] for c in current.debug(primary, "/debug/clusterz")}
        # hello (cluster3's) is consumed nowhere now: its stub Service in cluster2 went too,
        # though its namespace is no longer cluster2's in the plan
        assert current.get("cluster2", "service", "hello", "-n", "baz") is None
    finally:
        assert current.play("setup").rc == 0


def test_teardown_removes_all_of_it_and_the_peers_go(current):
    run = current.play("teardown")
    assert run.rc == 0, run.report()
    for primary in ("cluster1", "cluster2"):
        deadline = time.time() + 30
        while time.time() < deadline and len(current.debug(primary, "/debug/clusterz")) > 1:
            time.sleep(1)
        assert [c["id"] for c in current.debug(primary, "/debug/clusterz")] == [primary]
    for ctx in CLUSTERS:
        assert "topology.istio.io/network" not in current.get(ctx, "namespace", "istio-system")["metadata"]["labels"]
        for kind in ("secrets", "serviceaccounts", "clusterrolebindings", "gateways.networking.istio.io",
                     "virtualservices.networking.istio.io", "destinationrules.networking.istio.io"):
            left = [o["metadata"]["name"] for o in current.get(ctx, kind, "-A", "-l",
                                                                 f"{MESH_LABEL},meshlink.io/component!=access")["items"]]
            assert left == [], f"{kind} left in {ctx}: {left}"
