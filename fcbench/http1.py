"""HTTP/1.1 message framing shared by every fcbench client (RFC 9110 / RFC 9112), without I/O.

Key names: `ResponseReader`, `request_head`, `end_to_end`, `HttpProtocolError`. The harness's
asyncio forwarder and the URL target's socket pool both feed bytes into a `ResponseReader` and
build requests with `request_head`, so the rules a proxy must keep live here once:

* interim 1xx responses (``100 Continue``, ``103 Early Hints``) are skipped, never final;
* a response to HEAD, and any 204 or 304, has no body whatever its headers say;
* chunked and read-until-close bodies are de-framed; a connection is reusable only after a
  complete response that did not ask to close it;
* a body can be taken piece by piece while it arrives (`ResponseReader.take`), for a proxy that
  streams a chunked response on instead of buffering it;
* hop-by-hop headers (``Connection`` and every header it names, ``Keep-Alive``, ``TE``,
  ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``) and ``Expect`` never cross.

Parsing is llhttp (httptools): the hot path of every invocation stays in C.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httptools

__all__ = ["HOP_BY_HOP", "HttpProtocolError", "ResponseReader", "end_to_end", "request_head"]

#: Headers that describe one connection, not the message (RFC 9110 7.6.1), plus ``Expect``,
#: which a proxy answers itself rather than forwarding (RFC 9110 10.1.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "transfer-encoding",
                        "upgrade", "expect", "proxy-connection", "proxy-authenticate",
                        "proxy-authorization"})


class HttpProtocolError(Exception):
    """The peer sent bytes that are not a valid HTTP/1.1 response (or closed mid-message)."""


def end_to_end(headers: Iterable[tuple[str, str]], *, drop: frozenset[str] = frozenset()
               ) -> list[tuple[str, str]]:
    """The headers a proxy may pass on: hop-by-hop ones, those `Connection` names, any
    ``Proxy-*`` and the lower-case names in `drop` removed. Names come back as given."""
    out = []
    named = ""
    for key, value in headers:
        low = key.lower()
        if low in HOP_BY_HOP or low in drop or low.startswith("proxy-"):
            if low == "connection":
                named += "," + value
            continue
        out.append((key, value))
    if named:  # rare: drop the headers Connection names too
        tokens = {token.strip().lower() for token in named.split(",")}
        out = [(k, v) for k, v in out if k.lower() not in tokens]
    return out


#: RFC 9110 5.6.2 token characters (methods, header names)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: bytes a request target may not hold: controls, space, DEL and anything beyond ASCII (a
#: target goes on the wire percent-encoded, so none of these has a reason to be there)
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
#: bytes a header value may not hold (RFC 9110 5.5): controls but HTAB, and DEL
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def request_head(method: str, target: str, host: str, headers: Iterable[tuple[str, str]],
                 body_length: int) -> bytes:
    """The request line and headers of one request with a `body_length`-byte body.

    `headers` must already be end-to-end (see `end_to_end`); ``Host`` and ``Content-Length``
    given there are replaced by `host` and `body_length`. Every byte is checked here, where it
    is written: a method or header name that is not a token, a target with a space, CR, LF or
    other control byte, or a header value with CR, LF or NUL would let one request smuggle
    another onto a keep-alive connection.

    Raises:
        ValueError: something cannot go on the wire as it is (the message says what).
    """
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"the method {method!r} is not an HTTP token")
    bad = _BAD_TARGET.search(target)
    if bad is not None or not target:
        raise ValueError(f"the request target holds {bad.group() if bad else 'nothing'!r}, "
                         "which HTTP/1.1 cannot carry in a request line; percent-encode it")
    if _BAD_VALUE.search(host) or " " in host:
        raise ValueError(f"the host {host!r} holds a control byte or a space")
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    if body_length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(f"Content-Length: {body_length}\r\n")
    for key, value in headers:
        low = key.lower()
        if low in ("host", "content-length"):
            continue
        if not _TOKEN.fullmatch(key):
            raise ValueError(f"the header name {key!r} is not an HTTP token")
        if _BAD_VALUE.search(value):
            raise ValueError(f"header {key!r} holds a line break or another control byte")
        lines.append(f"{key}: {value}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a header holds {exc.object[exc.start:exc.end]!r}, which HTTP/1.1 "
                         "headers cannot carry (Latin-1 only; percent- or RFC 8187-encode it)"
                         ) from None


class ResponseReader:
    """Reads exactly one final response from the bytes fed to it.

    Args:
        method: the request's method (a response to ``HEAD`` has no body).

    `feed(data)` returns True once the final response is complete; `eof()` tells it the peer
    closed. Then `status`, `headers` (lower-case names, in order), `body` and `keep_alive` hold the
    response. Bytes after the final response make the connection unusable (`keep_alive` False).

    Streaming: once `head_done`, `take()` hands over the body bytes parsed so far (and `body`
    then holds only what was not taken); `chunked` says whether the final response is
    ``Transfer-Encoding: chunked``, the mark FC streams a response by. `body_bytes` counts the
    final response's body bytes parsed so far (de-framed, taken or not), so a client can note
    when each piece of a stream arrived.
    """

    __slots__ = ("method", "status", "headers", "body", "keep_alive", "done", "chunked",
                 "head_done", "body_bytes", "_parser", "_parts", "_framed", "_in_message",
                 "_got_bytes")

    def __init__(self, method: str = "POST") -> None:
        self.method = method.upper()
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.keep_alive = False
        self.done = False
        #: the final response's head is complete (`status`, `headers` and `chunked` are known)
        self.head_done = False
        self.chunked = False
        self.body_bytes = 0
        self._parts: list[bytes] = []
        self._framed = False
        self._in_message = False
        self._got_bytes = False
        self._parser = httptools.HttpResponseParser(self)

    # ---- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.done:  # a second response to one request: the stream is out of step
            self.keep_alive = False
            return
        self._in_message = True
        self.headers, self._parts, self._framed, self.head_done = [], [], False, False
        self.chunked = False
        self.body_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.done:
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in ("content-length", "transfer-encoding"):
            self._framed = True
            if key == "transfer-encoding":
                # the last coding frames the message (RFC 9112 6.1)
                self.chunked = text.rsplit(",", 1)[-1].strip().lower() == "chunked"
        self.headers.append((key, text))

    def on_headers_complete(self) -> None:
        if self.done:
            return
        self.status = self._parser.get_status_code()
        # an interim 1xx head is not the final response's: streaming waits for that one
        self.head_done = self.status >= 200
        if self.status >= 200 and self.method == "HEAD":
            # llhttp cannot be told the request was HEAD: the message ends at its head
            self._finish(self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self._parts.append(body)
            self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._in_message = False  # interim: the final response follows on the same stream
            return
        self.status = status
        self._finish(self._parser.should_keep_alive())

    # ---- driving --------------------------------------------------------------------------
    def _finish(self, keep_alive: bool) -> None:
        self.done = True
        self.keep_alive = keep_alive and self.status != 101
        self.body = b"".join(self._parts)
        self._parts = []
        # the parser and this reader point at each other: break the cycle now, so a reader
        # per request leaves no garbage for the cyclic GC (whose pauses show at p99)
        self._parser = None

    def feed(self, data: bytes) -> bool:
        """Parse more bytes; True when the final response is complete.

        Raises:
            HttpProtocolError: the bytes are not a valid response.
        """
        if self.done:
            if data:
                self.keep_alive = False  # unsolicited bytes: this connection cannot be trusted
            return True
        if data:
            self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(False)
        except httptools.HttpParserError as exc:
            if self.done:  # garbage after a complete HEAD response, say
                self.keep_alive = False
                return True
            raise HttpProtocolError(f"malformed HTTP response ({exc})") from None
        return self.done

    def eof(self) -> bool:
        """The peer closed; True if that completed the response (a body read until close).

        Raises:
            HttpProtocolError: the connection closed before a complete response.
        """
        if self.done:
            return True
        if self.head_done and not self._framed:
            self._finish(False)
            return True
        if not self._in_message:
            raise HttpProtocolError("the server closed the connection before it answered")
        raise HttpProtocolError("the server closed the connection in the middle of its response")

    def take(self) -> bytes:
        """The body bytes parsed since the last call (b"" when none), handed over: a streaming
        proxy sends them on at once instead of holding the whole body."""
        parts = self._parts
        if not parts:
            return b""
        self._parts = []
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def body_started(self) -> bool:
        """Whether body bytes were parsed and not yet taken, or the response is complete (for
        a client timing its first body byte)."""
        return self.done or bool(self._parts)

    @property
    def started(self) -> bool:
        """Whether any byte of a response arrived (a stale keep-alive connection sends none)."""
        return self._got_bytes
