"""HTTP parser errors answered as FC's JSON, not aiohttp's plain text.

Key names: `answer_parse_errors_as_fc`. A request aiohttp's parser refuses (a malformed request
line, a bad header, a body over the limit) never reaches the application or its middlewares:
aiohttp's connection handler writes a plain-text answer itself, which the FC SDK cannot parse.
The same connection class remembers the signature a connection proved (`fcbench.harness.guard`).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .answers import fc_error

__all__ = ["answer_parse_errors_as_fc"]

_CODES = {400: "InvalidArgument", 404: "NotFound", 405: "MethodNotAllowed",
          413: "EntityTooLarge", 414: "InvalidArgument", 417: "InvalidArgument",
          431: "InvalidArgument"}


class _FcRequestHandler(RequestHandler):
    # the Authorization a request on this connection proved (`Guard.signature_refusal`)
    __slots__ = ("verified_auth",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verified_auth: str | None = None

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs, checks output
        code = _CODES.get(status, "InternalError" if status >= 500 else "InvalidArgument")
        text = message or (plain.text if isinstance(plain, web.Response) else "") or ""
        answer = fc_error(status, code, text.strip() or f"HTTP {status}", uuid.uuid4().hex)
        answer.force_close()  # as aiohttp does: the stream cannot be trusted after this
        return answer


class _FcServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _FcRequestHandler(self, loop=self._loop, **self._kwargs)


def answer_parse_errors_as_fc(server: web.Server | None) -> None:
    """Make `server` (an `AppRunner`'s, after `setup()`) answer parser errors as FC's JSON."""
    if server is not None and type(server) is web.Server:
        # AppRunner builds a plain `web.Server` and has no hook for the handler class; the
        # subclass adds no state, only which handler each new connection gets
        server.__class__ = _FcServer
