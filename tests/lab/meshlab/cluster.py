"""Lab lifecycle: N real Kubernetes control planes (kwokctl, binary runtime) on loopback.

Everything lives in the state directory (default tests/lab/state): kwokctl's work dir
(KWOK_WORKDIR), the merged kubeconfig with contexts cluster1..N, clusters.json (the
address plan the data plane reads), logs and pid files. ~/.kube/config is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import build, manifests, versions

DEFAULT_CLUSTERS = 2
LB_MODES = ("ip", "hostname", "none")


def _say(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


# ---------------------------------------------------------------- configuration

def parse_per_cluster(value: str, names: list[str], default: str, what: str) -> dict[str, str]:
    """Parse `X` or `X,clusterN=Y,...`: a bare value applies to every cluster not named."""
    base, overrides = default, {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        if "=" in item:
            name, val = item.split("=", 1)
            if name not in names:
                raise SystemExit(f"{what}: unknown cluster {name!r} (lab clusters: {', '.join(names)})")
            overrides[name] = val
        else:
            base = item
    return {name: overrides.get(name, base) for name in names}


def desired_config(state: Path) -> dict[str, Any]:
    count = int(os.environ.get("LAB_CLUSTERS", DEFAULT_CLUSTERS))
    if count < 1 or count > 9:
        raise SystemExit("LAB_CLUSTERS must be between 1 and 9")
    previous = load_config(state)
    names = [f"cluster{i}" for i in range(1, max(count, len(previous.get("clusters", []))) + 1)]
    prev = {c["name"]: c for c in previous.get("clusters", [])}
    lb = parse_per_cluster(os.environ.get("LAB_LB", ""), names, "ip", "LAB_LB")
    istio = parse_per_cluster(os.environ.get("LAB_ISTIO_VERSION", ""), names,
                              versions.DEFAULT_ISTIO_VERSION, "LAB_ISTIO_VERSION")
    without = parse_per_cluster(os.environ.get("LAB_WITHOUT", ""), names, "", "LAB_WITHOUT")
    # A second lab on the same machine (benchmarks beside the e2e suite) takes other
    # addresses: cluster N uses address index base+N in every range of the address plan.
    base = int(os.environ.get("LAB_INDEX_BASE", previous.get("index_base", 0)))
    if not 0 <= base <= 240:
        raise SystemExit("LAB_INDEX_BASE must be between 0 and 240")
    clusters = []
    for n, name in enumerate(names, start=1):
        i = base + n
        old = prev.get(name, {})
        mode = lb[name] if "LAB_LB" in os.environ or not old else old.get("lb", "ip")
        if mode not in LB_MODES:
            raise SystemExit(f"LAB_LB: {name}={mode} is not one of {', '.join(LB_MODES)}")
        version = istio[name] if "LAB_ISTIO_VERSION" in os.environ or not old else old["istio_version"]
        manifests.parse_version(version)
        omit = (without[name] if "LAB_WITHOUT" in os.environ or not old
                else "+".join(old.get("without", [])))
        omit_set = {w for w in omit.split("+") if w}
        bad = omit_set - manifests.WITHOUT_CHOICES
        if bad:
            raise SystemExit(f"LAB_WITHOUT: {name}: unknown item(s) {sorted(bad)}; "
                             f"choose from {sorted(manifests.WITHOUT_CHOICES)}")
        clusters.append({
            "name": name, "index": i, "context": name, "lb": mode, "istio_version": version,
            "without": sorted(omit_set),
            "pod_cidr": f"198.18.{i}.0/24", "service_cidr": f"198.19.{i}.0/24",
            "node_ip": f"127.50.{i}.1", "sidecar_proxy": f"127.60.{i}.1:15001",
        })
    return {"kubeconfig": str(state / "kubeconfig"), "index_base": base, "clusters": clusters}


def load_config(state: Path) -> dict[str, Any]:
    path = state / "clusters.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# ---------------------------------------------------------------- processes

def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "KWOK_WORKDIR": str(state / "kwok")}


def kwokctl(state: Path, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(versions.kwok_bin("kwokctl")), *args]
    proc = subprocess.run(cmd, env=_env(state), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    if not quiet and proc.returncode == 0 and proc.stderr.strip():
        pass
    return proc


def kubectl(state: Path, context: str, *args: str, stdin: str | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [str(versions.kube_bin("kubectl")), "--kubeconfig", str(state / "kubeconfig"),
           "--context", context, *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl --context {context} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def existing_clusters(state: Path) -> set[str]:
    if not (state / "kwok").exists():
        return set()
    proc = kwokctl(state, "get", "clusters", check=False)
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def _kwokctl_config(state: Path, c: dict[str, Any]) -> Path:
    docs = [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "kubeApiserverBinary": str(versions.kube_bin("kube-apiserver")),
                "kubeControllerManagerBinary": str(versions.kube_bin("kube-controller-manager")),
                "kubeSchedulerBinary": str(versions.kube_bin("kube-scheduler")),
                "kubectlBinary": str(versions.kube_bin("kubectl")),
                "kwokControllerBinary": str(versions.kwok_bin("kwok")),
                "etcdBinary": str(versions.etcd_bin()),
                "kubeVersion": versions.KUBERNETES,
                "etcdVersion": versions.ETCD.lstrip("v"),
                "quietPull": True,
            },
            "componentsPatches": [
                {"name": "kube-apiserver",
                 "extraArgs": [{"key": "service-cluster-ip-range", "value": c["service_cidr"]}]},
                {"name": "kube-controller-manager",
                 "extraArgs": [{"key": "service-cluster-ip-range", "value": c["service_cidr"]}]},
            ],
        },
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration",
            # kwokctl does not default a KwokConfiguration it is given: say every option.
            "options": {
                "cidr": c["pod_cidr"], "nodeIP": c["node_ip"],
                "podPlayStageParallelism": 4, "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4, "podsOnNodeSyncParallelism": 1,
                "enablePodsOnNodeSyncListPager": True,
                "enableDebuggingHandlers": True,  # exec goes through these
            },
        },
        {
            # Every exec in this cluster runs on the host with the cluster's emulated sidecar
            # as HTTP proxy: that is how curl "in the sleep pod" enters the mesh.
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterExec",
            "metadata": {"name": "meshlink-lab-sidecar"},
            "spec": {"execs": [{"local": {"envs": [
                {"name": "http_proxy", "value": f"http://{c['sidecar_proxy']}"},
                {"name": "HTTP_PROXY", "value": f"http://{c['sidecar_proxy']}"},
                {"name": "no_proxy", "value": ""},
                {"name": "MESHLINK_LAB_CLUSTER", "value": c["name"]},
            ]}}]},
        },
    ]
    path = state / f"kwokctl-{c['name']}.yaml"
    path.write_text("\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs), encoding="utf-8")
    return path


def _merge_kubeconfig(state: Path, names: list[str]) -> None:
    """Rename kwokctl's `kwok-<name>` contexts to `<name>` in the lab's one kubeconfig."""
    raw = yaml.safe_load((state / "kwok.kubeconfig").read_text(encoding="utf-8"))
    out = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [],
           "contexts": [], "current-context": names[0]}
    for name in names:
        kname = f"kwok-{name}"
        cluster = next(x for x in raw["clusters"] if x["name"] == kname)
        ctx = next(x for x in raw["contexts"] if x["name"] == kname)
        user = next(x for x in raw["users"] if x["name"] == ctx["context"]["user"])
        out["clusters"].append({"name": name, "cluster": cluster["cluster"]})
        out["users"].append({"name": f"{name}-admin", "user": user["user"]})
        out["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-admin"}})
    path = state / "kubeconfig"
    path.write_text(yaml.safe_dump(out, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


def _apply(state: Path, context: str, objs: list[dict]) -> None:
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
    kubectl(state, context, "apply", "--server-side", "--force-conflicts", "--field-manager=meshlink-lab",
            "-f", "-", stdin=doc)


def _delete_omitted(state: Path, c: dict[str, Any]) -> None:
    """Delete lab objects that the cluster's `without` now leaves out (so `up` converges)."""
    full = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in manifests.before_you_begin(c["index"], c["istio_version"], set())}
    want = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in manifests.before_you_begin(c["index"], c["istio_version"], set(c["without"]))}
    for kind, ns, name in sorted(full - want):
        if kind == "ConfigMap":
            continue  # rewritten with the reduced content instead
        resource = {"Gateway": "gateways.networking.istio.io",
                    "DestinationRule": "destinationrules.networking.istio.io"}.get(kind, kind.lower())
        kubectl(state, c["context"], "delete", resource, name, "-n", ns, "--ignore-not-found",
                "--wait=false")


def _wait_ready(state: Path, c: dict[str, Any], timeout: int = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        proc = kubectl(state, c["context"], "get", "--raw", "/readyz", check=False, timeout=10)
        if proc.returncode == 0 and "ok" in proc.stdout:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{c['name']}: kube-apiserver not ready after {timeout}s: {proc.stderr}")
        time.sleep(1)
    # The CRDs must be Established before Gateways/DestinationRules can be applied.
    while kubectl(state, c["context"], "get", "serviceaccount", "default", "-n", "default",
                  check=False, timeout=10).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{c['name']}: controller-manager never created the default ServiceAccount")
        time.sleep(1)


def _setup_cluster(state: Path, c: dict[str, Any], crds: list[dict]) -> None:
    ctx = c["context"]
    _wait_ready(state, c)
    _apply(state, ctx, manifests.istio_crds_for_version(json.loads(json.dumps(crds)), c["istio_version"]))
    kubectl(state, ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l",
            "lab.meshlink.io/part-of=lab")
    _apply(state, ctx, [manifests.node("kwok-node-0", c["node_ip"])])
    objs = manifests.before_you_begin(c["index"], c["istio_version"], set(c["without"]))
    _apply(state, ctx, objs)
    _delete_omitted(state, c)


def _wait_deployments(state: Path, c: dict[str, Any]) -> None:
    kubectl(state, c["context"], "wait", "--for=condition=Available", "--timeout=120s",
            "deployment", "--all", "-n", "istio-system", timeout=150)


# ---------------------------------------------------------------- data plane

def _pid_alive(pid_file: Path) -> int | None:
    """The pid in the file if that process still runs (a zombie counts as gone)."""
    try:
        pid = int(pid_file.read_text().strip())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return None if state in ("Z", "X") else pid
    except (OSError, ValueError, IndexError):
        return None


def _signal(pid: int, sig: int) -> None:
    """Signal the process group the data plane leads (its httpbin children too), else the pid."""
    for send in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            send()
            return
        except ProcessLookupError:
            continue
        except PermissionError:
            return


def start_dataplane(state: Path) -> None:
    pid_file = state / "dataplane.pid"
    pid = _pid_alive(pid_file)
    if pid:
        # the address plan may have changed: the data plane reads clusters.json at start
        stop_dataplane(state)
    (state / "dataplane.ready").unlink(missing_ok=True)
    log = open(state / "dataplane.log", "a", encoding="utf-8")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshlab.dataplane", "--state-dir", str(state)],
        cwd=versions.LAB_DIR, env={**os.environ, "PYTHONPATH": str(versions.LAB_DIR)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + 90
    while not (state / "dataplane.ready").exists():
        if proc.poll() is not None:
            raise SystemExit(f"the lab data plane exited (rc={proc.returncode}); see {state / 'dataplane.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the lab data plane did not become ready in 90s; see {state / 'dataplane.log'}")
        time.sleep(0.5)


def stop_dataplane(state: Path) -> None:
    pid_file = state / "dataplane.pid"
    pid = _pid_alive(pid_file)
    if pid:
        _signal(pid, signal.SIGTERM)
        for _ in range(100):
            if _pid_alive(pid_file) is None:
                break
            time.sleep(0.1)
        else:
            _signal(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    (state / "dataplane.ready").unlink(missing_ok=True)


# ---------------------------------------------------------------- commands

@contextlib.contextmanager
def _exclusive(state: Path):
    """One `up`/`down` at a time per lab: two would race over processes and the data plane."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lab.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up() -> Path:
    state = versions.state_dir()
    with _exclusive(state):
        return _up(state)


def _up(state: Path) -> Path:
    started = time.monotonic()
    build.ensure_all()
    config = desired_config(state)
    names = [c["name"] for c in config["clusters"]]
    have = existing_clusters(state)
    for c in config["clusters"]:
        if c["name"] in have:
            kwokctl(state, "start", "cluster", "--name", c["name"], check=False)
            continue
        _say(f"creating {c['name']} (Istio {c['istio_version']}, load balancer {c['lb']})")
        kwokctl(state, "create", "cluster", "--name", c["name"], "--runtime", "binary",
                "--kubeconfig", str(state / "kwok.kubeconfig"), "--config", str(_kwokctl_config(state, c)),
                "--wait", "120s")
    _merge_kubeconfig(state, names)
    (state / "clusters.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    crds = [d for d in yaml.safe_load_all(versions.istio_crds().read_text(encoding="utf-8")) if d]
    for c in config["clusters"]:
        _say(f"{c['name']}: Istio CRDs and the seed's 'before you begin' objects")
        _setup_cluster(state, c, crds)
    if os.environ.get("LAB_DATAPLANE", "on") != "off":
        start_dataplane(state)
    for c in config["clusters"]:
        _wait_deployments(state, c)
    _say(f"up: {len(names)} clusters in {time.monotonic() - started:.0f}s; "
         f"kubeconfig {state / 'kubeconfig'} (contexts {', '.join(names)})")
    return state


def down() -> None:
    state = versions.state_dir()
    if not state.exists():
        _say("down: nothing to do")
        return
    with _exclusive(state):
        _down(state)


def _down(state: Path) -> None:
    stop_dataplane(state)
    if versions.kwok_bin("kwokctl").exists():
        for name in sorted(existing_clusters(state)):
            _say(f"deleting {name}")
            kwokctl(state, "delete", "cluster", "--name", name, "--kubeconfig",
                    str(state / "kwok.kubeconfig"), check=False)
    shutil.rmtree(state, ignore_errors=True)
    _say("down: lab removed")


def status() -> int:
    state = versions.state_dir()
    config = load_config(state)
    if not config:
        print("lab: down")
        return 1
    rc = 0
    for c in config["clusters"]:
        proc = kubectl(state, c["context"], "get", "--raw", "/readyz", check=False, timeout=10)
        ok = proc.returncode == 0
        rc |= 0 if ok else 1
        print(f"{c['name']}: apiserver {'ready' if ok else 'DOWN'}; istio {c['istio_version']}; "
              f"lb {c['lb']}; without {','.join(c['without']) or '-'}")
    dp = _pid_alive(state / "dataplane.pid")
    print(f"dataplane: {'running pid ' + str(dp) if dp else 'STOPPED'}")
    print(f"kubeconfig: {state / 'kubeconfig'}")
    return rc if dp else 1
