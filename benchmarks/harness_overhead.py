"""What the harness adds: warm-path latency through the gateway vs straight to the instance, and
the process-runtime MobileNetV2 cold start vs a bare server process answering its first request.

Run: python benchmarks/harness_overhead.py [--requests 3000] [--cold 5]
Both sides of each comparison run in this script, interleaved, so machine noise hits both.
Requests to the harness are signed with its key (FC's ACS3-HMAC-SHA256, as every client must),
so "added" includes the client's signing and the harness's checks: as fcbench's own clients sign
(`fcbench.signing.Signer`: one signature per second and body, which the harness checks once per
keep-alive connection), and, on a line of its own, as the FC SDK signs (a fresh nonce and
signature per request, each checked in full).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fcbench._net import free_port
from fcbench.signing import AccessKey, Signer, harness_key, sign

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def start_harness(spec: Path, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                             "--port", "0", *extra], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


def signer(url: str, *, sdk: bool = False):  # noqa: ANN201
    """Headers that sign one request to the harness at `url` with its key, as fcbench's clients
    do, or (`sdk`) as the FC SDK does. A harness of a commit before signatures existed ignores
    them, so the client's cost is the same on both sides of an A/B run."""
    netloc = url.removeprefix("http://")
    key = harness_key(netloc) or AccessKey.generate()
    if sdk:
        return lambda method, path, body: sign(key, method, path, netloc, body)
    return Signer(key, netloc).headers


def timed_posts(conn: http.client.HTTPConnection, path: str, body: bytes, n: int,
                ctype: str = "application/json", signed=None) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        extra = signed("POST", path, body) if signed else {}
        conn.request("POST", path, body=body, headers={"Content-Type": ctype, **extra})
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t0) * 1000.0)
        assert resp.status == 200, resp.status
    return out


def warm_path(requests: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    spec = tmp / "noop.yaml"
    spec.write_text("functionName: noop\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "  FCBENCH_SLEEP_MS: '0'\ninstanceConcurrency: 1\n")
    harness, url = start_harness(spec)
    port = free_port()
    direct = subprocess.Popen([sys.executable, "-m", "fcbench.server"],
                              env={**os.environ, "FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "0",
                                   "FC_SERVER_PORT": str(port)},
                              stderr=subprocess.PIPE, text=True)
    direct.stderr.readline()  # "listening on"
    try:
        host, hport = url.removeprefix("http://").split(":")
        via = http.client.HTTPConnection(host, int(hport))
        raw = http.client.HTTPConnection("127.0.0.1", port)
        fc_path = "/2023-03-30/functions/noop/invocations"
        signed, sdk_signed = signer(url), signer(url, sdk=True)
        via_sdk = http.client.HTTPConnection(host, int(hport))
        timed_posts(via, fc_path, b"{}", 200, signed=signed)  # warm-up (and the cold start)
        timed_posts(via_sdk, fc_path, b"{}", 200, signed=sdk_signed)
        timed_posts(raw, "/invoke", b"{}", 200)
        a: list[float] = []
        b: list[float] = []
        c: list[float] = []
        block = 250
        body = b"{}"
        for _ in range(max(1, requests // block)):
            a += timed_posts(raw, "/invoke", body, block)
            b += timed_posts(via, fc_path, body, block, signed=signed)
            c += timed_posts(via_sdk, fc_path, body, block, signed=sdk_signed)
        print(f"warm path, trivial handler, {len(a)} sequential requests each (keep-alive):")
        print(f"  direct to instance : p50 {pct(a, 50):.3f} ms  p99 {pct(a, 99):.3f} ms")
        print(f"  through harness    : p50 {pct(b, 50):.3f} ms  p99 {pct(b, 99):.3f} ms")
        added_p99 = pct(b, 99) - pct(a, 99)
        verdict = "met" if added_p99 <= 1.0 else "MISSED"
        print(f"  added              : p50 {pct(b, 50) - pct(a, 50):.3f} ms  "
              f"p99 {added_p99:.3f} ms  (target: added p99 <= 1 ms: {verdict})")
        print(f"  ratio harness/direct: p50 {pct(b, 50) / pct(a, 50):.2f}x  "
              f"p99 {pct(b, 99) / pct(a, 99):.2f}x")
        print(f"  signed as the FC SDK signs (new signature per request): added p50 "
              f"{pct(c, 50) - pct(a, 50):.3f} ms  p99 {pct(c, 99) - pct(a, 99):.3f} ms")
    finally:
        direct.terminate()
        harness.terminate()
        direct.wait()
        harness.wait()


def jpeg() -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((224, 224, 3)) * 255).astype("uint8")) \
        .save(buf, format="JPEG")
    return buf.getvalue()


def bare_cold_start(body: bytes) -> float:
    """Spawn a server process and hit /invoke as soon as it accepts: e2e to the first 200."""
    port = free_port()
    env = {**os.environ, "FCBENCH_MODEL": "mobilenet-v2", "FC_SERVER_PORT": str(port)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fcbench.server"], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port)
                conn.request("POST", "/invoke", body=body, headers={"Content-Type": "image/jpeg"})
                resp = conn.getresponse()
                resp.read()
                break
            except (ConnectionRefusedError, http.client.RemoteDisconnected):
                time.sleep(0.001)
        assert resp.status == 200
        return (time.perf_counter() - t0) * 1000.0
    finally:
        proc.terminate()
        proc.wait()


def cold_starts(n: int) -> None:
    from fcbench.models import mobilenet_v2

    mobilenet_v2.ensure()  # build the seeded model once, outside any measurement
    body = jpeg()
    harness, url = start_harness(ROOT / "workloads/functions/mobilenet-v2.yaml",
                                 "--virtual-gpus", "1x16GB")
    host, hport = url.removeprefix("http://").split(":")
    signed = signer(url)
    bare: list[float] = []
    via: list[float] = []
    phases: list[dict] = []
    try:
        for i in range(n + 1):
            b = bare_cold_start(body)
            conn = http.client.HTTPConnection(host, int(hport))
            conn.request("POST", "/fcbench/v1/reclaim",
                         headers=signed("POST", "/fcbench/v1/reclaim", b""))
            conn.getresponse().read()
            t0 = time.perf_counter()
            path = "/2023-03-30/functions/mobilenet-v2/invocations"
            conn.request("POST", path, body=body,
                         headers={"Content-Type": "image/jpeg", **signed("POST", path, body)})
            resp = conn.getresponse()
            resp.read()
            v = (time.perf_counter() - t0) * 1000.0
            assert resp.status == 200 and resp.getheader("x-fcbench-cold") == "1"
            conn.request("GET", "/fcbench/v1/instances",
                         headers=signed("GET", "/fcbench/v1/instances", b""))
            inst = json.loads(conn.getresponse().read())["instances"][0]
            if i == 0:
                continue  # warm-up: page cache, first import of everything
            bare.append(b)
            via.append(v)
            phases.append(inst["phases_ms"])
    finally:
        harness.terminate()
        harness.wait()
    mb, mv = statistics.median(bare), statistics.median(via)
    print(f"\nMobileNetV2 cold start, process runtime, median of {n} (CPU):")
    print(f"  bare server process, spawn -> first 200 : {mb:.0f} ms  (all: "
          f"{', '.join(f'{x:.0f}' for x in bare)})")
    print(f"  through the harness, request -> 200     : {mv:.0f} ms  (all: "
          f"{', '.join(f'{x:.0f}' for x in via)})  (target <= 1000 ms)")
    print(f"  harness adds                            : {mv - mb:+.0f} ms  (target <= 50 ms); "
          f"ratio {mv / mb:.3f}x")
    keys = ["spawn", "runtime_boot", "model_load", "ready"]
    print("  instance phases (median ms): " + "  ".join(
        f"{k} {statistics.median(p.get(k, 0) for p in phases):.0f}" for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--cold", type=int, default=5)
    args = ap.parse_args()
    warm_path(args.requests)
    if args.cold > 0:
        cold_starts(args.cold)


if __name__ == "__main__":
    main()
