"""AWX/AAP-style runs and the built collection, against the lab.

AWX runs a job template as ``ansible-runner`` does: the project checkout as working
directory, credentials injected as environment variables (the Kubernetes credential sets
``K8S_AUTH_HOST``, ``K8S_AUTH_API_KEY``, ``K8S_AUTH_VERIFY_SSL``, ``K8S_AUTH_SSL_CA_CERT``) or
as vault-decrypted inventory variables, and everything the job prints kept as events. These
tests run the playbooks through ``ansible_runner.run`` the same way, with a ServiceAccount
token of each lab cluster (never the lab's admin kubeconfig), and check what a user checks
in AWX: the job status, the per-task events, the objects in the cluster, and that the token
is in no artifact and no event. The tokens are the collection's own least-privilege
ServiceAccount's (playbooks/access.yml, run once per session by conftest.grant), which is what
docs/awx.md tells AWX users to put into their credentials: no cluster-admin binding.

The packaging tests build the collection with ``ansible-galaxy collection build``, check the
tarball's contents, install it into an empty collections path and run the playbooks by their
FQCN, as a user of the released collection does.

Every test uses its own service and namespaces (awx-*, pkg-*, granted by the session's access
run: conftest.SUITE_NAMESPACES), so the seed suite's objects are not touched by name. The
namespaces stay after a teardown (the access playbook provisioned them, they hold its grants):
what must be gone is what the runs made (conftest.MADE_BY_RUNS).
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

from conftest import BIN, KUBECTL, MADE_BY_RUNS, REPO, STORE, Run, kget

ansible_runner = pytest.importorskip("ansible_runner")

pytestmark = pytest.mark.usefixtures("mesh")

PORTS = [{"name": "http1", "number": 8000, "protocol": "http"}]
KINDS = ("serviceentries.networking.istio.io", "virtualservices.networking.istio.io",
         "destinationrules.networking.istio.io", "deployments", "services", "serviceaccounts",
         "configmaps", "namespaces")


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def credentials(mesh, tmp_path_factory) -> dict[str, dict[str, str]]:
    """context -> {server, ca (a file), ca_data, token} of the collection's own ServiceAccount
    (meshlink-system/meshlink-default), read from the kubeconfigs the session's access run
    wrote: what an administrator copies into AWX's credentials (docs/awx.md)."""
    tmp = tmp_path_factory.mktemp("awx-credentials")
    out = {}
    for ctx in ("cluster1", "cluster2"):
        config = yaml.safe_load(Path(mesh.kubeconfigs[ctx]).read_text(encoding="utf-8"))
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        token = user["token"]
        assert token.count(".") == 2, "the access playbook's kubeconfig holds no JWT"
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=" * (-len(token.split(".")[1]) % 4)))
        assert claims["sub"] == "system:serviceaccount:meshlink-system:meshlink-default", claims["sub"]
        ca = tmp / f"ca-{ctx}.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        out[ctx] = {"server": cluster["server"], "ca": str(ca), "ca_data": cluster["certificate-authority-data"],
                    "token": token}
    return out


@pytest.fixture(scope="module")
def tokens(credentials) -> dict[str, str]:
    """The ServiceAccount token per cluster (bounded lifetime, least privilege)."""
    return {ctx: c["token"] for ctx, c in credentials.items()}


def test_the_tokens_are_least_privilege(mesh, tokens):
    """The tokens the AWX jobs use are not cluster-admin: the ServiceAccount may not read
    Secrets, nor write outside the namespaces the access playbook granted."""
    for ctx in ("cluster1", "cluster2"):
        for verb, resource, namespace, allowed in (("list", "secrets", "kube-system", "no"),
                                                   ("create", "configmaps", "default", "no"),
                                                   ("create", "serviceentries.networking.istio.io", "awx-client",
                                                    "yes")):
            # the access playbook's kubeconfig alone: no admin client certificate beside the token
            proc = subprocess.run([str(KUBECTL), "--kubeconfig", mesh.kubeconfigs[ctx], "auth", "can-i", verb,
                                   resource, "-n", namespace], capture_output=True, text=True, check=False,
                                  timeout=120)
            assert proc.stdout.strip() == allowed, (ctx, verb, resource, namespace, proc.stdout, proc.stderr)


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
    """Objects the runs made (not the access playbook's grants and namespaces) that belong to
    this test's service or namespaces, and VIPs of its service in the default mesh's store."""
    left = []
    for ctx in contexts:
        for kind in KINDS:
            for obj in kget(ctx, kind, "-A", "-l", MADE_BY_RUNS)["items"]:
                meta = obj["metadata"]
                mine = (meta.get("labels", {}).get("multicluster.meshlink.io/service") == service_label
                        or meta.get("namespace") in namespaces
                        or (kind == "namespaces" and meta["name"] in namespaces))
                if mine:
                    left.append(f"{ctx}: {kind} {meta.get('namespace', '')}/{meta['name']}")
        store = kget(ctx, "configmap", STORE, "-n", "istio-system")
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


INSPECT = "Inspect this cluster (read-only - checks, gateway, versions, existing objects)"
RECONCILE = "Write what this cluster should hold (VIPs, objects, sample apps; prune what left the inventory)"
VERIFY = "Request every service this cluster consumes, from its client pod"
TEARDOWN = "Delete this mesh's objects (and its sample apps and namespaces once empty), release the VIPs"


def status_codes(job: Job, host: str) -> dict[str, int]:
    """remote host -> HTTP status of verify's requests (one result per consumer namespace and host)."""
    res = job.result(VERIFY, host)
    return {t["name"]: t["status_code"] for t in res["results"]}


def written(job: Job, host: str, kind: str) -> dict[str, str]:
    """"namespace/name" -> action of the reconcile's objects of ``kind`` on ``host``."""
    return {f"{o['namespace']}/{o['name']}": o["action"] for o in job.result(RECONCILE, host)["objects"]
            if o["kind"] == kind}


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


def test_two_cluster_job_with_per_host_host_token_ca_from_vault(tmp_path, credentials, tokens):
    """Multi-cluster job template: one inventory host per cluster with meshlink_host,
    meshlink_ca_cert and a vault-encrypted meshlink_api_key; the Vault credential of the
    job template is the --vault-password-file here."""
    clusters = credentials
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
        assert job.ran(INSPECT) == {"cluster1": "ok", "cluster2": "ok"}
        assert RECONCILE not in job.stdout, "preflight must not write"

        job = run_job(tmp_path, "setup", inventory, cmdline=vault)
        job.assert_successful()
        assert job.ran(INSPECT) == {"cluster1": "ok", "cluster2": "ok"}
        gateway = job.result(INSPECT, "cluster2")["gateway"]
        assert gateway and gateway["address"] and gateway["port"], gateway
        assert job.result(INSPECT, "cluster1")["gateway"] is None, "cluster1 exports nothing"
        assert job.ran(RECONCILE) == {"cluster1": "changed", "cluster2": "changed"}
        reconciled = job.result(RECONCILE, "cluster1")
        assert reconciled["allocated"] == ["awx-httpbin.awx-src.global"], reconciled
        assert written(job, "cluster1", "ServiceEntry") == {"awx-client/awx-httpbin-awx-src": "created"}
        se = kget("cluster1", "serviceentries.networking.istio.io", "awx-httpbin-awx-src", "-n", "awx-client")
        assert se is not None and se["spec"]["hosts"] == ["awx-httpbin.awx-src.global"]
        assert se["spec"]["addresses"] == [reconciled["vips"]["awx-httpbin.awx-src.global"]]
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
    assert job.ran(TEARDOWN) == {"cluster1": "changed", "cluster2": "changed"}
    assert job.result(TEARDOWN, "cluster1")["released"] == ["awx-httpbin.awx-src.global"]
    assert {(o["kind"], o["namespace"], o["name"]) for o in job.result(TEARDOWN, "cluster1")["objects"]} >= {
        ("ServiceEntry", "awx-client", "awx-httpbin-awx-src")}
    assert gone(("cluster1", "cluster2"), "awx-httpbin.awx-src", ("awx-src", "awx-client")) == []
    job.assert_secret_nowhere(tokens["cluster1"])
    job.assert_secret_nowhere(tokens["cluster2"])


def test_multi_cluster_job_with_a_kubeconfig_credential(tmp_path, credentials, tokens):
    """The custom credential type of docs/awx.md: a kubeconfig (tokens and CA data inline)
    written to a file, its path injected as K8S_AUTH_KUBECONFIG; each inventory host names
    only its context (meshlink_context), which is looked up in that file. The kubeconfig has
    no current-context, so a host that did not use its own context would fail instead of
    silently reaching another cluster."""
    clusters = credentials
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [], "users": [], "contexts": []}
    for ctx in ("cluster1", "cluster2"):
        kubeconfig["clusters"].append({"name": ctx, "cluster": {"server": clusters[ctx]["server"],
                                                                "certificate-authority-data": clusters[ctx]["ca_data"]}})
        kubeconfig["users"].append({"name": f"{ctx}-awx", "user": {"token": tokens[ctx]}})
        kubeconfig["contexts"].append({"name": ctx, "context": {"cluster": ctx, "user": f"{ctx}-awx"}})
    injected = tmp_path / "awx-credential-kubeconfig"   # AWX writes it under the job's env/ dir
    injected.write_text(yaml.safe_dump(kubeconfig), encoding="utf-8")
    inventory = write_inventory(tmp_path, {c: {"meshlink_context": c} for c in ("cluster1", "cluster2")},
                                meshlink_services=[AWX2_SERVICE])
    job = run_job(tmp_path, "preflight", inventory, envvars={"K8S_AUTH_KUBECONFIG": str(injected)})
    job.assert_successful()
    assert job.ran(INSPECT) == {"cluster1": "ok", "cluster2": "ok"}
    for ctx in ("cluster1", "cluster2"):
        result = job.result(INSPECT, ctx)
        assert {c["status"] for c in result["checks"]} <= {"pass", "warn"}, result["checks"]
        # each host reached its own cluster (the context's server), not the other one
        assert result["cluster_identity"]["server"] == clusters[ctx]["server"], result["cluster_identity"]
    assert job.result(INSPECT, "cluster2")["gateway"]["address"], "the source cluster's gateway was found"
    job.assert_secret_nowhere(tokens["cluster1"])
    job.assert_secret_nowhere(tokens["cluster2"])


# ---------------------------------------------------------------- AWX: single-cluster job templates

AWX1_SERVICE = {"name": "awx1-httpbin", "namespace": "awx1-src", "cluster": "cluster2",
                "consumers": [{"cluster": "cluster1", "namespace": "awx1-client"}], "ports": PORTS}


def k8s_credential_env(tmp: Path, ctx: str, credential: dict[str, str]) -> dict[str, str]:
    """The environment AWX's "OpenShift or Kubernetes API Bearer Token" credential injects
    (Verify SSL on, CA data given: written to a file, its path in K8S_AUTH_SSL_CA_CERT)."""
    ca = tmp / f"ca-{ctx}.crt"
    shutil.copy(credential["ca"], ca)
    return {"K8S_AUTH_HOST": credential["server"], "K8S_AUTH_API_KEY": credential["token"],
            "K8S_AUTH_VERIFY_SSL": "True", "K8S_AUTH_SSL_CA_CERT": str(ca)}


def test_single_cluster_jobs_with_the_kubernetes_credential_environment(tmp_path, credentials, tokens):
    """One job template per cluster: the mesh's inventory (hosts without connection
    variables), the template's Limit set to one cluster, and that cluster's Kubernetes
    credential (the K8S_AUTH_* environment). The source cluster's job finds its gateway; the
    consumer's job gets it as meshlink_gateway_overrides (an extra variable / survey answer),
    since the source cluster is not part of its run."""
    inventory = write_inventory(tmp_path, {"cluster1": {}, "cluster2": {}}, meshlink_deploy_sample_apps=True,
                                meshlink_services=[AWX1_SERVICE])
    env2 = k8s_credential_env(tmp_path, "cluster2", credentials["cluster2"])
    env1 = k8s_credential_env(tmp_path, "cluster1", credentials["cluster1"])
    jobs = []
    try:
        job = run_job(tmp_path, "preflight", inventory, envvars=env2, limit="cluster2")
        job.assert_successful()
        assert job.ran(INSPECT) == {"cluster2": "ok"}
        jobs.append(job)

        job = run_job(tmp_path, "setup", inventory, envvars=env2, limit="cluster2")
        job.assert_successful()
        jobs.append(job)
        gateway = job.result(INSPECT, "cluster2")["gateway"]
        assert gateway["address"] and gateway["port"], gateway
        assert job.ran(RECONCILE) == {"cluster2": "changed"}
        deploy = kget("cluster2", "deployment", "awx1-httpbin", "-n", "awx1-src")
        assert deploy is not None and deploy["status"].get("readyReplicas") == 1

        overrides = {"meshlink_gateway_overrides": {"cluster2": {"address": gateway["address"],
                                                                 "port": gateway["port"]}}}
        job = run_job(tmp_path, "setup", inventory, envvars=env1, extravars=overrides, limit="cluster1")
        job.assert_successful()
        jobs.append(job)
        assert job.ran(RECONCILE) == {"cluster1": "changed"}
        assert written(job, "cluster1", "ServiceEntry") == {"awx1-client/awx1-httpbin-awx1-src": "created"}
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
    assert teardown1.ran(TEARDOWN) == {"cluster1": "changed"}
    assert teardown1.result(TEARDOWN, "cluster1")["released"] == ["awx1-httpbin.awx1-src.global"]
    assert teardown2.ran(TEARDOWN) == {"cluster2": "changed"}
    assert teardown2.result(TEARDOWN, "cluster2")["released"] == [], "cluster2 consumed nothing"
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
    assert {"playbooks/setup.yml", "playbooks/access.yml", "meta/runtime.yml", "roles/mesh/tasks/setup.yml",
            "roles/mesh/meta/argument_specs.yml", "LICENSE", "requirements.txt",
            "meta/execution-environment.yml"} <= names, sorted(names)
    # what the execution environment definition points ansible-builder at ships with it
    ee = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert set(ee["dependencies"].values()) <= names, (ee["dependencies"], sorted(names))
    assert not any(n.startswith("roles/") and n.split("/")[1] != "mesh" for n in names if n.count("/") > 1), \
        "a role other than roles/mesh ships (the five old roles were replaced by it)"


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


def test_installed_tarball_runs_setup_and_teardown_by_fqcn(installed, mesh, tmp_path):
    # the collection's ServiceAccount (least privilege), as a user of the released collection runs it
    inventory = write_inventory(tmp_path, {c: {"meshlink_kubeconfig": mesh.kubeconfigs[c], "meshlink_context": c}
                                           for c in ("cluster1", "cluster2")},
                                meshlink_deploy_sample_apps=True, meshlink_services=[PKG_SERVICE])
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
        assert se["metadata"]["labels"]["meshlink.io/mesh"] == "default"
    finally:
        run = play_installed(installed, tmp_path, "teardown", inventory)
    assert run.rc == 0, run
    assert gone(("cluster1", "cluster2"), "pkg-httpbin.pkg-src", ("pkg-src", "pkg-client")) == []
