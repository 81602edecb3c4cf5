"""A streaming instance for the streaming tests and benchmarks/stream_overhead.py: raw HTTP/1.1
on asyncio streams, one chunked SSE event at a time.

It speaks the harness's process-runtime contract (ready line on ``FCBENCH_READY_FD``, exit on EOF
of ``FCBENCH_LIFELINE_FD``); without ``FCBENCH_READY_FD`` it listens on ``$FC_SERVER_PORT`` and
prints ``listening on PORT`` (to be hit directly). A POST's JSON body says what to send:

* ``chunks`` (5), ``interval_ms`` (200): that many events ``data: i``, the first at once, then
  one every `interval_ms`, as ``Transfer-Encoding: chunked``; ``size`` pads each event to that
  many bytes;
* ``together``: the head and the first event in one write (else the head goes out on its own
  first, as aiohttp and the foreign stream server send it);
* ``plain``: the same bytes at once with a ``Content-Length`` (a buffered answer);
* ``mark``: a file to write ``{"sent": k, "complete": bool, "end_ns": ...}`` to once the
  request ended on the instance (so a test sees whether it ran to its end).

``GET`` answers 200 ``ok``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


def _event(i: int, size: int) -> bytes:
    text = f"data: {i}\n\n".encode()
    return text if len(text) >= size else text[:-2] + b" " * (size - len(text)) + b"\n\n"


async def _stream(writer: asyncio.StreamWriter, args: dict) -> None:
    chunks, interval = int(args.get("chunks", 5)), float(args.get("interval_ms", 200)) / 1000
    size = int(args.get("size", 0))
    sent, complete = 0, False
    try:
        if args.get("plain"):
            body = b"".join(_event(i, size) for i in range(chunks))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            sent, complete = chunks, True
            return
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"x-stream-test: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        if not args.get("together"):  # the head on its own, at once (as aiohttp servers do)
            writer.write(head)
            head = b""
        for i in range(chunks):
            if i:
                await asyncio.sleep(interval)
            event = _event(i, size)
            writer.write(head + b"%x\r\n" % len(event) + event + b"\r\n")
            head = b""
            await writer.drain()
            sent += 1
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        complete = True
    finally:
        if args.get("mark"):
            with open(args["mark"], "w") as f:
                json.dump({"sent": sent, "complete": complete, "end_ns": time.time_ns()}, f)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if method != "POST":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                continue
            await _stream(writer, json.loads(body or b"{}"))
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _main() -> None:
    boot_ns = time.time_ns()
    ready_fd = os.environ.get("FCBENCH_READY_FD")
    port = 0 if ready_fd else int(os.environ.get("FC_SERVER_PORT", "9000"))
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    port = server.sockets[0].getsockname()[1]
    if ready_fd:
        loop = asyncio.get_running_loop()
        life = int(os.environ["FCBENCH_LIFELINE_FD"])
        loop.add_reader(life, lambda: os.read(life, 1) or os._exit(0))
        with os.fdopen(int(ready_fd), "w") as pipe:
            pipe.write(json.dumps({"port": port, "pid": os.getpid(),
                                   "instance_id": os.environ.get("FC_INSTANCE_ID", "?"),
                                   "boot_ns": boot_ns, "import_ms": 0.0, "model_load_ms": 0.0,
                                   "ready_ns": time.time_ns()}) + "\n")
    else:
        print(f"listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
