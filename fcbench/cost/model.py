"""What a day of traffic costs on FC, against a GPU server that runs 24 h.

Key names: `DailyUsage` (what a day holds: invocations, billed seconds, the instance's shape),
`usage_from_calls` (calls a day × seconds each), `usage_from_run` (a run folder's metering, scaled
to a day), `daily_cost`, `compare`, `Comparison`. Every figure is in one table's currency; costs
are never negative.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .tables import CuTable, GbSecondTable

__all__ = ["Comparison", "DailyUsage", "compare", "daily_cost", "per_thousand_requests",
           "usage_from_calls", "usage_from_instances", "usage_from_run", "with_spec_shape"]

DAY_S = 86400.0
MONTH_DAYS = 30.0  # CU tiers are monthly: a day is priced as 1/30 of a month of such days


@dataclass(frozen=True)
class DailyUsage:
    """One day of an FC function's usage.

    Args:
        invocations: requests a day.
        active_s: instance-seconds with at least one request in flight.
        idle_s: on-demand instance-seconds alive with nothing in flight (billed where the table
            says so).
        provisioned_idle_s: idle seconds of provisioned instances: always billed (at the
            table's idle rates; a GB·s table has none, so its GPU price).
        gpu_gb: the GPU memory spec (gpuMemorySize / 1024).
        vcpu / memory_gb / disk_gb: the instance's other resources (CU tables bill them).
        gpu_family: ``tesla`` or ``ada`` (CU tables price GPU families differently).
    """

    invocations: float
    active_s: float
    idle_s: float = 0.0
    provisioned_idle_s: float = 0.0
    gpu_gb: float = 0.0
    vcpu: float = 0.0
    memory_gb: float = 0.0
    disk_gb: float = 0.0
    gpu_family: str = "tesla"
    #: where the busy seconds come from: the platform's metering (``instances.csv``), or the
    #: requests themselves for a target that meters nothing (``requests.csv``)
    metered_from: str = "instances.csv"

    @property
    def utilisation(self) -> float:
        """Share of the day an instance was busy (active seconds / 86400)."""
        return self.active_s / DAY_S


def usage_from_calls(calls_per_day: float, duration_s: float, gpu_gb: float, *,
                     vcpu: float = 0.0, memory_gb: float = 0.0, disk_gb: float = 0.0,
                     gpu_family: str = "tesla") -> DailyUsage:
    """`calls_per_day` requests of `duration_s` seconds each, one at a time (the doc's model)."""
    if calls_per_day < 0 or duration_s < 0 or gpu_gb < 0:
        raise UsageError("calls per day, duration and GPU memory must not be negative")
    return DailyUsage(invocations=calls_per_day, active_s=calls_per_day * duration_s,
                      gpu_gb=gpu_gb, vcpu=vcpu, memory_gb=memory_gb, disk_gb=disk_gb,
                      gpu_family=gpu_family)


def usage_from_run(run_dir: str | Path) -> tuple[DailyUsage, float]:
    """A run folder's metering (``instances.csv``: active/idle seconds and the GPU spec per
    instance; ``summary.json``: requests and span) scaled to a day, with the instance shape its
    ``run.yaml`` recorded (vCPU, memory, disk, GPU family); returns it and the scale.

    Raises:
        UsageError: the folder has neither instances.csv nor requests.csv (a run against FC
            or a URL is priced from its requests' busy time, see `_rows_from_requests`).
    """
    run = Path(run_dir)
    inst_csv, summary_json = run / "instances.csv", run / "summary.json"
    if not summary_json.is_file() or not (inst_csv.is_file()
                                          or (run / "requests.csv").is_file()):
        raise UsageError(f"{run} has no instances.csv or requests.csv (with summary.json) to "
                         "price")
    if inst_csv.is_file():
        with open(inst_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = _rows_from_requests(run / "requests.csv")
    summary = json.loads(summary_json.read_text())
    span = float(summary.get("duration_s") or 0.0)
    if span <= 0 or not rows:
        raise UsageError(f"{run} metered no instance time; nothing to price")
    usage, scale = usage_from_instances(rows, requests=float(summary.get("count") or 0),
                                        span_s=span)
    recorded = _recorded_spec(run / "run.yaml")
    return (usage if recorded is None else _with_shape(usage, **recorded)), scale


def _rows_from_requests(path: Path) -> list[dict[str, Any]]:
    """Metering for a run whose target metered nothing (FC, a URL): each instance's busy time
    as its requests saw it (`fcbench.measures.busy_seconds`); idle time is unknown (0), and the
    GPU spec comes from run.yaml or ``--gpu-mem``."""
    import numpy as np

    from ..measures import busy_intervals, busy_seconds
    from ..report.summary import load_requests

    df = load_requests(path, extra=("ready_ts",))
    if "instance_id" not in df or not len(df):
        return []
    ready: dict[str, float] = {}
    if "ready_ts" in df:
        firsts = df.dropna(subset=["ready_ts"]).groupby("instance_id")["ready_ts"].min()
        ready = {str(k): float(v) for k, v in firsts.items() if np.isfinite(v)}
    busy = busy_seconds(busy_intervals(df["instance_id"].to_numpy(), df["start_ts"],
                                       df["end_ts"], ready_ts=ready))
    return [{"instance_id": i, "active_s": s, "idle_s": 0.0, "provisioned": False,
             "gpu_memory_mb": 0, "metered_from": "requests"} for i, s in busy.items()]


def _recorded_spec(path: Path) -> dict[str, Any] | None:
    """The instance shape of the function a run.yaml recorded (its first local function)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        spec = doc["workload"]["target"]["functionSpecs"][0]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None
    gpu = spec.get("gpuConfig") or {}
    return {"cpu": spec.get("cpu"), "memory_mb": spec.get("memorySize"),
            "disk_mb": spec.get("diskSize"), "gpu_type": gpu.get("gpuType"),
            "gpu_memory_mb": gpu.get("gpuMemorySize")}


def usage_from_instances(rows: list[dict], *, requests: float,
                         span_s: float) -> tuple[DailyUsage, float]:
    """Metered instances (rows as instances.csv has them: ``active_s``, ``idle_s``,
    ``provisioned``, ``gpu_memory_mb``) of a span with `requests` requests, scaled to a day;
    returns the usage and the scale. The one reading of metering, for run folders and
    in-memory simulations alike."""
    if span_s <= 0:
        raise UsageError("a metered span must be longer than 0 s")
    scale = DAY_S / span_s
    gb = max((float(r.get("gpu_memory_mb") or 0) for r in rows), default=0.0) / 1024.0
    active = sum(float(r.get("active_s") or 0) for r in rows)

    def kept(r: dict) -> bool:
        return str(r.get("provisioned", "")).lower() == "true"

    on_demand_idle = sum(float(r.get("idle_s") or 0) for r in rows if not kept(r))
    # a provisioned instance is kept all day: its idle time is the day less its busy time (not
    # its idle seconds scaled, which would bill the harness's time before the first request)
    kept_idle = sum(max(0.0, DAY_S - float(r.get("active_s") or 0) * scale)
                    for r in rows if kept(r))
    source = "requests.csv" if any(r.get("metered_from") == "requests" for r in rows) \
        else "instances.csv"
    return DailyUsage(invocations=requests * scale, active_s=active * scale,
                      idle_s=on_demand_idle * scale, provisioned_idle_s=kept_idle,
                      gpu_gb=gb, metered_from=source), scale


def with_spec_shape(usage: DailyUsage, spec: Any) -> DailyUsage:
    """`usage` with the instance shape of a `FunctionSpec` (see `_with_shape`)."""
    gpu = getattr(spec, "gpu_config", None)
    return _with_shape(usage, cpu=spec.cpu, memory_mb=spec.memory_size, disk_mb=spec.disk_size,
                       gpu_type=gpu.gpu_type if gpu is not None else None,
                       gpu_memory_mb=spec.gpu_memory_mb)


def _with_shape(usage: DailyUsage, *, cpu: float | None, memory_mb: float | None,
                disk_mb: float | None, gpu_type: str | None,
                gpu_memory_mb: float | None) -> DailyUsage:
    """The instance's shape, which CU tables bill: vCPU, memory and disk GB, the GPU family of
    its gpuType (ada or tesla), and its GPU memory where the metering had none."""
    return replace(usage, vcpu=float(cpu or 0.0), memory_gb=float(memory_mb or 0) / 1024.0,
                   disk_gb=float(disk_mb or 0) / 1024.0,
                   gpu_family="ada" if gpu_type and "ada" in gpu_type else "tesla",
                   gpu_gb=usage.gpu_gb or float(gpu_memory_mb or 0) / 1024.0)


def per_thousand_requests(daily_total: float, invocations: float) -> float | None:
    """A day's bill per 1000 requests of that day (None without requests)."""
    return daily_total / invocations * 1000.0 if invocations > 0 else None


def _tiered(cu: float, table: CuTable) -> float:
    left, cost, floor = cu, 0.0, 0.0
    for tier in table.tiers:
        top = math.inf if tier.up_to is None else tier.up_to
        take = max(0.0, min(left, top - floor))
        cost += take * tier.price
        left -= take
        floor = top
        if left <= 0:
            break
    return cost


def daily_cost(table: GbSecondTable | CuTable, usage: DailyUsage) -> dict[str, float]:
    """The day's FC bill in `table`'s currency, with its parts (``total`` first)."""
    billed_idle = (usage.idle_s if table.bill_idle else 0.0) + usage.provisioned_idle_s
    if isinstance(table, GbSecondTable):
        gpu = usage.gpu_gb * (usage.active_s + billed_idle) * table.gpu_gb_s
        return {"total": gpu, "gpu": gpu}
    rates = table.cu
    try:
        gpu_rate = rates.gpu[usage.gpu_family]
    except KeyError:
        raise UsageError(f"the table {table.name!r} prices GPU families "
                         f"{', '.join(rates.gpu)}, not {usage.gpu_family!r}") from None
    parts_cu = {
        "vcpu": usage.vcpu * (usage.active_s * rates.vcpu_active_s
                              + billed_idle * rates.vcpu_idle_s),
        "memory": usage.memory_gb * (usage.active_s + billed_idle) * rates.memory_gb_s,
        "disk": usage.disk_gb * (usage.active_s + billed_idle) * rates.disk_gb_s,
        "gpu": usage.gpu_gb * (usage.active_s * gpu_rate.active_gb_s
                               + billed_idle * gpu_rate.idle_gb_s),
        "invocations": usage.invocations / 10_000.0 * rates.per10k_invocations,
    }
    cu_day = sum(parts_cu.values())
    total = _tiered(cu_day * MONTH_DAYS, table) / MONTH_DAYS
    share = total / cu_day if cu_day > 0 else 0.0  # the day's average price per CU
    return {"total": total, "cu": cu_day, **{k: v * share for k, v in parts_cu.items()}}


@dataclass(frozen=True)
class Comparison:
    """FC against a GPU server for one day (all in `currency`)."""

    currency: str
    fc_per_day: float
    server_per_day: float | None
    utilisation: float
    saving: float | None  # 1 - fc/server
    break_even_utilisation: float | None  # None: FC is cheaper at any utilisation
    #: 24 h servers the day's busy time needs (more than one when utilisation exceeds 100 %)
    servers: int = 1

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) for a terminal table."""
        c = self.currency
        out = [("FC per day", f"{self.fc_per_day:.2f} {c}"),
               ("time utilisation", f"{self.utilisation:.2%}")]
        if self.server_per_day is not None:
            label = "GPU server per day (24 h)" if self.servers == 1 else \
                f"{self.servers} GPU servers per day (24 h; one is busy at most 100 %)"
            out.append((label, f"{self.server_per_day:.2f} {c}"))
            out.append(("saving", f"{self.saving:.1%}" if self.saving is not None else "–"))
            out.append(("break-even utilisation",
                        "never (FC is cheaper even when busy all day)"
                        if self.break_even_utilisation is None
                        else f"{self.break_even_utilisation:.1%}"))
        return out


def compare(table: GbSecondTable | CuTable, usage: DailyUsage, *,
            server_per_hour: float | None = None) -> Comparison:
    """The day's FC bill against a server at `server_per_hour` (default: the table's)."""
    fc = daily_cost(table, usage)["total"]
    hourly = table.server_per_hour if server_per_hour is None else server_per_hour
    # more busy seconds than a day has: one server cannot carry it, so price as many as it needs
    servers = max(1, math.ceil(usage.utilisation - 1e-9))
    server = None if hourly is None else hourly * 24.0 * servers
    saving = None if not server else 1.0 - fc / server
    break_even = None
    if server and usage.active_s > 0:
        # FC's bill grows with busy time (calls in proportion); where it meets the server's flat
        # day. Not a straight line on tiered CU prices, so found by bisection on the bill itself.
        per_server = server / servers

        def bill(u: float) -> float:
            return daily_cost(table, replace(usage, active_s=u * DAY_S, invocations=usage
                                             .invocations * u * DAY_S / usage.active_s))["total"]

        if bill(1.0) >= per_server:
            lo, hi = 0.0, 1.0
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if bill(mid) < per_server else (lo, mid)
            break_even = hi
    return Comparison(currency=table.currency, fc_per_day=fc, server_per_day=server,
                      utilisation=usage.utilisation, saving=saving,
                      break_even_utilisation=break_even, servers=servers)
