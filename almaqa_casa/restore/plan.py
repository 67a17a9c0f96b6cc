"""The restore plan of one member (pure: data in, data out, no I/O).

A plan is a list of :class:`Step` s with their inputs, outputs and predicted
size, the deletions SPACESAVING asks for, and the disk estimate.  The
executor runs it; ``dryrun=True`` prints it.

Pipeline path, per EB, following scriptForPI.py (restore.md §2.8) and
hifa_restoredata (§4.3) without the pipeline:

``caltables``  extract the session caltables the calapply.txt names;
``ms``         importasdm (lazy) -> restore Pipeline_Final -> amplitude
               renormalization table when the manifest records hifa_renorm
               (:mod:`.renormstep`) -> applycal (calflagstrict, pipeline
               intents) -> ``working/<uid>.ms``;
               when the full MS is not kept (SPACESAVING >= 2 with a split)
               the calibration is not written into it but applied on the
               fly by the next steps (cal library, ``docallib=True``);
``split``      science spws -> ``calibrated/<uid>.ms.split.cal``;
``targets``    (DOCONTSUB) ``working/<uid>_targets.ms``;
``contsub``    (DOCONTSUB) ``working/<uid>_targets_line.ms`` (uvcontsub);
``links``      ``calibrated/rawdata``, ``products``, MS links;
``cleanup``    SPACESAVING deletions;
``images``     (images=True) uncorrected images from the pbcor products.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..errors import AlmaqaError
from .discover import MemberInfo, match_ebs, uid_sort_key
from .disk import FACTORS, MARGIN, fmt_bytes, scriptforpi_need
from .options import RestoreOptions

__all__ = ["MemberPlan", "PlanError", "Step", "format_plan", "make_plan"]


class PlanError(AlmaqaError, ValueError):
    """The delivery cannot be restored as asked; the message says why."""


@dataclasses.dataclass
class Step:
    id: str
    kind: str
    eb: str
    inputs: list[str]
    outputs: list[str]
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    adds: int = 0          # bytes the outputs occupy
    transient: int = 0     # bytes used while running (freed at the end)
    deletes: list[str] = dataclasses.field(default_factory=list)
    after: list[str] = dataclasses.field(default_factory=list)   # step ids it needs

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class MemberPlan:
    member: str
    mous: str
    mode: str
    calibrated: str
    working: str
    ebs: list[str]
    semipass: list[str]
    missing: list[str]
    steps: list[Step]
    warnings: list[str]
    raw_bytes: int
    peak_bytes: int
    final_bytes: int
    scriptforpi_bytes: int | None
    route: str
    options: dict

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["steps"] = [s.as_dict() for s in self.steps]
        return d


def _peak(steps: list[Step], nprocs: int) -> tuple[int, int]:
    """(peak, final) bytes when the steps run in order (EBs up to ``nprocs`` at once)."""
    by_eb: dict[str, list[Step]] = {}
    for s in steps:
        by_eb.setdefault(s.eb, []).append(s)
    sizes = {o: s.adds // max(len(s.outputs), 1) for s in steps for o in s.outputs}
    eb_peaks = []
    eb_final = 0
    for eb, ss in by_eb.items():
        cur = peak = 0
        for s in ss:
            peak = max(peak, cur + s.adds + s.transient)
            cur += s.adds
            cur -= sum(sizes.get(d, 0) for d in s.deletes)
        eb_peaks.append((peak, cur))
        eb_final += cur
    eb_peaks.sort(reverse=True)
    running = eb_peaks[:max(nprocs, 1)]
    # EBs not running at the peak have already finished: their final size counts
    others = sum(f for _, f in eb_peaks[max(nprocs, 1):])
    peak = sum(p for p, _ in running) + others
    return int(peak * MARGIN), int(eb_final)


def make_plan(info: MemberInfo, opts: RestoreOptions, lazy: bool = True) -> MemberPlan:
    """Plan the pipeline-path restore of one member.

    Raises
    ------
    PlanError
        Not a pipeline-calibrated member, no PPR, an EB without its ASDM or
        calibration files, or nothing left to restore.
    """
    member = info.path
    if info.calibration != "pipeline":
        raise PlanError(f"{member}: not a pipeline-calibrated delivery "
                        f"(calibration: {info.calibration})")
    if info.ppr is None:
        raise PlanError(f"{member}: no PPR (*PPR*.xml or *pprequest.xml) in script/")
    if not info.raw_asdms:
        raise PlanError(f"{member}/raw: no ASDM found (uid*.asdm.sdm); download and unpack "
                        "the raw data into raw/")
    wanted = sorted(info.ppr.asdms, key=uid_sort_key)
    ebs, semipass, missing = match_ebs(wanted, sorted(info.raw_asdms, key=uid_sort_key))
    warnings: list[str] = []
    for u in semipass:
        warnings.append(f"{u}: ASDM in raw/ without calibration (probably QA semipass data); "
                        "skipped")
    if missing:
        raise PlanError(f"{member}: ASDM missing in raw/ for EB(s) listed in the PPR: "
                        + ", ".join(f"{u} (raw/{u}.asdm.sdm)" for u in missing))
    if not ebs:
        raise PlanError(f"{member}: no EB to restore")
    for u in ebs:
        if u not in info.calapply:
            raise PlanError(f"{member}/calibration: {u}.ms.calapply.txt missing")
        if u not in info.flagversions:
            raise PlanError(f"{member}/calibration: {u}.ms.flagversions.tgz missing")

    outdir = opts.outdir or os.path.join(member, "calibrated")
    calibrated = os.path.abspath(outdir)
    working = os.path.join(calibrated, "working")
    level = opts.level
    split_wanted = opts.dosplit or not info.usedimpipe
    docontsub = opts.docontsub or bool(info.selfcal_json)
    if info.selfcal_json and not opts.docontsub:
        warnings.append("self-calibration was used by the pipeline: DOCONTSUB is on "
                        "(as scriptForPI.py from Cycle 10); self-calibration itself is not "
                        "re-applied (it is not recorded in calapply.txt)")
    if docontsub and not info.contdat and not info.auxproducts:
        warnings.append("no PL file cont.dat found. No continuum subtraction performed.")
        docontsub = False
    keep_ms = not (split_wanted and level >= 2)
    route = "applycal" if keep_ms else "callib"

    steps: list[Step] = []
    fm = FACTORS
    for uid in ebs:
        raw = info.raw_sizes.get(uid, 0)
        asdm = info.raw_asdms[uid]
        ms = os.path.join(working, f"{uid}.ms")
        apps = info.calapply[uid]
        session = info.sessions.get(uid) or ("default" if "default" in info.caltables_tgz else
                                             next(iter(info.caltables_tgz), ""))
        tgz = info.caltables_tgz.get(session) or (next(iter(info.caltables_tgz.values()))
                                                  if len(info.caltables_tgz) == 1 else "")
        if not tgz:
            raise PlanError(f"{member}/calibration: no caltables tarball for {uid} "
                            f"(session {session or '?'}; found: "
                            f"{', '.join(sorted(info.caltables_tgz)) or 'none'})")
        from ..delivery.calapply import caltables
        tables = caltables(apps)
        tab_out = [os.path.join(working, t) for t in tables]
        steps.append(Step(id=f"{uid}:caltables", kind="caltables", eb=uid,
                          inputs=[tgz, info.calapply_paths[uid]], outputs=tab_out,
                          params={"tables": tables, "session": session}))
        ms_size = raw * (fm["ms_lazy"] if lazy else fm["ms_full"])
        corr = raw * fm["corrected"] if route == "applycal" else 0
        renorm = _renorm_params(info, uid, working, warnings)
        steps.append(Step(id=f"{uid}:ms", kind="ms", eb=uid,
                          inputs=[asdm, info.flagversions[uid], info.calapply_paths[uid]],
                          outputs=[ms, ms + ".flagversions"],
                          params={"route": route, "lazy": lazy, "renorm": renorm},
                          adds=int(ms_size + corr + raw * fm["flagversions"]),
                          after=[f"{uid}:caltables"]))
        # steps that calibrate on the fly apply the renormalization table too
        rn_flag = bool(renorm and renorm["apply"])
        if docontsub:
            tms = os.path.join(working, f"{uid}_targets.ms")
            lms = os.path.join(working, f"{uid}_targets_line.ms")
            steps.append(Step(id=f"{uid}:targets", kind="targets", eb=uid, inputs=[ms],
                              outputs=[tms], params={"route": route, "renorm": rn_flag},
                              adds=int(raw * fm["split"]), after=[f"{uid}:ms"]))
            steps.append(Step(id=f"{uid}:contsub", kind="contsub", eb=uid,
                              inputs=[tms, info.contdat or "auxproducts:cont.dat"],
                              outputs=[lms], params={"contdat": info.contdat,
                                                     "auxproducts": info.auxproducts},
                              adds=int(raw * fm["split"]), after=[f"{uid}:targets"]))
        if split_wanted:
            out = os.path.join(calibrated, f"{uid}.ms.split.cal")
            steps.append(Step(id=f"{uid}:split", kind="split", eb=uid, inputs=[ms],
                              outputs=[out], params={"route": route, "reindex": False,
                                                     "renorm": rn_flag},
                              adds=int(raw * fm["split"]), after=[f"{uid}:ms"]))
        links = {os.path.join(calibrated, "rawdata", uid): asdm}
        if not split_wanted:
            links[os.path.join(calibrated, f"{uid}.ms")] = ms
            links[os.path.join(calibrated, f"{uid}.ms.flagversions")] = ms + ".flagversions"
        if docontsub:
            for n in (f"{uid}_targets.ms", f"{uid}_targets_line.ms"):
                links[os.path.join(calibrated, n)] = os.path.join(working, n)
        steps.append(Step(id=f"{uid}:links", kind="links", eb=uid, inputs=[],
                          outputs=sorted(links), params={"links": links}))
        deletes = []
        if split_wanted and level >= 2:
            deletes.append(ms)       # scriptForPI: rm -rf <uid>.ms after the split
        if deletes:
            steps.append(Step(id=f"{uid}:cleanup", kind="cleanup", eb=uid, inputs=[],
                              outputs=[], deletes=deletes,
                              after=[s.id for s in steps if s.eb == uid and s.kind != "links"]))
    # member-level
    steps.append(Step(id="products-link", kind="links", eb="", inputs=[],
                      outputs=[os.path.join(calibrated, "products")],
                      params={"links": {os.path.join(calibrated, "products"):
                                        os.path.join(member, "calibration")}}))
    if opts.images:
        imdir = os.path.abspath(opts.imagedir) if opts.imagedir else os.path.join(calibrated,
                                                                                  "images")
        for pbcor, pb in info.products:
            name = os.path.basename(pbcor).replace(".pbcor.fits", ".fits")
            steps.append(Step(id=f"image:{name}", kind="image", eb="", inputs=[pbcor, pb],
                              outputs=[os.path.join(imdir, name)]))
        for p in info.problems:
            warnings.append(p)
    raw_total = sum(info.raw_sizes.get(u, 0) for u in ebs)
    peak, final = _peak(steps, opts.nprocs)
    sfp = scriptforpi_need(raw_total, opts.spacesaving, bool(info.post_scripts))
    return MemberPlan(member=member, mous=info.mous, mode="pipeline", calibrated=calibrated,
                      working=working, ebs=ebs, semipass=semipass, missing=missing, steps=steps,
                      warnings=warnings, raw_bytes=raw_total, peak_bytes=peak,
                      final_bytes=final, scriptforpi_bytes=sfp, route=route,
                      options={"spacesaving": opts.spacesaving, "dosplit": opts.dosplit,
                               "docontsub": docontsub, "split": split_wanted,
                               "images": opts.images, "nprocs": opts.nprocs,
                               "usedimpipe": info.usedimpipe})


def _renorm_params(info: MemberInfo, uid: str, working: str,
                   warnings: list[str]) -> dict | None:
    """The ``hifa_renorm`` request of ``uid`` from the manifest, as step parameters.

    ``None`` when the manifest records none; an unreadable request is a
    warning (the restore goes on without the renormalization).
    """
    from .renormstep import ENGINE, RenormParamError, caltable_path, delivered_renorm_table, parse_request
    e = info.manifest.asdms.get(uid) if info.manifest is not None else None
    if e is None or e.renorm is None:
        return None
    try:
        req = parse_request(e.renorm)
    except RenormParamError as exc:
        warnings.append(f"{uid}: the manifest's amplitude renormalization (hifa_renorm) "
                        f"cannot be read ({exc}); it is NOT applied")
        return None
    out = dict(req.as_dict(), caltable=caltable_path(working, uid), engine=ENGINE)
    delivered = delivered_renorm_table(info.calapply.get(uid, []))
    if delivered:   # PL2024+: the table is delivered and in calapply.txt; never twice
        out.update(apply=False, delivered_table=delivered)
    return out


def disk_hints(plan: MemberPlan) -> list[str]:
    """Options that would lower the peak disk need of ``plan``."""
    hints = []
    o = plan.options
    if o["spacesaving"] < 2 and o["split"]:
        hints.append("spacesaving=2 (keep only the split calibrated data)")
    if o["nprocs"] > 1 and len(plan.ebs) > 1:
        hints.append("nprocs=1 (one EB at a time)")
    if o["docontsub"]:
        hints.append("docontsub=False")
    return hints


def format_plan(plan: MemberPlan) -> str:
    """Human-readable plan (dryrun)."""
    lines = [f"qa_restore plan for {plan.member} ({plan.mode} calibration)",
             f"  EBs: {', '.join(plan.ebs)}",
             f"  output: {plan.calibrated}   route: {plan.route}",
             f"  options: {plan.options}"]
    if plan.semipass:
        lines.append(f"  skipped (semipass): {', '.join(plan.semipass)}")
    for s in plan.steps:
        lines.append(f"  [{s.id}] {s.kind}")
        for i in s.inputs:
            lines.append(f"      in : {i}")
        for o in s.outputs:
            lines.append(f"      out: {o}")
        for d in s.deletes:
            lines.append(f"      del: {d}")
        rn = s.params.get("renorm") if s.kind == "ms" else None
        if rn and rn.get("delivered_table"):
            lines.append(f"      renormalization (manifest hifa_renorm): applied by the delivered "
                         f"calapply.txt ({rn['delivered_table']}), not computed again")
        elif rn and rn.get("apply"):
            lines.append(f"      renormalization (manifest hifa_renorm: threshold "
                         f"{rn['threshold']}, atm_auto_exclude {rn['atm_auto_exclude']}"
                         + (f", spw {rn['spw']}" if rn.get("spw") else "")
                         + (f", excludechan {rn['excludechan']}" if rn.get("excludechan") else "")
                         + f"): TARGET data corrected by {rn['caltable']} when the scaling "
                         "exceeds the threshold")
    lines.append(f"  raw data: {fmt_bytes(plan.raw_bytes)}; predicted peak disk: "
                 f"{fmt_bytes(plan.peak_bytes)}; left at the end: {fmt_bytes(plan.final_bytes)}")
    if plan.scriptforpi_bytes is not None:
        lines.append(f"  (scriptForPI.py would require {fmt_bytes(plan.scriptforpi_bytes)})")
    for w in plan.warnings:
        lines.append(f"  WARNING: {w}")
    return "\n".join(lines)
