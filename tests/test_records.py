"""Records, targets, summaries and plots: header parsing, streaming CSV, merging, Wilson
intervals, and every target against a real harness over real HTTP."""

from __future__ import annotations

import csv
import json
import socket
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fcbench.errors import UsageError
from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.report.plots import plot_latency
from fcbench.protocol import ALL_COLUMNS, COLUMNS, InvocationRecord, parse_headers
from fcbench.results.records import RecordWriter, merge_parts, read_records
from fcbench.measures import percentiles, wilson
from fcbench.results.summary import summarize, write_summary
from fcbench.targets import FakeTarget, target_class
from fcbench.targets.local import LocalTarget
from fcbench.targets.url import UrlTarget, invoke_url
from harness_utils import sleep_spec


# -- records ------------------------------------------------------------------------------------

def test_parse_headers_reads_platform_and_instance_fields():
    got = parse_headers({"X-FC-Instance-Id": "i-f-1", "x-fc-request-id": "r1",
                         "x-fcbench-cold": "1", "x-fcbench-queue-ms": "812.5",
                         "x-fcbench-first": "1", "x-fcbench-inference-ms": "12.25",
                         "x-fcbench-boot-ts": "1700000000500000000",
                         "x-fcbench-ready-ts": "1700000001000000000",
                         "x-fcbench-import-ms": "80", "x-fcbench-model-load-ms": "300",
                         "x-fcbench-batch-size": "4", "content-type": "application/json"})
    assert got == {"instance_id": "i-f-1", "fc_request_id": "r1", "platform_cold": True,
                   "first": True,
                   "queue_ms": 812.5, "inference_ms": 12.25, "import_ms": 80.0,
                   "model_load_ms": 300.0, "boot_ts": 1700000000.5, "ready_ts": 1700000001.0,
                   "batch_size": 4}


def test_parse_headers_reads_what_the_instance_says_when_the_platform_is_silent():
    # FC itself sends no x-fcbench-cold: the instance's own view is kept for the cold rule
    got = parse_headers([("x-fcbench-instance-id", "host-12-99"), ("x-fcbench-first", "0")])
    assert got == {"instance_id": "host-12-99", "first": False}
    assert parse_headers({"x-fcbench-cold": "0", "x-fcbench-first": "1"})["platform_cold"] \
        is False
    assert parse_headers({}) == {}
    assert parse_headers({"x-fcbench-queue-ms": "n/a"}) == {}


def test_record_row_and_round_trip():
    rec = InvocationRecord(request_id="w0-1", intended_ts=100.0, start_ts=100.0015,
                           end_ts=100.2515, latency_ms=250.0, status=200, cold=True,
                           instance_id="i-1", queue_ms=10.0, error="", worker=0)
    row = dict(zip(ALL_COLUMNS, rec.row()))
    assert row["latency_from_intended_ms"] == "251.500" and row["cold"] == "1"
    assert row["first"] == "" and row["intended_ts"] == "100.000000"
    back = InvocationRecord.from_row(row)
    assert back == rec
    bad = InvocationRecord(error="line one\nline, two", status=0)
    assert "\n" not in bad.row()[COLUMNS.index("error")]


def test_record_writer_streams_readable_rows(tmp_path):
    path = tmp_path / "part.csv"
    writer = RecordWriter(path, flush_interval_s=0.05)
    writer.write(InvocationRecord(request_id="a", intended_ts=2.0, start_ts=2.0, status=200))
    time.sleep(0.06)
    writer.write(InvocationRecord(request_id="b", intended_ts=1.0, start_ts=1.0, status=200))
    # Readable while still open: the header and both whole rows are on disk.
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["request_id"] for r in rows] == ["a", "b"]
    writer.write(InvocationRecord(request_id="c", intended_ts=3.0, start_ts=3.0, status=429,
                                  error="ResourceThrottled"))
    writer.close()
    # Re-opening appends without a second header.
    with RecordWriter(path) as again:
        again.write(InvocationRecord(request_id="d", intended_ts=0.5, start_ts=0.5, status=200))
    assert path.read_text().splitlines().count(",".join(ALL_COLUMNS)) == 1
    assert [r.request_id for r in read_records(path)] == ["a", "b", "c", "d"]


def test_merge_parts_sorts_by_intended_time_and_drops_a_torn_last_row(tmp_path):
    p0, p1 = tmp_path / "requests.part-0.csv", tmp_path / "requests.part-1.csv"
    with RecordWriter(p0) as w:
        for rid, ts in (("w0-1", 5.0), ("w0-2", 1.0)):
            w.write(InvocationRecord(request_id=rid, intended_ts=ts, start_ts=ts, status=200))
    with RecordWriter(p1) as w:
        w.write(InvocationRecord(request_id="w1-1", intended_ts=3.0, start_ts=3.0, status=200))
        w.write(InvocationRecord(request_id="w1-2", intended_ts=None, start_ts=2.0, status=0,
                                 error="timeout"))
    with open(p1, "a") as f:
        f.write("w1-3,4.0,4.0,4.1")  # a writer killed mid-row
    out = tmp_path / "requests.csv"
    assert merge_parts([p0, p1], out) == 4
    assert [r.request_id for r in read_records(out)] == ["w0-2", "w1-2", "w1-1", "w0-1"]
    assert merge_parts([], tmp_path / "empty.csv") == 0
    assert (tmp_path / "empty.csv").read_text().strip() == ",".join(ALL_COLUMNS)


# -- statistics and summaries ----------------------------------------------------------------

@pytest.mark.parametrize("k, n, lo, hi", [
    (0, 10, 0.0, 0.27753),      # Wilson (1927); e.g. Brown, Cai & DasGupta (2001)
    (1, 10, 0.01787, 0.40415),
    (5, 10, 0.23659, 0.76341),
    (10, 10, 0.72247, 1.0),
    (50, 100, 0.40383, 0.59617),
    (3, 1000, 0.00102, 0.00881),
])
def test_wilson_interval_matches_known_values(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_edges():
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)
    narrow, wide = wilson(50, 100, z=1.0), wilson(50, 100, z=2.576)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]


def _write_csv(path, records):
    with RecordWriter(path) as w:
        for r in records:
            w.write(r)
    return path


def test_summary_of_zero_rows_and_its_plot(tmp_path):
    path = _write_csv(tmp_path / "requests.csv", [])
    s = summarize(path)
    assert s["count"] == 0 and s["errors"] == 0 and s["cold_starts"] == 0
    assert {k: v for k, v in s["p_cold"].items() if k != "cluster"} == {
        "value": None, "lo": 0.0, "hi": 1.0, "cold": 0, "n": 0, "z": 1.96, "method": "wilson"}
    assert (s["p_cold"]["cluster"]["lo"], s["p_cold"]["cluster"]["hi"]) == (0.0, 1.0)
    assert s["latency_ms"]["p50"] is None and s["throughput_rps"] is None
    json.loads(write_summary(s, tmp_path / "summary.json").read_text())
    png = plot_latency(path, tmp_path / "plots" / "latency.png")
    assert Image.open(png).size[0] > 100


def test_summary_numbers_come_from_the_raw_records(tmp_path):
    rng = np.random.default_rng(1)
    recs = []
    for i in range(400):
        lat = float(rng.exponential(50))
        status = 429 if i % 40 == 0 else (0 if i % 97 == 0 else 200)
        cold = None if status != 200 else (i % 10 == 0)
        recs.append(InvocationRecord(request_id=str(i), intended_ts=1000 + i * 0.01,
                                     start_ts=1000 + i * 0.01 + 0.001,
                                     end_ts=1000 + i * 0.01 + 0.001 + lat / 1000,
                                     latency_ms=lat, status=status, cold=cold,
                                     instance_id=f"i-{i % 3}" if status == 200 else ""))
    path = _write_csv(tmp_path / "requests.csv", recs)
    s = summarize(path)
    ok = [r for r in recs if r.status == 200]
    assert s["count"] == 400 and s["ok"] == len(ok)
    assert s["errors_by_status"] == {"0": 4, "429": 10}
    lat = np.array([r.latency_ms for r in ok])
    assert s["latency_ms"]["p99"] == pytest.approx(np.percentile(lat, 99), abs=1e-3)
    k = sum(1 for r in ok if r.cold)
    # P(cold) counts every request sent: the 429s and the failures stay in the denominator
    assert s["cold_starts"] == k and s["p_cold"]["n"] == 400
    assert s["p_cold"]["value"] == pytest.approx(k / 400)
    assert (s["p_cold"]["lo"], s["p_cold"]["hi"]) == pytest.approx(wilson(k, 400))
    assert s["p_cold"]["cluster"]["lo"] <= k / 400 <= s["p_cold"]["cluster"]["hi"]
    assert s["dispatch_lag_ms"]["p50"] == pytest.approx(1.0, abs=1e-3)
    assert s["instances_seen"] == 3
    assert percentiles([1, 2, 3, float("nan")])["count"] == 3


# -- targets ---------------------------------------------------------------------------------

def test_invoke_url_shapes():
    assert invoke_url("http://h:1/x") == "http://h:1/x"
    assert invoke_url("http://h:1/", "fn") == "http://h:1/2023-03-30/functions/fn/invocations"
    assert invoke_url("http://h:1", "fn", "a/b") == "http://h:1/http/fn/a/b"
    assert invoke_url("http://h:1", None, "/p") == "http://h:1/p"


def test_target_registry_and_lifecycle():
    assert target_class("url") is UrlTarget and target_class("local") is LocalTarget
    with pytest.raises(ValueError, match="url, local, fc"):
        target_class("lambda")
    with FakeTarget(lambda body: (200, {"x-fcbench-cold": "1"})) as fake:
        rec = fake.invoke(b"{}", intended_ts=5.0, request_id="x")
        assert (rec.cold, rec.intended_ts, rec.request_id) == (True, 5.0, "x")
    with pytest.raises(UsageError, match="closed"):
        fake.invoke(b"")
    with pytest.raises(UsageError, match="http://"):
        UrlTarget("127.0.0.1:9080")


def test_fc_target_without_the_sdk_names_the_extra(monkeypatch):
    # The SDK is installed here; hide it the way a missing package looks to `import`.
    for mod in [m for m in sys.modules if m.startswith("alibabacloud_fc20230330")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "alibabacloud_fc20230330", None)
    with pytest.raises(ImportError, match=r"pip install fcbench\[fc\]"):
        target_class("fc")


@pytest.fixture(scope="module")
def harness():
    spec = sleep_spec("f", sleep_ms=5, startup_ms=150, max_instances=1, queue_size=0)
    with HarnessThread([spec], HarnessConfig(port=0)) as h:
        yield h


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["url", "fc"])
def test_targets_fill_records_from_a_real_harness(harness, kind):
    h = harness
    h.call(h.harness.platform.reclaim_idle("f"))
    target = UrlTarget(h.url, function="f") if kind == "url" else \
        target_class("fc")("f", endpoint=h.url, timeout=10)
    with target:
        t0 = time.time()
        cold = target.invoke(b'{"sleep_ms": 20}', "application/json", intended_ts=t0)
        warm = target.invoke(b'{"sleep_ms": 20}', "application/json")
        bad = type(target)("nope", endpoint=h.url).invoke(b"") if kind == "fc" else \
            UrlTarget(h.url, function="nope").invoke(b"")
    assert cold.status == 200 and cold.cold is True and cold.first is True
    assert cold.instance_id == warm.instance_id and cold.instance_id.startswith("i-f-")
    assert cold.queue_ms > 100 and cold.latency_ms > 150 and cold.intended_ts == t0
    assert cold.start_ts >= t0 and cold.end_ts > cold.start_ts and cold.fc_request_id
    assert cold.boot_ts and cold.ready_ts and cold.model_load_ms >= 140
    assert warm.cold is False and warm.first is False and 20 <= warm.inference_ms < 200
    assert (bad.status, bad.error) == (404, "FunctionNotFound")


def test_url_target_errors_become_records(harness):
    with UrlTarget(harness.url, function="f", timeout=0.3) as slow:
        rec = slow.invoke(b'{"sleep_ms": 2000}', "application/json")
    assert (rec.status, rec.error) == (0, "timeout") and 250 < rec.latency_ms < 1500
    with UrlTarget("http://127.0.0.1:9/") as down:
        rec = down.invoke(b"")
    assert rec.status == 0 and "ConnectionRefused" in rec.error


def test_local_target_starts_and_stops_its_harness():
    spec = sleep_spec("g", sleep_ms=1, startup_ms=10)
    with LocalTarget([spec], timeout=30) as target:
        url = target.url
        first = target.invoke(b"")
        assert first.status == 200 and first.cold is True
    assert UrlTarget(url, function="g").invoke(b"").status == 0  # gone with the target
    with pytest.raises(UsageError, match="not among"):
        LocalTarget([spec], function="other")


def test_summary_reads_a_real_requests_csv_schema(tmp_path):
    # pandas reads what RecordWriter writes, with the stable first columns in order.
    path = _write_csv(tmp_path / "r.csv", [InvocationRecord(request_id="a", status=200,
                                                            intended_ts=1.0, start_ts=1.0,
                                                            end_ts=1.1, latency_ms=100.0)])
    df = pd.read_csv(path)
    assert list(df.columns[:len(COLUMNS)]) == list(COLUMNS)
    assert summarize(path)["latency_ms"]["max"] == 100.0


@pytest.mark.slow
def test_url_target_resends_once_on_a_connection_the_server_dropped(harness):
    # Idle keep-alive connections can be closed under the client at any time; the request then
    # goes out again on a fresh connection instead of failing.
    with UrlTarget(harness.url, function="f") as target:
        target.warm_up(connections=2)
        assert len(target._pool._idle) == 2
        for conn in target._pool._idle:
            conn.sock.shutdown(socket.SHUT_RDWR)
        rec = target.invoke(b'{"sleep_ms": 1}', "application/json")
        # An answer came back (a 429 if an earlier test's slow request still holds the one
        # instance): no connection error reached the record.
        assert rec.status in (200, 429) and "Pipe" not in rec.error, rec.error
