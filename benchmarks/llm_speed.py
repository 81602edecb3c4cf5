"""The `llm` sample's speed per size: decode tokens/s and prefill ms per token in-process, the
instance's model-load time on a cold start, and TTFT / TPOT as a streaming client sees them.

    python benchmarks/llm_speed.py [--sizes tiny,small,base] [--prompt 256] [--tokens 128]
    python benchmarks/llm_speed.py --sizes tiny --together 3   # instances sharing the cores

Each size is built once into the cache first (not timed). In-process: a warm-up generation,
then `--repeats` generations of `--tokens` tokens after a `--prompt`-token prompt (greedy,
ignore_eos); decode tokens/s = (tokens − 1) / (last token − first token), prefill ms per token
= time to the first token / prompt tokens. Cold start: `--starts` fresh
``python -m fcbench.server`` processes, each timed from spawn to listening, with the server's own
``x-fcbench-import-ms`` / ``x-fcbench-model-load-ms``; the first streamed request of each gives
TTFT and TPOT at the client (http.client, event arrival times). Medians are printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fcbench.models import llm


def in_process(size: str, prompt: int, tokens: int, repeats: int) -> tuple[float, float]:
    """(decode tokens/s, prefill ms per token), medians."""
    model = llm.load({"FCBENCH_LLM_SIZE": size})
    body = json.dumps({"prompt": [i % 256 for i in range(prompt)], "max_tokens": tokens,
                       "temperature": 0, "ignore_eos": True}).encode()
    decode, prefill = [], []
    for i in range(repeats + 1):
        gen = model.generate(model.parse(body, kind="completion"))
        t0 = time.perf_counter()
        next(gen)
        t1 = time.perf_counter()
        n = sum(1 for _ in gen)
        t2 = time.perf_counter()
        if i:  # the first is a warm-up
            decode.append(n / (t2 - t1))
            prefill.append((t1 - t0) * 1000.0 / prompt)
    return statistics.median(decode), statistics.median(prefill)


def cold_start(size: str, prompt: int, tokens: int,
               threads: int | None = None) -> dict[str, float]:
    """One fresh server: spawn → listening, its import and model-load ms, client TTFT/TPOT."""
    env = {**os.environ, "FCBENCH_MODEL": "llm", "FCBENCH_LLM_SIZE": size, "FC_SERVER_PORT": "0",
           **({"FCBENCH_LLM_THREADS": str(threads)} if threads else {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fcbench.server"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        ready_ms = (time.perf_counter() - t0) * 1000.0
        host, port = line.rsplit(" ", 1)[1].strip().rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        body = json.dumps({"prompt": [i % 256 for i in range(prompt)], "max_tokens": tokens,
                           "ignore_eos": True, "stream": True})
        sent = time.perf_counter()
        conn.request("POST", "/v1/completions", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        times, buf = [], b""
        while data := resp.read1(1 << 16):
            now = time.perf_counter()
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if event.startswith(b"data: {") and json.loads(event[6:])["choices"][0]["text"]:
                    times.append(now)
        headers = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
    finally:
        proc.terminate()
        proc.wait(30)
    return {"ready_ms": ready_ms, "import_ms": float(headers["x-fcbench-import-ms"]),
            "load_ms": float(headers["x-fcbench-model-load-ms"]),
            "ttft_ms": (times[0] - sent) * 1000.0,
            "tpot_ms": (times[-1] - times[0]) * 1000.0 / (len(times) - 1)}


def together(size: str, prompt: int, tokens: int, n: int) -> None:
    """`n` servers started and streaming at once (instances sharing the host's cores, as in the
    harness), with one BLAS thread each (the default) against as many as the machine has."""
    from concurrent.futures import ThreadPoolExecutor

    cpus = os.cpu_count() or 1
    tpot = {}
    for threads in (1, cpus, 1, cpus):  # alternated: the machine's drift hits both
        with ThreadPoolExecutor(n) as pool:
            runs = list(pool.map(lambda _: cold_start(size, prompt, tokens, threads), range(n)))
        tpot.setdefault(threads, []).extend(r["tpot_ms"] for r in runs)
    one, many = statistics.median(tpot[1]), statistics.median(tpot[cpus])
    print(f"{size}, {n} at once: TPOT median {one:.2f} ms with 1 BLAS thread each, {many:.2f} ms "
          f"with {cpus} ({many / one:.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small,base")
    ap.add_argument("--prompt", type=int, default=256, help="prompt tokens")
    ap.add_argument("--tokens", type=int, default=128, help="generated tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--starts", type=int, default=3, help="cold starts per size")
    ap.add_argument("--together", type=int, default=0, metavar="N",
                    help="instead: N servers at once, 1 BLAS thread each vs one per CPU")
    args = ap.parse_args()
    if args.together:
        for size in args.sizes.split(","):
            llm.prepare({"FCBENCH_LLM_SIZE": size})
            together(size, args.prompt, args.tokens, args.together)
        return
    print(f"prompt {args.prompt} tokens, {args.tokens} generated, {os.cpu_count()} CPUs")
    for size in args.sizes.split(","):
        t0 = time.perf_counter()
        llm.prepare({"FCBENCH_LLM_SIZE": size})
        built = time.perf_counter() - t0
        config = llm.SIZES[size]
        decode, prefill = in_process(size, args.prompt, args.tokens, args.repeats)
        starts = [cold_start(size, args.prompt, args.tokens) for _ in range(args.starts)]
        med = {k: statistics.median(s[k] for s in starts) for k in starts[0]}
        print(f"{size}: {config.num_parameters / 1e6:.1f} M parameters "
              f"(cache ready in {built:.1f} s)\n"
              f"  in-process: decode {decode:.0f} tokens/s, prefill {prefill:.3f} ms/token\n"
              f"  cold start: spawn -> listening {med['ready_ms']:.0f} ms (imports "
              f"{med['import_ms']:.0f} ms, model load {med['load_ms']:.0f} ms)\n"
              f"  client: TTFT {med['ttft_ms']:.1f} ms, TPOT {med['tpot_ms']:.2f} ms "
              f"({1000 / med['tpot_ms']:.0f} tokens/s)")


if __name__ == "__main__":
    main()
