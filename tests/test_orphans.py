"""Instances leave nothing behind: reclaim, DeleteFunction, shutdown and a harness killed with
SIGKILL take the instance's whole process group, grandchildren that ignore SIGTERM and the lifeline
included; a failed spawn names its real error and leaks no fd.

Real harness, real processes: the instance is `STUBBORN`, an entry script (`harness.command`) that
starts grandchildren, ignores SIGTERM and its lifeline, then execs `wire_instance.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from fcbench.errors import InstanceStartError
from fcbench.harness.runtimes.base import StartRequest
from fcbench.harness.runtimes.docker import LABEL_RUNTIME
from fcbench.harness.runtimes.process import STOP_GRACE_S, ProcessRuntime
from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.spec import FunctionSpec, function_spec_from_dict
from fcbench.targets.harness_client import HarnessClient
from harness_utils import http, instances, invoke

# fixtures are imported by name so pytest finds them here
from docker_fixtures import docker_client  # noqa: F401

WIRE_INSTANCE = Path(__file__).with_name("wire_instance.py")

# `polite` keeps SIGTERM's default action, `stubborn` inherits the ignored SIGTERM (ignored
# signals survive fork and exec); the lifeline fd is swapped for a pipe that never closes; exec
# keeps the pid, so the server stays the group's leader.
STUBBORN = f"""
import json, os, signal, subprocess, sys
polite = subprocess.Popen(["sleep", "300"])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
stubborn = subprocess.Popen(["sleep", "300"])
path = os.path.join(os.environ["ORPHAN_DIR"], os.environ["FC_INSTANCE_ID"] + ".json")
with open(path + ".tmp", "w") as f:
    json.dump({{"polite": polite.pid, "stubborn": stubborn.pid}}, f)
os.rename(path + ".tmp", path)
os.close(int(os.environ["FCBENCH_LIFELINE_FD"]))
r, w = os.pipe()
os.set_inheritable(r, True)
os.set_inheritable(w, True)
os.environ["FCBENCH_LIFELINE_FD"] = str(r)
os.execv(sys.executable, [sys.executable, {str(WIRE_INSTANCE)!r}])
"""


def _state(pid: int) -> str | None:
    """The /proc state letter of `pid`, or None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _gone(pid: int, *, reaped: bool) -> bool:
    # A dead process whose parent died too waits for PID 1 to reap it, and some PID 1s (this
    # sandbox's, many containers') never do: such a zombie runs nothing and holds no fd or memory,
    # so it counts as gone. A harness's own child must be reaped (the harness waits for it).
    state = _state(pid)
    return state is None or (not reaped and state in ("Z", "X"))


def _wait_gone(pids: dict[str, int], timeout: float, *, reaped: tuple[str, ...] = ()) -> list[str]:
    """Poll until every pid is gone; returns the names of those still there."""
    deadline = time.monotonic() + timeout
    while True:
        left = [n for n, p in pids.items() if not _gone(p, reaped=n in reaped)]
        if not left or time.monotonic() > deadline:
            return [f"{n} (pid {pids[n]}, state {_state(pids[n])})" for n in left]
        time.sleep(0.05)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def survivors() -> Iterator[list[int]]:
    """Pids a test started; any still running at the end is killed (so a failure leaks none)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid, reaped=False):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _stubborn_doc(tmp_path: Path) -> dict:
    script = tmp_path / "stubborn_entry.py"
    script.write_text(STUBBORN)
    return {"functionName": "stubborn", "instanceConcurrency": 1,
            "environmentVariables": {"ORPHAN_DIR": str(tmp_path)},
            "harness": {"runtime": "process", "idleTimeout": 600,
                        "command": [sys.executable, str(script)]}}


@pytest.fixture
def stubborn(tmp_path: Path) -> FunctionSpec:
    return function_spec_from_dict(_stubborn_doc(tmp_path))


def _start_one(url: str, tmp_path: Path, survivors: list[int]) -> dict[str, int]:
    """Invoke once; the instance's pids: leader, polite and stubborn grandchildren."""
    status, headers, body = invoke(url, "stubborn", {"id": 1})
    assert status == 200, body
    iid = headers["x-fc-instance-id"]
    pids = {"leader": next(i["pid"] for i in instances(url) if i["instance_id"] == iid),
            **json.loads((tmp_path / f"{iid}.json").read_text())}
    survivors.extend(pids.values())
    assert all(_state(p) not in (None, "Z") for p in pids.values()), pids
    assert {os.getpgid(p) for p in pids.values()} == {pids["leader"]}
    return pids


def _in_background(fn: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


@pytest.mark.slow
def test_reclaim_terms_the_group_then_kills_it_after_the_grace(tmp_path, stubborn, survivors):
    with HarnessThread([stubborn], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        pids = _start_one(h.url, tmp_path, survivors)
        t0 = time.monotonic()
        done: list[int] = []
        reclaim = _in_background(lambda: done.append(HarnessClient(h.url).reclaim()))
        # SIGTERM reached the whole group at once: the grandchild that honours it is gone while
        # the leader, which ignores it, still has its grace period
        assert not _wait_gone({"polite": pids["polite"]}, STOP_GRACE_S - 1)
        assert _state(pids["leader"]) not in (None, "Z")
        reclaim.join(STOP_GRACE_S + 10)
        assert done == [1]
        assert time.monotonic() - t0 >= STOP_GRACE_S - 0.5, "SIGKILL came before the grace"
        assert not _wait_gone(pids, 3, reaped=("leader",))


@pytest.mark.slow
def test_delete_function_kills_the_whole_group(tmp_path, stubborn, survivors):
    with HarnessThread([stubborn], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        pids = _start_one(h.url, tmp_path, survivors)
        status, _, body = http("DELETE", f"{h.url}/2023-03-30/functions/stubborn")
        assert status == 204, body
        assert not _wait_gone(pids, 3, reaped=("leader",))


@pytest.mark.slow
def test_harness_shutdown_kills_the_whole_group_and_the_watchdog_exits(tmp_path, stubborn,
                                                                       survivors):
    h = HarnessThread([stubborn], HarnessConfig(port=0, log_dir=tmp_path / "logs")).__enter__()
    try:
        pids = _start_one(h.url, tmp_path, survivors)
        watchdog = getattr(h.harness.platform.runtimes["process"], "watchdog", None)
        helper = watchdog.pid if watchdog is not None else None
    finally:
        h.close()
    assert not _wait_gone(pids, 3, reaped=("leader",))
    assert helper is not None and _gone(helper, reaped=True), "the watchdog exited, reaped"


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.mark.slow
def test_a_harness_killed_with_sigkill_leaves_nothing_behind(tmp_path, survivors):
    spec = tmp_path / "stubborn.yaml"
    spec.write_text(yaml.safe_dump(_stubborn_doc(tmp_path)))
    proc = subprocess.Popen([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                             "--port", "0", "--log-dir", str(tmp_path / "logs")],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        pids = _start_one(match.group(1), tmp_path, survivors)
        helpers = _children(proc.pid) - {pids["leader"]}  # the watchdog
        survivors.extend(helpers)
        for pid in helpers:  # in its own session: a killpg of the harness's group spares it
            assert os.getsid(pid) == pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert not _wait_gone(pids, 5)
        assert len(helpers) == 1, "one watchdog per runtime"
        assert not _wait_gone({"watchdog": helpers.pop()}, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_instance_process_that_dies_takes_its_group_along(tmp_path, stubborn, survivors):
    with HarnessThread([stubborn], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        pids = _start_one(h.url, tmp_path, survivors)
        os.kill(pids["leader"], signal.SIGKILL)
        assert not _wait_gone(pids, 3, reaped=("leader",))


def _missing_program_spec(tmp_path: Path) -> tuple[FunctionSpec, str]:
    program = str(tmp_path / "no-such-program")
    return function_spec_from_dict({"functionName": "missing", "harness": {
        "runtime": "process", "command": [program, "--flag"]}}), program


def test_a_failed_spawn_raises_instance_start_error_and_leaks_no_fd(tmp_path):
    spec, program = _missing_program_spec(tmp_path)

    async def main() -> tuple[int, int, list[str]]:
        runtime = ProcessRuntime()
        await runtime.prepare(spec)  # starts the watchdog: one pipe held for the runtime's life
        before, errors = _fds(), []
        for i in range(5):
            with pytest.raises(InstanceStartError) as info:
                await runtime.start(StartRequest(spec, f"i{i}", None, tmp_path / f"i{i}.log"))
            errors.append(str(info.value))
        after = _fds()
        await runtime.close()
        return before, after, errors

    before, after, errors = asyncio.run(main())
    assert after == before, f"{after - before} fds leaked by 5 failed starts"
    for message in errors:
        assert program in message and "No such file or directory" in message, message


def test_a_failed_spawn_answers_502_with_the_real_error(tmp_path):
    spec, program = _missing_program_spec(tmp_path)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        status, _, body = invoke(h.url, "missing")
        assert status == 502, body
        message = json.loads(body)["Message"]
        assert program in message and "No such file or directory" in message, message
        assert "Bad file descriptor" not in message
        before = _fds()
        for _ in range(5):
            assert invoke(h.url, "missing")[0] == 502
        deadline = time.monotonic() + 3  # the server closes its side of each connection late
        while _fds() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _fds() <= before


# A harness that runs one docker function (its image need not exist: `prepare` only inspects it)
DOCKER_HARNESS = """
import asyncio, sys, time
from fcbench.harness.runtimes.docker import DockerRuntime
from fcbench.spec import function_spec_from_dict
runtime = DockerRuntime()
asyncio.run(runtime.prepare(function_spec_from_dict({"functionName": "d", "harness": {
    "runtime": "docker"}, "customContainerConfig": {"image": "fcbench/absent:none"}})))
print(runtime.runtime_id, flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_a_killed_harness_leaves_no_docker_container(docker_client):  # noqa: F811
    images = sorted(docker_client.images.list(), key=lambda i: not i.tags)  # tagged ones first
    if not images:
        pytest.skip("no local image to create a container from")
    proc = subprocess.Popen([sys.executable, "-c", DOCKER_HARNESS], stdout=subprocess.PIPE,
                            text=True)
    container = None
    try:
        runtime_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert runtime_id, "the harness did not prepare its runtime"
        # as the runtime labels the containers it starts
        container = docker_client.containers.create(
            images[0].id, command=["sleep", "300"], labels={LABEL_RUNTIME: runtime_id})
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 20
        while docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUNTIME}="
                                                                         f"{runtime_id}"}):
            assert time.monotonic() < deadline, "the container outlived the harness"
            time.sleep(0.1)
        container = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if container is not None:
            container.remove(force=True)
