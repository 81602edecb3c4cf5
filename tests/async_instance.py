"""An instance that fails on request, for the async-retry tests: it counts every invocation in
``$ATTEMPT_LOG`` (one line each) and answers ``POST /invoke`` as its JSON body says —
``{"status": 500}`` that status, ``{"exit": 3}`` exit at once with that code (a crash).

It keeps only FC's contract: it listens on ``$FC_SERVER_PORT`` (ready when the port accepts a
connection) and is stopped with its process group.
"""

from __future__ import annotations

import json
import os
import time

from aiohttp import web


async def _invoke(request: web.Request) -> web.Response:
    doc = json.loads(await request.read() or b"{}")
    with open(os.environ["ATTEMPT_LOG"], "a") as f:
        f.write(f"{time.time():.3f} {os.environ.get('FC_INSTANCE_ID', '?')}\n")
    if "exit" in doc:
        os._exit(int(doc["exit"]))
    return web.json_response({"failing": True}, status=int(doc.get("status", 500)))


def _main() -> None:
    app = web.Application()
    app.router.add_post("/invoke", _invoke)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["FC_SERVER_PORT"]), print=None,
                access_log=None)


if __name__ == "__main__":
    _main()
