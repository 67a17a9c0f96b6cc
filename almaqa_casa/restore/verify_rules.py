"""The rules of the post-restore verification (pure: numbers in, verdicts out).

Each rule turns what :mod:`.verify_io` measured in a restored MS into a
:class:`Check`: ``pass``, ``fail`` (the restore's status becomes
``'failed'``), ``warn`` (reported, not failing) or ``skip`` (does not apply,
with the reason).  A message always names the EB, the check and the numbers.

* ``calapply``: every calapply line selects rows of the MS;
* ``coverage``: every unflagged science/calibrator row the pipeline's
  intents cover (TARGET, PHASE, BANDPASS, AMPLITUDE, CHECK, POL*) in the
  science spws is selected by some line (a calapply.txt without its TARGET
  line leaves the target uncalibrated: the known silent failure);
* ``data``: sampled rows of each line carry finite, non-zero calibrated data
  (and, where the MS keeps DATA beside CORRECTED_DATA, data the calibration
  changed);
* ``flags``: flagged samples (and fully flagged rows) per scan, intent and
  spw equal the delivered ``Pipeline_Final`` version (the pipeline's own
  regression criterion: relative tolerance 1e-7);
* ``flux``: the flux calibrator's calibrated amplitude per spw against
  flux.csv within a tolerance derived from its spectral index, its uv
  coverage and the noise of the sample (:func:`flux_tolerance`);
* ``renorm``: the amplitude renormalization is applied where the manifest
  asks, with its factor recorded, and never twice;
* ``jyperk`` (total power): the calibrated spectra are in Jy, with the Jy/K
  factor per antenna, spw and polarization the delivery gives;
* ``selfcal`` (self-calibrated targets): the targets MSs carry the
  self-calibration where selfcal.json applies it, and only there.

A check that examined nothing (no row in scope, no flag group, no sample)
never passes: it fails saying what it expected to find.  A check that does
not apply to the EB is ``skip`` with the reason.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..delivery.calapply import (
    APPLY_INTENTS,
    PIPELINE_INTENT_OF_OBSMODE,
    CalApplication,
    antenna_ids,
    restrict_intents,
)

__all__ = ["CHECKS", "FLAG_RTOL", "JYPERK_RTOL", "NSIGMA", "Check", "Selection",
           "applied_renorm_counts", "calapply_rule", "coverage_rule", "data_rule", "eb_status",
           "flags_rule", "flux_rule", "flux_tolerance", "jyperk_rule", "line_selection",
           "nothing_examined", "obsmode_intents", "renorm_rule", "selection_taql", "selfcal_rule",
           "skip"]

CHECKS = ("calapply", "coverage", "data", "flags", "flux", "renorm", "jyperk", "selfcal")
#: A Jy/K factor measured in the data agrees with the delivered one to this relative
#: tolerance (the two calibrations differ by float32 rounding: about 1e-6 on the
#: synthetic TP delivery; a factor written with 3 significant digits is still 1e-3 off).
JYPERK_RTOL = 1e-4
#: The pipeline's regression tests compare flag counts at this relative tolerance.
FLAG_RTOL = 1e-7
#: Standard errors of the sample mean allowed for noise in the flux comparison
#: (5: a chance fluctuation beyond it is below 1e-6).
NSIGMA = 5.0
#: The delivered calibration's own closure on its flux calibrator: per-scan gain
#: solutions, a polarized calibrator's parallel hands, second-order leakage
#: leave it within about 1 % of flux.csv (0.8 % on the synthetic polarization
#: delivery).  The check looks for gross errors (a 10 % gain error moves the
#: amplitude by 10-20 %), so 2 % is added in quadrature.
CALIBRATION_FLOOR = 0.02


@dataclasses.dataclass
class Check:
    """The verdict of one check of one EB."""

    check: str
    status: str                      #: 'pass' | 'fail' | 'warn' | 'skip'
    message: str
    numbers: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def skip(eb: str, check: str, why: str) -> Check:
    return Check(check, "skip", f"{eb}: {check}: not checked: {why}")


def nothing_examined(eb: str, checks: Sequence[Check]) -> Check | None:
    """A failure when no check of an EB passed: skips and warnings alone are no
    verification (None when some check passed or one failed already)."""
    if any(c.status in ("pass", "fail") for c in checks):
        return None
    return Check("verify", "fail", f"{eb}: verify: no check examined the restored data ("
                 + "; ".join(f"{c.check}: {c.status}" for c in checks) + ")")


def eb_status(checks: Sequence[Check]) -> str:
    """'failed' when any check failed, else 'passed'."""
    return "failed" if any(c.status == "fail" for c in checks) else "passed"


# ---- selections -----------------------------------------------------------------------
def obsmode_intents(obs_mode: str) -> set[str]:
    """Pipeline intents of one STATE OBS_MODE entry (a comma list of modes)."""
    return {PIPELINE_INTENT_OF_OBSMODE[m.strip()] for m in str(obs_mode).split(",")
            if m.strip() in PIPELINE_INTENT_OF_OBSMODE}


@dataclasses.dataclass(frozen=True)
class Selection:
    """The rows one calapply line selects, as ids of the MS (None: any)."""

    fields: tuple[int, ...] | None
    states: tuple[int, ...] | None
    ddids: tuple[int, ...] | None
    antennas: tuple[int, ...] | None


def _ids(text: str, names: Sequence[str], what: str) -> tuple[int, ...] | str:
    """Ids of a comma list of names or ids; a reason string when not plain."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        hits = [i for i, n in enumerate(names) if n == part]
        if hits:
            out += hits
        elif part.isdigit() and int(part) < len(names):
            out.append(int(part))
        elif re.search(r"[*?&!^<>\[\]~]", part):
            return f"{what} selection {text!r} uses patterns"
        else:
            out += []          # a name the MS does not have selects nothing
    return tuple(sorted(set(out)))


def _spw_ids(text: str) -> tuple[int, ...] | str:
    out: list[int] = []
    for part in text.split(","):
        part = part.split(":")[0].strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d{1,5})(?:~(\d{1,5}))?", part)
        if not m:
            return f"spw selection {text!r} is not a list of ids"
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        out += list(range(lo, hi + 1))
    return tuple(sorted(set(out)))


def line_selection(app: CalApplication, field_names: Sequence[str],
                   state_modes: Sequence[str], dd_spw: Sequence[int],
                   antenna_names: Sequence[str]) -> Selection | str:
    """The rows ``app`` selects in an MS (or why that cannot be decided here).

    As the restore applies it: intents restricted to those hifa_restoredata
    applies, mapped to the MS's STATE rows; field names or ids; spw ids
    (channel ranges ignored); antenna ids or names (a baseline with either
    antenna is selected, as CASA's antenna selection).
    """
    fields = None
    if app.field.strip():
        f = _ids(app.field, field_names, "field")
        if isinstance(f, str):
            return f
        fields = f
    wanted = set(restrict_intents(app.intent).split(","))
    states = tuple(i for i, m in enumerate(state_modes) if obsmode_intents(m) & wanted)
    ddids = None
    if app.spw.strip():
        s = _spw_ids(app.spw)
        if isinstance(s, str):
            return s
        ddids = tuple(d for d, spw in enumerate(dd_spw) if spw in s)
    ants = None
    if app.antenna.strip() and app.antenna.strip() != "*":
        ids = antenna_ids(app.antenna)
        if ids is None:
            a = _ids(app.antenna, antenna_names, "antenna")
            if isinstance(a, str):
                return a
            ids = set(a)
        if not set(range(len(antenna_names))) <= ids:
            ants = tuple(sorted(i for i in ids if i < len(antenna_names)))
    return Selection(fields, states, ddids, ants)


def _in(col: str, ids: Iterable[int]) -> str:
    ids = list(ids)
    return f"{col} IN [{','.join(str(int(i)) for i in ids)}]" if ids else "F"


def selection_taql(sel: Selection) -> str:
    """A TaQL predicate for the rows of ``sel``."""
    parts = []
    if sel.fields is not None:
        parts.append(_in("FIELD_ID", sel.fields))
    if sel.states is not None:
        parts.append(_in("STATE_ID", sel.states))
    if sel.ddids is not None:
        parts.append(_in("DATA_DESC_ID", sel.ddids))
    if sel.antennas is not None:
        parts.append(f"({_in('ANTENNA1', sel.antennas)} || {_in('ANTENNA2', sel.antennas)})")
    return "(" + " && ".join(parts) + ")" if parts else "T"


def scope_states(state_modes: Sequence[str]) -> list[int]:
    """STATE rows whose intents the pipeline's restore calibrates."""
    return [i for i, m in enumerate(state_modes) if obsmode_intents(m) & set(APPLY_INTENTS)]


# ---- rules ------------------------------------------------------------------------------
def calapply_rule(eb: str, lines: Sequence[Mapping[str, Any]]) -> Check:
    """``lines``: per calapply line ``{'source', 'intent', 'field', 'spw', 'rows'}``
    (``rows`` None with ``'why'`` when the selection cannot be evaluated here)."""
    empty = [ln for ln in lines if ln.get("rows") == 0]
    unknown = [ln for ln in lines if ln.get("rows") is None]
    nums = {"lines": len(lines), "rows": {str(ln["source"]): ln.get("rows") for ln in lines}}
    if not lines:
        return Check("calapply", "fail", f"{eb}: calapply: the delivered calapply list has no "
                     "applycal line: nothing of this EB is calibrated", nums)
    if empty:
        what = "; ".join(f"{ln['source']} (field {ln['field']!r}, intent {ln['intent']!r}, "
                         f"spw {ln['spw']!r})" for ln in empty)
        return Check("calapply", "fail", f"{eb}: calapply: {len(empty)} of {len(lines)} "
                     f"calapply line(s) select no row of the MS: {what}", nums)
    if unknown:
        return Check("calapply", "warn", f"{eb}: calapply: {len(unknown)} line(s) not "
                     "evaluated: " + "; ".join(f"{ln['source']}: {ln.get('why')}"
                                               for ln in unknown), nums)
    total = sum(int(ln["rows"]) for ln in lines)
    return Check("calapply", "pass", f"{eb}: calapply: every one of {len(lines)} line(s) "
                 f"selects rows ({total} rows in all)", nums)


def coverage_rule(eb: str, uncovered: Sequence[Mapping[str, Any]], in_scope: int,
                  rows: str = "cross-correlation") -> Check:
    """``uncovered``: groups ``{'intent', 'field', 'spw', 'rows'}`` of unflagged rows
    in scope that no line selects; ``in_scope``: all such rows; ``rows``: their kind
    (cross-correlation, autocorrelation)."""
    nums = {"rows_in_scope": in_scope, "uncovered": [dict(u) for u in uncovered], "kind": rows}
    n = sum(int(u["rows"]) for u in uncovered)
    kind = "rows " if rows == "cross-correlation" else f"{rows} rows "
    if not in_scope:
        return Check("coverage", "fail", f"{eb}: coverage: no unflagged {rows} row of a science "
                     "spw with a calibrated intent in the MS: nothing to check (all flagged, or "
                     f"no {rows} data)", nums)
    if n:
        by: dict[tuple[str, str], list] = {}
        for u in uncovered:
            by.setdefault((u["intent"], u["field"]), []).append(u)
        what = "; ".join(f"{i} rows of field {f} (spw {','.join(str(x['spw']) for x in g)}): "
                         f"{sum(int(x['rows']) for x in g)}" for (i, f), g in by.items())
        target = any("TARGET" in u["intent"] for u in uncovered)
        return Check("coverage", "fail",
                     f"{eb}: coverage: {n} of {in_scope} unflagged science/calibrator {kind}are "
                     f"selected by no calapply line and are left UNCALIBRATED"
                     + (" (the science target among them)" if target else "") + f": {what}",
                     nums)
    return Check("coverage", "pass", f"{eb}: coverage: all {in_scope} unflagged science/"
                 f"calibrator {kind}are selected by a calapply line", nums)


def data_rule(eb: str, samples: Sequence[Mapping[str, Any]], column: str) -> Check:
    """``samples``: per line and spw ``{'label', 'rows', 'unflagged', 'nonfinite',
    'zero', 'unchanged'}`` (``unchanged``: unflagged samples equal to DATA, None
    where DATA is not kept beside the calibrated column)."""
    bad = []
    for s in samples:
        if s["nonfinite"] or s["zero"]:
            bad.append(f"{s['label']}: {s['nonfinite']} non-finite and {s['zero']} zero of "
                       f"{s['unflagged']} unflagged samples")
        elif s.get("unchanged") is not None and s["unflagged"] and s["unchanged"] == s["unflagged"]:
            bad.append(f"{s['label']}: all {s['unflagged']} unflagged samples equal the "
                       "uncalibrated DATA (the calibration changed nothing)")
    nums = {"column": column, "samples": [dict(s) for s in samples],
            "rows_read": sum(int(s["rows"]) for s in samples),
            "unflagged": sum(int(s["unflagged"]) for s in samples)}
    if bad:
        return Check("data", "fail", f"{eb}: data: {'; '.join(bad)} ({column})", nums)
    if not samples:
        return Check("data", "fail", f"{eb}: data: no unflagged row to sample in {column}: "
                     "no calibrated data examined", nums)
    return Check("data", "pass", f"{eb}: data: {nums['unflagged']} unflagged samples in "
                 f"{nums['rows_read']} sampled rows of {len(samples)} selection(s) are finite "
                 f"and non-zero ({column})", nums)


def _key(d: Mapping[str, Any]) -> tuple[int, str, int]:
    return int(d["scan"]), str(d["intent"]), int(d["spw"])


def flags_rule(eb: str, restored: Sequence[Mapping[str, Any]],
               reference: Sequence[Mapping[str, Any]], rtol: float = FLAG_RTOL) -> Check:
    """Flag counts per (scan, intent, spw): ``{'scan', 'intent', 'spw', 'rows',
    'flagged_rows', 'samples', 'flagged_samples'}``, restored vs Pipeline_Final.

    Only the spws the restored MS has are compared (a split keeps the science
    spws)."""
    ref = {_key(d): d for d in reference}
    got = {_key(d): d for d in restored}
    spws = {k[2] for k in got}
    diffs = []
    table = []
    for k in sorted(set(ref) | set(got)):
        if k[2] not in spws:
            continue
        r, g = ref.get(k), got.get(k)
        row = {"scan": k[0], "intent": k[1], "spw": k[2],
               "rows": (g or r or {}).get("rows"),
               "flagged_rows": g and g["flagged_rows"], "reference_flagged_rows": r and r["flagged_rows"],
               "flagged_samples": g and g["flagged_samples"],
               "reference_flagged_samples": r and r["flagged_samples"]}
        table.append(row)
        if r is None or g is None:
            diffs.append(f"scan {k[0]} {k[1]} spw {k[2]}: "
                         + ("not in Pipeline_Final" if r is None else "missing from the MS"))
            continue
        if r["rows"] != g["rows"]:
            diffs.append(f"scan {k[0]} {k[1]} spw {k[2]}: {g['rows']} rows, Pipeline_Final "
                         f"{r['rows']}")
            continue
        n = max(int(g["samples"]), 1)
        if (abs(int(g["flagged_samples"]) - int(r["flagged_samples"])) > rtol * n
                or g["flagged_rows"] != r["flagged_rows"]):
            diffs.append(f"scan {k[0]} {k[1]} spw {k[2]}: {g['flagged_samples']} flagged "
                         f"samples ({g['flagged_rows']} rows fully flagged) of {g['samples']}, "
                         f"Pipeline_Final {r['flagged_samples']} ({r['flagged_rows']} rows)")
    nums = {"groups": len(table), "table": table, "rtol": rtol}
    if not table:
        return Check("flags", "fail", f"{eb}: flags: no scan/intent/spw group to compare (the "
                     f"restored MS has {len(restored)}, Pipeline_Final {len(reference)} groups of "
                     "the correlations checked)", nums)
    if diffs:
        return Check("flags", "fail", f"{eb}: flags: {len(diffs)} of {len(table)} scan/intent/"
                     f"spw groups differ from the delivered Pipeline_Final flags: "
                     + "; ".join(diffs[:6]) + ("; ..." if len(diffs) > 6 else ""), nums)
    return Check("flags", "pass", f"{eb}: flags: {len(table)} scan/intent/spw groups equal the "
                 f"delivered Pipeline_Final flags (relative tolerance {rtol:g})", nums)


def flux_tolerance(spix: float, freqs_hz: Sequence[float], sem: float, mean: float,
                   short_long: tuple[float, float] | None) -> tuple[float, dict]:
    """The fractional tolerance of a calibrator's amplitude, and its parts.

    * spectral index: flux.csv quotes one flux per spw; across the spw the
      power law ``(nu/nu0)**spix`` moves by ``|spix| * ln(nu_max/nu_min) / 2``
      either side of its middle, which bounds where within the spw the quoted
      value can refer to;
    * uv coverage: half the fractional difference of the mean amplitude on
      the shorter and the longer half of the baselines (zero for a point
      source, growing as the source is resolved);
    * noise: :data:`NSIGMA` standard errors of the sample mean;
    * calibration: :data:`CALIBRATION_FLOOR`, the delivered calibration's
      own closure on the calibrator.

    The parts add in quadrature.
    """
    f = [float(x) for x in freqs_hz if x > 0]
    spectral = abs(spix) * math.log(max(f) / min(f)) / 2 if len(f) > 1 else 0.0
    structure = 0.0
    if short_long and all(math.isfinite(v) for v in short_long) and sum(short_long):
        a, b = short_long
        structure = abs(a - b) / (abs(a) + abs(b))
    noise = NSIGMA * abs(sem / mean) if mean else float("inf")
    tol = math.sqrt(spectral ** 2 + structure ** 2 + noise ** 2 + CALIBRATION_FLOOR ** 2)
    return tol, {"spectral_index": spectral, "uv_structure": structure, "noise": noise,
                 "nsigma": NSIGMA, "calibration": CALIBRATION_FLOOR}


def flux_rule(eb: str, field: str, measurements: Sequence[Mapping[str, Any]],
              others: Sequence[Mapping[str, Any]] = ()) -> Check:
    """``measurements`` of the flux calibrator per spw: ``{'spw', 'expected',
    'measured', 'tolerance', 'parts', 'samples'}``; ``others``: the other
    flux.csv calibrators (reported, never failing: flux.csv holds catalogue
    values for them)."""
    bad = [m for m in measurements if abs(m["measured"] / m["expected"] - 1) > m["tolerance"]]
    nums = {"field": field, "spws": [dict(m) for m in measurements],
            "others": [dict(o) for o in others]}
    txt = "; ".join(f"spw {m['spw']}: {m['measured']:.4g} Jy vs {m['expected']:.4g} Jy "
                    f"({100 * (m['measured'] / m['expected'] - 1):+.2f} %, tolerance "
                    f"{100 * m['tolerance']:.2f} %)" for m in (bad or measurements))
    if not measurements:
        # a flux calibrator flagged out of an EB is a real case (the flags check compares
        # them with Pipeline_Final): the scale is then NOT verified, which a warning says
        return Check("flux", "warn", f"{eb}: flux: flux calibrator {field}: no unflagged "
                     "calibrated data to measure: the flux scale is NOT verified", nums)
    if bad:
        return Check("flux", "fail", f"{eb}: flux: flux calibrator {field} differs from "
                     f"flux.csv beyond the tolerance its spectral index, uv coverage and noise "
                     f"allow: {txt}", nums)
    return Check("flux", "pass", f"{eb}: flux: flux calibrator {field} agrees with flux.csv: "
                 f"{txt}", nums)


def jyperk_rule(eb: str, unit: str, reference: Mapping[tuple[str, int, str], float],
                measured: Mapping[tuple[str, int, str], float], how: str, source: str = "",
                rtol: float = JYPERK_RTOL) -> Check:
    """Total power: ``unit`` the UNIT of the calibrated column; ``reference`` the
    delivered Jy/K factors per (antenna, spw, pol) (empty: none delivered);
    ``measured`` the factors the calibrated data carry, ``how`` how they were
    obtained (measured in the data, or the applied table when the full MS is gone)."""
    keys = sorted(set(reference) | set(measured))
    rows = [{"antenna": k[0], "spw": k[1], "pol": k[2], "delivered": reference.get(k),
             "measured": measured.get(k),
             "ratio": (measured[k] / reference[k]) if k in measured and reference.get(k) else None}
            for k in keys]
    nums = {"unit": unit, "how": how, "source": source, "rtol": rtol, "factors": rows}
    if not reference:
        if unit == "K":
            return Check("jyperk", "skip", f"{eb}: jyperk: not checked: no Kelvin-to-Jansky "
                         "factor delivered; the data stay in K (UNIT 'K')", nums)
        return Check("jyperk", "fail", f"{eb}: jyperk: no Kelvin-to-Jansky factor delivered but "
                     f"the calibrated data say UNIT {unit!r}", nums)
    bad = []
    if unit != "Jy":
        bad.append(f"the calibrated column has UNIT {unit!r}, not 'Jy'")
    if not measured:
        bad.append(f"no Jy/K factor measured ({how})")
    for r in rows:
        what = f"{r['antenna']} spw {r['spw']} {r['pol']}"
        if r["delivered"] is None:
            bad.append(f"{what}: {r['measured']:.6g} Jy/K applied, none delivered")
        elif r["measured"] is not None and abs(r["ratio"] - 1) > rtol:
            bad.append(f"{what}: {r['measured']:.6g} Jy/K applied, {r['delivered']:.6g} delivered "
                       f"(ratio {r['ratio']:.4f})")
    if bad:
        return Check("jyperk", "fail", f"{eb}: jyperk: {len(bad)} difference(s) from the "
                     f"delivered Jy/K factors ({how}): " + "; ".join(bad[:6])
                     + ("; ..." if len(bad) > 6 else ""), nums)
    n = sum(r["measured"] is not None for r in rows)
    missing = [f"{r['antenna']} spw {r['spw']} {r['pol']}" for r in rows if r["measured"] is None]
    worst = max(abs(r["ratio"] - 1) for r in rows if r["ratio"] is not None)
    return Check("jyperk", "pass", f"{eb}: jyperk: data in Jy; {n} Jy/K factor(s) per antenna, "
                 f"spw and polarization equal the delivered ones (largest difference "
                 f"{worst:.1e}, tolerance {rtol:g}; {how})"
                 + (f"; not measured (flagged): {', '.join(missing)}" if missing else ""), nums)


def selfcal_rule(eb: str, samples: Sequence[Mapping[str, Any]]) -> Check:
    """``samples`` per targets MS, field and spw: ``{'ms', 'field', 'spw', 'applied'
    (selfcal.json applies the self-calibration there), 'unflagged', 'unchanged'
    (unflagged CORRECTED samples equal to DATA)}``."""
    bad = []
    for s in samples:
        where = f"{s['ms']} field {s['field']} spw {s['spw']}"
        if s["applied"] and s["unflagged"] and s["unchanged"] == s["unflagged"]:
            bad.append(f"{where}: all {s['unflagged']} unflagged CORRECTED_DATA samples equal "
                       "DATA: the self-calibration is NOT applied")
        elif not s["applied"] and s["unchanged"] != s["unflagged"]:
            bad.append(f"{where}: {s['unflagged'] - s['unchanged']} of {s['unflagged']} "
                       "unflagged CORRECTED_DATA samples differ from DATA where selfcal.json "
                       "applies no self-calibration")
    nums = {"samples": [dict(s) for s in samples],
            "applied": sum(bool(s["applied"]) for s in samples)}
    if bad:
        return Check("selfcal", "fail", f"{eb}: selfcal: " + "; ".join(bad[:6])
                     + ("; ..." if len(bad) > 6 else ""), nums)
    if not nums["applied"] or not any(s["unflagged"] for s in samples if s["applied"]):
        return Check("selfcal", "fail", f"{eb}: selfcal: no unflagged sample of a "
                     "self-calibrated field and spw in the targets MSs: nothing examined", nums)
    return Check("selfcal", "pass", f"{eb}: selfcal: CORRECTED_DATA differs from DATA in all "
                 f"{nums['applied']} self-calibrated field/spw selection(s) of the targets MSs "
                 f"and equals it in the {len(samples) - nums['applied']} others", nums)


# ---- renormalization -----------------------------------------------------------------------
def _history_value(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip().strip('"')


def _is_renorm(name: str) -> bool:
    n = os.path.basename(str(name).rstrip("/")).lower()
    return "renorm" in n


def applied_renorm_counts(origins: Sequence[str], messages: Sequence[str],
                          callib_texts: Mapping[str, str], target_modes: set[str],
                          all_spws: Sequence[int]) -> dict[int, list[str]]:
    """Renormalization tables applied to the TARGET data, per spw, from an MS's
    HISTORY (``applycal`` calls; ``mstransform`` with a cal library, whose
    text ``callib_texts`` maps by path).  ``target_modes``: the MS's obs modes
    of the TARGET intent."""
    out: dict[int, list[str]] = {}
    calls: list[tuple[str, dict]] = []
    task, params = "", {}
    for origin, msg in zip(origins, messages):
        msg = str(msg)
        m = re.match(r"taskname=(\w+)", msg)
        if m:
            if task:
                calls.append((task, params))
            task, params = m.group(1), {}
            continue
        m = re.match(r"(\w+)\s+=\s+(.*)$", msg, re.S)
        if m and task and str(origin) == task:
            params[m.group(1)] = _history_value(m.group(2))
    if task:
        calls.append((task, params))

    def spws_of(sel: Any) -> list[int]:
        s = _spw_ids(str(sel or ""))
        return list(all_spws) if (isinstance(s, str) or not s) else list(s)

    def targets(intent: Any) -> bool:
        modes = {x.strip() for x in str(intent or "").split(",") if x.strip()}
        return not modes or bool(modes & target_modes)

    for task, p in calls:
        if task == "applycal" and targets(p.get("intent")):
            tables = p.get("gaintable") or []
            tables = [tables] if isinstance(tables, str) else list(tables)
            for t in tables:
                if _is_renorm(t):
                    for s in spws_of(p.get("spw")):
                        out.setdefault(s, []).append(os.path.basename(str(t)))
        if task == "mstransform" and p.get("docallib") is True:
            text = callib_texts.get(str(p.get("callib")), "")
            for line in text.splitlines():
                t = re.search(r"caltable='([^']*)'", line)
                if not t or not _is_renorm(t.group(1)):
                    continue
                i = re.search(r"intent='([^']*)'", line)
                s = re.search(r"spw='([^']*)'", line)
                if targets(i.group(1) if i else ""):
                    for sp in spws_of(s.group(1) if s else ""):
                        out.setdefault(sp, []).append(os.path.basename(t.group(1)))
    return out


def renorm_rule(eb: str, request: Mapping[str, Any] | None, record: Mapping[str, Any] | None,
                applied: Mapping[int, Sequence[str]], history_known: bool = True) -> Check:
    """``request``: the manifest's hifa_renorm step parameters (None: none asked;
    ``delivered_table``: calapply.txt applies the pipeline's own table);
    ``record``: what the restore computed; ``applied``: tables applied per spw
    (:func:`applied_renorm_counts`)."""
    twice = {s: t for s, t in applied.items() if len(t) > 1}
    nums: dict = {"requested": bool(request), "applied_tables": {str(s): list(t) for s, t in
                                                                 applied.items()}}
    if twice:
        return Check("renorm", "fail", f"{eb}: renorm: the renormalization is applied TWICE: "
                     + "; ".join(f"spw {s}: {', '.join(t)}" for s, t in sorted(twice.items())),
                     nums)
    if not request:
        if applied:
            return Check("renorm", "warn", f"{eb}: renorm: no hifa_renorm in the manifest, but "
                         "a renormalization table is applied: " + "; ".join(
                             f"spw {s}: {', '.join(t)}" for s, t in sorted(applied.items())), nums)
        return Check("renorm", "pass", f"{eb}: renorm: not requested by the manifest; none "
                     "applied", nums)
    if request.get("delivered_table"):
        nums["delivered_table"] = request["delivered_table"]
        return Check("renorm", "pass", f"{eb}: renorm: applied once by the delivered "
                     f"calibration ({request['delivered_table']}); not recomputed", nums)
    if not request.get("apply"):
        return Check("renorm", "pass", f"{eb}: renorm: the manifest records hifa_renorm "
                     "without applying it; not applied", nums)
    if not record:
        return Check("renorm", "fail", f"{eb}: renorm: the manifest asks for the amplitude "
                     "renormalization but the restore recorded none", nums)
    nums.update(max_scaling=record.get("max_scaling"), spws=record.get("spws"),
                caltable=record.get("caltable"), table_max=record.get("table_max"))
    if record.get("warning") and not record.get("applied"):
        return Check("renorm", "fail", f"{eb}: renorm: the manifest asks for it and it was NOT "
                     f"applied: {record['warning']}", nums)
    if not record.get("max_scaling"):
        return Check("renorm", "fail", f"{eb}: renorm: no factor recorded", nums)
    if not record.get("applied"):
        allspw = [int(s) for d in record["max_scaling"].values() for s in d]
        return Check("renorm", "pass", f"{eb}: renorm: computed, below the threshold "
                     f"(maximum scaling {_factors(record['max_scaling'], allspw)}); nothing to "
                     "apply", nums)
    spws = [int(s) for s in record.get("spws") or []]
    missing = [s for s in spws if not applied.get(s)] if history_known else []
    if missing:
        return Check("renorm", "fail", f"{eb}: renorm: recorded as applied to spw {spws} "
                     f"({os.path.basename(str(record.get('caltable')))}) but the MS shows no "
                     f"renormalization applied to spw {missing}", nums)
    return Check("renorm", "pass", f"{eb}: renorm: applied once to spw {spws} with "
                 f"{os.path.basename(str(record.get('caltable')))} (maximum scaling "
                 f"{_factors(record['max_scaling'], spws)})", nums)


def _factors(max_scaling: Mapping[str, Mapping[str, float]], spws: Sequence[int]) -> str:
    """``'1.0499 (Synth_Disk spw 1)'`` for the spws given."""
    out = [f"{v:.4f} ({t} spw {s})" for t, d in (max_scaling or {}).items()
           for s, v in d.items() if int(s) in set(spws)]
    return ", ".join(out) or str(max_scaling)
