"""The `llm` sample model: a Llama-style decoder (numpy, `llama_numpy`) with seeded weights and a
byte-level tokenizer, served with vLLM's OpenAI API by `fcbench.server.openai`.

Key names: `LLM` (the `Model`, and a `TextGenerator`; `LLM.generate_ids` yields token ids from a
worker thread), `Generation` (the token iterator), `SIZES`
(the built-in presets), `build` / `ensure` / `default_path`, `prepare` / `load`.

Options (environment): ``FCBENCH_LLM_SIZE`` (tiny, the default; small; base), ``FCBENCH_LLM_SEED``
(0), ``FCBENCH_LLM_PATH`` (a user's HF Llama directory: ``config.json`` + ``*.safetensors``;
``FCBENCH_MODEL_PATH``, which the sample images set, is read when it is unset),
``FCBENCH_LLM_MAX_CONTEXT`` (prompt + answer tokens; default the model's
``max_position_embeddings``), ``FCBENCH_LLM_SERVED_NAME`` (the OpenAI ``model`` id; default llm),
``FCBENCH_LLM_SIZE_MB`` (the built model's safetensors padded to this many MB, 2^20 bytes,
with one more shard holding a ``fcbench.padding`` tensor the loader reads and drops),
``FCBENCH_LLM_THREADS`` (BLAS threads, 1: instances share the host's cores, and OpenBLAS sized
to all of them runs three cold instances on 2 cores ~10x slower per token; alone 1 costs ~10 %).

Tokens: ids 0-255 are bytes, then ``<bos>`` (256), ``<eos>`` (257), ``<pad>`` (258). Generated
tokens are restricted by a logit mask to printable ASCII and newline (and ``<eos>``, unless
``ignore_eos``), so each streamed token is valid UTF-8 on its own. A user's checkpoint is read
with the same byte-level tokenizer (bos/eos ids from its config.json): its timings are real, its
text is not. Weights are random (N(0, 0.02²)): the text is noise; the compute is a Llama's.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import threadpoolctl
import safetensors.numpy  # noqa: F401  (imported here: counted as runtime boot, not model load)

from .base import int_option
from .byte_tokenizer import SPECIAL_TOKENS, ByteTokenizer
from .llama_numpy import Llama, LlamaConfig, init_weights, load_weights, save
from .llm_api import (
    ApiError,
    Completed,
    GenerationRequest,
    Kind,
    models_body,
    parse_request,
    response_body,
)

__all__ = ["DEFAULT_SERVED_NAME", "LLM", "SIZES", "Generation", "build", "default_path",
           "ensure", "host_path", "load", "prepare"]

log = logging.getLogger(__name__)

#: The OpenAI ``model`` id served unless FCBENCH_LLM_SERVED_NAME says otherwise.
DEFAULT_SERVED_NAME = "llm"
_VOCAB = 256 + len(SPECIAL_TOKENS)


def _preset(**geometry: Any) -> LlamaConfig:
    return LlamaConfig(vocab_size=_VOCAB, max_position_embeddings=2048, rms_norm_eps=1e-5,
                       rope_theta=10000.0, bos_token_id=SPECIAL_TOKENS["<bos>"],
                       eos_token_id=SPECIAL_TOKENS["<eos>"],
                       pad_token_id=SPECIAL_TOKENS["<pad>"], **geometry)


#: Built-in sizes (Llama geometry, grouped-query attention; tokens/s in docs/models.md).
SIZES: dict[str, LlamaConfig] = {
    # 12.7 M parameters, 51 MB
    "tiny": _preset(hidden_size=384, intermediate_size=1024, num_hidden_layers=8,
                    num_attention_heads=6, num_key_value_heads=2, head_dim=64,
                    tie_word_embeddings=True),
    # 76 M parameters, 304 MB (GPT-2 small's scale)
    "small": _preset(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                     num_attention_heads=12, num_key_value_heads=4, head_dim=64,
                     tie_word_embeddings=False),
    # 181 M parameters, 724 MB
    "base": _preset(hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
                    num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                    tie_word_embeddings=False),
}
#: Prompt tokens per forward pass while prefilling (bounds the attention scores' memory).
PREFILL_CHUNK = 256


# --------------------------------------------------------------------------------------------- files


def default_path(size: str = "tiny", seed: int = 0) -> pathlib.Path:
    """Where the built model lives: `$FCBENCH_CACHE_DIR` (or ~/.cache/fcbench)/models/."""
    root = os.environ.get("FCBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                "fcbench")
    return pathlib.Path(root) / "models" / f"llama-{size}-seed{seed}"


def build(path: str | os.PathLike[str], *, size: str = "tiny", seed: int = 0) -> pathlib.Path:
    """Write the seeded model of `size` into directory `path`, atomically (temp dir, rename):
    ``config.json`` (a HF LlamaForCausalLM config), ``model.safetensors`` (float32) and
    ``fcbench.json`` (size, seed, tokenizer). A complete one that appears meanwhile is kept."""
    config = _size(size)
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent))
    try:
        out = save(tmp / "model", config, init_weights(config, seed), extra={
            "model": "llm", "size": size, "seed": seed,
            "tokenizer": {"kind": "bytes", "special_tokens": SPECIAL_TOKENS},
            "note": "random weights: the text is noise, the compute is a Llama's"})
        for p in out.iterdir():
            p.chmod(0o644)  # the cache may be read by other users/containers
        out.chmod(0o755)
        try:
            os.rename(out, target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to a complete build: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_padding(target: pathlib.Path, n_bytes: int, seed: int) -> None:
    """A safetensors file of exactly `n_bytes`: one uint8 tensor ``fcbench.padding`` of seeded
    random bytes (8-byte header length, JSON header padded with spaces to 8 bytes, data)."""
    from .llama_numpy import PADDING_PREFIX

    def header(n: int) -> bytes:
        doc = {PADDING_PREFIX: {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return raw + b" " * (-len(raw) % 8)

    n = n_bytes - 8 - len(header(n_bytes))
    while 8 + len(header(n)) + n != n_bytes:  # the count's digits moved the header's padding
        n += n_bytes - (8 + len(header(n)) + n)
        if n < 1:
            raise ValueError("padding too small to write")
    head = header(n)
    rng = np.random.default_rng([seed, n_bytes])
    with open(target, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        left = n
        while left:
            chunk = min(left, 32 * 2**20)
            f.write(rng.integers(0, 256, chunk, dtype=np.uint8).tobytes())
            left -= chunk


def _padded(base: pathlib.Path, size_mb: int, seed: int) -> pathlib.Path:
    """The built model `base` with its safetensors padded to `size_mb` MB: a sibling directory
    holding base's files (hard links) and ``padding.safetensors``; built once, atomically."""
    target = base.with_name(f"{base.name}-{size_mb}MB")
    if (target / "padding.safetensors").is_file():
        return target
    have = sum(f.stat().st_size for f in base.glob("*.safetensors"))
    need = size_mb * 2**20 - have
    if need < 4096:
        raise ValueError(f"FCBENCH_LLM_SIZE_MB must be at least {-(-(have + 4096) // 2**20)} (the "
                         f"model's own safetensors are {have / 2**20:.1f} MB); got {size_mb}")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent))
    try:
        for f in base.iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
        _write_padding(tmp / "padding.safetensors", need, seed)
        (tmp / "padding.safetensors").chmod(0o644)
        tmp.chmod(0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "padding.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure(path: str | os.PathLike[str] | None = None, seed: int = 0,
           size: str = "tiny", size_mb: int | None = None) -> pathlib.Path:
    """The model directory to serve: the user's `path` (never built over; it must hold a
    config.json), or the built-in one of `size` and `seed` (built if missing; padded to
    `size_mb` MB of safetensors when given)."""
    if path is not None:
        p = pathlib.Path(path)
        if not (p / "config.json").is_file():
            raise FileNotFoundError(
                f"{str(p)!r} is not a Hugging Face Llama directory (no config.json); point "
                "FCBENCH_LLM_PATH at a directory saved by LlamaForCausalLM.save_pretrained "
                "(safetensors), or unset it to use the built-in model")
        return p
    p = default_path(size, seed)
    if not (p / "model.safetensors").is_file():
        build(p, size=size, seed=seed)
    return p if size_mb is None else _padded(p, size_mb, seed)


def _size(size: str) -> LlamaConfig:
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"FCBENCH_LLM_SIZE must be one of {', '.join(SIZES)}; got {size!r}"
                         ) from None


# --------------------------------------------------------------------------------------------- serve


class Generation(Iterator[int]):
    """The tokens of one request, computed as they are asked for: the prompt is prefilled at the
    first `next`, then one forward pass per token. `finish_reason` is ``"stop"`` (``<eos>``,
    which is not yielded) or ``"length"`` (`max_tokens`) once it ends; None before, and None
    after `cancel` was set (then it ends early)."""

    def __init__(self, model: LLM, request: GenerationRequest,
                 cancel: threading.Event | None = None) -> None:
        self.request = request
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self._it = model._tokens(request, self, cancel)

    def __next__(self) -> int:
        return next(self._it)


class LLM:
    """The served model: `parse` / `generate` for the OpenAI routes, `decode` / `infer` /
    `encode` for ``POST /invoke`` (a completions request, or chat when it has ``messages``,
    answered non-streamed)."""

    name = "llm"

    def __init__(self, path: str | os.PathLike[str], *, max_context: int | None = None,
                 served_name: str = DEFAULT_SERVED_NAME) -> None:
        self.path = pathlib.Path(path)
        self.config, weights = load_weights(self.path)
        c = self.config
        limit = c.max_position_embeddings
        if max_context is not None and max_context > limit:
            raise ValueError(f"FCBENCH_LLM_MAX_CONTEXT ({max_context}) exceeds the model's "
                             f"max_position_embeddings ({limit})")
        self.max_context: int = max_context or limit
        self.served_name = served_name
        self.tokenizer = ByteTokenizer(
            bos_id=SPECIAL_TOKENS["<bos>"] if c.bos_token_id is None else c.bos_token_id,
            eos_id=SPECIAL_TOKENS["<eos>"] if c.eos_token_id is None else c.eos_token_id)
        if c.vocab_size < 256 or max(self.tokenizer.bos_id, self.tokenizer.eos_id) >= c.vocab_size:
            raise ValueError(f"{self.path}/config.json: vocab_size {c.vocab_size} cannot hold the "
                             "256 byte tokens and the bos/eos ids")
        self.llama = Llama.from_weights(c, weights, max_positions=self.max_context)
        self._masks = {allow: self.tokenizer.generation_mask(c.vocab_size, allow_eos=allow)
                       for allow in (True, False)}
        self.created = int(time.time())

    # -- the OpenAI side (TextGenerator)

    def parse(self, body: bytes, *, kind: Kind | None) -> GenerationRequest:
        """Check an OpenAI completions / chat body; raises `ApiError` (400) or `ModelNotFound`."""
        return parse_request(body, kind=kind, served_name=self.served_name,
                             max_context=self.max_context, encode=self.tokenizer.encode,
                             vocab_size=self.config.vocab_size)

    def generate(self, request: GenerationRequest, *,
                 cancel: threading.Event | None = None) -> Generation:
        """The generated token ids of `request`, one per `next` (usable from any one thread).

        Greedy when ``temperature`` is 0; else sampling at that temperature with nucleus
        `top_p`, from a generator seeded by ``seed`` (fresh entropy when None). ``<eos>`` ends it
        unless ``ignore_eos`` (then exactly ``max_tokens`` come) and never before ``min_tokens``.
        """
        return Generation(self, request, cancel)

    def generate_ids(self, prompt_ids: list[int] | tuple[int, ...], *, max_tokens: int,
                     ignore_eos: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                     seed: int | None = None, min_tokens: int = 0,
                     cancel: threading.Event | None = None) -> Generation:
        """`generate` from plain arguments (the prompt as token ids, used as given).

        Raises:
            ValueError: the ids leave the vocabulary, or prompt + `max_tokens` exceed
                `max_context`, or a setting is out of range (the message says which).
        """
        doc = {"prompt": list(prompt_ids), "max_tokens": max_tokens, "ignore_eos": ignore_eos,
               "temperature": temperature, "top_p": top_p, "seed": seed,
               "min_tokens": min_tokens}
        try:
            request = self.parse(json.dumps(doc).encode(), kind="completion")
        except ApiError as exc:
            raise ValueError(str(exc)) from None
        return self.generate(request, cancel=cancel)

    def token_text(self, token_id: int) -> str:
        """The text of one generated token."""
        return self.tokenizer.token_text(token_id)

    def describe(self) -> dict[str, Any]:
        """``GET /v1/models``' body."""
        return models_body(self.served_name, self.max_context, root=str(self.path),
                           created=self.created)

    def _tokens(self, req: GenerationRequest, gen: Generation,
                cancel: threading.Event | None) -> Iterator[int]:
        cache = self.llama.new_cache(len(req.prompt_ids) + req.max_tokens)
        rng = np.random.default_rng(None if req.seed is None else req.seed % 2**64)
        prompt = np.asarray(req.prompt_ids, dtype=np.int64)
        logits = None
        for start in range(0, len(prompt), PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                return
            logits = self.llama.forward(prompt[start:start + PREFILL_CHUNK], cache)
        eos = self.tokenizer.eos_id
        while True:
            allow_eos = not req.ignore_eos and gen.completion_tokens >= req.min_tokens
            token = _sample(logits, self._masks[allow_eos], req.temperature, req.top_p, rng)
            if token == eos:
                gen.finish_reason = "stop"
                return
            gen.completion_tokens += 1
            last = gen.completion_tokens >= req.max_tokens
            if last:
                gen.finish_reason = "length"
            yield token
            if last or (cancel is not None and cancel.is_set()):
                return
            logits = self.llama.forward([token], cache)

    # -- the Model side (POST /invoke)

    def decode(self, body: bytes, content_type: str) -> GenerationRequest:
        """An OpenAI completions body (chat when it has ``messages``; an empty body is a
        16-token completion of "Hello"); a streamed one is refused, /invoke answers whole."""
        req = self.parse(body, kind=None)
        if req.stream:
            raise ApiError("stream is not supported on this path; POST /v1/completions or "
                           "/v1/chat/completions for a streamed answer", "stream")
        return req

    def infer(self, inputs: list[Any]) -> list[Completed]:
        """Generate each request's answer in turn (one generation at a time)."""
        out = []
        for req in inputs:
            t0 = time.perf_counter()
            gen = self.generate(req)
            ids = list(gen)
            out.append(Completed(req, ids, gen.finish_reason or "length",
                                 "".join(map(self.token_text, ids)),
                                 (time.perf_counter() - t0) * 1000.0))
        return out

    def encode(self, output: Any) -> tuple[bytes, str]:
        """The OpenAI JSON answer (``text_completion`` or ``chat.completion``) with usage."""
        return json.dumps(response_body(output), separators=(",", ":")).encode(), \
            "application/json"


def _sample(logits: np.ndarray, allowed: np.ndarray, temperature: float, top_p: float,
            rng: np.random.Generator) -> int:
    """The next token: argmax of the allowed logits at temperature 0, else a draw from their
    softmax at `temperature`, cut to the smallest set whose probability reaches `top_p`."""
    z = np.where(allowed, logits.astype(np.float64), -np.inf)
    if temperature == 0:
        return int(np.argmax(z))
    z = (z - z.max()) / temperature
    p = np.exp(z)
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order] / p.sum()
        keep = (np.cumsum(sorted_p) - sorted_p) < top_p  # the first always stays
        p = np.zeros_like(p)
        p[order[keep]] = sorted_p[keep]
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(p) - 1))


# --------------------------------------------------------------------------------------------- hooks




def _user_path(options: Mapping[str, str]) -> str | None:
    return ((options.get("FCBENCH_LLM_PATH") or "").strip()
            or (options.get("FCBENCH_MODEL_PATH") or "").strip() or None)


def _built_in(options: Mapping[str, str]) -> tuple[str, int]:
    size = (options.get("FCBENCH_LLM_SIZE") or "tiny").strip() or "tiny"
    _size(size)
    return size, int_option(options, "FCBENCH_LLM_SEED", 0, 0) or 0


def host_path(options: Mapping[str, str]) -> pathlib.Path:
    """The model directory these options name on this host (built if it is the built-in one)."""
    user = _user_path(options)
    size, seed = _built_in(options)
    size_mb = int_option(options, "FCBENCH_LLM_SIZE_MB", None, 1, 1 << 20)
    if size_mb is not None and user:
        raise ValueError("FCBENCH_LLM_SIZE_MB pads the built-in model; it cannot go with "
                         "FCBENCH_LLM_PATH / FCBENCH_MODEL_PATH (your model has its own size)")
    return ensure(user, seed=seed, size=size, size_mb=size_mb)


def prepare(options: Mapping[str, str]) -> None:
    """Build the built-in model ahead of time (a no-op for a user's directory)."""
    if _user_path(options) is None:
        host_path(options)


def load(options: Mapping[str, str]) -> LLM:
    """Load the model as the server does (reads the safetensors file on every call: the
    model-load phase of a cold start). Options: see the module docstring."""
    path = host_path(options)
    meta = path / "fcbench.json"
    if _user_path(options) and meta.is_file() and options.get("FCBENCH_LLM_SIZE"):
        built = json.loads(meta.read_text()).get("size")
        if built != options["FCBENCH_LLM_SIZE"].strip():
            log.warning("FCBENCH_LLM_SIZE is %s but %s holds the %s model (a baked image serves "
                        "the model it was built with)", options["FCBENCH_LLM_SIZE"], path, built)
    served = (options.get("FCBENCH_LLM_SERVED_NAME") or "").strip() or DEFAULT_SERVED_NAME
    # for the whole process, as the other samples' intra-op threads: set before the first matmul
    threadpoolctl.threadpool_limits(int_option(options, "FCBENCH_LLM_THREADS", 1, 1) or 1,
                                    user_api="blas")
    return LLM(path, max_context=int_option(options, "FCBENCH_LLM_MAX_CONTEXT", None, 2),
               served_name=served)
