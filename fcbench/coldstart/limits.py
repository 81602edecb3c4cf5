"""What this machine can do at best: the floors a cold start's phases are held against.

Key names: `Limit` (a value with its unit, how it was measured, or why not), `model_files`,
`measure_limits` and one function per limit (`read_cold`, `read_warm`, `deserialise`,
`python_boot`, `python_import`, `registry_pull`, `disk_write`, `container_create_start`,
`host_to_device`, `warm_inference`). Each measures the same work a cold start does, with the
same bytes, and nothing else: the gap between a phase and its floor is what could be won.
Every key carries its unit (``_MBps``: 10^6 bytes per second, ``_ms``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["Limit", "LimitPlan", "container_create_start", "deserialise", "disk_write",
           "host_to_device", "loader_import", "measure_limits", "model_files", "python_boot", "python_import",
           "read_cold", "read_warm", "registry_pull", "warm_inference"]

_CHUNK = 4 << 20  # 4 MiB reads and writes, as dd bs=4M
_REPEATS = 3


@dataclass(frozen=True)
class Limit:
    """One measured limit: `value` in `unit` (None: not measured, `reason` says why), `how` it
    was measured and the `bytes` it moved (None where it moves none)."""

    key: str
    value: float | None
    unit: str
    how: str
    bytes: int | None = None
    reason: str = ""

    def doc(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "key"}


def _not_measured(key: str, unit: str, how: str, reason: str) -> Limit:
    return Limit(key, None, unit, how, reason=reason)


def _mbps(nbytes: int, seconds: float) -> float:
    return nbytes / 1e6 / seconds if seconds > 0 else float("inf")


# -- the model's own files ----------------------------------------------------------------------

def model_files(spec: Any) -> list[Path]:
    """The weight files the spec's instances load (all of a directory's weight files); [] for a
    model without a file (sleep, a foreign server).

    Raises:
        UsageError: the spec names a model path (``FCBENCH_MODEL_PATH``) that does not exist.
    """
    env = dict(spec.environment_variables)
    model = env.get("FCBENCH_MODEL", "mobilenet-v2")
    user = (env.get("FCBENCH_LLM_PATH") if model == "llm" else None) \
        or (env.get("FCBENCH_MODEL_PATH") or "").strip() or None
    if spec.harness.command is not None:
        return []
    if user is not None:
        path = Path(user).expanduser()
        if not path.exists():
            raise UsageError(f"function {spec.name!r} loads its model from {user}, which does "
                             "not exist; fix FCBENCH_MODEL_PATH in the spec, or remove it to "
                             "use the built-in sample model")
    elif model == "mobilenet-v2":
        from ..models import mobilenet_v2

        path = mobilenet_v2.host_path(env)  # padded to FCBENCH_MODEL_SIZE_MB if set
    elif model == "stable-diffusion":
        from ..models import sd_tiny

        path = sd_tiny.ensure(None, seed=int(env.get("FCBENCH_SEED") or 0),
                              weights=(env.get("FCBENCH_SD_WEIGHTS") or "safetensors").strip())
    elif model == "llm":
        from ..models import llm

        path = llm.host_path(env)
    else:
        return []
    if path.is_file():
        return [path]
    weights = sorted(p for p in path.rglob("*") if p.is_file()
                     and p.suffix in (".safetensors", ".onnx", ".bin", ".pt", ".ckpt"))
    return weights


def _read_all(files: Sequence[Path]) -> tuple[int, float]:
    """Read every file once, 4 MiB at a time; (bytes, seconds)."""
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            while n := os.readv(fd, [view]):
                total += n
        finally:
            os.close(fd)
    return total, time.perf_counter() - t0


def drop_cache(path: Path) -> None:
    """Ask the kernel to drop the page cache of one file (no root needed; pages mapped by a
    running process stay)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_cold(files: Sequence[Path], repeats: int = _REPEATS) -> Limit:
    """`disk_read_cold_MBps`: the files read with their page cache dropped just before (median
    of `repeats`)."""
    how = ("read every weight file in 4 MiB reads after posix_fadvise(DONTNEED) dropped its "
           f"page cache; median of {repeats}")
    if not files:
        return _not_measured("disk_read_cold_MBps", "MB/s", how, "the model has no file")
    rates, total = [], 0
    for _ in range(repeats):
        for path in files:
            drop_cache(path)
        total, seconds = _read_all(files)
        rates.append(_mbps(total, seconds))
    return Limit("disk_read_cold_MBps", statistics.median(rates), "MB/s", how, total)


def read_warm(files: Sequence[Path], repeats: int = _REPEATS) -> Limit:
    """`disk_read_warm_MBps`: the same files read again from the page cache."""
    how = f"read every weight file in 4 MiB reads from the page cache; median of {repeats}"
    if not files:
        return _not_measured("disk_read_warm_MBps", "MB/s", how, "the model has no file")
    _read_all(files)
    rates, total = [], 0
    for _ in range(repeats):
        total, seconds = _read_all(files)
        rates.append(_mbps(total, seconds))
    return Limit("disk_read_warm_MBps", statistics.median(rates), "MB/s", how, total)


#: The library a model's load imports itself (not at the model module's top): its import is
#: part of model_load, not runtime_boot.
_LOADER_IMPORTS = {".onnx": "onnxruntime"}


def loader_import(files: Sequence[Path], env: Mapping[str, str], model: str,
                  repeats: int = _REPEATS) -> Limit:
    """`loader_import_ms`: a fresh interpreter, the server and the model's module already
    imported, importing the library the model load imports itself (onnxruntime for ONNX),
    timed inside it."""
    key = "loader_import_ms"
    kinds = {p.suffix for p in files}
    lib = _LOADER_IMPORTS.get(next(iter(kinds))) if len(kinds) == 1 else None
    if lib is None:
        return _not_measured(key, "ms", "import of the loader", "the model's loader is "
                             "imported with the model's module (counted in runtime_boot)")
    code = (f"import importlib, time\nfor m in {_instance_imports(model)!r}: "
            "importlib.import_module(m)\n"
            f"t = time.perf_counter()\nimport {lib}\nprint((time.perf_counter() - t) * 1000.0)")
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], env=_interpreter_env(env),
                             check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return Limit(key, statistics.median(times), "ms",
                 f"import {lib} in a fresh interpreter after the server's and model's imports; median "
                 f"of {repeats}")


def deserialise(files: Sequence[Path], model: str, repeats: int = _REPEATS) -> Limit:
    """`deserialise_ms`: the format's own minimal load of the bytes, already in memory.

    ONNX: an onnxruntime InferenceSession from the bytes (CPU, one intra-op thread, as the
    sample's instance; onnxruntime imported before the clock starts). safetensors: every tensor
    of every file through ``safetensors.numpy.load`` (no torch, no pipeline objects).
    """
    key = "deserialise_ms"
    if not files:
        return _not_measured(key, "ms", "format's own load", "the model has no file")
    blobs = [p.read_bytes() for p in files]
    nbytes = sum(map(len, blobs))
    if all(p.suffix == ".onnx" for p in files):
        import onnxruntime as ort

        def load() -> None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            for blob in blobs:
                ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        how = ("onnxruntime.InferenceSession from the file's bytes in memory (CPU provider, one "
               f"thread; import not counted); median of {repeats}")
    elif all(p.suffix == ".safetensors" for p in files):
        from safetensors.numpy import load as st_load

        def load() -> None:
            for blob in blobs:
                st_load(blob)
        how = (f"safetensors.numpy.load of every tensor of the {len(files)} weight file(s), "
               f"bytes in memory; median of {repeats}")
    else:
        kinds = ", ".join(sorted({p.suffix or p.name for p in files}))
        return _not_measured(key, "ms", "format's own load",
                             f"no minimal loader for {kinds} files (ONNX and safetensors only)")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load()
        times.append((time.perf_counter() - t0) * 1000.0)
    return Limit(key, statistics.median(times), "ms", how, nbytes)


# -- the interpreter ----------------------------------------------------------------------------

def _interpreter_env(env: Mapping[str, str]) -> dict[str, str]:
    from ..harness.runtimes.process import interpreter_environment

    return {**interpreter_environment(), **env}


def python_boot(env: Mapping[str, str], repeats: int = 5) -> Limit:
    """`python_boot_ms`: a bare ``python -c`` with the process runtime's interpreter and
    environment, from its spawn returning to its first line of code (what `process_start`
    spans for the instance; median of `repeats`)."""
    full = _interpreter_env(env)
    times = []
    for _ in range(repeats):
        proc = subprocess.Popen([sys.executable, "-c", "import time; print(time.time_ns())"],
                                env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                text=True)
        spawned = time.time_ns()
        first_line = int(proc.communicate()[0].strip())
        times.append((first_line - spawned) / 1e6)
    return Limit("python_boot_ms", statistics.median(times), "ms",
                 f"{Path(sys.executable).name} -c (a bare interpreter, the process runtime's "
                 f"environment): spawn returned -> its first line; median of {repeats}")


#: What the in-instance server imports before it reports its imports done (runtime_boot).
_SERVER_IMPORTS = ("fcbench.server.app",)


def _instance_imports(model: str) -> list[str]:
    from ..models import MODELS

    return [*_SERVER_IMPORTS, *([MODELS[model]] if model in MODELS else [])]


def python_import(env: Mapping[str, str], model: str, repeats: int = _REPEATS) -> Limit:
    """`python_import_ms`: a fresh interpreter importing what the instance imports before its
    model load (the server and the model's module), timed inside it (median of `repeats`)."""
    modules = _instance_imports(model)
    code = ("import time, importlib; t = time.perf_counter()\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print((time.perf_counter() - t) * 1000.0)")
    full = _interpreter_env(env)
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], env=full, check=True,
                             capture_output=True, text=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return Limit("python_import_ms", statistics.median(times), "ms",
                 f"a fresh interpreter importing {', '.join(modules)} (what the server imports "
                 f"before the model load), timed inside it; median of {repeats}")


# -- docker -------------------------------------------------------------------------------------

_MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json"))


def _split_ref(image: str) -> tuple[str, str, str] | None:
    """(registry, repository, tag) of a reference that names a registry, else None."""
    first, _, rest = image.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        return None
    repo, _, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
    return first, repo, tag or "latest"


def _get(url: str, accept: str | None = None, timeout: float = 60.0) -> Any:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (the spec's own registry)


def registry_layers(image: str) -> tuple[str, list[dict[str, Any]]]:
    """The registry base URL and the layer descriptors (digest, size) of `image`'s
    linux/amd64 manifest, read over plain HTTP."""
    parts = _split_ref(image)
    if parts is None:
        raise UsageError(f"image {image} names no registry")
    registry, repo, tag = parts
    base = f"http://{registry}/v2/{repo}"
    with _get(f"{base}/manifests/{tag}", _MANIFEST_TYPES) as resp:
        doc = json.loads(resp.read())
    if "manifests" in doc:  # an index: the linux/amd64 entry
        pick = next((m for m in doc["manifests"]
                     if (m.get("platform") or {}).get("architecture") in ("amd64", None)),
                    doc["manifests"][0])
        with _get(f"{base}/manifests/{pick['digest']}", _MANIFEST_TYPES) as resp:
            doc = json.loads(resp.read())
    return base, list(doc.get("layers") or [])


def registry_pull(image: str | None) -> Limit:
    """`registry_pull_MBps`: plain HTTP GETs of the image's own layer blobs from its registry
    (manifest -> layers), no Docker, bytes thrown away."""
    key, how = "registry_pull_MBps", ("HTTP GET of every layer blob of the image's manifest "
                                      "from its registry, read to memory and dropped")
    if not image or _split_ref(image) is None:
        return _not_measured(key, "MB/s", how, f"image {image or '(none)'} names no registry "
                             "(e.g. 127.0.0.1:5000/...): nothing to pull from")
    try:
        base, layers = registry_layers(image)
        total = 0
        t0 = time.perf_counter()
        for layer in layers:
            with _get(f"{base}/blobs/{layer['digest']}") as resp:
                while chunk := resp.read(1 << 20):
                    total += len(chunk)
        seconds = time.perf_counter() - t0
    except OSError as exc:
        return _not_measured(key, "MB/s", how, f"the registry of {image} did not answer: {exc}")
    return Limit(key, _mbps(total, seconds), "MB/s", how + f" ({len(layers)} layers)", total)


def docker_root() -> Path:
    """Docker's data root (``docker info``'s DockerRootDir), where layers are extracted."""
    from ..images.engine import connect

    return Path(connect().info().get("DockerRootDir") or "/var/lib/docker")


def disk_write(nbytes: int, root: Path) -> Limit:
    """`disk_write_MBps`: `nbytes` written to a file under `root` in 4 MiB writes, then fsync
    (the layer-extract floor: the same bytes onto the same disk, no gunzip, no tar)."""
    key = "disk_write_MBps"
    how = f"{nbytes / 1e6:.0f} MB written under {root} in 4 MiB writes, fsync before the clock stops"
    if nbytes <= 0:
        return _not_measured(key, "MB/s", how, "no bytes to write")
    block = os.urandom(_CHUNK)
    try:
        fd, name = tempfile.mkstemp(prefix=".fcbench-write-", dir=root)
    except OSError as exc:
        return _not_measured(key, "MB/s", how, f"cannot write under {root}: {exc.strerror}")
    try:
        t0 = time.perf_counter()
        left = nbytes
        while left > 0:
            left -= os.write(fd, block[:min(left, _CHUNK)])
        os.fsync(fd)
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(name)
    return Limit(key, _mbps(nbytes, seconds), "MB/s", how, nbytes)


def container_create_start(image: str, repeats: int = _REPEATS) -> tuple[Limit, Limit]:
    """`container_create_ms`, `container_start_ms`: a minimal container of `image` running
    ``true`` (no network), created and started with the same engine (median of `repeats`)."""
    from ..images.engine import connect

    how = (f"docker create / start of {image} running `true`, host network as the docker "
           f"runtime's instances; median of {repeats}")
    try:
        client = connect()
        client.images.get(image)
    except Exception as exc:  # noqa: BLE001 (no daemon, no image: said, not raised)
        reason = f"cannot use {image}: {str(exc).splitlines()[0][:160]}"
        return (_not_measured("container_create_ms", "ms", how, reason),
                _not_measured("container_start_ms", "ms", how, reason))
    creates, starts = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        # host networking, as the docker runtime's instances: no network namespace to make
        c = client.containers.create(image, ["true"], network_mode="host",
                                     labels={"fcbench.limits": "1"})
        t1 = time.perf_counter()
        try:
            c.start()
            t2 = time.perf_counter()
            c.wait(timeout=60)
        finally:
            c.remove(force=True)
        creates.append((t1 - t0) * 1000.0)
        starts.append((t2 - t1) * 1000.0)
    return (Limit("container_create_ms", statistics.median(creates), "ms", how),
            Limit("container_start_ms", statistics.median(starts), "ms", how))


def image_size(image: str) -> int | None:
    """The image's uncompressed size on this engine, None when it is not there."""
    from ..images.engine import connect

    try:
        return int(connect().images.get(image).attrs.get("Size") or 0) or None
    except Exception:  # noqa: BLE001
        return None


# -- the GPU ------------------------------------------------------------------------------------

def _cuda_reason() -> str | None:
    """Why CUDA cannot be used here, None when it can (torch imported only when a device is)."""
    if not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0")):
        return "no CUDA device on this machine (no /dev/nvidia*)"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch finds no CUDA device (torch.cuda.is_available() is False)"
    return None


def host_to_device(nbytes: int, repeats: int = _REPEATS) -> tuple[Limit, Limit]:
    """`h2d_pinned_MBps`, `h2d_pageable_MBps`: torch copies of `nbytes` (at least 64 MiB) from
    pinned and from pageable host memory to the GPU, synchronised (median of `repeats`)."""
    size = max(int(nbytes), 64 << 20)
    how = f"torch copy of {size / 1e6:.0f} MB host -> cuda:0, synchronised; median of {repeats}"
    reason = _cuda_reason()
    if reason is not None:
        return (_not_measured("h2d_pinned_MBps", "MB/s", how, reason),
                _not_measured("h2d_pageable_MBps", "MB/s", how, reason))
    import torch

    out = []
    for key, pinned in (("h2d_pinned_MBps", True), ("h2d_pageable_MBps", False)):
        host = torch.empty(size, dtype=torch.uint8, pin_memory=pinned)
        dev = torch.empty(size, dtype=torch.uint8, device="cuda")
        dev.copy_(host, non_blocking=pinned)  # first copy: context and allocator warm-up
        torch.cuda.synchronize()
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            dev.copy_(host, non_blocking=pinned)
            torch.cuda.synchronize()
            rates.append(_mbps(size, time.perf_counter() - t0))
        out.append(Limit(key, statistics.median(rates), "MB/s", how, size))
        del host, dev
    return out[0], out[1]


# -- the request --------------------------------------------------------------------------------

def warm_inference(inference_ms: Sequence[float | None]) -> Limit:
    """`warm_inference_ms`: the instance's own inference time of the same request repeated on
    a warm instance (median)."""
    values = [v for v in inference_ms if v is not None]
    how = f"the same request repeated {len(inference_ms)} times on a warm instance (median " \
          "of x-fcbench-inference-ms)"
    if not values:
        return _not_measured("warm_inference_ms", "ms", how,
                             "the instance reported no inference time")
    return Limit("warm_inference_ms", statistics.median(values), "ms", how)


# -- all of them --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LimitPlan:
    """What to measure for one profiled spec."""

    spec: Any
    runtime: str
    pull: bool
    inference_ms: tuple[float | None, ...] = ()
    gpu: bool = False
    base_image: str = "fcbench/base:bookworm"


def measure_limits(plan: LimitPlan) -> dict[str, Limit]:
    """Every limit that applies to the plan's spec and runtime, by key. Byte counts used by the
    roofline are limits too (``model_bytes``, ``image_bytes``, ``image_layer_bytes``)."""
    spec = plan.spec
    env = dict(spec.environment_variables)
    model = env.get("FCBENCH_MODEL", "mobilenet-v2")
    files = model_files(spec)
    nbytes = sum(p.stat().st_size for p in files)
    out: list[Limit] = [Limit("model_bytes", float(nbytes), "bytes",
                              f"{len(files)} weight file(s): "
                              + ", ".join(str(p) for p in files[:4])
                              + (" ..." if len(files) > 4 else ""), nbytes)]
    out += [read_cold(files), read_warm(files), deserialise(files, model),
            loader_import(files, env, model)]
    if plan.runtime == "process":
        out.append(python_boot(env))
        out.append(python_import(env, model))
    if plan.runtime == "docker":
        image = spec.custom_container_config.image
        if plan.pull:
            pull = registry_pull(image)
            out.append(pull)
            size = image_size(image) or 0
            layers = registry_layers(image)[1] if pull.value is not None else []
            out.append(Limit("image_bytes", float(size), "bytes",
                             f"{image} uncompressed on this engine (docker image inspect)", size))
            out.append(Limit("image_layer_bytes", float(sum(int(x["size"]) for x in layers)),
                             "bytes", "compressed bytes of every layer in the manifest",
                             sum(int(x["size"]) for x in layers)))
            out.append(disk_write(size, docker_root()))
        out.extend(container_create_start(plan.base_image))
    if plan.gpu:
        out.extend(host_to_device(nbytes))
    else:
        how = "torch copy host -> cuda:0"
        out += [_not_measured(k, "MB/s", how, "the function asks for no GPU")
                for k in ("h2d_pinned_MBps", "h2d_pageable_MBps")]
    out.append(warm_inference(plan.inference_ms))
    return {lim.key: lim for lim in out}
