"""Splitting one cold request's end-to-end latency into phases (pure functions, no I/O).

Key names: `PHASES`, `split_with_harness`, `split_with_headers`.
Timeline points are epoch nanoseconds from one host clock (containers share it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HEADER_PHASES", "PHASES", "split_with_harness", "split_with_headers"]

#: Phases of a cold start on the harness, in order (ms). `unattributed` = e2e − the others.
PHASES = ["schedule", "image_pull", "container_create", "container_start", "runtime_boot",
          "model_load", "ready", "initializer", "first_inference", "unattributed"]

#: Phases when only the instance's headers are known (a plain URL, FC): `platform` is the rest.
HEADER_PHASES = ["runtime_boot", "model_load", "first_inference", "platform"]


def _f(headers: Mapping[str, str], key: str) -> float:
    try:
        return float(headers.get(key, 0) or 0)
    except ValueError:
        return 0.0


def split_with_harness(*, send_ns: int, end_ns: int, headers: Mapping[str, str],
                       instance: Mapping[str, Any]) -> dict[str, float]:
    """Phases of a cold request served by the harness.

    Args:
        send_ns / end_ns: when the client sent the request and got the whole response.
        headers: the response headers (``x-fcbench-*``).
        instance: the instance as ``GET /fcbench/v1/instances`` shows it (``phases_ms``,
            ``timeline_ns``).
    """
    ms = 1e-6
    tl = instance.get("timeline_ns", {})
    runtime = instance.get("phases_ms", {})
    launch = tl.get("launch_ns", send_ns)
    boot = int(headers.get("x-fcbench-boot-ts", launch) or launch)
    import_ms = _f(headers, "x-fcbench-import-ms")
    model_ms = _f(headers, "x-fcbench-model-load-ms")
    detected = tl.get("ready_detected_ns", boot)
    admitted = tl.get("admitted_ns", detected)
    out = {
        "schedule": (launch - send_ns) * ms,
        "image_pull": float(runtime.get("image_pull", 0.0)),
        "container_create": float(runtime.get("container_create", 0.0)),
        "container_start": float(runtime.get("container_start", 0.0)),
    }
    # process start -> imports done: what the runtime spent beyond pull/create/start, plus the
    # in-instance import time
    launched = (boot - launch) * ms - out["image_pull"] - out["container_create"] \
        - out["container_start"]
    out["runtime_boot"] = max(0.0, launched) + import_ms
    out["model_load"] = model_ms
    # model loaded -> the harness knows the instance listens (bind + readiness signal)
    out["ready"] = (detected - boot) * ms - import_ms - model_ms
    out["initializer"] = float(runtime.get("initializer", 0.0))
    out["first_inference"] = (end_ns - admitted) * ms
    e2e = (end_ns - send_ns) * ms
    out["unattributed"] = e2e - sum(out.values())
    out["e2e"] = e2e
    return out


def split_with_headers(*, e2e_ms: float, headers: Mapping[str, str]) -> dict[str, float]:
    """Phases of a cold request from the instance's own headers only; `platform` is the rest."""
    out = {
        "runtime_boot": _f(headers, "x-fcbench-import-ms"),
        "model_load": _f(headers, "x-fcbench-model-load-ms"),
        "first_inference": _f(headers, "x-fcbench-inference-ms"),
    }
    out["platform"] = e2e_ms - sum(out.values())
    out["e2e"] = e2e_ms
    return out
