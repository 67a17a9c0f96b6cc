"""Recover the primary-beam *uncorrected* image from a delivered pbcor image.

ALMA delivers ``*.pbcor.fits`` and the primary beam ``*.pb.fits[.gz]`` but
not the flat-noise (uncorrected) image, which is what noise statistics and
the pipeline's polarization products use.  It is exactly ``pbcor × pb``;
:func:`recover_uncorrected` computes it with CASA's own ``impbcor``
(``mode='m'``), so masks, beams (also per-plane), brightness unit and history
are carried the CASA way, after checking that the two images fit together.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from .fitsio import casa_readable, image_format, temp_workdir

__all__ = ["recover_uncorrected", "check_pb_compatible", "ImageMismatchError", "EXPORTFITS_KW"]

#: exportfits settings used for every FITS the package writes (as the ALMA pipeline exports).
EXPORTFITS_KW = dict(
    velocity=False, optical=False, bitpix=-32, minpix=0, maxpix=-1,
    overwrite=True, dropstokes=False, stokeslast=True, history=True, dropdeg=False,
)


class ImageMismatchError(ValueError):
    """The image and its primary beam do not share a grid."""


def _geometry(path: str, label: str) -> dict:
    """Shape and direction coordinate of an image CASA can open (I/O only)."""
    from casatools import image, quanta

    ia = image()
    try:
        ia.open(path)
    except Exception as exc:  # casatools raises RuntimeError
        raise ValueError(f"{label}: cannot open as an image ({exc})") from exc
    try:
        shape = [int(n) for n in ia.shape()]
        cs = ia.coordsys()
        try:
            found = cs.findcoordinate("direction")
            if not found["return"]:
                raise ValueError(f"{label}: image has no direction coordinate")
            pix = [int(a) for a in found["pixel"]]
            rec = cs.torecord()
            dkey = next(k for k in rec if k.startswith("direction"))
            d = rec[dkey]
            qa = quanta()
            to_rad = np.array([qa.convert(qa.quantity(1.0, str(u)), "rad")["value"]
                               for u in d["units"]])
            def _axis(kind: str) -> int | None:
                f = cs.findcoordinate(kind)
                return int(f["pixel"][0]) if f["return"] and len(f["pixel"]) else None

            geo = {
                "spectral_axis": _axis("spectral"),
                "stokes_axis": _axis("stokes"),
                "shape": shape,
                "dir_axes": pix,
                "crval": np.asarray(d["crval"], float) * to_rad,
                "cdelt": np.asarray(d["cdelt"], float) * to_rad,
                "crpix": np.asarray(d["crpix"], float),
                "projection": str(d.get("projection", "")),
                "system": str(d.get("system", "")),
            }
        finally:
            cs.done()
    finally:
        ia.done()
    return geo


def check_pb_compatible(img: dict, pb: dict, img_name: str, pb_name: str) -> None:
    """Raise :class:`ImageMismatchError` unless ``pb`` can multiply ``img``.

    Same rules as CASA's ``impbcor``: identical direction grids, and the PB's
    other axes either equal to the image's or degenerate (a 2-D PB, or one
    with single-channel/single-Stokes axes, is extended over the image).
    Pure: works on the dictionaries returned by ``_geometry``.
    """
    if list(img["dir_axes"]) != [0, 1] or list(pb["dir_axes"]) != [0, 1]:
        raise ImageMismatchError(
            f"{pb_name} / {img_name}: the sky axes must be the first two axes")
    ishape = [img["shape"][a] for a in img["dir_axes"]]
    pshape = [pb["shape"][a] for a in pb["dir_axes"]]
    if ishape != pshape:
        raise ImageMismatchError(
            f"{pb_name}: primary-beam sky plane {pshape} differs from the image "
            f"{img_name} sky plane {ishape}")
    for kind in ("spectral", "stokes"):
        pa, ia_ = pb[f"{kind}_axis"], img[f"{kind}_axis"]
        n_pb = pb["shape"][pa] if pa is not None else 1
        n_img = img["shape"][ia_] if ia_ is not None else 1
        if n_pb not in (1, n_img):
            raise ImageMismatchError(
                f"{pb_name}: primary-beam shape {pb['shape']} does not fit image "
                f"{img_name} shape {img['shape']} ({kind} axis: {n_pb} vs {n_img})")
    n_other = [n for i, n in enumerate(pb["shape"])
               if i not in (0, 1, pb["spectral_axis"], pb["stokes_axis"])]
    if any(n != 1 for n in n_other):
        raise ImageMismatchError(
            f"{pb_name}: primary-beam shape {pb['shape']} has unexpected non-degenerate axes")
    tol = 1e-6 * np.abs(img["cdelt"]).max()
    if (not np.allclose(img["cdelt"], pb["cdelt"], rtol=1e-6, atol=0)
            or not np.allclose(img["crpix"] - pb["crpix"], 0, atol=1e-4)
            or not np.allclose(img["crval"], pb["crval"], rtol=0, atol=tol)):
        raise ImageMismatchError(
            f"{pb_name}: direction coordinates differ from image {img_name} "
            f"(crval {pb['crval']} vs {img['crval']}, cdelt {pb['cdelt']} vs "
            f"{img['cdelt']}, crpix {pb['crpix']} vs {img['crpix']})")
    if img["projection"] and pb["projection"] and img["projection"] != pb["projection"]:
        raise ImageMismatchError(
            f"{pb_name}: projection {pb['projection']} differs from image "
            f"{img_name} projection {img['projection']}")


def _conform_pb(pb_path: str, img_path: str, gi: dict, gp: dict, out: str) -> None:
    """Write the PB on the image's exact grid (shape and coordinate system).

    casacore's ``impbcor`` aborts the process on some degenerate-axis PBs
    (``ExtendSpecifier`` error), refuses a single-Stokes PB cube against an
    IQUV cube and compares direction coordinates to 1e-11, which a CASA/FITS
    round trip can miss.  A PB copied plane by plane onto the image's
    coordinate system avoids all three; memory is one sky plane.
    """
    from casatools import image

    ia_img, ia_pb, ia_out = image(), image(), image()
    ia_img.open(img_path)
    try:
        csys = ia_img.coordsys()
        rec = csys.torecord()
        csys.done()
    finally:
        ia_img.done()
    shape = gi["shape"]
    ia_out.fromshape(outfile=out, shape=shape, csys=rec, overwrite=True)
    ia_pb.open(pb_path)
    try:
        nd = len(shape)
        sa_i, ka_i = gi["spectral_axis"], gi["stokes_axis"]
        sa_p, ka_p = gp["spectral_axis"], gp["stokes_axis"]
        nchan = shape[sa_i] if sa_i is not None else 1
        nstok = shape[ka_i] if ka_i is not None else 1
        pb_nchan = gp["shape"][sa_p] if sa_p is not None else 1
        pb_nstok = gp["shape"][ka_p] if ka_p is not None else 1
        cache: dict[tuple[int, int], np.ndarray] = {}
        for c in range(nchan):
            for k in range(nstok):
                key = (c if pb_nchan > 1 else 0, k if pb_nstok > 1 else 0)
                if key not in cache:
                    cache.clear()
                    blc = [0] * len(gp["shape"])
                    trc = [n - 1 for n in gp["shape"]]
                    for ax, v in ((sa_p, key[0]), (ka_p, key[1])):
                        if ax is not None:
                            blc[ax] = trc[ax] = v
                    plane = ia_pb.getchunk(blc=blc, trc=trc, dropdeg=False)
                    plane = plane.reshape(plane.shape[0], plane.shape[1])
                    cache[key] = plane.astype(np.float32)
                blc_o = [0] * nd
                if sa_i is not None:
                    blc_o[sa_i] = c
                if ka_i is not None:
                    blc_o[ka_i] = k
                chunk = cache[key].reshape(cache[key].shape + (1,) * (nd - 2))
                ia_out.putchunk(pixels=chunk, blc=blc_o)
    finally:
        ia_pb.done()
        ia_out.done()


def recover_uncorrected(pbcor: str, pb: str, outfile: str, overwrite: bool = False,
                        workdir: str | None = None) -> str:
    """Write the primary-beam uncorrected image ``pbcor × pb``.

    Parameters
    ----------
    pbcor
        Primary-beam corrected image: FITS, gzipped FITS or CASA image.
    pb
        Its primary beam, same kinds accepted; 2-D or with degenerate
        spectral/Stokes axes is fine.
    outfile
        Output; FITS (written with ``exportfits``) if the name ends in
        ``.fits``, otherwise a CASA image.  Written atomically.
    overwrite
        Replace an existing ``outfile``.
    workdir
        Folder for temporaries (default: next to ``outfile``).

    Returns
    -------
    str
        ``outfile``.

    Raises
    ------
    FileNotFoundError, ValueError
        Unreadable input (the message names the file), or the PB does not fit
        the image (:class:`ImageMismatchError`).
    FileExistsError
        ``outfile`` exists and ``overwrite`` is False.
    """
    from casatasks import exportfits, impbcor

    outfile = str(outfile)
    out = Path(outfile)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{outfile} exists (use overwrite=True to replace it)")
    for name, label in ((pbcor, "pbcor image"), (pb, "primary beam")):
        try:
            image_format(name)
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"{label} {exc}") from exc
    to_fits = outfile.lower().endswith(".fits")
    wd = workdir if workdir is not None else (out.parent if str(out.parent) else ".")
    with temp_workdir(wd, prefix=".almaqa-pbcor-") as tmp, \
            casa_readable(pbcor, tmp) as img_path, casa_readable(pb, tmp) as pb_path:
        gi = _geometry(img_path, str(pbcor))
        gp = _geometry(pb_path, str(pb))
        check_pb_compatible(gi, gp, str(pbcor), str(pb))
        with atomic_output(out, overwrite=overwrite) as final_tmp:
            target = tmp / "uncorrected.im" if to_fits else final_tmp
            pb_grid = str(tmp / "pb_on_image_grid.im")
            _conform_pb(pb_path, img_path, gi, gp, pb_grid)
            try:
                impbcor(imagename=img_path, pbimage=pb_grid, outfile=str(target),
                        mode="m", overwrite=True)
            except Exception as exc:
                raise ImageMismatchError(
                    f"impbcor(mode='m') of {pbcor} by {pb} failed: {exc}") from exc
            if not Path(target).exists():
                raise RuntimeError(
                    f"impbcor(mode='m') of {pbcor} by {pb} wrote nothing (see the CASA log)")
            if to_fits:
                exportfits(imagename=str(target), fitsimage=str(final_tmp), **EXPORTFITS_KW)
    return outfile
