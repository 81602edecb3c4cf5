"""The in-instance HTTP server: FC web-server routes, timeline headers, model dispatch.

Key names: `ServerState`, `build_app`, `main`. Configuration is read from the environment:
``FC_SERVER_PORT`` (default 9000; 0 = any free port), ``FCBENCH_HOST`` (default 127.0.0.1;
images bound for FC set 0.0.0.0), ``FCBENCH_MODEL`` (default mobilenet-v2), model options
(``FCBENCH_*``), and from the harness ``FCBENCH_READY_FD`` / ``FCBENCH_LIFELINE_FD``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..fc import DEFAULT_PORT  # where FC sends requests inside a custom container
from ..models import BadInput, Model, model_module
from ..models.llm_api import TextGenerator
from ..protocol import (H_BATCH_SIZE, H_BOOT_TS, H_FIRST, H_IMPORT_MS, H_INFERENCE_MS,
                        H_INITIALIZE_MS, H_INSTANCE_ID, H_MODEL, H_MODEL_LOAD_MS, H_READY_TS)
from . import openai
from .batching import BatchResult, Batcher

__all__ = ["ServerState", "build_app", "main"]


@dataclass
class ServerState:
    """What the server knows about itself; the source of the ``x-fcbench-*`` headers."""

    model: Model
    instance_id: str
    boot_ns: int
    import_ms: float
    model_load_ms: float
    ready_ns: int = 0
    served: int = 0
    initialized_ms: float | None = None
    batcher: Batcher | None = None
    model_calls: int = 0
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="infer"))

    async def run_model(self, inputs: list[Any]) -> list[Any]:
        """One model call on a batch (a thread keeps CPU/GPU work off the event loop)."""
        self.model_calls += 1
        ainfer = getattr(self.model, "ainfer", None)
        if ainfer is not None:
            return await ainfer(inputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.model.infer, inputs)

    async def infer_one(self, item: Any) -> BatchResult:
        """Run one request's input, batched with others when batching is on."""
        if self.batcher is not None:
            return await self.batcher.submit(item)
        t0 = time.perf_counter()
        output = (await self.run_model([item]))[0]
        return BatchResult(output, 1, (time.perf_counter() - t0) * 1000.0)

    def headers(self, *, first: bool, inference_ms: float | None = None,
                batch_size: int | None = None) -> dict[str, str]:
        h = {
            H_INSTANCE_ID: self.instance_id,
            H_BOOT_TS: str(self.boot_ns),
            H_IMPORT_MS: f"{self.import_ms:.3f}",
            H_MODEL_LOAD_MS: f"{self.model_load_ms:.3f}",
            H_READY_TS: str(self.ready_ns),
            H_FIRST: "1" if first else "0",
            H_MODEL: self.model.name,
        }
        if inference_ms is not None:
            h[H_INFERENCE_MS] = f"{inference_ms:.3f}"
        if batch_size is not None:
            h[H_BATCH_SIZE] = str(batch_size)
        return h


STATE = web.AppKey("state", ServerState)


def _error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def _invoke(request: web.Request) -> web.Response:
    state = request.app[STATE]
    first = state.served == 0
    state.served += 1
    body = await request.read()
    try:
        item = state.model.decode(body, request.content_type or "")
    except BadInput as exc:
        return _error(400, str(exc), state.headers(first=first))
    try:
        result = await state.infer_one(item)
    except Exception as exc:  # noqa: BLE001 - the instance must keep serving
        return _error(500, f"the model failed: {type(exc).__name__}: {exc}",
                      state.headers(first=first))
    payload, content_type = state.model.encode(result.output)
    return web.Response(body=payload, content_type=content_type.split(";")[0],
                        headers=state.headers(first=first, inference_ms=result.inference_ms,
                                              batch_size=result.batch_size))


async def _initialize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    t0 = time.perf_counter()
    await request.read()
    state.initialized_ms = (time.perf_counter() - t0) * 1000.0
    headers = state.headers(first=False)
    headers[H_INITIALIZE_MS] = f"{state.initialized_ms:.3f}"
    return web.Response(text="initialized", headers=headers)


async def _lifecycle(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.Response(text="ok", headers=state.headers(first=False))


async def _info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"instance_id": state.instance_id, "model": state.model.name,
                              "served": state.served, "model_calls": state.model_calls,
                              "batching": state.batcher is not None},
                             headers=state.headers(first=False))


def build_app(state: ServerState) -> web.Application:
    """The aiohttp application: FC routes, the OpenAI routes when the model generates text
    (`fcbench.server.openai`), plus HTTP-trigger paths (any other POST infers)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app.router.add_post("/invoke", _invoke)
    app.router.add_post("/initialize", _initialize)
    app.router.add_get("/pre-freeze", _lifecycle)
    app.router.add_get("/pre-stop", _lifecycle)
    app.router.add_get("/", _info)
    if isinstance(state.model, TextGenerator):  # before the catch-all, which would take them
        openai.add_routes(app, state)
    app.router.add_post("/{tail:.*}", _invoke)
    return app


def _signal_ready(fd: int, message: dict[str, Any]) -> None:
    # only a faster path: the harness may have found the port open first and stopped reading
    try:
        with os.fdopen(fd, "w") as pipe:
            pipe.write(json.dumps(message) + "\n")
    except OSError:
        pass


def _watch_lifeline(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    # The harness holds the write end; when it dies (even SIGKILL) we read EOF and exit, so no
    # instance outlives the harness that started it.
    def on_readable() -> None:
        try:
            data = os.read(fd, 1)
        except OSError:
            data = b""
        if not data:
            os._exit(0)
    loop.add_reader(fd, on_readable)


async def _serve(state: ServerState, host: str, port: int, env: dict[str, str]) -> None:
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock)
    await site.start()
    state.ready_ns = time.time_ns()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if env.get("FCBENCH_LIFELINE_FD"):
        _watch_lifeline(loop, int(env["FCBENCH_LIFELINE_FD"]))
    actual_port = sock.getsockname()[1]
    if env.get("FCBENCH_READY_FD"):
        _signal_ready(int(env["FCBENCH_READY_FD"]), {
            "port": actual_port, "pid": os.getpid(), "instance_id": state.instance_id,
            "boot_ns": state.boot_ns, "import_ms": state.import_ms,
            "model_load_ms": state.model_load_ms, "ready_ns": state.ready_ns,
        })
    else:
        print(f"fcbench server ({state.model.name}) listening on {host}:{actual_port}",
              file=sys.stderr, flush=True)
    await stop.wait()
    await runner.cleanup()


def _batcher(state: ServerState, env: dict[str, str]) -> Batcher | None:
    """A `Batcher` when ``FCBENCH_BATCH`` is on: max size ``FCBENCH_BATCH_MAX_SIZE`` (default the
    instance concurrency the harness passes), wait ``FCBENCH_BATCH_MAX_WAIT_MS`` (default 5)."""
    if env.get("FCBENCH_BATCH", "").lower() not in ("1", "true", "on", "yes"):
        return None
    size = int(env.get("FCBENCH_BATCH_MAX_SIZE") or env.get("FCBENCH_INSTANCE_CONCURRENCY") or 8)
    wait_ms = float(env.get("FCBENCH_BATCH_MAX_WAIT_MS", "5"))
    return Batcher(state.run_model, max_size=size, max_wait_s=wait_ms / 1000.0)


def main(boot_ns: int | None = None) -> None:
    """Load the model named by ``FCBENCH_MODEL`` and serve until SIGTERM."""
    boot_ns = boot_ns or time.time_ns()
    env = dict(os.environ)
    name = env.get("FCBENCH_MODEL", "mobilenet-v2")
    try:
        module = model_module(name)
    except ValueError as exc:
        sys.exit(f"fcbench server: {exc}")
    imported_ns = time.time_ns()
    model = module.load(env)
    loaded_ns = time.time_ns()
    instance_id = env.get("FCBENCH_INSTANCE_ID") or \
        f"{socket.gethostname()}-{os.getpid()}-{boot_ns // 1_000_000}"
    state = ServerState(model=model, instance_id=instance_id, boot_ns=boot_ns,
                        import_ms=(imported_ns - boot_ns) / 1e6,
                        model_load_ms=(loaded_ns - imported_ns) / 1e6)
    state.batcher = _batcher(state, env)
    host = env.get("FCBENCH_HOST", "127.0.0.1")
    port = int(env.get("FC_SERVER_PORT", DEFAULT_PORT))
    asyncio.run(_serve(state, host, port, env))
