"""hif_selfcal's restore-only mode, per EB: the self-calibration tables of
selfcal.json applied to the EB's targets MSs.

As ``Selfcal._apply_scal`` does after hif_mstransform / hif_uvcontsub in a
scriptForPI.py 2.5 restore: for every self-calibrated target, its
``gaintable_final`` (``sc_workdir/<table>``, from the auxproducts tarball)
with ``applycal_interpolate_final`` and ``spwmap_final``, ``calwt=False``,
applymode ``'calflag'``, intent TARGET, on the target's field and
``spw_real`` spws of ``<uid>_targets.ms`` and ``<uid>_targets_line.ms``;
the result is their CORRECTED column (DATA stays the regular calibration).
Fields and spws the JSON does not name are not touched.

Each MS is calibrated in a copy that replaces it when complete (an
interruption leaves the MS as it was), with a marker inside recording what
was applied: a targets MS made again (e.g. by a re-run with other options)
has no marker, so its self-calibration is applied again.
"""
from __future__ import annotations

import json
import os
import shutil

from ...atomic import atomic_output, partial_name, remove
from ...log import post
from ..plan import Step
from ..planners.pipeline import SELFCAL_MARKER as MARKER
from . import StepContext, body

__all__ = ["apply_selfcal", "selfcal_result", "spw_keys", "spw_selection", "MARKER"]


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def _tables_into(params: dict, dest: str) -> str:
    """The step's tables under ``dest`` (``dest/sc_workdir_*/<table>``), from the
    auxproducts tarball or copied from the loose folder; returns ``dest``."""
    tables = params["tables"]
    if all(os.path.isdir(os.path.join(dest, t)) for t in tables):
        return dest
    if "tgz" in params:
        from ...delivery.archive import extract
        from ...delivery.tarsafe import limits_for
        wanted = set(tables)
        parents = {t.rsplit("/", 1)[0] for t in tables if "/" in t}

        def select(name: str) -> bool:
            return name in parents or any(name == t or name.startswith(t + "/") for t in wanted)

        extract(params["tgz"], dest, select=select, limits=limits_for("auxproducts"))
    else:
        for t in tables:
            out = os.path.join(dest, t)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            tmp = str(partial_name(out))
            shutil.copytree(os.path.join(params["folder"], t), tmp, symlinks=False)
            remove(out)
            os.replace(tmp, out)
    missing = [t for t in tables if not os.path.isdir(os.path.join(dest, t))]
    if missing:
        src = params.get("tgz") or params.get("folder")
        raise FileNotFoundError(f"{src}: self-calibration table(s) not found: {', '.join(missing)}")
    return dest


def spw_keys(vis: str) -> dict[int, tuple[int, float]]:
    """spw id -> (channels, first channel frequency rounded to 1 Hz)."""
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
    try:
        nchan = tb.getcol("NUM_CHAN")
        first = [float(tb.getcell("CHAN_FREQ", i)[0]) for i in range(tb.nrows())]
    finally:
        tb.close()
    return {i: (int(n), round(f)) for i, (n, f) in enumerate(zip(nchan, first))}


def spw_selection(sel: str, ref_keys: dict, keys: dict, vis: str) -> str:
    """``spw_real`` (ids of the targets MS) as ids of ``vis`` (pure): the same ids
    when they denote the same windows, else the windows of equal channels and
    frequency (an MS whose spws were renumbered)."""
    out = []
    for part in sel.split(","):
        sid = part.strip()
        if not sid:
            continue
        if not sid.isdigit():
            raise ValueError(f"{vis}: spw selection {sel!r} is not a list of spw ids")
        i = int(sid)
        if i in keys and keys.get(i) == ref_keys.get(i, keys[i]):
            out.append(str(i))
            continue
        match = [j for j, k in keys.items() if i in ref_keys and k == ref_keys[i]]
        if len(match) != 1:
            raise ValueError(f"{vis}: spw {i} of selfcal.json's spw_real is not in this MS")
        out.append(str(match[0]))
    return ",".join(out)


def apply_selfcal(vis: str, apps: list[dict], tabledir: str, ref_spws: dict | None = None
                  ) -> list[dict]:
    """applycal of each application (dicts of :class:`~almaqa_casa.delivery.selfcal.
    SelfcalApplication`) to ``vis``, in place.  ``ref_spws``: :func:`spw_keys` of the
    targets MS the JSON's spw ids refer to (default: ``vis``'s own).  Returns what
    was applied."""
    from casatasks import applycal

    from ...delivery.calapply import casa_intents
    from ..casasteps import state_obsmodes, write_history
    intent = casa_intents("TARGET", state_obsmodes(vis))
    keys = spw_keys(vis)
    done = []
    for a in apps:
        tables = [os.path.join(tabledir, t) for t in a["gaintable"]]
        spw = spw_selection(a["spw"], ref_spws or keys, keys, vis)
        applycal(vis=vis, field=a["field"], spw=spw, intent=intent or "",
                 gaintable=tables, interp=list(a["interp"]), spwmap=[list(m) for m in a["spwmap"]],
                 calwt=list(a["calwt"]), applymode=a.get("applymode", "calflag"),
                 flagbackup=False, parang=False)
        write_history(vis, f"hif_selfcal restore: {', '.join(a['gaintable'])} applied to field "
                           f"{a['field']} spw {spw} (from {a['source']})")
        done.append({"field": a["field"], "spw": spw, "tables": list(a["gaintable"]),
                     "source": a["source"]})
    return done


@body("selfcal")
def selfcal(ctx: StepContext, step: Step) -> dict:
    p = step.params
    tabledir = _tables_into(p, p["tabledir"])
    applied: dict[str, list[dict]] = {}
    ref = spw_keys(step.inputs[0])          # the targets MS: spw_real's ids are its ids
    for vis in step.inputs:
        name = os.path.basename(vis)
        apps = [a for a in p["applications"] if a["vis"] == name]
        if not apps:
            continue
        if not os.path.isdir(vis):
            raise FileNotFoundError(f"{vis}: the targets MS to self-calibrate does not exist")
        with atomic_output(vis, overwrite=True) as tmp:
            shutil.copytree(vis, tmp, symlinks=True)
            remove(os.path.join(tmp, MARKER))
            done = apply_selfcal(str(tmp), apps, tabledir, ref)
            with open(os.path.join(tmp, MARKER), "w") as fh:
                json.dump({"json": p["json"], "applied": done}, fh, indent=1)
        applied[name] = done
        _log(f"{step.eb}: self-calibration re-applied to {name}: "
             + "; ".join(f"{d['field']} spw {d['spw']}: {', '.join(d['tables'])}" for d in done))
    return {"selfcal": {"json": p["json"], "applied": applied}}


def selfcal_result(planned: dict | None, timings: list[dict]) -> dict | None:
    """The result's ``selfcal`` entry (pure): the plan's per-target view with
    ``applied`` set from the completed ``selfcal`` steps (``timings`` are the
    executor's step records; a step skipped as complete counts from its
    record's outputs, i.e. the markers it left)."""
    if planned is None:
        return None
    out = json.loads(json.dumps(planned))
    done_ebs = {t["step"].split(":")[0] for t in timings
                if t["step"].endswith(":selfcal") and (t.get("extra") or t.get("skipped"))}
    for tg in out.get("targets", []):
        for eb, e in tg.get("ebs", {}).items():
            e["applied"] = eb in done_ebs
        tg["applied"] = bool(tg.get("ebs")) and all(e["applied"] for e in tg["ebs"].values())
    out["applied_targets"] = [t["field"] for t in out.get("targets", []) if t["applied"]]
    return out
