"""The simulator's side of a cold-start sweep: the same levels, the same workloads, the same
steady-state cut and the same `summarize`, on simulated time.

Key names: `SimulatedSweep` (a `ColdStartSweep` whose levels are simulated), `predict_sweep`.
Only how a level is executed differs from the measured sweep, so a predicted sweep.csv can be
laid over a measured one point for point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SpecError, UsageError
from ..sim.calibrate import Calibration, calibrate
from ..sim.run import SimulationSettings, simulate_workload, times_source
from ..sim.settings import SWEEP_SETTINGS
from ..spec import FunctionSpec, function_spec_from_dict
from .sweep import ColdStartSweep, SweepConfig, SweepLevel

__all__ = ["SWEEP_KEYS", "SimulatedSweep", "predict_sweep", "simulate_sweep"]


class SimulatedSweep(ColdStartSweep):
    """A sweep whose levels run through the simulator (`fcbench.sim.run.simulate_workload`).

    Args:
        settings: service / start-up distributions or a calibration; the service time that
            sets each level's Poisson rate is the calibration's mean when not given.
        replications: simulate each level this many times (other arrival seeds, the same
            length and warm-up, so the ramp from zero weighs as much as in a measured level)
            and summarise them together: simulated time is cheap, so the interval narrows.
            The first replication is kept as the level's run folder.
    """

    name = "coldstart-sweep-simulated"
    points_label = "simulated"
    title = "Simulated cold-start probability"

    def __init__(self, spec: FunctionSpec, config: SweepConfig, run_dir: Path, *,
                 settings: SimulationSettings, replications: int = 1,
                 **kwargs: Any) -> None:
        if config.mode != "open":
            raise UsageError("the simulator replays open-loop levels only (Poisson); a "
                             "closed-loop sweep depends on measured answers")
        super().__init__(spec, config, run_dir, **kwargs)
        self.settings = settings
        self.replications = max(1, int(replications))
        if self.service_ms is None and settings.calibration is not None:
            self.service_ms = settings.calibration.service_mean_ms

    def prepare(self) -> float:
        if self.service_ms is None:
            raise UsageError("a simulated sweep needs the service time: --service-ms, or a "
                             "run to calibrate from")
        return self.service_ms

    def execute(self, workload: Any) -> tuple[Path, dict[str, Any], list[Any]]:
        from ..results import RunFolder
        from ..sim.run import run_simulation

        (self.run_dir / "levels").mkdir(parents=True, exist_ok=True)
        run_dir, summary = simulate_workload(workload, self.settings,
                                             out_dir=self.run_dir / "levels")
        frames = [RunFolder(run_dir).requests()]
        for k in range(1, self.replications):
            settings = replace(self.settings, seed=self.settings.seed + k)
            frames.append(run_simulation(workload.with_seed(workload.seed + k), settings).frame())
        return run_dir, summary, frames


def predict_sweep(measured_dir: Path, measured: list[SweepLevel], spec: FunctionSpec,
                  config: SweepConfig, *, service_ms: float, seed: int = 0,
                  replications: int = 20) -> tuple[list[SweepLevel], Calibration]:
    """The simulator's curve for a measured sweep: calibrated on its own levels' runs (warm
    service times, instance start-ups), the same levels and service time (so the same rates),
    written under ``measured_dir/predicted/``; each level simulated `replications` times, for
    a narrow interval."""
    cal = calibrate([measured_dir / lv.run_dir for lv in measured], function=spec.name)
    out = measured_dir / "predicted"
    out.mkdir(exist_ok=True)
    sweep = SimulatedSweep(spec, config, out, replications=replications,
                           settings=SimulationSettings(calibration=cal, seed=seed))
    sweep.service_ms = service_ms  # the measured sweep's rates, so levels line up
    return sweep.run(), cal


#: ``--sweep KEY=...`` keys (FC's field names) and the sweep dimension each one sets
SWEEP_KEYS = {"concurrency": "concurrency", **{s.key: s.vary for s in SWEEP_SETTINGS}}


def simulate_sweep(workload: Any, key: str, values: tuple[float, ...],
                   settings: SimulationSettings, *, out: Path,
                   on_level: Callable[[SweepLevel], None] | None = None,
                   warmup_s: float | None = None) -> tuple[Path, dict[str, Any]]:
    """`fcbench simulate WORKLOAD --sweep KEY=v1,v2,...`: one simulated level per value into a
    new sweep folder (sweep.csv in the measured sweep's format, plots/p_cold.png, levels/);
    `on_level` is called with each level as it is done; `warmup_s` is the measured sweep's
    ``--warmup`` (default: one idle timeout).

    ``concurrency`` levels are Poisson at level / mean service time (Little's law), as in
    `fcbench coldstart sweep`; the other keys keep the workload's own arrivals and set that
    field of its function.

    Raises:
        UsageError: an unknown key, a level's function spec refused, no service time to
            assume, or a workload the simulator cannot replay; all before any folder is made.
    """
    from ..results import RunFolder
    from .sweep import new_sweep_dir

    if key not in SWEEP_KEYS:
        raise UsageError(f"cannot sweep {key!r}; use one of {', '.join(SWEEP_KEYS)}")
    specs, _ = workload.scaled_specs()
    if len(specs) != 1:
        raise UsageError("simulate needs a workload with a local target serving one function")
    spec = specs[0]
    config = SweepConfig(levels=values, vary=SWEEP_KEYS[key], duration_s=workload.duration,  # type: ignore[arg-type]
                         seed=workload.seed if workload.seed is not None else settings.seed,
                         virtual_gpus=getattr(workload.target, "virtual_gpus", None),
                         warmup_s=warmup_s)
    sweep = SimulatedSweep(spec, config, Path(out), settings=settings, on_level=on_level)
    if not workload.plan_obj().open_loop and config.vary != "concurrency":
        raise UsageError("simulate replays open-loop plans (poisson, constant, uniform, burst, "
                         "diurnal, trace); a closed-loop plan depends on measured answers")
    if sweep.service_ms is None:  # refused here, before the folder, when nothing says
        sweep.service_ms = _mean_service_ms(spec, settings)
    for value in values:  # every level's function checked before anything is written
        try:
            function_spec_from_dict(sweep._level_spec(value)[0], source="--sweep")
        except SpecError as exc:
            where = f"{exc.path}: " if exc.path else ""
            raise UsageError(f"--sweep {key}={value:g}: {where}{exc.message}") from None
    run_dir = new_sweep_dir(out, f"simsweep-{workload.name}")
    sweep.run_dir = run_dir
    sweep.plan_doc = workload.plan.model_dump(by_alias=True, exclude_none=True, mode="json")
    folder = RunFolder(run_dir)
    folder.write_run_yaml(kind="simulated", doc={
        "title": f"Simulated P(cold) vs {key}: {workload.name}",
        "experiment": sweep.name, "vary": config.vary, "levels": list(values),
        "service_ms": sweep.service_ms, "times_from": times_source(spec, settings),
        "workload": workload.to_run_yaml(),
        "calibration": settings.calibration.describe() if settings.calibration else None})
    summary = sweep.process(sweep.run())
    from ..report.html import write_report

    folder.finish(report=write_report)
    return run_dir, summary


def _mean_service_ms(spec: FunctionSpec, settings: SimulationSettings) -> float:
    """The mean of the service-time distribution the simulation will draw from (for the
    concurrency → rate conversion), estimated from draws so every form is covered."""
    import statistics

    from ..sim.run import service_sampler

    draw = service_sampler(spec, settings)
    return statistics.fmean(draw() for _ in range(2000))
