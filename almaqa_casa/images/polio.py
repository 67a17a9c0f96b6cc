"""Streaming I/O for polarization maps: read Stokes planes, write FITS in chunks.

Reading: float FITS files are read straight from disk (one ``numpy.fromfile``
per Stokes plane or row block, no memory map, so resident memory stays at a
few blocks whatever the file size); CASA images, scaled or integer FITS go
through ``ia.getchunk``.  Gzipped FITS must be decompressed first
(:func:`almaqa_casa.images.fitsio.casa_readable`).

Writing: the header (and any BEAMS table) of each output is produced by
CASA's own ``exportfits`` from a one-pixel *template* image cut from the
input (same coordinate system, per-channel beams, history and unit, with the
Stokes axis set to CASA's derived type, e.g. ``Plinear``), so the FITS
conventions are exactly those exportfits/importfits round-trip; the pixels
are then streamed into the file after that header.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError

__all__ = [
    "FitsStreamWriter",
    "PolReader",
    "StokesLayout",
    "make_base_template",
    "make_template_header",
    "open_reader",
    "read_layout",
    "set_header_ints",
    "split_fits",
]

FITS_BLOCK = 2880
#: Largest tile slab (pixels, all channels of a tile plane) read directly from a CASA image;
#: beyond it (huge planes in deep tiles) the bounded-memory tofits path is used.
MAX_SLAB_PIXELS = 16 * 1024 * 1024


@dataclass
class StokesLayout:
    """Axes of an image: shape (CASA order x, y, ...), where Stokes and frequency are."""

    shape: list[int]
    stokes_axis: int
    spectral_axis: int | None
    stokes: list[str]
    unit: str
    beams: dict = field(default_factory=dict)

    @property
    def nx(self) -> int:
        return self.shape[0]

    @property
    def ny(self) -> int:
        return self.shape[1]

    @property
    def nchan(self) -> int:
        return self.shape[self.spectral_axis] if self.spectral_axis is not None else 1

    def index(self, name: str) -> int | None:
        return self.stokes.index(name) if name in self.stokes else None


def read_layout(path: str) -> StokesLayout:
    """Shape, Stokes/spectral axes, Stokes labels, unit and beams of an image (CASA)."""
    from casatools import image

    ia = image()
    try:
        ia.open(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot open as an image ({exc})") from exc
    try:
        shape = [int(n) for n in ia.shape()]
        cs = ia.coordsys()
        try:
            fs = cs.findcoordinate("stokes")
            fsp = cs.findcoordinate("spectral")
            fd = cs.findcoordinate("direction")
            stokes_axis = int(fs["pixel"][0]) if fs["return"] else None
            spectral_axis = int(fsp["pixel"][0]) if fsp["return"] and len(fsp["pixel"]) else None
            stokes = list(cs.stokes()) if fs["return"] else []
            dir_axes = [int(a) for a in fd["pixel"]] if fd["return"] else []
        finally:
            cs.done()
        unit = ia.brightnessunit()
        beams = ia.restoringbeam()
    finally:
        ia.done()
    if dir_axes != [0, 1]:
        raise InputError(f"{path}: the first two axes must be the sky (RA, Dec); found {dir_axes}")
    if stokes_axis is None:
        raise InputError(f"{path}: not a polarization image: it has no Stokes axis")
    other = [i for i in range(2, len(shape)) if i not in (stokes_axis, spectral_axis)]
    if any(shape[i] != 1 for i in other):
        raise InputError(f"{path}: unsupported non-degenerate axes {other}")
    return StokesLayout(shape, stokes_axis, spectral_axis, stokes, unit, beams)


def _fits_data_start(path: str) -> tuple[int, dict]:
    """Byte offset of the primary data and the primary header cards we need."""
    cards: dict[str, str] = {}
    with open(path, "rb") as fh:
        nblock = 0
        while True:
            block = fh.read(FITS_BLOCK)
            if len(block) < FITS_BLOCK:
                raise InputError(f"{path}: truncated FITS header")
            nblock += 1
            for k in range(0, FITS_BLOCK, 80):
                card = block[k:k + 80].decode("ascii", "replace")
                key = card[:8].strip()
                if key == "END":
                    return nblock * FITS_BLOCK, cards
                if card[8:10] == "= ":
                    cards[key] = card[10:].split("/")[0].strip().strip("'").strip()


def fits_fast_path(path: str, shape: list[int]) -> tuple[int, int, list[int]] | None:
    """(data offset, BITPIX, NAXISn) if ``path`` is an unscaled float FITS of ``shape``, else None.

    Such files are read directly from disk; anything else goes through CASA.
    """
    if not Path(path).is_file():
        return None
    try:
        start, cards = _fits_data_start(path)
    except (ValueError, OSError):
        return None
    bitpix = int(cards.get("BITPIX", "0"))
    scaled = (float(cards.get("BSCALE", "1")) != 1.0 or float(cards.get("BZERO", "0")) != 0.0)
    naxis = [int(cards.get(f"NAXIS{k + 1}", "0")) for k in range(int(cards.get("NAXIS", "0")))]
    if bitpix in (-32, -64) and not scaled and naxis == list(shape):
        return start, bitpix, naxis
    return None


@dataclass
class TileLayout:
    """Where the pixels of a paged CASA image are on disk (one tiled hypercube)."""

    path: str
    tile: list[int]
    grid: list[int]
    dtype: np.dtype
    bucket: int


def tiled_layout(image_path: str, shape: list[int]) -> TileLayout | None:
    """The tile layout of a CASA image's pixel column, if it can be read directly; else None.

    Only the plain case is accepted: a float ``map`` column in one
    TiledCellStMan/TiledShapeStMan hypercube of the image's shape, whose
    data file holds exactly the tiles (buckets of one tile), no pixel mask.
    Anything else (masks, compressed or reference images) returns None and
    is read through CASA instead.
    """
    from casatools import image, table

    p = Path(image_path)
    if not (p / "table.dat").exists():
        return None
    ia = image()
    try:
        ia.open(str(p))
        if any(str(m) for m in ia.maskhandler("default")):
            return None
    except Exception:
        return None
    finally:
        ia.done()
    tb = table()
    try:
        tb.open(str(p))
        if tb.coldatatype("map").lower() != "float":
            return None
        dms = [d for d in tb.getdminfo().values() if "map" in list(d.get("COLUMNS", []))]
        endian = tb.endianformat()
    except Exception:
        return None
    finally:
        tb.close()
    if len(dms) != 1 or dms[0].get("TYPE") not in ("TiledCellStMan", "TiledShapeStMan"):
        return None
    cubes = list(dms[0]["SPEC"].get("HYPERCUBES", {}).values())
    if len(cubes) != 1:
        return None
    cube = cubes[0]
    tile = [int(x) for x in cube["TileShape"]]
    if [int(x) for x in cube["CubeShape"]] != list(shape) or len(tile) != len(shape):
        return None
    grid = [-(-n // t) for n, t in zip(shape, tile)]
    bucket = int(cube.get("BucketSize", 0))
    if bucket != int(np.prod(tile)) * 4:
        return None
    data = p / f"table.f{int(dms[0]['SEQNR'])}_TSM0"
    if not data.is_file() or data.stat().st_size != int(np.prod(grid)) * bucket:
        return None
    dtype = np.dtype("<f4" if endian == "little" else ">f4")
    return TileLayout(str(data), tile, grid, dtype, bucket)


class PolReader:
    """Read blocks of Stokes planes as float32 (stokes, chan, y, x), masked pixels NaN.

    Unscaled float FITS files are read straight from disk.  Anything else
    (CASA images, scaled FITS) is converted block by block with the C++
    ``ia.tofits`` into a scratch FITS file in ``workdir`` and read back:
    far faster than ``ia.getchunk`` (whose Python conversion costs ~20 ns per
    pixel) and, unlike one ``tofits`` of the whole image, bounded in memory.
    """

    def __init__(self, path: str, layout: StokesLayout, workdir: str | os.PathLike | None = None):
        self.path = path
        self.layout = layout
        self.mode = "casa"
        self._fh: BinaryIO | None = None
        self._ia = None
        self._rg = None
        self._scratch = None
        fast = fits_fast_path(path, layout.shape)
        if fast is not None:
            start, bitpix, naxis = fast
            self.mode = "fits"
            self._dtype = np.dtype(">f4" if bitpix == -32 else ">f8")
            self._start = start
            self._fh = open(path, "rb")
            strides = [1]  # in elements of the FITS array (x fastest)
            for n in naxis[:-1]:
                strides.append(strides[-1] * n)
            self._strides = strides
        self._tiles = tiled_layout(path, layout.shape) if fast is None and len(layout.shape) in (3, 4) \
            else None
        if self._tiles is not None and layout.spectral_axis is not None:
            # a cached tile slab holds every channel of its tiles: keep it bounded
            depth = self._tiles.tile[layout.spectral_axis]
            if depth > 1 and depth * layout.nx * layout.ny > MAX_SLAB_PIXELS:
                self._tiles = None
        if self._tiles is not None:
            self.mode = "tiled"
            self._fh = open(self._tiles.path, "rb")
            self._slabs: dict = {}
        if self.mode == "casa":
            from casatools import image, regionmanager

            if workdir is None:
                raise ValueError(f"{path}: reading a CASA image needs a scratch folder")
            self._ia = image()
            self._ia.open(path)
            self._rg = regionmanager()
            self._scratch = str(Path(workdir) / "block.fits")

    def read(self, stokes: int, chan: int, y0: int = 0, y1: int | None = None) -> np.ndarray:
        """Rows ``y0:y1`` of Stokes plane ``stokes`` in channel ``chan``: (ny', nx), masked → NaN."""
        return self.read_block([stokes], chan, chan + 1, y0, y1)[0, 0]

    def read_block(self, stokes: list[int], c0: int, c1: int, y0: int = 0,
                   y1: int | None = None) -> np.ndarray:
        """Stokes planes ``stokes`` of channels ``c0:c1``, rows ``y0:y1``.

        Returns float32 of shape (len(stokes), c1 - c0, y1 - y0, nx); masked
        pixels are NaN.
        """
        lay = self.layout
        y1 = lay.ny if y1 is None else y1
        nch, nrow = c1 - c0, y1 - y0
        if self.mode == "fits":
            out = np.empty((len(stokes), nch, nrow, lay.nx), dtype=np.float32)
            # channels contiguous in the file when whole planes are read and
            # the spectral axis directly follows y
            contiguous = (nrow == lay.ny and (lay.spectral_axis in (None, 2)))
            for k, s in enumerate(stokes):
                if contiguous:
                    out[k] = self._read_run(s, c0, 0, nch * nrow * lay.nx).reshape(nch, nrow, lay.nx)
                else:
                    for j, c in enumerate(range(c0, c1)):
                        out[k, j] = self._read_run(s, c, y0, nrow * lay.nx).reshape(nrow, lay.nx)
            return out
        if self.mode == "tiled":
            return self._read_tiled(stokes, c0, c1, y0, y1)
        nd = len(lay.shape)
        lo, hi = min(stokes), max(stokes)
        blc = [0] * nd
        trc = [n - 1 for n in lay.shape]
        blc[lay.stokes_axis], trc[lay.stokes_axis] = lo, hi
        if lay.spectral_axis is not None:
            blc[lay.spectral_axis], trc[lay.spectral_axis] = c0, c1 - 1
        blc[1], trc[1] = y0, y1 - 1
        self._ia.tofits(outfile=self._scratch, region=self._rg.box(blc=blc, trc=trc),
                        velocity=False, optical=False, bitpix=-32, stokeslast=False,
                        overwrite=True, history=False, dropdeg=False)
        shape = [t - b + 1 for b, t in zip(blc, trc)]
        start, _ = _fits_data_start(self._scratch)
        n = int(np.prod(shape))
        arr = np.fromfile(self._scratch, dtype=">f4", count=n, offset=start)
        if arr.size != n:
            raise RuntimeError(f"{self.path}: block conversion wrote {arr.size} of {n} pixels")
        arr = arr.astype(np.float32).reshape(shape[::-1]).T  # CASA axis order (x, y, ...)
        order = [lay.stokes_axis] + ([lay.spectral_axis] if lay.spectral_axis is not None else []) + [1, 0]
        order += [ax for ax in range(nd) if ax not in order]
        arr = arr.transpose(order).reshape(hi - lo + 1, nch, nrow, lay.nx)
        return arr[[s_ - lo for s_ in stokes]]

    def _slab(self, s: int, tspec: int, ty0: int, ty1: int) -> np.ndarray:
        """Tile rows ``ty0:ty1`` of the tile plane holding Stokes ``s`` and spectral tile ``tspec``.

        Returns (channels in the tile, rows, nx) float32 (padded tiles cropped).
        """
        cache = self._slabs.setdefault(s, {})
        key = (tspec, ty0, ty1)
        if key in cache:
            return cache[key]
        if any(k[0] != tspec for k in cache):  # keep the current tile plane only
            cache.clear()
        lay, tl = self.layout, self._tiles
        nd = len(lay.shape)
        T, G = tl.tile, tl.grid
        tidx = [0] * nd
        tidx[1] = ty0
        tidx[lay.stokes_axis] = s // T[lay.stokes_axis]
        if lay.spectral_axis is not None:
            tidx[lay.spectral_axis] = tspec
        n0, mult = 0, 1
        for a in range(nd):  # Fortran order over the tile grid
            n0 += tidx[a] * mult
            mult *= G[a]
        nty = ty1 - ty0
        count = nty * G[0] * int(np.prod(T))
        self._fh.seek(n0 * tl.bucket)
        raw = np.fromfile(self._fh, dtype=tl.dtype, count=count)
        if raw.size != count:
            raise InputError(f"{self.path}: pixel file shorter than its tile layout says")
        arr = raw.reshape((nty, G[0]) + tuple(T[::-1]))
        # (rows of tiles, tiles in x, T[nd-1], ..., T[1], T[0]) -> (T[nd-1], ..., T[2], y, x)
        inner = list(range(2, 2 + nd - 2))
        arr = arr.transpose(inner + [0, nd, 1, nd + 1])
        arr = arr.reshape(tuple(T[:1:-1]) + (nty * T[1], G[0] * T[0]))
        sel: list = []
        for a in range(nd - 1, 1, -1):  # axes in the array order
            if a == lay.stokes_axis:
                sel.append(s % T[a])
            elif a == lay.spectral_axis:
                sel.append(slice(None))
            else:
                sel.append(0)
        arr = arr[tuple(sel)]
        if lay.spectral_axis is None:
            arr = arr[None]
        ny_slab = min(lay.ny, ty1 * T[1]) - ty0 * T[1]
        nch = min(T[lay.spectral_axis], lay.nchan - tspec * T[lay.spectral_axis]) \
            if lay.spectral_axis is not None else 1
        arr = np.ascontiguousarray(arr[:nch, :ny_slab, :lay.nx], dtype=np.float32)
        cache[key] = arr
        return arr

    def _read_tiled(self, stokes: list[int], c0: int, c1: int, y0: int, y1: int) -> np.ndarray:
        lay, T = self.layout, self._tiles.tile
        out = np.empty((len(stokes), c1 - c0, y1 - y0, lay.nx), dtype=np.float32)
        ty0, ty1 = y0 // T[1], -(-y1 // T[1])
        tz = T[lay.spectral_axis] if lay.spectral_axis is not None else 1
        for k, s in enumerate(stokes):
            c = c0
            while c < c1:
                tspec = c // tz
                slab = self._slab(s, tspec, ty0, ty1)
                first = tspec * tz
                hi = min(c1, first + slab.shape[0])
                out[k, c - c0:hi - c0] = slab[c - first:hi - first, y0 - ty0 * T[1]:y1 - ty0 * T[1]]
                c = hi
        return out

    def _read_run(self, stokes: int, chan: int, y0: int, count: int) -> np.ndarray:
        """``count`` consecutive pixels of the FITS data starting at (0, y0, chan, stokes)."""
        lay = self.layout
        idx = [0] * len(lay.shape)
        idx[lay.stokes_axis] = stokes
        if lay.spectral_axis is not None:
            idx[lay.spectral_axis] = chan
        idx[1] = y0
        off = sum(i * st for i, st in zip(idx, self._strides))
        self._fh.seek(self._start + off * self._dtype.itemsize)
        arr = np.fromfile(self._fh, dtype=self._dtype, count=count)
        if arr.size != count:
            raise InputError(f"{self.path}: file shorter than its header says")
        return arr  # big-endian; converted while copied into the block

    def read_row_sample(self, stokes: list[int], chan: int, nrows: int, bands: int = 8) -> np.ndarray:
        """About ``nrows`` rows of a plane in ``bands`` evenly spaced bands: (len(stokes), rows, nx).

        For noise estimates on planes too large for one block: few reads,
        rows spread over the whole plane.
        """
        ny = self.layout.ny
        nrows = max(1, min(ny, nrows))
        bands = max(1, min(bands, nrows))
        per = max(1, nrows // bands)
        starts = sorted(set(np.linspace(0, ny - per, bands).astype(int).tolist()))
        parts = [self.read_block(stokes, chan, chan + 1, y, y + per)[:, 0] for y in starts]
        return np.concatenate(parts, axis=1)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._ia is not None:
            self._ia.done()
            self._rg.done()
            self._ia = None

    def __enter__(self) -> PolReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_reader(path: str, workdir: str | os.PathLike | None = None) -> PolReader:
    """A :class:`PolReader` for an image CASA can open (plain FITS or CASA image)."""
    return PolReader(path, read_layout(path), workdir)


def split_fits(path: str | os.PathLike) -> tuple[bytes, int, bytes]:
    """(primary header bytes, primary data bytes incl. padding, extension bytes) of a FITS file.

    Raw bytes, no parsing beyond BITPIX/NAXISn: used to reuse exportfits'
    header and BEAMS table for a streamed output without a FITS library.
    """
    start, cards = _fits_data_start(str(path))
    bitpix = abs(int(cards["BITPIX"]))
    n = 1
    naxis = int(cards["NAXIS"])
    for k in range(naxis):
        n *= int(cards[f"NAXIS{k + 1}"])
    nbytes = (n * bitpix // 8) if naxis else 0
    padded = -(-nbytes // FITS_BLOCK) * FITS_BLOCK
    with open(path, "rb") as fh:
        header = fh.read(start)
        fh.seek(start + padded)
        ext = fh.read()
    return header, padded, ext


def set_header_ints(header: bytes, values: dict[str, int]) -> bytes:
    """Replace the values of integer cards (e.g. NAXIS1) in a raw FITS header."""
    cards = [header[k:k + 80] for k in range(0, len(header), 80)]
    done = set()
    for j, card in enumerate(cards):
        key = card[:8].decode("ascii").strip()
        if key in values and card[8:10] == b"= ":
            cards[j] = f"{key:<8}= {values[key]:>20d}".ljust(80).encode("ascii")
            done.add(key)
    missing = set(values) - done
    if missing:
        raise ValueError(f"FITS header lacks {sorted(missing)}")
    return b"".join(cards)


def make_base_template(src: str, layout: StokesLayout, stokes_index: int, workdir: Path) -> str:
    """A 1×1-pixel CASA image cut from ``src``: all channels of one Stokes plane.

    It keeps the coordinate system (reference pixels unchanged because the
    box starts at pixel 0), that plane's per-channel beams, the history and
    miscinfo, so exportfits of it gives the header of a derived product.
    """
    from casatools import image, regionmanager

    ia, rg = image(), regionmanager()
    tmpl = str(workdir / "template_base.im")
    blc = [0] * len(layout.shape)
    trc = [0] * len(layout.shape)
    blc[layout.stokes_axis] = trc[layout.stokes_axis] = stokes_index
    if layout.spectral_axis is not None:
        trc[layout.spectral_axis] = layout.nchan - 1
    ia.open(src)
    try:
        sub = ia.subimage(outfile=tmpl, region=rg.box(blc=blc, trc=trc), overwrite=True)
        sub.done()
    finally:
        ia.done()
        rg.done()
    return tmpl


def make_template_header(base: str, layout: StokesLayout, stokes_type: str, unit: str,
                         history: list[str], workdir: Path, tag: str) -> tuple[bytes, bytes]:
    """Primary header and extension bytes exportfits writes for a derived plane.

    The base template (:func:`make_base_template`) is copied, its Stokes set
    to ``stokes_type`` (CASA derived types such as ``Plinear``/``Pangle``),
    its unit to ``unit`` and ``history`` appended; exportfits writes it and
    NAXIS1/NAXIS2 are set to the full image size.
    """
    from casatasks import exportfits
    from casatools import image

    from .pbcor import EXPORTFITS_KW

    ia = image()
    tmpl = str(workdir / f"template_{tag}.im")
    ia.open(base)
    try:
        sub = ia.subimage(outfile=tmpl, overwrite=True)
    finally:
        ia.done()
    try:
        cs = sub.coordsys()
        cs.setstokes([stokes_type])
        sub.setcoordsys(cs.torecord())
        cs.done()
        sub.setbrightnessunit(unit)
        if history:
            sub.sethistory(origin="qa_polmaps", history=list(history))
    finally:
        sub.done()
    tfits = workdir / f"template_{tag}.fits"
    exportfits(imagename=tmpl, fitsimage=str(tfits), **EXPORTFITS_KW)
    header, _, ext = split_fits(tfits)
    header = set_header_ints(header, {"NAXIS1": layout.nx, "NAXIS2": layout.ny})
    return header, ext


class FitsStreamWriter:
    """Write a primary FITS image sequentially: header, then float32 rows, then extensions.

    Rows arrive in FITS order (x fastest, then y, then channel), which is
    the order :func:`make_polmaps` produces them in.
    """

    def __init__(self, path: str | os.PathLike, header: bytes, extensions: bytes, npixels: int):
        self.path = Path(path)
        self.extensions = extensions
        self.expected = npixels
        self.written = 0
        self._fh = open(self.path, "wb")
        self._fh.write(header)

    def write(self, block: np.ndarray) -> None:
        arr = np.asarray(block, dtype=">f4")
        arr.tofile(self._fh)
        self.written += arr.size

    def close(self) -> None:
        if self._fh is None:
            return
        if self.written != self.expected:
            self._fh.close()
            self._fh = None
            raise RuntimeError(f"{self.path}: wrote {self.written} of {self.expected} pixels")
        self._fh.write(b"\0" * ((-self.written * 4) % FITS_BLOCK))
        self._fh.write(self.extensions)
        self._fh.close()
        self._fh = None

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
