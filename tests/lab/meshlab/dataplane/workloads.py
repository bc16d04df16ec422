"""The kubelet stand-in: one real httpbin process per Running httpbin pod."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from . import net

log = logging.getLogger("meshlab.dataplane.workloads")

LAB_DIR = Path(__file__).resolve().parents[2]  # tests/lab: where `meshlab` is importable from
RESTART_BACKOFF = 5.0


def _key(w: dict) -> tuple:
    return (w["cluster"], w["namespace"], w["pod"], w.get("uid", ""), w["ip"], int(w["port"]))


class Child:
    def __init__(self, w: dict, state_dir: Path):
        self.w = w
        logs = state_dir / "pods"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{w['cluster']}_{w['namespace']}_{w['pod']}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(LAB_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])}
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            env.pop(var, None)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meshlab.dataplane.podserver", "--ip", w["ip"], "--port",
                 str(w["port"]), "--cluster", w["cluster"], "--namespace", w["namespace"], "--pod",
                 w["pod"], "--state-dir", str(state_dir)],
                cwd=str(LAB_DIR), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)

    def listening(self) -> bool:
        try:
            net.dial(self.w["ip"], self.w["port"], timeout=0.3).close()
            return True
        except OSError:
            return False


class Workloads:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.children: dict[tuple, Child] = {}

    def apply(self, desired: list[dict]) -> None:
        want = {_key(w): w for w in desired}
        for k in list(self.children):
            if k not in want:
                c = self.children.pop(k)
                log.info("stopping httpbin of %s %s/%s (pid %s)", k[0], k[1], k[2], c.proc.pid)
                c.stop()
        for k, w in want.items():
            c = self.children.get(k)
            if c and c.alive():
                continue
            if c:
                if time.monotonic() - c.started < RESTART_BACKOFF:
                    continue
                log.warning("httpbin of %s %s/%s exited (rc %s); restarting; see %s", k[0], k[1], k[2],
                            c.proc.returncode, c.log_path)
            try:
                self.children[k] = Child(w, self.state_dir)
            except OSError as exc:
                log.error("cannot start httpbin for %s %s/%s: %s", k[0], k[1], k[2], exc)
                continue
            log.info("started httpbin of %s %s/%s on %s:%s (pod IP %s) pid %s", k[0], k[1], k[2], w["ip"],
                     w["port"], w.get("pod_ip"), self.children[k].proc.pid)

    def wait_listening(self, timeout: float) -> list[str]:
        """Wait until every child accepts connections; the ones that do not, by name."""
        deadline = time.monotonic() + timeout
        pending = dict(self.children)
        while pending and time.monotonic() < deadline:
            for k, c in list(pending.items()):
                if c.listening() or not c.alive():
                    pending.pop(k)
            if pending:
                time.sleep(0.2)
        return [f"{k[0]} {k[1]}/{k[2]}" for k in pending]

    def describe(self) -> list[dict]:
        return [{**c.w, "pid": c.proc.pid, "alive": c.alive()} for c in self.children.values()]

    def stop_all(self) -> None:
        for c in self.children.values():
            if c.proc.poll() is None:
                c.proc.terminate()
        for c in self.children.values():
            try:
                c.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                c.proc.kill()
        self.children.clear()
