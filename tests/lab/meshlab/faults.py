"""Faults for the failure drills: stop and restart one cluster's kube-apiserver.

`lab stop-apiserver NAME` kills the kube-apiserver process kwokctl started for cluster NAME
(SIGKILL: the server is lost, as in a crash or a cut network; clients see refused connections).
etcd and kwok keep running. kube-controller-manager and kube-scheduler run with leader
election: when they cannot renew their lease for its renew deadline (10 s) they exit
("leaderelection lost"), as they do in a real cluster, where the kubelet restarts them.

`lab start-apiserver NAME` starts kube-apiserver again exactly as kwokctl did: the binary,
arguments, environment and working directory of the component in
`$STATE/kwok/clusters/NAME/kwok.yaml`, detached (own session), appending to the same log
file (`logs/kube-apiserver.log`), its pid in the same pid file (`pids/kube-apiserver.pid`),
and waits until `/readyz` answers ok. Then it plays the kubelet for the other components:
once the outage is older than the lease renew deadline (so that whatever was going to exit has
exited), every component of the cluster that is not running is started the same way. Both
commands are idempotent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from . import procs, versions

APISERVER = "kube-apiserver"
# kube-controller-manager / kube-scheduler leader election: renew deadline 10 s, retry 2 s.
LEASE_GRACE_SECONDS = 14.0


def _cluster_dir(name: str) -> Path:
    path = versions.state_dir() / "kwok" / "clusters" / name
    if not (path / "kwok.yaml").exists():
        raise SystemExit(f"no lab cluster {name!r} in {versions.state_dir()} (no {path / 'kwok.yaml'})")
    return path


def components(cdir: Path) -> list[dict[str, Any]]:
    """The components kwokctl recorded (name, binary, args, workDir, envs), in its start order."""
    found = []
    for doc in yaml.safe_load_all((cdir / "kwok.yaml").read_text(encoding="utf-8")):
        found.extend((doc or {}).get("components") or [])
    return found


def component(cdir: Path, name: str) -> dict[str, Any]:
    for comp in components(cdir):
        if comp.get("name") == name:
            return comp
    raise SystemExit(f"{cdir / 'kwok.yaml'} has no {name} component")


def _pid_file(cdir: Path, name: str) -> Path:
    return cdir / "pids" / f"{name}.pid"


def _faults_file(cdir: Path) -> Path:
    return cdir / "meshlab-faults.json"


def running_pid(cdir: Path, comp: dict[str, Any]) -> int | None:
    """The pid of the component if it runs (checked against its program: pids get reused)."""
    return procs.running(_pid_file(cdir, comp["name"]), str(comp.get("binary") or comp["name"]))


def _start(cdir: Path, comp: dict[str, Any]) -> int:
    """Start one component as kwokctl does (binary runtime): detached, logging to logs/<name>.log."""
    name = comp["name"]
    binary = comp.get("binary") or str(cdir / "bin" / name)
    env = dict(os.environ)
    for item in comp.get("envs") or []:
        env[str(item.get("name"))] = str(item.get("value", ""))
    log_path = cdir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([binary, *[str(a) for a in comp.get("args") or []]], cwd=comp.get("workDir") or cdir,
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _pid_file(cdir, name).write_text(str(proc.pid), encoding="utf-8")
    print(f"[lab] {cdir.name}: {name} started (pid {proc.pid}), log {log_path}", flush=True)
    return proc.pid


def _readyz(name: str, timeout: float) -> tuple[bool, str]:
    cmd = [str(versions.kube_bin("kubectl")), "--kubeconfig", str(versions.state_dir() / "kubeconfig"),
           "--context", name, "--request-timeout", "3s", "get", "--raw", "/readyz"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    return proc.returncode == 0 and "ok" in proc.stdout, (proc.stdout + proc.stderr).strip()


def stop_apiserver(name: str, timeout: float = 30) -> int | None:
    """Kill cluster NAME's kube-apiserver; returns the pid killed (None when it was not running)."""
    cdir = _cluster_dir(name)
    comp = component(cdir, APISERVER)
    pid = running_pid(cdir, comp)
    if pid is None:
        print(f"[lab] {name}: {APISERVER} is not running")
        return None
    os.kill(pid, signal.SIGKILL)
    stopped_at = time.time()
    _faults_file(cdir).write_text(json.dumps({"apiserver_stopped_at": stopped_at}), encoding="utf-8")
    deadline = time.monotonic() + timeout
    while running_pid(cdir, comp) == pid:
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: {APISERVER} pid {pid} survived SIGKILL for {timeout}s")
        time.sleep(0.05)
    print(f"[lab] {name}: {APISERVER} (pid {pid}) stopped")
    return pid


def start_apiserver(name: str, timeout: float = 120) -> int:
    """Start cluster NAME's kube-apiserver as kwokctl did, wait for /readyz, then restart the
    components that exited during the outage; returns the apiserver's pid."""
    cdir = _cluster_dir(name)
    comp = component(cdir, APISERVER)
    pid = running_pid(cdir, comp) or _start(cdir, comp)
    deadline = time.monotonic() + timeout
    while True:
        ok, last = _readyz(name, 10)
        if ok:
            break
        if running_pid(cdir, comp) is None:
            raise SystemExit(f"{name}: {APISERVER} exited; see {cdir / 'logs' / (APISERVER + '.log')}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: {APISERVER} not ready after {timeout}s: {last}")
        time.sleep(0.5)
    print(f"[lab] {name}: {APISERVER} ready")
    try:
        stopped_at = float(json.loads(_faults_file(cdir).read_text(encoding="utf-8"))["apiserver_stopped_at"])
    except (OSError, ValueError, KeyError):
        stopped_at = 0.0
    wait = stopped_at + LEASE_GRACE_SECONDS - time.time()
    if wait > 0:
        time.sleep(wait)  # a component whose lease ran out exits by now
    restarted = [other for other in components(cdir)
                 if other.get("name") != APISERVER and running_pid(cdir, other) is None]
    for other in restarted:
        _start(cdir, other)
    if restarted:
        time.sleep(2)  # a component that cannot start (e.g. its port was taken meanwhile) exits at once
        dead = [c["name"] for c in restarted if running_pid(cdir, c) is None]
        if dead:
            raise SystemExit(f"{name}: {', '.join(dead)} exited right after the restart; see "
                             f"{', '.join(str(cdir / 'logs' / (d + '.log')) for d in dead)}")
    _faults_file(cdir).unlink(missing_ok=True)
    return pid
