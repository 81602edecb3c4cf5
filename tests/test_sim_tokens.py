"""The simulator and the cost model speak tokens (issue #21): a calibrated run's service time as
a per-token fit, simulated requests drawn from their own lengths, what-ifs that scale them, and
the cost per million output tokens.

Known truths come from outside fcbench. The fast tests read a run folder written here, as
`fcbench run` leaves one for an LLM function, whose requests held their instance 5 + 0.2·input +
10·output ms plus seeded noise (their first token 3 + 0.2·input ms after reaching it), with
lengths drawn by the workload's own request generator: no server here spends a known time per
prompt token, and the fit must find 0.2 and 10 again. The slow one runs the known-timing token
server (tests/foreign/token_server.py: a known time per output token, none per prompt token)
through the harness with `fcbench run`, and holds a prediction of twice the output tokens
against a measured run of them.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fcbench.errors import UsageError
from fcbench.load.loader import load_workload
from fcbench.load.openai_requests import request_generator
from fcbench.results import RunFolder, layout
from fcbench.results.summary import summarize, write_summary
from fcbench.sim.calibrate import calibrate
from fcbench.sim.tokens import MIN_REQUESTS, TokenRows, fit_tokens

T0 = 1_800_000_000.0
#: the injected truth (ms): service = A + PREFILL·input + DECODE·output; first token after
#: FIRST_A + PREFILL·input; a cold request holds COLD_EXTRA more (a first inference)
A, PREFILL, DECODE, FIRST_A, COLD_EXTRA, STARTUP_MS, NOISE_MS = 5.0, 0.2, 10.0, 3.0, 200.0, \
    500.0, 1.5
GPU_GB, RATE = 4.0, 0.0007  # the spec's GPU memory; fc-doc-simple's CNY per GB·s
DURATION = 120.0


def _workload(folder: Path, *, prompt: str = "uniform:20:400", output: str = "uniform:4:64",
              rate: float = 0.5) -> Path:
    doc = {"name": "llm", "target": {"kind": "local", "functions": [{
        "functionName": "f", "instanceConcurrency": 1,
        "gpuConfig": {"gpuMemorySize": int(GPU_GB * 1024)},
        "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "0"},
        "harness": {"idleTimeout": 600, "maxInstances": 4}}]},
        "request": {"openai": {"model": "tiny", "promptTokens": prompt, "outputTokens": output}},
        "duration": DURATION, "seed": 11, "plan": {"kind": "constant", "rate": rate},
        "output": str(folder / "results"), "slo": "ttft=100"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "llm.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def llm_run(folder: Path, workload: Path, *, noise_seed: int = 1) -> Path:
    """A measured-looking run folder of `workload` (one request every 2 s on one instance,
    cold first): requests.csv with token columns, instances.csv, summary.json, run.yaml."""
    wl = load_workload(workload)
    gen = request_generator(wl)
    offsets = list(wl.plan_obj().offsets(wl.duration))
    noise = np.random.default_rng(noise_seed)
    rows, busy = [], 0.0
    for n, offset in enumerate(offsets):
        drawn = gen.draw(n)
        inp, out = drawn.prompt_tokens, drawn.max_tokens  # ignoreEos: the answer is max_tokens
        cold = n == 0
        queue = STARTUP_MS if cold else 0.0
        first = FIRST_A + PREFILL * inp + noise.normal(0, NOISE_MS / 3)
        held = A + PREFILL * inp + DECODE * out + noise.normal(0, NOISE_MS) \
            + (COLD_EXTRA if cold else 0.0)
        busy += held / 1000.0
        sent = T0 + offset
        latency = queue + held
        rows.append({"request_id": f"r{n}", "intended_ts": sent, "start_ts": sent,
                     "end_ts": sent + latency / 1000.0, "latency_ms": latency, "status": 200,
                     "cold": int(cold), "instance_id": "i-1", "queue_ms": queue, "error": "",
                     "input_tokens": inp, "output_tokens": out, "ttft_ms": queue + first,
                     "tpot_ms": (held - first) / (out - 1) if out > 1 else ""})
    folder.mkdir(parents=True)
    run = RunFolder(folder)
    run.write_csv(layout.REQUESTS, list(rows[0]), rows)
    ready = T0 + STARTUP_MS / 1000.0
    alive = T0 + DURATION - ready
    run.write_csv(layout.INSTANCES, ["instance_id", "function", "slots", "served",
                                     "provisioned", "gpu_memory_mb", "created_ts", "ready_ts",
                                     "stopped_ts", "active_s", "idle_s", "alive_s"],
                  [{"instance_id": "i-1", "function": "f", "slots": 1, "served": len(rows),
                    "provisioned": False, "gpu_memory_mb": int(GPU_GB * 1024),
                    "created_ts": T0 - 0.0, "ready_ts": ready, "stopped_ts": T0 + DURATION,
                    "active_s": busy, "idle_s": alive - busy, "alive_s": alive}])
    summary = summarize(folder / layout.REQUESTS)
    summary.update({"planned_duration_s": DURATION, "instances_started": 1})
    write_summary(summary, folder / layout.SUMMARY)
    (folder / layout.RUN_YAML).write_text(yaml.safe_dump(
        {"kind": "run", "duration_s": DURATION, "workload": wl.to_run_yaml()}, sort_keys=False))
    return folder


@pytest.fixture
def measured(tmp_path: Path) -> tuple[Path, Path]:
    workload = _workload(tmp_path)
    return workload, llm_run(tmp_path / "run", workload)


def test_the_fit_finds_the_injected_per_token_times(measured):
    _, run = measured
    cal = calibrate([run])
    fit = cal.tokens
    assert fit is not None, cal.tokens_note
    assert fit.n == 59  # the warm requests; the cold one is kept apart
    assert fit.prefill_ms_per_token == pytest.approx(PREFILL, abs=0.01)
    assert fit.decode_ms_per_token == pytest.approx(DECODE, abs=0.1)
    assert fit.service.intercept == pytest.approx(A, abs=3.0)
    assert fit.service.r2 > 0.999
    assert fit.service.spread_ms == pytest.approx(NOISE_MS, rel=0.35)
    assert fit.first is not None  # streamed: the first token's own fit
    assert fit.first.slopes["input_tokens"] == pytest.approx(PREFILL, abs=0.01)
    assert fit.first.intercept == pytest.approx(FIRST_A, abs=1.5)
    d = cal.describe()["tokens"]
    assert d["decode_ms_per_tok"] == pytest.approx(DECODE, abs=0.1) and d["cold_requests"] == 1
    assert "decode" not in cal.tokens_note and "× output_tokens" in cal.tokens_note


def _rows(n: int, inputs: np.ndarray, outputs: np.ndarray) -> TokenRows:
    held = A + PREFILL * inputs + DECODE * outputs
    return TokenRows(inputs, outputs, held, np.full(n, np.nan), np.full(n, np.nan),
                     np.zeros(n, dtype=bool))


def test_a_fit_that_means_nothing_is_refused_with_a_reason():
    n = 40
    varying = np.arange(n, dtype=float) + 8
    fit, why = fit_tokens(_rows(n, np.full(n, 128.0), np.full(n, 16.0)))
    assert fit is None and "same lengths (128 input, 16 output" in why
    assert "resampled as measured" in why
    fit, why = fit_tokens(_rows(n, 3 * varying, varying))
    assert fit is None and "moved together" in why
    few = MIN_REQUESTS - 1
    fit, why = fit_tokens(_rows(few, varying[:few], varying[:few] * 0 + 4 + np.arange(few) % 3))
    assert fit is None and f"{few} warm request(s)" in why
    # one length fixed: the other is fitted, the fixed one is not (and cannot be scaled)
    fit, why = fit_tokens(_rows(n, np.full(n, 128.0), varying))
    assert fit is not None and fit.decode_ms_per_token == pytest.approx(DECODE)
    assert fit.prefill_ms_per_token is None and "input_tokens did not vary" in why
    assert fit.scalable("output_tokens") is None
    assert "did not vary" in fit.scalable("input_tokens")
    # noise far above the per-token time: kept (it resamples the spread), and said to be loose
    rows = _rows(n, varying, (varying * 7) % 23 + 1)
    loud = TokenRows(rows.input, rows.output, rows.held_ms + np.random.default_rng(2).normal(
        0, 2000, n), rows.first_ms, rows.tpot_ms, rows.cold)
    fit, why = fit_tokens(loud)
    assert fit is not None and "not told apart from 0 at 95 %" in why
    assert "of the service time's variance" in why


def test_a_run_without_token_counts_has_no_fit_and_says_nothing(tmp_path):
    workload = _workload(tmp_path)
    run = llm_run(tmp_path / "run", workload)
    df = RunFolder(run).requests()
    df[["input_tokens", "output_tokens", "ttft_ms", "tpot_ms"]] = np.nan
    df.to_csv(run / layout.REQUESTS, index=False)
    cal = calibrate([run])
    assert cal.tokens is None and cal.tokens_note == ""
    assert cal.describe()["tokens"] is None


def _simulated(workload: Path, run: Path, **scales: float):
    from fcbench.cost.metering import priced_run
    from fcbench.cost.tables import load_table
    from fcbench.sim.bootstrap import simulated_figures
    from fcbench.sim.run import SimulationSettings, run_simulation

    sim = run_simulation(load_workload(workload),
                         SimulationSettings(calibration=calibrate([run]), **scales))
    priced = priced_run(run)
    figures = simulated_figures(sim, window_s=priced.window.seconds, shape=priced.shape,
                                tables=[load_table("fc-doc-simple")])
    return sim, sim.frame(), figures["costs"]["fc-doc-simple"]


def test_twice_the_output_tokens_doubles_the_decode_time_and_raises_the_bill(measured):
    workload, run = measured
    gen = request_generator(load_workload(workload))
    _, f1, (_, day1, _, per_m1) = _simulated(workload, run)
    _, f2, (_, day2, _, per_m2) = _simulated(workload, run, output_tokens_scale=2.0)
    n = len(f1)
    want = np.array([gen.draw(i).max_tokens for i in range(n)], dtype=float)
    assert (f1["output_tokens"].to_numpy(dtype=float) == want).all()  # the generator's lengths
    assert (f2["output_tokens"].to_numpy(dtype=float) == 2 * want).all()
    assert (f1["input_tokens"] == f2["input_tokens"]).all()
    held1 = f1["latency_ms"] - f1["queue_ms"]
    held2 = f2["latency_ms"] - f2["queue_ms"]
    # the same residuals drawn for the same requests: the difference is the decode part alone
    added = (held2 - held1).to_numpy()[1:]  # (the first request is cold in both)
    assert added == pytest.approx(DECODE * want[1:], rel=0.02)
    # TTFT is the prefill's: unchanged; TPOT is the decode time per token in both
    assert f2["ttft_ms"].to_numpy() == pytest.approx(f1["ttft_ms"].to_numpy(), abs=1e-9)
    warm = f1["cold"] == 0
    assert np.median(f1["tpot_ms"][warm]) == pytest.approx(DECODE, rel=0.1)
    assert np.median(f2["tpot_ms"][warm]) == pytest.approx(DECODE, rel=0.05)
    # a cold request's TTFT counts its wait for the instance, as measured
    assert f1["ttft_ms"][0] > STARTUP_MS
    # the bill: the added busy seconds at the GPU's rate, scaled to a day
    scale = 86400.0 / DURATION
    assert day2 - day1 == pytest.approx(
        (held2 - held1).sum() / 1000.0 * GPU_GB * RATE * scale, rel=0.01)
    # per million output tokens: the bill over the day's tokens, both defined once
    tokens1 = f1["output_tokens"].sum() * scale
    assert per_m1 == pytest.approx(day1 / tokens1 * 1e6, rel=1e-9)
    assert per_m2 == pytest.approx(day2 / (2 * tokens1) * 1e6, rel=1e-9)


def test_lengths_without_a_generator_are_the_calibration_runs_resampled(measured, tmp_path):
    workload, run = measured
    doc = yaml.safe_load(workload.read_text())
    doc["request"] = {"timeout": 30}  # the same traffic, without request.openai
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(doc))
    _, frame, _ = _simulated(plain, run)
    pairs = set(zip(RunFolder(run).requests()["input_tokens"],
                    RunFolder(run).requests()["output_tokens"]))
    assert set(zip(frame["input_tokens"], frame["output_tokens"])) <= pairs


def test_a_token_scale_without_a_fit_is_refused_in_a_sentence(measured, tmp_path):
    from fcbench.sim.run import SimulationSettings, run_simulation

    workload, run = measured
    wl = load_workload(workload)
    with pytest.raises(UsageError, match="--calibrate RUN_DIR"):
        run_simulation(wl, SimulationSettings(output_tokens_scale=2.0))
    with pytest.raises(UsageError, match="drop --service-ms"):
        run_simulation(wl, SimulationSettings(service_ms="100", output_tokens_scale=2.0,
                                              calibration=calibrate([run])))
    df = RunFolder(run).requests()
    df[["input_tokens", "output_tokens"]] = np.nan
    df.to_csv(run / layout.REQUESTS, index=False)
    with pytest.raises(UsageError, match="no input_tokens / output_tokens"):
        run_simulation(wl, SimulationSettings(calibration=calibrate([run]),
                                              prompt_tokens_scale=0.5))


def test_a_bootstrap_replicate_refits_the_resampled_requests(measured):
    _, run = measured
    fit = calibrate([run]).tokens
    again = fit.resample(random.Random(3))
    assert again is not fit and again.n > 0
    assert again.decode_ms_per_token == pytest.approx(DECODE, abs=0.2)
    assert again.decode_ms_per_token != fit.decode_ms_per_token


def _per_m(stdout: str) -> float:
    found = re.search(r"FC per million output tokens\s+([\d,.]+) CNY \(([\d,]+) output", stdout)
    assert found, stdout
    return float(found.group(1).replace(",", ""))


@pytest.mark.slow
def test_cost_simulate_and_what_if_in_tokens_from_the_command_line(measured, fcbench_run,
                                                                    tmp_path):
    """`fcbench cost RUN` prints the cost per million output tokens; `fcbench simulate
    --calibrate RUN --output-tokens-scale 2` shows the fit and writes token columns;
    `fcbench cost RUN --what-if outputTokens=1x,2x` prices answers twice as long."""
    workload, run = measured
    res = fcbench_run("cost", str(run), timeout=60)
    assert res.returncode == 0, res.stderr
    df = RunFolder(run).requests()
    day = float(re.search(r"FC per day\s+([\d,.]+) CNY", res.stdout).group(1).replace(",", ""))
    scale = 86400.0 / DURATION
    tokens = df["output_tokens"].sum() * scale
    assert _per_m(res.stdout) == pytest.approx(day / tokens * 1e6, rel=2e-3)
    busy = (df["latency_ms"] - df["queue_ms"]).sum() / 1000.0
    assert day == pytest.approx(busy * GPU_GB * RATE * scale, rel=1e-3)

    res = fcbench_run("simulate", str(workload), "--calibrate", str(run),
                      "--output-tokens-scale", "2", "--out", str(tmp_path / "sim"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "token fit on 59 warm requests" in res.stdout and "× output_tokens" in res.stdout
    assert "per million output tokens" in res.stdout  # the prediction's line
    [sim] = list((tmp_path / "sim").iterdir())
    recorded = yaml.safe_load((sim / layout.RUN_YAML).read_text())
    assert recorded["tokens"]["output_tokens_scale"] == 2.0
    assert recorded["calibration"]["tokens"]["decode_ms_per_tok"] == pytest.approx(DECODE,
                                                                                    abs=0.1)
    assert "request.openai" in recorded["tokens"]["lengths_from"]
    rows = RunFolder(sim).requests()
    assert rows["output_tokens"].sum() == 2 * df["output_tokens"].sum()
    assert rows["ttft_ms"].notna().all() and rows["tpot_ms"].notna().any()
    summary = json.loads((sim / layout.SUMMARY).read_text())
    assert summary["token_model"]["fit"]["requests"] == 59
    # the workload's slo counts goodput on the simulated rows as on measured ones
    assert summary["tokens"]["slo"] == {"ttft_ms": 100.0}
    assert summary["tokens"]["goodput"]["good"] == int((rows["ttft_ms"] <= 100).sum())

    res = fcbench_run("cost", str(run), "--what-if", "outputTokens=1x,2x", "--replications",
                      "20", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "token fit on 59 warm requests" in res.stdout and "2x" in res.stdout
    [table] = list(run.glob("whatif-*.csv"))
    with open(table, newline="") as f:
        measured_row, as_run, doubled = list(csv.DictReader(f))
    assert measured_row["source"] == "measured" and as_run["as_run"] == "True"
    assert float(doubled["outputTokens_scale"]) == 2.0
    col = "fc-doc-simple_CNY_per_day"
    assert float(measured_row[col]) == pytest.approx(day, rel=1e-3)
    assert float(as_run[col]) == pytest.approx(day, rel=0.03)  # the calibration error, small
    # twice the output: the decode part (10 ms a token, most of the busy time) doubles
    decode_share = DECODE * df["output_tokens"][1:].sum() / 1000.0 / busy
    assert float(doubled[col]) / float(as_run[col]) == pytest.approx(1 + decode_share, rel=0.03)
    per_m = "fc-doc-simple_CNY_per_million_output_tokens"
    assert float(measured_row[per_m]) == pytest.approx(_per_m(
        fcbench_run("cost", str(run), timeout=60).stdout), rel=2e-3)
    assert float(doubled[f"{per_m}_lo"]) <= float(doubled[per_m]) <= float(doubled[f"{per_m}_hi"])
    report = (run / layout.REPORT).read_text()
    assert "FC per million output tokens" in report  # the cost section
    assert "million output tokens [lo, hi]" in report  # the what-if table's column

    # a run without token counts: the token what-if is refused, in a sentence
    df[["input_tokens", "output_tokens", "ttft_ms", "tpot_ms"]] = np.nan
    df.to_csv(run / layout.REQUESTS, index=False)
    bad = fcbench_run("cost", str(run), "--what-if", "outputTokens=2x", timeout=60)
    assert bad.returncode == 2 and "no input_tokens / output_tokens" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = fcbench_run("cost", str(run), "--what-if", "outputTokens=0x", timeout=60)
    assert bad.returncode == 2 and "factors above 0" in bad.stderr


# ---- a real run: the known-timing token server through the harness ------------------------------
SERVER = str(Path(__file__).parent / "foreign" / "token_server.py")
FIRST_MS, GAP_MS = 30.0, 8.0  # the server's first token after FIRST_MS, then one every GAP_MS


def _token_workload(folder: Path, name: str, output: str) -> Path:
    import sys

    doc = {"name": name, "target": {"kind": "local", "functions": [{
        "functionName": "llm", "instanceConcurrency": 4,
        "gpuConfig": {"gpuMemorySize": int(GPU_GB * 1024)},
        "environmentVariables": {"KNOWN_FIRST_MS": str(FIRST_MS), "KNOWN_GAP_MS": str(GAP_MS)},
        "harness": {"runtime": "process", "command": [sys.executable, SERVER],
                    "idleTimeout": 600, "maxInstances": 1}}]},
        "request": {"timeout": 30, "openai": {"model": "known-timing",
                                              "promptTokens": "uniform:20:300",
                                              "outputTokens": output}},
        "duration": 8, "seed": 5, "plan": {"kind": "constant", "rate": 3},
        "output": str(folder / name)}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.slow
def test_a_real_runs_decode_time_is_found_and_twice_the_output_is_predicted(fcbench_run,
                                                                            tmp_path):
    """The known-timing server (tests/foreign/token_server.py: a first token after 30 ms, then
    one every 8 ms, prompt length costing nothing) through `fcbench run`: the fit finds 8 ms a
    token and no prefill; simulated with twice the output tokens, it predicts the measured run
    of the same traffic with twice the output tokens (same seed: the same prompts)."""
    base = _token_workload(tmp_path, "base", "uniform:2:24")
    twice = _token_workload(tmp_path, "twice", "uniform:4:48")
    for wl in (base, twice):
        res = fcbench_run("run", str(wl), "--no-progress", timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
    [run] = list((tmp_path / "base").iterdir())
    [run2] = list((tmp_path / "twice").iterdir())
    cal = calibrate([run])
    fit = cal.tokens
    assert fit is not None, cal.tokens_note
    assert fit.decode_ms_per_token == pytest.approx(GAP_MS, rel=0.05)
    assert abs(fit.prefill_ms_per_token) < 0.05  # the server spends nothing on the prompt
    assert fit.service.r2 > 0.95
    assert fit.first is not None and fit.first.intercept == pytest.approx(FIRST_MS, abs=10)

    res = fcbench_run("simulate", str(base), "--calibrate", str(run), "--output-tokens-scale",
                      "2", "--out", str(tmp_path / "sim"), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    [sim] = list((tmp_path / "sim").iterdir())
    got, want = RunFolder(sim).requests(), RunFolder(run2).requests()
    assert len(got) == len(want)
    # the same prompts, in the server's tokens (it counts words: the generator's characters
    # are bridged by the base run's ratio, exact in the mean); outputs twice the base run's
    # (the measured run rounds its own draws)
    assert got["input_tokens"].mean() == pytest.approx(want["input_tokens"].mean(), rel=0.02)
    assert np.corrcoef(got["input_tokens"], want["input_tokens"])[0, 1] > 0.9
    assert np.abs(got["output_tokens"].to_numpy() - want["output_tokens"].to_numpy()).max() <= 1
    warm_got, warm_want = got[got["cold"] == 0], want[want["cold"] == 0]

    def held(df: Any) -> float:
        return (df["latency_ms"] - df["queue_ms"]).mean()

    assert held(warm_got) == pytest.approx(held(warm_want), rel=0.1)
    assert warm_got["tpot_ms"].median() == pytest.approx(warm_want["tpot_ms"].median(), rel=0.1)
    assert warm_got["ttft_ms"].median() == pytest.approx(warm_want["ttft_ms"].median(), abs=10)
    def day(folder: Path) -> float:
        out = fcbench_run("cost", str(folder), timeout=60).stdout
        return float(re.search(r"FC per day\s+([\d,.]+) CNY", out).group(1).replace(",", ""))

    assert day(sim) == pytest.approx(day(run2), rel=0.1)  # 0.2 % on 2026-12-02
