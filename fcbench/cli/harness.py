"""`fcbench harness ...`: run the local serverless GPU harness.

Also `sample_data_option` (a spec's sample request as an `fcbench invoke --data` argument, for
the ready message).
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import click

from ..spec import FunctionSpec, load_function_specs
from ._base import REQUIRE_GPU_HELP, check_gpu_options, plan_gpus

__all__ = ["harness", "sample_data_option"]

def sample_data_option(spec: FunctionSpec) -> str:
    """`spec`'s sample request as a ``--data`` argument for `fcbench invoke` ('' when none)."""
    sample = spec.harness.sample_request
    if sample is None:
        return ""
    if sample.file is not None:
        path = sample.file
        try:
            rel = os.path.relpath(path)
            path = rel if not rel.startswith("..") else path
        except ValueError:
            pass
        return f" --data {shlex.quote('@' + path)}"
    if sample.text is not None:
        return f" --data {shlex.quote(sample.text)}"
    return f" --data {shlex.quote(json.dumps(sample.json_value))}"


@click.group()
def harness() -> None:
    """The local serverless GPU harness (FC on one machine)."""


@harness.command("serve")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; keep loopback unless you mean to expose it.")
@click.option("--port", default=9080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to bind (0 = any free port).")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None,
              help="Run every function on this runtime (default: each spec's harness.runtime).")
@click.option("--virtual-gpus", metavar="COUNTxSIZE", default=None,
              help="Place GPU specs on these virtual GPUs, e.g. 1x16GB or 2x24GB,1x48GB "
                   "(default: the GPUs NVML finds; without any, virtual GPUs sized like each "
                   "spec's gpuType).")
@click.option("--require-gpu", is_flag=True, help=REQUIRE_GPU_HELP)
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where instance logs go (default: a new temporary folder).")
@click.option("--access-key-id", default=None, metavar="ID",
              help="The access key requests must be signed with, as on FC (default: a fresh "
                   "pair, written to a file only you can read; fcbench's commands find it).")
@click.option("--access-key-secret", default=None, metavar="SECRET",
              help="Its secret (give both or neither; or FCBENCH_HARNESS_ACCESS_KEY_SECRET).",
              envvar="FCBENCH_HARNESS_ACCESS_KEY_SECRET")
@click.option("--allow-api-commands", is_flag=True,
              help="Accept harness.command (a command on this machine) in functions created "
                   "or updated through the API (default: only the SPEC files named here may "
                   "carry commands).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Accept this Host name too (besides the listen address and loopback "
                   "names), e.g. the machine's DNS name when --host exposes the harness.")
def serve(specs: tuple[str, ...], host: str, port: int, runtime: str | None,
          virtual_gpus: str | None, require_gpu: bool, log_dir: Path | None,
          access_key_id: str | None, access_key_secret: str | None, allow_api_commands: bool,
          allowed_hosts: tuple[str, ...]) -> None:
    """Serve SPEC.yaml functions on FC 3.0 routes until Ctrl-C.

    Invoke with `fcbench invoke NAME` or POST /2023-03-30/functions/NAME/invocations.
    Every request but GET /fcbench/v1/health and an anonymous HTTP trigger is signed with the
    harness's access key (FC's ACS3-HMAC-SHA256, as the FC SDK signs); docs/security.md.
    """
    from ..harness.server import HarnessConfig, serve_forever
    from ..signing import AccessKey

    check_gpu_options(virtual_gpus, require_gpu)
    if bool(access_key_id) != bool(access_key_secret):
        raise click.UsageError("give both --access-key-id and --access-key-secret, or neither "
                               "(then the harness makes a fresh pair)")
    loaded = load_function_specs(list(specs))
    gpu_plan = plan_gpus(loaded, virtual_gpus=virtual_gpus, require_gpu=require_gpu)
    key = AccessKey(access_key_id, access_key_secret) if access_key_id and access_key_secret \
        else None
    config = HarnessConfig(host=host, port=port, runtime=runtime, virtual_gpus=virtual_gpus,
                           log_dir=log_dir, require_gpu=require_gpu, access_key=key,
                           allow_api_commands=allow_api_commands, allowed_hosts=allowed_hosts,
                           gpu_plan=gpu_plan)

    def ready(h) -> None:  # noqa: ANN001
        names = ", ".join(s.name for s in loaded)
        click.echo(f"fcbench harness listening on {h.url} (functions: {names}; "
                   f"instance logs: {h.platform.log_dir})", err=False)
        click.echo(f"  access key {h.key.access_key_id} in {h.key_path} (only you can read "
                   "it; fcbench invoke/deploy/run and fc:// targets sign with it by "
                   "themselves)", err=False)
        click.echo(f"  invoke: fcbench invoke {loaded[0].name} --endpoint {h.url}"
                   f"{sample_data_option(loaded[0])}", err=False)
        click.echo("  Ctrl-C stops the harness and every instance it started.", err=False)

    serve_forever(loaded, config, on_ready=ready)
