"""Pinned versions of everything the lab builds, and where the builds are cached.

Binaries are cached outside the repository, keyed by version, so that a second
`lab up` (and a second `make test`) reuses them instead of building again.
"""

from __future__ import annotations

import os
from pathlib import Path

KUBERNETES = "v1.36.1"
ETCD = "v3.6.8"
KWOK = "v0.8.0"
# Istio's CRDs (with their OpenAPI schemas) come from this istio.io/api module.
ISTIO_API = "v1.24.2"
# The real istiod (pilot-discovery) of "current Istio" lab clusters: a master commit of
# istio.io/istio (the module proxy serves only commit pseudo-versions of it), pinned in
# build/istiod/go.mod. Its `version` says what was built: the release line it precedes
# plus the commit.
ISTIOD = "v0.0.0-20260827124520-eed52ebb66ad"
ISTIOD_COMMIT = ISTIOD.rsplit("-", 1)[1]
ISTIOD_VERSION = f"1.31-dev+{ISTIOD_COMMIT}"

# The Istio version a lab cluster stands for unless LAB_ISTIO_VERSION says otherwise:
# the last line of releases where `.global` works without the legacy flag.
DEFAULT_ISTIO_VERSION = "1.7.8"

LAB_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = LAB_DIR.parent.parent


def cache_dir() -> Path:
    return Path(os.environ.get("MESHLINK_LAB_CACHE", Path.home() / ".cache" / "meshlink-lab"))


def state_dir() -> Path:
    return Path(os.environ.get("LAB_STATE_DIR", LAB_DIR / "state")).resolve()


def kube_bin(name: str) -> Path:
    return cache_dir() / f"kube-{KUBERNETES}" / name


def etcd_bin() -> Path:
    return cache_dir() / f"etcd-{ETCD}" / "etcd"


def kwok_bin(name: str) -> Path:
    return cache_dir() / f"kwok-{KWOK}" / name


def istio_crds() -> Path:
    return cache_dir() / f"istio-api-{ISTIO_API}" / "customresourcedefinitions.gen.yaml"


def istiod_bin() -> Path:
    return cache_dir() / f"istiod-{ISTIOD}" / "pilot-discovery"
