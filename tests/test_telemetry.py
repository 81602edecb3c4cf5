"""Tests for the NVML telemetry sampler: the no-GPU path on this machine (real NVML library lookup,
real sampler process), and the CSV/plot/process path fed by a fake NVML source — a fake only because
no GPU exists here; `open_fake` below is what the sampler process loads in its place."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from fcbench.errors import UsageError
from fcbench.telemetry import CSV_COLUMNS, NO_GPU, open_nvml, plot_gpu, read_gpu_csv, start_sampler
from fcbench.telemetry.nvml import GpuSample, ProcessSample
from fcbench.telemetry.sampler import GpuCsvWriter, run_sampler, sample_loop

TESTS = pathlib.Path(__file__).resolve().parent
HEADER = ",".join(CSV_COLUMNS) + "\n"
FAKE = "test_telemetry:open_fake"


class FakeNvml:
    """Two GPUs; GPU 0 runs two processes (one whose memory NVML cannot tell), GPU 1 none."""

    names = ["Fake GPU A", "Fake GPU B"]

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def sample(self) -> list[GpuSample]:
        n = self.calls
        self.calls += 1
        return [
            GpuSample(0, self.names[0], util_pct=float(10 * (n % 10)), memory_used_mb=1000.0 + n,
                      memory_total_mb=16384.0,
                      processes=(ProcessSample(4242, 900.0 + n), ProcessSample(4343, None))),
            GpuSample(1, self.names[1], util_pct=None, memory_used_mb=None, memory_total_mb=None),
        ]

    def close(self) -> None:
        self.closed = True


def open_fake() -> tuple[FakeNvml, str]:
    """What the sampler process calls instead of `open_nvml` in the process tests."""
    return FakeNvml(), "2 NVIDIA GPU(s): Fake GPU A, Fake GPU B"


@pytest.fixture
def fake_source_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the sampler process import this module (for `--source test_telemetry:open_fake`)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone if /proc says so.
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


# ------------------------------------------------------------------------------------ no GPU (real)


@pytest.fixture
def no_gpu() -> None:
    source, detail = open_nvml()
    if source is not None:
        source.close()
        pytest.skip(f"this machine has a GPU ({detail}); the no-GPU path cannot be seen here")


def test_no_gpu_sampler_process_writes_header_only_and_says_so_once(
        no_gpu: None, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run" / "gpu.csv"
    caplog.set_level("INFO", logger="fcbench.telemetry.sampler")
    handle = start_sampler(out, interval=0.1)
    try:
        assert handle.status.message.startswith(f"{NO_GPU}; gpu.csv stays empty")
        assert not handle.status.sampling and handle.status.gpus == ()
    finally:
        code = handle.stop(timeout=1.0)
    assert code == 0  # it ended by itself: not terminated, not killed
    assert not handle.running() and _gone(handle.pid)
    assert out.read_text() == HEADER
    said = [r for r in caplog.records if NO_GPU in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "INFO"
    assert handle.stop() == 0  # stopping twice is fine


def test_no_gpu_command_line(no_gpu: None, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "gpu.csv"
    cmd = [sys.executable, "-m", "fcbench.telemetry.sampler", "--out", str(out), "--interval", "0.5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and NO_GPU in lines[0] and "Traceback" not in done.stderr
    assert out.read_text() == HEADER and done.stdout == ""

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_start_sampler_reports_why_it_could_not_start(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "gpu.csv"
    out.write_text("keep me\n")
    with pytest.raises(UsageError, match="already exists; results are never overwritten"):
        start_sampler(out)
    assert out.read_text() == "keep me\n"
    with pytest.raises(UsageError, match="cannot load the sample source"):
        start_sampler(tmp_path / "other.csv", source="no_such_module:open")


# ------------------------------------------------------------------------------------ fake NVML source


def test_loop_writes_one_row_per_gpu_and_per_process(tmp_path: pathlib.Path) -> None:
    source = FakeNvml()
    path = tmp_path / "gpu.csv"
    ticks = iter(range(1000))
    with GpuCsvWriter(path) as writer:
        taken = sample_loop(source, writer, interval=0.001, stop=threading.Event(), max_samples=4,
                            clock=lambda: 1_700_000_000.0 + next(ticks))
    assert taken == 4 and writer.rows == 4 * 4

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1:5] == [
        ["1700000000.000", "0", "Fake GPU A", "0.0", "1000.0", "16384.0", "", ""],
        ["1700000000.000", "0", "Fake GPU A", "", "", "", "4242", "900.0"],
        ["1700000000.000", "0", "Fake GPU A", "", "", "", "4343", ""],
        ["1700000000.000", "1", "Fake GPU B", "", "", "", "", ""],
    ]
    gpus, procs = read_gpu_csv(path)
    assert [g["memory_used_mb"] for g in gpus if g["gpu_index"] == 0] == [1000.0, 1001.0, 1002.0, 1003.0]
    assert [g["util_pct"] for g in gpus if g["gpu_index"] == 0] == [0.0, 10.0, 20.0, 30.0]
    assert {p["pid"] for p in procs} == {4242, 4343}
    assert [p["process_memory_mb"] for p in procs if p["pid"] == 4242] == [900.0, 901.0, 902.0, 903.0]


def test_nvml_source_reads_fields_and_survives_unsupported_calls() -> None:
    """`NvmlSource` over a stand-in for the pynvml module (no GPU or driver here)."""
    from types import SimpleNamespace as NS

    from fcbench.telemetry.nvml import NvmlSource

    class NVMLError(Exception):
        pass

    class Mismatch(Exception):
        pass

    def compute(handle):  # newest call: this "driver" is too old for it
        raise Mismatch("use _v2")

    def compute_v2(handle):
        if handle == "h1":
            raise NVMLError("not supported")
        return [NS(pid=7, usedGpuMemory=512 * 2**20), NS(pid=9, usedGpuMemory=None)]

    def util(handle):
        if handle == "h1":
            raise NVMLError("not supported")
        return NS(gpu=37, memory=5)

    lib = NS(NVMLError=NVMLError, NVMLLibraryMismatchError=Mismatch, nvmlShutdown=lambda: None,
             nvmlDeviceGetUtilizationRates=util,
             nvmlDeviceGetMemoryInfo=lambda h: NS(used=3 * 2**30, total=80 * 2**30),
             nvmlDeviceGetComputeRunningProcesses=compute,
             nvmlDeviceGetComputeRunningProcesses_v2=compute_v2,
             nvmlDeviceGetGraphicsRunningProcesses=lambda h: [NS(pid=7, usedGpuMemory=1)])
    got = NvmlSource(lib, ["h0", "h1"], ["H100", "H100"]).sample()
    assert got[0] == GpuSample(0, "H100", 37.0, 3072.0, 81920.0,
                               (ProcessSample(7, 512.0), ProcessSample(9, None)))
    assert got[1].util_pct is None and got[1].memory_used_mb == 3072.0
    assert got[1].processes == (ProcessSample(7, 1 / 2**20),)  # graphics list still read


def test_run_sampler_stops_when_asked_and_closes_the_source(tmp_path: pathlib.Path) -> None:
    source = FakeNvml()
    stop = threading.Event()
    heard = []
    runner = threading.Thread(target=run_sampler, args=(tmp_path / "gpu.csv", 0.02, stop),
                              kwargs={"open_source": lambda: (source, "2 fake GPUs"),
                                      "on_status": heard.append})
    runner.start()
    deadline = time.monotonic() + 10
    while source.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join(5)
    assert not runner.is_alive() and source.closed and source.calls >= 3
    assert heard[0].gpus == ("Fake GPU A", "Fake GPU B") and heard[0].sampling
    with pytest.raises(UsageError, match="interval must be above 0"):
        run_sampler(tmp_path / "other.csv", 0, stop, open_source=open_fake)


def test_sampler_process_records_as_it_goes_and_stops_cleanly(
        tmp_path: pathlib.Path, fake_source_importable: None) -> None:
    out = tmp_path / "gpu.csv"
    handle = start_sampler(out, interval=0.05, source=FAKE)
    try:
        assert handle.status.gpus == ("Fake GPU A", "Fake GPU B") and handle.running()
        deadline = time.monotonic() + 15
        while len(read_gpu_csv(out)[0]) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        gpus_while_running, _ = read_gpu_csv(out)  # flushed as it goes: readable mid-run
        assert len(gpus_while_running) >= 6
    finally:
        code = handle.stop(timeout=1.0)
    assert code == 0 and _gone(handle.pid)  # ended through its stop path, within the second
    gpus, procs = read_gpu_csv(out)
    assert len(gpus) >= len(gpus_while_running) and len(procs) == len(gpus)  # 2 procs on 1 of 2 GPUs
    ts = sorted({g["ts"] for g in gpus})
    assert all(b > a for a, b in zip(ts, ts[1:]))


def test_sampler_ends_when_its_parent_dies(tmp_path: pathlib.Path, fake_source_importable: None) -> None:
    script = ("import sys, time\n"
              "from fcbench.telemetry import start_sampler\n"
              f"h = start_sampler({str(tmp_path / 'gpu.csv')!r}, interval=0.05, source={FAKE!r})\n"
              "print(h.pid, flush=True)\n"
              "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    sampler_pid = None
    try:
        sampler_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert not _gone(sampler_pid)
        parent.send_signal(signal.SIGKILL)  # no chance to call stop()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(sampler_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(sampler_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if sampler_pid is not None and not _gone(sampler_pid):
            os.kill(sampler_pid, signal.SIGKILL)
        parent.stdout.close()  # type: ignore[union-attr]
    assert read_gpu_csv(tmp_path / "gpu.csv")[0]  # it had been sampling


def test_plot_gpu(tmp_path: pathlib.Path) -> None:
    from PIL import Image

    path = tmp_path / "gpu.csv"
    with GpuCsvWriter(path) as writer:
        sample_loop(FakeNvml(), writer, interval=0.001, stop=threading.Event(), max_samples=20)
    png = plot_gpu(path, tmp_path / "plots" / "gpu.png")
    assert png == tmp_path / "plots" / "gpu.png"
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] >= 600 and img.size[1] >= 400
        assert len(img.convert("L").getcolors(1 << 16) or []) > 10  # lines and text were drawn

    empty = tmp_path / "empty.csv"
    GpuCsvWriter(empty).close()
    assert plot_gpu(empty, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert json.dumps(read_gpu_csv(empty)) == "[[], []]"
