"""`fcbench coldstart sweep` on the harness: P(cold) falls as concurrency rises.

Real Locust runs against a real harness per level. The `sleep` model stands in for a GPU model
(no CPU per request), so five levels fit a 2-core machine.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fcbench.coldstart.sweep import SweepLevel, monotone_within_intervals, sweep_verdict


def _lv(level, p, lo, hi):
    # the cluster interval decides; a Wilson interval that would say otherwise is ignored
    return SweepLevel(level, level, 1, None, 100, int(p * 100), p, p, p, None, None, None, 0,
                      p_cold_cluster_lo=lo, p_cold_cluster_hi=hi)


def test_monotone_within_intervals_allows_noise_but_not_a_real_rise():
    assert monotone_within_intervals([_lv(1, .5, .4, .6), _lv(2, .52, .3, .7), _lv(4, .2, .1, .3)])
    assert not monotone_within_intervals([_lv(1, .2, .15, .25), _lv(2, .5, .4, .6)])


WORKLOADS = Path(__file__).parent.parent / "workloads"


@pytest.mark.slow
def test_sweep_with_the_default_relative_out_from_a_fresh_folder(tmp_path):
    """The documented command, run where the default `--out results` is relative: every level's
    run folder (made absolute by `fcbench run`) lands in the sweep folder and is recorded
    relative to it (this crashed after the first level: relative_to of an absolute path)."""
    shutil.copytree(WORKLOADS, tmp_path / "workloads")
    res = subprocess.run(
        [sys.executable, "-m", "fcbench", "coldstart", "sweep", "workloads/functions/sleep.yaml",
         "--concurrency", "1,2", "--duration", "2", "--steady-multiple", "0", "--service-ms",
         "1000"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    [run] = list((tmp_path / "results").iterdir())
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    assert [float(r["level"]) for r in rows] == [1, 2]
    for r in rows:
        assert not Path(r["run_dir"]).is_absolute() and r["run_dir"].startswith("levels/")
        assert (run / r["run_dir"] / "requests.csv").is_file()
    assert f"results: {run}" in res.stdout
    assert (run / "plots" / "p_cold.png").is_file() and (run / "summary.json").is_file()


@pytest.mark.slow
def test_sweep_over_1_to_16_shows_p_cold_falling_within_intervals(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "functionName: sw\ninstanceConcurrency: 2\nenvironmentVariables:\n"
        "  FCBENCH_MODEL: sleep\n  FCBENCH_SLEEP_MS: '1000'\n"
        "harness:\n  idleTimeout: 2\n  maxInstances: 14\n")
    res = subprocess.run(
        [sys.executable, "-m", "fcbench", "coldstart", "sweep", str(spec),
         "--concurrency", "1,2,4,8,16", "--duration", "14", "--warmup", "4", "--out", str(tmp_path / "res")],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run = next((tmp_path / "res").iterdir())
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    assert [float(r["level"]) for r in rows] == [1, 2, 4, 8, 16]
    for r in rows:
        assert int(r["requests"]) > 0 and int(r["errors"]) == 0
        lo, p, hi = float(r["p_cold_lo"]), float(r["p_cold"]), float(r["p_cold_hi"])
        assert 0 <= lo <= p <= hi <= 1
        clo, chi = float(r["p_cold_cluster_lo"]), float(r["p_cold_cluster_hi"])
        assert 0 <= clo <= p <= chi <= 1
        # 14 s levels with idleTimeout 2: steady (>= 3 idle timeouts); the ramp from zero is
        # in the from-zero figure, which is never below the steady one by much
        assert r["steady"] == "True" and float(r["level_s"]) == 14
        assert float(r["p_cold_from_zero"]) >= float(r["p_cold"]) - 0.05
        assert (run / r["run_dir"] / "requests.csv").exists()
    # rates follow Little's law from the measured service time (~1 s)
    assert float(rows[-1]["rate_rps"]) == pytest.approx(16 * float(rows[0]["rate_rps"]), rel=1e-3)
    levels = [SweepLevel(float(r["level"]), float(r["level"]), 1, None, int(r["requests"]),
                         int(r["cold"]), float(r["p_cold"]), float(r["p_cold_lo"]),
                         float(r["p_cold_hi"]), None, None, None, 0,
                         p_cold_cluster_lo=float(r["p_cold_cluster_lo"]),
                         p_cold_cluster_hi=float(r["p_cold_cluster_hi"])) for r in rows]
    assert monotone_within_intervals(levels)
    assert float(rows[-1]["p_cold"]) < float(rows[0]["p_cold"])  # and it really fell
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monotone_within_intervals"] is True
    assert 950 <= summary["service_ms"] <= 1300
    assert summary["warmup_s"] == 4 and summary["steady"] is True
    assert "each level runs 14 s" in res.stdout
    assert (run / "plots" / "p_cold.png").stat().st_size > 5000
    assert "sweep.csv" in (run / "report.html").read_text()


def test_sweep_timing_extends_short_levels_or_says_they_are_not_steady():
    from fcbench.coldstart.sweep import SweepConfig

    t = SweepConfig(levels=(1,), duration_s=10).timing(idle_timeout_s=5)
    assert (t.level_s, t.warmup_s, t.steady) == (15, 5, True) and "15 s" in t.note
    t = SweepConfig(levels=(1,), duration_s=4, steady_multiple=0).timing(idle_timeout_s=5)
    assert t.level_s == 4 and not t.steady and "ramp from zero" in t.note  # < one idle timeout
    t = SweepConfig(levels=(1,), duration_s=10, steady_multiple=0).timing(idle_timeout_s=5)
    assert t.level_s == 10 and t.steady
    t = SweepConfig(levels=(1,), duration_s=60, warmup_s=3).timing(idle_timeout_s=5)
    assert (t.level_s, t.warmup_s, t.steady) == (60, 3, True)


@pytest.mark.slow
def test_a_closed_loop_sweep_runs(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text("functionName: c\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "  FCBENCH_SLEEP_MS: '50'\nharness:\n  idleTimeout: 1\n")
    res = subprocess.run(
        [sys.executable, "-m", "fcbench", "coldstart", "sweep", str(spec), "--mode", "closed",
         "--concurrency", "1,2", "--duration", "3", "--think", "0.2", "--service-ms", "50",
         "--out", str(tmp_path / "res")], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    run = next((tmp_path / "res").iterdir())
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    assert [float(r["level"]) for r in rows] == [1, 2] and all(int(r["requests"]) > 0
                                                              for r in rows)


def test_the_verdict_tells_a_fall_from_a_flat_curve_and_holds_it_against_1_over_c():
    """A curve that never rises significantly may still be flat: "falls" needs the highest
    level's interval wholly below the lowest's, and the fall is put beside 1/c."""
    falls = sweep_verdict([_lv(1, .5, .4, .6), _lv(2, .52, .3, .7), _lv(4, .2, .1, .3)])
    assert falls["monotone"] and falls["falls"]
    assert falls["factor"] == pytest.approx(2.5) and falls["proportional"] == 4
    assert "falls over levels 1, 2, 4" in falls["text"] and "÷4" in falls["text"]
    flat = sweep_verdict([_lv(1, .03, .006, .05), _lv(2, .055, .025, .09)])
    assert flat["monotone"] and flat["falls"] is False
    assert "does not fall significantly" in flat["text"]
    rises = sweep_verdict([_lv(1, .2, .15, .25), _lv(2, .5, .4, .6)])
    assert rises["monotone"] is False and "does NOT fall" in rises["text"]
