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

__all__ = ["ColdStartSweep", "SweepConfig", "SweepLevel", "monotone_within_intervals"]


@dataclass(frozen=True)
class SweepConfig:
    """How to sweep.

    Args:
        levels: concurrency levels (mean requests in flight), or instanceConcurrency values
            with ``vary="instance-concurrency"``.
        vary: what the levels set.
        load: with ``vary="instance-concurrency"``, the mean requests in flight (default: the
            largest level).
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
    vary: Literal["concurrency", "instance-concurrency"] = "concurrency"
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
        if not self.levels or any(level <= 0 for level in self.levels):
            raise UsageError("--concurrency needs one or more positive levels, e.g. 1,2,4,8,16")
        if self.vary == "instance-concurrency" and any(int(x) != x for x in self.levels):
            raise UsageError("instanceConcurrency levels must be whole numbers")
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

    # ---- prepare --------------------------------------------------------------------------
    def prepare(self) -> float:
        """Measure the warm service time (median of 10 sequential requests) unless given."""
        if self.service_ms is None:
            self.service_ms = self._measure_service_ms()
        return self.service_ms

    def _measure_service_ms(self, n: int = 10) -> float:
        from ..harness.server import HarnessConfig
        from ..targets.local import LocalTarget

        cfg = HarnessConfig(port=0, virtual_gpus=self.config.virtual_gpus,
                            runtime=self.config.runtime, log_dir=self.run_dir / "logs")
        samples = []
        with LocalTarget([self.spec], config=cfg, timeout=self.spec.timeout + 30) as target:
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
        if cfg.vary == "instance-concurrency":
            ic = int(level)
            concurrency = cfg.load if cfg.load is not None else max(cfg.levels)
        else:
            ic = self.spec.instance_concurrency
            concurrency = level
        doc = {**self.spec.to_fc(), "instanceConcurrency": ic,
               "harness": self.spec.harness.model_dump(by_alias=True, exclude_none=True)}
        return doc, concurrency, ic

    def _run_level(self, level: float) -> SweepLevel:
        from ..load.runner import run_workload
        from ..load.workload import Workload

        assert self.service_ms is not None
        spec_doc, concurrency, ic = self._level_spec(level)
        service_s = max(self.service_ms, 0.1) / 1000.0
        if self.config.mode == "open":
            rate = concurrency / service_s
            plan: dict[str, Any] = {"kind": "poisson", "rate": round(rate, 6)}
        else:
            rate = None
            plan = {"kind": "closed", "users": max(1, round(concurrency)), "think": "constant",
                    "thinkS": self.config.think_s}
        target: dict[str, Any] = {"kind": "local", "functions": [spec_doc]}
        if self.config.virtual_gpus:
            target["virtualGpus"] = self.config.virtual_gpus
        if self.config.runtime:
            target["runtime"] = self.config.runtime
        workload_doc = {
            "name": f"level-{level:g}", "target": target,
            "request": {"body": "@request.body", "contentType": self.content_type,
                        "timeout": self.spec.timeout + 30},
            "duration": self.timing.level_s, "seed": self.config.seed, "plan": plan,
        }
        workload = Workload.from_dict(workload_doc, base_dir=self.run_dir,
                                      name=f"level-{level:g}")
        result = run_workload(workload, out_dir=self.run_dir / "levels", progress=False)
        if result.interrupted:
            raise KeyboardInterrupt
        plan_obj = workload.plan_obj()
        first = next(iter(plan_obj.offsets(self.timing.level_s)), 0.0) \
            if plan_obj.open_loop else 0.0  # closed-loop users start at the plan's start
        s, whole = _steady_state(result.requests_csv, self.timing.warmup_s, first_offset=first)
        pc = s.get("p_cold") or {}
        zero = whole.get("p_cold") or {}
        lat = s.get("latency_ms") or {}
        return SweepLevel(
            level=level, concurrency=concurrency, instance_concurrency=ic, rate_rps=rate,
            requests=int(s.get("count", 0)), cold=int(s.get("cold_starts", 0)),
            p_cold=pc.get("value"), p_cold_lo=float(pc.get("lo", 0.0)),
            p_cold_hi=float(pc.get("hi", 1.0)), p50_ms=lat.get("p50"), p99_ms=lat.get("p99"),
            instances=result.summary.get("instances_started"), errors=int(s.get("errors", 0)),
            run_dir=str(result.run_dir.relative_to(self.run_dir)),
            p_cold_cluster_lo=float((pc.get("cluster") or {}).get("lo", 0.0)),
            p_cold_cluster_hi=float((pc.get("cluster") or {}).get("hi", 1.0)),
            p_cold_from_zero=zero.get("value"),
            p_cold_from_zero_lo=float((zero.get("cluster") or {}).get("lo", 0.0)),
            p_cold_from_zero_hi=float((zero.get("cluster") or {}).get("hi", 1.0)),
            level_s=self.timing.level_s, steady=self.timing.steady)

    # ---- process ----------------------------------------------------------------------------
    def process(self, levels: list[SweepLevel]) -> dict[str, Any]:
        """Write sweep.csv, plots/p_cold.png, summary.json; return the summary."""
        fields = ["level", "concurrency", "instance_concurrency", "rate_rps", "requests", "cold",
                  "p_cold", "p_cold_lo", "p_cold_hi", "p_cold_cluster_lo", "p_cold_cluster_hi",
                  "p_cold_from_zero", "p_cold_from_zero_lo", "p_cold_from_zero_hi", "level_s",
                  "steady", "p50_ms", "p99_ms", "instances", "errors", "run_dir"]
        with open(self.run_dir / "sweep.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for lv in levels:
                writer.writerow({k: _round(getattr(lv, k)) for k in fields})
        (self.run_dir / "plots").mkdir(exist_ok=True)
        plot_p_cold(levels, self.run_dir / "plots" / "p_cold.png", vary=self.config.vary,
                    title=f"Cold-start probability: {self.spec.name}")
        summary = {"experiment": self.name, "function": self.spec.name,
                   "vary": self.config.vary, "mode": self.config.mode,
                   "warmup_s": self.timing.warmup_s, "level_s": self.timing.level_s,
                   "steady": self.timing.steady, "timing": self.timing.note,
                   "service_ms": self.service_ms,
                   "monotone_within_intervals": monotone_within_intervals(levels),
                   "levels": [{k: _round(getattr(lv, k)) for k in fields} for lv in levels]}
        from ..report.rundir import RunFolder

        RunFolder(self.run_dir).write_summary(summary)
        return summary


def _steady_state(requests_csv: Path, warmup_s: float, *, first_offset: float = 0.0
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Summaries of a level: of the requests intended `warmup_s` or more after the plan's start
    (the first arrival minus its offset), and of the whole level from zero."""
    from ..report.summary import load_requests, summarize

    df = load_requests(requests_csv)
    whole = summarize(df)
    if len(df) and warmup_s > 0:
        start = df["intended_ts"].min() - first_offset
        df = df[df["intended_ts"] >= start + warmup_s]
    return summarize(df), whole


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def plot_p_cold(levels: list[SweepLevel], path: Path, *, vary: str, title: str) -> Path:
    """P(cold) = cold / requests sent vs level on a log x axis, with 95% block-bootstrap
    interval bars (clustered cold requests kept together)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [lv for lv in levels if lv.p_cold is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if pts:
        xs = [lv.level for lv in pts]
        ys = [lv.p_cold for lv in pts]
        err = [[max(0.0, y - lv.p_cold_cluster_lo) for y, lv in zip(ys, pts)],
               [max(0.0, lv.p_cold_cluster_hi - y) for y, lv in zip(ys, pts)]]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, color="tab:blue",
                    label="P(cold) = cold / requests sent, 95% block-bootstrap interval")
        for lv in pts:
            ax.annotate(f"{lv.cold}/{lv.requests}", (lv.level, lv.p_cold), fontsize=7,
                        textcoords="offset points", xytext=(4, 6))
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("instanceConcurrency" if vary == "instance-concurrency"
                  else "concurrency (mean requests in flight)")
    ax.set_ylabel("cold-start probability")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
