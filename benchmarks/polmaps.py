"""Benchmark: qa_polmaps (one streaming pass, P and A FITS) vs immath lpoli + pola.

Inputs are generated in a temporary folder with the CASA image tool: a
512×512×4×256 cube (per-channel beams) and a 4096×4096×4×1 continuum image
(sizes adjustable), each as delivered (FITS) and as a CASA image.  For each
input, in one run, every method runs in its own subprocess (so peak resident
memory, ``ru_maxrss``, is per method), ``--repeat`` times; medians are
reported:

* ``immath``          immath(mode='lpoli') + immath(mode='pola') → two CASA images
* ``immath+export``   the same plus exportfits of both (what a delivery needs)
* ``qa_polmaps``      make_polmaps → P and A FITS files
* ``import only``     the imports alone (the memory floor of any CASA process)

Usage::

    python benchmarks/polmaps.py [--repeat 3] [--workdir DIR] [--small] [--polithresh 5mJy/beam] [--json]

``--json``: the progress lines go to stderr and stdout gets one JSON object
(the parameters, per case the medians, peak memory and ratios of every
method, and the import-only memory floor).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PEAK = textwrap.dedent(r'''
    def peak_mb():
        """Peak resident memory of this process (VmHWM; ru_maxrss would include the
        parent's size at fork, which Linux carries over exec)."""
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
''')

CHILD = PEAK + textwrap.dedent(r'''
    import json, os, shutil, sys, time
    import almaqa_casa
    from casatasks import exportfits, immath
    method, src, out, thr = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    shutil.rmtree(out, ignore_errors=True); os.makedirs(out)
    from almaqa_casa.images.polmaps import make_polmaps  # imports outside the timing, like casatasks
    t0 = time.perf_counter()
    if method.startswith("immath"):
        kw = {"polithresh": thr} if thr else {}
        immath(imagename=src, mode="lpoli", outfile=os.path.join(out, "P.im"))
        immath(imagename=src, mode="pola", outfile=os.path.join(out, "A.im"), **kw)
        if method == "immath+export":
            for k in "PA":
                exportfits(imagename=os.path.join(out, k + ".im"), fitsimage=os.path.join(out, k + ".fits"),
                           stokeslast=True, overwrite=True)
    elif method == "qa_polmaps":
        make_polmaps(src, out, polithresh=thr)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "maxrss_mb": peak_mb()}))
''')


def generate(workdir: Path, name: str, shape: tuple[int, int, int, int]) -> dict:
    """CASA image + FITS of an IQUV image with noise and a polarized source (image tool)."""
    import numpy as np

    import almaqa_casa  # noqa: F401
    from almaqa_casa.images.testdata import make_image, to_fits

    nx, ny, nchan, nst = shape
    rng = np.random.default_rng(42)
    pool = [rng.normal(0, 1e-3, (nx, ny)).astype(np.float32) for _ in range(3)]
    x = (np.arange(nx)[:, None] - nx // 2) ** 2 + (np.arange(ny)[None, :] - ny // 2) ** 2
    src = np.exp(-x / (2 * (nx / 50) ** 2)).astype(np.float32)
    frac = {0: 1.0, 1: 0.05, 2: 0.03, 3: 0.001}
    beam = [(1.0 + 0.001 * c, 0.8, 30.0) for c in range(nchan)] if nchan > 1 else (1.0, 0.8, 30.0)
    im = workdir / f"{name}.IQUV.image.pbcor"
    fits = workdir / f"{name}.IQUV.pbcor.fits"
    if (im / "table.dat").exists() and fits.exists() and (workdir / f".{name}.ok").exists():
        print(f"  reusing {name} {shape}", flush=True)
        return {"FITS": str(fits), "CASA image": str(im)}
    t0 = time.perf_counter()
    make_image(im, shape, plane=lambda c, s: pool[(c + s) % 3] + frac[s] * src, beam=beam)
    to_fits(im, fits)
    (workdir / f".{name}.ok").write_text("ok\n")
    print(f"  generated {name} {shape} in {time.perf_counter() - t0:.1f}s "
          f"({fits.stat().st_size / 2**20:.0f} MB FITS)", flush=True)
    return {"FITS": str(fits), "CASA image": str(im)}


def run(method: str, src: str, out: Path, thr: str) -> dict:
    cmd = [sys.executable, "-c", CHILD, method, src, str(out), thr]
    if method == "import only":
        cmd = [sys.executable, "-c", PEAK + "import almaqa_casa, casatasks, json\n"
               "print(json.dumps({'seconds': 0.0, 'maxrss_mb': peak_mb()}))"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{method} on {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=None,
                    help="folder for the generated images, kept and reused (default: a temp dir, removed)")
    ap.add_argument("--small", action="store_true", help="quick run: 256x256x4x32 and 1024x1024x4x1")
    ap.add_argument("--polithresh", default="", help="threshold for pola / qa_polmaps, e.g. 5mJy/beam")
    ap.add_argument("--only", choices=("cube", "image"), default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object (progress on stderr)")
    args = ap.parse_args()
    if args.json:       # the progress lines (also generate()'s) go to stderr
        real_stdout, sys.stdout = sys.stdout, sys.stderr

    cases = {"cube": (512, 512, 256, 4), "image": (4096, 4096, 1, 4)}
    if args.small:
        cases = {"cube": (256, 256, 32, 4), "image": (1024, 1024, 1, 4)}
    if args.only:
        cases = {args.only: cases[args.only]}
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-polmaps-"))
    base.mkdir(parents=True, exist_ok=True)
    os.chdir(base)
    print(f"workdir {base}; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.1f}; "
          f"repeat {args.repeat}; polithresh '{args.polithresh}'", flush=True)
    methods = ["immath", "immath+export", "qa_polmaps"]
    rows = []
    try:
        floor = run("import only", "", base / "x", "")["maxrss_mb"]
        for name, shape in cases.items():
            inputs = generate(base, f"bench_{name}", shape)
            for form, src in inputs.items():
                res = {m: [] for m in methods}
                for _ in range(args.repeat):
                    for m in methods:  # interleaved, so load changes hit all methods alike
                        res[m].append(run(m, src, base / "out", args.polithresh))
                med = {m: {"seconds": statistics.median(r["seconds"] for r in res[m]),
                           "maxrss_mb": max(r["maxrss_mb"] for r in res[m])} for m in methods}
                rows.append((name, "x".join(map(str, shape)), form, med))
                q = med["qa_polmaps"]["seconds"]
                print(f"  {name:5s} {form:10s} " + "  ".join(
                    f"{m} {med[m]['seconds']:.2f}s/{med[m]['maxrss_mb']:.0f}MB" for m in methods)
                    + f"  ratio immath/qa {med['immath']['seconds'] / q:.2f}"
                    f"  (immath+export)/qa {med['immath+export']['seconds'] / q:.2f}", flush=True)
            if not args.workdir:
                for p in inputs.values():
                    shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
    finally:
        os.chdir(tempfile.gettempdir())
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        sys.stdout = real_stdout
        cases_out = []
        for name, shape, form, med in rows:
            q = med["qa_polmaps"]["seconds"]
            cases_out.append({"case": name, "shape": shape, "input": form, "methods": med,
                              "ratio_immath_over_qa": med["immath"]["seconds"] / q,
                              "ratio_immath_export_over_qa": med["immath+export"]["seconds"] / q,
                              "qa_peak_rss_mb": med["qa_polmaps"]["maxrss_mb"]})
        print(json.dumps({"benchmark": "polmaps",
                          "parameters": {"repeat": args.repeat, "small": args.small,
                                         "polithresh": args.polithresh, "only": args.only,
                                         "cpus": os.cpu_count()},
                          "import_only_peak_rss_mb": floor, "cases": cases_out}, indent=1))
        return 0
    print()
    print(f"import-only peak RSS (floor of any CASA process): {floor:.0f} MB")
    print(f"{'case':6s} {'shape':16s} {'input':10s} {'immath s':>9s} {'+export s':>9s} {'qa s':>7s} "
          f"{'immath/qa':>9s} {'(+exp)/qa':>9s} {'RSS immath':>10s} {'RSS qa':>7s}")
    for name, shape, form, med in rows:
        q = med["qa_polmaps"]
        print(f"{name:6s} {shape:16s} {form:10s} {med['immath']['seconds']:9.2f} "
              f"{med['immath+export']['seconds']:9.2f} {q['seconds']:7.2f} "
              f"{med['immath']['seconds'] / q['seconds']:9.2f} "
              f"{med['immath+export']['seconds'] / q['seconds']:9.2f} "
              f"{med['immath']['maxrss_mb']:8.0f}MB {q['maxrss_mb']:5.0f}MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
