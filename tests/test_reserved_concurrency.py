"""Reserved concurrency (FC's PutConcurrencyConfig): the scheduler's rule, the real SDK against
the harness (Put/Get/Delete/ListConcurrencyConfigs, 429 ResourceExhausted at once beyond the
cap), and the simulator throttling the same share as the harness on one plan."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
import yaml

from fcbench.harness.scheduler import (FunctionConfig, Reject, RejectReason, Scheduler,
                                       StartInstance)
from fcbench.load.loader import load_workload
from fcbench.protocol import REJECT_CODES
from fcbench.sim import simulate
from fcbench.spec import function_spec_from_dict


# ---- the rule, in the pure scheduler ---------------------------------------------------------
def _kinds(decisions):
    return [type(d).__name__ for d in decisions]


def test_requests_beyond_the_cap_are_refused_at_once_counting_in_flight_claimed_and_queued():
    s = Scheduler()
    s.add_function(FunctionConfig("f", concurrency=1, max_instances=1, queue_size=10,
                                  reserved_concurrency=3))
    assert _kinds(s.arrive(0, "f", "a")) == ["StartInstance"]  # a: claimed on a start
    assert s.arrive(0, "f", "b") == []                          # b: queued (one instance)
    assert s.arrive(0, "f", "c") == []                          # c: queued
    [d] = s.arrive(0, "f", "d")                                 # 3 held: refused, not queued
    assert isinstance(d, Reject) and d.reason is RejectReason.RESERVED_CONCURRENCY
    assert d.throttled and "reserved concurrency 3" in d.detail
    assert s.queue_length("f") == 2
    s.instance_ready(1, "i-f-1")                                # a in flight, b, c queued
    assert isinstance(s.arrive(1, "f", "e")[0], Reject)
    s.finish(2, "a")                                           # b admitted, c queued: 2 held
    assert s.arrive(2, "f", "g") == []                          # room for one more
    assert isinstance(s.arrive(2, "f", "h")[0], Reject)


def test_zero_disables_the_function_and_lifting_the_cap_takes_effect_at_once():
    s = Scheduler()
    cfg = FunctionConfig("f", reserved_concurrency=0)
    s.add_function(cfg)
    [d] = s.arrive(0, "f", "a")
    assert d.reason is RejectReason.RESERVED_CONCURRENCY and "takes no request" in d.detail
    assert s.instances() == []
    s.update_function(1, FunctionConfig("f"), restart=False)  # DeleteConcurrencyConfig
    assert isinstance(s.arrive(1, "f", "b")[0], StartInstance)


def test_the_cap_counts_per_function():
    s = Scheduler()
    s.add_function(FunctionConfig("capped", reserved_concurrency=1))
    s.add_function(FunctionConfig("free"))
    s.arrive(0, "capped", "a")
    assert isinstance(s.arrive(0, "capped", "b")[0], Reject)
    assert not any(isinstance(d, Reject) for d in s.arrive(0, "free", "c"))


def test_fc_code_and_spec_key():
    assert REJECT_CODES[RejectReason.RESERVED_CONCURRENCY.value] == (429, "ResourceExhausted")
    spec = function_spec_from_dict({"functionName": "f",
                                    "harness": {"reservedConcurrency": 2}})
    assert FunctionConfig.from_spec(spec).reserved_concurrency == 2
    assert FunctionConfig.from_spec(function_spec_from_dict(
        {"functionName": "f"})).reserved_concurrency is None


def test_the_simulator_throttles_what_the_scheduler_refuses():
    # 8 at once, one slot each, cap 3: 3 served, 5 refused with 429
    sim = simulate([0.0] * 8, FunctionConfig("f", reserved_concurrency=3),
                   service_s=lambda: 1.0, startup_s=lambda: 0.5)
    assert sim.throttled == 5
    assert sorted(r.status for r in sim.requests) == [200] * 3 + [429] * 5


# ---- the real SDK against the harness --------------------------------------------------------
fc = pytest.importorskip("alibabacloud_fc20230330.client")
from alibabacloud_fc20230330 import models as m  # noqa: E402
from alibabacloud_tea_util.models import RuntimeOptions  # noqa: E402
from Tea.exceptions import TeaException  # noqa: E402

from fcbench.harness.server import HarnessConfig, HarnessThread  # noqa: E402
from sdk_utils import CreateInput, fc_code, sdk  # noqa: E402

SLEEP_ENV = {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "0", "FCBENCH_STARTUP_MS": "0"}


def _invoke(client, name: str, sleep_ms: int, qualifier: str | None = None
            ) -> tuple[int, str]:
    """(status, FC error code or "") of one InvokeFunction."""
    try:
        client.invoke_function_with_options(
            name, m.InvokeFunctionRequest(body=json.dumps({"sleep_ms": sleep_ms}).encode(),
                                          qualifier=qualifier),
            m.InvokeFunctionHeaders(), RuntimeOptions())
        return 200, ""
    except TeaException as exc:
        return exc.status_code, exc.code


def _parallel(client, name: str, n: int, sleep_ms: int, qualifier: str | None = None
              ) -> list[tuple[int, str]]:
    start = threading.Barrier(n)
    out: list[tuple[int, str]] = [(0, "")] * n

    def one(i: int) -> None:
        start.wait()
        out[i] = _invoke(client, name, sleep_ms, qualifier)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


@pytest.mark.slow
def test_put_get_list_delete_concurrency_config_through_the_sdk(tmp_path):
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        client = sdk(h.url)
        client.create_function(m.CreateFunctionRequest(body=CreateInput(
            harness={"maxInstances": 4}, function_name="f", runtime="custom-container",
            environment_variables=SLEEP_ENV)))
        code, status, _ = fc_code(client.get_concurrency_config, "f")
        assert (code, status) == ("ConcurrencyConfigNotFound", 404)

        put = client.put_concurrency_config("f", m.PutConcurrencyConfigRequest(
            body=m.PutConcurrencyInput(reserved_concurrency=1))).body
        assert put.reserved_concurrency == 1 and put.function_arn.endswith(":functions/f")
        got = client.get_concurrency_config("f").body
        assert got.reserved_concurrency == 1
        listed = client.list_concurrency_configs(m.ListConcurrencyConfigsRequest()).body
        assert [c.reserved_concurrency for c in listed.configs] == [1]

        results = _parallel(client, "f", 4, 1500)
        assert sorted(results) == [(200, "")] + [(429, "ResourceExhausted")] * 3, results

        client.delete_concurrency_config("f")
        assert fc_code(client.get_concurrency_config, "f")[0] == "ConcurrencyConfigNotFound"
        assert client.list_concurrency_configs(
            m.ListConcurrencyConfigsRequest()).body.configs == []
        assert _parallel(client, "f", 4, 300) == [(200, "")] * 4  # the cap is gone

        client.put_concurrency_config("f", m.PutConcurrencyConfigRequest(
            body=m.PutConcurrencyInput(reserved_concurrency=0)))
        assert _invoke(client, "f", 0) == (429, "ResourceExhausted")  # disabled


@pytest.mark.slow
def test_a_published_version_gets_the_functions_cap(tmp_path):
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        client = sdk(h.url)
        client.create_function(m.CreateFunctionRequest(body=CreateInput(
            harness={"maxInstances": 4}, function_name="f", runtime="custom-container",
            environment_variables=SLEEP_ENV)))
        client.publish_function_version("f", m.PublishFunctionVersionRequest(
            body=m.PublishVersionInput(description="v1")))
        client.create_alias("f", m.CreateAliasRequest(body=m.CreateAliasInput(
            alias_name="prod", version_id="1")))
        assert _parallel(client, "f", 3, 300, "prod") == [(200, "")] * 3
        # PutConcurrencyConfig takes no qualifier: the cap is the function's, versions too
        client.put_concurrency_config("f", m.PutConcurrencyConfigRequest(
            body=m.PutConcurrencyInput(reserved_concurrency=1)))
        results = _parallel(client, "f", 3, 1500, "prod")
        assert sorted(results) == [(200, "")] + [(429, "ResourceExhausted")] * 2, results
        # one cap for the function whole: a request held on LATEST leaves no room at "prod"
        held = threading.Thread(target=_invoke, args=(client, "f", 1500))
        held.start()
        time.sleep(0.5)
        assert _invoke(client, "f", 0, "prod") == (429, "ResourceExhausted")
        held.join(30)
        assert _invoke(client, "f", 0, "prod") == (200, "")


@pytest.mark.slow
def test_bad_concurrency_configs_get_fc_errors_naming_the_field(tmp_path):
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        client = sdk(h.url)
        client.create_function(m.CreateFunctionRequest(body=CreateInput(
            function_name="f", runtime="custom-container", environment_variables=SLEEP_ENV)))
        code, status, msg = fc_code(client.put_concurrency_config, "f",
                                   m.PutConcurrencyConfigRequest(
                                       body=m.PutConcurrencyInput(reserved_concurrency=-1)))
        assert (code, status) == ("InvalidArgument", 400) and "reservedConcurrency" in msg
        code, status, msg = fc_code(client.put_concurrency_config, "f",
                                   m.PutConcurrencyConfigRequest(body=m.PutConcurrencyInput()))
        assert (code, status) == ("InvalidArgument", 400) and "reservedConcurrency" in msg
        code, status, _ = fc_code(client.put_concurrency_config, "nope",
                                 m.PutConcurrencyConfigRequest(
                                     body=m.PutConcurrencyInput(reserved_concurrency=1)))
        assert (code, status) == ("FunctionNotFound", 404)


# ---- the simulator and the harness on one plan -----------------------------------------------
@pytest.mark.slow
def test_simulator_throttles_the_share_the_harness_throttles(sleep_workload, fcbench_run,
                                                            tmp_path):
    # 10/s evenly for 3 s, 950 ms each, two provisioned instances, reserved concurrency 2:
    # a slot frees ~0.95 s after it was taken and the next arrival (on the 0.1 s grid) takes
    # it, so two requests a second are served and the rest refused, on both paths
    path = sleep_workload({"kind": "constant", "rate": 10}, duration=3, sleep_ms=950,
                          startup_ms=0, max_instances=4)
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["harness"].update({"minInstances": 2,
                                                     "reservedConcurrency": 2})
    path.write_text(yaml.safe_dump(doc))
    res = fcbench_run("run", str(path), "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    [run] = [d for d in (tmp_path / "results").iterdir() if d.is_dir()]
    measured = pd.read_csv(run / "requests.csv")
    throttled = int((measured["status"] == 429).sum())
    assert set(measured["error"].dropna()) <= {"ResourceExhausted"}

    wl = load_workload(path)
    offsets = list(wl.plan_obj().offsets(wl.duration))
    assert len(offsets) == len(measured) == 30
    sim = simulate(offsets, FunctionConfig.from_spec(wl.function_specs[0]),
                   service_s=lambda: 0.955, startup_s=lambda: 0.4)
    assert sim.throttled == throttled == 24, (sim.throttled, throttled)


def test_a_function_and_its_versions_share_one_reserved_concurrency():
    sched = Scheduler()
    sched.add_function(FunctionConfig("f", reserved_concurrency=2))
    sched.add_function(FunctionConfig("f@1", reserved_concurrency=2, group="f"))
    sched.add_function(FunctionConfig("g", reserved_concurrency=2))  # another function's own
    assert not any(isinstance(d, Reject) for d in sched.arrive(0.0, "f", "a"))
    assert not any(isinstance(d, Reject) for d in sched.arrive(0.0, "f@1", "b"))
    [refused] = sched.arrive(0.0, "f@1", "c")
    assert isinstance(refused, Reject) and refused.reason is RejectReason.RESERVED_CONCURRENCY
    [refused] = sched.arrive(0.0, "f", "d")
    assert isinstance(refused, Reject) and refused.reason is RejectReason.RESERVED_CONCURRENCY
    assert not any(isinstance(d, Reject) for d in sched.arrive(0.0, "g", "e"))
    sched.remove_function(0.0, "f@1")  # its held request no longer counts
    assert not any(isinstance(d, Reject) for d in sched.arrive(0.0, "f", "h"))
