"""The interface every runtime implements, and the handle it returns for a started instance.

Key names: `Runtime` (protocol), `InstanceHandle`, `Capabilities`, `StartRequest`,
`wait_healthy` (FC's `healthCheckConfig` probe, the same for every runtime). The start sequence
(place → start → wait ready → health check → initialize → record phases) and the stop sequence
(preStop → stop) live once in `fcbench.harness.platform`; runtimes only do their own steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import FcbenchError, InstanceStartError

if TYPE_CHECKING:
    from ...spec import FunctionSpec, HealthCheckConfig
    from ..gpus import Gpu

__all__ = ["Capabilities", "InstanceHandle", "Runtime", "StartRequest", "log_tail",
           "wait_healthy"]


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


async def wait_healthy(handle: InstanceHandle, check: HealthCheckConfig,
                       get: Callable[[str, float], Awaitable[int]], *, since: float) -> int:
    """Probe ``GET check.httpGetUrl`` as FC does until the instance is healthy; returns the
    number of probes sent.

    The first probe goes `initialDelaySeconds` after `since` (a `perf_counter` time: the
    launch), then one every `periodSeconds`, each given `timeoutSeconds`; a status below 400 is
    a success. `successThreshold` successes in a row make it healthy.

    Raises:
        InstanceStartError: `failureThreshold` failures in a row, or the instance exited.
    """
    url = check.http_get_url
    await asyncio.sleep(max(0.0, since + check.initial_delay_seconds - time.perf_counter()))
    probes = successes = failures = 0
    last = ""
    while True:
        if handle.exited.done():
            raise InstanceStartError(f"instance {handle.instance_id} exited during its health "
                                     f"check (GET {url}); its log is {handle.log_path}")
        probes += 1
        try:
            status = await get(url, float(check.timeout_seconds))
            ok, last = status < 400, f"answered {status}"
        except (FcbenchError, OSError) as exc:
            ok, last = False, f"failed ({exc})"
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if successes >= check.success_threshold:
            handle.info["health_probes"] = probes
            return probes
        if failures >= check.failure_threshold:
            raise InstanceStartError(
                f"instance {handle.instance_id} failed its health check: GET {url} {last}, "
                f"{failures} time{'s' if failures > 1 else ''} in a row (failureThreshold "
                f"{check.failure_threshold}); fix healthCheckConfig.httpGetUrl or the server. "
                f"Its log is {handle.log_path}")
        await asyncio.sleep(check.period_seconds)
