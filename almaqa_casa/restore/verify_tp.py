"""The Kelvin-to-Jansky factor a restored total power EB really carries (I/O, no verdicts).

The sky, Tsys and Jy/K calibration of a TP EB multiplies each ON_SOURCE
spectrum by one Jy/K factor per antenna, spw and polarization.  That factor
is provable from the data: a few ON_SOURCE integrations of the full MS
(``working/<uid>.ms``, its uncalibrated FLOAT_DATA) are copied into a scratch
MS and calibrated again with the same calapply lines *without* their Jy/K
table (the sky and Tsys tables only, applied as the restore applies them);
the restored calibrated spectra divided by these give the factor applied,
channel by channel (the median over unflagged channels is kept).  A data
column scaled after the restore, or a wrong table applied, shows there.
The scratch MS lives in a temporary folder under ``working/`` and is deleted.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from ..delivery.calapply import CalApplication
from .verify_io import MSMeta, read_dd_spw

__all__ = ["measure_jyperk", "without_k2jy"]

#: ON_SOURCE integrations (times) recalibrated per EB: every antenna and spw at each.
NTIMES = 3


def without_k2jy(app: CalApplication) -> CalApplication | None:
    """The calapply line without its Kelvin-to-Jansky table (None: it applies only that)."""
    from .planners.tp import is_k2jy_table
    keep = [i for i, t in enumerate(app.gaintable) if not is_k2jy_table(t)]
    if not keep:
        return None

    def pick(seq: Sequence) -> tuple:
        return tuple(seq[i] for i in keep if i < len(seq))

    return dataclasses.replace(app, gaintable=pick(app.gaintable), gainfield=pick(app.gainfield),
                               spwmap=pick(app.spwmap), interp=pick(app.interp),
                               calwt=pick(app.calwt))


def _times(full: str, where: str) -> list[float]:
    import casatools
    tb = casatools.table()
    tb.open(full)
    try:
        q = tb.query(f"({where}) && ANTENNA1==ANTENNA2 && !all(FLAG)", columns="TIME")
        try:
            t = np.unique(q.getcol("TIME")) if q.nrows() else np.array([])
        finally:
            q.close()
    finally:
        tb.close()
    if t.size == 0:
        return []
    return [float(x) for x in t[np.unique(np.linspace(0, t.size - 1, min(NTIMES, t.size))
                                          .astype(int))]]


def _rows(vis: str, times: Sequence[float], column: str) -> dict[tuple[float, int, int], tuple]:
    """(time, antenna, spw) -> (spectra, flags) of the autocorrelations at ``times``."""
    import casatools
    meta_spw = read_dd_spw(vis)
    near = " || ".join(f"near(TIME,{t!r},1e-12)" for t in times)
    tb = casatools.table()
    tb.open(vis)
    try:
        q = tb.query(f"({near}) && ANTENNA1==ANTENNA2",
                     columns=f"TIME,ANTENNA1,DATA_DESC_ID,FLAG,{column}")
        try:
            if not q.nrows():
                return {}
            tim, ant, dd = q.getcol("TIME"), q.getcol("ANTENNA1"), q.getcol("DATA_DESC_ID")
            data, flag = q.getcol(column), q.getcol("FLAG")
        finally:
            q.close()
    finally:
        tb.close()
    out = {}
    for i in range(tim.size):
        key = (round(float(tim[i]), 3), int(ant[i]), meta_spw[int(dd[i])])
        out[key] = (np.asarray(data[..., i]).real, flag[..., i])
    return out


def measure_jyperk(full: str, working: str, apps: Sequence[CalApplication], where: str,
                   vis: str, column: str, meta: MSMeta) -> tuple[dict, dict]:
    """The Jy/K factor per (antenna, spw, pol) the calibrated ``column`` of ``vis``
    carries, measured against ``full`` (the EB's full MS: FLOAT_DATA) recalibrated
    with ``apps`` minus their Jy/K tables (tables under ``working``) at a few
    ON_SOURCE times of the TaQL selection ``where``.

    Returns ``(factors, counts)``: ``{(antenna, spw, pol): factor}`` and
    ``{'times', 'spectra', 'channels'}`` (what was compared)."""
    from casatasks import mstransform

    from .casasteps import apply_calibration_sd, corr_names
    times = _times(full, where)
    counts = {"times": len(times), "spectra": 0, "channels": 0}
    sky_tsys = [a for a in (without_k2jy(x) for x in apps) if a is not None]
    if not times or not sky_tsys:
        return {}, counts
    scratch = tempfile.mkdtemp(prefix=".verify-jyperk-", dir=working)
    try:
        ref_ms = os.path.join(scratch, "sample.ms")
        sel = " || ".join(f"near(TIME,{t!r},1e-12)" for t in times)
        mstransform(vis=full, outputvis=ref_ms, datacolumn="float_data", taql=sel,
                    reindex=False, keepflags=True)
        apply_calibration_sd(ref_ms, sky_tsys, working)
        ref = _rows(ref_ms, times, "CORRECTED_DATA")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    got = _rows(vis, times, column)
    pols = corr_names(vis)
    ratios: dict[tuple[str, int, str], list[float]] = {}
    for key, (r, rf) in ref.items():
        if key not in got:
            continue
        g, gf = got[key]
        if g.shape != r.shape:
            continue
        counts["spectra"] += 1
        for p in range(r.shape[0]):
            ok = ~(rf[p] | gf[p]) & (r[p] != 0) & np.isfinite(r[p]) & np.isfinite(g[p])
            if not ok.any():
                continue
            counts["channels"] += int(ok.sum())
            name = (meta.antenna_names[key[1]] if key[1] < len(meta.antenna_names)
                    else str(key[1]))
            ratios.setdefault((name, key[2], pols[p] if p < len(pols) else str(p)), []).append(
                float(np.median(g[p][ok] / r[p][ok])))
    return {k: float(np.median(v)) for k, v in ratios.items()}, counts
