"""Cold start as a function of size: each phase fitted as intercept + slope × size (MB), and the
fit read back to predict a size not measured. Pure: numbers in, numbers out (no I/O but `fit.json`).

Key names: `LinearFit` (one phase's line), `fit_line` (least squares), `SizeFit` (every phase's
line along one axis: ``model`` or ``image`` size), `fit_sizes` (from per-size samples),
`read_fit` / `SizeFit.to_doc` (`fit.json`), `Prediction`, `predict` (one or two fits at given
sizes), `startup_distribution` (the predicted start-up as a distribution the simulator draws).

A size is MB of 2^20 bytes (a GB is 1024 MB, as GPU memory is). `fit.json` is keyed by phase
name; next to the phases it holds two sums fitted the same way: ``e2e`` (the whole cold request)
and ``startup`` (the in-instance start-up the simulator draws: `fcbench.measures.startup_phase`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import UsageError
from ..measures import implied_mb_s, startup_phase

__all__ = ["AXES", "LinearFit", "Prediction", "SizeFit", "fit_line", "fit_sizes", "predict",
           "read_fit", "startup_distribution"]

Axis = Literal["model", "image"]
#: What a size sweep varies: the model file's size, or the container image's.
AXES: tuple[Axis, ...] = ("model", "image")
#: The sums fitted next to the phases (keys of fit.json that are not phases).
TOTALS = ("e2e", "startup")


@dataclass(frozen=True)
class LinearFit:
    """One phase: ``ms = intercept_ms + ms_per_MB × size``, over `sizes_mb` (`n` samples).

    `r2` is None when the phase does not vary at all (nothing to explain); `residual_sd_ms` is
    the samples' spread around the line (n − 2 degrees of freedom; 0 with two samples)."""

    intercept_ms: float
    ms_per_mb: float
    r2: float | None
    residual_sd_ms: float
    n: int
    axis: Axis
    sizes_mb: tuple[float, ...]

    @property
    def mb_per_s(self) -> float | None:
        """The bandwidth the slope implies (`fcbench.measures.implied_mb_s`)."""
        return implied_mb_s(self.ms_per_mb)

    def at(self, size_mb: float) -> float:
        """The line's value at `size_mb` (ms)."""
        return self.intercept_ms + self.ms_per_mb * size_mb

    def to_doc(self) -> dict[str, Any]:
        return {"intercept_ms": round(self.intercept_ms, 4), "ms_per_MB": round(self.ms_per_mb, 6),
                "r2": None if self.r2 is None else round(self.r2, 6),
                "MB_per_s": None if self.mb_per_s is None else round(self.mb_per_s, 3),
                "residual_sd_ms": round(self.residual_sd_ms, 4), "n": self.n,
                "axis": self.axis, "sizes_MB": list(self.sizes_mb)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> LinearFit:
        return cls(float(doc["intercept_ms"]), float(doc["ms_per_MB"]),
                   None if doc.get("r2") is None else float(doc["r2"]),
                   float(doc.get("residual_sd_ms") or 0.0), int(doc.get("n") or 0),
                   doc["axis"], tuple(float(x) for x in doc["sizes_MB"]))


def fit_line(sizes_mb: Sequence[float], values_ms: Sequence[float], *, axis: Axis = "model"
             ) -> LinearFit:
    """Ordinary least squares of `values_ms` on `sizes_mb` (one pair per sample).

    Raises:
        ValueError: fewer than two distinct sizes (no line to draw), or lengths that differ.
    """
    if len(sizes_mb) != len(values_ms):
        raise ValueError(f"{len(sizes_mb)} sizes but {len(values_ms)} values")
    xs = [float(x) for x in sizes_mb]
    ys = [float(y) for y in values_ms]
    distinct = sorted(set(xs))
    if len(distinct) < 2:
        raise ValueError("a fit against size needs at least two different sizes; got "
                         + (", ".join(f"{x:g} MB" for x in distinct) or "none"))
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    r2 = None if ss_tot == 0 else 1.0 - ss_res / ss_tot
    sd = math.sqrt(ss_res / (n - 2)) if n > 2 else 0.0
    return LinearFit(intercept, slope, r2, sd, n, axis, tuple(distinct))


@dataclass(frozen=True)
class SizeFit:
    """Every phase's line along one axis (and the ``e2e`` / ``startup`` sums), by name."""

    axis: Axis
    phases: dict[str, LinearFit]

    @property
    def sizes_mb(self) -> tuple[float, ...]:
        return next(iter(self.phases.values())).sizes_mb if self.phases else ()

    def to_doc(self) -> dict[str, Any]:
        """`fit.json`'s content: ``{phase: {"intercept_ms", "ms_per_MB", "r2", "axis",
        "sizes_MB", ...}}``."""
        return {name: fit.to_doc() for name, fit in self.phases.items()}


def fit_sizes(samples: Iterable[tuple[float, Mapping[str, float | None]]], *, axis: Axis,
              phase_names: Sequence[str]) -> SizeFit:
    """Fit every phase of `phase_names` (and the ``e2e`` and ``startup`` sums) over samples
    of (size MB, {phase: ms}); a phase unknown (None/NaN) in some sample is fitted over the
    samples that know it, and left out where fewer than two sizes know it.

    The ``e2e`` sum is every known phase of a sample (a harness profile's phases add up to
    its e2e, `unattributed` included); ``startup`` those `fcbench.measures.startup_phase` keeps.
    """
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}; got {axis!r}")
    columns: dict[str, tuple[list[float], list[float]]] = {}

    def add(name: str, x: float, y: float) -> None:
        xs, ys = columns.setdefault(name, ([], []))
        xs.append(x)
        ys.append(y)

    for size, phases in samples:
        known = {k: float(v) for k, v in phases.items()
                 if k in phase_names and v is not None and not math.isnan(float(v))}
        for name, value in known.items():
            add(name, size, value)
        if known:
            add("e2e", size, sum(known.values()))
            add("startup", size, sum(v for k, v in known.items() if startup_phase(k)))
    out: dict[str, LinearFit] = {}
    for name in [*phase_names, *TOTALS]:
        if name in columns and len(set(columns[name][0])) >= 2:
            out[name] = fit_line(*columns[name], axis=axis)
    if not out:
        raise ValueError("no phase was measured at two or more sizes; nothing to fit")
    return SizeFit(axis, out)


def read_fit(path: str | Path) -> SizeFit:
    """Read a `fit.json` back (a run folder's or the file itself).

    Raises:
        UsageError: the file is missing or is not a fit (a sentence naming it and the fix).
    """
    p = Path(path)
    if p.is_dir():
        from ..results import layout

        p = p / layout.FIT
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{p} does not exist; make one with `fcbench coldstart profile SPEC "
                         "--model-size 64MB,256MB,1GB` (its run folder holds it)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {p} as a fit ({exc})") from None
    try:
        phases = {str(k): LinearFit.from_doc(v) for k, v in doc.items()}
        axes = {f.axis for f in phases.values()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{p} is not a size fit (each phase needs intercept_ms, ms_per_MB, "
                         f"axis and sizes_MB; {exc!s})") from None
    if len(axes) != 1 or not axes <= set(AXES):
        raise UsageError(f"{p} is not a size fit of one axis (model or image); got "
                         f"{sorted(map(str, axes)) or 'no phase'}")
    return SizeFit(axes.pop(), phases)  # type: ignore[arg-type]


@dataclass
class Prediction:
    """A predicted cold start: ms per phase (and the ``e2e`` / ``startup`` sums), the sizes it
    is for, and which of them lie outside the measured range (extrapolated)."""

    phases_ms: dict[str, float]
    sizes_mb: dict[str, float]
    measured_mb: dict[str, tuple[float, float]]
    extrapolated: list[str] = field(default_factory=list)
    #: the residual spread of the start-up's line (ms), for a distribution around the mean
    startup_sd_ms: float = 0.0

    @property
    def e2e_ms(self) -> float:
        return self.phases_ms["e2e"]

    @property
    def startup_ms(self) -> float:
        return self.phases_ms["startup"]


def predict(fits: Sequence[SizeFit], sizes_mb: Mapping[str, float | None]) -> Prediction:
    """Each phase at the given sizes (``{"model": MB, "image": MB}``).

    One fit: its lines at its axis's size. Two (one per axis, each measured with the other
    axis at the sample's own size): a phase is the model line at the model size plus the
    image line's slope × the image size, or the line of the only fit that has it; the two
    axes are taken to add, independently.

    Raises:
        UsageError: a size for an axis no fit measured, a fit's size missing, two fits of one
            axis.
    """
    by_axis: dict[str, SizeFit] = {}
    for fit in fits:
        if fit.axis in by_axis:
            raise UsageError(f"two fits along {fit.axis} size; give at most one per axis "
                             "(one from --model-size, one from --image-size)")
        by_axis[fit.axis] = fit
    given = {a: float(v) for a, v in sizes_mb.items() if v is not None}
    for axis in given:
        if axis not in by_axis:
            have = ", ".join(sorted(by_axis)) or "none"
            raise UsageError(f"--{axis}-size needs a fit measured along {axis} size "
                             f"(`coldstart profile --{axis}-size ...`); the fit given is along "
                             f"{have} size")
    for axis in by_axis:
        if axis not in given:
            raise UsageError(f"the fit is along {axis} size: give --{axis}-size")
    primary = by_axis.get("model") or by_axis["image"]
    other = by_axis.get("image") if primary.axis == "model" else None
    names = list(dict.fromkeys([*primary.phases, *(other.phases if other else {})]))
    out: dict[str, float] = {}
    for name in names:
        if name in primary.phases:
            value = primary.phases[name].at(given[primary.axis])
            if other is not None and name in other.phases:
                value += other.phases[name].ms_per_mb * given["image"]
        else:
            value = other.phases[name].at(given["image"])  # type: ignore[union-attr]
        out[name] = value
    measured = {a: (min(f.sizes_mb), max(f.sizes_mb)) for a, f in by_axis.items()}
    outside = [a for a, (lo, hi) in measured.items() if not lo <= given[a] <= hi]
    sd = primary.phases["startup"].residual_sd_ms if "startup" in primary.phases else 0.0
    return Prediction(out, {a: given[a] for a in by_axis}, measured, outside, sd)


def startup_distribution(prediction: Prediction) -> str:
    """The predicted start-up as a distribution the simulator reads (ms): normal around the
    line with its residual spread, or the constant when there is none."""
    mean = max(0.0, prediction.startup_ms)
    sd = prediction.startup_sd_ms
    return f"normal:{mean:.3f}:{sd:.3f}" if sd > 0 else f"{mean:.3f}"
