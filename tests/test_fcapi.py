"""FC 3.0's management API on the harness, driven by the real SDK (alibabacloud-fc20230330):
functions, HTTP triggers, provision configs, instances, FC's errors; healthCheckConfig and
preStop honoured on real process instances."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from fcbench.harness.server import HarnessConfig, HarnessThread
from harness_utils import http, instances, wait_for

fc = pytest.importorskip("alibabacloud_fc20230330.client")
from alibabacloud_fc20230330 import models as m  # noqa: E402
from alibabacloud_tea_util.models import RuntimeOptions  # noqa: E402
from sdk_utils import CreateInput, fc_code  # noqa: E402
from sdk_utils import sdk as sdk_for  # noqa: E402

SLEEP_ENV = {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "0", "FCBENCH_STARTUP_MS": "0"}
LIFECYCLE = str(Path(__file__).with_name("lifecycle_instance.py"))


@pytest.fixture
def harness(request, tmp_path):
    # the operator's say-so for harness.command through the API (docs/security.md)
    allow = getattr(request, "param", {}).get("allow_api_commands", False)
    with HarnessThread([], HarnessConfig(port=0, virtual_gpus="1x16GB",
                                         log_dir=tmp_path / "logs",
                                         allow_api_commands=allow)) as h:
        yield h


def sdk(h: HarnessThread):
    return sdk_for(h.url)


def create(client, name: str, *, harness: dict | None = None, env: dict | None = None, **kw):
    body = CreateInput(harness=harness, function_name=name, runtime="custom-container",
                       environment_variables={**SLEEP_ENV, **(env or {})}, **kw)
    return client.create_function(m.CreateFunctionRequest(body=body)).body


def call(client, name: str, payload: dict):
    resp = client.invoke_function_with_options(
        name, m.InvokeFunctionRequest(body=json.dumps(payload).encode()),
        m.InvokeFunctionHeaders(), RuntimeOptions())
    return resp.headers, json.loads(resp.body.read())


@pytest.mark.slow
def test_gpu_function_lifecycle_through_the_sdk(harness):
    client = sdk(harness)
    fn = create(client, "gpu", cpu=2.0, memory_size=8192, instance_concurrency=1,
                gpu_config=m.GPUConfig(gpu_memory_size=4096, gpu_type="fc.gpu.tesla.1"),
                custom_container_config=m.CustomContainerConfig(
                    image="registry.example/ns/sleep:1", port=9000,
                    health_check_config=m.CustomHealthCheckConfig(
                        http_get_url="/", period_seconds=1, failure_threshold=2)),
                harness={"maxInstances": 1, "queue": {"size": 0}, "idleTimeout": 60})
    assert (fn.function_name, fn.state, fn.last_update_status) == ("gpu", "Active", "Successful")
    assert fn.gpu_config.gpu_memory_size == 4096 and fn.runtime == "custom-container"
    assert fn.function_arn.endswith(":functions/gpu") and fn.function_id and fn.created_time
    assert fn.custom_container_config.health_check_config.http_get_url == "/"
    got = client.get_function("gpu", m.GetFunctionRequest()).body
    assert got.function_id == fn.function_id and got.cpu == 2.0 and got.memory_size == 8192
    listed = client.list_functions(m.ListFunctionsRequest(prefix="gp", limit=10)).body
    assert [f.function_name for f in listed.functions] == ["gpu"]

    # an HTTP trigger whose URL the harness serves, with its methods enforced
    trig = client.create_trigger("gpu", m.CreateTriggerRequest(body=m.CreateTriggerInput(
        trigger_name="http", trigger_type="http",
        trigger_config=json.dumps({"authType": "anonymous", "methods": ["POST"]})))).body
    url = trig.http_trigger.url_internet
    assert url.startswith(harness.url) and json.loads(trig.trigger_config)["methods"] == ["POST"]
    status, h1, body = http("POST", url + "/infer", {"sleep_ms": 1, "id": "t"})
    assert status == 200 and json.loads(body)["id"] == "t" and h1["x-fcbench-cold"] == "1"
    status, headers, body = http("GET", url)
    assert status == 405 and json.loads(body)["Code"] == "MethodNotAllowed"
    assert headers["x-fc-request-id"]
    assert [t.trigger_name for t in client.list_triggers(
        "gpu", m.ListTriggersRequest()).body.triggers] == ["http"]

    # sync invoke through the SDK: the same (warm) instance, its id in the headers
    headers, out = call(client, "gpu", {"sleep_ms": 1, "id": "sdk"})
    assert out["id"] == "sdk" and headers["x-fcbench-cold"] == "0"
    old = headers["x-fc-instance-id"]
    assert old == h1["x-fc-instance-id"] and headers["x-fc-request-id"]
    listed = client.list_instances("gpu", m.ListInstancesRequest()).body.instances
    assert [(i.instance_id, i.status) for i in listed] == [(old, "Running")]

    # maxInstances 1, no queue: a second request while one is in flight is FC's 429
    slow: dict = {}
    worker = threading.Thread(target=lambda: slow.update(
        zip(("headers", "out"), call(client, "gpu", {"sleep_ms": 1500, "id": "slow"}))))
    worker.start()
    wait_for(lambda: any(i["in_flight"] for i in instances(harness.url)))
    code, status, _ = fc_code(call, client, "gpu", {"sleep_ms": 1})
    assert (code, status) == ("ResourceThrottled", 429)

    # update while the slow one is in flight: it finishes on the old instance, the next
    # request lands on a new one, and the old one is stopped after
    env = {**SLEEP_ENV, "FORCE_COLD": "1"}
    upd = client.update_function("gpu", m.UpdateFunctionRequest(
        body=m.UpdateFunctionInput(environment_variables=env))).body
    assert upd.environment_variables["FORCE_COLD"] == "1" and upd.gpu_config.gpu_memory_size \
        == 4096
    headers, _ = call(client, "gpu", {"sleep_ms": 1})
    assert headers["x-fc-instance-id"] != old and headers["x-fcbench-cold"] == "1"
    worker.join(10)
    assert slow["out"]["id"] == "slow" and slow["headers"]["x-fc-instance-id"] == old
    wait_for(lambda: [i.instance_id for i in client.list_instances(
        "gpu", m.ListInstancesRequest()).body.instances] == [headers["x-fc-instance-id"]])

    client.delete_trigger("gpu", "http")
    assert http("GET", url)[0] == 200  # no trigger: the harness's open pass-through again
    client.delete_function("gpu")
    code, status, _ = fc_code(client.get_function, "gpu", m.GetFunctionRequest())
    assert (code, status) == ("FunctionNotFound", 404)
    assert instances(harness.url) == []


@pytest.mark.slow
def test_provision_config_keeps_instances_started_and_visible(harness):
    client = sdk(harness)
    create(client, "prov", harness={"maxInstances": 3, "idleTimeout": 0.3})
    code, _, _ = fc_code(client.get_provision_config, "prov", m.GetProvisionConfigRequest())
    assert code == "ProvisionConfigNotFound"
    code, status, msg = fc_code(client.put_provision_config, "prov", m.PutProvisionConfigRequest(
        qualifier="LATEST", body=m.PutProvisionConfigInput(default_target=4)))
    assert (code, status) == ("InvalidArgument", 400) and "maxInstances" in msg
    put = client.put_provision_config("prov", m.PutProvisionConfigRequest(
        qualifier="LATEST", body=m.PutProvisionConfigInput(default_target=2))).body
    assert put.default_target == 2
    wait_for(lambda: client.get_provision_config(
        "prov", m.GetProvisionConfigRequest(qualifier="LATEST")).body.current == 2)
    time.sleep(1.0)  # > idleTimeout: provisioned instances are never reclaimed
    listed = client.list_instances("prov", m.ListInstancesRequest()).body.instances
    assert len(listed) == 2 and {i.resource_type for i in listed} == {"Provisioned"}
    headers, _ = call(client, "prov", {"sleep_ms": 1})
    assert headers["x-fcbench-cold"] == "0"
    assert headers["x-fc-instance-id"] in {i.instance_id for i in listed}
    assert len(client.list_instances("prov", m.ListInstancesRequest()).body.instances) == 2
    client.delete_provision_config("prov", m.DeleteProvisionConfigRequest())
    wait_for(lambda: client.list_instances("prov", m.ListInstancesRequest()).body.instances
             == [])


def test_invalid_specs_and_conflicts_give_fc_codes_through_the_sdk(harness):
    client = sdk(harness)
    bad = [({"gpu_config": m.GPUConfig(gpu_memory_size=1000)}, "gpuConfig.gpuMemorySize"),
           ({"instance_concurrency": 101}, "instanceConcurrency"),
           ({"cpu": 0.07}, "cpu"),
           ({"cpu": 2.0, "memory_size": 1024}, "cpu"),
           ({"custom_container_config": m.CustomContainerConfig(
               health_check_config=m.CustomHealthCheckConfig(http_get_url="/h",
                                                             timeout_seconds=9))},
            "customContainerConfig.healthCheckConfig.timeoutSeconds")]
    for fields, key in bad:
        code, status, msg = fc_code(create, client, "bad", **fields)
        assert (code, status) == ("InvalidArgument", 400) and key in msg, (fields, msg)
    assert client.list_functions(m.ListFunctionsRequest()).body.functions == []
    # an unknown gpuType is accepted (with a warning), as FC adds types over time
    fn = create(client, "odd", gpu_config=m.GPUConfig(gpu_memory_size=2048,
                                                      gpu_type="fc.gpu.future.9"))
    assert fn.gpu_config.gpu_type == "fc.gpu.future.9"
    code, status, _ = fc_code(create, client, "odd")
    assert (code, status) == ("FunctionAlreadyExists", 409)
    code, _, msg = fc_code(client.update_function, "odd", m.UpdateFunctionRequest(
        body=m.UpdateFunctionInput(gpu_config=m.GPUConfig(gpu_memory_size=3000))))
    assert code == "InvalidArgument" and "gpuMemorySize" in msg
    code, _, _ = fc_code(client.create_trigger, "odd", m.CreateTriggerRequest(
        body=m.CreateTriggerInput(trigger_name="t", trigger_type="http",
                                  trigger_config='{"authType": "sometimes"}')))
    assert code == "InvalidArgument"
    code, status, _ = fc_code(client.get_trigger, "odd", "nope")
    assert (code, status) == ("TriggerNotFound", 404)
    code, status, _ = fc_code(client.list_instances, "nope", m.ListInstancesRequest())
    assert (code, status) == ("FunctionNotFound", 404)
    # paging as the SDK asks for it
    for name in ("p1", "p2", "p3"):
        create(client, name)
    page = client.list_functions(m.ListFunctionsRequest(prefix="p", limit=2)).body
    assert [f.function_name for f in page.functions] == ["p1", "p2"] and page.next_token == "p3"
    page = client.list_functions(m.ListFunctionsRequest(prefix="p", limit=2,
                                                        next_token=page.next_token)).body
    assert [f.function_name for f in page.functions] == ["p3"] and page.next_token is None


def test_http_trigger_with_function_auth_wants_an_authorization_header(harness):
    client = sdk(harness)
    create(client, "auth")
    url = client.create_trigger("auth", m.CreateTriggerRequest(body=m.CreateTriggerInput(
        trigger_name="h", trigger_type="http", trigger_config=json.dumps(
            {"authType": "function", "methods": ["GET", "POST"]})))).body.http_trigger.url_internet
    status, _, body = http("POST", url, {"sleep_ms": 1}, signed=False)
    assert status == 401 and json.loads(body)["Code"] == "Unauthorized"
    status, _, body = http("POST", url, {"sleep_ms": 1}, headers={"Authorization": " "},
                           signed=False)
    assert status == 400 and json.loads(body)["Code"] == "MissingRequiredHeader"
    status, _, body = http("POST", url, {"sleep_ms": 1, "id": 7}, signed=False,
                           headers={"Authorization": "ACS3-HMAC-SHA256 unchecked"})
    assert status == 403 and json.loads(body)["Code"] == "SignatureNotMatch"
    status, _, body = http("POST", url, {"sleep_ms": 1, "id": 7})  # signed with its key
    assert status == 200 and json.loads(body)["id"] == 7


@pytest.mark.slow
def test_health_check_timings_decide_readiness_and_failures_fail_the_start(harness):
    client = sdk(harness)
    create(client, "healthy", custom_container_config=m.CustomContainerConfig(
        health_check_config=m.CustomHealthCheckConfig(
            http_get_url="/", initial_delay_seconds=1, period_seconds=1, success_threshold=2)))
    t0 = time.perf_counter()
    headers, _ = call(client, "healthy", {"sleep_ms": 1})
    waited = time.perf_counter() - t0
    (inst,) = instances(harness.url)
    # first probe after 1 s, the second (successThreshold 2) one period later
    assert inst["runtime_info"]["health_probes"] == 2 and waited >= 2.0
    assert headers["x-fcbench-cold"] == "1"

    create(client, "sick", custom_container_config=m.CustomContainerConfig(
        health_check_config=m.CustomHealthCheckConfig(
            http_get_url="/not-there", period_seconds=1, failure_threshold=2)))
    code, status, msg = fc_code(call, client, "sick", {"sleep_ms": 1})
    assert (code, status) == ("FunctionNotStarted", 502)
    assert "failed its health check: GET /not-there answered 405, 2 times in a row" in msg
    assert [i for i in instances(harness.url) if i["function"] == "sick"] == []


def _lines(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 2)[1:]) for line in path.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("harness", [{"allow_api_commands": True}], indirect=True)
def test_pre_stop_runs_before_the_stop_on_update_and_delete_within_its_timeout(harness,
                                                                             tmp_path):
    client = sdk(harness)
    log = tmp_path / "lifecycle.log"
    hook = m.InstanceLifecycleConfig(pre_stop=m.LifecycleHook(handler="pre-stop", timeout=1))
    create(client, "quick", env={"LIFECYCLE_LOG": str(log)}, instance_lifecycle_config=hook,
           harness={"command": [sys.executable, LIFECYCLE]})
    first = call(client, "quick", {})[0]["x-fc-instance-id"]
    client.update_function("quick", m.UpdateFunctionRequest(body=m.UpdateFunctionInput(
        environment_variables={**SLEEP_ENV, "LIFECYCLE_LOG": str(log), "V": "2"})))
    second = call(client, "quick", {})[0]["x-fc-instance-id"]
    assert second != first
    wait_for(lambda: (first, "sigterm") in _lines(log))
    assert [w for i, w in _lines(log) if i == first] == ["pre-stop begin", "pre-stop end",
                                                         "sigterm"]
    # a preStop that outlives its timeout is cut off there, and the instance still stops
    client.update_function("quick", m.UpdateFunctionRequest(body=m.UpdateFunctionInput(
        environment_variables={**SLEEP_ENV, "LIFECYCLE_LOG": str(log), "PRESTOP_SLEEP_S": "30"})))
    third = call(client, "quick", {})[0]["x-fc-instance-id"]
    t0 = time.perf_counter()
    client.delete_function("quick")
    assert time.perf_counter() - t0 < 10
    assert [w for i, w in _lines(log) if i == third] == ["pre-stop begin", "sigterm"]
    retired = {i["instance_id"]: i for i in instances(harness.url, include_retired=True)}
    assert retired[first]["runtime_info"]["pre_stop_status"] == 200
    assert retired[third]["runtime_info"]["pre_stop_status"] == "timeout"
    assert 900 <= retired[third]["phases_ms"]["pre_stop"] < 5000
