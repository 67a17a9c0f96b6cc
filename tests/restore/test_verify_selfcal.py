"""Verification of a self-calibrated restore (real CASA, the synthetic ``selfcal_delivery``).

The clean restore's targets MSs carry the self-calibration where selfcal.json
applies it (CORRECTED_DATA differs from DATA in every self-calibrated field and
spw); a restore whose self-calibration was undone afterwards (EB 1's
``_targets.ms`` CORRECTED reset to DATA) fails, naming the EB, the MS, the
field, the spw and the samples.
"""
from __future__ import annotations

import pytest

from .test_verify_sabotage import _check
from .test_verify_tp import _report, _restore, _statuses

pytestmark = pytest.mark.slow


def test_selfcal_applied_then_undone(selfcal_delivery, tmp_path):
    import casatools
    t = selfcal_delivery["truth"]
    eb1, eb2 = t["ebs"]
    out = tmp_path / "calibrated"
    r = _restore(selfcal_delivery["member_dir"], out)
    assert r["status"] == "ok" and r["verification"] == {t["mous"]: "passed"}, r.get("error")
    rep = _report(out)
    nspw = len(t["spws"])
    for uid in t["ebs"]:
        c = _check(rep, uid, "selfcal")
        assert c["status"] == "pass", c["message"]
        applied = [s for s in c["numbers"]["samples"] if s["applied"]]
        # both targets MSs, every spw of the self-calibrated target (selfcal.json's spw_real)
        assert {(s["ms"], s["field"]) for s in applied} == {
            (f"{uid}_targets.ms", t["target"]), (f"{uid}_targets_line.ms", t["target"])}
        assert len(applied) == 2 * nspw and all(s["unchanged"] < s["unflagged"] for s in applied)
    vis = out / f"{eb1}_targets.ms"
    tb = casatools.table()
    tb.open(str(vis), nomodify=False)
    try:                                # spws of 60 and 128 channels: per data description
        for dd in sorted(set(tb.getcol("DATA_DESC_ID"))):
            q = tb.query(f"DATA_DESC_ID=={dd}")
            try:
                q.putcol("CORRECTED_DATA", q.getcol("DATA"))
            finally:
                q.close()
    finally:
        tb.close()
    r = _restore(selfcal_delivery["member_dir"], out)
    assert all(s["skipped"] for s in r["members"][0]["steps"])
    assert r["status"] == "failed" and r["verification"] == {t["mous"]: "failed"}
    rep = _report(out)
    c = _check(rep, eb1, "selfcal")
    assert c["status"] == "fail"
    undone = [s for s in c["numbers"]["samples"] if s["ms"] == vis.name and s["applied"]]
    assert len(undone) == nspw and all(s["unchanged"] == s["unflagged"] > 0 for s in undone)
    s0 = undone[0]
    assert c["message"].startswith(
        f"{eb1}: selfcal: {vis.name} field {t['target']} spw {s0['spw']}: all {s0['unflagged']} "
        "unflagged CORRECTED_DATA samples equal DATA: the self-calibration is NOT applied")
    assert f"{eb1}_targets_line.ms" not in c["message"]          # that one is intact
    assert _statuses(rep, eb1)["selfcal"] == "fail" and _statuses(rep, eb2)["selfcal"] == "pass"
    assert [k for k, v in _statuses(rep, eb1).items() if v == "fail"] == ["selfcal"]
