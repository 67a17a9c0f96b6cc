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
_KINDS = (".image", ".pb", ".psf", ".residual", ".model", ".sumwt", ".weight")
#: Every output tclean may have left for an image name (single and multi-term).
_TCLEAN_OUTPUTS = _KINDS + (".mask", ".image.pbcor", ".alpha", ".alpha.error") + tuple(
    k + f".tt{t}" for k in _KINDS for t in range(3)) + tuple(f".image.tt{t}.pbcor" for t in range(3))


def product_base(spec: S.SynthSpec, field: str, ttype: str, spws: list[int], imtype: str,
                 stokes: str, selfcal: bool = False) -> str:
    """``member.<MOUS>.<field>_<type>.spw<ids>.<imtype>.<stokes>[.selfcal]``."""
    from .products import product_base as _pb

    return _pb(spec, field, ttype, spws, imtype, stokes, selfcal)


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


def _export(casa_image: str, dst: str, tmpdir: str) -> str:
    """One tclean output as a delivered product: FITS, gzipped FITS or (name
    without ``.fits``) the CASA image folder itself."""
    if not dst.endswith((".fits", ".fits.gz")):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(casa_image, dst)
        return dst
    tmp = os.path.join(tmpdir, os.path.basename(dst).replace(".gz", "")) if dst.endswith(".gz") else dst
    casatasks.exportfits(imagename=casa_image, fitsimage=tmp, velocity=False, optical=False,
                         bitpix=-32, dropstokes=False, stokeslast=True, overwrite=True)
    if dst.endswith(".gz"):
        gzip_file(tmp, dst)
        os.remove(tmp)
    return dst


def make_image(vis: list[str], workdir: str, productdir: str, truthdir: str, base: str,
               field: str, spws: list[int], specmode: str, stokes: str,
               cont_exclude=None, width=None, niter=300, threshold="0mJy",
               savemodel: str = "none", nmajor: int = 2, imsize: int = IMSIZE,
               files: dict[str, str] | None = None, nterms: int = 1) -> dict:
    """tclean one product and export its layers (``files``: layer -> name,
    default pbcor/pb/mask of the Cycle 5+ naming) and, into ``truthdir``, the
    primary-beam-uncorrected image of each pbcor layer."""
    from .products import CASA_SUFFIX

    if files is None:
        files = {"pbcor": base + ".pbcor.fits", "pb": base + ".pb.fits.gz", "mask": base + ".mask.fits.gz"}
    name = os.path.join(workdir, base.replace("member.", ""))
    for ext in _TCLEAN_OUTPUTS:
        shutil.rmtree(name + ext, ignore_errors=True)
    kw = {}
    if specmode == "cube":
        kw.update(start=0, width=width or 2, nchan=-1, outframe="TOPO")
    if nterms > 1:
        kw.update(deconvolver="mtmfs", nterms=nterms)
    else:
        kw.update(deconvolver="hogbom")
    c = imsize // 2
    casatasks.tclean(vis=vis, imagename=name, field=field, spw=_spwsel(spws, cont_exclude),
                     specmode=specmode, stokes=stokes, imsize=[imsize, imsize], cell=CELL,
                     gridder="standard", weighting="briggs", robust=0.5,
                     niter=niter, cycleniter=niter, nmajor=nmajor, threshold=threshold,
                     gain=0.1, pblimit=0.2,
                     usemask="user", mask=f"circle[[{c}pix,{c}pix],4arcsec]", pbcor=True,
                     restoringbeam="common" if specmode == "cube" else [], savemodel=savemodel,
                     interactive=False, parallel=False, **kw)
    suffix = CASA_SUFFIX[nterms]
    if not os.path.isdir(name + suffix["pbcor"]):
        raise RuntimeError(f"tclean did not make {name}{suffix['pbcor']}")
    out = {"files": {}, "uncorrected": {}, "noise": {}, "center": {}}
    for layer, fname in files.items():
        out["files"][layer] = _export(name + suffix[layer], os.path.join(productdir, fname), workdir)
    for layer in ("pbcor", "tt1"):
        if layer not in files:
            continue
        unc_suffix = suffix["image"] if layer == "pbcor" else suffix["image_tt1"]
        stem = files[layer][: -len(".pbcor.fits")] if files[layer].endswith(".pbcor.fits") else files[layer]
        unc = os.path.join(truthdir, stem.replace(".image", "") + ".fits")
        casatasks.exportfits(imagename=name + unc_suffix, fitsimage=unc, velocity=False, optical=False,
                             bitpix=-32, dropstokes=False, stokeslast=True, overwrite=True)
        out["uncorrected"][layer] = unc
        out["noise"][layer] = _noise(name + unc_suffix, name + suffix["pb"])
        out["center"][layer] = _center_value(name + suffix[layer])
    # the single-term keys callers have always used
    out["pbcor"] = out["files"]["pbcor"]
    out["pb"] = out["files"]["pb"]
    out["mask"] = out["files"].get("mask")
    out["uncorrected_fits"] = out["uncorrected"]["pbcor"]
    out["noise_jy_per_beam"] = out["noise"]["pbcor"]
    out["center_pbcor_jy_per_beam"] = out["center"]["pbcor"]
    out["specmode"] = specmode
    out["stokes"] = stokes
    out["spws"] = spws
    out["field"] = field
    out["casa_image"] = name
    return out


def build_images(spec: S.SynthSpec, vislist: list[str], imgwork: str, productdir: str, truthdir: str,
                 to_final, script_dir: str | None = None) -> dict:
    """Every product of the delivery (named as its era names them) and its
    truth entry, keyed by the pbcor file name; with ``script_dir`` a
    ``scriptForImaging.py`` that makes them from ``calibrated.ms``."""
    from . import shape as SH
    from .products import image_jobs, nterms, product_files

    out = {}
    script_jobs = []
    for field, ttype, spws, imtype, stokes, excl in image_jobs(spec):
        files = product_files(spec, field, ttype, spws, imtype, stokes)
        base = files["pbcor"].split(".pbcor.fits")[0].replace(".image", "").replace(".tt0", "")
        cal = ttype != "sci"
        niter = 20 if cal else (600 if imtype == "cube" else 300)
        thr = "5mJy" if imtype == "cube" else "0mJy"
        nt = nterms(spec, imtype)
        r = make_image(vislist, imgwork, productdir, truthdir, base, field, spws, imtype,
                       stokes, cont_exclude=excl, niter=niter, threshold=thr,
                       nmajor=1 if cal else 2, imsize=64 if cal else IMSIZE,
                       savemodel="modelcolumn" if (spec.selfcal and imtype == "cont") else "none",
                       files=files, nterms=nt)
        for layer in ("pbcor", "tt1"):
            if layer not in files:
                continue
            entry = {"uncorrected_fits": to_final(r["uncorrected"][layer]), "pb": files["pb"],
                     "mask": files.get("mask"), "noise_jy_per_beam": r["noise"][layer],
                     "center_pbcor_jy_per_beam": r["center"][layer], "field": field, "type": ttype,
                     "spws": spws, "imtype": imtype, "stokes": stokes, "selfcal": False}
            if nt > 1:
                entry.update(taylor_term=0 if layer == "pbcor" else 1, nterms=nt,
                             alpha=files.get("alpha"), alpha_error=files.get("alpha_error"))
            out[files[layer]] = entry
        c = (64 if cal else IMSIZE) // 2
        script_jobs.append({"base": base, "field": field, "spw": _spwsel(spws, excl),
                            "specmode": imtype, "stokes": stokes, "imsize": 2 * c, "cell": CELL,
                            "niter": niter, "threshold": thr, "mask": f"circle[[{c}pix,{c}pix],4arcsec]"})
    if script_dir is not None:
        from .manual_scripts import imaging_script
        with open(os.path.join(script_dir, SH.file_names(spec)["imaging"]), "w") as fh:
            fh.write(imaging_script(spec, script_jobs))
    return out
