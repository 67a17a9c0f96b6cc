"""Turn a :class:`~.xmlspec.TaskSpec` and a task body into a CASA-style task.

The callable behaves like a casatasks task in plain Python, in ``casa -c``
scripts and at the CASA prompt: arguments are checked against the XML,
defaults and sub-parameter defaults applied, "Begin Task" / the full call /
"End Task" written to casalog with the task as origin, an exception logged
as SEVERE (its traceback too, at INFO so it is not echoed on the console)
and re-raised, and the body's result dict returned with the CASA log file
it was written to (``logfile``).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import inspect
import sys
import textwrap
import traceback
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ..log import announce_logfile, post
from .params import resolve_arguments
from .xmlspec import TaskSpec


@dataclasses.dataclass(frozen=True)
class CallContext:
    """What a task body may want to know about how it was called."""

    task: str
    given: frozenset[str]                 # parameters the caller gave explicitly
    caller_globals: Mapping[str, Any]     # globals of the caller (scriptForPI habits)


_CURRENT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "almaqa_task_call", default=None)


def current_call() -> CallContext | None:
    """The :class:`CallContext` of the task running now (``None`` outside a task)."""
    return _CURRENT.get()


def _casalog():
    from casatasks import casalog
    return casalog


def _announce_session_log(log: Any) -> None:
    """A Python session whose log almaqa_casa named learns where it is."""
    from ..casaenv import state
    st = state()
    if st is not None and st.action == "site-config":
        announce_logfile(str(log.logfile() or ""))


def _format_call(name: str, args: Mapping[str, Any]) -> str:
    return f"{name}( " + ", ".join(f"{k}={v!r}" for k, v in args.items()) + " )"


def _caller_globals(depth: int = 2) -> Mapping[str, Any]:
    """Globals of the frame that called the task (not copied: read-only view)."""
    frame = sys._getframe(depth)
    return MappingProxyType(frame.f_globals)


def _doc(spec: TaskSpec) -> str:
    lines = [spec.shortdescription, "", spec.description, "", "Parameters", "----------"]
    for p in spec.params:
        typ = p.type if p.types == (p.type,) else " or ".join(p.types)
        lines.append(f"{p.name} : {typ}, default {p.default!r}"
                     + ("  (sub-parameter)" if p.subparam else ""))
        lines.append(textwrap.indent(p.shortdescription, "    "))
        if p.allowed is not None:
            lines.append("    allowed: " + ", ".join(repr(a) for a in p.allowed))
        if p.minimum is not None or p.maximum is not None:
            lines.append(f"    range: [{'' if p.minimum is None else f'{p.minimum:g}'}, "
                         f"{'' if p.maximum is None else f'{p.maximum:g}'}]")
        if p.description and p.description.strip() != p.shortdescription:
            lines.append(textwrap.indent(p.description, "    "))
    lines += ["", "Returns", "-------", "dict", "", "Examples", "--------", spec.example]
    return "\n".join(lines)


class XMLTask:
    """A task built from its XML interface and its body function."""

    def __init__(self, spec: TaskSpec, body: Callable[..., Any]):
        self.spec = spec
        self.body = body
        self.__name__ = spec.name
        self.__qualname__ = spec.name
        self.__module__ = "almaqa_casa"
        self.__doc__ = _doc(spec)
        self._info_group_ = spec.category
        self._info_desc_ = spec.shortdescription
        self.__signature__ = inspect.Signature([
            inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default)
            for p in spec.params])

    def __repr__(self) -> str:
        return f"<almaqa_casa task {self.spec.name}: {self.spec.shortdescription}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            if len(args) > len(self.spec.params):
                raise TypeError(f"{self.spec.name}() takes at most {len(self.spec.params)} "
                                f"positional arguments ({len(args)} given)")
            for p, a in zip(self.spec.params, args):
                if p.name in kwargs:
                    raise TypeError(f"{self.spec.name}() got multiple values for '{p.name}'")
                kwargs[p.name] = a
        try:
            values = resolve_arguments(self.spec, kwargs)
        except Exception as exc:
            _casalog()
            post(f"Error in {self.spec.name}: {exc}", "SEVERE", self.spec.name)
            raise
        ctx = CallContext(self.spec.name, frozenset(kwargs), _caller_globals())
        return self.run(values, ctx)

    def run(self, values: dict[str, Any], ctx: CallContext) -> Any:
        """Run the body with checked ``values``, logging as casatasks does."""
        log = _casalog()
        name = self.spec.name
        _announce_session_log(log)
        start = datetime.datetime.now()
        token = _CURRENT.set(ctx)
        try:
            post("##########################################", "INFO", name)
            post(f"##### Begin Task: {name} #####", "INFO", name)
            post(_format_call(name, values), "INFO", name)
            result = self.body(**values)
            if isinstance(result, dict) and "logfile" not in result:
                result["logfile"] = str(log.logfile() or "")
            return result
        except Exception as exc:
            post(f"Task {name} raised an exception of class {type(exc).__name__} "
                 f"with the following message: {exc}", "SEVERE", name)
            post("Traceback (for the record):\n" + traceback.format_exc().rstrip(), "INFO", name)
            with contextlib.suppress(AttributeError, TypeError):
                exc._almaqa_logged = True   # the command line need not log it again
            raise
        finally:
            end = datetime.datetime.now()
            post(f"Task {name} complete. Start time: {start:%Y-%m-%d %H:%M:%S.%f} "
                 f"End time: {end:%Y-%m-%d %H:%M:%S.%f}", "INFO", name)
            post(f"##### End Task: {name} #####", "INFO", name)
            post("##########################################", "INFO", name)
            _CURRENT.reset(token)
