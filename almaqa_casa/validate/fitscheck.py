"""FITS conformance and header sanity of delivered images.

``inspect_fits`` (I/O) opens a file object — a file on disk or a tar member
read in place, gzipped or not — runs astropy ``verify('exception')``, reads
the header and the data plane by plane (bounded memory) for the NaN
fraction.  ``header_findings`` (pure) decides what the header lacks for the
product kind.  Bad input never raises: it becomes F-findings.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from ..delivery.naming import ProductName
from ..delivery.products import ProductFile
from .findings import Finding, finding

__all__ = [
    "NAN_WARN_FRACTION",
    "FitsInfo",
    "beam_from_header",
    "header_findings",
    "inspect_fits",
    "shape_findings",
]

#: NaN fraction above which an image is flagged (pbcor images are NaN outside PB≈0.2).
NAN_WARN_FRACTION = 0.95
_GZ = b"\x1f\x8b"


@dataclass
class FitsInfo:
    """What was learned from one FITS file."""

    file: str
    ok: bool = False                 #: header and data readable
    shape: tuple = ()                #: numpy order reversed to FITS order (NAXIS1, NAXIS2, ...)
    ctypes: tuple = ()
    bunit: str | None = None
    beam: dict | None = None      #: {'bmaj','bmin','bpa'} arcsec/deg (median of a table)
    nbeams: int = 0
    nan_fraction: float | None = None
    restfrq: float | None = None
    specsys: str | None = None
    cdelt_arcsec: float | None = None
    plain_path: str | None = None  #: decompressed copy of a .gz file (when spilled)
    findings: list = field(default_factory=list)

    @property
    def spectral_axis(self) -> int | None:
        for i, c in enumerate(self.ctypes):
            if c.startswith(("FREQ", "VRAD", "VOPT", "VELO", "FELO", "WAVE")):
                return i
        return None

    @property
    def stokes_axis(self) -> int | None:
        for i, c in enumerate(self.ctypes):
            if c.startswith("STOKES"):
                return i
        return None

    @property
    def nchan(self) -> int:
        a = self.spectral_axis
        return int(self.shape[a]) if a is not None and a < len(self.shape) else 1


def beam_from_header(header, beams_table=None) -> tuple[dict | None, int]:
    """Beam in arcsec/deg from BMAJ/BMIN/BPA (degrees) or the median of a BEAMS table."""
    if beams_table is not None and len(beams_table):
        unit = str(beams_table.columns["BMAJ"].unit or "arcsec").strip().lower()
        fac = 3600.0 if unit.startswith("deg") else 1.0
        bmaj = np.asarray(beams_table["BMAJ"], float) * fac
        bmin = np.asarray(beams_table["BMIN"], float) * fac
        bpa = np.asarray(beams_table["BPA"], float)
        return ({"bmaj": float(np.median(bmaj)), "bmin": float(np.median(bmin)),
                 "bpa": float(np.median(bpa))}, len(bmaj))
    if "BMAJ" in header and "BMIN" in header:
        try:
            return ({"bmaj": float(header["BMAJ"]) * 3600.0, "bmin": float(header["BMIN"]) * 3600.0,
                     "bpa": float(header.get("BPA", 0.0))}, 1)
        except (TypeError, ValueError):
            return None, 0
    return None, 0


def header_findings(info: FitsInfo, product: ProductName | ProductFile | None) -> list[Finding]:
    """What the header lacks for this product kind (pure).

    ``product`` is the parsed scheme name or the :class:`ProductFile` of the
    pairing rule (which also knows free-form names such as ``x.flux.fits``).
    """
    out: list[Finding] = []
    if isinstance(product, ProductFile):
        kind, stokes = product.role, product.stokes
    else:
        kind = product.kind if product else "image"
        stokes = product.stokes if product else None
    is_image = kind in ("pbcor", "image", "sd")
    if is_image and not info.bunit:
        out.append(finding("F005", info.file, "no BUNIT keyword (brightness unit)"))
    if is_image and info.beam is None and stokes not in ("A", "POLA", "Pangle"):
        out.append(finding("F006", info.file, "no restoring beam: neither BMAJ/BMIN/BPA nor a "
                           "BEAMS table"))
    if is_image:
        missing = [n for n, a in (("Stokes", info.stokes_axis), ("spectral", info.spectral_axis))
                   if a is None]
        if missing:
            out.append(finding("F007", info.file, "no " + " and no ".join(missing) + " axis (CTYPE: "
                               + ", ".join(info.ctypes) + ")"))
        if info.nchan > 1 and (not info.restfrq or not info.specsys):
            lack = [k for k, v in (("RESTFRQ", info.restfrq), ("SPECSYS", info.specsys)) if not v]
            out.append(finding("F008", info.file, f"cube ({info.nchan} channels) without "
                               + " and ".join(lack)))
    if info.nan_fraction is not None:
        if info.nan_fraction >= 1.0:
            out.append(finding("F012", info.file, "every pixel is NaN"))
        elif info.nan_fraction > NAN_WARN_FRACTION:
            out.append(finding("F009", info.file, f"{100 * info.nan_fraction:.1f}% of the pixels "
                               f"are NaN (> {100 * NAN_WARN_FRACTION:.0f}%)"))
    return out


def shape_findings(pbcor: FitsInfo, pb: FitsInfo) -> list[Finding]:
    """pbcor and pb must share the sky plane; other axes equal or degenerate (pure)."""
    if not (pbcor.ok and pb.ok) or len(pbcor.shape) < 2 or len(pb.shape) < 2:
        return []
    if tuple(pbcor.shape[:2]) != tuple(pb.shape[:2]):
        return [finding("F010", pb.file, f"primary-beam sky plane {tuple(pb.shape[:2])} differs "
                        f"from the image's {tuple(pbcor.shape[:2])} ({pbcor.file})")]
    n = max(len(pbcor.shape), len(pb.shape))
    a = tuple(pbcor.shape) + (1,) * (n - len(pbcor.shape))
    b = tuple(pb.shape) + (1,) * (n - len(pb.shape))
    if any(y not in (1, x) for x, y in zip(a[2:], b[2:])):
        return [finding("F010", pb.file, f"primary-beam shape {tuple(pb.shape)} does not fit the "
                        f"image shape {tuple(pbcor.shape)} ({pbcor.file})")]
    return []


def _open_stream(fh: IO[bytes], name: str, info: FitsInfo,
                 spill: str | None = None) -> IO[bytes] | None:
    """The decompressed stream, or None (with an F-finding) if it cannot be read.

    Gzipped files are decompressed into ``spill`` (a file path, kept for later
    readers and recorded in ``info.plain_path``) or into a spooled temporary.
    """
    head = fh.read(2880)
    if len(head) == 0:
        info.findings.append(finding("F011", info.file, "file is empty (0 bytes)"))
        return None
    fh.seek(0)
    if name.endswith(".gz"):
        if head[:2] != _GZ:
            info.findings.append(finding("F002", info.file, "named .gz but is not gzip data"))
            return None
        spool = (open(spill, "w+b") if spill
                 else tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024))
        try:
            with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                shutil.copyfileobj(gz, spool, length=4 * 1024 * 1024)
        except (OSError, EOFError, zlib.error) as exc:
            spool.close()
            if spill:
                os.unlink(spill)
            info.findings.append(finding("F002", info.file, f"gzip stream is corrupt or "
                                         f"truncated ({exc})"))
            return None
        spool.seek(0)
        inner = spool.read(80)
        spool.seek(0)
        if not inner.startswith(b"SIMPLE  =") or inner[29:30] != b"T":
            spool.close()
            if spill:
                os.unlink(spill)
            info.findings.append(finding("F001", info.file, "decompressed content does not start "
                                         "with a FITS primary header (SIMPLE = T)"))
            return None
        if spill:
            info.plain_path = spill
            spool.close()
            return open(spill, "rb")  # astropy refuses a read-write handle in 'readonly' mode
        return spool
    if head[:2] == _GZ:
        info.findings.append(finding("F001", info.file, "gzip-compressed data in a file named "
                                     ".fits"))
        return None
    if not head.startswith(b"SIMPLE  =") or head[29:30] != b"T":
        info.findings.append(finding("F001", info.file, "does not start with a FITS primary "
                                     "header (SIMPLE = T)"))
        return None
    return fh


def inspect_fits(fh: IO[bytes], name: str, display: str, read_data: bool = True,
                 spill: str | None = None) -> FitsInfo:
    """Check one FITS file given as a binary, seekable file object.

    ``spill``: where to keep the decompressed copy of a gzipped file (its
    path is then ``info.plain_path``, for the image statistics).
    """
    info = FitsInfo(file=display)
    try:
        stream = _open_stream(fh, name, info, spill)
    except OSError as exc:
        info.findings.append(finding("F001", display, f"cannot read: {exc}"))
        return info
    if stream is None:
        return info
    try:
        return _inspect_stream(stream, display, info, read_data)
    except Exception as exc:  # a malformed header value must not stop the validation
        info.ok = False
        info.findings.append(finding("F001", display, f"unreadable FITS header "
                                     f"({type(exc).__name__}: {exc})"))
        return info
    finally:
        if stream is not fh:
            stream.close()


def _inspect_stream(stream: IO[bytes], display: str, info: FitsInfo, read_data: bool) -> FitsInfo:
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(stream, memmap=False, lazy_load_hdus=False, mode="readonly")
    except Exception as exc:  # astropy raises OSError/ValueError/TypeError on garbage
        info.findings.append(finding("F001", display, f"not readable as FITS ({exc})"))
        return info
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdul.verify("exception")
        except VerifyError as exc:
            msg = " ".join(str(exc).split())[:300]
            info.findings.append(finding("F003", display, f"astropy verify: {msg}"))
        except Exception as exc:
            info.findings.append(finding("F003", display, f"astropy verify failed: {exc}"))
        h = hdul[0].header
        naxis = int(h.get("NAXIS", 0) or 0)
        info.shape = tuple(int(h.get(f"NAXIS{i}", 0) or 0) for i in range(1, naxis + 1))
        info.ctypes = tuple(str(h.get(f"CTYPE{i}", "")).strip().upper() for i in range(1, naxis + 1))
        bunit = h.get("BUNIT")
        info.bunit = str(bunit).strip() if bunit is not None and str(bunit).strip() else None
        rf = h.get("RESTFRQ", h.get("RESTFREQ"))
        try:
            info.restfrq = float(rf) if rf not in (None, "") else None
        except (TypeError, ValueError):
            info.restfrq = None
        sp = h.get("SPECSYS")
        info.specsys = str(sp).strip() if sp else None
        try:
            info.cdelt_arcsec = abs(float(h.get("CDELT2"))) * 3600.0 if "CDELT2" in h else None
        except (TypeError, ValueError):
            info.cdelt_arcsec = None
        beams = None
        for hdu in hdul[1:]:
            if hdu.name == "BEAMS":
                try:
                    beams = hdu.data
                except Exception:
                    beams = None
        info.beam, info.nbeams = beam_from_header(h, beams)
        if naxis == 0 or 0 in info.shape:
            info.findings.append(finding("F004", display, "primary HDU has no image data"))
            return info
        if read_data:
            try:
                info.nan_fraction = _nan_fraction(hdul[0])
            except Exception as exc:
                info.findings.append(finding("F004", display, f"image data unreadable: "
                                             f"{type(exc).__name__}: {exc}"))
                return info
        info.ok = True
    finally:
        hdul.close()
    return info


def _nan_fraction(hdu) -> float:
    """Fraction of NaN pixels, reading one plane of the slowest axis at a time."""
    shape = hdu.shape  # numpy order: slowest first
    if not shape:
        return 0.0
    total = int(np.prod(shape))
    nplanes = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    plane_shape = shape[-2:] if len(shape) >= 2 else shape
    n_nan = 0
    sec = hdu.section
    for k in range(nplanes):
        idx = np.unravel_index(k, shape[:-2]) if len(shape) > 2 else ()
        plane = np.asarray(sec[idx] if idx else sec[...])
        if plane.shape != tuple(plane_shape):
            raise ValueError(f"plane {k} has shape {plane.shape}, expected {plane_shape}")
        if plane.dtype.kind == "f":
            n_nan += int(np.count_nonzero(np.isnan(plane)))
    return n_nan / total if total else 0.0
