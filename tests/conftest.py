"""Shared fixtures: workload files for the CPU-free `sleep` model, and `fcbench` subprocesses
that are always cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# harness key files (fcbench.signing) of this test session stay out of the user's state folder;
# subprocesses inherit the setting, so the CLI and the clients find the same files
os.environ.setdefault("FCBENCH_KEYS_DIR", tempfile.mkdtemp(prefix="fcbench-test-keys-"))

_WHOLE_MODULE_SLOW = "\npytestmark = pytest.mark.slow"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast loop (``-m "not slow"``) does not even import a module marked slow as a whole:
    some import torch, and importing is most of what such a loop would spend."""
    if (config.option.markexpr or "").strip() != "not slow" or collection_path.suffix != ".py" \
            or not collection_path.name.startswith("test_"):
        return None
    try:
        text = collection_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return True if _WHOLE_MODULE_SLOW in text else None


@pytest.fixture
def sleep_workload(tmp_path: Path) -> Callable[..., Path]:
    """Write a workload YAML against a local harness running the `sleep` model; returns its path.

    Keywords: plan (a mapping), duration, sleep_ms, startup_ms, concurrency, idle, max_instances,
    name, output, extra (top-level keys merged in), function_env (extra environment variables).
    """
    def make(plan: dict[str, Any], *, duration: float = 4, sleep_ms: float = 10,
             startup_ms: float = 200, concurrency: int = 1, idle: float = 30,
             max_instances: int = 10, name: str = "t", output: Path | None = None,
             extra: dict[str, Any] | None = None,
             function_env: dict[str, str] | None = None) -> Path:
        doc = {
            "name": name,
            "target": {"kind": "local", "functions": [{
                "functionName": "f",
                "instanceConcurrency": concurrency,
                "environmentVariables": {"FCBENCH_MODEL": "sleep",
                                         "FCBENCH_SLEEP_MS": str(sleep_ms),
                                         "FCBENCH_STARTUP_MS": str(startup_ms),
                                         **(function_env or {})},
                "harness": {"idleTimeout": idle, "maxInstances": max_instances},
            }]},
            "request": {"timeout": 30},
            "duration": duration,
            "seed": 3,
            "plan": plan,
            "output": str(output or tmp_path / "results"),
            **(extra or {}),
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return make


def fcbench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fcbench", *args]


@pytest.fixture
def fcbench_proc() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `python -m fcbench ...` subprocesses; any still running at the end are stopped."""
    procs: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen:
        proc = subprocess.Popen(fcbench_cmd(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})}, **kw)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@pytest.fixture
def fcbench_run() -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m fcbench ...` to completion (a timeout kills it)."""
    def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run(fcbench_cmd(*args), capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})

    return run


@pytest.fixture
def harness_for(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Open a harness (in a background thread, on a free port) for the given specs; every one
    opened is closed at the end of the test."""
    from fcbench.harness.server import HarnessConfig, HarnessThread

    opened: list[Any] = []

    def open_(*specs: Any) -> Any:
        h = HarnessThread(list(specs), HarnessConfig(port=0, log_dir=tmp_path / "logs"))
        h.__enter__()
        opened.append(h)
        return h

    yield open_
    for h in opened:
        h.close()
