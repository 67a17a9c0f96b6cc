"""Layout, naming and product-set checks (pure: they work on listed names).

Rules come from the delivery contract (seed §3–§4): the six subfolders, the
README, the scripts of the calibration type (§4.2), the QA files (§3 item 3),
the calibration files (§3 item 2), the product naming scheme (§4.3,
images.md §3) and the product sets (each ``pbcor`` with its primary beam and
mask; full-polarization IQUV with P/A), as paired by
:mod:`almaqa_casa.delivery.products` (the one pairing rule).

A shape the observatory delivered in the member's era is not an error
(realworld.md "Layout by era"): ``README`` for the README and flux.csv /
antennapos.csv / cont.dat loose in ``calibration/`` (Cycle 1-4), no ``log/``
with ``casa_commands.log`` in ``script/`` (Cycle 7), free-form manual product
names and CASA ``.mask`` folders (Cycle 2-3), semipass packages (no
``calibration/``, no products).  Such shapes are reported as info findings.
"""
from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..delivery.era import loose_aux_files
from ..delivery.layout import REQUIRED_SUBFOLDERS, SUBFOLDERS, Delivery, MemberListing, classify
from ..delivery.naming import diagnose_name
from ..delivery.products import (
    IMAGE_ROLES,
    NAMING_FREE_FORM,
    NAMING_NONCONFORMING,
    POL_DERIVED,
    ProductFile,
    ProductSet,
    classify_name,
    pair,
)
from .findings import Finding, finding
from .tree import Entry, MemberView

__all__ = [
    "Product",
    "describe_text",
    "layout_checks",
    "member_listing",
    "member_product_sets",
    "naming_checks",
    "problem_entry_checks",
    "product_checks",
    "product_files",
]

_FITS_EXT = (".fits", ".fits.gz", ".fit", ".fits.tgz")
_ALLOWED_EXT = {
    "script": (".py", ".xml", ".txt", ".json", ".sh", ".csh", ".log"),
    "qa": (".tgz", ".tar.gz", ".pdf", ".html", ".htm", ".png", ".jpg", ".txt", ".xml", ".log",
           ".csv", ".json"),
    "log": (".log", ".txt", ".tgz", ".tar.gz", ".gz", ".py", ".xml", ".json", ".html", ".last"),
}
_TOP_ALLOWED = set(SUBFOLDERS) | {"calibrated"}


@dataclass(slots=True)
class Product:
    """A product (file, or CASA image folder) and what its name says."""

    entry: Entry
    info: ProductFile

    @property
    def file(self) -> str:
        return self.entry.display

    @property
    def rel(self) -> str:
        """The name given to the pairing rule: the name in product/ (unique within a member)."""
        return self.info.name


def member_listing(view: MemberView, imaging_script_has_code: bool | None = None,
                   versions: dict | None = None) -> MemberListing:
    """The :class:`MemberListing` of a member view (names only).

    Only regular files and folders are listed: special files, loops and
    broken links are no part of the delivery (``problem_entry_checks``
    reports them).
    """
    folders: dict[str, list[str]] = {}
    top: list[str] = []
    for rel, e in view.entries.items():
        if e.kind not in ("file", "dir"):
            continue
        parts = rel.split("/")
        if len(parts) == 1:
            top.append(parts[0])
            if e.kind == "dir":
                folders.setdefault(parts[0], [])
        elif len(parts) == 2:
            folders.setdefault(parts[0], []).append(parts[1])
    return MemberListing(mous=view.mous, path=view.rel, top=tuple(sorted(top)),
                         folders={k: tuple(sorted(v)) for k, v in folders.items()},
                         imaging_script_has_code=imaging_script_has_code, parents=view.parents,
                         versions=dict(versions or {}))


def _match(names: Iterable[str], *patterns: str) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def describe_text(d: Delivery) -> str:
    """One line saying what the delivery is, of which era, and why."""
    parts = [f"kind: {d.kind}",
             f"calibration: {d.calibration}"
             + (" (pipeline re-run only)" if d.pipeline_rerun_only else ""),
             f"imaging: {d.imaging}" + (" + supplemental manual" if d.supplemental_manual else "")]
    for flag, label in ((d.selfcal, "self-calibrated products"),
                        (d.full_polarization, "full polarization"), (d.total_power, "total power")):
        if flag:
            parts.append(label)
    era = d.era or {}
    if era:
        why = "; ".join(era.get("evidence", ())) or "no evidence"
        parts.append(f"era: {era.get('label', 'unknown')} (from: {why})")
    if d.naming:
        parts.append("product naming: " + ", ".join(d.naming))
    return "; ".join(parts)


def _cycle7(f) -> bool:
    return "log" not in f and bool(_match(f.get("script", ()), "*casa_commands.log"))


def product_files(view: MemberView) -> dict[str, ProductFile | None]:
    """What each name in product/ is (``products.classify_name``), classified once per member."""
    return {e.name: classify_name(e.name) for e in view.folder("product")
            if e.kind in ("file", "dir")}


def layout_checks(view: MemberView, listing: MemberListing, mode: str = "folder",
                  files: dict[str, ProductFile | None] | None = None) -> tuple[Delivery, list[Finding]]:
    """Classify the member and check its layout against its era."""
    d = classify(listing, files)
    out: list[Finding] = []
    where = view.rel
    semipass = d.kind == "semipass"
    era = d.era or {}
    out.append(finding("L020", where, f"MOUS {d.mous}: {describe_text(d)}"))
    for shape in d.shapes:
        out.append(finding("L021" if shape.startswith("semipass") else "L022", where, shape))
    for c in era.get("conflicts", ()):
        out.append(finding("L023", where, f"{c}: does not fit the era the other evidence gives "
                           f"({era.get('label', 'unknown')})"))
    missing_levels = [k for k in ("group", "science_goal", "project") if not d.levels.get(k)]
    if missing_levels:
        out.append(finding("L002", where, "not inside the expected "
                           + ", ".join(missing_levels) + " folder(s) "
                           "(<project>/science_goal.uid___*/group.uid___*/member.uid___*)"))
    f = listing.folders
    not_expected = set()
    if semipass:
        not_expected |= {"calibration", "product", "log"}
    if _cycle7(f):
        not_expected.add("log")
    for sub in REQUIRED_SUBFOLDERS:
        if sub not in f:
            if sub not in not_expected:
                out.append(finding("L003", f"{where}/{sub}", f"subfolder '{sub}/' is missing"))
        elif not f[sub] and sub not in not_expected:
            out.append(finding("L006", f"{where}/{sub}", f"subfolder '{sub}/' is empty"))
    if "raw" not in f:
        out.append(finding("L004", f"{where}/raw", "no raw/ folder: the ASDMs are not unpacked "
                           "(needed only to restore the calibrated MS)"))
    if d.readme is None:
        out.append(finding("L005", f"{where}/member.{d.mous}.README.txt",
                           f"README member.{d.mous}.README.txt (README up to Cycle 4) is missing",
                           severity="warning" if semipass else None))
    kinds = {k: e.kind for k, e in view.entries.items() if "/" not in k}
    for name in listing.top:
        if name in _TOP_ALLOWED or name == d.readme:
            continue
        if kinds.get(name, "file") not in ("file", "dir"):
            continue  # loops, broken links, unreadable: reported by problem_entry_checks
        out.append(finding("L011", f"{where}/{name}",
                           f"unknown item '{name}' in the member folder (expected only "
                           + ", ".join(SUBFOLDERS) + " and the README)"))

    script = f.get("script", ())
    if "script" in f and not semipass:
        if not _match(script, "*scriptForPI.py"):
            # mid-Cycle 5 on every delivery has one; earlier ones may not
            early = era.get("cycle_max") is not None and era["cycle_max"] <= 5
            out.append(finding("L007", f"{where}/script", "scriptForPI.py is missing (every "
                               "delivery since mid-Cycle 5 has one; seed §4.2)",
                               severity="warning" if early else None))
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
    if "qa" in f and not semipass:
        if d.calibration == "pipeline" and not _match(qa, "*weblog*.tgz", "*weblog*.tar.gz",
                                                       "pipeline-*", "*weblog*"):
            out.append(finding("L009", f"{where}/qa", "no weblog (*weblog.tgz) in qa/"))
        if not _match(qa, "*qa2_report*", "*QA2*report*", "*qa2*"):
            out.append(finding("L009", f"{where}/qa", "no QA2 report (*qa2_report.pdf/html) in qa/"))

    cal = f.get("calibration", ())
    if "calibration" in f and cal:
        if d.calibration == "pipeline":
            want = [("*caltables.tgz", "calibration tables (*caltables.tgz)"),
                    ("*calapply.txt", "applycal lists (*calapply.txt)"),
                    ("*flagversions.tgz", "flag versions (*flagversions.tgz)")]
            if not loose_aux_files(cal):  # Cycle 1-4 keep flux.csv etc. loose instead
                want.append(("*auxproducts.tgz", "auxiliary products (*auxproducts.tgz)"))
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


def naming_checks(view: MemberView, delivery: Delivery | None = None,
                  files: dict[str, ProductFile | None] | None = None) -> tuple[list[Product], list[Finding]]:
    """Classify every entry of product/: scheme names, free-form names, CASA image folders.

    A name that does not follow the scheme is N001, except a free-form
    manual name in a delivery that may predate the archive naming scheme
    (Cycle 4 or earlier), which is recognised and reported as N004 (info).
    Special files (FIFOs, devices) are never products (problem_entry_checks
    reports them).
    """
    products: list[Product] = []
    out: list[Finding] = []
    era = (delivery.era if delivery is not None else {}) or {}
    modern = era.get("cycle_min") is not None and era["cycle_min"] >= 5
    for e in sorted(view.folder("product"), key=lambda x: x.rel):
        if e.kind not in ("file", "dir") or e.name == "manual_imaging.tgz":
            continue
        info = files[e.name] if files is not None and e.name in files else classify_name(e.name)
        if e.kind == "dir" and (info is None or not info.casa_image):
            out.append(finding("L011", e.display, f"unexpected folder '{e.name}' in product/"))
            continue
        if e.kind == "file" and info is not None and info.casa_image:
            info = None  # a file without extension is no CASA image
        if info is None:
            if e.name.lower().endswith(_FITS_EXT) or e.name.endswith((".mask.tgz", ".image.tgz")):
                out.append(finding("N001", e.display, f"'{e.name}': {diagnose_name(e.name)}"))
            else:
                out.append(finding("L011", e.display, f"unknown file '{e.name}' in product/"))
            continue
        if info.naming == NAMING_NONCONFORMING:
            why = diagnose_name(e.name if info.ext else e.name + ".fits")
            out.append(finding("N001", e.display, f"'{e.name}': {why}"))
        elif info.naming == NAMING_FREE_FORM:
            if modern:
                out.append(finding("N001", e.display, f"'{e.name}': free-form name in a delivery "
                                   f"of {era.get('label')}, when the archive naming scheme applies"))
            else:
                out.append(finding("N004", e.display, f"'{e.name}': free-form pre-Cycle-4 manual "
                                   f"product name ({info.role}"
                                   + (", CASA image folder" if info.casa_image else "") + ")"))
        else:
            p = info.parsed
            if p.mous not in (None, "oussid", view.mous):
                out.append(finding("N002", e.display, f"name carries MOUS {p.mous}, the folder is "
                                   f"member.{view.mous}"))
            if p.mous is None:
                out.append(finding("N003", e.display, "no MOUS prefix in the name"))
            elif not p.member_prefix and p.mous != "oussid":
                out.append(finding("N003", e.display, "bare 'uid___' prefix without 'member.' "
                                   "(Cycle 3-4 style)"))
        products.append(Product(e, info))
    return products, out


def member_product_sets(products: list[Product]) -> tuple[list[ProductSet], list[ProductFile]]:
    """The product sets and the orphan pb/masks of a member (the rule of ``delivery.products``)."""
    return pair(pr.info for pr in products)


def product_checks(products: list[Product], delivery: Delivery,
                   pairing: tuple[list[ProductSet], list[ProductFile]] | None = None) -> list[Finding]:
    """Pairing (pbcor↔pb/mask), spw agreement, polarization sets."""
    out: list[Finding] = []
    by_rel = {pr.rel: pr for pr in products}
    sets, lone = member_product_sets(products) if pairing is None else pairing
    if not sets and delivery.kind != "semipass":
        out.append(finding("P008", "product/", "no image products (pbcor, sd) in product/"))

    for s in sets:
        pr = by_rel[s.image]
        if s.needs_pb and s.taylor in (None, 0):
            if s.pb is None:
                out.append(finding("P001", pr.file, "no primary beam (.pb.fits[.gz], .pb.tt0.fits"
                                   "[.gz] or .flux.fits[.gz]) for this pbcor image"))
            if s.mask is None:
                out.append(finding("P002", pr.file, "no clean mask (.mask.fits[.gz] or a .mask "
                                   "image folder) for this pbcor image"))
    for f in lone:
        out.append(finding("P003", by_rel[f.name].file, f"{f.role} without an image of the same "
                           f"name ({f.key}.pbcor.fits)"))

    # spw agreement per target (and datatype); scheme names only
    images = [pr for pr in products if pr.info.role in IMAGE_ROLES and pr.info.parsed is not None]
    per_target: dict[tuple, list] = defaultdict(list)
    for pr in images:
        n = pr.info.parsed
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

    # polarization: IQUV images and the P/A images paired with them
    iquv = [s for s in sets if s.stokes == "IQUV"]
    if delivery.full_polarization and delivery.imaging != "none" and not any(
            by_rel[s.image].info.parsed is None or by_rel[s.image].info.parsed.target_type == "sci"
            for s in iquv):
        out.append(finding("P005", "product/", "full-polarization delivery without IQUV "
                           "science images"))
    for s in sets:
        if s.stokes in POL_DERIVED and s.pol_source is None:
            out.append(finding("P006", by_rel[s.image].file, f"Stokes {s.stokes} image without an "
                               "IQUV image of the same target, spws and image type"))
    stokes_of = {s.image: s.stokes for s in sets}
    for s in sets:
        p = by_rel[s.image].info.parsed
        if s.stokes != "IQUV" or s.kind != "pbcor":
            continue
        if p is not None and p.target_type != "sci":
            continue
        have = {stokes_of.get(x) for x in s.polarization}
        if not ({"P", "POLI", "Plinear", "Ptotal"} & have and {"A", "POLA", "Pangle"} & have):
            out.append(finding("P007", by_rel[s.image].file, "IQUV image without both "
                               "polarization intensity (P) and angle (A) images"))
    return out
