"""The amplitude renormalization of a pipeline restore (hifa_renorm, restore.md §3 step 8).

When the manifest's ``<asdm>`` records ``<hifa_renorm apply="True" .../>``
the pipeline's restore re-runs ``alma_renorm`` with the stored parameters on
the imported ``<uid>.ms``.  Here the scaling spectra come from our own
engine (:mod:`almaqa_casa.renorm`, the autocorrelation heuristic of
``almarenorm.py``) and the correction is written as the pipeline has done
since 2024: a ``B TSYS`` table, ``<working>/<uid>.ms.renorm.tbl``, applied
to the TARGET intent only (``interp='nearest,linear'``,
``gainfield='nearest'``, ``calwt=True``) together with the calapply.txt
tables.  Both restore routes (``applycal`` into the MS, or a cal library on
the fly) get the same applications, so they give the same data.

Pure: :func:`parse_request`, :func:`with_renorm`.  I/O: :func:`compute`,
:func:`table_spws`, :func:`applications`.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..delivery.calapply import CalApplication
from ..errors import AlmaqaError

__all__ = [
    "ENGINE",
    "RenormRequest",
    "applications",
    "caltable_path",
    "compute",
    "delivered_renorm_table",
    "parse_request",
    "prepare",
    "table_spws",
    "with_renorm",
]

#: Goes into the plan's step parameters (and so the step digest): a restore
#: record written by a version that did not apply the renormalization is
#: not taken as complete.
ENGINE = "almaqa_casa.renorm/B-TSYS-table/1"

#: What the renormalization table adds to a TARGET application (pipeline
#: ``CalFrom(caltype='tsys', interp='nearest,linear')``, PIPE-2269).
INTERP = "nearest,linear"
GAINFIELD = "nearest"


class RenormParamError(AlmaqaError, ValueError):
    """A ``hifa_renorm`` attribute of the manifest cannot be read."""


@dataclasses.dataclass(frozen=True)
class RenormRequest:
    """The ``hifa_renorm`` parameters the manifest stores for one EB."""

    apply: bool
    threshold: float = 1.02
    spw: str = ""
    excludechan: tuple = ()          # sorted (spw, ranges) pairs
    atm_auto_exclude: bool = False
    bwthreshspw: tuple = ()          # sorted (spw, Hz) pairs
    correct_atm: bool = False

    def as_dict(self) -> dict:
        return {"apply": self.apply, "threshold": self.threshold, "spw": self.spw,
                "excludechan": dict(self.excludechan), "atm_auto_exclude": self.atm_auto_exclude,
                "bwthreshspw": dict(self.bwthreshspw), "correct_atm": self.correct_atm}


def _bool(v: Any, name: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "t", "yes"):
        return True
    if s in ("false", "0", "f", "no", "none", ""):
        return False
    raise RenormParamError(f"hifa_renorm {name}={v!r} is not a boolean")


def _literal(v: Any, name: str) -> Any:
    if not isinstance(v, str):
        return v
    s = v.strip()
    if not s:
        return {}
    try:
        return ast.literal_eval(s)          # data, never code
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise RenormParamError(f"hifa_renorm {name}={v!r} is not a literal dict") from None


def _spw_dict(v: Any, name: str, as_float: bool) -> tuple:
    d = _literal(v, name)
    if isinstance(d, list):         # one dict per MS in the pipeline call; ours is one MS
        d = d[0] if len(d) == 1 else {}
    if not isinstance(d, dict):
        raise RenormParamError(f"hifa_renorm {name}={v!r} is not a dict")
    out = []
    for k, val in d.items():
        try:
            key = str(int(str(k).strip()))
            val = float(val) if as_float else str(val)
        except (TypeError, ValueError):
            raise RenormParamError(f"hifa_renorm {name}: entry {k!r}: {val!r} cannot be read") from None
        out.append((key, val))
    return tuple(sorted(out))


def parse_request(attrs: dict | None) -> RenormRequest | None:
    """The request of a manifest ``<hifa_renorm>`` element (attributes as strings).

    ``None`` when the manifest records no renormalization.  Raises
    :class:`RenormParamError` on an unreadable attribute.
    """
    if attrs is None:
        return None
    spw = attrs.get("spw", "")
    if isinstance(spw, (list, tuple)):
        spw = ",".join(str(s) for s in spw)
    spw = str(spw).strip().strip("[]").replace(" ", "")
    try:
        threshold = float(attrs.get("threshold", 1.02))
    except (TypeError, ValueError):
        raise RenormParamError(f"hifa_renorm threshold={attrs.get('threshold')!r} is not a number") from None
    return RenormRequest(
        apply=_bool(attrs.get("apply", attrs.get("createcaltable", "True")), "apply"),
        threshold=threshold, spw=spw,
        excludechan=_spw_dict(attrs.get("excludechan", "{}"), "excludechan", False),
        atm_auto_exclude=_bool(attrs.get("atm_auto_exclude", "False"), "atm_auto_exclude"),
        bwthreshspw=_spw_dict(attrs.get("bwthreshspw", "{}"), "bwthreshspw", True),
        correct_atm=_bool(attrs.get("correct_atm", "False"), "correct_atm"))


def delivered_renorm_table(apps: Sequence[CalApplication]) -> str | None:
    """A renormalization table the calapply lines already apply, if any.

    Since 2024 the pipeline exports its ``hifa_renorm`` table with the other
    caltables (name with ``hifa_renorm`` or ``renorm``); it must not be
    applied a second time.
    """
    for a in apps:
        for t in a.gaintable:
            name = os.path.basename(t.rstrip("/")).lower()
            if "hifa_renorm" in name or ".renorm." in name or name.endswith(".renorm.tbl"):
                return os.path.basename(t.rstrip("/"))
    return None


def caltable_path(working: str, uid: str) -> str:
    """``<working>/<uid>.ms.renorm.tbl`` (the pipeline's default name)."""
    return os.path.join(working, f"{uid}.ms.renorm.tbl")


# ---- the calapply lines with the renormalization table -----------------------------
def _spw_ids(sel: str) -> list[int] | None:
    """Ids of a plain spw selection (``'17,19'``, ``'0~3'``); ``None`` otherwise."""
    out: list[int] = []
    for part in sel.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("~")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def with_renorm(apps: Sequence[CalApplication], caltable: str, spws: Sequence[int],
                all_spws: Sequence[int]) -> list[CalApplication]:
    """Calapply lines with the renormalization table added for the TARGET intent.

    A line whose intent includes TARGET (or selects every intent) is split:
    the other intents keep the line as it was; a TARGET-only line on the
    renormalized ``spws`` gets the table appended (``nearest,linear``,
    gainfield ``nearest``, no spwmap, ``calwt=True``, as the pipeline
    registers it); the line's other spws (of ``all_spws`` when it selects
    every spw) stay in a TARGET-only line without it, since
    ``calflagstrict`` flags data a table has no solution for.

    Raises
    ------
    RenormParamError
        A TARGET line's spw selection is not a plain id list (``'17,19'``,
        ``'0~3'``), so it cannot be split.
    """
    from ..delivery.calapply import APPLY_INTENTS
    spws = sorted(set(int(s) for s in spws))
    out: list[CalApplication] = []
    for a in apps:
        intents = [i.strip().upper() for i in a.intent.split(",") if i.strip()]
        if intents and "TARGET" not in intents:
            out.append(a)
            continue
        others = [i for i in (intents or APPLY_INTENTS) if i != "TARGET"]
        if others:
            out.append(dataclasses.replace(a, intent=",".join(others)))
        have = _spw_ids(a.spw) if a.spw else sorted(int(s) for s in all_spws)
        if have is None:
            raise RenormParamError(f"{a.source}: spw selection {a.spw!r} cannot be split into "
                                   "renormalized and other spws")
        rn = [s for s in have if s in spws]
        rest = [s for s in have if s not in spws]
        if rest:
            out.append(dataclasses.replace(a, intent="TARGET", spw=",".join(map(str, rest))))
        if rn:
            out.append(dataclasses.replace(
                a, intent="TARGET", spw=",".join(map(str, rn)),
                gaintable=a.gaintable + (caltable,), gainfield=a.gainfield + (GAINFIELD,),
                spwmap=a.spwmap + ((),), interp=a.interp + (INTERP,), calwt=a.calwt + (True,),
                source=f"{a.source} + renormalization"))
    return out


# ---- I/O ----------------------------------------------------------------------------
def _n_autocorr(vis: str) -> int:
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        q = tb.query("ANTENNA1==ANTENNA2", columns="ANTENNA1")
        try:
            return q.nrows()
        finally:
            q.close()
    finally:
        tb.close()


def compute(vis: str, request: RenormRequest, caltable: str,
            log: Callable[[str, str], None], label: str = "", *,
            atm_every_spw: bool = False) -> dict:
    """Compute the renormalization of ``vis`` and write ``caltable`` if it is needed.

    The atmospheric false-positive check runs only for the spws whose scaling
    exceeds the threshold (the only ones it can warn for; the table does not
    depend on it unless ``atm_auto_exclude``); ``atm_every_spw`` runs it for
    every spw, as hifa_renorm does (the benchmark's reference).

    Returns a JSON-able record: ``applied`` (a table to apply was written),
    ``caltable``, ``spws`` (renormalized), ``max_scaling`` per target/spw,
    ``seconds`` and ``warning`` (why nothing was applied, when it should have
    been).  Never raises for data reasons: a renormalization that cannot be
    computed is a warning and the restore continues without it.
    """
    from ..atomic import remove
    from ..renorm import engine, inputs
    from ..renorm.caltable import write_correction

    t0 = time.perf_counter()
    rec: dict = {"requested": request.as_dict(), "applied": False, "caltable": None,
                 "spws": [], "max_scaling": {}, "seconds": 0.0, "warning": None}
    remove(caltable)                      # never apply a table of an earlier run
    name = label or os.path.basename(vis.rstrip("/"))

    def done(warning: str | None = None) -> dict:
        rec["warning"] = warning
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        return rec

    if not request.apply:
        return done()
    if _n_autocorr(vis) == 0:
        return done(f"{name}: the manifest records an applied amplitude renormalization "
                    "(hifa_renorm) but the MS has no autocorrelations to compute it from; "
                    "it is NOT applied")
    if request.correct_atm:
        log(f"{name}: hifa_renorm correct_atm=True is experimental and not reproduced "
            "(the pipeline removed it in 2024); the correction is computed without it", "WARN")
    try:
        opt = engine.Options(threshold=request.threshold, spws=inputs.spw_list(request.spw),
                             excludechan=dict(request.excludechan),
                             atm_auto_exclude=request.atm_auto_exclude,
                             bwthreshspw=dict(request.bwthreshspw), keep_spectra=True,
                             atm_only_if_exceeding=not atm_every_spw)
        rr = engine.run(vis, opt, log=lambda m: log(m, "INFO"))
    except Exception as exc:   # the restore goes on without it
        return done(f"{name}: the amplitude renormalization could not be computed "
                    f"({type(exc).__name__}: {exc}); it is NOT applied")
    errors = [r.error for r in rr.results if r.error]
    for r in rr.results:
        rec["max_scaling"].setdefault(r.target, {})[str(r.spw)] = round(float(r.max_rn), 6)
    rec["qa"] = _qa(rr, request, name)
    if rr.tdm_only:
        rec["note"] = "no FDM science spw: renormalization unnecessary"
        return done()
    if not any(r.exceeds for r in rr.results):
        if errors:
            return done(f"{name}: the amplitude renormalization could not be computed "
                        f"({'; '.join(errors)}); it is NOT applied")
        rec["note"] = (f"maximum scaling below the threshold {request.threshold}: "
                       "no correction needed")
        return done()
    write_correction(rr, caltable)
    rec.update(applied=True, caltable=caltable,
               spws=sorted({int(r.spw) for r in rr.results if r.exceeds}))
    return done("; ".join(errors) if errors else None)


def _qa(rr, request: RenormRequest, name: str) -> dict:
    """The pipeline's hifa_renorm QA scores of the restore's computation
    (:mod:`almaqa_casa.renorm.qa`): per target and spw, and for the run."""
    from ..renorm import qa
    out: dict = {"run": [s.as_dict() for s in qa.ms_scores(rr.tdm_only,
                                                            [rr.band] if rr.fdm_spws else [])],
                 "spw": {}, "unrealistic": [], "suggested_excludechan": {}}
    for r in rr.results:
        scores = qa.spw_scores(name, r.target, r.spw, r.max_rn, r.threshold,
                               corrected=bool(r.exceeds and request.apply),
                               seg_change=r.seg_change, atm_warning=r.atm_warning,
                               atm_exclude_cmd=r.atm_exclude_cmd,
                               excludechan=dict(request.excludechan),
                               atm_auto_exclude=request.atm_auto_exclude)
        out["spw"].setdefault(r.target, {})[str(r.spw)] = [s.as_dict() for s in scores]
        if qa.unrealistic(r.max_rn):
            out["unrealistic"].append(f"{r.target} spw {r.spw}: {r.max_rn}")
        if r.atm_warning and r.atm_exclude_cmd:
            out["suggested_excludechan"].setdefault(r.target, {})[str(r.spw)] = r.atm_exclude_cmd
    return out


def table_spws(caltable: str) -> list[int]:
    """Spectral windows that ``caltable`` corrects (a scaling other than 1.0)."""
    from casatools import table
    tb = table()
    tb.open(caltable)
    try:
        out = []
        for s in np.unique(tb.getcol("SPECTRAL_WINDOW_ID")):
            q = tb.query(f"SPECTRAL_WINDOW_ID=={int(s)}", columns="FPARAM")
            try:
                if np.any(q.getcol("FPARAM") != 1.0):
                    out.append(int(s))
            finally:
                q.close()
        return out
    finally:
        tb.close()


def ms_spws(vis: str) -> list[int]:
    """Spectral window ids of ``vis``."""
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
    try:
        return list(range(tb.nrows()))
    finally:
        tb.close()


def applications(apps: Sequence[CalApplication], working: str, uid: str,
                 vis: str) -> list[CalApplication]:
    """The calapply lines of ``uid`` for ``vis``, with the renormalization table
    when :func:`compute` wrote one."""
    ct = caltable_path(working, uid)
    if not os.path.isdir(ct):
        return list(apps)
    return with_renorm(apps, ct, table_spws(ct), ms_spws(vis))


def prepare(vis: str, params: dict | None, apps: Sequence[CalApplication], working: str,
            uid: str, extra: dict, log: Callable[[str, str], None], *,
            atm_every_spw: bool = False) -> list[CalApplication]:
    """The restore's renormalization of ``vis`` (after the flag restore).

    ``params`` are the plan's step parameters (:func:`parse_request` fields).
    Writes ``<working>/<uid>.ms.renorm.tbl`` when a correction is needed and
    returns the calapply lines to apply (with the table for TARGET, or
    unchanged).  Records what was done in ``extra['renorm']``; anything that
    prevents the correction goes to ``extra['warnings']`` and the log, and
    the restore continues without it.
    """
    from ..atomic import remove
    ct = caltable_path(working, uid)
    if not params or not params.get("apply"):
        remove(ct)
        return list(apps)
    req = parse_request({k: v for k, v in params.items()
                         if k not in ("caltable", "engine", "delivered_table")})
    rec = compute(vis, req, ct, log, label=f"{uid}.ms", atm_every_spw=atm_every_spw)
    extra["renorm"] = rec

    def warn(msg: str) -> None:
        log(msg, "WARN")
        extra.setdefault("warnings", []).append(msg)

    if rec["warning"]:
        warn(rec["warning"])
    if not rec["applied"]:
        if not rec["warning"]:
            log(f"{uid}: amplitude renormalization (hifa_renorm) computed in {rec['seconds']} s: "
                f"{rec.get('note', 'nothing to apply')}; maximum scaling {rec['max_scaling']}",
                "INFO")
        return list(apps)
    try:
        out = applications(apps, working, uid, vis)
    except RenormParamError as exc:
        remove(ct)
        rec.update(applied=False, caltable=None)
        warn(f"{uid}: the amplitude renormalization is NOT applied: {exc}")
        return list(apps)
    log(f"{uid}: amplitude renormalization (hifa_renorm) applied to the TARGET data of spw "
        f"{rec['spws']} with {os.path.basename(ct)} (maximum scaling {rec['max_scaling']}; "
        f"computed in {rec['seconds']} s)", "INFO")
    return out
