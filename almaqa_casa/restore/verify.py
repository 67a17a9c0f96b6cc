"""Post-restore verification: prove each restored EB right, or say what is wrong.

A restore that "finished" can still have left data uncalibrated (a
calapply.txt without its TARGET line), lost flags, applied a wrong table or
corrected twice.  After the executor ran, every EB's calibrated MS (its
``split.cal``, else the full MS's CORRECTED_DATA) goes through the checks of
:mod:`.verify_rules` (calapply lines, coverage, data, flags against the
delivered ``Pipeline_Final``, the flux calibrator against flux.csv, the
renormalization); the numbers come from :mod:`.verify_io` (metadata, TaQL
counts, sampled rows: a few seconds per EB).  A failed check fails the
member (``status='failed'``, CLI exit 1) with a message naming the EB, the
check and the numbers; ``verify=False`` skips all of it.

Manually calibrated EBs have no calapply.txt, no Pipeline_Final version and
no manifest: their ``split.cal`` gets the data check (every field sampled).

Total power EBs are checked on their autocorrelations (the calibrated
column: DATA of the split, FLOAT_DATA where that holds it, CORRECTED_DATA
of the full MS), against the ON_SOURCE rows the calapply lines calibrate;
``jyperk`` (:mod:`.verify_tp`) measures the Jy/K factor in the data; flux
and renorm do not apply.  Self-calibrated targets (``selfcal``) are checked
on the targets MSs.  A check that examined nothing fails, and an EB none of
whose checks passed fails (:func:`.verify_rules.nothing_examined`).
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..delivery.calapply import APPLY_INTENTS
from ..delivery.fluxcsv import FluxEntry, parse_fluxcsv
from ..delivery.member import Member
from ..log import post
from . import verify_io as vio
from . import verify_rules as vr
from .plan import MemberPlan
from .records import read_record

__all__ = ["SSO_NAMES", "verify_member", "verify_eb"]

#: Solar-system flux calibrators: resolved, modelled (Butler-JPL); flux.csv gives
#: their total flux, which no baseline sees, so the point-source comparison does not apply.
SSO_NAMES = frozenset({"mars", "jupiter", "saturn", "uranus", "neptune", "venus", "mercury",
                       "callisto", "ganymede", "io", "europa", "titan", "ceres", "pallas",
                       "vesta", "juno", "moon", "sun"})


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


# ---- what to verify -----------------------------------------------------------------
def _calibrated_column(column: str, meta: vio.MSMeta) -> str:
    """A split of autocorrelation-only data may hold FLOAT_DATA instead of DATA."""
    if column == "DATA" and "DATA" not in meta.columns and "FLOAT_DATA" in meta.columns:
        return "FLOAT_DATA"
    return column


def _verified_ms(plan: MemberPlan, uid: str, outputs: Sequence[str]) -> tuple[str, str]:
    """The MS that holds an EB's calibrated data, and its calibrated column."""
    split = os.path.join(plan.calibrated, f"{uid}.ms.split.cal")
    if os.path.isfile(os.path.join(split, "table.dat")):
        return split, "DATA"
    for cand in [os.path.join(plan.working, f"{uid}.ms"), *outputs]:
        if cand.endswith(".ms") and os.path.isfile(os.path.join(cand, "table.dat")):
            return cand, "CORRECTED_DATA"
    return "", ""


def _step_extra(plan: MemberPlan, step_id: str) -> dict:
    step = next((s for s in plan.steps if s.id == step_id), None)
    rec = read_record(plan, step) if step is not None else None
    return dict((rec or {}).get("extra") or {})


def read_flux_entries(member: Member) -> tuple[list[FluxEntry], str, str]:
    """flux.csv of the member (loose, or in auxproducts.tgz): (entries, where, error)."""
    from ..delivery.member import _aux_text, read_small_text  # the member model's readers
    where = member.aux_files.get("flux.csv", "")
    if not where:
        for tgz, names in member.aux_members.items():
            hit = next((n for n in names if os.path.basename(n) == "flux.csv"), None)
            if hit:
                where = f"{tgz}::{hit}"
                break
    if not where:
        return [], "", ""
    try:
        if "::" in where:
            tgz, name = where.split("::", 1)
            text = _aux_text(tgz, name)
        else:
            text = read_small_text(where)
        return parse_fluxcsv(text, where), where, ""
    except Exception as exc:       # an unreadable flux.csv is reported, never ignored
        return [], where, f"{type(exc).__name__}: {exc}"


# ---- the checks of one EB ------------------------------------------------------------------
def _line_checks(eb: str, vis: str, column: str, meta: vio.MSMeta, apps,
                 auto: bool = False) -> list[vr.Check]:
    """calapply, coverage and data of an EB with calapply lines (``auto``: total
    power, its autocorrelations)."""
    lines, wheres, samples = [], [], []
    raw = "FLOAT_DATA" if auto and "FLOAT_DATA" in meta.columns else "DATA"
    compare = raw if column == "CORRECTED_DATA" and raw in meta.columns else ""
    for a in apps:
        sel = vr.line_selection(a, meta.field_names, meta.state_modes, meta.dd_spw,
                                meta.antenna_names)
        entry = {"source": os.path.basename(a.source), "field": a.field, "intent": a.intent,
                 "spw": a.spw}
        if isinstance(sel, str):
            lines.append(dict(entry, rows=None, why=sel))
            continue
        where = vr.selection_taql(sel)
        wheres.append(where)
        lines.append(dict(entry, rows=vio.count_rows(vis, where)))
        samples += vio.sample_rows(vis, where, column, meta,
                                   f"{entry['source']} ({a.intent or 'all intents'})",
                                   compare=compare, auto=auto)
    out = [vr.calapply_rule(eb, lines)]
    states = vr.scope_states(meta.state_modes)
    sci = meta.ddids_of(meta.science_spws)
    if any(ln["rows"] is None for ln in lines):
        out.append(vr.skip(eb, "coverage", "a calapply selection could not be evaluated here"))
    elif not states or not sci:
        out.append(vr.skip(eb, "coverage", "no science spw or calibrated intent in the MS"))
    else:
        scope = (f"STATE_ID IN [{','.join(map(str, states))}] && DATA_DESC_ID IN "
                 f"[{','.join(map(str, sci))}]")
        covered = " || ".join(wheres) if wheres else "F"
        groups, in_scope = vio.uncovered_groups(vis, meta, scope, covered, auto=auto)
        out.append(vr.coverage_rule(eb, groups, in_scope,
                                    "autocorrelation" if auto else "cross-correlation"))
    out.append(vr.data_rule(eb, samples, column))
    return out


def _field_samples(eb: str, vis: str, column: str, meta: vio.MSMeta,
                   auto: bool = False) -> vr.Check:
    """The data check of an MS without calapply lines: every field, sampled."""
    samples = []
    for f, name in enumerate(meta.field_names):
        samples += vio.sample_rows(vis, f"FIELD_ID=={f}", column, meta, f"field {name}",
                                   auto=auto)
    return vr.data_rule(eb, samples, column)


def _flags_check(eb: str, plan: MemberPlan, vis: str, extra: Mapping,
                 auto: bool = False) -> vr.Check:
    full = os.path.join(plan.working, f"{eb}.ms")
    pf = os.path.join(full + ".flagversions", "flags.Pipeline_Final")
    reference, src = None, ""
    if os.path.isfile(os.path.join(full, "table.dat")) and os.path.isdir(pf):
        reference, src = vio.flag_summary(full, pf, auto=auto), pf
    elif extra.get("pipeline_final_flags") is not None:
        reference, src = extra["pipeline_final_flags"], "the restore's record of Pipeline_Final"
    if reference is None:
        return vr.skip(eb, "flags", "no Pipeline_Final flag counts at hand (the full MS was "
                                    "deleted and the restore recorded none)")
    c = vr.flags_rule(eb, vio.flag_summary(vis, auto=auto), reference)
    c.numbers["reference"] = src
    return c


def _flat(nested: Mapping | None) -> dict[tuple[str, int, str], float]:
    """antenna -> spw -> pol -> factor as {(antenna, spw, pol): factor}."""
    return {(str(a), int(s), str(p)): float(v) for a, ds in (nested or {}).items()
            for s, dp in ds.items() for p, v in dp.items()}


def _jyperk_check(plan: MemberPlan, uid: str, vis: str, column: str, meta: vio.MSMeta,
                  apps, extra: Mapping) -> vr.Check:
    """Total power: the Jy/K factor the calibrated data carry against the delivered one."""
    from . import verify_tp
    from .casasteps import k2jy_factors
    rec = dict(extra.get("jyperk") or {})
    table = os.path.join(plan.working, rec["table"]) if rec.get("table") else ""
    reference = _flat(rec.get("delivered"))
    source = os.path.basename(str(rec.get("source", "")).split("::")[-1])
    if not reference and rec.get("route") == "table" and os.path.isdir(table):
        reference, source = k2jy_factors(table, vis), rec["table"] + " (delivered table)"
    full = os.path.join(plan.working, f"{uid}.ms")
    unit = vio.column_unit(vis, column)
    if os.path.isfile(os.path.join(full, "table.dat")) and "FLOAT_DATA" in vio.read_meta(
            full).columns:
        sels = [vr.line_selection(a, meta.field_names, meta.state_modes, meta.dd_spw,
                                  meta.antenna_names) for a in apps]
        where = " || ".join(vr.selection_taql(s) for s in sels if not isinstance(s, str)) or "F"
        measured, counts = verify_tp.measure_jyperk(full, plan.working, apps, where, vis,
                                                    column, meta)
        how = (f"measured in {os.path.basename(vis)} {column} against working/{uid}.ms "
               f"recalibrated without the Jy/K table: {counts['spectra']} spectra at "
               f"{counts['times']} ON_SOURCE times, {counts['channels']} channels")
    elif os.path.isdir(table):
        measured = k2jy_factors(table, vis)
        how = (f"working/{uid}.ms deleted (SPACESAVING >= 2): the factors of the applied table "
               f"{rec['table']}, not measured in the data")
    else:
        measured = _flat(rec.get("applied"))
        how = (f"working/{uid}.ms deleted (SPACESAVING >= 2): the restore's record of the "
               "factors applied, not measured in the data")
    c = vr.jyperk_rule(uid, unit, reference, measured, how, source)
    c.numbers["route"] = rec.get("route")
    return c


def _selfcal_check(plan: MemberPlan, uid: str) -> vr.Check | None:
    """The targets MSs of an EB the restore self-calibrated: CORRECTED_DATA differs from
    DATA in the fields and spws selfcal.json applies the tables to, and equals it
    elsewhere (None: no selfcal step for this EB)."""
    from .steps.selfcal import spw_keys, spw_selection
    step = next((s for s in plan.steps if s.id == f"{uid}:selfcal"), None)
    if step is None:
        return None
    apps = step.params.get("applications") or []
    samples: list[dict] = []
    missing: list[str] = []
    ref_keys = spw_keys(step.inputs[0]) if os.path.isdir(step.inputs[0]) else {}
    for vis in step.inputs:
        name = os.path.basename(vis)
        mine = [a for a in apps if a["vis"] == name]
        if not mine:
            continue
        if not os.path.isfile(os.path.join(vis, "table.dat")):
            missing.append(f"{name} does not exist")
            continue
        meta = vio.read_meta(vis)
        if "CORRECTED_DATA" not in meta.columns:
            missing.append(f"{name} has no CORRECTED_DATA column")
            continue
        keys = spw_keys(vis)
        applied = {(a["field"], int(x)) for a in mine
                   for x in spw_selection(a["spw"], ref_keys or keys, keys, vis).split(",") if x}
        for f, field in enumerate(meta.field_names):
            for smp in vio.sample_rows(vis, f"FIELD_ID=={f}", "CORRECTED_DATA", meta,
                                       f"{name} field {field}", compare="DATA"):
                samples.append({"ms": name, "field": field, "spw": smp["spw"],
                                "applied": (field, smp["spw"]) in applied,
                                "unflagged": smp["unflagged"], "unchanged": smp["unchanged"]})
    if missing:
        return vr.Check("selfcal", "fail", f"{uid}: selfcal: the self-calibration is not "
                        "applied: " + "; ".join(missing), {"samples": samples})
    return vr.selfcal_rule(uid, samples)


def _flux_check(eb: str, vis: str, column: str, meta: vio.MSMeta,
                entries: Sequence[FluxEntry], where: str, error: str) -> vr.Check:
    if error:
        return vr.Check("flux", "fail", f"{eb}: flux: {where} cannot be read: {error}")
    mine = [e for e in entries if e.ms in (f"{eb}.ms", eb)]
    if not mine:
        return vr.skip(eb, "flux", "no flux.csv entry for this EB" if entries else "no flux.csv")
    if not any(e.spw in meta.spw_freqs for e in mine):
        return vr.skip(eb, "flux", "none of the spws flux.csv gives for this EB ("
                       + ",".join(sorted({str(e.spw) for e in mine})) + ") is in the MS")
    amp = {i for i, m in enumerate(meta.state_modes)
           if "AMPLITUDE" in vr.obsmode_intents(m)}
    by_field: dict[str, list[FluxEntry]] = {}
    for e in mine:
        by_field.setdefault(e.meta.get("field") or e.field, []).append(e)

    def fids(name: str, e: FluxEntry) -> list[int]:
        ids = [i for i, n in enumerate(meta.field_names) if n == name]
        if not ids and e.field.isdigit() and int(e.field) < len(meta.field_names):
            ids = [int(e.field)]
        return ids

    flux_field = next((n for n, es in by_field.items()
                       if "AMPLITUDE" in es[0].meta.get("intents", "").upper().split(",")), None)
    if flux_field is None and amp:
        amp_fields = _fields_with_states(vis, amp)
        flux_field = next((n for n in by_field if set(fids(n, by_field[n][0])) & amp_fields), None)
    if flux_field is None:
        return vr.skip(eb, "flux", "no flux calibrator (AMPLITUDE intent) among the flux.csv "
                                   "fields " + ", ".join(sorted(by_field)))
    if flux_field.lower() in SSO_NAMES or "butler" in str(by_field[flux_field][0].comment).lower():
        return vr.skip(eb, "flux", f"the flux calibrator {flux_field} is a resolved Solar System "
                                   "object (flux.csv gives its total flux)")

    def measure(name: str) -> list[dict]:
        out = []
        for e in sorted(by_field[name], key=lambda x: x.spw):
            if e.spw not in meta.spw_freqs or e.I <= 0:
                continue
            s = vio.flux_sample(vis, fids(name, e), e.spw, column, meta, (e.uvmin, e.uvmax))
            if s is None:
                continue
            tol, parts = vr.flux_tolerance(e.spix, s["freqs"], s["sem"], s["mean"],
                                           s["short_long"])
            out.append({"spw": e.spw, "expected": e.I, "measured": s["mean"], "tolerance": tol,
                        "parts": parts, "samples": s["rows"], "baselines": s["baselines"],
                        "spix": e.spix, "ratio": s["mean"] / e.I, "flux_csv_line": e.line})
        return out

    others = [dict(m, field=n) for n in sorted(by_field) if n != flux_field
              for m in measure(n)]
    return vr.flux_rule(eb, flux_field, measure(flux_field), others)


def _fields_with_states(vis: str, states: set[int]) -> set[int]:
    import casatools
    tb = casatools.table()
    tb.open(vis)
    try:
        q = tb.query(f"STATE_ID IN [{','.join(map(str, sorted(states)))}]", columns="FIELD_ID")
        try:
            return {int(f) for f in (q.getcol("FIELD_ID") if q.nrows() else [])}
        finally:
            q.close()
    finally:
        tb.close()


def _renorm_check(eb: str, plan: MemberPlan, vis: str, meta: vio.MSMeta,
                  ms_params: Mapping, extra: Mapping) -> tuple[vr.Check, dict | None]:
    request = ms_params.get("renorm")
    record = dict(extra["renorm"]) if extra.get("renorm") else None
    if record and record.get("applied") and record.get("caltable") and os.path.isdir(
            record["caltable"]):
        from ..renorm.caltable import max_factor, read_correction
        record["table_max"] = {str(k): round(v, 6) for k, v in
                               max_factor(read_correction(record["caltable"])[0]).items()}
    origins, messages = vio.history_rows(vis)
    texts: dict[str, str] = {}
    for m in messages:
        if m.startswith("callib") and "=" in m:
            path = m.split("=", 1)[1].strip().strip('"')
            if path and os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as fh:
                    texts[path] = fh.read()
    target_modes = {x.strip() for m in meta.state_modes for x in m.split(",")
                    if "TARGET" in vr.obsmode_intents(x.strip())}
    applied = vr.applied_renorm_counts(origins, messages, texts, target_modes,
                                       sorted(meta.spw_freqs))
    known = any(o in ("applycal", "mstransform") for o in origins)
    return vr.renorm_rule(eb, request, record, applied, history_known=known), record


def verify_eb(plan: MemberPlan, member: Member, uid: str, outputs: Sequence[str],
              flux: tuple[list[FluxEntry], str, str], calibrated_ms: str = "") -> dict:
    """The checks of one restored EB (see the module docstring).

    When SPACESAVING >= 3 deleted the EB's split.cal once ``calibrated.ms``
    (all EBs concatenated by scriptForImagingPrep.py) existed, that MS gets
    the data check; the per-line checks need the EB's own MS and are skipped.
    """
    t0 = time.perf_counter()
    vis, column = _verified_ms(plan, uid, outputs)
    tp = bool(member.total_power)
    if not vis and calibrated_ms and os.path.isfile(os.path.join(calibrated_ms, "table.dat")):
        meta = vio.read_meta(calibrated_ms)
        why = (f"{uid}.ms.split.cal was deleted (SPACESAVING >= 3) once calibrated.ms existed; "
               "calibrated.ms holds every EB")
        checks = [vr.skip(uid, c, why) for c in ("calapply", "coverage")]
        col = _calibrated_column("DATA", meta)
        checks.append(_field_samples(uid, calibrated_ms, col, meta, auto=tp))
        checks += [vr.skip(uid, c, why) for c in ("flags", "flux", "renorm")]
        return {"ms": calibrated_ms, "column": col, "renorm": None,
                "checks": [c.as_dict() for c in checks], "status": vr.eb_status(checks),
                "seconds": round(time.perf_counter() - t0, 2)}
    out: dict[str, Any] = {"ms": vis, "column": column, "checks": [], "renorm": None}
    if not vis:
        c = vr.Check("data", "fail", f"{uid}: data: no restored MS found ({uid}.ms.split.cal "
                     f"or working/{uid}.ms in {plan.calibrated})")
        out.update(status="failed", checks=[c.as_dict()])
        return out
    meta = vio.read_meta(vis)
    column = _calibrated_column(column, meta)
    out["column"] = column
    checks: list[vr.Check] = []
    if column not in meta.columns:
        checks.append(vr.Check("data", "fail", f"{uid}: data: {vis} has no {column} column: "
                               "the calibration was not applied"))
    elif plan.mode == "pipeline" and uid in member.calapply and member.total_power:
        extra = _step_extra(plan, f"{uid}:tp-ms")
        na = "not applicable to total power"
        checks += _line_checks(uid, vis, column, meta, member.calapply[uid], auto=True)
        checks.append(_flags_check(uid, plan, vis, extra, auto=True))
        checks.append(_jyperk_check(plan, uid, vis, column, meta, member.calapply[uid], extra))
        checks += [vr.skip(uid, "flux", f"{na} (no flux calibrator; jyperk checks the "
                                        "amplitude scale)"),
                   vr.skip(uid, "renorm", f"{na} (no amplitude renormalization)")]
    elif plan.mode == "pipeline" and uid in member.calapply:
        ms_step = next((s for s in plan.steps if s.id == f"{uid}:ms"), None)
        extra = _step_extra(plan, f"{uid}:ms")
        checks += _line_checks(uid, vis, column, meta, member.calapply[uid])
        checks.append(_flags_check(uid, plan, vis, extra))
        checks.append(_flux_check(uid, vis, column, meta, *flux))
        rn, rec = _renorm_check(uid, plan, vis, meta, ms_step.params if ms_step else {}, extra)
        checks.append(rn)
        out["renorm"] = rec
        sc = _selfcal_check(plan, uid)
        if sc is not None:
            checks.append(sc)
    else:
        why = "manual calibration (the delivered script calibrates; no calapply.txt)"
        checks += [vr.skip(uid, "calapply", why), vr.skip(uid, "coverage", why),
                   _field_samples(uid, vis, column, meta, auto=tp),
                   vr.skip(uid, "flags", "no Pipeline_Final flag version (manual calibration)"),
                   _flux_check(uid, vis, column, meta, *flux)
                   if flux[0] else vr.skip(uid, "flux", "no flux.csv"),
                   vr.skip(uid, "renorm", "no manifest hifa_renorm (manual calibration)")]
    none = vr.nothing_examined(uid, checks)
    if none is not None:
        checks.append(none)
    out["checks"] = [c.as_dict() for c in checks]
    out["status"] = vr.eb_status(checks)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def verify_member(plan: MemberPlan, member: Member, result: Mapping[str, Any]) -> dict:
    """Verify every EB of a finished member restore (``result``: its member_result).

    Returns ``{'status': 'passed'|'failed', 'ebs': {uid: {...}}, 'failures':
    [messages], 'seconds'}``; logs one line per EB (SEVERE for a failure).
    """
    t0 = time.perf_counter()
    flux = read_flux_entries(member)
    ebs: dict[str, dict] = {}
    failures: list[str] = []
    for uid in plan.ebs:
        r = (result.get("eb_results") or {}).get(uid) or {}
        if r.get("status") in ("failed", "not run", "planned"):
            msg = (f"{uid}: restore: the EB was not restored, nothing to verify: "
                   f"{r.get('error') or r.get('status')}")
            ebs[uid] = {"status": "failed", "ms": "", "column": "", "renorm": None,
                        "checks": [vr.Check("restore", "fail", msg).as_dict()]}
        else:
            try:
                ebs[uid] = verify_eb(plan, member, uid, r.get("outputs") or [], flux,
                                     result.get("calibrated_ms") or "")
            except Exception as exc:   # a check that cannot run is a failure, said so
                msg = f"{uid}: verification could not run: {type(exc).__name__}: {exc}"
                ebs[uid] = {"status": "failed", "ms": "", "column": "", "renorm": None,
                            "checks": [vr.Check("verify", "fail", msg).as_dict()]}
        bad = [c for c in ebs[uid]["checks"] if c["status"] == "fail"]
        warn = [c for c in ebs[uid]["checks"] if c["status"] == "warn"]
        failures += [c["message"] for c in bad]
        for c in bad:
            _log(f"{plan.mous}: VERIFICATION FAILED: {c['message']}", "SEVERE")
        for c in warn:
            _log(f"{plan.mous}: verification: {c['message']}", "WARN")
        if not bad:
            done = [c["check"] for c in ebs[uid]["checks"] if c["status"] == "pass"]
            _log(f"{plan.mous}: {uid}: verification passed ({', '.join(done)})")
    return {"status": "failed" if failures else "passed", "ebs": ebs, "failures": failures,
            "flux_csv": flux[1], "seconds": round(time.perf_counter() - t0, 2),
            "checks": list(vr.CHECKS), "apply_intents": list(APPLY_INTENTS)}


# ---- after the run: verification, provenance, report ------------------------------------
def renorm_records(plan: MemberPlan) -> dict[str, dict]:
    """The renormalization record of every EB, from the step records (also on a
    re-run that skipped the steps)."""
    out = {}
    for uid in plan.ebs:
        rec = _step_extra(plan, f"{uid}:ms").get("renorm")
        if rec:
            out[uid] = rec
    return out


def _data_kind(path: str) -> str:
    name = os.path.basename(path.rstrip("/"))
    if name.endswith(".ms.split.cal") or name.endswith("_targets.ms") or \
            name.endswith("_targets_line.ms") or name == "calibrated.ms":
        return "calibrated"
    return "uncalibrated (CORRECTED_DATA holds the calibrated data)"


def _stamp(plan: MemberPlan, member: Member, res: dict, prov: dict) -> list[str]:
    """Provenance into the HISTORY of every restored MS; returns warnings."""
    from .provenance import history_lines, write_ms_history
    warnings, seen = [], set()
    ver = res.get("verification") or {}
    targets = [(uid, o) for uid, r in (res.get("eb_results") or {}).items()
               if r.get("status") in ("ok", "skipped") for o in r.get("outputs") or []]
    if res.get("calibrated_ms"):
        targets.append(("all EBs", res["calibrated_ms"]))
    for uid, vis in targets:
        real = os.path.realpath(vis)
        if real in seen or not os.path.isdir(os.path.join(real, "HISTORY")):
            continue
        seen.add(real)
        status = ((ver.get("ebs") or {}).get(uid) or {}).get("status") or ver.get("status") \
            or "not run (verify=False)"
        try:
            write_ms_history(real, history_lines(prov, plan.member, uid, _data_kind(vis),
                                                 (res.get("renorm") or {}).get(uid), status))
        except Exception as exc:     # the data are fine; the record could not be added
            warnings.append(f"{plan.mous}: {vis}: provenance not written to HISTORY ({exc})")
    return warnings


def finish_member(plan: MemberPlan, member: Member, res: dict, verify: bool,
                  params: Mapping[str, Any], disk: Mapping | None = None) -> dict:
    """Everything after a member's steps ran, into its result ``res`` (in place):
    provenance (and the version warning), the renormalization records, the
    verification (``verify``), the HISTORY of the restored MSs, and the
    report ``<calibrated>/restore.json`` and ``restore.html``."""
    from ..report.restore_page import write_restore_report
    from . import provenance as pv
    present = pv.present_versions()
    delivered = member.versions.as_dict()
    prov = pv.record("qa_restore", params, delivered, present)
    prov["options"] = {k: plan.options.get(k) for k in ("spacesaving", "dosplit", "docontsub",
                                                        "images", "postscripts", "level")
                       if k in plan.options}
    res["provenance"] = prov
    for w in pv.version_warnings(delivered, present, f"{plan.mous}: the delivery"):
        _log(w, "WARN")
        res.setdefault("warnings", []).append(w)
    res["renorm"] = {**renorm_records(plan), **(res.get("renorm") or {})}
    if verify:
        v = verify_member(plan, member, res)
        for uid, e in v["ebs"].items():
            if e.get("renorm"):
                res["renorm"][uid] = e["renorm"]       # with the table's largest factor
        if v["status"] == "failed":
            res["status"] = "failed"
            msg = "verification failed: " + " | ".join(v["failures"])
            res["error"] = f"{res['error']} | {msg}" if res.get("error") else msg
    else:
        v = {"status": "skipped", "ebs": {}, "failures": [], "note": "verify=False"}
        _log(f"{plan.mous}: verification skipped (verify=False)", "WARN")
    res["verification"] = v
    res.setdefault("warnings", []).extend(_stamp(plan, member, res, prov))
    try:
        res["report"] = write_restore_report(plan.calibrated, res, disk)
    except Exception as exc:
        res["warnings"].append(f"{plan.mous}: restore report not written ({exc})")
    res["verification"] = compact(v)          # the full numbers are in restore.json
    return res


def compact(v: Mapping[str, Any]) -> dict:
    """The verification for the result dict: every check with its message and the
    numbers that decide it; the bulky tables (flag counts of every scan/intent/spw,
    every sampled selection) only where they show a difference (restore.json has all)."""
    out = dict(v)
    ebs = {}
    for uid, e in (v.get("ebs") or {}).items():
        checks = []
        for c in e.get("checks") or []:
            c = dict(c, numbers=dict(c.get("numbers") or {}))
            n = c["numbers"]
            if c["check"] == "flags" and "table" in n:
                n["table"] = [r for r in n["table"]
                              if r.get("flagged_samples") != r.get("reference_flagged_samples")
                              or r.get("flagged_rows") != r.get("reference_flagged_rows")]
            if c["check"] == "data" and "samples" in n:
                n["samples"] = [x for x in n["samples"] if x["nonfinite"] or x["zero"] or (
                    x.get("unchanged") is not None and x["unchanged"] == x["unflagged"])]
            if c["check"] == "calapply" and "rows" in n and c["status"] == "pass":
                n.pop("rows")
            checks.append(c)
        ebs[uid] = dict(e, checks=checks)
    out["ebs"] = ebs
    return out
