"""The science goal an ASDM states: ``SBSummary.xml`` (and spw bandwidths from ``SpectralWindow.xml``).

Pure parser (no CASA, no I/O: callers pass the bytes).  The observatory
copies the PI's goals from the Observing Tool into every EB's SBSummary
table as ``"key = value unit"`` strings, e.g. (a real Cycle 7 file)::

    <numScienceGoal> 11 </numScienceGoal>
    <scienceGoal> 1 11 &quot;representativeFrequency = 636.96 GHz&quot;
      &quot;minAcceptableAngResolution = 0.0 arcsec&quot; ... &quot;sensitivityGoal = 5.5 mJy&quot;
      &quot;representativeBandwidth = 2167.18 MHz&quot; ... </scienceGoal>

Keys are read as the ALMA pipeline reads them
(``pipeline/infrastructure/tablereader.py``: the keyword is the text before
``=`` without blanks); a value that is zero or negative means "not set"
(a resolution range is unset only when both ends are; a beam axial ratio of
999.999 means "no limit").  ``sensitivityGoal`` is in Jy (per beam).
Entries without ``=`` (exportasdm writes ``"science goal t.b.d."``) state
no goal.  A file that is not well-formed XML, or a goal whose value cannot
be read, is an :class:`SBSummaryError` naming file and line.

``SpectralWindow.xml`` gives each spectral window's total bandwidth, used
for the bandwidth of a continuum image made from several windows (MS spw
ids follow the ASDM's ``SpectralWindow_<n>`` ids, as importasdm keeps them).
"""
from __future__ import annotations

import dataclasses
import math
import re
import xml.etree.ElementTree as ET

from ..errors import InputError

__all__ = ["MAX_SBSUMMARY_BYTES", "MAX_SPW_BYTES", "SBSummaryError", "ScienceGoal", "SpwInfo",
           "parse_goal_entries", "parse_sbsummary", "parse_spectral_windows", "to_unit"]

MAX_SBSUMMARY_BYTES = 1 << 20     #: real SBSummary.xml files are a few kB
MAX_SPW_BYTES = 256 << 20         #: SpectralWindow.xml lists every channel frequency

#: Unit factors to Hz, arcsec and Jy (what the goals are written in).
_UNITS = {
    "Hz": {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "thz": 1e12},
    "arcsec": {"arcsec": 1.0, "mas": 1e-3, "arcmin": 60.0, "deg": 3600.0,
               "rad": 180.0 / math.pi * 3600.0},
    "Jy": {"jy": 1.0, "mjy": 1e-3, "ujy": 1e-6, "µjy": 1e-6, "μjy": 1e-6, "njy": 1e-9},
}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUM})\s*([^\s\d].*?)?\s*$")
_QUOTED = re.compile(r'"([^"]*)"')
_SPW_ID = re.compile(r"SpectralWindow_(\d+)\Z")


class SBSummaryError(InputError):
    """An ASDM table (SBSummary.xml, SpectralWindow.xml) cannot be read; names file and line."""


def to_unit(text: str, dim: str, where: str) -> float:
    """``'2167.18 MHz'`` → 2.16718e9 for ``dim='Hz'``; a bare number only for ``dim=''``.

    ``Jy/beam`` is accepted as Jy.  Raises :class:`SBSummaryError` (``where``
    names file and line) when the text is not a number in a unit of ``dim``.
    """
    m = _QUANTITY.match(text)
    if m is None:
        raise SBSummaryError(f"{where}: {text!r} is not a number with a unit")
    value, unit = float(m.group(1)), (m.group(2) or "").strip()
    if not dim:
        if unit:
            raise SBSummaryError(f"{where}: {text!r} should be a plain number")
        return value
    key = unit.lower().replace(" ", "")
    if dim == "Jy" and key.endswith("/beam"):
        key = key[: -len("/beam")]
    factor = _UNITS[dim].get(key)
    if factor is None:
        raise SBSummaryError(f"{where}: {text!r} has no unit of {dim} "
                             f"(known: {', '.join(sorted(_UNITS[dim]))})")
    return value * factor


@dataclasses.dataclass(frozen=True)
class ScienceGoal:
    """The goals of one SBSummary row; None where the file does not state them."""

    file: str
    line: int
    representative_frequency_hz: float | None = None
    representative_bandwidth_hz: float | None = None
    sensitivity_goal_jy_per_beam: float | None = None
    min_resolution_arcsec: float | None = None
    max_resolution_arcsec: float | None = None
    dynamic_range: float | None = None
    max_beam_axial_ratio: float | None = None
    spectral_dynamic_range_bandwidth_hz: float | None = None
    representative_source: str | None = None
    representative_window: str | None = None
    sb_name: str | None = None
    entries: tuple[tuple[str, str], ...] = ()

    @property
    def states_requirements(self) -> bool:
        """True if it gives a resolution range or a sensitivity goal."""
        return (self.max_resolution_arcsec is not None
                or self.sensitivity_goal_jy_per_beam is not None)

    def key(self) -> tuple:
        """What must agree between the EBs of one SB (everything but file and line)."""
        return dataclasses.astuple(dataclasses.replace(self, file="", line=0))

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["entries"] = dict(self.entries)
        return d


def _positive(x: float | None) -> float | None:
    return x if x is not None and x > 0 else None


def parse_goal_entries(entries: list[str], file: str, line: int) -> ScienceGoal:
    """A :class:`ScienceGoal` from the ``"key = value"`` strings of one row."""
    where = f"{file}, line {line}"
    raw: dict[str, str] = {}
    for e in entries:
        if "=" not in e:
            continue  # a placeholder such as "science goal t.b.d.": no goal stated
        k, v = e.split("=", 1)
        raw.setdefault(k.replace(" ", ""), v.strip())

    def q(key: str, dim: str) -> float | None:
        text = raw.get(key)
        if text is None or text.lower() in ("", "none"):
            return None
        return to_unit(text, dim, f"{where} ({key})")

    lo, hi = q("minAcceptableAngResolution", "arcsec"), q("maxAcceptableAngResolution", "arcsec")
    if hi is None or hi <= 0:
        lo = hi = None  # an unset range (both 0), or only a lower end: nothing to check
    elif lo is not None and lo > hi:
        raise SBSummaryError(f"{where}: minAcceptableAngResolution {lo} arcsec is larger than "
                             f"maxAcceptableAngResolution {hi} arcsec")
    else:
        lo = max(lo or 0.0, 0.0)
    ratio = q("maxAllowedBeamAxialRatio", "")
    text = {k: (raw.get(k) or None) for k in ("representativeSource", "representativeWindow",
                                              "SBName")}
    if text["representativeWindow"] and text["representativeWindow"].lower() == "none":
        text["representativeWindow"] = None
    return ScienceGoal(
        file=file, line=line,
        representative_frequency_hz=_positive(q("representativeFrequency", "Hz")),
        representative_bandwidth_hz=_positive(q("representativeBandwidth", "Hz")),
        sensitivity_goal_jy_per_beam=_positive(q("sensitivityGoal", "Jy")),
        min_resolution_arcsec=lo, max_resolution_arcsec=hi,
        dynamic_range=_positive(q("dynamicRange", "")),
        max_beam_axial_ratio=ratio if ratio is not None and 0 < ratio < 999.0 else None,
        spectral_dynamic_range_bandwidth_hz=_positive(q("spectralDynamicRangeBandWidth", "Hz")),
        representative_source=text["representativeSource"],
        representative_window=text["representativeWindow"], sb_name=text["SBName"],
        entries=tuple(raw.items()))


def _line_of(text: str, needle: str, start: int = 0) -> tuple[int, int]:
    """(1-based line, offset) of ``needle`` in ``text`` from ``start`` ((0, -1) if absent)."""
    i = text.find(needle, start)
    return (text.count("\n", 0, i) + 1, i) if i >= 0 else (0, -1)


def _xml_root(data: bytes, file: str, table: str) -> tuple[ET.Element, str]:
    """The parsed table and its text; refuses DTDs (entity expansion) and malformed XML."""
    text = data.decode("latin-1")  # ASDM tables declare ISO-8859-1; lines stay countable
    for bad in ("<!DOCTYPE", "<!ENTITY"):
        line, _ = _line_of(text, bad)
        if line:
            raise SBSummaryError(f"{file}, line {line}: {bad[2:]} declarations are not accepted "
                                 f"in an ASDM table")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else 0
        raise SBSummaryError(f"{file}, line {line}: not well-formed XML ({exc})") from None
    if not root.tag.endswith(table):
        raise SBSummaryError(f"{file}, line 1: root element <{root.tag}> is not <{table}>")
    return root, text


def _child_text(row: ET.Element, name: str) -> str | None:
    el = row.find(name)
    return None if el is None or el.text is None else el.text.strip()


def _string_array(text: str, where: str) -> list[str]:
    """``'1 2 "a = 1" "b = 2"'`` → ['a = 1', 'b = 2'] (the ASDM 1-D string array form)."""
    head = text.split('"', 1)[0].split()
    items = _QUOTED.findall(text)
    try:
        dims = [int(x) for x in head]
    except ValueError:
        raise SBSummaryError(f"{where}: string array does not start with its dimensions") from None
    if len(dims) < 2 or dims[0] != len(dims) - 1 or math.prod(dims[1:]) != len(items):
        raise SBSummaryError(f"{where}: string array declares {dims[1:] if dims else '?'} "
                             f"values but holds {len(items)}")
    return items


def parse_sbsummary(data: bytes, file: str) -> list[ScienceGoal]:
    """The science goal of each row of an ``SBSummary.xml``.

    Raises :class:`SBSummaryError` naming file and line when the XML or a
    goal cannot be read, or ``numScienceGoal`` disagrees with the list.
    """
    root, text = _xml_root(data, file, "SBSummaryTable")
    goals = []
    pos = 0
    for row in root.iter("row"):
        line, at = _line_of(text, "<scienceGoal>", pos)
        pos = at + 1 if at >= 0 else pos
        sg = _child_text(row, "scienceGoal")
        if sg is None:
            goals.append(ScienceGoal(file=file, line=line))
            continue
        where = f"{file}, line {line}"
        items = _string_array(sg, where)
        n = _child_text(row, "numScienceGoal")
        if n is not None and n.isdigit() and int(n) != len(items):
            raise SBSummaryError(f"{where}: numScienceGoal is {n} but scienceGoal lists "
                                 f"{len(items)} entries")
        goals.append(parse_goal_entries(items, file, line))
    return goals


@dataclasses.dataclass(frozen=True)
class SpwInfo:
    """One spectral window of an ASDM."""

    id: int
    name: str
    ref_freq_hz: float
    bandwidth_hz: float
    nchan: int


def parse_spectral_windows(data: bytes, file: str) -> dict[int, SpwInfo]:
    """Spectral windows of a ``SpectralWindow.xml`` by their ``SpectralWindow_<n>`` number."""
    root, text = _xml_root(data, file, "SpectralWindowTable")
    out: dict[int, SpwInfo] = {}
    pos = 0
    for row in root.iter("row"):
        line, at = _line_of(text, "<spectralWindowId>", pos)
        pos = at + 1 if at >= 0 else pos
        where = f"{file}, line {line}"
        sid = _SPW_ID.match(_child_text(row, "spectralWindowId") or "")
        if sid is None:
            raise SBSummaryError(f"{where}: spectralWindowId is not SpectralWindow_<n>")
        try:
            bw = float(_child_text(row, "totBandwidth") or "nan")
            ref = float(_child_text(row, "refFreq") or "nan")
            nchan = int(_child_text(row, "numChan") or "0")
        except ValueError as exc:
            raise SBSummaryError(f"{where}: {exc}") from None
        if not bw > 0:
            raise SBSummaryError(f"{where}: totBandwidth missing or not positive")
        out[int(sid.group(1))] = SpwInfo(int(sid.group(1)), _child_text(row, "name") or "",
                                         ref, bw, nchan)
    return out
