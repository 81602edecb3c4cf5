"""FC 3.0 asynchronous invocation on the harness, driven by the real SDK (alibabacloud-fc20230330):
202 at once, the async queue on the same scheduler (cold starts, slots), async tasks (Get /
List / Stop), the async invoke config (retries, max event age), FC's 128 KB limit; and `fcbench
run` with ``request.invocationType: Async`` writing tasks.csv."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from fcbench.errors import SpecError
from fcbench.harness.async_invoke import ASYNC_INVOKER
from fcbench.spec import async_invoke_config_from_dict

fc = pytest.importorskip("alibabacloud_fc20230330.client")
from alibabacloud_fc20230330 import models as m  # noqa: E402
from alibabacloud_tea_util.models import RuntimeOptions  # noqa: E402

from harness_utils import http, instances, invoke, sleep_spec  # noqa: E402
from sdk_utils import fc_code, sdk  # noqa: E402

FAILING = str(Path(__file__).with_name("async_instance.py"))


# ---- the config's bounds, without a server ------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({"maxAsyncRetryAttempts": 9}, "maxAsyncRetryAttempts"),
    ({"maxAsyncRetryAttempts": -1}, "maxAsyncRetryAttempts"),
    ({"maxAsyncEventAgeInSeconds": 0}, "maxAsyncEventAgeInSeconds"),
    ({"maxAsyncEventAgeInSeconds": 604801}, "maxAsyncEventAgeInSeconds"),
    ({"destinationConfig": {"onFailure": {}}}, "destinationConfig.onFailure.destination"),
    ({"asyncTasks": True}, "asyncTasks"),
])
def test_async_config_bounds_are_fcs_and_name_the_field(body, field):
    with pytest.raises(SpecError) as info:
        async_invoke_config_from_dict(body)
    assert info.value.path == field


def test_async_config_defaults_are_fcs():
    cfg = async_invoke_config_from_dict({"maxAsyncEventAgeInSeconds": 604800,
                                         "maxAsyncRetryAttempts": 0})
    assert (cfg.max_async_event_age_in_seconds, cfg.max_async_retry_attempts) == (604800, 0)
    default = async_invoke_config_from_dict({})
    assert (default.async_task, default.max_async_event_age_in_seconds,
            default.max_async_retry_attempts) == (False, 86400, 3)


# ---- helpers --------------------------------------------------------------------------------
@pytest.fixture
def start(tmp_path):
    """Start a harness serving the given specs; yields a function that returns (harness, SDK)."""
    from fcbench.harness.server import HarnessConfig, HarnessThread

    started: list[HarnessThread] = []

    def go(*specs):
        h = HarnessThread(list(specs), HarnessConfig(port=0, log_dir=tmp_path / "logs"))
        h.__enter__()
        started.append(h)
        return h, sdk(h.url)

    yield go
    for h in started:
        h.close()


def put_config(client, name: str, **kw):
    return client.put_async_invoke_config(name, m.PutAsyncInvokeConfigRequest(
        body=m.PutAsyncInvokeConfigInput(**kw))).body


def submit(client, name: str, payload: dict | bytes, task_id: str | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.invoke_function_with_options(
        name, m.InvokeFunctionRequest(body=body),
        m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id=task_id),
        RuntimeOptions())


def get(client, name: str, task_id: str):
    return client.get_async_task(name, task_id, m.GetAsyncTaskRequest()).body


def wait_status(client, name: str, task_id: str, statuses: set[str], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        task = get(client, name, task_id)
        if not seen or seen[-1] != task.status:
            seen.append(task.status)
        if task.status in statuses:
            return task, seen
        time.sleep(0.03)
    raise AssertionError(f"{task_id} never reached {statuses}; seen {seen}")


def events(task) -> list[str]:
    return [e.status for e in task.events]


def submitted_ms(task) -> int:
    """When the task was enqueued: its first event (FC's Enqueued)."""
    assert task.events[0].status == "Enqueued"
    return task.events[0].timestamp


# ---- the harness ----------------------------------------------------------------------------
@pytest.mark.slow
def test_async_invoke_answers_202_at_once_and_the_job_runs_later(start):
    h, client = start(sleep_spec("job", startup_ms=800))
    assert put_config(client, "job", async_task=True).async_task is True
    t0 = time.perf_counter()
    resp = submit(client, "job", {"sleep_ms": 500, "id": "a"}, task_id="video-1")
    took = time.perf_counter() - t0
    # FC's answer: 202, the request id, the task id, no body, before the job has even started
    assert resp.status_code == 202 and took < 0.3
    assert resp.headers["x-fc-request-id"] and resp.headers["x-fc-async-task-id"] == "video-1"
    assert resp.body.read() == b""
    task, seen = wait_status(client, "job", "video-1", {"Succeeded", "Failed"})
    assert "Running" in seen and task.status == "Succeeded"
    assert events(task) == ["Enqueued", "Dequeued", "Running", "Succeeded"]
    assert task.request_id == resp.headers["x-fc-request-id"]
    # the run took the injected 500 ms; the wait before it held the injected 800 ms start-up
    assert 500 <= task.duration_ms == task.end_time - task.started_time < 800
    assert task.started_time - submitted_ms(task) >= 800
    assert json.loads(task.return_payload) == {"slept_ms": 500.0, "id": "a"}
    assert task.task_payload == '{"sleep_ms": 500, "id": "a"}' and task.already_retried_times == 0
    assert json.loads(task.events[2].event_detail)["cold"] is True
    listed = client.list_instances("job", m.ListInstancesRequest()).body.instances
    assert [i.instance_id for i in listed] == [task.instance_id]
    # a second job finds the instance warm: no start-up in its wait
    submit(client, "job", {"sleep_ms": 10}, task_id="video-2")
    warm, _ = wait_status(client, "job", "video-2", {"Succeeded"})
    assert warm.started_time - submitted_ms(warm) < 300 and warm.instance_id == task.instance_id
    raw = http("GET", f"{h.url}/2023-03-30/functions/job/async-tasks/video-2")
    assert json.loads(raw[2])["harness"]["cold"] is False
    assert json.loads(http("GET", f"{h.url}/2023-03-30/functions/job/async-tasks/video-1")[2]
                      )["harness"]["cold"] is True
    # an HTTP-trigger request goes asynchronously too, to its own path
    status, headers, body = http("POST", f"{h.url}/http/job/render?x=1", {"sleep_ms": 1},
                                 headers={"X-Fc-Invocation-Type": "Async",
                                          "X-Fc-Async-Task-Id": "via-trigger"})
    assert (status, headers["x-fc-async-task-id"], body) == (202, "via-trigger", b"")
    assert wait_status(client, "job", "via-trigger", {"Succeeded"})[0].return_payload


@pytest.mark.slow
def test_async_without_task_mode_is_no_task_and_task_ids_are_checked(start):
    h, client = start(sleep_spec("plain"))
    resp = submit(client, "plain", {"sleep_ms": 1}, task_id="t-1")
    assert resp.status_code == 202 and "x-fc-async-task-id" not in resp.headers
    code, status, _ = fc_code(get, client, "plain", "t-1")
    assert (code, status) == ("AsyncTaskNotFound", 404)
    put_config(client, "plain", async_task=True)
    code, status, message = fc_code(submit, client, "plain", {}, task_id="1-starts-with-digit")
    assert (code, status) == ("InvalidArgument", 400) and "x-fc-async-task-id" in message
    submit(client, "plain", {"sleep_ms": 1}, task_id="once")
    code, status, _ = fc_code(submit, client, "plain", {}, task_id="once")
    assert status == 409  # FC: a task id is used once
    # no task id: FC makes the request id the task id
    resp = submit(client, "plain", {"sleep_ms": 1})
    rid = resp.headers["x-fc-request-id"]
    assert resp.headers["x-fc-async-task-id"] == rid
    assert wait_status(client, "plain", rid, {"Succeeded"})[0].request_id == rid
    code, status, _ = fc_code(submit, client, "missing", {})
    assert (code, status) == ("FunctionNotFound", 404)


@pytest.mark.slow
def test_async_body_over_128_kb_is_fcs_413(start):
    h, client = start(sleep_spec("big"))
    put_config(client, "big", async_task=True)
    code, status, message = fc_code(submit, client, "big", b"x" * (128 * 1024 + 1))
    assert (code, status) == ("EntityTooLarge", 413) and "128 KB" in message
    assert submit(client, "big", b"x" * (128 * 1024), task_id="edge").status_code == 202
    # the same body synchronously is fine (FC's synchronous limit is 32 MB)
    status, _, _ = invoke(h.url, "big", b"x" * (128 * 1024 + 1))
    assert status == 200


@pytest.mark.slow
def test_list_async_tasks_pages_and_filters(start):
    h, client = start(sleep_spec("many", concurrency=4, max_instances=1))
    put_config(client, "many", async_task=True)
    for i in range(5):
        submit(client, "many", {"sleep_ms": 1}, task_id=f"batch-{i}")
    for i in range(5):
        wait_status(client, "many", f"batch-{i}", {"Succeeded"})
    submit(client, "many", {"sleep_ms": 4000}, task_id="long-0")
    wait_status(client, "many", "long-0", {"Running"})

    def page(**kw):
        return client.list_async_tasks("many", m.ListAsyncTasksRequest(**kw)).body

    got, token, pages = [], None, 0
    while True:
        out = page(prefix="batch-", limit=2, sort_order_by_time="asc", next_token=token)
        got += [t.task_id for t in out.tasks]
        pages += 1
        token = out.next_token
        if not token:
            break
    assert got == [f"batch-{i}" for i in range(5)] and pages == 3
    assert [t.task_id for t in page(limit=3).tasks] == ["long-0", "batch-4", "batch-3"]  # desc
    assert [t.task_id for t in page(status="Running").tasks] == ["long-0"]
    assert {t.task_id for t in page(status="Succeeded").tasks} == {f"batch-{i}" for i in range(5)}
    assert page(prefix="nothing").tasks in (None, [])
    long = get(client, "many", "long-0")
    after = page(started_time_begin=long.started_time, status="Running").tasks
    assert [t.task_id for t in after] == ["long-0"]
    assert all(t.task_payload is None for t in page().tasks)
    assert page(include_payload=True, prefix="long").tasks[0].task_payload == '{"sleep_ms": 4000}'
    code, status, message = fc_code(page, status="Done")
    assert (code, status) == ("InvalidArgument", 400) and "Succeeded" in message


@pytest.mark.slow
def test_stop_async_task_stops_queued_and_running_tasks_and_frees_the_slot(start):
    h, client = start(sleep_spec("one", max_instances=1, queue_size=0))
    put_config(client, "one", async_task=True)
    submit(client, "one", {"sleep_ms": 20_000}, task_id="long")
    wait_status(client, "one", "long", {"Running"})
    submit(client, "one", {"sleep_ms": 1}, task_id="behind")  # no room: waits in the async queue
    time.sleep(0.2)
    assert get(client, "one", "behind").status == "Enqueued"
    client.stop_async_task("one", "behind", m.StopAsyncTaskRequest())
    behind = get(client, "one", "behind")
    assert behind.status == "Stopped" and behind.started_time is None
    assert events(behind) == ["Enqueued", "Stopping", "Stopped"]
    t0 = time.perf_counter()
    client.stop_async_task("one", "long", m.StopAsyncTaskRequest())
    long = get(client, "one", "long")
    assert long.status == "Stopped" and time.perf_counter() - t0 < 2
    assert events(long) == ["Enqueued", "Dequeued", "Running", "Stopping", "Stopped"]
    assert long.end_time - long.started_time < 5000  # cut off long before its 20 s
    # the slot is free: a synchronous request is served at once (queue size 0 would be 429)
    assert [i["in_flight"] for i in instances(h.url)] == [0]
    status, headers, _ = invoke(h.url, "one", {"sleep_ms": 1})
    assert status == 200 and headers["x-fcbench-cold"] == "0"
    code, status, _ = fc_code(client.stop_async_task, "one", "long", m.StopAsyncTaskRequest())
    assert (code, status) == ("InvalidArgument", 400)  # it has ended


@pytest.mark.slow
def test_a_failing_job_is_retried_max_async_retry_attempts_times_then_failed(start, tmp_path):
    log = tmp_path / "attempts.log"
    spec = sleep_spec("sick", max_instances=2)
    spec = spec.model_copy(update={
        "environment_variables": {"ATTEMPT_LOG": str(log)},
        "harness": spec.harness.model_copy(update={"command": [sys.executable, FAILING]})})
    h, client = start(spec)
    put_config(client, "sick", async_task=True, max_async_retry_attempts=2)
    submit(client, "sick", {"status": 503}, task_id="five-hundred")
    task, seen = wait_status(client, "sick", "five-hundred", {"Failed", "Succeeded"})
    assert task.status == "Failed" and task.already_retried_times == 2
    assert events(task) == ["Enqueued", "Dequeued", "Running", "Retrying", "Running",
                            "Retrying", "Running", "Failed"]
    assert "503" in task.task_error_message
    assert len(log.read_text().splitlines()) == 3  # the instance saw 1 + 2 attempts
    # a 4xx is the caller's error: failed at once, no retry
    submit(client, "sick", {"status": 400}, task_id="bad-input")
    task, _ = wait_status(client, "sick", "bad-input", {"Failed"})
    assert task.already_retried_times == 0 and len(log.read_text().splitlines()) == 4
    # a crash is retried on a new instance
    put_config(client, "sick", async_task=True, max_async_retry_attempts=1)
    submit(client, "sick", {"exit": 3}, task_id="crash")
    task, _ = wait_status(client, "sick", "crash", {"Failed"})
    assert task.already_retried_times == 1 and "InstanceExited" in task.task_error_message
    ran_on = [json.loads(e.event_detail)["instanceId"] for e in task.events
              if e.status == "Running"]
    assert len(set(ran_on)) == 2


@pytest.mark.slow
def test_max_async_event_age_expires_a_job_that_waited_too_long(start):
    h, client = start(sleep_spec("aged", max_instances=1))
    put_config(client, "aged", async_task=True, max_async_event_age_in_seconds=1)
    submit(client, "aged", {"sleep_ms": 2000}, task_id="front")
    submit(client, "aged", {"sleep_ms": 1}, task_id="late")
    late, _ = wait_status(client, "aged", "late", {"Expired", "Succeeded", "Failed"})
    front = get(client, "aged", "front")
    assert late.status == "Expired" and front.status == "Succeeded"
    assert events(late) == ["Enqueued", "Dequeued", "Expired"] and late.started_time is None
    assert late.events[-1].timestamp - submitted_ms(late) >= 1000
    assert "maxAsyncEventAgeInSeconds" in late.events[-1].event_detail


@pytest.mark.slow
def test_async_invoke_config_round_trip_through_the_sdk(start):
    h, client = start(sleep_spec("cfg"), sleep_spec("other"))
    code, status, _ = fc_code(client.get_async_invoke_config, "cfg",
                              m.GetAsyncInvokeConfigRequest())
    assert (code, status) == ("AsyncConfigNotFound", 404)
    dest = m.DestinationConfig(on_failure=m.Destination(
        destination="acs:mns:cn-hangzhou:123:/queues/q/messages"))
    put = put_config(client, "cfg", async_task=True, max_async_event_age_in_seconds=3600,
                     max_async_retry_attempts=0, destination_config=dest)
    assert (put.async_task, put.max_async_event_age_in_seconds, put.max_async_retry_attempts) \
        == (True, 3600, 0)
    assert put.function_arn.endswith(":functions/cfg") and put.created_time
    got = client.get_async_invoke_config("cfg", m.GetAsyncInvokeConfigRequest()).body
    assert got.to_map() == put.to_map()
    assert got.destination_config.on_failure.destination.startswith("acs:mns:")
    put_config(client, "other", max_async_retry_attempts=5)
    listed = client.list_async_invoke_configs(m.ListAsyncInvokeConfigsRequest()).body.configs
    assert [c.function_arn.rsplit("/", 1)[1] for c in listed] == ["cfg", "other"]
    one = client.list_async_invoke_configs(m.ListAsyncInvokeConfigsRequest(
        function_name="other")).body.configs
    assert [c.max_async_retry_attempts for c in one] == [5]
    for body, field in (({"maxAsyncRetryAttempts": 9}, "maxAsyncRetryAttempts"),
                        ({"maxAsyncEventAgeInSeconds": 0}, "maxAsyncEventAgeInSeconds")):
        status, _, raw = http("PUT", f"{h.url}/2023-03-30/functions/cfg/async-invoke-config",
                              body)
        doc = json.loads(raw)
        assert status == 400 and doc["Code"] == "InvalidArgument" and field in doc["Message"]
    code, status, _ = fc_code(put_config, client, "nope", async_task=True)
    assert (code, status) == ("FunctionNotFound", 404)
    client.delete_async_invoke_config("cfg", m.DeleteAsyncInvokeConfigRequest())
    code, status, _ = fc_code(client.get_async_invoke_config, "cfg",
                              m.GetAsyncInvokeConfigRequest())
    assert status == 404


# ---- fcbench run ----------------------------------------------------------------------------
def _one_run(parent: Path) -> Path:
    runs = [p for p in parent.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _csv(path: Path) -> list[dict[str, str]]:
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_fcbench_run_async_writes_one_task_row_per_request(sleep_workload, fcbench_run,
                                                           tmp_path):
    wl = sleep_workload({"kind": "poisson", "rate": 5}, duration=2, sleep_ms=300,
                        startup_ms=700, max_instances=2,
                        extra={"request": {"timeout": 30, "invocationType": "Async",
                                           "asyncWait": 30}})
    res = fcbench_run("run", str(wl), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    run = _one_run(tmp_path / "results")
    requests = _csv(run / "requests.csv")
    tasks = _csv(run / "tasks.csv")
    assert requests and {r["status"] for r in requests} == {"202"}
    # one task per request, joined on the request id, each with an end state
    assert sorted(t["request_id"] for t in tasks) == sorted(r["request_id"] for r in requests)
    assert {t["status"] for t in tasks} == {"Succeeded"}
    assert all(t["task_id"].startswith("run-") and t["task_id"].endswith(t["request_id"])
               for t in tasks)
    for t in tasks:
        assert float(t["submitted_ts"]) <= float(t["started_ts"]) < float(t["end_ts"])
        assert 300 <= float(t["run_ms"]) < 600
    cold = [t for t in tasks if t["cold"] == "True"]
    # two instances started: two cold tasks, each waited out the injected 700 ms start-up
    assert len(cold) == 2 and all(float(t["queue_ms"]) >= 700 for t in cold)
    summary = json.loads((run / "summary.json").read_text())["async_tasks"]
    assert summary["count"] == len(requests) and summary["unfinished"] == 0
    assert summary["statuses"] == {"Succeeded": {"count": len(requests), "share": 1.0}}
    assert summary["cold"] == 2 and summary["queue_ms_cold"]["count"] == 2
    assert summary["queue_ms_cold"]["p50"] >= 700 and summary["run_ms"]["p50"] >= 300
    assert summary["queue_ms_warm"]["count"] == len(requests) - 2
    # the jobs' P(cold) is the cold tasks' share (the submissions themselves are never cold)
    assert summary["p_cold"]["cold"] == 2 and summary["p_cold"]["n"] == len(requests)
    assert "async tasks" in res.stdout and "task queue ms" in res.stdout
    assert re.search(rf"task P\(cold\) \[95% CI\] +{2 / len(requests):.3f} "
                     rf"\(2/{len(requests)} tasks\)", res.stdout), res.stdout


@pytest.mark.slow
def test_fcbench_run_async_gives_up_waiting_and_records_last_states(sleep_workload,
                                                                    fcbench_run, tmp_path):
    wl = sleep_workload({"kind": "poisson", "rate": 4}, duration=1, sleep_ms=20_000,
                        startup_ms=0, max_instances=1,
                        extra={"request": {"timeout": 30, "invocationType": "Async"}})
    res = fcbench_run("run", str(wl), "--no-progress", "--async-wait", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    run = _one_run(tmp_path / "results")
    tasks = _csv(run / "tasks.csv")
    n = len(_csv(run / "requests.csv"))
    assert len(tasks) == n and n >= 2
    assert f"{n} tasks still running after" in res.stderr
    assert sorted(t["status"] for t in tasks) == ["Enqueued"] * (n - 1) + ["Running"]
    summary = json.loads((run / "summary.json").read_text())["async_tasks"]
    assert summary["unfinished"] == n and summary["wait"]["gave_up"] is True


def test_async_workload_checks(tmp_path):
    from fcbench.load.loader import load_workload

    def load(request: dict, target: dict | None = None):
        doc = {"name": "w", "target": target or {"kind": "url", "url": "http://127.0.0.1:1",
                                                 "function": "f"},
               "request": request, "duration": 1, "plan": {"kind": "poisson", "rate": 1}}
        path = tmp_path / "w.yaml"
        path.write_text(json.dumps(doc))
        return load_workload(path)

    assert load({"invocationType": "Async"}).request.is_async
    for request, target, key in (
            ({"invocationType": "Async", "body": "x" * (128 * 1024 + 1)}, None, "request.body"),
            ({"invocationType": "Async"}, {"kind": "fc", "region": "cn-hangzhou",
                                           "function": "f"}, "request.invocationType"),
            ({"invocationType": "Async"}, {"kind": "url", "url": "http://127.0.0.1:1/x"},
             "target.function"),
            ({"asyncWait": 5}, None, "request.asyncWait"),
            ({"invocationType": "async"}, None, "request.invocationType")):
        with pytest.raises(SpecError) as info:
            load(request, target)
        assert info.value.path == key, (request, info.value)


@pytest.mark.slow
def test_tasks_are_invalid_when_the_instance_cannot_start_or_the_function_is_gone(start):
    broken = sleep_spec("broken")
    broken = broken.model_copy(update={"harness": broken.harness.model_copy(update={
        "command": [sys.executable, "-c", "import sys; sys.exit(2)"]})})
    h, client = start(broken, sleep_spec("gone", max_instances=1))
    put_config(client, "broken", async_task=True, max_async_retry_attempts=0)
    submit(client, "broken", {}, task_id="never")
    task, _ = wait_status(client, "broken", "never", {"Invalid", "Failed", "Succeeded"})
    assert task.status == "Invalid" and "FunctionNotStarted" in task.task_error_message
    assert task.started_time is None
    put_config(client, "gone", async_task=True)
    submit(client, "gone", {"sleep_ms": 20_000}, task_id="running")
    wait_status(client, "gone", "running", {"Running"})
    submit(client, "gone", {"sleep_ms": 1}, task_id="queued")
    invoker = h.harness._runner.app[ASYNC_INVOKER]  # the tasks outlive the function's API
    client.delete_function("gone")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
            invoker._tasks["gone"][t].done for t in ("running", "queued")):
        time.sleep(0.05)
    assert invoker._tasks["gone"]["queued"].status.value == "Invalid"
    assert invoker._tasks["gone"]["running"].status.value in ("Invalid", "Failed")
    # a namesake created later starts with no tasks and no config
    client.create_function(m.CreateFunctionRequest(body=m.CreateFunctionInput(
        function_name="gone", runtime="custom-container",
        environment_variables={"FCBENCH_MODEL": "sleep"})))
    assert fc_code(get, client, "gone", "queued")[1] == 404
    assert fc_code(client.get_async_invoke_config, "gone",
                   m.GetAsyncInvokeConfigRequest())[1] == 404


@pytest.mark.slow
def test_an_async_job_runs_at_the_qualifier_it_was_invoked_with(start):
    h, client = start(sleep_spec("ver"))
    put_config(client, "ver", async_task=True)
    client.publish_function_version("ver", m.PublishFunctionVersionRequest(
        body=m.PublishVersionInput(description="v1")))
    client.create_alias("ver", m.CreateAliasRequest(body=m.CreateAliasInput(
        alias_name="prod", version_id="1")))

    def submit_at(qualifier: str, task_id: str):
        return client.invoke_function_with_options(
            "ver", m.InvokeFunctionRequest(body=b'{"sleep_ms": 1}', qualifier=qualifier),
            m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id=task_id),
            RuntimeOptions())

    submit_at("prod", "at-prod")
    task, _ = wait_status(client, "ver", "at-prod", {"Succeeded", "Failed", "Invalid"})
    assert task.status == "Succeeded" and task.qualifier == "prod"
    running = next(e for e in task.events if e.status == "Running")
    assert json.loads(running.event_detail)["versionId"] == "1"
    code, status, _ = fc_code(submit_at, "nope", "at-nowhere")
    assert (code, status) == ("AliasNotFound", 404)
