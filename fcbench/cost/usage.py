"""What a day of an FC function's usage holds, and the instance shape it is priced at.

Key names: `DailyUsage`, `Shape`, `usage_from_calls`, `DAY_S`. Pure values; the bill is
`fcbench.cost.billing`, a run folder's day `fcbench.cost.metering`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import UsageError
from ..results import layout

__all__ = ["DAY_S", "MONTH_DAYS", "DailyUsage", "Shape", "usage_from_calls"]

DAY_S = 86400.0
MONTH_DAYS = 30.0  # CU tiers are monthly: a day is priced as 1/30 of a month of such days


@dataclass(frozen=True)
class Shape:
    """The instance shape a bill is priced at, and where each part came from.

    Args:
        gpu_gb: the GPU memory spec (gpuMemorySize / 1024); None when nothing says (a run
            against FC or a URL whose function spec was not recorded): such a day cannot be
            priced, never priced at 0.
        vcpu / memory_gb / disk_gb: the instance's other resources (CU tables bill them);
            None when not given (billed as 0, and said so).
        gpu_family: ``tesla`` or ``ada`` (CU tables price GPU families differently).
        source: a sentence: where the shape came from (a spec in run.yaml, options, ...).
    """

    gpu_gb: float | None = None
    vcpu: float | None = None
    memory_gb: float | None = None
    disk_gb: float | None = None
    gpu_family: str | None = None
    source: str = ""

    @property
    def family(self) -> str:
        """The GPU family priced: the given one, else tesla (FC's default gpuType is
        fc.gpu.tesla.1)."""
        return self.gpu_family or "tesla"

    def over(self, other: Shape) -> Shape:
        """This shape's known parts over `other`'s (options over what a run recorded)."""
        pick = lambda a, b: a if a is not None else b  # noqa: E731
        return Shape(pick(self.gpu_gb, other.gpu_gb), pick(self.vcpu, other.vcpu),
                     pick(self.memory_gb, other.memory_gb), pick(self.disk_gb, other.disk_gb),
                     pick(self.gpu_family, other.gpu_family),
                     "; ".join(s for s in (self.source, other.source) if s))

    @property
    def missing(self) -> list[str]:
        """The CU-billed resources nobody gave (vcpu, memory, disk)."""
        return [name for name, v in (("vCPU", self.vcpu), ("memory", self.memory_gb),
                                     ("disk", self.disk_gb)) if v is None]

    def describe(self) -> str:
        """``GPU 4 GB (tesla), 2 vCPU, 8 GB memory, disk not given``."""
        def part(v: float | None, unit: str, what: str) -> str:
            return f"{what} not given" if v is None else f"{v:g} {unit}"
        gpu = "GPU spec unknown" if self.gpu_gb is None else \
            f"GPU {self.gpu_gb:g} GB ({self.family}" + \
            ("" if self.gpu_family else ", FC's default gpuType") + ")"
        return ", ".join([gpu, part(self.vcpu, "vCPU", "vCPU"),
                          part(self.memory_gb, "GB memory", "memory"),
                          part(self.disk_gb, "GB disk", "disk")])


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
    metered_from: str = layout.INSTANCES
    #: output tokens a day (the answered requests' ``output_tokens``); None: no request
    #: carried a token count (not an LLM function)
    output_tokens: float | None = None

    @property
    def utilisation(self) -> float:
        """Share of the day an instance was busy (active seconds / 86400)."""
        return self.active_s / DAY_S

    def with_shape(self, shape: Shape) -> DailyUsage:
        """This usage at `shape` (unknown parts billed as 0; the GPU must be known).

        Raises:
            UsageError: the shape's GPU spec is unknown.
        """
        if shape.gpu_gb is None:
            raise UsageError("no GPU spec to price: " + (shape.source or "nothing recorded "
                             "one") + "; pass --gpu-mem GB (gpuMemorySize / 1024)")
        return replace(self, gpu_gb=float(shape.gpu_gb), vcpu=float(shape.vcpu or 0.0),
                       memory_gb=float(shape.memory_gb or 0.0),
                       disk_gb=float(shape.disk_gb or 0.0), gpu_family=shape.family)


def usage_from_calls(calls_per_day: float, duration_s: float, gpu_gb: float, *,
                     vcpu: float = 0.0, memory_gb: float = 0.0, disk_gb: float = 0.0,
                     gpu_family: str = "tesla") -> DailyUsage:
    """`calls_per_day` requests of `duration_s` seconds each, one at a time (the doc's model)."""
    if calls_per_day < 0 or duration_s < 0 or gpu_gb < 0:
        raise UsageError("calls per day, seconds per call and GPU memory must not be negative")
    return DailyUsage(invocations=calls_per_day, active_s=calls_per_day * duration_s,
                      gpu_gb=gpu_gb, vcpu=vcpu, memory_gb=memory_gb, disk_gb=disk_gb,
                      gpu_family=gpu_family)
