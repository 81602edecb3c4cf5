"""Azure Functions 2019 per-minute invocation traces (``invocations_per_function_md.anon.d*.csv``).

Key names: `TraceRow`, `read_function`, `minute_counts`, `TraceFormatError`. The CSV is read as a
stream and only the selected row is kept, so a full day file (~46k functions) costs little memory.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TraceFormatError

__all__ = [
    "FIXED_COLUMNS",
    "TraceFormatError",
    "TraceRow",
    "minute_counts",
    "parse_selector",
    "read_function",
]

#: The columns before the per-minute counts, as the Azure dataset names them.
FIXED_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Trigger")


@dataclass(frozen=True)
class TraceRow:
    """One function's row: its hashes, trigger and invocation count per minute."""

    owner: str
    app: str
    function: str
    trigger: str
    counts: tuple[int, ...] = field(repr=False)
    line: int = 0

    @property
    def total(self) -> int:
        """Invocations over the whole row."""
        return sum(self.counts)


def parse_selector(selector: str) -> tuple[str, str | int]:
    """Split a function selector into ``("top", "")``, ``("index", N)`` or ``("hash", value)``.

    Raises:
        ValueError: an empty selector or an ``index:`` without a whole number ≥ 0.
    """
    text = str(selector).strip()
    if not text:
        raise ValueError("the trace function selector is empty; give a HashFunction value, "
                         "index:N or top")
    if text == "top":
        return "top", ""
    if text.startswith("index:"):
        number = text[len("index:"):].strip()
        if not number.isdigit():
            raise ValueError(f"cannot read {text!r} as a row index; write index:N with N a whole "
                             "number ≥ 0 (index:0 is the first function)")
        return "index", int(number)
    return "hash", text


def read_function(path: str | Path, selector: str = "top") -> TraceRow:
    """Stream the CSV at `path` and return the row that `selector` picks.

    `selector` is a HashFunction value (the first matching row), ``index:N`` (the N-th data row,
    from 0) or ``top`` (the row with the most invocations; the first one on a tie).

    Raises:
        FileNotFoundError: `path` does not exist.
        TraceFormatError: a bad header or row (the message names file:line).
        ValueError: a bad selector or no row matches it.
    """
    how, want = parse_selector(selector)
    file = str(path)
    try:
        return _select(path, file, how, want)
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                               "expected an Azure Functions per-minute CSV") from None
    except csv.Error as exc:
        raise TraceFormatError(f"{file}: not a CSV file ({exc}); expected an Azure Functions "
                               "per-minute CSV") from None


def _select(path: str | Path, file: str, how: str, want: Any) -> TraceRow:
    best: TraceRow | None = None
    best_total = -1
    rows = 0
    with _open(path) as handle:
        reader = csv.reader(handle)
        minutes = _check_header(file, next(reader, None))
        width = len(FIXED_COLUMNS) + minutes
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) != width:
                raise TraceFormatError(f"{file}:{line}: expected {width} columns (4 names and "
                                       f"{minutes} minute counts), got {len(row)}; fix or drop "
                                       "that row")
            index = rows
            rows += 1
            if how == "hash" and row[2] != want:
                continue
            if how == "index" and index != want:
                continue
            if how != "top":
                return _parse_row(file, line, row)
            total = _quick_total(row)
            if total is None:
                _parse_row(file, line, row)  # raises, naming the bad cell
            if best is None or total > best_total:
                best, best_total = _parse_row(file, line, row), total
    if best is not None:
        return best
    if rows == 0:
        raise ValueError(f"{file} has a header but no function rows; use a trace with at least "
                         "one function")
    if how == "index":
        raise ValueError(f"{file} has {rows} function rows, so there is no index:{want}; use "
                         f"index:0 to index:{rows - 1}")
    raise ValueError(f"no function with HashFunction {want!r} in {file}; use one of its "
                     "HashFunction values, index:N or top")


def minute_counts(path: str | Path, selector: str = "top") -> list[int]:
    """The per-minute invocation counts of the selected function (see `read_function`)."""
    return list(read_function(path, selector).counts)


def _open(path: str | Path) -> io.TextIOBase:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"trace file {str(path)!r} not found; check the path (relative "
                                "paths in a workload are resolved against the workload's folder)")
    if p.is_dir():
        raise IsADirectoryError(f"trace file {str(path)!r} is a folder; name a CSV file")
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return open(p, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller's `with`


def _check_header(file: str, header: list[str] | None) -> int:
    if not header:
        raise TraceFormatError(f"{file}:1: the file is empty; expected the header "
                               "HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440")
    fixed = tuple(h.strip().lstrip("\ufeff") for h in header[:len(FIXED_COLUMNS)])
    minutes = [h.strip() for h in header[len(FIXED_COLUMNS):]]
    if fixed != FIXED_COLUMNS or not minutes \
            or minutes != [str(i) for i in range(1, len(minutes) + 1)]:
        raise TraceFormatError(f"{file}:1: not an Azure Functions per-minute trace; the header "
                               "must be HashOwner,HashApp,HashFunction,Trigger,1,2,...,N")
    return len(minutes)


def _quick_total(row: list[str]) -> int | None:
    # The fast path for scanning a whole file: None when a cell is not a count ≥ 0.
    try:
        counts = list(map(int, row[len(FIXED_COLUMNS):]))
    except ValueError:
        return None
    return sum(counts) if not counts or min(counts) >= 0 else None


def _parse_row(file: str, line: int, row: list[str]) -> TraceRow:
    counts = []
    for i, cell in enumerate(row[len(FIXED_COLUMNS):]):
        try:
            value = int(cell)
        except ValueError:
            value = -1
        if value < 0:
            raise TraceFormatError(f"{file}:{line}: minute {i + 1} holds {cell!r}, not a count; "
                                   "counts must be whole numbers ≥ 0")
        counts.append(value)
    owner, app, function, trigger = row[:len(FIXED_COLUMNS)]
    return TraceRow(owner=owner, app=app, function=function, trigger=trigger,
                    counts=tuple(counts), line=line)
