"""The harness's HTTP front door: FC 3.0 routes, HTTP-trigger pass-through, live state.

Key names: `build_gateway`, `fc_error`. Routes (all under 127.0.0.1 by default):

* ``POST /2023-03-30/functions/{name}/invocations`` — InvokeFunction (raw bytes both ways;
  with ``x-fc-invocation-type: Async``, 202 at once and the job queued:
  `fcbench.harness.async_invoke`)
* ``ANY  /http/{name}[/{path}]`` — the function's HTTP trigger URL (its methods and authType
  are enforced when it has a trigger; without one, an open pass-through to the instance)
* FC 3.0 management (functions, triggers, provision config, instances) — `fcbench.harness.fcapi`
* ``GET /fcbench/v1/instances``, ``GET /fcbench/v1/events?since=N``,
  ``POST /fcbench/v1/reclaim?function=NAME`` — harness state and control

Every error the gateway itself answers (unknown route, wrong method, a body over FC's 32 MB
synchronous payload limit, a malformed request) is FC's JSON error, so the FC SDK parses it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .. import __version__
from ..errors import InstanceGone, InvokeTimeout, Rejected
from ..fc import MAX_ASYNC_PAYLOAD_BYTES
from ..fc import MAX_SYNC_PAYLOAD_BYTES  # re-exported: FC's limit, EntityTooLarge beyond it
from ..protocol import (H_COLD, H_FC_INSTANCE_ID, H_FC_REQUEST_ID, H_FC_VERSION, H_FORWARD_MS,
                        H_GATEWAY_TS, H_QUEUE_MS, HARNESS_API, function_path)
from .answers import fc_error
from .async_invoke import ASYNC_INVOKER, AsyncInvoker, async_too_large_message, is_async
from .fcapi import PLATFORM, add_fc_routes, async_invoke, trigger_guard
from .forward import BodyStream
from .guard import GUARD, Guard
from .platform import Platform
from .streaming import relay_stream
from .versions import QualifierError

__all__ = ["MAX_SYNC_PAYLOAD_BYTES", "PLATFORM", "build_gateway", "fc_error",
           "normalize_trigger_path"]



_STATUS_CODES = {400: "InvalidArgument", 404: "NotFound", 405: "MethodNotAllowed",
                 413: "EntityTooLarge"}


@web.middleware
async def _front_door(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Refuse what a browser could have forged (`Guard.browser_refusal`), then answer aiohttp's
    own plain-text errors (404 route, 405, 413 from reading a body) as FC's JSON."""
    refused = request.app[GUARD].browser_refusal(request)
    if refused is not None:
        return refused
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        rid = uuid.uuid4().hex
        code = _STATUS_CODES.get(exc.status, "InternalError" if exc.status >= 500 else
                                 "InvalidArgument")
        if exc.status == 413:
            message = _too_large_message()
        elif exc.status == 404:
            message = f"no route for {request.method} {request.path}"
        elif exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            message = f"{request.method} is not allowed on {request.path}" + \
                (f"; use {allowed}" if allowed else "")
        else:
            message = exc.text or exc.reason
        return fc_error(exc.status, code, message, rid,
                        {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: say 413 at once when ``Content-Length`` already decides it
    (no ``100 Continue`` for a body that will be refused); FC's JSON for an unknown Expect."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        return fc_error(417, "InvalidArgument", f"unknown Expect {expect!r}; only "
                        "100-continue is understood", uuid.uuid4().hex)
    length = request.content_length
    limit = MAX_ASYNC_PAYLOAD_BYTES if is_async(request.headers) else MAX_SYNC_PAYLOAD_BYTES
    if length is not None and length > limit:
        response = fc_error(413, "EntityTooLarge", async_too_large_message() if limit ==
                            MAX_ASYNC_PAYLOAD_BYTES else _too_large_message(), uuid.uuid4().hex)
        response.force_close()  # the body may follow anyway: do not read it as a request
        return response
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


def _too_large_message() -> str:
    return (f"payload size exceeds maximum allowed size ({MAX_SYNC_PAYLOAD_BYTES} bytes for a "
            "synchronous invocation, as on FC); pass large inputs by reference (e.g. an OSS URL)")


def normalize_trigger_path(raw_path: str) -> str | None:
    """The HTTP-trigger path below a function's root with dot segments resolved (RFC 3986 5.2.4);
    None when it climbs above that root. Percent-encoding is kept, but ``%2e`` counts as a dot."""
    out: list[str] = []
    segments = raw_path.split("/")
    for i, seg in enumerate(segments):
        dot = unquote(seg)
        if dot == "..":
            if not out:
                return None
            out.pop()
        elif dot != ".":
            out.append(seg)
            continue
        if i == len(segments) - 1:
            out.append("")  # "a/.." and "a/." name a folder: keep the trailing slash
    return "/" + "/".join(out)


def _platform(request: web.Request) -> Platform:
    return request.app[PLATFORM]


async def _relay(request: web.Request, name: str, method: str, path: str, *,
                 signed: bool, qualifier: str | None = None) -> web.StreamResponse:
    platform = _platform(request)
    t0 = time.perf_counter()
    received_ns = time.time_ns()
    rid = uuid.uuid4().hex
    length = request.content_length
    if length is not None and length > MAX_SYNC_PAYLOAD_BYTES:
        return fc_error(413, "EntityTooLarge", _too_large_message(), rid)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return fc_error(413, "EntityTooLarge", _too_large_message(), rid)
    if signed:
        refused = await request.app[GUARD].signature_refusal(request, body)
        if refused is not None:
            return refused
    try:  # LATEST, a version or an alias (a canary's draw) -> the version's scheduling unit
        unit = platform.unit(name, qualifier)
    except QualifierError as exc:
        return fc_error(exc.status, exc.code, str(exc), rid)
    try:
        admit, handle = await platform.acquire(unit.key, rid)
    except Rejected as exc:
        _record(platform, name, rid, None, exc.status, False, t0, None, exc.code)
        return fc_error(exc.status, exc.code, str(exc), rid)
    queue_ms = (time.perf_counter() - t0) * 1000.0
    extra = {H_FC_REQUEST_ID: rid, H_FC_INSTANCE_ID: admit.instance_id,
             H_COLD: "1" if admit.cold else "0", H_QUEUE_MS: f"{queue_ms:.3f}",
             H_GATEWAY_TS: str(received_ns), H_FC_VERSION: unit.version_id}
    t_forward = time.perf_counter()
    timeout = (unit.spec or platform.specs[name]).timeout
    streamed: BodyStream | None = None
    try:
        status, headers, data = await platform.forwarder.send(
            handle, method, path, body, request.headers, timeout, stream=True)
        if data.__class__ is BodyStream:
            streamed = data  # type: ignore[assignment]
    except InvokeTimeout as exc:
        _record(platform, name, rid, admit.instance_id, 504, admit.cold, t0, queue_ms, "timeout")
        return fc_error(504, "FunctionTimeout", str(exc), rid, extra)
    except ValueError as exc:  # the request cannot be put on the wire as it is
        _record(platform, name, rid, admit.instance_id, 400, admit.cold, t0, queue_ms,
                "InvalidArgument")
        return fc_error(400, "InvalidArgument", str(exc), rid, extra)
    except InstanceGone as exc:
        message = await _crash_message(handle, str(exc))
        _record(platform, name, rid, admit.instance_id, 502, admit.cold, t0, queue_ms, "crash")
        return fc_error(502, "InstanceExited", message, rid, extra)
    finally:
        if streamed is None:
            platform.release(rid)
    headers.update(extra)
    if streamed is not None:  # chunked: relayed as it arrives; released after the last byte
        def ended(end_status: int, error: str | None) -> None:
            _record(platform, name, rid, admit.instance_id, end_status, admit.cold, t0,
                    queue_ms, error)
        return await relay_stream(request, status, headers, streamed,
                                  lambda: platform.release(rid), ended)
    headers[H_FORWARD_MS] = f"{(time.perf_counter() - t_forward) * 1000.0:.3f}"
    _record(platform, name, rid, admit.instance_id, status, admit.cold, t0, queue_ms, None)
    return web.Response(status=status, body=data, headers=headers)  # type: ignore[arg-type]


async def _crash_message(handle: Any, fallback: str) -> str:
    try:
        code = await asyncio.wait_for(asyncio.shield(handle.exited), 1.0)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001
        return f"{fallback}; its log is {handle.log_path}"
    return (f"instance {handle.instance_id} exited with code {code} while handling the request; "
            f"its log is {handle.log_path}. The next request gets a new instance.")


def _record(platform: Platform, name: str, rid: str, instance_id: str | None, status: int,
            cold: bool, t0: float, queue_ms: float | None, error: str | None) -> None:
    platform.events.request.fire(
        ts=time.time(), function=name, request_id=rid, instance_id=instance_id, status=status,
        cold=cold, latency_ms=(time.perf_counter() - t0) * 1000.0, queue_ms=queue_ms, error=error)


async def _invoke(request: web.Request) -> web.StreamResponse:
    name, qualifier = request.match_info["name"], request.query.get("qualifier")
    if is_async(request.headers):
        return await async_invoke(request, name, "POST", "/invoke", signed=True,
                                  qualifier=qualifier)
    return await _relay(request, name, "POST", "/invoke", signed=True, qualifier=qualifier)


async def _http_trigger(request: web.Request) -> web.StreamResponse:
    # the raw (still percent-encoded) path, so "%2e%2e" cannot slip past the dot-segment check
    raw = request.rel_url.raw_path.split("/", 3)  # "", "http", name, rest
    path = normalize_trigger_path(raw[3] if len(raw) > 3 else "")
    if path is None:
        return fc_error(400, "InvalidArgument",
                        f"the path {request.rel_url.raw_path!r} climbs above the function's root",
                        uuid.uuid4().hex)
    if request.rel_url.raw_query_string:  # as the caller encoded it, never decoded here
        path += "?" + request.rel_url.raw_query_string
    name = request.match_info["name"]
    refused, signed = trigger_guard(request, _platform(request), name)
    if refused is not None:
        return refused
    trigger = _platform(request).http_trigger(name)  # its qualifier routes the request
    qualifier = trigger.spec.qualifier if trigger else None
    if is_async(request.headers):
        return await async_invoke(request, name, request.method, path, signed=signed,
                                  qualifier=qualifier)
    return await _relay(request, name, request.method, path, signed=signed, qualifier=qualifier)


def _signed(handler: Callable[[web.Request], Awaitable[web.Response]]
            ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The harness's own API routes take signed requests only (they have no body)."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        refused = await request.app[GUARD].signature_refusal(request, await request.read())
        return refused if refused is not None else await handler(request)
    return wrapped


async def _instances(request: web.Request) -> web.Response:
    platform = _platform(request)
    retired = request.query.get("all") in ("1", "true")
    return web.json_response({"instances": platform.instances_view(include_retired=retired)})


async def _events(request: web.Request) -> web.Response:
    platform = _platform(request)
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return fc_error(400, "InvalidArgument", "since must be an integer event number",
                        uuid.uuid4().hex)
    events = [e for e in platform.recent_events if e["seq"] > since]
    return web.json_response({"events": events, "last": platform.last_event_seq})


async def _reclaim(request: web.Request) -> web.Response:
    platform = _platform(request)
    name = request.query.get("function")
    if name is not None and name not in platform.specs:
        return fc_error(404, "FunctionNotFound", f"function {name!r} does not exist",
                        uuid.uuid4().hex)
    count = await platform.reclaim_idle(name)
    return web.json_response({"reclaimed": count})


async def _health(request: web.Request) -> web.Response:
    platform = _platform(request)
    return web.json_response({"status": "ok", "version": __version__,
                              "functions": sorted(platform.specs)})


def build_gateway(platform: Platform, guard: Guard) -> web.Application:
    """The aiohttp application serving `platform`, behind `guard`'s rules."""
    app = web.Application(client_max_size=MAX_SYNC_PAYLOAD_BYTES, middlewares=[_front_door])
    app[PLATFORM] = platform
    app[GUARD] = guard
    app[ASYNC_INVOKER] = AsyncInvoker(platform)
    app.on_cleanup.append(lambda a: a[ASYNC_INVOKER].close())  # before the platform closes
    r = app.router
    r.add_post(function_path() + "/{name}/invocations", _invoke, expect_handler=_expect)
    add_fc_routes(r)
    r.add_route("*", "/http/{name}", _http_trigger, expect_handler=_expect)
    r.add_route("*", "/http/{name}/{path:.*}", _http_trigger, expect_handler=_expect)
    r.add_get(HARNESS_API + "/instances", _signed(_instances))
    r.add_get(HARNESS_API + "/events", _signed(_events))
    r.add_post(HARNESS_API + "/reclaim", _signed(_reclaim))
    r.add_get(HARNESS_API + "/health", _health)
    return app
