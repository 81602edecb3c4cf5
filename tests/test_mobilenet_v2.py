"""Tests for the MobileNetV2 sample model: the built graph, decode, infer/encode and the server hooks."""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib

import numpy as np
import pytest

from fcbench.models import mobilenet_v2 as mv2
from fcbench.models.base import BadInput, Model

onnx = pytest.importorskip("onnx")
PIL_Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return mv2.build(tmp_path_factory.mktemp("mv2") / "m.onnx", seed=0)


@pytest.fixture(scope="module")
def model(model_file: pathlib.Path) -> mv2.MobileNetV2:
    return mv2.MobileNetV2(model_file, providers=["CPUExecutionProvider"])


def _image_bytes(fmt: str, size: tuple[int, int] = (320, 240), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    PIL_Image.fromarray(arr, "RGB").save(buf, format=fmt)
    return buf.getvalue()


def _rand_input(seed: int, shape: tuple[int, ...] = (3, 224, 224)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _tiny_model(path: pathlib.Path, batch: str | int = "batch") -> pathlib.Path:
    """A user's own model: input "pixels" [batch,3,32,32] -> conv -> relu -> pool -> Gemm -> "scores" [batch,10]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(8, np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fw"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixels", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["scores"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 10])],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


# ------------------------------------------------------------------------------------------- graph


def test_graph_is_valid_mobilenet_v2(model_file: pathlib.Path) -> None:
    m = onnx.load(str(model_file))
    onnx.checker.check_model(m)
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    assert 3_400_000 <= params <= 3_600_000, params
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 52  # stem + 17 blocks (16 with expand) x 2-3 convs + last 1x1
    assert ops.count("Add") == 10  # residual blocks
    assert m.opset_import[0].version == 17
    (inp,) = m.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "input" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 224, 224]
    assert m.graph.output[0].name == "logits"
    size = model_file.stat().st_size
    assert 12e6 < size < 16e6
    # Written atomically: no temp file left beside it.
    assert [p.name for p in model_file.parent.iterdir()] == [model_file.name]
    print(f"\nmobilenet_v2: {params} params, {size / 1e6:.2f} MB")


def test_same_seed_same_bytes_different_seed_different_outputs(tmp_path: pathlib.Path, model_file: pathlib.Path,
                                                                 model: mv2.MobileNetV2) -> None:
    again = mv2.build(tmp_path / "again.onnx", seed=0)
    assert again.read_bytes() == model_file.read_bytes()
    other = mv2.MobileNetV2(mv2.build(tmp_path / "other.onnx", seed=1), providers=["CPUExecutionProvider"])
    x = _rand_input(0)
    a = model.session.run(None, {"input": x[None]})[0]
    b = other.session.run(None, {"input": x[None]})[0]
    assert not np.allclose(a, b)


# ------------------------------------------------------------------------------------------- infer


def test_infer_batch_matches_singles_and_top5_is_sane(model: mv2.MobileNetV2) -> None:
    assert isinstance(model, Model) and model.name == "mobilenet-v2"
    xs = [_rand_input(i) for i in range(3)]
    batched = model.infer(xs)
    singles = [model.infer([x])[0] for x in xs]
    assert len(batched) == 3
    for b, s in zip(batched, singles):
        assert [e["class_id"] for e in b["top5"]] == [e["class_id"] for e in s["top5"]]
        assert np.allclose([e["score"] for e in b["top5"]], [e["score"] for e in s["top5"]], rtol=1e-4, atol=1e-6)
    for out in batched:
        top5 = out["top5"]
        ids = [e["class_id"] for e in top5]
        scores = [e["score"] for e in top5]
        assert len(ids) == 5 and len(set(ids)) == 5
        assert all(type(i) is int and 0 <= i < 1000 for i in ids)
        assert all(type(s) is float and np.isfinite(s) for s in scores)
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) <= 1.0 + 1e-9
        assert scores[0] > 10 / 1000  # not a near-uniform softmax
    body, ctype = model.encode(batched[0])
    assert ctype == "application/json" and json.loads(body) == batched[0]
    assert model.infer([]) == []


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                       ("JPEG", "application/octet-stream"), ("PNG", "application/octet-stream")])
def test_decode_images(model: mv2.MobileNetV2, fmt: str, ctype: str) -> None:
    x = model.decode(_image_bytes(fmt), ctype)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and np.isfinite(x).all()
    # Normalised with ImageNet statistics: pixel range [0,1] maps to about [-2.1, 2.7].
    assert -2.2 < x.min() < 0 < x.max() < 2.7


def test_decode_small_and_grey_images(model: mv2.MobileNetV2) -> None:
    buf = io.BytesIO()
    PIL_Image.new("L", (50, 90), 128).save(buf, format="PNG")
    x = model.decode(buf.getvalue(), "image/png; charset=binary")
    assert x.shape == (3, 224, 224)


def test_decode_json_forms(model: mv2.MobileNetV2) -> None:
    x = _rand_input(3)
    nested = model.decode(json.dumps({"input": x.tolist()}).encode(), "application/json")
    assert np.array_equal(nested, x)
    nested4 = model.decode(json.dumps({"input": x[None].tolist()}).encode(), "application/json; charset=utf-8")
    assert np.array_equal(nested4, x)
    b64 = {"shape": [1, 3, 224, 224], "data": base64.b64encode(x.astype("<f4").tobytes()).decode()}
    packed = model.decode(json.dumps(b64).encode(), "application/json")
    assert packed.shape == (3, 224, 224) and np.array_equal(packed, x)


@pytest.mark.parametrize(
    "body,ctype",
    [
        (b"\x00\x01garbage bytes", "application/octet-stream"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"),
        (b"not a png", "image/png"),
        (b'{"input": [1,2]}', "application/json"),
        (b'{"input": [[1,2],[3]]}', "application/json"),
        (b'{"input": ', "application/json"),
        (b"[1,2,3]", "application/json"),
        (b'{"shape": [3,224,224], "data": "AAAA"}', "application/json"),
        (b'{"shape": [3,224,224], "data": "!!notbase64"}', "application/json"),
        (b"", "image/jpeg"),
        (b"", "application/json"),
        (b"hello", "text/plain"),
    ],
)
def test_decode_bad_bodies(model: mv2.MobileNetV2, body: bytes, ctype: str) -> None:
    with pytest.raises(BadInput) as e:
        model.decode(body, ctype)
    assert len(str(e.value)) > 10


def test_decode_rejects_other_image_formats(model: mv2.MobileNetV2) -> None:
    buf = io.BytesIO()
    PIL_Image.new("RGB", (30, 30)).save(buf, format="GIF")
    with pytest.raises(BadInput, match="JPEG or PNG"):
        model.decode(buf.getvalue(), "image/png")


# ------------------------------------------------------------------------------------------- user model


@pytest.mark.parametrize("batch", ["batch", 1])
def test_user_model_loads_and_infers(tmp_path: pathlib.Path, batch: str | int) -> None:
    m = mv2.MobileNetV2(_tiny_model(tmp_path / "tiny.onnx", batch), providers=["CPUExecutionProvider"])
    assert m.input_name == "pixels" and m.output_name == "scores" and m.input_shape == (3, 32, 32)
    img = m.decode(_image_bytes("PNG"), "image/png")
    assert img.shape == (3, 32, 32)
    js = m.decode(json.dumps({"input": _rand_input(1, (3, 32, 32)).tolist()}).encode(), "application/json")
    with pytest.raises(BadInput, match=r"\[3,32,32\]"):
        m.decode(json.dumps({"input": _rand_input(1).tolist()}).encode(), "application/json")
    outs = m.infer([img, js, img])
    assert len(outs) == 3 and outs[0] == outs[2]
    for out in outs:
        ids = [e["class_id"] for e in out["top5"]]
        assert len(set(ids)) == 5 and all(0 <= i < 10 for i in ids)


def test_user_model_wrong_shape_is_refused(tmp_path: pathlib.Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "flat.onnx"))
    with pytest.raises(ValueError, match="4-D float input"):
        mv2.MobileNetV2(tmp_path / "flat.onnx", providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------------- hooks


def test_default_path_ensure_prepare_load(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCBENCH_CACHE_DIR", str(tmp_path / "cache"))
    p = mv2.default_path(2)
    assert p == tmp_path / "cache" / "models" / "mobilenet_v2-seed2.onnx"
    assert not p.exists()
    mv2.prepare({"FCBENCH_SEED": "2"})
    assert p.is_file()
    mtime = p.stat().st_mtime_ns
    assert mv2.ensure(seed=2) == p and p.stat().st_mtime_ns == mtime  # not rebuilt
    m = mv2.load({"FCBENCH_SEED": "2", "FCBENCH_INTRA_OP_THREADS": "1", "FCBENCH_GPU_MEM_LIMIT_MB": "512"})
    assert m.path == p and len(m.infer([_rand_input(0)])[0]["top5"]) == 5

    user = _tiny_model(tmp_path / "mine.onnx")
    mv2.prepare({"FCBENCH_MODEL_PATH": str(user)})  # does nothing for a user's file
    assert mv2.load({"FCBENCH_MODEL_PATH": str(user)}).input_shape == (3, 32, 32)

    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        mv2.load({"FCBENCH_MODEL_PATH": str(missing)})
    assert not missing.exists()
    with pytest.raises(ValueError, match="FCBENCH_SEED"):
        mv2.load({"FCBENCH_SEED": "zero"})
    assert sorted(os.listdir(p.parent)) == [p.name]
