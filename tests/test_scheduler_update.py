"""`Scheduler.update_function`: FC's UpdateFunction (new config = new instances) and
PutProvisionConfig (a new provisioned count), as pure rules on an explicit clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fcbench.errors import GpuError
from fcbench.harness.gpus import GpuPool, parse_virtual_gpus
from fcbench.harness.scheduler import (Admit, FunctionConfig, InstanceState, Reclaim, Scheduler,
                                       StartInstance)


def starts(decisions):
    return [d.instance_id for d in decisions if isinstance(d, StartInstance)]


def reclaims(decisions):
    return {d.instance_id: d.reason for d in decisions if isinstance(d, Reclaim)}


def ready_instance(s: Scheduler, now: float, request_id: str) -> str:
    """Serve one request on a fresh instance and leave it idle; returns its id."""
    inst = starts(s.arrive(now, "f", request_id))[0]
    s.instance_ready(now + 1, inst)
    s.finish(now + 1.5, request_id)
    return inst


CFG = FunctionConfig("f", concurrency=1, max_instances=4, idle_timeout=100.0)


def test_update_reclaims_idle_instances_at_once_and_the_next_request_is_cold_elsewhere():
    s = Scheduler()
    s.add_function(CFG)
    old = ready_instance(s, 0.0, "a")
    d = s.update_function(5.0, replace(CFG, concurrency=2))
    assert reclaims(d) == {old: "updated"} and starts(d) == []
    assert s.instances("f") == []
    d = s.arrive(6.0, "f", "b")
    (new,) = starts(d)
    assert new != old and s.instance(new).slots == 2  # the new config's concurrency
    assert s.instance_ready(7.0, new) == [Admit("b", new, cold=True)]


def test_a_busy_old_instance_takes_nothing_new_and_its_finish_is_harmless():
    s = Scheduler()
    s.add_function(replace(CFG, concurrency=4))
    old = starts(s.arrive(0.0, "f", "busy"))[0]
    s.instance_ready(1.0, old)
    d = s.update_function(2.0, CFG)
    assert reclaims(d) == {old: "updated"}
    # the in-flight request is the platform's to finish; the scheduler forgot the instance
    assert s.instance(old) is None and s.retired[-1].in_flight == {"busy"}
    d = s.arrive(2.5, "f", "next")  # would have packed onto `old` (3 free slots) before
    assert len(starts(d)) == 1 and starts(d)[0] != old
    assert s.finish(3.0, "busy") == []
    assert s.finish(3.0, "busy") == []  # and twice


def test_requests_waiting_for_an_old_start_move_to_a_new_instance():
    s = Scheduler()
    s.add_function(replace(CFG, concurrency=2))
    d = s.arrive(0.0, "f", "a") + s.arrive(0.0, "f", "b")
    (old,) = starts(d)
    d = s.update_function(0.5, CFG)  # concurrency 1 now: two claims need two instances
    assert reclaims(d) == {old: "updated"}
    new = starts(d)
    assert len(new) == 2 and old not in new
    assert s.instance_ready(1.0, old) == []  # a late ready of the old start is ignored
    admitted = s.instance_ready(1.2, new[0]) + s.instance_ready(1.3, new[1])
    assert sorted(a.request_id for a in admitted) == ["a", "b"]
    assert all(a.cold for a in admitted)


def test_queued_requests_get_the_room_the_old_instances_left():
    s = Scheduler()
    s.add_function(replace(CFG, max_instances=1, queue_size=5))
    old = starts(s.arrive(0.0, "f", "a"))[0]
    s.instance_ready(1.0, old)
    s.arrive(1.1, "f", "q")  # no room: queued behind the busy instance
    assert s.queue_length("f") == 1
    d = s.update_function(2.0, replace(CFG, max_instances=1, queue_size=5))
    assert reclaims(d) == {old: "updated"} and len(starts(d)) == 1
    assert s.queue_length("f") == 0  # it claimed the new start
    assert [a.request_id for a in s.instance_ready(3.0, starts(d)[0])] == ["q"]


def test_update_starts_the_new_provisioned_count_and_they_never_idle_out():
    s = Scheduler()
    s.add_function(replace(CFG, min_instances=1))
    (first,) = [i.id for i in s.instances("f")]
    s.instance_ready(1.0, first)
    d = s.update_function(2.0, replace(CFG, min_instances=2))
    assert reclaims(d) == {first: "updated"} and len(starts(d)) == 2
    for inst in starts(d):
        s.instance_ready(3.0, inst)
    assert all(i.provisioned for i in s.instances("f"))
    assert reclaims(s.tick(10_000.0)) == {} and len(s.instances("f")) == 2


def test_provision_without_restart_keeps_instances_and_adds_or_unmarks():
    s = Scheduler()
    s.add_function(CFG)
    warm = ready_instance(s, 0.0, "a")
    d = s.update_function(2.0, replace(CFG, min_instances=2), restart=False)
    assert reclaims(d) == {} and len(starts(d)) == 2  # two new ones, like FC
    provisioned = starts(d)
    for inst in provisioned:
        s.instance_ready(3.0, inst)
    assert not s.instance(warm).provisioned
    # the on-demand one idles out as before; the provisioned ones stay
    assert reclaims(s.tick(1.5 + 100.0)) == {warm: "idle"}
    assert sorted(i.id for i in s.instances("f")) == sorted(provisioned)
    d = s.update_function(200.0, replace(CFG, min_instances=1), restart=False)
    assert d == []
    marked = [i for i in s.instances("f") if i.provisioned]
    assert [i.id for i in marked] == [provisioned[0]]  # the oldest stays provisioned
    # the unmarked one has been idle since 3.0: it goes at the next tick past its timeout
    assert reclaims(s.tick(200.0)) == {provisioned[1]: "idle"}
    assert [i.id for i in s.instances("f")] == [provisioned[0]]


def test_provision_beyond_room_marks_live_instances_instead():
    s = Scheduler()
    s.add_function(replace(CFG, max_instances=1))
    warm = ready_instance(s, 0.0, "a")
    d = s.update_function(2.0, replace(CFG, max_instances=1, min_instances=1), restart=False)
    assert starts(d) == [] and s.instance(warm).provisioned
    assert reclaims(s.tick(1000.0)) == {}


def test_a_gpu_spec_that_cannot_fit_changes_nothing():
    s = Scheduler(GpuPool(parse_virtual_gpus("1x16GB")))
    s.add_function(replace(CFG, gpu_memory_mb=4096))
    old = ready_instance(s, 0.0, "a")
    with pytest.raises(GpuError):
        s.update_function(1.0, replace(CFG, gpu_memory_mb=32768))
    assert s.instance(old).state is InstanceState.READY
    assert s.functions()[0].gpu_memory_mb == 4096
    # a fitting update frees the old instance's GPU memory for the new ones
    d = s.update_function(2.0, replace(CFG, gpu_memory_mb=16384, min_instances=1))
    assert reclaims(d) == {old: "updated"} and len(starts(d)) == 1
