"""`run_workload`: one load run end to end — run folder, harness, Locust subprocess, results.

Key names: `run_workload` (the orchestration: folder, harness, Locust, results), with
`RunOptions` / `RunResult` / `LocustConfig` from `load.config`, the Locust child process in
`load.locust_process` and the progress line in `load.progress`. Ctrl-C/SIGTERM stop Locust
cleanly, after which partial records are merged and summarised like a complete run.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..events import Events
from ..errors import UsageError
from ..results import layout
from .config import CONFIG_ENV, LocustConfig, RunOptions, RunResult, status_path
from .locust_process import locust_failure_reason, run_locust, signals

if TYPE_CHECKING:
    from .workload import Workload

__all__ = ["CONFIG_ENV", "LocustConfig", "RunOptions", "RunResult", "locust_failure_reason",
           "run_workload", "status_path"]

log = logging.getLogger(__name__)


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
    from ..results.rundir import new_run_dir

    opts = options or RunOptions()
    if out_dir is not None:
        opts.out_dir = Path(out_dir)
    opts.ui = opts.ui or ui
    if processes != 1:
        opts.processes = processes
    opts.progress = opts.progress and progress
    if opts.slo is None:  # --slo overrides the workload's own objectives
        opts.slo = workload.slo_objectives
    _check(workload, opts)
    if not opts.master:
        _preflight(workload.send_target(), float(workload.request.timeout))
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
    async_prefix = None
    if workload.request.is_async:
        from .async_tasks import task_prefix
        async_prefix = task_prefix(run_dir.name)
    async_base: str | None = None
    tasks: tuple[list[dict[str, Any]], dict[str, Any]] | None = None
    instances: list[dict[str, Any]] | None = None
    gpus: dict[str, Any] | None = None
    sampler = _start_gpu_sampler(run_dir)
    with signals() as stop:
        try:
            if _is_local(workload) and not opts.master:
                harness = _start_harness(workload, run_dir, events, opts.gpu_plan)
            if async_prefix is not None:
                async_base = harness.url if harness else workload.target.url
                _enable_async(async_base, workload)
            cfg = LocustConfig(
                run_dir=str(run_dir), control_dir=str(control), duration_s=duration,
                target=None if opts.master else workload.send_target(
                    harness.url if harness else None).model_dump(mode="json", by_alias=True),
                **_plan_and_body(workload, control), timeout_s=float(workload.request.timeout),
                harness_url=harness.url if harness else None,
                request_name=_request_name(workload), ui=opts.ui,
                ui_linger_s=opts.ui_linger_s, start_delay_s=1.0 if opts.distributed else 0.3,
                spin_ms=opts.spin_ms, timer=opts.timer, forward_records=opts.worker,
                async_task_prefix=async_prefix)
            cfg.write(control / "config.json")
            code, interrupted = run_locust(cfg, opts, run_dir, control, workload, stop)
        except BaseException:
            interrupted = True
            raise
        finally:
            stop.defer = True  # a second Ctrl-C must not cut the results short
            if async_base is not None and async_prefix is not None:
                tasks = _collect_async(async_base, workload, opts, async_prefix, interrupted)
            if harness is not None:
                gpus = harness.harness.gpu_info
                instances = _fetch_instances(harness.url)
                with contextlib.suppress(Exception):
                    harness.close()
            if sampler is not None:
                with contextlib.suppress(Exception):
                    sampler.stop()
            summary = _finalize(run_dir, workload, duration, started, interrupted, code,
                                instances, opts, gpus, tasks)
            shutil.rmtree(control, ignore_errors=True)
            events.run_stop.fire(ts=time.time(), name=str(workload.name), run_dir=run_dir,
                                 summary=summary, interrupted=interrupted)
    return RunResult(run_dir=run_dir, summary=summary, interrupted=interrupted,
                     locust_exit_code=code)


def _preflight(target: Any, timeout_s: float) -> None:
    """Open an fc target once here, so a missing SDK or credentials fail before any folder or
    process is made; a URL nobody answers at (a name that does not resolve, a port nothing
    listens on) fails here too, rather than after a run of failed requests."""
    if target.kind == "url" and target.url:
        from ..targets.url import invoke_url, unreachable

        url = invoke_url(target.url, target.function, target.path)
        why = unreachable(url, min(timeout_s, 5.0))
        if why is not None:
            raise UsageError(f"cannot reach {url}: {why}; check the URL, or start the server "
                             "first (for the harness: fcbench harness serve SPEC.yaml)")
    elif target.kind == "fc":
        from ..targets import open_target

        open_target(target, timeout=timeout_s).close()


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
    if workload.request.is_async and (opts.master or opts.worker):
        raise UsageError("an asynchronous run (request.invocationType: Async) runs on one "
                         "machine for now (--processes K is fine); drop --master / --worker")
    if opts.worker and _is_local(workload):
        raise UsageError("a worker on another machine cannot reach the master's local "
                         "harness; give the workload a url (or fc) target")


def _is_local(workload: Workload) -> bool:
    return workload.target.kind == "local"


def _request_name(workload: Workload) -> str:
    return workload.function_name or (getattr(workload.target, "path", None) or "invoke")


def _plan_and_body(workload: Workload, control: Path) -> dict[str, Any]:
    """The Locust child's plan (its model, seed filled in, trace file absolute) and request body
    (bytes in a file of the control folder), or with ``request.openai`` the generator that
    draws each body."""
    from .openai_requests import request_generator

    update: dict[str, Any] = {"seed": workload.plan_seed}
    if hasattr(workload.plan, "file"):
        update["file"] = str(workload.resolve(workload.plan.file))
    plan = workload.plan.model_copy(update=update)
    out: dict[str, Any] = {"plan": plan.model_dump(mode="json", by_alias=True)}
    generator = request_generator(workload)
    if generator is not None:
        return {**out, "body_file": "", "content_type": generator.content_type,
                "request_generator": generator.to_dict()}
    body, content_type = workload.request_body()
    body_file = control / "body.bin"
    body_file.write_bytes(body)
    return {**out, "body_file": str(body_file), "content_type": content_type}


def _start_harness(workload: Any, run_dir: Path, events: Events, gpu_plan: Any = None) -> Any:
    from ..harness.server import HarnessConfig, HarnessThread

    t = workload.target
    config = HarnessConfig(port=0, runtime=t.runtime, virtual_gpus=t.virtual_gpus,
                           log_dir=run_dir / "logs", gpu_plan=gpu_plan)
    specs, _ = workload.scaled_specs()  # compressed time compresses idle and queue timeouts too
    h = HarnessThread(list(specs), config, events=events)
    h.__enter__()
    return h


def _write_run_yaml(run_dir: Path, workload: Any, opts: RunOptions, duration: float,
                    started: float, **extra: Any) -> None:
    from ..results import RunFolder

    RunFolder(run_dir).write_run_yaml(_run_doc(workload, opts, duration, started, **extra),
                                      kind="run")


def _run_doc(workload: Any, opts: RunOptions, duration: float, started: float,
             **extra: Any) -> dict[str, Any]:
    try:
        config = workload.to_run_yaml()
    except Exception as exc:  # noqa: BLE001 - run.yaml must not stop a run
        config = {"error": f"to_run_yaml failed: {exc}"}
    doc = {
        "title": f"fcbench run {workload.name}",
        "name": str(workload.name),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "started_ts": round(started, 3),
        "duration_s": duration,
        "options": {"ui": opts.ui, "processes": opts.processes, "master": opts.master,
                    "worker": opts.worker, "master_host": opts.master_host,
                    "expect_workers": opts.expect_workers if opts.master else None,
                    "spin_ms": opts.spin_ms, "timer": opts.timer,
                    **({"slo": dict(opts.slo)} if opts.slo else {})},
        "workload": config,
        **extra,
    }
    return doc


def _enable_async(base_url: str, workload: Any) -> None:
    """Turn task mode on for the run's function, so every async request becomes a task."""
    from ..errors import TargetError
    from .async_tasks import AsyncTaskClient, enable_tasks

    try:
        with AsyncTaskClient(base_url) as client:
            changed = enable_tasks(client, workload.function_name)
    except TargetError as exc:
        raise UsageError(f"an asynchronous run needs FC's async invoke config at the target: "
                         f"{exc}") from None
    if changed:
        log.info("%s", changed)


def _collect_async(base_url: str, workload: Any, opts: RunOptions, prefix: str,
                   interrupted: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Wait (bounded: `RunOptions.async_wait_s`, else the workload's ``request.asyncWait``;
    not at all after an interrupt) for the run's async tasks, then read them all."""
    import sys

    from ..errors import TargetError
    from .async_tasks import AsyncTaskClient, collect_tasks

    wait = 0.0 if interrupted else float(opts.async_wait_s if opts.async_wait_s is not None
                                         else workload.request.async_wait_s)

    def say(line: str) -> None:
        if opts.progress:
            print(line, file=sys.stderr, flush=True)

    try:
        with AsyncTaskClient(base_url) as client:
            rows, info = collect_tasks(client, workload.function_name, prefix, wait_s=wait,
                                       say=say)
    except TargetError as exc:
        log.warning("could not collect the async tasks: %s", exc)
        return [], {"error": str(exc)}
    if info.get("message"):
        print(info["message"], file=sys.stderr, flush=True)
    return rows, {**info, "prefix": prefix}


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
        return start_sampler(run_dir / layout.GPU, interval=0.5)
    except Exception as exc:  # noqa: BLE001 - telemetry must never stop a run
        log.warning("GPU telemetry is off for this run: %s", exc)
        return None


def _finalize(run_dir: Path, workload: Any, duration: float, started: float, interrupted: bool,
              code: int | None, instances: list[dict[str, Any]] | None,
              opts: RunOptions, gpus: dict[str, Any] | None = None,
              tasks: tuple[list[dict[str, Any]], dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    from ..measures import task_summary
    from ..results import RunFolder
    from ..results.summary import summarize

    folder = RunFolder(run_dir)
    rows = folder.merge_request_parts()
    if instances is not None:
        folder.write_instances(instances)
    if tasks is not None:
        folder.write_tasks(tasks[0])
    df = folder.requests()
    summary = summarize(df, instances_started=folder.instances_started(), slo=opts.slo)
    if tasks is not None:  # the requests were submissions (202); the jobs are the tasks
        summary["async_tasks"] = {**task_summary(tasks[0]), "wait": tasks[1]}
    summary.update({"name": str(workload.name), "planned_duration_s": duration,
                    "interrupted": interrupted, "locust_exit_code": code})
    report = opts.report
    folder.finish(summary=summary, kind="run",
                  config=_run_doc(workload, opts, duration, started,
                                  finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                  interrupted=interrupted, requests=rows,
                                  **({"gpus": gpus} if gpus else {})),
                  report=None if report is None else
                  lambda f: report(f, str(workload.name), interrupted),
                  report_must_not_fail=True)  # the report must not lose the run
    return summary
