"""`fcbench simulate`: a workload file through the one scheduler, on simulated time, into a run
folder that reads like a measured one (marked simulated).

Key names: `simulate_workload`, `SimulationSettings`. Service and start-up times are
distributions in the sleep model's syntax (``50``, ``exp:50``, ``uniform:20:80``, ``normal:50:5``,
milliseconds); a `sleep` function's own ``FCBENCH_SLEEP_MS`` / ``FCBENCH_STARTUP_MS`` are the
defaults.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..harness.scheduler import FunctionConfig
from .engine import simulate

__all__ = ["SimulationSettings", "simulate_workload"]

#: A Python instance process starts in about this long here, before its model loads (ms).
DEFAULT_PROCESS_START_MS = 400.0


@dataclass(frozen=True)
class SimulationSettings:
    """What the simulator assumes about the function (distributions of milliseconds)."""

    service_ms: str | None = None
    startup_ms: str | None = None
    seed: int = 0


def simulate_workload(workload: Any, settings: SimulationSettings, *,
                      out_dir: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Simulate `workload` (a local target, an open-loop plan); returns the run folder and its
    summary (the same `summarize` as a measured run, plus ``simulated: true``).

    Raises:
        UsageError: no local function, a closed-loop plan, or no service time to assume.
    """
    from ..models.sleep import parse_distribution
    from ..report.html import write_report
    from ..report.rundir import RunFolder
    from ..report.summary import summarize

    specs, time_scale = workload.scaled_specs()
    if len(specs) != 1:
        raise UsageError("simulate needs a workload with a local target serving one function")
    spec = specs[0]
    plan = workload.plan_obj()
    if not plan.open_loop:
        raise UsageError("simulate replays open-loop plans (poisson, constant, uniform, burst, "
                         "diurnal, trace); a closed-loop plan depends on measured answers")
    env = spec.environment_variables
    sleep_model = env.get("FCBENCH_MODEL") == "sleep"
    service = settings.service_ms or (env.get("FCBENCH_SLEEP_MS", "0") if sleep_model else None)
    if service is None:
        raise UsageError(f"say how long {spec.name!r} takes per request: a service-time "
                         "distribution in ms (e.g. 120 or exp:120), or calibrate from a run")
    startup = settings.startup_ms or (
        f"{DEFAULT_PROCESS_START_MS + float(env.get('FCBENCH_STARTUP_MS', '0') or 0):g}"
        if sleep_model else f"{DEFAULT_PROCESS_START_MS:g}")
    rng = random.Random(settings.seed)
    try:
        draw_service = parse_distribution(service, rng=rng)
        draw_startup = parse_distribution(startup, rng=rng)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from ..harness.gpus import GpuPool
    from ..harness.server import HarnessConfig

    # the GPUs the harness would place this spec on (virtual cards sized by gpuType when none)
    gpus, gpu_info = HarnessConfig(virtual_gpus=getattr(workload.target, "virtual_gpus", None)
                                   ).resolve_gpus([spec])
    t0 = time.perf_counter()
    result = simulate(plan.offsets(workload.duration), FunctionConfig.from_spec(spec),
                      service_s=lambda: draw_service() / 1000.0,
                      startup_s=lambda: draw_startup() / 1000.0, gpus=GpuPool(gpus))
    elapsed = time.perf_counter() - t0
    folder = RunFolder.create(Path(out_dir or workload.output_dir()), f"sim-{workload.name}")
    origin = time.time()
    frame = result.to_frame(origin_ts=origin)
    frame.to_csv(folder.path / "requests.csv", index=False, float_format="%.6f")
    folder.write_instances([{**row, "created_ts": _ts(origin, row["created_ts"]),
                             "ready_ts": _ts(origin, row["ready_ts"]),
                             "stopped_ts": _ts(origin, row["stopped_ts"])}
                            for row in result.instances])
    summary = summarize(frame)
    summary.update({"name": str(workload.name), "simulated": True,
                    "planned_duration_s": workload.duration,
                    "instances_started": result.instances_started,
                    "simulation_s": round(elapsed, 3)})
    folder.write_summary(summary)
    folder.write_run_yaml({
        "title": f"fcbench simulate {workload.name} (simulated)", "kind": "simulated",
        "name": str(workload.name), "service_ms": service, "startup_ms": startup,
        "seed": settings.seed, "workload": workload.to_run_yaml(), "time": time_scale,
        "gpus": gpu_info})
    write_report(folder.path)
    return folder.path, summary


def _ts(origin: float, value: float | None) -> float | None:
    return None if value is None else origin + value
