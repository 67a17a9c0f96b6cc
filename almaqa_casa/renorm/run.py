"""qa_renormplots: scaling spectra, plots, page, optional correction table.

Per MS: :func:`.engine.run` (read once, compute), then the plots, the
correction table when asked, and finally one HTML page and one JSON file
for all MSs in ``outdir``.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import engine, inputs, plots
from .caltable import write_caltable
from .report import write_page


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def _caltable_rows(rr: engine.RunResult):
    """Rows as the pipeline writes them with createcaltable/fillTable:
    triggered target/spw -> every scan/field's N; otherwise 1.0; TDM
    science spws -> 1.0."""
    info = rr.info
    for res in rr.results:
        for e in res.entries:
            key = (e.scan, e.field)
            t = float(np.mean(info.scan_times[e.scan]))
            if res.exceeds and key in res.spectra:
                N = res.spectra[key]
            else:
                N = np.ones((len(info.spws[res.spw].corr_index), res.nchan, info.nant))
            yield res.spw, e.field, e.scan, t, N
    for t in sorted({r.target for r in rr.results}):
        for s in info.tdm_spws:
            scans = sorted(set(info.target_scans) & set(info.scans_for_name.get(t, []))
                           & set(info.scans_for_spw.get(s, [])))
            for k in scans:
                for f in info.fields_for_scan[k]:
                    N = np.ones((rr.info.ncorr, info.spws[s].nchan, info.nant))
                    yield s, f, k, float(np.mean(info.scan_times[k])), N


def _ms_result(rr: engine.RunResult, outdir: str, opt: engine.Options, caltable: str,
               log: Callable[[str], None]) -> dict:
    base = _safe(os.path.basename(rr.vis.rstrip("/")))
    out: dict[str, Any] = {"vis": rr.vis, "status": "ok", "band": rr.band,
                           "tdm_only": rr.tdm_only, "fdm_spws": rr.fdm_spws,
                           "tdm_spws": rr.tdm_spws, "spws": rr.spws, "targets": {},
                           "caltable": None, "summary_plot": None, "plots": [],
                           "atm": None, "excludechan_used": rr.excludechan_final,
                           "data_column": rr.info.data_column}
    if rr.atm is not None:
        out["atm"] = {"tool_evaluations": rr.atm.n_tool_calls,
                      "elevation_bins": rr.atm.n_fits, "bin_deg": rr.atm.bin_deg,
                      "conditions": {str(k): v for k, v in rr.atm.conditions.items()}}
    rows = []
    names = rr.info.field_names
    for res in rr.results:
        d: dict[str, Any] = {"max_rn": res.max_rn, "max_rn_field": res.max_rn_field,
                             "max_rn_field_name": names.get(res.max_rn_field, ""),
                             "threshold": res.threshold, "exceeds": bool(res.exceeds),
                             "corrected": False, "seg_change": res.seg_change,
                             "atm_warning": res.atm_warning, "atm_exclude_cmd": res.atm_exclude_cmd,
                             "atm_auto_exclude": opt.atm_auto_exclude,
                             "excluded_ranges": [list(x) for x in res.exclusions],
                             "atm_ranges": [list(x) for x in res.atm_ranges],
                             "nseg": sorted({e.nseg for e in res.entries}),
                             "fields": {}, "scans": [], "plot": None, "error": res.error,
                             "peak_channel": None, "peak_freq_ghz": None, "peak_value": None}
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
                title=(f"{os.path.basename(rr.vis.rstrip('/'))}\nTarget={res.target} Spw={res.spw} "
                       f"Nant={rr.nant} Nscan/field={len(res.entries)}"
                       + (" (scans/fields above threshold)" if res.summary_is_thresh else "")),
                threshold=res.threshold, max_rn=res.max_rn, exclusions=res.exclusions,
                atm_ranges=res.atm_ranges, N_atm=res.summary_atm,
                transmission=res.atm_transmission, nseg=e0.nseg, dnchan=e0.dnchan)
            d["plot"] = path
            out["plots"].append(path)
        out["targets"].setdefault(res.target, {})[str(res.spw)] = d
    errors = [r.error for r in rr.results if r.error]
    if errors:
        out["status"] = "failed"
        out["error"] = "; ".join(errors)
    if rows:
        sp = os.path.join(outdir, f"{base}_ReNormMaxPerSpwField.png")
        plots.plot_summary(sp, rows, opt.threshold or 1.02,
                           f"{os.path.basename(rr.vis.rstrip('/'))}: maximum scaling per spw and field")
        out["summary_plot"] = sp
        out["plots"].append(sp)
    if caltable and not rr.tdm_only:
        write_caltable(rr.vis, caltable, _caltable_rows(rr))
        out["caltable"] = caltable
        for t, spws in out["targets"].items():
            for s, d in spws.items():
                d["corrected"] = bool(d["exceeds"])
        out["applycal"] = {"gaintable": caltable, "interp": "nearest,linear",
                           "gainfield": "nearest", "calwt": True}
        log(f"{rr.vis}: correction table {caltable} written; apply it with "
            f"applycal(..., gaintable=[..., '{caltable}'], interp=[..., 'nearest,linear'], "
            f"gainfield=[..., 'nearest'])  (gainfield 'nearest' gives each mosaic pointing "
            f"its own row; '' mixes the rows of one scan)")
    return out


def renormplots(vis: Any, outdir: str = "", spw: Any = "", field: Any = "",
                threshold: float = 1.02, excludechan: Any = None, atm_auto_exclude: bool = True,
                bwthreshspw: Any = None, apply: bool = False, caltable: str = "",
                log: Callable[[str], None] = print, **extra) -> dict:
    """Run the renormalization diagnostics; see xml/qa_renormplots.xml."""
    t0 = time.perf_counter()
    mslist = inputs.ms_list(vis)
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
        try:
            rr = engine.run(vis_i, opt, log=log)
            ct = inputs.caltable_name(vis_i, caltable, len(mslist)) if apply else ""
            ms = _ms_result(rr, outdir, opt, ct, log)
        except engine.RenormInputError:
            raise
        except Exception as exc:  # one bad MS must not hide the others
            log(f"{vis_i}: {exc}")
            ms = {"vis": vis_i, "status": "failed", "error": f"{vis_i}: {exc}", "targets": {},
                  "plots": []}
        result["ms"].append(ms)
        result["plots"] += ms.get("plots", [])
        for t, spws in ms.get("targets", {}).items():
            for s, d in spws.items():
                if d.get("error"):
                    result["warnings"].append(d["error"])
    result["exceeds"] = any(d["exceeds"] for ms in result["ms"]
                            for spws in ms.get("targets", {}).values() for d in spws.values())
    result["html"] = write_page(result, outdir)
    result["seconds"] = time.perf_counter() - t0
    result["status"] = "ok" if all(m["status"] == "ok" for m in result["ms"]) else "failed"
    from ..report.jsonio import write_json
    jpath = os.path.join(outdir, "renorm_results.json")
    result["json"] = jpath
    write_json(jpath, result)
    return result
