"""MobileNetV2 sample model: builds a seeded, randomly weighted but architecturally real ONNX file and serves it.

Key names: `build`, `ensure`, `default_path`, `MobileNetV2` (the `Model`), `load` / `prepare` (server hooks).
With a size (`FCBENCH_MODEL_SIZE_MB`) the same network is built padded to that many MB (2^20 bytes)
on disk, so model load scales with real bytes; `FCBENCH_ONNX_LOAD` picks how the file reaches
onnxruntime (its path, or its bytes read first).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from fcbench._io import atomic_write
from fcbench.models.base import BadInput, Model, int_option

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOAD_MODES",
    "host_path",
    "MobileNetV2",
    "build",
    "default_path",
    "ensure",
    "load",
    "prepare",
]

#: ImageNet channel statistics (RGB), applied after scaling pixels to [0, 1].
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# (expansion t, output channels c, repeats n, first stride s): the ImageNet config, width 1.0.
_INVERTED_RESIDUAL_CONFIG = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280
_NUM_CLASSES = 1000
_OPSET = 17
_IR_VERSION = 8  # the IR version that goes with opset 17; every onnxruntime since 1.11 reads it
_DEFAULT_CHW = (3, 224, 224)
_RESIZE_RATIO = 256 / 224  # shorter side goes to 256 before the 224 centre crop
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: How `MobileNetV2` hands the file to onnxruntime: its path (onnxruntime reads it), or its bytes
#: read into memory first (what a loader that fetched the model over the network does).
LOAD_MODES = ("file", "memory")
_MB = 1024 * 1024
_PAD_NAME = "padding"
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


# --------------------------------------------------------------------------------------------- build


def build(path: str | os.PathLike[str], *, seed: int = 0, size_mb: int | None = None) -> pathlib.Path:
    """Write MobileNetV2 (ImageNet config, width 1.0, BN folded) with seeded He-normal weights to `path`.

    Input `input` float32 [N,3,224,224], output `logits` [N,1000]; about 3.5 M parameters (~14 MB).
    With `size_mb` the file is exactly that many MB (2^20 bytes): a seeded float32 initializer
    `padding` fills the rest, feeding ``logits + 0 * padding[0]`` (the same outputs; see
    `_padding_tail`). The file is written to a temporary name in the same folder and renamed, so
    readers never see half a file. The same seed and size always give a byte-identical file.

    Raises:
        ValueError: `size_mb` smaller than the unpadded model (or 2 GB and over: protobuf's limit).
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def conv(x: str, c_in: int, c_out: int, k: int, stride: int, groups: int, gain: float, act: bool) -> str:
        # He-normal on fan_in; `gain` is 2 before a ReLU6, 1 for linear (projection) layers. Folded BN
        # leaves a per-channel bias; a small random one keeps channels from being exact copies.
        fan_in = (c_in // groups) * k * k
        w = rng.standard_normal((c_out, c_in // groups, k, k), dtype=np.float32) * np.float32(np.sqrt(gain / fan_in))
        b = rng.standard_normal(c_out, dtype=np.float32) * np.float32(0.1)
        name = fresh("conv")
        inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        inits.append(numpy_helper.from_array(b, f"{name}.bias"))
        pad = k // 2
        y = f"{name}.out"
        nodes.append(
            helper.make_node(
                "Conv", [x, f"{name}.weight", f"{name}.bias"], [y], name=name,
                kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad], group=groups,
            )
        )
        if not act:
            return y
        z = f"{name}.relu6"
        nodes.append(helper.make_node("Clip", [y, "relu6.min", "relu6.max"], [z], name=f"{name}_relu6"))
        return z

    inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "relu6.min"))
    inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6.max"))

    x = conv("input", 3, _STEM_CHANNELS, 3, 2, 1, 2.0, True)
    c_in = _STEM_CHANNELS
    for t, c, n, s in _INVERTED_RESIDUAL_CONFIG:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            h = x
            if t != 1:
                h = conv(h, c_in, hidden, 1, 1, 1, 2.0, True)  # expand
            h = conv(h, hidden, hidden, 3, stride, hidden, 2.0, True)  # depthwise
            residual = stride == 1 and c_in == c
            # Projection is linear; on residual blocks it is scaled down so the sums stay near unit scale.
            h = conv(h, hidden, c, 1, 1, 1, 0.5 if residual else 1.0, False)
            if residual:
                y = fresh("add")
                nodes.append(helper.make_node("Add", [x, h], [y], name=y))
                h = y
            x, c_in = h, c
    x = conv(x, c_in, _LAST_CHANNELS, 1, 1, 1, 2.0, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    # Pooled features are all positive with a large shared mean; centre the classifier weights over the
    # classes so that mean adds nothing to the logits, and widen them (std ~7) so the softmax is peaked
    # (top-1 ~0.3) rather than near-uniform, as a trained classifier's would be.
    fc_w = rng.standard_normal((_NUM_CLASSES, _LAST_CHANNELS), dtype=np.float32)
    fc_w -= fc_w.mean(axis=0, keepdims=True)
    fc_w *= np.float32(np.sqrt(2.0 / _LAST_CHANNELS) * 4.0)
    fc_b = rng.standard_normal(_NUM_CLASSES, dtype=np.float32) * np.float32(0.1)
    inits.append(numpy_helper.from_array(fc_w, "classifier.weight"))
    inits.append(numpy_helper.from_array(fc_b, "classifier.bias"))
    logits = "logits" if size_mb is None else "logits.unpadded"
    nodes.append(
        helper.make_node(
            "Gemm", ["features", "classifier.weight", "classifier.bias"], [logits], name="classifier", transB=1
        )
    )
    if size_mb is not None:
        # logits + 0 * padding[0]: the padding is an input of the graph's output, so onnxruntime
        # parses and holds it like any weight (then folds the constant branch at session start)
        inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "padding.index"))
        inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "padding.zero"))
        nodes.append(helper.make_node("Gather", [_PAD_NAME, "padding.index"], ["padding.first"],
                                      name="padding_gather", axis=0))
        nodes.append(helper.make_node("Mul", ["padding.first", "padding.zero"], ["padding.nil"],
                                      name="padding_mul"))
        nodes.append(helper.make_node("Add", [logits, "padding.nil"], ["logits"], name="padding_add"))

    graph = helper.make_graph(
        nodes,
        "mobilenet_v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *_DEFAULT_CHW])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", _NUM_CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="fcbench",
        doc_string=f"MobileNetV2 (ImageNet config, width 1.0), random He-normal weights, seed {seed}",
    )
    model.ir_version = _IR_VERSION
    data = model.SerializeToString()

    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if size_mb is None:
        atomic_write(target, data, fsync=True)
    else:
        _write_padded(target, data, size_mb * _MB, seed=seed)
    target.chmod(0o644)  # whatever the umask: the cache may be read by other users/containers
    return target


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _padding_head(n: int, filler: int) -> bytes:
    """The bytes that, appended to a serialized model and followed by n*4 data bytes, add the
    float32 initializer `padding` [n]; its doc_string holds `filler` bytes (0: none), which a
    count of floats cannot.

    Protobuf merges a message field that appears twice, so ``model + ModelProto{graph:
    GraphProto{initializer: [padding]}}`` parses as the model with one more initializer; that
    lets the data be streamed to disk instead of held in memory three times.
    """
    from onnx import TensorProto

    head = TensorProto(dims=[n], data_type=TensorProto.FLOAT, name=_PAD_NAME,
                       doc_string="#" * filler).SerializeToString()
    tensor = head + b"\x4a" + _varint(4 * n)  # field 9 (raw_data), length-delimited
    tensor_len = len(tensor) + 4 * n
    graph = b"\x2a" + _varint(tensor_len) + tensor  # GraphProto field 5 (initializer)
    graph_len = 1 + len(_varint(tensor_len)) + tensor_len
    return b"\x3a" + _varint(graph_len) + graph  # ModelProto field 7 (graph)


def _write_padded(target: pathlib.Path, base: bytes, total: int, *, seed: int) -> None:
    """`base` plus a seeded `padding` initializer, exactly `total` bytes, written atomically."""
    if total >= 2**31:
        raise ValueError(f"a padded model must stay under 2048 MB (protobuf's 2 GB limit); got "
                         f"{total // _MB} MB")

    def size(n: int, filler: int) -> int:
        return len(base) + len(_padding_head(n, filler)) + 4 * n

    smallest = size(1, 0) + 16
    if total < smallest:
        raise ValueError(f"FCBENCH_MODEL_SIZE_MB must be at least {-(-smallest // _MB)} (the "
                         f"unpadded model is {len(base) / _MB:.1f} MB); got {total // _MB}")
    n = (total - smallest) // 4
    filler = 0
    while size(n, filler) < total:  # at most a few steps: the gap is under 20 bytes
        filler += 1
    if size(n, filler) != total:  # a length's varint grew a byte on the way: one float fewer
        n -= 1
        filler = 0
        while size(n, filler) < total:
            filler += 1
    if size(n, filler) != total:
        raise AssertionError(f"padding cannot make {total} bytes exactly")  # never, by the above
    head = _padding_head(n, filler)
    rng = np.random.default_rng([seed, total])
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(base)
            f.write(head)
            left = n
            while left:
                chunk = min(left, 8 * _MB)  # 32 MB of floats at a time
                f.write(rng.standard_normal(chunk, dtype=np.float32).tobytes())
                left -= chunk
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def default_path(seed: int = 0, size_mb: int | None = None) -> pathlib.Path:
    """Where the built model for `seed` (and `size_mb`, padded) lives:
    `$FCBENCH_CACHE_DIR` (or ~/.cache/fcbench)/models/."""
    root = os.environ.get("FCBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "fcbench")
    size = "" if size_mb is None else f"-{size_mb}MB"
    return pathlib.Path(root) / "models" / f"mobilenet_v2-seed{seed}{size}.onnx"


def ensure(path: str | os.PathLike[str] | None = None, seed: int = 0,
           size_mb: int | None = None) -> pathlib.Path:
    """Return a model file that exists: the default file for `seed` and `size_mb` (built if
    missing) or the user's `path`.

    A user's path is never built over; if it is missing this raises `FileNotFoundError`.
    """
    if path is not None:
        p = pathlib.Path(path)
        if not p.is_file():
            raise FileNotFoundError(
                f"model file {str(p)!r} does not exist (it is the user's file, so it is not built)"
            )
        return p
    p = default_path(seed, size_mb)
    if not p.is_file():
        build(p, seed=seed, size_mb=size_mb)
    return p


# --------------------------------------------------------------------------------------------- serve


class MobileNetV2(Model):
    """An image classifier served through onnxruntime: MobileNetV2 or any model with one 4-D float input
    [N,C,H,W] and one [N,K] output.

    `decode` takes a JPEG/PNG (RGB, shorter side resized to 256/224 of the input size with bilinear
    filtering, then centre-cropped to H x W, /255, ImageNet mean/std) or a JSON tensor of shape [C,H,W]
    or [1,C,H,W]; `infer` returns `{"top5": [{"class_id", "score"}, ...]}` (softmax scores, descending).
    """

    name = "mobilenet-v2"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        intra_op_threads: int = 1,
        providers: list[str] | None = None,
        gpu_mem_limit_bytes: int | None = None,
        load_mode: str = "file",
    ) -> None:
        import onnxruntime as ort

        if load_mode not in LOAD_MODES:
            raise ValueError(f"FCBENCH_ONNX_LOAD must be one of {', '.join(LOAD_MODES)}; got {load_mode!r}")
        self.path = pathlib.Path(path)
        self.load_mode = load_mode
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = 1
        if providers is None:
            available = ort.get_available_providers()
            providers = ["CPUExecutionProvider"]
            if "CUDAExecutionProvider" in available:
                providers.insert(0, "CUDAExecutionProvider")
        provider_args: list[Any] = []
        for p in providers:
            if p == "CUDAExecutionProvider" and gpu_mem_limit_bytes is not None:
                provider_args.append((p, {"gpu_mem_limit": str(int(gpu_mem_limit_bytes))}))
            else:
                provider_args.append(p)
        # "memory": the bytes first, as a loader that fetched them over the network has them
        source: str | bytes = str(self.path) if load_mode == "file" else self.path.read_bytes()
        self.session = ort.InferenceSession(source, opts, providers=provider_args)
        del source
        #: The providers onnxruntime actually uses (it may fall back to CPU).
        self.providers: list[str] = self.session.get_providers()

        ins = self.session.get_inputs()
        outs = self.session.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4 or ins[0].type not in _FLOAT_TYPES:
            got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in ins)
            raise ValueError(f"{self.path}: expected one 4-D float input [N,C,H,W]; the model has: {got}")
        if len(outs) != 1 or len(outs[0].shape) != 2:
            got = ", ".join(f"{o.name} {o.type} {o.shape}" for o in outs)
            raise ValueError(f"{self.path}: expected one [N,K] output; the model has: {got}")
        self.input_name: str = ins[0].name
        self.output_name: str = outs[0].name
        self._dtype = _FLOAT_TYPES[ins[0].type]
        batch_dim = ins[0].shape[0]
        #: Largest batch one session run accepts (None: any); a fixed batch of 1 means one run per input.
        self.max_batch: int | None = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        #: The [C,H,W] each decoded input has; symbolic dims fall back to 3, 224, 224.
        self.input_shape: tuple[int, int, int] = tuple(
            d if isinstance(d, int) and d > 0 else default for d, default in zip(ins[0].shape[1:], _DEFAULT_CHW)
        )  # type: ignore[assignment]

    # -- decode

    def decode(self, body: bytes, content_type: str) -> np.ndarray:
        """Turn a JPEG/PNG or JSON tensor body into a float32 [C,H,W] array; raise `BadInput` otherwise."""
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        c, h, w = self.input_shape
        expected = f"a JPEG/PNG image or a JSON tensor of shape [{c},{h},{w}]"
        if not body:
            raise BadInput(f"expected {expected}; got an empty body")
        is_image_bytes = body.startswith(_JPEG_MAGIC) or body.startswith(_PNG_MAGIC)
        octet = ctype == "application/octet-stream"
        if ctype in ("image/jpeg", "image/jpg", "image/png") or is_image_bytes:
            return self._decode_image(body)
        # FC event invocations carry raw bytes, often without a content type: sniff JSON too.
        if ctype in ("application/json", "text/json") or ctype.endswith("+json") \
                or body.lstrip()[:1] in (b"{", b"["):
            return self._decode_json(body)
        if octet:
            raise BadInput(f"expected {expected}; got application/octet-stream that is neither JPEG nor PNG")
        raise BadInput(f"expected {expected}; got content type {content_type!r}")

    def _decode_image(self, body: bytes) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError  # lazy: the server starts without importing PIL

        c, h, w = self.input_shape
        if c != 3:
            raise BadInput(
                f"this model takes {c} channels, so it cannot take an RGB image; "
                f"send a JSON tensor of shape {_dims(self.input_shape)}"
            )
        try:
            img = Image.open(io.BytesIO(body))
            if img.format not in ("JPEG", "PNG"):
                raise BadInput(f"expected a JPEG or PNG image; got {img.format or 'an unknown'} image")
            short = round(min(h, w) * _RESIZE_RATIO)
            if img.format == "JPEG":
                img.draft("RGB", (short, short))  # let libjpeg scale down big photos while decoding
            img = img.convert("RGB")
            iw, ih = img.size
            scale = short / min(iw, ih)
            nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
            img = img.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - w) // 2, (nh - h) // 2
            img = img.crop((left, top, left + w, top + h))
        except BadInput:
            raise
        except UnidentifiedImageError:
            raise BadInput("expected a JPEG/PNG image; the bytes are not an image PIL can read") from None
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise BadInput(f"expected a JPEG/PNG image; could not decode it ({e})") from None
        arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        arr = (arr - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)

    def _decode_json(self, body: bytes) -> np.ndarray:
        shape = list(self.input_shape)
        want = f"a JSON tensor of shape {_dims(shape)} or {_dims([1, *shape])}"
        forms = '{"input": [...]} or {"shape": [...], "data": "<base64 float32>"}'
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError) as e:
            raise BadInput(f"expected {want}; the body is not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise BadInput(f"expected {want} as {forms}; got a JSON {type(doc).__name__}")
        if "input" in doc:
            try:
                arr = np.asarray(doc["input"], dtype=np.float32)
            except (TypeError, ValueError):
                raise BadInput(f'expected {want}; "input" is not a rectangular nested list of numbers') from None
        elif "data" in doc and "shape" in doc:
            dims = doc["shape"]
            if not isinstance(dims, list) or not all(type(d) is int and d >= 0 for d in dims):
                raise BadInput(f'expected {want}; "shape" must be a list of non-negative integers, got {dims!r}')
            if not isinstance(doc["data"], str):
                raise BadInput(f'expected {want}; "data" must be a base64 string of little-endian float32')
            try:
                raw = base64.b64decode(doc["data"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise BadInput(f'expected {want}; "data" is not valid base64 ({e})') from None
            n = int(np.prod(dims, dtype=np.int64))
            if len(raw) != 4 * n:
                raise BadInput(f'"data" holds {len(raw)} bytes but shape {_dims(dims)} needs {4 * n} (float32)')
            arr = np.frombuffer(raw, dtype="<f4").reshape(dims).astype(np.float32)
        else:
            raise BadInput(f"expected {want} as {forms}; got keys {sorted(doc)}")
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if list(arr.shape) != shape:
            raise BadInput(f"expected {want}; got shape {_dims(arr.shape)}")
        if not np.isfinite(arr).all():
            raise BadInput("the input tensor holds NaN or infinite values")
        return np.ascontiguousarray(arr)

    # -- infer / encode

    def infer(self, inputs: list[Any]) -> list[dict[str, list[dict[str, Any]]]]:
        """Run one batch; return per input `{"top5": [{"class_id": int, "score": float}, ...]}`, best first."""
        if not inputs:
            return []
        batch = np.stack([np.asarray(x) for x in inputs]).astype(self._dtype, copy=False)
        if self.max_batch is None or len(batch) <= self.max_batch:
            logits = self.session.run([self.output_name], {self.input_name: batch})[0]
        else:
            parts = [batch[i : i + self.max_batch] for i in range(0, len(batch), self.max_batch)]
            logits = np.concatenate([self.session.run([self.output_name], {self.input_name: p})[0] for p in parts])
        z = np.asarray(logits, dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
        k = min(5, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            {"top5": [{"class_id": int(j), "score": float(row[j])} for j in idx]}
            for row, idx in zip(probs, top)
        ]

    def encode(self, output: Any) -> tuple[bytes, str]:
        """JSON-encode one output."""
        return json.dumps(output, separators=(",", ":")).encode(), "application/json"


def _dims(shape: Any) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


# --------------------------------------------------------------------------------------------- server hooks




def _size_mb(options: Mapping[str, str]) -> int | None:
    size = int_option(options, "FCBENCH_MODEL_SIZE_MB", None, 1, 2047)
    if size is not None and (options.get("FCBENCH_MODEL_PATH") or "").strip():
        raise ValueError("FCBENCH_MODEL_SIZE_MB pads the built-in model; it cannot go with "
                         "FCBENCH_MODEL_PATH (your own file has its own size): unset one")
    return size


def host_path(options: Mapping[str, str]) -> pathlib.Path:
    """The ONNX file `load(options)` reads for the built-in model (padded to
    ``FCBENCH_MODEL_SIZE_MB`` if set), built once if missing."""
    return ensure(None, seed=int_option(options, "FCBENCH_SEED", 0, 0) or 0,
                  size_mb=_size_mb(options))


def load_mode(options: Mapping[str, str]) -> str:
    """`FCBENCH_ONNX_LOAD` (file or memory; default file), checked."""
    mode = (options.get("FCBENCH_ONNX_LOAD") or "file").strip().lower()
    if mode not in LOAD_MODES:
        raise ValueError(f"FCBENCH_ONNX_LOAD must be one of {', '.join(LOAD_MODES)}; got {mode!r}")
    return mode


def prepare(options: Mapping[str, str]) -> None:
    """Build the default model file (padded to `FCBENCH_MODEL_SIZE_MB`) ahead of time (no-op when
    `FCBENCH_MODEL_PATH` names the user's file)."""
    size = _size_mb(options)
    load_mode(options)  # a bad value is said before any instance starts
    if not (options.get("FCBENCH_MODEL_PATH") or "").strip():
        ensure(None, seed=int_option(options, "FCBENCH_SEED", 0, 0) or 0, size_mb=size)


def load(options: Mapping[str, str]) -> MobileNetV2:
    """Load the model as the server does, from env-style options.

    `FCBENCH_MODEL_PATH` (a user's .onnx; else the default file, built if missing), `FCBENCH_SEED` (0),
    `FCBENCH_MODEL_SIZE_MB` (the built file padded to this many MB), `FCBENCH_ONNX_LOAD` (file or
    memory), `FCBENCH_INTRA_OP_THREADS` (1), `FCBENCH_GPU_MEM_LIMIT_MB` (optional, CUDA only),
    `FCBENCH_STARTUP_MS` (0: milliseconds added to the load, a known delay to find again, as
    the sleep model's).
    """
    user_path = (options.get("FCBENCH_MODEL_PATH") or "").strip() or None
    seed = int_option(options, "FCBENCH_SEED", 0, 0) or 0
    size = _size_mb(options)
    mode = load_mode(options)
    threads = int_option(options, "FCBENCH_INTRA_OP_THREADS", 1, 1) or 1
    mem_mb = int_option(options, "FCBENCH_GPU_MEM_LIMIT_MB", None, 1)
    delay_ms = int_option(options, "FCBENCH_STARTUP_MS", 0, 0) or 0
    path = ensure(user_path, seed=seed, size_mb=size)
    if delay_ms:
        import time

        time.sleep(delay_ms / 1000.0)
    return MobileNetV2(
        path,
        intra_op_threads=threads,
        gpu_mem_limit_bytes=None if mem_mb is None else mem_mb * 1024 * 1024,
        load_mode=mode,
    )
