"""Small statistics for summaries: Wilson score intervals and percentile blocks.

Key names: `wilson`, `percentiles`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["PERCENTILES", "percentiles", "wilson"]

#: Percentiles every latency block reports.
PERCENTILES = (50, 90, 99)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a proportion of `k` successes in `n` trials.

    Returns (lo, hi); (0.0, 1.0) when n is 0 (nothing is known).
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # Exact at the edges (floating point leaves 1e-17 crumbs).
    return (0.0 if k == 0 else lo), (1.0 if k == n else hi)


def percentiles(values: Any, qs: Sequence[float] = PERCENTILES) -> dict[str, float | int | None]:
    """``{"count", "mean", "p50", "p90", "p99", "max"}`` of a numeric array (NaN dropped).

    Percentiles use linear interpolation (numpy's default). Empty input gives None values.
    """
    import numpy as np

    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    out: dict[str, float | int | None] = {"count": int(arr.size)}
    if arr.size == 0:
        out.update({"mean": None, **{f"p{q:g}": None for q in qs}, "max": None})
        return out
    pct = np.percentile(arr, list(qs))
    out["mean"] = round(float(arr.mean()), 3)
    out.update({f"p{q:g}": round(float(v), 3) for q, v in zip(qs, pct)})
    out["max"] = round(float(arr.max()), 3)
    return out
