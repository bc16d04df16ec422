"""What is measured: wall time, peak RSS of a process tree, API requests counted by the API servers.

- ``run_measured``: starts a command in its own session and polls /proc every 0.1 s; the RSS
  of the tree is the sum of VmRSS of the root and every descendant (by parent pid) or member
  of its session at that instant; the peak of that sum is reported. Shared pages are counted
  once per process (RSS, not PSS), as ``ps`` would add them up.
- ``scrape``: ``apiserver_request_total`` of one cluster (``kubectl get --raw /metrics``),
  as a dict ``(verb, group, resource, subresource, code) -> count``.
- ``Baseline``: the idle traffic of the lab's own controllers (leader-election and node lease
  renewals, the controller-manager's periodic discovery, endpoint reconciliation, watch
  restarts) as a rate per key and cluster, measured over an idle window; a run's expected idle
  traffic (rate x run duration) is subtracted key by key, clamped at 0. Requests on the
  resources only the controllers use (``IGNORED_RESOURCES``: leases, nodes, pods, events,
  endpoints, endpoint slices) are dropped outright: no contender touches them, and their rare
  periodic writes (kwok's node status every minute) would not average out over short runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

Key = Tuple[str, str, str, str, str]  # verb, group, resource, subresource, code
# APPLY: the API server counts a server-side apply (PATCH application/apply-patch+yaml) as APPLY.
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
VERB_COLUMNS = ("discovery", "GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "APPLY", "DELETE")
# Resources only the lab's own controllers (kube-controller-manager, kube-scheduler, kwok) use:
# heartbeats (leases, node status), pod status, events, endpoints. None of the contenders reads
# or writes them, so requests on them are dropped outright.
IGNORED_RESOURCES = {("coordination.k8s.io", "leases"), ("", "nodes"), ("", "pods"), ("", "events"),
                     ("events.k8s.io", "events"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")}
_LINE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# ------------------------------------------------------------------ process tree

def _proc_table() -> Dict[int, Tuple[int, int]]:
    """pid -> (ppid, session id) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root: int) -> Tuple[int, int]:
    """(sum of VmRSS in KiB, number of processes) of ``root``, its descendants and its session."""
    table = _proc_table()
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _sid) in table.items():
        children.setdefault(ppid, []).append(pid)
    members = {pid for pid, (_ppid, sid) in table.items() if sid == root}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            members.add(pid)
        stack.extend(children.get(pid, []))
    return sum(_rss_kib(pid) for pid in members), len(members)


class Result:
    def __init__(self, cmd: List[str], rc: int, seconds: float, peak_rss_kib: int, peak_procs: int,
                 stdout: str, stderr: str) -> None:
        self.cmd = cmd
        self.rc = rc
        self.seconds = seconds
        self.peak_rss_kib = peak_rss_kib
        self.peak_procs = peak_procs
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_measured(cmd: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
                 stdin: Optional[str] = None, timeout: float = 3600, interval: float = 0.1) -> Result:
    """Run ``cmd``; wall time from just before the fork to the reaping of the root process."""
    peak = [0, 0]
    done = threading.Event()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def sample() -> None:
        while not done.is_set():
            rss, count = tree_rss_kib(proc.pid)
            if rss > peak[0]:
                peak[0] = rss
            peak[1] = max(peak[1], count)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        err += f"\n[bench] killed after {timeout}s"
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    return Result(cmd, proc.returncode, seconds, peak[0], peak[1], out, err)


# ------------------------------------------------------------------ API server metrics

def parse_metrics(text: str) -> Dict[Key, float]:
    counts: Dict[Key, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        if labels.get("dry_run"):
            verb = labels.get("verb", "") + "(dryRun)"
        else:
            verb = labels.get("verb", "")
        key = (verb, labels.get("group", ""), labels.get("resource", ""), labels.get("subresource", ""),
               labels.get("code", ""))
        counts[key] = counts.get(key, 0.0) + float(match.group("value"))
    return counts


def scrape(kubectl: List[str], context: str) -> Dict[Key, float]:
    proc = subprocess.run([*kubectl, "--context", context, "get", "--raw", "/metrics"], capture_output=True,
                          text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"metrics of {context}: {proc.stderr.strip()}")
    return parse_metrics(proc.stdout)


def scrape_all(kubectl: List[str], contexts: Iterable[str]) -> Dict[str, Dict[Key, float]]:
    contexts = list(contexts)
    with ThreadPoolExecutor(max_workers=len(contexts) or 1) as pool:
        return dict(zip(contexts, pool.map(lambda c: scrape(kubectl, c), contexts)))


def delta(before: Dict[Key, float], after: Dict[Key, float]) -> Dict[Key, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0) > 0}


class Baseline:
    """Idle request rate per cluster and key (requests per second)."""

    def __init__(self, rates: Dict[str, Dict[Key, float]], seconds: float) -> None:
        self.rates = rates
        self.seconds = seconds

    @classmethod
    def measure(cls, kubectl: List[str], contexts: Iterable[str], seconds: float) -> "Baseline":
        contexts = list(contexts)
        before = scrape_all(kubectl, contexts)
        started = time.monotonic()
        time.sleep(seconds)
        after = scrape_all(kubectl, contexts)
        elapsed = time.monotonic() - started
        return cls({c: {k: v / elapsed for k, v in delta(before[c], after[c]).items()} for c in contexts}, elapsed)

    def writes_per_second(self) -> float:
        return sum(v for rates in self.rates.values() for k, v in rates.items()
                   if k[0] in WRITE_VERBS and (k[1], k[2]) not in IGNORED_RESOURCES)

    def requests_per_second(self) -> float:
        return sum(v for rates in self.rates.values() for k, v in rates.items()
                   if (k[1], k[2]) not in IGNORED_RESOURCES)


def attributed(before: Dict[str, Dict[Key, float]], after: Dict[str, Dict[Key, float]], seconds: float,
               baseline: Optional[Baseline]) -> Dict[Key, int]:
    """Requests of the measured run, summed over clusters: delta minus expected idle traffic."""
    total: Dict[Key, float] = {}
    for context, now in after.items():
        rates = baseline.rates.get(context, {}) if baseline else {}
        for key, value in delta(before[context], now).items():
            if (key[1], key[2]) in IGNORED_RESOURCES:
                continue
            value -= rates.get(key, 0.0) * seconds
            if value > 0:
                total[key] = total.get(key, 0.0) + value
    return {k: int(round(v)) for k, v in total.items() if int(round(v)) > 0}


def by_verb(counts: Dict[Key, int]) -> Dict[str, int]:
    """Columns of the report: non-resource requests (discovery, /version, openapi) apart."""
    out = {column: 0 for column in VERB_COLUMNS}
    out["other"] = 0
    for (verb, _group, resource, _sub, _code), value in counts.items():
        if not resource:
            out["discovery"] += value
        elif verb in out:
            out[verb] += value
        else:
            out["other"] += value
    out["total"] = sum(counts.values())
    out["writes"] = sum(v for k, v in counts.items() if k[0] in WRITE_VERBS and k[2])
    out["errors"] = sum(v for k, v in counts.items() if not k[4].startswith("2"))
    return out
