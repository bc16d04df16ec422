"""Unit tests of the benchmark's pure logic: metrics parsing, idle subtraction, verb columns,
workloads, the report's derived figures and its summary line. No lab needed."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshbench import measure, report  # noqa: E402
from meshbench.workloads import all_workloads, full_mesh, two_clusters  # noqa: E402

METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="networking.istio.io",resource="serviceentries",scope="namespace",subresource="",verb="LIST",version="v1alpha3"} 4
apiserver_request_total{code="201",component="apiserver",dry_run="",group="networking.istio.io",resource="serviceentries",scope="resource",subresource="",verb="APPLY",version="v1alpha3"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="All",group="networking.istio.io",resource="serviceentries",scope="resource",subresource="",verb="APPLY",version="v1alpha3"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/apis",verb="GET",version=""} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 90
apiserver_request_total{code="415",component="apiserver",dry_run="",group="networking.istio.io",resource="serviceentries",scope="resource",subresource="",verb="PATCH",version="v1alpha3"} 1
apiserver_request_duration_seconds_count{verb="GET"} 12
"""


def test_parse_metrics_keys_and_dry_run():
    counts = measure.parse_metrics(METRICS)
    assert counts[("LIST", "networking.istio.io", "serviceentries", "", "200")] == 4
    assert counts[("APPLY", "networking.istio.io", "serviceentries", "", "201")] == 7
    # a server-side dry run is counted apart: it writes nothing
    assert counts[("APPLY(dryRun)", "networking.istio.io", "serviceentries", "", "200")] == 2
    assert ("GET", "", "", "/apis", "200") in counts
    assert len(counts) == 6  # the duration histogram is not a request counter


def test_delta_keeps_only_increases():
    before = {("GET", "", "a", "", "200"): 5.0, ("GET", "", "b", "", "200"): 2.0}
    after = {("GET", "", "a", "", "200"): 8.0, ("GET", "", "b", "", "200"): 2.0, ("PUT", "", "c", "", "200"): 1.0}
    assert measure.delta(before, after) == {("GET", "", "a", "", "200"): 3.0, ("PUT", "", "c", "", "200"): 1.0}


def test_attributed_drops_controller_resources_and_subtracts_idle_rate():
    se_get = ("GET", "networking.istio.io", "serviceentries", "", "200")
    cm_put = ("PUT", "", "configmaps", "", "200")
    lease = ("PUT", "coordination.k8s.io", "leases", "", "200")
    before = {"c1": {se_get: 0.0, cm_put: 0.0, lease: 0.0}}
    after = {"c1": {se_get: 10.0, cm_put: 3.0, lease: 50.0}}
    baseline = measure.Baseline({"c1": {cm_put: 0.1}}, 60.0)
    got = measure.attributed(before, after, 10.0, baseline)
    # leases dropped; configmap PUTs: 3 minus 0.1/s x 10 s of idle traffic
    assert got == {se_get: 10, cm_put: 2}
    assert measure.attributed(before, after, 100.0, baseline) == {se_get: 10}  # clamped at 0, not negative


def test_by_verb_columns_writes_and_errors():
    counts = {("GET", "", "", "/apis", "200"): 3, ("LIST", "networking.istio.io", "serviceentries", "", "200"): 2,
              ("APPLY", "networking.istio.io", "serviceentries", "", "201"): 5,
              ("PATCH", "networking.istio.io", "serviceentries", "", "415"): 1,
              ("APPLY(dryRun)", "networking.istio.io", "serviceentries", "", "200"): 4,
              ("DELETE", "", "configmaps", "", "200"): 1}
    cols = measure.by_verb(counts)
    assert cols["discovery"] == 3 and cols["LIST"] == 2 and cols["APPLY"] == 5 and cols["PATCH"] == 1
    assert cols["other"] == 4  # dry runs: neither a write nor one of the columns
    assert cols["writes"] == 5 + 1 + 1  # the failed (415) PATCH counts: the client sent it
    assert cols["errors"] == 1
    assert cols["total"] == sum(counts.values())


def test_tree_rss_counts_children():
    rss, procs = measure.tree_rss_kib(os.getpid())
    assert rss > 1000 and procs >= 1
    result = measure.run_measured([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(0.5)"])
    assert result.rc == 0 and result.seconds >= 0.5
    assert result.peak_rss_kib >= 64 * 1024  # the 64 MiB buffer of the child


def test_run_measured_reports_failure_and_output():
    result = measure.run_measured(["bash", "-c", "echo out; echo err >&2; exit 3"])
    assert result.rc == 3 and "out" in result.stdout and "err" in result.stderr


@pytest.mark.parametrize("count", [1, 10, 100])
def test_two_cluster_workload(count):
    workload = two_clusters(count)
    assert workload.clusters == ["cluster1", "cluster2"]
    assert workload.n_services == count and workload.n_objects == count
    assert {p["consumer"] for p in workload.pairs} == {"cluster1"}
    assert len(workload.pairs_tsv().splitlines()) == count


def test_full_mesh_workload():
    workload = full_mesh(4, 10)
    assert workload.n_services == 40 and workload.n_objects == 120
    for pair in workload.pairs:
        assert pair["consumer"] != pair["cluster"]
    names = [s["name"] for s in workload.services]
    assert len(names) == len(set(names))
    assert set(all_workloads()) == {"2c-1", "2c-10", "2c-100", "4c-mesh-10", "2c-mesh-25", "4c-mesh-25",
                                    "8c-mesh-25"}


def _phase(seconds, writes=0, rc=0):
    raw = {"cluster1": {"APPLY|networking.istio.io|serviceentries||201": writes}} if writes else {"cluster1": {}}
    return {"rc": rc, "seconds": seconds, "peak_rss_kib": 204800, "peak_procs": 3, "requests_raw": raw,
            "load1_before": 0.5, "output_tail": ""}


def _data(times, rerun_writes=0):
    runs = []
    for (wkey, ckey), values in times.items():
        for rep, value in enumerate(values, start=1):
            objects = int(wkey.split("-")[-1])
            runs.append({"workload": wkey, "contender": ckey, "rep": rep, "setup": _phase(value, objects),
                         "rerun": _phase(value, rerun_writes if ckey == "a" else 0),
                         "teardown": _phase(value / 2, objects), "objects_created": objects,
                         "objects_created_by_kind": {}, "setup_problems": [], "left_after_teardown": []})
    workloads = {k: {"title": w.title, "clusters": w.clusters, "services": w.n_services, "objects": w.n_objects}
                 for k, w in all_workloads().items() if k in {w for w, _c in times}}
    return {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T01:00:00+00:00", "reps": 3,
            "quick": False, "idle_seconds": 60,
            "host": {"commit": "0123456789abcdef", "commit_subject": "test", "dirty": False, "cores": 2,
                     "memory_gib": 24, "cpu": "cpu", "kernel": "6", "python": "3.11"},
            "lab": {"state": "/tmp/x", "index_base": 20, "clusters": ["cluster1", "cluster2"]},
            "workloads": workloads,
            "contenders": {"a": {"name": "collection", "label": "(a)"}, "b": {"name": "seed", "label": "(b)"},
                           "c": {"name": "k8s", "label": "(c)"}},
            "runs": runs, "baselines": []}


def test_report_medians_ratios_and_summary(tmp_path, capsys):
    data = _data({("2c-1", "a"): [10, 12, 11], ("2c-1", "b"): [1, 1, 1], ("2c-1", "c"): [5, 5, 5],
                  ("2c-100", "a"): [14, 13, 40], ("2c-100", "b"): [30, 33, 31], ("2c-100", "c"): [200, 210, 190]})
    cells, derived = report.compute(data)
    assert report.median(cells[("2c-100", "a")].setup_s) == 14  # the 40 s outlier does not move the median
    assert math.isclose(derived["a100_over_a1"], 14 / 11)
    assert math.isclose(derived["c_over_a_100"], 200 / 14)
    assert math.isclose(derived["b_over_a_100"], 31 / 14)
    assert derived["rerun_writes"] == 0
    assert derived["writes_per_object_a"]["2c-100"] == 1.0
    assert report.render(data, tmp_path) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == ("summary: a100_over_a1=1.27 b_over_a_100=2.21 c_over_a_100=14.29 rerun_over_first_100=1.00 "
                         "teardown100_over_1=1.27 teardown100_s=7.00 mesh4_over_2c10=nan reads_100_over_1=nan "
                         "rerun_writes=0 scale8_s=nan")
    text = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "| >= 3 | 2.21 | **not met** |" in text
    assert "| >= 10 | 14.29 | met |" in text
    assert "| mesh4_over_2c10 |" in text and "| >= 3 | 2.21 |" in text
    assert (tmp_path / "latest.png").stat().st_size > 1000


def test_report_rerun_writes_is_the_worst_repetition(tmp_path):
    data = _data({("2c-1", "a"): [10, 10, 10]}, rerun_writes=2)
    _cells, derived = report.compute(data)
    assert derived["rerun_writes"] == 2
    assert math.isnan(derived["c_over_a_100"])  # not measured, not invented


def test_combined_baseline_weights_windows_by_length():
    data = {"baselines": [{"seconds": 60, "rates": {"c1": {"PUT||configmaps||200": 0.2}}},
                          {"seconds": 20, "rates": {"c1": {"PUT||configmaps||200": 1.0}}}]}
    baseline = report.combined_baseline(data)
    assert math.isclose(baseline.rates["c1"][("PUT", "", "configmaps", "", "200")], (0.2 * 60 + 1.0 * 20) / 80)
    assert math.isclose(baseline.writes_per_second(), 0.4)
    assert report.combined_baseline({"baselines": []}) is None
