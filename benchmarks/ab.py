"""Before and after in one sitting: a benchmark run on the working tree and on a given commit,
alternately, with the same interpreter, then every figure of the two side by side with its ratio.

    python benchmarks/ab.py REV [--rounds 2] -- benchmarks/dispatch_accuracy.py --rates 2000,6000

REV's code comes from a throw-away `git worktree` (removed afterwards); each side runs with its
tree first on PYTHONPATH (so the subprocesses the benchmark starts use that tree too) and with
the working tree's copy of the benchmark script, so both sides are measured the same way. A
line whose text is the same on both sides but for its numbers is shown once, each number as
``new / old = ratio``; other lines are shown as they came. After the rounds, the median of each
figure over all rounds is shown the same way (a noisy machine makes single rounds unreliable);
the two sides take turns going first.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")  # not the 99 of "p99"


def _shape(line: str) -> str:
    # columns padded to their numbers' width differ in spaces only
    return " ".join(NUMBER.sub("#", line).split())


def run(tree: Path, script: list[str]) -> str:
    """The benchmark's output with `tree`'s fcbench first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    res = subprocess.run([sys.executable, *script], cwd=tree, env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SystemExit(f"{tree}: the benchmark failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout


def side_by_side(new: str, old: str) -> list[str]:
    """Lines of both outputs; a line equal on both sides but for its numbers is merged."""
    out = []
    a_lines, b_lines = new.splitlines(), old.splitlines()
    for i in range(max(len(a_lines), len(b_lines))):
        a = a_lines[i] if i < len(a_lines) else ""
        b = b_lines[i] if i < len(b_lines) else ""
        an, bn = NUMBER.findall(a), NUMBER.findall(b)
        if an and len(an) == len(bn) and _shape(a) == _shape(b):
            parts = iter(f"{x} / {y} = {_ratio(x, y)}" for x, y in zip(an, bn))
            out.append(NUMBER.sub(lambda _m: next(parts), a))
        else:
            out += [f"new: {a}", f"old: {b}"] if a != b else [a]
    return out


def medians(outputs: list[str]) -> str:
    """One output whose every figure is the median of that figure over `outputs` (a line whose
    shape differs between them is taken from the first)."""
    split = [o.splitlines() for o in outputs]
    out = []
    for i, line in enumerate(split[0]):
        same = [s[i] for s in split if i < len(s)]
        shape = _shape(line)
        if len(same) < len(split) or any(_shape(s) != shape for s in same):
            out.append(line)
            continue
        columns = zip(*(NUMBER.findall(s) for s in same))
        values = iter(_fmt(statistics.median(float(x) for x in col), col[0]) for col in columns)
        out.append(NUMBER.sub(lambda _m: next(values), line))
    return "\n".join(out)


def _fmt(value: float, like: str) -> str:
    decimals = len(like.partition(".")[2])
    return f"{value:.{decimals}f}"


def _ratio(new: str, old: str) -> str:
    x, y = float(new), float(old)
    return f"{x / y:.2f}x" if y else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the commit to hold the working tree against (e.g. HEAD~3)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations (new, old) to run")
    ap.add_argument("script", nargs="*", help="-- then the benchmark and its options")
    argv = sys.argv[1:]
    # Split at "--" here: argparse's REMAINDER after a positional swallowed --rounds too.
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    script = argv[cut + 1:] or args.script or ["benchmarks/harness_overhead.py"]
    script[0] = str((ROOT / script[0]).resolve()) if not Path(script[0]).is_absolute() \
        else script[0]
    with tempfile.TemporaryDirectory(prefix="fcbench-ab-") as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree),
                        args.rev], check=True, capture_output=True)
        try:
            sha = subprocess.run(["git", "-C", str(old_tree), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
            news, olds = [], []
            for round_no in range(1, args.rounds + 1):
                if round_no % 2:
                    new = run(ROOT, script)
                    old = run(old_tree, script)
                else:  # the other side first: neither always runs on a machine just warmed up
                    old = run(old_tree, script)
                    new = run(ROOT, script)
                news.append(new)
                olds.append(old)
                print(f"== round {round_no}: working tree / {args.rev} ({sha}) ==")
                print("\n".join(side_by_side(new, old)), flush=True)
            if args.rounds > 1:
                print(f"== median of {args.rounds} rounds: working tree / {args.rev} ({sha}) ==")
                print("\n".join(side_by_side(medians(news), medians(olds))))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(old_tree)], capture_output=True)


if __name__ == "__main__":
    main()
