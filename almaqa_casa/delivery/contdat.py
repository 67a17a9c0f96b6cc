"""Read (and write) the pipeline's ``cont.dat`` continuum ranges (pure).

Format (``pipeline/infrastructure/contfilehandler.py``)::

    Field: <name>

    SpectralWindow: <id> [<spw name>]
    Flags: ALLCONT                      (optional)
    <lo>~<hi>GHz <FRAME>                (one line per range; or NONE / ALL)

Legacy (v1) files use a bare field name line followed by ``SPW<id>`` blocks
and ranges without a frame (TOPO).  Frequencies are returned in Hz with
their reference frame (``LSRK``, ``TOPO``, ``SOURCE``).

Stricter than the pipeline's reader on purpose: that reader takes any line
it does not recognise (a garbage line, a single frequency without ``~``) as
a new field name, so the real field silently loses its ranges and the
continuum subtraction subtracts nothing.  Here a bare field name is
accepted only in a v1 file and only when an ``SPW<id>`` line follows; any
other unreadable line is a :class:`ContDatError` naming the file and line.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

from ..errors import AlmaqaError, InputError
from ..safeio import read_text

__all__ = ["MAX_BYTES", "ContDat", "ContDatError", "SpwContinuum", "format_contdat",
           "parse_contdat", "read_contdat"]

MAX_BYTES = 16 << 20          #: largest cont.dat read (real ones are a few kB)
MAX_LINE = 1 << 16            #: longest line accepted

_UNITS = {"GHZ": 1e9, "MHZ": 1e6, "KHZ": 1e3, "HZ": 1.0}
_NUM = r"\d+(?:\.\d*)?(?:[eE][-+]?\d{1,3})?|\.\d+(?:[eE][-+]?\d{1,3})?"
_R = rf"({_NUM})\s*~\s*({_NUM})\s*([A-Za-z]+)"
_ONE_RANGE = re.compile(_R)
# lines are stripped first; no two whitespace runs are adjacent (no backtracking blow-up)
_RANGES = re.compile(rf"^(?P<ranges>{_R}(?:\s*;\s*{_R})*)(?:[ \t]+(?P<frame>[A-Za-z]+))?$")
_SINGLE = re.compile(rf"^[-+]?(?:{_NUM})(?:\s*[A-Za-z]+(?:[ \t]+[A-Za-z]+)?)?$")
_FIELD = re.compile(r"^Field:(.*)$", re.I)
_SPW2 = re.compile(r"^SpectralWindow:\s*(\S+)(?:\s+(\S.*))?$", re.I)
_SPW1 = re.compile(r"^SPW\s*(\S+)$")
_FLAGS = re.compile(r"^Flags:(.*)$", re.I)
_FRAMES = {"LSRK", "TOPO", "SOURCE", "BARY", "LSRD", "GEO", "GALACTO", "REST", "CMB", "LGROUP"}
_KEYWORDS = {"NONE", "ALL"}


class ContDatError(AlmaqaError, ValueError):
    """cont.dat cannot be read; the message names file and line."""


@dataclasses.dataclass
class SpwContinuum:
    """Continuum selection of one spw of one field.

    ``ranges`` are ``(lo_Hz, hi_Hz)`` in ``frame``; ``keyword`` is ``'ALL'``
    (whole spw is continuum), ``'NONE'`` (no continuum) or ``None``;
    ``line`` is where the spw starts in the file.
    """

    spw: int
    name: str = ""
    ranges: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    frame: str = "TOPO"
    keyword: str | None = None
    flags: tuple[str, ...] = ()
    line: int = dataclasses.field(default=0, compare=False)


@dataclasses.dataclass
class ContDat:
    """All fields of a cont.dat: ``fields[field_name][spw_id]``."""

    fields: dict[str, dict[int, SpwContinuum]]
    source: str = dataclasses.field(default="", compare=False)

    def for_field(self, name: str) -> dict[int, SpwContinuum]:
        """Ranges of a field, matching names as the pipeline writes them.

        The pipeline may write a field name with quotes or spaces replaced by
        underscores; an exact match wins, then a normalised one.
        """
        if name in self.fields:
            return self.fields[name]
        norm = _norm(name)
        for k, v in self.fields.items():
            if _norm(k) == norm:
                return v
        return {}


def _norm(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9+\-.]", "_", name.strip().strip("\"'"))


def _dequote(name: str) -> str:
    """As the pipeline's ``utils.dequote``: one pair of surrounding quotes removed."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1]
    return name.strip()


def _lines(text: str, filename: str) -> list[tuple[int, str]]:
    """Numbered, stripped content lines (blank and ``#`` lines left out)."""
    out = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if len(raw) > MAX_LINE:
            raise ContDatError(f"{filename}, line {lineno}: line of {len(raw)} characters "
                               f"(longest accepted {MAX_LINE})")
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((lineno, line))
    return out


def _spw_id(token: str, where: str) -> int:
    if not re.fullmatch(r"\d{1,9}", token):
        raise ContDatError(f"{where}: spectral window id {token!r} is not a number")
    return int(token)


def _ranges(m: re.Match, where: str) -> tuple[list[tuple[float, float]], str | None]:
    out = []
    for lo_s, hi_s, unit in _ONE_RANGE.findall(m.group("ranges")):
        scale = _UNITS.get(unit.upper())
        if scale is None:
            raise ContDatError(f"{where}: unknown frequency unit {unit!r} (GHz, MHz, kHz, Hz)")
        lo, hi = float(lo_s) * scale, float(hi_s) * scale
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ContDatError(f"{where}: frequency out of range in {m.group(0).strip()!r}")
        out.append((min(lo, hi), max(lo, hi)))
    frame = m.group("frame")
    if frame is not None and frame.upper() not in _FRAMES:
        raise ContDatError(f"{where}: unknown frequency frame {frame!r}")
    return out, (frame.upper() if frame else None)


def parse_contdat(text: str, filename: str = "<cont.dat>") -> ContDat:
    """Parse cont.dat text (v1, v2 and v3 layouts).

    Raises
    ------
    ContDatError
        Naming the file and the line that cannot be read.
    """
    lines = _lines(text, filename)
    v1_only = not any(_FIELD.match(s) or _SPW2.match(s) for _, s in lines)
    fields: dict[str, dict[int, SpwContinuum]] = {}
    field: str | None = None
    spw: SpwContinuum | None = None
    for i, (lineno, line) in enumerate(lines):
        where = f"{filename}, line {lineno}"
        m = _FIELD.match(line)
        if m:
            field = _dequote(m.group(1))
            if not field:
                raise ContDatError(f"{where}: 'Field:' without a field name")
            fields.setdefault(field, {})
            spw = None
            continue
        m = _SPW2.match(line) or _SPW1.match(line)
        if m:
            if field is None:
                raise ContDatError(f"{where}: spectral window before any field")
            sid = _spw_id(m.group(1), where)
            if sid in fields[field]:
                raise ContDatError(f"{where}: spectral window {sid} of field {field!r} given "
                                   f"twice (first at line {fields[field][sid].line})")
            name = (m.group(2) or "").strip() if m.re is _SPW2 else ""
            spw = SpwContinuum(spw=sid, name=name, line=lineno)
            fields[field][sid] = spw
            continue
        m = _FLAGS.match(line)
        if m:
            if spw is None:
                raise ContDatError(f"{where}: Flags line outside a spectral window")
            spw.flags = spw.flags + tuple(m.group(1).split())
            continue
        if line.upper() in _KEYWORDS or line.upper() == "ALLCONT":
            if spw is None:
                raise ContDatError(f"{where}: {line} outside a spectral window")
            if line.upper() == "ALLCONT":
                spw.flags = spw.flags + ("ALLCONT",)
                continue
            if spw.ranges or (spw.keyword and spw.keyword != line.upper()):
                raise ContDatError(f"{where}: {line} in spectral window {spw.spw}, which "
                                   "already has ranges or a keyword")
            spw.keyword = line.upper()
            continue
        m = _RANGES.match(line)
        if m:
            if spw is None:
                raise ContDatError(f"{where}: frequency range outside a spectral window")
            if spw.keyword:
                raise ContDatError(f"{where}: frequency range in spectral window {spw.spw}, "
                                   f"which is marked {spw.keyword}")
            ranges, frame = _ranges(m, where)
            frame = frame or "TOPO"
            if spw.ranges and frame != spw.frame:
                raise ContDatError(f"{where}: mixed frames {spw.frame} and {frame} in spw "
                                   f"{spw.spw}")
            spw.frame = frame
            spw.ranges.extend(ranges)
            continue
        nxt = lines[i + 1][1] if i + 1 < len(lines) else ""
        if "~" not in line and ":" not in line and v1_only and _SPW1.match(nxt):
            field = _dequote(line)              # v1: a bare field name, then SPW<id> blocks
            fields.setdefault(field, {})
            spw = None
            continue
        if _SINGLE.match(line):
            raise ContDatError(f"{where}: {line!r} is a single frequency, not a range "
                               "'<lo>~<hi>GHz <FRAME>'")
        if "~" not in line and ":" not in line:
            raise ContDatError(
                f"{where}: cannot read {line!r}: not a 'Field:', 'SpectralWindow:', 'Flags:', "
                "NONE/ALL or '<lo>~<hi>GHz <FRAME>' line" + (
                    "" if v1_only else " (a bare field name is only valid in a legacy v1 "
                    "file, followed by SPW<id> lines)"))
        raise ContDatError(f"{where}: cannot read {line!r}")
    if not fields:
        raise ContDatError(f"{filename}: no field found")
    return ContDat(fields=fields, source=filename)


def read_contdat(path: str | os.PathLike) -> ContDat:
    """Read and parse a cont.dat file (a regular file of at most :data:`MAX_BYTES`)."""
    try:
        text = read_text(path, MAX_BYTES, what="cont.dat")
    except InputError as exc:
        raise ContDatError(str(exc)) from None
    return parse_contdat(text, os.fspath(path))


def format_contdat(cont: ContDat) -> str:
    """cont.dat text (v3 layout, ``%.10f`` GHz as the pipeline writes) for ``cont``.

    Raises :class:`ContDatError` for a name that cannot be written on one line.
    """
    out = []
    for fname, spws in cont.fields.items():
        if not fname.strip() or "\n" in fname or "\r" in fname or fname != fname.strip():
            raise ContDatError(f"field name {fname!r} cannot be written to cont.dat")
        out += [f"Field: {fname}", ""]
        for sid, s in spws.items():
            if s.name and (len(s.name.split()) != 1):
                raise ContDatError(f"spw name {s.name!r} cannot be written to cont.dat")
            out.append(f"SpectralWindow: {sid}" + (f" {s.name}" if s.name else ""))
            if s.flags:
                out.append("Flags: " + " ".join(s.flags))
            if s.keyword:
                out.append(s.keyword)
            for lo, hi in s.ranges:
                out.append("%.10f~%.10fGHz %s" % (lo / 1e9, hi / 1e9, s.frame))
            out.append("")
    return "\n".join(out) + "\n"
