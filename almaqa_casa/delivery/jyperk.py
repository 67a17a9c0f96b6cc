"""Read a total power delivery's Kelvin-to-Jansky factors, ``jyperk.csv`` (pure).

The ALMA pipeline's ``hsd_k2jycal`` reads two forms (``pipeline/hsd/tasks/
k2jycal/jyperkreader.py``; the file ships in ``auxproducts.tgz`` as
``jyperk.csv`` or ``jyperk_query.csv``):

* **MS-based**: ``MS,Antenna,Spwid,Polarization,Factor`` (the header line is
  optional), one factor per MS, antenna, spectral window and polarization
  (``I`` stands for both XX and YY);
* **session-based**: ``#key=value`` meta lines, a ``#sessionID,...`` column
  header, then rows ``session, start, end, antenna, band centre (MHz),
  bandwidth (MHz), pol, factor``; a row applies to the EBs of its session and
  to the spectral window its band covers best (``ANONYMOUS`` rows to the
  antennas without their own).

The text is data: every data line must parse (numbers finite and positive,
the right number of columns); a line that does not is an error naming the
file and the line.  :func:`factors_for_ms` resolves either form to one
factor per (antenna, spw, polarization) of one MS, and :func:`ms_csv` writes
those as the MS-based text ``gencal(caltype='jyperk')`` reads.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Mapping, Sequence

from ..errors import AlmaqaError

__all__ = ["JyPerKError", "JyPerKFactor", "SessionFactor", "JyPerKFile", "parse_jyperk",
           "factors_for_ms", "ms_csv", "coverage", "MAX_BYTES", "MAX_ROWS"]

MAX_BYTES = 16 << 20       #: largest jyperk file read (real ones: a few kB)
MAX_ROWS = 200_000
#: Polarizations a factor for ``I`` stands for (the pipeline's ``pol_to_map_i``).
STOKES_I_POLS = ("XX", "YY", "RR", "LL", "I")


class JyPerKError(AlmaqaError, ValueError):
    """``jyperk.csv`` cannot be read or used; the message names file and line."""


@dataclasses.dataclass(frozen=True)
class JyPerKFactor:
    """One MS-based row."""

    ms: str
    antenna: str
    spw: int
    pol: str
    factor: float
    source: str = ""        #: "<file>:<line>"


@dataclasses.dataclass(frozen=True)
class SessionFactor:
    """One session-based row."""

    session: int
    start: str
    end: str
    antenna: str
    center_hz: float
    bandwidth_hz: float
    pol: str
    factor: float
    source: str = ""


@dataclasses.dataclass(frozen=True)
class JyPerKFile:
    path: str
    kind: str                                   #: 'ms' or 'session'
    factors: tuple[JyPerKFactor, ...] = ()
    session_rows: tuple[SessionFactor, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()

    def for_ms(self, ms: str) -> tuple[JyPerKFactor, ...]:
        """MS-based rows of one MS (``ms``: ``<uid>.ms`` or ``<uid>``)."""
        names = {ms, ms if ms.endswith(".ms") else ms + ".ms"}
        return tuple(f for f in self.factors if f.ms in names)

    @property
    def ms_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.ms for f in self.factors))

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "rows": len(self.factors) + len(self.session_rows),
                "ms": list(self.ms_names), "meta": dict(self.meta)}


def _number(text: str, what: str, where: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise JyPerKError(f"{where}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise JyPerKError(f"{where}: {what} {text.strip()!r} is not finite")
    return v


def _factor(text: str, where: str) -> float:
    v = _number(text, "factor", where)
    if v <= 0:
        raise JyPerKError(f"{where}: factor {v} is not positive (Jy/K factors are > 0)")
    return v


def _int(text: str, what: str, where: str) -> int:
    t = text.strip()
    if not t.lstrip("-").isdigit():
        raise JyPerKError(f"{where}: {what} {t!r} is not an integer")
    return int(t)


def _rows(text: str) -> list[tuple[int, list[str]]]:
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = next(csv.reader(io.StringIO(line)), [])
        out.append((lineno, fields))
        if len(out) > MAX_ROWS:
            raise JyPerKError(f"more than {MAX_ROWS} rows")
    return out


def _parse_ms_based(rows, filename: str) -> JyPerKFile:
    factors = []
    for i, (lineno, f) in enumerate(rows):
        where = f"{filename}, line {lineno}"
        if f and f[0].strip().startswith("#"):
            continue
        if i == 0 and f and f[0].strip().upper() == "MS":
            continue               # the header line
        if len(f) != 5:
            raise JyPerKError(f"{where}: expected 5 columns (MS,Antenna,Spwid,Polarization,Factor), "
                              f"found {len(f)}")
        ms, ant, spw, pol, fac = (x.strip() for x in f)
        if not ms or not ant or not pol:
            raise JyPerKError(f"{where}: empty MS, antenna or polarization")
        factors.append(JyPerKFactor(ms=ms, antenna=ant, spw=_int(spw, "spw", where), pol=pol.upper(),
                                    factor=_factor(fac, where), source=f"{filename}:{lineno}"))
    if not factors:
        raise JyPerKError(f"{filename}: no Jy/K factor found")
    return JyPerKFile(path=filename, kind="ms", factors=tuple(factors))


_SESSION_COLUMNS = ("sessionid", "observationstartdate(utc)", "observationenddate(utc)", "antenna",
                    "bandcenter(mhz)", "bandwidth(mhz)", "pol", "factor")


def _parse_session_based(text: str, filename: str) -> JyPerKFile:
    meta: list[tuple[str, str]] = []
    header: list[str] | None = None
    rows = []
    pending = ""       # a column header may wrap onto a second '#' line
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{filename}, line {lineno}"
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            content = s.strip("# \t")
            if "=" in content and header is None and not pending:
                k, v = content.split("=", 1)
                meta.append((k.strip(), v.strip()))
            elif content and not content[0].isdigit():
                pending += content
                cols = [c.strip().lower() for c in pending.split(",") if c.strip()]
                if len(cols) >= len(_SESSION_COLUMNS):
                    header, pending = cols, ""
            continue
        if header is None:
            raise JyPerKError(f"{where}: data line before the '#sessionID,...' column header")
        f = [x.strip() for x in next(csv.reader(io.StringIO(s)), [])]
        if len(f) != len(header):
            raise JyPerKError(f"{where}: expected {len(header)} columns, found {len(f)}")
        d = dict(zip(header, f))
        try:
            rows.append(SessionFactor(
                session=_int(d["sessionid"], "sessionID", where), start=d["observationstartdate(utc)"],
                end=d["observationenddate(utc)"], antenna=d["antenna"],
                center_hz=_number(d["bandcenter(mhz)"], "BandCenter(MHz)", where) * 1e6,
                bandwidth_hz=_number(d["bandwidth(mhz)"], "BandWidth(MHz)", where) * 1e6,
                pol=d["pol"].upper(), factor=_factor(d["factor"], where), source=f"{filename}:{lineno}"))
        except KeyError as exc:
            raise JyPerKError(f"{filename}: the column header lacks {exc.args[0]!r} "
                              f"(expected {', '.join(_SESSION_COLUMNS)})") from None
    if header is None:
        raise JyPerKError(f"{filename}: session-based file without the '#sessionID,...' column header")
    if not rows:
        raise JyPerKError(f"{filename}: no Jy/K factor found")
    return JyPerKFile(path=filename, kind="session", session_rows=tuple(rows), meta=tuple(meta))


def parse_jyperk(text: str, filename: str = "jyperk.csv") -> JyPerKFile:
    """Parse ``jyperk.csv`` (MS-based, or session-based when it starts with ``#``).

    Raises
    ------
    JyPerKError
        A line that is not a factor row (wrong column count, a factor that is
        not a finite positive number ...), naming the file and line.
    """
    if len(text) > MAX_BYTES:
        raise JyPerKError(f"{filename}: larger than {MAX_BYTES} bytes")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not first:
        raise JyPerKError(f"{filename}: empty file")
    if first.lstrip().startswith("#"):
        return _parse_session_based(text, filename)
    return _parse_ms_based(_rows(text), filename)


def coverage(fmin: float, fmax: float, rmin: float, rmax: float) -> float:
    """Fraction of [fmin, fmax] that [rmin, rmax] covers; 0 when the reference
    band is more than 10 % wider (the pipeline's ``inspect_coverage``)."""
    if fmin > fmax or rmin > rmax or fmax == fmin:
        return 0.0
    cov = (min(fmax, rmax) - max(fmin, rmin)) / (fmax - fmin)
    if cov < 0.0 or cov > 1.0 or (rmax - rmin) / (fmax - fmin) > 1.1:
        return 0.0
    return cov


def _expand_pol(pol: str, pols: Sequence[str]) -> list[str]:
    if pol == "I":
        return [p for p in pols if p in STOKES_I_POLS]
    return [pol] if pol in pols else []


def factors_for_ms(jf: JyPerKFile, ms: str, antennas: Sequence[str], spws: Mapping[int, tuple[float, float]],
                   pols: Sequence[str], session: int | None = None) -> dict[tuple[str, int, str], float]:
    """One factor per (antenna, spw, polarization) of MS ``ms``.

    ``antennas``: its antenna names; ``spws``: science spw id -> (min, max)
    frequency in Hz; ``pols``: its correlations (``XX``, ``YY``);
    ``session``: the EB's session number (session-based files).  MS-based
    rows for ``I`` fill every parallel-hand polarization; a polarization's
    own row wins.  Session-based rows: the session's, the antenna's own or
    ``ANONYMOUS``, the band covering the spw best.  Missing combinations are
    left out (the caller reports them).
    """
    out: dict[tuple[str, int, str], float] = {}
    if jf.kind == "ms":
        rows = jf.for_ms(ms)
        for own in (False, True):          # 'I' rows first, own-polarization rows override
            for r in rows:
                if (r.pol != "I") != own or r.spw not in spws or r.antenna not in antennas:
                    continue
                for p in _expand_pol(r.pol, pols):
                    out[(r.antenna, r.spw, p)] = r.factor
        return out
    rows = [r for r in jf.session_rows if session is None or r.session == session]
    for spw, (fmin, fmax) in spws.items():
        for ant in antennas:
            cand = [r for r in rows if r.antenna == ant] or [r for r in rows if r.antenna == "ANONYMOUS"]
            best = None
            best_cov = 0.0
            for r in cand:
                c = coverage(fmin, fmax, r.center_hz - r.bandwidth_hz / 2, r.center_hz + r.bandwidth_hz / 2)
                if c > best_cov:
                    best, best_cov = r, c
            if best is None:
                continue
            for p in _expand_pol(best.pol, pols):
                out[(ant, spw, p)] = best.factor
            # a per-polarization session file: the other polarization's own row
            for r in cand:
                if r.pol != best.pol and r.pol in pols and r.center_hz == best.center_hz \
                        and r.bandwidth_hz == best.bandwidth_hz:
                    out[(ant, spw, r.pol)] = r.factor
    return out


def ms_csv(factors: Mapping[tuple[str, int, str], float], ms_basename: str) -> str:
    """The MS-based text ``gencal(caltype='jyperk', infile=...)`` reads for one MS."""
    lines = ["MS,Antenna,Spwid,Polarization,Factor"]
    for (ant, spw, pol), f in sorted(factors.items()):
        lines.append(f"{ms_basename},{ant},{spw},{pol},{f!r}")
    return "\n".join(lines) + "\n"
