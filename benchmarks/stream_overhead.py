"""What the harness adds to a streamed response: when the first byte of a chunked answer arrives,
straight from the instance vs through the gateway, and the same for a buffered answer alongside.

Run: python benchmarks/stream_overhead.py [--requests 3000] [--chunks 2] [--interval-ms 2]

One instance process (tests/stream_instance.py: raw HTTP/1.1, SSE events as
``Transfer-Encoding: chunked``, the first at once, then one every `interval_ms`) is started
twice: on its own port, hit directly, and as a harness function (``harness.command``), hit
through the gateway's InvokeFunction route, signed as fcbench's clients sign. Both go through
the same client (`fcbench.httpclient.ConnectionPool`, keep-alive, the first-body-byte time the
load client records as ``ttfb_ms``), in alternating blocks, so machine noise hits both. Printed:
first byte and last byte of the stream, p50/p99, direct and through the harness, and what the
harness adds; then a buffered answer of the same bytes (``Content-Length``), sent back to back
and sent as far apart as the stream's events (every process idles between them as it does
during a stream, and waking from idle costs more than a request that follows at once). Issue
#20's targets: the streamed first byte's added p99 within the harness's p99 budget (+0.35 ms)
and within 1 ms of the direct first byte.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fcbench._net import free_port
from fcbench.http1 import request_head
from fcbench.httpclient import ConnectionPool
from fcbench.signing import AccessKey, Signer, harness_key

ROOT = Path(__file__).resolve().parents[1]
INSTANCE = ROOT / "tests" / "stream_instance.py"
#: the issue's targets: added first-byte p99 within the harness's buffered p99 budget (0.35 ms
#: when the issue was written) and within 1 ms of the direct first byte
BUDGET_MS = 0.35
FIRST_BYTE_TARGET_MS = 1.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


class Side:
    """One way to the instance: a keep-alive pool and the request to send."""

    def __init__(self, host: str, port: int, path: str, signer: Signer | None) -> None:
        self.pool = ConnectionPool(host, port, False)
        self.host = f"{host}:{port}"
        self.path = path
        self.signer = signer
        #: streamed requests whose answer came buffered (it reached the gateway whole)
        self.whole = 0

    def timed(self, body: bytes, n: int, *, streamed: bool, pause_s: float = 0.0
              ) -> tuple[list[float], list[float]]:
        """`n` requests, `pause_s` apart: (first-byte ms, last-byte ms) of each."""
        first, last = [], []
        for _ in range(n):
            if pause_s:
                time.sleep(pause_s)
            headers = [("Content-Type", "application/json")]
            if self.signer is not None:
                headers += self.signer.headers("POST", self.path, body).items()
            data = request_head("POST", self.path, self.host, headers, len(body)) + body
            t0 = time.perf_counter()
            # [:4]: the same on a tree whose answers carry no arrival marks (benchmarks/ab.py)
            status, got, payload, t_first = self.pool.exchange("POST", data, 30.0)[:4]
            t_end = time.perf_counter()
            assert status == 200, (status, payload[:200])
            if streamed and not any(k == "transfer-encoding" for k, _ in got):
                self.whole += 1  # arrived at the gateway whole: sent on buffered
            first.append((t_first - t0) * 1000.0)
            last.append((t_end - t0) * 1000.0)
        return first, last


def start_direct() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(INSTANCE)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "FC_SERVER_PORT": str(port)})
    assert "listening on" in proc.stdout.readline()
    return proc, port


def start_harness(tmp: Path) -> tuple[subprocess.Popen, str]:
    spec = tmp / "stream.yaml"
    spec.write_text(json.dumps({
        "functionName": "stream", "timeout": 60, "instanceConcurrency": 1,
        "harness": {"runtime": "process", "command": [sys.executable, str(INSTANCE)],
                    "idleTimeout": 3600, "maxInstances": 1}}))
    proc = subprocess.Popen([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                             "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


def line(label: str, direct: list[float], via: list[float]) -> tuple[float, float]:
    added50, added99 = pct(via, 50) - pct(direct, 50), pct(via, 99) - pct(direct, 99)
    print(f"  {label:<22}: direct p50 {pct(direct, 50):.3f} p99 {pct(direct, 99):.3f} ms | "
          f"harness p50 {pct(via, 50):.3f} p99 {pct(via, 99):.3f} ms | "
          f"added p50 {added50:.3f} p99 {added99:.3f} ms")
    return added50, added99


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000, help="per side and kind")
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--interval-ms", type=float, default=2.0)
    ap.add_argument("--together", action="store_true",
                    help="the instance sends its head and first event in one write (default: "
                         "the head on its own first, as aiohttp servers do)")
    args = ap.parse_args()
    stream = json.dumps({"chunks": args.chunks, "interval_ms": args.interval_ms,
                         "together": args.together}).encode()
    plain = json.dumps({"chunks": args.chunks, "plain": True}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        direct_proc, port = start_direct()
        harness_proc, url = start_harness(Path(tmp))
        try:
            netloc = url.removeprefix("http://")
            host, hport = netloc.split(":")
            key = harness_key(netloc) or AccessKey.generate()
            raw = Side("127.0.0.1", port, "/invoke", None)
            via = Side(host, int(hport), "/2023-03-30/functions/stream/invocations",
                       Signer(key, netloc))
            for side in (raw, via):  # warm-up (and the harness's cold start)
                side.timed(stream, 200, streamed=True)
                side.timed(plain, 200, streamed=False)
            got: dict[str, list[float]] = {f"{side}_{k}": [] for side in ("raw", "via") for k in (
                "first", "last", "plain", "paced")}
            # a stream leaves every process idle for its intervals; waking from idle costs more
            # than a request sent back to back, so the buffered answer is also timed paced so
            pause = (args.chunks - 1) * args.interval_ms / 1000.0
            block = 250
            for _ in range(max(1, args.requests // block)):
                for name, side in (("raw", raw), ("via", via)):
                    first, last = side.timed(stream, block, streamed=True)
                    got[f"{name}_first"] += first
                    got[f"{name}_last"] += last
                    got[f"{name}_plain"] += side.timed(plain, block, streamed=False)[1]
                    got[f"{name}_paced"] += side.timed(plain, block, streamed=False,
                                                       pause_s=pause)[1]
        finally:
            for proc in (direct_proc, harness_proc):
                proc.terminate()
                proc.wait()
    n = len(got["raw_first"])
    if via.whole:
        print(f"({via.whole} streamed answers reached the gateway whole and went on buffered)")
    how = "with the head in one write" if args.together else "the head sent on its own first"
    print(f"streamed answer, {args.chunks} events {args.interval_ms:g} ms apart ({how}), {n} "
          "sequential requests per side (keep-alive):")
    _, first99 = line("first byte", got["raw_first"], got["via_first"])
    line("last byte", got["raw_last"], got["via_last"])
    print("buffered answer, the same bytes with a Content-Length:")
    line("back to back", got["raw_plain"], got["via_plain"])
    _, paced99 = line(f"{pause * 1000:g} ms apart", got["raw_paced"], got["via_paced"])
    print(f"streamed first byte, added p99 {first99:.3f} ms: within {BUDGET_MS} ms (the harness's "
          f"p99 budget): {'met' if first99 <= BUDGET_MS else 'MISSED'}; within "
          f"{FIRST_BYTE_TARGET_MS:g} ms of direct: "
          f"{'met' if first99 <= FIRST_BYTE_TARGET_MS else 'MISSED'}; against a buffered "
          f"answer paced alike (added p99 {paced99:.3f} ms here): {first99 - paced99:+.3f} ms")


if __name__ == "__main__":
    main()
