"""Issue #18: one definition of the day's bill, P(cold) and the day scale across `fcbench cost`,
its what-ifs, `fcbench simulate --calibrate` and `fcbench report --compare`; prices never 0 for
want of a spec; honest intervals; the harness's metering and the simulator's, held against each
other on a real run.

Known truths come from outside fcbench: hand-written run folders (their instances' seconds,
their planned duration, their spec), distributions chosen here, and the sleep model's delays."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fcbench.results import RunFolder, layout
from fcbench.results.summary import summarize, write_summary

RATE = 0.0007  # fc-doc-simple: CNY per GB·s of gpuMemorySize


def _money(stdout: str) -> float:
    found = re.search(r"FC per day\s+([\d,.]+) CNY", stdout)
    assert found, stdout
    return float(found.group(1).replace(",", ""))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_requests(folder: Path, rows: list[dict]) -> None:
    cols = ["request_id", "intended_ts", "start_ts", "end_ts", "latency_ms", "status", "cold",
            "instance_id", "queue_ms", "error", "ready_ts"]
    RunFolder(folder).write_csv(layout.REQUESTS, cols, ({c: r.get(c, "") for c in cols}
                                                        for r in rows))


T = 1_800_000_000.0


def _url_run(folder: Path, *, source: Path | None = None) -> Path:
    """A run against a URL, as `fcbench run --target URL` leaves it: requests.csv, summary.json
    and a run.yaml whose target is the URL (no instances.csv: the URL meters nothing). Two
    instances; busy 1.0 + 0.5 + 0.5 s; planned 10 s."""
    folder.mkdir(parents=True)
    reqs = [  # (instance, start, end, ready): the first waited for its instance's start
        ("a", 0.0, 1.5, 0.5), ("a", 3.0, 3.5, 0.5), ("b", 6.0, 6.5, 5.9)]
    _write_requests(folder, [
        {"request_id": f"r{k}", "intended_ts": T + s, "start_ts": T + s, "end_ts": T + e,
         "latency_ms": (e - s) * 1000, "status": 200, "cold": int(k in (0, 2)),
         "instance_id": i, "ready_ts": T + r} for k, (i, s, e, r) in enumerate(reqs)])
    summary = summarize(folder / "requests.csv")
    summary.update({"planned_duration_s": 10.0, "interrupted": False})
    write_summary(summary, folder / "summary.json")
    workload = {"name": "u", "target": {"kind": "url", "url": "http://127.0.0.1:9/http/f/",
                                        "function": "f"}, "duration": 10.0}
    if source is not None:
        workload["source"] = str(source)
    (folder / "run.yaml").write_text(yaml.safe_dump({"kind": "run", "duration_s": 10.0,
                                                     "workload": workload}))
    return folder


@pytest.mark.slow
def test_a_run_without_a_recorded_gpu_spec_is_refused_not_priced_at_zero(tmp_path,
                                                                          fcbench_run):
    run = _url_run(tmp_path / "url-run")
    plain = fcbench_run("cost", str(run), timeout=60)
    assert plain.returncode == 2, plain.stdout
    assert "--gpu-mem GB" in plain.stderr and "Traceback" not in plain.stderr
    assert "0.00 CNY" not in plain.stdout and "100.0%" not in plain.stdout
    # given the size, it is priced: busy 2.0 s of the planned 10 s, × 8640 a day
    given = fcbench_run("cost", str(run), "--gpu-mem", "4", timeout=60)
    assert given.returncode == 0, given.stderr
    assert _money(given.stdout) == pytest.approx(round(4 * 2.0 * RATE * 8640, 2))
    assert "from options --gpu-mem 4" in given.stdout
    # `report --compare` has no cost for it — and no 0 — and says what to pass
    other = tmp_path / "copy"
    shutil.copytree(run, other)
    res = fcbench_run("report", "--compare", str(run), str(other), "--out",
                      str(tmp_path / "cmp"), timeout=60)
    assert res.returncode == 0, res.stderr
    [folder] = list((tmp_path / "cmp").iterdir())
    costs = [r for r in _rows(folder / "compare.csv") if r["metric"].startswith("cost.")]
    assert all(r["value"] == "" for r in costs)
    assert "FC cost per day" not in res.stdout and "--gpu-mem GB" in res.stdout


@pytest.mark.slow
def test_a_url_run_takes_its_shape_from_the_spec_its_workload_names(tmp_path, fcbench_run):
    """`fcbench run wl.yaml --target URL` keeps the workload's local functions in its file:
    the spec of the function the run invoked gives the GPU size and the CU shape."""
    wl = tmp_path / "wl.yaml"
    wl.write_text(yaml.safe_dump({"name": "u", "target": {"kind": "local", "functions": [{
        "functionName": "f", "gpuConfig": {"gpuMemorySize": 8192, "gpuType": "fc.gpu.ada.1"},
        "cpu": 2, "memorySize": 4096, "diskSize": 512}]}, "duration": 10,
        "plan": {"kind": "poisson", "rate": 1}}))
    run = _url_run(tmp_path / "url-run", source=wl)
    res = fcbench_run("cost", str(run), "--table", "fc-doc-simple", "--table", "fc3-cu-2024-08",
                      "--server-price", "2USD", timeout=60)
    assert res.returncode == 0, res.stderr
    assert _money(res.stdout) == pytest.approx(round(8 * 2.0 * RATE * 8640, 2))
    assert f"in the workload file {wl}" in res.stdout
    busy_day = 2.0 * 8640
    # CU lines of the recorded shape: 2 vCPU, 4 GB memory, 0.5 GB disk, an Ada GPU
    assert f"{busy_day:,.0f} s × 2 vCPU × 1 CU/vCPU·s = {busy_day * 2:,.0f} CU" in res.stdout
    assert f"{busy_day:,.0f} s × 4 GB × 0.15 CU/GB·s" in res.stdout
    assert f"{busy_day:,.0f} s × 8 GB × 1.5 CU/GB·s" in res.stdout  # ada, not tesla


def _local_run(folder: Path, *, planned: float | None, interrupted: bool = False) -> Path:
    """A harness run's files as a 60 s quickstart leaves them: 18 requests spanning 55.4 s,
    two 4 GB instances busy 0.3 + 0.2 s."""
    folder.mkdir(parents=True)
    starts = [1.0 + k * (55.0 / 17) for k in range(18)]
    _write_requests(folder, [
        {"request_id": f"r{k}", "intended_ts": T + s, "start_ts": T + s,
         "end_ts": T + s + (0.4 if k == 17 else 0.01), "latency_ms": 10, "status": 200,
         "cold": 0, "instance_id": "i1"} for k, s in enumerate(starts)])
    with open(folder / "instances.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instance_id", "gpu_memory_mb", "active_s", "idle_s", "provisioned"])
        w.writerows([["i1", 4096, 0.3, 10, False], ["i2", 4096, 0.2, 10, False]])
    summary = summarize(folder / "requests.csv")
    assert summary["duration_s"] == pytest.approx(55.4)
    if planned is not None:
        summary["planned_duration_s"] = planned
    summary["interrupted"] = interrupted
    write_summary(summary, folder / "summary.json")
    doc = {"kind": "run", "interrupted": interrupted, "workload": {"name": "q"}}
    if planned is not None:
        doc["duration_s"] = planned
    (folder / "run.yaml").write_text(yaml.safe_dump(doc))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("planned, interrupted, seconds, why", [
    (60.0, False, 60.0, "by its planned duration, 60 s"),
    (None, False, 55.4, "no planned duration is recorded"),
    (60.0, True, 55.4, "interrupted before its planned duration"),
])
def test_a_run_is_scaled_to_a_day_by_its_planned_duration(tmp_path, fcbench_run, planned,
                                                          interrupted, seconds, why):
    run = _local_run(tmp_path / "run", planned=planned, interrupted=interrupted)
    res = fcbench_run("cost", str(run), timeout=60)
    assert res.returncode == 0, res.stderr
    scale = 86400 / seconds
    assert f"scaled ×{scale:.1f} to a day ({18 * scale:,.0f} calls" in res.stdout
    assert why in res.stdout
    assert _money(res.stdout) == pytest.approx(round(4 * 0.5 * RATE * scale, 2))


@pytest.mark.slow
def test_cost_options_are_named_for_what_they_mean_and_it_shows_its_working(fcbench_run):
    res = fcbench_run("cost", "--calls-per-day", "3600", "--seconds-per-call", "1",
                      "--gpu-mem", "4", "--table", "fc-doc-simple", "--table", "fc3-cu-2024-08",
                      "--server-price", "2USD", timeout=60)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    # one line per billed component, per table: the product as the documentation writes it
    assert "GPU active  3,600 s × 4 GB × 0.0007 CNY/GB·s = 10.08 CNY" in out
    assert "3,600 s × 4 GB × 2.1 CU/GB·s = 30,240 CU" in out
    assert "3,600 calls / 10,000 × 75 CU = 27 CU" in out
    assert "30,267 CU a day × 30 = 908,010 CU a month" in out
    # the shape priced, and that FC documents no default one to fill in
    assert "shape priced: GPU 4 GB (tesla" in out and "vCPU not given" in out
    assert "FC documents no default vCPU / memory / disk" in out
    given = fcbench_run("cost", "--calls-per-day", "3600", "--seconds-per-call", "1",
                        "--gpu-mem", "4", "--vcpu", "2", "--memory-gb", "8", "--table",
                        "fc3-cu-2024-08", "--server-price", "2USD", timeout=60)
    assert "3,600 s × 2 vCPU × 1 CU/vCPU·s = 7,200 CU" in given.stdout
    assert "3,600 s × 8 GB × 0.15 CU/GB·s = 4,320 CU" in given.stdout
    # the old name still works, says once to use the new one, and is not advertised
    old = fcbench_run("cost", "--calls-per-day", "3600", "--duration", "1", "--gpu-mem", "4",
                      timeout=60)
    assert old.returncode == 0 and "10.08 CNY" in old.stdout
    assert old.stderr.count("\n") == 1 and "use --seconds-per-call" in old.stderr
    helptext = fcbench_run("cost", "--help", timeout=60).stdout
    assert "--seconds-per-call" in helptext and "--duration" not in helptext
    for option, words in (("--memory-gb", "memorySize"), ("--disk-gb", "diskSize")):
        assert re.search(re.escape(option) + r"[^\n]*\n?[^-]*" + words, helptext), option


def test_cold_requests_service_times_are_kept_apart(tmp_path):
    """A fresh instance's first request runs slower (first inference, a new connection): the
    calibration keeps those times apart and the simulator draws a cold request's from them, so
    the simulated busy time is the measured one."""
    from fcbench.harness.scheduler import FunctionConfig
    from fcbench.sim import simulate
    from fcbench.sim.calibrate import calibrate

    run = tmp_path / "run"
    run.mkdir()
    _write_requests(run, [
        {"request_id": "a", "latency_ms": 700, "status": 200, "cold": 1, "queue_ms": 640},
        {"request_id": "b", "latency_ms": 20, "status": 200, "cold": 0, "queue_ms": 0},
        {"request_id": "c", "latency_ms": 20, "status": 200, "cold": 0, "queue_ms": 0}])
    (run / "instances.csv").write_text("instance_id,created_ts,ready_ts\ni,0,0.5\n")
    cal = calibrate([run])
    assert cal.service_ms == (20.0, 20.0) and cal.cold_service_ms == (60.0,)
    import random

    cold = cal.draw_cold_service(random.Random(0))
    res = simulate([0.0, 1.0, 2.0], FunctionConfig("f", idle_timeout=10), service_s=lambda: 0.02,
                   startup_s=lambda: 0.5, cold_service_s=lambda: cold() / 1000)
    assert res.active_s == pytest.approx(0.06 + 0.02 + 0.02)


def _sim_run(sleep_workload, fcbench_run, tmp_path: Path, service: str, name: str) -> Path:
    path = sleep_workload({"kind": "constant", "rate": 0.1}, duration=400, sleep_ms=1000,
                          startup_ms=100, idle=2, name=name)
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["gpuConfig"] = {"gpuMemorySize": 4096}
    path.write_text(yaml.safe_dump(doc))
    res = fcbench_run("simulate", str(path), "--service-ms", service, "--startup-ms", "300",
                      "--out", str(tmp_path / name), timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / name).iterdir())
    return run


@pytest.mark.slow
def test_what_if_intervals_carry_the_calibrations_own_sampling(sleep_workload, fcbench_run,
                                                               tmp_path):
    """40 sparse requests, each cold, served in uniform(0.5, 1.5) s — a true mean of 1 s, so the
    true day's bill is 4 GB × 40 × 1 s × 0.0007 × 86400/400. The what-if's interval is wide
    enough to hold that truth (the calibration saw only 40 draws of it); a service time that
    never varies gives an interval of no width."""
    run = _sim_run(sleep_workload, fcbench_run, tmp_path, "uniform:500:1500", "spread")
    res = fcbench_run("cost", str(run), "--what-if", "idleTimeout=2", "--replications", "200",
                      timeout=120)
    assert res.returncode == 0, res.stderr
    [measured, own] = _rows(next(run.glob("whatif-*.csv")))
    assert (measured["source"], own["source"], own["as_run"]) == ("measured", "simulated",
                                                                 "True")
    for col in ("p_cold_lo", "p_cold_hi", "p99_from_intended_ms_lo",
                "p99_from_intended_ms_hi", "fc-doc-simple_CNY_per_day_lo",
                "fc-doc-simple_CNY_per_day_hi"):
        assert own[col] != "", col
    truth = 4 * 40 * 1.0 * RATE * 86400 / 400
    lo, hi = float(own["fc-doc-simple_CNY_per_day_lo"]), float(own["fc-doc-simple_CNY_per_day_hi"])
    assert lo < truth < hi and hi - lo > 0.1 * truth
    assert lo <= float(measured["fc-doc-simple_CNY_per_day"]) <= hi
    assert float(own["p_cold_lo"]) == float(own["p_cold_hi"]) == 1.0
    assert float(own["p99_from_intended_ms_lo"]) < float(own["p99_from_intended_ms_hi"])
    assert re.search(r"simulated\s+2\*.*\[", res.stdout)  # intervals printed in the table
    fixed = _sim_run(sleep_workload, fcbench_run, tmp_path, "1000", "fixed")
    res = fcbench_run("cost", str(fixed), "--what-if", "idleTimeout=2", timeout=120)
    assert res.returncode == 0, res.stderr
    [_, own] = _rows(next(fixed.glob("whatif-*.csv")))
    assert float(own["fc-doc-simple_CNY_per_day_lo"]) == pytest.approx(
        float(own["fc-doc-simple_CNY_per_day_hi"])) == pytest.approx(truth)


def _gpu_sleep(sleep_workload, plan: dict, **kw) -> Path:
    path = sleep_workload(plan, **kw)
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["gpuConfig"] = {"gpuMemorySize": 4096}
    doc["target"]["virtualGpus"] = "1x16GB"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_the_harness_meter_and_the_simulator_count_an_instances_seconds_alike(
        sleep_workload, fcbench_run, tmp_path):
    """A real harness run of a known trace (bursts of 4 requests 0.5 s apart, 100 ms each,
    idle reclaim after 1 s, the second burst ending near the planned 6 s) and the simulator fed
    the same arrivals (as the gateway saw them), the same service times (its forward times)
    and the same start-ups (ready − created): every instance's active, idle and alive seconds
    agree, both billed from ready, idle cut at the same window end.

    Tolerance: the harness reclaims on an asyncio timer armed for the exact deadline, measured
    0.4-1.8 ms late here; 20 ms leaves room for a loaded CI machine and is still far below what
    a coarse reclaim tick (hundreds of ms) or a window cut elsewhere (the 0.7-1.5 s the
    simulator lost by ending at the last answer) would show."""
    from fcbench.cost.metering import _windowed_idle, run_window
    from fcbench.harness.gpus import GpuPool
    from fcbench.harness.scheduler import FunctionConfig
    from fcbench.harness.server import HarnessConfig
    from fcbench.load.loader import workload_from_run
    from fcbench.sim import simulate

    path = _gpu_sleep(sleep_workload, {"kind": "burst", "rateOn": 2, "onS": 2, "offS": 2,
                                       "process": "constant"}, duration=6, sleep_ms=100,
                      startup_ms=150, idle=1.0, max_instances=8, name="meter")
    res = fcbench_run("run", str(path), "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    [run] = list((tmp_path / "results").iterdir())
    q = pd.read_csv(run / "requests.csv")
    inst = pd.read_csv(run / "instances.csv").sort_values("created_ts")
    window = run_window(run)
    wl = workload_from_run(run)
    spec = wl.scaled_specs()[0][0]
    assert window.source == "planned" and window.seconds == 6
    origin = window.end - wl.duration
    admitted = q.assign(at=q["gateway_ts"] + q["queue_ms"] / 1000).sort_values("at")
    gpus, _ = HarnessConfig().resolve_gpus([spec])
    sim = simulate(sorted(q["gateway_ts"] - origin), FunctionConfig.from_spec(spec),
                   service_s=list(admitted["forward_ms"] / 1000),
                   startup_s=list(inst["ready_ts"] - inst["created_ts"]), gpus=GpuPool(gpus),
                   until=wl.duration)
    # (how many instances depends on this machine's start-up times; the simulator, fed them,
    # must start as many, and serve each one's requests)
    assert len(sim.instances) == len(inst) >= 2 and sim.cold == int(q["cold"].sum())
    assert inst["served"].max() > 1  # warm reuse happened, not only cold starts
    cut = 0
    for h, s in zip(inst.to_dict("records"), sorted(sim.instances,
                                                    key=lambda r: r["created_ts"])):
        assert h["served"] == s["served"]
        assert h["active_s"] == pytest.approx(s["active_s"], abs=0.002 + 0.001 * h["served"])
        h_idle, s_idle = _windowed_idle(h, window.end), _windowed_idle(s, wl.duration)
        assert h_idle == pytest.approx(s_idle, abs=0.02), (h["instance_id"], h_idle, s_idle)
        # alive = ready → stop (or the window's end): billing starts when the instance is ready
        assert h["active_s"] + h_idle == pytest.approx(s["active_s"] + s_idle, abs=0.02)
        stop = h["stopped_ts"] if h["stopped_ts"] == h["stopped_ts"] else None
        cut += stop is None or stop > window.end
    assert cut >= 1  # an instance was still alive at the window's end, and cut there on both


@pytest.mark.slow
def test_every_command_prints_the_same_bill_and_p_cold(sleep_workload, fcbench_run, tmp_path):
    """One real harness run; `fcbench cost RUN`, its what-if at the run's own idleTimeout (the
    measured row and the simulated * row), `fcbench simulate --calibrate RUN` and `fcbench
    report --compare`: measured bills equal to the cent, simulated ones holding the measured
    within their interval, and P(cold) within the simulator's interval."""
    path = _gpu_sleep(sleep_workload, {"kind": "poisson", "rate": 3}, duration=12,
                      sleep_ms=100, startup_ms=150, idle=0.8, name="same")
    res = fcbench_run("run", str(path), "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    [run] = list((tmp_path / "results").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    p_measured = summary["p_cold"]["value"]
    assert 0 < p_measured < 1

    cost = fcbench_run("cost", str(run), timeout=60)
    assert cost.returncode == 0, cost.stderr
    bill = _money(cost.stdout)
    assert bill > 0

    wi = fcbench_run("cost", str(run), "--what-if", "idleTimeout=0.8", timeout=120)
    assert wi.returncode == 0, wi.stderr
    [measured, own] = _rows(next(run.glob("whatif-*.csv")))
    assert measured["source"] == "measured" and own["as_run"] == "True"
    assert round(float(measured["fc-doc-simple_CNY_per_day"]), 2) == bill
    assert float(measured["p_cold"]) == p_measured
    assert float(own["fc-doc-simple_CNY_per_day_lo"]) <= bill \
        <= float(own["fc-doc-simple_CNY_per_day_hi"])
    assert float(own["p_cold_lo"]) <= p_measured <= float(own["p_cold_hi"])

    sim = fcbench_run("simulate", str(path), "--calibrate", str(run), "--out",
                      str(tmp_path / "sim"), timeout=120)
    assert sim.returncode == 0, sim.stderr
    [simrun] = list((tmp_path / "sim").iterdir())
    pred = json.loads((simrun / "prediction.json").read_text())
    day = pred["costs"]["fc-doc-simple"]["per_day"]
    assert day["lo"] <= bill <= day["hi"]
    assert pred["p_cold"]["lo"] <= p_measured <= pred["p_cold"]["hi"]
    assert "P(cold)" in sim.stdout and "[" in sim.stdout
    sim_cost = fcbench_run("cost", str(simrun), timeout=60)
    assert _money(sim_cost.stdout) == round(day["value"], 2)  # the folder's own bill

    cmp = fcbench_run("report", "--compare", str(run), str(simrun), "--out",
                      str(tmp_path / "cmp"), timeout=120)
    assert cmp.returncode == 0, cmp.stderr
    [folder] = list((tmp_path / "cmp").iterdir())
    got = {(r["metric"], r["run"]): r for r in _rows(folder / "compare.csv")}
    assert round(float(got["cost.per_day", run.name]["value"]), 2) == bill
    assert round(float(got["cost.per_day", simrun.name]["value"]), 2) == round(day["value"], 2)
    assert float(got["p_cold", run.name]["value"]) == p_measured
    assert pred["p_cold"]["lo"] <= float(got["p_cold", simrun.name]["value"]) \
        <= pred["p_cold"]["hi"]
