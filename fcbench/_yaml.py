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


# Bounds on one document. Real specs, workloads and s.yaml files are a few kB with a handful of
# anchors; these are far above that. Without them, 400 bytes of nested aliases (a "billion
# laughs" file) expand to 10**9 values; with them, such a file is refused in milliseconds.
MAX_BYTES = 64 * 1024 * 1024  # the file: anything bigger is not a hand-written spec
MAX_ALIASES = 10_000  # `*name` references in one document
# values, counted with every alias written out (refused at once); a file that really holds this
# many is refused too, after PyYAML's ~25 s of composing them: slow, but linear in the file
MAX_NODES = 1_000_000
MAX_DEPTH = 200  # nesting, aliases written out; PyYAML's composer recurses ~3 frames a level
_MERGE = "tag:yaml.org,2002:merge"


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses too many nodes or aliases, deep nesting, recursive
    aliases and non-scalar keys as it goes, so that nothing later can blow up or recurse."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = self._aliases = self._depth = 0
        self._open: set[int] = set()  # ids of the collections being composed (the current path)

    def fetch_flow_collection_start(self, token_class: type) -> None:
        # At each token the scanner walks every open `[`/`{` of the line (up to 1024 characters
        # ahead): 10,000 `[` cost 0.5 s before the composer sees a node. Capped here, ~10 ms.
        if self.flow_level >= MAX_DEPTH:
            raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep; flatten the "
                            "document", line=self.line + 1)
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        self._nodes += 1
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise SpecError(f"the document uses YAML aliases (*name) more than {MAX_ALIASES:,} "
                                "times; fcbench refuses that many (a 'billion laughs' file?) — "
                                "write the values out", line=line)
            target = self.anchors.get(event.anchor)
            if target is not None and (target is parent or id(target) in self._open):
                raise SpecError(f"alias *{event.anchor} refers to a value that contains it (a "
                                "recursive alias); write the value out instead", line=line)
        elif self._nodes > MAX_NODES:
            raise SpecError(f"the document holds more than {MAX_NODES:,} values; a spec or "
                            "workload is far smaller — is this the right file?", line=line)
        if self._depth >= MAX_DEPTH:
            raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep; flatten the "
                            "document", line=line)
        # `parent` is open while its items are composed; an error ends the load, so no `finally`
        opened = parent is not None and id(parent) not in self._open
        if opened:
            self._open.add(id(parent))
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if opened:
            self._open.discard(id(parent))
        if isinstance(parent, yaml.MappingNode) and index is None \
                and not isinstance(node, yaml.ScalarNode):
            raise SpecError("a mapping key must be a plain value (a name or a number), not a list "
                            "or a mapping", line=line)
        return node


def _measure(root: yaml.Node, loader: yaml.SafeLoader) -> None:
    """Refuse a graph that expands past `MAX_NODES` values or `MAX_DEPTH` levels; flatten merges.

    One iterative post-order pass, each node once (aliases share nodes), so it is linear in the
    file. Merge keys (`<<: *base`) are flattened bottom-up, after their bases, and only once the
    merged size is known to fit: flattening copies pairs, and nested merges multiply them.
    """
    size: dict[int, int] = {}  # id(node) -> values under it with every alias written out
    height: dict[int, int] = {}
    # pairs that merges copy, over all mappings: never more than the expanded size, but counted
    # before each copy, so many siblings merging one big base are refused before their parent
    copied = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if not done:
            if id(node) not in size:
                stack.append((node, True))
                stack.extend((kid, False) for kid in reversed(_children(node)))
            continue
        kids = _children(node)
        total, deepest = 1, max((height[id(kid)] for kid in kids), default=0)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.tag == _MERGE:  # the bases' pairs are copied into this mapping
                    bases = value.value if isinstance(value, yaml.SequenceNode) else [value]
                    merged = sum(size[id(base)] - 1 for base in bases)
                    total, copied = total + merged, copied + merged
                else:
                    total += size[id(key)] + size[id(value)]
        else:
            total += sum(size[id(kid)] for kid in kids)
        line = node.start_mark.line + 1
        if total > MAX_NODES or copied > MAX_NODES:
            raise SpecError(f"the document expands to more than {MAX_NODES:,} values through its "
                            "aliases (a 'billion laughs' file?); write the values out", line=line)
        if deepest + 1 > MAX_DEPTH:
            raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep once aliases "
                            "are written out; flatten the document", line=line)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)  # its bases are flat already: this only copies pairs
        size[id(node)], height[id(node)] = total, deepest + 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: yaml.SafeLoader,
               built: dict[int, Any]) -> Any:
    """Python value of `node`; an alias (a node met again) shares the value built the first time,
    and only that first time records the lines under it, so both stay linear in the file."""
    lines.setdefault(loc, node.start_mark.line + 1)  # an alias: the line of its anchor
    if id(node) in built:
        return built[id(node)]
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise SpecError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1,
                                path=_dotted(loc + (key,)))
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, loc + (key,), lines, loader, built)
        value: Any = out
    elif isinstance(node, yaml.SequenceNode):
        value = [_construct(item, loc + (i,), lines, loader, built)
                 for i, item in enumerate(node.value)]
    else:
        value = loader.construct_object(node, deep=True)
    built[id(node)] = value
    return value


def load_located(path: str | Path, *, text: str | None = None) -> LocatedDoc:
    """Parse one YAML file, raising `SpecError` with the file and line on syntax errors and on
    documents over the bounds above (size, aliases, values, nesting, recursive aliases)."""
    file = str(path)
    too_big = SpecError(f"the file is larger than {MAX_BYTES // 2**20} MB, the most fcbench reads "
                        "as YAML; a spec or workload is a few kB — is this the right file?",
                        file=file)
    if text is None:
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_BYTES + 1)  # bounded: also safe on /dev/zero or a pipe
        except FileNotFoundError:
            raise SpecError("file not found", file=file) from None
        except IsADirectoryError:
            raise SpecError("is a folder, not a YAML file", file=file) from None
        except OSError as exc:
            raise SpecError(f"cannot read the file ({exc.strerror})", file=file) from None
        if len(raw) > MAX_BYTES:
            raise too_big
        text = decode_text(raw, file)
    elif len(text) > MAX_BYTES:
        raise too_big
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        if node is not None:
            _measure(node, loader)
        data = _construct(node, (), lines, loader, {}) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"invalid YAML: {exc.problem or exc}", file=file, line=line) from None
    except SpecError as exc:
        raise SpecError(exc.message, file=file, line=exc.line, path=exc.path) from None
    except RecursionError:  # a backstop: the bounds above should keep every walk shallow
        raise SpecError("values are nested too deeply to read; flatten the document",
                        file=file, line=loader.line + 1) from None
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
