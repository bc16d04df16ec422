"""Every section of the seed, end to end, through ansible-playbook against the lab.

The tests run in file order and share the lab: setup, reads, variants, preflight, teardown.
"""

from __future__ import annotations

import copy
import json
import re
import uuid

import pytest

from conftest import MADE_BY_RUNS, MANAGED, SEED_SERVICE, STORE, hops, kapply, kget, kubectl, lab

pytestmark = pytest.mark.usefixtures("mesh")


def seed(**changes):
    service = copy.deepcopy(SEED_SERVICE)
    service.update(changes)
    return service


def gateway_lb(context: str) -> dict:
    svc = kget(context, "service", "istio-ingressgateway", "-n", "istio-system")
    return svc["status"].get("loadBalancer", {})


def assert_path(request_id: str, *expected: str) -> list[dict]:
    """The recorded hops of one request, asserted to pass these hop kinds in this order."""
    path = hops(request_id)
    kinds = [h["hop"] for h in path]
    it = iter(kinds)
    assert all(any(k == e for k in it) for e in expected), f"path {kinds} does not pass {expected}: {path}"
    assert not any(h.get("error") for h in path), path
    return path


# ---------------------------------------------------------------- seed sections 1-5

def test_setup_deploys_sample_apps_and_labels_namespaces(mesh):
    run = mesh.play("setup", [seed()])
    assert run.rc == 0, run.report()
    for context, ns, app in (("cluster1", "foo", "sleep"), ("cluster2", "bar", "httpbin")):
        namespace = kget(context, "namespace", ns)
        assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
        assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshlink"
        deploys = kget(context, "deployment", "-n", ns, "-l", f"app={app}")["items"]
        assert deploys, f"no {app} Deployment in {ns}@{context}"
        for d in deploys:
            assert d["status"].get("readyReplicas") == d["spec"]["replicas"], d["status"]
        pods = kget(context, "pod", "-n", ns, "-l", f"app={app}")["items"]
        assert pods and all(p["status"]["phase"] == "Running" for p in pods)


def test_service_entry_matches_the_seed_field_by_field(mesh):
    se = kget("cluster1", "serviceentries.networking.istio.io", "httpbin-bar", "-n", "foo")
    assert se is not None, "ServiceEntry httpbin-bar missing in foo@cluster1"
    lb = gateway_lb("cluster2")["ingress"][0]
    vip = se["spec"]["addresses"][0]
    assert vip.startswith("240.0."), "default pool on Istio 1.7 is 240.0.0.0/16"
    assert se["spec"] == {
        "hosts": ["httpbin.bar.global"],
        "location": "MESH_INTERNAL",
        "ports": [{"name": "http1", "number": 8000, "protocol": "http"}],
        "resolution": "DNS",
        "addresses": [vip],
        "endpoints": [{"address": lb["ip"], "ports": {"http1": 15443}}],
    }
    # served versions on a cluster standing for 1.7: v1alpha3 and v1beta1; newest is used
    assert se["apiVersion"] in ("networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
    labels = se["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "meshlink"
    assert labels["meshlink.io/mesh"] == "default"
    assert labels["multicluster.meshlink.io/service"] == "httpbin.bar"
    store = kget("cluster1", "configmap", STORE, "-n", "istio-system")
    assert store["data"]["httpbin.bar.global"] == vip


def test_verify_reaches_real_httpbin_through_the_gateway(mesh):
    run = mesh.play("verify", [seed()])
    assert run.rc == 0, run.report()
    assert re.search(r"cluster1 → httpbin\.bar\.global: 200\b", run.out), run.report()
    rid = f"t-{uuid.uuid4().hex[:10]}"
    proc = mesh.exec_curl("cluster1", "foo", "http://httpbin.bar.global:8000/ip", rid)
    assert proc.returncode == 0, proc.stderr
    assert "origin" in json.loads(proc.stdout)
    path = assert_path(rid, "sidecar", "ingress-gateway", "pod")
    assert path[0]["cluster"] == "cluster1" and path[-1]["cluster"] == "cluster2"
    assert path[-1]["pod"].startswith("httpbin")


def test_second_setup_run_changes_nothing(mesh):
    run = mesh.play("setup", [seed()])
    assert run.rc == 0, run.report()
    assert run.changed() == 0, run.report()


def test_shipped_modules_see_and_do_what_the_in_process_run_does(mesh):
    """meshlink_in_process: false ships the per-cluster modules as ordinary modules (the path of
    any connection but local): the same inspection, the same plan of changes for a new service
    in check mode, nothing to change on a converged mesh."""
    in_process = mesh.play("setup", [seed()], "-v")
    shipped = mesh.play("setup", [seed()], "-v", meshlink_in_process=False)
    assert in_process.rc == 0 and shipped.rc == 0, shipped.report()
    assert shipped.changed() == 0, shipped.report()

    def reports(run):
        # sorted: the hosts' results print in the order their workers finish
        return sorted(line for line in run.out.splitlines() if re.search(r"\b(PASS|WARN|FAIL)\b", line))
    assert reports(shipped) == reports(in_process) and reports(shipped), shipped.report()
    extra = seed(name="httpbin3")
    predicted = [mesh.play("setup", [seed(), extra], "--check", "--diff", meshlink_in_process=flag)
                 for flag in (True, False)]
    assert all(r.rc == 0 and r.changed() > 0 for r in predicted), predicted[1].report()
    creates = [sorted({" ".join(line.split()) for line in r.out.splitlines()
                       if "httpbin3" in line and ("would_create" in line or "would be allocated" in line)})
               for r in predicted]
    assert creates[0] == creates[1] and any("ServiceEntry" in line for line in creates[0]), creates
    assert kget("cluster1", "serviceentries.networking.istio.io", "httpbin3-bar", "-n", "istio-system") is None


def test_check_mode_predicts_an_added_service_and_writes_nothing(mesh):
    assert mesh.play("setup", [seed()]).rc == 0
    extra = seed(name="httpbin2")
    before = kget("cluster1", "serviceentries.networking.istio.io", "-A")["items"]
    vips_before = kget("cluster1", "configmap", STORE, "-n", "istio-system")["data"]
    run = mesh.play("setup", [seed(), extra], "--check", "--diff")
    assert run.rc == 0, run.report()
    assert run.changed() > 0, run.report()
    assert "httpbin2.bar.global" in run.out, "check mode must report the VIP it would take"
    assert "httpbin2-bar" in run.out, "check mode must report the ServiceEntry it would create"
    after = kget("cluster1", "serviceentries.networking.istio.io", "-A")["items"]
    assert [s["metadata"]["name"] for s in after] == [s["metadata"]["name"] for s in before]
    assert kget("cluster1", "configmap", STORE, "-n", "istio-system")["data"] == vips_before
    assert kget("cluster2", "namespace", "bar") is not None


# ---------------------------------------------------------------- seed section 6: egress

def test_egress_mode_goes_through_the_local_egress_gateway(mesh):
    run = mesh.play("setup", [seed(mode="egress_gateway")])
    assert run.rc == 0, run.report()
    se = kget("cluster1", "serviceentries.networking.istio.io", "httpbin-bar", "-n", "foo")
    eps = se["spec"]["endpoints"]
    assert eps[0]["network"] == "external" and eps[0]["ports"] == {"http1": 15443}
    assert eps[1] == {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http1": 15443}}
    rid = f"t-{uuid.uuid4().hex[:10]}"
    proc = mesh.exec_curl("cluster1", "foo", "http://httpbin.bar.global:8000/ip", rid)
    assert proc.returncode == 0 and "origin" in proc.stdout, proc.stderr
    path = assert_path(rid, "sidecar", "egress-gateway", "ingress-gateway", "pod")
    assert [h["cluster"] for h in path if h["hop"] == "egress-gateway"] == ["cluster1"]


# ---------------------------------------------------------------- seed section 7: versions

def versioned(route: str) -> dict:
    return seed(subsets=[
        {"name": "v1", "endpoint_labels": {"version": "v1"}, "pod_labels": {"version": "v1"}},
        {"name": "v2", "endpoint_labels": {"version": "v2"}, "pod_labels": {"version": "v2"}},
    ], route_subset=route)


@pytest.mark.parametrize("route", ["v1", "v2", "v1"])
def test_virtual_service_subset_selects_the_answering_version(mesh, route):
    run = mesh.play("setup", [versioned(route)])
    assert run.rc == 0, run.report()
    local_dr = kget("cluster2", "destinationrules.networking.istio.io", "-n", "bar", "-l", MANAGED)["items"]
    assert local_dr and local_dr[0]["spec"]["host"] == "httpbin.bar.svc.cluster.local"
    assert {s["name"] for s in local_dr[0]["spec"]["subsets"]} == {"v1", "v2"}
    answered = set()
    for _ in range(4):
        rid = f"t-{uuid.uuid4().hex[:10]}"
        proc = mesh.exec_curl("cluster1", "foo", "http://httpbin.bar.global:8000/ip", rid)
        assert proc.returncode == 0, proc.stderr
        path = assert_path(rid, "sidecar", "ingress-gateway", "pod")
        assert f"_.{route}_." in (path[1].get("sni") or ""), path
        pod = kget("cluster2", "pod", path[-1]["pod"], "-n", "bar")
        answered.add(pod["metadata"]["labels"]["version"])
    assert answered == {route}


# ---------------------------------------------------------------- gateway address kinds

@pytest.mark.parametrize("mode,kind", [("hostname", "hostname"), ("none", "node"), ("ip", "ip")])
def test_each_gateway_address_kind_gives_a_working_path(mesh, mode, kind):
    lab("up", env={"LAB_LB": f"cluster2={mode}"})
    run = mesh.play("setup", [seed()])
    assert run.rc == 0, run.report()
    se = kget("cluster1", "serviceentries.networking.istio.io", "httpbin-bar", "-n", "foo")
    endpoint = se["spec"]["endpoints"][0]
    svc = kget("cluster2", "service", "istio-ingressgateway", "-n", "istio-system")
    if kind == "hostname":
        assert endpoint["address"].endswith(".lab.meshlink.test")
        assert endpoint["ports"] == {"http1": 15443}
    elif kind == "node":
        node_port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["port"] == 15443)
        node_ip = next(a["address"] for a in kget("cluster2", "node", "kwok-node-0")["status"]["addresses"]
                       if a["type"] == "InternalIP")
        assert endpoint["address"] == node_ip and endpoint["ports"] == {"http1": node_port}
    else:
        assert endpoint["address"] == svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    rid = f"t-{uuid.uuid4().hex[:10]}"
    proc = mesh.exec_curl("cluster1", "foo", "http://httpbin.bar.global:8000/ip", rid)
    assert proc.returncode == 0 and "origin" in proc.stdout, (proc.stdout, proc.stderr, hops(rid))
    assert_path(rid, "sidecar", "ingress-gateway", "pod")


# ---------------------------------------------------------------- preflight

def test_preflight_stops_setup_on_istio_1_20_before_any_write(mesh):
    lab("up", env={"LAB_ISTIO_VERSION": "cluster2=1.20.0"})
    try:
        before = {c: kget(c, "serviceentries.networking.istio.io", "-A")["items"] for c in ("cluster1", "cluster2")}
        run = mesh.play("setup", [seed(name="httpbin3")])
        assert run.rc != 0, run.report()
        assert "1.20" in run.out and "1.19" in run.out, run.report()
        for c in ("cluster1", "cluster2"):
            after = kget(c, "serviceentries.networking.istio.io", "-A")["items"]
            assert [x["metadata"]["name"] for x in after] == [x["metadata"]["name"] for x in before[c]]
        assert "httpbin3.bar.global" not in (kget("cluster1", "configmap", STORE, "-n",
                                                 "istio-system") or {}).get("data", {})
    finally:
        lab("up", env={"LAB_ISTIO_VERSION": "cluster2=1.7.8"})


def test_preflight_names_missing_global_dns(mesh):
    lab("up", env={"LAB_WITHOUT": "cluster1=dns"})
    try:
        run = mesh.play("preflight", [seed()])
        assert run.rc != 0, run.report()
        assert re.search(r"dns", run.out, re.I) and ".global" in run.out, run.report()
    finally:
        lab("up", env={"LAB_WITHOUT": "cluster1="})


# ---------------------------------------------------------------- seed section 8: cleanup

def test_teardown_removes_only_what_the_collection_made(mesh):
    mesh.play("setup", [seed()])
    foreign_se = {
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "ServiceEntry",
        "metadata": {"name": "users-own", "namespace": "default"},
        "spec": {"hosts": ["users.own.global"], "location": "MESH_INTERNAL", "resolution": "DNS",
                 "addresses": ["240.0.9.9"], "ports": [{"name": "http", "number": 80, "protocol": "HTTP"}],
                 "endpoints": [{"address": "127.0.0.1"}]},
    }
    foreign_cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "users-config", "namespace": "default"}, "data": {"keep": "me"}}
    kapply("cluster1", foreign_se)
    kapply("cluster1", foreign_cm)

    run = mesh.play("teardown", [seed()])
    assert run.rc == 0, run.report()
    for c in ("cluster1", "cluster2"):
        for kind in ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
                     "destinationrules.networking.istio.io", "deployments", "services", "configmaps",
                     "namespaces"):
            left = kget(c, kind, "-A", "-l", MADE_BY_RUNS)["items"]
            assert left == [], f"{kind} left in {c}: {[o['metadata']['name'] for o in left]}"
    assert kget("cluster1", "serviceentries.networking.istio.io", "httpbin-bar", "-n", "foo") is None
    # foo was provisioned by access.yml (the ServiceAccount's Roles live there): it stays, and says why
    assert kget("cluster1", "namespace", "foo")["status"]["phase"] == "Active"
    assert "namespace foo stays: it was provisioned by the access playbook" in run.out, run.report()
    assert kget("cluster1", "serviceentries.networking.istio.io", "users-own", "-n", "default") is not None
    assert kget("cluster1", "configmap", "users-config", "-n", "default")["data"] == {"keep": "me"}
    assert kget("cluster1", "configmap", STORE, "-n", "istio-system") is None

    run = mesh.play("verify", [seed()])
    assert run.rc != 0, "the check must fail once the ServiceEntry is gone"
    kubectl("cluster1", "delete", "serviceentries.networking.istio.io", "users-own", "-n", "default")
    kubectl("cluster1", "delete", "configmap", "users-config", "-n", "default")
