"""Real istiods (pilot-discovery of istio.io/istio@versions.ISTIOD) run by the lab, on loopback.

Two kinds, both plain processes outside the clusters (no containers in the lab):

* one per **current primary** cluster (`STATE/istiod/<cluster>.*`): what that cluster's
  istiod pod would be. It watches the cluster's API server with the lab's admin credentials
  (an inline-credential kubeconfig; istiod rejects file references in remote secrets, and
  the same file serves both), runs with CLUSTER_ID = cluster name, reads its mesh config
  live from ConfigMap `istio-system/istio` (keys `mesh`, `meshNetworks`: there is no mesh
  file in its working directory, so istiod watches the ConfigMap, as an in-cluster istiod
  reads the mounted one), and loads its CA from the cluster's `istio-system/cacerts` Secret
  (USE_REMOTE_CERTS, the external-istiod path: the Secret's files are written to its
  ROOT_CA_DIR at start; without the Secret istiod self-signs into `istio-ca-secret`). It has
  no network setting of its own: istiod takes the cluster's network from the istio-system
  label and gateways from labelled Services, which the collection's setup writes.
* one **validator** per lab that has seed-era clusters (`STATE/istiod/validator.*`): master
  istiod watches networking.istio.io/v1, which a seed-era cluster rightly does not serve, and
  then never becomes ready. The validator runs against the first seed cluster with its config
  from an empty directory (`--configDir`) and the two controllers that would still watch v1
  objects off (Gateway API, IP auto-allocation): its `/validate` endpoint (the same handler,
  schemas and messages as any istiod) then serves every seed cluster's validating webhook.

Ports: 127.0.0.1, PORT_BASE + 10 * index + slot, where `index` is the address index of the
cluster it watches (LAB_INDEX_BASE + N): two labs with different bases never collide. Slots:
http (debug, /ready) 0, https (webhooks) 1, grpc (plaintext ADS) 2, secure_grpc 3,
monitoring 4, ControlZ 5. (kwokctl takes its ports counting down from 32767.)

`STATE/istiod/<name>.json` is the contract with the data plane and the tests: pid, version,
the addresses of every port, the cluster it watches, its log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from . import procs, versions

PORT_BASE = 16000
PORT_SLOTS = ("http", "https", "grpc", "secure_grpc", "monitoring", "ctrlz")
VALIDATOR = "validator"
READY_TIMEOUT = 90.0


def ports(index: int) -> dict[str, int]:
    if not 1 <= index <= 249:
        raise ValueError(f"cluster address index {index} outside 1..249")
    return {slot: PORT_BASE + 10 * index + i for i, slot in enumerate(PORT_SLOTS)}


def directory(state: Path) -> Path:
    return state / "istiod"


def inline_kubeconfig(lab_kubeconfig: dict[str, Any], cluster: str) -> dict[str, Any]:
    """A kubeconfig for `cluster` alone with every credential inline (`*-data`)."""
    def pick(kind: str, name: str) -> dict[str, Any]:
        return dict(next(x for x in lab_kubeconfig[kind] if x["name"] == name)[kind[:-1]])

    ctx = pick("contexts", cluster)
    server, user = pick("clusters", ctx["cluster"]), pick("users", ctx["user"])
    for block, key in ((server, "certificate-authority"), (user, "client-certificate"), (user, "client-key")):
        if key in block:
            block[f"{key}-data"] = base64.b64encode(Path(block.pop(key)).read_bytes()).decode()
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": cluster, "cluster": server}],
            "users": [{"name": f"{cluster}-admin", "user": user}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-admin"}}],
            "current-context": cluster}


def command(name: str, cluster: str, index: int, workdir: Path, *, validator: bool = False,
            external: bool = False) -> tuple[list[str], dict[str, str]]:
    """argv and environment of istiod `name` watching `cluster` (pure: paths under `workdir`)."""
    p = ports(index)
    env = {
        "POD_NAMESPACE": "istio-system", "POD_NAME": f"istiod-lab-{name}", "REVISION": "default",
        "CLUSTER_ID": cluster, "PILOT_CERT_PROVIDER": "istiod", "ISTIOD_CUSTOM_HOST": "127.0.0.1",
        "JWT_POLICY": "first-party-jwt", "ENABLE_DEBUG_ON_HTTP": "true",
        # no injection webhook to patch: the lab has no real pods to inject
        "INJECTION_WEBHOOK_CONFIG_NAME": "",
        # any non-empty name starts the controller that patches the webhooks labelled istio.io/rev
        "VALIDATION_WEBHOOK_CONFIG_NAME": "istio-validator-istio-system",
        "USE_REMOTE_CERTS": "true", "ROOT_CA_DIR": str(workdir / "cacerts"),
    }
    if external:
        env["EXTERNAL_ISTIOD"] = "true"
    argv = [str(versions.istiod_bin()), "discovery", "--kubeconfig", str(workdir / "kubeconfig"),
            "--domain", "cluster.local", "--clusterID", cluster,
            "--httpAddr", f"127.0.0.1:{p['http']}", "--httpsAddr", f"127.0.0.1:{p['https']}",
            "--grpcAddr", f"127.0.0.1:{p['grpc']}", "--secureGRPCAddr", f"127.0.0.1:{p['secure_grpc']}",
            "--monitoringAddr", f"127.0.0.1:{p['monitoring']}",
            "--ctrlz_address", "127.0.0.1", "--ctrlz_port", str(p["ctrlz"])]
    if validator:
        argv += ["--configDir", str(workdir / "config")]
        env.update({"PILOT_ENABLE_GATEWAY_API": "false", "PILOT_ENABLE_IP_AUTOALLOCATE": "false"})
    return argv, env


def info_path(state: Path, name: str) -> Path:
    return directory(state) / f"{name}.json"


def read_info(state: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(info_path(state, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def running_pid(state: Path, name: str) -> int | None:
    """The pid of istiod `name` if it runs (checked against its program: pids get reused)."""
    return procs.running(directory(state) / f"{name}.pid", "pilot-discovery")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ready_url(index: int) -> str:
    return f"http://127.0.0.1:{ports(index)['http']}/ready"


def rss_mb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        return None
    return None


def ensure(state: Path, name: str, cluster: str, index: int, lab_kubeconfig: dict[str, Any], *,
           validator: bool = False, external: bool = False, stands_for: str = "", ca_digest: str = "",
           on_restart: Callable[[], None] | None = None) -> dict[str, Any]:
    """Start istiod `name` unless it already runs with the same command, declared version and
    CA (`ca_digest` of the cacerts the lab installed: istiod reads them at start only);
    returns its info. Does not wait for readiness (see `wait_ready`), so that several start
    side by side. `on_restart` runs before a running istiod is stopped to be started again."""
    workdir = directory(state) / name
    argv, env = command(name, cluster, index, workdir, validator=validator, external=external)
    spec = hashlib.sha256(json.dumps([argv, env, stands_for, ca_digest], sort_keys=True).encode()).hexdigest()[:16]
    info = read_info(state, name)
    pid = running_pid(state, name)
    if pid and info and info.get("spec") == spec and info.get("pid") == pid:
        return info
    if pid:
        if on_restart:
            on_restart()
        stop(state, name)
    workdir.mkdir(parents=True, exist_ok=True)
    kc = workdir / "kubeconfig"
    kc.write_text(yaml.safe_dump(inline_kubeconfig(lab_kubeconfig, cluster), sort_keys=False), encoding="utf-8")
    kc.chmod(0o600)
    # the CA is (re)loaded from the cluster's cacerts Secret at every start
    for old in (workdir / "cacerts").glob("*"):
        old.unlink()
    if validator:
        (workdir / "config").mkdir(exist_ok=True)
    log_path = directory(state) / f"{name}.log"
    with open(log_path, "ab") as log:
        log.write(f"\n==== lab: starting istiod {name} for {cluster} at {time.strftime('%FT%TZ', time.gmtime())}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), **env})
    (directory(state) / f"{name}.pid").write_text(str(proc.pid), encoding="utf-8")
    p = ports(index)
    info = {
        "name": name, "cluster": cluster, "role": VALIDATOR if validator else "primary",
        "pid": proc.pid, "version": versions.ISTIOD_VERSION, "stands_for": stands_for,
        "grpc": f"127.0.0.1:{p['grpc']}", "secure_grpc": f"127.0.0.1:{p['secure_grpc']}",
        "http": f"127.0.0.1:{p['http']}", "https": f"127.0.0.1:{p['https']}",
        "monitoring": f"127.0.0.1:{p['monitoring']}", "ctrlz": f"127.0.0.1:{p['ctrlz']}",
        "validate_url": f"https://127.0.0.1:{p['https']}/validate", "ready_url": ready_url(index),
        "log": str(log_path), "started_at": time.time(), "spec": spec,
    }
    info_path(state, name).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def wait_ready(state: Path, name: str, timeout: float = READY_TIMEOUT) -> float:
    """Wait for istiod `name`'s /ready; returns the seconds since it was started."""
    info = read_info(state, name) or {}
    deadline = time.monotonic() + timeout
    while not http_ok(f"http://{info.get('http')}/ready"):
        if running_pid(state, name) is None:
            raise SystemExit(f"istiod {name} exited{_exit_status(info.get('pid'))}; last lines of {info.get('log')}:\n"
                             + _tail(info.get("log")))
        if time.monotonic() > deadline:
            raise SystemExit(f"istiod {name} not ready after {timeout:.0f}s; last lines of {info.get('log')}:\n"
                             + _tail(info.get("log")))
        time.sleep(0.25)
    return time.time() - float(info.get("started_at", time.time()))


def _exit_status(pid: Any) -> str:
    """How a child of this process ended (' (exit status N)', ' (killed by signal S)'), else ''."""
    try:
        done, status = os.waitpid(int(pid), os.WNOHANG)
    except (ChildProcessError, TypeError, ValueError):
        return ""
    if not done:
        return " (its pid still runs under another command line)"
    if os.WIFSIGNALED(status):
        return f" (killed by signal {os.WTERMSIG(status)})"
    return f" (exit status {os.WEXITSTATUS(status)})"


def _tail(path: str | None, lines: int = 15) -> str:
    try:
        return "\n".join(Path(str(path)).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(state: Path, name: str, timeout: float = 10.0) -> None:
    pid = running_pid(state, name)
    if pid:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while running_pid(state, name) == pid and time.monotonic() < deadline:
                time.sleep(0.1)
            if running_pid(state, name) != pid:
                break
    (directory(state) / f"{name}.pid").unlink(missing_ok=True)
    info_path(state, name).unlink(missing_ok=True)


def names(state: Path) -> list[str]:
    """Every istiod the lab has (had) in this state directory."""
    return sorted(p.stem for p in directory(state).glob("*.pid"))
