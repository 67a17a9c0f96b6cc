"""Write the renormalization correction as a Tsys-like calibration table (I/O).

As the pipeline since 2024 (``ACreNorm.writeCalTable``): a ``B TSYS``
table made by the calibrater tool, one row per antenna per (spw, scan,
field), ``FPARAM`` = the scaling spectrum N (a second correlation of 1.0
for single-pol data), ``TIME`` = mean time of the scan.  ``applycal``
applies a Tsys table as ``V_ij * sqrt(N_i N_j)``, which is exactly the
renormalization correction; no data column is touched.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_output


def write_caltable(vis: str, caltable: str, rows: Iterable[tuple[int, int, int, float, np.ndarray]],
                   overwrite: bool = True) -> str:
    """Write ``rows`` of ``(spw, field, scan, time, N)`` with ``N`` shaped
    ``(ncorr, nchan, nant)`` to ``caltable`` (atomically)."""
    import casatools

    with atomic_output(caltable, overwrite=overwrite) as tmp:
        cb = casatools.calibrater()
        try:
            cb.open(filename=vis, compress=False, addcorr=False, addmodel=False)
            cb.createcaltable(caltable=str(tmp), partype="Real", caltype="B TSYS",
                              singlechan=False)
        finally:
            cb.close()
        tb = casatools.table()
        tb.open(str(tmp), nomodify=False)
        try:
            row = 0
            for spw, fld, scan, time, N in rows:
                N = np.asarray(N, float)
                if N.shape[0] == 1:
                    N = np.concatenate([N, np.ones_like(N)])
                npol, nchan, nant = N.shape
                tb.addrows(nant)
                tb.putcol("FPARAM", N, startrow=row, nrow=nant)
                tb.putcol("PARAMERR", np.full(N.shape, 0.1), startrow=row, nrow=nant)
                tb.putcol("FLAG", np.zeros(N.shape, bool), startrow=row, nrow=nant)
                tb.putcol("SNR", np.ones(N.shape), startrow=row, nrow=nant)
                tb.putcol("WEIGHT", np.ones(N.shape), startrow=row, nrow=nant)
                tb.putcol("TIME", np.full(nant, float(time)), startrow=row, nrow=nant)
                tb.putcol("FIELD_ID", np.full(nant, int(fld), np.int32), startrow=row, nrow=nant)
                tb.putcol("SCAN_NUMBER", np.full(nant, int(scan), np.int32), startrow=row, nrow=nant)
                tb.putcol("SPECTRAL_WINDOW_ID", np.full(nant, int(spw), np.int32),
                          startrow=row, nrow=nant)
                tb.putcol("ANTENNA1", np.arange(nant, dtype=np.int32), startrow=row, nrow=nant)
                tb.putcol("ANTENNA2", np.full(nant, -1, np.int32), startrow=row, nrow=nant)
                tb.putcol("INTERVAL", np.zeros(nant), startrow=row, nrow=nant)
                tb.putcol("OBSERVATION_ID", np.zeros(nant, np.int32), startrow=row, nrow=nant)
                row += nant
        finally:
            tb.close()
    return str(Path(caltable))
