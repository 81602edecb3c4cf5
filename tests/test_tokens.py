"""Token-level measures: TTFT, TPOT, ITL, token counts and goodput (`fcbench.measures`), read from
OpenAI-style SSE answers (`fcbench.openai_stream`) as the URL target receives them.

First the definitions on hand-built event times; then the held-in check against a server whose
token timing is known (tests/foreign/token_server.py: first token after T ms, one every G ms):
T and G must come back within 5 %, straight from the server's port and through the harness (its
HTTP trigger, process runtime), and a stream the gateway delivered whole must show (TTFT = the
whole latency, no gaps); last, `fcbench run` against that server writes the token columns and
summary.json's ``tokens`` block split by cold and warm, and `fcbench report --slo` recounts
goodput. Real sockets, real processes; no mock.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fcbench._net import free_port
from fcbench.measures import goodput, itl_quantile, parse_slo, token_timing
from fcbench.openai_stream import read_stream, sse_events, token_fields, wants
from fcbench.protocol import InvocationRecord
from fcbench.results.summary import TOKEN_COLUMNS, summarize, summary_table
from fcbench.targets.url import UrlTarget

SERVER = str(Path(__file__).resolve().parent / "foreign" / "token_server.py")
#: the known timing of the held-in check: first token after T ms, then one every G ms
T_MS, G_MS, TOKENS = 150.0, 30.0, 8
TOLERANCE = 0.05


def completion(text: str | None = None, usage: dict | None = None) -> bytes:
    doc: dict = {"object": "text_completion", "choices": [] if text is None else
                 [{"index": 0, "text": text}]}
    if usage is not None:
        doc["usage"] = usage
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def chat(content: str | None, role: bool = False) -> bytes:
    delta = {"role": "assistant", "content": ""} if role else {"content": content}
    doc = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def marked(pieces: list[tuple[bytes, float]]) -> tuple[bytes, list[tuple[int, float]]]:
    """A body and its arrival marks from (bytes of one read, time of that read)."""
    body, marks = b"", []
    for piece, t in pieces:
        body += piece
        marks.append((len(body), t))
    return body, marks


# ---- reading the stream ---------------------------------------------------------------------
def test_an_event_arrives_with_the_read_that_brings_its_blank_line():
    a, b = completion("x"), completion("y")
    # event a's last byte and event b's first half in one read; b's rest two reads later
    body, marks = marked([(a[:-1], 1.0), (a[-1:] + b[:5], 2.0), (b[5:-2], 3.0), (b[-2:], 4.0)])
    assert [t for t, _ in sse_events(body, marks)] == [2.0, 4.0]


def test_sse_framing_crlf_multiline_comments_and_an_unterminated_last_event():
    body = (b": ping\r\n\r\nevent: x\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n"
            b"id: 3\n\ndata: [DONE]")
    events = sse_events(body, [(len(body), 9.0)])
    # the comment and the id-only event have no data; the last one just ended with the body
    assert events == [(9.0, b'{"a":\n1}'), (9.0, b"[DONE]")]
    assert sse_events(body, []) == [(None, b'{"a":\n1}'), (None, b"[DONE]")]
    # LF only (read by the faster search) gives the same events
    lf = body.replace(b"\r\n", b"\n")
    assert sse_events(lf, [(len(lf), 9.0)]) == events
    assert sse_events(lf + b"\n\n\n", [(len(lf) + 3, 9.0)]) == events


def test_content_events_are_chunks_with_text_and_usage_and_done_are_read():
    body, marks = marked([
        (chat(None, role=True), 0.010),       # role only: no token
        (chat("Hel"), 0.100), (chat(""), 0.120), (chat("lo"), 0.150),
        (b"data: not json\n\n", 0.151),
        (completion(None, {"prompt_tokens": 7, "completion_tokens": 3}), 0.152),
        (b"data: [DONE]\n\n", 0.153)])
    got = read_stream(body, marks)
    assert got.content_times == [0.100, 0.150]
    assert got.usage == {"prompt_tokens": 7, "completion_tokens": 3}
    assert got.done and got.chunks == 5 and not got.error


def test_token_fields_of_a_stream_a_whole_json_answer_and_other_answers():
    body, marks = marked([(completion("a"), 1.1), (completion("b"), 1.2), (completion("c"), 1.4),
                          (completion(None, {"prompt_tokens": 5, "completion_tokens": 3}), 1.4)])
    got = token_fields("text/event-stream; charset=utf-8", body, marks, sent=1.0)
    assert got["ttft_ms"] == pytest.approx(100.0) and got["tpot_ms"] == pytest.approx(150.0)
    assert got["input_tokens"] == 5 and got["output_tokens"] == 3
    whole = json.dumps({"object": "text_completion", "choices": [{"text": "abc"}],
                        "usage": {"prompt_tokens": 4, "completion_tokens": 9}}).encode()
    assert token_fields("application/json", whole, [(len(whole), 2.0)], sent=1.0) == {
        "input_tokens": 4, "output_tokens": 9}
    assert token_fields("application/json", b'{"usage": 3}', [], 0.0) == {}
    assert token_fields("text/event-stream", b"data: 1\n\n", [(9, 1.0)], 0.0) == {}  # no OpenAI
    assert token_fields("text/plain", body, marks, 0.0) == {}


def test_only_a_stream_or_json_naming_usage_at_its_ends_is_read():
    answer = json.dumps({"id": "x", "object": "text_completion", "choices": [{"text": "y" * 9000}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 2}}).encode()
    assert wants("text/event-stream", b"") and wants("application/json", answer)
    assert not wants("text/plain", answer)
    # another API's large JSON answer is not searched end to end on every request
    big = json.dumps({"a": "x" * 9000, "usage": 1, "b": "x" * 9000}).encode()
    assert not wants("application/json", big)
    assert token_fields("application/json", big, [], 0.0) == {}


def test_a_stream_error_event_is_kept():
    body = completion("a") + b'data: {"error": {"message": "out of memory"}}\n\n'
    got = token_fields("text/event-stream", body, [(len(body), 1.0)], sent=0.5)
    assert got["error"] == "stream error: out of memory" and got["output_tokens"] == 1


# ---- the definitions ---------------------------------------------------------------------------
def test_ttft_tpot_and_itl_of_known_event_times():
    times = [0.200, 0.230, 0.260, 0.300, 0.330]  # sent at 0.1
    got = token_timing(0.1, times, 5)
    assert got["ttft_ms"] == pytest.approx(100.0)
    assert got["tpot_ms"] == pytest.approx(130.0 / 4)
    gaps = [30.0, 30.0, 40.0, 30.0]
    assert got["itl_p50_ms"] == pytest.approx(float(np.percentile(gaps, 50)))
    assert got["itl_p99_ms"] == pytest.approx(float(np.percentile(gaps, 99)))
    # usage says 9 tokens in these 5 events (some events carried two): TPOT per token
    assert token_timing(0.1, times, 9)["tpot_ms"] == pytest.approx(130.0 / 8)
    # one token: a TTFT, no TPOT, no gaps
    assert token_timing(0.1, [0.2], 1) == {"ttft_ms": pytest.approx(100.0), "tpot_ms": None,
                                           "itl_p50_ms": None, "itl_p99_ms": None,
                                           "output_tokens": 1}
    assert token_timing(0.1, [], 0)["ttft_ms"] is None


def test_itl_quantile_matches_numpy():
    rng = np.random.default_rng(4)
    for n in (1, 2, 3, 10, 101):
        values = sorted(rng.exponential(10, n))
        for q in (0.0, 0.5, 0.9, 0.99, 1.0):
            assert itl_quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_parse_slo_and_its_errors():
    assert parse_slo("ttft=500, tpot=50ms,e2e=2000") == {"ttft_ms": 500.0, "tpot_ms": 50.0,
                                                         "e2el_ms": 2000.0}
    for text, words in (("ttfx=5", "did you mean ttft"), ("ttft", "has no '='"),
                        ("ttft=fast", "not a number of milliseconds"),
                        ("tpot=-1", "positive"), ("ttft=1,ttft=2", "twice"), (" , ", "empty")):
        with pytest.raises(ValueError, match=words):
            parse_slo(text)


def test_goodput_counts_every_request_sent_and_each_objective():
    status = [200, 200, 200, 200, 429, 200]
    ttft = [100, 300, 100, np.nan, np.nan, 100]
    tpot = [10, 10, 90, np.nan, np.nan, np.nan]
    out = [5, 5, 5, np.nan, np.nan, 1]   # the last: one token, so no TPOT to miss
    got = goodput({"ttft_ms": 200, "tpot_ms": 50}, status=status, ttft_ms=ttft, tpot_ms=tpot,
                  latency_ms=[1] * 6, output_tokens=out, duration_s=2.0)
    assert (got["good"], got["n"]) == (2, 6) and got["share"] == pytest.approx(2 / 6)
    assert got["good_rps"] == 1.0
    # among answered requests: #2 and the no-token #4 miss TTFT; #3 and #4 miss TPOT
    assert got["missed"] == {"ttft_ms": 2, "tpot_ms": 2}


def test_the_summary_splits_token_figures_by_cold_and_warm():
    df = pd.DataFrame({
        "start_ts": [0.0, 1.0, 2.0, 3.0], "end_ts": [1.0, 2.0, 3.0, 4.0],
        "latency_ms": [1000.0] * 4, "status": [200, 200, 200, 502], "cold": [1, 0, 0, 0],
        "instance_id": ["i1"] * 4, "ttft_ms": [900.0, 100.0, 120.0, np.nan],
        "tpot_ms": [20.0, 10.0, 12.0, np.nan], "itl_p50_ms": [20.0, 10.0, 11.0, np.nan],
        "itl_p99_ms": [25.0, 15.0, 16.0, np.nan], "input_tokens": [3, 3, 3, np.nan],
        "output_tokens": [10, 10, 20, np.nan]})
    s = summarize(df, slo={"ttft_ms": 500.0})
    t = s["tokens"]
    assert t["ttft_ms_cold"]["p50"] == 900.0 and t["ttft_ms_warm"]["p50"] == 110.0
    assert t["tpot_ms_warm"]["count"] == 2 and t["itl_ms_cold"]["p50"] == 20.0
    assert (t["output_tokens"], t["input_tokens"]) == (40, 9)
    assert t["output_tokens_per_s"] == pytest.approx(40 / 4.0)
    assert t["slo"] == {"ttft_ms": 500.0}
    assert t["goodput"]["good"] == 2 and t["goodput"]["n"] == 4  # the 502 is not good
    labels = dict(summary_table(s))
    assert labels["goodput"].startswith("0.500 (2/4 sent met ttft ≤ 500 ms")
    assert "TTFT ms" in labels and "TPOT ms" in labels
    # no token column, or none filled: no block
    assert "tokens" not in summarize(df.drop(columns=list(TOKEN_COLUMNS)))
    assert "tokens" not in summarize(df.assign(**{c: np.nan for c in TOKEN_COLUMNS}))


# ---- the held-in check: a server with known token timing ---------------------------------------
@pytest.fixture(scope="module")
def token_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "FC_SERVER_PORT": str(port)})
    try:
        assert "listening" in proc.stdout.readline()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def request(*, stream: bool = True, chat_api: bool = True, **extra) -> bytes:
    body = {"model": "known-timing", "max_tokens": TOKENS, "stream": stream,
            "stream_options": {"include_usage": True}, "first_ms": T_MS, "gap_ms": G_MS,
            **extra}
    if chat_api:
        body["messages"] = [{"role": "user", "content": "one two three"}]
    else:
        body["prompt"] = "one two three"
    return json.dumps(body).encode()


def assert_held_in(records: list[InvocationRecord]) -> None:
    """T and G come back within `TOLERANCE`: medians over `records`."""
    assert all(r.status == 200 and not r.error for r in records), [r.error for r in records]
    ttft = statistics.median(r.ttft_ms for r in records)
    tpot = statistics.median(r.tpot_ms for r in records)
    itl = statistics.median(r.itl_p50_ms for r in records)
    assert abs(ttft - T_MS) <= TOLERANCE * T_MS, ttft
    assert abs(tpot - G_MS) <= TOLERANCE * G_MS, tpot
    assert abs(itl - G_MS) <= TOLERANCE * G_MS, itl
    assert {(r.input_tokens, r.output_tokens) for r in records} == {(3, TOKENS)}
    # streamed, not buffered: the first token long before the end of the answer
    last = T_MS + (TOKENS - 1) * G_MS
    assert all(r.ttft_ms < r.latency_ms - 0.8 * (last - T_MS) for r in records)


def test_known_timing_comes_back_directly_for_chat_and_completions(token_port):
    for path, chat_api in (("v1/chat/completions", True), ("v1/completions", False)):
        with UrlTarget(f"http://127.0.0.1:{token_port}/{path}") as target:
            records = [target.invoke(request(chat_api=chat_api), "application/json")
                       for _ in range(3)]
        assert_held_in(records)


def test_a_buffered_stream_shows_as_one_arrival_and_a_whole_answer_has_counts_only(token_port):
    with UrlTarget(f"http://127.0.0.1:{token_port}/v1/chat/completions") as target:
        whole = target.invoke(request(buffered=True), "application/json")
        plain = target.invoke(request(stream=False), "application/json")
    # what a buffering gateway would deliver: every token at once, at the end
    assert whole.ttft_ms == pytest.approx(whole.latency_ms, abs=2.0)
    assert whole.itl_p50_ms == 0.0 and whole.tpot_ms == 0.0 and whole.output_tokens == TOKENS
    assert plain.status == 200 and (plain.input_tokens, plain.output_tokens) == (3, TOKENS)
    assert plain.ttft_ms is None and plain.tpot_ms is None and plain.itl_p50_ms is None


def test_a_bad_slo_is_a_usage_error(fcbench_run, tmp_path):
    res = fcbench_run("report", str(tmp_path), "--slo", "ttfx=500")
    assert res.returncode == 2
    assert "'ttfx' is not an objective fcbench knows (did you mean ttft?)" in res.stderr


# ---- through the harness, and fcbench run --------------------------------------------------------
def token_spec(name: str = "llm") -> dict:
    return {"functionName": name, "instanceConcurrency": 4,
            "harness": {"runtime": "process", "command": [sys.executable, SERVER],
                        "idleTimeout": 600, "maxInstances": 2}}


@pytest.mark.slow
def test_known_timing_comes_back_through_the_harness_http_trigger(harness_for):
    from fcbench.spec import function_spec_from_dict

    h = harness_for(function_spec_from_dict(token_spec()))
    with UrlTarget(h.url, function="llm", path="v1/chat/completions") as target:
        cold = target.invoke(request(), "application/json")
        records = [target.invoke(request(), "application/json") for _ in range(3)]
    assert cold.cold and cold.ttft_ms is not None and not any(r.cold for r in records)
    # the gateway streams: were it to buffer, TTFT would be the whole latency and no gaps
    assert_held_in(records)


@pytest.mark.slow
def test_fcbench_run_writes_token_columns_and_a_cold_warm_tokens_block(fcbench_run, tmp_path):
    body = json.loads(request())
    doc = {"name": "tokens", "target": {"kind": "local", "path": "v1/chat/completions",
                                        "functions": [token_spec()]},
           "request": {"timeout": 30, "body": body}, "duration": 2, "seed": 1,
           "plan": {"kind": "poisson", "rate": 4}, "output": str(tmp_path / "results"),
           "slo": "ttft=400,tpot=45"}  # the workload's objectives: no --slo needed
    wl = tmp_path / "tokens.yaml"
    wl.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = fcbench_run("run", str(wl), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    run = next(p for p in (tmp_path / "results").iterdir() if p.is_dir())
    df = pd.read_csv(run / "requests.csv")
    assert len(df) >= 3 and (df["status"] == 200).all()
    assert {"ttft_ms", "tpot_ms", "itl_p50_ms", "itl_p99_ms", "input_tokens",
            "output_tokens"} <= set(df.columns)
    assert (df["output_tokens"] == TOKENS).all() and (df["input_tokens"] == 3).all()
    warm = df[df["cold"] == 0]
    assert abs(warm["ttft_ms"].median() - T_MS) <= TOLERANCE * T_MS
    assert abs(warm["tpot_ms"].median() - G_MS) <= TOLERANCE * G_MS
    tokens = json.loads((run / "summary.json").read_text())["tokens"]
    assert tokens["ttft_ms_cold"]["count"] >= 1 and tokens["ttft_ms_warm"]["count"] >= 1
    assert tokens["ttft_ms_cold"]["p50"] > tokens["ttft_ms_warm"]["p50"]  # the start
    assert tokens["slo"] == {"ttft_ms": 400.0, "tpot_ms": 45.0}
    assert tokens["output_tokens"] == TOKENS * len(df)
    assert "TTFT ms" in res.stdout and "goodput" in res.stdout
    assert 'id="tokens"' in (run / "report.html").read_text()
    # the same run against a stricter objective: recounted from requests.csv
    again = fcbench_run("report", str(run), "--slo", "ttft=1")
    assert again.returncode == 0, again.stderr[-2000:]
    tokens = json.loads((run / "summary.json").read_text())["tokens"]
    assert tokens["slo"] == {"ttft_ms": 1.0} and tokens["goodput"]["good"] == 0
