"""The one blocking HTTP/1.1 client: keep-alive connection pools over plain sockets.

Key names: `ConnectionPool` (one address; the URL target's hot path), `HttpClient` (a base URL and
`request()`, for the harness control API and one-off calls), `Response`. Framing follows
`fcbench.http1`, the rules the harness forwarder uses too. Plain sockets are cooperative under
gevent (Locust patches them) and blocking elsewhere, so the same code serves the CLI, tests and
the Locust subprocess, at a fraction of `http.client`'s cost per request.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from time import perf_counter
from urllib.parse import urlsplit

from .http1 import HttpProtocolError, ResponseReader, end_to_end, request_head
from .signing import Signer, sign

__all__ = ["Answer", "ConnectionPool", "HttpClient", "Marks", "Response", "Stale"]

_RECV = 65536
#: when body bytes arrived: (body bytes so far, `time.perf_counter()`) for each read from the
#: socket that added some, in order (a streamed answer's events are timed from these)
Marks = list[tuple[int, float]]
#: an answer: status, lower-case headers in order, body, the `time.perf_counter()` its first
#: body byte arrived at, and its `Marks`
Answer = tuple[int, list[tuple[str, str]], bytes, float, Marks]


class Stale(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


@dataclass(frozen=True)
class Response:
    """A complete response: status, lower-case headers in order, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (lower case), or `default`."""
        for key, value in self.headers:
            if key == name:
                return value
        return default


class _Conn:
    """One keep-alive connection; one request at a time."""

    __slots__ = ("sock", "used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.used = False

    def send(self, data: bytes, timeout: float) -> None:
        """Send a whole request (`Stale`: a reused connection the server had closed)."""
        sock = self.sock
        sock.settimeout(timeout)
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if self.used:
                raise Stale from None
            raise

    def receive(self, method: str
                ) -> tuple[int, list[tuple[str, str]], bytes, bool, float, Marks]:
        """Read the response to the request `send` sent: (status, headers, body, keep_alive,
        first, marks), `first` the `time.perf_counter()` its first body byte arrived at (for a
        body of none, when the response was complete), `marks` when its body bytes arrived
        (`Marks`: one per read that added body bytes; a body that came in one read has one)."""
        sock = self.sock
        reused, self.used = self.used, True
        resp = ResponseReader(method)
        marks: Marks = []
        seen = 0
        while True:
            try:
                chunk = sock.recv(_RECV)
            except ConnectionResetError:
                if reused and not resp.started:
                    raise Stale from None
                raise
            if not chunk:
                if reused and not resp.started:
                    raise Stale
                try:
                    resp.eof()
                except HttpProtocolError as exc:
                    raise ConnectionResetError(str(exc)) from None
                break
            done = resp.feed(chunk)  # HttpProtocolError: garbage from the server
            if resp.body_bytes != seen:  # this read added body bytes: note when
                seen = resp.body_bytes
                marks.append((seen, perf_counter()))
            if done:
                break
        first = marks[0][1] if marks else perf_counter()
        return resp.status, resp.headers, resp.body, resp.keep_alive, first, marks

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ConnectionPool:
    """Idle keep-alive connections to one address; a new one is made when none is idle.

    `exchange()` sends a ready request and reads its response, resending once on a fresh
    connection when a reused one turns out to be closed by the server.
    """

    def __init__(self, host: str, port: int, https: bool) -> None:
        self.host, self.port, self.https = host, port, https
        self._idle: list[_Conn] = []
        self._addr: tuple[int, tuple] | None = None
        self._ssl = ssl.create_default_context() if https else None

    def _address(self) -> tuple[int, tuple]:
        # Resolved once (a resolver call per connection is costly under gevent).
        if self._addr is None:
            family, _, _, _, addr = socket.getaddrinfo(self.host, self.port,
                                                       type=socket.SOCK_STREAM)[0]
            self._addr = (family, addr)
        return self._addr

    def get(self, timeout: float, *, fresh: bool = False) -> _Conn:
        if not fresh:
            try:
                return self._idle.pop()
            except IndexError:
                pass
        family, addr = self._address()
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(addr)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock)

    def put(self, conn: _Conn) -> None:
        self._idle.append(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


    def exchange(self, method: str, data: bytes, timeout: float) -> Answer:
        """Send `data` (a whole request) and return (status, headers, body, first byte time,
        marks): an `Answer`.

        Raises:
            OSError / TimeoutError: the connection failed or no complete answer in time.
            HttpProtocolError: the server's bytes are not a valid response.
        """
        return self.finish(self.start(data, timeout), method, data, timeout)

    def start(self, data: bytes, timeout: float, *, fresh: bool = False) -> _Conn:
        """Send `data` on an idle connection (a new one when none is idle, or when the idle one
        turns out closed); `finish` reads the answer. Sending does not wait for the server, so
        an open-loop dispatcher can send at the intended time and leave the wait to a greenlet.

        Raises:
            OSError / TimeoutError: no connection, or the request could not be sent.
        """
        for attempt in (0, 1):
            conn = self.get(timeout, fresh=fresh or attempt > 0)
            try:
                conn.send(data, timeout)
                return conn
            except Stale:
                conn.close()
                if attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def finish(self, conn: _Conn, method: str, data: bytes, timeout: float) -> Answer:
        """The answer to the request `start` sent on `conn` (sent again, once, on a new
        connection when a reused one closes before answering): an `Answer`, `first` the
        `time.perf_counter()` the first body byte arrived at and `marks` when body bytes
        arrived (`_Conn.receive`). `conn` goes back to the pool when it can be kept alive.

        Raises:
            OSError / TimeoutError / HttpProtocolError: as `exchange`.
        """
        for attempt in (0, 1):
            try:
                status, headers, payload, keep, first, marks = conn.receive(method)
            except Stale:
                conn.close()
                if attempt == 0:
                    conn = self.start(data, timeout, fresh=True)
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if keep:
                self.put(conn)
            else:
                conn.close()
            return status, headers, payload, first, marks
        raise AssertionError("unreachable")

    def warm_up(self, connections: int = 2, timeout: float = 5.0) -> None:
        """Resolve the host and open a few idle keep-alive connections before the first request
        (a failure here is left for the requests to report)."""
        try:
            conns = [self.get(timeout, fresh=True)
                     for _ in range(connections)]
        except OSError:
            return
        for conn in conns:
            conn.used = True  # idle like a used one: if the server drops it, send again
            self.put(conn)



class HttpClient:
    """Requests to one base URL over a keep-alive pool.

    >>> with HttpClient("http://127.0.0.1:9080") as client:
    ...     client.request("GET", "/fcbench/v1/health").status
    """

    def __init__(self, base_url: str, *, timeout: float = 60.0,
                 signer: Signer | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL with a host")
        https = parts.scheme == "https"
        self.base_url = base_url.rstrip("/")
        self.base_path = parts.path.rstrip("/")
        self.host = parts.netloc.rsplit("@", 1)[-1]
        self.timeout = timeout
        self.pool = ConnectionPool(parts.hostname, parts.port or (443 if https else 80), https)
        #: signs every request (the harness's key), when given
        self.signer = signer

    def request(self, method: str, path: str, body: bytes = b"",
                headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                timeout: float | None = None) -> Response:
        """One request to `path` (below the base URL); any status comes back as a `Response`.

        Raises:
            OSError / TimeoutError: no connection, or no complete answer within `timeout`.
            HttpProtocolError: the server's bytes are not a valid response.
        """
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        target = self.base_path + path
        if self.signer is not None:
            items += sign(self.signer.key, method, target, self.host, body).items()
        head = request_head(method, target, self.host,
                            end_to_end(items, drop=frozenset({"host", "content-length"})),
                            len(body))
        status, got, payload, _, _ = self.pool.exchange(
            method, head + body, self.timeout if timeout is None else timeout)
        return Response(status, got, payload)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
