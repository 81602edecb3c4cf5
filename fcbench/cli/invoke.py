"""`fcbench invoke NAME`: one manual call, with latency, cold/warm and instance id."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..targets import open_target
from ._base import DEFAULT_ENDPOINT, read_data

__all__ = ["invoke"]

@click.command()
@click.argument("name", required=False)
@click.option("--data", "-d", default=None, help="Request body: a string, or @FILE (an image...).")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="The harness (or any FC 3.0-compatible endpoint).")
@click.option("--target", "target_url", default=None, metavar="TARGET",
              help="Instead of --endpoint: fc://REGION/FUNCTION[?qualifier=Q] (FC through its "
              "SDK), fc://127.0.0.1:PORT/FUNCTION (the harness through the SDK), or an "
              "HTTP-trigger URL (https://ID.REGION.fcapp.run/PATH). NAME fills in an fc target "
              "without a function.")
@click.option("--content-type", default=None, help="Override the guessed content type.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait.")
@click.option("--show-body/--no-body", default=True, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the response body to this file (an image, say) instead of showing it.")
def invoke(name: str | None, data: str | None, endpoint: str, target_url: str | None,
           content_type: str | None, timeout: float, show_body: bool,
           output: Path | None) -> None:
    """Invoke function NAME once and print latency, cold/warm and the instance.

    Requests to a harness are signed with its key, found by the endpoint's port
    (docs/security.md)."""
    from ..errors import UsageError
    from ..targets.config import target_from_url
    from ..targets.url import UrlTarget

    body, guessed = read_data(data)
    if target_url is not None:
        config = target_from_url(target_url, function=name)
        if name and config.function != name:
            raise click.UsageError(f"NAME {name!r} and --target {target_url!r} disagree; give "
                                   "the function once")
        target, where = open_target(config, timeout=timeout), target_url
    else:
        if not name:
            raise click.UsageError("give the function NAME (or --target fc://REGION/FUNCTION)")
        try:
            target, where = UrlTarget(endpoint, function=name, timeout=timeout), endpoint
        except UsageError as exc:
            raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    with target:
        record = target.invoke(body, content_type or guessed)
    if record.status == 0:
        hint = "" if target_url else (" Is the harness running? Start it with "
                                      "`fcbench harness serve SPEC.yaml`.")
        raise click.ClickException(f"cannot reach {where}: {record.error}.{hint}")
    kind = {True: "cold", False: "warm"}.get(record.cold, "unknown")  # type: ignore[arg-type]
    click.echo(f"status {record.status}  latency {record.latency_ms:.1f} ms  {kind}  "
               f"instance {record.instance_id or '-'}  "
               f"queue {_ms(record.queue_ms)} ms  inference {_ms(record.inference_ms)} ms  "
               f"request {record.fc_request_id or '-'}"
               + (f"  error {record.error}" if record.error else ""))
    if output is not None:
        try:
            output.write_bytes(record.body or b"")
        except OSError as exc:
            raise click.BadParameter(f"cannot write {output}: {exc.strerror}",
                                     param_hint="--output") from None
        click.echo(f"wrote {len(record.body or b'')} bytes to {output}")
    elif show_body and record.body:
        try:
            click.echo(json.dumps(json.loads(record.body), indent=2)[:4000])
        except ValueError:
            click.echo(f"<{len(record.body)} bytes>")
    if not record.ok:
        sys.exit(1)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
