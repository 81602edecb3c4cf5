"""One definition of every figure (`fcbench.measures`), checked with hand-computed expectations,
through the simulator, and against the harness's own flag on a real run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fcbench.harness.scheduler import FunctionConfig
from fcbench.measures import block_bootstrap, is_cold
from fcbench.protocol import ALL_COLUMNS, InvocationRecord
from fcbench.results.summary import summarize
from fcbench.sim import simulate


def frame(records: list[InvocationRecord], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ALL_COLUMNS)
        w.writerows(r.row() for r in records)
    return path


def rec(i: int, status: int, latency_s: float, cold: bool | None = None, inst: str = "",
        error: str = "") -> InvocationRecord:
    return InvocationRecord(request_id=f"r{i}", intended_ts=100.0 + i, start_ts=100.0 + i,
                            end_ts=100.0 + i + latency_s, latency_ms=latency_s * 1000.0,
                            status=status, cold=cold, instance_id=inst, error=error)


def test_every_request_ends_as_one_outcome_and_p_cold_counts_all_requests(tmp_path):
    records = [rec(0, 200, 1.0, True, "i1"), rec(1, 200, 0.1, False, "i1"),
               rec(2, 429, 0.01, error="ResourceThrottled"),
               rec(3, 502, 0.5, True, "i2", "FunctionNotStarted"),
               rec(4, 0, 60.0, error="timeout")]
    s = summarize(frame(records, tmp_path / "r.csv"))
    counts = {k: v["count"] for k, v in s["outcomes"].items()}
    assert counts == {"warm": 1, "cold": 1, "throttled": 1, "failed": 2}
    assert sum(v["share"] for v in s["outcomes"].values()) == pytest.approx(1.0)
    # the 429, the 502 and the timeout stay in the denominator
    assert s["p_cold"]["value"] == pytest.approx(1 / 5) and s["p_cold"]["n"] == 5
    # latency from intended over all five; the timeout enters at its give-up time, censored
    lfi = s["latency_from_intended_ms"]
    assert lfi["count"] == 5 and lfi["censored"] == 1 and lfi["max"] == pytest.approx(60000)
    assert lfi["p50"] == pytest.approx(500.0)
    # service latency: successes only, and labelled so
    assert s["latency_ms"]["count"] == 2 and s["latency_ms"]["max"] == pytest.approx(1000)


def test_the_issue_example_one_cold_of_eighteen(tmp_path):
    records = [rec(0, 200, 0.5, True, "i1")] + [rec(i, 200, 0.1, False, "i1")
                                                 for i in range(1, 4)]
    records += [rec(i, 429, 0.001, error="ResourceThrottled") for i in range(4, 18)]
    s = summarize(frame(records, tmp_path / "r.csv"))
    assert s["p_cold"]["value"] == pytest.approx(1 / 18)
    assert s["outcomes"]["throttled"]["count"] == 14


def test_all_timeouts_still_give_a_tail(tmp_path):
    s = summarize(frame([rec(i, 0, 30.0, error="timeout") for i in range(8)], tmp_path / "r.csv"))
    assert s["latency_from_intended_ms"]["count"] == 8
    assert s["latency_from_intended_ms"]["censored"] == 8
    assert s["latency_from_intended_ms"]["p99"] == pytest.approx(30000)


def test_the_simulator_is_summarised_by_the_same_code():
    cfg = FunctionConfig(name="f", concurrency=1, max_instances=1, queue_size=1,
                         queue_timeout=60, idle_timeout=10.0)
    res = simulate([0.0, 0.0, 0.0, 5.0], cfg, service_s=lambda: 1.0, startup_s=lambda: 1.0)
    s = summarize(res.to_frame(origin_ts=1000.0))
    counts = {k: v["count"] for k, v in s["outcomes"].items()}
    # r0 waits for the start; r1 queued before the instance was ready: cold too; r2 finds the
    # queue full; r3 comes to a warm instance
    assert counts == {"warm": 1, "cold": 2, "throttled": 1, "failed": 0}
    assert s["p_cold"]["value"] == pytest.approx(res.p_cold) == pytest.approx(2 / 4)
    assert s["latency_from_intended_ms"]["max"] == pytest.approx(3000)  # r1: 1 s start + 1 + 1


def test_the_cold_rule():
    assert is_cold(start_ts=10.0, ready_ts=10.5, platform_cold=False, first=False) is True
    assert is_cold(start_ts=11.0, ready_ts=10.5, platform_cold=True, first=True) is False
    assert is_cold(start_ts=11.0, ready_ts=None, platform_cold=True, first=False) is True
    assert is_cold(start_ts=11.0, ready_ts=None, platform_cold=None, first=True) is True
    assert is_cold(start_ts=11.0, ready_ts=None, platform_cold=None, first=None) is None


def test_block_bootstrap_widens_the_interval_for_clustered_cold_requests():
    # 20 starts each making 4 requests cold, among 400: Wilson treats them as 80 independent
    clustered = np.zeros(400, dtype=bool)
    for start in range(0, 400, 20):
        clustered[start:start + 4] = True
    lo1, hi1 = block_bootstrap(clustered, block=1, seed=3)
    lo4, hi4 = block_bootstrap(clustered, block=20, seed=3)
    assert lo4 <= 0.2 <= hi4
    # blocks that keep each cluster whole give a different (honest) spread than single draws
    assert (hi4 - lo4) != pytest.approx(hi1 - lo1, rel=0.01)
    assert block_bootstrap(clustered, block=20, seed=3) == (lo4, hi4)  # seeded


@pytest.mark.slow
def test_on_a_harness_run_the_ready_ts_rule_equals_the_harness_flag(sleep_workload,
                                                                     fcbench_run, tmp_path):
    # bursts against instanceConcurrency 4: starts, claims, scale-out, queueing behind warm
    # and starting instances, warm reuse between bursts
    path = sleep_workload({"kind": "burst", "rateOn": 40, "onS": 0.5, "offS": 1.5,
                           "process": "poisson"}, duration=6, sleep_ms=250, startup_ms=300,
                          concurrency=4, idle=3, max_instances=4)
    res = fcbench_run("run", str(path), "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    [run] = [d for d in (tmp_path / "results").iterdir() if d.is_dir()]
    df = pd.read_csv(run / "requests.csv", keep_default_na=False)
    answered = df[df["status"] == 200]
    assert len(answered) >= 30
    assert (answered["cold"] == answered["platform_cold"]).all(), \
        answered[answered["cold"] != answered["platform_cold"]].to_string()
    assert answered["cold"].sum() >= 4 and (answered["cold"] == 0).sum() >= 4
    # and the rule itself: sent before the serving instance was ready
    assert ((answered["start_ts"] < answered["ready_ts"]) == (answered["cold"] == 1)).all()


def test_block_bootstrap_needs_two_blocks_and_wraps_around():
    few = np.array([True] * 8 + [False])
    assert block_bootstrap(few, block=8) == (0.0, 1.0)  # one cluster cannot be resampled
    many = np.tile(np.array([True] * 8 + [False] * 32), 25)  # 25 clusters of 8 in 1000
    lo, hi = block_bootstrap(many, block=8, seed=1)
    assert lo < 0.2 < hi and hi - lo < 0.2
