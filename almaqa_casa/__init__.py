"""almaqa_casa: CASA tasks for ALMA data deliveries.

Importing the package is cheap and needs no CASA: it prepares CASA to work
offline (a site config pointing at the ``casadata`` package's measures,
unless CASA is already configured or running), so whatever imports casatools
later finds its data.  The tasks are built from their XML interfaces on first
use (PEP 562), which is when CASA is imported::

    from almaqa_casa import qa_restore, qa_validate, qa_polmaps, qa_renormplots

Inside the CASA shell, ``from almaqa_casa import *`` also lists them in
``taskhelp()``.  The parsers and plans (``almaqa_casa.delivery`` ...) import
without CASA.
"""
from __future__ import annotations

import sys as _sys
from typing import Any

from .casaenv.offline import bootstrap as _bootstrap

__version__ = "0.1.0"

_bootstrap()   # before anything imports casatools; imports nothing of CASA

from .taskdef.registry import task_names as _task_names  # noqa: E402

#: The task names, read from the XML interfaces (no CASA needed).
__all__ = _task_names()


def _build(name: str):
    from .taskdef.registry import build_task, task_specs
    task = build_task(task_specs()[name])
    globals()[name] = task   # later accesses are plain attribute look-ups
    return task


def __getattr__(name: str) -> Any:
    """Build a task on first access; ``TASKS`` builds them all."""
    if name in __all__:
        return _build(name)
    if name == "TASKS":
        return {n: globals().get(n) or _build(n) for n in __all__}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _register_in_casashell() -> None:
    """List the tasks in casashell's taskhelp() when running inside CASA
    (taskhelp looks them up with dir() and getattr(), which builds them)."""
    casashell = _sys.modules.get("casashell")
    if casashell is None or not hasattr(casashell, "extra_task_modules"):
        return
    me = _sys.modules[__name__]
    if me not in casashell.extra_task_modules:
        casashell.extra_task_modules.append(me)


_register_in_casashell()
