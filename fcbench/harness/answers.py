"""FC-shaped error answers, for every part of the harness that refuses a request.

Key names: `fc_error`. FC's JSON error body (``Code``, ``Message``, ``RequestId``) is what the FC
SDK parses into ``ClientException``/``ServerException``; a plain-text error breaks its parser.
"""

from __future__ import annotations

from aiohttp import web

from ..protocol import H_FC_REQUEST_ID

__all__ = ["fc_error"]


def fc_error(status: int, code: str, message: str, request_id: str,
             headers: dict[str, str] | None = None) -> web.Response:
    """An FC-shaped JSON error, which the FC SDK parses into `ClientException`/`ServerException`."""
    return web.json_response({"Code": code, "Message": message, "RequestId": request_id},
                             status=status, headers={H_FC_REQUEST_ID: request_id,
                                                     **(headers or {})})
