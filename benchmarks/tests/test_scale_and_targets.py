"""Unit tests of the scale study and the targets: workload selection, the lab's processes, RSS and
CPU aggregation, the lab's known requests, the targets' evaluation, the scale table and its
sentences, the summary line. No lab needed."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshbench import contenders, measure, report  # noqa: E402
from meshbench.lab import lab_processes  # noqa: E402
from meshbench.workloads import MAIN, SCALE, all_workloads, full_mesh, select, two_clusters  # noqa: E402

NAN = float("nan")


# ------------------------------------------------------------------ workloads and selection

@pytest.mark.parametrize("clusters,objects", [(2, 50), (4, 300), (8, 1400)])
def test_scale_workloads(clusters, objects):
    workload = all_workloads()[f"{clusters}c-mesh-25"]
    assert workload.group == SCALE and workload.contenders == ("a",)
    assert workload.n_objects == objects == clusters * 25 * (clusters - 1)
    assert workload.n_services == clusters * 25
    assert workload.clusters == [f"cluster{i}" for i in range(1, clusters + 1)]


MAIN_KEYS = ["2c-1", "2c-10", "2c-100", "4c-mesh-10"]
SCALE_KEYS = ["2c-mesh-25", "4c-mesh-25", "8c-mesh-25"]


@pytest.mark.parametrize("names,contenders_,quick,scale,expected", [
    # default: every main workload with every contender, then the scale rows with (a)
    (None, "abc", False, True, [(k, list("abc")) for k in MAIN_KEYS] + [(k, ["a"]) for k in SCALE_KEYS]),
    (None, "abc", False, False, [(k, list("abc")) for k in MAIN_KEYS]),
    # --quick: the 10-service workload with (a) only (the mesh ratio's denominator), scale rows included
    (None, "abc", True, True, [("2c-1", list("abc")), ("2c-10", ["a"]), ("2c-100", list("abc")),
                               ("4c-mesh-10", list("abc"))] + [(k, ["a"]) for k in SCALE_KEYS]),
    # no (a): the scale rows have no contender left and are dropped
    (None, "bc", False, True, [(k, list("bc")) for k in MAIN_KEYS]),
    (None, "bc", True, True, [("2c-1", list("bc")), ("2c-100", list("bc")), ("4c-mesh-10", list("bc"))]),
    # --workloads wins over --scale/--no-scale and --quick; the scale rows still run (a) only
    (["8c-mesh-25", "2c-1"], "abc", True, False, [("2c-1", list("abc")), ("8c-mesh-25", ["a"])]),
    (["2c-10"], "ab", True, True, [("2c-10", list("ab"))]),
])
def test_select(names, contenders_, quick, scale, expected):
    assert select(all_workloads(), names, list(contenders_), quick=quick, scale=scale) == expected


def test_select_unknown_workload():
    with pytest.raises(ValueError, match="unknown workloads"):
        select(all_workloads(), ["2c-7"], ["a"])


@pytest.mark.parametrize("workload,forks", [(two_clusters(1), 5), (full_mesh(4, 10), 5), (full_mesh(8, 25), 8)])
def test_forks_follow_the_docs(workload, forks):
    assert contenders.forks(workload) == forks


def test_main_group_default():
    assert two_clusters(10).group == MAIN and two_clusters(10).contenders is None


# ------------------------------------------------------------------ the lab's processes

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_lab_processes_from_state_dir(tmp_path):
    for n, cluster in enumerate(("cluster1", "cluster2"), start=1):
        for i, comp in enumerate(("etcd", "kube-apiserver", "kwok-controller")):
            _write(tmp_path / "kwok" / "clusters" / cluster / "pids" / f"{comp}.pid", str(100 * n + i))
    _write(tmp_path / "kwok" / "clusters" / "cluster2" / "pids" / "kube-scheduler.pid", "garbage")
    _write(tmp_path / "istiod" / "validator.pid", "900")
    _write(tmp_path / "istiod" / "validator.json", json.dumps({"cluster": "cluster1", "pid": 900}))
    _write(tmp_path / "istiod" / "cluster2.pid", "901")
    _write(tmp_path / "istiod" / "cluster2.json", json.dumps({"cluster": "cluster2"}))
    _write(tmp_path / "istiod" / "orphan.pid", "902")  # no info file: counted with the lab
    _write(tmp_path / "dataplane.pid", "950\n")
    assert lab_processes(tmp_path) == {
        "cluster1": {"etcd": 100, "kube-apiserver": 101, "kwok-controller": 102, "istiod-validator": 900},
        "cluster2": {"etcd": 200, "kube-apiserver": 201, "kwok-controller": 202, "istiod": 901},
        "lab": {"istiod-orphan": 902, "dataplane": 950},
    }


def test_lab_processes_of_no_lab(tmp_path):
    assert lab_processes(tmp_path / "absent") == {}


# ------------------------------------------------------------------ RSS and CPU

@pytest.mark.parametrize("samples,per,total,first", [
    ([{("c1", "api"): 10, ("c1", "etcd"): 5}], {("c1", "api"): 10, ("c1", "etcd"): 5}, 15, 15),
    # each process's own peak; the total is the largest sum at one instant, not the sum of peaks
    ([{("c1", "api"): 10, ("c2", "api"): 1}, {("c1", "api"): 2, ("c2", "api"): 12}],
     {("c1", "api"): 10, ("c2", "api"): 12}, 14, 11),
    # a process gone (0 KiB) keeps its peak
    ([{("c1", "api"): 7}, {("c1", "api"): 0}], {("c1", "api"): 7}, 7, 7),
])
def test_rss_peaks(samples, per, total, first):
    peaks = measure.RssPeaks()
    for sample in samples:
        peaks.add(sample)
    assert peaks.per == per and peaks.total == total and peaks.first_total == first
    assert peaks.samples == len(samples)
    nested = peaks.nested()
    assert sum(v for comps in nested.values() for v in comps.values()) == sum(per.values())


def test_run_measured_samples_watched_processes_and_cpu():
    watch = {"here": {"bench": os.getpid()}, "gone": {"x": 2 ** 22 + 12345}}
    result = measure.run_measured([sys.executable, "-c", "sum(range(3 * 10 ** 7))"], watch=watch)
    assert result.rc == 0
    assert result.lab.per[("here", "bench")] > 1000 and result.lab.per.get(("gone", "x"), 0) == 0
    assert result.combined_peak_kib >= result.lab.total
    assert result.cpu_s > 0.1  # the child's CPU, reaped
    assert set(result.lab_cpu_s) == {"here", "gone"} and result.lab_cpu_s["gone"]["x"] == 0


@pytest.mark.parametrize("before,after,expected", [
    ({("c1", "api"): 1.0}, {("c1", "api"): 3.5}, {"c1": {"api": 2.5}}),
    ({}, {("c1", "api"): 2.0}, {"c1": {"api": 2.0}}),  # not running before
    ({("c1", "api"): 9.0}, {("c1", "api"): 1.5}, {"c1": {"api": 1.5}}),  # restarted in between
])
def test_cpu_delta(before, after, expected):
    assert measure.cpu_delta(before, after) == expected


def test_cpu_seconds_of_self_and_of_nothing():
    assert measure.cpu_seconds(os.getpid()) > 0
    assert measure.cpu_seconds(2 ** 22 + 12345) == 0.0


@pytest.mark.parametrize("samples,expected", [
    ([{"c1": {"api": 10}}, {"c1": {"api": 30}}, {"c1": {"api": 20}}], {"c1": {"api": 20}}),
    ([{"c1": {"api": 10}}, {"c1": {"api": 30, "etcd": 4}}], {"c1": {"api": 20, "etcd": 4}}),  # etcd once
    ([{}, {}], {}),
])
def test_median_nested(samples, expected):
    assert report.median_nested(samples) == expected


def test_cluster_rss_mib_columns_and_totals():
    peaks = {"cluster1": {"kube-apiserver": 1024 * 400, "etcd": 1024 * 50, "istiod-validator": 1024 * 100},
             "cluster2": {"kube-apiserver": 1024 * 300}, "lab": {"dataplane": 1024 * 80}}
    out = report.cluster_rss_mib(peaks)
    assert list(out) == ["cluster1", "cluster2"]  # the lab-wide data plane is no cluster's
    assert out["cluster1"] == {"kube-apiserver": 400, "etcd": 50, "istiod": 100, "total": 550}
    assert report.cluster_rss_mib(peaks, ["cluster2", "cluster3"]) == {
        "cluster2": {"kube-apiserver": 300, "total": 300}, "cluster3": {"total": 0}}


@pytest.mark.parametrize("name,column", [("istiod-validator", "istiod"), ("istiod", "istiod"),
                                         ("kube-apiserver", "kube-apiserver"), ("etcd", "etcd")])
def test_component_of(name, column):
    assert report.component_of(name) == column


def test_cpu_split_and_dominant_sentence():
    split = report.cpu_split(60.0, {"cluster1": {"kube-apiserver": 10.0, "istiod-validator": 20.0, "etcd": 1.0},
                                    "cluster2": {"kube-apiserver": 9.0, "etcd": 0.5}})
    assert split == {"controller": 60.0, "kube-apiserver": 19.0, "istiod": 20.0, "etcd": 1.5}
    text = report.dominant_sentence(split, 60.0, 2)
    assert text.startswith("100.5 CPU-s: the controller (ansible-playbook and its forks) 60.0 s (60%), istiod")
    assert "etcd" not in text  # under 5% of the CPU
    assert text.endswith("84% of 2 cores over 60.0 s")
    assert report.dominant_sentence({}, 10.0, 2) == "-"


# ------------------------------------------------------------------ the lab's own requests

@pytest.mark.parametrize("start,end,expected", [
    (0, 10, {"c1": {"GET||configmaps||200": 2, "PUT||configmaps||200": 2}, "c2": {"PUT||configmaps||200": 1}}),
    (4, 6, {"c1": {"GET||configmaps||200": 1, "PUT||configmaps||200": 1}}),
    (6, 7, {}),
])
def test_count_events(start, end, expected):
    events = [(1.0, "c1", "GET||configmaps||200"), (1.0, "c1", "PUT||configmaps||200"),
              (5.0, "c1", "GET||configmaps||200"), (5.0, "c1", "PUT||configmaps||200"),
              (9.0, "c2", "PUT||configmaps||200")]
    assert measure.count_events(events, start, end) == expected


def test_subtract_known_clamps_at_zero():
    put, get = ("PUT", "", "configmaps", "", "200"), ("GET", "", "configmaps", "", "200")
    raw = {"c1": {put: 3.0, get: 1.0}, "c2": {put: 1.0}}
    known = {"c1": {"PUT||configmaps||200": 2, "GET||configmaps||200": 2}}
    assert measure.subtract_known(raw, known) == {"c1": {put: 1.0}, "c2": {put: 1.0}}
    assert measure.subtract_known(raw, None) == raw


def test_attributed_drops_watches():
    watch = ("WATCH", "", "secrets", "", "200")
    lst = ("LIST", "", "secrets", "", "200")
    assert measure.attributed({"c1": {}}, {"c1": {watch: 5.0, lst: 1.0}}, 10.0, None) == {lst: 1}


def test_phase_requests_take_the_known_requests_out():
    phase = {"seconds": 3.0, "requests_raw": {"cluster1": {"PUT||configmaps||200": 2, "GET||configmaps||200": 2,
                                                           "POST||configmaps||201": 1}},
             "lab_known_requests": {"cluster1": {"PUT||configmaps||200": 2, "GET||configmaps||200": 2}}}
    cols = report.requests(phase, None)
    assert cols["writes"] == 1 and cols["reads"] == 0 and cols["POST"] == 1
    assert report.requests_per_cluster(phase, None)["cluster1"]["writes"] == 1


def test_combined_baseline_per_cluster_windows():
    # cluster5 exists in the second window only (the lab grew): its rate is that window's, not diluted
    data = {"baselines": [{"seconds": 60, "rates": {"cluster1": {"GET||configmaps||200": 1.0}}},
                          {"seconds": 20, "rates": {"cluster1": {"GET||configmaps||200": 3.0},
                                                    "cluster5": {"GET||configmaps||200": 2.0}}}]}
    baseline = report.combined_baseline(data)
    key = ("GET", "", "configmaps", "", "200")
    assert math.isclose(baseline.rates["cluster1"][key], (60 + 60) / 80)
    assert math.isclose(baseline.rates["cluster5"][key], 2.0)


PROFILE = """\
PLAY RECAP *********************************************************************
cluster1                   : ok=6    changed=1    unreachable=0    failed=0    skipped=5

TASKS RECAP ********************************************************************
Thursday 03 December 2026  21:41:01 +0000 (0:00:01.107)       0:01:13.822 *****
===============================================================================
meshlink.multicluster.mesh : Write what this cluster should hold (VIPs, objects, sample apps; prune) -- 33.62s
meshlink.multicluster.mesh : Plan the mesh (once per run, on the controller) --- 9.61s
meshlink.multicluster.mesh : Show the mesh ------------------------------ 0.84s

PLAYBOOK RECAP *****************************************************************
Playbook run took 0 days, 0 hours, 1 minutes, 13 seconds
"""


def test_parse_profile_tasks_long_names_have_two_dashes():
    tasks = measure.parse_profile_tasks("TASK [x] --- 5.00s\n" + PROFILE)  # nothing before the recap counts
    assert tasks == [["meshlink.multicluster.mesh : Write what this cluster should hold (VIPs, objects, sample "
                      "apps; prune)", 33.62],
                     ["meshlink.multicluster.mesh : Plan the mesh (once per run, on the controller)", 9.61],
                     ["meshlink.multicluster.mesh : Show the mesh", 0.84]]
    assert measure.parse_profile_tasks("no recap") == []


def test_dominant_tasks():
    prof = {"seconds": 80.0, "tasks": [["a", 8.0], ["b", 40.0], ["c", 1.0], ["d", 0.5]]}
    assert report.dominant_tasks(prof, top=2) == "b 40.0 s (50% of the wall time); a 8.0 s (10% of the wall time)"
    assert report.dominant_tasks({"seconds": 1.0, "tasks": []}) == "-"


# ------------------------------------------------------------------ targets

@pytest.mark.parametrize("op,value,target,met", [
    ("<=", 1.3, 1.3, True), ("<=", 1.304, 1.3, True), ("<=", 1.306, 1.3, False),  # judged as shown (2 decimals)
    (">=", 3.0, 3.0, True), (">=", 2.99, 3.0, False),
    ("<", 5.99, 6.0, True), ("<", 6.0, 6.0, False),
    ("==", 0, 0, True), ("==", 1, 0, False),
    ("<=", NAN, 1.0, None), ("==", None, 0, None),
])
def test_meets(op, value, target, met):
    assert report.meets(op, value, target) is met


def test_evaluate_targets_covers_every_target_of_the_issue():
    derived = {"b_over_a_100": 3.5, "c_over_a_100": 9.0, "a100_over_a1": 1.2, "rerun_over_first_100": 0.4,
               "teardown100_over_1": 1.6, "teardown100_s": 5.0, "reads_100_over_1": 1.0, "gets_per_object_100": 0.0,
               "writes_per_object": 1.0, "rerun_writes": 0, "mesh4_over_2c10": NAN}
    rows = {r["name"]: r for r in report.evaluate_targets(derived)}
    assert set(rows) == set(derived)
    assert [n for n, r in rows.items() if r["met"] is False] == ["c_over_a_100", "teardown100_over_1"]
    assert rows["mesh4_over_2c10"]["met"] is None
    assert report._target_line(rows["c_over_a_100"]).endswith("| >= 10 | 9.00 | **not met** |")
    assert report._target_line(rows["mesh4_over_2c10"]).endswith("| - | not measured |")


def test_summary_line_order_and_nan():
    derived = {"a100_over_a1": 1.234, "b_over_a_100": 3.0, "c_over_a_100": NAN, "rerun_writes": 0,
               "scale8_s": 71.3}
    assert report.summary_line(derived) == (
        "summary: a100_over_a1=1.23 b_over_a_100=3.00 c_over_a_100=nan rerun_over_first_100=nan "
        "teardown100_over_1=nan teardown100_s=nan mesh4_over_2c10=nan reads_100_over_1=nan rerun_writes=0 "
        "scale8_s=71.30")


# ------------------------------------------------------------------ the scale table, end to end

def _phase(seconds, clusters, writes_per_cluster, reads_per_cluster, api_mib, cpu_s=10.0):
    raw = {c: {"APPLY|networking.istio.io|serviceentries||201": writes_per_cluster,
               "LIST|networking.istio.io|serviceentries||200": reads_per_cluster,
               "WATCH||secrets||200": 3} for c in clusters}
    peaks = {c: {"kube-apiserver": int(api_mib * 1024) + i * 1024, "etcd": 60 * 1024}
             for i, c in enumerate(clusters)}
    peaks["cluster1"]["istiod-validator"] = 120 * 1024
    return {"rc": 0, "seconds": seconds, "peak_rss_kib": int(100 * len(clusters) * 1024), "peak_procs": 9,
            "requests_raw": raw, "load1_before": 1.0, "output_tail": "", "lab_rss_peak_kib": peaks,
            "lab_rss_total_peak_kib": 6000 * 1024, "lab_rss_start_kib": 5900 * 1024,
            "combined_peak_kib": (6000 + 100 * len(clusters)) * 1024, "cpu_s": cpu_s,
            "lab_cpu_s": {c: {"kube-apiserver": 2.0, "etcd": 0.5} for c in clusters}, "cores": 2}


def _scale_data(walls=(8.0, 13.0, 70.0)):
    runs, workloads = [], {}
    for wall, n in zip(walls, (2, 4, 8)):
        w = all_workloads()[f"{n}c-mesh-25"]
        per = 25 * (n - 1)
        workloads[w.key] = {"title": w.title, "clusters": w.clusters, "services": w.n_services,
                            "objects": w.n_objects, "group": w.group, "contenders": ["a"], "forks": max(5, n)}
        runs.append({"workload": w.key, "contender": "a", "rep": 1,
                     "setup": _phase(wall, w.clusters, per + 1, 8, 430 + n, cpu_s=wall),
                     "rerun": _phase(wall / 2, w.clusters, 0, 8, 430),
                     "teardown": _phase(wall / 3, w.clusters, per + 1, 8, 430),
                     "objects_created": w.n_objects + n, "objects_created_by_kind": {}, "setup_problems": [],
                     "left_after_teardown": []})
    return {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T01:00:00+00:00", "reps": 1,
            "quick": True, "idle_seconds": 20, "scale": True,
            "host": {"commit": "0123456789abcdef", "commit_subject": "test", "dirty": False, "cores": 2,
                     "memory_gib": 24, "cpu": "cpu", "kernel": "6", "python": "3.11"},
            "lab": {"state": "/tmp/x", "index_base": 20, "clusters": [f"cluster{i}" for i in range(1, 9)]},
            "workloads": workloads, "contenders": {"a": {"name": "collection", "label": "(a)"}},
            "runs": runs, "baselines": [],
            "profile": {"8c-mesh-25": {"setup": {"seconds": 75.0, "rc": 0, "task_seconds": 70.0,
                                                 "tasks": [["Write what this cluster should hold", 35.0],
                                                           ["Inspect this cluster", 16.0]]}}}}


def test_scale_rows_from_runs():
    cells, derived = report.compute(_scale_data())
    rows = derived["scale"]
    assert [r["clusters"] for r in rows] == [2, 4, 8]
    r8 = rows[-1]
    assert r8["objects"] == 1400 and r8["wall_s"] == 70.0 and math.isclose(r8["s_per_100"], 5.0)
    assert r8["apiserver_mib"]["cluster1"] == 438 and r8["apiserver_mib"]["cluster8"] == 445
    assert (r8["apiserver_min_mib"], r8["apiserver_max_mib"]) == (438, 445)
    assert r8["per_cluster_mib"]["cluster1"]["istiod"] == 120
    assert r8["reads"] == {f"cluster{i}": 8 for i in range(1, 9)}  # the WATCHes are dropped
    assert r8["writes_mean"] == 176 and r8["controller_mib"] == 800
    assert r8["lab_total_mib"] == 6000 and r8["combined_mib"] == 6800
    assert r8["cpu"] == {"controller": 70.0, "kube-apiserver": 16.0, "etcd": 4.0}
    assert derived["scale8_s"] == 70.0
    assert cells[("8c-mesh-25", "a")].per_cluster("writes")["cluster8"] == 176


@pytest.mark.parametrize("walls,how", [
    ((8.0, 13.0, 70.0), "in proportion to the objects"),  # x4.67 objects, x5.4 time: k = 1.09
    ((8.0, 13.0, 14.0), "flat"),
    ((8.0, 13.0, 30.0), "slower than the objects"),
    ((8.0, 13.0, 200.0), "faster than the objects"),
])
def test_scale_sentence_says_how_time_grows(walls, how):
    _cells, derived = report.compute(_scale_data(walls))
    rows = derived["scale"]
    first = report.scale_sentence(rows[0], None)
    assert first.startswith("2 clusters, 50 objects: 8.0 s (16.00 s per 100 objects)") and "From" not in first
    last = report.scale_sentence(rows[2], rows[1])
    assert f"wall time x{walls[2] / walls[1]:.2f} ({how})" in last
    assert "reads per cluster x1.00 (flat)" in last
    assert "1.01 per ServiceEntry a cluster holds: 175" in last


def test_render_with_scale_rows(tmp_path, capsys):
    assert report.render(_scale_data(), tmp_path) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("summary: a100_over_a1=nan") and out[-1].endswith("scale8_s=70.00")
    text = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "## Scale: full meshes of 2, 4 and 8 clusters" in text
    assert "| `8c-mesh-25` | 8 | 1,400 | 70.0 | 5.00 | 800 | 438-445 | 6000 | 8 | 176 | 70.0 | 20.0 |" in text
    assert "Memory the lab needs (8 clusters, during `8c-mesh-25`): **5.9 GiB**" in text
    assert "| `8c-mesh-25` | cluster1 | 438 | 60 | - | - | - | 120 | 618 | 8 | 176 | 184 |" in text
    assert "most of it: Write what this cluster should hold 35.0 s (47% of the wall time)" in text
    assert "| mesh4_over_2c10 |" in text and "not measured" in text
    assert (tmp_path / "latest.png").stat().st_size > 1000
