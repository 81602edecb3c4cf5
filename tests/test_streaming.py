"""Streamed responses end to end: a chunked answer from an instance reaches its caller chunk by
chunk through the harness, holds its slot and is metered until the last byte, is cut by the
function's timeout, survives a caller that hangs up, and `fcbench run` records its first byte.

Real gateway, real instance processes (tests/stream_instance.py: raw HTTP/1.1, one SSE event
every `interval_ms`), real sockets on 127.0.0.1. The callers use the standard library's
`http.client`, so a framing mistake in fcbench cannot hide behind the same one on the other side.
"""

from __future__ import annotations

import http.client as httpc
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
import yaml

from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.spec import function_spec_from_dict
from harness_utils import events, http, instances, signed_headers

pytestmark = pytest.mark.slow  # every test here starts processes or servers

INSTANCE = str(Path(__file__).with_name("stream_instance.py"))
#: a server that knows only FC's contract (listens on $FC_SERVER_PORT, nothing of fcbench)
FOREIGN = str(Path(__file__).parent / "foreign" / "stream_server.py")


def stream_spec(name: str, *, timeout: float = 10, concurrency: int = 1,
                max_instances: int = 1, server: str = INSTANCE) -> dict:
    """A function served by tests/stream_instance.py (or `server`)."""
    return {"functionName": name, "timeout": timeout, "instanceConcurrency": concurrency,
            "harness": {"runtime": "process", "command": [sys.executable, server],
                        "idleTimeout": 600, "maxInstances": max_instances}}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    specs = [function_spec_from_dict(stream_spec("s")),
             function_spec_from_dict(stream_spec("short", timeout=1)),
             function_spec_from_dict(stream_spec("wide", concurrency=4, max_instances=2)),
             function_spec_from_dict(stream_spec("foreign", server=FOREIGN))]
    config = HarnessConfig(port=0, log_dir=tmp_path_factory.mktemp("logs"))
    with HarnessThread(specs, config) as h:
        yield h


def invoke_path(name: str) -> str:
    return f"/2023-03-30/functions/{name}/invocations"


class Streamed:
    """One request read as it arrives: when its head and each piece of its body came (ms
    after the request was sent), and whether the body completed."""

    def __init__(self, url: str, path: str, args: dict, *, stop_after: int | None = None,
                 timeout: float = 30) -> None:
        parts = urlsplit(url)
        body = json.dumps(args).encode()
        conn = httpc.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {"Content-Type": "application/json",
                   **signed_headers("POST", url + path, body)}
        self.t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        self.head_ms = self._ms()
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.pieces: list[tuple[float, bytes]] = []
        self.complete = False
        self.error: Exception | None = None
        try:
            while True:
                data = resp.read1(1 << 16)
                if not data:
                    self.complete = True
                    break
                self.pieces.append((self._ms(), data))
                if stop_after is not None and len(self.events) >= stop_after:
                    break  # hang up mid-stream
        except (httpc.IncompleteRead, ConnectionError) as exc:
            self.error = exc
        self.end_ms = self._ms()
        conn.close()

    def _ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    @property
    def body(self) -> bytes:
        return b"".join(p for _, p in self.pieces)

    @property
    def events(self) -> list[bytes]:
        return [e for e in self.body.split(b"\n\n") if e]

    def event_times(self) -> list[float]:
        """When each event's last byte arrived (ms after sending)."""
        times, seen = [], 0
        for t, piece in self.pieces:
            seen += piece.count(b"\n\n")
            times += [t] * (seen - len(times))
        return times


def last_event(url: str, request_id: str) -> dict:
    found = [e for e in events(url) if e.get("request_id") == request_id]
    assert found, f"no request event for {request_id}"
    return found[-1]


def wait_for(check, timeout: float = 10.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_chunks_reach_the_caller_as_they_arrive_with_the_platform_headers(harness):
    cold = Streamed(harness.url, invoke_path("s"), {"chunks": 2, "interval_ms": 10})
    assert cold.status == 200 and cold.complete and cold.headers["x-fcbench-cold"] == "1"

    got = Streamed(harness.url, invoke_path("s"), {"chunks": 5, "interval_ms": 200})
    assert got.status == 200 and got.complete and got.error is None
    assert got.events == [f"data: {i}".encode() for i in range(5)]
    h = got.headers
    assert h["transfer-encoding"] == "chunked" and "content-length" not in h
    assert h["content-type"] == "text/event-stream" and h["x-stream-test"] == "1"
    assert len(h["x-fc-request-id"]) == 32 and h["x-fc-instance-id"].startswith("i-s-")
    assert h["x-fcbench-cold"] == "0" and float(h["x-fcbench-queue-ms"]) < 100
    assert "x-fcbench-gateway-ts" in h
    # known only at the end, so absent from a streamed head
    assert "x-fcbench-forward-ms" not in h
    times = got.event_times()
    # the first event comes at once, then one every 200 ms: nothing waits for the end
    assert got.head_ms < 150 and times[0] < 150, (got.head_ms, times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(120 < g < 450 for g in gaps), gaps
    assert times[-1] > 750
    event = last_event(harness.url, h["x-fc-request-id"])
    assert event["status"] == 200 and event["error"] is None
    assert event["latency_ms"] >= 780  # the platform counts the request until its last byte


def test_a_foreign_sse_server_streams_through_as_it_sends(harness):
    Streamed(harness.url, invoke_path("foreign"), {"chunks": 1})  # past the cold start
    got = Streamed(harness.url, invoke_path("foreign"), {"chunks": 4, "interval_ms": 200})
    assert got.complete and got.events == [f"data: {i}".encode() for i in range(4)]
    assert got.headers["content-type"] == "text/event-stream"
    times = got.event_times()
    assert times[0] < 150 and all(120 < b - a < 450 for a, b in zip(times, times[1:])), times


def test_http_trigger_streams_too_and_a_content_length_answer_stays_buffered(harness):
    got = Streamed(harness.url, "/http/s/events", {"chunks": 3, "interval_ms": 150})
    times = got.event_times()
    assert got.complete and len(times) == 3 and times[0] < 150 and times[-1] > 250
    plain = Streamed(harness.url, invoke_path("s"), {"chunks": 3, "plain": True})
    assert plain.complete and plain.events == [b"data: 0", b"data: 1", b"data: 2"]
    assert int(plain.headers["content-length"]) == len(plain.body)
    assert "x-fcbench-forward-ms" in plain.headers


def test_the_callers_connection_stays_alive_after_a_stream(harness):
    parts = urlsplit(harness.url)
    conn = httpc.HTTPConnection(parts.hostname, parts.port, timeout=30)
    path = invoke_path("s")
    for n in (3, 2, 4):  # streamed, then buffered, then streamed, on one connection
        body = json.dumps({"chunks": n, "interval_ms": 20, "plain": n == 2}).encode()
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json",
            **signed_headers("POST", harness.url + path, body)})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"".join(
            b"data: %d\n\n" % i for i in range(n))
        assert not resp.will_close
    conn.close()


def test_the_slot_is_held_and_metered_until_the_last_byte(harness):
    Streamed(harness.url, invoke_path("s"), {"chunks": 1})  # ready and idle
    before = {i["instance_id"]: i for i in instances(harness.url)
              if i["function"] == "s" and i["state"] != "retired"}
    assert len(before) == 1
    first: dict = {}
    runner = threading.Thread(target=lambda: first.setdefault("r", Streamed(
        harness.url, invoke_path("s"), {"chunks": 5, "interval_ms": 200})))
    runner.start()
    time.sleep(0.15)
    # concurrency 1, one instance: the second request waits until the stream's last byte
    second = Streamed(harness.url, invoke_path("s"), {"chunks": 1})
    runner.join()
    a = first["r"]
    assert a.complete and second.complete and second.status == 200
    assert second.headers["x-fc-instance-id"] == a.headers["x-fc-instance-id"]
    assert float(second.headers["x-fcbench-queue-ms"]) > 550, second.headers
    after = {i["instance_id"]: i for i in instances(harness.url)}
    iid = a.headers["x-fc-instance-id"]
    active = after[iid]["active_s"] - before[iid]["active_s"]
    # the stream (0.8 s) and the short second request, metered while in flight
    assert 0.78 < active < 0.8 + 0.5, active


def test_the_function_timeout_cuts_a_stream_that_runs_too_long(harness):
    Streamed(harness.url, invoke_path("short"), {"chunks": 1})  # past the cold start
    got = Streamed(harness.url, invoke_path("short"), {"chunks": 20, "interval_ms": 100})
    # the head went out: no 504 can follow; the body ends without its last chunk
    assert got.status == 200 and not got.complete and got.error is not None
    assert 5 <= len(got.events) <= 12, got.events
    assert 900 < got.end_ms < 1600, got.end_ms
    event = last_event(harness.url, got.headers["x-fc-request-id"])
    assert event["status"] == 504 and event["error"] == "timeout"
    # the cut connection was not pooled: the next answers are whole and the caller's own
    for n in (2, 3):
        again = Streamed(harness.url, invoke_path("short"), {"chunks": n, "plain": True})
        assert again.complete and again.events == [f"data: {i}".encode() for i in range(n)]


def test_a_caller_that_hangs_up_leaves_the_request_running_to_its_end(harness, tmp_path):
    Streamed(harness.url, invoke_path("s"), {"chunks": 1})
    mark = tmp_path / "mark.json"
    gone = Streamed(harness.url, invoke_path("s"),
                    {"chunks": 5, "interval_ms": 200, "mark": str(mark)}, stop_after=1)
    assert gone.status == 200 and len(gone.events) == 1 and gone.end_ms < 300
    # the instance's request is not cancelled: it holds the slot until it ends ...
    waited = Streamed(harness.url, invoke_path("s"), {"chunks": 1})
    assert waited.complete and float(waited.headers["x-fcbench-queue-ms"]) > 600
    # ... and sent every event (to the gateway, which dropped them)
    done = json.loads(mark.read_text())
    assert done["sent"] == 5 and done["complete"] is True
    event = last_event(harness.url, gone.headers["x-fc-request-id"])
    assert event["status"] == 499 and event["error"] == "client_closed"
    assert event["latency_ms"] > 780


def test_a_big_stream_to_a_slow_caller_arrives_whole(harness):
    # 4 MB as 64 KiB events at once: more than the gateway buffers (1 MiB) before it stops
    # reading from the instance; the caller reads slowly, so reading pauses and resumes
    parts = urlsplit(harness.url)
    args = {"chunks": 64, "interval_ms": 0, "size": 65536}
    body = json.dumps(args).encode()
    conn = httpc.HTTPConnection(parts.hostname, parts.port, timeout=30)
    path = invoke_path("wide")
    conn.request("POST", path, body=body, headers={
        "Content-Type": "application/json", **signed_headers("POST", harness.url + path, body)})
    resp = conn.getresponse()
    got = bytearray()
    while data := resp.read1(1 << 16):
        got += data
        time.sleep(0.002)
    conn.close()
    events_ = bytes(got).split(b"\n\n")[:-1]
    assert len(got) == 64 * 65536 and len(events_) == 64
    assert all(e.startswith(f"data: {i}".encode()) for i, e in enumerate(events_))
    status, _, _ = http("POST", harness.url + invoke_path("wide"),
                        {"chunks": 2, "interval_ms": 0})
    assert status == 200


def test_fc_sdk_reads_a_streamed_answer_whole_and_leaves_its_first_byte_unknown(harness):
    from fcbench.targets.fc import FcTarget

    target = FcTarget("s", endpoint=harness.url)
    try:
        rec = target.invoke(json.dumps({"chunks": 4, "interval_ms": 150}).encode())
    finally:
        target.close()
    assert rec.status == 200 and rec.body == b"".join(b"data: %d\n\n" % i for i in range(4))
    assert rec.latency_ms > 430 and rec.fc_request_id
    # the SDK hands the body over only once it is complete: no first-byte time to record
    assert rec.ttfb_ms is None


def test_fcbench_run_records_time_to_first_byte(fcbench_run, tmp_path):
    doc = {
        "name": "stream",
        "target": {"kind": "local", "functions": [stream_spec("f", concurrency=4,
                                                              max_instances=2)]},
        "request": {"timeout": 30, "body": {"chunks": 4, "interval_ms": 100}},
        "duration": 2, "seed": 1,
        "plan": {"kind": "poisson", "rate": 4},
        "output": str(tmp_path / "results"),
    }
    wl = tmp_path / "stream.yaml"
    wl.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = fcbench_run("run", str(wl), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    run = next(p for p in (tmp_path / "results").iterdir() if p.is_dir())
    df = pd.read_csv(run / "requests.csv")
    assert len(df) >= 2 and (df["status"] == 200).all()
    warm = df[df["cold"] == 0]
    assert len(warm) >= 1
    # every event 100 ms apart: the first byte comes ~300 ms before the end
    assert (warm["ttfb_ms"] < warm["latency_ms"] - 250).all(), warm[["ttfb_ms", "latency_ms"]]
    assert (df["ttfb_ms"] <= df["latency_ms"]).all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ttfb_ms"]["count"] == len(df)
    assert summary["ttfb_ms"]["p50"] < summary["latency_ms"]["p50"] - 250
    assert "first byte ms (ok)" in res.stdout
