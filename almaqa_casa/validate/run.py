"""Run the checks over a delivery and collect findings, figures and thumbnails.

``validate_delivery`` is the library entry point of ``qa_validate``: it lists
the delivery (folder or archive tars), runs the selected check groups and
returns a plain dict; ``write_reports`` writes ``validation.json`` and the
self-contained ``validation.html``.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..delivery.naming import ProductName
from .figures import RES_TOLERANCE, SENS_TOLERANCE, measure, parse_quantity, requirement, thumbnail_png
from .findings import CODES, finding, summarize
from .fitscheck import FitsInfo, header_findings, inspect_fits, shape_findings
from .structure import (
    Product,
    layout_checks,
    member_listing,
    naming_checks,
    problem_entry_checks,
    product_checks,
)
from .tree import MemberView, Tree, load_tree

__all__ = ["CHECKS", "Validation", "parse_checks", "validate_delivery", "write_reports"]

CHECKS = ("layout", "naming", "products", "fits", "images")


def parse_checks(checks: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise ``checks`` ('all', 'layout,naming', ['fits', ...]); ValueError on unknown names."""
    if checks is None:
        return CHECKS
    items = [checks] if isinstance(checks, str) else list(checks)
    names: list[str] = []
    for it in items:
        names += [x.strip().lower() for x in str(it).replace(";", ",").split(",") if x.strip()]
    if not names or "all" in names:
        return CHECKS
    bad = [n for n in names if n not in CHECKS]
    if bad:
        raise ValueError(f"checks: unknown check(s) {bad}; choose from 'all', " + ", ".join(CHECKS))
    return tuple(n for n in CHECKS if n in names)


@dataclass
class Validation:
    """Everything found; ``as_dict`` is the JSON/returned form (thumbnails excluded)."""

    deliverydir: str
    mode: str
    checks: tuple
    members: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    images: list = field(default_factory=list)
    products: list = field(default_factory=list)
    thumbnails: dict = field(default_factory=dict)
    requirements: dict = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        summary = summarize(self.findings)
        return {
            "status": "failed" if summary["error"] else "ok",
            "valid": summary["error"] == 0,
            "deliverydir": self.deliverydir,
            "mode": self.mode,
            "checks": list(self.checks),
            "summary": summary,
            "members": self.members,
            "findings": [f.as_dict() for f in self.findings],
            "products": self.products,
            "images": self.images,
            "requirements": self.requirements,
            "codes": {k: {"severity": v[0], "category": v[1], "title": v[2]} for k, v in CODES.items()},
            "seconds": round(self.seconds, 3),
        }


def _imaging_script_has_code(tree: Tree, view: MemberView) -> bool | None:
    has = None
    for e in view.folder("script"):
        if e.kind == "file" and e.name.endswith("scriptForImaging.py") and e.size < 10_000_000:
            try:
                with tree.open(e) as fh:
                    text = fh.read().decode("utf-8", errors="replace")
            except Exception:  # unreadable script or damaged tar member: layout reports it
                continue
            has = bool(has) or any(l.strip() and not l.lstrip().startswith("#")
                                   for l in text.splitlines())
    return has


def _is_fits(n: ProductName) -> bool:
    return n.ext in ("fits", "fits.gz")


def _pick(group: list[Product], kind: str, infos: dict) -> Product | None:
    """The companion of ``kind`` in an image set whose FITS is readable (tt0, plain preferred)."""
    cands = [p for p in group if p.name.kind == kind and _is_fits(p.name)
             and infos.get(p.file) is not None and infos[p.file].ok]
    cands.sort(key=lambda p: (p.name.taylor not in (None, 0), p.name.ext != "fits"))
    return cands[0] if cands else None


def validate_delivery(deliverydir: str | os.PathLike, checks: str | Sequence[str] = "all",
                      req_resolution: str = "", req_sensitivity: str = "",
                      res_tolerance: float = RES_TOLERANCE, sens_tolerance: float = SENS_TOLERANCE,
                      workdir: str | None = None, thumbnails: bool = True,
                      recovery: str = "impbcor") -> Validation:
    """Check a delivery; see the module docstring.  Bad input becomes findings.

    ``recovery`` selects how the uncorrected image is rebuilt for the rms:
    ``'impbcor'`` (CASA impbcor mode 'm' via the shared helper, default) or
    ``'numpy'`` (pbcor × pb plane by plane; same arithmetic, no CASA).
    """
    if recovery not in ("impbcor", "numpy"):
        raise ValueError(f"recovery must be 'impbcor' or 'numpy', not {recovery!r}")
    t0 = time.perf_counter()
    selected = parse_checks(checks)
    req_res = parse_quantity(req_resolution, "arcsec")
    req_sens = parse_quantity(req_sensitivity, "Jy/beam")
    tree = load_tree(deliverydir)
    v = Validation(deliverydir=str(deliverydir), mode=tree.mode, checks=selected)
    v.requirements = {
        "resolution": {"required_arcsec": req_res, "tolerance": res_tolerance,
                       "rule": "geometric-mean beam sqrt(bmaj*bmin) <= required * (1 + tolerance)"},
        "sensitivity": {"required_jy_per_beam": req_sens, "tolerance": sens_tolerance,
                        "rule": "rms (uncorrected image, outside the clean mask, Stokes I, median "
                                "over channels) <= required * (1 + tolerance)"},
    }
    try:
        _run(tree, v, selected, req_res, req_sens, res_tolerance, sens_tolerance, workdir,
             thumbnails, recovery)
    finally:
        tree.close()
    v.seconds = time.perf_counter() - t0
    return v


def _run(tree: Tree, v: Validation, selected, req_res, req_sens, res_tol, sens_tol, workdir,
         thumbnails, recovery="impbcor") -> None:
    add = v.findings.extend
    if "layout" in selected:
        for archive, problem in tree.archive_problems:
            add([finding("L015", archive, problem)])
        add(problem_entry_checks(tree.entries))
    views = tree.members()
    if not views:
        add([finding("L001", v.deliverydir, "no member.uid___* folder found (looked below the "
                     "given folder, or inside its archive tar files)")])
        return
    for key in sorted(views):
        view = views[key]
        listing = member_listing(view, _imaging_script_has_code(tree, view))
        delivery, lay = layout_checks(view, listing, tree.mode)
        v.members.append(delivery.as_dict())
        if "layout" in selected:
            add(lay)
        products, nam = naming_checks(view)
        if "naming" in selected:
            add([f for f in nam if f.code.startswith("N")])
        if "layout" in selected:
            add([f for f in nam if f.code.startswith("L")])
        if "products" in selected:
            add(product_checks(products, delivery))
        _member_files(tree, v, view, products, selected, req_res, req_sens, res_tol,
                      sens_tol, workdir, thumbnails, recovery)


def _member_files(tree, v, view, products, selected, req_res, req_sens, res_tol, sens_tol,
                  workdir, thumbnails, recovery) -> None:
    """FITS checks and image figures of one member, one image set at a time.

    An image set is the products sharing an image key (pbcor, pb, mask, ...);
    its gzipped files are decompressed once into a temporary folder that is
    removed before the next set, so temporary disk stays at one set.
    """
    add = v.findings.extend
    groups: dict[str, list[Product]] = {}
    for pr in products:
        groups.setdefault(pr.name.image_key, []).append(pr)
    infos: dict[str, FitsInfo] = {}
    if not ({"fits", "images"} & set(selected)):
        groups = {}
    for key, group in groups.items():
        with tempfile.TemporaryDirectory(prefix="almaqa-validate-", dir=workdir) as spill:
            if "fits" in selected or "images" in selected:
                for i, pr in enumerate(group):
                    if not _is_fits(pr.name):
                        continue
                    try:
                        with tree.open(pr.entry) as fh:
                            info = inspect_fits(fh, pr.entry.name, pr.file,
                                                spill=os.path.join(spill, f"{i}.fits"))
                    except Exception as exc:  # OSError, or a damaged tar member
                        info = FitsInfo(file=pr.file)
                        info.findings.append(finding("L012", pr.file, f"cannot open: {exc}"))
                    infos[pr.file] = info
                    if "fits" in selected:
                        add(info.findings)
                        if info.ok:
                            add(header_findings(info, pr.name))
                if "fits" in selected:
                    pb = _pick(group, "pb", infos)
                    for pr in group:
                        if pr.name.kind == "pbcor" and pr.file in infos and pb is not None:
                            add(shape_findings(infos[pr.file], infos[pb.file]))
            if "images" in selected:
                _images(tree, v, group, infos, req_res, req_sens, res_tol, sens_tol, spill,
                        thumbnails, recovery)
    for pr in products:
        info = infos.get(pr.file)
        v.products.append({
            "file": pr.file, "member": view.mous, "target": pr.name.source,
            "type": pr.name.target_type, "spws": list(pr.name.spws), "imagetype": pr.name.imagetype,
            "stokes": pr.name.stokes, "kind": pr.name.kind, "taylor": pr.name.taylor,
            "selfcal": pr.name.selfcal, "manual": pr.name.manual,
            "shape": list(info.shape) if info else None,
            "nan_fraction": info.nan_fraction if info else None,
        })


def _images(tree: Tree, v: Validation, group: list[Product], infos: dict, req_res, req_sens,
            res_tol, sens_tol, workdir, thumbnails, recovery="impbcor") -> None:
    """Figures of the images of one image set (``group``)."""
    for pr in group:
        n = pr.name
        if n.kind not in ("pbcor", "sd", "image") or not _is_fits(n):
            continue
        if n.taylor not in (None, 0):
            continue
        info = infos.get(pr.file)
        if info is None or not info.ok:
            continue
        pb = _pick(group, "pb", infos) if n.kind == "pbcor" else None
        mask = _pick(group, "mask", infos)
        with tempfile.TemporaryDirectory(prefix="almaqa-validate-", dir=workdir) as tmp:
            def local(p: Product) -> str:
                return infos[p.file].plain_path or tree.materialize(p.entry, tmp)
            try:
                img_path = local(pr)
                pb_path = local(pb) if pb else None
                mask_path = local(mask) if mask else None
            except Exception as exc:
                v.findings.append(finding("I001", pr.file, f"cannot read the image files: {exc}"))
                continue
            fig = measure(img_path, pb_path, mask_path, tmp, display=pr.file, recovery=recovery)
        if fig.error:
            v.findings.append(finding("I001", pr.file, fig.error))
        is_req_target = (n.target_type == "sci" and n.stokes in (None, "I", "IQUV")
                         and n.kind in ("pbcor", "sd", "image"))
        if is_req_target and not fig.error:
            res = None
            if fig.bmaj and fig.bmin:
                res = requirement((fig.bmaj * fig.bmin) ** 0.5, req_res, res_tol, "resolution")
            sens = requirement(fig.rms, req_sens, sens_tol, "sensitivity")
            for chk, code_fail in ((res, "I002"), (sens, "I003")):
                if chk is None:
                    continue
                fig.checks.append(chk)
                unit = "arcsec" if chk["what"] == "resolution" else "Jy/beam"
                msg = (f"{chk['what']}: {chk['value']:.4g} {unit} vs required {chk['required']:.4g} "
                       f"{unit} (limit {chk['limit']:.4g} with {100 * chk['tolerance']:.0f}% tolerance)")
                v.findings.append(finding("I004" if chk["pass"] else code_fail, pr.file,
                                          ("met: " if chk["pass"] else "not met: ") + msg))
        d = fig.as_dict()
        d.update({"target": n.source, "type": n.target_type, "imagetype": n.imagetype,
                  "stokes": n.stokes, "kind": n.kind, "pb": pb.file if pb else None,
                  "mask": mask.file if mask else None})
        v.images.append(d)
        if thumbnails:
            try:
                png = thumbnail_png(fig, pr.entry.name)
            except Exception as exc:  # a thumbnail must never stop the validation
                png = None
                d["thumbnail_error"] = str(exc)
            if png:
                v.thumbnails[pr.file] = png


def write_reports(v: Validation, outdir: str | os.PathLike, overwrite: bool = True) -> dict:
    """Write validation.json and validation.html into ``outdir``; returns their paths."""
    from ..report import write_html, write_json
    from .htmlreport import render

    outdir = Path(outdir)
    paths = {"json": str(outdir / "validation.json"), "html": str(outdir / "validation.html")}
    if not overwrite:
        for p in paths.values():
            if os.path.exists(p):
                raise FileExistsError(f"{p} exists (use overwrite=True to replace it)")
    outdir.mkdir(parents=True, exist_ok=True)
    res = v.as_dict()
    res["outputs"] = paths
    write_json(paths["json"], res, overwrite=overwrite)
    write_html(paths["html"], render(res, v.thumbnails), overwrite=overwrite)
    return paths
