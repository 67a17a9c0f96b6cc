"""Benchmark of qa_renormplots' heuristic against reading the autocorrelations alone.

Builds (once) a simulated MS with autocorrelations (10 antennas, two FDM
spws of 960 channels, 2 s integrations, one bandpass and six target scans
per spw; ~0.7 GB), then times in one run:

* floor     - reading the same autocorrelation rows (same TaQL selection,
              same chunked getcol) and doing nothing with them;
* no ATM    - the heuristic without the atmospheric-line step
              (check_false_positives=False, atm_auto_exclude=False);
* with ATM  - the pipeline's default (atmospheric lines, auto-exclusion),
              reporting how often the atmosphere tool and the line fit ran;
* plots     - the full task (heuristic + plots + HTML + JSON);
* pipeline  - optionally, the ALMA pipeline's almarenorm.py on the same MS
              (set ALMAQA_ALMARENORM=/path/to/almarenorm.py), plots off.

Usage::

    python benchmarks/renorm.py [--workdir /tmp/renorm_bench] [--repeat 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time

import almaqa_casa  # noqa: F401  (offline CASA first)
from almaqa_casa.renorm import engine
from almaqa_casa.renorm.msinfo import read_msinfo
from almaqa_casa.renorm.reader import read_auto_rows_only
from almaqa_casa.renorm.run import renormplots

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "renorm"))


def build(path: str) -> None:
    import renorm_simms as sim
    sim.SPWS = (("spw_a", 230.0e9, 960, 0.9765625e6), ("spw_b", 232.5e9, 960, 0.9765625e6))
    sim.make_ms(path, nant=10, integration="2s", scan_s=120.0, ntarget_scans=6)


def best(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "renorm_bench"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    os.chdir(args.workdir)
    vis = os.path.join(args.workdir, "bench.ms")
    if not os.path.isdir(vis):
        t0 = time.perf_counter()
        build(vis)
        print(f"built {vis} in {time.perf_counter() - t0:.1f} s")
    info = read_msinfo(vis)
    ddids = [d for s in info.fdm_spws for d in info.spws[s].ddids]
    scans = sorted(set(info.target_scans) | set(info.bandpass_scans))
    nrow = read_auto_rows_only(vis, ddids, scans)           # warm the page cache
    mb = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(vis) for f in fs) / 2**20
    print(f"MS {mb:.0f} MB, {nrow} autocorrelation rows, {info.nant} antennas, "
          f"spws {info.fdm_spws} x {info.spws[info.fdm_spws[0]].nchan} channels")

    t_floor, _ = best(lambda: read_auto_rows_only(vis, ddids, scans), args.repeat)
    t_noatm, _ = best(lambda: engine.run(vis, engine.Options(check_false_positives=False,
                                                             atm_auto_exclude=False)), args.repeat)
    t_atm, rr = best(lambda: engine.run(vis, engine.Options()), args.repeat)
    out = os.path.join(args.workdir, "out")
    t_task, _ = best(lambda: renormplots(vis, outdir=out, log=lambda s: None), 1)
    nscan = len(info.target_scans)
    print(f"floor (read autocorrelations only)   {t_floor:8.2f} s   1.00x")
    print(f"heuristic without ATM step           {t_noatm:8.2f} s   {t_noatm / t_floor:5.2f}x "
          f"(target <= 3x)")
    print(f"heuristic with ATM step              {t_atm:8.2f} s   {t_atm / t_floor:5.2f}x; "
          f"atmosphere tool runs {rr.atm.n_tool_calls} for {len(info.fdm_spws)} spws, "
          f"line fits {rr.atm.n_fits} (elevation bins) for {nscan} target scans")
    print(f"full task (heuristic + plots + HTML) {t_task:8.2f} s   {t_task / t_floor:5.2f}x")
    ref = os.environ.get("ALMAQA_ALMARENORM", "")
    if os.path.isfile(ref):
        spec = importlib.util.spec_from_file_location("almarenorm_ref", ref)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)

        def pipeline():
            rn = mod.ACreNorm(vis)
            rn.renormalize(createCalTable=False, fillTable=False, docorrThresh=1.02, spws=[],
                           excludechan={}, atmAutoExclude=True, bwthreshspw={},
                           datacolumn="DATA", diagSpectra=False, antHeuristicsSpectra=False)
            st = rn.rnpipestats
            rn.close()
            return st
        t_pl, st = best(pipeline, 1)
        diff = max(abs(r.max_rn - st[r.target][str(r.spw)]["max_rn"]) for r in rr.results)
        print(f"pipeline almarenorm.py (no plots)    {t_pl:8.2f} s   {t_pl / t_floor:5.2f}x; "
              f"ours is {t_pl / t_atm:.1f}x faster; max |max_rn difference| {diff:.2e}")
    else:
        print("pipeline comparison skipped (set ALMAQA_ALMARENORM=/path/to/almarenorm.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
