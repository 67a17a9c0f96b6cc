"""Step bodies that run delivered scripts, as scriptForPI.py runs them.

``manual-eb``: one EB's ``scriptForCalibration.py`` in its working folder
(``applyonly=True``, CASA-6 namespace from :mod:`..scriptenv`), then its
``<uid>.ms.split.cal`` moved (atomic rename) to ``calibrated/``.  An EB whose
split.cal already reached ``calibrated/`` is complete; an interrupted EB's
working folder is cleared and the EB redone (with ``usems`` the imported MS
is kept).

``post``: a PolCal / FluxCal / ImagingPrep script run from ``calibrated/``.
A post script interrupted half-way has the entries it created removed
before it runs again (a ``.started`` record lists what was there before).

A script whose CASA version test stops in this CASA runs as a patched copy
(only with ``ignoreversion=True``; the planner lists it, the engine refuses
otherwise); the delivered script is never changed.  A failing script
(exception or ``sys.exit``) raises :class:`ScriptFailed` with its traceback.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ...atomic import remove, write_text_atomic
from ...delivery.member import read_small_text
from ...errors import AlmaqaError
from ...log import post as log_post
from .. import versionguard as vg
from ..plan import Step
from . import StepContext, body

__all__ = ["ScriptFailed"]


class ScriptFailed(AlmaqaError, RuntimeError):
    """A delivered script failed; ``traceback`` holds its traceback."""

    def __init__(self, message: str, traceback: str = "", log: str = ""):
        super().__init__(message)
        self.traceback = traceback
        self.log = log


def _log(msg: str, level: str = "INFO") -> None:
    log_post(msg, level, "qa_restore")


def _is_ms(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "table.dat"))


def _link(path: str, target: str) -> None:
    if os.path.lexists(path):
        if os.path.islink(path) and os.readlink(path) == target:
            return
        remove(path)
    os.symlink(target, path)


def _present_version() -> str:
    from ..scriptenv import casa_version
    v, _ = casa_version()
    return ".".join(str(x) for x in v[:3])


def _code(script: str, guards: list[dict], patched_path: str) -> tuple[str, str, str]:
    """(path run, code text, note): the delivered script, or a patched copy of it."""
    text = read_small_text(script)
    stops = [g for g in guards if g.get("blocks")]
    if not stops:
        return script, text, ""
    found = vg.find_guards(text)
    blocked = [g for g in found if any(g.lineno == s["line"] for s in stops)]
    try:
        patched = vg.patch_text(text, blocked)
    except (SyntaxError, ValueError):
        return script, text, ""     # Python 2 code: compiling it fails with a clear message
    write_text_atomic(patched_path, patched)
    note = (f"ignoreversion=True: running {patched_path} (CASA version test disabled; the "
            f"script asks for CASA {stops[0]['asks']}, this is {_present_version()})")
    return patched_path, patched, note


def _run(script: str, text: str, cwd: str, log: str) -> dict:
    from ..scriptenv import run_script
    r = run_script(script, cwd, log, text=text, applyonly=True)
    if r["status"] != "ok":
        raise ScriptFailed(r["error"], r.get("traceback", ""), log)
    return {"script_seconds": r["seconds"]}


@body("manual-eb")
def manual_eb(ctx: StepContext, step: Step) -> dict:
    p = step.params
    uid, final = step.eb, step.outputs[0]
    wd, out, log = p["workdir"], p["output"], p["log"]
    if _is_ms(final):    # completed before (the move is atomic)
        _log(f"{uid}: already restored ({final}); skipped")
        return {"skipped": "already restored", "log": log, "ran": p["script"]}
    if ctx.opts.usems:
        if not _is_ms(os.path.join(wd, f"{uid}.ms")):
            raise FileNotFoundError(
                f"usems=True: cannot find calibrated/{uid}.calibration/{uid}.ms ({wd}); "
                "import the ASDM there first or run without usems")
        remove(out)
    elif os.path.exists(wd):
        _log(f"{uid}: {wd} left by an interrupted or failed run; starting this EB again", "WARN")
        remove(wd)
    os.makedirs(wd, exist_ok=True)
    for path, target in p["links"].items():
        _link(path, target)
    patched = os.path.join(wd, os.path.basename(p["script"])[:-3] + ".ignoreversion.py")
    ran, code, note = _code(p["script"], p.get("guards", []), patched)
    extra: dict = {"ran": ran, "log": log}
    if note:
        _log(f"{uid}: {note}", "WARN")
    _log(f"{uid}: running {os.path.basename(p['script'])} in {wd} (log {log})")
    extra.update(_run(ran, code, wd, log))
    if not _is_ms(out):
        raise ScriptFailed(f"{uid}: {os.path.basename(out)} was not created by {p['script']}",
                           log=log)
    if os.path.lexists(final):   # an incomplete leftover (no table.dat) under the final name
        remove(final)
    os.replace(out, final)
    _log(f"{uid}: {os.path.basename(final)} moved to {os.path.dirname(final)}")
    return extra


def _started(cal: Path, sid: str) -> Path:
    return cal / ".qa_restore" / f"{sid.replace(':', '__')}.started.json"


@body("post")
def post_script(ctx: StepContext, step: Step) -> dict:
    p = step.params
    cal = Path(ctx.plan.calibrated)
    cal.mkdir(parents=True, exist_ok=True)
    rec = _started(cal, step.id)
    protected = {os.path.basename(s.outputs[0]) for s in ctx.plan.steps
                 if s.kind in ("manual-eb", "split") and s.outputs}
    if rec.is_file():
        # interrupted: remove what that attempt created (never the EB outputs)
        try:
            before = set(json.loads(rec.read_text()).get("before", []))
        except (OSError, ValueError):
            before = set()
        for e in sorted(os.listdir(cal)):
            if e not in before and e not in protected and not e.startswith("."):
                _log(f"{p['post_kind']}: removing {e} left by an interrupted run", "WARN")
                remove(cal / e)
    before = sorted(e for e in os.listdir(cal) if not e.startswith("."))
    rec.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(rec, json.dumps({"before": before}))
    patched = str(cal / (os.path.basename(p["script"])[:-3] + ".ignoreversion.py"))
    ran, code, note = _code(p["script"], p.get("guards", []), patched)
    if note:
        _log(f"{p['post_kind']}: {note}", "WARN")
    _log(f"running {os.path.basename(p['script'])} in {cal} (log {p['log']})")
    t0 = time.perf_counter()
    extra = _run(ran, code, str(cal), p["log"])
    after = sorted(e for e in os.listdir(cal) if not e.startswith("."))
    outputs = [str(cal / e) for e in after if e not in before
               and str(cal / e) != os.path.abspath(p["log"]) and e != os.path.basename(patched)]
    rec.unlink()
    extra.update(ran=ran, log=p["log"], outputs=outputs,
                 seconds=round(time.perf_counter() - t0, 2))
    return extra
