"""GPU telemetry sampler process (``python -m fcbench.telemetry.sampler --out gpu.csv``): NVML samples to CSV.

Key names: `start_sampler` -> `SamplerHandle`, `run_sampler`, `sample_loop`, `GpuCsvWriter`, `read_gpu_csv`,
`plot_gpu`, `CSV_COLUMNS`. With no NVIDIA GPU it writes only the header and says so once.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError
from .nvml import GpuSample, Source

__all__ = ["CSV_COLUMNS", "NO_GPU", "GpuCsvWriter", "SamplerHandle", "SamplerStatus", "plot_gpu",
           "read_gpu_csv", "run_sampler", "sample_loop", "start_sampler"]

log = logging.getLogger(__name__)

#: Columns of gpu.csv. A GPU row leaves pid/process_memory_mb empty; a process row (one per process
#: holding memory on that GPU, same ts) leaves util_pct/memory_used_mb/memory_total_mb empty.
CSV_COLUMNS = ("ts", "gpu_index", "gpu_name", "util_pct", "memory_used_mb", "memory_total_mb",
               "pid", "process_memory_mb")
#: How the no-GPU status line begins.
NO_GPU = "no NVIDIA GPU found"
DEFAULT_SOURCE = "fcbench.telemetry.nvml:open_nvml"


@dataclass(frozen=True)
class SamplerStatus:
    """What the sampler found when it started: the GPUs it samples (none: it records nothing)."""

    gpus: tuple[str, ...]
    message: str

    @property
    def sampling(self) -> bool:
        return bool(self.gpus)


# --------------------------------------------------------------------------------------------- CSV


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


class GpuCsvWriter:
    """Writes gpu.csv: the header at once, then each sample's rows, flushed so a crash keeps them.

    An existing file is never overwritten (`FileExistsError`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(self.path, "x", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(CSV_COLUMNS)
        self._file.flush()
        self.rows = 0

    def write(self, ts: float, samples: Iterable[GpuSample]) -> int:
        """Write one sample of every GPU taken at epoch time `ts`; returns the rows written."""
        n = 0
        for g in samples:
            self._csv.writerow([f"{ts:.3f}", g.gpu_index, g.gpu_name, _num(g.util_pct),
                                _num(g.memory_used_mb), _num(g.memory_total_mb), "", ""])
            n += 1
            for p in g.processes:
                self._csv.writerow([f"{ts:.3f}", g.gpu_index, g.gpu_name, "", "", "", p.pid,
                                    _num(p.memory_mb)])
                n += 1
        self._file.flush()
        self.rows += n
        return n

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> GpuCsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_gpu_csv(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read gpu.csv back as ``(gpu_rows, process_rows)`` with numbers parsed (empty fields -> None)."""
    gpus: list[dict[str, Any]] = []
    procs: list[dict[str, Any]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rec: dict[str, Any] = {"ts": float(row["ts"]), "gpu_index": int(row["gpu_index"]),
                                   "gpu_name": row["gpu_name"]}
            for key in ("util_pct", "memory_used_mb", "memory_total_mb", "process_memory_mb"):
                rec[key] = float(row[key]) if row.get(key) else None
            if row.get("pid"):
                rec["pid"] = int(row["pid"])
                procs.append(rec)
            else:
                gpus.append(rec)
    return gpus, procs


# --------------------------------------------------------------------------------------------- loop


def sample_loop(source: Source, writer: GpuCsvWriter, *, interval: float, stop: threading.Event,
                max_samples: int | None = None, clock: Callable[[], float] = time.time) -> int:
    """Sample `source` every `interval` seconds until `stop` is set; returns the samples taken.

    Ticks are on an absolute monotonic schedule (no drift); a tick missed because a sample was slow
    is skipped, not bunched up. `clock` gives the epoch timestamp written to each row.
    """
    start = time.monotonic()
    taken = 0
    tick = 0
    while not stop.is_set():
        writer.write(clock(), source.sample())
        taken += 1
        if max_samples is not None and taken >= max_samples:
            break
        tick = max(tick + 1, math.floor((time.monotonic() - start) / interval) + 1)
        if stop.wait(max(0.0, start + tick * interval - time.monotonic())):
            break
    return taken


def _load_source(spec: str) -> Callable[[], tuple[Source | None, str]]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise UsageError(f"--source must look like module:callable; got {spec!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot load the sample source {spec!r} ({exc}); check --source") from exc


def run_sampler(out_path: str | os.PathLike[str], interval: float, stop: threading.Event, *,
                open_source: Callable[[], tuple[Source | None, str]] | None = None,
                on_status: Callable[[SamplerStatus], None] | None = None) -> SamplerStatus:
    """Write the header, then sample until `stop` is set (at once when there is no GPU).

    `open_source` returns ``(source or None, detail)`` like `fcbench.telemetry.nvml.open_nvml` (the
    default); `on_status` hears what was found before the first sample.
    """
    if not interval > 0:
        raise UsageError(f"the sampling interval must be above 0 s; got {interval}")
    if open_source is None:
        open_source = _load_source(DEFAULT_SOURCE)
    with GpuCsvWriter(out_path) as writer:
        source, detail = open_source()
        if source is None:
            status = SamplerStatus((), f"{NO_GPU}; {writer.path.name} stays empty ({detail})")
        else:
            status = SamplerStatus(tuple(source.names),
                                   f"sampling {detail} every {interval:g} s into {writer.path}")
        if on_status is not None:
            on_status(status)
        if source is not None:
            try:
                sample_loop(source, writer, interval=interval, stop=stop)
            finally:
                source.close()
    return status


# --------------------------------------------------------------------------------------------- process


class SamplerHandle:
    """A running sampler process; `stop()` ends it (within about a second) and is safe to call twice."""

    def __init__(self, proc: subprocess.Popen[bytes], status: SamplerStatus, out_path: Path) -> None:
        self.proc = proc
        self.status = status
        self.out_path = out_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 1.0) -> int:
        """Ask the sampler to finish (close its stdin, then SIGTERM), SIGKILL it past `timeout`; returns
        its exit code once it is gone."""
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            try:
                return self.proc.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                pass
            self.proc.terminate()
            try:
                return self.proc.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def __enter__(self) -> SamplerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sampler(out_path: str | os.PathLike[str], interval: float = 0.5, *,
                  source: str = DEFAULT_SOURCE, start_timeout: float = 30.0) -> SamplerHandle:
    """Start ``python -m fcbench.telemetry.sampler`` and wait until it knows what it samples.

    The status is logged once (e.g. "no NVIDIA GPU found; gpu.csv stays empty (...)") and kept on the
    handle. `source` names the callable that opens the sample source (tests point it at a fake).

    Raises:
        UsageError: the sampler could not start (e.g. `out_path` exists); the message says why.
    """
    out = Path(out_path)
    argv = [sys.executable, "-m", "fcbench.telemetry.sampler", "--out", str(out),
            "--interval", str(interval), "--source", source, "--status-json", "--stop-on-stdin-eof"]
    # stdin is the lifeline (EOF = stop, also when this process dies); stderr is shared with ours.
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    line = _readline(proc.stdout, start_timeout)
    doc = json.loads(line) if line.strip().startswith(b"{") else {}
    if "message" not in doc:
        handle = SamplerHandle(proc, SamplerStatus((), ""), out)
        code = handle.stop()
        why = doc.get("error") or f"it exited with code {code} before reporting (see stderr above)"
        raise UsageError(f"the GPU sampler did not start: {why}")
    status = SamplerStatus(tuple(doc["gpus"]), doc["message"])
    log.info("%s", status.message)
    return SamplerHandle(proc, status, out)


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else b""


# --------------------------------------------------------------------------------------------- plot


def plot_gpu(csv_path: str | os.PathLike[str], png_path: str | os.PathLike[str]) -> Path | None:
    """Plot utilisation and memory per GPU (and memory per process) over time into `png_path`.

    Returns the PNG path, or None (and writes nothing) when the CSV holds no samples.
    """
    gpus, procs = read_gpu_csv(csv_path)
    if not gpus:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t0 = min(r["ts"] for r in gpus)
    fig, (ax_util, ax_mem) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    try:
        def line(ax: Any, rows: list[dict[str, Any]], key: str, label: str, **style: Any) -> None:
            if any(r[key] is not None for r in rows):  # NVML may not report a field on some GPUs
                ax.plot([r["ts"] - t0 for r in rows], [r[key] for r in rows], label=label, **style)

        for index in sorted({r["gpu_index"] for r in gpus}):
            rows = [r for r in gpus if r["gpu_index"] == index]
            label = f"GPU {index} ({rows[0]['gpu_name']})"
            line(ax_util, rows, "util_pct", label)
            line(ax_mem, rows, "memory_used_mb", f"{label} used")
            total = next((r["memory_total_mb"] for r in rows if r["memory_total_mb"]), None)
            if total:
                ax_mem.axhline(total, linestyle=":", linewidth=0.8, color="grey")
        for key in sorted({(r["gpu_index"], r["pid"]) for r in procs}):
            rows = [r for r in procs if (r["gpu_index"], r["pid"]) == key]
            line(ax_mem, rows, "process_memory_mb", f"GPU {key[0]} pid {key[1]}",
                 linestyle="--", linewidth=1)
        ax_util.set_ylabel("utilisation (%)")
        ax_util.set_ylim(0, 105)
        ax_mem.set_ylabel("memory (MiB)")
        ax_mem.set_xlabel("seconds since first sample")
        for ax in (ax_util, ax_mem):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper right", fontsize="small")
        ax_util.set_title("GPU telemetry (NVML)")
        fig.tight_layout()
        png = Path(png_path)
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=100)
    finally:
        plt.close(fig)
    return png


# --------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m fcbench.telemetry.sampler``: sample until SIGTERM/SIGINT (or stdin closes, if asked)."""
    parser = argparse.ArgumentParser(prog="python -m fcbench.telemetry.sampler",
                                     description="Record NVIDIA GPU telemetry (NVML) into a CSV file.")
    parser.add_argument("--out", required=True, help="CSV file to create (never overwritten)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=argparse.SUPPRESS)
    parser.add_argument("--status-json", action="store_true",
                        help="print the start status (or error) as one JSON line on stdout")
    parser.add_argument("--stop-on-stdin-eof", action="store_true",
                        help="also stop when standard input closes (so the sampler ends with its parent)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.stop_on_stdin_eof:
        threading.Thread(target=_stop_on_eof, args=(stop,), daemon=True).start()

    def say(status: SamplerStatus) -> None:
        if args.status_json:
            print(json.dumps({"gpus": list(status.gpus), "message": status.message}), flush=True)
        else:
            print(f"fcbench gpu sampler: {status.message}", file=sys.stderr, flush=True)

    try:
        run_sampler(args.out, args.interval, stop, open_source=_load_source(args.source), on_status=say)
    except (FileExistsError, UsageError) as exc:
        message = (f"{args.out} already exists; results are never overwritten, so pick a new --out path"
                   if isinstance(exc, FileExistsError) else str(exc))
        if args.status_json:
            print(json.dumps({"error": message}), flush=True)
        else:
            print(f"fcbench gpu sampler: {message}", file=sys.stderr)
        return 2
    return 0


def _stop_on_eof(stop: threading.Event) -> None:
    # os.read on the raw fd: a daemon thread blocked in a buffered read would hang interpreter exit.
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
