"""Splitting one cold request's end-to-end latency into phases (pure functions, no I/O).

Key names: `PHASES`, `HEADER_PHASES`, `split_with_harness`, `split_with_headers`.

Each harness phase comes from its own source, so they do not telescope: the harness's own
timestamps (gateway received, start begun, readiness detected), the platform's own phases the
harness waited out (`harness.platform`: GPU preparation, FC's image pull, the rest of FC's start;
each timed as it ran), the runtime's calls (image pull, container create/start, process spawn),
the instance's headers (boot, imports, model load, listening, inference) and the gateway's timing
of the forward. `unattributed` = client e2e
minus their sum: the client <-> gateway legs and anything else nobody measures, so a delay there
(a slow proxy) shows up in it. A phase whose source is absent is NaN ("unknown"), never 0; a
negative phase means the clocks or the order of events disagree and is reported, not clamped.
Timeline points are epoch nanoseconds from one host clock (containers share it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..harness.platform_phases import PLATFORM_PHASES
from ..protocol import InvocationRecord

__all__ = ["HEADER_PHASES", "PHASES", "clock_errors", "split_with_harness",
           "split_with_headers"]

#: Phases of a cold start on the harness, in order (ms), each with its source:
#: schedule (gateway received -> start begun, harness), gpu_prepare / platform_image_pull /
#: platform_extra (the platform phases the harness waited out, `harness.platform`; 0 when the
#: spec names none), image_pull / container_create / container_start (docker runtime calls),
#: spawn (process runtime call), process_start (runtime done -> the instance's first line),
#: runtime_boot (imports, instance), model_load (instance), ready (model loaded -> harness saw
#: it listening: bind + signal; for an instance that reports no timeline, a foreign server,
#: runtime done -> harness saw it ready: its whole start, unsplit, while process_start,
#: runtime_boot and model_load stay unknown), initializer (harness), health_check (harness: FC's
#: probe, after the initializer as on FC; 0 without healthCheckConfig), first_inference
#: (instance's own inference time), transit (the gateway's forward round trip beyond inference),
#: unattributed (e2e minus all of them).
PHASES = ["schedule", *PLATFORM_PHASES, "image_pull", "container_create", "container_start",
          "spawn", "process_start", "runtime_boot", "model_load", "ready", "initializer",
          "health_check", "first_inference", "transit", "unattributed"]

#: Phases when only the instance's headers are known (a plain URL, FC): `platform` is the rest.
HEADER_PHASES = ["runtime_boot", "model_load", "first_inference", "platform"]

_NAN = float("nan")
_RUNTIME_CALLS = ("image_pull", "container_create", "container_start", "spawn")


def _ms(value: float | None) -> float:
    return _NAN if value is None else float(value)


def _span_ms(later_ns: Any, earlier_ns: Any) -> float:
    if later_ns is None or earlier_ns is None:
        return _NAN
    return (int(later_ns) - int(earlier_ns)) / 1e6


def split_with_harness(*, record: InvocationRecord, instance: Mapping[str, Any]
                       ) -> dict[str, float]:
    """Phases of a cold request served by the harness (see `PHASES`); NaN where a source is
    missing.

    Args:
        record: the request as the client saw it (times, the instance's and gateway's headers).
        instance: the instance as the harness API lists it (``phases_ms``, ``timeline_ns``).
    """
    tl = instance.get("timeline_ns", {}) or {}
    runtime = instance.get("phases_ms", {}) or {}
    launch = tl.get("launch_ns")
    gateway = int(record.gateway_ts * 1e9) if record.gateway_ts is not None else None
    boot = int(record.boot_ts * 1e9) if record.boot_ts is not None else None
    listening = int(record.ready_ts * 1e9) if record.ready_ts is not None else None
    out: dict[str, float] = {"schedule": _span_ms(launch, gateway)}
    calls = 0.0
    for name in PLATFORM_PHASES:  # waited out between the start's launch and the runtime's call
        out[name] = float(runtime.get(name, 0.0))  # 0: the spec names none
        calls += out[name]
    for name in _RUNTIME_CALLS:
        value = runtime.get(name)
        out[name] = _NAN if value is None else float(value)
        calls += 0.0 if value is None else float(value)
    started = _span_ms(boot, launch)
    out["process_start"] = started - calls if not math.isnan(started) else _NAN
    out["runtime_boot"] = _ms(record.import_ms)
    out["model_load"] = _ms(record.model_load_ms)
    loaded = None if boot is None or record.import_ms is None or record.model_load_ms is None \
        else boot + int((record.import_ms + record.model_load_ms) * 1e6)
    # without the instance's own points (a foreign server) the span starts where the runtime's
    # calls ended: the whole in-instance start as one phase, never split by guess
    runtime_done = None if launch is None else int(launch) + int(calls * 1e6)
    since = loaded if loaded is not None else listening if listening is not None \
        else runtime_done if boot is None else None
    out["ready"] = _span_ms(tl.get("ready_detected_ns"), since)
    out["initializer"] = float(runtime.get("initializer", 0.0))  # 0: the spec has none
    out["health_check"] = float(runtime.get("health_check", 0.0))  # 0: no healthCheckConfig
    out["first_inference"] = _ms(record.inference_ms)
    out["transit"] = (record.forward_ms - record.inference_ms) \
        if record.forward_ms is not None and record.inference_ms is not None else _NAN
    e2e = record.latency_ms
    known = [v for v in out.values() if not math.isnan(v)]
    out["unattributed"] = e2e - sum(known)
    out["e2e"] = e2e
    return out


def clock_errors(phases: Mapping[str, float]) -> list[str]:
    """Names of phases that came out negative: their clocks or event order disagree."""
    return [name for name, value in phases.items()
            if name not in ("unattributed", "e2e", "platform") and not math.isnan(value)
            and value < -0.5]


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
