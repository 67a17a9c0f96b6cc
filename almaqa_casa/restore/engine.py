"""qa_restore's library entry point: find members, model, plan, check, execute, report.

``restore(deliverydir, params)`` returns the result dict the task returns.
Every member, whatever its kind, goes the same way: the member model
(:mod:`almaqa_casa.delivery.member`), the planner of its kind
(:mod:`.planners`), the disk and permission checks, the one executor
(:mod:`.executor`) under a per-member lock, and one result shape
(:func:`member_result`).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import scale
from ..delivery import layout
from ..delivery.archive import extract_archives, pending_archives
from ..delivery.member import Member, read_member, read_small_text
from ..errors import AlmaqaError
from ..lock import FolderLock
from ..log import post
from .disk import check_disk, fmt_bytes, free_bytes
from .executor import run_plan
from .options import RestoreOptions, make_options
from .plan import MemberPlan, disk_hints, format_plan
from .planners import plan_member
from .records import done_steps
from .steps.selfcal import selfcal_result

__all__ = ["restore", "restore_member", "RestoreError", "DeliveryNotFound", "NotWritable",
           "find_or_unpack"]


class RestoreError(AlmaqaError, RuntimeError):
    """The restore cannot go on; the message says why."""


class DeliveryNotFound(AlmaqaError, ValueError):
    """The folder given holds no delivery; the message names it."""


class NotWritable(AlmaqaError, ValueError):
    """The output folder cannot be written; the message suggests ``outdir``."""


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


# ---- finding members --------------------------------------------------------------
def _archives(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and any(
        fnmatch.fnmatchcase(p.name, pat) for pat in ("*.tar", "*.tar.gz", "*.tgz")))


def find_or_unpack(deliverydir: str, dryrun: bool, outdir: str = ""
                   ) -> tuple[list[Path], list[str]]:
    """Member folders of the delivery; archive tars in the folder are extracted first.

    Extraction is resumable (:func:`~almaqa_casa.delivery.archive.extract_archives`
    records each tar it completes): it runs whenever the folder holds archive
    tars, so a restore interrupted during the extraction completes it on the
    next run.  The tars are extracted beside themselves, or, when that folder
    is read-only, into ``<outdir>/extracted``.
    """
    notes: list[str] = []
    folder = Path(deliverydir)
    tars = _archives(folder)
    if not tars:
        return layout.find_members(deliverydir), notes
    dest = folder
    if not _writable_parent(str(folder))[0]:
        if not outdir:
            raise NotWritable(f"{deliverydir}: the archive tars cannot be extracted here (the "
                              "folder is not writable); give an output folder: "
                              "qa_restore(..., outdir='/a/writable/folder')")
        dest = Path(outdir) / "extracted"
    if dryrun:
        todo = pending_archives(tars, dest)
        if not todo:       # extracted before: plan what is there
            return layout.find_members(dest), notes
        notes.append(f"archive tar files found; they would be extracted into {dest} (resumably): "
                     + ", ".join(os.path.basename(t) for t in todo))
        return [], notes
    _log(f"extracting {len(tars)} archive file(s) into {dest}")
    report = extract_archives(tars, dest)
    if report.extracted:
        notes.append("extracted: " + ", ".join(os.path.basename(t) for t in report.extracted))
    return layout.find_members(dest), notes


# ---- I/O around the planners ------------------------------------------------------------
def _present_version() -> str:
    from .scriptenv import casa_version
    v, _ = casa_version()
    return ".".join(str(x) for x in v[:3])


def _script_texts(member: Member) -> dict[str, str]:
    return {p: read_small_text(p) for p in [*member.manual_scripts.values(),
                                            *member.post_scripts.values()]}


def _ephemerides(member: Member) -> list[str]:
    calib = Path(member.path) / "calibration"
    try:
        return sorted(str(calib / n) for n in os.listdir(calib) if fnmatch.fnmatch(n, "*.eph"))
    except OSError:
        return []


def _member_opts(opts: RestoreOptions, member: Member, several: bool) -> RestoreOptions:
    if opts.outdir and several:   # one output folder per MOUS
        return dataclasses.replace(opts, outdir=os.path.join(opts.outdir,
                                                             Path(member.path).name))
    return opts


def _writable_parent(path: str) -> tuple[bool, str]:
    """(can ``path`` be created or written, the nearest existing folder probed).

    A real probe (create and remove a hidden file), since permission bits
    say nothing for root, read-only mounts or immutable folders."""
    import tempfile
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".almaqa-write-probe-", dir=p)
    except OSError:
        return False, p
    os.close(fd)
    os.unlink(probe)
    return True, p


def plan_one(member: Member, opts: RestoreOptions, present: str) -> MemberPlan:
    """The plan of one member (reads the scripts' texts, then the pure planner)."""
    plan = plan_member(member, opts, _script_texts(member), _ephemerides(member), present)
    ok, where = _writable_parent(plan.calibrated)
    if not ok:
        plan.warnings.append(f"the output folder {plan.calibrated} cannot be created: {where} is "
                             "not writable (a read-only delivery?); choose another one with "
                             "outdir='...'")
    return plan


# ---- results ----------------------------------------------------------------------------
def _produced(plan: MemberPlan) -> dict[str, list[str]]:
    """MSs each EB left, as the user sees them (a link in calibrated/ rather than its
    target in working/, each MS once)."""
    out: dict[str, list[str]] = {}
    for uid in plan.ebs:
        seen: dict[str, str] = {}
        for s in plan.steps:
            if s.eb != uid:
                continue
            for o in s.outputs:
                if not (o.endswith((".ms", ".split.cal", "_bl")) or o[:-1].endswith(".atmcor.atmtype")) \
                        or not os.path.lexists(o):
                    continue
                key = os.path.realpath(o)
                best = seen.get(key)
                if best is None or os.path.dirname(o) == plan.calibrated:
                    seen[key] = o
        out[uid] = list(dict.fromkeys(seen.values()))
    return out


def member_result(plan: MemberPlan, run: dict | None, member: Member) -> dict:
    """The one result shape of a member, whatever its kind."""
    eb_results: dict[str, dict] = {}
    for uid in plan.ebs:
        r = (run or {}).get("ebs", {}).get(uid)
        steps = [s.id for s in plan.steps if s.eb == uid]
        if r is None:
            eb_results[uid] = {"status": "planned" if run is None else "not run", "steps": steps}
            continue
        timings = r["timings"]
        extra = {k: v for t in timings for k, v in (t.get("extra") or {}).items()
                 if k in ("log", "ran", "jyperk", "atmcor", "baseline")}
        status = ("failed" if r["failed"] else
                  "skipped" if timings and all(t["skipped"] for t in timings) else "ok")
        eb_results[uid] = {"status": status, "steps": steps, "server": r.get("server", 0),
                           "host": r.get("host", ""),
                           "seconds": round(sum(t["seconds"] for t in timings), 2),
                           "error": (r["failed"] or {}).get("error", ""),
                           "traceback": (r["failed"] or {}).get("traceback", ""),
                           "not_run": r.get("not_run", []), **extra}
        if r["failed"] and r["failed"].get("log"):
            eb_results[uid]["log"] = r["failed"]["log"]
    produced = _produced(plan) if run is not None else {}
    for uid, res in eb_results.items():
        res["outputs"] = produced.get(uid, [])
    posts, deleted, warnings, renorm = [], [], list(plan.warnings), {}
    for t in (run or {}).get("timings", []):
        ex = t.get("extra") or {}
        deleted += ex.get("deleted", [])
        warnings += [f"{plan.mous}: {w}" for w in ex.get("warnings", []) or []]
        if "renorm" in ex:
            renorm[t["step"].split(":")[0]] = ex["renorm"]
        if ex.get("fallback_reason"):
            warnings.append(f"{plan.mous} {t['step']}: {ex['fallback_reason']}; imported with "
                            "lazy=False")
    by_id = {s.id: s for s in plan.steps}
    for r in (run or {}).get("member", []):
        s = by_id[r["step"]]
        if s.kind != "post":
            continue
        ex = r.get("extra") or {}
        posts.append({"kind": s.params["post_kind"], "script": s.params["script"],
                      "log": s.params["log"], "status": r["status"],
                      "outputs": ex.get("outputs", []), "error": r.get("error", r.get("reason", "")),
                      "traceback": r.get("traceback", "")})
    calms = os.path.join(plan.calibrated, "calibrated.ms")
    failed = (run or {}).get("failed", [])
    status = "ok" if run is None or not failed else "failed"
    res = {
        "member": plan.member, "mous": plan.mous, "mode": plan.mode,
        "engine": (run or {}).get("engine"),
        "total_power": member.total_power, "calibrated": plan.calibrated, "ebs": plan.ebs,
        "semipass": plan.semipass, "route": plan.route, "delivery": plan.delivery,
        "executes_delivered_code": any(s.executes_code for s in plan.steps),
        "eb_results": eb_results, "post": posts, "produced": produced,
        "calibrated_ms": calms if os.path.isfile(os.path.join(calms, "table.dat")) else "",
        "deleted": deleted, "renorm": renorm, "warnings": warnings, "notices": plan.notices,
        "selfcal": selfcal_result((plan.delivery or {}).get("selfcal"),
                                  (run or {}).get("timings", [])),
        "parang": bool(plan.options.get("parang")),
        "predicted_peak_bytes": plan.peak_bytes, "raw_bytes": plan.raw_bytes,
        "peak_bytes": (run or {}).get("peak_bytes", 0),
        "seconds": round((run or {}).get("seconds", 0.0), 2), "status": status,
        "steps": [{"step": t["step"], "seconds": round(t["seconds"], 3),
                   "skipped": t.get("skipped", False)} for t in (run or {}).get("timings", [])],
    }
    if failed:
        res["error"] = failed[0] if len(failed) == 1 else " | ".join(failed)
    return res


def _blocked_result(plan: MemberPlan, member: Member, present: str) -> dict:
    from . import versionguard as vg
    by_demand: dict[str, list[str]] = {}
    for script, guards in plan.blocked:
        by_demand.setdefault(guards[0]["asks"], []).append(script)
    msgs = []
    for asked, scripts in by_demand.items():
        g = vg.Guard(lineno=0, end_lineno=0, test="", versions=(asked,), stop_in_body=True,
                     message="")
        msgs.append(vg.mismatch_message(scripts, [g], present))
    res = member_result(plan, None, member)
    res.update(status="failed", error=msgs[0] if len(msgs) == 1 else " | ".join(msgs),
               version_guards=[{"script": s, "guards": g} for s, g in plan.blocked])
    for r in res["eb_results"].values():
        r.update(status="not run", error=res["error"])
    return res


# ---- the restore -------------------------------------------------------------------------
def restore_member(member_dir: str | os.PathLike, opts: RestoreOptions,
                   free: Callable[[str], int] = free_bytes, present: str | None = None) -> dict:
    """Restore one member folder; returns its :func:`member_result` (see the task XML)."""
    r = _restore_members([read_member(member_dir)], opts, free, present)
    return r["members"][0]


def _restore_members(models: list[Member], opts: RestoreOptions,
                     free: Callable[[str], int], present: str | None,
                     params: Mapping[str, Any] | None = None) -> dict:
    present = present or _present_version()
    if opts.nprocs_auto and scale.servers():    # one EB per casampi server at a time
        opts = dataclasses.replace(opts, nprocs=len(scale.servers()))
    several = len(models) > 1
    plans = [(m, plan_one(m, _member_opts(opts, m, several), present)) for m in models]
    results: list[dict] = []
    todo: list[tuple[Member, MemberPlan]] = []
    for m, plan in plans:
        if plan.blocked and not opts.ignoreversion:
            res = _blocked_result(plan, m, present)
            _log(res["error"], "SEVERE")
            if opts.dryrun:
                _print_plan(plan)
                res["plan"] = plan.as_dict()
            results.append(res)
        else:
            if plan.blocked:
                plan.warnings.append(
                    "ignoreversion=True: " + ", ".join(
                        f"{os.path.basename(s)} (asks for CASA {g[0]['asks']})"
                        for s, g in plan.blocked)
                    + f" run as patched copies in CASA {present}; results may differ from the "
                    "QA2 calibration")
            todo.append((m, plan))
    out: dict[str, Any] = {"members": results, "disk": {}}
    if not todo:
        return out
    need = sum(p.check_bytes or 0 for m, p in todo if not _complete(p))
    where = todo[0][1].calibrated
    if opts.nprocs_auto and opts.nprocs > 1 and opts.check_disk and need > free(where):
        opts = dataclasses.replace(opts, nprocs=1)   # EBs in parallel need more room at once
        todo = [(m, plan_one(m, _member_opts(opts, m, several), present)) for m, _ in todo]
        need = sum(p.check_bytes or 0 for m, p in todo if not _complete(p))
        out["warnings"] = ["not enough free disk for EBs in parallel: restoring one EB at a time"]
    if opts.dryrun:
        for m, plan in todo:
            _print_plan(plan)
            res = member_result(plan, None, m)
            res["plan"] = plan.as_dict()
            results.append(res)
        out["disk"] = {"needed": need, "available": free(where)}
        return out
    for m, plan in todo:
        ok, at = _writable_parent(plan.calibrated)
        if not ok and plan.steps:
            raise NotWritable(f"{plan.member}: cannot write the restored data to {plan.calibrated}"
                              f" ({at} is not writable; a read-only delivery?). Choose an "
                              "output folder: qa_restore(..., outdir='/a/writable/folder')")
    hints = disk_hints(todo[0][1])
    out["disk"] = (check_disk(need, where, opts.spacesaving, hints, free=free) if need else
                   {"checked": False, "needed": 0, "available": None})
    def run_one(item: tuple[Member, MemberPlan]) -> dict:
        m, plan = item
        for w in plan.warnings:
            _log(f"{plan.mous}: {w}", "WARN")
        if not plan.steps:
            return member_result(plan, {"ebs": {}, "member": [], "timings": [], "failed": [],
                                        "seconds": 0.0, "peak_bytes": 0}, m)
        for n in plan.notices:
            _log(f"{plan.mous}: NOTE: {n}", "WARN")
        _log(f"{plan.mous}: restoring {len(plan.ebs)} EB(s) ({plan.mode}, {plan.route} route); "
             f"predicted peak disk {fmt_bytes(plan.peak_bytes)}")
        Path(plan.calibrated).mkdir(parents=True, exist_ok=True)
        with FolderLock(plan.calibrated, "qa_restore"):
            run = run_plan(plan, m, opts, nprocs=1 if plan.mode == "manual" else opts.nprocs)
            # verification, provenance (warning, MS HISTORY), restore.json/html: CASA in
            # this process, while other MOUSes may run in threads (scale.map_members)
            from .verify import finish_member
            with scale.client_lock:
                res = member_result(plan, run, m)
                finish_member(plan, m, res, opts.verify, params or {"deliverydir": m.path},
                              out.get("disk"))
        if res["status"] == "ok":
            _log(f"{plan.mous}: restored in {res['seconds']:.1f} s; results in {plan.calibrated}")
        else:
            _log(f"{plan.mous}: restore FAILED: {res.get('error', '')}", "SEVERE")
        return res

    # with casampi servers the MOUSes run side by side, their EB chains sharing the servers
    results += scale.map_members(run_one, todo)
    return out


def _complete(plan: MemberPlan) -> bool:
    return bool(plan.steps) and len(done_steps(plan)) == len(plan.steps)


def _print_plan(plan: MemberPlan) -> None:
    text = format_plan(plan, done_steps(plan) if os.path.isdir(plan.calibrated) else set())
    print(text)
    _log(text)


def _pipeline_available() -> bool:
    return importlib.util.find_spec("pipeline") is not None


def _run_pipeline_script(member: Member, opts: RestoreOptions) -> dict:
    """scriptForPI.py's restore branch with the ALMA pipeline (usepipeline=True)."""
    if not _pipeline_available():
        raise RestoreError("usepipeline=True needs the ALMA pipeline (import pipeline failed); "
                           "run without usepipeline to restore natively")
    if not member.restorescript:
        raise RestoreError(f"{member.path}/script: no casa_piperestorescript.py")
    cal = Path(opts.outdir or os.path.join(member.path, "calibrated"))
    (cal / "rawdata").mkdir(parents=True, exist_ok=True)
    for uid, asdm in member.raw_asdms.items():
        link = cal / "rawdata" / uid
        if not link.exists():
            os.symlink(os.path.relpath(asdm, link.parent), link)
    if not (cal / "products").exists():
        os.symlink(os.path.relpath(os.path.join(member.path, "calibration"), cal), cal / "products")
    (cal / "working").mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(cal / "working")
    try:
        code = read_small_text(member.restorescript)
        ns: dict[str, Any] = {"__name__": "__main__"}
        import pipeline  # noqa: F401
        ns.update({k: getattr(sys.modules["pipeline"], k) for k in dir(sys.modules["pipeline"])
                   if not k.startswith("_")})
        exec(compile(code, member.restorescript, "exec"), ns)  # delivered script, user's choice
    finally:
        os.chdir(cwd)
    return {"member": member.path, "mode": "pipeline", "ran": member.restorescript,
            "status": "ok"}


def restore(deliverydir: str, params: Mapping[str, Any],
            caller_globals: Mapping[str, Any] | None = None,
            free: Callable[[str], int] = free_bytes) -> dict:
    """Restore every member found at/below ``deliverydir``; see the task's XML."""
    t0 = time.perf_counter()
    opts = make_options(params, caller_globals)
    result: dict[str, Any] = {"deliverydir": os.path.abspath(deliverydir), "mode": None,
                              "engine": scale.engine_name(),
                              "members": [], "ebs": [], "produced": {}, "warnings": [],
                              "steps": [], "peak_disk_bytes": 0, "dryrun": opts.dryrun,
                              "options": {"spacesaving": opts.spacesaving,
                                          "dosplit": opts.dosplit, "docontsub": opts.docontsub,
                                          "postscripts": opts.postscripts,
                                          "sources": dict(opts.sources)},
                              "status": "failed"}
    members, notes = find_or_unpack(deliverydir, opts.dryrun, opts.outdir)
    result["warnings"] += notes
    if not members:
        if opts.dryrun and notes:
            result["status"] = "ok"
            return result
        raise DeliveryNotFound(f"{deliverydir}: no member.uid___* folder found (give a member "
                               "folder, a parent of one up to the project folder, or a folder "
                               "of archive tar files)")
    models = [read_member(m) for m in members]
    result["mode"] = ",".join(sorted({m.kind for m in models}))
    if opts.usepipeline:
        for m in models:
            result["members"].append(_run_pipeline_script(m, opts))
        result["status"] = "ok"
        return result
    out = _restore_members(models, opts, free, None, params={"deliverydir": deliverydir, **params})
    result["warnings"] += out.get("warnings", [])
    result["disk"] = out["disk"]
    for res in out["members"]:
        result["members"].append(res)
        result["ebs"] += res["ebs"]
        result["produced"].update(res["produced"])
        result["warnings"] += res["warnings"]
        if res["renorm"]:
            result.setdefault("renorm", {}).update(res["renorm"])
        result["peak_disk_bytes"] = max(result["peak_disk_bytes"], res["peak_bytes"])
        result["steps"] += [{"member": res["mous"], **t} for t in res["steps"]]
        if "verification" in res:
            result.setdefault("verification", {})[res["mous"]] = res["verification"]["status"]
        if "provenance" in res:
            result["provenance"] = res["provenance"]
        if res.get("error"):
            result.setdefault("error", res["error"])
    result["seconds"] = time.perf_counter() - t0
    statuses = {r["status"] for r in result["members"]}
    result["status"] = "failed" if "failed" in statuses else "ok"
    if not opts.dryrun:
        _log(f"qa_restore {'completed' if result['status'] == 'ok' else 'FAILED'} in "
             f"{result['seconds']:.1f} s; results in "
             + ", ".join(r["calibrated"] for r in result["members"]))
    return result
