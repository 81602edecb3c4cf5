"""GPUs the harness can place instances on: NVML inventory, virtual GPUs, memory-spec placement.

Key names: `Gpu`, `GpuPool` (pure placement state), `discover_gpus`, `parse_virtual_gpus`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from ..errors import GpuError

__all__ = ["Gpu", "GpuPool", "discover_gpus", "parse_virtual_gpus"]

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
                f"largest GPU ({self.largest_mb} MB); lower it or pass a larger --virtual-gpus.")

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
        total_mb = int(size * 1024) if unit.startswith("G") else int(size)
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
