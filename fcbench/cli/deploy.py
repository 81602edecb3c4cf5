"""`fcbench deploy`: a function spec to FC 3.0 or the harness, `delete`, and Serverless Devs
``s.yaml`` `export` / `import`. Thin: the work is in `fcbench.deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .invoke import DEFAULT_ENDPOINT

__all__ = ["deploy"]


class _DeployGroup(click.Group):
    """`fcbench deploy FUNCTION.yaml ...` is `fcbench deploy apply FUNCTION.yaml ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["apply", *args]
        return super().parse_args(ctx, args)


def _target_options(f: Any) -> Any:
    f = click.option("--region", default=None,
                     help="FC region id (e.g. cn-hangzhou): deploy to Function Compute.")(f)
    f = click.option("--endpoint", default=None,
                     help=f"An FC 3.0 endpoint; default {DEFAULT_ENDPOINT} (the harness) "
                          "unless --region is given.")(f)
    return click.option("--timeout", default=60.0, show_default=True,
                        help="Seconds per API call.")(f)


def _trigger_options(f: Any) -> Any:
    f = click.option("--methods", default=None, metavar="GET,POST,...",
                     help="HTTP trigger methods (default: all FC offers).")(f)
    f = click.option("--auth-type", type=click.Choice(["anonymous", "function"]),
                     default="anonymous", show_default=True, help="HTTP trigger authType.")(f)
    return click.option("--trigger-name", default="httpTrigger", show_default=True)(f)


def _http_trigger(name: str, auth_type: str, methods: str | None) -> Any:
    from ..deploy.bodies import DEFAULT_METHODS, HttpTrigger
    from ..errors import SpecError

    wanted = tuple(m.strip().upper() for m in methods.split(",") if m.strip()) if methods \
        else DEFAULT_METHODS
    try:
        return HttpTrigger(name=name, auth_type=auth_type, methods=wanted)
    except SpecError as exc:
        raise click.BadParameter(exc.message, param_hint="--methods") from None


def _load(path: str) -> tuple[Any, Any]:
    """A FUNCTION.yaml, or an s.yaml (it has `edition`) read through the importer; and the
    located document (for error lines)."""
    from .._yaml import load_located
    from ..deploy.serverless_devs import import_s_yaml
    from ..spec import function_spec_from_doc

    doc = load_located(path)
    if isinstance(doc.data, dict) and "edition" in doc.data:
        return import_s_yaml(path), doc
    return function_spec_from_doc(doc), doc


@click.group(cls=_DeployGroup)
def deploy() -> None:
    """Deploy a function spec to Function Compute 3.0 or the harness; s.yaml in and out.

    \b
    fcbench deploy FUNCTION.yaml [--endpoint URL | --region R] [--trigger http]
                   [--provision N] [--dry-run]
    fcbench deploy delete NAME [--endpoint URL | --region R]
    fcbench deploy export FUNCTION.yaml --format s.yaml [-o s.yaml]
    fcbench deploy import s.yaml [-o FUNCTION.yaml]
    """


@deploy.command("apply")
@click.argument("spec_file", metavar="FUNCTION.yaml", type=click.Path(dir_okay=False))
@_target_options
@click.option("--trigger", type=click.Choice(["http"]), default=None,
              help="Have an HTTP trigger (default: the s.yaml's triggers, else leave as is).")
@_trigger_options
@click.option("--provision", type=click.IntRange(min=0), default=None,
              help="Provisioned instances (PutProvisionConfig defaultTarget); default "
                   "harness.minInstances when above 0, else left as is.")
@click.option("--dry-run", is_flag=True, help="Print the exact API calls; send nothing.")
def apply(spec_file: str, endpoint: str | None, region: str | None, timeout: float,
          trigger: str | None, trigger_name: str, auth_type: str, methods: str | None,
          provision: int | None, dry_run: bool) -> None:
    """Create or update FUNCTION.yaml's function, its HTTP trigger and provision config."""
    from ..deploy.bodies import deploy_plan
    from ..deploy.client import deploy as run_deploy
    from ..deploy.client import is_harness_endpoint
    from ..deploy.serverless_devs import Imported
    from ..errors import SpecError

    loaded, doc = _load(spec_file)
    spec = loaded.spec if isinstance(loaded, Imported) else loaded
    http = _http_trigger(trigger_name, auth_type, methods) if trigger else None
    if http is None and isinstance(loaded, Imported) and loaded.triggers:
        http = loaded.triggers[0]
    if provision is None and spec.harness.min_instances:
        provision = spec.harness.min_instances
    if endpoint is None and region is None:
        endpoint = DEFAULT_ENDPOINT
    harness = is_harness_endpoint(endpoint)
    if not harness and not spec.custom_container_config.image:
        s_yaml = isinstance(loaded, Imported)
        raise SpecError("FC runs a custom container from an image: set "
                        "customContainerConfig.image (the harness's process runtime needs "
                        "none, FC does)", file=spec_file,
                        line=doc.line_of(("resources",) if s_yaml else
                                         ("customContainerConfig", "image")),
                        path="customContainerConfig.image")
    where = f"the harness at {endpoint}" if harness else \
        f"Function Compute ({endpoint or f'region {region}'})"
    if dry_run:
        click.echo(f"dry run: nothing is sent. Calls to {where} for {spec.name}, in order; "
                   "secret-looking values shown as ***:\n")
        for call in deploy_plan(spec, harness=harness, trigger=http, provision=provision):
            click.echo(call.render() + "\n")
        return
    api = _api(endpoint, region, timeout)
    report = run_deploy(api, spec, trigger=http, provision=provision)
    click.echo(f"deployed {spec.name} to {where}")
    for line in report.lines:
        click.echo(f"  {line}")
    if http is not None:
        click.echo(f"trigger URL: {report.trigger_url or '(FC returned none)'}")


@deploy.command("delete")
@click.argument("name")
@_target_options
@click.option("--dry-run", is_flag=True, help="Print the API calls; send nothing.")
def delete(name: str, endpoint: str | None, region: str | None, timeout: float,
           dry_run: bool) -> None:
    """Delete function NAME: its triggers, its provision config, then the function."""
    from ..deploy.bodies import delete_plan
    from ..deploy.client import delete as run_delete

    if endpoint is None and region is None:
        endpoint = DEFAULT_ENDPOINT
    if dry_run:
        click.echo("dry run: nothing is sent.\n")
        for call in delete_plan(name):
            click.echo(call.render() + "\n")
        return
    api = _api(endpoint, region, timeout)
    for line in run_delete(api, name):
        click.echo(line)


@deploy.command("export")
@click.argument("spec_file", metavar="FUNCTION.yaml", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["s.yaml"]), default="s.yaml",
              show_default=True, help="Serverless Devs 3.x (component fc3).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write here (default: standard output).")
@click.option("--region", default="cn-hangzhou", show_default=True)
@click.option("--access", default="default", show_default=True,
              help="Serverless Devs credential alias (`s config add`).")
@click.option("--trigger", type=click.Choice(["http", "none"]), default="http",
              show_default=True)
@_trigger_options
def export(spec_file: str, fmt: str, output: str | None, region: str, access: str,
           trigger: str, trigger_name: str, auth_type: str, methods: str | None) -> None:
    """Write FUNCTION.yaml as a Serverless Devs s.yaml (`s deploy` reads it)."""
    from ..deploy.serverless_devs import export_s_yaml
    from ..spec import load_function_spec

    spec = load_function_spec(spec_file)
    http = _http_trigger(trigger_name, auth_type, methods) if trigger == "http" else None
    base = Path(output).resolve().parent if output else Path.cwd()
    text = export_s_yaml(spec, region=region, access=access, trigger=http, base_dir=base)
    _write(text, output)


@deploy.command("import")
@click.argument("s_yaml", metavar="s.yaml", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the function spec here (default: standard output).")
@click.option("--resource", default=None, help="Which resource / service, if several.")
def import_(s_yaml: str, output: str | None, resource: str | None) -> None:
    """Read a Serverless Devs s.yaml (3.x fc3, or 1.x fc) into a FUNCTION.yaml."""
    from ..deploy.serverless_devs import function_yaml, import_s_yaml

    got = import_s_yaml(s_yaml, resource=resource)
    notes = [f"read {s_yaml}: Serverless Devs {got.edition}, {got.resource!r} -> function "
             f"{got.spec.name}" + (f" (region {got.region})" if got.region else "")]
    notes += [f"mapped {m}" for m in got.mapped]
    notes += [f"dropped {d}" for d in got.dropped]
    for t in got.triggers:
        notes.append(f"HTTP trigger {t.describe()}: `fcbench deploy` it with --trigger http "
                     f"--trigger-name {t.name} --auth-type {t.auth_type} "
                     f"--methods {','.join(t.methods)}")
    base = Path(output).resolve().parent if output else Path.cwd()
    header = f"Imported by `fcbench deploy import` from {s_yaml} (Serverless Devs {got.edition})."
    if got.dropped:
        header += "\nDropped (fcbench's spec has no such field):\n" + \
            "\n".join(f"  {d}" for d in got.dropped)
    _write(function_yaml(got.spec, base_dir=base, header=header), output)
    for note in notes:
        click.echo(note, err=True)


def _api(endpoint: str | None, region: str | None, timeout: float) -> Any:
    from ..deploy.client import FcApi

    try:
        return FcApi(endpoint=endpoint, region=region, timeout=timeout)
    except ImportError as exc:  # the SDK is an extra: say which
        raise click.ClickException(str(exc)) from None


def _write(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot write {output}: {exc.strerror}",
                                 param_hint="--output") from None
    click.echo(f"wrote {output}", err=True)
