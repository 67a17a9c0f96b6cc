"""Step bodies every kind uses: links, SPACESAVING deletions, uncorrected images."""
from __future__ import annotations

import os
from pathlib import Path

from ...atomic import partial_name, remove
from ...log import post
from ..plan import Step
from . import StepContext, body


@body("links")
def links(ctx: StepContext, step: Step) -> dict:
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


@body("cleanup")
def cleanup(ctx: StepContext, step: Step) -> dict:
    """SPACESAVING deletions; with ``if_exists``, only when that path exists
    (scriptForPI.py deletes the split.cal only once calibrated.ms is there)."""
    cond = step.params.get("if_exists")
    if cond and not os.path.isdir(cond):
        return {"deleted": [], "note": f"{os.path.basename(cond)} does not exist: nothing deleted"}
    done = []
    for d in step.deletes:
        if os.path.lexists(d):
            post(f"SPACESAVING: deleting {d}", "INFO", "qa_restore")
            remove(d)
            done.append(d)
    return {"deleted": done} if done else {"deleted": [], "skipped": "nothing left to delete"}


@body("image")
def image(ctx: StepContext, step: Step) -> dict:
    from ...images.pbcor import recover_uncorrected
    from ..provenance import fits_history
    pbcor, pb = step.inputs
    history = fits_history("qa_restore", {"pbcor": os.path.basename(pbcor),
                                          "pb": os.path.basename(pb), "impbcor mode": "m",
                                          "member": os.path.basename(ctx.member.path)},
                           delivered=ctx.member.versions.as_dict())
    try:
        recover_uncorrected(pbcor, pb, step.outputs[0], overwrite=True, history=history)
    except Exception as exc:   # one bad product must not stop the restore
        msg = f"{os.path.basename(pbcor)}: uncorrected image not recovered ({exc})"
        post(msg, "WARN", "qa_restore")
        return {"warnings": [msg]}
    return {}
