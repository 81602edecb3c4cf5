"""GPUs the harness can place instances on: NVML inventory, virtual GPUs, memory-spec placement.

Key names: `Gpu`, `GpuPool` (pure placement state), `discover_gpus`, `parse_virtual_gpus`,
`GPU_TYPES` (FC's card types, from `fcbench.fc`), `default_virtual_gpus` (virtual cards sized like the specs' gpuType,
for a machine where NVML finds no GPU), `format_virtual_gpus`, `describe_gpus`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import GpuError
from ..fc import DEFAULT_GPU_TYPE, GPU_TYPES, GpuType  # re-exported: FC's card types

if TYPE_CHECKING:
    from ..spec import FunctionSpec

__all__ = ["DEFAULT_GPU_TYPE", "GPU_TYPES", "Gpu", "GpuPool", "GpuType", "default_virtual_gpus",
           "describe_gpus", "discover_gpus", "format_virtual_gpus", "parse_size_mb",
           "parse_virtual_gpus"]

log = logging.getLogger(__name__)


@dataclass
class Gpu:
    """One GPU: `index` is what CUDA_VISIBLE_DEVICES / a DeviceRequest names."""

    index: int
    name: str
    total_mb: int
    virtual: bool = False
    uuid: str | None = None
    used_mb: int = 0

    @property
    def free_mb(self) -> int:
        return self.total_mb - self.used_mb


@dataclass
class GpuPool:
    """Memory-spec placement over a set of GPUs. Pure state: no NVML calls after construction."""

    gpus: list[Gpu] = field(default_factory=list)

    @property
    def largest_mb(self) -> int:
        return max((g.total_mb for g in self.gpus), default=0)

    def check_fits(self, function: str, memory_mb: int) -> None:
        """Raise `GpuError` if an instance needing `memory_mb` could never be placed."""
        if memory_mb <= 0:
            return
        if not self.gpus:
            raise GpuError(
                f"function {function!r} asks for gpuMemorySize {memory_mb} MB but this machine "
                "has no GPU that NVML can see; pass --virtual-gpus (e.g. --virtual-gpus 1x16GB) "
                "to place GPU specs on virtual GPUs, or remove gpuConfig from the spec.")
        if memory_mb > self.largest_mb:
            raise GpuError(
                f"function {function!r} asks for gpuMemorySize {memory_mb} MB, more than the "
                f"largest GPU ({self.largest_mb} MB); lower it or place it on larger virtual "
                "GPUs.")

    def place(self, memory_mb: int) -> Gpu | None:
        """Reserve `memory_mb` on the fullest GPU it still fits on (packing), or return None."""
        fits = [g for g in self.gpus if g.free_mb >= memory_mb]
        if not fits:
            return None
        gpu = min(fits, key=lambda g: (g.free_mb, g.index))
        gpu.used_mb += memory_mb
        return gpu

    def release(self, index: int, memory_mb: int) -> None:
        """Give back memory reserved by `place`."""
        for gpu in self.gpus:
            if gpu.index == index:
                gpu.used_mb = max(0, gpu.used_mb - memory_mb)
                return


_VIRTUAL = re.compile(r"^\s*(?:(\d+)\s*[x×]\s*)?(\d+(?:\.\d+)?)\s*(GB|GiB|MB|MiB|G|M)?\s*$", re.I)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(GB|GiB|MB|MiB|G|M)\s*$", re.I)


def _to_mb(size: float, unit: str) -> float:
    """MB (2^20 bytes) from a number and its unit; G/GB/GiB are 1024 MB, as GPU memory is."""
    return size * 1024 if unit.upper().startswith("G") else size


def parse_size_mb(text: str) -> float:
    """A size such as ``64MB``, ``1GB`` or ``1.5GiB`` in MB (2^20 bytes; a GB is 1024 MB, as
    for GPU memory): the same units `parse_virtual_gpus` reads, the unit required.

    Raises:
        ValueError: a sentence showing the expected form.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"cannot read {str(text).strip()!r} as a size; write a number with a "
                         "unit: 64MB, 512MiB, 1GB, 1.5GB")
    mb = _to_mb(float(match.group(1)), match.group(2))
    if mb <= 0:
        raise ValueError(f"a size must be more than 0; got {str(text).strip()!r}")
    return mb


def parse_virtual_gpus(text: str) -> list[Gpu]:
    """Parse ``"1x16GB"``, ``"2x24GB,1x48GB"`` or ``"16384MB"`` into virtual GPUs.

    Raises:
        ValueError: with a sentence showing the expected form.
    """
    gpus: list[Gpu] = []
    for part in text.split(","):
        match = _VIRTUAL.match(part)
        if not match or not part.strip():
            raise ValueError(f"cannot read {part.strip()!r} as virtual GPUs; use COUNTxSIZE such as "
                             "1x16GB or 2x24GB,1x48GB")
        count = int(match.group(1) or 1)
        size = float(match.group(2))
        unit = (match.group(3) or "GB").upper()
        total_mb = int(_to_mb(size, unit))
        if count < 1 or total_mb < 1:
            raise ValueError(f"virtual GPUs need a count ≥ 1 and a size > 0, got {part.strip()!r}")
        for _ in range(count):
            gpus.append(Gpu(index=len(gpus), name=f"virtual-{total_mb}MB", total_mb=total_mb,
                            virtual=True))
    return gpus


def discover_gpus() -> list[Gpu]:
    """The GPUs NVML reports; an empty list when there is no driver or no GPU (never raises)."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - any NVML failure means "no usable GPU here"
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append(Gpu(index=i, name=name, total_mb=int(mem.total // (1024 * 1024)), uuid=uuid))
        return out
    except Exception as exc:  # noqa: BLE001
        log.warning("NVML found a driver but listing GPUs failed: %s", exc)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------------------------------------------
# Virtual cards sized like FC's GPU card types (`fcbench.fc.GPU_TYPES`)


def _size_text(total_mb: int) -> str:
    return f"{total_mb // 1024}GB" if total_mb % 1024 == 0 else f"{total_mb}MB"


def format_virtual_gpus(gpus: Iterable[Gpu]) -> str:
    """The ``COUNTxSIZE`` text `parse_virtual_gpus` reads back, e.g. ``"1x16GB,2x24GB"``."""
    runs: list[list[int]] = []  # [total_mb, count], consecutive equal sizes merged
    for gpu in gpus:
        if runs and runs[-1][0] == gpu.total_mb:
            runs[-1][1] += 1
        else:
            runs.append([gpu.total_mb, 1])
    return ",".join(f"{count}x{_size_text(mb)}" for mb, count in runs)


def describe_gpus(gpus: Iterable[Gpu]) -> list[dict[str, Any]]:
    """GPUs as plain values (for run.yaml and logs)."""
    return [{"index": g.index, "name": g.name, "total_mb": g.total_mb, "virtual": g.virtual}
            for g in gpus]


def default_virtual_gpus(specs: Iterable[FunctionSpec]) -> tuple[list[Gpu], dict[str, Any]]:
    """Virtual GPUs for `specs` on a machine without a GPU: cards sized like each spec's gpuType.

    How many: per card type, enough cards that every GPU spec of that type can run its
    `harness.maxInstances` instances at once (``ceil(maxInstances / instances per card)`` each,
    summed over the specs of that type). On FC the number of instances is bounded by
    `maxInstances`, not by a count of cards, so the virtual cards should not be the limit either.
    A spec without gpuType is taken as `DEFAULT_GPU_TYPE` (16 GB, T4 class), as FC does.

    Returns the cards (smallest first) and a plain description: ``virtual_gpus`` (COUNTxSIZE
    text), ``types`` (card type -> cards), ``untyped`` (specs without gpuType) and
    ``description`` (one sentence).

    Raises:
        GpuError: a spec names a gpuType fcbench does not know, or asks for more memory than a
            card of its type has (FC would refuse it too).
    """
    cards: dict[str, int] = {}
    untyped: list[str] = []
    for spec in specs:
        cfg = spec.gpu_config
        if cfg is None or cfg.gpu_memory_size <= 0:
            continue
        type_name = cfg.gpu_type
        if "gpu_type" not in cfg.model_fields_set:
            untyped.append(spec.name)
            type_name = DEFAULT_GPU_TYPE
        card = GPU_TYPES.get(type_name)
        if card is None:
            known = ", ".join(GPU_TYPES)
            raise GpuError(f"function {spec.name!r} asks for gpuType {type_name!r}, which fcbench "
                           f"cannot size a virtual GPU for (known types: {known}); use one of "
                           "those or name the virtual GPUs to place it on.")
        if cfg.gpu_memory_size > card.total_mb:
            taken = "" if "gpu_type" in cfg.model_fields_set else " (no gpuType: taken as that)"
            raise GpuError(f"function {spec.name!r} asks for gpuMemorySize {cfg.gpu_memory_size} "
                           f"MB, more than a {type_name} card has ({card.total_mb} MB, "
                           f"{card.family}){taken}; lower gpuMemorySize or choose a larger "
                           "gpuType.")
        per_card = card.total_mb // cfg.gpu_memory_size
        need = math.ceil(max(1, spec.harness.max_instances) / per_card)
        cards[type_name] = cards.get(type_name, 0) + need
    gpus: list[Gpu] = []
    for type_name in sorted(cards, key=lambda t: GPU_TYPES[t].total_mb):
        card = GPU_TYPES[type_name]
        for _ in range(cards[type_name]):
            gpus.append(Gpu(index=len(gpus), name=f"virtual-{card.total_mb}MB",
                            total_mb=card.total_mb, virtual=True))
    text = format_virtual_gpus(gpus)
    kinds = "; ".join(f"{t}, {GPU_TYPES[t].family}" for t in sorted(
        cards, key=lambda t: GPU_TYPES[t].total_mb))
    description = f"no GPU found by NVML: placing GPU specs on virtual GPUs {text} ({kinds})"
    if untyped:
        description += (f"; {', '.join(untyped)} {'has' if len(untyped) == 1 else 'have'} no "
                        f"gpuType, taken as {DEFAULT_GPU_TYPE} (16 GB, T4 class)")
    info = {"virtual_gpus": text, "types": dict(cards), "untyped": untyped,
            "description": description}
    return gpus, info
