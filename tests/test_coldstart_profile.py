"""`fcbench coldstart profile` on the process runtime and against a plain URL (real harness)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fcbench.harness.server import HarnessConfig, HarnessThread
from harness_utils import sleep_spec
from proxy_utils import Proxy

pytestmark = pytest.mark.slow  # every test here starts processes or servers


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", *args],
                          capture_output=True, text=True, timeout=180, cwd=cwd)


def _run_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1
    return dirs[0]


def test_profile_on_process_runtime_splits_each_cold_start_into_phases(tmp_path):
    spec = tmp_path / "slow.yaml"
    spec.write_text("functionName: slow\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "  FCBENCH_STARTUP_MS: '300'\n  FCBENCH_SLEEP_MS: '20'\n")
    res = _run(str(spec), "-n", "3", "--warmup", "1", "--out", str(tmp_path / "res"))
    assert res.returncode == 0, res.stderr
    assert "model_load" in res.stdout and "unattributed" in res.stdout
    run = _run_dir(tmp_path / "res")
    rows = list(csv.DictReader(open(run / "phases.csv")))
    kept = [r for r in rows if r["kind"] == "ok"]
    assert len(kept) == 3 and [r["kind"] for r in rows].count("warmup") == 1
    phase_cols = [c for c in rows[0] if c.endswith("_ms") and c not in
                  ("e2e_ms", "warm_ms", "cold_penalty_ms")]
    assert "schedule_ms" in phase_cols and "first_inference_ms" in phase_cols
    for r in kept:
        e2e = float(r["e2e_ms"])
        # the process runtime pulls no image and makes no container: no source, no number
        assert r["image_pull_ms"] == r["container_create_ms"] == r["container_start_ms"] == ""
        assert float(r["spawn_ms"]) > 0 and float(r["process_start_ms"]) > 0
        total = sum(float(r[c]) for c in phase_cols if r[c] != "")
        assert total == pytest.approx(e2e, abs=0.01)  # columns are rounded to µs
        # measured independently, the phases leave the client <-> gateway legs unexplained:
        # small on loopback, but not zero by construction
        assert 0.0 < float(r["unattributed_ms"]) <= 0.05 * e2e
        assert float(r["transit_ms"]) >= 0 and not r["error"]
        assert 280 <= float(r["model_load_ms"]) <= 1500       # FCBENCH_STARTUP_MS=300
        assert float(r["runtime_boot_ms"]) > 20                # a Python process really started
        assert float(r["first_inference_ms"]) >= 19            # FCBENCH_SLEEP_MS=20
        assert float(r["warm_ms"]) < e2e and float(r["cold_penalty_ms"]) > 250
    summary = json.loads((run / "summary.json").read_text())
    assert summary["mode"] == "harness" and summary["counts"]["ok"] == 3
    assert summary["phases_ms"]["model_load"]["median"] >= 280
    assert (run / "plots" / "phases.png").stat().st_size > 5000
    assert "slow" in (run / "run.yaml").read_text()


def test_profile_against_a_black_box_url_splits_with_headers(tmp_path):
    spec = sleep_spec("svc", startup_ms=200, sleep_ms=10, idle=0.3)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h, \
            Proxy(h.url, black_box=True) as proxy:  # the harness API hidden, as on FC
        res = _run("--url", proxy.url, "--function", "svc", "--force", "wait:0.8", "-n", "2",
                   "--out", str(tmp_path / "res"))
    assert res.returncode == 0, res.stderr
    run = _run_dir(tmp_path / "res")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["mode"] == "headers" and summary["counts"]["ok"] == 2
    rows = [r for r in csv.DictReader(open(run / "phases.csv")) if r["kind"] == "ok"]
    for r in rows:
        assert float(r["model_load_ms"]) >= 190 and float(r["platform_ms"]) > 0
        parts = ["runtime_boot_ms", "model_load_ms", "first_inference_ms", "platform_ms"]
        assert sum(float(r[c]) for c in parts) == pytest.approx(float(r["e2e_ms"]), abs=0.01)


def test_profile_of_a_harness_url_through_a_proxy_uses_the_harness_timeline(tmp_path):
    spec = sleep_spec("svc", startup_ms=200, sleep_ms=10, idle=60)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h, \
            Proxy(h.url) as proxy:
        res = _run("--url", proxy.url, "--function", "svc", "-n", "2", "--warmup", "0",
                   "--out", str(tmp_path / "res"))
    assert res.returncode == 0, res.stderr
    run = _run_dir(tmp_path / "res")
    summary = json.loads((run / "summary.json").read_text())
    # the cold starts were forced through the harness API (reclaim), not by waiting
    assert summary["mode"] == "harness" and summary["counts"]["ok"] == 2
    assert "force: target" in (run / "run.yaml").read_text()


def test_warm_samples_are_counted_not_kept(tmp_path):
    spec = sleep_spec("svc", idle=60)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        res = _run("--url", h.url, "--function", "svc", "--force", "none", "-n", "3",
                   "--warmup", "0", "--out", str(tmp_path / "res"))
    assert res.returncode == 0, res.stderr
    summary = json.loads((_run_dir(tmp_path / "res") / "summary.json").read_text())
    assert summary["counts"] == {"ok": 1, "warmup": 0, "not_cold": 2, "failed": 0}


def test_reclaim_force_refuses_a_target_without_the_harness_api(tmp_path):
    res = _run("--url", "http://127.0.0.1:9/x", "--force", "reclaim", "--out", str(tmp_path))
    assert res.returncode != 0 and "wait:SECONDS" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_delay_nobody_measures_comes_out_as_unattributed(tmp_path):
    # a proxy between the client and the harness holds every response 200 ms: no phase owns
    # that time, so it must show up as unattributed (and nowhere else)
    spec = sleep_spec("svc", startup_ms=100, sleep_ms=10, idle=60)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h, \
            Proxy(h.url, delay_s=0.2) as proxy:
        res = _run("--url", proxy.url, "--function", "svc", "-n", "3", "--warmup", "0",
                   "--out", str(tmp_path / "res"))
    assert res.returncode == 0, res.stderr
    run = _run_dir(tmp_path / "res")
    assert json.loads((run / "summary.json").read_text())["mode"] == "harness"
    kept = [r for r in csv.DictReader(open(run / "phases.csv")) if r["kind"] == "ok"]
    assert len(kept) == 3
    for r in kept:
        assert float(r["unattributed_ms"]) == pytest.approx(200.0, abs=10.0)
        assert float(r["model_load_ms"]) == pytest.approx(100.0, abs=60.0)
        assert float(r["first_inference_ms"]) < 100.0  # the delay did not leak into a phase


def test_an_instance_without_a_timeline_gives_unknown_phases_not_zeros(tmp_path):
    from test_wire import wire_spec  # an instance that sends no x-fcbench-* headers

    spec = tmp_path / "bare.yaml"
    import yaml
    doc = wire_spec("bare").to_fc()
    doc["harness"] = {"command": wire_spec("bare").harness.command}
    spec.write_text(yaml.safe_dump(doc))
    res = _run(str(spec), "-n", "1", "--warmup", "0", "--data", '{"id": 1}',
               "--out", str(tmp_path / "res"))
    assert res.returncode == 0, res.stderr
    assert "unknown" in res.stdout
    [r] = [r for r in csv.DictReader(open(_run_dir(tmp_path / "res") / "phases.csv"))
           if r["kind"] == "ok"]
    for name in ("runtime_boot", "model_load", "first_inference", "process_start", "transit"):
        assert r[f"{name}_ms"] == "", name  # no source: empty, never 0
    assert float(r["schedule_ms"]) >= 0 and float(r["spawn_ms"]) > 0
