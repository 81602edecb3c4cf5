"""The harness is safe to leave running (docs/security.md): no web page, caller or imported file
runs a command, reads a secret or gets another caller's answer.

Real harness, real sockets on 127.0.0.1, the real FC SDK, and headless Chromium loading an
attacker's page from a second loopback port. Each case failed on main before this change.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fcbench.harness.fcapi import MAX_JSON_DEPTH, MAX_MANAGEMENT_BODY_BYTES
from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.signing import AccessKey, sign
from harness_utils import http, invoke, signed_headers, sleep_spec
from test_wire import _addr, _raw as raw, _read, open_trigger, wire_spec

FUNCTIONS = "/2023-03-30/functions"


@pytest.fixture
def harness(tmp_path):
    with HarnessThread([sleep_spec("sleep"), wire_spec("rude")],
                       HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        yield h


def evil_body(marker: Path, name: str = "pwned") -> dict:
    """A CreateFunction body whose instance would run a command (and start at once)."""
    return {"functionName": name, "harness": {
        "minInstances": 1, "command": [sys.executable, "-c",
                                       f"open({str(marker)!r}, 'w').write('ran')"]}}


def functions(h: HarnessThread) -> list[str]:
    status, _, body = http("GET", h.url + FUNCTIONS)
    assert status == 200
    return [f["functionName"] for f in json.loads(body)["functions"]]


# ---- 1. a web page cannot reach the API ------------------------------------------------------

class _Page:
    """An attacker's web page on a second loopback port: it POSTs a 'simple' cross-site request
    (text/plain, no preflight) to the harness's CreateFunction, and tries a JSON one (which
    needs a CORS preflight)."""

    def __init__(self, harness_url: str, body: dict) -> None:
        payload = json.dumps(json.dumps(body))
        script = f"""<html><body><pre id=out>started</pre><script>
const out = document.getElementById('out');
const url = '{harness_url}{FUNCTIONS}';
Promise.allSettled([
  fetch(url, {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}},
               body: {payload}}}),
  fetch(url, {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
               body: {payload}}}).then(r => r.status),
  fetch('{harness_url}/fcbench/v1/reclaim', {{method: 'POST', mode: 'no-cors'}}),
]).then(rs => {{ out.textContent = 'done ' + JSON.stringify(rs.map(r => r.status)); }});
</script></body></html>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(script)))
                self.end_headers()
                self.wfile.write(script)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_web_page_in_a_real_browser_cannot_create_a_function_that_runs_a_command(
        harness, tmp_path):
    from browser import dump_dom

    marker = tmp_path / "ran-by-a-web-page"
    page = _Page(harness.url, evil_body(marker))
    try:
        dom = dump_dom(page.url)
    finally:
        page.close()
    assert "done" in dom, dom[-800:]  # the page's requests really went out
    time.sleep(2.0)  # on main the command ran within two seconds
    assert not marker.exists()
    assert "pwned" not in functions(harness)


@pytest.mark.slow
def test_forged_requests_are_refused_before_anything_runs(harness, tmp_path):
    marker = tmp_path / "ran"
    body = json.dumps(evil_body(marker)).encode()
    port = harness.url.rsplit(":", 1)[1]
    cases = [
        # a "simple" cross-site request: no preflight, text/plain, a foreign Origin
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "AccessDenied"),
        # another page on this very machine is another origin too
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403,
         "AccessDenied"),
        ({"Content-Type": "application/json", "Origin": "null"}, 403, "AccessDenied"),
        # a browser's own word that the request is cross-site, even without Origin
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403,
         "AccessDenied"),
        # DNS rebinding: the page's own name resolved to 127.0.0.1
        ({"Content-Type": "application/json", "Host": f"rebind.example:{port}"}, 403,
         "AccessDenied"),
        # a signed request of the wrong type: management writes take JSON only
        ({"Content-Type": "text/plain"}, 415, "InvalidArgument"),
    ]
    for headers, status, code in cases:
        got, _, answer = http("POST", harness.url + FUNCTIONS, body, headers=headers)
        assert (got, json.loads(answer)["Code"]) == (status, code), (headers, answer)
    # CORS preflights are never granted, and no answer carries CORS headers
    got, reply, answer = http("OPTIONS", harness.url + FUNCTIONS, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert got == 403 and not any(k.startswith("access-control-") for k in reply)
    # DNS rebinding reaches no route at all, triggers and the harness's own API included
    for method, path in (("GET", f"{FUNCTIONS}/sleep"), ("POST", "/fcbench/v1/reclaim"),
                         ("POST", "/http/rude/echo"), ("GET", "/fcbench/v1/events")):
        got, _, _ = http(method, harness.url + path, b"{}" if method == "POST" else None,
                         headers={"Host": f"rebind.example:{port}"})
        assert got == 403, (method, path)
    # the harness's own origin and loopback names pass
    got, _, _ = http("GET", harness.url + f"{FUNCTIONS}/sleep",
                     headers={"Origin": harness.url, "Host": f"localhost:{port}"})
    assert got == 200
    time.sleep(1.5)
    assert not marker.exists() and "pwned" not in functions(harness)


# ---- 2. signatures: FC's ACS3-HMAC-SHA256 with the harness's one key ------------------------

def test_every_route_but_health_needs_the_harness_signature(harness):
    url = harness.url
    unsigned = [("POST", f"{FUNCTIONS}/sleep/invocations"), ("GET", FUNCTIONS),
                ("GET", f"{FUNCTIONS}/sleep"), ("DELETE", f"{FUNCTIONS}/sleep"),
                ("POST", "/fcbench/v1/reclaim"), ("GET", "/fcbench/v1/events"),
                ("GET", "/fcbench/v1/instances")]
    for method, path in unsigned:
        got, _, body = http(method, url + path, b"{}" if method == "POST" else None,
                            signed=False)
        assert (got, json.loads(body)["Code"]) == (400, "MissingRequiredHeader"), (method, path)
    # a function without an HTTP trigger has no open URL
    got, _, body = http("POST", url + "/http/sleep/x", b"{}", signed=False)
    assert got == 401 and "no HTTP trigger" in json.loads(body)["Message"]
    assert http("GET", url + "/fcbench/v1/health", signed=False)[0] == 200
    assert "sleep" in functions(harness)  # DeleteFunction above did nothing

    target = f"{FUNCTIONS}/sleep/invocations"
    host = url.removeprefix("http://")
    other = AccessKey.generate()
    wrong_id = sign(other, "POST", target, host, b"{}")
    wrong_secret = sign(AccessKey(harness.key.access_key_id, other.access_key_secret), "POST",
                        target, host, b"{}")
    stale = sign(harness.key, "POST", target, host, b"{}", now=time.time() - 3600)
    for headers, body, status, code in [
            (wrong_id, b"{}", 403, "InvalidAccessKeyID"),
            (wrong_secret, b"{}", 403, "SignatureNotMatch"),
            (signed_headers("POST", url + target, b"{}"), b'{"sleep_ms": 1}', 403,
             "SignatureNotMatch"),  # the body was changed after signing
            (stale, b"{}", 403, "RequestTimeTooSkewed")]:
        got, _, answer = http("POST", url + target, body, headers=headers, signed=False)
        assert (got, json.loads(answer)["Code"]) == (status, code), answer
    # re-aimed at another function: the path is signed
    moved = signed_headers("POST", url + f"{FUNCTIONS}/rude/invocations", b"{}")
    got, _, answer = http("POST", url + target, b"{}", headers=moved, signed=False)
    assert (got, json.loads(answer)["Code"]) == (403, "SignatureNotMatch")
    assert invoke(url, "sleep", {"sleep_ms": 1})[0] == 200  # signed with its key: served


def test_a_signature_proved_on_a_connection_covers_only_that_connection(harness):
    """fcbench's own clients repeat one signature per second; the harness checks it once per
    keep-alive connection. The same header on another connection, with another body, fails."""
    import http.client as httpc

    target = f"{FUNCTIONS}/sleep/invocations"
    host = harness.url.removeprefix("http://")
    first = sign(harness.key, "POST", target, host, b'{"sleep_ms": 1}', nonce=False)
    conn = httpc.HTTPConnection(*_addr(harness.url), timeout=20)
    try:
        for body in (b'{"sleep_ms": 1}', b'{"sleep_ms": 2}'):
            conn.request("POST", target, body=body, headers=first)
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
    finally:
        conn.close()
    got, _, answer = http("POST", harness.url + target, b'{"sleep_ms": 2}', headers=first,
                          signed=False)
    assert (got, json.loads(answer)["Code"]) == (403, "SignatureNotMatch")


def test_the_fc_sdk_gets_fc_s_own_errors_for_a_wrong_key(harness):
    pytest.importorskip("alibabacloud_fc20230330.client")
    from alibabacloud_fc20230330 import models as m
    from Tea.exceptions import TeaException

    from sdk_utils import sdk

    for key, code in [(AccessKey.generate(), "InvalidAccessKeyID"),
                      (AccessKey(harness.key.access_key_id, "not-the-secret"),
                       "SignatureNotMatch")]:
        with pytest.raises(TeaException) as info:
            sdk(harness.url, key).get_function("sleep", m.GetFunctionRequest())
        assert (info.value.code, info.value.status_code) == (code, 403)
    assert sdk(harness.url).get_function("sleep", m.GetFunctionRequest()).body.function_name \
        == "sleep"


@pytest.mark.slow
def test_serve_prints_where_its_key_is_and_the_cli_finds_it(tmp_path, fcbench_proc):
    spec = tmp_path / "sleep.yaml"
    spec.write_text("functionName: sleep\nenvironmentVariables: {FCBENCH_MODEL: sleep}\n")
    proc = fcbench_proc("harness", "serve", str(spec), "--port", "0", cwd=tmp_path)
    lines = [proc.stdout.readline() for _ in range(2)]
    url = lines[0].split("listening on ")[1].split()[0]
    key_path = Path(lines[1].split(" in ")[1].split()[0])
    assert key_path.is_file() and key_path.stat().st_mode & 0o077 == 0  # owner only
    assert key_path.parent.stat().st_mode & 0o077 == 0
    doc = json.loads(key_path.read_text())
    assert doc["accessKeySecret"] not in "".join(lines)  # the secret is never printed
    got = subprocess.run([sys.executable, "-m", "fcbench", "invoke", "sleep", "--endpoint", url,
                          "--data", "{}"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and "status 200" in got.stdout, got.stderr
    proc.terminate()
    proc.wait(20)
    assert not key_path.exists()  # removed when the harness stops


def test_an_explicit_key_pair_is_the_one_checked(tmp_path):
    key = AccessKey("LTAIlocalharness", "local-secret-of-the-operator")
    with HarnessThread([sleep_spec()], HarnessConfig(port=0, access_key=key,
                                                     log_dir=tmp_path / "logs")) as h:
        target = f"{FUNCTIONS}/sleep/invocations"
        headers = sign(key, "POST", target, h.url.removeprefix("http://"), b"{}")
        assert http("POST", h.url + target, b"{}", headers=headers, signed=False)[0] == 200


# ---- 3. commands come only from the operator ------------------------------------------------

@pytest.mark.slow
def test_a_command_through_the_api_runs_only_when_the_operator_said_so(tmp_path):
    marker = tmp_path / "ran"
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "l1")) as h:
        got, _, body = http("POST", h.url + FUNCTIONS, evil_body(marker))
        assert got == 403 and "--allow-api-commands" in json.loads(body)["Message"]
        # nor by UpdateFunction of a function that had none
        assert http("POST", h.url + FUNCTIONS, {"functionName": "plain", "environmentVariables":
                                                {"FCBENCH_MODEL": "sleep"}})[0] == 200
        got, _, _ = http("PUT", h.url + f"{FUNCTIONS}/plain", {"harness": evil_body(marker)[
            "harness"]})
        assert got == 403
        time.sleep(1.0)
        assert not marker.exists()
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "l2",
                                         allow_api_commands=True)) as h:
        assert http("POST", h.url + FUNCTIONS, evil_body(marker))[0] == 200
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, "the allowed command never ran"
            time.sleep(0.1)


# ---- 4. the wire: what the instance receives is what the caller sent ------------------------

def _echo(url: str, target: str) -> tuple[int, dict]:
    """A raw request to the awkward instance's /echo; returns status and what it received."""
    head = (f"GET {target} HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
            "Content-Length: 0\r\n\r\n").encode("latin-1")
    status, _, body = raw(url, head)
    return status, (json.loads(body) if status == 200 else json.loads(body or b"{}"))


def test_the_query_reaches_the_instance_still_encoded_and_cannot_smuggle(harness):
    assert open_trigger(harness.url, "rude") == 200
    status, seen = _echo(harness.url, "/http/rude/echo?q=hello%20world&a=%2Fb")
    assert status == 200
    assert seen["raw_head"].startswith("GET /echo?q=hello%20world&a=%2Fb HTTP/1.1\r\n")
    # the smuggling attempt of the issue: a decoded query would end the request line early
    evil = ("/http/rude/echo?x=%20HTTP/1.1%0d%0aAuthorization:%20stolen%0d%0a"
            "x-acs-security-token:%20t%0d%0a%0d%0aPOST%20/x")
    status, seen = _echo(harness.url, evil)
    assert status == 200
    line, rest = seen["raw_head"].split("\r\n", 1)
    assert line == ("GET /echo?x=%20HTTP/1.1%0d%0aAuthorization:%20stolen%0d%0a"
                    "x-acs-security-token:%20t%0d%0a%0d%0aPOST%20/x HTTP/1.1")
    names = [k for k, _ in seen["headers"]]
    assert "authorization" not in names and "x-acs-security-token" not in names
    assert rest.count("\r\n\r\n") == 1  # one request, nothing after it
    # the next caller on the same pooled connections gets its own answer
    for i in range(5):
        status, seen = _echo(harness.url, f"/http/rude/echo?n={i}")
        assert status == 200 and seen["path"] == f"/echo?n={i}"


def test_bytes_http_cannot_carry_are_refused_where_they_are_written():
    from fcbench.http1 import request_head

    for target in ("/a b", "/a\r\nX: y", "/a\nb", "/\x00", "/\x7f", "/é"):
        with pytest.raises(ValueError):
            request_head("GET", target, "h", [], 0)
    for method in ("GE T", "GET\r\n", ""):
        with pytest.raises(ValueError):
            request_head(method, "/", "h", [], 0)
    for name, value in (("X-A", "b\r\nInjected: 1"), ("X-A", "b\x00"), ("X A", "b"),
                        ("X:A", "b")):
        with pytest.raises(ValueError):
            request_head("GET", "/", "h", [(name, value)], 0)
    assert request_head("GET", "/a?q=%20", "h", [("X-A", "b\tc")], 0).startswith(
        b"GET /a?q=%20 HTTP/1.1\r\n")


def test_parser_errors_are_fc_json_and_a_raw_space_in_the_target_is_400(harness):
    for data in (b"GET /http/rude/a b c HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                 b"GARBAGE\r\n\r\n",
                 b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n"):
        status, headers, body = raw(harness.url, data)
        assert 400 <= status < 500, data
        assert headers["content-type"].startswith("application/json"), (data, body)
        doc = json.loads(body)
        assert doc["Code"] and doc["RequestId"], doc


# ---- 5. FC's limits and shapes at the front door ---------------------------------------------

def test_oversized_and_deep_management_bodies_are_413_and_400(harness):
    big = json.dumps({"functionName": "big", "description": "x" * MAX_MANAGEMENT_BODY_BYTES})
    got, _, body = http("POST", harness.url + FUNCTIONS, big.encode(),
                        headers={"Content-Type": "application/json"})
    assert (got, json.loads(body)["Code"]) == (413, "EntityTooLarge")
    deep = '{"functionName": "deep", "tags": ' + "[" * 100_000 + "]" * 100_000 + "}"
    got, _, body = http("POST", harness.url + FUNCTIONS, deep.encode(),
                        headers={"Content-Type": "application/json"})
    assert (got, json.loads(body)["Code"]) == (400, "InvalidArgument")
    nested = {"functionName": "nested", "tags": {}}
    node = nested["tags"]
    for _ in range(MAX_JSON_DEPTH):
        node["a"] = {}
        node = node["a"]
    got, _, body = http("POST", harness.url + FUNCTIONS, nested)
    assert (got, json.loads(body)["Code"]) == (400, "InvalidArgument"), body
    assert http("GET", harness.url + "/fcbench/v1/health", signed=False)[0] == 200


def test_no_100_continue_for_a_body_content_length_already_refuses(harness):
    target = f"{FUNCTIONS}/sleep/invocations"
    sock = socket.create_connection(_addr(harness.url), timeout=10)
    try:
        sock.sendall((f"POST {target} HTTP/1.1\r\nHost: {harness.url[7:]}\r\n"
                      f"Content-Length: {64 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n"
                      ).encode())
        first = sock.recv(65536)
    finally:
        sock.close()
    assert first.startswith(b"HTTP/1.1 413"), first[:80]
    assert b"100 Continue" not in first and b"EntityTooLarge" in first
    # an Expect the harness does not know is FC's JSON too
    sock = socket.create_connection(_addr(harness.url), timeout=10)
    try:
        sock.sendall((f"POST {target} HTTP/1.1\r\nHost: {harness.url[7:]}\r\n"
                      "Content-Length: 2\r\nExpect: something-else\r\n\r\n{}").encode())
        status, headers, body = _read(sock)
    finally:
        sock.close()
    assert status == 417 and headers["content-type"].startswith("application/json")


def test_trigger_urls_come_from_the_listen_address_not_the_callers_host(harness):
    port = harness.url.rsplit(":", 1)[1]
    got, _, body = http("POST", harness.url + f"{FUNCTIONS}/sleep/triggers", {
        "triggerName": "t", "triggerType": "http",
        "triggerConfig": json.dumps({"authType": "anonymous", "methods": ["POST"]})},
        headers={"Host": f"localhost:{port}"})
    assert got == 200
    assert json.loads(body)["httpTrigger"]["urlInternet"] == f"{harness.url}/http/sleep"
