"""Has the renormalization of an MS already been applied, and what to analyse (pure + I/O).

The scaling spectra must come from *uncorrected* autocorrelations: applying
the correction multiplies a target autocorrelation by ``N`` (``sqrt(N_a)``
twice), so the spectrum of corrected data shows ``N**2`` (1.0499 becomes
1.1023).  What an MS holds is read from what made it:

* the restore that made it (``qa_restore``'s result dict, or the records
  beside its outputs: ``<calibrated>/restore.json``,
  ``<calibrated>/.qa_restore/<uid>__ms.json``): whether the correction was
  applied, with which table, to which spws, and the factor;
* its HISTORY: our provenance line (``almaqa_casa provenance: {...}``),
  ``mstransform``/``split`` with ``datacolumn='corrected'`` (DATA holds
  calibrated data: a ``split.cal``), ``applycal`` with a renormalization
  table, the pipeline's MS edits before 2024 ("ReNormalization ...").

:func:`decide` turns that into what to do (pure): analyse DATA as it is;
analyse DATA with the applied table divided out (the correction is known
exactly); or, for corrected data whose table is not at hand, say so and do
not compute a factor.  ``apply=True`` is refused whenever a correction is
already applied.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PROVENANCE_PREFIX", "CorrectionState", "Evidence", "decide", "eb_of",
           "history_evidence", "parse_history", "restore_record", "state_for"]

from ..restore.provenance import PROVENANCE_PREFIX

_SUFFIXES = (".ms.split.cal", "_targets_line.ms", "_targets.ms", ".ms.split", ".ms")


@dataclasses.dataclass
class Evidence:
    """What an MS's HISTORY says (:func:`parse_history`)."""

    data_calibrated: bool = False          #: DATA holds calibrated data (split/mstransform)
    renorm_tables: list[str] = dataclasses.field(default_factory=list)   #: applycal'd
    ms_edit: bool = False                  #: the pipeline's pre-2024 in-place correction
    provenance: dict | None = None         #: qa_restore's provenance record


@dataclasses.dataclass
class CorrectionState:
    """What is known about an MS's renormalization, and how to analyse it."""

    vis: str
    data: str = "uncalibrated"              #: what DATA holds: 'uncalibrated' | 'calibrated'
    corrected_by: str | None = None         #: 'qa_restore' | 'applycal' | 'the pipeline (MS edit)'
    caltable: str | None = None
    spws: list[int] | None = None           #: corrected spws (None: unknown)
    factors: dict = dataclasses.field(default_factory=dict)   #: target -> spw -> restore's max
    source: str = ""                        #: where this was read
    analyse: str = "data"                   #: 'data' | 'undo' | 'none'
    note: str = ""

    @property
    def corrected(self) -> bool:
        return self.corrected_by is not None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"corrected": self.corrected}


# ---- pure --------------------------------------------------------------------------
def eb_of(vis: str) -> str:
    """The EB uid of a restore output (``<uid>.ms.split.cal`` -> ``<uid>``)."""
    name = os.path.basename(str(vis).rstrip("/"))
    for suf in _SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def _history_value(text: str) -> Any:
    """The value of one ``name = value`` HISTORY row (CASA's own text, read as a literal)."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip().strip('"')


def _is_renorm_table(name: str) -> bool:
    n = os.path.basename(str(name).rstrip("/")).lower()
    return "hifa_renorm" in n or ".renorm." in n or n.endswith(".renorm.tbl") or "renorm" in n


def parse_history(origins: Sequence[str], messages: Sequence[str]) -> Evidence:
    """Evidence from HISTORY rows (ORIGIN, MESSAGE), oldest first."""
    ev = Evidence()
    task = ""
    params: dict[str, Any] = {}

    def close() -> None:
        if task in ("mstransform", "split") and str(params.get("datacolumn", "")).lower() in (
                "corrected", "corrected_data"):
            ev.data_calibrated = True
        if task == "applycal":
            tables = params.get("gaintable") or []
            if isinstance(tables, str):
                tables = [tables]
            ev.renorm_tables += [t for t in tables if _is_renorm_table(t)]
        if task == "mstransform" and params.get("docallib") is True and params.get("callib"):
            ev.renorm_tables += [f"{params['callib']} (cal library)"] if _callib_has_renorm(
                str(params["callib"])) else []

    for origin, msg in zip(origins, messages):
        msg = str(msg)
        if msg.startswith(PROVENANCE_PREFIX):
            try:
                ev.provenance = json.loads(msg[len(PROVENANCE_PREFIX):])
            except ValueError:
                pass
            continue
        if "ReNormalization" in msg:
            ev.ms_edit = True
        m = re.match(r"taskname=(\w+)", msg)
        if m:
            close()
            task, params = m.group(1), {}
            continue
        m = re.match(r"(\w+)\s+=\s+(.*)$", msg, re.S)
        if m and task and str(origin) == task:
            params[m.group(1)] = _history_value(m.group(2))
    close()
    return ev


def _callib_has_renorm(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return any(_is_renorm_table(m) for m in re.findall(r"caltable='([^']*)'", fh.read()))
    except OSError:
        return False


def decide(vis: str, record: Mapping | None, ev: Evidence, record_source: str = "",
           table_exists: bool = False) -> CorrectionState:
    """What to analyse in ``vis`` given the restore's renorm record and its HISTORY.

    ``record`` is the restore's renormalization record of the EB
    (``applied``, ``caltable``, ``spws``, ``max_scaling``) or None.
    """
    st = CorrectionState(vis=vis)
    prov = ev.provenance or {}
    calibrated = ev.data_calibrated or prov.get("data") == "calibrated"
    st.data = "calibrated" if calibrated else "uncalibrated"
    rec = record if record is not None else prov.get("renorm")
    src = record_source if record is not None else ("MS HISTORY (qa_restore provenance)"
                                                    if prov.get("renorm") else "")
    if rec and rec.get("applied"):
        st.corrected_by = "qa_restore"
        st.caltable = rec.get("caltable")
        st.spws = [int(s) for s in rec.get("spws") or []]
        st.factors = dict(rec.get("max_scaling") or {})
        st.source = src
    elif rec and rec.get("delivered_table"):
        st.corrected_by = "the delivered calibration (calapply.txt)"
        st.caltable = rec.get("delivered_table")
        st.source = src
    elif ev.renorm_tables:
        lib = ev.renorm_tables[0].endswith("(cal library)")
        st.corrected_by = "mstransform (a cal library)" if lib else "applycal"
        st.caltable = ev.renorm_tables[0]
        st.source = "MS HISTORY (" + ("mstransform" if lib else "applycal") + ")"
    elif ev.ms_edit:
        st.corrected_by = "the pipeline (MS edit, before 2024)"
        st.source = "MS HISTORY (ReNormalization)"
    if not st.corrected or st.data == "uncalibrated":
        st.analyse = "data"
        if st.corrected:
            st.note = ("DATA holds the uncorrected data; the correction is in the calibrated "
                       "data only")
    elif st.corrected_by == "qa_restore" and table_exists:
        st.analyse = "undo"
        st.note = (f"DATA holds calibrated data with the correction applied; the correction "
                   f"({os.path.basename(str(st.caltable))}) is divided out of the target "
                   "autocorrelations, so the spectra are those of the uncorrected data")
    else:
        st.analyse = "none"
        st.note = (f"DATA holds calibrated data already corrected by {st.corrected_by}; the "
                   "scaling of corrected autocorrelations is the square of the factor, not the "
                   "factor, so it is not reported (analyse the uncorrected MS instead)")
    return st


# ---- I/O -----------------------------------------------------------------------------
def _calibrated_dirs(vis: str) -> list[str]:
    d = os.path.dirname(os.path.abspath(str(vis).rstrip("/")))
    out = [d]
    if os.path.basename(d) == "working":
        out.append(os.path.dirname(d))
    return out


def restore_record(vis: str, result: Mapping | None = None) -> tuple[dict | None, str]:
    """The restore's renormalization record of ``vis``'s EB, and where it was read.

    From ``result`` (qa_restore's dict), else ``<calibrated>/restore.json``,
    else the step record ``<calibrated>/.qa_restore/<uid>__ms.json``.
    """
    uid = eb_of(vis)
    for m in (result or {}).get("members", []) or []:
        if isinstance(m, Mapping) and uid in (m.get("renorm") or {}):
            return dict(m["renorm"][uid]), "qa_restore result"
    for cal in _calibrated_dirs(vis):
        rj = os.path.join(cal, "restore.json")
        try:
            with open(rj, encoding="utf-8") as fh:
                data = json.load(fh)
            rec = ((data.get("ebs") or {}).get(uid) or {}).get("renorm")
            if rec:
                return dict(rec), rj
        except (OSError, ValueError, AttributeError):
            pass
        step = os.path.join(cal, ".qa_restore", f"{uid}__ms.json")
        try:
            with open(step, encoding="utf-8") as fh:
                rec = (json.load(fh).get("extra") or {}).get("renorm")
            if rec:
                return dict(rec), step
        except (OSError, ValueError, AttributeError):
            pass
    return None, ""


def history_evidence(vis: str) -> Evidence:
    """:func:`parse_history` of ``vis``'s HISTORY table (empty when it has none)."""
    import casatools
    path = os.path.join(vis, "HISTORY")
    if not os.path.isdir(path):
        return Evidence()
    tb = casatools.table()
    tb.open(path)
    try:
        if tb.nrows() == 0:
            return Evidence()
        return parse_history(list(tb.getcol("ORIGIN")), list(tb.getcol("MESSAGE")))
    finally:
        tb.close()


def _table_path(rec_table: str | None, vis: str) -> str | None:
    """The table named by a record, or the same name in ``<calibrated>/working``."""
    if not rec_table:
        return None
    if os.path.isdir(rec_table):
        return rec_table
    for cal in _calibrated_dirs(vis):
        for cand in (os.path.join(cal, "working", os.path.basename(rec_table)),
                     os.path.join(cal, os.path.basename(rec_table))):
            if os.path.isdir(cand):
                return cand
    return None


def state_for(vis: str, result: Mapping | None = None) -> CorrectionState:
    """The :class:`CorrectionState` of one MS (reads records and HISTORY)."""
    record, where = restore_record(vis, result)
    ev = history_evidence(vis)
    rec = record if record is not None else (ev.provenance or {}).get("renorm")
    table = _table_path((rec or {}).get("caltable"), vis) if rec else None
    st = decide(vis, record, ev, where, table_exists=table is not None)
    if table is not None and st.corrected_by == "qa_restore":
        st.caltable = table
    return st
