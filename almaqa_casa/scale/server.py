"""What a casampi server runs for :mod:`almaqa_casa.scale` (imported on the servers).

The client pushes ``almaqa_casa.scale.server.setup(almaqa_setup)`` once and
then ``almaqa_casa.scale.server.run_unit(almaqa_unit)`` per unit, as the
ALMA pipeline pushes its tier-0 jobs.  The unit travels as pickled bytes and
is unpickled only in the worker, inside a ``try``: a unit that cannot be
unpickled comes back as a failure with its message instead of losing the
server's answer.

Each unit runs in this server's own worker process
(:class:`~almaqa_casa.restore.workers.WorkerPool`), so a CASA abort or a
killed worker fails that unit with a message and the server (and the MPI
job) goes on; the next unit gets a fresh worker.  The worker logs to the
client's CASA log with ``MPIServer-<rank>`` as processor origin, and works
in the client's working folder: both travel with every unit, so a client
that changes folder or log between tasks is followed.
"""
from __future__ import annotations

import os
import pickle
import socket
import sys
import time
import traceback
from typing import Any

__all__ = ["call_pickled", "origin", "run_unit", "setup"]

_POOL = None


def _rank() -> int:
    try:
        from casampi.MPIEnvironment import MPIEnvironment
        return int(MPIEnvironment.mpi_processor_rank)
    except Exception:   # not a casampi server (tests call these functions directly)
        return int(os.environ.get("OMPI_COMM_WORLD_RANK", "0") or 0)


def origin() -> str:
    """The CASA log's processor origin of this server's work (as casampi's own)."""
    return f"casa::MPIServer-{_rank()}"


def _casalog():
    """casatasks' logger.  In a casampi server ``import casatasks`` never ends (the
    main thread serves inside it) and importing it from the command thread
    would wait forever: take the logger from the module object instead."""
    casalog = getattr(sys.modules.get("casatasks"), "casalog", None)
    if casalog is None:    # a worker process: casatasks is imported normally
        from casatasks import casalog
    return casalog


def _set_log(logfile: str) -> str:
    """Log to the client's file when this node can write it; '' or the reason not."""
    if not logfile:
        return ""
    try:
        casalog = _casalog()
        if str(casalog.logfile()) != logfile:
            with open(logfile, "a"):
                pass
            casalog.setlogfile(logfile)
        return ""
    except Exception as exc:
        return f"cannot write the client's CASA log {logfile} ({exc}); messages stay in this server's log"


def setup(info: dict[str, Any]) -> dict[str, Any]:
    """Join the client: its import path, working folder and CASA log.

    Returns ``{rank, host, pid, ok, error, warning}``; ``ok`` False when the
    working folder is not there (a node without the shared filesystem)."""
    for p in reversed(info.get("sys_path", [])):
        if p and p not in sys.path:
            sys.path.insert(0, p)
    res: dict[str, Any] = {"rank": _rank(), "host": socket.gethostname(), "pid": os.getpid(),
                           "ok": True, "error": "", "warning": ""}
    cwd = info.get("cwd", "")
    try:
        os.chdir(cwd)
    except OSError as exc:
        res.update(ok=False, error=f"cannot enter the client's working folder {cwd} ({exc}): the "
                   "servers need the filesystem the client works on (a folder shared by all nodes)")
        return res
    res["warning"] = _set_log(info.get("logfile", ""))
    return res


def _pool():
    global _POOL
    from ..restore.workers import WorkerPool
    if _POOL is None or _POOL.size == 0:
        _POOL = WorkerPool(1, origin=origin())
    return _POOL


def call_pickled(unit: dict[str, Any]) -> Any:
    """In the worker: follow the client's folder and log, then run the unit's call."""
    _set_log(unit.get("logfile", ""))
    cwd = unit.get("cwd", "")
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    func, args, kwargs = pickle.loads(unit["call"])
    return func(*args, **kwargs)


def run_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """One unit in this server's worker; never raises (the answer carries the failure).

    ``unit``: ``{key, call (pickled (func, args, kwargs)), cwd, logfile, paths}``
    (plain values, so casampi's own unpickling of the request cannot fail)."""
    from ..restore.workers import WorkerError
    t0 = time.time()
    res: dict[str, Any] = {"ok": False, "value": None, "error": "", "traceback": "",
                           "died": False, "missing": [], "rank": _rank(),
                           "host": socket.gethostname(), "pid": os.getpid()}
    try:
        _set_log(unit.get("logfile", ""))
        missing = [p for p in unit.get("paths", ()) if not os.path.exists(p)]
        if missing:
            res.update(missing=missing, error="not visible on this server: " + ", ".join(missing))
            return res
        res.update(ok=True, value=_pool().run(call_pickled, unit))
    except WorkerError as exc:
        res.update(error=str(exc), died=exc.died)
    except Exception as exc:
        res.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        res["seconds"] = time.time() - t0
    return res
