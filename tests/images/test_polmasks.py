"""qa_polmaps masks (issue 19): primary beam, Stokes I for P/I, separate Q/U noise, what was
masked and why; special files and non-FITS inputs are input errors, never opened."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from almaqa_casa.errors import InputError
from almaqa_casa.images.polmaps import make_polmaps
from almaqa_casa.images.testdata import gaussian_pb, make_image, to_fits
from almaqa_casa.safeio import SpecialFileError

N = 64
SIG_I, SIG_Q, SIG_U = 0.01, 0.005, 0.015   # Jy/beam: Q and U noise differ by 3
FRAC, CHI = 0.08, 30.0
HOT = [(5, 9), (50, 12), (40, 55)]           # pixels with P > I on purpose (I = 6 sigma_I)


def _iquv(seed: int = 3) -> np.ndarray:
    """(N, N, 1, 4) uncorrected IQUV: an 8 % polarized source, unequal Q/U noise, 3 hot pixels."""
    rng = np.random.default_rng(seed)
    x = np.arange(N)[:, None] - N // 2
    y = np.arange(N)[None, :] - N // 2
    i = np.exp(-4 * np.log(2) * (x ** 2 + y ** 2) / 10.0 ** 2)
    out = np.empty((N, N, 1, 4), np.float32)
    out[..., 0, 0] = i + rng.normal(0, SIG_I, (N, N))
    out[..., 0, 1] = FRAC * i * np.cos(np.radians(2 * CHI)) + rng.normal(0, SIG_Q, (N, N))
    out[..., 0, 2] = FRAC * i * np.sin(np.radians(2 * CHI)) + rng.normal(0, SIG_U, (N, N))
    out[..., 0, 3] = rng.normal(0, SIG_I, (N, N))
    for px in HOT:
        out[px[0], px[1], 0, :3] = (6 * SIG_I, 0.3, 0.3)
    return out


def _data(path) -> np.ndarray:
    with fits.open(path) as h:
        return np.asarray(h[0].data, dtype=np.float64).T[..., 0, 0]


def _member(tmp_path: Path, unc: np.ndarray, pb: np.ndarray | None, name: str = "cont") -> Path:
    """A member's product/ folder with <stem>.IQUV.pbcor.fits (= unc / pb) and its gzipped pb."""
    prod = tmp_path / "2023.1.00001.S" / "science_goal.uid___A001_X1_X1" / "group.uid___A001_X1_X2" \
        / "member.uid___A001_X1_X3" / "product"
    prod.mkdir(parents=True, exist_ok=True)
    for sub in ("calibration", "log", "qa", "script"):
        (prod.parent / sub).mkdir(exist_ok=True)
    stem = f"member.uid___A001_X1_X3.T_sci.spw16_18.{name}"
    cor = unc if pb is None else unc / pb[:, :, None, None]
    im = make_image(tmp_path / f"{name}.im", (N, N, 1, 4), data=cor.astype(np.float32),
                    beam=(1.0, 0.8, 20.0))
    to_fits(im, prod / f"{stem}.IQUV.pbcor.fits")
    if pb is not None:
        pbim = make_image(tmp_path / f"{name}.pb.im", (N, N, 1, 1), stokes="I",
                          plane=lambda c, s: pb, unit="")
        to_fits(pbim, prod / f"{stem}.IQUV.pb.fits.gz", gz=True)
    return prod / f"{stem}.IQUV.pbcor.fits"


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """A pbcor-named IQUV image with no primary beam delivered next to it (noise uniform)."""
    d = tmp_path_factory.mktemp("flat")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        unc = _iquv()
        return {"file": _member(d, unc, None), "data": unc.astype(np.float64)[..., 0, :]}
    finally:
        os.chdir(cwd)


def test_separate_q_u_noise_debias_and_fraction(flat, tmp_path):
    e = make_polmaps(str(flat["file"]), str(tmp_path), fractional=True, debias=True)["inputs"][0]
    n = e["noise"]
    assert n["sigma_q"][0] == pytest.approx(SIG_Q, rel=0.1)
    assert n["sigma_u"][0] == pytest.approx(SIG_U, rel=0.1)
    sig_p = np.sqrt((n["sigma_q"][0] ** 2 + n["sigma_u"][0] ** 2) / 2)
    assert n["sigma"][0] == pytest.approx(sig_p, rel=1e-12)
    assert n["sigma_i"][0] == pytest.approx(SIG_I, rel=0.1)
    i, q, u = (flat["data"][..., k] for k in range(3))
    p2 = q ** 2 + u ** 2 - sig_p ** 2
    p_true = np.where(p2 >= 0, np.sqrt(np.clip(p2, 0, None)), np.nan)
    p = _data(e["outputs"]["P"])
    np.testing.assert_array_equal(np.isnan(p), np.isnan(p_true))
    np.testing.assert_allclose(p[~np.isnan(p)], p_true[~np.isnan(p_true)], rtol=1e-4, atol=1e-7)
    # P/I only where I >= 5 sigma_I, P defined and P/I <= 1
    pf = _data(e["outputs"]["PF"])
    thr = 5 * n["sigma_i"][0]
    assert e["fracthresh"]["value"] == [pytest.approx(thr)]
    ratio = p_true / i
    keep = (i >= thr) & ~np.isnan(p_true) & (ratio <= 1)
    np.testing.assert_array_equal(~np.isnan(pf), keep)
    np.testing.assert_allclose(pf[keep], ratio[keep], rtol=1e-4)
    assert 0 <= np.nanmin(pf) and np.nanmax(pf) <= 1
    assert abs(np.nanmedian(pf) - FRAC) < 0.02
    m = e["masked"]["PF"]
    assert m["above_one"] == len(HOT)  # the hot pixels, and only they
    assert sum(m.values()) == N * N - keep.sum() and m["stokes_i"] > 0 and m["debias"] > 0
    assert e["masked"]["A"]["pblimit"] == 0
    text = "\n".join(e["masking"])
    assert "no primary beam found next to the input" in text
    assert "P/I masked where Stokes I is below '5sigma' of the Stokes I noise" in text
    assert f"PF: {N * N - keep.sum()} of {N * N} pixels masked" in text
    # given separately for Q and U: the same sigma_P formula, used as given
    g = make_polmaps(str(flat["file"]), str(tmp_path / "g"), debias=True,
                     sigma="5mJy/beam,15mJy/beam")["inputs"][0]
    sg = np.sqrt((0.005 ** 2 + 0.015 ** 2) / 2)
    assert g["sigma"]["value"] == pytest.approx(sg)
    pg = _data(g["outputs"]["P"])
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(q ** 2 + u ** 2 - sg ** 2)
    np.testing.assert_allclose(pg[~np.isnan(pg)], ref[~np.isnan(pg)], rtol=1e-4, atol=1e-7)
    # a flux fracthresh, and none at all (then only I <= 0 and P/I > 1 are masked)
    f1 = make_polmaps(str(flat["file"]), str(tmp_path / "f1"), fractional=True,
                      fracthresh="0.2Jy/beam")["inputs"][0]
    pf1 = _data(f1["outputs"]["PF"])
    assert np.all(i[~np.isnan(pf1)] >= 0.2) and f1["fracthresh"]["value"] == pytest.approx(0.2)
    f0 = make_polmaps(str(flat["file"]), str(tmp_path / "f0"), fractional=True,
                      fracthresh="")["inputs"][0]
    pf0 = _data(f0["outputs"]["PF"])
    assert np.nanmax(pf0) <= 1 and np.all(i[~np.isnan(pf0)] > 0)
    assert f0["masked"]["PF"]["above_one"] > len(HOT)  # noise pixels with P > I


def test_primary_beam_mask_and_noise_that_follows_the_beam(tmp_path):
    unc = _iquv(seed=8)
    unc[tuple(np.array(HOT).T)] = unc[N // 2, N // 2 + 20]  # no hot pixels here
    pb = gaussian_pb(N, N, 52.0).astype(np.float32)
    f = _member(tmp_path, unc, pb)
    e = make_polmaps(str(f.parents[4]), str(tmp_path / "o"), polithresh="5sigma")["inputs"][0]
    assert e["pb"].endswith(".IQUV.pb.fits.gz") and e["pblimit"] == 0.2
    # noise measured on the uncorrected image: the true sigmas, not inflated by 1/pb
    assert e["noise"]["sigma_q"][0] == pytest.approx(SIG_Q, rel=0.1)
    assert e["noise"]["sigma_u"][0] == pytest.approx(SIG_U, rel=0.1)
    assert e["threshold"]["follows_pb"] is True
    q, u = unc[..., 0, 1] / pb, unc[..., 0, 2] / pb
    p = np.hypot(q, u)
    a = _data(e["outputs"]["A"])
    keep = (pb >= 0.2) & (p >= 5 * e["noise"]["sigma"][0] / pb)
    np.testing.assert_array_equal(~np.isnan(a), keep)
    assert keep.sum() > 20 and (pb < 0.2).sum() > 100
    pmap = _data(e["outputs"]["P"])
    assert np.all(np.isnan(pmap[pb < 0.2])) and not np.isnan(pmap[pb >= 0.2]).any()
    assert e["masked"]["P"]["pblimit"] == (pb < 0.2).sum()
    assert e["masked"]["A"]["polithresh"] == ((pb >= 0.2) & ~keep).sum()
    # a stricter primary-beam limit
    e5 = make_polmaps(str(f), str(tmp_path / "o5"), pblimit=0.5, fractional=True)["inputs"][0]
    for k in ("P", "A", "PF"):
        d = _data(e5["outputs"][k])
        assert not np.isfinite(d[pb < 0.5]).any(), k
        assert e5["masked"][k]["pblimit"] == (pb < 0.5).sum()
    assert "pixels where it is below pblimit=0.5 are masked in every product" in e5["masking"][0]
    with pytest.raises(InputError, match="pblimit"):
        make_polmaps(str(f), str(tmp_path / "bad"), pblimit=1.5)


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "almaqa_casa", "qa_polmaps", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_special_files_are_never_opened(flat, tmp_path):
    prod = flat["file"].parent
    fifo = prod / "member.uid___A001_X1_X3.T_sci.spw20.cont.IQUV.pbcor.fits"
    os.mkfifo(fifo)
    try:
        # a delivery holding a FIFO named like a product: a failed entry naming it (exit 1)
        r = _cli(["--imagename", str(prod.parents[3]), "--outdir", str(tmp_path / "o"), "--json"],
                 tmp_path)
        assert r.returncode == 1, r.stderr[-2000:]
        res = json.loads(r.stdout)
        by = {Path(e["input"]).name: e for e in res["inputs"]}
        assert by[fifo.name]["status"] == "failed"
        assert by[fifo.name]["error"] == (f"SpecialFileError: {fifo}: is a FIFO (named pipe), not "
                                          "a regular file; it is not read as data")
        assert by[flat["file"].name]["status"] == "ok"
        # the FIFO as the image: an input error, exit 2, naming it
        r = _cli(["--imagename", str(fifo), "--outdir", str(tmp_path / "o2")], tmp_path)
        assert r.returncode == 2 and f"{fifo}: is a FIFO" in r.stderr
        with pytest.raises(SpecialFileError):
            make_polmaps(str(fifo), str(tmp_path / "o3"))
    finally:
        fifo.unlink()


def test_fifo_as_the_primary_beam(flat, tmp_path):
    pbfifo = flat["file"].with_name(flat["file"].name.replace(".pbcor.fits", ".pb.fits.gz"))
    os.mkfifo(pbfifo)
    try:
        with pytest.raises(SpecialFileError, match=f"{pbfifo}: is a FIFO"):
            make_polmaps(str(flat["file"]), str(tmp_path))
    finally:
        pbfifo.unlink()


def test_not_fits_is_an_input_error(tmp_path):
    bad = tmp_path / "x.cont.IQUV.pbcor.fits"
    bad.write_text("SIMPLY not FITS\n")
    with pytest.raises(InputError, match=f"{bad}: not a FITS file") as exc:
        make_polmaps(str(bad), str(tmp_path / "o"))
    assert isinstance(exc.value, ValueError)
    assert not (tmp_path / "o").exists()
