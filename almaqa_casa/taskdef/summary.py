"""The command line's human summary of a task's result dict (pure).

A person at a terminal wants the status, what was produced and where, the
warnings (how many, and the first few), findings by severity and the paths
of the reports and of the log; the whole dict is for machines (``--json``).
``verbose`` lists everything instead of the first few.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..restore.disk import fmt_bytes

__all__ = ["summarize"]

FIRST = 5          # items of a list shown without --verbose
_WIDTH = 160       # a line is cut beyond this without --verbose


def _cut(text: str, verbose: bool) -> str:
    text = " ".join(str(text).split())
    return text if verbose or len(text) <= _WIDTH else text[:_WIDTH - 1] + "…"


def _few(items: Sequence[Any], verbose: bool, fmt: Callable[[Any], str], indent: str = "  ") -> list[str]:
    shown = list(items) if verbose else list(items)[:FIRST]
    lines = [indent + _cut(fmt(i), verbose) for i in shown]
    if len(items) > len(shown):
        lines.append(f"{indent}... and {len(items) - len(shown)} more (-v lists all; --json gives the dict)")
    return lines


def _rel(path: str, base: str | None) -> str:
    if base:
        try:
            rel = os.path.relpath(path, base)
            if not rel.startswith(".."):
                return rel
        except ValueError:
            pass
    return path


def _seconds(r: Mapping[str, Any]) -> str:
    s = r.get("seconds")
    return f" in {s:.1f} s" if isinstance(s, (int, float)) else ""


def _warnings(r: Mapping[str, Any], verbose: bool) -> list[str]:
    ws = [w for w in (r.get("warnings") or []) if w]
    if not ws:
        return []
    return [f"warnings: {len(ws)}", *_few(ws, verbose, str)]


def _restore(r: Mapping[str, Any], verbose: bool) -> list[str]:
    members = r.get("members") or []
    ebs = r.get("ebs") or []
    mode = r.get("mode") or "?"
    if r.get("dryrun"):
        lines = [f"qa_restore: dry run ({mode} calibration), nothing changed: "
                 f"{len(ebs)} EB(s) in {len(members)} member(s)"]
        for m in members:
            steps = (m.get("plan") or {}).get("steps") or []
            lines.append(f"  {m.get('member', '?')}")
            lines.append(f"    output: {m.get('calibrated', '?')}   route: {m.get('route', '?')}")
            if m.get("semipass"):
                lines.append(f"    skipped (semipass): {', '.join(m['semipass'])}")
            if m.get("error"):
                lines.append(f"    error: {_cut(m['error'], verbose)}")
            lines.append(f"    {len(steps)} step(s); predicted peak disk "
                         f"{fmt_bytes(m.get('predicted_peak_bytes'))}")
            if verbose:
                lines += _few(steps, True, lambda s: f"[{s.get('id')}] {s.get('kind')}"
                              + (f" -> {', '.join(s.get('outputs') or [])}" if s.get("outputs") else ""),
                              indent="      ")
                continue
            by_eb: dict[str, list[str]] = {}
            for s in steps:
                by_eb.setdefault(s.get("eb") or "member", []).append(str(s.get("kind")))
            lines += _few(list(by_eb.items()), False, lambda kv: f"{kv[0]}: {', '.join(kv[1])}",
                          indent="      ")
        disk = r.get("disk") or {}
        if disk:
            lines.append(f"  disk: needs {fmt_bytes(disk.get('needed'))}, "
                         f"{fmt_bytes(disk.get('available'))} free")
        return lines
    lines = [f"qa_restore: {r.get('status')}{_seconds(r)}: {len(ebs)} EB(s) restored "
             f"({mode} calibration)"]
    produced = r.get("produced") or {}
    for m in members:
        base = m.get("calibrated")
        route = f", {m['route']} route" if m.get("route") else ""
        lines.append(f"  {m.get('member', '?')}{route}")
        if base:
            lines.append(f"    in {base}:")
        for eb in m.get("ebs") or []:
            outs = produced.get(eb) or []
            jk = ((m.get("eb_results") or {}).get(eb) or {}).get("jyperk")   # total power
            unit = f" (in {jk['unit']}, Jy/K from {jk['route']})" if isinstance(jk, Mapping) else ""
            if outs:
                lines.append(f"      {eb}: " + ", ".join(_rel(o, base) for o in outs) + unit)
        if m.get("semipass"):
            lines.append(f"    skipped (semipass): {', '.join(m['semipass'])}")
        if m.get("error"):
            lines.append(f"    error: {_cut(m['error'], verbose)}")
        lines += _verification(m, verbose)
    for eb, rn in (r.get("renorm") or {}).items():
        if isinstance(rn, Mapping):
            what = "applied" if rn.get("applied") else "not applied"
            lines.append(f"  renormalization {eb}: {what}"
                         + (f" ({_cut(rn['reason'], verbose)})" if rn.get("reason") else ""))
    if r.get("peak_disk_bytes"):
        lines.append(f"  peak disk used: {fmt_bytes(r['peak_disk_bytes'])}")
    if r.get("error"):
        lines.append(f"  error: {_cut(r['error'], verbose)}")
    if verbose:
        for s in r.get("steps") or []:
            lines.append(f"    {s.get('step')}: " + ("skipped (complete)" if s.get("skipped")
                                                     else f"{s.get('seconds', 0):.1f} s"))
    return lines


def _verification(m: Mapping[str, Any], verbose: bool) -> list[str]:
    """Per EB the verification verdict; the failed checks with their numbers."""
    v = m.get("verification") or {}
    if not v:
        return []
    if v.get("status") == "skipped":
        return ["    verification: skipped (verify=False)"]
    lines = [f"    verification: {v.get('status')}"]
    for eb, e in (v.get("ebs") or {}).items():
        checks = e.get("checks") or []
        ok = [c["check"] for c in checks if c["status"] == "pass"]
        bad = [c for c in checks if c["status"] in ("fail", "warn")]
        lines.append(f"      {eb}: {e.get('status')}"
                     + (f" ({', '.join(ok)} passed)" if ok else ""))
        lines += _few(bad, verbose, lambda c: f"{c['status'].upper()}: {c['message']}",
                      indent="        ")
        if verbose:
            lines += [f"        {c['status']}: {c['message']}" for c in checks
                      if c["status"] in ("pass", "skip")]
    if m.get("report"):
        lines.append(f"    report: {m['report'].get('html')}")
    return lines


def _in_member(path: Any) -> str:
    """A finding's file from its member folder down (the part a person needs)."""
    parts = str(path or "").replace(os.sep, "/").split("/")
    for i in range(len(parts) - 2, -1, -1):   # a folder, not a product named member.uid___...
        if parts[i].startswith("member.uid___"):
            return "/".join(parts[i:])
    return str(path or "")


def _listed(x: Any) -> list:
    return list(x.values()) if isinstance(x, Mapping) else list(x or [])


def _validate(r: Mapping[str, Any], verbose: bool) -> list[str]:
    s = r.get("summary") or {}
    counts = ", ".join(f"{s.get(k, 0)} {k}" + ("s" if s.get(k, 0) != 1 and k != "info" else "")
                       for k in ("error", "warning", "info"))
    lines = [f"qa_validate: {r.get('status')}{_seconds(r)}: "
             + ("valid" if r.get("valid") else "NOT valid") + f"; findings: {counts}"]
    bycat = {c: v for c, v in (s.get("by_category") or {}).items() if v}
    if bycat:
        lines.append("  by category: " + "; ".join(
            f"{c} " + ", ".join(f"{n} {k}" for k, n in v.items()) for c, v in bycat.items()))
    for m in r.get("members") or []:
        kind = [f"calibration {m.get('calibration', '?')}", f"imaging {m.get('imaging', '?')}"]
        kind += [k.replace("_", " ") for k in ("selfcal", "full_polarization", "total_power",
                                               "supplemental_manual") if m.get(k)]
        lines.append(f"  {m.get('mous', '?')}: {', '.join(kind)}")
    images = r.get("images") or []
    if images:
        checks = [c for im in images for c in _listed(im.get("checks"))
                  if isinstance(c, Mapping) and c.get("pass") is not None]
        verdict = (f"; requirement checks: {sum(1 for c in checks if c['pass'])} pass, "
                   f"{sum(1 for c in checks if not c['pass'])} fail" if checks
                   else "; requirements not checked (give req_resolution / req_sensitivity)")
        lines.append(f"  images measured: {len(images)}{verdict}")
    findings = r.get("findings") or []
    for sev in ("error", "warning") + (("info",) if verbose else ()):
        some = [f for f in findings if f.get("severity") == sev]
        if not some:
            continue
        lines.append(f"{sev}s:" if sev != "info" else "info:")
        if verbose:
            lines += _few(some, True, lambda f: f"[{f.get('code')}] {_in_member(f.get('file'))}: "
                                                f"{f.get('message')}")
            continue
        by_code: dict[str, list] = {}
        for f in some:
            by_code.setdefault(str(f.get("code")), []).append(f)
        groups = sorted(by_code.items(), key=lambda kv: -len(kv[1]))
        lines += _few(groups, False, lambda kv: (
            f"[{kv[0]}] " + (f"x{len(kv[1])}, e.g. " if len(kv[1]) > 1 else "")
            + f"{_in_member(kv[1][0].get('file'))}: {kv[1][0].get('message')}"))
    outputs = r.get("outputs") or {}
    if outputs.get("html"):
        lines.append(f"report: {outputs['html']}")
    if outputs.get("json"):
        lines.append(f"json: {outputs['json']}")
    return lines


def _polmaps(r: Mapping[str, Any], verbose: bool) -> list[str]:
    entries = r.get("inputs") or []
    ok = [e for e in entries if e.get("status") == "ok"]
    lines = [f"qa_polmaps: {r.get('status')}: {len(ok)} of {len(entries)} IQUV image(s) done; "
             f"outputs in {r.get('outdir', '?')}"]
    for e in entries:
        lines.append(f"  {os.path.basename(str(e.get('input', '?')))}")
        if e.get("status") == "ok":
            outs = e.get("outputs") or {}
            lines.append("    " + ", ".join(f"{k}: {os.path.basename(str(v))}" for k, v in outs.items()))
            lines.append(f"    image used: {e.get('image_used', '?')}")
        else:
            lines.append(f"    failed: {_cut(e.get('error', ''), verbose)}")
    return lines


def _renormplots(r: Mapping[str, Any], verbose: bool) -> list[str]:
    mss = r.get("ms") or []
    lines = [f"qa_renormplots: {r.get('status')}{_seconds(r)}: {len(mss)} MS(s); threshold "
             f"{r.get('threshold')}; "
             + (("correction warranted" + (" and applied" if r.get("all_corrected") else ""))
                if r.get("exceeds") else "no spw above the threshold")]
    for m in mss:
        lines.append(f"  {m.get('vis')}")
        if m.get("status") != "ok" and m.get("error"):
            lines.append(f"    failed: {_cut(m['error'], verbose)}")
        rows = [(t, s, d) for t, spws in (m.get("targets") or {}).items() for s, d in spws.items()]
        if m.get("already_corrected"):
            lines.append(f"    already corrected: {_cut(m.get('note', ''), verbose)}")
        lines += _few(rows, verbose, lambda x: (
            f"{x[0]} spw {x[1]}: max scaling {x[2].get('max_rn', float('nan')):.4f}"
            + (" ABOVE threshold" if x[2].get("exceeds") else "")
            + ("; corrected: yes" + (f" ({x[2]['corrected_how']})" if x[2].get("corrected_how")
                                     else "") if x[2].get("corrected")
               else "; corrected: no" + (f" ({x[2]['corrected_how']})"
                                        if x[2].get("corrected_how") else ""))
            + (" UNREALISTIC" if x[2].get("unrealistic") else "")
            + (f"; QA {x[2]['qa_score']:.2f}" if x[2].get("qa_score") is not None else "")),
            indent="    ")
        if m.get("caltable"):
            lines.append(f"    correction table: {m['caltable']}")
    if r.get("html"):
        lines.append(f"report: {r['html']}")
    return lines


_BY_TASK: dict[str, Callable[[Mapping[str, Any], bool], list[str]]] = {
    "qa_restore": _restore, "qa_validate": _validate, "qa_polmaps": _polmaps,
    "qa_renormplots": _renormplots}


def summarize(task: str, result: Any, verbose: bool = False) -> list[str]:
    """Lines for a person: status, products and where, warnings, reports, log."""
    if not isinstance(result, Mapping):
        return [f"{task}: done", _cut(repr(result), verbose)] if result is not None else [f"{task}: done"]
    body = _BY_TASK.get(task)
    if body is None:
        lines = [f"{task}: {result.get('status', 'done')}{_seconds(result)}"]
        if verbose:
            lines += [f"  {k}: {_cut(repr(v), True)}" for k, v in result.items() if k != "logfile"]
    else:
        lines = body(result, verbose)
    lines += _warnings(result, verbose)
    if result.get("logfile"):
        lines.append(f"log: {result['logfile']}")
    return lines
