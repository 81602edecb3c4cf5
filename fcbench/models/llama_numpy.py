"""A Llama-style decoder-only transformer in numpy, with Hugging Face's weight names and config.

Key names: `LlamaConfig` (the ``config.json`` of a ``LlamaForCausalLM``), `init_weights` (seeded
float32 weights), `save` / `load_weights` (a HF-layout directory: ``config.json`` +
``*.safetensors``), `Llama` (the forward pass) and `KVCache`.

The architecture is Llama's: RMSNorm before attention and MLP, rotary position embeddings (the
"rotate half" layout HF uses), grouped-query attention with a key/value cache, a SwiGLU MLP, and a
tied or untied ``lm_head``. A directory written by `save` loads in
``transformers.LlamaForCausalLM.from_pretrained`` and gives the same logits (tests check it).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import safetensors.numpy

__all__ = ["KVCache", "Llama", "LlamaConfig", "init_weights", "load_weights", "save",
           "weight_names"]

_FLOATS = (np.float32, np.float16, np.float64)


@dataclass(frozen=True)
class LlamaConfig:
    """The fields of a HF ``LlamaConfig`` this implementation reads (names as in ``config.json``)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim",
                     "max_position_embeddings"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"config {name} must be at least 1; got {getattr(self, name)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple "
                             f"of num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings; got {self.head_dim}")

    @property
    def num_parameters(self) -> int:
        """Parameters in the model (the tied ``lm_head`` counted once)."""
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        layer = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * i
        return v * h * (1 if self.tie_word_embeddings else 2) + self.num_hidden_layers * layer + h

    def to_hf(self) -> dict[str, Any]:
        """The ``config.json`` content, as transformers writes it for a ``LlamaForCausalLM``."""
        d = asdict(self)
        d.update({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
            "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True,
            "torch_dtype": "float32", "dtype": "float32",
            # transformers 5 reads rope_parameters; older releases read rope_theta
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
        })
        return dict(sorted(d.items()))

    @classmethod
    def from_hf(cls, doc: Mapping[str, Any], *, where: str = "config.json") -> LlamaConfig:
        """Read a HF Llama ``config.json``; `ValueError` names `where` and the key at fault."""
        if doc.get("model_type") not in ("llama", None):
            raise ValueError(f"{where}: model_type is {doc.get('model_type')!r}; only 'llama' "
                             "(LlamaForCausalLM) checkpoints are served")
        for key in ("attention_bias", "mlp_bias"):
            if doc.get(key):
                raise ValueError(f"{where}: {key} is true; this implementation has no biases")
        act = doc.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"{where}: hidden_act is {act!r}; only 'silu' (SwiGLU) is served")
        rope = doc.get("rope_parameters") or doc.get("rope_scaling") or {}
        rope_type = rope.get("rope_type") or rope.get("type") or "default"
        if rope_type != "default":
            raise ValueError(f"{where}: rope type {rope_type!r} is not supported; only plain "
                             "rotary embeddings (rope_type 'default')")
        try:
            heads = int(doc["num_attention_heads"])
            hidden = int(doc["hidden_size"])
            return cls(
                vocab_size=int(doc["vocab_size"]), hidden_size=hidden,
                intermediate_size=int(doc["intermediate_size"]),
                num_hidden_layers=int(doc["num_hidden_layers"]), num_attention_heads=heads,
                num_key_value_heads=int(doc.get("num_key_value_heads") or heads),
                head_dim=int(doc.get("head_dim") or hidden // heads),
                max_position_embeddings=int(doc.get("max_position_embeddings", 2048)),
                rms_norm_eps=float(doc.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope.get("rope_theta") or doc.get("rope_theta") or 10000.0),
                tie_word_embeddings=bool(doc.get("tie_word_embeddings", False)),
                bos_token_id=_first_id(doc.get("bos_token_id")),
                eos_token_id=_first_id(doc.get("eos_token_id")),
                pad_token_id=_first_id(doc.get("pad_token_id")))
        except KeyError as exc:
            raise ValueError(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


def _first_id(value: Any) -> int | None:
    # HF allows a list of eos ids; the first one is the one this model emits
    if isinstance(value, list):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def weight_names(config: LlamaConfig) -> list[str]:
    """Every tensor name a checkpoint of `config` holds, as HF's ``LlamaForCausalLM`` names them."""
    names = ["model.embed_tokens.weight"]
    for n in range(config.num_hidden_layers):
        p = f"model.layers.{n}."
        names += [p + s for s in (
            "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
            "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")]
    names.append("model.norm.weight")
    if not config.tie_word_embeddings:
        names.append("lm_head.weight")
    return names


def _shape(config: LlamaConfig, name: str) -> tuple[int, ...]:
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    tail = name.split(".", 3)[-1] if name.startswith("model.layers.") else name
    return {
        "model.embed_tokens.weight": (v, h), "lm_head.weight": (v, h), "model.norm.weight": (h,),
        "input_layernorm.weight": (h,), "post_attention_layernorm.weight": (h,),
        "self_attn.q_proj.weight": (q, h), "self_attn.k_proj.weight": (kv, h),
        "self_attn.v_proj.weight": (kv, h), "self_attn.o_proj.weight": (h, q),
        "mlp.gate_proj.weight": (i, h), "mlp.up_proj.weight": (i, h), "mlp.down_proj.weight": (h, i),
    }[tail]


def init_weights(config: LlamaConfig, seed: int = 0, std: float = 0.02) -> dict[str, np.ndarray]:
    """Seeded float32 weights: matrices ~ N(0, std²) (HF's initializer_range), norm weights
    1 + N(0, 0.1²) (not all ones, so a norm applied in the wrong place changes the logits)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name in weight_names(config):
        shape = _shape(config, name)
        if len(shape) == 1:
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    return out


def save(path: str | os.PathLike[str], config: LlamaConfig, weights: Mapping[str, np.ndarray],
         extra: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Write `config.json` and `model.safetensors` (plus `fcbench.json` from `extra`) into `path`."""
    out = pathlib.Path(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_hf(), indent=2) + "\n")
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    # transformers refuses a safetensors file without format metadata
    safetensors.numpy.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    if extra is not None:
        (out / "fcbench.json").write_text(json.dumps(dict(extra), indent=2) + "\n")
    return out


#: Tensors whose names start so are read and dropped: bytes a padded sample adds.
PADDING_PREFIX = "fcbench.padding"


def load_weights(path: str | os.PathLike[str]) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    """Read a HF Llama directory: ``config.json`` and every ``*.safetensors`` in it (shards too).

    Raises:
        FileNotFoundError: no config.json or no .safetensors file.
        ValueError: a bad config, a missing or misshapen tensor, a dtype numpy cannot hold
            (bfloat16); the message names the file and the tensor.
    """
    root = pathlib.Path(path)
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{root} has no config.json; point it at a directory saved by "
                                "LlamaForCausalLM.save_pretrained")
    try:
        doc = json.loads(cfg_path.read_text())
    except ValueError as exc:
        raise ValueError(f"{cfg_path}: not valid JSON ({exc})") from None
    config = LlamaConfig.from_hf(doc, where=str(cfg_path))
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{root} has no *.safetensors file (.bin checkpoints are not "
                                "read; save with safe_serialization=True)")
    weights: dict[str, np.ndarray] = {}
    for f in files:
        try:
            part = safetensors.numpy.load_file(str(f))
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{f}: cannot be read as numpy ({exc}); bfloat16 has no numpy type, "
                             "so save the model as float32 or float16") from None
        weights.update(part)
    # fcbench.padding* (a sample padded to a size, `fcbench.models.llm`) was read like any
    # tensor, so the load scales with its bytes; it is no weight of the model
    weights = {k: v for k, v in weights.items() if not k.endswith("rotary_emb.inv_freq")
               and not k.startswith(PADDING_PREFIX)}
    if config.tie_word_embeddings:
        weights.pop("lm_head.weight", None)  # some tied checkpoints store the copy anyway
    wanted = weight_names(config)
    missing = [n for n in wanted if n not in weights]
    if missing:
        raise ValueError(f"{root}: missing tensor {missing[0]!r}" +
                         (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    extra = sorted(set(weights) - set(wanted))
    if extra:
        raise ValueError(f"{root}: unexpected tensor {extra[0]!r} (not part of a "
                         f"LlamaForCausalLM of this config)")
    for name in wanted:
        arr = weights[name]
        if arr.dtype not in _FLOATS:
            raise ValueError(f"{root}: tensor {name!r} is {arr.dtype}; need float32 or float16")
        if arr.shape != _shape(config, name):
            raise ValueError(f"{root}: tensor {name!r} has shape {list(arr.shape)}; config.json "
                             f"says {list(_shape(config, name))}")
    return config, weights


# --------------------------------------------------------------------------------------------- forward


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, all layers: [layers, kv_heads, capacity, head_dim]."""

    k: np.ndarray
    v: np.ndarray
    length: int = 0

    @classmethod
    def empty(cls, config: LlamaConfig, capacity: int) -> KVCache:
        shape = (config.num_hidden_layers, config.num_key_value_heads, capacity, config.head_dim)
        return cls(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    @property
    def capacity(self) -> int:
        return self.k.shape[2]


@dataclass
class _Layer:
    attn_norm: np.ndarray
    wqkv: np.ndarray  # [hidden, (heads + 2 kv_heads) * head_dim]: q, k, v in one matmul
    wo: np.ndarray    # [heads * head_dim, hidden]
    mlp_norm: np.ndarray
    w_gate_up: np.ndarray  # [hidden, 2 * intermediate]: gate, up in one matmul
    w_down: np.ndarray     # [intermediate, hidden]


@dataclass
class Llama:
    """The forward pass. Weights are held pre-transposed (``x @ W``) and fused (q|k|v,
    gate|up), so a decode step is a handful of matmuls per layer and no loop over heads.

    Build it with `Llama.from_weights`; run it with `forward`.
    """

    config: LlamaConfig
    embed: np.ndarray
    layers: list[_Layer]
    norm: np.ndarray
    lm_head: np.ndarray  # [hidden, vocab]
    _cos: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    _sin: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @classmethod
    def from_weights(cls, config: LlamaConfig, weights: dict[str, np.ndarray],
                     max_positions: int | None = None) -> Llama:
        """Arrange HF-named `weights` for the forward pass (consumes the dict, to bound memory)."""
        def take(name: str) -> np.ndarray:
            return np.asarray(weights.pop(name), dtype=np.float32)

        embed = np.ascontiguousarray(take("model.embed_tokens.weight"))
        layers = []
        for n in range(config.num_hidden_layers):
            p = f"model.layers.{n}."
            layers.append(_Layer(
                attn_norm=take(p + "input_layernorm.weight"),
                wqkv=np.ascontiguousarray(np.concatenate(
                    [take(p + f"self_attn.{x}_proj.weight") for x in "qkv"], axis=0).T),
                wo=np.ascontiguousarray(take(p + "self_attn.o_proj.weight").T),
                mlp_norm=take(p + "post_attention_layernorm.weight"),
                w_gate_up=np.ascontiguousarray(np.concatenate(
                    [take(p + "mlp.gate_proj.weight"), take(p + "mlp.up_proj.weight")], axis=0).T),
                w_down=np.ascontiguousarray(take(p + "mlp.down_proj.weight").T)))
        norm = take("model.norm.weight")
        head = embed if config.tie_word_embeddings else take("lm_head.weight")
        model = cls(config, embed, layers, norm, np.ascontiguousarray(head.T))
        model._rope_tables(max_positions or config.max_position_embeddings)
        return model

    def _rope_tables(self, n: int) -> None:
        half = self.config.head_dim // 2
        inv_freq = 1.0 / (self.config.rope_theta ** (np.arange(0, half, dtype=np.float64) / half))
        angles = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]
        self._cos = np.cos(angles).astype(np.float32)  # [positions, head_dim / 2]
        self._sin = np.sin(angles).astype(np.float32)

    @property
    def max_positions(self) -> int:
        """Positions the rotary tables cover (the longest context `forward` takes)."""
        return self._cos.shape[0]

    def new_cache(self, capacity: int) -> KVCache:
        """An empty cache for up to `capacity` tokens (at most `max_positions`)."""
        if capacity > self.max_positions:
            raise ValueError(f"a cache of {capacity} tokens exceeds the {self.max_positions} "
                             "positions this model was set up for")
        return KVCache.empty(self.config, capacity)

    def _rms(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        var = np.mean(x * x, axis=-1, keepdims=True)
        return x * (1.0 / np.sqrt(var + np.float32(self.config.rms_norm_eps))) * w

    def forward(self, ids: np.ndarray | list[int], cache: KVCache, *,
                all_logits: bool = False) -> np.ndarray:
        """Run the tokens `ids` (positions ``cache.length`` on), appending them to `cache`.

        Returns:
            float32 logits, [len(ids), vocab] with `all_logits`, else [vocab] for the last token.
        """
        c = self.config
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        t, p0 = len(ids), cache.length
        end = p0 + t
        if t == 0:
            raise ValueError("forward needs at least one token")
        if end > cache.capacity:
            raise ValueError(f"{end} tokens exceed the cache's capacity of {cache.capacity}")
        if ids.min() < 0 or ids.max() >= c.vocab_size:
            raise ValueError(f"token ids must be in [0, {c.vocab_size}); got {ids.min()}..{ids.max()}")
        nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        group, half = nh // nkv, hd // 2
        cos, sin = self._cos[p0:end, None, :], self._sin[p0:end, None, :]  # [t, 1, half]
        scale = np.float32(1.0 / np.sqrt(hd))
        mask = None
        if t > 1:  # causal within the new tokens; every cached token is visible
            mask = np.triu(np.full((t, end), -np.inf, np.float32), k=p0 + 1)

        x = self.embed[ids]  # [t, hidden]
        for n, layer in enumerate(self.layers):
            qkv = self._rms(x, layer.attn_norm) @ layer.wqkv
            q = qkv[:, : nh * hd].reshape(t, nh, hd)
            k = qkv[:, nh * hd : (nh + nkv) * hd].reshape(t, nkv, hd)
            v = qkv[:, (nh + nkv) * hd :].reshape(t, nkv, hd)
            q, k = _rotate(q, cos, sin, half), _rotate(k, cos, sin, half)
            cache.k[n, :, p0:end] = k.transpose(1, 0, 2)
            cache.v[n, :, p0:end] = v.transpose(1, 0, 2)
            keys, values = cache.k[n, :, :end], cache.v[n, :, :end]  # [kv, end, hd]
            # query head h reads kv head h // group (HF's repeat_kv): [kv, group * t, hd]
            qg = q.reshape(t, nkv, group, hd).transpose(1, 2, 0, 3).reshape(nkv, group * t, hd)
            scores = (qg @ keys.transpose(0, 2, 1)) * scale  # [kv, group * t, end]
            if mask is not None:
                scores = (scores.reshape(nkv, group, t, end) + mask).reshape(nkv, group * t, end)
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            attn = (scores @ values).reshape(nkv, group, t, hd).transpose(2, 0, 1, 3)
            x = x + attn.reshape(t, nh * hd) @ layer.wo
            gu = self._rms(x, layer.mlp_norm) @ layer.w_gate_up
            gate, up = gu[:, : c.intermediate_size], gu[:, c.intermediate_size :]
            x = x + ((gate / (1.0 + np.exp(-gate))) * up) @ layer.w_down
        cache.length = end
        if all_logits:
            return self._rms(x, self.norm) @ self.lm_head
        return (self._rms(x[-1:], self.norm) @ self.lm_head)[0]


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, half: int) -> np.ndarray:
    """Rotary embedding in HF's "rotate half" layout: dims [0, half) pair with [half, hd)."""
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
