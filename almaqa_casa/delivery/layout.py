"""Find MOUS member folders and say what kind of delivery each one is.

A delivery unpacks to ``<project>/science_goal.<ous>/group.<ous>/member.<ous>/``
with ``calibration/ log/ product/ qa/ script/`` (and ``raw/`` once the ASDMs
are unpacked; seed §3).  ``find_members`` accepts any folder from the project
folder down to (and inside) a member; ``describe`` classifies a member from
the files present (restore.md §2.3: manual ⇔ per-EB
``*.ms.scriptForCalibration.py``; pipeline ⇔ PPR / ``casa_piperestorescript.py``
/ ``casa_pipescript.py``; seed §4.3: supplemental manual imaging ⇔
``product/manual_imaging.tgz``).

``classify`` is pure (works on a name listing, so tar archives can be
classified without unpacking); ``scan_member``/``find_members`` do the I/O
and never raise on unreadable folders or symlink loops.
"""
from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .naming import parse_name

__all__ = [
    "MEMBER_RE",
    "PROJECT_RE",
    "REQUIRED_SUBFOLDERS",
    "SUBFOLDERS",
    "Delivery",
    "MemberListing",
    "classify",
    "describe",
    "find_members",
    "member_levels",
    "scan_member",
    "scan_members",
]

SUBFOLDERS = ("calibration", "log", "product", "qa", "raw", "script")
#: raw/ appears only once the ASDM tar files are unpacked (seed §3 item 6).
REQUIRED_SUBFOLDERS = ("calibration", "log", "product", "qa", "script")
MEMBER_RE = re.compile(r"member\.(uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+)\Z")
GROUP_RE = re.compile(r"group\.uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+\Z")
SGOAL_RE = re.compile(r"science_goal\.uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+\Z")
PROJECT_RE = re.compile(r"\d{4}\.[A-Z0-9]\.\d{5}\.[A-Z]\Z")
_MAX_DEPTH = 6

_POL_STOKES = {"IQUV", "IQU", "QU", "Q", "U", "V", "P", "A", "POLI", "POLA",
               "Plinear", "Ptotal", "Pangle"}


@dataclass(frozen=True)
class MemberListing:
    """Names found in one member folder (pure data; from a folder or a tar).

    ``folders`` maps each subfolder present to the names directly inside it;
    ``top`` lists the names directly in the member folder.
    """

    mous: str
    path: str
    top: tuple[str, ...] = ()
    folders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    imaging_script_has_code: bool | None = None  #: scriptForImaging.py has non-comment lines
    parents: tuple[str, ...] = ()  #: names of group, science goal, project folders (nearest first)


@dataclass(frozen=True)
class Delivery:
    """What one MOUS delivery is (see module docstring)."""

    mous: str
    path: str
    folders: tuple[str, ...]
    readme: str | None
    calibration: str               #: 'pipeline', 'manual' or 'unknown'
    pipeline_rerun_only: bool      #: pipeline calibration with only casa_pipescript.py
    imaging: str                   #: 'pipeline', 'manual' or 'none'
    supplemental_manual: bool      #: pipeline imaging plus manual products / manual_imaging.tgz
    selfcal: bool
    full_polarization: bool
    total_power: bool
    scripts: tuple[str, ...]
    levels: dict = field(default_factory=dict)  #: project / science_goal / group names found

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _any(names: Iterable[str], *patterns: str) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def member_levels(parents: tuple[str, ...]) -> dict:
    """Name the group / science-goal / project levels above a member (None if not matching)."""
    names = list(parents) + [None, None, None]
    group, sgoal, project = names[0], names[1], names[2]
    return {
        "group": group if group and GROUP_RE.match(group) else None,
        "science_goal": sgoal if sgoal and SGOAL_RE.match(sgoal) else None,
        "project": project if project and PROJECT_RE.match(project) else None,
    }


def classify(listing: MemberListing) -> Delivery:
    """Classify a member from its file names (pure)."""
    f = listing.folders
    script = f.get("script", ())
    calib = f.get("calibration", ())
    product = f.get("product", ())
    manual_cal = _any(script, "*uid*.ms.scriptForCalibration.py", "*uid*.ms.scriptForSDCalibration.py")
    restore = _any(script, "*casa_piperestorescript.py")
    pipescript = _any(script, "*casa_pipescript.py")
    ppr = _any(script, "*PPR*.xml", "*pprequest.xml")
    if manual_cal:
        calibration = "manual"
    elif restore or ppr or pipescript:
        calibration = "pipeline"
    else:
        calibration = "unknown"
    rerun_only = calibration == "pipeline" and not restore and bool(pipescript)

    parsed = [p for p in (parse_name(n) for n in product) if p is not None]
    images = [p for p in parsed if p.kind in ("pbcor", "sd", "image")]
    manual_imgs = [p for p in images if p.manual]
    pipe_imgs = [p for p in images if not p.manual]
    supplemental_tgz = "manual_imaging.tgz" in product
    if calibration == "manual":
        imaging = "manual" if images else "none"
    elif pipe_imgs:
        imaging = "pipeline"
    elif manual_imgs or listing.imaging_script_has_code:
        imaging = "manual"
    else:
        imaging = "none"
    supplemental = imaging == "pipeline" and (supplemental_tgz or bool(manual_imgs))

    total_power = bool(
        _any(script, "*scriptForSDCalibration.py", "*scriptForSDImaging.py", "*hsd_*")
        or _any(calib, "*jyperk*.csv")
        or any(p.kind.startswith("sd") for p in parsed))
    full_pol = bool(_any(script, "*scriptForPolCalibration.py")
                    or any(p.stokes in _POL_STOKES and p.target_type == "sci" for p in parsed))
    selfcal = bool(any(p.selfcal for p in parsed) or _any(calib, "*selfcal.json"))
    readme_name = f"member.{listing.mous}.README.txt"
    readme = readme_name if readme_name in listing.top else None
    return Delivery(
        mous=listing.mous, path=listing.path, folders=tuple(sorted(f)), readme=readme,
        calibration=calibration, pipeline_rerun_only=rerun_only, imaging=imaging,
        supplemental_manual=supplemental, selfcal=selfcal, full_polarization=full_pol,
        total_power=total_power, scripts=tuple(sorted(script)),
        levels=member_levels(listing.parents),
    )


# ---- I/O --------------------------------------------------------------------
def _safe_listdir(path: Path, problems: list) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as exc:
        problems.append((str(path), f"cannot read folder: {exc.strerror or exc}"))
        return []


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _code_lines(path: Path) -> bool | None:
    try:
        with open(path, errors="replace") as fh:
            return any(l.strip() and not l.lstrip().startswith("#") for l in fh)
    except OSError:
        return None


def scan_members(path: str | os.PathLike) -> tuple[list[Path], list[tuple[str, str]]]:
    """Member folders at, below or above ``path``, plus (path, problem) pairs met on the way.

    Follows symlinked folders once (loops are cut by device/inode), stops
    ``_MAX_DEPTH`` levels down and does not descend into members.
    """
    problems: list[tuple[str, str]] = []
    root = Path(path)
    for cand in (root, *root.parents):
        if MEMBER_RE.match(cand.name):
            return [cand], problems
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            problems.append((str(folder), f"cannot stat: {exc.strerror or exc}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            problems.append((str(folder), "symlink loop or folder reached twice; not followed"))
            continue
        seen.add(key)
        for entry in _safe_listdir(folder, problems):
            if not _is_dir(entry):
                continue
            p = Path(entry.path)
            if MEMBER_RE.match(entry.name):
                found.append(p)
            elif depth + 1 < _MAX_DEPTH:
                stack.append((p, depth + 1))
    return sorted(found), problems


def find_members(path: str | os.PathLike) -> list[Path]:
    """MOUS member folders (``member.uid___*``) at, below or above ``path``."""
    return scan_members(path)[0]


def scan_member(member: str | os.PathLike) -> MemberListing:
    """List a member folder's top level and the names inside each subfolder."""
    member = Path(member)
    m = MEMBER_RE.match(member.name)
    mous = m.group(1) if m else member.name
    problems: list = []
    top = _safe_listdir(member, problems)
    folders: dict[str, tuple[str, ...]] = {}
    for e in top:
        if _is_dir(e):
            folders[e.name] = tuple(sorted(x.name for x in _safe_listdir(Path(e.path), problems)))
    has_code = None
    for name in folders.get("script", ()):
        if name.endswith("scriptForImaging.py"):
            has_code = bool(has_code) or bool(_code_lines(member / "script" / name))
    parents = tuple(p.name for p in list(member.absolute().parents)[:3])
    return MemberListing(mous=mous, path=str(member), top=tuple(sorted(e.name for e in top)),
                         folders=folders, imaging_script_has_code=has_code, parents=parents)


def describe(member: str | os.PathLike) -> Delivery:
    """Classify one member folder (I/O: lists it, then ``classify``)."""
    return classify(scan_member(member))
