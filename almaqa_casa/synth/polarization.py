"""Full polarization: the feed-frame rotation CASA applies, the instrument's
polarization errors, and the session polarization calibration hifa_polcal
derives for them.

The instrument (one for every EB; what :func:`instrument` draws from the
seed): per antenna and receptor a complex leakage ``d`` (D-terms, a few
per cent) and, on the reference antenna, a cross-hand phase: a phase per
spw plus a cross-hand delay.  The corrupted data are

    V_ab = X_a G_a B_a D_a P_a  V_sky  (X_b G_b B_b D_b P_b)^H

with ``D = [[1, dX], [dY, 1]]`` (CASA's Df form) and ``X = diag(1, e^{i psi})``
on the reference antenna.  The gain solves (phase per receptor relative to the
reference antenna) remove the other antennas' X-Y phases but not the
reference antenna's ``psi``: the cross-hand phase stays in XY/YX, and the
leakage mixes Stokes I into them.  Only the polarization tables remove both.

:func:`solve_session` reproduces hifa_polcal's sequence on the session's
polarization-calibrator data (``<session>_polcalib.ms``, the EBs' corrected
data concatenated): initial gains and polfromgain (the calibrator's Q/U
estimate), the cross-hand delay (KCROSS) on the scan with most cross-hand
signal, the cross-hand phase with the calibrator's Q/U
(``Xfparang+QU``), the final gains with that model (``parang=True``), and
the leakage (``Dflls``).  The cross-hand delay, phase and leakage tables are
applied to every intent of every EB of the session (``parang=True``), as
hifa_polcal registers them; its gain, X/Y-ratio and amplitude tables refine
amplitudes the synthetic instrument does not corrupt and are not exported.

The rotation is measured with CASA itself (applycal with parang=True on a
unit Stokes-Q model), so the simulated feed-frame data are, by construction,
what applycal(parang=True) turns back into the sky frame."""
from __future__ import annotations

import os
import shutil

import numpy as np

from . import spec as S
from ._casa import casatasks, casatools

#: hifa_polcal's channel averaging for the cross-hand and leakage solves.
SOLINT_CHAVG = "5MHz"
#: Standard deviation of each part (real, imaginary) of the injected leakage.
LEAKAGE_SIGMA = 0.03
#: hifa_polcal's minimum parallactic angle coverage for polfromgain (deg).
MINPACOV = 30.0
#: The D-term convention of the injection (and CASA's Df tables).
CONVENTION = ("V_ab = X_a G_a B_a D_a P_a V_sky (X_b G_b B_b D_b P_b)^H, D = [[1, dX], [dY, 1]], "
              "X = diag(1, exp(i psi)) on the reference antenna only")


def orthogonal_feeds(vis: str) -> None:
    """Give the receptors of ``vis`` physical angles: Y at X + 90 deg.  The
    simulator writes 0 for both, which CASA's parallactic-angle rotation
    (applycal) and its cross-hand solver (``Xfparang+QU``, which reads the
    X receptor's position angle) then interpret differently."""
    tb = casatools.table()
    tb.open(vis + "/FEED", nomodify=False)
    try:
        ang = tb.getcol("RECEPTOR_ANGLE")
        ang[0, :] = 0.0
        ang[1, :] = np.pi / 2
        tb.putcol("RECEPTOR_ANGLE", ang)
    finally:
        tb.close()


def feed_rotation(vis: str) -> dict[int, np.ndarray]:
    """Per DATA_DESC_ID, per row (query order), the angle by which
    applycal(parang=True) rotates (Q, U).  Overwrites DATA (callers fill it
    afterwards).  Sets the receptor angles first (:func:`orthogonal_feeds`)."""
    orthogonal_feeds(vis)
    tb = casatools.table()
    tb.open(vis, nomodify=False)
    try:
        nd = int(tb.getcol("DATA_DESC_ID").max()) + 1
        for dd in range(nd):
            q = tb.query(f"DATA_DESC_ID=={dd}", sortlist="")
            d = q.getcol("DATA")
            d[:] = 0.0
            d[0] = 1.0    # XX = I + Q
            d[-1] = -1.0  # YY = I - Q  (I = 0, Q = 1)
            q.putcol("DATA", d)
            q.close()
    finally:
        tb.close()
    casatasks.applycal(vis=vis, parang=True, gaintable=[], flagbackup=False, calwt=False)
    out = {}
    tb.open(vis)
    try:
        for dd in range(nd):
            q = tb.query(f"DATA_DESC_ID=={dd}", sortlist="")
            c = q.getcol("CORRECTED_DATA")
            q.close()
            qc = 0.5 * (c[0] - c[-1]).real.mean(axis=0)
            uc = 0.5 * (c[1] + c[2]).real.mean(axis=0)
            out[dd] = np.arctan2(uc, qc)
    finally:
        tb.close()
    return out


# ---- the instrument ------------------------------------------------------------------
def instrument(spec: S.SynthSpec) -> dict:
    """Leakage per antenna and receptor, the reference antenna's cross-hand
    phase per spw and delay (seeded; the same for every EB)."""
    r = spec._rng("pol-instrument")
    nant = spec.nant
    # independent per antenna and receptor: a large part common to every antenna
    # biases CASA's 180-deg resolution of the cross-hand phase (Xfparang+QU
    # correlates the cross hands, leakage included, with the model)
    d = LEAKAGE_SIGMA * (r.normal(size=(nant, 2)) + 1j * r.normal(size=(nant, 2)))
    return {"d": d, "psi0_deg": r.uniform(-150.0, 150.0, len(S.SPWS)),
            "delay_ps": float(r.uniform(80.0, 160.0))}


def cross_hand_phase(inst: dict, spw: int, freqs: np.ndarray | None = None) -> np.ndarray:
    """The reference antenna's Y-minus-X phase (rad) over ``spw``'s channels."""
    sw = S.SPWS[spw]
    f = sw.freqs if freqs is None else np.asarray(freqs)
    return np.deg2rad(inst["psi0_deg"][spw]) + 2 * np.pi * inst["delay_ps"] * 1e-12 * (f - sw.center_hz)


def inject(spec: S.SynthSpec, vis: str, cor: dict) -> None:
    """Apply the instrument's leakage and cross-hand phase to DATA of ``vis``
    (rows as :func:`.simulate.fill_data` wrote them, whose gains and
    bandpasses ``cor`` holds): ``V -> X_a D'_a V D'_b^H X_b^H`` with
    ``D' = (G B) D (G B)^-1``, i.e. the leakage acts before the gains."""
    from .simulate import bandpass
    inst = instrument(spec)
    d = inst["d"]
    p = cor["params"]
    ref = 0  # S.REFANT is the first antenna
    tb = casatools.table()
    tb.open(vis, nomodify=False)
    try:
        for dd in range(len(S.SPWS)):
            q = tb.query(f"DATA_DESC_ID=={dd}", sortlist="")
            try:
                a1, a2 = q.getcol("ANTENNA1"), q.getcol("ANTENNA2")
                tim = q.getcol("TIME")
                data = q.getcol("DATA").astype(complex)       # (4, nchan, nrow): XX XY YX YY
                g = cor["gains"][dd]
                ti = np.searchsorted(g["time"], tim)
                bp = bandpass(p, dd)                            # (nant, 2, nchan)
                ja = g["gain"][ti, a1, :][:, :, None] * bp[a1]  # (nrow, 2, nchan)
                jb = g["gain"][ti, a2, :][:, :, None] * bp[a2]
                dxa = (d[a1, 0][:, None] * ja[:, 0] / ja[:, 1]).T   # (nchan, nrow)
                dya = (d[a1, 1][:, None] * ja[:, 1] / ja[:, 0]).T
                dxb = np.conj((d[a2, 0][:, None] * jb[:, 0] / jb[:, 1]).T)
                dyb = np.conj((d[a2, 1][:, None] * jb[:, 1] / jb[:, 0]).T)
                xx, xy, yx, yy = data
                t00, t01 = xx + dxa * yx, xy + dxa * yy
                t10, t11 = dya * xx + yx, dya * xy + yy
                out = np.stack([t00 + t01 * dxb, t00 * dyb + t01, t10 + t11 * dxb, t10 * dyb + t11])
                e = np.exp(1j * cross_hand_phase(inst, dd))[:, None]
                m1, m2 = a1 == ref, a2 == ref
                out[2][:, m1] *= e
                out[3][:, m1] *= e
                out[1][:, m2] *= np.conj(e)
                out[3][:, m2] *= np.conj(e)
                cross = a1 != a2
                data[:, :, cross] = out[:, :, cross]
                q.putcol("DATA", data.astype("complex64"))
            finally:
                q.close()
    finally:
        tb.close()


def instrument_truth(spec: S.SynthSpec, antennas: list[str]) -> dict:
    """``truth['polarization_truth']['instrument']``: what :func:`inject` applied."""
    inst = instrument(spec)
    return {
        "convention": CONVENTION,
        "leakage": {a: {"dX": [float(inst["d"][i, 0].real), float(inst["d"][i, 0].imag)],
                        "dY": [float(inst["d"][i, 1].real), float(inst["d"][i, 1].imag)]}
                    for i, a in enumerate(antennas)},
        "leakage_note": "complex [re, im], constant over frequency and time, the same in every EB",
        "cross_hand": {"antenna": antennas[0], "phase_deg_at_spw_center": list(inst["psi0_deg"]),
                       "delay_ps": inst["delay_ps"],
                       "note": "Y minus X phase of the reference antenna: psi0 + 2 pi delay (nu - "
                               "nu_center); the gain solves leave it in the cross-hands"},
    }


def stokes_truth(spec: S.SynthSpec) -> dict:
    """Per polarized source and spw: the true I, Q, U at the spw centre (Jy)."""
    out = {}
    for src in spec.sources:
        if src.pol_frac <= 0:
            continue
        per = {}
        for k, sw in enumerate(S.SPWS):
            i, q, u, v = (float(x[0]) for x in S.stokes_spectrum(src, np.array([sw.center_hz]), k))
            per[str(k)] = {"I": i, "Q": q, "U": u, "V": v}
        out[src.name] = {"role": src.role, "pol_frac": src.pol_frac, "pol_angle_deg": src.pol_angle_deg,
                         "per_spw_center": per}
    return out


# ---- hifa_polcal ----------------------------------------------------------------------
def table_names(session: str) -> dict[str, str]:
    from .calplan import polcal_table_names
    return polcal_table_names(session)


def _rm(*paths: str) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def _need(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise RuntimeError(f"hifa_polcal stand-in: {what} did not write {path}")
    return path


def _best_scan(gtable: str) -> int:
    """hifa_polcal: the scan whose X/Y gain ratio is closest to one (least
    polarization in the parallel hands, most in the cross hands)."""
    tb = casatools.table()
    tb.open(gtable)
    try:
        scans = tb.getcol("SCAN_NUMBER")
        g = tb.getcol("CPARAM")[:, 0, :]
        fl = tb.getcol("FLAG")[:, 0, :]
    finally:
        tb.close()
    best, score = int(scans[0]), np.inf
    for s in sorted(set(scans.tolist())):
        m = (scans == s) & ~fl[0] & ~fl[1]
        if not m.any():
            continue
        r = np.sqrt(np.mean((np.abs(g[0, m]) / np.abs(g[1, m]) - 1.0) ** 2))
        if r < score:
            best, score = int(s), r
    return best


def _scan_duration(vis: str) -> int:
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        durs = []
        for obs in range(msmd.nobservations()):
            for s in msmd.scansforintent("CALIBRATE_POLARIZATION*", obsid=obs):
                t = msmd.timesforscan(int(s), obsid=obs)
                durs.append(float(t.max() - t.min()) + S.INTEGRATION_S)
    finally:
        msmd.close()
    return int(np.median(durs))


def session_ms(vislist: list[str], work: str, session: str) -> str:
    """hifa_polcal's session MS: the polarization calibrator's corrected data of
    each EB (``<uid>.polcalib.ms``), concatenated (``<session>_polcalib.ms``)."""
    parts = []
    for vis in vislist:
        out = os.path.join(work, os.path.basename(vis)[:-3] + ".polcalib.ms")
        _rm(out)
        casatasks.mstransform(vis=vis, outputvis=out, intent="CALIBRATE_POLARIZATION#ON_SOURCE",
                              datacolumn="corrected", reindex=False)
        parts.append(_need(out, "mstransform"))
    sess = os.path.join(work, f"{session}_polcalib.ms")
    _rm(sess)
    casatasks.concat(vis=parts, concatvis=sess)
    for p in parts:
        _rm(p)
    return _need(sess, "concat")


def solve_session(sess: str, outdir: str, session: str) -> tuple[dict[str, str], dict]:
    """hifa_polcal's solves on the session MS; returns (kind -> table path in
    ``outdir``, what was found: the calibrator's Q/U estimates, best scan)."""
    names = table_names(session)
    paths = {k: os.path.join(outdir, v) for k, v in names.items()}
    work = os.path.dirname(sess)
    g0 = os.path.join(work, f"{session}.polcal_init.gcal.tbl")
    gf = os.path.join(work, f"{session}.polcal_final.gcal.tbl")
    _rm(g0, gf, g0[:-4] + "_polfromgain.tbl", *paths.values())
    pc = S.POLCAL.name
    intent = "CALIBRATE_POLARIZATION#ON_SOURCE"
    solint = f"inf,{SOLINT_CHAVG}"
    casatasks.gaincal(vis=sess, caltable=g0, intent=intent, solint="int", calmode="ap",
                      refant=S.REFANT, minsnr=2.0)
    _need(g0, "gaincal (initial gains)")
    pfg = casatasks.polfromgain(vis=sess, tablein=g0, caltable=g0[:-4] + "_polfromgain.tbl",
                                minpacov=MINPACOV)
    if not pfg or pc not in pfg:
        raise RuntimeError(f"polfromgain found no polarization for {pc} in {sess}")
    smodel0 = [float(x) for x in pfg[pc]["SpwAve"]]
    scan = _best_scan(g0)
    casatasks.gaincal(vis=sess, caltable=paths["kcross"], intent=intent, scan=str(scan),
                      solint=solint, smodel=[1, 0, 1, 0], gaintype="KCROSS", refant=S.REFANT,
                      gaintable=[g0], interp=["linear"])
    _need(paths["kcross"], "gaincal KCROSS")
    duration = _scan_duration(sess)
    fst = casatasks.polcal(vis=sess, caltable=paths["xyf"], intent=intent, solint=solint,
                           combine="obs,scan", preavg=duration, poltype="Xfparang+QU",
                           smodel=smodel0, gaintable=[g0, paths["kcross"]],
                           interp=["linear", "nearest"])
    _need(paths["xyf"], "polcal Xfparang+QU")
    smodel = [float(x) for x in fst[pc]["SpwAve"]] if fst and pc in fst else smodel0
    casatasks.gaincal(vis=sess, caltable=gf, intent=intent, solint="int", calmode="ap",
                      smodel=smodel, refant=S.REFANT, parang=True, minsnr=2.0)
    _need(gf, "gaincal (final gains)")
    casatasks.polcal(vis=sess, caltable=paths["dterms"], intent=intent, solint=solint,
                     combine="obs,scan", preavg=duration, poltype="Dflls", smodel=smodel, refant="",
                     gaintable=[gf, paths["kcross"], paths["xyf"]],
                     interp=["linear", "nearest", "nearest"])
    _need(paths["dterms"], "polcal Dflls")
    found = {"polfromgain_smodel": smodel0, "xyf_smodel": smodel, "kcross_scan": scan,
             "preavg_s": duration, "session_ms": os.path.basename(sess),
             "solint": solint, "tables": {k: os.path.basename(v) for k, v in paths.items()}}
    return paths, found


def read_leakage(dterms: str) -> dict[int, dict[int, np.ndarray]]:
    """Solved leakage per spw and antenna, averaged over the channels: (dX, dY)."""
    tb = casatools.table()
    tb.open(dterms)
    out: dict[int, dict[int, np.ndarray]] = {}
    try:
        for spw in sorted(set(tb.getcol("SPECTRAL_WINDOW_ID").tolist())):
            q = tb.query(f"SPECTRAL_WINDOW_ID=={spw}")
            try:
                ant, c, fl = q.getcol("ANTENNA1"), q.getcol("CPARAM"), q.getcol("FLAG")
            finally:
                q.close()
            out[int(spw)] = {int(i): np.ma.array(c[:, :, ant == i], mask=fl[:, :, ant == i])
                             .mean(axis=(1, 2)).filled(np.nan) for i in set(ant.tolist())}
    finally:
        tb.close()
    return out


def compare_leakage(solved: dict[int, dict[int, np.ndarray]], spec: S.SynthSpec) -> dict:
    """Solved against injected leakage, per spw and receptor.

    CASA's Jones chain puts the cross-hand phase between the leakage and the
    parallactic angle, so its D-terms are the injected ones turned by the
    cross-hand phase (dX by -psi, dY by +psi), and linear-feed D-terms are only
    determined up to an offset common to every antenna (dX + c, dY - c*).
    The fit ``solved = k e^{i rot} injected + offset`` shows both; the
    residual (relative to the injected RMS) says how well the leakage was
    recovered."""
    inst = instrument(spec)
    out = {}
    for spw, per_ant in solved.items():
        ants = sorted(a for a in per_ant if np.all(np.isfinite(per_ant[a])))
        entry = {"expected_rotation_deg": {"dX": -float(inst["psi0_deg"][spw]),
                                           "dY": float(inst["psi0_deg"][spw])}}
        for p, name in ((0, "dX"), (1, "dY")):
            inj = np.array([inst["d"][a, p] for a in ants])
            sol = np.array([per_ant[a][p] for a in ants])
            A = np.stack([inj, np.ones(len(inj))], axis=1)
            x, *_ = np.linalg.lstsq(A, sol, rcond=None)
            res = sol - A @ x
            entry[name] = {"scale": float(abs(x[0])), "rotation_deg": float(np.degrees(np.angle(x[0]))),
                           "offset": [float(x[1].real), float(x[1].imag)],
                           "residual_fraction": float(np.sqrt(np.mean(abs(res) ** 2))
                                                      / np.sqrt(np.mean(abs(inj) ** 2)))}
        out[str(spw)] = entry
    return out


def vector_stokes(vis: str, field: str, column: str = "DATA") -> dict:
    """Vector-averaged (I, Q, U, V) of ``field``'s unflagged cross-correlations per spw
    (linear feeds, sky frame: data calibrated with parang=True)."""
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        fid = int(msmd.fieldsforname(field)[0])
        dds = {int(s): int(msmd.datadescids(spw=int(s))[0]) for s in range(msmd.nspw())}
    finally:
        msmd.close()
    tb = casatools.table()
    tb.open(vis)
    out = {}
    try:
        for spw, dd in dds.items():
            q = tb.query(f"DATA_DESC_ID=={dd} && FIELD_ID=={fid} && ANTENNA1!=ANTENNA2")
            try:
                if q.nrows() == 0:
                    continue
                d = q.getcol(column)
                f = q.getcol("FLAG")
            finally:
                q.close()
            ok = ~(f.any(axis=0))
            xx, xy, yx, yy = (d[c][ok].mean() for c in range(4))
            out[spw] = {"I": float(0.5 * (xx + yy).real), "Q": float(0.5 * (xx - yy).real),
                        "U": float(0.5 * (xy + yx).real), "V": float((0.5 * (xy - yx) / 1j).real)}
    finally:
        tb.close()
    return out
