"""The scheduling rules of the harness and the simulator, as a pure state machine.

Key names: `Scheduler`, `FunctionConfig`, decisions `Admit`, `StartInstance`, `Reject`, `Reclaim`.
Events go in with an explicit `now` (any monotonic clock: wall or simulated); decisions come out.
No I/O, no clock reads, no sleeping, no logging, so the gateway and `fcbench.sim` cannot disagree.

Rules (docs/scheduler.md):
* an instance has `concurrency` slots; a request takes a free slot on a ready instance, packing
  onto the busiest one, ties to the most recently used;
* no free slot: join a starting instance with unclaimed slots; else start one (cold start) if
  `max_instances` and GPU memory allow; else wait in a bounded FIFO queue; a full queue or a
  queue timeout is a `Reject` (429);
* an instance with nothing in flight for `idle_timeout` is reclaimed;
* a request is cold when it waited for an instance start.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

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
    concurrency: int = 1
    max_instances: int = 10
    queue_size: int = 100
    queue_timeout: float = 60.0
    idle_timeout: float = 300.0
    gpu_memory_mb: int = 0
    memory_mb: int = 0
    #: provisioned instances (FC's provision config): started at once, never reclaimed
    min_instances: int = 0

    @classmethod
    def from_spec(cls, spec: FunctionSpec) -> FunctionConfig:
        h = spec.harness
        return cls(name=spec.name, concurrency=spec.instance_concurrency,
                   max_instances=h.max_instances, queue_size=h.queue.size,
                   queue_timeout=h.queue.timeout, idle_timeout=h.idle_timeout,
                   gpu_memory_mb=spec.gpu_memory_mb, memory_mb=spec.memory_size or 0,
                   min_instances=h.min_instances)


class InstanceState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    GONE = "gone"


class RejectReason(str, enum.Enum):
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
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

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.in_flight) - len(self.claimed)


@dataclass(frozen=True)
class Admit:
    """Send `request_id` to `instance_id` now. `cold` when it waited for that instance to start."""

    request_id: str
    instance_id: str
    cold: bool
    queued: bool = False


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
        return self.reason in (RejectReason.QUEUE_FULL, RejectReason.QUEUE_TIMEOUT)


@dataclass(frozen=True)
class Reclaim:
    """Stop `instance_id`: it idled for `idle_timeout` (or a forced reclaim)."""

    instance_id: str
    function: str
    reason: str = "idle"


Decision = Union[Admit, StartInstance, Reject, Reclaim]


@dataclass
class _Waiting:
    request_id: str
    enqueued_at: float


@dataclass
class _Function:
    config: FunctionConfig
    instances: dict[str, Instance] = field(default_factory=dict)
    queue: deque[_Waiting] = field(default_factory=deque)


class Scheduler:
    """All functions of one platform and the GPUs they share.

    Args:
        gpus: the GPU pool for memory-spec placement (empty pool = no GPUs).
        id_prefix: prefix for generated instance ids.
    """

    def __init__(self, gpus: GpuPool | None = None, *, id_prefix: str = "i") -> None:
        self.gpus = gpus if gpus is not None else GpuPool()
        self._functions: dict[str, _Function] = {}
        self._where: dict[str, str] = {}  # request id -> instance id (admitted or claimed)
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
        for fn in self._functions.values():
            if instance_id in fn.instances:
                return fn.instances[instance_id]
        return None

    def queue_length(self, function: str) -> int:
        return len(self._functions[function].queue)

    # ---- events -------------------------------------------------------------------------
    def arrive(self, now: float, function: str, request_id: str) -> list[Decision]:
        """A request for `function` arrived."""
        fn = self._functions.get(function)
        if fn is None:
            return [Reject(request_id, RejectReason.UNKNOWN_FUNCTION)]
        out: list[Decision] = []
        if fn.queue or not self._place(now, fn, request_id, out, queued=False, arrived_at=now):
            if len(fn.queue) >= fn.config.queue_size:
                out.append(Reject(request_id, RejectReason.QUEUE_FULL,
                                  f"{len(fn.queue)} requests already queued"))
            else:
                fn.queue.append(_Waiting(request_id, now))
        return out

    def finish(self, now: float, request_id: str) -> list[Decision]:
        """A request that was admitted has completed (successfully or not)."""
        inst_id = self._where.pop(request_id, None)
        if inst_id is None:
            return []
        inst = self.instance(inst_id)
        if inst is None or request_id not in inst.in_flight:
            return []
        inst.in_flight.discard(request_id)
        inst.last_used = now
        if not inst.in_flight:
            inst.idle_since = now
            inst.usage.idle(now)
        return self._drain(now)

    def cancel(self, now: float, request_id: str) -> list[Decision]:
        """The client gave up: drop the request from the queue or from a starting instance's
        claims, or finish it if it was already admitted."""
        for fn in self._functions.values():
            for w in fn.queue:
                if w.request_id == request_id:
                    fn.queue.remove(w)
                    return []
        inst = self.instance(self._where.get(request_id, ""))
        if inst is not None and request_id in inst.claimed:
            inst.claimed.remove(request_id)
            del self._where[request_id]
            return self._drain(now)  # the freed claim is a slot a queued request can wait for
        return self.finish(now, request_id)

    def instance_ready(self, now: float, instance_id: str) -> list[Decision]:
        """A started instance passed its health check (and initializer)."""
        inst = self.instance(instance_id)
        if inst is None or inst.state is not InstanceState.STARTING:
            return []
        inst.state = InstanceState.READY
        inst.ready_at = now
        inst.last_used = now
        inst.usage.start(now)
        out: list[Decision] = []
        claimed, inst.claimed = inst.claimed, []
        for request_id in claimed:
            self._admit(now, inst, request_id, cold=True, out=out)
        if not inst.in_flight:
            inst.idle_since = now
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
            for inst in list(fn.instances.values()):
                if (inst.state is InstanceState.READY and not inst.in_flight
                        and not inst.provisioned and inst.idle_since is not None
                        and now >= inst.idle_since + fn.config.idle_timeout):
                    out.extend(self._drop(now, inst, reason="idle"))
        if any(isinstance(d, Reclaim) for d in out):
            out.extend(self._drain(now))
        return out

    def reclaim_idle(self, now: float, function: str | None = None) -> list[Decision]:
        """Reclaim every ready instance with nothing in flight now (forcing the next start cold)."""
        out: list[Decision] = []
        for inst in self.instances(function):
            if inst.state is InstanceState.READY and not inst.in_flight and not inst.provisioned:
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
        times: list[float] = []
        for fn in self._functions.values():
            if fn.queue:
                times.append(fn.queue[0].enqueued_at + fn.config.queue_timeout)
            for inst in fn.instances.values():
                if inst.state is InstanceState.READY and not inst.in_flight \
                        and not inst.provisioned and inst.idle_since is not None:
                    times.append(inst.idle_since + fn.config.idle_timeout)
        return min(times, default=None)

    # ---- rules --------------------------------------------------------------------------
    def _place(self, now: float, fn: _Function, request_id: str, out: list[Decision], *,
               queued: bool, arrived_at: float) -> bool:
        ready = [i for i in fn.instances.values()
                 if i.state is InstanceState.READY and i.free_slots > 0]
        if ready:
            # Pack onto the busiest instance so the others can idle out; ties: most recently used.
            best = max(ready, key=lambda i: (len(i.in_flight), i.last_used))
            # cold: it arrived before the instance that serves it was ready (it waited for that
            # start, even if it waited in the queue rather than on a claim)
            cold = best.ready_at is not None and best.ready_at > arrived_at
            self._admit(now, best, request_id, cold=cold, out=out, queued=queued)
            return True
        starting = [i for i in fn.instances.values()
                    if i.state is InstanceState.STARTING and i.free_slots > 0]
        if starting:
            inst = min(starting, key=lambda i: i.created_at)
            inst.claimed.append(request_id)
            self._where[request_id] = inst.id
            return True
        inst = self._start(now, fn, out)
        if inst is None:
            return False
        inst.claimed.append(request_id)
        self._where[request_id] = inst.id
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
        inst_id = f"{self._prefix}-{cfg.name}-{next(self._ids)}"
        inst = Instance(id=inst_id, function=cfg.name, slots=cfg.concurrency, created_at=now,
                        gpu_index=gpu_index, gpu_memory_mb=cfg.gpu_memory_mb,
                        usage=Usage(gpu_memory_mb=cfg.gpu_memory_mb, memory_mb=cfg.memory_mb))
        fn.instances[inst_id] = inst
        out.append(StartInstance(inst_id, cfg.name, gpu_index, cfg.gpu_memory_mb))
        return inst

    def _admit(self, now: float, inst: Instance, request_id: str, *, cold: bool,
               out: list[Decision], queued: bool = False) -> None:
        if not inst.in_flight:
            inst.usage.busy(now)
        inst.in_flight.add(request_id)
        inst.idle_since = None
        inst.last_used = now
        inst.served += 1
        self._where[request_id] = inst.id
        out.append(Admit(request_id, inst.id, cold=cold, queued=queued))

    def _drain(self, now: float) -> list[Decision]:
        """Give freed capacity to queued requests, oldest first, function by function."""
        out: list[Decision] = []
        for fn in self._functions.values():
            while fn.queue:
                head = fn.queue[0]
                if not self._place(now, fn, head.request_id, out, queued=True,
                                   arrived_at=head.enqueued_at):
                    break
                fn.queue.popleft()
        return out

    def _drop(self, now: float, inst: Instance, *, reason: str) -> list[Decision]:
        self._remove(now, inst)
        return [Reclaim(inst.id, inst.function, reason)]

    def _remove(self, now: float, inst: Instance) -> None:
        inst.state = InstanceState.GONE
        inst.usage.stop(now)
        fn = self._functions.get(inst.function)
        if fn is not None:
            fn.instances.pop(inst.id, None)
        if inst.gpu_index is not None:
            self.gpus.release(inst.gpu_index, inst.gpu_memory_mb)
        self.retired.append(inst)
