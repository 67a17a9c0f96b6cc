"""qa_renormplots: scaling spectra, plots, page, QA scores, optional correction table.

Per MS: what it holds (:mod:`.state`: uncorrected data, data corrected by
qa_restore with the table at hand, or corrected data without it), then
:func:`.engine.run` (read once, compute; a correction the data carry is
divided out of the target autocorrelations first), the plots, the
pipeline's QA scores (:mod:`.qa`), the correction table when asked (refused
where a correction is already applied), and finally one HTML page and one
JSON file for all MSs in ``outdir``.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import engine, inputs, plots, qa
from .caltable import read_correction, write_correction
from .report import write_page
from .state import CorrectionState, state_for

__all__ = ["AlreadyCorrected", "renormplots"]


class AlreadyCorrected(engine.RenormInputError):
    """apply=True on data whose renormalization is already applied."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def _correction_text(st: CorrectionState, spw: int, target: str) -> tuple[bool, str, Any]:
    """(corrected, how, factor) of one target/spw from the MS's correction state."""
    if not st.corrected:
        return False, "", None
    if st.spws is not None and spw not in st.spws:
        return False, f"not needed: below the threshold when {st.corrected_by} corrected", None
    factor = (st.factors.get(target) or {}).get(str(spw))
    return True, f"by {st.corrected_by}", factor


def _ms_result(rr: engine.RunResult, outdir: str, opt: engine.Options, caltable: str,
               st: CorrectionState, log: Callable[[str], None]) -> dict:
    base = _safe(os.path.basename(rr.vis.rstrip("/")))
    name = os.path.basename(rr.vis.rstrip("/"))
    out: dict[str, Any] = {"vis": rr.vis, "status": "ok", "band": rr.band,
                           "tdm_only": rr.tdm_only, "fdm_spws": rr.fdm_spws,
                           "tdm_spws": rr.tdm_spws, "spws": rr.spws, "targets": {},
                           "caltable": None, "summary_plot": None, "plots": [],
                           "atm": None, "excludechan_used": rr.excludechan_final,
                           "data_column": rr.info.data_column, "correction": st.as_dict(),
                           "undone_groups": len(rr.undone)}
    if rr.atm is not None:
        out["atm"] = {"tool_evaluations": rr.atm.n_tool_calls,
                      "elevation_bins": rr.atm.n_fits, "bin_deg": rr.atm.bin_deg,
                      "conditions": {str(k): v for k, v in rr.atm.conditions.items()}}
    rows = []
    names = rr.info.field_names
    will_correct = bool(caltable) and not rr.tdm_only
    for res in rr.results:
        corrected, how, factor = _correction_text(st, res.spw, res.target)
        if will_correct and res.exceeds:
            corrected, how = True, "by this run (apply=True: correction table written)"
        d: dict[str, Any] = {"max_rn": res.max_rn, "max_rn_field": res.max_rn_field,
                             "max_rn_field_name": names.get(res.max_rn_field, ""),
                             "threshold": res.threshold, "exceeds": bool(res.exceeds),
                             "corrected": corrected, "corrected_how": how,
                             "restore_factor": factor,
                             "unrealistic": qa.unrealistic(res.max_rn),
                             "seg_change": res.seg_change,
                             "atm_warning": res.atm_warning, "atm_exclude_cmd": res.atm_exclude_cmd,
                             "suggested_excludechan": (res.atm_exclude_cmd
                                                       if res.atm_warning else None),
                             "atm_auto_exclude": opt.atm_auto_exclude,
                             "excluded_ranges": [list(x) for x in res.exclusions],
                             "atm_ranges": [list(x) for x in res.atm_ranges],
                             "nseg": sorted({e.nseg for e in res.entries}),
                             "fields": {}, "scans": [], "plot": None, "error": res.error,
                             "peak_channel": None, "peak_freq_ghz": None, "peak_value": None}
        d["qa"] = [s.as_dict() for s in qa.spw_scores(
            name, res.target, res.spw, res.max_rn, res.threshold, corrected,
            seg_change=res.seg_change, atm_warning=res.atm_warning,
            atm_exclude_cmd=res.atm_exclude_cmd, excludechan=opt.excludechan,
            atm_auto_exclude=opt.atm_auto_exclude)]
        d["qa_score"] = qa.worst(d["qa"])
        for e in res.entries:
            d["scans"].append({"scan": e.scan, "field": e.field, "value": e.value,
                               "nmax": e.nmax, "nseg": e.nseg, "flagged_antennas": e.flagged,
                               "outliers": e.outliers, "elevation_deg": e.elevation})
            fk = str(e.field)
            d["fields"][fk] = max(d["fields"].get(fk, 0.0), e.value)
            rows.append({"target": res.target, "spw": res.spw, "field": e.field, "value": e.value})
        if res.summary is not None and res.entries:
            ip, fp, vp = plots.peak_of(res.summary, res.freqs)
            d.update(peak_channel=ip, peak_freq_ghz=fp, peak_value=vp)
            path = os.path.join(outdir, f"{base}_{_safe(res.target)}_spw{res.spw}_ReNormSpectra.png")
            e0 = res.entries[-1]
            plots.plot_spectrum(
                path, res.summary, res.freqs,
                title=(f"{name}\nTarget={res.target} Spw={res.spw} "
                       f"Nant={rr.nant} Nscan/field={len(res.entries)}"
                       + (" (scans/fields above threshold)" if res.summary_is_thresh else "")),
                threshold=res.threshold, max_rn=res.max_rn, exclusions=res.exclusions,
                atm_ranges=res.atm_ranges, N_atm=res.summary_atm,
                transmission=res.atm_transmission, nseg=e0.nseg, dnchan=e0.dnchan)
            d["plot"] = path
            out["plots"].append(path)
        out["targets"].setdefault(res.target, {})[str(res.spw)] = d
    bands_fdm = [rr.band] if rr.fdm_spws else []
    out["qa"] = [s.as_dict() for s in qa.ms_scores(rr.tdm_only, bands_fdm)]
    errors = [r.error for r in rr.results if r.error]
    if errors:
        out["status"] = "failed"
        out["error"] = "; ".join(errors)
    if rows:
        sp = os.path.join(outdir, f"{base}_ReNormMaxPerSpwField.png")
        plots.plot_summary(sp, rows, opt.threshold or 1.02, f"{name}: maximum scaling per spw and field")
        out["summary_plot"] = sp
        out["plots"].append(sp)
    if will_correct:
        write_correction(rr, caltable)
        out["caltable"] = caltable
        out["applycal"] = {"gaintable": caltable, "interp": "nearest,linear",
                           "gainfield": "nearest", "calwt": True}
        log(f"{rr.vis}: correction table {caltable} written; apply it with "
            f"applycal(..., gaintable=[..., '{caltable}'], interp=[..., 'nearest,linear'], "
            f"gainfield=[..., 'nearest'])  (gainfield 'nearest' gives each mosaic pointing "
            f"its own row; '' mixes the rows of one scan)")
    return out


def _not_analysed(vis: str, st: CorrectionState) -> dict:
    """The entry of an MS whose data are corrected and whose correction is not at hand."""
    return {"vis": vis, "status": "ok", "targets": {}, "plots": [], "caltable": None,
            "summary_plot": None, "correction": st.as_dict(), "already_corrected": True,
            "note": st.note, "qa": []}


def _refuse(vis: str, st: CorrectionState) -> None:
    what = f"its data were already renormalized by {st.corrected_by}"
    if st.caltable:
        what += f" (table {st.caltable}"
        what += f", spw {', '.join(map(str, st.spws))})" if st.spws else ")"
    raise AlreadyCorrected(
        f"{vis}: apply=True refused: {what}; a second correction table would correct the data "
        "twice. Run qa_renormplots without apply=True to see the diagnostics of the "
        "uncorrected data.")


def renormplots(vis: Any, outdir: str = "", spw: Any = "", field: Any = "",
                threshold: float = 1.02, excludechan: Any = None, atm_auto_exclude: bool = True,
                bwthreshspw: Any = None, apply: bool = False, caltable: str = "",
                log: Callable[[str], None] = print, **extra) -> dict:
    """Run the renormalization diagnostics; see xml/qa_renormplots.xml."""
    t0 = time.perf_counter()
    mslist = inputs.ms_list(vis)
    restore_result = vis if isinstance(vis, Mapping) else None
    states = {v: state_for(v, restore_result) for v in mslist}
    if apply:
        for v, st in states.items():
            if st.corrected:
                _refuse(v, st)
    outdir = outdir or inputs.default_outdir(mslist)
    os.makedirs(outdir, exist_ok=True)
    opt = engine.Options(threshold=float(threshold), spws=inputs.spw_list(spw),
                         fields=inputs.field_list(field),
                         excludechan=inputs.str_dict(excludechan, "excludechan"),
                         atm_auto_exclude=bool(atm_auto_exclude),
                         bwthreshspw=inputs.str_dict(bwthreshspw, "bwthreshspw", as_float=True),
                         keep_spectra=bool(apply), **extra)
    result: dict[str, Any] = {"status": "failed", "outdir": os.path.abspath(outdir),
                              "threshold": opt.threshold, "apply": bool(apply), "ms": [],
                              "html": None, "json": None, "plots": [], "warnings": []}
    for vis_i in mslist:
        st = states[vis_i]
        if st.note:
            log(f"{vis_i}: {st.note}")
        if st.analyse == "none":
            result["ms"].append(_not_analysed(vis_i, st))
            result["warnings"].append(f"{vis_i}: {st.note}")
            continue
        try:
            o = opt
            if st.analyse == "undo":
                import dataclasses
                o = dataclasses.replace(opt, divide_by=read_correction(str(st.caltable)))
            rr = engine.run(vis_i, o, log=log)
            ct = inputs.caltable_name(vis_i, caltable, len(mslist)) if apply else ""
            ms = _ms_result(rr, outdir, o, ct, st, log)
            if st.analyse == "undo" and not rr.undone and not rr.tdm_only:
                ms["status"] = "failed"
                ms["error"] = (f"{vis_i}: the correction {st.caltable} matches no target "
                               "scan of this MS; the spectra would be those of corrected data")
        except engine.RenormInputError:
            raise
        except Exception as exc:  # one bad MS must not hide the others
            log(f"{vis_i}: {exc}")
            ms = {"vis": vis_i, "status": "failed", "error": f"{vis_i}: {exc}", "targets": {},
                  "plots": [], "correction": st.as_dict()}
        result["ms"].append(ms)
        result["plots"] += ms.get("plots", [])
        for t, spws in ms.get("targets", {}).items():
            for s, d in spws.items():
                if d.get("error"):
                    result["warnings"].append(d["error"])
                if d.get("unrealistic"):
                    result["warnings"].append(
                        f"{os.path.basename(vis_i)} {t} spw {s}: maximum scaling "
                        f"{d['max_rn']} is unrealistic (below 1.0 or above 2.5)")
                if d.get("suggested_excludechan") and d.get("exceeds"):
                    result["warnings"].append(
                        f"{os.path.basename(vis_i)} {t} spw {s}: an atmospheric feature is "
                        f"above the threshold; suggested {d['suggested_excludechan']}")
    above = [d for ms in result["ms"] for spws in ms.get("targets", {}).values()
             for d in spws.values() if d["exceeds"]]
    result["exceeds"] = bool(above)
    result["all_corrected"] = bool(above) and all(d["corrected"] for d in above)
    result["html"] = write_page(result, outdir)
    result["seconds"] = time.perf_counter() - t0
    result["status"] = "ok" if all(m["status"] == "ok" for m in result["ms"]) else "failed"
    from ..report.jsonio import write_json
    jpath = os.path.join(outdir, "renorm_results.json")
    result["json"] = jpath
    write_json(jpath, result)
    return result
