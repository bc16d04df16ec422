"""Benchmark: meshlink.multicluster's setup.yml against the seed's kubectl procedure and the
per-object kubernetes.core playbook users write today, on the benchmark's own lab; then the
scale study of setup.yml alone (full meshes of 2, 4 and 8 clusters, 25 services exported by each).

    .venv/bin/python benchmarks/run.py            # 3 repetitions of every workload, then the scale rows
    .venv/bin/python benchmarks/run.py --quick    # 1 repetition, 10-service workload with (a) only, scale rows
    .venv/bin/python benchmarks/run.py --no-scale # without the scale rows (the lab stays at 4 clusters)
    .venv/bin/python benchmarks/run.py --report-only   # re-render results/latest.md from latest.json

Writes benchmarks/results/latest.json (every raw figure), latest.md (the report) and
latest.png (time vs number of services, and the scale rows). The last line printed is the summary:
    summary: a100_over_a1=X b_over_a_100=X c_over_a_100=X rerun_over_first_100=X teardown100_over_1=X
             teardown100_s=X mesh4_over_2c10=X reads_100_over_1=X rerun_writes=N scale8_s=X   (one line)
See benchmarks/README.md for what is measured and how, and for run times.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from meshbench import contenders as contenders_mod  # noqa: E402
from meshbench import measure, report  # noqa: E402
from meshbench.lab import DEFAULT_INDEX_BASE, DEFAULT_STATE, KUBECTL_BIN, REPO, Lab  # noqa: E402
from meshbench.workloads import (CLIENT_NAMESPACE, SCALE, SOURCE_NAMESPACE, Workload, all_workloads,  # noqa: E402
                                 select)

RESULTS = Path(__file__).resolve().parent / "results"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def host_info() -> Dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    mem_kib = 0
    model = platform.processor()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name, cmd in (("ansible-core", [str(contenders_mod.BIN / "ansible"), "--version"]),
                      ("kubectl", [str(KUBECTL_BIN), "version", "--client", "-o", "json"])):
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        if name == "kubectl":
            try:
                versions[name] = json.loads(out)["clientVersion"]["gitVersion"]
            except (ValueError, KeyError):
                versions[name] = "?"
        else:
            versions[name] = out.splitlines()[0] if out else "?"
    try:
        manifest = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
            "site-packages" / "ansible_collections" / "kubernetes" / "core" / "MANIFEST.json"
        versions["kubernetes.core"] = json.loads(manifest.read_text())["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        versions["kubernetes.core"] = "?"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "plugins", "roles", "playbooks")
    return {"commit": git("rev-parse", "HEAD"), "commit_subject": git("log", "-1", "--format=%s"),
            "dirty": bool(dirty), "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1048576, 1),
            "cpu": model, "kernel": platform.release(), "python": platform.python_version(), **versions}


ELECTIONS: measure.ElectionWatch | None = None  # the lab istiods' election renewals, counted one by one


def phase(lab: Lab, workload: Workload, command: contenders_mod.Command) -> Dict[str, Any]:
    """One measured command: metrics scraped on the workload's clusters before and after."""
    cmd, env = command
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    before = measure.scrape_all(lab.kubectl_cmd, workload.clusters)
    t1 = time.monotonic()
    # the lab's processes (API servers, etcd, controllers, istiod) of every cluster, sampled with the contender
    result = measure.run_measured(cmd, env=env, cwd=REPO, watch=lab.processes())
    t2 = time.monotonic()
    after = measure.scrape_all(lab.kubectl_cmd, workload.clusters)
    t3 = time.monotonic()
    raw = {c: {"|".join(k): v for k, v in measure.delta(before[c], after[c]).items()} for c in workload.clusters}
    known = ELECTIONS.known((t0 + t1) / 2, (t2 + t3) / 2) if ELECTIONS else {}
    return {"rc": result.rc, "seconds": round(result.seconds, 3), "peak_rss_kib": result.peak_rss_kib,
            "peak_procs": result.peak_procs, "requests_raw": raw, "load1_before": load_before,
            "lab_known_requests": {c: v for c, v in known.items() if c in workload.clusters},
            "lab_rss_peak_kib": result.lab.nested(), "lab_rss_total_peak_kib": result.lab.total,
            "lab_rss_start_kib": result.lab.first_total or 0, "combined_peak_kib": result.combined_peak_kib,
            "cpu_s": result.cpu_s, "lab_cpu_s": result.lab_cpu_s, "cores": os.cpu_count(),
            "output_tail": result.output[-3000:] if result.rc else ""}


def check_setup(lab: Lab, workload: Workload) -> List[str]:
    """Problems with what a setup left (empty when every ServiceEntry is there, VIPs unique)."""
    problems = []
    entries = lab.service_entries(workload.clusters, CLIENT_NAMESPACE)
    want: Dict[str, set] = {}
    for pair in workload.pairs:
        want.setdefault(pair["consumer"], set()).add(f"{pair['name']}-{pair['namespace']}")
    for context, items in entries.items():
        names = {o["metadata"]["name"] for o in items}
        if names != want.get(context, set()):
            problems.append(f"{context}: {len(names)} ServiceEntries, want {len(want.get(context, set()))}")
        vips = [a for o in items for a in o["spec"].get("addresses") or []]
        if len(vips) != len(set(vips)):
            problems.append(f"{context}: duplicate VIPs")
        if any(not e.get("address") for o in items for e in o["spec"].get("endpoints") or []):
            problems.append(f"{context}: an endpoint without address")
    return problems


def one_run(lab: Lab, contender: contenders_mod.Contender, workload: Workload, rep: int) -> Dict[str, Any]:
    lab.reset(workload.clusters, [SOURCE_NAMESPACE, CLIENT_NAMESPACE])
    snap_before = lab.snapshot(workload.clusters)
    record: Dict[str, Any] = {"workload": workload.key, "contender": contender.key, "rep": rep}
    record["setup"] = phase(lab, workload, contender.setup(workload))
    created = {(c, k, ns, n) for (c, k, ns, n, _uid) in lab.snapshot(workload.clusters) - snap_before}
    record["objects_created"] = len(created)
    record["objects_created_by_kind"] = {}
    for _c, kind, _ns, _n in created:
        record["objects_created_by_kind"][kind] = record["objects_created_by_kind"].get(kind, 0) + 1
    record["setup_problems"] = check_setup(lab, workload)
    record["rerun"] = phase(lab, workload, contender.setup(workload))
    record["teardown"] = phase(lab, workload, contender.teardown(workload))
    left = {(c, k, ns, n) for (c, k, ns, n, _uid) in lab.snapshot(workload.clusters) - snap_before}
    record["left_after_teardown"] = sorted("/".join(x) for x in left)
    return record


def profile_collection(lab: Lab, workload: Workload, contender: contenders_mod.Contender) -> Dict[str, Any]:
    """(a) once more with ansible.posix.profile_tasks: seconds per task (not part of the figures)."""
    lab.reset(workload.clusters, [SOURCE_NAMESPACE, CLIENT_NAMESPACE])
    out: Dict[str, Any] = {}
    for name, command in (("setup", contender.setup(workload)), ("teardown", contender.teardown(workload))):
        cmd, env = command
        env = {**env, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
               "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "100"}
        result = measure.run_measured(cmd, env=env, cwd=REPO)
        tasks = measure.parse_profile_tasks(result.stdout)
        out[name] = {"seconds": round(result.seconds, 2), "rc": result.rc, "tasks": tasks,
                     "task_seconds": round(sum(t[1] for t in tasks), 2)}
    return out


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition, shorter idle baseline, the 10-service workload with (a) only")
    parser.add_argument("--reps", type=int, help="repetitions of the main workloads (default 3, --quick 1); "
                        "the scale rows run once")
    parser.add_argument("--workloads", help="comma-separated subset of " + ",".join(all_workloads())
                        + " (exactly these; --scale/--no-scale then do nothing)")
    parser.add_argument("--contenders", default="a,b,c", help="subset of a,b,c (default all; the scale rows "
                        "run (a) only)")
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True,
                        help="the scale rows 2c-mesh-25, 4c-mesh-25, 8c-mesh-25 with (a), once each, after the "
                        "main workloads; the lab grows to 8 clusters for them (default: on, --quick too)")
    parser.add_argument("--idle", type=float, help="idle baseline window in seconds (default 60, --quick 20)")
    parser.add_argument("--lab-state", default=os.environ.get("BENCH_LAB_STATE_DIR", str(DEFAULT_STATE)))
    parser.add_argument("--lab-index-base", type=int,
                        default=int(os.environ.get("BENCH_LAB_INDEX_BASE", DEFAULT_INDEX_BASE)))
    parser.add_argument("--skip-lab-up", action="store_true",
                        help="the lab is up already (its data plane is stopped; it is grown if it has too few "
                        "clusters)")
    parser.add_argument("--keep-lab", action="store_true", help="leave the benchmark's lab running at the end")
    parser.add_argument("--out", default=str(RESULTS), help="results directory")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile_tasks runs of (a)")
    parser.add_argument("--report-only", action="store_true", help="render the report from <out>/latest.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.report_only:
        data = json.loads((out / "latest.json").read_text(encoding="utf-8"))
        return report.render(data, out)

    reps = args.reps or (1 if args.quick else 3)
    idle = args.idle if args.idle is not None else (20.0 if args.quick else 60.0)
    every = all_workloads()
    try:
        plan = select(every, args.workloads.split(",") if args.workloads else None, args.contenders.split(","),
                      quick=args.quick, scale=args.scale)
    except ValueError as exc:
        parser.error(str(exc))
    if not plan:
        parser.error("nothing to run: no contender of --contenders runs on the chosen workloads")
    workloads = {k: every[k] for k, _c in plan}
    main_plan = [(k, c) for k, c in plan if every[k].group != SCALE]
    scale_plan = [(k, c) for k, c in plan if every[k].group == SCALE]
    # the lab starts with the main workloads' clusters and grows for the scale rows: the extra
    # clusters' idle controllers would otherwise take CPU from the main figures
    main_clusters = max([len(every[k].clusters) for k, _c in main_plan] or [0])
    scale_clusters = max([len(every[k].clusters) for k, _c in scale_plan] or [0])
    start_clusters = max(main_clusters or scale_clusters, 2)
    lab = Lab(Path(args.lab_state), args.lab_index_base, start_clusters)
    if not args.skip_lab_up:
        say(f"lab up: {lab.state} (index base {lab.index_base}, {len(lab.clusters)} clusters), data plane stopped")
        lab.up()
    else:
        running = lab.running_clusters()
        if running < start_clusters:
            say(f"lab up: {lab.state} has {running} clusters, {start_clusters} needed")
            lab.up()
        else:
            lab.clusters = [f"cluster{i}" for i in range(1, running + 1)]
            lab.stop_dataplane()

    work = Path(tempfile.mkdtemp(prefix="meshlink-bench-"))
    contender_keys = {c for _k, cs in plan for c in cs}
    chosen = {c.key: c(lab, work) for c in contenders_mod.ALL if c.key in contender_keys}
    data: Dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": host_info(), "reps": reps, "quick": args.quick, "idle_seconds": idle, "scale": bool(scale_plan),
        "lab": {"state": str(lab.state), "index_base": lab.index_base, "clusters": list(lab.clusters)},
        "workloads": {k: {"title": w.title, "clusters": w.clusters, "services": w.n_services,
                          "objects": w.n_objects, "group": w.group, "contenders": dict(plan)[k],
                          "forks": contenders_mod.forks(w)} for k, w in workloads.items()},
        "contenders": {c.key: {"name": c.name, "label": c.label} for c in chosen.values()},
        "runs": [], "baselines": [],
    }

    def reset_all(keys: List[str]) -> None:
        for key in keys:  # namespaces exist before the idle window (their creation is not idle traffic)
            lab.reset(every[key].clusters, [SOURCE_NAMESPACE, CLIENT_NAMESPACE])

    global ELECTIONS  # pylint: disable=global-statement
    # every cluster with an istiod (the validator's: cluster1); the watch's own LIST before the first window
    ELECTIONS = measure.ElectionWatch(lab.kubectl_cmd, [c for c, procs in lab.processes().items()
                                                        if c in lab.clusters and any(p.startswith("istiod")
                                                                                     for p in procs)])
    atexit.register(ELECTIONS.close)  # its kubectl processes end with the benchmark, however it ends
    time.sleep(2)

    def baseline() -> None:
        say(f"idle baseline: {idle:.0f}s on {', '.join(lab.clusters)}")
        b = measure.Baseline.measure(lab.kubectl_cmd, lab.clusters, idle, ELECTIONS)
        rates = {c: {"|".join(k): v for k, v in r.items()} for c, r in b.rates.items()}
        data["baselines"].append({"seconds": b.seconds, "rates": rates})
        say(f"  idle: {b.requests_per_second():.2f} requests/s, {b.writes_per_second():.3f} writes/s "
            f"(controller-only resources excluded) over all clusters")

    total = reps * sum(len(c) for _k, c in main_plan) + sum(len(c) for _k, c in scale_plan)
    n = [0]

    def run(key: str, ckey: str, rep: int) -> None:
        n[0] += 1
        workload = workloads[key]
        say(f"[{n[0]}/{total}] rep {rep} {workload.key} {chosen[ckey].label}")
        record = one_run(lab, chosen[ckey], workload, rep)
        data["runs"].append(record)
        flags = []
        for name in ("setup", "rerun", "teardown"):
            if record[name]["rc"] != 0:
                flags.append(f"{name} rc={record[name]['rc']}")
        flags += record["setup_problems"]
        if record["left_after_teardown"]:
            flags.append(f"{len(record['left_after_teardown'])} objects left after teardown")
        api = [v.get("kube-apiserver", 0) for v in record["setup"]["lab_rss_peak_kib"].values()
               if v.get("kube-apiserver")]
        say(f"  setup {record['setup']['seconds']:.1f}s rerun {record['rerun']['seconds']:.1f}s "
            f"teardown {record['teardown']['seconds']:.1f}s, peak RSS "
            f"{record['setup']['peak_rss_kib'] / 1024:.0f} MiB, {record['objects_created']} objects"
            + (f"; API servers peak max {max(api) / 1024:.0f} MiB, lab "
               f"{record['setup']['lab_rss_total_peak_kib'] / 1024:.0f} MiB" if api else "")
            + (f"  !! {'; '.join(flags)}" if flags else ""))
        (out / "latest.json").write_text(json.dumps(data, indent=1), encoding="utf-8")

    if main_plan:
        reset_all([k for k, _c in main_plan])
        baseline()
        for rep in range(1, reps + 1):
            for key, ckeys in main_plan:
                for ckey in ckeys:
                    run(key, ckey, rep)
    if scale_plan:
        if scale_clusters > len(lab.clusters):
            say(f"lab grows to {scale_clusters} clusters for the scale rows (data plane stopped again)")
            lab.grow(scale_clusters)
            data["lab"]["clusters"] = list(lab.clusters)
            data["lab_grown"] = True
        reset_all([k for k, _c in scale_plan])
        baseline()  # also lets the new clusters' controllers settle
        for key, ckeys in scale_plan:
            for ckey in ckeys:
                run(key, ckey, 1)
    baseline()
    collection = chosen.get("a")
    if collection and not args.no_profile:
        data["profile"] = {}
        for key in ("2c-1", "2c-100", "8c-mesh-25"):
            if key in workloads and "a" in dict(plan)[key]:
                say(f"profile of (a) on {key} (ansible.posix.profile_tasks, not part of the figures)")
                data["profile"][key] = profile_collection(lab, workloads[key], collection)
    ELECTIONS.close()
    data["lab_known_requests_total"] = measure.count_events(ELECTIONS.events, 0, float("inf"))
    data["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    (out / "latest.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    if not (args.keep_lab or args.skip_lab_up):
        say(f"lab down: {lab.state}")
        lab.down()
    return report.render(data, out)


if __name__ == "__main__":
    sys.exit(main())
