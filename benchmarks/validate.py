"""Benchmark: qa_validate's structure+naming pass and image-statistics throughput.

1. Structure + naming (+ product sets) on a generated member folder holding
   ``--nfiles`` product names (default 10 000, empty files): files per second
   (target >= 10 000 files/s), and the ratio to a bare ``os.walk`` listing.
2. Image statistics (FITS checks + beam/peak/rms/DR with the impbcor 'm'
   recovery) on ``--nimages`` real image sets (pbcor, pb.fits.gz,
   mask.fits.gz; ``--size`` pixels, ``--nchan`` channels) written by CASA,
   once with the default CASA impbcor recovery and once with the numpy
   pbcor×pb recovery, against two astropy references:

   - *same work* (the target, <= 2x): astropy + numpy doing what qa_validate
     does — verify and read every pixel of every file with a NaN count, and
     per image set the beam, pbcor × pb, the robust rms outside the mask per
     plane and the peaks — each file read once, whole, into memory; its rms
     must equal ours (checked and printed);
   - *read-only*: reading every pixel of every file with a NaN count and
     nothing else (printed for comparison with earlier measurements).

   Each way runs ``--repeat`` times; the best time counts.

Usage::

    python benchmarks/validate.py [--nfiles 10000] [--nimages 4] [--size 512] [--nchan 32] [--repeat 2] [--json]

``--json`` prints one JSON object instead: the parameters, the figures of
both parts (ratios included) and the peak memory (maximum resident set
size) of this process and of its children.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import almaqa_casa  # noqa: F401  (offline CASA first)


def _names(n: int, mous: str) -> list[str]:
    rng = random.Random(1)
    targets = ["NGC_253", "J0006-0623", "_G0.02467-0.0727_", "AS_209", "3C286", "M308+12"]
    out = []
    i = 0
    while len(out) < n:
        t = rng.choice(targets)
        spw = "spw" + "_".join(str(s) for s in sorted(rng.sample(range(16, 40, 2), rng.randint(1, 4))))
        it = rng.choice(["cont", "mfs", "cube", "repBW"])
        stokes = rng.choice(["I", "I", "IQUV"])
        sc = rng.choice(["", ".selfcal"])
        cmt = rng.choice(["", ".manual", f".line{i}"])
        stem = f"member.{mous}.{t}_{rng.choice(['sci', 'ph', 'bp'])}.{spw}.{it}.{stokes}{sc}{cmt}"
        for layer in (".pbcor.fits", ".pb.fits.gz", ".mask.fits.gz"):
            out.append(stem + layer)
        i += 1
    return out[:n]


def bench_structure(nfiles: int, tmp: Path) -> dict:
    from almaqa_casa.delivery import naming
    from almaqa_casa.delivery.naming import parse_name
    from almaqa_casa.validate import validate_delivery

    mous = "uid___A001_X1_X2"
    member = tmp / "2025.1.00001.S" / "science_goal.uid___A001_X1_X0" / "group.uid___A001_X1_X1" / f"member.{mous}"
    for sub in ("calibration", "log", "product", "qa", "script"):
        (member / sub).mkdir(parents=True, exist_ok=True)
    names = _names(nfiles, mous)
    for n in names:
        (member / "product" / n).touch()
    (member / f"member.{mous}.README.txt").touch()
    # reference: bare listing
    t0 = time.perf_counter()
    count = sum(len(f) for _, _, f in os.walk(tmp))
    t_walk = time.perf_counter() - t0
    naming._parse_cached.cache_clear()
    t0 = time.perf_counter()
    parsed = sum(parse_name(n) is not None for n in names)
    t_parse = time.perf_counter() - t0
    best = None
    for _ in range(3):
        naming._parse_cached.cache_clear()  # no help from earlier runs
        t0 = time.perf_counter()
        v = validate_delivery(tmp, checks="layout,naming,products", thumbnails=False)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return {"files": count, "parsed": parsed, "seconds": best, "files_per_s": count / best,
            "parse_only_files_per_s": len(names) / t_parse, "walk_seconds": t_walk,
            "ratio_to_walk": best / t_walk, "findings": len(v.findings)}


def _make_sets(tmp: Path, nimages: int, size: int, nchan: int) -> Path:
    import numpy as np

    from almaqa_casa.images.testdata import gaussian_pb, make_image, to_fits

    mous = "uid___A001_X1_X2"
    member = tmp / "2025.1.00001.S" / "science_goal.uid___A001_X1_X0" / "group.uid___A001_X1_X1" / f"member.{mous}"
    product = member / "product"
    product.mkdir(parents=True)
    work = tmp / "work"
    work.mkdir()
    pb2 = gaussian_pb(size, size, size * 0.8)
    pb2 = np.where(pb2 >= 0.2, pb2, np.nan).astype(np.float32)
    x = np.arange(size)[:, None] - size // 2
    mask2 = ((x ** 2 + x.T ** 2) <= (size // 10) ** 2).astype(np.float32)
    for k in range(nimages):
        rng = np.random.default_rng(k)
        stem = f"member.{mous}.T{k}_sci.spw{16 + 2 * k}.cube.I"

        def unc_plane(c, s):
            return rng.normal(0, 1e-3, (size, size)).astype(np.float32)

        planes = {"pbcor": lambda c, s: unc_plane(c, s) / pb2, "pb": lambda c, s: pb2,
                  "mask": lambda c, s: mask2}
        for kind, fn in planes.items():
            im = work / f"{k}.{kind}.im"
            make_image(str(im), shape=(size, size, nchan, 1), stokes="I", plane=fn,
                       beam=(1.0, 0.8, 30.0) if kind == "pbcor" else None,
                       unit="Jy/beam" if kind == "pbcor" else "")
            name = f"{stem}.{kind}.fits" + ("" if kind == "pbcor" else ".gz")
            to_fits(str(im), str(product / name), gz=kind != "pbcor")
            shutil.rmtree(im)
    return tmp


def _astropy_read_only(product: Path) -> float:
    """The issue's literal reference: read every pixel of every file with astropy (+ NaN count)."""
    import numpy as np
    from astropy.io import fits
    t0 = time.perf_counter()
    for p in sorted(product.iterdir()):
        with fits.open(p, memmap=False) as h:
            d = h[0].data
            int(np.count_nonzero(np.isnan(d)))
    return time.perf_counter() - t0


def _median_inplace(v):
    """np.median of a 1-D float array by in-place partition (the fastest plain-numpy way)."""
    n = v.size
    k = n // 2
    v.partition([k - 1, k] if n % 2 == 0 else [k])
    return float(v[k]) if n % 2 else float(0.5 * (v[k - 1] + v[k]))


def _astropy_same_work(product: Path) -> tuple[float, list[float]]:
    """Like-for-like reference: the work qa_validate does, with astropy + numpy alone.

    Per file (the FITS checks): open, ``verify('exception')``, read every
    pixel, NaN fraction.  Per image set (the figures): beam from the header,
    uncorrected = pbcor × pb per plane, robust rms (1.4826 × MAD, float64)
    of finite pixels outside the mask per plane (median over channels, by
    in-place partitions), peak of pbcor and of the uncorrected image.  Each
    file is read once, whole, into memory (no bounded-memory plane reads,
    no temporary files): the most favourable way for the reference.
    """
    import numpy as np
    from astropy.io import fits

    def load(p: Path):
        with fits.open(p, memmap=False) as h:
            h.verify("exception")
            data = h[0].data
            float(np.count_nonzero(np.isnan(data))) / data.size
            return h[0].header, data

    t0 = time.perf_counter()
    rms_all = []
    for img in sorted(product.glob("*.pbcor.fits")):
        stem = str(img)[: -len(".pbcor.fits")]
        hdr, cor = load(img)
        _, pb = load(Path(stem + ".pb.fits.gz"))
        _, mask = load(Path(stem + ".mask.fits.gz"))
        beam = (hdr["BMAJ"] * 3600.0, hdr["BMIN"] * 3600.0, hdr["BPA"])
        assert beam[0] > 0
        rms, peaks, peaks_unc = [], [], []
        for c in range(cor.shape[1]):  # numpy order (stokes, chan, y, x); Stokes I
            plane = cor[0, c].astype(np.float64)
            unc = plane * pb[0, c]
            good = np.isfinite(unc) & ~(np.nan_to_num(mask[0, c], nan=0.0) > 0)
            v = unc[good]
            med = _median_inplace(v)
            np.abs(np.subtract(v, med, out=v), out=v)
            rms.append(1.482602218505602 * _median_inplace(v))
            peaks.append(np.nanmax(plane))
            peaks_unc.append(np.nanmax(unc))
        rms_all.append(float(np.median(rms)))
        max(peaks) / float(np.median(rms)), max(peaks_unc)
    return time.perf_counter() - t0, rms_all


def bench_images(nimages: int, size: int, nchan: int, tmp: Path, repeat: int = 2) -> dict:
    """Best of ``repeat`` runs of each way (the machine may be shared)."""
    from almaqa_casa.validate import validate_delivery

    root = _make_sets(tmp, nimages, size, nchan)
    product = next(root.rglob("product"))
    nbytes = sum(p.stat().st_size for p in product.iterdir())
    t_read = min(_astropy_read_only(product) for _ in range(repeat))
    same = [_astropy_same_work(product) for _ in range(repeat)]
    t_same = min(t for t, _ in same)
    ref_rms = same[0][1]
    out = {"images": 0, "MB": nbytes / 1e6, "astropy_read_s": t_read, "astropy_same_s": t_same,
           "astropy_rms": [round(r, 7) for r in ref_rms]}
    for recovery in ("impbcor", "numpy"):
        best = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            v = validate_delivery(root, checks="fits,images", thumbnails=False, recovery=recovery)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        out["images"] = len(v.images)
        rms = [im["rms"] for im in v.images]
        # same work: our rms must equal the reference's (same pixels, same statistic)
        agree = len(rms) == len(ref_rms) and all(
            abs(a - b) <= 1e-6 * abs(b) for a, b in zip(sorted(rms), sorted(ref_rms)))
        out[recovery] = {"seconds": best, "ratio_same": best / t_same, "ratio_read": best / t_read,
                         "errors": sum(f.severity == "error" for f in v.findings),
                         "rms": [round(r, 7) for r in rms], "rms_agree": agree}
    return out


def peak_rss_bytes() -> dict:
    """Maximum resident set size so far of this process and of its waited-for children."""
    k = 1 if sys.platform == "darwin" else 1024          # ru_maxrss: bytes on macOS, else KiB
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * k,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * k}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nfiles", type=int, default=10000)
    ap.add_argument("--nimages", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--nchan", type=int, default=32)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each way; the best counts")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="almaqa-bench-validate-", dir=a.workdir) as tmp:
        s = bench_structure(a.nfiles, Path(tmp) / "names")
        i = bench_images(a.nimages, a.size, a.nchan, Path(tmp) / "images", a.repeat)
    if a.json:
        print(json.dumps({"benchmark": "validate",
                          "parameters": {"nfiles": a.nfiles, "nimages": a.nimages,
                                         "size": a.size, "nchan": a.nchan, "repeat": a.repeat},
                          "structure": s, "images": i,
                          "targets": {"files_per_s_min": 10000, "ratio_same_max": 2.0},
                          "peak_rss_bytes": peak_rss_bytes()}, indent=1))
        return 0
    print(f"structure+naming+products: {s['files']} files in {s['seconds']:.3f} s = "
          f"{s['files_per_s']:.0f} files/s (target >= 10000); parse only "
          f"{s['parse_only_files_per_s']:.0f} names/s; os.walk {s['walk_seconds']:.3f} s "
          f"(ours/walk = {s['ratio_to_walk']:.1f}x)")
    print(f"image statistics: {i['images']} image sets, {i['MB']:.1f} MB on disk; astropy "
          f"same work {i['astropy_same_s']:.2f} s, astropy read-only {i['astropy_read_s']:.2f} s"
          f" (best of {a.repeat})")
    for rec in ("impbcor", "numpy"):
        r = i[rec]
        print(f"  {rec} recovery: ours {r['seconds']:.2f} s = {r['ratio_same']:.2f}x astropy "
              f"same work (target <= 2x), {r['ratio_read']:.2f}x astropy read-only; errors "
              f"{r['errors']}; rms equal to the reference's: {r['rms_agree']}; rms {r['rms']}")
    print(f"peak memory (max RSS): {peak_rss_bytes()['self'] / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
