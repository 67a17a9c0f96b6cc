"""Diagnostic plots of the scaling spectra (matplotlib, PNG; I/O only).

* :func:`plot_spectrum` - one target and spw: every antenna's scaling
  spectrum (thin; X red, Y blue), the antenna median per correlation
  (bold), the threshold, excluded (yellow) and atmospheric (grey) ranges,
  the spectrum before exclusion (dashed), the maximum marked, segment
  borders, and the ATM transmission on the right axis (as the pipeline's
  ``plotSpectra``).
* :func:`plot_summary` - the maximum scaling per spw and field of one MS.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..atomic import atomic_output

CORR_COLORS = ("tab:red", "tab:blue")
MEDIAN_COLORS = ("darkred", "navy")
CORR_NAMES = ("XX", "YY")


def _mpl():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def antenna_median(N: np.ndarray) -> np.ndarray:
    """Median over antennas per correlation, ignoring antennas set to exactly 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        flagged = np.all(N == 1.0, axis=1)                     # (ncorr, nant)
        M = np.nanmedian(np.where(flagged[:, None, :], np.nan, N), axis=2)
    M[np.isnan(M)] = 1.0
    return M


def peak_of(N: np.ndarray, freqs_hz: np.ndarray) -> tuple[int, float, float]:
    """Channel, frequency (GHz) and value of the maximum of the antenna
    median averaged over correlations."""
    m = antenna_median(N).mean(axis=0)
    i = int(np.argmax(m))
    return i, float(freqs_hz[i] * 1e-9), float(m[i])


def plot_spectrum(path: str, N: np.ndarray, freqs_hz: np.ndarray, *, title: str,
                  threshold: float, max_rn: float, exclusions: Sequence[tuple[int, int]] = (),
                  atm_ranges: Sequence[tuple[int, int]] = (), N_atm: np.ndarray | None = None,
                  transmission: np.ndarray | None = None, nseg: int = 1, dnchan: int = 0,
                  antnames: Sequence[str] = ()) -> str:
    """Write the scaling-spectrum plot of one target/spw to ``path`` (PNG)."""
    plt = _mpl()
    f = np.asarray(freqs_hz) * 1e-9
    ncorr, nchan, nant = N.shape
    fig, ax = plt.subplots(figsize=(10, 6.5))
    try:
        for j in range(ncorr):
            for a in range(nant):
                if np.all(N[j, :, a] == 1.0):
                    continue
                ax.plot(f, N[j, :, a], color=CORR_COLORS[j % 2], lw=0.6, alpha=0.45)
        M = antenna_median(N)
        for j in range(ncorr):
            ax.plot(f, M[j], color=MEDIAN_COLORS[j % 2], lw=2.5,
                    label=f"median {CORR_NAMES[j % 2] if ncorr > 1 else 'corr 0'}")
        if N_atm is not None:
            ax.plot(f, antenna_median(N_atm).mean(axis=0), "k--", alpha=0.35, lw=2,
                    label="before exclusion")
        ax.axhline(threshold, color="darkorange", ls="--", lw=1.5, label=f"threshold {threshold:g}")
        ax.axhline(1.0, color="0.5", lw=0.8)
        df = abs(f[1] - f[0]) / 2 if len(f) > 1 else 0.0
        for k, (lo, hi) in enumerate(exclusions):
            lo_i, hi_i = max(0, lo), min(nchan - 1, max(lo, hi - 1))
            a0, a1 = sorted((f[lo_i], f[hi_i]))
            ax.axvspan(a0 - df, a1 + df, facecolor="gold", alpha=0.3, edgecolor="none",
                       label="excluded channels" if k == 0 else None)
        for k, (lo, hi) in enumerate(atm_ranges):
            a0, a1 = sorted((f[max(0, lo)], f[min(nchan - 1, hi)]))
            ax.axvspan(a0 - df, a1 + df, facecolor="none", edgecolor="0.35", hatch="//",
                       lw=0.0, alpha=0.6, label="atmospheric line (ATM model)" if k == 0 else None)
        if nseg > 1 and dnchan:
            for i in range(1, nseg):
                ax.axvline(f[min(i * dnchan, nchan - 1)], color="grey", ls=":", alpha=0.5)
        ip, fp, vp = peak_of(N, freqs_hz)
        ax.plot([fp], [vp], marker="v", ms=12, color="k", zorder=5,
                label=f"max {vp:.4f} at {fp:.4f} GHz")
        ax.annotate(f"max scaling (pipeline statistic) {max_rn:.5f}", xy=(0.01, 0.97),
                    xycoords="axes fraction", va="top", fontsize=10)
        lo = min(0.999, float(np.nanmin(N)))
        top = float(np.nanmax(N)) if N_atm is None else max(float(np.nanmax(N)),
                                                              float(np.nanmax(antenna_median(N_atm))))
        hi = max(1.15 * max(top, threshold) - 0.15 * lo, 1.02)
        ax.set_ylim(lo, hi)
        ax.set_xlim(min(f), max(f))
        ax.set_xlabel("Frequency (GHz) (TOPO)")
        ax.set_ylabel("Renorm scaling")
        ax.ticklabel_format(axis="x", useOffset=False)
        ax.set_title(title, fontsize=10)
        top = ax.secondary_xaxis("top", functions=(
            lambda x: np.interp(x, f if f[-1] > f[0] else f[::-1],
                                np.arange(nchan) if f[-1] > f[0] else np.arange(nchan)[::-1]),
            lambda c: np.interp(c, np.arange(nchan), f)))
        top.set_xlabel("Channel")
        if transmission is not None:
            ax2 = ax.twinx()
            ax2.plot(f, 100.0 * np.asarray(transmission), color="m", lw=1.5, alpha=0.7)
            pk = 100.0 * float(np.max(transmission))
            ax2.set_ylim(pk - 100.0, pk + 1.0)
            ax2.set_ylabel("ATM transmission (%)", color="m")
        ax.legend(loc="upper right", fontsize=8, ncol=2)
        with atomic_output(path, overwrite=True) as tmp:
            fig.savefig(str(tmp), format="png", dpi=80)
    finally:
        plt.close(fig)
    return path


def plot_summary(path: str, rows: list[dict], threshold: float, title: str) -> str:
    """Maximum scaling per spw (x) and field (points) of one MS; ``rows`` are
    dicts with ``target``, ``spw``, ``field``, ``value``."""
    plt = _mpl()
    spws = sorted({r["spw"] for r in rows})
    targets = sorted({r["target"] for r in rows})
    fig, ax = plt.subplots(figsize=(8, 5))
    try:
        markers = "osD^v<>ph*"
        for ti, t in enumerate(targets):
            sel = [r for r in rows if r["target"] == t]
            x = np.array([spws.index(r["spw"]) for r in sel], float)
            x += (ti - (len(targets) - 1) / 2) * 0.12
            v = np.array([r["value"] for r in sel])
            col = np.where(v > threshold, "tab:red", "tab:green")
            ax.scatter(x, v, c=col, marker=markers[ti % len(markers)], s=36,
                       edgecolors="k", linewidths=0.4, label=t)
        ax.axhline(threshold, color="darkorange", ls="--", lw=1.5, label=f"threshold {threshold:g}")
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(spws)))
        ax.set_xticklabels([str(s) for s in spws])
        ax.set_xlim(-0.6, len(spws) - 0.4)
        vals = [r["value"] for r in rows] or [1.0]
        ax.set_ylim(min(0.998, min(vals)), max(threshold, max(vals)) + 0.01)
        ax.set_xlabel("Spectral window")
        ax.set_ylabel("Max scaling per scan/field (mean over antennas and correlations)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        with atomic_output(path, overwrite=True) as tmp:
            fig.savefig(str(tmp), format="png", dpi=80)
    finally:
        plt.close(fig)
    return path
