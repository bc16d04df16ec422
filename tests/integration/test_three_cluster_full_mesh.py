"""A full mesh of three lab clusters, run as one environment of a multi-environment inventory.

cluster1, cluster2 and cluster3 each export one httpbin-like sample service (svc<N> in ns<N>)
and consume the two others from their sleep pod in fm-client: 6 (consumer cluster, remote
service) pairs. cluster3 has no load balancer (LAB_LB=cluster3=none), so its consumers reach
it on a node address and the nodePort of 15443.

The inventory has a second environment (group `elsewhere`, one host whose context does not
exist), as docs/environments.md describes: runs are limited to the `fullmesh` environment,
and what --limit to one environment or one cluster does is checked here.

The fullmesh hosts connect as the collection's own ServiceAccount (playbooks/access.yml, run
by the fixture for the three clusters and conftest.SUITE_NAMESPACES): the kubeconfigs it wrote,
one per host. What the access playbook provisioned (labelled meshlink.io/component=access)
stays after a teardown; what must be gone is what the runs made (conftest.MADE_BY_RUNS).

Tests run in file order and share the mesh. The file name sorts after test_seed_procedure.py
on purpose: this suite adds cluster3 to the lab, and runs after the seed suite.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BIN, MADE_BY_RUNS, REPO, STORE, SUITE_NAMESPACES, Run, grant, hops, kget, kubectl, lab

CLUSTERS = ("cluster1", "cluster2", "cluster3")
CLIENT_NS = "fm-client"
PORTS = [{"name": "http1", "number": 8000, "protocol": "http"}]
SERVICES = [
    {"name": f"svc{i}", "namespace": f"ns{i}", "cluster": f"cluster{i}",
     "consumers": [{"cluster": f"cluster{j}", "namespace": CLIENT_NS} for j in (1, 2, 3) if j != i],
     "ports": PORTS}
    for i in (1, 2, 3)
]
HOST_OF = {s["cluster"]: f"{s['name']}.{s['namespace']}.global" for s in SERVICES}
LABEL_OF = {s["cluster"]: f"{s['name']}.{s['namespace']}" for s in SERVICES}
PAIRS = {(c, HOST_OF[s]) for c in CLUSTERS for s in CLUSTERS if c != s}
NAMESPACES = {CLIENT_NS, "ns1", "ns2", "ns3"}
KINDS = ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
         "destinationrules.networking.istio.io", "deployments", "services", "serviceaccounts",
         "configmaps", "namespaces")
PAIR_LINE = re.compile(r"(cluster\d) → (\S+\.global): (\d{3}|FAILED)")
INSPECT = "Inspect this cluster (read-only - checks, gateway, versions, existing objects)"
RECONCILE = "Write what this cluster should hold (VIPs, objects, sample apps; prune what left the inventory)"


class FullMesh:
    """The inventory (two environments) and ansible-playbook runs limited to one of them."""

    def __init__(self, tmp: Path, kubeconfig: str, kubeconfigs: dict[str, str]):
        self.tmp = tmp
        self.kubeconfig = kubeconfig  # the lab's admin kubeconfig
        self.kubeconfigs = kubeconfigs  # host -> the collection ServiceAccount's kubeconfig
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "meshlink_kubeconfig": kubeconfig, "meshlink_deploy_sample_apps": True},
            "children": {
                "fullmesh": {
                    "vars": {"meshlink_clusters": "{{ groups['fullmesh'] }}", "meshlink_services": SERVICES},
                    # each host connects with the access playbook's kubeconfig (host vars win over all's)
                    "hosts": {
                        "cluster1": {"meshlink_kubeconfig": kubeconfigs["cluster1"], "meshlink_context": "cluster1"},
                        "cluster2": {"meshlink_kubeconfig": kubeconfigs["cluster2"], "meshlink_context": "cluster2"},
                        # no load balancer: do not wait for one (docs/environments.md)
                        "cluster3": {"meshlink_kubeconfig": kubeconfigs["cluster3"], "meshlink_context": "cluster3",
                                     "meshlink_gateway_wait_timeout": 0},
                    },
                },
                "elsewhere": {
                    "vars": {"meshlink_clusters": "{{ groups['elsewhere'] }}", "meshlink_services": []},
                    "hosts": {"other-env-cluster": {"meshlink_context": "no-such-context"}},
                },
            },
        }}
        self.inventory = tmp / "environments.yml"
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")

    def env(self) -> dict[str, str]:
        return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:{os.environ['PATH']}"}

    def play(self, playbook: str, *flags: str) -> Run:
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory),
               str(REPO / "playbooks" / f"{playbook}.yml"), *flags]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=self.env(), check=False,
                              timeout=1200)
        return Run(proc)


@pytest.fixture(scope="module")
def full(mesh, tmp_path_factory) -> FullMesh:  # pylint: disable=unused-argument
    """The lab with cluster3 (no load balancer) added to what the session brought up, and the
    collection's ServiceAccount granted its rights in the three clusters (access.yml)."""
    lab("up", env={"LAB_CLUSTERS": "3", "LAB_LB": "cluster3=none"})
    tmp = tmp_path_factory.mktemp("fullmesh")
    kubeconfig = lab("kubeconfig").stdout.strip()
    return FullMesh(tmp, kubeconfig, grant(tmp, kubeconfig, list(CLUSTERS), SUITE_NAMESPACES))


def our_service_entries(ctx: str) -> list[dict]:
    return [se for se in kget(ctx, "serviceentries.networking.istio.io", "-A", "-l", MADE_BY_RUNS)["items"]
            if se["metadata"]["labels"].get("multicluster.meshlink.io/service") in LABEL_OF.values()]


def ours_left(ctx: str) -> list[str]:
    """What the runs made for this mesh's services and namespaces (not the access playbook's
    grants and namespaces), and the VIPs of its hosts."""
    left = []
    for kind in KINDS:
        for obj in kget(ctx, kind, "-A", "-l", MADE_BY_RUNS)["items"]:
            meta = obj["metadata"]
            if (meta.get("labels", {}).get("multicluster.meshlink.io/service") in LABEL_OF.values()
                    or meta.get("namespace") in NAMESPACES or (kind == "namespaces" and meta["name"] in NAMESPACES)):
                left.append(f"{ctx}: {kind} {meta.get('namespace', '')}/{meta['name']}")
    store = kget(ctx, "configmap", STORE, "-n", "istio-system")
    left += [f"{ctx}: VIP of {h}" for h in ((store or {}).get("data") or {}) if h in HOST_OF.values()]
    return left


def anything_labelled(ctx: str) -> list[str]:
    """Everything the runs made (any service, namespace or mesh), the access playbook's objects aside."""
    return [f"{ctx}: {kind} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
            for kind in KINDS for o in kget(ctx, kind, "-A", "-l", MADE_BY_RUNS)["items"]]


def wait_until_gone(check, timeout: float = 90) -> list[str]:
    """Namespaces take a moment to finish terminating after the API accepted the delete."""
    deadline = time.time() + timeout
    left = check()
    while left and time.time() < deadline:
        time.sleep(2)
        left = check()
    return left


def pairs_in(run: Run) -> dict[tuple[str, str], str]:
    return {(m.group(1), m.group(2)): m.group(3) for m in PAIR_LINE.finditer(run.out)}


def gateway_of(ctx: str) -> dict[str, Any]:
    """Address and port of a cluster's gateway as its consumers must use it (what a user
    reads from kubectl get svc, or from a setup run's output)."""
    svc = kget(ctx, "service", "istio-ingressgateway", "-n", "istio-system")
    ingress = svc["status"].get("loadBalancer", {}).get("ingress") or []
    if ingress:
        return {"address": ingress[0].get("ip") or ingress[0]["hostname"], "port": 15443}
    node = kget(ctx, "nodes")["items"][0]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    return {"address": address, "port": next(p["nodePort"] for p in svc["spec"]["ports"] if p["port"] == 15443)}


# ---------------------------------------------------------------- the example inventory (no cluster needed)

EXAMPLE = REPO / "inventories" / "example"
EXAMPLE_VAULT_PASSWORD = EXAMPLE / ".vault-password-example"
ENVIRONMENTS = ("staging", "production")


def example(*args: str, tool: str = "ansible-inventory") -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_NOCOLOR": "1",
           "KUBECONFIG": "/nonexistent/kubeconfig", "PATH": f"{BIN}:{os.environ['PATH']}"}
    for name in [k for k in env if k.startswith("K8S_AUTH_")]:
        del env[name]
    # the example's clusters do not exist: should a module get as far as a request, it goes to
    # a dead loopback proxy instead of the internet
    env["K8S_AUTH_PROXY"] = "http://127.0.0.1:9"
    return subprocess.run([str(BIN / tool), "-i", str(EXAMPLE), "--vault-password-file", str(EXAMPLE_VAULT_PASSWORD),
                           *args], capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=300)


def example_groups() -> dict[str, list[str]]:
    proc = example("--list")
    assert proc.returncode == 0, proc.stderr
    listed = yaml.safe_load(proc.stdout)
    return {env: sorted(listed[env]["hosts"]) for env in ENVIRONMENTS}


def test_example_inventory_has_two_environments_of_three_or_more_clusters():
    groups = example_groups()
    for env, hosts in groups.items():
        assert len(hosts) >= 3, f"{env} has {len(hosts)} cluster(s): {hosts}"
        assert (EXAMPLE / "group_vars" / env / "mesh.yml").exists()
        assert (EXAMPLE / "group_vars" / env / "vault.yml").exists()
        for host in hosts:
            assert (EXAMPLE / "host_vars" / f"{host}.yml").exists(), f"no host_vars for {host}"
    assert not set(groups["staging"]) & set(groups["production"])


def test_example_secrets_are_vault_encrypted_and_reach_only_their_host():
    groups = example_groups()
    docs = (REPO / "docs" / "environments.md").read_text(encoding="utf-8")
    for env in ENVIRONMENTS:
        path = EXAMPLE / "group_vars" / env / "vault.yml"
        assert path.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;1.1;AES256"), f"{path} is not encrypted"
        assert f"inventories/example/group_vars/{env}/vault.yml" in docs, "docs/environments.md must show the command"
        proc = subprocess.run([str(BIN / "ansible-vault"), "view", "--vault-password-file",
                               str(EXAMPLE_VAULT_PASSWORD), str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        tokens = yaml.safe_load(proc.stdout)["vault_meshlink_api_keys"]
        assert tokens and set(tokens) <= set(groups[env]), f"{env} vault names hosts outside {env}: {set(tokens)}"
        for host, token in tokens.items():
            host_vars = yaml.safe_load((EXAMPLE / "host_vars" / f"{host}.yml").read_text(encoding="utf-8"))
            assert host_vars.get("meshlink_host"), f"{host} has a token but no meshlink_host"
            proc = example(host, "-m", "ansible.builtin.debug", "-a", "var=meshlink_api_key", tool="ansible")
            assert proc.returncode == 0 and token in proc.stdout, proc.stdout + proc.stderr
    proc = example("all", "-m", "ansible.builtin.debug", "-a", "var=meshlink_api_key", "-o", tool="ansible")
    with_token = {line.split(" | ")[0] for line in proc.stdout.splitlines() if "FAKE." in line}
    assert with_token == {h for env in ENVIRONMENTS for h in groups[env]
                          if yaml.safe_load((EXAMPLE / "host_vars" / f"{h}.yml").read_text(encoding="utf-8")).get("meshlink_host")}


def test_example_run_over_both_environments_stops_at_the_plan():
    proc = example(str(REPO / "playbooks" / "preflight.yml"), tool="ansible-playbook")
    assert proc.returncode != 0
    assert "not in meshlink_clusters" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_example_limit_to_one_environment_runs_only_its_clusters():
    """No cluster of the example exists here: the run gets past the plan (one mesh) and stops
    at the first API call, on the staging clusters only."""
    proc = example(str(REPO / "playbooks" / "preflight.yml"), "--limit", "staging", tool="ansible-playbook")
    out = proc.stdout + proc.stderr
    assert "not in meshlink_clusters" not in out, out[-3000:]
    recap = Run(proc).recap
    assert sorted(recap) == example_groups()["staging"], out[-3000:]
    assert all(r["failed"] == 1 for r in recap.values()), recap
    # each staging cluster stopped at its own inspection (no API to reach), past the plan
    for host in recap:
        assert f'meshlink preflight FAILED on {host} at task "Stop when this cluster cannot take part"' in out, \
            out[-3000:]


# ---------------------------------------------------------------- the lab

def test_lab_has_a_third_cluster_without_load_balancer(full):
    settings = {c["name"]: c for c in yaml.safe_load(
        (Path(full.kubeconfig).parent / "clusters.json").read_text(encoding="utf-8"))["clusters"]}
    assert set(CLUSTERS) <= set(settings)
    assert settings["cluster3"]["lb"] == "none"
    svc = kget("cluster3", "service", "istio-ingressgateway", "-n", "istio-system")
    assert not svc["status"].get("loadBalancer", {}).get("ingress"), "cluster3 must have a pending load balancer"


# ---------------------------------------------------------------- one environment at a time

def test_a_run_over_two_environments_stops_before_anything_is_written(full):
    run = full.play("setup")
    assert run.rc != 0, run.report()
    assert "not in meshlink_clusters" in run.out and "other-env-cluster" in run.out, run.report()
    assert run.changed() == 0, run.report()
    for ctx in CLUSTERS:
        assert ours_left(ctx) == [], "a run stopped by the plan check wrote something"


def test_target_hosts_variable_selects_an_environment_like_limit(full):
    run = full.play("preflight", "-e", "meshlink_target_hosts=fullmesh")
    assert run.rc == 0, run.report()
    assert set(run.recap) == set(CLUSTERS), run.report()


# ---------------------------------------------------------------- setup: the full mesh

def test_setup_creates_one_service_entry_per_consumer_cluster_and_remote_service(full):
    run = full.play("setup", "--limit", "fullmesh")
    assert run.rc == 0, run.report()
    assert set(run.recap) == set(CLUSTERS), run.report()
    found = []
    for ctx in CLUSTERS:
        entries = our_service_entries(ctx)
        hosts = [h for se in entries for h in se["spec"]["hosts"]]
        assert sorted(hosts) == sorted(HOST_OF[s] for s in CLUSTERS if s != ctx), f"{ctx}: {hosts}"
        assert all(se["metadata"]["namespace"] == CLIENT_NS for se in entries)
        found += [(ctx, se["spec"]["hosts"][0]) for se in entries]
    assert len(found) == 6 and set(found) == PAIRS


def test_service_entries_point_at_each_source_gateway_incl_the_node_port_one(full):
    for ctx in CLUSTERS:
        for se in our_service_entries(ctx):
            source = next(c for c, h in HOST_OF.items() if h == se["spec"]["hosts"][0])
            gw = gateway_of(source)
            assert se["spec"]["endpoints"] == [{"address": gw["address"], "ports": {"http1": gw["port"]}}], se
    gw3 = gateway_of("cluster3")
    node_ip = next(c for c in yaml.safe_load((Path(full.kubeconfig).parent / "clusters.json").read_text(
        encoding="utf-8"))["clusters"] if c["name"] == "cluster3")["node_ip"]  # 127.50.3.1 on the default lab
    assert gw3["address"] == node_ip and gw3["port"] != 15443, "cluster3 is reached by node address + nodePort"


def test_vips_are_unique_in_each_consumer_cluster_and_match_the_store(full):
    for ctx in CLUSTERS:
        every = kget(ctx, "serviceentries.networking.istio.io", "-A")["items"]
        addresses = [a for se in every for a in se["spec"].get("addresses", [])]
        duplicates = [a for a, n in collections.Counter(addresses).items() if n > 1]
        assert duplicates == [], f"{ctx}: addresses used by more than one ServiceEntry: {duplicates}"
        store = kget(ctx, "configmap", STORE, "-n", "istio-system")["data"]
        for se in our_service_entries(ctx):
            assert se["spec"]["addresses"] == [store[se["spec"]["hosts"][0]]], (ctx, se["spec"])


def test_clusters_are_handled_in_parallel_by_forks(full, tmp_path):
    """Per-host start/end of the two per-cluster module runs of setup (the inspection and the
    reconcile), from ansible-runner's events: with forks >= the number of clusters the three
    calls of each task overlap in time; with --forks 1 they do not. The mesh is set up already,
    so the reconcile has nothing to write (the run changes nothing)."""
    import ansible_runner  # pylint: disable=import-outside-toplevel

    def windows(forks: int) -> dict[str, dict[str, tuple[datetime, datetime]]]:
        pdd = tmp_path / f"forks{forks}"
        pdd.mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(pdd), project_dir=str(REPO), playbook="playbooks/setup.yml",
            inventory=str(full.inventory), limit="fullmesh", forks=forks, quiet=True,
            envvars={"ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "PATH": f"{BIN}:{os.environ['PATH']}"},
            suppress_env_files=True)
        assert runner.status == "successful", (runner.status, runner.stdout.read()[-3000:])
        per_task: dict[str, dict[str, tuple[datetime, datetime]]] = {}
        for task in (INSPECT, RECONCILE):
            start, end = {}, {}
            for e in runner.events:
                data = e.get("event_data", {})
                if data.get("task") != task:
                    continue
                when = datetime.fromisoformat(e["created"])
                if e["event"] == "runner_on_start":
                    start[data["host"]] = when
                elif e["event"] in ("runner_on_ok", "runner_on_failed"):
                    end[data["host"]] = when
                    assert not (data.get("res") or {}).get("changed"), f"{task} changed {data['host']}"
            assert set(start) == set(end) == set(CLUSTERS), (task, start, end)
            per_task[task] = {h: (start[h], end[h]) for h in CLUSTERS}
        return per_task

    # Event times are taken when the controller processes each host's start and result, so a
    # next host may be reported started a few ms before the previous one's result: tolerances.
    for task, parallel in windows(5).items():
        common = min(e for _, e in parallel.values()) - max(s for s, _ in parallel.values())
        shortest = min(e - s for s, e in parallel.values())
        assert common > shortest / 2, \
            f"{task}: with forks=5 the three clusters did not run at the same time: {parallel}"
    for task, by_host in windows(1).items():
        serial = sorted(by_host.values())
        overlaps = [(a[1] - b[0]).total_seconds() for a, b in itertools.pairwise(serial)]
        assert all(o < 0.5 for o in overlaps), f"{task}: with forks=1 the clusters overlapped by {overlaps} s: {serial}"


# ---------------------------------------------------------------- verify

def test_verify_reports_six_working_pairs(full):
    run = full.play("verify", "--limit", "fullmesh")
    assert run.rc == 0, run.report()
    pairs = pairs_in(run)
    assert set(pairs) == PAIRS, run.report()
    assert set(pairs.values()) == {"200"}, pairs


def test_requests_to_the_cluster_without_load_balancer_enter_through_its_node_port(full):
    rid = f"fm-{uuid.uuid4().hex[:10]}"
    pod = kubectl("cluster1", "get", "pod", "-n", CLIENT_NS, "-l", "app=sleep", "-o",
                  "jsonpath={.items[0].metadata.name}").stdout
    proc = kubectl("cluster1", "exec", "-n", CLIENT_NS, pod, "-c", "sleep", "--", "curl", "-sS",
                   "-H", f"x-request-id: {rid}", f"http://{HOST_OF['cluster3']}:8000/ip", check=False)
    assert proc.returncode == 0 and "origin" in proc.stdout, (proc.stdout, proc.stderr)
    path = hops(rid)
    kinds = [h["hop"] for h in path]
    assert kinds[0] == "sidecar" and "ingress-gateway" in kinds and kinds[-1] == "pod", path
    assert path[0]["cluster"] == "cluster1" and path[-1]["cluster"] == "cluster3", path
    assert path[-1]["pod"].startswith("svc3"), path


def test_second_setup_changes_nothing(full):
    run = full.play("setup", "--limit", "fullmesh")
    assert run.rc == 0, run.report()
    assert run.changed() == 0, run.report()


# ---------------------------------------------------------------- --limit to one cluster

def test_setup_limited_to_one_cluster_needs_its_sources_gateways(full):
    versions = {se["metadata"]["name"]: se["metadata"]["resourceVersion"] for se in our_service_entries("cluster1")}
    run = full.play("setup", "--limit", "cluster1")
    assert run.rc != 0, run.report()
    assert set(run.recap) == {"cluster1"}, run.report()
    # cluster1's run stops before any write, naming each source whose gateway it lacks
    text = " ".join(run.out.split())
    named = set(re.findall(r"gateways\.(cluster\d): unknown - \1 \(source of \S+\) did not report its gateway", text))
    assert named == {"cluster2", "cluster3"}, run.report()
    assert all(f"meshlink_gateway_overrides.{c}" in text for c in named), run.report()
    assert {se["metadata"]["name"]: se["metadata"]["resourceVersion"]
            for se in our_service_entries("cluster1")} == versions, "the failed run changed ServiceEntries"

    overrides = {"meshlink_gateway_overrides": {c: gateway_of(c) for c in ("cluster2", "cluster3")}}
    run = full.play("setup", "--limit", "cluster1", "-e", yaml.safe_dump(overrides, default_flow_style=True).strip())
    assert run.rc == 0, run.report()
    assert set(run.recap) == {"cluster1"}, run.report()
    assert run.changed() == 0, run.report()


def test_verify_limited_to_one_cluster_checks_only_its_pairs(full):
    run = full.play("verify", "--limit", "cluster2")
    assert run.rc == 0, run.report()
    assert set(pairs_in(run)) == {p for p in PAIRS if p[0] == "cluster2"}, run.report()


def test_teardown_limited_to_one_cluster_leaves_its_consumers_pointing_at_it(full):
    run = full.play("teardown", "--limit", "cluster3")
    assert run.rc == 0, run.report()
    assert set(run.recap) == {"cluster3"}, run.report()
    assert wait_until_gone(lambda: anything_labelled("cluster3")) == []
    # the other clusters keep their ServiceEntries of svc3, which no longer answers
    for ctx in ("cluster1", "cluster2"):
        assert HOST_OF["cluster3"] in [se["spec"]["hosts"][0] for se in our_service_entries(ctx)]
    run = full.play("verify", "--limit", "cluster1", "-e", "meshlink_connectivity_retries=2",
                    "-e", "meshlink_connectivity_delay=1", "-e", "meshlink_connectivity_timeout=15")
    assert run.rc != 0, run.report()
    pairs = pairs_in(run)
    assert pairs[("cluster1", HOST_OF["cluster2"])] == "200", run.report()
    assert pairs[("cluster1", HOST_OF["cluster3"])] == "FAILED", run.report()


def test_teardown_of_the_environment_leaves_nothing_labelled(full):
    run = full.play("teardown", "--limit", "fullmesh")
    assert run.rc == 0, run.report()
    assert set(run.recap) == set(CLUSTERS), run.report()
    # cluster3 is this suite's alone: nothing labelled app.kubernetes.io/managed-by=meshlink at all
    assert wait_until_gone(lambda: anything_labelled("cluster3")) == []
    # cluster1/2 are shared with other suites: nothing of this mesh (its services, namespaces, VIPs)
    for ctx in ("cluster1", "cluster2"):
        assert wait_until_gone(lambda c=ctx: ours_left(c)) == []
