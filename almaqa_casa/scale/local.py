"""The local route: units in this process and in worker processes of this machine.

``nprocs - 1`` workers (:class:`~almaqa_casa.restore.workers.WorkerPool`)
plus this process, which takes the next waiting unit whenever it is free (so
it starts at once, while the workers import CASA).  With ``isolate`` every
unit runs in a worker (``nprocs`` of them): a CASA abort (e.g. a full disk
with the disk check off) then fails that unit with a message instead of
ending this process.  ``nprocs`` 1 without ``isolate`` runs every unit here,
one after the other, as the restore always did.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import socket
import time
import traceback
from collections.abc import Callable, Sequence

from .units import Outcome, Unit

__all__ = ["run_here", "run_local"]

OnStart = Callable[[Unit, int, str], None]
OnDone = Callable[[Outcome], None]


def run_here(u: Unit) -> Outcome:
    """``u`` in this process; an exception becomes a failed outcome."""
    t0 = time.perf_counter()
    try:
        value = u.func(*u.args, **u.kwargs)
    except Exception as exc:
        return Outcome(u.key, False, error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(), host=socket.gethostname(),
                       seconds=time.perf_counter() - t0)
    return Outcome(u.key, True, value, host=socket.gethostname(),
                   seconds=time.perf_counter() - t0)


def _call(func, args, kwargs):
    return func(*args, **kwargs)


def _in_worker(pool, u: Unit) -> Outcome:
    from ..restore.workers import WorkerError
    t0 = time.perf_counter()
    try:
        value = pool.run(_call, u.func, u.args, u.kwargs)
    except WorkerError as exc:
        return Outcome(u.key, False, error=str(exc), died=exc.died, host=socket.gethostname(),
                       seconds=time.perf_counter() - t0)
    return Outcome(u.key, True, value, host=socket.gethostname(),
                   seconds=time.perf_counter() - t0)


def run_local(units: Sequence[Unit], nprocs: int = 1, isolate: bool = False,
              on_start: OnStart | None = None, on_done: OnDone | None = None) -> dict[str, Outcome]:
    """Run ``units`` on this machine; returns their outcomes by key."""
    def started(u: Unit) -> None:
        if on_start is not None:
            on_start(u, 0, socket.gethostname())

    def finished(o: Outcome) -> Outcome:
        if on_done is not None:
            on_done(o)
        return o

    out: dict[str, Outcome] = {}
    if not isolate and (nprocs <= 1 or len(units) <= 1):
        for u in units:
            started(u)
            out[u.key] = finished(run_here(u))
        return out
    from ..restore.workers import WorkerPool
    pending = collections.deque(units)
    running: dict[cf.Future, Unit] = {}

    def collect(done) -> None:
        for f in done:
            u = running.pop(f)
            out[u.key] = finished(f.result())

    size = min(max(nprocs, 1), len(units)) if isolate else min(nprocs - 1, len(units) - 1)
    keep = 0 if isolate else 1           # units left for this process
    with WorkerPool(size) as pool, cf.ThreadPoolExecutor(max_workers=max(pool.size, 1)) as threads:
        def fill() -> None:
            while len(pending) > keep and len(running) < pool.size:
                u = pending.pop()                  # workers take from the end
                started(u)
                running[threads.submit(_in_worker, pool, u)] = u

        fill()
        while pending or running:
            collect([f for f in list(running) if f.done()])
            fill()
            if pending and not isolate:
                u = pending.popleft()              # this process takes from the front
                started(u)
                out[u.key] = finished(run_here(u))
            elif running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                collect(done)
    return out
