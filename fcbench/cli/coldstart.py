"""`fcbench coldstart ...`: forced cold-start profiles and probability-vs-concurrency sweeps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..sim.settings import SWEEP_SETTINGS
from ._base import (REQUIRE_GPU_HELP, check_gpu_options, first_failure, plan_gpus, read_data,
                    size_value, sizes_value)
from ..errors import UsageError
from ..results import RunFolder, layout

__all__ = ["coldstart"]

_DATA_HELP = ("Request body: a string or @FILE (default: the spec's harness.sampleRequest, else "
              "an empty body).")


def _spec_request(spec_path: str, data: str | None, virtual_gpus: str | None,
                  require_gpu: bool) -> tuple[bytes, str, Any]:
    """Check the GPU options against SPEC (printing the virtual-GPU notice) and pick the request
    body: --data, else the spec's sample request, else an empty body (said so)."""
    from ..spec import load_function_spec

    check_gpu_options(virtual_gpus, require_gpu)
    spec = load_function_spec(spec_path)
    gpu_plan = plan_gpus([spec], virtual_gpus=virtual_gpus, require_gpu=require_gpu)
    if data is not None:
        return (*read_data(data), gpu_plan)
    sample = spec.harness.sample_request
    if sample is None:
        click.echo(f"note: no --data and {spec_path} has no harness.sampleRequest: sending an "
                   "empty body", err=True)
        return (*read_data(None), gpu_plan)
    body, ctype = sample.body()
    click.echo(f"request: {spec_path} harness.sampleRequest ({sample.describe()}, "
               f"{len(body)} bytes, {ctype})")
    return body, ctype, gpu_plan


def _error_text(error: str) -> str:
    """An FC-shaped (`Code`, `Message`) or instance (`error`) JSON error body as one line."""
    try:
        doc = json.loads(error)
    except ValueError:
        return error.strip()
    if isinstance(doc, dict):
        message = doc.get("Message") or doc.get("error") or doc.get("message")
        code = doc.get("Code")
        if message:
            return f"{code}: {message}" if code else str(message)
    return error.strip()


def _no_sample_kept(result: Any, run_dir: Path) -> None:
    """Exit 1 with the first failure when a profile kept no cold start."""
    failed = next((s for s in result.samples if s.kind == "failed"), None)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    if failed is not None:
        status = f"HTTP {failed.status}" if failed.status else "no response"
        first = f"{status}: {_error_text(failed.error)}" if failed.error else status
        click.echo(f"error: no cold start was kept ({counts}); the first failure "
                   f"(cold start {failed.index + 1}): {first}", err=True)
    else:
        click.echo(f"error: no cold start was kept ({counts}): no response was cold; force "
                   "cold starts with --force reclaim (a harness) or --force wait:SECONDS "
                   "(longer than the idle timeout)", err=True)
    click.echo(f"partial results: {run_dir}", err=True)
    sys.exit(1)


@click.group()
def coldstart() -> None:
    """Cold-start experiments: where the time goes, and how often it hits."""


@coldstart.command("profile")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--roofline", is_flag=True, help="Also hold each phase against the fastest this "
              "machine does the same work (SPEC only; see `fcbench coldstart roofline`).")
@click.option("--repeats", "-n", default=5, show_default=True, type=click.IntRange(1),
              help="Cold starts to keep.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0),
              help="Cold starts to run first and drop.")
@click.option("--pull", is_flag=True, help="Remove the image before each cold start so the "
              "pull is real (docker runtime, image in a registry).")
@click.option("--data", "-d", default=None, help=_DATA_HELP)
@click.option("--url", default=None, help="Profile a running endpoint instead of SPEC: an FC "
              "3.0-compatible base URL (with --function) or any URL to POST to.")
@click.option("--function", "function_name", default=None, help="Function name (with --url).")
@click.option("--target", "target_url", default=None, metavar="TARGET",
              help="Profile this target instead of SPEC: fc://REGION/FUNCTION (FC through its "
              "SDK; cold starts forced by UpdateFunction), fc://127.0.0.1:PORT/FUNCTION (the "
              "harness through the SDK) or an HTTP-trigger URL (as --url).")
@click.option("--force", default=None, help="How to force cold starts: reclaim (harness), "
              "target (the target's own way: UpdateFunction for an fc target), wait:SECONDS "
              "(longer than the idle timeout), none. Default: reclaim for SPEC or a harness "
              "URL, target for an fc target, else wait:360.")
@click.option("--virtual-gpus", default=None, metavar="COUNTxSIZE",
              help="Place GPU specs on these virtual GPUs, e.g. 1x16GB (default: the GPUs "
              "NVML finds; without any, virtual GPUs sized like the spec's gpuType).")
@click.option("--require-gpu", is_flag=True, help=REQUIRE_GPU_HELP)
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True, help="Parent folder of run folders.")
# -- cold start vs size (docs/coldstart.md "Cold start vs size")
@click.option("--model-size", "model_sizes", default=None, metavar="SIZES",
              callback=sizes_value, help="Profile once per model size (e.g. "
              "64MB,256MB,1GB: the built-in mobilenet-v2 padded to it, FCBENCH_MODEL_SIZE_MB; "
              f"process runtime) and fit each phase as intercept + slope × MB ({layout.FIT}).")
@click.option("--image-size", "image_sizes", default=None, metavar="SIZES",
              callback=sizes_value, help="Likewise per image size: SPEC's "
              "image plus one layer of this many random bytes (docker runtime; with --pull "
              "each start pulls it from the registry).")
# -- end cold start vs size
def profile(spec: str | None, roofline: bool, repeats: int, warmup: int, pull: bool, data: str | None,
            url: str | None, function_name: str | None, target_url: str | None,
            force: str | None, virtual_gpus: str | None, require_gpu: bool,
            runtime: str | None, out: Path,
            model_sizes: tuple[float, ...] | None = None,
            image_sizes: tuple[float, ...] | None = None) -> None:
    """Force cold starts of SPEC's function and split each into phases.

    Writes phases.csv, plots/phases.png and summary.json to a new run folder and prints a
    median/spread table. With --url, profiles a running endpoint from its response headers.
    Exits 1, printing the first failure, when no cold start could be kept.
    """
    from ..coldstart.session import profile_endpoint, profile_spec
    from ..coldstart.outputs import phase_table

    if roofline and (model_sizes or image_sizes):
        raise click.UsageError("--roofline holds one profile against its floors: give it without "
                               "--model-size/--image-size, once per size you want to see")
    if model_sizes or image_sizes:  # cold start vs size: its own block
        _profile_sizes(spec, model_sizes, image_sizes, repeats=repeats, warmup=warmup,
                       pull=pull, data=data, other=url or target_url, force=force,
                       virtual_gpus=virtual_gpus, require_gpu=require_gpu, runtime=runtime,
                       out=out)
        return
    target_config = None
    if target_url is not None:
        from ..targets.config import target_from_url

        if spec is not None or url is not None:
            raise click.UsageError("give one of SPEC.yaml, --url URL or --target TARGET")
        target_config = target_from_url(target_url, function=function_name)
        if target_config.kind == "url":
            url, target_config = target_config.url, None
    elif (spec is None) == (url is None):
        raise click.UsageError("give either SPEC.yaml, --url URL or --target TARGET")
    if roofline and spec is None:
        raise click.UsageError("--roofline needs SPEC.yaml: the floors are measured on this "
                               "machine, with the spec's own model and runtime")
    gpu_plan = None
    if spec is not None:
        body, ctype, gpu_plan = _spec_request(spec, data, virtual_gpus, require_gpu)
    else:
        body, ctype = read_data(data)

    def progress(sample) -> None:  # noqa: ANN001
        extra = f"  ({sample.error[:80]})" if sample.error else ""
        click.echo(f"  cold start {sample.index + 1}: {sample.kind:<8} e2e {sample.e2e_ms:8.1f} ms"
                   + (f"  warm {sample.warm_ms:.1f} ms" if sample.warm_ms else "") + extra)

    if target_config is not None:
        from ..coldstart.session import profile_target
        from ..targets import open_target

        with open_target(target_config, timeout=600.0) as target:
            run_dir, result = profile_target(
                target, target_config.function or "fc", repeats=repeats, warmup=warmup,
                body=body, content_type=ctype, force=force or "target", out=out,
                describe=target_config.model_dump(exclude_none=True), on_sample=progress)
    elif spec is not None:
        run_dir, result = profile_spec(spec, repeats=repeats, warmup=warmup, pull=pull,
                                       body=body, content_type=ctype, force=force or "reclaim",
                                       virtual_gpus=virtual_gpus, runtime=runtime, out=out,
                                       on_sample=progress, gpu_plan=gpu_plan,
                                       roofline=roofline)
    else:
        run_dir, result = profile_endpoint(url, function_name, repeats=repeats, warmup=warmup,
                                           body=body, content_type=ctype, force=force, out=out,
                                           on_sample=progress)
    if not result.kept:
        _no_sample_kept(result, run_dir)
    click.echo(phase_table(result))
    _echo_roofline(result)
    click.echo(f"results: {run_dir}")


# -- cold start vs size: `profile --model-size/--image-size`, `coldstart predict`

def _profile_sizes(spec: str | None, model_sizes: tuple[float, ...] | None,
                   image_sizes: tuple[float, ...] | None, *, repeats: int, warmup: int,
                   pull: bool, data: str | None, other: str | None, force: str | None,
                   virtual_gpus: str | None, require_gpu: bool, runtime: str | None,
                   out: Path) -> None:
    from ..coldstart.sizes import fit_table, profile_sizes

    if spec is None or other is not None:
        raise click.UsageError("--model-size / --image-size profile SPEC on a local harness; "
                               "give SPEC.yaml, not --url or --target")
    if model_sizes and image_sizes:
        raise click.UsageError("vary one size per sweep: --model-size or --image-size (predict "
                               "takes one fit of each)")
    axis, sizes = ("model", model_sizes) if model_sizes else ("image", image_sizes)
    if axis == "image" and not pull:
        click.echo("note: without --pull each padded image is already here when it starts, so "
                   "no pull is timed; add --pull to pull it from its registry", err=True)
    body, ctype, gpu_plan = _spec_request(spec, data, virtual_gpus, require_gpu)

    def progress(sample) -> None:  # noqa: ANN001
        extra = f"  ({sample.error[:80]})" if sample.error else ""
        click.echo(f"  cold start {sample.index + 1}: {sample.kind:<8} e2e {sample.e2e_ms:8.1f} ms"
                   + extra)

    run_dir, fit, points = profile_sizes(
        spec, axis, sizes or (), repeats=repeats, warmup=warmup, pull=pull, body=body,  # type: ignore[arg-type]
        content_type=ctype, force=force or "reclaim", virtual_gpus=virtual_gpus,
        runtime=runtime, out=out, gpu_plan=gpu_plan, on_sample=progress,
        on_size=lambda mb: click.echo(f"{axis} size {mb:g} MB:"))
    if fit is None:  # one size: its profile, as `coldstart profile` prints it
        from ..coldstart.outputs import phase_table

        click.echo(phase_table(points[0].result))
        click.echo("one size: nothing to fit (give two or more for a fit)")
    else:
        click.echo(fit_table(fit))
        click.echo(f"fit: {run_dir / layout.FIT}")
    click.echo(f"results: {run_dir}")


@coldstart.command("predict")
@click.option("--fit", "fits", multiple=True, required=True, metavar="FIT",
              type=click.Path(path_type=Path), help=f"A {layout.FIT} (or the size sweep's run "
              "folder); twice for a model fit and an image fit.")
@click.option("--model-size", default=None, metavar="SIZE", callback=size_value,
              help="Model size to predict for, e.g. 3GB.")
@click.option("--image-size", default=None, metavar="SIZE", callback=size_value,
              help="Image size (bytes added to the sample image) to predict for, e.g. 8GB.")
@click.option("--spec", "spec_path", default=None, type=click.Path(dir_okay=False),
              help="Also at FC's magnitudes: add this spec's harness.platform phases (their "
              "means), as the harness waits them out.")
def predict(fits: tuple[Path, ...], model_size: float | None, image_size: float | None,
            spec_path: str | None) -> None:
    """Predict the cold start and its phases at a size from a size sweep's fit."""
    from ..coldstart.sizefit import predict as predict_sizes, read_fit
    from ..coldstart.sizes import prediction_lines

    prediction = predict_sizes([read_fit(f) for f in fits],
                               {"model": model_size, "image": image_size})
    platform = None
    if spec_path is not None:
        from ..spec import load_function_spec

        platform = load_function_spec(spec_path).harness.platform
    for line in prediction_lines(prediction, platform=platform, spec=spec_path):
        click.echo(line)

# -- end cold start vs size


def _levels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter("use comma-separated numbers, e.g. 1,2,4,8,16") from None
    if not levels or any(x < 0 for x in levels):
        raise click.BadParameter("levels must be numbers ≥ 0, e.g. 1,2,4,8,16")
    return levels  # SweepConfig says which levels suit what --vary sets


def _sweep_help() -> str:
    from ..coldstart.levels import INTERVALS_HELP

    return ("Measure cold-start probability at each concurrency level and plot it.\n\n"
            f"Writes {layout.SWEEP} (per level: P(cold), the four outcome shares warm / cold / "
            f"throttled / failed, p50/p99, instances), plots/p_cold.png and {layout.REPORT}; each "
            f"level's own run folder is kept under levels/. {INTERVALS_HELP}.\n\n"
            "Exits 1, printing the first failure, when no level had a successful request.")


@coldstart.command("sweep", help=_sweep_help())
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--concurrency", "levels", default="1,2,4,8,16", show_default=True,
              callback=_levels, help="Levels: mean requests in flight, or the values of what "
              "--vary sets (instanceConcurrency, idleTimeout s, minInstances).")
@click.option("--vary", type=click.Choice(["concurrency", *(s.vary for s in SWEEP_SETTINGS)]),
              default="concurrency", show_default=True)
@click.option("--load", type=float, default=None, help="When --vary is not concurrency: mean "
              "requests in flight (default: the largest level for instance-concurrency, else 1).")
@click.option("--predict", is_flag=True, help="Also simulate the same levels, calibrated on the "
              f"measured runs, and overlay the simulator's curve ({layout.PREDICTED}).")
@click.option("--duration", type=float, default=60.0, show_default=True,
              help="Seconds of load per level.")
@click.option("--service-ms", type=float, default=None,
              help="Service time used to turn concurrency into a rate (default: measured).")
@click.option("--mode", type=click.Choice(["open", "closed"]), default="open", show_default=True,
              help="open: Poisson arrivals at level/service time; closed: level users.")
@click.option("--think", "think_s", type=float, default=1.0, show_default=True,
              help="Closed mode: seconds each user waits between requests.")
@click.option("--warmup", "warmup_s", type=float, default=None,
              help="Seconds from each level's start left out of the steady-state P(cold) (the "
              "ramp from zero). Default: one idleTimeout, at most half the level.")
@click.option("--steady-multiple", type=click.FloatRange(min=0), default=3.0,
              show_default=True, help="Each level lasts at least this many idleTimeouts "
              "(longer than --duration if need be); 0 keeps --duration as given.")
@click.option("--data", "-d", default=None, help=_DATA_HELP)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--virtual-gpus", default=None, metavar="COUNTxSIZE",
              help="Place GPU specs on these virtual GPUs, e.g. 1x16GB (default: the GPUs "
              "NVML finds; without any, virtual GPUs sized like the spec's gpuType).")
@click.option("--require-gpu", is_flag=True, help=REQUIRE_GPU_HELP)
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--target", "target_url", default=None, metavar="TARGET",
              help="Sweep this deployed function instead of a fresh local harness per level: "
              "fc://REGION/FUNCTION (default FUNCTION: the spec's name) or an HTTP-trigger URL; "
              "each level starts with the target's forced cold start (FC: UpdateFunction). "
              "Only --vary concurrency.")
def sweep(spec: str, levels: tuple[float, ...], vary: str, load: float | None, predict: bool,
          duration: float,
          service_ms: float | None, mode: str, think_s: float, warmup_s: float | None,
          steady_multiple: float, data: str | None, seed: int,
          virtual_gpus: str | None, require_gpu: bool, runtime: str | None, out: Path,
          target_url: str | None) -> None:
    from ..coldstart.levels import SweepLevel, level_line
    from ..coldstart.session import sweep_spec
    from ..coldstart.sweep import SweepConfig

    target_config = None
    if target_url is not None:
        from ..targets.config import target_from_url
        from ..spec import load_function_spec as _load

        target_config = target_from_url(target_url, function=_load(spec).name)
        if vary != "concurrency":
            raise click.UsageError("against a target only the load can vary (--vary "
                                   "concurrency): set instanceConcurrency or a provision config "
                                   "with `fcbench deploy` between sweeps")
    body, ctype, _ = _spec_request(spec, data, virtual_gpus, require_gpu)
    config = SweepConfig(levels=levels, vary=vary, load=load, duration_s=duration,  # type: ignore[arg-type]
                         service_ms=service_ms, mode=mode, think_s=think_s, seed=seed,  # type: ignore[arg-type]
                         warmup_s=warmup_s, steady_multiple=steady_multiple,
                         virtual_gpus=virtual_gpus, runtime=runtime)

    def progress(lv: SweepLevel) -> None:
        click.echo(level_line(lv))

    from ..spec import load_function_spec

    timing = config.timing(load_function_spec(spec).harness.idle_timeout)
    click.echo(f"sweeping {vary} over {', '.join(f'{x:g}' for x in levels)}: {timing.note}")
    run_dir, summary = sweep_spec(spec, config, body=body, content_type=ctype, out=out,
                                  on_level=progress, predict=predict, target=target_config)
    for row in summary.get("predicted") or []:
        click.echo(level_line(SweepLevel.from_row(row), "simulated level"))
    click.echo(f"service time {summary['service_ms']:.1f} ms; {summary['verdict']['text']}")
    click.echo(f"results: {run_dir}")
    _fail_if_no_level_succeeded(run_dir, summary)


def _level_ok(run_dir: Path, level: dict[str, Any]) -> int:
    """Successful requests of one sweep level: its run's summary.json (every request, warm-up
    included), else the steady-state counts."""
    try:
        doc = RunFolder(run_dir / str(level.get("run_dir") or "")).summary()
        return int(doc["ok"])
    except (OSError, ValueError, KeyError, TypeError, UsageError):
        return int(level.get("requests") or 0) - int(level.get("errors") or 0)


def _fail_if_no_level_succeeded(run_dir: Path, summary: dict[str, Any]) -> None:
    levels = summary.get("levels") or []
    if not levels or any(_level_ok(run_dir, lv) > 0 for lv in levels):
        return
    first = None
    for lv in levels:
        if lv.get("run_dir"):
            first = first_failure(run_dir / str(lv["run_dir"]) / layout.REQUESTS)
            if first:
                first = f"level {lv['level']:g}: {first}"
                break
    click.echo(f"error: no level had a successful request; the first failure: "
               f"{first or 'no request was sent'}", err=True)
    sys.exit(1)


# -- roofline (`coldstart roofline`, `coldstart profile --roofline`) ----------------------------

def _echo_roofline(result: Any) -> None:
    """The roofline table, when the profile measured one."""
    if result.roofline is None:
        return
    click.echo("roofline (each phase against the fastest this machine does the same work):")
    for line in result.roofline.lines():
        click.echo(line)


@coldstart.command("roofline")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--repeats", "-n", default=3, show_default=True, type=click.IntRange(1),
              help="Cold starts to keep.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0),
              help="Cold starts to run first and drop.")
@click.option("--pull", is_flag=True, help="Remove the image before each cold start so the "
              "pull is real and held against the registry's raw throughput (docker runtime).")
@click.option("--data", "-d", default=None, help=_DATA_HELP)
@click.option("--virtual-gpus", default=None, metavar="COUNTxSIZE",
              help="Place GPU specs on these virtual GPUs, e.g. 1x16GB.")
@click.option("--require-gpu", is_flag=True, help=REQUIRE_GPU_HELP)
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True, help="Parent folder of run folders.")
def roofline_command(spec: str, repeats: int, warmup: int, pull: bool, data: str | None,
                     virtual_gpus: str | None, require_gpu: bool, runtime: str | None,
                     out: Path) -> None:
    """Profile SPEC's cold starts and hold each phase against this machine's floor.

    The floors are measured in the same run with the same bytes: the model's files read cold
    and warm and deserialised, a bare interpreter and the same imports, the registry's raw blob
    throughput, a disk write of the layers' bytes and a minimal container (docker), host-to-GPU
    copies (CUDA only), the same request warm. Writes roofline.csv, limits.json and
    plots/roofline.png beside the profile's files, and prints what could be won.
    """
    from ..coldstart.outputs import phase_table
    from ..coldstart.session import profile_spec

    body, ctype, gpu_plan = _spec_request(spec, data, virtual_gpus, require_gpu)

    def progress(sample) -> None:  # noqa: ANN001
        click.echo(f"  cold start {sample.index + 1}: {sample.kind:<8} e2e {sample.e2e_ms:8.1f} ms"
                   + (f"  ({sample.error[:80]})" if sample.error else ""))

    run_dir, result = profile_spec(spec, repeats=repeats, warmup=warmup, pull=pull, body=body,
                                   content_type=ctype, force="reclaim",
                                   virtual_gpus=virtual_gpus, runtime=runtime, out=out,
                                   on_sample=progress, gpu_plan=gpu_plan, roofline=True)
    if not result.kept:
        _no_sample_kept(result, run_dir)
    click.echo(phase_table(result))
    _echo_roofline(result)
    click.echo(f"results: {run_dir}")
