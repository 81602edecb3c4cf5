"""Per-request records on disk: a streaming CSV writer, part merging, reading back.

Key names: `RecordWriter`, `merge_parts`, `read_records`. The record itself (`InvocationRecord`,
its columns and header parsing) is the wire contract and lives in `fcbench.protocol`.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._io import atomic_write
from ..protocol import ALL_COLUMNS, InvocationRecord

__all__ = ["RecordWriter", "merge_parts", "read_records"]


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
    atomic_write(out, header + "\n" + "".join(lines), fsync=True)
    return len(lines)


def read_records(path: str | Path) -> Iterator[InvocationRecord]:
    """Stream the records of a requests.csv (or a part file)."""
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield InvocationRecord.from_row(row)
