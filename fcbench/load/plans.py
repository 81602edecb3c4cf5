"""Arrival plans: one validated model per plan kind (as written in a workload's ``plan:``) that
also yields its arrivals, lazily and deterministically.

Key names: `Plan` (the base: `offsets`, `expected_count`, `shard`, `to_dict`), `PoissonPlan`,
`ConstantPlan`, `UniformPlan`, `BurstPlan`, `DiurnalPlan`, `TracePlan`, `ClosedPlan`;
`PLAN_MODELS` (kind -> model: the one list the loader, the errors, the union and the docs read),
`PLAN_KINDS`, `PlanSpec` (the discriminated union). `Plan.bind` fills in the workload's seed and
reads a trace's file; `Plan.shard` splits one plan across processes by arrival ordinal.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import Field, PrivateAttr, field_validator

from .._model import Model
from ..errors import UsageError
from . import trace as _trace
from .durations import MAX_USERS, Count, Duration, Factor, Rate

__all__ = ["BurstPlan", "ClosedPlan", "ConstantPlan", "DiurnalPlan", "PLAN_KINDS", "PLAN_MODELS",
           "Plan", "PlanSpec", "PoissonPlan", "TracePlan", "UniformPlan"]

SECONDS_PER_MINUTE = 60.0


# --------------------------------------------------------------------------------------------
# Base


class Plan(Model):
    """An arrival plan. `kind` names it in workload YAML.

    Attributes:
        open_loop: True when arrivals follow a schedule regardless of responses.
        shard_index / shard_count: which share of the arrivals this plan yields (see `shard`).
    """

    open_loop: ClassVar[bool] = True
    #: run.yaml's ``resolved`` keys and the attributes they come from, in order.
    _RESOLVED: ClassVar[tuple[tuple[str, str], ...]] = ()

    seed: int | None = Field(None, description="default: the workload's seed")

    _shard: tuple[int, int] = PrivateAttr((0, 1))

    @property
    def shard_index(self) -> int:
        return self._shard[0]

    @property
    def shard_count(self) -> int:
        return self._shard[1]

    def bind(self, seed: int | None = None, base: Path | None = None) -> Plan:
        """This plan ready to send: `seed` where it names none (the workload's), and its files
        read relative to `base` (a trace's CSV).

        Raises:
            OSError / TraceFormatError / ValueError: a trace that cannot be read or replayed.
        """
        if self.seed is not None or seed is None:
            return self
        return self.model_copy(update={"seed": int(seed)})

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
        return self._sharded(index, count, {})

    def _sharded(self, index: int, count: int, update: dict[str, Any]) -> Plan:
        _check_shard(index, count)
        out = self.model_copy(update=update)
        out._shard = (self.shard_index + index * self.shard_count, self.shard_count * count)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The plan's parameters as plain values (for run.yaml's ``resolved``)."""
        out: dict[str, Any] = {"kind": self.kind}
        for key, attr in self._RESOLVED:
            value = getattr(self, attr)
            out[key] = 0 if key == "seed" and value is None else value
        if self.shard_count > 1:
            out["shard"] = [self.shard_index, self.shard_count]
        return out

    # Subclasses: the unsharded arrivals, and their mean count.
    def _arrivals(self, duration_s: float) -> Iterator[float]:
        raise NotImplementedError

    def _expected(self, duration_s: float) -> float:
        raise NotImplementedError

    def _seed(self) -> int:
        return 0 if self.seed is None else self.seed


# --------------------------------------------------------------------------------------------
# Homogeneous open-loop plans


class PoissonPlan(Plan):
    """Poisson arrivals at `rate` per second (exponential inter-arrival times)."""

    kind: Literal["poisson"]
    rate: Rate = Field(gt=0, description="requests per second")

    _RESOLVED = (("rate", "rate"), ("seed", "seed"))

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self._seed())
        rate = self.rate
        t = 0.0
        while True:
            t += _expo(rng, rate)
            if t >= duration_s:
                return
            yield t

    def _expected(self, duration_s: float) -> float:
        return self.rate * duration_s



class ConstantPlan(Plan):
    """Evenly spaced arrivals at `rate` per second: 0, 1/rate, 2/rate, ..."""

    kind: Literal["constant"]
    rate: Rate = Field(gt=0, description="requests per second")

    _RESOLVED = (("rate", "rate"),)

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rate = self.rate
        for i in itertools.count():
            t = i / rate
            if t >= duration_s:
                return
            yield t

    def _expected(self, duration_s: float) -> float:
        return float(math.ceil(self.rate * duration_s))



class UniformPlan(Plan):
    """Inter-arrival times uniform on [0, 2/rate]: mean 1/rate, fewer long gaps than Poisson."""

    kind: Literal["uniform"]
    rate: Rate = Field(gt=0, description="requests per second")

    _RESOLVED = (("rate", "rate"), ("seed", "seed"))

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self._seed())
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


class BurstPlan(Plan):
    """`rateOn` for `onS` seconds, then `rateOff` for `offS` seconds, repeated; `process` is
    ``poisson`` (random arrivals within each window) or ``constant`` (even spacing)."""

    kind: Literal["burst"]
    rate_on: Rate = Field(gt=0, description="requests per second while on")
    on_s: Duration = Field(gt=0)
    off_s: Duration = Field(ge=0)
    rate_off: Rate = Field(0.0, ge=0, description="requests per second while off")
    process: Literal["poisson", "constant"] = "poisson"

    _RESOLVED = (("rate_on", "rate_on"), ("on_s", "on_s"), ("off_s", "off_s"),
                 ("rate_off", "rate_off"), ("seed", "seed"), ("process", "process"))

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self._seed())
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



class DiurnalPlan(Plan):
    """Non-homogeneous Poisson arrivals whose rate follows a piecewise-linear curve over
    `period`, repeated.

    The period is cut into ``len(rates)`` equal segments; ``rates[i]`` is the rate at the start
    of segment i, and the rate moves linearly to ``rates[i+1]`` (wrapping to ``rates[0]``, so the
    repeated curve is continuous). Arrivals are drawn by thinning a Poisson process at max(rates).
    """

    kind: Literal["diurnal"]
    rates: list[Annotated[Rate, Field(ge=0)]] = Field(min_length=1)
    period: Duration = Field(gt=0)

    _RESOLVED = (("rates", "rates"), ("period_s", "period"), ("seed", "seed"))

    @field_validator("rates")
    @classmethod
    def _some_traffic(cls, value: list[float]) -> list[float]:
        if max(value) <= 0:
            raise ValueError("at least one rate must be greater than 0 requests per second")
        return value

    def rate_at(self, t: float) -> float:
        """The intended rate (per second) at `t` seconds from the run start."""
        n = len(self.rates)
        seg = self.period / n
        phase = t % self.period
        i = min(int(phase // seg), n - 1)
        frac = (phase - i * seg) / seg
        r0, r1 = self.rates[i], self.rates[(i + 1) % n]
        return r0 + (r1 - r0) * frac

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self._seed())
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
        seg = self.period / n
        periods = math.floor(duration_s / self.period)
        total = periods * seg * sum(self.rates)
        rest = duration_s - periods * self.period
        for i in range(n):
            if rest <= 0:
                break
            r0, r1 = self.rates[i], self.rates[(i + 1) % n]
            x = min(rest, seg)
            total += r0 * x + (r1 - r0) * x * x / (2 * seg)
            rest -= seg
        return total



class TracePlan(Plan):
    """Replay of one function of an Azure Functions 2019 per-minute CSV.

    Each minute's count is spread uniformly at random within the minute, then the time axis is
    divided by `compression` (60 = one trace minute per second). The replay starts at trace
    minute `startMinute` and ends with the trace (it does not wrap around). `bind` reads the
    file; until then the plan has no arrivals.
    """

    kind: Literal["trace"]
    file: str = Field(min_length=1, description="relative to the workload's folder")
    function: str = Field("top", description="HashFunction, index:N or top")
    compression: Factor = Field(1.0, gt=0, le=1e6,
                                description="60 = one trace minute per second")
    start_minute: Count = Field(0, ge=0)

    _RESOLVED = (("path", "path"), ("function", "function_hash"),
                 ("compression", "compression"), ("seed", "seed"),
                 ("start_minute", "start_minute"))
    _counts: tuple[int, ...] = PrivateAttr(())
    _path: str = PrivateAttr("")
    _function: str = PrivateAttr("")

    def bind(self, seed: int | None = None, base: Path | None = None) -> TracePlan:
        out = super().bind(seed, base)
        assert isinstance(out, TracePlan)
        out = out.model_copy()
        path = Path(base or ".") / self.file
        row = _trace.read_function(path, self.function)
        if self.start_minute >= len(row.counts):
            raise ValueError(f"start_minute {self.start_minute} is past the trace's last minute "
                             f"({len(row.counts) - 1}); pick an earlier minute")
        out._counts, out._path, out._function = row.counts, str(path), row.function
        return out

    @property
    def counts(self) -> tuple[int, ...]:
        """Invocations per trace minute (after `bind`)."""
        return self._counts

    @property
    def path(self) -> str:
        """The CSV read (after `bind`)."""
        return self._path

    @property
    def function_hash(self) -> str:
        """The HashFunction replayed (after `bind`; `function` may be ``top`` or ``index:N``)."""
        return self._function

    @property
    def minute_s(self) -> float:
        """Length of one trace minute after compression, in seconds."""
        return SECONDS_PER_MINUTE / self.compression

    @property
    def span_s(self) -> float:
        """Length of the replayed part of the trace after compression, in seconds."""
        return (len(self._counts) - self.start_minute) * self.minute_s

    def minute_start(self, j: int) -> float:
        """Offset (s) at which the `j`-th replayed minute begins; arrivals of minute j lie in
        [minute_start(j), minute_start(j + 1))."""
        return j * SECONDS_PER_MINUTE / self.compression

    def _arrivals(self, duration_s: float) -> Iterator[float]:
        rng = random.Random(self.seed)
        width = self.minute_s
        for j, count in enumerate(self._counts[self.start_minute:]):
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
        for j, count in enumerate(self._counts[self.start_minute:]):
            lo, hi = self.minute_start(j), self.minute_start(j + 1)
            if lo >= duration_s:
                break
            total += count * min(1.0, (duration_s - lo) / (hi - lo))
        return total

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["total"] = sum(self._counts[self.start_minute:])
        out["span_s"] = self.span_s
        return out


# --------------------------------------------------------------------------------------------
# Closed loop


class ClosedPlan(Plan):
    """Closed loop: `users` users, each sending, awaiting the answer and thinking `thinkS`
    seconds (``constant``) or an exponentially distributed time with that mean
    (``exponential``), repeated.

    There is no arrival schedule (`offsets` raises); sharding splits the users.
    """

    open_loop: ClassVar[bool] = False
    kind: Literal["closed"]
    users: Count = Field(ge=1, le=MAX_USERS)
    think: Literal["constant", "exponential"] = "constant"
    think_s: Duration = Field(1.0, ge=0)

    _RESOLVED = (("users", "users"), ("think", "think"), ("think_s", "think_s"),
                 ("seed", "seed"))

    def think_time(self, rng: random.Random) -> float:
        """Seconds a user waits after a response before its next request."""
        if self.think == "exponential" and self.think_s > 0:
            return _expo(rng, 1.0 / self.think_s)
        return self.think_s

    def user_rng(self, user: int) -> random.Random:
        """A seeded generator for this shard's `user`-th user (distinct across shards)."""
        return random.Random(f"{self._seed()}/{self.shard_index + user * self.shard_count}")

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
        out = self._sharded(index, count, {"users": share})
        assert isinstance(out, ClosedPlan)
        return out


#: plan kind -> its model: the one list the loader, the errors, the union and the docs read.
PLAN_MODELS: dict[str, type[Plan]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m
    for m in (PoissonPlan, ConstantPlan, UniformPlan, BurstPlan, DiurnalPlan, TracePlan,
              ClosedPlan)}
PLAN_KINDS = tuple(PLAN_MODELS)
PlanSpec = Annotated[Union[tuple(PLAN_MODELS.values())], Field(discriminator="kind")]


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
