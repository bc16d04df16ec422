"""The lab's processes: is the pid in a pid file still the program the lab started?

Every lab process (kwokctl's components, istiod, the data plane) is recorded in a pid file
and looked up later, possibly after it exited and its pid went to another program. One
answer to "does it still run" for all of them, here.
"""

from __future__ import annotations

import os
from pathlib import Path


def read_pid(pid_file: Path) -> int | None:
    """The pid written in `pid_file`, or None when there is no (readable, numeric) file."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def recorded(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process still runs, whatever it runs.

    For a process whose program varies (the data plane is whichever Python started it);
    prefer `running`, which also checks the program.
    """
    pid = read_pid(pid_file)
    return pid if pid is not None and alive(pid) else None


def program(pid: int) -> str | None:
    """The program `pid` runs: its argv[0], else the path of its executable.

    Right after Popen returns, the kernel may not have set the new program's arguments yet:
    its cmdline reads empty for a moment (seen on a loaded 2-core CI run, where a component
    just started was taken for dead), while its executable already is the new one.
    """
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        return argv0 or os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def running(pid_file: Path, binary: str) -> int | None:
    """The pid in `pid_file` if it runs `binary` (a path or a program name), else None.

    Checked against the program, not only the pid: pids get reused.
    """
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        return None
    name = program(pid)
    if name is None:
        return None
    return pid if name == binary or Path(name).name == Path(binary).name else None
