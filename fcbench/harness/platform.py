"""The harness's control plane: drives the pure scheduler with a real clock and real runtimes.

Key names: `Platform`, `rejected`, `FunctionMeta`, `Trigger`, `Unit`. It applies scheduler decisions
(start, admit, reject, reclaim), runs the one start sequence shared by all runtimes (start → wait
ready → initializer → health check → record phases, FC's order) and the one stop sequence (let in-flight
requests of an updated instance finish → preStop → stop), watches instances for crashes, fires
lifecycle events, and keeps what FC's management API reports (ids, times, triggers, provision,
reserved concurrency).

Versions: LATEST is scheduled under the function's name; each published version that is used
becomes its own scheduling unit (`versions.unit_key`, e.g. ``fn@2``) with the version's frozen
spec, registered with the scheduler on first use (or when an alias provisions it) and removed with
the version or the function. `unit` resolves (function, qualifier) to a unit per request.

Provision policies: LATEST's (`fcbench.provision_policy`, from `harness.scheduledActions` /
`harness.targetTrackingPolicies`) are evaluated on a timer of their own, at each cron firing or
window edge and every `policy_interval_s` while a target-tracking policy is in force; a new
target goes to the scheduler through `Scheduler.update_function(..., restart=False)`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import (FcbenchError, InstanceGone, InstanceStartError, InvokeTimeout, Rejected,
                      SpecError, Throttled, UsageError)
from ..events import Events
from ..fc import DEFAULT_TIMEOUT_S
from ..protocol import REJECT_CODES, function_path
from ..provision_policy import TRACKING_INTERVAL_S, ProvisionPolicies
from ..spec import FunctionSpec, ProvisionSpec, TriggerSpec, updated_spec
from .forward import Forwarder
from .gpus import Gpu, GpuPool, default_virtual_gpus
from .platform_phases import wait_platform_phases
from .runtimes.base import InstanceHandle, Runtime, StartRequest, wait_healthy
from .scheduler import (Admit, Decision, FunctionConfig, Instance, InstanceState, Reclaim, Reject,
                        RejectReason, Scheduler, StartInstance)
from .versions import (LATEST, Alias, FunctionVersions, QualifierError, Version, split_key,
                       unit_key)

__all__ = ["FunctionMeta", "Platform", "Trigger", "Unit", "rejected"]

log = logging.getLogger(__name__)

#: The longest a policy timer sleeps before it looks at the wall clock again (a clock that was
#: set, a far cron firing).
_MAX_POLICY_SLEEP_S = 300.0


def rejected(d: Reject, message: str) -> Rejected:
    """The error a `Reject` decision becomes: `Throttled` for a 429, else `Rejected`."""
    status, code = REJECT_CODES[d.reason.value]
    cls = Throttled if status == 429 else Rejected
    return cls(message, reason=d.reason.value, status=status, code=code)


@dataclass
class _Live:
    spec: FunctionSpec | None = None  # the config it was started with (updates change specs)
    handle: InstanceHandle | None = None
    task: asyncio.Task[None] | None = None
    start_error: str = ""
    #: requests still in flight on it after an update reclaimed it; set when they are done
    draining: set[str] = field(default_factory=set)
    drained: asyncio.Event | None = None


@dataclass
class Trigger:
    """One HTTP trigger of a function (FC allows one per function and qualifier)."""

    spec: TriggerSpec
    trigger_id: str
    created: float  # epoch seconds
    modified: float


@dataclass
class FunctionMeta:
    """What FC's API says about a function besides its spec."""

    function_id: str
    created: float  # epoch seconds
    modified: float
    triggers: dict[str, Trigger] = field(default_factory=dict)
    provision: ProvisionSpec | None = None
    #: published versions, aliases and the aliases' provision configs
    versions: FunctionVersions = field(default_factory=FunctionVersions)


@dataclass(frozen=True)
class Unit:
    """Where one request for (function, qualifier) is scheduled: the scheduler's `key`, the
    `version_id` that serves it (`LATEST` or a published id) and that version's frozen `spec`
    (None for LATEST: the function's current spec)."""

    key: str
    function: str
    version_id: str = LATEST
    spec: FunctionSpec | None = None


class Platform:
    """FC on one machine: functions, instances, scheduling, metering and events.

    Args:
        runtimes: runtime name -> runtime (a spec's `harness.runtime` picks one).
        gpus: the GPUs to place GPU-memory specs on.
        log_dir: where instance logs go (a temporary folder when None).
        policy_interval_s: how often a target-tracking provision policy is evaluated.
    Attribute `add_virtual_gpus`: no real GPU and none chosen, so a GPU function added from now
    on (the FC API, `fcbench deploy`) brings virtual cards sized like its gpuType, as the specs
    the harness started with did (`default_virtual_gpus`). The harness sets it once its own
    specs are in.
    """

    def __init__(self, runtimes: dict[str, Runtime], *, gpus: list[Gpu] | None = None,
                 log_dir: str | Path | None = None, events: Events | None = None,
                 event_buffer: int = 10_000,
                 policy_interval_s: float = TRACKING_INTERVAL_S) -> None:
        self.runtimes = runtimes
        self.events = events or Events()
        self.scheduler = Scheduler(GpuPool(list(gpus or [])))
        self.add_virtual_gpus = False
        self.specs: dict[str, FunctionSpec] = {}
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="fcbench-logs-"))
        self.meta: dict[str, FunctionMeta] = {}
        self._live: dict[str, _Live] = {}
        self._draining: dict[str, _Live] = {}  # instance id -> reclaimed, still serving
        self._handles: dict[str, InstanceHandle] = {}  # every instance ever started, for views
        self._waiters: dict[str, asyncio.Future[Admit]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._stops: set[asyncio.Task[None]] = set()
        self._wall_offset = time.time() - time.monotonic()
        self.recent_events: deque[dict[str, Any]] = deque(maxlen=event_buffer)
        self._event_seq = 0
        self.forwarder = Forwarder()
        #: draws which version serves a request through an alias with a canary weight (seed it
        #: to make a split reproducible)
        self.routing_rng = random.Random()
        self._units: set[str] = set()  # the published versions' keys the scheduler has
        self.policy_interval_s = policy_interval_s
        #: the provisioned target LATEST's policies set (absent: its minInstances)
        self._targets: dict[str, int] = {}
        self._policy_timers: dict[str, asyncio.TimerHandle] = {}
        self._record_events()

    # ---- functions ----------------------------------------------------------------------
    async def add_function(self, spec: FunctionSpec) -> None:
        """Register a function (validating runtime and GPU fit) and prepare its runtime."""
        self._check_open()
        runtime = self._runtime_for(spec)
        if spec.gpu_memory_mb and not runtime.capabilities.gpus:
            raise UsageError(f"runtime {runtime.name!r} cannot run GPU specs")
        self._virtual_cards_for(spec, always=True)
        policies = self._policies_of(spec)
        if policies is not None:  # what they ask for now, before any instance runs
            self._targets[spec.name] = policies.target(
                time.time(), provisioned=0, busy=0, concurrency=spec.instance_concurrency)
        starts = self.scheduler.add_function(self._config(spec), time.monotonic())
        # both maps filled before the await: a GetFunction while the runtime prepares (a docker
        # pull can take minutes) finds the function whole
        now = time.time()
        self.specs[spec.name] = spec
        self.meta[spec.name] = FunctionMeta(uuid.uuid4().hex, now, now)
        try:
            await runtime.prepare(spec)
        except BaseException:
            self.scheduler.remove_function(time.monotonic(), spec.name)
            self.specs.pop(spec.name, None)
            self.meta.pop(spec.name, None)
            self._targets.pop(spec.name, None)
            raise
        self._apply(starts)  # provisioned instances start now (the runtime is prepared)
        self._reprovision(spec.name)

    async def update_function(self, spec: FunctionSpec) -> None:
        """FC's UpdateFunction: `spec` replaces the function's; every next request lands on a
        new instance (old ones finish what they have in flight, then stop).

        Raises:
            UsageError: the runtime cannot run it. GpuError: it can never be placed.
        """
        self._check_open()
        runtime = self._runtime_for(spec)
        if spec.gpu_memory_mb and not runtime.capabilities.gpus:
            raise UsageError(f"runtime {runtime.name!r} cannot run GPU specs")
        await runtime.prepare(spec)
        if spec.name not in self.specs:  # deleted while the runtime prepared
            raise KeyError(spec.name)
        self._virtual_cards_for(spec, always=False)
        decisions = self.scheduler.update_function(time.monotonic(), self._config(spec))
        self.specs[spec.name] = spec
        self.meta[spec.name].modified = time.time()
        self._apply(decisions)
        self._reprovision(spec.name)  # its harness keys may carry other policies

    def _virtual_cards_for(self, spec: FunctionSpec, *, always: bool) -> None:
        """Give a GPU spec virtual cards of its gpuType (see `add_virtual_gpus`): `always` for a
        function added to a running harness (its own cards, as at start), else only when it
        would not fit on the cards there are."""
        pool = self.scheduler.gpus
        if not (self.add_virtual_gpus and spec.gpu_memory_mb):
            return
        if not always and pool.gpus and spec.gpu_memory_mb <= pool.largest_mb:
            return
        cards, info = default_virtual_gpus([spec])
        for card in cards:
            card.index = len(pool.gpus)
            pool.gpus.append(card)
        log.info("%s: %s", spec.name, info["description"])

    def set_provision(self, name: str, provision: ProvisionSpec | None,
                      qualifier: str | None = None) -> None:
        """PutProvisionConfig (None: DeleteProvisionConfig): `defaultTarget` becomes the
        function's `harness.minInstances` and its policies `harness.scheduledActions` /
        `harness.targetTrackingPolicies`; the target they give now applies at once (instances
        are kept, more started or unmarked) and their timer is armed. With an alias as
        `qualifier`, the alias's main version keeps `defaultTarget` instances instead (its
        policies are kept and shown, not acted on).

        Raises:
            SpecError: the default target is more than `harness.maxInstances`.
            QualifierError: `qualifier` is a version id (FC: an alias or LATEST) or no alias.
        """
        if qualifier and qualifier != LATEST:
            self._set_alias_provision(name, qualifier, provision)
            return
        keys = provision.harness_keys() if provision else {
            "minInstances": 0, "scheduledActions": None, "targetTrackingPolicies": None}
        spec = updated_spec(self.specs[name], {"harness": keys},
                            source="PutProvisionConfig body")
        self.specs[name] = spec
        self.meta[name].provision = provision
        self._reprovision(name, force=True)

    def set_concurrency(self, name: str, reserved: int | None) -> None:
        """PutConcurrencyConfig (None: DeleteConcurrencyConfig): `harness.reservedConcurrency`
        of the function (FC's call takes no qualifier); it counts from the next request (those
        already admitted keep running). Each published version in use gets the same cap, and
        the function's units count against it together, as FC counts the function."""
        spec = updated_spec(self.specs[name], {"harness": {"reservedConcurrency": reserved}},
                            source="PutConcurrencyConfig body")
        self.specs[name] = spec
        self._apply(self.scheduler.update_function(time.monotonic(), self._config(spec),
                                                   restart=False))
        for version_id in list(self.meta[name].versions.versions):
            if unit_key(name, version_id) in self._units:
                self._sync_unit(name, version_id)

    def provision_target(self, name: str) -> int:
        """The provisioned target now (FC's provision `target`): what the policies set, else
        `harness.minInstances` (`defaultTarget`)."""
        return self._targets.get(name, self.specs[name].harness.min_instances)

    def provisioned_ready(self, name: str, qualifier: str | None = None) -> int:
        """How many provisioned instances of `name` are ready (FC's provision `current`); of
        the alias's main version for an alias `qualifier`."""
        key = name
        if qualifier and qualifier != LATEST:
            key = unit_key(name, self.meta[name].versions.alias(qualifier).version_id)
        if not self.scheduler.has_function(key):
            return 0
        return sum(i.provisioned and i.state is InstanceState.READY
                   for i in self.scheduler.instances(key))

    # ---- versions and aliases -----------------------------------------------------------
    def unit(self, name: str, qualifier: str | None = None) -> Unit:
        """Where the next request for `name` at `qualifier` (LATEST, a version id or an alias)
        is scheduled; an alias with a canary weight draws from `routing_rng`. A version's unit
        is registered with the scheduler on first use. An unknown function resolves to its
        name, which the scheduler refuses (404 FunctionNotFound).

        Raises:
            QualifierError: 404 VersionNotFound / AliasNotFound.
        """
        meta = self.meta.get(name)
        if meta is None or not qualifier or qualifier == LATEST:  # the hot path: no draw
            return Unit(name, name)
        version_id = meta.versions.resolve(qualifier, self.routing_rng.random())
        if version_id == LATEST:
            return Unit(name, name)
        version = meta.versions.version(version_id)
        key = self._ensure_unit(name, version)
        return Unit(key, name, version_id, version.spec)

    def publish_version(self, name: str, body: Any) -> Version:
        """PublishFunctionVersion: LATEST's current spec becomes the next version."""
        return self.meta[name].versions.publish(self.specs[name], body, time.time())

    async def delete_version(self, name: str, version_id: str) -> None:
        """DeleteFunctionVersion: its instances are stopped (refused while an alias uses it)."""
        self.meta[name].versions.delete_version(version_id)
        self._drop_unit(unit_key(name, version_id))
        await self._drain_stops()

    def create_alias(self, name: str, body: Any) -> Alias:
        """CreateAlias from its JSON body."""
        return self.meta[name].versions.create_alias(body, time.time())

    def update_alias(self, name: str, alias: str, body: Any) -> Alias:
        """UpdateAlias; a provision config of the alias moves to its new main version."""
        versions = self.meta[name].versions
        out, before = versions.update_alias(alias, body, time.time())
        if alias in versions.provisions:
            self._sync_unit(name, before)
            self._sync_unit(name, out.version_id)
        return out

    def delete_alias(self, name: str, alias: str) -> None:
        """DeleteAlias; its provision config goes too (its instances may idle out)."""
        versions = self.meta[name].versions
        provisioned = alias in versions.provisions
        gone = versions.delete_alias(alias)
        if provisioned:
            self._sync_unit(name, gone.version_id)

    def alias_provision(self, name: str, alias: str) -> ProvisionSpec | None:
        """The provision config of `alias` (404 AliasNotFound when there is no such alias)."""
        versions = self.meta[name].versions
        versions.alias(alias)
        return versions.provisions.get(alias)

    def instances_of(self, name: str, qualifier: str | None = None
                     ) -> list[tuple[Instance, str]]:
        """Live instances of `name` with the version each runs (`LATEST` or an id): all of
        them, or those a request for `qualifier` can land on."""
        meta = self.meta[name]
        wanted = meta.versions.version_ids(qualifier) if qualifier else None
        out = []
        for version_id in [LATEST, *meta.versions.versions]:
            key = unit_key(name, version_id)
            if (wanted is None or version_id in wanted) and self.scheduler.has_function(key):
                out += [(inst, version_id) for inst in self.scheduler.instances(key)]
        return out

    def _set_alias_provision(self, name: str, alias: str,
                             provision: ProvisionSpec | None) -> None:
        versions = self.meta[name].versions
        if alias.isdigit():
            raise QualifierError(400, "InvalidArgument", f"qualifier {alias!r} is a version; a "
                                 "provision config takes an alias (or LATEST), as on FC: "
                                 "create an alias for the version and provision that")
        target = versions.alias(alias)
        if provision is not None:
            cap = versions.version(target.version_id).spec.harness.max_instances
            if provision.default_target > cap:
                raise SpecError(f"defaultTarget {provision.default_target} is more than version "
                                f"{target.version_id}'s harness.maxInstances ({cap})",
                                file="PutProvisionConfig body", path="defaultTarget")
            versions.provisions[alias] = provision
        else:
            versions.provisions.pop(alias, None)
        self._sync_unit(name, target.version_id)

    def _unit_config(self, name: str, version: Version) -> FunctionConfig:
        # a version's own provisioned count comes from its aliases' provision configs; the
        # snapshot's harness.minInstances is LATEST's provision config, not the version's
        target = self.meta[name].versions.provision_target(version.version_id)
        # reserved concurrency is the function's (PutConcurrencyConfig has no qualifier): the
        # current one, not the snapshot's, shared with LATEST and the other versions (`group`)
        return replace(FunctionConfig.from_spec(version.spec),
                       name=unit_key(name, version.version_id), min_instances=target,
                       reserved_concurrency=self.specs[name].harness.reserved_concurrency,
                       group=name)

    def _ensure_unit(self, name: str, version: Version) -> str:
        key = unit_key(name, version.version_id)
        if key not in self._units:
            decisions = self.scheduler.add_function(self._unit_config(name, version),
                                                    time.monotonic())
            self._units.add(key)
            self._apply(decisions)
        return key

    def _sync_unit(self, name: str, version_id: str) -> None:
        """A version's provisioned count changed: start, keep or unmark its instances."""
        version = self.meta[name].versions.versions.get(version_id)
        if version is None:
            return
        key = unit_key(name, version_id)
        if key in self._units:
            self._apply(self.scheduler.update_function(
                time.monotonic(), self._unit_config(name, version), restart=False))
        elif self.meta[name].versions.provision_target(version_id):
            self._ensure_unit(name, version)

    def _drop_unit(self, key: str) -> None:
        if key in self._units:
            self._units.discard(key)
            self._apply(self.scheduler.remove_function(time.monotonic(), key))

    def _spec_of(self, key: str) -> FunctionSpec:
        """The spec a unit's instances run: LATEST's current one, or the version's."""
        function, version_id = split_key(key)
        if version_id == LATEST:
            return self.specs[key]
        return self.meta[function].versions.versions[version_id].spec

    @staticmethod
    def _who(key: str) -> dict[str, str]:
        """What views and events say for a scheduler key: the function and the version."""
        function, version_id = split_key(key)
        return {"function": function, "version_id": version_id}

    # ---- provision policies ---------------------------------------------------------------
    def _policies_of(self, spec: FunctionSpec) -> ProvisionPolicies | None:
        return ProvisionPolicies.of(spec.harness, interval_s=self.policy_interval_s)

    def _config(self, spec: FunctionSpec) -> FunctionConfig:
        """The scheduler's config of `spec`, with the provisioned target its policies set."""
        config = FunctionConfig.from_spec(spec)
        target = self._targets.get(spec.name)
        return config if target is None else replace(config, min_instances=target)

    def _reprovision(self, name: str, *, force: bool = False) -> None:
        """Evaluate `name`'s provision policies now, hand a changed target (or, with `force`,
        the spec's new config) to the scheduler, and arm the timer of the next evaluation."""
        timer = self._policy_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        spec = self.specs.get(name)
        if spec is None or self._closed:
            return
        policies = self._policies_of(spec)
        if policies is None:
            changed = self._targets.pop(name, None) is not None
        else:
            now = time.time()
            provisioned, busy = self.scheduler.provisioned_load(name)
            target = policies.target(now, provisioned=provisioned, busy=busy,
                                     concurrency=spec.instance_concurrency)
            changed = self._targets.get(name) != target
            self._targets[name] = target
            when = policies.next_evaluation(now)
            if when is not None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop (a synchronous caller): nothing to time
                    loop = None
                if loop is not None:
                    delay = min(max(when - now, 0.001), _MAX_POLICY_SLEEP_S)
                    self._policy_timers[name] = loop.call_later(delay, self._policy_due, name)
        if changed or force:
            self._apply(self.scheduler.update_function(time.monotonic(), self._config(spec),
                                                       restart=False))

    def _policy_due(self, name: str) -> None:
        self._policy_timers.pop(name, None)
        try:
            self._reprovision(name)
        except Exception:  # noqa: BLE001 - a timer callback: log, the next call re-arms
            log.exception("provision policies of %s failed", name)

    def put_trigger(self, name: str, trigger: TriggerSpec) -> Trigger:
        """Add an HTTP trigger to function `name` (the caller checked it is new)."""
        now = time.time()
        out = Trigger(trigger, uuid.uuid4().hex, now, now)
        self.meta[name].triggers[trigger.trigger_name] = out
        return out

    def replace_trigger(self, name: str, trigger_name: str, spec: TriggerSpec) -> Trigger:
        """UpdateTrigger: `spec` replaces the trigger's, live (same id and creation time)."""
        trigger = self.meta[name].triggers[trigger_name]
        trigger.spec, trigger.modified = spec, time.time()
        return trigger

    def delete_trigger(self, name: str, trigger_name: str) -> None:
        self.meta[name].triggers.pop(trigger_name, None)

    def http_trigger(self, name: str) -> Trigger | None:
        """The HTTP trigger that guards ``/http/{name}/``, if the function has one."""
        meta = self.meta.get(name)
        return next(iter(meta.triggers.values()), None) if meta else None

    async def remove_function(self, name: str) -> None:
        for key in [k for k in self._units if split_key(k)[0] == name]:
            self._drop_unit(key)
        self._apply(self.scheduler.remove_function(time.monotonic(), name))
        self.specs.pop(name, None)
        self.meta.pop(name, None)
        self._targets.pop(name, None)
        timer = self._policy_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        await self._drain_stops()

    def _runtime_for(self, spec: FunctionSpec) -> Runtime:
        try:
            return self.runtimes[spec.harness.runtime]
        except KeyError:
            have = ", ".join(sorted(self.runtimes)) or "none"
            raise UsageError(f"function {spec.name!r} wants runtime {spec.harness.runtime!r}, "
                             f"but this harness runs: {have}") from None

    # ---- requests -----------------------------------------------------------------------
    async def acquire(self, function: str, request_id: str | None = None) -> tuple[Admit, InstanceHandle]:
        """Wait for a slot for one request; returns the decision and the instance to send to.

        The caller must call `release(request_id)` when the request is done.

        Raises:
            Rejected: queue full / timeout (429), unknown function (404), failed start (502).
        """
        self._check_open()
        rid = request_id or uuid.uuid4().hex
        fut: asyncio.Future[Admit] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self._apply(self.scheduler.arrive(time.monotonic(), function, rid))
        try:
            admit = await fut
        except asyncio.CancelledError:
            self._apply(self.scheduler.cancel(time.monotonic(), rid))
            raise
        finally:
            self._waiters.pop(rid, None)
        live = self._live.get(admit.instance_id) or self._draining.get(admit.instance_id)
        if live is None or live.handle is None:  # crashed between admit and now
            self.release(rid)
            raise rejected(Reject(rid, RejectReason.START_FAILED),
                           f"instance {admit.instance_id} went away before the request was sent")
        return admit, live.handle

    def release(self, request_id: str) -> None:
        """A request admitted by `acquire` has finished."""
        if self._draining:
            for live in self._draining.values():
                live.draining.discard(request_id)
                if not live.draining and live.drained is not None:
                    live.drained.set()
        self._apply(self.scheduler.finish(time.monotonic(), request_id))

    # ---- decisions ----------------------------------------------------------------------
    def _apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Admit):
                fut = self._waiters.get(d.request_id)
                if fut is not None and not fut.done():
                    fut.set_result(d)
                else:  # the client is gone; give the slot back
                    self._apply(self.scheduler.finish(time.monotonic(), d.request_id))
            elif isinstance(d, Reject):
                fut = self._waiters.get(d.request_id)
                if fut is not None and not fut.done():
                    fut.set_exception(rejected(d, self._reject_message(d)))
            elif isinstance(d, StartInstance):
                live = _Live(spec=self._spec_of(d.function))
                self._live[d.instance_id] = live
                live.task = asyncio.ensure_future(self._start(d, live))
            elif isinstance(d, Reclaim):
                self._stop_later(d.instance_id, d.reason)
        self._rearm()

    @staticmethod
    def _reject_message(d: Reject) -> str:
        if d.reason is RejectReason.QUEUE_FULL:
            return f"Reserved resource exhausted: no free instance slot and the queue is full ({d.detail})."
        if d.reason is RejectReason.QUEUE_TIMEOUT:
            return f"Reserved resource exhausted: the request {d.detail} without getting a slot."
        if d.reason is RejectReason.RESERVED_CONCURRENCY:
            return (f"Function concurrency exceeds the limit: {d.detail}. Retry later, or "
                    "change it with PutConcurrencyConfig / DeleteConcurrencyConfig.")
        if d.reason is RejectReason.UNKNOWN_FUNCTION:
            return f"function not found; list functions with GET {function_path()}"
        if d.reason is RejectReason.SHUTDOWN:
            return "the harness is shutting down"
        return f"the instance could not start: {d.detail}"

    def _rearm(self) -> None:
        deadline = self.scheduler.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and not self._closed:
            delay = max(0.0, deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._apply(self.scheduler.tick(time.monotonic()))

    # ---- instance lifecycle -------------------------------------------------------------
    async def _start(self, d: StartInstance, live: _Live) -> None:
        spec = live.spec or self._spec_of(d.function)
        runtime = self._runtime_for(spec)
        gpu = next((g for g in self.scheduler.gpus.gpus if g.index == d.gpu_index), None)
        log_path = self.log_dir / f"{d.instance_id}.log"
        t0 = time.perf_counter()
        self.events.instance_starting.fire(ts=time.time(), **self._who(d.function), instance_id=d.instance_id,
                   gpu_index=d.gpu_index)
        handle: InstanceHandle | None = None
        launch_ns = time.time_ns()
        try:
            # FC's own phases (GPU preparation, registry pull...), waited out before the
            # runtime starts the instance: part of the start, measured as their own phases
            platform_ms = await wait_platform_phases(spec, d.instance_id)
            handle = await runtime.start(StartRequest(spec, d.instance_id, gpu, log_path))
            handle.phases_ms.update(platform_ms)
            live.handle = handle
            self._handles[d.instance_id] = handle
            handle.info["launch_ns"] = launch_ns
            await runtime.wait_ready(handle, spec.harness.start_timeout)
            handle.info["ready_detected_ns"] = time.time_ns()
            handle.phases_ms["ready"] = (time.perf_counter() - t0) * 1000.0
            # FC's order: the initializer runs once the server listens, the health check after
            # it (its first probe no earlier than initialDelaySeconds after the launch)
            init = spec.instance_lifecycle_config.initializer
            if init is not None:
                t_init = time.perf_counter()
                await self._initialize(handle, init.timeout)
                handle.phases_ms["initializer"] = (time.perf_counter() - t_init) * 1000.0
            health = spec.custom_container_config.health_check_config
            if health is not None:  # FC's probe decides readiness, not just a listening port
                t_health = time.perf_counter()
                await wait_healthy(handle, health, self._probe(handle), since=t0)
                handle.phases_ms["health_check"] = (time.perf_counter() - t_health) * 1000.0
            handle.phases_ms["start_total"] = (time.perf_counter() - t0) * 1000.0
            handle.info["admitted_ns"] = time.time_ns()
        except asyncio.CancelledError:
            if handle is not None:
                await runtime.stop(handle)
            raise
        except Exception as exc:  # noqa: BLE001 - any start failure becomes a clean 502
            message = str(exc) if isinstance(exc, FcbenchError) else f"{type(exc).__name__}: {exc}"
            live.start_error = message
            if handle is not None:
                await runtime.stop(handle)
            self._live.pop(d.instance_id, None)
            self.events.instance_failed.fire(ts=time.time(), **self._who(d.function), instance_id=d.instance_id,
                       error=message, log_path=str(log_path))
            log.warning("instance %s failed to start: %s", d.instance_id, message)
            self._apply(self.scheduler.instance_failed(time.monotonic(), d.instance_id, message))
            return
        handle.exited.add_done_callback(lambda _f, h=handle: self._on_exit(h))
        self.events.instance_ready.fire(ts=time.time(), **self._who(d.function), instance_id=d.instance_id,
                   phases=dict(handle.phases_ms))
        self._apply(self.scheduler.instance_ready(time.monotonic(), d.instance_id))

    def _probe(self, handle: InstanceHandle) -> Callable[[str, float], Awaitable[int]]:
        """``GET path`` on the instance -> status, for the health check."""
        async def get(path: str, timeout: float) -> int:
            status, _, _ = await self.forwarder.send(handle, "GET", path, b"", {}, timeout)
            return status
        return get

    async def _initialize(self, handle: InstanceHandle, timeout: float) -> None:
        status, _, body = await self.forwarder.send(handle, "POST", "/initialize", b"", {},
                                                    timeout)
        if status >= 300:
            raise InstanceStartError(
                f"instance {handle.instance_id}: POST /initialize answered {status}: "
                f"{body[:200].decode(errors='replace')}; its log is {handle.log_path}")

    def _on_exit(self, handle: InstanceHandle) -> None:
        if handle.stopping or self._closed:
            return
        code = handle.exited.result() if not handle.exited.cancelled() else None
        message = (f"instance {handle.instance_id} exited with code {code}; "
                   f"its log is {handle.log_path}")
        self._live.pop(handle.instance_id, None)
        self.forwarder.forget(handle.base_url)
        inst = self.scheduler.instance(handle.instance_id)
        who = self._who(inst.function) if inst else {"function": handle.function,
                                                     "version_id": LATEST}
        self.events.instance_failed.fire(ts=time.time(), **who, instance_id=handle.instance_id,
                   error=message, log_path=str(handle.log_path))
        log.warning("%s", message)
        self._apply(self.scheduler.instance_failed(time.monotonic(), handle.instance_id, message))

    def _stop_later(self, instance_id: str, reason: str) -> None:
        live = self._live.pop(instance_id, None)
        inst = next((i for i in reversed(self.scheduler.retired) if i.id == instance_id), None)
        if inst is not None:
            self.events.instance_reclaimed.fire(ts=time.time(), **self._who(inst.function), instance_id=instance_id,
                       reason=reason, usage=inst.usage.as_dict(time.monotonic()))
        if live is None:
            return
        if reason == "updated" and inst is not None and inst.in_flight:
            # FC lets an old instance finish what it serves; nothing new reaches it
            live.draining = set(inst.in_flight)
            live.drained = asyncio.Event()
            self._draining[instance_id] = live
        task = asyncio.ensure_future(self._stop(live))
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    async def _stop(self, live: _Live) -> None:
        spec = live.spec
        if live.drained is not None and live.draining:
            try:
                await asyncio.wait_for(live.drained.wait(), spec.timeout if spec else DEFAULT_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass
        if live.handle is not None:
            self._draining.pop(live.handle.instance_id, None)
        if live.task is not None and not live.task.done():
            live.task.cancel()
            try:
                await live.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if live.handle is not None:
            runtime = self._runtime_for(spec) if spec else next(iter(self.runtimes.values()))
            hook = spec.instance_lifecycle_config.pre_stop if spec else None
            if hook is not None and "admitted_ns" in live.handle.info:
                await self._pre_stop(live.handle, hook.timeout)
            self.forwarder.forget(live.handle.base_url)
            await runtime.stop(live.handle)

    async def _pre_stop(self, handle: InstanceHandle, timeout: float) -> None:
        """FC's preStop hook for a custom container: ``GET /pre-stop`` within `timeout` s."""
        if handle.exited.done():
            return
        t0 = time.perf_counter()
        try:
            status, _, _ = await self.forwarder.send(handle, "GET", "/pre-stop", b"", {},
                                                     timeout)
            handle.info["pre_stop_status"] = status
        except InvokeTimeout:
            handle.info["pre_stop_status"] = "timeout"
        except (InstanceGone, OSError, ValueError) as exc:
            handle.info["pre_stop_status"] = f"failed: {exc}"
        handle.phases_ms["pre_stop"] = (time.perf_counter() - t0) * 1000.0

    async def _drain_stops(self) -> None:
        while self._stops:
            await asyncio.gather(*list(self._stops), return_exceptions=True)

    # ---- control ------------------------------------------------------------------------
    async def reclaim_idle(self, function: str | None = None) -> int:
        """Stop every idle instance now (forces the next request cold), of every version of
        `function` (or of every function); returns how many."""
        now = time.monotonic()
        if function is None:
            decisions = self.scheduler.reclaim_idle(now)
        else:
            keys = [function] + [k for k in self._units if split_key(k)[0] == function]
            decisions = [d for k in keys for d in self.scheduler.reclaim_idle(now, k)]
        self._apply(decisions)
        await self._drain_stops()
        return sum(isinstance(d, Reclaim) for d in decisions)

    async def close(self) -> None:
        """Reject what waits, stop every instance, release runtimes. Safe to call twice."""
        if self._closed:
            return
        self._apply(self.scheduler.shutdown(time.monotonic()))
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for timer in self._policy_timers.values():
            timer.cancel()
        self._policy_timers.clear()
        for live in list(self._live.values()):
            self._stops.add(asyncio.ensure_future(self._stop(live)))
        self._live.clear()
        for live in self._draining.values():  # their requests were answered by shutdown
            if live.drained is not None:
                live.drained.set()
        await self._drain_stops()
        for runtime in self.runtimes.values():
            await runtime.close()
        await self.forwarder.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this harness platform is closed; create a new one")

    # ---- views --------------------------------------------------------------------------
    def wall(self, mono: float | None) -> float | None:
        """Convert a monotonic timestamp of this process to epoch seconds."""
        return None if mono is None else mono + self._wall_offset

    def instance_view(self, inst: Instance) -> dict[str, Any]:
        """One instance as `GET /fcbench/v1/instances` and `instances.csv` show it."""
        now = time.monotonic()
        handle = self._handles.get(inst.id)
        return {
            "instance_id": inst.id, **self._who(inst.function), "state": inst.state.value,
            "slots": inst.slots, "in_flight": len(inst.in_flight), "waiting": len(inst.claimed),
            "served": inst.served, "provisioned": inst.provisioned, "gpu_index": inst.gpu_index,
            "gpu_memory_mb": inst.gpu_memory_mb,
            "created_ts": self.wall(inst.created_at), "ready_ts": self.wall(inst.ready_at),
            "stopped_ts": self.wall(inst.usage.stopped),
            "pid": handle.pid if handle else None,
            "container_id": handle.container_id if handle else None,
            "url": handle.base_url if handle else None,
            "log_path": str(handle.log_path) if handle else None,
            "phases_ms": dict(handle.phases_ms) if handle else {},
            "timeline_ns": {k: v for k, v in handle.info.items() if k.endswith("_ns")}
            if handle else {},
            "runtime_info": {k: v for k, v in handle.info.items() if not k.endswith("_ns")}
            if handle else {},
            **inst.usage.as_dict(now),
        }

    def instances_view(self, *, include_retired: bool = False) -> list[dict[str, Any]]:
        out = [self.instance_view(i) for i in self.scheduler.instances()]
        if include_retired:
            out += [self.instance_view(i) for i in self.scheduler.retired]
        return out

    def _record_events(self) -> None:
        for name in Events.__annotations__:
            hook = getattr(self.events, name)
            hook.add_listener(lambda _n=name, **kw: self._remember(_n, kw))

    @property
    def last_event_seq(self) -> int:
        """The number of the newest event (0 before any)."""
        return self._event_seq

    def _remember(self, name: str, payload: dict[str, Any]) -> None:
        self._event_seq += 1
        self.recent_events.append({"seq": self._event_seq, "event": name, **payload})

    def state_line(self) -> str:
        insts = self.scheduler.instances()
        ready = sum(i.state is InstanceState.READY for i in insts)
        return f"{len(insts)} instances ({ready} ready)"
