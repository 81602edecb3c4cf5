"""Batch aggregation: requests/s with 8 in flight on one MobileNetV2 instance, batched vs not.

Run: python benchmarks/batching_throughput.py [--seconds 8]
Both functions run in the same harness in this script, alternating, so noise hits both alike.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fcbench.harness.server import HarnessConfig, HarnessThread  # noqa: E402
from fcbench.models import mobilenet_v2  # noqa: E402
from fcbench.signing import AccessKey, sign  # noqa: E402
from fcbench.spec import function_spec_from_dict  # noqa: E402


def spec(name: str, batch: bool) -> object:
    env = {"FCBENCH_MODEL": "mobilenet-v2", "FCBENCH_BATCH": "1" if batch else "0",
           "FCBENCH_BATCH_MAX_WAIT_MS": "5"}
    return function_spec_from_dict({"functionName": name, "instanceConcurrency": 8,
                                    "environmentVariables": env})


def drive(url: str, body: bytes, in_flight: int, seconds: float,
          key: AccessKey) -> tuple[int, list[int]]:
    stop = time.monotonic() + seconds
    parts = urlsplit(url)
    done = [0] * in_flight
    sizes: list[int] = []

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            signed = sign(key, "POST", parts.path, parts.netloc, body)  # the harness's key
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "image/jpeg", **signed})
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
                sizes.append(int(resp.headers.get("x-fcbench-batch-size", "1")))
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(in_flight)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--in-flight", type=int, default=8)
    args = ap.parse_args()
    mobilenet_v2.ensure()
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((224, 224, 3)) * 255).astype("uint8")) \
        .save(buf, format="JPEG")
    body = buf.getvalue()
    rates: dict[str, list[float]] = {"batched": [], "unbatched": []}
    mean_batch: list[float] = []
    with HarnessThread([spec("batched", True), spec("unbatched", False)],
                       HarnessConfig(port=0)) as h:
        for name in ("batched", "unbatched"):  # cold starts + warm-up
            drive(f"{h.url}/2023-03-30/functions/{name}/invocations", body, 8, 1.0, h.key)
        for _ in range(2):
            for name in ("unbatched", "batched"):
                n, sizes = drive(f"{h.url}/2023-03-30/functions/{name}/invocations",
                                 body, args.in_flight, args.seconds / 2, h.key)
                rates[name].append(n / (args.seconds / 2))
                if name == "batched":
                    mean_batch.append(float(np.mean(sizes)))
    b, u = np.mean(rates["batched"]), np.mean(rates["unbatched"])
    print(f"MobileNetV2, {args.in_flight} in flight, one instance, CPU (1 intra-op thread):")
    print(f"  unbatched : {u:.1f} req/s")
    print(f"  batched   : {b:.1f} req/s  (mean batch size {np.mean(mean_batch):.1f})")
    print(f"  ratio batched/unbatched: {b / u:.2f}x")


if __name__ == "__main__":
    main()
