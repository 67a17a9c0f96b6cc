"""Image figures through the impbcor recovery for both PB layouts ALMA delivers.

A Stokes-I cube with a same-shape ``pb.fits.gz`` (impbcor reads the PB as it
is) and a full-Stokes continuum image with a single-plane ``pb.fits.gz``
(degenerate Stokes axis: impbcor would abort the process on it as FITS, so
the PB adopts the image's coordinates first).  Both must give the figures of
the plain numpy pbcor × pb arithmetic, and the noise put in.
"""
from __future__ import annotations

import numpy as np
import pytest

import almaqa_casa  # noqa: F401  (offline CASA first)
from almaqa_casa.images.testdata import gaussian_pb, make_image, to_fits
from almaqa_casa.validate.figures import measure

N = 64
NOISE = 1e-3


def _write(tmp_path, stem, nchan, stokes, pb_planes):
    rng = np.random.default_rng(5)
    nst = len(stokes)
    pb2 = gaussian_pb(N, N, 50.0)
    pb2 = np.where(pb2 >= 0.2, pb2, np.nan).astype(np.float32)
    unc = rng.normal(0.0, NOISE, (N, N, nchan, nst)).astype(np.float32)
    unc[N // 2, N // 2, :, 0] = 0.05  # a source inside the mask
    pbcor = (unc / pb2[:, :, None, None]).astype(np.float32)
    mask = np.zeros((N, N, 1, 1), np.float32)
    mask[N // 2 - 4:N // 2 + 4, N // 2 - 4:N // 2 + 4] = 1.0
    pbshape = (N, N, nchan, 1) if pb_planes == "cube" else (N, N, 1, 1)
    pb = np.broadcast_to(pb2[:, :, None, None], pbshape)
    names = {}
    for kind, data, st, beam, unit in (("pbcor", pbcor, stokes, (1.0, 0.8, 30.0), "Jy/beam"),
                                       ("pb", pb, "I", None, ""), ("mask", mask, "I", None, "")):
        if kind == "mask" and nchan > 1:
            data = np.broadcast_to(mask, (N, N, nchan, 1))
        im = tmp_path / f"{kind}.im"
        make_image(im, data.shape, stokes=st, data=np.ascontiguousarray(data), beam=beam,
                   unit=unit)
        name = f"{stem}.{kind}.fits" + ("" if kind == "pbcor" else ".gz")
        to_fits(im, tmp_path / name, gz=kind != "pbcor")
        names[kind] = str(tmp_path / name)
    return names


@pytest.mark.parametrize("nchan,stokes,pb_planes", [(3, "I", "cube"), (1, "IQUV", "single")])
def test_impbcor_figures_equal_numpy_figures(tmp_path, monkeypatch, nchan, stokes, pb_planes):
    monkeypatch.chdir(tmp_path)
    f = _write(tmp_path, f"member.uid___A001_X1_X2.T_sci.spw16.x.{stokes}", nchan, stokes,
               pb_planes)
    a = measure(f["pbcor"], f["pb"], f["mask"], str(tmp_path), recovery="impbcor")
    b = measure(f["pbcor"], f["pb"], f["mask"], str(tmp_path), recovery="numpy")
    assert a.error is None and b.error is None
    assert a.method == "impbcor-m" and a.mask_used
    assert a.rms == pytest.approx(b.rms, rel=1e-6)
    assert a.peak_uncorrected == pytest.approx(b.peak_uncorrected, rel=1e-6)
    assert set(a.rms_per_stokes) == {str(s) for s in range(len(stokes))}
    for s, r in b.rms_per_stokes.items():
        assert a.rms_per_stokes[s] == pytest.approx(r, rel=1e-6)
    assert abs(a.rms - NOISE) / NOISE < 0.1
    assert a.peak_uncorrected == pytest.approx(0.05, rel=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".almaqa", "almaqa-"))]
