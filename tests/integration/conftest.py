"""End-to-end suite: the collection's playbooks against the lab, as a user runs them.

The lab (tests/lab/lab) is brought up once per session. Tests talk to it only through
the lab kubeconfig's contexts (cluster1, cluster2, ...), through `ansible-playbook` with an
inventory the test writes, and through the lab's kubectl for reading objects back.

As a user is told to (docs/awx.md, "Least privilege"), the playbooks run with the collection's
own ServiceAccount: the session runs playbooks/access.yml once with the lab's admin
credentials, for every namespace the suite uses (SUITE_NAMESPACES), and the inventories of
the tests point at the kubeconfigs it wrote (bounded tokens). Only what an administrator does
(access.yml, making foreign objects, reading objects back) uses the admin kubeconfig.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab" / "lab"
BIN = Path(sys.executable).parent

sys.path.insert(0, str(REPO / "tests" / "lab"))
from meshlab import versions  # noqa: E402  # the lab's pinned versions and cache paths

# The lab's kubectl binary, for tests that read many objects (no wrapper process per call).
KUBECTL = versions.kube_bin("kubectl")

SEED_SERVICE = {
    "name": "httpbin", "namespace": "bar", "cluster": "cluster2",
    "consumers": [{"cluster": "cluster1", "namespace": "foo"}],
    "ports": [{"name": "http1", "number": 8000, "protocol": "http"}],
}
MANAGED = "app.kubernetes.io/managed-by=meshlink"
# Objects the collection's runs made (not the access playbook's grants and namespaces).
MADE_BY_RUNS = "app.kubernetes.io/managed-by=meshlink,meshlink.io/component!=access"
STORE = "meshlink-vips-default"  # the VIP store of the default mesh
# Every namespace the suite's services and clients use: access.yml grants the collection's
# ServiceAccount its Roles there (and creates them), once per session.
SUITE_NAMESPACES = ("foo", "bar", "istio-system", "fm-client", "ns1", "ns2", "ns3", "awx-src", "awx-client",
                    "awx1-src", "awx1-client", "pkg-src", "pkg-client", "mesh-a", "mesh-b", "mesh-a-src",
                    "mesh-b-src", "conv-src", "conv-client", "conv-client2")


def lab(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(LAB), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(context: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(LAB), "kubectl", "--context", context, *args],
                          capture_output=True, text=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl --context {context} {' '.join(args)}:\n{proc.stderr}")
    return proc


def kapply(context: str, obj: dict) -> None:
    proc = subprocess.run([str(LAB), "kubectl", "--context", context, "apply", "-f", "-"],
                          input=json.dumps(obj), capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl apply on {context}: {proc.stderr}")


def kget(context: str, *args: str) -> Any:
    """kubectl get ... -o json, parsed; None when not found."""
    proc = kubectl(context, "get", *args, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


class Run:
    """One ansible-playbook run: rc, output, and the PLAY RECAP counters per host."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        self.recap: dict[str, dict[str, int]] = {}
        for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", proc.stdout, re.M):
            self.recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}

    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.recap.values())

    def report(self) -> str:
        """What a failed assertion shows: the recap and the end of the output (a str, so
        pytest prints it whole)."""
        return f"ansible-playbook rc={self.rc} recap={self.recap}\n{self.out[-8000:]}"


def playbook_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": f"{REPO / '.collections'}",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:{os.environ['PATH']}"}


def grant(tmp: Path, admin_kubeconfig: str, clusters: list[str], namespaces: tuple[str, ...] = SUITE_NAMESPACES,
          mesh: str = "default", lifetime: int = 7200) -> dict[str, str]:
    """playbooks/access.yml with the admin kubeconfig: the collection's ServiceAccount of
    ``mesh`` gets its rights in ``namespaces``; returns host -> the kubeconfig it wrote."""
    out = tmp / f"access-{mesh}"
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "meshlink_kubeconfig": admin_kubeconfig, "meshlink_services": [], "meshlink_mesh": mesh,
                            "meshlink_deploy_sample_apps": True, "meshlink_access_extra_namespaces": list(namespaces),
                            "meshlink_access_kubeconfig_dir": str(out), "meshlink_access_token_lifetime": lifetime},
                   "hosts": {c: {"meshlink_context": c} for c in clusters}}}
    path = tmp / f"access-{mesh}-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), str(REPO / "playbooks" / "access.yml")],
                          capture_output=True, text=True, cwd=REPO, env=playbook_env(), check=False, timeout=600)
    assert proc.returncode == 0, f"access.yml failed:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
    return {c: str(out / f"{c}.kubeconfig") for c in clusters}


class Mesh:
    """An inventory of the lab's clusters plus helpers to run the collection's playbooks.

    ``kubeconfigs``: host -> the collection ServiceAccount's kubeconfig (from ``grant``); the
    inventories use them unless a test asks for the admin connection (``admin=True``)."""

    def __init__(self, tmp: Path, kubeconfig: str, clusters: list[str], kubeconfigs: dict[str, str]):
        self.tmp = tmp
        self.kubeconfig = kubeconfig  # the lab's admin kubeconfig
        self.clusters = clusters
        self.kubeconfigs = kubeconfigs

    def hosts(self, admin: bool = False) -> dict[str, dict[str, str]]:
        if admin:
            return {c: {"meshlink_kubeconfig": self.kubeconfig, "meshlink_context": c} for c in self.clusters}
        return {c: {"meshlink_kubeconfig": self.kubeconfigs[c], "meshlink_context": c} for c in self.clusters}

    def inventory(self, services: list[dict], admin: bool = False, **extra: Any) -> Path:
        inv = {"all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "meshlink_deploy_sample_apps": True,
                "meshlink_services": services,
                **extra,
            },
            "hosts": self.hosts(admin),
        }}
        path = self.tmp / f"inventory-{uuid.uuid4().hex[:8]}.yml"
        path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
        return path

    def play(self, playbook: str, services: list[dict], *flags: str, admin: bool = False, **extra: Any) -> Run:
        inv = self.inventory(services, admin=admin, **extra)
        cmd = [str(BIN / "ansible-playbook"), "-i", str(inv), str(REPO / "playbooks" / f"{playbook}.yml"), *flags]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=playbook_env(), check=False,
                              timeout=900)
        return Run(proc)

    def exec_curl(self, context: str, namespace: str, url: str, request_id: str,
                  *curl_args: str) -> subprocess.CompletedProcess:
        pod = kubectl(context, "get", "pod", "-n", namespace, "-l", "app=sleep", "-o",
                      "jsonpath={.items[0].metadata.name}").stdout
        return kubectl(context, "exec", "-n", namespace, pod, "-c", "sleep", "--", "curl", "-sS",
                       "-H", f"x-request-id: {request_id}", *curl_args, url, check=False)


def hops(request_id: str) -> list[dict]:
    out = lab("hops", request_id).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def lab_process_peers() -> set[str]:
    """Remote addresses of every TCP connection held by a lab process (by /proc)."""
    state = str(REPO / "tests" / "lab" / "state")
    cache = str(versions.cache_dir())
    inodes: set[str] = set()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if state not in cmdline and cache not in cmdline and "meshlab" not in cmdline:
                continue
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    peers: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] not in inodes or fields[3] == "0A":  # 0A = LISTEN
                continue
            addr_hex = fields[2].split(":")[0]
            raw = bytes.fromhex(addr_hex)
            if width == 8:
                ip = ipaddress.IPv4Address(raw[::-1])
            else:
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                ip = ipaddress.IPv6Address(b"".join(words))
                if ip.ipv4_mapped:
                    ip = ip.ipv4_mapped
            peers.add(str(ip))
    return peers


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Mesh:
    lab("up", env={"LAB_CLUSTERS": os.environ.get("LAB_CLUSTERS", "2")})
    kubeconfig = lab("kubeconfig").stdout.strip()
    clusters = [c["name"] for c in json.loads(
        (Path(kubeconfig).parent / "clusters.json").read_text())["clusters"]]
    tmp = tmp_path_factory.mktemp("mesh")
    return Mesh(tmp, kubeconfig, clusters, grant(tmp, kubeconfig, clusters))


@pytest.fixture(autouse=True)
def _only_loopback_traffic(request: pytest.FixtureRequest):
    """The network rule: after every test, lab processes hold connections to loopback only."""
    yield
    if "mesh" not in request.fixturenames and "current" not in request.fixturenames:
        return
    bad = {p for p in lab_process_peers()
           if not ipaddress.ip_address(p).is_loopback and not ipaddress.ip_address(p).is_unspecified}
    assert not bad, f"lab processes connected to non-loopback addresses: {sorted(bad)}"
