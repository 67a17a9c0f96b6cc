"""Checks that only total power deliveries need (the I/O wrapper reads small texts).

A pipeline-calibrated TP delivery (``hsd_restoredata``) carries its
Kelvin-to-Jansky factors as ``jyperk.csv`` (or ``jyperk_query.csv``) in
``auxproducts.tgz`` or loose in ``calibration/`` (seed §3 item 2a); the
restore needs them, so a delivery without them, with several of them
(scriptForPI.py refuses: "non-unique jyperk.csv file") or with one that
cannot be parsed is reported, the last naming file and line
(:mod:`almaqa_casa.delivery.jyperk`).  The factors must cover the EBs the
delivery calibrates (the calapply lists name them).  TP cubes
(``*.sd.fits``) are in K or Jy/beam (the pipeline's ``hsd_imaging`` writes
one of them).
"""
from __future__ import annotations

import fnmatch
import tarfile

from ..delivery.jyperk import MAX_BYTES, JyPerKError, JyPerKFile, parse_jyperk
from ..delivery.layout import Delivery
from .findings import Finding, finding
from .tree import MemberView as View
from .tree import Tree

__all__ = ["tp_checks", "jyperk_findings", "sd_unit_findings", "SD_UNITS"]

#: The brightness units of single-dish cubes.
SD_UNITS = ("K", "Jy/beam")
_JYPERK = "*jyperk*.csv"


def jyperk_findings(where: str, found: list[tuple[str, str | None, str]],
                    ebs: list[str], kind: str) -> list[Finding]:
    """Findings about the Jy/K files of one member (pure).

    ``found``: (display name, text or None if unreadable, problem) per file;
    ``ebs``: the EBs the delivery calibrates; ``kind``: the calibration kind.
    """
    out: list[Finding] = []
    if not found:
        if kind == "pipeline":
            out.append(finding("T001", f"{where}/calibration", "total power delivery without "
                               "Kelvin-to-Jansky factors (no jyperk*.csv loose in calibration/ nor in "
                               "auxproducts.tgz): unless calapply.txt names a Jy/K table, the restored "
                               "data stay in Kelvin"))
        return out
    if len(found) > 1:
        out.append(finding("T003", f"{where}/calibration", "more than one Jy/K factor file: "
                           + ", ".join(f[0] for f in found) + " (scriptForPI.py refuses a non-unique "
                           "jyperk.csv)"))
    for name, text, problem in found:
        if text is None:
            out.append(finding("T002", name, problem or "cannot be read"))
            continue
        try:
            jf: JyPerKFile = parse_jyperk(text, name)
        except JyPerKError as exc:
            out.append(finding("T002", name, str(exc)))
            continue
        if jf.kind == "ms":
            have = {m[:-3] if m.endswith(".ms") else m for m in jf.ms_names}
            missing = [u for u in ebs if u not in have]
            if missing:
                out.append(finding("T004", name, "no Jy/K factor for EB(s) "
                                   + ", ".join(missing)))
            n = len(jf.factors)
            desc = f"{n} MS-based factors for {len(have)} MS(s)"
        else:
            n = len(jf.session_rows)
            desc = (f"{n} session-based factors for session(s) "
                    + ", ".join(str(s) for s in sorted({r.session for r in jf.session_rows})))
        out.append(finding("T005", name, f"Kelvin-to-Jansky factors: {desc}"))
    return out


def sd_unit_findings(file: str, bunit: str | None) -> list[Finding]:
    """A TP cube must be in K or Jy/beam (pure; a missing BUNIT is F005's)."""
    if bunit and bunit.strip() not in SD_UNITS:
        return [finding("T006", file, f"total power cube in {bunit.strip()!r}; hsd_imaging writes "
                        + " or ".join(SD_UNITS))]
    return []


def _read(tree: Tree, entry) -> bytes:
    with tree.open(entry) as fh:
        return fh.read(MAX_BYTES + 1)


def _found(tree: Tree, view: View) -> list[tuple[str, str | None, str]]:
    """(display, text or None, problem) of every Jy/K file, loose or in auxproducts.tgz."""
    out = []
    for e in view.folder("calibration"):
        if e.kind != "file":
            continue
        if fnmatch.fnmatchcase(e.name, _JYPERK):
            try:
                data = _read(tree, e)
                out.append((e.display, data.decode("utf-8", "replace") if len(data) <= MAX_BYTES
                            else None, "" if len(data) <= MAX_BYTES else "larger than 16 MiB"))
            except OSError as exc:
                out.append((e.display, None, f"cannot be read: {exc}"))
        elif fnmatch.fnmatchcase(e.name, "*auxproducts.tgz"):
            try:
                with tree.open(e) as fh, tarfile.open(fileobj=fh, mode="r:*") as tar:
                    for i, m in enumerate(tar):
                        if i > 10_000:
                            break
                        base = m.name.rsplit("/", 1)[-1]
                        if not fnmatch.fnmatchcase(base, _JYPERK):
                            continue
                        where = f"{e.display}::{m.name}"
                        if not m.isfile() or m.size > MAX_BYTES:
                            out.append((where, None, "not a small regular file"))
                            continue
                        f = tar.extractfile(m)
                        out.append((where, f.read().decode("utf-8", "replace") if f else None,
                                    "" if f else "cannot be read"))
            except (OSError, tarfile.TarError, EOFError):
                continue         # an unreadable tarball is reported by the archive checks
    return out


def _ebs(view: View) -> list[str]:
    return sorted(e.name[: -len(".ms.calapply.txt")].rsplit(".", 1)[-1]
                  for e in view.folder("calibration")
                  if e.kind == "file" and e.name.endswith(".ms.calapply.txt"))


def tp_checks(tree: Tree, view: View, delivery: Delivery) -> list[Finding]:
    """The total power checks of one member (nothing for other deliveries)."""
    if not delivery.total_power or delivery.kind != "pipeline":
        return []
    return jyperk_findings(view.rel, _found(tree, view), _ebs(view), delivery.kind)
