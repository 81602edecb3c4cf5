"""The embedded default runtime: each instance is a local ``python -m fcbench.server`` process.

Key names: `ProcessRuntime`, `STOP_GRACE_S`. Each instance gets a free loopback port in
``FC_SERVER_PORT`` / ``FC_CUSTOM_LISTEN_PORT`` and is ready, as on FC, once that port accepts a TCP
connection (`wait_listening`). fcbench's own server also writes one JSON line on a *ready* pipe
when it listens (its start-up phases, and no polling); any instance may, none needs to. A
"lifeline" pipe's EOF makes fcbench's own server exit (a `harness.command` need not).

An instance is a process group: it starts in its own session, so its pid is its group id, and
whatever it starts belongs to the group. Reclaim, delete and shutdown send SIGTERM to the group,
give it `STOP_GRACE_S` seconds (or until the instance's own process exits), then SIGKILL the
group — as a container's processes die with its PID 1; an instance process that exits on its own
takes its group with it. A harness killed with SIGKILL leaves nothing either: one watchdog helper
per runtime (`fcbench.harness.runtimes.watchdog`) knows the groups and kills them when its pipe
from the harness closes. Not covered: a descendant that calls setsid() or setpgid() itself leaves
the group (only a cgroup would hold it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..._net import free_port
from ...errors import InstanceStartError, RuntimeBackendError
from .base import Capabilities, InstanceHandle, StartRequest, wait_listening
from .watchdog import Watchdog

if TYPE_CHECKING:
    from ...spec import FunctionSpec

__all__ = ["HARNESS_REGION", "STOP_GRACE_S", "ProcessRuntime", "instance_environment",
           "interpreter_environment"]

#: What ``FC_REGION`` reads inside a harness instance (FC sets the function's region).
HARNESS_REGION = "local"
#: Seconds an instance's process group gets between SIGTERM and SIGKILL when it is stopped.
STOP_GRACE_S = 5.0

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


def instance_environment(request: StartRequest, port: int | None = None) -> dict[str, str]:
    """The environment an instance sees on every runtime: FC's own variables, the spec's
    `environmentVariables` and the GPU placement. `port`: where it must listen (the runtime's
    pick; default the spec's `customContainerConfig.port`)."""
    spec = request.spec
    port = spec.custom_container_config.port if port is None else port
    env = {
        "FC_FUNCTION_NAME": spec.name,
        "FC_FUNCTION_MEMORY_SIZE": str(spec.memory_size or 0),
        "FC_INSTANCE_ID": request.instance_id,
        "FC_REGION": HARNESS_REGION,
        "FC_SERVER_PORT": str(port),
        "FC_CUSTOM_LISTEN_PORT": str(port),
        "FCBENCH_INSTANCE_ID": request.instance_id,
        "FCBENCH_INSTANCE_CONCURRENCY": str(spec.instance_concurrency),
        **spec.environment_variables,
    }
    if request.gpu is not None:
        env["FCBENCH_GPU_MEM_LIMIT_MB"] = str(spec.gpu_memory_mb)
        if not request.gpu.virtual:
            env["CUDA_VISIBLE_DEVICES"] = str(request.gpu.uuid or request.gpu.index)
    return env


@dataclass(eq=False)
class _Instance:
    """What the runtime holds for one started instance."""

    proc: asyncio.subprocess.Process
    exited: asyncio.Future[int]
    ready_r: int  # -1 once `wait_ready` owns it
    life_w: int
    port: int
    #: fcbench's own server, which always writes the ready line: only that line counts for it
    own_server: bool
    #: a read end of the ready pipe held for the instance's life: a line written after the port
    #: already decided must not fail with EPIPE (and kill a server that wrote it)
    ready_hold: int = -1
    stopping: bool = False
    #: its group was SIGKILLed and forgotten: never signal that number again (it may be reused)
    finished: bool = False

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: it leads its own session and group


class ProcessRuntime:
    """Runs instances as child processes on 127.0.0.1, each on a free port the runtime picks."""

    name = "process"
    capabilities = Capabilities(gpus=True, image_pull=False)

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self._instances: dict[str, _Instance] = {}
        self.watchdog = Watchdog()

    async def prepare(self, spec: FunctionSpec) -> None:
        from ...models import MODELS, prepare_model

        # here, not at the first start: its spawn stays out of the first cold start
        self.watchdog.ensure()
        env = spec.environment_variables
        model = env.get("FCBENCH_MODEL", "mobilenet-v2")
        # a user's own model file needs no preparation, and importing the model module here
        # (torch, diffusers...) would only slow the harness down
        if spec.harness.command is None and model in MODELS and "FCBENCH_MODEL_PATH" not in env:
            await asyncio.to_thread(prepare_model, model, spec.environment_variables)

    async def start(self, request: StartRequest) -> InstanceHandle:
        spec = request.spec
        argv = list(spec.harness.command or [sys.executable, "-m", "fcbench.server"])
        self.watchdog.ensure()  # a no-op once it runs (one waitpid)
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        port = self._free_port()
        with open(request.log_path, "ab") as log:
            ready_r, ready_w, life_r, life_w = _two_pipes()
            env = {**interpreter_environment(), **instance_environment(request, port),
                   "FCBENCH_HOST": self.host,
                   "FCBENCH_READY_FD": str(ready_w), "FCBENCH_LIFELINE_FD": str(life_r)}
            t0 = time.perf_counter()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(ready_w, life_r), start_new_session=True)
            except BaseException as exc:
                os.close(ready_r)
                os.close(life_w)
                if isinstance(exc, OSError):
                    raise InstanceStartError(
                        f"cannot run {argv[0]!r} for function {spec.name!r}: "
                        f"{exc.strerror or exc}; check harness.command in the spec") from exc
                raise
            finally:
                # the child has its copies, or there is no child: each end is closed once here
                os.close(ready_w)
                os.close(life_r)
        spawn_ms = (time.perf_counter() - t0) * 1000.0
        exited = asyncio.ensure_future(proc.wait())
        inst = _Instance(proc, exited, ready_r, life_w, port,
                         own_server=spec.harness.command is None)
        self._instances[request.instance_id] = inst
        self.watchdog.add(inst.pgid)
        exited.add_done_callback(lambda _f: self._leader_exited(request.instance_id, inst))
        handle = InstanceHandle(instance_id=request.instance_id, function=spec.name,
                                log_path=request.log_path, exited=exited, pid=proc.pid)
        handle.phases_ms["spawn"] = spawn_ms
        handle.info["port"] = port
        handle.info["spawn_wall_ns"] = time.time_ns() - int(spawn_ms * 1e6)
        return handle

    def _free_port(self) -> int:
        try:
            return free_port(self.host, avoid={i.port for i in self._instances.values()})
        except OSError as exc:
            raise RuntimeBackendError(f"could not find a free loopback port for an instance: "
                                      f"{exc}") from exc

    async def wait_ready(self, handle: InstanceHandle, timeout: float) -> None:
        """Ready once the port accepts a connection or the instance's ready line arrives (for
        fcbench's own server, which always sends it: only the line)."""
        inst = self._instances.get(handle.instance_id)
        if inst is None or inst.ready_r < 0:
            raise InstanceStartError(f"instance {handle.instance_id} is gone or already waited "
                                     f"for; its log is {handle.log_path}")
        ready_r, inst.ready_r = inst.ready_r, -1  # the transport below owns it now
        inst.ready_hold = os.dup(ready_r)
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ready_r, "rb"))
        try:
            msg = await wait_listening(handle, self.host, inst.port, timeout,
                                       signal=_ready_line(reader), probe=not inst.own_server)
        finally:
            transport.close()
        port = inst.port
        if msg is not None:
            if isinstance(msg.get("port"), int) and msg["port"] > 0:
                port = msg["port"]  # an instance that picked its own port says so
            handle.info.update(msg)
            # the instance's own split; a server that does not report one has none (not 0)
            for phase, key in (("runtime_boot", "import_ms"), ("model_load", "model_load_ms")):
                if isinstance(msg.get(key), (int, float)):
                    handle.phases_ms[phase] = float(msg[key])
        handle.info["port"] = port
        handle.base_url = f"http://{self.host}:{port}"

    async def stop(self, handle: InstanceHandle, timeout: float = STOP_GRACE_S) -> None:
        """SIGTERM the instance's group, SIGKILL it after `timeout` s or once the instance's
        process exits, whichever is first; wait for that process."""
        handle.stopping = True
        inst = self._instances.pop(handle.instance_id, None)
        if inst is not None:
            await self._stop_group(inst, timeout)

    async def _stop_group(self, inst: _Instance, grace: float) -> None:
        inst.stopping = True
        try:
            if not inst.finished and not inst.exited.done():
                _killpg(inst.pgid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(inst.exited), grace)
                except asyncio.TimeoutError:
                    pass
        finally:
            # once the leader is gone nothing waits for the rest (as in a container when PID 1
            # exits): what ignored SIGTERM or outlived its leader is killed now; on cancellation
            # too, so no group is left unwatched
            self._finish(inst)
            if inst.ready_r >= 0:
                _close(inst.ready_r)
                inst.ready_r = -1
        await inst.exited

    def _leader_exited(self, instance_id: str, inst: _Instance) -> None:
        """The instance's process exited by itself (a crash, a kill): its group goes with it."""
        if inst.stopping:
            return  # `_stop_group` finishes it
        self._finish(inst)
        if inst.ready_r < 0 and self._instances.get(instance_id) is inst:
            del self._instances[instance_id]  # nobody calls stop() for a crashed instance

    def _finish(self, inst: _Instance) -> None:
        """SIGKILL what is left of the group, stop watching it and drop the lifeline."""
        if inst.finished:
            return
        inst.finished = True
        _killpg(inst.pgid, signal.SIGKILL)
        self.watchdog.discard(inst.pgid)
        _close(inst.life_w)
        _close(inst.ready_hold)
        inst.life_w = inst.ready_hold = -1

    def kill_all_now(self) -> None:
        """Last-resort synchronous cleanup (interpreter exit): SIGKILL every instance's group."""
        for inst in list(self._instances.values()):
            self._finish(inst)

    async def close(self) -> None:
        """Stop the groups still here (as `stop` does), then let the watchdog exit."""
        insts = list(self._instances.values())
        self._instances.clear()
        try:
            await asyncio.gather(*(self._stop_group(i, STOP_GRACE_S) for i in insts))
        finally:
            self.watchdog.close()  # every group is stopped: it finds none left and exits


def _two_pipes() -> tuple[int, int, int, int]:
    """(ready read, ready write, lifeline read, lifeline write); nothing left open on failure."""
    ready_r, ready_w = os.pipe()
    try:
        life_r, life_w = os.pipe()
    except BaseException:
        os.close(ready_r)
        os.close(ready_w)
        raise
    return ready_r, ready_w, life_r, life_w


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # no member left (an unreaped leader still counts as one)
        pass
    except PermissionError:  # a member that changed its user: nothing more a signal can do
        pass


def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


async def _ready_line(reader: asyncio.StreamReader) -> dict | None:
    """The instance's JSON line on the ready pipe; None when none will come (EOF, not JSON)."""
    try:
        line = await reader.readline()
        msg = json.loads(line) if line.strip() else None
    except (OSError, ValueError):  # a closed pipe, an overlong line, not JSON
        return None
    return msg if isinstance(msg, dict) else None
