"""A helper process that cleans up after the harness when it dies: SIGKILLs the instance process
groups it knows and removes the docker containers with the labels it knows.

Key names: `Watchdog` (the harness's end), `main` (the helper, run as
``python -I -S watchdog.py HARNESS_PID`` with the read end of a pipe as its stdin).

The harness writes ``+PGID`` / ``-PGID`` lines as instance groups come and go (``+LLABEL`` /
``-LLABEL`` for container labels, ``key=value``). When the pipe hits end of file — the harness
exited or was killed, however (``kill -9`` included), since the kernel closes its fds — or the
helper finds itself reparented, it SIGKILLs every group it still knows, removes the containers
with the labels it still knows, and exits. A harness that closes normally stops its groups
(and removes its containers) first and says so, so the helper finds nothing left.

Why a helper and not ``PR_SET_PDEATHSIG`` in each instance: the death signal fires when the
*thread* that forked the child exits, not the process, and the harness often runs on a
background thread (`HarnessThread`) whose end says nothing about the instances' lives; it would
also need ``preexec_fn``, which is unsafe in a threaded program and slows every spawn, and it
reaches only the direct child, not what the instance starts. One helper per runtime costs one
spawn per harness and one pipe write per instance start and stop.

This file is also the helper's program: it imports only os, signal, sys and select (the harness
side imports `subprocess` when it spawns the helper; the docker SDK is imported only at the end,
and only when there are labels), so the helper starts in a few ms.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

__all__ = ["Watchdog", "main"]

_PPID_CHECK_S = 1.0
#: the harness's sys.path, for the helper's lazy docker import (it runs without site packages)
_PATH_ENV = "FCBENCH_WATCHDOG_SYS_PATH"


class Watchdog:
    """The harness's end of one helper: what it must clean up if the harness dies.

    `ensure` starts the helper (and restarts a dead one, telling it everything again); `add`,
    `discard`, `add_label` and `discard_label` are one pipe write each (the first one starts the
    helper if `ensure` did not); `close` lets it exit. Call it from one thread (the harness's
    event loop).
    """

    def __init__(self) -> None:
        self._groups: set[int] = set()
        self._labels: set[str] = set()
        self._proc: subprocess.Popen[bytes] | None = None
        self._w = -1

    @property
    def pid(self) -> int | None:
        """The helper's pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    def ensure(self) -> None:
        """Have a live helper that knows every group and label.

        Raises:
            OSError: the helper cannot be started.
        """
        if self._proc is None or self._proc.poll() is not None:
            self._spawn()

    def add(self, pgid: int) -> None:
        """Process group `pgid` exists now: SIGKILL it if the harness dies."""
        self._groups.add(pgid)
        self._send(f"+{pgid}\n")

    def discard(self, pgid: int) -> None:
        """Group `pgid` was stopped: forget it (its number may be reused later)."""
        if pgid in self._groups:
            self._groups.discard(pgid)
            self._send(f"-{pgid}\n")

    def add_label(self, label: str) -> None:
        """Remove every docker container labelled `label` (``key=value``) if the harness dies."""
        if "\n" in label or "=" not in label:
            raise ValueError(f"not a key=value docker label: {label!r}")
        self._labels.add(label)
        self._send(f"+L{label}\n")

    def discard_label(self, label: str) -> None:
        """The harness removed those containers itself."""
        if label in self._labels:
            self._labels.discard(label)
            self._send(f"-L{label}\n")

    def close(self, timeout: float = 2.0) -> None:
        """Close the pipe (the helper cleans up what it still knows, normally nothing); reap it."""
        import subprocess

        self._close_pipe()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _send(self, line: str) -> None:
        if self._w < 0:
            self._start_or_warn()
            return  # a new helper was told everything, this line included
        try:
            os.write(self._w, line.encode())  # one short line: atomic on a pipe
        except OSError:  # the helper died (EPIPE): a new one learns everything
            self._start_or_warn()

    def _start_or_warn(self) -> None:
        try:
            self._spawn()
        except OSError as exc:
            import logging
            logging.getLogger(__name__).warning(
                "cannot start the instance watchdog (%s): instances that ignore their lifeline "
                "would outlive a harness killed with SIGKILL", exc)

    def _spawn(self) -> None:
        import subprocess

        self._close_pipe()
        if self._proc is not None:
            self._proc.poll()  # reap a dead one
            self._proc = None
        r, w = os.pipe()  # both O_CLOEXEC: no instance or other child inherits the write end
        try:
            # own session: a Ctrl-C to the terminal's group or a killpg of the harness's group
            # must not take it down before the harness; close_fds: it holds nothing else of the
            # harness's (a pipe a caller reads to EOF, a listening socket); -I -S: no site
            # packages and no script dir on sys.path (this folder has a docker.py), a fast start
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid())],
                stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                start_new_session=True, cwd="/",
                env={**os.environ, _PATH_ENV: os.pathsep.join(p for p in sys.path if p)})
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._w = w
        state = [f"+{g}\n" for g in self._groups] + [f"+L{label}\n" for label in self._labels]
        if state:
            os.write(w, "".join(state).encode())

    def _close_pipe(self) -> None:
        if self._w >= 0:
            os.close(self._w)
            self._w = -1


def main(argv: list[str]) -> int:
    """The helper: read the harness's lines on stdin; at EOF, clean up what it still knows."""
    harness = int(argv[1]) if len(argv) > 1 else os.getppid()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)
    import select

    own = os.getpgrp()
    groups: set[int] = set()
    labels: set[str] = set()
    buf = b""
    while True:
        readable, _, _ = select.select([0], [], [], _PPID_CHECK_S)
        if not readable:
            # the pipe may live on in a child the harness forked without exec; a new parent
            # means the harness itself is gone
            if os.getppid() != harness:
                break
            continue
        try:
            chunk = os.read(0, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        *lines, buf = (buf + chunk).split(b"\n")
        for line in lines:
            op, arg = line[:1], line[1:]
            if arg[:1] == b"L":
                (labels.add if op == b"+" else labels.discard)(arg[1:].decode(errors="replace"))
                continue
            try:
                pgid = int(arg)
            except ValueError:
                continue
            if pgid <= 1 or pgid == own:  # never killpg(0/1/-1) or itself
                continue
            if op == b"+":
                groups.add(pgid)
            elif op == b"-":
                groups.discard(pgid)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:  # already gone (ESRCH)
            pass
    if labels:
        _remove_containers(labels)
    return 0


def _remove_containers(labels: set[str]) -> None:
    """Force-remove every container with one of `labels` (the harness's daemon, from its
    environment, as `fcbench.images.engine.daemon_url` finds it)."""
    sys.path.extend(p for p in os.environ.get(_PATH_ENV, "").split(os.pathsep) if p)
    try:
        import docker

        client = docker.DockerClient(
            base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
            version="auto", timeout=60)
        for label in labels:
            for container in client.containers.list(all=True, filters={"label": label}):
                try:
                    container.remove(force=True)
                except Exception:  # noqa: BLE001 - gone already, or the daemon says no
                    pass
    except Exception:  # noqa: BLE001 - no SDK, no daemon: nothing more this helper can do
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv))
