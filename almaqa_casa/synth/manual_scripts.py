"""Manually calibrated variant: per-EB ``scriptForCalibration.py`` in the
observatory's style, ``scriptForImagingPrep.py``, ``scriptForImaging.py``.

The generator runs each calibration script itself (from
``calibrated/<uid>.calibration/`` with the ASDM linked as ``<uid>``, as
scriptForPI.py does), so a delivered script is known to work."""
from __future__ import annotations

import os
import shutil

from . import spec as S
from ._casa import casatools
from .archive import write_tgz
from .products import imaging_script  # noqa: F401  (pure; re-exported)

_HEADER = '''# ALMA Data Reduction Script
# $Id: {name} (synthetic, almaqa_casa.synth) $

# Calibration of {uid} ({project}, {mous})
# Generated for a SYNTHETIC delivery: the data were simulated with CASA.

import os
import re
import sys

try:
    importasdm
except NameError:  # plain Python with modular CASA 6 (no casashell globals)
    from casatasks import *  # noqa: F401,F403
    from casatasks import casalog

try:
    import casalith
    casaversion = casalith.version_string()
except ImportError:
    import casatools as _ct
    casaversion = '.'.join(str(v) for v in _ct.utils.utils().version()[:3])

if re.search('^{pin_re}', casaversion) == None:
    sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {pin}')

try:
    applyonly
except NameError:
    applyonly = False

if applyonly != True:
    print('# (diagnostic plots of analysisUtils are not part of this synthetic script)')

thesteps = []
{titles}

try:
    print('List of steps to be executed ...', mysteps)
    thesteps = mysteps
except NameError:
    print('global variable mysteps not set.')
if (thesteps == []):
    thesteps = range(0, len(step_title))
    print('Executing all steps: ', thesteps)
'''


#: The step titles of the interferometric calibration script.
STEP_TITLES = {0: 'Import of the ASDM', 1: 'Listobs', 2: 'A priori flagging', 3: 'Split out science SPWs',
               4: 'Save original flags', 5: 'Additional flagging', 6: 'Putting a model for the calibrators',
               7: 'Bandpass calibration', 8: 'Gain calibration',
               9: 'Application of the bandpass and gain cal tables', 10: 'Split out corrected column',
               11: 'Save flags after applycal'}


def header(spec: S.SynthSpec, uid: str, titles: dict[int, str], name: str = "scriptForCalibration.py") -> str:
    """The observatory's preamble of a per-EB script: CASA version test,
    ``applyonly``, the step titles, ``mysteps``."""
    pin, pin_re = version_pin(spec)
    block = "step_title = {" + (",\n" + " " * 14).join(f"{k}: {v!r}" for k, v in titles.items()) + "}"
    return _HEADER.format(uid=uid, project=spec.project, mous=spec.mous, pin=pin, pin_re=pin_re, name=name,
                          titles=block)


def _step(n: int, body: str) -> str:
    lines = body.strip("\n").split("\n")
    ind = "\n".join("    " + ln if ln else "" for ln in lines)
    return (f"\n# {n}\nmystep = {n}\nif (mystep in thesteps):\n"
            f"    casalog.post('Step '+str(mystep)+' '+step_title[mystep], 'INFO')\n"
            f"    print('Step ', mystep, step_title[mystep])\n\n{ind}\n")


def version_pin(spec: S.SynthSpec):
    if spec.casa_version_pin:
        pin = spec.casa_version_pin
    else:
        pin = ".".join(str(v) for v in casatools.utils.utils().version()[:3])
    return pin, pin  # the observatory writes the version unescaped: re.search('^5.1.1', ...)


def calibration_script(spec: S.SynthSpec, uid: str, info: dict) -> str:
    ms = f"{uid}.ms"
    bp, ph, chk, tgt = S.BANDPASS.name, S.PHASE.name, S.CHECK.name, spec.target.name
    tdm = [i for i, s in enumerate(S.SPWS) if s.kind == "TDM"][0]
    n = S.SPWS[tdm].nchan
    spws = ",".join(str(i) for i in range(len(S.SPWS)))
    ref = f"{S.REF_FREQ_HZ / 1e9}GHz"
    out = header(spec, uid, STEP_TITLES)
    out += _step(0, f"""
if os.path.exists('{ms}'):
    os.system('rm -rf {ms}*')
importasdm('{uid}', vis='{ms}', asis='Antenna Station Receiver Source CalAtmosphere CalWVR CorrelatorMode SBSummary',
           bdfflags=True, lazy=True, process_caldevice=False)
if not os.path.exists('{ms}.flagversions'):
    sys.exit('ERROR in importasdm step: {ms}.flagversions was not created')
""")
    out += _step(1, f"""
os.system('rm -rf {ms}.listobs')
listobs(vis='{ms}', listfile='{ms}.listobs')
""")
    out += _step(2, f"""
flagdata(vis='{ms}', mode='manual', autocorr=True, flagbackup=False)
# (no *POINTING* or *ATMOSPHERE* scans in this EB)
""")
    out += _step(3, f"""
os.system('rm -rf {ms}.split*')
split(vis='{ms}', outputvis='{ms}.split', datacolumn='data', spw='{spws}', keepflags=True)
""")
    out += _step(4, f"""
flagmanager(vis='{ms}.split', mode='save', versionname='Original')
""")
    out += _step(5, f"""
flagdata(vis='{ms}.split', mode='manual', spw='{tdm}:0~3;{n - 4}~{n - 1}', flagbackup=False)
flagdata(vis='{ms}.split', mode='manual', antenna='{info['bad']['antenna']}', scan='{info['bad']['scan']}', flagbackup=False)
""")
    setjy_lines = []
    for src in spec.sources:
        if src.role not in ("bp", "ph", "pol"):
            continue
        import numpy as np
        chi = np.deg2rad(src.pol_angle_deg)
        q = src.pol_frac * src.flux_jy * np.cos(2 * chi)
        u = src.pol_frac * src.flux_jy * np.sin(2 * chi)
        setjy_lines.append(
            f"setjy(vis='{ms}.split', field='{src.name}', standard='manual', "
            f"fluxdensity=[{src.flux_jy!r}, {float(q)!r}, {float(u)!r}, 0.0], spix=[{src.spix!r}], "
            f"reffreq='{ref}', usescratch=False)")
    out += _step(6, "\n".join(setjy_lines))
    cals = ",".join([bp, ph] + ([S.POLCAL.name] if spec.polarization else []))
    out += _step(7, f"""
os.system('rm -rf {ms}.split.ap_pre_bandpass {ms}.split.bandpass')
gaincal(vis='{ms}.split', caltable='{ms}.split.ap_pre_bandpass', field='{bp}', spw='{spws}',
        solint='int', refant='{S.REFANT}', calmode='p', minsnr=2.0)
bandpass(vis='{ms}.split', caltable='{ms}.split.bandpass', field='{bp}', solint='inf', combine='scan',
         refant='{S.REFANT}', solnorm=True, bandtype='B', minsnr=2.0, gaintable='{ms}.split.ap_pre_bandpass')
""")
    out += _step(8, f"""
os.system('rm -rf {ms}.split.phase_int {ms}.split.ampli_inf {ms}.split.phase_inf')
gaincal(vis='{ms}.split', caltable='{ms}.split.phase_int', field='{cals}', solint='int',
        refant='{S.REFANT}', calmode='p', minsnr=2.0, gaintable='{ms}.split.bandpass')
gaincal(vis='{ms}.split', caltable='{ms}.split.ampli_inf', field='{bp},{ph}', solint='inf',
        refant='{S.REFANT}', calmode='a', gaintype='G', minsnr=2.0,
        gaintable=['{ms}.split.bandpass', '{ms}.split.phase_int'])
gaincal(vis='{ms}.split', caltable='{ms}.split.phase_inf', field='{ph}', solint='inf',
        refant='{S.REFANT}', calmode='p', minsnr=2.0, gaintable='{ms}.split.bandpass')
""")
    par = ", parang=True" if spec.polarization else ""
    applies = [
        f"applycal(vis='{ms}.split', field='{bp}', gaintable=['{ms}.split.bandpass', '{ms}.split.phase_int', '{ms}.split.ampli_inf'],\n"
        f"         gainfield=['', '{bp}', '{bp}'], interp=['linear,linear', 'linear', 'linear'], calwt=True, flagbackup=False{par})",
        f"applycal(vis='{ms}.split', field='{ph}', gaintable=['{ms}.split.bandpass', '{ms}.split.phase_int', '{ms}.split.ampli_inf'],\n"
        f"         gainfield=['', '{ph}', '{ph}'], interp=['linear,linear', 'linear', 'linear'], calwt=True, flagbackup=False{par})",
    ]
    if spec.polarization:
        pc = S.POLCAL.name
        applies.append(
            f"applycal(vis='{ms}.split', field='{pc}', gaintable=['{ms}.split.bandpass', '{ms}.split.phase_int', '{ms}.split.ampli_inf'],\n"
            f"         gainfield=['', '{pc}', '{ph}'], interp=['linear,linear', 'linear', 'linear'], calwt=True, flagbackup=False{par})")
    applies.append(
        f"applycal(vis='{ms}.split', field='{chk},{tgt}', gaintable=['{ms}.split.bandpass', '{ms}.split.phase_inf', '{ms}.split.ampli_inf'],\n"
        f"         gainfield=['', '{ph}', '{ph}'], interp=['linear,linear', 'linear', 'linear'], calwt=True, flagbackup=False{par})")
    out += _step(9, "\n".join(applies))
    intents = "CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE,CALIBRATE_PHASE#ON_SOURCE,OBSERVE_CHECK_SOURCE#ON_SOURCE,OBSERVE_TARGET#ON_SOURCE"
    if spec.polarization:
        intents += ",CALIBRATE_POLARIZATION#ON_SOURCE"
    out += _step(10, f"""
os.system('rm -rf {ms}.split.cal')
split(vis='{ms}.split', outputvis='{ms}.split.cal', datacolumn='corrected', intent='{intents}', keepflags=True)
""")
    out += _step(11, f"""
flagmanager(vis='{ms}.split', mode='save', versionname='AfterApplycal')
""")
    return out


def imaging_prep_script(spec: S.SynthSpec) -> str:
    vis = [f"{eb}.ms.split.cal" for eb in spec.eb_uids]
    return f"""# ALMA Data Reduction Script: scriptForImagingPrep.py (synthetic)
# Run from the folder 'calibrated' (scriptForPI.py does this).

import os

try:
    concat
except NameError:
    from casatasks import concat, listobs  # noqa: F401

vislist = {vis!r}

os.system('rm -rf calibrated.ms*')
concat(vis=vislist, concatvis='calibrated.ms')
listobs(vis='calibrated.ms', listfile='calibrated.ms.listobs')
"""


def run_in_workdir(text: str, spath: str, work: str, uid: str, raw: str) -> str:
    """Run one EB's script as scriptForPI.py does: in ``calibrated/<uid>.calibration/``
    with the ASDM linked as ``<uid>`` and ``applyonly=True``.  Returns that
    folder, which holds the ``<uid>.ms.split.cal`` the script must create."""
    wd = os.path.join(work, "calibrated", f"{uid}.calibration")
    os.makedirs(wd)
    os.symlink(os.path.abspath(raw), os.path.join(wd, uid))
    old = os.getcwd()
    os.chdir(wd)
    try:
        ns = {"__name__": "__main__", "applyonly": True}
        exec(compile(text, spath, "exec"), ns)
    except SystemExit as exc:
        raise RuntimeError(f"{os.path.basename(spath)} stopped: {exc}") from None
    finally:
        os.chdir(old)
    if not os.path.isdir(os.path.join(wd, f"{uid}.ms.split.cal")):
        raise RuntimeError(f"{os.path.basename(spath)} did not create {uid}.ms.split.cal")
    return wd


def plots_and_log(uid: str, work: str, wd: str, dirs: dict) -> None:
    """calibration/<uid>.calibration.plots.tgz (a note: no plots for synthetic
    data) and log/<uid>.log.tgz (the script's listobs)."""
    plots = os.path.join(work, f"{uid}.calibration.plots")
    os.makedirs(plots)
    with open(os.path.join(plots, "README.txt"), "w") as fh:
        fh.write(f"Calibration plots of {uid} are not produced for synthetic data.\n")
    write_tgz(os.path.join(dirs["calibration"], f"{uid}.calibration.plots.tgz"),
              [(plots, f"{uid}.calibration.plots")])
    listobs = os.path.join(wd, f"{uid}.ms.listobs")
    logd = os.path.join(work, f"{uid}.log")
    os.makedirs(logd)
    if os.path.isfile(listobs):
        shutil.copy(listobs, logd)
    write_tgz(os.path.join(dirs["log"], f"{uid}.log.tgz"), [(logd, f"{uid}.log")])


def run_eb(spec: S.SynthSpec, k: int, uid: str, raw: str, work: str, dirs: dict, info: dict,
           eb_truth: dict) -> str:
    """Write the EB's calibration script into script/ and run it as
    scriptForPI.py would.  Returns the path of ``<uid>.ms.split.cal``."""
    text = calibration_script(spec, uid, info)
    spath = os.path.join(dirs["script"], f"{uid}.ms.scriptForCalibration.py")
    with open(spath, "w") as fh:
        fh.write(text)
    wd = run_in_workdir(text, spath, work, uid, raw)
    split = os.path.join(wd, f"{uid}.ms.split.cal")
    from .measure import field_ids, target_ratio
    eb_truth["calibrated_target_ratio_per_spw"] = target_ratio(split, spec, "DATA")
    eb_truth["field_ids"] = field_ids(split)
    # calibration/: the tables the script made, and a (small) plots tarball
    tabs = sorted(p for p in os.listdir(wd) if p.startswith(f"{uid}.ms.split.")
                  and p not in (f"{uid}.ms.split.cal",) and not p.endswith(".listobs")
                  and not p.endswith(".flagversions"))
    write_tgz(os.path.join(dirs["calibration"], f"{uid}.calibration.tgz"),
              [(os.path.join(wd, t), f"{uid}.calibration/{t}") for t in tabs])
    eb_truth["caltables"] = tabs
    plots_and_log(uid, work, wd, dirs)
    return split


def write_common(spec: S.SynthSpec, work: str, dirs: dict, truth: dict, split_cals: list[str]) -> None:
    """ImagingPrep (run here, so imaging uses calibrated.ms), scriptForPI stand-in."""
    from . import pipeline_products as pp
    from .shape import file_names
    names = file_names(spec)
    prep = imaging_prep_script(spec)
    with open(os.path.join(dirs["script"], names["scriptForImagingPrep"]), "w") as fh:
        fh.write(prep)
    with open(os.path.join(dirs["script"], names["scriptforpi"]), "w") as fh:
        fh.write(pp.scriptforpi_standin(spec))
    cal = os.path.join(work, "calibrated")
    for s in split_cals:
        dst = os.path.join(cal, os.path.basename(s))
        if os.path.abspath(s) != dst:
            shutil.move(s, dst)
    old = os.getcwd()
    os.chdir(cal)
    try:
        exec(compile(prep, "scriptForImagingPrep.py", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(old)
    cms = os.path.join(cal, "calibrated.ms")
    if not os.path.isdir(cms):
        raise RuntimeError("scriptForImagingPrep.py did not create calibrated.ms")
    split_cals[:] = [cms]
    from .measure import target_ratio
    truth["calibrated_ms_target_ratio_per_spw"] = target_ratio(cms, spec, "DATA")
    truth["manual_files"] = {"imaging_prep": names["scriptForImagingPrep"],
                             "imaging": names["imaging"],
                             "calibration_scripts": [f"{eb}.ms.scriptForCalibration.py" for eb in spec.eb_uids],
                             "casa_version_pin": version_pin(spec)[0]}
