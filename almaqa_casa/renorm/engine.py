"""The renormalization heuristic over one MS: target -> spw -> scan -> field.

Follows ``ACreNorm.renormalize`` (pipeline ``hifa_renorm`` defaults:
``excflagged, fixOutliers, mededge=0.01, checkFalsePositives, bwdiv='odd',
bwthresh=120e6, nfit=5, useDynamicSegments, checkLineForest``), including
its bookkeeping: the running ``excludechan`` that accumulates atmospheric
ranges scan by scan (and across targets), the trigger on any scan/field,
and the second pass that fills the correction table.  Documented
differences: atmosphere evaluated once per spw (median weather/PWV of its
target scans) and cached per elevation bin; a spw without target scans is
skipped (the pipeline's ``break`` skipped the target's remaining spws);
antennas without autocorrelations are treated like fully flagged ones; the
summary spectrum is a per-antenna mean over the unflagged scans/fields.

Reading is done up front by :mod:`.reader` (one pass over the
autocorrelation rows); the rest is arithmetic from :mod:`.spectra`.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import AlmaqaError
from . import atm as atmmod
from . import spectra as sp
from .msinfo import MSInfo, read_msinfo
from .reader import AutoSums, read_auto_sums, read_xc_good_antennas


class RenormInputError(AlmaqaError, ValueError):
    """A parameter does not fit the MS (raised, not recorded as a failed MS)."""


@dataclass
class Options:
    """Parameters of one run (names as in ``hifa_renorm`` / ``renormalize``)."""

    threshold: float | None = 1.02
    spws: Sequence[int] = ()
    fields: Sequence[str] = ()
    excludechan: dict[str, str] = field(default_factory=dict)
    atm_auto_exclude: bool = True
    check_false_positives: bool = True
    bwthreshspw: dict[str, float] = field(default_factory=dict)
    bwthresh: float = 120e6
    bwdiv: object = "odd"
    mededge: float = 0.01
    nfit: int = 5
    dynamic_segments: bool = True
    excflagged: bool = True
    fix_outliers: bool = True
    elevation_bin_deg: float = 1.0
    keep_spectra: bool = False           # keep per scan/field N (needed for the caltable)
    fill_table: bool = True
    #: a correction the data already carry, divided out of the target
    #: autocorrelations before the analysis: ``(read_correction(table))``,
    #: i.e. ``({(spw, field, scan): N}, {spw: channel freqs})`` of that table
    divide_by: tuple | None = None
    #: with ``atm_auto_exclude`` off the atmosphere cannot change a scaling
    #: or the table, only the false-positive warning, and that warning needs
    #: a scaling above the threshold: evaluate the atmosphere after the
    #: scaling and only for the spws where a spectrum exceeds the threshold
    #: (same table, maxima and warnings; no transmission or suggested
    #: exclusion for the other spws).  The restore sets it; the plots do not.
    atm_only_if_exceeding: bool = False


@dataclass
class ScanField:
    scan: int
    field: int
    value: float
    nmax: list[float]
    nseg: int
    dnchan: int
    flagged: list[int]
    outliers: list[dict]
    elevation: float | None = None


@dataclass
class TargetSpw:
    """Result of one target and spw."""

    target: str
    spw: int
    threshold: float
    nchan: int
    freqs: np.ndarray
    scans: list[int]
    bandpass_scans: list[int]
    entries: list[ScanField] = field(default_factory=list)
    max_rn: float = 1.0
    max_rn_field: int | None = None
    exceeds: bool = False
    seg_change: bool = False
    summary: np.ndarray | None = None          # (ncorr, nchan, nant)
    summary_atm: np.ndarray | None = None      # before channel exclusion
    summary_is_thresh: bool = False
    exclusions: list[tuple[int, int]] = field(default_factory=list)
    atm_ranges: list[tuple[int, int]] = field(default_factory=list)
    atm_transmission: np.ndarray | None = None
    atm_warning: bool | None = None
    atm_exclude_cmd: str | None = None
    spectra: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    error: str | None = None


@dataclass
class RunResult:
    vis: str
    band: int
    nant: int
    antnames: list[str]
    fdm_spws: list[int]
    tdm_spws: list[int]
    tdm_only: bool
    spws: list[int]
    results: list[TargetSpw]
    atm: atmmod.AtmModel | None
    excludechan_final: dict[str, str]
    info: MSInfo
    #: (spw, scan, field) groups whose autocorrelations had a correction divided out
    undone: list[tuple[int, int, int]] = field(default_factory=list)


def _merge_excludechan(d1: dict[str, str], d2: dict[str, str]) -> dict[str, str]:
    out = copy.deepcopy(d1)
    for k, v in d2.items():
        out[k] = v if k not in out else out[k] + ";" + v
    return out


def select_spws(info: MSInfo, user: Sequence[int]) -> list[int]:
    """FDM science spws to process (all by default); raises if none of the
    user's spws is one of them."""
    if not user:
        return list(info.fdm_spws)
    user = [int(s) for s in user]
    if not any(s in info.fdm_spws for s in user):
        raise RenormInputError(f"{info.path}: spw {user} contains no FDM science spw "
                         f"(FDM science spws: {info.fdm_spws})")
    return [s for s in user if s in info.fdm_spws]


def check_options(info: MSInfo, spws: Sequence[int], opt: Options) -> None:
    """Validate excludechan / bwthreshspw against the spws, as the pipeline does."""
    for k, v in (opt.excludechan or {}).items():
        if int(k) not in spws:
            raise RenormInputError(f"{info.path}: excludechan names spw {k}, which is not processed "
                             f"(spws {list(spws)})")
        if not isinstance(v, str) or "~" not in v:
            raise RenormInputError(f"{info.path}: excludechan['{k}']={v!r} needs 'lo~hi' ranges")
        try:
            sp.parse_excludechan(v, info.spws[int(k)].freqs * 1e-9)
        except ValueError as exc:
            raise RenormInputError(f"{info.path}: {exc}") from None
    for k, v in (opt.bwthreshspw or {}).items():
        if int(k) not in spws:
            raise RenormInputError(f"{info.path}: bwthreshspw names spw {k}, which is not processed")
        if not isinstance(v, (float, int)) or v <= 0:
            raise RenormInputError(f"{info.path}: bwthreshspw['{k}']={v!r} must be a bandwidth in Hz")


def _scan_pointing(info: MSInfo, scan: int) -> tuple[dict, float]:
    """Phase centre (median field of a mosaic scan) and median time, as ATMtrans."""
    flds = info.fields_for_scan[scan]
    fid = int(np.floor(np.median(flds))) if len(flds) > 1 else flds[0]
    pc = info.phase_centers.get(fid) or info.phase_centers[flds[0]]
    return pc, float(np.median(info.scan_times[scan]))


def run(vis: str, opt: Options, log: Callable[[str], None] = lambda s: None) -> RunResult:
    """Compute the scaling spectra of one MS (no plots, no table)."""
    info = read_msinfo(vis)
    tdm_only = not info.fdm_spws
    if tdm_only:
        log(f"{vis}: no FDM science spws: renormalization unnecessary")
        return RunResult(vis, info.band, info.nant, info.antnames, [], info.tdm_spws, True, [],
                         [], None, {}, info)
    spws = select_spws(info, opt.spws)
    check_options(info, spws, opt)
    hardlim = float(opt.threshold) if opt.threshold is not None else 1.02
    targets = [t for t in info.targets if not opt.fields or t in opt.fields]
    if opt.fields and not targets:
        raise RenormInputError(f"{vis}: field {list(opt.fields)} matches no target "
                         f"(targets: {info.targets})")

    # ---- what to read -----------------------------------------------------
    plan: dict[tuple[str, int], list[int]] = {}
    for t in targets:
        for s in sorted(set(spws) & set(info.spws_for_name[t])):
            scans = sorted(set(info.target_scans) & set(info.scans_for_name[t])
                           & set(info.scans_for_spw[s]))
            plan[(t, s)] = scans
    bp_for_spw = {s: sorted(set(info.bandpass_scans) & set(info.scans_for_spw[s])) for s in spws}
    # ---- atmosphere: once per spw, before the read ---------------------------
    use_atm = opt.check_false_positives or opt.atm_auto_exclude
    defer_atm = use_atm and opt.atm_only_if_exceeding and not opt.atm_auto_exclude
    if defer_atm:
        use_atm = False
        sums, undone, good = _read(vis, info, spws, plan, bp_for_spw, opt)
        atm, elevations = None, {}
    else:
        atm, elevations, (sums, undone, good) = _with_atmosphere(
            vis, info, spws if use_atm else [], plan, opt,
            lambda: _read(vis, info, spws, plan, bp_for_spw, opt))
    kept: dict[tuple[str, int], list[tuple[int, int, np.ndarray]]] = {}

    # ---- the loop ------------------------------------------------------------
    excludechan = copy.deepcopy(dict(opt.excludechan or {}))
    atm_masks: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    results: list[TargetSpw] = []
    for t in targets:
        for s in sorted(set(spws) & set(info.spws_for_name[t])):
            si = info.spws[s]
            scans = plan[(t, s)]
            res = TargetSpw(target=t, spw=s, threshold=hardlim, nchan=si.nchan, freqs=si.freqs,
                            scans=scans, bandpass_scans=bp_for_spw[s])
            results.append(res)
            if not scans:
                log(f"{vis}: target {t} has no scans in spw {s}")
                continue
            if not bp_for_spw[s] or s not in sums:
                res.error = f"{vis}: no bandpass scan with autocorrelations in spw {s}"
                log(res.error)
                continue
            B = sums[s].mean((k, f) for k in bp_for_spw[s] for f in info.fields_for_scan[k])
            if B is None:
                res.error = f"{vis}: no bandpass autocorrelations in spw {s}"
                log(res.error)
                continue
            bw = float(opt.bwthreshspw.get(str(s), opt.bwthresh))
            dynamic = opt.dynamic_segments and str(s) not in opt.bwthreshspw
            nseg, dn = sp.channel_ranges(si.nchan, si.bandwidth, bw, opt.bwdiv, opt.mededge)

            def ranges_for(n, _si=si):
                return sp.channel_ranges(_si.nchan, _si.bandwidth, opt.bwthresh, n, opt.mededge)

            sum_n = np.zeros((len(si.corr_index), si.nchan, info.nant))
            cnt_n = np.zeros(info.nant)
            sum_t = np.zeros_like(sum_n)
            cnt_t = np.zeros(info.nant)
            sum_a = np.zeros_like(sum_n)
            cnt_a = np.zeros(info.nant)
            any_atm_copy = False
            ratios: dict[tuple[int, int], np.ndarray] = {}
            used_excl: dict[tuple[int, int], list | None] = {}
            flagged_of: dict[tuple[int, int], list[int]] = {}
            nseg_used: list[tuple[int, int]] = []
            values: dict[tuple[int, int], float] = {}
            atm_warning = None
            for k in scans:
                for f in info.fields_for_scan[k]:
                    values[(k, f)] = 1.0
                    A = sums[s].mean([(k, f)])
                    if A is None:
                        continue
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio = A / B
                    lines = None
                    if use_atm:
                        masks = atm_masks.setdefault((info.field_names[f], s), {})
                        lines = atm.at(s, elevations[k], abs(si.widths[0]))
                        rng = _add_scan_mask(masks, k, lines.mask)
                        if rng:
                            res.atm_exclude_cmd = 'excludechan={"%d":"%s"}' % (s, rng)
                            if opt.atm_auto_exclude:
                                excludechan = _merge_excludechan(excludechan, {str(s): rng})
                    excl = (sp.parse_excludechan(excludechan[str(s)], si.freqs * 1e-9)
                            if str(s) in excludechan else None)
                    flagged = set()
                    if opt.excflagged:
                        ok = good.get((s, k, f), set())
                        flagged |= {a for a in range(info.nant) if a not in ok}
                    flagged |= {int(a) for a in np.nonzero(~np.isfinite(ratio).all(axis=(0, 1)))[0]}
                    ratio = np.where(np.isfinite(ratio), ratio, 1.0)
                    r = sp.scaling_spectrum(ratio, exclusions=excl, nseg=nseg, dnchan=dn,
                                            ranges_for=ranges_for, chanwidth_hz=si.widths[0],
                                            dynamic=dynamic, flagged_ants=sorted(flagged),
                                            nfit=opt.nfit, edge=opt.mededge, fix=opt.fix_outliers)
                    ratios[(k, f)] = ratio
                    used_excl[(k, f)] = excl
                    flagged_of[(k, f)] = sorted(flagged)
                    nseg_used.append((r.nseg, r.dnchan))
                    values[(k, f)] = r.value
                    if lines is not None:
                        src = r.N_atm if (opt.atm_auto_exclude and r.N_atm is not None) else r.N
                        atm_warning = _atm_warns(lines, src, hardlim) or bool(atm_warning)
                    elif defer_atm:
                        kept.setdefault((t, s), []).append((k, f, r.N))
                    ok_ants = np.array([a not in flagged for a in range(info.nant)])
                    sum_n[:, :, ok_ants] += r.N[:, :, ok_ants]
                    cnt_n += ok_ants
                    if r.value > hardlim:
                        sum_t[:, :, ok_ants] += r.N[:, :, ok_ants]
                        cnt_t += ok_ants
                    if r.N_atm is not None:
                        any_atm_copy = True
                    src = r.N_atm if r.N_atm is not None else r.N
                    sum_a[:, :, ok_ants] += src[:, :, ok_ants]
                    cnt_a += ok_ants
                    if opt.keep_spectra:
                        res.spectra[(k, f)] = r.N
                    res.entries.append(ScanField(
                        scan=int(k), field=int(f), value=float(r.value),
                        nmax=[float(v) for v in r.nmax], nseg=r.nseg, dnchan=r.dnchan,
                        flagged=sorted(flagged),
                        outliers=[{"antenna": o.antenna, "corr": o.corr,
                                   "nchan": len(o.channels), "whole": o.replaced_spectrum}
                                  for o in r.outliers],
                        elevation=elevations.get(k)))
                    if r.value > hardlim:
                        res.exceeds = True
            # pipeline statistics (rnpipestats)
            tf = set(info.target_fields.get(t, []))
            cand = [((k, f), values[(k, f)]) for k in scans for f in info.fields_for_scan[k]
                    if f in tf]
            if cand:
                best = max(v for _, v in cand)
                res.max_rn = float(best)
                res.max_rn_field = int(next(kf for kf, v in cand if v == best)[1])
            res.seg_change = len({d for _, d in nseg_used}) > 1
            res.atm_warning = atm_warning
            # summary spectrum (N_thresh when any scan/field exceeded, else N)
            use_t = cnt_t.sum() > 0
            sn, cn = (sum_t, cnt_t) if use_t else (sum_n, cnt_n)
            with np.errstate(invalid="ignore", divide="ignore"):
                res.summary = np.where(cn > 0, sn / np.where(cn > 0, cn, 1), 1.0)
                if any_atm_copy:
                    res.summary_atm = np.where(cnt_a > 0, sum_a / np.where(cnt_a > 0, cnt_a, 1), 1.0)
            res.summary_is_thresh = bool(use_t)
            res.exclusions = (sp.parse_excludechan(excludechan[str(s)], si.freqs * 1e-9)
                              if str(s) in excludechan else [])
            if use_atm:
                _atm_summary(res, atm, atm_masks.get((t, s)), [elevations[k] for k in scans])
            # second pass: the table gets every scan/field with the final exclusions
            if opt.keep_spectra and res.exceeds:
                final = (sp.parse_excludechan(excludechan[str(s)], si.freqs * 1e-9)
                         if str(s) in excludechan else None)
                for kf, ratio in ratios.items():
                    if used_excl[kf] != final:
                        r = sp.scaling_spectrum(ratio, exclusions=final, nseg=nseg, dnchan=dn,
                                                ranges_for=ranges_for, chanwidth_hz=si.widths[0],
                                                dynamic=dynamic, flagged_ants=flagged_of[kf],
                                                nfit=opt.nfit, edge=opt.mededge,
                                                fix=opt.fix_outliers)
                        res.spectra[kf] = r.N
            log(f"{vis}: target {t} spw {s}: max scaling {res.max_rn:.5f} "
                f"(field {res.max_rn_field}); threshold {hardlim}: "
                f"{'EXCEEDED' if res.exceeds else 'not exceeded'}")
    if defer_atm:
        atm = _deferred_atm_check(vis, info, plan, opt, results, kept, hardlim)
    return RunResult(vis, info.band, info.nant, info.antnames, info.fdm_spws, info.tdm_spws,
                     False, spws, results, atm, excludechan, info, undone)


# ---- the atmospheric false-positive check --------------------------------------------
def _with_atmosphere(vis: str, info: MSInfo, spws: Sequence[int],
                     plan: dict[tuple[str, int], list[int]], opt: Options,
                     work: Callable[[], object]) -> tuple:
    """Evaluate the atmosphere of ``spws`` (none: no model), then run ``work()``;
    returns the model, the elevation of every planned scan, and what ``work``
    returned.

    One spw after the other, in the calling thread: CASA's ``atmosphere`` tool
    is not thread-safe.  Two tools evaluated side by side in two threads gave
    a different opacity spectrum (by up to 0.18) in 12 of 400 evaluations, and
    one such run crashed a process; serial evaluations are identical
    (``benchmarks/atm_threads.py``).  EBs run side by side in processes
    (qa_restore's ``nprocs``), where each has its own tool."""
    if not spws:
        return None, {}, work()
    atm = atmmod.AtmModel(bin_deg=opt.elevation_bin_deg)
    need = sorted({k for (_, s), ks in plan.items() if s in spws for k in ks})
    elevations = dict(zip(need, atmmod.elevations_deg([_scan_pointing(info, k) for k in need])))
    for job in _atm_inputs(vis, info, spws, plan):
        atm.set_spw(*job)
    return atm, elevations, work()


def _add_scan_mask(masks: dict[int, np.ndarray], scan: int, mask: np.ndarray) -> str | None:
    """Keep the first line mask of ``scan``; when it has lines, the channel
    ranges (excludechan syntax) of the union of the masks kept so far."""
    if scan in masks:
        return None
    masks[scan] = mask
    if not mask.any():
        return None
    return sp.ranges_to_string(sp.mask_to_ranges(np.logical_or.reduce(list(masks.values()))))


def _atm_warns(lines: atmmod.AtmLines, N: np.ndarray, hardlim: float) -> bool:
    """Whether one scan/field's scaling exceeds the threshold inside an
    atmospheric line (``checkFalsePositives``): a likely false positive."""
    if not lines.mask.any():
        return False
    nmax_atm = sp.peak_per_corr(N, lines.mask)
    return bool(not np.isnan(np.sum(nmax_atm)) and (nmax_atm > hardlim).any())


def _atm_summary(res: TargetSpw, atm: atmmod.AtmModel, masks: dict | None,
                 elevations: Sequence[float]) -> None:
    """The line ranges and the median-elevation transmission of one target/spw."""
    if masks:
        res.atm_ranges = sp.mask_to_ranges(np.logical_or.reduce(list(masks.values())))
    if elevations:
        res.atm_transmission = atm.transmission(res.spw, float(np.median(elevations)))


def _deferred_atm_check(vis: str, info: MSInfo, plan: dict[tuple[str, int], list[int]],
                        opt: Options, results: Sequence[TargetSpw],
                        kept: dict[tuple[str, int], list[tuple[int, int, np.ndarray]]],
                        hardlim: float) -> atmmod.AtmModel | None:
    """The false-positive check of :attr:`Options.atm_only_if_exceeding`.

    A warning needs a channel above the threshold, so a spw none of whose
    scaling spectra exceeds it gets ``atm_warning=False`` (what the check
    finds there) without the tool; the others are checked as in the loop.
    """
    need = sorted({s for (_, s), rows in kept.items()
                   if any(np.nanmax(N) > hardlim for _, _, N in rows)})
    atm, elevations, _ = _with_atmosphere(vis, info, need, plan, opt, lambda: None)
    masks: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    for res in results:
        rows = kept.get((res.target, res.spw), [])
        if not rows:
            continue
        warning = False
        if res.spw in need:
            chanwidth = abs(info.spws[res.spw].widths[0])
            for k, f, N in rows:
                lines = atm.at(res.spw, elevations[k], chanwidth)
                rng = _add_scan_mask(masks.setdefault((info.field_names[f], res.spw), {}),
                                     k, lines.mask)
                if rng:
                    res.atm_exclude_cmd = 'excludechan={"%d":"%s"}' % (res.spw, rng)
                warning = _atm_warns(lines, N, hardlim) or warning
            _atm_summary(res, atm, masks.get((res.target, res.spw)),
                         [elevations[k] for k in res.scans])
        res.atm_warning = warning
    return atm


def _atm_inputs(vis: str, info: MSInfo, spws: Sequence[int],
                plan: dict[tuple[str, int], list[int]]) -> list[tuple]:
    """``AtmModel.set_spw`` arguments per spw with target scans: the median
    weather and PWV of its target scans (reads the weather/PWV tables)."""
    wx = atmmod.read_weather(vis)
    pwvt = atmmod.read_pwv(vis)
    jobs = []
    for s in spws:
        scans = sorted({k for (t, ss), ks in plan.items() if ss == s for k in ks})
        if not scans:
            continue
        conds = [atmmod.scan_weather(info.scan_times[k], wx) for k in scans]
        pwvs = [atmmod.scan_pwv(info.scan_times[k], pwvt) for k in scans]
        pwvs = [p for p in pwvs if p > 0]
        pwv = float(np.median(pwvs)) if pwvs else atmmod.BAND_PWV[info.band]
        P = float(np.median([c[0] for c in conds])) or 563.0
        H = float(np.median([c[1] for c in conds])) or 20.0
        T = float(np.median([c[2] for c in conds]))
        si = info.spws[s]
        lo = atmmod.read_image_lo(vis, s) if info.band in (9, 10) else None
        jobs.append((s, si.freqs, P, H, T, pwv,
                     atmmod.lsb_reversed(si.ref_freq, si.freqs, si.net_sideband), lo))
    return jobs


def _read(vis: str, info: MSInfo, spws: Sequence[int], plan: dict[tuple[str, int], list[int]],
          bp_for_spw: dict[int, list[int]], opt: Options):
    """Autocorrelation sums per spw (a correction divided out when asked) and
    the antennas with unflagged cross-correlations per (spw, scan, field)."""
    sums: dict[int, AutoSums] = {}
    undone: list[tuple[int, int, int]] = []
    table_spw = _table_spw_map(info, opt.divide_by[1]) if opt.divide_by else {}
    for s in spws:
        scans = sorted({k for (t, ss), ks in plan.items() if ss == s for k in ks} | set(bp_for_spw[s]))
        if not scans:
            continue
        si = info.spws[s]
        sums[s] = read_auto_sums(vis, s, si.ddids, scans, si.corr_index, si.nchan, info.nant,
                                 info.data_column)
        if opt.divide_by and s in table_spw:
            undone += divide_out(sums[s], opt.divide_by[0], table_spw[s])
    if not any(len(a.groups) for a in sums.values()):
        raise ValueError(f"{vis}: no autocorrelation rows (ANTENNA1==ANTENNA2) in the target or "
                         "bandpass scans; the MS must keep them (importasdm ocorr_mode='ca', "
                         "split/mstransform without dropping autocorrelations)")
    good: dict[tuple[int, int, int], set] = {}
    if opt.excflagged:
        dd2spw = {d: s for s in spws for d in info.spws[s].ddids}
        tscans = sorted({k for ks in plan.values() for k in ks})
        if tscans:
            good = read_xc_good_antennas(vis, dd2spw, tscans)
    return sums, undone, good


def _table_spw_map(info: MSInfo, table_freqs: dict[int, np.ndarray]) -> dict[int, int]:
    """MS spw -> spw id of a correction table, matched by channel frequencies
    (ids agree unless the MS was split with re-indexed spws)."""
    out = {}
    for s, si in info.spws.items():
        for ts, f in table_freqs.items():
            f = np.asarray(f, float)
            if f.size == si.nchan and np.allclose(f, si.freqs, rtol=0, atol=1.0):
                out[s] = ts
                break
    return out


def divide_out(sums: AutoSums, correction: dict, table_spw: int) -> list[tuple[int, int, int]]:
    """Divide a correction applied to the data out of the autocorrelation sums.

    A ``B TSYS`` table multiplies the autocorrelation of antenna ``a`` in
    correlation ``pp`` by ``N[p, :, a]`` (``sqrt(N_a,p)`` twice), the same
    factor for every row of one scan and field, so dividing the per-group
    sum restores the uncorrected sum exactly.  Returns the groups changed.
    """
    done = []
    nc = sums.sums.shape[1]
    for gi, (k, f) in enumerate(sums.groups):
        N = correction.get((table_spw, f, k))
        if N is None:
            continue
        nant = min(N.shape[2], sums.sums.shape[3])
        with np.errstate(invalid="ignore", divide="ignore"):
            sums.sums[gi, :, :, :nant] /= N[:nc, :, :nant]
        done.append((sums.spw, int(k), int(f)))
    return done
