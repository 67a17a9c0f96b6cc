"""The package's one logging helper (importable without CASA).

``post(message, priority, origin)`` writes to CASA's logger (``casalog``)
with the running task as origin, as casatasks do; outside CASA (a pure
module used on its own) it goes to Python's :mod:`logging` instead.
Library modules call :func:`post` rather than ``casalog.post`` so the origin
is always ours and one place decides where messages go.
"""
from __future__ import annotations

import logging
import sys

__all__ = ["current_origin", "post"]

_PY_LEVEL = {"SEVERE": logging.ERROR, "WARN": logging.WARNING, "WARNING": logging.WARNING,
             "INFO": logging.INFO, "INFO1": logging.INFO, "INFO2": logging.DEBUG,
             "INFO3": logging.DEBUG, "INFO4": logging.DEBUG, "INFO5": logging.DEBUG,
             "DEBUG": logging.DEBUG, "DEBUG1": logging.DEBUG, "DEBUG2": logging.DEBUG}
_pylog = logging.getLogger("almaqa_casa")


def current_origin(default: str = "almaqa_casa") -> str:
    """The name of the almaqa_casa task running now, else ``default``."""
    taskdef = sys.modules.get("almaqa_casa.taskdef.wrapper")
    if taskdef is not None:
        ctx = taskdef.current_call()
        if ctx is not None:
            return ctx.task
    return default


def _casalog():
    if "casatools" not in sys.modules and "casatasks" not in sys.modules:
        return None     # never import CASA just to log
    try:
        from casatasks import casalog
    except Exception:   # casatools present but casatasks missing or broken
        return None
    return casalog


def post(message: str, priority: str = "INFO", origin: str | None = None) -> None:
    """Log ``message`` at ``priority`` (CASA names: INFO, WARN, SEVERE, DEBUG...)."""
    origin = origin or current_origin()
    priority = priority.upper()
    casalog = _casalog()
    if casalog is not None:
        casalog.post(str(message), "WARN" if priority == "WARNING" else priority, origin)
    else:
        _pylog.log(_PY_LEVEL.get(priority, logging.INFO), "%s: %s", origin, message)
