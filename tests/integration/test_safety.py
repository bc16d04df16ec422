"""Safe by construction (issue 9), on the lab: every write scoped to one mesh, one cluster per
inventory host, least privilege, and the holes found in the read of the code.

Each test here failed on the collection before the change (0.1.0): teardown scoped by label
only, per-option K8S_AUTH_* fallbacks, roles relying on a play's module_defaults, no
convergence when a consumer left the inventory, server-side apply with force. They use their
own namespaces (mesh-*, conv-*) and the collection's own ServiceAccounts (access.yml).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import BIN, MADE_BY_RUNS, REPO, SUITE_NAMESPACES, Run, grant, kapply, kget, kubectl, playbook_env

pytestmark = pytest.mark.usefixtures("mesh")

PORTS = [{"name": "http1", "number": 8000, "protocol": "http"}]


def service(name: str, namespace: str, consumers: list, source: str = "cluster2") -> dict:
    return {"name": name, "namespace": namespace, "cluster": source, "ports": PORTS,
            "consumers": [{"cluster": c, "namespace": ns} for c, ns in consumers]}


def ours(ctx: str, mesh: str) -> dict[str, str]:
    """Every object of ``mesh`` the runs made in ``ctx``: "kind ns/name" -> resourceVersion."""
    found = {}
    for kind in ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
                 "destinationrules.networking.istio.io", "deployments", "services", "serviceaccounts",
                 "configmaps"):
        for obj in kget(ctx, kind, "-A", "-l", f"{MADE_BY_RUNS},meshlink.io/mesh={mesh}")["items"]:
            meta = obj["metadata"]
            found[f"{kind} {meta.get('namespace', '')}/{meta['name']}"] = meta["resourceVersion"]
    return found


def store(ctx: str, mesh: str) -> dict:
    return (kget(ctx, "configmap", f"meshlink-vips-{mesh}", "-n", "istio-system") or {}).get("data") or {}


# ---------------------------------------------------------------- 1. two meshes on the same clusters

@pytest.fixture(scope="module")
def mesh_b(mesh, tmp_path_factory):
    """A second inventory: mesh "b", its own ServiceAccount (granted by access.yml)."""
    return grant(tmp_path_factory.mktemp("mesh-b"), mesh.kubeconfig, ["cluster1", "cluster2"], mesh="b")


def test_two_meshes_set_up_and_tear_down_independently(mesh, mesh_b):
    a = [service("httpbin", "mesh-a-src", [("cluster1", "mesh-a")])]
    b = [service("httpbin", "mesh-b-src", [("cluster1", "mesh-b")])]
    hosts_b = {c: {"meshlink_kubeconfig": mesh_b[c], "meshlink_context": c} for c in ("cluster1", "cluster2")}
    try:
        assert mesh.play("setup", a, meshlink_mesh="default").rc == 0
        run_b = play_hosts(mesh, "setup", b, hosts_b, meshlink_mesh="b")
        assert run_b.rc == 0, run_b.report()
        a_objects = {c: ours(c, "default") for c in ("cluster1", "cluster2")}
        b_objects = {c: ours(c, "b") for c in ("cluster1", "cluster2")}
        assert b_objects["cluster1"] and b_objects["cluster2"]
        b_vips = store("cluster1", "b")
        assert set(b_vips) == {"httpbin.mesh-b-src.global"}
        assert set(b_vips.values()).isdisjoint(store("cluster1", "default").values()), "two meshes shared a VIP"

        # mesh b's teardown removes mesh b, and nothing of mesh a
        run = play_hosts(mesh, "teardown", b, hosts_b, meshlink_mesh="b", meshlink_teardown_all=True)
        assert run.rc == 0, run.report()
        assert ours("cluster1", "b") == {} and ours("cluster2", "b") == {}
        assert {c: ours(c, "default") for c in ("cluster1", "cluster2")} == a_objects
        assert store("cluster1", "b") == {}
        verify = mesh.play("verify", a)
        assert verify.rc == 0 and "cluster1 → httpbin.mesh-a-src.global: 200" in verify.out, verify.report()

        # and mesh a's teardown does not touch mesh b
        assert play_hosts(mesh, "setup", b, hosts_b, meshlink_mesh="b").rc == 0
        b_objects = {c: ours(c, "b") for c in ("cluster1", "cluster2")}
        assert mesh.play("teardown", a, meshlink_teardown_all=True).rc == 0
        assert {c: ours(c, "b") for c in ("cluster1", "cluster2")} == b_objects
    finally:
        play_hosts(mesh, "teardown", b, hosts_b, meshlink_mesh="b", meshlink_teardown_all=True)
        mesh.play("teardown", a)


def play_hosts(mesh, playbook: str, services: list, hosts: dict, *flags: str, **extra) -> Run:
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "meshlink_deploy_sample_apps": True, "meshlink_services": services, **extra},
                   "hosts": hosts}}
    path = mesh.tmp / f"inventory-{uuid.uuid4().hex[:8]}.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), str(REPO / "playbooks" / f"{playbook}.yml"),
                           *flags], capture_output=True, text=True, cwd=REPO, env=playbook_env(), check=False,
                          timeout=900)
    return Run(proc)


def test_an_object_of_another_mesh_at_a_wanted_name_stops_setup_before_any_write(mesh, mesh_b):
    a = [service("httpbin", "mesh-a-src", [("cluster1", "mesh-a")])]
    # mesh b wants the very same ServiceEntry name in the same namespace
    b = [service("httpbin", "mesh-a-src", [("cluster1", "mesh-a")])]
    hosts_b = {c: {"meshlink_kubeconfig": mesh_b[c], "meshlink_context": c} for c in ("cluster1", "cluster2")}
    try:
        assert mesh.play("setup", a).rc == 0
        before = {c: ours(c, "default") for c in ("cluster1", "cluster2")}
        run = play_hosts(mesh, "setup", b, hosts_b, meshlink_mesh="b")
        assert run.rc != 0
        assert "ServiceEntry mesh-a/httpbin-mesh-a-src exists and belongs to mesh default" in run.out, run.report()
        assert "nothing was written to any cluster" in run.out
        assert {c: ours(c, "default") for c in ("cluster1", "cluster2")} == before
        assert ours("cluster1", "b") == {} and ours("cluster2", "b") == {}
    finally:
        mesh.play("teardown", a)


# ---------------------------------------------------------------- 1. namespaces and convergence

def test_a_namespace_the_mesh_created_goes_only_when_nothing_else_is_in_it(mesh):
    # admin connection: creating namespaces is what the least-privilege ServiceAccount does not
    # do (access.yml provisions them), so this is the path of an administrator's own runs
    ns = f"nsrule-{uuid.uuid4().hex[:5]}"
    svc = [service("httpbin", ns, [("cluster1", ns)])]
    try:
        assert mesh.play("setup", svc, admin=True).rc == 0
        assert kget("cluster1", "namespace", ns)["metadata"]["labels"]["meshlink.io/mesh"] == "default"
        kapply("cluster1", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "users-config", "namespace": ns},
                            "data": {"keep": "me"}})
        run = mesh.play("teardown", svc, admin=True)
        assert run.rc == 0, run.report()
        assert f"namespace {ns} was created by this mesh but stays: it holds configmaps/users-config" in run.out, \
            run.report()
        assert kget("cluster1", "configmap", "users-config", "-n", ns)["data"] == {"keep": "me"}
        assert kget("cluster1", "deployment", "sleep", "-n", ns) is None  # our sample app went
        kubectl("cluster1", "delete", "configmap", "users-config", "-n", ns)
        run = mesh.play("teardown", svc, admin=True)
        assert run.rc == 0, run.report()
        gone = kget("cluster1", "namespace", ns)
        assert gone is None or gone["status"]["phase"] == "Terminating"
        assert kget("cluster2", "namespace", ns) is None or \
            kget("cluster2", "namespace", ns)["status"]["phase"] == "Terminating"
    finally:
        kubectl("cluster1", "delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
        kubectl("cluster2", "delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)


def test_setup_converges_when_a_consumer_or_a_service_leaves_the_inventory(mesh):
    one = service("conv1", "conv-src", [("cluster1", "conv-client"), ("cluster1", "conv-client2")])
    one["consumers"] = [{"cluster": "cluster1", "namespace": "conv-client"}]
    two = service("conv2", "conv-src", [("cluster1", "conv-client")])
    versioned = copy.deepcopy(two)
    versioned.update(subsets=[{"name": "v1", "endpoint_labels": {"version": "v1"}, "pod_labels": {"version": "v1"}}],
                     route_subset="v1")
    try:
        assert mesh.play("setup", [one, versioned]).rc == 0
        assert kget("cluster1", "virtualservices.networking.istio.io", "conv2-conv-src-global", "-n", "conv-client")
        assert "conv2.conv-src.global" in store("cluster1", "default")

        # check mode with diff shows the deletions and deletes nothing
        run = mesh.play("setup", [one], "--check", "--diff")
        assert run.rc == 0, run.report()
        assert "ServiceEntry conv-client/conv2-conv-src: would_delete" in run.out, run.report()
        assert "VirtualService conv-client/conv2-conv-src-global: would_delete" in run.out
        assert "--- before: ServiceEntry conv-client/conv2-conv-src" in run.out
        assert kget("cluster1", "serviceentries.networking.istio.io", "conv2-conv-src", "-n", "conv-client")
        assert "conv2.conv-src.global" in store("cluster1", "default")

        run = mesh.play("setup", [one])
        assert run.rc == 0, run.report()
        for kind, name in (("serviceentries", "conv2-conv-src"), ("virtualservices", "conv2-conv-src-global"),
                           ("destinationrules", "conv2-conv-src-global")):
            assert kget("cluster1", f"{kind}.networking.istio.io", name, "-n", "conv-client") is None, name
        assert kget("cluster2", "destinationrules.networking.istio.io", "conv2-conv-src-local", "-n", "conv-src") is None
        assert "conv2.conv-src.global" not in store("cluster1", "default")
        assert "VIP of conv2.conv-src.global: released" in run.out

        # the consumer moves: the old namespace's ServiceEntry goes, the VIP stays (same host)
        vip = store("cluster1", "default")["conv1.conv-src.global"]
        moved = copy.deepcopy(one)
        moved["consumers"] = [{"cluster": "cluster1", "namespace": "conv-client2"}]
        assert mesh.play("setup", [moved]).rc == 0
        assert kget("cluster1", "serviceentries.networking.istio.io", "conv1-conv-src", "-n", "conv-client") is None
        assert kget("cluster1", "serviceentries.networking.istio.io", "conv1-conv-src", "-n", "conv-client2")
        assert store("cluster1", "default")["conv1.conv-src.global"] == vip
        rerun = mesh.play("setup", [moved])
        assert rerun.rc == 0 and rerun.changed() == 0, rerun.report()
    finally:
        mesh.play("teardown", [one, two], meshlink_teardown_all=True)


# ---------------------------------------------------------------- 2. one cluster identity per host

def test_two_hosts_on_one_cluster_stop_the_run_before_any_write(mesh):
    svc = [service("ident", "conv-src", [("cluster1", "conv-client")])]
    hosts = {"cluster1": {"meshlink_kubeconfig": mesh.kubeconfigs["cluster1"], "meshlink_context": "cluster1"},
             # a copy-pasted context: "cluster2" is cluster1
             "cluster2": {"meshlink_kubeconfig": mesh.kubeconfigs["cluster1"], "meshlink_context": "cluster1"}}
    before = ours("cluster1", "default")
    run = play_hosts(mesh, "setup", svc, hosts)
    assert run.rc != 0
    assert "inventory hosts cluster1 and cluster2 reach the same cluster" in run.out, run.report()
    assert ours("cluster1", "default") == before


def test_access_refuses_an_admin_kubeconfig_without_context_and_names_two_hosts_on_one_cluster(mesh):
    """access.yml writes with an administrator's connection: a kubeconfig alone would give every
    host its current context (stopped before any write); a copied context grants one cluster
    twice and the other nothing (named after the run)."""
    before = {c: ours(c, "default") for c in ("cluster1", "cluster2")}
    no_context = play_hosts(mesh, "access", [], {"cluster1": {}, "cluster2": {}},
                            meshlink_access_admin_kubeconfig=mesh.kubeconfig)
    assert no_context.rc != 0
    assert "meshlink_access_admin_kubeconfig is set without meshlink_access_admin_context" in \
        " ".join(no_context.out.split()), no_context.report()
    assert {c: ours(c, "default") for c in ("cluster1", "cluster2")} == before
    copied = play_hosts(mesh, "access", [], {"cluster1": {"meshlink_kubeconfig": mesh.kubeconfig,
                                                          "meshlink_context": "cluster1"},
                                             "cluster2": {"meshlink_kubeconfig": mesh.kubeconfig,
                                                          "meshlink_context": "cluster1"}},
                        meshlink_access_extra_namespaces=list(SUITE_NAMESPACES))
    assert copied.rc != 0
    assert "Two inventory hosts reached one cluster" in " ".join(copied.out.split()), copied.report()
    assert "inventory hosts cluster1 and cluster2 reach the same cluster" in " ".join(copied.out.split())


def test_a_host_context_wins_over_an_awx_credential_of_another_cluster(mesh):
    """K8S_AUTH_HOST/API_KEY of cluster2 in the environment (an AWX Kubernetes credential) and
    meshlink_context: cluster1 on the host: every request goes to cluster1, with a warning."""
    config = yaml.safe_load(Path(mesh.kubeconfigs["cluster2"]).read_text(encoding="utf-8"))
    env = {"K8S_AUTH_HOST": config["clusters"][0]["cluster"]["server"],
           "K8S_AUTH_API_KEY": config["users"][0]["user"]["token"], "K8S_AUTH_VERIFY_SSL": "false"}
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "meshlink_services": []},
                   "hosts": {"cluster1": {"meshlink_kubeconfig": mesh.kubeconfigs["cluster1"],
                                          "meshlink_context": "cluster1"}}}}
    path = mesh.tmp / "inventory-bundle.yml"
    path.write_text(yaml.safe_dump(inv), encoding="utf-8")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), str(REPO / "playbooks" / "preflight.yml"),
                           "-v"], capture_output=True, text=True, cwd=REPO, env={**playbook_env(), **env},
                          check=False, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    cluster1_server = yaml.safe_load(Path(mesh.kubeconfigs["cluster1"]).read_text())["clusters"][0]["cluster"]["server"]
    assert f"server: {cluster1_server}" in out and f"server: {env['K8S_AUTH_HOST']}" not in out, out[-4000:]
    assert "these environment variables are ignored: K8S_AUTH_HOST, K8S_AUTH_API_KEY" in " ".join(out.split()), \
        out[-4000:]
    assert env["K8S_AUTH_API_KEY"] not in out


def test_the_role_in_a_users_own_play_without_connection_variables_fails_naming_them(mesh, tmp_path):
    play = [{"name": "A user's play", "hosts": "all", "gather_facts": False, "connection": "local",
             "tasks": [{"name": "Preflight from the collection's role",
                        "ansible.builtin.import_role": {"name": "meshlink.multicluster.mesh",
                                                        "tasks_from": "preflight"}}]}]
    playbook = tmp_path / "users-play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    # a kubeconfig whose current context is a real cluster: the role must not fall through to it
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "meshlink_services": []}, "hosts": {"cluster1": {}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv), encoding="utf-8")
    env = {**playbook_env(), "KUBECONFIG": mesh.kubeconfig}
    for name in [k for k in env if k.startswith("K8S_AUTH_")]:
        del env[name]
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), str(playbook)], capture_output=True,
                          text=True, cwd=REPO, env=env, check=False, timeout=600)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "Host cluster1 names no cluster to connect to: set meshlink_context" in out, out[-3000:]


# ---------------------------------------------------------------- 3. least privilege

def test_a_missing_rule_is_named_by_verb_resource_and_namespace(mesh):
    svc = [service("rbac", "conv-src", [("cluster1", "conv-client")])]
    role = kget("cluster1", "role", "meshlink-default", "-n", "conv-client")
    reduced = copy.deepcopy(role)
    reduced["rules"] = [r for r in reduced["rules"] if "serviceentries" not in r["resources"]] + [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices", "destinationrules", "gateways"],
         "verbs": r["verbs"]} for r in role["rules"] if "serviceentries" in r["resources"]]
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        reduced["metadata"].pop(key, None)
    try:
        kapply("cluster1", reduced)
        run = mesh.play("setup", svc)
        assert run.rc != 0
        text = " ".join(run.out.split())
        assert 'cannot create resource "serviceentries" in API group "networking.istio.io" in the namespace ' \
               '"conv-client"' in text, run.report()
        assert "ServiceEntry conv-client/rbac-conv-src" in text
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            role["metadata"].pop(key, None)
        kapply("cluster1", role)
        mesh.play("teardown", svc)


# ---------------------------------------------------------------- 4. smaller holes

def test_a_field_another_manager_owns_is_not_taken_over_unless_asked(mesh):
    svc = [service("ssa", "conv-src", [("cluster1", "conv-client")])]
    try:
        assert mesh.play("setup", svc).rc == 0
        se = kget("cluster1", "serviceentries.networking.istio.io", "ssa-conv-src", "-n", "conv-client")
        patch = {"apiVersion": se["apiVersion"], "kind": "ServiceEntry",
                 "metadata": {"name": "ssa-conv-src", "namespace": "conv-client"},
                 "spec": {"location": "MESH_EXTERNAL"}}
        kubectl_apply = subprocess.run(
            [str(REPO / "tests" / "lab" / "lab"), "kubectl", "--context", "cluster1", "apply", "--server-side",
             "--force-conflicts", "--field-manager=gitops-bot", "-f", "-"],
            input=json.dumps(patch), capture_output=True, text=True, check=False)
        assert kubectl_apply.returncode == 0, kubectl_apply.stderr
        run = mesh.play("setup", svc)
        assert run.rc != 0
        text = " ".join(run.out.split())
        assert 'field .spec.location is owned by field manager "gitops-bot"' in text, run.report()
        assert kget("cluster1", "serviceentries.networking.istio.io", "ssa-conv-src",
                    "-n", "conv-client")["spec"]["location"] == "MESH_EXTERNAL"
        run = mesh.play("setup", svc, meshlink_force_conflicts=True)
        assert run.rc == 0, run.report()
        assert kget("cluster1", "serviceentries.networking.istio.io", "ssa-conv-src",
                    "-n", "conv-client")["spec"]["location"] == "MESH_INTERNAL"
    finally:
        mesh.play("teardown", svc)


def test_setup_never_reads_a_users_workloads_in_a_sample_namespace(mesh):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    svc = [service("reads", "conv-src", [("cluster1", "conv-client")])]
    user_app = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "users-app", "namespace": "conv-client"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "users-app"}},
                         "template": {"metadata": {"labels": {"app": "users-app"}},
                                      "spec": {"containers": [{"name": "app", "image": "example/app:1",
                                                               "env": [{"name": "PASSWORD", "value": secret}]}]}}}}
    try:
        kapply("cluster1", user_app)
        run = mesh.play("setup", svc, "-vvv")
        assert run.rc == 0, run.report()
        assert secret not in run.out
        assert "users-app" not in run.out
    finally:
        kubectl("cluster1", "delete", "deployment", "users-app", "-n", "conv-client", "--ignore-not-found",
                check=False)
        mesh.play("teardown", svc)
