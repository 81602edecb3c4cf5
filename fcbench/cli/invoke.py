"""`fcbench invoke NAME`: one manual call, with latency, cold/warm and instance id."""

from __future__ import annotations

import json
import mimetypes
import sys
import time
import urllib.error
import urllib.request
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
    body, guessed = read_data(data)
    url = f"{endpoint.rstrip('/')}/2023-03-30/functions/{name}/invocations"
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type or guessed})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, headers, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, payload = exc.code, exc.headers, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"cannot reach {endpoint}: {reason}. Is the harness running? "
            "Start it with `fcbench harness serve SPEC.yaml`.") from None
    latency_ms = (time.perf_counter() - t0) * 1000.0
    cold = headers.get("x-fcbench-cold")
    kind = {"1": "cold", "0": "warm"}.get(cold or "", "unknown")
    click.echo(f"status {status}  latency {latency_ms:.1f} ms  {kind}  "
               f"instance {headers.get('x-fc-instance-id', '-')}  "
               f"queue {headers.get('x-fcbench-queue-ms', '-')} ms  "
               f"inference {headers.get('x-fcbench-inference-ms', '-')} ms")
    if show_body and payload:
        try:
            click.echo(json.dumps(json.loads(payload), indent=2)[:4000])
        except ValueError:
            click.echo(f"<{len(payload)} bytes of {headers.get('Content-Type', 'data')}>")
    if status >= 400:
        sys.exit(1)
