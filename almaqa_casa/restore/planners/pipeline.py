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
``selfcal``    (DOCONTSUB, Cycle 10+) hif_selfcal's restore-only mode: the
               self-calibration tables of selfcal.json (auxproducts.tgz)
               applied to the targets MSs of the self-calibrated targets;
``links``      ``calibrated/rawdata``, ``products``, MS links;
``cleanup``    SPACESAVING deletions;
then, once every EB is done, the PolCal / FluxCal / ImagingPrep scripts
(delivered code, as scriptForPI.py runs them; ``postscripts=False`` skips
them), the SPACESAVING >= 3 deletion, and ``images`` (uncorrected images
from the pbcor products).

DOCONTSUB follows scriptForPI.py (seed §5.7): from Cycle 10 it is on when the
pipeline self-calibrated, i.e. when selfcal.json lists at least one
self-calibrated target (an empty ``scal_targets`` turns nothing on), unless
DOCONTSUB=False is given.  Polarization deliveries (a ``.hifa_polcal.`` table
in calapply.txt) are applied with ``parang=True``, which a cal library
cannot express: they take the applycal route.
"""
from __future__ import annotations

import os

from ...delivery.member import Member
from ...delivery.selfcal import SelfcalRecord
from ..disk import FACTORS, scriptforpi_need
from ..options import RestoreOptions
from ..plan import MemberPlan, PlanError, Step, output_root, peak_bytes
from .common import caltables_step, effective_level, final_cleanup, post_steps

__all__ = ["plan_pipeline", "decide_docontsub", "uses_polcal", "POLCAL_TOKEN", "SELFCAL_MARKER"]

#: hifa_restoredata applies parang=True when a table of hifa_polcal is applied.
POLCAL_TOKEN = ".hifa_polcal."
#: Written inside a targets MS once the self-calibration is applied to it.
SELFCAL_MARKER = ".almaqa_selfcal.json"


def uses_polcal(member: Member) -> bool:
    """A table of hifa_polcal in any calapply line: the restore needs ``parang=True``."""
    return any(POLCAL_TOKEN in os.path.basename(t) for apps in member.calapply.values()
               for a in apps for t in a.gaintable)


def decide_docontsub(member: Member, opts: RestoreOptions) -> tuple[bool, str]:
    """DOCONTSUB and why (pure).

    Given (parameter or global): as given.  Unset: on when the pipeline
    self-calibrated a target (selfcal.json lists one), as scriptForPI.py
    from Cycle 10; a selfcal.json whose ``scal_targets`` is empty (or
    self-calibrated nothing) leaves it off.  An unreadable selfcal.json is a
    :class:`PlanError` naming file and line, unless DOCONTSUB=False.
    """
    given = dict(opts.sources).get("docontsub", "default") != "default"
    if given and not opts.docontsub:
        return False, "DOCONTSUB=False"
    if member.selfcal_error:
        raise PlanError(f"self-calibration record: {member.selfcal_error} (docontsub=False "
                        "restores without the continuum subtraction and self-calibration)")
    if given:
        return True, "DOCONTSUB=True"
    sc = member.selfcal
    if sc is not None and sc.calibrated_targets:
        return True, ("the pipeline self-calibrated " + ", ".join(
            t.field for t in sc.calibrated_targets) + " (selfcal.json): DOCONTSUB is on, as "
                      "scriptForPI.py from Cycle 10")
    return False, "not asked"


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
    docontsub, why = decide_docontsub(member, opts)
    if docontsub and not member.contdat:
        warnings.append("no PL file cont.dat found. No continuum subtraction performed.")
        docontsub, why = False, "no cont.dat"
    if docontsub and member.contdat_error:   # before any work, naming file and line
        raise PlanError(f"DOCONTSUB: {member.contdat_error}")
    scal = _selfcal_plan(member, docontsub, why, working, warnings)
    keep_ms = not (split_wanted and level >= 2)
    parang = uses_polcal(member)
    route = "applycal" if keep_ms or parang else "callib"
    if parang and not keep_ms:
        warnings.append("polarization calibration (hifa_polcal tables) is applied with "
                        "parang=True, which a cal library cannot express: the calibration is "
                        "applied into the MS (applycal route) before the split")
    sacm = member.restore_script.presteps_fixsyscaltimes if member.restore_script else ()
    imp = member.import_opts.as_dict()

    steps: list[Step] = []
    fm = FACTORS
    finals: list[str] = []
    for e in member.ebs:
        uid, raw = e.uid, e.raw_bytes
        ms = os.path.join(working, f"{uid}.ms")
        steps.append(caltables_step(member, e, working))
        ms_size = raw * (fm["ms_lazy"] if lazy else fm["ms_full"])
        corr = raw * fm["corrected"] if route == "applycal" else 0
        renorm = _renorm_params(member, uid, working, warnings)
        fix = "*" in sacm or uid in sacm
        steps.append(Step(id=f"{uid}:ms", kind="ms", eb=uid,
                          inputs=[e.asdm, e.flagversions, e.calapply],
                          outputs=[ms, ms + ".flagversions"],
                          params={"route": route, "lazy": lazy, "renorm": renorm,
                                  "import": imp, "fixsyscaltimes": fix,
                                  **({"parang": True} if parang else {})},
                          adds=int(ms_size + corr + raw * fm["flagversions"]),
                          after=[f"{uid}:caltables"],
                          note=(f"importasdm (ocorr_mode={imp['ocorr_mode']!r}, BDF flags "
                                "not read: Pipeline_Final replaces them)"
                                + (", fixsyscaltimes" if fix else "")
                                + ", restore Pipeline_Final"
                                + (", applycal" + (" with parang=True (hifa_polcal tables)"
                                                   if parang else "")
                                   if route == "applycal" else
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
            if scal is not None:
                steps += _selfcal_steps(scal, uid, tms, lms, raw)
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
    summary["docontsub"] = {"on": docontsub, "why": why}
    summary["parang"] = parang
    if member.selfcal is not None or scal is not None:
        summary["selfcal"] = _selfcal_summary(member.selfcal, scal, steps)
    return MemberPlan(
        member=member.path, mous=member.mous, mode="pipeline", calibrated=calibrated,
        working=working, ebs=member.eb_uids, semipass=list(member.semipass),
        missing=list(member.missing), steps=steps, warnings=warnings, raw_bytes=raw_total,
        peak_bytes=peak, final_bytes=final, scriptforpi_bytes=sfp, route=route,
        options={"spacesaving": opts.spacesaving, "dosplit": opts.dosplit,
                 "docontsub": docontsub, "split": split_wanted, "images": opts.images,
                 "parang": parang,
                 "nprocs": opts.nprocs, "usedimpipe": member.usedimpipe,
                 "postscripts": opts.postscripts, "level": level},
        notices=notices, blocked=blocked, delivery=summary, check_bytes=peak,
        needs_all_ebs=[s.id for s in post + cleanup])


# ---- hif_selfcal's restore-only mode ------------------------------------------------------
def _selfcal_plan(member: Member, docontsub: bool, why: str, working: str,
                  warnings: list[str]) -> dict | None:
    """What the self-calibration restore needs, or None (nothing to re-apply).

    The tables come from where selfcal.json is: its auxproducts.tgz, or the
    folder of a loose selfcal.json.  A table the JSON names but the
    delivery lacks stops the plan (the pipeline would silently skip the
    self-calibration: the data would not be those of the ``.selfcal.`` images).
    """
    sc: SelfcalRecord | None = member.selfcal
    if sc is None or not sc.calibrated_targets:
        return None
    if not docontsub:
        warnings.append("selfcal.json: the pipeline self-calibrated " + ", ".join(
            t.field for t in sc.calibrated_targets) + f"; {why}: the targets MSs, and with them "
            "the self-calibration, are not made")
        return None
    ref = member.selfcal_json
    if "::" in ref:
        tgz, _name = ref.split("::", 1)
        have = set(member.aux_members.get(tgz, ()))
        missing = [t for t in sc.tables if t not in have and not any(
            n.startswith(t + "/") for n in have)]
        source = {"tgz": tgz}
    else:
        root = os.path.dirname(ref)
        missing = [t for t in sc.tables if not os.path.isdir(os.path.join(root, t))]
        source = {"folder": root}
    if missing:
        raise PlanError(f"{ref}: self-calibration table(s) named there are not in the delivery "
                        f"({', '.join(missing)}); the self-calibrated data cannot be restored "
                        "(docontsub=False restores without them)")
    return {"record": sc, "source": source, "tabledir": os.path.join(working, "selfcal")}


def _selfcal_steps(scal: dict, uid: str, tms: str, lms: str, raw: int) -> list[Step]:
    """One ``selfcal`` step per EB whose targets MSs the JSON self-calibrates."""
    sc: SelfcalRecord = scal["record"]
    names = [os.path.basename(tms), os.path.basename(lms)]
    apps = sc.applications(names)
    if not apps:
        return []
    tables = sorted({t for a in apps for t in a.gaintable})
    fields = list(dict.fromkeys(a.field for a in apps))
    return [Step(
        id=f"{uid}:selfcal", kind="selfcal", eb=uid, inputs=[tms, lms],
        outputs=[os.path.join(tms, SELFCAL_MARKER), os.path.join(lms, SELFCAL_MARKER)],
        params={"applications": [a.as_dict() for a in apps], "tables": tables,
                "json": sc.source, "tabledir": os.path.join(scal["tabledir"], uid), **scal["source"]},
        adds=int(raw * FACTORS["corrected"]), transient=int(raw * FACTORS["split"]),
        after=[f"{uid}:contsub"],
        note=(f"hif_selfcal restore: {len(tables)} self-calibration table(s) of "
              f"{', '.join(fields)} applied to {', '.join(names)} (CORRECTED; calwt=False, "
              "applymode='calflag', intent TARGET)"))]


def _selfcal_summary(sc: SelfcalRecord | None, scal: dict | None, steps: list[Step]) -> dict:
    """The plan's view of self-calibration: per target, the EBs and tables planned."""
    by_field: dict[str, dict] = {}
    for s in steps:
        if s.kind != "selfcal":
            continue
        for a in s.params["applications"]:
            f = by_field.setdefault(a["field"], {"ebs": {}})
            e = f["ebs"].setdefault(s.eb, {"tables": [], "ms": []})
            e["tables"] = sorted(set(e["tables"]) | set(a["gaintable"]))
            e["ms"] = sorted(set(e["ms"]) | {a["vis"]})
    targets = []
    for t in (sc.targets if sc else ()):
        planned = by_field.get(t.field, {"ebs": {}})
        targets.append({"field": t.field, "spw": t.spw, "self_calibrated_by_pipeline": t.calibrated,
                        "planned": bool(planned["ebs"]), "applied": False,
                        "tables": sorted({x for e in planned["ebs"].values() for x in e["tables"]}),
                        "ebs": planned["ebs"]})
    return {"json": sc.source if sc else "", "targets": targets,
            "self_calibrated_targets": [t.field for t in (sc.calibrated_targets if sc else [])],
            "applies": scal is not None and bool(by_field)}
