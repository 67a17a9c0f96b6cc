"""Make ``import casatools`` work offline, from the ``casadata`` package.

CASA 6 reads its measures data location from ``casaconfig``: a site config
file (named by ``CASASITECONFIG``) and then the user's ``~/.casa/config.py``.
Without either, casaconfig tries to download measures into ``~/.casa/data``,
which fails on a machine with no network and writes into the user's home.

:func:`bootstrap` runs once, before casatools is imported, and writes a small
site config under the temporary folder that points CASA at casadata's data
with auto-updates off.  A user config still wins for every key it sets, and
inside a running CASA session (casatools already imported) nothing changes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import AlmaqaError

#: Site config paths casaconfig looks at when CASASITECONFIG is unset.
STANDARD_SITE_CONFIGS = ("/opt/casa/casasiteconfig.py", "/home/casa/casasiteconfig.py")

#: Environment variable naming the CASA log file almaqa_casa should use.
LOGFILE_ENV = "ALMAQA_CASALOG"


class MeasuresDataError(AlmaqaError, RuntimeError):
    """No CASA measures data could be found; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class BootstrapState:
    """What :func:`bootstrap` found and did, for diagnostics and tests."""

    action: str  # 'casa-session' | 'site-config' | 'site-config-kept'
    siteconfig: str | None = None
    measurespath: str | None = None
    logfile: str | None = None


_STATE: BootstrapState | None = None


def casadata_path() -> str | None:
    """Return the ``casadata`` package's data folder, without importing CASA."""
    try:
        spec = importlib.util.find_spec("casadata")
    except (ImportError, ValueError):  # e.g. sys.modules['casadata'] is None
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "__data__"
    return str(path) if (path / "geodetic").is_dir() else None


def _private_dir() -> Path:
    """A per-user folder under the system temporary folder (never ``$HOME``)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"almaqa_casa-{uid}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def default_logfile() -> str:
    """The CASA log file: ``$ALMAQA_CASALOG`` or one a day in the temp folder.

    casatasks opens ``casa-<date>.log`` in the working directory on import even
    when no log is wanted; pointing it here keeps users' folders clean.
    """
    wanted = os.environ.get(LOGFILE_ENV)
    if wanted:
        return os.path.abspath(os.path.expanduser(wanted))
    stamp = time.strftime("%Y%m%d", time.gmtime())
    return str(_private_dir() / f"casa-{stamp}.log")


def siteconfig_text(measurespath: str, logfile: str) -> str:
    """The site config almaqa_casa hands to casaconfig (pure)."""
    return (
        "# written by almaqa_casa: offline measures from the casadata package\n"
        f"measurespath = {measurespath!r}\n"
        "measures_auto_update = False\n"
        "data_auto_update = False\n"
        f"logfile = {logfile!r}\n"
    )


def bootstrap() -> BootstrapState:
    """Configure CASA for offline use if, and only if, nobody else has.

    Returns what was done.  Safe to call more than once.
    """
    global _STATE
    if _STATE is not None:
        return _STATE
    if "casatools" in sys.modules:
        _STATE = BootstrapState(action="casa-session")
        return _STATE
    existing = os.environ.get("CASASITECONFIG") or next(
        (p for p in STANDARD_SITE_CONFIGS if os.path.isfile(p)), None
    )
    if existing:
        _STATE = BootstrapState(action="site-config-kept", siteconfig=existing)
        return _STATE
    measures = casadata_path()
    logfile = default_logfile()
    if measures is None:
        # Leave CASA to its own config; import_casatools() explains a failure.
        _STATE = BootstrapState(action="no-casadata", logfile=logfile)
        return _STATE
    text = siteconfig_text(measures, logfile)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    site = _private_dir() / f"casasiteconfig-{digest}.py"
    if not site.is_file():
        write_text_atomic(site, text)
    os.environ["CASASITECONFIG"] = str(site)
    _STATE = BootstrapState(action="site-config", siteconfig=str(site),
                            measurespath=measures, logfile=logfile)
    return _STATE


def import_casatools():
    """Import casatools after :func:`bootstrap`, with a clear error if no data."""
    bootstrap()
    try:
        import casatools
    except Exception as exc:  # casatools raises plain exceptions here
        raise MeasuresDataError(
            "CASA could not find its measures data (geodetic/IERSeop2000): "
            f"{exc}.\nFix: install the data package with "
            "'pip install casadata' (or 'pip install almaqa_casa[data]'), or set "
            "'measurespath' to a folder holding CASA measures data in "
            "~/.casa/config.py or in a site config named by CASASITECONFIG."
        ) from exc
    return casatools


def state() -> BootstrapState | None:
    """What :func:`bootstrap` did in this process (``None`` before it ran)."""
    return _STATE
