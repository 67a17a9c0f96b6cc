"""qa_validate on small real deliveries (FITS made by CASA) and deliberately broken copies."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from almaqa_casa.validate import validate_delivery, write_reports
from tests.browser import check_page
from tests.validate.builders import BEAM, MOUS, NOISE, build_pipeline_delivery, member_dir

M = f"member.{MOUS}"
CONT = f"{M}.NGC_253_sci.spw16_18.cont.I"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("delivery")
    return build_pipeline_delivery(root)


@pytest.fixture
def copy(base, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(base["root"], dst, symlinks=True)
    return member_dir(dst)


def _problems(v):
    """Non-info findings as (code, basename of file)."""
    return sorted((f.code, os.path.basename(f.file)) for f in v.findings if f.severity != "info")


def test_clean_delivery_has_no_errors_and_true_figures(base, tmp_path):
    v = validate_delivery(base["root"], req_resolution="1arcsec", req_sensitivity="1.2mJy/beam")
    assert _problems(v) == []
    res = v.as_dict()
    assert res["status"] == "ok" and res["valid"]
    (member,) = res["members"]
    assert (member["calibration"], member["imaging"]) == ("pipeline", "pipeline")
    assert len(res["images"]) == 3
    for im in res["images"]:
        assert im["method"] == "impbcor-m" and im["mask_used"]
        assert abs(im["rms"] - NOISE) / NOISE < 0.10, im
        assert (im["bmaj"], im["bmin"], im["bpa"]) == pytest.approx(BEAM, rel=1e-6)
        assert im["dynamic_range"] == pytest.approx(im["peak_uncorrected"] / im["rms"])
    sci = [im for im in res["images"] if im["type"] == "sci"]
    assert all(c["pass"] for im in sci for c in im["checks"]) and len(sci) == 2
    strict = validate_delivery(base["root"], req_sensitivity="0.5mJy/beam", checks="images")
    assert {f.code for f in strict.findings if f.severity != "info"} == {"I003"}
    # reports: JSON round trip and the page in a real browser
    paths = write_reports(v, tmp_path / "out")
    data = json.loads(Path(paths["json"]).read_text())
    assert data["summary"]["error"] == 0 and len(data["images"]) == 3
    page = check_page(paths["html"])
    assert page.ok, page.explain()
    assert page.images_total == 3


def test_beam_equals_fits_header(base):
    from astropy.io import fits
    v = validate_delivery(base["root"], checks="images", thumbnails=False)
    for im in v.images:
        h = fits.getheader(im["file"])
        if "BMAJ" in h:
            assert im["bmaj"] == pytest.approx(h["BMAJ"] * 3600, rel=1e-12)
            assert im["bmin"] == pytest.approx(h["BMIN"] * 3600, rel=1e-12)
            assert im["bpa"] == pytest.approx(h["BPA"], rel=1e-12)
        else:  # per-channel beams: median of the BEAMS table
            import numpy as np
            t = fits.getdata(im["file"], "BEAMS")
            assert im["bmaj"] == pytest.approx(float(np.median(t["BMAJ"])), rel=1e-6)


def _break(member: Path, how: str) -> list[tuple[str, str]]:
    prod = member / "product"
    if how == "missing_pb":
        (prod / f"{CONT}.pb.fits.gz").unlink()
        return [("P001", f"{CONT}.pbcor.fits")]
    if how == "renamed_product":
        (prod / f"{CONT}.pbcor.fits").rename(prod / "NGC_253_continuum_final.fits")
        # the renamed file breaks the scheme; its pb and mask lose their pbcor as a consequence
        return [("N001", "NGC_253_continuum_final.fits"), ("P003", f"{CONT}.mask.fits.gz"),
                ("P003", f"{CONT}.pb.fits.gz")]
    if how == "truncated_fits":
        p = prod / f"{CONT}.pbcor.fits"
        p.write_bytes(p.read_bytes()[: 2880 * 3])
        return [("F004", f"{CONT}.pbcor.fits")]
    if how == "missing_readme":
        (member / f"{M}.README.txt").unlink()
        return [("L005", f"{M}.README.txt")]
    if how == "extra_unknown_file":
        (member / "notes.docx").write_text("x")
        return [("L011", "notes.docx")]
    if how == "gz_not_gzip":
        (prod / f"{CONT}.pb.fits.gz").write_text("SIMPLE  = T  but not gzip")
        return [("F002", f"{CONT}.pb.fits.gz")]
    if how == "garbage_fits":
        (prod / f"{CONT}.mask.fits.gz").write_bytes(b"")
        return [("F011", f"{CONT}.mask.fits.gz")]
    if how == "empty_folder":
        for p in (member / "log").iterdir():
            p.unlink()
        return [("L006", "log")]
    if how == "symlink_loop":
        os.symlink(member, member / "qa" / "loop")
        return [("L013", "loop")]
    if how == "broken_link":
        os.symlink(member / "nowhere", prod / f"{M}.X_sci.spw16.cont.I.pbcor.fits")
        return [("L014", f"{M}.X_sci.spw16.cont.I.pbcor.fits")]
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing_pb", "renamed_product", "truncated_fits", "missing_readme",
                                 "extra_unknown_file", "gz_not_gzip", "garbage_fits", "empty_folder",
                                 "symlink_loop", "broken_link"])
def test_broken_copy_gives_exactly_the_expected_finding(copy, how):
    expected = _break(copy, how)
    v = validate_delivery(copy.parents[3], thumbnails=False)
    assert _problems(v) == sorted(expected)


def test_archive_tars_without_extracting(base, tmp_path):
    member = Path(base["member"])
    rel = member.relative_to(base["root"])
    tars = tmp_path / "tars"
    tars.mkdir()
    with tarfile.open(tars / f"2025.1.00001.S_{MOUS}_001_of_001.tar", "w") as tf:
        for d in ("product", "qa", "log", "script"):
            tf.add(member / d, arcname=str(rel / d))
    with tarfile.open(tars / f"2025.1.00001.S_{MOUS}_auxiliary.tar", "w") as tf:
        tf.add(member / "calibration", arcname=str(rel / "calibration"))
    with tarfile.open(tars / f"member_{MOUS}_README.txt.tar", "w") as tf:
        tf.add(member / f"{M}.README.txt", arcname=str(rel / f"{M}.README.txt"))
    (tars / "broken.tar").write_bytes(b"not a tar")
    v = validate_delivery(tars, thumbnails=False)
    assert v.mode == "tar"
    assert _problems(v) == [("L015", "broken.tar")]
    assert "L004" in {f.code for f in v.findings}  # raw/ not downloaded
    assert len(v.images) == 3
    for im in v.images:
        assert ".tar:" in im["file"] and abs(im["rms"] - NOISE) / NOISE < 0.10
    assert not any(p.name.startswith("2025") for p in tars.iterdir() if p.is_dir())


def test_nothing_found_and_bad_checks(tmp_path):
    v = validate_delivery(tmp_path)
    assert [f.code for f in v.findings] == ["L001"]
    with pytest.raises(ValueError, match="unknown check"):
        validate_delivery(tmp_path, checks="layout,colour")


def test_cli_exit_codes(base, copy, tmp_path):
    exe = [sys.executable, "-m", "almaqa_casa", "qa_validate"]
    ok = subprocess.run(exe + ["--deliverydir", base["root"], "--outdir", str(tmp_path / "a"),
                               "--checks", "layout,naming,products", "--json"],
                        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "a" / "validation.html").exists()
    _break(copy, "missing_readme")
    bad = subprocess.run(exe + ["--deliverydir", str(copy), "--outdir", str(tmp_path / "b"),
                                "--checks", "layout", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert json.loads((tmp_path / "b" / "validation.json").read_text())["summary"]["by_code"]["L005"] == 1


def test_damaged_tars_never_crash(base, tmp_path):
    member = Path(base["member"])
    rel = member.relative_to(base["root"])
    tars = tmp_path / "tars"
    tars.mkdir()
    full = tars / f"2025.1.00001.S_{MOUS}_001_of_001.tar"
    with tarfile.open(full, "w") as tf:
        tf.add(member / "product", arcname=str(rel / "product"))
    raw = full.read_bytes()
    full.write_bytes(raw[: len(raw) // 2])  # truncated in the middle of a member
    with tarfile.open(tars / f"member_{MOUS}_README.txt.tar", "w") as tf:
        tf.add(member / f"{M}.README.txt", arcname=str(rel / f"{M}.README.txt"))
    v = validate_delivery(tars, thumbnails=False)
    codes = {f.code for f in v.findings}
    assert codes & {"L015", "F001", "F004", "L012", "F002"}  # the damage is reported
    assert v.as_dict()["status"] == "failed"
