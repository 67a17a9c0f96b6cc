"""Which engine runs: the decision from the launcher's variables and casampi's state (pure)."""
from __future__ import annotations

import pytest

from almaqa_casa.restore.workers import worker_env
from almaqa_casa.scale.choose import MPIFacts, decide, launcher_facts


def test_no_launcher_is_the_local_route_without_a_warning():
    f = launcher_facts({"PATH": "/usr/bin"})
    assert f == MPIFacts()
    c = decide(f)
    assert (c.engine, c.warn) == ("local", False)
    assert c.reason == "not started by an MPI launcher"


def test_open_mpi_variables_give_size_and_rank():
    f = launcher_facts({"OMPI_COMM_WORLD_SIZE": "5", "OMPI_COMM_WORLD_RANK": "3"})
    assert (f.launcher, f.size, f.rank) == ("openmpi", 5, 3)


@pytest.mark.parametrize("facts, words", [
    (MPIFacts(launcher="openmpi", size=1), ["1 process", "mpirun -n 2"]),
    (MPIFacts(launcher="other", size=4), ["Open MPI", "almaqa_casa[mpi]"]),
    (MPIFacts(launcher="openmpi", size=3), ["casampi or mpi4py is not installed"]),
    (MPIFacts(launcher="openmpi", size=3, casampi=True, enabled=False,
              error="Traceback ...\nValueError: MPI disabled\n"), ["MPI disabled"]),
    (MPIFacts(launcher="openmpi", size=3, rank=2, casampi=True, enabled=True, client=False,
              servers=(1, 2)), ["server 2"]),
    (MPIFacts(launcher="openmpi", size=3, casampi=True, enabled=True), ["no casampi server"]),
])
def test_an_mpi_job_without_usable_servers_runs_locally_and_says_why(facts, words):
    c = decide(facts)
    assert c.engine == "local" and c.warn
    for w in words:
        assert w in c.reason, c.reason


def test_mpich_variables_are_seen_as_another_launcher():
    f = launcher_facts({"PMI_SIZE": "4", "PMI_RANK": "0"})
    assert (f.launcher, f.size) == ("other", 4)
    assert "Open MPI" in decide(f).reason


def test_servers_choose_casampi():
    c = decide(MPIFacts(launcher="openmpi", size=3, casampi=True, enabled=True, servers=(1, 2)))
    assert c.engine == "casampi" and not c.warn
    assert c.reason == "2 casampi server(s) (MPI ranks 1, 2)"


def test_almaqa_engine_local_wins_even_with_servers():
    f = launcher_facts({"OMPI_COMM_WORLD_SIZE": "3", "ALMAQA_ENGINE": "local"})
    assert decide(MPIFacts(**{**f.__dict__, "casampi": True, "enabled": True,
                              "servers": (1, 2)})).engine == "local"


def test_workers_never_see_the_mpi_launchers_variables():
    env = worker_env({"OMPI_COMM_WORLD_RANK": "1", "PMIX_RANK": "1", "PMI_SIZE": "3",
                      "PRTE_MCA_x": "y", "HOME": "/root", "ALMAQA_RUNLOG": "/tmp/x.log"},
                     ["/a", "", "/b"])
    assert env == {"HOME": "/root", "ALMAQA_RUNLOG": "/tmp/x.log", "PYTHONPATH": "/a:/b"}
