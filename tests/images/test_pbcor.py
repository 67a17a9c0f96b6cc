"""recover_uncorrected: pbcor × pb with impbcor(mode='m'), checked against a constructed truth."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from almaqa_casa.images.fitsio import casa_readable, image_format, read_beams, read_header
from almaqa_casa.images.pbcor import ImageMismatchError, recover_uncorrected
from almaqa_casa.images.testdata import gaussian_pb, make_image, to_fits

N, NCHAN = 48, 3
RNG = np.random.default_rng(7)
TRUTH = (RNG.normal(0.0, 1e-3, size=(N, N, NCHAN, 4)) + 0.01).astype(np.float32)
PB = gaussian_pb(N, N, fwhm_pix=40.0).astype(np.float32)
BEAMS = [(1.0 + 0.1 * c, 0.7, 20.0 + c) for c in range(NCHAN)]


def _fits_data(path):
    """Data in numpy order (x, y, chan, stokes) like the CASA arrays."""
    with fits.open(path) as h:
        return np.asarray(h[0].data, dtype=np.float64).T


@pytest.fixture
def truth_files(tmp_path):
    """Uncorrected truth, its pb (2-D-like, degenerate axes) and pbcor = truth / pb."""
    unc = make_image(tmp_path / "unc.im", (N, N, NCHAN, 4), data=TRUTH, beam=BEAMS,
                     history=["made by test_pbcor"])
    pbim = make_image(tmp_path / "pb.im", (N, N, 1, 1), stokes="I",
                      plane=lambda c, s: PB, beam=(1.0, 0.7, 20.0), unit="")
    corr = make_image(tmp_path / "cor.im", (N, N, NCHAN, 4),
                      data=TRUTH / PB[:, :, None, None], beam=BEAMS,
                      history=["made by test_pbcor"])
    files = {
        "unc_im": unc, "pb_im": pbim, "cor_im": corr,
        "cor_fits": to_fits(corr, tmp_path / "x.cube.IQUV.pbcor.fits"),
        "pb_fits": to_fits(pbim, tmp_path / "x.cube.IQUV.pb.fits"),
        "pb_gz": to_fits(pbim, tmp_path / "x.cube.IQUV.pb.fits.gz", gz=True),
        "cor_gz": to_fits(corr, tmp_path / "x.cube.IQUV.pbcor2.fits.gz", gz=True),
    }
    return files


@pytest.mark.parametrize("img_key,pb_key", [
    ("cor_fits", "pb_gz"), ("cor_fits", "pb_fits"), ("cor_im", "pb_im"), ("cor_gz", "pb_gz"),
])
def test_recovers_truth(truth_files, tmp_path, img_key, pb_key):
    out = tmp_path / f"unc_{img_key}_{pb_key}.fits"
    res = recover_uncorrected(truth_files[img_key], truth_files[pb_key], str(out))
    assert res == str(out) and image_format(out) == "fits"
    got = _fits_data(out)
    assert got.shape == TRUTH.shape
    np.testing.assert_allclose(got, TRUTH, rtol=1e-6, atol=1e-6 * np.abs(TRUTH).max())
    hdr = read_header(out)
    assert hdr["BUNIT"].strip().lower() == "jy/beam"
    assert hdr["CTYPE3"].startswith("FREQ") and hdr["CTYPE4"].startswith("STOKES")
    beams = read_beams(out)
    assert beams["kind"] == "multi"
    bm = {(c, p): b for c, p, b in zip(beams["chan"], beams["pol"], beams["bmaj"])}
    for c in range(NCHAN):
        for p in range(4):
            assert bm[(c, p)] == pytest.approx(BEAMS[c][0], rel=1e-6)
    hist = "\n".join(str(x) for x in hdr.get("HISTORY", []))
    assert "impbcor" in hist and "made by test_pbcor" in hist
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or p.name.startswith(".almaqa")]


def test_casa_image_output(truth_files, tmp_path):
    from casatools import image
    out = recover_uncorrected(truth_files["cor_fits"], truth_files["pb_gz"], str(tmp_path / "unc_out.im"))
    assert image_format(out) == "casa"
    ia = image()
    ia.open(out)
    try:
        np.testing.assert_allclose(ia.getchunk(), TRUTH, rtol=1e-6, atol=1e-9)
        assert ia.restoringbeam(channel=2, polarization=0)["major"]["value"] == pytest.approx(1.2)
    finally:
        ia.done()


def test_overwrite_and_existing(truth_files, tmp_path):
    out = tmp_path / "o.fits"
    recover_uncorrected(truth_files["cor_fits"], truth_files["pb_fits"], str(out))
    with pytest.raises(FileExistsError, match="o.fits"):
        recover_uncorrected(truth_files["cor_fits"], truth_files["pb_fits"], str(out))
    recover_uncorrected(truth_files["cor_fits"], truth_files["pb_fits"], str(out), overwrite=True)
    np.testing.assert_allclose(_fits_data(out), TRUTH, rtol=1e-6, atol=1e-9)


def test_shape_mismatch_names_files(truth_files, tmp_path):
    small = make_image(tmp_path / "small_pb.im", (N // 2, N // 2, 1, 1), stokes="I",
                       plane=lambda c, s: np.ones((N // 2, N // 2)), unit="")
    with pytest.raises(ImageMismatchError, match="small_pb.im"):
        recover_uncorrected(truth_files["cor_fits"], small, str(tmp_path / "bad.fits"))
    cube_pb = make_image(tmp_path / "cube_pb.im", (N, N, 2, 1), stokes="I",
                         plane=lambda c, s: PB, unit="")
    with pytest.raises(ImageMismatchError, match="cube_pb.im"):
        recover_uncorrected(truth_files["cor_fits"], cube_pb, str(tmp_path / "bad.fits"))
    assert not (tmp_path / "bad.fits").exists()


def test_direction_mismatch(truth_files, tmp_path):
    shifted = make_image(tmp_path / "shift_pb.im", (N, N, 1, 1), stokes="I",
                         plane=lambda c, s: PB, unit="", ref_deg=(150.01, -30.0))
    with pytest.raises(ImageMismatchError, match="direction coordinates"):
        recover_uncorrected(truth_files["cor_fits"], shifted, str(tmp_path / "bad.fits"))


def test_unreadable_inputs(truth_files, tmp_path):
    junk = tmp_path / "junk.pb.fits"
    junk.write_text("not a fits file at all")
    with pytest.raises(ValueError, match="junk.pb.fits"):
        recover_uncorrected(truth_files["cor_fits"], str(junk), str(tmp_path / "bad.fits"))
    with pytest.raises(FileNotFoundError, match="missing.pb.fits"):
        recover_uncorrected(truth_files["cor_fits"], str(tmp_path / "missing.pb.fits"),
                            str(tmp_path / "bad.fits"))
    badgz = tmp_path / "trunc.pb.fits.gz"
    badgz.write_bytes(open(truth_files["pb_gz"], "rb").read()[:200])
    with pytest.raises(ValueError, match="trunc.pb.fits.gz"):
        recover_uncorrected(truth_files["cor_fits"], str(badgz), str(tmp_path / "bad.fits"))


def test_casa_readable_gz(truth_files):
    with casa_readable(truth_files["pb_gz"]) as p:
        assert image_format(p) == "fits"
        tmpfile = p
    import os
    assert not os.path.exists(tmpfile)
    with casa_readable(truth_files["pb_fits"]) as p:
        assert p == truth_files["pb_fits"]
