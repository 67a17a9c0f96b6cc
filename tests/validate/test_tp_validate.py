"""qa_validate on total power deliveries: the Jy/K factor files, the sd cubes'
units and their image figures."""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from almaqa_casa.synth.skeleton import make_skeleton
from almaqa_casa.validate import validate_delivery


def _codes(v, severity=None):
    return sorted((f.code, os.path.basename(f.file)) for f in v.findings
                  if severity is None or f.severity == severity)


def test_synthetic_tp_delivery_is_valid_with_figures(tp_delivery):
    t = tp_delivery["truth"]
    v = validate_delivery(tp_delivery["member_dir"])
    res = v.as_dict()
    assert res["status"] == "ok" and not _codes(v, "error") and not _codes(v, "warning")
    assert res["members"][0]["total_power"]
    t005 = [f for f in v.findings if f.code == "T005"]
    assert len(t005) == 1 and t005[0].file.endswith("auxproducts.tgz::jyperk.csv")
    assert "32 MS-based factors for 2 MS(s)" in t005[0].message
    assert sorted(os.path.basename(im["file"]) for im in res["images"]) == sorted(t["images"])
    for im in res["images"]:
        want = t["images"][os.path.basename(im["file"])]
        assert im["kind"] == "sd" and im["unit"] == "Jy/beam" and im["pb"] is None
        assert im["peak"] == pytest.approx(want["peak_jy_per_beam"], rel=1e-5)
        assert im["bmaj"] == pytest.approx(want["beam_arcsec"], rel=1e-6)
        assert np.isfinite(im["rms"]) and 0 < im["rms"] < 0.01 * im["peak"]


@pytest.fixture(scope="module")
def tp_skel(tmp_path_factory):
    return make_skeleton(str(tmp_path_factory.mktemp("tpsk")), "total_power", nebs=3,
                         sessions=("session_1", "session_2", "session_2"))


@pytest.fixture
def copy(tp_skel, tmp_path):
    src = Path(tp_skel["member_dir"])
    dst = tmp_path / src.name
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _aux(member: Path) -> Path:
    return next((member / "calibration").glob("*auxproducts.tgz"))


def _rewrite_aux(member: Path, text: str | None) -> None:
    aux = _aux(member)
    aux.unlink()
    with tarfile.open(aux, "w:gz") as tf:
        if text is not None:
            p = member / "jyperk.csv"
            p.write_text(text)
            tf.add(p, arcname="jyperk.csv")
            p.unlink()


def test_skeleton_factors_found(copy):
    v = validate_delivery(str(copy))
    assert ("T005", f"{_aux(copy).name}::jyperk.csv") in _codes(v)
    assert not [c for c in _codes(v) if c[0] in ("T001", "T002", "T003", "T004")]


def test_no_factors_is_a_warning(copy):
    _rewrite_aux(copy, None)
    v = validate_delivery(str(copy))
    assert ("T001", "calibration") in _codes(v, "warning")


def test_unreadable_factors_name_file_and_line(copy):
    _rewrite_aux(copy, "MS,Antenna,Spwid,Polarization,Factor\nx.ms,PM01,0,XX,40\nx.ms,PM01,0,YY\n")
    v = validate_delivery(str(copy))
    (f,) = [f for f in v.findings if f.code == "T002"]
    assert f.severity == "error" and "jyperk.csv, line 3: expected 5 columns" in f.message


def test_several_factor_files_and_missing_ebs(copy, tp_skel):
    ebs = tp_skel["truth"]["ebs"]
    (copy / "calibration" / "jyperk_query.csv").write_text(f"{ebs[0]}.ms,PM01,0,I,41.5\n")
    v = validate_delivery(str(copy))
    assert ("T003", "calibration") in _codes(v, "error")
    (t4,) = [f for f in v.findings if f.code == "T004"]
    assert t4.file.endswith("jyperk_query.csv") and ebs[1] in t4.message and ebs[2] in t4.message
    assert ebs[0] not in t4.message


def test_sd_cube_units(copy):
    from astropy.io import fits
    prods = sorted((copy / "product").glob("*.sd.fits"))
    for p, unit in zip(prods[:2], ("K", "Jy/pixel")):
        h = fits.Header()
        data = np.ones((1, 4, 8, 8), np.float32)
        hdu = fits.PrimaryHDU(data)
        for i, (ct, cu) in enumerate((("RA---SFL", "deg"), ("DEC--SFL", "deg"), ("FREQ", "Hz"),
                                      ("STOKES", "")), start=1):
            hdu.header[f"CTYPE{i}"], hdu.header[f"CUNIT{i}"] = ct, cu
            hdu.header[f"CRVAL{i}"], hdu.header[f"CDELT{i}"], hdu.header[f"CRPIX{i}"] = 1.0, 1.0, 1.0
        hdu.header.update(h)
        hdu.header["BUNIT"] = unit
        hdu.header["BMAJ"] = hdu.header["BMIN"] = 0.015
        hdu.header["BPA"] = 0.0
        hdu.header["RESTFRQ"], hdu.header["SPECSYS"] = 1.15e11, "LSRK"
        p.unlink()
        hdu.writeto(p)
    v = validate_delivery(str(copy), checks=["fits"])
    t6 = [(c, n) for c, n in _codes(v) if c == "T006"]
    assert t6 == [("T006", prods[1].name)]
