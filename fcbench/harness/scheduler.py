"""The scheduling rules of the harness and the simulator, as a pure state machine.

Key names: `Scheduler`, `FunctionConfig`, decisions `Admit`, `StartInstance`, `Reject`, `Reclaim`.
Events go in with an explicit `now` (any monotonic clock: wall or simulated); decisions come out.
No I/O, no clock reads, no sleeping, no logging, so the gateway and `fcbench.sim` cannot disagree.

Rules (docs/scheduler.md):
* an instance has `concurrency` slots; a request takes a free slot on a ready instance, packing
  onto the busiest one, ties to the most recently used;
* a function with `reserved_concurrency` (FC's PutConcurrencyConfig) refuses a request at once
  (`Reject`, 429) when that many of its requests are in flight, waiting for an instance start or
  queued — counted over every scheduling unit of its `group` (a function and its published
  versions); 0 refuses every request (FC: the function is disabled);
* no free slot: join a starting instance with unclaimed slots; else start one (cold start) if
  `max_instances` and GPU memory allow; else wait in a bounded FIFO queue; a full queue or a
  queue timeout is a `Reject` (429);
* an instance with nothing in flight for `idle_timeout` is reclaimed;
* a request is cold when it waited for an instance start.

Every rule is decided in O(log n) per event: each function keeps heaps of its ready instances
with free slots (ordered by the choice rule) and of starting instances with unclaimed slots, and
a list of idle instances sorted by when they went idle, read from a head index; entries go
stale rather than being removed (an instance's `_ver` moves on), and stale ones are dropped when
they reach the front. `arrive_into`/`finish_into` are `arrive`/`finish` appending to a caller's
list (the simulator reuses one); the public methods are those plus a new list.
The module is plain typed Python, so benchmarks/simulate_speed.py can compile it with mypyc
unchanged (docs/benchmarks.md); fcbench itself imports it uncompiled.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Union

from ..fc import (DEFAULT_IDLE_TIMEOUT_S, DEFAULT_INSTANCE_CONCURRENCY, DEFAULT_MAX_INSTANCES,
                  DEFAULT_QUEUE_SIZE, DEFAULT_QUEUE_TIMEOUT_S)
from .gpus import GpuPool
from .meter import Usage

if TYPE_CHECKING:
    from ..spec import FunctionSpec

__all__ = [
    "Admit",
    "Decision",
    "FunctionConfig",
    "Instance",
    "InstanceState",
    "Reclaim",
    "Reject",
    "RejectReason",
    "Scheduler",
    "StartInstance",
]


@dataclass(frozen=True)
class FunctionConfig:
    """The scheduling-relevant part of a function spec."""

    name: str
    concurrency: int = DEFAULT_INSTANCE_CONCURRENCY
    max_instances: int = DEFAULT_MAX_INSTANCES
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT_S
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S
    gpu_memory_mb: int = 0
    memory_mb: int = 0
    #: provisioned instances (FC's provision config): started at once, never reclaimed
    min_instances: int = 0
    #: FC's reserved concurrency: at most this many requests in flight, claimed or queued
    #: (None: no cap)
    reserved_concurrency: int | None = None
    #: the function whose reserved concurrency this one shares ("": its own `name`); a
    #: published version's scheduling unit names its function, as FC counts the function whole
    group: str = ""

    @classmethod
    def from_spec(cls, spec: FunctionSpec) -> FunctionConfig:
        h = spec.harness
        return cls(name=spec.name, concurrency=spec.instance_concurrency,
                   max_instances=h.max_instances, queue_size=h.queue.size,
                   queue_timeout=h.queue.timeout, idle_timeout=h.idle_timeout,
                   gpu_memory_mb=spec.gpu_memory_mb, memory_mb=spec.memory_size or 0,
                   min_instances=h.min_instances, reserved_concurrency=h.reserved_concurrency)


class InstanceState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    GONE = "gone"


class RejectReason(str, enum.Enum):
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    RESERVED_CONCURRENCY = "reserved_concurrency"
    START_FAILED = "start_failed"
    UNKNOWN_FUNCTION = "unknown_function"
    SHUTDOWN = "shutdown"


@dataclass
class Instance:
    """One instance as the scheduler sees it."""

    id: str
    function: str
    slots: int
    created_at: float
    gpu_index: int | None = None
    gpu_memory_mb: int = 0
    state: InstanceState = InstanceState.STARTING
    ready_at: float | None = None
    in_flight: set[str] = field(default_factory=set)
    claimed: list[str] = field(default_factory=list)  # requests waiting for this start
    last_used: float = 0.0
    idle_since: float | None = None
    served: int = 0
    usage: Usage = field(default_factory=Usage)
    provisioned: bool = False  # kept started: never reclaimed for idling
    # creation order (ties in the choice rules go to the oldest) and the version of the index
    # entries (bumped on every change of in_flight, last_used or state: older entries are stale)
    _seq: int = field(default=0, repr=False, compare=False)
    _ver: int = field(default=0, repr=False, compare=False)

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.in_flight) - len(self.claimed)


class Admit:
    """Send `request_id` to `instance_id` now. `cold` when it waited for that instance to start.

    The one decision made per request, so a plain class with the frozen dataclass's equality,
    hash and repr: a frozen dataclass's generated `__init__` alone costs ~0.5 µs, a fifth of the
    simulator's whole budget per request. Its fields are `Final` (read-only to type checkers)."""

    __slots__ = ("request_id", "instance_id", "cold", "queued")
    __match_args__ = ("request_id", "instance_id", "cold", "queued")

    def __init__(self, request_id: str, instance_id: str, cold: bool,
                 queued: bool = False) -> None:
        self.request_id: Final = request_id
        self.instance_id: Final = instance_id
        self.cold: Final = cold
        self.queued: Final = queued

    def _key(self) -> tuple[str, str, bool, bool]:
        return (self.request_id, self.instance_id, self.cold, self.queued)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Admit):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Admit(request_id={self.request_id!r}, instance_id={self.instance_id!r}, "
                f"cold={self.cold!r}, queued={self.queued!r})")


@dataclass(frozen=True)
class StartInstance:
    """Start a new instance of `function`, on GPU `gpu_index` (None for a CPU function)."""

    instance_id: str
    function: str
    gpu_index: int | None
    gpu_memory_mb: int


@dataclass(frozen=True)
class Reject:
    """Answer `request_id` with an error: 429 for queue reasons, 5xx for a failed start."""

    request_id: str
    reason: RejectReason
    detail: str = ""

    @property
    def throttled(self) -> bool:
        return self.reason in (RejectReason.QUEUE_FULL, RejectReason.QUEUE_TIMEOUT,
                               RejectReason.RESERVED_CONCURRENCY)


@dataclass(frozen=True)
class Reclaim:
    """Stop `instance_id`: it idled for `idle_timeout` (or a forced reclaim)."""

    instance_id: str
    function: str
    reason: str = "idle"


Decision = Union[Admit, StartInstance, Reject, Reclaim]


def _creation_order(inst: Instance) -> int:
    return inst._seq


# module constants: a lookup of an enum member through its class is the slow part of a check
# and heapq's functions as Final names, which mypyc reads from C statics, not the module dict
heappush: Final = heapq.heappush
heappop: Final = heapq.heappop
_READY: Final = InstanceState.READY
_STARTING: Final = InstanceState.STARTING
_GONE: Final = InstanceState.GONE


@dataclass
class _Waiting:
    request_id: str
    enqueued_at: float


#: ready instances with a free slot: (-in_flight, -last_used, _seq, _ver, instance), so the top
#: is the busiest, then the most recently used, then the oldest
_ReadyEntry = tuple[int, float, int, int, Instance]
#: starting instances that had unclaimed slots: (created_at, _seq, instance)
_StartingEntry = tuple[float, int, Instance]
#: idle instances: (idle_since, _seq, _ver, instance); the deadline adds the config's idle_timeout
#: (read when it is due, so a new config applies at once)
_IdleEntry = tuple[float, int, int, Instance]


@dataclass
class _Function:
    config: FunctionConfig
    instances: dict[str, Instance] = field(default_factory=dict)
    queue: deque[_Waiting] = field(default_factory=deque)
    ready: list[_ReadyEntry] = field(default_factory=list)        # heap
    starting: list[_StartingEntry] = field(default_factory=list)  # heap
    #: sorted by idle_since: instances go idle at `now`, which only moves on (see `_idle_push`);
    #: a list read from `idle_head` on (a deque's methods are generic calls when compiled)
    idle: list[_IdleEntry] = field(default_factory=list)
    idle_head: int = 0
    #: idle entries of provisioned instances, set aside (kept if `provisioned` is cleared)
    parked: dict[str, _IdleEntry] = field(default_factory=dict)


class Scheduler:
    """All functions of one platform and the GPUs they share.

    Args:
        gpus: the GPU pool for memory-spec placement (empty pool = no GPUs).
        id_prefix: prefix for generated instance ids.
    """

    def __init__(self, gpus: GpuPool | None = None, *, id_prefix: str = "i") -> None:
        self.gpus = gpus if gpus is not None else GpuPool()
        self._functions: dict[str, _Function] = {}
        #: the same, in registration order, as a list (iterated after every event)
        self._fn_list: list[_Function] = []
        #: functions that share one reserved concurrency (`FunctionConfig.group`)
        self._groups: dict[str, list[_Function]] = {}
        #: request id -> the instance it was admitted to or claimed (GONE once that one is)
        self._where: dict[str, Instance] = {}
        self._by_id: dict[str, Instance] = {}  # live instances (starting or ready)
        self._ids = itertools.count(1)
        self._prefix = id_prefix
        self.retired: list[Instance] = []

    # ---- functions ----------------------------------------------------------------------
    def add_function(self, config: FunctionConfig, now: float = 0.0) -> list[Decision]:
        """Register a function and start its provisioned instances (`min_instances`).

        Raises `GpuError` if its GPU spec can never be placed."""
        self.gpus.check_fits(config.name, config.gpu_memory_mb)
        if config.name in self._functions:
            raise ValueError(f"function {config.name!r} is already registered")
        fn = self._functions[config.name] = _Function(config)
        self._fn_list.append(fn)
        self._groups.setdefault(config.group or config.name, []).append(fn)
        out: list[Decision] = []
        for _ in range(min(config.min_instances, config.max_instances)):
            inst = self._start(now, fn, out)
            if inst is None:  # GPU memory ran out: start what fits
                break
            inst.provisioned = True
        return out

    def remove_function(self, now: float, name: str) -> list[Decision]:
        """Unregister a function: reject its queue and reclaim its instances."""
        fn = self._functions.get(name)
        if fn is None:
            return []
        out: list[Decision] = [Reject(w.request_id, RejectReason.SHUTDOWN) for w in fn.queue]
        fn.queue.clear()
        for inst in list(fn.instances.values()):
            out.extend(self._drop(now, inst, reason="deleted"))
        del self._functions[name]
        self._fn_list = [f for f in self._fn_list if f is not fn]
        group = self._groups.get(fn.config.group or name, [])
        group[:] = [f for f in group if f is not fn]
        return out

    def functions(self) -> list[FunctionConfig]:
        return [f.config for f in self._functions.values()]

    def has_function(self, name: str) -> bool:
        return name in self._functions

    def instances(self, function: str | None = None) -> list[Instance]:
        """Live instances (starting or ready), optionally of one function."""
        fns = [self._functions[function]] if function else list(self._functions.values())
        return [i for f in fns for i in f.instances.values()]

    def instance(self, instance_id: str) -> Instance | None:
        """A live instance by id, or None."""
        return self._by_id.get(instance_id)

    def queue_length(self, function: str) -> int:
        return len(self._functions[function].queue)

    @staticmethod
    def _held(fn: _Function) -> int:
        """Requests of `fn` the platform holds: in flight or claimed on its live instances, and
        queued (what reserved concurrency counts)."""
        held = len(fn.queue)
        for inst in fn.instances.values():
            held += len(inst.in_flight) + len(inst.claimed)
        return held

    def provisioned_load(self, function: str) -> tuple[int, int]:
        """(provisioned instances live, requests in flight or claimed on them): what FC's
        ProvisionedConcurrencyUtilization is made of (`fcbench.provision_policy.utilisation`)."""
        fn = self._functions.get(function)
        if fn is None:
            return 0, 0
        count = busy = 0
        for inst in fn.instances.values():
            if inst.provisioned:
                count += 1
                busy += len(inst.in_flight) + len(inst.claimed)
        return count, busy

    # ---- events -------------------------------------------------------------------------
    def arrive(self, now: float, function: str, request_id: str) -> list[Decision]:
        """A request for `function` arrived."""
        out: list[Decision] = []
        self.arrive_into(now, function, request_id, out)
        return out

    def arrive_into(self, now: float, function: str, request_id: str,
                    out: list[Decision]) -> None:
        """`arrive`, appending the decisions to `out` (the simulator reuses one list)."""
        fn = self._functions.get(function)
        if fn is None:
            out.append(Reject(request_id, RejectReason.UNKNOWN_FUNCTION))
            return
        cap = fn.config.reserved_concurrency
        if cap is not None:  # the one cost of the rule when no cap is set
            held = 0
            for member in self._groups[fn.config.group or fn.config.name]:
                held += self._held(member)
            if held >= cap:
                out.append(Reject(request_id, RejectReason.RESERVED_CONCURRENCY,
                                  f"reserved concurrency {cap}, {held} requests in flight "
                                  "or waiting" if cap else
                                  "reserved concurrency 0: the function takes no request"))
                return
        if fn.queue or not self._place(now, fn, request_id, out, queued=False, arrived_at=now):
            if len(fn.queue) >= fn.config.queue_size:
                out.append(Reject(request_id, RejectReason.QUEUE_FULL,
                                  f"{len(fn.queue)} requests already queued"))
            else:
                fn.queue.append(_Waiting(request_id, now))

    def finish(self, now: float, request_id: str) -> list[Decision]:
        """A request that was admitted has completed (successfully or not)."""
        out: list[Decision] = []
        self.finish_into(now, request_id, out)
        return out

    def finish_into(self, now: float, request_id: str, out: list[Decision]) -> None:
        """`finish`, appending the decisions to `out` (the simulator reuses one list)."""
        where = self._where
        inst = where.get(request_id)
        if inst is None:
            return
        del where[request_id]
        in_flight = inst.in_flight
        if inst.state is _GONE or request_id not in in_flight:
            return
        in_flight.discard(request_id)
        inst.last_used = now
        fn = self._functions[inst.function]
        if not in_flight:
            inst.idle_since = now
            inst.usage.idle(now)
            self._index(fn, inst, True)
        else:
            self._index(fn, inst, False)
        self._drain_into(now, out)

    def cancel(self, now: float, request_id: str) -> list[Decision]:
        """The client gave up: drop the request from the queue or from a starting instance's
        claims, or finish it if it was already admitted."""
        if request_id not in self._where:  # admitted or claimed requests are never queued
            for fn in self._functions.values():
                for w in fn.queue:
                    if w.request_id == request_id:
                        fn.queue.remove(w)
                        return []
        inst = self._where.get(request_id)
        if inst is not None and inst.state is not _GONE and request_id in inst.claimed:
            inst.claimed.remove(request_id)
            del self._where[request_id]
            if inst.state is _STARTING:
                heappush(self._functions[inst.function].starting,
                               (inst.created_at, inst._seq, inst))
            return self._drain(now)  # the freed claim is a slot a queued request can wait for
        return self.finish(now, request_id)

    def instance_ready(self, now: float, instance_id: str) -> list[Decision]:
        """A started instance passed its health check (and initializer)."""
        inst = self._by_id.get(instance_id)
        if inst is None or inst.state is not _STARTING:
            return []
        inst.state = _READY
        inst.ready_at = now
        inst.last_used = now
        inst.usage.start(now)
        out: list[Decision] = []
        claimed, inst.claimed = inst.claimed, []
        for request_id in claimed:
            self._admit(now, inst, request_id, True, out, False)
        if not inst.in_flight:
            inst.idle_since = now
        self._index(self._functions[inst.function], inst, not inst.in_flight)
        out.extend(self._drain(now))
        return out

    def instance_failed(self, now: float, instance_id: str, detail: str = "") -> list[Decision]:
        """An instance failed to start or died. Requests waiting for it are rejected; requests
        in flight on it are the caller's to fail (their connection broke)."""
        inst = self.instance(instance_id)
        if inst is None:
            return []
        out: list[Decision] = [Reject(r, RejectReason.START_FAILED, detail) for r in inst.claimed]
        for r in inst.claimed:
            self._where.pop(r, None)
        inst.claimed = []
        for r in list(inst.in_flight):
            self._where.pop(r, None)
        self._remove(now, inst)
        out.extend(self._drain(now))
        return out

    def tick(self, now: float) -> list[Decision]:
        """Time passed: reclaim idle instances, time out queued requests."""
        out: list[Decision] = []
        for fn in list(self._functions.values()):
            # compare with the same sums next_deadline() returns, so a tick at a deadline acts
            while fn.queue and now >= fn.queue[0].enqueued_at + fn.config.queue_timeout:
                w = fn.queue.popleft()
                out.append(Reject(w.request_id, RejectReason.QUEUE_TIMEOUT,
                                  f"waited {fn.config.queue_timeout:g} s in the queue"))
            due: list[Instance] = []
            timeout = fn.config.idle_timeout
            while True:
                inst = self._idle_top(fn)
                if inst is None:
                    break
                since = inst.idle_since
                if since is None or now < since + timeout:
                    break
                fn.idle_head += 1  # the entry _idle_top found
                due.append(inst)
            due.sort(key=_creation_order)  # the order a scan of fn.instances reclaims in
            for inst in due:
                out.extend(self._drop(now, inst, reason="idle"))
        if any(isinstance(d, Reclaim) for d in out):
            out.extend(self._drain(now))
        return out

    def reclaim_idle(self, now: float, function: str | None = None) -> list[Decision]:
        """Reclaim every ready instance with nothing in flight now (forcing the next start cold)."""
        out: list[Decision] = []
        for inst in self.instances(function):
            if inst.state is _READY and not inst.in_flight and not inst.provisioned:
                out.extend(self._drop(now, inst, reason="forced"))
        return out

    def shutdown(self, now: float) -> list[Decision]:
        """Reject everything queued and reclaim every instance."""
        out: list[Decision] = []
        for name in list(self._functions):
            fn = self._functions[name]
            out.extend(Reject(w.request_id, RejectReason.SHUTDOWN) for w in fn.queue)
            fn.queue.clear()
            for inst in list(fn.instances.values()):
                out.extend(Reject(r, RejectReason.SHUTDOWN) for r in inst.claimed)
                inst.claimed = []
                out.extend(self._drop(now, inst, reason="shutdown"))
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` would decide something, or None."""
        best = 0.0
        found = False  # (a plain float and a flag: an optional float is boxed when compiled)
        for fn in self._fn_list:
            if fn.queue:
                t = fn.queue[0].enqueued_at + fn.config.queue_timeout
                if not found or t < best:
                    best = t
                    found = True
            inst = self._idle_top(fn)
            if inst is not None:
                since = inst.idle_since  # its entry's time (or the entry would be stale)
                if since is not None:
                    t = since + fn.config.idle_timeout
                    if not found or t < best:
                        best = t
                        found = True
        return best if found else None

    # ---- rules --------------------------------------------------------------------------
    def _place(self, now: float, fn: _Function, request_id: str, out: list[Decision], *,
               queued: bool, arrived_at: float) -> bool:
        # Pack onto the busiest ready instance so the others can idle out; ties: most recently
        # used, then the oldest (fn.ready's order; stale entries are dropped on the way).
        ready = fn.ready
        while ready:
            entry = ready[0]
            best = entry[4]
            heappop(ready)
            if entry[3] != best._ver or best.state is not _READY \
                    or best.slots - len(best.in_flight) - len(best.claimed) <= 0:
                continue
            # cold: it arrived before the instance that serves it was ready (it waited for that
            # start, even if it waited in the queue rather than on a claim)
            ready_at = best.ready_at
            cold = ready_at is not None and ready_at > arrived_at
            self._admit(now, best, request_id, cold, out, queued)
            self._index(fn, best, False)
            return True
        # else join the oldest starting instance with an unclaimed slot
        starting = fn.starting
        while starting:
            oldest = starting[0][2]
            if oldest.state is not _STARTING or oldest.free_slots <= 0:
                heappop(starting)
                continue
            oldest.claimed.append(request_id)
            self._where[request_id] = oldest
            if oldest.free_slots <= 0:
                heappop(starting)
            return True
        inst = self._start(now, fn, out)
        if inst is None:
            return False
        inst.claimed.append(request_id)
        self._where[request_id] = inst
        return True

    def _start(self, now: float, fn: _Function, out: list[Decision]) -> Instance | None:
        cfg = fn.config
        if len(fn.instances) >= cfg.max_instances:
            return None
        gpu_index = None
        if cfg.gpu_memory_mb > 0:
            gpu = self.gpus.place(cfg.gpu_memory_mb)
            if gpu is None:
                return None
            gpu_index = gpu.index
        seq = next(self._ids)
        inst_id = f"{self._prefix}-{cfg.name}-{seq}"
        inst = Instance(id=inst_id, function=cfg.name, slots=cfg.concurrency, created_at=now,
                        gpu_index=gpu_index, gpu_memory_mb=cfg.gpu_memory_mb,
                        usage=Usage(gpu_memory_mb=cfg.gpu_memory_mb, memory_mb=cfg.memory_mb),
                        _seq=seq)
        fn.instances[inst_id] = inst
        self._by_id[inst_id] = inst
        heappush(fn.starting, (now, seq, inst))
        out.append(StartInstance(inst_id, cfg.name, gpu_index, cfg.gpu_memory_mb))
        return inst

    def _admit(self, now: float, inst: Instance, request_id: str, cold: bool,
               out: list[Decision], queued: bool) -> None:
        if not inst.in_flight:
            inst.usage.busy(now)
        inst.in_flight.add(request_id)
        inst.idle_since = None
        inst.last_used = now
        inst.served += 1
        inst._ver += 1  # the caller re-indexes it (`_index`)
        self._where[request_id] = inst
        out.append(Admit(request_id, inst.id, cold, queued))

    def _index(self, fn: _Function, inst: Instance, idle: bool) -> None:
        """Re-index `inst` after a change: a new version, in `fn.ready` if it has a free slot,
        in `fn.idle` if `idle` (it just went idle: `idle_since` is set)."""
        ver = inst._ver + 1
        inst._ver = ver
        in_flight = len(inst.in_flight)
        if inst.state is _READY and inst.slots - in_flight - len(inst.claimed) > 0:
            ready = fn.ready
            heappush(ready, (-in_flight, -inst.last_used, inst._seq, ver, inst))
            if len(ready) > 4 * len(fn.instances) + 64:  # stale entries pile up: compact
                fn.ready = [e for e in ready if e[3] == e[4]._ver]
                heapq.heapify(fn.ready)
        if idle:
            since = inst.idle_since
            if since is not None:
                self._idle_push(fn, (since, inst._seq, ver, inst))

    @staticmethod
    def _idle_push(fn: _Function, entry: _IdleEntry) -> None:
        idle = fn.idle
        head = fn.idle_head
        n = len(idle)
        if n > head and entry[0] < idle[n - 1][0]:  # a clock that went back (or a parked entry)
            items = idle[head:]
            items.append(entry)
            items.sort()
            fn.idle = items
            fn.idle_head = 0
            return
        idle.append(entry)
        live = n + 1 - head
        if head > 1024 and head >= live:  # the consumed front is most of the list: drop it
            del idle[:head]
            fn.idle_head = head = 0
        if live > 4 * len(fn.instances) + 64:  # stale entries pile up behind the head: compact
            fn.idle = [e for e in idle[head:] if Scheduler._idle_valid(e)]
            fn.idle_head = 0

    @staticmethod
    def _idle_valid(entry: _IdleEntry) -> bool:
        inst = entry[3]
        since = inst.idle_since
        return (entry[2] == inst._ver and inst.state is _READY
                and not inst.in_flight and since is not None and since == entry[0])

    def _idle_top(self, fn: _Function) -> Instance | None:
        """The idle instance of `fn` that is due first (not provisioned), or None; its entry is
        `fn.idle[fn.idle_head]`. Drops stale entries and sets provisioned instances' aside
        (taken back if `provisioned` is cleared). The instance, not its entry: an optional
        tuple is a new object each time when compiled."""
        if fn.parked:
            for key, entry in list(fn.parked.items()):
                if not self._idle_valid(entry):
                    del fn.parked[key]
                elif not entry[3].provisioned:
                    del fn.parked[key]
                    self._idle_push(fn, entry)
        idle = fn.idle
        head = fn.idle_head
        n = len(idle)
        while head < n:
            entry = idle[head]
            if not self._idle_valid(entry):
                head += 1
            elif entry[3].provisioned:
                head += 1
                fn.parked[entry[3].id] = entry
            else:
                fn.idle_head = head
                return entry[3]
        fn.idle_head = head
        return None

    def _drain(self, now: float) -> list[Decision]:
        """Give freed capacity to queued requests, oldest first, function by function."""
        out: list[Decision] = []
        self._drain_into(now, out)
        return out

    def _drain_into(self, now: float, out: list[Decision]) -> None:
        for fn in self._fn_list:
            queue = fn.queue
            while queue:
                head = queue[0]
                if not self._place(now, fn, head.request_id, out, queued=True,
                                   arrived_at=head.enqueued_at):
                    break
                queue.popleft()

    def _drop(self, now: float, inst: Instance, *, reason: str) -> list[Decision]:
        self._remove(now, inst)
        return [Reclaim(inst.id, inst.function, reason)]

    def _remove(self, now: float, inst: Instance) -> None:
        inst.state = InstanceState.GONE
        inst._ver += 1  # its index entries are stale now
        inst.usage.stop(now)
        fn = self._functions.get(inst.function)
        if fn is not None:
            fn.instances.pop(inst.id, None)
        self._by_id.pop(inst.id, None)
        if inst.gpu_index is not None:
            self.gpus.release(inst.gpu_index, inst.gpu_memory_mb)
        self.retired.append(inst)

    def update_function(self, now: float, config: FunctionConfig, *,
                        restart: bool = True) -> list[Decision]:
        """Replace a function's config (FC's UpdateFunction, or PutProvisionConfig).

        With `restart` (UpdateFunction: a new config means new instances) every instance of the
        old config is reclaimed now (`Reclaim` reason ``"updated"``) and takes no new request:
        an idle one is stopped at once; a busy one keeps what it has in flight, which the
        platform lets finish before it stops it (its metering ends now); requests waiting for
        an old instance to start are placed again under the new config. Then `min_instances`
        provisioned instances start. Without `restart` only the config and the provisioned
        count change: more are started (existing instances are marked provisioned only where
        `max_instances` or GPU memory leave no room), extra ones are unmarked and idle out.

        Raises:
            GpuError: the new GPU spec can never be placed (nothing is changed then).
            KeyError: no such function.
        """
        self.gpus.check_fits(config.name, config.gpu_memory_mb)
        fn = self._functions[config.name]
        old_group, new_group = fn.config.group or config.name, config.group or config.name
        if old_group != new_group:
            self._groups[old_group].remove(fn)
            self._groups.setdefault(new_group, []).append(fn)
        fn.config = config
        out: list[Decision] = []
        want = min(config.min_instances, config.max_instances)
        if restart:
            waiting: list[str] = []
            for inst in list(self.instances(config.name)):
                waiting.extend(inst.claimed)
                out.extend(self._drop(now, inst, reason="updated"))
            for request_id in waiting:  # forget the old claim, then place it afresh
                out.extend(self.cancel(now, request_id))
            for _ in range(want):
                inst = self._start(now, fn, out)
                if inst is None:
                    break
                inst.provisioned = True
            for request_id in waiting:
                out.extend(self.arrive(now, config.name, request_id))
        else:
            live = self.instances(config.name)
            kept = sorted((i for i in live if i.provisioned), key=lambda i: i.created_at)
            for inst in kept[want:]:
                inst.provisioned = False  # an ordinary instance again: it may idle out
            missing = want - min(len(kept), want)
            while missing > 0:
                inst = self._start(now, fn, out)
                if inst is None:
                    break
                inst.provisioned = True
                missing -= 1
            if missing > 0:  # no room to start more: keep the most recently used ones
                spare = sorted((i for i in live if not i.provisioned),
                               key=lambda i: i.last_used, reverse=True)
                for inst in spare[:missing]:
                    inst.provisioned = True
        out.extend(self._drain(now))
        return out
