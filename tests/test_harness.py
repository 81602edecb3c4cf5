"""The harness end to end: real gateway, real instance processes, real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fcbench.harness.server import HarnessConfig, HarnessThread
from harness_utils import events, http, instances, invoke, sleep_spec


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def harness(request, tmp_path):
    specs = request.param if hasattr(request, "param") else [sleep_spec()]
    with HarnessThread(specs, HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        yield h


def test_first_request_is_cold_then_warm_on_the_same_instance(harness):
    assert instances(harness.url) == []
    status, h1, _ = invoke(harness.url, "sleep")
    assert status == 200 and h1["x-fcbench-cold"] == "1" and h1["x-fcbench-first"] == "1"
    live = instances(harness.url)
    assert [i["instance_id"] for i in live] == [h1["x-fc-instance-id"]]
    assert live[0]["state"] == "ready" and live[0]["pid"]
    status, h2, _ = invoke(harness.url, "sleep")
    assert status == 200 and h2["x-fcbench-cold"] == "0" and h2["x-fcbench-first"] == "0"
    assert h2["x-fc-instance-id"] == h1["x-fc-instance-id"]
    assert h2["x-fcbench-instance-id"] == h1["x-fcbench-instance-id"]
    for key in ("x-fcbench-boot-ts", "x-fcbench-import-ms", "x-fcbench-model-load-ms",
                "x-fcbench-ready-ts", "x-fcbench-inference-ms", "x-fc-request-id"):
        assert key in h2


def test_instance_ports_lie_below_the_ephemeral_range_outgoing_connections_use():
    # Under load the client's own outgoing sockets take ephemeral ports; a server port drawn
    # from that range could be taken between the check and the instance's bind (the
    # "Address already in use" cold start a sweep once met).
    from fcbench._net import _ephemeral_range, free_port

    low, high = _ephemeral_range()
    held = socket.create_server(("127.0.0.1", 0))
    try:
        ports = {free_port(avoid={held.getsockname()[1]}) for _ in range(200)}
    finally:
        held.close()
    assert all(1024 <= p < low for p in ports), sorted(ports)[-3:]
    assert len(ports) > 150  # drawn, not one port every time
    for port in list(ports)[:20]:  # each is bindable now
        socket.create_server(("127.0.0.1", port)).close()


def _simultaneous(url: str, name: str, n: int, body: dict) -> list[tuple[int, dict, bytes]]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: invoke(url, name, body), range(n)))


@pytest.mark.slow
@pytest.mark.parametrize("harness", [[sleep_spec(concurrency=1)]], indirect=True)
def test_concurrency_one_two_simultaneous_requests_start_two_instances(harness):
    results = _simultaneous(harness.url, "sleep", 2, {"sleep_ms": 400})
    assert [r[0] for r in results] == [200, 200]
    assert {r[1]["x-fc-instance-id"] for r in results} == {i["instance_id"] for i in
                                                         instances(harness.url)}
    assert len({r[1]["x-fc-instance-id"] for r in results}) == 2
    assert all(r[1]["x-fcbench-cold"] == "1" for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("harness", [[sleep_spec(concurrency=4)]], indirect=True)
def test_concurrency_four_four_simultaneous_requests_share_one_instance(harness):
    results = _simultaneous(harness.url, "sleep", 4, {"sleep_ms": 400})
    assert [r[0] for r in results] == [200] * 4
    assert len({r[1]["x-fc-instance-id"] for r in results}) == 1
    assert len(instances(harness.url)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("harness", [[sleep_spec(idle=0.5)]], indirect=True)
def test_idle_instance_is_reclaimed_and_next_request_is_cold(harness):
    _, h1, _ = invoke(harness.url, "sleep")
    pid = instances(harness.url)[0]["pid"]
    deadline = time.monotonic() + 10
    while instances(harness.url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instances(harness.url) == []
    reclaimed = [e for e in events(harness.url) if e["event"] == "instance_reclaimed"]
    assert reclaimed and reclaimed[0]["instance_id"] == h1["x-fc-instance-id"]
    assert reclaimed[0]["reason"] == "idle"
    assert reclaimed[0]["usage"]["idle_s"] >= 0.5
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "a reclaimed instance's process must exit"
    _, h2, _ = invoke(harness.url, "sleep")
    assert h2["x-fcbench-cold"] == "1" and h2["x-fc-instance-id"] != h1["x-fc-instance-id"]


@pytest.mark.slow
@pytest.mark.parametrize("harness", [[sleep_spec(max_instances=1, queue_size=1)]], indirect=True)
def test_max_instances_and_full_queue_answer_429_resource_throttled(harness):
    results = _simultaneous(harness.url, "sleep", 3, {"sleep_ms": 800})
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 200, 429]
    rejected = next(r for r in results if r[0] == 429)
    doc = json.loads(rejected[2])
    assert doc["Code"] == "ResourceThrottled" and doc["RequestId"] and "queue" in doc["Message"]
    # x-fcbench-queue-ms is all the wait before forwarding (cold start included)
    queued = [r for r in results if r[0] == 200 and float(r[1]["x-fcbench-queue-ms"]) > 750]
    assert len(queued) == 1, "the second request waited in the queue for the only slot"
    assert len(instances(harness.url)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("harness", [[sleep_spec(max_instances=1, queue_size=5,
                                                 queue_timeout=0.3)]], indirect=True)
def test_queue_timeout_answers_429(harness):
    results = _simultaneous(harness.url, "sleep", 2, {"sleep_ms": 1500})
    assert sorted(r[0] for r in results) == [200, 429]


@pytest.mark.slow
def test_killed_instance_gives_a_clear_error_and_a_replacement(harness):
    invoke(harness.url, "sleep")
    victim = instances(harness.url)[0]
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(invoke, harness.url, "sleep", {"sleep_ms": 5000})
        time.sleep(0.5)
        os.kill(victim["pid"], signal.SIGKILL)
        status, headers, body = fut.result(timeout=10)
    assert status == 502
    doc = json.loads(body)
    assert doc["Code"] == "InstanceExited"
    assert "exited with code -9" in doc["Message"] and victim["log_path"] in doc["Message"]
    failed = [e for e in events(harness.url) if e["event"] == "instance_failed"]
    assert failed and failed[0]["instance_id"] == victim["instance_id"]
    status, headers, _ = invoke(harness.url, "sleep")
    assert status == 200 and headers["x-fcbench-cold"] == "1"
    assert headers["x-fc-instance-id"] != victim["instance_id"]


@pytest.mark.parametrize("harness", [[sleep_spec(concurrency=2)]], indirect=True)
def test_bad_request_body_gets_400_and_the_instance_keeps_serving(harness):
    status, _, body = invoke(harness.url, "sleep", b"{not json",)
    status, _, body = http("POST", f"{harness.url}/2023-03-30/functions/sleep/invocations",
                           b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and b"not valid JSON" in body
    status, _, _ = invoke(harness.url, "sleep")
    assert status == 200 and len(instances(harness.url)) == 1


def test_unknown_function_is_404_function_not_found(harness):
    status, _, body = invoke(harness.url, "nope")
    assert status == 404 and json.loads(body)["Code"] == "FunctionNotFound"


def test_http_trigger_route_passes_method_path_and_query(harness):
    status, headers, body = http("POST", f"{harness.url}/http/sleep/predict?x=1",
                                 {"sleep_ms": 1})
    assert status == 200 and json.loads(body) == {"slept_ms": 1.0}
    assert headers["x-fcbench-cold"] in ("0", "1")


def test_failed_start_answers_502_naming_the_log(tmp_path):
    spec = sleep_spec(harness={"runtime": "process",
                               "command": [sys.executable, "-c", "import sys; print('boom'); "
                                           "sys.exit(3)"]})
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path)) as h:
        status, _, body = invoke(h.url, "sleep")
    doc = json.loads(body)
    assert status == 502 and doc["Code"] == "FunctionNotStarted"
    assert "exited with code 3" in doc["Message"] and "boom" in doc["Message"]
    assert str(tmp_path) in doc["Message"]


def test_management_routes_create_get_list_delete(harness):
    base = f"{harness.url}/2023-03-30/functions"
    body = {"functionName": "extra", "instanceConcurrency": 2,
            "environmentVariables": {"FCBENCH_MODEL": "sleep"}}
    status, _, created = http("POST", base, body)
    assert status == 200 and json.loads(created)["functionName"] == "extra"
    assert http("POST", base, body)[0] == 409
    status, _, bad = http("POST", base, {"functionName": "x", "instanceConcurency": 2})
    assert status == 400 and "instanceConcurency" in json.loads(bad)["Message"]
    names = [f["functionName"] for f in json.loads(http("GET", base)[2])["functions"]]
    assert names == ["extra", "sleep"]  # FC lists by name
    assert json.loads(http("GET", f"{base}/extra")[2])["instanceConcurrency"] == 2
    assert invoke(harness.url, "extra")[0] == 200
    assert http("DELETE", f"{base}/extra")[0] == 204
    assert http("GET", f"{base}/extra")[0] == 404
    assert [i for i in instances(harness.url) if i["function"] == "extra"] == []


@pytest.mark.slow
def test_metering_reports_active_idle_and_gb_seconds(tmp_path):
    spec = sleep_spec(gpuConfig={"gpuMemorySize": 4096})
    with HarnessThread([spec], HarnessConfig(port=0, virtual_gpus="1x16GB",
                                             log_dir=tmp_path)) as h:
        invoke(h.url, "sleep", {"sleep_ms": 300})
        time.sleep(0.3)
        inst = instances(h.url)[0]
    assert inst["gpu_index"] == 0 and inst["gpu_memory_mb"] == 4096
    assert 0.28 <= inst["active_s"] <= 0.6
    assert inst["idle_s"] >= 0.25
    assert inst["gpu_gb_s"] == pytest.approx(4.0 * inst["active_s"], rel=1e-3)


@pytest.mark.slow
def test_gpu_spec_placed_four_per_16gb_virtual_card(tmp_path):
    spec = sleep_spec(gpuConfig={"gpuMemorySize": 4096}, max_instances=10, queue_size=10)
    with HarnessThread([spec], HarnessConfig(port=0, virtual_gpus="1x16GB",
                                             log_dir=tmp_path)) as h:
        results = _simultaneous(h.url, "sleep", 5, {"sleep_ms": 700})
        assert sorted(r[0] for r in results) == [200] * 5
        assert len({r[1]["x-fc-instance-id"] for r in results}) == 4
        waited = [float(r[1]["x-fcbench-queue-ms"]) for r in results]
        assert max(waited) > 600  # the fifth waited for a slot, it could not start a 5th


@pytest.mark.slow
def test_fc_sdk_invokes_the_harness(harness):
    """The real alibabacloud-fc20230330 SDK, pointed at the harness (no FC account needed)."""
    fc = pytest.importorskip("alibabacloud_fc20230330.client")
    from alibabacloud_fc20230330 import models as fc_models
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_tea_util.models import RuntimeOptions

    host = harness.url.removeprefix("http://")
    key = harness.key  # the pair the harness prints (and writes to its key file)
    client = fc.Client(Config(access_key_id=key.access_key_id,
                              access_key_secret=key.access_key_secret, endpoint=host,
                              protocol="http", read_timeout=30_000))
    req = fc_models.InvokeFunctionRequest(body=b'{"sleep_ms": 5}')
    resp = client.invoke_function_with_options("sleep", req, fc_models.InvokeFunctionHeaders(),
                                               RuntimeOptions())
    assert resp.status_code == 200
    assert json.loads(resp.body.read()) == {"slept_ms": 5.0}
    assert resp.headers["x-fcbench-cold"] in ("0", "1")
    from Tea.exceptions import TeaException
    with pytest.raises(TeaException) as info:
        client.invoke_function_with_options("missing", req, fc_models.InvokeFunctionHeaders(),
                                            RuntimeOptions())
    assert info.value.code == "FunctionNotFound"
    big = fc_models.InvokeFunctionRequest(body=b"x" * (32 * 1024 * 1024 + 1))
    with pytest.raises(TeaException) as info:  # FC's synchronous payload limit, FC's code
        client.invoke_function_with_options("sleep", big, fc_models.InvokeFunctionHeaders(),
                                            RuntimeOptions())
    assert info.value.code == "EntityTooLarge"


@pytest.mark.slow
def test_mobilenet_v2_end_to_end_through_the_harness(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import io

    import numpy as np
    from PIL import Image

    from fcbench.spec import load_function_spec

    monkeypatch.setenv("FCBENCH_CACHE_DIR", str(tmp_path / "cache"))
    spec = load_function_spec("workloads/functions/mobilenet-v2.yaml")
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((240, 320, 3)) * 255).astype("uint8")) \
        .save(buf, format="JPEG")
    with HarnessThread([spec], HarnessConfig(port=0, virtual_gpus="1x16GB",
                                             log_dir=tmp_path / "logs")) as h:
        status, headers, body = http("POST", f"{h.url}/2023-03-30/functions/mobilenet-v2/"
                                     "invocations", buf.getvalue(),
                                     headers={"Content-Type": "image/jpeg"})
        assert status == 200, body
        top5 = json.loads(body)["top5"]
        assert len(top5) == 5 and all(0 <= t["class_id"] < 1000 for t in top5)
        assert headers["x-fcbench-cold"] == "1" and float(headers["x-fcbench-model-load-ms"]) > 0
        status, _, body = http("POST", f"{h.url}/2023-03-30/functions/mobilenet-v2/invocations",
                               b"not an image", headers={"Content-Type": "image/jpeg"})
        assert status == 400


def _serve(tmp_path, *args: str) -> subprocess.Popen:
    spec = tmp_path / "sleep.yaml"
    spec.write_text("functionName: sleep\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "instanceConcurrency: 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "fcbench", "harness", "serve", str(spec),
                             "--port", "0", *args], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "listening on" in line, line
    proc.url = line.split("listening on ")[1].split()[0]  # type: ignore[attr-defined]
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_the_harness_leaves_no_instance_processes(tmp_path, sig):
    proc = _serve(tmp_path)
    try:
        _simultaneous(proc.url, "sleep", 3, {"sleep_ms": 100})
        pids = [i["pid"] for i in instances(proc.url)]
        assert len(pids) >= 2 and all(_alive(p) for p in pids)
        proc.send_signal(sig)
        proc.wait(timeout=15)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], f"orphans after {sig!r}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_bad_spec_yaml_gives_file_line_key_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("functionName: f\ngpuConfig:\n  gpuMemorySize: lots\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "harness", "serve", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert f"{bad}:3: gpuConfig.gpuMemorySize:" in res.stderr
    assert "Traceback" not in res.stderr
    bad.write_text("functionName: f\ninstanceConcurency: 2\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "harness", "serve", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and f"{bad}:2: instanceConcurency: unknown key" in res.stderr
    bad.write_text("functionName: f\n  bad: [indent\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "harness", "serve", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "invalid YAML" in res.stderr and f"{bad}:" in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("harness", [[sleep_spec(timeout=0.5)]], indirect=True)
def test_function_timeout_answers_504_and_the_instance_keeps_serving(harness):
    status, _, body = invoke(harness.url, "sleep", {"sleep_ms": 3000})
    assert status == 504 and json.loads(body)["Code"] == "FunctionTimeout"
    assert "0.5 s" in json.loads(body)["Message"]
    status, _, _ = invoke(harness.url, "sleep", {"sleep_ms": 1})
    assert status == 200


@pytest.mark.slow
def test_fcbench_invoke_shows_cold_then_warm_and_the_body(tmp_path, harness):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fcbench", "invoke", *args],
                              capture_output=True, text=True, timeout=60)

    first = cli("sleep", "--endpoint", harness.url, "--data", '{"sleep_ms": 5, "id": "x1"}')
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("status 200") and " cold " in first.stdout
    assert '"id": "x1"' in first.stdout
    second = cli("sleep", "--endpoint", harness.url, "--data", '{"sleep_ms": 5}')
    assert " warm " in second.stdout
    missing = cli("nope", "--endpoint", harness.url)
    assert missing.returncode == 1 and "status 404" in missing.stdout
    gone = cli("sleep", "--endpoint", "http://127.0.0.1:9")
    assert gone.returncode == 1 and "Is the harness running?" in gone.stderr
    assert "Traceback" not in gone.stderr


@pytest.mark.slow
def test_provisioned_instances_keep_sparse_requests_warm(tmp_path):
    from fcbench.spec import function_spec_from_dict

    spec = function_spec_from_dict({
        "functionName": "prov", "environmentVariables": {"FCBENCH_MODEL": "sleep",
                                                         "FCBENCH_STARTUP_MS": "200"},
        "harness": {"runtime": "process", "idleTimeout": 0.3, "minInstances": 2}})
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        deadline = time.monotonic() + 20
        while sum(i["state"] == "ready" for i in instances(h.url)) < 2:
            assert time.monotonic() < deadline, instances(h.url)
            time.sleep(0.05)
        for _ in range(3):  # sparse: each after the idle timeout has long passed
            time.sleep(0.6)
            status, headers, _ = invoke(h.url, "prov", {"sleep_ms": 5})
            assert status == 200 and headers["x-fcbench-cold"] == "0"
        live = instances(h.url)
        assert len(live) == 2 and all(i["provisioned"] for i in live)
        assert sum(i["idle_s"] for i in live) > 2.0  # metered idle while kept
