"""The cold-start roofline: each measured phase held against the fastest this machine can do
the same work (`fcbench.coldstart.limits`), and the share of the cold start above the floors.

Key names: `RooflineRow`, `roofline_rows` (pure: a profile's medians and the limits in, rows
out), `won` (what could be won), `write_roofline` (roofline.csv, limits.json,
plots/roofline.png), `roofline_lines` (the terminal table).

A phase may have several floor rows (model_load: the cold read, the warm read and the format's
own load of the same bytes); each is a lower bound on its own, so the phase's floor is the
largest of them (the tightest). Floors of phases that move bytes are bytes / bandwidth. A phase
with no floor row (schedule, ready, transit, ...) keeps a row without one, and its time is
counted apart: neither won nor floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..tables import column_lines
from .limits import Limit

if TYPE_CHECKING:
    from .profile import ProfileResult

__all__ = ["Roofline", "RooflineRow", "phase_floors", "roofline_lines", "roofline_rows", "won",
           "write_roofline"]

NO_FLOOR = "no floor measured"


@dataclass(frozen=True)
class RooflineRow:
    """One phase against one floor (`floor_ms` None: no floor, `floor_source` says why)."""

    phase: str
    measured_ms: float | None
    floor_ms: float | None
    ratio: float | None
    floor_source: str

    def csv_row(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _value(limits: Mapping[str, Limit], key: str) -> float | None:
    lim = limits.get(key)
    return None if lim is None else lim.value


def _bytes_ms(nbytes: float | None, mbps: float | None) -> float | None:
    """Milliseconds to move `nbytes` at `mbps` (10^6 bytes/s)."""
    if not nbytes or not mbps or mbps <= 0 or math.isinf(mbps):
        return None
    return nbytes / 1e6 / mbps * 1000.0


def _row(phase: str, measured: float | None, floor: float | None, source: str) -> RooflineRow:
    ratio = measured / floor if measured is not None and floor else None
    return RooflineRow(phase, measured, floor, ratio, source)


def _why(limits: Mapping[str, Limit], key: str) -> str:
    lim = limits.get(key)
    return f"{key}: not measured ({lim.reason})" if lim is not None and lim.reason \
        else f"{key}: not measured"


def roofline_rows(medians: Mapping[str, float | None], limits: Mapping[str, Limit], *,
                  runtime: str, pull: bool, pull_bytes: float | None = None
                  ) -> list[RooflineRow]:
    """The roofline's rows, in phase order.

    Args:
        medians: the profile's median per phase (ms; None or absent: not measured), in order.
        limits: `measure_limits`' result, by key.
        runtime: ``process`` or ``docker``.
        pull: whether each cold start pulled its image (``--pull``).
        pull_bytes: the compressed bytes a start downloaded (median), for the pull floors.
    """
    rows: list[RooflineRow] = []

    def add(phase: str, key: str, floor: float | None, source: str) -> None:
        if floor is None:
            source = _why(limits, key)
        rows.append(_row(phase, medians.get(phase), floor, source))

    model_bytes = _value(limits, "model_bytes")
    mb = f"{(model_bytes or 0) / 1e6:.1f} MB"
    for phase, measured in medians.items():
        if phase in ("e2e", "warm", "cold_penalty"):
            continue
        before = len(rows)
        if phase == "process_start" and runtime == "process":
            add(phase, "python_boot_ms", _value(limits, "python_boot_ms"),
                "python_boot_ms: a bare python -c, spawn to first line")
        elif phase == "runtime_boot" and runtime == "process":
            add(phase, "python_import_ms", _value(limits, "python_import_ms"),
                "python_import_ms: the same imports in a fresh interpreter")
        elif phase == "model_load" and model_bytes:
            add(phase, "disk_read_cold_MBps",
                _bytes_ms(model_bytes, _value(limits, "disk_read_cold_MBps")),
                f"{mb} / disk_read_cold_MBps")
            add(phase, "disk_read_warm_MBps",
                _bytes_ms(model_bytes, _value(limits, "disk_read_warm_MBps")),
                f"{mb} / disk_read_warm_MBps")
            deser = _value(limits, "deserialise_ms")
            add(phase, "deserialise_ms", deser,
                "deserialise_ms: the format's own load of the bytes")
            loader = _value(limits, "loader_import_ms")
            if loader is not None and deser is not None:
                add(phase, "loader_import_ms", loader + deser,
                    "loader_import_ms + deserialise_ms: import the loader, then load")
            if "h2d_pinned_MBps" in limits:
                add(phase, "h2d_pinned_MBps",
                    _bytes_ms(model_bytes, _value(limits, "h2d_pinned_MBps")),
                    f"{mb} / h2d_pinned_MBps")
        elif phase == "image_pull" and runtime == "docker":
            if not pull:
                rows.append(_row(phase, measured, None, "image pull was not part of the "
                                 "start (no --pull: the image was on this machine)"))
            elif not pull_bytes:
                rows.append(_row(phase, measured, None, "the pull downloaded no bytes (every "
                                 "layer was already on this machine, e.g. shared with another "
                                 "image): no bytes to hold against a floor"))
            else:
                layer_bytes = _value(limits, "image_layer_bytes")
                image_bytes = _value(limits, "image_bytes")
                pulled = f"{(pull_bytes or 0) / 1e6:.1f} MB"
                add(phase, "registry_pull_MBps",
                    _bytes_ms(pull_bytes, _value(limits, "registry_pull_MBps")),
                    f"{pulled} / registry_pull_MBps")
                # the uncompressed bytes of the layers pulled: the image's size in proportion
                # to the compressed bytes downloaded (shared layers are not pulled)
                unpacked = image_bytes * min(1.0, pull_bytes / layer_bytes) \
                    if image_bytes and layer_bytes and pull_bytes else None
                add(phase, "disk_write_MBps",
                    _bytes_ms(unpacked, _value(limits, "disk_write_MBps")),
                    f"{(unpacked or 0) / 1e6:.1f} MB unpacked / disk_write_MBps")
        elif phase in ("container_create", "container_start") and runtime == "docker":
            key = f"{phase}_ms"
            add(phase, key, _value(limits, key), f"{key}: a minimal container running true")
        elif phase == "first_inference":
            add(phase, "warm_inference_ms", _value(limits, "warm_inference_ms"),
                "warm_inference_ms: the same request, warm")
        if len(rows) == before and measured is not None:
            why = " (the container's own interpreter: not measured)" \
                if runtime == "docker" and phase in ("process_start", "runtime_boot") else ""
            rows.append(_row(phase, measured, None, NO_FLOOR + why))
    return rows


def phase_floors(rows: Sequence[RooflineRow]) -> dict[str, tuple[float | None, float]]:
    """Each phase's measured median and its tightest floor (the largest floor row)."""
    out: dict[str, tuple[float | None, float]] = {}
    for r in rows:
        if r.floor_ms is None:
            continue
        prev = out.get(r.phase)
        out[r.phase] = (r.measured_ms, max(r.floor_ms, prev[1] if prev else 0.0))
    return out


def won(rows: Sequence[RooflineRow], e2e_ms: float) -> dict[str, Any]:
    """What could be won: the time above the floors, summed over the phases that have one, as
    ms and as a share of the median cold start; plus the share in phases without a floor."""
    floors = phase_floors(rows)
    above = {p: max(0.0, (m or 0.0) - f) for p, (m, f) in floors.items()}
    floor_sum = sum(f for _, f in floors.values())
    unfloored = {r.phase: r.measured_ms or 0.0 for r in rows
                 if r.phase not in floors and r.measured_ms is not None}

    def share(ms: float) -> float | None:
        return 100.0 * ms / e2e_ms if e2e_ms > 0 else None

    return {"e2e_ms": e2e_ms, "won_ms": sum(above.values()), "won_pct": share(sum(above.values())),
            "floor_ms": floor_sum, "floor_pct": share(floor_sum),
            "no_floor_ms": sum(max(0.0, v) for v in unfloored.values()),
            "no_floor_pct": share(sum(max(0.0, v) for v in unfloored.values())),
            "above_floor_ms": above}


def medians_of(result: ProfileResult) -> dict[str, float | None]:
    """The profile's median per phase, in phase order (None where not measured)."""
    return {n: (result.stats.get(n) or {}).get("median") for n in result.phase_names}


def write_roofline(folder: Any, rows: Sequence[RooflineRow], limits: Mapping[str, Limit],
                   gain: Mapping[str, Any], *, title: str) -> None:
    """roofline.csv, limits.json and plots/roofline.png into the RunFolder `folder`."""
    from ..results import layout

    folder.write_csv(layout.ROOFLINE, list(RooflineRow.__dataclass_fields__),
                     [r.csv_row() for r in rows])
    folder.write_json(layout.LIMITS, {k: lim.doc() for k, lim in limits.items()})
    folder.plots.mkdir(exist_ok=True)
    plot_roofline(rows, gain, folder.plots / "roofline.png", title=title)


def plot_roofline(rows: Sequence[RooflineRow], gain: Mapping[str, Any], path: Path,
                  title: str = "") -> Path:
    """Each phase's measured bar beside its tightest floor, and a bar of the whole cold start
    split into floor / could be won / no floor."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = phase_floors(rows)
    phases = [p for p in dict.fromkeys(r.phase for r in rows)
              if p in floors or any(r.phase == p and (r.measured_ms or 0) > 0.5 for r in rows)]
    measured = {r.phase: r.measured_ms or 0.0 for r in rows}
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(9, 6.5), height_ratios=[3, 1])
    ys = range(len(phases))
    ax.barh([y + 0.2 for y in ys], [max(0.0, measured[p]) for p in phases], height=0.4,
            label="measured (median)", color="tab:blue")
    ax.barh([y - 0.2 for y in ys], [floors[p][1] if p in floors else 0.0 for p in phases],
            height=0.4, label="floor (this machine)", color="tab:green")
    for y, p in zip(ys, phases):
        if p not in floors:
            ax.text(0, y - 0.2, " no floor", va="center", fontsize=7, color="grey")
    ax.set_yticks(list(ys), phases)
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Cold-start roofline")
    parts = [("floor", gain.get("floor_ms") or 0.0, "tab:green"),
             ("could be won", gain.get("won_ms") or 0.0, "tab:red"),
             ("no floor", gain.get("no_floor_ms") or 0.0, "tab:grey")]
    left = 0.0
    for label, ms, color in parts:
        bx.barh([0], [ms], left=left, color=color, label=f"{label} {ms:.0f} ms")
        left += ms
    won_pct = gain.get("won_pct")
    bx.set_title(f"cold start (median e2e {gain.get('e2e_ms', 0):.0f} ms): "
                 + (f"{won_pct:.0f} % above the floors" if won_pct is not None else ""),
                 fontsize=9)
    bx.set_yticks([])
    bx.set_xlabel("ms")
    bx.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cell(x: float | None, fmt: str = ".1f") -> str:
    return "—" if x is None else format(x, fmt)


def roofline_lines(rows: Sequence[RooflineRow], gain: Mapping[str, Any]) -> list[str]:
    """The roofline as a terminal table, then the won share."""
    head = ["phase", "measured ms", "floor ms", "ratio", "floor"]
    body = [[r.phase, _cell(r.measured_ms), _cell(r.floor_ms),
             "—" if r.ratio is None else f"{r.ratio:.1f}×", r.floor_source] for r in rows]
    lines = column_lines(head, body, align="left", strip=True)

    def pct(key: str) -> str:
        return "?" if gain.get(key) is None else f"{gain[key]:.0f} %"

    lines.append(f"could be won: {gain['won_ms']:.0f} ms of the median cold start "
                 f"{gain['e2e_ms']:.0f} ms ({pct('won_pct')}) is above the floors; floors "
                 f"{gain['floor_ms']:.0f} ms ({pct('floor_pct')}); phases without a floor "
                 f"{gain['no_floor_ms']:.0f} ms ({pct('no_floor_pct')})")
    return lines


@dataclass
class Roofline:
    """A profile's roofline: its rows, the limits they used and what could be won."""

    rows: list[RooflineRow]
    limits: dict[str, Limit]
    gain: dict[str, Any]
    runtime: str
    pull: bool

    @classmethod
    def of(cls, result: ProfileResult, limits: dict[str, Limit], *, runtime: str,
           pull: bool) -> Roofline:
        """The roofline of `result`'s kept cold starts (their medians) against `limits`."""
        pull_block = result.summary().get("pull") or {}
        rows = roofline_rows(medians_of(result), limits, runtime=runtime, pull=pull,
                             pull_bytes=pull_block.get("median_bytes"))
        e2e = (result.stats.get("e2e") or {}).get("median") or 0.0
        return cls(rows, limits, won(rows, e2e), runtime, pull)

    def summary(self) -> dict[str, Any]:
        """The section summary.json gets under ``roofline``."""
        return {"runtime": self.runtime, "pull": self.pull,
                "rows": [r.csv_row() for r in self.rows], **self.gain,
                "limits": {k: lim.doc() for k, lim in self.limits.items()}}

    def write(self, folder: Any, *, title: str) -> None:
        write_roofline(folder, self.rows, self.limits, self.gain, title=title)

    def lines(self) -> list[str]:
        return roofline_lines(self.rows, self.gain)
