"""`fcbench deploy` and imported files run nothing and copy no secret silently: commands on the
harness's machine (`harness.command`, LD_PRELOAD / PYTHONPATH ... for the process runtime) and
``${env('NAME')}`` references are printed by `import` and `apply` (the reference, never its
value), `apply` refuses them before any call without ``--allow-command`` / ``--allow-secret-env``,
and only `fcbench deploy` resolves references. Real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcbench._net import free_port
from fcbench.errors import SpecError
from fcbench.spec import (HOST_ENV_KEYS, container_code, env_refs, function_spec_from_dict,
                          host_code, load_function_spec, resolve_env_refs)

ROOT = Path(__file__).resolve().parent.parent
FAKE = "fake-secret-3f9a7c1e5d"  # the "credential" the importing / deploying shell holds
REF = "${env('ALIBABA_CLOUD_ACCESS_KEY_SECRET')}"
S_YAML = """\
edition: 3.0.0
name: demo
access: default
vars:
  image: reg.example/ns/app:1
  x-fcbench:
    app:
      harness:
        command: [python3, app.py]
resources:
  app:
    component: fc3
    props:
      region: cn-hangzhou
      functionName: app
      runtime: custom-container
      customContainerConfig:
        image: ${vars.image}
        command: [python3, serve.py]
      environmentVariables:
        X: ${env('ALIBABA_CLOUD_ACCESS_KEY_SECRET')}
        WHERE: ${env.DEPLOY_WHERE}
"""


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": FAKE, "DEPLOY_WHERE": "lab", **env}
    return subprocess.run([sys.executable, "-m", "fcbench", "deploy", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=full, check=False)


@pytest.fixture
def s_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(S_YAML)
    return path


def _no_secret(res: subprocess.CompletedProcess) -> None:
    assert FAKE not in res.stdout + res.stderr, "the resolved secret was printed"


def _lists_command_and_reference(stderr: str) -> None:
    assert "harness.command: python3 app.py" in stderr, stderr
    assert f"environmentVariables.X: {REF}" in stderr, stderr
    assert "environmentVariables.WHERE: ${env('DEPLOY_WHERE')}" in stderr, stderr
    assert "customContainerConfig.command: python3 serve.py" in stderr, stderr


@pytest.mark.slow
def test_import_writes_the_reference_never_the_value(tmp_path: Path, s_yaml: Path) -> None:
    out = tmp_path / "out.yaml"
    res = cli("import", str(s_yaml), "-o", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    _no_secret(res)
    _lists_command_and_reference(res.stderr)
    text = out.read_text()
    assert FAKE not in text and "lab" not in text.replace("label", "")
    assert f"X: {REF}" in text and "WHERE: ${env('DEPLOY_WHERE')}" in text
    assert "image: reg.example/ns/app:1" in text  # ${vars...} is in the file: substituted
    spec = load_function_spec(out)  # the written file loads, holding the references
    assert spec.environment_variables["X"] == REF
    assert spec.harness.command == ["python3", "app.py"]
    # to standard output: the same text
    res = cli("import", str(s_yaml), cwd=tmp_path)
    assert res.returncode == 0 and f"X: {REF}" in res.stdout
    _no_secret(res)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["s.yaml", "FUNCTION.yaml"])
def test_dry_run_prints_commands_and_references_never_the_value(tmp_path: Path, s_yaml: Path,
                                                                which: str) -> None:
    path = s_yaml
    if which == "FUNCTION.yaml":
        path = tmp_path / "fn.yaml"
        assert cli("import", str(s_yaml), "-o", str(path), cwd=tmp_path).returncode == 0
    res = cli(str(path), "--endpoint", f"http://127.0.0.1:{free_port()}", "--dry-run",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    _no_secret(res)
    _lists_command_and_reference(res.stderr)
    create = next(b for b in res.stdout.split("\n\n") if b.startswith("CreateFunction:"))
    body = json.loads(create.partition("\n")[2])
    # key X does not look secret, so *** would not hide it: the dry run shows the reference
    assert body["environmentVariables"] == {"X": REF, "WHERE": "${env('DEPLOY_WHERE')}"}
    assert body["harness"]["command"] == ["python3", "app.py"]
    # an unset variable is an error naming the file's key, as on a real deploy
    env = {k: v for k, v in os.environ.items() if k != "DEPLOY_WHERE"}
    res = subprocess.run([sys.executable, "-m", "fcbench", "deploy", str(path), "--endpoint",
                          "http://127.0.0.1:9", "--dry-run"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, check=False,
                         env={**env, "PYTHONPATH": os.pathsep.join(sys.path),
                              "ALIBABA_CLOUD_ACCESS_KEY_SECRET": FAKE})
    assert res.returncode == 2, res.stderr
    key = ("resources.app.props.environmentVariables.WHERE" if which == "s.yaml"
           else "environmentVariables.WHERE")
    assert f"{path}:" in res.stderr and f": {key}: " in res.stderr
    assert "DEPLOY_WHERE is not set" in res.stderr


def test_a_reference_in_a_number_field_is_refused_at_import(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("edition: 3.0.0\nname: d\nresources:\n  app:\n    component: fc3\n"
                    "    props:\n      functionName: app\n      memorySize: ${env('MEM')}\n")
    res = cli("import", str(path), cwd=tmp_path, MEM="1024")
    assert res.returncode == 2, res.stderr
    assert f"{path}:8: resources.app.props.memorySize: " in res.stderr
    assert "put the value itself" in res.stderr


@pytest.mark.slow
def test_apply_refuses_a_command_before_connecting(tmp_path: Path, s_yaml: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: a connection would fail
    res = cli(str(s_yaml), "--endpoint", endpoint, "--timeout", "5", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    _no_secret(res)
    _lists_command_and_reference(res.stderr)
    assert "nothing was sent" in res.stderr and "harness.command: python3 app.py" in res.stderr
    assert "pass --allow-command to send it" in res.stderr
    assert f"environmentVariables.X takes {REF}" in res.stderr
    assert "pass --allow-secret-env to send it" in res.stderr
    assert "cannot reach" not in res.stderr and "Traceback" not in res.stderr

    # --allow-command alone: the secret reference is still refused, naming key and variable
    res = cli(str(s_yaml), "--endpoint", endpoint, "--allow-command", cwd=tmp_path)
    assert res.returncode == 2 and "--allow-secret-env" in res.stderr
    assert "--allow-command to send" not in res.stderr and "cannot reach" not in res.stderr
    _no_secret(res)

    # both: past the refusals, to the connection (which fails here); still never the value
    res = cli(str(s_yaml), "--endpoint", endpoint, "--allow-command", "--allow-secret-env",
              "--timeout", "5", cwd=tmp_path)
    assert "nothing was sent" not in res.stderr and res.returncode != 0
    _no_secret(res)


def test_toward_fc_commands_are_printed_and_secrets_still_refused(tmp_path: Path,
                                                                  s_yaml: Path) -> None:
    # toward FC the harness block is never sent, so harness.command cannot run anywhere
    res = cli(str(s_yaml), "--region", "cn-hangzhou", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "harness.command: python3 app.py" in res.stderr
    assert "--allow-command to send" not in res.stderr
    assert "pass --allow-secret-env to send it" in res.stderr
    _no_secret(res)


@pytest.mark.slow
def test_a_plain_spec_needs_no_flag(tmp_path: Path) -> None:
    res = cli(str(ROOT / "workloads/functions/sleep.yaml"), "--endpoint", "http://127.0.0.1:9",
              "--dry-run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "harness's machine" not in res.stderr and "${env" not in res.stderr


# ---- the definitions the CLI (and the harness) use ------------------------------------------
def test_host_code_and_container_code() -> None:
    spec = function_spec_from_dict({
        "functionName": "f", "harness": {"command": ["python3", "my app.py"]},
        "environmentVariables": {"LD_PRELOAD": "/x.so", "PYTHONPATH": "/p", "OTHER": "1"},
        "customContainerConfig": {"image": "i", "entrypoint": ["sh", "-c"],
                                  "command": ["echo hi"]},
        "instanceLifecycleConfig": {"preStop": {"command": ["stop.sh"]}}})
    assert host_code(spec) == ["harness.command: python3 'my app.py'",
                               "environmentVariables.LD_PRELOAD: /x.so",
                               "environmentVariables.PYTHONPATH: /p"]
    assert container_code(spec) == ["customContainerConfig.entrypoint: sh -c",
                                    "customContainerConfig.command: 'echo hi'",
                                    "instanceLifecycleConfig.preStop.command: stop.sh"]
    docker = function_spec_from_dict({"functionName": "f", "harness": {"runtime": "docker"},
                                      "environmentVariables": {k: "x" for k in HOST_ENV_KEYS}})
    assert host_code(docker) == []  # inside the container, not on the host
    process = docker.model_copy(update={"harness": docker.harness.model_copy(
        update={"runtime": "process"})})
    assert len(host_code(process)) == len(HOST_ENV_KEYS)


def test_resolve_env_refs_in_memory() -> None:
    spec = function_spec_from_dict({"functionName": "f", "environmentVariables": {
        "X": REF, "URL": "https://${env.HOST}/v1", "PLAIN": "1"}})
    refs = env_refs(spec)
    assert [(r.path, r.name, r.secret) for r in refs] == [
        ("environmentVariables.X", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", True),
        ("environmentVariables.URL", "HOST", False)]
    got, names = resolve_env_refs(spec, {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": FAKE, "HOST": "h"})
    assert got.environment_variables == {"X": FAKE, "URL": "https://h/v1", "PLAIN": "1"}
    assert names == ["ALIBABA_CLOUD_ACCESS_KEY_SECRET", "HOST"]
    assert spec.environment_variables["X"] == REF  # the spec itself is unchanged
    with pytest.raises(SpecError) as info:
        resolve_env_refs(spec, {"HOST": "h"})
    assert info.value.path == "environmentVariables.X"
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set" in info.value.message
    # the resolved spec is validated again, and its errors never quote the value
    with pytest.raises(SpecError) as info:
        resolve_env_refs(spec, {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": FAKE + "\x00", "HOST": "h"})
    assert info.value.path == "environmentVariables.X" and "NUL" in info.value.message
    assert FAKE not in str(info.value) and REF in str(info.value)
    with pytest.raises(SpecError) as info:
        resolve_env_refs(spec, {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "x" * 5000, "HOST": "h"})
    assert info.value.path == "environmentVariables" and "4 KB" in info.value.message
    assert resolve_env_refs(function_spec_from_dict({"functionName": "g"}), {})[1] == []


def test_the_harness_and_run_keep_references_literal(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`harness serve` and `run` load specs with `load_function_spec` and start instances with
    `instance_environment`: the reference reaches the instance as text, never resolved."""
    from fcbench.harness.runtimes.base import StartRequest
    from fcbench.harness.runtimes.process import instance_environment

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", FAKE)
    path = tmp_path / "fn.yaml"
    path.write_text(f"functionName: f\nenvironmentVariables:\n  X: \"{REF}\"\n")
    spec = load_function_spec(path)
    assert spec.environment_variables["X"] == REF
    env = instance_environment(StartRequest(spec, "i-1", None, tmp_path / "i-1.log"))
    assert env["X"] == REF and FAKE not in env.values()


@pytest.mark.slow
def test_a_live_deploy_sends_the_value_and_never_prints_it(tmp_path: Path) -> None:
    """Toward a running harness: the function gets the resolved value; the output, on create
    and on an update that changes it, shows only the reference."""
    from harness_utils import http

    from fcbench.harness.server import HarnessConfig, HarnessThread

    path = tmp_path / "fn.yaml"
    path.write_text("functionName: live\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    f"  X: \"{REF}\"\n")
    noproxy = {k: "" for k in os.environ if "PROXY" in k.upper()}
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        res = cli(str(path), "--endpoint", h.url, cwd=tmp_path, **noproxy)
        assert res.returncode == 2 and "--allow-secret-env" in res.stderr  # refused first
        res = cli(str(path), "--endpoint", h.url, "--allow-secret-env", cwd=tmp_path, **noproxy)
        assert res.returncode == 0, res.stderr + res.stdout
        assert "created function live" in res.stdout
        _no_secret(res)
        got = json.loads(http("GET", f"{h.url}/2023-03-30/functions/live")[2])
        assert got["environmentVariables"]["X"] == FAKE  # resolved, in memory, for the call
        rotated = FAKE + "-rotated"
        res = cli(str(path), "--endpoint", h.url, "--allow-secret-env", cwd=tmp_path,
                  ALIBABA_CLOUD_ACCESS_KEY_SECRET=rotated, **noproxy)
        assert res.returncode == 0, res.stderr + res.stdout
        assert f"environmentVariables.X: changed (value from {REF}, not shown)" in res.stdout
        assert FAKE not in res.stdout + res.stderr  # neither the old value nor the new one
        got = json.loads(http("GET", f"{h.url}/2023-03-30/functions/live")[2])
        assert got["environmentVariables"]["X"] == rotated
