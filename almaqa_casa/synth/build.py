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
from . import asdm, calibrate, imaging, measure, simulate, tree
from . import pipeline_build as pb
from . import pipeline_products as pp
from . import shape as SH
from . import spec as S
from . import truth as T
from ._casa import casatools


class SynthError(AlmaqaError, RuntimeError):
    """The generator could not build the delivery; the message says why."""


# Kept under their old names: other code measures with them.
measure_target = measure.target_ratio
_field_ids = measure.field_ids


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


def generate(outdir: str, calibration: str = "pipeline", polarization: bool = False, nebs: int = 2,
             selfcal: bool = False, seed: int = 12345, tars: bool = False, nant: int = 8,
             casa_version_pin: str = "", keep_work: bool = False, *, cycle: int = 12,
             sessions=(), manifest: bool | None = None, caltables_naming: str = "session",
             sacm: bool = False, post_scripts=(), total_power: bool = False, ppr_sessions=()) -> dict:
    """Build a synthetic ALMA delivery under ``outdir``.

    The keyword-only shape options choose which real delivery shape to
    imitate (see :class:`~almaqa_casa.synth.spec.SynthSpec`): ``cycle``
    (1-12: layout, names, versions), ``sessions`` (one ``session_<k>`` per
    EB), ``manifest`` (None: as the era did), ``caltables_naming``
    (``'s'``: ``<mous>.s<k>.caltables.tgz``), ``sacm`` (the Cycle 5-6
    SACM/JAO pre-step and an ASDM that needs it), ``post_scripts``
    (``('ImagingPrep',)``), ``ppr_sessions`` (a PPR that disagrees);
    ``calibration='semipass'`` gives a package with raw data only.
    ``total_power=True`` simulates a pipeline-calibrated total power
    delivery instead (:mod:`.tp_build`: ON/OFF autocorrelations, sky, Tsys
    and Jy/K tables, ``jyperk.csv``, ``sd`` cubes; ``truth['total_power']``);
    with ``calibration='manual'`` a manual one (:mod:`.tp_manual`: per-EB
    ``scriptForSDCalibration.py``, the same ASDMs and truth).

    Returns a dict with ``project_dir``, ``member_dir``, ``truth_path``,
    ``truth`` (the truth dict, as in truth.json), ``spec`` and ``tars``.
    The delivery is built in a temporary folder inside ``outdir`` and moved
    into place at the end: a failure leaves nothing half-built."""
    spec = S.SynthSpec(calibration=calibration, polarization=bool(polarization), nebs=int(nebs),
                       selfcal=bool(selfcal), seed=int(seed), tars=bool(tars), nant=int(nant),
                       casa_version_pin=casa_version_pin, cycle=int(cycle), sessions=sessions,
                       manifest=manifest, caltables_naming=caltables_naming, sacm=bool(sacm),
                       post_scripts=post_scripts, total_power=bool(total_power), ppr_sessions=ppr_sessions)
    if spec.nebs > S.MAX_SIMULATED_EBS:
        raise ValueError(f"generate() simulates at most {S.MAX_SIMULATED_EBS} EBs, not {spec.nebs}; "
                         "make_skeleton() writes text-only deliveries of any size")
    if spec.total_power and (spec.cycle < 5 or spec.sacm or spec.post_scripts):
        raise ValueError("generate() simulates total power (hsd_calimage or scriptForSDCalibration.py) "
                         "from Cycle 5 on, without SACM pre-step or post scripts; make_skeleton() writes the others")
    if set(spec.post_scripts) - {"ImagingPrep"}:
        raise ValueError("generate() runs the ImagingPrep post script only; FluxCal and PolCal "
                         "scripts exist in text-only skeletons")
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


def _truth_head(spec: S.SynthSpec, outdir: str, final_member: str, final_truth: str) -> dict:
    from . import polarization as P
    truth: dict = {
        "generator": "almaqa_casa.synth", "spec": dataclasses.asdict(spec), "variant": spec.variant,
        "project": spec.project, "science_goal": spec.ous_uids[0], "group": spec.ous_uids[1],
        "mous": spec.mous, "ebs": list(spec.eb_uids), "calibration": spec.calibration,
        "polarization": spec.polarization, "selfcal": spec.selfcal,
        "project_dir": os.path.join(outdir, spec.project), "member_dir": final_member,
        "truth_dir": final_truth, "corrs": spec.corrs, "refant": S.REFANT,
        "shape": SH.describe(spec),
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
                                "reference_frame": "sky (parallactic angle removed)",
                                "stokes": P.stokes_truth(spec),
                                "instrument": P.instrument_truth(spec, list(S.ANTENNA_NAMES[:spec.nant]))}
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
    return truth


def _simulate_eb(spec, k, uid, work, dirs, truth_stage, to_final, truth) -> tuple[str, dict]:
    """Simulate, corrupt and export one EB; its reference MS and truth."""
    _log(f"synth: simulating EB {k + 1}/{spec.nebs} {uid}")
    sim = os.path.join(work, f"sim{k}.ms")
    info = simulate.simulate_structure(spec, k, sim)
    theta = None
    if spec.polarization:
        from .polarization import feed_rotation
        theta = feed_rotation(sim)
    cor = simulate.fill_data(spec, k, sim, info, theta)
    if spec.polarization:   # leakage and cross-hand phase: what hifa_polcal's tables remove
        from .polarization import inject
        inject(spec, sim, cor)
    if spec.selfcal:        # a phase error on the target only self-calibration removes
        from .selfcal import inject_residual
        truth.setdefault("selfcal_truth", {}).setdefault("ebs", {})[uid] = inject_residual(spec, k, sim, info)
    raw = os.path.join(dirs["raw"], f"{uid}.asdm.sdm")
    asdm.export(sim, raw, uid, info, spec)
    shutil.rmtree(sim)
    syscal = asdm.write_syscal(raw, uid, info, cor["params"]["tsys_k"], sacm=True) if spec.sacm else None
    # the reference: importasdm's rows, the true sky
    ref = os.path.join(truth_stage, "reference", f"{uid}.ms")
    asdm.import_asdm(raw, ref, lazy=False)
    T.write_reference_ms(ref, spec)
    shutil.rmtree(ref + ".flagversions", ignore_errors=True)
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
    if syscal is not None:
        eb_truth["syscal"] = syscal
        truth.setdefault("sacm", {"restore_pre_step": "hifa_importdata(dbservice=False, bdfflags=False) "
                                                      "then fixsyscaltimes(vis=<uid>.ms) per EB",
                                  "ebs": {}})["ebs"][uid] = syscal
    truth["eb"][uid] = eb_truth
    return raw, info


def _build(spec: S.SynthSpec, tmp: str, outdir: str) -> dict:
    if spec.total_power:
        from .tp_build import build as build_total_power
        return build_total_power(spec, tmp, outdir)
    stage, work, member, dirs, truth_stage = tree.staging(tmp, spec)
    for d in ("reference", "images", "corruptions"):
        os.makedirs(os.path.join(truth_stage, d))
    final_member = tree.member_path(outdir, spec)
    final_truth = os.path.join(outdir, "truth")
    to_final = lambda p: p.replace(stage, outdir, 1)  # noqa: E731
    truth = _truth_head(spec, outdir, final_member, final_truth)

    split_cals: list[str] = []
    timings: dict[str, float] = {}
    truth["timings_s"] = timings
    t_phase = time.time()
    with _cwd(work):
        prepared: dict[str, dict] = {}   # polarization: EBs wait for their session's hifa_polcal
        for k, uid in enumerate(spec.eb_uids):
            raw, info = _simulate_eb(spec, k, uid, work, dirs, truth_stage, to_final, truth)
            if spec.calibration == "pipeline" and spec.polarization:
                prepared[uid] = pb.prepare_eb(spec, k, uid, raw, work, dirs, info, truth["eb"][uid])
            elif spec.calibration == "pipeline":
                split_cals.append(pb.pipeline_eb(spec, k, uid, raw, work, dirs, info, truth["eb"][uid]))
            elif spec.calibration == "manual":
                from . import manual_scripts
                split_cals.append(manual_scripts.run_eb(spec, k, uid, raw, work, dirs, info, truth["eb"][uid]))

        if prepared:
            pb.session_polcal(spec, work, prepared, truth)
            split_cals += [pb.finish_eb(spec, uid, work, dirs, truth["eb"][uid], p)
                           for uid, p in prepared.items()]
        timings["ebs"] = round(time.time() - t_phase, 1)
        t_phase = time.time()
        sc = None
        if spec.selfcal and split_cals:   # hif_selfcal: solutions and restore resources
            from . import selfcal as SC
            sc = SC.solve(spec, split_cals, work)
            st = truth["selfcal_truth"]
            st.update(SC.residual_truth(st["ebs"]), json=sc["json_name"],
                      resources_in=SH.file_names(spec)["auxproducts"],
                      tables={os.path.basename(p): a for p, a in sc["aux_members"][1:]})
        if spec.calibration == "pipeline":
            pb.pipeline_common(spec, work, dirs, truth, aux_extra=sc["aux_members"] if sc else ())
            if "ImagingPrep" in spec.post_scripts:
                split_cals = [pb.imaging_prep(spec, work, dirs, truth, split_cals)]
        elif spec.calibration == "manual":
            from . import manual_scripts
            manual_scripts.write_common(spec, work, dirs, truth, split_cals)
        else:
            with open(os.path.join(dirs["script"], SH.file_names(spec)["scriptforpi"]), "w") as fh:
                fh.write(pp.scriptforpi_standin(spec))

        timings["common"] = round(time.time() - t_phase, 1)
        t_phase = time.time()
        if split_cals:  # products (a semipass package has none)
            _log("synth: imaging")
            imgwork = os.path.join(work, "images")
            os.makedirs(imgwork)
            manual_imaging = spec.calibration == "manual" or not SH.pipeline_imaged(spec)
            truth["images"] = imaging.build_images(spec, split_cals, imgwork, dirs["product"],
                                                   os.path.join(truth_stage, "images"), to_final,
                                                   dirs["script"] if manual_imaging else None)
            if sc is not None:
                from .selfcal import selfcal_products
                truth["images"].update(selfcal_products(spec, sc["targets"], imgwork, dirs["product"],
                                                        os.path.join(truth_stage, "images"), to_final))

    timings["imaging"] = round(time.time() - t_phase, 1)
    _texts_around(spec, member, dirs, work)
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


def _texts_around(spec: S.SynthSpec, member: str, dirs: dict, work: str) -> None:
    """README, qa/ and the logs, as the era wrote them."""
    casa_version = (SH.versions(spec)[0] if spec.calibration != "manual"
                    else ".".join(str(v) for v in casatools.version()[:3]))
    names = SH.file_names(spec)
    with open(os.path.join(member, names["readme"]), "w") as fh:
        fh.write(tree.readme(spec, casa_version))
    summary = {"Project": spec.project, "MOUS": spec.mous, "EBs": ", ".join(spec.eb_uids),
               "CASA version": casa_version,
               "QA2": "SEMIPASS (synthetic)" if spec.calibration == "semipass" else "PASS (synthetic)"}
    tree.qa_files(spec, dirs["qa"], work, summary)
    if spec.calibration == "pipeline":
        with open(os.path.join(dirs[names["cmdlog_dir"]], names["cmdlog"]), "w") as fh:
            fh.write(pp.commands_log(spec))
        if spec.cycle <= 4:
            name, text = tree.casa_log(spec)
            with open(os.path.join(dirs["log"], name), "w") as fh:
                fh.write(text)
