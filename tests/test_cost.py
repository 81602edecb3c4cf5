"""`fcbench cost`: FC's documented examples to the cent, the CU regime by hand, a run folder's
metering against a hand sum of its instances.csv, and bad tables as located errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from fcbench.cost.model import DailyUsage, compare, daily_cost, usage_from_calls, usage_from_run
from fcbench.cost.tables import load_table
from fcbench.errors import SpecError


@pytest.fixture(scope="module")
def simple():
    return load_table("fc-doc-simple")


@pytest.mark.parametrize("calls, fc, utilisation, saving", [
    # the documentation rounds these to 4.1 % / 95 % and 57 % / 55 %; the arithmetic gives:
    (3600, 10.08, 0.0417, 0.970),
    (50000, 140.00, 0.5787, 0.583),
])
def test_the_documentations_examples(simple, calls, fc, utilisation, saving):
    result = compare(simple, usage_from_calls(calls, 1.0, 4.0))
    assert result.server_per_day == pytest.approx(336.00, abs=0.005)
    assert result.fc_per_day == pytest.approx(fc, abs=0.005)
    assert result.utilisation == pytest.approx(utilisation, abs=0.001)
    assert result.saving == pytest.approx(saving, abs=0.001)


def test_break_even_utilisation(simple):
    assert compare(simple, usage_from_calls(3600, 1, 4)).break_even_utilisation is None  # never
    assert compare(simple, usage_from_calls(3600, 1, 16)).break_even_utilisation == \
        pytest.approx(0.347, abs=0.001)


def test_the_cu_table_by_hand():
    table = load_table("fc3-cu-2024-08")
    usage = DailyUsage(invocations=20000, active_s=20000 * 2.0, gpu_gb=8, vcpu=2, memory_gb=8,
                       disk_gb=0.5, gpu_family="ada")
    parts = daily_cost(table, usage)
    cu = 40000 * (2 * 1.0 + 8 * 0.15 + 0.5 * 0.05 + 8 * 1.5) + 20000 / 10000 * 75
    assert parts["cu"] == pytest.approx(cu)
    assert parts["total"] == pytest.approx(cu * 0.000020)  # 30 such days stay under 100 M CU
    assert sum(v for k, v in parts.items() if k not in ("total", "cu")) == \
        pytest.approx(parts["total"])
    # a month over the first tier is priced in tiers
    heavy = DailyUsage(invocations=0, active_s=86400, gpu_gb=48, gpu_family="tesla")
    month_cu = 86400 * 48 * 2.1 * 30
    expect = (100e6 * 0.000020 + (min(month_cu, 500e6) - 100e6) * 0.000017
              + max(0, month_cu - 500e6) * 0.000014) / 30
    assert daily_cost(table, heavy)["total"] == pytest.approx(expect)
    # idle seconds are billed only where the table says so
    idle = DailyUsage(invocations=0, active_s=0, idle_s=1000, gpu_gb=4)
    assert daily_cost(table, idle)["total"] == 0.0
    billed = table.model_copy(update={"bill_idle": True})
    assert daily_cost(billed, idle)["cu"] == pytest.approx(1000 * 4 * 0.5)


def test_a_run_folders_cost_is_the_hand_sum_of_its_instances(tmp_path, simple):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"instance_id": "i1", "gpu_memory_mb": 4096, "active_s": 12.5, "idle_s": 30.0},
            {"instance_id": "i2", "gpu_memory_mb": 4096, "active_s": 7.5, "idle_s": 10.0}]
    with open(run / "instances.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (run / "summary.json").write_text(json.dumps({"count": 40, "duration_s": 60.0}))
    usage, scale = usage_from_run(run)
    assert scale == pytest.approx(1440.0)
    run_cost = daily_cost(simple, usage)["total"] / scale
    assert run_cost == pytest.approx(4 * (12.5 + 7.5) * 0.0007)  # GB × active s × price
    res = subprocess.run([sys.executable, "-m", "fcbench", "cost", str(run)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"{run_cost * scale:.2f} CNY" in res.stdout and "check your console" in res.stdout


def test_the_command_prints_both_regimes_separately():
    res = subprocess.run([sys.executable, "-m", "fcbench", "cost", "--calls-per-day", "3600",
                          "--seconds-per-call", "1", "--gpu-mem", "4", "--table", "fc-doc-simple",
                          "--table", "fc3-cu-2024-08", "--server-price", "2USD"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "10.08 CNY" in out and "336.00 CNY" in out and "97.0%" in out
    assert "30,267 CU" in out and "48.00 USD" in out  # the USD server price went to USD only


@pytest.mark.slow
def test_bad_tables_are_located_errors(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: t\nregime: gb-s\ncurrency: CNY\nsource: me\ndate: x\ngpuGbS: -1\n")
    with pytest.raises(SpecError, match=r"t\.yaml:6: gpuGbS"):
        load_table(bad)
    bad.write_text("name: t\nregime: flat\ncurrency: CNY\n")
    with pytest.raises(SpecError, match=r"t\.yaml"):
        load_table(bad)
    res = subprocess.run([sys.executable, "-m", "fcbench", "cost", "--calls-per-day", "1",
                          "--seconds-per-call", "1", "--gpu-mem", "4", "--table", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "t.yaml" in res.stderr and "Traceback" not in res.stderr
    with pytest.raises(SpecError, match="no price table"):
        load_table("nope")


def test_provisioned_idle_seconds_are_billed_on_demand_ones_are_not(simple):
    usage = DailyUsage(invocations=10, active_s=100, idle_s=1000, provisioned_idle_s=500,
                       gpu_gb=4)
    assert daily_cost(simple, usage)["total"] == pytest.approx(4 * (100 + 500) * 0.0007)
    cu = load_table("fc3-cu-2024-08")
    assert daily_cost(cu, usage)["cu"] == pytest.approx(4 * (100 * 2.1 + 500 * 0.5)
                                                        + 10 / 10000 * 75)


@pytest.mark.slow
def test_cost_plot_from_the_command_marks_compares_break_even(fcbench_run, tmp_path):
    """`fcbench cost ... --plot`: one PNG per table; the break-even it marks for 16 GB is the
    documentation's ~34.7 % utilisation, the same number the terminal table prints."""
    from PIL import Image

    out = tmp_path / "cost.png"
    res = fcbench_run("cost", "--calls-per-day", "3600", "--seconds-per-call", "1",
                      "--gpu-mem", "16", "--plot", str(out), "--table", "fc-doc-simple", "--table",
                      "fc3-cu-2024-08", "--server-price", "2.1USD", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "break-even utilisation     34.7%" in res.stdout
    simple_png = tmp_path / "cost-fc-doc-simple.png"
    assert simple_png.is_file() and (tmp_path / "cost-fc3-cu-2024-08.png").is_file()
    marks = json.loads(Image.open(simple_png).text["fcbench"])["break_even"]
    [m16] = [m for m in marks if m["gpu_gb"] == 16]
    want = compare(load_table("fc-doc-simple"), usage_from_calls(3600, 1, 16))
    # calls a day at 1 s each over 86400 s is the utilisation
    assert m16["calls"] / 86400 == pytest.approx(want.break_even_utilisation, rel=1e-6)
    assert m16["calls"] / 86400 == pytest.approx(0.347, abs=0.001)
    assert m16["cost"] == pytest.approx(336.0)


def test_more_busy_time_than_a_day_is_priced_against_as_many_servers(simple):
    """10^8 one-second calls a day is 1158 days of busy time: one server cannot carry it, so
    the comparison is with 1158 of them, and FC (4 GB, never breaking even) is still cheaper."""
    usage = usage_from_calls(100_000_000, 1, 4)
    got = compare(simple, usage)
    assert got.servers == 1158
    assert got.server_per_day == pytest.approx(1158 * 336.0)
    assert got.fc_per_day == pytest.approx(100_000_000 * 4 * 0.0007)
    assert got.saving == pytest.approx(1 - 280_000 / (1158 * 336.0))
    assert got.saving > 0 and got.break_even_utilisation is None
    assert compare(simple, usage_from_calls(3600, 1, 4)).servers == 1


def test_a_provisioned_instance_is_billed_idle_for_the_rest_of_the_day():
    """Metered over a 100 s span, a provisioned instance busy 10 s of it is busy 8640 s a day and
    kept (idle) the other 77760 s — however long the harness ran it before the first request."""
    from fcbench.cost.model import usage_from_instances

    rows = [{"active_s": 10, "idle_s": 500, "provisioned": "True", "gpu_memory_mb": 4096},
            {"active_s": 5, "idle_s": 3, "provisioned": False, "gpu_memory_mb": 4096}]
    usage, scale = usage_from_instances(rows, requests=20, span_s=100)
    assert scale == pytest.approx(864)
    assert usage.active_s == pytest.approx(15 * 864)
    assert usage.provisioned_idle_s == pytest.approx(86400 - 10 * 864)
    assert usage.idle_s == pytest.approx(3 * 864)
    assert usage.invocations == pytest.approx(20 * 864) and usage.gpu_gb == 4
