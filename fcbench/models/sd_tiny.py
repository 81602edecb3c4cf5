"""A tiny Stable Diffusion pipeline from configs with seeded random weights (7 MB), real file layout, so the
real `from_pretrained` load and inference run on CPU in seconds.

Key names: `build`, `build_tokenizer` (CLIP-layout BPE), `default_path`, `ensure`, `quiet_progress`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

__all__ = ["CORPUS", "build", "build_tokenizer", "default_path", "ensure", "quiet_progress"]

#: Text the tokenizer's BPE merges are learned from: short image prompts, so that common prompt words
#: become single tokens, as they do in CLIP's own vocabulary.
CORPUS = (
    "a photograph of an astronaut riding a horse on the moon",
    "a painting of a fox sitting in a field at sunrise, oil on canvas",
    "a watercolor landscape with mountains, a lake and a small wooden house",
    "a portrait of an old man with a beard, dramatic lighting, high detail",
    "a cat wearing a red hat, digital art, trending on artstation",
    "a dog playing in the snow, photo, 35mm, sharp focus",
    "a futuristic city at night with neon lights and flying cars",
    "a bowl of fruit on a wooden table, still life, soft light",
    "an ancient castle on a hill under a stormy sky, fantasy art",
    "a red sports car driving along a coastal road at sunset",
    "a close up photo of a flower with drops of water, macro photography",
    "a cozy living room with a fireplace and a sleeping cat, interior design",
    "a robot reading a book in a library, concept art, highly detailed",
    "a forest path in autumn with golden leaves and soft fog",
    "a small boat on a calm sea under the stars, long exposure",
    "a bird sitting on a branch in the rain, wildlife photography",
    "a mountain village covered in snow, winter, warm light from the windows",
    "a plate of pasta with tomato sauce and basil, food photography",
    "an owl flying over a river at night, moonlight, fine art",
    "a young woman walking in a city street, street photography, black and white",
    "a dragon sleeping on a pile of gold coins in a cave, epic fantasy painting",
    "a green field with a single tree and blue sky with white clouds",
    "a steam train crossing a bridge in the mountains, vintage photo",
    "a cup of coffee on a desk next to a laptop, morning light, minimal",
    "a lighthouse on a rocky coast with big waves, dramatic sky",
    "an illustration of a house in the style of a children's book",
    "a cyberpunk street market in the rain, cinematic, 8k, ultra detailed",
    "a horse running on a beach at sunset, golden hour, photo",
    "a garden full of flowers and butterflies in spring, impressionist painting",
    "a snowy owl in a winter forest, detailed, realistic, 4k",
)

_SEED_OFFSETS = {"text_encoder": 1, "unet": 2, "vae": 3}
_MAX_MERGES = 480
_MODEL_MAX_LENGTH = 77
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenizer: words, single digits and runs of punctuation (contractions split off).
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (256 entries, in CLIP's order)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _words(corpus: tuple[str, ...]) -> collections.Counter[tuple[str, ...]]:
    """Corpus -> counts of words as CLIP sees them: normalised, split, byte-mapped, last symbol + ``</w>``."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    norm = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    split = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    words: collections.Counter[tuple[str, ...]] = collections.Counter()
    for text in corpus:
        for piece, _ in split.pre_tokenize_str(norm.normalize_str(text)):
            words[(*piece[:-1], piece[-1] + "</w>")] += 1
    return words


def _learn_merges(words: collections.Counter[tuple[str, ...]], max_merges: int,
                  min_frequency: int = 2) -> list[tuple[str, str]]:
    """Byte-pair merges, most frequent pair first; ties go to the smaller pair, so builds are repeatable.

    (`tokenizers`' own BpeTrainer breaks ties by hash-map order: two builds gave different merges.)
    """
    merges: list[tuple[str, str]] = []
    current = dict(words)
    while len(merges) < max_merges:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, count in current.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        a, b = best
        merged: dict[tuple[str, ...], int] = {}
        for word, count in current.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        current = merged
    return merges


def build_tokenizer(dest: str | os.PathLike[str], corpus: tuple[str, ...] = CORPUS,
                    max_merges: int = _MAX_MERGES) -> int:
    """Learn a small byte-level BPE from `corpus` and write a CLIP-layout tokenizer into `dest`.

    Text is normalised and split by the `tokenizers` library exactly as CLIP's tokenizer does. The files
    are those of a real CLIP tokenizer (`vocab.json`, `merges.txt`, `tokenizer_config.json`,
    `special_tokens_map.json`): the vocabulary holds the 256 byte symbols, then their ``</w>``
    (end-of-word) forms, then one entry per merge, then ``<|startoftext|>`` and ``<|endoftext|>``.

    Returns:
        The vocabulary size (what the text encoder's embedding table must hold).
    """
    merges = _learn_merges(_words(corpus), max_merges)
    base = list(_bytes_to_unicode().values())
    vocab_list = base + [c + "</w>" for c in base] + [a + b for a, b in merges] + [_BOS, _EOS]

    out = pathlib.Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(vocab_list)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    specials = {"bos_token": _BOS, "eos_token": _EOS, "unk_token": _EOS, "pad_token": _EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": _MODEL_MAX_LENGTH,
         "do_lower_case": True, "clean_up_tokenization_spaces": True, **specials}, indent=2))
    return len(vocab)


def _components(seed: int, vocab_size: int) -> dict[str, object]:
    """The seeded modules of the pipeline (imports torch/diffusers/transformers)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    # SD 1.x geometry, scaled down: 4-channel latents, a VAE that downsamples 8x, cross-attention
    # on the text encoder's hidden states (width 32).
    torch.manual_seed(seed * 1000 + _SEED_OFFSETS["text_encoder"])
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=_MODEL_MAX_LENGTH, projection_dim=32,
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1))
    torch.manual_seed(seed * 1000 + _SEED_OFFSETS["unet"])
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=32)
    torch.manual_seed(seed * 1000 + _SEED_OFFSETS["vae"])
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(16, 32, 32, 64), sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    # SD 1.5's scheduler settings.
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False,
                              steps_offset=1)
    return {"text_encoder": text_encoder, "unet": unet, "vae": vae, "scheduler": scheduler}


def build(path: str | os.PathLike[str], seed: int = 0, weights: str = "safetensors") -> pathlib.Path:
    """Build the tiny pipeline for `seed` into directory `path`, atomically (temp dir, then rename).

    `weights` "torch" saves the unet and VAE as pickles (``diffusion_pytorch_model.bin``, read with
    `torch.load`) instead of safetensors; the text encoder stays safetensors (transformers saves
    nothing else).

    The result is a diffusers model directory (`model_index.json`, `unet/`, `vae/`, `text_encoder/`,
    `tokenizer/`, `scheduler/`; no safety checker) that `StableDiffusionPipeline.from_pretrained` loads.
    The same seed gives the same files, byte for byte. If a complete pipeline appears at `path` while
    this one is built (a concurrent build), that one is kept.
    """
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}; got {weights!r}")
    with quiet_progress():
        return _build(pathlib.Path(path), seed, weights)


#: How the built pipeline's weights are saved (and so loaded): safetensors, or torch pickles.
WEIGHT_FORMATS = ("safetensors", "torch")


def _build(target: pathlib.Path, seed: int, weights: str = "safetensors") -> pathlib.Path:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        vocab_size = build_tokenizer(tmp / "tokenizer-src")
        tokenizer = CLIPTokenizer.from_pretrained(str(tmp / "tokenizer-src"))
        pipe = StableDiffusionPipeline(
            tokenizer=tokenizer, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, **_components(seed, vocab_size))
        pipe.save_pretrained(str(tmp / "pipe"), safe_serialization=weights == "safetensors")
        # Keep the tokenizer in CLIP's own file layout (save_pretrained may write only tokenizer.json).
        tok_dir = tmp / "pipe" / "tokenizer"
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(tmp / "tokenizer-src" / name, tok_dir / name)
        (tmp / "pipe" / "fcbench.json").write_text(json.dumps(
            {"model": "sd-tiny", "seed": seed, "weights": weights,
             "note": "random weights: images are noise-like"}))
        for p in (tmp / "pipe").rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)  # the cache may be read by other users/containers
        (tmp / "pipe").chmod(0o755)
        try:
            os.rename(tmp / "pipe", target)
        except OSError:
            if not (target / "model_index.json").is_file():  # lost a race to a complete build: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Turn off diffusers' and transformers' tqdm bars (load/save progress) inside the block."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was = [(m, m.is_progress_bar_enabled()) for m in (dlog, tlog)]
    for m, _ in was:
        m.disable_progress_bar()
    try:
        yield
    finally:
        for m, on in was:
            if on:
                m.enable_progress_bar()


def default_path(seed: int = 0, weights: str = "safetensors") -> pathlib.Path:
    """Where the tiny pipeline for `seed` lives: `$FCBENCH_CACHE_DIR` (or ~/.cache/fcbench)/models/."""
    root = os.environ.get("FCBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "fcbench")
    suffix = "" if weights == "safetensors" else f"-{weights}"
    return pathlib.Path(root) / "models" / f"sd-tiny-seed{seed}{suffix}"


def ensure(path: str | os.PathLike[str] | None = None, seed: int = 0,
           weights: str = "safetensors") -> pathlib.Path:
    """Return a pipeline directory that exists: the tiny one for `seed` (built if missing) or the user's `path`.

    A user's directory is never built over; a missing one or one without `model_index.json` raises
    `FileNotFoundError`.
    """
    if path is not None:
        p = pathlib.Path(path)
        if not (p / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{str(p)!r} is not a diffusers pipeline directory (no model_index.json); point "
                "FCBENCH_MODEL_PATH at a directory saved with save_pretrained, or unset it to use "
                "the tiny seeded pipeline")
        return p
    p = default_path(seed, weights)
    if not (p / "model_index.json").is_file():
        build(p, seed=seed, weights=weights)
    return p
