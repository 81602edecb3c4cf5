"""`fcbench coldstart sweep`: cold-start probability vs concurrency (FC's stress-test figure).

Key names: `SweepConfig`, `ColdStartSweep` (experiment: `prepare`, `run`, `process`),
`monotone_within_intervals`. Each level is a real `fcbench run` (Locust against a fresh local
harness); its run folder is kept under the sweep's `levels/`.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


from ..errors import UsageError
from ..spec import FunctionSpec

__all__ = ["SWEEP_FIELDS", "VARY_LABELS", "ColdStartSweep", "SweepConfig", "SweepLevel",
           "monotone_within_intervals", "plot_p_cold", "read_sweep_csv",
           "steady_state", "write_sweep_csv"]


#: what a sweep's levels set, as the x axis and messages name it
VARY_LABELS = {"concurrency": "concurrency (mean requests in flight)",
               "instance-concurrency": "instanceConcurrency", "idle-timeout": "idleTimeout (s)",
               "min-instances": "minInstances"}


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
        floor_ok = (lambda x: x >= 0) if self.vary == "min-instances" else (lambda x: x > 0)
        if not self.levels or not all(floor_ok(level) for level in self.levels):
            raise UsageError(f"{VARY_LABELS[self.vary]} needs one or more "
                             f"{'non-negative' if self.vary == 'min-instances' else 'positive'}"
                             " levels, e.g. 1,2,4,8,16")
        if self.vary in ("instance-concurrency", "min-instances") \
                and any(int(x) != x for x in self.levels):
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


@dataclass
class SweepLevel:
    """One level's outcome (a row of sweep.csv)."""

    level: float
    concurrency: float
    instance_concurrency: int
    rate_rps: float | None
    requests: int  # after the warm-up
    cold: int
    p_cold: float | None
    p_cold_lo: float  # Wilson (independent requests)
    p_cold_hi: float
    p50_ms: float | None
    p99_ms: float | None
    instances: int | None
    errors: int
    run_dir: str = ""
    #: the block-bootstrap interval (cold requests clustered by start): the one to trust
    p_cold_cluster_lo: float = 0.0
    p_cold_cluster_hi: float = 1.0
    #: over the whole level, ramp from zero included, with its cluster interval
    p_cold_from_zero: float | None = None
    p_cold_from_zero_lo: float = 0.0
    p_cold_from_zero_hi: float = 1.0
    level_s: float = 0.0
    steady: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def monotone_within_intervals(levels: list[SweepLevel]) -> bool:
    """True when P(cold) never rises significantly as levels go up: no level's 95% cluster
    (block-bootstrap) interval lies wholly above the interval of a lower level."""
    for i, low in enumerate(levels):
        for high in levels[i + 1:]:
            if high.p_cold is not None and low.p_cold is not None \
                    and high.p_cold_cluster_lo > low.p_cold_cluster_hi:
                return False
    return True


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
        ic = self.spec.instance_concurrency
        # the load when levels set something else: given, else instanceConcurrency's largest
        # level (every slot of the biggest instance busy), else one request in flight
        concurrency = cfg.load if cfg.load is not None else \
            (max(cfg.levels) if cfg.vary == "instance-concurrency" else 1.0)
        if cfg.vary == "instance-concurrency":
            ic = int(level)
        elif cfg.vary == "idle-timeout":
            harness["idleTimeout"] = level
        elif cfg.vary == "min-instances":
            harness["minInstances"] = int(level)
        else:
            concurrency = level
        doc = {**self.spec.to_fc(), "instanceConcurrency": ic, "harness": harness}
        return doc, concurrency, ic

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
        from ..load.runner import run_workload
        from ..report.summary import load_requests

        if self.target_config is not None:
            # from zero, as a fresh harness starts: every instance of the last level retired
            with self._open_target() as target:
                target.force_cold()
        result = run_workload(workload, out_dir=self.run_dir / "levels", progress=False)
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
        pc = s.get("p_cold") or {}
        zero = whole.get("p_cold") or {}
        lat = s.get("latency_ms") or {}
        return SweepLevel(
            level=level, concurrency=concurrency, instance_concurrency=ic, rate_rps=rate,
            requests=int(s.get("count", 0)), cold=int(s.get("cold_starts", 0)),
            p_cold=pc.get("value"), p_cold_lo=float(pc.get("lo", 0.0)),
            p_cold_hi=float(pc.get("hi", 1.0)), p50_ms=lat.get("p50"), p99_ms=lat.get("p99"),
            instances=run_summary.get("instances_started"), errors=int(s.get("errors", 0)),
            run_dir=str(Path(run_dir).relative_to(self.run_dir)),
            p_cold_cluster_lo=float((pc.get("cluster") or {}).get("lo", 0.0)),
            p_cold_cluster_hi=float((pc.get("cluster") or {}).get("hi", 1.0)),
            p_cold_from_zero=zero.get("value"),
            p_cold_from_zero_lo=float((zero.get("cluster") or {}).get("lo", 0.0)),
            p_cold_from_zero_hi=float((zero.get("cluster") or {}).get("hi", 1.0)),
            level_s=timing.level_s, steady=timing.steady)

    # ---- process ----------------------------------------------------------------------------
    def process(self, levels: list[SweepLevel], *,
                predicted: list[SweepLevel] | None = None) -> dict[str, Any]:
        """Write sweep.csv, plots/p_cold.png (with the simulator's `predicted` curve when given,
        whose levels go to predicted.csv), summary.json; return the summary."""
        fields = SWEEP_FIELDS
        write_sweep_csv(levels, self.run_dir / "sweep.csv")
        if predicted is not None:
            write_sweep_csv(predicted, self.run_dir / "predicted.csv")
        (self.run_dir / "plots").mkdir(exist_ok=True)
        plot_p_cold(levels, self.run_dir / "plots" / "p_cold.png", vary=self.config.vary,
                    title=f"Cold-start probability: {self.spec.name}", predicted=predicted,
                    predicted_label="simulator, calibrated on these runs")
        summary = {"experiment": self.name, "function": self.spec.name,
                   "vary": self.config.vary, "mode": self.config.mode,
                   "warmup_s": self.timing.warmup_s, "level_s": self.timing.level_s,
                   "steady": self.timing.steady, "timing": self.timing.note,
                   "service_ms": self.service_ms,
                   "monotone_within_intervals": monotone_within_intervals(levels),
                   "levels": [{k: _round(getattr(lv, k)) for k in fields} for lv in levels]}
        if predicted is not None:
            summary["predicted"] = [{k: _round(getattr(lv, k)) for k in fields}
                                    for lv in predicted]
        from ..report.rundir import RunFolder

        RunFolder(self.run_dir).write_summary(summary)
        return summary


#: sweep.csv's columns, measured and predicted alike
SWEEP_FIELDS = ["level", "concurrency", "instance_concurrency", "rate_rps", "requests", "cold",
                "p_cold", "p_cold_lo", "p_cold_hi", "p_cold_cluster_lo", "p_cold_cluster_hi",
                "p_cold_from_zero", "p_cold_from_zero_lo", "p_cold_from_zero_hi", "level_s",
                "steady", "p50_ms", "p99_ms", "instances", "errors", "run_dir"]


def write_sweep_csv(levels: list[SweepLevel], path: Path) -> Path:
    """One row per level, `SWEEP_FIELDS` columns."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SWEEP_FIELDS)
        writer.writeheader()
        for lv in levels:
            writer.writerow({k: _round(getattr(lv, k)) for k in SWEEP_FIELDS})
    return path


def read_sweep_csv(path: Path) -> list[SweepLevel]:
    """The levels of a sweep.csv (as `write_sweep_csv` wrote them)."""
    def num(text: str) -> float | None:
        return float(text) if text not in ("", "None", "nan") else None

    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.append(SweepLevel(
                level=float(row["level"]), concurrency=float(row["concurrency"]),
                instance_concurrency=int(float(row["instance_concurrency"])),
                rate_rps=num(row["rate_rps"]), requests=int(float(row["requests"])),
                cold=int(float(row["cold"])), p_cold=num(row["p_cold"]),
                p_cold_lo=float(row["p_cold_lo"]), p_cold_hi=float(row["p_cold_hi"]),
                p50_ms=num(row["p50_ms"]), p99_ms=num(row["p99_ms"]),
                instances=int(float(row["instances"])) if num(row["instances"]) is not None
                else None, errors=int(float(row["errors"])), run_dir=row["run_dir"],
                p_cold_cluster_lo=float(row["p_cold_cluster_lo"]),
                p_cold_cluster_hi=float(row["p_cold_cluster_hi"]),
                p_cold_from_zero=num(row["p_cold_from_zero"]),
                p_cold_from_zero_lo=float(row["p_cold_from_zero_lo"]),
                p_cold_from_zero_hi=float(row["p_cold_from_zero_hi"]),
                level_s=float(row["level_s"]), steady=row["steady"] == "True"))
    return out


def steady_state(frames: list[Any], warmup_s: float, *, first_offset: float = 0.0
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Summaries of a level: of the requests intended `warmup_s` or more after the plan's start
    (the first arrival minus its offset), and of the whole level from zero. Several frames are
    replications of the level: each is cut at its own start, then they are summarised together
    (in order, so the block bootstrap keeps each one's clusters)."""
    import pandas as pd

    from ..report.summary import summarize

    steady = []
    for df in frames:
        if len(df) and warmup_s > 0:
            start = df["intended_ts"].min() - first_offset
            df = df[df["intended_ts"] >= start + warmup_s]
        steady.append(df)
    both = [pd.concat(f, ignore_index=True) if len(f) > 1 else f[0] for f in (steady, frames)]
    return summarize(both[0]), summarize(both[1])


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def plot_p_cold(levels: list[SweepLevel], path: Path, *, vary: str, title: str,
                predicted: list[SweepLevel] | None = None,
                predicted_label: str = "simulator") -> Path:
    """P(cold) = cold / requests sent vs level, with 95% block-bootstrap interval bars
    (clustered cold requests kept together); the simulator's curve with its interval band when
    `predicted` is given; for concurrency sweeps a 1/c reference through the first level."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    log_x = vary != "min-instances" and all(lv.level > 0 for lv in levels + (predicted or []))
    xs_all: list[float] = []
    pts = [lv for lv in levels if lv.p_cold is not None]
    if pts:
        xs = [lv.level for lv in pts]
        ys = [lv.p_cold for lv in pts]
        xs_all += xs
        err = [[max(0.0, y - lv.p_cold_cluster_lo) for y, lv in zip(ys, pts)],
               [max(0.0, lv.p_cold_cluster_hi - y) for y, lv in zip(ys, pts)]]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, color="tab:blue",
                    label="measured P(cold) = cold / requests sent, 95% block-bootstrap")
        for lv in pts:
            ax.annotate(f"{lv.cold}/{lv.requests}", (lv.level, lv.p_cold), fontsize=7,
                        textcoords="offset points", xytext=(4, 6))
        if vary == "concurrency" and ys[0] and len(xs) > 1:
            ref = [ys[0] * xs[0] / x for x in xs]
            ax.plot(xs, ref, ":", color="0.4", label=f"∝ 1/c through c = {xs[0]:g}")
    sim = [lv for lv in predicted or [] if lv.p_cold is not None]
    if sim:
        sx = [lv.level for lv in sim]
        xs_all += sx
        ax.fill_between(sx, [lv.p_cold_cluster_lo for lv in sim],
                        [lv.p_cold_cluster_hi for lv in sim], color="tab:orange", alpha=0.2,
                        label=f"{predicted_label}: 95% block-bootstrap")
        ax.plot(sx, [lv.p_cold for lv in sim], "s--", color="tab:orange",
                label=f"{predicted_label} P(cold)")
    if xs_all:
        ticks = sorted(set(xs_all))
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
    ax.set_ylim(bottom=0)
    ax.set_xlabel(VARY_LABELS.get(vary, vary))
    ax.set_ylabel("cold-start probability")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
