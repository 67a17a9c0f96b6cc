"""Member discovery and delivery classification on small trees built here."""
from __future__ import annotations

import os
from pathlib import Path

from almaqa_casa.delivery.layout import (
    MemberListing,
    classify,
    describe,
    find_members,
    scan_members,
)

MOUS = "uid___A001_X1_X2"
M = f"member.{MOUS}"


def _tree(root: Path, files: dict[str, str]) -> Path:
    member = root / "2025.1.00001.S" / "science_goal.uid___A001_X1_X0" / "group.uid___A001_X1_X1" / M
    for sub in ("calibration", "log", "product", "qa", "script"):
        (member / sub).mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        p = member / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return member


PIPE = {
    f"{M}.README.txt": "readme",
    f"script/{M}.scriptForPI.py": "",
    f"script/{M}.hifa_calimage.casa_piperestorescript.py": "",
    f"script/{M}.hifa_calimage.casa_pipescript.py": "",
    f"script/PPR_{MOUS}.xml": "",
    f"product/{M}.X_sci.spw1.cont.I.pbcor.fits": "",
    f"product/{M}.X_sci.spw1.cont.I.pb.fits.gz": "",
    f"calibration/{MOUS}.session_1.caltables.tgz": "",
}


def test_find_members_any_level(tmp_path):
    member = _tree(tmp_path, PIPE)
    project = member.parents[2]
    assert find_members(project) == [member]
    assert find_members(member.parent) == [member]
    assert find_members(member) == [member]
    assert find_members(member / "product") == [member]
    assert find_members(tmp_path) == [member]


def test_two_members_and_symlink_loop(tmp_path):
    member = _tree(tmp_path, PIPE)
    other = member.parent / "member.uid___A001_X1_X3"
    (other / "product").mkdir(parents=True)
    os.symlink(member.parents[2], member.parents[1] / "loop")     # project/sg/loop -> project
    os.symlink(tmp_path / "nowhere", member.parents[1] / "dangling")
    found, problems = scan_members(tmp_path)
    assert found == sorted([member, other])
    assert any("loop" in p[1] for p in problems)


def test_unreadable_folder_is_a_problem_not_a_crash(tmp_path):
    member = _tree(tmp_path, PIPE)
    selfloop = member.parents[1] / "selfloop"
    os.symlink(selfloop, selfloop)  # stat fails with ELOOP
    locked = member.parents[1] / "locked"
    locked.mkdir()
    locked.chmod(0)  # unreadable for ordinary users (root reads it anyway)
    try:
        found, problems = scan_members(tmp_path)
    finally:
        locked.chmod(0o755)
    assert found == [member]
    if os.geteuid() != 0:
        assert any("locked" in p[0] for p in problems)


def test_describe_pipeline(tmp_path):
    d = describe(_tree(tmp_path, PIPE))
    assert d.mous == MOUS
    assert d.calibration == "pipeline" and not d.pipeline_rerun_only
    assert d.imaging == "pipeline" and not d.supplemental_manual
    assert not d.selfcal and not d.full_polarization and not d.total_power
    assert d.readme == f"{M}.README.txt"
    assert d.levels == {"group": "group.uid___A001_X1_X1",
                        "science_goal": "science_goal.uid___A001_X1_X0",
                        "project": "2025.1.00001.S"}
    assert d.folders == ("calibration", "log", "product", "qa", "script")


def test_describe_manual_pol(tmp_path):
    files = {
        f"script/{M}.scriptForPI.py": "",
        "script/uid___A002_Xa_X1.ms.scriptForCalibration.py": "",
        "script/scriptForPolCalibration.py": "",
        "script/scriptForImaging.py": "tclean()\n",
        f"product/{M}.AS_209_sci.spw1.mfs.IQUV.manual.pbcor.fits": "",
        f"product/{M}.AS_209_sci.spw1.mfs.P.manual.pbcor.fits": "",
    }
    d = describe(_tree(tmp_path, files))
    assert (d.calibration, d.imaging, d.full_polarization, d.readme) == ("manual", "manual", True, None)


def test_classify_supplemental_selfcal_tp():
    listing = MemberListing(mous=MOUS, path="x", top=(), folders={
        "script": (f"{M}.hifa_calimage.casa_piperestorescript.py", "PPR.xml"),
        "product": (f"{M}.X_sci.spw1.cont.I.selfcal.pbcor.fits", "manual_imaging.tgz"),
        "calibration": ("jyperk.csv",),
    })
    d = classify(listing)
    assert d.calibration == "pipeline" and d.imaging == "pipeline"
    assert d.supplemental_manual and d.selfcal and d.total_power
    rerun = classify(MemberListing(mous=MOUS, path="x", folders={
        "script": (f"{M}.hifa_calimage.casa_pipescript.py",)}))
    assert rerun.calibration == "pipeline" and rerun.pipeline_rerun_only and rerun.imaging == "none"
    assert classify(MemberListing(mous=MOUS, path="x")).calibration == "unknown"
