"""qa_restore's library entry point: find members, plan, check disk, execute.

``restore(deliverydir, **params)`` returns the result dict the task returns:
mode, EBs, produced MSs per EB, peak disk, time per step, warnings, status.
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

from ..delivery import layout
from ..delivery.archive import extract_into
from ..errors import AlmaqaError
from ..log import post
from .discover import MemberInfo, inspect_member
from .disk import check_disk, fmt_bytes, free_bytes
from .executor import run_plan
from .options import RestoreOptions, make_options
from .plan import MemberPlan, disk_hints, format_plan, make_plan

__all__ = ["RestoreError", "restore"]


class RestoreError(AlmaqaError, RuntimeError):
    """The restore cannot go on; the message says why."""


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def _archives(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and any(
        fnmatch.fnmatchcase(p.name, pat) for pat in ("*.tar", "*.tar.gz", "*.tgz")))


def find_or_unpack(deliverydir: str, dryrun: bool) -> tuple[list[Path], list[str]]:
    """Member folders of the delivery; archive tars in the folder are unpacked first."""
    notes = []
    members = layout.find_members(deliverydir)
    tars = _archives(Path(deliverydir))
    if tars and not members:
        if dryrun:
            notes.append("archive tar files found; they would be extracted into "
                         f"{deliverydir}: " + ", ".join(t.name for t in tars))
            return [], notes
        _log(f"extracting {len(tars)} archive file(s) into {deliverydir}")
        extract_into(tars, deliverydir)
        notes.append("extracted: " + ", ".join(t.name for t in tars))
        members = layout.find_members(deliverydir)
    return members, notes


def _pipeline_available() -> bool:
    return importlib.util.find_spec("pipeline") is not None


def _run_pipeline_script(info: MemberInfo, opts: RestoreOptions) -> dict:
    """scriptForPI.py's restore branch with the ALMA pipeline (usepipeline=True)."""
    if not _pipeline_available():
        raise RestoreError("usepipeline=True needs the ALMA pipeline (import pipeline failed); "
                           "run without usepipeline to restore natively")
    if not info.restorescript:
        raise RestoreError(f"{info.path}/script: no casa_piperestorescript.py")
    cal = Path(opts.outdir or os.path.join(info.path, "calibrated"))
    (cal / "rawdata").mkdir(parents=True, exist_ok=True)
    for uid, asdm in info.raw_asdms.items():
        link = cal / "rawdata" / uid
        if not link.exists():
            os.symlink(os.path.relpath(asdm, link.parent), link)
    if not (cal / "products").exists():
        os.symlink(os.path.relpath(os.path.join(info.path, "calibration"), cal), cal / "products")
    (cal / "working").mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(cal / "working")
    try:
        code = Path(info.restorescript).read_text()
        ns: dict[str, Any] = {"__name__": "__main__"}
        import pipeline  # noqa: F401
        ns.update({k: getattr(sys.modules["pipeline"], k) for k in dir(sys.modules["pipeline"])
                   if not k.startswith("_")})
        exec(compile(code, info.restorescript, "exec"), ns)  # delivered script, user's choice
    finally:
        os.chdir(cwd)
    return {"ran": info.restorescript}


def _eb_outputs(plan: MemberPlan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    deleted = {d for s in plan.steps for d in s.deletes}
    for s in plan.steps:
        if not s.eb:
            continue
        for o in s.outputs:
            if (o.endswith(".ms") or o.endswith(".split.cal")) and o not in deleted:
                out.setdefault(s.eb, []).append(o)
    return out


def _restore_manual(infos: list[MemberInfo], opts: RestoreOptions, result: dict,
                    free: Callable[[str], int] = free_bytes, several: bool = False) -> None:
    """Dispatch manually calibrated members to the manual path (issue 5's module)."""
    try:
        from .manual import restore_manual_member
    except ImportError as exc:
        raise RestoreError("manually calibrated delivery: the manual path "
                           f"(almaqa_casa.restore.manual) is not available yet ({exc})") from None
    for info in infos:
        outdir = opts.outdir or None
        if outdir and several:          # one output folder per MOUS
            outdir = os.path.join(outdir, Path(info.path).name)
        r = restore_manual_member(info.path, outdir, opts, free=free)
        result["members"].append({"member": info.path, "mode": "manual", **{
            k: v for k, v in r.items() if k not in ("produced", "warnings")}})
        result["ebs"] += list(r.get("ebs", []))
        result["produced"].update(r.get("produced", {}) or {})
        result["warnings"] += list(r.get("warnings", []) or [])
        result["steps"] += list(r.get("steps", []) or [])
        if r.get("status") != "ok":
            result["failed"] = True
            if r.get("error"):
                result.setdefault("error", r["error"])


def _plan_all(infos: list[MemberInfo], opts: RestoreOptions,
              several: bool) -> list[tuple[MemberInfo, MemberPlan]]:
    plans = []
    for info in infos:
        mopts = opts
        if opts.outdir and several:   # one output folder per MOUS
            mopts = dataclasses.replace(opts, outdir=os.path.join(opts.outdir,
                                                                  Path(info.path).name))
        plans.append((info, make_plan(info, mopts)))
    return plans


def restore(deliverydir: str, params: Mapping[str, Any],
            caller_globals: Mapping[str, Any] | None = None,
            free: Callable[[str], int] = free_bytes) -> dict:
    """Restore every member found at/below ``deliverydir``; see the task's XML."""
    t0 = time.perf_counter()
    opts = make_options(params, caller_globals)
    result: dict[str, Any] = {"deliverydir": os.path.abspath(deliverydir), "mode": None,
                              "members": [], "ebs": [], "produced": {}, "warnings": [],
                              "steps": [], "peak_disk_bytes": 0, "dryrun": opts.dryrun,
                              "options": {"spacesaving": opts.spacesaving,
                                          "dosplit": opts.dosplit, "docontsub": opts.docontsub,
                                          "sources": dict(opts.sources)},
                              "status": "failed"}
    members, notes = find_or_unpack(deliverydir, opts.dryrun)
    result["warnings"] += notes
    if not members:
        if opts.dryrun and notes:
            result["status"] = "ok"
            return result
        raise RestoreError(f"{deliverydir}: no member.uid___* folder found")
    infos = [inspect_member(m) for m in members]
    modes = {info.calibration for info in infos}
    # scriptForPI runs the scripts of manual data, pipeline or not
    manual = [info for info in infos if info.calibration == "manual"]
    pipeline_infos = [info for info in infos if info.calibration != "manual"]
    plans: list[tuple[MemberInfo, MemberPlan | None]]
    if opts.usepipeline:
        plans = [(info, None) for info in pipeline_infos]
    else:
        plans = _plan_all(pipeline_infos, opts, several=len(members) > 1)
    result["mode"] = ",".join(sorted(modes))
    if manual:
        _restore_manual(manual, opts, result, free=free, several=len(members) > 1)
        if not plans:
            result["seconds"] = time.perf_counter() - t0
            result["status"] = "failed" if result.pop("failed", False) else "ok"
            return result
    if opts.usepipeline:
        for info, _ in plans:
            result["members"].append({"member": info.path, **_run_pipeline_script(info, opts)})
        result["status"] = "ok"
        return result
    if not plans:
        raise RestoreError(f"{deliverydir}: nothing to restore")
    # disk check before any work (all members, one filesystem assumed per output)
    need = sum(p.peak_bytes for _, p in plans)
    where = plans[0][1].calibrated
    if opts.nprocs_auto and opts.nprocs > 1 and opts.check_disk and need > free(where):
        # EBs in parallel need more room at once: one at a time may fit
        opts = dataclasses.replace(opts, nprocs=1)
        plans = _plan_all([i for i, _ in plans], opts, several=len(members) > 1)
        need = sum(p.peak_bytes for _, p in plans)
        result["warnings"].append("not enough free disk for EBs in parallel: restoring one "
                                  "EB at a time")
    if opts.dryrun:
        for info, plan in plans:
            text = format_plan(plan)
            print(text)
            _log(text)
            result["members"].append(plan.as_dict())
            result["warnings"] += plan.warnings
            result["ebs"] += plan.ebs
        result["disk"] = {"needed": need, "available": free(where)}
        result["status"] = "ok"
        return result
    hints = disk_hints(plans[0][1])
    result["disk"] = check_disk(need, where, opts.spacesaving, hints, free=free)
    for info, plan in plans:
        for w in plan.warnings:
            _log(f"{plan.mous}: {w}", "WARN")
        _log(f"{plan.mous}: restoring {len(plan.ebs)} EB(s) ({plan.route} route); predicted "
             f"peak disk {fmt_bytes(plan.peak_bytes)}")
        run = run_plan(plan, info, nprocs=opts.nprocs)
        steps = run["timings"]
        for t in steps:
            for w in (t.get("extra") or {}).get("warnings", []) or []:
                result["warnings"].append(f"{plan.mous}: {w}")
            rn = (t.get("extra") or {}).get("renorm")
            if rn is not None:
                result.setdefault("renorm", {})[t["step"].split(":")[0]] = rn
            fb = (t.get("extra") or {}).get("fallback_reason")
            if fb:
                result["warnings"].append(f"{plan.mous} {t['step']}: {fb}; imported with lazy=False")
        result["members"].append({"member": plan.member, "mous": plan.mous,
                                  "calibrated": plan.calibrated, "ebs": plan.ebs,
                                  "semipass": plan.semipass, "route": plan.route,
                                  "predicted_peak_bytes": plan.peak_bytes,
                                  "peak_bytes": run["peak_bytes"],
                                  "raw_bytes": plan.raw_bytes, "seconds": run["seconds"]})
        result["ebs"] += plan.ebs
        result["produced"].update(_eb_outputs(plan))
        result["warnings"] += plan.warnings
        result["steps"] += [{"member": plan.mous, **{k: v for k, v in t.items() if k != "extra"}}
                            for t in steps]
        result["peak_disk_bytes"] = max(result["peak_disk_bytes"], run["peak_bytes"])
    result["seconds"] = time.perf_counter() - t0
    result["status"] = "failed" if result.pop("failed", False) else "ok"
    _log(f"qa_restore completed in {result['seconds']:.1f} s; results in "
         + ", ".join(m["calibrated"] for m in result["members"]))
    return result
