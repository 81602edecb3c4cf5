"""FC 3.0's CreateFunction limits, checked once in `fcbench.spec`: names matched whole (no trailing
newline), environment variable names / values / 4 KB total, finite numbers only, and the published
maximum of every duration and size. Each rule gives `file:line: key: what to change` for a YAML
file and a 400 InvalidArgument naming the field for a harness CreateFunction body."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness_utils import http

from fcbench.errors import SpecError
from fcbench.fc import GPU_TYPES
from fcbench.spec import function_spec_from_dict, load_function_spec, trigger_from_dict

ROOT = Path(__file__).resolve().parent.parent
LARGEST_GPU_MB = max(t.total_mb for t in GPU_TYPES.values())

# (id, the spec file with "#<" on the line the error must name, the key path, words of the message)
CASES = [
    ("name-trailing-newline", 'functionName: "f\\n"  #<\n', "functionName",
     "functionName must start"),
    ("name-too-long", f"functionName: {'f' * 65}  #<\n", "functionName", "at most 64"),
    ("env-key-with-equals", 'functionName: f\nenvironmentVariables:\n  "A=B": x  #<\n',
     "environmentVariables.A=B", "rename it, e.g. to A_B"),
    ("env-key-empty", 'functionName: f\nenvironmentVariables:\n  "": x  #<\n',
     "environmentVariables.", "starts with a letter"),
    ("env-key-digit", "functionName: f\nenvironmentVariables:\n  1ABC: x  #<\n",
     "environmentVariables.1ABC", "starts with a letter"),
    ("env-key-reserved", "functionName: f\nenvironmentVariables:\n  FC_REGION: x  #<\n",
     "environmentVariables.FC_REGION", "FC's own"),
    ("env-value-nul", 'functionName: f\nenvironmentVariables:\n  A: "x\\0y"  #<\n',
     "environmentVariables.A", "NUL"),
    ("env-total-over-4kb", f"functionName: f\nenvironmentVariables:  #<\n  A: {'x' * 2100}\n"
     f"  B: {'y' * 2100}\n", "environmentVariables", "4 KB"),
    ("timeout-inf", "functionName: f\ntimeout: .inf  #<\n", "timeout", "not a finite number"),
    ("timeout-nan", "functionName: f\ntimeout: .nan  #<\n", "timeout", "not a finite number"),
    ("timeout-1e308", "functionName: f\ntimeout: 1.0e+308  #<\n", "timeout", "at most 86400 s"),
    ("timeout-over-a-day", "functionName: f\ntimeout: 86401  #<\n", "timeout", "at most 86400"),
    ("idle-timeout-inf", "functionName: f\nharness:\n  idleTimeout: .inf  #<\n",
     "harness.idleTimeout", "not a finite number"),
    ("idle-timeout-1e308", "functionName: f\nharness:\n  idleTimeout: 1.0e+308  #<\n",
     "harness.idleTimeout", "at most 86400 s"),
    ("queue-timeout-nan", "functionName: f\nharness:\n  queue:\n    timeout: .nan  #<\n",
     "harness.queue.timeout", "not a finite number"),
    ("queue-timeout-1e308", "functionName: f\nharness:\n  queue:\n    timeout: 1.0e+308  #<\n",
     "harness.queue.timeout", "at most 86400 s"),
    ("start-timeout-inf", "functionName: f\nharness:\n  startTimeout: .inf  #<\n",
     "harness.startTimeout", "not a finite number"),
    ("start-timeout-1e308", "functionName: f\nharness:\n  startTimeout: 1.0e+308  #<\n",
     "harness.startTimeout", "at most 86400 s"),
    ("initializer-timeout-inf", "functionName: f\ninstanceLifecycleConfig:\n  initializer:\n"
     "    timeout: .inf  #<\n", "instanceLifecycleConfig.initializer.timeout",
     "not a finite number"),
    ("initializer-timeout-601", "functionName: f\ninstanceLifecycleConfig:\n  initializer:\n"
     "    timeout: 601  #<\n", "instanceLifecycleConfig.initializer.timeout", "at most 600 s"),
    ("pre-stop-timeout-1e308", "functionName: f\ninstanceLifecycleConfig:\n  preStop:\n"
     "    timeout: 1.0e+308  #<\n", "instanceLifecycleConfig.preStop.timeout", "at most 600 s"),
    ("memory-under-128", "functionName: f\nmemorySize: 64  #<\n", "memorySize",
     "at least 128 MB"),
    ("memory-over-32gb", "functionName: f\nmemorySize: 32832  #<\n", "memorySize",
     "at most 32768 MB"),
    ("memory-1e308", "functionName: f\nmemorySize: 1.0e+308  #<\n", "memorySize",
     "at most 32768 MB"),
    ("memory-step", "functionName: f\nmemorySize: 1000  #<\n", "memorySize", "use 1024"),
    ("disk-size", "functionName: f\ndiskSize: 2048  #<\n", "diskSize", "512 or 10240"),
    ("gpu-memory-over-largest", f"functionName: f\ngpuConfig:\n  gpuMemorySize: "
     f"{LARGEST_GPU_MB + 1024}  #<\n", "gpuConfig.gpuMemorySize", f"lower it to {LARGEST_GPU_MB}"),
    ("max-instances", "functionName: f\nharness:\n  maxInstances: 10001  #<\n",
     "harness.maxInstances", "at most 10000"),
    ("min-instances-inf", "functionName: f\nharness:\n  minInstances: .inf  #<\n",
     "harness.minInstances", "not a finite number"),
    ("queue-size", "functionName: f\nharness:\n  queue:\n    size: 100001  #<\n",
     "harness.queue.size", "at most 100000"),
    ("cpu-nan", "functionName: f\ncpu: .nan  #<\n", "cpu", "not a finite number"),
    ("sample-json-nan", "functionName: f\nharness:\n  sampleRequest:\n    json:\n"
     "      x: .nan  #<\n", "harness.sampleRequest.json.x", "not a finite number"),
    ("passthrough-inf", "functionName: f\nvpcConfig:\n  vpcId: v\n  x: .inf  #<\n",
     "vpcConfig.x", "not a finite number"),
]


def _line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "#<" in line)


@pytest.mark.parametrize("text, key, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_yaml_file_names_file_line_and_key(tmp_path: Path, text: str, key: str,
                                             words: str) -> None:
    path = tmp_path / "fn.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_function_spec(path)
    err = info.value
    assert (err.file, err.line, err.path) == (str(path), _line(text), key), str(err)
    assert words in err.message, err.message
    assert str(err).startswith(f"{path}:{_line(text)}: {key}: ")


def test_valid_specs_at_the_limits_still_load() -> None:
    doc = {"functionName": "f" * 64, "timeout": 86400, "memorySize": 32768, "cpu": 16,
           "diskSize": 10240, "gpuConfig": {"gpuMemorySize": LARGEST_GPU_MB,
                                            "gpuType": "fc.gpu.ada.1"},
           "instanceLifecycleConfig": {"initializer": {"timeout": 600},
                                       "preStop": {"timeout": 600}},
           "environmentVariables": {"A": "x" * 4000, "b_2": "1"},  # 4005 bytes of 4096
           "harness": {"idleTimeout": 86400, "startTimeout": 86400, "maxInstances": 10000,
                       "minInstances": 10000, "queue": {"size": 100000, "timeout": 86400}}}
    spec = function_spec_from_dict(doc)
    assert spec.timeout == 86400 and spec.harness.queue.size == 100000
    # the harness keeps sub-second timeouts (FC's minimum is 1 s): its own tests use them
    assert function_spec_from_dict({"functionName": "f", "timeout": 0.5}).timeout == 0.5


def test_trigger_name_is_matched_whole() -> None:
    with pytest.raises(SpecError) as info:
        trigger_from_dict({"triggerName": "t\n", "triggerType": "http"})
    assert info.value.path == "triggerName" and "triggerName must start" in info.value.message
    assert trigger_from_dict({"triggerName": "t" * 128, "triggerType": "http"})


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcbench", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.slow
@pytest.mark.parametrize("case", ["timeout-inf", "env-key-with-equals", "name-trailing-newline",
                                  "queue-timeout-1e308"])
def test_the_cli_prints_file_line_key_and_exits_2(tmp_path: Path, case: str) -> None:
    _, text, key, words = next(c for c in CASES if c[0] == case)
    path = tmp_path / "fn.yaml"
    path.write_text(text)
    for args in (["deploy", str(path), "--dry-run"],
                 ["harness", "serve", str(path), "--port", "0"]):
        res = _cli(*args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stdout[-500:], res.stderr[-2000:])
        assert f"{path}:{_line(text)}: {key}: " in res.stderr and words in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from fcbench.harness.server import HarnessConfig, HarnessThread

    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path_factory.mktemp("logs"))) as h:
        yield h


@pytest.mark.slow
@pytest.mark.parametrize("text, key, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_harness_create_function_body_gets_400_naming_the_field(harness, text: str, key: str,
                                                                   words: str) -> None:
    body = yaml.safe_load(text)  # the same spec as JSON (inf and nan as Infinity and NaN)
    status, _, raw = http("POST", f"{harness.url}/2023-03-30/functions", body)
    answer = json.loads(raw)
    assert (status, answer["Code"]) == (400, "InvalidArgument"), answer
    assert answer["Message"].startswith(f"{key}: ") and words in answer["Message"], answer
    # UpdateFunction goes through the same rules
    name = "limits-ok"
    if http("GET", f"{harness.url}/2023-03-30/functions/{name}")[0] == 404:
        status, _, raw = http("POST", f"{harness.url}/2023-03-30/functions", {"functionName": name})
        assert status == 200, raw
    changes = {k: v for k, v in body.items() if k != "functionName"}
    if changes:
        status, _, raw = http("PUT", f"{harness.url}/2023-03-30/functions/{name}", changes)
        assert status == 400 and json.loads(raw)["Message"].startswith(f"{key}: "), raw


@pytest.mark.slow
def test_a_harness_create_trigger_body_with_a_trailing_newline_is_refused(harness) -> None:
    status, _, raw = http("POST", f"{harness.url}/2023-03-30/functions",
                          {"functionName": "trig"})
    assert status in (200, 409), raw
    status, _, raw = http("POST", f"{harness.url}/2023-03-30/functions/trig/triggers",
                          {"triggerName": "t\n", "triggerType": "http"})
    answer = json.loads(raw)
    assert (status, answer["Code"]) == (400, "InvalidArgument")
    assert answer["Message"].startswith("triggerName: ")
