"""`fcbench coldstart profile`: force N cold starts and split each into phases.

Key names: `ProfileConfig`, `ColdStartProfile` (experiment: `prepare`, `run`, `process`),
`Sample`, `ProfileResult`. Each forced-cold sample is checked really to be cold; wrong (warm) and
failed samples are kept as counted categories, and warm-up samples are dropped explicitly.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UsageError
from ..measures import phase_mode, phase_stats
from ..protocol import InvocationRecord, fc_error_message
from ..targets.base import ColdStartMethod, Target
from .phases import HEADER_PHASES, PHASES, clock_errors, split_with_harness, split_with_headers

__all__ = ["ColdStartProfile", "ProfileConfig", "ProfileResult", "Sample", "write_outputs"]


@dataclass(frozen=True)
class ProfileConfig:
    """How to profile.

    Args:
        repeats: cold starts to keep (after warm-up).
        warmup: cold starts to run first and drop (page cache, first imports).
        force: how to force a cold start: ``target`` (ask the target: the harness reclaims, a
            URL target waits out its idle wait), ``reclaim`` (the same, but refuse a target that
            cannot reclaim), ``wait:SECONDS`` (sleep longer than the idle timeout) or ``none``
            (take what comes; the headers tell cold from warm).
        body / content_type: the request.
        timeout: seconds to wait for one response.
    """

    repeats: int = 5
    warmup: int = 1
    force: str = "target"
    body: bytes = b""
    content_type: str = "application/octet-stream"
    timeout: float = 600.0

    def wait_seconds(self) -> float:
        if self.force.startswith("wait:"):
            return float(self.force.split(":", 1)[1])
        return 0.0


@dataclass
class Sample:
    """One forced-cold attempt and the warm request right after it."""

    index: int
    kind: str  # ok | not_cold | failed | warmup
    status: int
    e2e_ms: float
    warm_ms: float | None = None
    instance_id: str = ""
    phases: dict[str, float | None] = field(default_factory=dict)  # None: not measured
    error: str = ""
    pull_bytes: int | None = None
    pull_mb_s: float | None = None

    def row(self, phase_names: list[str]) -> dict[str, Any]:
        penalty = self.e2e_ms - self.warm_ms if self.warm_ms is not None else None
        out: dict[str, Any] = {"index": self.index, "kind": self.kind, "status": self.status,
                               "instance_id": self.instance_id, "e2e_ms": round(self.e2e_ms, 3),
                               "warm_ms": _r(self.warm_ms), "cold_penalty_ms": _r(penalty)}
        for name in phase_names:
            out[f"{name}_ms"] = _r(self.phases.get(name))
        out["pull_bytes"] = self.pull_bytes
        out["pull_mb_s"] = _r(self.pull_mb_s)
        out["error"] = self.error
        return out


def _failure_text(record: InvocationRecord) -> str:
    """The error code and, from an FC-shaped body, its message (which names the log file)."""
    text = record.error or f"HTTP {record.status}"
    message = fc_error_message(record.body)
    return f"{text}: {message}" if message else text


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


@dataclass
class ProfileResult:
    """Processed samples: kept cold starts, counts per category, and per-phase statistics."""

    phase_names: list[str]
    samples: list[Sample]
    counts: dict[str, int]
    stats: dict[str, dict[str, float]]
    mode: str  # harness | headers
    roofline: Any = None  # a `fcbench.coldstart.roofline.Roofline` when one was asked for

    @property
    def kept(self) -> list[Sample]:
        return [s for s in self.samples if s.kind == "ok"]

    def unattributed_pct(self) -> float | None:
        """Median share of e2e that no phase explains (harness mode only)."""
        shares = [abs(s.phases["unattributed"] or 0.0) / s.e2e_ms * 100.0
                  for s in self.kept if s.e2e_ms > 0 and s.phases.get("unattributed") is not None]
        return statistics.median(shares) if shares else None

    def summary(self) -> dict[str, Any]:
        pulls = [s for s in self.kept if s.pull_bytes]
        pull = {"median_bytes": statistics.median(s.pull_bytes for s in pulls),  # type: ignore[misc]
                "median_mb_s": statistics.median(s.pull_mb_s or 0.0 for s in pulls)} \
            if pulls else None
        return {"mode": self.mode, "counts": self.counts, "phases_ms": self.stats, "pull": pull,
                "unattributed_pct_median": self.unattributed_pct(),
                "samples": [asdict(s) for s in self.samples],
                **({"roofline": self.roofline.summary()} if self.roofline is not None else {})}


class ColdStartProfile:
    """Force cold starts of one function and break each into phases.

    Args:
        target: where requests go; it forces the cold starts (`Target.force_cold`) and, when the
            harness API stands behind it, lends the instance timeline for the phases. Without one
            (FC, any black-box URL) phases come from the instance's headers and `platform` is
            the rest.
        config: the profile settings.
        before_cold: called before each forced cold start (e.g. remove the image for a pull).
        on_sample: progress callback.
        use_timeline: use the harness's instance timeline when the target has one.
    """

    name = "coldstart-profile"

    def __init__(self, target: Target, config: ProfileConfig, *,
                 before_cold: Callable[[], None] | None = None,
                 on_sample: Callable[[Sample], None] | None = None,
                 use_timeline: bool = True) -> None:
        if config.repeats < 1 or config.warmup < 0:
            raise ValueError("repeats must be at least 1 and warmup at least 0")
        if config.force not in ("target", "reclaim", "none") and \
                not config.force.startswith("wait:"):
            raise UsageError(f"unknown way to force a cold start {config.force!r}; use target, "
                             "reclaim, wait:SECONDS or none")
        self.target = target
        self.config = config
        self.before_cold = before_cold
        self.on_sample = on_sample
        self.use_timeline = use_timeline

    def prepare(self) -> None:
        """Check the target can force cold starts the way the config asks."""
        method = self.target.cold_start_method
        if self.config.force == "reclaim" and method is not ColdStartMethod.RECLAIM:
            raise UsageError("forcing cold starts by reclaim needs the fcbench harness API next "
                             "to the target; for a plain URL or FC force them by waiting longer "
                             "than the idle timeout (wait:SECONDS) or take what comes (none)")
        if self.config.force == "target" and method is ColdStartMethod.NONE:
            raise UsageError("this target cannot force a cold start by itself; wait longer than "
                             "the idle timeout (wait:SECONDS) or take what comes (none)")

    def _force_cold(self) -> None:
        if self.config.force in ("target", "reclaim"):
            self.target.force_cold()
        elif self.config.force.startswith("wait:"):
            time.sleep(self.config.wait_seconds())
        if self.before_cold is not None:
            self.before_cold()

    def _send(self) -> InvocationRecord:
        return self.target.invoke(self.config.body, self.config.content_type,
                                  self.config.timeout)

    def run(self) -> list[Sample]:
        """Collect `warmup + repeats` forced-cold samples (raw; see `process`)."""
        samples: list[Sample] = []
        total = self.config.warmup + self.config.repeats
        for i in range(total):
            self._force_cold()
            sample = self._sample(i, self._send())
            if i < self.config.warmup and sample.kind == "ok":
                sample.kind = "warmup"
            samples.append(sample)
            if self.on_sample is not None:
                self.on_sample(sample)
        return samples

    def _sample(self, i: int, record: InvocationRecord) -> Sample:
        e2e = record.latency_ms
        if not record.ok:
            return Sample(i, "failed", record.status, e2e, instance_id=record.instance_id,
                          error=_failure_text(record))
        if not record.cold:
            return Sample(i, "not_cold", record.status, e2e, instance_id=record.instance_id)
        harness = self.target.harness_client() if self.use_timeline else None
        inst = harness.instance(record.instance_id) if harness is not None else None
        if inst is not None:
            phases = split_with_harness(record=record, instance=inst)
        else:
            phases = split_with_headers(record=record)
        phases.pop("e2e", None)
        wrong = clock_errors(phases)
        warm = self._send()
        info = (inst or {}).get("runtime_info", {})
        return Sample(i, "ok", record.status, e2e, warm_ms=warm.latency_ms if warm.ok else None,
                      instance_id=record.instance_id,
                      phases={k: (None if math.isnan(v) else v) for k, v in phases.items()},
                      pull_bytes=info.get("pull_bytes"), pull_mb_s=info.get("pull_mb_s"),
                      error=("clock/ordering error: negative " + ", ".join(wrong)) if wrong
                      else "")

    def process(self, samples: list[Sample]) -> ProfileResult:
        """Counts per category and median / quartiles / min / max per phase of kept samples."""
        kept = [s for s in samples if s.kind == "ok"]
        mode = phase_mode(kept)
        names = PHASES if mode == "harness" else HEADER_PHASES
        counts = {k: sum(s.kind == k for s in samples)
                  for k in ("ok", "warmup", "not_cold", "failed")}
        stats = phase_stats(kept, names)
        return ProfileResult(list(names), samples, counts, stats, mode)


def write_outputs(result: ProfileResult, run_dir: Any, *, title: str,
                  config: dict[str, Any]) -> None:
    """`phases.csv`, `plots/phases.png`, `summary.json`, `run.yaml` and `report.html`; with a
    roofline also `roofline.csv`, `limits.json` and `plots/roofline.png`."""
    from ..report.html import write_report
    from ..results import RunFolder, layout
    from .outputs import plot_phases, write_phases_csv

    folder = RunFolder(run_dir)
    folder.plots.mkdir(exist_ok=True)
    write_phases_csv(result, folder.file(layout.PHASES))
    if result.kept:
        plot_phases(result, folder.plots / "phases.png", title=title)
    if result.roofline is not None:
        result.roofline.write(folder, title=f"Roofline: {title.split(': ', 1)[-1]}")
    folder.finish(summary=result.summary(), config={"title": title, **config},
                  kind=ColdStartProfile.name, report=write_report)
