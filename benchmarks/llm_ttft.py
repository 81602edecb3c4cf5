"""What fcbench adds to time to first token: the URL target's TTFT against a raw socket reader on
the same server's stream, and TTFT through the harness against straight to the server.

Run: python benchmarks/llm_ttft.py [--requests 1000] [--first-ms 0] [--gap-ms 1] [--tokens 8]

One OpenAI-compatible server with known token timing (tests/foreign/token_server.py: SSE over
``Transfer-Encoding: chunked``, the first token `first-ms` after the request, then one every
`gap-ms`) is started twice: on its own port, and as a harness function (``harness.command``, the
process runtime) hit through its HTTP trigger ``/http/llm/v1/completions``. Three readers, in
alternating blocks of 100 so machine noise hits each alike, every one on a keep-alive
connection, the clock started just before the request is sent:

* raw: a plain socket that sends the request bytes and notes ``perf_counter()`` after the
  ``recv`` holding the first event's blank line (no HTTP parser, no SSE parser: the floor);
* client, direct: `fcbench.targets.url.UrlTarget` to the server's port, its ``ttft_ms``;
* client, harness: the same target through the gateway (requests signed as fcbench signs).

Printed: p50 and p99 of each, the client's added TTFT (client − raw) and ratio, and the harness's
added TTFT (harness − direct) and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fcbench._net import free_port
from fcbench.targets.url import UrlTarget

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "foreign" / "token_server.py"
BLOCK = 100


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


class RawReader:
    """The floor: one keep-alive socket, the request's bytes, and the time of the ``recv`` that
    holds the first event's end (the token server's first event is its first token)."""

    def __init__(self, port: int, body: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.data = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     ).encode() + body

    def ttft_ms(self) -> float:
        sock = self.sock
        got = b""
        first = 0.0
        t0 = time.perf_counter()
        sock.sendall(self.data)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            got += chunk
            if not first:
                head = got.find(b"\r\n\r\n")
                if head >= 0 and got.find(b"\n\n", head + 4) >= 0:
                    first = time.perf_counter()
            if got.endswith(b"0\r\n\r\n"):  # the last chunk of the stream
                return (first - t0) * 1000.0


def start_direct() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "FC_SERVER_PORT": str(port)})
    assert "listening" in proc.stdout.readline()
    return proc, port


def start_harness(tmp: Path) -> tuple[subprocess.Popen, str]:
    spec = tmp / "llm.yaml"
    spec.write_text(json.dumps({
        "functionName": "llm", "timeout": 60, "instanceConcurrency": 1,
        "harness": {"runtime": "process", "command": [sys.executable, str(SERVER)],
                    "idleTimeout": 3600, "maxInstances": 1}}))
    proc = subprocess.Popen([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                             "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


def client_ttft(target: UrlTarget, body: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        rec = target.invoke(body, "application/json")
        if rec.status != 200 or rec.ttft_ms is None:
            raise SystemExit(f"{target.url}: status {rec.status}, {rec.error or 'no TTFT'}")
        out.append(rec.ttft_ms)
    return out


def line(label: str, values: list[float]) -> None:
    print(f"  {label:<17}: p50 {pct(values, 50):.3f} ms  p99 {pct(values, 99):.3f} ms")


def added(label: str, base: list[float], other: list[float]) -> None:
    print(f"  {label:<17}: p50 {pct(other, 50) - pct(base, 50):+.3f} ms "
          f"({pct(other, 50) / pct(base, 50):.2f}x)  p99 {pct(other, 99) - pct(base, 99):+.3f} "
          f"ms ({pct(other, 99) / pct(base, 99):.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000, help="per reader")
    ap.add_argument("--first-ms", type=float, default=0.0, help="T: the server's first token")
    ap.add_argument("--gap-ms", type=float, default=1.0, help="G: between tokens")
    ap.add_argument("--tokens", type=int, default=8)
    args = ap.parse_args()
    body = json.dumps({"model": "known-timing", "prompt": "one two three", "stream": True,
                       "max_tokens": args.tokens, "first_ms": args.first_ms,
                       "gap_ms": args.gap_ms, "stream_options": {"include_usage": True}}
                      ).encode()
    got: dict[str, list[float]] = {"raw": [], "direct": [], "harness": []}
    with tempfile.TemporaryDirectory() as tmp:
        direct_proc, port = start_direct()
        harness_proc, url = start_harness(Path(tmp))
        try:
            raw = RawReader(port, body)
            direct = UrlTarget(f"http://127.0.0.1:{port}/v1/completions")
            via = UrlTarget(url, function="llm", path="v1/completions")
            for _ in range(50):  # warm-up (and the harness's cold start)
                raw.ttft_ms()
                client_ttft(direct, body, 1)
                client_ttft(via, body, 1)
            for _ in range(max(1, args.requests // BLOCK)):
                got["raw"] += [raw.ttft_ms() for _ in range(BLOCK)]
                got["direct"] += client_ttft(direct, body, BLOCK)
                got["harness"] += client_ttft(via, body, BLOCK)
            direct.close()
            via.close()
        finally:
            for proc in (direct_proc, harness_proc):
                proc.terminate()
                proc.wait()
    print(f"time to first token, {len(got['raw'])} sequential requests per reader (keep-alive; "
          f"server: first token after {args.first_ms:g} ms, then {args.tokens - 1} more "
          f"{args.gap_ms:g} ms apart):")
    line("raw socket", got["raw"])
    line("client, direct", got["direct"])
    line("client, harness", got["harness"])
    print("added:")
    added("client vs raw", got["raw"], got["direct"])
    added("harness vs direct", got["direct"], got["harness"])


if __name__ == "__main__":
    main()
