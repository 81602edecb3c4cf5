"""Input that cannot crash fcbench: binary files, broken nested specs, absurd numbers, wrong
folders. Each is one line `file:line: key: what to change` (or a sentence) and exit code 2 —
never a traceback, never a hang. Real commands in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts processes or servers

BINARY = bytes(range(128, 256)) * 4 + bytes(range(128))  # undecodable at once


def fcbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcbench", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def assert_refused(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)


WORKLOAD = ("name: t\ntarget: {{kind: url, url: 'http://127.0.0.1:9'}}\nduration: {duration}\n"
            "plan: {plan}\n")


@pytest.mark.parametrize("command", [["run"], ["harness", "serve", "--port", "0"],
                                     ["coldstart", "profile"], ["coldstart", "sweep"]])
def test_a_binary_file_is_named_with_its_line(tmp_path, command):
    (tmp_path / "x.yaml").write_bytes(b"functionName: f\n" + BINARY)
    res = fcbench(*command[:2], "x.yaml", *command[2:], cwd=tmp_path) if len(command) > 1 \
        else fcbench(command[0], "x.yaml", cwd=tmp_path)
    assert_refused(res, "x.yaml:2:", "not UTF-8 text")


def test_a_nul_byte_is_a_binary_file_too(tmp_path):
    (tmp_path / "x.yaml").write_bytes(b"name: t\n\x00\x00\n")
    assert_refused(fcbench("run", "x.yaml", cwd=tmp_path), "x.yaml:2:", "binary")


def test_a_broken_spec_referenced_from_a_workload_names_the_spec_file(tmp_path):
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "broken.yaml").write_text("functionName: f\ninstanceConcurrency: [1\n")
    (tmp_path / "w.yaml").write_text("name: t\ntarget: {kind: local, functions: "
                                     "[fns/broken.yaml]}\nduration: 5\n"
                                     "plan: {kind: poisson, rate: 1}\n")
    assert_refused(fcbench("run", "w.yaml", cwd=tmp_path), "broken.yaml:3:", "invalid YAML")
    (tmp_path / "fns" / "broken.yaml").write_text("functionName: f\ninstanceConcurrency: 0\n")
    assert_refused(fcbench("run", "w.yaml", cwd=tmp_path), "broken.yaml:2:",
                   "instanceConcurrency")


@pytest.mark.parametrize("duration, plan, needles", [
    ("5", "{kind: poisson, rate: 1.0e+12}", ["w.yaml:4:", "plan.rate", "lower it"]),
    ("5", "{kind: burst, rateOn: 5.0e+9, onS: 1, offS: 1}", ["plan.rateOn", "lower it"]),
    ("5", "{kind: diurnal, rates: [1, 9.0e+9], period: 60}", ["plan.rates[1]", "lower it"]),
    ("5", "{kind: closed, users: 1000000000}", ["plan.users"]),
    ("1.0e+12", "{kind: poisson, rate: 1}", ["w.yaml:3:", "duration", "over a year"]),
    ("300y", "{kind: poisson, rate: 1}", ["w.yaml:3:", "duration"]),
])
def test_absurd_numbers_are_refused_before_anything_runs(tmp_path, duration, plan, needles):
    (tmp_path / "w.yaml").write_text(WORKLOAD.format(duration=duration, plan=plan))
    assert_refused(fcbench("run", "w.yaml", cwd=tmp_path), *needles)
    assert not (tmp_path / "results").exists()  # nothing was started, no folder was made


def test_a_binary_trace_is_named(tmp_path):
    (tmp_path / "t.csv").write_bytes(BINARY)
    (tmp_path / "w.yaml").write_text(WORKLOAD.format(duration=5,
                                                     plan="{kind: trace, file: t.csv}"))
    assert_refused(fcbench("run", "w.yaml", cwd=tmp_path), "w.yaml:4:", "t.csv", "UTF-8")


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes").mkdir()
    assert_refused(fcbench("report", "notes", cwd=tmp_path), "not a fcbench run folder")
    assert not (tmp_path / "notes" / "report.html").exists()
