"""Cold start of the same MobileNetV2 model on the docker runtime vs the process runtime, and image
pull throughput from the loopback registry (127.0.0.1:5000).

Run: python benchmarks/docker_vs_process.py [--repeats 7] [--pulls 3]
Needs a Docker daemon and the registry (`sudo bash scripts/ci-services.sh`). Cold starts of the
three functions are interleaved round by round, so machine noise hits all of them; the figures
are medians of client-side end-to-end latency of a forced-cold request (a 224x224 PNG).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness_utils import http, instances  # noqa: E402

from fcbench.harness.runtimes.docker import remove_image  # noqa: E402
from fcbench.harness.server import HarnessConfig, HarnessThread  # noqa: E402
from fcbench.images.build import build_image, default_tag, push_image  # noqa: E402
from fcbench.images.engine import connect  # noqa: E402
from fcbench.spec import function_spec_from_dict  # noqa: E402

REGISTRY = "127.0.0.1:5000"
PHASES = ("image_pull", "container_create", "container_start", "runtime_boot", "model_load")


def png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (224, 224), (120, 60, 200)).save(buf, format="PNG")
    return buf.getvalue()


def spec(name: str, runtime: str, image: str | None = None):
    doc = {"functionName": name, "harness": {"runtime": runtime, "idleTimeout": 3600},
           "environmentVariables": {"FCBENCH_MODEL": "mobilenet-v2"}}
    if image:
        doc["customContainerConfig"] = {"image": image}
    return function_spec_from_dict(doc)


def cold(url: str, name: str, body: bytes) -> tuple[float, dict]:
    http("POST", f"{url}/fcbench/v1/reclaim?function={name}")
    t0 = time.perf_counter()
    status, headers, out = http("POST", f"{url}/2023-03-30/functions/{name}/invocations", body,
                                {"Content-Type": "image/png"}, timeout=120)
    e2e = (time.perf_counter() - t0) * 1000.0
    assert status == 200 and headers["x-fcbench-cold"] == "1", (status, out[:300])
    inst = next(i for i in instances(url) if i["instance_id"] == headers["x-fc-instance-id"])
    return e2e, inst


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="cold starts per function")
    ap.add_argument("--pulls", type=int, default=3, help="cold starts that pull the image")
    args = ap.parse_args()

    client = connect()
    t0 = time.perf_counter()
    baked = build_image(client, "mobilenet-v2", tag=default_tag("mobilenet-v2", True))
    mounted = build_image(client, "mobilenet-v2", tag=default_tag("mobilenet-v2", False),
                          bake=False)
    print(f"images: {baked.tag} {baked.size_bytes / 1e6:.0f} MB / {baked.layers} layers, "
          f"{mounted.tag} {mounted.size_bytes / 1e6:.0f} MB "
          f"(builds took {time.perf_counter() - t0:.1f} s, cached layers reused)")
    body = png()
    fns = {"process": spec("mnv2-process", "process"),
           "docker-baked": spec("mnv2-docker", "docker", baked.tag),
           "docker-mount": spec("mnv2-mount", "docker", mounted.tag)}
    e2e: dict[str, list[float]] = {k: [] for k in fns}
    phases: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PHASES} for k in fns}
    with HarnessThread(list(fns.values()), HarnessConfig(port=0)) as h:
        for k, s in fns.items():  # warm-up: page cache, model file, first container of an image
            cold(h.url, s.name, body)
        for _ in range(args.repeats):
            for k, s in fns.items():
                ms, inst = cold(h.url, s.name, body)
                e2e[k].append(ms)
                for p in PHASES:
                    phases[k][p].append(float(inst["phases_ms"].get(p, 0.0)))

    print(f"\ncold start e2e, median of {args.repeats} (ms); phases are medians too")
    print(f"{'function':<14}{'e2e':>9}{'ratio':>8}" + "".join(f"{p:>17}" for p in PHASES[1:]))
    base = med(e2e["process"])
    for k in fns:
        print(f"{k:<14}{med(e2e[k]):>9.0f}{med(e2e[k]) / base:>8.2f}"
              + "".join(f"{med(phases[k][p]):>17.1f}" for p in PHASES[1:]))

    # pulls: a fresh build (no cached layers, so nothing but the base layer is shared with
    # another local image) is pushed once, then removed before each cold start
    started = time.time()
    fresh = build_image(client, "mobilenet-v2", tag="fcbench-bench/mobilenet-v2:pull",
                        nocache=True)
    ref, push_s = push_image(client, fresh.tag, REGISTRY)
    print(f"\npushed {ref} ({fresh.size_bytes / 1e6:.0f} MB unpacked) in {push_s:.1f} s")
    pulled: list[tuple[float, int, float]] = []
    try:
        with HarnessThread([spec("mnv2-pull", "docker", ref)], HarnessConfig(port=0)) as h:
            for _ in range(args.pulls):
                http("POST", f"{h.url}/fcbench/v1/reclaim")  # a running container pins it
                asyncio.run(remove_image(ref))
                ms, inst = cold(h.url, "mnv2-pull", body)
                info = inst["runtime_info"]
                pulled.append((inst["phases_ms"]["image_pull"], info["pull_bytes"], ms))
    finally:
        asyncio.run(remove_image(ref))
        asyncio.run(remove_image(fresh.tag))
        for image in client.images.list(filters={"dangling": True}):  # this run's build stage
            if image.attrs.get("Created", "") >= time.strftime("%Y-%m-%dT%H:%M:%S",
                                                               time.gmtime(started)):
                client.images.remove(image.id, force=True)
    for pull_ms, nbytes, ms in pulled:
        print(f"  pull {nbytes / 1e6:6.1f} MB in {pull_ms:6.0f} ms = "
              f"{nbytes / 1e6 / (pull_ms / 1000):6.1f} MB/s (cold e2e {ms:.0f} ms)")
    rate = med([b / 1e6 / (p / 1000) for p, b, _ in pulled])
    print(f"pull from {REGISTRY}: median {rate:.1f} MB/s of compressed layers "
          "(download + unpack; the base layer stays cached)")
    with_pull = med([m for *_, m in pulled])
    print(f"cold start with pull: median e2e {with_pull:.0f} ms = {with_pull / base:.2f}x process")


if __name__ == "__main__":
    main()
