"""Batch aggregation in the in-instance server: fewer model calls, every answer its own."""

from __future__ import annotations

import asyncio
import base64
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.server.batching import Batcher
from fcbench.spec import function_spec_from_dict
from harness_utils import http, instances


def test_batcher_groups_concurrent_items_and_keeps_order():
    sizes: list[int] = []

    async def run(items):
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        return [x * 10 for x in items]

    async def main():
        b = Batcher(run, max_size=4, max_wait_s=0.05)
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
        return b, results

    b, results = asyncio.run(main())
    assert [r.output for r in results] == [i * 10 for i in range(10)]
    assert sizes == [4, 4, 2] and b.calls == 3
    assert [r.batch_size for r in results] == [4] * 8 + [2] * 2


def test_batcher_lone_item_waits_at_most_max_wait_and_errors_reach_every_rider():
    async def boom(items):
        raise ValueError("model broke")

    async def main():
        b = Batcher(boom, max_size=8, max_wait_s=0.01)
        return await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)

    out = asyncio.run(main())
    assert all(isinstance(e, ValueError) for e in out)
    with pytest.raises(ValueError, match="max_size"):
        Batcher(boom, max_size=0, max_wait_s=0)


def _tensor_body(seed: int) -> tuple[np.ndarray, bytes]:
    x = np.random.default_rng(seed).standard_normal((3, 224, 224)).astype("<f4")
    return x, json.dumps({"shape": [3, 224, 224],
                          "data": base64.b64encode(x.tobytes()).decode()}).encode()


@pytest.mark.slow
def test_eight_concurrent_requests_share_fewer_model_calls_with_correct_answers(tmp_path,
                                                                                monkeypatch):
    pytest.importorskip("onnxruntime")
    from fcbench.models import mobilenet_v2

    monkeypatch.setenv("FCBENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = mobilenet_v2.ensure()
    spec = function_spec_from_dict({
        "functionName": "mnv2", "instanceConcurrency": 8,
        "environmentVariables": {"FCBENCH_MODEL": "mobilenet-v2", "FCBENCH_MODEL_PATH": str(path),
                                 "FCBENCH_BATCH": "1", "FCBENCH_BATCH_MAX_WAIT_MS": "50"},
    })
    bodies = [_tensor_body(seed) for seed in range(8)]
    reference = mobilenet_v2.MobileNetV2(path)
    expected = [reference.infer([x])[0] for x, _ in bodies]  # unbatched, one by one
    url_path = "/2023-03-30/functions/mnv2/invocations"
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        http("POST", h.url + url_path, bodies[0][1])  # cold start outside the measured batch
        inst = instances(h.url)[0]
        before = json.loads(http("GET", inst["url"] + "/")[2])["model_calls"]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda b: http("POST", h.url + url_path, b[1]), bodies))
        after = json.loads(http("GET", inst["url"] + "/")[2])["model_calls"]
    assert all(status == 200 for status, _, _ in results)
    assert len({hdr["x-fc-instance-id"] for _, hdr, _ in results}) == 1
    calls = after - before
    assert 1 <= calls < 8, f"{calls} model calls for 8 concurrent requests"
    assert max(int(hdr["x-fcbench-batch-size"]) for _, hdr, _ in results) > 1
    for (_, _, body), want in zip(results, expected):
        got = json.loads(body)["top5"]
        assert [g["class_id"] for g in got] == [w["class_id"] for w in want["top5"]]
        assert np.allclose([g["score"] for g in got], [w["score"] for w in want["top5"]],
                           atol=1e-5)
