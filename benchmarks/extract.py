"""Benchmark: the safe extractor (almaqa_casa.delivery.archive) vs tarfile and GNU tar.

What the safety costs.  Inputs are generated in a temporary folder:

* ``caltables.tgz``  tables of CASA-like layout (a few hundred files, float
  data that compresses ~1.5x), gzip
* ``archive.tar``    an archive-tar-like plain tar (many folders, a few
  thousand files, incompressible data)

For each input, every method runs in its own subprocess (peak resident memory
per method), ``--repeat`` times; medians are reported, with the ratio of each
method's time to ``tarfile`` (``extractall(filter="data")``, the reference way):

* ``tarfile``   ``tarfile.open(...).extractall(dest, filter="data")``
* ``gnu-tar``   ``tar -xf`` (the observatory README's way)
* ``safe``      ``almaqa_casa.delivery.archive.extract`` (virtual-tree checks,
  O_NOFOLLOW writes, limits)

Usage::

    python benchmarks/extract.py [--repeat 3] [--workdir DIR] [--small] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time

CHILD = textwrap.dedent(r'''
    import os, sys, time, types
    method, src, dest, root = sys.argv[1:5]
    if method == "safe":        # the module alone (the package __init__ would import CASA)
        pkg = types.ModuleType("almaqa_casa"); pkg.__path__ = [os.path.join(root, "almaqa_casa")]
        sys.modules["almaqa_casa"] = pkg
        from almaqa_casa.delivery.archive import extract
    import tarfile, subprocess
    t0 = time.perf_counter()
    if method == "tarfile":
        with tarfile.open(src) as tf:
            tf.extractall(dest, filter="data")
    elif method == "gnu-tar":
        os.makedirs(dest)
        subprocess.run(["tar", "-xf", src, "-C", dest], check=True)
    else:
        extract(src, dest)
    dt = time.perf_counter() - t0
    with open("/proc/self/status") as fh:
        peak = next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))
    print(dt, peak)
''')


def make_inputs(work: str, small: bool) -> dict[str, str]:
    import numpy as np
    rng = np.random.default_rng(1)
    ntab, nfile = (5, 10) if small else (40, 20)
    src = os.path.join(work, "src-cal")
    for t in range(ntab):
        d = os.path.join(src, f"uid___A002_X1_X{t}.ms.hifa_timegaincal.s14_{t}.gpcal.tbl")
        os.makedirs(d)
        for f in range(nfile):
            # float32 gains with a smooth phase: compresses a little, like real tables
            a = (np.cumsum(rng.normal(size=20_000 if small else 60_000)) * 1e-3).astype("<f4")
            a.tofile(os.path.join(d, f"table.f{f}"))
    cal = os.path.join(work, "caltables.tgz")
    with tarfile.open(cal, "w:gz") as tar:
        for name in sorted(os.listdir(src)):
            tar.add(os.path.join(src, name), arcname=name)
    ndir, nf, size = (10, 50, 20_000) if small else (40, 100, 100_000)
    arch = os.path.join(work, "archive.tar")
    with tarfile.open(arch, "w") as tar:
        for d in range(ndir):
            for f in range(nf):
                data = os.urandom(size)
                ti = tarfile.TarInfo(f"2025.1.00001.S/sg/g/m/raw/uid.asdm.sdm/ASDMBinary/d{d}/f{f}")
                ti.size = len(data)
                import io
                tar.addfile(ti, io.BytesIO(data))
    shutil.rmtree(src)
    return {"caltables.tgz": cal, "archive.tar": arch}


def run(method: str, src: str, work: str) -> tuple[float, float]:
    dest = os.path.join(work, f"out-{method}")
    shutil.rmtree(dest, ignore_errors=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-c", CHILD, method, src, dest, root],
                       capture_output=True, text=True, check=True)
    shutil.rmtree(dest, ignore_errors=True)
    dt, peak = (float(x) for x in p.stdout.split())
    return dt, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    work = a.workdir or tempfile.mkdtemp(prefix="bench-extract-")
    os.makedirs(work, exist_ok=True)
    try:
        inputs = make_inputs(work, a.small)
        res = {}
        for label, src in inputs.items():
            rows = {}
            for method in ("tarfile", "gnu-tar", "safe"):
                runs = [run(method, src, work) for _ in range(a.repeat)]
                rows[method] = {"seconds": statistics.median(r[0] for r in runs),
                                "peak_mb": statistics.median(r[1] for r in runs)}
            ref = rows["tarfile"]["seconds"]
            for r in rows.values():
                r["ratio_to_tarfile"] = r["seconds"] / ref
            res[label] = {"archive_bytes": os.path.getsize(src), "methods": rows}
        out = {"python": sys.version.split()[0], "repeat": a.repeat, "small": a.small,
               "inputs": res, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if a.json:
            print(json.dumps(out, indent=1))
        else:
            for label, r in res.items():
                print(f"{label} ({r['archive_bytes'] / 1e6:.1f} MB)")
                for m, v in r["methods"].items():
                    print(f"  {m:8s} {v['seconds']:7.2f} s  x{v['ratio_to_tarfile']:.2f}  "
                          f"peak {v['peak_mb']:.0f} MB")
        return 0
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
