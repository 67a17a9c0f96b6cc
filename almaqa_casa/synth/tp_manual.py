"""Manually calibrated total power: one ``<uid>.ms.scriptForSDCalibration.py`` per EB.

The ASDMs are the pipeline TP delivery's (:func:`.tp_build.simulate_eb`).
Each delivered script does what hsd_restoredata's stages do, with the
numbers in the script, as manual TP scripts carry them: importasdm
(``ocorr_mode='ao'``, autocorrelations in FLOAT_DATA), the bad ON subscan
flagged, the Tsys table (``gencal caltype='tsys'``), the sky table
(``sdcal calmode='ps'`` from the OFF_SOURCE integrations), the Kelvin-to-
Jansky table (``gencal caltype='amp'``, gain ``1/sqrt(factor)`` per
antenna, window and polarization from the script's ``jyperk`` dictionary),
applycal of the three to the ON_SOURCE target autocorrelations
(:func:`.tp_spec.calapply_entry`'s tables, interpolation and weights), and
the calibrated target split into ``<uid>.ms.split.cal`` (CORRECTED as DATA).
No calibration tables are delivered: the scripts compute them from the
data.  The generator runs every script as scriptForPI.py does
(:func:`.manual_scripts.run_in_workdir`), so a delivered script is known to
work.  ``scriptForSDImaging.py`` (run by the generator in ``calibrated/``)
images the calibrated target into the same ``sd`` cubes as the pipeline's.
"""
from __future__ import annotations

import os

import numpy as np

from . import manual_scripts as MS
from . import pipeline_products as pp
from . import shape as SH
from . import spec as S
from . import tp_build as TB
from . import tp_spec as T
from ._casa import casatools

#: The steps of a scriptForSDCalibration.py (CSG style).
STEP_TITLES = {0: "Import of the ASDM", 1: "Listobs", 2: "Flagging", 3: "Generation of the Tsys table",
               4: "Generation of the sky (OFF) table", 5: "Generation of the Kelvin to Jansky table",
               6: "Application of the sky, Tsys and Jy/K tables", 7: "Split out the calibrated target",
               8: "Save flags after applycal"}
#: The tables a script makes (suffix after ``<uid>.ms``), keyed as :data:`.tp_build.TABLE_TYPES`.
TABLE_SUFFIX = {"tsys": ".tsys", "sky": ".sky", "k2jy": ".jyperk"}


def script_name(uid: str) -> str:
    return f"{uid}.ms.scriptForSDCalibration.py"


def casa_time(seconds: float) -> str:
    """An MJD-seconds epoch as a CASA time string (``2025/10/10/21:43:29.9192``)."""
    return casatools.quanta().time({"value": float(seconds), "unit": "s"}, form="ymd", prec=10)[0]


def _call(task: str, **kw) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    return f"{task}({args})"


def jyperk_dict(k: int) -> dict[str, dict[int, dict[str, float]]]:
    """The script's ``jyperk``: antenna -> window -> polarization -> Jy/K of EB ``k``."""
    return {ant: {s: {c: T.jyperk(k, a, s, c) for c in T.CORRS} for s in range(len(T.SPWS))}
            for a, ant in enumerate(T.ANTENNAS)}


def sd_calibration_script(spec: S.SynthSpec, k: int, uid: str, info: dict) -> str:
    """The text of ``<uid>.ms.scriptForSDCalibration.py`` of EB ``k``."""
    ms = f"{uid}.ms"
    tables = {n: ms + sfx for n, sfx in TABLE_SUFFIX.items()}
    bad = TB.bad_subscan(info)
    entry = T.calapply_entry(uid, ms, tables, T.TARGET.name)
    spws = T.spw_list()
    out = MS.header(spec, uid, STEP_TITLES, name="scriptForSDCalibration.py")
    out += MS._step(0, f"""
if os.path.exists('{ms}'):
    os.system('rm -rf {ms}*')
{_call("importasdm", asdm=uid, vis=ms, **TB.IMPORT_ARGS)}
if not os.path.exists('{ms}.flagversions'):
    sys.exit('ERROR in importasdm step: {ms}.flagversions was not created')
""")
    out += MS._step(1, f"""
os.system('rm -rf {ms}.listobs')
listobs(vis='{ms}', listfile='{ms}.listobs')
""")
    out += MS._step(2, f"""
flagmanager(vis='{ms}', mode='save', versionname='Original')
# {bad['antenna']}: the power jumped by {round((bad['corruption_factor'] - 1) * 100)} % in subscan {bad['subscan']} (ON_SOURCE)
{_call("flagdata", vis=ms, mode="manual", antenna=bad["antenna"] + "&&&",
       timerange=f"{casa_time(bad['start'])}~{casa_time(bad['end'])}", flagbackup=False)}
""")
    out += MS._step(3, f"""
os.system('rm -rf {tables['tsys']}')
{_call("gencal", vis=ms, caltable=tables["tsys"], caltype="tsys")}
""")
    out += MS._step(4, f"""
os.system('rm -rf {tables['sky']}')
{_call("sdcal", infile=ms, calmode="ps", outfile=tables["sky"], field=T.TARGET.name, spw=spws,
       intent="OBSERVE_TARGET#OFF_SOURCE")}
""")
    out += MS._step(5, f"""
import math

# Jy/K factors per antenna, spw and polarization (from the observatory's Jy/K database)
jyperk = {jyperk_dict(k)!r}
ants = {list(T.ANTENNAS)!r}
spws = {list(range(len(T.SPWS)))!r}
# amplitude gains: gencal orders them by pol (fastest), antenna, spw; applycal divides by |g|^2
gains = [1.0 / math.sqrt(jyperk[a][s][p]) for s in spws for a in ants for p in ('XX', 'YY')]
os.system('rm -rf {tables['k2jy']}')
gencal(vis='{ms}', caltable='{tables['k2jy']}', caltype='amp', spw='{spws}', antenna=','.join(ants),
       pol='X,Y', parameter=gains)
""")
    out += MS._step(6, _call("applycal", vis=ms, field=entry["field"], intent="OBSERVE_TARGET#ON_SOURCE",
                             spw=entry["spw"], antenna="*&&&", gaintable=entry["gaintable"],
                             gainfield=entry["gainfield"], interp=entry["interp"], calwt=entry["calwt"],
                             applymode="calflagstrict", flagbackup=False))
    out += MS._step(7, f"""
os.system('rm -rf {ms}.split.cal')
{_call("split", vis=ms, outputvis=ms + ".split.cal", datacolumn="corrected", field=T.TARGET.name,
       intent="OBSERVE_TARGET#ON_SOURCE", spw=spws, keepflags=True)}
""")
    out += MS._step(8, f"""
flagmanager(vis='{ms}', mode='save', versionname='AfterApplycal')
""")
    return out


def manual_eb(spec: S.SynthSpec, k: int, uid: str, work: str, dirs: dict, truth: dict) -> str:
    """Simulate EB ``k``, deliver its ASDM and script, run the script as
    scriptForPI.py does; returns its ``<uid>.ms.split.cal``."""
    raw, info, params, syscal = TB.simulate_eb(spec, k, uid, work, dirs)
    text = sd_calibration_script(spec, k, uid, info)
    spath = os.path.join(dirs["script"], script_name(uid))
    with open(spath, "w") as fh:
        fh.write(text)
    wd = MS.run_in_workdir(text, spath, work, uid, raw)
    vis, split = os.path.join(wd, f"{uid}.ms"), os.path.join(wd, f"{uid}.ms.split.cal")
    spectra = TB.measured_spectra(split, "DATA")
    MS.plots_and_log(uid, work, wd, dirs)
    truth["eb"][uid] = {
        "asdm": raw, "script": script_name(uid),
        "caltables": {n: f"{uid}.ms{sfx}" for n, sfx in TABLE_SUFFIX.items()},
        "subscans": info["subscans"], "antennas": info["antennas"], "pads": info["pads"],
        "syscal": syscal, **TB.eb_meta(vis), "flagged": TB.flagged_bad(vis, info),
        "generator_peak_jy_per_spw": {str(s): float(np.nanmax(v)) for s, v in spectra.items()},
        "instrument": {"tsys0_k": params["tsys0_k"], "gain0": params["gain0"]},
    }
    return split


def imaging_script_name(spec: S.SynthSpec) -> str:
    return f"member.{spec.mous}.scriptForSDImaging.py"


def sd_imaging_script(spec: S.SynthSpec) -> str:
    """``scriptForSDImaging.py``: run in ``calibrated/`` (where scriptForPI.py
    leaves the ``<uid>.ms.split.cal``), one cube per window in Jy/beam, as the
    delivered ``product/`` holds them (:func:`.tp_build.imaging_args`)."""
    msnames = [f"{eb}.ms.split.cal" for eb in spec.eb_uids]
    out = f"""# ALMA Data Reduction Script: scriptForSDImaging.py (synthetic, almaqa_casa.synth)
# Imaging of the total power data of {spec.project} ({spec.mous}).
# Run it in the folder 'calibrated' made by scriptForPI.py; the data are in Jy
# (the calibration scripts applied the Jy/K factors).

import os

try:
    tsdimaging
except NameError:  # plain Python with modular CASA 6
    from casatasks import exportfits, tsdimaging
    from casatools import image as _image
    ia = _image()

msNames = {msnames!r}
"""
    for k in range(len(T.SPWS)):
        base = f"{T.TARGET.name}_sci.spw{k}.cube.I.sd"
        beam = TB.sd_beam_arcsec(k)
        out += f"""
# spw {k}
os.system('rm -rf {base}.*')
{_call("tsdimaging", **TB.imaging_args(k, [], base)).replace("infiles=[]", "infiles=msNames")}
ia.open('{base}.image')
ia.setrestoringbeam(major='{beam}arcsec', minor='{beam}arcsec', pa='0deg')
ia.setbrightnessunit('Jy/beam')
ia.close()
{_call("exportfits", imagename=base + ".image", fitsimage=T.product_name(spec.mous, k), **TB.EXPORT_ARGS)}
"""
    return out


def write_common(spec: S.SynthSpec, work: str, dirs: dict, truth: dict, split_cals: list[str]) -> dict:
    """scriptForPI.py (stand-in); scriptForSDImaging.py, run in ``calibrated/``
    on the EBs' split.cal (moved there as scriptForPI.py moves them), its
    cubes delivered in product/; the truth's list of the delivered scripts.
    Returns the truth of the cubes."""
    names = SH.file_names(spec)
    with open(os.path.join(dirs["script"], names["scriptforpi"]), "w") as fh:
        fh.write(pp.scriptforpi_standin(spec))
    text = sd_imaging_script(spec)
    spath = os.path.join(dirs["script"], imaging_script_name(spec))
    with open(spath, "w") as fh:
        fh.write(text)
    cal = os.path.join(work, "calibrated")
    for p in split_cals:
        os.replace(p, os.path.join(cal, os.path.basename(p)))
    old = os.getcwd()
    os.chdir(cal)
    try:
        exec(compile(text, spath, "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(old)
    images = {}
    for k in range(len(T.SPWS)):
        name = T.product_name(spec.mous, k)
        if not os.path.isfile(os.path.join(cal, name)):
            raise RuntimeError(f"{os.path.basename(spath)} did not create {name}")
        os.replace(os.path.join(cal, name), os.path.join(dirs["product"], name))
        images[name] = TB.image_truth(os.path.join(cal, f"{T.TARGET.name}_sci.spw{k}.cube.I.sd.image"), k,
                                      "the calibrated ON data (<uid>.ms.split.cal)")
    truth["manual_files"] = {"calibration_scripts": [script_name(eb) for eb in spec.eb_uids],
                             "imaging": imaging_script_name(spec),
                             "casa_version_pin": MS.version_pin(spec)[0]}
    return images


def manual_truth(spec: S.SynthSpec) -> dict:
    """The manual route's part of ``truth['total_power']``."""
    return {
        "restore_task": None, "jyperk_file": None,
        "jyperk_in": {uid: f"script/{script_name(uid)}: jyperk (gencal caltype='amp', gain 1/sqrt(Jy/K))"
                      for uid in spec.eb_uids},
        "table_types": TB.TABLE_TYPES,
        "calapply_interp": {"sky": "linear,linear", "tsys": "linear,linear", "k2jy": "nearest,nearest"},
        "scriptforpi": ("scriptForPI.py runs each scriptForSDCalibration.py in calibrated/<uid>.calibration "
                        "(the ASDM linked as <uid>, applyonly=True) and moves its <uid>.ms.split.cal (the "
                        "ON_SOURCE target autocorrelations, CORRECTED as DATA, in Jy) to calibrated/"),
        "script_steps": STEP_TITLES,
    }
