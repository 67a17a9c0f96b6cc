"""Run a :class:`~.plan.MemberPlan`: atomic outputs, resumable, timed.

Every step writes under a temporary name and renames when complete; a small
record in ``calibrated/.qa_restore/`` marks it done (with a digest of its
parameters).  A re-run skips steps whose record and outputs are present, so
an interrupted restore completes and gives the same result.  EBs are
independent and can run in parallel processes (``nprocs``, see
:mod:`.workers`).
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_output, clean_partials, partial_name, remove
from ..errors import AlmaqaError
from ..log import post
from .discover import MemberInfo, dir_size
from .plan import MemberPlan, Step

__all__ = ["DiskSampler", "StepFailed", "progress_line", "run_plan"]


class StepFailed(AlmaqaError, RuntimeError):
    """A step failed; the message names the step and the cause."""


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def progress_line(done: int, total: int, msg: str, width: int = 20) -> str:
    """``[########------------]  4/11 msg``: the terminal's progress bar (pure)."""
    n = min(width, round(width * done / total)) if total else width
    return f"[{'#' * n}{'-' * (width - n)}] {done:>{len(str(total))}}/{total} {msg}"


def _progress(plan: MemberPlan, msg: str) -> None:
    """casalog gets ``msg``; a terminal on stderr gets a progress bar over the
    member's steps (counted from the completion records, so the EB worker
    processes, which share that terminal, count alike)."""
    _log(msg)
    try:
        if sys.stderr.isatty():
            done = sum(1 for s in plan.steps if _record_path(plan, s).is_file())
            sys.stderr.write("\r\033[K" + progress_line(done, len(plan.steps), msg))
            sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass


def _digest(step: Step) -> str:
    blob = json.dumps({"kind": step.kind, "inputs": step.inputs, "outputs": step.outputs,
                       "params": step.params, "deletes": step.deletes},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def _record_path(plan: MemberPlan, step: Step) -> Path:
    safe = step.id.replace("/", "_").replace(":", "__")
    return Path(plan.calibrated) / ".qa_restore" / f"{safe}.json"


def is_done(plan: MemberPlan, step: Step) -> bool:
    rec = _record_path(plan, step)
    if not rec.is_file():
        return False
    try:
        data = json.loads(rec.read_text())
    except (OSError, ValueError):
        return False
    if data.get("digest") != _digest(step):
        return False
    if any(os.path.lexists(d) for d in step.deletes):
        return False
    missing = [o for o in step.outputs if not os.path.lexists(o)]
    if not missing:
        return True
    # outputs deleted on purpose by a completed SPACESAVING cleanup count as done
    for c in plan.steps:
        if c.kind == "cleanup" and c is not step and set(missing) <= set(c.deletes):
            crec = _record_path(plan, c)
            try:
                if json.loads(crec.read_text()).get("digest") == _digest(c):
                    return True
            except (OSError, ValueError):
                pass
    return False


def _mark_done(plan: MemberPlan, step: Step, seconds: float, extra: dict) -> None:
    rec = _record_path(plan, step)
    rec.parent.mkdir(parents=True, exist_ok=True)
    from ..atomic import write_text_atomic
    write_text_atomic(rec, json.dumps({"digest": _digest(step), "seconds": seconds,
                                       "extra": extra}, default=str))


# ---- step bodies ------------------------------------------------------------------
def _do_caltables(plan, info, step):
    from .casasteps import extract_caltables
    tgz = step.inputs[0]
    extract_caltables(tgz, step.params["tables"], plan.working)
    return {}


def _do_ms(plan, info, step):
    from . import casasteps as cs
    uid = step.eb
    ms, fv = step.outputs
    asdm = os.path.abspath(info.raw_asdms[uid])
    tmp = str(partial_name(ms))
    extra = {}
    try:
        extra.update(cs.import_asdm(asdm, tmp, lazy=step.params.get("lazy", True)))
        cs.copy_asdm_xml(asdm, tmp)
        cs.restore_flags(tmp, info.flagversions[uid])
        # amplitude renormalization (manifest hifa_renorm): table + TARGET lines
        from .renormstep import prepare
        apps = prepare(tmp, step.params.get("renorm"), info.calapply[uid], plan.working,
                       uid, extra, _log)
        if step.params["route"] == "applycal":
            extra["applycal_lines"] = cs.apply_calibration(tmp, apps, plan.working)
        remove(fv)
        os.replace(tmp + ".flagversions", fv)
        remove(ms)
        os.replace(tmp, ms)
    finally:
        remove(tmp)
        remove(tmp + ".flagversions")
    return extra


def _callib_for(plan, info, step, ms, warnings: list[str]) -> str:
    """The cal library for on-the-fly calibration, or '' once CORRECTED exists.

    When a calapply line cannot be expressed as a cal library (e.g. a
    partial antenna selection) the calibration is applied into the MS
    instead (once), the step splits CORRECTED, and ``warnings`` says so.
    """
    from ..delivery.calapply import CalApplyError
    from . import casasteps as cs
    if step.params.get("route") != "callib":
        return ""
    path = os.path.join(plan.working, f"{step.eb}.ms.callib.txt")
    from .renormstep import applications
    # with the renormalization table of the ms step for TARGET, when it wrote one
    apps = (applications(info.calapply[step.eb], plan.working, step.eb, ms)
            if step.params.get("renorm") else info.calapply[step.eb])
    try:
        cs.write_callib(ms, apps, plan.working, path)
        return path
    except CalApplyError as exc:
        if not _has_corrected(ms):
            _log(f"{step.eb}: {exc}; applying the calibration into {ms} instead", "WARN")
            cs.apply_calibration(ms, apps, plan.working)
        warnings.append(f"{step.eb}: cal library not possible ({exc}); applycal route used")
        return ""


def _has_corrected(ms: str) -> bool:
    from casatools import table
    tb = table()
    tb.open(ms)
    try:
        return "CORRECTED_DATA" in tb.colnames()
    finally:
        tb.close()


def _split_calibrated(plan, info, step, **kw) -> dict:
    """mstransform of the science spws of ``step.inputs[0]``, calibrated on the
    fly (cal library) or from CORRECTED, into ``step.outputs[0]``."""
    from . import casasteps as cs
    ms = step.inputs[0]
    spws = cs.science_spws(ms)
    warnings: list[str] = []
    callib = _callib_for(plan, info, step, ms, warnings)
    with atomic_output(step.outputs[0], overwrite=True) as tmp:
        cs.split_ms(ms, str(tmp), spws, callib=callib, **kw)
    return {"spw": spws, "callib": bool(callib), "warnings": warnings}


def _do_split(plan, info, step):
    return _split_calibrated(plan, info, step, reindex=step.params.get("reindex", False))


def _do_targets(plan, info, step):
    return _split_calibrated(plan, info, step, intent="OBSERVE_TARGET#ON_SOURCE")


def _find_contdat(plan, info) -> str:
    if info.contdat:
        return info.contdat
    from ..delivery.archive import extract
    dest = os.path.join(plan.working, "auxproducts")
    for tgz in info.auxproducts:
        extract(tgz, dest, select=lambda n: n.endswith("cont.dat"))
    found = sorted(Path(dest).rglob("*cont.dat")) if os.path.isdir(dest) else []
    if not found:
        raise StepFailed("no PL file cont.dat found (calibration/ or auxproducts tarball)")
    return str(found[0])


def _do_contsub(plan, info, step):
    from ..delivery.contdat import read_contdat
    from . import casasteps as cs
    cont = read_contdat(_find_contdat(plan, info))
    vis = step.inputs[0]
    spec, warns = cs.contsub_spec(vis, cont, fitorder=step.params.get("fitorder", 1))
    with atomic_output(step.outputs[0], overwrite=True) as tmp:
        cs.contsub(vis, str(tmp), spec, fitorder=step.params.get("fitorder", 1))
    return {"fitspec": spec, "warnings": warns}


def _do_links(plan, info, step):
    for link, target in step.params["links"].items():
        Path(link).parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(target, os.path.dirname(link))
        if os.path.islink(link):
            if os.readlink(link) == rel:
                continue
            os.unlink(link)
        elif os.path.exists(link):
            continue   # a real product already there (e.g. from a split): never replaced
        tmp = str(partial_name(link))
        os.symlink(rel, tmp)
        os.replace(tmp, link)
    return {}


def _do_cleanup(plan, info, step):
    for d in step.deletes:
        remove(d)
    return {"deleted": step.deletes}


def _do_image(plan, info, step):
    from ..images.pbcor import recover_uncorrected
    pbcor, pb = step.inputs
    try:
        recover_uncorrected(pbcor, pb, step.outputs[0], overwrite=True)
    except Exception as exc:   # one bad product must not stop the restore
        msg = f"{os.path.basename(pbcor)}: uncorrected image not recovered ({exc})"
        _log(msg, "WARN")
        return {"warnings": [msg]}
    return {}


BODIES: dict[str, Callable] = {"caltables": _do_caltables, "ms": _do_ms, "split": _do_split,
                               "targets": _do_targets, "contsub": _do_contsub,
                               "links": _do_links, "cleanup": _do_cleanup, "image": _do_image}


def run_step(plan: MemberPlan, info: MemberInfo, step: Step) -> dict:
    """Run one step unless done; returns its timing record."""
    if is_done(plan, step):
        _progress(plan, f"[{plan.mous}] {step.id}: already complete, skipped")
        return {"step": step.id, "seconds": 0.0, "skipped": True}
    for o in step.outputs:
        Path(o).parent.mkdir(parents=True, exist_ok=True)
    _progress(plan, f"[{plan.mous}] {step.id}: running")
    t0 = time.perf_counter()
    try:
        extra = BODIES[step.kind](plan, info, step) or {}
    except Exception as exc:
        raise StepFailed(f"{plan.mous} step {step.id} failed: {exc}") from exc
    dt = time.perf_counter() - t0
    _mark_done(plan, step, dt, extra)
    _progress(plan, f"[{plan.mous}] {step.id}: done in {dt:.1f} s")
    return {"step": step.id, "seconds": dt, "skipped": False, "extra": extra}


def _run_chain(plan: MemberPlan, info: MemberInfo, steps: list[Step]) -> list[dict]:
    return [run_step(plan, info, s) for s in steps]


def _worker(plan: MemberPlan, info: MemberInfo, ids: list[str]) -> list[dict]:
    import almaqa_casa  # noqa: F401  (offline CASA set-up in the child)
    steps = [s for s in plan.steps if s.id in ids]
    return _run_chain(plan, info, steps)


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


def _run_parallel(plan: MemberPlan, info: MemberInfo, chains: list[tuple[str, list[Step]]],
                  nprocs: int) -> list[dict]:
    """EB chains on ``nprocs - 1`` worker processes plus this one, which takes
    the next waiting chain whenever it is free (so it starts at once, while
    the workers import CASA)."""
    import collections

    from .workers import WorkerPool
    timings: list[dict] = []
    errors: list[str] = []
    pending = collections.deque(chains)
    running: dict[cf.Future, str] = {}

    def collect(done) -> None:
        for f in done:
            eb = running.pop(f)
            try:
                timings.extend(f.result())
            except Exception as exc:
                errors.append(f"{eb}: {exc}")

    with WorkerPool(min(nprocs - 1, len(chains) - 1)) as pool, \
            cf.ThreadPoolExecutor(max_workers=pool.size) as threads:
        def fill() -> None:
            while len(pending) > 1 and len(running) < pool.size:
                eb, ss = pending.pop()           # workers take from the end
                running[threads.submit(pool.run, _worker, plan, info, [s.id for s in ss])] = eb

        fill()
        while pending or running:
            collect([f for f in list(running) if f.done()])
            fill()
            if pending:
                eb, ss = pending.popleft()       # this process takes from the front
                try:
                    timings += _run_chain(plan, info, ss)
                except Exception as exc:
                    errors.append(f"{eb}: {exc}")
            elif running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                collect(done)
    if errors:
        raise StepFailed("; ".join(errors))
    return timings


def run_plan(plan: MemberPlan, info: MemberInfo, nprocs: int = 1) -> dict:
    """Execute ``plan``: EB chains (in parallel up to ``nprocs``), then member steps."""
    Path(plan.working).mkdir(parents=True, exist_ok=True)
    for folder in {plan.working, plan.calibrated}:
        clean_partials(folder)
        # temporaries of an interrupted flag restore / tar extraction
        for leftover in list(Path(folder).glob(".fv-*")) + list(Path(folder).glob(".extract-*.partial")):
            remove(leftover)
    by_eb: dict[str, list[Step]] = {}
    for s in plan.steps:
        by_eb.setdefault(s.eb, []).append(s)
    member_steps = by_eb.pop("", [])
    timings: list[dict] = []
    t0 = time.perf_counter()
    with DiskSampler(plan.calibrated) as sampler:
        if nprocs > 1 and len(by_eb) > 1:
            timings += _run_parallel(plan, info, list(by_eb.items()), nprocs)
        else:
            for eb, ss in by_eb.items():
                timings += _run_chain(plan, info, ss)
        timings += _run_chain(plan, info, member_steps)
    try:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    except (AttributeError, ValueError):
        pass
    return {"timings": timings, "seconds": time.perf_counter() - t0, "peak_bytes": sampler.peak}
