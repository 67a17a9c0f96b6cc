"""Planner for pipeline-calibrated total power deliveries (pure).

What ``hsd_restoredata`` does (``pipeline/hsd/tasks/restoredata``, the
generic restore it extends, ``hsd_applycal`` and ``hsd_k2jycal``), without
the pipeline, per EB:

``caltables``  extract the sky, Tsys (and Jy/K) tables the EB's calapply.txt
               names from its own session's tarball;
``tp-ms``      importasdm with ``ocorr_mode='ao'`` and hsd_restoredata's
               ``asis`` list (autocorrelations into FLOAT_DATA) -> restore
               ``Pipeline_Final`` -> the Kelvin-to-Jansky factors: the Jy/K
               table the calapply list names (checked against jyperk.csv when
               both are delivered), else a table made from the delivered
               ``jyperk.csv`` with ``gencal(caltype='jyperk')`` and applied as
               hsd_k2jycal registers it (``nearest,nearest``) -> applycal of
               the calapply lines as hsd_applycal runs them (TARGET
               autocorrelations ``antenna='*&&&'``, ``calflagstrict``) ->
               ``working/<uid>.ms`` with CORRECTED_DATA in Jy;
``split``      ``calibrated/<uid>.ms.split.cal``: scriptForPI.py splits every
               total power EB (it is never pipeline-imaged with
               hif_makeimages), whatever DOSPLIT says;
``tp-atmcor``  (``atmcor=True``) sdatmcor as hsd_atmcor ->
               ``working/<uid>.ms.atmcor.atmtype<N>``;
``tp-baseline`` (``sdbaseline=True``) sdbaseline as hsd_baseline, with the
               delivered baseline table when there is one ->
               ``calibrated/<input>_bl``;
``links``, ``cleanup`` (SPACESAVING >= 2 deletes ``working/<uid>.ms``).

What differs from interferometry: no cal-library route (the calibration is
always applied into the MS, then split), DOCONTSUB does not apply (warned,
as scriptForPI.py says), no renormalization.
"""
from __future__ import annotations

import os

from ...delivery.jyperk import JyPerKFile
from ...delivery.member import Member
from ..disk import FACTORS, scriptforpi_need
from ..options import RestoreOptions
from ..plan import MemberPlan, PlanError, Step, output_root, peak_bytes
from ..tpinputs import ATMCOR_DEFAULTS, TPInputs
from .common import caltables_step, effective_level, final_cleanup, post_steps
from .pipeline import _check_ebs

__all__ = ["plan_total_power", "is_k2jy_table", "k2jy_table_name", "TP_NOTICE", "TP_DIFFERS"]

#: What the dry run and the result say about a total power restore.
TP_NOTICE = ("total power: hsd_restoredata's stages are reproduced (import of the autocorrelations, "
             "Pipeline_Final flags, sky + Tsys + Jy/K calibration); atmospheric correction and "
             "baseline subtraction (hsd_atmcor, hsd_baseline) only with atmcor=True / sdbaseline=True; "
             "hsd_blflag and hsd_imaging are not reproduced")


#: How SPACESAVING / DOSPLIT / DOCONTSUB apply to total power (as scriptForPI.py).
TP_DIFFERS = ("total power: every EB is split into <uid>.ms.split.cal whatever DOSPLIT says "
              "(scriptForPI.py splits data not imaged by hif_makeimages); the calibration is "
              "applied into working/<uid>.ms first (no cal-library route), which SPACESAVING >= 2 "
              "deletes after the split; DOCONTSUB does not apply; no amplitude renormalization")


def is_k2jy_table(name: str) -> bool:
    """A Kelvin-to-Jansky table by its pipeline name (``<vis>.hsd_k2jycal.s<n>.ampcal.tbl``)."""
    n = os.path.basename(name).lower()
    return "k2jycal" in n or "jyperk" in n or n.endswith(".ampcal.tbl")


def k2jy_table_name(uid: str) -> str:
    """The table made from jyperk.csv when the delivery has no Jy/K table."""
    return f"{uid}.ms.hsd_k2jycal.ampcal.tbl"


def _session_number(session: str | None) -> int | None:
    if session and session.rsplit("_", 1)[-1].isdigit():
        return int(session.rsplit("_", 1)[-1])
    return None


def _k2jy_params(uid: str, session: str | None, tables: list[str], jf: JyPerKFile | None,
                 inputs: TPInputs, working: str, warnings: list[str]) -> dict:
    """How the Jy/K factors of one EB are applied (step parameters)."""
    delivered = None
    if jf is not None:
        if jf.kind == "ms":
            rows = jf.for_ms(uid)
            delivered = {"kind": "ms", "rows": [[r.antenna, r.spw, r.pol, r.factor] for r in rows]}
            if not rows:
                delivered = None
        else:
            n = _session_number(session)
            rows = [r for r in jf.session_rows if n is None or r.session == n]
            delivered = {"kind": "session", "session": n,
                         "rows": [[r.antenna, r.center_hz, r.bandwidth_hz, r.pol, r.factor] for r in rows]}
            if not rows:
                delivered = None
    k2jy = [t for t in tables if is_k2jy_table(t)]
    src = inputs.jyperk_source
    if k2jy:
        if jf is not None and delivered is None:
            warnings.append(f"{uid}: {src} has no Jy/K factor for this EB; the delivered table "
                            f"{k2jy[0]} is applied unchecked")
        return {"route": "table", "table": k2jy[0], "delivered": delivered, "jyperk": src}
    if delivered is not None:
        return {"route": "csv", "table": k2jy_table_name(uid), "delivered": delivered, "jyperk": src,
                "path": os.path.join(working, k2jy_table_name(uid))}
    if inputs.jyperk_error:
        raise PlanError(f"{uid}: the calapply list names no Jy/K table and the delivered Jy/K "
                        f"factors cannot be read: {inputs.jyperk_error}")
    warnings.append(f"{uid}: no Kelvin-to-Jansky factor delivered (no Jy/K table in calapply.txt, "
                    + (f"no row for this EB in {src}" if src else "no jyperk.csv")
                    + "): the calibrated data stay in Kelvin (Ta*), as the pipeline leaves them")
    return {"route": "none", "table": "", "delivered": None, "jyperk": src}


def plan_total_power(member: Member, opts: RestoreOptions, inputs: TPInputs,
                     texts: dict[str, str] | None = None, present_version: str = "",
                     lazy: bool = True) -> MemberPlan:
    """Plan the native restore of a pipeline-calibrated total power member.

    ``inputs``: what :func:`..tpinputs.read_tp_inputs` read (jyperk.csv, the
    recorded sdatmcor parameters, the baseline tables).

    Raises
    ------
    PlanError
        An EB without its ASDM, calibration files or caltables tarball; Jy/K
        factors needed but unreadable (naming file and line); atmcor or
        sdbaseline asked for while the delivery's record of them cannot be
        read.
    """
    texts = texts or {}
    _check_ebs(member)
    warnings = list(member.warnings) + list(inputs.warnings)
    for u in member.semipass:
        warnings.append(f"{u}: ASDM in raw/ without calibration (probably QA semipass data); skipped")
    if inputs.jyperk_error:
        warnings.append(f"Jy/K factors: {inputs.jyperk_error}")
    if opts.atmcor and inputs.atmcor_error:
        raise PlanError(f"atmcor: {inputs.atmcor_error}")
    if opts.sdbaseline and inputs.baseline_error:
        raise PlanError(f"sdbaseline: {inputs.baseline_error}")
    calibrated = output_root(member.path, opts.outdir)
    working = os.path.join(calibrated, "working")
    level = effective_level(member, opts, texts, warnings)
    if opts.docontsub:
        warnings.append("DOCONTSUB: this is total power data and uvcontsub cannot be performed "
                        "(as scriptForPI.py says); ignored")
    if opts.dosplit is False and opts.sources and dict(opts.sources).get("dosplit") != "default":
        warnings.append("DOSPLIT=False: total power EBs are split all the same (scriptForPI.py "
                        "splits every EB that was not pipeline-imaged with hif_makeimages)")
    imp = member.import_opts.as_dict()
    steps: list[Step] = []
    finals: list[str] = []
    fm = FACTORS
    for e in member.ebs:
        uid, raw = e.uid, e.raw_bytes
        ms = os.path.join(working, f"{uid}.ms")
        steps.append(caltables_step(member, e, working))
        tables = steps[-1].params["tables"]
        k2jy = _k2jy_params(uid, e.session, tables, inputs.jyperk, inputs, working, warnings)
        outputs = [ms, ms + ".flagversions"] + ([k2jy["path"]] if k2jy["route"] == "csv" else [])
        size = raw * (fm["ms_lazy"] if lazy else fm["ms_full"]) + raw * fm["corrected"] \
            + raw * fm["flagversions"]
        how = {"table": f"Jy/K table {k2jy['table']} (as calapply.txt lists it)"
                        + (", checked against " + os.path.basename(k2jy["jyperk"].split("::")[-1])
                           if k2jy["delivered"] else ""),
               "csv": f"Jy/K table made from {os.path.basename(k2jy['jyperk'].split('::')[-1])} "
                      "(gencal caltype='jyperk')",
               "none": "no Jy/K factor: stays in K"}[k2jy["route"]]
        steps.append(Step(id=f"{uid}:tp-ms", kind="tp-ms", eb=uid,
                          inputs=[e.asdm, e.flagversions, e.calapply], outputs=outputs,
                          params={"lazy": lazy, "import": imp, "k2jy": k2jy, "session": e.session},
                          adds=int(size), after=[f"{uid}:caltables"],
                          note=f"importasdm (ocorr_mode={imp['ocorr_mode']!r}), restore Pipeline_Final, "
                               f"applycal sky + Tsys + {how}"))
        out = os.path.join(calibrated, f"{uid}.ms.split.cal")
        finals.append(out)
        steps.append(Step(id=f"{uid}:split", kind="split", eb=uid, inputs=[ms], outputs=[out],
                          params={"route": "applycal", "reindex": False, "renorm": False},
                          adds=int(raw * fm["split"]), after=[f"{uid}:tp-ms"],
                          note="science spws, CORRECTED as DATA (scriptForPI.py splits every TP EB)"))
        bl_input, bl_column = ms, "corrected"
        links = {os.path.join(calibrated, "rawdata", uid): e.asdm}
        if opts.atmcor:
            rec = dict(ATMCOR_DEFAULTS, source="hsd_atmcor defaults")
            rec.update(inputs.atmcor.get(uid, {}))
            atm = os.path.join(working, f"{uid}.ms.atmcor.atmtype{rec['atmtype']}")
            gain = os.path.join(working, k2jy["table"]) if k2jy["table"] else ""
            steps.append(Step(id=f"{uid}:tp-atmcor", kind="tp-atmcor", eb=uid, inputs=[ms], outputs=[atm],
                              params={"atmtype": rec["atmtype"], "dtem_dh": rec["dtem_dh"], "h0": rec["h0"],
                                      "gainfactor": gain, "source": rec["source"]},
                              adds=int(raw * fm["split"]), after=[f"{uid}:tp-ms"],
                              note=f"sdatmcor atmtype {rec['atmtype']}, dtem_dh {rec['dtem_dh']} K/km, "
                                   f"h0 {rec['h0']} km (from {os.path.basename(str(rec['source']))})"))
            bl_input, bl_column = atm, "data"
            links[os.path.join(calibrated, os.path.basename(atm))] = atm
        if opts.sdbaseline:
            bl = inputs.baseline.get(uid)
            after = [s.id for s in steps if s.eb == uid and s.kind in ("tp-ms", "tp-atmcor")][-1:]
            params = {"mode": "fit", "datacolumn": bl_column}
            if bl and bl.get("tarball"):
                steps.append(Step(id=f"{uid}:bltable", kind="caltables", eb=uid,
                                  inputs=[bl["tarball"], bl["source"].rsplit(":", 1)[0]],
                                  outputs=[os.path.join(working, bl["bltable"])],
                                  params={"tables": [bl["bltable"]], "session": e.session},
                                  note=f"baseline table of {e.session} "
                                       f"({os.path.basename(bl['tarball'])})"))
                after.append(f"{uid}:bltable")
                params.update(mode="apply", bltable=os.path.join(working, bl["bltable"]),
                              spw=bl["spw"], source=bl["source"])
                if ".atmcor." in bl["bltable"] and not opts.atmcor:
                    warnings.append(f"{uid}: the delivered baseline table {bl['bltable']} was fitted "
                                    "after the atmospheric correction (hsd_atmcor); without atmcor=True "
                                    "it is applied to uncorrected data and leaves the correction's "
                                    "offset in the spectra")
            elif bl:
                warnings.append(f"{uid}: {bl['source']} names baseline table {bl['bltable']} but no "
                                f"{e.session} auxcaltables.tgz holds it; baselines are fitted instead")
            blout = os.path.join(calibrated, os.path.basename(bl_input) + "_bl")
            finals.append(blout)
            steps.append(Step(id=f"{uid}:tp-baseline", kind="tp-baseline", eb=uid, inputs=[bl_input],
                              outputs=[blout], params=params, adds=int(raw * fm["split"]), after=after,
                              note=("sdbaseline blmode='apply' with the delivered table"
                                    if params["mode"] == "apply" else
                                    "sdbaseline fit (poly order 1, line finder mask): no delivered table")))
        steps.append(Step(id=f"{uid}:links", kind="links", eb=uid, inputs=[], outputs=sorted(links),
                          params={"links": links}))
        if level >= 2:   # scriptForPI: rm -rf <uid>.ms once the split exists
            steps.append(Step(id=f"{uid}:cleanup", kind="cleanup", eb=uid, inputs=[], outputs=[],
                              deletes=[ms],
                              after=[s.id for s in steps if s.eb == uid and s.kind != "links"]))
    steps.append(Step(id="products-link", kind="links", eb="", inputs=[],
                      outputs=[os.path.join(calibrated, "products")],
                      params={"links": {os.path.join(calibrated, "products"):
                                        os.path.join(member.path, "calibration")}}))
    notices = [TP_NOTICE, TP_DIFFERS]
    blocked: list[tuple[str, list[dict]]] = []
    eb_ids = [s.id for s in steps if s.eb]
    post = post_steps(member, calibrated, texts, present_version, eb_ids, notices, blocked) \
        if opts.postscripts else []
    steps += post
    cleanup = final_cleanup(calibrated, [f for f in finals if f.endswith(".split.cal")], level, bool(post),
                            [s.id for s in post] or eb_ids, warnings)
    steps += cleanup
    if opts.images:
        warnings.append("images=True: total power cubes (*.sd.fits) need no primary beam correction; "
                        "nothing to recover")
    raw_total = sum(e.raw_bytes for e in member.ebs)
    peak, final = peak_bytes(steps, opts.nprocs)
    summary = member.summary()
    summary["total_power_inputs"] = {
        "jyperk": inputs.jyperk.as_dict() if inputs.jyperk else None,
        "jyperk_source": inputs.jyperk_source, "atmcor": inputs.atmcor, "baseline": inputs.baseline}
    return MemberPlan(
        member=member.path, mous=member.mous, mode="pipeline", calibrated=calibrated, working=working,
        ebs=member.eb_uids, semipass=list(member.semipass), missing=list(member.missing), steps=steps,
        warnings=warnings, raw_bytes=raw_total, peak_bytes=peak, final_bytes=final,
        scriptforpi_bytes=scriptforpi_need(raw_total, opts.spacesaving, bool(member.post_scripts)),
        route="applycal",
        options={"spacesaving": opts.spacesaving, "dosplit": opts.dosplit, "docontsub": False,
                 "split": True, "images": opts.images, "nprocs": opts.nprocs, "usedimpipe": False,
                 "postscripts": opts.postscripts, "level": level, "atmcor": opts.atmcor,
                 "sdbaseline": opts.sdbaseline, "total_power": True},
        notices=notices, blocked=blocked, delivery=summary, check_bytes=peak,
        needs_all_ebs=[s.id for s in post + cleanup])
