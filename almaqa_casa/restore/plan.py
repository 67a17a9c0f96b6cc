"""The one restore plan format (pure: data in, data out, no I/O).

Every kind of delivery (pipeline interferometry, manual scripts, and the
kinds to come) is planned into the same :class:`MemberPlan`: a list of
:class:`Step` s with inputs, outputs, the bytes they add, what they delete
and which steps they wait for.  One executor (:mod:`.executor`) runs any
plan; :func:`format_plan` prints any plan (``dryrun=True``); the disk model
walks any plan (:func:`peak_bytes`).  Steps with an ``eb`` form that EB's
chain (EBs are independent); steps with ``eb == ''`` run once every chain
is done.  A planner per delivery kind lives in :mod:`.planners`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..errors import AlmaqaError
from .disk import MARGIN, fmt_bytes

__all__ = ["Step", "MemberPlan", "PlanError", "peak_bytes", "format_plan", "disk_hints",
           "DELIVERED_CODE_NOTICE"]

#: The notice of every plan that runs scripts from the archive.
DELIVERED_CODE_NOTICE = ("this restore executes delivered scripts (code from the archive) "
                         "in a CASA-6 namespace")


class PlanError(AlmaqaError, ValueError):
    """The delivery cannot be restored as asked; the message says why."""


@dataclasses.dataclass
class Step:
    id: str
    kind: str
    eb: str                      #: '' for member-level steps
    inputs: list[str]
    outputs: list[str]
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    adds: int = 0                #: bytes the outputs occupy
    transient: int = 0           #: bytes used while running (freed at the end)
    deletes: list[str] = dataclasses.field(default_factory=list)
    after: list[str] = dataclasses.field(default_factory=list)   #: step ids it needs
    executes_code: bool = False  #: runs a delivered script
    note: str = ""               #: one line for the dry run

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class MemberPlan:
    member: str
    mous: str
    mode: str                    #: 'pipeline' | 'manual' | 'semipass'
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
    notices: list[str] = dataclasses.field(default_factory=list)
    #: (script, [guard dicts]) whose CASA version test stops in this CASA
    blocked: list[tuple[str, list[dict]]] = dataclasses.field(default_factory=list)
    #: the delivery as the member model sees it (sessions, versions, presteps ...)
    delivery: dict = dataclasses.field(default_factory=dict)
    #: the disk check compares the free space with this (scriptForPI's budget
    #: for plans whose scripts write what we cannot predict; else peak_bytes)
    check_bytes: int | None = None
    #: the member steps that run only when every EB succeeded
    needs_all_ebs: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["steps"] = [s.as_dict() for s in self.steps]
        return d

    def chains(self) -> tuple[dict[str, list[Step]], list[Step]]:
        """(EB -> its steps in order, member-level steps)."""
        by_eb: dict[str, list[Step]] = {}
        member: list[Step] = []
        for s in self.steps:
            if s.eb:
                by_eb.setdefault(s.eb, []).append(s)
            else:
                member.append(s)
        return by_eb, member


def peak_bytes(steps: list[Step], nprocs: int) -> tuple[int, int]:
    """(peak, final) bytes when the steps run in order (EBs up to ``nprocs`` at once)."""
    by_eb: dict[str, list[Step]] = {}
    member: list[Step] = []
    for s in steps:
        (by_eb.setdefault(s.eb, []) if s.eb else member).append(s)
    sizes = {o: s.adds // max(len(s.outputs), 1) for s in steps for o in s.outputs}
    eb_peaks = []
    for ss in by_eb.values():
        cur = peak = 0
        for s in ss:
            peak = max(peak, cur + s.adds + s.transient)
            cur += s.adds
            cur -= sum(sizes.get(d, 0) for d in s.deletes)
        eb_peaks.append((peak, cur))
    eb_peaks.sort(reverse=True)
    running = eb_peaks[:max(nprocs, 1)]
    # EBs not running at the peak have already finished: their final size counts
    others = sum(f for _, f in eb_peaks[max(nprocs, 1):])
    peak = sum(p for p, _ in running) + others
    final = sum(f for _, f in eb_peaks)
    cur = final
    for s in member:
        peak = max(peak, cur + s.adds + s.transient)
        cur += s.adds - sum(sizes.get(d, 0) for d in s.deletes)
    return int(peak * MARGIN), int(max(cur, 0))


def disk_hints(plan: MemberPlan) -> list[str]:
    """Options that would lower the peak disk need of ``plan``."""
    hints = []
    o = plan.options
    if o.get("spacesaving", 0) < 2 and o.get("split", True):
        hints.append("spacesaving=2 (keep only the split calibrated data)")
    if o.get("nprocs", 1) > 1 and len(plan.ebs) > 1:
        hints.append("nprocs=1 (one EB at a time)")
    if o.get("docontsub"):
        hints.append("docontsub=False")
    if plan.mode == "manual":
        hints.append("SPACESAVING=1 budgets 7x the raw size, 2 or more 3x (+3x with post scripts)")
    return hints


def _step_lines(s: Step) -> list[str]:
    lines = [f"  [{s.id}] {s.kind}" + (f": {s.note}" if s.note else "")
             + ("   (runs delivered code)" if s.executes_code else "")]
    for i in s.inputs:
        lines.append(f"      in : {i}")
    for o in s.outputs:
        lines.append(f"      out: {o}")
    for d in s.deletes:
        lines.append(f"      del: {d}")
    for g in s.params.get("guards", []) or []:
        lines.append(f"      version test line {g['line']}: asks for CASA {g['asks']}"
                     + (" -> STOPS here" if g.get("blocks") else " -> passes"))
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
    return lines


def format_plan(plan: MemberPlan, done: set[str] | None = None) -> str:
    """The plan as text (``dryrun``); ``done`` marks steps a re-run would skip."""
    d = plan.delivery or {}
    code = any(s.executes_code for s in plan.steps)
    head = {"pipeline": "pipeline calibration, " + (
                "the delivered post scripts are executed" if code else "no delivered code is run"),
            "manual": "manual calibration: the delivered scripts are executed",
            "semipass": "semipass package: nothing to calibrate"}.get(plan.mode, plan.mode)
    lines = [f"qa_restore plan for {plan.member} ({head})"]
    if d.get("total_power"):
        lines.append("  total power data")
    lines += [f"  output: {plan.calibrated}   route: {plan.route}",
              f"  EBs: {', '.join(plan.ebs) or 'none'}"]
    sess = d.get("sessions") or {}
    if sess:
        lines.append("  sessions (from " + ", ".join(d.get("session_sources", [])) + "):")
        for uid, s in sess.items():
            lines.append(f"    {uid}: {s['session'] or '?'} -> {s['caltables'] or 'NO TARBALL'}"
                         f"  [{s['source'] or 'no source'}]")
    if d.get("presteps"):
        lines.append("  pre-steps (SACM/JAO): import without BDF flags, fixsyscaltimes on "
                     + ", ".join(d["presteps"]["fixsyscaltimes"] or ["every EB"]))
    v = d.get("versions") or {}
    if v.get("casa") or v.get("pipeline"):
        lines.append(f"  made with CASA {v.get('casa') or '?'}, pipeline {v.get('pipeline') or '-'}")
    lines.append(f"  options: {plan.options}")
    if plan.semipass:
        lines.append(f"  skipped (semipass, no calibration): {', '.join(plan.semipass)}")
    for n in plan.notices:
        lines.append(f"  NOTE: {n}")
    done = done or set()
    for s in plan.steps:
        sl = _step_lines(s)
        if s.id in done:
            sl[0] += "   [complete: a re-run skips it]"
        lines += sl
    lines.append(f"  raw data: {fmt_bytes(plan.raw_bytes)}; predicted peak disk: "
                 f"{fmt_bytes(plan.peak_bytes)}; left at the end: {fmt_bytes(plan.final_bytes)}")
    if plan.scriptforpi_bytes is not None:
        lines.append(f"  (scriptForPI.py would require {fmt_bytes(plan.scriptforpi_bytes)})")
    if done and len(done) == len(plan.steps) and plan.steps:
        lines.append("  every step is complete: a re-run changes nothing")
    for w in plan.warnings:
        lines.append(f"  WARNING: {w}")
    return "\n".join(lines)


def output_root(member: str, outdir: str) -> str:
    """Where a member's outputs go: ``outdir`` or ``<member>/calibrated``."""
    return os.path.abspath(outdir or os.path.join(member, "calibrated"))
