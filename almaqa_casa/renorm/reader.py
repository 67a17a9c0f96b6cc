"""Read what the heuristic needs from an MS in one pass (I/O only).

* Autocorrelations: one TaQL selection ``ANTENNA1==ANTENNA2`` per spw
  whose real parts are summed per (scan, field, antenna) inside casacore
  (``GROUPBY`` with ``gsums``), so every autocorrelation row is read exactly
  once and only the per-group sums reach Python (the pipeline's
  ``getACdata`` re-queries the MS per scan and field and moves every row
  into numpy).  If TaQL cannot, the rows are read in chunks of bounded
  size and summed here.  The mean over rows is unweighted, as in the
  pipeline.
* Cross-correlation flags: one TaQL selection of the rows with at least
  one unflagged sample (``!all(FLAG)``), evaluated inside casacore; an
  antenna without any such baseline in a (spw, scan, field) is "fully
  flagged" (``getXCflags``).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Bytes of visibility data per chunk read.
CHUNK_BYTES = 64 * 2 ** 20
#: Largest TaQL GROUPBY result held at once (casacore keeps it in memory).
TAQL_BATCH_BYTES = 256 * 2 ** 20
#: Accumulators larger than this are kept in a temporary memory-mapped file.
MEMMAP_BYTES = 2 * 2 ** 30


@dataclass
class AutoSums:
    """Per-(scan, field) sums of one spw's autocorrelations.

    ``sums[g]`` is ``(ncorr, nchan, nant)``; ``counts[g]`` is ``(nant,)``.
    """

    spw: int
    groups: list[tuple[int, int]]          # (scan, field) per index
    sums: np.ndarray
    counts: np.ndarray
    #: how the rows were summed: "casacore" (TaQL GROUPBY) or "numpy"
    route: str = "numpy"

    def index(self) -> dict[tuple[int, int], int]:
        return {g: i for i, g in enumerate(self.groups)}

    def mean(self, keys: Iterable[tuple[int, int]]):
        """Unweighted mean over all rows of the given (scan, field) groups;
        ``None`` when they hold no rows; NaN for antennas without rows."""
        idx = self.index()
        sel = [idx[k] for k in keys if k in idx]
        if not sel:
            return None
        s = self.sums[sel].sum(axis=0)
        c = self.counts[sel].sum(axis=0)
        if c.sum() == 0:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            return s / np.where(c > 0, c, np.nan)[None, None, :]


def _taql_list(values: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def read_auto_sums(vis: str, spw: int, ddids: Sequence[int], scans: Sequence[int],
                   corr_index: Sequence[int], nchan: int, nant: int,
                   data_column: str = "DATA", chunk_bytes: int = CHUNK_BYTES,
                   in_casacore: bool = True) -> AutoSums:
    """Sum the autocorrelations of ``scans`` in ``spw`` per (scan, field, antenna)
    (inside casacore unless ``in_casacore`` is False: the same sums)."""
    import casatools
    tb = casatools.table()
    tb.open(vis)
    try:
        where = (f"ANTENNA1==ANTENNA2 && DATA_DESC_ID IN {_taql_list(ddids)} "
                 f"&& SCAN_NUMBER IN {_taql_list(scans)}")
        q = tb.query(where)
        try:
            nrow = q.nrows()
            if nrow == 0:
                return AutoSums(spw, [], np.zeros((0, len(corr_index), nchan, nant)),
                                np.zeros((0, nant)))
            scan = q.getcol("SCAN_NUMBER")
            fld = q.getcol("FIELD_ID")
            ant = q.getcol("ANTENNA1")
            keys = scan.astype(np.int64) * 100000 + fld
            ukeys, ginv = np.unique(keys, return_inverse=True)
            groups = [(int(k // 100000), int(k % 100000)) for k in ukeys]
            ng = len(groups)
            nc = len(corr_index)
            shape = (ng, nc, nchan, nant)
            size = int(np.prod(shape)) * 8
            if size > MEMMAP_BYTES:
                fd, path = tempfile.mkstemp(prefix="renorm_acc_", suffix=".dat")
                os.close(fd)
                sums = np.memmap(path, dtype=float, mode="w+", shape=shape)
                os.unlink(path)
            else:
                sums = np.zeros(shape)
            counts = np.zeros((ng, nant))
            np.add.at(counts, (ginv, ant), 1.0)
            ncorr_all = 4 if max(corr_index) == 3 else max(corr_index) + 1
            row_bytes = max(1, ncorr_all * nchan * 8)
            step = max(1, int(chunk_bytes // row_bytes))
            cidx = list(corr_index)
            gindex = {g: i for i, g in enumerate(groups)}
            if in_casacore and _sums_in_casacore(tb, vis, ddids, data_column, cidx, gindex,
                                                 sums, step, ncorr_all * nchan * 8 * nant):
                return AutoSums(spw, groups, sums, counts, "casacore")
            for r0 in range(0, nrow, step):
                n = min(step, nrow - r0)
                d = q.getcol(data_column, startrow=r0, nrow=n).real   # a view
                if cidx != list(range(d.shape[0])):
                    d = d[cidx]                                      # (nc, nchan, n)
                comb = ginv[r0:r0 + n] * nant + ant[r0:r0 + n]
                order = np.argsort(comb, kind="stable")
                cs = comb[order]
                starts = np.concatenate([[0], np.nonzero(np.diff(cs))[0] + 1])
                # rows gathered as whole blocks (getcol's arrays are row-major in
                # memory) and summed row after row per (group, antenna) in float64
                part = np.add.reduceat(d.T[order], starts, axis=0, dtype=float)  # (nu, nchan, nc)
                u = cs[starts]
                sums[u // nant, :, :, u % nant] += part.transpose(0, 2, 1)
        finally:
            q.close()
    finally:
        tb.close()
    return AutoSums(spw, groups, sums, counts)


def _sums_in_casacore(tb, vis: str, ddids: Sequence[int], data_column: str, cidx: list[int],
                      gindex: dict[tuple[int, int], int], sums: np.ndarray, step: int,
                      group_bytes: int, batch_bytes: int | None = None) -> bool:
    """Add the per-(scan, field, antenna) sums of the real parts to ``sums``
    with TaQL ``GROUPBY`` (``gsums``): casacore reads each row once and adds
    the rows of a group in row order in double precision, so only the sums
    reach Python (moving every row's complex spectrum into numpy cost more
    than the reading).  Scans go in batches whose result (``group_bytes``
    per (scan, field)) stays under ``batch_bytes``.  False when TaQL cannot
    do it (then the caller reads the rows itself)."""
    batch_bytes = TAQL_BATCH_BYTES if batch_bytes is None else batch_bytes
    per_scan: dict[int, int] = {}
    for k, _ in gindex:
        per_scan[k] = per_scan.get(k, 0) + group_bytes
    batches: list[list[int]] = [[]]
    size = 0
    for k in sorted(per_scan):
        if batches[-1] and size + per_scan[k] > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(k)
        size += per_scan[k]
    for batch in batches:
        where = (f"ANTENNA1==ANTENNA2 && DATA_DESC_ID IN {_taql_list(ddids)} "
                 f"&& SCAN_NUMBER IN {_taql_list(batch)}")
        try:
            q = tb.taql(f'SELECT SCAN_NUMBER*1.0 AS RN_SCAN, FIELD_ID*1.0 AS RN_FIELD, '
                        f'ANTENNA1*1.0 AS RN_ANT, gsums(real({data_column})) AS RN_SUM '
                        f'FROM "{os.path.abspath(vis)}" WHERE {where} '
                        f'GROUPBY SCAN_NUMBER, FIELD_ID, ANTENNA1')
        except Exception:
            sums[...] = 0.0
            return False
        try:
            n = q.nrows()
            scan = q.getcol("RN_SCAN").astype(np.int64)
            fld = q.getcol("RN_FIELD").astype(np.int64)
            ant = q.getcol("RN_ANT").astype(np.int64)
            gi = np.array([gindex[(int(k), int(f))] for k, f in zip(scan, fld)], dtype=np.int64)
            for r0 in range(0, n, step):
                m = min(step, n - r0)
                part = np.asarray(q.getcol("RN_SUM", startrow=r0, nrow=m), dtype=float)
                if cidx != list(range(part.shape[0])):
                    part = part[cidx]
                sums[gi[r0:r0 + m], :, :, ant[r0:r0 + m]] += np.moveaxis(part, 2, 0)
        except Exception:
            sums[...] = 0.0
            return False
        finally:
            q.close()
    return True


def read_xc_good_antennas(vis: str, ddid_to_spw: dict[int, int], scans: Sequence[int]
                          ) -> dict[tuple[int, int, int], set[int]]:
    """Antennas with at least one unflagged cross-correlation sample, per
    (spw, scan, field)."""
    import casatools
    tb = casatools.table()
    out: dict[tuple[int, int, int], set[int]] = {}
    where = (f"ANTENNA1!=ANTENNA2 && DATA_DESC_ID IN {_taql_list(list(ddid_to_spw))} "
             f"&& SCAN_NUMBER IN {_taql_list(scans)} && !all(FLAG)")
    cols = "SCAN_NUMBER, FIELD_ID, DATA_DESC_ID, ANTENNA1, ANTENNA2"
    tb.open(vis)
    try:
        try:  # reduced to unique baselines per group inside casacore: small result
            q = tb.taql(f'SELECT {cols} FROM "{os.path.abspath(vis)}" WHERE {where} GROUPBY {cols}')
        except Exception:
            q = tb.query(where, columns=cols.replace(" ", ""))
        try:
            if q.nrows() == 0:
                return out
            scan = q.getcol("SCAN_NUMBER")
            fld = q.getcol("FIELD_ID")
            dd = q.getcol("DATA_DESC_ID")
            a1 = q.getcol("ANTENNA1")
            a2 = q.getcol("ANTENNA2")
        finally:
            q.close()
    finally:
        tb.close()
    spw = np.array([ddid_to_spw[int(d)] for d in dd]) if len(dd) else np.array([], int)
    key = np.stack([spw, scan, fld], axis=1)
    ukey, inv = np.unique(key, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    for i, k in enumerate(ukey):
        m = inv == i
        out[(int(k[0]), int(k[1]), int(k[2]))] = set(np.unique(np.concatenate([a1[m], a2[m]])).tolist())
    return out


def read_auto_rows_only(vis: str, ddids: Sequence[int], scans: Sequence[int],
                        data_column: str = "DATA", chunk_bytes: int = CHUNK_BYTES) -> int:
    """Read the same autocorrelation rows and do nothing with them (the
    benchmark's floor); returns the number of rows read."""
    import casatools
    tb = casatools.table()
    tb.open(vis)
    total = 0
    try:
        for d in ddids:
            q = tb.query(f"ANTENNA1==ANTENNA2 && DATA_DESC_ID=={int(d)} "
                         f"&& SCAN_NUMBER IN {_taql_list(scans)}")
            try:
                nrow = q.nrows()
                if nrow == 0:
                    continue
                shape = q.getcell(data_column, 0).shape
                step = max(1, int(chunk_bytes // max(1, int(np.prod(shape)) * 8)))
                for r0 in range(0, nrow, step):
                    q.getcol(data_column, startrow=r0, nrow=min(step, nrow - r0))
                total += nrow
            finally:
                q.close()
    finally:
        tb.close()
    return total
