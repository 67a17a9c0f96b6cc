"""Build small (or benchmark-sized) real CASA images with known content.

Used by the image tests and benchmarks: every image is written with the
CASA image tool plane by plane (bounded memory), in the ALMA axis order
RA, Dec, Frequency, Stokes, with optional single or per-channel beams.
"""
from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["gaussian_pb", "make_image", "to_fits"]

PlaneFn = Callable[[int, int], np.ndarray]


def make_image(path: str | Path, shape: Sequence[int], stokes: str | Sequence[str] = "IQUV",
               plane: PlaneFn | None = None, data: np.ndarray | None = None,
               beam: tuple | Sequence[tuple] | None = (1.0, 0.8, 30.0),
               unit: str = "Jy/beam", cell_arcsec: float = 0.1,
               ref_deg: tuple[float, float] = (150.0, -30.0), freq0: float = 230e9,
               dfreq: float = 1e6, history: Sequence[str] = (),
               order: str = "alma", ia_tool=None) -> str:
    """Create CASA image ``path`` of ``shape`` = (nx, ny, nchan, nstokes).

    Parameters
    ----------
    stokes
        Stokes labels, e.g. ``'IQUV'`` or ``['I', 'Q', 'U']``.
    plane
        ``plane(chan, istokes) -> (nx, ny) array``; or give ``data`` (full array).
    beam
        ``(bmaj", bmin", bpa deg)`` for one beam, a list of those (one per
        channel) for per-plane beams, or None.
    order
        ``'alma'`` (RA, Dec, Freq, Stokes) or ``'casa'`` (RA, Dec, Stokes, Freq).
    """
    from casatools import coordsys, image

    nx, ny, nchan, nstok = (int(n) for n in shape)
    st = list(stokes)
    if len(st) != nstok:
        raise ValueError(f"{len(st)} Stokes labels for {nstok} planes")
    cs = coordsys().newcoordsys(direction=True, spectral=True, stokes=st)
    cs.setunits(type="direction", value="deg deg")
    cs.setincrement(type="direction", value=[-cell_arcsec / 3600.0, cell_arcsec / 3600.0])
    cs.setreferencevalue(type="direction", value=list(ref_deg))
    cs.setreferencepixel(type="direction", value=[nx // 2, ny // 2])
    cs.setreferencevalue(type="spectral", value=freq0)
    cs.setincrement(type="spectral", value=dfreq)
    cs.setreferencepixel(type="spectral", value=0)
    cs.setrestfrequency(freq0)
    cs.settelescope("ALMA")
    if order == "alma":
        cs.transpose([0, 1, 3, 2])
        full = [nx, ny, nchan, nstok]
    else:
        full = [nx, ny, nstok, nchan]
    ia = image() if ia_tool is None else ia_tool
    ia.fromshape(outfile=str(path), shape=full, csys=cs.torecord(), overwrite=True)
    cs.done()
    try:
        ia.setbrightnessunit(unit)
        if beam is not None:
            if isinstance(beam[0], (tuple, list)):
                if len(beam) != nchan:
                    raise ValueError("per-channel beams need one beam per channel")
                for c, b in enumerate(beam):
                    ia.setrestoringbeam(major=f"{b[0]}arcsec", minor=f"{b[1]}arcsec",
                                        pa=f"{b[2]}deg", channel=c, polarization=-1)
            else:
                ia.setrestoringbeam(major=f"{beam[0]}arcsec", minor=f"{beam[1]}arcsec",
                                    pa=f"{beam[2]}deg")
        for c in range(nchan):
            for s in range(nstok):
                if data is not None:
                    arr = data[:, :, c, s]
                elif plane is not None:
                    arr = plane(c, s)
                else:
                    continue
                arr = np.asarray(arr, dtype=np.float32)
                if order == "alma":
                    blc = [0, 0, c, s]
                    arr4 = arr[:, :, None, None]
                else:
                    blc = [0, 0, s, c]
                    arr4 = arr[:, :, None, None]
                ia.putchunk(pixels=arr4, blc=blc)
        if history:
            ia.sethistory(origin="almaqa_casa.images.testdata", history=list(history))
    finally:
        ia.done()
    return str(path)


def to_fits(image_path: str | Path, fits_path: str | Path, gz: bool = False) -> str:
    """Export a CASA image to FITS (ALMA pipeline settings); gzip it if ``gz``."""
    from casatasks import exportfits

    from .pbcor import EXPORTFITS_KW

    fits_path = Path(fits_path)
    if gz:
        plain = fits_path.with_name(f".{fits_path.name}.tmp.fits")
        exportfits(imagename=str(image_path), fitsimage=str(plain), **EXPORTFITS_KW)
        with open(plain, "rb") as fin, gzip.open(fits_path, "wb", compresslevel=1) as fout:
            shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)
        plain.unlink()
    else:
        exportfits(imagename=str(image_path), fitsimage=str(fits_path), **EXPORTFITS_KW)
    return str(fits_path)


def gaussian_pb(nx: int, ny: int, fwhm_pix: float) -> np.ndarray:
    """A circular Gaussian primary beam (peak 1) centred like :func:`make_image`."""
    x = np.arange(nx)[:, None] - nx // 2
    y = np.arange(ny)[None, :] - ny // 2
    return np.exp(-4 * np.log(2) * (x ** 2 + y ** 2) / fwhm_pix ** 2)
