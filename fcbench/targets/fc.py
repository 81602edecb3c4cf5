"""`FcTarget`: Function Compute 3.0 InvokeFunction through the official SDK, and forced cold
starts by UpdateFunction.

Key names: `FcTarget`, `COLD_ENV`. The SDK (``alibabacloud-fc20230330``) is imported only when a
target is made; without it, `ImportError` names ``pip install fcbench[fc]``. The same code talks
to real FC (``region``) and to the local harness (``endpoint='http://127.0.0.1:PORT'``).
Credentials come from `fcbench.credentials.resolve_credentials` (the default chain).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from .._net import is_loopback
from ..credentials import Credentials, redact, resolve_credentials
from ..errors import FcApiError, UsageError
from ..protocol import InvocationRecord, parse_headers
from .base import ColdStartMethod, Target

__all__ = ["COLD_ENV", "FcTarget", "is_loopback"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
#: How long `force_cold` waits for FC to report the update done.
DEFAULT_UPDATE_TIMEOUT_S = 300.0
#: The environment variable `force_cold` sets to a fresh value (a name `looks_secret` leaves
#: alone, so run folders show it).
COLD_ENV = "FCBENCH_FORCE_COLD"
_LATEST = ("", "LATEST")


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
        credentials: found already (`fcbench.credentials.resolve_credentials`); default: the
            explicit keys below, else the default chain — toward the harness (a loopback
            endpoint), the harness's own key file instead, so cloud keys never go there.
        access_key_id / access_key_secret / security_token: explicit credentials. They are
            never written to results or shown.
        qualifier: version or alias (`force_cold` needs LATEST).
        timeout: default seconds to wait for a response (the SDK's default is 10 s).
        update_timeout: seconds `force_cold` waits for FC to finish the update.

    Raises:
        UsageError: neither region nor endpoint, or no credentials for FC.
        ImportError: the SDK is missing (names the pip extra).
    """

    name = "fc"

    def __init__(self, function: str, *, endpoint: str | None = None, region: str | None = None,
                 credentials: Credentials | None = None, access_key_id: str | None = None,
                 access_key_secret: str | None = None, security_token: str | None = None,
                 qualifier: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                 update_timeout: float = DEFAULT_UPDATE_TIMEOUT_S) -> None:
        client_cls, self._models, config_cls, self._runtime_cls = _sdk()
        super().__init__()
        local = False
        host, protocol = None, "https"
        if endpoint:
            parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
            local = is_loopback(parts.hostname)
            # without a scheme: http on loopback (the harness), https elsewhere (FC)
            host, protocol = parts.netloc, parts.scheme or ("http" if local else "https")
        elif not region:
            raise UsageError("an fc target needs a region (e.g. cn-hangzhou) or an endpoint")
        creds = credentials or resolve_credentials(
            access_key_id=access_key_id, access_key_secret=access_key_secret,
            security_token=security_token, harness=host if local else None)
        self._hidden = creds.secret_values()
        # The SDK wants "host:port" without a scheme; a scheme there breaks the Host header.
        config = config_cls(credential=creds.sdk_credential(), endpoint=host, region_id=region,
                            protocol=protocol, read_timeout=int(timeout * 1000),
                            connect_timeout=10_000,
                            no_proxy="127.0.0.1,localhost" if local else None)
        self._client = client_cls(config)
        self.function = function
        self.qualifier = qualifier
        self.timeout = timeout
        self.update_timeout = update_timeout
        self.credentials_source = creds.source
        self.endpoint = host or f"fcv3.{region}.aliyuncs.com"

    def __repr__(self) -> str:
        return f"FcTarget(function={self.function!r}, endpoint={self.endpoint!r})"

    def _runtime(self, timeout: float) -> Any:
        return self._runtime_cls(read_timeout=int(timeout * 1000), connect_timeout=10_000,
                                 autoretry=False, max_attempts=1)

    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        m = self._models
        timeout = self.timeout if timeout is None else timeout
        request = m.InvokeFunctionRequest(body=body, qualifier=self.qualifier)
        # no Content-Type of ours: the SDK sends a body as application/octet-stream and signs
        # its own content-type; a second one in common_headers is signed but not sent (both
        # keys go into the signature, one onto the wire), which FC answers SignatureNotMatch
        headers = m.InvokeFunctionHeaders(common_headers={})
        start = time.time()
        t0 = time.perf_counter()
        try:
            resp = self._client.invoke_function_with_options(self.function, request, headers,
                                                             self._runtime(timeout))
            payload = resp.body.read() if resp.body is not None else b""
        except Exception as exc:  # noqa: BLE001 - translated into the record at the boundary
            ms = (time.perf_counter() - t0) * 1000.0
            return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                    status=_status(exc), error=self._error_text(exc),
                                    fc_request_id=getattr(exc, "request_id", None) or "")
        ms = (time.perf_counter() - t0) * 1000.0
        # ttfb_ms stays empty: the SDK reads the whole body before InvokeFunction returns
        # (darabonba's do_action takes requests' `resp.content`), streamed or not, so when its
        # first byte came is not known here
        return InvocationRecord(start_ts=start, end_ts=start + ms / 1000.0, latency_ms=ms,
                                status=int(resp.status_code or 0), body=payload,
                                **parse_headers(resp.headers or {}))

    # ---- forced cold starts ------------------------------------------------------------------
    @property
    def cold_start_method(self) -> ColdStartMethod:
        """UPDATE: a changed function configuration sends every next request to a new
        instance. A published version or alias is immutable, so then NONE."""
        if (self.qualifier or "") not in _LATEST:
            return ColdStartMethod.NONE
        return ColdStartMethod.UPDATE

    def force_cold(self) -> None:
        """Set `COLD_ENV` to a fresh value with UpdateFunction (every other environment variable
        and field kept) and wait until GetFunction reports ``lastUpdateStatus: Successful``.

        Raises:
            UsageError: a qualifier other than LATEST (an update does not change it).
            FcApiError: FC refused the call, the update failed (FC's reason), or it was not done
                within `update_timeout` seconds.
        """
        if self.cold_start_method is ColdStartMethod.NONE:
            raise UsageError(f"qualifier {self.qualifier!r} names a published version or alias, "
                             "which an update does not change, so fcbench cannot force a cold "
                             "start there; profile LATEST (no qualifier) or force cold starts by "
                             "waiting longer than the idle timeout (--force wait:SECONDS)")
        m = self._models
        current = self._call("GetFunction", lambda: self._client.get_function_with_options(
            self.function, m.GetFunctionRequest(), {}, self._runtime(30.0))).body
        env = dict(current.environment_variables or {})
        env[COLD_ENV] = uuid.uuid4().hex
        # only environmentVariables is sent: FC leaves every field the body omits as it is
        body = m.UpdateFunctionInput(environment_variables=env)
        t0 = time.monotonic()
        self._call("UpdateFunction", lambda: self._client.update_function_with_options(
            self.function, m.UpdateFunctionRequest(body=body), {}, self._runtime(60.0)))
        self._wait_updated(t0 + self.update_timeout)
        log.info("%s updated for a cold start in %.2f s", self.function, time.monotonic() - t0)

    def _wait_updated(self, deadline: float) -> None:
        m = self._models
        pause = 0.1
        while True:
            fn = self._call("GetFunction", lambda: self._client.get_function_with_options(
                self.function, m.GetFunctionRequest(), {}, self._runtime(30.0))).body
            status = fn.last_update_status or "Successful"  # older answers lack the field
            if status == "Successful":
                return
            if status == "Failed":
                reason = fn.last_update_status_reason or "no reason given"
                code = fn.last_update_status_reason_code
                raise FcApiError(f"FC could not apply the update that forces a cold start of "
                                 f"{self.function}: {code + ': ' if code else ''}{reason}",
                                 code=code)
            if time.monotonic() >= deadline:
                raise FcApiError(f"FC did not finish updating {self.function} within "
                                 f"{self.update_timeout:g} s (lastUpdateStatus {status}); "
                                 "the next request may still reach an old instance")
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _call(self, action: str, fn: Any) -> Any:
        """One management call; SDK errors become `FcApiError` naming the action."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - translated at the boundary
            code = getattr(exc, "code", None)
            status = _status(exc)
            message = redact(str(getattr(exc, "message", None) or exc), self._hidden)
            raise FcApiError(f"{action} {self.function} failed"
                             f"{f' (HTTP {status} {code})' if status else ''}: {message}",
                             code=code if isinstance(code, str) else None,
                             request_id=getattr(exc, "request_id", None)) from None

    def _error_text(self, exc: Exception) -> str:
        """FC's error code (``ResourceThrottled``), ``timeout``, or the client error."""
        code = getattr(exc, "code", None)
        if isinstance(code, str) and code:
            return code
        text = str(exc)
        if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
            return "timeout"
        return redact(f"{type(exc).__name__}: {text}", self._hidden)[:300]


def _status(exc: Exception) -> int:
    """The HTTP status an SDK exception carries (0: no response)."""
    for name in ("status_code", "statusCode"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return 0
