"""Make ``import casatools`` work offline, from the ``casadata`` package.

CASA 6 reads its measures data location from ``casaconfig``: a site config
file (named by ``CASASITECONFIG``) and then the user's ``~/.casa/config.py``.
Without either, casaconfig tries to download measures into ``~/.casa/data``,
which fails on a machine with no network and writes into the user's home.

:func:`bootstrap` runs once, before casatools is imported, and writes a small
site config under the temporary folder that points CASA at casadata's data
with auto-updates off.  A user config still wins for every key it sets, and
inside a running CASA session (casatools already imported) nothing changes.
It imports nothing of CASA, so ``import almaqa_casa`` stays cheap and pure.

The site config reads the CASA log file from ``$ALMAQA_RUNLOG`` when
casatools is imported: :func:`bootstrap` sets it to the session's log (one
per process, :func:`default_logfile`), the command line to a log per run,
and child processes inherit it, so the workers of a run log to its file.
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

#: Environment variable naming the CASA log file almaqa_casa should use (the user's choice).
LOGFILE_ENV = "ALMAQA_CASALOG"

#: Environment variable holding the log file of the current run (set by the
#: package, read by its site config when casatools is imported, inherited by
#: worker processes so they log to the same file).
RUNLOG_ENV = "ALMAQA_RUNLOG"


class MeasuresDataError(AlmaqaError, RuntimeError):
    """No CASA measures data could be found; the message names the fix."""


class CASAMissingError(AlmaqaError, ImportError):
    """casatools or casatasks (or one of their dependencies) is not installed."""


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


def log_dir() -> Path:
    """The per-user folder of the CASA log files almaqa_casa names."""
    return _private_dir()


def new_logfile(prefix: str) -> str:
    """A fresh log file name ``<log_dir>/<prefix>-<YYYYmmdd-HHMMSS>-<pid>.log`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(_private_dir() / f"{prefix}-{stamp}-{os.getpid()}.log")


def user_logfile() -> str | None:
    """``$ALMAQA_CASALOG`` as an absolute path, or None."""
    wanted = os.environ.get(LOGFILE_ENV)
    return os.path.abspath(os.path.expanduser(wanted)) if wanted else None


def default_logfile() -> str:
    """The CASA log of a Python session: ``$ALMAQA_CASALOG``, else the run's
    log inherited from a parent almaqa_casa process, else a new
    ``session-<time>-<pid>.log`` in :func:`log_dir` (one per process, never
    shared with concurrent runs, never in the working directory)."""
    return user_logfile() or os.environ.get(RUNLOG_ENV) or new_logfile("session")


def siteconfig_text(measurespath: str, logfile: str | None = None) -> str:
    """The site config almaqa_casa hands to casaconfig (pure).

    Without ``logfile`` the log is read from ``$ALMAQA_RUNLOG`` when casatools
    is imported, so one site config serves every run and the command line can
    still choose a log per run after the package was imported.
    """
    text = (
        "# written by almaqa_casa: offline measures from the casadata package\n"
        f"measurespath = {measurespath!r}\n"
        "measures_auto_update = False\n"
        "data_auto_update = False\n"
    )
    if logfile is not None:
        return text + f"logfile = {logfile!r}\n"
    fallback = str(_private_dir() / "casa-unnamed.log")
    return text + ("import os as _os\n"
                   f"logfile = _os.environ.get({RUNLOG_ENV!r}) or {fallback!r}\n")


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
    if existing and not _is_ours(existing):
        _STATE = BootstrapState(action="site-config-kept", siteconfig=existing)
        return _STATE
    measures = casadata_path()
    logfile = default_logfile()
    if measures is None:
        # Leave CASA to its own config; import_casatools() explains a failure.
        _STATE = BootstrapState(action="no-casadata", logfile=logfile)
        return _STATE
    text = siteconfig_text(measures)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    site = _private_dir() / f"casasiteconfig-{digest}.py"
    if not site.is_file():
        write_text_atomic(site, text)
    os.environ["CASASITECONFIG"] = str(site)
    os.environ[RUNLOG_ENV] = logfile
    _STATE = BootstrapState(action="site-config", siteconfig=str(site),
                            measurespath=measures, logfile=logfile)
    return _STATE


def _is_ours(siteconfig: str) -> bool:
    """A site config this package wrote (inherited from a parent almaqa_casa process)."""
    path = Path(siteconfig)
    return path.name.startswith("casasiteconfig-") and path.parent == _private_dir()


def _install_hint(package: str) -> str:
    exe = sys.executable or "python"
    if package in ("casatools", "casatasks", "casaconfig"):
        return (f"{package} (CASA 6), which the almaqa_casa tasks run on, is not installed in this Python "
                f"({exe}); install CASA with "
                f"'{exe} -m pip install casatools casatasks' or the package with its "
                "dependencies: 'pip install \"almaqa_casa[data]\"'")
    return (f"{package}, which CASA needs, is not installed in this Python ({exe}); install it "
            f"with '{exe} -m pip install {package}'")


def _missing(exc: ModuleNotFoundError, default: str) -> CASAMissingError:
    package = (exc.name or default).split(".")[0]
    return CASAMissingError(_install_hint(package))


def import_casatools():
    """Import casatools after :func:`bootstrap`, with a clear error naming the fix:
    :class:`CASAMissingError` when a package is not installed,
    :class:`MeasuresDataError` when CASA finds no measures data."""
    bootstrap()
    try:
        import casatools
    except ModuleNotFoundError as exc:
        raise _missing(exc, "casatools") from exc
    except Exception as exc:  # casatools raises plain exceptions here
        raise MeasuresDataError(
            "CASA could not find its measures data (geodetic/IERSeop2000): "
            f"{exc}.\nFix: install the data package with "
            "'pip install casadata' (or 'pip install almaqa_casa[data]'), or set "
            "'measurespath' to a folder holding CASA measures data in "
            "~/.casa/config.py or in a site config named by CASASITECONFIG."
        ) from exc
    return casatools


def import_casatasks():
    """Import casatools (:func:`import_casatools`) and then casatasks, with the same errors."""
    import_casatools()
    try:
        import casatasks
    except ModuleNotFoundError as exc:
        raise _missing(exc, "casatasks") from exc
    return casatasks


def state() -> BootstrapState | None:
    """What :func:`bootstrap` did in this process (``None`` before it ran)."""
    return _STATE
