"""`FcTarget`: Function Compute 3.0 InvokeFunction through the official SDK.

Key names: `FcTarget`. The SDK (``alibabacloud-fc20230330``) is imported only when a target is
made; without it, `ImportError` names ``pip install fcbench[fc]``. The same code talks to real FC
(``region``) and to the local harness (``endpoint='http://127.0.0.1:PORT'``).
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError
from ..protocol import InvocationRecord, parse_headers
from .base import Target

__all__ = ["FcTarget"]

DEFAULT_TIMEOUT_S = 60.0


def _sdk() -> Any:
    try:
        from alibabacloud_fc20230330 import models
        from alibabacloud_fc20230330.client import Client
        from alibabacloud_tea_openapi import utils_models
        from darabonba.runtime import RuntimeOptions
    except ImportError as exc:
        raise ImportError("the fc target needs the Function Compute SDK: "
                          "pip install fcbench[fc] (alibabacloud-fc20230330)") from exc
    return Client, models, utils_models.Config, RuntimeOptions


class FcTarget(Target):
    """Invoke one FC function per request.

    Args:
        function: the function name.
        endpoint: ``http://127.0.0.1:9080`` (the harness) or an FC endpoint; default from
            `region` (``fcv3.{region}.aliyuncs.com``).
        region: FC region id, e.g. ``cn-hangzhou``.
        access_key_id / access_key_secret / security_token: credentials; default from
            ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``..._SECRET`` / ``ALIBABA_CLOUD_SECURITY_TOKEN``.
            They are never written to results.
        qualifier: version or alias.
        timeout: default seconds to wait for a response (the SDK's default is 10 s).
    """

    name = "fc"

    def __init__(self, function: str, *, endpoint: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, access_key_secret: str | None = None,
                 security_token: str | None = None, qualifier: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        client_cls, self._models, config_cls, self._runtime_cls = _sdk()
        super().__init__()
        env = os.environ
        key_id = access_key_id or env.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = access_key_secret or env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        token = security_token or env.get("ALIBABA_CLOUD_SECURITY_TOKEN")
        local = False
        host, protocol = None, "https"
        if endpoint:
            parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
            host, protocol = parts.netloc, parts.scheme
            local = (parts.hostname or "").startswith("127.") or parts.hostname == "localhost"
        elif not region:
            raise UsageError("an fc target needs a region (e.g. cn-hangzhou) or an endpoint")
        if not (key_id and secret):
            if not local:
                raise UsageError("no FC credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                                 "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
            key_id, secret = "local", "local"  # the harness does not check signatures
        # The SDK wants "host:port" without a scheme; a scheme there breaks the Host header.
        config = config_cls(access_key_id=key_id, access_key_secret=secret,
                            security_token=token, endpoint=host, region_id=region,
                            protocol=protocol, read_timeout=int(timeout * 1000),
                            connect_timeout=10_000, no_proxy="127.0.0.1,localhost" if local
                            else None)
        self._client = client_cls(config)
        self.function = function
        self.qualifier = qualifier
        self.timeout = timeout
        self.endpoint = host or f"fcv3.{region}.aliyuncs.com"

    def __repr__(self) -> str:
        return f"FcTarget(function={self.function!r}, endpoint={self.endpoint!r})"

    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        m = self._models
        timeout = self.timeout if timeout is None else timeout
        runtime = self._runtime_cls(read_timeout=int(timeout * 1000), connect_timeout=10_000,
                                    autoretry=False, max_attempts=1)
        request = m.InvokeFunctionRequest(body=body, qualifier=self.qualifier)
        headers = m.InvokeFunctionHeaders(common_headers={"Content-Type": content_type})
        start = time.time()
        t0 = time.perf_counter()
        try:
            resp = self._client.invoke_function_with_options(self.function, request, headers,
                                                             runtime)
            payload = resp.body.read() if resp.body is not None else b""
        except Exception as exc:  # noqa: BLE001 - translated into the record at the boundary
            ms = (time.perf_counter() - t0) * 1000.0
            return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                    status=int(getattr(exc, "status_code", 0) or 0),
                                    error=_error_text(exc),
                                    fc_request_id=getattr(exc, "request_id", None) or "")
        ms = (time.perf_counter() - t0) * 1000.0
        return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                status=int(resp.status_code or 0), body=payload,
                                **parse_headers(resp.headers or {}))


def _error_text(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    text = str(exc)
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timeout"
    return f"{type(exc).__name__}: {text}"[:300]
