"""Build a synthetic pipeline-calibrated total power delivery (``generate(total_power=True)``).

Per EB, as the ALMA pipeline's ``hsd_calimage`` recipe does it: the ASDM
(:mod:`.tp_sim`) imported with ``ocorr_mode='ao'`` and hsd_restoredata's
``asis`` list; the bad integrations flagged and saved as ``Pipeline_Final``;
the Tsys table (``gencal caltype='tsys'``, h_tsyscal), the sky table
(``sdcal calmode='ps'``, hsd_skycal), the Kelvin-to-Jansky table
(``gencal caltype='jyperk'`` from ``jyperk.csv``, hsd_k2jycal), applied to
the ON_SOURCE data (autocorrelations, ``calflagstrict``) as the exported
``<uid>.ms.calapply.txt`` says.  Per session a caltables tarball with its
EBs' tables and, as hsd_exportdata writes them, an ``auxcaltables.tgz`` with
the baseline tables (hsd_baseline: ``sdbaseline`` fitted outside the lines)
and per EB ``<uid>.ms.auxcalapply.txt`` (the ``sdbaseline(blmode='apply')``
line); ``auxproducts.tgz`` with ``jyperk.csv``, the PPR, restore
script (``hsd_restoredata(..., ocorr_mode='ao')``), pipescript, manifest and
``casa_commands.log``; the cubes (``tsdimaging`` of every EB's calibrated
ON data, Jy/beam) as ``<mous>.<target>_sci.spw<k>.cube.I.sd.fits``.

``truth['total_power']``: the Jy/K factors per EB, antenna, window and
polarization, ``peak_jy`` (the peak of the target spectrum a correct restore
shows: the mean over unflagged ON_SOURCE integrations and antennas; the
noise-free value), the line-free channels, the expected noise, the flagged
bad data, the tables and their types.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil

import numpy as np

from ..delivery.member import ASIS_TP
from . import calibrate, calplan, tp_sim, tree
from . import pipeline_products as pp
from . import shape as SH
from . import spec as S
from . import tp_spec as T
from . import truth as TR
from ._casa import casatasks, casatools
from .archive import write_tgz

#: The CASA tables a TP restore applies, and their VisCal types.
TABLE_TYPES = {"sky": "SDSKY_PS", "tsys": "B TSYS", "k2jy": "G Jones"}
#: hsd_atmcor's defaults as the casa_commands.log records them (atmtype 1: tropical).
ATMCOR = {"atmtype": 1, "dtem_dh": -5.6, "h0": 2.0}


@contextlib.contextmanager
def _cwd(path: str):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _log(msg: str) -> None:
    try:
        casatools.logsink().post(msg, "INFO", "almaqa.synth")
    except Exception:  # pragma: no cover
        pass


def _write(folder: str, name: str, text: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def _on_states(vis: str) -> list[int]:
    tb = casatools.table()
    tb.open(os.path.join(vis, "STATE"))
    try:
        modes = list(tb.getcol("OBS_MODE"))
    finally:
        tb.close()
    return [i for i, m in enumerate(modes) if "OBSERVE_TARGET" in m and "ON_SOURCE" in m]


def bad_subscan(info: dict) -> dict:
    """The corrupted ON subscan of the bad antenna (:data:`.tp_spec.BAD`): what
    the pipeline's hsd_flagdata finds and a manual script flags (pure)."""
    ons = [s for s in info["subscans"] if s["intent"] == "ON_SOURCE"]
    sub = ons[T.BAD["on_subscan"] - 1]
    return {"antenna": T.BAD["antenna"], "subscan": sub["subscan"], "start": sub["start"], "end": sub["end"],
            "corruption_factor": T.BAD["factor"],
            "reason": "hsd_flagdata: the antenna's power jumped by 30 % in this ON subscan"}


def _bad_query(bad: dict) -> str:
    return f"ANTENNA1=={T.ANTENNAS.index(bad['antenna'])} && TIME > {bad['start']} && TIME < {bad['end']}"


def flag_bad(vis: str, info: dict) -> dict:
    """Flag the corrupted ON subscan of the bad antenna (the pipeline's
    hsd_flagdata finding); returns what was flagged."""
    bad = bad_subscan(info)
    tb = casatools.table()
    tb.open(vis, nomodify=False)
    try:
        q = tb.query(_bad_query(bad))
        try:
            fl = q.getcol("FLAG")
            fl[:] = True
            q.putcol("FLAG", fl)
            n = q.nrows()
        finally:
            q.close()
    finally:
        tb.close()
    return dict(bad, rows=int(n))


def flagged_bad(vis: str, info: dict) -> dict:
    """What :func:`flag_bad` would flag, counted where someone else flagged it
    (a manual script): the rows of the bad subscan and antenna, all flagged."""
    bad = bad_subscan(info)
    tb = casatools.table()
    tb.open(vis)
    try:
        q = tb.query(_bad_query(bad))
        try:
            n, done = q.nrows(), bool(q.getcol("FLAG").all()) if q.nrows() else False
        finally:
            q.close()
    finally:
        tb.close()
    if not done:
        raise RuntimeError(f"{vis}: the bad data of {bad['antenna']} (subscan {bad['subscan']}) are not flagged")
    return dict(bad, rows=int(n))


def make_tables(vis: str, outdir: str, uid: str, jyperk_csv: str, field_id: int) -> dict[str, str]:
    """The pipeline's Tsys, sky and Jy/K tables of one EB (paths)."""
    names = T.caltable_names(uid)
    paths = {k: os.path.join(outdir, names[k]) for k in ("tsys", "sky", "k2jy")}
    for p in paths.values():
        shutil.rmtree(p, ignore_errors=True)
    casatasks.gencal(vis=vis, caltable=paths["tsys"], caltype="tsys")
    casatasks.sdcal(infile=vis, calmode="ps", outfile=paths["sky"], field=str(field_id), spw=T.spw_list(),
                    intent="OBSERVE_TARGET#OFF_SOURCE")
    casatasks.gencal(vis=vis, caltable=paths["k2jy"], caltype="jyperk", infile=jyperk_csv)
    for k, p in paths.items():
        if not os.path.isdir(p):
            raise RuntimeError(f"{k} table not written: {p}")
    return paths


def apply(vis: str, entry: dict) -> None:
    """hsd_applycal: TARGET (ON_SOURCE) autocorrelations, calflagstrict."""
    casatasks.applycal(vis=vis, field=entry["field"], intent="OBSERVE_TARGET#ON_SOURCE", spw=entry["spw"],
                       antenna="*&&&", gaintable=entry["gaintable"], gainfield=entry["gainfield"],
                       spwmap=entry["spwmap"], interp=entry["interp"], calwt=entry["calwt"],
                       applymode="calflagstrict", flagbackup=False)


def atmcor(vis: str, uid: str, work: str, k2jy: str) -> str:
    """hsd_atmcor: sdatmcor of the calibrated ON data (ATMCOR model, Jy/K table
    as gain factor) -> ``<uid>.ms.atmcor.atmtype<N>``."""
    out = os.path.join(work, T.caltable_names(uid)["atmcor"])
    shutil.rmtree(out, ignore_errors=True)
    casatasks.sdatmcor(infile=vis, datacolumn="corrected", outfile=out, overwrite=True,
                       intent="OBSERVE_TARGET#ON_SOURCE", outputspw=T.spw_list(), gainfactor=k2jy,
                       atmtype=ATMCOR["atmtype"], dtem_dh=f"{ATMCOR['dtem_dh']}K/km", h0=f"{ATMCOR['h0']}km")
    if not os.path.isdir(out):
        raise RuntimeError(f"sdatmcor wrote no {out}")
    return out


def fit_baselines(vis: str, uid: str, outdir: str, work: str) -> tuple[str, str]:
    """hsd_baseline on the atmcor output: a first-order polynomial per
    spectrum fitted outside the lines (the line-free channels are the
    "detected" mask), saved as the pipeline's baseline table; returns
    (table, baseline-subtracted MS ``<input>_bl``)."""
    table = os.path.join(outdir, T.caltable_names(uid)["baseline"])
    out = vis.rstrip("/") + "_bl"
    for p in (table, out):
        shutil.rmtree(p, ignore_errors=True)
    spw = ",".join(f"{s}:" + ";".join(f"{a}~{b}" for a, b in T.channel_ranges(T.line_free_channels(s)))
                   for s in range(len(T.SPWS)))
    casatasks.sdbaseline(infile=vis, datacolumn="data", spw=spw, intent="OBSERVE_TARGET#ON_SOURCE",
                         blmode="fit", maskmode="list", blfunc="poly", order=1, dosubtract=True,
                         blformat="table", bloutput=table, outfile=out, overwrite=True)
    if not (os.path.isdir(table) and os.path.isdir(out)):
        raise RuntimeError(f"sdbaseline wrote no {table} / {out}")
    return table, out


def auxcalapply(uid: str, table: str) -> str:
    """``<uid>.ms.auxcalapply.txt`` as hsd_exportdata writes it (one sdbaseline apply line)."""
    return (f"# Apply file for {uid}.ms\n"
            f"sdbaseline(infile='{uid}.ms', datacolumn='corrected', spw='{T.spw_list()}', blmode='apply', "
            f"bltable='{os.path.basename(table)}', blfunc='poly', outfile='{uid}.ms_bl', overwrite=True)\n")


def measured_spectra(vis: str, column: str = "CORRECTED_DATA") -> dict[int, np.ndarray]:
    """Mean over unflagged ON_SOURCE integrations, antennas and polarizations, per window."""
    on = _on_states(vis)
    tb = casatools.table()
    tb.open(vis)
    out = {}
    try:
        for s in range(len(T.SPWS)):
            q = tb.query(f"DATA_DESC_ID=={s} && STATE_ID IN {on}")
            try:
                d = q.getcol(column).real
                f = q.getcol("FLAG")
            finally:
                q.close()
            out[s] = np.ma.masked_array(d, f).mean(axis=(0, 2)).filled(np.nan)
    finally:
        tb.close()
    return out


def simulate_eb(spec: S.SynthSpec, k: int, uid: str, work: str, dirs: dict) -> tuple[str, dict, dict, dict]:
    """Simulate EB ``k`` and deliver it as ``raw/<uid>.asdm.sdm``: (ASDM path,
    structure info, instrument parameters, SysCal truth)."""
    _log(f"synth: total power EB {k + 1}/{spec.nebs} {uid}")
    sim = os.path.join(work, f"sim{k}.ms")
    info = tp_sim.simulate_structure(spec, k, sim)
    params = tp_sim.fill_data(spec, k, sim, info)
    raw = os.path.join(dirs["raw"], f"{uid}.asdm.sdm")
    syscal = tp_sim.export(sim, raw, uid, info, spec, params)
    shutil.rmtree(sim)
    return raw, info, params, syscal


#: importasdm's arguments for a TP ASDM (hsd_importdata's; a manual script's too).
IMPORT_ARGS = {"ocorr_mode": "ao", "asis": ASIS_TP, "lazy": False, "bdfflags": True,
               "process_caldevice": False, "with_pointing_correction": True}


def import_eb(raw: str, vis: str) -> None:
    """hsd_importdata's importasdm (``ocorr_mode='ao'``: FLOAT_DATA)."""
    casatasks.importasdm(asdm=raw, vis=vis, savecmds=False, overwrite=True, **IMPORT_ARGS)
    if not os.path.isdir(vis):
        raise RuntimeError(f"importasdm(ocorr_mode='ao') did not read {raw}")


def eb_meta(vis: str) -> dict:
    """Intents, target field id and row count of an imported EB (truth)."""
    md = casatools.msmetadata()
    md.open(vis)
    try:
        return {"intents": sorted(md.intents()), "field_id": int(md.fieldsforname(T.TARGET.name)[0]),
                "rows": int(md.nrows())}
    finally:
        md.close()


def tp_eb(spec: S.SynthSpec, k: int, uid: str, work: str, dirs: dict, jyperk_csv: str, truth: dict) -> str:
    """Simulate, deliver and calibrate one EB, correct the atmosphere and
    subtract its baselines (the delivered baseline table); returns the
    baseline-subtracted MS (what the pipeline images)."""
    raw, info, params, syscal = simulate_eb(spec, k, uid, work, dirs)
    vis = os.path.join(work, f"{uid}.ms")
    import_eb(raw, vis)
    meta = eb_meta(vis)
    flagged = flag_bad(vis, info)
    calibrate.flagversions_tgz(vis, os.path.join(dirs["calibration"], f"{uid}.ms.flagversions.tgz"), uid)
    session = SH.eb_sessions(spec)[k]
    ctdir = os.path.join(work, "caltables", session)
    os.makedirs(ctdir, exist_ok=True)
    field_id = meta["field_id"]
    tables = make_tables(vis, ctdir, uid, jyperk_csv, field_id)
    plw = calplan.PIPELINE_WORKDIR.format(mous=spec.mous)
    pl_entry = T.calapply_entry(uid, plw + f"{uid}.ms", {n: plw + os.path.basename(p) for n, p in tables.items()},
                                field_id)
    _write(dirs["calibration"], f"{uid}.ms.calapply.txt", calplan.format_calapply(f"{uid}.ms", [pl_entry]))
    apply(vis, T.calapply_entry(uid, vis, tables, field_id))
    auxdir = os.path.join(work, "auxcaltables", session)
    os.makedirs(auxdir, exist_ok=True)
    atm = atmcor(vis, uid, work, tables["k2jy"])
    bltable, bl_ms = fit_baselines(atm, uid, auxdir, work)
    _write(dirs["calibration"], f"{uid}.ms.auxcalapply.txt", auxcalapply(uid, bltable))
    spectra = measured_spectra(vis)
    bl_spectra = measured_spectra(bl_ms, "DATA")
    truth["eb"][uid] = {
        "asdm": raw, "session": session, "caltables_tarball": SH.session_tarballs(spec)[session],
        "caltables": {n: os.path.basename(p) for n, p in tables.items()},
        "baseline_table": os.path.basename(bltable),
        "auxcaltables_tarball": f"{spec.mous}.{session}.auxcaltables.tgz",
        "subscans": info["subscans"], "antennas": info["antennas"], "pads": info["pads"],
        "syscal": syscal, **meta, "flagged": flagged,
        "generator_peak_jy_per_spw": {str(s): float(np.nanmax(v)) for s, v in spectra.items()},
        "method_a": {"atmcor": os.path.basename(atm), "baselined": os.path.basename(bl_ms),
                     "peak_jy_per_spw": {str(s): float(np.nanmax(v)) for s, v in bl_spectra.items()},
                     "line_free_mean_jy_per_spw": {str(s): float(np.nanmean(v[T.line_free_channels(s)]))
                                                   for s, v in bl_spectra.items()}},
        "instrument": {"tsys0_k": params["tsys0_k"], "gain0": params["gain0"]},
    }
    return bl_ms


def _jyperk_truth(spec: S.SynthSpec) -> dict:
    return {eb: {ant: {str(s): {c: T.jyperk(e, a, s, c) for c in T.CORRS} for s in range(len(T.SPWS))}
                 for a, ant in enumerate(T.ANTENNAS)} for e, eb in enumerate(spec.eb_uids)}


def _noise_jy(spec: S.SynthSpec, truth: dict) -> dict[str, float]:
    """Expected noise of one calibrated ON integration and channel (Jy): the
    radiometer noise of ON and of the averaged OFF subscans, times Tsys x Jy/K."""
    n_off = min(n for i, n in T.SUBSCANS if i == "OFF_SOURCE")
    out = {}
    for s in range(len(T.SPWS)):
        ts = np.mean([np.mean(truth["eb"][eb]["instrument"]["tsys0_k"]) for eb in spec.eb_uids])
        jk = np.mean([T.jyperk(e, a, s, c) for e in range(spec.nebs) for a in range(len(T.ANTENNAS))
                      for c in T.CORRS])
        out[str(s)] = float(ts * np.mean(T.tsys_shape(s)) * jk * T.radiometer_sigma(s)
                            * np.sqrt(1.0 + 1.0 / n_off))
    return out


def commands_log(spec: S.SynthSpec) -> str:
    """``casa_commands.log`` of the TP pipeline run (the calls that matter to a restore)."""
    lines = ["# casa_commands.log (synthetic): total power calibration as almaqa_casa.synth ran it"]
    for k, eb in enumerate(spec.eb_uids):
        n = T.caltable_names(eb)
        lines += [
            f"importasdm(asdm='../rawdata/{eb}', vis='{eb}.ms', ocorr_mode='ao', asis='{ASIS_TP}', "
            "lazy=False, bdfflags=True, process_caldevice=False)",
            f"gencal(vis='{eb}.ms', caltable='{n['tsys']}', caltype='tsys')",
            f"sdcal(infile='{eb}.ms', calmode='ps', outfile='{n['sky']}', field='0', spw='{T.spw_list()}')",
            f"gencal(vis='{eb}.ms', caltable='{n['k2jy']}', caltype='jyperk', infile='jyperk.csv', "
            "endpoint='asdm')",
            f"applycal(vis='{eb}.ms', field='{T.TARGET.name}', intent='OBSERVE_TARGET#ON_SOURCE', "
            f"spw='{T.spw_list()}', antenna='*&&&', gaintable=['{n['sky']}', '{n['tsys']}', '{n['k2jy']}'], "
            "applymode='calflagstrict')",
            f"sdatmcor(infile='{eb}.ms', datacolumn='corrected', outfile='{eb}.ms.atmcor.atmtype{ATMCOR['atmtype']}', "
            f"overwrite=True, spw='', outputspw='{T.spw_list()}', gainfactor='{n['k2jy']}', "
            f"dtem_dh='{ATMCOR['dtem_dh']}K/km', h0='{ATMCOR['h0']}km', atmtype={ATMCOR['atmtype']}, "
            "intent='OBSERVE_TARGET#ON_SOURCE')",
        ]
    return "\n".join(lines) + "\n"


def tp_common(spec: S.SynthSpec, work: str, dirs: dict, truth: dict, jyperk_text: str) -> None:
    """Per-session caltables tarballs, auxproducts.tgz (jyperk.csv), scripts, manifest."""
    n = pp.names(spec)
    cal = dirs["calibration"]
    for session, tarball in SH.session_tarballs(spec).items():
        ctdir = os.path.join(work, "caltables", session)
        write_tgz(os.path.join(cal, tarball), [(os.path.join(ctdir, t), t) for t in sorted(os.listdir(ctdir))])
        auxdir = os.path.join(work, "auxcaltables", session)
        write_tgz(os.path.join(cal, f"{spec.mous}.{session}.auxcaltables.tgz"),
                  [(os.path.join(auxdir, t), t) for t in sorted(os.listdir(auxdir))])
    auxd = os.path.join(work, "aux")
    os.makedirs(auxd, exist_ok=True)
    _write(auxd, "jyperk.csv", jyperk_text)
    write_tgz(os.path.join(cal, n["auxproducts"]), [(os.path.join(auxd, "jyperk.csv"), "jyperk.csv")])
    texts = {n["ppr"]: pp.ppr_xml(spec), n["restore"]: pp.restore_script(spec),
             n["pipescript"]: pp.pipescript(spec), n["scriptforpi"]: pp.scriptforpi_standin(spec)}
    if SH.has_manifest(spec):
        texts[n["manifest"]] = pp.manifest_xml(spec, [])
    for fname, text in texts.items():
        _write(dirs["script"], fname, text)
    truth["pipeline_files"] = dict(n, caltables_by_session=SH.session_tarballs(spec),
                                   manifest=n["manifest"] if SH.has_manifest(spec) else None,
                                   jyperk=f"{n['auxproducts']}::jyperk.csv")


def imaging_args(s: int, infiles: list[str], outfile: str) -> dict:
    """tsdimaging's arguments for the cube of window ``s`` (hsd_imaging's: SF
    kernel, 9 arcsec cells, the target's ON data, Jy/beam)."""
    return dict(infiles=list(infiles), outfile=outfile, overwrite=True, field=T.TARGET.name, spw=str(s),
                intent="OBSERVE_TARGET#ON_SOURCE", mode="channel", nchan=-1, start=0, width=1, outframe="",
                imsize=[15, 15], cell="9arcsec", phasecenter=f"J2000 {T.TARGET.ra} {T.TARGET.dec}",
                stokes="I", gridfunction="SF", convsupport=6, brightnessunit="Jy/beam")


def sd_beam_arcsec(s: int) -> float:
    """A single ON position has no raster sampling for tsdimaging to derive
    the beam from; it is set as the pipeline's SD beam heuristic states it
    for a 12-m dish (1.13 lambda / D), convolved with the gridding kernel's width."""
    lam = 299792458.0 / T.SPWS[s].center_hz
    return float(np.hypot(1.13 * lam / T.DISH_M * 206264.806, 9.0 * 6 / 2.0))


#: exportfits' arguments of the delivered cubes.
EXPORT_ARGS = {"overwrite": True, "velocity": False, "optical": False, "bitpix": -32, "dropstokes": False,
               "stokeslast": True}


def image_truth(img: str, s: int, what: str) -> dict:
    """The truth of one cube (peak, unit, beam, shape) read from its CASA image."""
    ia = casatools.image()
    ia.open(img)
    try:
        data = ia.getchunk(dropdeg=True)
        data = np.where(ia.getchunk(getmask=True, dropdeg=True), data, np.nan)   # NaN in the FITS
        unit = ia.brightnessunit()
        beam = ia.restoringbeam()["major"]["value"]
    finally:
        ia.close()
    c = data[data.shape[0] // 2, data.shape[1] // 2]
    return {"spw": s, "peak_jy_per_beam": float(np.nanmax(data)), "bunit": unit,
            "beam_arcsec": float(beam), "shape": list(data.shape),
            "centre_peak_jy_per_beam": float(np.nanmax(c)),
            "note": f"tsdimaging (SF kernel, 9 arcsec cells) of {what} of every EB"}


def tp_products(spec: S.SynthSpec, mss: list[str], work: str, productdir: str) -> dict:
    """One cube per window from every EB's baseline-subtracted ON data
    (tsdimaging, Jy/beam), as hsd_imaging makes them (beam: :func:`sd_beam_arcsec`)."""
    out = {}
    for s in range(len(T.SPWS)):
        base = os.path.join(work, f"tp_spw{s}")
        img = base + ".image"
        for p in (img, base + ".weight"):
            shutil.rmtree(p, ignore_errors=True)
        casatasks.tsdimaging(**imaging_args(s, mss, base))
        if not os.path.isdir(img):
            raise RuntimeError(f"tsdimaging wrote no {img}")
        beam = sd_beam_arcsec(s)
        ia = casatools.image()
        ia.open(img)
        try:
            ia.setrestoringbeam(major=f"{beam}arcsec", minor=f"{beam}arcsec", pa="0deg")
            ia.setbrightnessunit("Jy/beam")
        finally:
            ia.close()
        name = T.product_name(spec.mous, s)
        casatasks.exportfits(imagename=img, fitsimage=os.path.join(productdir, name), **EXPORT_ARGS)
        out[name] = image_truth(img, s, "the baseline-subtracted ON data")
    return out


def truth_head(spec: S.SynthSpec, outdir: str, final_member: str, final_truth: str) -> dict:
    """The truth keys every TP delivery has before its EBs are built."""
    return {
        "generator": "almaqa_casa.synth", "spec": dataclasses.asdict(spec), "variant": spec.variant,
        "project": spec.project, "science_goal": spec.ous_uids[0], "group": spec.ous_uids[1],
        "mous": spec.mous, "ebs": list(spec.eb_uids), "calibration": spec.calibration,
        "polarization": False, "selfcal": False, "project_dir": os.path.join(outdir, spec.project),
        "member_dir": final_member, "truth_dir": final_truth, "corrs": list(T.CORRS),
        "shape": SH.describe(spec), "target": T.TARGET.name, "eb": {}, "images": {},
        "spws": [{"id": k, "name": sw.name, "nchan": sw.nchan, "kind": sw.kind, "center_hz": sw.center_hz,
                  "width_hz": sw.width_hz, "chan0_hz": float(sw.freqs[0])} for k, sw in enumerate(T.SPWS)],
    }


def total_power_truth(spec: S.SynthSpec, truth: dict) -> dict:
    """``truth['total_power']``: what a correct restore of any TP delivery
    (pipeline or manual) shows: factors, peak, lines, noise, flagged data."""
    peaks = {str(s): float(np.max(T.source_spectrum(s))) for s in range(len(T.SPWS))}
    return {
        "antennas": list(T.ANTENNAS), "corrs": list(T.CORRS), "ocorr_mode": "ao", "asis": ASIS_TP,
        "observing_mode": "position switch (ON/OFF)", "off_offset_arcmin": T.OFF_OFFSET_ARCMIN,
        "jyperk": _jyperk_truth(spec),
        "peak_jy": max(peaks.values()), "peak_jy_per_spw": peaks,
        "peak_channel_per_spw": {str(s): int(np.argmax(T.source_spectrum(s))) for s in range(len(T.SPWS))},
        "spectrum_jy_per_spw": {str(s): T.source_spectrum(s) for s in range(len(T.SPWS))},
        "peak_definition": ("the maximum over channels of the calibrated (Jy) spectrum of the target, "
                            "averaged over the unflagged OBSERVE_TARGET#ON_SOURCE integrations, the "
                            "antennas and XX/YY, as a correctly restored MS shows it (noise-free value)"),
        "lines": [dataclasses.asdict(ln) for ln in T.LINES],
        "line_free_channels": {str(s): T.channel_ranges(T.line_free_channels(s)) for s in range(len(T.SPWS))},
        "continuum_jy": 0.0,
        "noise_jy_per_sample": _noise_jy(spec, truth),
        "noise_note": "one calibrated ON integration and channel of one antenna and polarization",
        "bad_data": {uid: truth["eb"][uid]["flagged"] for uid in spec.eb_uids},
        "products": sorted(truth["images"]),
    }


def _pipeline_truth(spec: S.SynthSpec, truth: dict) -> dict:
    """The pipeline route's part of ``truth['total_power']``."""
    return {
        "restore_task": "hsd_restoredata", "jyperk_file": truth["pipeline_files"]["jyperk"],
        "table_types": TABLE_TYPES, "atmcor": ATMCOR,
        "baseline": {"tables": {uid: truth["eb"][uid]["baseline_table"] for uid in spec.eb_uids},
                     "auxcalapply": {uid: f"{uid}.ms.auxcalapply.txt" for uid in spec.eb_uids},
                     "fit": ("poly order 1 outside the lines (line_free_channels), ON_SOURCE, per "
                             "spectrum, of the atmcor output (hsd_atmcor then hsd_baseline)"),
                     "input": "<uid>.ms.atmcor.atmtype1", "output": "<uid>.ms.atmcor.atmtype1_bl"},
        "calapply_interp": {"sky": "linear,linear", "tsys": "linear,linear", "k2jy": "nearest,nearest"},
        "scriptforpi": ("scriptForPI.py splits every EB (TP is never pipeline-imaged with "
                        "hif_makeimages): <uid>.ms.split.cal holds the science spws, CORRECTED as DATA"),
    }


def build(spec: S.SynthSpec, tmp: str, outdir: str) -> dict:
    """The whole TP delivery under ``tmp/stage`` (moved into ``outdir`` by
    generate()): pipeline-calibrated, or manually (:mod:`.tp_manual`)."""
    stage, work, member, dirs, truth_stage = tree.staging(tmp, spec)
    final_truth = os.path.join(outdir, "truth")
    to_final = lambda p: p.replace(stage, outdir, 1)  # noqa: E731
    truth = truth_head(spec, outdir, tree.member_path(outdir, spec), final_truth)
    manual = spec.calibration == "manual"
    with _cwd(work):
        if manual:
            from . import tp_manual
            mss = [tp_manual.manual_eb(spec, k, uid, work, dirs, truth) for k, uid in enumerate(spec.eb_uids)]
            truth["images"] = tp_manual.write_common(spec, work, dirs, truth, mss)
        else:
            jyperk_text = T.jyperk_csv(list(spec.eb_uids))
            jyperk_path = _write(work, "jyperk.csv", jyperk_text)
            mss = [tp_eb(spec, k, uid, work, dirs, jyperk_path, truth) for k, uid in enumerate(spec.eb_uids)]
            tp_common(spec, work, dirs, truth, jyperk_text)
            truth["images"] = tp_products(spec, mss, work, dirs["product"])
    for uid in spec.eb_uids:
        truth["eb"][uid]["asdm"] = to_final(truth["eb"][uid]["asdm"])
    truth["total_power"] = total_power_truth(spec, truth)
    truth["total_power"].update(tp_manual.manual_truth(spec) if manual else _pipeline_truth(spec, truth))
    _texts(spec, member, dirs, work)
    tarpaths = tree.archive_tars(spec, stage, os.path.join(stage, "archive")) if spec.tars else []
    truth_path = os.path.join(truth_stage, "truth.json")
    truth["truth_path"] = os.path.join(final_truth, "truth.json")
    truth["tars"] = [to_final(p) for p in tarpaths]
    TR.write_json(truth_path, truth)
    return {"project_dir": os.path.join(outdir, spec.project), "member_dir": truth["member_dir"],
            "truth_path": truth["truth_path"], "truth_dir": final_truth, "truth": json.loads(
                json.dumps(truth, default=TR._jsonable)),
            "spec": spec, "tars": truth["tars"], "variant": spec.variant}


def _texts(spec: S.SynthSpec, member: str, dirs: dict, work: str) -> None:
    manual = spec.calibration == "manual"
    if manual:
        from .manual_scripts import version_pin
        casa_version = version_pin(spec)[0]
    else:
        casa_version = SH.versions(spec)[0]
    names = SH.file_names(spec)
    with open(os.path.join(member, names["readme"]), "w") as fh:
        fh.write(tree.readme(spec, casa_version))
    summary = {"Project": spec.project, "MOUS": spec.mous, "EBs": ", ".join(spec.eb_uids),
               "CASA version": casa_version, "Array": "ACA total power (PM01-PM04)", "QA2": "PASS (synthetic)"}
    tree.qa_files(spec, dirs["qa"], work, summary)
    if not manual:
        with open(os.path.join(dirs[names["cmdlog_dir"]], names["cmdlog"]), "w") as fh:
            fh.write(commands_log(spec))
