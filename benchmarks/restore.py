"""Benchmark: qa_restore vs the reference restore sequence, on one delivery.

Reference (what hifa_restoredata + scriptForPI.py do): per EB importasdm
(lazy=False, pipeline options), replace the flag versions and restore
Pipeline_Final, the amplitude renormalization table when the manifest records
hifa_renorm (computed with our engine, as qa_restore does), one applycal into
the full MS with the calapply lines as a CASA cal library (as the pipeline's
SerialApplycal does), mstransform split
of CORRECTED (science spws).  Ours: qa_restore(dosplit=True) at each
SPACESAVING level, one EB at a time (nprocs=1) and with EBs in parallel.

Prints wall-time ratios (reference / ours) and peak disk as a multiple of
the raw (ASDM) size.  Usage::

    python benchmarks/restore.py [member_dir] [--workdir DIR] [--levels 0,1,2,3,-1] [--nprocs 2]

Without ``member_dir`` a benchmark-size synthetic pipeline delivery is
generated (2 EBs; by default 12 antennas and 8x the test deliveries' channel
counts) or reused from $ALMAQA_SYNTH_CACHE.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import almaqa_casa  # noqa: F401  (offline CASA)


def _member_from_synth(cache: str, nant: int, chanfactor: int) -> str:
    """A benchmark-size synthetic delivery: ``nant`` antennas and the spws'
    channel counts multiplied by ``chanfactor`` (same bandwidth), closer to
    ALMA's FDM windows than the test deliveries' 60-128 channels."""
    import dataclasses

    from almaqa_casa.synth import spec as S
    from almaqa_casa.synth.build import generate
    out = os.path.join(cache, f"bench_pipeline_{nant}ant_x{chanfactor}")
    marker = os.path.join(out, "member_dir.txt")
    if os.path.isfile(marker):
        return open(marker).read().strip()
    # the generator reads the spw definitions from S.SPWS at call time; this
    # process only builds the delivery, so widening them here is contained
    S.SPWS = tuple(dataclasses.replace(sw, nchan=sw.nchan * chanfactor,
                                       width_hz=sw.width_hz / chanfactor) for sw in S.SPWS)
    r = generate(out, calibration="pipeline", nebs=2, nant=nant)
    with open(marker, "w") as fh:
        fh.write(r["member_dir"])
    return r["member_dir"]


def reference(member: str, work: str) -> dict:
    """The reference sequence, one EB after the other."""
    from casatasks import applycal, importasdm, mstransform

    from almaqa_casa.delivery.member import read_member
    from almaqa_casa.restore import casasteps as cs
    from almaqa_casa.restore import renormstep
    from almaqa_casa.restore.executor import DiskSampler
    from almaqa_casa.restore.options import RestoreOptions
    from almaqa_casa.restore.planners import plan_pipeline
    info = read_member(member)
    renorm = {s.eb: s.params.get("renorm") for s in plan_pipeline(info, RestoreOptions()).steps
              if s.kind == "ms"}
    os.makedirs(work, exist_ok=True)
    t0 = time.perf_counter()
    with DiskSampler(work) as ds:
        for uid in info.ppr.asdms:
            vis = os.path.join(work, f"{uid}.ms")
            importasdm(asdm=info.raw_asdms[uid], vis=vis, ocorr_mode="ca", bdfflags=True,
                       asis=cs.ASIS, process_caldevice=False, savecmds=False, lazy=False,
                       with_pointing_correction=True, process_pointing=True)
            cs.restore_flags(vis, info.flagversions[uid])
            from almaqa_casa.delivery.calapply import caltables
            cs.extract_caltables(info.eb(uid).caltables, caltables(info.calapply[uid]), work)
            # the pipeline's restore also renormalizes when the manifest says so
            apps = renormstep.prepare(vis, renorm[uid], info.calapply[uid], work, uid, {},
                                      lambda *a: None)
            lib = cs.write_callib(vis, apps, work, vis + ".callib.txt")
            applycal(vis=vis, docallib=True, callib=lib, applymode="calflagstrict",
                     flagbackup=False)
            mstransform(vis=vis, outputvis=vis + ".split.cal", spw=",".join(
                str(s) for s in cs.science_spws(vis)), datacolumn="corrected", keepflags=True,
                reindex=False)
    return {"seconds": time.perf_counter() - t0, "peak_bytes": ds.peak,
            "raw_bytes": sum(info.raw_sizes[u] for u in info.ppr.asdms)}


def ours(member: str, outdir: str, level: int, nprocs: int) -> dict:
    from almaqa_casa import qa_restore
    t0 = time.perf_counter()
    r = qa_restore(deliverydir=member, outdir=outdir, spacesaving=level, dosplit=True,
                   nprocs=nprocs)
    return {"seconds": time.perf_counter() - t0, "peak_bytes": r["peak_disk_bytes"],
            "raw_bytes": r["members"][0]["raw_bytes"], "route": r["members"][0]["route"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("member", nargs="?")
    ap.add_argument("--workdir", default="")
    ap.add_argument("--levels", default="0,1,2,3,-1")
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--nant", type=int, default=12, help="antennas of a generated delivery")
    ap.add_argument("--chanfactor", type=int, default=8,
                    help="channel-count multiplier of a generated delivery's spws")
    ap.add_argument("--prepare-only", action="store_true",
                    help="build (or find) the synthetic delivery, print its member folder, stop")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds; each round runs the reference and every configuration once "
                         "(interleaved, so a busy machine biases all alike); medians reported")
    a = ap.parse_args(argv)
    member = a.member or _member_from_synth(os.environ.get("ALMAQA_SYNTH_CACHE", "/tmp/synthcache"),
                                            a.nant, a.chanfactor)
    if a.prepare_only:
        print(member)
        return 0
    work = a.workdir or tempfile.mkdtemp(prefix="bench_restore_")
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    configs = [(int(l), 1) for l in a.levels.split(",")]
    if a.nprocs > 1:
        configs += [(level, a.nprocs) for level in (0, 2) if (level, 1) in configs]
    ref_runs, runs = [], {c: [] for c in configs}
    for i in range(a.repeat):
        d = os.path.join(work, f"ref{i}")
        ref_runs.append(reference(member, d))
        shutil.rmtree(d)
        for level, n in configs:
            d = os.path.join(work, f"ours_{level}_{n}_{i}")
            runs[(level, n)].append(ours(member, d, level, n))
            shutil.rmtree(d)

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    raw = ref_runs[0]["raw_bytes"]
    ref_t = med([r["seconds"] for r in ref_runs])
    ref_p = max(r["peak_bytes"] for r in ref_runs)
    print(f"member: {member}\nraw (ASDM) size: {raw / 1e6:.1f} MB; rounds: {a.repeat}")
    print(f"reference (importasdm lazy=False, flag restore, applycal, mstransform split): "
          f"{ref_t:.1f} s, peak disk {ref_p / raw:.2f}x raw")
    for (level, n), rs in runs.items():
        t = med([r["seconds"] for r in rs])
        p = max(r["peak_bytes"] for r in rs)
        print(f"qa_restore SPACESAVING={level:>2} DOSPLIT nprocs={n}: {t:.1f} s "
              f"(speed-up {ref_t / t:.2f}x), peak disk {p / raw:.2f}x raw, route {rs[0]['route']}")
    os.chdir(os.path.dirname(work))   # CASA asserts a valid cwd at exit
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
