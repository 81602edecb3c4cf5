"""Sending requests from the harness to instances over keep-alive HTTP/1.1 on loopback.

Key names: `Forwarder`, `InstanceGone`. The hot path of every invocation, so it is lean: pooled
asyncio connections and the llhttp parser (httptools) instead of a general-purpose client, which
cost several hundred microseconds per request here.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from urllib.parse import urlsplit

import httptools

from ..errors import InvokeTimeout, TargetError
from .runtimes.base import InstanceHandle

__all__ = ["Forwarder", "InstanceGone"]

# Hop-by-hop and framing headers are the proxy's own business, not the instance's.
_DROP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive",
                   "authorization", "date", "server"})


class InstanceGone(TargetError):
    """The connection to the instance broke (it crashed or was stopped mid-request)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.future: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.reusable = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InstanceGone(f"the instance sent a malformed HTTP response ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(InstanceGone("the instance closed the connection before it answered"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key not in _DROP:
            self.headers[key] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        fut, self.future = self.future, None
        if fut is not None and not fut.done():
            fut.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))

    def _fail(self, exc: Exception) -> None:
        fut, self.future = self.future, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def send(self, head: bytes, body: bytes) -> asyncio.Future[tuple[int, dict[str, str], bytes]]:
        assert self.transport is not None
        self.future = asyncio.get_running_loop().create_future()
        self.headers, self.body, self.reusable = {}, [], False
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return self.future

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Forwarder:
    """Pooled keep-alive connections to every instance (created lazily, inside the loop)."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Connection]] = defaultdict(list)

    async def _connect(self, base_url: str) -> _Connection:
        pool = self._idle[base_url]
        while pool:
            conn = pool.pop()
            if not conn.closed:
                return conn
        parts = urlsplit(base_url)
        _, conn = await asyncio.get_running_loop().create_connection(
            _Connection, parts.hostname, parts.port)
        return conn

    async def send(self, handle: InstanceHandle, method: str, path: str, body: bytes,
                   headers: dict[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
        """Send one request; returns (status, lower-cased headers, body).

        Raises:
            InvokeTimeout: no complete response within `timeout` seconds.
            InstanceGone: the connection broke before a complete response.
        """
        try:
            conn = await self._connect(handle.base_url)
        except OSError as exc:
            raise InstanceGone(f"cannot connect to instance {handle.instance_id}: "
                               f"{exc.strerror or exc}") from exc
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {urlsplit(handle.base_url).netloc}\r\n"
                 f"Content-Length: {len(body)}\r\n"]
        for key, value in headers.items():
            if key.lower() not in _DROP:
                lines.append(f"{key}: {value}\r\n")
        lines.append("\r\n")
        fut = conn.send("".join(lines).encode("latin-1"), body)
        message = (f"instance {handle.instance_id} did not answer within {timeout:g} s "
                   "(the function's timeout)")
        timer = asyncio.get_running_loop().call_later(timeout, _expire, conn, fut, message)
        try:
            result = await fut
        except BaseException:
            conn.close()
            raise
        finally:
            timer.cancel()
        if conn.reusable and not conn.closed:
            self._idle[handle.base_url].append(conn)
        else:
            conn.close()
        return result

    def forget(self, base_url: str) -> None:
        """Close pooled connections to an instance that went away."""
        for conn in self._idle.pop(base_url, []):
            conn.close()

    async def close(self) -> None:
        for base in list(self._idle):
            self.forget(base)


def _expire(conn: _Connection, fut: asyncio.Future, message: str) -> None:  # type: ignore[type-arg]
    if not fut.done():
        fut.set_exception(InvokeTimeout(message))
    conn.close()
