"""`fcbench report --compare`: real harness runs (and a simulated one) side by side — every
run.yaml difference and nothing else, each run's own summary figures, an HTML page Chromium
renders with its plots."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from browser import dump_dom, screenshot
from PIL import Image

pytestmark = pytest.mark.slow  # every test here starts processes or servers

SECRET = "hunter2-never-in-a-file"


def _fcbench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcbench", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _workload(path: Path, *, name: str, concurrency: int, idle: float, out: Path) -> Path:
    doc = {"name": name,
           "target": {"kind": "local", "functions": [{
               "functionName": "f", "instanceConcurrency": concurrency,
               "gpuConfig": {"gpuMemorySize": 4096},  # placed on a virtual card; priced
               "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "40",
                                        "FCBENCH_STARTUP_MS": "150", "MY_API_KEY": SECRET},
               "harness": {"idleTimeout": idle, "maxInstances": 8}}]},
           "request": {"timeout": 30}, "duration": 3, "seed": 5,
           "plan": {"kind": "poisson", "rate": 5}, "output": str(out)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two short measured runs that differ in instanceConcurrency and idleTimeout, and a
    simulation of the first."""
    base = tmp_path_factory.mktemp("compare")
    out: dict[str, Path] = {}
    for key, conc, idle in (("a", 1, 0.3), ("b", 2, 30)):
        wl = _workload(base / f"{key}.yaml", name=f"cmp-{key}", concurrency=conc, idle=idle,
                       out=base / key)
        res = _fcbench("run", str(wl))
        assert res.returncode == 0, res.stderr[-3000:]
        [out[key]] = list((base / key).iterdir())
    res = _fcbench("simulate", str(base / "a.yaml"), "--out", str(base / "sim"))
    assert res.returncode == 0, res.stderr[-3000:]
    [out["sim"]] = list((base / "sim").iterdir())
    return out


def _compare(*folders: Path, out: Path, extra: tuple[str, ...] = ()
             ) -> tuple[subprocess.CompletedProcess, Path]:
    res = _fcbench("report", "--compare", *map(str, folders), "--out", str(out), *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    [folder] = list(out.iterdir())  # one fresh folder per comparison
    assert folder.name.endswith("-compare")
    return res, folder


def _rows(folder: Path, name: str = "compare.csv") -> list[dict[str, str]]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def _leaves(value, prefix=""):
    """The test's own flattening of a run.yaml: {dotted key: value}."""
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def test_every_run_yaml_difference_and_nothing_identical(runs, tmp_path):
    res, folder = _compare(runs["a"], runs["b"], out=tmp_path / "cmp")
    a = _leaves(yaml.safe_load((runs["a"] / "run.yaml").read_text()))
    b = _leaves(yaml.safe_load((runs["b"] / "run.yaml").read_text()))
    expected = {k for k in a.keys() | b.keys()
                if k not in a or k not in b or a[k] != b[k]}
    diff = _rows(folder, "config-diff.csv")
    keys = {r["key"] for r in diff}
    assert keys == expected
    spec = "workload.target.functionSpecs[0]"
    assert {f"{spec}.instanceConcurrency", f"{spec}.harness.idleTimeout"} <= keys
    assert f"{spec}.environmentVariables.FCBENCH_SLEEP_MS" not in keys  # the same in both
    assert "workload.plan.rate" not in keys
    by = {(r["key"], r["run"]): r for r in diff}
    assert json.loads(by[f"{spec}.instanceConcurrency", runs["a"].name]["value"]) == 1
    assert json.loads(by[f"{spec}.instanceConcurrency", runs["b"].name]["value"]) == 2
    # the line of run.yaml the value sits on, as the file has it
    line = int(by[f"{spec}.harness.idleTimeout", runs["b"].name]["line"])
    assert "idleTimeout: 30" in (runs["b"] / "run.yaml").read_text().splitlines()[line - 1]
    # the terminal shows the settings that differ, labelled by folder name
    assert runs["a"].name in res.stdout and runs["b"].name in res.stdout
    for key in (f"{spec}.instanceConcurrency", f"{spec}.harness.idleTimeout"):
        assert key in res.stdout
    assert "FCBENCH_SLEEP_MS" not in res.stdout
    # the secret never reaches the comparison (masked in run.yaml, masked again on reading)
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in res.stdout


def test_figures_are_the_runs_own_summary_values(runs, tmp_path):
    _, folder = _compare(runs["a"], runs["b"], out=tmp_path / "cmp")
    rows = _rows(folder)
    assert {r["run"] for r in rows} == {runs["a"].name, runs["b"].name}
    got = {(r["metric"], r["run"]): r for r in rows}
    summaries = {k: json.loads((runs[k] / "summary.json").read_text()) for k in ("a", "b")}
    for key, s in summaries.items():
        name = runs[key].name
        for block in ("latency_ms", "latency_from_intended_ms"):
            for q in ("p50", "p90", "p99", "max"):
                assert float(got[f"{block}.{q}", name]["value"]) == s[block][q], (block, q)
        p = got["p_cold", name]
        assert float(p["value"]) == s["p_cold"]["value"]
        assert (float(p["wilson_lo"]), float(p["wilson_hi"])) == (s["p_cold"]["lo"],
                                                                 s["p_cold"]["hi"])
        assert (float(p["cluster_lo"]), float(p["cluster_hi"])) == (
            s["p_cold"]["cluster"]["lo"], s["p_cold"]["cluster"]["hi"])
        assert int(got["count", name]["value"]) == s["count"]
        assert int(got["outcomes.cold", name]["value"]) == s["outcomes"]["cold"]["count"]
    # B against A: ratios for percentiles, interval overlap for P(cold)
    sa, sb = summaries["a"], summaries["b"]
    ratio = float(got["latency_ms.p99", runs["b"].name]["ratio_to_baseline"])
    assert ratio == pytest.approx(sb["latency_ms"]["p99"] / sa["latency_ms"]["p99"], rel=1e-5)
    ca, cb = sa["p_cold"]["cluster"], sb["p_cold"]["cluster"]
    overlap = not (ca["hi"] < cb["lo"] or cb["hi"] < ca["lo"])
    assert got["p_cold", runs["b"].name]["overlaps_baseline"] == str(overlap).lower()
    # the first run kept instances idle for only 0.3 s: it started more of them
    assert sa["instances_started"] > sb["instances_started"]
    # cost per day: what `fcbench cost RUN_DIR` says, from the same metering
    for key in ("a", "b"):
        per_day = float(got["cost.per_day", runs[key].name]["value"])
        assert per_day > 0
        res = _fcbench("cost", str(runs[key]), "--table", "fc-doc-simple", timeout=60)
        assert res.returncode == 0, res.stderr
        shown = re.search(r"FC per day\s+([\d.]+) CNY", res.stdout)
        assert shown and float(shown.group(1)) == pytest.approx(per_day, abs=0.005)
        with open(runs[key] / "instances.csv", newline="") as f:
            inst = list(csv.DictReader(f))
        busy = sum(float(r["active_s"]) for r in inst)
        scale = 86400 / summaries[key]["planned_duration_s"]  # a day of the planned run
        assert per_day == pytest.approx(4 * busy * 0.0007 * scale, rel=1e-6)  # by hand
        per_k = float(got["cost.per_1000_requests", runs[key].name]["value"])
        assert per_k == pytest.approx(per_day / (summaries[key]["count"] * scale) * 1000,
                                      rel=1e-6)


def test_html_renders_in_chromium_with_its_plots(runs, tmp_path):
    _, folder = _compare(runs["a"], runs["b"], out=tmp_path / "cmp")
    page = folder / "compare.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # readable offline
    dom = dump_dom(page.as_uri())
    assert runs["a"].name in dom and runs["b"].name in dom
    assert 'data-key="workload.target.functionSpecs[0].instanceConcurrency"' in dom
    rendered = [int(w) for w in re.findall(r'data-rendered="(\d+)"', dom)]
    assert len(rendered) == dom.count("<img") >= 2 and min(rendered) > 0  # CDF and P(cold)
    for name in ("latency_cdf.png", "p_cold.png"):
        assert Image.open(folder / "plots" / name).size[0] > 500
    img = Image.open(screenshot(page.as_uri(), tmp_path / "shot.png", size="1200,2400"))
    colors = img.convert("RGB").resize((200, 400)).getcolors(maxcolors=100_000)
    assert colors is not None and len(colors) > 50


def test_a_simulated_run_against_the_measured_one(runs, tmp_path):
    _, folder = _compare(runs["a"], runs["sim"], out=tmp_path / "cmp")
    rows = {(r["metric"], r["run"]): r for r in _rows(folder)}
    sim = json.loads((runs["sim"] / "summary.json").read_text())
    assert float(rows["p_cold", runs["sim"].name]["value"]) == sim["p_cold"]["value"]
    assert int(rows["count", runs["sim"].name]["value"]) == sim["count"]
    assert float(rows["cost.per_day", runs["sim"].name]["value"]) > 0  # the sim meters too
    diff = {r["key"]: r for r in _rows(folder, "config-diff.csv")}
    assert "kind" in diff  # run vs simulated
    # the same workload file: its settings are no difference
    assert "workload.target.functionSpecs[0].instanceConcurrency" not in diff
    assert "simulated" in (folder / "compare.html").read_text()


def test_missing_figures_are_recomputed_the_same_way(runs, tmp_path):
    copy = tmp_path / "older-run"
    shutil.copytree(runs["a"], copy)
    summary = json.loads((copy / "summary.json").read_text())
    for key in ("latency_from_intended_ms", "p_cold"):
        del summary[key]
    (copy / "summary.json").write_text(json.dumps(summary))
    res, folder = _compare(runs["a"], copy, out=tmp_path / "cmp")
    rows = {(r["metric"], r["run"]): r for r in _rows(folder)}
    for metric in ("latency_from_intended_ms.p99", "p_cold"):
        assert rows[metric, copy.name]["value"] == rows[metric, runs["a"].name]["value"]
    assert rows["p_cold", copy.name]["cluster_hi"] == rows["p_cold", runs["a"].name]["cluster_hi"]
    assert "recomputed" in res.stdout and "p_cold" in res.stdout


def test_coldstart_profiles_compare_phase_medians(tmp_path):
    spec = tmp_path / "f.yaml"
    spec.write_text("functionName: f\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "  FCBENCH_STARTUP_MS: '100'\n  FCBENCH_SLEEP_MS: '5'\n")
    res = _fcbench("coldstart", "profile", str(spec), "-n", "2", "--out", str(tmp_path / "p"))
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "p").iterdir())
    # the same profile without its summary: the medians come from phases.csv, processed the
    # profile's way
    bare = tmp_path / "bare-profile"
    shutil.copytree(run, bare)
    (bare / "summary.json").unlink()
    res, folder = _compare(run, bare, out=tmp_path / "cmp")
    rows = {(r["metric"], r["run"]): r for r in _rows(folder)}
    phases = json.loads((run / "summary.json").read_text())["phases_ms"]
    for name in ("model_load", "runtime_boot", "e2e"):
        assert float(rows[f"phase.{name}.median", run.name]["value"]) == \
            phases[name]["median"]
        assert float(rows[f"phase.{name}.median", bare.name]["value"]) == \
            pytest.approx(phases[name]["median"], abs=1e-3)  # phases.csv keeps 3 decimals
    assert "no instances.csv or requests.csv" in res.stdout  # a profile has nothing to price
    assert (folder / "plots" / "phases.png").is_file()


def test_a_folder_that_is_no_run_is_named_and_exit_2(runs, tmp_path):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    res = _fcbench("report", "--compare", str(runs["a"]), str(empty), "--out",
                   str(tmp_path / "cmp"), timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(empty) in res.stderr and "not a fcbench run folder" in res.stderr
    assert not (tmp_path / "cmp").exists()  # nothing half made
    one = _fcbench("report", "--compare", str(runs["a"]), timeout=60)
    assert one.returncode == 2 and "two or more" in one.stderr


def test_comparisons_never_overwrite_each_other(runs, tmp_path):
    out = tmp_path / "cmp"
    for _ in range(2):
        res = _fcbench("report", "--compare", str(runs["a"]), str(runs["b"]), "--out",
                       str(out))
        assert res.returncode == 0, res.stderr
    folders = sorted(out.iterdir())
    assert len(folders) == 2 and all((f / "compare.html").is_file() for f in folders)
    doc = yaml.safe_load((folders[0] / "run.yaml").read_text())
    assert doc["kind"] == "compare" and doc["baseline"] == runs["a"].name
    res = _fcbench("report", "--compare", str(folders[0]), str(runs["a"]), "--out",
                   str(tmp_path / "x"), timeout=60)
    assert res.returncode == 2 and "is a comparison" in res.stderr


def test_sweeps_compare_p_cold_per_level(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("functionName: s\nenvironmentVariables: {FCBENCH_MODEL: sleep, "
                    "FCBENCH_SLEEP_MS: '200', FCBENCH_STARTUP_MS: '100'}\n"
                    "harness: {idleTimeout: 1, maxInstances: 6}\n")
    res = _fcbench("coldstart", "sweep", str(spec), "--concurrency", "1,2", "--duration", "4",
                   "--service-ms", "200", "--out", str(tmp_path / "sw"))
    assert res.returncode == 0, res.stderr[-3000:]
    [run] = list((tmp_path / "sw").iterdir())
    other = tmp_path / "same-sweep"  # the same figures under another name: they must agree
    shutil.copytree(run, other)
    _, folder = _compare(run, other, out=tmp_path / "cmp")
    rows = {(r["metric"], r["run"]): r for r in _rows(folder)}
    with open(run / "sweep.csv", newline="") as f:
        levels = list(csv.DictReader(f))
    assert len(levels) == 2
    for lv in levels:
        at = f"[level={float(lv['level']):g}]"
        for name in (run.name, other.name):
            row = rows[f"p_cold{at}", name]
            assert float(row["value"]) == pytest.approx(float(lv["p_cold"]))
            assert float(row["cluster_hi"]) == pytest.approx(float(lv["p_cold_cluster_hi"]))
        assert rows[f"p_cold{at}", other.name]["overlaps_baseline"] == "true"
        assert float(rows[f"latency_ms.p99{at}", other.name]["ratio_to_baseline"]) == 1.0
    diff = {r["key"] for r in _rows(folder, "config-diff.csv")}
    assert diff == set()  # a copy: run.yaml is the same
    assert (folder / "plots" / "p_cold.png").is_file()
