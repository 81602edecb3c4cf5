"""A model that only waits: service and start-up times drawn from given distributions, no CPU.

It stands in for a GPU-bound model in scheduler experiments on a 2-core machine. Options:
``FCBENCH_SLEEP_MS`` (service time) and ``FCBENCH_STARTUP_MS`` (extra model-load time), each a
distribution: ``50``, ``const:50``, ``exp:50`` (mean), ``uniform:20:80``, ``normal:50:5``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from .base import BadInput

__all__ = ["Sleep", "load", "parse_distribution"]


def parse_distribution(text: str, *, rng: random.Random) -> Callable[[], float]:
    """Turn ``"exp:50"``-style text into a sampler of milliseconds (never negative)."""
    parts = str(text).strip().split(":")
    try:
        if len(parts) == 1:
            value = float(parts[0])
            return lambda: value
        kind, args = parts[0].lower(), [float(p) for p in parts[1:]]
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a distribution; use 50, exp:50, "
                         "uniform:20:80 or normal:50:5 (milliseconds)") from None
    if kind in ("const", "constant") and len(args) == 1:
        return lambda: args[0]
    if kind in ("exp", "exponential") and len(args) == 1:
        return lambda: rng.expovariate(1.0 / args[0]) if args[0] > 0 else 0.0
    if kind == "uniform" and len(args) == 2:
        return lambda: rng.uniform(args[0], args[1])
    if kind == "normal" and len(args) == 2:
        return lambda: max(0.0, rng.gauss(args[0], args[1]))
    raise ValueError(f"unknown distribution {text!r}; use 50, exp:50, uniform:20:80 or normal:50:5")


class Sleep:
    """Waits for a drawn service time per request; a request body may override it with
    ``{"sleep_ms": N}``."""

    name = "sleep"

    def __init__(self, service: Callable[[], float]) -> None:
        self._service = service

    def decode(self, body: bytes, content_type: str) -> float:
        # FC event invocations carry raw bytes, often without a JSON content type.
        if body and ("json" in content_type or body.lstrip()[:1] == b"{"):
            try:
                doc = json.loads(body)
            except ValueError:
                raise BadInput("the body is not valid JSON; send {\"sleep_ms\": N} or nothing")
            if isinstance(doc, dict) and "sleep_ms" in doc:
                try:
                    return max(0.0, float(doc["sleep_ms"]))
                except (TypeError, ValueError):
                    raise BadInput("sleep_ms must be a number of milliseconds") from None
        return self._service()

    def infer(self, inputs: list[Any]) -> list[Any]:
        longest = max(inputs, default=0.0)
        time.sleep(longest / 1000.0)
        return [{"slept_ms": ms} for ms in inputs]

    async def ainfer(self, inputs: list[Any]) -> list[Any]:
        """Async variant: waits without holding a thread, so slots really run side by side."""
        await asyncio.sleep(max(inputs, default=0.0) / 1000.0)
        return [{"slept_ms": ms} for ms in inputs]

    def encode(self, output: Any) -> tuple[bytes, str]:
        return json.dumps(output).encode(), "application/json"


def load(options: Mapping[str, str]) -> Sleep:
    """Build the sleep model; ``FCBENCH_STARTUP_MS`` is spent here, as a model load would be."""
    rng = random.Random(int(options.get("FCBENCH_SEED", "0") or 0) ^ time.time_ns())
    startup = parse_distribution(options.get("FCBENCH_STARTUP_MS", "0"), rng=rng)()
    if startup > 0:
        time.sleep(startup / 1000.0)
    return Sleep(parse_distribution(options.get("FCBENCH_SLEEP_MS", "0"), rng=rng))
