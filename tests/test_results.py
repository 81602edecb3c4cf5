"""The run folder has one owner, `fcbench.results`: no other module spells a run-folder file,
and folders written before this layout (tests/fixtures/run-v0.1, by fcbench at 090873b) still
read and render."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

import fcbench
from fcbench.results import RunFolder, layout

PACKAGE = Path(fcbench.__file__).parent
FIXTURES = Path(__file__).parent / "fixtures" / "run-v0.1"
#: a file name, not part of a longer name (``requests.csv`` but not ``my-requests.csv.bak``)
NAMES = re.compile(r"(?<![\w.-])(" + "|".join(re.escape(n) for n in (*layout.FILE_NAMES,
                                                                       "requests.part"))
                   + r")(?![\w-])")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (documentation may name files)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _spelled(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    return [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {m.group(1)}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs
            for m in NAMES.finditer(node.value)]


@pytest.mark.slow
def test_no_module_outside_results_names_a_run_folder_file() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py"))
             if PACKAGE / "results" not in path.parents for hit in _spelled(path)]
    assert not found, "name these through fcbench.results.layout:\n" + "\n".join(found)


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('"""Reads summary.json."""\nX = run / "summary.json"\n'
                     'Y = f"no {a} in requests.csv"\n', encoding="utf-8")
    hits = [h.rsplit(": ", 1)[1] for h in _spelled_at(probe, tmp_path)]
    assert hits == ["summary.json", "requests.csv"]


def _spelled_at(path: Path, root: Path) -> list[str]:
    global PACKAGE
    saved, PACKAGE = PACKAGE, root / "pkg"
    try:
        return _spelled(path)
    finally:
        PACKAGE = saved


# -- folders written before: tests/fixtures/run-v0.1 (fcbench at 090873b) ---------------------

@pytest.mark.parametrize("name, kind", [("run", "run"), ("sim", "simulated"),
                                        ("profile", "coldstart-profile"),
                                        ("compare", "compare")])
def test_an_old_folder_says_its_kind(name: str, kind: str) -> None:
    # the profile wrote its kind as `experiment`; the others as `kind`
    assert RunFolder(FIXTURES / name).kind() == kind


def test_a_folder_with_no_kind_is_told_by_its_files(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "profile" / layout.PHASES, tmp_path / layout.PHASES)
    assert RunFolder(tmp_path).kind() == "coldstart-profile"
    (tmp_path / layout.PHASES).unlink()
    (tmp_path / layout.SUMMARY).write_text('{"experiment": "coldstart-sweep"}', encoding="utf-8")
    assert RunFolder(tmp_path).kind() == "coldstart-sweep"


def test_an_old_run_reads_through_results() -> None:
    folder = RunFolder.open(FIXTURES / "run")
    requests, instances = folder.requests(), folder.instances()
    summary, config = folder.summary(), folder.config()
    assert len(requests) == summary["count"] == config["requests"]
    assert {"intended_ts", "start_ts", "end_ts", "latency_ms", "status", "cold",
            "instance_id"} <= set(requests.columns)
    assert len(instances) == folder.instances_started() == summary["instances_started"]
    assert list(instances.columns[:4]) == ["instance_id", "created_ts", "ready_ts", "stopped_ts"]
    assert config["workload"]["name"] == "quickstart"
    assert folder.config_located()[1][("workload", "name")] > 0


def test_an_old_run_summarises_as_it_did() -> None:
    from fcbench.results.summary import summarize

    folder = RunFolder(FIXTURES / "run")
    fresh = summarize(folder.requests(), instances_started=folder.instances_started())
    for key in ("count", "ok", "outcomes", "p_cold", "latency_ms", "instances_started"):
        assert fresh[key] == folder.summary()[key], key


def test_an_old_profile_reads_its_phases() -> None:
    from fcbench.measures import phase_stats

    names, samples = RunFolder(FIXTURES / "profile").phases()
    kept = [s for s in samples if s.kind == "ok"]
    assert kept and names[-1] == "unattributed"
    # the profile's own statistics (summary.json) are what phase_stats gives today, but for
    # phases.csv's rounding of each sample
    stats = phase_stats(kept, names)
    written = RunFolder(FIXTURES / "profile").summary()["phases_ms"]
    assert stats.keys() == written.keys()
    for name, block in written.items():
        assert stats[name] == pytest.approx(block, abs=0.01), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["run", "sim", "profile"])
def test_an_old_folder_renders_its_report(tmp_path: Path, name: str) -> None:
    from fcbench.report.html import write_report

    run = shutil.copytree(FIXTURES / name, tmp_path / name)
    out = write_report(run)
    html = out.read_text(encoding="utf-8")
    assert out == run / layout.REPORT
    assert RunFolder(run).config()["title"] in html
    assert f"Configuration ({layout.RUN_YAML})" in html


def test_old_folders_compare(tmp_path: Path) -> None:
    from fcbench.report.compare import compare_runs, write_comparison

    runs = [shutil.copytree(FIXTURES / n, tmp_path / n) for n in ("run", "sim")]
    c = compare_runs(runs)
    assert [r.kind for r in c.runs] == ["run", "simulated"]
    assert not any(r.recomputed for r in c.runs)
    out = write_comparison(c, tmp_path / "out")
    assert RunFolder(out).kind() == "compare"
    assert (out / layout.COMPARE_HTML).is_file() and (out / layout.COMPARE_CSV).is_file()


def test_a_folder_reads_each_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from fcbench.results import summary as summary_mod

    calls = []
    real = summary_mod.load_requests
    monkeypatch.setattr(summary_mod, "load_requests",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    folder = RunFolder(FIXTURES / "run")
    assert folder.requests() is folder.requests()
    assert folder.summary() is folder.summary()
    assert len(calls) == 1


# -- layering ----------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    """The fcbench modules `path` imports (at the top or inside a function), absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("fcbench")}


@pytest.mark.parametrize("low, above", [
    ("results", ("report", "cost", "sim", "coldstart", "load", "cli")),
    ("measures.py", ("report", "cost", "sim", "coldstart", "results", "load", "cli")),
    ("protocol.py", ("report", "cost", "sim", "coldstart", "results", "load", "cli")),
    ("cost", ("report", "sim", "coldstart", "cli")),
])
def test_lower_layers_import_nothing_above(low: str, above: tuple[str, ...]) -> None:
    paths = [PACKAGE / low] if low.endswith(".py") else sorted((PACKAGE / low).rglob("*.py"))
    bad = [f"{p.relative_to(PACKAGE.parent)} imports {m}" for p in paths for m in _imports(p)
           if any(m == f"fcbench.{a}" or m.startswith(f"fcbench.{a}.") for a in above)]
    assert not bad, "\n".join(bad)


# -- finishing a folder --------------------------------------------------------------------------

def test_finish_writes_summary_then_run_yaml_then_the_report(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "probe")
    order = []

    def report(f: RunFolder) -> None:
        order.append(sorted(p.name for p in f.path.iterdir()))
        assert f.summary() == {"count": 0}  # what was just written, not a stale read
        assert f.config()[layout.KIND_KEY] == "run"

    folder.summary()  # a read before the write must not stick
    folder.finish(summary={"count": 0}, config={"title": "t", "name": "n"}, kind="run",
                  report=report)
    assert order == [[layout.RUN_YAML, layout.SUMMARY]]
    assert list(folder.config())[:2] == ["title", layout.KIND_KEY]  # one key, after the title


def test_finish_keeps_a_run_whose_report_fails_only_when_asked(tmp_path: Path) -> None:
    def broken(f: RunFolder) -> None:
        raise RuntimeError("no plot")

    folder = RunFolder.create(tmp_path, "probe")
    folder.finish(summary={}, report=broken, report_must_not_fail=True)
    assert folder.has(layout.SUMMARY)
    with pytest.raises(RuntimeError):
        folder.finish(report=broken)
