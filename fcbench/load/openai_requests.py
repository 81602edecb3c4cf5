"""Chat-shaped load: every request's OpenAI-style body drawn reproducibly (``request.openai``).

Key names: `OpenAIRequestConfig` (the ``request.openai`` section), `RequestGenerator` (built by
`request_generator`; `RequestGenerator.draw` gives request n's `DrawnRequest`), `read_dataset`
and `DatasetEntry` (a JSONL file of prompts: ShareGPT ``conversations`` or ``prompt`` lines),
`api_path` (the default request path of an API), `CHAT_PATH`, `COMPLETIONS_PATH`.

A draw depends on (seed, n) alone: the same workload sends the same bodies however its plan is
split across Locust processes, in whatever order the requests leave. Prompt and output lengths
are in tokens; a synthetic prompt is `charsPerToken` characters a token of pseudo-words (1: the
`llm` sample's byte tokenizer, where a token is a byte; about 4 for BPE tokenizers).
"""

from __future__ import annotations

import functools
import json
import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from .._model import Model
from ..distributions import Distribution, read_distribution
from ..errors import SpecError

if TYPE_CHECKING:
    from .workload import Workload

__all__ = ["CHAT_PATH", "COMPLETIONS_PATH", "DatasetEntry", "DrawnRequest",
           "OpenAIRequestConfig", "RequestGenerator", "api_path", "read_dataset",
           "request_generator"]

CHAT_PATH = "v1/chat/completions"
COMPLETIONS_PATH = "v1/completions"
CONTENT_TYPE = "application/json"
#: The largest prompt or output length a distribution may name (a draw is clamped to it too):
#: beyond any context window, and small enough that a mistyped number cannot fill memory.
MAX_TOKENS = 1_000_000
#: Characters of synthetic text made once per seed; a prompt is a slice of it (tiled when
#: longer), so a draw costs a slice, not a loop over words.
_POOL_CHARS = 1 << 16
_HUMAN = frozenset({"human", "user"})
_REPLY = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})

Api = Literal["chat", "completions"]


def api_path(api: Api) -> str:
    """The path an OpenAI-compatible server serves `api` at (``v1/chat/completions``)."""
    return CHAT_PATH if api == "chat" else COMPLETIONS_PATH


def _check_count(value: Any, key: str) -> Any:
    """A token-count distribution as written (kept for run.yaml), checked here once."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        # pydantic reports a ValueError as the key's problem, a TypeError not at all
        raise ValueError(  # noqa: TRY004
            f"{key} is a count of tokens or a distribution of them: 128, normal:128:32, "
            "uniform:64:192, exp:128 or lognormal:128:64")
    # the messages name no key: the loader puts file:line: key in front of them
    dist = read_distribution(value, unit="count")
    a = dist.args
    if any(not math.isfinite(x) or x < 0 for x in a) or (dist.kind != "uniform" and a[0] <= 0):
        raise ValueError(f"a number of tokens (or its mean) is above 0 and no parameter is "
                         f"negative; e.g. {key}: normal:128:32")
    if dist.kind == "uniform" and (a[0] > a[1] or a[1] < 1):
        raise ValueError("write uniform:LOW:HIGH with LOW <= HIGH and HIGH >= 1")
    if max(a) > MAX_TOKENS:
        raise ValueError(f"that is over {MAX_TOKENS} tokens; lower it")
    return value


class OpenAIRequestConfig(Model):
    """``request.openai``: each request an OpenAI-compatible completion, drawn from seeded
    length distributions or from a dataset of prompts (see docs/workloads.md)."""

    model: str = Field(min_length=1, description="the model name sent in every body")
    api: Api = Field("chat", description="chat (/v1/chat/completions) or completions")
    prompt_tokens: int | str | None = Field(
        None, description="prompt length in tokens: a count or a distribution")
    output_tokens: int | str | None = Field(
        None, description="max_tokens: a count or a distribution (default with a dataset: the "
        "dataset's)")
    stream: bool = Field(True, description="ask for SSE events (and a final usage event)")
    ignore_eos: bool = Field(True, description="send ignore_eos, so the answer is max_tokens long")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = Field(None, description="default: the workload's seed")
    dataset: str | None = Field(None, min_length=1, description="JSONL file of prompts, "
                                "relative to the workload")
    chars_per_token: float = Field(1.0, gt=0, le=64, description="characters a token of prompt")

    @field_validator("prompt_tokens", "output_tokens", mode="before")
    @classmethod
    def _counts(cls, value: Any, info: Any) -> Any:
        key = "promptTokens" if info.field_name == "prompt_tokens" else "outputTokens"
        return _check_count(value, key)

    @model_validator(mode="after")
    def _lengths(self) -> OpenAIRequestConfig:
        if self.dataset is not None and self.prompt_tokens is not None:
            raise ValueError("promptTokens and dataset exclude each other: the dataset's "
                             "prompts are sent as they are; remove one")
        if self.dataset is None:
            missing = [k for k, v in (("promptTokens", self.prompt_tokens),
                                      ("outputTokens", self.output_tokens)) if v is None]
            if missing:
                raise ValueError(f"needs {' and '.join(missing)} (e.g. "
                                 "promptTokens: normal:128:32, outputTokens: uniform:16:48), "
                                 "or a dataset of prompts")
        return self

    @property
    def prompt_dist(self) -> Distribution | None:
        """`promptTokens` read (None with a dataset)."""
        return None if self.prompt_tokens is None else read_distribution(self.prompt_tokens,
                                                                          unit="count")

    @property
    def output_dist(self) -> Distribution | None:
        """`outputTokens` read (None: the dataset's lengths)."""
        return None if self.output_tokens is None else read_distribution(self.output_tokens,
                                                                          unit="count")

    @property
    def path(self) -> str:
        """The request path of `api`."""
        return api_path(self.api)


@dataclass(frozen=True, slots=True)
class DrawnRequest:
    """One request's body and what it asks for: `prompt_tokens` (the prompt's length in
    characters / charsPerToken: exact for ASCII text under a byte tokenizer; the server's
    ``usage.prompt_tokens`` adds its chat template) and `max_tokens`."""

    body: bytes
    content_type: str
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One prompt of a dataset: its text, its output length in tokens when the file gives one
    (a ShareGPT reply's length, or ``output_tokens``), and its line in the file."""

    prompt: str
    output_tokens: int | None
    line: int


def read_dataset(path: str | Path, *, chars_per_token: float = 1.0) -> tuple[DatasetEntry, ...]:
    """The prompts of a JSONL file (read once per file version; see `DatasetEntry`).

    A line is ShareGPT's ``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt",
    "value": ...}]}`` (the first human turn is the prompt; the reply after it gives the output
    length: its characters / `chars_per_token`) or ``{"prompt": ..., "output_tokens": N}``
    (``output_tokens`` optional). Blank lines are skipped; other keys are ignored. A file whose
    text starts with ``[`` is one JSON array of such entries (ShareGPT's own .json files).

    Raises:
        SpecError: naming the file and line (or entry) of the first problem.
    """
    file = Path(path)
    try:
        stat = file.stat()
    except OSError as exc:
        raise SpecError(f"cannot read the dataset: {exc.strerror or exc}", file=str(file)) from None
    return _read_dataset(str(file.resolve()), stat.st_mtime_ns, stat.st_size,
                         float(chars_per_token))


@functools.lru_cache(maxsize=8)
def _read_dataset(path: str, _mtime_ns: int, _size: int,
                  chars_per_token: float) -> tuple[DatasetEntry, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[:exc.start].count(b"\n") + 1
        raise SpecError("not UTF-8 text", file=path, line=line) from None
    except OSError as exc:
        raise SpecError(f"cannot read the dataset: {exc.strerror or exc}", file=path) from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None
        rows: Sequence[tuple[int, Any, str]] = [(i + 1, item, f"entry {i + 1}: ")
                                                for i, item in enumerate(items)] \
            if isinstance(items, list) else []
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line), ""))
            except json.JSONDecodeError as exc:
                raise SpecError(f"not valid JSON ({exc.msg} at column {exc.colno}); each line "
                                "is one JSON object", file=path, line=number) from None
    out = []
    for number, item, where in rows:
        try:
            out.append(_entry(item, number, chars_per_token))
        except ValueError as exc:
            raise SpecError(f"{where}{exc}", file=path, line=None if where else number) from None
    if not out:
        raise SpecError("the dataset holds no prompts (one JSON object a line: "
                        '{"conversations": [...]} or {"prompt": ..., "output_tokens": N})',
                        file=path)
    return tuple(out)


def _entry(item: Any, line: int, chars_per_token: float) -> DatasetEntry:
    if not isinstance(item, dict):
        raise ValueError('an entry is a JSON object: {"conversations": [...]} or '  # noqa: TRY004
                         '{"prompt": "...", "output_tokens": N}')
    if "conversations" in item:
        turns = item["conversations"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise ValueError('"conversations" is a list of {"from": ..., "value": ...} turns')
        roles = [str(t.get("from", t.get("role", ""))).lower() for t in turns]
        texts = [t.get("value", t.get("content")) for t in turns]
        first = next((i for i, r in enumerate(roles) if r in _HUMAN), None)
        if first is None or not isinstance(texts[first], str) or not texts[first]:
            raise ValueError('the conversation has no human turn with text ({"from": "human", '
                             '"value": "..."})')
        reply = texts[first + 1] if first + 1 < len(turns) and roles[first + 1] in _REPLY \
            else None
        output = max(1, round(len(reply) / chars_per_token)) \
            if isinstance(reply, str) and reply else None
        return DatasetEntry(texts[first], output, line)
    if "prompt" in item:
        prompt, output = item["prompt"], item.get("output_tokens")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError('"prompt" must be a non-empty string')
        if output is not None and (isinstance(output, bool) or not isinstance(output, int)
                                   or not 1 <= output <= MAX_TOKENS):
            raise ValueError(f'"output_tokens" must be a whole number from 1 to {MAX_TOKENS}')
        return DatasetEntry(prompt, output, line)
    raise ValueError('an entry needs "conversations" (ShareGPT) or "prompt"')


@functools.lru_cache(maxsize=8)
def _text_pool(seed: int) -> tuple[str, tuple[int, ...]]:
    """Pseudo-words of lowercase letters, one space apart (printable ASCII, nothing JSON must
    escape), and where each word starts."""
    rng = random.Random(f"fcbench-openai-text/{seed}")
    letters, words, size = string.ascii_lowercase, [], 0
    while size < _POOL_CHARS:
        word = "".join(rng.choices(letters, k=rng.randint(1, 9)))
        words.append(word)
        size += len(word) + 1
    text = " ".join(words) + " "
    starts, pos = [], 0
    for word in words:
        starts.append(pos)
        pos += len(word) + 1
    return text, tuple(starts)


class RequestGenerator:
    """Draws request n's body from `config` and `seed`: the same (seed, n), the same bytes.

    Args:
        config: the ``request.openai`` section.
        seed: its seed (`config.seed`, else the workload's).
        dataset: the dataset file, resolved (required when `config` names one).

    Raises:
        SpecError: a dataset problem, naming its file and line.
    """

    def __init__(self, config: OpenAIRequestConfig, *, seed: int,
                 dataset: str | Path | None = None) -> None:
        self.config, self.seed = config, int(seed)
        self.dataset = None if dataset is None else Path(dataset)
        if (config.dataset is None) != (self.dataset is None):
            raise ValueError("give the resolved dataset path exactly when the config names one")
        self.content_type = CONTENT_TYPE
        self._prompt = config.prompt_dist
        self._output = config.output_dist
        self._cpt = float(config.chars_per_token)
        self._entries: tuple[DatasetEntry, ...] = ()
        self._order: list[int] = []
        self._escaped: list[str] = []
        self._pool, self._starts = "", ()
        if self.dataset is not None:
            self._entries = read_dataset(self.dataset, chars_per_token=self._cpt)
            if self._output is None:
                blind = next((e for e in self._entries if e.output_tokens is None), None)
                if blind is not None:
                    raise SpecError("this entry gives no output length (no reply after the "
                                    "human turn, no output_tokens); set request.openai."
                                    "outputTokens", file=str(self.dataset), line=blind.line)
            self._order = list(range(len(self._entries)))
            random.Random(f"fcbench-openai-order/{self.seed}").shuffle(self._order)
            self._escaped = [json.dumps(e.prompt)[1:-1] for e in self._entries]
        else:
            self._pool, self._starts = _text_pool(self.seed)
        self._text = self._pool
        # The body around the prompt and max_tokens, encoded once: a draw joins five strings.
        fixed: dict[str, Any] = {"model": config.model}
        fixed["messages" if config.api == "chat" else "prompt"] = None
        fixed.update({"max_tokens": None, "temperature": config.temperature,
                      "stream": config.stream})
        if config.stream:
            fixed["stream_options"] = {"include_usage": True}
        if config.ignore_eos:
            fixed["ignore_eos"] = True
        self._template = self._split_template(fixed, config.api)

    @staticmethod
    def _split_template(fixed: dict[str, Any], api: Api) -> tuple[str, str, str]:
        prompt_key = "messages" if api == "chat" else "prompt"
        marker_p, marker_m = "\x01PROMPT\x01", 7_654_321_987
        sample = dict(fixed)
        sample[prompt_key] = [{"role": "user", "content": marker_p}] if api == "chat" \
            else marker_p
        sample["max_tokens"] = marker_m
        text = json.dumps(sample, separators=(",", ":"))
        encoded = json.dumps(marker_p)[1:-1]
        head, rest = text.split(encoded)
        middle, tail = rest.split(str(marker_m))
        return head, middle, tail

    @property
    def path(self) -> str:
        """The request path of the config's API (``v1/chat/completions``)."""
        return self.config.path

    def draw(self, n: int) -> DrawnRequest:
        """Request `n`'s body (n >= 0: the request's number in the whole run); about 8 us."""
        if n < 0:
            raise ValueError(f"a request's number is 0 or more, not {n}")
        # a text key: distinct for every (seed, n), negative seeds too (an int seed drops its
        # sign); then the draws in one fixed order: output length, prompt length, prompt start
        rng = random.Random(f"{self.seed}/{n}")
        if self._entries:
            entry_i = self._order[n % len(self._order)]
            entry = self._entries[entry_i]
            max_tokens = entry.output_tokens if self._output is None \
                else _count(self._output, rng)
            prompt = self._escaped[entry_i]
            prompt_tokens = max(1, round(len(entry.prompt) / self._cpt))
        else:
            max_tokens = _count(self._output, rng)  # type: ignore[arg-type]
            prompt_tokens = _count(self._prompt, rng)  # type: ignore[arg-type]
            prompt = self._synthetic(rng, max(1, round(prompt_tokens * self._cpt)))
        head, middle, tail = self._template
        body = f"{head}{prompt}{middle}{max_tokens}{tail}".encode()
        return DrawnRequest(body, self.content_type, prompt_tokens, int(max_tokens or 1))

    def _synthetic(self, rng: random.Random, chars: int) -> str:
        start = self._starts[rng.randrange(len(self._starts))]
        if start + chars > len(self._text):  # a long prompt: the pool tiled, made once
            copies = -(-(start + chars) // len(self._pool))
            self._text = self._pool * copies
        return self._text[start:start + chars]

    def to_dict(self) -> dict[str, Any]:
        """Plain values to rebuild this generator elsewhere (a Locust child): the config as
        written, its seed filled in, the dataset's absolute path."""
        cfg = self.config.model_dump(by_alias=True, exclude_none=True, mode="json")
        cfg["seed"] = self.seed
        if self.dataset is not None:
            cfg["dataset"] = str(self.dataset.resolve())
        return cfg

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestGenerator:
        """The generator `to_dict` described."""
        config = OpenAIRequestConfig.model_validate(data)
        return cls(config, seed=int(data["seed"]), dataset=config.dataset)


def _count(dist: Distribution, rng: random.Random) -> int:
    """A draw rounded to a whole number of tokens, at least 1 (and at most `MAX_TOKENS`)."""
    return min(MAX_TOKENS, max(1, round(dist.draw(rng))))


def request_generator(workload: Workload) -> RequestGenerator | None:
    """The generator of `workload`'s ``request.openai`` (None without one): its seed, else the
    workload's; its dataset resolved against the workload's folder.

    Raises:
        SpecError: a dataset problem, naming its file and line.
    """
    config = workload.request.openai
    if config is None:
        return None
    seed = workload.seed if config.seed is None else config.seed
    dataset = None if config.dataset is None else workload.resolve(config.dataset)
    return RequestGenerator(config, seed=seed, dataset=dataset)
