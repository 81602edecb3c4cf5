"""The platform's own phases of an instance start (FC-sized cold starts), defined once.

Key names: `PLATFORM_PHASES` (their names, in the order they run), `planned_ms` (what one start
of one instance takes, drawn from the spec's `harness.platform`), `mean_ms` (their mean total), `start_time_s` (the one
definition of a start-up time: in-instance start + platform phases), `platform_ms` (the platform
phases an instance's measured phases hold), `wait_platform_phases` (the harness waiting them
out during a start).

FC's GPU cold start is 10-30 s end to end (GPU preparation, image pull, container start, model
load); a local start is under a second. The spec's `harness.platform` section names what the
local machine lacks, and the harness waits it out in every start, before the runtime starts the
instance, so a request that waits for a start waits FC's time. The simulator adds the same
draws to its start-up times. The draws are seeded by the section's `seed` and the instance id
(the scheduler names instances alike in both), so a run repeats, and the harness and a
simulation with seed 0 give an instance the same phases.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import Any

from ..spec import FunctionSpec, PlatformOptions

__all__ = ["PLATFORM_PHASES", "mean_ms", "planned_ms", "platform_ms", "start_time_s",
           "wait_platform_phases"]

#: The phases, in the order a start runs them (names as phases_ms, instances.csv and
#: phases.csv write them; `platform_image_pull` is FC's registry pull, apart from the docker
#: runtime's own `image_pull`).
PLATFORM_PHASES = ("gpu_prepare", "platform_image_pull", "platform_extra")


def planned_ms(platform: PlatformOptions | None, instance_id: str, *,
               replica: int = 0) -> dict[str, float]:
    """The platform phases one start of `instance_id` takes (ms), only those the section
    names. The same section, instance id and `replica` always give the same draws; the harness
    uses replica 0, a simulation its seed (each bootstrap replicate draws anew)."""
    if platform is None:
        return {}
    rng = random.Random(f"fcbench-platform:{platform.seed}:{replica}:{instance_id}")
    out: dict[str, float] = {}
    gpu = platform.gpu_prepare_dist
    if gpu is not None:
        out["gpu_prepare"] = gpu.sampler(rng)()
    pull = platform.image_pull_ms
    if pull is not None:
        out["platform_image_pull"] = pull
    extra = platform.extra_start_dist
    if extra is not None:
        out["platform_extra"] = extra.sampler(rng)()
    return out


def mean_ms(platform: PlatformOptions | None) -> float:
    """The mean total of the platform phases of one start (ms; 0 without a section)."""
    if platform is None:
        return 0.0
    dists = (platform.gpu_prepare_dist, platform.extra_start_dist)
    return sum(d.mean_ms for d in dists if d is not None) + (platform.image_pull_ms or 0.0)


def start_time_s(in_instance_s: float, platform: PlatformOptions | None, instance_id: str, *,
                 replica: int = 0) -> float:
    """An instance's start-up time (s): its in-instance start (runtime, boot, model load,
    readiness) plus the platform phases `planned_ms` draws for it."""
    return in_instance_s + sum(planned_ms(platform, instance_id, replica=replica).values()) / 1e3


def platform_ms(phases: Mapping[str, Any], key: str = "{}") -> float:
    """The platform phases' total (ms) in measured phases: `phases` maps ``key.format(name)``
    to a number (``phases_ms`` itself, an instances.csv row with ``"phases_ms.{}"``, a
    phases.csv row with ``"{}_ms"``); missing, empty or NaN ones count 0."""
    total = 0.0
    for name in PLATFORM_PHASES:
        try:
            value = float(phases.get(key.format(name)) or 0.0)
        except (TypeError, ValueError):
            continue
        if value == value:  # a NaN cell (pandas' empty) counts 0
            total += value
    return total


async def wait_platform_phases(spec: FunctionSpec, instance_id: str) -> dict[str, float]:
    """Wait out the platform phases of one start of `instance_id` (asynchronously, in order),
    and return how long each took (ms, measured: what the wait really lasted)."""
    measured: dict[str, float] = {}
    for name, ms in planned_ms(spec.harness.platform, instance_id).items():
        t0 = time.perf_counter()
        await asyncio.sleep(ms / 1000.0)
        measured[name] = (time.perf_counter() - t0) * 1000.0
    return measured
