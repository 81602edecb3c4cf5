"""`fcbench simulate`: a workload file through the one scheduler, on simulated time, into a run
folder that reads like a measured one (marked simulated).

Key names: `simulate_workload` (into a run folder), `run_simulation` (in memory),
`SimulationSettings`. Service and start-up times are
distributions in the sleep model's syntax (``50``, ``exp:50``, ``uniform:20:80``, ``normal:50:5``,
milliseconds); a `sleep` function's own ``FCBENCH_SLEEP_MS`` / ``FCBENCH_STARTUP_MS`` are the
defaults.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..harness.scheduler import FunctionConfig
from .calibrate import Calibration
from .engine import SimResult, simulate

__all__ = ["Simulation", "SimulationSettings", "run_simulation", "service_sampler",
           "simulate_workload"]

#: A Python instance process starts in about this long here, before its model loads (ms).
DEFAULT_PROCESS_START_MS = 400.0


@dataclass(frozen=True)
class SimulationSettings:
    """What the simulator assumes about the function (distributions of milliseconds)."""

    service_ms: str | None = None
    startup_ms: str | None = None
    seed: int = 0
    #: measured samples to draw from where `service_ms` / `startup_ms` are not given
    calibration: Calibration | None = None


@dataclass
class Simulation:
    """One simulated workload, in memory: what `simulate_workload` writes to a folder."""

    workload: Any
    spec: Any
    result: SimResult
    service: str
    startup: str
    time_scale: dict[str, Any]
    gpu_info: Any
    elapsed_s: float

    def frame(self, origin_ts: float = 0.0) -> Any:
        """The requests as a requests.csv frame (`SimResult.to_frame`)."""
        return self.result.to_frame(origin_ts=origin_ts)


def run_simulation(workload: Any, settings: SimulationSettings) -> Simulation:
    """Simulate `workload` (a local target serving one function, an open-loop plan) in memory.

    Raises:
        UsageError: no local function, a closed-loop plan, or no service time to assume.
    """
    from ..harness.gpus import GpuPool
    from ..harness.server import HarnessConfig

    specs, time_scale = workload.scaled_specs()
    if len(specs) != 1:
        raise UsageError("simulate needs a workload with a local target serving one function")
    spec = specs[0]
    plan = workload.plan_obj()
    if not plan.open_loop:
        raise UsageError("simulate replays open-loop plans (poisson, constant, uniform, burst, "
                         "diurnal, trace); a closed-loop plan depends on measured answers")
    service, startup, draw_service, draw_startup = _distributions(spec, settings)
    # the GPUs the harness would place this spec on (virtual cards sized by gpuType when none)
    gpus, gpu_info = HarnessConfig(virtual_gpus=getattr(workload.target, "virtual_gpus", None)
                                   ).resolve_gpus([spec])
    t0 = time.perf_counter()
    result = simulate(plan.offsets(workload.duration), FunctionConfig.from_spec(spec),
                      service_s=lambda: draw_service() / 1000.0,
                      startup_s=lambda: draw_startup() / 1000.0, gpus=GpuPool(gpus))
    return Simulation(workload, spec, result, service, startup, time_scale, gpu_info,
                      time.perf_counter() - t0)


def simulate_workload(workload: Any, settings: SimulationSettings, *,
                      out_dir: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Simulate `workload` into a new run folder; returns it and its summary (the same
    `summarize` as a measured run, plus ``simulated: true``).

    Raises:
        UsageError: see `run_simulation`.
    """
    from ..report.html import write_report
    from ..report.rundir import RunFolder
    from ..report.summary import summarize

    sim = run_simulation(workload, settings)
    result = sim.result
    folder = RunFolder.create(Path(out_dir or workload.output_dir()), f"sim-{workload.name}")
    origin = time.time()
    frame = sim.frame(origin)
    frame.to_csv(folder.path / "requests.csv", index=False, float_format="%.6f")
    folder.write_instances([{**row, "created_ts": _ts(origin, row["created_ts"]),
                             "ready_ts": _ts(origin, row["ready_ts"]),
                             "stopped_ts": _ts(origin, row["stopped_ts"])}
                            for row in result.instances])
    summary = summarize(frame)
    summary.update({"name": str(workload.name), "simulated": True,
                    "planned_duration_s": workload.duration,
                    "instances_started": result.instances_started,
                    "simulation_s": round(sim.elapsed_s, 3)})
    folder.write_summary(summary)
    folder.write_run_yaml({
        "title": f"fcbench simulate {workload.name} (simulated)", "kind": "simulated",
        "name": str(workload.name), "service_ms": sim.service, "startup_ms": sim.startup,
        "seed": settings.seed, "calibration": settings.calibration.describe()
        if settings.calibration else None,
        "workload": workload.to_run_yaml(), "time": sim.time_scale, "gpus": sim.gpu_info})
    write_report(folder.path)
    return folder.path, summary


def service_sampler(spec: Any, settings: SimulationSettings) -> Callable[[], float]:
    """The service-time sampler (ms) a simulation of `spec` with `settings` draws from."""
    return _distributions(spec, settings)[2]


def _distributions(spec: Any, settings: SimulationSettings
                   ) -> tuple[str, str, Callable[[], float], Callable[[], float]]:
    """The service and start-up samplers (ms) and how run.yaml names them: the settings' own
    distributions first, then the calibration's samples, then a sleep function's variables."""
    from ..models.sleep import parse_distribution

    rng = random.Random(settings.seed)
    cal = settings.calibration
    env = spec.environment_variables
    sleep_model = env.get("FCBENCH_MODEL") == "sleep"

    def pick(given: str | None, measured: Callable[[], Callable[[], float]] | None,
             fallback: str | None, what: str) -> tuple[str, Callable[[], float]]:
        if given is None and measured is not None:
            return "calibrated", measured()
        text = given if given is not None else fallback
        if text is None:
            raise UsageError(f"say how long {spec.name!r} takes per request: a service-time "
                             "distribution in ms (e.g. 120 or exp:120), or --calibrate RUN_DIR")
        try:
            return text, parse_distribution(text, rng=rng)
        except ValueError as exc:
            raise UsageError(f"{what}: {exc}") from None

    service, draw_service = pick(
        settings.service_ms, (lambda: cal.draw_service(rng)) if cal else None,
        env.get("FCBENCH_SLEEP_MS", "0") if sleep_model else None, "--service-ms")
    startup, draw_startup = pick(
        settings.startup_ms, (lambda: cal.draw_startup(rng)) if cal else None,
        f"{DEFAULT_PROCESS_START_MS + float(env.get('FCBENCH_STARTUP_MS', '0') or 0):g}"
        if sleep_model else f"{DEFAULT_PROCESS_START_MS:g}", "--startup-ms")
    return service, startup, draw_service, draw_startup


def _ts(origin: float, value: float | None) -> float | None:
    return None if value is None else origin + value
