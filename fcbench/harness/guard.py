"""Who may talk to the harness: Host and Origin allow-lists, and FC's request signature.

Key names: `Guard`, `GUARD`. Loopback is not a boundary — the operator's browser and other local
users reach 127.0.0.1 — so the gateway refuses, before anything runs:

* a ``Host`` that is not the address it listens on (or a loopback name for it): DNS rebinding;
* on the FC API and ``/fcbench/v1/*``, an ``Origin`` (or ``Sec-Fetch-Site``) of another site and
  every CORS preflight: a web page's forged request;
* a request without a valid ACS3-HMAC-SHA256 signature by the harness's key (`fcbench.signing`),
  on every route but ``GET /fcbench/v1/health`` and anonymous HTTP triggers.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..protocol import HARNESS_API
from ..signing import EMPTY_SHA256, AccessKey, SignatureError, verify
from .answers import fc_error

__all__ = ["GUARD", "Guard"]

#: Prefixes of the routes a browser must never reach from another site.
_API_PREFIXES = ("/2023-03-30/", HARNESS_API + "/")
_HASH_IN_THREAD = 1 << 20  # hash bodies above 1 MB off the event loop


class _AllValues:
    """A request's headers as `fcbench.signing.verify` reads them: name -> every value."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def get(self, name: str, default: Any = None) -> Any:
        return self._headers.getall(name, default)


@dataclass
class Guard:
    """The harness's front-door rules. `port` is filled in once the harness has bound.

    Args:
        key: the one access key pair requests must be signed with.
        host: the address the harness listens on.
        allowed_hosts: more ``Host`` names to accept (a DNS name for an exposed harness).
        allow_api_commands: whether a function created through the API may carry
            ``harness.command`` (a command on this machine).
    """

    key: AccessKey
    host: str = "127.0.0.1"
    port: int = 0
    allowed_hosts: frozenset[str] = frozenset()
    allow_api_commands: bool = False
    _ok_hosts: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        """The harness's own base URL (a loopback address when it listens everywhere)."""
        host = self.host.strip("[]")
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    # ---- Host and Origin ------------------------------------------------------------------
    def host_ok(self, value: str | None) -> bool:
        """Whether a ``Host`` header names this harness: an address literal of it (loopback, or
        the one it listens on), ``localhost`` or an allowed name — not a DNS name, the way DNS
        rebinding comes in. (The port is not checked here: only names can be rebound.)"""
        if not value:
            return False
        known = self._ok_hosts.get(value)
        if known is None:
            known = self._judge(value)[0]
            if len(self._ok_hosts) < 256:
                self._ok_hosts[value] = known
        return known

    def _judge(self, value: str) -> tuple[bool, int | None]:
        """(whether the host part of ``host[:port]`` names this harness, the port or None)."""
        parts = urlsplit("//" + value)
        try:
            port = parts.port
        except ValueError:
            return False, None
        name = (parts.hostname or "").lower()
        if not name:
            return False, port
        if name == "localhost" or name in self.allowed_hosts:
            return True, port
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False, port
        bound = self.host.strip("[]")
        if bound in ("0.0.0.0", "::"):
            return True, port  # listening everywhere: any address literal of this machine
        return ip.is_loopback or name == bound, port

    def origin_ok(self, origin: str) -> bool:
        """Whether an ``Origin`` is the harness's own: ``http://`` + an allowed host + its port
        (a page on another port of 127.0.0.1 is another origin)."""
        parts = urlsplit(origin)
        if parts.scheme != "http":
            return False
        ok, port = self._judge(parts.netloc)
        return ok and (port or 80) == self.port

    def browser_refusal(self, request: web.Request) -> web.Response | None:
        """FC's 403 for a request a browser could have forged, or None when it may pass."""
        host = request.headers.get("Host")
        if not self.host_ok(host):
            return _refuse(f"Host {host!r} is not this harness's address "
                           f"({self.host}:{self.port}); a request naming another host is "
                           "refused (DNS rebinding). Use http://127.0.0.1:PORT, or start the "
                           "harness with --allowed-host NAME")
        if not request.path.startswith(_API_PREFIXES):
            return None  # an HTTP trigger: the function's own URL, as on FC
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return _refuse("CORS preflight refused: the harness's API does not serve web pages "
                           "of other origins")
        if origin is not None and not self.origin_ok(origin):
            return _refuse(f"requests from web pages of another origin ({origin}) are refused "
                           "on the harness's API")
        site = request.headers.get("Sec-Fetch-Site")
        if origin is None and site in ("cross-site", "same-site"):
            return _refuse("a request a browser sent for another site is refused on the "
                           "harness's API")
        return None

    # ---- signatures -----------------------------------------------------------------------
    async def signature_refusal(self, request: web.Request, body: bytes) -> web.Response | None:
        """FC's error for a request not signed with the harness's key, or None when it is.

        A keep-alive connection whose request carried a valid signature is the caller's own (no
        one else can send on it without root), so a later request on it that repeats that very
        ``Authorization`` passes without hashing and signing again — what makes signed load as
        cheap as unsigned (`fcbench.signing.Signer`). Any other value is checked in full."""
        auth = request.headers.get("Authorization")
        connection = request.protocol
        if auth is not None and auth == getattr(connection, "verified_auth", None):
            return None
        if not body:
            digest = EMPTY_SHA256
        elif len(body) > _HASH_IN_THREAD:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        else:
            digest = hashlib.sha256(body).hexdigest()
        try:
            verify(self.key, request.method, request.rel_url.raw_path,
                   request.rel_url.raw_query_string, _AllValues(request.headers), digest)
        except SignatureError as exc:
            return fc_error(exc.status, exc.code, str(exc), uuid.uuid4().hex)
        if hasattr(type(connection), "verified_auth"):  # the harness's own connection class
            connection.verified_auth = auth
        return None


def _refuse(message: str) -> web.Response:
    return fc_error(403, "AccessDenied", message, uuid.uuid4().hex)


GUARD = web.AppKey("guard", Guard)
