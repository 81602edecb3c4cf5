"""`fcbench harness ...`: run the local serverless GPU harness."""

from __future__ import annotations

from pathlib import Path

import click

from ..spec import load_function_specs

__all__ = ["harness"]


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
              help="Place GPU specs on virtual GPUs, e.g. 1x16GB or 2x24GB,1x48GB "
                   "(default: the GPUs NVML finds).")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where instance logs go (default: a new temporary folder).")
def serve(specs: tuple[str, ...], host: str, port: int, runtime: str | None,
          virtual_gpus: str | None, log_dir: Path | None) -> None:
    """Serve SPEC.yaml functions on FC 3.0 routes until Ctrl-C.

    Invoke with `fcbench invoke NAME` or POST /2023-03-30/functions/NAME/invocations.
    """
    from ..harness.gpus import parse_virtual_gpus
    from ..harness.server import HarnessConfig, serve_forever

    loaded = load_function_specs(list(specs))
    if virtual_gpus:
        try:
            parse_virtual_gpus(virtual_gpus)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--virtual-gpus") from None
    config = HarnessConfig(host=host, port=port, runtime=runtime, virtual_gpus=virtual_gpus,
                           log_dir=log_dir)

    def ready(h) -> None:  # noqa: ANN001
        names = ", ".join(s.name for s in loaded)
        click.echo(f"fcbench harness listening on {h.url} (functions: {names}; "
                   f"instance logs: {h.platform.log_dir})", err=False)
        click.echo(f"  invoke: fcbench invoke {loaded[0].name} --endpoint {h.url}", err=False)
        click.echo("  Ctrl-C stops the harness and every instance it started.", err=False)

    serve_forever(loaded, config, on_ready=ready)
