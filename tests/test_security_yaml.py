"""Hostile YAML cannot hang or crash fcbench: nested aliases ("billion laughs"), recursive
aliases, deep nesting and huge files are each one `file:line: what to change` and exit code 2,
in well under a second; normal anchors and merge keys still load, with their lines."""

from __future__ import annotations

import os
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcbench import _yaml
from fcbench._yaml import load_located
from fcbench.errors import SpecError
from fcbench.spec import load_function_spec

FAST_S = 1.0  # each refusal takes ms; the old loader took 1.4 s for 6 levels, 7 ran out of RAM


def laughs(levels: int) -> str:
    """`a: &a [x, ...]` then each line ten aliases of the one before: 10**levels values."""
    names = string.ascii_lowercase
    out = ["a: &a [" + ", ".join(["x"] * 10) + "]"]
    for i in range(1, levels):
        out.append(f"{names[i]}: &{names[i]} [" + ", ".join([f"*{names[i - 1]}"] * 10) + "]")
    return "\n".join(out) + "\n"


def refused(text: str, name: str = "x.yaml", *, within: float = FAST_S) -> SpecError:
    """The `SpecError` `load_located` raises for `text`, checking that it came fast."""
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_located(name, text=text)
    assert time.perf_counter() - start < within
    assert info.value.file == name
    return info.value


def fcbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcbench", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.parametrize("levels", [9, 10])
def test_a_billion_laughs_file_is_refused_in_well_under_a_second(tmp_path, levels):
    path = tmp_path / "x.yaml"
    path.write_text(laughs(levels))
    assert path.stat().st_size < 500  # a few hundred bytes that would be 10**9 values
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_located(path)
    assert time.perf_counter() - start < FAST_S
    err = info.value
    # line 6 (`f:`) is the first whose expansion passes a million values
    assert (err.file, err.line) == (str(path), 6)
    assert "billion laughs" in err.message and f"{_yaml.MAX_NODES:,}" in err.message


def test_aliases_under_the_bounds_are_built_once_and_shared():
    start = time.perf_counter()
    doc = load_located("x.yaml", text=laughs(5))  # 111,111 values written out, 40 aliases
    assert time.perf_counter() - start < FAST_S
    assert doc.data["e"][0] is doc.data["d"] and doc.data["e"][9] is doc.data["d"]
    assert doc.data["e"][3][2][1][0] == ["x"] * 10
    # lines are kept where each value was first built; an alias gets one line (its anchor's),
    # not one for every path under it: 111,111 entries before
    assert len(doc.lines) < 100
    assert doc.line_of(("a", 4)) == 1 and doc.line_of(("e", 3)) == 4
    assert doc.line_of(("e", 3, 2, 1)) == 4 and ("e", 3, 2, 1) not in doc.lines


def test_merge_keys_that_multiply_are_refused():
    # merges copy pairs: nested 10x merges grow like the lists of a billion laughs file
    text = "a: &a {" + ", ".join(f"k{i}: x" for i in range(10)) + "}\n"
    for i in range(1, 9):
        name, base = string.ascii_lowercase[i], string.ascii_lowercase[i - 1]
        text += f"{name}: &{name} {{<<: [" + ", ".join([f"*{base}"] * 10) + "]}\n"
    assert "billion laughs" in refused(text).message


def test_many_merges_of_one_base_are_refused_before_they_are_all_copied(monkeypatch):
    monkeypatch.setattr(_yaml, "MAX_NODES", 1000)
    text = ("big: &big {" + ", ".join(f"k{i}: x" for i in range(300)) + "}\n"  # 601 values
            "all:\n" + "  - {<<: *big}\n" * 50)
    err = refused(text)  # each mapping fits, and the list would only be measured at its end
    assert err.line == 4 and "billion laughs" in err.message  # the second copy is refused


def test_too_many_aliases_are_refused():
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (_yaml.MAX_ALIASES + 1)) + "]\n"
    err = refused(text, within=5)  # parsing 10,000 aliases first: linear, ~0.1 s
    assert err.line == 2 and f"more than {_yaml.MAX_ALIASES:,} times" in err.message


@pytest.mark.parametrize("text, line", [
    ("a: &a [*a]\n", 1),
    ("a: &a {b: *a}\n", 1),
    ("a: &a\n  b:\n    <<: *a\n", 3),  # a merge that pulls in its own parent
    ("a: &a {<<: *a}\n", 1),
    ("x: 1\na: &a [1, [2, [3, *a]]]\n", 2),
], ids=["list", "mapping", "merge-into-child", "merge-self", "nested"])
def test_a_recursive_alias_is_a_spec_error_not_a_recursion_error(text, line):
    err = refused(text)
    assert err.line == line and "recursive alias" in err.message


@pytest.mark.parametrize("text", [
    "x: " + "[" * 10_000 + "]" * 10_000 + "\n",  # PyYAML's own composer recursed out here
    "x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n",
    "".join(" " * (2 * i) + "- \n" for i in range(300)) + " " * 600 + "- 1\n",
], ids=["flow-lists", "flow-mappings", "block-lists"])
def test_deep_nesting_is_a_spec_error_not_a_recursion_error(text):
    err = refused(text)
    assert err.line is not None and f"more than {_yaml.MAX_DEPTH} levels" in err.message


def test_nesting_deepened_through_aliases_is_refused_but_shallow_nesting_loads():
    half = 150  # each file part is shallow, the value written out is 300 deep
    text = ("a: &a " + "[" * half + "1" + "]" * half + "\n"
            "b: " + "[" * half + "*a" + "]" * half + "\n")
    assert "levels deep once aliases are written out" in refused(text).message
    assert load_located("x.yaml", text="a: " + "[" * half + "1" + "]" * half + "\n").data


def test_a_list_or_mapping_as_a_key_is_a_spec_error():
    assert "plain value" in refused("ok: 1\n? [1, 2]\n: x\n").message
    assert refused("a: &a {k: v}\n? *a\n: x\n").line == 2


def test_a_file_over_the_size_bound_is_refused_without_parsing(tmp_path):
    path = tmp_path / "x.yaml"
    with open(path, "wb") as fh:  # sparse: cheap to make, 64 MB of NULs to read
        fh.truncate(_yaml.MAX_BYTES + 1)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_located(path)
    assert time.perf_counter() - start < 5  # one bounded read; no decoding, no parsing
    assert info.value.file == str(path)
    assert f"larger than {_yaml.MAX_BYTES // 2**20} MB" in info.value.message


def test_the_size_bound_applies_to_text_too(monkeypatch):
    monkeypatch.setattr(_yaml, "MAX_BYTES", 100)
    assert load_located("x.yaml", text="a: " + "1" * 96 + "\n").data == {"a": int("1" * 96)}
    assert "larger than" in refused("a: " + "1" * 97 + "\n").message


@pytest.mark.slow
@pytest.mark.parametrize("text, line, needle", [
    (laughs(10), 6, "billion laughs"),
    ("functionName: f\nharness: &h {queue: [*h]}\n", 2, "recursive alias"),
    ("functionName: f\nharness: " + "[" * 10_000 + "]" * 10_000 + "\n", 2, "levels deep"),
], ids=["billion-laughs", "recursive-alias", "deep-brackets"])
@pytest.mark.parametrize("command", [["harness", "serve", "x.yaml", "--port", "0"],
                                     ["run", "x.yaml"]], ids=["serve", "run"])
def test_the_cli_refuses_hostile_yaml_with_file_line_and_exit_2(tmp_path, text, line, needle,
                                                                  command):
    (tmp_path / "x.yaml").write_text(text)
    start = time.perf_counter()
    res = fcbench(*command, cwd=tmp_path)
    took = time.perf_counter() - start
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    assert f"x.yaml:{line}:" in res.stderr and needle in res.stderr, res.stderr
    assert took < 20  # interpreter start and imports; the parse itself is milliseconds


SPEC = """\
functionName: f
instanceConcurrency: &n 2
environmentVariables:
  <<: {FCBENCH_MODEL: sleep, FCBENCH_SLEEP_MS: "10"}
  FCBENCH_STARTUP_MS: "5"
harness:
  maxInstances: *n
  queue: {size: *n}
"""


def test_a_normal_spec_with_a_merge_key_and_a_shared_alias_still_loads(tmp_path):
    text = ("base: &base\n"        # 1
            "  cpu: 2\n"           # 2
            "  tags: [a, b]\n"     # 3
            "one:\n"               # 4
            "  <<: *base\n"        # 5
            "  name: first\n"      # 6
            "two:\n"               # 7
            "  <<: *base\n"        # 8
            "  name: second\n"     # 9
            "both: [*base, *base]\n")  # 10
    doc = load_located("x.yaml", text=text)
    assert doc.data["one"] == {"cpu": 2, "tags": ["a", "b"], "name": "first"}
    assert doc.data["two"] == {"cpu": 2, "tags": ["a", "b"], "name": "second"}
    assert doc.data["both"] == [doc.data["base"]] * 2
    assert doc.line_of(("base", "tags", 1)) == 3
    assert doc.line_of(("one", "name")) == 6 and doc.line_of(("two", "name")) == 9
    assert doc.line_of(("one", "cpu")) == 2  # a merged key points where it is written
    assert doc.line_of(("two", "missing")) == 7  # a missing key points at its mapping
    assert doc.line_of(("both", 1)) == 1  # an alias points at its anchor
    with pytest.raises(SpecError) as info:  # duplicate keys are still caught
        load_located("x.yaml", text=text + "one: again\n")
    assert (info.value.line, info.value.path) == (11, "one")

    spec_path = tmp_path / "fn.yaml"  # and through the function-spec loader
    spec_path.write_text(SPEC)
    spec = load_function_spec(spec_path)
    assert spec.instance_concurrency == spec.harness.max_instances == spec.harness.queue.size == 2
    assert spec.environment_variables == {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "10",
                                          "FCBENCH_STARTUP_MS": "5"}
    spec_path.write_text(SPEC.replace("size: *n", "size: *n, sise: 1"))
    with pytest.raises(SpecError) as info:  # a mistake is still named with its line
        load_function_spec(spec_path)
    assert (info.value.line, info.value.path) == (8, "harness.queue.sise")
