"""The simulator predicts the harness: the same seeded arrivals through both, the simulator
calibrated only with the start-up and service times that run measured, and P(cold) compared.

Both go through one scheduler module and one summary (`fcbench.measures`), so any difference is
behaviour: real process start-up spread, loopback latency, timers.
"""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from fcbench.harness.scheduler import FunctionConfig
from fcbench.load.loader import load_workload
from fcbench.results.summary import summarize
from fcbench.sim import simulate

pytestmark = pytest.mark.slow  # every test here starts processes or servers

CONFIGS = [
    # rate/s, instanceConcurrency, idle timeout s, service ms, extra start-up ms, seed
    pytest.param(2.0, 1, 0.8, 150, 150, 11, id="sparse-c1-short-idle"),
    pytest.param(6.0, 4, 0.5, 250, 150, 12, id="busier-c4-short-idle"),
    pytest.param(4.0, 1, 2.0, 100, 100, 13, id="c1-longer-idle"),
]


@pytest.mark.parametrize("rate, concurrency, idle, service_ms, startup_ms, seed", CONFIGS)
def test_harness_p_cold_lies_within_the_simulators_prediction(
        sleep_workload, fcbench_run, tmp_path, rate, concurrency, idle, service_ms, startup_ms,
        seed):
    path = sleep_workload({"kind": "poisson", "rate": rate}, duration=14, sleep_ms=service_ms,
                          startup_ms=startup_ms, concurrency=concurrency, idle=idle,
                          max_instances=8, extra={"seed": seed})
    res = fcbench_run("run", str(path), "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    [run] = [d for d in (tmp_path / "results").iterdir() if d.is_dir()]
    measured = summarize(run / "requests.csv")
    df = pd.read_csv(run / "requests.csv")
    insts = pd.read_csv(run / "instances.csv")
    # calibration, from this run only: how long an instance took to start, how long a request
    # took on a warm instance
    startup_s = statistics.median(insts["ready_ts"] - insts["created_ts"])
    warm = df[(df["status"] == 200) & (df["cold"] == 0)]
    service_s = statistics.median(warm["latency_ms"]) / 1000.0

    workload = load_workload(path)
    offsets = list(workload.plan_obj().offsets(workload.duration))
    assert len(offsets) == measured["count"]  # the same arrivals
    sim = simulate(offsets, FunctionConfig.from_spec(workload.function_specs[0]),
                   service_s=lambda: service_s, startup_s=lambda: startup_s)
    predicted = summarize(sim.to_frame(origin_ts=1e9))
    p_meas = measured["p_cold"]["value"]
    p_sim = predicted["p_cold"]["value"]
    band = predicted["p_cold"]["cluster"]
    assert measured["outcomes"]["failed"]["count"] == 0
    assert abs(p_meas - p_sim) <= 0.02 or band["lo"] <= p_meas <= band["hi"], \
        (p_meas, p_sim, band, startup_s, service_s)
