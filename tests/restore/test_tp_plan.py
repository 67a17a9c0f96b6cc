"""Plans of total power deliveries on text-only skeletons (dry runs, no data).

The ``total_power`` skeleton preset is the real case of 18 EBs in 17 sessions
(realworld.md): every EB must be planned from its own session's tarball,
imported with ``ocorr_mode='ao'`` and calibrated to Jy with its own factors.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.delivery.member import ASIS_TP, read_member
from almaqa_casa.restore.plan import PlanError
from almaqa_casa.synth.skeleton import make_skeleton


@pytest.fixture(scope="module")
def tp_skeleton(tmp_path_factory):
    return make_skeleton(str(tmp_path_factory.mktemp("tp-skel")), "total_power")


def _dry(member, **kw):
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), dryrun=True, **kw)


def test_every_eb_from_its_own_session(tp_skeleton, capsys):
    t = tp_skeleton["truth"]
    assert len(t["ebs"]) == 18 and len(t["shape"]["session_caltables"]) == 17
    res = _dry(tp_skeleton["member_dir"])
    m = res["members"][0]
    assert res["status"] == "ok" and m["total_power"] and m["mode"] == "pipeline"
    steps = m["plan"]["steps"]
    for uid in t["ebs"]:
        exp = t["expected"][uid]
        ct = next(s for s in steps if s["id"] == f"{uid}:caltables")
        assert os.path.basename(ct["inputs"][0]) == exp["caltables_tarball"], uid
        assert ct["params"]["session"] == exp["session"]
        assert sorted(ct["params"]["tables"]) == sorted(exp["caltables"])
        ms = next(s for s in steps if s["id"] == f"{uid}:tp-ms")
        assert ms["params"]["import"]["ocorr_mode"] == "ao" and ms["params"]["import"]["asis"] == ASIS_TP
        assert os.path.basename(ms["inputs"][1]) == exp["flagversions"]
        k2jy = ms["params"]["k2jy"]   # the skeleton's calapply names no Jy/K table: made from jyperk.csv
        assert k2jy["route"] == "csv" and k2jy["jyperk"].endswith("auxproducts.tgz::jyperk.csv")
        assert k2jy["delivered"]["kind"] == "ms" and len(k2jy["delivered"]["rows"]) == 4 * 4 * 2
        assert k2jy["path"].endswith(f"working/{uid}.ms.hsd_k2jycal.ampcal.tbl")
        assert k2jy["path"] in ms["outputs"]
        split = next(s for s in steps if s["id"] == f"{uid}:split")
        assert split["outputs"][0].endswith(f"calibrated/{uid}.ms.split.cal")
        assert split["params"]["route"] == "applycal"
    sessions = m["delivery"]["sessions"]
    assert {u: s["session"] for u, s in sessions.items()} == {u: t["expected"][u]["session"] for u in t["ebs"]}
    out = capsys.readouterr().out
    assert "total power data" in out and "hsd_restoredata's stages are reproduced" in out
    assert out.count(":tp-ms] tp-ms") == 18


def test_each_eb_gets_its_own_factors(tp_skeleton):
    res = _dry(tp_skeleton["member_dir"])
    steps = res["members"][0]["plan"]["steps"]
    seen = set()
    for uid in tp_skeleton["truth"]["ebs"]:
        rows = next(s for s in steps if s["id"] == f"{uid}:tp-ms")["params"]["k2jy"]["delivered"]["rows"]
        seen.add(tuple(map(tuple, rows)))
    assert len(seen) == 3    # the skeleton's factors repeat every third EB (0.1 x (e % 3))


def test_options_of_a_total_power_plan(tp_skeleton):
    res = _dry(tp_skeleton["member_dir"], spacesaving=2, docontsub=True, atmcor=True, sdbaseline=True)
    m = res["members"][0]
    steps, uid = m["plan"]["steps"], tp_skeleton["truth"]["ebs"][0]
    kinds = [s["kind"] for s in steps if s["eb"] == uid]
    assert kinds == ["caltables", "tp-ms", "split", "tp-atmcor", "tp-baseline", "links", "cleanup"]
    atm = next(s for s in steps if s["id"] == f"{uid}:tp-atmcor")
    assert atm["outputs"][0].endswith(f"working/{uid}.ms.atmcor.atmtype1")
    assert atm["params"]["atmtype"] == 1 and atm["params"]["source"] == "hsd_atmcor defaults"
    bl = next(s for s in steps if s["id"] == f"{uid}:tp-baseline")
    assert bl["inputs"] == atm["outputs"] and bl["params"]["mode"] == "fit"   # no delivered table
    assert bl["outputs"][0].endswith(f"calibrated/{uid}.ms.atmcor.atmtype1_bl")
    clean = next(s for s in steps if s["id"] == f"{uid}:cleanup")
    assert clean["deletes"] == [next(s for s in steps if s["id"] == f"{uid}:tp-ms")["outputs"][0]]
    assert any("DOCONTSUB" in w and "total power" in w for w in m["warnings"])
    assert m["plan"]["options"]["docontsub"] is False and m["plan"]["route"] == "applycal"


def _copy(src: str, where: Path) -> Path:
    dst = where / os.path.basename(src)
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_unreadable_jyperk_stops_before_any_work(tp_skeleton, tmp_path):
    m = _copy(tp_skeleton["member_dir"], tmp_path / "x")
    (m / "calibration" / "jyperk.csv").write_text(
        "MS,Antenna,Spwid,Polarization,Factor\nuid___A002_X1_X2.ms,PM01,0,XX,40.0\n"
        "uid___A002_X1_X2.ms,PM01,0,YY,forty\n")
    with pytest.raises(PlanError, match=r"jyperk\.csv, line 3: factor 'forty' is not a number"):
        _dry(m)
    assert not (m / "calibrated").exists()


def test_no_factors_means_kelvin_and_a_warning(tp_skeleton, tmp_path):
    m = _copy(tp_skeleton["member_dir"], tmp_path / "y")
    aux = next((m / "calibration").glob("*auxproducts.tgz"))
    aux.unlink()
    with tarfile.open(aux, "w:gz"):
        pass
    res = _dry(m)
    ms = [s for s in res["members"][0]["plan"]["steps"] if s["kind"] == "tp-ms"]
    assert {s["params"]["k2jy"]["route"] for s in ms} == {"none"}
    assert any("stay in Kelvin" in w for w in res["members"][0]["warnings"])


def test_delivered_k2jy_table_is_applied_as_listed(tp_skeleton, tmp_path):
    """A calapply list naming a Jy/K table (what hsd_applycal exports) is applied
    as is; jyperk.csv then serves to check it."""
    m = _copy(tp_skeleton["member_dir"], tmp_path / "z")
    uid = tp_skeleton["truth"]["ebs"][0]
    cal = m / "calibration" / f"{uid}.ms.calapply.txt"
    text = cal.read_text()
    k2jy = f"/lustre/x/{uid}.ms.hsd_k2jycal.s6_1.ampcal.tbl"
    cal.write_text(text.replace("tsyscal.tbl']", f"tsyscal.tbl', '{k2jy}']")
                   .replace("gainfield=['nearest', 'nearest']", "gainfield=['nearest', 'nearest', '']")
                   .replace("spwmap=[[], []]", "spwmap=[[], [], []]")
                   .replace("interp=['linear', 'linear,cspline']",
                            "interp=['linear', 'linear,cspline', 'nearest,nearest']")
                   .replace("calwt=[True, True]", "calwt=[True, True, False]"))
    res = _dry(m)
    steps = res["members"][0]["plan"]["steps"]
    ms = next(s for s in steps if s["id"] == f"{uid}:tp-ms")
    assert ms["params"]["k2jy"]["route"] == "table"
    assert ms["params"]["k2jy"]["table"] == os.path.basename(k2jy)
    assert ms["params"]["k2jy"]["delivered"]["rows"]       # checked against jyperk.csv
    ct = next(s for s in steps if s["id"] == f"{uid}:caltables")
    assert os.path.basename(k2jy) in ct["params"]["tables"]


def test_manual_total_power_goes_through_the_manual_planner(tmp_path):
    """Per-EB scriptForSDCalibration.py: run as scriptForPI.py runs them (the manual path)."""
    r = make_skeleton(str(tmp_path / "sk"), "manual_cycle3")
    m = Path(r["member_dir"])
    for p in (m / "script").glob("*.ms.scriptForCalibration.py"):
        p.rename(p.with_name(p.name.replace("scriptForCalibration", "scriptForSDCalibration")))
    member = read_member(m)
    assert member.kind == "manual" and member.total_power
    assert sorted(member.manual_scripts) == sorted(r["truth"]["ebs"])
    res = _dry(m)
    mm = res["members"][0]
    assert mm["mode"] == "manual" and mm["total_power"] and mm["executes_delivered_code"]
    scripts = [s["params"]["script"] for s in mm["plan"]["steps"] if s["kind"] == "manual-eb"]
    assert len(scripts) == 2 and all(s.endswith(".ms.scriptForSDCalibration.py") for s in scripts)
