"""What an engine runs and what it gives back (pure data, no CASA).

A :class:`Unit` is a picklable call (a module-level function and its
arguments) with a key the caller knows it by (an EB uid, a product name).
Its :class:`Outcome` says whether it worked, what it returned or why it
failed, and where it ran: the casampi server's MPI rank (>= 1), or 0 for
this process and its local workers.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import AlmaqaError

__all__ = ["ENGINES", "Outcome", "ScaleError", "Unit"]

#: The engines a result can name.
ENGINES = ("local", "casampi")


class ScaleError(AlmaqaError, RuntimeError):
    """The MPI engine cannot be used as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """``func(*args, **kwargs)`` known as ``key``; ``func`` and the arguments must pickle.

    ``paths``: files or folders the call reads; a casampi server that cannot
    see one of them (another node without the shared filesystem) hands the
    unit back, and it runs in this process instead."""

    key: str
    func: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    paths: tuple[str, ...] = ()


@dataclasses.dataclass
class Outcome:
    """How one unit ended.  ``error`` is the message when ``ok`` is False;
    ``died`` says the process running it ended (a CASA abort, a kill, a
    server that stopped answering) rather than raising."""

    key: str
    ok: bool
    value: Any = None
    error: str = ""
    traceback: str = ""
    died: bool = False
    engine: str = "local"
    server: int = 0          #: MPI rank of the casampi server; 0 here
    host: str = ""
    seconds: float = 0.0
