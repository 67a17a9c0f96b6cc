"""Step bodies of pipeline-calibrated interferometry (the CASA calls are in :mod:`..casasteps`)."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ...atomic import atomic_output, partial_name, remove
from ...delivery.calapply import CalApplyError
from ...log import post
from ..plan import Step
from . import StepContext, body


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


@contextmanager
def _timed(profile: dict, name: str) -> Iterator[None]:
    """Add the wall time of the block to ``profile[name]`` (the step's per-call profile,
    recorded with the step and read by benchmarks/restore.py)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        profile[name] = round(profile.get(name, 0.0) + time.perf_counter() - t0, 3)


@body("caltables")
def caltables(ctx: StepContext, step: Step) -> dict:
    from ..casasteps import extract_caltables
    extract_caltables(step.inputs[0], step.params["tables"], ctx.plan.working)
    return {}


def _fixsyscaltimes(vis: str, extra: dict) -> None:
    """The SACM/JAO pre-step: the observatory's ``fixsyscaltimes`` on the SYSCAL table."""
    try:
        from casarecipes.almahelpers import fixsyscaltimes
    except ImportError:
        msg = (f"{os.path.basename(vis)}: the delivery's restore ran fixsyscaltimes (SACM/JAO "
               "fix), which needs casarecipes (pip install 'almaqa_casa[manual]'); the SYSCAL "
               "times are NOT fixed (the calibrated data are unaffected)")
        _log(msg, "WARN")
        extra.setdefault("warnings", []).append(msg)
        return
    extra["fixsyscaltimes"] = bool(fixsyscaltimes(vis=vis))


@body("ms")
def ms(ctx: StepContext, step: Step) -> dict:
    from .. import casasteps as cs
    from ..renormstep import prepare
    plan, member, uid = ctx.plan, ctx.member, step.eb
    out, fv = step.outputs
    asdm = os.path.abspath(member.raw_asdms[uid])
    tmp = str(partial_name(out))
    extra: dict = {}
    prof: dict = {}
    imp = step.params.get("import") or {}
    try:
        # the BDF flags are not read (bdfflags=False whatever the delivery's restore
        # asked): restoring Pipeline_Final below replaces FLAG and FLAG_ROW of every row
        # (flagmanager merge='replace'), so they would be overwritten unused
        # (tests/restore/test_bdfflags.py)
        with _timed(prof, "importasdm"):
            extra.update(cs.import_asdm(asdm, tmp, lazy=step.params.get("lazy", True),
                                        ocorr_mode=imp.get("ocorr_mode", "ca"),
                                        asis=imp.get("asis", cs.ASIS), bdfflags=False))
        extra["bdfflags"] = {"delivery": bool(imp.get("bdfflags", True)), "read": False}
        cs.copy_asdm_xml(asdm, tmp)
        if step.params.get("fixsyscaltimes"):
            with _timed(prof, "fixsyscaltimes"):
                _fixsyscaltimes(tmp, extra)
        with _timed(prof, "restore_flags"):
            cs.restore_flags(tmp, member.flagversions[uid], data_bytes=member.raw_sizes.get(uid))
        # Pipeline_Final's counts per scan/intent/spw, for the verification (the full MS
        # may be deleted by then: SPACESAVING >= 2)
        from ..verify_io import flag_summary
        with _timed(prof, "flag_summary"):
            extra["pipeline_final_flags"] = flag_summary(tmp)
        # amplitude renormalization (manifest hifa_renorm): table + TARGET lines
        with _timed(prof, "renorm"):
            apps = prepare(tmp, step.params.get("renorm"), member.calapply[uid], plan.working,
                           uid, extra, _log)
        if step.params["route"] == "applycal":
            with _timed(prof, "applycal"):
                extra["applycal_lines"] = cs.apply_calibration(tmp, apps, plan.working)
        remove(fv)
        os.replace(tmp + ".flagversions", fv)
        remove(out)
        os.replace(tmp, out)
        extra["profile"] = prof
    finally:
        remove(tmp)
        remove(tmp + ".flagversions")
    return extra


def _has_corrected(vis: str) -> bool:
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        return "CORRECTED_DATA" in tb.colnames()
    finally:
        tb.close()


def _callib_for(ctx: StepContext, step: Step, vis: str, warnings: list[str]) -> str:
    """The cal library for on-the-fly calibration, or '' once CORRECTED exists.

    When a calapply line cannot be expressed as a cal library (e.g. a
    partial antenna selection) the calibration is applied into the MS
    instead (once), the step splits CORRECTED, and ``warnings`` says so.
    """
    from .. import casasteps as cs
    from ..renormstep import applications
    if step.params.get("route") != "callib":
        return ""
    plan, member, uid = ctx.plan, ctx.member, step.eb
    path = os.path.join(plan.working, f"{uid}.ms.callib.txt")
    # with the renormalization table of the ms step for TARGET, when it wrote one
    apps = (applications(member.calapply[uid], plan.working, uid, vis)
            if step.params.get("renorm") else member.calapply[uid])
    try:
        cs.write_callib(vis, apps, plan.working, path)
        return path
    except CalApplyError as exc:
        if not _has_corrected(vis):
            _log(f"{uid}: {exc}; applying the calibration into {vis} instead", "WARN")
            cs.apply_calibration(vis, apps, plan.working)
        warnings.append(f"{uid}: cal library not possible ({exc}); applycal route used")
        return ""


def _split_calibrated(ctx: StepContext, step: Step, **kw) -> dict:
    """mstransform of the science spws of ``step.inputs[0]``, calibrated on the
    fly (cal library) or from CORRECTED, into ``step.outputs[0]``."""
    from .. import casasteps as cs
    vis = step.inputs[0]
    prof: dict = {}
    spws = cs.science_spws(vis)
    warnings: list[str] = []
    with _timed(prof, "callib"):
        callib = _callib_for(ctx, step, vis, warnings)
    with _timed(prof, "mstransform"), atomic_output(step.outputs[0], overwrite=True) as tmp:
        cs.split_ms(vis, str(tmp), spws, callib=callib, **kw)
    return {"spw": spws, "callib": bool(callib), "warnings": warnings, "profile": prof}


@body("split")
def split(ctx: StepContext, step: Step) -> dict:
    return _split_calibrated(ctx, step, reindex=step.params.get("reindex", False))


@body("targets")
def targets(ctx: StepContext, step: Step) -> dict:
    return _split_calibrated(ctx, step, intent="OBSERVE_TARGET#ON_SOURCE")


@body("contsub")
def contsub(ctx: StepContext, step: Step) -> dict:
    from .. import casasteps as cs
    cont = ctx.member.contdat_parsed       # read and checked when the member was read
    if cont is None:
        raise FileNotFoundError(ctx.member.contdat_error or "no PL file cont.dat found")
    vis = step.inputs[0]
    spec, warns = cs.contsub_spec(vis, cont, fitorder=step.params.get("fitorder", 1))
    with atomic_output(step.outputs[0], overwrite=True) as tmp:
        cs.contsub(vis, str(tmp), spec, fitorder=step.params.get("fitorder", 1))
    return {"fitspec": spec, "warnings": warns}
