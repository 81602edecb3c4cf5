"""`run_workload`: one load run end to end — run folder, harness, Locust subprocess, results.

Key names: `run_workload`, `RunOptions`, `RunResult`, `LocustConfig` (what the runner tells the
locustfile, as JSON in ``FCBENCH_LOCUST_CONFIG``). Locust is never imported here: it runs as
``python -m locust -f fcbench/load/locustfile.py`` in its own session, and Ctrl-C/SIGTERM stop it
cleanly, after which partial records are merged and summarised like a complete run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._net import free_port
from ..events import Events
from ..errors import UsageError

if TYPE_CHECKING:
    from .workload import Workload

__all__ = ["CONFIG_ENV", "LocustConfig", "RunOptions", "RunResult", "locust_failure_reason",
           "run_workload", "status_path"]

log = logging.getLogger(__name__)

CONFIG_ENV = "FCBENCH_LOCUST_CONFIG"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_WEB_PORT = 8089
DEFAULT_MASTER_PORT = 5557
#: Yielding busy-wait before each intended send time on gevent's (~1 ms coarse) timers. Measured
#: by benchmarks/dispatch_accuracy.py: 1 ms of spin on gevent timers held p99 lag <= 1.04 ms up
#: to 1500 req/s, tighter than a Linux timerfd without spin (an idle vCPU wakes late).
DEFAULT_SPIN_MS: float | None = 1.0
#: "gevent" timers (default) or "auto" (a Linux timerfd where available).
DEFAULT_TIMER = "gevent"
EXIT_INTERRUPTED = 130


@dataclass
class LocustConfig:
    """Everything the locustfile needs, written by the runner as JSON."""

    workload_pickle: str
    run_dir: str
    control_dir: str
    duration_s: float
    target: dict[str, Any]
    timeout_s: float = 60.0
    harness_url: str | None = None
    request_name: str = "invoke"
    ui: bool = False
    ui_linger_s: float = 30.0
    start_delay_s: float = 0.3
    spin_ms: float | None = DEFAULT_SPIN_MS
    timer: str = DEFAULT_TIMER
    flush_interval_s: float = 0.25
    #: A worker of a master on another machine (or in another folder): stream every record to
    #: the master, which writes the run's one requests.csv.
    forward_records: bool = False

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: str | Path) -> LocustConfig:
        return cls(**json.loads(Path(path).read_text()))


def status_path(control_dir: Path, name: str) -> Path:
    """Where a Locust process publishes its counters (``main`` = the whole run)."""
    return control_dir / f"status-{name}.json"


@dataclass
class RunOptions:
    """How to run (not what: that is the workload).

    Args:
        out_dir: parent of the run folder (default: the workload's `output`, else ``results``).
        ui: serve Locust's web UI (127.0.0.1:`web_port`) with the "Cold starts" tab.
        autostart: with `ui`, start at once instead of waiting for the Start button.
        processes: Locust processes on this machine (K > 1: a master and K workers).
        master / expect_workers / master_port / master_bind_host: be the master of workers on
            other machines (bind to an address they reach: the default is loopback only).
        worker / master_host: be a worker of a master elsewhere (url or fc targets only).
        duration_s: override the workload's duration.
        progress: show a live progress line.
        spin_ms / timer: dispatcher tuning (``timer="gevent"`` turns the precise Linux timerfd
            off); for benchmarks/dispatch_accuracy.py.
    """

    out_dir: Path | None = None
    ui: bool = False
    autostart: bool = False
    web_port: int = DEFAULT_WEB_PORT
    ui_linger_s: float = 30.0
    processes: int = 1
    master: bool = False
    expect_workers: int = 1
    worker: bool = False
    master_host: str | None = None
    master_port: int = DEFAULT_MASTER_PORT
    master_bind_host: str = "127.0.0.1"
    duration_s: float | None = None
    progress: bool = True
    spin_ms: float | None = DEFAULT_SPIN_MS
    timer: str = DEFAULT_TIMER
    locust_args: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """A finished (or interrupted) run: its folder, summary and exit code."""

    run_dir: Path
    summary: dict[str, Any]
    interrupted: bool = False
    locust_exit_code: int | None = None

    @property
    def failed(self) -> bool:
        """Locust itself failed (e.g. its web port was taken); its log is in the run folder."""
        return not self.interrupted and self.locust_exit_code not in (0, None)

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else (1 if self.failed else 0)

    @property
    def requests_csv(self) -> Path:
        return self.run_dir / "requests.csv"


# -- workload access ----------------------------------------------------------------------------

def _target_dict(workload: Workload, harness_url: str | None) -> dict[str, Any]:
    """What the locustfile needs to build its `Target` (a local target is a URL by then)."""
    t = workload.target
    if t.kind == "local":
        return {"kind": "url", "url": harness_url, "function": workload.function_name,
                "path": t.path}
    if t.kind == "url":
        return {"kind": "url", "url": t.url, "function": t.function, "path": t.path}
    return {"kind": "fc", "function": t.function, "endpoint": t.endpoint, "region": t.region,
            "qualifier": t.qualifier}


# -- the run ------------------------------------------------------------------------------------

def run_workload(workload: Workload, *, out_dir: str | Path | None = None, ui: bool = False,
                 processes: int = 1, progress: bool = True,
                 options: RunOptions | None = None, events: Events | None = None) -> RunResult:
    """Run `workload` (a `fcbench.load.workload.Workload`) with Locust and write its results folder.

    Returns the `RunResult`; an interrupted run (Ctrl-C, SIGTERM) still returns one, with
    `interrupted` set and the partial records merged and summarised. `events` gets `run_start`
    and `run_stop`, and a local harness's instance and request events.

    Raises:
        UsageError: options that do not fit together (e.g. a worker with a local target).
    """
    from ..report.rundir import new_run_dir

    opts = options or RunOptions()
    if out_dir is not None:
        opts.out_dir = Path(out_dir)
    opts.ui = opts.ui or ui
    if processes != 1:
        opts.processes = processes
    opts.progress = opts.progress and progress
    _check(workload, opts)
    if not opts.master:
        _preflight(_target_dict(workload, None), float(workload.request.timeout))
    duration = float(opts.duration_s if opts.duration_s is not None else workload.duration)
    run_dir = new_run_dir(opts.out_dir or workload.output_dir(), str(workload.name)).resolve()
    control = Path(tempfile.mkdtemp(prefix="fcbench-run-"))
    started = time.time()
    _write_run_yaml(run_dir, workload, opts, duration, started)
    events = events or Events()
    events.run_start.fire(ts=started, name=str(workload.name), run_dir=run_dir)
    interrupted = False
    code: int | None = None
    harness = None
    instances: list[dict[str, Any]] | None = None
    gpus: dict[str, Any] | None = None
    sampler = _start_gpu_sampler(run_dir)
    with _signals() as stop:
        try:
            if _is_local(workload) and not opts.master:
                harness = _start_harness(workload, run_dir, events)
            cfg = LocustConfig(
                workload_pickle=str(_pickle(workload, control)), run_dir=str(run_dir),
                control_dir=str(control), duration_s=duration,
                target={"kind": "none"} if opts.master else
                _target_dict(workload, harness.url if harness else None),
                timeout_s=float(workload.request.timeout),
                harness_url=harness.url if harness else None,
                request_name=_request_name(workload), ui=opts.ui,
                ui_linger_s=opts.ui_linger_s, start_delay_s=1.0 if _distributed(opts) else 0.3,
                spin_ms=opts.spin_ms, timer=opts.timer, forward_records=opts.worker)
            cfg.write(control / "config.json")
            code, interrupted = _run_locust(cfg, opts, run_dir, control, workload, stop)
        except BaseException:
            interrupted = True
            raise
        finally:
            stop.defer = True  # a second Ctrl-C must not cut the results short
            if harness is not None:
                gpus = harness.harness.gpu_info
                instances = _fetch_instances(harness.url)
                with contextlib.suppress(Exception):
                    harness.close()
            if sampler is not None:
                with contextlib.suppress(Exception):
                    sampler.stop()
            summary = _finalize(run_dir, workload, duration, started, interrupted, code,
                                instances, opts, gpus)
            shutil.rmtree(control, ignore_errors=True)
            events.run_stop.fire(ts=time.time(), name=str(workload.name), run_dir=run_dir,
                                 summary=summary, interrupted=interrupted)
    return RunResult(run_dir=run_dir, summary=summary, interrupted=interrupted,
                     locust_exit_code=code)


def _preflight(target: dict[str, Any], timeout_s: float) -> None:
    """Build an fc target once here, so a missing SDK or credentials fail before any folder or
    process is made."""
    if target.get("kind") != "fc":
        return
    from ..targets import target_class
    try:
        target_class("fc")(target["function"], endpoint=target.get("endpoint"),
                           region=target.get("region"), qualifier=target.get("qualifier"),
                           timeout=timeout_s).close()
    except ImportError as exc:
        raise UsageError(str(exc)) from None


def _check(workload: Any, opts: RunOptions) -> None:
    if opts.processes < 1:
        raise UsageError("--processes must be 1 or more")
    if opts.worker and opts.master:
        raise UsageError("choose --master or --worker, not both")
    if opts.worker and not opts.master_host:
        raise UsageError("--worker needs --master-host (the machine running --master)")
    if opts.master and opts.processes > 1:
        raise UsageError("--master runs no load itself; start workers with --worker "
                         "--processes K on each machine instead")
    if opts.worker and _is_local(workload):
        raise UsageError("a worker on another machine cannot reach the master's local "
                         "harness; give the workload a url (or fc) target")


def _is_local(workload: Workload) -> bool:
    return workload.target.kind == "local"


def _distributed(opts: RunOptions) -> bool:
    return opts.processes > 1 or opts.master or opts.worker


def _request_name(workload: Workload) -> str:
    return workload.function_name or (workload.target.path or "invoke")


def _pickle(workload: Any, control: Path) -> Path:
    path = control / "workload.pickle"
    with open(path, "wb") as f:
        pickle.dump(workload, f)
    return path


def _start_harness(workload: Any, run_dir: Path, events: Events) -> Any:
    from ..harness.server import HarnessConfig, HarnessThread

    t = workload.target
    config = HarnessConfig(port=0, runtime=t.runtime, virtual_gpus=t.virtual_gpus,
                           log_dir=run_dir / "logs")
    specs, _ = workload.scaled_specs()  # compressed time compresses idle and queue timeouts too
    h = HarnessThread(list(specs), config, events=events)
    h.__enter__()
    return h


def _locust_command(cfg: LocustConfig, opts: RunOptions, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--exit-code-on-error", "0",
           "--stop-timeout", "0", "--loglevel", "INFO"]
    host = cfg.target.get("url") or cfg.target.get("endpoint") or "http://fc"
    cmd += ["--host", str(host)]
    if opts.worker:
        cmd += ["--worker", "--master-host", str(opts.master_host),
                "--master-port", str(opts.master_port)]
        if opts.processes > 1:
            cmd += ["--processes", str(opts.processes)]
        return cmd + opts.locust_args
    users = opts.expect_workers if opts.master else opts.processes
    cmd += ["--users", str(users), "--spawn-rate", str(users),
            "--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust.html")]
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


def _run_locust(cfg: LocustConfig, opts: RunOptions, run_dir: Path, control: Path,
                workload: Any, stop: _SignalState) -> tuple[int | None, bool]:
    env = {**os.environ, CONFIG_ENV: str(control / "config.json"), "PYTHONUNBUFFERED": "1"}
    env.pop("LOCUST_CONFIG", None)
    cmd = _locust_command(cfg, opts, run_dir)
    (control / "command.txt").write_text(" ".join(cmd))
    logfile = open(run_dir / "locust.log", "ab")
    # Its own session: a terminal's Ctrl-C reaches only us, and we stop Locust in order.
    proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env, cwd=control,
                            start_new_session=True)
    line = _Progress(cfg, opts, workload, control) if opts.progress else None
    interrupted = False
    t0 = time.monotonic()
    # A backstop for a Locust that never ends (the locustfile quits when the plan is done).
    limit = None if opts.ui or _distributed(opts) else cfg.duration_s + cfg.timeout_s + 120.0
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
        lines = (run_dir / "locust.log").read_text(errors="replace").splitlines()[-200:]
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
def _signals() -> Any:
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

class _Progress:
    """A live line (rich) with elapsed time, sent, errors and cold starts."""

    def __init__(self, cfg: LocustConfig, opts: RunOptions, workload: Any,
                 control: Path) -> None:
        from rich.console import Console

        self.cfg, self.opts, self.control = cfg, opts, control
        self.console = Console(stderr=True)
        self.t0 = time.monotonic()
        self.started_at: float | None = None
        self._live = None
        self._last_plain = 0.0
        self.name = str(workload.name)
        if self.console.is_terminal:
            from rich.live import Live
            self._live = Live(self._render({}), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _status(self) -> dict[str, Any]:
        main = status_path(self.control, "main")
        paths = [main] if main.exists() else sorted(self.control.glob("status-w*.json"))
        total: dict[str, Any] = {}
        for p in paths:
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            for key in ("sent", "done", "errors", "cold", "in_flight", "expected"):
                total[key] = total.get(key, 0) + int(data.get(key) or 0)
            total["started"] = total.get("started", False) or bool(data.get("started"))
        return total

    def _render(self, s: dict[str, Any]) -> Any:
        from rich.text import Text

        if not s.get("started"):
            waiting = "waiting for Start in the web UI" if self.opts.ui and not \
                self.opts.autostart else "starting Locust"
            return Text(f"{self.name}: {waiting}… {self.elapsed():.0f}s", style="dim")
        if self.started_at is None:
            self.started_at = time.monotonic()
        run_s = time.monotonic() - self.started_at
        dur = self.cfg.duration_s
        frac = min(1.0, run_s / dur) if dur > 0 else 1.0
        width = 24
        bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
        expected = f"/~{s['expected']}" if s.get("expected") else ""
        text = Text()
        text.append(f"{self.name} ", style="bold")
        text.append(f"{bar} {min(run_s, dur):5.0f}/{dur:.0f}s  ")
        text.append(f"sent {s.get('sent', 0)}{expected}  ")
        text.append(f"in flight {s.get('in_flight', 0)}  ")
        text.append(f"errors {s.get('errors', 0)}  ", style="red" if s.get("errors") else "")
        text.append(f"cold {s.get('cold', 0)}", style="cyan")
        return text

    def update(self) -> None:
        s = self._status()
        if self._live is not None:
            self._live.update(self._render(s))
        elif s.get("started") and time.monotonic() - self._last_plain >= 10.0:
            self._last_plain = time.monotonic()
            self.console.print(self._render(s), soft_wrap=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render(self._status()))
            self._live.stop()


# -- results ------------------------------------------------------------------------------------

def _write_run_yaml(run_dir: Path, workload: Any, opts: RunOptions, duration: float,
                    started: float, **extra: Any) -> None:
    from ..report.rundir import RunFolder

    try:
        config = workload.to_run_yaml()
    except Exception as exc:  # noqa: BLE001 - run.yaml must not stop a run
        config = {"error": f"to_run_yaml failed: {exc}"}
    doc = {
        "title": f"fcbench run {workload.name}",
        "kind": "run",
        "name": str(workload.name),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "started_ts": round(started, 3),
        "duration_s": duration,
        "options": {"ui": opts.ui, "processes": opts.processes, "master": opts.master,
                    "worker": opts.worker, "master_host": opts.master_host,
                    "expect_workers": opts.expect_workers if opts.master else None,
                    "spin_ms": opts.spin_ms, "timer": opts.timer},
        "workload": config,
        **extra,
    }
    RunFolder(run_dir).write_run_yaml(doc)


def _fetch_instances(url: str) -> list[dict[str, Any]] | None:
    from ..errors import TargetError
    from ..targets.harness_client import HarnessClient

    try:
        with HarnessClient(url, timeout=10) as client:
            return client.instances(include_retired=True)
    except (TargetError, ValueError, KeyError) as exc:  # instances.csv is best effort
        log.warning("could not read the harness's instances: %s", exc)
        return None


def _start_gpu_sampler(run_dir: Path) -> Any:
    """NVML telemetry into `gpu.csv` for the run (header only, said once, without a GPU)."""
    try:
        from ..telemetry import start_sampler
        return start_sampler(run_dir / "gpu.csv", interval=0.5)
    except Exception as exc:  # noqa: BLE001 - telemetry must never stop a run
        log.warning("GPU telemetry is off for this run: %s", exc)
        return None


def _finalize(run_dir: Path, workload: Any, duration: float, started: float, interrupted: bool,
              code: int | None, instances: list[dict[str, Any]] | None,
              opts: RunOptions, gpus: dict[str, Any] | None = None) -> dict[str, Any]:
    from ..report.records import merge_parts
    from ..report.rundir import RunFolder
    from ..report.summary import load_requests, summarize

    parts = sorted(run_dir.glob("requests.part-*.csv"))
    rows = merge_parts(parts, run_dir / "requests.csv")
    for p in parts:
        p.unlink()
    if instances is not None:
        RunFolder(run_dir).write_instances(instances)
    df = load_requests(run_dir / "requests.csv")
    summary = summarize(df, instances_csv=run_dir / "instances.csv"
                        if instances is not None else None)
    summary.update({"name": str(workload.name), "planned_duration_s": duration,
                    "interrupted": interrupted, "locust_exit_code": code})
    RunFolder(run_dir).write_summary(summary)
    try:
        from ..report.plots import plot_latency
        plot_latency(df, run_dir / "plots" / "latency.png",
                     title=f"{workload.name}: latency over time")
        if (run_dir / "gpu.csv").exists():
            from ..telemetry import plot_gpu
            plot_gpu(run_dir / "gpu.csv", run_dir / "plots" / "gpu.png")
    except Exception as exc:  # noqa: BLE001 - a plot must not lose the run
        log.warning("could not draw the plots: %s", exc)
    _write_run_yaml(run_dir, workload, opts, duration, started,
                    finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), interrupted=interrupted,
                    requests=rows, **({"gpus": gpus} if gpus else {}))
    try:
        from ..report.html import write_report
        write_report(run_dir, title=f"fcbench run: {workload.name}"
                     + (" (interrupted)" if interrupted else ""))
    except Exception as exc:  # noqa: BLE001 - the report must not lose the run
        log.warning("could not write report.html: %s", exc)
    return summary
