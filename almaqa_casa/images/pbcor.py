"""Recover the primary-beam *uncorrected* image from a delivered pbcor image.

ALMA delivers ``*.pbcor.fits`` and the primary beam ``*.pb.fits[.gz]`` but
not the flat-noise (uncorrected) image, which is what noise statistics and
the pipeline's polarization products use.  It is exactly ``pbcor × pb``;
:func:`recover_uncorrected` computes it with CASA's own ``impbcor``
(``mode='m'``), so masks, beams (also per-plane), brightness unit and history
are carried the CASA way, after checking that the two images fit together.

``impbcor`` is particular about its PB (it aborts the process on a FITS PB
with degenerate axes — casacore cannot extend its mask — and compares
coordinates strictly), so the PB is put
on the image's grid first, the cheapest way that is safe
(:func:`choose_route`): as it is when the grids are identical (the usual
ALMA case, no copy), a copy at its own size adopting the image's
coordinates, or, for other axis layouts, a block-wise copy onto the full
image grid.  Every route hands ``impbcor`` the same PB pixels, so the
output is the same.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import AlmaqaError
from .fitsio import casa_readable, image_format, temp_workdir

__all__ = [
    "EXPORTFITS_KW",
    "ROUTES",
    "ImageMismatchError",
    "check_pb_compatible",
    "choose_route",
    "grids_identical",
    "recover_uncorrected",
    "recover_with_route",
]

#: exportfits settings used for every FITS the package writes (as the ALMA pipeline exports).
EXPORTFITS_KW = dict(
    velocity=False, optical=False, bitpix=-32, minpix=0, maxpix=-1,
    overwrite=True, dropstokes=False, stokeslast=True, history=True, dropdeg=False,
)


class ImageMismatchError(AlmaqaError, ValueError):
    """The image and its primary beam do not share a grid."""


def _geometry(path: str, label: str) -> dict:
    """Shape, axis kinds and world coordinates of an image CASA can open (I/O only)."""
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

            kinds = ["other"] * len(shape)
            for a in pix:
                kinds[a] = "direction"
            spectral = None
            sa = _axis("spectral")
            if sa is not None:
                kinds[sa] = "spectral"
                skey = next(k for k in rec if k.startswith("spectral"))
                w = rec[skey].get("wcs", {})
                spectral = {k: float(w[k]) for k in ("crval", "cdelt", "crpix") if k in w}
                spectral["unit"] = str(rec[skey].get("unit", ""))
            ka = _axis("stokes")
            stokes = None
            if ka is not None:
                kinds[ka] = "stokes"
                stokes = [str(x) for x in cs.stokes()]
            geo = {
                "spectral_axis": sa,
                "stokes_axis": ka,
                "shape": shape,
                "kinds": kinds,
                "dir_axes": pix,
                "crval": np.asarray(d["crval"], float) * to_rad,
                "cdelt": np.asarray(d["cdelt"], float) * to_rad,
                "crpix": np.asarray(d["crpix"], float),
                "units": [str(u) for u in d["units"]],
                "projection": str(d.get("projection", "")),
                "system": str(d.get("system", "")),
                "spectral": spectral,
                "stokes": stokes,
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


#: Memory budget of one block in the regrid copy (bytes); blocks hold whole sky planes.
CHUNK_BYTES = 64 * 1024 * 1024

#: Conforming routes, fastest first (see :func:`choose_route`).
ROUTES = ("direct", "adopt", "regrid")


def grids_identical(img: dict, pb: dict) -> bool:
    """True if two ``_geometry`` dictionaries describe the same pixel grid.

    Same shape and axis order, same direction units, projection and frame,
    reference values/increments/pixels equal to 1e-9 (of a pixel for the
    sky), the same spectral axis and Stokes planes.  This is what lets
    ``impbcor`` take the primary beam as it is.  Pure.
    """
    if list(img["shape"]) != list(pb["shape"]) or img["kinds"] != pb["kinds"]:
        return False
    if (img["units"] != pb["units"] or img["projection"] != pb["projection"]
            or img["system"] != pb["system"]):
        return False
    cdelt = np.abs(img["cdelt"]).max()
    if (not np.allclose(img["cdelt"], pb["cdelt"], rtol=1e-9, atol=0)
            or not np.allclose(img["crval"], pb["crval"], rtol=0, atol=1e-9 * cdelt)
            or not np.allclose(img["crpix"], pb["crpix"], rtol=0, atol=1e-9)):
        return False
    si, sp = img["spectral"], pb["spectral"]
    if (si is None) != (sp is None):
        return False
    if si is not None:
        if set(si) != set(sp) or si["unit"] != sp["unit"]:
            return False
        step = abs(si.get("cdelt", 0.0)) or 1.0
        for k in ("crval", "cdelt", "crpix"):
            if k in si:
                tol = 1e-9 * (step if k == "crval" else abs(si[k]) if k == "cdelt" else 1.0)
                if abs(si[k] - sp[k]) > tol:
                    return False
    return img["stokes"] == pb["stokes"]


def choose_route(img: dict, pb: dict, same_storage: bool) -> str:
    """How to bring a compatible PB onto the image grid for ``impbcor`` (pure).

    - ``'direct'``: identical grids (:func:`grids_identical`) stored the same
      way (both FITS or both CASA images) — ``impbcor`` reads the PB as it is,
      nothing is copied.  The ALMA case: ``*.pb.fits`` shaped like its pbcor.
    - ``'adopt'``: same axes in the same order, each PB axis equal to the
      image's or degenerate — one C++ copy of the PB *at its own size* into a
      scratch CASA image that adopts the image's coordinates (all of them
      for equal shapes, the sky coordinate for a degenerate PB, which
      ``impbcor`` then extends; the copy carries no mask then).  Needed
      because ``impbcor`` aborts the process when it extends a PB *mask*
      (every FITS PB has one: its NaNs) and compares coordinates strictly
      (CASA-image vs FITS units, round-trip rounding).
    - ``'regrid'``: anything else (other axis order or count) — the PB is
      copied block by block onto the image's full shape and coordinates.

    Only called after :func:`check_pb_compatible`, so the sky grids agree
    within its tolerance in every route.
    """
    if same_storage and grids_identical(img, pb):
        return "direct"
    if img["kinds"] == pb["kinds"] and all(
            n_pb in (1, n_img) for n_pb, n_img in zip(pb["shape"], img["shape"])):
        return "adopt"
    return "regrid"


def _adopt_pb(pb_path: str, img_path: str, gi: dict, gp: dict, out: str) -> None:
    """Copy the PB (its own shape) to CASA image ``out`` with the image's coordinates.

    Equal shapes: the image's whole coordinate system.  Degenerate PB axes:
    the PB keeps its spectral/Stokes coordinates and takes the image's
    direction coordinate, so ``impbcor`` sees the same sky grid and extends
    the PB over the image's other axes itself.  The copy is casacore's
    (``ia.subimage``), tiled and bounded in memory.
    """
    from casatools import image

    ia_img, ia_pb = image(), image()
    ia_img.open(img_path)
    try:
        cs_img = ia_img.coordsys()
    finally:
        ia_img.done()
    try:
        ia_pb.open(pb_path)
        try:
            sub = ia_pb.subimage(outfile=out, dropdeg=False, overwrite=True)
            sub.done()
        finally:
            ia_pb.done()
        ia_pb.open(out)
        try:
            if list(gi["shape"]) == list(gp["shape"]):
                ia_pb.setcoordsys(cs_img.torecord())
            else:
                # impbcor aborts the process when it has to extend a PB *mask* over
                # the image (casacore ExtendSpecifier); a broadcast PB brings its
                # values (NaN included), not a mask — as in the regrid route
                masks = [m for m in ia_pb.maskhandler("get") if m != "T"]
                if masks:
                    ia_pb.maskhandler("delete", masks)
                cs_pb = ia_pb.coordsys()
                try:
                    ci = list(cs_img.coordinatetype()).index("Direction")
                    cp = list(cs_pb.coordinatetype()).index("Direction")
                    cs_pb.replace(cs_img.torecord(), ci, cp)
                    ia_pb.setcoordsys(cs_pb.torecord())
                finally:
                    cs_pb.done()
        finally:
            ia_pb.done()
    finally:
        cs_img.done()


def _conform_pb(pb_path: str, img_path: str, gi: dict, gp: dict, out: str,
                chunk_bytes: int | None = None) -> None:
    """Write the PB on the image's exact grid (full shape and coordinate system).

    The general fallback: handles a PB whose axes differ in count or order
    from the image's, and single-channel/single-Stokes PBs broadcast over
    the image.  The PB's mask is carried when the PB is not broadcast (as
    ``impbcor`` uses it on the other routes); a broadcast PB brings its
    values only (NaN included), like the ``'adopt'`` route.  Copied in
    blocks of whole sky planes along the image's spectral axis, each at most
    ``chunk_bytes`` (default :data:`CHUNK_BYTES`; at least one plane).
    """
    from casatools import image, regionmanager

    ia_img, ia_pb, ia_out, rg = image(), image(), image(), regionmanager()
    ia_img.open(img_path)
    try:
        csys = ia_img.coordsys()
        rec = csys.torecord()
        csys.done()
    finally:
        ia_img.done()
    shape = gi["shape"]
    nd = len(shape)
    nx, ny = shape[0], shape[1]
    ia_out.fromshape(outfile=out, shape=shape, csys=rec, overwrite=True)
    ia_pb.open(pb_path)
    try:
        sa_i, ka_i = gi["spectral_axis"], gi["stokes_axis"]
        sa_p, ka_p = gp["spectral_axis"], gp["stokes_axis"]
        nchan = shape[sa_i] if sa_i is not None else 1
        nstok = shape[ka_i] if ka_i is not None else 1
        pb_nchan = gp["shape"][sa_p] if sa_p is not None else 1
        pb_nstok = gp["shape"][ka_p] if ka_p is not None else 1
        budget = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        step = max(1, min(nchan, int(budget // max(1, nx * ny * 4))))
        has_mask = False
        broadcast = pb_nchan != nchan or pb_nstok != nstok  # then values only, no mask
        # the PB block is reused across Stokes planes when the PB has one Stokes plane
        for c0 in range(0, nchan, step):
            c1 = min(nchan, c0 + step)
            cached = cached_mask = None
            for k in range(nstok):
                if cached is None or pb_nstok > 1:
                    blc = [0] * len(gp["shape"])
                    trc = [n - 1 for n in gp["shape"]]
                    if sa_p is not None:
                        blc[sa_p], trc[sa_p] = (c0, c1 - 1) if pb_nchan > 1 else (0, 0)
                    if ka_p is not None:
                        blc[ka_p] = trc[ka_p] = k if pb_nstok > 1 else 0
                    arr = np.asarray(ia_pb.getchunk(blc=blc, trc=trc, dropdeg=False),
                                     dtype=np.float32)
                    msk = np.asarray(ia_pb.getchunk(blc=blc, trc=trc, dropdeg=False,
                                                    getmask=True), dtype=bool)
                    cached = _block(arr, sa_p, nx, ny, c1 - c0)
                    cached_mask = (None if broadcast or msk.all()
                                   else _block(msk, sa_p, nx, ny, c1 - c0))
                blc_o = [0] * nd
                if sa_i is not None:
                    blc_o[sa_i] = c0
                if ka_i is not None:
                    blc_o[ka_i] = k
                ia_out.putchunk(pixels=_place(cached, sa_i, nd), blc=blc_o)
                if cached_mask is not None:  # carry the PB's mask, as impbcor would
                    if not has_mask:
                        ia_out.calcmask(mask="T", name="mask0", asdefault=True)
                        has_mask = True
                    mblock = _place(cached_mask, sa_i, nd)
                    trc_o = [b + n - 1 for b, n in zip(blc_o, mblock.shape)]
                    ia_out.putregion(pixelmask=mblock, region=rg.box(blc=blc_o, trc=trc_o))
    finally:
        ia_pb.done()
        ia_out.done()
        rg.done()


def _block(arr: np.ndarray, spectral_axis: int | None, nx: int, ny: int, n: int) -> np.ndarray:
    """PB chunk (its own axis order) → (nx, ny, n), broadcasting a single plane."""
    if spectral_axis is not None:
        arr = np.moveaxis(arr, spectral_axis, -1)
    return np.broadcast_to(arr.reshape(nx, ny, -1), (nx, ny, n))


def _place(block: np.ndarray, spectral_axis: int | None, nd: int) -> np.ndarray:
    """(nx, ny, n) block → the image's axis order (spectral axis where the image has it)."""
    nx, ny, n = block.shape
    out = block.reshape((nx, ny, n) + (1,) * (nd - 3)) if nd >= 3 else block.reshape(nx, ny)
    if spectral_axis is not None:
        out = np.moveaxis(out, 2, spectral_axis)
    return np.ascontiguousarray(out)


def recover_uncorrected(pbcor: str, pb: str, outfile: str, overwrite: bool = False,
                        workdir: str | None = None, route: str = "auto",
                        history: Sequence[str] | None = None) -> str:
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
    route
        ``'auto'`` (default: :func:`choose_route`) or one of :data:`ROUTES`
        to force how the PB is put on the image grid (all give the same
        pixels; forcing is for tests and cross-checks).
    history
        Lines added to the output's HISTORY (FITS HISTORY cards), e.g. the
        provenance of a restore (:func:`almaqa_casa.restore.provenance.fits_history`).

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
    return recover_with_route(pbcor, pb, outfile, overwrite, workdir, route, history)[0]


def recover_with_route(pbcor: str, pb: str, outfile: str, overwrite: bool = False,
                       workdir: str | None = None, route: str = "auto",
                       history: Sequence[str] | None = None) -> tuple[str, str]:
    """:func:`recover_uncorrected`, also returning the route that produced the output.

    If ``impbcor`` still rejects the PB on the ``'direct'`` or ``'adopt'``
    route (its coordinate comparison is stricter than ours), the next route
    is taken; the CASA log says so.
    """
    from casatasks import casalog, exportfits, impbcor

    if route != "auto" and route not in ROUTES:
        raise ValueError(f"route must be 'auto' or one of {ROUTES}, not {route!r}")
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
        same_storage = image_format(img_path) == image_format(pb_path)
        first = choose_route(gi, gp, same_storage) if route == "auto" else route
        # never hand impbcor a PB it would abort on (degenerate FITS PB, other layout)
        if first == "direct" and list(gi["shape"]) != list(gp["shape"]):
            raise ImageMismatchError(f"{pb}: route 'direct' needs the image's shape")
        if first == "adopt" and gi["kinds"] != gp["kinds"]:
            raise ImageMismatchError(f"{pb}: route 'adopt' needs the image's axis order")
        with atomic_output(out, overwrite=overwrite) as final_tmp:
            target = tmp / "uncorrected.im" if to_fits else final_tmp
            used = None
            errors = []
            for r in ROUTES[ROUTES.index(first):]:
                if r == "direct":
                    pb_grid = pb_path
                elif r == "adopt":
                    pb_grid = str(tmp / "pb_adopted.im")
                    _adopt_pb(pb_path, img_path, gi, gp, pb_grid)
                else:
                    pb_grid = str(tmp / "pb_on_image_grid.im")
                    _conform_pb(pb_path, img_path, gi, gp, pb_grid)
                try:
                    impbcor(imagename=img_path, pbimage=pb_grid, outfile=str(target),
                            mode="m", overwrite=True)
                except Exception as exc:
                    errors.append(f"{r}: {exc}")
                    if r != "regrid" and route == "auto":
                        casalog.post(f"impbcor rejected the primary beam {pb} on route '{r}' "
                                     f"({exc}); trying the next route", "WARN")
                        continue
                    raise ImageMismatchError(
                        f"impbcor(mode='m') of {pbcor} by {pb} failed: {'; '.join(errors)}"
                    ) from exc
                used = r
                break
            if not Path(target).exists():
                raise RuntimeError(
                    f"impbcor(mode='m') of {pbcor} by {pb} wrote nothing (see the CASA log)")
            casalog.post(f"uncorrected image {outfile} = impbcor(mode='m') of {pbcor} by {pb}, "
                         f"primary beam route '{used}'", "INFO")
            if history:
                _add_history(str(target), history)
            if to_fits:
                exportfits(imagename=str(target), fitsimage=str(final_tmp), **EXPORTFITS_KW)
    return outfile, used


def _add_history(image: str, lines: Sequence[str]) -> None:
    """Append ``lines`` to a CASA image's history (exportfits writes them as HISTORY)."""
    import casatools
    ia = casatools.image()
    ia.open(image)
    try:
        ia.sethistory(origin="almaqa_casa", history=[str(x) for x in lines])
    finally:
        ia.close()
