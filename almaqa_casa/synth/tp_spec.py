"""The sky, the instrument and the names of a synthetic total power EB (pure).

A position-switched (ON/OFF) observation of one target with 4 ALMA total
power antennas (PM01-PM04), autocorrelations only, two Band 3 spectral
windows of 128 channels, XX and YY.  Per antenna ``a``, polarization ``p``,
spectral window ``s`` and channel frequency ``nu`` the raw autocorrelation
power is::

    OFF:  P = g(nu) * Tsys(nu)
    ON:   P = g(nu) * (Tsys(nu) + Ta(nu)),   Ta = S(nu) / jyperk[a][s][p]

(plus radiometer noise), so the standard single-dish calibration the
pipeline applies (sky table from the OFF integrations, Tsys table from the
SysCal spectra: ``Tsys * (ON - OFF) / OFF``, then the Jy/K factor) gives
the source spectrum ``S`` in Jy for every antenna and polarization.  The
target has no continuum: its line-free channels calibrate to zero.

Names follow the pipeline (``pipeline/h/heuristics/caltable.py`` and
``filenamer.py``: ``<vis>.<task>.s<stage>_<n>.<type>.tbl``; the stages of
``procedure_hsd_calimage.xml``: h_tsyscal 3, hsd_skycal 5, hsd_k2jycal 6,
hsd_baseline 9), the restore script ``hsd_restoredata(..., ocorr_mode='ao')``
and the archive's TP cubes ``<mous>.<target>_sci.spw<k>.cube.I.sd.fits``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import spec as S

#: The TP antennas (12-m dishes of the ACA total power array).
ANTENNAS = ("PM01", "PM02", "PM03", "PM04")
DISH_M = 12.0
#: Integration (dump) time of the ACA spectrometer data as simulated.
INTEGRATION_S = 1.008
CORRS = ("XX", "YY")


@dataclasses.dataclass(frozen=True)
class TPLine:
    spw: int
    name: str
    center_hz: float
    fwhm_hz: float
    peak_jy: float


#: Two FDM-like windows of 128 x 0.977 MHz (ids 0 and 1 in the ASDM and MS).
SPWS = (
    S.SpwDef("X0000000000#ALMA_RB_03#BB_1#SW-01#FULL_RES", 115.2712e9, 128, 0.9765625e6, "FDM"),
    S.SpwDef("X0000000000#ALMA_RB_03#BB_2#SW-01#FULL_RES", 113.5000e9, 128, 0.9765625e6, "FDM"),
)
#: The target's spectral lines (no continuum).
LINES = (TPLine(0, "CO(1-0)", 115.2712e9, 15.0e6, 150.0),
         TPLine(1, "CN(1-0)", 113.4910e9, 12.0e6, 60.0))
TARGET = S.SourceDef("Synth_Cloud", "19h30m00.000s", "-27d00m00.00s", "sci", ("TARGET",), 0.0, 0.0)
#: The OFF (reference) position: 6 arcmin east of the target, as ALMA's
#: position-switched TP observations take it.
OFF_OFFSET_ARCMIN = 6.0
#: Subscans of the one OBSERVE_TARGET scan: (intent, integrations); even
#: counts, as exportasdm writes two integrations per binary data row here.
SUBSCANS = (("OFF_SOURCE", 10), ("ON_SOURCE", 24), ("OFF_SOURCE", 10), ("ON_SOURCE", 24),
            ("OFF_SOURCE", 10))
SUBSCAN_GAP_S = 2.016
#: The antenna and ON subscan (1-based among the ON subscans) corrupted and
#: flagged by the "pipeline" (hsd_flagdata), restored by Pipeline_Final.
BAD = {"antenna": "PM03", "on_subscan": 2, "factor": 1.3}
#: Line-free channels: farther than this many FWHM from every line.
LINE_FREE_FWHM = 2.0


def channel_freqs(spw: int) -> np.ndarray:
    return SPWS[spw].freqs


def source_spectrum(spw: int, freqs: np.ndarray | None = None) -> np.ndarray:
    """S(nu) in Jy of the target in ``spw`` (Gaussian lines, no continuum)."""
    f = channel_freqs(spw) if freqs is None else np.asarray(freqs, float)
    out = np.zeros_like(f)
    for ln in LINES:
        if ln.spw == spw:
            out += ln.peak_jy * S.gaussian(f, ln.center_hz, ln.fwhm_hz)
    return out


def line_free_channels(spw: int) -> np.ndarray:
    """Channel indices farther than :data:`LINE_FREE_FWHM` FWHM from every line."""
    f = channel_freqs(spw)
    ok = np.ones(f.size, bool)
    for ln in LINES:
        if ln.spw == spw:
            ok &= np.abs(f - ln.center_hz) > LINE_FREE_FWHM * ln.fwhm_hz
    return np.flatnonzero(ok)


def channel_ranges(chans: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous (first, last) runs of sorted channel indices."""
    chans = np.asarray(chans, int)
    if chans.size == 0:
        return []
    runs = np.split(chans, np.flatnonzero(np.diff(chans) > 1) + 1)
    return [(int(r[0]), int(r[-1])) for r in runs]


def jyperk(eb_index: int, antenna: int, spw: int, corr: str) -> float:
    """The Jy/K factor of one EB, antenna, spectral window and polarization.

    Different for every combination (about 40-47 Jy/K, as ALMA's 12-m TP
    antennas have in Band 3), so a factor applied to the wrong antenna,
    window or polarization shows in the calibrated spectrum."""
    return round(40.0 + 1.5 * antenna + 0.8 * spw + (0.35 if corr == "YY" else 0.0)
                 + 0.2 * eb_index, 3)


def jyperk_csv(eb_uids: list[str]) -> str:
    """``jyperk.csv`` as hsd_k2jycal exports it (``MS,Antenna,Spwid,Polarization,Factor``)."""
    rows = ["MS,Antenna,Spwid,Polarization,Factor"]
    for e, eb in enumerate(eb_uids):
        for s in range(len(SPWS)):
            for a, ant in enumerate(ANTENNAS):
                for c in CORRS:
                    rows.append(f"{eb}.ms,{ant},{s},{c},{jyperk(e, a, s, c)}")
    return "\n".join(rows) + "\n"


def tsys_shape(spw: int) -> np.ndarray:
    """Relative Tsys spectrum: rising towards the 118.75 GHz oxygen line, curved."""
    sw = SPWS[spw]
    fr = (sw.freqs - sw.center_hz) / sw.bandwidth_hz
    o2 = 1.0 + 0.35 * np.exp(-(118.75e9 - sw.freqs) / 2.5e9)
    return o2 * (1.0 + 0.03 * fr + 0.04 * fr ** 2)


def tsys(params: dict, antenna: int, corr: int, spw: int) -> np.ndarray:
    """Tsys spectrum (K) of one antenna, polarization and window (constant in time)."""
    return params["tsys0_k"][antenna, corr] * tsys_shape(spw)


def receiver_gain(params: dict, antenna: int, corr: int, spw: int) -> np.ndarray:
    """Relative power gain across the window (the autocorrelation bandpass)."""
    n = SPWS[spw].nchan
    x = (np.arange(n) - (n - 1) / 2.0) / n
    g = (1.0 + params["bp_slope"][antenna, corr, spw] * x
         + params["bp_ripple"][antenna, corr, spw] * np.cos(
             2 * np.pi * params["bp_cycles"][antenna, corr, spw] * x
             + params["bp_phase"][antenna, corr, spw]))
    edge = 1.0 - 0.3 * np.exp(-((0.5 - np.abs(x)) * n / 3.0))
    return params["gain0"][antenna, corr] * g * edge


def instrument(spec: S.SynthSpec, k: int) -> dict[str, np.ndarray]:
    """Seeded Tsys levels and receiver gains of EB ``k``."""
    r = spec._rng(f"tp-instrument-{k}")
    na, nc, ns = len(ANTENNAS), len(CORRS), len(SPWS)
    return {
        "tsys0_k": r.uniform(85.0, 125.0, (na, nc)),
        "gain0": r.uniform(0.8, 1.2, (na, nc)) * 1.0e-2,
        "bp_slope": r.normal(0.0, 0.05, (na, nc, ns)),
        "bp_ripple": r.uniform(0.01, 0.04, (na, nc, ns)),
        "bp_cycles": r.uniform(1.0, 3.0, (na, nc, ns)),
        "bp_phase": r.uniform(0, 2 * np.pi, (na, nc, ns)),
    }


def radiometer_sigma(spw: int) -> float:
    """Relative noise of one integration and channel: 1 / sqrt(dnu * tau)."""
    return 1.0 / np.sqrt(SPWS[spw].width_hz * INTEGRATION_S)


def caltable_names(uid: str) -> dict[str, str]:
    """The pipeline's table names of one EB (basename)."""
    return {"tsys": f"{uid}.ms.h_tsyscal.s3_1.tsyscal.tbl",
            "sky": f"{uid}.ms.hsd_skycal.s5_1.skycal.tbl",
            "k2jy": f"{uid}.ms.hsd_k2jycal.s6_1.ampcal.tbl",
            "atmcor": f"{uid}.ms.atmcor.atmtype1",
            "baseline": f"{uid}.ms.atmcor.atmtype1.hsd_baseline.s9_1.bl.tbl"}


def spw_list() -> str:
    return ",".join(str(i) for i in range(len(SPWS)))


def calapply_entry(uid: str, vis: str, tables: dict[str, str], field_id: int | str) -> dict:
    """The one TARGET line hsd_applycal's calibration state exports: the sky
    table (``gainfield`` the OFF field, here the target itself (id or name), ``linear``),
    Tsys (``linear,linear``) and the Jy/K table (``nearest,nearest``)."""
    return {"vis": vis, "field": TARGET.name, "intent": "TARGET", "spw": spw_list(), "antenna": "",
            "gaintable": [tables["sky"], tables["tsys"], tables["k2jy"]],
            "gainfield": [str(field_id), "nearest", ""], "spwmap": [[], [], []],
            "interp": ["linear,linear", "linear,linear", "nearest,nearest"],
            "calwt": [True, True, False]}


def product_name(mous: str, spw: int) -> str:
    return f"member.{mous}.{TARGET.name}_sci.spw{spw}.cube.I.sd.fits"


def schedule() -> list[tuple[str, float, float]]:
    """(subscan intent, start offset s, duration s) of the one target scan."""
    out, t = [], 0.0
    for intent, n in SUBSCANS:
        dur = n * INTEGRATION_S
        out.append((intent, t, dur))
        t += dur + SUBSCAN_GAP_S
    return out
