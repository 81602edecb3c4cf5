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
