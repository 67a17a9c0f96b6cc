"""Calls the MPI tests send to casampi servers (module-level, so they pickle)."""
from __future__ import annotations

import os
import signal
import time


def where() -> dict:
    """Where a unit runs: its process, its parent, its folder, MPI variables seen."""
    return {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
            "mpi_env": sorted(k for k in os.environ if k.startswith(("OMPI_", "PMIX_")))}


def fail(message: str) -> None:
    raise ValueError(message)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def span(seconds: float) -> tuple[float, float]:
    t0 = time.time()
    time.sleep(seconds)
    return t0, time.time()


def say(message: str) -> str:
    from casatasks import casalog
    casalog.post(message, "INFO", "mpitest")
    return str(casalog.logfile())
