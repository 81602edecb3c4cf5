"""A run's metering as a day: the one day-scaling rule, the one reading of metered instances,
and the instance shape a run is priced at.

Key names: `RunWindow` / `run_window` (how long a run stands for: its planned duration, else its
measured span, and so the scale to a day), `usage_from_instances` (metered instances — a harness
run's ``instances.csv`` or a simulation's rows — over a window, scaled to a day), `run_shape`
(the shape the run recorded), `priced_run` / `PricedRun` (all of it for one run folder),
`usage_from_run`, `output_tokens` (the output tokens a run's answers carried, for the cost per
million output tokens). Measured and simulated runs go through the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..results import RunFolder, layout
from .usage import DAY_S, DailyUsage, Shape

__all__ = ["PricedRun", "RunWindow", "metered_rows", "output_tokens", "priced_run", "run_shape",
           "run_window", "usage_from_instances", "usage_from_run", "window_of"]


@dataclass(frozen=True)
class RunWindow:
    """The stretch of time a run stands for.

    Args:
        seconds: its length; a day is `DAY_S` / seconds of it.
        source: ``planned`` (the run's planned duration) or ``span`` (first request sent to
            last answer, when no planned duration is recorded or the run was cut short).
        why: a sentence for the output.
        end: when metering stops counting (on the clock of the instance rows): the end of the
            planned duration, or the last answer if later; None: no cut.
    """

    seconds: float
    source: str
    why: str
    end: float | None = None

    @property
    def scale(self) -> float:
        """The factor from the run to a day."""
        return DAY_S / self.seconds


def window_of(*, planned_s: float | None, span_s: float, origin: float | None,
              last_ts: float | None, interrupted: bool = False) -> RunWindow:
    """The one day-scaling rule: a run stands for its planned duration — the length of the
    traffic it offered — not for the span between its first and last request (which leaves
    out the quiet start and end of a sparse plan); the span only when no planned duration is
    recorded, or when the run was interrupted. `origin` is the plan's start and `last_ts` the
    last answer, on the clock of the instance rows.

    Raises:
        UsageError: neither a planned duration nor a span longer than 0.
    """
    if planned_s and planned_s > 0 and not interrupted:
        end = None
        if origin is not None:
            end = origin + planned_s if last_ts is None else max(origin + planned_s, last_ts)
        return RunWindow(float(planned_s), "planned",
                         f"its planned duration, {planned_s:g} s (the length of the traffic it "
                         f"offered; its first-to-last request span was {span_s:.1f} s)", end)
    if span_s <= 0:
        raise UsageError("the run records no planned duration and its requests span 0 s; "
                         "nothing to scale to a day")
    why = "it was interrupted before its planned duration" if interrupted and planned_s \
        else "no planned duration is recorded"
    return RunWindow(float(span_s), "span", f"its measured first-to-last request span, "
                     f"{span_s:.1f} s ({why})", last_ts)


def _read_yaml(path: Path) -> dict[str, Any]:
    """A workload or function file as a mapping ({} when absent or unreadable)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _plan_origin(run: Path, first_intended: float | None) -> float | None:
    """When the run's arrival plan started, on the requests' clock: the first intended send
    less the plan's first offset (None when the plan cannot be rebuilt)."""
    if first_intended is None:
        return None
    try:
        from ..load.loader import workload_from_run

        wl = workload_from_run(run)
        first = next(iter(wl.plan_obj().offsets(wl.duration)), None)
    except Exception:  # noqa: BLE001 - a url/fc run, a trace file gone: no origin to cut at
        return None
    return None if first is None else first_intended - float(first)


def run_window(run_dir: str | Path | RunFolder) -> RunWindow:
    """`window_of` for a run folder: the planned duration from run.yaml (``duration_s``, what
    ``fcbench run`` ran; ``workload.duration`` for a simulated run) or summary.json
    (``planned_duration_s``), the span and the first and last times from summary.json."""
    folder = RunFolder.of(run_dir)
    try:
        summary = folder.summary()
    except UsageError:
        summary = {}
    doc = folder.config()
    planned = doc.get("duration_s") or summary.get("planned_duration_s") \
        or (doc.get("workload") or {}).get("duration")
    try:
        planned = float(planned) if planned is not None else None
    except (TypeError, ValueError):
        planned = None
    interrupted = bool(summary.get("interrupted") or doc.get("interrupted"))
    first_intended = None
    if folder.has(layout.REQUESTS) and planned:
        try:
            col = folder.requests()["intended_ts"]
            first_intended = float(col.min()) if len(col) and col.notna().any() else None
        except (ValueError, KeyError):
            first_intended = None
    last = summary.get("last_ts")
    return window_of(planned_s=planned, span_s=float(summary.get("duration_s") or 0.0),
                     origin=_plan_origin(folder.path, first_intended),
                     last_ts=float(last) if last is not None else None,
                     interrupted=interrupted)


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _windowed_idle(row: dict[str, Any], end: float | None) -> float:
    """An instance's idle seconds up to `end`: its alive time (ready to stop, or to when the
    harness listed it) cut at the window's end, less its active seconds."""
    idle = _num(row.get("idle_s")) or 0.0
    ready = _num(row.get("ready_ts"))
    if end is None or ready is None:
        return idle
    active = _num(row.get("active_s")) or 0.0
    stop = _num(row.get("stopped_ts"))
    if stop is None:
        alive = _num(row.get("alive_s"))
        stop = ready + alive if alive is not None else ready + active + idle
    return max(0.0, min(stop, end) - ready - active)


def _provisioned(row: dict[str, Any]) -> bool:
    return str(row.get("provisioned", "")).lower() == "true"


def output_tokens(frame: Any) -> float | None:
    """The output tokens of a run's answered requests: the summary's own count
    (`fcbench.measures.token_summary`, from requests.csv's ``output_tokens``), so a bill per
    token divides by the figure the report shows; None when no request carries a count."""
    from ..measures import outcomes, token_summary

    if frame is None or "output_tokens" not in frame or not len(frame):
        return None
    block = token_summary(frame, outcomes(frame["status"], frame["cold"]), duration_s=0.0)
    total = (block or {}).get("output_tokens")
    return float(total) if total else None


def usage_from_instances(rows: list[dict], *, requests: float, span_s: float | None = None,
                         window: RunWindow | None = None, tokens: float | None = None
                         ) -> tuple[DailyUsage, float]:
    """Metered instances (rows as instances.csv has them: ``active_s``, ``idle_s``,
    ``provisioned``, ``gpu_memory_mb``, and where known ``ready_ts``, ``stopped_ts``,
    ``alive_s``) of a run with `requests` requests (and `tokens` output tokens, when known),
    over `window` (or a plain span of `span_s` seconds), scaled to a day; returns the usage
    and the scale. The one reading of metering, for run folders and in-memory simulations
    alike.

    A provisioned instance is kept all day: its day is its busy time (scaled) and idle for the
    rest — not its metered idle seconds scaled, which would bill the harness's time before the
    first request. An on-demand instance's idle time is cut at the window's end.
    """
    if window is None:
        if not span_s or span_s <= 0:
            raise UsageError("a metered span must be longer than 0 s")
        window = RunWindow(float(span_s), "span", f"a span of {span_s:g} s")
    scale = window.scale
    gb = max((float(r.get("gpu_memory_mb") or 0) for r in rows), default=0.0) / 1024.0
    active = sum(float(r.get("active_s") or 0) for r in rows)
    on_demand_idle = sum(_windowed_idle(r, window.end) for r in rows if not _provisioned(r))
    kept_idle = sum(max(0.0, DAY_S - float(r.get("active_s") or 0) * scale)
                    for r in rows if _provisioned(r))
    source = layout.REQUESTS if any(r.get("metered_from") == "requests" for r in rows) \
        else layout.INSTANCES
    return DailyUsage(invocations=requests * scale, active_s=active * scale,
                      idle_s=on_demand_idle * scale, provisioned_idle_s=kept_idle,
                      gpu_gb=gb, metered_from=source,
                      output_tokens=None if tokens is None else tokens * scale), scale


# -- the shape a run is priced at ----------------------------------------------------------------

def _shape_of_spec(spec: dict[str, Any], source: str) -> Shape:
    """The shape of a function spec as YAML holds it (FC's field names). A spec without
    gpuConfig is a CPU function: GPU 0 GB, known."""
    gpu = spec.get("gpuConfig") or {}
    mb = _num(gpu.get("gpuMemorySize"))
    gpu_type = str(gpu.get("gpuType") or "")
    to_gb = lambda v: None if _num(v) is None else _num(v) / 1024.0  # noqa: E731
    return Shape(gpu_gb=(mb or 0.0) / 1024.0, vcpu=_num(spec.get("cpu")),
                 memory_gb=to_gb(spec.get("memorySize")), disk_gb=to_gb(spec.get("diskSize")),
                 gpu_family=("ada" if "ada" in gpu_type else "tesla") if gpu_type else None,
                 source=source)


def _pick(specs: list[Any], name: str | None) -> dict[str, Any] | None:
    docs = [s for s in specs if isinstance(s, dict)]
    if name:
        named = [s for s in docs if s.get("functionName") == name]
        return named[0] if named else None
    return docs[0] if len(docs) == 1 else None


def _spec_named_by_workload(source: str, name: str | None) -> tuple[dict[str, Any], str] | None:
    """The function spec `name` in the workload file a run was made from (a url or fc run
    sent with ``--target`` keeps its local functions there)."""
    path = Path(source)
    doc = _read_yaml(path)
    target = doc.get("target") if isinstance(doc.get("target"), dict) else {}
    specs: list[Any] = []
    for entry in target.get("functions") or []:
        if isinstance(entry, str):
            loaded = _read_yaml((path.parent / entry).expanduser())
            if loaded:
                specs.append(loaded)
        elif isinstance(entry, dict):
            specs.append(entry)
    spec = _pick(specs, name or target.get("function"))
    return None if spec is None else (spec, str(path))


def run_shape(run_dir: str | Path | RunFolder) -> Shape:
    """The instance shape a run recorded: the function spec it served, as run.yaml recorded it
    (a local or simulated run); for a run against FC or a URL, the spec of that name in the
    workload file it was made from, if that file names one; the GPU memory instances.csv
    metered. `gpu_gb` is None when nothing says (never taken as 0)."""
    folder = RunFolder.of(run_dir)
    doc = folder.config()
    workload = doc.get("workload") if isinstance(doc.get("workload"), dict) else {}
    target = workload.get("target") if isinstance(workload.get("target"), dict) else {}
    name = target.get("function")
    shape = Shape(source="")
    spec = _pick(list(target.get("functionSpecs") or []), name)
    if spec is not None:
        shape = _shape_of_spec(spec, f"the function spec {spec.get('functionName')!r} "
                                     f"recorded in {layout.RUN_YAML}")
    elif target.get("kind") in ("url", "fc"):
        named = _spec_named_by_workload(str(workload.get("source") or ""), name) \
            if workload.get("source") else None
        if named is not None:
            spec, path = named
            shape = _shape_of_spec(spec, f"the function spec {spec.get('functionName')!r} "
                                         f"in the workload file {path} (the run went to its "
                                         f"{target.get('kind')} target)")
        else:
            shape = Shape(source=f"the run went to a {target.get('kind')} target "
                                 f"({target.get('url') or target.get('function') or '?'}), "
                                 f"which meters nothing, and neither {layout.RUN_YAML} nor its "
                                 "workload "
                                 "file names a function spec with a GPU size for it")
    metered = _metered_gpu_gb(folder.instance_rows())
    if metered is not None and metered > 0:
        shape = Shape(metered, shape.vcpu, shape.memory_gb, shape.disk_gb, shape.gpu_family,
                      shape.source or f"the GPU spec {layout.INSTANCES} metered "
                                      f"({layout.RUN_YAML} names no function spec)")
    elif shape.gpu_gb is None and not shape.source:
        shape = Shape(source="the folder records no function spec and meters no GPU spec")
    return shape


def _metered_gpu_gb(rows: list[dict[str, str]] | None) -> float | None:
    if rows is None:
        return None
    sizes = [_num(r.get("gpu_memory_mb")) for r in rows]
    known = [s for s in sizes if s is not None]
    return max(known) / 1024.0 if known else None


# -- a run folder, priced ------------------------------------------------------------------------

@dataclass(frozen=True)
class PricedRun:
    """A run folder's day: the usage (at its shape), the window it was scaled by, the shape
    and where it came from, and what was metered before scaling."""

    usage: DailyUsage
    window: RunWindow
    shape: Shape
    requests: int
    run_active_s: float

    @property
    def scale(self) -> float:
        return self.window.scale


def _rows_from_requests(folder: RunFolder) -> list[dict[str, Any]]:
    """Metering for a run whose target metered nothing (FC, a URL): each instance's busy time
    as its requests saw it (`fcbench.measures.busy_seconds`); idle time is unknown (0)."""
    import numpy as np

    from ..measures import busy_intervals, busy_seconds

    df = folder.requests()
    if df is None or "instance_id" not in df or not len(df):
        return []
    ready: dict[str, float] = {}
    if "ready_ts" in df:
        firsts = df.dropna(subset=["ready_ts"]).groupby("instance_id")["ready_ts"].min()
        ready = {str(k): float(v) for k, v in firsts.items() if np.isfinite(v)}
    busy = busy_seconds(busy_intervals(df["instance_id"].to_numpy(), df["start_ts"],
                                       df["end_ts"], ready_ts=ready))
    return [{"instance_id": i, "active_s": s, "idle_s": 0.0, "provisioned": False,
             "gpu_memory_mb": 0, "metered_from": "requests"} for i, s in busy.items()]


def metered_rows(run_dir: str | Path | RunFolder) -> list[dict[str, Any]]:
    """The run's metered instances: instances.csv, else each instance's busy time from
    requests.csv (a target that meters nothing).

    Raises:
        UsageError: the folder has neither file (with summary.json).
    """
    folder = RunFolder.of(run_dir)
    run = folder.path
    if not folder.has(layout.SUMMARY) or not (folder.has(layout.INSTANCES)
                                              or folder.has(layout.REQUESTS)):
        raise UsageError(f"{run} has no {layout.INSTANCES} or {layout.REQUESTS} (with "
                         f"{layout.SUMMARY}) to price")
    rows = folder.instance_rows()
    if rows is None:
        rows = _rows_from_requests(folder)
    if not rows:
        raise UsageError(f"{run} metered no instance time; nothing to price")
    return rows


def priced_run(run_dir: str | Path | RunFolder, options: Shape | None = None) -> PricedRun:
    """A run folder's metering over its window, scaled to a day, at the shape it recorded with
    `options`' parts over it.

    Raises:
        UsageError: nothing to price, or no GPU spec known (say ``--gpu-mem GB``).
    """
    folder = RunFolder.of(run_dir)
    run = folder.path
    rows = metered_rows(folder)
    summary = folder.summary()
    window = run_window(folder)
    requests = int(summary.get("count") or 0)
    tokens = output_tokens(folder.requests()) if folder.has(layout.REQUESTS) else None
    usage, _ = usage_from_instances(rows, requests=requests, window=window, tokens=tokens)
    shape = run_shape(folder)
    if options is not None:
        shape = options.over(shape)
    if shape.gpu_gb is None:
        raise UsageError(f"{run}: no GPU spec to price ({shape.source}); pass --gpu-mem GB "
                         "(gpuMemorySize / 1024), and --vcpu / --memory-gb / --disk-gb for CU "
                         "tables")
    return PricedRun(usage.with_shape(shape), window, shape, requests,
                     sum(float(r.get("active_s") or 0) for r in rows))


def usage_from_run(run_dir: str | Path | RunFolder, options: Shape | None = None
                   ) -> tuple[DailyUsage, float]:
    """`priced_run`'s usage and scale (see there)."""
    priced = priced_run(run_dir, options)
    return priced.usage, priced.scale
