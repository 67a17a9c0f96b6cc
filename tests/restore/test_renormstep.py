"""The restore's amplitude renormalization (almaqa_casa.restore.renormstep).

Pure parts (manifest request, calapply lines with the table) as unit tests;
the "cannot compute" path on a real MS without autocorrelations.  The
end-to-end check against the truth is in test_pipeline_restore.py.
"""
from __future__ import annotations

import os

import pytest

from almaqa_casa.delivery.calapply import parse_calapply
from almaqa_casa.restore import renormstep as rs

CAL = """# Apply file
applycal(vis='x.ms', field='bp', intent='AMPLITUDE,BANDPASS', spw='0,1,2,3', antenna='0~7', gaintable=['/p/b.tbl', '/p/g.tbl'], gainfield=['', 'bp'], spwmap=[[], []], interp=['linear,linear', 'linear'], calwt=[False, True])
applycal(vis='x.ms', field='chk,tgt', intent='CHECK,TARGET', spw='0~3', antenna='0~7', gaintable=['/p/b.tbl', '/p/g.tbl'], gainfield=['', 'ph'], spwmap=[[], []], interp=['linear,linear', 'linear'], calwt=[False, True])
"""


def test_parse_request_from_manifest_strings():
    r = rs.parse_request({"vis": "u.ms", "apply": "True", "threshold": "1.05",
                          "excludechan": "{'17': '100~150;800~850'}", "correct_atm": "False",
                          "atm_auto_exclude": "True", "bwthreshspw": "{'19': 64e6}",
                          "spw": "[17, 19]"})
    assert r.apply and r.threshold == 1.05 and r.atm_auto_exclude and not r.correct_atm
    assert dict(r.excludechan) == {"17": "100~150;800~850"}
    assert dict(r.bwthreshspw) == {"19": 64e6} and r.spw == "17,19"
    assert rs.parse_request(None) is None
    assert rs.parse_request({"apply": "False"}).apply is False
    # delivered text is data: no code runs, a non-literal is an error naming the attribute
    with pytest.raises(rs.RenormParamError, match="excludechan"):
        rs.parse_request({"apply": "True", "excludechan": "__import__('os').remove('x')"})
    with pytest.raises(rs.RenormParamError, match="threshold"):
        rs.parse_request({"apply": "True", "threshold": "high"})
    with pytest.raises(rs.RenormParamError, match="apply"):
        rs.parse_request({"apply": "maybe"})


def test_with_renorm_only_target_gets_the_table():
    apps = parse_calapply(CAL, "x.calapply.txt")
    out = rs.with_renorm(apps, "/w/u.ms.renorm.tbl", [1], all_spws=[0, 1, 2, 3])
    # calibrators untouched
    assert out[0] == apps[0]
    by = {(a.intent, a.spw): a for a in out[1:]}
    assert set(by) == {("CHECK", "0~3"), ("TARGET", "0,2,3"), ("TARGET", "1")}
    assert by[("CHECK", "0~3")].gaintable == apps[1].gaintable
    assert by[("TARGET", "0,2,3")].gaintable == apps[1].gaintable
    t = by[("TARGET", "1")]
    assert t.gaintable == apps[1].gaintable + ("/w/u.ms.renorm.tbl",)
    assert t.interp[-1] == "nearest,linear" and t.gainfield[-1] == "nearest"
    assert t.calwt[-1] is True and t.spwmap[-1] == ()
    assert t.field == "chk,tgt" and t.antenna == "0~7"
    # every renormalized spw: no TARGET line without the table
    out = rs.with_renorm(apps, "/w/t", [0, 1, 2, 3], all_spws=[0, 1, 2, 3])
    assert [(a.intent, a.spw) for a in out[1:]] == [("CHECK", "0~3"), ("TARGET", "0,1,2,3")]


def test_with_renorm_all_spws_and_all_intents():
    app = parse_calapply("applycal(vis='x', gaintable=['/p/g.tbl'])")[0]
    out = rs.with_renorm([app], "/w/t", [5], all_spws=[3, 5])
    assert ("TARGET", "3") in [(a.intent, a.spw) for a in out]
    rn = [a for a in out if a.spw == "5"][0]
    assert rn.intent == "TARGET" and rn.gaintable == ("/p/g.tbl", "/w/t")
    others = [a for a in out if "TARGET" not in a.intent]
    assert len(others) == 1 and others[0].spw == "" and "PHASE" in others[0].intent
    bad = parse_calapply("applycal(vis='x', intent='TARGET', spw='*', gaintable=['/p/g'])")
    with pytest.raises(rs.RenormParamError, match="cannot be split"):
        rs.with_renorm(bad, "/w/t", [1], all_spws=[0, 1])


def test_prepare_not_requested_or_unchanged(tmp_path):
    apps = parse_calapply(CAL)
    stale = tmp_path / "u.ms.renorm.tbl"
    stale.mkdir()
    extra: dict = {}
    assert rs.prepare("nothing.ms", None, apps, str(tmp_path), "u", extra,
                      lambda m, p: None) == apps
    assert not stale.exists() and extra == {}      # a stale table is never applied


@pytest.fixture(scope="module")
def cross_only_ms(restore_delivery, tmp_path_factory):
    """One EB of the delivery, cross-correlations of two spws only (no autocorrelations)."""
    from casatasks import importasdm, mstransform

    import almaqa_casa  # noqa: F401
    truth = restore_delivery["truth"]
    uid = truth["ebs"][0]
    d = tmp_path_factory.mktemp("renorm_noac")
    full, vis = str(d / "full.ms"), str(d / f"{uid}.ms")
    old = os.getcwd()
    os.chdir(d)
    try:
        importasdm(asdm=truth["eb"][uid]["asdm"], vis=full, ocorr_mode="ca", lazy=True,
                   process_caldevice=False, with_pointing_correction=False)
        mstransform(vis=full, outputvis=vis, antenna="*&", spw="0,1", datacolumn="data",
                    reindex=False)
    finally:
        os.chdir(old)
    return vis, uid, d


@pytest.mark.slow
def test_no_autocorrelations_warns_and_goes_on(cross_only_ms):
    vis, uid, d = cross_only_ms
    apps = parse_calapply(CAL)
    extra: dict = {}
    logged = []
    params = dict(rs.RenormRequest(apply=True).as_dict(), caltable="x", engine=rs.ENGINE)
    out = rs.prepare(vis, params, apps, str(d), uid, extra, lambda m, p: logged.append((p, m)))
    assert out == apps
    assert not os.path.exists(rs.caltable_path(str(d), uid))
    assert extra["renorm"]["applied"] is False
    w = extra["warnings"]
    assert len(w) == 1 and "no autocorrelations" in w[0] and "NOT applied" in w[0]
    assert any(p == "WARN" and "no autocorrelations" in m for p, m in logged)


def test_renorm_table_already_in_calapply_is_not_applied_twice(tmp_path):
    from almaqa_casa.restore.options import make_options
    from almaqa_casa.restore.plan import format_plan
    from almaqa_casa.restore.planners import plan_pipeline as make_plan

    from .test_options_plan import _info, _renorm_manifest
    apps = parse_calapply(CAL)
    assert rs.delivered_renorm_table(apps) is None
    pl24 = parse_calapply(CAL.replace("'/p/g.tbl']", "'/p/g.tbl', '/p/u.ms.hifa_renorm.s16_1.renorm.tbl']")
                          .replace("calwt=[False, True])", "calwt=[False, True, True])")
                          .replace("spwmap=[[], []]", "spwmap=[[], [], []]"))
    assert rs.delivered_renorm_table(pl24) == "u.ms.hifa_renorm.s16_1.renorm.tbl"
    info = _info(tmp_path, ebs=("uid___A002_X1_X1",), manifest=_renorm_manifest('apply="True"'),
                 calapply={"uid___A002_X1_X1": pl24})
    p = make_plan(info, make_options({"dosplit": True}, None))
    ms = [s for s in p.steps if s.kind == "ms"][0]
    assert ms.params["renorm"]["apply"] is False
    assert "applied by the delivered calapply.txt (u.ms.hifa_renorm.s16_1.renorm.tbl)" in format_plan(p)
