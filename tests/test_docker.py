"""The docker runtime on a real daemon: serve from zero, phases, pull, reclaim, GPU error, cleanup.

A GPU cannot be had here, so the GPU test hands the runtime a placement on a (fake) physical GPU;
everything else — dockerd, the registry, the containers, HTTP — is real.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tarfile

import docker.errors
import pytest

# fixtures are imported by name so pytest finds them here
from docker_fixtures import (baked_image, containers, docker_client,  # noqa: F401, F811
                             mobilenet_image, mount_image, registry)
from fcbench.errors import DockerUnavailable, GpuRuntimeMissing
from fcbench.harness.gpus import Gpu
from fcbench.harness.runtimes.base import StartRequest
from fcbench.harness.runtimes.docker import DockerRuntime, remove_image, restore_tags
from fcbench.spec import function_spec_from_dict
from harness_utils import http, instances, invoke

TENSOR = {"input": [[[0.25] * 224] * 224] * 3}


def docker_spec(image: str, name: str = "mnv2", **extra) -> object:
    doc = {"functionName": name, "customContainerConfig": {"image": image},
           "harness": {"runtime": "docker", "idleTimeout": 600, "startTimeout": 90}, **extra}
    return function_spec_from_dict(doc)


@pytest.mark.slow
def test_serves_from_zero_cold_then_warm_in_one_container_and_reclaim_removes_it(
        docker_client, baked_image, harness_for):
    h = harness_for(docker_spec(baked_image))
    assert instances(h.url) == []
    status, h1, body = invoke(h.url, "mnv2", TENSOR)
    assert status == 200, body
    assert h1["x-fcbench-cold"] == "1" and h1["x-fcbench-first"] == "1"
    status, h2, _ = invoke(h.url, "mnv2", TENSOR)
    assert status == 200 and h2["x-fcbench-cold"] == "0" and h2["x-fcbench-first"] == "0"
    assert h2["x-fcbench-instance-id"] == h1["x-fcbench-instance-id"]

    [inst] = instances(h.url)
    phases = inst["phases_ms"]
    assert phases["container_create"] > 0 and phases["container_start"] > 0
    assert phases["image_pull"] == 0.0  # the image was local
    assert phases["runtime_boot"] > 0 and phases["model_load"] > 0
    info = inst["runtime_info"]
    assert info["image"] == baked_image and info["pull_bytes"] == 0
    live = containers(docker_client, fcbench_instance=inst["instance_id"])
    assert [c.id for c in live] == [inst["container_id"]]
    assert live[0].status == "running"
    assert live[0].labels["fcbench.harness"] == str(os.getpid())
    assert live[0].attrs["HostConfig"]["NetworkMode"] == "host"
    env = dict(e.split("=", 1) for e in live[0].attrs["Config"]["Env"])
    assert env["FCBENCH_HOST"] == "127.0.0.1" and env["FC_SERVER_PORT"] == str(info["port"])
    assert inst["url"] == f"http://127.0.0.1:{info['port']}"

    status, _, body = http("POST", f"{h.url}/fcbench/v1/reclaim")
    assert status == 200 and b'"reclaimed": 1' in body
    assert containers(docker_client, fcbench_instance=inst["instance_id"]) == []
    assert "listening on 127.0.0.1" in open(inst["log_path"]).read()  # logs kept on reclaim
    status, h3, _ = invoke(h.url, "mnv2", TENSOR)
    assert status == 200 and h3["x-fcbench-cold"] == "1"
    assert h3["x-fc-instance-id"] != h1["x-fc-instance-id"]


@pytest.mark.slow
def test_container_instances_get_only_their_own_environment_and_the_gateway_keeps_fc_limits(
        docker_client, baked_image, harness_for, monkeypatch):
    from test_wire import (FC_OWN, SECRET, SECRET_ID, assert_gateway_limits,
                           instance_environ)

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", SECRET_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    h = harness_for(docker_spec(baked_image, memorySize=2048,
                                environmentVariables={"MY_SETTING": "on"}))
    assert_gateway_limits(h.url, "mnv2")
    assert instances(h.url) == []  # nothing the gateway refused started an instance
    status, _, body = invoke(h.url, "mnv2", TENSOR)
    assert status == 200, body
    [inst] = instances(h.url)
    [container] = containers(docker_client, fcbench_instance=inst["instance_id"])
    declared = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    pid = container.attrs["State"]["Pid"]
    seen = instance_environ(pid)  # what the server process inside really has
    raw = open(f"/proc/{pid}/environ", "rb").read()
    assert SECRET.encode() not in raw and SECRET_ID.encode() not in raw
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" not in declared
    # FC's own variables: the same set as a process instance gets
    assert {k for k in declared if k.startswith("FC_") or k.startswith("FCBENCH_INSTANCE")} \
        == {k for k in FC_OWN if k.startswith("FC_") or k.startswith("FCBENCH_INSTANCE")}
    assert seen["FC_FUNCTION_NAME"] == "mnv2" and seen["FC_FUNCTION_MEMORY_SIZE"] == "2048"
    assert seen["FC_INSTANCE_ID"] == inst["instance_id"] and seen["MY_SETTING"] == "on"


def _unique_image(client, base: str, repo: str, tag: str, nbytes: int) -> str:
    """`base` plus one layer of random bytes: an image no other local image shares layers with
    beyond `base`'s, so removing it really deletes a layer a pull must bring back."""
    probe = io.BytesIO()
    with tarfile.open(fileobj=probe, mode="w") as tar:
        info = tarfile.TarInfo("pull-probe.bin")
        info.size = nbytes
        tar.addfile(info, io.BytesIO(os.urandom(nbytes)))
    container = client.containers.create(base)
    try:
        container.put_archive("/", probe.getvalue())
        image = container.commit(repository=repo, tag=tag)
    finally:
        container.remove(force=True)
    return image.id


@pytest.mark.slow
def test_pull_from_the_loopback_registry_is_a_real_phase(docker_client, baked_image, registry,
                                                         harness_for):
    ref = f"{registry}/fcbench-test/mobilenet-v2:pull"
    repo, _, tag = ref.rpartition(":")
    image_id = _unique_image(docker_client, baked_image, repo, tag, 3_000_000)
    for line in docker_client.api.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    removed = asyncio.run(remove_image(ref))
    assert removed.image_id == image_id and removed.tags == (ref,)
    assert asyncio.run(remove_image(ref)).image_id is None  # absent: not an error
    assert docker_client.images.get(baked_image)  # the image below keeps its layers

    h = harness_for(docker_spec(ref, name="pulled"))
    status, headers, body = invoke(h.url, "pulled", TENSOR)
    assert status == 200 and headers["x-fcbench-cold"] == "1", body
    [inst] = instances(h.url)
    assert inst["phases_ms"]["image_pull"] > 0
    info = inst["runtime_info"]
    assert info["pull_bytes"] >= 3_000_000  # random bytes do not compress
    assert info["pull_layers"] >= 1 and info["pull_mb_s"] > 0
    assert docker_client.images.get(ref).id == image_id
    # the second instance finds the image local: no pull
    http("POST", f"{h.url}/fcbench/v1/reclaim")
    invoke(h.url, "pulled", TENSOR)
    [again] = instances(h.url)
    assert again["phases_ms"]["image_pull"] == 0.0 and again["runtime_info"]["pull_bytes"] == 0
    h.close()
    asyncio.run(remove_image(ref))


def test_remove_image_takes_every_tag_and_restore_tags_gives_them_back(docker_client,
                                                                       baked_image):
    repo = "fcbench-test/restore"
    image_id = _unique_image(docker_client, baked_image, repo, "a", 1000)
    docker_client.images.get(image_id).tag(repo, "b")
    removed = asyncio.run(remove_image(f"{repo}:a"))
    assert set(removed.tags) == {f"{repo}:a", f"{repo}:b"}
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"{repo}:b")
    asyncio.run(restore_tags(removed))  # the image is gone: nothing to tag, no error
    _unique_image(docker_client, baked_image, repo, "a", 1000)
    rebuilt = docker_client.images.get(f"{repo}:a")
    asyncio.run(restore_tags(type(removed)(removed.ref, rebuilt.id, removed.tags)))
    assert docker_client.images.get(f"{repo}:b").id == rebuilt.id
    asyncio.run(remove_image(f"{repo}:a"))


@pytest.mark.slow
def test_mount_mode_binds_the_host_model_read_only(docker_client, mount_image, harness_for):
    h = harness_for(docker_spec(mount_image, name="mounted"))
    status, headers, body = invoke(h.url, "mounted", TENSOR)
    assert status == 200 and headers["x-fcbench-cold"] == "1", body
    [inst] = instances(h.url)
    host_path = inst["runtime_info"]["model_mount"]
    assert host_path and os.path.isfile(host_path)
    [container] = containers(docker_client, fcbench_instance=inst["instance_id"])
    [mount] = container.attrs["Mounts"]
    assert mount["Source"] == host_path and mount["Destination"] == "/models/mobilenet_v2.onnx"
    assert mount["RW"] is False


@pytest.mark.slow
def test_instance_that_exits_before_ready_names_its_saved_log(docker_client, baked_image,
                                                              harness_for):
    spec = docker_spec(baked_image, name="broken",
                       environmentVariables={"FCBENCH_MODEL": "no-such-model"})
    h = harness_for(spec)
    status, _, body = invoke(h.url, "broken", b"")
    assert status == 502
    text = json.loads(body)["Message"]
    assert "exited with code" in text and "its log is" in text
    log_path = text.split("its log is ")[1].split()[0]
    assert "unknown model 'no-such-model'" in open(log_path).read()
    assert containers(docker_client, fcbench_function="broken") == []


def test_gpu_spec_without_nvidia_runtime_is_a_clear_error_and_leaves_no_container(
        docker_client, baked_image, tmp_path):
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this daemon has the NVIDIA runtime")
    spec = docker_spec(baked_image, name="gpu", gpuConfig={"gpuMemorySize": 4096})
    # the scheduler's placement on a physical GPU (none exists here: a stand-in object)
    gpu = Gpu(index=0, name="stand-in", total_mb=16384, virtual=False)

    async def attempt() -> tuple[BaseException | None, str]:
        rt = DockerRuntime()
        await rt.prepare(spec)
        try:
            await rt.start(StartRequest(spec, "i-gpu-1", gpu, tmp_path / "gpu.log"))
        except GpuRuntimeMissing as exc:
            return exc, rt.runtime_id
        finally:
            await rt.close()
        return None, rt.runtime_id

    exc, runtime_id = asyncio.run(attempt())
    assert exc is not None, "starting a GPU container without an NVIDIA runtime should fail"
    assert "nvidia-container-toolkit" in str(exc) and "'gpu'" in str(exc)
    assert containers(docker_client, fcbench_runtime=runtime_id) == []
    assert containers(docker_client, fcbench_instance="i-gpu-1") == []


def test_virtual_gpu_placement_sets_the_memory_env_without_a_device_request(
        docker_client, baked_image, tmp_path):
    spec = docker_spec(baked_image, name="vgpu", gpuConfig={"gpuMemorySize": 4096})
    gpu = Gpu(index=0, name="virtual-16384MB", total_mb=16384, virtual=True)

    async def run() -> dict:
        rt = DockerRuntime()
        await rt.prepare(spec)
        handle = await rt.start(StartRequest(spec, "i-vgpu-1", gpu, tmp_path / "v.log"))
        try:
            [c] = await asyncio.to_thread(containers, docker_client,
                                          fcbench_instance="i-vgpu-1")
            return c.attrs
        finally:
            await rt.stop(handle)
            await rt.close()

    attrs = asyncio.run(run())
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["FCBENCH_GPU_MEM_LIMIT_MB"] == "4096" and "CUDA_VISIBLE_DEVICES" not in env
    assert not attrs["HostConfig"].get("DeviceRequests")


def test_no_daemon_is_a_clear_error_saying_how_to_start_it(monkeypatch, tmp_path):
    # needs no daemon: it points the runtime at a socket nobody listens on
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    spec = docker_spec("fcbench/mobilenet-v2:latest")
    with pytest.raises(DockerUnavailable) as err:
        asyncio.run(DockerRuntime().prepare(spec))
    message = str(err.value)
    assert str(tmp_path) in message
    assert "systemctl start docker" in message and "dockerd" in message


@pytest.mark.slow
def test_stopping_harness_serve_leaves_no_container_running(docker_client, baked_image,
                                                            tmp_path):
    spec_file = tmp_path / "fn.yaml"
    spec_file.write_text(f"functionName: served\ncustomContainerConfig:\n  image: {baked_image}\n"
                         "harness:\n  runtime: process\n  idleTimeout: 600\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fcbench", "harness", "serve", str(spec_file), "--port", "0",
         "--runtime", "docker", "--log-dir", str(tmp_path / "logs")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, line + proc.stdout.read()
        url = line.split("listening on ")[1].split()[0]
        status, _, body = invoke(url, "served", TENSOR)
        assert status == 200, body
        running = containers(docker_client, fcbench_harness=str(proc.pid))
        assert len(running) == 1 and running[0].status == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert containers(docker_client, fcbench_harness=str(proc.pid)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for c in containers(docker_client, fcbench_harness=str(proc.pid)):
            c.remove(force=True)
