"""Imaging products with tclean, exported to FITS with the archive's names.

The uncorrected ``.image`` of every product is exported as FITS into the
truth folder (what ``impbcor(mode='m')`` must recover), with its noise."""
from __future__ import annotations

import os
import shutil

import numpy as np

from . import spec as S
from ._casa import casatasks, casatools
from .archive import gzip_file

IMSIZE = 128
CELL = "0.6arcsec"


def product_base(spec: S.SynthSpec, field: str, ttype: str, spws: list[int], imtype: str,
                 stokes: str, selfcal: bool = False) -> str:
    """``member.<MOUS>.<field>_<type>.spw<ids>.<imtype>.<stokes>[.selfcal]``."""
    spwtok = "spw" + "_".join(str(s) for s in spws)
    base = f"member.{spec.mous}.{field}_{ttype}.{spwtok}.{imtype}.{stokes}"
    return base + (".selfcal" if selfcal else "")


def _spwsel(spws: list[int], cont_exclude: dict[int, tuple] | None) -> str:
    parts = []
    for s in spws:
        if cont_exclude and s in cont_exclude:
            lo, hi = cont_exclude[s]
            n = S.SPWS[s].nchan
            parts.append(f"{s}:0~{lo - 1};{hi + 1}~{n - 1}")
        else:
            parts.append(str(s))
    return ",".join(parts)


def _noise(img: str, pb: str) -> float:
    ia = casatools.image()
    ia.open(img)
    try:
        data = ia.getchunk(dropdeg=False)
        mask = ia.getchunk(getmask=True, dropdeg=False)
    finally:
        ia.close()
    ia.open(pb)
    try:
        pbv = ia.getchunk(dropdeg=False)
    finally:
        ia.close()
    nx, ny = data.shape[:2]
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx))
    r = np.hypot(xx - nx // 2, yy - ny // 2)
    sel = (r > 12)[:, :, None, None] & (pbv[..., :1, :] > 0.3 if pbv.shape[2] > 1 else pbv > 0.3) & mask
    vals = data[..., :1, :][sel[..., :1, :]] if data.shape[2] > 1 else data[sel]
    vals = vals[np.isfinite(vals)]
    if vals.size < 50:
        return float("nan")
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


def _center_value(img: str) -> list[float]:
    ia = casatools.image()
    ia.open(img)
    try:
        data = ia.getchunk(dropdeg=False)
    finally:
        ia.close()
    c = data[data.shape[0] // 2, data.shape[1] // 2]  # (nstokes, nchan)
    return [float(v) for v in np.nanmean(c, axis=1)]


def make_image(vis: list[str], workdir: str, productdir: str, truthdir: str, base: str,
               field: str, spws: list[int], specmode: str, stokes: str,
               cont_exclude=None, width=None, niter=300, threshold="0mJy",
               savemodel: str = "none", nmajor: int = 2, imsize: int = IMSIZE) -> dict:
    """tclean one product and export pbcor/pb/mask (+ the uncorrected image)."""
    name = os.path.join(workdir, base.replace("member.", ""))
    for ext in (".image", ".pb", ".mask", ".psf", ".residual", ".model", ".sumwt", ".image.pbcor",
                ".weight"):
        shutil.rmtree(name + ext, ignore_errors=True)
    kw = {}
    if specmode == "cube":
        kw.update(start=0, width=width or 2, nchan=-1, outframe="TOPO")
    c = imsize // 2
    casatasks.tclean(vis=vis, imagename=name, field=field, spw=_spwsel(spws, cont_exclude),
                     specmode=specmode, stokes=stokes, imsize=[imsize, imsize], cell=CELL,
                     gridder="standard", deconvolver="hogbom", weighting="briggs", robust=0.5,
                     niter=niter, cycleniter=niter, nmajor=nmajor, threshold=threshold,
                     gain=0.1, pblimit=0.2,
                     usemask="user", mask=f"circle[[{c}pix,{c}pix],4arcsec]", pbcor=True,
                     restoringbeam="common" if specmode == "cube" else [], savemodel=savemodel,
                     interactive=False, parallel=False, **kw)
    if not os.path.isdir(name + ".image.pbcor"):
        raise RuntimeError(f"tclean did not make {name}.image.pbcor")
    out = {}
    pbcor = os.path.join(productdir, base + ".pbcor.fits")
    casatasks.exportfits(imagename=name + ".image.pbcor", fitsimage=pbcor, velocity=False,
                         optical=False, bitpix=-32, dropstokes=False, stokeslast=True, overwrite=True)
    out["pbcor"] = pbcor
    for kind in ("pb", "mask"):
        tmp = name + f".{kind}.fits"
        casatasks.exportfits(imagename=name + "." + kind, fitsimage=tmp, velocity=False, optical=False,
                             bitpix=-32, dropstokes=False, stokeslast=True, overwrite=True)
        dst = os.path.join(productdir, base + f".{kind}.fits.gz")
        gzip_file(tmp, dst)
        os.remove(tmp)
        out[kind] = dst
    unc = os.path.join(truthdir, base + ".fits")
    casatasks.exportfits(imagename=name + ".image", fitsimage=unc, velocity=False, optical=False,
                         bitpix=-32, dropstokes=False, stokeslast=True, overwrite=True)
    out["uncorrected_fits"] = unc
    out["noise_jy_per_beam"] = _noise(name + ".image", name + ".pb")
    out["center_pbcor_jy_per_beam"] = _center_value(name + ".image.pbcor")
    out["specmode"] = specmode
    out["stokes"] = stokes
    out["spws"] = spws
    out["field"] = field
    out["casa_image"] = name
    return out
