"""Unit tests of the Kubernetes object view (`meshlab.dataplane.view`): endpoints, workloads."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared objects in test_dataplane

from meshlab.dataplane import view as kview  # noqa: E402
from test_dataplane import pod, source_objects, view  # noqa: E402


def test_httpbin_workloads():
    objs = source_objects()
    objs["pods"].append(pod("bar", "httpbin-pending", "198.18.2.22", phase="Pending"))
    objs["pods"].append(pod("bar", "go-httpbin", "198.18.2.23", image="mccutchen/go-httpbin:v2", ports=(8080,)))
    ws = {w["pod"]: w for w in kview.httpbin_workloads(view(2, objs))}
    assert sorted(ws) == ["go-httpbin", "httpbin-v1", "httpbin-v2"]
    assert (ws["httpbin-v1"]["ip"], ws["httpbin-v1"]["port"]) == ("127.18.2.20", 80)
    assert ws["go-httpbin"]["port"] == 8080


def test_service_endpoints_named_target_port():
    objs = source_objects()
    objs["services"][-1]["spec"]["ports"][0]["targetPort"] = "http-web"
    objs["endpointslices"][-1]["ports"] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = kview.service_endpoints(view(2, objs), "bar", "httpbin", 8000)
    assert {e.port for e in eps} == {8080}
