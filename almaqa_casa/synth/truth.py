"""The truth of a synthetic delivery: reference visibilities and truth.json."""
from __future__ import annotations

import json

import numpy as np

from ..atomic import write_text_atomic
from . import spec as S
from ._casa import casatools
from .simulate import sky_correlations


def write_reference_ms(vis: str, spec: S.SynthSpec) -> dict:
    """Overwrite DATA of the cross-correlations of ``vis`` (a non-lazy import
    of the delivered ASDM, so rows are in importasdm's order) with the true,
    uncorrupted sky-frame visibilities.  Autocorrelations keep the observed
    (uncorrected) spectra.  FLAG is cleared."""
    tb = casatools.table()
    tb.open(vis + "/FIELD")
    fnames = list(tb.getcol("NAME"))
    tb.close()
    tb.open(vis + "/DATA_DESCRIPTION")
    dd_spw = list(tb.getcol("SPECTRAL_WINDOW_ID"))
    tb.close()
    by_name = {s.name: s for s in spec.sources}
    tb.open(vis, nomodify=False)
    try:
        for dd, spw in enumerate(dd_spw):
            if spw >= len(S.SPWS):
                continue
            q = tb.query(f"DATA_DESC_ID=={dd} && ANTENNA1!=ANTENNA2")
            try:
                if q.nrows() == 0:
                    continue
                fid = q.getcol("FIELD_ID")
                data = q.getcol("DATA")
                for f in np.unique(fid):
                    m = fid == f
                    model = sky_correlations(by_name[fnames[f]], spw, None, spec.corrs)
                    data[:, :, m] = model[:, :, None] if model.ndim == 2 else model
                q.putcol("DATA", data)
                fl = q.getcol("FLAG")
                fl[:] = False
                q.putcol("FLAG", fl)
            finally:
                q.close()
    finally:
        tb.close()
    return {"path": vis}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, complex):
        return [x.real, x.imag]
    return x


def write_json(path: str, truth: dict) -> str:
    write_text_atomic(path, json.dumps(_jsonable(truth), indent=1, sort_keys=True))
    return path


def sources_truth(spec: S.SynthSpec) -> dict:
    out = {}
    for s in spec.sources:
        per_spw = {}
        for k, sw in enumerate(S.SPWS):
            i, q, u, v = S.stokes_spectrum(s, sw.freqs, k)
            cont = s.flux_jy * (sw.freqs / S.REF_FREQ_HZ) ** s.spix
            per_spw[k] = {"mean_I_jy": float(i.mean()), "mean_continuum_I_jy": float(cont.mean()),
                          "center_hz": sw.center_hz,
                          "continuum_I_at_center_jy": float(s.flux_jy * (sw.center_hz / S.REF_FREQ_HZ) ** s.spix)}
        out[s.name] = {"role": s.role, "intents": list(s.intents), "ra": s.ra, "dec": s.dec,
                       "flux_jy": s.flux_jy, "spix": s.spix, "ref_freq_hz": S.REF_FREQ_HZ,
                       "pol_frac": s.pol_frac, "pol_angle_deg": s.pol_angle_deg,
                       "position": "phase centre of its field (point source)", "spw": per_spw}
    return out
