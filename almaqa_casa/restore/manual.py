"""qa_restore's manual path: run the delivered per-EB calibration scripts as scriptForPI.py does.

Manually calibrated deliveries carry one ``<uid>.ms.scriptForCalibration.py``
per EB that re-solves the calibration from the ASDM, and optionally
``scriptForPolCalibration.py``, ``scriptForFluxCalibration.py`` and
``scriptForImagingPrep.py``.  Following scriptForPI.py (restore.md §2.3,
§2.7, §2.9):

* EBs in scriptForPI's chronological UID order (``genscriptnameforsorting``);
* per EB, ``calibrated/<uid>.calibration/`` is the working folder, with the
  ASDM linked as ``<uid>`` and ``calibration/*.eph`` linked; the script runs
  there with ``applyonly=True`` in a CASA-6 namespace (:mod:`.scriptenv`),
  its output and CASA log in ``<uid>.scriptForCalibration.log`` beside it;
* ``<uid>.ms.split.cal`` is moved (atomic rename) to ``calibrated/``; then
  SPACESAVING >= 1 removes ``<uid>.ms.split``, >= 2 also ``<uid>.ms``;
* PolCal, FluxCal and ImagingPrep scripts run from ``calibrated/`` in that
  order; SPACESAVING >= 3 removes the ``<uid>.ms.split.cal`` only when
  ``calibrated.ms`` exists.

This path executes code from the archive (the delivered scripts); the
pipeline path executes none.  A script that demands another CASA version
(:mod:`.versionguard`) stops the member before any work unless
``ignoreversion=True``, which runs a patched copy.  A failing script stops
its EB (traceback in the result and the log); the other EBs go on; the post
scripts run only when every EB succeeded.

Resumable: an EB whose ``<uid>.ms.split.cal`` reached ``calibrated/`` (or
whose completion record exists) is skipped; an interrupted EB's working
folder is cleared and the EB redone (with ``usems`` the imported MS is kept);
a post script interrupted half-way has the entries it created removed before
it runs again.  Records live in ``calibrated/.qa_restore/manual/``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import remove, write_text_atomic
from ..log import post
from . import versionguard as vg
from .discover import MemberInfo, inspect_member, match_ebs, uid_sort_key
from .disk import check_disk, fmt_bytes, free_bytes, scriptforpi_need
from .options import RestoreOptions
from .plan import PlanError

__all__ = [
    "POST_ORDER",
    "EBTask",
    "ManualPlan",
    "PostTask",
    "format_manual_plan",
    "plan_manual",
    "restore_manual_member",
]

#: scriptForPI.py's order of the scripts run from calibrated/ after the EBs
POST_ORDER = ("scriptForPolCalibration.py", "scriptForFluxCalibration.py",
              "scriptForImagingPrep.py")
RECORDS = os.path.join(".qa_restore", "manual")

Log = Callable[[str, str], None]


@dataclasses.dataclass
class EBTask:
    uid: str
    script: str            # the delivered script
    asdm: str              # raw/<uid>.asdm.sdm
    workdir: str           # calibrated/<uid>.calibration
    log: str               # <workdir>/<uid>.scriptForCalibration.log
    output: str            # <workdir>/<uid>.ms.split.cal (made by the script)
    final: str             # calibrated/<uid>.ms.split.cal
    deletes: list[str]     # SPACESAVING deletions after the move
    links: dict[str, str]  # link path -> target (relative)
    blocked: list[vg.Guard]
    guards: list[vg.Guard]


@dataclasses.dataclass
class PostTask:
    kind: str
    script: str
    log: str
    blocked: list[vg.Guard]
    guards: list[vg.Guard]


@dataclasses.dataclass
class ManualPlan:
    member: str
    mous: str
    calibrated: str
    ebs: list[str]
    semipass: list[str]
    eb_tasks: list[EBTask]
    post_tasks: list[PostTask]
    final_deletes: list[str]      # SPACESAVING >= 3, if calibrated.ms exists
    calibrated_ms: str
    warnings: list[str]
    present_version: str
    raw_bytes: int
    need_bytes: int | None        # scriptForPI.py's budget (None: no check)
    options: dict

    @property
    def blocked(self) -> list[tuple[str, list[vg.Guard]]]:
        return [(t.script, t.blocked) for t in [*self.eb_tasks, *self.post_tasks] if t.blocked]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for t in d["eb_tasks"] + d["post_tasks"]:
            t["guards"] = [_guard_dict(g) for g in t["guards"]]
            t["blocked"] = [_guard_dict(g) for g in t["blocked"]]
        return d


def _guard_dict(g: Any) -> dict:
    if isinstance(g, dict):
        g = vg.Guard(**g)
    return {"line": g.lineno, "test": g.test, "asks": g.asked}


def _rel(target: str, link_dir: str) -> str:
    return os.path.relpath(target, link_dir)


def plan_manual(info: MemberInfo, texts: dict[str, str], ephemerides: list[str],
                opts: RestoreOptions, calibrated: str, present_version: str) -> ManualPlan:
    """Plan the manual restore of one member (pure).

    Parameters
    ----------
    info
        The member as read by :func:`.discover.inspect_member`.
    texts
        Script path -> text (for the version tests).
    ephemerides
        Paths of ``calibration/*.eph``.
    calibrated
        The output folder (``<member>/calibrated`` by default).
    present_version
        The CASA at hand, '6.7.6'.

    Raises
    ------
    PlanError
        Not a manual delivery, or an EB with a script but without its ASDM.
    """
    member = info.path
    if not info.manual_scripts:
        raise PlanError(f"{member}/script: no *uid*.ms.scriptForCalibration.py "
                        "(not a manually calibrated delivery)")
    wanted = sorted(info.manual_scripts, key=uid_sort_key)
    ebs, semipass, missing = match_ebs(wanted, sorted(info.raw_asdms, key=uid_sort_key))
    warnings = [f"{u}: ASDM in raw/ without a calibration script (probably QA semipass data); "
                "not restored" for u in semipass]
    if missing:
        raise PlanError(f"{member}: ASDM missing in raw/ for EB(s) with a calibration script: "
                        + ", ".join(f"{u} (raw/{u}.asdm.sdm)" for u in missing))
    level = opts.level
    flux = texts.get(info.post_scripts.get("scriptForFluxCalibration.py", ""), "")
    pol = texts.get(info.post_scripts.get("scriptForPolCalibration.py", ""), "")
    if level > 1 and ("ACreNorm" in flux or "Renormalization" in pol):
        # scriptForPI.py 2.5 (isRenorm): the renormalization works on the <uid>.ms
        warnings.append(f"SPACESAVING={opts.spacesaving} lowered to 1: the post scripts apply "
                        "the amplitude renormalization, which needs the *.ms (as scriptForPI.py)")
        level = 1
    tasks = []
    for uid in ebs:
        wd = os.path.join(calibrated, f"{uid}.calibration")
        links = {os.path.join(wd, uid): _rel(info.raw_asdms[uid], wd)}
        for e in ephemerides:
            links[os.path.join(wd, os.path.basename(e))] = _rel(e, wd)
        deletes = []
        if level >= 1:
            deletes.append(os.path.join(wd, f"{uid}.ms.split"))
        if level >= 2:
            deletes.append(os.path.join(wd, f"{uid}.ms"))
        script = info.manual_scripts[uid]
        guards = vg.find_guards(texts.get(script, ""))
        tasks.append(EBTask(
            uid=uid, script=script, asdm=info.raw_asdms[uid], workdir=wd,
            log=os.path.join(wd, f"{uid}.scriptForCalibration.log"),
            output=os.path.join(wd, f"{uid}.ms.split.cal"),
            final=os.path.join(calibrated, f"{uid}.ms.split.cal"), deletes=deletes, links=links,
            guards=guards, blocked=vg.blocking(guards, present_version)))
    post = []
    for kind in POST_ORDER:
        s = info.post_scripts.get(kind)
        if s:
            guards = vg.find_guards(texts.get(s, ""))
            post.append(PostTask(kind=kind, script=s,
                                 log=os.path.join(calibrated, kind[:-3] + ".log"),
                                 guards=guards, blocked=vg.blocking(guards, present_version)))
    calms = os.path.join(calibrated, "calibrated.ms")
    final_deletes = [t.final for t in tasks] if level >= 3 else []
    if level >= 3 and not any(p.kind in ("scriptForImagingPrep.py", "scriptForFluxCalibration.py")
                              for p in post):
        warnings.append("SPACESAVING >= 3: no script makes calibrated.ms, so the "
                        "*.ms.split.cal are kept (as scriptForPI.py does)")
    raw_bytes = sum(info.raw_sizes.get(u, 0) for u in ebs)
    need = scriptforpi_need(raw_bytes, opts.spacesaving, bool(post))
    return ManualPlan(member=member, mous=info.mous, calibrated=calibrated, ebs=ebs,
                      semipass=semipass, eb_tasks=tasks, post_tasks=post,
                      final_deletes=final_deletes, calibrated_ms=calms, warnings=warnings,
                      present_version=present_version, raw_bytes=raw_bytes, need_bytes=need,
                      options={"spacesaving": opts.spacesaving, "usems": opts.usems,
                               "ignoreversion": opts.ignoreversion, "dryrun": opts.dryrun})


def format_manual_plan(plan: ManualPlan) -> str:
    """The plan as text (dryrun)."""
    lines = [f"qa_restore plan for {plan.member} (manual calibration: delivered scripts are "
             f"executed; CASA {plan.present_version})",
             f"  output: {plan.calibrated}",
             f"  EBs in scriptForPI.py order: {', '.join(plan.ebs)}"]
    for u in plan.semipass:
        lines.append(f"  skipped (semipass, no script): {u}")
    for t in plan.eb_tasks:
        lines.append(f"  EB {t.uid}:")
        lines.append(f"    working folder {t.workdir}; links "
                     + ", ".join(f"{os.path.basename(k)} -> {v}" for k, v in t.links.items()))
        lines.append(f"    run {os.path.basename(t.script)} (applyonly=True), log {t.log}")
        lines.append(f"    move {os.path.basename(t.output)} to {plan.calibrated}")
        if t.deletes:
            lines.append("    delete " + ", ".join(os.path.basename(d) for d in t.deletes))
        for g in t.guards:
            lines.append(f"    version test line {g.lineno}: asks for CASA {g.asked}"
                         + (" -> STOPS here" if g in t.blocked else " -> passes"))
    for p in plan.post_tasks:
        lines.append(f"  then run {os.path.basename(p.script)} in {plan.calibrated}, log {p.log}")
        for g in p.guards:
            lines.append(f"    version test line {g.lineno}: asks for CASA {g.asked}"
                         + (" -> STOPS here" if g in p.blocked else " -> passes"))
    if plan.final_deletes:
        lines.append("  if calibrated.ms exists: delete "
                     + ", ".join(os.path.basename(d) for d in plan.final_deletes))
    if plan.need_bytes is None:
        lines.append("  disk: not checked (SPACESAVING=-1)")
    else:
        lines.append(f"  disk: scriptForPI.py budget {fmt_bytes(plan.need_bytes)} "
                     f"(raw {fmt_bytes(plan.raw_bytes)})")
    for w in plan.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- I/O below

def _default_log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def _present_version() -> str:
    from .scriptenv import casa_version
    v, _ = casa_version()
    return ".".join(str(x) for x in v[:3])


def _record(calibrated: str, name: str) -> Path:
    return Path(calibrated) / RECORDS / f"{name}.json"


def _read_record(calibrated: str, name: str) -> dict | None:
    p = _record(calibrated, name)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _write_record(calibrated: str, name: str, data: dict) -> None:
    p = _record(calibrated, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, json.dumps(data, indent=1, default=str))


def _is_ms(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "table.dat"))


def _link(path: str, target: str) -> None:
    if os.path.lexists(path):
        if os.path.islink(path) and os.readlink(path) == target:
            return
        remove(path)
    os.symlink(target, path)


def _script_code(script: str, text: str, blocked: list, patched_path: str) -> tuple[str, str]:
    """(path run, code text): the delivered script, or a patched copy of it."""
    if not blocked:
        return script, text
    try:
        patched = vg.patch_text(text, blocked)
    except (SyntaxError, ValueError):
        return script, text     # Python 2 code: compiling it fails with a clear message
    write_text_atomic(patched_path, patched)
    return patched_path, patched


def _delete(paths: list[str], log: Log) -> list[str]:
    done = []
    for d in paths:
        if os.path.lexists(d):
            log(f"SPACESAVING: deleting {d}", "INFO")
            remove(d)
            done.append(d)
    return done


def _run_eb(plan: ManualPlan, t: EBTask, texts: dict[str, str], opts: RestoreOptions,
            log: Log) -> dict:
    from .scriptenv import run_script
    res: dict[str, Any] = {"uid": t.uid, "script": t.script, "workdir": t.workdir, "log": t.log,
                           "outputs": [], "deleted": [], "seconds": 0.0, "status": "failed",
                           "error": "", "traceback": ""}
    t0 = time.perf_counter()
    rec = _read_record(plan.calibrated, t.uid)
    if _is_ms(t.final) or (rec and rec.get("status") == "ok"):
        # completed before (the move is atomic); finish the deletions if interrupted there
        res["deleted"] = _delete(t.deletes, log)
        res["status"] = "skipped"
        res["reason"] = "already restored"
        res["outputs"] = [t.final] if os.path.isdir(t.final) else []
        if not rec:
            _write_record(plan.calibrated, t.uid, {"status": "ok", "final": t.final})
        log(f"{t.uid}: already restored ({t.final}); skipped", "INFO")
        return res
    if opts.usems:
        if not _is_ms(os.path.join(t.workdir, f"{t.uid}.ms")):
            res["error"] = (f"usems=True: cannot find calibrated/{t.uid}.calibration/{t.uid}.ms "
                            f"({t.workdir}); import the ASDM there first or run without usems")
            log(res["error"], "SEVERE")
            return res
        remove(t.output)
    elif os.path.exists(t.workdir):
        log(f"{t.uid}: {t.workdir} left by an interrupted or failed run; starting this EB again",
            "WARN")
        remove(t.workdir)
    os.makedirs(t.workdir, exist_ok=True)
    for path, target in t.links.items():
        _link(path, target)
    patched = os.path.join(t.workdir, os.path.basename(t.script)[:-3] + ".ignoreversion.py")
    ran, code = _script_code(t.script, texts[t.script], t.blocked, patched)
    res["ran"] = ran
    if t.blocked:
        log(f"{t.uid}: ignoreversion=True: running {ran} (CASA version test disabled; the "
            f"script asks for CASA {t.blocked[0].asked}, this is {plan.present_version})", "WARN")
    log(f"{t.uid}: running {os.path.basename(t.script)} in {t.workdir} (log {t.log})", "INFO")
    r = run_script(ran, t.workdir, t.log, text=code, applyonly=True)
    res["script_seconds"] = r["seconds"]
    if r["status"] != "ok":
        res["error"], res["traceback"] = r["error"], r["traceback"]
        log(f"{t.uid}: {r['error']}\n{r['traceback']}", "SEVERE")
        res["seconds"] = time.perf_counter() - t0
        return res
    if not _is_ms(t.output):
        res["error"] = f"{t.uid}: {os.path.basename(t.output)} was not created by {t.script}"
        log(res["error"], "SEVERE")
        res["seconds"] = time.perf_counter() - t0
        return res
    if os.path.lexists(t.final):   # an incomplete leftover (no table.dat) under the final name
        remove(t.final)
    os.replace(t.output, t.final)
    log(f"{t.uid}: {os.path.basename(t.final)} moved to {plan.calibrated}", "INFO")
    res["deleted"] = _delete(t.deletes, log)
    res["outputs"] = [t.final]
    res["status"] = "ok"
    res["seconds"] = time.perf_counter() - t0
    _write_record(plan.calibrated, t.uid, {"status": "ok", "final": t.final, "ran": ran,
                                           "seconds": res["seconds"]})
    return res


def _run_post(plan: ManualPlan, p: PostTask, texts: dict[str, str], opts: RestoreOptions,
              log: Log) -> dict:
    from .scriptenv import run_script
    name = "post-" + p.kind[:-3]
    res: dict[str, Any] = {"kind": p.kind, "script": p.script, "log": p.log, "status": "failed",
                           "outputs": [], "seconds": 0.0, "error": "", "traceback": ""}
    rec = _read_record(plan.calibrated, name)
    if rec and rec.get("status") == "ok":
        res.update(status="skipped", reason="already run", outputs=rec.get("outputs", []))
        log(f"{p.kind}: already run; skipped", "INFO")
        return res
    cal = Path(plan.calibrated)
    if rec and rec.get("status") == "started":
        # interrupted: remove what that attempt created (never the EB outputs)
        protected = set(rec.get("before", [])) | {os.path.basename(t.final) for t in plan.eb_tasks}
        for e in sorted(os.listdir(cal)):
            if e not in protected and not e.startswith("."):
                log(f"{p.kind}: removing {e} left by an interrupted run", "WARN")
                remove(cal / e)
    before = sorted(e for e in os.listdir(cal) if not e.startswith("."))
    _write_record(plan.calibrated, name, {"status": "started", "before": before})
    patched = os.path.join(plan.calibrated, os.path.basename(p.script)[:-3] + ".ignoreversion.py")
    ran, code = _script_code(p.script, texts[p.script], p.blocked, patched)
    res["ran"] = ran
    log(f"running {os.path.basename(p.script)} in {plan.calibrated} (log {p.log})", "INFO")
    t0 = time.perf_counter()
    r = run_script(ran, plan.calibrated, p.log, text=code, applyonly=True)
    res["seconds"] = time.perf_counter() - t0
    after = sorted(e for e in os.listdir(cal) if not e.startswith("."))
    res["outputs"] = [str(cal / e) for e in after if e not in before
                      and str(cal / e) != os.path.abspath(p.log)]
    if r["status"] != "ok":
        res["error"], res["traceback"] = r["error"], r["traceback"]
        log(f"{p.kind}: {r['error']}\n{r['traceback']}", "SEVERE")
        return res
    res["status"] = "ok"
    _write_record(plan.calibrated, name, {"status": "ok", "outputs": res["outputs"]})
    return res


def restore_manual_member(member_dir: str | os.PathLike, calibrated_dir: str | os.PathLike | None
                          = None, options: RestoreOptions | None = None,
                          log: Log | None = None,
                          free: Callable[[str], int] = free_bytes) -> dict:
    """Restore one manually calibrated member by running its delivered scripts.

    Parameters
    ----------
    member_dir
        The ``member.uid___*`` folder.
    calibrated_dir
        Output folder; default ``options.outdir``, else ``<member>/calibrated``
        (scriptForPI.py's).
    options
        :class:`.options.RestoreOptions` (spacesaving, usems, ignoreversion,
        dryrun are used).
    log
        ``log(message, level)``; default: casalog with origin qa_restore.
    free
        Free-space probe (for tests).

    Returns
    -------
    dict
        ``status`` ('ok' | 'failed'), ``mode`` 'manual', ``ebs`` (order run),
        ``eb_results`` {uid: {status, outputs, seconds, log, error,
        traceback, deleted ...}}, ``post`` (per post script), ``produced``
        {uid: [paths]}, ``calibrated_ms``, ``deleted``, ``warnings``,
        ``disk``, ``seconds``, ``error`` (when failed); with ``dryrun`` the
        plan, and nothing done.

    Raises
    ------
    PlanError, DeliveryError
        The member cannot be restored (no scripts, a missing ASDM, ...).
    DiskError
        Not enough free disk for scriptForPI.py's budget (spacesaving=-1
        skips the check).
    """
    t_start = time.perf_counter()
    opts = options or RestoreOptions()
    log = log or _default_log
    member = Path(member_dir).resolve()
    info = inspect_member(member)
    out = calibrated_dir or opts.outdir
    calibrated = os.path.abspath(out) if out else str(member / "calibrated")
    texts = {}
    for s in [*info.manual_scripts.values(), *info.post_scripts.values()]:
        texts[s] = Path(s).read_text(errors="replace")
    calib = member / "calibration"
    ephs = sorted(str(calib / n) for n in os.listdir(calib) if fnmatch.fnmatch(n, "*.eph"))
    present = _present_version()
    plan = plan_manual(info, texts, ephs, opts, calibrated, present)
    result: dict[str, Any] = {
        "member": str(member), "mous": plan.mous, "mode": "manual", "calibrated": calibrated,
        "ebs": plan.ebs, "semipass": plan.semipass, "eb_results": {}, "post": [],
        "produced": {}, "calibrated_ms": "", "deleted": [], "warnings": list(plan.warnings),
        "executes_delivered_code": True, "casa_version": present, "dryrun": opts.dryrun,
        "status": "failed"}
    for w in plan.warnings:
        log(f"{plan.mous}: {w}", "WARN")
    blocked = plan.blocked
    if blocked and not opts.ignoreversion:
        by_demand: dict[str, list[tuple[str, list[vg.Guard]]]] = {}
        for s, g in blocked:
            by_demand.setdefault(g[0].asked, []).append((s, g))
        msgs = [vg.mismatch_message([s for s, _ in items], items[0][1], present)
                for items in by_demand.values()]
        result["error"] = msgs[0] if len(msgs) == 1 else " | ".join(msgs)
        result["version_guards"] = [{"script": s, "guards": [_guard_dict(x) for x in g]}
                                    for s, g in blocked]
        if opts.dryrun:
            result["plan"] = plan.as_dict()
            text = format_manual_plan(plan)
            print(text)
            log(text, "INFO")
        for m in msgs:
            log(m, "SEVERE")
        for t in plan.eb_tasks:
            result["eb_results"][t.uid] = {"uid": t.uid, "status": "not run", "script": t.script,
                                           "log": "", "outputs": [], "seconds": 0.0,
                                           "error": result["error"], "traceback": ""}
        return result
    if blocked:
        result["warnings"].append(
            "ignoreversion=True: " + ", ".join(f"{os.path.basename(s)} (asks for CASA "
                                               f"{g[0].asked})" for s, g in blocked)
            + f" run as patched copies in CASA {present}; results may differ from the QA2 "
            "calibration")
    if opts.dryrun:
        text = format_manual_plan(plan)
        print(text)
        log(text, "INFO")
        result.update(plan=plan.as_dict(), status="ok",
                      disk={"needed": plan.need_bytes, "available": free(calibrated)})
        for t in plan.eb_tasks:
            result["eb_results"][t.uid] = {"uid": t.uid, "status": "planned", "script": t.script,
                                           "log": t.log, "outputs": [t.final], "seconds": 0.0}
        return result
    # disk: scriptForPI.py's budget (we cannot know what the delivered scripts write)
    done_before = all(os.path.isdir(t.final) for t in plan.eb_tasks)
    if plan.need_bytes is not None and not done_before:
        hints = ["SPACESAVING=1 budgets 7x the raw size, 2 or more 3x (+3x with post scripts)"]
        result["disk"] = check_disk(plan.need_bytes, calibrated, opts.spacesaving, hints,
                                    free=free)
    else:
        result["disk"] = {"checked": False, "needed": plan.need_bytes, "available": None}
    os.makedirs(calibrated, exist_ok=True)
    log(f"{plan.mous}: manual restore of {len(plan.ebs)} EB(s) ({', '.join(plan.ebs)}) by the "
        "delivered scripts", "INFO")
    failed = []
    for i, t in enumerate(plan.eb_tasks, 1):
        log(f"{plan.mous}: EB {i}/{len(plan.eb_tasks)} {t.uid}", "INFO")
        r = _run_eb(plan, t, texts, opts, log)
        result["eb_results"][t.uid] = r
        result["deleted"] += r.get("deleted", [])
        if r["status"] in ("ok", "skipped"):
            result["produced"][t.uid] = r["outputs"]
        else:
            failed.append(t.uid)
    if failed:
        msg = (f"EB(s) failed: {', '.join(failed)}; the post scripts ("
               + ", ".join(p.kind for p in plan.post_tasks) + ") were not run") \
            if plan.post_tasks else f"EB(s) failed: {', '.join(failed)}"
        result["error"] = msg
        for p in plan.post_tasks:
            result["post"].append({"kind": p.kind, "script": p.script, "status": "not run",
                                   "reason": msg})
    else:
        for p in plan.post_tasks:
            r = _run_post(plan, p, texts, opts, log)
            result["post"].append(r)
            if r["status"] not in ("ok", "skipped"):
                result["error"] = r["error"]
                break
    post_ok = all(p.get("status") in ("ok", "skipped") for p in result["post"])
    if _is_ms(plan.calibrated_ms):
        result["calibrated_ms"] = plan.calibrated_ms
    if plan.final_deletes and not failed and post_ok and result["calibrated_ms"]:
        result["deleted"] += _delete(plan.final_deletes, log)
        for uid in result["produced"]:
            result["produced"][uid] = [o for o in result["produced"][uid]
                                       if os.path.lexists(o)]
    result["seconds"] = time.perf_counter() - t_start
    result["status"] = "ok" if not failed and post_ok else "failed"
    if result["status"] == "ok":
        log(f"{plan.mous}: manual restore completed in {result['seconds']:.1f} s; results in "
            f"{calibrated}", "INFO")
    else:
        log(f"{plan.mous}: manual restore FAILED: {result.get('error', '')}", "SEVERE")
    return result
