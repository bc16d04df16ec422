"""results/latest.json -> results/latest.md, results/latest.png and the summary line."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import measure

TARGETS = {"a100_over_a1": ("<=", 1.5), "c_over_a_100": (">=", 10.0), "b_over_a_100": (">=", 3.0),
           "rerun_writes": ("==", 0), "writes_per_object": ("<=", 1.2)}


def _key(text: str) -> measure.Key:
    parts = text.split("|")
    return (parts[0], parts[1], parts[2], parts[3], parts[4])


def combined_baseline(data: Dict[str, Any]) -> Optional[measure.Baseline]:
    """The idle rate per cluster and key, averaged over every idle window (weighted by length)."""
    windows = data.get("baselines") or []
    if not windows:
        return None
    total = sum(w["seconds"] for w in windows)
    rates: Dict[str, Dict[measure.Key, float]] = {}
    for window in windows:
        for context, per_key in window["rates"].items():
            target = rates.setdefault(context, {})
            for key, rate in per_key.items():
                target[_key(key)] = target.get(_key(key), 0.0) + rate * window["seconds"] / total
    return measure.Baseline(rates, total)


def requests(phase: Dict[str, Any], baseline: Optional[measure.Baseline]) -> Dict[str, int]:
    """Requests by verb column of one measured phase, idle traffic subtracted."""
    raw = {context: {_key(k): v for k, v in per.items()} for context, per in phase["requests_raw"].items()}
    zero = {context: {} for context in raw}
    return measure.by_verb(measure.attributed(zero, raw, phase["seconds"], baseline))


def median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _spread(values: List[float]) -> str:
    if len(values) < 2:
        return ""
    return f" ({min(values):.1f}-{max(values):.1f})"


class Cell:
    """Every repetition of one (workload, contender)."""

    def __init__(self, runs: List[Dict[str, Any]], baseline: Optional[measure.Baseline]) -> None:
        self.runs = runs
        self.setup_s = [r["setup"]["seconds"] for r in runs]
        self.rerun_s = [r["rerun"]["seconds"] for r in runs]
        self.teardown_s = [r["teardown"]["seconds"] for r in runs]
        self.rss_mib = [r["setup"]["peak_rss_kib"] / 1024 for r in runs]
        self.procs = [r["setup"]["peak_procs"] for r in runs]
        self.created = [r["objects_created"] for r in runs]
        self.setup_req = [requests(r["setup"], baseline) for r in runs]
        self.rerun_req = [requests(r["rerun"], baseline) for r in runs]
        self.teardown_req = [requests(r["teardown"], baseline) for r in runs]
        self.failures = []
        for r in runs:
            for name in ("setup", "rerun", "teardown"):
                if r[name]["rc"] != 0:
                    self.failures.append(f"rep {r['rep']}: {name} rc={r[name]['rc']}: "
                                         f"{r[name]['output_tail'][-400:].strip()}")
            self.failures += [f"rep {r['rep']}: {p}" for p in r["setup_problems"]]
            if r["left_after_teardown"]:
                self.failures.append(f"rep {r['rep']}: left after teardown: {', '.join(r['left_after_teardown'][:5])}")

    def med(self, values: List[Dict[str, int]], column: str) -> float:
        return median([v[column] for v in values])

    @property
    def writes_per_object(self) -> float:
        ratios = [req["writes"] / created for req, created in zip(self.setup_req, self.created) if created]
        return median(ratios)


def _load(data: Dict[str, Any]) -> str:
    loads = sorted(r[p]["load1_before"] for r in data["runs"] for p in ("setup", "rerun", "teardown"))
    if not loads:
        return "-"
    return f"min {loads[0]:.1f}, median {median(loads):.1f}, max {loads[-1]:.1f}"


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def compute(data: Dict[str, Any]) -> Tuple[Dict[Tuple[str, str], Cell], Dict[str, Any]]:
    baseline = combined_baseline(data)
    cells: Dict[Tuple[str, str], Cell] = {}
    for wkey in data["workloads"]:
        for ckey in data["contenders"]:
            runs = [r for r in data["runs"] if r["workload"] == wkey and r["contender"] == ckey]
            if runs:
                cells[(wkey, ckey)] = Cell(runs, baseline)

    def t(wkey: str, ckey: str) -> float:
        cell = cells.get((wkey, ckey))
        return median(cell.setup_s) if cell else float("nan")

    derived: Dict[str, Any] = {"ratios": {}}
    for wkey in data["workloads"]:
        derived["ratios"][wkey] = {"c_over_a": _ratio(t(wkey, "c"), t(wkey, "a")),
                                   "b_over_a": _ratio(t(wkey, "b"), t(wkey, "a"))}
    derived["a100_over_a1"] = _ratio(t("2c-100", "a"), t("2c-1", "a"))
    derived["c_over_a_100"] = derived["ratios"].get("2c-100", {}).get("c_over_a", float("nan"))
    derived["b_over_a_100"] = derived["ratios"].get("2c-100", {}).get("b_over_a", float("nan"))
    derived["a_mesh_over_a10"] = _ratio(t("4c-mesh-10", "a"), t("2c-10", "a"))
    derived["a_mesh_over_a100"] = _ratio(t("4c-mesh-10", "a"), t("2c-100", "a"))
    a_reruns = [req["writes"] for (w, c), cell in cells.items() if c == "a" for req in cell.rerun_req]
    derived["rerun_writes"] = max(a_reruns) if a_reruns else None
    a_wpo = {w: cell.writes_per_object for (w, c), cell in cells.items() if c == "a"}
    derived["writes_per_object_a"] = a_wpo
    derived["writes_per_object_a_max"] = max(a_wpo.values()) if a_wpo else float("nan")
    derived["baseline"] = baseline
    return cells, derived


def _target_line(name: str, value: Any) -> str:
    op, target = TARGETS[name]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"| {name} | {op} {target} | - | not measured |"
    ok = {"<=": value <= target, ">=": value >= target, "==": value == target}[op]
    shown = f"{value:.2f}" if isinstance(value, float) else str(value)
    return f"| {name} | {op} {target} | {shown} | {'met' if ok else '**MISSED**'} |"


def _in_order(data: Dict[str, Any], cells: Dict[Tuple[str, str], Cell]):
    """(workload, contender, cell) of every measured cell, workloads and contenders in run order."""
    for wkey, workload in data["workloads"].items():
        for ckey, contender in data["contenders"].items():
            if (wkey, ckey) in cells:
                yield workload, contender, cells[(wkey, ckey)]


def markdown(data: Dict[str, Any], cells: Dict[Tuple[str, str], Cell], derived: Dict[str, Any],
             chart: Optional[str]) -> str:
    host = data["host"]
    contenders = data["contenders"]
    lines = [
        "# meshlink.multicluster benchmark",
        "",
        f"- commit measured: `{host['commit'][:12]}` ({host['commit_subject']})"
        + (" + uncommitted changes in plugins/roles/playbooks" if host.get("dirty") else ""),
        f"- machine: {host['cores']} cores ({host['cpu']}), {host['memory_gib']} GiB memory, Linux {host['kernel']}, "
        f"Python {host['python']}; {host.get('ansible-core', '?')}; "
        f"kubernetes.core {host.get('kubernetes.core', '?')}; "
        f"kubectl {host.get('kubectl', '?')}",
        f"- started {data['started']}, finished {data.get('finished', '(incomplete)')}; {data['reps']} repetition(s)"
        f"{' (--quick)' if data.get('quick') else ''}, contenders interleaved (a b c, a b c, ...) per workload and "
        "repetition, each from the same clean state; figures are medians (min-max in parentheses)",
        f"- lab: own state `{data['lab']['state']}` (address index base {data['lab']['index_base']}), clusters "
        f"{', '.join(data['lab']['clusters'])}: real kube-apiserver/etcd/controller-manager/scheduler per cluster, "
        "kwok nodes, emulated data plane stopped during the benchmark",
        f"- load average (1 min) at the start of the measured runs: {_load(data)} (other jobs share this machine: "
        "the spread across repetitions shows their effect)",
        "",
        "Contenders: " + "; ".join(f"{v['label']}" for v in contenders.values()) + ".",
        "",
        "## Setup (first run)",
        "",
        "API requests are counted by the API servers (`apiserver_request_total`, delta over the run, summed over "
        "the workload's clusters); the lab's own controllers' traffic is removed by dropping "
        "the resources only they use (leases, nodes, pods, events, endpoints, endpoint slices: no contender reads "
        "or writes them) and subtracting the idle rate of every other (verb, resource, code) measured "
        f"over {len(data.get('baselines', []))} idle window(s) of {data.get('idle_seconds', 0):.0f} s, times the "
        "run's duration. `disc.` = non-resource requests (discovery `/api`, `/apis`, `/openapi`, `/version`). "
        "Writes = POST+PUT+PATCH+APPLY+DELETE on resources, failed ones included (APPLY is how the API server "
        "counts a server-side apply).",
        "",
        "| workload | contender | wall s | peak RSS MiB | objects created | disc. | GET | LIST | POST | PUT | PATCH "
        "| APPLY | DELETE | total | writes | writes/object |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    columns = ("discovery", "GET", "LIST", "POST", "PUT", "PATCH", "APPLY", "DELETE", "total", "writes")
    for workload, contender, cell in _in_order(data, cells):
        cols = " | ".join(_fmt(cell.med(cell.setup_req, c), 0) for c in columns)
        lines.append(f"| {workload['title']} | {contender['label']} | {_fmt(median(cell.setup_s))}"
                     f"{_spread(cell.setup_s)} | {_fmt(median(cell.rss_mib), 0)} | {_fmt(median(cell.created), 0)} "
                     f"| {cols} | {_fmt(cell.writes_per_object, 2)} |")
    lines += [
        "",
        "## Second run (idempotence) and teardown",
        "",
        "| workload | contender | rerun s | rerun requests | rerun writes | teardown s | teardown requests "
        "| teardown writes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, contender, cell in _in_order(data, cells):
        lines.append(f"| {workload['title']} | {contender['label']} | {_fmt(median(cell.rerun_s))}"
                     f"{_spread(cell.rerun_s)} | {_fmt(cell.med(cell.rerun_req, 'total'), 0)} "
                     f"| {_fmt(cell.med(cell.rerun_req, 'writes'), 0)} | {_fmt(median(cell.teardown_s))}"
                     f"{_spread(cell.teardown_s)} | {_fmt(cell.med(cell.teardown_req, 'total'), 0)} "
                     f"| {_fmt(cell.med(cell.teardown_req, 'writes'), 0)} |")
    lines += ["", "## Derived", "", "| workload | (c)/(a) setup time | (b)/(a) setup time |", "|---|---:|---:|"]
    for wkey, workload in data["workloads"].items():
        r = derived["ratios"][wkey]
        lines.append(f"| {workload['title']} | {_fmt(r['c_over_a'], 2)} | {_fmt(r['b_over_a'], 2)} |")
    lines += [
        "",
        f"- (a) time(100 services) / time(1 service): **{_fmt(derived['a100_over_a1'], 2)}**",
        f"- (a) 4-cluster full mesh (40 services, 120 ServiceEntries) / 2 clusters with 10 services: "
        f"**{_fmt(derived['a_mesh_over_a10'], 2)}**; / 2 clusters with 100 services: "
        f"{_fmt(derived['a_mesh_over_a100'], 2)}",
        "- API writes per object created (setup), per contender: "
        + "; ".join(f"{contenders[c]['label']}: "
                    + ", ".join(f"{data['workloads'][w]['title'].split(',')[0]} "
                                f"{_fmt(cells[(w, c)].writes_per_object, 2)}"
                                for w in data["workloads"] if (w, c) in cells)
                    for c in contenders),
        "",
        "## Targets for (a)",
        "",
        "| figure | target | measured | |",
        "|---|---|---:|---|",
        _target_line("a100_over_a1", derived["a100_over_a1"]),
        _target_line("c_over_a_100", derived["c_over_a_100"]),
        _target_line("b_over_a_100", derived["b_over_a_100"]),
        _target_line("rerun_writes", derived["rerun_writes"]),
        _target_line("writes_per_object", derived["writes_per_object_a_max"]),
        "",
    ]
    baseline = derived["baseline"]
    if baseline:
        lines.append("Idle baseline (controller-only resources excluded): "
                     f"{baseline.requests_per_second():.2f} requests/s, "
                     f"{baseline.writes_per_second():.3f} writes/s over all lab clusters.")
        lines.append("")
    if chart:
        lines += [f"![setup time vs number of services]({chart})", ""]
    profile = data.get("profile") or {}
    if profile:
        lines += ["## Where (a) spends its time (one extra run with ansible.posix.profile_tasks)", "",
                  "Seconds per task as profile_tasks reports them (a task's time on its slowest host; hosts run in "
                  "parallel), not part of the figures above.", ""]
        for key, phases in profile.items():
            for name, prof in phases.items():
                lines.append(f"**{data['workloads'][key]['title']}, {name}**: {prof['seconds']:.1f} s wall, "
                             f"{prof['task_seconds']:.1f} s in {len(prof['tasks'])} tasks")
                lines.append("")
                lines.append("| task | s |")
                lines.append("|---|---:|")
                for task, seconds in sorted(prof["tasks"], key=lambda t: -t[1])[:10]:
                    lines.append(f"| {task.replace('|', '/')} | {seconds:.2f} |")
                lines.append("")
    failures = [(w, c, f) for (w, c), cell in cells.items() for f in cell.failures]
    if failures:
        lines += ["## Failures and anomalies", ""]
        lines += [f"- {data['workloads'][w]['title']} / {contenders[c]['label']}: {f}" for w, c, f in failures]
        lines.append("")
    return "\n".join(lines)


def plot(data: Dict[str, Any], cells: Dict[Tuple[str, str], Cell], path: Path) -> Optional[str]:
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("[bench] matplotlib is not installed (.venv/bin/pip install matplotlib): no chart")
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"a": "tab:blue", "b": "tab:orange", "c": "tab:red"}
    for ckey, contender in data["contenders"].items():
        points = sorted((data["workloads"][w]["services"], median(cells[(w, ckey)].setup_s))
                        for w in data["workloads"] if w.startswith("2c-") and (w, ckey) in cells)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colors.get(ckey),
                    label=f"{contender['label']} (2 clusters)")
        mesh = [w for w in data["workloads"] if "mesh" in w and (w, ckey) in cells]
        for w in mesh:
            ax.scatter([data["workloads"][w]["services"]], [median(cells[(w, ckey)].setup_s)], marker="s",
                       facecolors="none", edgecolors=colors.get(ckey), s=60,
                       label=f"{contender['label']} (4-cluster mesh)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("remote services")
    ax.set_ylabel("setup wall time, s (median)")
    ax.set_title(f"meshlink.multicluster setup vs alternatives ({data['host']['commit'][:8]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def render(data: Dict[str, Any], out: Path) -> int:
    cells, derived = compute(data)
    chart = plot(data, cells, out / "latest.png")
    text = markdown(data, cells, derived, chart)
    (out / "latest.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"[bench] report: {out / 'latest.md'}" + (f", chart: {out / chart}" if chart else ""))

    def f(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "nan"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    print(f"summary: a100_over_a1={f(derived['a100_over_a1'])} c_over_a_100={f(derived['c_over_a_100'])} "
          f"b_over_a_100={f(derived['b_over_a_100'])} rerun_writes={f(derived['rerun_writes'])}")
    return 0
