"""What is measured: wall time, peak RSS of a process tree, API requests counted by the API servers.

- ``run_measured``: starts a command in its own session and polls /proc every 0.1 s; the RSS
  of the tree is the sum of VmRSS of the root and every descendant (by parent pid) or member
  of its session at that instant; the peak of that sum is reported. Shared pages are counted
  once per process (RSS, not PSS), as ``ps`` would add them up.
  Alongside, the lab's own processes (``watch``: cluster -> component -> pid, e.g. every
  kube-apiserver, etcd, kwok controller and istiod) are polled at the same instants: the peak
  VmRSS of each, and the peak of their sum (what the lab holds at once), in ``RssPeaks``.
- ``scrape``: ``apiserver_request_total`` of one cluster (``kubectl get --raw /metrics``),
  as a dict ``(verb, group, resource, subresource, code) -> count``.
- ``Baseline``: the idle traffic of the lab's own controllers (leader-election and node lease
  renewals, the controller-manager's periodic discovery, endpoint reconciliation, watch
  restarts) as a rate per key and cluster, measured over an idle window; a run's expected idle
  traffic (rate x run duration) is subtracted key by key, clamped at 0. Requests on the
  resources only the controllers use (``IGNORED_RESOURCES``: leases, nodes, pods, events,
  endpoints, endpoint slices) are dropped outright: no contender touches them, and their rare
  periodic writes (kwok's node status every minute) would not average out over short runs;
  so are WATCH requests (``IGNORED_VERBS``): no contender watches, and the controllers'
  watch restarts come at random.
- ``ElectionWatch``: the lab's istiod (the validator of the seed-era clusters) renews two
  leader elections held in ConfigMaps of istio-system (``istio-leader``,
  ``istio-namespace-controller-election``) together, every ~5-8 s: a GET and a PUT on
  configmaps each, the same verbs and resource as a contender's VIP store. As a rate they
  would not average out over a 3 s run (0 or 2 PUTs against ~0.8 expected): they are counted
  one by one from a watch of those ConfigMaps and subtracted exactly (``subtract_known``),
  from the measured phases and from the idle windows alike.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

Key = Tuple[str, str, str, str, str]  # verb, group, resource, subresource, code
Known = Dict[str, Dict[str, int]]  # context -> "verb|group|resource|subresource|code" -> requests
# APPLY: the API server counts a server-side apply (PATCH application/apply-patch+yaml) as APPLY.
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
READ_VERBS = ("GET", "LIST", "WATCH")
VERB_COLUMNS = ("discovery", "GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "APPLY", "DELETE")
# Resources only the lab's own controllers (kube-controller-manager, kube-scheduler, kwok) use:
# heartbeats (leases, node status), pod status, events, endpoints. None of the contenders reads
# or writes them, so requests on them are dropped outright.
# Watches: no contender opens one ((a)'s modules list and get; kubectl apply/get/delete and
# kubernetes.core k8s/k8s_info without wait do not watch), while every informer of the lab's
# controllers and istiod ends its watch after 5-10 min and opens another, counted when it ends:
# at random, ~0.15/s per cluster, which no idle rate removes from a 70 s run (+-4 per cluster).
IGNORED_VERBS = {"WATCH"}
IGNORED_RESOURCES = {("coordination.k8s.io", "leases"), ("", "nodes"), ("", "pods"), ("", "events"),
                     ("events.k8s.io", "events"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")}
ELECTION_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
# what one renewal of a ConfigMap-held election sends (client-go: get, then update); the idle
# windows show it: GET and PUT on configmaps at the same rate
ELECTION_REQUESTS = ("GET||configmaps||200", "PUT||configmaps||200")
# ansible.posix.profile_tasks: "<task> ---- 1.23s", padded with dashes to a width (a long task
# name gets only two), after the "TASKS RECAP" header
PROFILE_LINE = re.compile(r"^(?P<task>\S.*?)\s+-{2,}\s+(?P<seconds>[\d.]+)s$")
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


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 when it does not run)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().decode("utf-8", "replace").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_delta(before: Dict[Tuple[str, str], float], after: Dict[Tuple[str, str], float]) -> Dict[str, Dict[str, float]]:
    """cluster -> component -> CPU seconds spent between two readings (a process that restarted
    in between, whose counter went down, counts from 0)."""
    out: Dict[str, Dict[str, float]] = {}
    for key, now in sorted(after.items()):
        spent = now - before.get(key, 0.0)
        out.setdefault(key[0], {})[key[1]] = round(spent if spent >= 0 else now, 2)
    return out


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


class RssPeaks:
    """Peaks of a set of processes sampled together: of each process, and of their sum at one
    instant (which is at most the sum of the peaks: processes need not peak together)."""

    def __init__(self) -> None:
        self.per: Dict[Tuple[str, str], int] = {}
        self.total = 0
        self.first_total: Optional[int] = None
        self.samples = 0

    def add(self, sample: Dict[Tuple[str, str], int]) -> int:
        """One sample (cluster, component) -> KiB; returns its sum."""
        for key, kib in sample.items():
            if kib > self.per.get(key, 0):
                self.per[key] = kib
        total = sum(sample.values())
        if self.first_total is None:
            self.first_total = total
        self.total = max(self.total, total)
        self.samples += 1
        return total

    def nested(self) -> Dict[str, Dict[str, int]]:
        """cluster -> component -> peak KiB."""
        out: Dict[str, Dict[str, int]] = {}
        for (cluster, component), kib in sorted(self.per.items()):
            out.setdefault(cluster, {})[component] = kib
        return out


def sample_processes(watch: Dict[str, Dict[str, int]]) -> Dict[Tuple[str, str], int]:
    """VmRSS in KiB of every watched process now (0 when it does not run)."""
    return {(cluster, component): _rss_kib(pid) for cluster, procs in watch.items()
            for component, pid in procs.items()}


class Result:
    def __init__(self, cmd: List[str], rc: int, seconds: float, peak_rss_kib: int, peak_procs: int,
                 stdout: str, stderr: str, lab: Optional[RssPeaks] = None, combined_peak_kib: int = 0,
                 cpu_s: float = 0.0, lab_cpu_s: Optional[Dict[str, Dict[str, float]]] = None) -> None:
        self.cmd = cmd
        self.rc = rc
        self.seconds = seconds
        self.peak_rss_kib = peak_rss_kib
        self.peak_procs = peak_procs
        self.stdout = stdout
        self.stderr = stderr
        self.lab = lab or RssPeaks()
        self.combined_peak_kib = combined_peak_kib  # the tree and the watched processes, at one instant
        self.cpu_s = cpu_s  # user + system CPU of the command and every descendant it reaped
        self.lab_cpu_s = lab_cpu_s or {}  # cluster -> component -> CPU seconds of the watched processes

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_measured(cmd: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
                 stdin: Optional[str] = None, timeout: float = 3600, interval: float = 0.1,
                 watch: Optional[Dict[str, Dict[str, int]]] = None) -> Result:
    """Run ``cmd``; wall time from just before the fork to the reaping of the root process.
    ``watch`` (cluster -> component -> pid): other processes whose RSS is sampled alongside."""
    peak = [0, 0, 0]
    lab = RssPeaks()
    done = threading.Event()
    watched = [(cluster, component, pid) for cluster, procs in (watch or {}).items() for component, pid in procs.items()]
    cpu_before = {(c, comp): cpu_seconds(pid) for c, comp, pid in watched}
    # the command's CPU: it and its descendants are reaped by the time it is (ansible waits for its forks)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def sample() -> None:
        while not done.is_set():
            rss, count = tree_rss_kib(proc.pid)
            if rss > peak[0]:
                peak[0] = rss
            peak[1] = max(peak[1], count)
            if watch:
                peak[2] = max(peak[2], rss + lab.add(sample_processes(watch)))
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after = {(c, comp): cpu_seconds(pid) for c, comp, pid in watched}
    done.set()
    sampler.join()
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    return Result(cmd, proc.returncode, seconds, peak[0], peak[1], out, err, lab, peak[2], round(cpu, 2),
                  cpu_delta(cpu_before, cpu_after))


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


def subtract_known(raw: Dict[str, Dict[Key, float]], known: Optional[Known]) -> Dict[str, Dict[Key, float]]:
    """Per-cluster request deltas minus requests known to be the lab's own (clamped at 0)."""
    out = {}
    for context, counts in raw.items():
        minus = (known or {}).get(context, {})
        fixed = {}
        for key, value in counts.items():
            value -= minus.get("|".join(key), 0)
            if value > 0:
                fixed[key] = value
        out[context] = fixed
    return out


def count_events(events: Iterable[Tuple[float, str, str]], start: float, end: float) -> Known:
    """context -> request key -> how many of ``events`` (time, context, key) fall in [start, end]."""
    out: Known = {}
    for when, context, key in events:
        if start <= when <= end:
            per = out.setdefault(context, {})
            per[key] = per.get(key, 0) + 1
    return out


class ElectionWatch:
    """Counts the lab istiods' leader-election renewals, one by one, from a watch of the
    ConfigMaps of istio-system in the clusters that have an istiod (``kubectl get --watch-only``,
    started before the first idle window and stopped after the last measurement: its own LIST
    and WATCH fall outside every measured interval; when the API server ends the watch (after
    30-60 min) its WATCH and the next LIST are recorded as known requests too)."""

    def __init__(self, kubectl: List[str], contexts: Iterable[str], namespace: str = "istio-system") -> None:
        self.events: List[Tuple[float, str, str]] = []
        self._kubectl = kubectl
        self._namespace = namespace
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._procs: Dict[str, subprocess.Popen] = {}
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in contexts]
        for thread in self._threads:
            thread.start()

    def _add(self, context: str, keys: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            self.events.extend((now, context, key) for key in keys)

    def _run(self, context: str) -> None:
        path = "{.metadata.annotations.control-plane\\.alpha\\.kubernetes\\.io/leader}"
        cmd = [*self._kubectl, "--context", context, "get", "configmaps", "-n", self._namespace, "--watch-only",
               "-o", "jsonpath={.metadata.name}{\"|\"}" + path + "{\"\\n\"}"]
        while not self._stop.is_set():
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._procs[context] = proc
            for line in proc.stdout:  # type: ignore[union-attr]
                _name, _, leader = line.rstrip("\n").partition("|")
                if leader:
                    self._add(context, ELECTION_REQUESTS)
            proc.wait()
            if self._stop.is_set():
                break
            self._add(context, ("WATCH||configmaps||200", "LIST||configmaps||200"))
            self._stop.wait(1)

    def known(self, start: float, end: float) -> Known:
        with self._lock:
            return count_events(list(self.events), start, end)

    def close(self) -> None:
        self._stop.set()
        for proc in list(self._procs.values()):
            if proc.poll() is None:
                proc.terminate()
        for thread in self._threads:
            thread.join(timeout=10)


class Baseline:
    """Idle request rate per cluster and key (requests per second)."""

    def __init__(self, rates: Dict[str, Dict[Key, float]], seconds: float) -> None:
        self.rates = rates
        self.seconds = seconds

    @classmethod
    def measure(cls, kubectl: List[str], contexts: Iterable[str], seconds: float,
                watch: Optional[ElectionWatch] = None) -> "Baseline":
        """The idle rates over ``seconds``, the lab's election renewals (``watch``) taken out."""
        contexts = list(contexts)
        t0 = time.monotonic()
        before = scrape_all(kubectl, contexts)
        started = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        after = scrape_all(kubectl, contexts)
        elapsed = time.monotonic() - started
        # the scrapes' midpoints: where the counters were read, within a scrape's ~0.1 s
        raw = subtract_known({c: delta(before[c], after[c]) for c in contexts},
                             watch.known((t0 + started) / 2, (t1 + time.monotonic()) / 2) if watch else None)
        return cls({c: {k: v / elapsed for k, v in raw[c].items()} for c in contexts}, elapsed)

    def writes_per_second(self) -> float:
        return sum(v for rates in self.rates.values() for k, v in rates.items()
                   if k[0] in WRITE_VERBS and (k[1], k[2]) not in IGNORED_RESOURCES)

    def requests_per_second(self) -> float:
        return sum(v for rates in self.rates.values() for k, v in rates.items()
                   if (k[1], k[2]) not in IGNORED_RESOURCES and k[0] not in IGNORED_VERBS)


def attributed(before: Dict[str, Dict[Key, float]], after: Dict[str, Dict[Key, float]], seconds: float,
               baseline: Optional[Baseline]) -> Dict[Key, int]:
    """Requests of the measured run, summed over clusters: delta minus expected idle traffic."""
    total: Dict[Key, float] = {}
    for context, now in after.items():
        rates = baseline.rates.get(context, {}) if baseline else {}
        for key, value in delta(before[context], now).items():
            if (key[1], key[2]) in IGNORED_RESOURCES or key[0] in IGNORED_VERBS:
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
    out["reads"] = sum(v for k, v in counts.items() if k[0] in READ_VERBS and k[2])
    out["errors"] = sum(v for k, v in counts.items() if not k[4].startswith("2"))
    return out


# ------------------------------------------------------------------ ansible.posix.profile_tasks

def parse_profile_tasks(stdout: str) -> List[List[Any]]:
    """[task, seconds] of every task profile_tasks lists in its recap (in its order: slowest first)."""
    tasks: List[List[Any]] = []
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("TASKS RECAP")), None)
    if start is None:
        return tasks
    for line in lines[start + 1:]:
        if line.startswith("PLAYBOOK RECAP"):
            break
        match = PROFILE_LINE.match(line.strip())
        if match:
            tasks.append([match.group("task"), float(match.group("seconds"))])
    return tasks
