"""Helpers for tests that drive a real harness over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from fcbench.signing import AccessKey, harness_key, sign
from fcbench.spec import FunctionSpec, function_spec_from_dict


def sleep_spec(name: str = "sleep", *, sleep_ms: float = 0, startup_ms: float = 0,
               concurrency: int = 1, idle: float = 60, max_instances: int = 10,
               queue_size: int = 100, queue_timeout: float = 30, **extra: Any) -> FunctionSpec:
    """A function served by the CPU-free `sleep` model on the process runtime."""
    doc = {
        "functionName": name,
        "instanceConcurrency": concurrency,
        "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": str(sleep_ms),
                                 "FCBENCH_STARTUP_MS": str(startup_ms)},
        "harness": {"runtime": "process", "idleTimeout": idle, "maxInstances": max_instances,
                    "queue": {"size": queue_size, "timeout": queue_timeout}},
        **extra,
    }
    return function_spec_from_dict(doc)


def signed_headers(method: str, url: str, body: bytes = b"", key: AccessKey | None = None,
                   host: str | None = None) -> dict[str, str]:
    """The headers that sign a request to the harness at `url` with its key (FC's
    ACS3-HMAC-SHA256), read from its key file when not given; {} when there is none. `host`:
    the Host header sent, when it is not the URL's."""
    parts = urlsplit(url)
    key = key or harness_key(parts.netloc)
    if key is None:
        return {}
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return sign(key, method, target, host or parts.netloc, body or b"")


def http(method: str, url: str, body: bytes | dict | None = None,
         headers: dict[str, str] | None = None, timeout: float = 60, *,
         signed: bool = True) -> tuple[int, dict, bytes]:
    """One HTTP request; returns (status, lower-cased headers, body) for any status. Requests
    to a harness are signed with its key (as every fcbench client does) unless `signed` is
    False."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    hdrs = {"Content-Type": "application/json"} if isinstance(body, dict) else {}
    if signed:
        host = next((v for k, v in (headers or {}).items() if k.lower() == "host"), None)
        hdrs.update(signed_headers(method, url, data or b"", host=host))
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def invoke(base: str, name: str, body: bytes | dict | None = b"",
           timeout: float = 60) -> tuple[int, dict, bytes]:
    """POST to the FC 3.0 InvokeFunction route."""
    return http("POST", f"{base}/2023-03-30/functions/{name}/invocations", body, timeout=timeout)


def instances(base: str, *, include_retired: bool = False) -> list[dict]:
    q = "?all=1" if include_retired else ""
    return json.loads(http("GET", f"{base}/fcbench/v1/instances{q}")[2])["instances"]


def events(base: str, since: int = 0) -> list[dict]:
    return json.loads(http("GET", f"{base}/fcbench/v1/events?since={since}")[2])["events"]


def wait_for(pred, timeout: float = 20.0):
    """Poll `pred` every 50 ms until it returns something truthy (returned); AssertionError
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
