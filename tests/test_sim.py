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


def test_a_finish_at_a_queue_deadline_serves_the_queued_request():
    # b queues at 0.25 with a 1.25 s queue timeout (deadline 1.5); a, on the only instance,
    # finishes at 1.5: at equal times the platform's finish goes before the deadline
    res = simulate([0.0, 0.25], cfg(max_instances=1, queue_timeout=1.25),
                   service_s=lambda: 1.0, startup_s=lambda: 0.5)
    assert [r.status for r in res.requests] == [200, 200]
    assert res.requests[1].start_ts == 1.5


def test_requests_are_kept_in_columns_and_read_back_as_requests():
    res = simulate([0, 0, 0, 5], cfg(max_instances=1, queue_size=1), service_s=lambda: 1.0,
                   startup_s=lambda: 1.0)
    reqs = res.requests
    assert len(reqs) == 4 and [r.request_id for r in reqs] == ["r0", "r1", "r2", "r3"]
    assert reqs[-1] == reqs[3] and reqs[2].status == 429 and reqs[2].start_ts is None
    assert [r.cold for r in reqs[:2]] == [True, True] and reqs[3].cold is False
    with pytest.raises(IndexError):
        reqs[4]
    # the frame built from the columns equals one built from the same requests as a list
    from dataclasses import replace

    as_list = replace(res, requests=list(reqs))
    assert as_list.p_cold == res.p_cold and as_list.throttled == res.throttled == 1
    import pandas as pd

    pd.testing.assert_frame_equal(res.to_frame(origin_ts=100.0), as_list.to_frame(origin_ts=100.0))


def test_mean_instances_is_live_instance_seconds_over_the_run():
    # one instance created at 0, ready at 2, serves until 16, the run's end: 16 s of 16
    res = simulate([0, 5, 10, 15], cfg(), service_s=lambda: 1.0, startup_s=lambda: 2.0)
    assert res.end_s == pytest.approx(16.0)
    assert res.mean_instances == pytest.approx(1.0)
    # two instances 0..1 and 20..21 (idle timeout 10 s reclaims at 11): (11 + 1) / 21
    res = simulate([0, 20], cfg(), service_s=lambda: 1.0, startup_s=lambda: 0.0)
    assert res.mean_instances == pytest.approx((11.0 + 1.0) / 21.0)


def test_pre_drawn_service_and_startup_times_match_the_same_draws_from_callables():
    import numpy as np

    rng = np.random.default_rng(3)
    arrivals = np.cumsum(rng.exponential(0.2, 400))
    service, startup = rng.exponential(2.0, 400), rng.exponential(0.5, 400)
    c = cfg(concurrency=2, max_instances=2, queue_size=20, queue_timeout=1.0, idle_timeout=2.0)
    drawn = simulate(arrivals, c, service_s=service, startup_s=startup)
    called = simulate(arrivals.tolist(), c, service_s=iter(service.tolist()).__next__,
                      startup_s=iter(startup.tolist()).__next__)
    assert drawn.throttled > 0 and drawn.cold > 0  # queueing, rejections and starts all ran
    assert list(drawn.requests) == list(called.requests)
    assert drawn.instances == called.instances and drawn.end_s == called.end_s
    # every request admitted on arrival starts at its intended time, filled in after the loop
    served = [r for r in drawn.requests if r.status == 200]
    assert all(r.start_ts is not None and r.start_ts >= r.intended_ts for r in served)
    with pytest.raises(ValueError, match="service_s holds 3 values"):
        simulate(arrivals, c, service_s=service[:3], startup_s=startup)
