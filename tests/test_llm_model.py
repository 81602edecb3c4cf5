"""The `llm` sample model in-process: the numpy Llama against transformers' LlamaForCausalLM on the
same saved directory, the KV cache against a full recompute, the generation rules (greedy, seeds,
eos, min_tokens, ignore_eos, top_p, the printable-ASCII mask), the OpenAI request checks and the
`Model` path used by POST /invoke."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from fcbench.models import Model, llm
from fcbench.models import llama_numpy as L
from fcbench.models.byte_tokenizer import GENERATED_BYTES, ByteTokenizer
from fcbench.models.llm_api import ApiError, ModelNotFound, TextGenerator

EOS = 257
#: a small geometry with grouped-query attention (4 query heads on 2 kv heads), fast to build
MICRO = {"vocab_size": 259, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
         "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "bos_token_id": 256,
         "eos_token_id": EOS, "pad_token_id": 258}


def micro_dir(root: pathlib.Path, *, tie: bool = True, seed: int = 1,
              boost_eos: float = 0.0) -> pathlib.Path:
    """Save a micro model; `boost_eos` adds to the eos row of an untied lm_head (a known truth:
    greedy decoding then ends at once)."""
    config = L.LlamaConfig(**MICRO, tie_word_embeddings=tie)
    weights = L.init_weights(config, seed)
    if boost_eos:
        weights["lm_head.weight"][EOS] += boost_eos
    return L.save(root / f"micro-{tie}-{seed}-{boost_eos}", config, weights)


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> llm.LLM:
    return llm.LLM(micro_dir(tmp_path_factory.mktemp("llm")), max_context=512)


def body(**doc: object) -> bytes:
    return json.dumps(doc).encode()


def generate(model: llm.LLM, **doc: object) -> tuple[list[int], str | None]:
    gen = model.generate(model.parse(body(**doc), kind="completion"))
    ids = list(gen)
    return ids, gen.finish_reason


# ------------------------------------------------------------------------------------ the network


@pytest.mark.slow  # imports torch and transformers (seconds)
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_logits_match_transformers_llama_on_the_same_directory(tmp_path, tie):
    torch = pytest.importorskip("torch", reason="torch is needed to run the HF reference model")
    transformers = pytest.importorskip("transformers",
                                       reason="transformers holds the reference LlamaForCausalLM")
    path = micro_dir(tmp_path, tie=tie)
    ids = np.random.default_rng(0).integers(0, 259, 40)
    ours = llm.LLM(path).llama
    logits = ours.forward(ids, ours.new_cache(64), all_logits=True)

    hf = transformers.LlamaForCausalLM.from_pretrained(str(path)).eval()
    assert hf.config.num_key_value_heads == 2 and hf.config.tie_word_embeddings is tie
    with torch.no_grad():
        ref = hf(torch.tensor(ids[None])).logits[0].numpy()
    assert logits.shape == ref.shape == (40, 259)
    np.testing.assert_allclose(logits, ref, atol=1e-4, rtol=0)
    assert np.abs(ref).max() > 0.1  # not a trivially small comparison


@pytest.mark.slow
def test_built_in_tiny_model_loads_in_transformers(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="torch is needed to run the HF reference model")
    transformers = pytest.importorskip("transformers",
                                       reason="transformers holds the reference LlamaForCausalLM")
    import torch

    monkeypatch.setenv("FCBENCH_CACHE_DIR", str(tmp_path))
    path = llm.ensure(None, seed=0, size="tiny")
    hf = transformers.LlamaForCausalLM.from_pretrained(str(path)).eval()
    assert sum(p.numel() for p in hf.parameters()) == llm.SIZES["tiny"].num_parameters
    ids = ByteTokenizer().encode("The quick brown fox")
    ours = llm.LLM(path).llama
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0, -1].numpy()
    np.testing.assert_allclose(ours.forward(ids, ours.new_cache(32)), ref, atol=1e-4, rtol=0)


def test_kv_cache_decode_equals_full_recompute(micro):
    model = micro.llama
    ids = np.random.default_rng(3).integers(0, 256, 30)
    full = model.forward(ids, model.new_cache(30), all_logits=True)
    cache = model.new_cache(30)
    step = [model.forward(ids[:10], cache, all_logits=True)]
    step += [model.forward(ids[i:i + 1], cache, all_logits=True) for i in range(10, 30)]
    np.testing.assert_allclose(np.concatenate(step), full, atol=1e-5, rtol=0)
    assert cache.length == 30


def test_chunked_prefill_gives_the_same_tokens(micro, monkeypatch):
    prompt = list(range(40, 140))
    whole = generate(micro, prompt=prompt, max_tokens=12, temperature=0, ignore_eos=True)
    monkeypatch.setattr(llm, "PREFILL_CHUNK", 7)
    assert generate(micro, prompt=prompt, max_tokens=12, temperature=0, ignore_eos=True) == whole


def test_forward_refuses_a_full_cache_and_unknown_ids(micro):
    model = micro.llama
    cache = model.new_cache(4)
    model.forward([1, 2, 3], cache)
    with pytest.raises(ValueError, match="capacity of 4"):
        model.forward([1, 2], cache)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 259\)"):
        model.forward([300], model.new_cache(4))


# ------------------------------------------------------------------------------------ generation


def test_greedy_is_deterministic_and_sampling_follows_the_seed(micro):
    greedy = generate(micro, prompt="hello", max_tokens=20, temperature=0, ignore_eos=True)
    assert generate(micro, prompt="hello", max_tokens=20, temperature=0, ignore_eos=True) == greedy
    seeded = [generate(micro, prompt="hello", max_tokens=20, seed=s, ignore_eos=True)[0]
              for s in (5, 5, 6)]
    assert seeded[0] == seeded[1] != seeded[2]
    # greedy really is the argmax of the allowed logits
    model = micro.llama
    ids = ByteTokenizer().encode("hello")
    logits = model.forward(ids, model.new_cache(8))
    allowed = list(GENERATED_BYTES)
    assert greedy[0][0] == allowed[int(np.argmax(logits[allowed]))]


def test_a_tiny_top_p_keeps_only_the_most_likely_token(micro):
    greedy = generate(micro, prompt="abc", max_tokens=15, temperature=0, ignore_eos=True)
    nucleus = generate(micro, prompt="abc", max_tokens=15, temperature=1.5, top_p=1e-6, seed=1,
                       ignore_eos=True)
    assert nucleus == greedy


def test_generated_tokens_are_printable_ascii_or_newline(micro):
    ids, reason = generate(micro, prompt="x", max_tokens=300, temperature=50.0, seed=2,
                           ignore_eos=True)
    assert len(ids) == 300 and reason == "length"
    assert set(ids) <= set(GENERATED_BYTES)
    assert len(set(ids)) > 60  # a hot temperature reaches most of them
    text = "".join(micro.token_text(i) for i in ids)
    assert text.encode("utf-8") == bytes(ids)


def test_eos_stops_unless_ignored_and_never_before_min_tokens(tmp_path):
    model = llm.LLM(micro_dir(tmp_path, tie=False, boost_eos=50.0))
    assert generate(model, prompt="hi", max_tokens=10, temperature=0) == ([], "stop")
    ids, reason = generate(model, prompt="hi", max_tokens=10, temperature=0, min_tokens=3)
    assert len(ids) == 3 and reason == "stop" and EOS not in ids
    ids, reason = generate(model, prompt="hi", max_tokens=10, temperature=0, ignore_eos=True)
    assert len(ids) == 10 and reason == "length" and EOS not in ids


def test_a_set_cancel_event_ends_the_generation_early(micro):
    cancel = threading.Event()
    gen = micro.generate_ids([256, 97], max_tokens=50, ignore_eos=True, cancel=cancel)
    got = [next(gen), next(gen)]
    cancel.set()
    assert len(got + list(gen)) == 2 and gen.finish_reason is None
    plain = micro.generate_ids([256, 97], max_tokens=9, temperature=0, ignore_eos=True)
    assert list(plain) == generate(micro, prompt="a", max_tokens=9, temperature=0,
                                   ignore_eos=True)[0]
    with pytest.raises(ValueError, match="maximum context length is 512"):
        micro.generate_ids([1] * 500, max_tokens=100)


# ------------------------------------------------------------------------------------ the request


@pytest.mark.parametrize(("doc", "status", "param", "words"), [
    ({"prompt": "a", "n": 2}, 400, "n", "n must be 1"),
    ({"prompt": "a", "model": "gpt-4"}, 404, "model", "The model `gpt-4` does not exist."),
    ({"prompt": "a", "temperature": -1}, 400, "temperature", "non-negative"),
    ({"prompt": "a", "top_p": 0}, 400, "top_p", "(0, 1]"),
    ({"prompt": "a", "max_tokens": 0}, 400, "max_tokens", "at least 1"),
    ({"prompt": "a", "max_tokens": "8"}, 400, "max_tokens", "must be an integer"),
    ({"prompt": "a", "stream_options": {"include_usage": True}}, 400, "stream_options",
     "only be given when stream is true"),
    ({"prompt": "a", "stop": ["\n"]}, 400, "stop", "not supported"),
    ({"prompt": "a", "ignore_eos": "yes"}, 400, "ignore_eos", "true or false"),
    ({"prompt": 3}, 400, "prompt", "a string or a list of token ids"),
    ({"prompt": [1, 999]}, 400, "prompt", "token id 999 is outside"),
    ({"prompt": ["a", "b"]}, 400, "prompt", "holds 2 prompts"),
    ({"prompt": "a" * 600}, 400, "prompt", "maximum context length is 512 tokens"),
    ({"prompt": "a" * 500, "max_tokens": 20}, 400, "max_tokens",
     "you requested 521 tokens (501 in the prompt, 20 in the completion)"),
])
def test_bad_completion_requests_are_refused_with_the_key_named(micro, doc, status, param, words):
    with pytest.raises(ApiError) as info:
        micro.parse(body(**doc), kind="completion")
    assert info.value.status == status and info.value.param == param
    assert words in str(info.value)
    assert isinstance(info.value, ModelNotFound) is (status == 404)


@pytest.mark.parametrize(("messages", "words"), [
    ([], "non-empty list"),
    ([{"role": "robot", "content": "x"}], "messages[0].role must be one of"),
    ([{"role": "user", "content": 5}], "messages[0].content must be a string"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content[0]"),
])
def test_bad_chat_messages_name_the_message(micro, messages, words):
    with pytest.raises(ApiError, match=words.replace("[", r"\[").replace("]", r"\]")):
        micro.parse(body(messages=messages), kind="chat")


def test_chat_template_and_defaults(micro):
    req = micro.parse(body(messages=[{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]),
                      kind="chat")
    assert req.kind == "chat" and req.model == "llm" and req.temperature == 1.0
    assert req.prompt_ids[0] == 256
    assert bytes(req.prompt_ids[1:]) == b"<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    assert req.max_tokens == 512 - len(req.prompt_ids)  # chat: the rest of the context (vLLM)
    completion = micro.parse(body(prompt="Hi", model="llm"), kind="completion")
    assert completion.max_tokens == 16 and completion.prompt_ids == (256, 72, 105)
    assert micro.parse(body(prompt=[5, 6, 7]), kind="completion").prompt_ids == (5, 6, 7)


def test_invoke_path_answers_a_chat_body_whole_and_refuses_a_stream(micro):
    assert isinstance(micro, Model) and isinstance(micro, TextGenerator)
    req = micro.decode(body(messages=[{"role": "user", "content": "Hi"}], max_tokens=5,
                            ignore_eos=True), "application/json")
    (out,) = micro.infer([req])
    payload, ctype = micro.encode(out)
    doc = json.loads(payload)
    assert ctype == "application/json" and doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["role"] == "assistant"
    assert len(doc["choices"][0]["message"]["content"]) == 5
    assert doc["usage"] == {"prompt_tokens": len(req.prompt_ids), "completion_tokens": 5,
                            "total_tokens": len(req.prompt_ids) + 5}
    empty = micro.decode(b"", "")
    assert empty.kind == "completion" and empty.max_tokens == 16
    with pytest.raises(ApiError, match="stream is not supported on this path"):
        micro.decode(body(prompt="a", stream=True), "application/json")


# ------------------------------------------------------------------------------------ files, options


def test_build_is_seeded_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FCBENCH_CACHE_DIR", str(tmp_path))
    a = llm.build(tmp_path / "a", size="tiny", seed=4)
    llm.prepare({"FCBENCH_LLM_SEED": "4"})  # into the cache
    built = tmp_path / "models" / "llama-tiny-seed4"
    c = llm.build(tmp_path / "c", size="tiny", seed=5)
    data = [(p / "model.safetensors").read_bytes() for p in (a, built, c)]
    assert data[0] == data[1] != data[2]
    config = json.loads((a / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert json.loads((a / "fcbench.json").read_text())["size"] == "tiny"
    model = llm.load({"FCBENCH_LLM_SEED": "4", "FCBENCH_LLM_MAX_CONTEXT": "128",
                      "FCBENCH_LLM_SERVED_NAME": "org/tiny"})
    assert model.path == built and model.max_context == 128 and model.served_name == "org/tiny"
    assert model.describe()["data"][0]["id"] == "org/tiny"


@pytest.mark.parametrize(("threads", "want"), [(None, 1), ("2", min(2, os.cpu_count() or 1))])
def test_load_limits_the_blas_threads_of_the_instance(tmp_path, threads, want):
    # instances share the host's cores: OpenBLAS sized to all of them oversubscribes (in a
    # fresh process, as the limit is the process's)
    env = {**os.environ, "FCBENCH_CACHE_DIR": str(tmp_path), "OPENBLAS_NUM_THREADS": "",
           **({"FCBENCH_LLM_THREADS": threads} if threads else {})}
    code = ("import os, threadpoolctl\nfrom fcbench.models import llm\n"
            "llm.load({k: v for k, v in os.environ.items() if k.startswith('FCBENCH_')})\n"
            "print(max(i['num_threads'] for i in threadpoolctl.threadpool_info() "
            "if i['user_api'] == 'blas'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) == want


def test_weight_names_are_hugging_faces(micro):
    names = L.weight_names(L.LlamaConfig(**MICRO, tie_word_embeddings=False))
    assert names[:3] == ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                         "model.layers.0.self_attn.q_proj.weight"]
    assert names[-2:] == ["model.norm.weight", "lm_head.weight"]
    assert "model.layers.1.mlp.down_proj.weight" in names


@pytest.mark.parametrize(("options", "words"), [
    ({"FCBENCH_LLM_SIZE": "huge"}, "FCBENCH_LLM_SIZE must be one of tiny, small, base"),
    ({"FCBENCH_LLM_SEED": "x"}, "FCBENCH_LLM_SEED must be an integer"),
    ({"FCBENCH_LLM_MAX_CONTEXT": "99999"}, "exceeds the model's max_position_embeddings"),
])
def test_bad_options_say_what_to_change(tmp_path, monkeypatch, options, words):
    monkeypatch.setenv("FCBENCH_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=words):
        llm.load(options)


def test_a_users_directory_is_checked_tensor_by_tensor(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        llm.load({"FCBENCH_LLM_PATH": str(tmp_path)})
    path = micro_dir(tmp_path)
    model = llm.load({"FCBENCH_LLM_PATH": str(path)})
    assert model.config.hidden_size == 64  # read from the user's config.json
    weights = L.load_weights(path)[1]
    del weights["model.layers.1.mlp.up_proj.weight"]
    L.save(tmp_path / "broken", L.LlamaConfig(**MICRO, tie_word_embeddings=True), weights)
    with pytest.raises(ValueError, match="missing tensor 'model.layers.1.mlp.up_proj.weight'"):
        llm.load({"FCBENCH_LLM_PATH": str(tmp_path / "broken")})
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "hidden_size": 32}))
    with pytest.raises(ValueError, match="'model.embed_tokens.weight' has shape"):
        llm.load({"FCBENCH_LLM_PATH": str(path)})
    (path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match=r"config.json: model_type is 'gpt2'"):
        llm.load({"FCBENCH_LLM_PATH": str(path)})
