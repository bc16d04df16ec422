"""Unit tests of the data plane's Istio version and DNS gates (`meshlab.dataplane.gates`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared objects in test_dataplane

from meshlab.dataplane import gates  # noqa: E402
from meshlab.dataplane.view import ClusterView, RouteError  # noqa: E402
from test_dataplane import COREFILE, consumer_objects, seed_se, source_objects, view  # noqa: E402


@pytest.mark.parametrize("text, version", [
    ("1.7.8", (1, 7, 8)), ("1.9", (1, 9, 0)), ("v1.10.0-beta.1", (1, 10, 0)), ("1.7.8-distroless", (1, 7, 8)),
    ("latest", None), ("", None),
])
def test_parse_version(text, version):
    assert gates.parse_version(text) == version


@pytest.mark.parametrize("image, version", [
    ("docker.io/istio/pilot:1.7.8", (1, 7, 8)), ("localhost:5000/istio/pilot:1.20.1", (1, 20, 1)),
    ("istio/pilot", None), ("istio/pilot@sha256:abc", None),
])
def test_image_version(image, version):
    assert gates.image_version(image) == version


@pytest.mark.parametrize("version, flag, ok", [
    ((1, 7, 8), False, True), ((1, 8, 5), False, True), ((1, 8, 6), False, False), ((1, 8, 6), True, True),
    ((1, 9, 4), False, True), ((1, 9, 5), False, False), ((1, 9, 5), True, True), ((1, 10, 0), False, False),
    ((1, 18, 7), True, True), ((1, 19, 0), True, False), ((1, 24, 2), True, False), (None, True, False),
])
def test_legacy_passthrough_gate(version, flag, ok):
    env = {"PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH": "true"} if flag else {}
    assert gates.legacy_passthrough_allowed(version, env)[0] is ok


@pytest.mark.parametrize("version, vip, ok", [
    ((1, 2, 9), "127.255.0.2", True), ((1, 3, 0), "127.255.0.2", False), ((1, 7, 8), "127.255.0.2", False),
    ((1, 7, 8), "240.0.0.2", True), ((1, 24, 0), "240.0.0.2", True), ((1, 0, 0), "240.0.0.2", True),
    (None, "127.255.0.2", False),
])
def test_loopback_vip_gate(version, vip, ok):
    assert gates.loopback_vip_allowed(version, vip)[0] is ok


def test_istio_version_from_istiod_image():
    assert gates.istio_version(view(1, consumer_objects(version="1.9.5"))) == (1, 9, 5)
    objs = consumer_objects()
    objs["deployments"] = [d for d in objs["deployments"] if d["metadata"]["name"] != "istiod"]
    assert gates.istio_version(view(1, objs)) is None


@pytest.mark.parametrize("corefile, has", [
    (COREFILE, True),
    (".:53 {\n forward . /etc/resolv.conf\n}\n", False),
    ("global {\n forward . 1.2.3.4\n}", True),
    ("global.:53 {\n forward . 1.2.3.4\n}", True),
    ("dns://global:53 {\n}", True),
    ("global:5353 {\n}", False),
    ("# global:53 {\n.:53 {\n}", False),
    (".:53 {\n  hosts {\n    1.2.3.4 global\n  }\n}", False),
    ("cluster.local:53 global:53 {\n}", True),
])
def test_corefile_global_block(corefile, has):
    assert gates.corefile_has_global(corefile) is has


@pytest.mark.parametrize("mesh, on", [
    ('defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n', True),
    ("defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: true\n", True),
    ('defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "false"\n', False),
    ("defaultConfig:\n  proxyMetadata: {}\n", False),
    ("", False), ("- not a mapping", False), ("{{{", False),
])
def test_mesh_dns_capture(mesh, on):
    assert gates.mesh_dns_capture(mesh) is on


def test_global_name_resolves_to_the_first_se_address():
    v = view(1, consumer_objects())
    assert gates.resolve_name(v, "httpbin.bar.global", {})[0] == "240.0.0.2"


def test_global_name_does_not_resolve_without_global_dns():
    objs = consumer_objects()
    objs["configmaps"]["kube-system/coredns"]["data"]["Corefile"] = ".:53 {\n}\n"
    with pytest.raises(RouteError) as e:
        gates.resolve_name(view(1, objs), "httpbin.bar.global", {})
    assert e.value.kind == "dns" and e.value.status is None
    assert "Could not resolve host" in e.value.message


def test_global_name_resolves_with_dns_capture_only():
    objs = consumer_objects()
    objs["configmaps"]["kube-system/coredns"] = None
    objs["configmaps"]["istio-system/istio"]["data"]["mesh"] = (
        'defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n')
    assert gates.resolve_name(view(1, objs), "httpbin.bar.global", {})[0] == "240.0.0.2"


def test_global_name_without_se_address_does_not_resolve():
    objs = consumer_objects(se=seed_se())
    objs["serviceentries"][0]["spec"]["addresses"] = []
    with pytest.raises(RouteError) as e:
        gates.resolve_name(view(1, objs), "httpbin.bar.global", {})
    assert e.value.kind == "dns"


def test_other_names():
    v = view(2, source_objects())
    assert gates.resolve_name(v, "httpbin.bar.svc.cluster.local", {})[0] == "198.19.2.20"
    assert gates.resolve_name(v, "httpbin.bar", {})[0] == "198.19.2.20"
    assert gates.resolve_name(v, "240.0.0.9", {})[0] == "240.0.0.9"
    assert gates.resolve_name(v, "gw.cluster1.lab.meshlink.test", {"gw.cluster1.lab.meshlink.test": "127.100.1.1"})[0] \
        == "127.100.1.1"
    with pytest.raises(RouteError):
        gates.resolve_name(v, "example.com", {})


# ---------------------------------------------------------------- whose istiod serves the sidecars

def _current(i: int, role: str = "primary", plane: str | None = None) -> dict:
    return {"name": f"cluster{i}", "index": i, "flavour": "current", "istio_version": "1.26.0",
            "istio_role": role, "control_plane": plane if plane is not None else f"cluster{i}"}


def test_seed_sidecar_needs_the_clusters_own_istiod_deployment():
    assert gates.sidecar_control_plane(view(1, consumer_objects())) == (
        "cluster1", "istiod Deployment istio-system/istiod")
    objs = consumer_objects()
    objs["deployments"] = [d for d in objs["deployments"] if d["metadata"]["name"] != "istiod"]
    plane, why = gates.sidecar_control_plane(view(1, objs))
    assert plane is None and why == "no istiod Deployment in istio-system of cluster1: no sidecar, no mesh DNS"


def test_current_sidecar_is_decided_by_the_control_plane_not_a_deployment():
    no_istiod = {"pods": [], "deployments": []}
    assert gates.sidecar_control_plane(ClusterView(_current(1), no_istiod))[0] == "cluster1"
    plane, why = gates.sidecar_control_plane(ClusterView(_current(2, "remote", "cluster1"), no_istiod))
    assert plane == "cluster1" and "remote" in why
    plane, why = gates.sidecar_control_plane(ClusterView(_current(2, "remote", ""), no_istiod))
    assert plane is None and "names no control plane" in why
    # an old clusters.json without control_plane: a primary is its own
    legacy = {k: v for k, v in _current(3).items() if k != "control_plane"}
    assert gates.sidecar_control_plane(ClusterView(legacy, no_istiod))[0] == "cluster3"


def test_istio_version_of_a_remote_is_the_declared_one():
    assert gates.istio_version(ClusterView(_current(2, "remote", "cluster1"), {})) == (1, 26, 0)
    assert gates.istio_version(ClusterView({"name": "cluster2", "istio_version": "1.7.8"}, {})) is None  # seed
