"""Where a harness's function specs will run: the GPUs, resolved once, and whether each fits.

Key names: `GpuPlan` (the GPUs and a plain description of where they came from), `plan_gpus`
(resolve them: asked-for virtual GPUs, else NVML's, else virtual cards sized like the specs'
gpuType; and check every spec fits). A command plans before it starts anything, so a refusal
comes first; `HarnessConfig.gpu_plan` hands that plan to the harness, which then does not
resolve the GPUs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import GpuError, UsageError
from ..spec import FunctionSpec
from .gpus import (Gpu, GpuPool, default_virtual_gpus, describe_gpus, discover_gpus,
                   format_virtual_gpus, parse_virtual_gpus)

__all__ = ["GpuPlan", "plan_gpus", "resolve_gpus"]


@dataclass(frozen=True)
class GpuPlan:
    """The GPUs to place instances on and `info`, the description `resolve_gpus` gives."""

    gpus: tuple[Gpu, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def fresh_gpus(self) -> list[Gpu]:
        """The GPUs with nothing placed on them (a platform reserves memory on its own copies,
        so one plan can start several harnesses)."""
        return [replace(g, used_mb=0) for g in self.gpus]

    @property
    def virtual_default(self) -> bool:
        """No GPU was found or named: GPU specs go on virtual cards sized like their gpuType."""
        return self.info.get("source") == "virtual-default"


def resolve_gpus(specs: Sequence[FunctionSpec], *, virtual_gpus: str | None = None,
                 require_gpu: bool = False) -> tuple[list[Gpu], dict[str, Any]]:
    """The GPUs to place `specs` on, and a plain description of where they came from.

    The description (for run.yaml and logs) has ``source``: ``virtual`` (asked for),
    ``nvml`` (real GPUs), ``virtual-default`` (no GPU found by NVML: cards sized like the
    specs' gpuType, see `default_virtual_gpus`) or ``none`` (no GPU and no GPU spec); ``gpus``
    (index, name, total_mb, virtual) and, for virtual ones, ``virtual_gpus`` (COUNTxSIZE).
    ``description`` is one sentence.

    Raises:
        UsageError: `require_gpu` is set, a spec asks for a GPU and NVML finds none.
        GpuError: a spec cannot be sized onto a virtual card of its gpuType.
    """
    if virtual_gpus:
        gpus = parse_virtual_gpus(virtual_gpus)
        text = format_virtual_gpus(gpus)
        return gpus, {"source": "virtual", "virtual_gpus": text, "gpus": describe_gpus(gpus),
                      "description": f"virtual GPUs {text}, as asked"}
    found = discover_gpus()
    if found:
        names = "; ".join(f"#{g.index} {g.name} {g.total_mb} MB" for g in found)
        return found, {"source": "nvml", "gpus": describe_gpus(found),
                       "description": f"GPUs found by NVML: {names}"}
    gpu_specs = [s for s in specs if s.gpu_memory_mb > 0]
    if not gpu_specs:
        return [], {"source": "none", "gpus": [],
                    "description": "no GPU found by NVML and no GPU spec"}
    if require_gpu:
        names = ", ".join(s.name for s in gpu_specs)
        raise UsageError(f"{names} {'asks' if len(gpu_specs) == 1 else 'ask'} for a GPU "
                         "(gpuConfig) and real GPUs are required, but NVML finds no GPU on "
                         "this machine; run on a machine with an NVIDIA GPU and driver, or "
                         "allow virtual GPUs.")
    gpus, info = default_virtual_gpus(gpu_specs)
    return gpus, {"source": "virtual-default", "gpus": describe_gpus(gpus), **info}


def plan_gpus(specs: Sequence[FunctionSpec], *, virtual_gpus: str | None = None,
              require_gpu: bool = False,
              size_hint: str = "pass --virtual-gpus COUNTxSIZE (e.g. 1x48GB) to choose the "
                               "virtual GPUs") -> GpuPlan:
    """Resolve the GPUs for `specs` (`resolve_gpus`) and check each spec fits on one.

    `size_hint` ends the message of a spec that fits no card (how the caller's user chooses
    other GPUs: an option, a workload key).

    Raises:
        UsageError: `require_gpu` is set, a spec asks for a GPU and NVML finds none (the
            message says what to run on, or what to drop).
        GpuError: a spec fits no card.
    """
    try:
        gpus, info = resolve_gpus(specs, virtual_gpus=virtual_gpus, require_gpu=require_gpu)
        pool = GpuPool(gpus)
        for spec in specs:
            if gpus:  # (no GPU at all: the harness's own error says what to do)
                pool.check_fits(spec.name, spec.gpu_memory_mb)
    except UsageError:
        names = [s.name for s in specs if s.gpu_memory_mb > 0]
        raise UsageError(
            f"{', '.join(names)} {'asks' if len(names) == 1 else 'ask'} for a GPU (gpuConfig) "
            "and --require-gpu is set, but NVML finds no GPU on this machine. Run on a machine "
            "with an NVIDIA GPU and its driver (`nvidia-smi` lists it), or drop --require-gpu to "
            "place GPU specs on virtual GPUs sized like their gpuType (or choose them with "
            "--virtual-gpus 1x16GB).") from None
    except GpuError as exc:
        raise GpuError(f"{exc} Or {size_hint}.") from None
    return GpuPlan(tuple(gpus), info)
