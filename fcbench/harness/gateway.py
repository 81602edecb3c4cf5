"""The harness's HTTP front door: FC 3.0 routes, HTTP-trigger pass-through, live state.

Key names: `build_gateway`, `fc_error`. Routes (all under 127.0.0.1 by default):

* ``POST /2023-03-30/functions/{name}/invocations`` — InvokeFunction (raw bytes both ways)
* ``ANY  /http/{name}/{path}`` — HTTP-trigger style pass-through to the instance
* ``POST|GET /2023-03-30/functions``, ``GET|DELETE /2023-03-30/functions/{name}`` — management
* ``GET /fcbench/v1/instances``, ``GET /fcbench/v1/events?since=N``,
  ``POST /fcbench/v1/reclaim?function=NAME`` — harness state and control
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web

from .. import __version__
from ..errors import InvokeTimeout, SpecError, UsageError
from ..spec import function_spec_from_dict
from .forward import InstanceGone
from .platform import Platform, Rejected

__all__ = ["API_PREFIX", "PLATFORM", "build_gateway", "fc_error"]

API_PREFIX = "/2023-03-30"
PLATFORM = web.AppKey("platform", Platform)


def fc_error(status: int, code: str, message: str, request_id: str,
             headers: dict[str, str] | None = None) -> web.Response:
    """An FC-shaped JSON error, which the FC SDK parses into `ClientException`/`ServerException`."""
    return web.json_response({"Code": code, "Message": message, "RequestId": request_id},
                             status=status, headers={"x-fc-request-id": request_id,
                                                     **(headers or {})})


def _platform(request: web.Request) -> Platform:
    return request.app[PLATFORM]


async def _relay(request: web.Request, name: str, method: str, path: str) -> web.Response:
    platform = _platform(request)
    t0 = time.perf_counter()
    rid = uuid.uuid4().hex
    body = await request.read()
    try:
        admit, handle = await platform.acquire(name, rid)
    except Rejected as exc:
        _record(platform, name, rid, None, exc.status, False, t0, None, exc.code)
        return fc_error(exc.status, exc.code, str(exc), rid)
    queue_ms = (time.perf_counter() - t0) * 1000.0
    extra = {"x-fc-request-id": rid, "x-fc-instance-id": admit.instance_id,
             "x-fcbench-cold": "1" if admit.cold else "0", "x-fcbench-queue-ms": f"{queue_ms:.3f}"}
    try:
        status, headers, data = await platform.forwarder.send(
            handle, method, path, body, dict(request.headers), platform.specs[name].timeout)
    except InvokeTimeout as exc:
        _record(platform, name, rid, admit.instance_id, 504, admit.cold, t0, queue_ms, "timeout")
        return fc_error(504, "FunctionTimeout", str(exc), rid, extra)
    except InstanceGone as exc:
        message = await _crash_message(handle, str(exc))
        _record(platform, name, rid, admit.instance_id, 502, admit.cold, t0, queue_ms, "crash")
        return fc_error(502, "InstanceExited", message, rid, extra)
    finally:
        platform.release(rid)
    headers.update(extra)
    _record(platform, name, rid, admit.instance_id, status, admit.cold, t0, queue_ms, None)
    return web.Response(status=status, body=data, headers=headers)


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


async def _invoke(request: web.Request) -> web.Response:
    return await _relay(request, request.match_info["name"], "POST", "/invoke")


async def _http_trigger(request: web.Request) -> web.Response:
    path = "/" + request.match_info.get("path", "")
    if request.query_string:
        path += "?" + request.query_string
    return await _relay(request, request.match_info["name"], request.method, path)


def _function_json(platform: Platform, name: str) -> dict[str, Any]:
    spec = platform.specs[name]
    return {**spec.to_fc(), "harness": spec.harness.model_dump(by_alias=True)}


async def _list_functions(request: web.Request) -> web.Response:
    platform = _platform(request)
    return web.json_response({"functions": [_function_json(platform, n) for n in platform.specs]})


async def _get_function(request: web.Request) -> web.Response:
    platform, name = _platform(request), request.match_info["name"]
    if name not in platform.specs:
        return fc_error(404, "FunctionNotFound", f"function {name!r} does not exist", "")
    return web.json_response(_function_json(platform, name))


async def _create_function(request: web.Request) -> web.Response:
    platform = _platform(request)
    try:
        doc = await request.json()
        spec = function_spec_from_dict(doc, source="CreateFunction body")
    except ValueError:
        return fc_error(400, "InvalidArgument", "the body must be a JSON object", "")
    except SpecError as exc:
        return fc_error(400, "InvalidArgument", str(exc), "")
    if spec.name in platform.specs:
        return fc_error(409, "FunctionAlreadyExists", f"function {spec.name!r} already exists", "")
    try:
        await platform.add_function(spec)
    except (UsageError, ValueError) as exc:
        return fc_error(400, "InvalidArgument", str(exc), "")
    except Exception as exc:  # noqa: BLE001 - GpuError and friends, as FC would
        return fc_error(400, "InvalidArgument", str(exc), "")
    return web.json_response(_function_json(platform, spec.name))


async def _delete_function(request: web.Request) -> web.Response:
    platform, name = _platform(request), request.match_info["name"]
    if name not in platform.specs:
        return fc_error(404, "FunctionNotFound", f"function {name!r} does not exist", "")
    await platform.remove_function(name)
    return web.Response(status=204)


async def _instances(request: web.Request) -> web.Response:
    platform = _platform(request)
    retired = request.query.get("all") in ("1", "true")
    return web.json_response({"instances": platform.instances_view(include_retired=retired)})


async def _events(request: web.Request) -> web.Response:
    platform = _platform(request)
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return fc_error(400, "InvalidArgument", "since must be an integer event number", "")
    events = [e for e in platform.recent_events if e["seq"] > since]
    return web.json_response({"events": events, "last": platform._event_seq})


async def _reclaim(request: web.Request) -> web.Response:
    platform = _platform(request)
    name = request.query.get("function")
    if name is not None and name not in platform.specs:
        return fc_error(404, "FunctionNotFound", f"function {name!r} does not exist", "")
    count = await platform.reclaim_idle(name)
    return web.json_response({"reclaimed": count})


async def _health(request: web.Request) -> web.Response:
    platform = _platform(request)
    return web.json_response({"status": "ok", "version": __version__,
                              "functions": sorted(platform.specs)})


def build_gateway(platform: Platform) -> web.Application:
    """The aiohttp application serving `platform`."""
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app[PLATFORM] = platform
    r = app.router
    r.add_post(API_PREFIX + "/functions/{name}/invocations", _invoke)
    r.add_get(API_PREFIX + "/functions", _list_functions)
    r.add_post(API_PREFIX + "/functions", _create_function)
    r.add_get(API_PREFIX + "/functions/{name}", _get_function)
    r.add_delete(API_PREFIX + "/functions/{name}", _delete_function)
    r.add_route("*", "/http/{name}/{path:.*}", _http_trigger)
    r.add_get("/fcbench/v1/instances", _instances)
    r.add_get("/fcbench/v1/events", _events)
    r.add_post("/fcbench/v1/reclaim", _reclaim)
    r.add_get("/fcbench/v1/health", _health)
    return app
