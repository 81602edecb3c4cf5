"""Speed of the simulator against SimFaaS 0.2.2, on the same parameters, in the same run.

1,000,000 Poisson invocations (10/s), exp(1 s) service (a cold request's time is a service draw
too: SimFaaS's cold and warm rates are equal here, fcbench's start-up is 0), instance
concurrency 1, idle timeout (SimFaaS: expiration threshold) 10 s, up to 1000 instances and a
queue of 100000, so nothing is throttled. Target (issue #12): fcbench >= 10x SimFaaS's
invocations/s. Each simulator runs in a fresh process; the script prints wall seconds, CPU
seconds, invocations/s, peak RSS, P(cold) and the ratios.

fcbench runs twice: as the plain Python modules, and with `harness/scheduler.py`,
`harness/meter.py` and `sim/engine.py` compiled by mypyc, unchanged (built once per source
hash under build/mypyc/; `--compiled no` skips it, and it is skipped with a note when mypyc or a
C compiler is missing). The rules stay one definition either way: the compiled modules are the
same files.

    python benchmarks/simulate_speed.py [--n 1000000] [--compiled auto|no] [--no-simfaas]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the modules mypyc compiles (the rules, their metering, the event loop that drives them)
COMPILED = ("fcbench/harness/scheduler.py", "fcbench/harness/meter.py", "fcbench/sim/engine.py")
RATE, IDLE, MAX_INSTANCES, QUEUE = 10.0, 10.0, 1000, 100_000

#: installs a finder that imports the compiled modules from LIB instead of the sources
LOADER = r"""
import glob, importlib.abc, importlib.util, os, sys
LIB = {lib!r}
sys.path.insert(0, LIB)  # the shared mypyc runtime module
class _Compiled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if not name.startswith("fcbench."):
            return None
        parts = name.split(".")
        hits = glob.glob(os.path.join(LIB, *parts[:-1], parts[-1] + ".cpython-*.so"))
        return importlib.util.spec_from_file_location(name, hits[0]) if hits else None
sys.meta_path.insert(0, _Compiled())
"""

FCBENCH = r"""
import json, resource, sys, time
n, seed = int(sys.argv[1]), int(sys.argv[2])
import numpy as np
from fcbench.harness.scheduler import FunctionConfig
from fcbench.sim import engine, simulate
t0, c0 = time.perf_counter(), time.process_time()
rng = np.random.default_rng(seed)
arrivals = np.cumsum(rng.exponential(1.0 / {rate}, n)).tolist()
service = rng.exponential(1.0, n)  # drawn in bulk: one per admitted request, in order
cfg = FunctionConfig("f", concurrency=1, max_instances={max_instances}, queue_size={queue},
                     idle_timeout={idle})
res = simulate(arrivals, cfg, service_s=service, startup_s=lambda: 0.0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({{"n": len(res.requests), "wall_s": wall, "cpu_s": cpu, "p_cold": res.p_cold,
                  "throttled": res.throttled, "compiled": engine.__file__.endswith(".so"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

SIMFAAS = r"""
import json, resource, sys, time
n, seed = int(sys.argv[1]), int(sys.argv[2])
import numpy as np
from simfaas.ServerlessSimulator import ServerlessSimulator
np.random.seed(seed)
sim = ServerlessSimulator(arrival_rate={rate}, warm_service_rate=1.0, cold_service_rate=1.0,
                          expiration_threshold={idle}, max_time=n / {rate},
                          maximum_concurrency={max_instances})
t0, c0 = time.perf_counter(), time.process_time()
sim.generate_trace()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({{"n": sim.total_req_count, "wall_s": wall, "cpu_s": cpu,
                  "p_cold": sim.get_cold_start_prob(), "throttled": sim.total_reject_count,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # numpy's BLAS threads spin after each call and take a core from the simulator on 2 cores
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_child(code: str, n: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", code, str(n), str(seed)], cwd=ROOT,
                         env=child_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_compiled() -> tuple[Path | None, str]:
    """Compile COMPILED with mypyc into build/mypyc/<source hash>/lib (once); (lib, note)."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return None, "mypyc not installed (pip install mypy): compiled run skipped"
    digest = hashlib.sha256(b"".join((ROOT / p).read_bytes() for p in COMPILED)).hexdigest()[:16]
    base = ROOT / "build" / "mypyc" / digest
    lib = base / "lib"
    if any(lib.rglob("engine.cpython-*.so")):
        return lib, f"compiled modules reused from {lib.relative_to(ROOT)}"
    setup = (
        "from setuptools import setup\nfrom mypyc.build import mypycify\n"
        "setup(name='fcbench-mypyc', script_args=['build_ext', '--build-lib', {lib!r}, "
        "'--build-temp', {tmp!r}], ext_modules=mypycify(["
        "'--follow-imports=skip', '--ignore-missing-imports', '--allow-redefinition', "
        "{paths}], opt_level='3', target_dir={c!r}))\n").format(
        lib=str(lib), tmp=str(base / "tmp"), c=str(base / "c"),
        paths=", ".join(repr(p) for p in COMPILED))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "setup_mypyc.py"
        script.write_text(setup)
        out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                             text=True)
    if out.returncode != 0 or not any(lib.rglob("engine.cpython-*.so")):
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-8:])
        return None, f"mypyc build failed, compiled run skipped:\n{tail}"
    return lib, f"compiled with mypyc into {lib.relative_to(ROOT)}"


def have_simfaas() -> bool:
    try:
        import simfaas  # noqa: F401
    except ImportError:
        return False
    return True


def line(name: str, r: dict) -> str:
    return (f"{name:<22} {r['n']:>9,} inv  {r['wall_s']:7.2f} s wall  {r['cpu_s']:7.2f} s CPU  "
            f"{r['n'] / r['wall_s']:>10,.0f} inv/s  peak RSS {r['rss_mb']:6.0f} MB  "
            f"P(cold) {r['p_cold']:.4f}  throttled {r['throttled']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="invocations (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compiled", choices=("auto", "no"), default="auto")
    ap.add_argument("--no-simfaas", action="store_true", help="skip the SimFaaS baseline")
    args = ap.parse_args()
    params = dict(rate=RATE, idle=IDLE, max_instances=MAX_INSTANCES, queue=QUEUE)
    print(f"{args.n:,} Poisson invocations at {RATE:g}/s, exp(1 s) service, concurrency 1, "
          f"idle timeout {IDLE:g} s, up to {MAX_INSTANCES} instances")
    results: dict[str, dict] = {}
    if args.no_simfaas:
        print("SimFaaS skipped (--no-simfaas)")
    elif not have_simfaas():
        print("SimFaaS not installed (pip install simfaas==0.2.2): baseline skipped")
    else:
        results["SimFaaS 0.2.2"] = run_child(SIMFAAS.format(**params), args.n, args.seed)
    results["fcbench (Python)"] = run_child(FCBENCH.format(**params), args.n, args.seed)
    if args.compiled == "auto":
        lib, note = build_compiled()
        print(note)
        if lib is not None:
            r = run_child(LOADER.format(lib=str(lib)) + FCBENCH.format(**params), args.n,
                          args.seed)
            if not r["compiled"]:
                raise SystemExit("the compiled modules were not the ones imported")
            results["fcbench (mypyc)"] = r
    for name, r in results.items():
        print(line(name, r))
    base = results.get("SimFaaS 0.2.2")
    if base is not None:
        for name, r in results.items():
            if name.startswith("fcbench"):
                ratio = (r["n"] / r["wall_s"]) / (base["n"] / base["wall_s"])
                cpu = (r["n"] / r["cpu_s"]) / (base["n"] / base["cpu_s"])
                print(f"{name} vs SimFaaS: {ratio:.1f}x invocations/s (wall), {cpu:.1f}x (CPU)"
                      f"{'  (target >= 10x)' if ratio < 10 else ''}")


if __name__ == "__main__":
    main()
