"""The interface every runtime implements, and the handle it returns for a started instance.

Key names: `Runtime` (protocol), `InstanceHandle`, `Capabilities`, `StartRequest`,
`wait_listening` (FC's readiness contract: the instance accepts TCP on its port, with an optional
fast-path signal from fcbench's own server), `wait_healthy` (FC's `healthCheckConfig` probe), both
the same for every runtime. The start sequence
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

__all__ = ["PORT_PROBE_INTERVAL_S", "Capabilities", "InstanceHandle", "Runtime", "StartRequest",
           "log_tail", "wait_healthy", "wait_listening"]

#: Seconds between two TCP connects to a starting instance's port. FC dials the port ("Ping CA"
#: in its FunctionNotStarted message) but does not document how often; 5 ms keeps the detection
#: delay far below the start-up phases it would otherwise blur.
PORT_PROBE_INTERVAL_S = 0.005
_CONNECT_TIMEOUT_S = 1.0


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


async def wait_listening(handle: InstanceHandle, host: str, port: int, timeout: float, *,
                         signal: Awaitable[dict[str, Any] | None] | None = None,
                         probe: bool = True, what: str = "",
                         before_error: Callable[[], Awaitable[None]] | None = None,
                         ) -> dict[str, Any] | None:
    """Wait until the instance is ready by FC's contract: a TCP connect to `host:port` succeeds
    (polled every `PORT_PROBE_INTERVAL_S`), or, first, `signal` delivers a message.

    `signal` is fcbench's own fast path (the process runtime's ready pipe): it resolves to the
    instance's JSON line, or to None when none will come (then the TCP probe takes over even if
    `probe` is False). With `probe` False only `signal` counts: for a server known to send it,
    so its message (port, start-up phases) is never lost to a connect that won the race.

    Returns:
        `signal`'s message if it decided, else None (the port accepted a connection).
    Raises:
        InstanceStartError: the instance exited first (with its log's last lines; `before_error`
        runs first, e.g. to copy a container's log there), or nothing was ready within `timeout`
        seconds (naming the port it polled).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    fast = asyncio.ensure_future(signal) if signal is not None else None
    name = f"instance {handle.instance_id}" + (f" ({what})" if what else "")
    try:
        while True:
            if fast is not None and fast.done():
                message = fast.result()
                if message is not None:
                    return message
                fast, probe = None, True  # no line will come: FC's probe decides
            if handle.exited.done():
                code = "unknown" if handle.exited.cancelled() else handle.exited.result()
                if before_error is not None:
                    await before_error()
                tail = log_tail(handle.log_path)
                raise InstanceStartError(
                    f"{name} exited with code {code} before it was ready (it was to listen on "
                    f"{host}:{port}); its log is {handle.log_path}"
                    + (f"\n--- last lines ---\n{tail}" if tail else ""))
            if probe and await _accepts(host, port):
                return None
            left = deadline - loop.time()
            if left <= 0:
                if before_error is not None:
                    await before_error()
                seen = (f"nothing accepted a TCP connection on {host}:{port}; does the server "
                        f"listen on $FC_SERVER_PORT ({port})?") if probe else \
                    f"it sent no ready line (it was to listen on {host}:{port})."
                raise InstanceStartError(
                    f"{name} did not become ready within {timeout:g} s (harness.startTimeout): "
                    f"{seen} Its log is {handle.log_path}")
            # the next probe, the exit or the fast-path line, whichever comes first
            nap = asyncio.ensure_future(asyncio.sleep(min(left, PORT_PROBE_INTERVAL_S)
                                                      if probe else left))
            try:
                await asyncio.wait([nap, handle.exited, *([fast] if fast else [])],
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                nap.cancel()
    finally:
        if fast is not None and not fast.done():
            fast.cancel()


async def _accepts(host: str, port: int) -> bool:
    """One TCP connect to `host:port`, closed at once (FC's port check: no request is sent)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                           _CONNECT_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


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
