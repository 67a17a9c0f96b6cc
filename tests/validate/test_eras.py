"""qa_validate on the delivery shapes of each era (text-only skeletons), and special files."""
from __future__ import annotations

import os
import tarfile
from collections import Counter

import pytest

from almaqa_casa.validate import validate_delivery
from almaqa_casa.validate.tree import load_tree
from tests.validate.eras import SHAPES, build, member_path

STRUCTURE = "layout,naming,products"


def _by_code(v, severity=None):
    return Counter(f.code for f in v.findings if severity is None or f.severity == severity)


def _not_info(v):
    return sorted((f.code, os.path.basename(f.file), f.message) for f in v.findings
                  if f.severity != "info")


@pytest.mark.parametrize("shape,infos", [
    ("cycle4", {"L022": 3, "N003": 12}),       # README, loose aux files, flag templates; bare uid___
    ("cycle7", {"L022": 1}),                   # casa_commands.log in script/, no log/
    ("manual_c23", {"L022": 4, "N004": 9}),    # README, loose aux, free-form names, .mask folders
    ("semipass", {"L021": 1}),
])
def test_era_shapes_validate_without_errors_or_warnings(tmp_path, shape, infos):
    build(tmp_path, shape)
    v = validate_delivery(tmp_path, checks=STRUCTURE, thumbnails=False)
    assert _not_info(v) == []
    assert v.as_dict()["status"] == "ok"
    codes = _by_code(v, "info")
    for code, n in infos.items():
        assert codes[code] == n, (code, codes)
    (member,) = v.members
    assert member["kind"] == {"cycle4": "pipeline", "cycle7": "pipeline", "manual_c23": "manual",
                              "semipass": "semipass"}[shape]
    desc = next(f.message for f in v.findings if f.code == "L020")
    assert f"era: {member['era']['label']}" in desc and member["era"]["evidence"]


def test_free_form_and_mask_folders_are_products(tmp_path):
    build(tmp_path, "manual_c23")
    v = validate_delivery(tmp_path, checks=STRUCTURE, thumbnails=False)
    n004 = sorted(os.path.basename(f.file) for f in v.findings if f.code == "N004")
    assert "NGC1333_IRAS4A.spw17.mask" in n004 and "OrionKL.CH3OH_241.7GHz.flux.fits.gz" in n004
    assert all("free-form pre-Cycle-4 manual product name" in f.message
               for f in v.findings if f.code == "N004")
    # a missing .flux.fits breaks the pair exactly as a missing .pb.fits does
    (member_path(tmp_path, "manual_c23") / "product" / "OrionKL.CH3OH_241.7GHz.flux.fits.gz").unlink()
    v = validate_delivery(tmp_path, checks=STRUCTURE, thumbnails=False)
    assert [(c, f) for c, f, _ in _not_info(v)] == [("P001", "OrionKL.CH3OH_241.7GHz.image.pbcor.fits")]


def test_archive_tars_of_an_old_manual_delivery(tmp_path):
    member = build(tmp_path / "tree", "manual_c23")
    rel = member.relative_to(tmp_path / "tree")
    tars = tmp_path / "tars"
    tars.mkdir()
    with tarfile.open(tars / f"2013.1.00031.S_{SHAPES['manual_c23'][3]}_001_of_001.tar", "w") as tf:
        tf.add(member, arcname=str(rel))
    v = validate_delivery(tars, checks=STRUCTURE, thumbnails=False)
    assert v.mode == "tar"
    assert _not_info(v) == []
    assert _by_code(v)["N004"] == 9


def test_shapes_out_of_their_era_are_still_reported(tmp_path):
    # Cycle 7 layout without the casa_commands.log in script/: log/ is required again
    build(tmp_path / "a", "cycle7",
          drop=("script/member.uid___A001_X1465_X1b4e.hifa_calimage.casa_commands.log",))
    v = validate_delivery(tmp_path / "a", checks=STRUCTURE, thumbnails=False)
    assert [(c, f) for c, f, _ in _not_info(v)] == [("L003", "log")]
    # free-form names and a README named README in a Cycle 7 delivery
    build(tmp_path / "b", "cycle7", extra={
        "README": "old name\n", "product/HD163296.cont.image.pbcor.fits": "x",
        "product/HD163296.cont.flux.fits.gz": "x", "product/HD163296.cont.mask.fits.gz": "x"})
    v = validate_delivery(tmp_path / "b", checks=STRUCTURE, thumbnails=False)
    got = [(c, f) for c, f, _ in _not_info(v)]
    assert ("N001", "HD163296.cont.image.pbcor.fits") in got
    assert ("N001", "HD163296.cont.flux.fits.gz") in got
    assert not any(c == "P001" for c, _ in got)  # still paired
    # both READMEs: the old name is an unknown item next to the current README
    assert ("L011", "README") in got
    # a README named README in a Cycle 12 project: evidence of two eras
    build(tmp_path / "c", "cycle4")
    old = tmp_path / "c" / "2016.1.01435.S"
    os.rename(old, tmp_path / "c" / "2025.1.01435.S")
    v = validate_delivery(tmp_path / "c", checks=STRUCTURE, thumbnails=False)
    l023 = [f.message for f in v.findings if f.code == "L023"]
    assert len(l023) == 3 and all(f.severity == "warning" for f in v.findings if f.code == "L023")
    assert any("README named 'README'" in m for m in l023)
    # an empty calibration/ is not a semipass package
    build(tmp_path / "d", "semipass", extra={"calibration/": None})
    v = validate_delivery(tmp_path / "d", checks=STRUCTURE, thumbnails=False)
    assert "L021" not in _by_code(v) and _by_code(v, "error")["L008"] == 1


@pytest.mark.timeout(120)
def test_special_files_named_like_products_are_never_opened(tmp_path):
    """FIFOs named like a pbcor, an IQUV product, a pb, a script and a log: listed, never opened."""
    member = build(tmp_path, "cycle7")
    stem = "member.uid___A001_X1465_X1b4e.HD_163296_sci.spw25_27_29_31"
    fifos = [f"product/{stem}.cont.I.tt1.pbcor.fits", f"product/{stem}.mfs.IQUV.pbcor.fits",
             f"product/{stem}.mfs.IQUV.pb.fits.gz", "product/x.pbcor.fits",
             "script/scriptForImaging.py", "log/member.uid___A001_X1465_X1b4e.casa_commands.log"]
    (member / "log").mkdir()
    for rel in fifos:
        os.mkfifo(member / rel)
    # a regular file that becomes a FIFO between listing and reading is refused too
    tree = load_tree(tmp_path)
    entry = next(e for e in tree.entries if e.rel.endswith(f"{stem}.cont.I.pbcor.fits"))
    os.unlink(entry.disk_path)
    os.mkfifo(entry.disk_path)
    with pytest.raises(OSError, match="not a regular file"):
        with tree.open(entry):
            pass
    os.unlink(entry.disk_path)

    v = validate_delivery(tmp_path, thumbnails=False)  # every check, FITS and figures included
    special = {os.path.basename(f.file): f for f in v.findings if f.code == "L011"}
    for rel in fifos:
        f = special[os.path.basename(rel)]
        assert "not a regular file" in f.message and f.severity == "warning"
    products = {os.path.basename(p["file"]) for p in v.as_dict()["products"]}
    assert not products & {os.path.basename(r) for r in fifos}
    assert not any(os.path.basename(im["file"]) in {os.path.basename(r) for r in fifos}
                   for im in v.images)
