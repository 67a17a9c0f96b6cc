"""The member model: what one MOUS delivery is and holds, built once from every source.

Every task asks this model instead of re-reading the delivery: its kind
(pipeline or manual calibration, interferometry or total power, semipass),
its EBs, each EB's session and caltables tarball, the restore pre-steps of
its era, the post scripts scriptForPI.py runs, the auxiliary files (loose or
in an auxproducts tarball), the primary-beam pairs of its products and the
CASA / pipeline versions that made it.  A rule about a delivery lives here
(or in the pure module it calls), once.

:func:`read_member` does the I/O: it lists the member folder and reads the
small delivered texts (PPR, manifest, restore script, calapply lists,
README, command log), each bounded in size and never a special file.
Parse errors surface here, naming file and line, before any work is done.
The decisions (kind, EB list, sessions, import options) are pure functions
below it.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from .. import safeio
from ..errors import AlmaqaError
from . import layout
from .calapply import CalApplication, read_calapply
from .contdat import ContDat, parse_contdat
from .manifest import Manifest, read_manifest
from .ppr import PPR, read_ppr
from .products import product_sets
from .restorescript import RestoreScript, read_restore_script
from .selfcal import SelfcalRecord, parse_selfcal_json
from .sessions import SessionMap, resolve_sessions, tarball_session
from .versions import DeliveryVersions, versions_from_text

__all__ = ["EB", "Member", "DeliveryError", "read_member", "uid_sort_key", "match_ebs",
           "POST_ORDER", "ImportOptions", "import_options", "dir_size", "read_small_text",
           "read_delivered_text", "parse_delivered"]

T = TypeVar("T")

#: scriptForPI.py's order of the scripts it runs from calibrated/ after the EBs
POST_ORDER = ("scriptForPolCalibration.py", "scriptForFluxCalibration.py",
              "scriptForImagingPrep.py")
#: Largest delivered text read into memory (PPR, manifest, calapply, README ...).
MAX_TEXT_BYTES = 20_000_000


class DeliveryError(AlmaqaError, ValueError):
    """The delivery cannot be used as it is; the message names the file and what is wrong."""


# ---- pure helpers ------------------------------------------------------------------
def uid_sort_key(uid: str) -> str:
    """scriptForPI's chronological order: zero-pad the hex ``X`` parts to 5 characters
    ("EB UIDs contain numbers which are not zero-padded")."""
    out = []
    for p in uid.split("_"):
        if re.fullmatch(r"X[0-9a-fA-F]+", p):
            out.append("X" + p[1:].rjust(5, "0"))
        else:
            out.append(p)
    return "_".join(out)


def match_ebs(wanted: Sequence[str], raw: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(EBs to restore, semipass EBs in raw/ without calibration, missing ASDMs)."""
    ok = [u for u in wanted if u in raw]
    missing = [u for u in wanted if u not in raw]
    semipass = [u for u in raw if u not in wanted]
    return ok, semipass, missing


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    """How the observatory's restore imported an EB (``importasdm`` keywords)."""

    ocorr_mode: str = "ca"
    asis: str = ""
    bdfflags: bool = True
    with_pointing_correction: bool = True

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: hifa_restoredata's asis list (ALMA pipelines up to 2024; restore.md §4.2).
ASIS_IF = "SBSummary ExecBlock Antenna Annotation Station Receiver Source CalAtmosphere CalWVR CalPointing"
#: hsd_restoredata's asis list (pipeline/hsd/tasks/restoredata).
ASIS_TP = ("SBSummary ExecBlock Annotation Antenna Station Receiver Source CalAtmosphere CalWVR "
           "SpectralWindow")
#: hif_restoredata (Cycles 1-3) and the generic h_restoredata copy no ASDM table verbatim.
ASIS_OLD = ""


def import_options(script: RestoreScript | None, total_power: bool) -> ImportOptions:
    """The import options of the delivery's restore (pure).

    The restore task's defaults for its generation (``hsd_`` total power:
    ``ocorr_mode='ao'`` and its asis list; ``hif_``/``h_``: no asis list;
    ``hifa_``: the ALMA list), overridden by what the script passes
    literally.  The SACM/JAO form imports without BDF flags first.
    """
    call = script.call if script else None
    task = call.task if call else ("hsd_restoredata" if total_power else "hifa_restoredata")
    if task.startswith("hsd"):
        base = ImportOptions(ocorr_mode="ao", asis=ASIS_TP)
    elif task in ("hif_restoredata", "h_restoredata"):
        base = ImportOptions(asis=ASIS_OLD)
    else:
        base = ImportOptions(asis=ASIS_IF)
    kw = {}
    if call is not None:
        for name in ("ocorr_mode", "asis", "bdfflags"):
            v = call.option(name)
            if isinstance(v, type(getattr(base, name))):
                kw[name] = v
    if script is not None and script.sacm:
        kw["bdfflags"] = False
    return dataclasses.replace(base, **kw)


def kind_of(desc: layout.Delivery, script: RestoreScript | None) -> tuple[str, bool]:
    """(kind, total_power): the kind is :func:`layout.classify`'s ('pipeline',
    'manual', 'semipass', 'unknown'); total power also when the restore
    script calls ``hsd_restoredata`` (pure)."""
    tp = bool(desc.total_power or (script and script.call and script.call.kind == "total power"))
    return desc.kind, tp


# ---- the model ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EB:
    """One execution block the delivery calibrates."""

    uid: str
    asdm: str | None            #: raw/<uid>.asdm.sdm (None: not downloaded)
    raw_bytes: int
    session: str | None         #: normalised session name (pipeline)
    caltables: str | None       #: the session's caltables tarball (pipeline)
    session_source: str         #: where the session came from
    calapply: str | None        #: calibration/<uid>.ms.calapply.txt (pipeline)
    flagversions: str | None    #: calibration/<uid>.ms.flagversions.tgz (pipeline)
    script: str | None          #: script/<uid>.ms.scriptForCalibration.py (manual)


@dataclasses.dataclass
class Member:
    """One MOUS member folder, as every task sees it (see the module docstring)."""

    path: str
    mous: str
    kind: str                          #: 'pipeline' | 'manual' | 'semipass' | 'unknown'
    total_power: bool
    description: dict                  #: layout.classify's view (imaging, polarization ...)
    ebs: tuple[EB, ...]
    raw_asdms: dict[str, str]          #: every ASDM in raw/: uid -> path
    raw_sizes: dict[str, int]
    semipass: tuple[str, ...]          #: ASDMs in raw/ the delivery does not calibrate
    missing: tuple[str, ...]           #: EBs calibrated without their ASDM in raw/
    ppr: PPR | None = None
    ppr_path: str = ""
    manifest: Manifest | None = None
    manifest_path: str = ""
    restore_script: RestoreScript | None = None
    restorescript: str = ""            #: its path
    session_map: SessionMap | None = None
    import_opts: ImportOptions = dataclasses.field(default_factory=ImportOptions)
    calapply: dict[str, list[CalApplication]] = dataclasses.field(default_factory=dict)
    calapply_paths: dict[str, str] = dataclasses.field(default_factory=dict)
    flagversions: dict[str, str] = dataclasses.field(default_factory=dict)
    caltables_tgz: dict[str, str] = dataclasses.field(default_factory=dict)   #: session -> path
    auxproducts: list[str] = dataclasses.field(default_factory=list)
    aux_members: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    aux_files: dict[str, str] = dataclasses.field(default_factory=dict)   #: loose: name -> path
    contdat: str = ""                  #: cont.dat: loose path, or '<auxproducts.tgz>::<member>'
    contdat_parsed: ContDat | None = None
    contdat_error: str = ""            #: why cont.dat cannot be read (file and line)
    selfcal_json: str = ""             #: loose, or '<auxproducts.tgz>::<member>'
    selfcal: SelfcalRecord | None = None   #: selfcal.json parsed (delivery/selfcal.py)
    selfcal_error: str = ""            #: why selfcal.json cannot be read (file and line)
    jyperk: str = ""                   #: loose, or '<auxproducts.tgz>::<member>'
    manual_scripts: dict[str, str] = dataclasses.field(default_factory=dict)
    post_scripts: dict[str, str] = dataclasses.field(default_factory=dict)
    products: list[tuple[str, str]] = dataclasses.field(default_factory=list)   #: (pbcor, pb)
    usedimpipe: bool = False
    versions: DeliveryVersions = dataclasses.field(default_factory=DeliveryVersions)
    warnings: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    # -- compatibility with the restore planners' vocabulary
    @property
    def calibration(self) -> str:
        return self.kind

    @property
    def sessions(self) -> dict[str, str]:
        return {e.uid: e.session for e in self.ebs if e.session}

    @property
    def eb_uids(self) -> list[str]:
        return [e.uid for e in self.ebs]

    def eb(self, uid: str) -> EB:
        for e in self.ebs:
            if e.uid == uid:
                return e
        raise KeyError(uid)

    @property
    def post_order(self) -> list[tuple[str, str]]:
        """(kind, path) of the post scripts in scriptForPI.py's order."""
        return [(k, self.post_scripts[k]) for k in POST_ORDER if k in self.post_scripts]

    def summary(self) -> dict:
        """A JSON-able description for results, logs and the dry run."""
        sm = self.session_map
        return {
            "member": self.path, "mous": self.mous, "kind": self.kind,
            "total_power": self.total_power, "ebs": self.eb_uids,
            "sessions": {e.uid: {"session": e.session, "caltables": e.caltables and
                                 os.path.basename(e.caltables), "source": e.session_source}
                         for e in self.ebs if self.kind == "pipeline"},
            "session_sources": list(sm.sources) if sm else [],
            "semipass": list(self.semipass), "missing": list(self.missing),
            "presteps": ({"bdfflags": False, "fixsyscaltimes": list(
                self.restore_script.presteps_fixsyscaltimes)}
                if self.restore_script and self.restore_script.sacm else None),
            "import": self.import_opts.as_dict(),
            "post_scripts": [os.path.basename(p) for _, p in self.post_order],
            "versions": self.versions.as_dict(),
            "warnings": list(self.warnings),
        }


# ---- I/O ---------------------------------------------------------------------------
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


def read_small_text(path: str | os.PathLike, limit: int = MAX_TEXT_BYTES) -> str:
    """A delivered text file (never a special file, at most ``limit`` bytes).

    Undecodable bytes are replaced: scripts and logs of old eras are not
    always UTF-8, and what is read from them is ASCII.  Raises the
    :mod:`almaqa_casa.safeio` errors (``InputError``) naming the file.
    """
    return safeio.read_bytes(path, limit, what="delivered text").decode("utf-8", "replace")


def _aux_text(tgz: str, member: str, limit: int = 16 * 2**20) -> str:
    """One small regular file of an auxiliary tarball, read in memory (no extraction)."""
    with tarfile.open(tgz, mode="r:*") as tar:
        info = tar.getmember(member)
        if not info.isfile() or info.size > limit:
            raise DeliveryError(f"{tgz}: member {member!r} is not a small regular file "
                                f"(at most {limit} bytes)")
        fh = tar.extractfile(info)
        data = fh.read(limit + 1) if fh else b""
    return safeio.decode_text(data, f"{tgz}::{member}")


def read_delivered_text(where: str, limit: int = MAX_TEXT_BYTES) -> str:
    """A small delivered text: a file, or ``<tarball>::<member>`` as the member model
    names files inside the auxiliary tarballs (read in memory, nothing extracted).

    Raises :class:`~almaqa_casa.errors.AlmaqaError` (or ``OSError``,
    ``tarfile.TarError``, ``KeyError`` for an unreadable tarball) naming the file."""
    if "::" in where:
        tgz, name = where.split("::", 1)
        return _aux_text(tgz, name, limit)
    return read_small_text(where, limit)


def parse_delivered(where: str, parse: Callable[[str, str], T],
                    limit: int = MAX_TEXT_BYTES) -> tuple[T | None, str]:
    """``(parse(text, where), "")`` for the small delivered text ``where`` (see
    :func:`read_delivered_text`), or ``(None, why)`` when it cannot be read or parsed:
    the member model records a bad auxiliary file and the planners judge it."""
    try:
        return parse(read_delivered_text(where, limit), where), ""
    except (AlmaqaError, OSError, tarfile.TarError, KeyError) as exc:
        return None, str(exc)


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _glob(folder: Path, *patterns: str) -> list[Path]:
    return [folder / n for n in _names(folder) if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _regular(p: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(p).st_mode)
    except OSError:
        return False


def _unique(paths: list[Path], what: str, member: Path) -> Path | None:
    if len(paths) > 1:
        raise DeliveryError(f"{member}/script: non-unique {what}: "
                            + ", ".join(p.name for p in paths) + " (scriptForPI.py requires one)")
    return paths[0] if paths else None


def _strip_uid(name: str, suffix: str) -> str:
    base = name[: -len(suffix)] if name.endswith(suffix) else name
    i = base.rfind("uid__")
    return base[i:] if i >= 0 else base


def _tar_names(path: Path) -> tuple[str, ...]:
    """Member names of a small auxiliary tarball (listing only; nothing extracted)."""
    if not _regular(path):
        return ()
    try:
        with tarfile.open(path, mode="r:*") as tar:
            names = []
            for i, m in enumerate(tar):
                if i > 10_000:
                    break
                names.append(m.name)
            return tuple(names)
    except (tarfile.TarError, OSError, EOFError):
        return ()


def _in_aux(aux_members: dict[str, tuple[str, ...]], pattern: str) -> str:
    for tgz, names in aux_members.items():
        for n in names:
            if fnmatch.fnmatchcase(os.path.basename(n), pattern):
                return f"{tgz}::{n}"
    return ""


def _pb_pairs(product: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(pbcor FITS, pb) pairs of product/ (the one pairing rule,
    :func:`almaqa_casa.delivery.products.product_sets`) and the pbcor images
    without a primary beam.  Special files are never taken for products."""
    names, problems = [], []
    for n in _names(product):
        p = product / n
        if _regular(p) or (p.is_dir() and not p.is_symlink()):
            names.append(n)
        elif os.path.lexists(p) and not p.is_dir():
            problems.append(f"{n}: not a regular file (FIFO, device or socket); skipped")
    pairs = []
    for ps in product_sets(names):
        if ps.kind != "pbcor" or not ps.image.endswith((".fits", ".fits.gz")):
            continue
        if ps.pb:
            pairs.append((str(product / ps.image), str(product / ps.pb)))
        elif ps.needs_pb:
            problems.append(f"{ps.image}: no primary beam (*.pb.fits[.gz] or *.flux.fits[.gz]) found")
    return pairs, problems


def _imaging_script_empty(script: Path) -> bool:
    for p in _glob(script, "*scriptForImaging.py"):
        try:
            text = read_small_text(p)
        except (OSError, DeliveryError):
            return False
        if any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
            return False
    return True


def _pipeline_ebs(ppr: PPR | None, script: RestoreScript | None, manifest: Manifest | None,
                  warnings: list[str]) -> list[str]:
    """The EBs a pipeline delivery calibrates: the PPR's (as scriptForPI.py), else the
    restore script's, else the manifest's; a disagreement is a warning."""
    lists = [(label, names) for label, names in (
        ("PPR", list(ppr.asdms) if ppr else []),
        ("restore script", [u for c in script.calls for u in c.vis] if script else []),
        ("manifest", list(manifest.asdms) if manifest else [])) if names]
    if not lists:
        return []
    label, chosen = lists[0]
    for other, names in lists[1:]:
        if set(names) != set(chosen):
            warnings.append(f"the {label} lists EB(s) {', '.join(sorted(chosen))}, the {other} "
                            f"{', '.join(sorted(names))}; restoring the {label}'s")
    return list(dict.fromkeys(chosen))


def read_member(member: str | os.PathLike) -> Member:
    """Build the :class:`Member` of one ``member.uid___*`` folder.

    Raises
    ------
    DeliveryError
        A delivered text that cannot be read (names file and line, via the
        parsers' own errors, which are all ``AlmaqaError`` / ``ValueError``),
        non-unique scripts scriptForPI.py would refuse, a missing script/.
    """
    member = Path(member)
    listing = layout.scan_member(member)
    desc = layout.classify(listing)
    script_dir, calib, raw, product = (member / d for d in ("script", "calibration", "raw", "product"))
    warnings: list[str] = []
    problems: list[str] = []

    raw_asdms, raw_sizes = {}, {}
    for p in _glob(raw, "uid*.asdm.sdm"):
        uid = p.name[: -len(".asdm.sdm")]
        raw_asdms[uid] = str(p)
        raw_sizes[uid] = dir_size(p)

    ppr_path = (_unique(_glob(script_dir, "*PPR*.xml"), "PPR", member)
                or _unique(_glob(script_dir, "*cal*pprequest.xml"), "PPR", member)
                or _unique(_glob(script_dir, "*pprequest.xml"), "PPR", member))
    ppr = read_ppr(ppr_path) if ppr_path else None
    man = _glob(script_dir, "*cal*pipeline_manifest.xml") or _glob(script_dir, "*pipeline_manifest.xml")
    manifest = read_manifest(man[0]) if man else None
    rs_path = _unique(_glob(script_dir, "*casa_piperestorescript.py"),
                      "casa_piperestorescript.py", member)
    script = read_restore_script(rs_path) if rs_path else None
    kind, total_power = kind_of(desc, script)

    manual_scripts: dict[str, str] = {}
    for p in _glob(script_dir, "*uid*.ms.scriptForCalibration.py", "*uid*.ms.scriptForSDCalibration.py"):
        suffix = (".ms.scriptForSDCalibration.py" if p.name.endswith("SDCalibration.py")
                  else ".ms.scriptForCalibration.py")
        manual_scripts[_strip_uid(p.name, suffix)] = str(p)
    post_scripts = {}
    for k in POST_ORDER:
        u = _unique(_glob(script_dir, f"*{k}"), k, member)
        if u is not None:
            post_scripts[k] = str(u)

    calapply, calapply_paths, flagversions = {}, {}, {}
    for p in _glob(calib, "*.ms.calapply.txt"):
        if p.name.endswith((".auxcalapply.txt",)):
            continue
        uid = _strip_uid(p.name, ".ms.calapply.txt")
        calapply_paths[uid] = str(p)
        calapply[uid] = read_calapply(p)
    for p in _glob(calib, "*.ms.flagversions.tgz"):
        flagversions[_strip_uid(p.name, ".ms.flagversions.tgz")] = str(p)
    cal_names = _names(calib)
    caltables_tgz = {}
    for n in cal_names:
        s = tarball_session(n)
        if s is not None:
            caltables_tgz.setdefault(s, str(calib / n))
    auxproducts = [str(p) for p in _glob(calib, "*auxproducts.tgz", "*supporting.tgz")]
    aux_members = {a: _tar_names(Path(a)) for a in auxproducts}
    aux_files = {}
    for pat in ("*cont.dat", "*flux.csv", "*antennapos.csv", "*jyperk*.csv", "*selfcal.json"):
        hits = [p for p in _glob(calib, pat) if _regular(p)]
        if hits:
            aux_files[pat.lstrip("*")] = str(hits[0])

    # EBs
    if kind == "manual":
        wanted = sorted(manual_scripts, key=uid_sort_key)
    elif kind == "pipeline":
        wanted = sorted(_pipeline_ebs(ppr, script, manifest, warnings), key=uid_sort_key)
    else:
        wanted = []
    ok, semipass, missing = match_ebs(wanted, sorted(raw_asdms, key=uid_sort_key))
    smap = None
    if kind == "pipeline" and wanted:
        smap = resolve_sessions(
            wanted, cal_names,
            manifest={u: e.session for u, e in manifest.asdms.items()} if manifest else None,
            manifest_caltables=manifest.caltables if manifest else None,
            restore_script=script.sessions() if script else None,
            ppr=ppr.sessions if ppr else None,
            source_files={k: os.path.basename(v) for k, v in (
                ("manifest", man[0] if man else ""), ("restore script", rs_path or ""),
                ("PPR", ppr_path or "")) if v})
        warnings += list(smap.warnings)
    ebs = []
    for uid in wanted:
        s = smap.of(uid) if smap else None
        ebs.append(EB(uid=uid, asdm=raw_asdms.get(uid), raw_bytes=raw_sizes.get(uid, 0),
                      session=s.session if s else None,
                      caltables=str(calib / s.tarball) if s and s.tarball else None,
                      session_source=s.source if s else "",
                      calapply=calapply_paths.get(uid), flagversions=flagversions.get(uid),
                      script=manual_scripts.get(uid)))

    contdat = aux_files.get("cont.dat", "") or _in_aux(aux_members, "*cont.dat")
    contdat_parsed, contdat_error = (parse_delivered(contdat, parse_contdat) if contdat
                                     else (None, ""))

    selfcal_json = aux_files.get("selfcal.json", "") or _in_aux(aux_members, "*selfcal.json")
    selfcal, selfcal_error = (parse_delivered(selfcal_json, parse_selfcal_json) if selfcal_json
                              else (None, ""))

    pairs, pb_problems = _pb_pairs(product)
    problems += pb_problems
    usedimpipe = False
    if ppr is not None:
        nmake = sum(1 for t in ppr.tasks if t.startswith("hif_makeimages"))
        sci = _glob(product, "*_sci.spw*.fits")
        usedimpipe = nmake > 1 and bool(sci) and _imaging_script_empty(script_dir)

    versions = DeliveryVersions()
    if manifest is not None:
        versions = DeliveryVersions(casa=manifest.casaversion or None,
                                    pipeline=manifest.pipeline_version or None,
                                    casa_source=manifest.source if manifest.casaversion else "",
                                    pipeline_source=manifest.source if manifest.pipeline_version else "")
    for p in [*(member / n for n in listing.top if n.lower().startswith(("readme", "member."))
                and "readme" in n.lower()),
              *_glob(script_dir, "*casa_commands.log"), *_glob(member / "log", "*casa_commands.log"),
              *_glob(member / "log", "*.log")]:
        if versions.casa and versions.pipeline:
            break
        if _regular(p):
            try:
                versions = versions.merged(versions_from_text(read_small_text(p), str(p)))
            except (OSError, DeliveryError):
                continue

    return Member(
        path=str(member), mous=listing.mous, kind=kind, total_power=total_power,
        description=desc.as_dict(), ebs=tuple(ebs), raw_asdms=raw_asdms, raw_sizes=raw_sizes,
        semipass=tuple(semipass), missing=tuple(missing),
        ppr=ppr, ppr_path=str(ppr_path or ""), manifest=manifest,
        manifest_path=str(man[0]) if man else "", restore_script=script,
        restorescript=str(rs_path or ""), session_map=smap,
        import_opts=import_options(script, total_power),
        calapply=calapply, calapply_paths=calapply_paths, flagversions=flagversions,
        caltables_tgz=caltables_tgz, auxproducts=auxproducts, aux_members=aux_members,
        aux_files=aux_files, contdat=contdat, contdat_parsed=contdat_parsed,
        contdat_error=contdat_error,
        selfcal_json=selfcal_json, selfcal=selfcal, selfcal_error=selfcal_error,
        jyperk=next((v for k, v in aux_files.items() if "jyperk" in k), "")
        or _in_aux(aux_members, "*jyperk*.csv"),
        manual_scripts=manual_scripts, post_scripts=post_scripts, products=pairs,
        usedimpipe=usedimpipe, versions=versions, warnings=warnings, problems=problems)


def read_members(paths: Iterable[str | os.PathLike]) -> list[Member]:
    """:func:`read_member` of each path."""
    return [read_member(p) for p in paths]
