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
instance as the harness draws them (`fcbench.harness.platform_phases.start_time_s`). A
calibration with a per-token fit (`fcbench.sim.tokens`) gives each request the service time of
its own lengths — those of the workload's ``request.openai`` generator, else the calibration
run's resampled — scaled by `SimulationSettings.prompt_tokens_scale` / `output_tokens_scale`,
and its requests.csv rows carry input_tokens, output_tokens, ttft_ms and tpot_ms.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..harness.platform_phases import mean_ms, planned_ms
from ..harness.scheduler import FunctionConfig
from ..provision_policy import ProvisionPolicies
from ..results import layout
from .calibrate import Calibration, engine_options
from .engine import SimResult, simulate
from .tokens import TokenDraws, lengths_for, scaled

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
    #: every request's prompt / output length × this (needs a calibration's per-token fit)
    prompt_tokens_scale: float = 1.0
    output_tokens_scale: float = 1.0
    #: where a given `startup_ms` came from, in words (None: --startup-ms), e.g. a size fit
    startup_from: str | None = None


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
    #: each request's lengths and token-dependent times (None: no per-token fit used)
    tokens: TokenDraws | None = None
    #: what run.yaml records of the token model (None: none)
    tokens_info: dict[str, Any] | None = None

    def frame(self, origin_ts: float = 0.0) -> Any:
        """The requests as a requests.csv frame (`SimResult.to_frame`), with their token
        columns where the service times came from a per-token fit."""
        frame = self.result.to_frame(origin_ts=origin_ts)
        if self.tokens is not None:
            _token_columns(frame, self.tokens)
        return frame


def _token_columns(frame: Any, draws: TokenDraws) -> None:
    """Fill a simulated frame's token columns, in place, as the client measures them: TTFT
    from the send (so a cold request's wait for its instance and any queueing count in it, as
    measured), TPOT = (end - first token) / (output tokens - 1) (`fcbench.measures`), for the
    answered requests; the others' stay empty, as a failed request's do."""
    import pandas as pd

    status = frame["status"].to_numpy()
    ok = (status > 0) & (status < 400)
    cold = frame["cold"].to_numpy() == 1.0
    n = len(frame)
    first = np.where(cold, draws.cold_first_ms[:n], draws.warm_first_ms[:n])
    ttft = np.where(ok, frame["queue_ms"].to_numpy(dtype=float) + first, np.nan)
    outputs = draws.output[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(ok & (outputs > 1),
                        (frame["latency_ms"].to_numpy(dtype=float) - ttft) / (outputs - 1),
                        np.nan)
    for name, values in (("input_tokens", draws.input[:n]), ("output_tokens", outputs)):
        frame[name] = pd.array(np.where(ok, values, np.nan), dtype="Float64").round() \
            .astype("Int64")
    frame["ttft_ms"] = ttft
    frame["tpot_ms"] = tpot


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
    arrivals = np.fromiter(plan.offsets(workload.duration), dtype=np.float64)
    tokens, tokens_info = _token_plan(workload, settings, len(arrivals))
    if tokens is not None:
        service, source = "calibrated per token", {**source, "service": "calibration, per token"}
    # the GPUs the harness would place this spec on (virtual cards sized by gpuType when none)
    gpus, gpu_info = HarnessConfig(virtual_gpus=getattr(workload.target, "virtual_gpus", None)
                                   ).resolve_gpus([spec])
    origin = settings.start_ts if settings.start_ts is not None else time.time()
    t0 = time.perf_counter()
    options = engine_options(settings, workload.duration)
    if tokens is not None:
        options.pop("cold_service_s", None)
        options["request_service_s"] = (tokens.warm_service_ms / 1000.0,
                                         tokens.cold_service_ms / 1000.0)
    result = simulate(arrivals, FunctionConfig.from_spec(spec),
                      service_s=lambda: draw_service() / 1000.0,
                      startup_s=lambda: draw_startup() / 1000.0, gpus=GpuPool(gpus),
                      platform=spec.harness.platform, platform_replica=settings.seed,
                      policies=ProvisionPolicies.of(spec.harness, origin=origin), **options)
    return Simulation(workload, spec, result, service, startup, time_scale, gpu_info,
                      time.perf_counter() - t0, source, origin, tokens, tokens_info)


def _token_plan(workload: Any, settings: SimulationSettings, n: int
                ) -> tuple[TokenDraws | None, dict[str, Any] | None]:
    """Each request's lengths and token-dependent times, when the calibration has a per-token
    fit and no --service-ms overrides it; None otherwise (a scale other than 1 then refused).

    Raises:
        UsageError: a token scale without a fit that can scale that length.
    """
    cal = settings.calibration
    fit = cal.tokens if cal is not None and settings.service_ms is None else None
    scales = {"input_tokens": ("--prompt-tokens-scale", settings.prompt_tokens_scale),
              "output_tokens": ("--output-tokens-scale", settings.output_tokens_scale)}
    for what, (option, factor) in scales.items():
        if factor == 1.0:
            continue
        if not (factor > 0 and np.isfinite(factor)):
            raise UsageError(f"{option} {factor:g}: give a factor above 0 (2 doubles every "
                             f"request's {what})")
        if cal is None:
            raise UsageError(f"{option} scales a calibrated per-token service time: pass "
                             "--calibrate RUN_DIR with a measured run of the LLM function "
                             f"(its {layout.REQUESTS} carries input_tokens and output_tokens)")
        if settings.service_ms is not None:
            raise UsageError(f"{option} cannot scale a fixed --service-ms; drop --service-ms "
                             "so the calibration's per-token fit gives the service times")
        if fit is None:
            why = cal.tokens_note or (f"its {layout.REQUESTS} carries no input_tokens / "
                                      "output_tokens (no OpenAI-style answer was measured)")
            raise UsageError(f"{option}: the calibration has no per-token fit to scale with: "
                             f"{why}")
        refused = fit.scalable(what)
        if refused is not None:
            raise UsageError(f"{option}: cannot scale {what}: {refused}; calibrate on a run "
                             f"whose {what} vary")
    if fit is None:
        return None, None
    inputs, outputs, lengths_from = lengths_for(workload, fit, n, seed=workload.seed or 0)
    inputs = scaled(inputs, settings.prompt_tokens_scale)
    outputs = scaled(outputs, settings.output_tokens_scale)
    rng = np.random.default_rng(np.random.SeedSequence([abs(int(settings.seed)), 0x70CE]))
    draws = fit.draws(inputs, outputs, rng)
    return draws, {"lengths_from": lengths_from,
                   "prompt_tokens_scale": settings.prompt_tokens_scale,
                   "output_tokens_scale": settings.output_tokens_scale,
                   "fit": fit.describe()}


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
    summary = summarize(frame, slo=workload.slo_objectives)  # goodput as `fcbench run` counts it
    if sim.tokens_info:
        summary["token_model"] = sim.tokens_info
    summary.update({"name": str(workload.name), "simulated": True,
                    "planned_duration_s": workload.duration,
                    "instances_started": result.instances_started,
                    "simulation_s": round(sim.elapsed_s, 3)})
    folder.finish(summary=summary, kind="simulated", report=write_report, config={
        "title": f"fcbench simulate {workload.name} (simulated)",
        "name": str(workload.name), "service_ms": sim.service, "startup_ms": sim.startup,
        "times_from": sim.source,
        "seed": settings.seed, "calibration": settings.calibration.describe()
        if settings.calibration else None, "tokens": sim.tokens_info,
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
    said = source["service"] if source.get("startup") in (None, source["service"]) else \
        f"{source['service']}; start-up: {source['startup']}"
    return (f"note: assuming {spec.name!r} takes {service} ms per request and {startup} ms to "
            f"start{extra} ({said}); pass --service-ms / --startup-ms, or "
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
        if key == "startup" and given is not None and settings.startup_from:
            source[key] = settings.startup_from
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
