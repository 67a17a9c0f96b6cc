"""Polarization helpers: the feed-frame rotation CASA applies, and a
pipeline-style polarization calibration table.

The rotation is measured with CASA itself (applycal with parang=True on a
unit Stokes-Q model), so the simulated feed-frame data are, by construction,
what applycal(parang=True) turns back into the sky frame."""
from __future__ import annotations

import os
import shutil

import numpy as np

from . import spec as S
from ._casa import casatasks, casatools


def feed_rotation(vis: str) -> dict[int, np.ndarray]:
    """Per DATA_DESC_ID, per row (query order), the angle by which
    applycal(parang=True) rotates (Q, U).  Overwrites DATA (callers fill it
    afterwards)."""
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


def polcal_name(uid: str) -> str:
    from .calibrate import SPW_TOKEN

    return f"{uid}.ms.hifa_polcal.s15_4.{SPW_TOKEN}.Df.polcal.tbl"


def solve_polcal(vis: str, outdir: str, uid: str, spec: S.SynthSpec, tables: dict[str, str]) -> str:
    """Leakage (Df) from the polarization calibrator with its known model."""
    out = os.path.join(outdir, polcal_name(uid))
    shutil.rmtree(out, ignore_errors=True)
    pc, ph = S.POLCAL.name, S.PHASE.name
    casatasks.polcal(vis=vis, caltable=out, field=pc, poltype="Df", solint="inf", combine="scan",
                     refant=S.REFANT, minsnr=2.0,
                     gaintable=[tables["bcal"], tables["gpcal_int"], tables["gacal"]],
                     gainfield=["", pc, ph], interp=["linear,linear", "linear", "linear"])
    if not os.path.isdir(out):
        raise RuntimeError(f"polcal did not write {out}")
    return out
