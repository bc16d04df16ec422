"""The drills' fault injection (`lab stop-apiserver` / `start-apiserver`) on a fake cluster
directory whose components are real processes (`sleep`), without Kubernetes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshlab import faults  # noqa: E402

SLEEP = shutil.which("sleep") or "/bin/sleep"


def fake_cluster(tmp_path: Path, monkeypatch, name: str = "cluster7") -> Path:
    """$LAB_STATE_DIR/kwok/clusters/NAME with a kwok.yaml like kwokctl writes (two documents,
    components with binary, args, workDir and envs)."""
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path))
    cdir = tmp_path / "kwok" / "clusters" / name
    (cdir / "pids").mkdir(parents=True)
    config = {"kind": "KwokctlConfiguration", "components": [
        {"name": "etcd", "binary": SLEEP, "args": ["300"], "workDir": str(cdir)},
        {"name": "kube-apiserver", "binary": SLEEP, "args": ["301"], "workDir": str(cdir),
         "envs": [{"name": "MESHLAB_TEST", "value": "1"}]},
        {"name": "kube-controller-manager", "binary": SLEEP, "args": ["302"], "workDir": str(cdir)},
    ]}
    (cdir / "kwok.yaml").write_text(yaml.safe_dump_all([{"kind": "KwokConfiguration"}, config]), encoding="utf-8")
    return cdir


@pytest.fixture
def cleanup():
    pids = []
    yield pids
    for pid in pids:
        subprocess.run(["kill", "-9", str(pid)], check=False, capture_output=True)


def test_components_are_read_from_every_document(tmp_path, monkeypatch):
    cdir = fake_cluster(tmp_path, monkeypatch)
    assert [c["name"] for c in faults.components(cdir)] == ["etcd", "kube-apiserver", "kube-controller-manager"]
    assert faults.component(cdir, "kube-apiserver")["args"] == ["301"]
    with pytest.raises(SystemExit, match="no kube-proxy component"):
        faults.component(cdir, "kube-proxy")


def test_unknown_cluster_is_named(tmp_path, monkeypatch):
    fake_cluster(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="no lab cluster 'cluster9'"):
        faults.stop_apiserver("cluster9")


def test_running_pid_checks_the_command_line(tmp_path, monkeypatch, cleanup):
    cdir = fake_cluster(tmp_path, monkeypatch)
    comp = faults.component(cdir, "kube-apiserver")
    assert faults.running_pid(cdir, comp) is None  # no pid file
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    cleanup.append(other.pid)
    (cdir / "pids" / "kube-apiserver.pid").write_text(str(other.pid))
    assert faults.running_pid(cdir, comp) is None  # a reused pid of another program is not ours
    pid = faults._start(cdir, comp)  # pylint: disable=protected-access
    cleanup.append(pid)
    assert faults.running_pid(cdir, comp) == pid
    assert int((cdir / "pids" / "kube-apiserver.pid").read_text()) == pid
    assert (cdir / "logs" / "kube-apiserver.log").exists()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"MESHLAB_TEST=1" in environ  # the component's envs from kwok.yaml


def test_stop_kills_only_the_apiserver_and_is_idempotent(tmp_path, monkeypatch, cleanup):
    cdir = fake_cluster(tmp_path, monkeypatch)
    started = {c["name"]: faults._start(cdir, c) for c in faults.components(cdir)}  # pylint: disable=protected-access
    cleanup.extend(started.values())
    assert faults.stop_apiserver("cluster7") == started["kube-apiserver"]
    deadline = time.monotonic() + 5
    while faults.running_pid(cdir, faults.component(cdir, "kube-apiserver")) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for name in ("etcd", "kube-controller-manager"):
        assert faults.running_pid(cdir, faults.component(cdir, name)) == started[name]
    assert (cdir / "meshlab-faults.json").exists()  # when it was stopped, for the restart
    assert faults.stop_apiserver("cluster7") is None  # already stopped: nothing to do
