"""FC 3.0 versions and aliases: the pure bookkeeping (`fcbench.harness.versions`), and the harness
driven by the real SDK (alibabacloud-fc20230330): PublishFunctionVersion snapshots LATEST, each
version keeps its own instances and configuration, aliases route (with a canary weight), provision
configs and HTTP triggers take a qualifier, UpdateTrigger changes a trigger live.

The `sleep` model answers a body without ``sleep_ms`` with its configured service time
(``slept_ms`` = ``FCBENCH_SLEEP_MS``), so a version's environment is visible in every answer.
"""

from __future__ import annotations

import json
import math
import random
import time

import pytest

from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.harness.versions import (LATEST, Alias, FunctionVersions, QualifierError, split_key,
                                     unit_key)
from fcbench.protocol import ALL_COLUMNS, H_FC_VERSION, parse_headers
from fcbench.spec import function_spec_from_dict
from harness_utils import http, instances, wait_for

SLEEP_ENV = {"FCBENCH_MODEL": "sleep", "FCBENCH_STARTUP_MS": "0"}


def _binomial_bound(n: int, p: float, sigmas: float = 4.0) -> float:
    """How far a Binomial(n, p) count may stray from n·p and still pass (`sigmas` σ)."""
    return sigmas * math.sqrt(n * p * (1 - p))


def _refused(fn, *args) -> tuple[int, str, str]:
    with pytest.raises(QualifierError) as info:
        fn(*args)
    return info.value.status, info.value.code, str(info.value)


# ---- the pure bookkeeping ------------------------------------------------------------------
def _spec(ms: int):
    return function_spec_from_dict({"functionName": "f", "environmentVariables": {
        **SLEEP_ENV, "FCBENCH_SLEEP_MS": str(ms)}})


def test_versions_count_up_per_function_and_are_never_reused():
    v = FunctionVersions()
    assert [v.publish(_spec(i), {"description": f"v{i}"}, float(i)).version_id
            for i in (1, 2, 3)] == ["1", "2", "3"]
    assert v.version("2").spec.environment_variables["FCBENCH_SLEEP_MS"] == "2"
    v.delete_version("3")
    assert v.publish(_spec(4), None, 4.0).version_id == "4"  # 3 is gone for good
    assert _refused(v.version, "3")[:2] == (404, "VersionNotFound")
    assert _refused(v.delete_version, "LATEST")[:2] == (400, "InvalidArgument")
    page, token, direction = v.list_versions(direction=None, limit="2", next_token=None)
    assert ([x.version_id for x in page], token, direction) == (["4", "2"], "1", "BACKWARD")
    page, token, _ = v.list_versions(direction="BACKWARD", limit="2", next_token=token)
    assert ([x.version_id for x in page], token) == (["1"], None)
    page, token, _ = v.list_versions(direction="FORWARD", limit="2", next_token="2")
    assert ([x.version_id for x in page], token) == (["2", "4"], None)
    with pytest.raises(QualifierError, match="BACKWARD or FORWARD"):
        v.list_versions(direction="sideways", limit=None, next_token=None)


def test_alias_rules_refuse_with_fc_codes_naming_the_field():
    v = FunctionVersions()
    for i in (1, 2, 3):
        v.publish(_spec(i), {}, 0.0)
    prod = v.create_alias({"aliasName": "prod", "versionId": "1",
                           "additionalVersionWeight": {"2": 0.25}}, 5.0)
    assert (prod.version_id, prod.weights, prod.created) == ("1", {"2": 0.25}, 5.0)
    bad = [({"aliasName": "prod", "versionId": "1"}, 409, "AliasAlreadyExists", "prod"),
           ({"aliasName": "x", "versionId": "9"}, 404, "VersionNotFound", "'9'"),
           ({"aliasName": "x"}, 400, "InvalidArgument", "versionId"),
           ({"versionId": "1"}, 400, "InvalidArgument", "aliasName"),
           ({"aliasName": "x", "versionId": "LATEST"}, 400, "InvalidArgument", "LATEST"),
           ({"aliasName": "1st", "versionId": "1"}, 400, "InvalidArgument", "aliasName"),
           ({"aliasName": "-x", "versionId": "1"}, 400, "InvalidArgument", "aliasName"),
           ({"aliasName": "LATEST", "versionId": "1"}, 400, "InvalidArgument", "LATEST"),
           ({"aliasName": "a" * 129, "versionId": "1"}, 400, "InvalidArgument", "128"),
           ({"aliasName": "x", "versionId": "1", "additionalVersionWeight": {"2": 1.5}}, 400,
            "InvalidArgument", "additionalVersionWeight.2"),
           ({"aliasName": "x", "versionId": "1", "additionalVersionWeight": {"2": "half"}},
            400, "InvalidArgument", "from 0 to 1"),
           ({"aliasName": "x", "versionId": "1", "additionalVersionWeight": {"1": 0.1}}, 400,
            "AdditionalVersionContainsMajorVersion", "major version 1"),
           ({"aliasName": "x", "versionId": "1",
             "additionalVersionWeight": {"2": 0.1, "3": 0.1}}, 400, "InvalidArgument",
            "at most 1"),
           ({"aliasName": "x", "versionId": "1", "additionalVersionWeight": {"7": 0.1}}, 404,
            "VersionNotFound", "'7'")]
    for body, status, code, word in bad:
        got = _refused(v.create_alias, body, 0.0)
        assert got[:2] == (status, code) and word in got[2], (body, got)
    assert sorted(v.aliases) == ["prod"]  # nothing half-made
    assert v.create_alias({"aliasName": "_b-2", "versionId": "3"}, 0.0).weights == {}
    # a version an alias points at (main or canary) cannot be deleted
    for version_id in ("1", "2"):
        status, code, message = _refused(v.delete_version, version_id)
        assert (status, code) == (400, "InvalidArgument") and "prod" in message
    # UpdateAlias: moving the main version onto the canary one is refused unless weights change
    assert _refused(v.update_alias, "prod", {"versionId": "2"}, 0.0)[1] \
        == "AdditionalVersionContainsMajorVersion"
    alias, before = v.update_alias("prod", {"versionId": "2", "additionalVersionWeight": {}},
                                   9.0)
    assert (alias.version_id, alias.weights, alias.modified, before) == ("2", {}, 9.0, "1")
    v.delete_version("1")  # free now
    assert _refused(v.alias, "nope")[:2] == (404, "AliasNotFound")
    assert _refused(v.resolve, "nope", 0.5)[1] == "AliasNotFound"
    assert _refused(v.resolve, "7", 0.5)[1] == "VersionNotFound"
    assert [a.name for a in v.list_aliases(prefix="p", limit=None, next_token=None)[0]] \
        == ["prod"]


def test_a_canary_weight_takes_its_share_of_the_draws():
    alias = Alias("prod", "1", weights={"2": 0.3})
    rng = random.Random(20)
    n = 10_000
    picks = [alias.pick(rng.random()) for _ in range(n)]
    assert set(picks) == {"1", "2"}
    assert abs(picks.count("2") - 0.3 * n) <= _binomial_bound(n, 0.3)
    assert Alias("a", "1", weights={"2": 0.0}).pick(0.0) == "1"
    assert Alias("a", "1", weights={"2": 1.0}).pick(0.999) == "2"


def test_a_versions_scheduler_key_names_its_function_and_version_and_never_a_function():
    assert unit_key("fn", LATEST) == "fn" and split_key("fn") == ("fn", LATEST)
    assert split_key(unit_key("fn", "12")) == ("fn", "12")
    with pytest.raises(Exception, match="functionName"):  # so no function is named like a key
        function_spec_from_dict({"functionName": unit_key("fn", "1")})


def test_the_served_version_reaches_the_record():
    assert parse_headers({H_FC_VERSION: "2"})["version_id"] == "2"


# ---- the harness through the real SDK ------------------------------------------------------
fc = pytest.importorskip("alibabacloud_fc20230330.client")
from alibabacloud_fc20230330 import models as m  # noqa: E402
from alibabacloud_tea_util.models import RuntimeOptions  # noqa: E402
from sdk_utils import CreateInput, fc_code  # noqa: E402
from sdk_utils import sdk as sdk_for  # noqa: E402

from fcbench.targets.fc import FcTarget  # noqa: E402


@pytest.fixture
def harness(tmp_path):
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        h.harness.platform.routing_rng.seed(7)  # a reproducible canary split
        yield h


def _create(client, name: str, ms: int, **harness):
    body = CreateInput(harness={"idleTimeout": 60, **harness}, function_name=name,
                       runtime="custom-container",
                       environment_variables={**SLEEP_ENV, "FCBENCH_SLEEP_MS": str(ms)})
    return client.create_function(m.CreateFunctionRequest(body=body)).body


def _set_ms(client, name: str, ms: int):
    client.update_function(name, m.UpdateFunctionRequest(body=m.UpdateFunctionInput(
        environment_variables={**SLEEP_ENV, "FCBENCH_SLEEP_MS": str(ms)})))


def _publish(client, name: str, description: str = ""):
    return client.publish_function_version(name, m.PublishFunctionVersionRequest(
        body=m.PublishVersionInput(description=description))).body


def _call(client, name: str, qualifier: str | None = None) -> tuple[dict, dict]:
    resp = client.invoke_function_with_options(
        name, m.InvokeFunctionRequest(body=b'{"id": 1}', qualifier=qualifier),
        m.InvokeFunctionHeaders(), RuntimeOptions())
    return resp.headers, json.loads(resp.body.read())


def _listed(client, name: str, qualifier: str | None = None):
    return client.list_instances(name, m.ListInstancesRequest(qualifier=qualifier)).body.instances


@pytest.mark.slow
def test_versions_keep_their_config_and_instances_and_an_alias_splits_by_weight(harness):
    client = sdk_for(harness.url)
    _create(client, "ver", 1)
    v1 = _publish(client, "ver", "one")
    assert (v1.version_id, v1.description) == ("1", "one") and v1.created_time \
        and v1.last_modified_time
    _set_ms(client, "ver", 2)
    assert _publish(client, "ver").version_id == "2"
    _set_ms(client, "ver", 3)  # LATEST moves on; the versions do not

    served = {}
    for qualifier, ms, version in (("1", 1, "1"), ("2", 2, "2"), ("LATEST", 3, "LATEST"),
                                   (None, 3, "LATEST")):
        headers, out = _call(client, "ver", qualifier)
        assert (out["slept_ms"], headers[H_FC_VERSION]) == (ms, version), qualifier
        served.setdefault(version, set()).add(headers["x-fc-instance-id"])
    assert all(len(ids) == 1 for ids in served.values())  # warm: the same instance each time
    assert len(set.union(*served.values())) == 3  # ...and one per version
    listed = _listed(client, "ver")
    assert sorted((i.version_id, i.qualifier) for i in listed) == [
        ("0", "LATEST"), ("1", "1"), ("2", "2")]
    assert [i.instance_id for i in _listed(client, "ver", "1")] == list(served["1"])
    view = instances(harness.url)
    assert {(i["function"], i["version_id"]) for i in view} == {
        ("ver", "LATEST"), ("ver", "1"), ("ver", "2")}

    # a version's config is frozen: GetFunction?qualifier= shows it, UpdateFunction leaves it
    got = client.get_function("ver", m.GetFunctionRequest(qualifier="1")).body
    assert got.environment_variables["FCBENCH_SLEEP_MS"] == "1" and got.function_name == "ver"
    assert client.get_function("ver", m.GetFunctionRequest()).body \
        .environment_variables["FCBENCH_SLEEP_MS"] == "3"
    _set_ms(client, "ver", 4)
    headers, out = _call(client, "ver", "1")
    assert out["slept_ms"] == 1 and headers["x-fc-instance-id"] in served["1"]
    assert _call(client, "ver")[1]["slept_ms"] == 4

    page = client.list_function_versions("ver", m.ListFunctionVersionsRequest(limit=1)).body
    assert ([v.version_id for v in page.versions], page.next_token, page.direction) \
        == (["2"], "1", "BACKWARD")
    page = client.list_function_versions("ver", m.ListFunctionVersionsRequest(
        direction="FORWARD")).body
    assert [v.version_id for v in page.versions] == ["1", "2"] and page.next_token is None

    # an alias: v1 with 30 % to v2
    alias = client.create_alias("ver", m.CreateAliasRequest(body=m.CreateAliasInput(
        alias_name="prod", version_id="1", description="canary",
        additional_version_weight={"2": 0.3}))).body
    assert (alias.alias_name, alias.version_id, alias.additional_version_weight,
            alias.description) == ("prod", "1", {"2": 0.3}, "canary")
    assert alias.created_time and alias.last_modified_time
    got = client.get_alias("ver", "prod").body
    assert (got.version_id, got.additional_version_weight) == ("1", {"2": 0.3})
    assert [a.alias_name for a in client.list_aliases(
        "ver", m.ListAliasesRequest(prefix="pr")).body.aliases] == ["prod"]
    assert client.get_function("ver", m.GetFunctionRequest(qualifier="prod")).body \
        .environment_variables["FCBENCH_SLEEP_MS"] == "1"  # the main version's config
    n, counts = 300, {"1": 0, "2": 0}
    for _ in range(n):
        headers, out = _call(client, "ver", "prod")
        counts[headers[H_FC_VERSION]] += 1
        assert out["slept_ms"] == int(headers[H_FC_VERSION])  # that version's config served
    assert counts["1"] + counts["2"] == n
    assert abs(counts["2"] - 0.3 * n) <= _binomial_bound(n, 0.3), counts
    # fcbench's own fc target records the version that served each request (requests.csv)
    with FcTarget("ver", endpoint=harness.url, qualifier="2") as target:
        record = target.invoke(b'{"id": 1}', "application/json")
    assert record.ok and dict(zip(ALL_COLUMNS, record.row()))["version_id"] == "2"

    # FC's refusals, parsed by the SDK
    code, status, _ = fc_code(client.create_alias, "ver", m.CreateAliasRequest(
        body=m.CreateAliasInput(alias_name="prod", version_id="2")))
    assert (code, status) == ("AliasAlreadyExists", 409)
    code, status, _ = fc_code(client.create_alias, "ver", m.CreateAliasRequest(
        body=m.CreateAliasInput(alias_name="next", version_id="9")))
    assert (code, status) == ("VersionNotFound", 404)
    code, status, msg = fc_code(client.create_alias, "ver", m.CreateAliasRequest(
        body=m.CreateAliasInput(alias_name="next", version_id="1",
                                additional_version_weight={"2": 2.0})))
    assert (code, status) == ("InvalidArgument", 400) and "additionalVersionWeight" in msg
    assert fc_code(client.get_alias, "ver", "nope")[:2] == ("AliasNotFound", 404)
    assert fc_code(_call, client, "ver", "nope")[:2] == ("AliasNotFound", 404)
    assert fc_code(_call, client, "ver", "9")[:2] == ("VersionNotFound", 404)
    code, status, msg = fc_code(client.delete_function_version, "ver", "2")
    assert (code, status) == ("InvalidArgument", 400) and "prod" in msg  # the canary's

    # UpdateAlias moves it: all of it to v2
    moved = client.update_alias("ver", "prod", m.UpdateAliasRequest(body=m.UpdateAliasInput(
        version_id="2", additional_version_weight={}))).body
    assert (moved.version_id, moved.additional_version_weight) == ("2", {})
    assert {_call(client, "ver", "prod")[0][H_FC_VERSION] for _ in range(20)} == {"2"}

    # v1 is free now: deleting it stops its instance; numbers are never reused
    client.delete_function_version("ver", "1")
    assert fc_code(_listed, client, "ver", "1")[:2] == ("VersionNotFound", 404)
    assert not served["1"] & {i.instance_id for i in _listed(client, "ver")}
    retired = [i for i in instances(harness.url, include_retired=True)
               if i["instance_id"] in served["1"]]
    assert [(i["function"], i["version_id"], i["state"]) for i in retired] == [
        ("ver", "1", "gone")]
    assert _publish(client, "ver").version_id == "3"
    client.delete_alias("ver", "prod")
    assert fc_code(client.get_alias, "ver", "prod")[:2] == ("AliasNotFound", 404)
    client.delete_function("ver")
    assert instances(harness.url) == []


@pytest.mark.slow
def test_a_provision_config_on_an_alias_keeps_its_versions_instances_and_follows_the_alias(
        harness):
    client = sdk_for(harness.url)
    _create(client, "kept", 1, idleTimeout=0.3, maxInstances=3)
    _publish(client, "kept")
    _set_ms(client, "kept", 2)
    _publish(client, "kept")
    client.create_alias("kept", m.CreateAliasRequest(body=m.CreateAliasInput(
        alias_name="live", version_id="1")))
    code, status, _ = fc_code(client.put_provision_config, "kept", m.PutProvisionConfigRequest(
        qualifier="1", body=m.PutProvisionConfigInput(default_target=1)))
    assert (code, status) == ("InvalidArgument", 400)  # FC: an alias or LATEST
    code, status, msg = fc_code(client.put_provision_config, "kept", m.PutProvisionConfigRequest(
        qualifier="live", body=m.PutProvisionConfigInput(default_target=4)))
    assert (code, status) == ("InvalidArgument", 400) and "maxInstances" in msg
    assert fc_code(client.put_provision_config, "kept", m.PutProvisionConfigRequest(
        qualifier="gone", body=m.PutProvisionConfigInput(default_target=1)))[0] \
        == "AliasNotFound"
    put = client.put_provision_config("kept", m.PutProvisionConfigRequest(
        qualifier="live", body=m.PutProvisionConfigInput(default_target=2))).body
    assert put.default_target == 2 and put.function_arn.endswith(":functions/kept/live")
    wait_for(lambda: client.get_provision_config("kept", m.GetProvisionConfigRequest(
        qualifier="live")).body.current == 2)
    assert fc_code(client.get_provision_config, "kept",
                 m.GetProvisionConfigRequest(qualifier="LATEST"))[0] == "ProvisionConfigNotFound"
    time.sleep(1.0)  # > idleTimeout: provisioned instances stay
    kept = _listed(client, "kept", "live")
    assert [(i.version_id, i.resource_type) for i in kept] == [("1", "Provisioned")] * 2
    assert {i.qualifier for i in kept} == {"live"}
    assert [i.version_id for i in _listed(client, "kept")] == ["1", "1"]  # no LATEST one
    headers, out = _call(client, "kept", "live")
    assert out["slept_ms"] == 1 and headers["x-fcbench-cold"] == "0"
    assert headers["x-fc-instance-id"] in {i.instance_id for i in kept}

    # the alias moves to v2: so do its provisioned instances; v1's idle out
    client.update_alias("kept", "live", m.UpdateAliasRequest(body=m.UpdateAliasInput(
        version_id="2")))
    wait_for(lambda: [i.version_id for i in _listed(client, "kept")] == ["2", "2"])
    wait_for(lambda: client.get_provision_config("kept", m.GetProvisionConfigRequest(
        qualifier="live")).body.current == 2)
    headers, out = _call(client, "kept", "live")
    assert (out["slept_ms"], headers[H_FC_VERSION], headers["x-fcbench-cold"]) == (2, "2", "0")

    client.delete_provision_config("kept", m.DeleteProvisionConfigRequest(qualifier="live"))
    assert fc_code(client.get_provision_config, "kept", m.GetProvisionConfigRequest(
        qualifier="live"))[0] == "ProvisionConfigNotFound"
    wait_for(lambda: _listed(client, "kept") == [])  # ordinary again: they idle out


@pytest.mark.slow
def test_an_http_trigger_routes_to_its_qualifier_and_update_trigger_changes_it_live(harness):
    client = sdk_for(harness.url)
    _create(client, "web", 1)
    _publish(client, "web")
    _set_ms(client, "web", 2)
    code, status, _ = fc_code(client.create_trigger, "web", m.CreateTriggerRequest(
        body=m.CreateTriggerInput(trigger_name="h", trigger_type="http", qualifier="7",
                                  trigger_config=json.dumps({"methods": ["POST"]}))))
    assert (code, status) == ("VersionNotFound", 404)
    trig = client.create_trigger("web", m.CreateTriggerRequest(body=m.CreateTriggerInput(
        trigger_name="h", trigger_type="http", qualifier="1", trigger_config=json.dumps(
            {"authType": "anonymous", "methods": ["POST"]})))).body
    url = trig.http_trigger.url_internet
    assert trig.qualifier == "1"
    status, headers, body = http("POST", url, {"id": 1}, signed=False)
    assert (status, json.loads(body)["slept_ms"], headers[H_FC_VERSION]) == (200, 1, "1")
    assert http("GET", url, signed=False)[0] == 405

    created = trig.created_time
    upd = client.update_trigger("web", "h", m.UpdateTriggerRequest(body=m.UpdateTriggerInput(
        qualifier="LATEST", description="now GET", trigger_config=json.dumps(
            {"authType": "anonymous", "methods": ["GET"]})))).body
    assert (upd.qualifier, upd.description, json.loads(upd.trigger_config)["methods"]) \
        == ("LATEST", "now GET", ["GET"])
    assert (upd.trigger_id, upd.created_time) == (trig.trigger_id, created)
    status, headers, _ = http("GET", url, signed=False)  # the instance's GET / (its info)
    assert (status, headers[H_FC_VERSION]) == (200, "LATEST")
    status, headers, body = http("POST", url, {"id": 1}, signed=False)
    assert (status, json.loads(body)["Code"], headers["allow"]) == (405, "MethodNotAllowed",
                                                                   "GET")
    # only what the body names changes: the qualifier stays LATEST
    again = client.update_trigger("web", "h", m.UpdateTriggerRequest(body=m.UpdateTriggerInput(
        description="only this", trigger_config=json.dumps({"methods": ["POST"]})))).body
    assert (again.qualifier, json.loads(again.trigger_config)["methods"]) == ("LATEST", ["POST"])
    status, headers, body = http("POST", url, {"id": 1}, signed=False)
    assert (status, json.loads(body)["slept_ms"], headers[H_FC_VERSION]) == (200, 2, "LATEST")
    for bad, code in (({"qualifier": "nope"}, "AliasNotFound"),
                      ({"trigger_config": '{"authType": "sometimes"}'}, "InvalidArgument")):
        assert fc_code(client.update_trigger, "web", "h", m.UpdateTriggerRequest(
            body=m.UpdateTriggerInput(**bad)))[0] == code
    assert fc_code(client.update_trigger, "web", "nope", m.UpdateTriggerRequest(
        body=m.UpdateTriggerInput(description="x")))[:2] == ("TriggerNotFound", 404)
    assert client.get_trigger("web", "h").body.description == "only this"
