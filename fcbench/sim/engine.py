"""A discrete-event simulator that drives `fcbench.harness.scheduler.Scheduler` with an event
clock, so simulated and measured runs follow one definition of the rules.

Key names: `simulate`, `SimRequest`, `SimRequests` (the requests, in columns), `SimResult`.
Service and start-up times are callables returning seconds (e.g. drawn from a distribution), or
arrays of values drawn beforehand (numpy), so no CPU is burnt and hours run in seconds.
Provision policies (`fcbench.provision_policy.ProvisionPolicies`, their `origin` the wall clock
of simulated 0) are evaluated at simulated times as the harness evaluates them on its timer:
each new target goes to the scheduler through `Scheduler.update_function(..., restart=False)`.
"""

from __future__ import annotations

import gc
import heapq
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Union, final, overload

import numpy as np

from ..harness.gpus import GpuPool
from ..harness.platform_phases import start_time_s
from ..protocol import REJECT_CODES
from ..harness.scheduler import (Admit, Decision, FunctionConfig, Reclaim, Reject, Scheduler,
                                 StartInstance)

if TYPE_CHECKING:
    import pandas as pd

    from ..provision_policy import ProvisionPolicies
    from ..spec import PlatformOptions

__all__ = ["SimRequest", "SimRequests", "SimResult", "simulate"]


@dataclass(slots=True)
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


class SimRequests(Sequence[SimRequest]):
    """Every request of a run, kept in columns (about 40 bytes a request, so a million fit in
    tens of MB); indexing or iterating builds `SimRequest` views on the fly."""

    __slots__ = ("intended", "start", "end", "cold", "status", "instance")

    def __init__(self) -> None:
        self.intended = array("d")  # NaN: not yet (start, end)
        self.start = array("d")
        self.end = array("d")
        self.cold = bytearray()
        self.status = array("h")
        self.instance: list[str] = []  # "" until admitted (the strings are shared)

    @classmethod
    def sized(cls, intended: array[float]) -> SimRequests:
        """Columns for requests sent at `intended`, none answered yet."""
        out = cls()
        n = len(intended)
        out.intended = intended
        out.start = array("d", [math.nan]) * n
        out.end = array("d", [math.nan]) * n
        out.cold = bytearray(n)
        out.status = array("h", [0]) * n
        out.instance = [""] * n
        return out

    def __len__(self) -> int:
        return len(self.intended)

    @overload
    def __getitem__(self, index: int) -> SimRequest: ...
    @overload
    def __getitem__(self, index: slice) -> list[SimRequest]: ...

    def __getitem__(self, index: int | slice) -> SimRequest | list[SimRequest]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("request index out of range")
        start, end = self.start[i], self.end[i]
        return SimRequest(f"r{i}", self.intended[i], None if start != start else start,
                          None if end != end else end, bool(self.cold[i]), self.instance[i],
                          self.status[i])

    def __iter__(self) -> Iterator[SimRequest]:
        for i in range(len(self)):
            yield self[i]


@dataclass
class SimResult:
    """Every request and a few totals."""

    requests: Sequence[SimRequest]
    instances_started: int
    active_s: float
    alive_s: float
    gpu_gb_s: float = 0.0
    reclaims: int = 0
    #: every instance as instances.csv lists them (times in simulated seconds)
    instances: list[dict[str, Any]] = field(default_factory=list)
    #: when the run ended (its last answer), seconds
    end_s: float = 0.0

    @property
    def cold(self) -> int:
        reqs = self.requests
        if isinstance(reqs, SimRequests):
            return len(reqs.cold) - reqs.cold.count(0)
        return sum(r.cold for r in reqs)

    @property
    def throttled(self) -> int:
        reqs = self.requests
        if isinstance(reqs, SimRequests):
            return reqs.status.count(429)
        return sum(r.status == 429 for r in reqs)

    @property
    def p_cold(self) -> float:
        """Cold requests / all requests sent (`fcbench.measures`)."""
        return self.cold / len(self.requests) if self.requests else 0.0

    @property
    def mean_instances(self) -> float:
        """Time-averaged count of live instances (starting, busy or idle) over the run, from
        each one's creation to its stop: SimFaaS's "average server count" (running + idle)."""
        if self.end_s <= 0.0:
            return 0.0
        alive = sum((row["stopped_ts"] if row["stopped_ts"] is not None else self.end_s)
                    - row["created_ts"] for row in self.instances)
        return alive / self.end_s

    def to_frame(self, *, origin_ts: float = 0.0) -> pd.DataFrame:
        """The requests as a requests.csv frame (same columns as a measured run), so
        `fcbench.results.summary.summarize` reads a simulation exactly as a measurement.
        Times are `origin_ts` + simulated seconds; a request is sent at its intended time."""
        import pandas as pd

        from ..protocol import ALL_COLUMNS

        reqs = self.requests
        if isinstance(reqs, SimRequests):
            cols = reqs
        else:  # a list of SimRequest: into columns first
            cols = SimRequests()
            for r in reqs:
                cols.intended.append(r.intended_ts)
                cols.start.append(np.nan if r.start_ts is None else r.start_ts)
                cols.end.append(np.nan if r.end_ts is None else r.end_ts)
                cols.cold.append(bool(r.cold))
                cols.status.append(r.status)
                cols.instance.append(r.instance_id)
        n = len(cols)
        # copies, not views: a view would pin the columns' buffers (no more appends)
        intended = np.array(cols.intended, dtype=np.float64)
        start = np.array(cols.start, dtype=np.float64)
        end = np.array(cols.end, dtype=np.float64)
        end = np.where(np.isnan(end), intended, end)  # unanswered: ends where it was sent
        status = np.array(cols.status, dtype=np.int64)
        ok = (status > 0) & (status < 400)
        cold = np.where(ok, np.frombuffer(bytes(cols.cold), dtype=np.uint8, count=n)
                        .astype(np.float64), np.nan)
        latency = (end - intended) * 1000.0
        if isinstance(reqs, SimRequests):
            ids = [f"r{i}" for i in range(n)]
        else:
            ids = [r.request_id for r in reqs]
        data = {
            "request_id": ids, "intended_ts": origin_ts + intended,
            "start_ts": origin_ts + intended, "end_ts": origin_ts + end,
            "latency_ms": latency, "status": status, "cold": cold,
            "instance_id": [i or None for i in cols.instance],
            "queue_ms": (start - intended) * 1000.0,  # NaN where it never reached an instance
            "error": ["" if 0 < s < 400 else f"HTTP {s}" for s in status.tolist()],
            "latency_from_intended_ms": latency, "platform_cold": cold.copy(),
        }
        columns = [c for c in ALL_COLUMNS if c != "outcome"]
        return pd.DataFrame({c: data[c] if c in data else np.full(n, np.nan) for c in columns},
                            columns=columns)


_READY: Final = 0
_FINISH: Final = 1
_TICK: Final = 2
_POLICY: Final = 3
# heapq's functions as Final names: mypyc reads them from C statics, not the module dict
heappush: Final = heapq.heappush
heappop: Final = heapq.heappop
#: added to a tick's sequence number: at equal times deadlines (idle reclaim, queue timeout) come
#: after the platform's other events (a request finishing at its queue deadline is served), in an
#: order that does not depend on when the engine armed them
_AFTER: Final = 1 << 62


#: service_s / startup_s: a callable drawing one value, or the values drawn beforehand
Draws = Union[Callable[[], float], Sequence[float], "np.ndarray[Any, Any]"]


def simulate(arrivals: Iterable[float], config: FunctionConfig, *,
             service_s: Draws, startup_s: Draws,
             gpus: GpuPool | None = None, cold_service_s: Callable[[], float] | None = None,
             until: float | None = None, platform: PlatformOptions | None = None,
             platform_replica: int = 0,
             policies: ProvisionPolicies | None = None,
             request_service_s: tuple[Sequence[float], Sequence[float]] | None = None
             ) -> SimResult:
    """Run `arrivals` (non-decreasing seconds) through the scheduler.

    Args:
        arrivals: intended send times.
        config: the function's scheduling settings.
        service_s / startup_s: one request's service time / one instance's in-instance start
            time (the platform phases come on top, see `platform`): a callable drawing one, or
            a sequence (a numpy array) of values drawn beforehand, used in order, one per
            admitted request / started instance (ValueError when too few).
        gpus: GPU pool for GPU-memory specs.
        cold_service_s: the service time of a request that waited for its instance's start
            (a fresh instance's first requests run slower: first inference, a new
            connection); None draws those from `service_s` too.
        until: the end of the run's planned duration: after the last answer the platform's
            clock runs on to it, reclaiming idle instances when they are due, as the harness
            does while the run lasts (metering then covers the same window); None ends the run
            at its last answer.
        platform / platform_replica: the spec's `harness.platform`: each start lasts
            `fcbench.harness.platform_phases.start_time_s` (the in-instance draw plus the
            platform phases of that instance id, drawn for `platform_replica`), as the harness
            waits them out; None adds nothing.
        policies: the function's provision policies (None: `config.min_instances` all along);
            the target they give at 0 replaces `config.min_instances`.
        request_service_s: each request's own service time, by its arrival number, were it
            warm and were it cold (two sequences as long as `arrivals`): a request's time that
            depends on the request (its lengths in tokens, `fcbench.sim.tokens`); when given,
            `service_s` and `cold_service_s` are not drawn.

    Provisioned instances (`min_instances`) exist before the traffic, as on FC and in the
    harness, where they start with the function: each is created its own start-up time
    before 0 and is ready at 0. Those a policy asks for later start then, cold.
    """
    sched = Scheduler(gpus if gpus is not None else GpuPool())
    if policies is not None:
        config = replace(config, min_instances=policies.target(
            0.0, provisioned=0, busy=0, concurrency=config.concurrency))
    provisioned = sched.add_function(config, 0.0)
    if isinstance(arrivals, np.ndarray):
        intended = array("d", np.ascontiguousarray(arrivals, dtype=np.float64).tobytes())
    else:
        intended = array("d", arrivals)
    # the loop reads the times from a list (native when compiled): the caller's, when it is
    # one of floats already
    times = arrivals if isinstance(arrivals, list) \
        and all(type(t) is float for t in arrivals) else intended.tolist()
    run = _Run(sched, SimRequests.sized(intended), service_s, startup_s, cold_service_s,
               platform, platform_replica)
    if request_service_s is not None:
        warm, cold = (_as_list(v, "request_service_s") for v in request_service_s)
        if warm is None or cold is None or len(warm) < len(intended) \
                or len(cold) < len(intended):
            raise ValueError("request_service_s: give two sequences of seconds, each at least "
                             f"as long as the {len(intended)} arrivals")
        run.by_request_warm, run.by_request_cold = warm, cold
    run.config = config
    run.policies = policies
    # no reference cycles are made here: the collector would only walk the growing heap and
    # the million-row columns (up to the result's instance rows)
    collecting = gc.isenabled()
    gc.disable()
    try:
        run.provision(provisioned)  # ready when the traffic starts
        if policies is not None:
            run.policy_next(0.0)
        run.loop(config.name, times)
        del times
        end = run.finish_columns()
        if until is not None and until > end:
            run.idle_until(until)
            end = until
        run.apply(end, sched.shutdown(end))
        insts = sched.retired
        rows = [{"instance_id": i.id, "function": i.function, "slots": i.slots,
                 "served": i.served, "provisioned": i.provisioned,
                 "gpu_memory_mb": i.gpu_memory_mb, "created_ts": i.created_at,
                 "ready_ts": i.ready_at, "stopped_ts": i.usage.stopped,
                 **i.usage.as_dict(end)} for i in insts]
    finally:
        if collecting:
            gc.enable()
    return SimResult(requests=run.reqs, instances_started=run.started,
                     active_s=sum(i.usage.active_s(end) for i in insts),
                     alive_s=sum(i.usage.alive_s(end) for i in insts),
                     gpu_gb_s=sum(i.usage.gpu_gb_s(end) for i in insts),
                     reclaims=run.reclaims,
                     instances=rows, end_s=end)


def _as_list(draws: Draws, what: str) -> list[float] | None:
    """Pre-drawn values as a list of floats (read natively when compiled), None for a callable."""
    if callable(draws):
        return None
    values = np.asarray(draws, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{what}: expected a callable or a 1-d sequence of seconds, "
                         f"got shape {values.shape}")
    out: list[float] = values.tolist()
    return out


@final
class _Run:
    """The event loop of one simulation (a class, not closures, so that compiled its calls
    into the scheduler are direct)."""

    def __init__(self, sched: Scheduler, reqs: SimRequests, service_s: Draws,
                 startup_s: Draws, cold_service_s: Callable[[], float] | None = None,
                 platform: PlatformOptions | None = None, platform_replica: int = 0) -> None:
        self.sched = sched
        self.reqs = reqs
        # the columns, typed, as attributes of this (native, when compiled) class
        self.start_a: array[float] = reqs.start
        # end times go to a list during the loop (a native store of the boxed time, where an
        # array parses every value) and into `reqs.end` after it
        self.end_a: list[float] = [math.nan] * len(reqs.end)  # (one shared NaN object)
        self.columns_done = False
        self.cold_a: bytearray = reqs.cold
        self.instance_a: list[str] = reqs.instance
        self.service_list = _as_list(service_s, "service_s")
        self.startup_list = _as_list(startup_s, "startup_s")
        self.service_s: Callable[[], float] = _no_draw if self.service_list is not None \
            else service_s  # type: ignore[assignment]
        self.startup_s: Callable[[], float] = _no_draw if self.startup_list is not None \
            else startup_s  # type: ignore[assignment]
        self.cold_service_s = cold_service_s
        self.platform = platform
        self.platform_replica = platform_replica
        self.n_service = 0
        self.n_startup = 0
        # events are plain tuples (time, seq, kind, request index, key): compared in C, seq
        # breaks ties FIFO (and is unique, so the rest is never compared)
        self.events: list[tuple[float, int, int, int, str]] = []
        self.seq = 0
        #: request id -> index, for requests neither admitted nor answered (queued, claimed);
        #: one admitted on arrival never enters it
        self.waiting: dict[str, int] = {}
        self.unanswered = 0
        self.started = 0
        self.reclaims = 0
        self.config: FunctionConfig | None = None
        self.policies: ProvisionPolicies | None = None
        #: each request's own service time by arrival number, warm / cold (None: drawn)
        self.by_request_warm: list[float] | None = None
        self.by_request_cold: list[float] | None = None

    def draw_service(self) -> float:
        values = self.service_list
        if values is None:
            return self.service_s()
        k = self.n_service
        if k >= len(values):
            raise ValueError(f"service_s holds {len(values)} values but more requests were "
                             f"admitted; pass at least one per request")
        self.n_service = k + 1
        return values[k]

    def draw_startup(self, instance_id: str) -> float:
        """The start-up time of instance `instance_id`: its in-instance draw, plus the platform
        phases when the spec names some (one definition, the harness's)."""
        values = self.startup_list
        if values is None:
            took = self.startup_s()
        else:
            k = self.n_startup
            if k >= len(values):
                raise ValueError(f"startup_s holds {len(values)} values but more instances "
                                 f"were started; pass at least one per instance")
            self.n_startup = k + 1
            took = values[k]
        if self.platform is None:
            return took
        return start_time_s(took, self.platform, instance_id, replica=self.platform_replica)

    def admitted(self, now: float, i: int, d: Admit, on_arrival: bool = False) -> None:
        if not on_arrival:  # one admitted as it arrived starts at its intended time, filled
            self.start_a[i] = now  # in by `finish_columns`
        if d.cold:
            self.cold_a[i] = 1
        self.instance_a[i] = d.instance_id
        own = self.by_request_cold if d.cold else self.by_request_warm
        if own is not None:
            took = own[i]
        else:
            cold_draw = self.cold_service_s
            took = cold_draw() if d.cold and cold_draw is not None else self.draw_service()
        self.seq += 1
        heappush(self.events, (now + took if took > 0.0 else now, self.seq, _FINISH, i,
                                     d.request_id))

    def finish_columns(self) -> float:
        """Fill in what the loop left out (the start of requests admitted as they arrived, the
        status of served ones); returns when the last answered request was answered (0.0)."""
        reqs = self.reqs
        reqs.end = array("d", self.end_a)
        self.end_a = []  # from here on `apply` writes to reqs.end
        self.columns_done = True
        end = np.frombuffer(reqs.end, dtype=np.float64)
        start = np.frombuffer(reqs.start, dtype=np.float64)
        status = np.frombuffer(reqs.status, dtype=np.int16)
        # nothing but a rejection sets a status during the loop, and every request admitted
        # on arrival is answered (its finish is an event) by the time the loop ends
        served = ~np.isnan(end) & (status == 0)
        status[served] = 200
        now = served & np.isnan(start)
        start[now] = np.frombuffer(reqs.intended, dtype=np.float64)[now]
        done = end[~np.isnan(end)]
        last = float(done.max()) if len(done) else 0.0
        del end, start, status  # views pin the columns' buffers
        return last

    def provision(self, decisions: list[Decision]) -> None:
        """Provisioned instances, ready at 0: each created its own start-up time earlier."""
        for d in decisions:
            if isinstance(d, StartInstance):
                self.started += 1
                took = self.draw_startup(d.instance_id)
                inst = self.sched.instance(d.instance_id)
                if inst is not None:
                    inst.created_at = -took if took > 0.0 else 0.0
                self.seq += 1
                heappush(self.events, (0.0, self.seq, _READY, 0, d.instance_id))
            else:
                self.apply(0.0, [d])

    def idle_until(self, until: float) -> None:
        """After the last answer: reclaim idle instances as they fall due, and apply provision
        policies (starts they asked for included), up to `until`."""
        sched, events = self.sched, self.events
        while True:
            deadline = sched.next_deadline()
            due = deadline is not None and deadline <= until
            if events and events[0][0] <= until and (not due or events[0][0] <= deadline):
                now, _, kind, _, key = heappop(events)  # the platform's own events first
                if kind == _READY:
                    self.apply(now, sched.instance_ready(now, key))
                elif kind == _POLICY:
                    self.policy_step(now)
                continue  # a tick event: the deadline is read afresh here
            if not due:
                break
            self.apply(deadline, sched.tick(deadline))

    def policy_next(self, now: float) -> None:
        """Schedule the next evaluation of the provision policies after `now`."""
        policies = self.policies
        if policies is None:
            return
        when = policies.next_evaluation(now)
        if when is not None:
            self.seq += 1
            # always later than now, so a clock that rounds cannot hold the run at one time
            heappush(self.events, (when if when > now else now + 1e-6, self.seq, _POLICY,
                                   0, ""))

    def policy_step(self, now: float) -> None:
        """Evaluate the provision policies at `now` (as the harness's timer does) and hand a
        changed target to the scheduler."""
        policies, config = self.policies, self.config
        if policies is None or config is None:
            return
        provisioned, busy = self.sched.provisioned_load(config.name)
        target = policies.target(now, provisioned=provisioned, busy=busy,
                                 concurrency=config.concurrency)
        if target != config.min_instances:
            config = replace(config, min_instances=target)
            self.config = config
            sched = self.sched
            self.apply(now, sched.update_function(now, config, restart=False))
            # an instance unmarked after idling longer than idle_timeout is due now, as the
            # harness's timer for a past deadline fires at once (not back at the deadline)
            deadline = sched.next_deadline()
            if deadline is not None and deadline <= now:
                self.apply(now, sched.tick(now))
        self.policy_next(now)

    def apply(self, now: float, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Admit):
                self.admitted(now, self.waiting.pop(d.request_id), d)
            elif isinstance(d, StartInstance):
                self.started += 1
                took = self.draw_startup(d.instance_id)
                self.seq += 1
                heappush(self.events, (now + took if took > 0.0 else now, self.seq,
                                             _READY, 0, d.instance_id))
            elif isinstance(d, Reject):
                i = self.waiting.pop(d.request_id)
                self.unanswered -= 1
                if self.columns_done:
                    self.reqs.end[i] = now
                else:
                    self.end_a[i] = now
                self.reqs.status[i] = REJECT_CODES[d.reason.value][0]
            elif isinstance(d, Reclaim):
                self.reclaims += 1

    def loop(self, name: str, intended: list[float]) -> None:
        sched, events, waiting = self.sched, self.events, self.waiting
        end_a = self.end_a
        out: list[Decision] = []  # the decisions of one event (one list, reused)
        total = len(intended)
        #: times of the pending tick events: one at or before the scheduler's next deadline
        ticks: list[float] = []
        inf = math.inf
        n = 0
        pending = intended[0] if total else inf
        check = True
        while True:
            # a deadline earlier than every pending tick gets a tick of its own; a tick that
            # finds its deadline moved later does nothing. Deadlines are queue heads and idle
            # instances, so an arrival that was answered at once (admitted, started an
            # instance, rejected) moved none earlier: no need to look then.
            if check:
                deadline = sched.next_deadline()
                if deadline is not None and (not ticks or deadline < ticks[0]):
                    heappush(ticks, deadline)
                    self.seq += 1
                    heappush(events, (deadline, _AFTER + self.seq, _TICK, 0, ""))
            check = True
            if pending == inf and not self.unanswered:
                break  # every request answered: the run ends here, as a measured run does
            # at equal times the platform goes first (finish, ready, reclaim), then the
            # arrival, as in the harness, where a timer due at t fires before a request that
            # arrives at t
            if events and events[0][0] <= pending:
                now, _, kind, i, key = heappop(events)
                if kind == _FINISH:
                    self.unanswered -= 1
                    end_a[i] = now  # its status, 200, is filled in after the loop
                    sched.finish_into(now, key, out)
                    if out:
                        self.apply(now, out)
                        out.clear()
                elif kind == _READY:
                    self.apply(now, sched.instance_ready(now, key))
                elif kind == _POLICY:
                    self.policy_step(now)
                else:
                    heappop(ticks)
                    deadline = sched.next_deadline()
                    if deadline is not None and now >= deadline:
                        self.apply(now, sched.tick(now))
            elif pending != inf:
                now = pending
                rid = f"r{n}"
                self.unanswered += 1
                sched.arrive_into(now, name, rid, out)
                if out:
                    check = False
                    first = out[0]
                    # the common answer, admitted at once: no trip through `waiting`
                    if len(out) == 1 and isinstance(first, Admit) and first.request_id is rid:
                        self.admitted(now, n, first, True)
                    else:
                        waiting[rid] = n
                        self.apply(now, out)
                    out.clear()
                else:
                    waiting[rid] = n
                n += 1
                pending = intended[n] if n < total else inf
            else:
                break  # nothing left to happen (requests left unanswered)


def _no_draw() -> float:
    raise AssertionError("unreachable: the values were drawn beforehand")
