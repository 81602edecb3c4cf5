"""`fcbench coldstart ...`: forced cold-start profiles and probability-vs-concurrency sweeps."""

from __future__ import annotations

from pathlib import Path

import click

from .invoke import read_data

__all__ = ["coldstart"]


@click.group()
def coldstart() -> None:
    """Cold-start experiments: where the time goes, and how often it hits."""


@coldstart.command("profile")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--repeats", "-n", default=5, show_default=True, type=click.IntRange(1),
              help="Cold starts to keep.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0),
              help="Cold starts to run first and drop.")
@click.option("--pull", is_flag=True, help="Remove the image before each cold start so the "
              "pull is real (docker runtime, image in a registry).")
@click.option("--data", "-d", default=None, help="Request body: a string or @FILE.")
@click.option("--url", default=None, help="Profile a running endpoint instead of SPEC: an FC "
              "3.0-compatible base URL (with --function) or any URL to POST to.")
@click.option("--function", "function_name", default=None, help="Function name (with --url).")
@click.option("--force", default=None, help="How to force cold starts: reclaim (harness), "
              "wait:SECONDS (longer than the idle timeout), none. Default: reclaim for SPEC "
              "or a harness URL, else wait:360.")
@click.option("--virtual-gpus", default=None, metavar="COUNTxSIZE",
              help="Virtual GPUs for GPU specs when NVML finds none (e.g. 1x16GB).")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True, help="Parent folder of run folders.")
def profile(spec: str | None, repeats: int, warmup: int, pull: bool, data: str | None,
            url: str | None, function_name: str | None, force: str | None,
            virtual_gpus: str | None, runtime: str | None, out: Path) -> None:
    """Force cold starts of SPEC's function and split each into phases.

    Writes phases.csv, plots/phases.png and summary.json to a new run folder and prints a
    median/spread table. With --url, profiles a running endpoint from its response headers.
    """
    from ..coldstart.session import profile_endpoint, profile_spec
    from ..report.phases import phase_table

    if (spec is None) == (url is None):
        raise click.UsageError("give either SPEC.yaml or --url URL")
    body, ctype = read_data(data)

    def progress(sample) -> None:  # noqa: ANN001
        extra = f"  ({sample.error[:80]})" if sample.error else ""
        click.echo(f"  cold start {sample.index + 1}: {sample.kind:<8} e2e {sample.e2e_ms:8.1f} ms"
                   + (f"  warm {sample.warm_ms:.1f} ms" if sample.warm_ms else "") + extra)

    if spec is not None:
        run_dir, result = profile_spec(spec, repeats=repeats, warmup=warmup, pull=pull,
                                       body=body, content_type=ctype, force=force or "reclaim",
                                       virtual_gpus=virtual_gpus, runtime=runtime, out=out,
                                       on_sample=progress)
    else:
        run_dir, result = profile_endpoint(url, function_name, repeats=repeats, warmup=warmup,
                                           body=body, content_type=ctype, force=force, out=out,
                                           on_sample=progress)
    click.echo(phase_table(result))
    click.echo(f"results: {run_dir}")
