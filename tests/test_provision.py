"""Provisioned instances end to end: `fcbench deploy --provision 2` against the harness, then a
sparse Poisson run through the fc target (the real SDK): no request is cold while at most two
are in flight, and the harness's metering shows the provisioned instances' idle seconds."""

from __future__ import annotations

import pytest
import json
import os
import time
from pathlib import Path

import yaml
from harness_utils import instances

from fcbench.harness.server import HarnessConfig, HarnessThread

pytestmark = pytest.mark.slow  # every test here starts processes or servers


def test_two_provisioned_instances_leave_a_sparse_run_warm_and_bill_their_idle_time(
        tmp_path: Path, fcbench_run) -> None:
    spec = tmp_path / "fn.yaml"
    spec.write_text(yaml.safe_dump({
        "functionName": "kept", "instanceConcurrency": 1, "timeout": 30,
        "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "50",
                                 "FCBENCH_STARTUP_MS": "200"},
        # without the provision config every gap over 0.5 s would meet a cold start
        "harness": {"idleTimeout": 0.5, "maxInstances": 4}}))
    workload = tmp_path / "sparse.yaml"
    workload.write_text(yaml.safe_dump({
        "name": "sparse", "target": {"kind": "url", "url": "http://127.0.0.1:1/"},
        "request": {"body": {"sleep_ms": 50}, "timeout": 30}, "duration": 8, "seed": 2,
        "plan": {"kind": "poisson", "rate": 2}, "output": str(tmp_path / "results")}))
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    with HarnessThread([], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h:
        res = fcbench_run("deploy", str(spec), "--endpoint", h.url, "--provision", "2",
                          env=env, timeout=120)
        assert res.returncode == 0, res.stderr + res.stdout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both started and ready before the load
            ready = [i for i in instances(h.url) if i["provisioned"] and i["state"] == "ready"]
            if len(ready) == 2:
                break
            time.sleep(0.1)
        assert len(ready) == 2
        port = h.url.rsplit(":", 1)[1]
        res = fcbench_run("run", str(workload), "--target", f"fc://127.0.0.1:{port}/kept",
                          env=env, timeout=120)
        assert res.returncode == 0, res.stderr + res.stdout
        [run] = list((tmp_path / "results").iterdir())
        summary = json.loads((run / "summary.json").read_text())
        assert summary["count"] > 5 and summary["errors"] == 0
        live = instances(h.url)
        provisioned = [i for i in live if i["provisioned"]]
        assert len(provisioned) == 2
        # the run's own peak in flight: the requests' intervals, counted here
        import csv
        rows = list(csv.DictReader(open(run / "requests.csv")))
        edges = sorted([(float(r["start_ts"]), 1) for r in rows]
                       + [(float(r["end_ts"]), -1) for r in rows], key=lambda e: (e[0], e[1]))
        peak = depth = 0
        for _, step in edges:
            depth += step
            peak = max(peak, depth)
        served_by = {r["instance_id"] for r in rows}
    assert peak <= 2
    assert summary["p_cold"]["value"] == 0.0  # at most 2 in flight, 2 kept warm: never cold
    assert served_by <= {i["instance_id"] for i in provisioned}
    for inst in provisioned:  # metered: idle most of the 8 s, and billed for it
        assert inst["idle_s"] > 2.0, inst
        assert inst["active_s"] > 0 or inst["served"] == 0
