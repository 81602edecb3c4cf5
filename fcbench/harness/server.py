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
from ..events import Events
from ..spec import FunctionSpec
from ..signing import AccessKey, remove_harness_key, write_harness_key
from .gateway import build_gateway
from .guard import Guard
from .protocol_errors import answer_parse_errors_as_fc
from .gpuplan import GpuPlan, resolve_gpus
from .gpus import Gpu
from .platform import Platform
from .runtimes.base import Runtime

__all__ = ["Harness", "HarnessConfig", "HarnessThread", "make_runtimes", "serve_forever"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarnessConfig:
    """How to run the harness (not what it runs: that is the function specs).

    GPUs (see `resolve_gpus`): `virtual_gpus` (``"1x16GB"``-style text) when given, else the
    GPUs NVML finds, else virtual GPUs sized like the specs' gpuType; `require_gpu` refuses that
    last fallback. A command that planned them first (`fcbench.harness.gpuplan.plan_gpus`)
    passes its `gpu_plan`.
    """

    host: str = "127.0.0.1"
    port: int = 9080
    runtime: str | None = None  # force every function onto this runtime
    virtual_gpus: str | None = None
    log_dir: Path | None = None
    require_gpu: bool = False
    #: the one key pair requests must be signed with (None: a fresh one per start)
    access_key: AccessKey | None = None
    #: more ``Host`` names to accept besides the listen address and loopback names
    allowed_hosts: tuple[str, ...] = ()
    #: accept `harness.command` (a command on this machine) in specs sent through the API
    allow_api_commands: bool = False
    #: write the key to the owner-only key file that fcbench's clients read
    write_key_file: bool = True
    #: the GPUs already resolved for these specs (`plan_gpus`), so a start does not resolve
    #: them again; None: resolved at start from `virtual_gpus` / `require_gpu`
    gpu_plan: GpuPlan | None = None

    def resolve_gpus(self, specs: Sequence[FunctionSpec] = ()) -> tuple[list[Gpu], dict[str, Any]]:
        """The GPUs to place `specs` on and where they came from: `gpu_plan` when one was
        given, else `fcbench.harness.gpuplan.resolve_gpus` with this config's GPU options."""
        if self.gpu_plan is not None:
            return self.gpu_plan.fresh_gpus(), self.gpu_plan.info
        return resolve_gpus(specs, virtual_gpus=self.virtual_gpus, require_gpu=self.require_gpu)

    def gpus(self, specs: Sequence[FunctionSpec] = ()) -> list[Gpu]:
        """Virtual GPUs when asked for, else what NVML sees, else (for GPU `specs`) virtual GPUs
        sized like their gpuType; see `resolve_gpus`."""
        return self.resolve_gpus(specs)[0]


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
    #: where the GPUs came from (`HarnessConfig.resolve_gpus`'s description), set by `start`
    gpu_info: dict[str, Any] = field(default_factory=dict)
    #: the hooks the platform fires (instance_*, request); a fresh `Events` when None
    events: Events | None = None
    #: the key requests must be signed with, and the file it was written to (set by `start`)
    key: AccessKey | None = None
    key_path: Path | None = None
    _runner: web.AppRunner | None = None
    _port: int = 0

    async def start(self) -> str:
        cfg = self.config
        specs = [s.model_copy(update={"harness": s.harness.model_copy(
            update={"runtime": cfg.runtime})}) if cfg.runtime else s for s in self.specs]
        gpus, self.gpu_info = cfg.resolve_gpus(specs)
        if self.gpu_info["source"] == "virtual-default":
            log.info("%s", self.gpu_info["description"])
        runtimes = make_runtimes({s.harness.runtime for s in specs} or {"process"}, cfg.host)
        self.platform = Platform(runtimes, gpus=gpus, log_dir=cfg.log_dir, events=self.events)
        try:
            for spec in specs:
                await self.platform.add_function(spec)
            # no GPU found and none chosen: GPU functions created later get virtual cards too
            self.platform.add_virtual_gpus = self.gpu_info["source"] in (
                "virtual-default", "none") and not cfg.require_gpu
            self.key = cfg.access_key or AccessKey.generate()
            guard = Guard(self.key, host=cfg.host, allow_api_commands=cfg.allow_api_commands,
                          allowed_hosts=frozenset(h.lower() for h in cfg.allowed_hosts))
            self._runner = web.AppRunner(build_gateway(self.platform, guard), access_log=None,
                                         handle_signals=False)
            await self._runner.setup()
            answer_parse_errors_as_fc(self._runner.server)
            site = web.TCPSite(self._runner, cfg.host, cfg.port, reuse_address=True)
            await site.start()
            sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
            guard.port = self._port = sockets[0].getsockname()[1] if sockets else cfg.port
            self.url = guard.url
            if cfg.write_key_file:
                self.key_path = write_harness_key(self.key, cfg.host, self._port, self.url)
        except BaseException:
            await self.stop()
            raise
        return self.url

    async def stop(self) -> None:
        if self.key_path is not None and self.key is not None:
            remove_harness_key(self.key, self.config.host, self._port)
            self.key_path = None
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

    def __init__(self, specs: Sequence[FunctionSpec], config: HarnessConfig | None = None, *,
                 events: Events | None = None) -> None:
        self.harness = Harness(list(specs), config or HarnessConfig(), events=events)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fcbench-harness",
                                        daemon=True)
        self.url = ""

    def __enter__(self) -> HarnessThread:
        self._thread.start()
        self.url = self.call(self.harness.start())
        return self

    @property
    def key(self) -> AccessKey | None:
        """The access key requests to this harness must be signed with (set once started)."""
        return self.harness.key

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
