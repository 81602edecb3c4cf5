"""Starting and stopping a whole harness: platform + gateway on a host:port.

Key names: `HarnessConfig`, `Harness` (async), `HarnessThread` (a harness on a background thread,
for the CLI's `run` and for Python callers), `serve_forever` (the `harness serve` command).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import UsageError
from ..spec import FunctionSpec
from .gateway import build_gateway
from .gpus import Gpu, discover_gpus, parse_virtual_gpus
from .platform import Platform
from .runtimes.base import Runtime

__all__ = ["Harness", "HarnessConfig", "HarnessThread", "make_runtimes", "serve_forever"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarnessConfig:
    """How to run the harness (not what it runs: that is the function specs)."""

    host: str = "127.0.0.1"
    port: int = 9080
    runtime: str | None = None  # force every function onto this runtime
    virtual_gpus: str | None = None
    log_dir: Path | None = None

    def gpus(self) -> list[Gpu]:
        """Virtual GPUs when asked for, else what NVML sees (possibly none)."""
        if self.virtual_gpus:
            return parse_virtual_gpus(self.virtual_gpus)
        return discover_gpus()


def make_runtimes(names: set[str], host: str) -> dict[str, Runtime]:
    """Create the runtimes the specs need (the docker SDK is imported only when asked for)."""
    runtimes: dict[str, Runtime] = {}
    for name in names:
        if name == "process":
            from .runtimes.process import ProcessRuntime
            runtimes[name] = ProcessRuntime(host="127.0.0.1")
        elif name == "docker":
            try:
                from .runtimes.docker import DockerRuntime
            except ImportError as exc:
                raise UsageError(f"the docker runtime is not available: {exc}") from exc
            runtimes[name] = DockerRuntime()
        else:
            raise UsageError(f"unknown runtime {name!r}; use process or docker")
    return runtimes


@dataclass
class Harness:
    """A running harness: `await start()`, use `url`, `await stop()`."""

    specs: Sequence[FunctionSpec]
    config: HarnessConfig = field(default_factory=HarnessConfig)
    platform: Platform | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        cfg = self.config
        specs = [s.model_copy(update={"harness": s.harness.model_copy(
            update={"runtime": cfg.runtime})}) if cfg.runtime else s for s in self.specs]
        runtimes = make_runtimes({s.harness.runtime for s in specs} or {"process"}, cfg.host)
        self.platform = Platform(runtimes, gpus=cfg.gpus(), log_dir=cfg.log_dir)
        try:
            for spec in specs:
                await self.platform.add_function(spec)
            self._runner = web.AppRunner(build_gateway(self.platform), access_log=None,
                                         handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, cfg.host, cfg.port, reuse_address=True)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        port = sockets[0].getsockname()[1] if sockets else cfg.port
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.platform is not None:
            await self.platform.close()


class HarnessThread:
    """A harness on its own event loop in a background thread; a context manager.

    >>> with HarnessThread(specs, HarnessConfig(port=0)) as h:
    ...     print(h.url)
    """

    def __init__(self, specs: Sequence[FunctionSpec], config: HarnessConfig | None = None) -> None:
        self.harness = Harness(list(specs), config or HarnessConfig())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fcbench-harness",
                                        daemon=True)
        self.url = ""

    def __enter__(self) -> HarnessThread:
        self._thread.start()
        self.url = self.call(self.harness.start())
        return self

    def call(self, coro: Any, timeout: float | None = None) -> Any:
        """Run a coroutine on the harness loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.harness.stop(), timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def serve_forever(specs: Sequence[FunctionSpec], config: HarnessConfig,
                  on_ready: Callable[[Harness], None] | None = None) -> None:
    """Run a harness until SIGINT/SIGTERM; every instance is stopped before returning."""

    async def main() -> None:
        harness = Harness(list(specs), config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await harness.start()
            if on_ready is not None:
                on_ready(harness)
            await stop.wait()
        finally:
            await harness.stop()

    _run(main())


def _run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)
