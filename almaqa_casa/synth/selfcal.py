"""``selfcal=True``: a phase error on the science target that only
self-calibration removes, hif_selfcal's solutions and restore resources, and
the ``.selfcal.`` products made from the self-calibrated data.

The error (:func:`inject_residual`): per antenna and target scan a phase
offset (the same for both receptors, scaling with frequency as a
tropospheric path does), on the target's visibilities only.  The phase
calibrator never sees it, so the regular calibration leaves it in the
target's data; its truth is the baseline phase RMS over the target rows.

hif_selfcal, as its restore resources record it (:func:`solve`): per EB the
targets MS (``<uid>_targets.ms``, hif_mstransform's TARGET split), a
channel-averaged copy in ``sc_workdir_<field>_alma_band_3/`` with the line
channels of cont.dat flagged, two phase solves like auto_selfcal's
``inf_EB`` (gaintype G, scans combined) and ``inf`` (gaintype T per scan,
``inf_EB`` pre-applied), both applied with ``linearPD`` and ``calwt=False``
to the target (TARGET intent, the target's spws) of the targets MS.  The
JSON (``<context>.selfcal.json``, hif_selfcal's ``_scal_targets_to_json``
layout: ``scal_targets`` with per-target ``field``, ``spw``, ``spw_real``,
``sc_workdir``, ``sc_exception`` and ``sc_lib`` holding ``SC_success``,
``vislist`` and per vis ``gaintable_final``, ``applycal_interpolate_final``,
``spwmap_final``) and the tables travel in ``<mous>.hifa_calimage.auxproducts.tgz``.
The model is a point source at the phase centre (what the target is).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

from . import imaging
from . import spec as S
from ._casa import casatasks, casatools

#: Per antenna and target scan, the injected phase's standard deviation at REF_FREQ_HZ.
RESIDUAL_SIGMA_DEG = 30.0
#: The pipeline context's name (selfcal.json is ``<context>.selfcal.json``).
CONTEXT_NAME = "pipeline-20251101T120000"
#: auto_selfcal's band key and hif_selfcal's sc_workdir band token for Band 3.
BAND, BAND_DIR = "Band_3", "alma_band_3"
#: auto_selfcal's solints of this target, and the ALMA interpolation above 12 GHz.
SOLINTS = ("inf_EB", "inf")
INTERP = "linearPD"


def sc_workdir(spec: S.SynthSpec) -> str:
    return f"sc_workdir_{spec.target.name}_{BAND_DIR}"


def table_names(spec: S.SynthSpec, uid: str) -> list[str]:
    """auto_selfcal's ``<target>_<vis>_<band>_<solint>_<iteration>_p.g`` per solint."""
    vis = f"{uid}_targets.ms"
    return [f"{spec.target.name}_{vis}_{BAND}_{s}_{i}_p.g" for i, s in enumerate(SOLINTS)]


def inject_residual(spec: S.SynthSpec, k: int, vis: str, info: dict) -> dict:
    """Multiply the target's cross-correlations in DATA of ``vis`` by
    ``exp(i (phi_a - phi_b) nu / REF_FREQ)``, ``phi`` per antenna and target scan.
    Returns the truth of EB ``k``: the phases and their baseline RMS."""
    r = spec._rng(f"selfcal-residual-{k}")
    tscans = [s["scan"] for s in info["scans"] if s["field"] == spec.target.name]
    phi = {sc: r.normal(0.0, RESIDUAL_SIGMA_DEG, spec.nant) for sc in tscans}
    tb = casatools.table()
    tb.open(vis + "/FIELD")
    fid = list(tb.getcol("NAME")).index(spec.target.name)
    tb.close()
    bad_ant = info["antennas"].index(info["bad"]["antenna"])
    diffs = []
    tb.open(vis, nomodify=False)
    try:
        for dd, sw in enumerate(S.SPWS):
            q = tb.query(f"DATA_DESC_ID=={dd} && FIELD_ID=={fid}", sortlist="")
            try:
                a1, a2, scan = q.getcol("ANTENNA1"), q.getcol("ANTENNA2"), q.getcol("SCAN_NUMBER")
                data = q.getcol("DATA")
                ph = np.zeros(len(a1))
                for sc, p in phi.items():
                    m = scan == sc
                    ph[m] = p[a1[m]] - p[a2[m]]
                scale = sw.freqs / S.REF_FREQ_HZ
                data *= np.exp(1j * np.deg2rad(ph[None, None, :] * scale[None, :, None]))
                q.putcol("DATA", data.astype("complex64"))
                if dd == 0:
                    kept = (a1 != a2) & ~((scan == info["bad"]["scan"]) & ((a1 == bad_ant) | (a2 == bad_ant)))
                    diffs = ph[kept]
            finally:
                q.close()
    finally:
        tb.close()
    return {"phase_deg_at_ref_freq": {str(sc): [float(x) for x in p] for sc, p in phi.items()},
            "antennas": list(info["antennas"]), "target_scans": tscans,
            "baseline_phase_rms_deg": float(np.sqrt(np.mean(np.square(diffs)))),
            "rows": int(len(diffs))}


def residual_truth(eb_truths: dict) -> dict:
    """``truth['selfcal_truth']`` head: the injected error over every EB."""
    rms = [t["baseline_phase_rms_deg"] for t in eb_truths.values()]
    rows = [t["rows"] for t in eb_truths.values()]
    return {
        "model": ("target visibilities x exp(i (phi_a - phi_b) nu / %g Hz); phi per antenna and "
                  "target scan, N(0, %g deg); same for both receptors; not on any calibrator"
                  % (S.REF_FREQ_HZ, RESIDUAL_SIGMA_DEG)),
        "injected_baseline_phase_rms_deg": float(np.sqrt(np.average(np.square(rms), weights=rows))),
        "measure": ("RMS over the target's unflagged cross-correlation rows of the phase of "
                    "sum(V * model) over channels and parallel hands; the model is the true "
                    "point source at the phase centre (real), so its phase is 0"),
    }


def _flag_lines(vis: str, spec: S.SynthSpec) -> None:
    """The line channels (cont.dat's gap), selected by frequency in the averaged MS."""
    k = S.LINE["spw"]
    lo, hi = S.line_channels(k)
    sw = S.SPWS[k]
    f0, f1 = sw.freqs[lo] - sw.width_hz / 2, sw.freqs[hi] + sw.width_hz / 2
    casatasks.flagdata(vis=vis, mode="manual", spw=f"{k}:{f0 / 1e9:.6f}~{f1 / 1e9:.6f}GHz",
                       flagbackup=False)


def _chanbin(sw: S.SpwDef) -> int:
    """hif_selfcal's averaging to ~15.625 MHz channels above 50 GHz."""
    n = max(round(sw.bandwidth_hz / 15.625e6), 1)
    return max(int(sw.nchan / n), 1)


def solve(spec: S.SynthSpec, split_cals: list[str], work: str) -> dict:
    """hif_selfcal on the regularly calibrated data; returns ``aux_members``
    ((path, arcname) for auxproducts.tgz), ``targets`` (self-calibrated
    targets MSs, CORRECTED written) and ``json`` (the dict written)."""
    root = os.path.join(work, "selfcal")
    scw = os.path.join(root, sc_workdir(spec))
    os.makedirs(scw, exist_ok=True)
    tgt = spec.target.name
    spws = ",".join(str(i) for i in range(len(S.SPWS)))
    lib: dict = {"SC_success": True, "vislist": [], "solints": list(SOLINTS),
                 "final_solint": SOLINTS[-1], "final_phase_solint": SOLINTS[-1]}
    targets, members = [], []
    for split in split_cals:
        uid = os.path.basename(split).split(".ms")[0]
        tms = os.path.join(root, f"{uid}_targets.ms")
        shutil.rmtree(tms, ignore_errors=True)
        casatasks.mstransform(vis=split, outputvis=tms, intent="OBSERVE_TARGET#ON_SOURCE",
                              datacolumn="data", reindex=False, keepflags=True)
        avg = os.path.join(scw, os.path.basename(tms))
        shutil.rmtree(avg, ignore_errors=True)
        casatasks.mstransform(vis=tms, outputvis=avg, field=tgt, spw=spws, chanaverage=True,
                              chanbin=[_chanbin(sw) for sw in S.SPWS], datacolumn="data",
                              reindex=False, keepflags=True)
        _flag_lines(avg, spec)
        names = table_names(spec, uid)
        paths = [os.path.join(scw, n) for n in names]
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)
        casatasks.gaincal(vis=avg, caltable=paths[0], field=tgt, solint="inf", combine="scan",
                          calmode="p", gaintype="G", refant=S.REFANT, minsnr=2.0)
        casatasks.gaincal(vis=avg, caltable=paths[1], field=tgt, solint="inf", combine="",
                          calmode="p", gaintype="T", refant=S.REFANT, minsnr=2.0,
                          gaintable=[paths[0]], interp=[INTERP])
        for p in paths:
            if not os.path.isdir(p):
                raise RuntimeError(f"self-calibration gaincal did not write {p}")
        casatasks.applycal(vis=tms, field=tgt, intent="OBSERVE_TARGET#ON_SOURCE", spw=spws,
                           gaintable=paths, interp=[INTERP] * 2, calwt=[False] * 2,
                           applymode="calflag", flagbackup=False)
        shutil.rmtree(avg, ignore_errors=True)
        vname = os.path.basename(tms)
        lib["vislist"].append(vname)
        lib[vname] = {"gaintable_final": names, "applycal_interpolate_final": [INTERP] * 2,
                      "spwmap_final": [[], []], "applycal_mode_final": "calflag",
                      "inf_EB": {"gaintable": names[:1], "spwmap": [[]],
                                 "applycal_interpolate": [INTERP], "gaincal_combine": "scan"},
                      "inf": {"gaintable": names, "spwmap": [[], []],
                              "applycal_interpolate": [INTERP] * 2, "gaincal_combine": ""}}
        members += [(p, f"{sc_workdir(spec)}/{n}") for p, n in zip(paths, names)]
        targets.append(tms)
    vis = list(lib["vislist"])
    doc = {"scal_targets": [{
        "field": tgt, "field_name": tgt, "sc_field": tgt, "intent": "TARGET", "spw": spws,
        "spw_real": {v: spws for v in vis}, "vis": vis, "sc_vislist": vis,
        "specmode": "cont", "is_repr_target": True, "is_mosaic": False, "is_eph_obj": False,
        "sc_workdir": sc_workdir(spec), "sc_band": BAND, "sc_solints": list(SOLINTS),
        "sc_telescope": "ALMA", "sc_exception": False, "sc_success": True, "sc_lib": lib}],
        "version": 1.0, "datetime": "2025-11-01 12:00:00", "pipeline_version": _pipeline_version(spec)}
    jpath = os.path.join(root, f"{CONTEXT_NAME}.selfcal.json")
    with open(jpath, "w") as fh:
        json.dump(doc, fh, indent=2, separators=(",", ": "))
    return {"aux_members": [(jpath, os.path.basename(jpath))] + members, "targets": targets,
            "json": doc, "json_name": os.path.basename(jpath)}


def _pipeline_version(spec: S.SynthSpec) -> str:
    from .shape import versions
    return versions(spec)[1] or ""


def selfcal_products(spec: S.SynthSpec, vislist: list[str], imgwork: str, productdir: str,
                     truthdir: str, to_final) -> dict:
    """The target's cont and cube products again, from the self-calibrated
    targets MSs (CORRECTED), with ``.selfcal.`` in their names."""
    tgt = spec.target.name
    out = {}
    allspw = list(range(len(S.SPWS)))
    lc = S.line_channels(S.LINE["spw"])
    stokes = "IQUV" if spec.polarization else "I"
    for spws, imtype, excl in ((allspw, "cont", {S.LINE["spw"]: lc}), ([S.LINE["spw"]], "cube", None)):
        base = imaging.product_base(spec, tgt, "sci", spws, imtype, stokes, selfcal=True)
        r = imaging.make_image(vislist, imgwork, productdir, truthdir, base, tgt, spws, imtype, stokes,
                               cont_exclude=excl, niter=600 if imtype == "cube" else 300,
                               threshold="5mJy" if imtype == "cube" else "0mJy")
        out[os.path.basename(r["pbcor"])] = {
            "uncorrected_fits": to_final(r["uncorrected_fits"]), "pb": os.path.basename(r["pb"]),
            "mask": os.path.basename(r["mask"]), "noise_jy_per_beam": r["noise_jy_per_beam"],
            "center_pbcor_jy_per_beam": r["center_pbcor_jy_per_beam"], "field": tgt, "type": "sci",
            "spws": spws, "imtype": imtype, "stokes": stokes, "selfcal": True,
            "made_from": [os.path.basename(v) + " (CORRECTED: self-calibrated)" for v in vislist]}
    return out
