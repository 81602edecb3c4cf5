"""vLLM's OpenAI-compatible routes for a model that generates text (`TextGenerator`):
``POST /v1/completions``, ``POST /v1/chat/completions``, ``GET /v1/models``.

Key names: `add_routes`. Generation runs on the server's one inference thread, so generations on
an instance run one at a time, in arrival order (no continuous batching, unlike vLLM). Each token
is handed to the event loop as it is made (``call_soon_threadsafe``) and, with ``stream: true``,
written at once as its own ``data:`` event, so a client sees the model's token timing. A client
that hangs up stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..models.llm_api import (
    ApiError,
    Completed,
    GenerationRequest,
    Ids,
    Kind,
    TextGenerator,
    chunk_body,
    error_body,
    new_id,
    response_body,
    usage_chunk_body,
)
from ..protocol import H_INFERENCE_MS

if TYPE_CHECKING:
    from .app import ServerState

__all__ = ["add_routes"]

_DONE = b"data: [DONE]\n\n"


def add_routes(app: web.Application, state: ServerState) -> None:
    """Add the OpenAI routes for `state.model` (a `TextGenerator`) to `app`; call it before a
    catch-all POST route, which would otherwise answer these paths."""
    model = state.model
    if not isinstance(model, TextGenerator):
        raise TypeError(f"model {state.model.name!r} does not generate text")

    async def completions(request: web.Request) -> web.StreamResponse:
        return await _generate(request, state, model, "completion")

    async def chat(request: web.Request) -> web.StreamResponse:
        return await _generate(request, state, model, "chat")

    async def models(request: web.Request) -> web.Response:
        return web.json_response(model.describe(), headers=state.headers(first=False))

    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)


def _json_error(exc: ApiError, headers: dict[str, str]) -> web.Response:
    return web.json_response(error_body(str(exc), status=exc.status, type_=exc.type,
                                        param=exc.param), status=exc.status, headers=headers)


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


class _End:
    """The worker's last word: why the generation ended, or what it raised."""

    def __init__(self, finish_reason: str | None, error: BaseException | None = None) -> None:
        self.finish_reason = finish_reason
        self.error = error


class _Worker:
    """One generation on the inference thread, its tokens delivered to an asyncio queue."""

    def __init__(self, state: ServerState, model: TextGenerator, req: GenerationRequest) -> None:
        self.queue: asyncio.Queue[int | _End] = asyncio.Queue()
        self.cancel = threading.Event()
        self.t0 = time.perf_counter()
        self.ms = 0.0
        loop = asyncio.get_running_loop()
        put: Callable[[int | _End], None] = self.queue.put_nowait
        state.model_calls += 1

        def run() -> None:
            end: _End
            try:
                gen: Any = model.generate(req, cancel=self.cancel)
                for token in gen:
                    loop.call_soon_threadsafe(put, token)
                end = _End(gen.finish_reason)
            except BaseException as exc:  # noqa: BLE001 - reported to the client, then go on
                end = _End(None, exc)
            self.ms = (time.perf_counter() - self.t0) * 1000.0
            try:
                loop.call_soon_threadsafe(put, end)
            except RuntimeError:  # the loop closed (the server is stopping): nobody to tell
                pass

        self.future = loop.run_in_executor(state.executor, run)


async def _generate(request: web.Request, state: ServerState, model: TextGenerator,
                    kind: Kind) -> web.StreamResponse:
    first = state.served == 0
    state.served += 1
    headers = state.headers(first=first)
    body = await request.read()
    try:
        req = model.parse(body, kind=kind)
    except ApiError as exc:
        return _json_error(exc, headers)
    worker = _Worker(state, model, req)
    try:
        if req.stream:
            return await _stream(request, model, req, worker, headers)
        return await _whole(request, model, req, worker, headers)
    finally:
        worker.cancel.set()  # a no-op once it finished; else it stops at the next token


async def _whole(request: web.Request, model: TextGenerator, req: GenerationRequest,
                 worker: _Worker, headers: dict[str, str]) -> web.StreamResponse:
    tokens: list[int] = []
    while True:
        item = await worker.queue.get()
        if isinstance(item, _End):
            break
        tokens.append(item)
        transport = request.transport
        if transport is None or transport.is_closing():  # the client left: stop generating
            worker.cancel.set()
    if item.error is not None:
        return web.json_response(error_body(f"the model failed: {type(item.error).__name__}: "
                                            f"{item.error}", status=500,
                                            type_="InternalServerError"),
                                 status=500, headers=headers)
    done = Completed(req, tokens, item.finish_reason or "length",
                     "".join(map(model.token_text, tokens)), worker.ms)
    return web.json_response(response_body(done), headers={
        **headers, H_INFERENCE_MS: f"{worker.ms:.3f}"})


async def _stream(request: web.Request, model: TextGenerator, req: GenerationRequest,
                  worker: _Worker, headers: dict[str, str]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    ids: Ids = new_id(req.kind)
    count = 0
    try:
        await resp.prepare(request)
        if req.kind == "chat":
            await resp.write(_event(chunk_body(req, ids, role=True)))
        while True:
            item = await worker.queue.get()
            if isinstance(item, _End):
                break
            count += 1
            await resp.write(_event(chunk_body(req, ids, text=model.token_text(item))))
        if item.error is not None:  # after the head is sent, vLLM reports in an event
            await resp.write(_event(error_body(
                f"the model failed: {type(item.error).__name__}: {item.error}", status=500,
                type_="InternalServerError")))
        else:
            await resp.write(_event(chunk_body(req, ids, text=None,
                                               finish_reason=item.finish_reason or "length")))
            if req.include_usage:
                await resp.write(_event(usage_chunk_body(req, ids, count)))
        await resp.write(_DONE)
        await resp.write_eof()
    except ConnectionError:  # the client hung up (aiohttp's reset errors subclass this)
        worker.cancel.set()
    return resp
