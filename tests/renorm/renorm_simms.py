"""A tiny simulated ALMA MS with autocorrelations and a known renormalization line.

Used by the renorm tests until (and besides) the shared synthetic delivery:
the casatools simulator makes the rows (``sm.setauto``), then the table tool
writes autocorrelation spectra (Tsys-like x bandpass, the target's scaled
by the injected spectrum S) and cross-correlations (the truth divided by S,
as the correlator's normalization does).
"""
from __future__ import annotations

import numpy as np

LINE = {"spw": 0, "center_hz": 230.0e9, "fwhm_hz": 8.0e6, "peak": 0.05}
SPWS = (  # name, centre Hz, nchan, width Hz
    ("spw_line", 230.0e9, 240, 0.9765625e6),
    ("spw_flat", 232.5e9, 240, 0.9765625e6),
)
#: The second spw moved onto the 231.28 GHz ozone line (``atm=True``).
SPW_OZONE = ("spw_ozone", 231.30e9, 240, 0.9765625e6)
#: Residual of the ozone line in the target/bandpass ratio (``atm=True``).
ATM_RESIDUAL = {"center_hz": 231.282e9, "fwhm_hz": 3.0e6, "peak": 0.03}
ANTS = ("DA41", "DA42", "DA43", "DA44", "DA45")
TRUTH_JY = 1.0
TRUTH_LINE_JY = 0.5


def gaussian(x, c, fwhm):
    return np.exp(-4.0 * np.log(2.0) * ((x - c) / fwhm) ** 2)


def spw_defs(atm: bool = False):
    return (SPWS[0], SPW_OZONE) if atm else SPWS


def freqs(ispw: int, atm: bool = False) -> np.ndarray:
    _, c, n, w = spw_defs(atm)[ispw]
    return c + (np.arange(n) - (n / 2 - 0.5)) * w


def injected(ispw: int, atm: bool = False) -> np.ndarray:
    """The injected scaling spectrum S(nu) (1 outside the line spw)."""
    f = freqs(ispw, atm)
    if ispw != LINE["spw"]:
        return np.ones_like(f)
    return 1.0 + LINE["peak"] * gaussian(f, LINE["center_hz"], LINE["fwhm_hz"])


def truth_xc(ispw: int, atm: bool = False) -> np.ndarray:
    """True target cross-correlation spectrum (real, Jy)."""
    f = freqs(ispw, atm)
    return TRUTH_JY + (TRUTH_LINE_JY * gaussian(f, LINE["center_hz"], 20e6)
                       if ispw == LINE["spw"] else 0.0)


def make_ms(path: str, ntarget_scans: int = 3, seed: int = 1, flag_ant_scan=None,
            mosaic: bool = False, atm: bool = False, nant: int = 5, integration: str = "10s",
            scan_s: float = 60.0, full_pol: bool = False) -> dict:
    """Simulate the MS at ``path``; returns the truth.

    ``flag_ant_scan=(ant, scan)`` flags all cross-correlations of an antenna
    in one scan.  ``mosaic`` observes two target pointings per scan.
    ``atm`` puts the second spw on an ozone line with a residual of it in
    the target's autocorrelations.  ``full_pol`` writes XX XY YX YY (cross
    hands 0 in the autocorrelations, as the parallel hands carry the test).
    """
    spws = spw_defs(atm)
    import casatools
    sm = casatools.simulator()
    me = casatools.measures()
    qa = casatools.quanta()
    rng = np.random.default_rng(seed)
    sm.open(path)
    ang = np.arange(nant) * 2.4
    rad = 15.0 + 12.0 * np.arange(nant)
    x, y = rad * np.cos(ang), rad * np.sin(ang)
    x[0] = y[0] = 0.0
    names = [ANTS[i] if i < len(ANTS) else "DV%02d" % i for i in range(nant)]
    sm.setconfig(telescopename="ALMA", x=x, y=y, z=np.zeros(nant), dishdiameter=[12.0] * nant,
                 mount=["alt-az"] * nant, antname=names, padname=["P%d" % i for i in range(nant)],
                 coordsystem="local", referencelocation=me.observatory("ALMA"))
    for name, c, n, w in spws:
        f0 = c - (n / 2 - 0.5) * w
        sm.setspwindow(spwname=name, freq=f"{f0}Hz", deltafreq=f"{w}Hz",
                       freqresolution=f"{w}Hz", nchannels=n,
                       stokes="XX XY YX YY" if full_pol else "XX YY")
    sm.setfeed(mode="perfect X Y")
    sm.setfield(sourcename="J1924-2914",
                sourcedirection=me.direction("J2000", "19h24m51.056s", "-29d14m30.12s"))
    sm.setfield(sourcename="TGT", sourcedirection=me.direction("J2000", "19h30m00s", "-27d00m00s"))
    if mosaic:
        sm.setfield(sourcename="TGT", sourcedirection=me.direction("J2000", "19h30m02s", "-27d00m00s"))
    sm.setlimits(shadowlimit=0.001, elevationlimit="8deg")
    sm.setauto(autocorrwt=1.0)
    sm.settimes(integrationtime=integration, usehourangle=True,
                referencetime=me.epoch("utc", "2024/05/01/00:00:00"))
    t = -3600.0
    for spw_name, *_ in spws:
        sm.observe("J1924-2914", spw_name, starttime=f"{t}s", stoptime=f"{t + scan_s}s",
                   state_obs_mode="CALIBRATE_BANDPASS#ON_SOURCE")
        t += scan_s + 30
    for k in range(ntarget_scans):
        for spw_name, *_ in spws:
            sm.observe("TGT", spw_name, starttime=f"{t}s", stoptime=f"{t + scan_s}s",
                       state_obs_mode="OBSERVE_TARGET#ON_SOURCE")
            t += scan_s + 30
        t += 600
    sm.close()
    if mosaic:
        _split_mosaic(path)
    tb = casatools.table()
    tb.open(path, nomodify=False)
    tsys = 80.0 + 10.0 * rng.random((nant, 2))
    try:
        for d in range(len(spws)):
            q = tb.query(f"DATA_DESC_ID=={d}")
            a1, a2 = q.getcol("ANTENNA1"), q.getcol("ANTENNA2")
            fld, scn = q.getcol("FIELD_ID"), q.getcol("SCAN_NUMBER")
            n = spws[d][2]
            fr = (freqs(d, atm) - spws[d][1]) / (n * spws[d][3])
            S = injected(d, atm)
            resid = np.ones(n)
            if atm and d == 1:
                resid += ATM_RESIDUAL["peak"] * gaussian(freqs(d, atm), ATM_RESIDUAL["center_hz"],
                                                         ATM_RESIDUAL["fwhm_hz"])
            bp = 1.0 + 0.2 * np.sin(2 * np.pi * fr * 3.0) + 0.05 * fr
            ncorr = 4 if full_pol else 2
            data = np.zeros((ncorr, n, len(a1)), complex)
            auto = a1 == a2
            is_t = fld >= 1
            for c, ci in ((0, 0), (1, ncorr - 1)):
                amp = tsys[a1, c][None, :] * bp[:, None] * (1.0 + 0.02 * fr[:, None]
                                                             * np.sin(scn + c)[None, :])
                amp[:, is_t] *= (S * resid)[:, None]
                amp *= 1.0 + rng.normal(0, 2e-4, amp.shape)
                data[ci][:, auto] = amp[:, auto]
                xc = np.where(is_t[None, :], (truth_xc(d, atm) / S)[:, None], 1.0)
                data[ci][:, ~auto] = xc[:, ~auto]
            q.putcol("DATA", data.astype(np.complex64))
            fl = np.zeros((ncorr, n, len(a1)), bool)
            if flag_ant_scan is not None:
                a, s = flag_ant_scan
                fl[:, :, (~auto) & (scn == s) & ((a1 == a) | (a2 == a))] = True
            q.putcol("FLAG", fl)
            q.close()
    finally:
        tb.close()
    me.done()
    qa.done()
    return {"line": LINE, "spws": spws, "injected": {d: injected(d, atm) for d in range(len(spws))},
            "freqs": {d: freqs(d, atm) for d in range(len(spws))}, "line_spw": LINE["spw"],
            "truth_xc": {d: truth_xc(d, atm) for d in range(len(spws))}}


def _split_mosaic(path: str) -> None:
    """Give every second integration of each target scan the second pointing."""
    import casatools
    tb = casatools.table()
    tb.open(path, nomodify=False)
    try:
        fld = tb.getcol("FIELD_ID")
        tim = tb.getcol("TIME")
        is_t = fld >= 1
        ut = np.unique(tim[is_t])
        odd = np.isin(tim, ut[1::2]) & is_t
        fld[is_t] = 1
        fld[odd] = 2
        tb.putcol("FIELD_ID", fld)
    finally:
        tb.close()
