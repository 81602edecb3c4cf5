"""GPU telemetry: an NVML sampler process writing ``gpu.csv``, and its plot.

Key names: `start_sampler` -> `SamplerHandle`, `plot_gpu`, `read_gpu_csv`, `CSV_COLUMNS`, `open_nvml`; the
submodules load on first use, so ``python -m fcbench.telemetry.sampler`` runs without a runpy warning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .nvml import GpuSample, ProcessSample, open_nvml
    from .sampler import (CSV_COLUMNS, NO_GPU, SamplerHandle, SamplerStatus, plot_gpu, read_gpu_csv,
                          start_sampler)

__all__ = ["CSV_COLUMNS", "NO_GPU", "GpuSample", "ProcessSample", "SamplerHandle", "SamplerStatus",
           "open_nvml", "plot_gpu", "read_gpu_csv", "start_sampler"]

_WHERE = {"GpuSample": "nvml", "ProcessSample": "nvml", "open_nvml": "nvml"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_WHERE.get(name, 'sampler')}")
    return getattr(module, name)
