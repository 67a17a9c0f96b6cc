"""Find MOUS member folders and say what kind of delivery each one is.

A delivery unpacks to ``<project>/science_goal.<ous>/group.<ous>/member.<ous>/``
with ``calibration/ log/ product/ qa/ script/`` (and ``raw/`` once the ASDMs
are unpacked; seed §3).  ``find_members`` accepts any folder from the project
folder down to (and inside) a member; ``describe`` classifies a member from
the files present (restore.md §2.3: manual ⇔ per-EB
``*.ms.scriptForCalibration.py``; pipeline ⇔ PPR / ``casa_piperestorescript.py``
/ ``casa_pipescript.py``; seed §4.3: supplemental manual imaging ⇔
``product/manual_imaging.tgz``; realworld.md: a semipass package has no
``calibration/``, no calibration scripts and no products), and estimates its
era (:mod:`.era`) so that a shape the observatory delivered in that era is
recognised as such (a ``README`` named ``README``, aux files loose in
``calibration/``, ``casa_commands.log`` in ``script/``, free-form manual
product names, CASA ``.mask`` folders).

``classify`` is pure (works on a name listing, so tar archives can be
classified without unpacking); ``scan_member``/``find_members`` do the I/O,
never raise on unreadable folders or symlink loops, and never open a special
file (FIFO, device, socket): :func:`read_text_head` reads regular files only.
"""
from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import era as _era
from .products import (
    IMAGE_ROLES,
    NAMING_FREE_FORM,
    POL_DERIVED,
    POL_INPUT,
    ProductFile,
    classify_name,
)

__all__ = [
    "KINDS",
    "MEMBER_RE",
    "PROJECT_RE",
    "README_NAMES",
    "REQUIRED_SUBFOLDERS",
    "SUBFOLDERS",
    "Delivery",
    "MemberListing",
    "classify",
    "describe",
    "find_members",
    "member_levels",
    "open_regular",
    "read_text_head",
    "readme_name",
    "scan_member",
    "scan_members",
    "versions_from_texts",
]

SUBFOLDERS = ("calibration", "log", "product", "qa", "raw", "script")
#: raw/ appears only once the ASDM tar files are unpacked (seed §3 item 6).
REQUIRED_SUBFOLDERS = ("calibration", "log", "product", "qa", "script")
MEMBER_RE = re.compile(r"member\.(uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+)\Z")
GROUP_RE = re.compile(r"group\.uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+\Z")
SGOAL_RE = re.compile(r"science_goal\.uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+\Z")
PROJECT_RE = re.compile(r"\d{4}\.[A-Z0-9]\.\d{5}\.[A-Z]\Z")
_MAX_DEPTH = 6

_POL_STOKES = frozenset(POL_INPUT + POL_DERIVED + ("Q", "U", "V"))
#: What a member is: pipeline- or manually calibrated, a semipass package, or not known.
KINDS = ("pipeline", "manual", "semipass", "unknown")
#: README names: ``member.<MOUS>.README.txt`` (Cycle 5 on) and ``README`` (Cycle 1-4).
README_NAMES = ("member.{mous}.README.txt", "README")
#: Bytes read from a README or casa_commands.log to find versions.
_TEXT_HEAD = 256 * 1024


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
    versions: Mapping[str, str] = field(default_factory=dict)  #: CASA/pipeline versions named in the README / casa_commands.log


@dataclass(frozen=True)
class Delivery:
    """What one MOUS delivery is (see module docstring).

    ``kind`` is one of :data:`KINDS`; ``calibration`` is the calibration type
    (pipeline, manual, unknown); ``era`` is :meth:`.era.Era.as_dict`;
    ``naming`` the product naming styles found (``products.NAMING_*``);
    ``shapes`` the era-specific layout features recognised (one line each).
    """

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
    kind: str = "unknown"          #: 'pipeline', 'manual', 'semipass' or 'unknown'
    era: dict = field(default_factory=dict)
    naming: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    versions: dict = field(default_factory=dict)

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


def readme_name(mous: str, names: Iterable[str]) -> str | None:
    """The README among a member's top-level names (either era's name), or None."""
    names = set(names)
    for pattern in README_NAMES:
        n = pattern.format(mous=mous)
        if n in names:
            return n
    return None


def classify(listing: MemberListing,
             product_files: Mapping[str, ProductFile | None] | None = None) -> Delivery:
    """Classify a member from its file names (pure).

    ``product_files`` may give the classification of the names in
    ``product/`` (``products.classify_name``) when the caller has it already.
    """
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

    known = product_files or {}
    files = [p for p in (known[n] if n in known else classify_name(n) for n in product)
             if p is not None]
    images = [p for p in files if p.role in IMAGE_ROLES]
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
        or any(p.role.startswith("sd") for p in files))
    full_pol = bool(_any(script, "*scriptForPolCalibration.py")
                    or any(p.stokes in _POL_STOKES and (p.parsed is None or p.parsed.target_type == "sci")
                           for p in files))
    selfcal = bool(any(p.parsed is not None and p.parsed.selfcal for p in files)
                   or _any(calib, "*selfcal.json"))
    readme = readme_name(listing.mous, listing.top)
    # semipass (realworld.md): qa/ and a tiny script/, raw data only: no calibration/ at all
    semipass = (calibration == "unknown" and "calibration" not in f and not images
                and ("qa" in f or "raw" in f))
    kind = "semipass" if semipass else calibration
    namings = tuple(sorted({p.naming for p in files}))
    levels = member_levels(listing.parents)
    era = _era.estimate_era(_era.evidence_from_listing(
        project=levels["project"], readme=readme, top=listing.top, folders=f, namings=namings,
        versions=listing.versions))
    return Delivery(
        mous=listing.mous, path=listing.path, folders=tuple(sorted(f)), readme=readme,
        calibration=calibration, pipeline_rerun_only=rerun_only, imaging=imaging,
        supplemental_manual=supplemental, selfcal=selfcal, full_polarization=full_pol,
        total_power=total_power, scripts=tuple(sorted(script)), levels=levels, kind=kind,
        era=era.as_dict(), naming=namings, shapes=_shapes(listing, readme, semipass, files),
        versions=dict(listing.versions),
    )


def _shapes(listing: MemberListing, readme: str | None, semipass: bool, files) -> tuple[str, ...]:
    """The era-specific layout features of a member, one line each (pure)."""
    f = listing.folders
    out = []
    if semipass:
        out.append("semipass package: QA0 semi-pass raw data only, no calibration/ and no "
                   "products (nothing to calibrate)")
    if readme == "README":
        out.append("README named 'README' (Cycle 1-4)")
    loose = _era.loose_aux_files(f.get("calibration", ()))
    if loose and not _any(f.get("calibration", ()), "*auxproducts.tgz"):
        out.append(", ".join(sorted(loose)) + " loose in calibration/, no auxproducts.tgz (Cycle 1-4)")
    if _any(f.get("calibration", ()), "*_flagtemplate.txt"):
        out.append("per-EB flag templates in calibration/ (Cycle 1-4)")
    if "log" not in f and _any(f.get("script", ()), "*casa_commands.log"):
        out.append("casa_commands.log in script/ and no log/ (Cycle 7)")
    n_free = sum(1 for p in files if p.naming == NAMING_FREE_FORM)
    if n_free:
        out.append(f"{n_free} free-form manual product name(s) (before the archive naming "
                   "scheme, Cycle 2-3)")
    n_casa = sum(1 for p in files if p.casa_image)
    if n_casa:
        out.append(f"{n_casa} CASA image folder(s) in product/ (e.g. .mask)")
    return tuple(out)


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


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor of a regular file; OSError for anything else.

    A FIFO, device or socket is never opened as data: the path is checked
    with ``stat`` first, then opened non-blocking (a FIFO swapped in between
    cannot block) and checked again on the descriptor.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{path}: not a regular file (FIFO, device or socket); not opened")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file (FIFO, device or socket); not opened")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_text_head(path: str | os.PathLike, limit: int = _TEXT_HEAD) -> str | None:
    """The first ``limit`` bytes of a regular file as text; None if it cannot be read."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit).decode("utf-8", errors="replace")


def _code_lines(path: Path) -> bool | None:
    text = read_text_head(path, 10_000_000)
    if text is None:
        return None
    return any(l.strip() and not l.lstrip().startswith("#") for l in text.splitlines())


def versions_from_texts(texts: Iterable[str | None]) -> dict[str, str]:
    """CASA / pipeline versions named in texts (README first, then casa_commands.log)."""
    out: dict[str, str] = {}
    for t in texts:
        if t:
            for k, v in _era.versions_in_text(t).items():
                out.setdefault(k, v)
    return out


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
            if entry.name.startswith(".") or not _is_dir(entry):
                continue    # hidden: our own extraction and record folders, never delivery
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
    top_names = tuple(sorted(e.name for e in top))
    texts = []
    readme = readme_name(mous, top_names)
    if readme:
        texts.append(read_text_head(member / readme))
    for sub in ("log", "script"):
        for name in folders.get(sub, ()):
            if name.endswith("casa_commands.log"):
                texts.append(read_text_head(member / sub / name))
    return MemberListing(mous=mous, path=str(member), top=top_names,
                         folders=folders, imaging_script_has_code=has_code, parents=parents,
                         versions=versions_from_texts(texts))


def describe(member: str | os.PathLike) -> Delivery:
    """Classify one member folder (I/O: lists it, then ``classify``)."""
    return classify(scan_member(member))
