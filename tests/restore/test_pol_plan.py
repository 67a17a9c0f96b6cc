"""Polarization deliveries in the restore plan (no CASA data).

hifa_restoredata applies ``parang=True`` when a hifa_polcal table is in the
calibration state, with the intents TARGET, PHASE, BANDPASS, AMPLITUDE, CHECK,
POLARIZATION, POLANGLE, POLLEAKAGE (restore.md §4.3).  A cal library cannot
express ``parang``, so such deliveries take the applycal route whatever
SPACESAVING is; the plan records ``parang``.
"""
from __future__ import annotations

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.delivery.calapply import (
    APPLY_INTENTS,
    CalApplication,
    casa_intents,
    read_calapply,
    restrict_intents,
)
from almaqa_casa.restore.casasteps import needs_parang

#: OBS_MODE entries of a real ALMA polarization EB's STATE table (one scan may carry several).
POL_OBSMODES = [
    "CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE",
    "CALIBRATE_PHASE#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE",
    "CALIBRATE_POLARIZATION#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE",
    "CALIBRATE_POL_ANGLE#ON_SOURCE,CALIBRATE_POL_LEAKAGE#ON_SOURCE",
    "OBSERVE_TARGET#ON_SOURCE", "OBSERVE_CHECK_SOURCE#ON_SOURCE",
    "CALIBRATE_ATMOSPHERE#OFF_SOURCE", "CALIBRATE_POINTING#ON_SOURCE",
]


def test_every_polarization_intent_is_applied():
    assert {"POLARIZATION", "POLANGLE", "POLLEAKAGE"} <= set(APPLY_INTENTS)
    sel = casa_intents("POLARIZATION,POLANGLE,POLLEAKAGE", POL_OBSMODES)
    assert set(sel.split(",")) == {"CALIBRATE_POLARIZATION#ON_SOURCE",
                                   "CALIBRATE_POL_ANGLE#ON_SOURCE",
                                   "CALIBRATE_POL_LEAKAGE#ON_SOURCE"}
    # hifa_polcal registers its leakage / cross-hand tables for every intent (intent='')
    everything = casa_intents(restrict_intents(""), POL_OBSMODES).split(",")
    for mode in ("CALIBRATE_POLARIZATION#ON_SOURCE", "CALIBRATE_POL_ANGLE#ON_SOURCE",
                 "CALIBRATE_POL_LEAKAGE#ON_SOURCE", "OBSERVE_TARGET#ON_SOURCE"):
        assert mode in everything
    assert not any(m.startswith(("CALIBRATE_ATMOSPHERE", "CALIBRATE_POINTING")) for m in everything)


def _app(*tables):
    return CalApplication(vis="x.ms", field="", intent="", spw="", antenna="", gaintable=tables,
                          gainfield=("",) * len(tables), spwmap=((),) * len(tables),
                          interp=("",) * len(tables), calwt=(False,) * len(tables))


def test_parang_when_a_polcal_table_is_applied():
    assert needs_parang(_app("/w/uid.ms.hifa_bandpass.s9.bcal.tbl",
                             "/w/session_1_polcalib.ms.hifa_polcal.s15_8.spw0.dterms.tbl"))
    assert not needs_parang(_app("/w/uid.ms.hifa_bandpass.s9.bcal.tbl",
                                 "/w/uid.ms.hifa_timegaincal.s14.gpcal.tbl"))
    assert not needs_parang(_app("/data/hifa_polcal.runs/uid.ms.bcal.tbl"))   # a folder, not the table


@pytest.fixture(scope="module")
def pol_skeleton(tmp_path_factory):
    from almaqa_casa.synth.skeleton import make_skeleton
    return make_skeleton(str(tmp_path_factory.mktemp("polskel")), "post_scripts")


def _dry(member, tmp, **kw):
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), dryrun=True, outdir=str(tmp), **kw)["members"][0]


def test_skeleton_calapply_has_session_polcal_tables(pol_skeleton):
    t = pol_skeleton["truth"]
    import os
    cal = os.path.join(pol_skeleton["member_dir"], "calibration")
    for eb in t["ebs"]:
        lines = read_calapply(os.path.join(cal, f"{eb}.ms.calapply.txt"))
        for a in lines:
            pol = [g for g in a.gaintable if ".hifa_polcal." in g]
            assert len(pol) == 3 and all("session_" in g and "_polcalib.ms." in g for g in pol)


def test_polarization_plan_takes_applycal_route_with_parang(pol_skeleton, tmp_path):
    res = _dry(pol_skeleton["member_dir"], tmp_path, spacesaving=2, dosplit=True)
    plan = res["plan"]
    assert plan["route"] == "applycal" and res["route"] == "applycal"
    assert plan["options"]["parang"] is True and res["parang"] is True
    assert res["delivery"]["parang"] is True
    ms_steps = [s for s in plan["steps"] if s["kind"] == "ms"]
    assert len(ms_steps) == len(pol_skeleton["truth"]["ebs"])
    for s in ms_steps:
        assert s["params"]["parang"] is True and s["params"]["route"] == "applycal"
        assert "parang=True" in s["note"]
    assert any("parang=True" in w and "cal library" in w for w in res["warnings"])
    # SPACESAVING=2 still deletes the full MS after the split
    assert any(s["kind"] == "cleanup" and s["deletes"] for s in plan["steps"])


def test_total_intensity_plan_keeps_the_cal_library(tmp_path):
    from almaqa_casa.synth.skeleton import make_skeleton
    r = make_skeleton(str(tmp_path / "m"), "modern")
    res = _dry(r["member_dir"], tmp_path / "out", spacesaving=2, dosplit=True)
    assert res["route"] == "callib" and res["parang"] is False
    assert all("parang" not in s["params"] for s in res["plan"]["steps"] if s["kind"] == "ms")


def test_shared_session_table_is_never_replaced(tmp_path):
    """Two EBs of a session extract hifa_polcal's session table into one working folder
    (their chains run in parallel): the second leaves the first's copy in place."""
    import os
    import tarfile

    from almaqa_casa.restore.casasteps import extract_caltables
    shared = "session_1_polcalib.ms.hifa_polcal.s15_8.spw0.dterms.tbl"
    src = tmp_path / "src"
    for t in (shared, "eb1.ms.bcal.tbl", "eb2.ms.bcal.tbl"):
        (src / t).mkdir(parents=True)
        (src / t / "table.dat").write_text(t)
    tgz = tmp_path / "m.session_1.caltables.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for t in sorted(os.listdir(src)):
            tf.add(src / t, arcname=t)
    work = tmp_path / "working"
    work.mkdir()
    extract_caltables(str(tgz), [shared, "eb1.ms.bcal.tbl"], str(work))
    first = os.stat(work / shared / "table.dat").st_ino
    out = extract_caltables(str(tgz), [shared, "eb2.ms.bcal.tbl"], str(work))
    assert out == [str(work / shared), str(work / "eb2.ms.bcal.tbl")]
    assert os.stat(work / shared / "table.dat").st_ino == first
    assert sorted(os.listdir(work)) == sorted([shared, "eb1.ms.bcal.tbl", "eb2.ms.bcal.tbl"])
