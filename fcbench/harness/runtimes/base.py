"""The interface every runtime implements, and the handle it returns for a started instance.

Key names: `Runtime` (protocol), `InstanceHandle`, `Capabilities`, `StartRequest`.
The start sequence (place → start → wait ready → initialize → record phases) lives once in
`fcbench.harness.platform`; runtimes only do their own steps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...spec import FunctionSpec
    from ..gpus import Gpu

__all__ = ["Capabilities", "InstanceHandle", "Runtime", "StartRequest", "log_tail"]


@dataclass(frozen=True)
class Capabilities:
    """What a runtime can do; checked when a spec is loaded, not mid-run."""

    gpus: bool = False
    image_pull: bool = False


@dataclass(frozen=True)
class StartRequest:
    """Everything a runtime needs to start one instance."""

    spec: FunctionSpec
    instance_id: str
    gpu: Gpu | None
    log_path: Path


@dataclass
class InstanceHandle:
    """A started instance. `exited` resolves to the exit code when the instance stops or dies."""

    instance_id: str
    function: str
    log_path: Path
    exited: asyncio.Future[int]
    base_url: str = ""
    pid: int | None = None
    container_id: str | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    stopping: bool = False


class Runtime(Protocol):
    """Starts and stops instances of functions."""

    name: str
    capabilities: Capabilities

    async def prepare(self, spec: FunctionSpec) -> None:
        """One-off work before the first instance (build a model file, check an image)."""

    async def start(self, request: StartRequest) -> InstanceHandle:
        """Launch the instance; return as soon as it is launched (not yet ready)."""

    async def wait_ready(self, handle: InstanceHandle, timeout: float) -> None:
        """Return once the instance serves HTTP; fill `handle.base_url` and in-instance phases.

        Raises:
            InstanceStartError: it exited or did not become ready in time (names the log).
        """

    async def stop(self, handle: InstanceHandle, timeout: float = 5.0) -> None:
        """Stop the instance and release what it holds; safe to call twice."""

    async def close(self) -> None:
        """Release runtime-wide resources."""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of an instance log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
