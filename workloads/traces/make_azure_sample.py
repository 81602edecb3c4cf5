"""Write azure-sample.csv: a small synthetic trace in the Azure Functions 2019 per-minute format.

Deterministic (seeded); run `python workloads/traces/make_azure_sample.py` to regenerate it.
tests/test_plans.py checks that the committed file matches this script's output.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
from pathlib import Path

MINUTES = 1440
OUT = Path(__file__).with_name("azure-sample.csv")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method; means here are small.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def rows() -> list[tuple[str, str, str, str, list[int]]]:
    """The sample's functions: (owner, app, function, trigger, per-minute counts)."""
    rng = random.Random(2019)
    # 1. A timer: one invocation every 5 minutes.
    timer = [1 if m % 5 == 0 else 0 for m in range(MINUTES)]
    # 2. An HTTP API with a daily curve: ~0.3/min at night, ~2.5/min at 14:00.
    http = [_poisson(rng, 0.3 + 2.2 * max(0.0, math.sin(math.pi * (m - 360) / 960)))
            for m in range(MINUTES)]
    # 3. A queue consumer: idle, then bursts of 20-60 that drain over a few minutes.
    queue = [0] * MINUTES
    for start in sorted(rng.sample(range(MINUTES - 5), 12)):
        size = rng.randint(20, 60)
        for k in range(4):
            queue[start + k] += size >> (2 * k)
    # 4. A rarely used function: a handful of invocations a day.
    rare = [0] * MINUTES
    for m in rng.sample(range(MINUTES), 9):
        rare[m] = 1
    return [
        (_hash("owner-a"), _hash("app-a1"), _hash("timer-every-5-min"), "timer", timer),
        (_hash("owner-a"), _hash("app-a1"), _hash("http-daily-curve"), "http", http),
        (_hash("owner-b"), _hash("app-b1"), _hash("queue-bursts"), "queue", queue),
        (_hash("owner-b"), _hash("app-b2"), _hash("rarely-used"), "http", rare),
    ]


def render() -> str:
    """The CSV text."""
    header = ["HashOwner", "HashApp", "HashFunction", "Trigger"] + [str(m + 1)
                                                                     for m in range(MINUTES)]
    lines = [",".join(header)]
    for owner, app, function, trigger, counts in rows():
        lines.append(",".join([owner, app, function, trigger] + [str(c) for c in counts]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.write_text(render(), encoding="utf-8", newline="")
    print(f"wrote {out}")
