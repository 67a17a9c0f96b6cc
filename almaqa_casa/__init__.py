"""almaqa_casa: CASA tasks for ALMA data deliveries.

Importing the package makes CASA work offline (measures data from the
``casadata`` package, unless CASA is already configured or running), builds
the tasks from their XML interfaces and, inside the CASA shell, lists them in
``taskhelp()``::

    from almaqa_casa import qa_restore, qa_validate, qa_polmaps, qa_renormplots
"""
from __future__ import annotations

import sys as _sys

from .casaenv import import_casatools as _import_casatools

__version__ = "0.1.0"

_import_casatools()

from .taskdef import build_all as _build_all  # noqa: E402

TASKS = _build_all()
globals().update(TASKS)
__all__ = sorted(TASKS)


def _register_in_casashell() -> None:
    """List the tasks in casashell's taskhelp() when running inside CASA."""
    casashell = _sys.modules.get("casashell")
    if casashell is None or not hasattr(casashell, "extra_task_modules"):
        return
    me = _sys.modules[__name__]
    if me not in casashell.extra_task_modules:
        casashell.extra_task_modules.append(me)


_register_in_casashell()
