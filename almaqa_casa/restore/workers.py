"""Worker processes that restore EBs in parallel.

Each worker is a fresh interpreter (``python -m almaqa_casa.restore.workers``)
that imports CASA once and then runs the EB chains it is sent, one after the
other, over a private pipe.  Why not :mod:`multiprocessing`: ``fork`` of a
process that has run CASA tasks can deadlock inside CASA (seen in
importasdm), and ``spawn``/``forkserver`` re-run the caller's main script in
every worker, which breaks the unguarded scripts CASA users write for
``casa -c``.  Starting the workers before they are needed lets their CASA
import (about 3 s) overlap the work of the calling process.

The casampi servers of :mod:`almaqa_casa.scale` run their units in such a
worker too, so a CASA abort ends the worker, not the MPI job.  A worker never
inherits the MPI launcher's variables: casatasks would otherwise try to join
the MPI job from inside it.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..errors import AlmaqaError

__all__ = ["MPI_ENV_PREFIXES", "WorkerError", "WorkerPool", "worker_env"]


class WorkerError(AlmaqaError, RuntimeError):
    """A worker process failed or died; the message says how (``died``: it ended)."""

    def __init__(self, message: str, died: bool = False) -> None:
        super().__init__(message)
        self.died = died


#: Prefixes of the variables MPI launchers (Open MPI/PRRTE, PMIx, MPICH's PMI)
#: set for their ranks; a worker is no rank, so it must not see them.
MPI_ENV_PREFIXES = ("OMPI_", "PMIX_", "PMI_", "PRTE_")


def worker_env(environ: dict[str, str], path: list[str]) -> dict[str, str]:
    """The environment of a worker: the caller's, without MPI rank variables,
    with the caller's import path (pure)."""
    env = {k: v for k, v in environ.items() if not k.startswith(MPI_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return env


class _Worker:
    def __init__(self, origin: str = "") -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # the caller's import path, so the worker finds what the caller found
        # (e.g. a package put on sys.path in CASA's startup.py)
        env = worker_env(dict(os.environ), sys.path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "almaqa_casa.restore.workers", str(to_child_r),
             str(from_child_w), str(os.getpid()), _current_logfile(), origin],
            pass_fds=(to_child_r, from_child_w),
            env=env, stdin=subprocess.DEVNULL, cwd=os.getcwd())
        os.close(to_child_r)
        os.close(from_child_w)
        self.send = Connection(to_child_w, readable=False)
        self.recv = Connection(from_child_r, writable=False)

    def call(self, func: Callable, *args: Any) -> Any:
        try:
            self.send.send((func, args))
            status, value = self.recv.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            try:
                code = self.proc.wait(timeout=5)    # reap it: its status says how it ended
            except subprocess.TimeoutExpired:
                code = None
            raise WorkerError(f"restore worker process (pid {self.proc.pid}) died"
                              + _how(code) + f": {str(exc) or type(exc).__name__}",
                              died=True) from None
        if status == "error":
            raise WorkerError(value)
        return value

    def close(self) -> None:
        for c in (self.send, self.recv):
            try:
                c.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _how(code: int | None) -> str:
    """' (killed by SIGKILL)' or ' with exit status 1' (pure)."""
    if code is None:
        return ""
    if code < 0:
        import signal
        try:
            return f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f" (killed by signal {-code})"
    return f" with exit status {code}"


def _current_logfile() -> str:
    """The CASA log this process writes to, so the workers log there too."""
    # casatasks' logger as an attribute first: in a casampi server the main thread
    # never finishes `import casatasks` (it serves inside it), and importing it
    # from another thread would wait for that forever
    casalog = getattr(sys.modules.get("casatasks"), "casalog", None)
    try:
        if casalog is None:
            from casatasks import casalog
        return str(casalog.logfile() or "")
    except Exception:   # no CASA logger here: the workers keep their default
        return ""


class WorkerPool:
    """``n`` worker processes; :meth:`run` calls a function in a free one.

    Use as a context manager; the workers start at once and stop on exit.
    :meth:`run` blocks the calling thread, so call it from threads (e.g. a
    ThreadPoolExecutor) to keep several workers busy.
    """

    def __init__(self, n: int, origin: str = "") -> None:
        self._origin = origin     # the CASA log's processor origin in the workers
        self._free: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        for _ in range(max(n, 0)):
            w = _Worker(origin)
            self._all.append(w)
            self._free.put(w)

    @property
    def size(self) -> int:
        return len(self._all)

    def run(self, func: Callable, *args: Any) -> Any:
        """``func(*args)`` in a worker (``func`` and args must pickle)."""
        w = self._free.get()
        dead = False
        try:
            return w.call(func, *args)
        except WorkerError as exc:
            dead = exc.died
            raise
        finally:
            if dead or w.proc.poll() is not None:      # it died: a fresh one takes its place
                w.close()
                i = self._all.index(w)
                w = self._all[i] = _Worker(self._origin)
            self._free.put(w)

    def close(self) -> None:
        for w in self._all:
            w.close()
        self._all = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _die_with(parent_pid: int) -> None:
    """Linux: be killed when the calling process dies (even by SIGKILL), so no
    orphan keeps writing an EB that a re-run restores again."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):   # not Linux: the closed pipe ends the worker instead
        pass
    if os.getppid() != parent_pid:      # the caller died before the line above
        os._exit(1)


def _serve(read_fd: int, write_fd: int, parent_pid: int, logfile: str = "", origin: str = "") -> int:
    _die_with(parent_pid)
    recv = Connection(read_fd, writable=False)
    send = Connection(write_fd, readable=False)
    import casatasks

    import almaqa_casa  # noqa: F401  (offline CASA set-up)
    if logfile:
        casatasks.casalog.setlogfile(logfile)
    if origin:    # e.g. the casampi server's rank, so its messages say where they come from
        casatasks.casalog.processorOrigin(origin)
        casatasks.casalog.origin("")     # CASA shows the processor origin from the next origin on
    while True:
        try:
            func, args = recv.recv()
        except EOFError:
            return 0
        try:
            send.send(("ok", func(*args)))
        except Exception as exc:  # reported to the caller, who raises it
            send.send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6]))
