"""Unit tests of the emulated sidecar injector (`meshlab.dataplane.injector`) and of how the data
plane process uses it and the control-plane gate (`DataPlane._inject`, `DataPlane._xds_proxies`),
with fake API clients: no cluster, no sockets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package

from meshlab.dataplane import injector, kube  # noqa: E402
from meshlab.dataplane.main import DataPlane  # noqa: E402
from meshlab.dataplane.view import ClusterView  # noqa: E402

INJECTED = {"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "httpbin",
            "service.istio.io/canonical-revision": "v1"}


def ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def pod(namespace: str, name: str, labels: dict | None = None, phase: str = "Running", annotations=None,
        owner: str | None = "httpbin-v1-5c5d67cc77", template_hash: str | None = "5c5d67cc77", **extra) -> dict:
    labels = dict(labels or {})
    if template_hash:
        labels["pod-template-hash"] = template_hash
    m: dict = {"namespace": namespace, "name": name, "labels": labels}
    if owner:
        m["generateName"] = owner + "-"
        m["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "controller": True}]
    if annotations:
        m["annotations"] = annotations
    m.update(extra)
    return {"metadata": m, "spec": {"containers": [{"name": "main", "image": "kong/httpbin:0.1.0"}]},
            "status": {"phase": phase, "podIP": "198.18.1.5"}}


@pytest.mark.parametrize("labels, injected", [
    ({"istio-injection": "enabled"}, True),
    ({"istio-injection": "disabled"}, False),
    ({"istio.io/rev": "default"}, True),
    ({"istio.io/rev": "canary"}, False),  # no istiod of that revision in the lab
    ({"istio-injection": "disabled", "istio.io/rev": "default"}, False),  # the legacy label wins
    ({"istio-injection": "enabled", "istio.io/rev": "canary"}, True),
    ({}, False),
])
def test_namespace_selectors(labels, injected):
    assert injector.namespace_injected(ns("bar", **labels)) is injected


def test_istio_ignores_the_kubernetes_system_namespaces():
    assert not injector.namespace_injected(ns("kube-system", **{"istio-injection": "enabled"}))
    assert not injector.namespace_injected(None)


@pytest.mark.parametrize("labels, name, revision", [
    ({"app": "httpbin", "version": "v1"}, "httpbin", "v1"),
    ({"app": "httpbin"}, "httpbin", "latest"),
    ({"app.kubernetes.io/name": "web", "app": "httpbin", "app.kubernetes.io/version": "2.0", "version": "v1"},
     "web", "2.0"),
    ({"service.istio.io/canonical-name": "mine", "app": "httpbin",
      "service.istio.io/canonical-revision": "r7", "version": "v1"}, "mine", "r7"),
    ({}, "httpbin-v1", "latest"),  # the Deployment's name (ReplicaSet minus the pod-template-hash)
    ({"app": "-_x" + "y" * 70}, "x" + "y" * 60, "latest"),  # trunc 63 | trimAll "-_."
])
def test_injected_labels_follow_the_injection_template(labels, name, revision):
    got = injector.injected_labels(pod("bar", "httpbin-v1-5c5d67cc77-abcde", labels))
    assert got == {"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": name,
                   "service.istio.io/canonical-revision": revision}


def test_workload_name_without_a_deployment():
    assert injector.workload_name(pod("bar", "solo", owner=None, template_hash=None)) == "solo"
    job = pod("bar", "job-x-abcde", owner="job-x", template_hash=None)
    job["metadata"]["ownerReferences"][0]["kind"] = "Job"
    assert injector.workload_name(job) == "job-x"


def test_a_tls_mode_the_pod_has_is_kept():
    got = injector.injected_labels(pod("bar", "p", {"security.istio.io/tlsMode": "disabled", "app": "a"}))
    assert got["security.istio.io/tlsMode"] == "disabled"


def test_patches_only_running_pods_of_enabled_namespaces_and_only_missing_labels():
    namespaces = [ns("bar", **{"istio-injection": "enabled"}), ns("foo"), ns("baz", **{"istio.io/rev": "default"}),
                  ns("kube-system", **{"istio-injection": "enabled"})]
    pods = [
        pod("bar", "httpbin-v1-5c5d67cc77-aaaaa", {"app": "httpbin", "version": "v1"}),
        pod("bar", "pending-1", {"app": "p"}, phase="Pending"),
        pod("bar", "leaving-1", {"app": "l"}, deletionTimestamp="2026-12-03T00:00:00Z"),
        pod("bar", "opted-out-1", {"app": "o", "sidecar.istio.io/inject": "false"}),
        pod("bar", "opted-out-2", {"app": "o"}, annotations={"sidecar.istio.io/inject": "false"}),
        pod("bar", "label-wins-1", {"app": "w", "sidecar.istio.io/inject": "true"},
            annotations={"sidecar.istio.io/inject": "false"}),
        pod("bar", "done-1", {"app": "httpbin", **INJECTED}),
        pod("bar", "partial-1", {"app": "httpbin", "security.istio.io/tlsMode": "istio"}),
        pod("foo", "sleep-1", {"app": "sleep"}),  # namespace without the label: never touched
        pod("baz", "echo-1", {"app": "echo"}),
        pod("kube-system", "coredns-1", {"app": "coredns"}),
        pod("gone", "orphan-1", {"app": "x"}),  # namespace not listed
    ]
    host = pod("bar", "host-1", {"app": "h"})
    host["spec"]["hostNetwork"] = True
    patches = {(n, p): labels for n, p, labels in injector.label_patches(namespaces, pods + [host])}
    assert sorted(patches) == [("bar", "httpbin-v1-5c5d67cc77-aaaaa"), ("bar", "label-wins-1"),
                               ("bar", "partial-1"), ("baz", "echo-1")]
    assert patches[("bar", "httpbin-v1-5c5d67cc77-aaaaa")] == INJECTED
    assert patches[("bar", "partial-1")] == {"service.istio.io/canonical-name": "httpbin",
                                             "service.istio.io/canonical-revision": "latest"}
    assert patches[("baz", "echo-1")]["service.istio.io/canonical-name"] == "echo"


def test_a_namespace_that_lost_its_label_leaves_its_pods_alone():
    injected = pod("bar", "httpbin-1", {"app": "httpbin", **INJECTED})
    fresh = pod("bar", "httpbin-2", {"app": "httpbin"})
    assert injector.label_patches([ns("bar")], [injected, fresh]) == []


# ---------------------------------------------------------------- the data plane's use of it


class FakeClient:
    def __init__(self, fail: set[str] = frozenset()):
        self.calls: list[tuple[str, str, dict, str]] = []
        self.fail = fail

    def patch_pod_labels(self, namespace, name, labels, field_manager):
        self.calls.append((namespace, name, labels, field_manager))
        if name in self.fail:
            raise kube.ApiError(f"PATCH pods/{name}: HTTP 404 not found", 404)
        return {"metadata": {"namespace": namespace, "name": name, "labels": {"app": "httpbin", **labels}},
                "status": {"phase": "Running", "podIP": "198.18.1.5"}}


def _bare_dataplane(tmp_path: Path, clusters: list[dict]) -> DataPlane:
    (tmp_path / "clusters.json").write_text(json.dumps({"clusters": clusters}), encoding="utf-8")
    return DataPlane(tmp_path)


def _current(i: int, role: str = "primary", plane: str | None = None) -> dict:
    return {"name": f"cluster{i}", "index": i, "context": f"cluster{i}", "flavour": "current",
            "istio_version": "1.26.0", "istio_role": role, "control_plane": plane or f"cluster{i}",
            "network": f"network{i}", "mesh_id": "mesh1", "sidecar_proxy": f"127.60.{i}.1:15001"}


def test_inject_patches_with_its_field_manager_and_the_view_sees_the_labels(tmp_path):
    dp = _bare_dataplane(tmp_path, [_current(1)])
    objects = {"namespaces": [ns("bar", **{"istio-injection": "enabled"})],
               "pods": [pod("bar", "httpbin-v1-5c5d67cc77-aaaaa", {"app": "httpbin", "version": "v1"}),
                        pod("bar", "gone-1", {"app": "g"})]}
    client = FakeClient(fail={"gone-1"})
    dp._inject(client, dp.clusters[0], objects)
    assert [(c[0], c[1], c[3]) for c in client.calls] == [("bar", "gone-1", "meshlab-injector"),
                                                          ("bar", "httpbin-v1-5c5d67cc77-aaaaa", "meshlab-injector")]
    assert client.calls[1][2] == INJECTED
    labels = {p["metadata"]["name"]: p["metadata"]["labels"] for p in objects["pods"]}
    assert labels["httpbin-v1-5c5d67cc77-aaaaa"]["security.istio.io/tlsMode"] == "istio"
    assert "security.istio.io/tlsMode" not in labels["gone-1"]  # refused: left as read, tried again next poll
    assert dp._inject_errors == {("cluster1", "bar", "gone-1"): "PATCH pods/gone-1: HTTP 404 not found"}


def test_patch_pod_labels_is_a_merge_patch_with_the_field_manager():
    sent = {}

    class Recorder(kube.ClusterClient):
        def request(self, method, path, body=None, content_type=None):
            sent.update(method=method, path=path, body=body, content_type=content_type)
            return 200, {"metadata": {"name": "p"}}

    Recorder("kc", "ctx").patch_pod_labels("bar", "p", {"a": "b"}, "meshlab-injector")
    assert sent == {"method": "PATCH", "path": "/api/v1/namespaces/bar/pods/p?fieldManager=meshlab-injector",
                    "body": {"metadata": {"labels": {"a": "b"}}}, "content_type": "application/merge-patch+json"}


def test_a_remotes_proxies_go_to_its_primarys_istiod(tmp_path):
    clusters = [_current(1), _current(2, "remote", "cluster1")]
    dp = _bare_dataplane(tmp_path, clusters)
    (tmp_path / "istiod").mkdir()
    (tmp_path / "istiod" / "cluster1.json").write_text(json.dumps(
        {"grpc": "127.0.0.1:16012", "version": "1.31-dev+eed52ebb66ad"}), encoding="utf-8")
    sleep = pod("foo", "sleep-1", {"app": "sleep"}, owner=None, template_hash=None)
    dp.views = {"cluster1": ClusterView(clusters[0], {"pods": []}),
                "cluster2": ClusterView(clusters[1], {"pods": [sleep], "deployments": []})}  # no istiod of its own
    specs = dp._xds_proxies()
    assert [(s.cluster, s.pod, s.server, s.metadata["CLUSTER_ID"]) for s in specs] == [
        ("cluster2", "sleep-1", "127.0.0.1:16012", "cluster2")]
    dp.views["cluster2"] = ClusterView({**clusters[1], "control_plane": ""}, {"pods": [sleep]})
    assert dp._xds_proxies() == []  # a remote that names no control plane has no sidecars
