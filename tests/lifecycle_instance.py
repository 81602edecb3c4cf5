"""An instance that writes its lifecycle to ``$LIFECYCLE_LOG``, for the preStop tests.

It speaks the process runtime's contract (ready line on ``FCBENCH_READY_FD``, exit on EOF of
``FCBENCH_LIFELINE_FD``) and serves ``POST /invoke``, ``GET /pre-stop`` (logs ``pre-stop begin``,
sleeps ``PRESTOP_SLEEP_S``, logs ``pre-stop end``) and logs ``sigterm`` when it is stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from aiohttp import web


def _note(what: str) -> None:
    with open(os.environ["LIFECYCLE_LOG"], "a") as f:
        f.write(f"{time.time():.3f} {os.environ.get('FC_INSTANCE_ID', '?')} {what}\n")


async def _pre_stop(request: web.Request) -> web.Response:
    _note("pre-stop begin")
    await asyncio.sleep(float(os.environ.get("PRESTOP_SLEEP_S", "0")))
    _note("pre-stop end")
    return web.Response(text="ok")


async def _invoke(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"instance": os.environ.get("FC_INSTANCE_ID")})


async def _main() -> None:
    app = web.Application()
    app.router.add_post("/invoke", _invoke)
    app.router.add_get("/pre-stop", _pre_stop)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    life = int(os.environ["FCBENCH_LIFELINE_FD"])
    loop.add_reader(life, lambda: os.read(life, 1) or os._exit(0))
    with os.fdopen(int(os.environ["FCBENCH_READY_FD"]), "w") as pipe:
        pipe.write(json.dumps({"port": port, "pid": os.getpid(),
                               "instance_id": os.environ.get("FC_INSTANCE_ID", "?"),
                               "boot_ns": time.time_ns(), "import_ms": 0.0,
                               "model_load_ms": 0.0, "ready_ns": time.time_ns()}) + "\n")
    await stop.wait()
    _note("sigterm")
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(_main())
