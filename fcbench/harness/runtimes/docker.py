"""The docker runtime: each instance is a container of the spec's image on the host network.

Key names: `DockerRuntime`, `PULL_POLICIES`; `remove_image` / `restore_tags` / `RemovedImage` are
re-exported from `fcbench.images.store`. Blocking docker SDK calls run in threads; docker and
requests errors are translated here (through `fcbench.images.engine`), so nothing above sees them.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..._net import free_port
from ...errors import (GpuRuntimeMissing, InstanceStartError, RuntimeBackendError, UsageError)
from ...images import store
from ...images.engine import connect, translated
from ...images.store import RemovedImage, remove_image, restore_tags
from ...protocol import H_BOOT_TS, H_IMPORT_MS, H_INSTANCE_ID, H_MODEL_LOAD_MS, H_READY_TS
from .base import Capabilities, InstanceHandle, StartRequest, wait_listening
from .process import instance_environment
from .watchdog import Watchdog

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from ...spec import FunctionSpec

__all__ = ["DEFAULT_PULL_POLICY", "LABEL_HARNESS", "LABEL_INSTANCE", "LABEL_RUNTIME",
           "PULL_POLICIES", "DockerRuntime", "RemovedImage", "remove_image", "restore_tags"]

#: ``missing``: pull only when the image is not local; ``always``: pull before every start
#: (a registry round trip even when nothing changed); ``never``: fail when it is not local.
PULL_POLICIES = ("missing", "always", "never")
DEFAULT_PULL_POLICY = "missing"
LABEL_HARNESS = "fcbench.harness"  # pid of the harness process
LABEL_INSTANCE = "fcbench.instance"
LABEL_FUNCTION = "fcbench.function"
LABEL_RUNTIME = "fcbench.runtime"  # one DockerRuntime object: what close() sweeps
_THREADS = 64
_PROBE_TIMEOUT_S = 2.0
_NAME_OK = re.compile(r"[^a-zA-Z0-9_.-]")
_GPU_HINT = ("install the NVIDIA Container Toolkit (`apt-get install nvidia-container-toolkit`), "
             "run `sudo nvidia-ctk runtime configure --runtime=docker` and restart dockerd; or run "
             "the function on the process runtime, or pass --virtual-gpus to place it without a GPU")

T = TypeVar("T")


@dataclass
class _Mount:
    host: Path
    target: str


@dataclass
class _Function:
    image: str
    mount: _Mount | None = None
    labels_checked: bool = False


@dataclass
class _Pulled:
    ms: float = 0.0
    bytes: int = 0
    layers: int = 0
    check_ms: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    size_bytes: int = 0


class DockerRuntime:
    """Runs instances as containers with host networking, one free loopback port each.

    Args:
        pull_policy: one of `PULL_POLICIES`.
        host: the address instances bind and the harness health-checks (keep loopback).
        client: a docker SDK client (default: connect to ``DOCKER_HOST`` / the local socket).
        init: run docker's init as PID 1, so SIGTERM stops an instance even while it imports.
    """

    name = "docker"
    capabilities = Capabilities(gpus=True, image_pull=True)

    def __init__(self, *, pull_policy: str = DEFAULT_PULL_POLICY, host: str = "127.0.0.1",
                 client: docker.DockerClient | None = None, init: bool = True) -> None:
        if pull_policy not in PULL_POLICIES:
            raise UsageError(f"pull_policy {pull_policy!r} is not one of {', '.join(PULL_POLICIES)}")
        self.pull_policy = pull_policy
        self.host = host
        self.init = init
        self.runtime_id = uuid.uuid4().hex[:12]
        self._client = client
        self._connect_lock = asyncio.Lock()
        self._functions: dict[str, _Function] = {}
        self._containers: dict[str, Container] = {}
        self._ports: dict[str, int] = {}
        #: instances of fcbench's own image (a sample image, its command kept): once ready,
        #: one ``GET /`` reads its start-up phases from its headers
        self._own_server: set[str] = set()
        self._pull_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: removes this runtime's containers if the harness dies without `close` (kill -9)
        self._watchdog: Watchdog | None = None
        # own threads: a burst of cold starts must not queue behind the loop's small default pool
        self._executor = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="docker")

    # ---- plumbing -------------------------------------------------------------------------
    async def client(self) -> docker.DockerClient:
        """The docker client, connected (and pinged) on first use.

        Raises:
            DockerUnavailable: no daemon answers; the message says how to start one.
        """
        async with self._connect_lock:
            if self._client is None:
                self._client = await asyncio.to_thread(connect)
        return self._client

    async def _thread(self, action: str, fn: Callable[..., T], *args: Any,
                      on_abandon: Callable[[T], None] | None = None, **kwargs: Any) -> T:
        """Run `fn` in a thread with errors translated; if cancelled, `on_abandon(result)` runs
        once the thread finishes (so a container created after cancellation is still removed)."""

        def call() -> T:
            with translated(action):
                return fn(*args, **kwargs)

        fut = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if on_abandon is not None:
                def done(f: asyncio.Future[T]) -> None:
                    if not f.cancelled() and f.exception() is None:
                        threading.Thread(target=on_abandon, args=(f.result(),),
                                         daemon=True).start()
                fut.add_done_callback(done)
            raise

    # ---- Runtime protocol -----------------------------------------------------------------
    async def prepare(self, spec: FunctionSpec) -> None:
        image = spec.custom_container_config.image
        if not image:
            raise UsageError(
                f"function {spec.name!r} runs on the docker runtime but has no "
                "customContainerConfig.image; build one with `fcbench images build mobilenet-v2` "
                "and set `image: fcbench/mobilenet-v2:latest`")
        client = await self.client()
        if self._watchdog is None:
            self._watchdog = Watchdog()
            self._watchdog.add_label(f"{LABEL_RUNTIME}={self.runtime_id}")
        fn = _Function(image=image)
        self._functions[spec.name] = fn
        labels = await self._thread(f"inspect image {image}", store.labels, client, image)
        if labels is not None:
            await self._resolve_mount(spec, fn, labels)

    async def _resolve_mount(self, spec: FunctionSpec, fn: _Function,
                             labels: dict[str, str]) -> None:
        """A ``mount``-mode image gets the model from the host: find (or build) it once."""
        fn.labels_checked = True
        if labels.get("fcbench.model-mode") != "mount":
            return
        from ...images.build import host_model_path

        model = labels.get("fcbench.model") or spec.environment_variables.get("FCBENCH_MODEL", "")
        target = labels.get("fcbench.model-path") or ""
        if not model or not target:
            raise UsageError(f"image {fn.image} is a mount-mode image without fcbench.model / "
                             "fcbench.model-path labels; rebuild it with `fcbench images build`")
        host = await asyncio.to_thread(host_model_path, model, spec.environment_variables)
        fn.mount = _Mount(host=host.resolve(), target=target)

    async def start(self, request: StartRequest) -> InstanceHandle:
        spec = request.spec
        client = await self.client()
        fn = self._functions.get(spec.name)
        if fn is None or fn.image != spec.custom_container_config.image:  # a version's image
            await self.prepare(spec)
            fn = self._functions[spec.name]
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        pulled = await self._ensure_image(client, fn.image)
        if not fn.labels_checked:
            await self._resolve_mount(spec, fn, pulled.labels)
        cc = spec.custom_container_config
        own_server = "fcbench.sample" in pulled.labels and not cc.command and not cc.entrypoint

        port = self._free_port()
        self._ports[request.instance_id] = port
        kwargs = self._create_kwargs(request, fn, port)
        t0 = time.perf_counter()
        container = await self._thread(
            f"create a container of {fn.image}", client.containers.create, **kwargs,
            on_abandon=_force_remove)
        create_ms = (time.perf_counter() - t0) * 1000.0
        self._containers[request.instance_id] = container
        t1 = time.perf_counter()
        try:
            await self._start_container(container, request, kwargs)
        except BaseException:
            self._containers.pop(request.instance_id, None)
            self._ports.pop(request.instance_id, None)
            raise
        start_ms = (time.perf_counter() - t1) * 1000.0
        if own_server:
            self._own_server.add(request.instance_id)

        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        threading.Thread(target=_watch_exit, args=(container, loop, exited), daemon=True,
                         name=f"docker-wait-{request.instance_id}").start()
        handle = InstanceHandle(instance_id=request.instance_id, function=spec.name,
                                log_path=request.log_path, exited=exited,
                                container_id=container.id)
        handle.phases_ms.update(image_pull=pulled.ms, image_check=pulled.check_ms,
                                container_create=create_ms, container_start=start_ms)
        handle.info.update(image=fn.image, port=port, container_name=kwargs["name"],
                           pull_bytes=pulled.bytes, pull_layers=pulled.layers,
                           pull_mb_s=(pulled.bytes / 1e6) / (pulled.ms / 1000.0)
                           if pulled.ms > 0 and pulled.bytes else 0.0,
                           image_size_bytes=pulled.size_bytes,
                           model_mount=str(fn.mount.host) if fn.mount else None,
                           container_started_ns=time.time_ns())
        task = asyncio.ensure_future(self._fill_pid(container, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    def _create_kwargs(self, request: StartRequest, fn: _Function, port: int) -> dict[str, Any]:
        from docker.types import DeviceRequest, Mount

        spec = request.spec
        # host networking: the container listens on a free host port, not on the spec's
        # customContainerConfig.port, so instances of one function do not collide
        env = instance_environment(request, port)
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the device request picks the GPU; inside it is #0
        env["FCBENCH_HOST"] = self.host
        kwargs: dict[str, Any] = {
            "image": fn.image,
            "name": _NAME_OK.sub("-", f"fcbench-{request.instance_id}-{self.runtime_id[:6]}"),
            "environment": env,
            "labels": {LABEL_HARNESS: str(os.getpid()), LABEL_INSTANCE: request.instance_id,
                       LABEL_FUNCTION: spec.name, LABEL_RUNTIME: self.runtime_id},
            "network_mode": "host",
            "init": self.init,
            "detach": True,
        }
        cc = spec.custom_container_config
        if cc.command:
            kwargs["command"] = list(cc.command)
        if cc.entrypoint:
            kwargs["entrypoint"] = list(cc.entrypoint)
        if fn.mount is not None:
            kwargs["mounts"] = [Mount(target=fn.mount.target, source=str(fn.mount.host),
                                      type="bind", read_only=True)]
            env["FCBENCH_MODEL_PATH"] = fn.mount.target
        if spec.memory_size:
            kwargs["mem_limit"] = f"{spec.memory_size}m"
        if spec.cpu:
            kwargs["nano_cpus"] = int(min(spec.cpu, float(os.cpu_count() or 1)) * 1e9)
        gpu = request.gpu
        if gpu is not None and not gpu.virtual:
            kwargs["device_requests"] = [DeviceRequest(device_ids=[str(gpu.index)],
                                                       capabilities=[["gpu"]])]
        return kwargs

    async def _start_container(self, container: Container, request: StartRequest,
                               kwargs: dict[str, Any]) -> None:
        from docker import errors

        def start() -> None:
            try:
                container.start()
            except errors.APIError as exc:
                # `docker run` exits 125 here; the created container would be left behind
                _force_remove(container)
                _append(request.log_path, f"docker start failed: {exc}\n")
                if kwargs.get("device_requests"):
                    raise GpuRuntimeMissing(
                        f"function {request.spec.name!r} needs a GPU but Docker cannot give one "
                        f"to a container ({_explain(exc)}); {_GPU_HINT}.") from exc
                raise InstanceStartError(
                    f"Docker could not start the container of {kwargs['image']} for instance "
                    f"{request.instance_id}: {_explain(exc)}; its log is {request.log_path}"
                ) from exc

        await self._thread(f"start a container of {kwargs['image']}", start,
                           on_abandon=lambda _r: _force_remove(container))

    async def _ensure_image(self, client: docker.DockerClient, image: str) -> _Pulled:
        lock = self._pull_locks.setdefault(image, asyncio.Lock())
        async with lock:  # concurrent cold starts of one image share one pull
            t0 = time.perf_counter()
            labels = await self._thread(f"inspect image {image}", store.labels, client, image)
            out = _Pulled(check_ms=(time.perf_counter() - t0) * 1000.0)
            if labels is None or self.pull_policy == "always":
                if self.pull_policy == "never":
                    raise RuntimeBackendError(
                        f"image {image} is not on this machine and pull_policy is 'never'; build "
                        "it with `fcbench images build` or allow pulls")
                t1 = time.perf_counter()
                out.bytes, out.layers = await self._thread(f"pull {image}", store.pull, client,
                                                           image)
                out.ms = (time.perf_counter() - t1) * 1000.0
                labels = await self._thread(f"inspect image {image}", store.labels, client,
                                            image)
            out.labels = labels or {}
            out.size_bytes = int(out.labels.pop("__size__", "0") or 0)
            return out

    def _free_port(self) -> int:
        try:
            return free_port(self.host, avoid=set(self._ports.values()))
        except OSError as exc:
            raise RuntimeBackendError(f"could not find a free loopback port for a container: "
                                      f"{exc}") from exc

    async def _fill_pid(self, container: Container, handle: InstanceHandle) -> None:
        try:
            await self._thread("inspect a container", container.reload)
            handle.pid = int(container.attrs.get("State", {}).get("Pid") or 0) or None
        except Exception:  # noqa: BLE001 - the pid is informational
            pass

    async def wait_ready(self, handle: InstanceHandle, timeout: float) -> None:
        """Ready once the container's port accepts a TCP connection (FC's contract); fcbench's
        own server is then asked ``GET /`` once for its start-up phases."""
        port = int(handle.info["port"])
        await wait_listening(handle, self.host, port, timeout,
                             what=f"container {handle.info['container_name']}",
                             before_error=lambda: self._save_logs(handle))
        handle.base_url = f"http://{self.host}:{port}"
        if handle.instance_id not in self._own_server:
            return  # a foreign server's phases are unknown: absent, not 0
        headers = await _probe(self.host, port)
        if headers is None or headers.get(H_INSTANCE_ID) != handle.instance_id:
            return  # not the server we started (or it did not answer): no phases to trust
        for phase, header in (("runtime_boot", H_IMPORT_MS), ("model_load", H_MODEL_LOAD_MS)):
            value = _float(headers.get(header))
            if value is not None:
                handle.phases_ms[phase] = value
        for key, header in (("boot_ns", H_BOOT_TS), ("ready_ns", H_READY_TS)):
            if headers.get(header, "").isdigit():
                handle.info[key] = int(headers[header])

    async def _save_logs(self, handle: InstanceHandle) -> None:
        container = self._containers.get(handle.instance_id)
        if container is None:
            return
        try:
            await self._thread("read container logs", _write_logs, container, handle.log_path)
        except Exception:  # noqa: BLE001 - logs are best effort; the error names the path
            pass

    async def stop(self, handle: InstanceHandle, timeout: float = 5.0) -> None:
        handle.stopping = True
        container = self._containers.pop(handle.instance_id, None)
        self._ports.pop(handle.instance_id, None)
        self._own_server.discard(handle.instance_id)
        if container is None:
            return
        await self._thread(f"stop container {container.name}", _stop_and_remove, container,
                           handle.log_path, timeout)
        try:
            await asyncio.wait_for(asyncio.shield(handle.exited), 5.0)
        except asyncio.TimeoutError:
            pass

    async def close(self) -> None:
        """Stop every instance and remove every container this runtime created."""
        if self._client is None:
            self._executor.shutdown(wait=False)
            return
        containers = list(self._containers.items())
        self._containers.clear()
        await asyncio.gather(*(self._thread("stop a container", _stop_and_remove, c, None, 2.0)
                               for _, c in containers), return_exceptions=True)
        try:
            await self._thread("remove containers", self.sweep_sync)
            if self._watchdog is not None:  # swept: nothing left for it to remove
                self._watchdog.discard_label(f"{LABEL_RUNTIME}={self.runtime_id}")
        finally:
            self._executor.shutdown(wait=False)
            if self._watchdog is not None:
                self._watchdog.close()

    def sweep_sync(self) -> int:
        """Remove every container labelled with this runtime (blocking); returns how many."""
        if self._client is None:
            return 0
        found = self._client.containers.list(
            all=True, filters={"label": f"{LABEL_RUNTIME}={self.runtime_id}"})
        for c in found:
            _force_remove(c)
        return len(found)

    # ---- images ---------------------------------------------------------------------------
    async def remove_image(self, ref: str, *, all_tags: bool = True) -> RemovedImage:
        """Remove image `ref` so the next start pulls it for real (see `remove_image`)."""
        client = await self.client()
        return await self._thread(f"remove image {ref}", store.remove, client, ref, all_tags)

    async def restore_tags(self, removed: RemovedImage) -> None:
        """Give every tag `remove_image` took back to the image (once it has been pulled again)."""
        client = await self.client()
        await self._thread(f"tag image {removed.ref}", store.retag, client, removed)

    async def image_present(self, ref: str) -> bool:
        """Whether `ref` is on this machine."""
        client = await self.client()
        return await self._thread(f"inspect image {ref}", store.labels, client, ref) is not None


# ---- blocking helpers (run in threads) ------------------------------------------------------
def _watch_exit(container: Container, loop: asyncio.AbstractEventLoop,
                fut: asyncio.Future[int]) -> None:
    """Block in ``docker wait`` and resolve `fut` with the exit code when the container stops."""
    try:
        code = int(container.wait().get("StatusCode", -1))
    except Exception:  # noqa: BLE001 - removed, daemon gone: the instance is gone either way
        code = -1

    def resolve() -> None:
        if not fut.done():
            fut.set_result(code)

    try:
        loop.call_soon_threadsafe(resolve)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _write_logs(container: Container, path: Path) -> None:
    data = container.logs(stdout=True, stderr=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(data)


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def _stop_and_remove(container: Container, log_path: Path | None, timeout: float) -> None:
    from docker import errors

    try:
        container.stop(timeout=max(1, math.ceil(timeout)))
        if log_path is not None:
            _write_logs(container, log_path)
    except errors.NotFound:
        return
    except errors.APIError:
        pass  # still remove it below
    _force_remove(container)


def _force_remove(container: Container) -> None:
    from docker import errors

    try:
        container.remove(force=True, v=True)
    except errors.NotFound:
        pass
    except errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise


async def _probe(host: str, port: int) -> dict[str, str] | None:
    """GET / once (fcbench's own server: its timeline headers); the response headers
    (lower-case) or None if nothing answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                _PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                     .encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError):
        return None
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return None
    headers = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def _explain(exc: BaseException) -> str:
    return str(getattr(exc, "explanation", None) or exc).strip()


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
