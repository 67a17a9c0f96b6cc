"""What the post-restore verification reads from a restored MS (I/O, no verdicts).

Cheap by construction: metadata columns and TaQL counts evaluated inside
casacore (row selections, ``GROUPBY`` sums of the FLAG column), and the
calibrated data only of a few sampled rows per selection.  The decisions
are in :mod:`.verify_rules`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from .verify_rules import obsmode_intents

__all__ = ["MSMeta", "column_unit", "corr_taql", "count_rows", "flag_summary", "flux_sample", "history_rows", "read_meta",
           "sample_rows", "uncovered_groups"]


@dataclasses.dataclass
class MSMeta:
    """The metadata the checks need (one read per MS)."""

    vis: str
    field_names: list[str]
    state_modes: list[str]
    dd_spw: list[int]
    spw_freqs: dict[int, np.ndarray]
    antenna_names: list[str]
    science_spws: list[int]
    columns: list[str]
    nrows: int

    def intents_of_state(self, state: int) -> str:
        if state < 0 or state >= len(self.state_modes):
            return "UNKNOWN"
        return ",".join(sorted(obsmode_intents(self.state_modes[state]))) or "OTHER"

    def ddids_of(self, spws: Sequence[int]) -> list[int]:
        return [d for d, s in enumerate(self.dd_spw) if s in set(spws)]


def corr_taql(auto: bool = False, prefix: str = "") -> str:
    """The rows a check reads: cross-correlations, or (total power) autocorrelations."""
    return f"{prefix}ANTENNA1{'==' if auto else '!='}{prefix}ANTENNA2"


def _col(tb, name: str) -> list:
    return list(tb.getcol(name)) if tb.nrows() else []


def _subtable_column(vis: str, subtable: str, name: str) -> list:
    """One column of a subtable of ``vis`` (empty when it has no rows)."""
    import casatools
    tb = casatools.table()
    tb.open(os.path.join(vis, subtable))
    try:
        return _col(tb, name)
    finally:
        tb.close()


def read_meta(vis: str) -> MSMeta:
    """Field names, STATE obs modes, spw of each data description, channel
    frequencies, antennas, science spws (OBSERVE_TARGET, > 4 channels)."""
    import casatools
    fields = [str(n) for n in _subtable_column(vis, "FIELD", "NAME")]
    modes = read_states(vis)
    dd_spw = read_dd_spw(vis)
    ants = [str(n) for n in _subtable_column(vis, "ANTENNA", "NAME")]
    tb = casatools.table()
    tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
    freqs = {i: np.asarray(tb.getcell("CHAN_FREQ", i), float) for i in range(tb.nrows())}
    tb.close()
    tb.open(vis)
    try:
        cols = list(tb.colnames())
        nrows = tb.nrows()
        target_states = [i for i, m in enumerate(modes) if "TARGET" in obsmode_intents(m)]
        sci: set[int] = set()
        if target_states and nrows:
            q = tb.taql(f'SELECT DISTINCT DATA_DESC_ID FROM "{os.path.abspath(vis)}" WHERE '
                        f"STATE_ID IN [{','.join(map(str, target_states))}]")
            try:
                sci = {dd_spw[int(d)] for d in _col(q, "DATA_DESC_ID")}
            finally:
                q.close()
    finally:
        tb.close()
    science = sorted(s for s in sci if len(freqs.get(s, ())) > 4)
    return MSMeta(vis, fields, modes, dd_spw, freqs, ants, science, cols, nrows)


def _taql(vis: str, query: str) -> dict[str, np.ndarray]:
    import casatools
    tb = casatools.table()
    tb.open(vis)
    try:
        q = tb.taql(query)
        try:
            return {c: np.asarray(q.getcol(c)) if q.nrows() else np.array([])
                    for c in q.colnames()}
        finally:
            q.close()
    finally:
        tb.close()


def count_rows(vis: str, where: str) -> int:
    """Rows of ``vis`` matching the TaQL predicate ``where``."""
    import casatools
    tb = casatools.table()
    tb.open(vis)
    try:
        q = tb.query(where, columns="ANTENNA1")
        try:
            return int(q.nrows())
        finally:
            q.close()
    finally:
        tb.close()


def uncovered_groups(vis: str, meta: MSMeta, scope: str, covered: str,
                     auto: bool = False) -> tuple[list[dict], int]:
    """Unflagged cross-correlation (``auto``: autocorrelation) rows in ``scope`` not
    matching ``covered``, grouped by intent, field and spw; and the count of
    unflagged rows in scope."""
    base = f"{corr_taql(auto)} && {scope} && !all(FLAG)"
    in_scope = count_rows(vis, base)
    d = _taql(vis, f"SELECT STATE_ID AS st I4, FIELD_ID AS fld I4, DATA_DESC_ID AS dd I4, "
                   f'gcount() AS n R8 FROM "{os.path.abspath(vis)}" WHERE {base} && '
                   f"!({covered}) GROUPBY STATE_ID, FIELD_ID, DATA_DESC_ID")
    out: dict[tuple[str, str, int], int] = {}
    for st, f, dd, n in zip(d.get("st", []), d.get("fld", []), d.get("dd", []), d.get("n", [])):
        key = (meta.intents_of_state(int(st)), meta.field_names[int(f)], meta.dd_spw[int(dd)])
        out[key] = out.get(key, 0) + int(n)
    return [{"intent": k[0], "field": k[1], "spw": k[2], "rows": n}
            for k, n in sorted(out.items())], in_scope


def sample_rows(vis: str, where: str, column: str, meta: MSMeta, label: str,
                nrows: int = 16, compare: str = "", auto: bool = False) -> list[dict]:
    """Up to ``nrows`` evenly spread unflagged-row samples per spw of a selection
    (cross-correlations; ``auto``: autocorrelations, total power).

    Per spw: unflagged samples read, how many are non-finite, how many zero,
    and (``compare``, e.g. 'DATA' or 'FLOAT_DATA') how many equal that column."""
    import casatools
    tb = casatools.table()
    out = []
    tb.open(vis)
    try:
        for dd in sorted(set(range(len(meta.dd_spw)))):
            q = tb.query(f"{where} && DATA_DESC_ID=={dd} && {corr_taql(auto)} && !all(FLAG)",
                         columns=f"{column},FLAG" + (f",{compare}" if compare else ""))
            try:
                n = q.nrows()
                if n == 0:
                    continue
                rows = np.unique(np.linspace(0, n - 1, min(nrows, n)).astype(int))
                sub = q.selectrows(rows.tolist())
                try:
                    data = sub.getcol(column)
                    flag = sub.getcol("FLAG")
                    ref = sub.getcol(compare) if compare else None
                finally:
                    sub.close()
            finally:
                q.close()
            ok = ~flag
            v = data[ok]
            out.append({"label": f"{label} spw {meta.dd_spw[dd]}", "spw": meta.dd_spw[dd],
                        "rows": int(rows.size), "unflagged": int(ok.sum()),
                        "nonfinite": int((~np.isfinite(v)).sum()),
                        "zero": int((v == 0).sum()),
                        "unchanged": None if ref is None else int((ref[ok] == v).sum())})
    finally:
        tb.close()
    return out


def flag_summary(vis: str, flag_table: str = "", auto: bool = False) -> list[dict]:
    """Flag counts of the cross-correlations (``auto``: the autocorrelations, total
    power) per scan, intent and spw.

    With ``flag_table`` (a flag version of ``vis``, row-aligned, e.g.
    ``<ms>.flagversions/flags.Pipeline_Final``) the counts are that
    version's; else the MS's own FLAG column.  One GROUPBY query evaluated
    in casacore (the FLAG column is read once, not into Python)."""
    meta_modes = read_states(vis)
    ddspw = read_dd_spw(vis)
    src = "m"
    frm = f'"{os.path.abspath(vis)}" m'
    if flag_table:
        frm += f', "{os.path.abspath(flag_table)}" p'
        src = "p"
    d = _taql(vis, f"SELECT m.SCAN_NUMBER AS scan I4, m.STATE_ID AS st I4, m.DATA_DESC_ID AS dd "
                   f"I4, gcount() AS nrow R8, gsum(iif(all({src}.FLAG),1,0)) AS frow R8, "
                   f"gsum(ntrue({src}.FLAG)) AS fs R8, gsum(nelements({src}.FLAG)) AS ns R8 "
                   f"FROM {frm} WHERE {corr_taql(auto, 'm.')} GROUPBY m.SCAN_NUMBER, m.STATE_ID, "
                   "m.DATA_DESC_ID")
    out: dict[tuple[int, str, int], list[int]] = {}
    for k in range(d["scan"].size if "scan" in d else 0):
        st = int(d["st"][k])
        intent = (",".join(sorted(obsmode_intents(meta_modes[st]))) or "OTHER"
                  if 0 <= st < len(meta_modes) else "UNKNOWN")
        key = (int(d["scan"][k]), intent, ddspw[int(d["dd"][k])])
        acc = out.setdefault(key, [0, 0, 0, 0])
        for i, c in enumerate(("nrow", "frow", "ns", "fs")):
            acc[i] += int(d[c][k])
    return [{"scan": k[0], "intent": k[1], "spw": k[2], "rows": v[0], "flagged_rows": v[1],
             "samples": v[2], "flagged_samples": v[3]} for k, v in sorted(out.items())]


def read_states(vis: str) -> list[str]:
    """The STATE obs modes of ``vis``, by state id."""
    return [str(m) for m in _subtable_column(vis, "STATE", "OBS_MODE")]


def read_dd_spw(vis: str) -> list[int]:
    """The spw of each data description of ``vis``."""
    return [int(s) for s in _subtable_column(vis, "DATA_DESCRIPTION", "SPECTRAL_WINDOW_ID")]


def flux_sample(vis: str, field_ids: Sequence[int], spw: int, column: str, meta: MSMeta,
                uvrange_m: tuple[float, float] = (0.0, 0.0), max_rows: int = 400) -> dict | None:
    """The calibrated amplitude of a point-like calibrator in one spw, from a sample.

    Per sampled row (evenly spread over the field's unflagged
    cross-correlations), the real part of the parallel hands averaged over
    unflagged channels (a vector average: the calibrated phase of a
    calibrator at the phase centre is zero).  Returns the mean, its standard
    error (from the scatter of per-baseline means over the antennas, which
    also holds residual antenna gain errors), the means on the shorter and
    the longer half of the baselines, the frequencies of the unflagged
    channels, and the counts; None when nothing is unflagged.
    """
    import casatools
    dds = meta.ddids_of([spw])
    if not dds or not field_ids:
        return None
    where = (f"FIELD_ID IN [{','.join(map(str, field_ids))}] && DATA_DESC_ID IN "
             f"[{','.join(map(str, dds))}] && ANTENNA1!=ANTENNA2 && !all(FLAG)")
    lo, hi = uvrange_m
    tb = casatools.table()
    tb.open(vis)
    try:
        q = tb.query(where, columns=f"{column},FLAG,UVW,ANTENNA1,ANTENNA2")
        try:
            uv = np.hypot(*q.getcol("UVW")[:2]) if q.nrows() else np.array([])
            idx = np.flatnonzero((uv >= lo) & (uv <= hi)) if hi > 0 else np.arange(uv.size)
            if idx.size == 0:
                return None
            rows = idx[np.unique(np.linspace(0, idx.size - 1, min(max_rows, idx.size)).astype(int))]
            sub = q.selectrows(rows.tolist())
            try:
                data, flag = sub.getcol(column), sub.getcol("FLAG")
                uvw, a1, a2 = sub.getcol("UVW"), sub.getcol("ANTENNA1"), sub.getcol("ANTENNA2")
            finally:
                sub.close()
        finally:
            q.close()
    finally:
        tb.close()
    par = [0, data.shape[0] - 1] if data.shape[0] in (2, 4) else [0]
    d = np.ma.array(data[par].real, mask=flag[par])
    rowv = d.mean(axis=(0, 1))
    good = ~np.ma.getmaskarray(rowv)
    if not good.any():
        return None
    rowv = np.asarray(rowv[good], float)
    uvd = np.hypot(uvw[0], uvw[1])[good]
    bl = (a1 * 100000 + a2)[good]
    ubl = np.unique(bl)
    blm = np.array([rowv[bl == b].mean() for b in ubl])
    nant = len(set(a1[good]) | set(a2[good]))
    sem = float(blm.std(ddof=1) / np.sqrt(max(nant, 1))) if blm.size > 1 else float(rowv.std())
    med = np.median(uvd)
    short = rowv[uvd <= med]
    long = rowv[uvd > med]
    chan_ok = ~np.all(flag[par][:, :, good], axis=(0, 2))
    freqs = meta.spw_freqs[spw][chan_ok] if meta.spw_freqs.get(spw) is not None else np.array([])
    return {"mean": float(rowv.mean()), "sem": sem, "rows": int(rowv.size),
            "baselines": int(ubl.size), "antennas": int(nant),
            "short_long": (float(short.mean()) if short.size else float("nan"),
                           float(long.mean()) if long.size else float("nan")),
            "freqs": [float(x) for x in freqs], "uvrange_m": [lo, hi]}


def column_unit(vis: str, column: str) -> str:
    """The UNIT keyword of a data column ('' when it has none)."""
    import casatools
    tb = casatools.table()
    tb.open(vis)
    try:
        kw = tb.getcolkeywords(column) if column in tb.colnames() else {}
    finally:
        tb.close()
    return str((kw or {}).get("UNIT", ""))


def history_rows(vis: str) -> tuple[list[str], list[str]]:
    """(ORIGIN, MESSAGE) of ``vis``'s HISTORY, oldest first."""
    import casatools
    path = os.path.join(vis, "HISTORY")
    if not os.path.isdir(path):
        return [], []
    tb = casatools.table()
    tb.open(path)
    try:
        if tb.nrows() == 0:
            return [], []
        return [str(x) for x in tb.getcol("ORIGIN")], [str(x) for x in tb.getcol("MESSAGE")]
    finally:
        tb.close()
