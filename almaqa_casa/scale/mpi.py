"""The casampi route: units pushed to the MPI servers through ``MPICommandClient``.

As the ALMA pipeline's tier 0 does (``pipeline.infrastructure.mpihelpers``):
the client starts casampi's services once, makes the servers import this
package (with the client's import path), then pushes one command per unit,
``almaqa_casa.scale.server.run_unit(almaqa_unit)``, with the unit as a
parameter, and collects the answers.  Here each unit goes to one free server
(``target_server``), so the client always knows which server has which unit
and a server that stops answering (casampi's heartbeat marks it timed out)
fails its unit only; the others take the rest.

One dispatcher thread talks to casampi (its client is not thread-safe);
callers in several threads (one per MOUS) submit units and wait on futures.
The client keeps everything else (plans, records' folder, lock, progress).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..log import post
from .choose import MPIFacts, launcher_facts
from .units import Outcome, ScaleError, Unit

__all__ = ["CasampiEngine", "engine", "probe"]

_ORIGIN = "almaqa_casa::scale"
_POLL = 0.1     # seconds between two looks at the answers (casampi's own pace)


def probe() -> MPIFacts:
    """The facts for :func:`~.choose.decide`; imports casampi only inside an
    Open MPI job of several processes (elsewhere there is nothing to find)."""
    f = launcher_facts(os.environ)
    if f.forced == "local" or f.launcher != "openmpi" or f.size < 2:
        return f
    try:
        from casampi.MPIEnvironment import MPIEnvironment
    except Exception as exc:   # ImportError, or mpi4py failing to load its library
        return dataclasses.replace(f, error=f"{type(exc).__name__}: {exc}")
    enabled = bool(MPIEnvironment.is_mpi_enabled)
    return MPIFacts(launcher=f.launcher, size=f.size, rank=f.rank, forced=f.forced, casampi=True,
                    enabled=enabled, client=bool(MPIEnvironment.is_mpi_client),
                    servers=tuple(MPIEnvironment.mpi_server_rank_list()) if enabled else (),
                    error="" if enabled else str(getattr(MPIEnvironment, "mpi_error_msg", "")))


class CasampiEngine:
    """The servers of this MPI job, set up once; :meth:`submit` returns a future."""

    name = "casampi"

    def __init__(self) -> None:
        from casampi.MPICommandClient import MPICommandClient
        self._client = MPICommandClient()
        # 'unified': servers log into files (ours: the client's log), not on the terminal
        self._client.set_log_mode("unified")
        self._client.start_services()
        self.servers: dict[int, dict[str, Any]] = {}     # usable: rank -> {host, pid}
        self.refused: dict[int, str] = {}                  # rank -> why it cannot be used
        self._setup()
        self._lock = threading.Condition()
        self._queue: collections.deque[tuple[Unit, cf.Future, Any]] = collections.deque()
        self._free: list[int] = sorted(self.servers)
        self._running: dict[int, tuple[Unit, cf.Future, int, float]] = {}   # command id -> ...
        self._dead: dict[int, str] = {}
        self._thread: threading.Thread | None = None

    # ---- set-up ------------------------------------------------------------------------
    def _setup(self) -> None:
        from casampi.MPIEnvironment import MPIEnvironment
        ranks = MPIEnvironment.mpi_server_rank_list()
        paths = [os.path.abspath(p) for p in sys.path if p]
        c = self._client
        c.push_command_request("import sys; sys.path[:0] = [p for p in %r if p not in sys.path]"
                               % (paths,), block=True, target_server=ranks)
        answers = c.push_command_request("import almaqa_casa.scale.server", block=True,
                                         target_server=ranks)
        failed = {a["server"]: a.get("traceback") or "" for a in answers if not a["successful"]}
        info = {"cwd": os.getcwd(), "sys_path": paths, "logfile": _logfile()}
        answers = c.push_command_request("almaqa_casa.scale.server.setup(almaqa_setup)",
                                         block=True, target_server=[r for r in ranks
                                                                    if r not in failed],
                                         parameters={"almaqa_setup": info})
        for a in answers:
            r, ret = a["server"], a.get("ret") or {}
            if not a["successful"]:
                failed[r] = a.get("traceback") or "no answer"
            elif not ret.get("ok"):
                failed[r] = ret.get("error", "")
            else:
                self.servers[r] = {"host": ret["host"], "pid": ret["pid"]}
                if ret.get("warning"):
                    post(f"casampi server {r} on {ret['host']}: {ret['warning']}", "WARN", _ORIGIN)
        for r, why in failed.items():
            last = why.strip().splitlines()[-1] if why.strip() else "no reason given"
            self.refused[r] = last
            post(f"casampi server {r} cannot be used: {last}", "WARN", _ORIGIN)
        post(f"casampi: {len(self.servers)} server(s) ready: " + ", ".join(
            f"rank {r} on {s['host']} (pid {s['pid']})" for r, s in sorted(self.servers.items())),
            "INFO", _ORIGIN)

    @property
    def size(self) -> int:
        """Units that can run at once (servers still answering)."""
        return len(self.servers) - len(self._dead)

    # ---- submitting -------------------------------------------------------------------
    def submit(self, u: Unit, on_start: Callable[[Unit, int, str], None] | None = None
               ) -> cf.Future:
        """Queue ``u``; the future's result is its :class:`Outcome` (never an exception).
        ``on_start(u, rank, host)`` is called (in the dispatcher thread) once it is sent."""
        if not self.servers:
            raise ScaleError("no casampi server can be used: " + "; ".join(
                f"server {r}: {w}" for r, w in sorted(self.refused.items())))
        fut: cf.Future = cf.Future()
        with self._lock:
            self._queue.append((u, fut, on_start))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._dispatch, name="casampi-dispatch",
                                                daemon=True)
                self._thread.start()
            self._lock.notify()
        return fut

    def _request(self, u: Unit) -> dict[str, Any]:
        return {"key": u.key, "call": pickle.dumps((u.func, u.args, u.kwargs), protocol=-1),
                "cwd": os.getcwd(), "logfile": _logfile(), "paths": list(u.paths)}

    def _dispatch(self) -> None:
        while True:
            try:
                self._turn()
            except Exception as exc:   # never leave a caller waiting for ever
                self._fail_all(f"the casampi dispatcher failed: {type(exc).__name__}: {exc}")
            time.sleep(_POLL)

    def _timed_out(self, rank: int) -> bool:
        """casampi's heartbeat lost ``rank`` (it may be idle: no unit of ours noticed)."""
        status = self._client.get_server_status(rank) or {}
        if status.get("timeout"):
            with self._lock:
                self._dead.setdefault(rank, "casampi's heartbeat lost it")
            post(f"casampi server {rank} stopped answering; the other servers go on", "SEVERE",
                 _ORIGIN)
            return True
        return False

    def _turn(self) -> None:
        """Send waiting units to free servers, collect answers."""
        with self._lock:
            while not self._queue and not self._running:
                self._lock.wait()
            todo = []
            while self._queue and self._free:
                todo.append((*self._queue.popleft(), self._free.pop(0)))
        for u, fut, on_start, rank in todo:
            if self._timed_out(rank):
                with self._lock:
                    self._queue.appendleft((u, fut, on_start))   # another server takes it
                continue
            if self._push(u, fut, rank) and on_start is not None:
                try:
                    on_start(u, rank, self.servers[rank]["host"])
                except Exception as exc:   # a report must not stop the dispatcher
                    post(f"progress report failed: {exc}", "WARN", _ORIGIN)
        self._collect()
        with self._lock:
            if self._queue and len(self._dead) == len(self.servers):
                left = list(self._queue)
                self._queue.clear()
            else:
                left = []
        for u, fut, _ in left:      # nobody left to run them
            fut.set_result(Outcome(u.key, False, error="no casampi server left (every server "
                                   "stopped answering)", died=True, engine=self.name))

    def _fail_all(self, why: str) -> None:
        post(why, "SEVERE", _ORIGIN)
        with self._lock:
            running, queued = list(self._running.values()), list(self._queue)
            self._running.clear()
            self._queue.clear()
            self._free = sorted(r for r in self.servers if r not in self._dead)
        for u, fut, rank, _ in running:
            if not fut.done():
                fut.set_result(Outcome(u.key, False, error=why, engine=self.name, server=rank,
                                       host=self.servers[rank]["host"]))
        for u, fut, _ in queued:
            if not fut.done():
                fut.set_result(Outcome(u.key, False, error=why, engine=self.name))

    def _push(self, u: Unit, fut: cf.Future, rank: int) -> bool:
        try:
            ids = self._client.push_command_request(
                "almaqa_casa.scale.server.run_unit(almaqa_unit)", block=False,
                target_server=[rank], parameters={"almaqa_unit": self._request(u)})
        except Exception as exc:   # e.g. a unit that does not pickle
            ids = None
            why = f"{type(exc).__name__}: {exc}"
        else:
            why = "casampi refused the request (see the CASA log)"
        if not ids:
            with self._lock:
                self._free.append(rank)
            fut.set_result(Outcome(u.key, False, error=f"cannot send {u.key} to casampi server "
                                   f"{rank}: {why}", engine=self.name, server=rank,
                                   host=self.servers[rank]["host"]))
            return False
        with self._lock:
            self._running[ids[0]] = (u, fut, rank, time.perf_counter())
        return True

    def _collect(self) -> None:
        with self._lock:
            ids = list(self._running)
        if not ids:
            return
        for a in self._client.get_command_response(ids, block=False, verbose=False):
            with self._lock:
                u, fut, rank, t0 = self._running.pop(a["id"])
            fut.set_result(self._outcome(u, rank, a, time.perf_counter() - t0))

    def _outcome(self, u: Unit, rank: int, a: dict, seconds: float) -> Outcome:
        host = self.servers[rank]["host"]
        o = Outcome(u.key, False, engine=self.name, server=rank, host=host, seconds=seconds)
        if a.get("status") == "timeout":     # casampi's heartbeat lost the server
            why = a.get("traceback") or "timeout"
            with self._lock:
                self._dead[rank] = why
            o.error = (f"casampi server {rank} on {host} (pid {self.servers[rank]['pid']}) stopped "
                       f"answering while running {u.key} ({why}); its other work is given to the "
                       "remaining servers")
            o.died = True
            post(o.error, "SEVERE", _ORIGIN)
            return o
        with self._lock:
            self._free.append(rank)
        if not a.get("successful"):
            tb = (a.get("traceback") or "").strip()
            o.error = f"casampi server {rank} on {host} failed: " + (
                tb.splitlines()[-1] if tb else "no reason given")
            o.traceback = tb
            return o
        ret = a.get("ret") or {}
        if ret.get("missing"):
            o.error, o.value = ret["error"], {"missing": ret["missing"]}
            return o
        o.ok, o.value = bool(ret.get("ok")), ret.get("value")
        o.error, o.traceback, o.died = ret.get("error", ""), ret.get("traceback", ""), \
            bool(ret.get("died"))
        if o.died:
            o.error = f"on casampi server {rank} ({host}): {o.error}"
        return o


def _logfile() -> str:
    from ..log import logfile
    return logfile() or ""


_ENGINE: CasampiEngine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> CasampiEngine:
    """The servers of this MPI job (started and set up on first use)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = CasampiEngine()
        return _ENGINE
