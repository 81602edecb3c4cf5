"""Arrival plans and Azure-format traces: distributions, exact replay, sharding, laziness."""

from __future__ import annotations

import bisect
import collections.abc
import gzip
import inspect
import itertools
import math
import random
import runpy
from collections import Counter
from pathlib import Path

import pytest

from fcbench.errors import UsageError
from fcbench.load import plans

from plan_utils import burst, closed, constant, diurnal, poisson, trace, uniform
from fcbench.load.trace import TraceFormatError, minute_counts, read_function

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "workloads" / "traces" / "azure-sample.csv"
Z999 = 3.2905  # two-sided 99.9% normal quantile


def _within_poisson(count: int, mean: float) -> bool:
    return abs(count - mean) <= Z999 * math.sqrt(mean) + 1


def _ks(sample: list[float], cdf) -> float:
    """Kolmogorov-Smirnov statistic D of `sample` against `cdf`."""
    xs = sorted(sample)
    n = len(xs)
    return max(max((i + 1) / n - cdf(x), cdf(x) - i / n) for i, x in enumerate(xs))


def _ks_ok(sample: list[float], cdf) -> bool:
    # Asymptotic critical value at alpha = 0.001: 1.949 / sqrt(n).
    return _ks(sample, cdf) * math.sqrt(len(sample)) < 1.949


def _gaps(offsets: list[float]) -> list[float]:
    return [b - a for a, b in zip([0.0] + offsets, offsets)]


def _write_trace(path: Path, rows: list[list[object]], minutes: int = 3) -> Path:
    header = ["HashOwner", "HashApp", "HashFunction", "Trigger"] + [str(m + 1)
                                                                     for m in range(minutes)]
    path.write_text("\n".join(",".join(map(str, r)) for r in [header] + rows) + "\n")
    return path


def _all_plans() -> list[plans.Plan]:
    return [
        poisson(5, seed=3),
        constant(4),
        uniform(5, seed=3),
        burst(10, 2, 3, rate_off=1, seed=3),
        burst(10, 2, 3, process="constant"),
        diurnal([0, 8, 3], 30, seed=3),
        trace(SAMPLE, "top", compression=600, seed=3),
    ]


# -- distributions -----------------------------------------------------------------------------

def test_poisson_count_and_exponential_gaps() -> None:
    plan = poisson(10, seed=7)
    offsets = list(plan.offsets(2000))
    assert plan.expected_count(2000) == 20000
    assert _within_poisson(len(offsets), 20000)
    assert _ks_ok(_gaps(offsets), lambda x: 1 - math.exp(-10 * x))
    # ...and the test can fail: the same gaps are not uniform on [0, 0.2].
    assert not _ks_ok(_gaps(offsets), lambda x: min(1.0, x / 0.2))


def test_poisson_is_deterministic_per_seed() -> None:
    a = list(poisson(3, seed=1).offsets(100))
    assert a == list(poisson(3, seed=1).offsets(100))
    assert a != list(poisson(3, seed=2).offsets(100))


def test_uniform_gaps_are_uniform_on_zero_to_two_over_rate() -> None:
    offsets = list(uniform(4, seed=2).offsets(3000))
    gaps = _gaps(offsets)
    assert _within_poisson(len(offsets), 12000) or abs(len(offsets) - 12000) < 400
    assert 0 <= min(gaps) and max(gaps) <= 0.5
    assert _ks_ok(gaps, lambda x: min(1.0, x / 0.5))


def test_constant_spacing() -> None:
    offsets = list(constant(4).offsets(10))
    assert len(offsets) == 40 == constant(4).expected_count(10)
    assert offsets[0] == 0.0
    assert all(abs(g - 0.25) < 1e-9 for g in _gaps(offsets)[1:])
    assert len(list(constant(3).offsets(1.0))) == 3  # 0, 1/3, 2/3 (1.0 is not < 1.0)


def test_burst_respects_on_and_off_windows() -> None:
    plan = burst(20, on_s=2, off_s=3, seed=5)
    offsets = list(plan.offsets(500))
    assert offsets and all((t % 5) < 2 for t in offsets)
    assert _within_poisson(len(offsets), plan.expected_count(500))
    assert plan.expected_count(500) == 100 * 40

    with_off = burst(20, on_s=2, off_s=3, rate_off=2, seed=5)
    off = [t for t in with_off.offsets(1000) if t % 5 >= 2]
    assert _within_poisson(len(off), 200 * 3 * 2)

    even = list(burst(4, on_s=1, off_s=1, process="constant").offsets(10))
    assert even == pytest.approx([c * 2 + i / 4 for c in range(5) for i in range(4)])


def test_diurnal_counts_per_segment_follow_the_curve() -> None:
    rates = [0.0, 10.0, 20.0, 5.0]
    plan = diurnal(rates, period_s=40, seed=11)  # segments of 10 s
    periods = 60
    per_segment = Counter(int((t % 40) // 10) for t in plan.offsets(40 * periods))
    for i in range(4):
        mean = periods * 10 * (rates[i] + rates[(i + 1) % 4]) / 2
        assert _within_poisson(per_segment[i], mean), (i, per_segment[i], mean)
    # The rate ramps linearly from 0 up: the first half of segment 0 gets a quarter of its share.
    first_half = sum(1 for t in plan.offsets(40 * periods) if (t % 40) < 5)
    assert _within_poisson(first_half, periods * 5 * 2.5)


def test_diurnal_expected_count_is_the_integral_of_the_rate() -> None:
    plan = diurnal([1, 4, 0, 2, 6], period_s=50)
    for duration in (7.3, 50, 133.7):
        steps = 20000
        numeric = sum(plan.rate_at((k + 0.5) * duration / steps) for k in range(steps))
        assert plan.expected_count(duration) == pytest.approx(numeric * duration / steps,
                                                              rel=1e-3)


# -- traces ------------------------------------------------------------------------------------

def test_trace_reproduces_per_minute_counts_exactly() -> None:
    counts = minute_counts(SAMPLE, "index:2")
    plan = trace(SAMPLE, "index:2", compression=60, seed=9)
    offsets = list(plan.offsets(plan.span_s))
    assert plan.span_s == 1440.0
    edges = [plan.minute_start(j) for j in range(1441)]
    got = Counter(bisect.bisect_right(edges, t) - 1 for t in offsets)
    assert [got[m] for m in range(1440)] == counts
    assert len(offsets) == sum(counts) == plan.expected_count(plan.span_s)
    assert offsets == sorted(offsets)


def test_trace_start_minute_and_cut_off() -> None:
    counts = minute_counts(SAMPLE, "top")
    plan = trace(SAMPLE, "top", compression=60, start_minute=360)
    offsets = list(plan.offsets(60))
    assert len(offsets) == sum(counts[360:420])
    half = list(plan.offsets(30.5))
    assert sum(counts[360:390]) <= len(half) <= sum(counts[360:391])
    assert all(t < 30.5 for t in half)
    # Past the end of the trace there is nothing more: it does not wrap around.
    assert len(list(plan.offsets(10_000))) == sum(counts[360:])


def test_trace_selectors() -> None:
    top = read_function(SAMPLE, "top")
    rows = [read_function(SAMPLE, f"index:{i}") for i in range(4)]
    assert top.total == max(r.total for r in rows)
    assert read_function(SAMPLE, rows[2].function) == rows[2]
    assert len(rows[0].counts) == 1440 and rows[0].trigger == "timer"


def test_committed_sample_trace_matches_its_generator() -> None:
    script = runpy.run_path(str(SAMPLE.with_name("make_azure_sample.py")))
    assert SAMPLE.read_text(encoding="utf-8") == script["render"]()


def test_trace_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_function(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="no function with HashFunction 'abc'"):
        read_function(SAMPLE, "abc")
    with pytest.raises(ValueError, match="no index:4; use index:0 to index:3"):
        read_function(SAMPLE, "index:4")
    with pytest.raises(ValueError, match="write index:N"):
        read_function(SAMPLE, "index:x")

    bad_header = tmp_path / "h.csv"
    bad_header.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TraceFormatError, match=r"h\.csv:1: not an Azure"):
        read_function(bad_header)
    bad_cell = _write_trace(tmp_path / "c.csv", [["o", "a", "f1", "http", 1, 2, 3],
                                                 ["o", "a", "f2", "http", 1, "x", 3]])
    assert minute_counts(bad_cell, "f1") == [1, 2, 3]  # only the selected row is parsed
    with pytest.raises(TraceFormatError, match=r"c\.csv:3: minute 2 holds 'x'"):
        read_function(bad_cell, "top")
    short = _write_trace(tmp_path / "s.csv", [["o", "a", "f1", "http", 1, 2]])
    with pytest.raises(TraceFormatError, match=r"s\.csv:2: expected 7 columns"):
        read_function(short)


def test_gzipped_trace(tmp_path: Path) -> None:
    plain = _write_trace(tmp_path / "t.csv", [["o", "a", "f1", "http", 0, 5, 1]])
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert minute_counts(packed) == [0, 5, 1]


# -- sharding, laziness, invariants --------------------------------------------------------------

@pytest.mark.parametrize("plan", _all_plans(), ids=lambda p: p.kind)
def test_shards_partition_the_plan_exactly(plan: plans.Plan) -> None:
    duration = 120.0
    whole = list(plan.offsets(duration))
    assert len(whole) > 50
    for count in (1, 2, 3, 5):
        shards = [list(plan.shard(i, count).offsets(duration)) for i in range(count)]
        assert Counter(itertools.chain(*shards)) == Counter(whole)
        assert sum(map(len, shards)) == len(whole)
        for i, shard in enumerate(shards):
            assert shard == whole[i::count]
    # A shard of a shard is the matching finer shard.
    assert list(plan.shard(1, 2).shard(2, 3).offsets(duration)) == whole[5::6]


@pytest.mark.parametrize("plan", _all_plans(), ids=lambda p: p.kind)
def test_offsets_are_sorted_bounded_and_lazy(plan: plans.Plan) -> None:
    offsets = list(plan.offsets(77.7))
    assert offsets == sorted(offsets)
    assert all(0 <= t < 77.7 for t in offsets)
    lazy = plan.offsets(86_400)
    assert isinstance(lazy, collections.abc.Iterator)
    assert not isinstance(lazy, (list, tuple))
    assert list(plan.offsets(0)) == []


def test_a_day_at_1000_rps_is_generated_lazily() -> None:
    offsets = poisson(1000, seed=1).offsets(86_400)
    assert inspect.isgenerator(offsets)  # nothing materialised: a generator, not a sequence
    first = list(itertools.islice(offsets, 10))
    assert len(first) == 10 and first == sorted(first) and first[-1] < 1.0
    sharded = poisson(1000, seed=1).shard(0, 4).offsets(86_400)
    assert isinstance(sharded, collections.abc.Iterator)
    assert next(sharded) == first[0]


def test_closed_loop_plan() -> None:
    plan = closed(5, think="exponential", think_s=2.0, seed=4)
    assert not plan.open_loop and plan.users == 5
    with pytest.raises(UsageError, match="no arrival schedule"):
        plan.offsets(10)
    rng = random.Random(0)
    mean = sum(plan.think_time(rng) for _ in range(20000)) / 20000
    assert mean == pytest.approx(2.0, rel=0.05)
    assert closed(2, think_s=1.5).think_time(rng) == 1.5
    shards = [plan.shard(i, 3) for i in range(3)]
    assert [s.users for s in shards] == [2, 2, 1]
    firsts = {s.user_rng(0).random() for s in shards}
    assert len(firsts) == 3  # each shard's users draw their own think times
    assert plan.user_rng(1).random() == plan.user_rng(1).random()
    assert plan.expected_count(10) == 25


# -- validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: poisson(0),
    lambda: poisson(-1),
    lambda: poisson(float("nan")),
    lambda: constant(float("inf")),
    lambda: uniform(True),
    lambda: burst(0, 1, 1),
    lambda: burst(1, 0, 1),
    lambda: burst(1, 1, -1),
    lambda: burst(1, 1, 1, rate_off=-1),
    lambda: burst(1, 1, 1, process="gamma"),
    lambda: diurnal([], 10),
    lambda: diurnal([0, 0], 10),
    lambda: diurnal([1, -1], 10),
    lambda: diurnal([1], 0),
    lambda: trace(SAMPLE, compression=0),
    lambda: trace(SAMPLE, compression=-60),
    lambda: trace(SAMPLE, start_minute=1440),
    lambda: closed(0),
    lambda: closed(2, think="gaussian"),
    lambda: closed(2, think_s=-1),
    lambda: poisson(1).offsets(-1),
    lambda: poisson(1).shard(2, 2),
    lambda: poisson(1).shard(0, 0),
])
def test_bad_arguments_raise_value_error_with_a_sentence(make) -> None:
    with pytest.raises(ValueError) as info:
        make()
    text = str(info.value)
    assert " must " in text or " should " in text or "past the trace" in text


def test_to_dict_names_the_parameters() -> None:
    assert burst(3, 1, 2).to_dict() == {
        "kind": "burst", "rate_on": 3.0, "on_s": 1.0, "off_s": 2.0, "rate_off": 0.0, "seed": 0,
        "process": "poisson"}
    d = trace(SAMPLE, "index:0", compression=60).shard(1, 2).to_dict()
    assert "counts" not in d and d["shard"] == [1, 2] and d["total"] == 288
