"""Read the pipeline's ``flux.csv`` (pure).

Header ``ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment`` (older files lack
``uvmin,uvmax``); ``comment`` looks like ``# field=<name> intents=<...>
origin=<DB|...> age=<d> queried_at=<utc>``
(``pipeline/h/tasks/importdata/fluxes.py``).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from pathlib import Path

from ..errors import AlmaqaError

__all__ = ["FluxCsvError", "FluxEntry", "parse_fluxcsv", "read_fluxcsv"]

_REQUIRED = ("ms", "field", "spw", "I", "Q", "U", "V", "spix")


class FluxCsvError(AlmaqaError, ValueError):
    """flux.csv cannot be read; the message names file and line."""


@dataclasses.dataclass(frozen=True)
class FluxEntry:
    """One row: the flux of a field in one spw of one MS (Jy)."""

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
    line: int = 0

    @property
    def meta(self) -> dict[str, str]:
        """``key=value`` pairs of the comment (``field``, ``intents``, ``origin`` ...)."""
        return dict(re.findall(r"(\w+)=(\S+)", self.comment))


def parse_fluxcsv(text: str, filename: str = "<flux.csv>") -> list[FluxEntry]:
    """Parse flux.csv text; a bad row is an error naming file and line."""
    reader = csv.reader(io.StringIO(text))
    rows = [(i, r) for i, r in enumerate(reader, start=1) if r and any(c.strip() for c in r)]
    if not rows:
        raise FluxCsvError(f"{filename}: empty file")
    _, header = rows[0]
    header = [h.strip() for h in header]
    missing = [k for k in _REQUIRED if k not in header]
    if missing:
        raise FluxCsvError(f"{filename}, line {rows[0][0]}: header lacks {', '.join(missing)}")
    col = {k: header.index(k) for k in header}
    out = []
    for lineno, r in rows[1:]:
        where = f"{filename}, line {lineno}"
        if len(r) < len(_REQUIRED):
            raise FluxCsvError(f"{where}: {len(r)} columns, expected {len(header)}")
        try:
            def num(k, default=0.0, r=r):
                i = col.get(k)
                if i is None or i >= len(r) or not r[i].strip():
                    return default
                return float(r[i])
            entry = FluxEntry(ms=r[col["ms"]].strip(), field=r[col["field"]].strip(),
                              spw=int(r[col["spw"]]), I=num("I"), Q=num("Q"), U=num("U"),
                              V=num("V"), spix=num("spix"), uvmin=num("uvmin"),
                              uvmax=num("uvmax"),
                              comment=(r[col["comment"]].strip()
                                       if "comment" in col and col["comment"] < len(r) else ""),
                              line=lineno)
        except ValueError as exc:
            raise FluxCsvError(f"{where}: {exc}") from None
        out.append(entry)
    return out


def read_fluxcsv(path: str | os.PathLike) -> list[FluxEntry]:
    """Read and parse a flux.csv file."""
    path = Path(path)
    return parse_fluxcsv(path.read_text(encoding="utf-8", errors="replace"), str(path))
