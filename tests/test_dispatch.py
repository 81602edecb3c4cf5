"""The load schedulers on a virtual clock: no Locust, no gevent, no network, no timing.

A `VirtualClock` stands in for the wall clock: sleeping jumps time forward (plus an injected
oversleep, as a real timer wakes up late), a pause advances it by one tick, and `spawn` records
when each request was handed over. So lag, order, sharding and interruption are checked exactly.
"""

from __future__ import annotations

import pytest

from plan_utils import burst, constant, poisson

from fcbench.load.dispatch import ClosedLoop, OpenLoop


class VirtualClock:
    def __init__(self, now: float = 1000.0, *, oversleep_s: float = 0.0, tick_s: float = 1e-5,
                 spawn_cost_s: float = 0.0) -> None:
        self.now = now
        self.oversleep_s = oversleep_s
        self.tick_s = tick_s
        self.spawn_cost_s = spawn_cost_s
        self.spawned: list[tuple[float, float]] = []  # (intended, handed over)
        self.pauses = 0

    def clock(self) -> float:
        return self.now

    def sleep_until(self, ts: float) -> None:
        self.now = max(self.now, ts + self.oversleep_s)

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def pause(self) -> None:
        self.pauses += 1
        self.now += self.tick_s

    def spawn(self, due: float) -> None:
        self.spawned.append((due, self.now))
        self.now += self.spawn_cost_s

    def open_loop(self, offsets, start: float | None = None, **kw) -> OpenLoop:
        return OpenLoop(offsets, self.now if start is None else start, clock=self.clock,
                        sleep_until=self.sleep_until, pause=self.pause, spawn=self.spawn, **kw)


def test_arrivals_are_handed_over_in_order_never_early_and_within_the_spin():
    vc = VirtualClock()
    offsets = list(poisson(200, seed=4).offsets(5.0))
    loop = vc.open_loop(offsets, spin_s=0.001)
    assert loop.run() == len(offsets)
    dues = [d for d, _ in vc.spawned]
    assert dues == [vc.spawned[0][0] + o - offsets[0] for o in offsets]  # the plan, in order
    lags = [at - due for due, at in vc.spawned]
    assert min(lags) >= 0  # never early
    assert max(lags) <= vc.tick_s + 1e-9  # the spin loop catches each arrival within a tick
    assert loop.lag.count == len(offsets) and loop.lag.max_s == pytest.approx(max(lags))


def test_lag_accounting_sees_a_timer_that_wakes_late():
    # the timer oversleeps 3 ms past (due - spin): every arrival after a sleep is 2 ms late
    vc = VirtualClock(oversleep_s=0.003)
    offsets = [0.1 * i for i in range(1, 21)]
    loop = vc.open_loop(offsets, spin_s=0.001)
    loop.run()
    lags = [at - due for due, at in vc.spawned]
    assert lags == pytest.approx([0.002] * 20)
    assert loop.lag.max_s == pytest.approx(0.002) and loop.lag.mean_s == pytest.approx(0.002)


def test_behind_schedule_it_bursts_but_yields_every_max_burst():
    vc = VirtualClock()
    offsets = [0.0] * 200  # all due at once, at the start
    loop = vc.open_loop(offsets, start=vc.now - 1.0, max_burst=64)  # already 1 s behind
    loop.run()
    assert len(vc.spawned) == 200
    assert vc.pauses == 200 // 64  # one yield per burst, no busy-wait (they are overdue)
    assert loop.lag.max_s >= 1.0


def test_stop_interrupts_before_the_next_arrival():
    vc = VirtualClock()
    offsets = [0.01 * i for i in range(100)]
    loop = vc.open_loop(offsets)
    original = vc.spawn

    def spawn_and_stop(due: float) -> None:
        original(due)
        if len(vc.spawned) == 10:
            loop.stop()

    loop.spawn = spawn_and_stop
    assert loop.run() == 10 and len(vc.spawned) == 10


@pytest.mark.parametrize("plan", [poisson(300, seed=2), constant(97),
                                  burst(400, 0.5, 0.5, seed=8)])
@pytest.mark.parametrize("count", [2, 3])
def test_shards_partition_the_plan_exactly(plan, count):
    whole = []
    vc = VirtualClock()
    vc.open_loop(list(plan.offsets(4.0)), start=0.0).run()
    whole = sorted(d for d, _ in vc.spawned)
    parts = []
    for index in range(count):
        vc = VirtualClock()
        vc.open_loop(list(plan.shard(index, count).offsets(4.0)), start=0.0).run()
        parts.append([d for d, _ in vc.spawned])
    assert sorted(d for part in parts for d in part) == pytest.approx(whole)
    assert all(part for part in parts)


def test_closed_loop_user_sends_thinks_and_stops_at_the_end():
    vc = VirtualClock()
    sends: list[float] = []

    def send(intended: float) -> None:  # the answer takes 0.3 s
        sends.append(intended)
        vc.now += 0.3

    user = ClosedLoop(vc.now + 2.0, think=lambda: 0.2, clock=vc.clock, sleep=vc.sleep, send=send)
    assert user.run() == 4  # 0.5 s a cycle: at 0, 0.5, 1.0, 1.5; none at 2.0
    assert [s - sends[0] for s in sends] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    stopped = ClosedLoop(vc.now + 2.0, think=lambda: 0.0, clock=vc.clock, sleep=vc.sleep,
                         send=lambda ts: stopped.stop())
    assert stopped.run() == 1
