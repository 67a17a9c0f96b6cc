"""One way to run units of work: casampi servers inside an MPI job, this machine otherwise.

The engine is chosen once per process (:func:`choice`): ``casampi`` when
this process is the client of an Open MPI job with casampi servers
(``mpirun -n 5 python script.py``, ``mpicasa -n 5 casa -c script.py``),
``local`` everywhere else (the worker processes of
:mod:`almaqa_casa.restore.workers`, as before).  Callers do not care which:

* :func:`run_units` -- a batch of units (qa_restore's EB chains), at most
  ``nprocs`` at once; outcomes by key, each saying where it ran;
* :func:`map_calls` / :class:`Calls` -- per-product calls (qa_validate's
  image figures, qa_polmaps' maps) spread over the servers when there are
  some, run here one by one when there are none;
* :func:`map_members` -- one call per MOUS, concurrent when servers exist, so
  the EB chains of every MOUS of a project share the servers.

Work that must stay in the client (CASA calls on the member level, which
CASA's tools do not allow from several threads) takes :data:`client_lock`.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextvars
import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..log import post
from .choose import ENGINE_ENV, Choice, MPIFacts, decide
from .local import OnDone, OnStart, run_here, run_local
from .units import ENGINES, Outcome, ScaleError, Unit

__all__ = ["ENGINES", "ENGINE_ENV", "Calls", "Choice", "MPIFacts", "Outcome", "ScaleError", "Unit",
           "choice", "client_lock", "engine_name", "map_calls", "map_members", "run_units",
           "servers"]

T = TypeVar("T")
R = TypeVar("R")

#: Held by client-side CASA work while MOUSes run in threads (see :func:`map_members`).
client_lock = threading.RLock()

_CHOICE: Choice | None = None
_CHOICE_LOCK = threading.Lock()


def choice() -> Choice:
    """The engine of this process and why (decided once; starts casampi's client when chosen).

    Raises :class:`ScaleError` when ``ALMAQA_ENGINE=casampi`` asks for
    servers and there are none."""
    global _CHOICE
    with _CHOICE_LOCK:
        if _CHOICE is None:
            from .mpi import engine, probe
            facts = probe()
            c = decide(facts)
            if c.engine == "casampi":
                eng = engine()
                facts = dataclasses.replace(facts, servers=tuple(sorted(eng.servers)))
                c = decide(facts)
                if eng.refused and c.engine == "local":
                    c = Choice("local", "no casampi server can be used: " + "; ".join(
                        f"server {r}: {w}" for r, w in sorted(eng.refused.items())), warn=True)
            if c.warn or c.engine == "casampi":
                post(f"engine: {c.engine} ({c.reason})", "WARN" if c.warn else "INFO",
                     "almaqa_casa::scale")
            _CHOICE = c
        c = _CHOICE
    if c.engine != "casampi" and os.environ.get(ENGINE_ENV, "").strip().lower() == "casampi":
        raise ScaleError(f"{ENGINE_ENV}=casampi, but the casampi engine cannot be used: {c.reason}")
    return c


def engine_name() -> str:
    """'casampi' or 'local'."""
    return choice().engine


def servers() -> dict[int, dict[str, Any]]:
    """The usable casampi servers, rank -> ``{host, pid}`` (empty on the local route)."""
    if choice().engine != "casampi":
        return {}
    from .mpi import engine
    return dict(engine().servers)


def _on_servers(units: Sequence[Unit], limit: int, on_start: OnStart | None,
                on_done: OnDone | None) -> dict[str, Outcome]:
    from .mpi import engine
    eng = engine()
    pending = collections.deque(units)
    running: dict[cf.Future, Unit] = {}
    out: dict[str, Outcome] = {}
    limit = max(limit, 1)
    while pending or running:
        while pending and len(running) < limit:
            u = pending.popleft()
            running[eng.submit(u, on_start)] = u
        done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
        for f in done:
            u = running.pop(f)
            o = f.result()
            if not o.ok and isinstance(o.value, dict) and o.value.get("missing"):
                post(f"{u.key}: casampi server {o.server} on {o.host} does not see "
                     f"{', '.join(o.value['missing'])}; run in the client instead (put such "
                     "folders on the filesystem all nodes share)", "WARN", "almaqa_casa::scale")
                o = run_here(u)
            if on_done is not None:
                on_done(o)
            out[u.key] = o
    return out


def run_units(units: Sequence[Unit], nprocs: int = 1, isolate: bool = False,
              on_start: OnStart | None = None, on_done: OnDone | None = None
              ) -> dict[str, Outcome]:
    """Run ``units``, at most ``nprocs`` at once; their outcomes by key.

    casampi: every unit on a server (each server runs one at a time, in its
    own worker process); ``nprocs`` < 1 means as many as there are servers.
    local: see :func:`~.local.run_local` (``isolate``: every unit in a
    worker process).  ``on_start(unit, server, host)`` and
    ``on_done(outcome)`` let the caller report progress (``on_start`` may be
    called from another thread)."""
    if not units:
        return {}
    if engine_name() == "casampi":
        n = len(servers())
        return _on_servers(units, min(nprocs, n) if nprocs > 0 else n, on_start, on_done)
    return run_local(units, nprocs, isolate, on_start, on_done)


class Calls:
    """Per-product calls: :meth:`submit` returns a handle whose ``outcome()`` waits.

    With casampi servers the calls run there (up to :attr:`size` at once;
    more wait in the queue); without, each runs here as it is submitted, so
    a caller that keeps :attr:`size` calls in flight does today's serial
    work unchanged."""

    def __init__(self) -> None:
        self.engine = engine_name()
        self.size = len(servers()) if self.engine == "casampi" else 1

    def submit(self, key: str, func: Callable[..., Any], *args: Any, paths: Iterable[str] = (),
               **kwargs: Any) -> _Pending:
        u = Unit(key, func, args, kwargs, tuple(p for p in paths if p))
        if self.engine != "casampi":
            return _Pending(u, done=run_here(u))
        from .mpi import engine
        return _Pending(u, future=engine().submit(u))


class _Pending:
    def __init__(self, u: Unit, done: Outcome | None = None, future: cf.Future | None = None):
        self._u, self._done, self._future = u, done, future

    def outcome(self) -> Outcome:
        if self._done is None:
            o = self._future.result()
            if not o.ok and isinstance(o.value, dict) and o.value.get("missing"):
                post(f"{self._u.key}: casampi server {o.server} on {o.host} does not see "
                     f"{', '.join(o.value['missing'])}; measured in the client instead (give a "
                     "working folder on the filesystem all nodes share)", "WARN",
                     "almaqa_casa::scale")
                o = run_here(self._u)
            self._done = o
        return self._done


def map_calls(func: Callable[..., R], arglist: Sequence[tuple], keys: Sequence[str],
              paths: Sequence[Iterable[str]] | None = None) -> list[Outcome]:
    """``func(*args)`` for each args: on the servers when they exist, else here in order."""
    calls = Calls()
    pending = [calls.submit(k, func, *a, paths=(paths[i] if paths else ()))
               for i, (k, a) in enumerate(zip(keys, arglist))]
    return [p.outcome() for p in pending]


def map_members(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``; in threads (as many as servers) when casampi
    servers exist, so each MOUS sends its EB chains while the others do."""
    n = len(servers()) if engine_name() == "casampi" else 0
    if n <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with cf.ThreadPoolExecutor(max_workers=min(n, len(items)),
                               thread_name_prefix="almaqa-mous") as ex:
        # each thread sees the running task (its name is the log's origin)
        futures = [ex.submit(contextvars.copy_context().run, fn, x) for x in items]
        return [f.result() for f in futures]
