"""Sending requests from the harness to instances over keep-alive HTTP/1.1 on loopback.

Key names: `Forwarder` (raises `InstanceGone`, `InvokeTimeout`). The hot path of every invocation, so it is lean: pooled
asyncio connections with the shared `fcbench.http1` framing (llhttp underneath) instead of a
general-purpose client, which cost several hundred microseconds per request here. A connection
goes back to the pool only after a complete final response; one that broke, stalled, sent a
malformed or unsolicited byte, or asked to close is discarded.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import InstanceGone, InvokeTimeout
from ..http1 import HttpProtocolError, ResponseReader, end_to_end, request_head
from .runtimes.base import InstanceHandle

__all__ = ["Forwarder"]

# Besides hop-by-hop headers: framing the proxy redoes itself, the caller's credentials, and
# headers the gateway sets on its own answer.
_DROP_REQUEST = frozenset({"host", "content-length", "authorization"})
#: the SDK's signing headers (``x-acs-security-token`` carries an STS token): never to an instance
_DROP_REQUEST_PREFIX = "x-acs-"
_DROP_RESPONSE = frozenset({"content-length", "date", "server"})

Response = tuple[int, dict[str, str], bytes]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None
        self.future: asyncio.Future[Response] | None = None
        self.reusable = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None or self.future is None:
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
            fut, self.future = self.future, None
            if not fut.done():
                fut.set_result((reader.status, dict(end_to_end(reader.headers,
                                                               drop=_DROP_RESPONSE)),
                                reader.body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reader, fut = self.reader, self.future
        if reader is None or fut is None or fut.done():
            return
        try:
            reader.eof()
        except HttpProtocolError as err:
            self._fail(InstanceGone(f"the instance closed the connection: {err}"))
            return
        self.reusable = False
        self.future = None
        fut.set_result((reader.status, dict(end_to_end(reader.headers, drop=_DROP_RESPONSE)),
                        reader.body))

    def _fail(self, exc: Exception) -> None:
        fut, self.future = self.future, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def send(self, method: str, head: bytes, body: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.future = asyncio.get_running_loop().create_future()
        self.reader = ResponseReader(method)
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

    async def send(self, handle: InstanceHandle, method: str, path: str, body: bytes,
                   headers: Mapping[str, str], timeout: float) -> Response:
        """Send one request; returns (status, lower-cased end-to-end headers, body).

        `headers` are the caller's: hop-by-hop ones (and ``Expect``) are dropped here.

        Raises:
            InvokeTimeout: no complete response within `timeout` seconds.
            InstanceGone: the connection broke before a complete response.
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
        fut = conn.send(method, head, body)
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
