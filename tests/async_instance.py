"""An instance that fails on request, for the async-retry tests: it counts every invocation in
``$ATTEMPT_LOG`` (one line each) and answers ``POST /invoke`` as its JSON body says —
``{"status": 500}`` that status, ``{"exit": 3}`` exit at once with that code (a crash).

It speaks the process runtime's contract (ready line on ``FCBENCH_READY_FD``, exit on EOF of
``FCBENCH_LIFELINE_FD``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from aiohttp import web


async def _invoke(request: web.Request) -> web.Response:
    doc = json.loads(await request.read() or b"{}")
    with open(os.environ["ATTEMPT_LOG"], "a") as f:
        f.write(f"{time.time():.3f} {os.environ.get('FC_INSTANCE_ID', '?')}\n")
    if "exit" in doc:
        os._exit(int(doc["exit"]))
    return web.json_response({"failing": True}, status=int(doc.get("status", 500)))


async def _main() -> None:
    app = web.Application()
    app.router.add_post("/invoke", _invoke)
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
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(_main())
