"""What a newcomer runs first: the README's profile, sample requests named by the spec, failed
experiments that say why and exit non-zero, and `fcbench doctor` suggesting only commands that
work (real CLI subprocesses on the CPU-free `sleep` model)."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fcbench.errors import SpecError
from fcbench.spec import function_spec_from_dict, load_function_spec

REPO = Path(__file__).resolve().parent.parent
SLEEP = ("functionName: s\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
         "  FCBENCH_SLEEP_MS: '5'\n")


def _one_run_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


# ---- harness.sampleRequest ----------------------------------------------------------------

def test_sample_request_file_resolves_against_the_spec_file(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.jpg").write_bytes(b"\xff\xd8jpeg")
    (tmp_path / "functions").mkdir()
    spec_file = tmp_path / "functions" / "f.yaml"
    spec_file.write_text(SLEEP + "harness:\n  sampleRequest:\n    file: ../images/x.jpg\n")
    sample = load_function_spec(spec_file).harness.sample_request
    assert sample.file == str(tmp_path / "images" / "x.jpg")
    assert sample.body() == (b"\xff\xd8jpeg", "image/jpeg")
    spec_file.write_text(SLEEP + "harness:\n  sampleRequest:\n    file: ../images/nope.jpg\n")
    with pytest.raises(SpecError) as info:
        load_function_spec(spec_file)
    assert str(info.value).startswith(f"{spec_file}:7: harness.sampleRequest.file: sample "
                                      "request file '../images/nope.jpg' not found")


def test_sample_request_takes_exactly_one_of_file_json_text():
    def sample(**kw):  # noqa: ANN003, ANN202
        return function_spec_from_dict({"functionName": "f", "harness": {"sampleRequest": kw}}) \
            .harness.sample_request

    assert sample(json={"sleep_ms": 5}).body() == (b'{"sleep_ms": 5}', "application/json")
    assert sample(text="a fox").body() == (b"a fox", "text/plain; charset=utf-8")
    assert sample(text="{}", contentType="application/json").body()[1] == "application/json"
    with pytest.raises(SpecError, match="harness.sampleRequest: give exactly one of file, json"):
        sample(json={}, text="x")
    with pytest.raises(SpecError, match="harness.sampleRequest: give exactly one"):
        sample()


def test_every_shipped_spec_names_a_sample_request():
    for path in sorted((REPO / "workloads" / "functions").glob("*.yaml")):
        spec = load_function_spec(path)
        assert spec.harness.sample_request is not None, path
        body, ctype = spec.harness.sample_request.body()
        if spec.environment_variables.get("FCBENCH_MODEL", "mobilenet-v2") == "mobilenet-v2" \
                and spec.name in ("mobilenet-v2", "mnv2"):
            assert ctype == "image/jpeg" and body[:2] == b"\xff\xd8"
        else:
            assert ctype == "application/json"
            doc = json.loads(body)
            if spec.name == "stable-diffusion":
                assert set(doc) <= {"prompt", "negative_prompt", "steps", "height", "width",
                                    "seed", "guidance_scale"} and doc["prompt"]


# ---- experiments whose every sample failed ------------------------------------------------

@pytest.mark.slow
def test_profile_whose_every_request_fails_prints_the_error_and_exits_1(tmp_path, fcbench_run):
    spec = tmp_path / "s.yaml"
    spec.write_text(SLEEP)
    res = fcbench_run("coldstart", "profile", str(spec), "-n", "2", "--warmup", "0",
                      "--data", "{not json", "--out", str(tmp_path / "res"), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "error: no cold start was kept (2 failed)" in res.stderr
    assert "HTTP 400: the body is not valid JSON" in res.stderr
    assert "Traceback" not in res.stderr
    run = _one_run_dir(tmp_path / "res")  # partial results stay on disk
    assert json.loads((run / "summary.json").read_text())["counts"]["failed"] == 2
    assert [r["kind"] for r in csv.DictReader(open(run / "phases.csv"))] == ["failed"] * 2


@pytest.mark.slow
def test_profile_of_an_instance_that_never_starts_exits_1(tmp_path, fcbench_run):
    spec = tmp_path / "broken.yaml"
    spec.write_text("functionName: broken\nharness:\n"
                    "  command: [sh, -c, 'echo boom >&2; exit 3']\n")
    res = fcbench_run("coldstart", "profile", str(spec), "-n", "1", "--warmup", "0",
                      "--out", str(tmp_path / "res"), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no harness.sampleRequest: sending an empty body" in res.stderr
    assert "the first failure (cold start 1): HTTP 502" in res.stderr
    assert "FunctionNotStarted" in res.stderr


@pytest.mark.slow
def test_sweep_whose_every_level_fails_prints_the_error_and_exits_1(tmp_path, fcbench_run):
    spec = tmp_path / "s.yaml"
    spec.write_text(SLEEP)
    res = fcbench_run("coldstart", "sweep", str(spec), "--concurrency", "1", "--duration", "2",
                      "--steady-multiple", "0", "--service-ms", "200", "--data", "{not json", "--out", str(tmp_path / "res"),
                      timeout=90)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "error: no level had a successful request" in res.stderr
    assert "level 1: HTTP 400: the body is not valid JSON" in res.stderr
    assert (_one_run_dir(tmp_path / "res") / "sweep.csv").is_file()


@pytest.mark.slow
def test_run_whose_every_request_fails_prints_the_error_and_exits_1(tmp_path, fcbench_run,
                                                                    sleep_workload):
    workload = sleep_workload({"kind": "poisson", "rate": 4}, duration=2, startup_ms=0,
                              extra={"request": {"body": "{not json", "timeout": 30}})
    res = fcbench_run("run", str(workload), "--no-progress", timeout=90)
    assert res.returncode == 1, res.stdout + res.stderr
    assert re.search(r"error: all \d+ requests failed; the first: HTTP 400: the body is not "
                     r"valid JSON", res.stderr), res.stderr
    run = _one_run_dir(tmp_path / "results")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] > 0 and summary["ok"] == 0


# ---- the README's first profile -----------------------------------------------------------

@pytest.mark.slow
def test_readme_profile_of_mobilenet_keeps_its_sample(tmp_path):
    pytest.importorskip("onnxruntime")
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile",
                          "workloads/functions/mobilenet-v2.yaml", "--virtual-gpus", "1x16GB",
                          "-n", "1", "--warmup", "0", "--out", str(tmp_path / "res")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "harness.sampleRequest (file " in res.stdout and "image/jpeg" in res.stdout
    run = _one_run_dir(tmp_path / "res")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"]["ok"] == 1 and summary["counts"]["failed"] == 0


# ---- fcbench doctor -----------------------------------------------------------------------

def _doctor(**env: str) -> str:
    res = subprocess.run([sys.executable, "-m", "fcbench", "doctor"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, **env})
    assert res.returncode == 0, res.stderr
    return res.stdout


def _suggested(out: str) -> list[str]:
    return re.findall(r"`([^`]+)`", out)


@pytest.mark.slow
@pytest.mark.parametrize("docker_host", [None, "unix:///nonexistent/docker.sock"])
def test_doctor_suggests_only_commands_that_work_here(docker_host):
    out = _doctor(**({"DOCKER_HOST": docker_host} if docker_host else {}))
    commands = _suggested(out)
    for command in commands:
        words = shlex.split(command)
        if words[0] == "fcbench":  # every option it names exists: --help answers 0
            res = subprocess.run([sys.executable, "-m", "fcbench", *words[1:], "--help"],
                                 capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, f"`{command}`: {res.stderr}"
        elif words[0] not in ("unset",):
            assert shutil.which(words[0]) or Path(words[0]).exists() or \
                words[0] in ("sudo",), f"`{command}`: {words[0]} is not on this machine"
        if words[0] == "sudo":
            assert os.geteuid() != 0 and shutil.which("sudo"), command
        if words[0] == "bash":
            assert Path(words[1]).is_file(), command
    if not Path("/run/systemd/system").is_dir():
        assert "systemctl" not in " ".join(commands)
    from fcbench.harness.gpus import discover_gpus

    if not discover_gpus():
        assert "nvidia-ctk" not in out and "--virtual-gpus" in out
        assert "GPU specs need --virtual-gpus" not in out
    if docker_host:
        assert "images: unknown (no Docker daemon)" in out
        assert "fcbench images build" not in out
