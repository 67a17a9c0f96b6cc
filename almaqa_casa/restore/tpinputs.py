"""What a total power restore reads beyond the member model (I/O; parsing is pure).

* the Kelvin-to-Jansky factors: ``jyperk.csv`` (loose, or in
  ``auxproducts.tgz``), parsed by :mod:`almaqa_casa.delivery.jyperk`;
* the atmospheric correction the pipeline ran (``hsd_atmcor``): the
  ``sdatmcor(...)`` calls of ``casa_commands.log`` (``atmtype``,
  ``dtem_dh``, ``h0`` per EB), read as literals, never run;
* the baseline subtraction it exported (``hsd_exportdata``):
  ``<uid>.ms.auxcalapply.txt`` with one ``sdbaseline(..., blmode='apply',
  bltable=...)`` line, the table in ``<mous>.<session>.auxcaltables.tgz``.

Everything is read once, before any work; a file that cannot be parsed is
reported with its file and line (an error when the restore needs it).
"""
from __future__ import annotations

import ast
import dataclasses
import fnmatch
import os
from pathlib import Path

from ..delivery.jyperk import MAX_BYTES, JyPerKFile, parse_jyperk
from ..delivery.member import Member, parse_delivered, read_small_text
from ..errors import AlmaqaError

__all__ = ["TPInputs", "read_tp_inputs", "parse_calls", "ATMCOR_DEFAULTS"]

#: hsd_atmcor's defaults (``pipeline/hsd/tasks/atmcor/atmcor.py``); its
#: ``atmtype='auto'`` heuristic needs the pipeline, so type 1 (tropical)
#: stands in when the delivery does not record the model used.
ATMCOR_DEFAULTS = {"atmtype": 1, "dtem_dh": -5.6, "h0": 2.0}


@dataclasses.dataclass
class TPInputs:
    jyperk: JyPerKFile | None = None
    jyperk_source: str = ""          #: loose path or '<tgz>::<member>'
    jyperk_error: str = ""
    #: uid -> {'atmtype', 'dtem_dh', 'h0', 'source'} from casa_commands.log
    atmcor: dict[str, dict] = dataclasses.field(default_factory=dict)
    atmcor_error: str = ""
    #: uid -> {'bltable', 'tarball', 'spw', 'blfunc', 'datacolumn', 'source'}
    baseline: dict[str, dict] = dataclasses.field(default_factory=dict)
    baseline_error: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def parse_calls(text: str, task: str, filename: str) -> list[tuple[int, dict]]:
    """(line, literal keyword arguments) of each one-line ``task(...)`` call in
    ``text`` (pure; arguments that are not literals are left out)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s.startswith(task + "("):
            continue
        try:
            tree = ast.parse(s, mode="eval")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            raise AlmaqaError(f"{filename}, line {lineno}: not a readable {task}(...) call") from None
        call = tree.body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == task):
            raise AlmaqaError(f"{filename}, line {lineno}: not a plain {task}(...) call")
        kw = {k.arg: _literal(k.value) for k in call.keywords if k.arg}
        out.append((lineno, kw))
    return out


def _quantity(value, unit: str):
    """``'-5.6K/km'`` or ``-5.6`` -> -5.6 (in ``unit``); None if unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        v = value.strip()
        if v.endswith(unit):
            v = v[: -len(unit)]
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _uid_of(path: str) -> str:
    base = os.path.basename(str(path).rstrip("/"))
    i = base.find("uid___")
    base = base[i:] if i >= 0 else base
    return base.split(".ms")[0]


def _atmcor(member: Member, inp: TPInputs) -> None:
    root = Path(member.path)
    logs = [p for d in ("log", "script") for p in sorted((root / d).glob("*casa_commands.log"))]
    for p in logs:
        try:
            calls = parse_calls(read_small_text(p), "sdatmcor", str(p))
        except (AlmaqaError, OSError) as exc:
            inp.atmcor_error = str(exc)
            return
        for lineno, kw in calls:
            uid = _uid_of(kw.get("infile", ""))
            atm = kw.get("atmtype")
            if isinstance(atm, str) and atm.strip().isdigit():
                atm = int(atm)
            rec = {"atmtype": atm if isinstance(atm, int) and not isinstance(atm, bool) else None,
                   "dtem_dh": _quantity(kw.get("dtem_dh"), "K/km"), "h0": _quantity(kw.get("h0"), "km"),
                   "source": f"{p}:{lineno}"}
            if rec["atmtype"] is None:
                inp.atmcor_error = (f"{p}, line {lineno}: sdatmcor atmtype {kw.get('atmtype')!r} "
                                    "is not an ATM model number (1-5)")
                return
            for k in ("dtem_dh", "h0"):
                if rec[k] is None:
                    rec[k] = ATMCOR_DEFAULTS[k]
            if uid:
                inp.atmcor[uid] = rec


def _baseline(member: Member, inp: TPInputs) -> None:
    calib = Path(member.path) / "calibration"
    try:
        names = sorted(os.listdir(calib))
    except OSError:
        return
    aux_tgz = {n: str(calib / n) for n in names if fnmatch.fnmatchcase(n, "*.auxcaltables.tgz")}
    for n in names:
        if not fnmatch.fnmatchcase(n, "*.ms.auxcalapply.txt"):
            continue
        p = calib / n
        try:
            calls = parse_calls(read_small_text(p), "sdbaseline", str(p))
        except (AlmaqaError, OSError) as exc:
            inp.baseline_error = str(exc)
            return
        for lineno, kw in calls:
            uid = _uid_of(n)
            if kw.get("blmode") != "apply" or not isinstance(kw.get("bltable"), str):
                inp.baseline_error = (f"{p}, line {lineno}: an sdbaseline line without "
                                      "blmode='apply' and a bltable")
                return
            table = os.path.basename(kw["bltable"].rstrip("/"))
            eb = next((e for e in member.ebs if e.uid == uid), None)
            sess = eb.session if eb else None
            tarball = next((t for k, t in aux_tgz.items() if sess and f".{sess}." in k), "")
            inp.baseline[uid] = {"bltable": table, "tarball": tarball, "spw": str(kw.get("spw") or ""),
                                 "blfunc": kw.get("blfunc"), "datacolumn": kw.get("datacolumn"),
                                 "source": f"{p}:{lineno}"}


def read_tp_inputs(member: Member) -> TPInputs:
    """Read and parse the total power inputs of ``member`` (never raises on
    delivered text: problems are recorded for the planner to judge)."""
    inp = TPInputs()
    if member.jyperk:
        inp.jyperk_source = member.jyperk
        inp.jyperk, inp.jyperk_error = parse_delivered(member.jyperk, parse_jyperk, MAX_BYTES)
    _atmcor(member, inp)
    _baseline(member, inp)
    return inp
