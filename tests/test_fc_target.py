"""The `fc` target end to end, through the real FC SDK (alibabacloud-fc20230330) against the
harness: `fcbench run` / `invoke` / `coldstart profile` with fc:// and HTTP-trigger targets, FC's
request and instance ids in requests.csv, 429s recorded per request, cold starts forced by
UpdateFunction, and credentials from the default chain that never reach a results file."""

from __future__ import annotations

import csv
import http.client
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from fcbench.credentials import Credentials, resolve_credentials
from fcbench.errors import UsageError
from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.targets.config import target_from_url
from fcbench.signing import AccessKey, read_harness_key, sign, write_harness_key
from harness_utils import instances

fc = pytest.importorskip("alibabacloud_fc20230330.client")
from alibabacloud_fc20230330 import models as m  # noqa: E402
from sdk_utils import CreateInput, sdk  # noqa: E402

# Fake, but shaped like the real thing, so a leak would be found by the grep below.
SECRET_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tFakeKeyId7Qx9Zr2Mw4",
              "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "fAkEsEcReT0nLy4tEsTs9vXq2LmN8pRt",
              "ALIBABA_CLOUD_SECURITY_TOKEN": "CAIS-fake-sts-token-8hJ3kP0qWzX5"}
FILE_SECRET = ("LTAI5tFileKeyId3Vb8Nc1", "fIlEsEcReT7yU2iO9pA4sD6fG1hJ3kL5")


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any Alibaba Cloud variable, HOME at `home`, and
    no proxies (the SDK honours them; everything here is loopback)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ALIBABA_CLOUD_") and k.lower() not in ("http_proxy",
                                                                        "https_proxy")}
    return {**env, "HOME": str(home), **extra}


def create(url: str, name: str, *, sleep_ms: float = 20, startup_ms: float = 100,
           max_instances: int = 10, queue_size: int = 100, idle: float = 600) -> None:
    body = CreateInput(
        function_name=name, runtime="custom-container", instance_concurrency=1,
        environment_variables={"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": str(sleep_ms),
                               "FCBENCH_STARTUP_MS": str(startup_ms), "KEEP_ME": "yes"},
        harness={"runtime": "process", "idleTimeout": idle, "maxInstances": max_instances,
                 "queue": {"size": queue_size, "timeout": 30}})
    sdk(url).create_function(m.CreateFunctionRequest(body=body))


@pytest.fixture
def harness(tmp_path):
    with HarnessThread([], HarnessConfig(port=0, virtual_gpus="1x16GB",
                                         log_dir=tmp_path / "harness-logs")) as h:
        yield h


#: Where the workload's "FC" lives: a name that never resolves (RFC 2606 .invalid); the SDK
#: reaches it only through the Recorder, its HTTP proxy on 127.0.0.1.
FAKE_FC = "http://fc-stand-in.invalid"


class Recorder:
    """Stands in for Function Compute itself (no FC account here): an HTTP proxy on 127.0.0.1
    that the SDK is pointed at (``HTTP_PROXY``) for the endpoint `FAKE_FC`. It keeps the signing
    headers the SDK sent, so a test can see which credentials were used, then signs the call
    again with the harness's own key — as FC checks the caller's — and relays it there."""

    def __init__(self, upstream: str) -> None:
        netloc = upstream.removeprefix("http://")
        host, port = netloc.split(":")
        key = read_harness_key(netloc)
        self.auth: list[str] = []
        self.tokens: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.auth.append(self.headers.get("Authorization", ""))
                outer.tokens.append(self.headers.get("x-acs-security-token", ""))
                parts = urlsplit(self.path)  # a proxy gets the absolute URL
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length",
                                                "authorization", "proxy-connection")}
                headers.update(sign(key, self.command, target, netloc, body))
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                try:
                    conn.request(self.command, target, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                         "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def env(self) -> dict[str, str]:
        """What points the SDK at this stand-in."""
        return {"HTTP_PROXY": self.url, "http_proxy": self.url}

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def workload(tmp_path: Path, target: dict, *, rate: float = 8, duration: float = 2,
             name: str = "fcwl") -> Path:
    doc = {"name": name, "target": target, "request": {"body": {"x": 1}, "timeout": 30},
           "duration": duration, "seed": 5, "plan": {"kind": "poisson", "rate": rate},
           "output": str(tmp_path / "results")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "requests.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_dir_of(stdout: str) -> Path:
    line = next(x for x in stdout.splitlines() if x.startswith(("results:", "interrupted")))
    return Path(line.split()[-1])


def grep_tree(values: tuple[str, ...], *roots: Path) -> list[str]:
    """Files under `roots` holding any of `values` (bytes, so binary files count too)."""
    found = []
    for root in roots:
        assert any(p.is_file() for p in root.rglob("*")), f"nothing to search in {root}"
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path}: {v[:6]}…" for v in values if v.encode() in data]
    return found


# ---- target URLs ------------------------------------------------------------------------------

def test_target_urls_name_fc_regions_endpoints_and_http_triggers():
    t = target_from_url("fc://cn-hangzhou/sd?qualifier=prod")
    assert (t.kind, t.region, t.endpoint, t.function, t.qualifier) == \
        ("fc", "cn-hangzhou", None, "sd", "prod")
    t = target_from_url("fc://127.0.0.1:9080/f")
    assert (t.region, t.endpoint, t.function) == (None, "http://127.0.0.1:9080", "f")
    assert target_from_url("fc://fcv3.cn-shanghai.aliyuncs.com/f").endpoint == \
        "https://fcv3.cn-shanghai.aliyuncs.com"
    assert target_from_url("fc://127.0.0.1:9080", function="g").function == "g"
    t = target_from_url("https://f-abc.cn-hangzhou.fcapp.run/predict")
    assert (t.kind, t.url) == ("url", "https://f-abc.cn-hangzhou.fcapp.run/predict")
    for bad, words in (("fc://cn-hangzhou", "names no function"),
                       ("fc://cn-hangzhou/f?qualifer=1", "did you mean 'qualifier'"),
                       ("fc://ak:sk@cn-hangzhou/f", "credentials never go"),
                       ("mobilenet", "fc://REGION/FUNCTION")):
        with pytest.raises(UsageError, match=words):
            target_from_url(bad)


# ---- credentials ------------------------------------------------------------------------------

def test_the_default_chain_reads_env_then_the_credentials_file(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".alibabacloud").mkdir(parents=True)
    env = _clean_env(home, **SECRET_ENV)
    creds = resolve_credentials(environ=env)
    assert creds.source == "environment variables"
    assert (creds.access_key_id, creds.access_key_secret, creds.security_token) == \
        tuple(SECRET_ENV.values())
    assert not any(v in repr(creds) or v in str(creds) for v in SECRET_ENV.values())

    # the credentials file of the other Alibaba Cloud SDKs, a profile picked by name
    (home / ".alibabacloud" / "credentials").write_text(
        "[default]\ntype = access_key\naccess_key_id = LTAIdefault0000\n"
        "access_key_secret = default-secret-0000\n\n"
        f"[bench]\ntype = access_key\naccess_key_id = {FILE_SECRET[0]}\n"
        f"access_key_secret = {FILE_SECRET[1]}\n")
    creds = resolve_credentials(environ=_clean_env(home,
                                                                ALIBABA_CLOUD_PROFILE="bench"))
    assert (creds.access_key_id, creds.access_key_secret) == FILE_SECRET
    assert creds.source.endswith("credentials [bench]") and creds.security_token is None
    # the package's provider stays behind the SDK's credential client (refreshes STS tokens)
    assert creds.sdk_credential().get_credential().access_key_secret == FILE_SECRET[1]

    # half a pair in the environment is said, and nothing found toward FC is one message
    with pytest.raises(UsageError) as info:
        resolve_credentials(environ=_clean_env(
            tmp_path / "empty", ALIBABA_CLOUD_ACCESS_KEY_ID=SECRET_ENV[
                "ALIBABA_CLOUD_ACCESS_KEY_ID"]))
    text = str(info.value)
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not" in text
    assert SECRET_ENV["ALIBABA_CLOUD_ACCESS_KEY_ID"] not in text
    # toward the harness: its own key file, never the cloud keys of the environment
    monkeypatch.setenv("FCBENCH_KEYS_DIR", str(tmp_path / "keys"))
    with pytest.raises(UsageError, match="no key for a harness at 127.0.0.1:9"):
        resolve_credentials(harness="127.0.0.1:9", environ=env)
    key = AccessKey.generate()
    write_harness_key(key, "127.0.0.1", 9, "http://127.0.0.1:9")
    local = resolve_credentials(harness="localhost:9", environ=env)
    assert isinstance(local, Credentials) and "key file" in local.source
    assert (local.access_key_id, local.access_key_secret) == (key.access_key_id,
                                                              key.access_key_secret)


@pytest.mark.slow
def test_missing_credentials_is_one_message_and_exit_2(tmp_path, fcbench_run):
    empty = tmp_path / "empty-home"
    empty.mkdir()
    env = _clean_env(empty)
    wl = workload(tmp_path, {"kind": "fc", "region": "cn-hangzhou", "function": "f"})
    for args in (("invoke", "--target", "fc://cn-hangzhou/f"),
                 ("run", str(wl), "--no-progress"),
                 ("coldstart", "profile", "--target", "fc://cn-hangzhou/f", "--out",
                  str(tmp_path / "results"))):
        proc = fcbench_run(*args, env=env, timeout=60)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        err = proc.stderr
        assert "Traceback" not in err and err.count("no Alibaba Cloud credentials") == 1, err
        for where in ("environment variables", "ALIBABA_CLOUD_ACCESS_KEY_ID",
                      str(empty / ".alibabacloud" / "credentials.ini"),
                      str(empty / ".aliyun" / "config.json"),
                      # the ECS metadata service was not asked (it is off 127.0.0.0/8)
                      "ECS RAM role: ALIBABA_CLOUD_ECS_METADATA (the RAM role name) is not set",
                      "aliyun configure"):
            assert where in err, (where, err)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


# ---- fcbench run ------------------------------------------------------------------------------

@pytest.mark.slow
def test_run_with_an_fc_target_records_fc_ids_and_leaks_no_credential(
        tmp_path, harness, fcbench_run):
    create(harness.url, "f")
    # the workload's own target is a dead URL: --target must replace it
    wl = workload(tmp_path, {"kind": "url", "url": "http://127.0.0.1:9"})
    with Recorder(harness.url) as relay:
        proc = fcbench_run("run", str(wl), "--no-progress", "--target",
                           f"fc://cn-hangzhou/f?endpoint={FAKE_FC}",
                           # DEBUG=sdk: the SDK logs every request header it sends
                           env=_clean_env(tmp_path, DEBUG="sdk", **SECRET_ENV, **relay.env),
                           timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(proc.stdout)
    got = rows(run_dir)
    assert len(got) >= 5 and all(r["status"] == "200" for r in got)
    assert all(r["fc_request_id"] and r["instance_id"] for r in got)
    assert len({r["fc_request_id"] for r in got}) == len(got)  # one per request
    live = {i["instance_id"] for i in instances(harness.url, include_retired=True)}
    assert {r["instance_id"] for r in got} <= live
    recorded = yaml.safe_load((run_dir / "run.yaml").read_text())["workload"]["target"]
    assert recorded["kind"] == "fc" and recorded["function"] == "f"
    # the environment's credentials signed every call (the STS token rode along) ...
    key_id = SECRET_ENV["ALIBABA_CLOUD_ACCESS_KEY_ID"]
    assert relay.auth and all(f"Credential={key_id}" in a for a in relay.auth)
    assert set(relay.tokens) == {SECRET_ENV["ALIBABA_CLOUD_SECURITY_TOKEN"]}
    # ... and none of them is in any file of the run, the harness logs or the output
    values = tuple(SECRET_ENV.values())
    assert grep_tree(values, run_dir, tmp_path / "harness-logs") == []
    assert not any(v in proc.stdout + proc.stderr for v in values)


@pytest.mark.slow
def test_credentials_file_under_home_signs_and_stays_out_of_results(
        tmp_path, harness, fcbench_run):
    create(harness.url, "f")
    home = tmp_path / "home"
    (home / ".alibabacloud").mkdir(parents=True)
    (home / ".alibabacloud" / "credentials").write_text(
        f"[default]\ntype = access_key\naccess_key_id = {FILE_SECRET[0]}\n"
        f"access_key_secret = {FILE_SECRET[1]}\n")
    with Recorder(harness.url) as relay:
        wl = workload(tmp_path, {"kind": "fc", "endpoint": FAKE_FC, "function": "f"}, rate=5,
                      duration=1.5)
        proc = fcbench_run("run", str(wl), "--no-progress", env=_clean_env(home, **relay.env),
                           timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(proc.stdout)
    assert rows(run_dir) and all(r["fc_request_id"] for r in rows(run_dir))
    assert relay.auth and all(f"Credential={FILE_SECRET[0]}" in a for a in relay.auth)
    assert grep_tree(FILE_SECRET, run_dir, tmp_path / "harness-logs") == []
    assert not any(v in proc.stdout + proc.stderr for v in FILE_SECRET)


@pytest.mark.slow
def test_throttling_is_recorded_per_request_and_the_run_goes_on(tmp_path, harness,
                                                                fcbench_run):
    create(harness.url, "one", sleep_ms=400, max_instances=1, queue_size=0)
    wl = workload(tmp_path, {"kind": "fc", "endpoint": harness.url, "function": "one"},
                  rate=15, duration=2)
    proc = fcbench_run("run", str(wl), "--no-progress", env=_clean_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(proc.stdout)
    got = rows(run_dir)
    throttled = [r for r in got if r["status"] == "429"]
    ok = [r for r in got if r["status"] == "200"]
    assert ok and len(throttled) >= 5, [(r["status"], r["error"]) for r in got]
    assert {r["error"] for r in throttled} == {"ResourceThrottled"}
    assert {r["outcome"] for r in throttled} == {"throttled"}
    assert all(r["fc_request_id"] for r in throttled)  # FC's RequestId from the error body
    assert {r["instance_id"] for r in ok} == {"i-one-1"}  # maxInstances 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["count"] == len(got) and summary["errors_by_status"]["429"] == len(throttled)


@pytest.mark.slow
def test_http_trigger_url_target_records_fc_ids(tmp_path, harness, fcbench_run):
    create(harness.url, "t")
    trig = sdk(harness.url).create_trigger("t", m.CreateTriggerRequest(
        body=m.CreateTriggerInput(trigger_name="http", trigger_type="http",
                                  trigger_config=json.dumps({"authType": "anonymous",
                                                             "methods": ["POST"]})))).body
    url = trig.http_trigger.url_internet + "/predict"
    wl = workload(tmp_path, {"kind": "url", "url": "http://127.0.0.1:9"}, rate=5, duration=1.5)
    proc = fcbench_run("run", str(wl), "--no-progress", "--target", url,
                       env=_clean_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = rows(run_dir_of(proc.stdout))
    assert got and all(r["status"] == "200" and r["fc_request_id"] and
                       r["instance_id"].startswith("i-t-") for r in got)

    one = fcbench_run("invoke", "--target", f"fc://{harness.url.removeprefix('http://')}/t",
                      "--data", "{}", env=_clean_env(tmp_path), timeout=60)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("status 200") and " instance i-t-" in one.stdout
    assert "request -" not in one.stdout and " request " in one.stdout


# ---- forced cold starts -----------------------------------------------------------------------

@pytest.mark.slow
def test_coldstart_profile_with_an_fc_target_updates_the_function_each_time(
        tmp_path, harness, fcbench_run):
    create(harness.url, "cold", startup_ms=150, idle=600)  # nothing would idle out by itself
    proc = fcbench_run("coldstart", "profile", "--target",
                       f"fc://{harness.url.removeprefix('http://')}/cold", "--repeats", "3",
                       "--warmup", "1", "--data", "{}", "--out", str(tmp_path / "results"),
                       env=_clean_env(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(proc.stdout)
    with open(run_dir / "phases.csv", newline="") as f:
        samples = list(csv.DictReader(f))
    assert [s["kind"] for s in samples] == ["warmup", "ok", "ok", "ok"]
    ids = [s["instance_id"] for s in samples]
    assert len(set(ids)) == 4  # every profiled request started a new instance
    # in-instance phases came from the headers (FC is a black box), each start took the delay
    assert all(float(s["model_load_ms"]) >= 140 for s in samples), samples
    started = {i["instance_id"]: i for i in instances(harness.url, include_retired=True)}
    assert set(ids) <= set(started) and len(started) == 4
    run = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert run["cold_start_method"] == "update" and run["force"] == "target"
    # the update kept every other variable and left its fresh token behind
    env = sdk(harness.url).get_function("cold", m.GetFunctionRequest()).body \
        .environment_variables
    assert env["KEEP_ME"] == "yes" and env["FCBENCH_MODEL"] == "sleep"
    assert len(env["FCBENCH_FORCE_COLD"]) == 32


def test_force_cold_refuses_a_published_version(harness):
    from fcbench.targets.fc import FcTarget

    create(harness.url, "v")
    with FcTarget("v", endpoint=harness.url, qualifier="prod") as target:
        assert target.cold_start_method.value == "none"
        with pytest.raises(UsageError, match="published version or alias"):
            target.force_cold()
    with FcTarget("missing", endpoint=harness.url) as target:
        from fcbench.errors import FcApiError

        with pytest.raises(FcApiError) as info:
            target.force_cold()
        assert info.value.code == "FunctionNotFound" and info.value.request_id


@pytest.mark.slow
def test_sweep_against_an_fc_target_starts_every_level_from_zero(tmp_path, harness,
                                                                  fcbench_run):
    """`coldstart sweep --target fc://...`: each level runs through the SDK against the deployed
    function, after an UpdateFunction that retires every instance, so each level starts cold
    although nothing would idle out on its own (idle 600 s)."""
    create(harness.url, "swept", sleep_ms=100, startup_ms=150, idle=600)
    spec = tmp_path / "swept.yaml"
    spec.write_text("functionName: swept\ntimeout: 30\nharness:\n  idleTimeout: 1\n"
                    "  sampleRequest: {json: {}}\n")
    target = f"fc://{harness.url.removeprefix('http://')}/swept"
    proc = fcbench_run("coldstart", "sweep", str(spec), "--target", target, "--concurrency",
                       "1,2", "--duration", "3", "--service-ms", "100", "--out",
                       str(tmp_path / "out"), env=_clean_env(tmp_path), timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [folder] = list((tmp_path / "out").iterdir())
    from fcbench.coldstart.sweep import read_sweep_csv

    levels = read_sweep_csv(folder / "sweep.csv")
    assert [lv.level for lv in levels] == [1, 2]
    for lv in levels:
        assert lv.p_cold_from_zero > 0, lv  # the level began with no instance
        level_rows = rows(folder / lv.run_dir)
        assert level_rows and all(r["fc_request_id"] for r in level_rows)
    # a new set of instances per level: none served two levels
    served = [{r["instance_id"] for r in rows(folder / lv.run_dir)} for lv in levels]
    assert not served[0] & served[1]
    assert yaml.safe_load((folder / "run.yaml").read_text())["target"]["kind"] == "fc"
    proc = fcbench_run("coldstart", "sweep", str(spec), "--target", target, "--vary",
                       "instance-concurrency", "--concurrency", "1,2", "--service-ms", "100",
                       "--out", str(tmp_path / "bad"), env=_clean_env(tmp_path), timeout=60)
    assert proc.returncode == 2 and "only the load can vary" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_run_against_fc_is_priced_from_its_requests_busy_time(tmp_path, harness, fcbench_run):
    """An fc target meters nothing (no instances.csv): `fcbench cost RUN_DIR --gpu-mem 4` prices
    each instance's busy time as its requests saw it. With instanceConcurrency 1 no two requests
    of an instance overlap, so the hand sum is each request's end less its start (or its
    instance's ready time, for the one that waited for the start)."""
    create(harness.url, "billed", sleep_ms=100, startup_ms=100)
    wl = workload(tmp_path, {"kind": "fc", "endpoint": harness.url, "function": "billed"},
                  rate=4, duration=3)
    proc = fcbench_run("run", str(wl), "--no-progress", env=_clean_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(proc.stdout)
    assert not (run_dir / "instances.csv").exists()
    got = [r for r in rows(run_dir) if r["status"] == "200"]
    busy = sum(float(r["end_ts"]) - max(float(r["start_ts"]), float(r["ready_ts"] or 0))
               for r in got)
    span = json.loads((run_dir / "summary.json").read_text())["planned_duration_s"]
    cost = fcbench_run("cost", str(run_dir), "--gpu-mem", "4", timeout=60)
    assert cost.returncode == 0, cost.stderr
    assert "meters nothing" in cost.stdout
    assert f"{4 * busy * 0.0007 * 86400 / span:.2f} CNY" in cost.stdout
    plain = fcbench_run("cost", str(run_dir), timeout=60)
    # no GPU spec recorded for an fc run: refused, saying what to pass, never priced at 0
    assert plain.returncode == 2 and "--gpu-mem GB" in plain.stderr
