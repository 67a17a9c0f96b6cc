"""Verification of a self-calibrated restore (real CASA, the synthetic ``selfcal_delivery``).

The clean restore's targets MSs carry the self-calibration where selfcal.json
applies it (CORRECTED_DATA differs from DATA in every self-calibrated field and
spw); a restore whose self-calibration was undone afterwards (EB 1's
``_targets.ms`` CORRECTED reset to DATA) fails, naming the EB, the MS, the
field, the spw and the samples.  When selfcal.json applies EB 1's self-calibration
to two of its four spws only, the other two keep CORRECTED equal to DATA, the check
passes on both halves, and a change there afterwards fails it.
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

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


def _selfcal_on_spws(member: Path, vis: str, spws: str) -> None:
    """Rewrite the member's selfcal.json (in auxproducts.tgz) so that the self-calibration
    of ``vis`` applies to ``spws`` only (spw_real), as hif_selfcal records a target whose
    solutions hold in some spws."""
    tgz = next((member / "calibration").glob("*auxproducts.tgz"))
    with tarfile.open(tgz) as old:
        members = [(m, old.extractfile(m).read() if m.isfile() else None) for m in old.getmembers()]
    with tarfile.open(tgz, "w:gz") as new:
        for m, data in members:
            if m.name.endswith("selfcal.json"):
                doc = json.loads(data)
                doc["scal_targets"][0]["spw_real"][vis] = spws
                data = json.dumps(doc, indent=2).encode()
                m.size = len(data)
            new.addfile(m, io.BytesIO(data) if data is not None else None)


def test_selfcal_on_some_spws_leaves_the_others_and_the_check_sees_both(selfcal_delivery,
                                                                         tmp_path):
    """selfcal.json applies EB 1's self-calibration to spws 0 and 1 only: the restore
    leaves spws 2 and 3 of its targets MSs as they were (CORRECTED equals DATA there) and
    the check passes on both halves; CORRECTED changed in spw 2 afterwards fails it."""
    import casatools
    t = selfcal_delivery["truth"]
    eb1 = t["ebs"][0]
    src = Path(selfcal_delivery["member_dir"])
    member = tmp_path / src.name
    shutil.copytree(src, member, symlinks=True)
    _selfcal_on_spws(member, f"{eb1}_targets.ms", "0,1")
    out = tmp_path / "calibrated"
    r = _restore(member, out)
    assert r["status"] == "ok" and r["verification"] == {t["mous"]: "passed"}, r.get("error")
    c = _check(_report(out), eb1, "selfcal")
    assert c["status"] == "pass", c["message"]
    samples = c["numbers"]["samples"]
    assert {(s["ms"], s["spw"]) for s in samples if s["applied"]} == {
        (f"{eb1}_{k}.ms", s) for k in ("targets", "targets_line") for s in (0, 1)}
    others = [s for s in samples if not s["applied"]]
    assert {s["spw"] for s in others} == {2, 3}
    assert all(s["unchanged"] == s["unflagged"] > 0 for s in others)
    assert all(s["unchanged"] < s["unflagged"] for s in samples if s["applied"])

    vis = out / f"{eb1}_targets.ms"
    tb = casatools.table()
    tb.open(str(vis / "DATA_DESCRIPTION"))
    dd = list(tb.getcol("SPECTRAL_WINDOW_ID")).index(2)
    tb.close()
    tb.open(str(vis), nomodify=False)
    try:
        q = tb.query(f"DATA_DESC_ID=={dd}")
        try:
            q.putcol("CORRECTED_DATA", q.getcol("DATA") * 1.01)
        finally:
            q.close()
    finally:
        tb.close()
    r = _restore(member, out)
    assert r["status"] == "failed" and r["verification"] == {t["mous"]: "failed"}
    c = _check(_report(out), eb1, "selfcal")
    assert c["status"] == "fail"
    assert f"{vis.name} field {t['target']} spw 2: " in c["message"]
    assert "differ from DATA where selfcal.json applies no self-calibration" in c["message"]
    assert "spw 3" not in c["message"] and f"{eb1}_targets_line.ms" not in c["message"]
