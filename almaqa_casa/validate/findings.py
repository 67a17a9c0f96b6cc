"""Findings: what a check says about a delivery, with stable codes.

Every problem (and some facts) becomes a :class:`Finding` with a severity
(``error`` / ``warning`` / ``info``), a stable code from :data:`CODES` (so
scripts and tests can rely on it), the file concerned and a message.  Codes
never change meaning; new checks get new codes.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["CATEGORIES", "CODES", "SEVERITIES", "Finding", "finding", "summarize"]

SEVERITIES = ("error", "warning", "info")
CATEGORIES = ("layout", "naming", "products", "fits", "images")

#: code -> (severity, category, short title)
CODES: dict[str, tuple[str, str, str]] = {
    # layout
    "L001": ("error", "layout", "no MOUS member folder found"),
    "L002": ("warning", "layout", "member not below group / science goal / project folders"),
    "L003": ("error", "layout", "required subfolder missing"),
    "L004": ("info", "layout", "raw/ not present (ASDMs not downloaded)"),
    "L005": ("error", "layout", "README (member.<MOUS>.README.txt, or README up to Cycle 4) missing"),
    "L006": ("warning", "layout", "empty folder"),
    "L007": ("error", "layout", "script expected for the calibration type missing"),
    "L008": ("error", "layout", "calibration type cannot be determined (no calibration scripts)"),
    "L009": ("warning", "layout", "QA file missing"),
    "L010": ("error", "layout", "calibration file expected for the calibration type missing"),
    "L011": ("warning", "layout", "unknown file or folder"),
    "L012": ("error", "layout", "unreadable file or folder"),
    "L013": ("warning", "layout", "symbolic-link loop"),
    "L014": ("warning", "layout", "broken symbolic link"),
    "L015": ("error", "layout", "archive tar file unreadable or unsafe"),
    "L016": ("error", "layout", "script not unique"),
    "L020": ("info", "layout", "delivery description"),
    "L021": ("info", "layout", "semipass package (QA0 semi-pass raw data only, nothing to calibrate)"),
    "L022": ("info", "layout", "layout of the delivery's era recognised"),
    "L023": ("warning", "layout", "layout evidence of different eras"),
    # naming
    "N001": ("error", "naming", "product name does not follow the naming scheme"),
    "N002": ("error", "naming", "MOUS in the product name differs from the member folder"),
    "N003": ("info", "naming", "older naming variant"),
    "N004": ("info", "naming", "free-form pre-Cycle-4 manual product name"),
    # product sets
    "P001": ("error", "products", "pbcor image without its primary beam (pb/flux)"),
    "P002": ("warning", "products", "pbcor image without a clean mask"),
    "P003": ("warning", "products", "pb or mask without its pbcor image"),
    "P004": ("warning", "products", "spectral windows disagree across a target's products"),
    "P005": ("error", "products", "full-polarization delivery without IQUV products"),
    "P006": ("error", "products", "P/A product without matching IQUV product"),
    "P007": ("warning", "products", "IQUV product without P and A products"),
    "P008": ("warning", "products", "no image products"),
    # FITS
    "F001": ("error", "fits", "not a readable FITS file"),
    "F002": ("error", "fits", "'.gz' file is not valid gzip"),
    "F003": ("error", "fits", "FITS standard violation (astropy verify)"),
    "F004": ("error", "fits", "image data unreadable (truncated?)"),
    "F005": ("warning", "fits", "BUNIT missing"),
    "F006": ("error", "fits", "no restoring beam (BMAJ/BMIN/BPA or BEAMS table)"),
    "F007": ("warning", "fits", "Stokes or spectral axis missing"),
    "F008": ("warning", "fits", "cube without RESTFRQ or SPECSYS"),
    "F009": ("warning", "fits", "large fraction of NaN pixels"),
    "F010": ("error", "fits", "pbcor and pb shapes disagree"),
    "F011": ("error", "fits", "empty file"),
    "F012": ("error", "fits", "image entirely NaN"),
    # image figures
    "I001": ("warning", "images", "image figures could not be measured"),
    "I002": ("warning", "images", "resolution requirement not met"),
    "I003": ("warning", "images", "sensitivity requirement not met"),
    "I004": ("info", "images", "requirement met"),
    "I005": ("info", "images", "rms measured without primary-beam recovery"),
    "I006": ("error", "images", "ASDM science goal (SBSummary.xml) or SpectralWindow.xml unreadable"),
    "I007": ("info", "images", "requirements and where they come from"),
    # total power (validate/tp.py)
    "T001": ("warning", "layout", "total power delivery without Kelvin-to-Jansky factors (jyperk.csv)"),
    "T002": ("error", "layout", "Kelvin-to-Jansky factor file cannot be read"),
    "T003": ("error", "layout", "more than one Kelvin-to-Jansky factor file"),
    "T004": ("warning", "layout", "Kelvin-to-Jansky factors missing for an EB"),
    "T005": ("info", "layout", "Kelvin-to-Jansky factors found"),
    "T006": ("warning", "fits", "total power cube neither in K nor in Jy/beam"),
}


@dataclass(frozen=True)
class Finding:
    """One statement about the delivery."""

    severity: str
    code: str
    category: str
    file: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def finding(code: str, file: str, message: str, severity: str | None = None) -> Finding:
    """A finding with severity and category taken from :data:`CODES`."""
    sev, cat, _ = CODES[code]
    return Finding(severity=severity or sev, code=code, category=cat, file=str(file), message=message)


def summarize(findings: Iterable[Finding]) -> dict:
    """Counts by severity, by category and by code."""
    fs = list(findings)
    by_sev = Counter(f.severity for f in fs)
    return {
        "error": by_sev.get("error", 0),
        "warning": by_sev.get("warning", 0),
        "info": by_sev.get("info", 0),
        "by_category": {c: dict(Counter(f.severity for f in fs if f.category == c)) for c in CATEGORIES},
        "by_code": dict(sorted(Counter(f.code for f in fs).items())),
    }
