"""Arrival plans (`poisson`, `constant`, `uniform`, `burst`, `diurnal`, `trace`, `closed`): small
factories like Locust's `between`; open-loop plans yield intended send offsets lazily and
deterministically, and `Plan.shard` splits one plan across processes by arrival ordinal.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import UsageError
from . import trace as _trace

__all__ = [
    "BurstPlan",
    "ClosedPlan",
    "ConstantPlan",
    "DiurnalPlan",
    "Plan",
    "PoissonPlan",
    "TracePlan",
    "UniformPlan",
    "burst",
    "closed",
    "constant",
    "diurnal",
    "poisson",
    "trace",
    "uniform",
]

SECONDS_PER_MINUTE = 60.0


# --------------------------------------------------------------------------------------------
# Base


@dataclass(frozen=True, kw_only=True)
class Plan:
    """An arrival plan. Build one with a factory (`poisson(...)`, ...), not the class itself.

    Attributes:
        kind: the plan's name in workload YAML (``poisson``, ``burst``, ...).
        open_loop: True when arrivals follow a schedule regardless of responses.
        shard_index / shard_count: which share of the arrivals this plan yields (see `shard`).
    """

    kind: ClassVar[str] = "plan"
    open_loop: ClassVar[bool] = True

    shard_index: int = 0
    shard_count: int = 1

    def offsets(self, duration_s: float) -> Iterator[float]:
        """Intended send times, in seconds from the run start: non-decreasing, all < `duration_s`.

        The iterator is lazy (nothing is materialised) and the same for the same plan and seed.
        A sharded plan yields every `shard_count`-th arrival of the whole plan, from
        `shard_index` on.
        """
        duration = _check_duration(duration_s)
        arrivals = self._arrivals(duration)
        if self.shard_count == 1:
            return arrivals
        return itertools.islice(arrivals, self.shard_index, None, self.shard_count)

    def expected_count(self, duration_s: float) -> float:
        """Mean number of arrivals in `duration_s` (for a shard: its share, approximately)."""
        return self._expected(_check_duration(duration_s)) / self.shard_count

    def shard(self, index: int, count: int) -> Plan:
        """The arrivals of process `index` of `count`: those whose ordinal % count == index.

        The shards of one plan partition it exactly (no arrival lost or repeated); sharding a
        shard splits it further the same way.
        """
        _check_shard(index, count)
        return dataclasses.replace(self, shard_index=self.shard_index + index * self.shard_count,
                                   shard_count=self.shard_count * count)

    def to_dict(self) -> dict[str, Any]:
        """The plan's parameters as plain values (for run.yaml)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if f.repr and f.name not in ("shard_index", "shard_count"):
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        if self.shard_count > 1:
            out["shard"] = [self.shard_index, self.shard_count]
        return out

    # Subclasses: the unsharded arrivals, and their mean count.
    def _arrivals(self, duration_s: float) -> Iterator[float]:
        raise NotImplementedError

    def _expected(self, duration_s: float) -> float:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Homogeneous open-loop plans


@dataclass(frozen=True)
class PoissonPlan(Plan):
    """Poisson arrivals: exponential inter-arrival times with mean 1/rate."""

    kind: ClassVar[str] = "poisson"
    rate: float
    seed: int = 0

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self.seed)
        rate = self.rate
        t = 0.0
        while True:
            t += _expo(rng, rate)
            if t >= duration_s:
                return
            yield t

    def _expected(self, duration_s: float) -> float:
        return self.rate * duration_s


@dataclass(frozen=True)
class ConstantPlan(Plan):
    """Evenly spaced arrivals at 0, 1/rate, 2/rate, ..."""

    kind: ClassVar[str] = "constant"
    rate: float

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rate = self.rate
        for i in itertools.count():
            t = i / rate
            if t >= duration_s:
                return
            yield t

    def _expected(self, duration_s: float) -> float:
        return float(math.ceil(self.rate * duration_s))


@dataclass(frozen=True)
class UniformPlan(Plan):
    """Inter-arrival times uniform on [0, 2/rate]: mean 1/rate, fewer long gaps than Poisson."""

    kind: ClassVar[str] = "uniform"
    rate: float
    seed: int = 0

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self.seed)
        span = 2.0 / self.rate
        t = 0.0
        while True:
            t += rng.random() * span
            if t >= duration_s:
                return
            yield t

    def _expected(self, duration_s: float) -> float:
        return self.rate * duration_s


# --------------------------------------------------------------------------------------------
# Time-varying open-loop plans


@dataclass(frozen=True)
class BurstPlan(Plan):
    """On/off traffic: `rate_on` for `on_s` seconds, then `rate_off` for `off_s`, repeated."""

    kind: ClassVar[str] = "burst"
    rate_on: float
    on_s: float
    off_s: float
    rate_off: float = 0.0
    seed: int = 0
    process: Literal["poisson", "constant"] = "poisson"

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self.seed)
        period = self.on_s + self.off_s
        for cycle in itertools.count():
            start = cycle * period
            if start >= duration_s:
                return
            windows = ((start, start + self.on_s, self.rate_on),
                       (start + self.on_s, start + period, self.rate_off))
            for w0, w1, rate in windows:
                if rate > 0 and w1 > w0:
                    yield from self._window(rng, w0, min(w1, duration_s), rate)

    def _window(self, rng: random.Random, w0: float, w1: float, rate: float) -> Iterator[float]:
        if self.process == "constant":
            for i in itertools.count():
                t = w0 + i / rate
                if t >= w1:
                    return
                yield t
        t = w0
        while True:  # memoryless: restarting the process at a window edge is exact
            t += _expo(rng, rate)
            if t >= w1:
                return
            yield t

    def _expected(self, duration_s: float) -> float:
        period = self.on_s + self.off_s
        cycles = math.floor(duration_s / period)
        rest = duration_s - cycles * period
        per_cycle = self.rate_on * self.on_s + self.rate_off * self.off_s
        return (cycles * per_cycle + self.rate_on * min(rest, self.on_s)
                + self.rate_off * max(0.0, rest - self.on_s))


@dataclass(frozen=True)
class DiurnalPlan(Plan):
    """Non-homogeneous Poisson arrivals whose rate follows a piecewise-linear daily-style curve.

    The period is cut into ``len(rates)`` equal segments; ``rates[i]`` is the rate at the start
    of segment i, and the rate moves linearly to ``rates[i+1]`` (wrapping to ``rates[0]``, so the
    repeated curve is continuous). Arrivals are drawn by thinning a Poisson process at max(rates).
    """

    kind: ClassVar[str] = "diurnal"
    rates: tuple[float, ...]
    period_s: float
    seed: int = 0

    def rate_at(self, t: float) -> float:
        """The intended rate (per second) at `t` seconds from the run start."""
        n = len(self.rates)
        seg = self.period_s / n
        phase = t % self.period_s
        i = min(int(phase // seg), n - 1)
        frac = (phase - i * seg) / seg
        r0, r1 = self.rates[i], self.rates[(i + 1) % n]
        return r0 + (r1 - r0) * frac

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self.seed)
        peak = max(self.rates)
        t = 0.0
        while True:
            t += _expo(rng, peak)
            if t >= duration_s:
                return
            if rng.random() * peak < self.rate_at(t):
                yield t

    def _expected(self, duration_s: float) -> float:
        n = len(self.rates)
        seg = self.period_s / n
        periods = math.floor(duration_s / self.period_s)
        total = periods * seg * sum(self.rates)
        rest = duration_s - periods * self.period_s
        for i in range(n):
            if rest <= 0:
                break
            r0, r1 = self.rates[i], self.rates[(i + 1) % n]
            x = min(rest, seg)
            total += r0 * x + (r1 - r0) * x * x / (2 * seg)
            rest -= seg
        return total


@dataclass(frozen=True)
class TracePlan(Plan):
    """Replay of one function's per-minute invocation counts (Azure Functions 2019 format).

    Each minute's count is spread uniformly at random within the minute, then the time axis is
    divided by `compression` (60 = one trace minute per second). The replay starts at trace
    minute `start_minute` and ends with the trace (it does not wrap around).
    """

    kind: ClassVar[str] = "trace"
    counts: tuple[int, ...] = field(repr=False)
    path: str
    function: str
    compression: float = 1.0
    seed: int = 0
    start_minute: int = 0

    @property
    def minute_s(self) -> float:
        """Length of one trace minute after compression, in seconds."""
        return SECONDS_PER_MINUTE / self.compression

    @property
    def span_s(self) -> float:
        """Length of the replayed part of the trace after compression, in seconds."""
        return (len(self.counts) - self.start_minute) * self.minute_s

    def minute_start(self, j: int) -> float:
        """Offset (s) at which the `j`-th replayed minute begins; arrivals of minute j lie in
        [minute_start(j), minute_start(j + 1))."""
        return j * SECONDS_PER_MINUTE / self.compression

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self.seed)
        width = self.minute_s
        for j, count in enumerate(self.counts[self.start_minute:]):
            lo = self.minute_start(j)
            if lo >= duration_s:
                return
            hi = self.minute_start(j + 1)
            last = math.nextafter(hi, -math.inf)
            # Sorted uniforms drawn one at a time (the minimum of the n still to come), so a busy
            # minute is never held in memory as a list.
            x = 0.0
            for left in range(count, 0, -1):
                x = 1.0 - (1.0 - x) * (1.0 - rng.random()) ** (1.0 / left)
                t = min(lo + x * width, last)
                if t >= duration_s:
                    return
                yield t

    def _expected(self, duration_s: float) -> float:
        total = 0.0
        for j, count in enumerate(self.counts[self.start_minute:]):
            lo, hi = self.minute_start(j), self.minute_start(j + 1)
            if lo >= duration_s:
                break
            total += count * min(1.0, (duration_s - lo) / (hi - lo))
        return total

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["total"] = sum(self.counts[self.start_minute:])
        out["span_s"] = self.span_s
        return out


# --------------------------------------------------------------------------------------------
# Closed loop


@dataclass(frozen=True)
class ClosedPlan(Plan):
    """Closed loop: `users` users each send a request, wait for its answer, think, repeat.

    There is no arrival schedule (`offsets` raises); sharding splits the users.
    """

    kind: ClassVar[str] = "closed"
    open_loop: ClassVar[bool] = False
    users: int
    think: Literal["constant", "exponential"] = "constant"
    think_s: float = 1.0
    seed: int = 0

    def think_time(self, rng: random.Random) -> float:
        """Seconds a user waits after a response before its next request."""
        if self.think == "exponential" and self.think_s > 0:
            return _expo(rng, 1.0 / self.think_s)
        return self.think_s

    def user_rng(self, user: int) -> random.Random:
        """A seeded generator for this shard's `user`-th user (distinct across shards)."""
        return random.Random(f"{self.seed}/{self.shard_index + user * self.shard_count}")

    def offsets(self, duration_s: float) -> Iterator[float]:
        raise UsageError("a closed-loop plan has no arrival schedule; run its `users` users with "
                         "`think_time` between requests instead of calling offsets()")

    def expected_count(self, duration_s: float) -> float:
        """An upper bound: every user thinking and never waiting for a response."""
        duration = _check_duration(duration_s)
        if self.users == 0:
            return 0.0
        return math.inf if self.think_s == 0 else self.users * duration / self.think_s

    def shard(self, index: int, count: int) -> ClosedPlan:
        """Users whose number % count == index (so the shards' users add up to `users`)."""
        _check_shard(index, count)
        share = self.users // count + (1 if index < self.users % count else 0)
        return dataclasses.replace(self, users=share,
                                   shard_index=self.shard_index + index * self.shard_count,
                                   shard_count=self.shard_count * count)


# --------------------------------------------------------------------------------------------
# Factories


def poisson(rate: float, seed: int = 0) -> PoissonPlan:
    """Poisson arrivals at `rate` requests per second."""
    return PoissonPlan(rate=_positive("rate", rate, "requests per second"), seed=int(seed))


def constant(rate: float) -> ConstantPlan:
    """Evenly spaced arrivals at `rate` requests per second, the first at 0."""
    return ConstantPlan(rate=_positive("rate", rate, "requests per second"))


def uniform(rate: float, seed: int = 0) -> UniformPlan:
    """Arrivals with inter-arrival times uniform on [0, 2/rate]."""
    return UniformPlan(rate=_positive("rate", rate, "requests per second"), seed=int(seed))


def burst(rate_on: float, on_s: float, off_s: float, rate_off: float = 0.0, seed: int = 0,
          process: str = "poisson") -> BurstPlan:
    """`rate_on` req/s for `on_s` seconds, then `rate_off` for `off_s` seconds, repeated.

    `process` is ``poisson`` (random arrivals within each window) or ``constant`` (even spacing).
    """
    if process not in ("poisson", "constant"):
        raise ValueError(f"process must be 'poisson' or 'constant' (got {process!r})")
    return BurstPlan(rate_on=_positive("rate_on", rate_on, "requests per second"),
                     on_s=_positive("on_s", on_s, "seconds"),
                     off_s=_non_negative("off_s", off_s, "seconds"),
                     rate_off=_non_negative("rate_off", rate_off, "requests per second"),
                     seed=int(seed), process=process)  # type: ignore[arg-type]


def diurnal(rates: Sequence[float], period_s: float, seed: int = 0) -> DiurnalPlan:
    """Poisson arrivals whose rate follows the piecewise-linear curve `rates` over `period_s`."""
    if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence) or not rates:
        raise ValueError("rates must be a non-empty list of rates (requests per second), one per "
                         "equal segment of the period")
    values = tuple(_non_negative(f"rates[{i}]", r, "requests per second")
                   for i, r in enumerate(rates))
    if max(values) <= 0:
        raise ValueError("at least one of rates must be greater than 0 requests per second")
    return DiurnalPlan(rates=values, period_s=_positive("period_s", period_s, "seconds"),
                       seed=int(seed))


def trace(path: str | Path, function: str = "top", compression: float = 1.0, seed: int = 0,
          start_minute: int = 0) -> TracePlan:
    """Replay one function of an Azure Functions 2019 per-minute invocation CSV.

    Args:
        path: the CSV (``HashOwner,HashApp,HashFunction,Trigger,1,...,1440``; ``.gz`` too).
        function: a HashFunction value, ``index:N`` (N-th data row, from 0) or ``top``
            (the row with most invocations).
        compression: time compression; 60 replays one trace minute per second.
        seed: places the arrivals within each minute.
        start_minute: the trace minute (from 0) the replay starts at.

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: no such function, a malformed CSV, or a bad argument.
    """
    compression = _positive("compression", compression, "",
                            hint="; 60 replays one trace minute per second")
    if isinstance(start_minute, bool) or not isinstance(start_minute, int) or start_minute < 0:
        raise ValueError(f"start_minute must be a whole number ≥ 0 (got {start_minute!r})")
    row = _trace.read_function(path, function)
    if start_minute >= len(row.counts):
        raise ValueError(f"start_minute {start_minute} is past the trace's last minute "
                         f"({len(row.counts) - 1}); pick an earlier minute")
    return TracePlan(counts=row.counts, path=str(path), function=row.function,
                     compression=compression, seed=int(seed), start_minute=start_minute)


def closed(users: int, think: str = "constant", think_s: float = 1.0, seed: int = 0) -> ClosedPlan:
    """Closed loop: `users` concurrent users, each thinking `think_s` seconds between requests
    (``constant``) or an exponentially distributed time with that mean (``exponential``)."""
    if isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise ValueError(f"users must be a whole number ≥ 1 (got {users!r})")
    if think not in ("constant", "exponential"):
        raise ValueError(f"think must be 'constant' or 'exponential' (got {think!r})")
    return ClosedPlan(users=users, think=think,  # type: ignore[arg-type]
                      think_s=_non_negative("think_s", think_s, "seconds"), seed=int(seed))


# --------------------------------------------------------------------------------------------
# Helpers


def _expo(rng: random.Random, rate: float) -> float:
    # Written out (not rng.expovariate) so the stream cannot change with the Python version.
    return -math.log(1.0 - rng.random()) / rate


def _number(name: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        what = f" of {unit}" if unit else ""
        raise ValueError(f"{name} must be a finite number{what} (got {value!r})")
    return float(value)


def _positive(name: str, value: Any, unit: str, *, hint: str = "") -> float:
    number = _number(name, value, unit)
    if number <= 0:
        raise ValueError(f"{name} must be greater than 0{' ' + unit if unit else ''} "
                         f"(got {value!r}){hint}")
    return number


def _non_negative(name: str, value: Any, unit: str) -> float:
    number = _number(name, value, unit)
    if number < 0:
        raise ValueError(f"{name} must be 0 or more {unit} (got {value!r})")
    return number


def _check_duration(duration_s: Any) -> float:
    return _non_negative("duration_s", duration_s, "seconds")


def _check_shard(index: int, count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"shard count must be a whole number ≥ 1 (got {count!r})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"shard index must be a whole number from 0 to {count - 1} "
                         f"(got {index!r})")
