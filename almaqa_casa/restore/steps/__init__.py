"""Step bodies of the one restore executor, by step kind.

A body is ``body(ctx, step) -> dict`` (the dict is recorded with the step
and reported in the result: ``warnings``, ``renorm``, ...).  It writes its
outputs under temporary names and renames them when complete, and raises on
failure (the executor fails the step's EB, not the restore).  Modules
register their bodies with :func:`body`; a new delivery kind adds a module.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ...delivery.member import Member
from ..options import RestoreOptions
from ..plan import MemberPlan, Step

__all__ = ["StepContext", "BODIES", "body", "get_body"]


@dataclasses.dataclass
class StepContext:
    """What a step body may use: the plan, the member model and the options."""

    plan: MemberPlan
    member: Member
    opts: RestoreOptions
    #: ids of the steps this run executes (:func:`..records.to_run`); the others are complete
    todo: set[str] = dataclasses.field(default_factory=set)


Body = Callable[[StepContext, Step], dict[str, Any]]
BODIES: dict[str, Body] = {}


def body(kind: str) -> Callable[[Body], Body]:
    """Register the body of step kind ``kind``."""
    def deco(fn: Body) -> Body:
        BODIES[kind] = fn
        return fn
    return deco


def get_body(kind: str) -> Body:
    if not BODIES:
        from . import common, pipeline, scripts, selfcal, tp
    if kind not in BODIES:
        from . import common, pipeline, scripts, selfcal, tp  # noqa: F401
    return BODIES[kind]
