"""The one record store of restore steps: ``<calibrated>/.qa_restore/<step>.json``.

A record marks a step complete, with a digest of everything that defines it
(kind, inputs, outputs, parameters, deletions): a re-run skips a step whose
record matches and whose outputs exist, so an interrupted restore completes
and gives the same result, and a changed option redoes what it changes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import write_text_atomic
from .plan import MemberPlan, Step

__all__ = ["digest", "record_path", "is_done", "mark_done", "done_steps", "read_record",
           "to_run"]


def digest(step: Step) -> str:
    blob = json.dumps({"kind": step.kind, "inputs": step.inputs, "outputs": step.outputs,
                       "params": step.params, "deletes": step.deletes},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def record_path(plan: MemberPlan, step: Step) -> Path:
    safe = step.id.replace("/", "_").replace(":", "__")
    return Path(plan.calibrated) / ".qa_restore" / f"{safe}.json"


def read_record(plan: MemberPlan, step: Step) -> dict | None:
    try:
        data = json.loads(record_path(plan, step).read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("digest") == digest(step) else None


def is_done(plan: MemberPlan, step: Step) -> bool:
    """The step's record matches and its outputs exist (or were deleted on purpose)."""
    if read_record(plan, step) is None:
        return False
    if any(os.path.lexists(d) for d in step.deletes) and not step.params.get("if_exists"):
        return False
    missing = [o for o in step.outputs if not os.path.lexists(o)]
    if not missing:
        return True
    # outputs deleted on purpose by a completed SPACESAVING cleanup count as done
    for c in plan.steps:
        if c.kind == "cleanup" and c is not step and set(missing) <= set(c.deletes):
            if read_record(plan, c) is not None:
                return True
    return False


def mark_done(plan: MemberPlan, step: Step, seconds: float, extra: dict) -> None:
    rec = record_path(plan, step)
    rec.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(rec, json.dumps({"digest": digest(step), "seconds": seconds,
                                       "extra": extra}, default=str))


def done_steps(plan: MemberPlan) -> set[str]:
    """Ids of the steps a re-run would skip (for the dry run)."""
    return {s.id for s in plan.steps} - to_run(plan)


def to_run(plan: MemberPlan) -> set[str]:
    """Ids of the steps a run must execute: those not done, and the producers of
    any input they need that is gone (e.g. the full MS a SPACESAVING=2 run
    deleted, needed again when a re-run adds DOCONTSUB): such a producer runs
    again, and the deletion after it too."""
    producer = {o: s for s in plan.steps for o in s.outputs}
    run = {s.id for s in plan.steps if not is_done(plan, s)}
    changed = True
    while changed:
        changed = False
        for s in plan.steps:
            if s.id not in run:
                continue
            for i in s.inputs:
                p = producer.get(i)
                if p is not None and p.id not in run and not os.path.lexists(i):
                    run.add(p.id)
                    changed = True
    # a deletion runs again after what it deletes was made again
    for s in plan.steps:
        if s.kind == "cleanup" and any(producer.get(d) is not None and producer[d].id in run
                                       for d in s.deletes):
            run.add(s.id)
    return run
