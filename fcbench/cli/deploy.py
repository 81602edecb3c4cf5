"""`fcbench deploy`: a function spec to FC 3.0 or the harness, `delete`, and Serverless Devs
``s.yaml`` `export` / `import`. Thin: the work is in `fcbench.deploy`.

Nothing a file asks for runs or leaves this shell silently: `apply` and `import` print every
command the spec runs (on the harness's machine, and inside the image) and every
``${env('NAME')}`` reference (the key and the variable, never the value); `apply` refuses, before
any call, commands on the harness's machine without ``--allow-command`` and secret-looking
references without ``--allow-secret-env``. References are resolved here only, in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ._base import DEFAULT_ENDPOINT

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


def _exposure(spec: Any, *, target: str) -> list[str]:
    """What `spec` runs and copies, as lines to print; `target` is ``harness``, ``fc`` or
    ``import`` (it only changes what the headings say about the flags)."""
    from ..spec import container_code, env_refs, host_code

    out: list[str] = []
    host = host_code(spec)
    if host:
        why = {"harness": "sending it needs --allow-command",
               "fc": "toward FC the harness keys are not sent and the rest runs in FC's instance",
               "import": "`fcbench deploy` to a harness needs --allow-command"}[target]
        out.append(f"runs on the harness's machine ({why}):")
        out += [f"  {line}" for line in host]
    inside = container_code(spec)
    if inside:
        out.append("runs inside the container image (FC's contract; not gated):")
        out += [f"  {line}" for line in inside]
    refs = env_refs(spec)
    if refs:
        out.append("${env(...)} references, resolved from this shell by `fcbench deploy` only "
                   "(values never shown):")
        out += [f"  {ref.describe()}" + ("  [secret-looking: sending it needs "
                                          "--allow-secret-env]" if ref.secret else "")
                for ref in refs]
    return out


def _consent(spec: Any, spec_file: str, *, harness: bool, allow_command: bool,
             allow_secret_env: bool) -> None:
    """Refuse (exit 2, before any call) what `spec` would run or copy without its flag."""
    from ..spec import env_ref_text, env_refs, host_code

    problems = []
    host = host_code(spec) if harness else []  # toward FC nothing runs on this machine
    if host and not allow_command:
        problems.append("it would run commands on this machine through the harness ("
                        + "; ".join(host) + "): read them, then pass --allow-command to send it")
    secret = [r for r in env_refs(spec) if r.secret]
    if secret and not allow_secret_env:
        problems.append("it copies secret-looking variables of this shell into the function's "
                        "configuration (" + "; ".join(f"{r.path} takes {env_ref_text(r.name)}"
                                                     for r in secret)
                        + "): pass --allow-secret-env to send it")
    if problems:
        raise click.UsageError(f"{spec_file}: nothing was sent: " + "; and ".join(problems))


def _resolved(spec: Any, loaded: Any, doc: Any, spec_file: str,
              environ: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """`spec` with its ``${env(...)}`` references resolved from `environ`, and name -> value of
    those used; an error names the file, line and key as the file has them."""
    from .._yaml import _dotted
    from ..deploy.serverless_devs import Imported
    from ..errors import SpecError
    from ..spec import resolve_env_refs

    try:
        resolved, names = resolve_env_refs(spec, environ)
    except SpecError as exc:
        if isinstance(loaded, Imported) and loaded.locate is not None:
            line, path = loaded.locate(exc.path)
        else:
            loc = tuple(int(i) if i else key for i, key in
                        re.findall(r"\[(\d+)\]|([^.\[\]]+)", exc.path or ""))
            line, path = doc.line_of(loc), _dotted(loc) or None
        raise SpecError(exc.message, file=spec_file, line=line, path=path) from None
    return resolved, {n: environ[n] for n in names}


def _scrub(text: str, values: Mapping[str, str]) -> str:
    """`text` with each resolved value written as its reference instead."""
    from ..spec import env_ref_text

    for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= 4:  # shorter ones would garble the text, and hide little
            text = text.replace(value, env_ref_text(name))
    return text


def _report_lines(lines: list[str], spec: Any, values: Mapping[str, str]) -> list[str]:
    """The deploy report, a referenced key's old and new values left out (FC's old one may be
    the secret too), every resolved value shown as its reference."""
    from ..spec import env_ref_text, env_refs

    refs = {r.path: r.name for r in env_refs(spec)}
    out = []
    for line in lines:
        head = line.strip().split(": ", 1)[0]
        if head in refs:
            line = line[:line.index(head)] + (f"{head}: changed (value from "
                                              f"{env_ref_text(refs[head])}, not shown)")
        out.append(_scrub(line, values))
    return out


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
@click.option("--allow-command", is_flag=True,
              help="Send a spec that runs commands on the harness's machine (harness.command; "
                   "LD_PRELOAD, PYTHONPATH, ... for the process runtime). Printed either way.")
@click.option("--allow-secret-env", is_flag=True,
              help="Send ${env('NAME')} values whose variable or key looks secret: the value "
                   "is copied into the function's configuration. Printed (never the value) "
                   "either way.")
def apply(spec_file: str, endpoint: str | None, region: str | None, timeout: float,
          trigger: str | None, trigger_name: str, auth_type: str, methods: str | None,
          provision: int | None, dry_run: bool, allow_command: bool,
          allow_secret_env: bool) -> None:
    """Create or update FUNCTION.yaml's function, its HTTP trigger and provision config.

    ${env('NAME')} values are resolved from this shell, in memory, here only; commands and
    references are printed first."""
    from ..deploy.bodies import deploy_plan
    from ..deploy.client import deploy as run_deploy
    from ..deploy.client import is_harness_endpoint
    from ..deploy.serverless_devs import Imported
    from ..errors import FcbenchError, SpecError

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
    for line in _exposure(spec, target="harness" if harness else "fc"):
        click.echo(line, err=True)
    if dry_run:
        _resolved(spec, loaded, doc, spec_file, os.environ)  # unset variables fail here too
        # the plan is the unresolved spec's: a reference shows as its text, never its value
        click.echo(f"dry run: nothing is sent. Calls to {where} for {spec.name}, in order; "
                   "secret-looking values shown as ***, ${env(...)} references as written:\n")
        for call in deploy_plan(spec, harness=harness, trigger=http, provision=provision):
            click.echo(call.render() + "\n")
        return
    _consent(spec, spec_file, harness=harness, allow_command=allow_command,
             allow_secret_env=allow_secret_env)
    sent, values = _resolved(spec, loaded, doc, spec_file, os.environ)
    api = _api(endpoint, region, timeout)
    try:
        report = run_deploy(api, sent, trigger=http, provision=provision)
    except FcbenchError as exc:
        if values:  # FC's message may quote what it was sent
            exc.args = (_scrub(str(exc), values),)
        raise
    click.echo(f"deployed {spec.name} to {where}")
    for line in _report_lines(report.lines, spec, values):
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
    notes += _exposure(got.spec, target="import")
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
