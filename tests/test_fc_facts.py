"""`fcbench.fc` is the one place FC's facts live: the spec, the harness, the cost model and the
deploy code read theirs from it, and it depends on nothing else in fcbench."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fcbench import fc
from fcbench.cost.model import with_spec_shape
from fcbench.cost.usage import usage_from_calls
from fcbench.errors import UsageError
from fcbench.harness.scheduler import FunctionConfig
from fcbench.spec import FunctionSpec, function_spec_from_dict


def test_fc_imports_nothing_from_fcbench() -> None:
    tree = ast.parse(Path(fc.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("fcbench")
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("fcbench") for a in node.names)


def test_spec_and_scheduler_defaults_are_fcs() -> None:
    spec = function_spec_from_dict({"functionName": "f"})
    h = spec.harness
    assert (h.idle_timeout, h.max_instances, h.queue.size, h.queue.timeout, h.start_timeout) == (
        fc.DEFAULT_IDLE_TIMEOUT_S, fc.DEFAULT_MAX_INSTANCES, fc.DEFAULT_QUEUE_SIZE,
        fc.DEFAULT_QUEUE_TIMEOUT_S, fc.DEFAULT_START_TIMEOUT_S)
    assert spec.timeout == fc.DEFAULT_TIMEOUT_S
    assert spec.custom_container_config.port == fc.DEFAULT_PORT
    from_spec, bare = FunctionConfig.from_spec(spec), FunctionConfig(name="f")
    assert (from_spec.concurrency, from_spec.max_instances, from_spec.queue_size,
            from_spec.queue_timeout, from_spec.idle_timeout) == (
        bare.concurrency, bare.max_instances, bare.queue_size, bare.queue_timeout,
        bare.idle_timeout)


def test_gpu_price_family() -> None:
    assert fc.gpu_price_family("fc.gpu.ada.1") == "ada"
    assert fc.gpu_price_family("fc.gpu.tesla.1") == "tesla"
    assert fc.gpu_price_family("fc.gpu.ampere.1") == "tesla"
    assert fc.gpu_price_family("fc.gpu.ada.2") == "ada"  # not known: read from the name
    spec: FunctionSpec = function_spec_from_dict(
        {"functionName": "f", "gpuConfig": {"gpuMemorySize": 4096, "gpuType": "fc.gpu.ada.1"}})
    assert with_spec_shape(usage_from_calls(10, 1, 4), spec).gpu_family == "ada"


def test_largest_gpu_bounds_gpu_memory() -> None:
    assert fc.MAX_GPU_MEMORY_MB == max(t.total_mb for t in fc.GPU_TYPES.values()) == 48 * 1024
    assert fc.V1_INSTANCE_TYPES["g1"] in fc.GPU_TYPES


def test_no_cli_module_imports_another() -> None:
    """Command modules share plumbing through cli/_base.py only (or the library)."""
    cli = Path(fc.__file__).parent / "cli"
    for path in cli.glob("*.py"):
        if path.name in ("__init__.py", "_base.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module == "_base", f"{path.name} imports .{node.module}"


def test_a_gpu_plan_is_resolved_once(monkeypatch) -> None:  # noqa: ANN001
    """A harness given a plan places on its GPUs without resolving them again."""
    from fcbench.harness import gpuplan
    from fcbench.harness.server import HarnessConfig

    spec = function_spec_from_dict({"functionName": "g", "gpuConfig": {"gpuMemorySize": 4096}})
    plan = gpuplan.plan_gpus([spec], virtual_gpus="1x16GB")
    monkeypatch.setattr(gpuplan, "discover_gpus", lambda: (_ for _ in ()).throw(AssertionError))
    gpus, info = HarnessConfig(gpu_plan=plan).resolve_gpus([spec])
    assert [g.total_mb for g in gpus] == [16 * 1024] and info["source"] == "virtual"
    gpus[0].used_mb = 4096  # a platform's reservations stay on its own copies
    assert plan.fresh_gpus()[0].used_mb == 0


def test_one_definition_of_the_settings_a_sweep_or_what_if_varies() -> None:
    from fcbench.coldstart.predict import SWEEP_KEYS
    from fcbench.coldstart.sweep import SweepConfig
    from fcbench.sim.settings import SETTINGS, by_vary
    from fcbench.sim.whatif import WHAT_IF_KEYS, _with_settings

    assert list(WHAT_IF_KEYS) == list(SETTINGS)
    assert SWEEP_KEYS == {"concurrency": "concurrency",
                          "instanceConcurrency": "instance-concurrency",
                          "idleTimeout": "idle-timeout", "minInstances": "min-instances"}
    assert by_vary("concurrency") is None
    spec = function_spec_from_dict({"functionName": "f"})
    assert {k: s.get(spec) for k, s in SETTINGS.items()} == {
        "minInstances": 0, "idleTimeout": fc.DEFAULT_IDLE_TIMEOUT_S,
        "instanceConcurrency": 1, "maxInstances": fc.DEFAULT_MAX_INSTANCES}
    doc = {"target": {"functions": [{"functionName": "f"}]}}
    out = _with_settings(doc, {"minInstances": 2, "instanceConcurrency": 4})
    assert out["target"]["functions"][0] == {"functionName": "f", "instanceConcurrency": 4,
                                             "harness": {"minInstances": 2}}
    assert doc == {"target": {"functions": [{"functionName": "f"}]}}  # a copy was changed
    SweepConfig(levels=(0, 1), vary="min-instances")  # 0 provisioned instances is a level
    with pytest.raises(UsageError, match="positive"):
        SweepConfig(levels=(0, 1), vary="idle-timeout")
    with pytest.raises(UsageError, match="whole numbers"):
        SweepConfig(levels=(1.5,), vary="instance-concurrency")
