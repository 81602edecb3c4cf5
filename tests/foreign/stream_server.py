"""A foreign FC custom-container server that streams: plain asyncio, no framework, listening on
``$FC_SERVER_PORT``. ``POST /invoke`` (or any path) with a JSON body ``{"chunks": N,
"interval_ms": T}`` answers ``Transfer-Encoding: chunked``, one SSE event ``data: i`` every `T`
ms, `N` of them; ``GET /healthz`` answers 200 with a Content-Length.

Environment: ``FC_SERVER_PORT``, ``STREAM_HOST`` (default 127.0.0.1; ``0.0.0.0`` in a container).
"""

from __future__ import annotations

import asyncio
import json
import os


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    length = 0
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, target, body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await _read_request(reader)
            if request is None:
                break
            method, target, body = request
            if method == "GET":
                text = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + text)
                await writer.drain()
                continue
            args = json.loads(body or b"{}")
            chunks, interval = int(args.get("chunks", 5)), float(args.get("interval_ms", 50))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            await writer.drain()
            for i in range(chunks):
                if i:
                    await asyncio.sleep(interval / 1000.0)
                event = f"data: {i}\n\n".encode()
                writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    port = int(os.environ["FC_SERVER_PORT"])
    server = await asyncio.start_server(_handle, os.environ.get("STREAM_HOST", "127.0.0.1"), port)
    print(f"stream server listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
