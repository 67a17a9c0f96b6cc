"""Build a synthetic ALMA delivery: :func:`generate`."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time

import numpy as np

from ..errors import AlmaqaError
from . import asdm, calibrate, imaging, simulate, tree
from . import pipeline_products as pp
from . import spec as S
from . import truth as T
from ._casa import casatasks, casatools


class SynthError(AlmaqaError, RuntimeError):
    """The generator could not build the delivery; the message says why."""


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


def _field_ids(vis: str) -> dict[str, int]:
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        return {n: i for i, n in enumerate(msmd.fieldnames())}
    finally:
        msmd.close()


def measure_target(vis: str, spec: S.SynthSpec, column: str = "DATA") -> dict[int, float]:
    """Mean unflagged cross-correlation (parallel hands, real part) of the
    target per spw, divided by the injected mean (incl. the renorm under-scaling)."""
    tb = casatools.table()
    fid = _field_ids(vis)[spec.target.name]
    out = {}
    tb.open(vis)
    try:
        for k, sw in enumerate(S.SPWS):
            q = tb.query(f"DATA_DESC_ID=={k} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}")
            try:
                d = q.getcol(column)
                f = q.getcol("FLAG")
            finally:
                q.close()
            par = [0, -1]
            dm = np.ma.array(d[par], mask=f[par])
            got = dm.mean(axis=(0, 2)).real
            i = S.stokes_spectrum(spec.target, sw.freqs, k)[0]
            if not spec.polarization:
                i = i / S.renorm_scaling(sw.freqs, k)
            out[k] = float(got.mean() / i.mean())
    finally:
        tb.close()
    return out


def generate(outdir: str, calibration: str = "pipeline", polarization: bool = False, nebs: int = 2,
             selfcal: bool = False, seed: int = 12345, tars: bool = False, nant: int = 8,
             casa_version_pin: str = "", keep_work: bool = False) -> dict:
    """Build a synthetic ALMA delivery under ``outdir``.

    Returns a dict with ``project_dir``, ``member_dir``, ``truth_path``,
    ``truth`` (the truth dict, as in truth.json), ``spec`` and ``tars``.
    The delivery is built in a temporary folder inside ``outdir`` and moved
    into place at the end: a failure leaves nothing half-built."""
    spec = S.SynthSpec(calibration=calibration, polarization=bool(polarization), nebs=int(nebs),
                       selfcal=bool(selfcal), seed=int(seed), tars=bool(tars), nant=int(nant),
                       casa_version_pin=casa_version_pin)
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    final_project = os.path.join(outdir, spec.project)
    final_truth = os.path.join(outdir, "truth")
    for p in (final_project, final_truth):
        if os.path.exists(p):
            raise FileExistsError(f"{p} exists already; choose an empty output folder")
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix=".synth-", dir=outdir)
    try:
        result = _build(spec, tmp, outdir)
        for name in (spec.project, "truth"):
            os.replace(os.path.join(tmp, "stage", name), os.path.join(outdir, name))
        if spec.tars:
            os.replace(os.path.join(tmp, "stage", "archive"), os.path.join(outdir, "archive"))
    except Exception as exc:
        if keep_work:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (SynthError, FileExistsError, ValueError)):
            raise
        raise SynthError(f"building the synthetic {spec.variant} delivery failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not keep_work:
        shutil.rmtree(tmp, ignore_errors=True)
    result["truth"]["build_seconds"] = round(time.time() - t_start, 1)
    T.write_json(result["truth_path"], result["truth"])
    # return exactly what truth.json holds (JSON keys are strings), fresh or cached alike
    with open(result["truth_path"]) as fh:
        result["truth"] = json.load(fh)
    _log(f"synthetic delivery {spec.variant} built in {time.time() - t_start:.0f} s: {final_project}")
    return result


def _build(spec: S.SynthSpec, tmp: str, outdir: str) -> dict:
    stage = os.path.join(tmp, "stage")
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    member = tree.member_path(stage, spec)
    dirs = tree.make_dirs(member)
    truth_stage = os.path.join(stage, "truth")
    for d in ("reference", "images", "corruptions"):
        os.makedirs(os.path.join(truth_stage, d))
    final_member = tree.member_path(outdir, spec)
    final_truth = os.path.join(outdir, "truth")
    to_final = lambda p: p.replace(stage, outdir, 1)  # noqa: E731

    truth: dict = {
        "generator": "almaqa_casa.synth", "spec": dataclasses.asdict(spec), "variant": spec.variant,
        "project": spec.project, "science_goal": spec.ous_uids[0], "group": spec.ous_uids[1],
        "mous": spec.mous, "ebs": list(spec.eb_uids), "calibration": spec.calibration,
        "polarization": spec.polarization, "selfcal": spec.selfcal,
        "project_dir": os.path.join(outdir, spec.project), "member_dir": final_member,
        "truth_dir": final_truth, "corrs": spec.corrs, "refant": S.REFANT,
        "spws": [{"id": k, "name": sw.name, "nchan": sw.nchan, "kind": sw.kind,
                  "center_hz": sw.center_hz, "width_hz": sw.width_hz,
                  "chan0_hz": float(sw.freqs[0])} for k, sw in enumerate(S.SPWS)],
        "sources": T.sources_truth(spec),
        "target": spec.target.name,
        "line": dict(S.LINE, channels=list(S.line_channels(S.LINE["spw"]))),
        "noise": {"visibility_sigma_jy": {k: simulate.noise_sigma(k) for k in range(len(S.SPWS))},
                  "note": "per real/imaginary part of one visibility, one integration and channel",
                  "autocorr_relative": S.AUTO_NOISE_REL},
        "polarization_truth": ({"target": {"fraction": spec.target.pol_frac,
                                           "angle_deg": spec.target.pol_angle_deg},
                                "polcal": {"name": S.POLCAL.name, "fraction": S.POLCAL.pol_frac,
                                           "angle_deg": S.POLCAL.pol_angle_deg},
                                "reference_frame": "sky (parallactic angle removed)"}
                               if spec.polarization else None),
        "eb": {}, "images": {},
        "image_noise_method": ("robust rms (1.4826 x MAD) of the uncorrected tclean .image, first Stokes "
                               "plane, all channels, pixels with pb > 0.3 more than 12 pixels from the "
                               "image centre (the source is at the centre)"),
    }
    rs = S.RENORM
    f = S.SPWS[rs["spw"]].freqs
    truth["renorm"] = {"spw": rs["spw"], "field": spec.target.name, "center_hz": rs["center_hz"],
                       "fwhm_hz": rs["fwhm_hz"], "peak": rs["peak"], "freqs_hz": f,
                       "scaling": S.renorm_scaling(f, rs["spw"]), "max_scaling": 1.0 + rs["peak"],
                       "applies_to": "target autocorrelations multiplied, cross-correlations divided",
                       "threshold": 1.02, "exceeds_threshold": 1.0 + rs["peak"] > 1.02,
                       "autocorrelations": not spec.polarization}
    if spec.polarization:  # no autocorrelations in this variant (see simulate.py)
        truth["renorm"].update(exceeds_threshold=False, max_scaling=1.0, peak=0.0,
                               scaling=np.ones(len(f)), applies_to="nothing (no autocorrelations)")

    split_cals: list[str] = []
    timings: dict[str, float] = {}
    truth["timings_s"] = timings
    t_phase = time.time()
    with _cwd(work):
        for k, uid in enumerate(spec.eb_uids):
            _log(f"synth: simulating EB {k + 1}/{spec.nebs} {uid}")
            sim = os.path.join(work, f"sim{k}.ms")
            info = simulate.simulate_structure(spec, k, sim)
            theta = None
            if spec.polarization:
                from .polarization import feed_rotation
                theta = feed_rotation(sim)
            cor = simulate.fill_data(spec, k, sim, info, theta)
            raw = os.path.join(dirs["raw"], f"{uid}.asdm.sdm")
            asdm.export(sim, raw, uid, info, spec)
            shutil.rmtree(sim)
            # the reference: importasdm's rows, the true sky
            ref = os.path.join(truth_stage, "reference", f"{uid}.ms")
            asdm.import_asdm(raw, ref, lazy=False)
            T.write_reference_ms(ref, spec)
            for extra in (ref + ".flagversions",):
                shutil.rmtree(extra, ignore_errors=True)
            npz = os.path.join(truth_stage, "corruptions", f"{uid}.npz")
            arrays = {f"param_{n}": v for n, v in cor["params"].items()}
            for dd, g in cor["gains"].items():
                arrays[f"gain_time_spw{dd}"] = g["time"]
                arrays[f"gain_spw{dd}"] = g["gain"]
                arrays[f"bandpass_spw{dd}"] = simulate.bandpass(cor["params"], dd)
            np.savez_compressed(npz, **arrays)
            eb_truth = {
                "asdm": to_final(raw), "reference_ms": to_final(ref), "corruptions_npz": to_final(npz),
                "scans": info["scans"], "antennas": info["antennas"], "pads": info["pads"],
                "bad_data": info["bad"], "flag_commands": calibrate.flag_commands(info),
                "gain_model": "V_ab = g_a B_a conj(g_b B_b) V_true / renorm + noise; see corruptions_npz",
                "gains": {n: cor["params"][n] for n in ("amp0", "amp_var", "amp_period_s", "phase0_deg",
                                                        "phase_spw_deg", "phase_drift_deg_per_s",
                                                        "phase_wobble_deg", "phase_wobble_period_s")},
                "gains_axes": "amp0/phase0_deg: [antenna][pol X,Y]; phase_spw_deg: [antenna][pol][spw]",
            }
            truth["eb"][uid] = eb_truth
            if spec.calibration == "pipeline":
                split_cals.append(_pipeline_eb(spec, k, uid, raw, work, dirs, info, eb_truth))
            else:
                from . import manual_scripts
                split_cals.append(manual_scripts.run_eb(spec, k, uid, raw, work, dirs, info, eb_truth))

        timings["ebs"] = round(time.time() - t_phase, 1)
        t_phase = time.time()
        if spec.calibration == "pipeline":
            _pipeline_texts(spec, work, dirs, truth)
        else:
            from . import manual_scripts
            manual_scripts.write_common(spec, work, dirs, truth, split_cals)

        timings["common"] = round(time.time() - t_phase, 1)
        t_phase = time.time()
        # products
        _log("synth: imaging")
        imgwork = os.path.join(work, "images")
        os.makedirs(imgwork)
        truth["images"] = _images(spec, split_cals, imgwork, dirs["product"],
                                  os.path.join(truth_stage, "images"), to_final, work)
        if spec.selfcal:
            from .selfcal import selfcal_products
            truth["images"].update(selfcal_products(spec, split_cals, imgwork, dirs["product"],
                                                    os.path.join(truth_stage, "images"), to_final))

    timings["imaging"] = round(time.time() - t_phase, 1)
    # README, qa, log
    casa_version = (pp.CASA_VERSION_PIPELINE if spec.calibration == "pipeline"
                    else ".".join(str(v) for v in casatools.version()[:3]))
    with open(os.path.join(member, f"member.{spec.mous}.README.txt"), "w") as fh:
        fh.write(tree.readme(spec, casa_version))
    summary = {"Project": spec.project, "MOUS": spec.mous, "EBs": ", ".join(spec.eb_uids),
               "CASA version": casa_version, "QA2": "PASS (synthetic)"}
    tree.qa_files(spec, dirs["qa"], work, summary)
    if spec.calibration == "pipeline":
        with open(os.path.join(dirs["log"], pp.names(spec)["cmdlog"]), "w") as fh:
            fh.write(_commands_log(spec))
    tarpaths = []
    if spec.tars:
        tarpaths = tree.archive_tars(spec, stage, os.path.join(stage, "archive"))
    truth_path = os.path.join(truth_stage, "truth.json")
    truth["truth_path"] = os.path.join(final_truth, "truth.json")
    truth["tars"] = [to_final(p) for p in tarpaths]
    T.write_json(truth_path, truth)
    return {"project_dir": os.path.join(outdir, spec.project), "member_dir": final_member,
            "truth_path": os.path.join(final_truth, "truth.json"), "truth_dir": final_truth,
            "truth": truth, "spec": spec, "tars": truth["tars"], "variant": spec.variant}


def _pipeline_eb(spec, k, uid, raw, work, dirs, info, eb_truth) -> str:
    """Import, flag, solve, export the pipeline's per-EB products; apply and
    split for imaging.  Returns the calibrated split MS."""
    vis = os.path.join(work, f"{uid}.ms")
    asdm.import_asdm(raw, vis, lazy=True)
    eb_truth["import_check"] = asdm.check_import(vis, spec, info)
    calibrate.apply_flags(vis, info)
    fv = os.path.join(dirs["calibration"], f"{uid}.ms.flagversions.tgz")
    pp.flagversions_tgz(vis, fv, uid)
    ctdir = os.path.join(work, "caltables")
    os.makedirs(ctdir, exist_ok=True)
    tables = calibrate.solve(vis, ctdir, uid, spec)
    if spec.polarization:
        from .polarization import solve_polcal
        tables["polcal"] = solve_polcal(vis, ctdir, uid, spec, tables)
    plw = calibrate.PIPELINE_WORKDIR.format(mous=spec.mous)
    pl_tables = {n: plw + os.path.basename(p) for n, p in tables.items()}
    text = calibrate.format_calapply(f"{uid}.ms", calibrate.calapply_entries(
        uid, spec, pl_tables, plw + f"{uid}.ms"))
    with open(os.path.join(dirs["calibration"], f"{uid}.ms.calapply.txt"), "w") as fh:
        fh.write(text)
    entries = calibrate.calapply_entries(uid, spec, tables, vis)
    calibrate.apply(vis, entries, parang=spec.polarization)
    eb_truth["caltables"] = sorted(os.path.basename(p) for p in tables.values())
    eb_truth["calibrated_target_ratio_per_spw"] = measure_target(vis, spec, "CORRECTED_DATA")
    eb_truth["field_ids"] = _field_ids(vis)
    split = os.path.join(work, f"{uid}.ms.split.cal")
    casatasks.split(vis=vis, outputvis=split, datacolumn="corrected", keepflags=True)
    if not os.path.isdir(split):
        raise SynthError(f"split did not create {split}")
    return split


def _pipeline_texts(spec, work, dirs, truth) -> None:
    n = pp.names(spec)
    cal = dirs["calibration"]
    # caltables of the session, flat
    ctdir = os.path.join(work, "caltables")
    members = [(os.path.join(ctdir, t), t) for t in sorted(os.listdir(ctdir))]
    from .archive import write_tgz
    write_tgz(os.path.join(cal, n["caltables"]), members)
    # auxproducts
    auxd = os.path.join(work, "aux")
    os.makedirs(auxd)
    field_ids = {eb: truth["eb"][eb]["field_ids"] for eb in spec.eb_uids}
    ants = truth["eb"][spec.eb_uids[0]]["antennas"]
    files = {"flux.csv": pp.flux_csv(spec, field_ids), "antennapos.csv": pp.antennapos_csv(spec, ants),
             "cont.dat": pp.cont_dat(spec)}
    for fname, text in files.items():
        with open(os.path.join(auxd, fname), "w") as fh:
            fh.write(text)
    write_tgz(os.path.join(cal, n["auxproducts"]), [(os.path.join(auxd, f), f) for f in sorted(files)])
    # scripts
    renorm_ebs = list(spec.eb_uids) if truth["renorm"]["exceeds_threshold"] else []
    texts = {n["ppr"]: pp.ppr_xml(spec), n["restore"]: pp.restore_script(spec),
             n["pipescript"]: pp.pipescript(spec), n["manifest"]: pp.manifest_xml(spec, renorm_ebs),
             n["scriptforpi"]: pp.scriptforpi_standin(spec)}
    for fname, text in texts.items():
        with open(os.path.join(dirs["script"], fname), "w") as fh:
            fh.write(text)
    truth["renorm"]["manifest_hifa_renorm"] = {eb: dict(pp.RENORM_INPUTS, vis=eb + ".ms") for eb in renorm_ebs}
    truth["cont_ranges"] = {k: [{"lo_ghz": lo, "hi_ghz": hi, "chan_lo": a, "chan_hi": b, "frame": "TOPO"}
                                for lo, hi, a, b in v] for k, v in pp.cont_ranges(spec).items()}
    truth["pipeline_files"] = dict(n)


def _commands_log(spec) -> str:
    lines = ["# casa_commands.log (synthetic): calibration as almaqa_casa.synth ran it"]
    for eb in spec.eb_uids:
        lines += [f"importasdm(asdm='{eb}', vis='{eb}.ms', ocorr_mode='ca', lazy=True, bdfflags=True)",
                  f"flagdata(vis='{eb}.ms', mode='manual', autocorr=True)",
                  f"bandpass(vis='{eb}.ms', field='{S.BANDPASS.name}', solint='inf', combine='scan', solnorm=True)",
                  f"gaincal(vis='{eb}.ms', solint='int', calmode='p')",
                  f"gaincal(vis='{eb}.ms', solint='inf', calmode='a')",
                  f"applycal(vis='{eb}.ms', ...)"]
    return "\n".join(lines) + "\n"


def _images(spec, vislist, imgwork, productdir, truthdir, to_final, work) -> dict:
    out = {}
    tgt = spec.target.name
    nspw = len(S.SPWS)
    allspw = list(range(nspw))
    lc = S.line_channels(S.LINE["spw"])
    jobs = []
    if spec.polarization:
        jobs.append((tgt, "sci", allspw, "cont", "IQUV", {S.LINE["spw"]: lc}))
        jobs.append((tgt, "sci", [S.LINE["spw"]], "cube", "IQUV", None))
    else:
        for k in allspw:
            jobs.append((tgt, "sci", [k], "mfs", "I", None))
        jobs.append((tgt, "sci", allspw, "cont", "I", {S.LINE["spw"]: lc}))
        jobs.append((tgt, "sci", [S.LINE["spw"]], "cube", "I", None))
    if spec.calibration == "pipeline":  # the pipeline images calibrators too
        for src in (S.BANDPASS, S.PHASE, S.CHECK):
            for k in allspw:
                jobs.append((src.name, src.role, [k], "mfs", "I", None))
    script_jobs = []
    for field, ttype, spws, imtype, stokes, excl in jobs:
        base = imaging.product_base(spec, field, ttype, spws, imtype, stokes)
        cal = ttype != "sci"
        niter = 20 if cal else (600 if imtype == "cube" else 300)
        thr = "5mJy" if imtype == "cube" else "0mJy"
        r = imaging.make_image(vislist, imgwork, productdir, truthdir, base, field, spws, imtype,
                               stokes, cont_exclude=excl, niter=niter, threshold=thr,
                               nmajor=1 if cal else 2, imsize=64 if cal else imaging.IMSIZE,
                               savemodel="modelcolumn" if (spec.selfcal and imtype == "cont") else "none")
        name = os.path.basename(r["pbcor"])
        out[name] = {"uncorrected_fits": to_final(r["uncorrected_fits"]),
                     "pb": os.path.basename(r["pb"]), "mask": os.path.basename(r["mask"]),
                     "noise_jy_per_beam": r["noise_jy_per_beam"],
                     "center_pbcor_jy_per_beam": r["center_pbcor_jy_per_beam"],
                     "field": field, "type": ttype, "spws": spws, "imtype": imtype, "stokes": stokes,
                     "selfcal": False}
        c = (64 if cal else imaging.IMSIZE) // 2
        script_jobs.append({"base": base, "field": field, "spw": imaging._spwsel(spws, excl),
                            "specmode": imtype, "stokes": stokes, "imsize": 2 * c, "cell": imaging.CELL,
                            "niter": niter, "threshold": thr, "mask": f"circle[[{c}pix,{c}pix],4arcsec]"})
    if spec.calibration == "manual":
        from .manual_scripts import imaging_script
        script = os.path.join(os.path.dirname(productdir), "script",
                              f"member.{spec.mous}.scriptForImaging.py")
        with open(script, "w") as fh:
            fh.write(imaging_script(spec, script_jobs))
    return out
