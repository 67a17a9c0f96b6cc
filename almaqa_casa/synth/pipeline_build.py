"""The pipeline-calibrated part of a build: per EB import, flags, solves,
calapply list and split; per session a caltables tarball; the era's auxiliary
files, scripts and manifest; the ImagingPrep post script, run as
scriptForPI.py runs it so the truth knows what ``calibrated.ms`` holds."""
from __future__ import annotations

import os
import shutil

from . import asdm, calibrate, measure
from . import pipeline_products as pp
from . import shape as SH
from . import spec as S
from ._casa import casatasks
from .archive import write_tgz


def caltables_dir(work: str, session: str) -> str:
    """Where the solved tables of one session's EBs are collected."""
    return os.path.join(work, "caltables", session)


def pipeline_eb(spec: S.SynthSpec, k: int, uid: str, raw: str, work: str, dirs: dict, info: dict,
                eb_truth: dict) -> str:
    """Import, flag, solve, export the pipeline's per-EB products; apply and
    split for imaging.  Returns the calibrated split MS."""
    return finish_eb(spec, uid, work, dirs, eb_truth, prepare_eb(spec, k, uid, raw, work, dirs, info, eb_truth))


def prepare_eb(spec: S.SynthSpec, k: int, uid: str, raw: str, work: str, dirs: dict, info: dict,
               eb_truth: dict) -> dict:
    """Import, flag, export the flag versions, solve the EB's own tables.
    Returns ``{'vis', 'tables', 'session'}`` for :func:`finish_eb`."""
    vis = os.path.join(work, f"{uid}.ms")
    asdm.import_asdm(raw, vis, lazy=True)
    eb_truth["import_check"] = asdm.check_import(vis, spec, info)
    calibrate.apply_flags(vis, info)
    fv = os.path.join(dirs["calibration"], f"{uid}.ms.flagversions.tgz")
    calibrate.flagversions_tgz(vis, fv, uid)
    session = SH.eb_sessions(spec)[k]
    ctdir = caltables_dir(work, session)
    os.makedirs(ctdir, exist_ok=True)
    return {"vis": vis, "tables": calibrate.solve(vis, ctdir, uid, spec), "session": session}


def session_polcal(spec: S.SynthSpec, work: str, prepared: dict[str, dict], truth: dict) -> None:
    """hifa_polcal per session (after every EB's own solves): its tables join
    each EB's ``tables`` (:mod:`.polarization`)."""
    from . import polarization as P
    by_session: dict[str, list[str]] = {}
    for uid, p in prepared.items():
        by_session.setdefault(p["session"], []).append(uid)
    for session, uids in by_session.items():
        for uid in uids:   # hifa_polcal: the total-intensity tables on the polarization calibrator
            p = prepared[uid]
            entries = [e for e in calibrate.calapply_entries(uid, spec, p["tables"], p["vis"])
                       if e["intent"] == "POLARIZATION"]
            calibrate.apply(p["vis"], entries, parang=False)
        sess = P.session_ms([prepared[u]["vis"] for u in uids], work, session)
        tables, found = P.solve_session(sess, caltables_dir(work, session), session)
        ants = truth["eb"][uids[0]]["antennas"]
        solved = P.read_leakage(tables["dterms"])
        found["leakage_solved"] = {str(spw): {ants[a]: {"dX": [float(v[0].real), float(v[0].imag)],
                                                         "dY": [float(v[1].real), float(v[1].imag)]}
                                               for a, v in per.items()} for spw, per in solved.items()}
        found["leakage_vs_injected"] = P.compare_leakage(solved, spec)
        truth["polarization_truth"].setdefault("polcal_solutions", {})[session] = found
        for uid in uids:
            prepared[uid]["tables"].update(tables)


def finish_eb(spec: S.SynthSpec, uid: str, work: str, dirs: dict, eb_truth: dict, prepared: dict) -> str:
    """Write calapply.txt, apply it (``parang=True`` with hifa_polcal tables),
    record the truth, split for imaging.  Returns the calibrated split MS."""
    vis, tables, session = prepared["vis"], prepared["tables"], prepared["session"]
    plw = calibrate.PIPELINE_WORKDIR.format(mous=spec.mous)
    pl_tables = {n: plw + os.path.basename(p) for n, p in tables.items()}
    text = calibrate.format_calapply(f"{uid}.ms", calibrate.calapply_entries(
        uid, spec, pl_tables, plw + f"{uid}.ms"))
    with open(os.path.join(dirs["calibration"], f"{uid}.ms.calapply.txt"), "w") as fh:
        fh.write(text)
    entries = calibrate.calapply_entries(uid, spec, tables, vis)
    calibrate.apply(vis, entries, parang=spec.polarization)
    eb_truth["caltables"] = sorted(os.path.basename(p) for p in tables.values())
    eb_truth["session"] = session
    eb_truth["caltables_tarball"] = SH.session_tarballs(spec)[session]
    eb_truth["calibrated_target_ratio_per_spw"] = measure.target_ratio(vis, spec, "CORRECTED_DATA")
    eb_truth["field_ids"] = measure.field_ids(vis)
    split = os.path.join(work, f"{uid}.ms.split.cal")
    casatasks.split(vis=vis, outputvis=split, datacolumn="corrected", keepflags=True)
    if not os.path.isdir(split):
        raise RuntimeError(f"split did not create {split}")
    return split


def _write(folder: str, name: str, text: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def pipeline_common(spec: S.SynthSpec, work: str, dirs: dict, truth: dict, aux_extra=()) -> None:
    """Caltables tarballs per session, auxiliary files, scripts, manifest.
    ``aux_extra``: more (path, arcname) members of auxproducts.tgz (hif_selfcal's
    restore resources)."""
    n = pp.names(spec)
    cal = dirs["calibration"]
    for session, tarball in SH.session_tarballs(spec).items():
        ctdir = caltables_dir(work, session)
        members = [(os.path.join(ctdir, t), t) for t in sorted(os.listdir(ctdir))]
        write_tgz(os.path.join(cal, tarball), members)
    field_ids = {eb: truth["eb"][eb]["field_ids"] for eb in spec.eb_uids}
    ants = truth["eb"][spec.eb_uids[0]]["antennas"]
    aux = {"flux.csv": pp.flux_csv(spec, field_ids), "antennapos.csv": pp.antennapos_csv(spec, ants),
           n["cont_dat"]: pp.cont_dat(spec)}
    if SH.aux_loose(spec):  # Cycle 1-4: loose in calibration/, flag templates per EB
        for fname, text in aux.items():
            _write(cal, fname, text)
        for eb in spec.eb_uids:
            flag, targets = pp.flagtemplates(eb, {"bad": truth["eb"][eb]["bad_data"]})
            fn, tn = SH.flagtemplate_names(eb)
            _write(cal, fn, flag)
            _write(cal, tn, targets)
    else:
        auxd = os.path.join(work, "aux")
        os.makedirs(auxd)
        for fname, text in aux.items():
            _write(auxd, fname, text)
        write_tgz(os.path.join(cal, n["auxproducts"]),
                  [(os.path.join(auxd, f), f) for f in sorted(aux)] + list(aux_extra))
    applies_renorm = SH.has_manifest(spec) and spec.cycle >= 10 and truth["renorm"]["exceeds_threshold"]
    renorm_ebs = list(spec.eb_uids) if applies_renorm else []
    texts = {n["ppr"]: pp.ppr_xml(spec), n["restore"]: pp.restore_script(spec),
             n["pipescript"]: pp.pipescript(spec), n["scriptforpi"]: pp.scriptforpi_standin(spec)}
    if SH.has_manifest(spec):
        texts[n["manifest"]] = pp.manifest_xml(spec, renorm_ebs)
    if spec.cycle == 4:
        texts[n["imaging"]] = pp.imaging_script_placeholder(spec)
    for fname, text in texts.items():
        _write(dirs["script"], fname, text)
    truth["renorm"]["manifest_hifa_renorm"] = {eb: dict(pp.RENORM_INPUTS, vis=eb + ".ms") for eb in renorm_ebs}
    truth["renorm"]["restore_applies"] = bool(renorm_ebs)
    truth["cont_ranges"] = {k: [{"lo_ghz": lo, "hi_ghz": hi, "chan_lo": a, "chan_hi": b, "frame": "TOPO"}
                                for lo, hi, a, b in v] for k, v in pp.cont_ranges(spec).items()}
    truth["pipeline_files"] = dict(n, caltables_by_session=SH.session_tarballs(spec),
                                   manifest=n["manifest"] if SH.has_manifest(spec) else None)


def imaging_prep(spec: S.SynthSpec, work: str, dirs: dict, truth: dict, split_cals: list[str]) -> str:
    """Write ``scriptForImagingPrep.py`` and run it as scriptForPI.py does
    (in ``calibrated/``, after the restore).  Returns ``calibrated.ms``."""
    name = SH.file_names(spec)["scriptForImagingPrep"]
    text = pp.imaging_prep_script(spec)
    _write(dirs["script"], name, text)
    cal = os.path.join(work, "calibrated")
    os.makedirs(cal, exist_ok=True)
    for s in split_cals:
        shutil.move(s, os.path.join(cal, os.path.basename(s)))
    old = os.getcwd()
    os.chdir(cal)
    try:  # the generator runs its own text, with the CASA tasks it names
        exec(compile(text, name, "exec"), {"__name__": "__main__", "concat": casatasks.concat,
                                          "listobs": casatasks.listobs})
    finally:
        os.chdir(old)
    cms = os.path.join(cal, "calibrated.ms")
    if not os.path.isdir(cms):
        raise RuntimeError(f"{name} did not create calibrated.ms")
    truth["imaging_prep"] = {
        "script": name, "runs_in": "calibrated", "after": "the restore, as scriptForPI.py runs it",
        "inputs": [f"{eb}.ms.split.cal" for eb in spec.eb_uids], "output": "calibrated.ms",
        "listobs": "calibrated.ms.listobs", "calibrated_ms": measure.describe_ms(cms, spec),
    }
    return cms
