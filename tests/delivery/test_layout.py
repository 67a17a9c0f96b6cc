"""Member discovery, delivery classification and era estimate on small trees built here."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from almaqa_casa.delivery import era as E
from almaqa_casa.delivery.layout import (
    MemberListing,
    classify,
    describe,
    find_members,
    scan_members,
)
from tests.validate.eras import SHAPES, build, listing_names

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


# ---- eras -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,want", [
    ("cycle4", dict(kind="pipeline", calibration="pipeline", imaging="pipeline", era="Cycle 4",
                    naming=("bare-uid",), readme="README",
                    shapes=("README named 'README'", "loose in calibration/", "flag templates"))),
    ("cycle7", dict(kind="pipeline", calibration="pipeline", imaging="pipeline", era="Cycle 7",
                    naming=("scheme",), readme="member.uid___A001_X1465_X1b4e.README.txt",
                    shapes=("casa_commands.log in script/ and no log/",))),
    ("manual_c23", dict(kind="manual", calibration="manual", imaging="manual",
                        era="Cycle 2-4 (most likely Cycle 2)", naming=("free-form",), readme="README",
                        shapes=("README named 'README'", "loose in calibration/",
                                "9 free-form manual product name(s)",
                                "3 CASA image folder(s)"))),
    ("semipass", dict(kind="semipass", calibration="unknown", imaging="none",
                      era="Cycle 6 or later (most likely Cycle 6)", naming=(),
                      readme="member.uid___A001_X133d_X2c1.README.txt", shapes=("semipass package",))),
])
def test_describe_era_shapes(tmp_path, shape, want):
    d = describe(build(tmp_path, shape))
    assert (d.kind, d.calibration, d.imaging, d.era["label"], d.naming, d.readme) == (
        want["kind"], want["calibration"], want["imaging"], want["era"], want["naming"], want["readme"])
    assert d.era["conflicts"] == []
    assert len(d.shapes) == len(want["shapes"])
    for line, sub in zip(d.shapes, want["shapes"]):
        assert sub in line
    assert not d.total_power and not d.full_polarization
    # the same from the pure classification of the names
    listing = MemberListing(mous=SHAPES[shape][3], path="x", top=d.folders + ((d.readme,) if d.readme else ()),
                            folders=listing_names(shape), parents=tuple(
                                p.name for p in list(build(tmp_path, shape).absolute().parents)[:3]))
    c = classify(listing)
    assert (c.kind, c.naming, c.shapes) == (d.kind, d.naming, d.shapes)


def test_versions_read_from_readme_and_casa_commands_log(tmp_path):
    assert describe(build(tmp_path, "cycle4")).versions == {"casa": "4.7.2", "pipeline": "Pipeline-CASA47-P1-B"}
    assert describe(build(tmp_path / "b", "cycle7")).versions == {"casa": "5.6.1-8",
                                                                  "pipeline": "Pipeline-CASA56-P1-B"}


def test_semipass_needs_no_calibration_folder():
    """An empty calibration/ is a broken delivery, not a semipass package."""
    base = {"qa": ("x.pdf",), "script": ("member.uid___A001_X1_X2.scriptForPI.py",)}
    assert classify(MemberListing(mous=MOUS, path="x", folders=base)).kind == "semipass"
    assert classify(MemberListing(mous=MOUS, path="x", folders={**base, "calibration": ()})).kind == "unknown"
    assert classify(MemberListing(mous=MOUS, path="x", folders={
        **base, "product": (f"{M}.X_sci.spw1.cont.I.pbcor.fits",)})).kind == "unknown"


def test_total_power_flags():
    for folders in ({"script": (f"{M}.hsd_calimage.casa_piperestorescript.py",)},
                    {"script": ("PPR.xml",), "calibration": (f"{MOUS}.jyperk.csv",)},
                    {"script": ("PPR.xml",), "product": (f"{M}.M308_sci.spw21.cube.I.sd.fits",
                                                        f"{M}.M308_sci.spw21.cube.I.sd.weight.fits")}):
        d = classify(MemberListing(mous=MOUS, path="x", folders=folders))
        assert d.total_power and d.kind == "pipeline", folders
    d = classify(MemberListing(mous=MOUS, path="x", folders={
        "script": ("PPR.xml",), "product": (f"{M}.X_sci.spw1.cont.I.selfcal.pbcor.fits",
                                            f"{M}.X_sci.spw1.mfs.IQUV.pbcor.fits")}))
    assert d.selfcal and d.full_polarization and not d.total_power


def test_era_functions():
    assert [E.project_cycle(c) for c in ("2011.0.00001.S", "2013.1.00031.S", "2015.1.00001.S",
                                         "2016.1.01435.S", "2019.2.00001.S", "2021.1.00001.L",
                                         "2025.1.00123.S", "2019.A.00034.S", "x", None)] == [
        0, 2, 3, 4, 7, 8, 12, 7, None, None]
    assert [E.casa_cycle(v) for v in ("4.2.2", "4.5.3", "4.7.2", "5.1.1", "5.4.0", "5.6.1-8",
                                      "6.1.1.15", "6.4.1", "6.5.4.9", "6.6.1.17", "6.6.6.17", "", "x")] == [
        2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, None, None]
    assert E.pipeline_cycle("Pipeline-CASA51-P2-B") == 5 and E.pipeline_cycle("2024.1.0.8") == 11
    assert E.versions_in_text("Pipeline version 2023.1.0.124 (CASA 6.5.4.9)") == {
        "casa": "6.5.4.9", "pipeline": "2023.1.0.124"}
    assert E.versions_in_text("no versions, see CASA guides") == {}


def test_era_conflicts_are_recorded_not_applied():
    ev = E.evidence_from_listing(project="2023.1.00001.S", readme="README", top=(), folders={
        "calibration": (f"{MOUS}.s1.caltables.tgz",)}, namings=("scheme",), versions={"casa": "4.2.2"})
    era = E.estimate_era(ev)
    assert (era.cycle_min, era.cycle_max, era.estimate) == (10, None, 10)
    assert era.conflicts == ("README named 'README' (Cycle 1-4)",)
    assert era.label == "Cycle 10 or later (most likely Cycle 10)"
    assert E.estimate_era([]).label == "unknown"


@pytest.mark.timeout(120)
def test_describe_never_opens_special_files(tmp_path):
    """A FIFO named like a script, a README or a log is listed, never opened (it would block)."""
    member = build(tmp_path, "cycle7", drop=("script/member.uid___A001_X1465_X1b4e.hifa_calimage.casa_commands.log",
                                             "member.uid___A001_X1465_X1b4e.README.txt"))
    for rel in ("script/scriptForImaging.py", "member.uid___A001_X1465_X1b4e.README.txt",
                "script/member.uid___A001_X1465_X1b4e.hifa_calimage.casa_commands.log"):
        os.mkfifo(member / rel)
    d = describe(member)
    assert d.versions == {} and d.kind == "pipeline"
    from almaqa_casa.delivery.layout import read_text_head
    assert read_text_head(member / "script" / "scriptForImaging.py") is None
