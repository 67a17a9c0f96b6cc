"""Which engine runs the units of work: a decision from facts (pure, no CASA, no MPI).

casampi is used when this process is the client (rank 0) of an MPI job
started by Open MPI's launcher with casampi servers beside it
(``mpirun -n N python ...``, ``mpicasa -n N casa -c ...``); everywhere else
the local route runs, as it always did.  ``ALMAQA_ENGINE=local`` keeps the
local route inside an MPI job.  The reason is kept for the log, so a user
who expected servers learns why there were none.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["ENGINE_ENV", "Choice", "MPIFacts", "decide", "launcher_facts"]

#: ``local`` forces the local route; ``casampi`` makes a missing MPI engine an error.
ENGINE_ENV = "ALMAQA_ENGINE"

_INSTALL = "pip install 'almaqa_casa[mpi]'"


@dataclasses.dataclass(frozen=True)
class MPIFacts:
    """What the environment and casampi say about this process."""

    launcher: str = ""            #: 'openmpi', 'other' (MPICH, Intel MPI...) or '' (none)
    size: int = 1                 #: processes in the MPI job, from the launcher
    rank: int = 0
    forced: str = ""              #: the value of ALMAQA_ENGINE
    casampi: bool = False         #: casampi and mpi4py import
    enabled: bool = False         #: casampi's MPIEnvironment.is_mpi_enabled
    client: bool = True           #: casampi's MPIEnvironment.is_mpi_client
    servers: tuple[int, ...] = ()
    error: str = ""               #: casampi's reason when MPI is not enabled


@dataclasses.dataclass(frozen=True)
class Choice:
    engine: str                   #: 'casampi' or 'local'
    reason: str
    warn: bool = False            #: the user probably expected servers


def launcher_facts(environ: Mapping[str, str]) -> MPIFacts:
    """The launcher's view (environment variables only)."""
    forced = environ.get(ENGINE_ENV, "").strip().lower()
    if "OMPI_COMM_WORLD_SIZE" in environ:
        return MPIFacts(launcher="openmpi", size=_int(environ["OMPI_COMM_WORLD_SIZE"]),
                        rank=_int(environ.get("OMPI_COMM_WORLD_RANK", "0")), forced=forced)
    for size_var, rank_var in (("PMI_SIZE", "PMI_RANK"), ("PMIX_SIZE", "PMIX_RANK"),
                               ("MPI_LOCALNRANKS", "MPI_LOCALRANKID")):
        if size_var in environ:
            return MPIFacts(launcher="other", size=_int(environ[size_var]),
                            rank=_int(environ.get(rank_var, "0")), forced=forced)
    return MPIFacts(forced=forced)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def decide(f: MPIFacts) -> Choice:
    """The engine for facts ``f``, and why."""
    if f.forced == "local":
        return Choice("local", "ALMAQA_ENGINE=local")
    strict = f.forced == "casampi"
    if not f.launcher:
        return Choice("local", "not started by an MPI launcher", warn=strict)
    if f.size < 2:
        return Choice("local", f"an MPI job of {f.size} process (casampi needs one client and at "
                      "least one server: mpirun -n 2 or more)", warn=True)
    if f.launcher != "openmpi":
        return Choice("local", f"an MPI job of {f.size} processes started by a launcher other than "
                      "Open MPI's; casampi works only under Open MPI (" + _INSTALL
                      + " installs it and its mpirun)", warn=True)
    if not f.casampi:
        return Choice("local", f"an MPI job of {f.size} processes, but casampi or mpi4py is not "
                      f"installed ({_INSTALL})", warn=True)
    if not f.enabled:
        why = f.error.strip().splitlines()[-1] if f.error.strip() else "no reason given"
        return Choice("local", f"casampi did not enable MPI ({why})", warn=True)
    if not f.client:
        return Choice("local", f"this process is casampi server {f.rank}, not the client",
                      warn=True)
    if not f.servers:
        return Choice("local", "no casampi server answered", warn=True)
    ranks = ", ".join(str(r) for r in f.servers)
    return Choice("casampi", f"{len(f.servers)} casampi server(s) (MPI ranks {ranks})")
