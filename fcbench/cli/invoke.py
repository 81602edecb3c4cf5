"""`fcbench invoke NAME`: one manual call, with latency, cold/warm and instance id."""

from __future__ import annotations

import json
import mimetypes
import sys
from pathlib import Path

import click

__all__ = ["invoke", "read_data"]

DEFAULT_ENDPOINT = "http://127.0.0.1:9080"


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


@click.command()
@click.argument("name")
@click.option("--data", "-d", default=None, help="Request body: a string, or @FILE (an image...).")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True,
              help="The harness (or any FC 3.0-compatible endpoint).")
@click.option("--content-type", default=None, help="Override the guessed content type.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait.")
@click.option("--show-body/--no-body", default=True, show_default=True)
def invoke(name: str, data: str | None, endpoint: str, content_type: str | None, timeout: float,
           show_body: bool) -> None:
    """Invoke function NAME once and print latency, cold/warm and the instance."""
    from ..errors import UsageError
    from ..targets.url import UrlTarget

    body, guessed = read_data(data)
    try:
        target = UrlTarget(endpoint, function=name, timeout=timeout)
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    with target:
        record = target.invoke(body, content_type or guessed)
    if record.status == 0:
        raise click.ClickException(
            f"cannot reach {endpoint}: {record.error}. Is the harness running? "
            "Start it with `fcbench harness serve SPEC.yaml`.")
    kind = {True: "cold", False: "warm"}.get(record.cold, "unknown")  # type: ignore[arg-type]
    click.echo(f"status {record.status}  latency {record.latency_ms:.1f} ms  {kind}  "
               f"instance {record.instance_id or '-'}  "
               f"queue {_ms(record.queue_ms)} ms  inference {_ms(record.inference_ms)} ms")
    if show_body and record.body:
        try:
            click.echo(json.dumps(json.loads(record.body), indent=2)[:4000])
        except ValueError:
            click.echo(f"<{len(record.body)} bytes>")
    if not record.ok:
        sys.exit(1)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
