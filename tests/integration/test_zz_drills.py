"""Failure drills: what happens when things go wrong, on the lab, as a user would meet it.

Each drill prints one line `DRILL <name>: PASS|FAIL <counts>` (shown even when pytest captures
output). The drills run after the rest of the e2e suite (the file name sorts last) on the lab
of the `mesh` fixture, using only cluster1 and cluster2, their own namespaces (`drill-*`),
their own VIP pool (240.77.0.0/16), their own VIP store names and their own meshes
(`meshlink_mesh: drill-*`: a setup prunes what its mesh no longer wants and a teardown deletes
by the mesh's labels, so a drill in the default mesh would meet the objects of the other
tests). They run with the lab's admin kubeconfig: they make their own namespaces and foreign
objects, as an administrator would.

- concurrency: 8 concurrent VIP allocations (Python processes with real clients, released at
  the same instant), 50 hosts each, 5 rounds: 400 distinct addresses every round, none held
  by a ServiceEntry that existed before, the store holding exactly what each process was
  told; then 8 concurrent setup.yml runs of one mesh adding different services
  (meshlink_prune: false, so that no run prunes what the others add): each succeeds or fails
  with a conflict message, a rerun converges, no duplicate VIP.
- apiserver_lost: `lab stop-apiserver cluster2` while setup writes to cluster2: the run fails
  within the request timeout naming cluster2; after `lab start-apiserver cluster2` a rerun
  converges to exactly the objects of an undisturbed run.
- bad_input: a table of wrong inputs across modules and the role, by classes of input
  (whitespace, Unicode look-alikes and non-ASCII digits, types Python would coerce, values of
  another field's grammar, and the single cases); each fails with a message naming the field
  or object, and both clusters are unchanged (resourceVersions of every ServiceEntry,
  VirtualService, DestinationRule and ConfigMap, the VIP stores included).
- ownership: teardown where objects carry our names but not our labels (or another mesh's)
  deletes none of them; a foreign ConfigMap at the store name is left alone with a warning;
  two meshes on the same clusters: tearing one down (meshlink_teardown_all) leaves the other's
  objects, VIP store and connectivity as they were.
- secrets: with token connection variables, the token is in no log line, -vvv output or
  ansible-runner artifact.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import itertools
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import yaml

from conftest import BIN, KUBECTL, LAB, REPO, Run

CLUSTERS = ("cluster1", "cluster2")
POOL = "240.77.0.0/16"
MANAGED_BY = "app.kubernetes.io/managed-by"
SERVICE_LABEL = "multicluster.meshlink.io/service"
MESH_LABEL = "meshlink.io/mesh"
ISTIO_KINDS = ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
               "destinationrules.networking.istio.io")
SNAPSHOT_KINDS = ",".join(ISTIO_KINDS + ("configmaps",))
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
PORTS = [{"name": "http1", "number": 8000, "protocol": "http"}]
REQUEST_TIMEOUT = 30  # the modules' default request_timeout


# ------------------------------------------------------------------ helpers

class _InventoryDumper(yaml.SafeDumper):
    """Writes a string with a newline as a YAML block scalar (``|``), as a user's inventory has
    it: ``name: |`` followed by ``drill-bi`` loads as "drill-bi\\n"."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_InventoryDumper.add_representer(str, _represent_str)


class Lab:
    """Direct kubectl on the lab kubeconfig (faster than `lab kubectl` for many reads)."""

    def __init__(self, kubeconfig: str, tmp: Path) -> None:
        self.kubeconfig = kubeconfig
        self.tmp = tmp
        self.config = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))

    def kc(self, ctx: str, *args: str, stdin: Optional[str] = None, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(KUBECTL), "--kubeconfig", self.kubeconfig, "--context", ctx, *args], input=stdin,
                              capture_output=True, text=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl --context {ctx} {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def apply(self, ctx: str, *objs: Dict[str, Any]) -> None:
        self.kc(ctx, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def get(self, ctx: str, *args: str) -> Any:
        proc = self.kc(ctx, "get", *args, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return json.loads(proc.stdout)

    def items(self, ctx: str, *args: str) -> List[Dict[str, Any]]:
        return (self.get(ctx, *args) or {}).get("items") or []

    def snapshot(self) -> Dict[str, str]:
        """`ctx Kind ns/name` -> resourceVersion of every Istio object and ConfigMap of both clusters.

        Leaves out `kube-root-ca.crt`: the controller-manager puts one in every namespace and it
        goes with its namespace, so a namespace of another drill that finishes terminating would
        show up as a change nobody in the run made. Leaves out leader-election locks (ConfigMaps
        annotated control-plane.alpha.kubernetes.io/leader): the lab's istiod renews them every
        few seconds."""
        def one(ctx: str) -> Dict[str, str]:
            return {f"{ctx} {o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}":
                    o["metadata"]["resourceVersion"] for o in self.items(ctx, SNAPSHOT_KINDS, "-A")
                    if o["metadata"]["name"] != "kube-root-ca.crt"
                    and LEADER_ANNOTATION not in (o["metadata"].get("annotations") or {})}
        with ThreadPoolExecutor(max_workers=2) as pool:
            parts = list(pool.map(one, CLUSTERS))
        return {k: v for part in parts for k, v in part.items()}

    def namespaces(self, ctx: str, *names: str) -> None:
        """Create (or keep) the namespaces; one still terminating from an earlier run is waited for."""
        deadline = time.monotonic() + 180
        for name in names:
            while ((self.get(ctx, "namespace", name) or {}).get("status") or {}).get("phase") == "Terminating":
                assert time.monotonic() < deadline, f"{ctx}: namespace {name} stays Terminating"
                time.sleep(1)
        self.apply(ctx, *[{"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": n, "labels": {"istio-injection": "enabled"}}} for n in names])

    def settle(self, prefix: str = "drill-", timeout: float = 180) -> None:
        """Wait until no namespace named `prefix*` is still terminating in either cluster (the
        namespace controller empties them in the background after a drill's cleanup)."""
        deadline = time.monotonic() + timeout
        for ctx in CLUSTERS:
            while True:
                busy = [n["metadata"]["name"] for n in self.items(ctx, "namespaces")
                        if n["metadata"]["name"].startswith(prefix)
                        and (n.get("status") or {}).get("phase") == "Terminating"]
                if not busy:
                    break
                assert time.monotonic() < deadline, f"{ctx}: namespaces {busy} stay Terminating"
                time.sleep(1)

    def drop_namespaces(self, ctx: str, *names: str) -> None:
        for name in names:
            self.kc(ctx, "delete", ",".join(ISTIO_KINDS), "--all", "-n", name, "--ignore-not-found", check=False)
            self.kc(ctx, "delete", "namespace", name, "--ignore-not-found", "--wait=false", check=False)

    def drop_store(self, ctx: str, name: str) -> None:
        self.kc(ctx, "delete", "configmap", name, "-n", "istio-system", "--ignore-not-found", check=False)

    def store(self, ctx: str, name: str) -> Dict[str, str]:
        return (self.get(ctx, "configmap", name, "-n", "istio-system") or {}).get("data") or {}

    def server(self, ctx: str) -> Dict[str, str]:
        context = next(c for c in self.config["contexts"] if c["name"] == ctx)["context"]
        cluster = next(c for c in self.config["clusters"] if c["name"] == context["cluster"])["cluster"]
        return {"server": cluster["server"], "ca": cluster.get("certificate-authority", "")}

    # -- ansible ---------------------------------------------------------------------------

    def inventory(self, services: Any, hosts: Optional[Dict[str, Dict[str, Any]]] = None, mesh: str = "drill",
                  **extra: Any) -> Path:
        """An inventory of cluster1 and cluster2 (admin kubeconfig) for the drills' own ``mesh``."""
        hosts = hosts if hosts is not None else {c: {"meshlink_context": c} for c in CLUSTERS}
        inv = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "meshlink_kubeconfig": self.kubeconfig, "meshlink_deploy_sample_apps": False,
                     "meshlink_mesh": mesh, "meshlink_vip_pool": POOL, "meshlink_services": services, **extra},
            "hosts": hosts,
        }}
        path = self.tmp / f"inventory-{uuid.uuid4().hex[:8]}.yml"
        path.write_text(yaml.dump(inv, Dumper=_InventoryDumper, sort_keys=False, allow_unicode=True), encoding="utf-8")
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == inv, "the inventory does not load back as written"
        return path

    @staticmethod
    def env(**extra: str) -> Dict[str, str]:
        return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:{os.environ['PATH']}", **extra}

    def command(self, playbook: str, inventory: Path, *flags: str) -> List[str]:
        path = playbook if os.path.isabs(playbook) else str(REPO / "playbooks" / f"{playbook}.yml")
        return [str(BIN / "ansible-playbook"), "-i", str(inventory), path, *flags]

    def play(self, playbook: str, inventory: Path, *flags: str, env: Optional[Dict[str, str]] = None,
             timeout: float = 900) -> Run:
        proc = subprocess.run(self.command(playbook, inventory, *flags), capture_output=True, text=True, cwd=REPO,
                              env=env or self.env(), check=False, timeout=timeout)
        return Run(proc)

    def start(self, playbook: str, inventory: Path, *flags: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(playbook, inventory, *flags), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=REPO, env=self.env())


def show(run: Run) -> str:
    """What a failed assertion on a run shows: rc, recap and the end of the output."""
    return f"ansible-playbook rc={run.rc} recap={run.recap}\n{run.out[-6000:]}"


def flat(text: str) -> str:
    """Output with every run of whitespace as one space (messages wrap in the YAML callback)."""
    return re.sub(r"\s+", " ", text)


def service(name: str, namespace: str, cluster: str, consumer: str, consumer_ns: str, **extra: Any) -> Dict[str, Any]:
    return {"name": name, "namespace": namespace, "cluster": cluster,
            "consumers": [{"cluster": consumer, "namespace": consumer_ns}], "ports": PORTS, **extra}


def versioned(name: str, namespace: str, cluster: str, consumer: str, consumer_ns: str) -> Dict[str, Any]:
    return service(name, namespace, cluster, consumer, consumer_ns,
                   subsets=[{"name": "v1", "endpoint_labels": {"version": "v1"}, "pod_labels": {"version": "v1"}},
                            {"name": "v2", "endpoint_labels": {"version": "v2"}, "pod_labels": {"version": "v2"}}],
                   route_subset="v2")


@pytest.fixture(scope="module")
def lab(mesh, tmp_path_factory) -> Lab:
    missing = [c for c in CLUSTERS if c not in mesh.clusters]
    assert not missing, f"the drills need lab clusters {CLUSTERS}; missing {missing}"
    return Lab(mesh.kubeconfig, tmp_path_factory.mktemp("drills"))


@pytest.fixture
def say(capsys) -> Callable[[str], None]:
    def _say(message: str) -> None:
        with capsys.disabled():
            print(f"\n[drill] {message}", flush=True)
    return _say


@contextlib.contextmanager
def drill(say: Callable[[str], None], name: str, counts: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """Prints `DRILL name: PASS|FAIL counts` when the block ends."""
    try:
        yield counts
    except BaseException as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:400]
        say(f"DRILL {name}: FAIL {json.dumps(counts, sort_keys=True)} -- {first}")
        raise
    say(f"DRILL {name}: PASS {json.dumps(counts, sort_keys=True)}")


# ------------------------------------------------------------------ 1. concurrency

ALLOCATOR = textwrap.dedent("""
    import json, sys, time
    from ansible_collections.meshlink.multicluster.plugins.module_utils._client import cluster_from_params
    from ansible_collections.meshlink.multicluster.plugins.module_utils._vip import allocate_in_cluster
    args = json.loads(sys.argv[1])
    cluster = cluster_from_params({"kubeconfig": args["kubeconfig"], "context": args["context"],
                                   "validate_certs": True, "request_timeout": 30})
    cluster.server_version()  # connect first, so that the start instant lines the allocations up
    while time.time() < args["start_at"]:
        time.sleep(0.002)
    try:
        res = allocate_in_cluster(cluster, args["hosts"], pool=args["pool"], store_name=args["store"])
        print(json.dumps({"ok": True, "vips": res["vips"], "attempts": res["attempts"]}))
    except Exception as error:  # reported, the test decides
        print(json.dumps({"ok": False, "error": str(error)}))
""")


def test_drill_concurrent_vip_allocation(lab: Lab, say):
    ctx, ns, store, procs, per, rounds = "cluster1", "drill-vip", "drill-vips-concurrency", 8, 50, 5
    counts: Dict[str, Any] = {"rounds": rounds, "processes": procs, "hosts_per_process": per, "distinct": [],
                              "attempts": [], "held_hits": 0, "store_mismatches": 0}
    env = {**os.environ, "PYTHONPATH": str(REPO / ".collections")}
    lab.drop_store(ctx, store)
    lab.namespaces(ctx, ns)
    # Addresses held by ServiceEntries that exist before the allocations (not ours): 64 single
    # addresses and one /27, all inside the pool the drill allocates from.
    held_single = [f"240.77.{(i * 8 + 3) // 256}.{(i * 8 + 3) % 256}" for i in range(64)]
    lab.apply(ctx,
              {"apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
               "metadata": {"name": "drill-held-singles", "namespace": ns},
               "spec": {"hosts": ["held-singles.drill-vip.global"], "location": "MESH_INTERNAL",
                        "ports": PORTS, "resolution": "STATIC", "addresses": held_single}},
              {"apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
               "metadata": {"name": "drill-held-range", "namespace": ns},
               "spec": {"hosts": ["held-range.drill-vip.global"], "location": "MESH_INTERNAL",
                        "ports": PORTS, "resolution": "STATIC", "addresses": ["240.77.0.32/27"]}})
    held_range = ipaddress.ip_network("240.77.0.32/27")
    try:
        with drill(say, "concurrency/vip_allocate", counts):
            for rnd in range(1, rounds + 1):
                lab.drop_store(ctx, store)
                before = {a for o in lab.items(ctx, "serviceentries.networking.istio.io", "-A")
                          for a in o["spec"].get("addresses") or []}
                assert set(held_single) <= before
                # A small pool (/23, 510 addresses, 96 held) so that the processes' probes meet.
                pool = "240.77.0.0/23"
                start_at = time.time() + 4.0
                children = []
                for p in range(procs):
                    hosts = [f"r{rnd}-p{p}-h{i}.drill-vip.global" for i in range(per)]
                    args = {"kubeconfig": lab.kubeconfig, "context": ctx, "hosts": hosts, "pool": pool,
                            "store": store, "start_at": start_at}
                    children.append(subprocess.Popen([sys.executable, "-c", ALLOCATOR, json.dumps(args)],
                                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                                     env=env))
                results = []
                for child in children:
                    out, err = child.communicate(timeout=300)
                    assert child.returncode == 0, err
                    results.append(json.loads(out.strip().splitlines()[-1]))
                failed = [r["error"] for r in results if not r["ok"]]
                assert not failed, f"round {rnd}: allocations failed: {failed}"
                vips = {h: ip for r in results for h, ip in r["vips"].items()}
                counts["attempts"].append(sum(r["attempts"] for r in results))
                counts["distinct"].append(len(set(vips.values())))
                assert len(vips) == procs * per and len(set(vips.values())) == procs * per, \
                    f"round {rnd}: {len(set(vips.values()))} distinct addresses for {len(vips)} hosts"
                hits = sorted(ip for ip in vips.values()
                              if ip in before or ipaddress.ip_address(ip) in held_range)
                counts["held_hits"] += len(hits)
                assert not hits, f"round {rnd}: addresses held by existing ServiceEntries handed out: {hits[:10]}"
                stored = lab.store(ctx, store)
                mismatches = {h: (ip, stored.get(h)) for h, ip in vips.items() if stored.get(h) != ip}
                counts["store_mismatches"] += len(mismatches)
                assert not mismatches and len(stored) == procs * per, \
                    f"round {rnd}: the store disagrees with what the processes were told (lost update?): " \
                    f"{list(mismatches.items())[:5]}, {len(stored)} entries"
            assert sum(counts["attempts"]) > rounds * procs, "the processes never conflicted: the drill did not race"
    finally:
        lab.drop_store(ctx, store)
        lab.drop_namespaces(ctx, ns)


def test_drill_concurrent_setup_runs(lab: Lab, say):
    runs, per = 8, 5
    store, src_ns, cons_ns = "drill-vips-setup", "drill-cs", "drill-cc"
    services = {k: [service(f"drill-c{k}-{i}", src_ns, "cluster2", "cluster1", cons_ns) for i in range(per)]
                for k in range(runs)}
    everything = [s for k in range(runs) for s in services[k]]
    counts: Dict[str, Any] = {"runs": runs, "succeeded": 0, "failed_with_conflict": 0, "reruns": 0,
                              "service_entries": 0, "distinct_vips": 0, "union_rerun_changed": None}
    lab.drop_store("cluster1", store)
    lab.namespaces("cluster1", cons_ns)
    lab.namespaces("cluster2", src_ns)
    # One mesh, eight inventories each adding its services: without prune, so that a run does not
    # delete (as no longer wanted) what the others add; the union run (prune on) converges.
    inventories = {k: lab.inventory(services[k], mesh="drill-cs", meshlink_vip_store_name=store,
                                    meshlink_prune=False) for k in range(runs)}
    union = lab.inventory(everything, mesh="drill-cs", meshlink_vip_store_name=store)
    try:
        with drill(say, "concurrency/setup.yml", counts):
            started = [(k, lab.start("setup", inventories[k])) for k in range(runs)]
            outcomes = {}
            for k, proc in started:
                out, _ = proc.communicate(timeout=1200)
                outcomes[k] = (proc.returncode, out)
            unclear = []
            for k, (rc, out) in outcomes.items():
                if rc == 0:
                    counts["succeeded"] += 1
                elif re.search(r"conflict|changed under this run|409", out, re.I):
                    counts["failed_with_conflict"] += 1
                else:
                    unclear.append((k, flat(out)[-1500:]))
            assert not unclear, f"runs failed without a conflict message: {unclear}"
            for k, (rc, _out) in outcomes.items():
                if rc != 0:
                    counts["reruns"] += 1
                    rerun = lab.play("setup", inventories[k])
                    assert rerun.rc == 0, show(rerun)
            final = lab.play("setup", union)
            assert final.rc == 0, show(final)
            counts["union_rerun_changed"] = final.changed()
            assert final.changed() == 0, f"a rerun of the union did not converge: {show(final)}"
            entries = lab.items("cluster1", "serviceentries.networking.istio.io", "-n", cons_ns)
            vips = [a for e in entries for a in e["spec"]["addresses"]]
            counts["service_entries"], counts["distinct_vips"] = len(entries), len(set(vips))
            assert len(entries) == runs * per, f"{len(entries)} ServiceEntries, want {runs * per}"
            assert len(set(vips)) == len(vips), "duplicate VIP among the ServiceEntries"
            stored = lab.store("cluster1", store)
            by_host = {e["spec"]["hosts"][0]: e["spec"]["addresses"][0] for e in entries}
            assert by_host == {h: ip for h, ip in stored.items() if h in by_host} and len(stored) == runs * per, \
                "the VIP store and the ServiceEntries disagree"
            down = lab.play("teardown", union)
            assert down.rc == 0, show(down)
            assert not lab.items("cluster1", "serviceentries.networking.istio.io", "-n", cons_ns)
    finally:
        lab.drop_store("cluster1", store)
        lab.drop_namespaces("cluster1", cons_ns)
        lab.drop_namespaces("cluster2", src_ns)


# ------------------------------------------------------------------ 2. API server lost mid-run

def _objects(lab: Lab, store: str) -> Dict[str, Any]:
    """Everything an apiserver drill run leaves: Istio objects of its namespaces and its VIP store."""
    out: Dict[str, Any] = {}
    for ctx, ns in (("cluster2", "drill-ac"), ("cluster1", "drill-as")):
        for obj in lab.items(ctx, ",".join(ISTIO_KINDS), "-n", ns):
            meta = obj["metadata"]
            out[f"{ctx} {obj['kind']} {ns}/{meta['name']}"] = {
                "apiVersion": obj["apiVersion"], "spec": obj["spec"],
                "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k in (MANAGED_BY, SERVICE_LABEL)}}
    out["cluster2 VIP store"] = lab.store("cluster2", store)
    return out


def _wait_leases_renewed(lab: Lab, ctx: str, since: float, timeout: float = 90) -> None:
    """The controller-manager and the scheduler lead again (their leases renewed after `since`)."""
    from datetime import datetime  # pylint: disable=import-outside-toplevel
    deadline = time.monotonic() + timeout
    while True:
        fresh = []
        for lease in ("kube-controller-manager", "kube-scheduler"):
            obj = lab.get(ctx, "lease", lease, "-n", "kube-system") or {}
            renew = (obj.get("spec") or {}).get("renewTime")
            if renew and datetime.fromisoformat(renew.replace("Z", "+00:00")).timestamp() > since:
                fresh.append(lease)
        if len(fresh) == 2:
            return
        assert time.monotonic() < deadline, f"{ctx}: after the restart only {fresh} renewed their leases"
        time.sleep(1)


def _process_tree(pid: int) -> List[int]:
    """``pid`` and every process below it (from /proc)."""
    children: Dict[int, List[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            tree.append(child)
            todo.append(child)
    return tree


def _signal_all(pids: List[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


PLAIN, VERSIONED = 100, 3  # services of the apiserver drill; cluster2 gets 1 + 3 objects per plain + versioned one


def test_drill_apiserver_lost_mid_run(lab: Lab, say):
    store = "drill-vips-apiserver"
    services = [service(f"drill-a{i}", "drill-as", "cluster1", "cluster2", "drill-ac") for i in range(PLAIN)] + \
        [versioned(f"drill-av{i}", "drill-as", "cluster1", "cluster2", "drill-ac") for i in range(VERSIONED)]
    in_cluster2 = PLAIN + 3 * VERSIONED
    inventory = lab.inventory(services, mesh="drill-api", meshlink_vip_store_name=store)
    counts: Dict[str, Any] = {"services": len(services), "objects_reference": 0, "seconds_to_fail_after_stop": None,
                              "cluster2_objects_at_stop": None, "objects_after_rerun": 0, "differences": None,
                              "rerun_changed_after_converge": None}
    lab.namespaces("cluster1", "drill-as")
    lab.namespaces("cluster2", "drill-ac")
    stopped = False
    try:
        with drill(say, "apiserver_lost", counts):
            reference_run = lab.play("setup", inventory)
            assert reference_run.rc == 0, show(reference_run)
            reference = _objects(lab, store)
            counts["objects_reference"] = len(reference) - 1
            assert counts["objects_reference"] == in_cluster2 + VERSIONED, sorted(reference)
            down = lab.play("teardown", inventory)
            assert down.rc == 0, show(down)
            assert len(_objects(lab, store)) == 1 and not lab.store("cluster2", store)

            # The disturbed run: cluster2's API server goes away right after the VIP store is
            # written, while the ServiceEntries are being applied. The reconcile writes the store
            # and its objects in one module run, one object at a time here (workers 1): as soon as
            # the store shows, the whole run is frozen (SIGSTOP), the API server stopped, and the
            # run resumed (SIGCONT), so that the loss lands between two of its writes.
            proc = lab.start("setup", inventory, "-e", "meshlink_workers=1")
            deadline = time.monotonic() + 600
            while proc.poll() is None and time.monotonic() < deadline:
                if lab.get("cluster2", "configmap", store, "-n", "istio-system") is not None:
                    break
                time.sleep(0.05)
            frozen = _process_tree(proc.pid)
            _signal_all(frozen, signal.SIGSTOP)
            try:
                assert proc.poll() is None, "setup finished before its VIP store appeared in cluster2"
                counts["cluster2_objects_at_stop"] = len(lab.items("cluster2", ",".join(ISTIO_KINDS), "-n", "drill-ac"))
                assert counts["cluster2_objects_at_stop"] < in_cluster2, \
                    f"the run had written all {in_cluster2} objects of cluster2 before it was frozen: nothing to lose"
                stop = subprocess.run([str(LAB), "stop-apiserver", "cluster2"], capture_output=True, text=True,
                                      check=False, timeout=60)
                stopped_at = time.monotonic()
                stopped = True
                assert stop.returncode == 0, stop.stderr
            finally:
                _signal_all(frozen, signal.SIGCONT)
            try:
                out, _ = proc.communicate(timeout=REQUEST_TIMEOUT + 150)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError("setup hung after cluster2's API server was lost")
            counts["seconds_to_fail_after_stop"] = round(time.monotonic() - stopped_at, 1)
            text = flat(out)
            assert proc.returncode != 0, f"setup succeeded although cluster2 was down:\n{out[-3000:]}"
            assert "FAILED on cluster2" in text and "cannot reach the API server" in text, text[-3000:]
            step = re.search(r"FAILED on cluster2 at task \"([^\"]*)\"", text)
            counts["failed_at"] = step.group(1) if step else "?"
            # every request is bounded by request_timeout; the rest is ansible finishing the run
            assert counts["seconds_to_fail_after_stop"] <= REQUEST_TIMEOUT + 60, counts

            start = subprocess.run([str(LAB), "start-apiserver", "cluster2"], capture_output=True, text=True,
                                   check=False, timeout=300)
            assert start.returncode == 0, start.stdout + start.stderr
            stopped = False
            counts["control_plane_restarted"] = re.findall(r"(kube-controller-manager|kube-scheduler) started",
                                                           start.stdout)
            _wait_leases_renewed(lab, "cluster2", since=time.time() - 1)
            rerun = lab.play("setup", inventory)
            assert rerun.rc == 0, show(rerun)
            after = _objects(lab, store)
            counts["objects_after_rerun"] = len(after) - 1
            differences = sorted(k for k in set(after) | set(reference) if after.get(k) != reference.get(k))
            counts["differences"] = len(differences)
            assert not differences, f"the rerun after the outage differs from an undisturbed run: {differences}"
            again = lab.play("setup", inventory)
            counts["rerun_changed_after_converge"] = again.changed()
            assert again.rc == 0 and again.changed() == 0, show(again)
            down = lab.play("teardown", inventory)
            assert down.rc == 0, show(down)
    finally:
        if stopped:
            subprocess.run([str(LAB), "start-apiserver", "cluster2"], capture_output=True, check=False, timeout=300)
        lab.drop_store("cluster2", store)
        lab.drop_namespaces("cluster1", "drill-as")
        lab.drop_namespaces("cluster2", "drill-ac")


# ------------------------------------------------------------------ 3. bad input

BAD_NS = "drill-bad"
BAD_HOST = "drill-bi.drill-bad.global"


def bad_service(**over: Any) -> Dict[str, Any]:
    svc = service("drill-bi", BAD_NS, "cluster2", "cluster1", BAD_NS)
    svc.update(over)
    return {k: v for k, v in svc.items() if v is not None}


# (id, kind, definition, substrings the output must contain)
#   kind "setup": definition = (services, extra inventory vars, per-host overrides)
#   kind "module": definition = (module, args, host) - one task with the connection of `host`
SETUP_CASES = [
    ("name_not_dns1123", [bad_service(name="Drill_BI")], {}, {}, ["services[0].name"]),
    ("namespace_not_dns1123", [bad_service(namespace="Drill.Bad")], {}, {}, ["services[0].namespace"]),
    ("host_not_name_namespace_global", [bad_service(host="drill-bi.drill-bad.svc.cluster.local")], {}, {},
     ["services[0].host", "<name>.<namespace>.global"]),
    ("port_out_of_range", [bad_service(ports=[{"name": "http1", "number": 70000, "protocol": "http"}])], {}, {},
     ["services[0].ports[0].number", "70000"]),
    ("port_zero", [bad_service(ports=[{"name": "http1", "number": 0, "protocol": "http"}])], {}, {},
     ["services[0].ports[0].number"]),
    ("duplicate_port_names", [bad_service(ports=[{"name": "http1", "number": 8000, "protocol": "http"},
                                                 {"name": "http1", "number": 8001, "protocol": "http"}])], {}, {},
     ["services[0].ports[1].name", "http1"]),
    ("duplicate_port_numbers", [bad_service(ports=[{"name": "http1", "number": 8000, "protocol": "http"},
                                                   {"name": "http2", "number": 8000, "protocol": "http"}])], {}, {},
     ["services[0].ports[1].number"]),
    ("unknown_protocol", [bad_service(ports=[{"name": "http1", "number": 8000, "protocol": "htttp"}])], {}, {},
     ["services[0].ports[0].protocol", "htttp"]),
    ("unknown_mode", [bad_service(mode="tunnel")], {}, {}, ["services[0].mode", "tunnel"]),
    ("subset_without_labels", [bad_service(subsets=[{"name": "v1"}], route_subset="v1")], {}, {},
     ["services[0].subsets[0].endpoint_labels", "services[0].subsets[0].pod_labels"]),
    ("route_subset_not_a_subset", [bad_service(subsets=[{"name": "v1", "endpoint_labels": {"version": "v1"},
                                                         "pod_labels": {"version": "v1"}}], route_subset="v2")],
     {}, {}, ["services[0].route_subset", "v2"]),
    ("unknown_consumer_cluster", [bad_service(consumers=[{"cluster": "cluster9", "namespace": BAD_NS}])], {}, {},
     ["services[0].consumers[0].cluster", "cluster9"]),
    ("unknown_source_cluster", [bad_service(cluster="cluster9")], {}, {}, ["services[0].cluster", "cluster9"]),
    ("consumer_is_the_source", [bad_service(consumers=["cluster2"])], {}, {}, ["services[0].consumers[0].cluster"]),
    ("service_listed_twice", [bad_service(), bad_service()], {}, {}, ["services[1]", BAD_HOST]),
    ("misspelt_key", [bad_service(consumer=["cluster1"])], {}, {}, ["services[0]", "unknown key 'consumer'"]),
    ("vip_not_an_address", [bad_service(vip="240.77.0.300")], {}, {}, ["services[0].vip", "240.77.0.300"]),
    ("services_not_a_list", "drill-bi", {}, {}, ["meshlink_services", "is of type str"]),
    ("vip_pool_not_a_network", [bad_service()], {"meshlink_vip_pool": "240.77.0.1/16"}, {},
     ["vip.pool", "240.77.0.1/16", "host bits"]),
    ("vip_pool_multicast", [bad_service()], {"meshlink_vip_pool": "224.1.0.0/16"}, {}, ["vip.pool", "multicast"]),
    ("vip_pool_too_small", [bad_service(name=f"drill-bi{i}") for i in range(3)],
     {"meshlink_vip_pool": "240.77.9.0/30"}, {}, ["240.77.9.0/30", "no free address"]),
    ("fixed_vip_outside_pool", [bad_service(vip="10.1.2.3")], {}, {}, [f"fixed.{BAD_HOST}", "outside the pool"]),
    ("fixed_vip_taken", [bad_service(vip="240.77.3.3")], {}, {},
     [f"fixed.{BAD_HOST}", "ServiceEntry drill-bad/drill-held"]),
    ("unknown_context", [bad_service()], {}, {"cluster2": {"meshlink_context": "no-such-context"}},
     ["cluster2", "no-such-context"]),
    ("unreachable_api", [bad_service()], {},
     {"cluster2": {"meshlink_host": "https://127.0.0.1:9", "meshlink_api_key": "drill-dummy-token",
                   "meshlink_validate_certs": False}},
     ["FAILED on cluster2", "cannot reach the API server", "127.0.0.1:9"]),
    ("bad_token", [bad_service()], {}, {"cluster2": {"meshlink_host": "@server", "meshlink_api_key": "not-a-token",
                                                     "meshlink_ca_cert": "@ca"}},
     ["FAILED on cluster2", "Unauthorized", "check the credentials"]),
    ("kubeconfig_missing", [bad_service()], {}, {"cluster2": {"meshlink_kubeconfig": "/nonexistent/kubeconfig"}},
     ["cluster2", "/nonexistent/kubeconfig"]),
    ("no_gateway_service", [bad_service()], {"meshlink_gateway_selector": {"app": "drill-nothing"}}, {},
     ["FAILED on cluster2", "drill-nothing", "istio-system"]),
    ("selector_matches_several", [bad_service()],
     {"meshlink_gateway_namespace": BAD_NS, "meshlink_gateway_selector": {"app": "drill-twin"}}, {},
     ["FAILED on cluster2", "matches 2 Services", "drill-gw-a", "drill-gw-b"]),
    ("gateway_without_15443", [bad_service()],
     {"meshlink_gateway_namespace": BAD_NS, "meshlink_gateway_selector": {"app": "drill-noport"}}, {},
     ["FAILED on cluster2", "drill-gw-noport", "15443"]),
    # objects in the way are named at inspect, before any write
    ("foreign_vip_store", [bad_service()], {"meshlink_vip_store_name": "drill-foreign-store"}, {},
     ["ConfigMap istio-system/drill-foreign-store (the VIP store) exists and was not made by meshlink"]),
    ("vip_store_of_another_mesh", [bad_service()], {"meshlink_vip_store_name": "drill-other-mesh-store"}, {},
     ["ConfigMap istio-system/drill-other-mesh-store (the VIP store) exists and belongs to mesh drill-other"]),
    ("foreign_object_at_our_name", [bad_service(name="drill-fo")], {}, {},
     ["ServiceEntry drill-bad/drill-fo-drill-bad exists and was not made by meshlink"]),
    ("object_of_another_mesh_at_our_name", [bad_service(name="drill-om")], {}, {},
     ["ServiceEntry drill-bad/drill-om-drill-bad exists and belongs to mesh drill-other"]),
]


_MARKERS = itertools.count(1)


def versioned_bad(**over: Any) -> Dict[str, Any]:
    """The bad service with subsets and a name of its own (drill-g<N>): its source cluster
    (cluster2) then has a DestinationRule to write, drill-g<N>-drill-bad-local, so a check that
    came after the barrier shows as a new object in cluster2, named after the case."""
    return bad_service(**{"name": f"drill-g{next(_MARKERS)}",
                          "subsets": [{"name": "v1", "endpoint_labels": {"version": "v1"},
                                       "pod_labels": {"version": "v1"}}], "route_subset": "v1", **over})


def with_port(number: Any) -> Dict[str, Any]:
    return bad_service(ports=[{"name": "http1", "number": number, "protocol": "http"}])


NOTHING_WRITTEN = "nothing was written to any cluster"  # the setup playbook's summary when it stopped at the barrier


def override(address: Any, port: Any = 15443) -> Dict[str, Any]:
    return {"meshlink_gateway_overrides": {"cluster2": {"address": address, "port": port}}}


# Classes of bad input, through setup.yml; each must fail before any write, naming the field.
#   whitespace: a trailing newline (what a YAML block scalar `name: |` gives), a tab, a leading
#   space, a no-break space (U+00A0) - in a service name, a port, a label value, a gateway
#   address override (never stripped: " x" is not "x").
WHITESPACE = {"newline": ("", "\n"), "tab": ("", "\t"), "leading_space": (" ", ""), "nbsp": ("", "\u00a0")}
WHITESPACE_CASES = []
for _kind, (_pre, _post) in WHITESPACE.items():
    WHITESPACE_CASES += [
        (f"ws_{_kind}_in_name", [bad_service(name=f"{_pre}drill-bi{_post}")], {}, {}, ["services[0].name"]),
        (f"ws_{_kind}_in_port", [with_port(f"{_pre}8000{_post}")], {}, {}, ["services[0].ports[0].number"]),
        (f"ws_{_kind}_in_label_value",
         [versioned_bad(subsets=[{"name": "v1", "endpoint_labels": {"version": f"{_pre}v1{_post}"},
                                  "pod_labels": {"version": "v1"}}])], {}, {},
         ["services[0].subsets[0].endpoint_labels"]),
        (f"ws_{_kind}_in_gateway_override_address", [versioned_bad()], override(f"{_pre}127.100.2.1{_post}"), {},
         ["meshlink_gateway_overrides.cluster2.address", NOTHING_WRITTEN]),
    ]

#   Unicode look-alikes and non-ASCII digits (int() and str.isdigit() take "８０００" and "٨٠٠٠").
LOOKALIKE_CASES = [
    ("fullwidth_digits_in_port", [with_port("\uff18\uff10\uff10\uff10")], {}, {}, ["services[0].ports[0].number"]),
    ("arabic_indic_digits_in_port", [with_port("\u0668\u0660\u0660\u0660")], {}, {},
     ["services[0].ports[0].number"]),
    ("mixed_digits_in_port", [with_port("8\uff10\u0660\u0030")], {}, {}, ["services[0].ports[0].number"]),
    ("cyrillic_a_in_namespace", [bad_service(namespace="drill-b\u0430d")], {}, {}, ["services[0].namespace"]),
    ("unicode_hyphen_in_namespace", [bad_service(namespace="drill\u2010bad")], {}, {}, ["services[0].namespace"]),
    ("fullwidth_digit_in_consumer_namespace",
     [bad_service(consumers=[{"cluster": "cluster1", "namespace": "drill-bad\uff11"}])], {}, {},
     ["services[0].consumers[0].namespace"]),
]

#   Types Python would coerce: a bool or a float as a port (True == 1, int(8000.0) == 8000), a
#   list as a name (str(["x"]) is a string), a number as a namespace (str(123) is a valid label).
COERCE_CASES = [
    ("bool_as_port", [with_port(True)], {}, {}, ["services[0].ports[0].number"]),
    ("float_as_port", [with_port(8000.0)], {}, {}, ["services[0].ports[0].number"]),
    ("list_as_name", [bad_service(name=["drill-bi"])], {}, {}, ["services[0].name"]),
    ("int_as_namespace", [bad_service(namespace=123)], {}, {}, ["services[0].namespace"]),
    ("string_as_gateway_override_port", [versioned_bad()], override("127.100.2.1", "15443x"), {},
     ["meshlink_gateway_overrides.cluster2.port", NOTHING_WRITTEN]),
]

#   A value of another field's grammar.
GRAMMAR_CASES = [
    ("url_as_gateway_override_address", [versioned_bad()], override("https://127.100.2.1:15443"), {},
     ["meshlink_gateway_overrides.cluster2.address", "https://127.100.2.1:15443", NOTHING_WRITTEN]),
    ("url_as_gateway_address", [versioned_bad()], {}, {"cluster2": {"meshlink_gateway_address": "http://127.0.0.1"}},
     ["FAILED on cluster2", "address", "http://127.0.0.1"]),
    ("cidr_as_vip", [bad_service(vip="240.77.5.0/24")], {}, {}, ["services[0].vip", "240.77.5.0/24"]),
    ("ip_as_namespace", [bad_service(namespace="10.0.0.1")], {}, {}, ["services[0].namespace", "10.0.0.1"]),
    ("host_port_as_gateway_override_address", [versioned_bad()], override("127.100.2.1:15443"), {},
     ["meshlink_gateway_overrides.cluster2.address", "127.100.2.1:15443", NOTHING_WRITTEN]),
    ("mesh_name_with_a_dot", [bad_service()], {"@mesh": "drill.bad"}, {}, ["mesh: 'drill.bad'", "meshlink_mesh"]),
    # the override as it is meant (the source cluster not in the run: a job limited to the consumer)
    ("url_as_gateway_override_address_limited", [versioned_bad()],
     {**override("https://127.100.2.1:15443"), "@limit": "cluster1"}, {},
     ["meshlink_gateway_overrides.cluster2.address", "https://127.100.2.1:15443"]),
    ("ws_newline_in_gateway_override_address_limited", [versioned_bad()],
     {**override("127.100.2.1\n"), "@limit": "cluster1"}, {}, ["meshlink_gateway_overrides.cluster2.address"]),
]

SETUP_CLASSES = {"single": SETUP_CASES, "whitespace": WHITESPACE_CASES, "lookalike": LOOKALIKE_CASES,
                 "coerced_type": COERCE_CASES, "other_grammar": GRAMMAR_CASES}

MODULE_CASES = [
    ("vip_allocate_host_not_global", "vip_allocate", {"hosts": ["drill-bi.drill-bad"], "pool": POOL}, "cluster1",
     ["hosts[0]", "<name>.<namespace>.global"]),
    ("vip_allocate_host_twice", "vip_allocate", {"hosts": [BAD_HOST, BAD_HOST], "pool": POOL}, "cluster1",
     ["hosts[1]", "listed twice"]),
    ("vip_allocate_pool_not_cidr", "vip_allocate", {"hosts": [BAD_HOST], "pool": "240.77.0.0/33"}, "cluster1",
     ["pool", "240.77.0.0/33"]),
    ("vip_allocate_exclude_not_ip", "vip_allocate", {"hosts": [BAD_HOST], "pool": POOL, "exclude": ["not-an-ip"]},
     "cluster1", ["exclude[0]", "not-an-ip"]),
    ("vip_allocate_fixed_not_ipv4", "vip_allocate", {"hosts": [BAD_HOST], "pool": POOL,
                                                     "fixed": {BAD_HOST: "300.1.1.1"}}, "cluster1",
     [f"fixed.{BAD_HOST}", "300.1.1.1"]),
    ("vip_allocate_fixed_taken", "vip_allocate", {"hosts": [BAD_HOST], "pool": POOL, "fixed": {BAD_HOST: "240.77.3.3"},
                                                  "store_name": "drill-vips-bad"}, "cluster1",
     [f"fixed.{BAD_HOST}", "ServiceEntry drill-bad/drill-held"]),
    ("vip_allocate_unknown_state", "vip_allocate", {"hosts": [BAD_HOST], "state": "gone"}, "cluster1",
     ["state", "gone"]),
    ("gateway_address_no_such_service", "gateway_address", {"service": "drill-no-such-gw"}, "cluster2",
     ["drill-no-such-gw"]),
    ("gateway_address_unknown_port_name", "gateway_address", {"port": "drill-no-port"}, "cluster2",
     ["drill-no-port"]),
    ("gateway_address_port_out_of_range", "gateway_address", {"port": "99999"}, "cluster2", ["port", "99999"]),
    ("remote_services_unknown_role", "remote_services", {"services": [bad_service()], "role": "bogus",
                                                         "cluster": "cluster1"}, "cluster1", ["role", "bogus"]),
    ("remote_services_gateway_missing", "remote_services", {"services": [bad_service()], "role": "consumer",
                                                            "cluster": "cluster1", "vips": {BAD_HOST: "240.77.5.5"}},
     "cluster1", ["gateways.cluster2", "missing"]),
    ("remote_services_gateway_address_empty", "remote_services",
     {"services": [bad_service()], "role": "consumer", "cluster": "cluster1",
      "gateways": {"cluster2": {"address": "", "port": 15443}}, "vips": {BAD_HOST: "240.77.5.5"}}, "cluster1",
     ["gateways.cluster2.address", "empty"]),
    ("remote_services_vip_missing", "remote_services",
     {"services": [bad_service()], "role": "consumer", "cluster": "cluster1",
      "gateways": {"cluster2": {"address": "127.100.2.1", "port": 15443}}}, "cluster1", [f"vips.{BAD_HOST}"]),
    ("remote_services_vip_not_ipv4", "remote_services",
     {"services": [bad_service()], "role": "consumer", "cluster": "cluster1",
      "gateways": {"cluster2": {"address": "127.100.2.1", "port": 15443}}, "vips": {BAD_HOST: "fe80::1"}},
     "cluster1", [f"vips.{BAD_HOST}", "fe80::1"]),
    ("remote_services_foreign_object_with_our_name", "remote_services",
     {"services": [service("drill-fo", BAD_NS, "cluster2", "cluster1", BAD_NS)], "role": "consumer",
      "cluster": "cluster1", "gateways": {"cluster2": {"address": "127.100.2.1", "port": 15443}},
      "vips": {"drill-fo.drill-bad.global": "240.77.5.5"}}, "cluster1",
     ["ServiceEntry drill-bad/drill-fo-drill-bad", "exists and was not made by meshlink"]),
    ("preflight_unknown_check", "preflight", {"services": [bad_service()], "cluster": "cluster1",
                                              "checks": ["dns"]}, "cluster1", ["checks", "dns"]),
    ("mesh_plan_bad_port", "mesh_plan", {"services": [bad_service(ports=[{"name": "http1", "number": -1,
                                                                          "protocol": "http"}])],
                                         "clusters": list(CLUSTERS)}, None, ["services[0].ports[0].number"]),
]


def _module_playbook(lab: Lab, module: str, args: Dict[str, Any], host: Optional[str]) -> Path:
    task_args = dict(args)
    if host is not None:
        task_args = {"kubeconfig": lab.kubeconfig, "context": host, **task_args}
    play = [{"name": f"drill {module}", "hosts": host or "cluster1", "gather_facts": False, "connection": "local",
             "tasks": [{"name": f"call {module}", f"meshlink.multicluster.{module}": task_args}]}]
    path = lab.tmp / f"case-{uuid.uuid4().hex[:8]}.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    return path


def _bad_input_fixtures(lab: Lab) -> None:
    for ctx in CLUSTERS:
        lab.namespaces(ctx, BAD_NS)
    lab.apply("cluster1",
              {"apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
               "metadata": {"name": "drill-held", "namespace": BAD_NS},
               "spec": {"hosts": ["drill-held.drill-bad.global"], "location": "MESH_INTERNAL", "ports": PORTS,
                        "resolution": "STATIC", "addresses": ["240.77.3.3"]}},
              {"apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
               "metadata": {"name": "drill-fo-drill-bad", "namespace": BAD_NS},
               "spec": {"hosts": ["someone-else.example.com"], "location": "MESH_EXTERNAL", "ports": PORTS,
                        "resolution": "DNS"}},
              {"apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
               "metadata": {"name": "drill-om-drill-bad", "namespace": BAD_NS,
                            "labels": {MANAGED_BY: "meshlink", MESH_LABEL: "drill-other",
                                       SERVICE_LABEL: "drill-om.drill-bad"}},
               "spec": {"hosts": ["drill-om.drill-bad.global"], "location": "MESH_INTERNAL", "ports": PORTS,
                        "resolution": "STATIC", "addresses": ["240.77.3.4"]}},
              {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "drill-foreign-store", "namespace": "istio-system"},
               "data": {"someone.else.global": "240.77.8.8"}},
              {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "drill-other-mesh-store", "namespace": "istio-system",
                            "labels": {MANAGED_BY: "meshlink", MESH_LABEL: "drill-other",
                                       "meshlink.io/component": "vip-store"}},
               "data": {"drill-om.drill-bad.global": "240.77.3.4"}})
    gw_port = {"name": "tls", "port": 15443, "targetPort": 15443, "protocol": "TCP"}
    lab.apply("cluster2", *[
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": BAD_NS, "labels": labels},
         "spec": {"type": "ClusterIP", "selector": {"app": name}, "ports": ports}}
        for name, labels, ports in (
            ("drill-gw-a", {"app": "drill-twin"}, [gw_port]),
            ("drill-gw-b", {"app": "drill-twin"}, [gw_port]),
            ("drill-gw-noport", {"app": "drill-noport"}, [{"name": "http", "port": 80, "targetPort": 80,
                                                           "protocol": "TCP"}]),
        )])


def test_drill_bad_input_fails_before_any_write(lab: Lab, say):
    lab.settle()  # the namespaces of the drills before this one are gone: only the cases move things
    _bad_input_fixtures(lab)
    cases: List[Dict[str, Any]] = []
    per_class: Dict[str, int] = {}
    for klass, case_id, services, extra, host_over, expect in [(k, *c) for k, table in SETUP_CLASSES.items()
                                                               for c in table]:
        per_class[klass] = per_class.get(klass, 0) + 1
        extra = dict(extra)
        mesh = extra.pop("@mesh", "drill-bad")
        flags = ["--limit", extra.pop("@limit")] if "@limit" in extra else []
        marker = next((svc["name"] for svc in services if isinstance(svc, dict)
                       and str(svc.get("name")).startswith("drill-g")), None) if isinstance(services, list) else None
        hosts = {c: {"meshlink_context": c} for c in CLUSTERS}
        for host, over in host_over.items():
            resolved = {}
            for key, value in over.items():
                if value == "@server":
                    value = lab.server(host)["server"]
                elif value == "@ca":
                    value = lab.server(host)["ca"]
                resolved[key] = value
            hosts[host] = {**hosts[host], **resolved}
        inventory = lab.inventory(services, hosts=hosts, mesh=mesh,
                                  **{"meshlink_vip_store_name": "drill-vips-bad", **extra})
        if case_id == "ws_newline_in_name":
            assert "name: |\n" in inventory.read_text(encoding="utf-8"), "the newline case is not a block scalar"
        cases.append({"id": case_id, "cmd": lab.command("setup", inventory, *flags), "expect": expect,
                      "marker": marker})
    per_class["module"] = len(MODULE_CASES)
    for case_id, module, args, host, expect in MODULE_CASES:
        inventory = lab.inventory([], hosts={c: {} for c in CLUSTERS})
        cases.append({"id": case_id, "cmd": lab.command(str(_module_playbook(lab, module, args, host)), inventory),
                      "expect": expect})
    counts: Dict[str, Any] = {"cases": len(cases), "classes": per_class, "failed_as_expected": 0,
                              "named_the_field": 0, "clusters_unchanged": 0, "problems": 0}
    problems: List[str] = []
    lock = threading.Lock()

    durations: Dict[str, float] = {}
    changes: Dict[str, List[str]] = {}

    def run(case: Dict[str, Any]) -> None:
        before = lab.snapshot()
        started = time.monotonic()
        proc = subprocess.run(case["cmd"], capture_output=True, text=True, cwd=REPO, env=lab.env(), check=False,
                              timeout=600)
        durations[case["id"]] = round(time.monotonic() - started, 1)
        after = lab.snapshot()
        text = flat(proc.stdout + proc.stderr)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        missing = [s for s in case["expect"] if s not in text]
        with lock:
            if proc.returncode != 0:
                counts["failed_as_expected"] += 1
            else:
                problems.append(f"{case['id']}: succeeded")
            if not missing:
                counts["named_the_field"] += 1
            else:
                tail = text[text.find("fatal:"):][:600] if "fatal:" in text else text[-600:]
                problems.append(f"{case['id']}: message lacks {missing}: {tail}")
            if changed:
                changes[case["id"]] = changed

    try:
        with drill(say, "bad_input", counts):
            assert len(cases) >= 30
            with ThreadPoolExecutor(max_workers=3) as pool:
                list(pool.map(run, cases))
            # Three cases run at a time, so a change shows in the snapshots of the cases beside the
            # one that made it: an object named after a case's marker (drill-g<N>) is that case's.
            markers = {c["marker"]: c["id"] for c in cases if c.get("marker")}
            owned: Dict[str, set] = {}
            for case_id, keys in changes.items():
                for key in keys:
                    owner = next((markers[m] for m in markers if f"/{m}-" in key), case_id)
                    owned.setdefault(owner, set()).add(key)
            for case_id, keys in sorted(owned.items()):
                problems.append(f"{case_id}: changed {sorted(keys)[:6]}")
            counts["clusters_unchanged"] = len(cases) - len(owned)
            counts["problems"] = len(problems)
            slow = sorted(durations.items(), key=lambda kv: -kv[1])[:5]
            say(f"bad_input: {len(cases)} cases, slowest {slow}")
            assert not problems, "\n".join(problems)
    finally:
        lab.drop_namespaces("cluster1", BAD_NS)
        lab.drop_namespaces("cluster2", BAD_NS)
        lab.kc("cluster1", "delete", "configmap", "drill-foreign-store", "drill-other-mesh-store", "-n", "istio-system",
               "--ignore-not-found", check=False)
        for ctx in CLUSTERS:
            lab.drop_store(ctx, "drill-vips-bad")


# ------------------------------------------------------------------ 4. ownership

MESH_KINDS = ",".join(ISTIO_KINDS + ("deployments", "services", "serviceaccounts", "configmaps", "namespaces"))


def mesh_objects(lab: Lab, mesh: str) -> Dict[str, str]:
    """`ctx Kind ns/name` -> resourceVersion of everything of ``mesh`` in both clusters (by its labels)."""
    return {f"{ctx} {o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}":
            o["metadata"]["resourceVersion"]
            for ctx in CLUSTERS
            for o in lab.items(ctx, MESH_KINDS, "-A", "-l", f"{MANAGED_BY}=meshlink,{MESH_LABEL}={mesh}")}


def test_drill_teardown_deletes_nothing_without_our_label(lab: Lab, say):
    cons, src = "drill-oc", "drill-os"
    services = [versioned("drill-o1", src, "cluster1", "cluster2", cons),
                service("drill-o2", src, "cluster1", "cluster2", cons)]
    host1, host2 = "drill-o1.drill-os.global", "drill-o2.drill-os.global"
    spec_se = {"hosts": ["someone-else.example.com"], "location": "MESH_EXTERNAL", "ports": PORTS,
               "resolution": "DNS"}
    spec_dr = {"host": "someone-else.example.com"}
    spec_vs = {"hosts": ["someone-else.example.com"], "http": [{"route": [{"destination":
                                                                          {"host": "someone-else.example.com"}}]}]}
    other_mesh = {MANAGED_BY: "meshlink", MESH_LABEL: "drill-own-other", SERVICE_LABEL: "drill-o2.drill-os"}
    foreign = {
        "cluster2": [
            ("ServiceEntry", cons, "drill-o1-drill-os", spec_se, None),
            ("DestinationRule", cons, "drill-o1-drill-os-global", spec_dr, None),
            ("VirtualService", cons, "drill-o1-drill-os-global", spec_vs, None),
            # our name, someone else's manager label
            ("ServiceEntry", cons, "drill-o2-drill-os", spec_se, {MANAGED_BY: "helm"}),
            # our service label without our managed-by label
            ("DestinationRule", cons, "drill-o2-drill-os-global", spec_dr, {SERVICE_LABEL: "drill-o2.drill-os"}),
            # every label of ours, but another mesh's
            ("VirtualService", cons, "drill-o2-drill-os-global", spec_vs, other_mesh),
        ],
        "cluster1": [("DestinationRule", src, "drill-o1-drill-os-local", spec_dr, None)],
    }
    plural = {"ServiceEntry": "serviceentries", "DestinationRule": "destinationrules",
              "VirtualService": "virtualservices"}
    lab.namespaces("cluster2", cons)
    lab.namespaces("cluster1", src)
    for ctx, objs in foreign.items():
        lab.apply(ctx, *[{"apiVersion": "networking.istio.io/v1alpha3", "kind": kind,
                          "metadata": {"name": name, "namespace": ns, **({"labels": labels} if labels else {})},
                          "spec": spec} for kind, ns, name, spec, labels in objs])
    # VIP stores at the store names the runs are given that are not this mesh's (a user's, another
    # mesh's), and sample-app look-alikes without our label
    lab.apply("cluster2", {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "drill-own-foreign-store", "namespace": "istio-system"},
                           "data": {host1: "240.77.7.1", host2: "240.77.7.2"}},
              {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "drill-own-other-store", "namespace": "istio-system",
                            "labels": {MANAGED_BY: "meshlink", MESH_LABEL: "drill-own-other",
                                       "meshlink.io/component": "vip-store"}},
               "data": {host1: "240.77.7.3", host2: "240.77.7.4"}})
    lab.apply("cluster2", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sleep",
                                                                                      "namespace": cons}})
    lab.apply("cluster1", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "httpbin",
                                                                                      "namespace": src}})

    def watched() -> Dict[str, str]:
        out = {}
        for ctx, objs in foreign.items():
            for kind, ns, name, _spec, _labels in objs:
                obj = lab.get(ctx, f"{plural[kind]}.networking.istio.io", name, "-n", ns)
                out[f"{ctx} {kind} {ns}/{name}"] = obj["metadata"]["resourceVersion"] if obj else "DELETED"
        for ctx, kind, ns, name in (("cluster2", "configmap", "istio-system", "drill-own-foreign-store"),
                                    ("cluster2", "configmap", "istio-system", "drill-own-other-store"),
                                    ("cluster2", "serviceaccount", cons, "sleep"),
                                    ("cluster1", "serviceaccount", src, "httpbin"),
                                    ("cluster2", "namespace", "", cons), ("cluster1", "namespace", "", src)):
            obj = lab.get(ctx, kind, name, *(["-n", ns] if ns else []))
            out[f"{ctx} {kind} {ns}/{name}"] = obj["metadata"]["resourceVersion"] if obj else "DELETED"
        return out

    # (label, extra inventory variables, what the output must say)
    runs = [("teardown", {"meshlink_vip_store_name": "drill-own-vips"}, []),
            ("teardown, meshlink_teardown_all", {"meshlink_vip_store_name": "drill-own-vips",
                                                 "meshlink_teardown_all": True}, []),
            ("teardown, the store name is a foreign ConfigMap", {"meshlink_vip_store_name": "drill-own-foreign-store"},
             ["ConfigMap istio-system/drill-own-foreign-store was not made by meshlink", "left alone"]),
            ("teardown all, the store name is another mesh's store",
             {"meshlink_vip_store_name": "drill-own-other-store", "meshlink_teardown_all": True},
             ["ConfigMap istio-system/drill-own-other-store belongs to mesh drill-own-other", "left alone"])]
    counts: Dict[str, Any] = {"foreign_objects": 0, "teardown_runs": len(runs), "deleted": 0, "modified": 0,
                              "run_rcs": [], "two_meshes": {}}

    # Two meshes (two inventories) on the same clusters, with sample apps so that one can be verified.
    mesh_a = [service("drill-ma", "drill-ma-src", "cluster2", "cluster1", "drill-ma-c")]
    mesh_b = [service("drill-mb", "drill-mb-src", "cluster1", "cluster2", "drill-mb-c")]
    inv_a = lab.inventory(mesh_a, mesh="drill-a", meshlink_deploy_sample_apps=True)
    inv_b = lab.inventory(mesh_b, mesh="drill-b", meshlink_deploy_sample_apps=True)
    two = counts["two_meshes"]
    try:
        with drill(say, "ownership", counts):
            before = watched()
            counts["foreign_objects"] = len(before)
            assert "DELETED" not in before.values(), before
            for label, extra, says in runs:
                inventory = lab.inventory(services, mesh="drill-own", meshlink_teardown_sample_apps=True, **extra)
                result = lab.play("teardown", inventory)
                counts["run_rcs"].append(result.rc)
                if result.rc != 0:
                    # refusing is fine, deleting is not; the refusal must say why
                    assert "was not made by meshlink" in flat(result.out) or "belongs to mesh" in flat(result.out), \
                        f"{label}: {show(result)}"
                missing = [m for m in says if m not in flat(result.out)]
                assert not missing, f"{label}: the output does not say {missing}: {show(result)}"
                after = watched()
                deleted = [k for k, v in after.items() if v == "DELETED"]
                modified = [k for k, v in after.items() if v != "DELETED" and v != before[k]]
                counts["deleted"] += len(deleted)
                counts["modified"] += len(modified)
                assert not deleted and not modified, f"{label}: deleted {deleted}, modified {modified}"
            # nothing here is the mesh's: every teardown succeeds, deleting nothing (a foreign store
            # is left alone with a warning)
            assert counts["run_rcs"] == [0] * len(runs), counts

            # two meshes: tearing down drill-b (everything of it) leaves drill-a as it was
            for inv in (inv_a, inv_b):
                run = lab.play("setup", inv)
                assert run.rc == 0, show(run)
            verify = lab.play("verify", inv_a)
            assert verify.rc == 0 and "cluster1 → drill-ma.drill-ma-src.global: 200" in verify.out, show(verify)
            a_before, b_before = mesh_objects(lab, "drill-a"), mesh_objects(lab, "drill-b")
            store_a = lab.get("cluster1", "configmap", "meshlink-vips-drill-a", "-n", "istio-system")
            store_b = lab.store("cluster2", "meshlink-vips-drill-b")
            assert store_a and set(store_a["data"]) == {"drill-ma.drill-ma-src.global"}, store_a
            assert set(store_b) == {"drill-mb.drill-mb-src.global"}, store_b
            assert set(store_a["data"].values()).isdisjoint(lab.store("cluster1", "meshlink-vips-drill-b").values())
            two.update(a_objects=len(a_before), b_objects=len(b_before))
            assert a_before and b_before and not set(a_before) & set(b_before), (a_before, b_before)

            down = lab.play("teardown", inv_b, "-e", "meshlink_teardown_all=true")
            assert down.rc == 0, show(down)
            deadline = time.monotonic() + 120
            while mesh_objects(lab, "drill-b") and time.monotonic() < deadline:
                time.sleep(2)  # the namespaces the mesh created finish terminating
            b_left = mesh_objects(lab, "drill-b")
            two["b_left"] = len(b_left)
            assert not b_left, f"drill-b's teardown left {sorted(b_left)}"
            assert lab.get("cluster2", "configmap", "meshlink-vips-drill-b", "-n", "istio-system") is None
            a_after = mesh_objects(lab, "drill-a")
            two["a_changed"] = sorted(k for k in set(a_before) | set(a_after) if a_before.get(k) != a_after.get(k))
            assert not two["a_changed"], f"drill-b's teardown changed drill-a: {two['a_changed']}"
            store_after = lab.get("cluster1", "configmap", "meshlink-vips-drill-a", "-n", "istio-system")
            two["a_store_unchanged"] = (store_after["metadata"]["resourceVersion"]
                                        == store_a["metadata"]["resourceVersion"]
                                        and store_after["data"] == store_a["data"])
            assert two["a_store_unchanged"], (store_a, store_after)
            verify = lab.play("verify", inv_a)
            match = re.search(r"cluster1 → drill-ma\.drill-ma-src\.global: (\d{3}|FAILED)", verify.out)
            two["a_verify_after"] = match.group(1) if match else "?"
            assert verify.rc == 0 and two["a_verify_after"] == "200", show(verify)
    finally:
        for inv in (inv_b, inv_a):
            lab.play("teardown", inv, "-e", "meshlink_teardown_all=true")
        for ctx in CLUSTERS:
            lab.drop_namespaces(ctx, "drill-ma-src", "drill-ma-c", "drill-mb-src", "drill-mb-c")
            lab.drop_store(ctx, "meshlink-vips-drill-a")
            lab.drop_store(ctx, "meshlink-vips-drill-b")
        lab.drop_namespaces("cluster2", cons)
        lab.drop_namespaces("cluster1", src)
        lab.kc("cluster2", "delete", "configmap", "drill-own-foreign-store", "drill-own-other-store", "-n",
               "istio-system", "--ignore-not-found", check=False)
        lab.drop_store("cluster2", "drill-own-vips")


# ------------------------------------------------------------------ 5. secrets

SA_NS, SA_NAME = "drill-secrets", "drill-secrets-admin"


def test_drill_token_appears_in_no_output_log_or_artifact(lab: Lab, say):
    import ansible_runner  # pylint: disable=import-outside-toplevel

    tokens: Dict[str, str] = {}
    for ctx in CLUSTERS:
        lab.apply(ctx, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SA_NS}},
                  {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA_NAME, "namespace": SA_NS}},
                  {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": SA_NAME},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NS}]})
        tokens[ctx] = lab.kc(ctx, "create", "token", SA_NAME, "-n", SA_NS, "--duration", "1h").stdout.strip()
        assert tokens[ctx].count(".") == 2
    services = [service("drill-sec", "drill-ss", "cluster2", "cluster1", "drill-sc")]
    hosts = {ctx: {"meshlink_host": lab.server(ctx)["server"], "meshlink_api_key": tokens[ctx],
                   "meshlink_ca_cert": lab.server(ctx)["ca"]} for ctx in CLUSTERS}
    work = Path(tempfile.mkdtemp(prefix="drill-secrets-", dir=lab.tmp))
    inventory = work / "inventory.yml"  # the input: the only file allowed to hold the tokens
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "meshlink_deploy_sample_apps": True, "meshlink_vip_pool": POOL,
                 "meshlink_mesh": "drill-sec", "meshlink_vip_store_name": "drill-vips-secrets",
                 "meshlink_services": services},
        "hosts": hosts}}, sort_keys=False), encoding="utf-8")
    bad_inventory = work / "inventory-unreachable.yml"
    bad_hosts = {ctx: {**h, "meshlink_host": "https://127.0.0.1:9"} for ctx, h in hosts.items()}
    bad = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    bad["all"]["hosts"] = bad_hosts
    bad_inventory.write_text(yaml.safe_dump(bad, sort_keys=False), encoding="utf-8")
    log_path = work / "ansible.log"
    surfaces: Dict[str, str] = {}
    counts: Dict[str, Any] = {"runs": 0, "files_searched": 0, "lines_searched": 0, "token_hits": 0,
                              "token_tail_hits": 0}
    # no kubeconfig to fall back to: every request must use the token
    env_extra = {"ANSIBLE_LOG_PATH": str(log_path), "KUBECONFIG": str(work / "no-kubeconfig"),
                 "K8S_AUTH_KUBECONFIG": str(work / "no-kubeconfig")}
    try:
        with drill(say, "secrets", counts):
            # ansible-runner, as AWX runs a job: setup, then teardown
            for playbook in ("setup", "teardown"):
                pdd = work / f"runner-{playbook}"
                pdd.mkdir()
                runner = ansible_runner.run(
                    private_data_dir=str(pdd), project_dir=str(REPO), playbook=f"playbooks/{playbook}.yml",
                    inventory=str(inventory), cmdline="-vvv", quiet=True, ident=playbook, timeout=900,
                    envvars={"ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
                             "PATH": f"{BIN}:{os.environ['PATH']}", **env_extra})
                counts["runs"] += 1
                assert runner.rc == 0, (pdd / "artifacts" / playbook / "stdout").read_text(errors="replace")[-4000:]
                if playbook == "setup":
                    # verify (the connectivity check through the exec API), plain ansible-playbook -vvv
                    verify = lab.play("verify", inventory, "-vvv", env=lab.env(**env_extra))
                    counts["runs"] += 1
                    assert verify.rc == 0, show(verify)
                    surfaces["verify -vvv output"] = verify.out
            # a failing run with the token: the error paths print no token either
            failing = lab.play("preflight", bad_inventory, "-vvv", env=lab.env(**env_extra))
            counts["runs"] += 1
            assert failing.rc != 0 and "cannot reach the API server" in flat(failing.out), show(failing)
            surfaces["unreachable preflight -vvv output"] = failing.out
            files = [p for p in work.rglob("*") if p.is_file() and p not in (inventory, bad_inventory)]
            files += [p for p in (Path(lab.kubeconfig).parent / "kwok" / "clusters").glob("*/logs/kube-apiserver.log")]
            leaks: List[str] = []
            for path in files:
                data = path.read_bytes()
                counts["files_searched"] += 1
                counts["lines_searched"] += data.count(b"\n") + 1
                for ctx, token in tokens.items():
                    if token.encode() in data:
                        counts["token_hits"] += data.count(token.encode())
                        leaks.append(f"{path}: token of {ctx}")
                    elif token.split(".")[2][-24:].encode() in data:
                        counts["token_tail_hits"] += 1
                        leaks.append(f"{path}: part of the token of {ctx}")
            for name, text in surfaces.items():
                counts["lines_searched"] += text.count("\n") + 1
                for ctx, token in tokens.items():
                    if token in text or token.split(".")[2][-24:] in text:
                        counts["token_hits"] += 1
                        leaks.append(f"{name}: token of {ctx}")
            assert counts["files_searched"] > 10, "nothing was searched"
            # positive control: the search finds the token where it is (the input inventory)
            assert all(token.encode() in inventory.read_bytes() for token in tokens.values())
            counts["job_events"] = len(list(work.rglob("job_events/*.json")))
            assert counts["job_events"] > 0, "ansible-runner wrote no job events to search"
            assert not leaks, f"the token leaked: {leaks}"
    finally:
        for ctx in CLUSTERS:
            lab.kc(ctx, "delete", "clusterrolebinding", SA_NAME, "--ignore-not-found", check=False)
            lab.drop_store(ctx, "drill-vips-secrets")
            lab.drop_namespaces(ctx, SA_NS, "drill-sc", "drill-ss")
