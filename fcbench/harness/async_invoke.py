"""FC 3.0 asynchronous invocation on the harness: a per-function async queue, task records, the
async invoke config, and the dispatcher that runs queued invocations on the platform.

Key names: `AsyncInvoker` (one per gateway, ``app[ASYNC_INVOKER]``), `AsyncTask`, `TaskStatus`,
`TERMINAL`, `is_async`, `TaskConflict`. The HTTP routes are `fcbench.harness.fcapi`'s.

How an invocation with ``x-fc-invocation-type: Async`` goes (FC's task state machine, as FC's
"task status and lifecycle" documents it):

* ``Enqueued``: accepted (the gateway answers 202 at once) and put in the function's async queue.
* ``Dequeued``: taken off the queue. The dispatcher takes as many as the function can run at
  once (``maxInstances × instanceConcurrency``), so a burst waits here, not in the scheduler.
  An invocation older than ``maxAsyncEventAgeInSeconds`` when it is dequeued is dropped:
  ``Expired``; one whose function is gone, or whose instance could not start: ``Invalid``.
* ``Running``: the platform admitted it (`Platform.acquire`: it may cold-start an instance, it
  holds a slot and is metered like any request) and it was sent to the instance over
  `Platform.forwarder`. A 429 from the scheduler (queue full, queue timeout) is FC's
  "concurrency limit exceeded": retried after 0.5 s, 1 s, 2 s, ... (not counted as a retry).
* ``Succeeded`` (the instance answered < 400), ``Failed`` (a 4xx; or a 5xx, a crash or a
  timeout after ``maxAsyncRetryAttempts`` retries), ``Retrying`` between those attempts.
* ``Stopping`` → ``Stopped`` (StopAsyncTask): a queued task is dropped; a running one has its
  request to the instance cancelled — the connection is cut and the slot given back.

Every async invocation is recorded; only those made while the function's config had
``asyncTask: true`` are tasks (FC: "all asynchronous invocations change to asynchronous task
mode"), which GetAsyncTask / ListAsyncTasks / StopAsyncTask see.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import InstanceGone, InvokeTimeout, Rejected
from ..fc import (ASYNC_TASK_ENDED, ASYNC_TASK_ID_MAX, ASYNC_TASK_STATUSES,
                  ASYNC_THROTTLE_FIRST_RETRY_S, ASYNC_THROTTLE_RETRY_FOR_S, DEFAULT_QUALIFIER,
                  MAX_ASYNC_PAYLOAD_BYTES)
from ..protocol import H_INVOCATION_TYPE
from ..spec import AsyncInvokeConfigSpec
from .platform import Platform, Unit
from .versions import QualifierError

__all__ = ["ASYNC_INVOKER", "AsyncConfig", "AsyncInvoker", "AsyncTask", "MAX_RETURN_PAYLOAD",
           "MAX_TASKS_KEPT", "TERMINAL", "TaskConflict", "TaskStatus", "async_too_large_message",
           "is_async"]

log = logging.getLogger(__name__)

#: FC: a task's `returnPayload` "maximum size is 1 MB"; a longer answer is cut there.
MAX_RETURN_PAYLOAD = 1 << 20
#: Ended tasks kept per function (the oldest ended ones are forgotten beyond it).
MAX_TASKS_KEPT = 10_000
#: An ended task keeps this much of its request body as `taskPayload` (the rest is dropped,
#: so thousands of ended 128 KB invocations do not pile up in memory).
KEPT_PAYLOAD_BYTES = 4096
#: FC's rule for `x-fc-async-task-id` (the SDK's InvokeFunctionHeaders doc).
_TASK_ID = re.compile(rf"[A-Za-z_][A-Za-z0-9_-]{{0,{ASYNC_TASK_ID_MAX - 1}}}")


class TaskStatus(str, enum.Enum):
    """FC's AsyncTask `status` values (the SDK's ListAsyncTasksRequest lists them)."""

    ENQUEUED = "Enqueued"
    DEQUEUED = "Dequeued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    STOPPING = "Stopping"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    RETRYING = "Retrying"


#: The states a task ends in.
TERMINAL = frozenset(TaskStatus(s) for s in ASYNC_TASK_ENDED)
assert {s.value for s in TaskStatus} == set(ASYNC_TASK_STATUSES)


def is_async(headers: Mapping[str, str]) -> bool:
    """Whether a request asks for FC's asynchronous invocation (``x-fc-invocation-type:
    Async``, any case)."""
    return headers.get(H_INVOCATION_TYPE, "").strip().lower() == "async"


def async_too_large_message() -> str:
    """FC's EntityTooLarge message for an async invocation's body, with the way out."""
    return (f"payload size exceeds maximum allowed size ({MAX_ASYNC_PAYLOAD_BYTES} bytes, 128 "
            "KB, for an asynchronous invocation, as on FC); pass large inputs by reference "
            "(e.g. an OSS URL)")


class TaskConflict(Exception):
    """A task with this id exists already (FC answers a resubmitted task id with 409)."""


def _ms(epoch: float | None) -> int | None:
    return None if epoch is None else int(round(epoch * 1000))


@dataclass
class AsyncConfig:
    """A function's async invoke config as PutAsyncInvokeConfig left it."""

    spec: AsyncInvokeConfigSpec
    function_id: str  # the function it was put on (a re-created namesake starts without one)
    created: float
    modified: float


@dataclass
class AsyncTask:
    """One asynchronous invocation: what to send, and what became of it."""

    function: str
    task_id: str
    request_id: str
    is_task: bool
    seq: int
    method: str
    path: str
    body: bytes
    headers: Mapping[str, str]
    submitted: float  # epoch seconds
    function_id: str = ""  # the function it was made for (a re-created namesake has others)
    qualifier: str = DEFAULT_QUALIFIER  # LATEST, a version or an alias
    status: TaskStatus = TaskStatus.ENQUEUED
    events: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None  # the first time it was sent to an instance
    ended: float | None = None
    retried: int = 0
    instance_id: str | None = None
    cold: bool | None = None
    status_code: int | None = None
    return_payload: bytes | None = None
    error: str | None = None
    runner: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def mark(self, status: TaskStatus, detail: str | dict[str, Any] = "") -> None:
        """Move to `status`, recording FC's event (id, status, ms timestamp, detail)."""
        self.status = status
        now = time.time()
        if status in TERMINAL:
            self.ended = now
            self.body = self.body[:KEPT_PAYLOAD_BYTES]
            self.runner = None
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        self.events.append({"eventId": len(self.events) + 1, "status": status.value,
                            "timestamp": _ms(now), "eventDetail": text})

    def to_fc(self, arn: str, *, include_payload: bool = True) -> dict[str, Any]:
        """FC's `AsyncTask`, plus a ``harness`` section FC does not have: when it was submitted,
        whether its run waited for an instance start (``cold``), the instance's HTTP status."""
        out: dict[str, Any] = {
            "taskId": self.task_id, "requestId": self.request_id, "functionArn": arn,
            "qualifier": self.qualifier, "status": self.status.value,
            "alreadyRetriedTimes": self.retried, "events": list(self.events),
        }
        if self.instance_id:
            out["instanceId"] = self.instance_id
        if self.started is not None:
            out["startedTime"] = _ms(self.started)
        if self.ended is not None:
            out["endTime"] = _ms(self.ended)
            if self.started is not None:
                out["durationMs"] = _ms(self.ended) - _ms(self.started)  # type: ignore[operator]
        if self.return_payload is not None:
            out["returnPayload"] = self.return_payload.decode("utf-8", errors="replace")
        if self.error:
            out["taskErrorMessage"] = self.error
        if include_payload:
            out["taskPayload"] = self.body.decode("utf-8", errors="replace")
        out["harness"] = {"submittedTime": _ms(self.submitted), "cold": self.cold,
                          "statusCode": self.status_code}
        return out


class AsyncInvoker:
    """The async side of one harness: configs, task records, queues and their dispatcher.

    Call `submit` from the gateway (it never waits), the getters from the API routes, and
    `close` before the platform closes (it cancels what still runs, giving slots back).
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._configs: dict[str, AsyncConfig] = {}
        self._tasks: dict[str, OrderedDict[str, AsyncTask]] = {}
        self._queues: dict[str, deque[AsyncTask]] = {}
        self._active: dict[str, int] = {}
        self._seq = 0
        self._closed = False

    # ---- configs ------------------------------------------------------------------------
    def _function_id(self, name: str) -> str | None:
        meta = self.platform.meta.get(name)
        return meta.function_id if meta else None

    def config(self, name: str) -> AsyncConfig | None:
        """The config PutAsyncInvokeConfig set on function `name` (None: none, FC's defaults)."""
        cfg = self._configs.get(name)
        if cfg is not None and cfg.function_id != self._function_id(name):
            del self._configs[name]  # put on a function deleted since
            return None
        return cfg

    def effective(self, name: str) -> AsyncInvokeConfigSpec:
        """The config in force for `name`: its own, else FC's defaults."""
        cfg = self.config(name)
        return cfg.spec if cfg is not None else AsyncInvokeConfigSpec()

    def put_config(self, name: str, spec: AsyncInvokeConfigSpec) -> AsyncConfig:
        """PutAsyncInvokeConfig: create or replace the config (its creation time is kept)."""
        now = time.time()
        old = self.config(name)
        out = AsyncConfig(spec, self._function_id(name) or "", old.created if old else now, now)
        self._configs[name] = out
        return out

    def delete_config(self, name: str) -> None:
        self._configs.pop(name, None)

    def configs(self) -> list[tuple[str, AsyncConfig]]:
        """Every function's config, by function name."""
        return sorted((n, c) for n in list(self._configs) if (c := self.config(n)) is not None)

    # ---- submitting ---------------------------------------------------------------------
    def submit(self, name: str, *, method: str, path: str, body: bytes,
               headers: Mapping[str, str], request_id: str, task_id: str | None = None,
               qualifier: str | None = None) -> AsyncTask:
        """Record one async invocation of `name` and queue it; returns at once.

        A function with ``asyncTask: true`` makes it a task: its id is `task_id` (FC's naming
        rule, checked) or, without one, the request id.

        Raises:
            ValueError: `task_id` breaks FC's rule (400). TaskConflict: that task exists (409).
        """
        is_task = self.effective(name).async_task
        tid = request_id
        if is_task and task_id is not None:
            if not _TASK_ID.fullmatch(task_id):
                raise ValueError(
                    f"x-fc-async-task-id {task_id[:200]!r} must start with a letter or _ and "
                    f"hold only letters, digits, _ and - (at most {ASYNC_TASK_ID_MAX} "
                    "characters)")
            tid = task_id
        tasks = self._tasks.setdefault(name, OrderedDict())
        if tid in tasks and tasks[tid].function_id != (self._function_id(name) or ""):
            del tasks[tid]  # a task of a deleted namesake
        if tid in tasks:
            raise TaskConflict(f"function {name!r} already has the async task {tid!r} "
                               f"({tasks[tid].status.value}); a task id is used once")
        self._seq += 1
        task = AsyncTask(name, tid, request_id, is_task, self._seq, method, path, body,
                         headers, time.time(), self._function_id(name) or "",
                         qualifier or DEFAULT_QUALIFIER)
        task.mark(TaskStatus.ENQUEUED)
        tasks[tid] = task
        self._forget_old(tasks)
        self._queues.setdefault(name, deque()).append(task)
        self._pump(name)
        return task

    def _forget_old(self, tasks: OrderedDict[str, AsyncTask]) -> None:
        if len(tasks) <= MAX_TASKS_KEPT:
            return
        for tid in [t for t, task in tasks.items() if task.done][:len(tasks) - MAX_TASKS_KEPT]:
            del tasks[tid]

    # ---- the dispatcher -----------------------------------------------------------------
    def _capacity(self, name: str) -> int:
        """How many of `name`'s invocations may be out of the queue at once: what its instances
        can run together (a deleted function: all, so each is dequeued and found Invalid)."""
        spec = self.platform.specs.get(name)
        if spec is None:
            return 1 << 30
        return spec.harness.max_instances * spec.instance_concurrency

    def _pump(self, name: str) -> None:
        queue = self._queues.get(name)
        while queue and not self._closed and self._active.get(name, 0) < self._capacity(name):
            task = queue.popleft()
            self._active[name] = self._active.get(name, 0) + 1
            task.runner = asyncio.ensure_future(self._run(task))
            task.runner.add_done_callback(lambda _f, n=name: self._ran(n))

    def _ran(self, name: str) -> None:
        self._active[name] -= 1
        self._pump(name)

    async def _run(self, task: AsyncTask) -> None:
        try:
            await self._attempts(task)
        except asyncio.CancelledError:
            if task.status is TaskStatus.STOPPING:
                task.mark(TaskStatus.STOPPED, "stopped by StopAsyncTask")
            elif not task.done:
                task.mark(TaskStatus.FAILED, "the harness shut down before the task ended")
                task.error = "the harness shut down before the task ended"
        except Exception as exc:  # noqa: BLE001 - a task must end, whatever went wrong
            log.exception("async task %s of %s failed in the harness", task.task_id,
                          task.function)
            task.error = f"{type(exc).__name__}: {exc}"
            task.mark(TaskStatus.FAILED, task.error)

    async def _attempts(self, task: AsyncTask) -> None:
        """Dequeue `task` and run it until it ends (FC's state machine, module docstring)."""
        name, platform = task.function, self.platform
        cfg = self.effective(name)
        task.mark(TaskStatus.DEQUEUED)
        backoff, throttled_since = ASYNC_THROTTLE_FIRST_RETRY_S, None
        while True:
            if not self._still_there(task):
                return
            age = time.time() - task.submitted
            if task.started is None and age > cfg.max_async_event_age_in_seconds:
                task.mark(TaskStatus.EXPIRED, f"waited {age:.3f} s in the async queue, more "
                          f"than maxAsyncEventAgeInSeconds {cfg.max_async_event_age_in_seconds}")
                return
            attempt_id = uuid.uuid4().hex
            t0 = time.perf_counter()
            try:  # LATEST, a version or an alias (a canary's draw, per attempt, as on FC)
                unit = platform.unit(name, task.qualifier)
                admit, handle = await platform.acquire(unit.key, attempt_id)
            except QualifierError as exc:  # the alias or version was deleted since
                task.error = f"{exc.code}: {exc}"
                task.mark(TaskStatus.INVALID, task.error)
                return
            except Rejected as exc:
                if exc.status == 429:  # FC: throttled, retried with binary backoff, uncounted
                    throttled_since = throttled_since or time.monotonic()
                    if time.monotonic() - throttled_since + backoff > ASYNC_THROTTLE_RETRY_FOR_S:
                        task.error = f"throttled for {ASYNC_THROTTLE_RETRY_FOR_S:g} s: {exc}"
                        task.mark(TaskStatus.FAILED, task.error)
                        return
                    await asyncio.sleep(backoff)
                    backoff *= 2
                    continue
                task.error = f"{exc.code}: {exc}"
                task.mark(TaskStatus.INVALID, task.error)  # FC: instance creation failed
                return
            queue_ms = (time.perf_counter() - t0) * 1000.0
            if task.started is None:
                task.started, task.cold = time.time(), admit.cold
            task.instance_id = admit.instance_id
            task.mark(TaskStatus.RUNNING, {"instanceId": admit.instance_id, "cold": admit.cold,
                                           "attempt": task.retried + 1,
                                           "versionId": unit.version_id})
            try:
                status, data, error = await self._send(task, handle, unit)
            finally:  # a stop cancels the send: the slot goes back all the same
                platform.release(attempt_id)
            platform.events.request.fire(
                ts=time.time(), function=name, request_id=task.request_id,
                instance_id=admit.instance_id, status=status, cold=admit.cold,
                latency_ms=(time.perf_counter() - t0) * 1000.0, queue_ms=queue_ms, error=error)
            task.status_code = status
            if error is None and status < 400:
                task.return_payload = data[:MAX_RETURN_PAYLOAD]
                task.mark(TaskStatus.SUCCEEDED)
                return
            task.error = error or f"the instance answered {status}: " + \
                data[:200].decode("utf-8", errors="replace")
            task.return_payload = data[:MAX_RETURN_PAYLOAD] or None
            if status < 500 or task.retried >= cfg.max_async_retry_attempts:
                task.mark(TaskStatus.FAILED, task.error)  # a 4xx is the caller's: no retry
                return
            task.retried += 1
            task.mark(TaskStatus.RETRYING, task.error)

    def _still_there(self, task: AsyncTask) -> bool:
        """False (and the task `Invalid`) once its function is gone."""
        if task.function in self.platform.specs and \
                task.function_id == (self._function_id(task.function) or ""):
            return True
        task.error = f"function {task.function!r} was deleted before the task ran"
        task.mark(TaskStatus.INVALID, task.error)
        return False

    async def _send(self, task: AsyncTask, handle: Any, unit: Unit
                    ) -> tuple[int, bytes, str | None]:
        """One attempt on the instance: (status, body, error or None). A timeout, a crash and
        a request that cannot be put on the wire are the function's errors, as on FC."""
        timeout = (unit.spec or self.platform.specs[task.function]).timeout
        try:
            status, _, data = await self.platform.forwarder.send(
                handle, task.method, task.path, task.body, task.headers, timeout)
        except InvokeTimeout as exc:
            return 504, b"", f"FunctionTimeout: {exc}"
        except InstanceGone as exc:
            # let the platform see the exit first, so a retry gets a new instance (as on FC)
            try:
                code = await asyncio.wait_for(asyncio.shield(handle.exited), 1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - still running, or gone
                code = None
            await asyncio.sleep(0)
            how = f"exited with code {code}" if code is not None else \
                f"broke the connection ({exc})"
            return 502, b"", (f"InstanceExited: instance {handle.instance_id} {how} while "
                              f"handling the task; its log is {handle.log_path}")
        except ValueError as exc:
            return 400, b"", f"InvalidArgument: {exc}"
        return status, data, None

    # ---- reading and stopping -----------------------------------------------------------
    def task(self, name: str, task_id: str) -> AsyncTask | None:
        """The task `task_id` of `name` (None: no such task, or an invocation made while async
        tasks were off)."""
        task = self._tasks.get(name, {}).get(task_id)
        return task if task is not None and self._visible(task) else None

    def tasks(self, name: str) -> Iterable[AsyncTask]:
        """`name`'s tasks, in the order they were submitted."""
        return (t for t in self._tasks.get(name, {}).values() if self._visible(t))

    def _visible(self, task: AsyncTask) -> bool:
        """A task of the function that has this name now (not of a deleted namesake)."""
        return task.is_task and task.function_id == (self._function_id(task.function) or "")

    async def stop(self, task: AsyncTask, wait_s: float = 10.0) -> None:
        """StopAsyncTask: a queued task ends at once; a dequeued or running one is cancelled
        (its instance request cut, its slot given back) and this returns when it has ended.

        Raises:
            ValueError: the task has ended already.
        """
        if task.done:
            raise ValueError(f"the async task {task.task_id!r} has ended ({task.status.value}); "
                             "only a task that has not ended can be stopped")
        if task.status is TaskStatus.STOPPING:
            return
        runner = task.runner
        task.mark(TaskStatus.STOPPING, "StopAsyncTask")
        if runner is None:  # still in the queue
            queue = self._queues.get(task.function)
            if queue is not None and task in queue:
                queue.remove(task)
            task.mark(TaskStatus.STOPPED, "stopped by StopAsyncTask before it was dequeued")
            return
        runner.cancel()
        done, _ = await asyncio.wait({runner}, timeout=wait_s)
        if not done:
            log.warning("async task %s did not stop within %g s", task.task_id, wait_s)

    async def close(self) -> None:
        """Cancel every running task (they give their slots back); queued ones stay queued."""
        self._closed = True
        runners = [t.runner for tasks in self._tasks.values() for t in tasks.values()
                   if t.runner is not None]
        for runner in runners:
            runner.cancel()
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)


#: Where the gateway keeps its `AsyncInvoker`.
ASYNC_INVOKER = web.AppKey("async_invoker", AsyncInvoker)
