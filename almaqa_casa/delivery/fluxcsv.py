"""Read (and write) the pipeline's ``flux.csv`` (pure).

Header ``ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment`` (older files lack
``uvmin,uvmax``); ``comment`` looks like ``# field=<name> intents=<...>
origin=<DB|...> age=<d> queried_at=<utc>``
(``pipeline/h/tasks/importdata/fluxes.py``).  Every value is checked: a
row that does not read exactly is an error naming the file and line.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import re

from ..errors import AlmaqaError, InputError
from ..safeio import read_text

__all__ = ["MAX_BYTES", "FluxCsvError", "FluxEntry", "format_fluxcsv", "parse_fluxcsv",
           "read_fluxcsv"]

MAX_BYTES = 16 << 20        #: largest flux.csv read (real ones: a few kB)
MAX_FIELD = 1 << 16         #: longest cell

_REQUIRED = ("ms", "field", "spw", "I", "Q", "U", "V", "spix")
_HEADER = ("ms", "field", "spw", "I", "Q", "U", "V", "spix", "uvmin", "uvmax", "comment")
_FLOAT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?|[-+]?(?:nan|inf)", re.I)


class FluxCsvError(AlmaqaError, ValueError):
    """flux.csv cannot be read; the message names file and line."""


@dataclasses.dataclass(frozen=True)
class FluxEntry:
    """One row: the flux of a field in one spw of one MS (Jy).

    ``ms`` is the MS's file name (a path in the file is reduced to its last
    component, as calapply gaintables are).
    """

    ms: str
    field: str
    spw: int
    I: float
    Q: float
    U: float
    V: float
    spix: float
    uvmin: float = 0.0
    uvmax: float = 0.0
    comment: str = ""
    line: int = dataclasses.field(default=0, compare=False)

    @property
    def meta(self) -> dict[str, str]:
        """``key=value`` pairs of the comment (``field``, ``intents``, ``origin`` ...)."""
        return dict(re.findall(r"(\w+)=(\S+)", self.comment))


def _num(text: str, name: str, where: str) -> float:
    t = text.strip()
    if not _FLOAT.fullmatch(t):
        raise FluxCsvError(f"{where}: {name} {text!r} is not a number")
    v = float(t)
    if not math.isfinite(v):
        raise FluxCsvError(f"{where}: {name} {text!r} is not a finite number")
    return v


def _ms_name(text: str, where: str) -> str:
    name = os.path.basename(text.strip().rstrip("/"))
    if name in ("", ".", "..") or "\0" in name:
        raise FluxCsvError(f"{where}: ms {text!r} does not name a MeasurementSet")
    return name


def _entry(row: list[str], header: list[str], col: dict[str, int], where: str,
           line: int) -> FluxEntry:
    ncomment = 1 if header[-1] == "comment" else 0
    if not len(header) - ncomment <= len(row) <= len(header):
        raise FluxCsvError(f"{where}: {len(row)} columns, expected {len(header)}")

    def cell(k: str) -> str | None:
        i = col.get(k)
        return row[i] if i is not None and i < len(row) else None

    def num(k: str, default: float = 0.0) -> float:
        c = cell(k)
        return default if c is None or not c.strip() else _num(c, k, where)

    spw = (cell("spw") or "").strip()
    if not re.fullmatch(r"\d{1,6}", spw):
        raise FluxCsvError(f"{where}: spw {spw!r} is not a spectral window id")
    return FluxEntry(ms=_ms_name(cell("ms") or "", where), field=(cell("field") or "").strip(),
                     spw=int(spw), I=_num(cell("I") or "", "I", where), Q=num("Q"), U=num("U"),
                     V=num("V"), spix=num("spix"), uvmin=num("uvmin"), uvmax=num("uvmax"),
                     comment=(cell("comment") or "").strip(), line=line)


def parse_fluxcsv(text: str, filename: str = "<flux.csv>") -> list[FluxEntry]:
    """Parse flux.csv text; a bad row is an error naming file and line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    col: dict[str, int] = {}
    out = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise FluxCsvError(f"{filename}, line {max(start, reader.line_num)}: not CSV "
                               f"({exc})") from None
        where = f"{filename}, line {start}"
        if any(len(c) > MAX_FIELD for c in row):
            raise FluxCsvError(f"{where}: a cell longer than {MAX_FIELD} characters")
        if not row or not any(c.strip() for c in row):
            continue
        if header is None:
            header = [h.strip() for h in row]
            missing = [k for k in _REQUIRED if k not in header]
            if missing:
                raise FluxCsvError(f"{where}: header lacks {', '.join(missing)}")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise FluxCsvError(f"{where}: header repeats {', '.join(dup)}")
            col = {k: i for i, k in enumerate(header)}
            continue
        out.append(_entry(row, header, col, where, start))
    if header is None:
        raise FluxCsvError(f"{filename}: empty file")
    return out


def read_fluxcsv(path: str | os.PathLike) -> list[FluxEntry]:
    """Read and parse a flux.csv file (a regular file of at most :data:`MAX_BYTES`)."""
    try:
        text = read_text(path, MAX_BYTES, what="flux.csv")
    except InputError as exc:
        raise FluxCsvError(str(exc)) from None
    return parse_fluxcsv(text, os.fspath(path))


def format_fluxcsv(entries: list[FluxEntry]) -> str:
    """flux.csv text (the current header) for ``entries``."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_HEADER)
    for e in entries:
        w.writerow([e.ms, e.field, e.spw, repr(e.I), repr(e.Q), repr(e.U), repr(e.V),
                    repr(e.spix), repr(e.uvmin), repr(e.uvmax), e.comment])
    return buf.getvalue()
