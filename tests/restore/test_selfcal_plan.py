"""Self-calibration in the restore plan (text-only skeleton deliveries, dry runs).

DOCONTSUB is on automatically only when selfcal.json lists a self-calibrated
target (scriptForPI.py from Cycle 10, seed §5.7); a real Cycle 10 shape whose
``scal_targets`` is empty turns nothing on and says nothing misleading;
``docontsub=False`` wins; the self-calibration tables must be in the delivery;
an unreadable selfcal.json stops the restore before any work, naming file and line.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.restore.plan import PlanError

WORKDIR = "sc_workdir_Synth_Disk_alma_band_3"


def _selfcal_json(ebs: list[str], targets: bool = True) -> dict:
    if not targets:
        return {"scal_targets": [], "version": 1.0, "pipeline_version": "2023.1.0.124"}
    vis = [f"{e}_targets.ms" for e in ebs]
    lib = {"SC_success": True, "vislist": vis}
    for v in vis:
        lib[v] = {"gaintable_final": [f"Synth_Disk_{v}_Band_3_inf_EB_0_p.g"],
                  "applycal_interpolate_final": ["linearPD"], "spwmap_final": [[]]}
    return {"scal_targets": [{"field": "Synth_Disk", "spw": "0,1,2,3", "sc_workdir": WORKDIR,
                              "spw_real": {v: "0,1,2,3" for v in vis}, "sc_exception": False,
                              "sc_lib": lib}], "version": 1.0}


def _with_selfcal(member: str, doc: dict | str, tables: bool = True,
                  name: str = "pipeline-20240101T000000.selfcal.json") -> Path:
    """Rewrite the member's auxproducts.tgz with selfcal.json (and its table folders)."""
    cal = Path(member) / "calibration"
    tgz = next(cal.glob("*auxproducts.tgz"))
    with tarfile.open(tgz) as old:
        members = [(m, old.extractfile(m).read() if m.isfile() else None) for m in old.getmembers()]
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=2)
    with tarfile.open(tgz, "w:gz") as new:
        for m, data in members:
            new.addfile(m, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo(name)
        info.size = len(text.encode())
        new.addfile(info, io.BytesIO(text.encode()))
        if tables and not isinstance(doc, str):
            for t in doc["scal_targets"]:
                for v in t["sc_lib"]["vislist"]:
                    for g in t["sc_lib"][v]["gaintable_final"]:
                        d = tarfile.TarInfo(f"{t['sc_workdir']}/{g}")
                        d.type = tarfile.DIRTYPE
                        new.addfile(d)
    return tgz


@pytest.fixture
def modern(tmp_path):
    from almaqa_casa.synth.skeleton import make_skeleton
    r = make_skeleton(str(tmp_path / "d"), "s_naming")     # Cycle 10, 3 EBs
    return r["member_dir"], r["truth"]["ebs"]


def _dry(member, **kw):
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), dryrun=True, outdir=str(Path(member).parent / "out"),
                      **kw)["members"][0]


def _kinds(res):
    return [(s["id"].split(":")[0], s["kind"]) for s in res["plan"]["steps"]]


def test_selfcal_turns_docontsub_on_and_plans_the_restore(modern):
    member, ebs = modern
    _with_selfcal(member, _selfcal_json(ebs[:2]))     # the pipeline self-calibrated 2 of 3 EBs' data
    res = _dry(member)
    opts = res["plan"]["options"]
    assert opts["docontsub"] is True
    why = res["delivery"]["docontsub"]["why"]
    assert "self-calibrated Synth_Disk" in why and "Cycle 10" in why
    kinds = _kinds(res)
    for e in ebs:
        assert (e, "targets") in kinds and (e, "contsub") in kinds
    assert sorted(e for e, k in kinds if k == "selfcal") == sorted(ebs[:2])
    step = next(s for s in res["plan"]["steps"] if s["id"] == f"{ebs[0]}:selfcal")
    assert step["after"] == [f"{ebs[0]}:contsub"]
    assert [os.path.basename(i) for i in step["inputs"]] == [f"{ebs[0]}_targets.ms",
                                                             f"{ebs[0]}_targets_line.ms"]
    assert step["params"]["tables"] == [f"{WORKDIR}/Synth_Disk_{ebs[0]}_targets.ms_Band_3_inf_EB_0_p.g"]
    apps = step["params"]["applications"]
    assert {a["vis"] for a in apps} == {f"{ebs[0]}_targets.ms", f"{ebs[0]}_targets_line.ms"}
    assert all(a["field"] == "Synth_Disk" and a["spw"] == "0,1,2,3" and a["calwt"] == [False]
               and a["interp"] == ["linearPD"] for a in apps)
    sc = res["selfcal"]
    assert sc["self_calibrated_targets"] == ["Synth_Disk"] and sc["applied_targets"] == []
    t = sc["targets"][0]
    assert t["planned"] and sorted(t["ebs"]) == sorted(ebs[:2]) and not t["applied"]
    assert not any("self-cal" in w for w in res["warnings"])


def test_empty_scal_targets_gives_no_selfcal_and_no_docontsub(modern):
    """The real Cycle 10 shape: selfcal.json with ``scal_targets: []``."""
    member, ebs = modern
    _with_selfcal(member, _selfcal_json(ebs, targets=False))
    res = _dry(member)
    assert res["plan"]["options"]["docontsub"] is False
    assert not [k for _e, k in _kinds(res) if k in ("targets", "contsub", "selfcal")]
    assert res["selfcal"]["self_calibrated_targets"] == [] and not res["selfcal"]["applies"]
    assert not any("self" in w.lower() or "docontsub" in w.lower() for w in res["warnings"]), \
        res["warnings"]


def test_empty_scal_targets_with_docontsub_makes_targets_only(modern):
    member, ebs = modern
    _with_selfcal(member, _selfcal_json(ebs, targets=False))
    res = _dry(member, docontsub=True)
    kinds = [k for _e, k in _kinds(res)]
    assert kinds.count("targets") == 3 and "selfcal" not in kinds


def test_docontsub_false_wins(modern):
    member, ebs = modern
    _with_selfcal(member, _selfcal_json(ebs))
    res = _dry(member, docontsub=False)
    assert res["plan"]["options"]["docontsub"] is False
    assert not [k for _e, k in _kinds(res) if k in ("targets", "contsub", "selfcal")]
    assert any("DOCONTSUB=False" in w and "self-calibration" in w for w in res["warnings"])
    assert not res["selfcal"]["applies"]


def test_global_docontsub_false_wins_too(modern):
    member, ebs = modern
    _with_selfcal(member, _selfcal_json(ebs))
    from almaqa_casa.delivery.member import read_member
    from almaqa_casa.restore.options import make_options
    from almaqa_casa.restore.planners.pipeline import decide_docontsub
    m = read_member(member)
    assert decide_docontsub(m, make_options({}, {"DOCONTSUB": False})) == (False, "DOCONTSUB=False")
    on, why = decide_docontsub(m, make_options({}, {}))
    assert on and "Synth_Disk" in why


def test_missing_selfcal_table_stops_before_any_work(modern):
    member, ebs = modern
    tgz = _with_selfcal(member, _selfcal_json(ebs), tables=False)
    with pytest.raises(PlanError, match=rf"{tgz.name}.*self-calibration table\(s\).*inf_EB_0_p\.g"):
        _dry(member)
    assert not (Path(member).parent / "out").exists()


def test_unreadable_selfcal_json_names_file_and_line(modern):
    member, ebs = modern
    _with_selfcal(member, '{\n "scal_targets": [\n  {"field": "X",,}\n ]\n}')
    with pytest.raises(PlanError, match=r"selfcal\.json, line 3: not valid JSON"):
        _dry(member)
    res = _dry(member, docontsub=False)          # not needed: no error
    assert res["plan"]["options"]["docontsub"] is False


def test_no_selfcal_json_changes_nothing(modern):
    member, ebs = modern
    res = _dry(member)
    assert res["plan"]["options"]["docontsub"] is False and res["selfcal"] is None
    assert res["delivery"]["docontsub"] == {"on": False, "why": "not asked"}


def test_spw_ids_follow_the_windows():
    """spw_real names spws of the targets MS; a line MS whose spws were renumbered gets
    the ids of the same windows, and a window it lacks is an error naming the MS."""
    from almaqa_casa.restore.steps.selfcal import spw_selection
    ref = {16: (960, 230_000_000_000), 18: (960, 232_000_000_000), 20: (128, 245_000_000_000)}
    assert spw_selection("16,18", ref, ref, "t.ms") == "16,18"
    renum = {0: ref[16], 1: ref[18], 2: ref[20]}
    assert spw_selection("16,20", ref, renum, "l.ms") == "0,2"
    with pytest.raises(ValueError, match=r"l\.ms: spw 22 .* not in this MS"):
        spw_selection("22", ref, renum, "l.ms")
    with pytest.raises(ValueError, match="not a list of spw ids"):
        spw_selection("0:10~20", ref, ref, "t.ms")


def test_result_marks_what_the_run_applied():
    from almaqa_casa.restore.steps.selfcal import selfcal_result
    planned = {"json": "a::x.selfcal.json", "self_calibrated_targets": ["A", "B"], "applies": True,
               "targets": [{"field": "A", "ebs": {"eb1": {"tables": ["t1"]}, "eb2": {"tables": ["t2"]}}},
                           {"field": "B", "ebs": {"eb1": {"tables": ["t3"]}}},
                           {"field": "C", "ebs": {}}]}
    assert selfcal_result(None, []) is None
    timings = [{"step": "eb1:ms", "seconds": 1.0, "skipped": False, "extra": {}},
               {"step": "eb1:selfcal", "seconds": 2.0, "skipped": False, "extra": {"selfcal": {}}},
               {"step": "eb2:selfcal", "seconds": 0.0, "skipped": True}]          # complete earlier
    r = selfcal_result(planned, timings)
    assert r["applied_targets"] == ["A", "B"]
    assert [t["applied"] for t in r["targets"]] == [True, True, False]
    r = selfcal_result(planned, timings[:2])                 # eb2's step failed or did not run
    assert r["applied_targets"] == ["B"] and r["targets"][0]["ebs"]["eb2"]["applied"] is False
    assert planned["targets"][0]["ebs"]["eb1"] == {"tables": ["t1"]}            # the plan is not changed
