"""GPU specs on a machine where NVML finds no GPU: virtual GPUs sized like the spec's gpuType,
one notice, `--require-gpu` to refuse (real harness, real instance processes, real CLI)."""

from __future__ import annotations

import queue
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fcbench.errors import GpuError, UsageError
from fcbench.harness.gpus import default_virtual_gpus, discover_gpus
from fcbench.harness.server import HarnessConfig, HarnessThread
from harness_utils import instances, invoke, sleep_spec

REPO = Path(__file__).resolve().parent.parent
NOTICE = "no GPU found by NVML"

no_nvml_gpu = pytest.mark.skipif(bool(discover_gpus()), reason="NVML finds a GPU here")


def _lines(stream) -> queue.Queue:  # noqa: ANN001
    """Lines of a pipe, read on a thread, so a test can wait for one with a timeout."""
    out: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_for(lines: queue.Queue, text: str, timeout: float = 60) -> tuple[str, list[str]]:
    seen: list[str] = []
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"stream ended before {text!r}: {seen}")
        seen.append(line)
        if text in line:
            return line, seen


def _drain(lines: queue.Queue) -> list[str]:
    out = []
    while True:
        line = lines.get(timeout=30)
        if line is None:
            return out
        out.append(line)


# ---- sizing (pure) ------------------------------------------------------------------------

def test_cards_are_sized_by_gpu_type_and_enough_for_max_instances():
    specs = [sleep_spec("t4", gpuConfig={"gpuMemorySize": 4096}, max_instances=4),
             sleep_spec("ada", gpuConfig={"gpuMemorySize": 20480, "gpuType": "fc.gpu.ada.1"},
                        max_instances=3),
             sleep_spec("a10", gpuConfig={"gpuMemorySize": 8192, "gpuType": "fc.gpu.ampere.1"},
                        max_instances=7),
             sleep_spec("cpu")]
    gpus, info = default_virtual_gpus(specs)
    # t4: 4 per 16 GB card -> 1; a10: 3 per 24 GB card -> 3; ada: 2 per 48 GB card -> 2
    assert info["virtual_gpus"] == "1x16GB,3x24GB,2x48GB"
    assert [g.total_mb for g in gpus] == [16384] + [24576] * 3 + [49152] * 2
    assert all(g.virtual for g in gpus) and [g.index for g in gpus] == list(range(6))
    assert info["untyped"] == ["t4"]
    assert "t4 has no gpuType, taken as fc.gpu.tesla.1 (16 GB, T4 class)" in info["description"]
    assert "A10 class" in info["description"] and "--" not in info["description"]


def test_a_spec_larger_than_its_card_or_of_an_unknown_type_is_refused():
    with pytest.raises(GpuError, match="more than a fc.gpu.tesla.1 card has"):
        default_virtual_gpus([sleep_spec(gpuConfig={"gpuMemorySize": 20480})])
    with pytest.raises(GpuError, match="fc.gpu.ampere.1"):
        default_virtual_gpus([sleep_spec(gpuConfig={"gpuMemorySize": 1024,
                                                    "gpuType": "fc.gpu.volta.9"})])


@no_nvml_gpu
def test_config_says_where_the_gpus_came_from():
    gpu = sleep_spec(gpuConfig={"gpuMemorySize": 4096, "gpuType": "fc.gpu.ampere.1"})
    gpus, info = HarnessConfig().resolve_gpus([gpu])
    assert info["source"] == "virtual-default" and info["virtual_gpus"] == "2x24GB"
    assert info["gpus"][0] == {"index": 0, "name": "virtual-24576MB", "total_mb": 24576,
                               "virtual": True}
    assert HarnessConfig().resolve_gpus([sleep_spec()])[1]["source"] == "none"
    assert HarnessConfig(require_gpu=True).resolve_gpus([sleep_spec()])[0] == []
    with pytest.raises(UsageError, match="NVML finds no GPU"):
        HarnessConfig(require_gpu=True).resolve_gpus([gpu])
    gpus, info = HarnessConfig(virtual_gpus="1x16GB").resolve_gpus([gpu])
    assert info["source"] == "virtual" and [g.total_mb for g in gpus] == [16384]


# ---- a real harness -----------------------------------------------------------------------

@no_nvml_gpu
def test_gpu_spec_is_served_on_a_virtual_card_of_its_type(tmp_path):
    spec = sleep_spec("g", gpuConfig={"gpuMemorySize": 4096, "gpuType": "fc.gpu.ampere.1"})
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        status, headers, body = invoke(h.url, "g", {"sleep_ms": 1})
        assert status == 200, body
        (inst,) = instances(h.url)
        assert inst["gpu_index"] is not None and inst["gpu_memory_mb"] == 4096
        cards = {g.index: g for g in h.harness.platform.scheduler.gpus.gpus}
        assert cards[inst["gpu_index"]].total_mb == 24 * 1024 and cards[inst["gpu_index"]].virtual
        info = h.harness.gpu_info
    assert info["source"] == "virtual-default" and "fc.gpu.ampere.1, A10 class" in \
        info["description"]


@no_nvml_gpu
def test_spec_without_gpu_type_gets_a_16gb_card(tmp_path):
    spec = sleep_spec("u", gpuConfig={"gpuMemorySize": 8192}, max_instances=2)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        assert invoke(h.url, "u", {"sleep_ms": 1})[0] == 200
        (inst,) = instances(h.url)
        cards = {g.index: g for g in h.harness.platform.scheduler.gpus.gpus}
        assert cards[inst["gpu_index"]].total_mb == 16 * 1024
        assert h.harness.gpu_info["virtual_gpus"] == "1x16GB"
        assert "u has no gpuType" in h.harness.gpu_info["description"]


# ---- the CLI ------------------------------------------------------------------------------

@pytest.mark.slow
@no_nvml_gpu
def test_require_gpu_refuses_with_exit_2_and_says_what_to_do(tmp_path):
    spec = tmp_path / "g.yaml"
    spec.write_text("functionName: g\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "gpuConfig:\n  gpuMemorySize: 4096\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                          "--port", "0", "--require-gpu"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2, res.stderr
    assert "g asks for a GPU" in res.stderr and "NVML finds no GPU" in res.stderr
    assert "drop --require-gpu" in res.stderr and "--virtual-gpus" in res.stderr
    assert NOTICE not in res.stderr and "Traceback" not in res.stderr
    both = subprocess.run([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                           "--require-gpu", "--virtual-gpus", "1x16GB"],
                          capture_output=True, text=True, timeout=30)
    assert both.returncode == 2 and "contradict" in both.stderr


@pytest.mark.slow
@no_nvml_gpu
def test_cpu_spec_serves_with_require_gpu_and_no_notice(tmp_path, fcbench_proc):
    spec = tmp_path / "cpu.yaml"
    spec.write_text("functionName: cpu\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n")
    proc = fcbench_proc("harness", "serve", str(spec), "--port", "0", "--require-gpu")
    out, err = _lines(proc.stdout), _lines(proc.stderr)
    _wait_for(out, "listening on")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not [line for line in _drain(err) if NOTICE in line]


@pytest.mark.slow
@no_nvml_gpu
def test_readme_serve_of_mobilenet_starts_with_one_notice_and_the_invoke_hint_works(
        fcbench_proc):
    pytest.importorskip("onnxruntime")
    proc = fcbench_proc("harness", "serve", "workloads/functions/mobilenet-v2.yaml", "--port",
                        "0", cwd=REPO)
    out, err = _lines(proc.stdout), _lines(proc.stderr)
    notice, _ = _wait_for(err, NOTICE)
    assert notice.strip() == ("no GPU found by NVML: placing GPU specs on virtual GPUs 1x16GB "
                              "(fc.gpu.tesla.1, T4 class); pass --virtual-gpus to choose, "
                              "--require-gpu to refuse")
    _wait_for(out, "listening on")
    hint, _ = _wait_for(out, "invoke: ")
    command = shlex.split(hint.split("invoke: ", 1)[1])
    assert command[:2] == ["fcbench", "invoke"] and "@workloads/images/sample.jpg" in command
    res = subprocess.run([sys.executable, "-m", "fcbench", *command[1:]], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 0 and res.stdout.startswith("status 200"), res.stdout + res.stderr
    assert '"top5"' in res.stdout
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not [line for line in _drain(err) if NOTICE in line]  # said once


@pytest.mark.slow
@no_nvml_gpu
def test_the_gpus_used_are_recorded_in_run_yaml(tmp_path):
    import yaml

    spec = tmp_path / "g.yaml"
    spec.write_text("functionName: g\ngpuConfig: {gpuMemorySize: 4096, gpuType: fc.gpu.ada.1}\n"
                    "environmentVariables: {FCBENCH_MODEL: sleep}\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", str(spec),
                          "-n", "1", "--warmup", "0", "--out", str(tmp_path / "res")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "res").iterdir())
    gpus = yaml.safe_load((run / "run.yaml").read_text())["gpus"]
    assert gpus["source"] == "virtual-default" and gpus["virtual_gpus"].endswith("x48GB")


@pytest.mark.slow
@no_nvml_gpu
def test_a_gpu_function_deployed_to_a_harness_started_without_gpus_gets_a_virtual_card(
        tmp_path, fcbench_run):
    """`harness serve` of a CPU spec, then `fcbench deploy` of a GPU spec: placed on a virtual
    card of its gpuType, as `run`, `coldstart` and `doctor` place GPU specs (it was refused
    with "no GPU that NVML can see")."""
    spec = tmp_path / "gpu-sleep.yaml"
    spec.write_text("functionName: gpu-sleep\ngpuConfig: {gpuMemorySize: 4096, gpuType: "
                    "fc.gpu.ampere.1}\nenvironmentVariables: {FCBENCH_MODEL: sleep}\n"
                    "harness: {maxInstances: 2}\n")
    with HarnessThread([sleep_spec("cpu")], HarnessConfig(port=0,
                                                          log_dir=tmp_path / "logs")) as h:
        res = fcbench_run("deploy", str(spec), "--endpoint", h.url)
        assert res.returncode == 0, res.stderr + res.stdout
        assert invoke(h.url, "gpu-sleep", {"sleep_ms": 1})[0] == 200
        (inst,) = [i for i in instances(h.url) if i["function"] == "gpu-sleep"]
        assert inst["gpu_index"] is not None and inst["gpu_memory_mb"] == 4096
        cards = h.harness.platform.scheduler.gpus.gpus
        assert [g.total_mb for g in cards] == [24576]  # one A10-sized card: 2 instances fit
        assert all(g.virtual for g in cards)
