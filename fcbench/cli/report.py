"""`fcbench report RUN_DIR`: rebuild a run folder's HTML report."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild RUN_DIR/report.html from the files in the run folder."""
    from ..report.html import write_report

    click.echo(f"report: {write_report(run_dir)}")
