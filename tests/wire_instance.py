"""A deliberately awkward instance for the wire-safety tests: raw HTTP/1.1 on asyncio streams.

It speaks the harness's process-runtime contract (ready line on ``FCBENCH_READY_FD``, exit on EOF
of ``FCBENCH_LIFELINE_FD``) and answers by path, so the tests can make an instance do what a
well-behaved framework never would:

* ``/echo``      200 with the request as JSON, plus hop-by-hop response headers that must not
                 reach the caller; ``/echo-chunked`` the same, chunked
* ``/interim``   ``100 Continue`` and ``103 Early Hints`` before the final answer
* ``/partial-close``  half a body, then close;  ``/partial-stall``  half a body, then silence
* ``/no-content``     204;   ``HEAD /head``  a Content-Length and no body
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


def _answer(status: str, headers: list[tuple[str, str]], body: bytes, *,
            chunked: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    if chunked:
        head.append("Transfer-Encoding: chunked")
        mid = len(body) // 2
        payload = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                           for p in (body[:mid], body[mid:]) if p) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [tuple(part.strip() for part in line.split(":", 1))
                       for line in lines[1:] if line]
            lower = {k.lower(): v for k, v in headers}
            body = await reader.readexactly(int(lower.get("content-length", "0")))
            try:
                tag = json.loads(body).get("id") if body[:1] == b"{" else None
            except ValueError:
                tag = None
            echo = json.dumps({"method": method, "path": target, "id": tag,
                               "raw_head": head.decode("latin-1"),
                               "headers": [[k.lower(), v] for k, v in headers],
                               "body_len": len(body)}).encode()
            path = target.split("?", 1)[0]
            hop = [("Connection", "keep-alive, x-hop"), ("x-hop", "secret"),
                   ("Keep-Alive", "timeout=5"), ("Proxy-Foo", "bar"), ("Trailer", "x-t"),
                   ("Upgrade", "h2c"), ("x-end", "1"), ("Content-Type", "application/json")]
            if path.endswith("/partial-close"):
                writer.write(_answer("200 OK", [], b"x" * 100)[:-90])
                await writer.drain()
                return
            if path.endswith("/partial-stall"):
                writer.write(_answer("200 OK", [], b"x" * 100)[:-90])
                await writer.drain()
                await asyncio.sleep(3600)
            if path.endswith("/interim"):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(_answer("200 OK", [("Content-Type", "application/json")], echo))
            elif path.endswith("/no-content"):
                writer.write(b"HTTP/1.1 204 No Content\r\nx-end: 1\r\n\r\n")
            elif method == "HEAD":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nx-end: 1\r\n\r\n")
            else:
                writer.write(_answer("200 OK", hop, echo, chunked=path.endswith("-chunked")))
            await writer.drain()
    finally:
        writer.close()


async def _main() -> None:
    boot_ns = time.time_ns()
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    life = int(os.environ["FCBENCH_LIFELINE_FD"])
    loop.add_reader(life, lambda: os.read(life, 1) or os._exit(0))
    with os.fdopen(int(os.environ["FCBENCH_READY_FD"]), "w") as pipe:
        pipe.write(json.dumps({"port": port, "pid": os.getpid(),
                               "instance_id": os.environ.get("FC_INSTANCE_ID", "?"),
                               "boot_ns": boot_ns, "import_ms": 0.0, "model_load_ms": 0.0,
                               "ready_ns": time.time_ns()}) + "\n")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
