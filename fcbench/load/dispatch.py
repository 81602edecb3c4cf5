"""The load schedulers, without Locust, gevent or a network: clock, sleep and spawn are injected.

Key names: `OpenLoop` (send at absolute intended times, never early, and account for lag),
`ClosedLoop` (one user: send, wait for the answer, think, repeat until the end). The locustfile
drives them with gevent's clock and greenlets; the unit tests drive them with a virtual clock, so
lag accounting, ordering, sharding and interruption are checked without timing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["ClosedLoop", "Lag", "OpenLoop"]

#: Requests the open loop may spawn back to back (behind schedule) before it yields once.
MAX_BURST = 64


@dataclass
class Lag:
    """How late requests were handed to `spawn`, against their intended times (seconds)."""

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, lag_s: float) -> None:
        self.count += 1
        self.total_s += lag_s
        if lag_s > self.max_s:
            self.max_s = lag_s

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0


class OpenLoop:
    """Hands every arrival to `spawn(intended_ts)` at its intended time, in order.

    Sleeps with `sleep_until(ts)` until `spin_s` before an arrival, then calls `pause()` (a
    zero-length yield) until `clock()` reaches it, so nothing is sent early; when behind, it
    spawns back to back but pauses once every `max_burst` so answers still get in.

    Args:
        offsets: seconds after `start_ts` of each arrival, non-decreasing (a plan's offsets).
        start_ts: when offset 0 is (the same clock as `clock`, e.g. epoch seconds).
        clock / sleep_until / pause / spawn: the environment (gevent's, or a test's).
        spin_s: how long before an arrival to stop sleeping and start yielding.
    """

    def __init__(self, offsets: Iterable[float], start_ts: float, *, clock: Callable[[], float],
                 sleep_until: Callable[[float], None], pause: Callable[[], None],
                 spawn: Callable[[float], None], spin_s: float = 0.001,
                 max_burst: int = MAX_BURST) -> None:
        self.offsets = offsets
        self.start_ts = start_ts
        self.clock, self.sleep_until, self.pause, self.spawn = clock, sleep_until, pause, spawn
        self.spin_s = spin_s
        self.max_burst = max_burst
        self.lag = Lag()
        self.stopped = False

    def stop(self) -> None:
        """Send nothing more (checked before every arrival)."""
        self.stopped = True

    def run(self) -> int:
        """Send every arrival (or until `stop()`); returns how many were spawned."""
        clock, sleep_until, pause, spawn = self.clock, self.sleep_until, self.pause, self.spawn
        start, spin, burst, lag = self.start_ts, self.spin_s, self.max_burst, self.lag
        behind = 0
        for offset in self.offsets:
            if self.stopped:
                break
            due = start + offset
            wait = due - clock()
            if wait > spin:
                sleep_until(due - spin)
                behind = 0
            elif wait <= 0:
                behind += 1
                if behind >= burst:  # far behind: let responses in now and then
                    pause()
                    behind = 0
            now = clock()
            while now < due:  # a yielding busy-wait for the last `spin` seconds
                pause()
                now = clock()
            if self.stopped:
                break
            lag.add(now - due)
            spawn(due)
        return lag.count


class ClosedLoop:
    """One closed-loop user: `send(intended_ts)` (blocking until the answer), think, repeat.

    Args:
        end_ts: no request starts at or after this time.
        think: seconds to wait after each answer (drawn per call).
        clock / sleep / send: the environment.
    """

    def __init__(self, end_ts: float, *, think: Callable[[], float], clock: Callable[[], float],
                 sleep: Callable[[float], None], send: Callable[[float], None]) -> None:
        self.end_ts = end_ts
        self.think, self.clock, self.sleep, self.send = think, clock, sleep, send
        self.sent = 0
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> int:
        """Loop until `end_ts` (or `stop()`); returns how many requests were sent."""
        while not self.stopped and self.clock() < self.end_ts:
            self.send(self.clock())
            self.sent += 1
            pause = float(self.think())
            if pause > 0 and not self.stopped:
                self.sleep(min(pause, max(0.0, self.end_ts - self.clock())))
        return self.sent
