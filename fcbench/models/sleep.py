"""A model that only waits: service and start-up times drawn from given distributions, no CPU.

It stands in for a GPU-bound model in scheduler experiments on a 2-core machine. Options:
``FCBENCH_SLEEP_MS`` (service time) and ``FCBENCH_STARTUP_MS`` (extra model-load time), each a
distribution: ``50``, ``const:50``, ``exp:50`` (mean), ``uniform:20:80``, ``normal:50:5``
(milliseconds; `fcbench.distributions` reads them).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..distributions import parse_distribution  # the one parser (re-exported: sim, tests)
from .base import BadInput

__all__ = ["Job", "Sleep", "load", "parse_distribution"]


@dataclass(frozen=True)
class Job:
    """One request's work: how long to wait, and the caller's tag to echo back."""

    ms: float
    tag: Any = None


class Sleep:
    """Waits for a drawn service time per request. A JSON body may set it, ``{"sleep_ms": N}``,
    and may carry ``"id"``, which the answer echoes (``{"slept_ms": N, "id": ...}``), so a caller
    can check it got its own answer."""

    name = "sleep"

    def __init__(self, service: Callable[[], float]) -> None:
        self._service = service

    def decode(self, body: bytes, content_type: str) -> Job:
        # FC event invocations carry raw bytes, often without a JSON content type.
        if body and ("json" in content_type or body.lstrip()[:1] == b"{"):
            try:
                doc = json.loads(body)
            except ValueError:
                raise BadInput("the body is not valid JSON; send {\"sleep_ms\": N} or nothing")
            if isinstance(doc, dict):
                tag = doc.get("id")
                if "sleep_ms" not in doc:
                    return Job(self._service(), tag)
                try:
                    return Job(max(0.0, float(doc["sleep_ms"])), tag)
                except (TypeError, ValueError):
                    raise BadInput("sleep_ms must be a number of milliseconds") from None
        return Job(self._service())

    def infer(self, inputs: list[Job]) -> list[Any]:
        time.sleep(max((j.ms for j in inputs), default=0.0) / 1000.0)
        return [_answer(j) for j in inputs]

    async def ainfer(self, inputs: list[Job]) -> list[Any]:
        """Async variant: waits without holding a thread, so slots really run side by side."""
        await asyncio.sleep(max((j.ms for j in inputs), default=0.0) / 1000.0)
        return [_answer(j) for j in inputs]

    def encode(self, output: Any) -> tuple[bytes, str]:
        return json.dumps(output).encode(), "application/json"


def _answer(job: Job) -> dict[str, Any]:
    return {"slept_ms": job.ms} if job.tag is None else {"slept_ms": job.ms, "id": job.tag}


def load(options: Mapping[str, str]) -> Sleep:
    """Build the sleep model; ``FCBENCH_STARTUP_MS`` is spent here, as a model load would be."""
    rng = random.Random(int(options.get("FCBENCH_SEED", "0") or 0) ^ time.time_ns())
    startup = parse_distribution(options.get("FCBENCH_STARTUP_MS", "0"), rng=rng)()
    if startup > 0:
        time.sleep(startup / 1000.0)
    return Sleep(parse_distribution(options.get("FCBENCH_SLEEP_MS", "0"), rng=rng))
