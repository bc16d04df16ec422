"""The lab's one answer to "does the process in this pid file still run the program the lab
started" (procs.py), on real processes (`sleep`, this interpreter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshlab import procs  # noqa: E402

SLEEP = shutil.which("sleep") or "/bin/sleep"


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([SLEEP, "30"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("content, expected", [
    ("1234\n", 1234),
    ("  42 ", 42),
    ("", None),
    ("not-a-pid", None),
    ("0", None),
    ("-5", None),
])
def test_read_pid(tmp_path, content, expected):
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(content)
    assert procs.read_pid(pid_file) == expected


def test_read_pid_without_a_file(tmp_path):
    assert procs.read_pid(tmp_path / "missing.pid") is None


def test_alive_running_exited_and_zombie():
    assert procs.alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = child.pid
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not procs.alive(pid)
    child.wait()
    assert not procs.alive(pid)


def test_program_is_argv0(sleeper):
    assert procs.program(sleeper.pid) == SLEEP
    assert procs.program(2 ** 22 + 1) is None  # above pid_max: no such process


def test_program_falls_back_to_the_executable_while_cmdline_reads_empty(tmp_path, sleeper, monkeypatch):
    # Right after exec the kernel may not have set the arguments yet: cmdline reads empty.
    # The race cannot be produced on demand; the empty read is simulated, /proc/PID/exe is real.
    real_read_bytes = Path.read_bytes

    def read_bytes(path):
        return b"" if str(path) == f"/proc/{sleeper.pid}/cmdline" else real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert procs.program(sleeper.pid) == os.path.realpath(SLEEP)
    pid_file = tmp_path / "c.pid"
    pid_file.write_text(str(sleeper.pid))
    assert procs.running(pid_file, "sleep") == sleeper.pid


def test_running_checks_the_program(tmp_path, sleeper):
    pid_file = tmp_path / "c.pid"
    assert procs.running(pid_file, SLEEP) is None  # no pid file
    pid_file.write_text(str(sleeper.pid))
    assert procs.running(pid_file, SLEEP) == sleeper.pid  # the same path
    assert procs.running(pid_file, "sleep") == sleeper.pid  # the program's name
    assert procs.running(pid_file, "/opt/other/bin/sleep") == sleeper.pid  # the same name elsewhere
    assert procs.running(pid_file, "pilot-discovery") is None  # a reused pid of another program
    assert procs.recorded(pid_file) == sleeper.pid  # whatever it runs
    sleeper.kill()
    sleeper.wait()
    assert procs.running(pid_file, SLEEP) is None
    assert procs.recorded(pid_file) is None
