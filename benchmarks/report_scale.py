"""Scale of the run report: summarise and plot a 1,000,000-row requests.csv.

Target (DESIGN.md): <= 10 s and <= 1 GB RSS. Writes two synthetic part files with RecordWriter
(Poisson-ish arrivals, 5% cold, 1% errors), then times, in a fresh process each, `merge_parts`
into requests.csv, `summarize` + `plot_latency` (the path `fcbench run` takes) and, as the
baseline, a plain full `pandas.read_csv` of the same file; prints seconds, peak RSS and ratios.

    python benchmarks/report_scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fcbench.protocol import InvocationRecord
from fcbench.results.records import RecordWriter

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
path, mode = sys.argv[1], sys.argv[2]
if mode == "merge":
    from pathlib import Path
    from fcbench.results.records import merge_parts
    folder = Path(path).parent
    out = {"count": merge_parts(sorted(folder.glob("requests.part-*.csv")), path)}
elif mode == "report":
    from fcbench.report.plots import plot_latency
    from fcbench.results.summary import load_requests, summarize
    df = load_requests(path)
    summary = summarize(df)
    plot_latency(df, path + ".png")
    out = {"count": summary["count"], "p99": summary["latency_ms"]["p99"]}
else:
    import pandas as pd
    out = {"count": len(pd.read_csv(path))}
out["seconds"] = time.perf_counter() - t0
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def make_parts(folder: Path, rows: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(0.01, rows)
    intended = 1.7e9 + np.cumsum(gaps)
    lag = rng.exponential(0.0003, rows)
    cold = rng.random(rows) < 0.05
    lat = np.where(cold, rng.normal(2500, 300, rows), rng.lognormal(3.5, 0.4, rows))
    status = np.where(rng.random(rows) < 0.01, 429, 200)
    writers = [RecordWriter(folder / f"requests.part-{k}.csv") for k in (0, 1)]
    with writers[0], writers[1]:
        for i in range(rows):
            w = writers[i % 2]
            ok = status[i] == 200
            start = intended[i] + lag[i]
            w.write(InvocationRecord(
                request_id=f"w{i % 2}-{i}", intended_ts=float(intended[i]), start_ts=float(start),
                end_ts=float(start + lat[i] / 1000), latency_ms=float(lat[i]),
                status=int(status[i]), cold=bool(cold[i]) if ok else None,
                instance_id=f"i-f-{i % 37}" if ok else "", queue_ms=0.2 if ok else None,
                error="" if ok else "ResourceThrottled", inference_ms=12.0 if ok else None,
                first=bool(cold[i]) if ok else None, fc_request_id=f"{i:032x}", worker=i % 2))


def measure(path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fcbench-scale-") as tmp:
        path = Path(tmp) / "requests.csv"
        t0 = time.perf_counter()
        make_parts(Path(tmp), args.rows)
        print(f"wrote {args.rows:,} rows in two part files with RecordWriter "
              f"in {time.perf_counter() - t0:.1f} s")
        merge = measure(path, "merge")
        base = measure(path, "read_csv")
        report = measure(path, "report")
    assert report["count"] == base["count"] == merge["count"] == args.rows
    print(f"{'':<32} {'seconds':>8} {'peak RSS MB':>12}")
    label = "baseline: pandas.read_csv (all)"
    print(f"{label:<32} {base['seconds']:>8.2f} {base['rss_mb']:>12.0f}")
    print(f"{'merge_parts (2 parts)':<32} {merge['seconds']:>8.2f} {merge['rss_mb']:>12.0f}")
    print(f"{'summarize + plot_latency':<32} {report['seconds']:>8.2f} {report['rss_mb']:>12.0f}")
    print(f"ratio merge / baseline: {merge['seconds'] / base['seconds']:.2f}x time, "
          f"{merge['rss_mb'] / base['rss_mb']:.2f}x memory")
    print(f"ratio report / baseline: {report['seconds'] / base['seconds']:.2f}x time, "
          f"{report['rss_mb'] / base['rss_mb']:.2f}x memory   "
          f"(target: <= 10 s, <= 1024 MB: "
          f"{'met' if report['seconds'] <= 10 and report['rss_mb'] <= 1024 else 'NOT met'})")


if __name__ == "__main__":
    main()
