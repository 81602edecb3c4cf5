"""A foreign OpenAI-compatible server with known token timing: plain asyncio, no framework,
listening on ``$FC_SERVER_PORT`` (FC's custom-container contract, nothing of fcbench).

``POST .../v1/completions`` and ``POST .../v1/chat/completions`` (any path ending so; ``/invoke``
is taken as completions) answer as ``vllm serve`` does: with ``"stream": true``, SSE over
``Transfer-Encoding: chunked``, the first content token `T` ms after the request arrived, then one
every `G` ms, ``max_tokens`` of them (each its own event), then a ``usage`` chunk when
``stream_options.include_usage`` is true, then ``data: [DONE]``. Token times are kept to a fixed
schedule (request time + T + i·G), so lateness does not add up. A chat stream first sends a
role-only chunk (empty content) at once, as some servers do: a first token must not be taken
from it. Without ``stream``, one JSON answer after T + (max_tokens − 1)·G, with ``usage``.

Timing: the request's ``first_ms`` (T) / ``gap_ms`` (G), else the environment's
``KNOWN_FIRST_MS`` / ``KNOWN_GAP_MS`` (defaults 50 and 10). (Not ``first_token_ms``: a key with
``token`` as a word of its own looks like a credential to fcbench and is refused in a workload.) ``"buffered": true`` sends the
same SSE body whole at the end with a Content-Length (what a buffering proxy would deliver).
``GET /v1/models`` lists one model; any other GET answers 200 ``ok``.

Environment: ``FC_SERVER_PORT``, ``TOKEN_HOST`` (default 127.0.0.1; ``0.0.0.0`` in a container).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

MODEL = "known-timing"


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


def _chunk(chat: bool, rid: str, created: int, text: str | None, *, role: bool = False,
           usage: dict | None = None) -> bytes:
    if usage is not None:
        doc = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
               "created": created, "model": MODEL, "choices": [], "usage": usage}
    elif chat:
        delta = {"role": "assistant", "content": ""} if role else {"content": text}
        doc = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    else:
        doc = {"id": rid, "object": "text_completion", "created": created, "model": MODEL,
               "choices": [{"index": 0, "text": text, "finish_reason": None}]}
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def _prompt_tokens(args: dict) -> int:
    if "messages" in args:
        text = " ".join(str(m.get("content", "")) for m in args["messages"]
                        if isinstance(m, dict))
    else:
        text = str(args.get("prompt", ""))
    return len(text.split())


async def _answer(writer: asyncio.StreamWriter, target: str, body: bytes, t0: float) -> None:
    args = json.loads(body or b"{}")
    chat = target.split("?", 1)[0].rstrip("/").endswith("chat/completions")
    first = float(args.get("first_ms", os.environ.get("KNOWN_FIRST_MS", "50"))) / 1000.0
    gap = float(args.get("gap_ms", os.environ.get("KNOWN_GAP_MS", "10"))) / 1000.0
    n = int(args.get("max_tokens") or args.get("max_completion_tokens") or 16)
    usage = {"prompt_tokens": _prompt_tokens(args), "completion_tokens": n,
             "total_tokens": _prompt_tokens(args) + n}
    rid, created = f"cmpl-{time.time_ns():x}", int(time.time())
    loop = asyncio.get_running_loop()

    async def at(offset: float) -> None:  # sleep to a point of the fixed schedule
        delay = t0 + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    if not args.get("stream"):
        await at(first + (n - 1) * gap)
        text = "".join(f" t{i}" for i in range(n))
        choice = ({"index": 0, "message": {"role": "assistant", "content": text},
                   "finish_reason": "length"} if chat else
                  {"index": 0, "text": text, "finish_reason": "length"})
        doc = json.dumps({"id": rid, "object": "chat.completion" if chat else "text_completion",
                          "created": created, "model": MODEL, "choices": [choice],
                          "usage": usage}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(doc) + doc)
        await writer.drain()
        return
    events = [_chunk(chat, rid, created, f" t{i}") for i in range(n)]
    tail = [_chunk(chat, rid, created, None, usage=usage)] \
        if (args.get("stream_options") or {}).get("include_usage") else []
    tail.append(b"data: [DONE]\n\n")
    if args.get("buffered"):  # the whole stream at the end, as a buffering proxy delivers it
        await at(first + (n - 1) * gap)
        whole = (_chunk(chat, rid, created, None, role=True) if chat else b"") \
            + b"".join(events + tail)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(whole) + whole)
        await writer.drain()
        return
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")

    def send(event: bytes) -> None:
        writer.write(b"%x\r\n" % len(event) + event + b"\r\n")

    if chat:
        send(_chunk(chat, rid, created, None, role=True))  # at once: no token in it
    await writer.drain()
    for i, event in enumerate(events):
        await at(first + i * gap)
        send(event)
        if i == n - 1:  # the last token's tail goes with it, as vLLM sends it
            for extra in tail:
                send(extra)
            writer.write(b"0\r\n\r\n")
        await writer.drain()
    if not events:
        for extra in tail:
            send(extra)
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await _read_request(reader)
            if request is None:
                break
            t0 = asyncio.get_running_loop().time()
            method, target, body = request
            if method == "GET":
                text = json.dumps({"object": "list", "data": [
                    {"id": MODEL, "object": "model", "owned_by": "fcbench-tests"}]}).encode() \
                    if target.rstrip("/").endswith("/v1/models") else b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(text)
                             + text)
                await writer.drain()
                continue
            await _answer(writer, target, body, t0)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    port = int(os.environ["FC_SERVER_PORT"])
    server = await asyncio.start_server(_handle, os.environ.get("TOKEN_HOST", "127.0.0.1"), port)
    print(f"token server listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
