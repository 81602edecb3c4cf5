"""The cold-start roofline: rows from a hand-made profile, the limits against independent tools,
and a known delay found again above an unmoved floor."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fcbench.cli import main
from fcbench.coldstart import limits as lim
from fcbench.coldstart.limits import Limit
from fcbench.coldstart.roofline import phase_floors, roofline_lines, roofline_rows, won
from fcbench.errors import UsageError
from fcbench.spec import load_function_spec

ROOT = Path(__file__).resolve().parent.parent


def _limits(**values: float | None) -> dict[str, Limit]:
    units = {"MBps": "MB/s", "ms": "ms", "bytes": "bytes"}
    return {k: Limit(k, v, units[k.rsplit("_", 1)[-1]], "hand-made",
                     reason="" if v is not None else "not here") for k, v in values.items()}


MEDIANS = {"schedule": 0.5, "image_pull": 900.0, "container_create": 20.0,
           "container_start": 120.0, "process_start": 40.0, "runtime_boot": 300.0,
           "model_load": 500.0, "first_inference": 30.0, "transit": 10.0,
           "unattributed": None}


def test_rows_are_bytes_over_bandwidth_and_the_tightest_floor_counts():
    limits = _limits(model_bytes=100e6, disk_read_cold_MBps=200.0, disk_read_warm_MBps=2000.0,
                     deserialise_ms=80.0, python_boot_ms=25.0, python_import_ms=250.0,
                     warm_inference_ms=12.0)
    rows = roofline_rows(MEDIANS, limits, runtime="process", pull=False)
    by = {(r.phase, r.floor_source.split(":")[0].split(" / ")[-1]): r for r in rows}
    cold = by[("model_load", "disk_read_cold_MBps")]
    assert cold.floor_ms == pytest.approx(500.0) and cold.ratio == pytest.approx(1.0)
    assert by[("model_load", "disk_read_warm_MBps")].floor_ms == pytest.approx(50.0)
    assert by[("model_load", "deserialise_ms")].ratio == pytest.approx(500 / 80)
    assert by[("process_start", "python_boot_ms")].ratio == pytest.approx(40 / 25)
    assert by[("first_inference", "warm_inference_ms")].floor_ms == 12.0
    # the process runtime has no image or container step: no docker rows
    assert not any(r.phase in ("image_pull", "container_create") and r.floor_ms for r in rows)
    assert phase_floors(rows)["model_load"] == (500.0, 500.0)  # the cold read, the largest
    gain = won(rows, e2e_ms=2000.0)
    assert gain["won_ms"] == pytest.approx((40 - 25) + (300 - 250) + 0 + (30 - 12))
    assert gain["won_pct"] == pytest.approx(100 * gain["won_ms"] / 2000.0)
    assert gain["floor_ms"] == pytest.approx(25 + 250 + 500 + 12)
    text = "\n".join(roofline_lines(rows, gain))
    assert "could be won: 83 ms" in text and "(4 %)" in text


def test_docker_rows_hold_the_pull_against_the_registry_and_the_disk():
    limits = _limits(model_bytes=14e6, registry_pull_MBps=100.0, disk_write_MBps=50.0,
                     image_bytes=300e6, image_layer_bytes=100e6, container_create_ms=10.0,
                     container_start_ms=100.0, h2d_pinned_MBps=None)
    rows = roofline_rows(MEDIANS, limits, runtime="docker", pull=True, pull_bytes=50e6)
    pull = [r for r in rows if r.phase == "image_pull"]
    assert [r.floor_ms for r in pull] == pytest.approx([500.0, 3000.0])  # 150 MB unpacked
    assert "150.0 MB unpacked" in pull[1].floor_source
    start = next(r for r in rows if r.phase == "container_start")
    assert start.ratio == pytest.approx(1.2)
    h2d = next(r for r in rows if "h2d" in r.floor_source)
    assert h2d.floor_ms is None and "not measured (not here)" in h2d.floor_source
    # the container's interpreter has no floor: its phases are counted apart, not won
    boot = next(r for r in rows if r.phase == "runtime_boot")
    assert boot.floor_ms is None and "container" in boot.floor_source
    without = roofline_rows(MEDIANS, limits, runtime="docker", pull=False)
    row = next(r for r in without if r.phase == "image_pull")
    assert row.floor_ms is None and "not part of the start" in row.floor_source
    nothing = roofline_rows(MEDIANS, limits, runtime="docker", pull=True, pull_bytes=0)
    row = next(r for r in nothing if r.phase == "image_pull")
    assert row.floor_ms is None and "downloaded no bytes" in row.floor_source


def test_a_missing_model_path_is_a_sentence(tmp_path):
    spec = tmp_path / "f.yaml"
    spec.write_text("functionName: f\nenvironmentVariables:\n  FCBENCH_MODEL: mobilenet-v2\n"
                    f"  FCBENCH_MODEL_PATH: {tmp_path}/nope.onnx\n")
    with pytest.raises(UsageError, match="nope.onnx, which does not exist; fix "
                       "FCBENCH_MODEL_PATH"):
        lim.model_files(load_function_spec(spec))
    res = CliRunner().invoke(main, ["coldstart", "roofline", str(spec), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "which does not exist" in res.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_no_such_spec_is_a_sentence(tmp_path):
    res = CliRunner().invoke(main, ["coldstart", "roofline", str(tmp_path / "nosuch.yaml")])
    assert res.exit_code == 2 and "nosuch.yaml" in res.output
    assert "Traceback" not in res.output


def test_limits_without_their_hardware_say_why():
    if not Path("/dev/nvidiactl").exists():
        pinned, pageable = lim.host_to_device(1 << 20)
        assert pinned.value is None and "no CUDA device" in pinned.reason
        assert pageable.key == "h2d_pageable_MBps"
    pull = lim.registry_pull("fcbench/mobilenet-v2:latest")
    assert pull.value is None and "names no registry" in pull.reason
    assert lim._split_ref("127.0.0.1:5000/fcbench/m:v1") == ("127.0.0.1:5000", "fcbench/m", "v1")
    assert lim._split_ref("127.0.0.1:5000/fcbench/m") == ("127.0.0.1:5000", "fcbench/m",
                                                          "latest")


def _dd_cold_mbps(path: Path) -> float:
    """dd's own read of `path` after dd itself dropped its cache (bytes / seconds it prints)."""
    subprocess.run(["dd", f"if={path}", "iflag=nocache", "count=0"], check=True,
                   capture_output=True)
    out = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=4M"], check=True,
                         capture_output=True, text=True).stderr
    m = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", out, re.M)
    assert m, out
    return int(m.group(1)) / 1e6 / float(m.group(2))


@pytest.mark.slow
def test_cold_read_agrees_with_dd(tmp_path_factory):
    # a real disk, not a tmpfs (/tmp may be one): the cold read must reach the device
    folder = Path(os.environ.get("FCBENCH_CACHE_DIR") or Path.home() / ".cache" / "fcbench")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".roofline-dd-{os.getpid()}.bin"
    try:
        with open(path, "wb") as f:
            for _ in range(32):
                f.write(os.urandom(4 << 20))  # 128 MiB
            os.fsync(f.fileno())
        ours = lim.read_cold([path], repeats=3).value
        dd = sorted(_dd_cold_mbps(path) for _ in range(3))[1]
        assert ours is not None
        assert abs(ours - dd) / dd <= 0.35, (ours, dd)
    finally:
        path.unlink(missing_ok=True)


def _roofline(spec: Path, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "roofline", str(spec),
                          "-n", "2", "--warmup", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert "could be won:" in res.stdout
    run = next(d for d in out.iterdir() if d.is_dir())
    rows = list(csv.DictReader(open(run / "roofline.csv")))
    limits = json.loads((run / "limits.json").read_text())
    assert limits["disk_read_cold_MBps"]["unit"] == "MB/s"
    assert limits["model_bytes"]["value"] > 1e6
    assert (run / "plots" / "roofline.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["roofline"]["won_pct"] is not None
    load = [r for r in rows if r["phase"] == "model_load" and r["floor_ms"]]
    return {"measured": float(load[0]["measured_ms"]),
            "floor": max(float(r["floor_ms"]) for r in load)}


@pytest.mark.slow
def test_an_injected_model_load_delay_lands_above_an_unmoved_floor(tmp_path):
    delay = 800
    found = {}
    for ms in (0, delay):
        spec = tmp_path / f"mnv2-{ms}.yaml"
        spec.write_text((ROOT / "workloads/functions/mobilenet-v2.yaml").read_text()
                        .replace("FCBENCH_MODEL: mobilenet-v2",
                                 f"FCBENCH_MODEL: mobilenet-v2\n  FCBENCH_STARTUP_MS: '{ms}'")
                        .replace("file: ../images/sample.jpg",
                                 f"file: {ROOT}/workloads/images/sample.jpg"))
        found[ms] = _roofline(spec, tmp_path / f"out-{ms}")
    slow, fast = found[delay], found[0]
    # the delay is in the measured phase, far above its floor ...
    assert slow["measured"] - slow["floor"] >= 0.9 * delay
    assert delay * 0.8 <= slow["measured"] - fast["measured"] <= delay * 1.5
    # ... and the floor, measured without running the model's load, does not move with it
    assert slow["floor"] < delay / 4 and fast["floor"] < delay / 4


def test_roofline_needs_a_spec():
    res = CliRunner().invoke(main, ["coldstart", "profile", "--url", "http://127.0.0.1:9",
                                    "--roofline"])
    assert res.exit_code == 2 and "--roofline needs SPEC.yaml" in res.output
