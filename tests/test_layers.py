"""The package's layering, read from the source: imports only go down.

Each top-level package (``fcbench/report``) or module (``fcbench/measures.py``) is one node;
an import of another node is an arrow, type-only and function-local imports included, since
either one ties the two together for a reader. The arrows must form no circle, nothing but the
entry points may import the CLI, and no CLI module imports another.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "fcbench"
ENTRY_POINTS = {"__main__", "cli"}


def _node_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "fcbench" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    """Every fcbench module the file imports, absolute names, at any depth of the file."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("fcbench")}


@lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        here = _node_of(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        if here is None or here == "__init__":
            continue
        arrows = graph.setdefault(here, set())
        for name in _imports(path):
            there = _node_of(name)
            if there and there != here and (
                    (ROOT / there).is_dir() or (ROOT / f"{there}.py").exists()):
                arrows.add(there)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of arrows, as the nodes on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_between_packages():
    circle = _cycle(_graph())
    assert circle is None, "imports run in a circle: " + " -> ".join(circle or [])


def test_only_the_entry_points_import_the_cli():
    offenders = sorted(node for node, arrows in _graph().items()
                       if "cli" in arrows and node not in ENTRY_POINTS)
    assert not offenders, f"these import fcbench.cli: {offenders}"


@pytest.mark.parametrize("path", sorted((ROOT / "cli").glob("*.py")), ids=lambda p: p.name)
def test_no_cli_module_imports_another(path: Path):
    shared = {"fcbench.cli", "fcbench.cli._base", "fcbench.cli.__init__"}
    own = f"fcbench.cli.{path.stem}"
    others = sorted(name for name in _imports(path)
                    if name.startswith("fcbench.cli.") and name not in shared
                    and not name.startswith(own)
                    and (ROOT / "cli" / f"{name.split('.')[2]}.py").exists()
                    and name.split(".")[2] != "_base")
    if path.name == "__init__.py":
        pytest.skip("the command group registers every command module")
    assert not others, f"{path.name} imports {others}"
