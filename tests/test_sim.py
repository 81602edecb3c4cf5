"""The simulator drives the same pure scheduler as the harness."""

from __future__ import annotations

import random

import pytest

from fcbench.harness.scheduler import FunctionConfig
from fcbench.sim import simulate


def cfg(**kw):
    base = dict(name="f", concurrency=1, max_instances=100, queue_size=100, queue_timeout=60,
                idle_timeout=10.0)
    base.update(kw)
    return FunctionConfig(**base)


def test_sparse_arrivals_beyond_idle_timeout_are_all_cold():
    res = simulate([0, 20, 40, 60], cfg(), service_s=lambda: 1.0, startup_s=lambda: 2.0)
    assert [r.cold for r in res.requests] == [True] * 4
    assert res.instances_started == 4 and res.reclaims == 4
    assert [r.latency for r in res.requests] == [3.0] * 4


def test_arrivals_within_idle_timeout_reuse_the_warm_instance():
    res = simulate([0, 5, 10, 15], cfg(), service_s=lambda: 1.0, startup_s=lambda: 2.0)
    assert [r.cold for r in res.requests] == [True, False, False, False]
    assert res.instances_started == 1
    assert res.active_s == pytest.approx(4.0)
    # ready at 2; the run ends at its last answer (16), as a measured run does: no idle tail
    assert res.alive_s == pytest.approx(16.0 - 2.0)


def test_queue_full_throttles_like_the_harness():
    res = simulate([0, 0, 0], cfg(max_instances=1, queue_size=1), service_s=lambda: 1.0,
                   startup_s=lambda: 1.0)
    assert [r.status for r in res.requests] == [200, 200, 429]
    assert res.throttled == 1
    assert [r.start_ts for r in res.requests[:2]] == [1.0, 2.0]  # the second waited its turn


def test_p_cold_falls_as_concurrency_rises():
    """FC's claim, reproduced by the rules themselves: more traffic, fewer cold starts."""
    rng = random.Random(7)
    p = []
    for concurrency in (1, 4, 16):
        service = 0.2
        rate = concurrency / service
        t, arrivals = 0.0, []
        while t < 600:
            t += rng.expovariate(rate)
            arrivals.append(t)
        res = simulate(arrivals, cfg(idle_timeout=1.0),
                       service_s=lambda: rng.expovariate(1 / service),
                       startup_s=lambda: 0.5)
        p.append(res.p_cold)
    assert p[0] > p[1] > p[2]


def test_at_equal_times_a_finish_goes_before_an_arrival_as_in_the_harness():
    # 1.0 s service at 1.0 s spacing: each request finds the previous one just finished
    res = simulate([0.0, 1.0, 2.0, 3.0], cfg(), service_s=lambda: 1.0, startup_s=lambda: 0.0)
    assert res.instances_started == 1
    assert [r.cold for r in res.requests] == [True, False, False, False]


def test_provisioned_instances_make_sparse_traffic_warm_and_meter_their_idle_time():
    res = simulate([10, 40, 70], cfg(min_instances=2, idle_timeout=5.0), service_s=lambda: 1.0,
                   startup_s=lambda: 2.0)
    assert [r.cold for r in res.requests] == [False, False, False]
    assert res.instances_started == 2
    assert all(row["idle_s"] > 60 for row in res.instances)  # kept idle the whole run
