"""End-to-end: qa_validate on the synthetic deliveries (almaqa_casa.synth) against their truth."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from almaqa_casa.validate import validate_delivery, write_reports
from tests.browser import check_page

pytestmark = pytest.mark.slow


def _check(result: dict, tmp_path: Path, expect_pol: bool) -> None:
    truth = result["truth"]
    v = validate_delivery(result["project_dir"])
    errors = [f for f in v.findings if f.severity == "error"]
    assert errors == [], errors
    (member,) = v.members
    assert member["mous"] == truth["mous"]
    assert member["calibration"] == truth["calibration"]
    assert member["full_polarization"] == bool(truth["polarization"])
    measured = {os.path.basename(im["file"]): im for im in v.images}
    assert measured, "no image measured"
    checked = 0
    for name, t in truth.get("images", {}).items():
        im = measured.get(os.path.basename(name))
        assert im is not None, f"{name} not measured"
        assert im["error"] is None, im["error"]
        noise = t.get("noise_jy_per_beam")
        if noise:
            assert abs(im["rms"] - noise) / noise < 0.10, (name, im["rms"], noise)
            checked += 1
        from astropy.io import fits
        h = fits.getheader(im["file"])
        if "BMAJ" in h:
            assert im["bmaj"] == pytest.approx(h["BMAJ"] * 3600, rel=1e-9)
            assert im["bmin"] == pytest.approx(h["BMIN"] * 3600, rel=1e-9)
            assert im["bpa"] == pytest.approx(h["BPA"], rel=1e-9, abs=1e-9)
    assert checked > 0
    _check_requirements(v, truth)
    paths = write_reports(v, tmp_path / "report")
    page = check_page(paths["html"])
    assert page.ok, page.explain()
    assert page.images_total == len(v.thumbnails) > 0
    if result.get("tars"):
        tardir = os.path.dirname(result["tars"][0])
        vt = validate_delivery(tardir, thumbnails=False)
        assert vt.mode == "tar"
        assert [f for f in vt.findings if f.severity == "error"] == []
        rms_t = sorted(round(im["rms"], 9) for im in vt.images)
        assert rms_t == sorted(round(im["rms"], 9) for im in v.images)


def _check_requirements(v, truth: dict) -> None:
    """The generator states the science goal in every ASDM's SBSummary.xml as the observatory
    does; qa_validate reads it and holds each science product to it at its own bandwidth."""
    import math

    from almaqa_casa.delivery.sbsummary import to_unit
    from almaqa_casa.synth.spec import SCIENCE_GOAL

    goal = dict(SCIENCE_GOAL)
    req = v.requirements["members"][truth["mous"]]
    assert req["source"] == "SBSummary.xml", req
    goal_jy = to_unit(goal["sensitivityGoal"], "Jy", "spec")
    goal_bw = to_unit(goal["representativeBandwidth"], "Hz", "spec")
    assert req["sensitivity_jy_per_beam"] == pytest.approx(goal_jy)
    assert req["bandwidth_hz"] == pytest.approx(goal_bw)
    assert req["frequency_hz"] == pytest.approx(to_unit(goal["representativeFrequency"], "Hz", "s"))
    assert (req["res_min_arcsec"], req["res_max_arcsec"]) == pytest.approx(
        (to_unit(goal["minAcceptableAngResolution"], "arcsec", "s"),
         to_unit(goal["maxAcceptableAngResolution"], "arcsec", "s")))
    spw_bw = {s["id"]: s["nchan"] * s["width_hz"] for s in truth["spws"]}
    judged = 0
    for im in v.images:
        t = truth["images"].get(os.path.basename(im["file"]))
        if t is None or t["type"] != "sci" or ".tt1." in im["file"]:
            continue
        checks = {c["what"]: c for c in im["checks"]}
        assert set(checks) == {"resolution", "sensitivity"}, im["file"]
        sens = checks["sensitivity"]
        if t["imtype"] == "cube":
            from astropy.io import fits
            bw = abs(fits.getheader(im["file"])["CDELT3"])
            assert sens["per_channel"]
        else:
            bw = sum(spw_bw[k] for k in t["spws"])
        assert sens["bandwidth_hz"] == pytest.approx(bw), im["file"]
        assert sens["required"] == pytest.approx(goal_jy * math.sqrt(goal_bw / bw))
        assert sens["pass"] and checks["resolution"]["pass"], (im["file"], checks)
        judged += 1
    assert judged >= 2


def test_pipeline_delivery(pipeline_delivery, tmp_path):
    _check(pipeline_delivery, tmp_path, expect_pol=False)


def test_pipeline_delivery_as_archive_tars(pipeline_delivery, tmp_path):
    """The archive's tar files of the same delivery validate the same, read in place."""
    from almaqa_casa.synth.tree import archive_tars

    r = pipeline_delivery
    root = os.path.dirname(r["project_dir"])
    tars = archive_tars(r["spec"], root, str(tmp_path / "tars"))
    assert len(tars) >= 3
    folder = validate_delivery(r["project_dir"], checks="layout,naming,products,fits",
                               thumbnails=False)
    vt = validate_delivery(str(tmp_path / "tars"), checks="layout,naming,products,fits",
                           thumbnails=False)
    assert vt.mode == "tar"
    assert [f for f in vt.findings if f.severity == "error"] == []
    assert len(vt.products) == len(folder.products)
    assert vt.members[0]["calibration"] == folder.members[0]["calibration"]
    # nothing was unpacked next to the tars
    assert sorted(p.name for p in (tmp_path / "tars").iterdir()) == sorted(
        os.path.basename(t) for t in tars)


def test_manual_delivery(manual_delivery, tmp_path):
    _check(manual_delivery, tmp_path, expect_pol=False)


def test_pol_delivery(pol_delivery, tmp_path):
    _check(pol_delivery, tmp_path, expect_pol=True)


def test_delivery_after_restore(pipeline_delivery, tmp_path):
    """A member that qa_restore (or scriptForPI.py) has restored still validates:
    calibrated/ links back into calibration/ and raw/ must not shadow them."""
    import shutil
    project = Path(pipeline_delivery["project_dir"])
    copy = tmp_path / project.name
    shutil.copytree(project, copy, symlinks=True)
    member = copy / Path(pipeline_delivery["member_dir"]).relative_to(project)
    cal = member / "calibrated"
    (cal / "rawdata").mkdir(parents=True)
    (cal / "products").symlink_to("../calibration")
    for eb in pipeline_delivery["truth"]["ebs"]:
        (cal / "rawdata" / eb).symlink_to(f"../../raw/{eb}.asdm.sdm")
    v = validate_delivery(str(copy))
    bad = [f for f in v.findings if f.severity in ("error", "warning")]
    assert bad == [], bad
