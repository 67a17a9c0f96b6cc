"""The Amdahl bound benchmarks/restore.py reports for the restore's speed-up."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "bench_restore", Path(__file__).resolve().parents[1] / "benchmarks" / "restore.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_bound_takes_the_cheaper_side_of_each_shared_cost():
    ref = {"importasdm": 2.3, "renorm": 4.5, "applycal": 5.2, "mstransform": 1.4}
    ours = {"importasdm": 1.8, "renorm": 4.3, "mstransform": 4.9}
    floor = {"importasdm": 1.7, "mstransform": 1.2}
    b = bench.shared_cost_bound(ref, ours, floor, ref_seconds=13.7, parallel=1)
    assert b["renorm_seconds"] == 4.3              # ours is cheaper
    assert b["calibration_seconds"] == 3.7         # 4.9 - 1.2 < applycal's 5.2
    assert b["shared_seconds"] == 8.0
    assert b["max_speedup"] == pytest.approx(13.7 / 8.0)


def test_bound_with_ebs_side_by_side_and_when_nothing_is_shared():
    ref = {"renorm": 4.0, "applycal": 4.0}
    ours = {"renorm": 6.0, "mstransform": 5.0}
    floor = {"mstransform": 1.0}
    b = bench.shared_cost_bound(ref, ours, floor, ref_seconds=12.0, parallel=2)
    assert b["shared_seconds"] == 4.0              # (4 + 4) over 2 EBs at once
    assert b["max_speedup"] == pytest.approx(3.0)
    none = bench.shared_cost_bound({}, {"mstransform": 1.0}, {"mstransform": 1.0}, 12.0, 1)
    assert none["shared_seconds"] == 0 and none["max_speedup"] is None
