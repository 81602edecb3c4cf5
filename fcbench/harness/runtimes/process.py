"""The embedded default runtime: each instance is a local ``python -m fcbench.server`` process.

Key names: `ProcessRuntime`. The instance tells the harness it is ready through a pipe (no polling)
and holds a "lifeline" pipe whose EOF makes it exit, so instances never outlive the harness.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from ...errors import InstanceStartError
from .base import Capabilities, InstanceHandle, StartRequest, log_tail

if TYPE_CHECKING:
    from ...spec import FunctionSpec

__all__ = ["HARNESS_REGION", "ProcessRuntime", "instance_environment", "interpreter_environment"]

#: What ``FC_REGION`` reads inside a harness instance (FC sets the function's region).
HARNESS_REGION = "local"

# What a host process needs to run the interpreter and its native libraries, and nothing of the
# operator's: on FC an instance sees only its function's variables and FC's own, so credentials
# exported in the shell that started the harness must not reach it.
_INTERPRETER_KEYS = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV",
                               "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "SYSTEMROOT",
                               # where the harness prepared the sample models (the "image")
                               "FCBENCH_CACHE_DIR"})
_INTERPRETER_PREFIXES = ("LC_", "OPENBLAS_")  # OPENBLAS_CORETYPE keeps old OpenBLAS builds sane


def interpreter_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The part of the harness's own environment a process instance inherits."""
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in environ.items()
            if k in _INTERPRETER_KEYS or k.startswith(_INTERPRETER_PREFIXES)}


def instance_environment(request: StartRequest) -> dict[str, str]:
    """The environment an instance sees on every runtime: FC's own variables, the spec's
    `environmentVariables` and the GPU placement."""
    spec = request.spec
    env = {
        "FC_FUNCTION_NAME": spec.name,
        "FC_FUNCTION_MEMORY_SIZE": str(spec.memory_size or 0),
        "FC_INSTANCE_ID": request.instance_id,
        "FC_REGION": HARNESS_REGION,
        "FC_SERVER_PORT": str(spec.custom_container_config.port),
        "FC_CUSTOM_LISTEN_PORT": str(spec.custom_container_config.port),
        "FCBENCH_INSTANCE_ID": request.instance_id,
        "FCBENCH_INSTANCE_CONCURRENCY": str(spec.instance_concurrency),
        **spec.environment_variables,
    }
    if request.gpu is not None:
        env["FCBENCH_GPU_MEM_LIMIT_MB"] = str(spec.gpu_memory_mb)
        if not request.gpu.virtual:
            env["CUDA_VISIBLE_DEVICES"] = str(request.gpu.uuid or request.gpu.index)
    return env


class ProcessRuntime:
    """Runs instances as child processes on 127.0.0.1, each on a port it picks itself."""

    name = "process"
    capabilities = Capabilities(gpus=True, image_pull=False)

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._pipes: dict[str, tuple[int, int]] = {}  # instance -> (ready read fd, lifeline fd)

    async def prepare(self, spec: FunctionSpec) -> None:
        from ...models import MODELS, prepare_model

        env = spec.environment_variables
        model = env.get("FCBENCH_MODEL", "mobilenet-v2")
        # a user's own model file needs no preparation, and importing the model module here
        # (torch, diffusers...) would only slow the harness down
        if spec.harness.command is None and model in MODELS and "FCBENCH_MODEL_PATH" not in env:
            await asyncio.to_thread(prepare_model, model, spec.environment_variables)

    async def start(self, request: StartRequest) -> InstanceHandle:
        spec = request.spec
        argv = list(spec.harness.command or [sys.executable, "-m", "fcbench.server"])
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        env = {**interpreter_environment(), **instance_environment(request),
               "FC_SERVER_PORT": "0", "FC_CUSTOM_LISTEN_PORT": "0", "FCBENCH_HOST": self.host,
               "FCBENCH_READY_FD": str(ready_w), "FCBENCH_LIFELINE_FD": str(life_r)}
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(request.log_path, "ab") as log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(ready_w, life_r), start_new_session=True)
            except OSError as exc:
                for fd in (ready_r, ready_w, life_r, life_w):
                    os.close(fd)
                raise InstanceStartError(
                    f"cannot run {argv[0]!r} for function {spec.name!r}: {exc.strerror}; "
                    "check harness.command in the spec") from exc
            finally:
                os.close(ready_w)
                os.close(life_r)
        spawn_ms = (time.perf_counter() - t0) * 1000.0
        self._procs[request.instance_id] = proc
        self._pipes[request.instance_id] = (ready_r, life_w)
        exited = asyncio.ensure_future(proc.wait())
        handle = InstanceHandle(instance_id=request.instance_id, function=spec.name,
                                log_path=request.log_path, exited=exited, pid=proc.pid)
        handle.phases_ms["spawn"] = spawn_ms
        handle.info["spawn_wall_ns"] = time.time_ns() - int(spawn_ms * 1e6)
        return handle

    async def wait_ready(self, handle: InstanceHandle, timeout: float) -> None:
        ready_r, life_w = self._pipes[handle.instance_id]
        self._pipes[handle.instance_id] = (-1, life_w)  # the transport below owns ready_r now
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ready_r, "rb"))
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        except asyncio.TimeoutError:
            raise InstanceStartError(
                f"instance {handle.instance_id} did not become ready within {timeout:g} s "
                f"(harness.startTimeout); its log is {handle.log_path}") from None
        finally:
            transport.close()
        if not line:
            code = await _exit_code(handle)
            tail = log_tail(handle.log_path)
            raise InstanceStartError(
                f"instance {handle.instance_id} exited with code {code} before it was ready; "
                f"its log is {handle.log_path}" + (f"\n--- last lines ---\n{tail}" if tail else ""))
        msg = json.loads(line)
        handle.base_url = f"http://{self.host}:{msg['port']}"
        handle.info.update(msg)
        handle.phases_ms["runtime_boot"] = float(msg["import_ms"])
        handle.phases_ms["model_load"] = float(msg["model_load_ms"])

    async def stop(self, handle: InstanceHandle, timeout: float = 5.0) -> None:
        handle.stopping = True
        proc = self._procs.pop(handle.instance_id, None)
        pipes = self._pipes.pop(handle.instance_id, None)
        if proc is not None and proc.returncode is None:
            try:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(asyncio.shield(handle.exited), timeout)
            except ProcessLookupError:
                pass
            except asyncio.TimeoutError:
                proc.kill()
                await handle.exited
        if pipes is not None:
            for fd in (fd for fd in pipes if fd >= 0):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def kill_all_now(self) -> None:
        """Last-resort synchronous cleanup (interpreter exit): SIGKILL every instance."""
        for proc in self._procs.values():
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass

    async def close(self) -> None:
        self.kill_all_now()


async def _exit_code(handle: InstanceHandle) -> int | str:
    try:
        return await asyncio.wait_for(asyncio.shield(handle.exited), 2.0)
    except asyncio.TimeoutError:
        return "unknown"
