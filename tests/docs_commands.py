"""The documentation's shell commands as tests: every fenced ``bash`` block of README.md and
docs/*.md, read with Sybil and run as written, in order, from a fresh folder holding a copy of
``workloads/`` (relative paths, default options).

How a page steers its commands (docs/README: "Documentation commands are tests"), in HTML
comments the rendered page does not show, each about the next ``bash`` block:

* ``<!-- docs-test: exit=2 output="no Alibaba Cloud credentials" -->`` — the commands of the
  block must exit with that status and print that text (``output=`` may repeat);
* ``<!-- docs-test: needs=fc -->`` — needs Function Compute itself, which tests never reach: each
  command must fail the documented way (exit 2, naming the missing credentials);
* ``<!-- docs-test: needs=docker -->`` — needs dockerd: run for real where one answers, else each
  command must exit 2 naming the Docker daemon (``absent="text"``: another promised message, for
  a command that needs what an earlier one would have started);
* ``<!-- docs-test: background -->`` — a server (``fcbench harness serve``): started, waited for
  until it says it listens (``ready="text"``: until it prints that), and stopped (SIGINT) when
  the page ends;
* ``<!-- docs-test: timeout=900 -->`` — seconds per command (default 600);
* ``<!-- skip: next "why" -->`` (Sybil's own) — not run, with the reason in the test report.

A placeholder such as ``results/<time>-quickstart`` stands for the newest path an earlier
command of the same page made that fits it (a glob: ``<time>`` matches a run folder's time
stamp, ``YYYYmmdd-HHMMSS``, any other ``<...>`` anything); two
different placeholders of the same shape in one command name the newest and the one before.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import SkipTest

from sybil import Document, Example, Region
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT_S = 600.0
#: a path with placeholders in it: ``results/<time>-quickstart``, ``results/<a>/levels/<b>-x``
PLACEHOLDER = re.compile(r"[\w./-]*<[^<>\n]+>(?:[\w./-]*<[^<>\n]+>)*[\w./-]*")
PLACEHOLDER_PART = re.compile(r"<[^<>\n]+>")
#: ``<time>``: a run folder's time stamp, YYYYmmdd-HHMMSS
TIME_GLOB = "[0-9]" * 8 + "-" + "[0-9]" * 6
#: Where a documented FC command must stop on a machine without an FC account.
NO_FC = "no Alibaba Cloud credentials"


@dataclass
class Options:
    """What a ``docs-test`` directive says of the next block."""

    exit: int = 0
    output: list[str] = field(default_factory=list)
    needs: str | None = None
    absent: str = "Docker"
    background: bool = False
    ready: str = "listening on"
    timeout: float = DEFAULT_TIMEOUT_S

    @classmethod
    def parse(cls, text: str, where: str) -> Options:
        out = cls()
        for word in shlex.split(text):
            key, _, value = word.partition("=")
            if key == "exit":
                out.exit = int(value)
            elif key == "output":
                out.output.append(value)
            elif key == "needs" and value in ("fc", "docker"):
                out.needs = value
            elif key == "absent":
                out.absent = value
            elif key == "background" and not value:
                out.background = True
            elif key == "ready":
                out.ready = value
            elif key == "timeout":
                out.timeout = float(value)
            else:
                raise ValueError(f"{where}: unknown docs-test option {word!r} (see "
                                 "tests/docs_commands.py)")
        return out


@dataclass
class Ran:
    """One command as run: where it is documented, what it printed."""

    where: str
    command: str
    code: int
    output: str
    seconds: float


@dataclass
class Page:
    """The state one page's commands share: the folder, servers, what ran."""

    path: Path
    work: Path
    env: dict[str, str]
    docker: bool
    pending: Options | None = None
    servers: list[subprocess.Popen] = field(default_factory=list)
    ran: list[Ran] = field(default_factory=list)

    def close(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def commands(source: str) -> list[tuple[int, str]]:
    """(line offset, command) for each command of a block: ``\\`` continuations joined, blank
    lines and whole-line comments dropped."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for i, line in enumerate(source.splitlines()):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not buf:
            start = i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def resolve(command: str, page: Page, where: str) -> str:
    """`command` with each ``<placeholder>`` path filled in: a path holding placeholders is a
    glob (each ``<...>`` a ``*``) and stands for the newest path of the page's folder that
    matches it; two different placeholders of the same pattern in one command stand for the
    newest and the one before."""
    ranks: dict[str, list[str]] = {}

    def fill(m: re.Match[str]) -> str:
        token = m.group(0)
        pattern = PLACEHOLDER_PART.sub(
            lambda p: TIME_GLOB if p.group(0) == "<time>" else "*", token)
        names = ranks.setdefault(pattern, [])
        if token not in names:
            names.append(token)
        found = sorted(page.work.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        rank = names.index(token)
        if len(found) <= rank:
            raise AssertionError(f"{where}: {token!r} names a path no earlier command of this "
                                 f"page made (nothing matches {pattern!r} in {page.work})")
        return str(found[rank].relative_to(page.work))

    return PLACEHOLDER.sub(fill, command)


def _run(page: Page, where: str, command: str, opts: Options) -> None:
    if opts.background and not (opts.needs == "docker" and not page.docker):
        proc = subprocess.Popen(["bash", "-c", command], cwd=page.work, env=page.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        page.servers.append(proc)
        lines: queue.Queue[str | None] = queue.Queue()
        # read it to the end on a thread: a server whose pipe is left full would block
        threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
        deadline, seen = time.monotonic() + 120, ""
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{where}: no {opts.ready!r} within 120 s:\n"
                                     f"{seen[-3000:]}") from None
            if line is None:
                raise AssertionError(f"{where}: the server exited ({proc.wait()}) before it "
                                     f"said {opts.ready!r}:\n{seen[-3000:]}")
            seen += line
            if opts.ready in line:
                break
        page.ran.append(Ran(where, command, 0, seen, 0.0))
        return
    t0 = time.perf_counter()
    try:
        res = subprocess.run(["bash", "-c", command], cwd=page.work, env=page.env,
                             capture_output=True, text=True, timeout=opts.timeout,
                             start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{where}: `{command}` did not finish in {opts.timeout:g} s; "
                             f"last output:\n{(exc.stdout or b'')[-2000:]!r}") from None
    output = res.stdout + res.stderr
    page.ran.append(Ran(where, command, res.returncode, output, time.perf_counter() - t0))
    expect_exit, expect = opts.exit, list(opts.output)
    if opts.needs == "fc":
        expect_exit, expect = 2, [*expect, NO_FC]
    elif opts.needs == "docker" and not page.docker:
        expect_exit, expect = 2, [opts.absent]
    why = []
    if res.returncode != expect_exit:
        why.append(f"exit {res.returncode}, the page promises {expect_exit}")
    why += [f"no {text!r} in its output" for text in expect if text not in output]
    if "Traceback (most recent call last)" in output:
        why.append("a traceback")
    if why:
        raise AssertionError(f"{where}: `{command}`: {'; '.join(why)}\n--- output ---\n"
                             f"{output[-4000:]}")


def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(None)


def _directive(example: Example) -> None:
    page: Page = example.namespace["page"]
    page.pending = Options.parse(example.parsed, f"{page.path.name}:{example.line}")


def run_block(example: Example) -> None:
    page: Page = example.namespace["page"]
    opts, page.pending = page.pending or Options(), None
    for offset, command in commands(str(example.parsed)):
        where = f"{page.path.relative_to(REPO)}:{example.line + 1 + offset}"
        _run(page, where, resolve(command, page, where), opts)


class _DirectiveParser:
    def __init__(self) -> None:
        self.lexer = DirectiveInHTMLCommentLexer(directive="docs-test", arguments=".+?")

    def __call__(self, document: Document) -> Any:
        for lexed in self.lexer(document):
            yield Region(lexed.start, lexed.end, lexed.lexemes["arguments"], _directive)


PARSERS = (CodeBlockParser(language="bash", evaluator=run_block), _DirectiveParser(),
           SkipParser())


FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$", re.M)


def fences(path: Path) -> list[tuple[int, str]]:
    """(line, info string) of every opening fence of a page."""
    out, inside = [], None
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE_OPEN.match(line.lstrip())
        if not m:
            continue
        if inside is None:
            inside = m.group("fence")
            out.append((i, m.group("info").strip()))
        elif m.group("fence").startswith(inside[0]) and not m.group("info").strip():
            inside = None
    return out


def pages() -> list[Path]:
    """Every page whose commands are tests."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def document(path: Path) -> Document:
    return Document.parse(str(path), *PARSERS)


def fresh_page(path: Path, tmp: Path, env: dict[str, str], docker: bool) -> Page:
    """A new folder for one page: a copy of workloads/, as a user who cloned nothing else."""
    work = tmp / "work"
    work.mkdir()
    shutil.copytree(REPO / "workloads", work / "workloads")
    return Page(path=path, work=work, env=env, docker=docker)


def has_commands(path: Path) -> bool:
    return any(e.region.evaluator is run_block for e in document(path))


def run_page(path: Path, tmp: Path, env: dict[str, str], docker: bool) -> list[Ran]:
    """Run every block of one page in order; what ran, or the first failure (AssertionError)."""
    doc = document(path)
    state = fresh_page(path, tmp, env, docker)
    doc.namespace["page"] = state
    try:
        for example in doc:
            try:
                example.evaluate()
            except SkipTest:
                continue
    finally:
        state.close()
    return state.ran


#: Pages that name the harness's default port (127.0.0.1:9080) in their commands: they run one
#: after another. The others run beside them, each with a harness port of its own chosen through
#: fcbench's FCBENCH_* option variables (the commands stay as written).
FIXED_PORT = "127.0.0.1:9080"


def names_fixed_port(path: Path) -> bool:
    return FIXED_PORT in "".join(str(e.parsed) for e in document(path)
                                 if e.region.evaluator is run_block)
