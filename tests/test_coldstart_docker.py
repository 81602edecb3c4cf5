"""`fcbench coldstart profile` on the docker runtime: container and pull phases are real."""

from __future__ import annotations

import pytest
import asyncio
import csv
import json
import subprocess
import sys

from docker_fixtures import (baked_image, docker_client, mobilenet_image,  # noqa: F401, F811
                             pushed_docker_spec, registry)
from fcbench.harness.runtimes.docker import remove_image

pytestmark = pytest.mark.slow  # every test here starts processes or servers


def test_profile_with_pull_shows_pull_and_container_phases(docker_client, baked_image, registry,
                                                           tmp_path):
    ref, spec = pushed_docker_spec(docker_client, baked_image, registry, tmp_path, "profile")
    body = tmp_path / "x.json"
    body.write_text(json.dumps({"input": [[[0.5] * 224] * 224] * 3}))
    try:
        res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", str(spec),
                              "--pull", "-n", "2", "--warmup", "0", "--data", f"@{body}",
                              "--out", str(tmp_path / "res")],
                             capture_output=True, text=True, timeout=600)
        # each start removed the image with every tag; the profile gave the others back
        restored = docker_client.images.get(baked_image)
    finally:
        asyncio.run(remove_image(ref, all_tags=False))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "image pull: median" in res.stdout
    assert ref in restored.tags and baked_image in restored.tags
    run = next((tmp_path / "res").iterdir())
    rows = [r for r in csv.DictReader(open(run / "phases.csv")) if r["kind"] == "ok"]
    assert len(rows) == 2
    for r in rows:
        assert float(r["image_pull_ms"]) > 0 and int(r["pull_bytes"]) > 0
        assert float(r["pull_mb_s"]) > 0
        assert float(r["container_create_ms"]) > 0 and float(r["container_start_ms"]) > 0
        assert abs(float(r["unattributed_ms"])) <= 0.05 * float(r["e2e_ms"])


def test_pull_without_docker_runtime_is_a_clear_error(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text("functionName: p\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", str(spec),
                          "--pull", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "pull needs the docker runtime" in res.stderr
