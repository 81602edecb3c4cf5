"""`UrlTarget`: a plain HTTP POST to a URL, or FC 3.0 InvokeFunction on a base URL.

Key names: `UrlTarget`, `invoke_url`. Requests go over `fcbench.httpclient`'s keep-alive pool
with a request head built once per body size: cheap enough per request that one Locust process
keeps its schedule at high rates (benchmarks/dispatch_accuracy.py). An OpenAI-style answer (an
SSE stream of completion or chat chunks, or JSON with ``usage``) also fills the record's token
fields (`fcbench.openai_stream.token_fields`; definitions in `fcbench.measures`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from ..errors import UsageError
from .._net import is_loopback
from ..http1 import HttpProtocolError, end_to_end, request_head
from ..httpclient import ConnectionPool, Marks, Stale
from ..openai_stream import token_fields, wants
from ..signing import AccessKey, Signer, harness_key
from ..protocol import (H_ASYNC_TASK_ID, H_INVOCATION_TYPE, InvocationRecord, fc_error_code,
                        invoke_path, parse_headers, trigger_path)
from .base import ColdStartMethod, Target
from .harness_client import HarnessClient

__all__ = ["UrlTarget", "invoke_url", "unreachable"]

DEFAULT_TIMEOUT_S = 60.0


def invoke_url(base: str, function: str | None = None, path: str | None = None) -> str:
    """The URL a request goes to.

    * no function: `base` itself (plus `path`, when given);
    * a function: FC 3.0 InvokeFunction ``{base}/2023-03-30/functions/{fn}/invocations``;
    * a function and a path: the harness's HTTP-trigger route ``{base}/http/{fn}/{path}``.
    """
    base = base.rstrip("/") if function or path else base
    if not function:
        return base + ("/" + path.lstrip("/") if path else "")
    if path is not None:
        return base + trigger_path(function, path)
    return base + invoke_path(function)


def unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why nothing can be sent to `url` (its name does not resolve, nothing accepts a connection
    there), or None when a TCP connection opens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"the name {host!r} does not resolve ({exc.strerror or exc})"
    family, _, _, _, addr = infos[0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(addr)
    except OSError as exc:
        return f"nothing accepts a connection at {host}:{port} ({exc.strerror or exc})"
    return None


def _tokens(record: InvocationRecord, ctype: str, body: bytes, marks: Marks, sent: float
            ) -> None:
    """Fill `record`'s token fields from an OpenAI-style answer of content type `ctype` (lower
    case), one that `openai_stream.wants` (`openai_stream.token_fields`)."""
    for name, got in token_fields(ctype, body, marks, sent).items():
        if name != "error" or not record.error:
            setattr(record, name, got)


class UrlTarget(Target):
    """POST each request to a URL (see `invoke_url`) and read the answer's headers.

    Args:
        url: a full URL, or a base URL when `function` is given.
        function: FC function name: requests go to its InvokeFunction route.
        path: with `function`, an HTTP-trigger path instead (harness ``/http/{fn}/{path}``).
        headers: extra request headers (e.g. ``x-fc-invocation-type``).
        timeout: default seconds to wait for a response.
        idle_wait_s: how `force_cold()` waits out the platform's idle timeout when no harness
            API answers next to the URL (None: such a target cannot force a cold start).
        key: the harness's access key to sign every request with (FC's ACS3-HMAC-SHA256);
            default: for a loopback URL, the key file of the harness on that port, if any.
        async_task_prefix: send every request as an FC async task (``x-fc-invocation-type:
            Async``), its ``x-fc-async-task-id`` this prefix + the request's id.
    """

    name = "url"

    def __init__(self, url: str, *, function: str | None = None, path: str | None = None,
                 headers: dict[str, str] | None = None, method: str = "POST",
                 timeout: float = DEFAULT_TIMEOUT_S, idle_wait_s: float | None = None,
                 key: AccessKey | None = None, async_task_prefix: str | None = None) -> None:
        super().__init__()
        self.url = invoke_url(url, function, path)
        self.function = function
        self.idle_wait_s = idle_wait_s
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"target URL {url!r} must start with http:// or https:// and name a "
                             "host, e.g. http://127.0.0.1:9080")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:  # a URL that cannot go on the wire as it is fails here, not at every request
            request_head(method, path, parts.netloc, [], 0)
        except ValueError as exc:
            raise UsageError(f"target URL {url!r}: {exc}") from None
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        self._pool = ConnectionPool(parts.hostname, port, https)
        self.method = method
        self.headers = dict(headers or {})
        self.async_task_prefix = async_task_prefix
        if async_task_prefix is not None:
            self.headers[H_INVOCATION_TYPE] = "Async"
        self.timeout = timeout
        host = parts.netloc.rsplit("@", 1)[-1]
        extra = "".join(f"{k}: {v}\r\n" for k, v in end_to_end(
            self.headers.items(), drop=frozenset({"host", "content-length", "content-type"})))
        self._head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
        self._heads: dict[tuple[str, int], bytes] = {}
        self._path = path
        if key is None and is_loopback(parts.hostname):
            key = harness_key(f"{parts.hostname}:{port}")
        self._signer = Signer(key, host) if key is not None else None
        # where a harness API would answer: the base URL given, or the URL's origin
        self._harness_base = url.rstrip("/") if function else f"{parts.scheme}://{parts.netloc}"
        self._harness: HarnessClient | None = None
        self._probed = False

    def harness_client(self) -> HarnessClient | None:
        """The harness API next to the URL, when one answers (probed once)."""
        if not self._probed:
            self._probed = True
            client = HarnessClient(self._harness_base,
                                   key=self._signer.key if self._signer else None)
            if client.available():
                self._harness = client
            else:
                client.close()
        return self._harness

    @property
    def cold_start_method(self) -> ColdStartMethod:
        if self.harness_client() is not None:
            return ColdStartMethod.RECLAIM
        return ColdStartMethod.WAIT if self.idle_wait_s else ColdStartMethod.NONE

    def force_cold(self) -> None:
        """Reclaim through the harness API next to the URL, else wait `idle_wait_s`."""
        method = self.cold_start_method
        if method is ColdStartMethod.RECLAIM:
            self.harness_client().reclaim(self.function)  # type: ignore[union-attr]
        elif method is ColdStartMethod.WAIT:
            time.sleep(float(self.idle_wait_s or 0))
        else:
            raise UsageError(f"{self.url} has no harness API next to it, so a cold start can only "
                             "be forced by waiting longer than the platform's idle timeout; "
                             "give an idle wait in seconds")

    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        return self._start(body, content_type, timeout)()

    def _start(self, body: bytes, content_type: str, timeout: float | None, *,
               request_id: str = "") -> Callable[[], InvocationRecord]:
        # Sends now; the returned call waits for the answer (see Target.send).
        timeout = self.timeout if timeout is None else timeout
        key = (content_type, len(body))
        head = self._heads.get(key)
        if head is None:
            ctype = self.headers.get("Content-Type") or content_type
            head = (f"{self._head}Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "\r\n").encode("latin-1")
            if len(self._heads) < 64:
                self._heads[key] = head
        if self.async_task_prefix is not None:  # one task per request, named after it
            line = f"{H_ASYNC_TASK_ID}: {self.async_task_prefix}{request_id}\r\n"
            head = head[:-2] + line.encode("latin-1") + b"\r\n"
        if self._signer is not None:  # a fresh date, nonce and signature for every request
            head = head[:-2] + self._signer.header_lines(self.method, self._path, body).encode(
                "latin-1") + b"\r\n"
        data = head + body
        start = time.time()
        t0 = time.perf_counter()
        try:
            conn = self._pool.start(data, timeout)
        except (TimeoutError, socket.timeout):
            return lambda: self._failed(start, t0, "timeout")
        except (OSError, Stale) as exc:
            error = f"{type(exc).__name__}: {exc}"  # `exc` is gone once the except ends
            return lambda: self._failed(start, t0, error)

        def answer() -> InvocationRecord:
            try:
                status, resp_headers, payload, first, marks = self._pool.finish(
                    conn, self.method, data, timeout)
            except (TimeoutError, socket.timeout):
                return self._failed(start, t0, "timeout")
            except (OSError, HttpProtocolError, Stale) as exc:
                return self._failed(start, t0, f"{type(exc).__name__}: {exc}")
            ms = (time.perf_counter() - t0) * 1000.0
            record = InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                      status=status, body=payload,
                                      ttfb_ms=(first - t0) * 1000.0,
                                      **parse_headers(resp_headers))
            if status >= 400:
                record.error = fc_error_code(status, payload)
            else:  # an OpenAI-style answer's token fields; any other costs one pass here
                for key, value in resp_headers:
                    if key == "content-type":
                        ctype = value.lower()
                        if wants(ctype, payload):
                            _tokens(record, ctype, payload, marks, t0)
                        break
            return record

        return answer

    def warm_up(self, connections: int = 2) -> None:
        """Resolve the host and open a few idle keep-alive connections before the first request
        (a failure here is left for the requests to report)."""
        self._pool.warm_up(connections, min(self.timeout, 5.0))

    @staticmethod
    def _failed(start: float, t0: float, error: str) -> InvocationRecord:
        ms = (time.perf_counter() - t0) * 1000.0
        return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                status=0, error=error)

    def close(self) -> None:
        self._pool.close()
        if self._harness is not None:
            self._harness.close()
        super().close()
