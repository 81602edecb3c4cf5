"""`fcbench simulate`: a workload file through the one scheduler, on simulated time, into a run
folder that reads like a measured one (marked simulated).

Key names: `simulate_workload` (into a run folder), `run_simulation` (in memory),
`SimulationSettings`, `SAMPLE_MODEL_TIMES`, `default_times_help`. A function's reserved
concurrency and provision policies (`harness.reservedConcurrency`, `harness.scheduledActions`,
`harness.targetTrackingPolicies`) act as in the harness; simulated 0 is the wall-clock time
`SimulationSettings.start_ts` (default: when it runs) for cron and at() times. Service and start-up times
are distributions in the sleep model's syntax (``50``, ``exp:50``, ``uniform:20:80``,
``normal:50:5``, milliseconds); a `sleep` function's own ``FCBENCH_SLEEP_MS`` / ``FCBENCH_STARTUP_MS``, and for
the other sample models their measured times (`SAMPLE_MODEL_TIMES`), are the defaults. Start-up
times are in-instance (spawn to ready); a spec's `harness.platform` phases come on top, drawn per
instance as the harness draws them (`fcbench.harness.platform_phases.start_time_s`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..harness.platform_phases import mean_ms, planned_ms
from ..harness.scheduler import FunctionConfig
from ..provision_policy import ProvisionPolicies
from .calibrate import Calibration, engine_options
from .engine import SimResult, simulate

__all__ = ["SAMPLE_MODEL_TIMES", "SampleTimes", "Simulation", "SimulationSettings",
           "assumed_note", "default_times_help", "run_simulation", "service_sampler",
           "simulate_workload", "times_source"]

#: A Python instance process starts in about this long here, before its model loads (ms).
DEFAULT_PROCESS_START_MS = 400.0


@dataclass(frozen=True)
class SampleTimes:
    """A sample model's measured service and start-up times (ms, distribution syntax)."""

    service_ms: str
    startup_ms: str
    source: str


#: The defaults for fcbench's own sample models (``FCBENCH_MODEL``, the built-in model file: no
#: ``FCBENCH_MODEL_PATH``) when neither --service-ms / --startup-ms nor --calibrate says.
#: mobilenet-v2: `fcbench coldstart profile workloads/functions/mobilenet-v2-quickstart.yaml -n 5`
#: on the 2-core CPU machine of these docs (process runtime, onnxruntime on the CPU, 2026-12-01):
#: warm 14-18 ms (median 16.8), instance start spawn → ready 400-440 ms (runtime boot ~290,
#: model load ~90). stable-diffusion has none: its time depends on the request's steps and size.
SAMPLE_MODEL_TIMES = {
    "mobilenet-v2": SampleTimes("17", "420",
                                "measured on a 2-core CPU, process runtime, 2026-12-01"),
}


def _sample_times(env: dict[str, str]) -> SampleTimes | None:
    """The sample model's defaults for a function with these environment variables, if any."""
    if (env.get("FCBENCH_MODEL_PATH") or "").strip():
        return None  # the user's own model file: its times are not ours to know
    return SAMPLE_MODEL_TIMES.get(env.get("FCBENCH_MODEL", ""))


def _defaults_list() -> str:
    return "FCBENCH_MODEL " + ", ".join(["sleep", *SAMPLE_MODEL_TIMES]) + \
        " (the built-in model file)"


def default_times_help() -> str:
    """Which functions have a default service / start-up time, and what it is (for --help)."""
    known = "; ".join(f"FCBENCH_MODEL {name} (its built-in model file): {t.service_ms} ms, "
                      f"start-up {t.startup_ms} ms ({t.source})"
                      for name, t in SAMPLE_MODEL_TIMES.items())
    return (f"FCBENCH_MODEL sleep: its FCBENCH_SLEEP_MS, start-up {DEFAULT_PROCESS_START_MS:g} "
            f"ms + its FCBENCH_STARTUP_MS; {known}; any other function (stable-diffusion, a "
            "model of your own) needs --service-ms or --calibrate RUN_DIR (start-up default "
            f"{DEFAULT_PROCESS_START_MS:g} ms)")


@dataclass(frozen=True)
class SimulationSettings:
    """What the simulator assumes about the function (distributions of milliseconds).
    `startup_ms` is the in-instance start; the spec's `harness.platform` phases are added to
    it, drawn for replica `seed` (seed 0 draws what the harness waits for each instance)."""

    service_ms: str | None = None
    startup_ms: str | None = None
    seed: int = 0
    #: measured samples to draw from where `service_ms` / `startup_ms` are not given
    calibration: Calibration | None = None
    #: the wall clock (epoch s) of simulated 0: what provision policies' cron and at() times
    #: are read against, and where the run folder's timestamps start; None: when it runs
    start_ts: float | None = None


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
    #: where the service and start-up times came from (`times_source`)
    source: dict[str, str]
    #: the wall clock (epoch s) of simulated 0 (`SimulationSettings.start_ts`)
    origin: float = 0.0

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
    service, startup, draw_service, draw_startup, source = _distributions(spec, settings)
    # the GPUs the harness would place this spec on (virtual cards sized by gpuType when none)
    gpus, gpu_info = HarnessConfig(virtual_gpus=getattr(workload.target, "virtual_gpus", None)
                                   ).resolve_gpus([spec])
    origin = settings.start_ts if settings.start_ts is not None else time.time()
    t0 = time.perf_counter()
    result = simulate(plan.offsets(workload.duration), FunctionConfig.from_spec(spec),
                      service_s=lambda: draw_service() / 1000.0,
                      startup_s=lambda: draw_startup() / 1000.0, gpus=GpuPool(gpus),
                      platform=spec.harness.platform, platform_replica=settings.seed,
                      policies=ProvisionPolicies.of(spec.harness, origin=origin),
                      **engine_options(settings, workload.duration))
    return Simulation(workload, spec, result, service, startup, time_scale, gpu_info,
                      time.perf_counter() - t0, source, origin)


def simulate_workload(workload: Any, settings: SimulationSettings, *,
                      out_dir: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Simulate `workload` into a new run folder; returns it and its summary (the same
    `summarize` as a measured run, plus ``simulated: true``).

    Raises:
        UsageError: see `run_simulation`.
    """
    from ..report.html import write_report
    from ..results import RunFolder
    from ..results.summary import summarize

    sim = run_simulation(workload, settings)
    result = sim.result
    folder = RunFolder.create(Path(out_dir or workload.output_dir()), f"sim-{workload.name}")
    origin = sim.origin
    frame = sim.frame(origin)
    folder.write_requests(frame)
    platform = sim.spec.harness.platform
    folder.write_instances([{**row, "created_ts": _ts(origin, row["created_ts"]),
                             "ready_ts": _ts(origin, row["ready_ts"]),
                             "stopped_ts": _ts(origin, row["stopped_ts"]),
                             # the platform phases each start held, as the harness lists them
                             "phases_ms": planned_ms(platform, row["instance_id"],
                                                     replica=settings.seed)}
                            for row in result.instances])
    summary = summarize(frame)
    summary.update({"name": str(workload.name), "simulated": True,
                    "planned_duration_s": workload.duration,
                    "instances_started": result.instances_started,
                    "simulation_s": round(sim.elapsed_s, 3)})
    folder.finish(summary=summary, kind="simulated", report=write_report, config={
        "title": f"fcbench simulate {workload.name} (simulated)",
        "name": str(workload.name), "service_ms": sim.service, "startup_ms": sim.startup,
        "times_from": sim.source,
        "seed": settings.seed, "calibration": settings.calibration.describe()
        if settings.calibration else None,
        "workload": workload.to_run_yaml(), "time": sim.time_scale, "gpus": sim.gpu_info})
    return folder.path, summary


def service_sampler(spec: Any, settings: SimulationSettings) -> Callable[[], float]:
    """The service-time sampler (ms) a simulation of `spec` with `settings` draws from.

    Raises:
        UsageError: nothing says how long the function takes (before anything is written)."""
    return _distributions(spec, settings)[2]


def _sample_from(env: dict[str, str], sample: SampleTimes) -> str:
    return f"the {env.get('FCBENCH_MODEL')} sample default, {sample.source}"


def assumed_note(workload: Any, settings: SimulationSettings) -> str | None:
    """A sentence for the console when the service time is a sample model's default (measured
    on another machine: an assumption), else None.

    Raises:
        UsageError: nothing says how long the function takes (before anything is written)."""
    specs, _ = workload.scaled_specs()
    if len(specs) != 1:
        return None  # run_simulation says what is wrong
    spec = specs[0]
    service, startup, _, _, source = _distributions(spec, settings)
    sample = _sample_times(spec.environment_variables)
    if sample is None or source["service"] != _sample_from(spec.environment_variables, sample):
        return None
    platform = mean_ms(spec.harness.platform)
    extra = (f", plus its harness.platform phases (mean {platform / 1000:.3g} s)"
             if platform else "")
    return (f"note: assuming {spec.name!r} takes {service} ms per request and {startup} ms to "
            f"start{extra} ({source['service']}); pass --service-ms / --startup-ms, or "
            "--calibrate RUN_DIR with a run of yours")


def times_source(spec: Any, settings: SimulationSettings) -> dict[str, str]:
    """Where a simulation's service and start-up times come from, in words
    (``{"service": ..., "startup": ...}``), as run.yaml records them."""
    return _distributions(spec, settings)[4]


def _distributions(spec: Any, settings: SimulationSettings
                   ) -> tuple[str, str, Callable[[], float], Callable[[], float], dict[str, str]]:
    """The service and start-up samplers (ms), how run.yaml names them and where they came
    from: the settings' own distributions first, then the calibration's samples, then a sleep
    function's variables or a sample model's measured times (`SAMPLE_MODEL_TIMES`)."""
    from ..models.sleep import parse_distribution

    rng = random.Random(settings.seed)
    cal = settings.calibration
    env = spec.environment_variables
    sleep_model = env.get("FCBENCH_MODEL") == "sleep"
    sample = _sample_times(env)

    source: dict[str, str] = {}

    def pick(given: str | None, measured: Callable[[], Callable[[], float]] | None,
             fallback: str | None, what: str) -> tuple[str, Callable[[], float]]:
        key = what.removeprefix("--").removesuffix("-ms")
        if given is None and measured is not None:
            source[key] = "calibration"
            return "calibrated", measured()
        text = given if given is not None else fallback
        source[key] = what if given is not None else default_from
        if text is None:
            raise UsageError(f"say how long {spec.name!r} takes per request: pass --service-ms "
                             "(a distribution in ms, e.g. 120 or exp:120) or --calibrate "
                             "RUN_DIR (a measured run of it); defaults exist for "
                             f"{_defaults_list()} only (see --help)")
        try:
            return text, parse_distribution(text, rng=rng)
        except ValueError as exc:
            raise UsageError(f"{what}: {exc}") from None

    if sleep_model:
        default_from = "the sleep function's FCBENCH_SLEEP_MS / FCBENCH_STARTUP_MS"
        service_default: str | None = env.get("FCBENCH_SLEEP_MS", "0")
        startup_default = \
            f"{DEFAULT_PROCESS_START_MS + float(env.get('FCBENCH_STARTUP_MS', '0') or 0):g}"
    else:
        default_from = _sample_from(env, sample) if sample else "the default process start"
        service_default = sample.service_ms if sample else None
        startup_default = sample.startup_ms if sample else f"{DEFAULT_PROCESS_START_MS:g}"
    service, draw_service = pick(
        settings.service_ms, (lambda: cal.draw_service(rng)) if cal else None,
        service_default, "--service-ms")
    startup, draw_startup = pick(
        settings.startup_ms, (lambda: cal.draw_startup(rng)) if cal else None,
        startup_default, "--startup-ms")
    return service, startup, draw_service, draw_startup, source


def _ts(origin: float, value: float | None) -> float | None:
    return None if value is None else origin + value
