"""Dry runs of qa_restore on text-only skeleton deliveries of real shapes (no ASDM content).

The shapes are rebuilt from real public delivery files (realworld.md, issue 12):
several sessions with gaps and no manifest, ``s<k>`` tarball names, a PPR that
disagrees with the restore script, a semipass package, a pipeline delivery
with post scripts, the SACM/JAO pre-step.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.restore.plan import PlanError

MOUS = "uid___A001_X1296_X133"


def _tgz(path: Path, names: list[str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for n in names:
            info = tarfile.TarInfo(n)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)


def _ppr(ebs, sessions=None) -> str:
    intents = "".join(f"<Intents><Keyword>SESSION_{k}</Keyword><Value>"
                      + " | ".join(e.replace("___", "://").replace("_", "/") for e in es)
                      + "</Value></Intents>" for k, es in (sessions or {}).items())
    asdms = "".join(f"<AsdmIdentifier><AsdmDiskName>{e}</AsdmDiskName></AsdmIdentifier>"
                    for e in ebs)
    return (f"<SciPipeRequest><ProcessingRequests><ProcessingRequest><ProcessingIntents>"
            f"<Intents><Keyword>PROCESS</Keyword><Value>true</Value></Intents>{intents}"
            f"</ProcessingIntents><ProcessingProcedure><ProcedureTitle>hifa_calimage"
            f"</ProcedureTitle></ProcessingProcedure><DataSet><SchedBlockSet>"
            f"<SchedBlockIdentifier>{asdms}</SchedBlockIdentifier></SchedBlockSet></DataSet>"
            f"</ProcessingRequest></ProcessingRequests></SciPipeRequest>")


def skeleton(root: Path, ebs: list[str], sessions: list[str], *, tarball_sessions=None,
             script_sessions=None, ppr_sessions=None, task="hifa_restoredata", ocorr="ca",
             style="session_", sacm=False, post=(), raw=True) -> Path:
    """A pipeline member from text only: PPR, restore script, calapply per EB naming
    a table of its session, flagversions, one caltables tarball per session."""
    m = root / "2016.1.00001.S" / "science_goal.uid___A001_X1296_X131" / \
        "group.uid___A001_X1296_X132" / f"member.{MOUS}"
    for d in ("script", "calibration", "raw", "product", "qa", "log"):
        (m / d).mkdir(parents=True)
    script_sessions = sessions if script_sessions is None else script_sessions
    (m / "script" / f"{MOUS}.hifa_calimage_PPR.xml").write_text(
        _ppr(ebs, ppr_sessions))
    pre = ""
    if sacm:
        pre = ("    hifa_importdata (dbservice=False, bdfflags=False, vis="
               f"{['../rawdata/' + e for e in ebs]!r}, session={script_sessions!r}, "
               "ocorr_mode='ca')\n"
               + "".join(f"    fixsyscaltimes(vis = '{e}.ms')# SACM/JAO - Fixes\n" for e in ebs))
    (m / "script" / f"member.{MOUS}.hifa_calimage.casa_piperestorescript.py").write_text(
        ("from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes\n" if sacm else "")
        + "__rethrow_casa_exceptions = True\nh_init()\ntry:\n" + pre
        + f"    {task} (vis={ebs!r}, session={script_sessions!r}, ocorr_mode='{ocorr}')\n"
        "finally:\n    h_save()\n")
    for kind in post:
        (m / "script" / f"member.{MOUS}.{kind}").write_text("print('post')\n")
    by_session: dict[str, list[str]] = {}
    for e, s in zip(ebs, sessions):
        table = f"{e}.ms.hifa_timegaincal.s16_3.spw5_7.solintinf.gpcal.tbl"
        by_session.setdefault(s, []).append(table)
        (m / "calibration" / f"{e}.ms.calapply.txt").write_text(
            f"# Apply file for {e}.ms\napplycal(vis='/x/{e}.ms', field='', intent='TARGET', "
            f"spw='5,7', antenna='0~41', gaintable=['/x/{table}'], gainfield=[''], "
            f"spwmap=[[]], interp=['linear,linear'], calwt=[True])\n")
        _tgz(m / "calibration" / f"{e}.ms.flagversions.tgz",
             [f"{e}.ms.flagversions", f"{e}.ms.flagversions/flags.Pipeline_Final"])
        if raw:
            a = m / "raw" / f"{e}.asdm.sdm"
            a.mkdir()
            (a / "ASDM.xml").write_text("<ASDM/>")
    for s in (tarball_sessions or by_session):
        k = s.split("_")[1]
        _tgz(m / "calibration" / f"{MOUS}.{style}{k}.caltables.tgz", by_session.get(s, []))
    return m


EBS8 = [f"uid___A002_Xc89480_X{k:x}" for k in (0x5f49, 0x6001, 0x6abc, 0x7002, 0x7fff,
                                                0x8123, 0x9000, 0x9abc)]
SESS8 = ["session_1", "session_2", "session_2", "session_3", "session_4", "session_5",
         "session_7", "session_8"]


def _dry(member, **kw):
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), dryrun=True, **kw)


def _tarball_of(res: dict) -> dict[str, str]:
    plan = res["members"][0]["plan"]
    return {s["eb"]: Path(s["inputs"][0]).name for s in plan["steps"] if s["kind"] == "caltables"}


def test_cycle4_eight_ebs_with_gaps_and_no_manifest(tmp_path, capsys):
    m = skeleton(tmp_path, EBS8, SESS8)
    res = _dry(m, outdir=str(tmp_path / "out"))
    assert res["status"] == "ok"
    assert _tarball_of(res) == {e: f"{MOUS}.{s}.caltables.tgz" for e, s in zip(EBS8, SESS8)}
    d = res["members"][0]["delivery"]
    assert d["session_sources"] == ["restore script"]
    assert {v["source"] for v in d["sessions"].values()} == {"restore script"}
    out = capsys.readouterr().out
    assert "sessions (from restore script)" in out and f"{MOUS}.session_7.caltables.tgz" in out
    assert not (tmp_path / "out").exists()


def test_sessions_2_and_4_only_with_s_naming(tmp_path):
    ebs = EBS8[:2]
    m = skeleton(tmp_path, ebs, ["session_2", "session_4"], style="s",
                 ppr_sessions={2: [ebs[0]], 4: [ebs[1]]})
    res = _dry(m)
    assert _tarball_of(res) == {ebs[0]: f"{MOUS}.s2.caltables.tgz",
                                ebs[1]: f"{MOUS}.s4.caltables.tgz"}
    assert not res["warnings"]


def test_ppr_disagreeing_with_restore_script_is_reported(tmp_path):
    ebs = EBS8[:4]
    m = skeleton(tmp_path, ebs, ["session_1"] * 4,
                 ppr_sessions={k + 1: [e] for k, e in enumerate(ebs)})
    res = _dry(m)
    assert set(_tarball_of(res).values()) == {f"{MOUS}.session_1.caltables.tgz"}
    warns = [w for w in res["warnings"] if "PPR" in w and "restore script" in w]
    assert len(warns) == 3 and all("_PPR.xml" in w and "casa_piperestorescript.py" in w
                                   for w in warns)


def test_eb_no_source_places_is_an_error_naming_it(tmp_path):
    ebs = EBS8[:2]
    m = skeleton(tmp_path, ebs, ["session_1", "session_2"], script_sessions=[])
    with pytest.raises(PlanError, match=rf"no caltables tarball for EB {ebs[0]}.*tarballs found:"):
        _dry(m)


def test_total_power_is_not_planned_as_interferometry(tmp_path):
    ebs = EBS8[:3]
    m = skeleton(tmp_path, ebs, ["session_1", "session_2", "session_3"],
                 task="hsd_restoredata", ocorr="ao")
    plan = _dry(m)["members"][0]["plan"]      # the total power planner (issue 15)
    assert not [s for s in plan["steps"] if s["kind"] == "ms"]
    assert [s["params"]["import"]["ocorr_mode"] for s in plan["steps"] if s["kind"] == "tp-ms"] == ["ao"] * 3


def test_sacm_prestep_is_planned(tmp_path, capsys):
    ebs = EBS8[:2]
    m = skeleton(tmp_path, ebs, ["session_1", "session_2"], sacm=True, task="hif_restoredata")
    res = _dry(m)
    plan = res["members"][0]["plan"]
    ms = [s for s in plan["steps"] if s["kind"] == "ms"]
    assert all(s["params"]["fixsyscaltimes"] for s in ms)
    assert all(s["params"]["import"]["bdfflags"] is False for s in ms)
    assert res["members"][0]["delivery"]["presteps"]["bdfflags"] is False
    assert "pre-steps (SACM/JAO)" in capsys.readouterr().out


def test_post_scripts_in_a_pipeline_delivery(tmp_path, capsys):
    ebs = EBS8[:2]
    m = skeleton(tmp_path, ebs, ["session_1", "session_1"],
                 post=("scriptForImagingPrep.py", "scriptForPolCalibration.py"))
    res = _dry(m, dosplit=True)
    plan = res["members"][0]["plan"]
    post = [s for s in plan["steps"] if s["kind"] == "post"]
    assert [Path(s["params"]["script"]).name.split(".")[-2] for s in post] == [
        "scriptForPolCalibration", "scriptForImagingPrep"]           # scriptForPI's order
    assert all(s["executes_code"] for s in post)
    assert any("executes delivered scripts" in n for n in plan["notices"])
    assert "runs delivered code" in capsys.readouterr().out


def test_semipass_package_says_so(tmp_path):
    m = tmp_path / "2019.1.00001.S" / "science_goal.uid___A001_X1_X1" / "group.uid___A001_X1_X2" \
        / "member.uid___A001_X1_X3"
    for d in ("qa", "script", "raw/uid___A002_Xd1_X1.asdm.sdm"):
        (m / d).mkdir(parents=True)
    (m / "script" / "member.uid___A001_X1_X3.scriptForPI.py").write_text("# semipass\n")
    from almaqa_casa import qa_restore
    res = qa_restore(deliverydir=str(m), outdir=str(tmp_path / "out"))
    assert res["status"] == "ok" and res["mode"] == "semipass"
    assert any("semipass package" in w and "nothing to calibrate" in w for w in res["warnings"])
    assert res["members"][0]["ebs"] == [] and res["produced"] == {}
    json.dumps(res)


def test_postscripts_false_skips_them_and_says_so(tmp_path):
    ebs = EBS8[:2]
    m = skeleton(tmp_path, ebs, ["session_1", "session_1"], post=("scriptForImagingPrep.py",))
    res = _dry(m, dosplit=True, postscripts=False)
    assert not [s for s in res["members"][0]["plan"]["steps"] if s["kind"] == "post"]
    assert any("postscripts=False" in w and "scriptForImagingPrep.py" in w
               for w in res["warnings"])
