"""The async side of `fcbench run` (``request.invocationType: Async``): turn task mode on for the
function, name the run's tasks, and after the load wait (bounded) for them and collect them.

Key names: `AsyncTaskClient` (FC 3.0's async-config and async-task routes, signed, over
`fcbench.httpclient`), `task_prefix`, `enable_tasks`, `collect_tasks`, `task_row`. The run's
tasks share a prefix (`task_prefix`), so ListAsyncTasks with ``prefix`` finds exactly them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from ..errors import TargetError
from ..fc import ASYNC_TASK_ENDED, ASYNC_TASK_ID_MAX, MAX_LIST_LIMIT
from ..http1 import HttpProtocolError
from ..measures import task_queue_ms, task_run_ms
from ..protocol import function_path
from ..targets.harness_client import HarnessClient

__all__ = ["AsyncTaskClient", "collect_tasks", "enable_tasks", "task_prefix", "task_row"]

#: How often the wait after the load asks for the tasks' states, and prints a progress line.
POLL_S, SAY_EVERY_S = 0.5, 5.0


def task_prefix(run_name: str) -> str:
    """The prefix of a run's task ids (FC's rule: a letter first, then letters, digits, _ -):
    ``run-`` and the run folder's name; room is left for the request id after it."""
    return ("run-" + re.sub(r"[^A-Za-z0-9_-]", "_", run_name))[:ASYNC_TASK_ID_MAX - 40] + "-"


class AsyncTaskClient(HarnessClient):
    """FC 3.0's async invoke config and async task calls on the harness at `base_url`, signed
    with `key` (default: the key file of the harness at that address), as `HarnessClient`."""

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None
              ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            resp = self._http.request(method, path, data, headers)
        except (OSError, HttpProtocolError) as exc:
            raise TargetError(f"{self.base_url} does not answer {method} {path}: {exc}") from exc
        try:
            doc = json.loads(resp.body) if resp.body else {}
        except ValueError:
            doc = {}
        return resp.status, doc

    def _ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, doc = self._call(method, path, body)
        if status >= 400:
            raise TargetError(f"{self.base_url} answered {status} to {method} {path}: "
                              f"{doc.get('Code', '')} {doc.get('Message', '')}".rstrip())
        return doc

    def get_config(self, function: str) -> dict[str, Any] | None:
        """GetAsyncInvokeConfig; None when the function has none (404)."""
        path = function_path(function) + "/async-invoke-config"
        status, doc = self._call("GET", path)
        if status == 404 and doc.get("Code") != "FunctionNotFound":
            return None
        if status >= 400:
            raise TargetError(f"{self.base_url} answered {status} to GET {path}: "
                              f"{doc.get('Code', '')} {doc.get('Message', '')}".rstrip())
        return doc

    def put_config(self, function: str, body: dict[str, Any]) -> dict[str, Any]:
        """PutAsyncInvokeConfig."""
        return self._ok("PUT", function_path(function) + "/async-invoke-config", body)

    def list_tasks(self, function: str, prefix: str) -> list[dict[str, Any]]:
        """Every task of `function` whose id starts with `prefix` (ListAsyncTasks, all pages,
        oldest first)."""
        out: list[dict[str, Any]] = []
        token = None
        while True:
            query = {"prefix": prefix, "limit": MAX_LIST_LIMIT, "sortOrderByTime": "asc"}
            if token:
                query["nextToken"] = token
            doc = self._ok("GET", f"{function_path(function)}/async-tasks?{urlencode(query)}")
            out += doc.get("tasks") or []
            token = doc.get("nextToken")
            if not token:
                return out

    def get_task(self, function: str, task_id: str) -> dict[str, Any]:
        """GetAsyncTask."""
        return self._ok("GET", f"{function_path(function)}/async-tasks/"
                               f"{quote(task_id, safe='')}")

    def __enter__(self) -> AsyncTaskClient:
        return self


def enable_tasks(client: AsyncTaskClient, function: str) -> str | None:
    """Make every async invocation of `function` a task (``asyncTask: true``), keeping the rest
    of its config; returns what was changed, None when it was on already.

    Raises:
        TargetError: the target does not serve FC's async invoke config.
    """
    current = client.get_config(function)
    if current is not None and current.get("asyncTask"):
        return None
    keep = {k: v for k, v in (current or {}).items() if k in (
        "destinationConfig", "maxAsyncEventAgeInSeconds", "maxAsyncRetryAttempts")}
    client.put_config(function, {**keep, "asyncTask": True})
    return f"async tasks turned on for {function} (PutAsyncInvokeConfig asyncTask: true)"


def _s(ms: Any) -> float | None:
    return None if ms is None else float(ms) / 1000.0


def task_row(task: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One tasks.csv row (`fcbench.results.folder.TASK_COLUMNS`) from FC's AsyncTask JSON; its
    `request_id` is requests.csv's (the task id less the run's `prefix`)."""
    events = task.get("events") or []
    submitted = next((e.get("timestamp") for e in events if e.get("status") == "Enqueued"),
                     None)
    harness = task.get("harness") or {}
    submitted_ts = _s(submitted if submitted is not None else harness.get("submittedTime"))
    started_ts, end_ts = _s(task.get("startedTime")), _s(task.get("endTime"))
    task_id = str(task.get("taskId") or "")
    return {"task_id": task_id, "request_id": task_id.removeprefix(prefix) if prefix else "",
            "fc_request_id": task.get("requestId") or "",
            "status": task.get("status"), "cold": harness.get("cold"),
            "instance_id": task.get("instanceId") or "", "submitted_ts": submitted_ts,
            "started_ts": started_ts, "end_ts": end_ts,
            "queue_ms": task_queue_ms(submitted_ts, started_ts),
            "run_ms": task_run_ms(started_ts, end_ts),
            "retries": task.get("alreadyRetriedTimes", 0),
            "status_code": harness.get("statusCode"), "error": task.get("taskErrorMessage") or ""}


def collect_tasks(client: AsyncTaskClient, function: str, prefix: str, *, wait_s: float,
                  say: Callable[[str], None] | None = None,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Wait up to `wait_s` for the run's tasks to end, then return them as tasks.csv rows and
    what the wait was (``waited_s``, ``unfinished``, ``gave_up``, and when it gave up the line to
    tell: ``message``). `say` gets a progress line now and then. A task still running when the
    wait ends is recorded as its last state."""
    t0 = clock()
    last_said = t0
    while True:
        tasks = client.list_tasks(function, prefix)
        pending = [t for t in tasks if t.get("status") not in ASYNC_TASK_ENDED]
        waited = clock() - t0
        if not pending or waited >= wait_s:
            break
        if say is not None and clock() - last_said >= SAY_EVERY_S:
            last_said = clock()
            say(f"async tasks: {len(tasks) - len(pending)}/{len(tasks)} ended, "
                f"{len(pending)} queued or running; waited {waited:.0f} of {wait_s:g} s")
        sleep(min(POLL_S, max(0.0, wait_s - waited)))
    info: dict[str, Any] = {"waited_s": round(waited, 3), "wait_limit_s": wait_s,
                            "unfinished": len(pending), "gave_up": bool(pending)}
    if pending:
        info["message"] = (f"{len(pending)} tasks still running after {waited:.0f} s: recorded "
                           "as their last state (raise request.asyncWait or --async-wait to "
                           "wait longer)")
    return [task_row(t, prefix) for t in tasks], info
