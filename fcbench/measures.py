"""The one definition of every per-request figure fcbench reports, used by every command.

Key names: `is_cold`, `outcomes`, `OUTCOMES`, `p_cold`, `latency_from_intended`,
`block_bootstrap`, `wilson`, `percentiles`, `phase_stats`. The run summary, the sweep, the
simulator, the cold-start profile and the HTML report all call these, so a measured and a
simulated run can only disagree by behaviour, never by formula.

* **cold**: a request is cold when it was sent before the instance that served it was ready
  (``start_ts < ready_ts``, host clocks; on FC an NTP-synced client is good to milliseconds
  against seconds of start). Where the instance does not say when it was ready, the platform's
  own flag (the harness's ``x-fcbench-cold``, the simulator's admission) decides; failing that,
  the instance's "first request" flag.
* **outcome**: every request sent ends as exactly one of ``warm``, ``cold`` (answered, < 400),
  ``throttled`` (429) or ``failed`` (any other status, or no response); the shares add up to 1.
* **P(cold)** = cold / all requests sent (not / answered), with a Wilson interval (assumes
  independent requests) and a seeded block-bootstrap interval (one start makes several requests
  cold and bursts cluster them: use this one for claims about trends).
* **latency from intended** = end − intended send time, over *all* requests sent: a request with
  no answer counts as the time until the client gave up (a lower bound; the count is reported as
  ``censored``), so overload shows in the tail instead of vanishing from it.
* **time to first byte** (``ttfb_ms``) = send → the first byte of the response body (the whole
  response for an empty body), as the client timed it; it equals the latency for a body that
  arrives at once and is far less for a streamed one (SSE tokens). Reported like the latency:
  `percentiles` over successful requests.
* **busy time** of an instance, where the platform meters none (FC, a URL): the union of its
  requests' [start, end] (overlaps once; a request sent before its instance was ready counts
  from the ready time). The harness meters the same thing itself (`harness.meter`).

Tokens, of a streamed OpenAI-style answer (SSE chunks read by `fcbench.openai_stream`; a
*content event* is a chunk whose first choice carries non-empty ``text`` or ``delta.content``;
it *arrives* with the socket read that brought its terminating blank line):

* **TTFT** (``ttft_ms``) = send → the first content event.
* **output tokens** = ``usage.completion_tokens`` of the answer's (last) usage chunk when it
  sent one, else the number of content events. **Input tokens** = ``usage.prompt_tokens``.
* **TPOT** (``tpot_ms``) = (last content event − first content event) / (output tokens − 1);
  none for one output token or fewer.
* **ITL** = the gaps between consecutive content events; per request, their median and p99
  (``itl_p50_ms``, ``itl_p99_ms``, linear interpolation). A run's ITL figures are percentiles
  over requests of these per-request values (`token_summary`).
* **goodput** = the share of *all requests sent* that succeeded and met every objective given
  (``--slo ttft=MS,tpot=MS[,e2el=MS]``, each ``≤``; `parse_slo`); a request whose figure is
  unknown misses that objective, except TPOT of an answer of ≤ 1 output token, which meets it.
  ``good_rps`` = those requests / run duration.
* **output token throughput** = output tokens of the answered requests / run duration (first
  send → last end).

Where this differs from ``vllm bench serve`` (vllm/benchmarks/lib/endpoint_request_func.py,
serve.py `calculate_metrics`), and why: vLLM's first token is the first chunk with any
``choices``, even one of empty text (a chat answer's role-only first chunk), and its ITL gaps
count such chunks too; fcbench counts only chunks that carry text, so a server that sends the
role at once cannot fake a fast first token. vLLM pools every gap of every request into one ITL
distribution; fcbench keeps one row per request in requests.csv, so it keeps each request's
median and p99 gap and takes percentiles of those (a long answer weighs as much as a short one).
Without ``usage`` vLLM re-tokenizes the text; fcbench, holding no tokenizer of the server's
model, counts content events (equal for a server that streams one token per chunk). vLLM's
goodput is good requests per second over completed requests; fcbench's is a share of all
requests sent (a throttled or failed request is not good), with ``good_rps`` beside it, and its
``e2el`` objective is the whole latency (``latency_ms``, to the last byte) where vLLM's ends at
the last content chunk. TPOT's end is the last content event in both.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MIN_BLOCKS", "OUTCOMES", "PERCENTILES", "PhaseSample", "block_bootstrap",
           "busy_intervals", "busy_seconds", "interval_known", "is_cold",
           "latency_from_intended", "outcome", "outcome_shares", "outcomes", "p_cold",
           "percentiles", "phase_mode", "phase_stats", "spread", "wilson"]

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


OUTCOMES = ("warm", "cold", "throttled", "failed")
THROTTLED_STATUS = 429
#: a block-bootstrap interval needs at least this many blocks of requests; with fewer it is
#: "unknown" (too few requests to tell), and `p_cold` says so with ``cluster["known"]``
MIN_BLOCKS = 2


def is_cold(*, start_ts: float | None, ready_ts: float | None, platform_cold: bool | None,
            first: bool | None) -> bool | None:
    """The cold rule (module docstring); None when nothing tells."""
    if start_ts is not None and ready_ts is not None and start_ts > 0:
        return start_ts < ready_ts
    if platform_cold is not None:
        return platform_cold
    return first


def outcome(status: float, cold: Any) -> str:
    """One request's outcome (module docstring): `status` its HTTP status (0: no response),
    `cold` truthy when it was cold (None/NaN: unknown, taken as not cold)."""
    if status == THROTTLED_STATUS:
        return "throttled"
    if not 0 < status < 400:
        return "failed"
    return "cold" if cold is not None and cold == cold and cold > 0.5 else "warm"


_outcomes = np.frompyfunc(outcome, 2, 1)


def outcomes(status: Any, cold: Any) -> np.ndarray:
    """`outcome` of every request (an array of `OUTCOMES` strings) from status and cold columns."""
    status = np.asarray(status, dtype=float)
    cold = np.asarray(cold, dtype=float)
    if status.size == 0:
        return np.zeros(0, dtype=object)
    with np.errstate(invalid="ignore"):  # NaN (unknown) compares as False, as intended
        return np.asarray(_outcomes(status, cold), dtype=object)


def outcome_shares(kinds: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """``{outcome: {"count", "share"}}`` over all requests; the shares add up to 1."""
    n = int(kinds.size)
    return {k: {"count": int((kinds == k).sum()),
                "share": (float((kinds == k).sum()) / n) if n else None} for k in OUTCOMES}


def block_bootstrap(cold: np.ndarray, *, block: int, resamples: int = 1000, seed: int = 0,
                    z: float = 1.96) -> tuple[float, float]:
    """A 95 % (for z = 1.96) interval for the share of True in `cold` (in send order), from the
    circular block bootstrap: resampling blocks of `block` consecutive requests (wrapping at the
    end), so clustered cold requests stay together. Fewer than two blocks' worth of requests
    cannot be resampled: the interval is then (0, 1), "unknown" (`interval_known`)."""
    n = int(cold.size)
    block = max(1, int(block))
    if not interval_known(n, block):
        return 0.0, 1.0
    values = np.asarray(cold, dtype=float)
    wrapped = np.concatenate([values, values[:block - 1]]) if block > 1 else values
    sums = np.concatenate([[0.0], np.cumsum(wrapped)])
    block_sums = sums[block:block + n] - sums[:n]  # the block that starts at each request
    nblocks = math.ceil(n / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(resamples, nblocks))
    shares = block_sums[starts].sum(axis=1) / (nblocks * block)
    tail = (1.0 - math.erf(z / math.sqrt(2.0))) / 2.0 * 100.0
    lo, hi = np.percentile(shares, [tail, 100.0 - tail])
    return float(lo), float(hi)


def interval_known(n: int, block: int) -> bool:
    """Whether `n` requests in blocks of `block` can be resampled: `MIN_BLOCKS` blocks or more
    (else the block-bootstrap interval is unknown: too few requests to tell)."""
    return n > 0 and n >= MIN_BLOCKS * max(1, int(block))


def p_cold(cold_kinds: np.ndarray, instance_ids: Any = None, *, z: float = 1.96,
           seed: int = 0) -> dict[str, Any]:
    """P(cold) over all requests sent (`cold_kinds`: outcomes in send order), with both
    intervals. The bootstrap block is the largest number of cold requests one instance start
    made (at least ⌈n^(1/3)⌉), so no cluster is split more than once."""
    n = int(cold_kinds.size)
    cold = cold_kinds == "cold"
    k = int(cold.sum())
    lo, hi = wilson(k, n, z)
    block = max(1, math.ceil(n ** (1.0 / 3.0))) if n else 1
    if instance_ids is not None and k:
        ids = np.asarray(instance_ids, dtype=object)[cold]
        _, per_start = np.unique(ids.astype(str), return_counts=True)
        block = max(block, int(per_start.max()))
    blo, bhi = block_bootstrap(cold, block=block, seed=seed, z=z)
    return {"value": (k / n) if n else None, "cold": k, "n": n, "lo": lo, "hi": hi,
            "z": z, "method": "wilson",
            "cluster": {"lo": blo, "hi": bhi, "block": block, "method": "block-bootstrap",
                        "resamples": 1000, "seed": seed, "known": interval_known(n, block)}}


def latency_from_intended(intended_ts: Any, end_ts: Any, status: Any) -> dict[str, Any]:
    """Percentiles of end − intended (ms) over every request with an intended time; requests with
    no response (status 0) enter at their give-up time and are counted as `censored`."""
    intended = np.asarray(intended_ts, dtype=float)
    end = np.asarray(end_ts, dtype=float)
    status = np.asarray(status, dtype=float)
    have = ~np.isnan(intended) & ~np.isnan(end)
    values = (end[have] - intended[have]) * 1000.0
    block = percentiles(values)
    block["censored"] = int((status[have] == 0).sum())
    return block


def busy_intervals(instance_id: Any, start_ts: Any, end_ts: Any, *,
                   ready_ts: dict[str, float] | None = None) -> pd.DataFrame:
    """Each instance's busy periods: the union of its requests' [start, end] (touching and
    overlapping requests merge). `ready_ts` (instance → ready time) moves the start of a request
    sent before its instance was ready to that time. Rows without an instance or times are
    skipped. Returns columns ``instance_id, start, end``, by instance then start."""
    import pandas as pd

    ids = np.asarray(instance_id, dtype=object)
    s = np.asarray(start_ts, dtype=float)
    e = np.asarray(end_ts, dtype=float)
    keep = np.isfinite(s) & np.isfinite(e) & (ids != "") & pd.notna(ids)
    ids, s, e = ids[keep].astype(str), s[keep], e[keep]
    if ids.size == 0:
        return pd.DataFrame({"instance_id": pd.Series(dtype=object),
                             "start": pd.Series(dtype=float), "end": pd.Series(dtype=float)})
    codes, names = pd.factorize(ids)
    if ready_ts:
        ready = np.array([ready_ts.get(n, np.nan) for n in names], dtype=float)[codes]
        s = np.where(np.isfinite(ready), np.maximum(s, ready), s)
    e = np.maximum(e, s)
    order = np.lexsort((s, codes))
    codes, s, e = codes[order], s[order], e[order]
    # one running maximum over all instances: shifting each instance by its own band keeps
    # the groups apart without a Python loop
    t0 = s.min()
    band = (e.max() - t0) + 1.0
    cm = np.maximum.accumulate((e - t0) + codes * band)
    prev = np.concatenate([[-np.inf], cm[:-1]])
    first = np.flatnonzero((s - t0) + codes * band > prev)
    return pd.DataFrame({"instance_id": names[codes[first]].astype(object),
                         "start": s[first], "end": np.maximum.reduceat(e, first)})


def busy_seconds(intervals: Any) -> dict[str, float]:
    """Seconds each instance had a request in flight (overlaps once): the `busy_intervals`
    frame summed per instance. For a target that meters nothing (FC, a URL), this is the
    instances' active time as the requests saw it."""
    if len(intervals) == 0:
        return {}
    spans = (intervals["end"] - intervals["start"]).groupby(intervals["instance_id"]).sum()
    return {str(k): float(v) for k, v in spans.items()}


# -- cold-start phases -----------------------------------------------------------------------------

class PhaseSample(Protocol):
    """One kept cold start: its end-to-end and warm latency and its phases (ms; None unknown)."""

    e2e_ms: float
    warm_ms: float | None
    phases: Mapping[str, float | None]


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"median", "p25", "p75", "min", "max"}`` of a non-empty list (quartiles: Python's
    `statistics.quantiles`, exclusive method; one value is its own quartiles)."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "p25": q[0], "p75": q[2],
            "min": min(values), "max": max(values)}


def phase_mode(kept: Iterable[PhaseSample]) -> str:
    """``harness`` when the harness timed the starts (an ``unattributed`` phase), else
    ``headers`` (only the instance's own headers: a URL, FC)."""
    return "harness" if any("unattributed" in s.phases for s in kept) else "headers"


def phase_stats(kept: Sequence[PhaseSample], names: Iterable[str]) -> dict[str, dict[str, float]]:
    """`spread` per phase in `names`, then ``e2e``, ``warm`` and ``cold_penalty`` (e2e − warm),
    over the kept cold starts; a phase nobody measured is left out ("unknown"), never a zero."""
    stats: dict[str, dict[str, float]] = {}
    for name in [*names, "e2e", "warm", "cold_penalty"]:
        if name == "e2e":
            values = [s.e2e_ms for s in kept]
        elif name == "warm":
            values = [s.warm_ms for s in kept if s.warm_ms is not None]
        elif name == "cold_penalty":
            values = [s.e2e_ms - s.warm_ms for s in kept if s.warm_ms is not None]
        else:
            values = [v for s in kept if (v := s.phases.get(name)) is not None]
        if values:
            stats[name] = spread(values)
    return stats


# -- asynchronous invocation tasks -----------------------------------------------------------------
# A task is *submitted* when the platform accepted it (FC's first event, Enqueued), *started*
# when it was first sent to an instance (FC's startedTime) and *ended* at FC's endTime.
# queue_ms = started − submitted (the async queue, the scheduler's queue and any cold start it
# waited for); run_ms = ended − started (the run, retries included). A task is cold when its
# first run waited for an instance start (the harness says; FC does not).
__all__ += ["task_queue_ms", "task_run_ms", "task_summary"]


def task_queue_ms(submitted_ts: float | None, started_ts: float | None) -> float | None:
    """How long a task waited before it ran (ms); None when it never started."""
    if submitted_ts is None or started_ts is None:
        return None
    return round((started_ts - submitted_ts) * 1000.0, 3)


def task_run_ms(started_ts: float | None, end_ts: float | None) -> float | None:
    """How long a task ran (ms, retries included); None when it did not both start and end."""
    if started_ts is None or end_ts is None:
        return None
    return round((end_ts - started_ts) * 1000.0, 3)


def task_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The async tasks of a run: how many ended in each state (shares add up to 1), how many had
    not ended, P(cold) over all tasks, and percentiles of queue time (all, cold, warm) and of run
    time (succeeded tasks). `rows` carry ``status``, ``cold`` (True/False/None),
    ``instance_id``, ``queue_ms``, ``run_ms``."""
    from .fc import ASYNC_TASK_ENDED

    n = len(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1

    def ms(key: str, keep: Any = lambda r: True) -> dict[str, float | int | None]:
        return percentiles([r[key] for r in rows if r.get(key) is not None and keep(r)])

    return {
        "count": n,
        "statuses": {k: {"count": v, "share": v / n} for k, v in sorted(counts.items())},
        "unfinished": sum(v for k, v in counts.items() if k not in ASYNC_TASK_ENDED),
        "cold": sum(1 for r in rows if r.get("cold") is True),
        # P(cold) of the jobs, the one definition (`p_cold`): cold tasks / all tasks submitted
        "p_cold": p_cold(np.array(["cold" if r.get("cold") is True else "other" for r in rows],
                                  dtype=object), [r.get("instance_id") for r in rows]),
        "queue_ms": ms("queue_ms"),
        "queue_ms_cold": ms("queue_ms", lambda r: r.get("cold") is True),
        "queue_ms_warm": ms("queue_ms", lambda r: r.get("cold") is False),
        "run_ms": ms("run_ms", lambda r: r["status"] == "Succeeded"),
    }


# -- tokens (module docstring: "Tokens") -----------------------------------------------------------
__all__ += ["SLO_KEYS", "goodput", "itl_quantile", "output_tokens", "parse_slo", "token_summary",
            "token_timing"]

#: The objectives `parse_slo` knows (`vllm bench serve --goodput`'s names), each in ms.
SLO_KEYS = ("ttft", "tpot", "e2el")
_SLO_ALIASES = {"e2e": "e2el"}


def itl_quantile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile (0–1) of sorted, non-empty `ordered`, by linear interpolation (numpy's
    default), without numpy: one request's gaps are few and numpy's call costs more."""
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    if lo + 1 >= len(ordered):
        return ordered[-1]
    return ordered[lo] + (ordered[lo + 1] - ordered[lo]) * (pos - lo)


def output_tokens(usage_tokens: int | None, content_events: int) -> int:
    """Output tokens of one answer: ``usage.completion_tokens`` when sent, else content events."""
    return usage_tokens if usage_tokens is not None else content_events


def token_timing(sent: float, content_times: Sequence[float], n_out: int | None
                 ) -> dict[str, Any]:
    """TTFT, TPOT and the ITL median and p99 of one answer (ms; None where undefined), and its
    `n_out` output tokens, as `InvocationRecord` fields. `sent` and `content_times` (the content
    events' arrivals, in order) are on one clock, in seconds (`time.perf_counter()`)."""
    out: dict[str, Any] = {"ttft_ms": None, "tpot_ms": None, "itl_p50_ms": None,
                           "itl_p99_ms": None, "output_tokens": n_out}
    if not content_times:
        return out
    first, last = content_times[0], content_times[-1]
    out["ttft_ms"] = (first - sent) * 1000.0
    if n_out is not None and n_out > 1:
        out["tpot_ms"] = (last - first) * 1000.0 / (n_out - 1)
    if len(content_times) > 1:
        gaps = sorted((b - a) * 1000.0 for a, b in itertools.pairwise(content_times))
        out["itl_p50_ms"] = itl_quantile(gaps, 0.5)
        out["itl_p99_ms"] = itl_quantile(gaps, 0.99)
    return out


def parse_slo(text: str) -> dict[str, float]:
    """``ttft=500,tpot=50`` (ms; ``e2el`` too, ``e2e`` for short) as
    ``{"ttft_ms": 500.0, "tpot_ms": 50.0}``.

    Raises:
        ValueError: a sentence naming the part that is wrong and what to write instead.
    """
    import difflib

    example = "e.g. --slo ttft=500,tpot=50 (milliseconds; e2el=MS for the whole latency)"
    out: dict[str, float] = {}
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"the SLO is empty; give objectives, {example}")
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        key = _SLO_ALIASES.get(key, key)
        if not sep:
            raise ValueError(f"{part!r} has no '='; write NAME=MS, {example}")
        if key not in SLO_KEYS:
            near = difflib.get_close_matches(key, SLO_KEYS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ValueError(f"{key!r} is not an objective fcbench knows{hint}; use "
                             f"{', '.join(SLO_KEYS)}, {example}")
        raw = value.strip().lower().removesuffix("ms").strip()
        try:
            ms = float(raw)
        except ValueError:
            raise ValueError(f"{key}={value.strip()!r} is not a number of milliseconds; "
                             f"{example}") from None
        if not math.isfinite(ms) or ms <= 0:
            raise ValueError(f"{key}={value.strip()} must be a positive number of "
                             "milliseconds")
        if f"{key}_ms" in out:
            raise ValueError(f"{key} is given twice in the SLO")
        out[f"{key}_ms"] = ms
    return out


def goodput(slo: Mapping[str, float], *, status: Any, ttft_ms: Any, tpot_ms: Any,
            latency_ms: Any, output_tokens: Any, duration_s: float | None) -> dict[str, Any]:
    """Requests sent that succeeded and met every objective in `slo` (`parse_slo`): ``good``,
    ``n`` (all sent), ``share`` and ``good_rps`` (per second of `duration_s`), plus how many
    answered requests missed each objective (``missed``, each counted on its own). Arrays are
    per request; NaN is unknown."""
    status = np.asarray(status, dtype=float)
    n = int(status.size)
    answered = (status > 0) & (status < 400)
    good = answered.copy()
    missed: dict[str, int] = {}
    with np.errstate(invalid="ignore"):  # NaN compares False: unknown misses the objective
        # e2el is the whole latency, to the last byte (module docstring)
        cols = {"ttft_ms": np.asarray(ttft_ms, dtype=float),
                "tpot_ms": np.asarray(tpot_ms, dtype=float),
                "e2el_ms": np.asarray(latency_ms, dtype=float)}
        for key, limit in slo.items():
            values = cols[key]
            met = values <= limit
            if key == "tpot_ms":  # one output token or none: no TPOT, and none to miss
                met |= np.isnan(values) & (np.asarray(output_tokens, dtype=float) <= 1)
            missed[key] = int((answered & ~met).sum())  # each objective on its own
            good &= met
    k = int(good.sum())
    return {"good": k, "n": n, "share": (k / n) if n else None,
            "good_rps": round(k / duration_s, 3) if duration_s else None, "missed": missed}


def token_summary(frame: Any, kinds: np.ndarray, *, duration_s: float,
                  slo: Mapping[str, float] | None = None) -> dict[str, Any] | None:
    """A run's token figures (module docstring, "Tokens") from requests.csv columns in
    `frame`, with `kinds` the requests' `outcomes`: TTFT, TPOT and ITL (per-request median and
    p99 gaps) percentiles over answered requests, overall and cold / warm; input and output token
    totals; output tokens per second of `duration_s`; `goodput` against `slo` when given. None
    when no request has token data."""
    n = len(frame)

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=float) if n and name in frame else np.full(n, np.nan)

    out_tok, in_tok = col("output_tokens"), col("input_tokens")
    ttft = col("ttft_ms")
    has = ~np.isnan(out_tok) | ~np.isnan(ttft)
    if not has.any():
        return None
    answered = (kinds == "warm") | (kinds == "cold")
    block: dict[str, Any] = {"requests": int(has.sum()),
                             "streamed": int((~np.isnan(ttft)).sum())}
    for name, key in (("ttft_ms", "ttft_ms"), ("tpot_ms", "tpot_ms"),
                      ("itl_p50_ms", "itl_ms"), ("itl_p99_ms", "itl_p99_ms")):
        values = col(name)
        block[key] = percentiles(values[answered])
        block[f"{key}_cold"] = percentiles(values[kinds == "cold"])
        block[f"{key}_warm"] = percentiles(values[kinds == "warm"])
    total_out = float(np.nansum(out_tok[answered]))
    block["input_tokens"] = int(np.nansum(in_tok[answered]))
    block["output_tokens"] = int(total_out)
    block["output_tokens_per_s"] = round(total_out / duration_s, 3) if duration_s > 0 else None
    block["slo"] = dict(slo) if slo else None
    if slo:
        block["goodput"] = goodput(slo, status=col("status"), ttft_ms=ttft,
                                   tpot_ms=col("tpot_ms"), latency_ms=col("latency_ms"),
                                   output_tokens=out_tok, duration_s=duration_s)
    return block


# ------------------------------------------------------------------------------------------------
# Cold start vs size (`fcbench coldstart profile --model-size/--image-size`, coldstart/sizefit.py)

__all__ += ["implied_mb_s", "startup_phase"]


def implied_mb_s(ms_per_mb: float | None) -> float | None:
    """The bandwidth a phase's growth with size implies: MB/s = 1000 / (ms per MB); None when
    the phase does not grow with size (a slope ≤ 0 is no bandwidth)."""
    if ms_per_mb is None or not ms_per_mb > 0:
        return None
    return 1000.0 / ms_per_mb


def startup_phase(name: str) -> bool:
    """Whether phase `name` is part of an instance's start-up as the simulator draws it: every
    in-instance phase before the instance is ready (the request's serving, first_inference and
    transit, is not, and the platform phases the simulator adds itself are not), as
    `fcbench.sim.calibrate` takes a profile's start-ups."""
    return name not in ("first_inference", "transit", "gpu_prepare", "platform_image_pull",
                        "platform_extra", "e2e")
