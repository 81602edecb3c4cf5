"""Per-request records: `InvocationRecord`, header parsing, a streaming CSV writer, part merging.

Key names: `InvocationRecord`, `COLUMNS` (the stable first columns of ``requests.csv``),
`ALL_COLUMNS`, `parse_headers`, `RecordWriter`, `merge_parts`, `read_records`.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "ALL_COLUMNS",
    "COLUMNS",
    "EXTRA_COLUMNS",
    "InvocationRecord",
    "RecordWriter",
    "merge_parts",
    "parse_headers",
    "read_records",
]

#: The stable first columns of requests.csv, in order (DESIGN.md "Results").
COLUMNS = ("request_id", "intended_ts", "start_ts", "end_ts", "latency_ms", "status", "cold",
           "instance_id", "queue_ms", "error")
#: Columns that follow; new ones are only ever appended.
EXTRA_COLUMNS = ("latency_from_intended_ms", "inference_ms", "first", "batch_size", "boot_ts",
                 "import_ms", "model_load_ms", "ready_ts", "fc_request_id", "worker")
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS

_TS = ("intended_ts", "start_ts", "end_ts", "boot_ts", "ready_ts")
_MS = ("latency_ms", "queue_ms", "latency_from_intended_ms", "inference_ms", "import_ms",
       "model_load_ms")
_INT = ("status", "batch_size", "worker")
_BOOL = ("cold", "first")


@dataclass(slots=True)
class InvocationRecord:
    """One request as the client saw it, plus what the platform and the instance told it.

    Timestamps are epoch seconds; durations carry their unit in the name. ``status`` 0 means no
    HTTP response (connection error, timeout). ``cold`` is None when the target did not say.
    """

    request_id: str = ""
    intended_ts: float | None = None
    start_ts: float = 0.0
    end_ts: float = 0.0
    latency_ms: float = 0.0
    status: int = 0
    cold: bool | None = None
    instance_id: str = ""
    queue_ms: float | None = None
    error: str = ""
    inference_ms: float | None = None
    first: bool | None = None
    batch_size: int | None = None
    boot_ts: float | None = None
    import_ms: float | None = None
    model_load_ms: float | None = None
    ready_ts: float | None = None
    fc_request_id: str = ""
    worker: int | None = None

    @property
    def ok(self) -> bool:
        return 0 < self.status < 400

    @property
    def latency_from_intended_ms(self) -> float | None:
        """End minus intended send time: latency corrected for coordinated omission."""
        if self.intended_ts is None:
            return None
        return (self.end_ts - self.intended_ts) * 1000.0

    def row(self) -> tuple[str, ...]:
        """The record as `ALL_COLUMNS` strings (empty for unknown)."""
        return (self.request_id, _ts(self.intended_ts), _ts(self.start_ts), _ts(self.end_ts),
                _ms(self.latency_ms), str(self.status), _flag(self.cold), self.instance_id,
                _ms(self.queue_ms), _one_line(self.error), _ms(self.latency_from_intended_ms),
                _ms(self.inference_ms), _flag(self.first), _int(self.batch_size),
                _ts(self.boot_ts), _ms(self.import_ms), _ms(self.model_load_ms),
                _ts(self.ready_ts), self.fc_request_id, _int(self.worker))

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> InvocationRecord:
        """Read one CSV row (a `csv.DictReader` row) back; unknown columns are ignored."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            text = row.get(f.name)
            if text is None:
                continue
            if f.name in _TS or f.name in _MS:
                kwargs[f.name] = float(text) if text != "" else None
            elif f.name in _INT:
                kwargs[f.name] = int(text) if text != "" else None
            elif f.name in _BOOL:
                kwargs[f.name] = None if text == "" else text in ("1", "true", "True")
            else:
                kwargs[f.name] = text
        for name in ("start_ts", "end_ts", "latency_ms"):
            if kwargs.get(name) is None:
                kwargs[name] = 0.0
        kwargs["status"] = kwargs.get("status") or 0
        return cls(**kwargs)


def _ts(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _int(x: int | None) -> str:
    return "" if x is None else str(x)


def _flag(x: bool | None) -> str:
    return "" if x is None else ("1" if x else "0")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")[:500] if text else ""


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _ns_to_s(text: str | None) -> float | None:
    value = _float(text)
    return None if value is None else value / 1e9


def _bool(text: str | None) -> bool | None:
    if text is None or text == "":
        return None
    return text.strip().lower() in ("1", "true", "yes")


def parse_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Record fields from response headers (`x-fc-*`, `x-fcbench-*`), for any target that sends
    them. Keys are `InvocationRecord` field names; absent headers give no key.

    ``cold`` comes from ``x-fcbench-cold`` (the harness); where only the instance speaks (FC),
    ``x-fcbench-first: 1`` is taken as cold, since the first request an instance serves is the one
    that waited for it.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    h = {k.lower(): v for k, v in items}
    out: dict[str, Any] = {}
    instance = h.get("x-fc-instance-id") or h.get("x-fcbench-instance-id")
    if instance:
        out["instance_id"] = instance
    if h.get("x-fc-request-id"):
        out["fc_request_id"] = h["x-fc-request-id"]
    first = _bool(h.get("x-fcbench-first"))
    if first is not None:
        out["first"] = first
    cold = _bool(h.get("x-fcbench-cold"))
    if cold is None:
        cold = first
    if cold is not None:
        out["cold"] = cold
    for header, name in (("x-fcbench-queue-ms", "queue_ms"),
                         ("x-fcbench-inference-ms", "inference_ms"),
                         ("x-fcbench-import-ms", "import_ms"),
                         ("x-fcbench-model-load-ms", "model_load_ms")):
        value = _float(h.get(header))
        if value is not None:
            out[name] = value
    for header, name in (("x-fcbench-boot-ts", "boot_ts"), ("x-fcbench-ready-ts", "ready_ts")):
        value = _ns_to_s(h.get(header))
        if value is not None:
            out[name] = value
    batch = _float(h.get("x-fcbench-batch-size"))
    if batch is not None:
        out["batch_size"] = int(batch)
    return out


class RecordWriter:
    """Appends records to a CSV file as they happen; flushed at least every `flush_interval_s`.

    Rows are buffered only briefly (an interrupted run leaves a readable file that lacks at most
    the last interval), and nothing is kept in memory. Call `maybe_flush()` from a timer when
    writes may stop, and `close()` at the end (or use it as a context manager).
    """

    def __init__(self, path: str | Path, *, flush_interval_s: float = 0.25) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="", encoding="utf-8", buffering=1 << 16)
        self._csv = csv.writer(self._file, lineterminator="\n")
        if new:
            self._csv.writerow(ALL_COLUMNS)
            self._file.flush()
        self._last_flush = time.monotonic()
        self._dirty = False
        self.count = 0

    def write(self, record: InvocationRecord) -> None:
        self._csv.writerow(record.row())
        self.count += 1
        self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def maybe_flush(self) -> None:
        """Flush if rows wait and the interval has passed (for a periodic timer)."""
        if self._dirty and time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()
        self._dirty = False
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sort_key(line: str) -> tuple[float, str]:
    # request_id holds no comma, so intended_ts is the second field; start_ts the third.
    parts = line.split(",", 3)
    for text in parts[1:3]:
        try:
            return float(text), parts[0]
        except ValueError:
            continue
    return float("inf"), parts[0]


def merge_parts(parts: Iterable[str | Path], out: str | Path) -> int:
    """Merge part files into one CSV sorted by intended_ts (start_ts where there is none).

    Writes `out` atomically (a temporary file, then rename) and returns the number of rows.
    A truncated last line of a part (the writer was killed mid-row) is dropped.
    """
    out = Path(out)
    header = ",".join(ALL_COLUMNS)
    lines: list[str] = []
    for part in parts:
        with open(part, encoding="utf-8", newline="") as f:
            first = f.readline()
            if not first:
                continue
            header = first.rstrip("\n")
            ncols = header.count(",")
            for line in f:
                if not line.endswith("\n") or line.count(",") < ncols:
                    continue  # incomplete last row of an interrupted writer
                lines.append(line)
    lines.sort(key=_sort_key)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out)
    return len(lines)


def read_records(path: str | Path) -> Iterator[InvocationRecord]:
    """Stream the records of a requests.csv (or a part file)."""
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield InvocationRecord.from_row(row)
