"""Locust as a child process: its command line, start, watch, and a clean stop on Ctrl-C/SIGTERM.

Key names: `run_locust`, `locust_command`, `locust_failure_reason`, `signals`. Locust is never
imported here; it runs as ``python -m locust -f fcbench/load/locustfile.py`` in its own session.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._net import free_port
from ..results import layout


if TYPE_CHECKING:
    pass

log = logging.getLogger("fcbench.load.runner")

from .config import CONFIG_ENV, LOCUSTFILE, LocustConfig, RunOptions, status_path
from .progress import Progress


def _locust_command(cfg: LocustConfig, opts: RunOptions, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--exit-code-on-error", "0",
           "--stop-timeout", "0", "--loglevel", "INFO"]
    target = cfg.target or {}
    host = target.get("url") or target.get("endpoint") or "http://fc"
    cmd += ["--host", str(host)]
    if opts.worker:
        cmd += ["--worker", "--master-host", str(opts.master_host),
                "--master-port", str(opts.master_port)]
        if opts.processes > 1:
            cmd += ["--processes", str(opts.processes)]
        return cmd + opts.locust_args
    users = opts.expect_workers if opts.master else opts.processes
    cmd += ["--users", str(users), "--spawn-rate", str(users),
            "--csv", str(run_dir / "locust"), "--html", str(run_dir / layout.LOCUST_HTML)]
    if opts.master:
        cmd += ["--master", "--master-bind-host", opts.master_bind_host, "--master-bind-port",
                str(opts.master_port), "--expect-workers", str(opts.expect_workers)]
    elif opts.processes > 1:
        port = free_port()
        cmd += ["--processes", str(opts.processes), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(port), "--master-port", str(port)]
    if opts.ui:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(opts.web_port)]
        if opts.autostart:
            cmd += ["--autostart"]
    else:
        cmd += ["--headless", "--only-summary"]
    return cmd + opts.locust_args


def run_locust(cfg: LocustConfig, opts: RunOptions, run_dir: Path, control: Path,
                workload: Any, stop: _SignalState) -> tuple[int | None, bool]:
    env = {**os.environ, CONFIG_ENV: str(control / "config.json"), "PYTHONUNBUFFERED": "1"}
    env.pop("LOCUST_CONFIG", None)
    cmd = _locust_command(cfg, opts, run_dir)
    (control / "command.txt").write_text(" ".join(cmd))
    logfile = open(run_dir / layout.LOCUST_LOG, "ab")
    # Its own session: a terminal's Ctrl-C reaches only us, and we stop Locust in order.
    proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env, cwd=control,
                            start_new_session=True)
    line = Progress(cfg, opts, workload, control) if opts.progress else None
    interrupted = False
    t0 = time.monotonic()
    # A backstop for a Locust that never ends (the locustfile quits when the plan is done).
    limit = None if opts.ui or opts.distributed else cfg.duration_s + cfg.timeout_s + 120.0
    try:
        while proc.poll() is None:
            if stop.fired:
                # Ctrl-C while the web UI lingers after a complete run is not an interruption.
                interrupted = not _main_status(control).get("finished", False)
                break
            if line is not None:
                line.update()
            if limit is not None and time.monotonic() - t0 > limit:
                log.warning("Locust did not end %.0f s after it started; stopping it", limit)
                break
            stop.wait(0.25)
    finally:
        if line is not None:
            line.close()
        code = _stop_process(proc, graceful=True)
        logfile.close()
    return code, interrupted


def _main_status(control: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(status_path(control, "main").read_text()))
    except (OSError, ValueError):
        return {}


def _stop_process(proc: subprocess.Popen, *, graceful: bool) -> int | None:
    """SIGINT (Locust writes its reports), then SIGTERM, then SIGKILL to the whole session."""
    if proc.poll() is not None:
        return proc.returncode
    steps = [(signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)]
    for sig, wait in steps if graceful else steps[1:]:
        try:
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def locust_failure_reason(run_dir: Path) -> str:
    """The last error line of a failed Locust's log (e.g. its web port was taken), or ''."""
    with contextlib.suppress(OSError):
        lines = (run_dir / layout.LOCUST_LOG).read_text(errors="replace").splitlines()[-200:]
        for line in reversed(lines):
            text = line.strip()
            if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", text) or "/ERROR/" in text:
                return text[:300]
    return ""


# -- signals ------------------------------------------------------------------------------------

class _SignalState:
    def __init__(self) -> None:
        self.fired = False
        self.defer = False
        self._late = 0
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)

    def handler(self, signum: int, frame: Any) -> None:
        if self.defer:
            self._late += 1
            if self._late >= 2:  # a third press while results are written: give up on them
                raise KeyboardInterrupt
            return
        self.fired = True
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")

    def wait(self, timeout: float) -> None:
        import select
        r, _, _ = select.select([self._r], [], [], timeout)
        if r:
            with contextlib.suppress(OSError):
                os.read(self._r, 64)

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


@contextlib.contextmanager
def signals() -> Any:
    """SIGINT/SIGTERM set a flag the run loop checks (only in the main thread)."""
    state = _SignalState()
    old: dict[int, Any] = {}
    if _main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, state.handler)
    try:
        yield state
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        state.close()


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# -- progress -----------------------------------------------------------------------------------
