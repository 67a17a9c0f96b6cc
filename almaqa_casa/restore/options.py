"""scriptForPI.py's options: SPACESAVING, DOSPLIT, DOCONTSUB (pure).

Left unset (``''``), a parameter takes the global of the same name, as
users set them for scriptForPI.py::

    casa -c "global SPACESAVING; SPACESAVING=2; qa_restore(...)"

The globals come from the caller's frame (``current_call().caller_globals``)
and from ``__main__`` (casashell's ``-c`` runs there).  Values are checked as
scriptForPI.py does: SPACESAVING must be an integer >= -1.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import AlmaqaError

__all__ = ["OptionError", "RestoreOptions", "caller_namespaces", "resolve_option"]


class OptionError(AlmaqaError, ValueError):
    """An option (parameter or scriptForPI global) has an invalid value."""


@dataclasses.dataclass(frozen=True)
class RestoreOptions:
    spacesaving: int = 0
    dosplit: bool = False
    docontsub: bool = False
    images: bool = False
    imagedir: str = ""
    outdir: str = ""
    dryrun: bool = False
    usepipeline: bool = False
    usems: bool = False
    ignoreversion: bool = False
    postscripts: bool = True
    #: verify each restored EB after the run (restore/verify.py)
    verify: bool = True
    #: total power: also run hsd_atmcor's sdatmcor / hsd_baseline's sdbaseline
    atmcor: bool = False
    sdbaseline: bool = False
    nprocs: int = 1
    #: nprocs chosen by qa_restore (parameter 0): lowered when the disk is short
    nprocs_auto: bool = False
    sources: tuple[tuple[str, str], ...] = ()   # (option, 'parameter'|'global'|'default')

    @property
    def check_disk(self) -> bool:
        return self.spacesaving != -1

    @property
    def level(self) -> int:
        """The deletion level (-1 deletes nothing, as 0)."""
        return max(self.spacesaving, 0)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "t", "yes", "1", "false",
                                                              "f", "no", "0"):
        return value.strip().lower() in ("true", "t", "yes", "1")
    raise OptionError(f"{name} must be True or False; got {value!r}")


def _spacesaving(value: Any) -> int:
    if isinstance(value, bool):
        raise OptionError(f"SPACESAVING must be an integer >= -1; got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise OptionError(f"SPACESAVING must be an integer >= -1; got {value!r}") from None
    try:
        import numbers
        if not isinstance(value, numbers.Integral):
            raise TypeError
        value = int(value)
    except TypeError:
        raise OptionError(f"SPACESAVING must be an integer >= -1; got {value!r}") from None
    if value < -1:
        raise OptionError(f"SPACESAVING must be an integer >= -1; got {value}")
    return value


def caller_namespaces(caller_globals: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """Where scriptForPI globals may live: the caller, then ``__main__``."""
    out: list[Mapping[str, Any]] = []
    if caller_globals is not None:
        out.append(caller_globals)
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__dict__", None) is not caller_globals:
        out.append(vars(main))
    return out


def resolve_option(name: str, value: Any, namespaces: Sequence[Mapping[str, Any]],
                   default: Any) -> tuple[Any, str]:
    """Value of option ``name``: the parameter, else the global ``NAME``, else default."""
    if not (isinstance(value, str) and value.strip() == ""):
        return value, "parameter"
    glob = name.upper()
    for ns in namespaces:
        if glob in ns:
            return ns[glob], "global"
    return default, "default"


def make_options(params: Mapping[str, Any], caller_globals: Mapping[str, Any] | None
                 ) -> RestoreOptions:
    """Build :class:`RestoreOptions` from task parameters and scriptForPI globals."""
    ns = caller_namespaces(caller_globals)
    sources = []
    ss, src = resolve_option("spacesaving", params.get("spacesaving", ""), ns, 0)
    sources.append(("spacesaving", src))
    ds, src = resolve_option("dosplit", params.get("dosplit", ""), ns, False)
    sources.append(("dosplit", src))
    dc, src = resolve_option("docontsub", params.get("docontsub", ""), ns, False)
    sources.append(("docontsub", src))
    nprocs = int(params.get("nprocs", 1) or 0)
    auto = nprocs <= 0
    if auto:
        import os
        nprocs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    return RestoreOptions(
        spacesaving=_spacesaving(ss), dosplit=_bool("DOSPLIT", ds),
        docontsub=_bool("DOCONTSUB", dc), images=bool(params.get("images", False)),
        imagedir=str(params.get("imagedir", "") or ""), outdir=str(params.get("outdir", "") or ""),
        dryrun=bool(params.get("dryrun", False)), usepipeline=bool(params.get("usepipeline", False)),
        usems=bool(params.get("usems", False)), ignoreversion=bool(params.get("ignoreversion", False)),
        postscripts=bool(params.get("postscripts", True)), verify=bool(params.get("verify", True)),
        atmcor=bool(params.get("atmcor", False)), sdbaseline=bool(params.get("sdbaseline", False)),
        nprocs=nprocs, nprocs_auto=auto, sources=tuple(sources))
