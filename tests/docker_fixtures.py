"""Fixtures for tests on a real Docker daemon and the loopback registry (127.0.0.1:5000).

They skip when no daemon (or registry) answers; ``FCBENCH_REQUIRE_DOCKER=1`` (set in CI, after
``bash scripts/ci-services.sh``) turns that skip into a failure. Images are built once per session.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fcbench.errors import DockerUnavailable

REGISTRY = "127.0.0.1:5000"
IMAGE = "fcbench/mobilenet-v2:test"
IMAGE_MOUNT = "fcbench/mobilenet-v2:test-mount"

_built: dict[str, Any] = {}


def _unavailable(what: str) -> None:
    if os.environ.get("FCBENCH_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{what} (FCBENCH_REQUIRE_DOCKER=1); run `bash scripts/ci-services.sh`")
    pytest.skip(f"{what}; run `sudo bash scripts/ci-services.sh` to start it")


@pytest.fixture(scope="session")
def docker_client():
    """A connected docker SDK client."""
    from fcbench.images.engine import connect

    try:
        client = connect(timeout=120)
    except DockerUnavailable as exc:
        _unavailable(f"no Docker daemon answers: {exc}")
    yield client


@pytest.fixture(scope="session")
def registry() -> str:
    """The loopback registry's address."""
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2):
            pass
    except OSError as exc:
        _unavailable(f"no registry answers at {REGISTRY} ({exc})")
    return REGISTRY


def build_once(client, tag: str, *, bake: bool):
    """Build the MobileNetV2 sample as `tag` once per session (the base image is built if missing)."""
    from fcbench.images.build import build_image

    if tag not in _built:
        _built[tag] = build_image(client, "mobilenet-v2", tag=tag, bake=bake)
    else:
        ensure_tagged(client, tag)
    return _built[tag]


def ensure_tagged(client, tag: str) -> None:
    """Give `tag` back to the built image if a test removed it (the pull test does)."""
    from docker import errors

    result = _built[tag]
    try:
        client.images.get(tag)
    except errors.ImageNotFound:
        repo, _, version = tag.rpartition(":")
        try:
            client.images.get(result.image_id).tag(repo, version)
        except errors.ImageNotFound:
            del _built[tag]
            build_once(client, tag, bake=result.mode == "baked")


@pytest.fixture(scope="session")
def mobilenet_image(docker_client) -> str:
    """The MobileNetV2 sample image with the model baked in."""
    build_once(docker_client, IMAGE, bake=True)
    return IMAGE


@pytest.fixture
def baked_image(docker_client, mobilenet_image) -> str:
    """`mobilenet_image`, re-tagged if an earlier test removed it."""
    ensure_tagged(docker_client, mobilenet_image)
    return mobilenet_image


@pytest.fixture(scope="session")
def mount_image(docker_client) -> str:
    """The MobileNetV2 sample image without the model (the runtime bind-mounts it)."""
    build_once(docker_client, IMAGE_MOUNT, bake=False)
    return IMAGE_MOUNT


def containers(client, **labels: str) -> list:
    """Containers (running or not) carrying every given label (underscores become dots)."""
    filters = [f"{k.replace('_', '.')}={v}" for k, v in labels.items()]
    return client.containers.list(all=True, filters={"label": filters})


def pushed_docker_spec(client, baked: str, registry: str, folder: Path, tag: str) -> tuple[str, Path]:
    """`baked` pushed to the loopback registry as fcbench-test/mobilenet-v2:`tag`, and a
    docker-runtime spec (function mnv2) of that reference in `folder`: (reference, spec path)."""
    ref = f"{registry}/fcbench-test/mobilenet-v2:{tag}"
    repo, _, tag = ref.rpartition(":")
    client.images.get(baked).tag(repo, tag)
    for line in client.api.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    spec = folder / "mnv2.yaml"
    spec.write_text(f"functionName: mnv2\ncustomContainerConfig:\n  image: {ref}\n"
                    "harness:\n  runtime: docker\n  startTimeout: 120\n")
    return ref, spec
