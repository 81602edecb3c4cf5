"""`fcbench coldstart sweep`: cold-start probability vs concurrency (FC's stress-test figure).

Key names: `SweepConfig`, `ColdStartSweep` (experiment: `prepare`, `run`, `process`),
`new_sweep_dir`. Each level is a real `fcbench run` (Locust against a fresh local harness); its
run folder is kept under the sweep's `levels/`. A level's figures, what they may claim and the
verdict over the levels: `levels`; the plot: `plot`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


from ..errors import UsageError
from ..sim.settings import by_vary
from ..results import layout
from ..spec import FunctionSpec
from .levels import (SWEEP_FIELDS, SweepLevel, level_figures, level_row,
                     monotone_within_intervals, read_sweep_csv, sweep_verdict, write_sweep_csv)
from .plot import VARY_LABELS, plot_p_cold

__all__ = ["SWEEP_FIELDS", "VARY_LABELS", "ColdStartSweep", "SweepConfig", "SweepLevel",
           "monotone_within_intervals", "new_sweep_dir", "plot_p_cold", "read_sweep_csv",
           "steady_state", "sweep_verdict", "write_sweep_csv"]


def new_sweep_dir(out: str | Path, name: str) -> Path:
    """A fresh sweep folder under `out`, as an absolute path: resolved here, once, where it is
    made, because each level's run folder comes back absolute (`run_workload` resolves its own)
    and is recorded relative to this one; a relative `out` (the default ``results``) would not
    contain it."""
    from ..results.rundir import new_run_dir

    return new_run_dir(Path(out), name).resolve()


@dataclass(frozen=True)
class SweepConfig:
    """How to sweep.

    Args:
        levels: concurrency levels (mean requests in flight), or the values of what `vary`
            names: instanceConcurrency, idleTimeout (s) or minInstances.
        vary: what the levels set.
        load: when the levels are not concurrency, the mean requests in flight (default: the
            largest level for instanceConcurrency, else 1).
        duration_s: seconds of load per level.
        service_ms: the function's service time; measured on a warm instance when None.
        mode: ``open`` (Poisson, rate = level / service time: Little's law) or ``closed``
            (level users, each waiting `think_s` between requests).
        warmup_s: seconds from the start of each level's plan whose requests are left out of
            the steady-state P(cold) (the ramp from zero instances; default one idle timeout,
            at most half the level), so the figure shows the steady state, as FC's stress test
            does. The "from zero" P(cold) over the whole level is reported beside it.
        steady_multiple: each level lasts at least this many idle timeouts (default 3), so
            instances are reclaimed and started again within it; 0 keeps `duration_s` as given.
    """

    levels: tuple[float, ...]
    vary: Literal["concurrency", "instance-concurrency", "idle-timeout", "min-instances"] = \
        "concurrency"
    load: float | None = None
    duration_s: float = 60.0
    service_ms: float | None = None
    mode: Literal["open", "closed"] = "open"
    think_s: float = 1.0
    warmup_s: float | None = None
    seed: int = 1
    virtual_gpus: str | None = None
    runtime: str | None = None
    steady_multiple: float = 3.0

    def __post_init__(self) -> None:
        setting = by_vary(self.vary)
        zero_ok = setting is not None and setting.zero_ok
        floor_ok = (lambda x: x >= 0) if zero_ok else (lambda x: x > 0)
        if not self.levels or not all(floor_ok(level) for level in self.levels):
            raise UsageError(f"{VARY_LABELS[self.vary]} needs one or more "
                             f"{'non-negative' if zero_ok else 'positive'}"
                             " levels, e.g. 1,2,4,8,16")
        if setting is not None and setting.whole and any(int(x) != x for x in self.levels):
            raise UsageError(f"{VARY_LABELS[self.vary]} levels must be whole numbers")
        if self.duration_s <= 0:
            raise UsageError("--duration must be positive")
        if self.warmup_s is not None and not 0 <= self.warmup_s < self.duration_s:
            raise UsageError("--warmup must be at least 0 and shorter than --duration")

    def timing(self, idle_timeout_s: float) -> SweepTiming:
        """How long each level runs and what its steady state leaves out, for this idle timeout.

        Levels are extended to `steady_multiple` idle timeouts; with the multiple at 0 they keep
        `duration_s`, and one shorter than a single idle timeout is flagged as not steady."""
        needed = self.steady_multiple * idle_timeout_s
        level_s = max(self.duration_s, needed)
        warmup = min(idle_timeout_s, level_s / 2) if self.warmup_s is None else self.warmup_s
        floor = needed if self.steady_multiple > 0 else idle_timeout_s
        steady = idle_timeout_s > 0 and level_s >= floor
        if idle_timeout_s <= 0:
            note = f"each level runs {level_s:g} s (idleTimeout 0: no steady-state check)"
        elif level_s > self.duration_s:
            note = (f"each level runs {level_s:g} s ({self.steady_multiple:g} × idleTimeout "
                    f"{idle_timeout_s:g} s, for a steady state) instead of {self.duration_s:g} s")
        elif not steady:
            note = (f"levels of {level_s:g} s are shorter than "
                    f"{max(self.steady_multiple, 1):g} × idleTimeout ({idle_timeout_s:g} s): "
                    "P(cold) mostly measures the ramp from zero, not a steady state")
        else:
            note = f"each level runs {level_s:g} s (≥ {floor:g} s of idleTimeouts)"
        return SweepTiming(level_s, warmup, steady, note + f"; steady P(cold) leaves out the "
                           f"first {warmup:g} s from the plan's start")


@dataclass(frozen=True)
class SweepTiming:
    """A sweep's level length and warm-up for one function, and the sentence that says so."""

    level_s: float
    warmup_s: float
    steady: bool
    note: str


class ColdStartSweep:
    """Measure P(cold) at each level for one function on the local harness.

    Args:
        spec: the function.
        config: the sweep settings.
        run_dir: the sweep's (new) folder; level runs go under ``run_dir/levels``.
        body / content_type: the request.
        on_level: progress callback.
    """

    name = "coldstart-sweep"
    #: what the levels are, in the plot's legend and title
    points_label = "measured"
    title = "Cold-start probability"

    def __init__(self, spec: FunctionSpec, config: SweepConfig, run_dir: Path, *,
                 body: bytes = b"", content_type: str = "application/octet-stream",
                 on_level: Callable[[SweepLevel], None] | None = None) -> None:
        self.spec = spec
        self.config = config
        self.run_dir = Path(run_dir)
        self.body = body
        self.content_type = content_type
        self.on_level = on_level
        self.service_ms: float | None = config.service_ms
        self.timing = config.timing(spec.harness.idle_timeout)
        #: an arrival plan (workload YAML form) that levels other than concurrency keep
        self.plan_doc: dict[str, Any] | None = None
        #: a url or fc target config the levels run against instead of a fresh local harness
        #: each; every level then starts with the target's force_cold() (FC: UpdateFunction)
        self.target_config: Any = None

    # ---- prepare --------------------------------------------------------------------------
    def prepare(self) -> float:
        """Measure the warm service time (median of 10 sequential requests) unless given."""
        if self.service_ms is None:
            self.service_ms = self._measure_service_ms()
        return self.service_ms

    def _open_target(self) -> Any:
        """The target one level (or the service-time measurement) sends to: the remote one,
        or a fresh local harness serving the spec."""
        if self.target_config is not None:
            from ..targets import open_target

            return open_target(self.target_config, timeout=self.spec.timeout + 30)
        from ..harness.server import HarnessConfig
        from ..targets.local import LocalTarget

        cfg = HarnessConfig(port=0, virtual_gpus=self.config.virtual_gpus,
                            runtime=self.config.runtime, log_dir=self.run_dir / "logs")
        return LocalTarget([self.spec], config=cfg, timeout=self.spec.timeout + 30)

    def _measure_service_ms(self, n: int = 10) -> float:
        samples = []
        with self._open_target() as target:
            for i in range(n + 1):
                record = target.invoke(self.body, self.content_type)
                if not record.ok:
                    raise UsageError(f"the function answered {record.status or 'nothing'} while "
                                     f"measuring its service time: {record.error}")
                if i:  # the first was the cold start
                    samples.append(record.latency_ms)
        return statistics.median(samples)

    # ---- run --------------------------------------------------------------------------------
    def run(self) -> list[SweepLevel]:
        """Run every level (a fresh harness each), in order."""
        if self.service_ms is None:
            self.prepare()
        (self.run_dir / "levels").mkdir(exist_ok=True)
        (self.run_dir / "request.body").write_bytes(self.body)
        out = []
        for level in self.config.levels:
            result = self._run_level(level)
            out.append(result)
            if self.on_level is not None:
                self.on_level(result)
        return out

    def _level_spec(self, level: float) -> tuple[dict[str, Any], float, int]:
        cfg = self.config
        harness = self.spec.harness.model_dump(by_alias=True, exclude_none=True)
        doc = {**self.spec.to_fc(), "instanceConcurrency": self.spec.instance_concurrency,
               "harness": harness}
        # the load when levels set something else: given, else instanceConcurrency's largest
        # level (every slot of the biggest instance busy), else one request in flight
        concurrency = cfg.load if cfg.load is not None else \
            (max(cfg.levels) if cfg.vary == "instance-concurrency" else 1.0)
        setting = by_vary(cfg.vary)
        if setting is None:  # the load is what varies
            concurrency = level
        else:
            setting.put(doc, level)
        return doc, concurrency, int(doc["instanceConcurrency"])

    def level_timing(self, level: float) -> SweepTiming:
        """The level's length and warm-up: its own idle timeout's when that is what varies."""
        if self.config.vary == "idle-timeout":
            return self.config.timing(level)
        return self.timing

    def level_workload(self, level: float) -> tuple[Any, float, int, float | None]:
        """The workload one level runs (a local target serving the level's spec), its mean
        requests in flight, instanceConcurrency and Poisson rate (None for closed loop)."""
        from ..load.workload import Workload

        assert self.service_ms is not None
        spec_doc, concurrency, ic = self._level_spec(level)
        service_s = max(self.service_ms, 0.1) / 1000.0
        if self.plan_doc is not None and self.config.vary != "concurrency":
            rate = None  # the caller's own arrivals, with the level's setting
            plan: dict[str, Any] = dict(self.plan_doc)
        elif self.config.mode == "open":
            rate = concurrency / service_s
            plan = {"kind": "poisson", "rate": round(rate, 6)}
        else:
            rate = None
            plan = {"kind": "closed", "users": max(1, round(concurrency)), "think": "constant",
                    "thinkS": self.config.think_s}
        if self.target_config is not None:
            if self.config.vary != "concurrency":
                raise UsageError("against a target only the load can vary (--vary "
                                 "concurrency): set instanceConcurrency or a provision config "
                                 "with `fcbench deploy` between sweeps")
            target = self.target_config.model_dump(by_alias=True, exclude_none=True,
                                                   mode="json")
        else:
            target = {"kind": "local", "functions": [spec_doc]}
            if self.config.virtual_gpus:
                target["virtualGpus"] = self.config.virtual_gpus
            if self.config.runtime:
                target["runtime"] = self.config.runtime
        workload_doc = {
            "name": f"level-{level:g}", "target": target,
            "request": {"body": "@request.body", "contentType": self.content_type,
                        "timeout": self.spec.timeout + 30},
            "duration": self.level_timing(level).level_s, "seed": self.config.seed,
            "plan": plan,
        }
        workload = Workload.from_dict(workload_doc, base_dir=self.run_dir,
                                      name=f"level-{level:g}")
        return workload, concurrency, ic, rate

    def execute(self, workload: Any) -> tuple[Path, dict[str, Any], list[Any]]:
        """Run one level's workload into a folder under ``levels/``; returns it, its summary and
        the requests frames to summarise (one per replication; here one, a real `fcbench run`
        against a fresh local harness, or against the target after its force_cold())."""
        from ..load.runner import RunOptions, run_workload
        from ..report.html import write_run_report
        from ..results.summary import load_requests

        if self.target_config is not None:
            # from zero, as a fresh harness starts: every instance of the last level retired
            with self._open_target() as target:
                target.force_cold()
        result = run_workload(workload, options=RunOptions(
            out_dir=self.run_dir / "levels", progress=False, report=write_run_report))
        if result.interrupted:
            raise KeyboardInterrupt
        return result.run_dir, result.summary, [load_requests(result.requests_csv)]

    def _run_level(self, level: float) -> SweepLevel:
        workload, concurrency, ic, rate = self.level_workload(level)
        run_dir, run_summary, frames = self.execute(workload)
        timing = self.level_timing(level)
        plan_obj = workload.plan_obj()
        first = next(iter(plan_obj.offsets(timing.level_s)), 0.0) \
            if plan_obj.open_loop else 0.0  # closed-loop users start at the plan's start
        s, whole = steady_state(frames, timing.warmup_s, first_offset=first)
        return SweepLevel(
            level=level, concurrency=concurrency, instance_concurrency=ic, rate_rps=rate,
            instances=run_summary.get("instances_started"),
            run_dir=str(Path(run_dir).relative_to(self.run_dir)),
            level_s=timing.level_s, steady=timing.steady, **level_figures(s, whole))

    # ---- process ----------------------------------------------------------------------------
    def process(self, levels: list[SweepLevel], *,
                predicted: list[SweepLevel] | None = None) -> dict[str, Any]:
        """Write sweep.csv, plots/p_cold.png (with the simulator's `predicted` curve when given,
        whose levels go to predicted.csv), summary.json; return the summary."""
        write_sweep_csv(levels, self.run_dir / layout.SWEEP)
        if predicted is not None:
            write_sweep_csv(predicted, self.run_dir / layout.PREDICTED)
        (self.run_dir / "plots").mkdir(exist_ok=True)
        plot_p_cold(levels, self.run_dir / "plots" / "p_cold.png", vary=self.config.vary,
                    title=f"{self.title}: {self.spec.name}", points_label=self.points_label,
                    predicted=predicted, predicted_label="simulator, calibrated on these runs")
        verdict = sweep_verdict(levels)
        summary = {"experiment": self.name, "function": self.spec.name,
                   "vary": self.config.vary, "mode": self.config.mode,
                   "warmup_s": self.timing.warmup_s, "level_s": self.timing.level_s,
                   "steady": self.timing.steady, "timing": self.timing.note,
                   "service_ms": self.service_ms,
                   "monotone_within_intervals": verdict["monotone"], "verdict": verdict,
                   "levels": [level_row(lv) for lv in levels]}
        if predicted is not None:
            summary["predicted"] = [level_row(lv) for lv in predicted]
        from ..results import RunFolder

        RunFolder(self.run_dir).write_summary(summary)
        return summary


def steady_state(frames: list[Any], warmup_s: float, *, first_offset: float = 0.0
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Summaries of a level: of the requests intended `warmup_s` or more after the plan's start
    (the first arrival minus its offset), and of the whole level from zero. Several frames are
    replications of the level: each is cut at its own start, then they are summarised together
    (in order, so the block bootstrap keeps each one's clusters)."""
    import pandas as pd

    from ..results.summary import summarize

    steady = []
    for df in frames:
        if len(df) and warmup_s > 0:
            start = df["intended_ts"].min() - first_offset
            df = df[df["intended_ts"] >= start + warmup_s]
        steady.append(df)
    both = [pd.concat(f, ignore_index=True) if len(f) > 1 else f[0] for f in (steady, frames)]
    return summarize(both[0]), summarize(both[1])
