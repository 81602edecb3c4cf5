"""Workload YAML: shipped examples load, paths resolve against the file, errors name
file:line:key."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest
import yaml

from fcbench.errors import SpecError
from fcbench.load import plans
from fcbench.load.workload import Workload
from fcbench.load.loader import load_workload
from fcbench.load.durations import parse_duration

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = sorted((ROOT / "workloads").glob("*.yaml"))
SAMPLE_TRACE = ROOT / "workloads" / "traces" / "azure-sample.csv"

SLEEP_SPEC = """\
functionName: sleep
environmentVariables:
  FCBENCH_MODEL: sleep
"""

BASE = """\
name: t
target:
  kind: local
  functions: [fn.yaml]
duration: 10
plan:
  kind: poisson
  rate: 1
"""


def _write(folder: Path, text: str, name: str = "wl.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fn.yaml").write_text(SLEEP_SPEC)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(folder: Path, text: str) -> SpecError:
    path = _write(folder, text)
    with pytest.raises(SpecError) as info:
        load_workload(path)
    err = info.value
    assert err.file == str(path), err
    return err


def _line_of(text: str, needle: str) -> int:
    lines = textwrap.dedent(text).splitlines()
    return next(i + 1 for i, line in enumerate(lines) if needle in line)


# -- shipped workloads ---------------------------------------------------------------------------

def test_workloads_are_shipped() -> None:
    names = {p.stem for p in WORKLOADS}
    assert {"quickstart", "burst", "trace", "closed-loop", "diurnal"} <= names


#: shipped workloads that are not "a minute or so": (longest duration s, most requests)
LONGER = {"diurnal-day": (86400, 200_000),       # a real day: made for fcbench simulate
          "coldstart-figure": (30, 2_000)}       # one sweep level of a 22 ms model

@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.stem)
def test_shipped_workload_loads(path: Path) -> None:
    wl = load_workload(path)
    assert wl.name == path.stem
    longest, most = LONGER.get(path.stem, (90, 200))
    assert 0 < wl.duration <= longest
    plan = wl.plan_obj()
    if plan.open_loop:
        assert 5 <= plan.expected_count(wl.duration) <= most
        assert sum(1 for _ in plan.offsets(wl.duration)) > 5
    body, ctype = wl.request_body()
    if wl.target.kind == "local":
        assert wl.function_specs and wl.function_name == wl.function_specs[0].name
    yaml.safe_dump(wl.to_run_yaml())  # plain values only


def test_quickstart_meets_cold_starts_within_a_minute() -> None:
    wl = load_workload(ROOT / "workloads" / "quickstart.yaml")
    spec = wl.function_specs[0]
    assert spec.harness.idle_timeout <= 10 and wl.target.virtual_gpus == "1x16GB"
    gaps = list(wl.plan_obj().offsets(wl.duration))
    assert any(b - a > spec.harness.idle_timeout for a, b in zip(gaps, gaps[1:]))
    body, ctype = wl.request_body()
    assert ctype == "image/jpeg" and body[:2] == b"\xff\xd8" and len(body) < 50_000


def test_trace_example_replays_the_sample(tmp_path: Path) -> None:
    plan = load_workload(ROOT / "workloads" / "trace.yaml").plan_obj()
    assert isinstance(plan, plans.TracePlan) and plan.compression == 60
    assert Path(plan.path) == SAMPLE_TRACE


# -- paths ---------------------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_workload_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "deep" / "wl"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "req.json").write_text('{"sleep_ms": 5}')
    (folder / "data" / "t.csv").write_text(SAMPLE_TRACE.read_text())
    path = _write(folder, """\
        target:
          kind: local
          functions: [fn.yaml]
        request: {body: "@data/req.json"}
        duration: 1m
        plan: {kind: trace, file: data/t.csv, function: "index:1", compression: 60}
        """)
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    wl = load_workload(Path("deep/wl/wl.yaml"))
    assert wl.name == "wl" and wl.duration == 60.0
    assert wl.function_specs[0].name == "sleep"
    assert wl.request_body() == (b'{"sleep_ms": 5}', "application/json")
    assert Path(wl.plan_obj().path) == folder / "data" / "t.csv"
    run = wl.to_run_yaml()
    assert run["source"] == str(path) and run["plan"]["file"] == str(folder / "data" / "t.csv")
    assert run["target"]["functions"] == [str(folder / "fn.yaml")]


def test_inline_spec_and_inline_bodies(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
        name: inline
        target:
          kind: local
          functions:
            - functionName: echo
              environmentVariables: {FCBENCH_MODEL: sleep, API_SECRET: hunter2}
        request:
          body: {sleep_ms: 3}
        duration: 90s
        seed: 4
        plan: {kind: constant, rate: 2}
        """)
    wl = load_workload(path)
    assert wl.function_name == "echo"
    assert json.loads(wl.request_body()[0]) == {"sleep_ms": 3}
    text = yaml.safe_dump(wl.to_run_yaml())
    assert "hunter2" not in text and "***" in text
    assert isinstance(wl.plan_obj(), plans.ConstantPlan)

    path.write_text(path.read_text().replace("body: {sleep_ms: 3}",
                                             "body: hello\n  contentType: text/x-mine"))
    assert load_workload(path).request_body() == (b"hello", "text/x-mine")


def test_plan_seed_defaults_to_the_workload_seed(tmp_path: Path) -> None:
    wl = load_workload(_write(tmp_path, BASE + "seed: 9\n"))
    assert wl.plan_obj() == plans.PoissonPlan(kind="poisson", rate=1, seed=9)
    text = BASE.replace("rate: 1", "rate: 1\n  seed: 3") + "seed: 9\n"
    assert load_workload(_write(tmp_path, text)).plan_obj() == plans.PoissonPlan(kind="poisson",
                                                                             rate=1, seed=3)


def test_url_and_fc_targets(tmp_path: Path) -> None:
    wl = load_workload(_write(tmp_path, """\
        target: {kind: url, url: "http://127.0.0.1:9080", function: sleep}
        duration: 5
        plan: {kind: closed, users: 2, think: exponential, thinkS: 0.5}
        """))
    assert wl.function_specs == () and wl.function_name == "sleep"
    assert wl.plan_obj() == plans.ClosedPlan(kind="closed", users=2, think="exponential",
                                            think_s=0.5, seed=0)
    fc = load_workload(_write(tmp_path, """\
        target: {kind: fc, region: cn-hangzhou, function: sd}
        duration: 5
        plan: {kind: poisson, rate: 1}
        """))
    assert fc.target.region == "cn-hangzhou"


def test_pickles_with_specs_and_plan(tmp_path: Path) -> None:
    wl = load_workload(ROOT / "workloads" / "trace.yaml")
    copy = pickle.loads(pickle.dumps(wl))
    assert copy.function_specs == wl.function_specs and copy.source == wl.source
    assert list(copy.plan_obj().offsets(10)) == list(wl.plan_obj().offsets(10))


def test_parse_duration() -> None:
    assert parse_duration(45) == 45.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("5m") == 300.0
    assert parse_duration("1h") == 3600.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("2.5") == 2.5
    for bad in ("5 minutes", "m", "", "1h 30", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- errors name file:line:key --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "needle", "key", "words"), [
    (BASE.replace("rate: 1", "rate: -2"), "rate: -2", "plan.rate", "greater than 0"),
    (BASE.replace("kind: poisson", "kind: gamma"), "kind: gamma", "plan.kind",
     "unknown plan kind 'gamma'; use one of poisson"),
    (BASE.replace("rate: 1", "rat: 1"), "rat: 1", "plan.rat",
     "unknown key; did you mean 'rate'? a poisson plan takes"),
    (BASE + "durration: 5\n", "durration", "durration", "unknown key"),
    (BASE.replace("functions:", "function_specs:"), "function_specs", "target.function_specs",
     "unknown key"),
    (BASE + "request: {bodyy: x}\n", "request:", "request.bodyy", "did you mean 'body'"),
    (BASE.replace("duration: 10", "duration: 5 minutes"), "duration:", "duration",
     "cannot read '5 minutes' as a duration"),
    (BASE.replace("duration: 10", "duration: -1"), "duration:", "duration", "greater than 0"),
    (BASE.replace("kind: poisson\n  rate: 1",
                  "kind: trace\n  file: missing.csv"), "file: missing.csv", "plan.file",
     "not found"),
    (BASE.replace("kind: poisson\n  rate: 1",
                  f"kind: trace\n  file: {SAMPLE_TRACE}\n  function: feedbeef"),
     "function: feedbeef", "plan.function", "no function with HashFunction 'feedbeef'"),
    (BASE.replace("kind: poisson\n  rate: 1",
                  f"kind: trace\n  file: {SAMPLE_TRACE}\n  compression: 0"),
     "compression: 0", "plan.compression", "greater than 0"),
    (BASE.replace("kind: poisson\n  rate: 1",
                  f"kind: trace\n  file: {SAMPLE_TRACE}\n  startMinute: 2000"),
     "startMinute", "plan.startMinute", "past the trace"),
    (BASE.replace("kind: poisson\n  rate: 1", "kind: diurnal\n  rates: [0, 0]\n  period: 1h"),
     "rates:", "plan.rates", "at least one rate"),
    (BASE.replace("kind: poisson\n  rate: 1", "kind: burst\n  rateOn: 2\n  onS: 1\n  offS: -3"),
     "offS", "plan.offS", "greater than or equal to 0"),
    (BASE.replace("kind: poisson\n  rate: 1", "kind: closed\n  users: 0"), "users: 0",
     "plan.users", "greater than or equal to 1"),
    (BASE.replace("  rate: 1\n", ""), "plan:", "plan.rate", "required key is missing"),
    (BASE.replace("kind: local", "kind: local\n  accessKeyId: LTAIxxxx"), "accessKeyId",
     "target.accessKeyId", "credentials never go in a workload file"),
    (BASE + "accessKeySecret: shh\n", "accessKeySecret", "accessKeySecret",
     "ALIBABA_CLOUD_ACCESS_KEY_SECRET in the environment"),
    (BASE + "request: {body: '@nope.jpg'}\n", "request:", "request.body", "'nope.jpg' not found"),
    (BASE.replace("[fn.yaml]", "[other.yaml]"), "functions:", "target.functions[0]",
     "'other.yaml' not found"),
    (BASE.replace("[fn.yaml]", "[fn.yaml]\n  function: resnet"), "function: resnet",
     "target.function", "not among the target's functions"),
    (BASE.replace("[fn.yaml]", "[fn.yaml]\n  virtualGpus: lots"), "virtualGpus",
     "target.virtualGpus", "COUNTxSIZE"),
    (BASE.replace("kind: local\n  functions: [fn.yaml]", "kind: url\n  virtualGpus: 1x16GB\n"
                  "  url: http://127.0.0.1:1"), "virtualGpus", "target.virtualGpus",
     "applies only to target kind 'local'"),
    (BASE.replace("kind: local\n  functions: [fn.yaml]", "kind: url"), "target:",
     "target.url", "needs url"),
    (BASE.replace("kind: local\n  functions: [fn.yaml]", "kind: url\n  url: http://u:pw@h:1"),
     "url: http", "target.url", "user:password"),
    (BASE.replace("kind: local\n  functions: [fn.yaml]", "kind: fc\n  function: sd"),
     "target:", "target", "needs region"),
    (BASE.replace("kind: local", "kind: cloud"), "kind: cloud", "target.kind", "'local'"),
    (BASE.replace("functions: [fn.yaml]",
                  "functions:\n    - functionName: x\n      instanceConcurrency: 0"),
     "instanceConcurrency", "target.functions[0].instanceConcurrency", "greater than or equal"),
    (BASE.replace("name: t", "name: ../escape"), "name:", "name", "run folder"),
    (BASE + "slo: ttfx=500\n", "slo:", "slo", "did you mean ttft?"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, needle: str, key: str,
                                       words: str) -> None:
    err = _error(tmp_path, text)
    assert err.path == key, err
    assert err.line == _line_of(text, needle), err
    assert words in err.message, err
    assert str(err).startswith(f"{err.file}:{err.line}: {key}:")
    assert "LTAIxxxx" not in str(err) and "shh" not in str(err)


def test_bad_function_spec_file_names_its_own_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    (tmp_path / "fn.yaml").write_text("functionName: sleep\ntimeout: -5\n")
    with pytest.raises(SpecError) as info:
        load_workload(path)
    assert info.value.file == str(tmp_path / "fn.yaml")
    assert (info.value.line, info.value.path) == (2, "timeout")


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_workload(path)
    with pytest.raises(SpecError, match="file not found"):
        load_workload(tmp_path / "absent.yaml")


def test_workload_is_frozen(tmp_path: Path) -> None:
    wl = load_workload(_write(tmp_path, BASE))
    with pytest.raises(Exception):
        wl.duration = 5  # type: ignore[misc]
    assert isinstance(wl, Workload)


def test_a_workload_built_in_memory_is_checked_like_a_file(tmp_path):
    from fcbench.errors import SpecError

    (tmp_path / "body.json").write_text('{"sleep_ms": 5}')
    doc = {"name": "mem", "target": {"kind": "url", "url": "http://127.0.0.1:9"},
           "request": {"body": "@body.json"}, "duration": 5,
           "plan": {"kind": "poisson", "rate": 2}}
    wl = Workload.from_dict(doc, base_dir=tmp_path)
    assert wl.request_body()[0] == b'{"sleep_ms": 5}'  # @file resolved against base_dir
    assert wl.plan_obj().expected_count(5) == 10
    with pytest.raises(SpecError, match=r"<bad>:1: plan.rate"):
        Workload.from_dict({**doc, "plan": {"kind": "poisson", "rate": -1}}, base_dir=tmp_path,
                           name="bad")


def test_compressed_time_compresses_the_harness_timeouts_unless_pinned(tmp_path):
    (tmp_path / "fn.yaml").write_text("functionName: f\nenvironmentVariables: {FCBENCH_MODEL: sleep}\n"
                                      "harness: {idleTimeout: 300, queue: {timeout: 60}}\n")
    trace = tmp_path / "t.csv"
    trace.write_text("HashOwner,HashApp,HashFunction,Trigger," + ",".join(map(str, range(1, 4)))
                     + "\no,a,f1,http,5,0,7\n")
    doc = {"name": "tr", "target": {"kind": "local", "functions": ["fn.yaml"]}, "duration": 3,
           "plan": {"kind": "trace", "file": "t.csv", "compression": 60}}
    wl = Workload.from_dict(doc, base_dir=tmp_path)
    [spec], time = wl.scaled_specs()
    assert time["scale"] == 60
    assert spec.harness.idle_timeout == 5.0 and spec.harness.queue.timeout == 1.0
    assert time["scaled"]["f"]["idleTimeout"] == [300, 5.0]
    assert "60× faster" in wl.describe_load() and "idleTimeout 300 → 5 s" in wl.describe_load()
    assert wl.to_run_yaml()["time"]["scale"] == 60
    pinned = Workload.from_dict({**doc, "target": {**doc["target"], "pinTimeouts": True}},
                                base_dir=tmp_path)
    [spec], time = pinned.scaled_specs()
    assert spec.harness.idle_timeout == 300 and time["timeouts"] == "pinned"
    plain = Workload.from_dict({**doc, "plan": {"kind": "poisson", "rate": 4}, "timeScale": 10},
                               base_dir=tmp_path)
    assert plain.scaled_specs()[0][0].harness.idle_timeout == 30.0
    assert "offered load 4 req/s" in plain.describe_load()


def test_one_registry_of_plan_and_target_kinds():
    from fcbench.load import plans
    from fcbench.load.plans import PLAN_KINDS, PLAN_MODELS
    from fcbench.targets.config import TARGET_MODELS

    kinds = {cls.model_fields["kind"].annotation.__args__[0] for cls in vars(plans).values()
             if isinstance(cls, type) and issubclass(cls, plans.Plan) and cls is not plans.Plan}
    assert set(PLAN_KINDS) == set(PLAN_MODELS) == kinds  # each kind, one model
    assert set(TARGET_MODELS) == {"local", "url", "fc"}
