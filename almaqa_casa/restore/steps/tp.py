"""Step bodies of pipeline-calibrated total power (the CASA calls are in :mod:`..casasteps`).

``tp-ms``: import the autocorrelations, restore Pipeline_Final, apply the sky,
Tsys and Jy/K tables (making the Jy/K table from jyperk.csv when the
delivery has none), record the factors applied; ``tp-atmcor``: sdatmcor;
``tp-baseline``: sdbaseline.  Every output is written under a temporary name
and renamed when complete.
"""
from __future__ import annotations

import os

from ...atomic import atomic_output, partial_name, remove
from ...delivery.jyperk import JyPerKFactor, JyPerKFile, SessionFactor, factors_for_ms, ms_csv
from ...log import post
from ..plan import Step
from . import StepContext, body

#: Relative difference above which an applied factor "differs" from the delivered one.
FACTOR_RTOL = 1e-5


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def _delivered_file(d: dict, source: str) -> JyPerKFile:
    """The EB's delivered rows (from the step parameters) as a JyPerKFile."""
    if d["kind"] == "ms":
        return JyPerKFile(path=source, kind="ms", factors=tuple(
            JyPerKFactor(ms="self", antenna=a, spw=int(s), pol=p, factor=float(f)) for a, s, p, f in d["rows"]))
    return JyPerKFile(path=source, kind="session", session_rows=tuple(
        SessionFactor(session=d.get("session") or 0, start="", end="", antenna=a, center_hz=float(c),
                      bandwidth_hz=float(w), pol=p, factor=float(f)) for a, c, w, p, f in d["rows"]))


def delivered_factors(k2jy: dict, meta: dict) -> dict[tuple[str, int, str], float]:
    """The delivered factors of this EB resolved to (antenna, spw, pol)."""
    jf = _delivered_file(k2jy["delivered"], k2jy.get("jyperk", ""))
    return factors_for_ms(jf, "self", meta["antennas"], meta["spws"], [p for p in meta["pols"]
                                                                       if p in ("XX", "YY", "RR", "LL")],
                          session=None)


def _nested(f: dict[tuple[str, int, str], float]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict = {}
    for (a, s, p), v in sorted(f.items()):
        out.setdefault(a, {}).setdefault(str(s), {})[p] = v
    return out


def compare(applied: dict, delivered: dict) -> list[str]:
    """Differences between applied and delivered factors, one line each (pure)."""
    out = []
    for key in sorted(set(applied) | set(delivered)):
        a, d = applied.get(key), delivered.get(key)
        ant, spw, pol = key
        if a is None:
            out.append(f"{ant} spw {spw} {pol}: delivered {d} Jy/K, not applied")
        elif d is None:
            out.append(f"{ant} spw {spw} {pol}: applied {a:.6g} Jy/K, none delivered")
        elif abs(a - d) > FACTOR_RTOL * abs(d):
            out.append(f"{ant} spw {spw} {pol}: applied {a:.6g} Jy/K, delivered {d:.6g}")
    return out


@body("tp-ms")
def tp_ms(ctx: StepContext, step: Step) -> dict:
    from .. import casasteps as cs
    plan, member, uid = ctx.plan, ctx.member, step.eb
    out, fv = step.outputs[0], step.outputs[1]
    k2jy = step.params["k2jy"]
    asdm = os.path.abspath(member.raw_asdms[uid])
    tmp = str(partial_name(out))
    imp = step.params.get("import") or {}
    extra: dict = {"warnings": []}
    made_table = ""
    try:
        extra.update(cs.import_asdm_autocorr(asdm, tmp, lazy=step.params.get("lazy", True),
                                             ocorr_mode=imp.get("ocorr_mode", "ao"),
                                             asis=imp.get("asis", ""), bdfflags=imp.get("bdfflags", True)))
        cs.copy_asdm_xml(asdm, tmp)
        cs.restore_flags(tmp, member.flagversions[uid], data_bytes=member.raw_sizes.get(uid))
        from ..verify_io import flag_summary  # Pipeline_Final's counts, for the verification
        extra["pipeline_final_flags"] = flag_summary(tmp, auto=True)
        meta = cs.sd_metadata(tmp)
        delivered = delivered_factors(k2jy, meta) if k2jy.get("delivered") else {}
        add: list[tuple[str, str, str, bool]] = []
        if k2jy["route"] == "csv":
            if not delivered:
                raise cs.RestoreStepError(f"{uid}: {k2jy['jyperk']} gives no factor for the antennas "
                                          f"{meta['antennas']} and spws {sorted(meta['spws'])} of this EB")
            made_table = k2jy["path"]
            remove(made_table)
            with atomic_output(made_table, overwrite=True) as t:
                cs.make_k2jy_table(tmp, ms_csv(delivered, os.path.basename(tmp)), str(t))
            add.append((made_table, "", "nearest,nearest", False))
        extra["applycal_lines"] = cs.apply_calibration_sd(tmp, member.calapply[uid], plan.working, add)
        table = os.path.join(plan.working, k2jy["table"]) if k2jy["table"] else ""
        applied = cs.k2jy_factors(table, tmp) if table else {}
        unit = "Jy" if applied else "K"
        cs.set_data_unit(tmp, unit)
        diffs = compare(applied, delivered) if (applied and delivered) else []
        for d in diffs:
            msg = f"{uid}: Jy/K factor differs from {os.path.basename(k2jy['jyperk'])}: {d}"
            _log(msg, "WARN")
            extra["warnings"].append(msg)
        extra["jyperk"] = {"route": k2jy["route"], "table": os.path.basename(table), "unit": unit,
                           "applied": _nested(applied), "delivered": _nested(delivered) if delivered else None,
                           "matches_delivered": (not diffs) if (applied and delivered) else None,
                           "source": k2jy.get("jyperk", "")}
        remove(fv)
        os.replace(tmp + ".flagversions", fv)
        remove(out)
        os.replace(tmp, out)
    except BaseException:
        if made_table:
            remove(made_table)
        raise
    finally:
        remove(tmp)
        remove(tmp + ".flagversions")
    return extra


@body("tp-atmcor")
def tp_atmcor(ctx: StepContext, step: Step) -> dict:
    from .. import casasteps as cs
    vis, p = step.inputs[0], step.params
    spws = cs.science_spws(vis)
    with atomic_output(step.outputs[0], overwrite=True) as tmp:
        cs.sdatmcor_run(vis, str(tmp), "corrected", p["atmtype"], p["dtem_dh"], p["h0"],
                        p.get("gainfactor") or 1.0, spws)
    return {"atmcor": {"atmtype": p["atmtype"], "dtem_dh": p["dtem_dh"], "h0": p["h0"], "spw": spws,
                       "source": p.get("source", "")}}


@body("tp-baseline")
def tp_baseline(ctx: StepContext, step: Step) -> dict:
    from .. import casasteps as cs
    vis, p = step.inputs[0], step.params
    spw = p.get("spw") or ",".join(str(s) for s in cs.science_spws(vis))
    with atomic_output(step.outputs[0], overwrite=True) as tmp:
        cs.sdbaseline_run(vis, str(tmp), p.get("datacolumn", "corrected"), spw=spw,
                          bltable=p.get("bltable", "") if p.get("mode") == "apply" else "")
    return {"baseline": {"mode": p.get("mode"), "bltable": os.path.basename(p.get("bltable", "")),
                         "spw": spw, "input": os.path.basename(vis)}}
