"""FITS conformance checks on real CASA exports and damaged copies; figures cross-checks."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from almaqa_casa.delivery.naming import parse_name
from almaqa_casa.validate.figures import measure, outside_mask_rms, robust_rms
from almaqa_casa.validate.fitscheck import header_findings, inspect_fits, shape_findings

STEM = "member.uid___A001_X1_X2.X_sci.spw1.cube.I"


@pytest.fixture(scope="module")
def casa_fits(tmp_path_factory):
    """A 3-channel cube with per-channel beams and a single-beam continuum image."""
    from almaqa_casa.images.testdata import make_image, to_fits

    d = tmp_path_factory.mktemp("fits")
    rng = np.random.default_rng(5)
    cube = rng.normal(0, 1e-3, (32, 32, 3, 1))
    cube[10:12, 10:12] = np.nan
    make_image(str(d / "cube.im"), (32, 32, 3, 1), stokes="I", data=cube,
               beam=[(1.0, 0.5, 10.0), (1.2, 0.6, 20.0), (1.4, 0.7, 30.0)])
    to_fits(str(d / "cube.im"), str(d / f"{STEM}.pbcor.fits"))
    to_fits(str(d / "cube.im"), str(d / f"{STEM}.pbcor.fits.gz"), gz=True)
    make_image(str(d / "cont.im"), (32, 32, 1, 1), stokes="I", data=cube[:, :, :1], beam=(1.0, 0.8, 30.0))
    to_fits(str(d / "cont.im"), str(d / "cont.fits"))
    return d


def _inspect(path: Path, name: str | None = None):
    name = name or path.name
    with open(path, "rb") as fh:
        return inspect_fits(fh, name, str(path))


def test_casa_export_is_clean(casa_fits):
    info = _inspect(casa_fits / f"{STEM}.pbcor.fits")
    assert info.ok and info.findings == []
    assert info.shape == (32, 32, 3, 1) and info.nchan == 3
    assert info.nbeams == 3 and info.beam["bmaj"] == pytest.approx(1.2, rel=1e-6)
    assert info.nan_fraction == pytest.approx(12 / (32 * 32 * 3))
    assert header_findings(info, parse_name(f"{STEM}.pbcor.fits")) == []
    gz = _inspect(casa_fits / f"{STEM}.pbcor.fits.gz")
    assert gz.ok and gz.findings == [] and gz.nan_fraction == info.nan_fraction


def _edit(src: Path, dst: Path, fn) -> Path:
    with fits.open(src) as h:
        fn(h[0].header)
        h.writeto(dst, output_verify="ignore", overwrite=True)
    return dst


@pytest.mark.parametrize("edit,code", [
    (lambda h: h.remove("BUNIT"), "F005"),
    (lambda h: [h.remove(k) for k in ("BMAJ", "BMIN", "BPA")], "F006"),
    (lambda h: h.set("CTYPE4", "XXX"), "F007"),
])
def test_header_problems(casa_fits, tmp_path, edit, code):
    p = _edit(casa_fits / "cont.fits", tmp_path / "x.fits", edit)
    info = _inspect(p)
    assert info.ok
    got = [f.code for f in header_findings(info, parse_name(f"{STEM}.pbcor.fits"))]
    assert got == [code]


def test_cube_without_restfrq(casa_fits, tmp_path):
    def edit(h):
        h.remove("RESTFRQ")
    with fits.open(casa_fits / f"{STEM}.pbcor.fits") as h:
        edit(h[0].header)
        h.writeto(tmp_path / "c.fits")
    info = _inspect(tmp_path / "c.fits")
    assert [f.code for f in header_findings(info, parse_name(f"{STEM}.pbcor.fits"))] == ["F008"]


def test_verify_violation(casa_fits, tmp_path):
    raw = (casa_fits / "cont.fits").read_bytes().replace(b"BTYPE   =", b"btype   =", 1)
    (tmp_path / "v.fits").write_bytes(raw)
    info = _inspect(tmp_path / "v.fits")
    assert [f.code for f in info.findings] == ["F003"] and info.ok


@pytest.mark.parametrize("content,name,code", [
    (b"", "a.fits", "F011"),
    (b"hello world" * 400, "a.fits", "F001"),
    (b"SIMPLE  =                    T" + b" " * 50, "a.fits", "F001"),  # header never ends
    (b"plain text", "a.fits.gz", "F002"),
    # mtime=0: the bytes are test ids, which the xdist workers must collect alike
    (gzip.compress(b"not fits at all" * 300, mtime=0), "a.fits.gz", "F001"),
    (gzip.compress(bytes(range(256)) * 40, mtime=0)[:-30], "a.fits.gz", "F002"),  # truncated stream
    (gzip.compress(b"x" * 100, mtime=0), "a.fits", "F001"),
])
def test_garbage_never_raises(content, name, code):
    info = inspect_fits(io.BytesIO(content), name, name)
    assert not info.ok
    assert [f.code for f in info.findings] == [code]


def test_truncated_data(casa_fits, tmp_path):
    raw = (casa_fits / f"{STEM}.pbcor.fits").read_bytes()
    (tmp_path / "t.fits").write_bytes(raw[:2880 * 4])
    info = _inspect(tmp_path / "t.fits")
    assert not info.ok and [f.code for f in info.findings] == ["F004"]


def test_shape_agreement():
    from almaqa_casa.validate.fitscheck import FitsInfo
    img = FitsInfo(file="i", ok=True, shape=(64, 64, 10, 1))
    assert shape_findings(img, FitsInfo(file="p", ok=True, shape=(64, 64, 10, 1))) == []
    assert shape_findings(img, FitsInfo(file="p", ok=True, shape=(64, 64, 1, 1))) == []
    assert [f.code for f in shape_findings(img, FitsInfo(file="p", ok=True, shape=(32, 64, 10, 1)))] == ["F010"]
    assert [f.code for f in shape_findings(img, FitsInfo(file="p", ok=True, shape=(64, 64, 5, 1)))] == ["F010"]


def test_statistics_helpers():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, 200000)
    assert robust_rms(x) == pytest.approx(2.0, rel=0.01)
    plane = rng.normal(0, 1.0, (100, 100))
    plane[40:60, 40:60] += 100.0  # a bright source inside the mask
    mask = np.zeros_like(plane)
    mask[40:60, 40:60] = 1
    plane[0, :5] = np.nan
    rms, n = outside_mask_rms(plane, mask)
    assert rms == pytest.approx(1.0, rel=0.03) and n == 10000 - 400 - 5


def test_impbcor_and_numpy_recovery_agree(tmp_path):
    from tests.validate.builders import NOISE, write_image_set
    truth = write_image_set(tmp_path, "member.uid___A001_X1_X2.X_sci.spw1.cube.I", nchan=2, seed=9)
    f = truth["files"]
    a = measure(str(tmp_path / f["pbcor"]), str(tmp_path / f["pb"]), str(tmp_path / f["mask"]),
                str(tmp_path), recovery="impbcor")
    b = measure(str(tmp_path / f["pbcor"]), str(tmp_path / f["pb"]), str(tmp_path / f["mask"]),
                str(tmp_path), recovery="numpy")
    assert a.error is None and b.error is None
    assert a.method == "impbcor-m" and b.method == "numpy-pbcor*pb"
    assert a.rms == pytest.approx(b.rms, rel=1e-5)
    assert a.peak_uncorrected == pytest.approx(b.peak_uncorrected, rel=1e-5)
    assert abs(a.rms - NOISE) / NOISE < 0.1
    c = measure(str(tmp_path / f["pbcor"]), None, None, str(tmp_path))
    assert c.method == "direct" and c.rms > a.rms  # pbcor noise is larger away from the centre
