"""Atmospheric lines for the renormalization heuristic.

The pipeline (``ACreNorm.ATMtrans``) builds a full ``atmosphere``-tool
model for every (field name, spw, scan): about 90 % of its run time.  The
opacity spectrum does not depend on elevation, only the airmass does
(transmission = exp(-airmass * (wet + dry opacity))), so here the tool is
evaluated once per spw (with the spw's median weather and PWV over its
target scans) and the transmission and its fitted lines are cached per
elevation bin.  Line finding and fitting follow ``fitAtmLines`` exactly.

The tool costs 2-4 ms of CPU per channel (``initSpectralWindow``), so the
opacity is also cached in-process per exact input (channel frequencies,
pressure, humidity, temperature, PWV, image LO): another MS or call with the
same conditions reuses it.  The tool is evaluated in one thread only: it is
not thread-safe (two tools in two threads gave wrong spectra; see
:func:`almaqa_casa.renorm.engine._with_atmosphere`).
"""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Default PWV (mm) per ALMA band when the MS has no WVR/CalAtmosphere data.
BAND_PWV = [99.0, 5.186, 5.186, 2.748, 2.748, 1.796, 1.262, 0.913, 0.658, 0.472, 0.472]
CKMS = 299792.4580


# --------------------------------------------------------------------------
# Pure parts
# --------------------------------------------------------------------------
def _lorentzian(x, x0, a, gam, off):
    return a * gam ** 2 / (gam ** 2 + (x - x0) ** 2) + off


def fit_atm_lines(trans: np.ndarray, freqs_hz: np.ndarray, chanwidth_hz: float
                  ) -> tuple[list[float], list[float]]:
    """Centres and widths (channels) of atmospheric dips deeper than 1 % below
    the median, each fitted with a Lorentzian (``fitAtmLines``); a fit that
    does not converge falls back to the initial guess (width 1 channel)."""
    from scipy.optimize import curve_fit
    from scipy.signal import find_peaks

    trans = np.asarray(trans, float)
    peaks, _ = find_peaks(np.median(trans) - trans, height=0.01)
    x = np.arange(len(trans))
    centers, gammas = [], []
    for x0 in peaks:
        a0 = trans[x0] - trans.max()
        off0 = np.median(trans)
        gmax = (50.0 * freqs_hz[x0] / CKMS) / abs(chanwidth_hz)
        try:
            popt, _ = curve_fit(_lorentzian, x, trans, p0=[x0, a0, 1.0, off0],
                                bounds=([x0 - 20, -1, 1, 0], [x0 + 20, 0, gmax, 1]))
            centers.append(float(popt[0]))
            gammas.append(float(popt[2]))
        except (RuntimeError, ValueError):
            centers.append(float(x0))
            gammas.append(1.0)
    return centers, gammas


def airmass(elevation_deg: float) -> float:
    return 1.0 / math.cos((90.0 - elevation_deg) * math.pi / 180.0)


def scan_weather(times: np.ndarray, wx: dict | None) -> tuple[float, float, float]:
    """Pressure (mbar), humidity (%), temperature (C) averaged over a scan
    (``renormWeather``: valid entries between the scan's first and last
    time, else the nearest; defaults 563 mbar, 20 %, 0 C)."""
    if wx is None or len(wx["time"]) == 0:
        return 563.0, 20.0, 0.0
    t = wx["time"]
    m1 = np.nonzero(t >= times.min())[0]
    m2 = np.nonzero(t <= times.max())[0]
    if len(m1) and len(m2):
        sel = np.arange(m1[0], m2[-1] + 1)
        if len(sel) == 0:
            sel = np.array([int(np.argmin(np.abs(t - times[0])))])
    elif len(m1):
        sel = np.array([m1[0]])
    else:
        sel = np.array([m2[-1]])
    p, h, tc = wx["pressure"][sel], wx["humidity"][sel], wx["temperature"][sel]
    ok = p > 0
    if not ok.any():
        return 563.0, 20.0, 0.0
    return float(np.mean(p[ok])), float(np.mean(h[ok])), float(np.mean(tc[ok]))


def scan_pwv(times: np.ndarray, pwv: dict | None) -> float:
    """Median PWV (mm) in ``[t0 - L/2, t0 + L/2]`` around the scan start
    (``renormMedianPWV``); 0 when unknown."""
    if pwv is None or len(pwv["water"]) == 0 or np.all(pwv["water"] == 1.0):
        return 0.0
    t0, length = times[0], times[-1] - times[0]
    lo, hi = t0 - length / 2.0, t0 + length / 2.0
    pt, w = pwv["time"], pwv["water"]
    m = (pt > lo) & (pt <= hi)
    if m.any():
        return float(1000.0 * np.median(w[m]))
    d = np.abs(lo - pt)
    return float(1000.0 * np.median(w[np.abs(d - d.min()) < 1.0]))


# --------------------------------------------------------------------------
# Table reads (I/O)
# --------------------------------------------------------------------------
def read_weather(vis: str) -> dict | None:
    """WEATHER table columns (TB2 station preferred), sorted by time."""
    import casatools
    tb = casatools.table()
    if not os.path.isdir(vis + "/WEATHER"):
        return None
    try:
        tb.open(vis + "/WEATHER")
    except Exception:
        return None
    try:
        if tb.nrows() == 0:
            return None
        t = tb.getcol("TIME")
        idx = np.argsort(t)
        out = {"time": t[idx], "pressure": tb.getcol("PRESSURE")[idx],
               "humidity": tb.getcol("REL_HUMIDITY")[idx],
               "temperature": tb.getcol("TEMPERATURE")[idx]}
        stations = tb.getcol("NS_WX_STATION_ID")[idx] if "NS_WX_STATION_ID" in tb.colnames() else None
    finally:
        tb.close()
    if np.mean(out["temperature"]) > 100:
        out["temperature"] = out["temperature"] - 273.15
    if stations is not None:
        try:
            if not os.path.isdir(vis + "/ASDM_STATION"):
                raise FileNotFoundError(vis + "/ASDM_STATION")
            tb.open(vis + "/ASDM_STATION")
            names = tb.getcol("name")
            tb.close()
            pref = [i for i, n in enumerate(names)
                    if any(p.lower() in n.lower() for p in ("WSTB", "Meteo", "OSF")) and "TB2" in n]
            if pref:
                keep = stations == pref[-1]
                out = {k: v[keep] for k, v in out.items()}
        except Exception:
            pass
    return out


def read_pwv(vis: str) -> dict | None:
    """WVR water column from ASDM_CALWVR, else ASDM_CALATMOSPHERE."""
    import casatools
    tb = casatools.table()
    for name, first in (("ASDM_CALWVR", False), ("ASDM_CALATMOSPHERE", True)):
        if not os.path.isdir(vis + "/" + name):
            continue
        try:
            tb.open(vis + "/" + name)
        except Exception:
            continue
        try:
            if tb.nrows() == 0:
                continue
            t = tb.getcol("startValidTime")
            w = tb.getcol("water")
            if first:
                w = w[0]
            return {"time": np.asarray(t, float), "water": np.asarray(w, float)}
        except Exception:
            continue
        finally:
            tb.close()
    return None


def read_image_lo(vis: str, spw: int) -> float | None:
    """First LO frequency (Hz) of a spw from ASDM_RECEIVER (Bands 9/10)."""
    import casatools
    tb = casatools.table()
    if not os.path.isdir(vis + "/ASDM_RECEIVER"):
        return None
    try:
        tb.open(vis + "/ASDM_RECEIVER")
    except Exception:
        return None
    try:
        spws, los, names = [], [], []
        for i in range(tb.nrows()):
            s = int(tb.getcell("spectralWindowId", i).split("_")[1])
            if s not in spws:
                spws.append(s)
                los.append(tb.getcell("freqLO", i))
                names.append(tb.getcell("name", i))
    finally:
        tb.close()
    idx, saw = [], False
    for i in range(len(spws)):
        if "WVR" in names[i]:
            if not saw:
                idx.append(i)
                saw = True
        else:
            idx.append(i)
    try:
        return float(los[idx[spw]][0])
    except (IndexError, KeyError):
        return None


def elevations_deg(pointings: Sequence[tuple[dict, float]]) -> list[float]:
    """Elevations at ALMA of (direction measure, time in MJD seconds) pairs,
    with one measures tool."""
    import casatools
    me = casatools.measures()
    qa = casatools.quanta()
    out = []
    try:
        me.doframe(me.observatory("ALMA"))
        for direction, mjd_sec in pointings:
            me.doframe(me.epoch("mjd", qa.quantity(mjd_sec / 86400.0, "d")))
            azel = me.measure(direction, "AZEL")
            out.append(float(azel["m1"]["value"]) * 180.0 / math.pi)
    finally:
        me.done()
        qa.done()
    return out


def opacity_spectrum(freqs_hz: np.ndarray, pressure: float, humidity: float, temp_k: float,
                     pwv_mm: float, image_lo_hz: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Total (wet + dry) zenith opacity per channel from the ``atmosphere``
    tool, set up as ``ATMtrans`` does; also the image sideband's when an LO is given."""
    import casatools
    at = casatools.atmosphere()
    qa = casatools.quanta()
    f = np.asarray(freqs_hz) * 1e-9
    n = len(f)
    ref = 0.5 * (f[int(n / 2) - 1] + f[int(n / 2)])
    sep = (f[-1] - f[0]) / (n - 1)
    try:
        at.initAtmProfile(humidity=humidity, temperature=qa.quantity(temp_k, "K"),
                          altitude=qa.quantity(5059, "m"), pressure=qa.quantity(pressure, "mbar"),
                          atmType=1, h0=qa.quantity(1.0, "km"),
                          maxAltitude=qa.quantity(60.0, "km"), dP=qa.quantity(5.0, "mbar"),
                          dPm=1.1)
        if image_lo_hz is not None:
            fsb = (2 * image_lo_hz - np.asarray(freqs_hz)) * 1e-9
            sep_sb = (fsb[-1] - fsb[0]) / (n - 1)
            at.initSpectralWindow(2, qa.quantity([ref, float(np.mean(fsb))], "GHz"),
                                  qa.quantity([n * sep, n * sep_sb], "GHz"),
                                  qa.quantity([sep, sep_sb], "GHz"))
        else:
            at.initSpectralWindow(1, qa.quantity(ref, "GHz"), qa.quantity(n * sep, "GHz"),
                                  qa.quantity(sep, "GHz"))
        at.setUserWH2O(qa.quantity(pwv_mm, "mm"))
        tau = np.array(at.getDryOpacitySpec(0)[1]) + np.array(at.getWetOpacitySpec(0)[1]["value"])
        tau_sb = None
        if image_lo_hz is not None:
            tau_sb = (np.array(at.getDryOpacitySpec(1)[1])
                      + np.array(at.getWetOpacitySpec(1)[1]["value"]))
    finally:
        at.close()
        qa.done()
    return tau, tau_sb


#: Opacity spectra kept in-process (8-16 bytes per channel each: at most ~16 MB).
OPACITY_CACHE_SIZE = 64
#: Overrides :data:`OPACITY_CACHE_SIZE`; 0 turns the cache off.  Real EBs never share
#: their weather, synthetic ones may: ``benchmarks/restore.py --no-atm-cache`` sets it
#: so each EB pays for its atmosphere, as a real one does.
CACHE_SIZE_ENV = "ALMAQA_ATM_CACHE_SIZE"
_OPACITY_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
_OPACITY_LOCK = threading.Lock()


def _opacity_key(freqs_hz, pressure, humidity, temp_k, pwv_mm, image_lo_hz) -> tuple:
    f = np.ascontiguousarray(freqs_hz, dtype=float)
    return (f.tobytes(), float(pressure), float(humidity), float(temp_k), float(pwv_mm),
            None if image_lo_hz is None else float(image_lo_hz))


def opacity_cache_size(env: dict | None = None) -> int:
    """How many opacity spectra the in-process cache keeps (``$ALMAQA_ATM_CACHE_SIZE``,
    else :data:`OPACITY_CACHE_SIZE`).  The size changes speed, never numbers, so a value
    that is not a whole number >= 0 is reported in the log and the default kept (a typo
    must not cost the restore its renormalization)."""
    val = (os.environ if env is None else env).get(CACHE_SIZE_ENV, "").strip()
    if not val:
        return OPACITY_CACHE_SIZE
    try:
        n = int(val)
    except ValueError:
        n = -1
    if n < 0:
        from ..log import post
        post(f"{CACHE_SIZE_ENV}={val!r} is not a whole number >= 0 (0 turns the atmosphere "
             f"cache off); the default {OPACITY_CACHE_SIZE} is used", "WARN")
        return OPACITY_CACHE_SIZE
    return n


def cached_opacity(freqs_hz: np.ndarray, pressure: float, humidity: float, temp_k: float,
                   pwv_mm: float, image_lo_hz: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """:func:`opacity_spectrum` through the in-process cache (exact inputs as
    key, so a hit returns what the tool would); also whether it was a hit."""
    size = opacity_cache_size()
    if size == 0:
        tau, tau_sb = opacity_spectrum(freqs_hz, pressure, humidity, temp_k, pwv_mm, image_lo_hz)
        return tau, tau_sb, False
    key = _opacity_key(freqs_hz, pressure, humidity, temp_k, pwv_mm, image_lo_hz)
    with _OPACITY_LOCK:
        hit = _OPACITY_CACHE.get(key)
        if hit is not None:
            _OPACITY_CACHE.move_to_end(key)
    if hit is not None:
        return hit[0].copy(), None if hit[1] is None else hit[1].copy(), True
    tau, tau_sb = opacity_spectrum(freqs_hz, pressure, humidity, temp_k, pwv_mm, image_lo_hz)
    with _OPACITY_LOCK:
        _OPACITY_CACHE[key] = (tau.copy(), None if tau_sb is None else tau_sb.copy())
        while len(_OPACITY_CACHE) > size:
            _OPACITY_CACHE.popitem(last=False)
    return tau, tau_sb, False


def clear_opacity_cache() -> None:
    """Forget every cached opacity spectrum (benchmarks time cold runs)."""
    with _OPACITY_LOCK:
        _OPACITY_CACHE.clear()


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------
@dataclass
class AtmLines:
    """Transmission and fitted lines of one spw at one elevation bin."""

    elevation: float
    transmission: np.ndarray
    transmission_sb: np.ndarray | None
    centers: list[float]
    gammas: list[float]
    mask: np.ndarray


@dataclass
class AtmModel:
    """Per-spw opacity (one ``atmosphere`` evaluation) and per-elevation-bin lines."""

    bin_deg: float = 1.0
    opacity: dict[int, tuple] = field(default_factory=dict)
    lines: dict[tuple[int, int], AtmLines] = field(default_factory=dict)
    #: opacity spectra the run used (one per spw), from the tool or the cache
    n_tool_calls: int = 0
    #: how many of them came from the in-process cache (no tool run)
    n_cache_hits: int = 0
    n_fits: int = 0
    conditions: dict[int, dict] = field(default_factory=dict)

    def set_spw(self, spw: int, freqs_hz: np.ndarray, pressure: float, humidity: float,
                temp_c: float, pwv_mm: float, reverse: bool, image_lo_hz: float | None):
        """Evaluate the atmosphere tool for a spw (once)."""
        if spw in self.opacity:
            return
        self.conditions[spw] = {"pressure_mbar": pressure, "humidity_pct": humidity,
                                "temperature_c": temp_c, "pwv_mm": pwv_mm}
        tau, tau_sb, hit = cached_opacity(freqs_hz, pressure, humidity, temp_c + 273.15,
                                          pwv_mm, image_lo_hz)
        self.n_tool_calls += 1
        self.n_cache_hits += int(hit)
        if reverse:
            tau = tau[::-1]
            tau_sb = None if tau_sb is None else tau_sb[::-1]
        freqs = np.asarray(freqs_hz)
        self.opacity[spw] = (tau, tau_sb, freqs,
                             float(np.abs(freqs[1] - freqs[0]) if len(freqs) > 1 else 1.0))

    def transmission(self, spw: int, elevation: float) -> np.ndarray:
        """Transmission of ``spw`` at the bin of ``elevation`` (the same
        numbers as ``at(...).transmission``, without fitting lines)."""
        b = int(math.floor(elevation / self.bin_deg))
        if (spw, b) in self.lines:
            return self.lines[(spw, b)].transmission
        return np.exp(-airmass((b + 0.5) * self.bin_deg) * self.opacity[spw][0])

    def at(self, spw: int, elevation: float, chanwidth_hz: float) -> AtmLines:
        """Transmission and line mask for ``spw`` at the bin of ``elevation``."""
        b = int(math.floor(elevation / self.bin_deg))
        key = (spw, b)
        if key not in self.lines:
            el = (b + 0.5) * self.bin_deg
            tau, tau_sb, freqs, _ = self.opacity[spw]
            am = airmass(el)
            tr = np.exp(-am * tau)
            tr_sb = None if tau_sb is None else np.exp(-am * tau_sb)
            c, g = fit_atm_lines(tr, freqs, chanwidth_hz)
            if tr_sb is not None:
                c2, g2 = fit_atm_lines(tr_sb, freqs, chanwidth_hz)
                c, g = c + c2, g + g2
            self.n_fits += 1
            from .spectra import atm_line_mask
            self.lines[key] = AtmLines(el, tr, tr_sb, c, g, atm_line_mask(c, g, len(tr)))
        return self.lines[key]


def lsb_reversed(ref_freq_hz: float, freqs_hz: np.ndarray, net_sideband: int) -> bool:
    """Whether ``ATMtrans`` reverses the model for this spw (its sideband test)."""
    return bool(ref_freq_hz * 1e-9 > np.mean(np.asarray(freqs_hz) * 1e-9) and net_sideband % 2 == 0)
