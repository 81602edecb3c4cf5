"""The `Target` interface: something a request can be sent to, answering `InvocationRecord`s.

Key names: `Target`, `TargetState`, `ColdStartMethod`, `FakeTarget` (in-memory, for tests of
callers). A target also says how it can force a cold start (`cold_start_method`, `force_cold()`)
and whether the harness API stands behind it (`harness_client()`), so the cold-start experiments
ask the target rather than holding a URL and a harness handle.
"""

from __future__ import annotations

import enum
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..measures import is_cold
from ..protocol import H_COLD, InvocationRecord

if TYPE_CHECKING:
    from .harness_client import HarnessClient

__all__ = ["ColdStartMethod", "FakeTarget", "Target", "TargetState"]


class TargetState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class ColdStartMethod(str, enum.Enum):
    """How a target makes the next request land on a new instance."""

    RECLAIM = "reclaim"    # the harness API stops idle instances now
    WAIT = "wait"          # sleep longer than the platform's idle timeout
    UPDATE = "update"      # change the function so new instances start (FC)
    NONE = "none"          # cannot: take what comes and check the headers


class Target(ABC):
    """Sends one request per `invoke()` and reports what happened; never raises for a failed
    request (the record's `status` and `error` say so). A context manager; closed once."""

    #: Registry name (``url``, ``local``, ``fc``).
    name: str = ""

    def __init__(self) -> None:
        self.state = TargetState.OPEN

    def invoke(self, body: bytes = b"", content_type: str = "application/octet-stream",
               timeout: float | None = None, *, intended_ts: float | None = None,
               request_id: str | None = None) -> InvocationRecord:
        """Send one request and wait for its answer.

        Args:
            body / content_type: the request.
            timeout: seconds to wait for the response (None: the target's default).
            intended_ts: when the arrival plan wanted it sent (epoch s), copied into the record.
            request_id: the record's id (default: a random hex id).
        """
        return self.send(body, content_type, timeout, intended_ts=intended_ts,
                         request_id=request_id)()

    def send(self, body: bytes = b"", content_type: str = "application/octet-stream",
             timeout: float | None = None, *, intended_ts: float | None = None,
             request_id: str | None = None) -> Callable[[], InvocationRecord]:
        """Send one request now; the call returned waits for its answer and gives its record.

        An open-loop dispatcher sends at the intended time itself and leaves only the wait to a
        greenlet, so a request's start is not delayed behind other requests' answers. A target
        that cannot split the two (the FC SDK) sends when the returned call is made.
        """
        if self.state is TargetState.CLOSED:
            raise UsageError(f"this {type(self).__name__} is closed; create a new one")
        rid = request_id or uuid.uuid4().hex
        answer = self._start(body, content_type, timeout, request_id=rid)

        def record() -> InvocationRecord:
            rec = answer()
            if rec.cold is None:
                rec.cold = is_cold(start_ts=rec.start_ts, ready_ts=rec.ready_ts,
                                   platform_cold=rec.platform_cold, first=rec.first)
            rec.intended_ts = intended_ts
            rec.request_id = rid
            return rec

        return record

    def _start(self, body: bytes, content_type: str, timeout: float | None, *,
               request_id: str = "") -> Callable[[], InvocationRecord]:
        """Send the request now if the target can (`send`); by default it is sent by the call.
        `request_id` is the record's id (an async task's id is made from it)."""
        return lambda: self._invoke(body, content_type, timeout)

    @abstractmethod
    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        """Send the request; fill timings, status, error and the header-derived fields."""

    @property
    def cold_start_method(self) -> ColdStartMethod:
        """How `force_cold()` works for this target (NONE: it cannot)."""
        return ColdStartMethod.NONE

    def force_cold(self) -> None:
        """Make the next request start a new instance (returns when that is so).

        Raises:
            UsageError: this target cannot force a cold start.
        """
        raise UsageError(f"a {type(self).__name__} cannot force a cold start")

    def harness_client(self) -> HarnessClient | None:
        """The harness API behind this target, when there is one (instance timelines)."""
        return None

    def close(self) -> None:
        """Release connections (and whatever the target started). Safe to call twice."""
        self.state = TargetState.CLOSED

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeTarget(Target):
    """An in-memory target for unit tests of callers: answers with `respond(body)`'s
    (status, headers) after `delay_s`, without any network."""

    name = "fake"

    def __init__(self, respond: Callable[[bytes], tuple[int, dict[str, str]]] | None = None,
                 delay_s: float = 0.0) -> None:
        super().__init__()
        self._respond = respond or (lambda body: (200, {H_COLD: "0"}))
        self._delay_s = delay_s
        self.calls = 0

    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        from ..protocol import parse_headers

        self.calls += 1
        start = time.time()
        t0 = time.perf_counter()
        if self._delay_s:
            time.sleep(self._delay_s)
        status, headers = self._respond(body)
        ms = (time.perf_counter() - t0) * 1000.0
        return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                status=status, **parse_headers(headers))
