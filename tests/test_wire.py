"""Wire safety of the harness: every answer reaches its own caller, whatever the caller or the
instance does on the wire (RFC 9110/9112), and the gateway's own errors are FC-shaped.

Real gateway, real instance processes, real sockets on 127.0.0.1. The callers are written with
raw sockets and the standard library's `http.client` (not fcbench's own client), so a framing
mistake in fcbench cannot hide behind the same mistake on the other side.
"""

from __future__ import annotations

import http.client as httpc  # `http` is the harness_utils helper
import json
import os
import random
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fcbench.harness.gateway import MAX_SYNC_PAYLOAD_BYTES
from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.spec import function_spec_from_dict
from harness_utils import events, http, instances, invoke, signed_headers, sleep_spec

SECRET_ID = "LTAI-fcbench-test-not-a-real-key"
SECRET = "fcbench-test-secret-value-0123456789"


def wire_spec(name: str = "rude", timeout: float = 1.5):
    """A function served by tests/wire_instance.py (raw HTTP, awkward on purpose)."""
    script = str(Path(__file__).with_name("wire_instance.py"))
    return function_spec_from_dict({
        "functionName": name, "timeout": timeout, "instanceConcurrency": 8,
        "harness": {"runtime": "process", "command": [sys.executable, script],
                    "idleTimeout": 600, "maxInstances": 2}})


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    specs = [sleep_spec("sleep", concurrency=4, max_instances=3), wire_spec()]
    config = HarnessConfig(port=0, log_dir=tmp_path_factory.mktemp("logs"))
    with HarnessThread(specs, config) as h:
        for name in ("rude", "sleep"):  # /http/{name}/... open to unsigned callers, as on FC
            assert open_trigger(h.url, name) == 200
        yield h


def open_trigger(url: str, function: str) -> int:
    """Give `function` an anonymous HTTP trigger taking every method (CreateTrigger)."""
    config = json.dumps({"authType": "anonymous", "methods": [
        "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]})
    return http("POST", f"{url}/2023-03-30/functions/{function}/triggers", {
        "triggerName": "open", "triggerType": "http", "triggerConfig": config})[0]


def _addr(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _read(sock: socket.socket, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One response, parsed by the standard library (which skips interim 100s)."""
    resp = httpc.HTTPResponse(sock, method=method)
    resp.begin()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def _head(method: str, path: str, headers: dict[str, str], host: str = "127.0.0.1") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _body(tag: str, sleep_ms: float) -> bytes:
    # over 1 KB, the size at which curl starts sending Expect: 100-continue
    return json.dumps({"id": tag, "sleep_ms": sleep_ms, "pad": "p" * 1500}).encode()


INVOKE = "/2023-03-30/functions/sleep/invocations"


def _call(url: str, kind: str, tag: str, sleep_ms: float) -> dict:
    """One caller of a given kind; returns what it saw (a time-out is an answer too)."""
    try:
        return _call_once(url, kind, tag, sleep_ms)
    except (socket.timeout, TimeoutError):
        return {"status": "client-timeout"}


def _call_once(url: str, kind: str, tag: str, sleep_ms: float) -> dict:
    host, port = _addr(url)
    body = _body(tag, sleep_ms)
    json_ct = {"Content-Type": "application/json", **signed_headers("POST", url + INVOKE, body)}
    if kind in ("plain", "short-timeout"):
        conn = httpc.HTTPConnection(host, port, timeout=0.3 if kind == "short-timeout"
                                          else 20)
        try:
            conn.request("POST", INVOKE, body=body, headers=json_ct)
            resp = conn.getresponse()
            return {"status": resp.status, "headers": dict(resp.getheaders()),
                    "body": resp.read()}
        finally:
            conn.close()
    if kind == "chunked":
        conn = httpc.HTTPConnection(host, port, timeout=20)
        try:
            parts = iter([body[:700], body[700:1400], body[1400:]])
            conn.request("POST", INVOKE, body=parts, headers=json_ct, encode_chunked=True)
            resp = conn.getresponse()
            return {"status": resp.status, "headers": dict(resp.getheaders()),
                    "body": resp.read()}
        finally:
            conn.close()
    sock = socket.create_connection((host, port), timeout=20)
    try:
        head = _head("POST", INVOKE, {**json_ct, "Content-Length": str(len(body)),
                                      **({"Expect": "100-continue"} if kind == "expect" else {})},
                     host=f"{host}:{port}")
        if kind == "expect":  # as curl does: headers, wait for 100 Continue, then the body
            sock.sendall(head)
            interim = b""
            while b"\r\n\r\n" not in interim:
                interim += sock.recv(1)
            assert interim.startswith(b"HTTP/1.1 100"), interim
            sock.sendall(body)
        elif kind == "slow":
            sock.sendall(head + body[:500])
            for i in (500, 1000):
                time.sleep(0.1)
                sock.sendall(body[i:i + 500])
            sock.sendall(body[1500:])
        elif kind == "aborted":
            sock.sendall(head + body)
            return {"status": "aborted"}
        status, headers, payload = _read(sock)
        return {"status": status, "headers": headers, "body": payload}
    finally:
        sock.close()


def _settle(url: str, deadline_s: float = 10.0) -> list[dict]:
    """Instances once nothing is in flight or waiting any more."""
    end = time.monotonic() + deadline_s
    while True:
        live = instances(url)
        if all(i["in_flight"] == 0 and i["waiting"] == 0 for i in live) or \
                time.monotonic() > end:
            return live


@pytest.mark.slow
def test_every_answer_reaches_its_own_caller_under_mixed_wire_behaviour(harness):
    rng = random.Random(9)
    kinds = ["plain", "expect", "chunked", "slow", "expect", "plain", "aborted", "short-timeout"]
    calls = []
    for i in range(48):
        kind = kinds[i % len(kinds)]
        sleep_ms = 1500 if kind == "short-timeout" else rng.uniform(50, 600)
        calls.append((kind, uuid.uuid4().hex, round(sleep_ms, 3)))
    before = {i["instance_id"]: i["served"] for i in instances(harness.url, include_retired=True)}
    with ThreadPoolExecutor(16) as pool:
        seen = list(pool.map(lambda c: _call(harness.url, *c), calls))

    crossed = [(kind, json.loads(got["body"]).get("id"), tag)
               for (kind, tag, _), got in zip(calls, seen)
               if got["status"] == 200 and json.loads(got["body"]).get("id") != tag]
    assert not crossed, f"callers got another request's answer (kind, got, own): {crossed}"
    for (kind, tag, sleep_ms), got in zip(calls, seen):
        if kind == "aborted":
            continue
        if kind == "short-timeout":
            assert got["status"] == "client-timeout", (kind, got)
            continue
        assert got["status"] == 200, (kind, got)
        answer = json.loads(got["body"])
        assert answer["slept_ms"] == sleep_ms
        headers = {k.lower(): v for k, v in got["headers"].items()}
        assert float(headers["x-fcbench-inference-ms"]) >= sleep_ms - 1

    live = _settle(harness.url)
    assert all(i["in_flight"] == 0 and i["waiting"] == 0 for i in live), live
    everyone = instances(harness.url, include_retired=True)
    ran = sum(i["served"] - before.get(i["instance_id"], 0) for i in everyone
              if i["function"] == "sleep")
    # the instances' own count of what reached the model equals the harness's slot accounting
    own = sum(json.loads(http("GET", i["url"] + "/")[2])["served"] for i in live
              if i["function"] == "sleep")
    assert own == sum(i["served"] for i in everyone if i["function"] == "sleep")
    answered = sum(1 for (kind, _, _) in calls if kind not in ("aborted",))
    assert answered <= ran <= len(calls)
    recorded = [e for e in events(harness.url) if e["event"] == "request"
                and e["function"] == "sleep"]
    assert len(recorded) == sum(i["served"] for i in everyone if i["function"] == "sleep")
    for inst in everyone:
        assert inst["active_s"] <= inst["alive_s"] + 1e-6


def _keepalive(url: str) -> httpc.HTTPConnection:
    host, port = _addr(url)
    return httpc.HTTPConnection(host, port, timeout=10)


def _exchange(conn: httpc.HTTPConnection, method: str, path: str, body: bytes = b"",
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    chunked = not isinstance(body, bytes)
    conn.request(method, path, body=body or None, headers=headers or {}, encode_chunked=chunked)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_hop_by_hop_headers_are_dropped_both_ways(harness):
    conn = _keepalive(harness.url)
    status, headers, body = _exchange(conn, "POST", "/http/rude/echo", b'{"id": "h1"}', {
        "Connection": "keep-alive, x-private", "x-private": "1", "Keep-Alive": "timeout=9",
        "TE": "trailers", "Proxy-Authorization": "Basic abc", "x-keep": "yes",
        "Authorization": "ACS3-HMAC-SHA256 Credential=abc",
        "x-acs-security-token": "sts-secret", "x-acs-signature-nonce": "n1"})
    assert status == 200
    sent = dict(json.loads(body)["headers"])
    assert not [k for k in sent if k.startswith("x-acs-")]  # the caller's signing, STS token
    assert sent["x-keep"] == "yes" and sent["content-length"] == "12"
    for gone in ("x-private", "keep-alive", "te", "proxy-authorization", "expect",
                 "transfer-encoding", "authorization"):
        assert gone not in sent, gone
    assert headers["x-end"] == "1"
    for gone in ("x-hop", "keep-alive", "proxy-foo", "trailer", "upgrade"):
        assert gone not in headers, gone
    conn.close()


def test_chunked_bodies_both_ways_and_interim_responses_from_the_instance(harness):
    conn = _keepalive(harness.url)
    pieces = [b'{"id": ', b'"c1", "x": "', b"y" * 3000, b'"}']
    parts = iter(pieces)
    status, _, body = _exchange(conn, "POST", "/http/rude/echo-chunked", parts)
    assert status == 200
    echo = json.loads(body)
    assert echo["id"] == "c1" and echo["body_len"] == sum(map(len, pieces))
    # 100 and 103 from the instance are skipped; the final answer is this caller's, and the next
    # request on the same keep-alive connection gets its own
    for tag in ("i1", "i2"):
        status, _, body = _exchange(conn, "POST", "/http/rude/interim",
                                    json.dumps({"id": tag}).encode())
        assert status == 200 and json.loads(body)["id"] == tag
    status, _, body = _exchange(conn, "POST", "/http/rude/echo", b'{"id": "after"}')
    assert json.loads(body)["id"] == "after"
    conn.close()


def test_head_and_204_have_no_body_and_the_connection_stays_in_step(harness):
    conn = _keepalive(harness.url)
    status, headers, body = _exchange(conn, "HEAD", "/http/rude/head")
    assert status == 200 and body == b"" and headers["x-end"] == "1"
    status, headers, body = _exchange(conn, "POST", "/http/rude/no-content", b"{}")
    assert status == 204 and body == b"" and headers["x-end"] == "1"
    for tag in ("n1", "n2"):  # the forwarder did not wait for the 12345 bytes HEAD announced
        status, _, body = _exchange(conn, "POST", "/http/rude/echo",
                                    json.dumps({"id": tag}).encode())
        assert status == 200 and json.loads(body)["id"] == tag
    conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("path, status, code", [
    ("/http/rude/partial-close", 502, "InstanceExited"),
    ("/http/rude/partial-stall", 504, "FunctionTimeout"),
])
def test_an_instance_that_breaks_mid_response_gives_an_fc_error_and_no_stale_bytes(
        harness, path, status, code):
    conn = _keepalive(harness.url)
    got, headers, body = _exchange(conn, "POST", path, b'{"id": "broken"}')
    assert got == status
    doc = json.loads(body)
    assert doc["Code"] == code and doc["RequestId"] == headers["x-fc-request-id"]
    # the broken connection was discarded, never pooled: the next callers get their own answers
    for tag in ("next1", "next2", "next3"):
        got, _, body = _exchange(conn, "POST", "/http/rude/echo", json.dumps({"id": tag}).encode())
        assert got == 200 and json.loads(body)["id"] == tag
    conn.close()


@pytest.mark.slow
def test_an_instance_killed_mid_request_answers_502_and_the_next_caller_is_served(tmp_path):
    spec = sleep_spec("victim", concurrency=2)
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        with ThreadPoolExecutor(2) as pool:
            doomed = pool.submit(invoke, h.url, "victim", {"id": "doomed", "sleep_ms": 3000})
            deadline = time.monotonic() + 10
            while not any(i["in_flight"] for i in instances(h.url)):
                assert time.monotonic() < deadline, "the request never reached an instance"
                time.sleep(0.02)
            os.kill(instances(h.url)[0]["pid"], 9)
            status, headers, body = doomed.result(15)
        assert status == 502 and json.loads(body)["Code"] == "InstanceExited"
        status, _, body = invoke(h.url, "victim", {"id": "survivor", "sleep_ms": 10})
        assert status == 200 and json.loads(body)["id"] == "survivor"
        live = _settle(h.url)
        assert [i["in_flight"] for i in live] == [0]


def _raw(url: str, data: bytes, *, send_all: bool = True) -> tuple[int, dict[str, str], bytes]:
    sock = socket.create_connection(_addr(url), timeout=20)
    try:
        sock.sendall(data)
        return _read(sock)
    finally:
        sock.close()


def test_trigger_paths_are_normalised_and_may_not_climb_out_of_the_function(harness):
    for raw, seen in [("/http/rude/a/b/../echo", "/a/echo"), ("/http/rude/./x/%2e%2e/echo", "/echo"),
                      ("/http/rude/q/echo?x=1", "/q/echo?x=1")]:
        status, _, body = _raw(harness.url, _head("POST", raw, {"Content-Length": "2"}) + b"{}")
        assert status == 200 and json.loads(body)["path"] == seen, raw
    before = sum(i["served"] for i in instances(harness.url, include_retired=True))
    for raw in ("/http/rude/../../../etc/passwd", "/http/rude/a/../../x",
                "/http/rude/%2e%2e/%2E%2E/etc/passwd"):
        status, headers, body = _raw(harness.url, _head("POST", raw, {"Content-Length": "2"})
                                     + b"{}")
        assert status == 400, raw
        doc = json.loads(body)
        assert doc["Code"] == "InvalidArgument" and "root" in doc["Message"]
    assert sum(i["served"] for i in instances(harness.url, include_retired=True)) == before


def assert_gateway_limits(url: str, function: str) -> None:
    """FC's payload limit and FC-shaped errors on every route; shared with the docker tests."""
    for path in (f"/2023-03-30/functions/{function}/invocations", f"/http/{function}/x"):
        # 50 MB announced: refused from the headers, before the body is read (and so before the
        # signature, which covers a body, is checked: it is there only to pass the trigger's
        # "Authorization is expected" check of a function without an anonymous trigger)
        status, headers, body = _raw(url, _head("POST", path, {
            "Content-Length": str(50 * 1024 * 1024), **signed_headers("POST", url + path)},
            host=url.removeprefix("http://")))
        assert status == 413, path
        doc = json.loads(body)
        assert doc["Code"] == "EntityTooLarge" and doc["RequestId"], doc
        assert "32" in doc["Message"] or str(MAX_SYNC_PAYLOAD_BYTES) in doc["Message"]
    # chunked past the limit: refused while reading
    conn = _keepalive(url)
    chunk = b"z" * (1024 * 1024)
    count = MAX_SYNC_PAYLOAD_BYTES // len(chunk) + 1
    parts = iter([chunk] * count)
    signature = signed_headers("POST", f"{url}/http/{function}/x", chunk * count)
    try:
        status, _, body = _exchange(conn, "POST", f"/http/{function}/x", parts, signature)
        assert status == 413 and json.loads(body)["Code"] == "EntityTooLarge"
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway may close before the client finished sending; nothing was served
    finally:
        conn.close()
    for method, path, status, code in [
            ("GET", "/no/such/route", 404, "NotFound"),
            ("GET", f"/2023-03-30/functions/{function}/invocations", 405, "MethodNotAllowed"),
            ("POST", "/2023-03-30/functions/nope/invocations", 404, "FunctionNotFound")]:
        got, headers, body = http(method, url + path, b"" if method == "POST" else None)
        assert got == status, (method, path)
        assert headers["content-type"].startswith("application/json")
        doc = json.loads(body)
        assert doc["Code"] == code and doc["Message"] and doc["RequestId"]


def test_gateway_limits_and_errors_are_fc_shaped(harness):
    before = sum(i["served"] for i in instances(harness.url, include_retired=True))
    assert_gateway_limits(harness.url, "rude")
    assert sum(i["served"] for i in instances(harness.url, include_retired=True)) == before


def instance_environ(pid: int) -> dict[str, str]:
    """What /proc says a process's environment is."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def test_process_instances_get_only_their_own_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", SECRET_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    monkeypatch.setenv("SOME_OPERATOR_TOKEN", SECRET)
    spec = function_spec_from_dict({
        "functionName": "envcheck", "memorySize": 1024,
        "environmentVariables": {"FCBENCH_MODEL": "sleep", "MY_SETTING": "on"},
        "harness": {"runtime": "process"}})
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        assert invoke(h.url, "envcheck")[0] == 200
        inst = instances(h.url)[0]
        env = instance_environ(inst["pid"])
        raw = Path(f"/proc/{inst['pid']}/environ").read_bytes()
    assert SECRET.encode() not in raw and SECRET_ID.encode() not in raw
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" not in env and "SOME_OPERATOR_TOKEN" not in env
    assert env["MY_SETTING"] == "on"
    assert env["FC_FUNCTION_NAME"] == "envcheck" and env["FC_INSTANCE_ID"] == inst["instance_id"]
    assert env["FC_REGION"] and env["FC_FUNCTION_MEMORY_SIZE"] == "1024"
    assert set(env) <= FC_OWN | {"MY_SETTING", "FCBENCH_MODEL"} | PROCESS_ONLY, \
        set(env) - FC_OWN - PROCESS_ONLY


#: FC's own variables (and fcbench's instance bookkeeping), the same on both runtimes.
FC_OWN = {"FC_FUNCTION_NAME", "FC_FUNCTION_MEMORY_SIZE", "FC_INSTANCE_ID", "FC_REGION",
          "FC_SERVER_PORT", "FC_CUSTOM_LISTEN_PORT", "FCBENCH_INSTANCE_ID",
          "FCBENCH_INSTANCE_CONCURRENCY", "FCBENCH_HOST"}
#: What a host process needs besides (a container brings its own from the image).
PROCESS_ONLY = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
                "PYTHONHOME", "LD_LIBRARY_PATH", "FCBENCH_CACHE_DIR", "FCBENCH_READY_FD",
                "FCBENCH_LIFELINE_FD", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LC_ALL",
                "LC_CTYPE", "PWD"}


def test_the_url_target_client_follows_the_same_rules(harness):
    """Straight to the awkward instance, no gateway in between: the client itself must skip the
    1xx answers, stop at a HEAD response's head and refuse a half answer."""
    from fcbench.targets.url import UrlTarget

    invoke(harness.url, "rude", {"id": "wake"})  # an instance to talk to directly
    [inst] = [i for i in instances(harness.url) if i["function"] == "rude"][:1]
    with UrlTarget(inst["url"] + "/interim") as target:
        records = [target.invoke(b'{"id": "u"}', "application/json", 5) for _ in range(3)]
    assert [r.status for r in records] == [200, 200, 200]
    with UrlTarget(inst["url"] + "/head", method="HEAD") as target:
        records = [target.invoke(b"", timeout=5) for _ in range(3)]
    assert [(r.status, r.error or None) for r in records] == [(200, None)] * 3
    with UrlTarget(inst["url"] + "/partial-close") as target:
        record = target.invoke(b"{}", timeout=5)
    assert record.status == 0 and "middle of its response" in record.error


def test_a_header_http_cannot_carry_is_an_fc_400_and_nothing_leaks(harness):
    head = ("POST /http/rude/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
            "X-Name: ").encode() + "函数".encode("utf-8") + b"\r\n\r\n{}"
    status, _, body = _raw(harness.url, head)
    assert status == 400 and json.loads(body)["Code"] == "InvalidArgument"
    live = _settle(harness.url)
    assert all(i["in_flight"] == 0 for i in live)
    status, _, body = _raw(harness.url, _head("POST", "/http/rude/echo", {"Content-Length": "12"})
                           + b'{"id": "ok"}')
    assert status == 200 and json.loads(body)["id"] == "ok"
