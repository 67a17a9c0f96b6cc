"""Text-only skeleton deliveries for dry runs, plans and layout checks (pure:
no CASA, no ASDM content).

``make_skeleton(outdir, shape)`` writes the tree a real delivery of that
shape has, from text alone: PPR, restore script, pipescript, manifest (or
not), scriptForPI stand-in, post scripts, per EB ``calapply.txt`` naming the
tables of its own session, per session caltables tarballs holding those
tables as empty folders, ``flagversions.tgz``, auxiliary files (tarball or
loose), ``raw/<uid>.asdm.sdm/ASDM.xml``, README, qa/, logs and product
names (header-only FITS files, empty ``.mask`` folders).  Names and formats
come from the same modules the CASA generator uses (:mod:`.shape`,
:mod:`.pipeline_products`, :mod:`.calplan`, :mod:`.products`).

``PRESETS`` rebuilds the real cases of reference realworld.md and issue 12;
``shape`` may also be a :class:`SynthSpec`.  The truth
(``<outdir>/truth/truth.json``, beside the project) says what a reader must
find: ``shape`` (EB -> session -> tarball, where the map is written, restore
task, pre-steps, post scripts) and ``expected`` per EB.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import tempfile

from ..atomic import write_text_atomic
from . import calplan, products, tree
from . import pipeline_products as pp
from . import shape as SH
from . import spec as S
from .archive import write_tgz

__all__ = ["PRESETS", "make_skeleton", "preset_spec"]

#: name -> (description, real source, SynthSpec fields).
PRESETS: dict[str, tuple[str, str, dict]] = {
    "modern": ("Cycle 12 pipeline delivery, one session, manifest present (the generator's default shape)",
               "seed document; the generator's default", dict(nebs=2)),
    "cycle4_gaps": ("Cycle 4, 8 EBs in sessions 1,2,2,3,4,5,7,8, no manifest, loose aux files, README",
                    "issue 12; realworld.md (26 of 89 restore scripts have gaps)",
                    dict(cycle=4, nebs=8, sessions=("session_1", "session_2", "session_2", "session_3",
                                                    "session_4", "session_5", "session_7", "session_8"))),
    "total_power": ("total power, 18 EBs in 17 sessions, hsd_restoredata(ocorr_mode='ao'), jyperk.csv",
                    "ALMA-IMF/reduction member.uid___A001_X1296_X12b.hsd_calimage.casa_piperestorescript.py",
                    dict(cycle=5, nebs=18, total_power=True,
                         sessions=tuple(f"session_{k}" for k in range(1, 15)) + (
                             "session_14", "session_15", "session_16", "session_17"))),
    "no_session_1": ("Cycle 5, 8 EBs in sessions 2,2,3,4,5,6,7,8: no session_1 at all",
                     "ALMA-IMF/reduction member.uid___A001_X1296_X133.hifa_calimage.casa_piperestorescript.py",
                     dict(cycle=5, nebs=8, sessions=("session_2", "session_2", "session_3", "session_4",
                                                     "session_5", "session_6", "session_7", "session_8"))),
    "s_naming": ("Cycle 10, 3 EBs in sessions 1,1,2, tarballs named <mous>.s<k>.caltables.tgz",
                 "realworld.md (Cycle 10+ tarball names)",
                 dict(cycle=10, nebs=3, sessions=("session_1", "session_1", "session_2"),
                      caltables_naming="s")),
    "ppr_disagrees": ("PPR with SESSION_1..4 for four EBs; restore script and tarballs session_1 only; "
                      "no manifest", "realworld.md",
                      dict(cycle=6, nebs=4, manifest=False,
                           ppr_sessions=("session_1", "session_2", "session_3", "session_4"))),
    "sacm": ("Cycle 5 SACM/JAO restore script: hifa_importdata(dbservice=False, bdfflags=False), "
             "fixsyscaltimes per EB, then hifa_restoredata", "realworld.md (13 of 89 restore scripts)",
             dict(cycle=5, nebs=2, sessions=("session_1", "session_2"), sacm=True)),
    "post_scripts": ("Cycle 8 pipeline calibration with manual imaging and PolCal, FluxCal, ImagingPrep "
                     "scripts (scriptForPI.py runs them in that order)", "restore.md §2.3, §2.9",
                     dict(cycle=8, nebs=3, polarization=True,
                          post_scripts=("PolCal", "FluxCal", "ImagingPrep"))),
    "cycle7": ("Cycle 7: casa_commands.log in script/, no log/ folder", "realworld.md",
               dict(cycle=7, nebs=2)),
    "cycle3": ("Cycle 3 pipeline calibration: hif_restoredata, README, loose aux files, "
               "manual free-form products", "realworld.md", dict(cycle=3, nebs=2)),
    "manual_cycle3": ("Cycle 3 manual calibration: per-EB scriptForCalibration.py, free-form products "
                      "with .flux.fits and .mask folders", "realworld.md",
                      dict(cycle=3, nebs=2, calibration="manual")),
    "semipass": ("QA2 semipass package: qa/, a small script/, raw/ only; nothing to calibrate",
                 "realworld.md", dict(cycle=9, nebs=2, calibration="semipass")),
}

_FITS_CARDS = ("SIMPLE  =                    T", "BITPIX  =                  -32",
               "NAXIS   =                    0", "EXTEND  =                    T",
               "TELESCOP= 'ALMA    '", "COMMENT text-only skeleton product: no data", "END")
#: Typical TP antennas and their Jy/K factors written to jyperk.csv.
TP_ANTENNAS = ("PM01", "PM02", "PM03", "PM04")


def preset_spec(name: str, **overrides) -> S.SynthSpec:
    """The :class:`SynthSpec` of a preset (``overrides`` change its fields)."""
    if name not in PRESETS:
        raise ValueError(f"unknown skeleton preset {name!r}; presets: {', '.join(PRESETS)}")
    return S.SynthSpec(**dict(PRESETS[name][2], **overrides))


def _fits_bytes() -> bytes:
    head = "".join(c.ljust(80) for c in _FITS_CARDS)
    return head.ljust(2880).encode("ascii")


def _write(path: str, data: str | bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return path


def _asdm_xml(spec: S.SynthSpec, uid: str) -> str:
    url = "uid://" + uid[len("uid___"):].replace("_", "/")
    return (f'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
            f'<!-- text-only skeleton of almaqa_casa.synth: no data -->\n'
            f'<ASDM xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cntnr="http://Alma/XASDM/ASDM" '
            f'schemaVersion="4" schemaRevision="-1">\n'
            f'<Entity entityId="{url}" entityIdEncrypted="na" entityTypeName="ASDM" schemaVersion="1" '
            f'documentVersion="1"/>\n'
            f'<TimeOfCreation> {S.CYCLE_YEAR[spec.cycle] + 1}-01-17T23:34:44.000000000 </TimeOfCreation>\n'
            f'<Table> <Name> Main </Name> <NumberRows> 0 </NumberRows> </Table>\n'
            f'<Table> <Name> ExecBlock </Name> <NumberRows> 1 </NumberRows> </Table>\n'
            f'</ASDM>\n')


def _tp_tables(uid: str) -> dict[str, str]:
    return {"skycal": f"{uid}.ms.hsd_skycal.s5_1.ms.skycal.tbl",
            "tsyscal": f"{uid}.ms.h_tsyscal.s6_1.tsyscal.tbl"}


def _calapply(spec: S.SynthSpec, uid: str) -> tuple[str, list[str]]:
    """(calapply.txt text, caltable basenames it names)."""
    plw = calplan.PIPELINE_WORKDIR.format(mous=spec.mous)
    if spec.total_power:
        t = _tp_tables(uid)
        entries = [{"vis": plw + f"{uid}.ms", "field": spec.target.name, "intent": "TARGET",
                    "spw": calplan.SPW_LIST, "antenna": "",
                    "gaintable": [plw + t["skycal"], plw + t["tsyscal"]], "gainfield": ["nearest", "nearest"],
                    "spwmap": [[], []], "interp": ["linear", "linear,cspline"], "calwt": [True, True]}]
        return calplan.format_calapply(f"{uid}.ms", entries), sorted(t.values())
    names = calplan.caltable_names(uid, spec)
    tables = {k: plw + v for k, v in names.items()}
    entries = calplan.calapply_entries(uid, spec, tables, plw + f"{uid}.ms")
    return calplan.format_calapply(f"{uid}.ms", entries), sorted(names.values())


def _field_ids(spec: S.SynthSpec) -> dict[str, dict[str, int]]:
    ids = {src.name: i for i, src in enumerate(spec.sources)}
    return {eb: ids for eb in spec.eb_uids}


def _jyperk_csv(spec: S.SynthSpec) -> str:
    rows = ["MS,Antenna,Spwid,Polarization,Factor"]
    for e, eb in enumerate(spec.eb_uids):
        for a, ant in enumerate(TP_ANTENNAS):
            for k in range(len(S.SPWS)):
                for pol in ("XX", "YY"):
                    rows.append(f"{eb}.ms,{ant},{k},{pol},{40.0 + a + 0.5 * k + 0.1 * (e % 3):.2f}")
    return "\n".join(rows) + "\n"


def _manual_calibration_standin(spec: S.SynthSpec, uid: str) -> str:
    """A short per-EB script in the observatory's manual style (never run)."""
    ms = f"{uid}.ms"
    return f"""# ALMA Data Reduction Script (text-only skeleton of almaqa_casa.synth)
# Calibration of {uid} ({spec.project}, {spec.mous})
thesteps = []
step_title = {{0: 'Import of the ASDM', 1: 'Bandpass and gain calibration', 2: 'Split out corrected column'}}
try:
    print('List of steps to be executed ...', mysteps)
    thesteps = mysteps
except NameError:
    print('global variable mysteps not set.')
if (thesteps == []):
    thesteps = range(0, len(step_title))

mystep = 0
if (mystep in thesteps):
    importasdm('{uid}', vis='{ms}', asis='Antenna Station Receiver Source CalAtmosphere CalWVR', bdfflags=True)
mystep = 1
if (mystep in thesteps):
    bandpass(vis='{ms}', caltable='{ms}.split.bandpass', field='{S.BANDPASS.name}', solint='inf', combine='scan')
    applycal(vis='{ms}', gaintable=['{ms}.split.bandpass'], calwt=True, flagbackup=False)
mystep = 2
if (mystep in thesteps):
    split(vis='{ms}', outputvis='{ms}.split.cal', datacolumn='corrected', keepflags=True)
"""


def make_skeleton(outdir: str, shape: str | S.SynthSpec = "modern", **overrides) -> dict:
    """Write a text-only delivery of ``shape`` (a preset name or a SynthSpec)
    under ``outdir``; returns ``project_dir``, ``member_dir``, ``truth_path``,
    ``truth``, ``spec``, ``preset``."""
    preset = shape if isinstance(shape, str) else None
    spec = preset_spec(shape, **overrides) if preset else (
        dataclasses.replace(shape, **overrides) if overrides else shape)
    if spec.calibration == "manual" and spec.total_power:
        raise ValueError("no text-only skeleton of manual total power; generate(calibration='manual', "
                         "total_power=True) builds one with real scriptForSDCalibration.py scripts")
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    final_project = os.path.join(outdir, spec.project)
    if os.path.exists(final_project) or os.path.exists(os.path.join(outdir, "truth")):
        raise FileExistsError(f"{final_project} or its truth exists already; choose an empty output folder")
    tmp = tempfile.mkdtemp(prefix=".skeleton-", dir=outdir)
    try:
        truth = _build(spec, preset, os.path.join(tmp, "stage"), os.path.join(tmp, "work"), outdir)
        os.replace(os.path.join(tmp, "stage", spec.project), final_project)
        os.replace(os.path.join(tmp, "stage", "truth"), os.path.join(outdir, "truth"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(truth["truth_path"]) as fh:  # exactly what truth.json holds (lists, string keys)
        truth = json.load(fh)
    return {"project_dir": final_project, "member_dir": truth["member_dir"],
            "truth_path": truth["truth_path"], "truth": truth, "spec": spec, "preset": preset}


def _build(spec: S.SynthSpec, preset: str | None, stage: str, work: str, outdir: str) -> dict:
    member = tree.member_path(stage, spec)
    dirs = tree.make_dirs(member, spec)
    os.makedirs(work)
    names = SH.file_names(spec)
    casa, _pl = SH.versions(spec)
    expected: dict[str, dict] = {}
    for uid in spec.eb_uids:
        _write(os.path.join(dirs["raw"], f"{uid}.asdm.sdm", "ASDM.xml"), _asdm_xml(spec, uid))
    if spec.calibration == "pipeline":
        _pipeline(spec, dirs, work, expected)
    elif spec.calibration == "manual":
        _manual(spec, dirs, work)
    else:
        _write(os.path.join(dirs["script"], names["scriptforpi"]), pp.scriptforpi_standin(spec))
    if "product" in dirs:
        _products(spec, dirs["product"])
    _write(os.path.join(member, names["readme"]), tree.readme(spec, casa))
    summary = {"Project": spec.project, "MOUS": spec.mous, "EBs": ", ".join(spec.eb_uids),
               "CASA version": casa, "QA2": "SEMIPASS" if spec.calibration == "semipass" else "PASS"}
    tree.qa_files(spec, dirs["qa"], work, summary)
    if spec.calibration == "pipeline":
        _write(os.path.join(dirs[names["cmdlog_dir"]], names["cmdlog"]), pp.commands_log(spec))
        if spec.cycle <= 4:
            name, text = tree.casa_log(spec)
            _write(os.path.join(dirs["log"], name), text)
    final_member = tree.member_path(outdir, spec)
    truth = {
        "generator": "almaqa_casa.synth.skeleton", "skeleton": True, "preset": preset,
        "description": PRESETS[preset][0] if preset else None,
        "source": PRESETS[preset][1] if preset else None,
        "spec": dataclasses.asdict(spec), "variant": spec.variant, "project": spec.project,
        "science_goal": spec.ous_uids[0], "group": spec.ous_uids[1], "mous": spec.mous,
        "ebs": list(spec.eb_uids), "calibration": spec.calibration,
        "project_dir": os.path.join(outdir, spec.project), "member_dir": final_member,
        "truth_dir": os.path.join(outdir, "truth"), "truth_path": os.path.join(outdir, "truth", "truth.json"),
        "shape": SH.describe(spec), "expected": expected,
        "files": sorted(os.path.relpath(os.path.join(d, f), member)
                        for d, _sub, fs in os.walk(member) for f in fs),
    }
    truth_dir = os.path.join(stage, "truth")
    os.makedirs(truth_dir)
    write_text_atomic(os.path.join(truth_dir, "truth.json"), json.dumps(truth, indent=1, sort_keys=True))
    return truth


def _pipeline(spec: S.SynthSpec, dirs: dict, work: str, expected: dict) -> None:
    names = SH.file_names(spec)
    cal, script = dirs["calibration"], dirs["script"]
    sessions = dict(zip(spec.eb_uids, SH.eb_sessions(spec)))
    tarballs = SH.session_tarballs(spec)
    by_session: dict[str, list[str]] = {s: [] for s in tarballs}
    for uid in spec.eb_uids:
        text, tables = _calapply(spec, uid)
        _write(os.path.join(cal, f"{uid}.ms.calapply.txt"), text)
        for t in tables:  # caltable folders (empty) in the session's staging folder
            os.makedirs(os.path.join(work, "ct", sessions[uid], t), exist_ok=True)  # session tables are shared
        by_session[sessions[uid]].extend(t for t in tables if t not in by_session[sessions[uid]])
        fv = os.path.join(work, "fv", uid, f"{uid}.ms.flagversions")
        os.makedirs(os.path.join(fv, "flags.Pipeline_Final"))
        _write(os.path.join(fv, "FLAG_VERSION_LIST"), "Pipeline_Final : Final pipeline flags\n")
        write_tgz(os.path.join(cal, f"{uid}.ms.flagversions.tgz"), [(fv, f"{uid}.ms.flagversions")])
        expected[uid] = {"session": sessions[uid], "caltables_tarball": tarballs[sessions[uid]],
                         "calapply": f"{uid}.ms.calapply.txt", "flagversions": f"{uid}.ms.flagversions.tgz",
                         "caltables": tables, "asdm": f"raw/{uid}.asdm.sdm",
                         "ppr_session": dict(zip(spec.eb_uids, SH.ppr_sessions(spec)))[uid]}
    for sess, tarball in tarballs.items():
        root = os.path.join(work, "ct", sess)
        write_tgz(os.path.join(cal, tarball), [(os.path.join(root, t), t) for t in sorted(by_session[sess])])
    if has_aux_caltables(spec):
        _aux_caltables(spec, cal, work, expected)
    aux = {"flux.csv": pp.flux_csv(spec, _field_ids(spec)),
           "antennapos.csv": pp.antennapos_csv(spec, list(S.ANTENNA_NAMES[:spec.nant])),
           names["cont_dat"]: pp.cont_dat(spec)}
    if spec.total_power:
        aux = {"jyperk.csv": _jyperk_csv(spec)}
    if SH.aux_loose(spec):
        for fname, text in aux.items():
            _write(os.path.join(cal, fname), text)
        for uid in spec.eb_uids:
            flag, targets = pp.flagtemplates(uid, None)
            fn, tn = SH.flagtemplate_names(uid)
            _write(os.path.join(cal, fn), flag)
            _write(os.path.join(cal, tn), targets)
    else:
        auxd = os.path.join(work, "aux")
        for fname, text in aux.items():
            _write(os.path.join(auxd, fname), text)
        write_tgz(os.path.join(cal, names["auxproducts"]), [(os.path.join(auxd, f), f) for f in sorted(aux)])
    texts = {names["ppr"]: pp.ppr_xml(spec), names["restore"]: pp.restore_script(spec),
             names["pipescript"]: pp.pipescript(spec), names["scriptforpi"]: pp.scriptforpi_standin(spec)}
    if SH.has_manifest(spec):
        renorm = list(spec.eb_uids) if (spec.cycle >= 10 and not spec.total_power) else []
        texts[names["manifest"]] = pp.manifest_xml(spec, renorm)
    if spec.cycle == 4:
        texts[names["imaging"]] = pp.imaging_script_placeholder(spec)
    elif not SH.pipeline_imaged(spec) and not spec.total_power:
        texts[names["imaging"]] = _imaging_script(spec)
    for p in spec.post_scripts:
        texts[names[f"scriptFor{p}"]] = pp.post_script_standin(spec, p)
    for fname, text in texts.items():
        _write(os.path.join(script, fname), text)


def has_aux_caltables(spec: S.SynthSpec) -> bool:
    """Cycle 5-7 pipeline imaging left continuum-fit tables beside the
    calibration: ``<mous>.session_<k>.auxcaltables.tgz`` and
    ``<ms>.auxcalapply.txt`` (not the main list; realworld.md)."""
    return 5 <= spec.cycle <= 7 and SH.pipeline_imaged(spec) and not spec.total_power


def _aux_caltables(spec: S.SynthSpec, cal: str, work: str, expected: dict) -> None:
    plw = calplan.PIPELINE_WORKDIR.format(mous=spec.mous)
    by_session: dict[str, list[str]] = {}
    for uid, sess in zip(spec.eb_uids, SH.eb_sessions(spec)):
        name = f"{uid}.ms.hif_uvcontfit.s26_1.{calplan.SPW_TOKEN}.uvcont.tbl"
        os.makedirs(os.path.join(work, "auxct", sess, name))
        by_session.setdefault(sess, []).append(name)
        entry = {"vis": plw + f"{uid}.ms", "field": spec.target.name, "intent": "TARGET",
                 "spw": calplan.SPW_LIST, "antenna": f"0~{spec.nant - 1}", "gaintable": [plw + name],
                 "gainfield": [""], "spwmap": [[]], "interp": [""], "calwt": [False]}
        _write(os.path.join(cal, f"{uid}.ms.auxcalapply.txt"), calplan.format_calapply(f"{uid}.ms", [entry]))
        expected[uid]["aux_caltables"] = {"tarball": f"{spec.mous}.{sess}.auxcaltables.tgz",
                                          "calapply": f"{uid}.ms.auxcalapply.txt", "caltables": [name]}
    for sess, names in by_session.items():
        root = os.path.join(work, "auxct", sess)
        write_tgz(os.path.join(cal, f"{spec.mous}.{sess}.auxcaltables.tgz"),
                  [(os.path.join(root, n), n) for n in sorted(names)])


def _imaging_script(spec: S.SynthSpec) -> str:
    jobs = []
    for field, ttype, spws, imtype, stokes, _excl in products.image_jobs(spec):
        base = products.product_files(spec, field, ttype, spws, imtype, stokes)["pbcor"]
        jobs.append({"base": base.split(".pbcor.fits")[0].replace(".image", ""), "field": field,
                     "spw": ",".join(str(s) for s in spws), "specmode": imtype, "stokes": stokes,
                     "imsize": 128, "cell": "0.6arcsec", "niter": 300, "threshold": "0mJy",
                     "mask": "circle[[64pix,64pix],4arcsec]"})
    return products.imaging_script(spec, jobs)


def _manual(spec: S.SynthSpec, dirs: dict, work: str) -> None:
    names = SH.file_names(spec)
    for uid in spec.eb_uids:
        _write(os.path.join(dirs["script"], f"{uid}.ms.scriptForCalibration.py"),
               _manual_calibration_standin(spec, uid))
        d = os.path.join(work, "cal", f"{uid}.calibration")
        _write(os.path.join(d, "README.txt"), f"calibration tables of {uid} (text-only skeleton)\n")
        write_tgz(os.path.join(dirs["calibration"], f"{uid}.calibration.tgz"), [(d, f"{uid}.calibration")])
        logd = os.path.join(work, "log", f"{uid}.log")
        _write(os.path.join(logd, f"{uid}.ms.listobs"), f"listobs of {uid} (text-only skeleton)\n")
        write_tgz(os.path.join(dirs["log"], f"{uid}.log.tgz"), [(logd, f"{uid}.log")])
    vis = [f"{eb}.ms.split.cal" for eb in spec.eb_uids]
    _write(os.path.join(dirs["script"], names["scriptForImagingPrep"]),
           f"concat(vis={vis!r}, concatvis='calibrated.ms')\nlistobs(vis='calibrated.ms', "
           f"listfile='calibrated.ms.listobs')\n")
    _write(os.path.join(dirs["script"], names["imaging"]), _imaging_script(spec))
    _write(os.path.join(dirs["script"], names["scriptforpi"]), pp.scriptforpi_standin(spec))


def _products(spec: S.SynthSpec, productdir: str) -> None:
    fits = _fits_bytes()
    if spec.total_power:
        for k in range(len(S.SPWS)):
            _write(os.path.join(productdir, f"member.{spec.mous}.{spec.target.name}_sci.spw{k}.cube.I.sd.fits"),
                   fits)
        return
    for field, ttype, spws, imtype, stokes, _excl in products.image_jobs(spec):
        for name in products.product_files(spec, field, ttype, spws, imtype, stokes).values():
            path = os.path.join(productdir, name)
            if name.endswith(".fits"):
                _write(path, fits)
            elif name.endswith(".fits.gz"):
                _write(path, gzip.compress(fits, mtime=0))
            else:  # a CASA image folder (free-form .mask products)
                _write(os.path.join(path, "table.info"), "Type = Image\nSubType = \n")
