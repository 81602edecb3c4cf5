"""`fcbench report RUN_DIR`: rebuild a run folder's HTML report; `fcbench report --compare
RUN_A RUN_B [...]`: the runs side by side."""

from __future__ import annotations

from pathlib import Path

import click

from ..results import layout
from ._base import SLO_HELP, slo_value

__all__ = ["report"]


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--compare", is_flag=True,
              help="Put two or more run folders side by side (the first is the baseline): "
              f"a terminal table, {layout.COMPARE_CSV}, {layout.CONFIG_DIFF} and "
              f"{layout.COMPARE_HTML} in a new folder.")
@click.option("--table", default="fc-doc-simple", show_default=True,
              help="With --compare: the price table for cost per day and per 1000 requests "
              "(a shipped name or a YAML file).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --compare: the folder the comparison's own folder is made in "
              "[default: results].")
@click.option("--slo", default=None, callback=slo_value, metavar="ttft=MS,tpot=MS",
              help=SLO_HELP + f" Recounted from {layout.REQUESTS}; {layout.SUMMARY} is "
              "updated.")
def report(run_dirs: tuple[Path, ...], compare: bool, table: str, out: Path | None,
           slo: dict[str, float] | None) -> None:
    """Rebuild RUN_DIR/report.html from the files in the run folder, or compare run folders
    (measured, simulated, coldstart, FC) with --compare."""
    if not compare:
        if len(run_dirs) != 1:
            raise click.UsageError("give one RUN_DIR, or --compare RUN_A RUN_B [...]")
        from ..report.html import write_report

        if slo is not None:
            from ..results import RunFolder
            from ..results.summary import apply_slo, token_rows
            from ..tables import print_labels

            summary = apply_slo(RunFolder.open(run_dirs[0]), slo)
            print_labels(token_rows(summary.get("tokens")))
        click.echo(f"report: {write_report(run_dirs[0])}")
        return
    if slo is not None:
        raise click.UsageError("--slo rebuilds one run's report; it does not go with --compare")
    if len(run_dirs) < 2:
        raise click.UsageError("--compare needs two or more run folders")
    from ..report.compare import compare_runs, terminal_table, write_comparison

    comparison = compare_runs(run_dirs, table=table)
    folder = write_comparison(comparison, out or Path("results"))
    for line in terminal_table(comparison):
        click.echo(line)
    click.echo(f"comparison: {folder / layout.COMPARE_HTML}")
