"""The self-contained HTML page of a qa_renormplots run (uses almaqa_casa.report)."""
from __future__ import annotations

import os
from pathlib import Path

from ..report.html import Raw, badge, esc, img, page, section, table, write_html


def _thumb(path: str, alt: str, width: int = 320) -> str:
    if not path or not os.path.exists(path):
        return ""
    return img(Path(path).read_bytes(), alt, width)


def _qa_cell(scores: list[dict]) -> Raw:
    """The pipeline's QA scores of one row: the score badges with their messages."""
    if not scores:
        return Raw("")
    parts = []
    for s in scores:
        v = "n/a" if s.get("score") is None else f"{s['score']:.2f}"
        parts.append(f"{badge(v, s.get('colour', 'info'))} {esc(s.get('shortmsg'))}"
                     f"<br><span class=\"muted\">{esc(s.get('longmsg'))}</span>")
    return Raw("<br>".join(parts))


def _corrected_cell(r: dict) -> Raw:
    if r.get("corrected"):
        txt = "yes" + (f" ({r['corrected_how']})" if r.get("corrected_how") else "")
        if r.get("restore_factor") is not None:
            txt += f"; factor {r['restore_factor']:.5f}"
        return Raw(badge("corrected", "info") + " " + esc(txt))
    return Raw(esc("no" + (f" ({r['corrected_how']})" if r.get("corrected_how") else "")))


def _correction_note(ms: dict) -> str:
    c = ms.get("correction") or {}
    if not c:
        return ""
    data = c.get("data", "uncalibrated")
    lines = [f"DATA holds {esc(data)} data."]
    if c.get("corrected"):
        lines.append(f"Renormalization already applied by <b>{esc(c.get('corrected_by'))}</b>"
                     + (f" (table <code>{esc(c.get('caltable'))}</code>)" if c.get("caltable") else "")
                     + (f", read from <code>{esc(c.get('source'))}</code>" if c.get("source") else "")
                     + ".")
    if c.get("note"):
        lines.append(esc(c["note"]) + ".")
    return "<p>" + " ".join(lines) + "</p>"


def build_page(result: dict, outdir: str) -> str:
    """HTML text: per MS the correction state, the summary table (maximum per
    target/spw/field, threshold decision, corrected or not, the pipeline's QA
    score) and the plots, embedded and linked."""
    thr = result.get("threshold")
    parts: list[str] = [
        "<h1>Amplitude renormalization diagnostics</h1>",
        f"<p>Scaling spectra from the uncorrected autocorrelations (target / bandpass), ALMA "
        f"pipeline heuristic; threshold <b>{esc(thr)}</b>. Rows above the threshold are marked; "
        f"'corrected' says whether the correction is applied (by qa_restore, by the pipeline, "
        f"or by this run's table with apply=True). QA: the score the pipeline's hifa_renorm "
        f"gives (factors below 1.0 or above 2.5 are unrealistic).</p>"]
    for ms in result.get("ms", []):
        body = [_correction_note(ms)]
        if ms.get("status") != "ok":
            body.append(f"<p>{badge('failed', 'fail')} {esc(ms.get('error'))}</p>")
        if ms.get("already_corrected"):
            body.append(f"<p>{badge('already corrected', 'info')} no scaling factor is "
                        "reported for this MS.</p>")
        if ms.get("tdm_only"):
            body.append("<p>No FDM science spectral windows: renormalization unnecessary.</p>")
        for s in ms.get("qa") or []:
            v = "n/a" if s.get("score") is None else f"{s['score']:.2f}"
            body.append(f"<p>QA {badge(v, s.get('colour', 'info'))} {esc(s.get('longmsg'))}</p>")
        rows = []
        for t, spws in ms.get("targets", {}).items():
            for s, r in spws.items():
                rel = os.path.relpath(r["plot"], outdir) if r.get("plot") else ""
                link = Raw(f'<a href="{esc(rel)}">{esc(os.path.basename(rel))}</a>') if rel else ""
                state = (badge("above threshold", "warning") if r["exceeds"]
                         else badge("below", "ok"))
                if r.get("unrealistic"):
                    state += " " + badge("unrealistic", "error")
                fields = ", ".join(f"{f}: {v:.5f}" for f, v in r.get("fields", {}).items())
                warn = []
                if r.get("atm_warning"):
                    warn.append("ATM feature above threshold"
                                + (" (auto-excluded)" if r.get("atm_auto_exclude") else "")
                                + (f"; suggested {r['suggested_excludechan']}"
                                   if r.get("suggested_excludechan") else ""))
                if r.get("seg_change"):
                    warn.append("segments changed between scans/fields")
                if r.get("error"):
                    warn.append(r["error"])
                rows.append((t, s, Raw(f"<b>{r['max_rn']:.5f}</b>"), r.get("max_rn_field_name", ""),
                             f"{r['peak_freq_ghz']:.5f}" if r.get("peak_freq_ghz") else "",
                             Raw(state), _corrected_cell(r), _qa_cell(r.get("qa") or []),
                             fields, "; ".join(warn), link))
        if not ms.get("already_corrected"):
            body.append(table(["target", "spw", "max scaling", "field", "peak (GHz)", "threshold",
                               "corrected", "QA (pipeline score)", "max per field", "notes",
                               "plot"], rows,
                              col_classes=[None, "num", "num", None, "num", None, None, None,
                                           None, None, "file"],
                              empty="no spectral windows analysed"))
        if ms.get("caltable"):
            body.append(f"<p>Correction table: <code>{esc(ms['caltable'])}</code></p>")
        figs = []
        if ms.get("summary_plot"):
            figs.append((ms["summary_plot"], "maximum scaling per spw and field"))
        for t, spws in ms.get("targets", {}).items():
            for s, r in spws.items():
                if r.get("plot"):
                    figs.append((r["plot"], f"{t} spw {s}"))
        grid = []
        for p, cap in figs:
            rel = os.path.relpath(p, outdir)
            th = _thumb(p, cap, 420)
            if th:
                grid.append(f'<figure><a href="{esc(rel)}">{th}</a>'
                            f'<figcaption>{esc(cap)}</figcaption></figure>')
        if grid:
            body.append('<div class="grid">' + "\n".join(grid) + "</div>")
        parts.append(section(os.path.basename(ms["vis"].rstrip("/")), "\n".join(body)))
    css_extra = "figure { max-width: 440px; }"
    from ..report.html import CSS
    return page("qa_renormplots", "\n".join(parts), css=CSS + css_extra)


def write_page(result: dict, outdir: str, name: str = "index.html") -> str:
    path = os.path.join(outdir, name)
    write_html(path, build_page(result, outdir))
    return path
