"""Verification of total power restores (issue 15), real CASA on the synthetic TP delivery.

The clean restore verifies as passed having examined its autocorrelations:
rows in scope, sampled spectra, flag groups, and the Jy/K factor measured in
the calibrated data equal to the truth's per antenna, spw and polarization.
Sabotaged restores fail naming the EB, the check and the numbers: the
calibrated data of EB 1 scaled by 1.1 after the restore (``jyperk``); the
flags of EB 2 cleared in its split (``flags``); EB 1's calapply line restricted
to spw 0 (``coverage``, and ``jyperk`` factors of 1 for spw 1).  A calapply list
with its only line removed is refused before any work, naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import make_shadow
from .test_verify_sabotage import _calibration, _check

pytestmark = pytest.mark.slow


def _restore(member: str, out: Path, **kw) -> dict:
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), outdir=str(out), nprocs=1, **kw)


def _report(out: Path) -> dict:
    return json.loads((out / "restore.json").read_text())


def _statuses(report: dict, eb: str) -> dict[str, str]:
    return {c["check"]: c["status"] for c in report["ebs"][eb]["verification"]["checks"]}


PASSED = {"calapply": "pass", "coverage": "pass", "data": "pass", "flags": "pass",
          "jyperk": "pass", "flux": "skip", "renorm": "skip"}


@pytest.fixture(scope="module")
def clean(tp_delivery, tmp_path_factory):
    out = tmp_path_factory.mktemp("tpv-clean") / "calibrated"
    return _restore(tp_delivery["member_dir"], out, spacesaving=1), out


def test_tp_restore_verifies_with_rows_examined(tp_delivery, clean):
    r, out = clean
    t = tp_delivery["truth"]
    tp = t["total_power"]
    assert r["status"] == "ok" and r["verification"] == {t["mous"]: "passed"}, r.get("error")
    rep = _report(out)
    for uid in t["ebs"]:
        e = rep["ebs"][uid]["verification"]
        assert e["status"] == "passed" and e["column"] == "DATA"
        assert _statuses(rep, uid) == PASSED
        cov = _check(rep, uid, "coverage")["numbers"]
        assert cov["kind"] == "autocorrelation" and cov["rows_in_scope"] > 0
        data = _check(rep, uid, "data")["numbers"]
        assert data["unflagged"] > 0 and data["rows_read"] > 0
        flags = _check(rep, uid, "flags")["numbers"]
        # the bad data of the truth are the flagged rows, found in the split's autocorrelations
        assert flags["groups"] > 0
        assert sum(g["flagged_rows"] for g in flags["table"]) == tp["bad_data"][uid]["rows"]
        jk = _check(rep, uid, "jyperk")
        assert jk["numbers"]["unit"] == "Jy" and "measured in" in jk["numbers"]["how"]
        got = {(f["antenna"], str(f["spw"]), f["pol"]): f["measured"]
               for f in jk["numbers"]["factors"]}
        want = {(a, s, p): v for a, ds in tp["jyperk"][uid].items() for s, dp in ds.items()
                for p, v in dp.items()}
        assert set(got) == set(want)
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-5), k


def test_tp_spacesaving_2_verifies_from_the_records(tp_delivery, tmp_path):
    """The full MS deleted: flags against the restore's record of Pipeline_Final, the
    Jy/K factors from the applied table (said so), the data of the split."""
    t = tp_delivery["truth"]
    out = tmp_path / "calibrated"
    r = _restore(tp_delivery["member_dir"], out, spacesaving=2)
    assert r["status"] == "ok", r.get("error")
    rep = _report(out)
    for uid in t["ebs"]:
        assert not (out / "working" / f"{uid}.ms").exists()
        assert _statuses(rep, uid) == PASSED
        assert "record of Pipeline_Final" in _check(rep, uid, "flags")["numbers"]["reference"]
        assert "not measured in the data" in _check(rep, uid, "jyperk")["numbers"]["how"]


def _scale_and_unflag(split1: Path, split2: Path, factor: float) -> int:
    """EB 1's calibrated ON_SOURCE spectra x ``factor``; EB 2's flags cleared.
    Returns the rows EB 2 had fully flagged."""
    import casatools
    tb = casatools.table()
    tb.open(str(split1), nomodify=False)
    try:
        tb.putcol("DATA", tb.getcol("DATA") * factor)
    finally:
        tb.close()
    tb.open(str(split2), nomodify=False)
    try:
        flag = tb.getcol("FLAG")
        n = int(flag.all(axis=(0, 1)).sum())
        tb.putcol("FLAG", np.zeros_like(flag))
    finally:
        tb.close()
    return n


def test_sabotaged_tp_restore_fails_naming_eb_check_and_numbers(tp_delivery, tmp_path):
    t = tp_delivery["truth"]
    eb1, eb2 = t["ebs"]
    out = tmp_path / "calibrated"
    assert _restore(tp_delivery["member_dir"], out, spacesaving=1)["status"] == "ok"
    flagged = _scale_and_unflag(out / f"{eb1}.ms.split.cal", out / f"{eb2}.ms.split.cal", 1.1)
    assert flagged == t["total_power"]["bad_data"][eb2]["rows"] > 0
    r = _restore(tp_delivery["member_dir"], out, spacesaving=1)    # nothing redone: verified
    assert all(s["skipped"] for s in r["members"][0]["steps"])
    assert r["status"] == "failed" and r["verification"] == {t["mous"]: "failed"}
    rep = _report(out)
    jk = _check(rep, eb1, "jyperk")
    assert jk["status"] == "fail"
    assert jk["message"].startswith(f"{eb1}: jyperk: 16 difference(s) from the delivered Jy/K")
    for f in jk["numbers"]["factors"]:
        assert f["ratio"] == pytest.approx(1.1, rel=1e-5), f
    f0 = jk["numbers"]["factors"][0]
    assert (f"{f0['antenna']} spw {f0['spw']} {f0['pol']}: {f0['measured']:.6g} Jy/K applied, "
            f"{f0['delivered']:.6g} delivered (ratio 1.1000)") in jk["message"]
    assert _statuses(rep, eb1) == dict(PASSED, jyperk="fail")
    fl = _check(rep, eb2, "flags")
    assert fl["status"] == "fail" and fl["message"].startswith(f"{eb2}: flags: ")
    assert "differ from the delivered Pipeline_Final flags" in fl["message"]
    diff = [g for g in fl["numbers"]["table"] if g["flagged_rows"] != g["reference_flagged_rows"]]
    assert sum(g["reference_flagged_rows"] for g in diff) == flagged
    assert all(g["flagged_rows"] == 0 for g in diff)
    assert _statuses(rep, eb2) == dict(PASSED, flags="fail")
    msgs = r["members"][0]["verification"]["failures"]
    assert any(m.startswith(f"{eb1}: jyperk:") for m in msgs)
    assert any(m.startswith(f"{eb2}: flags:") for m in msgs)


def _calapply_edit(eb: str, change):
    """A calibration/ whose ``eb`` calapply.txt is ``change(text)``."""
    def edit(src: Path, dst: Path) -> set[str]:
        name = f"{eb}.ms.calapply.txt"
        (dst / name).write_text(change((src / name).read_text()))
        return {name}
    return _calibration(edit)


def test_calapply_line_removed_is_refused_naming_the_file(tp_delivery, tmp_path):
    """EB 1's only applycal line removed: the restore stops before any work."""
    from almaqa_casa.delivery.calapply import CalApplyError
    eb1 = tp_delivery["truth"]["ebs"][0]
    shadow = make_shadow(tp_delivery["member_dir"], tmp_path / "in", {"calibration": _calapply_edit(
        eb1, lambda text: "".join(ln for ln in text.splitlines(keepends=True)
                                  if not ln.startswith("applycal(")))})
    with pytest.raises(CalApplyError, match=rf"{eb1}.ms.calapply.txt: no applycal\(...\) line"):
        _restore(str(shadow), tmp_path / "calibrated", spacesaving=1)


def test_calapply_line_without_a_spw_leaves_it_uncalibrated(tp_delivery, tmp_path):
    """EB 1's line restricted to spw 0 (the sky, Tsys and Jy/K calibration of spw 1 lost):
    coverage names the uncalibrated ON_SOURCE rows of spw 1, jyperk its factors of 1."""
    t = tp_delivery["truth"]
    eb1, eb2 = t["ebs"]

    def change(text: str) -> str:
        assert text.count("spw='0,1'") == 1
        return text.replace("spw='0,1'", "spw='0'")

    shadow = make_shadow(tp_delivery["member_dir"], tmp_path / "in",
                         {"calibration": _calapply_edit(eb1, change)})
    out = tmp_path / "calibrated"
    r = _restore(str(shadow), out, spacesaving=1)
    assert r["status"] == "failed" and r["verification"] == {t["mous"]: "failed"}
    rep = _report(out)
    assert _statuses(rep, eb2) == PASSED
    assert _statuses(rep, eb1) == dict(PASSED, coverage="fail", jyperk="fail")
    cov = _check(rep, eb1, "coverage")
    (u,) = cov["numbers"]["uncovered"]
    assert (u["intent"], u["field"], u["spw"]) == ("TARGET", t["target"], 1)
    n, total = u["rows"], cov["numbers"]["rows_in_scope"]
    assert 0 < n < total
    assert cov["message"].startswith(
        f"{eb1}: coverage: {n} of {total} unflagged science/calibrator autocorrelation rows are "
        "selected by no calapply line and are left UNCALIBRATED (the science target among them)")
    jk = _check(rep, eb1, "jyperk")
    bad = [f for f in jk["numbers"]["factors"] if abs(f["ratio"] - 1) > 1e-4]
    assert {f["spw"] for f in bad} == {1} and len(bad) == 8
    assert all(f["measured"] == pytest.approx(1.0, abs=1e-5) for f in bad)
    assert f"{eb1}: jyperk: 8 difference(s)" in jk["message"]
