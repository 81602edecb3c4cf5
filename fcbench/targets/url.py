"""`UrlTarget`: a plain HTTP POST to a URL, or FC 3.0 InvokeFunction on a base URL.

Key names: `UrlTarget`, `invoke_url`. HTTP/1.1 goes over a small keep-alive pool of plain
sockets, framed by `fcbench.http1` with the harness forwarder's rules (1xx skipped, HEAD/204/304
bodiless, a connection reused only after a complete response). Cooperative under gevent (Locust
patches sockets), blocking elsewhere, so the same code serves the CLI, tests and the Locust
subprocess. It costs a fraction of `http.client` per request, which is what lets one Locust process keep its schedule at high
rates (benchmarks/dispatch_accuracy.py).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from urllib.parse import quote, urlsplit

from ..errors import UsageError
from ..http1 import HttpProtocolError, ResponseReader, end_to_end
from ..report.records import InvocationRecord, parse_headers
from .base import Target

__all__ = ["FC_API_PREFIX", "UrlTarget", "invoke_url"]

FC_API_PREFIX = "/2023-03-30"
DEFAULT_TIMEOUT_S = 60.0
_RECV = 65536


class _Stale(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


class _ProtocolError(Exception):
    """The server's bytes are not a valid HTTP/1.1 response."""


def invoke_url(base: str, function: str | None = None, path: str | None = None) -> str:
    """The URL a request goes to.

    * no function: `base` itself (plus `path`, when given);
    * a function: FC 3.0 InvokeFunction ``{base}/2023-03-30/functions/{fn}/invocations``;
    * a function and a path: the harness's HTTP-trigger route ``{base}/http/{fn}/{path}``.
    """
    base = base.rstrip("/") if function or path else base
    if not function:
        return base + ("/" + path.lstrip("/") if path else "")
    fn = quote(function, safe="")
    if path is not None:
        return f"{base}/http/{fn}/{path.lstrip('/')}"
    return f"{base}{FC_API_PREFIX}/functions/{fn}/invocations"


class _Conn:
    """One keep-alive connection; one request at a time."""

    __slots__ = ("sock", "used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.used = False

    def exchange(self, method: str, data: bytes, timeout: float
                 ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        sock = self.sock
        sock.settimeout(timeout)
        reused, self.used = self.used, True
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if reused:
                raise _Stale from None
            raise
        resp = ResponseReader(method)
        while True:
            try:
                chunk = sock.recv(_RECV)
            except ConnectionResetError:
                if reused and not resp.started:
                    raise _Stale from None
                raise
            if not chunk:
                if reused and not resp.started:
                    raise _Stale
                try:
                    resp.eof()
                except HttpProtocolError as exc:
                    raise ConnectionResetError(str(exc)) from None
                break
            try:
                if resp.feed(chunk):
                    break
            except HttpProtocolError as exc:
                raise _ProtocolError(str(exc)) from None
        return resp.status, resp.headers, resp.body, resp.keep_alive

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Pool:
    """Idle keep-alive connections to one address; a new one is made when none is idle."""

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


class UrlTarget(Target):
    """POST each request to a URL (see `invoke_url`) and read the answer's headers.

    Args:
        url: a full URL, or a base URL when `function` is given.
        function: FC function name: requests go to its InvokeFunction route.
        path: with `function`, an HTTP-trigger path instead (harness ``/http/{fn}/{path}``).
        headers: extra request headers (e.g. ``x-fc-invocation-type``).
        timeout: default seconds to wait for a response.
    """

    name = "url"

    def __init__(self, url: str, *, function: str | None = None, path: str | None = None,
                 headers: dict[str, str] | None = None, method: str = "POST",
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__()
        self.url = invoke_url(url, function, path)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"target URL {url!r} must start with http:// or https:// and name a "
                             "host, e.g. http://127.0.0.1:9080")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        self._pool = _Pool(parts.hostname, port, https)
        self.method = method
        self.headers = dict(headers or {})
        self.timeout = timeout
        host = parts.netloc.rsplit("@", 1)[-1]
        extra = "".join(f"{k}: {v}\r\n" for k, v in end_to_end(
            self.headers.items(), drop=frozenset({"host", "content-length", "content-type"})))
        self._head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
        self._heads: dict[tuple[str, int], bytes] = {}

    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        timeout = self.timeout if timeout is None else timeout
        key = (content_type, len(body))
        head = self._heads.get(key)
        if head is None:
            ctype = self.headers.get("Content-Type") or content_type
            head = (f"{self._head}Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "\r\n").encode("latin-1")
            if len(self._heads) < 64:
                self._heads[key] = head
        data = head + body
        start = time.time()
        t0 = time.perf_counter()
        try:
            status, resp_headers, payload = self._send(data, timeout)
        except (TimeoutError, socket.timeout):
            return self._failed(start, t0, "timeout")
        except (OSError, _ProtocolError, _Stale) as exc:
            return self._failed(start, t0, f"{type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - t0) * 1000.0
        record = InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                  status=status, **parse_headers(resp_headers))
        if status >= 400:
            record.error = _error_code(status, payload)
        return record

    def _send(self, data: bytes, timeout: float) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (0, 1):
            conn = self._pool.get(timeout, fresh=attempt > 0)
            try:
                status, headers, payload, keep = conn.exchange(self.method, data, timeout)
            except _Stale:
                conn.close()
                if attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if keep:
                self._pool.put(conn)
            else:
                conn.close()
            return status, headers, payload
        raise AssertionError("unreachable")

    def warm_up(self, connections: int = 2) -> None:
        """Resolve the host and open a few idle keep-alive connections before the first request
        (a failure here is left for the requests to report)."""
        try:
            conns = [self._pool.get(min(self.timeout, 5.0), fresh=True)
                     for _ in range(connections)]
        except OSError:
            return
        for conn in conns:
            conn.used = True  # idle like a used one: if the server drops it, send again
            self._pool.put(conn)

    @staticmethod
    def _failed(start: float, t0: float, error: str) -> InvocationRecord:
        ms = (time.perf_counter() - t0) * 1000.0
        return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                status=0, error=error)

    def close(self) -> None:
        self._pool.close()
        super().close()


def _error_code(status: int, payload: bytes) -> str:
    """FC's error ``Code`` from a JSON error body (e.g. ResourceThrottled), else ``HTTP 503``."""
    if payload[:1] == b"{":
        try:
            doc = json.loads(payload)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            code = doc.get("Code") or doc.get("code") or doc.get("error")
            if isinstance(code, str) and code:
                return code[:200]
    return f"HTTP {status}"
