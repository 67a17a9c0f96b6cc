"""Linear polarization intensity and angle maps from IQUV images, in one streaming pass.

For each input (an IQUV FITS / gzipped FITS / CASA image, or every IQUV
product found in a delivery) the Stokes Q and U planes are read channel by
channel (row blocks for planes larger than :data:`MAX_BLOCK_PIXELS`), and P,
A (and optionally P/I) are computed together and streamed into their FITS
files, so memory is a few blocks whatever the image size.  Arithmetic and
masking follow CASA's immath (see :mod:`almaqa_casa.images.polcalc`);
headers come from exportfits (see :mod:`almaqa_casa.images.polio`).
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
    "MAX_BLOCK_PIXELS",
    "STOKES_TYPES",
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


# ---------------------------------------------------------------- discovery

def _is_image_candidate(p: Path) -> bool:
    n = p.name
    if n.startswith("."):
        return False
    if p.is_dir():
        return (p / "table.dat").exists()
    return n.endswith((".fits", ".fits.gz", ".fit", ".fit.gz"))


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
    if p.is_file() or (p.is_dir() and (p / "table.dat").exists()):
        return [str(p)]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such image or folder")
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
    """The primary beam delivered next to a pbcor image, or None."""
    p = Path(image)
    for name in pb_candidates(p.name):
        c = p.parent / name
        if c.exists() and c != p:
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
             thr: polcalc.Threshold | None, sigma_text: str) -> list[str]:
    from .. import __version__

    what = {"P": "linear polarized intensity sqrt(Q^2+U^2)" + (" - sigma^2 (debiased)" if opts.debias else ""),
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
        f"pbcor={opts.pbcor}, fractional={opts.fractional}, maskpoli={opts.maskpoli})",
        f"qa_polmaps threshold: {thr.text if thr else 'none'}; sigma: {sigma_text}",
    ]


# ---------------------------------------------------------------- one image

def polmaps_one(src: str, outdir: str | Path, opts: PolmapsOptions) -> dict:
    """Make the P and A (and P/I) FITS files of one IQUV image; return its result entry."""
    t0 = time.time()
    src = str(src)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    fmt = image_format(src)
    thr = polcalc.parse_threshold(opts.polithresh)
    sig = polcalc.parse_sigma(opts.sigma) if opts.debias else None
    result: dict = {"input": src, "format": fmt, "status": "ok"}

    pbcor_input = is_pbcor_name(src)
    use_uncorrected = (not opts.pbcor) and (pbcor_input or bool(opts.pbimage))
    # True: pbcor image used; False: uncorrected; None: input not named pbcor, used as given
    pbcor_used: bool | None = (True if pbcor_input else None) if opts.pbcor else False
    if not opts.pbcor and not use_uncorrected:
        result["note"] = "input is not a pbcor product; used as the uncorrected image"
    pb = None
    if use_uncorrected:
        pb = opts.pbimage or find_pb(src)
        if not pb:
            raise FileNotFoundError(
                f"{src}: pbcor=False needs the primary beam; none of "
                f"{', '.join(pb_candidates(Path(src).name)[:6])} exists next to it "
                "(give pbimage=...)")
    names = output_names(src, pbcor_used=not use_uncorrected)
    products = ["P", "A"] + (["PF"] if opts.fractional else [])
    outputs = {k: str(outdir / names[k]) for k in products}
    for k, path in outputs.items():
        if Path(path).exists() and not opts.overwrite:
            raise FileExistsError(f"{path} exists (use overwrite=True to replace it)")

    with temp_workdir(outdir, prefix=".almaqa-polmaps-") as wd, casa_readable(src, wd) as readable:
        image_used = readable
        if use_uncorrected:
            image_used = recover_uncorrected(readable, pb, str(wd / "uncorrected.im"), workdir=str(wd))
        with contextlib.ExitStack() as rstack:
            lay = read_layout(image_used)
            iq, iu, ii = lay.index("Q"), lay.index("U"), lay.index("I")
            if iq is None and iu is None:
                raise ValueError(f"{src}: not a polarization image: Stokes {''.join(lay.stokes)} "
                                 "has neither Q nor U (an IQUV product is needed)")
            if iq is None or iu is None:
                raise ValueError(f"{src}: Stokes axis {lay.stokes} has only one of Q and U; "
                                 "P and A need both")
            if opts.fractional and ii is None:
                raise ValueError(f"{src}: fractional=True needs Stokes I, which is missing "
                                 f"(Stokes {lay.stokes})")
            _check_beams(lay, iq, iu, src)
            nchan, ny, nx = lay.nchan, lay.ny, lay.nx

            # thresholds / sigma in the image unit
            thr_value = None
            if thr is not None and thr.kind == "flux":
                thr_value = polcalc.to_unit(thr.value, thr.unit, lay.unit, f"{src}: polithresh")
            sig_value = None
            if sig is not None:
                sig_value = polcalc.to_unit(sig.value, sig.unit, lay.unit, f"{src}: sigma")
            need_noise = (thr is not None and thr.kind == "sigma") or (opts.debias and sig is None)
            sigma_text = (f"{sig_value} {lay.unit} (given)" if sig_value is not None
                          else "estimated per channel from Q and U" if need_noise else "none")

            units = {"P": lay.unit, "A": "deg", "PF": ""}
            noise = {"sigma_q": [], "sigma_u": [], "sigma": []}
            thr_per_chan: list[float] = []
            with contextlib.ExitStack() as stack:
                writers = {}
                base = make_base_template(image_used, lay, iq, wd)
                for k in products:
                    hdr, exts = make_template_header(
                        base, lay, STOKES_TYPES[k], units[k],
                        _history(opts, k, src, pbcor_used, thr, sigma_text), wd, k)
                    tmp = stack.enter_context(atomic_output(outputs[k], overwrite=opts.overwrite))
                    w = FitsStreamWriter(tmp, hdr, exts, nchan * ny * nx)
                    stack.callback(w.abort)
                    writers[k] = w
                want = [iq, iu] + ([ii] if (ii is not None and (opts.fractional or need_noise)) else [])
                rd = rstack.enter_context(open_reader(image_used, wd))
                order = sorted(set(want))
                pos = {s_: order.index(s_) for s_ in want}
                sampled: dict[int, tuple[float, float]] = {}

                def read(b):
                    """Reader thread: the block, plus a row-sampled noise for huge planes."""
                    c0, c1, y0, y1 = b
                    data = rd.read_block(order, c0, c1, y0, y1)
                    pre = None
                    if need_noise and y1 - y0 != ny:
                        if c0 not in sampled:
                            sampled.clear()
                            smp = rd.read_row_sample(order, c0, max(1, NOISE_SAMPLE_PIXELS // nx))
                            sampled[c0] = polcalc.robust_sigma(
                                smp[pos[iq]], smp[pos[iu]], smp[pos[ii]] if ii in pos else None)
                        pre = [sampled[c0]]
                    return data, pre

                def compute(b, data_pre):
                    """Worker thread: noise (whole planes), thresholds, P/A/PF of one block."""
                    c0, c1, y0, y1 = b
                    data, pre = data_pre
                    q, u = data[pos[iq]], data[pos[iu]]
                    i = data[pos[ii]] if ii in pos else None
                    ns = None
                    s_c = t_c = None
                    if need_noise:
                        ns = pre if pre is not None else [
                            polcalc.robust_sigma(q[j], u[j], i[j] if i is not None else None)
                            for j in range(c1 - c0)]
                        s_c = np.array([0.5 * (a + b_) for a, b_ in ns])
                    sig_b = sig_value if sig_value is not None else s_c
                    if thr is not None:
                        t_c = thr_value if thr.kind == "flux" else thr.value * s_c
                    res = polcalc.pol_block(q, u, i if opts.fractional else None,
                                            thresh=_per_chan(t_c), sigma=_per_chan(sig_b),
                                            debias=opts.debias, fractional=opts.fractional,
                                            maskpoli=opts.maskpoli)
                    first = y0 == 0
                    thr_list = (np.broadcast_to(np.asarray(t_c, float), (c1 - c0,)).tolist()
                                if thr is not None and first else None)
                    return res, (ns if first else None), thr_list

                def write(out):
                    """Main thread, in block order."""
                    res, ns, thr_list = out
                    for a, b_ in ns or ():
                        noise["sigma_q"].append(a)
                        noise["sigma_u"].append(b_)
                        noise["sigma"].append(0.5 * (a + b_))
                    thr_per_chan.extend(thr_list or ())
                    for k in products:
                        writers[k].write(res[k])

                _pipeline(_blocks(nchan, ny, nx), read, compute, write)
                for w in writers.values():
                    w.close()
    result.update({
        "image_used": {True: "pbcor", False: "uncorrected", None: "input as given"}[pbcor_used],
        "pbcor_used": pbcor_used,
        "pb": pb,
        "outputs": outputs,
        "shape": list(lay.shape),
        "stokes": list(lay.stokes),
        "nchan": nchan,
        "unit": lay.unit,
        "per_plane_beams": bool(lay.beams and "beams" in lay.beams),
        "debiased": bool(opts.debias),
        "sigma": ({"value": sig_value, "unit": lay.unit, "source": "given"} if sig_value is not None
                  else {"value": noise["sigma"], "unit": lay.unit, "source": "estimated"}
                  if opts.debias else None),
        "threshold": (None if thr is None else {
            "polithresh": thr.text, "kind": thr.kind, "unit": lay.unit,
            "applies_to": "non-debiased P",
            "value": thr_per_chan[0] if (thr.kind == "flux" and thr_per_chan) else thr_per_chan}),
        "noise": ({**noise, "unit": lay.unit,
                   "method": "robust (MAD, source clipped) per channel from Q and U"}
                  if need_noise else None),
        "seconds": round(time.time() - t0, 3),
    })
    return result


# ---------------------------------------------------------------- entry point

def make_polmaps(imagename: str, outdir: str = "", polithresh: str = "", debias: bool = False,
                 sigma: str = "", pbcor: bool = True, fractional: bool = False,
                 overwrite: bool = False, maskpoli: bool = False, pbimage: str = "") -> dict:
    """P and A maps for one IQUV image or every IQUV product of a delivery.

    Returns
    -------
    dict
        ``status`` ('ok' if every input worked), ``inputs`` (one entry per
        image: outputs, thresholds, noise, which image was used), ``outdir``.
        A single image that fails raises; in a delivery failures are
        recorded per input and processing continues.
    """
    opts = PolmapsOptions(polithresh=polithresh or "", debias=bool(debias), sigma=sigma or "",
                          pbcor=bool(pbcor), fractional=bool(fractional),
                          overwrite=bool(overwrite), maskpoli=bool(maskpoli), pbimage=pbimage or "")
    # fail early on bad parameters, before touching any image
    polcalc.parse_threshold(opts.polithresh)
    if opts.debias:
        polcalc.parse_sigma(opts.sigma)
    out = Path(outdir) if outdir else Path.cwd()
    src = Path(imagename)
    single = src.is_file() or (src.is_dir() and (src / "table.dat").exists())
    inputs = find_iquv_products(src)
    if not inputs:
        raise ValueError(f"{imagename}: no IQUV image products found")
    if opts.pbimage and len(inputs) > 1:
        raise ValueError("pbimage can only be given for a single input image")
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
                           "maskpoli": opts.maskpoli}}
