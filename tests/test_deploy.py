"""`fcbench deploy`: API bodies against the SDK's own request models, the s.yaml round trip for
every shipped spec, Serverless Devs 1.x import, bad s.yaml errors, and a live deploy / update /
delete against the harness through the real FC SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from harness_utils import http

from fcbench.deploy.bodies import (
    HttpTrigger,
    deploy_plan,
    function_body,
    function_changes,
    harness_keys,
    provision_body,
    trigger_body,
    update_body,
)
from fcbench.deploy.serverless_devs import export_s_yaml, function_yaml, import_s_yaml
from fcbench.errors import SpecError
from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.spec import function_spec_from_dict, load_function_spec

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "workloads" / "functions").glob("*.yaml"))
FIXTURE_1X = Path(__file__).parent / "data" / "start-fc-gpu-1x.s.yaml"
FC_PROPS = {"region", "functionName", "description", "runtime", "cpu", "memorySize", "diskSize",
            "timeout", "instanceConcurrency", "gpuConfig", "customContainerConfig",
            "instanceLifecycleConfig", "environmentVariables", "triggers", "provisionConfig"}


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcbench", "deploy", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env, check=False)


def rich_spec(tmp_path: Path):
    """A spec using every mapped field: provisioned instances, health check, lifecycle hooks,
    an FC pass-through key, a sample request file."""
    sample = tmp_path / "req.json"
    sample.write_text("{}")
    doc = {"functionName": "rich", "description": "all fields",
           "customContainerConfig": {"image": "reg.example/ns/rich:1", "port": 8080,
                                     "entrypoint": ["python3"], "command": ["app.py"],
                                     "healthCheckConfig": {"httpGetUrl": "/ready",
                                                           "periodSeconds": 2}},
           "gpuConfig": {"gpuMemorySize": 8192, "gpuType": "fc.gpu.ampere.1"},
           "memorySize": 16384, "cpu": 4, "diskSize": 10240, "instanceConcurrency": 4,
           "timeout": 300,
           "instanceLifecycleConfig": {"initializer": {"handler": "init", "timeout": 30},
                                       "preStop": {"handler": "stop", "timeout": 5}},
           "environmentVariables": {"A": "1", "HF_TOKEN": "hf_secret_value"},
           "role": "acs:ram::123:role/fc-role",
           "harness": {"idleTimeout": 7, "maxInstances": 3, "minInstances": 2,
                       "queue": {"size": 5, "timeout": 9},
                       "sampleRequest": {"file": str(sample)}}}
    return function_spec_from_dict(doc)


# ---- bodies against the SDK's request models -----------------------------------------------
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_bodies_are_what_the_sdk_models_send(path: Path, tmp_path: Path) -> None:
    from alibabacloud_fc20230330 import models as m

    for spec in (load_function_spec(path), rich_spec(tmp_path)):
        create = function_body(spec)
        assert m.CreateFunctionInput().from_map(create).to_map() == create
        update = update_body(spec)
        assert m.UpdateFunctionInput().from_map(update).to_map() == update
        assert "harness" not in create and "harness" not in update
        assert "functionName" not in update
    trigger = trigger_body(HttpTrigger(methods=("GET", "POST")))
    assert m.CreateTriggerInput().from_map(trigger).to_map() == trigger
    assert json.loads(trigger["triggerConfig"]) == {"authType": "anonymous",
                                                    "methods": ["GET", "POST"]}
    provision = provision_body(2)
    assert m.PutProvisionConfigInput().from_map(provision).to_map() == provision


def test_body_values_are_fc_typed(tmp_path: Path) -> None:
    body = function_body(rich_spec(tmp_path))
    # FC's integer fields take 300, not 300.0; the pass-through key goes along as given
    assert body["timeout"] == 300 and isinstance(body["timeout"], int)
    assert isinstance(body["instanceLifecycleConfig"]["initializer"]["timeout"], int)
    assert body["role"] == "acs:ram::123:role/fc-role"
    assert body["customContainerConfig"]["healthCheckConfig"]["httpGetUrl"] == "/ready"
    assert "minInstances" not in harness_keys(rich_spec(tmp_path))  # PutProvisionConfig's job


def _blocks(out: str) -> dict[str, dict | None]:
    """The dry run's printed calls: action -> JSON body (None when it has none)."""
    calls: dict[str, dict | None] = {}
    for block in out.split("\n\n")[1:]:
        head, _, rest = block.strip().partition("\n")
        if head:
            calls[head.split(":")[0]] = json.loads(rest) if rest else None
    return calls


@pytest.mark.slow
def test_dry_run_prints_the_exact_bodies_and_masks_secrets(tmp_path: Path) -> None:
    spec = rich_spec(tmp_path)
    path = tmp_path / "rich.yaml"
    path.write_text(function_yaml(spec, base_dir=tmp_path))
    res = cli(str(path), "--endpoint", "http://127.0.0.1:9", "--dry-run", "--trigger", "http",
              "--methods", "get,post")
    assert res.returncode == 0, res.stderr
    calls = _blocks(res.stdout)
    assert "hf_secret_value" not in res.stdout
    masked = dict(function_body(spec), environmentVariables={"A": "1", "HF_TOKEN": "***"})
    assert calls["CreateFunction"] == {**masked, "harness": harness_keys(spec)}
    assert calls["CreateTrigger"] == trigger_body(HttpTrigger(methods=("GET", "POST")))
    # minInstances 2 becomes the provision config when --provision is not given
    assert calls["PutProvisionConfig"] == provision_body(2)
    assert list(calls)[:3] == ["GetFunction", "CreateFunction", "UpdateFunction"]

    fc = cli(str(path), "--region", "cn-hangzhou", "--dry-run", "--provision", "0")
    assert fc.returncode == 0, fc.stderr
    fc_calls = _blocks(fc.stdout)
    assert fc_calls["CreateFunction"] == masked  # FC never gets the harness block
    assert "harness" not in fc.stdout.replace("the harness", "")
    assert fc_calls["PutProvisionConfig"] == provision_body(0)
    assert "CreateTrigger" not in fc_calls


def test_fc_deploy_needs_an_image_and_says_where() -> None:
    res = cli(str(ROOT / "workloads/functions/sleep.yaml"), "--region", "cn-hangzhou",
              "--dry-run")
    assert res.returncode == 2
    assert "sleep.yaml:" in res.stderr and "customContainerConfig.image" in res.stderr


def test_function_changes_field_by_field() -> None:
    current = {"timeout": 60.0, "cpu": 2, "handler": "index.handler",
               "customContainerConfig": {"image": "a:1", "port": 9000,
                                         "resolvedImageUri": "reg/a@sha256:x"},
               "environmentVariables": {"KEEP": "1", "GONE": "2", "API_KEY": "old"},
               "state": "Active"}
    wanted = {"timeout": 60, "cpu": 2, "handler": "index.handler", "description": "",
              "customContainerConfig": {"image": "a:2", "port": 9000},
              "environmentVariables": {"KEEP": "1", "API_KEY": "new"}}
    changes = {c.path: c for c in function_changes(current, wanted)}
    assert set(changes) == {"customContainerConfig.image", "environmentVariables.GONE",
                            "environmentVariables.API_KEY"}
    assert changes["environmentVariables.GONE"].new is None
    assert changes["customContainerConfig.image"].render() == \
        'customContainerConfig.image: "a:1" -> "a:2"'
    assert "new" not in changes["environmentVariables.API_KEY"].render()  # masked
    assert function_changes(current, {"timeout": 60, "cpu": 2.0}) == []


# ---- s.yaml 3.x round trip -----------------------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_s_yaml_round_trip_every_shipped_spec(path: Path, tmp_path: Path) -> None:
    spec = load_function_spec(path)
    out = tmp_path / "sub" / "s.yaml"
    out.parent.mkdir()
    out.write_text(export_s_yaml(spec, region="cn-beijing", base_dir=out.parent))
    doc = yaml.safe_load(out.read_text())
    assert doc["edition"] == "3.0.0"
    resource = doc["resources"][spec.name]
    assert resource["component"] == "fc3"
    props = resource["props"]
    assert set(props) <= FC_PROPS
    assert props["region"] == "cn-beijing" and props["runtime"] == "custom-container"
    assert props["functionName"] == spec.name
    assert props["triggers"][0]["triggerType"] == "http"
    assert props["triggers"][0]["triggerConfig"]["authType"] == "anonymous"
    sample = spec.harness.sample_request
    if sample is not None and sample.file:  # relative to the s.yaml's own folder
        block = doc["vars"]["x-fcbench"][spec.name]["harness"]
        assert not Path(block["sampleRequest"]["file"]).is_absolute()

    back = import_s_yaml(out)
    assert back.spec == spec
    assert back.region == "cn-beijing" and back.dropped == []
    assert [t.auth_type for t in back.triggers] == ["anonymous"]

    again = tmp_path / "function.yaml"
    again.write_text(function_yaml(back.spec, base_dir=tmp_path))
    assert load_function_spec(again) == spec


def test_s_yaml_round_trip_keeps_every_field(tmp_path: Path) -> None:
    spec = rich_spec(tmp_path)
    out = tmp_path / "s.yaml"
    out.write_text(export_s_yaml(spec, trigger=None, base_dir=tmp_path))
    props = yaml.safe_load(out.read_text())["resources"]["rich"]["props"]
    assert props["provisionConfig"] == {"defaultTarget": 2}
    assert "triggers" not in props and props["role"] == "acs:ram::123:role/fc-role"
    back = import_s_yaml(out)
    assert back.spec == spec and back.provision == 2


@pytest.mark.slow
def test_cli_export_then_import(tmp_path: Path) -> None:
    src = ROOT / "workloads/functions/mobilenet-v2-quickstart.yaml"
    s_yaml, fn = tmp_path / "s.yaml", tmp_path / "out" / "fn.yaml"
    fn.parent.mkdir()
    res = cli("export", str(src), "--format", "s.yaml", "-o", str(s_yaml), "--region",
              "cn-shanghai", "--auth-type", "function", "--methods", "POST")
    assert res.returncode == 0, res.stderr
    props = yaml.safe_load(s_yaml.read_text())["resources"]["mobilenet-v2"]["props"]
    assert props["triggers"][0]["triggerConfig"] == {"authType": "function",
                                                     "methods": ["POST"]}
    res = cli("import", str(s_yaml), "-o", str(fn))
    assert res.returncode == 0, res.stderr
    assert "--auth-type function --methods POST" in res.stderr
    assert load_function_spec(fn) == load_function_spec(src)


# ---- Serverless Devs 1.x --------------------------------------------------------------------
@pytest.mark.slow
def test_import_start_fc_gpu_1x(tmp_path: Path) -> None:
    got = import_s_yaml(FIXTURE_1X)
    spec = got.spec
    assert got.edition == "1.0.0" and got.resource == "fc-gpu-ai" and got.region == "cn-shenzhen"
    assert spec.name == "nvidia-smi" and spec.timeout == 300 and spec.memory_size == 8192
    assert spec.custom_container_config.port == 9000
    assert spec.custom_container_config.image.endswith("fc_api_utils_nvidia_smi:latest")
    assert (spec.gpu_config.gpu_memory_size, spec.gpu_config.gpu_type) == (4096, "fc.gpu.tesla.1")
    assert [(t.name, t.auth_type, t.methods) for t in got.triggers] == \
        [("httpTrigger", "anonymous", ("GET", "POST"))]
    dropped = "\n".join(got.dropped)
    assert "props.service: service fc-gpu-demo" in dropped
    assert "props.function.codeUri" in dropped and "fc-gpu-ai.actions" in dropped
    assert any("caPort -> customContainerConfig.port" in m for m in got.mapped)

    out = tmp_path / "nvidia-smi.yaml"
    res = cli("import", str(FIXTURE_1X), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "dropped services.fc-gpu-ai.props.function.codeUri" in res.stderr
    assert "Dropped" in out.read_text().split("functionName")[0]  # noted in the file too
    assert load_function_spec(out) == spec


def test_import_1x_container_command_and_hooks(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "edition": "1.0.0", "name": "app", "access": "default",
        "services": {"gpu": {"component": "devsapp/fc", "props": {
            "region": "cn-hangzhou",
            "service": {"name": "svc", "role": "acs:ram::1:role/r", "logConfig": "auto"},
            "function": {
                "name": "sd", "runtime": "custom-container", "caPort": 8000,
                "instanceType": "fc.gpu.ampere.1", "gpuMemorySize": 16384,
                "instanceConcurrency": 2, "initializer": "init", "initializationTimeout": 45,
                "instanceLifecycleConfig": {"preStop": {"handler": "stop", "timeout": 3},
                                            "preFreeze": {"handler": "f", "timeout": 3}},
                "customContainerConfig": {"image": "reg/sd:1", "command": '["python3"]',
                                          "args": '["-m", "server"]',
                                          "accelerationType": "Default",
                                          "webServerMode": True}}}}}}))
    got = import_s_yaml(path)
    c = got.spec.custom_container_config
    assert (c.entrypoint, c.command, c.port) == (["python3"], ["-m", "server"], 8000)
    assert got.spec.gpu_config.gpu_type == "fc.gpu.ampere.1"
    life = got.spec.instance_lifecycle_config
    assert (life.initializer.handler, life.initializer.timeout) == ("init", 45)
    assert (life.pre_stop.handler, life.pre_stop.timeout) == ("stop", 3)
    assert got.spec.to_fc()["role"] == "acs:ram::1:role/r"
    dropped = "\n".join(got.dropped)
    assert "preFreeze" in dropped and "webServerMode" in dropped and "logConfig" in dropped
    assert got.triggers == []


# ---- bad s.yaml: file:line:key, exit 2 -------------------------------------------------------
def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.slow
@pytest.mark.parametrize("edit, needle, key", [
    (("instanceConcurrency: 1", "instanceConcurrency: lots"), "instanceConcurrency: lots",
     "resources.mobilenet-v2.props.instanceConcurrency"),
    (("gpuMemorySize: 4096", "gpuMemorySize: 4000"), "gpuMemorySize: 4000",
     "resources.mobilenet-v2.props.gpuConfig.gpuMemorySize"),
    (("functionName: mobilenet-v2", "functionName: '{{ functionName }}'"),
     "functionName: '{{", "resources.mobilenet-v2.props.functionName"),
    (("region: cn-hangzhou", "region: ${vars.nowhere}"), "region: ${vars",
     "resources.mobilenet-v2.props.region"),
    (("maxInstances: 4", "maxInstances: none"), "maxInstances: none",
     "vars.x-fcbench.mobilenet-v2.harness.maxInstances"),
])
def test_bad_s_yaml_names_file_line_key(tmp_path: Path, edit: tuple[str, str], needle: str,
                                        key: str) -> None:
    spec = load_function_spec(ROOT / "workloads/functions/mobilenet-v2.yaml")
    text = export_s_yaml(spec, base_dir=tmp_path)
    assert edit[0] in text
    text = text.replace(edit[0], edit[1])
    path = tmp_path / "s.yaml"
    path.write_text(text)
    line = _line_of(text, needle)
    with pytest.raises(SpecError) as info:
        import_s_yaml(path)
    assert (info.value.file, info.value.line, info.value.path) == (str(path), line, key)
    res = cli("import", str(path))
    assert res.returncode == 2
    assert f"{path}:{line}: {key}:" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_bad_s_yaml_shapes(tmp_path: Path) -> None:
    cases = {
        "no-edition": ("name: x\nresources: {}\n", "edition"),
        "edition-2": ("edition: 2.0.0\n", "is not one fcbench reads"),
        "no-fc3": (("edition: 3.0.0\nresources:\n  web:\n    component: fc3-domain\n"
                    "    props: {}\n"), "no resource with component fc3"),
        "two": (("edition: 3.0.0\nresources:\n  a: {component: fc3, props: {}}\n"
                 "  b: {component: fc3, props: {}}\n"), "--resource NAME"),
        "not-yaml": ("edition: 3.0.0\nresources: [\n", "invalid YAML"),
        "1x-runtime": (("edition: 1.0.0\nservices:\n  s:\n    component: fc\n    props:\n"
                        "      function: {name: f, runtime: python3}\n"), "runtime"),
    }
    for name, (text, words) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        res = cli("import", str(path))
        assert res.returncode == 2, (name, res.stderr)
        assert str(path) in res.stderr and words in res.stderr, (name, res.stderr)


# ---- live: the CLI and the real SDK against the harness --------------------------------------
def _missing_routes(base: str) -> list[str]:
    """Management routes the harness does not serve yet: a served route answers 404
    FunctionNotFound for an unknown function, a missing one the gateway's NotFound /
    MethodNotAllowed."""
    probes = {"UpdateFunction": ("PUT", "", {}), "ListTriggers": ("GET", "/triggers", None),
              "CreateTrigger": ("POST", "/triggers", {}),
              "PutProvisionConfig": ("PUT", "/provision-config", {"defaultTarget": 0}),
              "GetProvisionConfig": ("GET", "/provision-config", None)}
    missing = []
    for action, (method, tail, body) in probes.items():
        status, _, raw = http(method, f"{base}/2023-03-30/functions/no-such-fn{tail}", body)
        code = json.loads(raw or b"{}").get("Code")
        if status in (404, 405) and code in ("NotFound", "MethodNotAllowed"):
            missing.append(action)
    return missing


def _sdk(base: str):
    from alibabacloud_fc20230330 import models as m

    from sdk_utils import sdk

    return sdk(base), m


@pytest.mark.slow
def test_live_deploy_update_delete_against_the_harness(tmp_path: Path) -> None:
    spec_path = tmp_path / "fn.yaml"
    doc = {"functionName": "deployed", "instanceConcurrency": 2, "timeout": 60,
           "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "5",
                                    "FCBENCH_STARTUP_MS": "50", "SOME_SECRET": "do-not-print"},
           "harness": {"idleTimeout": 42, "maxInstances": 3}}
    spec_path.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        missing = _missing_routes(h.url)
        if missing:
            pytest.skip("the harness does not serve " + ", ".join(missing) + " yet (404/405 "
                        "on the route); re-run once the FC 3.0 management API lands")
        client, m = _sdk(h.url)
        from darabonba.runtime import RuntimeOptions
        rt = RuntimeOptions()

        res = cli(str(spec_path), "--endpoint", h.url, "--trigger", "http", "--methods",
                  "GET,POST", "--provision", "1", env=env)
        assert res.returncode == 0, res.stderr + res.stdout
        assert "created function deployed" in res.stdout
        assert "do-not-print" not in res.stdout + res.stderr
        url = res.stdout.split("trigger URL: ")[1].split()[0]

        got = client.get_function_with_options("deployed", m.GetFunctionRequest(), {}, rt).body
        assert (got.timeout, got.instance_concurrency) == (60, 2)
        # the harness block reached the harness (its own GetFunction JSON shows it)
        raw = json.loads(http("GET", f"{h.url}/2023-03-30/functions/deployed")[2])
        assert raw["harness"]["idleTimeout"] == 42 and raw["harness"]["maxInstances"] == 3
        triggers = client.list_triggers_with_options(
            "deployed", m.ListTriggersRequest(), {}, rt).body.triggers
        assert [t.trigger_name for t in triggers] == ["httpTrigger"]
        assert json.loads(triggers[0].trigger_config)["methods"] == ["GET", "POST"]
        prov = client.get_provision_config_with_options(
            "deployed", m.GetProvisionConfigRequest(qualifier="LATEST"), {}, rt).body
        assert prov.default_target == 1

        status, headers, body = http("POST", url + "/invoke", {"sleep_ms": 1})
        assert status == 200, body
        assert headers.get("x-fc-request-id")
        assert http("PUT", url + "/invoke", {})[0] == 405  # not one of the trigger's methods

        # an update: only what changed is listed, and the trigger is replaced
        doc["timeout"] = 120
        doc["environmentVariables"]["FCBENCH_SLEEP_MS"] = "7"
        spec_path.write_text(yaml.safe_dump(doc))
        res = cli(str(spec_path), "--endpoint", h.url, "--trigger", "http", "--auth-type",
                  "function", "--provision", "1", env=env)
        assert res.returncode == 0, res.stderr + res.stdout
        assert "timeout: 60 -> 120" in res.stdout
        assert 'environmentVariables.FCBENCH_SLEEP_MS: "5" -> "7"' in res.stdout
        assert "instanceConcurrency" not in res.stdout
        assert "provision config defaultTarget 1 unchanged" in res.stdout
        assert "created trigger httpTrigger (http, function" in res.stdout
        assert "do-not-print" not in res.stdout + res.stderr
        got = client.get_function_with_options("deployed", m.GetFunctionRequest(), {}, rt).body
        assert got.timeout == 120
        # authType function: unsigned is 401, signed with the harness's key goes through
        assert http("POST", url + "/invoke", {}, signed=False)[0] == 401
        assert http("POST", url + "/invoke", {"sleep_ms": 1})[0] == 200

        deadline = time.monotonic() + 20
        while client.get_provision_config_with_options(
                "deployed", m.GetProvisionConfigRequest(qualifier="LATEST"), {},
                rt).body.current != 1:
            assert time.monotonic() < deadline, "the provisioned instance never became ready"
            time.sleep(0.2)

        res = cli("delete", "deployed", "--endpoint", h.url, env=env)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == ["deleted trigger httpTrigger",
                                           "deleted provision config",
                                           "deleted function deployed"]
        with pytest.raises(Exception) as info:
            client.get_function_with_options("deployed", m.GetFunctionRequest(), {}, rt)
        assert info.value.code == "FunctionNotFound"

        res = cli("delete", "deployed", "--endpoint", h.url, env=env)
        assert res.returncode == 1 and "FunctionNotFound" in res.stderr


@pytest.mark.slow
def test_deploy_to_a_harness_that_is_not_running(tmp_path: Path) -> None:
    from fcbench._net import free_port

    res = cli(str(ROOT / "workloads/functions/sleep.yaml"), "--endpoint",
              f"http://127.0.0.1:{free_port()}", "--timeout", "5")
    # no harness there has written its key: said before anything is sent
    assert res.returncode == 2
    assert "is a harness running there?" in res.stderr and "fcbench harness serve" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_fc_without_credentials_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD")}
    env["HOME"] = str(tmp_path)  # no ~/.alibabacloud/credentials either
    res = cli(str(ROOT / "workloads/functions/mobilenet-v2.yaml"), "--region", "cn-hangzhou",
              env=env)
    assert res.returncode == 2, res.stderr
    assert "credential" in res.stderr.lower() and "Traceback" not in res.stderr


def test_deploy_plan_toward_fc_never_holds_harness_keys(tmp_path: Path) -> None:
    for spec in [load_function_spec(p) for p in SHIPPED] + [rich_spec(tmp_path)]:
        for call in deploy_plan(spec, harness=False, trigger=HttpTrigger(), provision=1):
            assert call.harness is None
            assert "harness" not in json.dumps(call.wire_body() or {})


@pytest.mark.slow
def test_deploy_reads_an_s_yaml_with_its_trigger_and_provision(tmp_path: Path) -> None:
    spec = rich_spec(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(export_s_yaml(spec, trigger=HttpTrigger(auth_type="function",
                                                            methods=("POST",)),
                                  base_dir=tmp_path))
    res = cli(str(path), "--endpoint", "http://127.0.0.1:9", "--dry-run")
    assert res.returncode == 0, res.stderr
    calls = _blocks(res.stdout)
    assert calls["CreateTrigger"] == trigger_body(HttpTrigger(auth_type="function",
                                                              methods=("POST",)))
    assert calls["PutProvisionConfig"] == provision_body(2)
    assert calls["CreateFunction"]["harness"] == harness_keys(spec)
