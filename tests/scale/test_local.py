"""Without MPI: almaqa_casa.scale is today's local route (this process and its workers)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from almaqa_casa import scale
from almaqa_casa.restore.workers import WorkerError, WorkerPool


def _pid() -> int:
    return os.getpid()


def _fail(msg: str) -> None:
    raise ValueError(msg)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(autouse=True)
def _no_mpi(monkeypatch):
    for k in list(os.environ):
        if k.startswith(("OMPI_", "PMIX_", "PMI_")) or k == "ALMAQA_ENGINE":
            monkeypatch.delenv(k)


def test_outside_mpi_the_engine_is_local_and_nothing_of_casampi_starts():
    c = scale.choice()
    assert (c.engine, c.reason) == ("local", "not started by an MPI launcher")
    assert scale.engine_name() == "local" and scale.servers() == {}
    assert scale.Calls().size == 1
    # casatasks itself imports casampi when it is installed; choosing the engine must not
    # (checked in a fresh interpreter, as this session may have imported casatasks already)
    code = ("import sys; from almaqa_casa import scale; c = scale.choice(); scale.servers(); "
            "print(c.engine, 'casampi.MPICommandClient' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["local", "False"]


def test_one_process_runs_every_unit_here_in_order():
    units = [scale.Unit(f"u{i}", _pid) for i in range(3)]
    seen = []
    out = scale.run_units(units, nprocs=1, on_done=lambda o: seen.append(o.key))
    assert seen == ["u0", "u1", "u2"]
    for o in out.values():
        assert o.ok and o.value == os.getpid()
        assert (o.engine, o.server, o.host) == ("local", 0, socket.gethostname())


def test_isolated_units_run_in_workers_and_a_dying_one_fails_alone():
    units = [scale.Unit("a", _pid), scale.Unit("boom", _die), scale.Unit("b", _pid),
             scale.Unit("bad", _fail, ("caltable x.tbl is missing",))]
    out = scale.run_units(units, nprocs=2, isolate=True)
    assert out["a"].ok and out["b"].ok and os.getpid() not in (out["a"].value, out["b"].value)
    assert not out["boom"].ok and out["boom"].died
    assert "died (killed by SIGKILL)" in out["boom"].error
    assert not out["bad"].ok and not out["bad"].died
    assert out["bad"].error == "ValueError: caltable x.tbl is missing"


def test_a_pool_replaces_a_worker_that_died():
    with WorkerPool(1) as pool:
        first = pool.run(os.getpid)
        with pytest.raises(WorkerError, match="killed by SIGKILL") as e:
            pool.run(_die)
        assert e.value.died
        assert pool.run(os.getpid) not in (first, os.getpid())


def test_per_product_calls_run_here_one_by_one_without_servers():
    outs = scale.map_calls(_fail, [("one",), ("two",)], ["p1", "p2"])
    assert [(o.key, o.ok, o.error, o.server) for o in outs] == [
        ("p1", False, "ValueError: one", 0), ("p2", False, "ValueError: two", 0)]
    assert scale.map_members(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]


def test_asking_for_casampi_outside_mpi_is_an_error(monkeypatch):
    monkeypatch.setenv("ALMAQA_ENGINE", "casampi")
    with pytest.raises(scale.ScaleError, match="ALMAQA_ENGINE=casampi.*not started by an MPI"):
        scale.engine_name()
