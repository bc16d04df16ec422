"""results/latest.json -> results/latest.md, results/latest.png and the summary line."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import measure

# Issue 10's targets for (a): (figure, what it is, comparison, target). Reported, never asserted.
TARGETS: Tuple[Tuple[str, str, str, float], ...] = (
    ("b_over_a_100", "(b) kubectl loop / (a), setup time, 100 services x 2 clusters", ">=", 3.0),
    ("c_over_a_100", "(c) per-object kubernetes.core / (a), setup time, 100 services", ">=", 10.0),
    ("a100_over_a1", "(a) setup time, 100 services / 1 service", "<=", 1.3),
    ("rerun_over_first_100", "(a) rerun time / first run, 100 services", "<=", 0.5),
    ("teardown100_over_1", "(a) teardown time, 100 services / 1 service", "<=", 1.5),
    ("teardown100_s", "(a) teardown time at 100 services, s", "<", 6.0),
    ("reads_100_over_1", "(a) setup reads (GET+LIST+WATCH), 100 services / 1: they do not grow "
     "(10% for idle traffic left after subtraction)", "<=", 1.1),
    ("gets_per_object_100", "(a) setup GETs per additional ServiceEntry, 1 -> 100 services: no GET per object",
     "<=", 0.05),
    ("writes_per_object", "(a) setup API writes per object created, worst workload", "<=", 1.0),
    ("rerun_writes", "(a) API writes on the second run, worst run", "==", 0),
    ("mesh4_over_2c10", "(a) setup time, 4-cluster full mesh (120 objects) / 2 clusters with 10 services",
     "<=", 1.5),
)
SUMMARY_KEYS = ("a100_over_a1", "b_over_a_100", "c_over_a_100", "rerun_over_first_100", "teardown100_over_1",
                "teardown100_s", "mesh4_over_2c10", "reads_100_over_1", "rerun_writes", "scale8_s")
COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok-controller", "istiod")


def _key(text: str) -> measure.Key:
    parts = text.split("|")
    return (parts[0], parts[1], parts[2], parts[3], parts[4])


def combined_baseline(data: Dict[str, Any]) -> Optional[measure.Baseline]:
    """The idle rate per cluster and key, averaged over the idle windows that measured that
    cluster (weighted by their length: the lab grows for the scale rows, so a cluster added then
    is in the later windows only)."""
    windows = data.get("baselines") or []
    if not windows:
        return None
    total = sum(w["seconds"] for w in windows)
    rates: Dict[str, Dict[measure.Key, float]] = {}
    for context in {c for w in windows for c in w["rates"]}:
        span = sum(w["seconds"] for w in windows if context in w["rates"])
        target = rates.setdefault(context, {})
        for window in windows:
            for key, rate in window["rates"].get(context, {}).items():
                target[_key(key)] = target.get(_key(key), 0.0) + rate * window["seconds"] / span
    return measure.Baseline(rates, total)


def requests(phase: Dict[str, Any], baseline: Optional[measure.Baseline]) -> Dict[str, int]:
    """Requests by verb column of one measured phase, idle traffic subtracted."""
    raw = {context: {_key(k): v for k, v in per.items()} for context, per in phase["requests_raw"].items()}
    raw = measure.subtract_known(raw, phase.get("lab_known_requests"))
    zero = {context: {} for context in raw}
    return measure.by_verb(measure.attributed(zero, raw, phase["seconds"], baseline))


def requests_per_cluster(phase: Dict[str, Any], baseline: Optional[measure.Baseline]) -> Dict[str, Dict[str, int]]:
    """Requests by verb column of one measured phase, per cluster, idle traffic subtracted."""
    out = {}
    for context, per in phase["requests_raw"].items():
        raw = measure.subtract_known({context: {_key(k): v for k, v in per.items()}}, phase.get("lab_known_requests"))
        out[context] = measure.by_verb(measure.attributed({context: {}}, raw, phase["seconds"], baseline))
    return out


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
        self.setup_req_per_cluster = [requests_per_cluster(r["setup"], baseline) for r in runs]
        # the lab's processes during setup (runs of older benchmark versions have none)
        self.lab_peaks = median_nested([r["setup"].get("lab_rss_peak_kib") or {} for r in runs])
        self.lab_total_mib = [r["setup"]["lab_rss_total_peak_kib"] / 1024 for r in runs
                              if r["setup"].get("lab_rss_total_peak_kib")]
        self.combined_mib = [r["setup"]["combined_peak_kib"] / 1024 for r in runs
                             if r["setup"].get("combined_peak_kib")]
        self.cpu_s = [r["setup"]["cpu_s"] for r in runs if "cpu_s" in r["setup"]]
        self.lab_cpu = median_nested([r["setup"].get("lab_cpu_s") or {} for r in runs])
        self.cores = next((r["setup"]["cores"] for r in runs if r["setup"].get("cores")), None)
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

    def per_cluster(self, column: str) -> Dict[str, float]:
        """Median over the repetitions of one request column of the setup, per cluster."""
        contexts = sorted({c for per in self.setup_req_per_cluster for c in per}, key=_cluster_order)
        return {c: median([per[c][column] for per in self.setup_req_per_cluster if c in per]) for c in contexts}


def _cluster_order(name: str) -> Tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 10 ** 6, name)


def median_nested(samples: List[Dict[str, Dict[str, int]]]) -> Dict[str, Dict[str, float]]:
    """cluster -> component -> KiB: the median over repetitions of each process's peak (a
    process missing from a repetition is left out of that median)."""
    keys = sorted({(c, comp) for sample in samples for c, per in sample.items() for comp in per})
    out: Dict[str, Dict[str, float]] = {}
    for cluster, comp in keys:
        values = [sample[cluster][comp] for sample in samples if comp in sample.get(cluster, {})]
        out.setdefault(cluster, {})[comp] = median(values)
    return out


def component_of(name: str) -> str:
    """The column of a lab process: kwokctl's component names, every istiod (the validator too) as istiod."""
    return "istiod" if name.startswith("istiod") else name


def cluster_rss_mib(peaks: Dict[str, Dict[str, float]], clusters: Optional[List[str]] = None
                    ) -> Dict[str, Dict[str, float]]:
    """cluster -> component column -> MiB, plus ``total`` (the sum of that cluster's process
    peaks: an upper bound of what it held at once), for ``clusters`` (default every cluster but
    the lab-wide processes)."""
    names = clusters if clusters is not None else sorted((c for c in peaks if c != "lab"), key=_cluster_order)
    out: Dict[str, Dict[str, float]] = {}
    for cluster in names:
        row: Dict[str, float] = {}
        for comp, kib in peaks.get(cluster, {}).items():
            col = component_of(comp)
            row[col] = row.get(col, 0.0) + kib / 1024
        row["total"] = sum(row.values())
        out[cluster] = row
    return out


def cpu_split(controller_s: float, lab_cpu: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """CPU seconds of one phase by consumer: the controller, then the lab's processes summed over
    its clusters by component column (``lab``: its data plane, when it ran)."""
    out: Dict[str, float] = {"controller": controller_s}
    for per in lab_cpu.values():
        for comp, seconds in per.items():
            col = component_of(comp)
            out[col] = out.get(col, 0.0) + seconds
    return out


def dominant_sentence(split: Dict[str, float], wall_s: float, cores: Optional[int]) -> str:
    """Who used the CPU during a phase, largest first, and how busy that kept the machine."""
    total = sum(split.values())
    if not total or math.isnan(total):
        return "-"
    parts = sorted(split.items(), key=lambda kv: -kv[1])
    names = {"controller": "the controller (ansible-playbook and its forks)", "kube-apiserver": "the API servers",
             "istiod": "istiod (the validating webhook of every cluster)", "etcd": "etcd",
             "kube-controller-manager": "the controller-managers", "kube-scheduler": "the schedulers",
             "kwok-controller": "the kwok controllers"}
    shown = ", ".join(f"{names.get(k, k)} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in parts if v >= 0.05 * total)
    busy = f"; {total / (wall_s * cores) * 100:.0f}% of {cores} cores over {wall_s:.1f} s" if cores and wall_s else ""
    return f"{total:.1f} CPU-s: {shown}{busy}"


def _load(data: Dict[str, Any]) -> str:
    loads = sorted(r[p]["load1_before"] for r in data["runs"] for p in ("setup", "rerun", "teardown"))
    if not loads:
        return "-"
    return f"min {loads[0]:.1f}, median {median(loads):.1f}, max {loads[-1]:.1f}"


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _group(data: Dict[str, Any], wkey: str) -> str:
    return data["workloads"][wkey].get("group", "main")


def compute(data: Dict[str, Any]) -> Tuple[Dict[Tuple[str, str], Cell], Dict[str, Any]]:
    baseline = combined_baseline(data)
    cells: Dict[Tuple[str, str], Cell] = {}
    for wkey in data["workloads"]:
        for ckey in data["contenders"]:
            runs = [r for r in data["runs"] if r["workload"] == wkey and r["contender"] == ckey]
            if runs:
                cells[(wkey, ckey)] = Cell(runs, baseline)
    nan = float("nan")

    def t(wkey: str, ckey: str, what: str = "setup_s") -> float:
        cell = cells.get((wkey, ckey))
        return median(getattr(cell, what)) if cell else nan

    def col(wkey: str, column: str) -> float:
        cell = cells.get((wkey, "a"))
        return cell.med(cell.setup_req, column) if cell else nan

    derived: Dict[str, Any] = {"ratios": {}}
    for wkey in data["workloads"]:
        derived["ratios"][wkey] = {"c_over_a": _ratio(t(wkey, "c"), t(wkey, "a")),
                                   "b_over_a": _ratio(t(wkey, "b"), t(wkey, "a"))}
    derived["a100_over_a1"] = _ratio(t("2c-100", "a"), t("2c-1", "a"))
    derived["c_over_a_100"] = derived["ratios"].get("2c-100", {}).get("c_over_a", nan)
    derived["b_over_a_100"] = derived["ratios"].get("2c-100", {}).get("b_over_a", nan)
    derived["rerun_over_first_100"] = _ratio(t("2c-100", "a", "rerun_s"), t("2c-100", "a"))
    derived["teardown100_over_1"] = _ratio(t("2c-100", "a", "teardown_s"), t("2c-1", "a", "teardown_s"))
    derived["teardown100_s"] = t("2c-100", "a", "teardown_s")
    derived["a_mesh_over_a10"] = _ratio(t("4c-mesh-10", "a"), t("2c-10", "a"))
    derived["mesh4_over_2c10"] = derived["a_mesh_over_a10"]
    derived["a_mesh_over_a100"] = _ratio(t("4c-mesh-10", "a"), t("2c-100", "a"))
    derived["reads_100_over_1"] = _ratio(col("2c-100", "reads"), col("2c-1", "reads"))
    more = (data["workloads"].get("2c-100", {}).get("objects", nan)
            - data["workloads"].get("2c-1", {}).get("objects", nan))
    derived["gets_per_object_100"] = _ratio(col("2c-100", "GET") - col("2c-1", "GET"), more)
    a_reruns = [req["writes"] for (w, c), cell in cells.items() if c == "a" for req in cell.rerun_req]
    derived["rerun_writes"] = max(a_reruns) if a_reruns else None
    a_wpo = {w: cell.writes_per_object for (w, c), cell in cells.items() if c == "a"}
    derived["writes_per_object_a"] = a_wpo
    derived["writes_per_object_a_max"] = max(a_wpo.values()) if a_wpo else nan
    derived["writes_per_object"] = derived["writes_per_object_a_max"]
    derived["scale8_s"] = t("8c-mesh-25", "a")
    derived["scale"] = scale_rows(data, cells)
    derived["targets"] = evaluate_targets(derived)
    derived["baseline"] = baseline
    return cells, derived


# ------------------------------------------------------------------ targets

def meets(op: str, value: Any, target: float) -> Optional[bool]:
    """Whether ``value`` meets ``op target``, as shown (floats rounded to 2 decimals); None: not measured."""
    if _nan(value):
        return None
    shown = round(value, 2) if isinstance(value, float) else value
    return {"<=": shown <= target, "<": shown < target, ">=": shown >= target, ">": shown > target,
            "==": shown == target}[op]


def evaluate_targets(derived: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [{"name": name, "what": what, "op": op, "target": target, "value": derived.get(name),
             "met": meets(op, derived.get(name), target)} for name, what, op, target in TARGETS]


def _target_line(row: Dict[str, Any]) -> str:
    value = row["value"]
    shown = "-" if _nan(value) else (f"{value:.2f}" if isinstance(value, float) else str(value))
    verdict = {None: "not measured", True: "met", False: "**not met**"}[row["met"]]
    target = f"{row['target']:g}"
    return f"| {row['name']} | {row['what']} | {row['op']} {target} | {shown} | {verdict} |"


# ------------------------------------------------------------------ scale study

def scale_rows(data: Dict[str, Any], cells: Dict[Tuple[str, str], Cell]) -> List[Dict[str, Any]]:
    """One row per scale workload measured with (a), by number of clusters."""
    rows = []
    for wkey, workload in data["workloads"].items():
        cell = cells.get((wkey, "a"))
        if _group(data, wkey) != "scale" or not cell:
            continue
        clusters = list(workload["clusters"])
        per = cluster_rss_mib(cell.lab_peaks, clusters)
        api = {c: per[c].get("kube-apiserver", float("nan")) for c in clusters}
        measured = [v for v in api.values() if not math.isnan(v)]
        reads, writes = cell.per_cluster("reads"), cell.per_cluster("writes")
        totals = cell.per_cluster("total")
        wall = median(cell.setup_s)
        rows.append({
            "key": wkey, "title": workload["title"], "clusters": len(clusters), "objects": workload["objects"],
            "wall_s": wall, "s_per_100": _ratio(wall * 100, workload["objects"]),
            "rerun_s": median(cell.rerun_s), "teardown_s": median(cell.teardown_s),
            "controller_mib": median(cell.rss_mib), "apiserver_mib": api,
            "apiserver_min_mib": min(measured) if measured else float("nan"),
            "apiserver_max_mib": max(measured) if measured else float("nan"),
            "per_cluster_mib": per, "lab_clusters": len([c for c in cell.lab_peaks if c != "lab"]),
            "lab_total_mib": median(cell.lab_total_mib), "combined_mib": median(cell.combined_mib),
            "reads": reads, "writes": writes, "requests": totals,
            "cpu": cpu_split(median(cell.cpu_s), cell.lab_cpu) if cell.cpu_s else {}, "cores": cell.cores,
            "reads_mean": statistics.mean(reads.values()) if reads else float("nan"),
            "writes_mean": statistics.mean(writes.values()) if writes else float("nan"),
            "requests_max": max(totals.values()) if totals else float("nan"),
        })
    return sorted(rows, key=lambda r: r["clusters"])


def _growth(now: float, before: float) -> str:
    ratio = _ratio(now, before)
    if math.isnan(ratio):
        return "-"
    return f"x{ratio:.2f}"


def _exponent(now: float, before: float, objects_now: float, objects_before: float) -> float:
    """k in value ~ objects^k between two rows."""
    if min(now, before, objects_now, objects_before) <= 0 or objects_now == objects_before:
        return float("nan")
    if any(math.isnan(v) for v in (now, before)):
        return float("nan")
    return math.log(now / before) / math.log(objects_now / objects_before)


def _how(k: float) -> str:
    if math.isnan(k):
        return "-"
    if k < 0.15:
        return "flat"
    if k < 0.85:
        return "slower than the objects"
    if k <= 1.15:
        return "in proportion to the objects"
    return "faster than the objects"


def scale_sentence(row: Dict[str, Any], prev: Optional[Dict[str, Any]]) -> str:
    """What one scale row shows, from its figures (and how it grew from the previous row)."""
    head = (f"{row['clusters']} clusters, {row['objects']:,} objects: {row['wall_s']:.1f} s "
            f"({row['s_per_100']:.2f} s per 100 objects), controller {row['controller_mib']:.0f} MiB, API servers "
            f"{row['apiserver_min_mib']:.0f}-{row['apiserver_max_mib']:.0f} MiB each, "
            f"{row['reads_mean']:.0f} reads and {row['writes_mean']:.0f} writes per cluster")
    if not prev:
        return head + "."
    k_wall = _exponent(row["wall_s"], prev["wall_s"], row["objects"], prev["objects"])
    k_ctl = _exponent(row["controller_mib"], prev["controller_mib"], row["objects"], prev["objects"])
    k_reads = _exponent(row["reads_mean"], prev["reads_mean"], row["objects"], prev["objects"])
    api_step = row["apiserver_max_mib"] - prev["apiserver_max_mib"]
    return (head + f". From {prev['clusters']} clusters: objects {_growth(row['objects'], prev['objects'])}, "
            f"wall time {_growth(row['wall_s'], prev['wall_s'])} ({_how(k_wall)}), controller RSS "
            f"{_growth(row['controller_mib'], prev['controller_mib'])} ({_how(k_ctl)}), largest API server "
            f"{api_step:+.0f} MiB, reads per cluster {_growth(row['reads_mean'], prev['reads_mean'])} "
            f"({_how(k_reads)}), writes per cluster {_growth(row['writes_mean'], prev['writes_mean'])} "
            f"({_fmt(_ratio(row['writes_mean'], row['objects'] / row['clusters']), 2)} per ServiceEntry a cluster "
            f"holds: {row['objects'] // row['clusters']}).")


def dominant_tasks(prof: Dict[str, Any], top: int = 3) -> str:
    """The tasks that take most of a profiled run, with their share of the wall time."""
    tasks = sorted(prof.get("tasks") or [], key=lambda t: -t[1])[:top]
    if not tasks or not prof.get("seconds"):
        return "-"
    return "; ".join(f"{name} {seconds:.1f} s ({100 * seconds / prof['seconds']:.0f}% of the wall time)"
                     for name, seconds in tasks)


def summary_line(derived: Dict[str, Any]) -> str:
    def f(value: Any) -> str:
        if _nan(value):
            return "nan"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    return "summary: " + " ".join(f"{key}={f(derived.get(key))}" for key in SUMMARY_KEYS)


def _in_order(data: Dict[str, Any], cells: Dict[Tuple[str, str], Cell]):
    """(workload, contender, cell) of every measured cell, workloads and contenders in run order."""
    for wkey, workload in data["workloads"].items():
        for ckey, contender in data["contenders"].items():
            if (wkey, ckey) in cells:
                yield workload, contender, cells[(wkey, ckey)]


def _scale_section(data: Dict[str, Any], derived: Dict[str, Any]) -> List[str]:
    rows = derived["scale"]
    if not rows:
        return []
    lab_clusters = max(r["lab_clusters"] for r in rows)
    lines = [
        "## Scale: full meshes of 2, 4 and 8 clusters, 25 services exported by each ((a) only, 1 run each)",
        "",
        f"Every cluster consumes every other cluster's services: n x 25 x (n-1) ServiceEntries. (a) runs with forks "
        f"= max(5, clusters) (docs/environments.md). Peak RSS of the controller: ansible-playbook and every process "
        f"it starts, summed. API servers: each kube-apiserver's own peak VmRSS during the setup (min-max over the "
        f"workload's clusters). Lab total: the peak of the sum of every lab process at one instant (all "
        f"{lab_clusters} clusters of the lab were up, the idle ones too: API servers, etcd, controller-managers, "
        f"schedulers, kwok controllers, the validator istiod). Requests per cluster: mean over the workload's "
        f"clusters, idle traffic subtracted.",
        "",
        "| workload | clusters | objects | wall s | s per 100 objects | controller peak RSS MiB | API server peak RSS "
        "MiB (min-max) | lab total RSS MiB | reads per cluster | writes per cluster | controller CPU s | lab CPU s "
        "| rerun s | teardown s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for r in rows:
        lab_cpu = sum(v for k, v in r["cpu"].items() if k != "controller") if r["cpu"] else nan
        lines.append(f"| `{r['key']}` | {r['clusters']} | {r['objects']:,} | {_fmt(r['wall_s'])} | "
                     f"{_fmt(r['s_per_100'], 2)} | {_fmt(r['controller_mib'], 0)} | "
                     f"{_fmt(r['apiserver_min_mib'], 0)}-{_fmt(r['apiserver_max_mib'], 0)} | "
                     f"{_fmt(r['lab_total_mib'], 0)} | {_fmt(r['reads_mean'], 0)} | {_fmt(r['writes_mean'], 0)} | "
                     f"{_fmt(r['cpu'].get('controller', nan))} | {_fmt(lab_cpu)} | "
                     f"{_fmt(r['rerun_s'])} | {_fmt(r['teardown_s'])} |")
    lines += ["", "What grows, row by row, and who used the CPU during the setup (the lab's processes of every "
              "cluster, the idle ones too):", ""]
    prev = None
    for r in rows:
        lines.append(f"- {scale_sentence(r, prev)} CPU: {dominant_sentence(r['cpu'], r['wall_s'], r['cores'])}.")
        prev = r
    last = rows[-1]
    if not math.isnan(last["combined_mib"]):
        lines += ["", f"Memory the lab needs ({last['lab_clusters']} clusters, during `{last['key']}`): "
                  f"**{last['lab_total_mib'] / 1024:.1f} GiB** for the lab's processes at their peak "
                  f"({last['lab_total_mib'] / max(last['lab_clusters'], 1):.0f} MiB per cluster), "
                  f"{last['combined_mib'] / 1024:.1f} GiB with the controller; "
                  f"host memory {data['host'].get('memory_gib', '?')} GiB."]
    lines += ["", "Per cluster, during (a)'s setup (peak VmRSS of each process, MiB; istiod: the validator of the "
              "seed-era clusters, which watches cluster1; requests: reads GET+LIST+WATCH / writes / total):", "",
              "| workload | cluster | " + " | ".join(COMPONENTS) + " | cluster total | reads | writes | total |",
              "|---|---|" + "---:|" * (len(COMPONENTS) + 4)]
    for r in rows:
        for cluster, per in r["per_cluster_mib"].items():
            cols = " | ".join(_fmt(per.get(c, float("nan")), 0) for c in COMPONENTS)
            lines.append(f"| `{r['key']}` | {cluster} | {cols} | {_fmt(per['total'], 0)} | "
                         f"{_fmt(r['reads'].get(cluster, float('nan')), 0)} | "
                         f"{_fmt(r['writes'].get(cluster, float('nan')), 0)} | "
                         f"{_fmt(r['requests'].get(cluster, float('nan')), 0)} |")
    lines.append("")
    return lines


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
        f"{' (--quick)' if data.get('quick') else ''} of the main workloads, contenders interleaved (a b c, a b c, "
        "...) per workload and repetition, each from the same clean state; figures are medians (min-max in "
        "parentheses); the scale rows once, with (a)",
        f"- lab: own state `{data['lab']['state']}` (address index base {data['lab']['index_base']}), clusters "
        f"{', '.join(data['lab']['clusters'])}: real kube-apiserver/etcd/controller-manager/scheduler per cluster, "
        "kwok nodes, emulated data plane stopped during the benchmark"
        + (f"; grown to {len(data['lab']['clusters'])} clusters for the scale rows"
           if data.get("scale") and data.get("lab_grown") else ""),
        f"- load average (1 min) at the start of the measured runs: {_load(data)} (other jobs share this machine: "
        "the spread across repetitions shows their effect)",
        "",
        "Contenders: " + "; ".join(f"{v['label']}" for v in contenders.values()) + ".",
        "",
        "## Targets for (a) (issue 10; reported, not asserted)",
        "",
        "| figure | what | target | measured | |",
        "|---|---|---|---:|---|",
    ]
    lines += [_target_line(row) for row in derived["targets"]]
    lines += [
        "",
        "## Setup (first run)",
        "",
        "API requests are counted by the API servers (`apiserver_request_total`, delta over the run, summed over "
        "the workload's clusters); the lab's own controllers' traffic is removed by dropping "
        "the resources only they use (leases, nodes, pods, events, endpoints, endpoint slices: no contender reads "
        "or writes them) and subtracting the idle rate of every other (verb, resource, code) measured "
        f"over {len(data.get('baselines', []))} idle window(s) of {data.get('idle_seconds', 0):.0f} s, times the "
        "run's duration. `disc.` = non-resource requests (discovery `/api`, `/apis`, `/openapi`, `/version`). "
        "Reads = GET+LIST+WATCH on resources. Writes = POST+PUT+PATCH+APPLY+DELETE on resources, failed ones "
        "included (APPLY is how the API server counts a server-side apply).",
        "",
        "| workload | contender | wall s | peak RSS MiB | objects created | disc. | GET | LIST | POST | PUT | PATCH "
        "| APPLY | DELETE | total | reads | writes | writes/object |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    columns = ("discovery", "GET", "LIST", "POST", "PUT", "PATCH", "APPLY", "DELETE", "total", "reads", "writes")
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
    main_keys = [w for w in data["workloads"] if _group(data, w) != "scale"]
    lines += ["", "## Derived", "", "| workload | (c)/(a) setup time | (b)/(a) setup time |", "|---|---:|---:|"]
    for wkey in main_keys:
        r = derived["ratios"][wkey]
        lines.append(f"| {data['workloads'][wkey]['title']} | {_fmt(r['c_over_a'], 2)} | {_fmt(r['b_over_a'], 2)} |")
    lines += [
        "",
        f"- (a) time(100 services) / time(1 service): **{_fmt(derived['a100_over_a1'], 2)}**; rerun / first run at "
        f"100 services: **{_fmt(derived['rerun_over_first_100'], 2)}**; teardown(100) / teardown(1): "
        f"**{_fmt(derived['teardown100_over_1'], 2)}** ({_fmt(derived['teardown100_s'])} s at 100 services)",
        f"- (a) reads during setup, 100 services / 1 service: **{_fmt(derived['reads_100_over_1'], 2)}**; GETs per "
        f"additional ServiceEntry: {_fmt(derived['gets_per_object_100'], 2)}",
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
    ]
    lines += _scale_section(data, derived)
    baseline = derived["baseline"]
    if baseline:
        lines.append("Idle baseline (controller-only resources excluded): "
                     f"{baseline.requests_per_second():.2f} requests/s, "
                     f"{baseline.writes_per_second():.3f} writes/s over all lab clusters.")
        lines.append("")
    if chart:
        lines += [f"![setup time vs number of services, and the scale rows]({chart})", ""]
    profile = data.get("profile") or {}
    if profile:
        lines += ["## Where (a) spends its time (one extra run with ansible.posix.profile_tasks)", "",
                  "Seconds per task as profile_tasks reports them (a task's time on its slowest host; hosts run in "
                  "parallel), not part of the figures above.", ""]
        for key, phases in profile.items():
            for name, prof in phases.items():
                lines.append(f"**{data['workloads'][key]['title']}, {name}**: {prof['seconds']:.1f} s wall, "
                             f"{prof['task_seconds']:.1f} s in {len(prof['tasks'])} tasks; most of it: "
                             f"{dominant_tasks(prof)}")
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


def plot(data: Dict[str, Any], cells: Dict[Tuple[str, str], Cell], path: Path,
         scale: Optional[List[Dict[str, Any]]] = None) -> Optional[str]:
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("[bench] matplotlib is not installed (.venv/bin/pip install matplotlib): no chart")
        return None
    if scale:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax2 = None
    colors = {"a": "tab:blue", "b": "tab:orange", "c": "tab:red"}
    main = [w for w in data["workloads"] if _group(data, w) != "scale"]
    for ckey, contender in data["contenders"].items():
        points = sorted((data["workloads"][w]["services"], median(cells[(w, ckey)].setup_s))
                        for w in main if w.startswith("2c-") and (w, ckey) in cells)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colors.get(ckey),
                    label=f"{contender['label']} (2 clusters)")
        for w in [w for w in main if "mesh" in w and (w, ckey) in cells]:
            ax.scatter([data["workloads"][w]["services"]], [median(cells[(w, ckey)].setup_s)], marker="s",
                       facecolors="none", edgecolors=colors.get(ckey), s=60,
                       label=f"{contender['label']} ({len(data['workloads'][w]['clusters'])}-cluster mesh)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("remote services")
    ax.set_ylabel("setup wall time, s (median)")
    ax.set_title(f"meshlink.multicluster setup vs alternatives ({data['host']['commit'][:8]})")
    ax.grid(True, which="both", alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=7)
    if ax2 is not None:
        xs = [r["clusters"] for r in scale]
        ax2.plot(xs, [r["wall_s"] for r in scale], marker="o", color="tab:blue", label="(a) setup wall s")
        for r in scale:
            ax2.annotate(f"{r['objects']:,} objects", (r["clusters"], r["wall_s"]), textcoords="offset points",
                         xytext=(4, 6), fontsize=7)
        ax2.set_xlabel("clusters (full mesh, 25 services exported by each)")
        ax2.set_ylabel("setup wall time, s")
        ax2.set_xticks(xs)
        ax2.grid(True, alpha=0.3)
        right = ax2.twinx()
        right.plot(xs, [r["apiserver_max_mib"] for r in scale], marker="^", color="tab:green", linestyle="--",
                   label="largest API server peak RSS, MiB")
        right.plot(xs, [r["controller_mib"] for r in scale], marker="v", color="tab:purple", linestyle=":",
                   label="controller peak RSS, MiB")
        right.set_ylabel("MiB")
        handles = ax2.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax2.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left")
        ax2.set_title("scale: (a) alone")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def render(data: Dict[str, Any], out: Path) -> int:
    cells, derived = compute(data)
    chart = plot(data, cells, out / "latest.png", derived["scale"])
    text = markdown(data, cells, derived, chart)
    (out / "latest.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"[bench] report: {out / 'latest.md'}" + (f", chart: {out / chart}" if chart else ""))
    print(summary_line(derived))
    return 0
