"""Events are the extension point: a run's own `Events` gets run_start/run_stop and the local
harness's instance and request events; a listener that raises is counted, and the run goes on."""

from __future__ import annotations

import pytest
from fcbench.events import Events
from fcbench.load.runner import run_workload
from fcbench.load.loader import load_workload

pytestmark = pytest.mark.slow  # every test here starts processes or servers


def test_a_run_fires_its_events_and_survives_a_failing_listener(sleep_workload, tmp_path):
    path = sleep_workload({"kind": "constant", "rate": 8}, duration=1.5, sleep_ms=5,
                          startup_ms=50, concurrency=4)
    events = Events()
    seen: dict[str, list[dict]] = {}
    for name in ("run_start", "run_stop", "instance_starting", "instance_ready", "request"):
        getattr(events, name).add_listener(
            lambda _name=name, **kw: seen.setdefault(_name, []).append(kw))

    def broken(**kw):
        raise RuntimeError("a plugin bug")

    events.request.add_listener(broken)
    result = run_workload(load_workload(path), progress=False, events=events)
    assert [e["name"] for e in seen["run_start"]] == ["t"]
    [stop] = seen["run_stop"]
    assert stop["run_dir"] == result.run_dir and stop["summary"]["count"] == 12
    assert not stop["interrupted"]
    assert len(seen["instance_ready"]) == len(seen["instance_starting"]) >= 1
    assert len(seen["request"]) == 12 and all(e["status"] == 200 for e in seen["request"])
    assert seen["run_start"][0]["ts"] <= seen["request"][0]["ts"] <= stop["ts"]
    # the failing listener was called for every request and counted, and nothing was lost
    assert events.request.failures == 12 and events.failed
    assert result.summary["count"] == 12 and (result.run_dir / "requests.csv").exists()
