"""Provision policies (PutProvisionConfig scheduledActions / targetTrackingPolicies): the pure
module at fixed times (cron boundaries, at(), time zones, tracking), the simulator applying them
at simulated times, and the harness applying them on its timer through the real SDK, with
ListProvisionConfigs listing what was put."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from fcbench.errors import SpecError
from fcbench.harness.scheduler import FunctionConfig
from fcbench.provision_policy import ProvisionPolicies, parse_expression, utilisation
from fcbench.sim import simulate
from fcbench.spec import (ScheduledAction, TargetTrackingPolicy, function_spec_from_dict,
                          provision_from_dict)
from harness_utils import wait_for

SH = ZoneInfo("Asia/Shanghai")


def at(*args: int, tz=SH) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def action(name: str, expr: str, target: int, **kw) -> ScheduledAction:
    return ScheduledAction(name=name, schedule_expression=expr, target=target, **kw)


def tracking(**kw) -> TargetTrackingPolicy:
    base = {"name": "t", "metric_type": "ProvisionedConcurrencyUtilization",
            "metric_target": 0.5, "min_capacity": 1, "max_capacity": 3}
    return TargetTrackingPolicy(**{**base, **kw})


# FC's own example: 50 at 20:00 and 10 at 22:00 (UTC+8), from 1 to 30 August 2024
WINDOW = {"start_time": "2024-08-01T10:00:00", "end_time": "2024-08-30T10:00:00",
          "time_zone": "Asia/Shanghai"}
FC_EXAMPLE = ProvisionPolicies(1, (action("up", "cron(0 0 20 * * *)", 50, **WINDOW),
                                   action("down", "cron(0 0 22 * * *)", 10, **WINDOW)))


def target(p: ProvisionPolicies, now: float, provisioned=0, busy=0, concurrency=1) -> int:
    return p.target(now, provisioned=provisioned, busy=busy, concurrency=concurrency)


def test_scheduled_actions_follow_the_latest_firing_inside_their_window():
    cases = [
        (at(2024, 7, 31, 21), 1),             # before the window: defaultTarget
        (at(2024, 8, 1, 19, 59, 59), 1),      # in the window, nothing fired yet: default
        (at(2024, 8, 1, 20), 50),             # the cron boundary itself fires
        (at(2024, 8, 1, 21, 59, 59), 50),
        (at(2024, 8, 1, 22), 10),
        (at(2024, 8, 2, 19), 10),             # held until the next firing
        (at(2024, 8, 2, 20, 0, 1), 50),
        (at(2024, 8, 30, 9, 59, 59), 10),
        (at(2024, 8, 30, 10), 1),             # the window ended: default again
    ]
    assert [target(FC_EXAMPLE, t) for t, _ in cases] == [want for _, want in cases]


def test_next_evaluation_is_the_next_boundary():
    p = FC_EXAMPLE
    assert p.next_evaluation(at(2024, 7, 31, 21)) == at(2024, 8, 1, 10)   # window opens
    assert p.next_evaluation(at(2024, 8, 1, 19, 59, 59)) == at(2024, 8, 1, 20)
    assert p.next_evaluation(at(2024, 8, 1, 20)) == at(2024, 8, 1, 22)
    assert p.next_evaluation(at(2024, 8, 29, 22, 30)) == at(2024, 8, 30, 10)  # window closes
    assert p.next_evaluation(at(2024, 8, 30, 10)) is None


def test_time_zones_move_cron_and_window_times():
    utc = ProvisionPolicies(0, (action("a", "cron(0 0 20 * * *)", 5),))  # no timeZone: UTC
    assert target(utc, at(2024, 8, 2, 3, 59, 59)) == 5  # yesterday's 20:00Z fired
    assert utc.scheduled_target(at(2024, 8, 1, 20, tz=timezone.utc) - 1) == 5
    first = ProvisionPolicies(0, (action("a", "cron(0 0 20 * * *)", 5,
                                         start_time="2024-08-01T00:00:00Z"),))
    assert target(first, at(2024, 8, 1, 19, tz=timezone.utc)) == 0
    assert target(first, at(2024, 8, 1, 20, tz=timezone.utc)) == 5
    # a time with an offset is absolute whatever timeZone says
    shifted = ProvisionPolicies(0, (action("a", "at(2024-08-01T12:00:00+00:00)", 4,
                                           time_zone="Asia/Shanghai"),))
    assert target(shifted, at(2024, 8, 1, 19, 59)) == 0
    assert target(shifted, at(2024, 8, 1, 20)) == 4


def test_at_fires_once_and_holds_until_its_window_ends():
    p = ProvisionPolicies(2, (action("once", "at(2024-08-01T12:00:00)", 6,
                                     end_time="2024-08-01T13:00:00", time_zone="Asia/Shanghai"),))
    assert target(p, at(2024, 8, 1, 11, 59, 59)) == 2
    assert target(p, at(2024, 8, 1, 12)) == 6
    assert target(p, at(2024, 8, 1, 12, 59, 59)) == 6
    assert target(p, at(2024, 8, 1, 13)) == 2
    assert p.next_evaluation(at(2024, 8, 1, 11)) == at(2024, 8, 1, 12)
    assert p.next_evaluation(at(2024, 8, 1, 12)) == at(2024, 8, 1, 13)


def test_five_field_cron_is_read_minutes_first():
    assert parse_expression("cron(0/30 * * * *)").seconds_first is False
    p = ProvisionPolicies(0, (action("half", "cron(0/30 * * * *)", 3),))
    assert p.next_evaluation(at(2024, 8, 1, 10, 5, tz=timezone.utc)) == \
        at(2024, 8, 1, 10, 30, tz=timezone.utc)


def test_utilisation_and_tracking_target_between_min_and_max():
    assert utilisation(busy=3, provisioned=2, concurrency=2) == 0.75
    assert utilisation(busy=0, provisioned=0, concurrency=4) == 0.0
    p = ProvisionPolicies(1, tracking=(tracking(),))
    now = at(2024, 8, 1)
    assert target(p, now, provisioned=2, busy=2, concurrency=1) == 3   # 2 × 1.0 / 0.5 = 4 → max 3
    assert target(p, now, provisioned=2, busy=1, concurrency=1) == 2   # 2 × 0.5 / 0.5
    assert target(p, now, provisioned=4, busy=1, concurrency=2) == 1   # ceil(0.5) → 1
    assert target(p, now, provisioned=3, busy=0, concurrency=1) == 1   # idle: minCapacity
    exact = ProvisionPolicies(0, tracking=(tracking(metric_target=0.6, max_capacity=10),))
    assert target(exact, now, provisioned=5, busy=3, concurrency=1) == 5  # 0.6 / 0.6, no +1


def test_policies_in_force_take_the_largest_and_windows_switch_them():
    now = at(2024, 8, 1, 12)
    later = tracking(start_time=iso(now + 60))
    p = ProvisionPolicies(1, (action("s", "at(2024-08-01T00:00:00Z)", 2),), (later,),
                          interval_s=30)
    assert target(p, now, provisioned=2, busy=2) == 2          # the tracking one not yet
    assert target(p, now + 60, provisioned=2, busy=2) == 3     # both: the larger, 3
    assert p.next_evaluation(now) == now + 60                  # its window opens
    assert p.next_evaluation(now + 60) == now + 90             # in force: every interval_s


def test_bad_policies_are_refused_naming_the_field():
    def refused(body: dict) -> str:
        with pytest.raises(SpecError) as info:
            provision_from_dict({"defaultTarget": 1, **body})
        return str(info.value)

    assert "scheduleExpression" in refused({"scheduledActions": [
        {"name": "a", "target": 1, "scheduleExpression": "every day"}]})
    assert "six fields" in refused({"scheduledActions": [
        {"name": "a", "target": 1, "scheduleExpression": "cron(0 0 20 * * * *)"}]})
    assert "timeZone" in refused({"scheduledActions": [
        {"name": "a", "target": 1, "scheduleExpression": "cron(0 0 20 * * *)",
         "timeZone": "Mars/Olympus"}]})
    assert "not after startTime" in refused({"scheduledActions": [
        {"name": "a", "target": 1, "scheduleExpression": "cron(0 0 20 * * *)",
         "startTime": "2024-08-02T00:00:00", "endTime": "2024-08-01T00:00:00"}]})
    assert "used twice" in refused({"scheduledActions": [
        {"name": "a", "target": 1, "scheduleExpression": "at(2024-08-01T00:00:00)"}] * 2})
    assert "ProvisionedConcurrencyUtilization only" in refused({"targetTrackingPolicies": [
        {"name": "t", "metricType": "CPUUtilization", "metricTarget": 0.5,
         "minCapacity": 1, "maxCapacity": 2}]})
    assert "minCapacity 3 is more than maxCapacity 2" in refused({"targetTrackingPolicies": [
        {"name": "t", "metricType": "ProvisionedConcurrencyUtilization",
         "metricTarget": 0.5, "minCapacity": 3, "maxCapacity": 2}]})
    assert "metricTarget" in refused({"targetTrackingPolicies": [
        {"name": "t", "metricType": "ProvisionedConcurrencyUtilization",
         "metricTarget": 1.5, "minCapacity": 1, "maxCapacity": 2}]})


# ---- the simulator ---------------------------------------------------------------------------
T0 = at(2024, 8, 1, 9)  # simulated 0


def test_simulator_raises_and_lowers_provisioned_instances_at_scheduled_times():
    p = ProvisionPolicies(0, (action("up", f"at({iso(T0 + 10)})", 2,
                                     end_time=iso(T0 + 30)),), origin=T0)
    arrivals = [float(t) for t in range(0, 60, 5)]
    res = simulate(arrivals, FunctionConfig("f", idle_timeout=5), service_s=lambda: 0.1,
                   startup_s=lambda: 1.0, policies=p, until=60)
    started_by_policy = [r for r in res.instances if r["created_ts"] == 10.0]
    assert len(started_by_policy) == 2
    # unmarked at 30 when the window ended: the idle one is reclaimed then, not before
    assert sorted(r["stopped_ts"] for r in started_by_policy)[0] == 30.0
    assert all(not r["provisioned"] for r in res.instances)


def test_simulator_starts_what_the_policies_ask_for_at_zero():
    p = ProvisionPolicies(0, (action("on", f"at({iso(T0 - 5)})", 3),), origin=T0)
    res = simulate([1.0], FunctionConfig("f"), service_s=lambda: 0.1, startup_s=lambda: 1.0,
                   policies=p)
    assert sum(r["provisioned"] for r in res.instances) == 3
    assert res.cold == 0  # ready at 0, like provisioned instances of a plain config


class Recording:
    """The policies, recording each target the simulator asked them for."""

    def __init__(self, policies: ProvisionPolicies) -> None:
        self.policies, self.seen = policies, []

    def target(self, now: float, **load: int) -> int:
        out = self.policies.target(now, **load)
        self.seen.append((now, load["provisioned"], load["busy"], out))
        return out

    def next_evaluation(self, now: float) -> float | None:
        return self.policies.next_evaluation(now)


def test_simulator_tracks_utilisation_between_min_and_max():
    rec = Recording(ProvisionPolicies(1, tracking=(tracking(max_capacity=3),), origin=T0,
                                      interval_s=1.0))
    # 4 requests in flight at any time for 10 s (one each 0.25 s, 1 s each)
    arrivals = [i * 0.25 for i in range(40)]
    res = simulate(arrivals, FunctionConfig("f", idle_timeout=30), service_s=lambda: 1.0,
                   startup_s=lambda: 0.2, policies=rec, until=40)
    targets = [t for *_, t in rec.seen]
    assert targets[0] == 1 and max(targets) == 3 and 2 in targets  # 1 → 2 → 3, capped
    assert targets[-1] == 1  # idle after the load: back to minCapacity
    assert all(t == min(3, max(1, -(-busy * 2 // 1))) for _, _, busy, t in rec.seen)
    assert sum(r["provisioned"] for r in res.instances) == 1


def test_spec_keys_are_the_provision_config_the_simulator_reads():
    spec = function_spec_from_dict({"functionName": "f", "harness": {
        "minInstances": 1,
        "scheduledActions": [{"name": "up", "target": 2,
                              "scheduleExpression": "cron(0 0 20 * * *)",
                              "timeZone": "Asia/Shanghai"}],
        "targetTrackingPolicies": [{"name": "t",
                                    "metricType": "ProvisionedConcurrencyUtilization",
                                    "metricTarget": 0.6, "minCapacity": 1,
                                    "maxCapacity": 4}]}})
    p = ProvisionPolicies.of(spec.harness)
    assert p is not None and p.default_target == 1
    assert target(p, at(2024, 8, 1, 20, 30)) == 2
    assert ProvisionPolicies.of(function_spec_from_dict({"functionName": "g"}).harness) is None


# ---- the harness, through the real SDK -------------------------------------------------------
fc = pytest.importorskip("alibabacloud_fc20230330.client")
from alibabacloud_fc20230330 import models as m  # noqa: E402

from fcbench.harness.server import HarnessConfig, HarnessThread  # noqa: E402
from sdk_utils import CreateInput, sdk  # noqa: E402

SLEEP_ENV = {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "0", "FCBENCH_STARTUP_MS": "0"}


def kinds(client, name: str) -> list[str]:
    return sorted(i.resource_type for i in
                  client.list_instances(name, m.ListInstancesRequest()).body.instances)


@pytest.fixture
def harness(tmp_path):
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        h.harness.platform.policy_interval_s = 0.2
        client = sdk(h.url)
        client.create_function(m.CreateFunctionRequest(body=CreateInput(
            harness={"maxInstances": 4, "idleTimeout": 30}, function_name="f",
            runtime="custom-container", environment_variables=SLEEP_ENV,
            instance_concurrency=1)))
        yield h, client


@pytest.mark.slow
def test_scheduled_action_window_raises_then_lowers_provisioned_instances(harness):
    h, client = harness
    now = time.time()
    body = m.PutProvisionConfigInput(default_target=0, scheduled_actions=[
        m.ScheduledAction(name="every-second", schedule_expression="cron(* * * * * *)",
                          target=2, start_time=iso(now - 60), end_time=iso(now + 5)),
        m.ScheduledAction(name="later", schedule_expression=f"at({iso(now + 3600)})",
                          target=4)])
    put = client.put_provision_config("f", m.PutProvisionConfigRequest(body=body)).body
    assert (put.default_target, put.target) == (0, 2)
    assert [a.name for a in put.scheduled_actions] == ["every-second", "later"]
    wait_for(lambda: kinds(client, "f") == ["Provisioned", "Provisioned"])
    got = wait_for(lambda: (b := client.get_provision_config(
        "f", m.GetProvisionConfigRequest()).body).current == 2 and b)
    assert got.target == 2
    # the window ends 5 s after the PUT: target back to 0, both instances unmarked (they idle
    # out after idleTimeout like any on-demand instance)
    wait_for(lambda: kinds(client, "f") == ["OnDemand", "OnDemand"], timeout=10)
    assert client.get_provision_config("f", m.GetProvisionConfigRequest()).body.target == 0

    listed = client.list_provision_configs(m.ListProvisionConfigsRequest()).body
    [config] = listed.provision_configs
    assert config.function_arn.endswith(":functions/f") and config.default_target == 0
    assert {a.name for a in config.scheduled_actions} == {"every-second", "later"}
    assert client.list_provision_configs(m.ListProvisionConfigsRequest(
        function_name="other")).body.provision_configs == []


@pytest.mark.slow
def test_target_tracking_raises_the_target_under_load_and_lowers_it_idle(harness):
    h, client = harness
    body = m.PutProvisionConfigInput(default_target=1, target_tracking_policies=[
        m.TargetTrackingPolicy(name="track", metric_type="ProvisionedConcurrencyUtilization",
                               metric_target=0.5, min_capacity=1, max_capacity=3)])
    client.put_provision_config("f", m.PutProvisionConfigRequest(body=body))
    wait_for(lambda: client.get_provision_config(
        "f", m.GetProvisionConfigRequest()).body.current == 1)
    # one request on the one provisioned instance: utilisation 1.0 against 0.5 → 2
    import json
    import threading

    from alibabacloud_tea_util.models import RuntimeOptions

    def busy() -> None:
        client.invoke_function_with_options(
            "f", m.InvokeFunctionRequest(body=json.dumps({"sleep_ms": 3000}).encode()),
            m.InvokeFunctionHeaders(), RuntimeOptions())

    t = threading.Thread(target=busy)
    t.start()
    wait_for(lambda: client.get_provision_config(
        "f", m.GetProvisionConfigRequest()).body.target == 2, timeout=5)
    wait_for(lambda: kinds(client, "f") == ["Provisioned", "Provisioned"], timeout=10)
    t.join(30)
    # idle again: utilisation 0 → minCapacity 1, one instance unmarked
    wait_for(lambda: kinds(client, "f") == ["OnDemand", "Provisioned"], timeout=10)
    assert client.get_provision_config("f", m.GetProvisionConfigRequest()).body.target == 1
    client.delete_provision_config("f", m.DeleteProvisionConfigRequest())
    wait_for(lambda: "Provisioned" not in kinds(client, "f"), timeout=10)
    assert client.list_provision_configs(
        m.ListProvisionConfigsRequest()).body.provision_configs == []


def test_s_yaml_carries_them_as_fc3s_provision_and_concurrency_configs(tmp_path):
    import yaml

    from fcbench.deploy.serverless_devs import export_s_yaml, import_s_yaml

    spec = function_spec_from_dict({"functionName": "f", "harness": {
        "minInstances": 1, "reservedConcurrency": 6,
        "scheduledActions": [{"name": "up", "target": 2, "timeZone": "Asia/Shanghai",
                              "scheduleExpression": "cron(0 0 20 * * *)"}],
        "targetTrackingPolicies": [{"name": "t", "metricTarget": 0.6, "minCapacity": 1,
                                    "maxCapacity": 4,
                                    "metricType": "ProvisionedConcurrencyUtilization"}]}})
    path = tmp_path / "s.yaml"
    path.write_text(export_s_yaml(spec))
    props = yaml.safe_load(path.read_text())["resources"]["f"]["props"]
    assert props["concurrencyConfig"] == {"reservedConcurrency": 6}
    assert props["provisionConfig"]["defaultTarget"] == 1
    assert props["provisionConfig"]["scheduledActions"][0]["scheduleExpression"] == \
        "cron(0 0 20 * * *)"
    assert "vars" not in yaml.safe_load(path.read_text())  # nothing left for the harness block
    back = import_s_yaml(path)
    assert back.spec == spec
    assert "resources.f.props.concurrencyConfig.reservedConcurrency -> " \
        "harness.reservedConcurrency" in back.mapped


def test_a_simulated_workload_reads_the_policies_against_its_start_time(sleep_workload):
    import yaml

    from fcbench.load.loader import load_workload
    from fcbench.sim.run import SimulationSettings, run_simulation

    path = sleep_workload({"kind": "constant", "rate": 1}, duration=20, idle=5)
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["harness"].update({
        "reservedConcurrency": 5,
        "scheduledActions": [{"name": "eight", "target": 2, "timeZone": "Asia/Shanghai",
                              "startTime": "2024-08-01T07:00:00",  # no earlier firing
                              "scheduleExpression": "cron(0 0 8 * * *)"}]})
    path.write_text(yaml.safe_dump(doc))
    start = at(2024, 8, 1, 7, 59, 50)  # 10 s before 08:00 in Shanghai
    sim = run_simulation(load_workload(path), SimulationSettings(
        service_ms="50", startup_ms="500", start_ts=start))
    assert sim.origin == start
    by_policy = [r for r in sim.result.instances if r["created_ts"] == 10.0]
    assert len(by_policy) == 2 and all(r["provisioned"] for r in by_policy)
    assert sim.frame(sim.origin)["intended_ts"].iloc[0] == start


def test_a_fractional_origin_neither_misses_nor_repeats_a_firing():
    origin = T0 + 0.1234567  # a wall clock read with time.time(): sim time + origin rounds
    p = ProvisionPolicies(0, (action("odd", "cron(*/10 * * * * *)", 1,
                                     start_time=iso(T0)),
                              action("even", "cron(5/10 * * * * *)", 2,
                                     start_time=iso(T0))), origin=origin)
    rec = Recording(p)
    simulate([0.0, 59.0], FunctionConfig("f", idle_timeout=100), service_s=lambda: 0.1,
             startup_s=lambda: 0.1, policies=rec, until=60)
    fired = [(round(t + origin - T0, 3), target) for t, _, _, target in rec.seen[1:]]
    assert fired[:4] == [(5.0, 2), (10.0, 1), (15.0, 2), (20.0, 1)]
    assert len(fired) == len(set(fired))  # each firing evaluated once
