"""What the docs show is what a user gets: every ``bash`` block of README.md and docs/*.md runs
as written, page by page, from a fresh folder (see tests/docs_commands.py for the rules and the
directives a page uses). A command added to a page later is tested by this file as it is."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from docs_commands import (PARSERS, commands, fences, fresh_page, has_commands,
                           names_fixed_port, pages, resolve, run_page)
from fcbench._net import free_port

FCBENCH = shutil.which("fcbench")
#: pages run side by side (most of their time is waiting on idle timeouts and sleeps)
LANES = 3


def _docker_answers() -> bool:
    try:
        from fcbench.images.engine import connect

        connect()
    except Exception:  # noqa: BLE001 - any failure means: no daemon to use
        return False
    return True


def _env() -> dict[str, str]:
    # a user's shell, without the cloud keys this machine does not have anyway
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")
           and k.lower() not in ("http_proxy", "https_proxy")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _own_port(env: dict[str, str]) -> dict[str, str]:
    """`env` with the harness's default port moved, for a page that does not name 9080."""
    port = free_port()
    return {**env, "FCBENCH_HARNESS_SERVE_PORT": str(port),
            "FCBENCH_INVOKE_ENDPOINT": f"http://127.0.0.1:{port}"}


@pytest.fixture(scope="session")
def page_runs(request, tmp_path_factory):
    """The selected pages, started at once on a few lanes; page -> Future of what ran."""
    chosen = [item.callspec.params["page"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_every_documented_command_runs_as_"
              "written" and hasattr(item, "callspec")]
    chosen = [p for p in chosen if has_commands(p)]
    env, docker = _env(), _docker_answers()
    fixed = [p for p in chosen if names_fixed_port(p)]
    free = [p for p in chosen if p not in fixed]
    pool = ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="docs")
    futures: dict[Path, Future] = {}

    def one(page: Path) -> list:
        tmp = tmp_path_factory.mktemp(f"docs-{page.stem.lower()}")
        return run_page(page, tmp, env if page in fixed else _own_port(env), docker)

    def fixed_lane() -> None:
        for page in fixed:
            lane_futures[page].set_running_or_notify_cancel()
            try:
                lane_futures[page].set_result(one(page))
            except BaseException as exc:  # noqa: BLE001 - reported by that page's test
                lane_futures[page].set_exception(exc)

    lane_futures = {p: Future() for p in fixed}
    futures.update(lane_futures)
    pool.submit(fixed_lane)
    for page in free:
        futures[page] = pool.submit(one, page)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a page runs its commands one by one; pages run side by side
@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_documented_command_runs_as_written(page, page_runs):
    if FCBENCH is None:
        pytest.fail("the `fcbench` command is not on PATH: pip install -e . first")
    if page not in page_runs:
        pytest.skip(f"{page.name} shows no bash block")
    ran = page_runs[page].result()
    slowest = sorted(ran, key=lambda r: -r.seconds)[:3]
    print("\n".join(f"{r.seconds:6.1f} s  {r.where}: {r.command}" for r in slowest))


def test_the_runner_splits_commands_and_resolves_placeholders(tmp_path):
    """The rules themselves, on a known text (fast: no command runs)."""
    source = ("# a comment\nfcbench run a.yaml   # trailing words\n\nfcbench cost x \\\n"
              "  --what-if y=1 \\\n  --what-if z=2\n")
    assert commands(source) == [(1, "fcbench run a.yaml   # trailing words"),
                                (3, "fcbench cost x    --what-if y=1    --what-if z=2")]
    state = fresh_page(pages()[0], tmp_path, {}, False)
    older = state.work / "results" / "20261201-100000-a"
    newer = state.work / "results" / "20261201-100001-sim-a"
    folders = (older, newer, older / "levels" / "3-level-1")
    for folder in folders:
        folder.mkdir(parents=True)
    for i, folder in enumerate(folders):  # made in this order
        os.utime(folder, (1000 + i, 1000 + i))
    new, old = "results/20261201-100001-sim-a", "results/20261201-100000-a"
    assert resolve("fcbench cost results/<run>", state, "x") == f"fcbench cost {new}"
    assert resolve("report --compare results/<a> results/<b>", state, "x") == \
        f"report --compare {new} {old}"
    assert resolve("cost results/<time>-a --x 1", state, "x") == f"cost {old} --x 1"
    assert resolve("x --calibrate results/<sweep>/levels/<t>-level-1", state, "x") == \
        f"x --calibrate {old}/levels/3-level-1"
    with pytest.raises(AssertionError, match="no earlier command"):
        resolve("cost results/<time>-nothing", state, "x")
    assert len(PARSERS) == 3


def test_every_fence_says_whether_it_is_run():
    """A command the docs show cannot escape the test above by its fence: every fenced block
    names its language, and shell is spelled ``bash`` (run) — a synopsis or output is ``text``."""
    bad = []
    for page in pages():
        for line, info in fences(page):
            if not info:
                bad.append(f"{page.name}:{line}: a fence without a language (bash to run it, "
                           "text for a synopsis or output)")
            elif info.split()[0] in ("sh", "shell", "console", "zsh"):
                bad.append(f"{page.name}:{line}: {info!r}: shell blocks are `bash` (and run)")
    assert not bad, "\n".join(bad)
