"""The renormalization correction as a Tsys-like calibration table (I/O).

One writer for both tasks (``qa_renormplots(apply=True)`` and the restore's
``hifa_renorm``): as the pipeline since 2024 (``ACreNorm.writeCalTable``
with ``fillTable``), a ``B TSYS`` table made by the calibrater tool with
one row per antenna per (spw, scan, field) of the targets' scans:

* a target/spw above the threshold: every scan/field's own scaling
  spectrum N (from the second pass of the heuristic);
* every other science spw (below the threshold, TDM, not analysed) at the
  target scans that observed it: 1.0, so that ``applycal`` finds a solution
  for every science spw it is asked to calibrate (with ``calflag`` or
  ``calflagstrict`` data without a solution are flagged).

``FPARAM`` has the parallel hands the heuristic used (one or two; a single
one is padded with a second of 1.0, as the pipeline does), ``TIME`` the mean
time of the scan.  ``applycal`` applies a Tsys table as
``V_ij * sqrt(N_i N_j)``, which is exactly the renormalization correction;
no data column is touched.

:func:`read_correction` reads such a table back (per spw, field, scan the
spectra of every antenna): to undo the correction in data that carry it and
to report the factor that was applied.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_output

if TYPE_CHECKING:   # pragma: no cover
    from .engine import RunResult

__all__ = ["correction_rows", "max_factor", "read_correction", "write_caltable",
           "write_correction"]

Row = tuple[int, int, int, float, np.ndarray]


def correction_rows(rr: RunResult) -> Iterator[Row]:
    """Rows ``(spw, field, scan, time, N)`` of the correction of one run (pure).

    ``N`` is ``(ncorr, nchan, nant)``; ``ncorr`` is that of the spw's
    parallel hands (the heuristic's), the writer pads one to two.
    """
    info = rr.info
    where: dict[tuple[int, int], float] = {}       # (field, scan) -> time of the scan
    for res in rr.results:
        for e in res.entries:
            where[(e.field, e.scan)] = float(np.mean(info.scan_times[e.scan]))
    for t in sorted({r.target for r in rr.results}):   # target scans without an analysed spw
        for k in info.scans_for_name.get(t, []):
            if k in info.target_scans:
                for f in info.fields_for_scan.get(k, []):
                    where.setdefault((f, k), float(np.mean(info.scan_times[k])))
    done: set[tuple[int, int, int]] = set()
    for res in rr.results:
        if not res.exceeds:
            continue
        for e in res.entries:
            N = res.spectra.get((e.scan, e.field))
            if N is not None:
                done.add((res.spw, e.field, e.scan))
                yield res.spw, e.field, e.scan, where[(e.field, e.scan)], N
    for spw in sorted(info.spws):
        si = info.spws[spw]
        scans = set(info.scans_for_spw.get(spw, []))
        for (fld, scan), t in sorted(where.items()):
            if scan in scans and (spw, fld, scan) not in done:
                yield spw, fld, scan, t, np.ones((len(si.corr_index), si.nchan, info.nant))


def write_caltable(vis: str, caltable: str, rows: Iterable[Row], overwrite: bool = True) -> str:
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


def write_correction(rr: RunResult, caltable: str) -> str:
    """The correction of run ``rr`` (:func:`correction_rows`) written to ``caltable``."""
    return write_caltable(rr.vis, caltable, correction_rows(rr))


Correction = dict[tuple[int, int, int], np.ndarray]   # (spw, field, scan) -> (npol, nchan, nant)


def read_correction(caltable: str) -> tuple[Correction, dict[int, np.ndarray]]:
    """The spectra of a renormalization table, and its spws' channel frequencies (Hz).

    Returns ``({(spw, field, scan): N}, {spw: freqs})`` with ``N`` shaped
    ``(npol, nchan, nant)``; antennas without a row get 1.0.
    """
    import casatools
    tb = casatools.table()
    tb.open(caltable)
    try:
        spw = tb.getcol("SPECTRAL_WINDOW_ID")
        fld = tb.getcol("FIELD_ID")
        scan = tb.getcol("SCAN_NUMBER")
        ant = tb.getcol("ANTENNA1")
        rows: dict[tuple[int, int, int], list[tuple[int, np.ndarray]]] = {}
        for i in range(tb.nrows()):
            rows.setdefault((int(spw[i]), int(fld[i]), int(scan[i])), []).append(
                (int(ant[i]), np.asarray(tb.getcell("FPARAM", i), float)))
    finally:
        tb.close()
    out: Correction = {}
    for key, items in rows.items():
        nant = max(a for a, _ in items) + 1
        npol, nchan = items[0][1].shape
        N = np.ones((npol, nchan, nant))
        for a, v in items:
            N[:, :, a] = v
        out[key] = N
    freqs: dict[int, np.ndarray] = {}
    sw = os.path.join(caltable, "SPECTRAL_WINDOW")
    if os.path.isdir(sw):
        tb.open(sw)
        try:
            for s in sorted({k[0] for k in out}):
                if s < tb.nrows():
                    freqs[s] = np.asarray(tb.getcell("CHAN_FREQ", s), float)
        finally:
            tb.close()
    return out, freqs


def max_factor(correction: Mapping[tuple[int, int, int], np.ndarray]) -> dict[int, float]:
    """Per spw, the largest scaling the table applies (1.0 where it applies none)."""
    out: dict[int, float] = {}
    for (s, _f, _k), N in correction.items():
        out[s] = max(out.get(s, 1.0), float(np.nanmax(N)))
    return out
