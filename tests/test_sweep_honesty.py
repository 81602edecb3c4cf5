"""Sweeps say what their figures can and cannot claim (issue #18, items 2-4).

* A level that throttles (429) or fails more than `NOT_COMPARABLE_SHARE` of its requests shows
  a low P(cold) because requests were refused: its console line, sweep.csv row, plot and the
  verdict carry the four outcome shares, mark it not comparable and never count it as a fall.
* An interval is shown only where the block bootstrap can resample (`measures.MIN_BLOCKS`
  blocks): else "too few requests to tell", in the console, sweep.csv and the plot alike.
* A simulated sweep's plot says "simulated"; help texts say what is really computed.
* `fcbench simulate` of a sample model without --service-ms uses the model's measured time;
  of any other function it refuses before making a folder.

Known truths come from outside the sweep: one instance with 8 slots and no queue refuses what
exceeds 8 in flight (Erlang's loss formula: about 55 % at 16 in flight, ~0 at 1), and two
requests cannot be resampled in blocks.
"""

from __future__ import annotations

import re

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fcbench.coldstart.levels import NOT_COMPARABLE_SHARE, read_sweep_csv
from harness_utils import sleep_spec

WORKLOADS = Path(__file__).parent.parent / "workloads"

#: one instance, 8 slots, no queue: at 16 in flight about half the requests are answered 429
THROTTLING = dict(sleep_ms=100, concurrency=8, idle=1, max_instances=1, queue_size=0)


def _spec_doc(**kw) -> dict:
    spec = sleep_spec("thr", **kw)
    return {**spec.to_fc(), "harness": spec.harness.model_dump(by_alias=True, exclude_none=True)}


def _throttling_workload(tmp_path: Path, duration: float = 20) -> Path:
    doc = {"name": "thr", "target": {"kind": "local", "functions": [_spec_doc(**THROTTLING)]},
           "request": {"timeout": 30}, "duration": duration, "seed": 3,
           "plan": {"kind": "poisson", "rate": 1}, "output": str(tmp_path / "results")}
    path = tmp_path / "thr.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _check_rows(rows: list[dict], refused_level: float) -> None:
    """Every row has four outcome shares adding up to 1; the refused level is marked."""
    for r in rows:
        shares = [float(r[f"{k}_share"]) for k in ("warm", "cold", "throttled", "failed")]
        assert sum(shares) == pytest.approx(1.0)
        refused = float(r["throttled_share"]) + float(r["failed_share"])
        assert (r["comparable"] == "True") == (refused <= NOT_COMPARABLE_SHARE), r
    [bad] = [r for r in rows if float(r["level"]) == refused_level]
    assert bad["comparable"] == "False" and float(bad["throttled_share"]) > 0.3
    assert bad["note"].startswith("throttled ") and "not comparable" in bad["note"]


@pytest.mark.slow
def test_a_measured_level_that_throttles_is_marked_and_left_out_of_the_verdict(tmp_path,
                                                                               fcbench_run):
    spec = tmp_path / "thr.yaml"
    spec.write_text(yaml.safe_dump(_spec_doc(**THROTTLING)))
    res = fcbench_run("coldstart", "sweep", str(spec), "--concurrency", "1,16", "--duration",
                      "3", "--steady-multiple", "0", "--service-ms", "100", "--out",
                      str(tmp_path / "out"), timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = list((tmp_path / "out").iterdir())
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    _check_rows(rows, refused_level=16)
    assert [r["comparable"] for r in rows] == ["True", "False"]
    [line16] = [ln for ln in res.stdout.splitlines() if ln.strip().startswith("level 16:")]
    assert "throttled" in line16 and "not comparable" in line16 and "warm" in line16
    # the verdict never counts level 16's low P(cold) as a fall, and names it
    summary = json.loads((run / "summary.json").read_text())
    verdict = summary["verdict"]
    assert [d["level"] for d in verdict["left_out"]] == [16]
    assert verdict["monotone"] is None and summary["monotone_within_intervals"] is None
    assert "falls monotonically" not in res.stdout
    assert "cannot be compared" in res.stdout and "left out: 16 (throttled" in res.stdout


def _capture_figures(monkeypatch) -> list:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figures: list = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


@pytest.mark.slow
def test_a_simulated_sweep_shows_throttling_and_too_few_requests(tmp_path, fcbench_run,
                                                                 monkeypatch):
    path = _throttling_workload(tmp_path)
    # 0.005 in flight at 100 ms: one request in 20 s, too few for an interval
    res = fcbench_run("simulate", str(path), "--sweep", "concurrency=0.005,1,16", "--out",
                      str(tmp_path / "sims"), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = list((tmp_path / "sims").iterdir())
    rows = list(csv.DictReader(open(run / "sweep.csv")))
    _check_rows(rows, refused_level=16)
    few = rows[0]
    assert int(few["requests"]) < 4 and few["comparable"] == "True"
    assert few["p_cold_cluster_lo"] == few["p_cold_cluster_hi"] == ""  # no interval
    assert read_sweep_csv(run / "sweep.csv")[0].p_cold_cluster_lo is None
    lines = {ln.split(":")[0].strip(): ln for ln in res.stdout.splitlines() if ":" in ln}
    assert "too few requests to tell" in lines["simulated concurrency 0.005"]
    assert "[0.000, 1.000]" not in res.stdout
    assert "throttled 55 %" in lines["simulated concurrency 16"]  # Erlang B(8, 16) = 0.545
    assert "not comparable" in lines["simulated concurrency 16"]
    summary = json.loads((run / "summary.json").read_text())
    assert {d["level"]: d["why"] for d in summary["verdict"]["left_out"]} == {
        0.005: "too few requests to tell", 16: rows[2]["note"]}
    assert "left out: 0.005 (too few requests to tell), 16 (throttled" in res.stdout

    # the plot, drawn by the same sweep in process: legend says simulated, no bar for the
    # level with too few requests, level 16 apart, and the four shares stacked per level
    from fcbench.coldstart.predict import simulate_sweep
    from fcbench.load.loader import load_workload
    from fcbench.sim.run import SimulationSettings

    figures = _capture_figures(monkeypatch)
    simulate_sweep(load_workload(path), "concurrency", (0.005, 1, 16), SimulationSettings(),
                   out=tmp_path / "again")
    [fig] = [f for f in figures  # the sweep plot (the level reports draw others)
             if f.axes and f.axes[0].get_title().startswith("Simulated cold-start probability")]
    top, shares = fig.axes
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert labels and all(text.startswith("simulated") for text in labels if "1/c" not in text)
    assert not any("measured" in text for text in labels)
    assert any("too few requests to tell" in text for text in labels)
    assert any("not comparable" in text for text in labels)
    bars = {c.get_label(): [b.get_height() for b in c] for c in shares.containers}
    assert set(bars) == {"warm", "cold", "throttled", "failed"}
    assert bars["throttled"][2] == pytest.approx(float(rows[2]["throttled_share"]))
    interval_lines = [c for c in top.containers if hasattr(c, "has_yerr") and c.has_yerr]
    [bars_drawn] = interval_lines
    assert list(bars_drawn.lines[0].get_xdata()) == [1.0]  # only the level that can tell


def test_too_few_requests_is_said_by_the_measures_and_the_run_summary():
    import numpy as np

    from fcbench.measures import p_cold
    from fcbench.results.summary import summary_table

    two_cold = p_cold(np.array(["cold", "cold"], dtype=object), ["i-1", "i-2"])
    assert two_cold["value"] == 1.0 and two_cold["cluster"]["known"] is False
    many = p_cold(np.array(["cold", "warm"] * 20, dtype=object))
    assert many["cluster"]["known"] is True
    row = dict(summary_table({"count": 2, "p_cold": two_cold}))["P(cold) [95% CI]"]
    assert "too few requests to tell" in row and "clustered [" not in row


@pytest.mark.slow
def test_simulate_sweep_of_the_quickstart_uses_mobilenets_sample_time(tmp_path):
    """docs/cost.md's command, as written, from a fresh folder (relative output)."""
    shutil.copytree(WORKLOADS, tmp_path / "workloads")
    res = subprocess.run([sys.executable, "-m", "fcbench", "simulate",
                          "workloads/quickstart.yaml", "--sweep", "minInstances=0,1,2"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "assuming 'mobilenet-v2' takes 17 ms per request" in res.stderr
    [run] = list((tmp_path / "results").iterdir())
    levels = read_sweep_csv(run / "sweep.csv")
    assert [lv.level for lv in levels] == [0, 1, 2] and all(lv.requests for lv in levels)
    doc = yaml.safe_load((run / "run.yaml").read_text())
    assert doc["service_ms"] == pytest.approx(17.0)
    assert "mobilenet-v2 sample default" in doc["times_from"]["service"]


@pytest.mark.slow
@pytest.mark.parametrize("sweep", [None, "minInstances=0,1"])
def test_simulate_without_a_service_time_refuses_before_any_folder(tmp_path, fcbench_run,
                                                                   sweep):
    """A model file of the user's own: fcbench does not know its time, so it says which option
    to pass, exit 2, and leaves no (empty) results folder behind."""
    fn = {"functionName": "own", "environmentVariables": {
        "FCBENCH_MODEL": "mobilenet-v2", "FCBENCH_MODEL_PATH": str(tmp_path / "own.onnx")},
        "harness": {"idleTimeout": 5}}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump({
        "name": "own", "target": {"kind": "local", "functions": [fn]}, "duration": 30,
        "plan": {"kind": "poisson", "rate": 1}, "output": str(tmp_path / "results")}))
    res = fcbench_run("simulate", str(path), *(["--sweep", sweep] if sweep else []),
                      timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--service-ms" in res.stderr and "--calibrate RUN_DIR" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_help_says_what_is_computed_and_which_defaults_exist(fcbench_run):
    sweep = " ".join(fcbench_run("coldstart", "sweep", "--help").stdout.split())
    assert "Wilson intervals" not in sweep and "95 % block-bootstrap interval" in sweep
    assert "too few requests to tell" in sweep and "not comparable" in sweep
    assert f"{NOT_COMPARABLE_SHARE:.0%}" in sweep
    # click wraps at hyphens: "stable-\n diffusion" is one word to a reader
    sim = " ".join(re.sub(r"-\n\s+", "-", fcbench_run("simulate", "--help").stdout).split())
    assert "mobilenet-v2" in sim and "17 ms" in sim and "FCBENCH_SLEEP_MS" in sim
    assert "stable-diffusion" in sim  # named as one without a default
    seed = sim[sim.index("--seed"):]
    assert "service and start-up times" in seed[:300] and "arrivals" in seed[:400]
