"""Pipeline-style flagging and calibration solves on an imported EB, and the
``calapply.txt`` lines that apply them."""
from __future__ import annotations

import os
import shutil

from . import spec as S
from ._casa import casatasks
from .archive import write_tgz
from .calplan import (  # noqa: F401  (re-exported: the generator's one import)
    PIPELINE_WORKDIR,
    PL_TO_CASA,
    POLCAL_KINDS,
    SPW_LIST,
    SPW_TOKEN,
    calapply_entries,
    caltable_names,
    flag_commands,
    format_calapply,
)


def apply_flags(vis: str, info: dict) -> None:
    tdm = [i for i, s in enumerate(S.SPWS) if s.kind == "TDM"][0]
    n = S.SPWS[tdm].nchan
    casatasks.flagdata(vis=vis, mode="manual", autocorr=True, flagbackup=False)
    casatasks.flagdata(vis=vis, mode="manual", spw=f"{tdm}:0~3;{n - 4}~{n - 1}", flagbackup=False)
    casatasks.flagdata(vis=vis, mode="manual", antenna=info["bad"]["antenna"],
                       scan=str(info["bad"]["scan"]), flagbackup=False)


def setjy_calibrators(vis: str, spec: S.SynthSpec) -> None:
    for src in spec.sources:
        if src.role not in ("bp", "ph", "pol"):
            continue
        i = src.flux_jy
        import numpy as np
        chi = np.deg2rad(src.pol_angle_deg)
        q = src.pol_frac * i * np.cos(2 * chi)
        u = src.pol_frac * i * np.sin(2 * chi)
        casatasks.setjy(vis=vis, field=src.name, standard="manual", fluxdensity=[i, q, u, 0.0],
                        spix=[src.spix], reffreq=f"{S.REF_FREQ_HZ / 1e9}GHz", usescratch=False)


def solve(vis: str, outdir: str, uid: str, spec: S.SynthSpec) -> dict[str, str]:
    """Solve the pipeline's tables into ``outdir``; returns name -> path.
    (hifa_polcal's session tables come later: :mod:`.polarization`.)"""
    names = {k: v for k, v in caltable_names(uid, spec).items() if k not in POLCAL_KINDS}
    paths = {k: os.path.join(outdir, v) for k, v in names.items()}
    for p in paths.values():
        if os.path.exists(p):
            shutil.rmtree(p)
    bp, ph = S.BANDPASS.name, S.PHASE.name
    cals = [bp, ph] + ([S.POLCAL.name] if spec.polarization else [])
    setjy_calibrators(vis, spec)
    pre = os.path.join(outdir, f"{uid}.ms.hifa_bandpass.s9_3.{SPW_TOKEN}.channel.solintint.gpcal.tbl")
    casatasks.gaincal(vis=vis, caltable=pre, field=bp, intent="CALIBRATE_BANDPASS#ON_SOURCE",
                      solint="int", calmode="p", refant=S.REFANT, minsnr=2.0)
    casatasks.bandpass(vis=vis, caltable=paths["bcal"], field=bp, solint="inf", combine="scan",
                       bandtype="B", solnorm=True, refant=S.REFANT, minsnr=2.0, gaintable=[pre])
    casatasks.gaincal(vis=vis, caltable=paths["gpcal_int"], field=",".join(cals), solint="int",
                      calmode="p", refant=S.REFANT, minsnr=2.0, gaintable=[paths["bcal"]])
    casatasks.gaincal(vis=vis, caltable=paths["gpcal_inf"], field=ph, solint="inf",
                      calmode="p", refant=S.REFANT, minsnr=2.0, gaintable=[paths["bcal"]])
    casatasks.gaincal(vis=vis, caltable=paths["gacal"], field=",".join([bp, ph]), solint="inf",
                      calmode="a", gaintype="G", refant=S.REFANT, minsnr=2.0,
                      gaintable=[paths["bcal"], paths["gpcal_int"]], interp=["linear,linear", "linear"])
    shutil.rmtree(pre, ignore_errors=True)
    for k, p in paths.items():
        if not os.path.isdir(p):
            raise RuntimeError(f"calibration solve did not write {p}")
    return paths


def apply(vis: str, entries: list[dict], parang: bool = False) -> None:
    """applycal each entry on ``vis`` (paths in ``entries`` must exist)."""
    for d in entries:
        intent = ",".join(PL_TO_CASA[i] for i in d["intent"].split(","))
        casatasks.applycal(vis=vis, field=d["field"], intent=intent, spw=d["spw"],
                           antenna=d["antenna"], gaintable=d["gaintable"], gainfield=d["gainfield"],
                           spwmap=d["spwmap"], interp=d["interp"], calwt=d["calwt"],
                           parang=parang, applymode="calflagstrict", flagbackup=False)


def flagversions_tgz(vis: str, out: str, uid: str) -> str:
    """``<uid>.ms.flagversions.tgz`` with ``flags.Pipeline_Final`` only."""
    casatasks.flagmanager(vis=vis, mode="save", versionname="Pipeline_Final",
                          comment="Final pipeline flags")
    fv = vis + ".flagversions"
    src = os.path.join(fv, "flags.Pipeline_Final")
    if not os.path.isdir(src):
        raise RuntimeError(f"flagmanager did not save {src}")
    stage = out + ".d"
    shutil.rmtree(stage, ignore_errors=True)
    d = os.path.join(stage, f"{uid}.ms.flagversions")
    os.makedirs(d)
    shutil.copytree(src, os.path.join(d, "flags.Pipeline_Final"))
    with open(os.path.join(d, "FLAG_VERSION_LIST"), "w") as fh:
        fh.write("Pipeline_Final : Final pipeline flags\n")
    write_tgz(out, [(d, f"{uid}.ms.flagversions")])
    shutil.rmtree(stage)
    return out
