"""Planner for manually calibrated deliveries (pure): run the delivered per-EB scripts.

Manually calibrated deliveries carry one ``<uid>.ms.scriptForCalibration.py``
per EB that re-solves the calibration from the ASDM, and optionally
PolCal / FluxCal / ImagingPrep scripts.  Following scriptForPI.py
(restore.md §2.3, §2.7, §2.9):

* EBs in scriptForPI's chronological UID order;
* ``<uid>:script``: in ``calibrated/<uid>.calibration/`` (the ASDM linked as
  ``<uid>``, ``calibration/*.eph`` linked) the script runs with
  ``applyonly=True``; its ``<uid>.ms.split.cal`` is moved to ``calibrated/``;
* ``<uid>:cleanup``: SPACESAVING >= 1 removes ``<uid>.ms.split``, >= 2 also
  ``<uid>.ms``;
* the post scripts from ``calibrated/`` in scriptForPI's order, then
  SPACESAVING >= 3 removes the ``*.ms.split.cal`` once ``calibrated.ms`` exists.

The disk check uses scriptForPI.py's budget: what delivered scripts write
cannot be predicted.  A script whose CASA version test stops in this CASA is
listed in ``plan.blocked``: the restore refuses before any work unless
``ignoreversion=True``.
"""
from __future__ import annotations

import os

from ...delivery.member import Member
from ..disk import scriptforpi_need
from ..options import RestoreOptions
from ..plan import DELIVERED_CODE_NOTICE, MemberPlan, PlanError, Step, output_root
from .common import effective_level, final_cleanup, guard_dicts, post_steps

__all__ = ["plan_manual"]


def _script_kind(script: str) -> str:
    """``scriptForCalibration`` or ``scriptForSDCalibration`` (total power): the
    name of ``<uid>.ms.<kind>.py``, which names the script's log."""
    return os.path.basename(script).removesuffix(".py").rsplit(".", 1)[-1]


def plan_manual(member: Member, opts: RestoreOptions, texts: dict[str, str],
                ephemerides: list[str], present_version: str) -> MemberPlan:
    """Plan the manual restore of one member.

    Parameters
    ----------
    texts
        Script path -> text (for the version tests).
    ephemerides
        Paths of ``calibration/*.eph`` (linked into every working folder).
    present_version
        The CASA at hand, '6.7.6'.

    Raises
    ------
    PlanError
        No scripts, or an EB with a script but without its ASDM.
    """
    m = member.path
    if not member.manual_scripts:
        raise PlanError(f"{m}/script: no *uid*.ms.scriptForCalibration.py "
                        "(not a manually calibrated delivery)")
    if member.missing:
        raise PlanError(f"{m}: ASDM missing in raw/ for EB(s) with a calibration script: "
                        + ", ".join(f"{u} (raw/{u}.asdm.sdm)" for u in member.missing))
    warnings = list(member.warnings)
    warnings += [f"{u}: ASDM in raw/ without a calibration script (probably QA semipass data); "
                 "not restored" for u in member.semipass]
    calibrated = output_root(m, opts.outdir)
    level = effective_level(member, opts, texts, warnings)
    notices = [DELIVERED_CODE_NOTICE]
    blocked: list[tuple[str, list[dict]]] = []
    steps: list[Step] = []
    finals = []
    for e in member.ebs:
        uid = e.uid
        wd = os.path.join(calibrated, f"{uid}.calibration")
        links = {os.path.join(wd, uid): os.path.relpath(e.asdm, wd)}
        for eph in ephemerides:
            links[os.path.join(wd, os.path.basename(eph))] = os.path.relpath(eph, wd)
        guards, stops = guard_dicts(texts.get(e.script, ""), present_version)
        if stops:
            blocked.append((e.script, stops))
        final = os.path.join(calibrated, f"{uid}.ms.split.cal")
        finals.append(final)
        steps.append(Step(
            id=f"{uid}:script", kind="manual-eb", eb=uid, inputs=[e.asdm, e.script],
            outputs=[final], executes_code=True,
            params={"script": e.script, "workdir": wd, "links": links, "guards": guards,
                    "log": os.path.join(wd, f"{uid}.{_script_kind(e.script)}.log"),
                    "output": os.path.join(wd, f"{uid}.ms.split.cal")},
            note=f"run {os.path.basename(e.script)} (applyonly=True) in {wd}; move "
                 f"{uid}.ms.split.cal to {calibrated}"))
        deletes = []
        if level >= 1:
            deletes.append(os.path.join(wd, f"{uid}.ms.split"))
        if level >= 2:
            deletes.append(os.path.join(wd, f"{uid}.ms"))
        if deletes:
            steps.append(Step(id=f"{uid}:cleanup", kind="cleanup", eb=uid, inputs=[],
                              outputs=[], deletes=deletes, after=[f"{uid}:script"]))
    eb_ids = [s.id for s in steps]
    post = post_steps(member, calibrated, texts, present_version, eb_ids, notices, blocked)
    steps += post
    cleanup = final_cleanup(calibrated, finals, level,
                            any(k in ("scriptForImagingPrep.py", "scriptForFluxCalibration.py")
                                for k, _ in member.post_order),
                            [s.id for s in post] or eb_ids, warnings)
    steps += cleanup
    raw = sum(e.raw_bytes for e in member.ebs)
    need = scriptforpi_need(raw, opts.spacesaving, bool(post))
    return MemberPlan(
        member=m, mous=member.mous, mode="manual", calibrated=calibrated, working=calibrated,
        ebs=member.eb_uids, semipass=list(member.semipass), missing=list(member.missing),
        steps=steps, warnings=warnings, raw_bytes=raw, peak_bytes=need or 0, final_bytes=0,
        scriptforpi_bytes=need, route="scripts",
        options={"spacesaving": opts.spacesaving, "level": level, "usems": opts.usems,
                 "ignoreversion": opts.ignoreversion, "dryrun": opts.dryrun, "nprocs": 1},
        notices=notices, blocked=blocked, delivery=member.summary(), check_bytes=need,
        needs_all_ebs=[s.id for s in post + cleanup])
