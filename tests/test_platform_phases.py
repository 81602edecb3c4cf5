"""FC-sized cold starts: `harness.platform` adds FC's own start phases (GPU preparation, FC's image
pull, the rest of FC's start) to every start, in the harness (waited out, measured, reported as
their own phases) and in the simulator (added to its start-up times), with seeded draws."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fcbench.distributions import parse_distribution, read_distribution
from fcbench.errors import SpecError
from fcbench.harness.gpus import GpuPool, parse_virtual_gpus
from fcbench.harness.platform_phases import (PLATFORM_PHASES, planned_ms, platform_ms,
                                             start_time_s)
from fcbench.harness.scheduler import FunctionConfig
from fcbench.sim.engine import simulate
from fcbench.spec import function_spec_from_dict, load_function_spec
from harness_utils import events, instances, invoke, sleep_spec

ROOT = Path(__file__).resolve().parent.parent
FC_LIKE = ROOT / "workloads" / "functions" / "mobilenet-v2-fc-like.yaml"
#: the phases the tests inject: 0.5 s GPU, 100 MB at 200 MB/s = 0.5 s, 0.3 s more: 1.3 s
KNOWN = {"gpuPrepare": "0.5s", "imageSizeMB": 100, "imagePullMBps": 200, "extraStart": "0.3s"}
KNOWN_MS = {"gpu_prepare": 500.0, "platform_image_pull": 500.0, "platform_extra": 300.0}
GPU = {"gpuMemorySize": 4096}


def _spec(platform: dict | None, *, name: str = "fc", sleep_ms: float = 20, **harness):
    h = {"runtime": "process", "idleTimeout": 60, "maxInstances": 4, **harness}
    if platform is not None:
        h["platform"] = platform
    return sleep_spec(name, sleep_ms=sleep_ms, gpuConfig=GPU, harness=h)


# ---- the section: validated once, errors naming file, line and key --------------------------
def _write(tmp_path: Path, platform: str, *, gpu: bool = True) -> Path:
    path = tmp_path / "fn.yaml"
    path.write_text("functionName: fn\n"
                    + ("gpuConfig:\n  gpuMemorySize: 4096\n" if gpu else "")
                    + "harness:\n  platform:\n" + platform)
    return path


@pytest.mark.parametrize(("body", "key", "words"), [
    ("    gpuPrepare: normal:6s\n", "gpuPrepare", "unknown distribution"),
    ("    gpuPrepare: -2\n", "gpuPrepare", "no negative time"),
    ("    gpuPrepare: true\n", "gpuPrepare", "not true/false"),
    ("    extraStart: uniform:5s:1s\n", "extraStart", "LOW <= HIGH"),
    ("    extraStart: 11m\n", "extraStart", "at most 600 s"),
    ("    extraStart: normal:6x:1s\n", "extraStart", "cannot read"),
    ("    imageSizeMB: 20000\n    imagePullMBps: 1000\n", "imageSizeMB", "15 GB"),
    ("    imageSizeMB: 100\n    imagePullMBps: 0\n", "imagePullMBps", "greater than 0"),
    ("    seed: -1\n", "seed", "greater than or equal to 0"),
])
def test_a_bad_platform_key_is_named_with_its_file_and_line(tmp_path, body, key, words):
    path = _write(tmp_path, "    seed: 1\n" + body if key != "seed" else body)
    with pytest.raises(SpecError) as err:
        load_function_spec(path)
    line = 1 + path.read_text().splitlines().index(
        next(x for x in path.read_text().splitlines() if x.strip().startswith(key + ":")))
    assert f"{path}:{line}: harness.platform.{key}:" in str(err.value)
    assert words in str(err.value)


def test_the_pull_needs_both_numbers_and_a_cpu_function_no_gpu_phase(tmp_path):
    with pytest.raises(SpecError, match=r"harness\.platform: imageSizeMB needs imagePullMBps"):
        load_function_spec(_write(tmp_path, "    imageSizeMB: 9000\n"))
    with pytest.raises(SpecError, match=r"fn\.yaml:4: harness\.platform\.gpuPrepare: gpuPrepare "
                                        r"is FC preparing an instance's GPU.*no gpuConfig"):
        load_function_spec(_write(tmp_path, "    gpuPrepare: 4s\n", gpu=False))
    with pytest.raises(SpecError, match=r"harness\.platform\.imageSizeMB: at most 10240 MB.*CPU"):
        load_function_spec(_write(tmp_path, "    imageSizeMB: 12000\n    imagePullMBps: 500\n",
                                  gpu=False))
    with pytest.raises(SpecError, match=r"imageSizeMB / imagePullMBps is 1000 s"):
        load_function_spec(_write(tmp_path, "    imageSizeMB: 10000\n    imagePullMBps: 10\n"))
    # the API's bodies go through the same checks (CreateFunction on the harness)
    with pytest.raises(SpecError, match=r"harness\.platform\.gpuPreparee: unknown key"):
        function_spec_from_dict({"functionName": "f", "gpuConfig": GPU,
                                 "harness": {"platform": {"gpuPreparee": "1s"}}})


def test_phase_durations_are_the_one_distribution_parser_of_fcbench():
    from fcbench.models import sleep
    from fcbench.load import durations

    # one parser: the sleep model's service times, --service-ms and the spec read the same text
    assert sleep.parse_distribution is parse_distribution
    assert durations.parse_duration is read_distribution.__globals__["parse_duration"]
    # a bare number is the caller's unit (ms for FCBENCH_*_MS, s in a spec); units convert
    assert read_distribution("normal:6s:1s").args_ms == (6000.0, 1000.0)
    assert read_distribution("normal:6:1", unit="s").args_ms == (6000.0, 1000.0)
    assert read_distribution("uniform:500ms:2s", unit="s").args_ms == (500.0, 2000.0)
    assert read_distribution("50").args_ms == (50.0,)  # the sleep model's milliseconds
    assert read_distribution("exp:1m", unit="s").mean_ms == 60_000.0
    spec = function_spec_from_dict({"functionName": "f", "gpuConfig": GPU,
                                    "harness": {"platform": {"gpuPrepare": 4,
                                                             "extraStart": 2.5}}})
    assert planned_ms(spec.harness.platform, "i-f-1") == {"gpu_prepare": 4000.0,
                                                          "platform_extra": 2500.0}


def test_draws_are_seeded_by_the_section_seed_and_the_instance_id():
    def platform(seed: int):
        return _spec({"extraStart": "normal:6s:1s", "gpuPrepare": "uniform:1s:3s",
                      "seed": seed}).harness.platform

    a, b = platform(7), platform(7)
    ids = [f"i-fc-{k}" for k in range(1, 401)]
    first = [planned_ms(a, i) for i in ids]
    assert first == [planned_ms(b, i) for i in ids]  # same seed, same id: same draws
    assert first != [planned_ms(platform(8), i) for i in ids]  # another seed: others
    assert len({round(d["platform_extra"], 6) for d in first}) == len(ids)  # per instance
    assert planned_ms(a, "i-fc-1", replica=1) != first[0]  # a simulation's replicate
    # the draws follow the distributions
    assert statistics.fmean(d["platform_extra"] for d in first) == pytest.approx(6000, rel=0.03)
    assert statistics.stdev(d["platform_extra"] for d in first) == pytest.approx(1000, rel=0.15)
    assert all(1000 <= d["gpu_prepare"] <= 3000 for d in first)


@pytest.mark.slow
def test_the_draws_repeat_in_a_fresh_interpreter():
    # string seeds do not depend on PYTHONHASHSEED: another process draws the same phases
    first = planned_ms(_spec({"extraStart": "normal:6s:1s", "gpuPrepare": "uniform:1s:3s",
                              "seed": 7}).harness.platform, "i-fc-1")
    code = ("from fcbench.spec import function_spec_from_dict as f; "
            "from fcbench.harness.platform_phases import planned_ms; "
            "s = f({'functionName': 'fc', 'gpuConfig': {'gpuMemorySize': 4096}, 'harness': "
            "{'platform': {'extraStart': 'normal:6s:1s', 'gpuPrepare': 'uniform:1s:3s', "
            "'seed': 7}}}); print(repr(planned_ms(s.harness.platform, 'i-fc-1')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONHASHSEED": "123", "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == repr(first)


def test_start_time_is_the_in_instance_start_plus_the_platform_phases():
    spec = _spec(KNOWN)
    assert planned_ms(spec.harness.platform, "i-fc-1") == KNOWN_MS
    assert start_time_s(0.25, spec.harness.platform, "i-fc-1") == pytest.approx(1.55)
    assert start_time_s(0.25, None, "i-fc-1") == 0.25
    # what a measured instance held, in each of the shapes the results write it
    assert platform_ms({"gpu_prepare": 500.0, "spawn": 3.0}) == 500.0
    assert platform_ms({"phases_ms.platform_extra": "300", "phases_ms.gpu_prepare": ""},
                       "phases_ms.{}") == 300.0
    assert platform_ms({"gpu_prepare_ms": float("nan"), "platform_image_pull_ms": 5.0},
                       "{}_ms") == 5.0


def _cards() -> GpuPool:
    return GpuPool(parse_virtual_gpus("1x16GB"))


def test_the_simulator_adds_the_same_phases_to_every_start():
    spec = _spec(KNOWN)
    cfg = FunctionConfig.from_spec(spec)
    plain = simulate([0.0, 10.0], cfg, service_s=lambda: 0.02, startup_s=lambda: 0.4,
                     gpus=_cards())
    fc = simulate([0.0, 10.0], cfg, service_s=lambda: 0.02, startup_s=lambda: 0.4,
                  gpus=_cards(), platform=spec.harness.platform)
    assert [r.cold for r in fc.requests] == [True, False]
    assert plain.requests[0].latency == pytest.approx(0.42)
    assert fc.requests[0].latency == pytest.approx(0.42 + 1.3)  # 1.3 s more, cold only
    assert fc.requests[1].latency == pytest.approx(0.02)
    [inst] = fc.instances
    assert inst["ready_ts"] - inst["created_ts"] == pytest.approx(1.7)


def _fc_like_workload(tmp_path: Path):
    from fcbench.load.loader import load_workload

    doc = {"name": "fc-like", "target": {"kind": "local", "functions": [str(FC_LIKE)]},
           "duration": 3600, "seed": 2, "plan": {"kind": "poisson", "rate": 0.002},
           "output": str(tmp_path / "results")}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_workload(path)


def test_simulate_on_an_fc_like_spec_shows_fc_magnitudes(tmp_path):
    from fcbench.sim.run import SimulationSettings, run_simulation

    sim = run_simulation(_fc_like_workload(tmp_path), SimulationSettings())
    cold = [r.latency for r in sim.result.requests if r.cold]
    assert cold, "sparse traffic under a 300 s idle reclaim meets cold starts"
    # 420 ms local start (the sample's default) + 2 s + 8 s + ~1 s, + 17 ms of inference
    assert all(10.4 < x < 13.5 for x in cold), cold
    spec = load_function_spec(FC_LIKE)
    for row in sim.result.instances:
        want = planned_ms(spec.harness.platform, row["instance_id"])
        assert (row["ready_ts"] - row["created_ts"]) * 1000 == \
            pytest.approx(420 + sum(want.values()), abs=1)


@pytest.mark.slow
def test_a_simulated_run_folder_lists_each_starts_platform_phases(tmp_path):
    from fcbench.sim.run import SimulationSettings, simulate_workload

    run, _ = simulate_workload(_fc_like_workload(tmp_path), SimulationSettings())
    insts = list(csv.DictReader(open(run / "instances.csv")))
    spec = load_function_spec(FC_LIKE)
    assert insts
    for row in insts:  # the phases each simulated start held, named as the harness names them
        want = planned_ms(spec.harness.platform, row["instance_id"])
        assert {n: float(row[f"phases_ms.{n}"]) for n in PLATFORM_PHASES} == \
            pytest.approx(want)
    # so a what-if calibrated on it takes them out again (no double count)
    from fcbench.sim.calibrate import calibrate
    assert calibrate([run]).startup_ms == pytest.approx([420.0] * len(insts), abs=1)


def test_calibration_takes_the_platform_phases_out_of_measured_starts(tmp_path):
    from fcbench.results import RunFolder
    from fcbench.sim.calibrate import _startups_ms

    folder = RunFolder(tmp_path)
    folder.write_instances([
        {"instance_id": "i-f-1", "created_ts": 10.0, "ready_ts": 11.7,
         "phases_ms": {"spawn": 2.0, **KNOWN_MS}},
        {"instance_id": "i-f-2", "created_ts": 20.0, "ready_ts": 20.4, "phases_ms": {}}])
    # the simulator adds the simulated spec's own platform phases back on top
    assert _startups_ms(folder.instance_rows(), None) == pytest.approx([400.0, 400.0])


def test_deploy_sends_no_platform_section_to_fc(tmp_path):
    from fcbench.deploy.bodies import function_body, update_body
    from fcbench.deploy.serverless_devs import export_s_yaml, import_s_yaml

    spec = load_function_spec(ROOT / "workloads" / "functions" / "stable-diffusion-fc-like.yaml")
    for body in (function_body(spec), update_body(spec)):
        text = json.dumps(body)
        assert "platform" not in text and "imagePullMBps" not in text
    out = tmp_path / "s.yaml"
    out.write_text(export_s_yaml(spec, region="cn-hangzhou", base_dir=tmp_path))
    doc = yaml.safe_load(out.read_text())
    assert "imageSizeMB" not in json.dumps(doc["resources"])  # FC's props: none of it
    assert doc["vars"]["x-fcbench"]["stable-diffusion"]["harness"]["platform"]["imageSizeMB"] \
        == 9000
    assert import_s_yaml(out).spec == spec  # and it comes back


# ---- the harness: waited out in every start, reported as its own phases ---------------------
def _cold(url: str, name: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    status, headers, _ = invoke(url, name, {})
    latency = time.perf_counter() - t0
    assert status == 200 and headers.get("x-fcbench-cold") == "1", headers
    return latency, headers


@pytest.mark.slow
def test_a_cold_request_waits_the_platform_phases_and_the_harness_reports_them(tmp_path):
    from fcbench.harness.server import HarnessConfig, HarnessThread
    from fcbench.results import RunFolder

    latency = {}
    for label, platform in (("plain", None), ("fc", KNOWN)):  # the fc one is looked at after
        spec = _spec(platform)
        with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / label)) as h:
            latency[label], _ = _cold(h.url, "fc")
            t0 = time.perf_counter()
            status, headers, _ = invoke(h.url, "fc", {})  # warm: no platform phase
            warm = time.perf_counter() - t0
            assert headers.get("x-fcbench-cold") == "0" and warm < 0.5
            [inst] = instances(h.url)
            ready = [e for e in events(h.url) if e["event"] == "instance_ready"]
    phases = inst["phases_ms"]
    for name, want in KNOWN_MS.items():  # measured as they ran, within the timer's slack
        assert want <= phases[name] <= want + 60, (name, phases)
        assert ready[0]["phases"][name] == phases[name]  # the lifecycle event carries them
    start_s = inst["ready_ts"] - inst["created_ts"]
    assert start_s >= 1.3 and start_s - platform_ms(phases) / 1000 < 1.5
    # the cold request waited 1.3 s more than a plain one (its in-instance start varies)
    assert latency["fc"] >= 1.3 + 0.02
    assert latency["fc"] - latency["plain"] == pytest.approx(1.3, abs=0.5)
    # instances.csv: each phase its own column
    folder = RunFolder(tmp_path)
    folder.write_instances([inst])
    [row] = folder.instance_rows()
    assert float(row["phases_ms.platform_image_pull"]) == pytest.approx(500, abs=60)
    # the simulator, given this instance's in-instance start, times the cold request alike
    in_instance = start_s - platform_ms(phases) / 1000
    sim = simulate([0.0], FunctionConfig.from_spec(spec), service_s=lambda: 0.02,
                   startup_s=lambda: in_instance, gpus=_cards(), platform=spec.harness.platform)
    assert sim.requests[0].latency == pytest.approx(latency["fc"], abs=0.15)


@pytest.mark.slow
def test_each_start_draws_its_own_seeded_phases_in_the_harness_as_in_the_simulator(tmp_path):
    from fcbench.harness.server import HarnessConfig, HarnessThread
    from fcbench.targets.harness_client import HarnessClient

    spec = _spec({"extraStart": "uniform:0.1s:0.6s", "seed": 3}, name="fd")
    measured = {}
    with HarnessThread([spec], HarnessConfig(port=0, log_dir=tmp_path / "logs")) as h, \
            HarnessClient(h.url, timeout=10) as client:
        for _ in range(3):
            _, headers = _cold(h.url, "fd")
            measured[headers["x-fc-instance-id"]] = None
            client.reclaim()
        for inst in instances(h.url, include_retired=True):
            measured[inst["instance_id"]] = inst["phases_ms"]["platform_extra"]
    assert list(measured) == ["i-fd-1", "i-fd-2", "i-fd-3"]
    for iid, got in measured.items():
        want = planned_ms(spec.harness.platform, iid)["platform_extra"]
        assert want <= got <= want + 60, (iid, got, want)
    assert len({round(v, -1) for v in measured.values()}) > 1  # not one value for all


@pytest.mark.slow
def test_coldstart_profile_shows_the_platform_phases_as_phases(tmp_path):
    path = tmp_path / "fc.yaml"
    doc = _spec(KNOWN).to_doc()
    doc["harness"]["sampleRequest"] = {"json": {}}
    path.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", str(path),
                          "-n", "2", "--warmup", "0", "--out", str(tmp_path / "res")],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    for name in PLATFORM_PHASES:
        assert name in res.stdout
    [run] = list((tmp_path / "res").iterdir())
    kept = [r for r in csv.DictReader(open(run / "phases.csv")) if r["kind"] == "ok"]
    assert len(kept) == 2
    for r in kept:
        for name, want in KNOWN_MS.items():
            assert want <= float(r[f"{name}_ms"]) <= want + 60, (name, r)
        # nothing of them leaks into the process's own start, nor into the unexplained rest
        assert float(r["process_start_ms"]) < 250
        e2e = float(r["e2e_ms"])
        names = [c for c in r if c.endswith("_ms") and c not in
                 ("e2e_ms", "warm_ms", "cold_penalty_ms") and r[c] != ""]
        assert sum(float(r[c]) for c in names) == pytest.approx(e2e, abs=0.02)
        assert 0.0 < float(r["unattributed_ms"]) <= 0.05 * e2e
        assert e2e >= 1300
    summary = json.loads((run / "summary.json").read_text())
    assert summary["phases_ms"]["platform_image_pull"]["median"] == pytest.approx(500, abs=60)
