"""validation.html: summary first, a table per category, image figures, thumbnails.

Pure string building from the result dict (and thumbnail PNG bytes); the
page is one self-contained file.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..report.html import Raw, badge, esc, page, section, summary_boxes, table, thumbnail_grid
from .findings import CATEGORIES

__all__ = ["render"]

_TITLES = {"layout": "Layout", "naming": "Naming", "products": "Product sets",
           "fits": "FITS conformance", "images": "Image figures"}


def _fmt(x, nd=4):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{nd}g}"
    return str(x)


def _members_table(members: list) -> str:
    rows = []
    for m in members:
        extras = [lbl for key, lbl in (("selfcal", "selfcal"), ("full_polarization", "full pol"),
                                       ("total_power", "total power")) if m.get(key)]
        img = m.get("imaging", "")
        if m.get("supplemental_manual"):
            img += " + supplemental manual"
        cal = m.get("calibration", "")
        if m.get("pipeline_rerun_only"):
            cal += " (re-run only)"
        era = (m.get("era") or {}).get("label", "unknown")
        rows.append((m.get("mous"), m.get("kind", ""), cal, img, ", ".join(extras) or "-", era,
                     ", ".join(m.get("naming", [])) or "-",
                     ", ".join(m.get("folders", [])), m.get("readme") or "missing"))
    return table(["MOUS", "kind", "calibration", "imaging", "features", "era", "product naming",
                  "folders", "README"], rows, empty="no member folder found")


def _findings_table(findings: list) -> str:
    rows = [(Raw(badge(f["severity"])), f["code"], f["file"], f["message"]) for f in findings]
    return table(["severity", "code", "file", "message"], rows, col_classes=[None, None, "file", None],
                 empty="no findings")


def _images_table(images: list) -> str:
    rows = []
    for im in images:
        checks = " ".join(badge(("pass " if c["pass"] else "fail ") + c["what"],
                                "pass" if c["pass"] else "fail") for c in im.get("checks", []))
        beam = ""
        if im.get("bmaj"):
            beam = f"{im['bmaj']:.3g}\" × {im['bmin']:.3g}\" @ {im['bpa']:.1f}°"
            if im.get("nbeams", 0) > 1:
                beam += f" (median of {im['nbeams']})"
        rows.append((im["file"].rsplit("/", 1)[-1], im.get("kind"), im.get("nchan"), beam,
                     _fmt(im.get("peak")), _fmt(im.get("rms")), im.get("unit") or "",
                     _fmt(im.get("dynamic_range"), 3), im.get("method"),
                     "yes" if im.get("mask_used") else "no", Raw(checks) if checks else "",
                     im.get("error") or ""))
    return table(["image", "kind", "chans", "beam", "peak", "rms", "unit", "DR", "rms from",
                  "mask", "requirements", "error"], rows,
                 col_classes=["file", None, "num", None, "num", "num", None, "num", None, None,
                              None, None], empty="no image products measured")


def render(res: Mapping, thumbnails: Mapping[str, bytes]) -> str:
    """The HTML document for a validation result dict."""
    s = res["summary"]
    verdict = ("VALID: no errors" if s["error"] == 0 else f"NOT VALID: {s['error']} error(s)")
    parts = ["<h1>Delivery validation</h1>",
             f"<p><code>{esc(res['deliverydir'])}</code> ({esc(res['mode'])}); checks: "
             f"{esc(', '.join(res['checks']))}; {esc(res['seconds'])} s</p>",
             f"<p>{badge(verdict, 'ok' if s['error'] == 0 else 'error')}</p>",
             summary_boxes({"error": s["error"], "warning": s["warning"], "info": s["info"]})]
    cat_rows = [(_TITLES[c], s["by_category"][c].get("error", 0), s["by_category"][c].get("warning", 0),
                 s["by_category"][c].get("info", 0)) for c in CATEGORIES]
    parts.append(table(["category", "errors", "warnings", "info"], cat_rows,
                       col_classes=[None, "num", "num", "num"]))
    parts.append(section("Deliveries", _members_table(res.get("members", [])), "members"))
    req = res.get("requirements", {})
    req_rows = []
    for k, r in req.items():
        val = r.get("required_arcsec", r.get("required_jy_per_beam"))
        req_rows.append((k, _fmt(val) if val is not None else "not given",
                         f"{100 * r['tolerance']:.0f}%", r["rule"]))
    parts.append(section("Requirements", table(["requirement", "required", "tolerance", "rule"],
                                               req_rows), "requirements"))
    for c in CATEGORIES:
        fs = [f for f in res["findings"] if f["category"] == c]
        order = {"error": 0, "warning": 1, "info": 2}
        fs.sort(key=lambda f: (order.get(f["severity"], 3), f["code"], f["file"]))
        body = _findings_table(fs)
        if c == "images":
            body += _images_table(res.get("images", []))
        parts.append(section(_TITLES[c], body, c))
    thumbs = [(png, f.rsplit("/", 1)[-1]) for f, png in thumbnails.items()]
    parts.append(section("Thumbnails", thumbnail_grid(thumbs), "thumbnails"))
    parts.append(section("Products", table(
        ["file", "target", "type", "spws", "image type", "Stokes", "kind", "shape", "NaN fraction"],
        [(p["file"].rsplit("/", 1)[-1], p["target"] or "", p["type"] or "",
          " ".join(map(str, p["spws"])), p["imagetype"] or "", p["stokes"] or "", p["kind"],
          "×".join(map(str, p["shape"])) if p.get("shape") else "",
          _fmt(p.get("nan_fraction"), 3)) for p in res.get("products", [])],
        col_classes=["file"] + [None] * 7 + ["num"], empty="no products"), "products"))
    return page("Delivery validation", "\n".join(parts))
