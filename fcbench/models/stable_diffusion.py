"""Stable Diffusion sample model: a diffusers `StableDiffusionPipeline` served text -> PNG.

Key names: `StableDiffusion` (the `Model`), `Txt2Img`, `RequestDefaults`, `load` / `prepare` / `ensure`.
torch and diffusers are imported at the top, so the server counts them as runtime boot, not model load.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image, PngImagePlugin

from fcbench.models import sd_tiny
from fcbench.models.base import BadInput, int_option

__all__ = ["DEFAULT_PROMPT", "RequestDefaults", "StableDiffusion", "Txt2Img", "ensure", "load", "prepare"]

#: Prompt used when a request sends none (an empty body is a valid request).
DEFAULT_PROMPT = "a photograph of an astronaut riding a horse"
_MAX_STEPS = 100
_MAX_GUIDANCE = 50.0
_MAX_PROMPT_CHARS = 2000
_KEYS = ("prompt", "negative_prompt", "steps", "height", "width", "seed", "guidance_scale")
_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}


def ensure(path: str | os.PathLike[str] | None = None, seed: int = 0,
           weights: str = "safetensors") -> pathlib.Path:
    """The pipeline directory to serve: the user's `path`, or the tiny seeded one (built if missing)
    with its weights saved as `weights` (safetensors or torch)."""
    return sd_tiny.ensure(path, seed=seed, weights=weights)


@dataclass(frozen=True)
class Txt2Img:
    """One text-to-image request, checked. `seed` is always set (drawn at random when not given)."""

    prompt: str
    negative_prompt: str
    steps: int
    height: int
    width: int
    seed: int
    guidance_scale: float


@dataclass(frozen=True)
class RequestDefaults:
    """What a request gets for the keys it leaves out; None sizes mean the model's native size."""

    prompt: str = DEFAULT_PROMPT
    steps: int = 20
    height: int | None = None
    width: int | None = None
    guidance_scale: float = 7.5
    seed: int | None = None  # None: a random seed per request
    max_size: int | None = None  # None: 1024 or the native size, whichever is larger

    def resolve(self, native: int) -> RequestDefaults:
        """Fill in the sizes for a model whose native size is `native`; ValueError if they clash."""
        max_size = self.max_size or max(1024, native)
        height, width = self.height or native, self.width or native
        if max(height, width) > max_size:
            raise ValueError(f"the default size {height}x{width} exceeds FCBENCH_SD_MAX_SIZE {max_size}; "
                             "lower FCBENCH_SD_HEIGHT/FCBENCH_SD_WIDTH or raise FCBENCH_SD_MAX_SIZE")
        return dataclasses.replace(self, height=height, width=width, max_size=max_size)


class StableDiffusion:
    """Serves a diffusers pipeline directory: a JSON request (or plain-text prompt) in, a PNG out.

    Request JSON (every key optional): ``{"prompt": str, "negative_prompt": str, "steps": 1..100,
    "height": int, "width": int, "seed": int, "guidance_scale": 0..50}``; height and width are
    multiples of 8 up to the configured maximum. A batch of requests with the same steps, size and
    guidance runs as one pipeline call (per-request generators keep each image's seed).
    """

    name = "stable-diffusion"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu",
                 dtype: torch.dtype | None = None, defaults: RequestDefaults | None = None,
                 gpu_mem_limit_mb: int | None = None, safety_checker: bool = True,
                 direct: bool = False) -> None:
        self.path = pathlib.Path(path)
        self.device = device
        self.dtype = dtype or (torch.float16 if device.startswith("cuda") else torch.float32)
        #: Share of the GPU's memory this process may allocate (None: no limit, or on CPU).
        self.memory_fraction: float | None = None
        if device.startswith("cuda") and gpu_mem_limit_mb:
            self.memory_fraction = _limit_gpu_memory(device, gpu_mem_limit_mb)
        kwargs: dict[str, Any] = {"dtype": self.dtype, "local_files_only": True}
        if direct:  # each tensor straight onto the device, not through a host copy first
            kwargs["device_map"] = device
        if not safety_checker:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        with sd_tiny.quiet_progress():
            try:
                pipe = StableDiffusionPipeline.from_pretrained(str(self.path), **kwargs)
                if not direct:
                    pipe = pipe.to(device)
            except torch.cuda.OutOfMemoryError as exc:
                raise MemoryError(
                    f"the pipeline in {self.path} does not fit in {gpu_mem_limit_mb} MB of GPU memory "
                    "(FCBENCH_GPU_MEM_LIMIT_MB, from gpuConfig.gpuMemorySize); raise gpuMemorySize "
                    "or use a smaller model") from exc
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        #: Size the pipeline was trained at (unet sample size x VAE scale factor), e.g. 512 for SD 1.5.
        self.native_size: int = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        self.defaults = (defaults or RequestDefaults()).resolve(self.native_size)

    # -- decode

    def decode(self, body: bytes, content_type: str) -> Txt2Img:
        """Check one request; raise `BadInput` with a sentence saying what to send instead."""
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        stripped = body.lstrip()
        if not stripped:
            return self._request({})
        if ctype == "text/plain" or (not ctype.endswith("json") and stripped[:1] not in (b"{", b"[")):
            try:
                return self._request({"prompt": body.decode("utf-8").strip()})
            except UnicodeDecodeError:
                raise BadInput("a plain-text prompt must be UTF-8; send JSON like "
                               '{"prompt": "a red fox", "steps": 20}') from None
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadInput(f'the body is not valid JSON ({exc}); send {{"prompt": "a red fox", '
                           '"steps": 20, "height": 512, "width": 512, "seed": 0}') from None
        if not isinstance(doc, dict):
            raise BadInput(f"expected a JSON object with keys among {', '.join(_KEYS)}; "
                           f"got a JSON {type(doc).__name__}")
        return self._request(doc)

    def _request(self, doc: dict[str, Any]) -> Txt2Img:
        unknown = sorted(set(doc) - set(_KEYS))
        if unknown:
            raise BadInput(f"unknown key(s) {', '.join(map(repr, unknown))}; use: {', '.join(_KEYS)}")
        d = self.defaults
        assert d.height is not None and d.width is not None and d.max_size is not None
        prompt = _text(doc, "prompt", d.prompt)
        negative = _text(doc, "negative_prompt", "")
        steps = _int(doc, "steps", d.steps, 1, _MAX_STEPS)
        height = _size(doc, "height", d.height, d.max_size)
        width = _size(doc, "width", d.width, d.max_size)
        seed = _int(doc, "seed", d.seed, 0, 2**63 - 1)
        guidance = doc.get("guidance_scale", d.guidance_scale)
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
                or not 0.0 <= float(guidance) <= _MAX_GUIDANCE:
            raise BadInput(f"guidance_scale must be a number from 0 to {_MAX_GUIDANCE:g} "
                           f"(1 turns classifier-free guidance off); got {guidance!r}")
        if seed is None:
            seed = secrets.randbelow(2**63)
        return Txt2Img(prompt=prompt, negative_prompt=negative, steps=steps, height=height,
                       width=width, seed=seed, guidance_scale=float(guidance))

    # -- infer / encode

    def infer(self, inputs: list[Txt2Img]) -> list[bytes]:
        """Make one PNG per request, in order; requests that share steps/size/guidance run together."""
        groups: dict[tuple[int, int, int, float], list[int]] = {}
        for i, r in enumerate(inputs):
            groups.setdefault((r.steps, r.height, r.width, r.guidance_scale), []).append(i)
        out: list[bytes] = [b""] * len(inputs)
        for (steps, height, width, guidance), idx in groups.items():
            reqs = [inputs[i] for i in idx]
            with torch.inference_mode():
                result = self.pipe(
                    prompt=[r.prompt for r in reqs],
                    negative_prompt=[r.negative_prompt for r in reqs] if guidance > 1.0 else None,
                    num_inference_steps=steps, height=height, width=width,
                    guidance_scale=guidance, output_type="np",
                    # CPU generators give the same noise for a seed on any device.
                    generator=[torch.Generator("cpu").manual_seed(r.seed) for r in reqs])
            images = np.asarray(result.images)
            for i, r, img in zip(idx, reqs, images):
                out[i] = _png(img, r)
        return out

    def encode(self, output: Any) -> tuple[bytes, str]:
        """`infer` already made the PNG (off the event loop)."""
        return output, "image/png"


# --------------------------------------------------------------------------------------------- helpers


def _png(img: np.ndarray, r: Txt2Img) -> bytes:
    pixels = (np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", json.dumps(
        {"prompt": r.prompt, "negative_prompt": r.negative_prompt, "steps": r.steps,
         "seed": r.seed, "guidance_scale": r.guidance_scale}, separators=(",", ":")))
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _text(doc: Mapping[str, Any], key: str, default: str) -> str:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadInput(f"{key} must be a string; got {type(value).__name__}")
    if len(value) > _MAX_PROMPT_CHARS:
        raise BadInput(f"{key} is {len(value)} characters long; keep it under {_MAX_PROMPT_CHARS}")
    return value


def _int(doc: Mapping[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = doc.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise BadInput(f"{key} must be an integer from {low} to {high}; got {value!r}")
    if not low <= value <= high:
        raise BadInput(f"{key} must be from {low} to {high}; got {value}")
    return value


def _size(doc: Mapping[str, Any], key: str, default: int, max_size: int) -> int:
    value = _int(doc, key, default, 8, max_size)
    assert value is not None
    if value % 8:
        lower = max(8, value - value % 8)
        raise BadInput(f"{key} must be a multiple of 8 (the latent grid is 1/8 of the image); "
                       f"got {value}, try {lower} or {lower + 8}")
    return value


def _limit_gpu_memory(device: str, limit_mb: int) -> float:
    """Cap this process's CUDA allocations at `limit_mb` (the FC memory spec); returns the fraction."""
    index = torch.device(device).index or 0
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = min(1.0, limit_mb * 1024 * 1024 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    return fraction




def _opt_size(options: Mapping[str, str], key: str) -> int | None:
    value = int_option(options, key, None, 8)
    if value is not None and value % 8:
        raise ValueError(f"{key} must be a multiple of 8; got {value}")
    return value


def _opt_float(options: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = (options.get(key) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number; got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{key} must be from {low:g} to {high:g}; got {value:g}")
    return value


def _choice(options: Mapping[str, str], key: str, choices: tuple[str, ...]) -> str:
    """`options[key]`, one of `choices` (the first when unset)."""
    value = (options.get(key) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _pick_device(options: Mapping[str, str]) -> str:
    want = (options.get("FCBENCH_SD_DEVICE") or "auto").strip().lower()
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"FCBENCH_SD_DEVICE={want} but torch sees no CUDA GPU; use auto or cpu, "
                             "or install a CUDA build of torch")
        return want
    if want == "cpu":
        return want
    raise ValueError(f"FCBENCH_SD_DEVICE must be auto, cpu or cuda; got {want!r}")


# --------------------------------------------------------------------------------------------- server hooks


def prepare(options: Mapping[str, str]) -> None:
    """Build the tiny pipeline ahead of time (no-op when `FCBENCH_MODEL_PATH` names the user's directory)."""
    if not (options.get("FCBENCH_MODEL_PATH") or "").strip():
        ensure(None, seed=int_option(options, "FCBENCH_SEED", 0, 0) or 0,
               weights=_choice(options, "FCBENCH_SD_WEIGHTS", sd_tiny.WEIGHT_FORMATS))


def load(options: Mapping[str, str]) -> StableDiffusion:
    """Load the pipeline as the server does, from env-style options.

    `FCBENCH_MODEL_PATH` (a diffusers directory; else the tiny pipeline for `FCBENCH_SEED`, built if
    missing), `FCBENCH_SD_DEVICE` (auto|cpu|cuda), `FCBENCH_SD_DTYPE` (float16 on CUDA, float32 on CPU),
    `FCBENCH_GPU_MEM_LIMIT_MB` (CUDA only: torch's per-process memory fraction), `FCBENCH_TORCH_THREADS`
    (1), `FCBENCH_SD_WEIGHTS` (the loading path of the built pipeline: safetensors, or torch for
    unet/VAE pickles read by `torch.load`), `FCBENCH_SD_LOAD` (host: load, then move to the device;
    direct: diffusers' ``device_map``, each tensor straight to the device), `FCBENCH_SD_SAFETY_CHECKER` (1: load the directory's checker if it has one; 0: skip it), and
    request defaults `FCBENCH_SD_PROMPT`, `FCBENCH_SD_STEPS` (20), `FCBENCH_SD_HEIGHT` /
    `FCBENCH_SD_WIDTH` (the model's native size), `FCBENCH_SD_GUIDANCE` (7.5), `FCBENCH_SD_SEED`
    (random per request), `FCBENCH_SD_MAX_SIZE` (largest height/width, 1024 or the native size).
    """
    # Read every option before the (slow) load, so a typo fails at once.
    user_path = (options.get("FCBENCH_MODEL_PATH") or "").strip() or None
    seed = int_option(options, "FCBENCH_SEED", 0, 0) or 0
    threads = int_option(options, "FCBENCH_TORCH_THREADS", 1, 1) or 1
    device = _pick_device(options)
    dtype_name = (options.get("FCBENCH_SD_DTYPE") or "").strip().lower()
    if dtype_name and dtype_name not in _DTYPES:
        raise ValueError(f"FCBENCH_SD_DTYPE must be one of {', '.join(_DTYPES)}; got {dtype_name!r}")
    safety = (options.get("FCBENCH_SD_SAFETY_CHECKER") or "1").strip().lower() \
        not in ("0", "false", "no", "off")
    mem_mb = int_option(options, "FCBENCH_GPU_MEM_LIMIT_MB", None, 1)
    weights = _choice(options, "FCBENCH_SD_WEIGHTS", sd_tiny.WEIGHT_FORMATS)
    if user_path and weights != "safetensors":
        raise ValueError("FCBENCH_SD_WEIGHTS chooses how the built tiny pipeline is saved; a "
                         "directory of your own (FCBENCH_MODEL_PATH) loads the files it holds: "
                         "unset FCBENCH_SD_WEIGHTS")
    direct = _choice(options, "FCBENCH_SD_LOAD", ("host", "direct")) == "direct"
    defaults = RequestDefaults(
        prompt=options.get("FCBENCH_SD_PROMPT") or DEFAULT_PROMPT,
        steps=int_option(options, "FCBENCH_SD_STEPS", 20, 1, _MAX_STEPS) or 20,
        height=_opt_size(options, "FCBENCH_SD_HEIGHT"),
        width=_opt_size(options, "FCBENCH_SD_WIDTH"),
        guidance_scale=_opt_float(options, "FCBENCH_SD_GUIDANCE", 7.5, 0.0, _MAX_GUIDANCE),
        seed=int_option(options, "FCBENCH_SD_SEED", None, 0),
        max_size=_opt_size(options, "FCBENCH_SD_MAX_SIZE"))

    path = ensure(user_path, seed=seed, weights=weights)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass
    return StableDiffusion(path, device=device, dtype=_DTYPES.get(dtype_name), defaults=defaults,
                           gpu_mem_limit_mb=mem_mb, safety_checker=safety, direct=direct)
