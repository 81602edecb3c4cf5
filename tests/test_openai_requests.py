"""`request.openai`: bodies drawn per request, reproducibly, from length distributions or a
dataset of prompts; the YAML around it; and a real `fcbench run` whose server records what it
got (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import statistics
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from fcbench.errors import SpecError
from fcbench.load.loader import load_workload, workload_from_dict
from fcbench.load.openai_requests import (CHAT_PATH, COMPLETIONS_PATH, OpenAIRequestConfig,
                                          RequestGenerator, read_dataset, request_generator)
from fcbench.targets.url import invoke_url

ROOT = Path(__file__).resolve().parent.parent
PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")


def generator(seed: int = 3, **keys: Any) -> RequestGenerator:
    keys = {"model": "llm", "promptTokens": "normal:128:32", "outputTokens": "uniform:16:48",
            **keys}
    return RequestGenerator(OpenAIRequestConfig.model_validate(keys), seed=seed)


def content(body: bytes) -> str:
    doc = json.loads(body)
    return doc["messages"][0]["content"] if "messages" in doc else doc["prompt"]


# -- drawing ------------------------------------------------------------------------------------

def test_the_same_seed_and_n_give_the_same_body_and_every_n_another() -> None:
    a, b = generator(seed=3), generator(seed=3)
    draws = [a.draw(n) for n in range(200)]
    assert [b.draw(n) for n in reversed(range(200))][::-1] == draws  # order does not matter
    assert len({d.body for d in draws}) == 200
    assert len({content(d.body) for d in draws}) == 200
    assert generator(seed=4).draw(0).body != draws[0].body
    assert generator(seed=-3).draw(0).body != draws[0].body  # a negative seed is its own


def test_a_chat_body_asks_for_a_stream_with_usage_and_the_drawn_length() -> None:
    d = generator().draw(7)
    doc = json.loads(d.body)
    assert d.content_type == "application/json"
    assert doc == {"model": "llm", "messages": [{"role": "user", "content": content(d.body)}],
                   "max_tokens": d.max_tokens, "temperature": 0.0, "stream": True,
                   "stream_options": {"include_usage": True}, "ignore_eos": True}
    assert len(content(d.body)) == d.prompt_tokens


def test_completions_unstreamed_without_ignore_eos() -> None:
    g = generator(api="completions", stream=False, ignoreEos=False, temperature=0.7)
    doc = json.loads(g.draw(0).body)
    assert set(doc) == {"model", "prompt", "max_tokens", "temperature", "stream"}
    assert doc["stream"] is False and doc["temperature"] == 0.7
    assert g.path == COMPLETIONS_PATH and generator().path == CHAT_PATH


@pytest.mark.parametrize("text, mean, sd, low, high", [
    ("normal:128:32", 128, 32, 1, None),
    ("uniform:16:48", 32, 32 / 12 ** 0.5, 16, 48),
    ("exp:50", 50, 50, 1, None),
    ("lognormal:100:50", 100, 50, 1, None),
    ("const:40", 40, 0, 40, 40),
    (40, 40, 0, 40, 40),
])
def test_lengths_follow_their_distribution(text: Any, mean: float, sd: float, low: int,
                                           high: int | None) -> None:
    g = generator(outputTokens=text, promptTokens=text)
    draws = [g.draw(n) for n in range(4000)]
    for values in ([d.max_tokens for d in draws], [d.prompt_tokens for d in draws]):
        assert all(isinstance(v, int) for v in values)
        # 5 standard errors, plus the rounding and the clamp at 1 token
        assert abs(statistics.fmean(values) - mean) <= 5 * sd / 4000 ** 0.5 + 0.6, text
        assert min(values) >= low and (high is None or max(values) <= high)
    if sd:
        assert abs(statistics.stdev(d.max_tokens for d in draws) - sd) <= 0.1 * sd


def test_a_draw_below_one_token_is_one_token() -> None:
    values = [generator(outputTokens="normal:2:10").draw(n).max_tokens for n in range(500)]
    assert min(values) == 1 and values.count(1) > 100


@pytest.mark.parametrize("cpt", [1, 4, 3.5])
def test_a_synthetic_prompt_has_exactly_tokens_times_chars_per_token_characters(cpt) -> None:
    g = generator(charsPerToken=cpt, promptTokens="uniform:1:3000")  # past the text pool
    for n in range(300):
        d = g.draw(n)
        text = content(d.body)
        assert len(text) == max(1, round(d.prompt_tokens * cpt)), (n, d.prompt_tokens)
        assert set(text) <= PRINTABLE and not text.startswith(" ")
        assert json.dumps(text) == f'"{text}"' and text.encode() in d.body  # nothing escaped


def test_a_draw_is_cheap() -> None:
    g = generator()
    g.draw(0)
    t0 = time.perf_counter()
    for n in range(2000):
        g.draw(n)
    per_draw_us = (time.perf_counter() - t0) / 2000 * 1e6
    assert per_draw_us < 100, per_draw_us  # ~8 us here; slack for a loaded machine


def test_the_generator_travels_as_plain_values(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hello", "output_tokens": 3}\n{"prompt": "bye"}\n')
    cfg = OpenAIRequestConfig(model="m", dataset="d.jsonl", output_tokens="exp:9")
    g = RequestGenerator(cfg, seed=11, dataset=data)
    d = g.to_dict()
    json.dumps(d)
    assert d["dataset"] == str(data.resolve()) and d["seed"] == 11
    other = RequestGenerator.from_dict(d)
    assert [other.draw(n) for n in range(20)] == [g.draw(n) for n in range(20)]


# -- datasets -----------------------------------------------------------------------------------

def write(path: Path, *lines: Any) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n"
                            for x in lines))
    return path


def test_sharegpt_and_prompt_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl",
                 {"id": "a", "conversations": [{"from": "system", "value": "be brief"},
                                               {"from": "human", "value": "héllo?"},
                                               {"from": "gpt", "value": "x" * 40}]},
                 "",
                 {"conversations": [{"from": "human", "value": "only a question"}]},
                 {"prompt": "say \"hi\"\n", "output_tokens": 7},
                 {"prompt": "no length"})
    entries = read_dataset(path, chars_per_token=4)
    assert [(e.prompt, e.output_tokens, e.line) for e in entries] == [
        ("héllo?", 10, 1), ("only a question", None, 3), ('say "hi"\n', 7, 4),
        ("no length", None, 5)]


def test_dataset_prompts_come_in_a_seeded_order_with_their_lengths(tmp_path: Path) -> None:
    lines = [{"prompt": f"prompt number {i}", "output_tokens": i + 1} for i in range(10)]
    path = write(tmp_path / "d.jsonl", *lines)
    cfg = OpenAIRequestConfig(model="m", dataset=str(path))

    def order(seed: int) -> list[str]:
        g = RequestGenerator(cfg, seed=seed, dataset=path)
        draws = [g.draw(n) for n in range(20)]
        for d in draws:
            i = int(content(d.body).rsplit(" ", 1)[1])
            assert d.max_tokens == i + 1 and d.prompt_tokens == len(f"prompt number {i}")
        return [content(d.body) for d in draws]

    first = order(5)
    assert sorted(first[:10]) == sorted(x["prompt"] for x in lines)  # each once, then again
    assert first[10:] == first[:10] and first == order(5)
    assert first != order(6) and first[:10] != [x["prompt"] for x in lines]
    # outputTokens, when given, sets every answer's length instead of the file
    g = RequestGenerator(cfg.model_copy(update={"output_tokens": 5}), seed=5, dataset=path)
    assert {g.draw(n).max_tokens for n in range(10)} == {5}


@pytest.mark.parametrize("line, needle", [
    ('{"prompt": "x"', "not valid JSON"),
    ('["a list"]', "is a JSON object"),
    ('{"conversations": [{"from": "gpt", "value": "no question"}]}', "no human turn"),
    ('{"prompt": ""}', "non-empty string"),
    ('{"prompt": "x", "output_tokens": 0}', "output_tokens"),
    ('{"text": "x"}', '"conversations" (ShareGPT) or "prompt"'),
])
def test_a_bad_dataset_line_names_the_file_and_line(tmp_path: Path, line: str,
                                                     needle: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "fine", "output_tokens": 2}\n\n' + line + "\n")
    with pytest.raises(SpecError) as err:
        read_dataset(path)
    assert str(err.value).startswith(f"{path}:3: ") and needle in str(err.value), str(err.value)


def test_a_dataset_line_without_an_output_length_needs_output_tokens(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", {"prompt": "a", "output_tokens": 3}, {"prompt": "b"})
    cfg = OpenAIRequestConfig(model="m", dataset=str(path))
    with pytest.raises(SpecError, match=r"d\.jsonl:2: .*set request\.openai\.outputTokens"):
        RequestGenerator(cfg, seed=0, dataset=path)


def test_the_shipped_sample_is_sharegpt_with_replies() -> None:
    entries = read_dataset(ROOT / "workloads" / "data" / "chat-sample.jsonl")
    assert len(entries) >= 30 and all(e.output_tokens for e in entries)
    assert all(set(e.prompt) <= PRINTABLE for e in entries)


# -- the workload YAML --------------------------------------------------------------------------

def workload(tmp_path: Path, request: str, target: str = "{kind: url, url: "
             "'http://127.0.0.1:9'}") -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(f"name: t\ntarget: {target}\nrequest:\n{request}\nduration: 5\n"
                    "seed: 9\nplan: {kind: poisson, rate: 2}\n")
    return path


OPENAI = "  openai:\n    model: llm\n    promptTokens: 64\n    outputTokens: 8\n"


@pytest.mark.parametrize("request_text, needles", [
    (OPENAI + "    promptToken: 3\n",
     ["w.yaml:8:", "request.openai.promptToken", "did you mean 'promptTokens'"]),
    (OPENAI + "  body: hello\n", ["w.yaml:8:", "request.body", "remove request.body"]),
    (OPENAI + "  contentType: text/plain\n", ["request.contentType"]),
    ("  openai:\n    model: llm\n    outputTokens: 8\n",
     ["w.yaml:4:", "request.openai", "needs promptTokens"]),
    ("  openai:\n    promptTokens: 8\n    outputTokens: 8\n", ["request.openai.model"]),
    (OPENAI.replace("64", "uniform:9:3"), ["w.yaml:6:", "promptTokens", "LOW <= HIGH"]),
    (OPENAI.replace("64", "exp:2s"), ["promptTokens", "cannot read 'exp:2s'"]),
    (OPENAI.replace("64", "normal:-5:1"), ["promptTokens", "above 0"]),
    (OPENAI.replace("64", "5000000"), ["promptTokens", "lower it"]),
    (OPENAI.replace("8\n", "yes\n"), ["outputTokens", "a count of tokens"]),
    (OPENAI + "    api: chats\n", ["request.openai.api"]),
    (OPENAI + "    charsPerToken: 0\n", ["request.openai.charsPerToken"]),
    (OPENAI + "    dataset: d.jsonl\n", ["promptTokens and dataset exclude each other"]),
    ("  openai: {model: llm, dataset: missing.jsonl}\n",
     ["request.openai.dataset", "'missing.jsonl' not found"]),
])
def test_bad_openai_sections_name_the_key(tmp_path: Path, request_text: str,
                                          needles: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        load_workload(workload(tmp_path, request_text))
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_a_bad_dataset_is_reported_at_load_with_its_own_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"prompt": "ok", "output_tokens": 1}\n{oops}\n')
    with pytest.raises(SpecError, match=r"d\.jsonl:2: not valid JSON"):
        load_workload(workload(tmp_path, "  openai: {model: llm, dataset: d.jsonl}"))


def test_the_workload_gives_the_generator_its_seed_and_dataset(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "d.jsonl", {"prompt": "one", "output_tokens": 2})
    wl = load_workload(workload(tmp_path, "  openai: {model: llm, dataset: data/d.jsonl}"))
    g = request_generator(wl)
    assert g is not None and g.seed == 9 and g.dataset == tmp_path / "data" / "d.jsonl"
    assert wl.request_body() == (g.draw(0).body, "application/json")
    recorded = wl.to_run_yaml()["request"]["openai"]
    assert recorded["seed"] == 9 and recorded["dataset"] == str(tmp_path / "data" / "d.jsonl")
    yaml.safe_dump(recorded)
    own = load_workload(workload(tmp_path, OPENAI + "    seed: 4\n"))
    assert request_generator(own).seed == 4  # type: ignore[union-attr]
    assert request_generator(load_workload(workload(tmp_path, "  body: x"))) is None


@pytest.mark.parametrize("target, api, url", [
    ("{kind: url, url: 'http://h:1'}", "chat", "http://h:1/v1/chat/completions"),
    ("{kind: url, url: 'http://h:1/'}", "completions", "http://h:1/v1/completions"),
    ("{kind: url, url: 'http://h:1/v1'}", "chat", "http://h:1/v1/chat/completions"),
    ("{kind: url, url: 'http://h:1/v1/chat/completions'}", "chat",
     "http://h:1/v1/chat/completions"),
    ("{kind: url, url: 'http://h:1/x', path: mine}", "chat", "http://h:1/x/mine"),
    ("{kind: url, url: 'http://h:1', function: llm}", "chat",
     "http://h:1/http/llm/v1/chat/completions"),
])
def test_requests_go_to_the_api_path_unless_the_target_names_one(tmp_path, target, api,
                                                                 url) -> None:
    wl = load_workload(workload(tmp_path, OPENAI + f"    api: {api}\n", target))
    t = wl.send_target()
    assert invoke_url(t.url, t.function, t.path) == url


def test_a_local_target_gets_the_api_path_on_its_http_trigger(tmp_path: Path) -> None:
    spec = {"functionName": "llm", "environmentVariables": {"FCBENCH_MODEL": "sleep"}}
    doc = {"target": {"kind": "local", "functions": [spec]}, "duration": 5,
           "plan": {"kind": "poisson", "rate": 1},
           "request": {"openai": {"model": "llm", "api": "completions", "promptTokens": 4,
                                  "outputTokens": 4}}}
    t = workload_from_dict(doc, base_dir=tmp_path).send_target("http://127.0.0.1:5")
    assert invoke_url(t.url, t.function, t.path) == "http://127.0.0.1:5/http/llm/v1/completions"
    doc["target"]["path"] = "v1/chat/completions"  # an explicit path wins
    t = workload_from_dict(doc, base_dir=tmp_path).send_target("http://127.0.0.1:5")
    assert t.path == "v1/chat/completions"


def test_the_shipped_llm_workloads_draw_chat_requests() -> None:
    chat = load_workload(ROOT / "workloads" / "llm-chat.yaml")
    shared = load_workload(ROOT / "workloads" / "llm-chat-sharegpt.yaml")
    for wl in (chat, shared):
        assert wl.request.openai is not None and wl.request.openai.stream
        assert wl.send_target("http://127.0.0.1:5").path == CHAT_PATH
    assert request_generator(shared).dataset.name == "chat-sample.jsonl"  # type: ignore


# -- a real run ---------------------------------------------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    got: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.got.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_a_run_sends_the_drawn_bodies(tmp_path: Path, fcbench_run, processes: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.got = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "w.yaml"
        path.write_text(
            f"name: chat\ntarget: {{kind: url, url: 'http://127.0.0.1:{server.server_port}'}}\n"
            "request:\n  openai: {model: llm, promptTokens: 'normal:64:16', "
            "outputTokens: 'uniform:4:12'}\nduration: 2\nseed: 5\n"
            "plan: {kind: poisson, rate: 15}\n"
            f"output: {tmp_path / 'results'}\n")
        res = fcbench_run("run", str(path), "--no-progress", "--processes", str(processes),
                          timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        server.shutdown()
        server.server_close()
    wl = load_workload(path)
    count = sum(1 for _ in wl.plan_obj().offsets(wl.duration))
    g = request_generator(wl)
    got = server.got  # type: ignore[attr-defined]
    assert {p for p, _ in got} == {"/v1/chat/completions"}
    # request n of the plan carries draw n, whichever process sent it
    assert sorted(b for _, b in got) == sorted(g.draw(n).body for n in range(count))
    assert len({b for _, b in got}) == count > 15
    run = next((tmp_path / "results").iterdir())
    recorded = yaml.safe_load((run / "run.yaml").read_text())
    assert recorded["workload"]["request"]["openai"]["seed"] == 5
