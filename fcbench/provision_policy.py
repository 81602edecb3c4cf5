"""FC's provision policies as pure functions of a wall-clock time and a load: the provisioned
target now, and when it can next change.

Key names: `ProvisionPolicies` (one function's `defaultTarget`, `scheduledActions` and
`targetTrackingPolicies`: `target(now, ...)`, `next_evaluation(now)`), `utilisation` (the one
definition of FC's ProvisionedConcurrencyUtilization), `parse_expression` / `parse_time` /
`time_zone` (what `fcbench.spec` validates bodies with), `TRACKED_METRIC`,
`TRACKING_INTERVAL_S`.

The rules (docs/harness.md, "Provision policies"), as FC's API reference and its "elastic
policies for the minimum number of instances" page give them:

* A scheduled action fires at each time of its `scheduleExpression` — ``cron(S M H DoM Mon
  DoW)`` (six fields, seconds first; five fields are read minutes first) or ``at(TIME)`` once —
  inside its window [`startTime`, `endTime`); times are in `timeZone` (UTC without one) unless
  they carry an offset. The scheduled value is the `target` of the latest firing of any action
  whose window holds now (FC's example: 50 at 20:00, 10 at 22:00 each day); before an action's
  first firing in its window it says nothing.
* A target-tracking policy is in force inside its window; it asks for
  ``ceil(provisioned × utilisation / metricTarget)`` instances, kept within
  [`minCapacity`, `maxCapacity`].
* The target is the largest value among the policies in force; with none in force it is
  `defaultTarget`.

No I/O and no clock reads: the harness's `Platform` calls these with ``time.time()`` on a timer,
the simulator with its simulated seconds plus an origin (`ProvisionPolicies.origin`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Literal, Protocol

__all__ = ["FC_METRIC_TYPES", "TRACKED_METRIC", "TRACKING_INTERVAL_S", "Expression",
           "ProvisionPolicies", "ScheduledActionLike", "TrackingPolicyLike", "duplicate_names",
           "parse_expression", "parse_time", "time_zone", "tracking_target", "utilisation"]

#: The metric a target-tracking policy follows on the harness and in the simulator.
TRACKED_METRIC = "ProvisionedConcurrencyUtilization"
#: The metric types FC 3.0 takes (TargetTrackingPolicy.metricType in the SDK).
FC_METRIC_TYPES = (TRACKED_METRIC, "CPUUtilization", "GPUMemUtilization")
#: How often a target-tracking policy is evaluated, on an instantaneous sample (the harness's
#: choice: FC evaluates on a metric window it does not publish).
TRACKING_INTERVAL_S = 60.0
_TINY = timedelta(microseconds=1)
#: a time this close to a firing or window edge counts as at it: a caller's clock plus an origin
#: (or a timer that wakes a hair early) must neither miss a firing nor be told it is still ahead
_EPS = 1e-6


class _WindowedLike(Protocol):
    """What every provision policy has: a name and a window in a time zone."""

    @property
    def name(self) -> str: ...
    @property
    def start_time(self) -> str | None: ...
    @property
    def end_time(self) -> str | None: ...
    @property
    def time_zone(self) -> str | None: ...


class ScheduledActionLike(_WindowedLike, Protocol):
    """A scheduled action as `fcbench.spec.ScheduledAction` holds it."""

    @property
    def target(self) -> int: ...
    @property
    def schedule_expression(self) -> str: ...


class TrackingPolicyLike(_WindowedLike, Protocol):
    """A target-tracking policy as `fcbench.spec.TargetTrackingPolicy` holds it."""

    @property
    def metric_type(self) -> str: ...
    @property
    def metric_target(self) -> float: ...
    @property
    def min_capacity(self) -> int: ...
    @property
    def max_capacity(self) -> int: ...


def _croniter() -> Any:
    # imported when a cron expression is first read: ~60 ms that every other command skips
    from croniter import croniter

    return croniter


@dataclass(frozen=True)
class Expression:
    """A parsed `scheduleExpression`: ``cron`` with its fields, or ``at`` a time (text)."""

    kind: Literal["cron", "at"]
    body: str
    seconds_first: bool = True


@lru_cache(maxsize=256)
def parse_expression(text: str) -> Expression:
    """``cron(...)`` or ``at(...)``, checked; ValueError says what is wrong."""
    raw = text.strip()
    head, _, rest = raw.partition("(")
    if not rest.endswith(")") or head not in ("cron", "at"):
        raise ValueError("write cron(S M H DoM Mon DoW) (six fields, seconds first, e.g. "
                         "cron(0 0 20 * * *)) or at(2024-08-01T10:00:00)")
    body = rest[:-1].strip()
    if head == "at":
        parse_time(body, timezone.utc)
        return Expression("at", body)
    fields = len(body.split())
    if fields not in (5, 6):
        raise ValueError(f"cron(...) takes six fields (seconds first) or five (minutes "
                         f"first); got {fields} in {raw!r}")
    if not _croniter().is_valid(body, second_at_beginning=fields == 6):
        raise ValueError(f"{raw!r} is not a valid cron expression (fields: seconds minutes "
                         "hours day-of-month month day-of-week)")
    return Expression("cron", body, seconds_first=fields == 6)


@lru_cache(maxsize=64)
def time_zone(name: str | None) -> tzinfo:
    """`timeZone` as a tzinfo (UTC when empty); ValueError for an unknown zone."""
    if not name:
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timeZone {name!r}; use an IANA name such as Asia/Shanghai "
                         "or UTC") from None


def parse_time(text: str | None, tz: tzinfo) -> float | None:
    """An ISO 8601 time (``2024-08-01T10:00:00``, ``...Z`` or ``...+08:00``) as epoch seconds;
    one without an offset is in `tz`. None for None or empty; ValueError otherwise."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 time such as 2024-08-01T10:00:00 or "
                         "2024-08-01T10:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.timestamp()


def utilisation(busy: int, provisioned: int, concurrency: int) -> float:
    """FC's ProvisionedConcurrencyUtilization: requests on provisioned instances (in flight or
    waiting for one to start) over their slots; 0 with no provisioned instance."""
    slots = provisioned * concurrency
    return busy / slots if slots > 0 else 0.0


def _last_firing(expr: Expression, tz: tzinfo, now: float) -> float | None:
    """The latest firing at or before `now`."""
    if expr.kind == "at":
        at = parse_time(expr.body, tz)
        return at if at is not None and at <= now else None
    start = datetime.fromtimestamp(now, tz) + _TINY  # so a firing at exactly `now` counts
    out: float = _croniter()(expr.body, start, second_at_beginning=expr.seconds_first
                             ).get_prev(float)
    return out


def _next_firing(expr: Expression, tz: tzinfo, now: float) -> float | None:
    """The first firing after `now`."""
    if expr.kind == "at":
        at = parse_time(expr.body, tz)
        return at if at is not None and at > now else None
    out: float = _croniter()(expr.body, datetime.fromtimestamp(now, tz),
                             second_at_beginning=expr.seconds_first).get_next(float)
    return out


def _window(item: Any) -> tuple[tzinfo, float | None, float | None]:
    tz = time_zone(item.time_zone)
    return tz, parse_time(item.start_time, tz), parse_time(item.end_time, tz)


def _inside(start: float | None, end: float | None, now: float) -> bool:
    return (start is None or now >= start) and (end is None or now < end)


@dataclass(frozen=True)
class ProvisionPolicies:
    """One function's provision config: `default_target` and its policies.

    Times given to the methods are seconds on the caller's clock; `origin` is the epoch of its
    0 (0 for a caller that passes epoch seconds, the harness; the run's start for the simulator).
    """

    default_target: int
    scheduled: tuple[ScheduledActionLike, ...] = ()
    tracking: tuple[TrackingPolicyLike, ...] = ()
    origin: float = 0.0
    interval_s: float = TRACKING_INTERVAL_S

    @classmethod
    def of(cls, harness: Any, *, origin: float = 0.0,
           interval_s: float = TRACKING_INTERVAL_S) -> ProvisionPolicies | None:
        """The policies of a spec's `harness` options (`minInstances`, `scheduledActions`,
        `targetTrackingPolicies`), None when it has none (the target is then `minInstances`)."""
        scheduled = tuple(harness.scheduled_actions or ())
        tracking = tuple(harness.target_tracking_policies or ())
        if not scheduled and not tracking:
            return None
        return cls(harness.min_instances, scheduled, tracking, origin, interval_s)

    def scheduled_target(self, now: float) -> int | None:
        """The `target` of the latest firing of a scheduled action in its window, or None."""
        wall = self.origin + now + _EPS
        best: tuple[float, int] | None = None
        for action in self.scheduled:
            tz, start, end = _window(action)
            if not _inside(start, end, wall):
                continue
            fired = _last_firing(parse_expression(action.schedule_expression), tz, wall)
            if fired is None or (start is not None and fired < start):
                continue
            if best is None or (fired, action.target) > best:
                best = (fired, action.target)
        return None if best is None else best[1]

    def target(self, now: float, *, provisioned: int, busy: int, concurrency: int) -> int:
        """The provisioned target at `now`, given the provisioned instances live, the requests
        on them (`busy`) and the function's instance concurrency."""
        wall = self.origin + now + _EPS
        values: list[int] = []
        scheduled = self.scheduled_target(now)
        if scheduled is not None:
            values.append(scheduled)
        used = utilisation(busy, provisioned, concurrency)
        for policy in self.tracking:
            _, start, end = _window(policy)
            if _inside(start, end, wall):
                values.append(tracking_target(policy, provisioned, used))
        return max(values) if values else self.default_target

    def next_evaluation(self, now: float) -> float | None:
        """When the target should be computed again: the next cron firing or window edge after
        `now`, and no later than `interval_s` from now while a tracking policy is in force."""
        wall = self.origin + now + _EPS
        times: list[float] = []
        for action in self.scheduled:
            tz, start, end = _window(action)
            times += [t for t in (start, end) if t is not None and t > wall]
            if end is None or wall < end:
                fire = _next_firing(parse_expression(action.schedule_expression), tz,
                                    max(wall, start - 1e-6) if start is not None else wall)
                if fire is not None and fire > wall and (end is None or fire < end):
                    times.append(fire)
        for policy in self.tracking:
            _, start, end = _window(policy)
            times += [t for t in (start, end) if t is not None and t > wall]
            if _inside(start, end, wall):
                times.append(self.origin + now + self.interval_s)
        return min(times) - self.origin if times else None


def tracking_target(policy: TrackingPolicyLike, provisioned: int, used: float) -> int:
    """What one target-tracking policy asks for: ``ceil(provisioned × used / metricTarget)``,
    within [minCapacity, maxCapacity] (FC's scale-out rule, applied both ways)."""
    # a hair below the exact ratio, so 2 × 0.6 / 0.6 (1.9999999999999998 or 2.0000000000000004)
    # asks for 2, not 3
    want = math.ceil(provisioned * used / policy.metric_target - 1e-9)
    return max(policy.min_capacity, min(policy.max_capacity, want))


def duplicate_names(items: Sequence[Any]) -> list[str]:
    """The names of `items` that appear more than once (FC keys policies by name)."""
    seen: set[str] = set()
    twice = []
    for item in items:
        if item.name in seen:
            twice.append(item.name)
        seen.add(item.name)
    return twice
