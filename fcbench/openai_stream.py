"""An OpenAI-style answer read back: the SSE events of a streamed one with when each arrived,
and the token counts of a whole one.

Key names: `sse_events` (body + arrival marks -> (time, data) per event), `read_stream`
(-> `OpenAIStream`: content event times, usage, ``[DONE]``), `read_json` (a non-streamed answer's
usage), `token_fields` (the `InvocationRecord` token fields of one answer, by its content type),
`wants` (whether an answer may hold any: the cheap test asked of every answer).
The figures themselves are defined in `fcbench.measures` ("tokens"); this module only reads.

Recognised chunks are those ``vllm serve`` and the OpenAI API send: completions
(``choices[0].text``) and chat (``choices[0].delta.content``, or ``reasoning_content`` of a
reasoning model); a chunk with ``usage`` (the last one counts: ``stream_options.include_usage``
sends it once at the end, ``continuous_usage_stats`` on every chunk); ``data: [DONE]``. Lines end
in LF or CRLF (a bare CR, which SSE also allows, is not recognised).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OpenAIStream", "read_json", "read_stream", "sse_events", "token_fields", "wants"]

#: the blank line that ends an SSE event (RFC-style line ends LF or CRLF)
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(rb"\r?\n")


def sse_events(body: bytes, marks: Sequence[tuple[int, float]]) -> list[tuple[float | None, bytes]]:
    """Each ``data:`` event of an SSE `body` as (arrival, data), in order.

    `marks` are (body bytes so far, time) for each read that added body bytes
    (`fcbench.httpclient.Marks`); an event arrived with the read that brought its terminating
    blank line. A last event without one (the stream just ended) arrived with the last read;
    with no marks the arrival is None. An event's ``data:`` lines are joined by LF (one space
    after the colon dropped); comments, ``event:``, ``id:`` and events without data are skipped.
    """
    out: list[tuple[float | None, bytes]] = []
    j, last = 0, len(marks) - 1
    pos = 0
    for stop, end in _event_ends(body):
        event = body[pos:stop]
        pos = end
        if event.startswith(b"data:") and b"\n" not in event:  # the common case: one line
            data = event[6:] if event[5:6] == b" " else event[5:]
        else:
            lines = [line[6:] if line[5:6] == b" " else line[5:]
                     for line in _LINE.split(event) if line.startswith(b"data:")]
            if not lines:
                continue
            data = b"\n".join(lines)
        while j < last and marks[j][0] < end:  # events come in order: walk the marks once
            j += 1
        out.append((marks[j][1] if marks else None, data))
    return out


def _event_ends(body: bytes) -> list[tuple[int, int]]:
    """(where the blank line starts, where it ends) of every event of `body`, plus
    (len, len) for an unterminated last one."""
    size = len(body)
    if b"\r" in body:  # CRLF line ends somewhere: the regex (several times slower)
        ends = [(m.start(), m.end()) for m in _EVENT_END.finditer(body)]
    else:  # LF only, as vLLM and OpenAI send: a memchr-speed search
        ends, pos = [], 0
        while (stop := body.find(b"\n\n", pos)) >= 0:
            ends.append((stop, stop + 2))
            pos = stop + 2
    if size and (not ends or ends[-1][1] < size):
        ends.append((size, size))
    return ends


@dataclass(slots=True)
class OpenAIStream:
    """What a streamed OpenAI-style answer held (`read_stream`)."""

    #: arrival of each content event (a chunk whose first choice carries non-empty text)
    content_times: list[float] = field(default_factory=list)
    #: chunks that were OpenAI completion or chat chunks (0: not an OpenAI stream)
    chunks: int = 0
    #: the last ``usage`` object seen, if any
    usage: dict[str, Any] | None = None
    #: whether ``data: [DONE]`` came
    done: bool = False
    #: the message of an ``{"error": ...}`` event, if one came
    error: str = ""
    #: content events whose arrival is unknown (no marks were given)
    untimed: int = 0


def _text(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return None
    text = choice.get("text")
    if text is None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content") or delta.get("reasoning_content")
    return text


def read_stream(body: bytes, marks: Sequence[tuple[int, float]]) -> OpenAIStream:
    """The OpenAI chunks of an SSE `body` (`sse_events`): content event times, usage, [DONE].
    A data event that is not JSON, or JSON that is no OpenAI chunk, is skipped."""
    got = OpenAIStream()
    for t, data in sse_events(body, marks):
        if data == b"[DONE]":
            got.done = True
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if not isinstance(chunk, dict):
            continue
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            got.usage = usage
        if isinstance(choices, list):
            got.chunks += 1
            text = _text(choices[0]) if choices else None
            if isinstance(text, str) and text:
                if t is None:
                    got.untimed += 1
                else:
                    got.content_times.append(t)
        elif "error" in chunk and not got.error:
            err = chunk["error"]
            got.error = str(err.get("message", err) if isinstance(err, dict) else err)[:200]
        elif isinstance(usage, dict):
            got.chunks += 1
    return got


def read_json(body: bytes) -> dict[str, Any] | None:
    """The ``usage`` of a non-streamed OpenAI completion or chat answer, else None."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        return None
    usage = doc.get("usage")
    return usage if isinstance(usage, dict) else None


def _count(usage: dict[str, Any] | None, key: str) -> int | None:
    value = (usage or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


#: where a whole OpenAI answer's ``usage`` is looked for: its first and last bytes (OpenAI,
#: vLLM and llama.cpp put it after ``choices``, near the end), so a large JSON answer of
#: another API is not searched end to end on every request
_USAGE_HEAD, _USAGE_TAIL = 512, 4096


def wants(content_type: str, body: bytes) -> bool:
    """Whether an answer of `content_type` (lower case) may hold token data: an SSE stream, or
    JSON that names ``"usage"`` within its first 512 or last 4096 bytes. Cheap: the URL target
    asks it of every answer."""
    if content_type.startswith("text/event-stream"):
        return True
    return "json" in content_type and (
        body.find(b'"usage"', max(0, len(body) - _USAGE_TAIL)) >= 0
        or body.find(b'"usage"', 0, _USAGE_HEAD) >= 0)


def token_fields(content_type: str, body: bytes, marks: Sequence[tuple[int, float]],
                 sent: float) -> dict[str, Any]:
    """The `InvocationRecord` token fields (``ttft_ms``, ``tpot_ms``, ``itl_p50_ms``,
    ``itl_p99_ms``, ``input_tokens``, ``output_tokens``, and ``error`` for a stream that
    reported one) of an answer: timing and counts for a streamed OpenAI answer
    (``text/event-stream``), counts from ``usage`` for a whole one (JSON), nothing otherwise.
    `sent` is the `time.perf_counter()` the request was sent at, `marks` as `sse_events`."""
    from .measures import output_tokens, token_timing

    ctype = content_type.lower()
    if ctype.startswith("text/event-stream"):
        got = read_stream(body, marks)
        if not got.chunks:
            return {}
        out = token_timing(sent, got.content_times,
                           output_tokens(_count(got.usage, "completion_tokens"),
                                         len(got.content_times) + got.untimed))
        out["input_tokens"] = _count(got.usage, "prompt_tokens")
        if got.error:
            out["error"] = f"stream error: {got.error}"
        return out
    if wants(ctype, body):
        usage = read_json(body)
        if usage is None:
            return {}
        return {"input_tokens": _count(usage, "prompt_tokens"),
                "output_tokens": _count(usage, "completion_tokens")}
    return {}
