"""Shared CLI plumbing: the root group, error reporting, and what several commands share.

Key names: `FcbenchGroup` / `main_group`; `DEFAULT_ENDPOINT` (the harness's address) and
`read_data` (a ``--data`` value); the GPU options of every command that starts a harness
(`check_gpu_options`, `plan_gpus`, `REQUIRE_GPU_HELP`); `first_failure` (a run's first failed
request, for an error line). Command modules import these from here, never from each other.
"""

from __future__ import annotations

import csv
import logging
import mimetypes
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import FcbenchError, SpecError, UsageError
from ..results import layout

if TYPE_CHECKING:
    from ..harness.gpuplan import GpuPlan
    from ..spec import FunctionSpec

__all__ = ["DEFAULT_ENDPOINT", "GPU_CHOICE_HINT", "REQUIRE_GPU_HELP", "SLO_HELP", "FcbenchGroup",
           "check_gpu_options", "first_failure", "main_group", "plan_gpus", "read_data",
           "slo_value"]

#: Where `fcbench harness serve` listens by default, and so where invoke/deploy send.
DEFAULT_ENDPOINT = "http://127.0.0.1:9080"
#: What the one-line notice tells a user who wants other GPUs (the CLI's words, not the library's).
GPU_CHOICE_HINT = "pass --virtual-gpus to choose, --require-gpu to refuse"
#: Help of ``--require-gpu``, shared by every command that starts a harness.
REQUIRE_GPU_HELP = ("Refuse to start when a spec asks for a GPU and NVML finds none (default: "
                    "place GPU specs on virtual GPUs sized like their gpuType).")


#: Help of ``--slo`` (`fcbench run`, `fcbench report`).
SLO_HELP = ("Token objectives for goodput, in ms: ttft=MS,tpot=MS (and e2el=MS for the whole "
            "latency); the share of requests sent that succeeded and met every one goes in "
            f"{layout.SUMMARY}'s tokens block.")


def slo_value(ctx: click.Context, param: click.Parameter, value: str | None
              ) -> dict[str, float] | None:
    """A ``--slo`` value parsed (`fcbench.measures.parse_slo`); a bad one is a usage error."""
    if value is None:
        return None
    from ..measures import parse_slo

    try:
        return parse_slo(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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


def sizes_value(ctx: click.Context | None, param: click.Parameter | None, value: str | None
                ) -> tuple[float, ...] | None:
    """A click callback: comma-separated sizes (64MB,1GB) in MB (2^20 bytes), None when absent."""
    from ..harness.gpus import parse_size_mb

    if value is None:
        return None
    try:
        return tuple(parse_size_mb(x) for x in value.split(",") if x.strip()) or \
            (parse_size_mb(""),)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def size_value(ctx: click.Context | None, param: click.Parameter | None, value: str | None
               ) -> float | None:
    """A click callback: one size (3GB) in MB, None when absent."""
    sizes = sizes_value(ctx, param, value)
    if sizes is not None and len(sizes) != 1:
        raise click.BadParameter("give one size, e.g. 3GB", param=param)
    return None if sizes is None else sizes[0]


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


def read_data(data: str | None) -> tuple[bytes, str]:
    """A ``--data`` value (a string, or @FILE) as a body and a guessed content type."""
    if data is None:
        return b"", "application/octet-stream"
    if data.startswith("@"):
        path = Path(data[1:])
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}",
                                     param_hint="--data") from None
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return body, ctype
    return data.encode(), "application/json" if data.lstrip()[:1] in "{[" else "text/plain"


def check_gpu_options(virtual_gpus: str | None, require_gpu: bool) -> None:
    """Validate ``--virtual-gpus`` text and refuse it together with ``--require-gpu``."""
    from ..harness.gpus import parse_virtual_gpus

    if virtual_gpus and require_gpu:
        raise click.UsageError("--virtual-gpus and --require-gpu contradict each other; give one "
                               "(--require-gpu refuses to run GPU specs without a real GPU)")
    if virtual_gpus:
        try:
            parse_virtual_gpus(virtual_gpus)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--virtual-gpus") from None


def plan_gpus(specs: Sequence[FunctionSpec], *, virtual_gpus: str | None, require_gpu: bool,
              choose_hint: str = GPU_CHOICE_HINT,
              size_hint: str = "pass --virtual-gpus COUNTxSIZE (e.g. 1x48GB) to choose the "
                               "virtual GPUs") -> GpuPlan:
    """Plan where `specs` will run (`fcbench.harness.gpuplan.plan_gpus`) and print the one-line
    notice when GPU specs go on default virtual GPUs (stderr). Returns the plan, for the
    harness the command starts (`HarnessConfig.gpu_plan`) and for the caller to record."""
    from ..harness.gpuplan import plan_gpus as plan

    found = plan(specs, virtual_gpus=virtual_gpus, require_gpu=require_gpu, size_hint=size_hint)
    if found.virtual_default:
        click.echo(f"{found.info['description']}; {choose_hint}", err=True)
    return found


def first_failure(requests_csv: Path) -> str | None:
    """The first failed request of a run (``HTTP 400: the body is not valid JSON...``), or None
    when there is none (or no requests.csv)."""
    try:
        with open(requests_csv, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    status = int(float(row.get("status") or 0))
                except ValueError:
                    status = 0
                if 0 < status < 400:
                    continue
                error = (row.get("error") or "").strip()
                prefix = f"HTTP {status}" if status else "no response"
                if not error or error == prefix:
                    return prefix
                return f"{prefix}: {error}"
    except OSError:
        return None
    return None
