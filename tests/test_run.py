"""`fcbench run`: a real Locust subprocess driving a real local harness over real HTTP.

The functions use the CPU-free `sleep` model, so runs stay short and light on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fcbench._net import free_port
from fcbench.protocol import ALL_COLUMNS, COLUMNS
from fcbench.results.rundir import new_run_dir
from fcbench.load.loader import load_workload

pytestmark = pytest.mark.slow  # every test here starts processes or servers

SECRET = "s3cr3t-value-never-in-results"


def only_run_dir(parent: Path) -> Path:
    runs = [p for p in parent.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def plan_offsets(workload: Path) -> np.ndarray:
    wl = load_workload(workload)
    return np.array(list(wl.plan_obj().offsets(wl.duration)))


def locust_request_count(run: Path) -> int:
    with open(run / "locust_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"])
    raise AssertionError("no Aggregated row in locust_stats.csv")


def test_open_loop_run_records_every_planned_arrival(sleep_workload, fcbench_run, tmp_path):
    wl = sleep_workload({"kind": "poisson", "rate": 15}, duration=4, sleep_ms=20,
                        startup_ms=300, idle=60, function_env={"API_TOKEN": SECRET})
    res = fcbench_run("run", str(wl), "--no-progress",
                      env={"ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET})
    assert res.returncode == 0, res.stderr[-3000:]
    run = only_run_dir(tmp_path / "results")
    assert f"results: {run}" in res.stdout
    for name in ("requests.csv", "instances.csv", "run.yaml", "summary.json", "locust.html",
                 "locust_stats.csv", "plots/latency.png", "report.html", "gpu.csv"):
        assert (run / name).is_file(), name
    assert not list(run.glob("requests.part-*.csv"))
    # no GPU here: the telemetry file exists with its header and no samples
    assert (run / "gpu.csv").read_text().startswith("ts,gpu_index")
    assert len((run / "gpu.csv").read_text().splitlines()) == 1
    report = (run / "report.html").read_text()
    assert "Latency (ms, from raw records)" in report and 'href="requests.csv"' in report

    df = pd.read_csv(run / "requests.csv")
    assert tuple(df.columns[:len(COLUMNS)]) == COLUMNS and tuple(df.columns) == ALL_COLUMNS
    offsets = plan_offsets(wl)
    # Every planned arrival was sent once and recorded once, at its planned relative time.
    assert len(df) == len(offsets) == locust_request_count(run)
    assert df["request_id"].is_unique
    intended = df["intended_ts"].to_numpy()
    assert np.all(np.diff(intended) >= 0)
    assert np.allclose(intended - intended[0], offsets - offsets[0], atol=2e-6)
    assert (df["start_ts"] >= df["intended_ts"] - 1e-6).all()
    assert (df["status"] == 200).all()
    # The first request found no instance: it is cold, and it was that instance's first.
    first = df.iloc[0]
    assert first["cold"] == 1 and first["first"] == 1 and first["latency_ms"] > 300
    assert df["instance_id"].str.startswith("i-f-").all()
    # cold requests waited for a start: the whole 300 ms start for the first, what was left of
    # it for one that came later; warm ones waited for nothing of the sort
    cold = df[df["cold"] == 1]
    assert first["queue_ms"] > 250 and (cold["queue_ms"] > 0).all()
    assert (cold["start_ts"] < cold["ready_ts"]).all()
    assert (df.loc[df["cold"] == 0, "start_ts"] >= df.loc[df["cold"] == 0, "ready_ts"]).all()

    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] == len(df) and summary["ok"] == len(df) and summary["errors"] == 0
    assert summary["cold_starts"] == int(df["cold"].sum()) >= 1
    assert summary["p_cold"]["value"] == pytest.approx(df["cold"].mean())
    lat = df["latency_ms"].to_numpy()
    for q in (50, 90, 99):
        assert summary["latency_ms"][f"p{q}"] == pytest.approx(np.percentile(lat, q), abs=1e-3)
    assert summary["latency_ms"]["max"] == pytest.approx(lat.max(), abs=1e-3)
    lfi = ((df["end_ts"] - df["intended_ts"]) * 1000).to_numpy()
    assert summary["latency_from_intended_ms"]["p99"] == pytest.approx(np.percentile(lfi, 99),
                                                                       abs=0.01)
    instances = pd.read_csv(run / "instances.csv")
    assert summary["instances_started"] == len(instances) == df["instance_id"].nunique()
    assert summary["interrupted"] is False

    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".yaml", ".json", ".html", ".log"):
            assert SECRET not in path.read_text(errors="replace"), path
    assert "API_TOKEN: '***'" in (run / "run.yaml").read_text()


def test_closed_loop_keeps_n_requests_in_flight(sleep_workload, fcbench_run, tmp_path):
    users = 3
    wl = sleep_workload({"kind": "closed", "users": users, "thinkS": 0}, duration=3,
                        sleep_ms=100, startup_ms=100, concurrency=users, max_instances=1)
    res = fcbench_run("run", str(wl), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    run = only_run_dir(tmp_path / "results")
    df = pd.read_csv(run / "requests.csv")
    assert (df["status"] == 200).all() and len(df) == locust_request_count(run)
    start, end = df["start_ts"].to_numpy(), df["end_ts"].to_numpy()
    t = np.arange(end.min(), start.max(), 0.005)
    in_flight = ((start[None, :] <= t[:, None]) & (t[:, None] < end[None, :])).sum(axis=1)
    assert in_flight.max() == users  # never more than N ...
    assert in_flight.mean() > users - 0.25  # ... and N nearly all of the time
    assert len(df) >= users * 5  # several rounds each (the first waits for a cold start)
    assert df.sort_values("start_ts")["cold"].head(users).all()  # all N waited for the start
    assert df["intended_ts"].equals(df["start_ts"]) or \
        (df["start_ts"] - df["intended_ts"]).abs().max() < 0.05


def test_processes_split_one_plan_without_duplicates_or_losses(sleep_workload, fcbench_run,
                                                              tmp_path):
    wl = sleep_workload({"kind": "poisson", "rate": 30}, duration=3, sleep_ms=5,
                        startup_ms=50, concurrency=10)
    res = fcbench_run("run", str(wl), "--no-progress", "--processes", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    run = only_run_dir(tmp_path / "results")
    df = pd.read_csv(run / "requests.csv")
    offsets = plan_offsets(wl)
    assert len(df) == len(offsets) == locust_request_count(run)
    assert not df["intended_ts"].duplicated().any()
    assert sorted(df["worker"].unique()) == [0, 1]
    assert abs((df["worker"] == 0).sum() - (df["worker"] == 1).sum()) <= 1
    intended = np.sort(df["intended_ts"].to_numpy())
    assert np.allclose(intended - intended[0], offsets - offsets[0], atol=2e-6)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_interrupt_leaves_readable_partial_results(sleep_workload, fcbench_proc, tmp_path):
    wl = sleep_workload({"kind": "constant", "rate": 10}, duration=60, sleep_ms=300,
                        startup_ms=50, concurrency=10)
    proc = fcbench_proc("run", str(wl), "--no-progress")
    results = tmp_path / "results"
    deadline = time.monotonic() + 60
    rows = 0
    while time.monotonic() < deadline and rows < 10:
        time.sleep(0.3)
        parts = list(results.glob("*/requests.part-*.csv"))
        rows = sum(max(0, len(p.read_text().splitlines()) - 1) for p in parts)
        # Readable mid-run: whole rows only, each with every column.
        for p in parts:
            with open(p, newline="") as f:
                for row in csv.DictReader(f):
                    assert None not in row.values() and row["status"] == "200"
    assert rows >= 10, proc.stderr.read() if proc.poll() is not None else "no rows yet"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    run = only_run_dir(results)
    assert f"partial results in {run}" in out
    with open(run / "requests.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert 10 <= len(records) < 600
    assert all(len(r) == len(ALL_COLUMNS) and None not in r.values() for r in records)
    # Requests cut off in flight are rows too, marked as such.
    assert {r["error"] for r in records} <= {"", "interrupted"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["count"] == len(records)
    assert (run / "plots" / "latency.png").is_file()
    assert not list(run.glob("requests.part-*.csv"))
    assert _processes_mentioning(str(run)) == []  # Locust and its workers are gone


def test_two_runs_never_share_a_folder(sleep_workload, fcbench_proc, tmp_path):
    # Same second, same name: from threads ...
    made: list[Path] = []
    now = time.time()
    threads = [threading.Thread(target=lambda: made.append(new_run_dir(tmp_path / "x", "same",
                                                                       now=now)))
               for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)
    assert sorted(p.name for p in made)[0].endswith("-same")
    # ... and from two whole runs started together.
    wl = sleep_workload({"kind": "constant", "rate": 5}, duration=1, startup_ms=10)
    procs = [fcbench_proc("run", str(wl), "--no-progress") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    dirs = [re.search(r"results: (\S+)", o).group(1) for o, _ in outs]
    assert len(set(dirs)) == 2
    for d in dirs:
        assert len(pd.read_csv(Path(d) / "requests.csv")) == 5


@pytest.mark.parametrize("plan, key", [
    ("{kind: poisson, rate: -1}", "plan.rate"),
    ("{kind: sometimes, rate: 1}", "plan.kind"),
    ("{kind: trace, file: missing.csv}", "plan.file"),
])
def test_bad_workload_is_a_file_line_error_and_exit_2(tmp_path, fcbench_run, plan, key):
    wl = tmp_path / "bad.yaml"
    wl.write_text("name: bad\n"
                  "target: {kind: url, url: 'http://127.0.0.1:9'}\n"
                  "duration: 5\n"
                  f"plan: {plan}\n")
    res = fcbench_run("run", str(wl), "--out", str(tmp_path / "results"), timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"{wl}:4:" in res.stderr and key in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "results").exists()  # nothing was started


def test_unreachable_url_target_is_refused_before_any_folder(tmp_path, fcbench_run):
    wl = tmp_path / "down.yaml"
    wl.write_text("name: down\n"
                  "target: {kind: url, url: 'http://127.0.0.1:9/invoke'}\n"
                  "duration: 1\n"
                  "plan: {kind: constant, rate: 5}\n"
                  f"output: {tmp_path / 'results'}\n")
    res = fcbench_run("run", str(wl), "--no-progress", timeout=90)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "cannot reach http://127.0.0.1:9/invoke" in res.stderr
    assert "Connection refused" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "results").exists()


def _hang_up_server() -> tuple[socket.socket, threading.Thread]:
    """A server that accepts every connection and closes it at once: reachable, never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()  # before reading a byte: the caller sees the connection end

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv, thread


def test_a_target_that_fails_every_request_records_the_errors(tmp_path, fcbench_run):
    srv, _ = _hang_up_server()
    port = srv.getsockname()[1]
    try:
        wl = tmp_path / "down.yaml"
        wl.write_text("name: down\n"
                      f"target: {{kind: url, url: 'http://127.0.0.1:{port}/invoke'}}\n"
                      "duration: 1\n"
                      "plan: {kind: constant, rate: 5}\n"
                      f"output: {tmp_path / 'results'}\n")
        res = fcbench_run("run", str(wl), "--no-progress", timeout=90)
    finally:
        srv.close()
    # every request failed: the run says so and exits non-zero, and keeps what it recorded
    assert res.returncode == 1, res.stderr[-3000:]
    assert "all 5 requests failed" in res.stderr
    assert "could not write report.html" not in res.stderr
    run = only_run_dir(tmp_path / "results")
    df = pd.read_csv(run / "requests.csv", keep_default_na=False)
    assert len(df) == 5 and (df["status"] == 0).all()
    assert (df["error"] != "").all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["errors"] == 5 and summary["errors_by_status"] == {"0": 5}
    assert summary["latency_ms"]["p50"] is None and summary["p_cold"]["value"] == 0.0
    assert summary["outcomes"]["failed"]["count"] == 5
    assert summary["latency_from_intended_ms"]["censored"] == 5
    assert not (run / "instances.csv").exists()
    assert os.path.getsize(run / "plots" / "latency.png") > 0


def test_master_and_workers_split_one_plan(fcbench_proc, tmp_path):
    # Three machines, played by three processes here: a master and two workers, each with its
    # own copy of the workload, sending to one harness.
    from fcbench.harness.server import HarnessConfig, HarnessThread
    from harness_utils import sleep_spec

    with HarnessThread([sleep_spec("f", sleep_ms=5, startup_ms=50, concurrency=20)],
                       HarnessConfig(port=0)) as h:
        wl = tmp_path / "mw.yaml"
        wl.write_text(f"name: mw\ntarget: {{kind: url, url: '{h.url}', function: f}}\n"
                      "duration: 3\nseed: 5\nplan: {kind: poisson, rate: 25}\n")
        port = str(free_port())
        master = fcbench_proc("run", str(wl), "--master", "--expect-workers", "2",
                              "--master-port", port, "--out", str(tmp_path / "m"),
                              "--no-progress")
        workers = [fcbench_proc("run", str(wl), "--worker", "--master-host", "127.0.0.1",
                                "--master-port", port, "--out", str(tmp_path / "w"),
                                "--no-progress") for _ in range(2)]
        for p in [master, *workers]:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
    frames = [pd.read_csv(f) for f in (tmp_path / "w").glob("*/requests.csv")]
    assert len(frames) == 2 and all(len(f) for f in frames)  # each worker keeps its share
    offsets = plan_offsets(wl)
    # ...and the master holds the run's one result: every worker's rows, streamed to it
    master_dir = only_run_dir(tmp_path / "m")
    df = pd.read_csv(master_dir / "requests.csv")
    assert len(df) == len(offsets) == sum(map(len, frames)) == locust_request_count(master_dir)
    assert not df["intended_ts"].duplicated().any() and sorted(df["worker"].unique()) == [0, 1]
    assert sorted(df["request_id"]) == sorted(pd.concat(frames)["request_id"])
    intended = np.sort(df["intended_ts"].to_numpy())
    assert np.allclose(intended - intended[0], offsets - offsets[0], atol=2e-6)
    summary = json.loads((master_dir / "summary.json").read_text())
    assert summary["count"] == len(offsets)
