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


def _flux(x, unit: str | None) -> str:
    """A brightness with its unit; Jy/beam values below 1 in mJy/beam."""
    if x is None:
        return ""
    u = unit or "(no unit)"
    if u.replace(" ", "").lower() == "jy/beam" and abs(x) < 1.0:
        return f"{1e3 * x:.4g} mJy/beam"
    return f"{x:.4g} {u}"


def _hz(x, unit: str = "GHz") -> str:
    if not x:
        return ""
    return f"{x / {'GHz': 1e9, 'MHz': 1e6}[unit]:.6g} {unit}"


def _images_table(images: list) -> str:
    rows = []
    for im in images:
        checks = " ".join(badge(("pass " if c["pass"] else "fail ") + c["what"],
                                "pass" if c["pass"] else "fail") for c in im.get("checks", []))
        beam = ""
        if im.get("bmaj"):
            beam = f"{im['bmaj']:.3g}\" × {im['bmin']:.3g}\", PA {im['bpa']:.1f}°"
            if im.get("nbeams", 0) > 1:
                beam += f" (median of {im['nbeams']})"
        chans = im.get("nchan")
        bw = _hz(im.get("bandwidth_hz"), "MHz")
        if bw and (chans or 1) > 1:
            bw += " per channel"
        rows.append((im["file"].rsplit("/", 1)[-1], im.get("kind"), chans,
                     _hz(im.get("freq_hz")), bw, beam, _flux(im.get("peak"), im.get("unit")),
                     _flux(im.get("rms"), im.get("unit")),
                     _fmt(im.get("dynamic_range"), 3), im.get("method"),
                     "yes" if im.get("mask_used") else "no", Raw(checks) if checks else "",
                     im.get("error") or "; ".join(im.get("requirement_notes") or [])))
    return table(["image", "kind", "channels", "frequency", "bandwidth", "beam (FWHM, PA east of "
                  "north)", "peak (pbcor)", "rms (uncorrected, outside mask)", "dynamic range",
                  "rms from", "mask", "requirements", "notes"], rows,
                 col_classes=["file", None, "num", "num", "num", None, "num", "num", "num", None,
                              None, None, None], empty="no image products measured")


def _requirement_rows(req: Mapping) -> list:
    """Rows (member, requirement, value with unit, source) of one member's requirements."""
    rows = []
    if req.get("res_max_arcsec") is not None:
        lo = req.get("res_min_arcsec") or 0.0
        rows.append(("angular resolution", (f"{lo:.3g} – " if lo else "at most ")
                     + f"{req['res_max_arcsec']:.3g} arcsec", f"{100 * req['res_tolerance']:.0f}%",
                     req["sources"].get("resolution", "")))
    else:
        rows.append(("angular resolution", "not given", "", ""))
    if req.get("sensitivity_jy_per_beam") is not None:
        rows.append(("sensitivity goal", f"{1e3 * req['sensitivity_jy_per_beam']:.4g} mJy/beam",
                     f"{100 * req['sens_tolerance']:.0f}%", req["sources"].get("sensitivity", "")))
    else:
        rows.append(("sensitivity goal", "not given", "", ""))
    rows.append(("bandwidth of the sensitivity goal",
                 _hz(req.get("bandwidth_hz"), "MHz") or "not known (goal not scaled)", "",
                 req["sources"].get("bandwidth", "")))
    rows.append(("representative frequency", _hz(req.get("frequency_hz")) or "not known", "",
                 req["sources"].get("frequency", "")))
    goal = req.get("science_goal") or {}
    for key, label in (("representative_source", "representative source"),
                       ("representative_window", "representative window"), ("sb_name", "SB name")):
        if goal.get(key):
            rows.append((label, goal[key], "", "SBSummary.xml"))
    return rows


def _requirements_section(res: Mapping) -> str:
    req = res.get("requirements") or {}
    members = req.get("members") or {}
    if not members:
        return '<p class="muted">not checked (the image figures were not selected)</p>'
    parts = []
    for mous, r in members.items():
        parts.append(f"<p><b>{esc(mous)}</b>: requirements from <b>{esc(r.get('source'))}</b>"
                     + (" (the science goal the PI set in the Observing Tool, as the ASDM's "
                        "SBSummary.xml states it; a req_* parameter overrides an item)"
                        if "SBSummary" in str(r.get("source")) else "") + "</p>")
        parts.append(table(["requirement", "value", "tolerance", "source"], _requirement_rows(r)))
        rules = r.get("rules") or {}
        parts.append("<ul>" + "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in rules.items())
                     + "".join(f"<li>note: {esc(n)}</li>" for n in r.get("notes") or []) + "</ul>")
    checks = []
    for im in res.get("images", []):
        for c in im.get("checks", []):
            if c["what"] == "resolution":
                req_txt = (f"{c['min']:.3g} – {c['max']:.3g} arcsec" if c["min"]
                           else f"≤ {c['max']:.3g} arcsec")
                if c.get("scale", 1.0) != 1.0:
                    req_txt += f" (×{c['scale']:.3f} for {c['frequency_hz'] / 1e9:.4g} GHz)"
                value = f"{c['value']:.3g} arcsec"
                limit = f"{c['lower_limit']:.3g} – {c['limit']:.3g} arcsec"
            else:
                req_txt = f"{1e3 * c['required']:.4g} mJy/beam"
                if c.get("bandwidth_hz"):
                    req_txt += (f" at {c['bandwidth_hz'] / 1e6:.6g} MHz"
                                + (" per channel" if c.get("per_channel") else "")
                                + f" (goal × {c['scaling']})")
                value = f"{1e3 * c['value']:.4g} mJy/beam"
                limit = f"≤ {1e3 * c['limit']:.4g} mJy/beam"
            checks.append((im["file"].rsplit("/", 1)[-1], c["what"], value, req_txt, limit,
                           Raw(badge("pass" if c["pass"] else "fail"))))
    parts.append(table(["image", "requirement", "measured", "required for this product",
                        "limit with tolerance", "verdict"], checks, col_classes=["file"],
                       empty="no product judged (no requirement given or stated)"))
    return "\n".join(parts)


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
    parts.append(section("Requirements", _requirements_section(res), "requirements"))
    for c in CATEGORIES:
        fs = [f for f in res["findings"] if f["category"] == c]
        order = {"error": 0, "warning": 1, "info": 2}
        fs.sort(key=lambda f: (order.get(f["severity"], 3), f["code"], f["file"]))
        body = _findings_table(fs)
        if c == "images":
            body += _images_table(res.get("images", []))
        parts.append(section(_TITLES[c], body, c))
    shown = {im["file"]: im.get("displayed") for im in res.get("images", [])}
    thumbs = [(png, f.rsplit("/", 1)[-1] + (f" — {shown[f]}" if shown.get(f) else ""))
              for f, png in thumbnails.items()]
    parts.append(section("Thumbnails", "<p>Each image's displayed plane (named under it), in its "
                         "brightness unit; axes are offsets in arcsec from the reference position "
                         "(RA to the east on the left); dashed cyan: primary beam at 0.2 (the "
                         "pipeline's image limit); green: clean mask; white ellipse: "
                         "restoring beam.</p>" + thumbnail_grid(thumbs), "thumbnails"))
    parts.append(section("Products", table(
        ["file", "target", "type", "spws", "image type", "Stokes", "kind", "shape", "NaN fraction"],
        [(p["file"].rsplit("/", 1)[-1], p["target"] or "", p["type"] or "",
          " ".join(map(str, p["spws"])), p["imagetype"] or "", p["stokes"] or "", p["kind"],
          "×".join(map(str, p["shape"])) if p.get("shape") else "",
          _fmt(p.get("nan_fraction"), 3)) for p in res.get("products", [])],
        col_classes=["file"] + [None] * 7 + ["num"], empty="no products"), "products"))
    return page("Delivery validation", "\n".join(parts))
