"""Linear polarization intensity and angle maps from IQUV images, in one streaming pass.

For each input (an IQUV FITS / gzipped FITS / CASA image, or every IQUV
product found in a delivery) the Stokes Q and U planes are read channel by
channel (row blocks for planes larger than :data:`MAX_BLOCK_PIXELS`), and P,
A (and optionally P/I) are computed together and streamed into their FITS
files, so memory is a few blocks whatever the image size.  Arithmetic and
masking follow CASA's immath (see :mod:`almaqa_casa.images.polcalc`);
headers come from exportfits (see :mod:`almaqa_casa.images.polio`).

Beyond immath, what a primary-beam corrected image needs: pixels where the
delivered primary beam is below ``pblimit`` (0.2, the pipeline's image
limit) are masked; the noise is estimated on the uncorrected image
(pbcor × pb, where it is flat) and grows as 1/pb on the corrected one, so
``'Nsigma'`` thresholds and the estimated debiasing σ follow the beam;
P/I is kept only where Stokes I is above ``fracthresh`` and P/I <= 1.
The result counts the pixels each mask removed and says why.

A special file (FIFO, device) named like a product is never opened: it
becomes a failed entry naming it (an input error for a single path).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import InputError
from ..safeio import require_regular
from . import polcalc
from .fitsio import casa_readable, image_format, temp_workdir
from .pbcor import recover_uncorrected
from .polio import (
    FitsStreamWriter,
    StokesLayout,
    make_base_template,
    make_template_header,
    open_reader,
    read_layout,
)
from .polnames import POL_INPUT_STOKES, is_pbcor_name, output_names, pb_candidates

__all__ = [
    "DEFAULT_FRACTHRESH",
    "DEFAULT_PBLIMIT",
    "MAX_BLOCK_PIXELS",
    "STOKES_TYPES",
    "PolInputMissing",
    "PolmapsOptions",
    "find_iquv_products",
    "find_pb",
    "make_polmaps",
    "polmaps_one",
]

#: Largest block (pixels) computed at once; larger planes go in row blocks.
MAX_BLOCK_PIXELS = 2 * 1024 * 1024
#: Pixels sampled per plane for the noise estimate of planes above that size.
NOISE_SAMPLE_PIXELS = 2 * 1024 * 1024
#: CASA Stokes types of the products (exportfits STOKES 129, 7, 6).
STOKES_TYPES = {"P": "Plinear", "A": "Pangle", "PF": "PFlinear"}
#: Primary-beam level below which the maps are masked: the pipeline's image
#: pblimit (``imageparams_base.pblimits``: ``pblimit_image = 0.2``).
DEFAULT_PBLIMIT = 0.2
#: Stokes I threshold for P/I: a multiple of the Stokes I noise.
DEFAULT_FRACTHRESH = "5sigma"


class PolInputMissing(InputError, FileNotFoundError):
    """An image or primary beam qa_polmaps needs does not exist."""


@dataclass
class PolmapsOptions:
    """qa_polmaps parameters, already parsed."""

    polithresh: str = ""
    debias: bool = False
    sigma: str = ""
    pbcor: bool = True
    fractional: bool = False
    overwrite: bool = False
    maskpoli: bool = False
    pbimage: str = ""
    pblimit: float = DEFAULT_PBLIMIT
    fracthresh: str = DEFAULT_FRACTHRESH


# ---------------------------------------------------------------- discovery

def _is_image_candidate(p: Path) -> bool:
    """Named like an image; a FIFO or device with such a name is kept (and refused later)."""
    n = p.name
    if n.startswith("."):
        return False
    if p.is_dir():
        return (p / "table.dat").exists()
    return n.endswith((".fits", ".fits.gz", ".fit", ".fit.gz"))


def check_image_path(path: str | Path, what: str = "image") -> str:
    """The format ('casa', 'fits', 'fits.gz') of an image path, without ever opening a special file.

    Raises :class:`PolInputMissing` when it does not exist,
    :class:`almaqa_casa.safeio.SpecialFileError` for a FIFO/device/socket
    (checked with ``stat`` before any ``open``) and
    :class:`~almaqa_casa.errors.InputError` when it is no FITS or CASA image.
    """
    p = Path(path)
    if not p.exists():
        raise PolInputMissing(f"{p}: {what} not found")
    if p.is_dir():
        if not (p / "table.dat").exists():
            raise InputError(f"{p}: {what} folder is not a CASA image (no table.dat)")
        require_regular(p / "table.dat")
        return "casa"
    require_regular(p)
    try:
        return image_format(p)
    except ValueError as exc:
        raise InputError(str(exc) if what == "image" else f"{what} {exc}") from None


def find_iquv_products(path: str | Path) -> list[str]:
    """IQUV images to process: ``path`` itself, or every ``*IQUV*`` product below a folder.

    In a delivery (member folders found by
    :func:`almaqa_casa.delivery.layout.find_members`) only ``product/`` is
    searched; pb, mask and derived products are skipped; when a product is
    present both primary-beam corrected and not, only the corrected one is
    taken (the pbcor/pb pair is what ALMA delivers).
    """
    from ..delivery.layout import find_members
    from ..delivery.naming import parse_name

    p = Path(path)
    if p.is_dir() and (p / "table.dat").exists():
        return [str(p)]
    if p.exists() and not p.is_dir():
        return [str(p)]  # a file (a special one is refused, unopened, when processed)
    if not p.is_dir():
        raise PolInputMissing(f"{p}: no such image or folder")
    members = find_members(p)
    roots = [m / "product" for m in members if (m / "product").is_dir()] or [p]
    found: list[Path] = []
    for root in roots:
        for cand in sorted(root.rglob("*IQUV*")):
            if not _is_image_candidate(cand):
                continue
            rel_parents = cand.relative_to(root).parents
            if any((root / q / "table.dat").exists() for q in rel_parents if str(q) != "."):
                continue  # a file inside a CASA image folder
            parsed = parse_name(cand.name)
            if parsed is not None:
                if parsed.stokes not in POL_INPUT_STOKES or parsed.kind not in ("pbcor", "image"):
                    continue
            elif any(t in cand.name for t in (".pb.", ".mask.", ".psf", ".residual", ".model")):
                continue
            found.append(cand)
    pbcor = [c for c in found if is_pbcor_name(c.name)]
    return [str(c) for c in (pbcor or found)]


def find_pb(image: str | Path) -> str | None:
    """The primary beam delivered next to a pbcor image, or None (existence only; not opened)."""
    p = Path(image)
    for name in pb_candidates(p.name):
        c = p.parent / name
        if (c.exists() or c.is_symlink()) and c != p:
            return str(c)
    return None


# ---------------------------------------------------------------- helpers

def _beam_table(layout: StokesLayout, stokes: int) -> list | None:
    b = layout.beams
    if not b or "beams" not in b:
        return None
    out = []
    for c in range(int(b["nChannels"])):
        ch = b["beams"][f"*{c}"]
        out.append(ch[f"*{stokes}"] if f"*{stokes}" in ch else ch["*0"])
    return out


def _check_beams(layout: StokesLayout, iq: int, iu: int, name: str) -> None:
    """Per-plane beams of Q and U must agree (as immath requires)."""
    bq, bu = _beam_table(layout, iq), _beam_table(layout, iu)
    if bq is None:
        return
    for c, (a, b) in enumerate(zip(bq, bu)):
        for k in ("major", "minor", "positionangle"):
            va, vb = a[k]["value"], b[k]["value"]
            if not math.isclose(va, vb, rel_tol=1e-5, abs_tol=1e-9):
                raise ValueError(
                    f"{name}: Stokes Q and U beams differ in channel {c} ({k} {va} vs {vb}); "
                    "P and A need equal beams")


def _blocks(nchan: int, ny: int, nx: int,
            max_pixels: int | None = None) -> list[tuple[int, int, int, int]]:
    """(c0, c1, y0, y1) blocks in file order: groups of whole planes, or row blocks of one plane."""
    max_pixels = max_pixels or MAX_BLOCK_PIXELS
    plane = ny * nx
    if plane <= max_pixels:
        g = max(1, max_pixels // plane)
        return [(c, min(nchan, c + g), 0, ny) for c in range(0, nchan, g)]
    rows = max(1, max_pixels // max(nx, 1))
    return [(c, c + 1, y, min(ny, y + rows)) for c in range(nchan) for y in range(0, ny, rows)]


def _pipeline(blocks, read, compute, write, depth: int = 3, workers: int | None = None) -> None:
    """Run read → compute → write over ``blocks`` with overlap and bounded memory.

    One reader thread (the image tool / file handle is used from one thread
    only), ``workers`` compute threads (numpy releases the GIL), and writes
    in block order in the calling thread; at most ``depth`` blocks are in
    flight, so memory stays at a few blocks.
    """
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    blocks = iter(blocks)
    with ThreadPoolExecutor(1, thread_name_prefix="polread") as rex, \
            ThreadPoolExecutor(workers, thread_name_prefix="polcalc") as cex:
        pending: deque = deque()

        def submit() -> bool:
            b = next(blocks, None)
            if b is None:
                return False
            rf = rex.submit(read, b)
            pending.append(cex.submit(lambda: compute(b, rf.result())))
            return True

        for _ in range(depth):
            if not submit():
                break
        try:
            while pending:
                out = pending.popleft().result()
                submit()
                write(out)
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _per_chan(v):
    """Scalar, or per-channel values shaped to broadcast over (nchan, ny, nx) blocks."""
    if v is None or np.isscalar(v):
        return v
    return np.asarray(v, dtype=np.float32).reshape(-1, 1, 1)


_USED = {True: "primary-beam corrected", False: "primary-beam uncorrected (pbcor x pb)",
         None: "input as given"}


def _history(opts: PolmapsOptions, product: str, src: str, pbcor_used: bool | None,
             thr: polcalc.Threshold | None, sigma_text: str, pb: str | None) -> list[str]:
    from .. import __version__

    what = {"P": "linear polarized intensity sqrt(Q^2+U^2)"
                 + (" - sigma_P^2 (debiased)" if opts.debias else ""),
            "A": "polarization angle 0.5*atan2(U,Q) in deg [-90,90]",
            "PF": "fractional linear polarization P/I"}[product]
    from ..restore.provenance import present_versions
    casa = present_versions()
    return [
        f"almaqa_casa {__version__} qa_polmaps: {what}",
        f"qa_polmaps with CASA {casa['casa']} (casatools {casa['casatools']})",
        f"qa_polmaps input: {Path(src).name}",
        f"qa_polmaps image used: {_USED[pbcor_used]}",
        f"qa_polmaps(polithresh='{opts.polithresh}', debias={opts.debias}, sigma='{opts.sigma}', "
        f"pbcor={opts.pbcor}, fractional={opts.fractional}, maskpoli={opts.maskpoli}, "
        f"pblimit={opts.pblimit}, fracthresh='{opts.fracthresh}')",
        f"qa_polmaps threshold: {thr.text if thr else 'none'}; sigma: {sigma_text}",
        f"qa_polmaps primary beam: {Path(pb).name if pb else 'none found (no pb mask)'}",
    ]


# ---------------------------------------------------------------- one image

_REASON_TEXT = {
    "input": "masked (NaN) in the input",
    "pblimit": "primary beam below pblimit",
    "polithresh": "P below polithresh",
    "debias": "debiased P undefined (Q^2+U^2 < sigma_P^2)",
    "stokes_i": "Stokes I below fracthresh (or not positive)",
    "above_one": "P/I above 1 (P > I: noise)",
}


def _pb_layout(pb: str, lay: StokesLayout) -> StokesLayout:
    """The primary beam's layout, checked against the image (same sky grid; 1 or nchan planes)."""
    try:
        pl = read_layout(pb)
    except InputError as exc:
        raise InputError(f"primary beam {pb} cannot be used: {exc}") from None
    if (pl.nx, pl.ny) != (lay.nx, lay.ny):
        raise InputError(f"primary beam {pb} is {pl.nx}x{pl.ny} pixels, the image "
                         f"{lay.nx}x{lay.ny}")
    if pl.nchan not in (1, lay.nchan):
        raise InputError(f"primary beam {pb} has {pl.nchan} channels, the image {lay.nchan}")
    return pl


def _masking_text(masked: dict, total: int, opts: PolmapsOptions, pb: str | None,
                  pb_scaled: bool, thr, ithr, sigma_i_used: bool) -> list[str]:
    """Sentences saying what was masked in each product and why."""
    out = []
    if pb:
        out.append(f"primary beam {Path(pb).name}: pixels where it is below pblimit="
                   f"{opts.pblimit:g} are masked in every product" if opts.pblimit > 0 else
                   f"primary beam {Path(pb).name}: no primary-beam mask (pblimit <= 0)")
        if pb_scaled:
            out.append("noise estimated on the uncorrected image (pbcor x pb); on the corrected "
                       "image it is that divided by the primary beam, so sigma thresholds and "
                       "the estimated debiasing sigma grow towards the edge of the beam")
    else:
        out.append("no primary beam found next to the input (give pbimage=...): not masked by "
                   "primary-beam level, noise taken as uniform")
    if thr is not None:
        out.append(f"A (and P/I{', P' if opts.maskpoli else ''}) masked where the non-debiased P "
                   f"is below polithresh='{thr.text}'")
    if opts.fractional:
        what = ("'" + ithr.text + "'" + (" of the Stokes I noise" if ithr.kind == "sigma" else "")
                if ithr is not None else "0 (no fracthresh)")
        out.append(f"P/I masked where Stokes I is below {what}, and where P/I > 1")
    for k, counts in masked.items():
        parts = [f"{n} {_REASON_TEXT[r]}" for r, n in counts.items() if n]
        out.append(f"{k}: {sum(counts.values())} of {total} pixels masked"
                   + (" (" + "; ".join(parts) + ")" if parts else ""))
    return out


def polmaps_one(src: str, outdir: str | Path, opts: PolmapsOptions) -> dict:
    """Make the P and A (and P/I) FITS files of one IQUV image; return its result entry."""
    t0 = time.time()
    src = str(src)
    outdir = Path(outdir)
    fmt = check_image_path(src)
    thr = polcalc.parse_threshold(opts.polithresh)
    sig = polcalc.parse_sigma(opts.sigma) if opts.debias else None
    ithr = (polcalc.parse_threshold(opts.fracthresh, param="fracthresh")
            if opts.fractional else None)
    result: dict = {"input": src, "format": fmt, "status": "ok"}

    pbcor_input = is_pbcor_name(src)
    use_uncorrected = (not opts.pbcor) and (pbcor_input or bool(opts.pbimage))
    # True: pbcor image used; False: uncorrected; None: input not named pbcor, used as given
    pbcor_used: bool | None = (True if pbcor_input else None) if opts.pbcor else False
    if not opts.pbcor and not use_uncorrected:
        result["note"] = "input is not a pbcor product; used as the uncorrected image"
    pb = opts.pbimage or find_pb(src)
    if use_uncorrected and not pb:
        raise PolInputMissing(
            f"{src}: pbcor=False needs the primary beam; none of "
            f"{', '.join(pb_candidates(Path(src).name)[:6])} exists next to it "
            "(give pbimage=...)")
    if pb:
        check_image_path(pb, "primary beam")
    pb_scaled = bool(pb) and pbcor_used is True  # noise ~ 1/pb on the corrected image
    outdir.mkdir(parents=True, exist_ok=True)
    names = output_names(src, pbcor_used=not use_uncorrected)
    products = ["P", "A"] + (["PF"] if opts.fractional else [])
    outputs = {k: str(outdir / names[k]) for k in products}
    for k, path in outputs.items():
        if Path(path).exists() and not opts.overwrite:
            raise FileExistsError(f"{path} exists (use overwrite=True to replace it)")

    with contextlib.ExitStack() as top:
        wd = top.enter_context(temp_workdir(outdir, prefix=".almaqa-polmaps-"))
        readable = top.enter_context(casa_readable(src, wd))
        pb_readable = top.enter_context(casa_readable(pb, wd)) if pb else None
        image_used = readable
        if use_uncorrected:
            image_used = recover_uncorrected(readable, pb, str(wd / "uncorrected.im"), workdir=str(wd))
        with contextlib.ExitStack() as rstack:
            lay = read_layout(image_used)
            iq, iu, ii = lay.index("Q"), lay.index("U"), lay.index("I")
            if iq is None and iu is None:
                raise InputError(f"{src}: not a polarization image: Stokes {''.join(lay.stokes)} "
                                 "has neither Q nor U (an IQUV product is needed)")
            if iq is None or iu is None:
                raise InputError(f"{src}: Stokes axis {lay.stokes} has only one of Q and U; "
                                 "P and A need both")
            if opts.fractional and ii is None:
                raise InputError(f"{src}: fractional=True needs Stokes I, which is missing "
                                 f"(Stokes {lay.stokes})")
            _check_beams(lay, iq, iu, src)
            nchan, ny, nx = lay.nchan, lay.ny, lay.nx
            pb_lay = _pb_layout(pb_readable, lay) if pb_readable else None

            # thresholds / sigma in the image unit
            thr_value = None
            if thr is not None and thr.kind == "flux":
                thr_value = polcalc.to_unit(thr.value, thr.unit, lay.unit, f"{src}: polithresh")
            ithr_value = None
            if ithr is not None and ithr.kind == "flux":
                ithr_value = polcalc.to_unit(ithr.value, ithr.unit, lay.unit, f"{src}: fracthresh")
            sig_value = None
            if sig is not None:
                sig_qu = [polcalc.to_unit(x.value, x.unit, lay.unit, f"{src}: sigma") for x in sig]
                sig_value = float(polcalc.sigma_p(*sig_qu))
            need_i_noise = ithr is not None and ithr.kind == "sigma"
            need_noise = ((thr is not None and thr.kind == "sigma") or (opts.debias and sig is None)
                          or need_i_noise)
            where = " of the uncorrected image (pbcor x pb; divided by pb on the corrected one)" \
                if pb_scaled else ""
            sigma_text = (f"sigma_P {sig_value} {lay.unit} from sigma_Q, sigma_U (given)"
                          if sig_value is not None else
                          f"estimated per channel from Q and U{where}" if need_noise else "none")

            units = {"P": lay.unit, "A": "deg", "PF": ""}
            noise: dict = {"sigma_q": [], "sigma_u": [], "sigma": [], "sigma_i": []}
            thr_per_chan: list[float] = []
            masked = {k: dict.fromkeys(polcalc.MASK_REASONS, 0) for k in products}
            with contextlib.ExitStack() as stack:
                writers = {}
                base = make_base_template(image_used, lay, iq, wd)
                for k in products:
                    hdr, exts = make_template_header(
                        base, lay, STOKES_TYPES[k], units[k],
                        _history(opts, k, src, pbcor_used, thr, sigma_text, pb), wd, k)
                    tmp = stack.enter_context(atomic_output(outputs[k], overwrite=opts.overwrite))
                    w = FitsStreamWriter(tmp, hdr, exts, nchan * ny * nx)
                    stack.callback(w.abort)
                    writers[k] = w
                want = [iq, iu] + ([ii] if (ii is not None and (opts.fractional or need_noise)) else [])
                rd = rstack.enter_context(open_reader(image_used, wd))
                pbrd = None
                if pb_lay is not None:
                    (wd / "pb").mkdir()
                    pbrd = rstack.enter_context(open_reader(pb_readable, wd / "pb"))
                order = sorted(set(want))
                pos = {s_: order.index(s_) for s_ in want}
                sampled: dict[int, tuple] = {}

                def pb_rows(c0: int, c1: int, y0: int, y1: int):
                    """The pb block (channels broadcast when the pb has one plane)."""
                    if pbrd is None:
                        return None
                    if pb_lay.nchan == 1:
                        return pbrd.read_block([0], 0, 1, y0, y1)[0]
                    return pbrd.read_block([0], c0, c1, y0, y1)[0]

                def plane_noise(q, u, i, pbp):
                    """(sigma_Q, sigma_U, sigma_I) of one plane, on the flat-noise image."""
                    if pb_scaled and pbp is not None:
                        q, u = q * pbp, u * pbp
                        i = i * pbp if i is not None else None
                    sq, su = polcalc.robust_sigma(q, u, i)
                    si = polcalc.robust_noise(i) if (need_i_noise and i is not None) else math.nan
                    return sq, su, si

                def read(b):
                    """Reader thread: the block and its pb, plus a row-sampled noise for huge planes."""
                    c0, c1, y0, y1 = b
                    data = rd.read_block(order, c0, c1, y0, y1)
                    pbb = pb_rows(c0, c1, y0, y1)
                    pre = None
                    if need_noise and y1 - y0 != ny:
                        if c0 not in sampled:
                            sampled.clear()
                            nrows = max(1, NOISE_SAMPLE_PIXELS // nx)
                            smp = rd.read_row_sample(order, c0, nrows)
                            pbs = (pbrd.read_row_sample([0], c0 if pb_lay.nchan > 1 else 0, nrows)[0]
                                   if pbrd is not None else None)
                            sampled[c0] = plane_noise(smp[pos[iq]], smp[pos[iu]],
                                                      smp[pos[ii]] if ii in pos else None, pbs)
                        pre = [sampled[c0]]
                    return data, pbb, pre

                def compute(b, data_pre):
                    """Worker thread: noise (whole planes), thresholds, masks, P/A/PF of one block."""
                    c0, c1, y0, y1 = b
                    data, pbb, pre = data_pre
                    q, u = data[pos[iq]], data[pos[iu]]
                    i = data[pos[ii]] if ii in pos else None
                    scale = None
                    if pb_scaled and pbb is not None:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            scale = 1.0 / pbb
                    pbmask = None
                    if pbb is not None and opts.pblimit > 0:
                        with np.errstate(invalid="ignore"):
                            pbmask = ~(pbb >= np.float32(opts.pblimit))  # NaN pb: masked
                    ns = None
                    sp_c = si_c = None
                    if need_noise:
                        ns = pre if pre is not None else [
                            plane_noise(q[j], u[j], i[j] if i is not None else None,
                                        pbb[min(j, pbb.shape[0] - 1)] if pbb is not None else None)
                            for j in range(c1 - c0)]
                        sp_c = np.array([float(polcalc.sigma_p(a, b_)) for a, b_, _ in ns])
                        si_c = np.array([c for _, _, c in ns])

                    def per_pixel(per_chan):
                        v = _per_chan(per_chan)
                        return v if scale is None else v * scale

                    t_c = None
                    if thr is not None:
                        t_c = thr_value if thr.kind == "flux" else per_pixel(thr.value * sp_c)
                    sig_b = None
                    if opts.debias:
                        sig_b = sig_value if sig_value is not None else per_pixel(sp_c)
                    it_c = None
                    if ithr is not None:
                        it_c = ithr_value if ithr.kind == "flux" else per_pixel(ithr.value * si_c)
                    res, counts = polcalc.pol_block(
                        q, u, i if opts.fractional else None, thresh=t_c, sigma=sig_b,
                        debias=opts.debias, fractional=opts.fractional, maskpoli=opts.maskpoli,
                        pbmask=pbmask, ithresh=it_c)
                    first = y0 == 0
                    thr_list = None
                    if thr is not None and first:
                        thr_list = ([thr_value] * (c1 - c0) if thr.kind == "flux"
                                    else (thr.value * sp_c).tolist())
                    return res, (ns if first else None), thr_list, counts

                def write(out):
                    """Main thread, in block order."""
                    res, ns, thr_list, counts = out
                    for a, b_, c in ns or ():
                        noise["sigma_q"].append(a)
                        noise["sigma_u"].append(b_)
                        noise["sigma"].append(float(polcalc.sigma_p(a, b_)))
                        noise["sigma_i"].append(c)
                    thr_per_chan.extend(thr_list or ())
                    for k in products:
                        writers[k].write(res[k])
                        for r, n in counts[k].items():
                            masked[k][r] += n

                _pipeline(_blocks(nchan, ny, nx), read, compute, write)
                for w in writers.values():
                    w.close()
    total = nchan * ny * nx
    result.update({
        "image_used": {True: "pbcor", False: "uncorrected", None: "input as given"}[pbcor_used],
        "pbcor_used": pbcor_used,
        "pb": pb,
        "pblimit": opts.pblimit if pb else None,
        "outputs": outputs,
        "shape": list(lay.shape),
        "stokes": list(lay.stokes),
        "nchan": nchan,
        "unit": lay.unit,
        "per_plane_beams": bool(lay.beams and "beams" in lay.beams),
        "debiased": bool(opts.debias),
        "sigma": ({"value": sig_value, "unit": lay.unit, "source": "given",
                   "meaning": "sigma_P = sqrt((sigma_Q^2 + sigma_U^2)/2)"} if sig_value is not None
                  else {"value": noise["sigma"], "unit": lay.unit, "source": "estimated",
                        "meaning": "sigma_P per channel"
                        + ("; divided by the pb on the corrected image" if pb_scaled else "")}
                  if opts.debias else None),
        "threshold": (None if thr is None else {
            "polithresh": thr.text, "kind": thr.kind, "unit": lay.unit,
            "applies_to": "non-debiased P",
            "value": thr_per_chan[0] if (thr.kind == "flux" and thr_per_chan) else thr_per_chan,
            "follows_pb": bool(thr.kind == "sigma" and pb_scaled)}),
        "fracthresh": (None if not opts.fractional else {
            "fracthresh": ithr.text if ithr else "", "kind": ithr.kind if ithr else None,
            "unit": lay.unit, "applies_to": "Stokes I",
            "value": (ithr_value if ithr is not None and ithr.kind == "flux" else
                      [ithr.value * s for s in noise["sigma_i"]] if ithr is not None else 0.0),
            "follows_pb": bool(ithr is not None and ithr.kind == "sigma" and pb_scaled)}),
        "noise": ({**{k: v for k, v in noise.items() if k != "sigma_i" or need_i_noise},
                   "unit": lay.unit,
                   "method": "robust (MAD, source clipped) per channel from Q and U (sigma = "
                             "sigma_P = sqrt((sigma_Q^2+sigma_U^2)/2))"
                             + ("; sigma_i from Stokes I" if need_i_noise else "")
                             + ("; on the uncorrected image (pbcor x pb)" if pb_scaled else "")}
                  if need_noise else None),
        "masked": {"pixels_per_product": total, **masked},
        "masking": _masking_text(masked, total, opts, pb, pb_scaled, thr, ithr, need_i_noise),
        "seconds": round(time.time() - t0, 3),
    })
    return result


# ---------------------------------------------------------------- entry point

def make_polmaps(imagename: str, outdir: str = "", polithresh: str = "", debias: bool = False,
                 sigma: str = "", pbcor: bool = True, fractional: bool = False,
                 overwrite: bool = False, maskpoli: bool = False, pbimage: str = "",
                 pblimit: float = DEFAULT_PBLIMIT, fracthresh: str = DEFAULT_FRACTHRESH) -> dict:
    """P and A maps for one IQUV image or every IQUV product of a delivery.

    Returns
    -------
    dict
        ``status`` ('ok' if every input worked), ``inputs`` (one entry per
        image: outputs, thresholds, noise, which image was used, what was
        masked and why), ``outdir``.  A single image that fails raises
        (:class:`~almaqa_casa.errors.InputError` for unusable input, e.g. a
        FIFO or a file that is not FITS); in a delivery failures are recorded
        per input and processing continues.
    """
    opts = PolmapsOptions(polithresh=polithresh or "", debias=bool(debias), sigma=sigma or "",
                          pbcor=bool(pbcor), fractional=bool(fractional),
                          overwrite=bool(overwrite), maskpoli=bool(maskpoli), pbimage=pbimage or "",
                          pblimit=float(pblimit), fracthresh=fracthresh or "")
    # fail early on bad parameters, before touching any image
    polcalc.parse_threshold(opts.polithresh)
    if opts.debias:
        polcalc.parse_sigma(opts.sigma)
    polcalc.parse_threshold(opts.fracthresh, param="fracthresh")
    if not 0.0 <= opts.pblimit < 1.0:
        raise InputError(f"pblimit={opts.pblimit}: must be at least 0 and below 1")
    out = Path(outdir) if outdir else Path.cwd()
    src = Path(imagename)
    if src.exists() and not src.is_dir():
        require_regular(src)  # a FIFO or device given as the image: refused, never opened
    single = src.is_file() or (src.is_dir() and (src / "table.dat").exists())
    inputs = find_iquv_products(src)
    if not inputs:
        raise InputError(f"{imagename}: no IQUV image products found")
    if opts.pbimage and len(inputs) > 1:
        raise InputError("pbimage can only be given for a single input image")
    from .. import scale
    if single:
        entries = [polmaps_one(img, out, opts) for img in inputs]
    else:   # per product, on casampi servers when there are some; one bad product does not stop the rest
        entries = []
        for o in scale.map_calls(polmaps_one, [(img, out, opts) for img in inputs], inputs):
            e = o.value if o.ok else {"input": o.key, "status": "failed", "error": o.error}
            entries.append({**e, "server": o.server} if o.engine == "casampi" else e)
    status = "ok" if all(e["status"] == "ok" for e in entries) else "failed"
    return {"status": status, "outdir": str(out), "inputs": entries, "engine": scale.engine_name(),
            "parameters": {"polithresh": opts.polithresh, "debias": opts.debias, "sigma": opts.sigma,
                           "pbcor": opts.pbcor, "fractional": opts.fractional,
                           "maskpoli": opts.maskpoli, "pblimit": opts.pblimit,
                           "fracthresh": opts.fracthresh}}
