"""Splitting one cold request's end-to-end latency into phases (pure functions, no I/O).

Key names: `PHASES`, `split_with_harness`, `split_with_headers`.
Timeline points are epoch nanoseconds from one host clock (containers share it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..protocol import InvocationRecord

__all__ = ["HEADER_PHASES", "PHASES", "split_with_harness", "split_with_headers"]

#: Phases of a cold start on the harness, in order (ms). `unattributed` = e2e − the others.
PHASES = ["schedule", "image_pull", "container_create", "container_start", "runtime_boot",
          "model_load", "ready", "initializer", "first_inference", "unattributed"]

#: Phases when only the instance's headers are known (a plain URL, FC): `platform` is the rest.
HEADER_PHASES = ["runtime_boot", "model_load", "first_inference", "platform"]


def _ms(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def split_with_harness(*, record: InvocationRecord, instance: Mapping[str, Any]
                       ) -> dict[str, float]:
    """Phases of a cold request served by the harness.

    Args:
        record: the request as the client saw it (send/end times, the instance's headers).
        instance: the instance as the harness API lists it (``phases_ms``, ``timeline_ns``).
    """
    ms = 1e-6
    send_ns, end_ns = int(record.start_ts * 1e9), int(record.end_ts * 1e9)
    tl = instance.get("timeline_ns", {})
    runtime = instance.get("phases_ms", {})
    launch = tl.get("launch_ns", send_ns)
    boot = int(record.boot_ts * 1e9) if record.boot_ts is not None else launch
    import_ms = _ms(record.import_ms)
    model_ms = _ms(record.model_load_ms)
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


def split_with_headers(*, record: InvocationRecord) -> dict[str, float]:
    """Phases of a cold request from the instance's own headers only; `platform` is the rest."""
    out = {
        "runtime_boot": _ms(record.import_ms),
        "model_load": _ms(record.model_load_ms),
        "first_inference": _ms(record.inference_ms),
    }
    out["platform"] = record.latency_ms - sum(out.values())
    out["e2e"] = record.latency_ms
    return out
