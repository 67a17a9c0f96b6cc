"""Run the checks over a delivery and collect findings, figures and thumbnails.

``validate_delivery`` is the library entry point of ``qa_validate``: it lists
the delivery (folder or archive tars), runs the selected check groups and
returns a plain dict; ``write_reports`` writes ``validation.json`` and the
self-contained ``validation.html``.  Images are measured with the primary
beam and mask the one pairing rule gives (``delivery.products``): also
``<name>.image.pbcor.fits`` with ``<name>.flux.fits``, ``tt1.pbcor`` with
``pb.tt0``, and CASA ``.mask`` folders (exported to FITS from a copy).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..delivery.layout import versions_from_texts
from ..delivery.products import ProductSet
from . import requirements as R
from .figures import (
    RES_TOLERANCE,
    SENS_TOLERANCE,
    ImageFigures,
    casa_image_to_fits,
    measure,
    parse_quantity,
    parse_range,
    plane_label,
    thumbnail_png,
)
from .findings import CODES, Finding, finding, summarize
from .fitscheck import FitsInfo, header_findings, inspect_fits, shape_findings
from .structure import (
    Product,
    layout_checks,
    member_listing,
    member_product_sets,
    naming_checks,
    problem_entry_checks,
    product_checks,
    product_files,
)
from .tp import sd_unit_findings, tp_checks
from .tree import Entry, MemberView, Tree, load_tree

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


def _read_head(tree: Tree, e: Entry, limit: int) -> str | None:
    """The first ``limit`` bytes of a regular file entry as text (None when unreadable)."""
    try:
        with tree.open(e) as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except Exception:  # unreadable file or damaged tar member: layout reports it
        return None


def _imaging_script_has_code(tree: Tree, view: MemberView) -> bool | None:
    has = None
    for e in view.folder("script"):
        if e.kind == "file" and e.name.endswith("scriptForImaging.py"):
            text = _read_head(tree, e, 10_000_000)
            if text is not None:
                has = bool(has) or any(l.strip() and not l.lstrip().startswith("#")
                                       for l in text.splitlines())
    return has


def _versions(tree: Tree, view: MemberView) -> dict[str, str]:
    """CASA / pipeline versions named in the README or casa_commands.log."""
    texts = []
    for name in (f"member.{view.mous}.README.txt", "README"):
        e = view.entries.get(name)
        if e is not None and e.kind == "file":
            texts.append(_read_head(tree, e, 256 * 1024))
    for sub in ("log", "script"):
        for e in view.folder(sub):
            if e.kind == "file" and e.name.endswith("casa_commands.log"):
                texts.append(_read_head(tree, e, 256 * 1024))
    return versions_from_texts(texts)


def parse_given(req_resolution: str = "", req_sensitivity: str = "", req_bandwidth: str = "",
                req_frequency: str = "", res_tolerance: float = RES_TOLERANCE,
                sens_tolerance: float = SENS_TOLERANCE) -> R.Given:
    """The ``req_*`` parameters as numbers (ValueError naming the bad text)."""
    lo, hi = parse_range(req_resolution, "arcsec")
    return R.Given(res_min_arcsec=lo, res_max_arcsec=hi,
                   sensitivity_jy_per_beam=parse_quantity(req_sensitivity, "Jy/beam"),
                   bandwidth_hz=parse_quantity(req_bandwidth, "Hz"),
                   frequency_hz=parse_quantity(req_frequency, "Hz"),
                   res_tolerance=res_tolerance, sens_tolerance=sens_tolerance)


def validate_delivery(deliverydir: str | os.PathLike, checks: str | Sequence[str] = "all",
                      req_resolution: str = "", req_sensitivity: str = "",
                      res_tolerance: float = RES_TOLERANCE, sens_tolerance: float = SENS_TOLERANCE,
                      workdir: str | None = None, thumbnails: bool = True,
                      recovery: str = "impbcor", req_bandwidth: str = "",
                      req_frequency: str = "") -> Validation:
    """Check a delivery; see the module docstring.  Bad input becomes findings.

    Requirements come from each member's ASDM ``SBSummary.xml`` science goal
    (angular resolution range, sensitivity goal at the representative
    bandwidth, representative frequency), each overridden by its ``req_*``
    parameter when given (:mod:`almaqa_casa.validate.requirements`):
    ``req_resolution`` is a maximum ('0.5arcsec') or a range
    ('0.3arcsec~0.6arcsec'), ``req_sensitivity`` the goal in Jy/beam,
    ``req_bandwidth`` the bandwidth it is stated for, ``req_frequency`` the
    frequency the resolution is stated for.

    ``recovery`` selects how the uncorrected image is rebuilt for the rms:
    ``'impbcor'`` (CASA impbcor mode 'm' via the shared helper, default) or
    ``'numpy'`` (pbcor × pb plane by plane; same arithmetic, no CASA).
    """
    if recovery not in ("impbcor", "numpy"):
        raise ValueError(f"recovery must be 'impbcor' or 'numpy', not {recovery!r}")
    t0 = time.perf_counter()
    selected = parse_checks(checks)
    given = parse_given(req_resolution, req_sensitivity, req_bandwidth, req_frequency,
                        res_tolerance, sens_tolerance)
    tree = load_tree(deliverydir)
    v = Validation(deliverydir=str(deliverydir), mode=tree.mode, checks=selected)
    v.requirements = {
        "given": {"req_resolution": req_resolution, "req_sensitivity": req_sensitivity,
                  "req_bandwidth": req_bandwidth, "req_frequency": req_frequency,
                  "res_tolerance": res_tolerance, "sens_tolerance": sens_tolerance},
        "members": {},
    }
    try:
        _run(tree, v, selected, given, workdir, thumbnails, recovery)
    finally:
        tree.close()
    v.seconds = time.perf_counter() - t0
    return v


def _asdm_tables(tree: Tree, view: MemberView, name: str) -> list[Entry]:
    """``raw/<asdm>/<name>`` entries of a member (one per ASDM), sorted."""
    return sorted((e for k, e in view.entries.items()
                   if k.startswith("raw/") and k.count("/") == 2 and k.endswith("/" + name)),
                  key=lambda e: e.rel)


def _read_table(tree: Tree, e: Entry, limit: int) -> bytes:
    if e.kind != "file":
        raise OSError(f"{e.display}: not a regular file ({e.kind}); not read")
    with tree.open(e) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{e.display}: larger than {limit} bytes; not read")
    return data


def _science_goal(tree: Tree, view: MemberView, v: Validation) -> tuple:
    """(goal or None, {spw id: bandwidth Hz}) from the member's ASDMs; problems become findings."""
    from ..delivery import sbsummary as SB

    goals = []
    for e in _asdm_tables(tree, view, "SBSummary.xml"):
        try:
            rows = SB.parse_sbsummary(_read_table(tree, e, SB.MAX_SBSUMMARY_BYTES), e.display)
        except (SB.SBSummaryError, OSError) as exc:
            v.findings.append(finding("I006", e.display, str(exc)))
            continue
        rel = e.rel[len(view.rel) + 1:] if e.rel.startswith(view.rel + "/") else e.rel
        # named relative to the member folder in the requirements (errors name the full path)
        goals += [dataclasses.replace(g, file=rel) for g in rows if g.states_requirements]
    goal = goals[0] if goals else None
    if goal is not None:
        differ = sorted({g.file for g in goals if g.key() != goal.key()})
        if differ:
            v.findings.append(finding("I006", differ[0], f"science goal differs from {goal.file}; "
                                      f"the requirements are read from {goal.file}",
                                      severity="warning"))
    spw_bw: dict[int, float] = {}
    for e in _asdm_tables(tree, view, "SpectralWindow.xml"):
        try:
            spws = SB.parse_spectral_windows(_read_table(tree, e, SB.MAX_SPW_BYTES), e.display)
        except (SB.SBSummaryError, OSError) as exc:
            v.findings.append(finding("I006", e.display, str(exc)))
            continue
        for k, sw in spws.items():
            spw_bw.setdefault(k, sw.bandwidth_hz)
    return goal, spw_bw


def _requirements_finding(mous: str, req: R.Requirements) -> Finding | None:
    """An info finding saying which requirements apply and where they come from."""
    if req.source == "none":
        return None
    parts = []
    if req.res_max_arcsec is not None:
        parts.append(f"resolution {req.res_min_arcsec or 0:.3g}-{req.res_max_arcsec:.3g} arcsec")
    if req.sensitivity_jy_per_beam is not None:
        parts.append(f"sensitivity {1e3 * req.sensitivity_jy_per_beam:.4g} mJy/beam"
                     + (f" in {req.bandwidth_hz / 1e6:.6g} MHz" if req.bandwidth_hz else ""))
    if req.frequency_hz:
        parts.append(f"at {req.frequency_hz / 1e9:.6g} GHz")
    where = "; ".join(f"{k} from {s}" for k, s in req.sources.items())
    return finding("I007", mous, f"requirements ({req.source}): {', '.join(parts)}; {where}")


def _run(tree: Tree, v: Validation, selected, given: R.Given, workdir, thumbnails,
         recovery="impbcor") -> None:
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
        listing = member_listing(view, _imaging_script_has_code(tree, view), _versions(tree, view))
        files = product_files(view)
        delivery, lay = layout_checks(view, listing, tree.mode, files)
        v.members.append(delivery.as_dict())
        if "layout" in selected:
            add(lay)
            add(tp_checks(tree, view, delivery))
        products, nam = naming_checks(view, delivery, files)
        if "naming" in selected:
            add([f for f in nam if f.code.startswith("N")])
        if "layout" in selected:
            add([f for f in nam if f.code.startswith("L")])
        pairing = member_product_sets(products)
        sets = pairing[0]
        if "products" in selected:
            add(product_checks(products, delivery, pairing))
        req, spw_bw = None, {}
        if "images" in selected:
            goal, spw_bw = _science_goal(tree, view, v)
            req = R.resolve(given, goal)
            v.requirements["members"][view.mous] = req.as_dict()
            f = _requirements_finding(view.mous, req)
            if f is not None:
                add([f])
        _member_files(tree, v, view, products, sets, selected, req, spw_bw, workdir, thumbnails,
                      recovery)


def _clusters(products: list[Product], sets: list[ProductSet]) -> list[list[str]]:
    """Product names that must be on disk together: each image with its pb, mask, companions."""
    parent = {pr.rel: pr.rel for pr in products}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for s in sets:
        for other in (s.pb, s.mask, *s.companions):
            if other:
                parent[root(other)] = root(s.image)
    groups: dict[str, list[str]] = {}
    for pr in products:
        groups.setdefault(root(pr.rel), []).append(pr.rel)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def _member_files(tree, v, view, products, sets, selected, req, spw_bw, workdir, thumbnails,
                  recovery) -> None:
    """FITS checks and image figures of one member, one cluster of product sets at a time.

    A cluster is the images sharing a pb or mask with their companions; its
    gzipped files are decompressed once into a temporary folder that is
    removed when its figures are in, so temporary disk stays at one cluster
    (one per casampi server when the figures are measured there,
    :class:`almaqa_casa.scale.Calls`).  What a cluster finds is recorded in
    cluster order whatever the engine, so the report is the same.
    """
    from .. import scale
    by_rel = {pr.rel: pr for pr in products}
    sets_of: dict[str, list[ProductSet]] = {}
    for s in sets:
        sets_of.setdefault(s.image, []).append(s)
    infos: dict[str, FitsInfo] = {}
    clusters = _clusters(products, sets) if {"fits", "images"} & set(selected) else []
    calls = scale.Calls() if "images" in selected and clusters else None
    window: collections.deque = collections.deque()   # clusters whose figures are pending
    for cluster in clusters:
        stack = contextlib.ExitStack()
        spill = stack.enter_context(tempfile.TemporaryDirectory(prefix="almaqa-validate-",
                                                                dir=workdir))
        part = Validation(deliverydir=v.deliverydir, mode=v.mode, checks=v.checks)
        add = part.findings.extend
        for i, rel in enumerate(cluster):
            pr = by_rel[rel]
            if not pr.info.fits or pr.entry.kind != "file":
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
                    add(header_findings(info, pr.info))
                    if pr.info.role == "sd":
                        add(sd_unit_findings(pr.file, info.bunit))
        cluster_sets = [s for rel in cluster for s in sets_of.get(rel, ())]
        if "fits" in selected:
            for s in cluster_sets:
                img, pb = by_rel[s.image], by_rel.get(s.pb) if s.pb else None
                if s.kind == "pbcor" and pb is not None and img.file in infos \
                        and pb.file in infos:
                    add(shape_findings(infos[img.file], infos[pb.file]))
        finish: list = []
        if "images" in selected:
            finish = _images(tree, part, cluster_sets, by_rel, infos, req, spw_bw, spill,
                             thumbnails, recovery, calls, stack)
        window.append((stack, part, finish))
        while len(window) >= (calls.size if calls else 1):
            _merge(v, *window.popleft())
    while window:
        _merge(v, *window.popleft())
    for pr in products:
        info = infos.get(pr.file)
        n = pr.info.parsed
        v.products.append({
            "file": pr.file, "member": view.mous, "target": n.source if n else None,
            "type": n.target_type if n else None, "spws": list(n.spws) if n else [],
            "imagetype": n.imagetype if n else None, "stokes": pr.info.stokes,
            "kind": pr.info.role, "taylor": pr.info.taylor, "selfcal": bool(n and n.selfcal),
            "manual": pr.info.manual, "naming": pr.info.naming,
            "casa_image": pr.info.casa_image,
            "shape": list(info.shape) if info else None,
            "nan_fraction": info.nan_fraction if info else None,
        })


def _merge(v: Validation, stack: contextlib.ExitStack, part: Validation, finish: list) -> None:
    """A cluster's findings and figures into ``v`` (waiting for its figures), then its
    temporary files go."""
    with stack:
        for f in finish:
            f()
    v.findings += part.findings
    v.images += part.images
    v.thumbnails.update(part.thumbnails)


def _usable(pr: Product | None, infos: dict) -> bool:
    """A pb/mask the figures can use: a readable FITS file or a CASA image folder."""
    if pr is None:
        return False
    if pr.info.casa_image:
        return pr.entry.kind == "dir"
    return pr.info.fits and infos.get(pr.file) is not None and infos[pr.file].ok


def _local(tree: Tree, pr: Product, infos: dict, tmp: str) -> str:
    """A FITS path on disk for a product (gunzipped copy, tar extract, or CASA folder export)."""
    if pr.info.casa_image:
        copy = tree.materialize(pr.entry, tmp)
        return casa_image_to_fits(copy, copy.rstrip("/") + ".fits")
    info = infos.get(pr.file)
    return (info.plain_path if info else None) or tree.materialize(pr.entry, tmp)


def _requirement_findings(file: str, checks: list[dict]) -> list[Finding]:
    """A finding per judged requirement: I004 when met, I002/I003 when not, with units."""
    out = []
    for chk in checks:
        tol = f"{100 * chk['tolerance']:.0f}% tolerance"
        if chk["what"] == "resolution":
            rng = (f"{chk['min']:.3g}-{chk['max']:.3g} arcsec" if chk["min"] else
                   f"at most {chk['max']:.3g} arcsec")
            scaled = f", scaled x{chk['scale']:.3f} to {chk['frequency_hz'] / 1e9:.4g} GHz" \
                if chk["scale"] != 1.0 and chk.get("frequency_hz") else ""
            msg = (f"resolution: beam sqrt(bmaj*bmin) {chk['value']:.3g} arcsec vs accepted "
                   f"{rng}{scaled} (limits {chk['lower_limit']:.3g}-{chk['limit']:.3g} arcsec "
                   f"with {tol})")
            code = "I002"
        else:
            per = " per channel" if chk["per_channel"] else ""
            bw = (f" at {chk['bandwidth_hz'] / 1e6:.6g} MHz{per} ({chk['bandwidth_source']})"
                  if chk.get("bandwidth_hz") else "")
            how = (f" = goal {1e3 * chk['goal']:.4g} mJy/beam x {chk['scaling']}"
                   if chk.get("goal_bandwidth_hz") else
                   " (the goal, not scaled: the bandwidth it is stated for is not known)")
            msg = (f"sensitivity: rms {1e3 * chk['value']:.4g} mJy/beam vs required "
                   f"{1e3 * chk['required']:.4g} mJy/beam{bw}{how} (limit "
                   f"{1e3 * chk['limit']:.4g} mJy/beam with {tol})")
            code = "I003"
        out.append(finding("I004" if chk["pass"] else code, file,
                           ("met: " if chk["pass"] else "not met: ") + msg))
    return out


def _images(tree: Tree, v: Validation, sets: list[ProductSet], by_rel: dict, infos: dict,
            req: R.Requirements | None, spw_bw: dict, workdir, thumbnails, recovery="impbcor",
            calls=None, stack: contextlib.ExitStack | None = None) -> list:
    """Figures of the images of one cluster, each with the pb and mask of its product set.

    The figures are measured through ``calls`` (on casampi servers when there
    are some); returns the functions that record them, in order, once
    measured.  The images' temporary folders live in ``stack``."""
    from .. import scale
    calls = calls or scale.Calls()
    stack = stack or contextlib.ExitStack()
    finish: list = []
    for s in sets:
        pr = by_rel[s.image]
        n = pr.info
        if not n.fits:
            continue
        info = infos.get(pr.file)
        if info is None or not info.ok:
            continue
        pb = by_rel.get(s.pb) if s.pb and s.kind == "pbcor" else None
        mask = by_rel.get(s.mask) if s.mask else None
        pb_ok, mask_ok = _usable(pb, infos), _usable(mask, infos)
        with contextlib.ExitStack() as set_stack:
            tmp = set_stack.enter_context(tempfile.TemporaryDirectory(
                prefix="almaqa-validate-", dir=workdir))
            try:
                img_path = _local(tree, pr, infos, tmp)
                pb_path = _local(tree, pb, infos, tmp) if pb_ok else None
                mask_path = _local(tree, mask, infos, tmp) if mask_ok else None
            except Exception as exc:
                finish.append(functools.partial(v.findings.append, finding(
                    "I001", pr.file, f"cannot read the image files: {exc}")))
                continue
            pending = calls.submit(pr.file, measure, img_path, pb_path, mask_path, tmp,
                                   paths=(img_path, pb_path, mask_path, tmp), display=pr.file,
                                   recovery=recovery)
            if calls.engine == "casampi":     # measured later: the files stay till the cluster ends
                stack.enter_context(set_stack.pop_all())
        finish.append(functools.partial(_figures, v, s, pr, pb, mask, pb_ok, mask_ok, pending,
                                        req, spw_bw, thumbnails))
    return finish


def _figures(v: Validation, s: ProductSet, pr: Product, pb, mask, pb_ok: bool, mask_ok: bool,
             pending, req: R.Requirements | None, spw_bw: dict, thumbnails) -> None:
    """Record one image's measured figures: findings, requirements, thumbnail."""
    n = pr.info
    o = pending.outcome()
    fig = o.value if o.ok else ImageFigures(file=pr.file, error=o.error)
    if fig.error:
        v.findings.append(finding("I001", pr.file, fig.error))
    elif pb is not None and not pb_ok:
        v.findings.append(finding("I005", pr.file, f"primary beam {pb.file} is not readable "
                                  "FITS: rms measured on the corrected image"))
    p = n.parsed
    is_req_target = ((p is None or p.target_type == "sci") and n.stokes in (None, "I", "IQUV")
                     and n.role in ("pbcor", "sd", "image") and n.taylor in (None, 0))
    bandwidth, bw_source = R.product_bandwidth(
        p.imagetype if p else None, fig.nchan, fig.chan_width_hz, fig.effbw_hz,
        list(p.spws) if p else [], spw_bw)
    req_notes: list[str] = []
    if is_req_target and not fig.error and req is not None:
        checks, req_notes = R.judge(req, bmaj=fig.bmaj, bmin=fig.bmin, rms=fig.rms,
                                    freq_hz=fig.freq_hz, bandwidth_hz=bandwidth,
                                    bandwidth_source=bw_source, per_channel=fig.nchan > 1)
        fig.checks.extend(checks)
        v.findings.extend(_requirement_findings(pr.file, checks))
    d = fig.as_dict()
    d.update({"bandwidth_hz": bandwidth, "bandwidth_source": bw_source,
              "requirement_notes": req_notes, "displayed": plane_label(fig)})
    d.update({"target": p.source if p else None, "type": p.target_type if p else None,
              "imagetype": p.imagetype if p else None, "stokes": n.stokes, "kind": n.role,
              "taylor": n.taylor, "naming": n.naming,
              "pb": pb.file if pb_ok else None, "mask": mask.file if mask_ok else None,
              "pb_rule": s.pb_rule if pb_ok else None})
    if o.engine == "casampi":
        d["server"] = o.server     # measured on that casampi server
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
