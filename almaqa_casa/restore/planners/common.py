"""Planning rules shared by every delivery kind (pure)."""
from __future__ import annotations

import os

from ...delivery.calapply import caltables
from ...delivery.member import EB, Member
from .. import versionguard as vg
from ..options import RestoreOptions
from ..plan import DELIVERED_CODE_NOTICE, Step

__all__ = ["renorm_by_post_scripts", "effective_level", "post_steps", "final_cleanup",
           "guard_dicts"]


def renorm_by_post_scripts(member: Member, texts: dict[str, str]) -> bool:
    """scriptForPI.py 2.5 ``isRenorm``: the FluxCal script applies ``ACreNorm`` or the
    PolCal script a ``Renormalization``; those work on the ``<uid>.ms``."""
    flux = texts.get(member.post_scripts.get("scriptForFluxCalibration.py", ""), "")
    pol = texts.get(member.post_scripts.get("scriptForPolCalibration.py", ""), "")
    return "ACreNorm" in flux or "Renormalization" in pol


def effective_level(member: Member, opts: RestoreOptions, texts: dict[str, str],
                    warnings: list[str]) -> int:
    """The SPACESAVING deletion level, lowered to 1 as scriptForPI.py does when
    the post scripts renormalize (they need the ``*.ms``)."""
    level = opts.level
    if level > 1 and renorm_by_post_scripts(member, texts):
        warnings.append(f"SPACESAVING={opts.spacesaving} lowered to 1: the post scripts apply "
                        "the amplitude renormalization, which needs the *.ms (as scriptForPI.py)")
        level = 1
    return level


def guard_dicts(text: str, present: str) -> tuple[list[dict], list[dict]]:
    """(every CASA version test of a script, those that stop in CASA ``present``)."""
    guards = vg.find_guards(text)
    blocked = vg.blocking(guards, present)
    out = [{"line": g.lineno, "asks": g.asked, "test": g.test, "blocks": g in blocked}
           for g in guards]
    return out, [g for g in out if g["blocks"]]


def post_steps(member: Member, calibrated: str, texts: dict[str, str], present: str,
               after: list[str], notices: list[str],
               blocked: list[tuple[str, list[dict]]]) -> list[Step]:
    """The PolCal, FluxCal and ImagingPrep scripts, run from calibrated/ in that order."""
    steps: list[Step] = []
    prev = list(after)
    for kind, script in member.post_order:
        guards, stops = guard_dicts(texts.get(script, ""), present)
        if stops:
            blocked.append((script, stops))
        sid = f"post:{kind[:-3]}"
        steps.append(Step(id=sid, kind="post", eb="", inputs=[script], outputs=[],
                          params={"script": script, "post_kind": kind, "guards": guards,
                                  "log": os.path.join(calibrated, kind[:-3] + ".log")},
                          after=prev, executes_code=True,
                          note=f"run {os.path.basename(script)} in {calibrated}"))
        prev = [sid]
    if steps and DELIVERED_CODE_NOTICE not in notices:
        notices.append(DELIVERED_CODE_NOTICE)
    return steps


def final_cleanup(calibrated: str, finals: list[str], level: int, has_post: bool,
                  after: list[str], warnings: list[str]) -> list[Step]:
    """SPACESAVING >= 3: delete the ``*.ms.split.cal`` once ``calibrated.ms`` exists."""
    if level < 3 or not finals:
        return []
    calms = os.path.join(calibrated, "calibrated.ms")
    if not has_post:
        warnings.append("SPACESAVING >= 3: no script makes calibrated.ms, so the "
                        "*.ms.split.cal are kept (as scriptForPI.py does)")
    return [Step(id="final-cleanup", kind="cleanup", eb="", inputs=[], outputs=[],
                 deletes=list(finals), params={"if_exists": calms}, after=list(after),
                 note="delete the *.ms.split.cal if calibrated.ms exists")]


def caltables_step(member: Member, e: EB, working: str) -> Step:
    """Extract the tables an EB's calapply.txt names from its own session's tarball."""
    tables = caltables(member.calapply[e.uid])
    return Step(id=f"{e.uid}:caltables", kind="caltables", eb=e.uid,
                inputs=[e.caltables, e.calapply],
                outputs=[os.path.join(working, t) for t in tables],
                params={"tables": tables, "session": e.session},
                note=f"{len(tables)} table(s) of {e.session} ({os.path.basename(e.caltables)})")
