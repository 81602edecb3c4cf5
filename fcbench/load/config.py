"""What the runner tells each Locust process, and how a run is asked for and reported.

Key names: `LocustConfig` (JSON in ``FCBENCH_LOCUST_CONFIG``: the parent/child protocol),
`RunOptions`, `RunResult`, `status_path`, `CONFIG_ENV`, `LOCUSTFILE`. Light on imports: the
locustfile reads it inside every Locust process.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..results import layout


log = logging.getLogger("fcbench.load.runner")

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
    """Everything the locustfile needs, written by the runner as JSON: ready configs, no pickles.

    `target` is a url or fc target config as its model dumps it (None: a master sends nothing),
    `plan` the plan's model with its seed and an absolute trace file, `body_file` the request
    body's bytes, or, with `request_generator` (`fcbench.load.openai_requests.RequestGenerator.
    to_dict`: its config, seed and absolute dataset path), empty: each body is drawn.
    """

    run_dir: str
    control_dir: str
    duration_s: float
    target: dict[str, Any] | None
    plan: dict[str, Any]
    body_file: str
    content_type: str
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
    #: Send every request as an FC async task named this prefix + the request's id (None:
    #: synchronous invocations).
    async_task_prefix: str | None = None
    #: ``request.openai``: draw request n's body (n = the request's number in the whole plan).
    request_generator: dict[str, Any] | None = None

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: str | Path) -> LocustConfig:
        return cls(**json.loads(Path(path).read_text()))

    def target_config(self) -> Any:
        """The `fcbench.targets.config` model of `target` (for `fcbench.targets.open_target`)."""
        from ..targets.config import read_target_config

        assert self.target is not None
        return read_target_config(self.target)

    def plan_spec(self) -> Any:
        """The plan (`load.plans`), bound: ready to yield the arrivals."""
        from .plans import PLAN_MODELS

        return PLAN_MODELS[self.plan["kind"]].model_validate(self.plan).bind()


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
        report: draws the run's plots and writes its report.html, called with the folder, the
            workload's name and whether the run was interrupted (the CLI passes
            `fcbench.report.write_run_report`; None: the folder holds its data files only; the
            report sits above this package, so its caller chooses it).
        gpu_plan: the GPUs a command already planned for the workload's specs
            (`fcbench.harness.gpuplan.plan_gpus`), handed to the harness so it does not resolve
            them again; None: the harness resolves them from ``target.virtualGpus``.
        spin_ms / timer: dispatcher tuning (``timer="gevent"`` turns the precise Linux timerfd
            off); for benchmarks/dispatch_accuracy.py.
        async_wait_s: an asynchronous run's wait for its tasks after the load (None: the
            workload's ``request.asyncWait``, else its request timeout).
        slo: token objectives the summary's goodput is counted against (``--slo``).
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
    report: Callable[[Any, str, bool], Any] | None = None
    gpu_plan: Any = None
    spin_ms: float | None = DEFAULT_SPIN_MS
    timer: str = DEFAULT_TIMER
    locust_args: list[str] = field(default_factory=list)
    #: with ``request.invocationType: Async``: seconds to wait after the load for the tasks
    #: (None: the workload's ``request.asyncWait``)
    async_wait_s: float | None = None
    #: token objectives for goodput (`fcbench.measures.parse_slo`: ``{"ttft_ms": 500.0}``);
    #: None: no goodput in the summary
    slo: dict[str, float] | None = None

    @property
    def distributed(self) -> bool:
        """Several Locust processes (locally or across machines) share the plan."""
        return self.processes > 1 or self.master or self.worker


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
        return self.run_dir / layout.REQUESTS

