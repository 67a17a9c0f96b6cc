"""Read the pipeline's ``cont.dat`` continuum ranges (pure).

Format (``pipeline/infrastructure/contfilehandler.py``)::

    Field: <name>

    SpectralWindow: <id> [<spw name>]
    Flags: ALLCONT                      (optional)
    <lo>~<hi>GHz <FRAME>                (one line per range; or NONE / ALL)

Legacy (v1) files use a bare field name and ``SPW<id>``.  Frequencies are
returned in Hz with their reference frame (``LSRK``, ``TOPO``, ``SOURCE``).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from ..errors import AlmaqaError

__all__ = ["ContDat", "ContDatError", "SpwContinuum", "parse_contdat", "read_contdat"]

_UNITS = {"GHZ": 1e9, "MHZ": 1e6, "KHZ": 1e3, "HZ": 1.0}
_RANGE = re.compile(
    r"^(?P<lo>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*~\s*"
    r"(?P<hi>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(?P<unit>[a-zA-Z]+)"
    r"(?:\s+(?P<frame>[A-Za-z]+))?\s*$")
_FRAMES = {"LSRK", "TOPO", "SOURCE", "BARY", "LSRD", "GEO", "GALACTO", "REST", "CMB", "LGROUP"}


class ContDatError(AlmaqaError, ValueError):
    """cont.dat cannot be read; the message names file and line."""


@dataclasses.dataclass
class SpwContinuum:
    """Continuum selection of one spw of one field.

    ``ranges`` are ``(lo_Hz, hi_Hz)`` in ``frame``; ``keyword`` is ``'ALL'``
    (whole spw is continuum), ``'NONE'`` (no continuum) or ``None``.
    """

    spw: int
    name: str = ""
    ranges: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    frame: str = "TOPO"
    keyword: str | None = None
    flags: tuple[str, ...] = ()


@dataclasses.dataclass
class ContDat:
    """All fields of a cont.dat: ``fields[field_name][spw_id]``."""

    fields: dict[str, dict[int, SpwContinuum]]
    source: str = ""

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


def parse_contdat(text: str, filename: str = "<cont.dat>") -> ContDat:
    """Parse cont.dat text (v1, v2 and v3 layouts)."""
    fields: dict[str, dict[int, SpwContinuum]] = {}
    field: str | None = None
    spw: SpwContinuum | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{filename}, line {lineno}"
        if not line or line.startswith("#"):
            continue
        m_field = re.match(r"^Field:\s*(.+)$", line, re.I)
        m_spw = re.match(r"^(?:SpectralWindow:\s*(\d+)(?:\s+(\S.*))?|SPW\s*(\d+))$", line, re.I)
        if m_field:
            field = m_field.group(1).strip()
            fields.setdefault(field, {})
            spw = None
            continue
        if m_spw:
            if field is None:
                raise ContDatError(f"{where}: spectral window before any field")
            sid = int(m_spw.group(1) or m_spw.group(3))
            spw = SpwContinuum(spw=sid, name=(m_spw.group(2) or "").strip())
            fields[field][sid] = spw
            continue
        if line.upper().startswith("FLAGS:"):
            if spw is None:
                raise ContDatError(f"{where}: Flags line outside a spectral window")
            spw.flags = tuple(line.split(":", 1)[1].split())
            continue
        if line.upper() in ("NONE", "ALL"):
            if spw is None:
                raise ContDatError(f"{where}: {line} outside a spectral window")
            spw.keyword = line.upper()
            continue
        m = _RANGE.match(line)
        if m:
            if spw is None:
                raise ContDatError(f"{where}: frequency range outside a spectral window")
            unit = m.group("unit").upper()
            if unit not in _UNITS:
                raise ContDatError(f"{where}: unknown frequency unit {m.group('unit')!r}")
            lo = float(m.group("lo")) * _UNITS[unit]
            hi = float(m.group("hi")) * _UNITS[unit]
            if hi < lo:
                lo, hi = hi, lo
            frame = (m.group("frame") or "TOPO").upper()
            if frame not in _FRAMES:
                raise ContDatError(f"{where}: unknown frequency frame {m.group('frame')!r}")
            if spw.ranges and frame != spw.frame:
                raise ContDatError(f"{where}: mixed frames {spw.frame} and {frame} in spw {spw.spw}")
            spw.frame = frame
            spw.ranges.append((lo, hi))
            continue
        # v1: a bare field name line (not a range, not a keyword)
        if "~" not in line and ":" not in line:
            field = line
            fields.setdefault(field, {})
            spw = None
            continue
        raise ContDatError(f"{where}: cannot read {line!r}")
    if not fields:
        raise ContDatError(f"{filename}: no field found")
    return ContDat(fields=fields, source=filename)


def read_contdat(path: str | os.PathLike) -> ContDat:
    """Read and parse a cont.dat file."""
    path = Path(path)
    return parse_contdat(path.read_text(encoding="utf-8", errors="replace"), str(path))
