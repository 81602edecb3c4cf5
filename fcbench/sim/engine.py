"""A discrete-event simulator that drives `fcbench.harness.scheduler.Scheduler` with an event
clock, so simulated and measured runs follow one definition of the rules.

Key names: `simulate`, `SimRequest`, `SimResult`. Service and start-up times are callables
returning seconds (e.g. drawn from a distribution), so no CPU is burnt and hours run in seconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from typing import TYPE_CHECKING, Any

import numpy as np

from ..harness.gpus import GpuPool
from ..protocol import REJECT_CODES
from ..harness.scheduler import (Admit, Decision, FunctionConfig, Reclaim, Reject, Scheduler,
                                 StartInstance)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SimRequest", "SimResult", "simulate"]


@dataclass
class SimRequest:
    """One simulated request; times in seconds from the start."""

    request_id: str
    intended_ts: float
    start_ts: float | None = None  # when it reached an instance
    end_ts: float | None = None
    cold: bool = False
    instance_id: str = ""
    status: int = 0

    @property
    def latency(self) -> float | None:
        return None if self.end_ts is None else self.end_ts - self.intended_ts


@dataclass
class SimResult:
    """Every request and a few totals."""

    requests: list[SimRequest]
    instances_started: int
    active_s: float
    alive_s: float
    gpu_gb_s: float = 0.0
    reclaims: int = 0
    #: every instance as instances.csv lists them (times in simulated seconds)
    instances: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cold(self) -> int:
        return sum(r.cold for r in self.requests)

    @property
    def throttled(self) -> int:
        return sum(r.status == 429 for r in self.requests)

    @property
    def p_cold(self) -> float:
        """Cold requests / all requests sent (`fcbench.measures`)."""
        return self.cold / len(self.requests) if self.requests else 0.0

    def to_frame(self, *, origin_ts: float = 0.0) -> pd.DataFrame:
        """The requests as a requests.csv frame (same columns as a measured run), so
        `fcbench.report.summary.summarize` reads a simulation exactly as a measurement.
        Times are `origin_ts` + simulated seconds; a request is sent at its intended time."""
        import pandas as pd

        from ..protocol import ALL_COLUMNS

        rows = []
        for r in self.requests:
            end = r.end_ts if r.end_ts is not None else r.intended_ts
            rows.append({
                "request_id": r.request_id, "intended_ts": origin_ts + r.intended_ts,
                "start_ts": origin_ts + r.intended_ts, "end_ts": origin_ts + end,
                "latency_ms": (end - r.intended_ts) * 1000.0, "status": r.status,
                "cold": float(r.cold) if 0 < r.status < 400 else np.nan,
                "instance_id": r.instance_id or None,
                "queue_ms": (r.start_ts - r.intended_ts) * 1000.0
                if r.start_ts is not None else np.nan,
                "error": "" if 0 < r.status < 400 else f"HTTP {r.status}",
                "latency_from_intended_ms": (end - r.intended_ts) * 1000.0,
                "platform_cold": float(r.cold) if 0 < r.status < 400 else np.nan,
            })
        return pd.DataFrame(rows, columns=[c for c in ALL_COLUMNS if c != "outcome"])


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    kind: str = field(compare=False)
    key: str = field(compare=False)


def simulate(arrivals: Iterable[float], config: FunctionConfig, *,
             service_s: Callable[[], float], startup_s: Callable[[], float],
             gpus: GpuPool | None = None) -> SimResult:
    """Run `arrivals` (non-decreasing seconds) through the scheduler.

    Args:
        arrivals: intended send times.
        config: the function's scheduling settings.
        service_s / startup_s: draw one request's service time / one instance's start time.
        gpus: GPU pool for GPU-memory specs.
    """
    sched = Scheduler(gpus if gpus is not None else GpuPool())
    provisioned = sched.add_function(config, 0.0)
    events: list[_Event] = []
    seq = itertools.count()
    requests: dict[str, SimRequest] = {}
    order: list[SimRequest] = []
    started = 0
    reclaims = 0
    armed: float | None = None

    def push(t: float, kind: str, key: str = "") -> None:
        heapq.heappush(events, _Event(t, next(seq), kind, key))

    def apply(now: float, decisions: list[Decision]) -> None:
        nonlocal started, reclaims
        for d in decisions:
            if isinstance(d, StartInstance):
                started += 1
                push(now + max(0.0, startup_s()), "ready", d.instance_id)
            elif isinstance(d, Admit):
                req = requests[d.request_id]
                req.start_ts, req.cold, req.instance_id = now, d.cold, d.instance_id
                push(now + max(0.0, service_s()), "finish", d.request_id)
            elif isinstance(d, Reject):
                req = requests.pop(d.request_id)
                req.end_ts, req.status = now, REJECT_CODES[d.reason.value][0]
            elif isinstance(d, Reclaim):
                reclaims += 1

    def rearm() -> None:
        nonlocal armed
        deadline = sched.next_deadline()
        if deadline is not None and deadline != armed:
            armed = deadline
            push(deadline, "tick")

    apply(0.0, provisioned)  # provisioned instances start with the run
    rearm()
    it = iter(arrivals)
    pending = next(it, None)
    n = 0
    while pending is not None or events:
        if pending is None and not requests:
            break  # every request answered: the run ends here, as a measured run does
        # at equal times the platform goes first (finish, ready, reclaim), then the arrival,
        # as in the harness, where a timer due at t fires before a request that arrives at t
        if pending is not None and (not events or pending < events[0].time):
            now, pending_now = pending, pending
            pending = next(it, None)
            rid = f"r{n}"
            n += 1
            req = SimRequest(rid, pending_now)
            requests[rid] = req
            order.append(req)
            apply(now, sched.arrive(now, config.name, rid))
        else:
            ev = heapq.heappop(events)
            now = ev.time
            if ev.kind == "ready":
                apply(now, sched.instance_ready(now, ev.key))
            elif ev.kind == "finish":
                req = requests.pop(ev.key)
                req.end_ts, req.status = now, 200
                apply(now, sched.finish(now, ev.key))
            else:
                armed = None
                apply(now, sched.tick(now))
        rearm()
    end = max((r.end_ts or 0.0 for r in order), default=0.0)
    apply(end, sched.shutdown(end))
    insts = sched.retired
    rows = [{"instance_id": i.id, "function": i.function, "slots": i.slots,
             "served": i.served, "provisioned": i.provisioned,
             "gpu_memory_mb": i.gpu_memory_mb, "created_ts": i.created_at,
             "ready_ts": i.ready_at, "stopped_ts": i.usage.stopped, **i.usage.as_dict(end)}
            for i in insts]
    return SimResult(requests=order, instances_started=started,
                     active_s=sum(i.usage.active_s(end) for i in insts),
                     alive_s=sum(i.usage.alive_s(end) for i in insts),
                     gpu_gb_s=sum(i.usage.gpu_gb_s(end) for i in insts), reclaims=reclaims,
                     instances=rows)
