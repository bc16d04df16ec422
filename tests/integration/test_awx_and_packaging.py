"""AWX/AAP-style runs and the built collection, against the lab.

AWX runs a job template as ``ansible-runner`` does: the project checkout as working
directory, credentials injected as environment variables (the Kubernetes credential sets
``K8S_AUTH_HOST``, ``K8S_AUTH_API_KEY``, ``K8S_AUTH_VERIFY_SSL``, ``K8S_AUTH_SSL_CA_CERT``) or
as vault-decrypted inventory variables, and everything the job prints kept as events. These
tests run the playbooks through ``ansible_runner.run`` the same way, with a ServiceAccount
token of each lab cluster (never the lab's admin kubeconfig), and check what a user checks
in AWX: the job status, the per-task events, the objects in the cluster, and that the token
is in no artifact and no event.

The packaging tests build the collection with ``ansible-galaxy collection build``, check the
tarball's contents, install it into an empty collections path and run the playbooks by their
FQCN, as a user of the released collection does.

Every test uses its own service and namespaces (awx-*, pkg-*), so the seed suite's objects are
not touched by name. (Teardown deletes every sample app labelled
app.kubernetes.io/managed-by=meshlink in the clusters it runs on, see the report in
docs/environments.md, so these tests do not run alongside another suite on the same lab.)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BIN, MANAGED, REPO, Run, kapply, kget, kubectl, lab

ansible_runner = pytest.importorskip("ansible_runner")

pytestmark = pytest.mark.usefixtures("mesh")

SA_NAMESPACE = "meshlink-awx-test"
SA_NAME = "meshlink-awx"
PORTS = [{"name": "http1", "number": 8000, "protocol": "http"}]
KINDS = ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
         "destinationrules.networking.istio.io", "deployments", "services", "serviceaccounts",
         "configmaps", "namespaces")


# ---------------------------------------------------------------- helpers

def lab_clusters() -> dict[str, dict[str, str]]:
    """context -> {server, ca} from the lab kubeconfig (what an admin copies into AWX)."""
    kubeconfig = yaml.safe_load(Path(lab("kubeconfig").stdout.strip()).read_text(encoding="utf-8"))
    clusters = {c["name"]: c["cluster"] for c in kubeconfig["clusters"]}
    out = {}
    for ctx in kubeconfig["contexts"]:
        cluster = clusters[ctx["context"]["cluster"]]
        out[ctx["name"]] = {"server": cluster["server"], "ca": cluster["certificate-authority"]}
    return out


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    """A cluster-admin ServiceAccount token per cluster, as an admin makes one for AWX."""
    made = {}
    for ctx in ("cluster1", "cluster2"):
        kapply(ctx, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SA_NAMESPACE}})
        kapply(ctx, {"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": SA_NAME, "namespace": SA_NAMESPACE}})
        kapply(ctx, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": f"{SA_NAME}-cluster-admin"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": "cluster-admin"},
                     "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}]})
        token = kubectl(ctx, "create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration", "2h").stdout.strip()
        assert token.count(".") == 2, "kubectl create token did not print a JWT"
        made[ctx] = token
    yield made
    for ctx in made:
        kubectl(ctx, "delete", "clusterrolebinding", f"{SA_NAME}-cluster-admin", "--ignore-not-found", check=False)
        kubectl(ctx, "delete", "namespace", SA_NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


class Job:
    """One ansible-runner job: status, events, artifacts, like an AWX job's details."""

    def __init__(self, runner: Any, private_data_dir: Path):
        self.status = runner.status
        self.rc = runner.rc
        self.private_data_dir = private_data_dir
        self.artifact_dir = Path(runner.config.artifact_dir)
        self.events = list(runner.events)
        self.stdout = (self.artifact_dir / "stdout").read_text(encoding="utf-8", errors="replace")

    def of(self, *kinds: str) -> list[dict]:
        return [e for e in self.events if e.get("event") in kinds]

    def ran(self, task: str) -> dict[str, str]:
        """host -> outcome (ok/changed/skipped/failed) of the task with this name."""
        out = {}
        for e in self.of("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            data = e["event_data"]
            if data.get("task") != task:
                continue
            if e["event"] == "runner_on_ok":
                out[data["host"]] = "changed" if data.get("res", {}).get("changed") else "ok"
            else:
                out[data["host"]] = e["event"].replace("runner_on_", "")
        return out

    def result(self, task: str, host: str) -> dict:
        for e in self.of("runner_on_ok"):
            if e["event_data"].get("task") == task and e["event_data"]["host"] == host:
                return e["event_data"]["res"]
        raise AssertionError(f"no ok result of {task!r} on {host}:\n{self.stdout[-4000:]}")

    def assert_successful(self) -> None:
        failed = [(e["event"], e["event_data"].get("host"), e["event_data"].get("task"))
                  for e in self.of("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed")
                  if not e["event_data"].get("ignore_errors")]
        assert self.status == "successful" and self.rc == 0 and not failed, \
            f"status={self.status} rc={self.rc} failed events={failed}\n{self.stdout[-6000:]}"

    def assert_secret_nowhere(self, secret: str) -> None:
        """Not in any file the job left (artifacts: stdout, job_events, fact cache, and the
        whole private data dir), nor in any event's stdout or event_data.

        One exception, ansible-runner's own: it records the environment it started ansible
        with in artifacts/<ident>/command (mode 0600), so a token given as K8S_AUTH_API_KEY
        is there, and only there (AWX masks such variables in the job's recorded environment;
        see docs/awx.md). Checked exactly: the token may be that variable's value, nothing else.
        """
        leaks = []
        for path in self.private_data_dir.rglob("*"):
            if not path.is_file() or secret.encode() not in path.read_bytes():
                continue
            if path.name == "command" and path.parent.parent.name == "artifacts":
                record = json.loads(path.read_text(encoding="utf-8"))
                assert (path.stat().st_mode & 0o777) == 0o600, oct(path.stat().st_mode)
                if record["env"].get("K8S_AUTH_API_KEY") == secret:
                    del record["env"]["K8S_AUTH_API_KEY"]
                    if secret not in json.dumps(record):
                        continue
            leaks.append(str(path.relative_to(self.private_data_dir)))
        for e in self.events:
            if secret in (e.get("stdout") or "") or secret in json.dumps(e.get("event_data", {})):
                leaks.append(f"event {e.get('counter')} {e.get('event')}")
        assert not leaks, f"the token appears in: {leaks}"
        assert list(self.artifact_dir.rglob("job_events/*.json")), "no job events were written to check"


def run_job(tmp: Path, playbook: str, inventory: Path, envvars: dict | None = None,
            extravars: dict | None = None, cmdline: str | None = None, limit: str | None = None) -> Job:
    """ansible_runner.run as AWX runs a job template: the project checkout is the working
    directory (so its ansible.cfg applies), the playbook is picked by path."""
    name = f"{playbook}-{uuid.uuid4().hex[:6]}"
    pdd = tmp / name
    pdd.mkdir(parents=True)
    env = {
        # the project checkout is the collection (make venv links it, as ansible.cfg expects)
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        # no kubeconfig to fall back to: every API call must use the injected credentials
        "KUBECONFIG": str(tmp / "no-kubeconfig"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        **(envvars or {}),
    }
    runner = ansible_runner.run(
        private_data_dir=str(pdd), project_dir=str(REPO), playbook=f"playbooks/{playbook}.yml",
        inventory=str(inventory), envvars=env, extravars=extravars or {}, cmdline=cmdline, limit=limit,
        quiet=True, ident=name, timeout=900, suppress_env_files=True,
    )
    return Job(runner, pdd)


def write_inventory(tmp: Path, hosts: dict[str, dict], **all_vars: Any) -> Path:
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            **all_vars},
                   "hosts": hosts}}
    path = tmp / f"inventory-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    return path


def ours_left(contexts: tuple[str, ...], service_label: str, namespaces: tuple[str, ...]) -> list[str]:
    """Objects labelled as ours that belong to this test's service or namespaces."""
    left = []
    for ctx in contexts:
        for kind in KINDS:
            for obj in kget(ctx, kind, "-A", "-l", MANAGED)["items"]:
                meta = obj["metadata"]
                mine = (meta.get("labels", {}).get("multicluster.meshlink.io/service") == service_label
                        or meta.get("namespace") in namespaces
                        or (kind == "namespaces" and meta["name"] in namespaces))
                if mine:
                    left.append(f"{ctx}: {kind} {meta.get('namespace', '')}/{meta['name']}")
        store = kget(ctx, "configmap", "meshlink-vips", "-n", "istio-system")
        for host in (store or {}).get("data", {}) or {}:
            if host.startswith(service_label + "."):
                left.append(f"{ctx}: VIP of {host} still allocated")
    return left


def gone(contexts: tuple[str, ...], service_label: str, namespaces: tuple[str, ...],
         timeout: float = 90) -> list[str]:
    """ours_left, polled: a deleted namespace takes a moment to finish terminating."""
    deadline = time.time() + timeout
    left = ours_left(contexts, service_label, namespaces)
    while left and time.time() < deadline:
        time.sleep(2)
        left = ours_left(contexts, service_label, namespaces)
    return left


def status_codes(job: Job, host: str) -> dict[str, int]:
    """remote host -> HTTP status of verify's connectivity_check calls (one per consumer namespace)."""
    res = job.result("Request every consumed remote service from the client pod", host)
    return {t["name"]: t["status_code"] for call in res["results"] for t in call["results"]}


VAULT_PASSWORD = "meshlink-test-vault-password"


def vault_encrypt(tmp: Path, value: str, name: str) -> str:
    """ansible-vault encrypt_string, as a user keeps a token in an inventory."""
    pw = tmp / "vault-password"
    pw.write_text(VAULT_PASSWORD + "\n", encoding="utf-8")
    proc = subprocess.run([str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(pw),
                           "--stdin-name", name],
                          input=value, capture_output=True, text=True, check=True)
    return proc.stdout


# ---------------------------------------------------------------- AWX: two clusters, per-host credentials

AWX2_SERVICE = {"name": "awx-httpbin", "namespace": "awx-src", "cluster": "cluster2",
                "consumers": [{"cluster": "cluster1", "namespace": "awx-client"}], "ports": PORTS}


def test_two_cluster_job_with_per_host_host_token_ca_from_vault(tmp_path, tokens):
    """Multi-cluster job template: one inventory host per cluster with meshlink_host,
    meshlink_ca_cert and a vault-encrypted meshlink_api_key; the Vault credential of the
    job template is the --vault-password-file here."""
    clusters = lab_clusters()
    lines = ["all:", "  vars:", "    ansible_connection: local",
             f"    ansible_python_interpreter: {sys.executable}",
             "    meshlink_deploy_sample_apps: true",
             "    meshlink_services: " + json.dumps([AWX2_SERVICE]), "  hosts:"]
    for ctx in ("cluster1", "cluster2"):
        lines += [f"    {ctx}:", f"      meshlink_host: {clusters[ctx]['server']}",
                  f"      meshlink_ca_cert: {clusters[ctx]['ca']}"]
        lines += ["      " + line for line in vault_encrypt(tmp_path, tokens[ctx], "meshlink_api_key").splitlines()]
    inventory = tmp_path / "awx-two-clusters.yml"
    inventory.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert tokens["cluster1"] not in inventory.read_text(encoding="utf-8")
    vault = f"--vault-password-file {tmp_path / 'vault-password'}"

    try:
        job = run_job(tmp_path, "preflight", inventory, cmdline=vault)
        job.assert_successful()
        assert job.ran("Run the preflight checks of this cluster") == {"cluster1": "ok", "cluster2": "ok"}

        job = run_job(tmp_path, "setup", inventory, cmdline=vault)
        job.assert_successful()
        assert job.ran("Find the ingress gateway address of this source cluster")["cluster2"] == "ok"
        assert job.ran("Allocate the VIPs of the remote hosts this cluster consumes")["cluster1"] == "changed"
        assert job.ran("Apply the ServiceEntries (and VirtualServices, DestinationRules) of the remote services")[
            "cluster1"] == "changed"
        se = kget("cluster1", "serviceentries.networking.istio.io", "awx-httpbin-awx-src", "-n", "awx-client")
        assert se is not None and se["spec"]["hosts"] == ["awx-httpbin.awx-src.global"]
        gateway = job.result("Find the ingress gateway address of this source cluster", "cluster2")
        assert se["spec"]["endpoints"][0]["address"] == gateway["address"]
        job.assert_secret_nowhere(tokens["cluster1"])
        job.assert_secret_nowhere(tokens["cluster2"])

        job = run_job(tmp_path, "verify", inventory, cmdline=vault)
        job.assert_successful()
        assert status_codes(job, "cluster1") == {"awx-httpbin.awx-src.global": 200}
        assert "cluster1 → awx-httpbin.awx-src.global: 200" in job.stdout
        job.assert_secret_nowhere(tokens["cluster1"])
    finally:
        job = run_job(tmp_path, "teardown", inventory, cmdline=vault)
    job.assert_successful()
    assert job.ran("Delete our ServiceEntries, VirtualServices and DestinationRules (consumer and source side)")
    assert gone(("cluster1", "cluster2"), "awx-httpbin.awx-src", ("awx-src", "awx-client")) == []
    job.assert_secret_nowhere(tokens["cluster1"])
    job.assert_secret_nowhere(tokens["cluster2"])


def test_multi_cluster_job_with_a_kubeconfig_credential(tmp_path, tokens):
    """The custom credential type of docs/awx.md: a kubeconfig (tokens and CA data inline)
    written to a file, its path injected as K8S_AUTH_KUBECONFIG; each inventory host names its
    context. The kubeconfig has no current-context, so a host that did not use its own
    context would fail instead of silently reaching another cluster."""
    clusters = lab_clusters()
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [], "users": [], "contexts": []}
    for ctx in ("cluster1", "cluster2"):
        ca = base64.b64encode(Path(clusters[ctx]["ca"]).read_bytes()).decode()
        kubeconfig["clusters"].append({"name": ctx, "cluster": {"server": clusters[ctx]["server"],
                                                                "certificate-authority-data": ca}})
        kubeconfig["users"].append({"name": f"{ctx}-awx", "user": {"token": tokens[ctx]}})
        kubeconfig["contexts"].append({"name": ctx, "context": {"cluster": ctx, "user": f"{ctx}-awx"}})
    injected = tmp_path / "awx-credential-kubeconfig"   # AWX writes it under the job's env/ dir
    injected.write_text(yaml.safe_dump(kubeconfig), encoding="utf-8")
    inventory = write_inventory(tmp_path, {c: {"meshlink_context": c} for c in ("cluster1", "cluster2")},
                                meshlink_services=[AWX2_SERVICE])
    job = run_job(tmp_path, "preflight", inventory, envvars={"K8S_AUTH_KUBECONFIG": str(injected)})
    job.assert_successful()
    assert job.ran("Run the preflight checks of this cluster") == {"cluster1": "ok", "cluster2": "ok"}
    for ctx in ("cluster1", "cluster2"):
        checks = job.result("Run the preflight checks of this cluster", ctx)["checks"]
        assert {c["status"] for c in checks} <= {"pass", "warn"}, checks
    job.assert_secret_nowhere(tokens["cluster1"])
    job.assert_secret_nowhere(tokens["cluster2"])


# ---------------------------------------------------------------- AWX: single-cluster job templates

AWX1_SERVICE = {"name": "awx1-httpbin", "namespace": "awx1-src", "cluster": "cluster2",
                "consumers": [{"cluster": "cluster1", "namespace": "awx1-client"}], "ports": PORTS}


def k8s_credential_env(tmp: Path, ctx: str, token: str) -> dict[str, str]:
    """The environment AWX's "OpenShift or Kubernetes API Bearer Token" credential injects
    (Verify SSL on, CA data given: written to a file, its path in K8S_AUTH_SSL_CA_CERT)."""
    ca = tmp / f"ca-{ctx}.crt"
    shutil.copy(lab_clusters()[ctx]["ca"], ca)
    return {"K8S_AUTH_HOST": lab_clusters()[ctx]["server"], "K8S_AUTH_API_KEY": token,
            "K8S_AUTH_VERIFY_SSL": "True", "K8S_AUTH_SSL_CA_CERT": str(ca)}


def test_single_cluster_jobs_with_the_kubernetes_credential_environment(tmp_path, tokens):
    """One job template per cluster: the mesh's inventory (hosts without connection
    variables), the template's Limit set to one cluster, and that cluster's Kubernetes
    credential (the K8S_AUTH_* environment). The source cluster's job finds its gateway; the
    consumer's job gets it as meshlink_gateway_overrides (an extra variable / survey answer),
    since the source cluster is not part of its run."""
    inventory = write_inventory(tmp_path, {"cluster1": {}, "cluster2": {}}, meshlink_deploy_sample_apps=True,
                                meshlink_services=[AWX1_SERVICE])
    env2 = k8s_credential_env(tmp_path, "cluster2", tokens["cluster2"])
    env1 = k8s_credential_env(tmp_path, "cluster1", tokens["cluster1"])
    jobs = []
    try:
        job = run_job(tmp_path, "preflight", inventory, envvars=env2, limit="cluster2")
        job.assert_successful()
        assert job.ran("Run the preflight checks of this cluster") == {"cluster2": "ok"}
        jobs.append(job)

        job = run_job(tmp_path, "setup", inventory, envvars=env2, limit="cluster2")
        job.assert_successful()
        jobs.append(job)
        gateway = job.result("Find the ingress gateway address of this source cluster", "cluster2")
        assert gateway["address"] and gateway["port"], gateway
        deploy = kget("cluster2", "deployment", "awx1-httpbin", "-n", "awx1-src")
        assert deploy is not None and deploy["status"].get("readyReplicas") == 1

        overrides = {"meshlink_gateway_overrides": {"cluster2": {"address": gateway["address"],
                                                                 "port": gateway["port"]}}}
        job = run_job(tmp_path, "setup", inventory, envvars=env1, extravars=overrides, limit="cluster1")
        job.assert_successful()
        jobs.append(job)
        assert job.ran("Apply the ServiceEntries (and VirtualServices, DestinationRules) of the remote services") == {
            "cluster1": "changed"}
        se = kget("cluster1", "serviceentries.networking.istio.io", "awx1-httpbin-awx1-src", "-n", "awx1-client")
        assert se["spec"]["endpoints"] == [{"address": gateway["address"], "ports": {"http1": gateway["port"]}}]

        job = run_job(tmp_path, "verify", inventory, envvars=env1, limit="cluster1")
        job.assert_successful()
        jobs.append(job)
        assert status_codes(job, "cluster1") == {"awx1-httpbin.awx1-src.global": 200}
    finally:
        teardown1 = run_job(tmp_path, "teardown", inventory, envvars=env1, limit="cluster1")
        teardown2 = run_job(tmp_path, "teardown", inventory, envvars=env2, limit="cluster2")
    for job in (teardown1, teardown2):
        job.assert_successful()
        jobs.append(job)
    assert teardown1.ran("Release the VIPs of the remote hosts this cluster consumed") == {"cluster1": "changed"}
    assert gone(("cluster1", "cluster2"), "awx1-httpbin.awx1-src", ("awx1-src", "awx1-client")) == []
    for job in jobs:
        job.assert_secret_nowhere(tokens["cluster1"])
        job.assert_secret_nowhere(tokens["cluster2"])


# ---------------------------------------------------------------- packaging

BAD_IN_TARBALL = (".venv/", ".collections/", ".git/", ".pytest_cache/", ".ansible/", "tests/lab/state/",
                  "tests/output/", "build/", "dist/", "benchmarks/")


def bad_members(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    return [n for n in names
            if any(n.startswith(p) or n == p.rstrip("/") for p in BAD_IN_TARBALL)
            or "__pycache__" in n.split("/") or n.endswith((".pyc", ".tar.gz"))]


def galaxy_build(src: Path, out: Path) -> Path:
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                           str(out), str(src)], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    galaxy = yaml.safe_load((src / "galaxy.yml").read_text(encoding="utf-8"))
    return out / f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"


def test_tarball_of_this_checkout_has_no_lab_outputs_venvs_or_caches(tmp_path):
    tarball = galaxy_build(REPO, tmp_path)
    assert bad_members(tarball) == []
    assert tarball.stat().st_size < 5 * 1024 * 1024, f"{tarball.stat().st_size} bytes: something big got in"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"playbooks/setup.yml", "meta/runtime.yml", "roles/remote_service/tasks/consumer.yml", "LICENSE"} <= names


def test_build_ignore_covers_what_the_tools_leave_in_a_checkout(tmp_path):
    """A copy of the checkout (sources only) with what make venv, the lab, pytest, ansible-lint
    and ansible-test leave behind; none of it may reach the tarball."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".collections", "state", "__pycache__", ".pytest_cache", ".ansible", "output", "build",
        "dist"))
    planted = {
        ".venv/bin/python": "",
        ".venv/lib/python3.11/site-packages/kubernetes/__init__.py": "",
        "tests/lab/state/kubeconfig": "apiVersion: v1\n",
        "tests/lab/state/kwok/clusters/cluster1/pki/admin.key": "KEY",
        "plugins/module_utils/__pycache__/_vip.cpython-311.pyc": "",
        "tests/lab/meshlab/__pycache__/dataplane.cpython-311.pyc": "",
        "tests/unit/plugins/__pycache__/x.cpython-311-pytest-9.2.0.pyc": "",
        ".pytest_cache/v/cache/nodeids": "[]",
        ".ansible/collections/x": "",
        "tests/output/junit/x.xml": "",
        "build/meshlink-multicluster-0.0.1.tar.gz": "",
        "dist/meshlink-multicluster-0.0.1.tar.gz": "",
        "meshlink-multicluster-0.0.1.tar.gz": "",
    }
    for rel, text in planted.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text, encoding="utf-8")
    (src / ".collections" / "ansible_collections" / "meshlink").mkdir(parents=True)
    (src / ".collections" / "ansible_collections" / "meshlink" / "multicluster").symlink_to("../../..")
    tarball = galaxy_build(src, tmp_path / "out")
    assert bad_members(tarball) == []


def site_packages_collections_parent() -> str:
    """The directory holding ansible_collections of the ansible package (kubernetes.core)."""
    return sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The built tarball installed into an empty collections path, as a user installs it."""
    tmp = tmp_path_factory.mktemp("installed")
    tarball = galaxy_build(REPO, tmp / "dist")
    path = tmp / "collections"
    # ANSIBLE_COLLECTIONS_PATH=<path>: otherwise ansible-galaxy finds a copy already installed
    # in ~/.ansible/collections and says "Nothing to do" without installing into -p
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(path),
                           "--no-deps"], capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (path / "ansible_collections" / "meshlink" / "multicluster" / "playbooks" / "setup.yml").exists()
    return path


PKG_SERVICE = {"name": "pkg-httpbin", "namespace": "pkg-src", "cluster": "cluster2",
               "consumers": [{"cluster": "cluster1", "namespace": "pkg-client"}], "ports": PORTS}


def play_installed(installed: Path, tmp: Path, playbook: str, inventory: Path) -> Run:
    """ansible-playbook meshlink.multicluster.<playbook> from outside the checkout."""
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": f"{installed}:{site_packages_collections_parent()}",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([str(BIN / "ansible-playbook"), f"meshlink.multicluster.{playbook}", "-i", str(inventory)],
                          capture_output=True, text=True, cwd=tmp, env=env, check=False, timeout=900)
    return Run(proc)


def test_installed_tarball_runs_setup_and_teardown_by_fqcn(installed, tmp_path):
    kubeconfig = lab("kubeconfig").stdout.strip()
    inventory = write_inventory(tmp_path, {c: {"meshlink_context": c} for c in ("cluster1", "cluster2")},
                                meshlink_kubeconfig=kubeconfig, meshlink_deploy_sample_apps=True,
                                meshlink_services=[PKG_SERVICE])
    try:
        run = play_installed(installed, tmp_path, "setup", inventory)
        assert run.rc == 0, run
        # the roles that ran are the installed copy's, not the checkout's
        assert f"{installed}/ansible_collections/meshlink/multicluster/roles/" in run.out, run
        assert str(REPO / ".collections") not in run.out
        se = kget("cluster1", "serviceentries.networking.istio.io", "pkg-httpbin-pkg-src", "-n", "pkg-client")
        assert se is not None, run
        assert se["spec"]["hosts"] == ["pkg-httpbin.pkg-src.global"]
        assert se["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshlink"
    finally:
        run = play_installed(installed, tmp_path, "teardown", inventory)
    assert run.rc == 0, run
    assert gone(("cluster1", "cluster2"), "pkg-httpbin.pkg-src", ("pkg-src", "pkg-client")) == []
