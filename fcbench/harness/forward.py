"""Sending requests from the harness to instances over keep-alive HTTP on loopback.

Key names: `Forwarder`, `InstanceGone`.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ..errors import InvokeTimeout, TargetError
from .runtimes.base import InstanceHandle

__all__ = ["Forwarder", "InstanceGone"]

# Hop-by-hop and framing headers are the proxy's own business, not the instance's.
_DROP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive",
                   "authorization", "date", "server"})


class InstanceGone(TargetError):
    """The connection to the instance broke (it crashed or was stopped mid-request)."""


class Forwarder:
    """One pooled HTTP client for all instances (created on first use, inside the loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, use_dns_cache=False)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def send(self, handle: InstanceHandle, method: str, path: str, body: bytes,
                   headers: dict[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
        """Send one request; returns (status, headers, body).

        Raises:
            InvokeTimeout: no complete response within `timeout` seconds.
            InstanceGone: the connection broke before a complete response.
        """
        fwd = {k: v for k, v in headers.items() if k.lower() not in _DROP}
        try:
            async with self._client().request(method, handle.base_url + path, data=body,
                                              headers=fwd, allow_redirects=False,
                                              timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                data = await resp.read()
                out = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in _DROP}
                return resp.status, out, data
        except asyncio.TimeoutError:
            raise InvokeTimeout(f"instance {handle.instance_id} did not answer within "
                                f"{timeout:g} s (the function's timeout)") from None
        except aiohttp.ClientError as exc:
            raise InstanceGone(f"the connection to instance {handle.instance_id} broke: "
                               f"{type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
