"""Building, pushing and listing the sample images (`fcbench images build|list`).

Key names: `RECIPES`, `Recipe`, `build_image`, `push_image`, `list_images`, `host_model_path`.
A build prepares a context (the one template ``images/Dockerfile``, built with ``SAMPLE=<name>``, a wheelhouse, the fcbench package,
the model or nothing when it is mounted) and runs ``docker build`` through the SDK; no network is
needed past the wheelhouse, which is cached.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RuntimeBackendError, UsageError
from .base import DEFAULT_BASE, build_base_image
from .engine import translated
from .wheelhouse import cache_root, pinned, wheelhouse

if TYPE_CHECKING:
    import docker

__all__ = ["PLATFORM", "RECIPES", "BuildResult", "ImageInfo", "Recipe", "build_image",
           "default_tag", "dockerfile_dir", "host_model_path", "list_images", "push_image"]

#: Every sample image is built for this platform (FC runs linux/amd64).
PLATFORM = "linux/amd64"
_EPOCH = 1_577_836_800  # 2020-01-01: the mtime of every file copied into a build context


@dataclass(frozen=True)
class Recipe:
    """What goes into one sample image."""

    name: str  # the model name (FCBENCH_MODEL; the template's SAMPLE build argument)
    requirements: tuple[str, ...]  # bare names are pinned to the host's installed version
    model_path: str  # where the model file or directory lives inside the image
    pip_args: tuple[str, ...] = ()


RECIPES: dict[str, Recipe] = {
    "mobilenet-v2": Recipe("mobilenet-v2", ("numpy", "onnxruntime", "aiohttp", "pillow"),
                           "/models/mobilenet_v2.onnx"),
    # the numpy Llama: no onnxruntime, no torch
    "llm": Recipe("llm", ("numpy", "safetensors", "threadpoolctl", "aiohttp"), "/models/llm"),
    "stable-diffusion": Recipe(
        "stable-diffusion",
        # torch first from this disk's CPU build; an unpinned torch pulls a multi-GB CUDA build
        ("torch==2.13.0+cpu", "diffusers", "transformers", "accelerate", "safetensors",
         "tokenizers", "numpy", "aiohttp", "pillow"),
        "/models/stable-diffusion"),
}


@dataclass(frozen=True)
class BuildResult:
    """One built image."""

    tag: str
    image_id: str
    size_bytes: int
    layers: int
    seconds: float
    mode: str  # baked | mount
    base: str
    pushed: str | None = None  # registry reference, when pushed
    log_path: Path | None = None


@dataclass(frozen=True)
class ImageInfo:
    """A sample (or base) image as `fcbench images list` shows it."""

    tags: tuple[str, ...]
    image_id: str
    size_bytes: int
    layers: int
    model: str
    mode: str
    created: str


def recipe(name: str) -> Recipe:
    """The recipe of sample image `name`; `UsageError` names the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"no sample image {name!r}; choose one of: "
                         f"{', '.join(sorted(RECIPES))}") from None


def default_tag(name: str, bake: bool = True) -> str:
    """``fcbench/<name>:latest`` for a baked model, ``fcbench/<name>:mount`` for a mounted one."""
    return f"fcbench/{name}:{'latest' if bake else 'mount'}"


def dockerfile_dir() -> Path:
    """The folder holding the one sample-image template ``Dockerfile``: ``images/`` of the
    source tree (or ``$FCBENCH_IMAGES_DIR``)."""
    root = os.environ.get("FCBENCH_IMAGES_DIR")
    folder = Path(root) if root else Path(__file__).resolve().parents[2] / "images"
    if not (folder / "Dockerfile").is_file():
        raise UsageError(f"no Dockerfile at {folder}; run from an fcbench source checkout or "
                         "set FCBENCH_IMAGES_DIR to the folder holding the sample Dockerfile")
    return folder


def host_model_path(name: str, options: Mapping[str, str] | None = None) -> Path:
    """The model file or directory on this host for sample `name` (built once if missing).

    ``FCBENCH_MODEL_HOST_PATH`` in `options` names a user's model instead.
    """
    options = options or {}
    user = (options.get("FCBENCH_MODEL_HOST_PATH") or "").strip()
    if user:
        path = Path(user)
        if not path.exists():
            raise UsageError(f"FCBENCH_MODEL_HOST_PATH {user!r} does not exist; point it at the "
                             "model file or directory to mount")
        return path
    from ..models import model_module

    try:
        module = model_module(name)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"cannot build the {name} model on this host ({exc}); install its "
                         "dependencies, or build with --mount and set FCBENCH_MODEL_HOST_PATH "
                         "in the spec") from exc
    from_options = getattr(module, "host_path", None)
    if from_options is not None:  # the model reads its own options (size, seed)
        return Path(from_options(options))
    seed = int(options.get("FCBENCH_SEED") or 0)
    ensure = getattr(module, "ensure", None)
    if ensure is None:
        raise UsageError(f"model {name!r} has no ensure(path, seed) to build its files; set "
                         "FCBENCH_MODEL_HOST_PATH to the model to mount")
    return Path(ensure(None, seed=seed))


def _copy_tree_or_file(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dest)


def _link_or_copy(src: str | Path, dest: str | Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def prepare_context(r: Recipe, dest: Path, *, bake: bool, python_version: str = "3.11",
                    pip_args: tuple[str, ...] = ()) -> Path:
    """Fill `dest` with Dockerfile, wheels/, app/fcbench/ and model/ for recipe `r`."""
    import fcbench

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dockerfile_dir() / "Dockerfile", dest / "Dockerfile")
    model = host_model_path(r.name) if bake else None  # fail before any download
    wheels = wheelhouse(pinned(r.requirements), python_version=python_version,
                        extra_args=(*r.pip_args, *pip_args))
    shutil.copytree(wheels, dest / "wheels", copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns(".*"))  # the cache marker differs per download
    package = Path(fcbench.__file__).resolve().parent
    shutil.copytree(package, dest / "app" / "fcbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    model_dir = dest / "model"
    model_dir.mkdir()
    if model is not None:
        _copy_tree_or_file(model, model_dir / Path(r.model_path).name)
    else:
        (model_dir / ".mounted").write_text("the harness bind-mounts the model here\n")
    _fix_mtimes(dest)
    return dest


def _fix_mtimes(root: Path) -> None:
    """Same content, same layer: the builder's cache keys include mtimes, so every path in the
    context gets one fixed mtime (hard-linked cache files too; nothing reads their mtime)."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, (_EPOCH, _EPOCH))


def build_image(client: docker.DockerClient, name: str, *, base: str | None = None,
                tag: str | None = None, bake: bool = True, push: str | None = None,
                python_version: str = "3.11", pip_args: tuple[str, ...] = (),
                nocache: bool = False,
                progress: Callable[[str], None] | None = None) -> BuildResult:
    """Build sample image `name` (blocking); push it to registry `push` when given.

    `nocache` rebuilds every layer above the base (fresh layers, e.g. to measure a full pull).

    Without `base` the offline base image is used, and built first if missing.

    Raises:
        UsageError: unknown sample, missing Dockerfile.
        RuntimeBackendError: the build failed (the message names the build log).
        DockerUnavailable: the daemon does not answer.
    """
    r = recipe(name)
    t0 = time.perf_counter()
    tag = tag or default_tag(name, bake)
    if base is None:
        base = DEFAULT_BASE
        build_base_image(client, tag=base)
    logs = cache_root() / "build-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}-{'baked' if bake else 'mount'}.log"
    with tempfile.TemporaryDirectory(prefix=f"fcbench-ctx-{name}-") as tmp:
        ctx = prepare_context(r, Path(tmp), bake=bake, python_version=python_version,
                              pip_args=pip_args)
        args = {"BASE": base, "SAMPLE": r.name, "MODEL_MODE": "baked" if bake else "mount",
                "MODEL_PATH": r.model_path}
        image_id = _run_build(client, ctx, tag, args, log_path, progress, nocache)
    with translated(f"inspect the image {tag}"):
        image = client.images.get(image_id)
    pushed = push_image(client, tag, push, progress=progress)[0] if push else None
    return BuildResult(tag=tag, image_id=image.id, size_bytes=int(image.attrs.get("Size", 0)),
                       layers=len(image.attrs.get("RootFS", {}).get("Layers", [])),
                       seconds=time.perf_counter() - t0, mode=args["MODEL_MODE"], base=base,
                       pushed=pushed, log_path=log_path)


def _run_build(client: docker.DockerClient, ctx: Path, tag: str, args: dict[str, str],
               log_path: Path, progress: Callable[[str], None] | None, nocache: bool) -> str:
    image_id = ""
    error = ""
    with open(log_path, "w") as log, translated(f"build {tag} (log: {log_path})"):
        stream = client.api.build(path=str(ctx), tag=tag, buildargs=args, platform=PLATFORM,
                                  rm=True, forcerm=True, pull=False, nocache=nocache,
                                  decode=True)
        for chunk in stream:
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                log.write(text if text.endswith("\n") else text + "\n")
                if progress is not None and text.strip():
                    progress(text.rstrip())
            if "error" in chunk:
                error = chunk["error"]
                log.write(f"ERROR: {error}\n")
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    if error or not image_id:
        hint = ""
        if "pull access denied" in error or "not found" in error.lower():
            hint = (f" The base image {args['BASE']} is not on this machine: build it with "
                    "`fcbench images base` or pull it first.")
        raise RuntimeBackendError(f"docker build of {tag} failed: {error.strip() or 'no image'}; "
                                  f"its log is {log_path}.{hint}")
    return image_id


def push_image(client: docker.DockerClient, tag: str, registry: str,
               progress: Callable[[str], None] | None = None) -> tuple[str, float]:
    """Tag `tag` into `registry` (e.g. ``127.0.0.1:5000``) and push it; returns (ref, seconds)."""
    from docker.utils import parse_repository_tag

    repo, version = parse_repository_tag(tag)
    first = repo.split("/")[0]
    if "." in first or ":" in first or first == "localhost":  # repo already names a registry
        repo = repo.split("/", 1)[1]
    target = f"{registry.rstrip('/')}/{repo}"
    version = version or "latest"
    t0 = time.perf_counter()
    with translated(f"push {tag} to {registry}"):
        client.images.get(tag).tag(target, version)
        for chunk in client.api.push(target, tag=version, stream=True, decode=True):
            if "error" in chunk:
                raise RuntimeBackendError(
                    f"pushing {target}:{version} failed: {chunk['error']}; is a registry "
                    f"running at {registry}? (`bash scripts/ci-services.sh` starts one on "
                    "127.0.0.1:5000)")
            if progress is not None and chunk.get("status") in ("Pushed", "Layer already exists"):
                progress(f"{chunk.get('id', '')}: {chunk['status']}")
    return f"{target}:{version}", time.perf_counter() - t0


def list_images(client: docker.DockerClient) -> list[ImageInfo]:
    """Sample images (label ``fcbench.sample``) and base images (label ``fcbench.base``)."""
    out: list[ImageInfo] = []
    with translated("list images"):
        found = {i.id: i for key in ("fcbench.sample", "fcbench.base")
                 for i in client.images.list(filters={"label": key})}
    for image in found.values():
        if not image.tags:  # build-stage leftovers (e.g. the wheel-installing stage)
            continue
        attrs: dict[str, Any] = image.attrs
        labels = attrs.get("Config", {}).get("Labels") or {}
        out.append(ImageInfo(
            tags=tuple(image.tags), image_id=image.short_id.split(":")[-1],
            size_bytes=int(attrs.get("Size", 0)),
            layers=len(attrs.get("RootFS", {}).get("Layers", [])),
            model=labels.get("fcbench.model", "(base)"),
            mode=labels.get("fcbench.model-mode", "-"),
            created=str(attrs.get("Created", ""))[:19]))
    return sorted(out, key=lambda i: (i.model, i.tags))


def image_summary(result: BuildResult) -> dict[str, Any]:
    """`result` as JSON-friendly values."""
    return json.loads(json.dumps(result.__dict__, default=str))


# ------------------------------------------------------------------------------------------------
# Padded images (`fcbench coldstart profile --image-size`)

__all__ += ["padded_image", "padded_tag"]


def padded_tag(base: str, extra_mb: float, seed: int = 0) -> str:
    """The reference of `base` with one `extra_mb` layer: the same repository, its own tag."""
    from docker.utils import parse_repository_tag

    repo, version = parse_repository_tag(base)
    return f"{repo}:{version or 'latest'}-pad{extra_mb:g}MB-seed{seed}"


def _registry_of(repo: str) -> str | None:
    first = repo.split("/")[0]
    return first if ("." in first or ":" in first or first == "localhost") and "/" in repo \
        else None


def padded_image(base: str, extra_mb: float, *, seed: int = 0,
                 client: docker.DockerClient | None = None) -> str:
    """`base` with one more layer of `extra_mb` MB (2^20 bytes) of seeded random bytes
    (``/fcbench-padding/padding.bin``, read by nothing: the pull carries it), built once per
    size and seed and, when `base` names a registry, pushed there so a pull fetches it.
    Returns its reference.

    Raises:
        UsageError: `base` is neither here nor pullable.
    """
    import numpy as np
    from docker.utils import parse_repository_tag

    from .engine import connect
    from .store import pull

    client = client or connect()
    ref = padded_tag(base, extra_mb, seed)
    repo, version = parse_repository_tag(ref)
    registry = _registry_of(repo)
    with translated(f"find {ref}"):
        try:
            client.images.get(ref)
            return ref
        except Exception:  # noqa: BLE001 - not here: pull it, else build it
            pass
    if registry is not None:
        try:
            pull(client, ref)
            return ref
        except Exception:  # noqa: BLE001 - not in the registry yet: build it below
            pass
    with translated(f"find {base}"):
        try:
            client.images.get(base)
        except Exception:  # noqa: BLE001
            if registry is None:
                raise UsageError(f"image {base} is not here; build it first (`fcbench images "
                                 "build mobilenet-v2`)") from None
            pull(client, base)
    with tempfile.TemporaryDirectory(prefix="fcbench-pad-") as ctx:
        data = Path(ctx) / "padding.bin"
        rng = np.random.default_rng([seed, int(extra_mb * 2**20)])
        left = int(extra_mb * 2**20)
        with open(data, "wb") as f:
            while left:
                chunk = min(left, 32 * 2**20)
                f.write(rng.integers(0, 256, chunk, dtype=np.uint8).tobytes())
                left -= chunk
        (Path(ctx) / "Dockerfile").write_text(
            f"FROM {base}\nCOPY padding.bin /fcbench-padding/padding.bin\n", encoding="utf-8")
        with translated(f"build {ref}"):
            client.images.build(path=ctx, tag=ref, rm=True, labels={
                "fcbench.padding-mb": f"{extra_mb:g}", "fcbench.padding-seed": str(seed)})
    if registry is not None:
        push_image(client, ref, registry)
    return ref
