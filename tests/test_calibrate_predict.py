"""Calibration from a measured run, simulated sweeps in the measured sweep's format, the
predicted curve over a measured sweep, and priced what-ifs (issue: cost + simulate, items 4-6).

Known truths come from outside fcbench: a hand-written run folder whose service and start-up
times are chosen here, the sleep model's own delays, and hand sums of a simple plan's bill."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from fcbench.coldstart.sweep import SWEEP_FIELDS, read_sweep_csv
from fcbench.errors import UsageError
from fcbench.results import RunFolder, layout
from fcbench.sim.calibrate import calibrate


def _write_run(folder: Path, rows: list[dict], instances: list[dict]) -> Path:
    folder.mkdir(parents=True)
    cols = ["request_id", "intended_ts", "start_ts", "end_ts", "latency_ms", "status", "cold",
            "instance_id", "queue_ms", "error", "forward_ms"]
    run = RunFolder(folder)
    run.write_csv(layout.REQUESTS, cols, ({c: r.get(c, "") for c in cols} for r in rows))
    run.write_csv(layout.INSTANCES, ["instance_id", "function", "created_ts", "ready_ts"],
                  instances)
    return folder


def test_calibration_takes_warm_service_times_and_instance_start_ups(tmp_path):
    rows = [
        # warm, the gateway's forward time known: that is the time the instance was held
        {"request_id": "a", "latency_ms": 130, "status": 200, "cold": 0, "queue_ms": 0,
         "forward_ms": 120},
        # warm, no forward time: latency less the queueing
        {"request_id": "b", "latency_ms": 190, "status": 200, "cold": 0, "queue_ms": 50},
        # cold and failed rows teach no service time
        {"request_id": "c", "latency_ms": 900, "status": 200, "cold": 1, "queue_ms": 700,
         "forward_ms": 150},
        {"request_id": "d", "latency_ms": 5, "status": 429, "cold": "", "queue_ms": ""},
    ]
    instances = [{"instance_id": "i-1", "function": "f", "created_ts": 100.0,
                  "ready_ts": 100.7},
                 {"instance_id": "i-2", "function": "f", "created_ts": 200.0, "ready_ts": ""},
                 {"instance_id": "i-3", "function": "other", "created_ts": 0, "ready_ts": 9}]
    run = _write_run(tmp_path / "run", rows, instances)
    cal = calibrate([run], function="f")
    assert sorted(cal.service_ms) == pytest.approx([120.0, 140.0])
    assert cal.startup_ms == pytest.approx((700.0,))  # the failed start and the other fn left out
    assert cal.startup_from == "instances.csv"

    # without instances.csv the cold requests' extra hold over the warm median stands in
    (run / "instances.csv").unlink()
    cal = calibrate([run])
    assert cal.startup_from == "cold requests"
    assert cal.startup_ms == pytest.approx((900.0 - 130.0,))  # its latency less the service


def test_calibration_from_a_cold_start_profile_takes_its_phases(tmp_path):
    """A profile folder has phases.csv only: each forced start is its e2e less what serving it
    took; warm service times are its warm requests."""
    run = tmp_path / "profile"
    run.mkdir()
    (run / "phases.csv").write_text(
        "index,kind,status,e2e_ms,warm_ms,first_inference_ms,transit_ms,model_load_ms\n"
        "0,warmup,200,900,100,110,5,300\n"
        "1,ok,200,800,100,110,5,300\n"
        "2,ok,200,1000,120,90,,300\n"
        "3,failed,502,,,,,\n")
    cal = calibrate([run])
    assert sorted(cal.startup_ms) == pytest.approx([800 - 115, 1000 - 90])
    assert sorted(cal.service_ms) == pytest.approx([100, 120])
    assert cal.startup_from == "phases.csv"


def test_calibration_without_a_warm_request_says_what_to_do(tmp_path):
    run = _write_run(tmp_path / "run", [{"request_id": "a", "latency_ms": 5, "status": 502}], [])
    with pytest.raises(UsageError, match="--service-ms"):
        calibrate([run])
    # all cold: their hold times stand in, and the calibration says so
    run = _write_run(tmp_path / "cold", [{"request_id": "a", "latency_ms": 800, "status": 200,
                                          "cold": 1, "queue_ms": 600}], [])
    cal = calibrate([run])
    assert cal.service_ms == pytest.approx((200.0,)) and "none was warm" in cal.service_from
    with pytest.raises(UsageError, match="not a run folder"):
        calibrate([tmp_path / "nothing"])


@pytest.mark.slow
def test_simulate_calibrated_on_a_measured_run_finds_its_service_time(sleep_workload,
                                                                      fcbench_run, tmp_path):
    """A real harness run of a 150 ms sleep: calibrating on it recovers 150 ms, and the
    simulation of the same arrivals ends up with about the measured P(cold)."""
    path = sleep_workload({"kind": "poisson", "rate": 4}, duration=6, sleep_ms=150,
                          startup_ms=100, idle=0.6, extra={"seed": 5})
    res = fcbench_run("run", str(path), timeout=120)
    assert res.returncode == 0, res.stderr
    [measured] = list((tmp_path / "results").iterdir())
    cal = calibrate([measured])
    assert cal.service_median_ms == pytest.approx(150.0, abs=25.0)
    assert min(cal.startup_ms) >= 100.0  # the model's own 100 ms load is inside every start
    res = fcbench_run("simulate", str(path), "--calibrate", str(measured), "--out",
                      str(tmp_path / "sim"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "calibrated on 1 run(s)" in res.stdout
    [sim] = list((tmp_path / "sim").iterdir())
    got = json.loads((sim / "summary.json").read_text())
    want = json.loads((measured / "summary.json").read_text())
    assert got["count"] == want["count"]  # the same seeded arrivals
    assert abs(got["p_cold"]["value"] - want["p_cold"]["value"]) <= 0.15
    assert yaml.safe_load((sim / "run.yaml").read_text())["calibration"]["service_samples"] > 0


@pytest.mark.slow
def test_simulate_sweep_writes_the_measured_sweeps_format(sleep_workload, fcbench_run, tmp_path):
    path = sleep_workload({"kind": "poisson", "rate": 2}, duration=300, sleep_ms=200,
                          startup_ms=300, idle=2, max_instances=50)
    res = fcbench_run("simulate", str(path), "--sweep", "concurrency=1,2,4,8", "--out",
                      str(tmp_path / "sw"), timeout=120)
    assert res.returncode == 0, res.stderr
    [folder] = list((tmp_path / "sw").iterdir())
    with open(folder / "sweep.csv", newline="") as f:
        assert next(csv.reader(f)) == SWEEP_FIELDS
    levels = read_sweep_csv(folder / "sweep.csv")
    assert [lv.level for lv in levels] == [1, 2, 4, 8]
    for lv in levels:  # Little's law: level / 200 ms
        assert lv.rate_rps == pytest.approx(lv.level / 0.2, rel=1e-6)
        assert (folder / lv.run_dir / "requests.csv").is_file()
    assert (folder / "plots" / "p_cold.png").stat().st_size > 0
    assert levels[-1].p_cold < levels[0].p_cold  # more traffic, fewer cold starts

    # minInstances at or above the peak in flight: nothing is ever cold
    res = fcbench_run("simulate", str(path), "--sweep", "minInstances=0,6", "--out",
                      str(tmp_path / "mi"), timeout=120)
    assert res.returncode == 0, res.stderr
    [folder] = list((tmp_path / "mi").iterdir())
    none, six = read_sweep_csv(folder / "sweep.csv")
    assert none.p_cold > 0 and six.p_cold == 0.0
    bad = fcbench_run("simulate", str(path), "--sweep", "memorySize=1,2", timeout=60)
    assert bad.returncode == 2 and "concurrency" in bad.stderr
    bad = fcbench_run("simulate", str(path), "--sweep", "instanceConcurrency=1,200", "--out",
                      str(tmp_path / "bad"), timeout=60)
    assert bad.returncode == 2 and "--sweep instanceConcurrency=200" in bad.stderr
    assert not (tmp_path / "bad").exists()  # checked before any level ran


@pytest.mark.slow
def test_coldstart_sweep_predict_overlays_the_calibrated_simulator(fcbench_run, tmp_path):
    """The shipped sleep spec (1 s per request, 2 slots, idle reclaim after 2 s), measured and
    predicted in one sweep."""
    spec = Path(__file__).parent.parent / "workloads" / "functions" / "sleep.yaml"
    res = fcbench_run("coldstart", "sweep", str(spec), "--concurrency", "1,2", "--duration",
                      "6", "--service-ms", "1000", "--predict", "--out", str(tmp_path / "out"),
                      timeout=300)
    assert res.returncode == 0, res.stderr
    [folder] = list((tmp_path / "out").iterdir())
    measured = read_sweep_csv(folder / "sweep.csv")
    predicted = read_sweep_csv(folder / "predicted.csv")
    assert [lv.level for lv in predicted] == [lv.level for lv in measured]
    assert [lv.rate_rps for lv in predicted] == [lv.rate_rps for lv in measured]
    # 20 replications of each level, as long as the measured one: a narrower interval
    for m, p in zip(measured, predicted):
        assert p.requests > 10 * m.requests
        assert p.level_s == pytest.approx(m.level_s)
        if m.cold and p.cold:  # (an interval of a level with no cold request is 0 wide)
            assert p.p_cold_cluster_hi - p.p_cold_cluster_lo \
                < m.p_cold_cluster_hi - m.p_cold_cluster_lo
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["predicted"]) == 2
    assert "simulated level 1" in res.stdout
    calibration = yaml.safe_load(
        (folder / "predicted" / "levels" / predicted[0].run_dir.split("/")[-1] / "run.yaml")
        .read_text())["calibration"]
    assert calibration["service_median_ms"] == pytest.approx(1000.0, abs=60.0)
    assert (folder / "plots" / "p_cold.png").stat().st_size > 0


@pytest.mark.slow
def test_what_if_prices_each_combination_from_a_simulated_run(sleep_workload, fcbench_run,
                                                              tmp_path):
    """One request every 10 s, 1 s each, idle reclaim after 2 s, a 4 GB GPU spec: every request
    is cold and the day's GPU bill is hand-computable; a provisioned instance, ready before the
    traffic starts (as on FC and in the harness), leaves no request cold and adds its idle
    seconds to the bill. The run's own figures come first, as measured."""
    path = sleep_workload({"kind": "constant", "rate": 0.1}, duration=200, sleep_ms=1000,
                          startup_ms=100, idle=2)
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["gpuConfig"] = {"gpuMemorySize": 4096}
    path.write_text(yaml.safe_dump(doc))
    res = fcbench_run("simulate", str(path), "--startup-ms", "500", "--out", str(tmp_path / "s"),
                      timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "s").iterdir())
    res = fcbench_run("cost", str(run), "--what-if", "minInstances=0,1", "--what-if",
                      "idleTimeout=2,20", timeout=120)
    assert res.returncode == 0, res.stderr
    [table] = list(run.glob("whatif-*.csv"))
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 5 and rows[0]["source"] == "measured"  # the run itself, then 4 combos
    by = {(int(r["minInstances"]), float(r["idleTimeout_s"])): r for r in rows[1:]}
    cold, provisioned = by[(0, 2.0)], by[(1, 2.0)]
    assert float(cold["p_cold"]) == 1.0  # every gap (10 s) outlives the 2 s idle timeout
    assert cold["as_run"] == "True"
    assert float(by[(0, 20.0)]["p_cold"]) < 0.2  # a 20 s idle timeout keeps it warm
    n = int(cold["requests_sent"])
    # the provisioned instance was ready when the first request came (it was 1 of n cold
    # before issue #18: the simulator started it with the traffic, not before it)
    assert float(provisioned["p_cold"]) == 0.0
    planned = json.loads((run / "summary.json").read_text())["planned_duration_s"]
    assert planned == 200  # a day is 86400 s / the planned duration, not / the request span
    per_day = 4 * n * 1.0 * 0.0007 * 86400 / planned  # GB × busy s × CNY/GB·s, a day
    assert float(rows[0]["fc-doc-simple_CNY_per_day"]) == pytest.approx(per_day, rel=1e-6)
    assert float(cold["fc-doc-simple_CNY_per_day"]) == pytest.approx(per_day, rel=0.01)
    assert float(cold["fc-doc-simple_CNY_per_1000_requests"]) == pytest.approx(
        per_day / (n * 86400 / planned) * 1000, rel=0.01)
    # the provisioned instance is billed for being alive: more than the busy seconds alone
    assert float(provisioned["fc-doc-simple_CNY_per_day"]) > 2 * per_day
    assert "0*" in res.stdout and "P(cold)" in res.stdout
    assert "Priced what-ifs" in (run / "report.html").read_text()  # the run's report shows it
    bad = fcbench_run("cost", str(run), "--what-if", "gpuMemorySize=1", timeout=60)
    assert bad.returncode == 2 and "minInstances" in bad.stderr
    # a value the function spec refuses is named before anything is simulated
    bad = fcbench_run("cost", str(run), "--what-if", "instanceConcurrency=1,0", timeout=60)
    assert bad.returncode == 2 and "--what-if instanceConcurrency=0" in bad.stderr
    assert "Traceback" not in bad.stderr
    for text in ("idleTimeout=inf", "minInstances=-1"):
        bad = fcbench_run("cost", str(run), "--what-if", text, timeout=60)
        assert bad.returncode == 2 and "finite non-negative" in bad.stderr, text
    # a second table in the same second gets its own name
    again = fcbench_run("cost", str(run), "--what-if", "minInstances=0", timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(list(run.glob("whatif-*.csv"))) == 2
