"""Disk model of a restore and the check before any work.

The model (pure) predicts the bytes each step adds, relative to the size of
the EB's ASDM, and walks the plan to find the peak.  Factors (measured on
simulated ALMA EBs, see ``benchmarks/restore.py``):

* lazy import: the MS refers to the ASDM's binary data; only flags, weights,
  UVW and metadata are written (~0.3x the ASDM);
* non-lazy import: the visibilities are copied (~1.2x);
* CORRECTED_DATA written by applycal: ~1x;
* a split (DATA + FLAG of the kept rows): ~1.2x the kept fraction.

``check_disk`` (I/O through the injectable ``free_bytes``) compares the
peak with the free space and explains which option lowers it.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from ..errors import AlmaqaError

__all__ = ["FACTORS", "DiskError", "check_disk", "fmt_bytes", "free_bytes", "scriptforpi_need"]

FACTORS = {
    "ms_lazy": 0.3,
    "ms_full": 1.25,
    "corrected": 1.0,
    "split": 1.25,
    "flagversions": 0.1,
    "caltables": 0.0,   # added from the caltables tarball size
}
#: Extra margin on the predicted peak.
MARGIN = 1.10


class DiskError(AlmaqaError, RuntimeError):
    """Not enough free disk space for the plan; the message says what would help."""


def fmt_bytes(n: object) -> str:
    """A byte count for people ('404.2 MB'); '?' for a missing or non-numeric value."""
    try:
        n = float(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the filesystem holding ``path`` (its nearest existing parent)."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return shutil.disk_usage(p).free


def scriptforpi_need(raw_bytes: int, spacesaving: int, has_post_scripts: bool) -> int | None:
    """What scriptForPI.py demands (restore.md §2.5): 11x/7x/3x raw (+3x with post scripts)."""
    if spacesaving == -1:
        return None
    extra = 3 if has_post_scripts else 0
    factor = 11 if spacesaving == 0 else 7 if spacesaving == 1 else 3
    return int(raw_bytes * (factor + extra))


def check_disk(needed: int, where: str, spacesaving: int, hints: list[str],
               free: Callable[[str], int] = free_bytes) -> dict:
    """Refuse (raise :class:`DiskError`) when ``needed`` exceeds the free space.

    ``spacesaving == -1`` skips the check, as in scriptForPI.py.
    """
    if spacesaving == -1:
        return {"checked": False, "needed": needed, "available": None}
    avail = int(free(where))
    if needed > avail:
        hint = "; ".join(hints) if hints else "free some space"
        raise DiskError(
            f"not enough free disk space in {where}: the restore needs about "
            f"{fmt_bytes(needed)} at its peak, {fmt_bytes(avail)} are available. "
            f"To lower the need: {hint}; or skip this check with spacesaving=-1.")
    return {"checked": True, "needed": needed, "available": avail}
