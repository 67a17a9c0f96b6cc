"""The package's one logging helper (importable without CASA).

``post(message, priority, origin)`` writes to CASA's logger (``casalog``)
with the running task as origin, as casatasks do; outside CASA (a pure
module used on its own) it goes to Python's :mod:`logging` instead.
Library modules call :func:`post` rather than ``casalog.post`` so the origin
is always ours and one place decides where messages go.

Why the origin is set on every message: ``casalog.origin`` is global, and
every CASA task sets it to its own name and leaves it there.  After an
``applycal`` inside ``qa_restore``, a plain ``casalog.post(msg, 'INFO',
'qa_restore')`` is written as ``applycal::qa_restore``.  :func:`post` puts
the origin back to our task before each message.

:func:`terminal` is the stream on the user's real terminal (or None) for
progress bars: while the command line captures CASA's console output into
the run's log file (:mod:`almaqa_casa.casaenv.console`), ``sys.stderr`` is
not the terminal any more.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["TERMINAL_ENV", "announce_logfile", "current_origin", "logfile", "post", "quiet", "terminal"]

_PY_LEVEL = {"SEVERE": logging.ERROR, "WARN": logging.WARNING, "WARNING": logging.WARNING,
             "INFO": logging.INFO, "INFO1": logging.INFO, "INFO2": logging.DEBUG,
             "INFO3": logging.DEBUG, "INFO4": logging.DEBUG, "INFO5": logging.DEBUG,
             "DEBUG": logging.DEBUG, "DEBUG1": logging.DEBUG, "DEBUG2": logging.DEBUG}
_pylog = logging.getLogger("almaqa_casa")
_LOCK = threading.Lock()

#: Set by the console capture: the terminal device (``/dev/pts/N``) the run's
#: stderr was on, so worker processes, which inherit the environment but not
#: the terminal file descriptor, can draw progress there too.
TERMINAL_ENV = "ALMAQA_TERMINAL"

_terminal: TextIO | None = None        # set by the capture in this process
_terminal_opened: dict[str, TextIO] = {}


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
    """Log ``message`` at ``priority`` (CASA names: INFO, WARN, SEVERE, DEBUG...).

    The CASA log line reads ``<task>::<origin>`` like a casatasks message:
    ``qa_restore::::casa`` when ``origin`` is the running task (or omitted),
    ``qa_restore::renorm::casa`` for a finer ``origin``.
    """
    task = current_origin(default="")
    origin = origin or task or "almaqa_casa"
    task = task or origin.split("::")[0]
    priority = priority.upper()
    casalog = _casalog()
    if casalog is None:
        _pylog.log(_PY_LEVEL.get(priority, logging.INFO), "%s: %s", origin, message)
        return
    with _LOCK:   # origin and message together, if several threads log
        casalog.origin(task)
        casalog.post(str(message), "WARN" if priority == "WARNING" else priority,
                     "" if origin == task else origin)


def logfile() -> str | None:
    """The CASA log file messages go to now (None before CASA is imported
    and when no log file was chosen)."""
    casalog = _casalog()
    if casalog is not None:
        return str(casalog.logfile() or "") or None
    from .casaenv.offline import RUNLOG_ENV
    return os.environ.get(RUNLOG_ENV) or None


_ANNOUNCED: set[str] = set()


def announce_logfile(path: str | None, label: str = "almaqa_casa") -> None:
    """Tell the user once per process and file where the CASA log is (on stderr,
    the terminal when captured): ``<label>: CASA log: <path>``."""
    if not path or path in _ANNOUNCED:
        return
    _ANNOUNCED.add(path)
    stream = _terminal or sys.stderr
    try:
        print(f"{label}: CASA log: {path}", file=stream, flush=True)
    except (AttributeError, ValueError, OSError):
        pass


def set_terminal(stream: TextIO | None) -> TextIO | None:
    """Name the real terminal stream of this process (the console capture
    calls this); returns the previous one."""
    global _terminal
    old, _terminal = _terminal, stream
    return old


def terminal() -> TextIO | None:
    """A text stream on the user's terminal, or None when there is none.

    Use it for what only a person watching needs (progress bars)::

        t = almaqa_casa.log.terminal()
        if t is not None:
            t.write("\\r[####----] 4/8"); t.flush()

    While the command line captures CASA's console output, this is the
    terminal the run was started from (also in worker processes); otherwise
    ``sys.stderr`` when it is a terminal.
    """
    if _terminal is not None:
        return _terminal
    device = os.environ.get(TERMINAL_ENV)
    if device:
        stream = _terminal_opened.get(device)
        if stream is None:
            try:
                stream = open(device, "w", buffering=1, errors="replace")
            except OSError:
                return None
            _terminal_opened[device] = stream
        return stream
    try:
        return sys.stderr if sys.stderr is not None and sys.stderr.isatty() else None
    except (AttributeError, ValueError):
        return None


@contextlib.contextmanager
def quiet(echo: bool = False) -> Iterator[str]:
    """CASA's console output goes to the CASA log file for the block (what the
    command line does for every run); yields that file's path::

        with almaqa_casa.log.quiet():
            qa_restore(deliverydir="member.uid___A001_X1_X4")

    Everything written to the process's stdout and stderr in the block goes
    there, your own prints too; progress bars still reach the terminal.
    """
    from .casaenv.console import capture_console
    from .casaenv.offline import import_casatasks
    path = str(import_casatasks().casalog.logfile())
    with capture_console(path, echo=echo):
        yield path
