"""Arrival sequences and run.yaml's resolved plans are bit-identical to those of the plan code
before the plan models and the runtime plans became one (digests of the packed float64
offsets, recorded from that code), for every kind, two seeds and a shard."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from fcbench.load.loader import workload_from_dict

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "workloads" / "traces" / "azure-sample.csv"
CASES = {
    "poisson": {"kind": "poisson", "rate": 50},
    "constant": {"kind": "constant", "rate": 7},
    "uniform": {"kind": "uniform", "rate": 50},
    "burst": {"kind": "burst", "rateOn": 80, "onS": 2, "offS": 3, "rateOff": 5},
    "burst-constant": {"kind": "burst", "rateOn": 40, "onS": "1.5s", "offS": 1,
                       "process": "constant"},
    "diurnal": {"kind": "diurnal", "rates": [5, 60, 20, 0], "period": 8},
    "trace": {"kind": "trace", "file": str(TRACE), "compression": 600, "startMinute": 3},
}
DIGESTS = {
    ('poisson', 0, None): (1014, '5c71f9e4082fe623'),
    ('poisson', 7, None): (1018, '1999b10d4bc412d1'),
    ('poisson', 7, (1, 3)): (339, '2c0c7feed34b0df7'),
    ('constant', 0, None): (140, 'ad00a070c1911d06'),
    ('constant', 7, None): (140, 'ad00a070c1911d06'),
    ('constant', 7, (1, 3)): (47, '35da5cf63c539385'),
    ('uniform', 0, None): (1005, '329add6067b66522'),
    ('uniform', 7, None): (1033, 'f8f239a347b7f8a3'),
    ('uniform', 7, (1, 3)): (344, '87f52e0ef6a7b0c7'),
    ('burst', 0, None): (703, 'f4208494da1e0373'),
    ('burst', 7, None): (724, 'da4e67a2748a8df6'),
    ('burst', 7, (1, 3)): (241, 'f09fe08929a737fa'),
    ('burst-constant', 0, None): (480, 'da779830279e71e6'),
    ('burst-constant', 7, None): (480, 'da779830279e71e6'),
    ('burst-constant', 7, (1, 3)): (160, 'c629e253e280f224'),
    ('diurnal', 0, None): (449, 'c85dc475a962dd1c'),
    ('diurnal', 7, None): (524, '6ecca820037a7ebf'),
    ('diurnal', 7, (1, 3)): (175, 'e8ac61b405f464da'),
    ('trace', 0, None): (52, '5b34852e27a0aa07'),
    ('trace', 7, None): (52, 'd555874a41e87490'),
    ('trace', 7, (1, 3)): (17, 'b8e27b2f8d3a762f'),
}
RESOLVED = {'poisson': {'kind': 'poisson', 'rate': 50.0, 'seed': 7, 'shard': [1, 3]},
 'constant': {'kind': 'constant', 'rate': 7.0, 'shard': [1, 3]},
 'uniform': {'kind': 'uniform', 'rate': 50.0, 'seed': 7, 'shard': [1, 3]},
 'burst': {'kind': 'burst',
           'rate_on': 80.0,
           'on_s': 2.0,
           'off_s': 3.0,
           'rate_off': 5.0,
           'seed': 7,
           'process': 'poisson',
           'shard': [1, 3]},
 'burst-constant': {'kind': 'burst',
                    'rate_on': 40.0,
                    'on_s': 1.5,
                    'off_s': 1.0,
                    'rate_off': 0.0,
                    'seed': 7,
                    'process': 'constant',
                    'shard': [1, 3]},
 'diurnal': {'kind': 'diurnal',
             'rates': [5.0, 60.0, 20.0, 0.0],
             'period_s': 8.0,
             'seed': 7,
             'shard': [1, 3]},
 'trace': {'kind': 'trace',
           'path': str(TRACE),
           'function': 'b6a636baac7b9f243a668b1910731202d6e2ed18fccea025d181f9f0e2c7ed3b',
           'compression': 600.0,
           'seed': 7,
           'start_minute': 3,
           'shard': [1, 3],
           'total': 1842,
           'span_s': 143.70000000000002}}


def _plan(doc: dict, seed: int):
    wl = workload_from_dict({"name": "g", "target": {"kind": "url", "url": "http://127.0.0.1:1"},
                             "duration": 20, "seed": seed, "plan": doc}, base_dir=ROOT)
    return wl.plan_obj()


@pytest.mark.parametrize("case", sorted(DIGESTS, key=str))
def test_arrivals_are_bit_identical(case):
    name, seed, shard = case
    plan = _plan(CASES[name], seed)
    if shard:
        plan = plan.shard(*shard)
    offsets = list(plan.offsets(20))
    got = hashlib.sha256(b"".join(struct.pack("<d", x) for x in offsets)).hexdigest()[:16]
    assert (len(offsets), got) == DIGESTS[case]


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_resolved_plan_as_before(name):
    assert _plan(CASES[name], 7).shard(1, 3).to_dict() == RESOLVED[name]


def test_closed_loop_users_and_think_times_as_before():
    plan = _plan({"kind": "closed", "users": 5, "think": "exponential", "thinkS": 0.5}, 7)
    plan = plan.shard(1, 2)
    rng = plan.user_rng(1)
    assert plan.users == 2
    assert plan.to_dict() == {'kind': 'closed', 'users': 2, 'think': 'exponential',
                              'think_s': 0.5, 'seed': 7, 'shard': [1, 2]}
    assert [round(plan.think_time(rng), 12) for _ in range(4)] == \
        [0.022090281754, 0.270743443709, 0.362617010706, 0.620831512702]
