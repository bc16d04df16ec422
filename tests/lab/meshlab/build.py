"""Builds the lab's binaries from Go modules (no prebuilt downloads) into the cache.

Kubernetes: tests/lab/build/kube/go.mod requires k8s.io/kubernetes and replaces every
staging module with its published v0.X.Y. etcd: tests/lab/build/etcd is a two-line main
around go.etcd.io/etcd/server/v3/etcdmain. kwok: `go install` of its two commands.
Istio CRDs: the generated CRD file of the istio.io/api module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import versions

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def _say(msg: str) -> None:
    print(f"[lab build] {msg}", flush=True)


def _go_build(args: list[str], cwd: Path, what: str, env: dict | None = None, measure: bool = False) -> None:
    """Run a go build with -v, printing a progress line every 100 packages.

    `measure`: run it under `/usr/bin/time -v` (when there) and log the peak memory."""
    started = time.monotonic()
    log_path = versions.cache_dir() / f"build-{what}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _say(f"building {what} (first time only; log: {log_path})")
    time_path = log_path.with_suffix(".time")
    prefix = ["/usr/bin/time", "-v", "-o", str(time_path)] if measure and Path("/usr/bin/time").exists() else []
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [*prefix, "go", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, **(env or {})},
        )
        assert proc.stdout is not None
        count = 0
        for line in proc.stdout:
            log.write(line)
            count += 1
            if count % 100 == 0:
                _say(f"{what}: {count} packages compiled, {time.monotonic() - started:.0f}s")
        rc = proc.wait()
    if rc != 0:
        tail = log_path.read_text(encoding="utf-8").splitlines()[-20:]
        raise SystemExit(f"building {what} failed (rc={rc}); last lines of {log_path}:\n" + "\n".join(tail))
    peak = ""
    if prefix and time_path.exists():
        for line in time_path.read_text(encoding="utf-8").splitlines():
            if "Maximum resident set size" in line:
                peak = f"; peak memory {int(line.rsplit(':', 1)[1]) // 1024} MB (largest process, /usr/bin/time -v)"
    _say(f"{what} built in {time.monotonic() - started:.0f}s{peak}")


def ensure_kubernetes() -> None:
    missing = [c for c in KUBE_COMMANDS if not versions.kube_bin(c).exists()]
    if not missing:
        return
    out = versions.kube_bin("x").parent
    out.mkdir(parents=True, exist_ok=True)
    pkgs = [f"k8s.io/kubernetes/cmd/{c}" for c in missing]
    # What `make` in kubernetes stamps in: clients read the server version from here.
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    stamp = {"gitVersion": versions.KUBERNETES, "gitMajor": major, "gitMinor": minor,
             "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z"}
    ldflags = " ".join(f"-X k8s.io/component-base/version.{k}={v}" for k, v in stamp.items())
    _go_build(["build", "-v", "-ldflags", ldflags, "-o", str(out) + "/", *pkgs], versions.LAB_DIR / "build" / "kube",
              f"kubernetes-{versions.KUBERNETES}")


def ensure_etcd() -> None:
    if versions.etcd_bin().exists():
        return
    versions.etcd_bin().parent.mkdir(parents=True, exist_ok=True)
    _go_build(["build", "-v", "-o", str(versions.etcd_bin()), "."], versions.LAB_DIR / "build" / "etcd",
              f"etcd-{versions.ETCD}")


def ensure_kwok() -> None:
    if versions.kwok_bin("kwok").exists() and versions.kwok_bin("kwokctl").exists():
        return
    gobin = versions.kwok_bin("x").parent
    gobin.mkdir(parents=True, exist_ok=True)
    _go_build(["install", "-v", f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK}",
               f"sigs.k8s.io/kwok/cmd/kwokctl@{versions.KWOK}"],
              versions.LAB_DIR, f"kwok-{versions.KWOK}", env={"GOBIN": str(gobin), "GOFLAGS": "-mod=mod"})


def ensure_istio_crds() -> None:
    target = versions.istio_crds()
    if target.exists():
        return
    _say(f"fetching istio.io/api@{versions.ISTIO_API} from the Go module proxy for Istio's CRDs")
    out = subprocess.run(["go", "mod", "download", "-json", f"istio.io/api@{versions.ISTIO_API}"],
                         cwd=versions.LAB_DIR, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"go mod download istio.io/api failed: {out.stdout}{out.stderr}")
    module_dir = Path(json.loads(out.stdout)["Dir"])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(module_dir / "kubernetes" / "customresourcedefinitions.gen.yaml", target)


def ensure_istiod() -> None:
    """The real istiod (pilot-discovery) of istio.io/istio@ISTIOD, built once into the cache.

    `-trimpath -ldflags '-s -w'` (a small binary; the flags of the build that warmed the Go
    build cache). The Go build cache cannot share compiled k8s.io packages with the kube
    build: build/kube and build/istiod resolve different versions of their common
    dependencies (golang.org/x/sys, x/net, grpc, ...), so the k8s.io packages compile twice
    whatever the flags. `pilot-discovery version` says what was built (versions.ISTIOD_VERSION).
    """
    target = versions.istiod_bin()
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    goenv = subprocess.run(["go", "env", "GOOS", "GOARCH"], capture_output=True, text=True, check=True).stdout.split()
    stamp = {"buildVersion": versions.ISTIOD_VERSION, "buildGitRevision": versions.ISTIOD_COMMIT,
             "buildStatus": "Clean", "buildTag": versions.ISTIOD, "buildHub": "docker.io/istio",
             "buildOS": goenv[0], "buildArch": goenv[1]}
    ldflags = "-s -w " + " ".join(f"-X istio.io/istio/pkg/version.{k}={v}" for k, v in stamp.items())
    partial = target.with_name(target.name + ".partial")
    _go_build(["build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(partial),
               "istio.io/istio/pilot/cmd/pilot-discovery"], versions.LAB_DIR / "build" / "istiod",
              f"istiod-{versions.ISTIOD}", measure=True)
    partial.rename(target)


def ensure_xds_client() -> None:
    """The lab's xDS client (build/xds, `meshlab-xds`): one per proxy of a current-Istio cluster.

    Cached per hash of its Go sources and go.sum (`meshlab.dataplane.xdsclients.binary_path()`).
    """
    from .dataplane import xdsclients  # noqa: PLC0415 - the data plane owns the client

    target = xdsclients.binary_path()
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    _go_build(["build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."], xdsclients.SOURCE_DIR,
              target.parent.name)
    partial.rename(target)


def ensure_all() -> None:
    """Every binary, in two lanes side by side: the clusters' (etcd, kwok, Kubernetes) and the
    current-Istio ones (the xDS client, istiod). Each go build keeps both cores busy while it
    compiles, but not while it downloads modules or links: two lanes fill those gaps. Peak
    memory: istiod's build (~2.3 GB) plus kube's."""
    if shutil.which("go") is None:
        raise SystemExit("the lab builds its binaries with Go, and `go` is not on PATH")
    ensure_istio_crds()
    lanes = [(ensure_etcd, ensure_kwok, ensure_kubernetes), (ensure_xds_client, ensure_istiod)]
    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        futures = [pool.submit(lambda lane=lane: [step() for step in lane]) for lane in lanes]
    failures = [str(f.exception()) for f in futures if f.exception() is not None]
    if failures:
        raise SystemExit("\n".join(failures))


if __name__ == "__main__":
    ensure_all()
    sys.exit(0)
