"""`fcbench images ...`: build, push and list the sample images; build the offline base image."""

from __future__ import annotations

import json
import sys

import click

from ..tables import megabytes, print_columns

__all__ = ["images"]


@click.group()
def images() -> None:
    """Sample images (FC custom containers) and the offline base image."""


@images.command("build")
@click.argument("name", type=click.Choice(["llm", "mobilenet-v2", "stable-diffusion"]))
@click.option("--base", default=None, metavar="IMAGE",
              help="Base image with Python 3.11 (default: the offline fcbench/base:bookworm, "
                   "built first if missing); e.g. python:3.11-slim where a registry is reachable.")
@click.option("--tag", default=None, help="Image tag (default fcbench/NAME:latest, or "
                                          "fcbench/NAME:mount with --mount).")
@click.option("--push", "registry", default=None, metavar="REGISTRY",
              help="Also tag into REGISTRY and push, e.g. 127.0.0.1:5000.")
@click.option("--bake/--mount", default=True, show_default=True,
              help="Bake the model into the image, or leave it out: the docker runtime then "
                   "bind-mounts the host's model file read-only (changes cold start).")
@click.option("--python-version", default="3.11", show_default=True,
              help="Python of the base image (picks the wheels).")
@click.option("--pip-arg", "pip_args", multiple=True, metavar="ARG",
              help="Extra argument for `pip download` (repeatable), e.g. "
                   "--pip-arg=--extra-index-url=https://download.pytorch.org/whl/cpu")
@click.option("--no-cache", "nocache", is_flag=True,
              help="Rebuild every layer above the base instead of reusing cached ones.")
@click.option("-q", "--quiet", is_flag=True, help="Do not show build steps.")
def build(name: str, base: str | None, tag: str | None, registry: str | None, bake: bool,
          python_version: str, pip_args: tuple[str, ...], nocache: bool, quiet: bool) -> None:
    """Build the sample image NAME offline (wheels come from a cached wheelhouse)."""
    from ..images.build import build_image
    from ..images.engine import connect

    def progress(line: str) -> None:
        if line.startswith("Step ") or ": Pushed" in line:
            click.echo(f"  {line}", err=True)

    result = build_image(connect(), name, base=base, tag=tag, bake=bake, push=registry,
                         python_version=python_version, pip_args=pip_args, nocache=nocache,
                         progress=None if quiet else progress)
    click.echo(f"built {result.tag} ({result.mode} model, base {result.base}) in "
               f"{result.seconds:.1f} s: {megabytes(result.size_bytes)}, {result.layers} layers")
    if result.pushed:
        click.echo(f"pushed {result.pushed}")


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """Show the sample and base images on this machine: size and layers."""
    from ..images.build import list_images
    from ..images.engine import connect

    found = list_images(connect())
    if as_json:
        json.dump([i.__dict__ for i in found], sys.stdout, indent=1)
        click.echo()
        return
    if not found:
        click.echo("no sample images; build one with `fcbench images build mobilenet-v2`")
        return
    rows = [("TAG", "MODEL", "MODE", "SIZE", "LAYERS", "CREATED")]
    for i in found:
        for tag in i.tags or ("<none>",):
            rows.append((tag, i.model, i.mode, megabytes(i.size_bytes), str(i.layers), i.created))
    print_columns(rows[0], rows[1:], align="left", strip=True)


@images.command("base")
@click.option("--tag", default=None, help="Tag of the base image (default fcbench/base:bookworm).")
@click.option("--suite", default="bookworm", show_default=True, help="Debian release.")
@click.option("--mirror", default=None, help="Debian mirror URL (default deb.debian.org, or "
                                             "$FCBENCH_DEBIAN_MIRROR).")
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
def base(tag: str | None, suite: str, mirror: str | None, force: bool) -> None:
    """Build the offline base image: debootstrap a minimal Debian with python3, docker import.

    Needs root and a reachable Debian mirror, no container registry. Skipped when it exists.
    """
    from ..images.base import DEFAULT_BASE, build_base_image
    from ..images.engine import connect

    result = build_base_image(connect(), tag=tag or DEFAULT_BASE, suite=suite, mirror=mirror,
                              force=force)
    verb = "built" if result.built else "already present:"
    click.echo(f"{verb} {result.tag} ({megabytes(result.size_bytes)})"
               + (f" in {result.seconds:.1f} s" if result.built else ""))
