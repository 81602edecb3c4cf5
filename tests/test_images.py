"""Sample images built offline on a real Docker daemon: contract, labels, list, base reuse."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from importlib import metadata

import pytest

# fixtures are imported by name so pytest finds them here
from docker_fixtures import REGISTRY, baked_image, docker_client, mobilenet_image  # noqa: F401
from docker_fixtures import registry  # noqa: F401
from fcbench._net import free_port
from fcbench.errors import RuntimeBackendError
from fcbench.images.base import DEFAULT_BASE, build_base_image
from fcbench.images.build import build_image, list_images
from fcbench.images.wheelhouse import _platform_args, pinned


def test_wheelhouse_pins_the_host_versions_and_lists_older_glibc_tags():
    assert pinned(["numpy", "torch==2.13.0+cpu"]) == [f"numpy=={metadata.version('numpy')}",
                                                       "torch==2.13.0+cpu"]
    args = _platform_args("manylinux_2_36_x86_64")
    tags = args[1::2]
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_28_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux_2_37_x86_64" not in tags


@pytest.mark.slow
def test_mobilenet_image_is_built_offline_and_follows_the_instance_contract(docker_client,
                                                                            baked_image):
    image = docker_client.images.get(baked_image)
    attrs = image.attrs
    assert attrs["Os"] == "linux" and attrs["Architecture"] == "amd64"
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["FC_SERVER_PORT"] == "9000" and env["FCBENCH_HOST"] == "0.0.0.0"
    assert env["FCBENCH_MODEL"] == "mobilenet-v2"
    assert env["FCBENCH_MODEL_PATH"] == "/models/mobilenet_v2.onnx"
    labels = attrs["Config"]["Labels"]
    assert labels["fcbench.model-mode"] == "baked" and labels["fcbench.sample"] == "mobilenet-v2"
    # base + dependencies + server code + model, each its own layer
    assert len(attrs["RootFS"]["Layers"]) == 4
    assert attrs["Config"]["Cmd"] == ["python3", "-m", "fcbench.server"]

    port = free_port()
    container = docker_client.containers.run(
        baked_image, detach=True, network_mode="host", labels={"fcbench.test": "contract"},
        environment={"FC_SERVER_PORT": str(port), "FCBENCH_HOST": "127.0.0.1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                break
            except OSError:
                container.reload()
                assert container.status in ("created", "running"), container.logs().decode()
                assert time.monotonic() < deadline, container.logs().decode()
                time.sleep(0.05)
        assert headers["x-fcbench-model"] == "mobilenet-v2"
        assert float(headers["x-fcbench-model-load-ms"]) > 0
        body = json.dumps({"input": [[[0.5] * 224] * 224] * 3}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invoke", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.loads(resp.read())
        assert len(out["top5"]) == 5 and 0 < out["top5"][0]["score"] <= 1
    finally:
        container.remove(force=True)


@pytest.mark.slow
def test_llm_image_is_built_and_streams_the_openai_api(docker_client):
    result = build_image(docker_client, "llm", tag="fcbench/llm:test")
    attrs = docker_client.images.get(result.tag).attrs
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["FCBENCH_MODEL"] == "llm" and env["FCBENCH_MODEL_PATH"] == "/models/llm"
    assert len(attrs["RootFS"]["Layers"]) == 4 and result.size_bytes < 400e6  # no torch in it

    port = free_port()
    container = docker_client.containers.run(
        result.tag, detach=True, network_mode="host", labels={"fcbench.test": "llm"},
        environment={"FC_SERVER_PORT": str(port), "FCBENCH_HOST": "127.0.0.1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models",
                                            timeout=2) as resp:
                    models = json.loads(resp.read())
                break
            except OSError:
                container.reload()
                assert container.status in ("created", "running"), container.logs().decode()
                assert time.monotonic() < deadline, container.logs().decode()
                time.sleep(0.05)
        assert models["data"][0]["id"] == "llm" and models["data"][0]["root"] == "/models/llm"
        body = json.dumps({"prompt": "hi", "max_tokens": 5, "ignore_eos": True,
                           "stream": True}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            events = resp.read().decode().split("\n\n")
        assert events[-2:] == ["data: [DONE]", ""] and len(events) == 5 + 3
    finally:
        container.remove(force=True)


@pytest.mark.slow
def test_images_list_shows_size_and_layers(baked_image):
    proc = subprocess.run([sys.executable, "-m", "fcbench", "images", "list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(baked_image + " "))
    cells = line.split()
    assert cells[1:3] == ["mobilenet-v2", "baked"] and cells[4] == "MB" and cells[5] == "4"
    data = json.loads(subprocess.run([sys.executable, "-m", "fcbench", "images", "list", "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)
    entry = next(i for i in data if baked_image in i["tags"])
    assert entry["size_bytes"] > 50_000_000 and entry["layers"] == 4


def test_base_image_is_reused_when_present(docker_client, mobilenet_image):
    t0 = time.perf_counter()
    result = build_base_image(docker_client, tag=DEFAULT_BASE)
    assert result.built is False and result.size_bytes > 0
    assert time.perf_counter() - t0 < 5
    assert any(i.tags == (DEFAULT_BASE,) for i in list_images(docker_client))


@pytest.mark.slow
def test_missing_base_image_fails_with_a_sentence_naming_the_log(docker_client, registry):
    with pytest.raises(RuntimeBackendError) as err:
        build_image(docker_client, "mobilenet-v2", base=f"{REGISTRY}/fcbench-test/absent:1",
                    tag="fcbench/mobilenet-v2:test-broken")
    message = str(err.value)
    assert "docker build of fcbench/mobilenet-v2:test-broken failed" in message
    assert "its log is" in message and "fcbench images base" in message


@pytest.mark.slow
def test_push_to_the_loopback_registry(docker_client, baked_image, registry):
    proc = subprocess.run(
        [sys.executable, "-m", "fcbench", "images", "build", "mobilenet-v2", "--tag",
         baked_image, "--push", registry, "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"pushed {registry}/fcbench/mobilenet-v2:test" in proc.stdout
    with urllib.request.urlopen(f"http://{registry}/v2/fcbench/mobilenet-v2/tags/list") as resp:
        assert "test" in json.loads(resp.read())["tags"]
    docker_client.images.remove(f"{registry}/fcbench/mobilenet-v2:test")  # untag only
