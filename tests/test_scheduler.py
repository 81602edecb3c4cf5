"""Table-style tests of the pure scheduling rules (no I/O, explicit clock)."""

from __future__ import annotations

import pytest

from fcbench.errors import GpuError
from fcbench.harness.gpus import GpuPool, parse_virtual_gpus
from fcbench.harness.scheduler import (Admit, FunctionConfig, Reclaim, Reject, RejectReason,
                                       Scheduler, StartInstance)


def kinds(decisions):
    return [type(d).__name__ for d in decisions]


def make(concurrency=1, max_instances=10, queue_size=10, queue_timeout=5.0, idle=10.0, gpu_mb=0,
         gpus=None):
    s = Scheduler(GpuPool(gpus or []))
    s.add_function(FunctionConfig("f", concurrency=concurrency, max_instances=max_instances,
                                  queue_size=queue_size, queue_timeout=queue_timeout,
                                  idle_timeout=idle, gpu_memory_mb=gpu_mb))
    return s


def test_first_request_starts_an_instance_and_is_cold_once_ready():
    s = make()
    d = s.arrive(0.0, "f", "r1")
    assert kinds(d) == ["StartInstance"]
    inst = d[0].instance_id
    d = s.instance_ready(1.0, inst)
    assert d == [Admit("r1", inst, cold=True)]
    s.finish(1.5, "r1")
    d = s.arrive(2.0, "f", "r2")
    assert d == [Admit("r2", inst, cold=False)]


def test_concurrency_one_two_simultaneous_requests_start_two_instances():
    s = make(concurrency=1)
    d = s.arrive(0.0, "f", "a") + s.arrive(0.0, "f", "b")
    assert kinds(d) == ["StartInstance", "StartInstance"]


def test_concurrency_four_shares_one_starting_instance():
    s = make(concurrency=4)
    d = []
    for r in "abcd":
        d += s.arrive(0.0, "f", r)
    assert kinds(d) == ["StartInstance"]
    admitted = s.instance_ready(1.0, d[0].instance_id)
    assert sorted(a.request_id for a in admitted) == list("abcd")
    assert all(a.cold for a in admitted)
    # a fifth finds no slot and starts a second instance
    assert kinds(s.arrive(1.1, "f", "e")) == ["StartInstance"]


def test_packs_onto_busiest_instance_ties_to_most_recent():
    s = make(concurrency=2)
    i1 = s.arrive(0, "f", "a")[0].instance_id
    s.arrive(0, "f", "b")
    i2 = s.arrive(0, "f", "c")[0].instance_id
    s.instance_ready(1, i1)
    s.instance_ready(1, i2)
    s.finish(2, "a")
    s.finish(2, "b")  # i1 idle now, i2 has one in flight
    assert s.arrive(3, "f", "d") == [Admit("d", i2, cold=False)]
    s.finish(4, "c")
    s.finish(4.5, "d")  # both idle; i2 used most recently
    assert s.arrive(5, "f", "e") == [Admit("e", i2, cold=False)]


def test_max_instances_then_queue_then_429():
    s = make(max_instances=1, queue_size=1)
    inst = s.arrive(0, "f", "a")[0].instance_id
    assert s.arrive(0, "f", "b") == []  # queued
    d = s.arrive(0, "f", "c")
    assert len(d) == 1 and isinstance(d[0], Reject) and d[0].reason is RejectReason.QUEUE_FULL
    assert d[0].throttled
    s.instance_ready(1, inst)
    d = s.finish(2, "a")
    # b arrived before the only instance was ready: it waited for that start (and then for a)
    assert d == [Admit("b", inst, cold=True, queued=True)]


def test_queue_timeout_rejects_and_next_deadline_points_at_it():
    s = make(max_instances=1, queue_size=5, queue_timeout=3.0)
    s.arrive(0, "f", "a")
    s.arrive(1, "f", "b")
    assert s.next_deadline() == pytest.approx(4.0)
    assert s.tick(3.9) == []
    d = s.tick(4.0)
    assert d == [Reject("b", RejectReason.QUEUE_TIMEOUT, "waited 3 s in the queue")]


def test_idle_reclaim_after_idle_timeout_then_cold_again():
    s = make(idle=10.0)
    inst = s.arrive(0, "f", "a")[0].instance_id
    s.instance_ready(1, inst)
    s.finish(2, "a")
    assert s.next_deadline() == pytest.approx(12.0)
    assert s.tick(11.9) == []
    assert s.tick(12.0) == [Reclaim(inst, "f", "idle")]
    assert s.instances() == []
    assert kinds(s.arrive(13, "f", "b")) == ["StartInstance"]


def test_busy_instance_is_not_reclaimed():
    s = make(idle=1.0)
    inst = s.arrive(0, "f", "a")[0].instance_id
    s.instance_ready(0.5, inst)
    assert s.tick(100) == []


def test_failed_start_rejects_waiters_and_frees_capacity_for_the_queue():
    s = make(concurrency=1, max_instances=1)
    inst = s.arrive(0, "f", "a")[0].instance_id
    assert s.arrive(0, "f", "b") == []
    d = s.instance_failed(1, inst, "boom")
    assert d[0] == Reject("a", RejectReason.START_FAILED, "boom")
    assert isinstance(d[1], StartInstance)  # the queued request gets a fresh instance
    d2 = s.instance_ready(2, d[1].instance_id)
    assert d2 == [Admit("b", d[1].instance_id, cold=True)]


def test_crash_removes_instance_and_next_request_gets_a_new_one():
    s = make()
    inst = s.arrive(0, "f", "a")[0].instance_id
    s.instance_ready(1, inst)
    s.instance_failed(2, inst, "exit 9")
    assert s.finish(2.1, "a") == []  # the broken request's finish is harmless
    d = s.arrive(3, "f", "b")
    assert kinds(d) == ["StartInstance"] and d[0].instance_id != inst


def test_gpu_memory_limits_instances_and_packs_four_per_card():
    s = make(concurrency=1, gpu_mb=4096, gpus=parse_virtual_gpus("1x16GB"))
    starts = [s.arrive(0, "f", f"r{i}") for i in range(5)]
    assert [kinds(x) for x in starts] == [["StartInstance"]] * 4 + [[]]
    assert {x[0].gpu_index for x in starts[:4]} == {0}


def test_gpu_spec_without_gpus_or_too_large_is_rejected_up_front():
    with pytest.raises(GpuError, match="--virtual-gpus"):
        make(gpu_mb=4096)
    with pytest.raises(GpuError, match="largest GPU"):
        make(gpu_mb=40000, gpus=parse_virtual_gpus("1x16GB"))


def test_cancel_removes_from_queue_and_claims():
    s = make(max_instances=1)
    inst = s.arrive(0, "f", "a")[0].instance_id
    s.arrive(0, "f", "b")
    s.cancel(0.5, "b")
    s.cancel(0.5, "a")
    assert s.instance_ready(1, inst) == []
    assert s.queue_length("f") == 0


def test_metering_active_and_idle_seconds_overlaps_counted_once():
    s = make(concurrency=2, gpu_mb=8192, gpus=parse_virtual_gpus("1x16GB"), idle=100)
    inst_id = s.arrive(0, "f", "a")[0].instance_id
    s.arrive(0, "f", "b")
    s.instance_ready(10, inst_id)          # both admitted at 10
    s.finish(12, "a")
    s.finish(14, "b")                      # active 10..14 = 4 s
    inst = s.instance(inst_id)
    assert inst.usage.active_s(20) == pytest.approx(4.0)
    assert inst.usage.idle_s(20) == pytest.approx(6.0)
    assert inst.usage.gpu_gb_s(20) == pytest.approx(8.0 * 4.0)


def test_virtual_gpu_parsing():
    gpus = parse_virtual_gpus("2x24GB,1x16384MB")
    assert [g.total_mb for g in gpus] == [24576, 24576, 16384]
    with pytest.raises(ValueError, match="COUNTxSIZE"):
        parse_virtual_gpus("lots")


def test_a_cancelled_claim_frees_its_slot_for_the_queue_and_the_waiter_is_cold():
    # one instance, one slot: a claims it while it starts, b queues; a's client gives up
    s = make(max_instances=1, queue_size=5)
    inst = s.arrive(0, "f", "a")[0].instance_id
    assert s.arrive(0.1, "f", "b") == []
    assert s.cancel(0.5, "a") == []  # b now holds the claim a gave up
    d = s.instance_ready(4.9, inst)
    assert d == [Admit("b", inst, cold=True)]  # it waited 4.8 s for that start: cold


def test_a_queued_request_admitted_to_an_instance_ready_before_it_arrived_is_warm():
    s = make(max_instances=1, queue_size=5)
    inst = s.arrive(0, "f", "a")[0].instance_id
    s.instance_ready(1, inst)
    assert s.arrive(2, "f", "b") == []  # the one slot is busy: queued behind a warm instance
    assert s.finish(3, "a") == [Admit("b", inst, cold=False, queued=True)]


def test_provisioned_instances_start_at_once_and_are_never_reclaimed():
    from fcbench.harness.scheduler import FunctionConfig, Scheduler, StartInstance

    s = Scheduler()
    starts = s.add_function(FunctionConfig(name="p", min_instances=2, idle_timeout=1.0), now=0.0)
    assert [type(d) for d in starts] == [StartInstance, StartInstance]
    for d in starts:
        s.instance_ready(1.0, d.instance_id)
    [admit] = s.arrive(2.0, "p", "a")  # a warm slot at once
    assert isinstance(admit, Admit) and not admit.cold
    assert admit.instance_id in {d.instance_id for d in starts}
    s.finish(2.5, "a")
    assert s.tick(100.0) == [] and s.next_deadline() is None  # idle for ages: kept
    assert s.reclaim_idle(100.0, "p") == []  # a forced reclaim leaves them too
    assert len(s.instances("p")) == 2 and all(i.provisioned for i in s.instances("p"))


def _rule_choice(s, function):
    """The placement rule, by brute force over the scheduler's own state (the index must agree):
    the busiest ready instance with a free slot, then the most recently used, then the oldest."""
    ready = [i for i in s.instances(function) if i.state.value == "ready" and i.free_slots > 0]
    return max(ready, key=lambda i: (len(i.in_flight), i.last_used, -i._seq)).id if ready else None


def _rule_deadline(s):
    times = []
    for cfg in s.functions():
        if s.queue_length(cfg.name):
            times.append(s._functions[cfg.name].queue[0].enqueued_at + cfg.queue_timeout)
        times += [i.idle_since + cfg.idle_timeout for i in s.instances(cfg.name)
                  if i.state.value == "ready" and not i.in_flight and not i.provisioned
                  and i.idle_since is not None]
    return min(times, default=None)


@pytest.mark.parametrize("seed", range(40))
def test_indexed_placement_and_deadlines_follow_the_rule_by_brute_force(seed):
    import random

    rng = random.Random(seed)
    s = Scheduler()
    s.add_function(FunctionConfig("f", concurrency=rng.choice([1, 2, 3]), max_instances=6,
                                  queue_size=4, queue_timeout=2.0, idle_timeout=1.5,
                                  min_instances=rng.choice([0, 1])))
    now, reqs, n = 0.0, [], 0
    for _ in range(300):
        now += rng.choice([0.0, 0.0, 0.25, 0.5, 1.0])  # exact binary fractions: many ties
        op = rng.random()
        if op < 0.4:
            expect = None if s.queue_length("f") else _rule_choice(s, "f")
            rid = f"r{n}"
            n += 1
            reqs.append(rid)
            got = [d for d in s.arrive(now, "f", rid) if isinstance(d, Admit)]
            assert (got[0].instance_id if got else None) == expect
        elif op < 0.7 and reqs:
            s.finish(now, reqs.pop(rng.randrange(len(reqs))))
        elif op < 0.75 and reqs:
            s.cancel(now, reqs.pop(rng.randrange(len(reqs))))
        elif op < 0.9:
            starting = [i.id for i in s.instances("f") if i.state.value == "starting"]
            if starting:
                s.instance_ready(now, rng.choice(starting))
        else:
            s.tick(now)
        assert s.next_deadline() == _rule_deadline(s)


def test_an_instance_no_longer_provisioned_idles_out_again():
    s = Scheduler()
    [start] = s.add_function(FunctionConfig("p", min_instances=1, idle_timeout=2.0), now=0.0)
    s.instance_ready(1.0, start.instance_id)
    assert s.next_deadline() is None  # provisioned: kept
    s.instance(start.instance_id).provisioned = False  # as a lowered provision config does
    assert s.next_deadline() == pytest.approx(3.0)  # idle since it became ready at 1.0
    assert s.tick(3.0) == [Reclaim(start.instance_id, "p", "idle")]


def test_decisions_compare_hash_and_print_like_the_dataclasses_they_were():
    a = Admit("r", "i", cold=True)
    assert a == Admit("r", "i", True, False) and a != Admit("r", "i", False)
    assert len({a, Admit("r", "i", True)}) == 1
    assert repr(a) == "Admit(request_id='r', instance_id='i', cold=True, queued=False)"
    assert a != ("r", "i", True, False)


def test_the_into_variants_append_what_the_public_events_return():
    a, b = make(concurrency=2, max_instances=1, queue_size=2), make(concurrency=2, max_instances=1,
                                                                      queue_size=2)
    out = ["sentinel"]
    for i in range(4):
        expect = a.arrive(0.0, "f", f"r{i}")
        b.arrive_into(0.0, "f", f"r{i}", out)
        assert out[1:] == expect
        del out[1:]
    inst = a.instances("f")[0].id
    assert a.instance_ready(1.0, inst) == b.instance_ready(1.0, inst)
    expect = a.finish(2.0, "r0")
    b.finish_into(2.0, "r0", out)
    assert out[1:] == expect and [type(d).__name__ for d in expect] == ["Admit"]
