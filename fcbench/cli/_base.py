"""Shared CLI plumbing: the root group, error reporting, value checks."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .. import __version__
from ..errors import FcbenchError, SpecError, UsageError

__all__ = ["FcbenchGroup", "main_group"]


class FcbenchGroup(click.Group):
    """A group that turns fcbench errors into one clear line and an exit code, no traceback.

    Exit codes: 2 for bad input (spec, workload, options), 1 for failures at run time.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SpecError, UsageError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except FcbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=FcbenchGroup, context_settings={"auto_envvar_prefix": "FCBENCH",
                                                 "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fcbench")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main_group(verbose: int) -> None:
    """Benchmark and profile inference on on-demand serverless GPUs (Alibaba Cloud FC).

    Start with `fcbench harness serve workloads/functions/mobilenet-v2.yaml`.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
