"""Sending requests from the harness to instances over keep-alive HTTP/1.1 on loopback.

Key names: `Forwarder` (raises `InstanceGone`, `InvokeTimeout`). The hot path of every invocation, so it is lean: pooled
asyncio connections with the shared `fcbench.http1` framing (llhttp underneath) instead of a
general-purpose client, which cost several hundred microseconds per request here. A connection
goes back to the pool only after a complete final response; one that broke, stalled, sent a
malformed or unsolicited byte, or asked to close is discarded.

Streaming (``send(..., stream=True)``): a response that is ``Transfer-Encoding: chunked`` and not
complete when its head arrives comes back at once, its body a `BodyStream` that hands the pieces
over as they are parsed (FC streams exactly such responses). The function's timeout still bounds
the whole response; the connection is pooled only once the stream completed. A response with a
``Content-Length``, or a chunked one that arrived whole, stays buffered (the hot path).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from functools import partial
from typing import Literal, overload
from urllib.parse import urlsplit

from ..errors import InstanceGone, InvokeTimeout
from ..http1 import HttpProtocolError, ResponseReader, end_to_end, request_head
from .runtimes.base import InstanceHandle

__all__ = ["BodyStream", "Forwarder"]

# Besides hop-by-hop headers: framing the proxy redoes itself, the caller's credentials, and
# headers the gateway sets on its own answer.
_DROP_REQUEST = frozenset({"host", "content-length", "authorization"})
#: the SDK's signing headers (``x-acs-security-token`` carries an STS token): never to an instance
_DROP_REQUEST_PREFIX = "x-acs-"
_DROP_RESPONSE = frozenset({"content-length", "date", "server"})

#: a stream's unread pieces above this many bytes stop reading from the instance until the
#: reader takes them (a slow caller slows the instance's sends through TCP, as a direct
#: connection would, instead of piling the body up in the gateway)
_PAUSE_BYTES = 1 << 20


class BodyStream:
    """The body of a streamed response, in the pieces the instance sent, as they arrive.

    `read()` returns the next piece (all that arrived since the last read, joined), b"" at the
    end; it raises `InvokeTimeout` when the function's timeout ran out first and `InstanceGone`
    when the instance broke off. `close()` gives the stream up (the connection is closed unless
    the response was complete). `on_expire`, when set, is called the moment the timeout runs
    out (before `read` raises), for a reader that may be blocked elsewhere.
    """

    __slots__ = ("_conn", "_pieces", "_size", "_eof", "_error", "_waiter", "_on_end", "_timer",
                 "on_expire")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._pieces: list[bytes] = []
        self._size = 0
        self._eof = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_end: Callable[[_Connection], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.on_expire: Callable[[], None] | None = None

    @property
    def complete(self) -> bool:
        """The instance sent the whole response."""
        return self._eof and self._error is None

    @property
    def ready(self) -> bool:
        """A `read()` now returns without waiting for the instance."""
        return bool(self._pieces) or self._eof

    @property
    def drained(self) -> bool:
        """Complete, and every piece read: the next `read()` returns b""."""
        return self._eof and self._error is None and not self._pieces

    async def read(self) -> bytes:
        """The next piece of the body; b"" once it ended.

        Raises:
            InvokeTimeout: the function's timeout ran out before the last byte.
            InstanceGone: the instance closed or broke the stream.
        """
        while True:
            pieces = self._pieces
            if pieces:
                self._pieces = []
                self._size = 0
                self._conn.resume()
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Give the stream up: the connection is closed unless the response was complete."""
        self._cancel_timer()
        if not self._eof:
            self._eof = True
            self._error = self._error or InstanceGone("the stream was given up")
            if self._conn.stream is self:
                self._conn.stream = None  # no reference cycle left for the collector
            self._conn.close()

    def _arm(self, timer: asyncio.TimerHandle, on_end: Callable[[_Connection], None]) -> None:
        """The forwarder hands over the function's timer and what to do with the connection at
        the end (done at once when the stream ended before the forwarder got to it)."""
        self._timer, self._on_end = timer, on_end
        if self._eof:
            self._cancel_timer()
            if self._error is None:
                self._on_end = None
                on_end(self._conn)

    # ---- fed by the connection ------------------------------------------------------------
    def _push(self, data: bytes) -> None:
        if data:
            self._pieces.append(data)
            self._size += len(data)
            if self._size > _PAUSE_BYTES:
                self._conn.pause()
            self._wake()

    def _end(self, data: bytes) -> None:
        self._push(data)
        self._eof = True
        self._cancel_timer()
        self._conn.resume()  # the last bytes may have paused it: never pool a paused connection
        self._wake()
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(self._conn)

    def _fail(self, exc: Exception) -> None:
        if self._eof:
            return
        self._eof = True
        self._error = exc
        self._cancel_timer()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


Response = tuple[int, dict[str, str], bytes]
#: `Forwarder.send`'s answer with ``stream=True``: the body is a `BodyStream` when streamed
StreamedResponse = tuple[int, dict[str, str], "bytes | BodyStream"]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None
        self.future: asyncio.Future[StreamedResponse] | None = None
        #: the response now streaming, once its head went to the caller
        self.stream: BodyStream | None = None
        self.streamable = False
        self.reusable = False
        self.closed = False
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        stream = self.stream
        if reader is None or (self.future is None and stream is None):
            self.close()  # bytes nobody asked for: the stream is out of step
            return
        try:
            done = reader.feed(data)
        except HttpProtocolError as exc:
            self._fail(InstanceGone(f"the instance sent {exc}"))
            self.close()
            return
        if done:
            self.reusable = reader.keep_alive
            if stream is not None:
                self.stream = None
                stream._end(reader.body)
                return
            fut, self.future = self.future, None
            if fut is not None and not fut.done():
                fut.set_result((reader.status, dict(end_to_end(reader.headers,
                                                               drop=_DROP_RESPONSE)),
                                reader.body))
        elif stream is not None:
            stream._push(reader.take())
        elif self.streamable and reader.chunked and reader.head_done:
            # the head is here and the body is still coming: the caller gets the head now
            self.stream = stream = BodyStream(self)
            stream._push(reader.take())
            fut, self.future = self.future, None
            if fut is not None and not fut.done():
                fut.set_result((reader.status, dict(end_to_end(reader.headers,
                                                               drop=_DROP_RESPONSE)), stream))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reader, fut, stream = self.reader, self.future, self.stream
        if reader is None or ((fut is None or fut.done()) and stream is None):
            return
        try:
            reader.eof()  # a chunked stream cannot end by a close: this raises
        except HttpProtocolError as err:
            self._fail(InstanceGone(f"the instance closed the connection: {err}"))
            return
        self.reusable = False
        self.future = None
        if stream is not None:  # (not reached: chunked framing; kept for safety)
            self.stream = None
            stream._end(reader.body)
        elif fut is not None:
            fut.set_result((reader.status, dict(end_to_end(reader.headers,
                                                           drop=_DROP_RESPONSE)), reader.body))

    def _fail(self, exc: Exception) -> None:
        fut, self.future = self.future, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        stream, self.stream = self.stream, None
        if stream is not None:
            stream._fail(exc)

    def expire(self, exc: Exception) -> None:
        """The function's timeout ran out: fail what waits, tell a stream's reader, close."""
        stream = self.stream
        self._fail(exc)
        self.close()
        if stream is not None and stream.on_expire is not None:
            stream.on_expire()

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def send(self, method: str, head: bytes, body: bytes, stream: bool = False
             ) -> asyncio.Future[StreamedResponse]:
        assert self.transport is not None
        self.future = asyncio.get_running_loop().create_future()
        self.reader = ResponseReader(method)
        self.streamable = stream
        self.reusable = False
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return self.future

    def close(self) -> None:
        self.closed = True
        self.reusable = False
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

    @overload
    async def send(self, handle: InstanceHandle, method: str, path: str, body: bytes,
                   headers: Mapping[str, str], timeout: float,
                   *, stream: Literal[False] = False) -> Response: ...

    @overload
    async def send(self, handle: InstanceHandle, method: str, path: str, body: bytes,
                   headers: Mapping[str, str], timeout: float,
                   *, stream: Literal[True]) -> StreamedResponse: ...

    async def send(self, handle: InstanceHandle, method: str, path: str, body: bytes,
                   headers: Mapping[str, str], timeout: float, *, stream: bool = False
                   ) -> StreamedResponse:
        """Send one request; returns (status, lower-cased end-to-end headers, body).

        `headers` are the caller's: hop-by-hop ones (and ``Expect``) are dropped here. With
        `stream`, a chunked response still arriving after its head comes back at its head, the
        body a `BodyStream` (the caller must read it to the end or `close()` it); `timeout`
        then bounds the stream's last byte too.

        Raises:
            InvokeTimeout: no complete response (no head, when streamed) within `timeout` s.
            InstanceGone: the connection broke before a complete response (or head).
        """
        # built first: a header that cannot go on the wire is the caller's error (ValueError),
        # and no pooled connection is taken for it
        head = request_head(method, path, urlsplit(handle.base_url).netloc,
                            [(k, v) for k, v in end_to_end(headers.items(), drop=_DROP_REQUEST)
                             if not k.lower().startswith(_DROP_REQUEST_PREFIX)], len(body))
        try:
            conn = await self._connect(handle.base_url)
        except OSError as exc:
            raise InstanceGone(f"cannot connect to instance {handle.instance_id}: "
                               f"{exc.strerror or exc}") from exc
        fut = conn.send(method, head, body, stream)
        message = (f"instance {handle.instance_id} did not answer within {timeout:g} s "
                   "(the function's timeout)")
        timer = asyncio.get_running_loop().call_later(timeout, _expire, conn, message)
        try:
            result = await fut
        except BaseException:
            timer.cancel()
            conn.close()
            raise
        data = result[2]
        if data.__class__ is BodyStream:
            # the timer runs on until the last byte; the pool gets the connection back then
            data._arm(timer, partial(self._finished, handle.base_url))
            return result
        timer.cancel()
        self._finished(handle.base_url, conn)
        return result

    def _finished(self, base_url: str, conn: _Connection) -> None:
        if conn.reusable and not conn.closed:
            self._idle[base_url].append(conn)
        else:
            conn.close()

    def forget(self, base_url: str) -> None:
        """Close pooled connections to an instance that went away."""
        for conn in self._idle.pop(base_url, []):
            conn.close()

    async def close(self) -> None:
        for base in list(self._idle):
            self.forget(base)


def _expire(conn: _Connection, message: str) -> None:
    conn.expire(InvokeTimeout(message))
