"""Servers that keep only FC's custom-container contract, started by the harness.

`tests/foreign/plain_server.py` (Python's http.server) and `tests/foreign/stream_server.py` (a
chunked SSE asyncio server) know nothing of fcbench: no ready pipe, no lifeline, no timeline
headers. They listen on ``$FC_SERVER_PORT`` and that is all the harness may ask of them: it must
pick the port, find them ready by a TCP connect (or their healthCheckConfig), forward requests,
and fail clearly when they never listen or die. Process runtime first, then the docker runtime
with an image whose command is one of them.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

# fixtures are imported by name so pytest finds them here
from docker_fixtures import docker_client  # noqa: F401
from fcbench.spec import function_spec_from_dict
from harness_utils import instances, invoke, sleep_spec

pytestmark = pytest.mark.slow  # every test here starts servers and processes

FOREIGN = Path(__file__).resolve().parent / "foreign"
PLAIN = str(FOREIGN / "plain_server.py")
STREAM = str(FOREIGN / "stream_server.py")


def foreign_spec(name: str, command: list[str], *, env: dict[str, str] | None = None,
                 start_timeout: float = 30, **extra) -> object:
    doc = {"functionName": name, "environmentVariables": dict(env or {}),
           "harness": {"runtime": "process", "command": command, "idleTimeout": 600,
                       "startTimeout": start_timeout}, **extra}
    return function_spec_from_dict(doc)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.split("=", 1) for e in raw.decode().split("\0") if "=" in e)


# ---- the process runtime ---------------------------------------------------------------------
def test_plain_server_gets_its_own_port_and_answers_through_the_gateway(harness_for):
    h = harness_for(foreign_spec("plain", [sys.executable, PLAIN],
                                 instanceConcurrency=1, customContainerConfig={"port": 8080}))
    t0 = time.perf_counter()
    status, headers, body = invoke(h.url, "plain", b"hello, fc")
    cold_s = time.perf_counter() - t0
    assert status == 200 and body == b"cf ,olleh", body
    assert headers["x-fcbench-cold"] == "1"
    # a server that never writes the ready pipe is not waited for: the port decides
    assert cold_s < 10, cold_s
    [inst] = instances(h.url)
    port = inst["runtime_info"]["port"]
    assert inst["url"] == f"http://127.0.0.1:{port}"
    env = environ_of(int(headers["x-plain-pid"]))
    # a free port of the harness's choosing, in both of FC's variables (not the spec's 8080:
    # every instance of the function shares the host)
    assert env["FC_SERVER_PORT"] == env["FC_CUSTOM_LISTEN_PORT"] == str(port) != "8080"
    phases = inst["phases_ms"]
    assert phases["spawn"] > 0 and phases["ready"] > 0
    # the server reports no split of its start: none is invented
    assert "runtime_boot" not in phases and "model_load" not in phases


def test_two_instances_get_two_ports(harness_for):
    import concurrent.futures

    h = harness_for(foreign_spec("plain", [sys.executable, PLAIN],
                                 env={"PLAIN_START_DELAY_S": "0.3"}, instanceConcurrency=1))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda b: invoke(h.url, "plain", b), [b"ab", b"cd"]))
    assert sorted(r[2] for r in results) == [b"ba", b"dc"]
    ports = {i["runtime_info"]["port"] for i in instances(h.url)}
    assert len(ports) == 2


def test_stream_server_whole_chunked_body_arrives(harness_for):
    h = harness_for(foreign_spec("stream", [sys.executable, STREAM]))
    status, headers, body = invoke(h.url, "stream", {"chunks": 6, "interval_ms": 20})
    assert status == 200, body
    assert body == b"".join(f"data: {i}\n\n".encode() for i in range(6))
    assert headers["content-type"].startswith("text/event-stream")


def test_server_is_not_admitted_before_it_listens(harness_for):
    h = harness_for(foreign_spec("late", [sys.executable, PLAIN],
                                 env={"PLAIN_START_DELAY_S": "1"}))
    t0 = time.perf_counter()
    status, headers, body = invoke(h.url, "late", b"abc")
    cold_s = time.perf_counter() - t0
    # admitted before it listened, the forward would have been refused (502)
    assert status == 200 and body == b"cba", body
    assert headers["x-fcbench-cold"] == "1" and cold_s >= 1.0
    [inst] = instances(h.url)
    assert inst["phases_ms"]["ready"] >= 1000  # the probe waited out the delay...
    assert inst["phases_ms"]["ready"] < 1000 + 1500  # ...and saw the port soon after it opened
    # the warm request does not wait again
    t1 = time.perf_counter()
    status, headers, _ = invoke(h.url, "late", b"x")
    assert status == 200 and headers["x-fcbench-cold"] == "0"
    assert time.perf_counter() - t1 < 0.9


def test_health_check_config_decides_readiness(harness_for):
    h = harness_for(foreign_spec("checked", [sys.executable, PLAIN], customContainerConfig={
        "healthCheckConfig": {"httpGetUrl": "/healthz", "initialDelaySeconds": 1,
                              "periodSeconds": 1, "successThreshold": 2}}))
    status, headers, body = invoke(h.url, "checked", b"ok?")
    assert status == 200 and body == b"?ko", body
    [inst] = instances(h.url)
    # listening at once, but healthy only after the delay and two successful GET /healthz
    assert inst["runtime_info"]["health_probes"] == 2
    assert inst["phases_ms"]["health_check"] >= 2000 - inst["phases_ms"]["ready"]
    assert inst["phases_ms"]["ready"] < 2000  # listening came first; the probes are their own phase


def test_the_initializer_runs_before_the_health_check_as_on_fc(harness_for, tmp_path):
    log = tmp_path / "requests.log"
    h = harness_for(foreign_spec(
        "ordered", [sys.executable, PLAIN],
        env={"PLAIN_LOG": str(log)},
        instanceLifecycleConfig={"initializer": {"handler": "x", "timeout": 5}},
        customContainerConfig={"healthCheckConfig": {"httpGetUrl": "/healthz",
                                                     "periodSeconds": 1}}))
    status, _, _ = invoke(h.url, "ordered", b"ab")
    assert status == 200
    lines = log.read_text().splitlines()
    assert lines[:3] == ["POST /initialize", "GET /healthz", "POST /invoke"], lines
    [inst] = instances(h.url)
    assert inst["phases_ms"]["initializer"] > 0 and inst["phases_ms"]["health_check"] > 0


def test_server_that_never_listens_fails_naming_the_port_within_start_timeout(harness_for):
    h = harness_for(foreign_spec("deaf", [sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_timeout=1))
    t0 = time.perf_counter()
    status, _, body = invoke(h.url, "deaf")
    took = time.perf_counter() - t0
    doc = json.loads(body)
    assert status == 502 and doc["Code"] == "FunctionNotStarted", doc
    [inst] = instances(h.url, include_retired=True)
    port = inst["runtime_info"]["port"]
    assert f"127.0.0.1:{port}" in doc["Message"] and "within 1 s" in doc["Message"]
    assert "harness.startTimeout" in doc["Message"] and "FC_SERVER_PORT" in doc["Message"]
    assert 1.0 <= took < 6.0, took


def test_server_that_exits_at_once_gives_its_log_tail(harness_for, tmp_path):
    # the foreign server itself dies on a bad setting, before it listens
    h = harness_for(foreign_spec("dies", [sys.executable, PLAIN],
                                 env={"PLAIN_START_DELAY_S": "soon"}))
    status, _, body = invoke(h.url, "dies")
    doc = json.loads(body)
    assert status == 502 and doc["Code"] == "FunctionNotStarted", doc
    assert "exited with code 1 before it was ready" in doc["Message"]
    assert "ValueError" in doc["Message"] and "soon" in doc["Message"]  # the log's last lines
    assert str(tmp_path / "logs") in doc["Message"]


def test_fcbench_own_server_keeps_its_ready_pipe_and_phases(harness_for):
    h = harness_for(sleep_spec("own", startup_ms=100))
    status, _, _ = invoke(h.url, "own", {"sleep_ms": 1})
    assert status == 200
    [inst] = instances(h.url)
    phases, info = inst["phases_ms"], inst["runtime_info"]
    assert phases["model_load"] >= 100 and phases["runtime_boot"] > 0  # from its ready line
    assert info["import_ms"] == phases["runtime_boot"] and info["pid"] == inst["pid"]
    assert environ_of(inst["pid"])["FC_SERVER_PORT"] == str(info["port"])


LATE_LINE = """
import json, os, sys, threading, time
sys.path.insert(0, os.environ["FOREIGN_DIR"])
from http.server import ThreadingHTTPServer
from plain_server import Handler
port = int(os.environ["FC_SERVER_PORT"])
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(0.4)  # the harness has found the port open and stopped reading the pipe by now
with os.fdopen(int(os.environ["FCBENCH_READY_FD"]), "w") as pipe:  # EPIPE would end us here
    pipe.write(json.dumps({"port": port, "import_ms": 1.0, "model_load_ms": 1.0}) + "\\n")
print("line written", flush=True)
threading.Event().wait()
"""


def test_a_ready_line_written_after_the_port_decided_does_not_kill_the_instance(harness_for):
    # the port and the ready line race; when the port wins, a line written later must still
    # find a reader (no EPIPE) so the instance lives on
    h = harness_for(foreign_spec("raced", [sys.executable, "-c", LATE_LINE],
                                 env={"FOREIGN_DIR": str(FOREIGN)}))
    status, first, body = invoke(h.url, "raced", b"ab")
    assert status == 200 and body == b"ba" and first["x-fcbench-cold"] == "1", body
    time.sleep(0.8)
    status, second, body = invoke(h.url, "raced", b"cd")
    assert status == 200 and body == b"dc", body
    assert second["x-fcbench-cold"] == "0" and second["x-plain-pid"] == first["x-plain-pid"]
    [inst] = instances(h.url)
    assert "line written" in Path(inst["log_path"]).read_text()
    assert "runtime_boot" not in inst["phases_ms"]  # the port decided: the late line is not read


def test_fcbench_own_server_that_is_late_fails_naming_its_port(harness_for):
    h = harness_for(sleep_spec("slow", startup_ms=5000,
                               harness={"runtime": "process", "startTimeout": 1}))
    status, _, body = invoke(h.url, "slow", {"sleep_ms": 1})
    doc = json.loads(body)
    assert status == 502 and doc["Code"] == "FunctionNotStarted", doc
    [inst] = instances(h.url, include_retired=True)
    assert "within 1 s" in doc["Message"] and "sent no ready line" in doc["Message"]
    assert f"127.0.0.1:{inst['runtime_info']['port']}" in doc["Message"]


def test_coldstart_profile_of_a_foreign_server_reports_its_start_as_one_phase(tmp_path):
    spec = tmp_path / "plain.yaml"
    spec.write_text(yaml.safe_dump({
        "functionName": "plain", "environmentVariables": {"PLAIN_START_DELAY_S": "0.5"},
        "harness": {"command": [sys.executable, PLAIN]}}))
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", str(spec),
                          "-n", "1", "--warmup", "0", "--data", "hello",
                          "--out", str(tmp_path / "res")],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    [run] = [d for d in (tmp_path / "res").iterdir() if d.is_dir()]
    [row] = [r for r in csv.DictReader(open(run / "phases.csv")) if r["kind"] == "ok"]
    for name in ("process_start", "runtime_boot", "model_load", "first_inference", "transit"):
        assert row[f"{name}_ms"] == "", name  # the server reports none of them
    # its whole start, delay included, in one phase measured by the harness
    assert 500 <= float(row["ready_ms"]) < 3000
    known = sum(float(v) for k, v in row.items() if k.endswith("_ms") and v != ""
                and k not in ("e2e_ms", "warm_ms", "cold_penalty_ms", "unattributed_ms"))
    assert known + float(row["unattributed_ms"]) == pytest.approx(float(row["e2e_ms"]), abs=0.1)


def test_split_of_a_start_without_a_timeline_is_one_ready_phase():
    import math

    from fcbench.coldstart.phases import split_with_harness
    from fcbench.protocol import InvocationRecord

    launch = 1_000_000_000_000
    inst = {"phases_ms": {"spawn": 5.0, "ready": 900.0},
            "timeline_ns": {"launch_ns": launch, "ready_detected_ns": launch + 805_000_000}}
    foreign = InvocationRecord(latency_ms=820.0, gateway_ts=(launch - 2_000_000) / 1e9,
                               forward_ms=3.0)
    out = split_with_harness(record=foreign, instance=inst)
    assert out["schedule"] == pytest.approx(2.0) and out["spawn"] == 5.0
    assert out["ready"] == pytest.approx(800.0)  # launch + spawn -> seen ready, unsplit
    for name in ("process_start", "runtime_boot", "model_load", "first_inference", "transit"):
        assert math.isnan(out[name]), name
    assert out["unattributed"] == pytest.approx(820.0 - 2.0 - 5.0 - 800.0)
    # with the instance's own points the span starts where they end, as before
    own = InvocationRecord(latency_ms=820.0, gateway_ts=(launch - 2_000_000) / 1e9,
                           boot_ts=(launch + 10_000_000) / 1e9, import_ms=300.0,
                           model_load_ms=400.0, inference_ms=2.0, forward_ms=3.0)
    out = split_with_harness(record=own, instance=inst)
    assert out["process_start"] == pytest.approx(5.0)
    assert out["ready"] == pytest.approx(805.0 - 10.0 - 700.0)


# ---- the docker runtime ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def foreign_image(docker_client):  # noqa: F811
    """The offline base image plus the two foreign servers; its command runs the plain one."""
    import io
    import tarfile

    from fcbench.images.base import build_base_image

    base = build_base_image(docker_client).tag
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path in (PLAIN, STREAM):
            tar.add(path, arcname=f"srv/{Path(path).name}")
    container = docker_client.containers.create(base, command=["true"])
    try:
        container.put_archive("/", archive.getvalue())
        image = container.commit(repository="fcbench-test/foreign", tag="test", changes=[
            'CMD ["python3", "/srv/plain_server.py"]'])
    finally:
        container.remove(force=True)
    yield "fcbench-test/foreign:test"
    try:
        docker_client.images.remove(image.id, force=True)
    except Exception:  # noqa: BLE001 - best effort
        pass


def docker_foreign_spec(image: str, name: str, **cc) -> object:
    return function_spec_from_dict({
        "functionName": name,
        "customContainerConfig": {"image": image, "port": 8080, **cc},
        "harness": {"runtime": "docker", "idleTimeout": 600, "startTimeout": 60}})


def test_docker_image_of_a_foreign_server_is_probed_on_its_port(docker_client, foreign_image,
                                                                harness_for):
    h = harness_for(docker_foreign_spec(foreign_image, "plain"),
                    docker_foreign_spec(foreign_image, "stream",
                                        command=["python3", "/srv/stream_server.py"],
                                        healthCheckConfig={"httpGetUrl": "/healthz"}))
    status, headers, body = invoke(h.url, "plain", b"container")
    assert status == 200 and body == b"reniatnoc", body
    assert headers["x-fcbench-cold"] == "1"
    status, _, body = invoke(h.url, "stream", {"chunks": 4, "interval_ms": 10})
    assert status == 200 and body == b"".join(f"data: {i}\n\n".encode() for i in range(4))
    by_name = {i["function"]: i for i in instances(h.url)}
    for name, inst in by_name.items():
        port = inst["runtime_info"]["port"]
        assert inst["url"] == f"http://127.0.0.1:{port}"
        c = docker_client.containers.get(inst["container_id"])
        env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
        assert env["FC_SERVER_PORT"] == env["FC_CUSTOM_LISTEN_PORT"] == str(port), name
        phases = inst["phases_ms"]
        assert phases["container_start"] > 0 and phases["ready"] > 0
        assert "runtime_boot" not in phases and "model_load" not in phases  # unknown, not 0
    assert by_name["stream"]["runtime_info"]["health_probes"] == 1
    assert "health_probes" not in by_name["plain"]["runtime_info"]


def test_docker_foreign_server_that_never_listens_names_the_port(docker_client, foreign_image,
                                                                 harness_for):
    spec = function_spec_from_dict({
        "functionName": "deaf",
        "customContainerConfig": {"image": foreign_image,
                                  "command": ["python3", "-c", "import time; time.sleep(60)"]},
        "harness": {"runtime": "docker", "idleTimeout": 600, "startTimeout": 2}})
    h = harness_for(spec)
    status, _, body = invoke(h.url, "deaf")
    doc = json.loads(body)
    assert status == 502 and doc["Code"] == "FunctionNotStarted", doc
    [inst] = instances(h.url, include_retired=True)
    assert f"127.0.0.1:{inst['runtime_info']['port']}" in doc["Message"]
    assert "within 2 s" in doc["Message"]
