"""`fcbench simulate WORKLOAD.yaml`: the workload through the scheduler on simulated time."""

from __future__ import annotations

from pathlib import Path

import click

from ..results import layout
from ..sim.run import default_times_help
from ._base import size_value

__all__ = ["simulate"]


@click.command()
@click.argument("workload", type=click.Path(dir_okay=False))
@click.option("--service-ms", default=None, metavar="DIST",
              help="Service time per request in ms: 120, exp:120, uniform:80:160, normal:120:10. "
              f"Default, without --calibrate: {default_times_help()}.")
@click.option("--startup-ms", default=None, metavar="DIST",
              help="Instance start-up time in ms, same forms (default: as for --service-ms): the "
              "in-instance start; a spec's harness.platform phases (FC-sized starts) are added "
              "to it, as the harness waits them out.")
# -- start-up from a size fit (docs/cost.md "What a smaller model does")
@click.option("--startup-from", "startup_fits", multiple=True, metavar="FIT",
              type=click.Path(path_type=Path), help=f"Start-up times from a size fit ({layout.FIT} "
              "of `coldstart profile --model-size/--image-size`, or its run folder; twice for "
              "one of each axis): normal around its predicted start-up at --model-size / "
              "--image-size, with the fit's residual spread.")
@click.option("--model-size", default=None, metavar="SIZE", callback=size_value,
              help="With --startup-from: the model size to simulate, e.g. 512MB.")
@click.option("--image-size", default=None, metavar="SIZE", callback=size_value,
              help="With --startup-from: the image size (added to the sample's) to simulate.")
# -- end start-up from a size fit
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the workload's duration (s).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the simulator's own draws: service and start-up times (from the "
              "distributions or the calibration samples). The arrivals come from the "
              "workload's `seed` (or its plan's), so every --seed replays the same arrivals; "
              "change the workload's seed for others.")
@click.option("--calibrate", "calibrate_from", multiple=True, metavar="RUN_DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Draw service and start-up times from a measured run folder's warm requests "
              "and instance starts (repeat to pool several); --service-ms/--startup-ms still win.")
@click.option("--output-tokens-scale", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, metavar="FACTOR",
              help=f"With --calibrate on an LLM run ({layout.REQUESTS} with input_tokens and "
              "output_tokens): every request's output length × FACTOR (2: answers twice as "
              "long), its service time from the calibration's per-token fit.")
@click.option("--prompt-tokens-scale", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, metavar="FACTOR",
              help="Likewise every request's prompt length × FACTOR.")
@click.option("--sweep", "sweep_spec", default=None, metavar="KEY=V1,V2,...",
              help=f"Simulate one level per value and write {layout.SWEEP} like `fcbench coldstart "
              "sweep`: concurrency (Poisson at level / service time), instanceConcurrency, "
              "idleTimeout or minInstances (the workload's own arrivals).")
@click.option("--warmup", "warmup_s", type=click.FloatRange(min=0), default=None,
              help="With --sweep: seconds from each level's start left out of the steady-state "
              "P(cold), as `coldstart sweep --warmup` (default: one idleTimeout).")
@click.option("--start-time", "start_time", default=None, metavar="ISO",
              help="The wall-clock time of simulated 0 (e.g. 2024-08-01T19:00:00+08:00; UTC "
              "without an offset): what the function's provision policies' cron and at() "
              "times are read against, and where the run folder's timestamps start "
              "(default: now).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Parent folder of run folders (default: the workload's output).")
def simulate(workload: str, service_ms: str | None, startup_ms: str | None,
             duration: float | None, seed: int, calibrate_from: tuple[Path, ...],
             output_tokens_scale: float, prompt_tokens_scale: float, sweep_spec: str | None, warmup_s: float | None, start_time: str | None,
             out: Path | None, startup_fits: tuple[Path, ...] = (),
             model_size: float | None = None, image_size: float | None = None) -> None:
    """Run WORKLOAD's arrivals through the harness's own scheduler on simulated time.

    Writes a run folder like a measured run (requests.csv, instances.csv, summary.json,
    report.html), marked simulated, so `fcbench report` and `fcbench cost` read it unchanged.
    """
    from ..load.loader import load_workload
    from ..results.summary import summary_table
    from ..sim.calibrate import calibrate
    from ..sim.run import SimulationSettings, assumed_note, simulate_workload
    from ..tables import print_labels

    startup_from = None
    if startup_fits or model_size is not None or image_size is not None:
        startup_ms = _startup_from_fit(startup_fits, startup_ms, model_size, image_size)
        startup_from = "--startup-from " + ", ".join(map(str, startup_fits))
    wl = load_workload(workload)
    if duration is not None:
        wl = wl.model_copy(update={"duration": float(duration)})
    cal = None
    if calibrate_from:
        cal = calibrate(calibrate_from)
        d = cal.describe()
        click.echo(f"calibrated on {len(calibrate_from)} run(s): {d['service_samples']} warm "
                   f"service times (median {d['service_median_ms']:g} ms), "
                   f"{d['startup_samples']} start-ups (median {d['startup_median_ms']:g} ms, "
                   f"from {d['startup_from']})")
        if cal.tokens_note:  # an LLM run: its per-token fit, or why there is none
            click.echo(cal.tokens_note)
    settings = SimulationSettings(service_ms, startup_ms, seed, calibration=cal,
                                  start_ts=_start_ts(start_time),
                                  prompt_tokens_scale=prompt_tokens_scale,
                                  output_tokens_scale=output_tokens_scale,
                                  startup_from=startup_from)
    note = assumed_note(wl, settings)  # refuses here, before any folder, when nothing says
    if note:
        click.echo(note, err=True)
    if sweep_spec is not None:
        _sweep(wl, sweep_spec, settings, out, warmup_s)
        return
    if warmup_s is not None:
        raise click.UsageError("--warmup goes with --sweep (a plain simulation reports the "
                               "whole run)")
    run_dir, summary = simulate_workload(wl, settings, out_dir=out)
    print_labels(summary_table(summary))
    click.echo(f"simulated {summary['count']} requests in {summary['simulation_s']:.2f} s")
    click.echo(f"results: {run_dir}")
    if cal is not None:  # the calibration's own sampling error, as intervals
        from ..sim.bootstrap import DEFAULT_REPLICATIONS, predict_folder

        for line in predict_folder(wl, settings, run_dir, replications=DEFAULT_REPLICATIONS):
            click.echo(line)


def _startup_from_fit(fits: tuple[Path, ...], startup_ms: str | None, model_size: float | None,
                      image_size: float | None) -> str:
    """--startup-from's start-up distribution (ms), said on stderr with where it came from."""
    from ..coldstart.sizefit import predict, read_fit, startup_distribution

    if not fits:
        raise click.UsageError("--model-size / --image-size go with --startup-from FIT (a size "
                               "fit to predict the start-up from)")
    if startup_ms is not None:
        raise click.UsageError("give --startup-ms or --startup-from, not both")
    prediction = predict([read_fit(f) for f in fits], {"model": model_size, "image": image_size})
    dist = startup_distribution(prediction)
    at = ", ".join(f"{a} {mb:g} MB" for a, mb in prediction.sizes_mb.items())
    outside = " (extrapolated: outside the measured sizes)" if prediction.extrapolated else ""
    click.echo(f"start-up from {', '.join(map(str, fits))} at {at}: {dist} ms{outside}",
               err=True)
    return dist


def _start_ts(text: str | None) -> float | None:
    from datetime import timezone

    from ..provision_policy import parse_time

    try:
        return parse_time(text, timezone.utc)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start-time") from None


def _sweep(wl, text: str, settings, out: Path | None,  # noqa: ANN001
           warmup_s: float | None) -> None:
    from ..coldstart.levels import level_line
    from ..coldstart.predict import SWEEP_KEYS, simulate_sweep

    key, _, raw = text.partition("=")
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError:
        values = ()
    if key.strip() not in SWEEP_KEYS or not values:
        raise click.BadParameter(f"write KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}"
                                 f" (got {text!r})", param_hint="--sweep")
    run_dir, summary = simulate_sweep(
        wl, key.strip(), values, settings, out=out or wl.output_dir(), warmup_s=warmup_s,
        on_level=lambda lv: click.echo(level_line(lv, f"simulated {key.strip()}")))
    click.echo(f"service time {summary['service_ms']:.1f} ms; {summary['verdict']['text']}")
    click.echo(f"results: {run_dir}")
