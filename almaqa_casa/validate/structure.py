"""Layout, naming and product-set checks (pure: they work on listed names).

Rules come from the delivery contract (seed §3–§4): the six subfolders, the
README ``member.<MOUS>.README.txt``, the scripts of the calibration type
(§4.2), the QA files (§3 item 3), the calibration files (§3 item 2), the
product naming scheme (§4.3, images.md §3) and the product sets (each
``pbcor`` with its ``pb``/``flux`` and a mask; full-polarization IQUV with
P/A).
"""
from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..delivery.layout import REQUIRED_SUBFOLDERS, SUBFOLDERS, Delivery, MemberListing, classify
from ..delivery.naming import ProductName, diagnose_name, parse_name
from .findings import Finding, finding
from .tree import Entry, MemberView

__all__ = [
    "Product",
    "describe_text",
    "layout_checks",
    "member_listing",
    "naming_checks",
    "problem_entry_checks",
    "product_checks",
]

_POL_DERIVED = {"P", "A", "POLI", "POLA", "Plinear", "Ptotal", "Pangle"}
_FITS_EXT = (".fits", ".fits.gz", ".fit", ".fits.tgz")
_ALLOWED_EXT = {
    "script": (".py", ".xml", ".txt", ".json", ".sh", ".csh"),
    "qa": (".tgz", ".tar.gz", ".pdf", ".html", ".htm", ".png", ".jpg", ".txt", ".xml", ".log",
           ".csv", ".json"),
    "log": (".log", ".txt", ".tgz", ".tar.gz", ".gz", ".py", ".xml", ".json", ".html", ".last"),
}
_TOP_ALLOWED = set(SUBFOLDERS) | {"calibrated"}


@dataclass(slots=True)
class Product:
    """A product file and its parsed name."""

    entry: Entry
    name: ProductName

    @property
    def file(self) -> str:
        return self.entry.display


def member_listing(view: MemberView, imaging_script_has_code: bool | None = None) -> MemberListing:
    """The :class:`MemberListing` of a member view (names only)."""
    folders: dict[str, list[str]] = {}
    top: list[str] = []
    for rel, e in view.entries.items():
        parts = rel.split("/")
        if len(parts) == 1:
            top.append(parts[0])
            if e.kind == "dir":
                folders.setdefault(parts[0], [])
        elif len(parts) == 2:
            folders.setdefault(parts[0], []).append(parts[1])
    return MemberListing(mous=view.mous, path=view.rel, top=tuple(sorted(top)),
                         folders={k: tuple(sorted(v)) for k, v in folders.items()},
                         imaging_script_has_code=imaging_script_has_code, parents=view.parents)


def _match(names: Iterable[str], *patterns: str) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def describe_text(d: Delivery) -> str:
    """One line saying what the delivery is."""
    parts = [f"calibration: {d.calibration}"
             + (" (pipeline re-run only)" if d.pipeline_rerun_only else ""),
             f"imaging: {d.imaging}" + (" + supplemental manual" if d.supplemental_manual else "")]
    for flag, label in ((d.selfcal, "self-calibrated products"),
                        (d.full_polarization, "full polarization"), (d.total_power, "total power")):
        if flag:
            parts.append(label)
    return "; ".join(parts)


def layout_checks(view: MemberView, listing: MemberListing, mode: str = "folder") -> tuple[Delivery, list[Finding]]:
    """Classify the member and check its layout."""
    d = classify(listing)
    out: list[Finding] = []
    where = view.rel
    out.append(finding("L020", where, f"MOUS {d.mous}: {describe_text(d)}"))
    missing_levels = [k for k in ("group", "science_goal", "project") if not d.levels.get(k)]
    if missing_levels:
        out.append(finding("L002", where, "not inside the expected "
                           + ", ".join(missing_levels) + " folder(s) "
                           "(<project>/science_goal.uid___*/group.uid___*/member.uid___*)"))
    f = listing.folders
    for sub in REQUIRED_SUBFOLDERS:
        if sub not in f:
            out.append(finding("L003", f"{where}/{sub}", f"subfolder '{sub}/' is missing"))
        elif not f[sub]:
            out.append(finding("L006", f"{where}/{sub}", f"subfolder '{sub}/' is empty"))
    if "raw" not in f:
        out.append(finding("L004", f"{where}/raw", "no raw/ folder: the ASDMs are not unpacked "
                           "(needed only to restore the calibrated MS)"))
    if d.readme is None:
        out.append(finding("L005", f"{where}/member.{d.mous}.README.txt",
                           f"README member.{d.mous}.README.txt is missing"))
    kinds = {k: e.kind for k, e in view.entries.items() if "/" not in k}
    for name in listing.top:
        if name in _TOP_ALLOWED or name == f"member.{d.mous}.README.txt":
            continue
        if kinds.get(name, "file") not in ("file", "dir"):
            continue  # loops, broken links, unreadable: reported by problem_entry_checks
        out.append(finding("L011", f"{where}/{name}",
                           f"unknown item '{name}' in the member folder (expected only "
                           + ", ".join(SUBFOLDERS) + " and the README)"))

    script = f.get("script", ())
    if "script" in f:
        if not _match(script, "*scriptForPI.py"):
            out.append(finding("L007", f"{where}/script", "scriptForPI.py is missing (every "
                               "delivery since mid-Cycle 5 has one; seed §4.2)"))
        for pat, label in (("*casa_piperestorescript.py", "casa_piperestorescript.py"),
                           ("*cal*casa_pipescript.py", "calibration casa_pipescript.py"),
                           ("*scriptForPolCalibration.py", "scriptForPolCalibration.py"),
                           ("*scriptForFluxCalibration.py", "scriptForFluxCalibration.py"),
                           ("*scriptForImagingPrep.py", "scriptForImagingPrep.py")):
            hits = _match(script, pat)
            if len(hits) > 1:
                out.append(finding("L016", f"{where}/script", f"{len(hits)} files match {label} "
                                   f"({', '.join(hits)}); scriptForPI.py requires one"))
        if d.calibration == "pipeline":
            if not _match(script, "*PPR*.xml", "*pprequest.xml"):
                out.append(finding("L007", f"{where}/script", "pipeline processing request "
                                   "(*PPR*.xml or *pprequest.xml) is missing"))
            if not _match(script, "*casa_piperestorescript.py", "*casa_pipescript.py"):
                out.append(finding("L007", f"{where}/script", "casa_piperestorescript.py "
                                   "(or casa_pipescript.py) is missing"))
        elif d.calibration == "manual":
            if d.imaging == "manual" and not _match(script, "*scriptForImaging.py",
                                                    "*scriptForSDImaging.py"):
                out.append(finding("L007", f"{where}/script", "manually imaged delivery without "
                                   "scriptForImaging.py / scriptForSDImaging.py"))
        else:
            out.append(finding("L008", f"{where}/script", "no per-EB *.ms.scriptForCalibration.py "
                               "(manual), no PPR / casa_piperestorescript.py / casa_pipescript.py "
                               "(pipeline)"))

    qa = f.get("qa", ())
    if "qa" in f:
        if not _match(qa, "*weblog*.tgz", "*weblog*.tar.gz", "pipeline-*", "*weblog*"):
            out.append(finding("L009", f"{where}/qa", "no weblog (*weblog.tgz) in qa/"))
        if not _match(qa, "*qa2_report*", "*QA2*report*", "*qa2*"):
            out.append(finding("L009", f"{where}/qa", "no QA2 report (*qa2_report.pdf/html) in qa/"))

    cal = f.get("calibration", ())
    if "calibration" in f and cal:
        if d.calibration == "pipeline":
            want = [("*caltables.tgz", "calibration tables (*caltables.tgz)"),
                    ("*calapply.txt", "applycal lists (*calapply.txt)"),
                    ("*flagversions.tgz", "flag versions (*flagversions.tgz)"),
                    ("*auxproducts.tgz", "auxiliary products (*auxproducts.tgz)")]
            if d.total_power:
                want = [w for w in want if "calapply" not in w[0]]
            for pat, label in want:
                if not _match(cal, pat):
                    out.append(finding("L010", f"{where}/calibration", f"{label} missing for "
                                       "pipeline-calibrated data (seed §3 item 2a)"))
    elif "calibration" in f and d.calibration != "unknown":
        out.append(finding("L010", f"{where}/calibration", "no calibration tables in calibration/"))

    for sub, exts in _ALLOWED_EXT.items():
        for e in view.folder(sub):
            if e.kind != "file" or e.name.startswith("."):
                continue
            if not e.name.lower().endswith(exts):
                out.append(finding("L011", e.display, f"unknown file '{e.name}' in {sub}/"))
    return d, out


def problem_entry_checks(entries: Iterable[Entry]) -> list[Finding]:
    """Findings for loops, broken links, unreadable and special entries."""
    out = []
    code = {"loop": "L013", "broken-link": "L014", "unreadable": "L012", "special": "L011"}
    for e in entries:
        if e.kind in code:
            out.append(finding(code[e.kind], e.display, e.problem or e.kind))
    return out


def naming_checks(view: MemberView) -> tuple[list[Product], list[Finding]]:
    """Parse every file in product/; unparseable FITS names are N001."""
    products: list[Product] = []
    out: list[Finding] = []
    for e in sorted(view.folder("product"), key=lambda x: x.rel):
        if e.kind != "file" or e.name == "manual_imaging.tgz":
            if e.kind == "dir":
                out.append(finding("L011", e.display, f"unexpected folder '{e.name}' in product/"))
            continue
        p = parse_name(e.name)
        if p is None:
            if e.name.lower().endswith(_FITS_EXT) or e.name.endswith((".mask.tgz", ".image.tgz")):
                out.append(finding("N001", e.display, f"'{e.name}': {diagnose_name(e.name)}"))
            else:
                out.append(finding("L011", e.display, f"unknown file '{e.name}' in product/"))
            continue
        if p.mous not in (None, "oussid", view.mous):
            out.append(finding("N002", e.display, f"name carries MOUS {p.mous}, the folder is "
                               f"member.{view.mous}"))
        if p.mous is None:
            out.append(finding("N003", e.display, "no MOUS prefix in the name"))
        elif not p.member_prefix and p.mous != "oussid":
            out.append(finding("N003", e.display, "bare 'uid___' prefix without 'member.' "
                               "(Cycle 4 style)"))
        products.append(Product(e, p))
    return products, out


def _is_image(p: ProductName) -> bool:
    return p.kind in ("pbcor", "image", "sd")


def product_checks(products: list[Product], delivery: Delivery) -> list[Finding]:
    """Pairing (pbcor↔pb/mask), spw agreement, polarization sets."""
    out: list[Finding] = []
    by_key: dict[str, list[Product]] = defaultdict(list)
    for pr in products:
        by_key[pr.name.image_key].append(pr)
    images = [pr for pr in products if _is_image(pr.name)]
    if not images:
        out.append(finding("P008", "product/", "no image products (pbcor, sd) in product/"))

    for key, group in sorted(by_key.items()):
        kinds = {pr.name.kind for pr in group}
        for pr in group:
            n = pr.name
            if n.kind == "pbcor" and n.stokes not in _POL_DERIVED and n.taylor in (None, 0):
                if "pb" not in kinds:
                    out.append(finding("P001", pr.file, "no primary beam (.pb.fits[.gz] or "
                                       ".flux.fits[.gz]) for this pbcor image"))
                if "mask" not in kinds:
                    out.append(finding("P002", pr.file, "no clean mask (.mask.fits[.gz]) "
                                       "for this pbcor image"))
            elif n.kind in ("pb", "mask") and "pbcor" not in kinds and "image" not in kinds:
                out.append(finding("P003", pr.file, f"{n.kind} without a pbcor image "
                                   f"of the same name ({key}.pbcor.fits)"))

    # spw agreement per target (and datatype)
    per_target: dict[tuple, list[ProductName]] = defaultdict(list)
    for pr in images:
        n = pr.name
        if n.spws:
            per_target[(n.target_key, n.datatype)].append(n)
    for (tkey, _dt), names in sorted(per_target.items(), key=lambda kv: str(kv[0])):
        cont = {n.spws for n in names if n.imagetype == "cont"}
        label = f"{tkey[1]}_{tkey[2]}"
        if len(cont) > 1:
            out.append(finding("P004", label, "cont images of this target list different spws: "
                               + "; ".join("spw" + "_".join(map(str, s)) for s in sorted(cont))))
        if cont:
            allowed = set().union(*cont)
            for n in names:
                if n.imagetype in ("cube", "repBW") and not set(n.spws) <= allowed:
                    out.append(finding("P004", label, f"cube spw{'_'.join(map(str, n.spws))} is "
                                       f"not among the cont spws {sorted(allowed)}"))

    # polarization
    iquv = [pr for pr in images if pr.name.stokes == "IQUV"]
    derived = [pr for pr in images if pr.name.stokes in _POL_DERIVED]
    if delivery.full_polarization and delivery.imaging != "none" and not any(
            pr.name.target_type == "sci" for pr in iquv):
        out.append(finding("P005", "product/", "full-polarization delivery without IQUV "
                           "science images"))

    def pol_key(n: ProductName):
        return (n.target_key, n.spw, n.imagetype, n.datatype, n.taylor)

    iquv_keys = {pol_key(pr.name) for pr in iquv}
    for pr in derived:
        if pol_key(pr.name) not in iquv_keys:
            out.append(finding("P006", pr.file, f"Stokes {pr.name.stokes} image without an IQUV "
                               "image of the same target, spws and image type"))
    derived_stokes: dict[tuple, set] = defaultdict(set)
    for pr in derived:
        derived_stokes[pol_key(pr.name)].add(pr.name.stokes)
    for pr in iquv:
        n = pr.name
        if n.kind != "pbcor" or n.target_type != "sci":
            continue
        have = derived_stokes.get(pol_key(n), set())
        if not ({"P", "POLI", "Plinear", "Ptotal"} & have and {"A", "POLA", "Pangle"} & have):
            out.append(finding("P007", pr.file, "IQUV image without both polarization intensity "
                               "(P) and angle (A) images"))
    return out
