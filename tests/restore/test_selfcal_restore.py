"""Restoring a self-calibrated Cycle 10+ delivery (real CASA, the synthetic
``selfcal_delivery``): hif_selfcal's restore-only mode re-applies selfcal.json's
tables to the targets MSs.

The delivery's target carries a residual phase error (per antenna and scan)
that the phase calibrator never saw (``truth['selfcal_truth']``): after the
restore the target's phases against the true model (a point source at the
phase centre, phase 0) have an RMS below a third of the injected one in the
self-calibrated column, and not in the regularly calibrated one.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from .conftest import make_shadow  # noqa: F401  (conftest sets CASA up offline)

pytestmark = pytest.mark.slow


def _restore(**kw):
    from almaqa_casa import qa_restore
    return qa_restore(**kw)


def target_phases(vis: str, column: str, field: str) -> np.ndarray:
    """Per unflagged cross-correlation row of ``field``: the phase (deg) of the sum of
    the parallel hands over channels against the true model, a point source at the
    phase centre (real, positive: phase 0)."""
    from casatools import msmetadata, table
    md = msmetadata()
    md.open(vis)
    try:
        fid = int(md.fieldsforname(field)[0])
        dds = [int(d) for s in range(md.nspw()) for d in md.datadescids(spw=s)]
    finally:
        md.close()
    tb = table()
    tb.open(vis)
    out = []
    try:
        for dd in dds:
            q = tb.query(f"DATA_DESC_ID=={dd} && FIELD_ID=={fid} && ANTENNA1!=ANTENNA2")
            try:
                if not q.nrows():
                    continue
                d, f = q.getcol(column), q.getcol("FLAG")
            finally:
                q.close()
            w = ~f[[0, -1]]
            z = (d[[0, -1]] * w).sum(axis=(0, 1))
            ok = w.any(axis=(0, 1))
            out.append(np.degrees(np.angle(z[ok])))
    finally:
        tb.close()
    return np.concatenate(out)


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


@pytest.fixture(scope="module")
def restored(selfcal_delivery, tmp_path_factory, restore_checksum):
    out = tmp_path_factory.mktemp("selfcal-restore") / "calibrated"
    before = restore_checksum(selfcal_delivery["member_dir"])
    r = _restore(deliverydir=selfcal_delivery["member_dir"], outdir=str(out))
    return r, out, (before, restore_checksum(selfcal_delivery["member_dir"]))


def test_restore_reports_the_self_calibrated_target(restored, selfcal_delivery):
    r, out, _ = restored
    t = selfcal_delivery["truth"]
    assert r["status"] == "ok", r.get("error")
    m = r["members"][0]
    assert m["delivery"]["docontsub"]["on"] is True          # automatic: the pipeline self-calibrated
    sc = m["selfcal"]
    assert sc["self_calibrated_targets"] == [t["target"]] and sc["applied_targets"] == [t["target"]]
    (tg,) = sc["targets"]
    assert tg["applied"] and tg["field"] == t["target"]
    want = {os.path.basename(a) for a in t["selfcal_truth"]["tables"].values()}
    assert {os.path.basename(x) for x in tg["tables"]} == set(t["selfcal_truth"]["tables"]) == want
    for eb in t["ebs"]:
        e = tg["ebs"][eb]
        assert e["applied"] and e["ms"] == [f"{eb}_targets.ms", f"{eb}_targets_line.ms"]
        assert len(e["tables"]) == 2 and all(f"_{eb}_targets.ms_" in x for x in e["tables"])
        assert (out / f"{eb}_targets.ms").exists() and (out / f"{eb}_targets_line.ms").exists()


def test_target_phases_are_self_calibrated(restored, selfcal_delivery):
    """Against the truth's model: RMS below a third of the injected residual with the
    self-calibration tables (CORRECTED) and not without them (DATA: the regular
    calibration, as a restore that ignores selfcal.json leaves it)."""
    r, out, _ = restored
    t = selfcal_delivery["truth"]
    injected = t["selfcal_truth"]["injected_baseline_phase_rms_deg"]
    assert injected > 20.0
    for eb in t["ebs"]:
        vis = str(out / f"{eb}_targets.ms")
        with_sc = rms(target_phases(vis, "CORRECTED_DATA", t["target"]))
        without = rms(target_phases(vis, "DATA", t["target"]))
        assert with_sc < injected / 3, (eb, with_sc, injected)
        assert without > injected / 3, (eb, without, injected)
        assert with_sc < without / 3


def test_line_ms_is_self_calibrated_too(restored, selfcal_delivery):
    from casatools import table
    r, out, _ = restored
    t = selfcal_delivery["truth"]
    tb = table()
    for eb in t["ebs"]:
        vis = out / f"{eb}_targets_line.ms"
        tb.open(str(vis))
        try:
            assert "CORRECTED_DATA" in tb.colnames()
        finally:
            tb.close()
        marker = json.loads((vis / ".almaqa_selfcal.json").read_text())
        assert [d["field"] for d in marker["applied"]] == [t["target"]]
        tb.open(str(vis / "HISTORY"))
        try:
            msgs = list(tb.getcol("MESSAGE"))
        finally:
            tb.close()
        assert any(m.startswith("hif_selfcal restore:") and t["target"] in m for m in msgs)


def test_rerun_skips_and_keeps_the_self_calibration(restored, selfcal_delivery):
    r, out, _ = restored
    r2 = _restore(deliverydir=selfcal_delivery["member_dir"], outdir=str(out))
    m = r2["members"][0]
    assert r2["status"] == "ok"
    assert all(s["skipped"] for s in m["steps"]), [s for s in m["steps"] if not s["skipped"]]
    assert m["selfcal"]["applied_targets"] == [selfcal_delivery["truth"]["target"]]


def test_spws_not_named_are_untouched(restored, selfcal_delivery, tmp_path):
    """The tables applied to spws 0,1 only leave spws 2,3 as they were (CORRECTED = DATA)."""
    from casatools import table

    from almaqa_casa.restore.steps.selfcal import apply_selfcal
    r, out, _ = restored
    t = selfcal_delivery["truth"]
    eb = t["ebs"][0]
    vis = tmp_path / "t.ms"
    shutil.copytree(out / f"{eb}_targets.ms", vis)
    tb = table()
    tb.open(str(vis), nomodify=False)
    tb.removecols(["CORRECTED_DATA"])
    tb.close()
    tabledir = out / "working" / "selfcal" / eb
    tables = r["members"][0]["selfcal"]["targets"][0]["ebs"][eb]["tables"]
    app = {"vis": "t.ms", "field": t["target"], "spw": "0,1", "gaintable": sorted(tables, reverse=True),
           "interp": ["linearPD", "linearPD"], "spwmap": [[], []], "calwt": [False, False],
           "applymode": "calflag", "source": "test"}
    apply_selfcal(str(vis), [app], str(tabledir))
    tb.open(str(vis))
    try:
        for dd, changed in ((0, True), (1, True), (2, False), (3, False)):
            q = tb.query(f"DATA_DESC_ID=={dd} && ANTENNA1!=ANTENNA2")
            d, c = q.getcol("DATA"), q.getcol("CORRECTED_DATA")
            q.close()
            assert (not np.allclose(c, d)) is changed, dd
    finally:
        tb.close()


def test_docontsub_false_restores_without_self_calibration(selfcal_delivery, tmp_path):
    r = _restore(deliverydir=selfcal_delivery["member_dir"], outdir=str(tmp_path / "o"),
                 docontsub=False, dryrun=True)
    m = r["members"][0]
    kinds = {s["kind"] for s in m["plan"]["steps"]}
    assert not kinds & {"targets", "contsub", "selfcal"}
    assert not m["selfcal"]["applies"] and m["selfcal"]["applied_targets"] == []
    assert any("DOCONTSUB=False" in w and "not made" in w for w in m["warnings"])


def test_delivery_untouched(restored):
    before, after = restored[2]
    assert before == after
