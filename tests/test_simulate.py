"""`fcbench simulate`: a workload through the one scheduler on simulated time, into a run folder
that `fcbench report` and `fcbench cost` read like a measured one."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from fcbench.load.loader import load_workload

pytestmark = pytest.mark.slow  # every test here starts processes or servers


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
    # a day is 86400 s / the planned 600 s (issue #18: not the first-to-last request span)
    scale = 86400 / summary["planned_duration_s"]
    assert summary["planned_duration_s"] == 600 and "by its planned duration" in cost.stdout
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


def test_a_simulated_sweep_cuts_its_steady_state_where_it_is_told(sleep_workload, fcbench_run,
                                                                   tmp_path):
    """`--warmup` as the measured sweep takes it: the simulated levels leave out the same
    first seconds (it was always one idle timeout, so a measured sweep run with --warmup could
    not be matched)."""
    wl = sleep_workload({"kind": "poisson", "rate": 5}, duration=20, sleep_ms=50, idle=2,
                        startup_ms=200)
    cut = {}
    for warmup in (None, 8):
        args = ["--warmup", str(warmup)] if warmup is not None else []
        res = fcbench_run("simulate", str(wl), "--sweep", "minInstances=0,1", *args,
                          "--out", str(tmp_path / f"w{warmup}"), timeout=120)
        assert res.returncode == 0, res.stderr
        folder = next((tmp_path / f"w{warmup}").glob("*-simsweep-*"))
        summary = json.loads((folder / "summary.json").read_text())
        cut[warmup] = summary["warmup_s"]
        steady = [int(r["requests"]) for r in csv.DictReader(open(folder / "sweep.csv"))]
        cut[f"requests-{warmup}"] = steady
    assert cut[None] == 2 and cut[8] == 8
    # the later cut leaves fewer steady requests in every level
    assert all(a > b for a, b in zip(cut["requests-None"], cut["requests-8"]))
    res = fcbench_run("simulate", str(wl), "--warmup", "3", timeout=60)
    assert res.returncode == 2 and "--warmup goes with --sweep" in res.stderr
