"""Simulate one execution block with casatools' simulator, then write the
observed visibilities (true sky x antenna gains x bandpass / renorm scaling +
noise) and the autocorrelations with the table tool.

The corruption model is recorded so the truth can be stated exactly.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from . import spec as S
from ._casa import casadata_path, casatools


def antenna_layout(nant: int):
    """ITRF positions of ``nant`` pads of a compact ALMA configuration."""
    from casatasks.private import simutil

    cfg = os.path.join(casadata_path(), "alma", "simmos", S.CONFIG_FILE)
    if not os.path.isfile(cfg):
        raise FileNotFoundError(f"ALMA configuration file not found: {cfg}")
    x, y, z, d, pads, _names, tel, _pos = simutil.simutil().readantenna(cfg)
    # The pads nearest the array centre, every third one for some spread
    # (closer when many antennas are asked for).
    x, y, z = (np.asarray(v, float) for v in (x, y, z))
    if nant > len(x):
        raise ValueError(f"{cfg} has {len(x)} pads; {nant} antennas asked for")
    cx, cy, cz = x.mean(), y.mean(), z.mean()
    order = np.argsort((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2, kind="stable")
    stride = max(1, min(3, len(x) // nant))
    pick = sorted(order[: stride * nant : stride])
    return ([float(x[i]) for i in pick], [float(y[i]) for i in pick],
            [float(z[i]) for i in pick], [float(d[i]) for i in pick],
            [pads[i] for i in pick], list(S.ANTENNA_NAMES[:nant]))


def start_time_utc(spec: S.SynthSpec, k: int) -> float:
    """UTC start (MJD seconds) of EB ``k``: the target about 1 h before
    transit for the first EB, later hour angles for the next ones, one
    observing night apart."""
    me = casatools.measures()
    qa = casatools.quanta()
    me.doframe(me.observatory("ALMA"))
    day = me.epoch("utc", "2025/10/%02d/00:00:00" % (10 + k))
    me.doframe(day)
    last = me.measure(day, "LAST")
    lst0 = qa.convert(last["m0"], "d")["value"] % 1.0
    ra_h = 19.5 + (-1.0 + 0.9 * k) if not spec.polarization else 19.5 + (-1.5 + 1.5 * k)
    want = (ra_h / 24.0) % 1.0
    dt_days = ((want - lst0) % 1.0) / 1.0027379093
    return day["m0"]["value"] * 86400.0 + dt_days * 86400.0


def simulate_structure(spec: S.SynthSpec, k: int, ms: str) -> dict:
    """Create the MS of EB ``k`` (rows, metadata, zero data)."""
    me = casatools.measures()
    x, y, z, d, pads, names = antenna_layout(spec.nant)
    if os.path.exists(ms):
        shutil.rmtree(ms)
    sm = casatools.simulator()
    try:
        if not sm.open(ms):
            raise RuntimeError(f"simulator could not create {ms}")
        sm.setconfig(telescopename="ALMA", x=x, y=y, z=z, dishdiameter=d,
                     mount=["alt-az"] * len(x), antname=names, padname=pads,
                     coordsystem="global", referencelocation=me.observatory("ALMA"))
        stokes = " ".join(spec.corrs)
        for i, sw in enumerate(S.SPWS):
            f0 = sw.freqs[0]
            sm.setspwindow(spwname=f"spw{i}", freq=f"{f0:.1f}Hz", deltafreq=f"{sw.width_hz}Hz",
                           freqresolution=f"{sw.width_hz}Hz", nchannels=sw.nchan, stokes=stokes)
        sm.setfeed(mode="perfect X Y")
        for src in spec.sources:
            sm.setfield(sourcename=src.name, sourcedirection=me.direction("J2000", src.ra, src.dec))
        if not spec.polarization:
            # exportasdm writes full-polarization autocorrelations in a layout
            # importasdm misreads (lazy or not), so the polarization variant
            # carries cross-correlations only.
            sm.setauto(autocorrwt=1.0)
        sm.setlimits(shadowlimit=0.001, elevationlimit="8deg")
        t0 = start_time_utc(spec, k)
        sm.settimes(integrationtime=f"{S.INTEGRATION_S}s", usehourangle=False,
                    referencetime=me.epoch("utc", f"{t0}s"))
        t = 0.0
        scans = []
        for n, (src, dur) in enumerate(spec.schedule()):
            for i in range(len(S.SPWS)):
                sm.observe(sourcename=src.name, spwname=f"spw{i}", starttime=f"{t}s",
                           stoptime=f"{t + dur}s")
            scans.append({"scan": n + 1, "field": src.name, "intents": list(src.intents),
                          "start": t0 + t, "end": t0 + t + dur})
            t += dur + 6.048  # slew
    finally:
        sm.close()
    tb = casatools.table()
    # One POLARIZATION row for all spws (exportasdm needs it), one scan per
    # source visit for all spws, spw names as ALMA writes them.
    tb.open(ms + "/DATA_DESCRIPTION", nomodify=False)
    tb.putcol("POLARIZATION_ID", np.zeros(tb.nrows(), "int32"))
    tb.close()
    tb.open(ms + "/POLARIZATION", nomodify=False)
    if tb.nrows() > 1:
        tb.removerows(list(range(1, tb.nrows())))
    tb.close()
    # One POINTING row per antenna and time (the simulator writes one per
    # spw, which exportasdm reports as duplicates).
    tb.open(ms + "/POINTING", nomodify=False)
    if tb.nrows():
        key = np.stack([tb.getcol("ANTENNA_ID"), np.round(tb.getcol("TIME"), 3)], axis=1)
        _, first = np.unique(key, axis=0, return_index=True)
        dup = sorted(set(range(tb.nrows())) - set(first.tolist()))
        if dup:
            tb.removerows(dup)
    tb.close()
    tb.open(ms + "/SPECTRAL_WINDOW", nomodify=False)
    tb.putcol("NAME", np.array([sw.name for sw in S.SPWS]))
    tb.close()
    tb.open(ms, nomodify=False)
    try:
        scan = (tb.getcol("SCAN_NUMBER") - 1) // len(S.SPWS) + 1
        tb.putcol("SCAN_NUMBER", scan.astype("int32"))
        tim = tb.getcol("TIME")
        half = tb.getcol("INTERVAL") / 2.0
    finally:
        tb.close()
    # Scan times as the MS has them (the simulator's clock is not the
    # reference epoch to the second).
    for s in scans:
        m = scan == s["scan"]
        if not m.any():
            raise RuntimeError(f"the simulator wrote no data for scan {s['scan']} ({s['field']})")
        s["start"] = float((tim[m] - half[m]).min())
        s["end"] = float((tim[m] + half[m]).max())
    return {"scans": scans, "antennas": names, "pads": pads, "t0": float(tim.min())}


# --------------------------------------------------------------------------
# Corruption model
# --------------------------------------------------------------------------
def corruption_model(spec: S.SynthSpec, k: int, nant: int) -> dict[str, np.ndarray]:
    """Random but seeded parameters of gains and bandpasses for EB ``k``."""
    r = spec._rng(f"gains-{k}")
    npol = 2
    nspw = len(S.SPWS)
    p = {
        "amp0": r.normal(1.0, 0.08, (nant, npol)),
        "amp_var": r.uniform(0.01, 0.03, (nant, npol)),
        "amp_period_s": r.uniform(1800.0, 3600.0, (nant,)),
        "amp_phase": r.uniform(0, 2 * np.pi, (nant, npol)),
        "phase0_deg": r.uniform(-180, 180, (nant, npol)),
        "phase_spw_deg": r.uniform(-60, 60, (nant, npol, nspw)),
        "phase_drift_deg_per_s": r.normal(0.0, 0.03, (nant,)),
        "phase_wobble_deg": r.uniform(3, 10, (nant,)),
        "phase_wobble_period_s": r.uniform(900.0, 1500.0, (nant,)),
        "phase_wobble_phase": r.uniform(0, 2 * np.pi, (nant,)),
        "bp_ripple": r.uniform(0.01, 0.04, (nant, npol, nspw)),
        "bp_ripple_cycles": r.uniform(1.0, 3.0, (nant, npol, nspw)),
        "bp_ripple_phase": r.uniform(0, 2 * np.pi, (nant, npol, nspw)),
        "bp_slope": r.normal(0.0, 0.03, (nant, npol, nspw)),
        "bp_phase_slope_deg": r.normal(0.0, 15.0, (nant, npol, nspw)),
        "bp_phase_curv_deg": r.normal(0.0, 5.0, (nant, npol, nspw)),
        "tsys_k": r.uniform(60.0, 90.0, (nant, npol)),
        "bad_ant": np.array(nant - 2),
    }
    if spec.polarization:
        # The reference antenna has no X-Y phase difference, so cross-hand
        # data calibrate without an XY-phase solve.
        p["phase0_deg"][0, 1] = p["phase0_deg"][0, 0]
        p["phase_spw_deg"][0, 1, :] = p["phase_spw_deg"][0, 0, :]
        p["bp_phase_slope_deg"][0, 1, :] = p["bp_phase_slope_deg"][0, 0, :]
        p["bp_phase_curv_deg"][0, 1, :] = p["bp_phase_curv_deg"][0, 0, :]
    return p


def gains(p, t_rel: np.ndarray, spw: int) -> np.ndarray:
    """Complex gain per (time, antenna, pol) for ``spw``; ``t_rel`` in s."""
    t = np.asarray(t_rel, float)[:, None, None]
    amp = p["amp0"][None] * (1.0 + p["amp_var"][None] * np.sin(
        2 * np.pi * t / p["amp_period_s"][None, :, None] + p["amp_phase"][None]))
    nu = S.SPWS[spw].center_hz / S.REF_FREQ_HZ
    atm = (p["phase_drift_deg_per_s"][None, :, None] * t
           + p["phase_wobble_deg"][None, :, None] * np.sin(
               2 * np.pi * t / p["phase_wobble_period_s"][None, :, None]
               + p["phase_wobble_phase"][None, :, None]))
    ph = p["phase0_deg"][None] + p["phase_spw_deg"][None, :, :, spw] + nu * atm
    if "refant_same_xy" in p:
        pass
    return amp * np.exp(1j * np.deg2rad(ph))


def bandpass(p, spw: int) -> np.ndarray:
    """Complex bandpass per (antenna, pol, channel) for ``spw``."""
    n = S.SPWS[spw].nchan
    x = (np.arange(n) - (n - 1) / 2.0) / n  # -0.5..0.5
    amp = (1.0 + p["bp_slope"][:, :, spw, None] * x
           + p["bp_ripple"][:, :, spw, None] * np.cos(
               2 * np.pi * p["bp_ripple_cycles"][:, :, spw, None] * x
               + p["bp_ripple_phase"][:, :, spw, None]))
    # Roll-off at the band edges, as real basebands have.
    edge = 1.0 - 0.25 * np.exp(-((0.5 - np.abs(x)) * n / 2.0))
    ph = p["bp_phase_slope_deg"][:, :, spw, None] * x * 2 + p["bp_phase_curv_deg"][:, :, spw, None] * (4 * x * x - 1 / 3)
    return amp * edge[None, None, :] * np.exp(1j * np.deg2rad(ph))


#: Noise factor of the renormalization spw.  The injected scaling is 5 % at
#: its peak and only ~2 channels are above 4 %; with the standard noise the
#: restored target has ~2 % noise per channel (2 EBs), so a missing or a
#: double correction could not be told from noise (one seed gave +4 % in
#: those channels by noise alone).  A 10x quieter window makes the
#: renormalization testable to well below 1 %.
RENORM_SPW_NOISE_FACTOR = 0.1


def noise_sigma(spw: int) -> float:
    """Noise per real/imaginary part of one visibility in ``spw`` (Jy)."""
    sig = S.NOISE_JY_REF * np.sqrt(S.NOISE_REF_WIDTH_HZ / S.SPWS[spw].width_hz)
    return sig * (RENORM_SPW_NOISE_FACTOR if spw == S.RENORM["spw"] else 1.0)


def sky_correlations(src: S.SourceDef, spw: int, theta: np.ndarray | None, corrs):
    """True correlations (ncorr, nchan[, nrow]) of ``src`` at phase centre.

    ``theta`` (per row, radians) rotates (Q, U) into the feed frame; ``None``
    gives the sky-frame correlations."""
    i, q, u, v = stokes_spectrum_cached(src, spw)
    if theta is None:
        qf, uf = q[:, None], u[:, None]
    else:
        c, s = np.cos(theta)[None, :], np.sin(theta)[None, :]
        qf = q[:, None] * c + u[:, None] * s
        uf = -q[:, None] * s + u[:, None] * c
    i = i[:, None]
    v = v[:, None]
    out = {"XX": i + qf, "YY": i - qf, "XY": uf + 1j * v, "YX": uf - 1j * v}
    return np.stack([np.broadcast_to(out[c], np.broadcast(i, qf).shape) for c in corrs]).astype(complex)


_SCACHE: dict = {}


def stokes_spectrum_cached(src, spw):
    key = (src, spw)
    if key not in _SCACHE:
        _SCACHE[key] = S.stokes_spectrum(src, S.SPWS[spw].freqs, spw)
    return _SCACHE[key]


def fill_data(spec: S.SynthSpec, k: int, ms: str, info: dict, theta_by_ddid=None) -> dict:
    """Write observed DATA (cross and auto) into the simulated MS.

    Returns the corruption parameters and the per-integration gains."""
    tb = casatools.table()
    tb.open(ms + "/FIELD")
    fnames = list(tb.getcol("NAME"))
    tb.close()
    by_name = {s.name: s for s in spec.sources}
    nant = spec.nant
    p = corruption_model(spec, k, nant)
    corrs = spec.corrs
    pol_index = {"XX": (0, 0), "XY": (0, 1), "YX": (1, 0), "YY": (1, 1)}
    rng = spec._rng(f"noise-{k}")
    bad_scan = [s["scan"] for s in info["scans"] if s["field"] == spec.target.name][-1]
    info["bad"] = {"antenna": info["antennas"][int(p["bad_ant"])], "scan": bad_scan}
    t0 = info["t0"]
    gain_table = {}
    tb.open(ms, nomodify=False)
    try:
        for dd, sw in enumerate(S.SPWS):
            q = tb.query(f"DATA_DESC_ID=={dd}", sortlist="")
            try:
                a1 = q.getcol("ANTENNA1")
                a2 = q.getcol("ANTENNA2")
                fid = q.getcol("FIELD_ID")
                tim = q.getcol("TIME")
                scn = q.getcol("SCAN_NUMBER")
                nrow = len(a1)
                utimes = np.unique(tim)
                g = gains(p, utimes - t0, dd)  # (nt, nant, 2)
                gain_table[dd] = {"time": utimes, "gain": g}
                ti = np.searchsorted(utimes, tim)
                B = bandpass(p, dd)  # (nant, 2, nchan)
                data = np.zeros((len(corrs), sw.nchan, nrow), complex)
                cross = a1 != a2
                scale = S.renorm_scaling(sw.freqs, dd) if not spec.polarization else np.ones(sw.nchan)
                theta = None if theta_by_ddid is None else theta_by_ddid[dd]
                for f in np.unique(fid):
                    src = by_name[fnames[f]]
                    m = np.nonzero((fid == f) & cross)[0]
                    if len(m) == 0:
                        continue
                    model = sky_correlations(src, dd, None if theta is None else theta[m], corrs)
                    if model.ndim == 2:
                        model = np.repeat(model[:, :, None], len(m), axis=2)
                    if src.role == "sci":
                        model = model / scale[None, :, None]
                    for c, name in enumerate(corrs):
                        pa, pb = pol_index[name]
                        ga = g[ti[m], a1[m], pa] * 1.0
                        gb = g[ti[m], a2[m], pb]
                        ba = B[a1[m], pa, :].T  # (nchan, n)
                        bb = B[a2[m], pb, :].T
                        data[c, :, m] = (model[c] * ga[None] * np.conj(gb)[None] * ba * np.conj(bb)).T
                sig = noise_sigma(dd)
                noise = rng.normal(0.0, sig, data.shape) + 1j * rng.normal(0.0, sig, data.shape)
                data[:, :, cross] += noise[:, :, cross]
                # A bad antenna in the last target scan: garbage the pipeline flags.
                bad = cross & (scn == bad_scan) & ((a1 == p["bad_ant"]) | (a2 == p["bad_ant"]))
                if bad.any():
                    ph = rng.uniform(-np.pi, np.pi, (len(corrs), 1, int(bad.sum())))
                    data[:, :, bad] = data[:, :, bad] * 3.0 * np.exp(1j * ph)
                # Autocorrelations: Tsys-like spectra x |g|^2 |B|^2, with the
                # renormalization line on the target.
                auto = np.nonzero(~cross)[0]
                if len(auto):
                    fr = (sw.freqs - sw.center_hz) / sw.bandwidth_hz
                    for c, name in enumerate(corrs):
                        pa, pb = pol_index[name]
                        if pa != pb:
                            data[c, :, auto] = 0.0
                            continue
                        ant = a1[auto]
                        tsys = p["tsys_k"][ant, pa][None, :] * (1.0 + 0.04 * fr[:, None] + 0.03 * fr[:, None] ** 2)
                        amp = (np.abs(g[ti[auto], ant, pa]) ** 2)[None, :] * (np.abs(B[ant, pa, :].T) ** 2)
                        val = tsys * amp
                        is_t = np.array([by_name[fnames[f]].role == "sci" for f in fid[auto]])
                        val[:, is_t] *= scale[:, None]
                        # elevation-like slow change between scans
                        val *= (1.0 + 0.01 * np.sin((tim[auto] - t0) / 300.0))[None, :]
                        val *= 1.0 + rng.normal(0.0, S.AUTO_NOISE_REL, val.shape)
                        data[c, :, auto] = val.T
                q.putcol("DATA", data.astype("complex64"))
                fl = q.getcol("FLAG")
                fl[:] = False
                q.putcol("FLAG", fl)
            finally:
                q.close()
    finally:
        tb.close()
    return {"params": p, "gains": gain_table}
