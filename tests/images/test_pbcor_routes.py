"""How recover_uncorrected puts the PB on the image grid: every route, one result.

Real CASA images and FITS files (ALMA layout: RA, Dec, Freq, Stokes); each
case checks the route taken and that the pixels, NaNs and mask equal those
of the general block-wise copy ('regrid') and the constructed truth.
"""
from __future__ import annotations

import numpy as np
import pytest

from almaqa_casa.images import pbcor as pbmod
from almaqa_casa.images.fitsio import casa_readable
from almaqa_casa.images.pbcor import ImageMismatchError, choose_route, grids_identical, recover_with_route
from almaqa_casa.images.testdata import gaussian_pb, make_image, to_fits

N, NCHAN = 40, 5
RNG = np.random.default_rng(11)
TRUTH = (RNG.normal(0.0, 1e-3, size=(N, N, NCHAN, 4)) + 0.02).astype(np.float32)
PB2 = gaussian_pb(N, N, fwhm_pix=30.0).astype(np.float32)
PB2_CUT = np.where(PB2 >= 0.2, PB2, np.nan).astype(np.float32)  # ALMA: NaN below pblimit
PB_CUBE = np.stack([PB2_CUT * (1.0 - 0.01 * c) for c in range(NCHAN)], axis=-1)
BEAMS = [(1.0 + 0.05 * c, 0.7, 10.0 + c) for c in range(NCHAN)]


def _read(path):
    from casatools import image
    ia = image()
    ia.open(str(path))
    try:
        return ia.getchunk(), ia.getchunk(getmask=True)
    finally:
        ia.done()


def _same(a, b):
    """Bitwise-equal pixels (NaN where NaN) and equal masks."""
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def _truth_check(got, truth):
    finite = np.isfinite(truth)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], truth[finite], rtol=1e-6,
                               atol=1e-6 * np.nanmax(np.abs(truth)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A Stokes-I cube with its same-shape PB cube, and an IQUV cube with a single-plane PB."""
    d = tmp_path_factory.mktemp("routes")
    unc_i = TRUTH[..., :1] * np.isfinite(PB_CUBE)[..., None]
    cor_i = np.where(np.isfinite(PB_CUBE)[..., None], TRUTH[..., :1] / PB_CUBE[..., None], np.nan)
    cor_q = np.where(np.isfinite(PB2_CUT)[:, :, None, None], TRUTH / PB2_CUT[:, :, None, None],
                     np.nan)
    f = {"unc_i": np.where(np.isfinite(cor_i), unc_i, np.nan),
         "unc_q": np.where(np.isfinite(cor_q), TRUTH, np.nan)}
    cube = make_image(d / "cube.im", (N, N, NCHAN, 1), stokes="I", data=cor_i.astype(np.float32),
                      beam=BEAMS)
    pbc = make_image(d / "pbcube.im", (N, N, NCHAN, 1), stokes="I",
                     data=PB_CUBE[..., None], beam=None, unit="")
    iquv = make_image(d / "iquv.im", (N, N, NCHAN, 4), stokes="IQUV",
                      data=cor_q.astype(np.float32), beam=BEAMS)
    pb1 = make_image(d / "pb1.im", (N, N, 1, 1), stokes="I", plane=lambda c, s: PB2_CUT,
                     beam=None, unit="")
    f.update({
        "cube_im": cube, "pbcube_im": pbc, "iquv_im": iquv, "pb1_im": pb1,
        "cube_fits": to_fits(cube, d / "x.cube.I.pbcor.fits"),
        "pbcube_gz": to_fits(pbc, d / "x.cube.I.pb.fits.gz", gz=True),
        "iquv_fits": to_fits(iquv, d / "x.cube.IQUV.pbcor.fits"),
        "pb1_gz": to_fits(pb1, d / "x.cube.IQUV.pb.fits.gz", gz=True),
    })
    return f


def _run(files, img, pb, tmp_path, route):
    out = tmp_path / f"{img}.{pb}.{route}.im"
    got, used = recover_with_route(files[img], files[pb], str(out), workdir=str(tmp_path),
                                   route=route)
    assert got == str(out)
    return _read(out), used


def test_identical_grids_take_the_direct_route(files, tmp_path):
    """ALMA cube + same-shape pb.fits.gz: impbcor reads the PB as it is; same pixels as regrid."""
    fast, used = _run(files, "cube_fits", "pbcube_gz", tmp_path, "auto")
    assert used == "direct"
    slow, used_slow = _run(files, "cube_fits", "pbcube_gz", tmp_path, "regrid")
    assert used_slow == "regrid"
    _same(fast, slow)
    _truth_check(fast[0], files["unc_i"])
    both_casa, used = _run(files, "cube_im", "pbcube_im", tmp_path, "auto")
    assert used == "direct"
    _same(both_casa, _run(files, "cube_im", "pbcube_im", tmp_path, "regrid")[0])
    _truth_check(both_casa[0], files["unc_i"])


def test_degenerate_fits_gz_pb_adopts_coordinates(files, tmp_path):
    """IQUV cube + single-plane pb.fits.gz (impbcor would abort on it as FITS)."""
    fast, used = _run(files, "iquv_fits", "pb1_gz", tmp_path, "auto")
    assert used == "adopt"
    slow, _ = _run(files, "iquv_fits", "pb1_gz", tmp_path, "regrid")
    _same(fast, slow)
    _truth_check(fast[0], files["unc_q"])
    with pytest.raises(ImageMismatchError, match="route 'direct' needs the image's shape"):
        _run(files, "iquv_fits", "pb1_gz", tmp_path, "direct")


def test_mixed_storage_adopts_coordinates(files, tmp_path):
    """CASA image vs FITS PB on the same grid: units differ (deg/rad), so no direct route."""
    fast, used = _run(files, "cube_im", "pbcube_gz", tmp_path, "auto")
    assert used == "adopt"
    slow, _ = _run(files, "cube_im", "pbcube_gz", tmp_path, "regrid")
    _same(fast, slow)
    _truth_check(fast[0], files["unc_i"])


def test_other_axis_order_takes_the_regrid_route(files, tmp_path):
    """A PB in CASA axis order (RA, Dec, Stokes, Freq) against an ALMA-order image."""
    pb = make_image(tmp_path / "pb_casa_order.im", (N, N, NCHAN, 1), stokes="I",
                    data=PB_CUBE[..., None], beam=None, unit="", order="casa")
    files = dict(files, pb_casa=pb)
    got, used = _run(files, "cube_fits", "pb_casa", tmp_path, "auto")
    assert used == "regrid"
    _truth_check(got[0], files["unc_i"])
    with pytest.raises(ImageMismatchError, match="route 'adopt' needs the image's axis order"):
        _run(files, "cube_fits", "pb_casa", tmp_path, "adopt")


def test_regrid_blocks_are_bounded_and_exact(files, tmp_path, monkeypatch):
    """Blocks of 2 planes (5 channels: 2 + 2 + 1) give the same PB as one block."""
    whole, _ = _run(files, "iquv_fits", "pb1_gz", tmp_path, "regrid")
    monkeypatch.setattr(pbmod, "CHUNK_BYTES", 2 * N * N * 4)
    out = tmp_path / "blocks.im"
    recover_with_route(files["iquv_fits"], files["pb1_gz"], str(out), route="regrid")
    _same(_read(out), whole)
    out2 = tmp_path / "blocks_cube.im"
    recover_with_route(files["cube_fits"], files["pbcube_gz"], str(out2), route="regrid")
    _truth_check(_read(out2)[0], files["unc_i"])


def test_choose_route_on_real_geometries(files, tmp_path):
    """The decision itself (pure), on geometries read from the files."""
    g = {}
    for k in ("cube_fits", "pbcube_gz", "iquv_fits", "pb1_gz", "cube_im"):
        with casa_readable(files[k], tmp_path) as p:
            g[k] = pbmod._geometry(p, k)
    assert grids_identical(g["cube_fits"], g["pbcube_gz"])
    assert choose_route(g["cube_fits"], g["pbcube_gz"], same_storage=True) == "direct"
    assert choose_route(g["cube_fits"], g["pbcube_gz"], same_storage=False) == "adopt"
    assert not grids_identical(g["iquv_fits"], g["pb1_gz"])
    assert choose_route(g["iquv_fits"], g["pb1_gz"], same_storage=True) == "adopt"
    assert not grids_identical(g["cube_im"], g["pbcube_gz"])  # deg vs rad
    # a sub-tolerance sky offset: still compatible, but not identical → no direct route
    shifted = dict(g["pbcube_gz"], crval=g["pbcube_gz"]["crval"] + 1e-8 * abs(g["pbcube_gz"]["cdelt"]))
    pbmod.check_pb_compatible(g["cube_fits"], shifted, "img", "pb")
    assert not grids_identical(g["cube_fits"], shifted)
    assert choose_route(g["cube_fits"], shifted, same_storage=True) == "adopt"
    spec = dict(g["pbcube_gz"], spectral=dict(g["pbcube_gz"]["spectral"], cdelt=2e6))
    assert choose_route(g["cube_fits"], spec, same_storage=True) == "adopt"
    order = dict(g["pbcube_gz"], kinds=["direction", "direction", "stokes", "spectral"])
    assert choose_route(g["cube_fits"], order, same_storage=True) == "regrid"


def test_bad_route_name(files, tmp_path):
    with pytest.raises(ValueError, match="route must be"):
        recover_with_route(files["cube_fits"], files["pbcube_gz"], str(tmp_path / "o.im"),
                           route="fast")
