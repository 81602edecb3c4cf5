"""The wire contract in one place: header names, FC 3.0 API paths, the per-request record.

Key names: `InvocationRecord` (one request as the client saw it), `parse_headers` (response
headers -> record fields), `API_PREFIX` / `invoke_path` / `trigger_path` (FC 3.0 routes),
`HARNESS_API` (the harness's own routes), the ``H_*`` header names, `REJECT_CODES` (why the
platform refused -> HTTP status and FC error code) and `fc_error_code` (the ``Code`` of an FC error
body). The gateway, the in-instance server, every target, the records, the cold-start experiments
and the CLI import these; nothing else spells a header name or a route.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote

__all__ = [
    "ALL_COLUMNS", "API_PREFIX", "COLUMNS", "EXTRA_COLUMNS", "HARNESS_API", "InvocationRecord",
    "REJECT_CODES", "fc_error_code", "fc_error_message", "function_path", "invoke_path", "parse_headers",
    "trigger_path",
    "H_BATCH_SIZE", "H_BOOT_TS", "H_COLD", "H_FC_INSTANCE_ID", "H_FC_REQUEST_ID", "H_FIRST",
    "H_FORWARD_MS", "H_GATEWAY_TS",
    "H_IMPORT_MS", "H_INFERENCE_MS", "H_INITIALIZE_MS", "H_INSTANCE_ID", "H_MODEL",
    "H_MODEL_LOAD_MS", "H_QUEUE_MS", "H_READY_TS",
]

# ---- FC 3.0 API ---------------------------------------------------------------------------
#: Every FC 3.0 route starts with the API version.
API_PREFIX = "/2023-03-30"
#: The harness's own state and control routes (not part of FC).
HARNESS_API = "/fcbench/v1"


def function_path(function: str | None = None) -> str:
    """``/2023-03-30/functions`` or ``/2023-03-30/functions/{fn}`` (the name URL-quoted)."""
    base = f"{API_PREFIX}/functions"
    return base if function is None else f"{base}/{quote(function, safe='')}"


def invoke_path(function: str) -> str:
    """FC 3.0 InvokeFunction: ``/2023-03-30/functions/{fn}/invocations``."""
    return function_path(function) + "/invocations"


def trigger_path(function: str, path: str = "") -> str:
    """The harness's HTTP-trigger route for `function`: ``/http/{fn}/{path}``."""
    return f"/http/{quote(function, safe='')}/{path.lstrip('/')}"


# ---- headers ------------------------------------------------------------------------------
# The platform's (FC's, and the harness's like it):
H_FC_REQUEST_ID = "x-fc-request-id"
H_FC_INSTANCE_ID = "x-fc-instance-id"
#: the function version that served the request (LATEST or a published id), as FC names it
H_FC_VERSION = "x-fc-invocation-service-version"
H_COLD = "x-fcbench-cold"            # 1: the request waited for an instance start (harness)
H_QUEUE_MS = "x-fcbench-queue-ms"    # everything waited before the request reached an instance
H_GATEWAY_TS = "x-fcbench-gateway-ts"  # epoch ns the gateway received the request
H_FORWARD_MS = "x-fcbench-forward-ms"  # gateway -> instance -> gateway, as the gateway timed it
# FC 3.0 InvokeFunction request headers (the SDK's InvokeFunctionHeaders):
H_INVOCATION_TYPE = "x-fc-invocation-type"  # Sync (default) | Async: 202 at once, run later
H_ASYNC_TASK_ID = "x-fc-async-task-id"      # the async task's id (async tasks enabled)
__all__ += ["H_ASYNC_TASK_ID", "H_INVOCATION_TYPE"]
# The instance's own timeline (the in-instance server; readable on FC too):
H_INSTANCE_ID = "x-fcbench-instance-id"
H_BOOT_TS = "x-fcbench-boot-ts"              # epoch ns, first line of main
H_IMPORT_MS = "x-fcbench-import-ms"
H_MODEL_LOAD_MS = "x-fcbench-model-load-ms"
H_READY_TS = "x-fcbench-ready-ts"            # epoch ns, listening
H_FIRST = "x-fcbench-first"                  # 1 on the first request the instance served
H_INFERENCE_MS = "x-fcbench-inference-ms"
H_BATCH_SIZE = "x-fcbench-batch-size"
H_MODEL = "x-fcbench-model"
H_INITIALIZE_MS = "x-fcbench-initialize-ms"

#: Why the platform refused a request (the scheduler's `RejectReason` values) -> HTTP status and
#: FC error code; the gateway answers with these and the simulator records the same statuses.
REJECT_CODES: dict[str, tuple[int, str]] = {
    "queue_full": (429, "ResourceThrottled"),
    "queue_timeout": (429, "ResourceThrottled"),
    # FC's error table: 429 ResourceExhausted, "concurrency exceeds the limit"
    "reserved_concurrency": (429, "ResourceExhausted"),
    "start_failed": (502, "FunctionNotStarted"),
    "unknown_function": (404, "FunctionNotFound"),
    "shutdown": (503, "ServiceUnavailable"),
}


def _fc_error_doc(payload: bytes) -> dict[str, Any]:
    if payload[:1] != b"{":
        return {}
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def fc_error_code(status: int, payload: bytes) -> str:
    """FC's error ``Code`` from a JSON error body (e.g. ResourceThrottled), else ``HTTP 503``."""
    doc = _fc_error_doc(payload)
    code = doc.get("Code") or doc.get("code") or doc.get("error")
    return code[:200] if isinstance(code, str) and code else f"HTTP {status}"


def fc_error_message(payload: bytes) -> str | None:
    """FC's error ``Message`` from a JSON error body (it names the log file), else None."""
    message = _fc_error_doc(payload).get("Message")
    return message if isinstance(message, str) and message else None


# ---- the record ---------------------------------------------------------------------------
#: The stable first columns of requests.csv, in order (DESIGN.md "Results").
COLUMNS = ("request_id", "intended_ts", "start_ts", "end_ts", "latency_ms", "status", "cold",
           "instance_id", "queue_ms", "error")
#: Columns that follow; new ones are only ever appended.
EXTRA_COLUMNS = ("latency_from_intended_ms", "inference_ms", "first", "batch_size", "boot_ts",
                 "import_ms", "model_load_ms", "ready_ts", "fc_request_id", "worker",
                 "platform_cold", "outcome", "gateway_ts", "forward_ms", "version_id", "ttfb_ms",
                 "ttft_ms", "tpot_ms", "itl_p50_ms", "itl_p99_ms", "input_tokens",
                 "output_tokens")
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS

_TS = ("intended_ts", "start_ts", "end_ts", "boot_ts", "ready_ts", "gateway_ts")
_MS = ("latency_ms", "queue_ms", "latency_from_intended_ms", "inference_ms", "import_ms",
       "model_load_ms", "forward_ms", "ttfb_ms", "ttft_ms", "tpot_ms", "itl_p50_ms", "itl_p99_ms")
_INT = ("status", "batch_size", "worker", "input_tokens", "output_tokens")
_BOOL = ("cold", "first", "platform_cold")


@dataclass(slots=True)
class InvocationRecord:
    """One request as the client saw it, plus what the platform and the instance told it.

    Timestamps are epoch seconds; durations carry their unit in the name. ``status`` 0 means no
    HTTP response (connection error, timeout). ``cold`` is None when the target did not say.
    """

    request_id: str = ""
    intended_ts: float | None = None
    start_ts: float = 0.0
    end_ts: float = 0.0
    latency_ms: float = 0.0
    status: int = 0
    cold: bool | None = None
    instance_id: str = ""
    queue_ms: float | None = None
    error: str = ""
    inference_ms: float | None = None
    first: bool | None = None
    batch_size: int | None = None
    boot_ts: float | None = None
    import_ms: float | None = None
    model_load_ms: float | None = None
    ready_ts: float | None = None
    fc_request_id: str = ""
    worker: int | None = None
    #: What the platform itself said (the harness's ``x-fcbench-cold``); `cold` is the rule of
    #: `fcbench.measures.is_cold`, which the target applies.
    platform_cold: bool | None = None
    gateway_ts: float | None = None
    forward_ms: float | None = None
    #: The function version that served it (``x-fc-invocation-service-version``: LATEST or a
    #: published id), so a canary alias's split can be counted.
    version_id: str = ""
    #: Time to first byte: send → the first byte of the body arrived (for an empty body: the
    #: whole response); equals `latency_ms` for a body that came at once, far less for a stream.
    ttfb_ms: float | None = None
    #: Token timing of a streamed OpenAI-style answer (`fcbench.measures` "tokens"); None for
    #: any other answer.
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: The response body, for callers that show it (`fcbench invoke`); never written to CSV.
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 0 < self.status < 400

    @property
    def outcome(self) -> str:
        """warm, cold, throttled or failed (`fcbench.measures.outcome`)."""
        from .measures import outcome  # the definition; loaded once by any target

        return outcome(self.status, 1.0 if self.cold else 0.0)

    @property
    def latency_from_intended_ms(self) -> float | None:
        """End minus intended send time: latency corrected for coordinated omission."""
        if self.intended_ts is None:
            return None
        return (self.end_ts - self.intended_ts) * 1000.0

    def row(self) -> tuple[str, ...]:
        """The record as `ALL_COLUMNS` strings (empty for unknown)."""
        return (self.request_id, _ts(self.intended_ts), _ts(self.start_ts), _ts(self.end_ts),
                _ms(self.latency_ms), str(self.status), _flag(self.cold), self.instance_id,
                _ms(self.queue_ms), _one_line(self.error), _ms(self.latency_from_intended_ms),
                _ms(self.inference_ms), _flag(self.first), _int(self.batch_size),
                _ts(self.boot_ts), _ms(self.import_ms), _ms(self.model_load_ms),
                _ts(self.ready_ts), self.fc_request_id, _int(self.worker),
                _flag(self.platform_cold), self.outcome, _ts(self.gateway_ts),
                _ms(self.forward_ms), self.version_id, _ms(self.ttfb_ms),
                _ms(self.ttft_ms), _ms(self.tpot_ms), _ms(self.itl_p50_ms),
                _ms(self.itl_p99_ms), _int(self.input_tokens), _int(self.output_tokens))

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> InvocationRecord:
        """Read one CSV row (a `csv.DictReader` row) back; unknown columns are ignored."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            text = None if f.name == "body" else row.get(f.name)
            if text is None:
                continue
            if f.name in _TS or f.name in _MS:
                kwargs[f.name] = float(text) if text != "" else None
            elif f.name in _INT:
                kwargs[f.name] = int(text) if text != "" else None
            elif f.name in _BOOL:
                kwargs[f.name] = None if text == "" else text in ("1", "true", "True")
            else:
                kwargs[f.name] = text
        for name in ("start_ts", "end_ts", "latency_ms"):
            if kwargs.get(name) is None:
                kwargs[name] = 0.0
        kwargs["status"] = kwargs.get("status") or 0
        return cls(**kwargs)


def _ts(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _int(x: int | None) -> str:
    return "" if x is None else str(x)


def _flag(x: bool | None) -> str:
    return "" if x is None else ("1" if x else "0")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")[:500] if text else ""


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _ns_to_s(text: str | None) -> float | None:
    value = _float(text)
    return None if value is None else value / 1e9


def _bool(text: str | None) -> bool | None:
    if text is None or text == "":
        return None
    return text.strip().lower() in ("1", "true", "yes")


def _text(text: str | None) -> str | None:
    return text or None


def _batch(text: str | None) -> int | None:
    value = _float(text)
    return None if value is None else int(value)


#: header -> (record field, reader); read in one pass over a response's headers (the URL
#: target's hot path: a dict lookup per header instead of a lookup per known header).
_HEADER_FIELDS: dict[str, tuple[str, Callable[[str | None], Any]]] = {
    H_FC_REQUEST_ID: ("fc_request_id", _text), H_FIRST: ("first", _bool),
    H_COLD: ("platform_cold", _bool), H_QUEUE_MS: ("queue_ms", _float),
    H_INFERENCE_MS: ("inference_ms", _float), H_IMPORT_MS: ("import_ms", _float),
    H_MODEL_LOAD_MS: ("model_load_ms", _float), H_FORWARD_MS: ("forward_ms", _float),
    H_BOOT_TS: ("boot_ts", _ns_to_s), H_READY_TS: ("ready_ts", _ns_to_s),
    H_GATEWAY_TS: ("gateway_ts", _ns_to_s), H_BATCH_SIZE: ("batch_size", _batch),
    H_FC_VERSION: ("version_id", _text)}


def parse_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Record fields from response headers (`x-fc-*`, `x-fcbench-*`), for any target that sends
    them. Keys are `InvocationRecord` field names; absent headers give no key (a repeated header:
    its last value counts).

    ``platform_cold`` comes from ``x-fcbench-cold`` (the harness), ``first`` and ``ready_ts``
    from the instance; the target then decides ``cold`` with `fcbench.measures.is_cold`.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, Any] = {}
    fc_instance = instance = None
    for name, value in items:
        key = name.lower()
        known = _HEADER_FIELDS.get(key)
        if known is not None:
            parsed = known[1](value)
            if parsed is None:
                out.pop(known[0], None)
            else:
                out[known[0]] = parsed
        elif key == H_FC_INSTANCE_ID:
            fc_instance = value
        elif key == H_INSTANCE_ID:
            instance = value
    instance = fc_instance or instance
    if instance:
        out["instance_id"] = instance
    return out
