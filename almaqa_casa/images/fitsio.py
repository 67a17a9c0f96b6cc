"""Small FITS/CASA-image helpers shared by the image tasks.

CASA's image tool opens CASA images and plain FITS files, but not gzipped
FITS (casacore recognises FITS by a raw ``SIMPLE = T`` in the first block,
so ``*.pb.fits.gz`` is "of unknown type").  ALMA ships PBs and masks
gzipped, so every CASA call on a delivered file goes through
:func:`casa_readable`, which decompresses into a temporary folder when needed.
Headers and beams of FITS files are read with astropy (which handles gzip).
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "GZIP_MAGIC",
    "casa_readable",
    "image_format",
    "is_gzipped",
    "read_beams",
    "read_header",
    "strip_fits_suffix",
    "temp_workdir",
]

#: First two bytes of a gzip stream.
GZIP_MAGIC = b"\x1f\x8b"


def is_gzipped(path: str | os.PathLike) -> bool:
    """True if ``path`` is a file starting with the gzip magic bytes."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def image_format(path: str | os.PathLike) -> str:
    """Classify an image path: ``'casa'``, ``'fits'`` or ``'fits.gz'``.

    Decided from the content, not the name (a CASA image is a folder with a
    ``table.dat``; FITS starts with ``SIMPLE``; gzip with its magic bytes).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it exists but is none of the three.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: image not found")
    if p.is_dir():
        if (p / "table.dat").exists():
            return "casa"
        raise ValueError(f"{p}: folder is not a CASA image (no table.dat)")
    with open(p, "rb") as fh:
        head = fh.read(80)
    if head[:2] == GZIP_MAGIC:
        return "fits.gz"
    if head.startswith(b"SIMPLE") and b"T" in head[8:31]:
        return "fits"
    raise ValueError(f"{p}: not a FITS file, gzipped FITS or CASA image")


def strip_fits_suffix(name: str) -> str:
    """``'x.pbcor.fits.gz'`` → ``'x.pbcor'``; also ``.fits``, ``.fits.gz``, ``.image``/``.im`` untouched."""
    for suf in (".fits.gz", ".fits", ".fit.gz", ".fit"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


@contextlib.contextmanager
def temp_workdir(near: str | os.PathLike | None = None, prefix: str = "almaqa-") -> Iterator[Path]:
    """A temporary folder removed on exit.

    Parameters
    ----------
    near
        Create it inside this folder (e.g. the output folder, so large
        temporaries go to the same disk as the outputs); default: the system
        temporary folder.
    """
    base = None
    if near is not None:
        base = Path(near)
        base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _gunzip(src: Path, dst: Path) -> None:
    """Stream-decompress ``src`` to ``dst`` (bounded memory)."""
    try:
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{src}: cannot decompress gzipped FITS ({exc})") from exc


@contextlib.contextmanager
def casa_readable(path: str | os.PathLike, workdir: str | os.PathLike | None = None) -> Iterator[str]:
    """Yield a path CASA's image tool can open for ``path``.

    CASA images and plain FITS are yielded unchanged; gzipped FITS is
    decompressed into a temporary folder (inside ``workdir`` if given), which
    is removed on exit.

    Examples
    --------
    >>> with casa_readable("x.pb.fits.gz") as p:   # doctest: +SKIP
    ...     ia.open(p)
    """
    p = Path(path)
    fmt = image_format(p)
    if fmt != "fits.gz":
        yield str(p)
        return
    with temp_workdir(workdir, prefix="almaqa-gunzip-") as d:
        out = d / strip_fits_suffix(p.name)
        out = out.with_name(out.name + ".fits")
        _gunzip(p, out)
        yield str(out)


def read_header(path: str | os.PathLike, ext: int = 0) -> Any:
    """The FITS header (astropy ``Header``) of HDU ``ext`` of a (gzipped) FITS file."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            return hdul[ext].header.copy()
    except (OSError, IndexError) as exc:
        raise ValueError(f"{path}: cannot read FITS header ({exc})") from exc


def read_beams(path: str | os.PathLike) -> dict:
    """Restoring beam(s) of a (gzipped) FITS image, from its header / BEAMS table.

    Returns
    -------
    dict
        ``{'kind': 'none'}``, ``{'kind': 'single', 'bmaj': arcsec, 'bmin':
        arcsec, 'bpa': deg}`` or ``{'kind': 'multi', 'bmaj': [...], 'bmin':
        [...], 'bpa': [...], 'chan': [...], 'pol': [...]}`` (arcsec/deg).
    """
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            h0 = hdul[0].header
            if "BEAMS" in hdul:
                t = hdul["BEAMS"]
                data = t.data
                u_maj = (t.header.get("TUNIT1") or "arcsec").strip()
                fac = 3600.0 if u_maj.lower().startswith("deg") else 1.0
                return {
                    "kind": "multi",
                    "bmaj": [float(x) * fac for x in data["BMAJ"]],
                    "bmin": [float(x) * fac for x in data["BMIN"]],
                    "bpa": [float(x) for x in data["BPA"]],
                    "chan": [int(x) for x in data["CHAN"]],
                    "pol": [int(x) for x in data["POL"]],
                }
            if "BMAJ" in h0:
                return {
                    "kind": "single",
                    "bmaj": float(h0["BMAJ"]) * 3600.0,
                    "bmin": float(h0["BMIN"]) * 3600.0,
                    "bpa": float(h0.get("BPA", 0.0)),
                }
            return {"kind": "none"}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read FITS beams ({exc})") from exc
