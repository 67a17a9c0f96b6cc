"""Read hif_selfcal's restore record, ``selfcal.json`` (pure: text in, data out).

From Cycle 10 the pipeline self-calibrates science targets (``hif_selfcal``)
and exports, in ``<mous>.<recipe>.auxproducts.tgz``, what its restore-only
mode needs: ``<context>.selfcal.json`` and the self-calibration tables under
``sc_workdir_<field>_<band>/``.  The JSON (``Selfcal._scal_targets_to_json``:
``{"scal_targets": [...], "version", "datetime", "pipeline_version"}``)
holds one entry per clean target with ``field``, ``spw``, ``spw_real`` (vis
-> real spw selection), ``sc_workdir``, ``sc_exception`` and ``sc_lib``
(``SC_success``, ``vislist`` and per vis ``gaintable_final``,
``applycal_interpolate_final``, ``spwmap_final``).

:meth:`SelfcalRecord.applications` reproduces ``Selfcal._apply_scal``: a
target counts only if ``sc_exception`` is false and ``SC_success`` true; each
vis of its ``vislist`` (basename without extension, without a ``_cont``
suffix) matches every MS whose name starts with it (``<uid>_targets.ms`` and
``<uid>_targets_line.ms`` alike); its tables (``sc_workdir/<name>``) are
applied to the target's field and ``spw_real`` spws with the recorded
interpolation and spw map, ``calwt=False``, intent TARGET.

The text is data: it is parsed with :mod:`json` (never evaluated) and every
structural problem is an error naming the file and the line of the JSON
object at fault.
"""
from __future__ import annotations

import bisect
import dataclasses
import json
import json.decoder
import json.scanner
import os
import posixpath
from collections.abc import Sequence
from typing import Any

from ..errors import AlmaqaError

__all__ = ["SelfcalJsonError", "SelfcalApplication", "SelfcalTarget", "SelfcalRecord",
           "parse_selfcal_json", "APPLYMODE", "INTENT"]

#: hif_selfcal's ``apply_cal_mode_default`` and the intent of its applycal.
APPLYMODE = "calflag"
INTENT = "TARGET"


class SelfcalJsonError(AlmaqaError, ValueError):
    """selfcal.json cannot be used; the message names the file and the line."""


@dataclasses.dataclass(frozen=True)
class SelfcalApplication:
    """One applycal of self-calibration tables to one MS (as ``_apply_scal``)."""

    vis: str                       #: the MS it applies to (a name given to :meth:`applications`)
    field: str
    spw: str
    gaintable: tuple[str, ...]     #: ``sc_workdir/<table>`` (relative, POSIX)
    interp: tuple[str, ...]
    spwmap: tuple[tuple[int, ...], ...]
    calwt: tuple[bool, ...]
    source: str = ""               #: ``<file>:<line>`` of the target entry

    def as_dict(self) -> dict:
        return {"vis": self.vis, "field": self.field, "spw": self.spw,
                "gaintable": list(self.gaintable), "interp": list(self.interp),
                "spwmap": [list(m) for m in self.spwmap], "calwt": list(self.calwt),
                "intent": INTENT, "applymode": APPLYMODE, "source": self.source}


@dataclasses.dataclass(frozen=True)
class SelfcalTarget:
    """One ``scal_targets`` entry."""

    field: str
    spw: str
    sc_workdir: str
    exception: bool
    success: bool
    #: vis name in the JSON -> (real spw selection, tables, interps, spwmaps)
    per_vis: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[tuple[int, ...], ...]], ...]
    line: int = 0

    @property
    def calibrated(self) -> bool:
        """hif_selfcal applies solutions of this target (no exception, SC_success)."""
        return not self.exception and self.success

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(t for _v, _s, tabs, _i, _m in self.per_vis for t in tabs))

    def as_dict(self) -> dict:
        return {"field": self.field, "spw": self.spw, "self_calibrated": self.calibrated,
                "sc_exception": self.exception, "SC_success": self.success,
                "sc_workdir": self.sc_workdir, "vis": [v for v, *_ in self.per_vis],
                "tables": self.tables}


@dataclasses.dataclass(frozen=True)
class SelfcalRecord:
    """What selfcal.json says."""

    source: str
    targets: tuple[SelfcalTarget, ...]
    version: str = ""
    pipeline_version: str = ""

    @property
    def calibrated_targets(self) -> list[SelfcalTarget]:
        return [t for t in self.targets if t.calibrated]

    @property
    def tables(self) -> list[str]:
        """Every table the self-calibrated targets apply (``sc_workdir/<name>``)."""
        return list(dict.fromkeys(t for tg in self.calibrated_targets for t in tg.tables))

    def applications(self, vis_names: Sequence[str]) -> list[SelfcalApplication]:
        """The applycals of ``Selfcal._apply_scal`` for the MSs named ``vis_names``
        (basenames, e.g. ``uid___A002_X1_X2_targets.ms``), in JSON order."""
        out = []
        for tg in self.calibrated_targets:
            for vis, spw, tabs, interps, maps in tg.per_vis:
                base = _vis_base(vis)
                for name in vis_names:
                    if os.path.basename(name).startswith(base):
                        out.append(SelfcalApplication(
                            vis=name, field=tg.field, spw=spw, gaintable=tabs, interp=interps,
                            spwmap=maps, calwt=tuple(False for _ in tabs),
                            source=f"{self.source}:{tg.line}"))
        return out

    def summary(self) -> dict:
        return {"json": self.source, "version": self.version,
                "pipeline_version": self.pipeline_version,
                "targets": [t.as_dict() for t in self.targets],
                "self_calibrated": [t.field for t in self.calibrated_targets]}


def _vis_base(vis: str) -> str:
    base = os.path.splitext(posixpath.basename(vis.replace("\\", "/")))[0]
    return base[:-5] if base.endswith("_cont") else base


# ---- JSON with line numbers -----------------------------------------------------------
class _Obj(dict):
    """A JSON object that knows the line it starts on."""

    line = 0


def _loads(text: str, where: str) -> Any:
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    dec = json.JSONDecoder()

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):
        _s, end = s_and_end
        obj, new_end = json.decoder.JSONObject(s_and_end, strict, scan_once, object_hook,
                                               object_pairs_hook, memo)
        o = _Obj(obj)
        o.line = bisect.bisect_left(newlines, end) + 1
        return o, new_end

    dec.parse_object = parse_object
    dec.scan_once = json.scanner.py_make_scanner(dec)
    try:
        return dec.decode(text)
    except json.JSONDecodeError as exc:
        raise SelfcalJsonError(f"{where}, line {exc.lineno}: not valid JSON ({exc.msg}, "
                               f"column {exc.colno})") from None
    except RecursionError:
        raise SelfcalJsonError(f"{where}: JSON nested too deeply") from None


def _line(obj: Any, parent_line: int = 0) -> int:
    return getattr(obj, "line", 0) or parent_line


def _err(where: str, line: int, msg: str) -> SelfcalJsonError:
    return SelfcalJsonError(f"{where}, line {line}: {msg}" if line else f"{where}: {msg}")


def _str(obj: dict, key: str, where: str, line: int, required: bool = True) -> str:
    v = obj.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str):
        raise _err(where, line, f"{key!r} must be a string, not {type(v).__name__} ({v!r:.60})")
    return v


def _bool(obj: dict, key: str, where: str, line: int, default: bool) -> bool:
    v = obj.get(key, default)
    if not isinstance(v, bool):
        raise _err(where, line, f"{key!r} must be true or false, not {v!r:.60}")
    return v


def _table_name(name: Any, where: str, line: int) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _err(where, line, f"gaintable_final entries must be table names, not {name!r:.60}")
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise _err(where, line, f"table {name!r} is not a plain relative name")
    return name.replace("\\", "/")


def _spwmaps(v: Any, n: int, where: str, line: int) -> tuple[tuple[int, ...], ...]:
    """``spwmap_final``: one list per table (auto_selfcal may write a flat list for one)."""
    if not isinstance(v, list):
        raise _err(where, line, f"spwmap_final must be a list, not {v!r:.60}")
    if not v or any(not isinstance(m, list) for m in v):
        v = [v]                                         # as _apply_scal's workaround
    if len(v) < n:
        v = list(v) + [[]] * (n - len(v))
    out = []
    for m in v[:n]:
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in m):
            raise _err(where, line, f"spwmap_final entries must be spw ids, not {m!r:.60}")
        out.append(tuple(m))
    return tuple(out)


def _target(t: Any, k: int, where: str, root_line: int) -> SelfcalTarget:
    line = _line(t, root_line)
    if not isinstance(t, dict):
        raise _err(where, line, f"scal_targets[{k}] must be an object")
    field = _str(t, "field", where, line)
    spw = t.get("spw", "")
    spw = ",".join(str(s) for s in spw) if isinstance(spw, list) else str(spw)
    exception = _bool(t, "sc_exception", where, line, False)
    workdir = _str(t, "sc_workdir", where, line, required=False)
    lib = t.get("sc_lib")
    if exception or not isinstance(lib, dict):
        if not exception and lib is not None:
            raise _err(where, line, f"scal_targets[{k}] ({field}): 'sc_lib' must be an object")
        return SelfcalTarget(field=field, spw=spw, sc_workdir=workdir, exception=exception,
                             success=False, per_vis=(), line=line)
    lline = _line(lib, line)
    success = _bool(lib, "SC_success", where, lline, False)
    if not success:
        return SelfcalTarget(field=field, spw=spw, sc_workdir=workdir, exception=False,
                             success=False, per_vis=(), line=line)
    if not workdir:
        raise _err(where, line, f"scal_targets[{k}] ({field}): self-calibrated but no 'sc_workdir'")
    _table_name(workdir, where, line)
    vislist = lib.get("vislist")
    if not isinstance(vislist, list) or not vislist or not all(isinstance(v, str) for v in vislist):
        raise _err(where, lline, f"scal_targets[{k}] ({field}): 'sc_lib.vislist' must be a "
                                 "non-empty list of MS names")
    spw_real = t.get("spw_real") or {}
    if not isinstance(spw_real, dict):
        raise _err(where, line, f"scal_targets[{k}] ({field}): 'spw_real' must be an object")
    per_vis = []
    for vis in vislist:
        e = lib.get(vis)
        eline = _line(e, lline)
        if not isinstance(e, dict):
            raise _err(where, lline, f"scal_targets[{k}] ({field}): no 'sc_lib' entry for {vis!r}")
        tabs = e.get("gaintable_final")
        if not isinstance(tabs, list) or not tabs:
            raise _err(where, eline, f"{field} / {vis}: 'gaintable_final' must be a non-empty list")
        names = tuple(posixpath.join(workdir, _table_name(n, where, eline)) for n in tabs)
        interps = e.get("applycal_interpolate_final", ["linear"] * len(names))
        if not isinstance(interps, list) or not all(isinstance(i, str) for i in interps):
            raise _err(where, eline, f"{field} / {vis}: 'applycal_interpolate_final' must be a list "
                                     "of strings")
        interps = tuple(interps[i] if i < len(interps) else "linear" for i in range(len(names)))
        maps = _spwmaps(e.get("spwmap_final", []), len(names), where, eline)
        sel = spw_real.get(vis)
        if sel is None:   # keyed by another spelling of the same MS (a path)
            sel = next((v for key, v in spw_real.items() if _vis_base(key) == _vis_base(vis)), spw)
        sel = ",".join(str(s) for s in sel) if isinstance(sel, list) else str(sel)
        per_vis.append((vis, sel, names, interps, maps))
    return SelfcalTarget(field=field, spw=spw, sc_workdir=workdir, exception=False, success=True,
                         per_vis=tuple(per_vis), line=line)


def parse_selfcal_json(text: str, source: str) -> SelfcalRecord:
    """Parse selfcal.json's ``text`` (``source`` names it in messages)."""
    doc = _loads(text, source)
    if not isinstance(doc, dict) or "scal_targets" not in doc:
        raise _err(source, _line(doc, 1), "not a hif_selfcal record (no 'scal_targets')")
    targets = doc["scal_targets"]
    if not isinstance(targets, list):
        raise _err(source, _line(doc, 1), "'scal_targets' must be a list")
    parsed = tuple(_target(t, k, source, _line(doc, 1)) for k, t in enumerate(targets))
    return SelfcalRecord(source=source, targets=parsed, version=str(doc.get("version", "")),
                         pipeline_version=str(doc.get("pipeline_version", "")))
