"""The benchmark's own lab (never the default one the e2e suite uses) and its clean state.

The lab is started by ``tests/lab/lab up`` with its own state directory and address index
(``LAB_STATE_DIR``, ``LAB_INDEX_BASE``), then its emulated data plane is stopped: it polls
every API server once a second (pods, services, endpoint slices, Istio objects), which would
swamp the request counts and compete for the CPU. Nothing measured needs it: the load
balancer addresses it wrote into the gateway Services' status stay there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab" / "lab"
sys.path.insert(0, str(REPO / "tests" / "lab"))
from meshlab import procs, versions  # noqa: E402  # the lab's process checks, pinned versions and cache paths

KUBECTL_BIN = versions.kube_bin("kubectl")
DEFAULT_STATE = Path("/tmp/meshlink-bench-lab")
DEFAULT_INDEX_BASE = 20
ISTIO_KINDS = ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
               "destinationrules.networking.istio.io")
SNAPSHOT_KINDS = ISTIO_KINDS + ("configmaps",)
VIP_STORE_SELECTOR = "meshlink.io/component=vip-store"


class Lab:
    def __init__(self, state: Path, index_base: int, clusters: int) -> None:
        self.state = state.resolve()
        self.index_base = index_base
        self.clusters = [f"cluster{i}" for i in range(1, clusters + 1)]
        self.kubeconfig = self.state / "kubeconfig"
        self.kubectl_cmd = [str(KUBECTL_BIN), "--kubeconfig", str(self.kubeconfig)]
        if self.state == (REPO / "tests" / "lab" / "state").resolve():
            raise SystemExit("the benchmark never uses the default lab (tests/lab/state): choose another --lab-state")

    @property
    def env(self) -> Dict[str, str]:
        return {**os.environ, "LAB_STATE_DIR": str(self.state), "LAB_INDEX_BASE": str(self.index_base),
                "LAB_CLUSTERS": str(len(self.clusters))}

    def up(self) -> None:
        proc = subprocess.run([str(LAB), "up"], env=self.env, capture_output=True, text=True, check=False,
                              timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"lab up ({self.state}) failed:\n{proc.stdout}\n{proc.stderr}")
        for context in self.clusters:
            self.wait_gateway_address(context)
        self.stop_dataplane()

    def grow(self, clusters: int) -> None:
        """Bring the lab up with at least ``clusters`` clusters (``lab up`` keeps the ones it has)."""
        if clusters > len(self.clusters):
            self.clusters = [f"cluster{i}" for i in range(1, clusters + 1)]
            self.up()

    def running_clusters(self) -> int:
        """How many clusters the lab's ``clusters.json`` lists (0: the lab is not up)."""
        try:
            return len(json.loads((self.state / "clusters.json").read_text(encoding="utf-8"))["clusters"])
        except (OSError, ValueError, KeyError):
            return 0

    def processes(self) -> Dict[str, Dict[str, int]]:
        return lab_processes(self.state)

    def down(self) -> None:
        subprocess.run([str(LAB), "down"], env=self.env, capture_output=True, text=True, check=False, timeout=600)

    def stop_dataplane(self) -> None:
        pid_file = self.state / "dataplane.pid"
        pid = procs.read_pid(pid_file)
        if pid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not procs.alive(pid):
                break
            try:
                os.killpg(pid, sig)  # the data plane leads its group (its httpbin children too)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5
            while procs.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        pid_file.unlink(missing_ok=True)
        (self.state / "dataplane.ready").unlink(missing_ok=True)

    def kubectl(self, context: str, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.kubectl_cmd, "--context", context, *args], input=stdin, capture_output=True,
                              text=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl --context {context} {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def wait_gateway_address(self, context: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.kubectl(context, "get", "svc", "-n", "istio-system", "-l", "app=istio-ingressgateway", "-o",
                               "jsonpath={.items[0].status.loadBalancer.ingress[0].ip}", check=False).stdout.strip()
            if out:
                return out
            if time.monotonic() > deadline:
                raise SystemExit(f"{context}: the ingress gateway has no load balancer address")
            time.sleep(1)

    def _parallel(self, fn, contexts: Iterable[str]) -> list:
        contexts = list(contexts)
        with ThreadPoolExecutor(max_workers=len(contexts) or 1) as pool:
            return list(pool.map(fn, contexts))

    def reset(self, contexts: Iterable[str], namespaces: Iterable[str]) -> None:
        """The clean state every measured run starts from: the namespaces exist, no Istio object
        in them, no VIP store (of any mesh)."""
        namespaces = list(namespaces)

        def one(context: str) -> None:
            docs = [{"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}} for ns in namespaces]
            listing = {"apiVersion": "v1", "kind": "List", "items": docs}
            self.kubectl(context, "apply", "-f", "-", stdin=json.dumps(listing))
            for ns in namespaces:
                self.kubectl(context, "delete", ",".join(ISTIO_KINDS), "--all", "-n", ns, "--wait=true")
            # every mesh's VIP store (meshlink-vips-<mesh>), by its label
            self.kubectl(context, "delete", "configmap", "-n", "istio-system", "-l", VIP_STORE_SELECTOR,
                         "--ignore-not-found", "--wait=true")

        self._parallel(one, contexts)

    def snapshot(self, contexts: Iterable[str]) -> Set[Tuple[str, str, str, str, str]]:
        """(context, kind, namespace, name, uid) of every Istio object and ConfigMap."""

        def one(context: str) -> Set[Tuple[str, str, str, str, str]]:
            out = self.kubectl(context, "get", ",".join(SNAPSHOT_KINDS), "-A", "-o", "json").stdout
            items = json.loads(out).get("items") or []
            return {(context, o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"],
                     o["metadata"]["uid"]) for o in items}

        result: Set[Tuple[str, str, str, str, str]] = set()
        for part in self._parallel(one, contexts):
            result |= part
        return result

    def service_entries(self, contexts: Iterable[str], namespace: str) -> Dict[str, List[dict]]:
        def one(context: str) -> List[dict]:
            out = self.kubectl(context, "get", "serviceentries.networking.istio.io", "-n", namespace, "-o",
                               "json").stdout
            return json.loads(out).get("items") or []

        contexts = list(contexts)
        return dict(zip(contexts, self._parallel(one, contexts)))


def lab_processes(state: Path) -> Dict[str, Dict[str, int]]:
    """cluster -> component -> pid of every process the lab recorded in its state directory.

    kwokctl (binary runtime) writes ``kwok/clusters/<cluster>/pids/<component>.pid`` (etcd,
    kube-apiserver, kube-controller-manager, kube-scheduler, kwok-controller); the lab writes
    ``istiod/<name>.pid`` and ``istiod/<name>.json`` (whose ``cluster`` is the cluster that
    istiod watches: the validator of the seed-era clusters is counted with cluster1) and
    ``dataplane.pid`` (its data plane, one for the whole lab: counted under ``lab``). Whether a
    pid still runs is not checked here (a stopped process reads as 0 KiB).
    """
    out: Dict[str, Dict[str, int]] = {}
    clusters = state / "kwok" / "clusters"
    if clusters.is_dir():
        for cluster in sorted(p for p in clusters.iterdir() if p.is_dir()):
            for pid_file in sorted((cluster / "pids").glob("*.pid")):
                pid = procs.read_pid(pid_file)
                if pid:
                    out.setdefault(cluster.name, {})[pid_file.stem] = pid
    for pid_file in sorted((state / "istiod").glob("*.pid")):
        pid = procs.read_pid(pid_file)
        if not pid:
            continue
        try:
            cluster = json.loads((state / "istiod" / f"{pid_file.stem}.json").read_text(encoding="utf-8"))["cluster"]
        except (OSError, ValueError, KeyError):
            cluster = "lab"
        component = "istiod" if pid_file.stem == cluster else f"istiod-{pid_file.stem}"
        out.setdefault(cluster, {})[component] = pid
    pid = procs.read_pid(state / "dataplane.pid")
    if pid:
        out.setdefault("lab", {})["dataplane"] = pid
    return out
