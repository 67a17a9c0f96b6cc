"""Collect what a restore needs from one member folder (I/O, decides nothing).

Reads the file listing and the small delivered text files (PPR, manifest,
calapply.txt) into a :class:`MemberInfo`; parse errors surface here, before
any work is done.  The EB bookkeeping (which EBs to restore, semipass data,
missing ASDMs) is the pure :func:`match_ebs`.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from pathlib import Path

from ..delivery import layout
from ..delivery.calapply import CalApplication, read_calapply
from ..delivery.manifest import Manifest, read_manifest
from ..delivery.ppr import PPR, read_ppr
from ..errors import AlmaqaError

__all__ = [
    "DeliveryError",
    "MemberInfo",
    "dir_size",
    "inspect_member",
    "match_ebs",
    "uid_sort_key",
]


class DeliveryError(AlmaqaError, ValueError):
    """The delivery cannot be restored as it is; the message says what is missing."""


@dataclasses.dataclass
class MemberInfo:
    path: str
    mous: str
    calibration: str                                   # 'pipeline' | 'manual' | 'unknown'
    description: dict
    raw_asdms: dict[str, str]                          # uid -> raw/<uid>.asdm.sdm
    raw_sizes: dict[str, int]
    ppr: PPR | None = None
    ppr_path: str = ""
    manifest: Manifest | None = None
    manifest_path: str = ""
    restorescript: str = ""
    calapply: dict[str, list[CalApplication]] = dataclasses.field(default_factory=dict)
    calapply_paths: dict[str, str] = dataclasses.field(default_factory=dict)
    flagversions: dict[str, str] = dataclasses.field(default_factory=dict)
    caltables_tgz: dict[str, str] = dataclasses.field(default_factory=dict)  # session -> path
    sessions: dict[str, str] = dataclasses.field(default_factory=dict)       # uid -> session
    contdat: str = ""
    auxproducts: list[str] = dataclasses.field(default_factory=list)
    selfcal_json: str = ""
    products: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (pbcor, pb)
    usedimpipe: bool = False
    manual_scripts: dict[str, str] = dataclasses.field(default_factory=dict)  # uid -> script
    post_scripts: dict[str, str] = dataclasses.field(default_factory=dict)    # PolCal/FluxCal/ImagingPrep
    problems: list[str] = dataclasses.field(default_factory=list)


def uid_sort_key(uid: str) -> str:
    """scriptForPI's chronological order: zero-pad the hex ``X`` parts to 5 characters."""
    parts = uid.split("_")
    out = []
    for p in parts:
        if p.startswith("X") and re.fullmatch(r"X[0-9a-fA-F]+", p):
            out.append("X" + p[1:].rjust(5, "0"))
        else:
            out.append(p)
    return "_".join(out)


def match_ebs(wanted: list[str], raw: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(EBs to restore, semipass EBs in raw/ without calibration, missing ASDMs)."""
    ok = [u for u in wanted if u in raw]
    missing = [u for u in wanted if u not in raw]
    semipass = [u for u in raw if u not in wanted]
    return ok, semipass, missing


def dir_size(path: str | os.PathLike) -> int:
    """Bytes used below ``path`` (files and folders; links not followed)."""
    total = 0
    p = Path(path)
    if p.is_symlink() and p.resolve().is_dir():
        p = p.resolve()
    if p.is_file():
        return p.stat().st_size
    for root, _dirs, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _glob(folder: Path, *patterns: str) -> list[Path]:
    if not folder.is_dir():
        return []
    names = sorted(os.listdir(folder))
    return [folder / n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _unique(paths: list[Path], what: str, member: Path) -> Path | None:
    if len(paths) > 1:
        raise DeliveryError(f"{member}: non-unique {what}: " + ", ".join(p.name for p in paths))
    return paths[0] if paths else None


def _strip_uid(name: str, suffix: str) -> str:
    base = name[: -len(suffix)] if name.endswith(suffix) else name
    i = base.rfind("uid__")
    return base[i:] if i >= 0 else base


def inspect_member(member: str | os.PathLike) -> MemberInfo:
    """Read a member folder's listing, PPR, manifest and calapply files."""
    member = Path(member)
    desc = layout.describe(member)
    script, calib, raw, product = (member / d for d in ("script", "calibration", "raw", "product"))
    if not script.is_dir():
        raise DeliveryError(f"{member}: no script/ folder")
    if not calib.is_dir():
        raise DeliveryError(f"{member}: cannot find directory \"calibration\"")
    raw_asdms = {}
    raw_sizes = {}
    for p in _glob(raw, "uid*.asdm.sdm"):
        uid = p.name[: -len(".asdm.sdm")]
        raw_asdms[uid] = str(p)
        raw_sizes[uid] = dir_size(p)
    info = MemberInfo(path=str(member), mous=desc.mous, calibration=desc.calibration,
                      description=desc.as_dict(), raw_asdms=raw_asdms, raw_sizes=raw_sizes)

    ppr = _unique(_glob(script, "*PPR*.xml"), "PPR", member) or \
        _unique(_glob(script, "*cal*pprequest.xml"), "PPR", member) or \
        _unique(_glob(script, "*pprequest.xml"), "PPR", member)
    if ppr is not None:
        info.ppr_path = str(ppr)
        info.ppr = read_ppr(ppr)
    man = _glob(script, "*cal*pipeline_manifest.xml") or _glob(script, "*pipeline_manifest.xml")
    if man:
        info.manifest_path = str(man[0])
        info.manifest = read_manifest(man[0])
    rs = _unique(_glob(script, "*casa_piperestorescript.py"), "casa_piperestorescript.py", member)
    info.restorescript = str(rs) if rs else ""

    for p in _glob(calib, "*.ms.calapply.txt"):
        uid = _strip_uid(p.name, ".ms.calapply.txt")
        info.calapply_paths[uid] = str(p)
        info.calapply[uid] = read_calapply(p)
    for p in _glob(calib, "*.ms.flagversions.tgz"):
        info.flagversions[_strip_uid(p.name, ".ms.flagversions.tgz")] = str(p)
    for p in _glob(calib, "*.caltables.tgz"):
        if p.name.endswith(".auxcaltables.tgz"):
            continue
        m = re.search(r"\.(session_[^.]+|default)\.caltables\.tgz$", p.name)
        info.caltables_tgz[m.group(1) if m else "default"] = str(p)
    if info.manifest is not None:
        for sess, name in info.manifest.caltables.items():
            if (calib / name).is_file():
                info.caltables_tgz[sess] = str(calib / name)
        for uid, e in info.manifest.asdms.items():
            info.sessions[uid] = e.session
    if info.ppr is not None:
        for uid, sess in info.ppr.sessions.items():
            info.sessions.setdefault(uid, sess)
    cont = _glob(calib, "*cont.dat")
    info.contdat = str(cont[0]) if cont else ""
    info.auxproducts = [str(p) for p in (_glob(calib, "*auxproducts.tgz") + _glob(calib, "*supporting.tgz"))]
    sc = _glob(calib, "*selfcal.json")
    info.selfcal_json = str(sc[0]) if len(sc) == 1 else ""

    # products: *.pbcor.fits with *.pb.fits(.gz) (or older *.flux.fits)
    for p in _glob(product, "*.pbcor.fits"):
        stem = p.name[: -len(".pbcor.fits")]
        cands = []
        for suffix in (".pb.fits", ".pb.fits.gz", ".flux.fits", ".flux.fits.gz"):
            cands.append(product / (stem + suffix))
            # continuum tt0 products: <stem>.tt0.pbcor.fits <-> <stem>.pb.tt0.fits
            if stem.endswith(".tt0"):
                cands.append(product / (stem[:-4] + suffix.replace(".fits", ".tt0.fits", 1)))
        pb = next((c for c in cands if c.is_file()), None)
        if pb is not None:
            info.products.append((str(p), str(pb)))
        else:
            info.problems.append(f"{p.name}: no primary beam (*.pb.fits[.gz]) found")

    # pipeline imaging only (scriptForPI usedimpipe)
    if info.ppr is not None:
        nmake = sum(1 for t in info.ppr.tasks if t.startswith("hif_makeimages"))
        sci = _glob(product, "*_sci.spw*.fits")
        imaging_empty = not desc.as_dict().get("scripts") or not any(
            n.endswith("scriptForImaging.py") for n in desc.scripts) or \
            _imaging_script_empty(script)
        info.usedimpipe = nmake > 1 and bool(sci) and imaging_empty

    for p in _glob(script, "*uid*.ms.scriptForCalibration.py", "*uid*.ms.scriptForSDCalibration.py"):
        suffix = ".ms.scriptForSDCalibration.py" if p.name.endswith("SDCalibration.py") \
            else ".ms.scriptForCalibration.py"
        info.manual_scripts[_strip_uid(p.name, suffix)] = str(p)
    for kind in ("scriptForPolCalibration.py", "scriptForFluxCalibration.py",
                 "scriptForImagingPrep.py"):
        u = _unique(_glob(script, f"*{kind}"), kind, member)
        if u is not None:
            info.post_scripts[kind] = str(u)
    return info


def _imaging_script_empty(script: Path) -> bool:
    for p in _glob(script, "*scriptForImaging.py"):
        try:
            with open(p, errors="replace") as fh:
                if any(l.strip() and not l.lstrip().startswith("#") for l in fh):
                    return False
        except OSError:
            return False
    return True
