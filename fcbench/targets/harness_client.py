"""`HarnessClient`: the one client of the harness's own API (``/fcbench/v1/...``).

Key names: `HarnessClient`. Health, live and retired instances, lifecycle events and forced
reclaim, as typed calls over `fcbench.httpclient`; used by the local and URL targets (to force cold
starts), the cold-start experiments, the load runner and its web UI tab.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

from .._net import is_loopback
from ..errors import TargetError
from ..http1 import HttpProtocolError
from ..httpclient import HttpClient
from ..protocol import HARNESS_API
from ..signing import AccessKey, Signer, harness_key

__all__ = ["HarnessClient"]


class HarnessClient:
    """Talks to a harness at `base_url` (e.g. ``http://127.0.0.1:9080``).

    Requests are signed with `key` (default: the key file of the harness at that address).
    Raises `TargetError` (with the URL in the message) when the harness does not answer.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0,
                 key: AccessKey | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if key is None and is_loopback(parts.hostname):
            key = harness_key(parts.netloc)
        self._http = HttpClient(self.base_url, timeout=timeout,
                                signer=Signer(key, parts.netloc) if key is not None else None)

    def _get_json(self, method: str, path: str, timeout: float | None = None) -> Any:
        try:
            resp = self._http.request(method, HARNESS_API + path, timeout=timeout)
        except (OSError, HttpProtocolError) as exc:
            raise TargetError(f"the harness at {self.base_url} does not answer "
                              f"{method} {HARNESS_API}{path}: {exc}") from exc
        if resp.status >= 400:
            raise TargetError(f"the harness at {self.base_url} answered {resp.status} to "
                              f"{method} {HARNESS_API}{path}: {resp.body[:200]!r}")
        return json.loads(resp.body)

    def health(self) -> dict[str, Any] | None:
        """Version and function names, or None when no harness answers there."""
        try:
            doc = self._get_json("GET", "/health", timeout=5)
        except (TargetError, ValueError):
            return None
        return doc if isinstance(doc, dict) and doc.get("status") == "ok" else None

    def available(self) -> bool:
        """Whether a harness answers at the base URL."""
        return self.health() is not None

    def instances(self, *, include_retired: bool = False) -> list[dict[str, Any]]:
        """Instances as ``GET /fcbench/v1/instances`` lists them (with retired ones if asked)."""
        return self._get_json("GET", "/instances" + ("?all=1" if include_retired else ""))[
            "instances"]

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        """One instance, live or retired, by id; None when the harness never had it."""
        return next((i for i in self.instances(include_retired=True)
                     if i["instance_id"] == instance_id), None)

    def events(self, since: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events after number `since`, and the newest event number."""
        doc = self._get_json("GET", f"/events?since={int(since)}")
        return doc["events"], int(doc["last"])

    def reclaim(self, function: str | None = None) -> int:
        """Stop every idle instance (of `function`, or all) now; returns how many."""
        query = f"?function={quote(function, safe='')}" if function else ""
        return int(self._get_json("POST", "/reclaim" + query, timeout=120).get("reclaimed", 0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HarnessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
