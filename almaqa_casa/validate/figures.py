"""Image figures: beam, peak, rms and dynamic range, plus a thumbnail per image.

The observatory measures noise in the primary-beam *uncorrected* image
(seed §4.3), so the uncorrected image is recovered from ``pbcor`` and ``pb``
with the shared CASA helper (``impbcor`` mode ``'m'``,
:func:`almaqa_casa.images.pbcor.recover_uncorrected`); the rms is the robust
(1.4826 × MAD) scatter of its finite pixels outside the clean mask, per
plane, with the median over channels reported for cubes.  The peak is the
maximum of the pbcor image; the dynamic range is the uncorrected peak over
the rms.  Reading is one plane at a time (bounded memory).

The thumbnail shows one named plane, never an unlabelled projection: the
brightest channel of a cube, Stokes I of a multi-Stokes image, on sky offsets
in arcsec with the beam, the primary beam's 0.2 contour (the pb plane is
``uncorrected / pbcor``, no extra read) and the clean mask's contour.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "RES_TOLERANCE",
    "SENS_TOLERANCE",
    "ImageFigures",
    "casa_image_to_fits",
    "measure",
    "outside_mask_rms",
    "parse_quantity",
    "parse_range",
    "plane_label",
    "robust_rms",
    "thumbnail_figure",
    "thumbnail_png",
]

#: Primary-beam level drawn on thumbnails (the pipeline's image pblimit).
PB_CONTOUR = 0.2
#: Default tolerances for requirement checks (fractions of the requested value).
RES_TOLERANCE = 0.1
SENS_TOLERANCE = 0.1
_MAD = 1.482602218505602


def robust_rms(values: np.ndarray) -> float:
    """1.4826 × median absolute deviation about the median (NaN if no values or any NaN)."""
    return _robust_rms_inplace(np.array(values, dtype=np.float64).ravel())


def _median_inplace(v: np.ndarray) -> float:
    """``np.median`` of a 1-D array, partitioning it in place (no copy); NaN if any NaN."""
    n = v.size
    k = n // 2
    v.partition([k - 1, k, n - 1] if n % 2 == 0 else [k, n - 1])
    if np.isnan(v[-1]):  # partition sorts NaN last, as np.median relies on
        return math.nan
    return float(v[k]) if n % 2 else float(0.5 * (v[k - 1] + v[k]))


def _robust_rms_inplace(v: np.ndarray) -> float:
    """:func:`robust_rms` of a float64 1-D array the caller gives away (overwritten)."""
    if v.size == 0:
        return math.nan
    med = _median_inplace(v)
    np.subtract(v, med, out=v)
    np.abs(v, out=v)
    return float(_MAD * _median_inplace(v))


def outside_mask_rms(plane: np.ndarray, mask: np.ndarray | None) -> tuple[float, int]:
    """Robust rms of finite pixels where the clean mask is 0 (all finite pixels without a mask).

    A NaN mask pixel counts as 0 (outside the mask).
    """
    good = np.isfinite(plane)
    if mask is not None:
        good &= ~(np.asarray(mask) > 0)  # NaN > 0 is False
    n = int(good.sum())
    if not n:
        return math.nan, 0
    return _robust_rms_inplace(np.asarray(plane, dtype=np.float64)[good]), n


def parse_quantity(text: str, unit: str) -> float | None:
    """Value of a CASA quantity string in ``unit`` (e.g. '0.5arcsec' → arcsec); None if empty.

    Raises ValueError naming the text when it is not a quantity in that unit.
    """
    if text is None or not str(text).strip():
        return None
    from casatools import quanta
    qa = quanta()
    try:
        q = qa.quantity(str(text).strip())
        if not qa.compare(q, qa.quantity(1.0, unit)):
            raise ValueError(f"'{text}' is not convertible to {unit}")
        return float(qa.convert(q, unit)["value"])
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"'{text}' is not a quantity in {unit} ({exc})") from exc


def parse_range(text: str, unit: str) -> tuple[float | None, float | None]:
    """``'0.5arcsec'`` → (None, 0.5); ``'0.3arcsec~0.6arcsec'`` → (0.3, 0.6); '' → (None, None)."""
    if text is None or not str(text).strip():
        return None, None
    parts = str(text).split("~")
    if len(parts) == 1:
        return None, parse_quantity(parts[0], unit)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise ValueError(f"'{text}' is not a value or a range 'min~max' in {unit}")
    lo, hi = parse_quantity(parts[0], unit), parse_quantity(parts[1], unit)
    if lo is None or hi is None or lo > hi:
        raise ValueError(f"'{text}': the range must be 'min~max' with min <= max")
    return lo, hi


@dataclass
class ImageFigures:
    """Figures of one image product."""

    file: str
    bmaj: float | None = None       #: arcsec
    bmin: float | None = None       #: arcsec
    bpa: float | None = None        #: deg
    nbeams: int = 0
    unit: str | None = None
    peak: float | None = None       #: max of the pbcor image
    peak_uncorrected: float | None = None
    rms: float | None = None        #: outside mask, uncorrected image (median over channels)
    rms_min: float | None = None
    rms_max: float | None = None
    rms_per_stokes: dict = field(default_factory=dict)
    dynamic_range: float | None = None
    nchan: int = 1
    method: str = ""                   #: 'impbcor-m' or 'direct'
    mask_used: bool = False
    npix_rms: int = 0
    checks: list = field(default_factory=list)
    error: str | None = None
    cdelt_arcsec: float | None = None
    freq_hz: float | None = None         #: centre frequency of the image
    chan_width_hz: float | None = None   #: |CDELT| of the frequency axis
    effbw_hz: float | None = None        #: pipeline EFFBW keyword (effective bandwidth)
    stokes_planes: list = field(default_factory=list)  #: Stokes label of each plane
    thumb_plane: dict = field(default_factory=dict)  #: what the thumbnail shows
    sky: dict = field(default_factory=dict)  #: reference pixel/value, pixel size (arcsec)
    thumb: np.ndarray | None = field(default=None, repr=False)
    thumb_pb: np.ndarray | None = field(default=None, repr=False)
    thumb_mask: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("thumb", "thumb_pb", "thumb_mask")}


def _axes_from_header(h) -> tuple[list[str], tuple[int, ...]]:
    n = int(h.get("NAXIS", 0))
    return ([str(h.get(f"CTYPE{i}", "")).upper() for i in range(1, n + 1)],
            tuple(int(h.get(f"NAXIS{i}", 1)) for i in range(1, n + 1)))


def _plane_index(ctypes: list[str], shape: tuple[int, ...], chan: int, stokes: int) -> tuple:
    """Numpy index (slowest axis first) of one sky plane in an N-D FITS array."""
    idx = []
    for i in range(len(shape) - 1, 1, -1):
        c = ctypes[i]
        if c.startswith("STOKES"):
            idx.append(min(stokes, shape[i] - 1))
        elif c.startswith(("FREQ", "VRAD", "VOPT", "VELO", "FELO", "WAVE")):
            idx.append(min(chan, shape[i] - 1))
        else:
            idx.append(0)
    return tuple(idx)


_STOKES_CODES = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR",
                 -5: "XX", -6: "YY", -7: "XY", -8: "YX", 6: "PFlinear", 7: "Pangle",
                 128: "Ptotal", 129: "Plinear", 130: "PFtotal"}


def _axis_value(h, i: int, pixel: float) -> float | None:
    """World value of 0-based ``pixel`` on FITS axis ``i`` (1-based), linear WCS."""
    try:
        return float(h[f"CRVAL{i}"]) + (pixel + 1.0 - float(h.get(f"CRPIX{i}", 1.0))) \
            * float(h[f"CDELT{i}"])
    except (KeyError, TypeError, ValueError):
        return None


def header_metadata(fig: ImageFigures, h, ctypes: list[str], shape: tuple[int, ...]) -> None:
    """Frequency, channel width, EFFBW, Stokes labels and sky geometry from a FITS header."""
    for i, (c, n) in enumerate(zip(ctypes, shape), start=1):
        if c.startswith("FREQ"):
            fig.freq_hz = _axis_value(h, i, (n - 1) / 2.0)
            try:
                fig.chan_width_hz = abs(float(h[f"CDELT{i}"])) or None
            except (KeyError, TypeError, ValueError):
                pass
        elif c.startswith("STOKES"):
            codes = [_axis_value(h, i, k) for k in range(n)]
            fig.stokes_planes = [_STOKES_CODES.get(int(round(v)), str(v)) if v is not None
                                 else "?" for v in codes]
    try:
        eff = float(h["EFFBW"])
        fig.effbw_hz = eff if eff > 0 else None
    except (KeyError, TypeError, ValueError):
        pass
    try:
        fig.sky = {"crpix": [float(h["CRPIX1"]) - 1.0, float(h["CRPIX2"]) - 1.0],
                   "cdelt_arcsec": [float(h["CDELT1"]) * 3600.0, float(h["CDELT2"]) * 3600.0],
                   "crval_deg": [float(h["CRVAL1"]), float(h["CRVAL2"])],
                   "ctype": ctypes[:2], "radesys": str(h.get("RADESYS", "")).strip()}
    except (KeyError, TypeError, ValueError):
        fig.sky = {}


def _counts(ctypes: list[str], shape: tuple[int, ...]) -> tuple[int, int]:
    nchan = nstok = 1
    for c, n in zip(ctypes[2:], shape[2:]):
        if c.startswith("STOKES"):
            nstok = n
        elif c.startswith(("FREQ", "VRAD", "VOPT", "VELO", "FELO", "WAVE")):
            nchan = n
    return nchan, nstok


def measure(image: str, pb: str | None, mask: str | None, workdir: str,
            display: str = "", stokes_measured: int = 0, recovery: str = "impbcor") -> ImageFigures:
    """Figures for one (pbcor) FITS image on disk; ``pb``/``mask`` optional FITS(.gz) paths.

    ``recovery``: ``'impbcor'`` (default: the shared CASA helper, impbcor mode
    'm') or ``'numpy'`` (pbcor × pb plane by plane, the same arithmetic
    without CASA; used by the benchmark and as a cross-check).  Without a pb
    the statistics are taken on the image itself (``method='direct'``).
    Never raises: problems go to ``ImageFigures.error``.
    """
    import contextlib

    from astropy.io import fits

    from ..images.fitsio import casa_readable
    from ..images.pbcor import recover_uncorrected
    from .fitscheck import beam_from_header

    if recovery not in ("impbcor", "numpy"):
        raise ValueError(f"recovery must be 'impbcor' or 'numpy', not {recovery!r}")
    fig = ImageFigures(file=display or image)
    try:
        with contextlib.ExitStack() as stack:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdul = stack.enter_context(fits.open(image, memmap=True))
            h = hdul[0].header
            beams = hdul["BEAMS"].data if "BEAMS" in hdul else None
            beam, fig.nbeams = beam_from_header(h, beams)
            if beam:
                fig.bmaj, fig.bmin, fig.bpa = beam["bmaj"], beam["bmin"], beam["bpa"]
            fig.unit = (str(h.get("BUNIT", "")).strip() or None)
            fig.cdelt_arcsec = abs(float(h["CDELT2"])) * 3600.0 if "CDELT2" in h else None
            ctypes, shape = _axes_from_header(h)
            nchan, nstok = _counts(ctypes, shape)
            fig.nchan = nchan
            header_metadata(fig, h, ctypes, shape)
            unc_plane = None
            if pb is not None and recovery == "impbcor":
                unc = str(Path(workdir) / "uncorrected.im")
                recover_uncorrected(image, pb, unc, overwrite=True, workdir=workdir)
                from casatools import image as iatool
                ia = iatool()
                ia.open(unc)
                stack.callback(ia.done)
                unc_plane = _casa_planes(ia, ctypes, shape)
                fig.method = "impbcor-m"
            elif pb is not None:
                pb_path = stack.enter_context(casa_readable(pb, workdir))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pbh = stack.enter_context(fits.open(pb_path, memmap=True))
                unc_plane = _product_planes(pbh[0])
                fig.method = "numpy-pbcor*pb"
            else:
                fig.method = "direct"
            mask_hdu = None
            if mask is not None:
                mask_path = stack.enter_context(casa_readable(mask, workdir))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mask_hdu = stack.enter_context(fits.open(mask_path, memmap=True))[0]
                fig.mask_used = True
            fig_stats(fig, hdul[0], ctypes, shape, nchan, nstok, unc_plane, mask_hdu,
                      stokes_measured)
    except Exception as exc:  # any failure becomes a finding upstream
        fig.error = f"{type(exc).__name__}: {exc}"
    return fig


def casa_image_to_fits(image: str, fits_path: str) -> str:
    """Export a CASA image folder (e.g. a delivered ``.mask``) to FITS as the pipeline exports.

    Give it a copy (``Tree.materialize``): opening a CASA image may write a
    lock file into it.
    """
    from casatools import image as iatool

    from ..images.pbcor import EXPORTFITS_KW

    ia = iatool()
    try:
        ia.open(str(image))
        ia.tofits(outfile=str(fits_path), velocity=EXPORTFITS_KW["velocity"],
                  optical=EXPORTFITS_KW["optical"], bitpix=EXPORTFITS_KW["bitpix"],
                  stokeslast=EXPORTFITS_KW["stokeslast"], overwrite=True,
                  dropdeg=EXPORTFITS_KW["dropdeg"])
    finally:
        ia.done()
    return str(fits_path)


def _casa_planes(ia, ctypes, shape):
    """plane(c, s, pbcor_plane) reading the uncorrected CASA image (FITS axis order)."""
    ndim = len(shape)

    def plane(c: int, s: int, _pbcor: np.ndarray) -> np.ndarray:
        blc = [0] * ndim
        trc = [n - 1 for n in shape]
        for i, ct in enumerate(ctypes[2:], start=2):
            v = s if ct.startswith("STOKES") else c if ct.startswith(_SPECTRAL) else 0
            blc[i] = trc[i] = min(v, shape[i] - 1)
        chunk = ia.getchunk(blc=blc, trc=trc, dropdeg=True, getmask=False)
        # masked pixels are NaN in the exported inputs, so NaN marks them here too
        return np.asarray(chunk, dtype=np.float64).reshape(shape[0], shape[1]).T
    return plane


def _product_planes(pb_hdu):
    """plane(c, s, pbcor_plane) = pbcor_plane × pb plane (degenerate pb axes broadcast)."""
    pctypes, pshape = _axes_from_header(pb_hdu.header)
    sec = pb_hdu.section
    cache: dict = {}

    def plane(c: int, s: int, pbcor: np.ndarray) -> np.ndarray:
        idx = _plane_index(pctypes, pshape, c, s)
        if idx not in cache:
            cache.clear()
            cache[idx] = np.asarray(sec[idx] if idx else sec[...], dtype=np.float64)
        pbp = cache[idx]
        if pbp.shape != pbcor.shape:
            raise ValueError(f"primary-beam plane {pbp.shape} differs from image plane {pbcor.shape}")
        return pbcor * pbp
    return plane


_SPECTRAL = ("FREQ", "VRAD", "VOPT", "VELO", "FELO", "WAVE")


def fig_stats(fig: ImageFigures, hdu, ctypes, shape, nchan, nstok, unc_plane, mask_hdu,
              stokes_measured: int) -> None:
    """Fill peak/rms/DR and the thumbnail plane from the planes (reads plane by plane)."""
    sec = hdu.section
    mctypes, mshape = (_axes_from_header(mask_hdu.header) if mask_hdu is not None else (None, None))
    rms_by_stokes: dict[int, list[float]] = {}
    peaks, peaks_unc = [], []
    thumb = thumb_unc = thumb_mask = None
    thumb_chan, best = 0, -math.inf
    npix = 0
    for s in range(nstok):
        for c in range(nchan):
            idx = _plane_index(ctypes, shape, c, s)
            plane = np.asarray(sec[idx] if idx else sec[...], dtype=np.float64)
            unc = unc_plane(c, s, plane) if unc_plane is not None else plane
            mplane = None
            if mask_hdu is not None:
                midx = _plane_index(mctypes, mshape, c, s)
                mplane = np.asarray(mask_hdu.section[midx] if midx else mask_hdu.section[...])
                if mplane.shape != plane.shape:
                    raise ValueError(f"mask plane shape {mplane.shape} differs from image plane "
                                     f"{plane.shape}")
            rms, n = outside_mask_rms(unc, mplane)
            rms_by_stokes.setdefault(s, []).append(rms)
            if s == stokes_measured:
                npix += n
                finite = np.isfinite(plane)
                if finite.any():
                    peaks.append(float(np.nanmax(plane)))
                    if peaks[-1] > best:  # the thumbnail shows the brightest channel
                        best, thumb_chan = peaks[-1], c
                        thumb = plane.copy()
                        thumb_unc = unc.copy() if unc_plane is not None else None
                        thumb_mask = None if mplane is None else np.array(mplane, dtype=float)
                if np.isfinite(unc).any():
                    peaks_unc.append(float(np.nanmax(unc)))
    meas = [r for r in rms_by_stokes.get(stokes_measured, []) if math.isfinite(r)]
    if meas:
        fig.rms = float(np.median(meas))
        fig.rms_min, fig.rms_max = float(np.min(meas)), float(np.max(meas))
    fig.rms_per_stokes = {
        str(k): (float(np.median([r for r in v if math.isfinite(r)]))
                 if any(math.isfinite(r) for r in v) else None)
        for k, v in rms_by_stokes.items()}
    fig.npix_rms = npix
    fig.peak = max(peaks) if peaks else None
    fig.peak_uncorrected = max(peaks_unc) if peaks_unc else None
    if fig.rms and fig.peak_uncorrected is not None and fig.rms > 0:
        fig.dynamic_range = fig.peak_uncorrected / fig.rms
    fig.thumb, fig.thumb_mask = thumb, thumb_mask
    if thumb is not None and thumb_unc is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            fig.thumb_pb = thumb_unc / thumb  # pbcor = uncorrected / pb, so pb = unc / pbcor
    if thumb is not None:
        stokes = (fig.stokes_planes[stokes_measured] if stokes_measured < len(fig.stokes_planes)
                  else "I (no Stokes axis)")
        fig.thumb_plane = {"channel": thumb_chan, "nchan": nchan, "stokes": stokes,
                           "of": "".join(fig.stokes_planes) if len(fig.stokes_planes) > 1 else "",
                           "statistic": "brightest channel" if nchan > 1 else "single plane",
                           "freq_hz": _axis_value(hdu.header, _freq_axis(ctypes), thumb_chan)
                           if _freq_axis(ctypes) else fig.freq_hz}


def _freq_axis(ctypes: list[str]) -> int | None:
    """1-based FITS axis number of the frequency axis, or None."""
    return next((i for i, c in enumerate(ctypes, start=1) if c.startswith("FREQ")), None)


def plane_label(fig: ImageFigures) -> str:
    """What a thumbnail shows, in words: Stokes plane, channel or statistic, frequency."""
    tp = fig.thumb_plane
    if not tp:
        return ""
    what = f"Stokes {tp['stokes']}" + (f" of {tp['of']}" if tp.get("of") else "")
    if tp["nchan"] > 1:
        what += f", channel {tp['channel']} of {tp['nchan']} (the brightest; channels from 0)"
    else:
        what += ", single plane"
    if tp.get("freq_hz"):
        what += f", {tp['freq_hz'] / 1e9:.4f} GHz"
    return what


def thumbnail_figure(fig: ImageFigures, title: str, max_pix: int = 256):
    """The displayed plane as a matplotlib Figure (None without a plane): sky offsets in
    arcsec, beam, PB 0.2 and clean-mask contours, plane and Stokes in the title."""
    if fig.thumb is None:
        return None
    from ..report.html import format_radec, sky_figure

    sky = fig.sky or {}
    origin = format_radec(*sky["crval_deg"]) if sky.get("crval_deg") and \
        str(sky.get("ctype", ["RA"])[0]).startswith("RA") else ""
    unit = (fig.unit or "") + (" (primary-beam corrected)" if fig.method != "direct" else "")
    return sky_figure(
        fig.thumb, title=f"{title}\n{plane_label(fig)}", unit=unit,
        pixel_arcsec=tuple(sky["cdelt_arcsec"]) if sky.get("cdelt_arcsec") else None,
        ref_pixel=tuple(sky["crpix"]) if sky.get("crpix") else None, origin=origin,
        beam=(fig.bmaj, fig.bmin, fig.bpa or 0.0) if fig.bmaj and fig.bmin else None,
        pb=fig.thumb_pb, pb_level=PB_CONTOUR, mask=fig.thumb_mask, max_pix=max_pix)


def thumbnail_png(fig: ImageFigures, title: str, max_pix: int = 256) -> bytes | None:
    """PNG of :func:`thumbnail_figure` (None without a plane)."""
    from ..report.html import figure_png

    f = thumbnail_figure(fig, title, max_pix)
    return None if f is None else figure_png(f, dpi=100)
