"""Terminal tables: the one place fcbench lays figures out in columns for a person to read.

Key names: `label_lines` / `print_labels` (``label  value`` rows, labels padded to one width),
`column_lines` / `print_columns` (a header and rows in aligned columns), and the cell formats
`ranged` (a figure with its interval), `money_cell` and `megabytes`. Below `cli/` and `report/`,
so commands and reports print the same text; it knows nothing of what the figures mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import click

__all__ = ["column_lines", "label_lines", "label_width", "megabytes", "money_cell", "print_columns",
           "print_labels", "ranged"]

#: How the cells of a column are aligned: every column left or right, or the first left (the
#: row's name) and the rest right (its figures).
Align = Literal["left", "right", "first-left"]


def label_width(rows: Iterable[tuple[str, str]]) -> int:
    """The widest label of `rows` (0 for none)."""
    return max((len(label) for label, _ in rows), default=0)


def label_lines(rows: Sequence[tuple[str, str]], *, width: int | None = None,
                indent: str = "  ") -> list[str]:
    """``label  value`` lines, labels padded to `width` (default: the widest of `rows`)."""
    width = label_width(rows) if width is None else width
    return [f"{indent}{label:<{width}}  {value}" for label, value in rows]


def print_labels(rows: Sequence[tuple[str, str]], *, width: int | None = None,
                 indent: str = "  ") -> None:
    """Print `label_lines` on stdout."""
    for line in label_lines(rows, width=width, indent=indent):
        click.echo(line)


def column_lines(head: Sequence[str], rows: Sequence[Sequence[str]], *,
                 align: Align = "right", rule: bool = False, strip: bool = False) -> list[str]:
    """`head` and `rows` in columns two spaces apart, each as wide as its widest cell.

    `rule` puts a line of dashes under the header; `strip` drops the spaces that pad a line's
    last cell (for left-aligned tables).
    """
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def cell(i: int, text: str) -> str:
        left = align == "left" or (align == "first-left" and i == 0)
        return text.ljust(widths[i]) if left else text.rjust(widths[i])

    def line(cells: Sequence[str]) -> str:
        text = "  ".join(cell(i, str(x)) for i, x in enumerate(cells))
        return text.rstrip() if strip else text

    out = [line(head)]
    if rule:
        out.append("  ".join("-" * w for w in widths))
    return out + [line(r) for r in rows]


def print_columns(head: Sequence[str], rows: Sequence[Sequence[str]], *,
                  align: Align = "right", rule: bool = False, strip: bool = False) -> None:
    """Print `column_lines` on stdout."""
    for text in column_lines(head, rows, align=align, rule=rule, strip=strip):
        click.echo(text)


def ranged(value: float, lo: float | None, hi: float | None, fmt: str) -> str:
    """``value [lo, hi]`` in `fmt` (just ``value`` without an interval)."""
    if lo is None or hi is None:
        return format(value, fmt)
    return f"{value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def money_cell(value: float | None) -> str:
    """A small amount of money (per 1000 requests) to four places; ``-`` when unknown."""
    return "-" if value is None else f"{value:.4f}"


def megabytes(n_bytes: int) -> str:
    """A size in bytes as ``12.3 MB`` (decimal megabytes, as docker prints image sizes)."""
    return f"{n_bytes / 1e6:.1f} MB"
