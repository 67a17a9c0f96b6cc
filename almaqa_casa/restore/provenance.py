"""Where a restored output came from: versions and parameters, in every output.

Users of restored data need the CASA and pipeline versions that calibrated
the delivery (the manifest, README, casa_commands.log: the member model's
``versions``) beside the versions that restored it; a different major CASA
version (6.6 vs 6.7) is worth a warning, since the ALMA pipeline restores
with the calibration's own version.  The record (versions, the package's
version, the task's parameters) goes into the result dict, the HISTORY of
the restored MSs and the FITS HISTORY of the recovered images.

Pure: :func:`record`, :func:`version_warnings`, :func:`history_lines`,
:func:`fits_history`.  I/O: :func:`present_versions`,
:func:`write_ms_history`.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..delivery.versions import major_difference

__all__ = ["PROVENANCE_PREFIX", "fits_history", "history_lines", "present_versions",
           "read_ms_provenance", "record", "version_warnings", "write_ms_history"]

#: HISTORY message prefix of the machine-readable record (read back by
#: :mod:`almaqa_casa.renorm.state` to know what an MS holds).
PROVENANCE_PREFIX = "almaqa_casa provenance: "


def present_versions() -> dict[str, str]:
    """The versions doing the work now: package, casatools, casatasks, Python."""
    from .. import __version__
    out = {"almaqa_casa": __version__, "python": platform.python_version()}
    try:
        import casatools
        out["casatools"] = str(casatools.version_string())
        out["casa"] = ".".join(str(int(x)) for x in casatools.version()[:3])
    except Exception:      # no CASA: the record says so
        out["casatools"] = out["casa"] = "unknown"
    try:
        import casatasks
        out["casatasks"] = str(casatasks.version_string())
    except Exception:
        out["casatasks"] = "unknown"
    return out


def version_warnings(delivered: Mapping[str, Any], present: Mapping[str, str],
                     what: str = "the delivery") -> list[str]:
    """A warning when the delivery's CASA differs from the present one in major
    or minor version (6.6 vs 6.7); none when the delivery names no version."""
    casa = delivered.get("casa")
    if not casa or not major_difference(casa, present.get("casa", "")):
        return []
    pl = f", pipeline {delivered['pipeline']}" if delivered.get("pipeline") else ""
    src = f" (read from {os.path.basename(str(delivered['casa_source']))})" \
        if delivered.get("casa_source") else ""
    return [f"{what} was calibrated with CASA {casa}{pl}{src} and is restored with CASA "
            f"{present.get('casa')} (casatools {present.get('casatools')}): a different major "
            "version; calibrated values may differ slightly from the delivery's (the ALMA "
            "pipeline restores with the calibration's own version)"]


def record(task: str, params: Mapping[str, Any], delivered: Mapping[str, Any],
           present: Mapping[str, str], when: float | None = None) -> dict:
    """The provenance record of one run (JSON-able)."""
    return {"task": task, "package": f"almaqa_casa {present.get('almaqa_casa')}",
            "parameters": {k: params[k] for k in sorted(params)},
            "delivery_versions": {"casa": delivered.get("casa"),
                                  "pipeline": delivered.get("pipeline"),
                                  "casa_source": delivered.get("casa_source") or "",
                                  "pipeline_source": delivered.get("pipeline_source") or ""},
            "restoring_versions": dict(present),
            "major_difference": bool(delivered.get("casa") and major_difference(
                delivered.get("casa"), present.get("casa", ""))),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))}


def _short(v: Any) -> str:
    return "unknown" if v in (None, "") else str(v)


def history_lines(prov: Mapping[str, Any], member: str, eb: str, data: str,
                  renorm: Mapping[str, Any] | None, verification: str) -> list[str]:
    """HISTORY messages of one restored MS: readable lines, then the record as JSON.

    ``data`` says what DATA holds ('calibrated' for a split, 'uncalibrated'
    with CORRECTED_DATA for the full MS); ``renorm`` is the EB's
    renormalization record; ``verification`` the EB's verification status.
    """
    d, p = prov.get("delivery_versions", {}), prov.get("restoring_versions", {})
    params = ", ".join(f"{k}={v!r}" for k, v in (prov.get("parameters") or {}).items())
    lines = [f"{prov.get('task')} ({prov.get('package')}) restored {eb} of "
             f"{os.path.basename(member)}; DATA holds {data} data",
             f"delivery calibrated with CASA {_short(d.get('casa'))}, pipeline "
             f"{_short(d.get('pipeline'))}; restored with CASA {_short(p.get('casa'))} "
             f"(casatools {_short(p.get('casatools'))}, casatasks {_short(p.get('casatasks'))}, "
             f"Python {_short(p.get('python'))})",
             f"{prov.get('task')}({params})"]
    if prov.get("options"):
        lines.append("in effect: " + ", ".join(f"{k}={v!r}" for k, v in prov["options"].items()))
    rn = dict(renorm or {})
    if rn.get("applied"):
        lines.append(f"amplitude renormalization applied by {prov.get('task')} to spw "
                     f"{rn.get('spws')} with {os.path.basename(str(rn.get('caltable')))} "
                     f"(maximum scaling {rn.get('max_scaling')})")
    elif rn.get("delivered_table"):
        lines.append(f"amplitude renormalization applied by the delivered calibration "
                     f"({rn['delivered_table']})")
    lines.append(f"verification: {verification}")
    short_rn = {k: rn.get(k) for k in ("applied", "caltable", "spws", "max_scaling",
                                       "delivered_table") if k in rn}
    blob = {"task": prov.get("task"), "package": prov.get("package"), "eb": eb,
            "data": data, "renorm": short_rn or None, "verification": verification,
            "delivery_versions": {"casa": d.get("casa"), "pipeline": d.get("pipeline")},
            "restoring_versions": {k: p.get(k) for k in ("casa", "casatools", "casatasks")},
            "parameters": prov.get("parameters")}
    lines.append(PROVENANCE_PREFIX + json.dumps(blob, sort_keys=True, default=str))
    return lines


def fits_history(task: str, params: Mapping[str, Any] | None = None,
                 delivered: Mapping[str, Any] | None = None,
                 present: Mapping[str, str] | None = None) -> list[str]:
    """FITS HISTORY cards (each under 72 characters where possible) of an image."""
    present = present or present_versions()
    out = [f"{task} by almaqa_casa {present.get('almaqa_casa')}",
           f"CASA {present.get('casa')} (casatools {present.get('casatools')})"]
    if delivered:
        out.append(f"delivery: CASA {_short(delivered.get('casa'))} pipeline "
                   f"{_short(delivered.get('pipeline'))}")
    for k, v in (params or {}).items():
        out.append(f"{task} {k}={v!r}")
    return out


def read_ms_provenance(vis: str) -> list[dict]:
    """The provenance records in ``vis``'s HISTORY, oldest first."""
    import casatools
    path = os.path.join(vis, "HISTORY")
    if not os.path.isdir(path):
        return []
    tb = casatools.table()
    tb.open(path)
    try:
        msgs = list(tb.getcol("MESSAGE")) if tb.nrows() else []
    finally:
        tb.close()
    out = []
    for m in msgs:
        if str(m).startswith(PROVENANCE_PREFIX):
            try:
                out.append(json.loads(str(m)[len(PROVENANCE_PREFIX):]))
            except ValueError:
                continue
    return out


def write_ms_history(vis: str, lines: Sequence[str], origin: str = "qa_restore") -> bool:
    """Append ``lines`` to the HISTORY of ``vis``, unless its last provenance record
    is the same (a re-run that changed nothing adds nothing).  Returns True when written."""
    import casatools
    last = read_ms_provenance(vis)
    new = next((json.loads(x[len(PROVENANCE_PREFIX):]) for x in lines
                if x.startswith(PROVENANCE_PREFIX)), None)
    if last and new is not None and last[-1] == new:
        return False
    m = casatools.ms()
    m.open(vis, nomodify=False)
    try:
        for line in lines:
            m.writehistory(message=line, origin=origin, app="almaqa_casa")
    finally:
        m.close()
    return True
