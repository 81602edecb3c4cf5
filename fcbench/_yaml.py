"""YAML loading that remembers where each key was, so validation errors can name file:line.

Key names: `LocatedDoc`, `load_located`, `validate`, `decode_text` (bytes -> text, or an error
naming file:line: every file the CLI reads goes through it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from .errors import SpecError

__all__ = ["LocatedDoc", "decode_text", "load_located", "validate"]

T = TypeVar("T")
Loc = tuple[Any, ...]


@dataclass
class LocatedDoc:
    """A parsed YAML document and the 1-based line of every mapping key / sequence item in it."""

    data: Any
    file: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of `loc` (a missing key points at its parent)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: yaml.SafeLoader) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise SpecError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1,
                                path=_dotted(loc + (key,)))
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, loc + (key,), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_located(path: str | Path, *, text: str | None = None) -> LocatedDoc:
    """Parse one YAML file, raising `SpecError` with the file and line on syntax errors."""
    file = str(path)
    if text is None:
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise SpecError("file not found", file=file) from None
        except IsADirectoryError:
            raise SpecError("is a folder, not a YAML file", file=file) from None
        except OSError as exc:
            raise SpecError(f"cannot read the file ({exc.strerror})", file=file) from None
        text = decode_text(raw, file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        data = _construct(node, (), lines, loader) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"invalid YAML: {exc.problem or exc}", file=file, line=line) from None
    except SpecError as exc:
        raise SpecError(exc.message, file=file, line=exc.line, path=exc.path) from None
    finally:
        loader.dispose()
    return LocatedDoc(data=data, file=file, lines=lines)


def decode_text(raw: bytes, file: str) -> str:
    """`raw` as UTF-8 text, or a `SpecError` naming the line of the first undecodable byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SpecError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "is this the right file?", file=file, line=line) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError("holds a NUL byte: this looks like a binary file, not YAML or CSV",
                        file=file, line=line)
    return text


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _sentence(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key; check the spelling against the documented fields"
    if kind == "missing":
        return "required key is missing"
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    if kind not in ("missing",) and not isinstance(got, (dict, list)):
        msg = f"{msg} (got {got!r})"
    return msg


def validate(doc: LocatedDoc, build: Callable[[Any], T], *, prefix: Loc = ()) -> T:
    """Run `build(data)` (a pydantic validation), turning the first error into a `SpecError`.

    `prefix` is prepended to error locations when `doc.data` is a sub-document.
    """
    try:
        return build(doc.data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(prefix) + tuple(p for p in err["loc"] if not _is_union_tag(p))
        more = len(exc.errors()) - 1
        tail = f" ({more} more problem{'s' if more > 1 else ''} after this one)" if more else ""
        raise SpecError(_sentence(err) + tail, file=doc.file, line=doc.line_of(loc),
                        path=_dotted(loc) or None) from None


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen union member's tag (e.g. "function-after[...]") into locations.
    return isinstance(part, str) and ("[" in part and part.endswith("]"))
