"""The `llm` sample's OpenAI routes over real HTTP: the in-instance server as a real subprocess
(``python -m fcbench.server``), then the whole harness (process runtime) in front of it.

Streams are read with the standard library's `http.client`, piece by piece with arrival times,
so a framing or buffering mistake in fcbench cannot hide behind the same one in the client.
"""

from __future__ import annotations

import http.client as httpc
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
from harness_utils import http, signed_headers

from fcbench.harness.server import HarnessConfig, HarnessThread
from fcbench.models.byte_tokenizer import GENERATED_BYTES
from fcbench.spec import load_function_spec

pytestmark = pytest.mark.slow  # every test here starts a server process

SPEC_FILE = pathlib.Path(__file__).resolve().parents[1] / "workloads/functions/llm.yaml"
MAX_CONTEXT = 1024
CHAT = [{"role": "user", "content": "Say hello."}]


class Answer:
    """One POST read as it arrives: status, headers, the body's pieces with their arrival times
    (ms after sending) and its SSE events. `stop_after`: hang up after that many events."""

    def __init__(self, url: str, doc: dict, *, stop_after: int | None = None,
                 signed: bool = False, timeout: float = 60) -> None:
        parts = urlsplit(url)
        body = json.dumps(doc).encode()
        headers = {"Content-Type": "application/json",
                   **(signed_headers("POST", url, body) if signed else {})}
        conn = httpc.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.t0 = time.perf_counter()
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.pieces: list[tuple[float, bytes]] = []
        while True:
            data = resp.read1(1 << 16)
            if not data:
                break
            self.pieces.append(((time.perf_counter() - self.t0) * 1000.0, data))
            if stop_after is not None and self.body.count(b"\n\n") >= stop_after:
                break
        self.end_ms = (time.perf_counter() - self.t0) * 1000.0
        conn.close()

    @property
    def body(self) -> bytes:
        return b"".join(p for _, p in self.pieces)

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def events(self) -> list[bytes]:
        """The SSE events, each checked to be one ``data: ...`` line closed by a blank line."""
        assert self.body.endswith(b"\n\n"), self.body[-80:]
        out = self.body[:-2].split(b"\n\n")
        assert all(e.startswith(b"data: ") and b"\n" not in e for e in out), out[:3]
        return [e[len(b"data: "):] for e in out]

    def chunks(self) -> list[dict]:
        """The JSON events before the closing ``[DONE]`` (which must be last, and only once)."""
        events = self.events
        assert events[-1] == b"[DONE]" and events.count(b"[DONE]") == 1
        return [json.loads(e) for e in events[:-1]]

    def content_times(self) -> list[float]:
        """When each event's last byte arrived (ms after sending)."""
        times, seen = [], 0
        for t, piece in self.pieces:
            seen += piece.count(b"\n\n")
            times += [t] * (seen - len(times))
        return times


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The instance server serving the built-in tiny model (built at its first load, as in a
    fresh cache), context capped at MAX_CONTEXT; yields its base URL."""
    cache = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "FCBENCH_MODEL": "llm", "FC_SERVER_PORT": "0",
           "FCBENCH_CACHE_DIR": str(cache), "FCBENCH_LLM_MAX_CONTEXT": str(MAX_CONTEXT)}
    env.pop("FCBENCH_READY_FD", None)
    proc = subprocess.Popen([sys.executable, "-m", "fcbench.server"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "listening on" in line, line + proc.stderr.read()
        yield "http://" + line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)


def test_streamed_completion_is_sse_with_one_event_per_token_usage_and_done(server):
    got = Answer(f"{server}/v1/completions", {
        "model": "llm", "prompt": "Once upon a time", "max_tokens": 40, "ignore_eos": True,
        "stream": True, "stream_options": {"include_usage": True}})
    assert got.status == 200
    h = got.headers
    assert h["content-type"] == "text/event-stream" and h["transfer-encoding"] == "chunked"
    for name in ("x-fcbench-instance-id", "x-fcbench-boot-ts", "x-fcbench-model-load-ms",
                 "x-fcbench-ready-ts", "x-fcbench-first"):
        assert name in h, name
    assert h["x-fcbench-model"] == "llm"
    chunks = got.chunks()
    tokens, closing, usage = chunks[:-2], chunks[-2], chunks[-1]
    assert len(tokens) == 40
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("cmpl-")
    for c in tokens:
        assert c["object"] == "text_completion" and c["model"] == "llm"
        (choice,) = c["choices"]
        assert choice["index"] == 0 and choice["finish_reason"] is None
        assert len(choice["text"]) == 1 and ord(choice["text"]) in GENERATED_BYTES
    assert closing["choices"][0]["finish_reason"] == "length"
    assert closing["choices"][0]["text"] == ""
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 17, "completion_tokens": 40, "total_tokens": 57}


def test_tokens_reach_the_client_as_they_are_made(server):
    got = Answer(f"{server}/v1/completions", {"prompt": "x", "max_tokens": 150,
                                              "ignore_eos": True, "stream": True})
    times = got.content_times()[:150]
    assert len(got.chunks()) == 151
    # written one by one: many separate arrivals, spread over the generation, not one burst
    assert len(set(times)) > 75, f"{len(set(times))} distinct arrival times for 150 tokens"
    span = times[-1] - times[0]
    assert span > 0.5 * (got.end_ms - times[0]), (times[0], times[-1], got.end_ms)


def test_streamed_chat_opens_with_the_role_and_ends_with_an_empty_delta(server):
    got = Answer(f"{server}/v1/chat/completions", {"messages": CHAT, "max_tokens": 8,
                                                   "ignore_eos": True, "stream": True})
    chunks = got.chunks()
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 10  # no usage asked
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in chunks[1:9])
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                        "finish_reason": "length"}


def test_non_streamed_answers_are_one_json_with_usage(server):
    got = Answer(f"{server}/v1/completions", {"prompt": "abc", "max_tokens": 12,
                                              "temperature": 0, "ignore_eos": True})
    assert got.status == 200 and got.headers["content-type"].startswith("application/json")
    assert float(got.headers["x-fcbench-inference-ms"]) > 0
    doc = got.json()
    assert doc["object"] == "text_completion" and len(doc["choices"][0]["text"]) == 12
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"] == {"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16}
    again = Answer(f"{server}/v1/completions", {"prompt": "abc", "max_tokens": 12,
                                                "temperature": 0, "ignore_eos": True}).json()
    assert again["choices"][0]["text"] == doc["choices"][0]["text"]  # greedy: the same text
    streamed = Answer(f"{server}/v1/completions", {"prompt": "abc", "max_tokens": 12,
                                                   "temperature": 0, "ignore_eos": True,
                                                   "stream": True}).chunks()
    assert "".join(c["choices"][0]["text"] for c in streamed) == doc["choices"][0]["text"]

    chat = Answer(f"{server}/v1/chat/completions", {"messages": CHAT, "max_tokens": 5,
                                                    "seed": 1}).json()
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] == len(chat["choices"][0]["message"]["content"])


def test_eos_ends_an_answer_with_finish_reason_stop(server):
    doc = Answer(f"{server}/v1/completions", {"prompt": "a", "max_tokens": 900,
                                              "seed": 7}).json()
    n = doc["usage"]["completion_tokens"]
    assert doc["choices"][0]["finish_reason"] == "stop" and 0 <= n < 900
    assert len(doc["choices"][0]["text"]) == n


def test_models_lists_the_served_name_and_another_name_is_404(server):
    status, headers, body = http("GET", f"{server}/v1/models", signed=False)
    doc = json.loads(body)
    assert status == 200 and doc["object"] == "list" and "x-fcbench-instance-id" in headers
    assert [(m["id"], m["object"], m["max_model_len"]) for m in doc["data"]] == \
        [("llm", "model", MAX_CONTEXT)]
    got = Answer(f"{server}/v1/chat/completions", {"model": "gpt-4o", "messages": CHAT})
    assert got.status == 404
    assert got.json() == {"error": {"message": "The model `gpt-4o` does not exist.",
                                    "type": "NotFoundError", "param": "model", "code": 404}}


@pytest.mark.parametrize(("path", "doc", "words"), [
    ("/v1/completions", {"prompt": "a", "n": 3}, "n must be 1"),
    ("/v1/completions", {"prompt": "a", "max_tokens": 2000}, "maximum context length is 1024"),
    ("/v1/completions", {"prompt": "a", "stream_options": {"include_usage": True}},
     "stream_options can only be given when stream is true"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages must be a non-empty list"),
    ("/v1/chat/completions", {"messages": CHAT, "temperature": -0.5}, "non-negative"),
    ("/v1/chat/completions", b"{not json", "not valid JSON"),
    ("/invoke", {"prompt": "a", "stream": True}, "stream is not supported on this path"),
])
def test_bad_requests_get_openai_style_400s(server, path, doc, words):
    status, headers, body = http("POST", server + path, doc, signed=False)
    assert status == 400, body
    err = json.loads(body)["error"]
    assert "x-fcbench-instance-id" in headers
    if path == "/invoke":  # answered like the other models' bad input: {"error": "..."}
        assert words in err, err
    else:
        assert words in err["message"], err
        assert err["type"] == "BadRequestError" and err["code"] == 400


def test_invoke_takes_a_chat_body_as_the_sample_request(server):
    body, ctype = load_function_spec(SPEC_FILE).harness.sample_request.body()
    status, _, data = http("POST", f"{server}/invoke", body,
                                 headers={"Content-Type": ctype}, signed=False)
    doc = json.loads(data)
    assert status == 200 and doc["object"] == "chat.completion"
    assert doc["usage"]["completion_tokens"] <= 16


def test_a_client_that_hangs_up_stops_its_generation(server):
    long = {"prompt": "z", "max_tokens": 500, "ignore_eos": True}
    whole = Answer(f"{server}/v1/completions", long)
    assert whole.json()["usage"]["completion_tokens"] == 500
    cut = Answer(f"{server}/v1/completions", {**long, "stream": True}, stop_after=3)
    assert len(cut.body.split(b"\n\n")) < 10
    # generations run one at a time: had the cut one gone on, this one would wait for it
    t0 = time.perf_counter()
    status, _, _ = http("POST", f"{server}/v1/completions", {"prompt": "y", "max_tokens": 1},
                        signed=False)
    waited = (time.perf_counter() - t0) * 1000.0
    assert status == 200
    assert waited < whole.end_ms / 3, (waited, whole.end_ms)


def test_generations_on_one_instance_run_one_at_a_time(server):
    doc = {"prompt": "q", "max_tokens": 120, "ignore_eos": True, "stream": True}
    got: dict[int, Answer] = {}

    def send(i: int) -> None:
        got[i] = Answer(f"{server}/v1/completions", doc)

    first = threading.Thread(target=send, args=(0,))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=send, args=(1,))
    second.start()
    first.join(60)
    second.join(60)
    a, b = got[0], got[1]
    a_last = a.t0 * 1000 + a.content_times()[-3]   # the first answer's last token
    b_first = b.t0 * 1000 + b.content_times()[0]   # the second answer's first token
    assert b_first >= a_last, (b_first - a_last)


# ------------------------------------------------------------------------------------ the harness


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("hcache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FCBENCH_CACHE_DIR", str(cache))  # the harness prepares the model here
        spec = load_function_spec(SPEC_FILE)
        config = HarnessConfig(port=0, virtual_gpus="1x16GB",
                               log_dir=tmp_path_factory.mktemp("logs"))
        with HarnessThread([spec], config) as h:
            yield h


def test_streamed_chat_through_the_harness_http_trigger(harness):
    got = Answer(f"{harness.url}/http/llm/v1/chat/completions", {
        "model": "llm", "messages": CHAT, "max_tokens": 60, "ignore_eos": True,
        "stream": True, "stream_options": {"include_usage": True}}, signed=True)
    assert got.status == 200, got.body[:300]
    h = got.headers
    assert h["content-type"] == "text/event-stream"
    assert h["x-fcbench-cold"] == "1" and h["x-fcbench-first"] == "1"
    assert float(h["x-fcbench-model-load-ms"]) > 0 and h["x-fc-instance-id"]
    chunks = got.chunks()
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) \
        == 60
    assert chunks[-1]["usage"]["completion_tokens"] == 60
    times = got.content_times()
    assert len(set(times)) > 20  # the gateway passed the events on as they came

    warm = Answer(f"{harness.url}/http/llm/v1/completions", {
        "prompt": "hi", "max_tokens": 4}, signed=True)
    assert warm.status == 200 and warm.headers["x-fcbench-cold"] == "0"
    assert warm.json()["usage"]["completion_tokens"] <= 4
    status, _, body = http("GET", f"{harness.url}/http/llm/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"] == "llm"
