"""`fcbench simulate`: a workload through the one scheduler on simulated time, into a run folder
that `fcbench report` and `fcbench cost` read like a measured one."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from fcbench.load.workload import load_workload


def test_simulate_writes_a_run_folder_that_cost_and_report_read(sleep_workload, fcbench_run,
                                                               tmp_path):
    path = sleep_workload({"kind": "poisson", "rate": 20}, duration=600, sleep_ms=200,
                          startup_ms=300, concurrency=1, idle=5,
                          extra={"seed": 4})
    # a GPU spec on this CPU machine: the simulator places it on virtual cards like the harness
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["gpuConfig"] = {"gpuMemorySize": 4096}
    path.write_text(yaml.safe_dump(doc))
    res = fcbench_run("simulate", str(path), "--out", str(tmp_path / "sim"), timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "sim").iterdir())
    for name in ("requests.csv", "instances.csv", "summary.json", "run.yaml", "report.html"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    wl = load_workload(path)
    assert summary["simulated"] is True
    assert summary["count"] == sum(1 for _ in wl.plan_obj().offsets(600))  # every arrival
    shares = summary["outcomes"]
    assert sum(v["count"] for v in shares.values()) == summary["count"]
    assert 0 < summary["p_cold"]["value"] < 0.2
    assert "simulated" in (run / "run.yaml").read_text()
    rows = list(csv.DictReader(open(run / "instances.csv")))
    busy = sum(float(r["active_s"]) for r in rows)
    assert busy == pytest.approx(summary["count"] * 0.2, rel=0.02)  # 200 ms each, no overlap
    cost = fcbench_run("cost", str(run), timeout=60)
    assert cost.returncode == 0, cost.stderr
    scale = 86400 / summary["duration_s"]
    assert f"{4 * busy * 0.0007 * scale:.2f} CNY" in cost.stdout  # the hand sum, per day
    assert fcbench_run("report", str(run), timeout=60).returncode == 0


def test_simulate_refuses_a_closed_loop_plan(sleep_workload, fcbench_run, tmp_path):
    path = sleep_workload({"kind": "closed", "users": 2})
    res = fcbench_run("simulate", str(path), "--out", str(tmp_path / "sim"), timeout=60)
    assert res.returncode == 2 and "open-loop" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "sim").exists()


def test_a_real_day_simulates_in_seconds_and_is_priced_in_both_tables(fcbench_run, tmp_path):
    """workloads/diurnal-day.yaml: the diurnal curve over a real 24 h (about 100 000 requests)
    with FC's 300 s idle reclaim; the simulated folder's bill in both shipped price tables."""
    from pathlib import Path

    day = Path(__file__).parent.parent / "workloads" / "diurnal-day.yaml"
    res = fcbench_run("simulate", str(day), "--service-ms", "exp:20", "--startup-ms", "8000",
                      "--out", str(tmp_path / "sim"), timeout=300)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "sim").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] > 50_000 and summary["simulation_s"] < 30
    assert summary["duration_s"] == pytest.approx(86400, rel=0.01)
    cost = fcbench_run("cost", str(run), "--table", "fc-doc-simple", "--table", "fc3-cu-2024-08",
                       "--server-price", "2USD", timeout=60)
    assert cost.returncode == 0, cost.stderr
    assert "fc-doc-simple" in cost.stdout and "fc3-cu-2024-08" in cost.stdout
    assert "CNY" in cost.stdout and "USD" in cost.stdout
    # about a day already: the metering is scaled by ~1, not extrapolated
    assert "scaled ×1.0" in cost.stdout
