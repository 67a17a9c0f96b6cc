"""Benchmark of qa_renormplots' heuristic against reading the autocorrelations alone.

Builds (once) a simulated MS with autocorrelations (10 antennas, two FDM
spws of 960 channels, 2 s integrations, one bandpass and six target scans
per spw), then times, in interleaved rounds (best of ``--repeat``):

* floor     - reading the same autocorrelation rows (same TaQL selection,
              chunked getcol into numpy) and doing nothing with them;
* floor in casacore - the same rows read and summed inside casacore (one
              TaQL ``gsums`` per spw, nothing but the sum reaches Python):
              the heuristic now sums per group that way, so this is the
              floor of its route, and the getcol floor is the old one;
* no ATM    - the heuristic without the atmospheric-line step
              (check_false_positives=False, atm_auto_exclude=False);
* with ATM  - the pipeline's default (atmospheric lines, auto-exclusion),
              with the in-process opacity cache cleared first (cold: the
              atmosphere tool runs), reporting how often the tool and the
              line fit ran;
* ATM warm  - the same call again without clearing the cache (what a second
              call on the same MS or conditions costs);
* no auto-exclusion - hifa_renorm's default (atm_auto_exclude=False), cold, with
              the false-positive check on every spw, and as the restore runs
              it (atm_only_if_exceeding: the atmosphere only for spws whose
              scaling exceeds the threshold; same maxima and warnings);
* pipeline  - optionally, the ALMA pipeline's almarenorm.py on the same MS
              (set ALMAQA_ALMARENORM=/path/to/almarenorm.py), plots off;
* plots     - the full task once (heuristic + plots + HTML + JSON).

Then one cProfile'd cold run gives the seconds per phase and the top
functions.  CPU seconds are reported next to the wall seconds (the heuristic
runs in one thread: CASA's atmosphere tool is not thread-safe, see
``benchmarks/atm_threads.py``; the almarenorm.py reference runs in one too).

Usage::

    python benchmarks/renorm.py [--workdir /tmp/renorm_bench] [--repeat 3] [--json]
"""
from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import pstats
import resource
import sys
import tempfile
import time

import almaqa_casa  # noqa: F401  (offline CASA first)
from almaqa_casa.renorm import atm as atmmod
from almaqa_casa.renorm import engine
from almaqa_casa.renorm.msinfo import read_msinfo
from almaqa_casa.renorm.reader import read_auto_rows_only
from almaqa_casa.renorm.run import renormplots

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "renorm"))

#: (phase, function names whose cumulative time it is) for the profile.
PHASES = (
    ("ms metadata", ("read_msinfo",)),
    ("weather/PWV/LO tables", ("read_weather", "read_pwv", "read_image_lo")),
    ("atmosphere tool", ("opacity_spectrum",)),
    ("elevations", ("elevations_deg",)),
    ("autocorrelation read", ("read_auto_sums",)),
    ("cross-correlation flags", ("read_xc_good_antennas",)),
    ("atmospheric line fits", ("fit_atm_lines",)),
    ("scaling spectra", ("scaling_spectrum",)),
)


def build(path: str) -> None:
    import renorm_simms as sim
    sim.SPWS = (("spw_a", 230.0e9, 960, 0.9765625e6), ("spw_b", 232.5e9, 960, 0.9765625e6))
    sim.make_ms(path, nant=10, integration="2s", scan_s=120.0, ntarget_scans=6)


def read_auto_in_casacore(vis: str, ddids, scans) -> int:
    """The same autocorrelation rows summed inside casacore, per data description."""
    import casatools
    tb = casatools.table()
    tb.open(vis)
    n = 0
    try:
        for d in ddids:
            q = tb.taql(f'SELECT gsums(real(DATA)) AS RN_SUM FROM "{os.path.abspath(vis)}" '
                        f'WHERE ANTENNA1==ANTENNA2 && DATA_DESC_ID=={int(d)} '
                        f'&& SCAN_NUMBER IN [{",".join(str(int(k)) for k in scans)}]')
            try:
                n += int(q.getcol("RN_SUM").size)
            finally:
                q.close()
    finally:
        tb.close()
    return n


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def profile_phases(vis: str) -> dict:
    """Seconds per phase and the top functions of one cold run."""
    atmmod.clear_opacity_cache()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    engine.run(vis, engine.Options())
    prof.disable()
    total = time.perf_counter() - t0
    st = pstats.Stats(prof).stats
    phases = {}
    for name, funcs in PHASES:
        phases[name] = round(sum(v[3] for (_, _, fn), v in st.items() if fn in funcs), 3)
    phases["other"] = round(total - sum(phases.values()), 3)
    top = sorted(st.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    return {"total_s": round(total, 3), "phases_s": phases,
            "top_functions": [{"function": f"{os.path.basename(fname)}:{line}({fn})",
                               "calls": v[1], "tottime_s": round(v[2], 3),
                               "cumtime_s": round(v[3], 3)}
                              for (fname, line, fn), v in top]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_pipeline(ref: str, vis: str):
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
    return pipeline


def measure(args) -> dict:
    os.makedirs(args.workdir, exist_ok=True)
    os.chdir(args.workdir)
    vis = os.path.join(args.workdir, "bench.ms")
    built_s = None
    if not os.path.isdir(vis):
        t0 = time.perf_counter()
        build(vis)
        built_s = time.perf_counter() - t0
    info = read_msinfo(vis)
    ddids = [d for s in info.fdm_spws for d in info.spws[s].ddids]
    scans = sorted(set(info.target_scans) | set(info.bandpass_scans))
    nrow = read_auto_rows_only(vis, ddids, scans)           # warm the page cache
    mb = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(vis) for f in fs) / 2**20
    engine.run(vis, engine.Options())                        # load the ATM catalogues once

    ref = os.environ.get("ALMAQA_ALMARENORM", "")
    pipeline = load_pipeline(ref, vis) if os.path.isfile(ref) else None
    noatm = engine.Options(check_false_positives=False, atm_auto_exclude=False)

    def cold(**kw):
        atmmod.clear_opacity_cache()
        return engine.run(vis, engine.Options(**kw))

    variants = {"floor": lambda: read_auto_rows_only(vis, ddids, scans),
                "floor_in_casacore": lambda: read_auto_in_casacore(vis, ddids, scans),
                "no_atm": lambda: engine.run(vis, noatm),
                "with_atm": cold,
                "with_atm_warm_cache": lambda: engine.run(vis, engine.Options()),
                # hifa_renorm's default (no auto-exclusion): the check on every spw, and
                # the restore's way (only where a scaling exceeds the threshold)
                "no_auto_exclude_every_spw": lambda: cold(atm_auto_exclude=False),
                "no_auto_exclude_if_exceeding": lambda: cold(atm_auto_exclude=False,
                                                             atm_only_if_exceeding=True)}
    if pipeline is not None:
        variants["pipeline"] = pipeline
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    outs: dict[str, object] = {}
    for _ in range(args.repeat):
        for name, fn in variants.items():
            w, c, out = timed(fn)
            if name not in wall or w < wall[name]:
                wall[name], cpu[name], outs[name] = w, c, out
    out_dir = os.path.join(args.workdir, "out")
    atmmod.clear_opacity_cache()
    w, c, _ = timed(lambda: renormplots(vis, outdir=out_dir, log=lambda s: None))
    wall["full_task_with_plots"], cpu["full_task_with_plots"] = w, c
    prof = profile_phases(vis)
    rr = outs["with_atm"]
    warm = outs["with_atm_warm_cache"]
    floor = wall["floor"]
    res = {
        "benchmark": "renorm",
        "parameters": {"workdir": args.workdir, "repeat": args.repeat, "vis": vis,
                       "almarenorm": ref if pipeline is not None else None,
                       "cpus": len(os.sched_getaffinity(0)), "load_average_1min": os.getloadavg()[0]},
        "ms": {"size_mb": round(mb, 1), "autocorrelation_rows": int(nrow),
               "antennas": info.nant, "spws": list(info.fdm_spws),
               "channels": info.spws[info.fdm_spws[0]].nchan,
               "target_scans": len(info.target_scans), "built_s": built_s},
        "seconds": {k: round(v, 3) for k, v in wall.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "ratio_to_floor": {k: round(v / floor, 3) for k, v in wall.items()},
        "no_atm_over_floor": round(wall["no_atm"] / floor, 3),
        "no_atm_over_floor_in_casacore": round(wall["no_atm"] / wall["floor_in_casacore"], 3),
        "atmosphere": {"spectra_used": rr.atm.n_tool_calls,
                       "tool_runs_cold": rr.atm.n_tool_calls - rr.atm.n_cache_hits,
                       "tool_runs_warm": warm.atm.n_tool_calls - warm.atm.n_cache_hits,
                       "cache_hits_warm": warm.atm.n_cache_hits,
                       "line_fits_elevation_bins": rr.atm.n_fits},
        "profile_cold_run": prof,
        "no_auto_exclude": {
            "spws_exceeding": sorted(r.spw for r in outs["no_auto_exclude_every_spw"].results
                                     if r.exceeds),
            "tool_runs_every_spw": outs["no_auto_exclude_every_spw"].atm.n_tool_calls,
            "tool_runs_if_exceeding": getattr(outs["no_auto_exclude_if_exceeding"].atm,
                                              "n_tool_calls", 0),
            "same_maxima_and_warnings": [(r.max_rn, r.atm_warning) for r in
                                         outs["no_auto_exclude_every_spw"].results]
                                        == [(r.max_rn, r.atm_warning) for r in
                                            outs["no_auto_exclude_if_exceeding"].results],
            "speedup": round(wall["no_auto_exclude_every_spw"]
                             / wall["no_auto_exclude_if_exceeding"], 3)},
    }
    if pipeline is not None:
        st = outs["pipeline"]
        diff = max(abs(r.max_rn - st[r.target][str(r.spw)]["max_rn"]) for r in rr.results)
        diff_w = max(abs(r.max_rn - st[r.target][str(r.spw)]["max_rn"]) for r in warm.results)
        res["pipeline"] = {"seconds": round(wall["pipeline"], 3),
                           "cpu_seconds": round(cpu["pipeline"], 3),
                           "speedup_with_atm": round(wall["pipeline"] / wall["with_atm"], 3),
                           "speedup_with_atm_cpu": round(cpu["pipeline"] / cpu["with_atm"], 3),
                           "speedup_with_atm_warm_cache":
                               round(wall["pipeline"] / wall["with_atm_warm_cache"], 3),
                           "max_abs_max_rn_difference": max(diff, diff_w)}
    # the process's peak: includes the pipeline's run when it was compared
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return res


def print_text(r: dict) -> None:
    ms, s, c, q = r["ms"], r["seconds"], r["cpu_seconds"], r["ratio_to_floor"]
    if ms["built_s"]:
        print(f"built {r['parameters']['vis']} in {ms['built_s']:.1f} s")
    print(f"MS {ms['size_mb']:.0f} MB, {ms['autocorrelation_rows']} autocorrelation rows, "
          f"{ms['antennas']} antennas, spws {ms['spws']} x {ms['channels']} channels; "
          f"best of {r['parameters']['repeat']}, {r['parameters']['cpus']} CPUs, "
          f"load {r['parameters']['load_average_1min']:.1f}")
    a = r["atmosphere"]
    rows = [("floor (read autocorrelations only)", "floor", ""),
            ("floor in casacore (read and sum)", "floor_in_casacore", ""),
            ("heuristic without ATM step", "no_atm",
             f" (target <= 2x; {r['no_atm_over_floor_in_casacore']:.2f}x the casacore floor)"),
            ("heuristic with ATM step (cold)", "with_atm",
             f"; atmosphere tool runs {a['tool_runs_cold']} for {len(ms['spws'])} spws, "
             f"line fits {a['line_fits_elevation_bins']} (elevation bins) for "
             f"{ms['target_scans']} target scans"),
            ("same, opacity cached in-process", "with_atm_warm_cache",
             f"; tool runs {a['tool_runs_warm']}"),
            ("no auto-exclusion, check on every spw", "no_auto_exclude_every_spw",
             f"; tool runs {r['no_auto_exclude']['tool_runs_every_spw']}"),
            ("same, check where exceeding (restore)", "no_auto_exclude_if_exceeding",
             f"; tool runs {r['no_auto_exclude']['tool_runs_if_exceeding']} (spws exceeding "
             f"{r['no_auto_exclude']['spws_exceeding']}); same maxima and warnings: "
             f"{r['no_auto_exclude']['same_maxima_and_warnings']}"),
            ("full task (heuristic + plots + HTML)", "full_task_with_plots", "")]
    if "pipeline" in r:
        p = r["pipeline"]
        rows.append(("pipeline almarenorm.py (no plots)", "pipeline",
                     f"; ours is {p['speedup_with_atm']:.1f}x faster (cold; CPU "
                     f"{p['speedup_with_atm_cpu']:.1f}x, warm {p['speedup_with_atm_warm_cache']:.1f}x);"
                     f" max |max_rn difference| {p['max_abs_max_rn_difference']:.2e}"))
    for label, key, extra in rows:
        print(f"{label:38s}{s[key]:8.2f} s (cpu {c[key]:6.2f})  {q[key]:5.2f}x{extra}")
    if "pipeline" not in r:
        print("pipeline comparison skipped (set ALMAQA_ALMARENORM=/path/to/almarenorm.py)")
    pr = r["profile_cold_run"]
    print(f"profile of one cold run ({pr['total_s']:.2f} s):")
    for k, v in pr["phases_s"].items():
        print(f"  {k:28s}{v:7.2f} s")
    print("  top functions (own time):")
    for f in pr["top_functions"][:8]:
        print(f"    {f['tottime_s']:7.3f} s  {f['calls']:6d} calls  {f['function']}")
    print(f"peak RSS {r['peak_rss_mb']:.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "renorm_bench"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()
    r = measure(args)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print_text(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
