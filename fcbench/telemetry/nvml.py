"""What NVML says about the GPUs right now: utilisation, memory, and memory per process.

Key names: `GpuSample`, `ProcessSample`, `Source`, `NvmlSource`, `open_nvml` (imports `pynvml` lazily).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["GpuSample", "NvmlSource", "ProcessSample", "Source", "open_nvml"]

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcessSample:
    """GPU memory one process holds on one GPU; `memory_mb` is None where NVML cannot tell
    (e.g. inside some containers)."""

    pid: int
    memory_mb: float | None


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment. Memory in MiB (2^20 bytes, as FC's gpuMemorySize "MB"); a field NVML
    does not support on this GPU is None."""

    gpu_index: int
    gpu_name: str
    util_pct: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    processes: tuple[ProcessSample, ...] = ()


class Source(Protocol):
    """Where samples come from: NVML on a real machine, anything with this shape in tests."""

    #: GPU names, by index.
    names: list[str]

    def sample(self) -> list[GpuSample]:
        """One sample of every GPU."""

    def close(self) -> None:
        """Release the library."""


class NvmlSource:
    """Reads every GPU through an initialised NVML (`pynvml`); made by `open_nvml`."""

    def __init__(self, nvml: Any, handles: list[Any], names: list[str]) -> None:
        self._nvml = nvml
        self._handles = handles
        self.names = names

    def sample(self) -> list[GpuSample]:
        nv = self._nvml
        out = []
        for index, (handle, name) in enumerate(zip(self._handles, self.names)):
            util = self._try(nv.nvmlDeviceGetUtilizationRates, handle)
            mem = self._try(nv.nvmlDeviceGetMemoryInfo, handle)
            procs: dict[int, ProcessSample] = {}
            for kind in ("GetComputeRunningProcesses", "GetGraphicsRunningProcesses"):
                for p in self._running(kind, handle) or ():
                    used = getattr(p, "usedGpuMemory", None)
                    mb = None if used is None or used < 0 or used >= 2**63 else used / _MIB
                    if p.pid not in procs or procs[p.pid].memory_mb is None:
                        procs[p.pid] = ProcessSample(pid=int(p.pid), memory_mb=mb)
            out.append(GpuSample(
                gpu_index=index, gpu_name=name,
                util_pct=None if util is None else float(util.gpu),
                memory_used_mb=None if mem is None else mem.used / _MIB,
                memory_total_mb=None if mem is None else mem.total / _MIB,
                processes=tuple(sorted(procs.values(), key=lambda p: p.pid))))
        return out

    def _running(self, kind: str, handle: Any) -> Any:
        """The processes on a GPU; falls back to the _v2 call on drivers older than the bindings."""
        nv = self._nvml
        mismatch = getattr(nv, "NVMLLibraryMismatchError", ())
        for name in (f"nvmlDevice{kind}", f"nvmlDevice{kind}_v2"):
            fn = getattr(nv, name, None)
            if fn is None:
                continue
            try:
                return fn(handle)
            except mismatch:
                continue
            except nv.NVMLError:
                return None
        return None

    def _try(self, fn: Any, handle: Any) -> Any:
        try:
            return fn(handle)
        except self._nvml.NVMLError:  # not supported on this GPU / lost: leave the field empty
            return None

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down a library that is already gone
            pass


def open_nvml() -> tuple[NvmlSource | None, str]:
    """Initialise NVML and list the GPUs.

    Returns:
        ``(source, detail)``: a source and the GPUs' names, e.g. "2 NVIDIA GPU(s): NVIDIA H100 80GB HBM3,
        ...", or ``(None, why)`` when nvidia-ml-py, the driver or a GPU is missing, e.g. "NVML: NVML
        Shared Library Not Found". It never raises for a machine without GPUs.
    """
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return None, f"NVML: {exc}"
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        names = []
        for h in handles:
            name = pynvml.nvmlDeviceGetName(h)
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    except pynvml.NVMLError as exc:
        _shutdown(pynvml)
        return None, f"NVML could not list GPUs: {exc}"
    if not handles:
        _shutdown(pynvml)
        return None, "the NVIDIA driver reports no GPU"
    return NvmlSource(pynvml, handles, names), \
        f"{len(handles)} NVIDIA GPU(s): {', '.join(names)}"


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass
