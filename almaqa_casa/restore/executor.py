"""The one restore executor: runs any :class:`~.plan.MemberPlan`, resumable and timed.

Every step writes under a temporary name and renames when complete; its
record (:mod:`.records`) marks it done.  A re-run skips complete steps, so an
interrupted restore completes and gives the same result.

EB chains are independent: they run one after the other, or in parallel
worker processes (``nprocs``, :mod:`.workers`), or on casampi servers inside
an MPI job (:mod:`almaqa_casa.scale` chooses).  A failing step fails its EB
only, with the message and traceback carried back; the other EBs go on.
Member-level steps that need every EB (post scripts, the SPACESAVING >= 3
deletion) are not run when an EB failed; the others (links, images) are.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

from ..atomic import clean_partials, remove
from ..delivery.member import Member, dir_size
from ..errors import AlmaqaError
from ..log import post, terminal
from ..scale import client_lock
from .options import RestoreOptions
from .plan import MemberPlan, Step
from .records import is_done, mark_done, record_path, to_run
from .steps import StepContext, get_body

__all__ = ["run_plan", "StepFailed", "DiskSampler", "progress_line", "run_step"]


class StepFailed(AlmaqaError, RuntimeError):
    """A step failed; the message names the member, the step and the cause."""


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def progress_line(done: int, total: int, msg: str, width: int = 20) -> str:
    """``[########------------]  4/11 msg``: the terminal's progress bar (pure)."""
    n = min(width, round(width * done / total)) if total else width
    return f"[{'#' * n}{'-' * (width - n)}] {done:>{len(str(total))}}/{total} {msg}"


def _terminal():
    """The stream the progress bar goes to: the user's real terminal, if any."""
    return terminal()


def _progress(plan: MemberPlan, msg: str, level: str = "INFO") -> None:
    """casalog gets ``msg``; a terminal gets a progress bar over the member's
    steps (counted from the completion records, so the EB worker processes,
    which share that terminal, count alike)."""
    _log(msg, level)
    try:
        out = _terminal()
        if out is not None:
            done = sum(1 for s in plan.steps if record_path(plan, s).is_file())
            out.write("\r\033[K" + progress_line(done, len(plan.steps), msg))
            out.flush()
    except (AttributeError, ValueError, OSError):
        pass


def run_step(ctx: StepContext, step: Step) -> dict:
    """Run one step unless done; returns its timing record (raises on failure)."""
    plan = ctx.plan
    if step.id not in ctx.todo:
        _progress(plan, f"[{plan.mous}] {step.id}: already complete, skipped")
        return {"step": step.id, "seconds": 0.0, "skipped": True}
    for o in step.outputs:
        Path(o).parent.mkdir(parents=True, exist_ok=True)
    _progress(plan, f"[{plan.mous}] {step.id}: running")
    t0 = time.perf_counter()
    extra = get_body(step.kind)(ctx, step) or {}
    dt = time.perf_counter() - t0
    mark_done(plan, step, dt, extra)
    if extra.get("skipped"):      # the body found its work done (e.g. a moved split.cal)
        return {"step": step.id, "seconds": dt, "skipped": True, "extra": extra}
    _progress(plan, f"[{plan.mous}] {step.id}: done in {dt:.1f} s")
    return {"step": step.id, "seconds": dt, "skipped": False, "extra": extra}


def _failure(plan: MemberPlan, step: Step, exc: BaseException) -> dict:
    tb = getattr(exc, "traceback", "") or "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__))
    msg = f"{plan.mous} step {step.id} failed: {exc}"
    _progress(plan, msg, "SEVERE")
    return {"step": step.id, "error": msg, "traceback": tb,
            "log": getattr(exc, "log", "")}


def run_chain(ctx: StepContext, steps: list[Step]) -> dict:
    """Run one EB's chain; a failure stops the chain (not the restore).

    Returns ``{'timings': [...], 'failed': None | {step, error, traceback}}``.
    """
    timings: list[dict] = []
    for s in steps:
        try:
            timings.append(run_step(ctx, s))
        except Exception as exc:
            return {"timings": timings, "failed": _failure(ctx.plan, s, exc),
                    "not_run": [x.id for x in steps[steps.index(s) + 1:]]}
    return {"timings": timings, "failed": None, "not_run": []}


def _worker(ctx: StepContext, ids: list[str]) -> dict:
    import almaqa_casa  # noqa: F401  (offline CASA set-up in the child)
    steps = [s for s in ctx.plan.steps if s.id in ids]
    return run_chain(ctx, steps)


class DiskSampler:
    """Samples the bytes under a folder in a thread, keeping the peak."""

    def __init__(self, folder: str, interval: float = 0.25, extra: list[str] | None = None):
        self.folder = folder
        self.extra = extra or []
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        n = dir_size(self.folder) if os.path.isdir(self.folder) else 0
        n += sum(dir_size(e) for e in self.extra if os.path.isdir(e))
        self.peak = max(self.peak, n)
        return n

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except OSError:
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        try:
            self.sample()
        except OSError:
            pass


def _died(ctx: StepContext, ss: list[Step], exc: BaseException) -> dict:
    """The failure of an EB whose worker process died (a CASA abort, a full disk)."""
    from .disk import fmt_bytes, free_bytes
    plan = ctx.plan
    step = next((s for s in ss if not is_done(plan, s)), ss[0])
    try:
        free = fmt_bytes(free_bytes(plan.calibrated))
    except OSError:
        free = "?"
    msg = (f"{plan.mous} step {step.id} failed: the process restoring it ended abnormally "
           f"({exc}) while writing into {plan.calibrated} ({free} free there). If that disk is "
           "full, free some space and run again: the re-run completes what is left")
    _progress(plan, msg, "SEVERE")
    return {"timings": [], "failed": {"step": step.id, "error": msg, "traceback": "", "log": ""},
            "not_run": [s.id for s in ss[ss.index(step) + 1:]]}


def _run_chains(ctx: StepContext, chains: list[tuple[str, list[Step]]], nprocs: int,
                isolate: bool = False) -> tuple[str, dict[str, dict]]:
    """EB chains through :mod:`almaqa_casa.scale`: on the casampi servers inside an
    MPI job, else here and in local worker processes (``isolate``: all in
    workers, so a CASA abort fails its EB instead of ending this process).
    Returns the engine's name and each EB's chain result with its ``server``."""
    from .. import scale
    steps = dict(chains)
    units = [scale.Unit(eb, _worker, (ctx, [s.id for s in ss])) for eb, ss in chains]

    def started(u, server: int, host: str) -> None:
        if server:
            _progress(ctx.plan, f"[{ctx.plan.mous}] {u.key}: sent to casampi server {server} "
                      f"({host})")

    outs = scale.run_units(units, nprocs=nprocs, isolate=isolate, on_start=started)
    ebs: dict[str, dict] = {}
    for eb, o in outs.items():
        # the worker or server died (or the chain could not run): this EB fails, the others go on
        r = o.value if o.ok else _died(ctx, steps[eb], RuntimeError(o.error))
        ebs[eb] = {**r, "server": o.server, "host": o.host}
    return scale.engine_name(), ebs


def run_plan(plan: MemberPlan, member: Member, opts: RestoreOptions, nprocs: int = 1) -> dict:
    """Execute ``plan``: EB chains (in parallel up to ``nprocs``), then member steps.

    Returns ``{'ebs': {uid: chain result with 'server'}, 'member': [step results],
    'timings', 'seconds', 'peak_bytes', 'failed': [messages], 'engine'}``.
    """
    Path(plan.working).mkdir(parents=True, exist_ok=True)
    for folder in {plan.working, plan.calibrated}:
        clean_partials(folder)
        # temporaries of an interrupted flag restore / tar extraction
        for leftover in list(Path(folder).glob(".fv-*")) + list(Path(folder).glob(".extract-*.partial")):
            remove(leftover)
    ctx = StepContext(plan=plan, member=member, opts=opts, todo=to_run(plan))
    by_eb, member_steps = plan.chains()
    t0 = time.perf_counter()
    with DiskSampler(plan.calibrated) as sampler:
        # spacesaving=-1 (no disk check): every EB in a worker, to survive a full disk
        engine, ebs = _run_chains(ctx, list(by_eb.items()), nprocs, isolate=not opts.check_disk)
        failed = [r["failed"]["error"] for r in ebs.values() if r["failed"]]
        member_results: list[dict] = []
        skipped: set[str] = set()
        for s in member_steps:
            if (failed and s.id in plan.needs_all_ebs) or set(s.after) & skipped:
                skipped.add(s.id)
                member_results.append({"step": s.id, "status": "not run",
                                       "reason": "an earlier step failed"})
                continue
            try:
                with client_lock:    # CASA in the client, while other MOUSes run in threads
                    r = run_step(ctx, s)
                member_results.append({**r, "status": "skipped" if r["skipped"] else "ok"})
            except Exception as exc:
                f = _failure(plan, s, exc)
                skipped.add(s.id)
                failed.append(f["error"])
                member_results.append({"step": s.id, "status": "failed", **f})
    out = _terminal()
    if out is not None:
        try:
            out.write("\n")
            out.flush()
        except (ValueError, OSError):
            pass
    timings = [t for r in ebs.values() for t in r["timings"]] + [
        r for r in member_results if "seconds" in r]
    return {"ebs": ebs, "member": member_results, "timings": timings, "failed": failed,
            "seconds": time.perf_counter() - t0, "peak_bytes": sampler.peak, "engine": engine}
