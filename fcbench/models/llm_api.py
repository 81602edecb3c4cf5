"""The OpenAI completions / chat-completions wire format, as vLLM serves it: request checks and
response bodies, with no HTTP (the server's `fcbench.server.openai` and the model's `/invoke` path
both use it).

Key names: `GenerationRequest` (a checked request), `parse_request`, `ApiError` (400) /
`ModelNotFound` (404), `TextGenerator` (what a model offers to be served this way), and the body
builders `response_body`, `chunk_body`, `usage_chunk_body`, `error_body`, `models_body`.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .base import BadInput

__all__ = ["CHAT_TEMPLATE", "ApiError", "Completed", "GenerationRequest", "ModelNotFound",
           "TextGenerator", "chunk_body", "error_body", "models_body", "new_id", "parse_request", "render_chat",
           "response_body", "usage", "usage_chunk_body"]

Kind = Literal["completion", "chat"]

#: vLLM's default ``max_tokens`` for /v1/completions (chat's default is the rest of the context).
DEFAULT_COMPLETION_MAX_TOKENS = 16
#: The prompt of an empty /invoke body (an empty body is a valid request, as for the other models).
DEFAULT_PROMPT = "Hello"
_ROLES = ("system", "user", "assistant", "developer", "tool")
#: How chat messages become one prompt (documented in docs/models.md): each message as
#: ``<|role|>`` + newline + content + newline, then ``<|assistant|>`` + newline for the answer.
#: The markers are plain text (bytes), not special tokens; the prompt starts with ``<bos>``.
CHAT_TEMPLATE = "<|{role}|>\n{content}\n"


class ApiError(BadInput):
    """A request the API refuses; `status` is its HTTP status and `param` the key at fault."""

    status = 400
    type = "BadRequestError"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFound(ApiError):
    """The request names a model this server does not serve (vLLM answers 404)."""

    status = 404
    type = "NotFoundError"


@dataclass(frozen=True)
class GenerationRequest:
    """One checked completions or chat request, its prompt already tokenized."""

    kind: Kind
    model: str  # the served name, echoed in every answer
    prompt_ids: tuple[int, ...]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    stream: bool = False
    include_usage: bool = False


@dataclass
class Completed:
    """A finished generation: its request, the generated ids and why it stopped."""

    request: GenerationRequest
    token_ids: list[int]
    finish_reason: str
    text: str
    inference_ms: float = 0.0


@runtime_checkable
class TextGenerator(Protocol):
    """A model the OpenAI routes can serve (`fcbench.models.llm.LLM` is one)."""

    served_name: str
    max_context: int

    def parse(self, body: bytes, *, kind: Kind | None) -> GenerationRequest:
        """Check a request body (`kind` None: sniff it); raise `ApiError` with a sentence."""

    def generate(self, request: GenerationRequest, *, cancel: threading.Event | None = None
                 ) -> Iterator[int]:
        """Yield generated token ids one at a time; `finish_reason` is set once it ends."""

    def token_text(self, token_id: int) -> str:
        """The text of one generated token."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``GET /v1/models`` (e.g. ``root``)."""


# --------------------------------------------------------------------------------------------- parse


@dataclass(frozen=True)
class _Limits:
    served_name: str
    max_context: int
    encode: Any  # (text) -> list[int], bos included
    vocab_size: int


def parse_request(body: bytes, *, kind: Kind | None, served_name: str, max_context: int,
                  encode: Any, vocab_size: int) -> GenerationRequest:
    """Check a completions (``kind="completion"``) or chat (``"chat"``) request body; `kind`
    None takes a body with ``messages`` as chat, else as a completion (the /invoke route).

    `encode` turns text into prompt ids (bos included). Keys this server does not know are
    ignored, as vLLM does; known ones it cannot honour (``n`` > 1, ``stop``, ``logprobs``,
    ``echo``, penalties) are refused with a 400 that names them.

    Raises:
        ApiError: a bad request (400); `ModelNotFound` (404) for another model's name.
    """
    lim = _Limits(served_name, max_context, encode, vocab_size)
    if not body.strip():
        doc: Any = {} if kind is None else None
        if doc is None:
            raise ApiError("the request body is empty; send a JSON object")
    else:
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ApiError(f"the request body must be a JSON object; got a JSON {type(doc).__name__}")
    if kind is None:
        kind = "chat" if "messages" in doc else "completion"
    model = doc.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise ApiError("model must be a string", "model")
        if model != served_name:
            raise ModelNotFound(f"The model `{model}` does not exist.", "model")
    _unsupported(doc, kind)
    if kind == "chat":
        prompt = tuple(encode(render_chat(_messages(doc.get("messages")))))
        max_tokens = _int(doc, "max_completion_tokens", None, 1)
        if max_tokens is None:
            max_tokens = _int(doc, "max_tokens", None, 1)
    else:
        prompt = _prompt(doc, lim, empty_ok=not body.strip())
        max_tokens = _int(doc, "max_tokens", DEFAULT_COMPLETION_MAX_TOKENS, 1)
    if not prompt:
        raise ApiError("the prompt is empty; send at least one token", "prompt")
    room = max_context - len(prompt)
    where = "messages" if kind == "chat" else "prompt"
    if max_tokens is None:  # chat: vLLM's default is what the context has left
        max_tokens = room
    if room < 1 or max_tokens > room:
        raise ApiError(
            f"This model's maximum context length is {max_context} tokens. However, you "
            f"requested {len(prompt) + max_tokens} tokens ({len(prompt)} in the {where}, "
            f"{max_tokens} in the completion). Please reduce the length of the {where} or "
            "completion.", "max_tokens" if room >= 1 else where)
    stream = _bool(doc, "stream", False)
    options = doc.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise ApiError("stream_options can only be given when stream is true",
                           "stream_options")
        if not isinstance(options, dict):
            raise ApiError("stream_options must be an object such as {\"include_usage\": true}",
                           "stream_options")
        include_usage = _bool(options, "include_usage", False, "stream_options.include_usage")
    temperature = _float(doc, "temperature", 1.0)
    if temperature < 0:
        raise ApiError(f"temperature must be non-negative; got {temperature}", "temperature")
    top_p = _float(doc, "top_p", 1.0)
    if not 0 < top_p <= 1:
        raise ApiError(f"top_p must be in (0, 1]; got {top_p}", "top_p")
    n = _int(doc, "n", 1, 1)
    if n != 1:
        raise ApiError(f"n must be 1 (this server generates one choice per request); got {n}",
                       "n")
    seed = _int(doc, "seed", None, None)
    min_tokens = _int(doc, "min_tokens", 0, 0)
    if min_tokens > max_tokens:
        raise ApiError(f"min_tokens ({min_tokens}) must not exceed max_tokens ({max_tokens})",
                       "min_tokens")
    return GenerationRequest(
        kind=kind, model=served_name, prompt_ids=prompt, max_tokens=max_tokens,
        temperature=temperature, top_p=top_p, seed=seed,
        ignore_eos=_bool(doc, "ignore_eos", False), min_tokens=min_tokens, stream=stream,
        include_usage=include_usage)


def render_chat(messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt text of checked chat `messages` (each with ``role`` and ``content``), ending in
    the assistant marker the answer follows."""
    out = "".join(CHAT_TEMPLATE.format(role=m["role"], content=m["content"]) for m in messages)
    return out + "<|assistant|>\n"


def _unsupported(doc: Mapping[str, Any], kind: Kind) -> None:
    """Refuse known keys set to something this server does not do (null/defaults pass)."""
    checks: list[tuple[str, Any]] = [("stop", (None, "", [])), ("echo", (None, False)),
                                     ("best_of", (None, 1)), ("suffix", (None, "")),
                                     ("presence_penalty", (None, 0)),
                                     ("frequency_penalty", (None, 0)), ("logit_bias", (None, {})),
                                     ("stop_token_ids", (None, [])), ("tools", (None, [])),
                                     ("response_format", (None, {"type": "text"}))]
    checks.append(("logprobs", (None, False) if kind == "chat" else (None, 0)))
    for key, fine in checks:
        value = doc.get(key)
        # bools apart: False == 0 in Python, yet echo=0 or logprobs=false are not what they mean
        if not any((type(value) is bool) == (type(f) is bool) and value == f for f in fine):
            raise ApiError(f"{key} is not supported by this server; leave it out", key)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError("messages must be a non-empty list of {\"role\", \"content\"} objects",
                       "messages")
    out = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(f"{where} must be an object with role and content", where)
        role = m.get("role")
        if role not in _ROLES:
            raise ApiError(f"{where}.role must be one of {', '.join(_ROLES)}; got {role!r}",
                           f"{where}.role")
        content = m.get("content")
        if content is None and role == "assistant":
            content = ""
        if isinstance(content, list):  # OpenAI content parts: text only
            parts = []
            for j, part in enumerate(content):
                if not (isinstance(part, dict) and part.get("type") == "text"
                        and isinstance(part.get("text"), str)):
                    raise ApiError(f"{where}.content[{j}] must be a text part "
                                   "{\"type\": \"text\", \"text\": \"...\"}", f"{where}.content")
                parts.append(part["text"])
            content = "".join(parts)
        if not isinstance(content, str):
            raise ApiError(f"{where}.content must be a string or a list of text parts",
                           f"{where}.content")
        out.append({"role": role, "content": content})
    return out


def _prompt(doc: Mapping[str, Any], lim: _Limits, *, empty_ok: bool) -> tuple[int, ...]:
    if "prompt" not in doc and empty_ok:
        return tuple(lim.encode(DEFAULT_PROMPT))
    value = doc.get("prompt")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, list)):
        value = value[0]  # a batch of one
    if isinstance(value, str):
        return tuple(lim.encode(value))
    if isinstance(value, list) and value and all(type(t) is int for t in value):
        bad = next((t for t in value if not 0 <= t < lim.vocab_size), None)
        if bad is not None:
            raise ApiError(f"prompt token id {bad} is outside the vocabulary [0, "
                           f"{lim.vocab_size})", "prompt")
        return tuple(value)
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, (str, list)) for v in value):
        raise ApiError(f"prompt holds {len(value)} prompts; this server takes one per request",
                       "prompt")
    raise ApiError("prompt must be a string or a list of token ids", "prompt")


def _int(doc: Mapping[str, Any], key: str, default: int | None, minimum: int | None) -> int | None:
    value = doc.get(key)
    if value is None:
        return default
    if type(value) is not int:
        raise ApiError(f"{key} must be an integer; got {json.dumps(value)}", key)
    if minimum is not None and value < minimum:
        raise ApiError(f"{key} must be at least {minimum}; got {value}", key)
    return value


def _float(doc: Mapping[str, Any], key: str, default: float) -> float:
    value = doc.get(key)
    if value is None:
        return default
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ApiError(f"{key} must be a finite number; got {json.dumps(value)}", key)
    return float(value)


def _bool(doc: Mapping[str, Any], key: str, default: bool, name: str | None = None) -> bool:
    value = doc.get(key)
    if value is None:
        return default
    if type(value) is not bool:
        raise ApiError(f"{name or key} must be true or false; got {json.dumps(value)}",
                       name or key)
    return value


# --------------------------------------------------------------------------------------------- bodies


@dataclass
class Ids:
    """The id and creation time one answer's chunks share."""

    id: str
    created: int = field(default_factory=lambda: int(time.time()))


def new_id(kind: Kind) -> Ids:
    """``cmpl-…`` or ``chatcmpl-…`` (as vLLM names them), created now."""
    return Ids(("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(16))


def usage(request: GenerationRequest, completion_tokens: int) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    p = len(request.prompt_ids)
    return {"prompt_tokens": p, "total_tokens": p + completion_tokens,
            "completion_tokens": completion_tokens}


def response_body(done: Completed, ids: Ids | None = None) -> dict[str, Any]:
    """The non-streamed answer: ``text_completion`` or ``chat.completion``."""
    req, ids = done.request, ids or new_id(done.request.kind)
    if req.kind == "chat":
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant",
                                                          "content": done.text},
                                  "logprobs": None, "finish_reason": done.finish_reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": done.text, "logprobs": None,
                  "finish_reason": done.finish_reason, "stop_reason": None}
        obj = "text_completion"
    return {"id": ids.id, "object": obj, "created": ids.created, "model": req.model,
            "choices": [choice], "usage": usage(req, len(done.token_ids))}


def chunk_body(request: GenerationRequest, ids: Ids, *, text: str | None = None,
               finish_reason: str | None = None, role: bool = False) -> dict[str, Any]:
    """One streamed event: a token's `text`, the chat opening (`role`: ``delta.role``), or the
    closing chunk (`finish_reason` with empty text / an empty delta)."""
    if request.kind == "chat":
        if role:
            delta: dict[str, Any] = {"role": "assistant", "content": ""}
        elif text is None:
            delta = {}
        else:
            delta = {"content": text}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish_reason}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None,
                  "finish_reason": finish_reason, "stop_reason": None}
        obj = "text_completion"
    return {"id": ids.id, "object": obj, "created": ids.created, "model": request.model,
            "choices": [choice]}


def usage_chunk_body(request: GenerationRequest, ids: Ids, completion_tokens: int
                     ) -> dict[str, Any]:
    """The last data event with ``stream_options.include_usage``: no choices, the usage."""
    obj = "chat.completion.chunk" if request.kind == "chat" else "text_completion"
    return {"id": ids.id, "object": obj, "created": ids.created, "model": request.model,
            "choices": [], "usage": usage(request, completion_tokens)}


def error_body(message: str, *, status: int = 400, type_: str = "BadRequestError",
               param: str | None = None) -> dict[str, Any]:
    """vLLM's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": status}}


def models_body(served_name: str, max_context: int, *, root: str, created: int,
                owner: str = "fcbench") -> dict[str, Any]:
    """``GET /v1/models``: the one served model."""
    return {"object": "list", "data": [{
        "id": served_name, "object": "model", "created": created, "owned_by": owner,
        "root": root, "parent": None, "max_model_len": max_context}]}
