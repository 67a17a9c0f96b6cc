"""The restore report: ``restore.json`` and a self-contained ``restore.html``.

Written beside the restored data (``<calibrated>/``) at the end of every
qa_restore run of a member: per EB the steps and their times, the outputs,
the verification table, the amplitude renormalization (applied, factor,
table, the pipeline's QA scores), the flag counts per scan and intent
against Pipeline_Final, the flux calibrator against flux.csv; for the
member the status, disk (predicted and measured), versions and parameters
(provenance) and the warnings.  The page needs no network (inline CSS, no
scripts).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..restore.disk import fmt_bytes
from .html import Raw, badge, esc, kv_table, page, section, summary_boxes, table, write_html
from .jsonio import write_json

__all__ = ["build_restore_html", "restore_document", "write_restore_report"]

_STATUS_CLASS = {"pass": "pass", "passed": "pass", "ok": "ok", "fail": "fail", "failed": "fail",
                 "warn": "warning", "skip": "info", "skipped": "info", "not run": "warning"}


def restore_document(res: Mapping[str, Any], disk: Mapping | None = None) -> dict:
    """The JSON content of the report of one member (pure)."""
    ver = res.get("verification") or {}
    ebs = {}
    for uid, r in (res.get("eb_results") or {}).items():
        steps = [s for s in res.get("steps") or [] if str(s.get("step", "")).startswith(f"{uid}:")]
        v = (ver.get("ebs") or {}).get(uid) or {}
        ebs[uid] = {"status": r.get("status"), "seconds": r.get("seconds"),
                    "steps": steps, "outputs": r.get("outputs") or [],
                    "error": r.get("error", ""),
                    "verification": {"status": v.get("status", ver.get("status", "skipped")),
                                     "ms": v.get("ms"), "column": v.get("column"),
                                     "seconds": v.get("seconds"), "checks": v.get("checks", [])},
                    "renorm": (res.get("renorm") or {}).get(uid)}
    member_steps = [s for s in res.get("steps") or []
                    if not any(str(s.get("step", "")).startswith(f"{u}:") for u in ebs)]
    return {"report": "almaqa_casa qa_restore report", "version": 1,
            "member": res.get("member"), "mous": res.get("mous"), "status": res.get("status"),
            "mode": res.get("mode"), "route": res.get("route"), "calibrated": res.get("calibrated"),
            "seconds": res.get("seconds"), "error": res.get("error", ""),
            "warnings": list(res.get("warnings") or []),
            "provenance": res.get("provenance"),
            "disk": {"predicted_peak_bytes": res.get("predicted_peak_bytes"),
                     "peak_bytes": res.get("peak_bytes"), "raw_bytes": res.get("raw_bytes"),
                     "needed": (disk or {}).get("needed"),
                     "available": (disk or {}).get("available"),
                     "checked": (disk or {}).get("checked")},
            "verification": {"status": ver.get("status", "skipped"),
                             "failures": ver.get("failures", []),
                             "seconds": ver.get("seconds"), "flux_csv": ver.get("flux_csv"),
                             "note": ver.get("note", "")},
            "ebs": ebs, "member_steps": member_steps, "post": res.get("post") or [],
            "produced": res.get("produced") or {}, "deleted": res.get("deleted") or []}


def _status(s: Any) -> Raw:
    return Raw(badge(str(s), _STATUS_CLASS.get(str(s), "info")))


def _score_badge(q: Mapping[str, Any]) -> str:
    v = q.get("score")
    return badge("n/a" if v is None else f"{v:.2f}", q.get("colour", "info"))


def _renorm_html(rn: Mapping[str, Any] | None) -> str:
    if not rn:
        return '<p class="muted">No amplitude renormalization requested by the manifest.</p>'
    items: dict[str, Any] = {
        "applied": "yes" if rn.get("applied") else "no",
        "spws corrected": ", ".join(map(str, rn.get("spws") or [])) or "none",
        "table": rn.get("caltable") or "", "computed in": f"{rn.get('seconds', 0)} s"}
    if rn.get("note"):
        items["note"] = rn["note"]
    if rn.get("warning"):
        items["warning"] = rn["warning"]
    if rn.get("table_max"):
        items["largest factor in the table"] = ", ".join(
            f"spw {s}: {v:.5f}" for s, v in rn["table_max"].items())
    out = [kv_table(items)]
    qa = rn.get("qa") or {}
    rows = []
    for t, spws in (rn.get("max_scaling") or {}).items():
        for s, v in spws.items():
            scores = ((qa.get("spw") or {}).get(t) or {}).get(s) or []
            txt = "<br>".join(f"{_score_badge(q)} {esc(q.get('longmsg'))}" for q in scores)
            rows.append((t, s, f"{v:.6f}", Raw("yes" if int(s) in (rn.get("spws") or []) else "no"),
                         Raw(txt)))
    out.append(table(["target", "spw", "maximum scaling", "corrected", "QA (pipeline score)"],
                     rows, col_classes=[None, "num", "num", None, None],
                     empty="no scaling computed"))
    for q in qa.get("run") or []:
        out.append(f"<p>QA {_score_badge(q)} {esc(q.get('longmsg'))}</p>")
    return "\n".join(out)


def _flags_html(check: Mapping[str, Any]) -> str:
    rows = []
    for r in (check.get("numbers") or {}).get("table") or []:
        same = (r.get("flagged_samples") == r.get("reference_flagged_samples")
                and r.get("flagged_rows") == r.get("reference_flagged_rows"))
        rows.append((r.get("scan"), r.get("intent"), r.get("spw"), r.get("rows"),
                     r.get("flagged_rows"), r.get("reference_flagged_rows"),
                     r.get("flagged_samples"), r.get("reference_flagged_samples"),
                     _status("pass" if same else "fail")))
    if not rows:
        return ""
    return ("<h4>Flagged rows per scan and intent (restored vs Pipeline_Final)</h4>"
            + table(["scan", "intent", "spw", "rows", "flagged rows", "Pipeline_Final",
                     "flagged samples", "Pipeline_Final", ""], rows,
                    col_classes=[None, None, "num", "num", "num", "num", "num", "num", None]))


def _flux_html(check: Mapping[str, Any]) -> str:
    nums = check.get("numbers") or {}
    rows = []
    for m in list(nums.get("spws") or []) + list(nums.get("others") or []):
        p = m.get("parts") or {}
        rows.append((m.get("field", nums.get("field")), m.get("spw"), f"{m['expected']:.5g}",
                     f"{m['measured']:.5g}", f"{100 * (m['measured'] / m['expected'] - 1):+.3f} %",
                     f"{100 * m['tolerance']:.3f} %",
                     f"{100 * p.get('spectral_index', 0):.3f} / {100 * p.get('uv_structure', 0):.3f}"
                     f" / {100 * p.get('noise', 0):.3f} %",
                     "flux calibrator" if "field" not in m else "reported only"))
    if not rows:
        return ""
    return ("<h4>Calibrators against flux.csv</h4>"
            + table(["field", "spw", "flux.csv (Jy)", "measured (Jy)", "difference", "tolerance",
                     "spectral index / uv / noise", "role"], rows,
                    col_classes=[None, "num", "num", "num", "num", "num", "num", None]))


def build_restore_html(doc: Mapping[str, Any]) -> str:
    """The page of one member's report (pure)."""
    ebs = doc.get("ebs") or {}
    checks = [c for e in ebs.values() for c in (e.get("verification") or {}).get("checks") or []]
    counts = {"EBs": len(ebs),
              "EBs failed": sum(1 for e in ebs.values() if e.get("status") == "failed"
                                or (e.get("verification") or {}).get("status") == "failed"),
              "checks passed": sum(1 for c in checks if c["status"] == "pass"),
              "checks failed": sum(1 for c in checks if c["status"] == "fail"),
              "warnings": len(doc.get("warnings") or [])}
    parts = [f"<h1>qa_restore: {esc(doc.get('mous'))}</h1>",
             f"<p>{_status(doc.get('status'))} {esc(doc.get('mode'))} calibration, "
             f"{esc(doc.get('route'))} route; results in <code>{esc(doc.get('calibrated'))}</code>; "
             f"{esc(doc.get('seconds'))} s. Verification: "
             f"{_status((doc.get('verification') or {}).get('status'))}</p>",
             summary_boxes(counts)]
    if doc.get("error"):
        parts.append(f"<p>{badge('error', 'error')} {esc(doc['error'])}</p>")
    prov = doc.get("provenance") or {}
    d, p = prov.get("delivery_versions") or {}, prov.get("restoring_versions") or {}
    parts.append(section("Provenance", kv_table({
        "delivery calibrated with": f"CASA {d.get('casa') or 'unknown'}, pipeline "
                                    f"{d.get('pipeline') or 'unknown'}",
        "versions read from": d.get("casa_source") or "",
        "restored with": f"CASA {p.get('casa')} (casatools {p.get('casatools')}, casatasks "
                         f"{p.get('casatasks')}), Python {p.get('python')}",
        "major version difference": "yes" if prov.get("major_difference") else "no",
        "package": prov.get("package"), "time (UTC)": prov.get("time"),
        "parameters": ", ".join(f"{k}={v!r}" for k, v in (prov.get("parameters") or {}).items()),
    }), "provenance"))
    disk = doc.get("disk") or {}
    parts.append(section("Disk", kv_table({
        "raw (ASDM) size": fmt_bytes(disk.get("raw_bytes")),
        "predicted peak": fmt_bytes(disk.get("predicted_peak_bytes")),
        "measured peak": fmt_bytes(disk.get("peak_bytes")),
        "needed / available at the start": f"{fmt_bytes(disk.get('needed'))} / "
                                           f"{fmt_bytes(disk.get('available'))}"}), "disk"))
    vrows = []
    for uid, e in ebs.items():
        for c in (e.get("verification") or {}).get("checks") or []:
            vrows.append((uid, c["check"], _status(c["status"]), c["message"]))
    parts.append(section("Verification", table(["EB", "check", "result", "message"], vrows,
                                               empty="verification not run (verify=False)"),
                         "verification"))
    for uid, e in ebs.items():
        body = [f"<p>{_status(e.get('status'))} restored in {esc(e.get('seconds'))} s; "
                f"verification {_status((e.get('verification') or {}).get('status'))} on "
                f"<code>{esc((e.get('verification') or {}).get('ms'))}</code></p>"]
        if e.get("error"):
            body.append(f"<p>{badge('error', 'error')} {esc(e['error'])}</p>")
        body.append("<h4>Steps</h4>" + table(
            ["step", "seconds", "skipped"],
            [(s.get("step"), f"{s.get('seconds', 0):.2f}", "yes" if s.get("skipped") else "")
             for s in e.get("steps") or []], col_classes=[None, "num", None],
            empty="no step ran"))
        body.append("<h4>Outputs</h4>" + table(["MS"], [(o,) for o in e.get("outputs") or []],
                                               col_classes=["file"], empty="none"))
        body.append("<h4>Amplitude renormalization</h4>" + _renorm_html(e.get("renorm")))
        for c in (e.get("verification") or {}).get("checks") or []:
            if c["check"] == "flags":
                body.append(_flags_html(c))
            if c["check"] == "flux":
                body.append(_flux_html(c))
        parts.append(section(f"EB {uid}", "\n".join(body), uid))
    if doc.get("post"):
        parts.append(section("Post scripts", table(
            ["script", "status", "error"],
            [(os.path.basename(str(p.get("script"))), _status(p.get("status")), p.get("error", ""))
             for p in doc["post"]])))
    parts.append(section("Warnings", table(["warning"], [(w,) for w in doc.get("warnings") or []],
                                           empty="no warnings"), "warnings"))
    from .html import CSS
    return page(f"qa_restore {doc.get('mous')}", "\n".join(parts),
                css=CSS + "td { overflow-wrap: anywhere; }")


def write_restore_report(calibrated: str, res: Mapping[str, Any],
                         disk: Mapping | None = None) -> dict[str, str]:
    """Write ``<calibrated>/restore.json`` and ``restore.html`` (atomically); their paths."""
    doc = restore_document(res, disk)
    jpath = os.path.join(calibrated, "restore.json")
    hpath = os.path.join(calibrated, "restore.html")
    write_json(jpath, doc)
    write_html(hpath, build_restore_html(doc))
    return {"json": jpath, "html": hpath}
