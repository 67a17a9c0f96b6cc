"""qa_restore on the synthetic manually calibrated total power delivery (fixture ``tp_manual_delivery``).

The delivery carries one ``<uid>.ms.scriptForSDCalibration.py`` per EB and
no calibration tables: each script imports the ASDM (``ocorr_mode='ao'``),
flags the bad ON subscan, computes the Tsys, sky and Jy/K tables from the
data and the factors it carries, applies them to the ON_SOURCE target and
splits ``<uid>.ms.split.cal``.  The restore runs the delivered scripts as
scriptForPI.py does (mode manual); the calibrated target spectra must
match ``truth.total_power`` as the pipeline TP restore's do.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import almaqa_casa  # noqa: F401
from tests.restore.test_manual_support import inputs_checksum
from tests.restore.test_tp_restore import check_spectrum, flat, k2jy_table_factors, spectra

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def restored(tp_manual_delivery, tmp_path_factory, restore_checksum):
    from almaqa_casa import qa_restore
    member = tp_manual_delivery["member_dir"]
    before = inputs_checksum(restore_checksum, member)
    out = tmp_path_factory.mktemp("tp-manual") / "calibrated"
    r = qa_restore(deliverydir=member, outdir=str(out))
    return {"res": r, "out": out, "member": Path(member), "before": before,
            "after": inputs_checksum(restore_checksum, member)}


def _table(path: Path, what: str):
    from casatools import table
    tb = table()
    tb.open(str(path))
    try:
        return tb.getkeyword(what) if what == "VisCal" else tb.getcol(what)
    finally:
        tb.close()


def test_the_delivered_scripts_ran(restored, tp_manual_delivery):
    t = tp_manual_delivery["truth"]
    r, out, member = restored["res"], restored["out"], restored["member"]
    assert r["status"] == "ok", r.get("error")
    m = r["members"][0]
    assert m["mode"] == "manual" and m["total_power"] and m["route"] == "scripts"
    assert m["executes_delivered_code"]
    assert not list((member / "calibration").glob("*caltables*")), "manual TP delivers no tables"
    assert not list((member / "calibration").glob("*jyperk*")), "the factors are in the scripts"
    assert sorted(p.name for p in (member / "script").iterdir()) == sorted(
        [f"{u}.ms.scriptForSDCalibration.py" for u in t["ebs"]]
        + [f"member.{t['mous']}.scriptForPI.py", f"member.{t['mous']}.scriptForSDImaging.py"])
    assert sorted(p.name for p in (member / "product").iterdir()) == t["total_power"]["products"]
    for uid in t["ebs"]:
        e = m["eb_results"][uid]
        assert e["status"] == "ok" and e["steps"] == [f"{uid}:script"]
        assert e["ran"] == str(member / "script" / f"{uid}.ms.scriptForSDCalibration.py")
        assert e["outputs"] == [str(out / f"{uid}.ms.split.cal")]
        assert e["log"] == str(out / f"{uid}.calibration" / f"{uid}.scriptForSDCalibration.log")
        wd = out / f"{uid}.calibration"
        assert os.path.realpath(wd / uid) == os.path.realpath(member / "raw" / f"{uid}.asdm.sdm")
        # the tables the script computed from the data, of the pipeline's types
        for name, viscal in t["total_power"]["table_types"].items():
            assert _table(wd / t["eb"][uid]["caltables"][name], "VisCal") == viscal, name


def test_split_cal_spectra_match_the_truth(restored, tp_manual_delivery):
    """Per EB and window the target spectrum (mean over unflagged ON integrations,
    antennas, XX/YY) peaks at the true Jy value within 3 %, is zero off the lines
    within the noise; the whole delivery's peak is ``peak_jy``."""
    t = tp_manual_delivery["truth"]
    tp = t["total_power"]
    out = restored["out"]
    best = 0.0
    for uid in t["ebs"]:
        got = spectra(str(out / f"{uid}.ms.split.cal"), "DATA")
        assert sorted(got) == [0, 1]
        for s, (spec, n) in got.items():
            check_spectrum(tp, s, spec, n, f"{uid} spw {s}")
            best = max(best, float(np.nanmax(spec)))
    assert best == pytest.approx(tp["peak_jy"], rel=0.03)


def test_every_antenna_and_polarization_in_jansky(restored, tp_manual_delivery):
    """The script's Jy/K table holds the true factor per antenna, window and
    polarization, and each antenna's calibrated spectrum follows the true one
    (a factor of another antenna is >= 3.7 % off)."""
    t = tp_manual_delivery["truth"]
    tp = t["total_power"]
    out = restored["out"]
    for uid in t["ebs"]:
        table = out / f"{uid}.calibration" / t["eb"][uid]["caltables"]["k2jy"]
        assert flat(k2jy_table_factors(str(table), tp["antennas"])) == pytest.approx(
            flat(tp["jyperk"][uid]), rel=1e-6)
        split = out / f"{uid}.ms.split.cal"
        a1, a2, dd = (_table(split, c) for c in ("ANTENNA1", "ANTENNA2", "DATA_DESC_ID"))
        assert (a1 == a2).all(), "split.cal holds the target autocorrelations only"
        d = np.ma.masked_array(_table(split, "DATA").real, _table(split, "FLAG"))
        for s in (0, 1):
            true = np.asarray(tp["spectrum_jy_per_spw"][str(s)])
            line = true > 0.2 * true.max()
            for a in range(len(tp["antennas"])):
                for p in range(2):
                    m = d[p][:, (a1 == a) & (dd == s)].mean(axis=1).filled(np.nan)
                    ratio = np.sum(m[line] * true[line]) / np.sum(true[line] ** 2)
                    assert ratio == pytest.approx(1.0, abs=0.03), (uid, s, a, p)


def test_bad_subscan_flagged_by_the_script(restored, tp_manual_delivery):
    t = tp_manual_delivery["truth"]
    out = restored["out"]
    for uid in t["ebs"]:
        bad = t["total_power"]["bad_data"][uid]
        split = out / f"{uid}.ms.split.cal"
        ant = t["total_power"]["antennas"].index(bad["antenna"])
        a, tim = _table(split, "ANTENNA1"), _table(split, "TIME")
        flag = _table(split, "FLAG").all(axis=(0, 1))
        sel = (a == ant) & (tim > bad["start"]) & (tim < bad["end"])
        assert sel.sum() == bad["rows"] and flag[sel].all()
        assert not flag[~sel].any()


def test_verification_samples_the_autocorrelations(restored, tp_manual_delivery):
    """Manual EBs: no calapply.txt or Pipeline_Final; every field of the split.cal
    is sampled, here its autocorrelations (it holds nothing else)."""
    v = restored["res"]["members"][0]["verification"]
    assert v["status"] == "passed", v.get("failures")
    for uid in tp_manual_delivery["truth"]["ebs"]:
        e = v["ebs"][uid]
        assert e["ms"] == str(restored["out"] / f"{uid}.ms.split.cal") and e["column"] == "DATA"
        got = {c["check"]: c["status"] for c in e["checks"]}
        assert got == {"calapply": "skip", "coverage": "skip", "data": "pass", "flags": "skip",
                       "flux": "skip", "renorm": "skip"}
        data = next(c for c in e["checks"] if c["check"] == "data")
        assert data["numbers"]["rows_read"] == 2 * 16 and data["numbers"]["unflagged"] > 0


def test_inputs_untouched(restored):
    assert restored["before"] == restored["after"]
    assert len(restored["before"]) == 4     # raw, calibration, script, product


def test_no_text_only_skeleton_of_manual_total_power(tmp_path):
    """A skeleton would carry interferometric script names: refused, pointing to generate()."""
    from almaqa_casa.synth.skeleton import make_skeleton
    from almaqa_casa.synth.spec import SynthSpec
    with pytest.raises(ValueError, match=r"generate\(calibration='manual', total_power=True\)"):
        make_skeleton(str(tmp_path / "sk"), SynthSpec(calibration="manual", total_power=True))
    assert not (tmp_path / "sk").exists()
