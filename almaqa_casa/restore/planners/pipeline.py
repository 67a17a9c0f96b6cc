"""Planner for pipeline-calibrated interferometry (pure).

Per EB, following scriptForPI.py (restore.md §2.8) and hifa_restoredata
(§4.3) without the pipeline:

``caltables``  extract the EB's session caltables that its calapply.txt names;
``ms``         importasdm with the era's options (lazy; SACM/JAO deliveries:
               without BDF flags, then fixsyscaltimes) -> restore
               Pipeline_Final -> amplitude renormalization table when the
               manifest records hifa_renorm -> applycal (calflagstrict,
               pipeline intents) -> ``working/<uid>.ms``; when the full MS is
               not kept (SPACESAVING >= 2 with a split) the calibration is
               applied on the fly by the next steps instead (cal library);
``split``      science spws -> ``calibrated/<uid>.ms.split.cal``;
``targets``    (DOCONTSUB) ``working/<uid>_targets.ms``;
``contsub``    (DOCONTSUB) ``working/<uid>_targets_line.ms``;
``links``      ``calibrated/rawdata``, ``products``, MS links;
``cleanup``    SPACESAVING deletions;
then, once every EB is done, the PolCal / FluxCal / ImagingPrep scripts
(delivered code, as scriptForPI.py runs them; ``postscripts=False`` skips
them), the SPACESAVING >= 3 deletion, and ``images`` (uncorrected images
from the pbcor products).
"""
from __future__ import annotations

import os

from ...delivery.calapply import caltables
from ...delivery.member import Member
from ..disk import FACTORS, scriptforpi_need
from ..options import RestoreOptions
from ..plan import MemberPlan, PlanError, Step, output_root, peak_bytes
from .common import effective_level, final_cleanup, post_steps

__all__ = ["plan_pipeline"]


def _renorm_params(member: Member, uid: str, working: str, warnings: list[str]) -> dict | None:
    """The ``hifa_renorm`` request of ``uid`` from the manifest, as step parameters.

    ``None`` when the manifest records none; an unreadable request is a
    warning (the restore goes on without the renormalization).
    """
    from ..renormstep import ENGINE, RenormParamError, caltable_path, delivered_renorm_table, parse_request
    e = member.manifest.asdms.get(uid) if member.manifest is not None else None
    if e is None or e.renorm is None:
        return None
    try:
        req = parse_request(e.renorm)
    except RenormParamError as exc:
        warnings.append(f"{uid}: the manifest's amplitude renormalization (hifa_renorm) "
                        f"cannot be read ({exc}); it is NOT applied")
        return None
    out = dict(req.as_dict(), caltable=caltable_path(working, uid), engine=ENGINE)
    delivered = delivered_renorm_table(member.calapply.get(uid, []))
    if delivered:   # PL2024+: the table is delivered and in calapply.txt; never twice
        out.update(apply=False, delivered_table=delivered)
    return out


def _check_ebs(member: Member) -> None:
    m = member.path
    if member.ppr is None and member.restore_script is None:
        raise PlanError(f"{m}/script: no PPR (*PPR*.xml or *pprequest.xml) and no "
                        "casa_piperestorescript.py: the EBs to restore are not known")
    if not member.raw_asdms:
        raise PlanError(f"{m}/raw: no ASDM found (uid*.asdm.sdm); download and unpack "
                        "the raw data into raw/")
    if member.missing:
        raise PlanError(f"{m}: ASDM missing in raw/ for EB(s) the delivery calibrates: "
                        + ", ".join(f"{u} (raw/{u}.asdm.sdm)" for u in member.missing))
    if not member.ebs:
        raise PlanError(f"{m}: no EB to restore")
    for e in member.ebs:
        if e.calapply is None:
            raise PlanError(f"{m}/calibration: {e.uid}.ms.calapply.txt missing")
        if e.flagversions is None:
            raise PlanError(f"{m}/calibration: {e.uid}.ms.flagversions.tgz missing")
        if e.caltables is None:
            found = ", ".join(os.path.basename(p) for p in member.caltables_tgz.values())
            raise PlanError(
                f"{m}/calibration: no caltables tarball for EB {e.uid} (session "
                f"{e.session or 'unknown'}" + (f", from the {e.session_source}" if e.session_source
                                               else "; no manifest, restore script or PPR places it")
                + f"); tarballs found: {found or 'none'}")


def plan_pipeline(member: Member, opts: RestoreOptions, texts: dict[str, str] | None = None,
                  present_version: str = "", lazy: bool = True) -> MemberPlan:
    """Plan the restore of a pipeline-calibrated interferometric member.

    ``texts`` maps the post scripts' paths to their text (for the version
    tests and the renormalization rule); ``present_version`` is the CASA at
    hand ('6.7.6').

    Raises
    ------
    PlanError
        An EB without its ASDM, calibration files or caltables tarball, or
        nothing to restore.
    """
    texts = texts or {}
    _check_ebs(member)
    warnings = list(member.warnings)
    for u in member.semipass:
        warnings.append(f"{u}: ASDM in raw/ without calibration (probably QA semipass data); "
                        "skipped")
    calibrated = output_root(member.path, opts.outdir)
    working = os.path.join(calibrated, "working")
    level = effective_level(member, opts, texts, warnings)
    split_wanted = opts.dosplit or not member.usedimpipe
    docontsub = opts.docontsub or bool(member.selfcal_json)
    if member.selfcal_json and not opts.docontsub:
        warnings.append("self-calibration was used by the pipeline: DOCONTSUB is on "
                        "(as scriptForPI.py from Cycle 10); self-calibration itself is not "
                        "re-applied (it is not recorded in calapply.txt)")
    if docontsub and not member.contdat:
        warnings.append("no PL file cont.dat found. No continuum subtraction performed.")
        docontsub = False
    if docontsub and member.contdat_error:   # before any work, naming file and line
        raise PlanError(f"DOCONTSUB: {member.contdat_error}")
    keep_ms = not (split_wanted and level >= 2)
    route = "applycal" if keep_ms else "callib"
    sacm = member.restore_script.presteps_fixsyscaltimes if member.restore_script else ()
    imp = member.import_opts.as_dict()

    steps: list[Step] = []
    fm = FACTORS
    finals: list[str] = []
    for e in member.ebs:
        uid, raw = e.uid, e.raw_bytes
        ms = os.path.join(working, f"{uid}.ms")
        tables = caltables(member.calapply[uid])
        steps.append(Step(id=f"{uid}:caltables", kind="caltables", eb=uid,
                          inputs=[e.caltables, e.calapply],
                          outputs=[os.path.join(working, t) for t in tables],
                          params={"tables": tables, "session": e.session},
                          note=f"{len(tables)} table(s) of {e.session} "
                               f"({os.path.basename(e.caltables)})"))
        ms_size = raw * (fm["ms_lazy"] if lazy else fm["ms_full"])
        corr = raw * fm["corrected"] if route == "applycal" else 0
        renorm = _renorm_params(member, uid, working, warnings)
        fix = "*" in sacm or uid in sacm
        steps.append(Step(id=f"{uid}:ms", kind="ms", eb=uid,
                          inputs=[e.asdm, e.flagversions, e.calapply],
                          outputs=[ms, ms + ".flagversions"],
                          params={"route": route, "lazy": lazy, "renorm": renorm,
                                  "import": imp, "fixsyscaltimes": fix},
                          adds=int(ms_size + corr + raw * fm["flagversions"]),
                          after=[f"{uid}:caltables"],
                          note=(f"importasdm (ocorr_mode={imp['ocorr_mode']!r}, "
                                f"bdfflags={imp['bdfflags']})"
                                + (", fixsyscaltimes" if fix else "")
                                + ", restore Pipeline_Final"
                                + (", applycal" if route == "applycal" else
                                   "; calibration applied on the fly later"))))
        rn_flag = bool(renorm and renorm["apply"])
        if docontsub:
            tms = os.path.join(working, f"{uid}_targets.ms")
            lms = os.path.join(working, f"{uid}_targets_line.ms")
            steps.append(Step(id=f"{uid}:targets", kind="targets", eb=uid, inputs=[ms],
                              outputs=[tms], params={"route": route, "renorm": rn_flag},
                              adds=int(raw * fm["split"]), after=[f"{uid}:ms"]))
            steps.append(Step(id=f"{uid}:contsub", kind="contsub", eb=uid,
                              inputs=[tms, member.contdat], outputs=[lms],
                              params={"contdat": member.contdat},
                              adds=int(raw * fm["split"]), after=[f"{uid}:targets"]))
        if split_wanted:
            out = os.path.join(calibrated, f"{uid}.ms.split.cal")
            finals.append(out)
            steps.append(Step(id=f"{uid}:split", kind="split", eb=uid, inputs=[ms],
                              outputs=[out], params={"route": route, "reindex": False,
                                                     "renorm": rn_flag},
                              adds=int(raw * fm["split"]), after=[f"{uid}:ms"]))
        links = {os.path.join(calibrated, "rawdata", uid): e.asdm}
        if not split_wanted:
            links[os.path.join(calibrated, f"{uid}.ms")] = ms
            links[os.path.join(calibrated, f"{uid}.ms.flagversions")] = ms + ".flagversions"
        if docontsub:
            for n in (f"{uid}_targets.ms", f"{uid}_targets_line.ms"):
                links[os.path.join(calibrated, n)] = os.path.join(working, n)
        steps.append(Step(id=f"{uid}:links", kind="links", eb=uid, inputs=[],
                          outputs=sorted(links), params={"links": links}))
        if split_wanted and level >= 2:   # scriptForPI: rm -rf <uid>.ms after the split
            steps.append(Step(id=f"{uid}:cleanup", kind="cleanup", eb=uid, inputs=[],
                              outputs=[], deletes=[ms],
                              after=[s.id for s in steps if s.eb == uid and s.kind != "links"]))
    # member-level
    steps.append(Step(id="products-link", kind="links", eb="", inputs=[],
                      outputs=[os.path.join(calibrated, "products")],
                      params={"links": {os.path.join(calibrated, "products"):
                                        os.path.join(member.path, "calibration")}}))
    notices: list[str] = []
    blocked: list[tuple[str, list[dict]]] = []
    eb_ids = [s.id for s in steps if s.eb]
    post = post_steps(member, calibrated, texts, present_version, eb_ids, notices, blocked) \
        if opts.postscripts else []
    if member.post_scripts and not opts.postscripts:
        warnings.append("postscripts=False: the delivered "
                        + ", ".join(os.path.basename(p) for _, p in member.post_order)
                        + " not run (scriptForPI.py runs them)")
    steps += post
    cleanup = final_cleanup(calibrated, finals, level, bool(post),
                            [s.id for s in post] or eb_ids, warnings)
    steps += cleanup
    if opts.images:
        imdir = os.path.abspath(opts.imagedir) if opts.imagedir else os.path.join(calibrated,
                                                                                  "images")
        for pbcor, pb in member.products:
            name = os.path.basename(pbcor).replace(".pbcor.fits", ".fits")
            steps.append(Step(id=f"image:{name}", kind="image", eb="", inputs=[pbcor, pb],
                              outputs=[os.path.join(imdir, name)]))
        warnings += member.problems
    raw_total = sum(e.raw_bytes for e in member.ebs)
    peak, final = peak_bytes(steps, opts.nprocs)
    sfp = scriptforpi_need(raw_total, opts.spacesaving, bool(member.post_scripts))
    summary = member.summary()
    return MemberPlan(
        member=member.path, mous=member.mous, mode="pipeline", calibrated=calibrated,
        working=working, ebs=member.eb_uids, semipass=list(member.semipass),
        missing=list(member.missing), steps=steps, warnings=warnings, raw_bytes=raw_total,
        peak_bytes=peak, final_bytes=final, scriptforpi_bytes=sfp, route=route,
        options={"spacesaving": opts.spacesaving, "dosplit": opts.dosplit,
                 "docontsub": docontsub, "split": split_wanted, "images": opts.images,
                 "nprocs": opts.nprocs, "usedimpipe": member.usedimpipe,
                 "postscripts": opts.postscripts, "level": level},
        notices=notices, blocked=blocked, delivery=summary, check_bytes=peak,
        needs_all_ebs=[s.id for s in post + cleanup])
