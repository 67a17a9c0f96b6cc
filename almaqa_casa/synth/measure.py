"""Measurements the truth is made of: field ids, the calibrated target
against the injected sky, the contents of an MS (CASA tools, read only)."""
from __future__ import annotations

import numpy as np

from . import spec as S
from ._casa import casatools


def field_ids(vis: str) -> dict[str, int]:
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        return {n: i for i, n in enumerate(msmd.fieldnames())}
    finally:
        msmd.close()


def target_ratio(vis: str, spec: S.SynthSpec, column: str = "DATA") -> dict[int, float]:
    """Mean unflagged cross-correlation (parallel hands, real part) of the
    target per spw, divided by the injected mean (incl. the renorm under-scaling)."""
    tb = casatools.table()
    fid = field_ids(vis)[spec.target.name]
    out = {}
    tb.open(vis)
    try:
        for k, sw in enumerate(S.SPWS):
            q = tb.query(f"DATA_DESC_ID=={k} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}")
            try:
                d = q.getcol(column)
                f = q.getcol("FLAG")
            finally:
                q.close()
            par = [0, -1]
            dm = np.ma.array(d[par], mask=f[par])
            got = dm.mean(axis=(0, 2)).real
            i = S.stokes_spectrum(spec.target, sw.freqs, k)[0]
            if not spec.polarization:
                i = i / S.renorm_scaling(sw.freqs, k)
            out[k] = float(got.mean() / i.mean())
    finally:
        tb.close()
    return out


def describe_ms(vis: str, spec: S.SynthSpec) -> dict:
    """What an MS made from the EBs must hold: rows, EBs (observations),
    fields, spws with channels, scans, and the target against the truth."""
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        out = {"nrows": int(msmd.nrows()), "nobservations": int(msmd.nobservations()),
               "fields": list(msmd.fieldnames()), "nspw": int(msmd.nspw()),
               "nchan": [int(msmd.nchan(i)) for i in range(msmd.nspw())],
               "nscans": int(len(msmd.scannumbers())), "nantennas": int(msmd.nantennas())}
    finally:
        msmd.close()
    out["target_ratio_per_spw"] = target_ratio(vis, spec, "DATA")
    out["target_ratio_note"] = ("mean target cross-correlation / injected sky x renorm under-scaling, "
                                "DATA column, as the generator calibrated it (no renormalization)")
    return out
