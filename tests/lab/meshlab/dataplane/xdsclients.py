"""The xDS clients the data plane keeps: one `meshlab-xds` process per proxy of a current cluster.

For every sidecar pod and east-west gateway pod of a cluster whose flavour is "current"
(`xds.desired_proxies`), one long-running `meshlab-xds` holds an ADS stream to the istiod of
the cluster's control plane as that pod's proxy and rewrites its snapshot after every update:

    STATE/xds/<cluster>/<namespace>_<pod>.json    the snapshot (see xds.py)
    STATE/xds/<cluster>/<namespace>_<pod>.log     the client's log

istiod's addresses come from STATE/istiod/<cluster>.json (written by the lab's lifecycle):
{"grpc": "127.0.0.1:P", "version": ..., ...}. The client binary is built from
tests/lab/build/xds into the cache (`meshlab.build.ensure_xds_client`); `binary_path()` says
where, keyed by a hash of the Go sources and go.sum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .. import versions
from . import net
from .xds import ProxySpec, Snapshot

log = logging.getLogger("meshlab.dataplane.xds")

SOURCE_DIR = versions.LAB_DIR / "build" / "xds"
BINARY = "meshlab-xds"
RESTART_BACKOFF = 5.0
ENV_BINARY = "MESHLAB_XDS_CLIENT"  # an explicit binary (hand experiments)


def source_hash(source_dir: Path = SOURCE_DIR) -> str:
    """12 hex digits over the client's Go sources (not its tests), go.mod and go.sum."""
    h = hashlib.sha256()
    sources = [f for f in source_dir.glob("*.go") if not f.name.endswith("_test.go")]
    files = sorted([*sources, source_dir / "go.mod", source_dir / "go.sum"])
    for f in files:
        if f.exists():
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def binary_path() -> Path:
    return versions.cache_dir() / f"xds-{source_hash()}" / BINARY


def find_binary() -> Path | None:
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    p = binary_path()
    return p if p.exists() else None


def read_istiod(state: Path, cluster: str) -> dict[str, Any] | None:
    """STATE/istiod/<cluster>.json when it names a loopback grpc address, else None."""
    try:
        info = json.loads((state / "istiod" / f"{cluster}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    grpc = str((info or {}).get("grpc") or "")
    host, _, port = grpc.rpartition(":")
    ip = net.parse_ip(host)
    if ip is None or ip not in net.LOOPBACK or not port.isdigit():
        log.warning("%s: istiod grpc address %r is not on loopback: ignored", cluster, grpc)
        return None
    return info


class Proxy:
    def __init__(self, spec: ProxySpec, binary: Path, state: Path):
        self.spec = spec
        d = state / "xds" / spec.cluster
        d.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = d / f"{spec.namespace}_{spec.pod}.json"
        self.log_path = d / f"{spec.namespace}_{spec.pod}.log"
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")}
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [str(binary), "--server", spec.server, "--node", spec.node,
                 "--metadata", json.dumps(spec.metadata, sort_keys=True), "--out", str(self.snapshot_path),
                 "--parent-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
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


class XdsClients:
    """Keeps one xDS client per desired proxy; serves their snapshots (cached by mtime)."""

    def __init__(self, state: Path):
        self.state = state
        self.proxies: dict[tuple, Proxy] = {}
        self.by_pod: dict[tuple[str, str, str], Proxy] = {}
        self._cache: dict[Path, tuple[tuple[int, int], Snapshot]] = {}
        self._lock = threading.Lock()
        self.missing_binary_logged = False

    def apply(self, desired: list[ProxySpec]) -> None:
        want = {p.key: p for p in desired}
        for k in list(self.proxies):
            if k not in want:
                p = self.proxies.pop(k)
                log.info("stopping xDS client of %s %s/%s (pid %s)", p.spec.cluster, p.spec.namespace,
                         p.spec.pod, p.proc.pid)
                p.stop()
                try:
                    p.snapshot_path.unlink()
                except OSError:
                    pass
        binary = find_binary() if want else None
        if want and binary is None:
            if not self.missing_binary_logged:
                log.error("no xDS client binary (%s; build it with `tests/lab/lab build`): current clusters "
                          "cannot route", binary_path())
                self.missing_binary_logged = True
        for k, spec in want.items():
            p = self.proxies.get(k)
            if p and p.alive():
                continue
            if binary is None:
                continue
            if p:
                if time.monotonic() - p.started < RESTART_BACKOFF:
                    continue
                log.warning("xDS client of %s %s/%s exited (rc %s); restarting; see %s", spec.cluster,
                            spec.namespace, spec.pod, p.proc.returncode, p.log_path)
            try:
                self.proxies[k] = Proxy(spec, binary, self.state)
            except OSError as exc:
                log.error("cannot start the xDS client of %s %s/%s: %s", spec.cluster, spec.namespace, spec.pod, exc)
                continue
            log.info("started xDS client of %s %s/%s as %s -> istiod %s (pid %s)", spec.cluster, spec.namespace,
                     spec.pod, spec.node, spec.server, self.proxies[k].proc.pid)
        with self._lock:
            self.by_pod = {(p.spec.cluster, p.spec.namespace, p.spec.pod): p for p in self.proxies.values()}

    def proxy(self, cluster: str, namespace: str, pod: str) -> Proxy | None:
        with self._lock:
            return self.by_pod.get((cluster, namespace, pod))

    def specs(self, cluster: str) -> list[ProxySpec]:
        with self._lock:
            return sorted((p.spec for p in self.by_pod.values() if p.spec.cluster == cluster),
                          key=lambda s: (s.namespace, s.pod))

    def snapshot(self, cluster: str, namespace: str, pod: str) -> Snapshot | None:
        p = self.proxy(cluster, namespace, pod)
        if p is None:
            return None
        path = p.snapshot_path
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(path)
            if cached and cached[0] == stamp:
                return cached[1]
        try:
            snap = Snapshot.parse(path.read_bytes(), str(path))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable snapshot: %s", path, exc)
            return cached[1] if cached else None
        with self._lock:
            self._cache[path] = (stamp, snap)
        return snap

    def describe(self) -> list[dict]:
        out = []
        for p in self.proxies.values():
            snap = self.snapshot(p.spec.cluster, p.spec.namespace, p.spec.pod)
            out.append({"cluster": p.spec.cluster, "namespace": p.spec.namespace, "pod": p.spec.pod,
                        "node": p.spec.node, "server": p.spec.server, "pid": p.proc.pid, "alive": p.alive(),
                        "connected": bool(snap and snap.connected), "complete": bool(snap and snap.complete),
                        "versions": snap.versions if snap else {}})
        return sorted(out, key=lambda d: (d["cluster"], d["namespace"], d["pod"]))

    def stop_all(self) -> None:
        for p in self.proxies.values():
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in self.proxies.values():
            try:
                p.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.proc.kill()
        self.proxies.clear()
        with self._lock:
            self.by_pod = {}
