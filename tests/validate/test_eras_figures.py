"""Image figures with the pairing of older eras, on real FITS and CASA images.

A Cycle 2-3 manual delivery (``<name>.image.pbcor.fits`` with
``<name>.flux.fits(.gz)`` and a CASA ``<name>.mask`` folder) and a Cycle 4
multi-term set (``tt0.pbcor`` and ``tt1.pbcor`` with one ``pb.tt0``): every
image is measured through the impbcor recovery with its paired pb and mask,
and gives the noise put in; nothing is written into the delivery.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from almaqa_casa.validate import validate_delivery
from tests.validate.builders import BEAM, NOISE, write_image_set
from tests.validate.eras import SHAPES, build

_C4_CONT = "uid___A001_X87c_X69.NGC_3351_sci.spw17_19_21_23.cont.I"


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    out = []
    for root, dirs, files in os.walk(folder):
        for n in sorted(dirs + files):
            st = os.lstat(os.path.join(root, n))
            out.append((os.path.relpath(os.path.join(root, n), folder), st.st_mode, st.st_mtime_ns))
    return sorted(out)


@pytest.fixture(scope="module")
def old_eras(tmp_path_factory):
    root = tmp_path_factory.mktemp("eras")
    work = root.parent / (root.name + "-work")
    manual = build(root, "manual_c23", drop=("product/",))
    prod = manual / "product"
    prod.mkdir()
    write_image_set(prod, "NGC1333_IRAS4A.spw17", nchan=3, seed=11, work=work, names={
        "pbcor": "NGC1333_IRAS4A.spw17.image.pbcor.fits", "pb": "NGC1333_IRAS4A.spw17.flux.fits.gz",
        "mask": "NGC1333_IRAS4A.spw17.mask"})
    write_image_set(prod, "OrionKL.cont", seed=12, work=work, names={
        "pbcor": "OrionKL.cont.image.pbcor.fits", "pb": "OrionKL.cont.flux.fits",
        "mask": "OrionKL.cont.mask"})
    # a FIFO inside a delivered CASA mask folder must not stop (or be read by) the copy
    lock = prod / "OrionKL.cont.mask" / "table.lock"
    if lock.exists():
        lock.unlink()
    os.mkfifo(lock)

    cyc4 = build(root, "cycle4", drop=("product/",))
    prod4 = cyc4 / "product"
    prod4.mkdir()
    write_image_set(prod4, _C4_CONT, seed=21, tt=True, work=work)
    write_image_set(prod4, _C4_CONT, seed=22, work=work, only=("pbcor",),
                    names={"pbcor": f"{_C4_CONT}.tt1.pbcor.fits"})
    shutil.rmtree(work, ignore_errors=True)
    return {"root": root, "manual": manual, "cycle4": cyc4}


EXPECTED = {  # image -> (pb, mask, pb rule)
    "NGC1333_IRAS4A.spw17.image.pbcor.fits": ("NGC1333_IRAS4A.spw17.flux.fits.gz",
                                              "NGC1333_IRAS4A.spw17.mask", "flux image"),
    "OrionKL.cont.image.pbcor.fits": ("OrionKL.cont.flux.fits", "OrionKL.cont.mask", "flux image"),
    f"{_C4_CONT}.tt0.pbcor.fits": (f"{_C4_CONT}.pb.tt0.fits.gz", f"{_C4_CONT}.mask.fits.gz",
                                   "same name"),
    f"{_C4_CONT}.tt1.pbcor.fits": (f"{_C4_CONT}.pb.tt0.fits.gz", f"{_C4_CONT}.mask.fits.gz",
                                   "tt0 primary beam"),
}


def _check_images(v) -> dict:
    got = {os.path.basename(im["file"]): im for im in v.images}
    assert set(got) == set(EXPECTED)
    for name, (pb, mask, rule) in EXPECTED.items():
        im = got[name]
        assert im["error"] is None, (name, im["error"])
        assert (os.path.basename(im["pb"]), os.path.basename(im["mask"]), im["pb_rule"]) == (pb, mask, rule)
        assert im["method"] == "impbcor-m" and im["mask_used"]
        assert abs(im["rms"] - NOISE) / NOISE < 0.10, (name, im["rms"])
        assert (im["bmaj"], im["bmin"], im["bpa"]) == pytest.approx(BEAM, rel=1e-6)
    return got


def test_old_era_images_pair_and_measure_true_noise(old_eras):
    before = _listing(old_eras["root"])
    v = validate_delivery(old_eras["root"], req_sensitivity="1.2mJy/beam")
    errors = [f for f in v.findings if f.severity in ("error", "warning")]
    assert errors == []
    got = _check_images(v)
    assert set(v.thumbnails) == {im["file"] for im in got.values()}
    # requirements apply to Stokes I intensity images, not to the tt1 (spectral) term
    assert got[f"{_C4_CONT}.tt1.pbcor.fits"]["checks"] == []
    assert [c["pass"] for c in got[f"{_C4_CONT}.tt0.pbcor.fits"]["checks"]] == [True]
    assert _listing(old_eras["root"]) == before  # nothing written into the deliveries
    kinds = {m["mous"]: (m["kind"], m["era"]["label"]) for m in v.members}
    assert kinds == {SHAPES["manual_c23"][3]: ("manual", "Cycle 2-4 (most likely Cycle 2)"),
                     SHAPES["cycle4"][3]: ("pipeline", "Cycle 4")}


def test_old_era_images_from_archive_tars(old_eras, tmp_path):
    """The same figures read from tar files in place; the .mask folder comes out of the tar."""
    tars = tmp_path / "tars"
    tars.mkdir()
    for key in ("manual", "cycle4"):
        member = old_eras[key]
        rel = member.relative_to(old_eras["root"])
        with tarfile.open(tars / f"{rel.parts[0]}_{member.name[len('member.'):]}_001_of_001.tar",
                          "w") as tf:
            tf.add(member, arcname=str(rel))
    v = validate_delivery(tars, thumbnails=False)
    assert v.mode == "tar"
    # the FIFO inside the mask folder is a special tar member: reported, never read
    problems = sorted((f.code, os.path.basename(f.file)) for f in v.findings
                      if f.severity in ("error", "warning"))
    assert problems == [("L011", "table.lock")]
    _check_images(v)
