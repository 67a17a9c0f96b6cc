"""Scaling-spectrum mathematics of the ALMA renormalization heuristic (pure numpy).

Everything here follows ``almarenorm.py`` (``ACreNorm``, v2.1-2024/09/26-PLWG,
the code the ALMA pipeline's ``hifa_renorm`` runs) step by step, but works
on whole arrays at once instead of one antenna/segment/correlation at a time.
Arrays are shaped ``(ncorr, nchan, nant)`` like the pipeline's ``N``.
Exactly 1.0 marks an excluded channel (or a flagged antenna), as there.

No I/O: the callers read the autocorrelations and pass arrays in.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Values below this relative scaling are "trivial" (outlier heuristics).
OUTLIER_THRESH = 1.0025
#: Border check of the dynamic segmentation (the code's value; its docstring says 1.05).
BORDER_TRIGGER = 1.005


def nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` along one axis, bit for bit (sorted NaNs last, the
    mean ``(lo + hi) / 2`` of the two middle values), without the masked
    arrays numpy uses for short axes (the heuristic's hottest call)."""
    a = np.moveaxis(np.asarray(a, dtype=float), axis, -1)
    s = np.sort(a, axis=-1)
    n = np.count_nonzero(~np.isnan(a), axis=-1)
    if a.shape[-1] == 0:
        return np.full(a.shape[:-1], np.nan)
    lo = np.take_along_axis(s, ((np.maximum(n, 1) - 1) // 2)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, (n // 2)[..., None], axis=-1)[..., 0]
    return np.where(n > 0, (lo + hi) / 2.0, np.nan)


# --------------------------------------------------------------------------
# Segmentation (calcChanRanges)
# --------------------------------------------------------------------------
def channel_ranges(nchan: int, bandwidth: float, bwthresh: float = 120e6,
                   bwdiv="odd", edge: float = 0.01, is_fdm: bool = True) -> tuple[int, int]:
    """Number of fit segments and channels per segment (``calcChanRanges``).

    ``bwdiv`` is ``'odd'`` (default: odd number of equal segments whose
    remainder falls in the ``edge`` channels), ``None`` (power of two) or an
    int (forced number of segments).  At most 3/5/7 segments for
    <=300/<=550/more channels; one segment for <=128 channels or a bandwidth
    not above ``bwthresh``.
    """
    nseg, dnchan = 1, nchan
    if nchan <= 128:
        return 1, nchan
    max_divs = 3.0 if nchan <= 300 else (5.0 if nchan <= 550 else 7.0)
    if isinstance(bwdiv, (int, np.integer)) and not isinstance(bwdiv, bool) and is_fdm:
        nseg_f = float(bwdiv)
        d = nchan / nseg_f
        if d.is_integer() or nchan % nseg_f < edge * nchan:
            return int(nseg_f), int(d)
        nseg = max(0, 2 ** int(math.ceil(math.log(bandwidth / bwthresh) / math.log(2))))
        return nseg, int(nchan / nseg)
    if bandwidth > bwthresh and is_fdm:
        if bwdiv == "odd":
            nseg = min(max_divs, bandwidth / bwthresh)
            d = nchan / nseg
            while not float(d).is_integer():
                nseg = int(math.ceil(nseg))
                d = nchan / nseg
                if nseg % 2 != 1:
                    nseg = int(math.ceil(nseg)) + 1.0
                    d = nchan / nseg
                if nchan % nseg <= edge * nchan:
                    d = float(int(d))
                else:
                    nseg = int(math.ceil(nseg)) + 1.0
                if nseg > 50:
                    nseg = max(0, 2 ** int(math.ceil(math.log(bandwidth / bwthresh) / math.log(2))))
                    break
            nseg = int(math.ceil(nseg))
            dnchan = int(nchan / nseg)
        else:
            nseg = max(0, 2 ** int(math.ceil(math.log(bandwidth / bwthresh) / math.log(2))))
            dnchan = int(nchan / nseg)
    return int(nseg), int(dnchan)


# --------------------------------------------------------------------------
# Polynomial baseline of one segment, many spectra at once (calcReNorm1)
# --------------------------------------------------------------------------
def _lsq_fit_values(x: np.ndarray, y: np.ndarray, w: np.ndarray, deg: int) -> np.ndarray:
    """Least-squares polynomial of degree ``deg`` through the points where
    ``w`` is True, evaluated at every ``x``; one fit per row of ``y``.

    Same solution as ``np.polyfit(x[w], y[w], deg)`` (Legendre basis for
    conditioning; rank-deficient rows fall back to ``np.polyfit``).
    """
    basis = np.polynomial.legendre.legvander(2.0 * x, deg)          # (n, deg+1)
    wf = w.astype(float)
    a = np.einsum("ni,mn,nj->mij", basis, wf, basis)                 # (m, k, k)
    b = np.einsum("ni,mn->mi", basis, wf * np.where(w, y, 0.0))
    out = np.empty_like(y)
    npts = w.sum(axis=1)
    ok = npts > deg
    if ok.any():
        try:
            coef = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
            out[ok] = coef @ basis.T
        except np.linalg.LinAlgError:
            ok[:] = False
    for i in np.nonzero(~ok)[0]:
        if npts[i] == 0:
            out[i] = np.nan
            continue
        with np.errstate(all="ignore"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[i] = np.polyval(np.polyfit(x[w[i]], y[i, w[i]], deg), x)
    return out


def fit_segment(r: np.ndarray, nfit: int = 5, check_fit: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Divide each spectrum of a segment by its clipped polynomial baseline.

    ``r`` is ``(m, n)``: m spectra (antennas x correlations) of one segment.
    Channels exactly 1.0 are excluded from the fits and stay 1.0.  Orders 0
    (median), then 1..nfit-1; before each order, channels deviating by more
    than twice the median absolute deviation of the previous inliers from
    the previous fit are clipped.

    Returns the normalized spectra and a per-spectrum "refit" flag (no data
    left, or with ``check_fit`` at most 10 % of the channels left to fit);
    flagged spectra are returned unchanged, as in the pipeline.
    """
    r = np.asarray(r, dtype=float)
    m, n = r.shape
    x = np.arange(n) * 1.0 / n - 0.5
    excl = r == 1.0
    has = ~excl
    refit = ~has.any(axis=1)
    live = ~refit
    out = r.copy()
    if not live.any():
        return out, refit
    rl = r[live]
    hl = has[live]
    refit_l = np.zeros(rl.shape[0], bool)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = np.repeat(nanmedian(np.where(hl, rl, np.nan), axis=1)[:, None], n, axis=1)
            mask = hl.copy()
            for ifit in range(1, nfit):
                r0 = rl / fit - 1.0
                thresh = nanmedian(np.where(mask, np.abs(r0), np.nan), axis=1) * 2.0
                mask = ~((r0 < -thresh[:, None]) | (r0 > thresh[:, None]))
                mask &= hl
                if check_fit:
                    bad = (mask.sum(axis=1) / n <= 0.1) & ~refit_l
                    refit_l |= bad
                go = ~refit_l
                if not go.any():
                    break
                new = fit.copy()
                new[go] = _lsq_fit_values(x, rl[go], mask[go], ifit)
                # A fit without points (only possible without check_fit) keeps the last one.
                nanrow = np.isnan(new).any(axis=1)
                new[nanrow] = fit[nanrow]
                fit = new
            res = rl / fit
    res[~hl] = 1.0
    res[refit_l] = rl[refit_l]
    out[live] = res
    refit[live] = refit_l
    return out, refit


def fit_segments(N: np.ndarray, nseg: int, dnchan: int, nfit: int = 5,
                 check_fit: bool = False) -> tuple[np.ndarray, bool]:
    """Fit every segment ``[i*dnchan, (i+1)*dnchan)`` of every antenna and
    correlation; channels beyond ``nseg*dnchan`` are left as they are.

    Returns the new array and whether any spectrum asked for a refit.
    """
    out = N.copy()
    ncorr, nchan, nant = N.shape
    any_refit = False
    for iseg in range(nseg):
        lo, hi = iseg * dnchan, (iseg + 1) * dnchan
        seg = N[:, lo:hi, :]
        flat = np.moveaxis(seg, 1, 2).reshape(ncorr * nant, seg.shape[1])
        res, refit = fit_segment(flat, nfit=nfit, check_fit=check_fit)
        out[:, lo:hi, :] = np.moveaxis(res.reshape(ncorr, nant, seg.shape[1]), 2, 1)
        any_refit |= bool(refit.any())
        if check_fit and any_refit:
            # The pipeline stops at the first request and retries with fewer segments.
            return out, True
    # Without the check the pipeline ignores calcReNorm1's return value.
    return out, (any_refit if check_fit else False)


@dataclass
class SegmentResult:
    """Outcome of the (dynamic) segment fitting of one scan/field."""

    N: np.ndarray
    N_atm: np.ndarray | None
    nseg: int
    dnchan: int
    tries: list[tuple[int, int]] = field(default_factory=list)


def fit_dynamic(N: np.ndarray, N_atm: np.ndarray | None, nseg: int, dnchan: int,
                ranges_for, chanwidth_hz: float, nfit: int = 5, dynamic: bool = True,
                check_line_forest: bool = True) -> SegmentResult:
    """Segment-wise baseline fit with the pipeline's dynamic re-segmentation.

    ``ranges_for(nseg)`` returns ``(nseg, dnchan)`` for a forced number of
    segments (``channel_ranges`` with ``bwdiv=nseg``).  With ``dynamic``, a
    refit request, or an antenna-median above 1.005 within
    ``max(10, ceil(10 MHz/chanwidth))`` channels of an inner segment border,
    retries with two segments fewer, at most ``floor(nseg/2)+1`` times.
    ``N_atm`` (the spectrum before channel exclusion) is fitted with the
    final segmentation, without the refit check.
    """
    tries: list[tuple[int, int]] = []
    if not dynamic:
        out, _ = fit_segments(N, nseg, dnchan, nfit=nfit, check_fit=False)
        atm = None if N_atm is None else fit_segments(N_atm, nseg, dnchan, nfit)[0]
        return SegmentResult(out, atm, nseg, dnchan, [(nseg, dnchan)])
    nseg_t, dn_t = nseg, dnchan
    i = 0
    n_tmp = N.copy()
    limit = max(10, math.ceil(10.0e6 / abs(chanwidth_hz)))
    while i <= math.floor(nseg / 2):
        tries.append((nseg_t, dn_t))
        n_tmp, redo = fit_segments(N, nseg_t, dn_t, nfit=nfit,
                                   check_fit=check_line_forest and nseg_t > 1)
        if redo:
            nseg_t, dn_t = ranges_for(max(nseg_t - 2, 1))
            i += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            nmed = nanmedian(n_tmp, axis=2)
        for iseg in range(1, nseg_t):
            border = iseg * dn_t
            if nseg_t > 1 and (nmed[:, border - limit:border + limit] > BORDER_TRIGGER).any():
                nseg_t, dn_t = ranges_for(max(nseg_t - 2, 1))
                i += 1
                redo = True
                break
        if redo:
            continue
        break
    atm = None if N_atm is None else fit_segments(N_atm, tries[-1][0], tries[-1][1], nfit)[0]
    return SegmentResult(n_tmp, atm, nseg_t, dn_t, tries)


# --------------------------------------------------------------------------
# Edges, exclusions, flagged antennas
# --------------------------------------------------------------------------
def set_edges(N: np.ndarray, edge: float = 0.01) -> np.ndarray:
    """Set the first ``ceil(edge*nchan)`` and the channels from
    ``nchan-1-ceil(edge*nchan)`` on to each spectrum's median (``calcSetEdge``)."""
    out = N.copy()
    nchan = N.shape[1]
    chlo = int(math.ceil(edge * nchan))
    chhi = nchan - 1 - chlo
    med = np.median(N, axis=1)                     # (ncorr, nant)
    out[:, 0:chlo, :] = med[:, None, :]
    out[:, chhi:, :] = med[:, None, :]
    return out


def apply_exclusions(N: np.ndarray, ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Set channel slices ``lo:hi`` (Python slicing, ``hi`` exclusive) to 1.0."""
    out = N.copy()
    for lo, hi in ranges:
        out[:, lo:hi, :] = 1.0
    return out


def parse_excludechan(spec: str, freqs_ghz: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Parse ``'lo~hi;lo~hi'`` (channels) or ``'x GHz~y GHz'`` into (lo, hi)
    pairs as ``interpretExcludechan`` does (nearest channel for frequencies,
    reversed pairs swapped).  Raises ``ValueError`` naming the bad range."""
    out = []
    for rng in (r.strip() for r in spec.split(";")):
        if not rng:
            continue
        if "~" not in rng:
            raise ValueError(f"excludechan range {rng!r} has no '~' separator")
        lo_s, hi_s = rng.split("~", 1)
        try:
            if "GHz" in rng:
                if freqs_ghz is None:
                    raise ValueError("frequencies needed")
                f = np.asarray(freqs_ghz)
                lo = int(np.abs(f - float(lo_s.split("GHz")[0])).argmin())
                hi = int(np.abs(f - float(hi_s.split("GHz")[0])).argmin())
            else:
                lo, hi = int(lo_s), int(hi_s)
        except ValueError as exc:
            raise ValueError(f"excludechan range {rng!r} is not 'lo~hi' channels or "
                             f"'x GHz~y GHz' ({exc})") from None
        if lo > hi:
            lo, hi = hi, lo
        out.append((lo, hi))
    return out


def mask_to_ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as inclusive (first, last) channel pairs (``suggestAtmExclude``)."""
    idx = np.nonzero(mask)[0]
    if len(idx) == 0:
        return []
    breaks = np.nonzero(np.diff(idx) != 1)[0]
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def ranges_to_string(ranges: Sequence[tuple[int, int]]) -> str:
    return ";".join(f"{a}~{b}" for a, b in ranges)


def atm_line_mask(centers: Sequence[float], gammas: Sequence[float], nchan: int,
                  width: float = 1.3) -> np.ndarray:
    """Channels ``floor(c-1.3g) .. ceil(c+1.3g)`` (end exclusive) of each ATM line."""
    mask = np.zeros(nchan, bool)
    for c, g in zip(centers, gammas):
        mask[max(0, math.floor(c - width * g)):min(nchan, math.ceil(c + width * g))] = True
    return mask


# --------------------------------------------------------------------------
# Outlier antennas (checkOutlierAnt, calcFixReNorm)
# --------------------------------------------------------------------------
def _median_over_antennas(N: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        M = nanmedian(np.where(N != 1, N, np.nan), axis=2)
    M[np.isnan(M)] = 1.0
    return M


def despike(m: np.ndarray, limit: float) -> np.ndarray:
    """Replace channel c (10 <= c < n-10) by the median of c-2..c+2 when it
    differs from it by more than ``limit``, sweeping upwards and using
    already-replaced values, exactly like the pipeline's sequential loop."""
    m = m.copy()
    n = len(m)
    start = 10
    while start < n - 10:
        win = np.lib.stride_tricks.sliding_window_view(m, 5)   # win[k] = m[k:k+5]
        c = np.arange(start, n - 10)
        med = np.median(win[c - 2], axis=1)
        hit = np.nonzero(np.abs(med - m[c]) > limit)[0]
        if len(hit) == 0:
            break
        k = c[hit[0]]
        m[k] = med[hit[0]]
        start = k + 1
    return m


def despiked_median(N: np.ndarray) -> np.ndarray:
    """Antenna-median spectrum per correlation with spikes removed."""
    M = _median_over_antennas(N)
    rmax = np.mean(N.max(axis=1), axis=1)                 # mean over all antennas
    for j in range(N.shape[0]):
        rmaxt = max(rmax[j] - 1.0, 0.0025)
        M[j] = despike(M[j], 0.5 * rmaxt)
    return M


def outlier_antennas(N: np.ndarray) -> list[int]:
    """Antennas whose spectrum departs from the median by more than 0.25 %."""
    M = despiked_median(N)
    with np.errstate(all="ignore"):
        comp = 1.0 + np.abs(N / M[:, :, None] - 1.0)
    out: list[int] = []
    for j in range(N.shape[0]):
        for a in np.nonzero(comp[j].max(axis=0) > OUTLIER_THRESH)[0]:
            if int(a) not in out:
                out.append(int(a))
    return out


def max_consecutive(channels: Sequence[int]) -> int:
    """Longest run where steps of 1 or 2 channels count as consecutive."""
    cnt = best = 0
    for d in np.diff(channels):
        cnt = cnt + 1 if d in (1, 2) else 0
        best = max(cnt, best)
    return best


@dataclass
class OutlierFix:
    """What ``fix_outliers`` changed, per (antenna, corr)."""

    antenna: int
    corr: int
    channels: list[int]
    replaced_spectrum: bool


def fix_outliers(N: np.ndarray, antennas: Sequence[int]) -> tuple[np.ndarray, list[OutlierFix]]:
    """Replace outlier channels of the given antennas by the median spectrum;
    the whole correlation spectrum when >10 % of channels or a run of more
    than 10 (gaps of 1-2 allowed) are outliers (``calcFixReNorm``)."""
    out = N.copy()
    M = despiked_median(N)
    ncorr, nchan, _ = N.shape
    thr = np.maximum(M, OUTLIER_THRESH)
    if nchan > 20:
        win = np.lib.stride_tricks.sliding_window_view(M, 20, axis=1)[:, :nchan - 20, :]
        thr[:, 10:nchan - 10] = np.maximum(win.max(axis=2), OUTLIER_THRESH)
    fixes: list[OutlierFix] = []
    for a in antennas:
        for j in range(ncorr):
            with np.errstate(all="ignore"):
                comp = 1.0 + np.abs(N[j, :, a] / M[j] - 1.0)
            bad = comp > thr[j]
            if not bad.any():
                continue
            out[j, bad, a] = M[j, bad]
            chans = [int(c) for c in np.nonzero(bad)[0]]
            whole = len(chans) > 0.1 * nchan or max_consecutive(chans) > 10
            if whole:
                out[j, :, a] = M[j]
            fixes.append(OutlierFix(int(a), j, chans, whole))
    return out, fixes


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------
def peak_per_corr(N: np.ndarray, chans: np.ndarray | None = None) -> np.ndarray:
    """Mean over antennas of each antenna's maximum (antennas whose maximum
    is exactly 1.0, i.e. flagged/excluded, are ignored; NaN if none left)."""
    sub = N if chans is None else N[:, chans, :]
    mx = sub.max(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.where(mx != 1, mx, np.nan), axis=1)


def scaling_value(N: np.ndarray) -> tuple[float, np.ndarray]:
    """The trigger statistic of one scan/field: mean over correlations of
    :func:`peak_per_corr`; (1.0, [1, 1]) when undefined."""
    nmax = peak_per_corr(N)
    if np.isnan(np.sum(nmax)):
        nmax = np.array([1.0, 1.0])
    return float(np.mean(nmax)), nmax


def median_deviation(N: np.ndarray) -> np.ndarray:
    """Median |N-1| per correlation over channels and antennas (1.0 ignored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v = np.nanmedian(np.where(N != 1.0, np.abs(N - 1.0), np.nan), axis=(1, 2))
    if np.isnan(np.sum(v)):
        v = np.zeros(N.shape[0])
    return v


# --------------------------------------------------------------------------
# One scan/field: steps 4-10 of the heuristic
# --------------------------------------------------------------------------
@dataclass
class ScanFieldResult:
    """The scaling spectra of one scan/field and what was done to them."""

    N: np.ndarray
    N_atm: np.ndarray | None
    nseg: int
    dnchan: int
    outliers: list[OutlierFix]
    value: float
    nmax: np.ndarray


def scaling_spectrum(ratio: np.ndarray, *, exclusions: Sequence[tuple[int, int]] | None,
                     nseg: int, dnchan: int, ranges_for, chanwidth_hz: float,
                     dynamic: bool, flagged_ants: Sequence[int] = (), nfit: int = 5,
                     edge: float = 0.01, fix: bool = True) -> ScanFieldResult:
    """Scaling spectrum of one scan/field from ``ratio = AC_target/AC_bandpass``.

    ``exclusions`` is ``None`` when the spw has no excludechan entry (then no
    pre-exclusion copy is kept), else the channel slices to set to 1.0.
    Order as in the pipeline: exclusion, segment fits (dynamic), edges,
    fully-flagged antennas to 1.0, outlier antennas, statistic.
    """
    N = np.array(ratio, dtype=float, copy=True)
    N_atm = None
    if exclusions is not None:
        N_atm = N.copy()
        N = apply_exclusions(N, exclusions)
    seg = fit_dynamic(N, N_atm, nseg, dnchan, ranges_for, chanwidth_hz, nfit=nfit,
                      dynamic=dynamic)
    N, N_atm = seg.N, seg.N_atm
    if edge:
        N = set_edges(N, edge)
        if N_atm is not None:
            N_atm = set_edges(N_atm, edge)
    for a in flagged_ants:
        N[:, :, a] = 1.0
        if N_atm is not None:
            N_atm[:, :, a] = 1.0
    fixes: list[OutlierFix] = []
    if fix:
        ants = outlier_antennas(N)
        if ants:
            N, fixes = fix_outliers(N, ants)
            if N_atm is not None:
                N_atm, _ = fix_outliers(N_atm, ants)
    value, nmax = scaling_value(N)
    return ScanFieldResult(N, N_atm, seg.nseg, seg.dnchan, fixes, value, nmax)
