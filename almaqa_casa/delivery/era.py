"""Which ALMA cycle a delivery comes from, estimated from its evidence (pure).

The shape of a delivery changed over the cycles (realworld.md "Layout by
era"), so what is correct depends on the era: a README named ``README``
and flux.csv loose in ``calibration/`` are right for Cycle 1-4 and wrong
today.  The evidence a listing gives, strongest first:

* the project code: ``2016.1.xxxxx.S`` was proposed in Cycle 4, so the data
  are from Cycle 4 or later (a lower bound: projects carry over);
* the README name (``README`` up to Cycle 4, ``member.<MOUS>.README.txt``
  from Cycle 5), ``pipeline_manifest.xml`` (Cycle 5 on), ``auxproducts.tgz``
  (Cycle 5 on) or flux.csv / antennapos.csv / cont.dat loose in
  ``calibration/`` (Cycle 1-4), ``s<k>.caltables.tgz`` tarballs (Cycle 10 on),
  ``casa_commands.log`` in ``script/`` without ``log/`` (Cycle 7);
* the product naming style (``member.uid___`` from Cycle 5, bare ``uid___`` and
  free-form manual names up to Cycle 4);
* the CASA / pipeline version written in the README or casa_commands.log
  (a hint that picks the most likely cycle inside the bounds, never a bound).

Evidence is taken in that order; a bound that contradicts the bounds
already set is recorded as a conflict and not applied.  Cycle-to-version
tables are approximate (the ALMA pipeline releases per cycle).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "LOOSE_AUX",
    "Era",
    "Evidence",
    "casa_cycle",
    "estimate_era",
    "evidence_from_listing",
    "loose_aux_files",
    "naming_bounds",
    "pipeline_cycle",
    "project_cycle",
    "versions_in_text",
]

#: Proposal year of a project code -> cycle (2014 and 2020 had no call: the cycle before).
_YEAR_CYCLE = {2011: 0, 2012: 1, 2013: 2, 2014: 2, 2015: 3, 2016: 4, 2017: 5, 2018: 6, 2019: 7,
               2020: 7}
#: CASA (major, minor) of the ALMA pipeline / manual-reduction releases -> cycle (approximate).
_CASA_CYCLE = [((3, 3), 0), ((4, 1), 1), ((4, 2), 2), ((4, 5), 3), ((4, 7), 4), ((5, 1), 5),
               ((5, 4), 6), ((5, 6), 7), ((6, 1), 8), ((6, 4), 9), ((6, 5), 10), ((6, 6), 11)]
_PROJECT = re.compile(r"(\d{4})\.([0-9A-Z])\.\d{5}\.[A-Z]\Z")
#: Naming style (``products.NAMING_*``) -> (first cycle, last cycle) it was delivered in.
_NAMING_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "scheme": (5, None), "bare-uid": (None, 4), "free-form": (None, 4)}


@dataclass(frozen=True)
class Evidence:
    """One fact about the era: the cycles it allows (bounds) or suggests (hint)."""

    what: str
    cycle_min: int | None = None
    cycle_max: int | None = None
    hint: bool = False           #: a version: picks the estimate, never bounds it


@dataclass(frozen=True)
class Era:
    """The estimated era: the range of cycles the evidence allows and the most likely one."""

    cycle_min: int | None
    cycle_max: int | None
    estimate: int | None
    evidence: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        lo, hi = self.cycle_min, self.cycle_max
        if lo is not None and lo == hi:
            text = f"Cycle {lo}"
        elif lo is not None and hi is not None:
            text = f"Cycle {lo}-{hi}"
        elif lo is not None:
            text = f"Cycle {lo} or later"
        elif hi is not None:
            text = f"Cycle {hi} or earlier"
        else:
            return "unknown"
        if self.estimate is not None and not (lo is not None and lo == hi):
            text += f" (most likely Cycle {self.estimate})"
        return text

    def at_most(self, cycle: int) -> bool:
        """Whether the evidence allows the era to be ``cycle`` or earlier."""
        return self.cycle_min is None or self.cycle_min <= cycle

    def as_dict(self) -> dict:
        return {"label": self.label, "cycle_min": self.cycle_min, "cycle_max": self.cycle_max,
                "estimate": self.estimate, "evidence": list(self.evidence),
                "conflicts": list(self.conflicts)}


def project_cycle(code: str | None) -> int | None:
    """The cycle a project code was proposed in (``'2016.1.01435.S'`` → 4); None if not a code."""
    m = _PROJECT.match(code or "")
    if not m:
        return None
    year = int(m.group(1))
    if year in _YEAR_CYCLE:
        return _YEAR_CYCLE[year]
    return year - 2013 if year >= 2021 else None


def casa_cycle(version: str | None) -> int | None:
    """The cycle whose ALMA releases used this CASA version (``'4.7.2'`` → 4; approximate)."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if not m:
        return None
    v = (int(m.group(1)), int(m.group(2)))
    cycle = None
    for ver, c in _CASA_CYCLE:
        if v >= ver:
            cycle = c
    if cycle == 11 and v == (6, 6) and m.group(3) and int(m.group(3)) >= 6:
        cycle = 12  # the Cycle 12 pipeline runs CASA 6.6.6
    return cycle


def pipeline_cycle(version: str | None) -> int | None:
    """The cycle of a pipeline version: ``2024.1.0.8`` (year scheme) or ``Pipeline-CASA56-P1-B``."""
    v = version or ""
    m = re.match(r"(20\d\d)\.\d+\.\d+", v)
    if m:
        year = int(m.group(1))
        return year - 2013 if year >= 2021 else None
    m = re.search(r"CASA(\d)(\d)", v)
    return casa_cycle(f"{m.group(1)}.{m.group(2)}") if m else None


_CASA_RE = re.compile(r"\bCASA(?:[ _-]?version)?\s*[:=]?\s*v?(\d\.\d{1,2}\.\d{1,2}(?:[-.]\d+)?)",
                      re.IGNORECASE)
_PIPE_RE = re.compile(r"\b(Pipeline-CASA\d\d-P\d+-B|(?<![\d.])20\d\d\.\d+\.\d+\.\d+(?![\d.]))")


def versions_in_text(text: str) -> dict[str, str]:
    """CASA and pipeline versions named in a README or casa_commands.log (first of each)."""
    out: dict[str, str] = {}
    m = _CASA_RE.search(text or "")
    if m:
        out["casa"] = m.group(1)
    m = _PIPE_RE.search(text or "")
    if m:
        out["pipeline"] = m.group(1)
    return out


def naming_bounds(naming: str) -> tuple[int | None, int | None]:
    """Cycles a product naming style (``products.NAMING_*``) was delivered in."""
    return _NAMING_BOUNDS.get(naming, (None, None))


#: Auxiliary files kept loose in calibration/ before auxproducts.tgz (Cycle 1-4).
LOOSE_AUX = ("flux.csv", "antennapos.csv", "cont.dat")


def loose_aux_files(names: Iterable[str]) -> list[str]:
    """The flux.csv / antennapos.csv / cont.dat files among ``names`` (bare or prefixed)."""
    return [n for n in names if any(n == a or n.endswith(("." + a, "_" + a)) for a in LOOSE_AUX)]


def _any(names: Iterable[str], *suffixes: str) -> bool:
    return any(n.endswith(suffixes) for n in names)


def evidence_from_listing(*, project: str | None, readme: str | None, top: Iterable[str],
                          folders: Mapping[str, Iterable[str]], namings: Iterable[str] = (),
                          versions: Mapping[str, str] | None = None) -> list[Evidence]:
    """The era evidence of one member listing, strongest first (see the module docstring)."""
    ev: list[Evidence] = []
    pc = project_cycle(project)
    if pc is not None:
        ev.append(Evidence(f"project {project} proposed in Cycle {pc}", cycle_min=pc))
    script = tuple(folders.get("script", ()))
    calib = tuple(folders.get("calibration", ()))
    if readme == "README":
        ev.append(Evidence("README named 'README' (Cycle 1-4)", cycle_max=4))
    elif readme:
        ev.append(Evidence("README named member.<MOUS>.README.txt (Cycle 5 on)", cycle_min=5))
    if _any(script, "pipeline_manifest.xml"):
        ev.append(Evidence("pipeline_manifest.xml (Cycle 5 on)", cycle_min=5))
    if _any(calib, "auxproducts.tgz"):
        ev.append(Evidence("auxproducts.tgz (Cycle 5 on)", cycle_min=5))
    elif loose_aux_files(calib):
        ev.append(Evidence("flux.csv / antennapos.csv / cont.dat loose in calibration/ "
                           "(Cycle 1-4)", cycle_max=4))
    if any(re.search(r"\.s\d+\.caltables\.tgz\Z", n) for n in calib):
        ev.append(Evidence("s<k>.caltables.tgz tarballs (Cycle 10 on)", cycle_min=10))
    if "log" not in folders and _any(script, "casa_commands.log"):
        ev.append(Evidence("casa_commands.log in script/ and no log/ (Cycle 7)", cycle_min=7,
                           cycle_max=7))
    for naming in sorted(set(namings)):
        lo, hi = naming_bounds(naming)
        if lo is not None or hi is not None:
            span = f"Cycle {lo} on" if hi is None else f"up to Cycle {hi}"
            ev.append(Evidence(f"{naming} product names ({span})", cycle_min=lo, cycle_max=hi))
    versions = versions or {}
    cyc = pipeline_cycle(versions.get("pipeline"))
    if cyc is not None:
        ev.append(Evidence(f"pipeline {versions['pipeline']} (Cycle {cyc})", cycle_min=cyc,
                           cycle_max=cyc, hint=True))
    cyc = casa_cycle(versions.get("casa"))
    if cyc is not None:
        ev.append(Evidence(f"CASA {versions['casa']} (Cycle {cyc})", cycle_min=cyc,
                           cycle_max=cyc, hint=True))
    return ev


def estimate_era(evidence: Iterable[Evidence]) -> Era:
    """Combine evidence (strongest first) into an :class:`Era`."""
    lo: int | None = None
    hi: int | None = None
    used: list[str] = []
    conflicts: list[str] = []
    hints: list[int] = []
    start: int | None = None
    for e in evidence:
        if e.hint:
            used.append(e.what)
            hints.append(e.cycle_min)
            continue
        new_lo = lo if e.cycle_min is None else max(lo if lo is not None else e.cycle_min, e.cycle_min)
        new_hi = hi if e.cycle_max is None else min(hi if hi is not None else e.cycle_max, e.cycle_max)
        if new_lo is not None and new_hi is not None and new_lo > new_hi:
            conflicts.append(e.what)
            continue
        lo, hi = new_lo, new_hi
        used.append(e.what)
        if start is None and e.what.startswith("project "):
            start = e.cycle_min
    estimate = None
    for h in hints:
        if (lo is None or h >= lo) and (hi is None or h <= hi):
            estimate = h
            break
    if estimate is None:
        if lo is not None and lo == hi:
            estimate = lo
        elif start is not None:
            estimate = min(max(start, lo if lo is not None else start), hi if hi is not None else start)
        elif lo is not None and hi is not None:
            estimate = lo
    return Era(cycle_min=lo, cycle_max=hi, estimate=estimate, evidence=tuple(used),
               conflicts=tuple(conflicts))
