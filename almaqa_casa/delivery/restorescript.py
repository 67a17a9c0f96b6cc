"""Read a pipeline restore script (``casa_piperestorescript.py``) as data (pure).

The observatory's restore script is Python: ``h_init()``, then
``hifa_restoredata(vis=[...], session=[...], ocorr_mode='ca')`` (``hif_`` in
Cycles 1-3, ``hsd_`` for total power), ``h_save()``; Cycle 5-6 SACM/JAO
scripts first import with ``hifa_importdata(..., bdfflags=False)`` and run
``fixsyscaltimes(vis=...)`` per EB (realworld.md "Restore script variants").
It tells which session each EB belongs to and how the restore imported it.

The text is parsed with :mod:`ast` and only literal argument values are read
(:func:`ast.literal_eval`); nothing is executed.  A script that is not valid
Python, or whose restore call has non-literal ``vis``/``session`` values, is
an error naming the file and line.
"""
from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import AlmaqaError

__all__ = ["RESTORE_TASKS", "RestoreCall", "RestoreScript", "RestoreScriptError",
           "parse_restore_script", "read_restore_script", "eb_name"]

#: Restore tasks of the pipeline generations, and the data kind each restores.
RESTORE_TASKS = {"hifa_restoredata": "interferometry", "hif_restoredata": "interferometry",
                 "h_restoredata": "interferometry", "hsd_restoredata": "total power",
                 "hsdn_restoredata": "total power"}
#: Largest restore script read (real ones are a few kB).
MAX_BYTES = 2_000_000


class RestoreScriptError(AlmaqaError, ValueError):
    """A restore script cannot be read as data; the message names file and line."""


def eb_name(vis: str) -> str:
    """``'../rawdata/uid___A002_X1_X2.ms'`` -> ``'uid___A002_X1_X2'``."""
    base = os.path.basename(str(vis).rstrip("/"))
    for suffix in (".ms", ".asdm.sdm"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


@dataclasses.dataclass(frozen=True)
class RestoreCall:
    """One restore task call of the script."""

    task: str                                # hifa_restoredata, hsd_restoredata, ...
    vis: tuple[str, ...]                      # EB uids, in the script's order
    session: tuple[str, ...]                  # parallel to vis (may be empty)
    options: tuple[tuple[str, object], ...]   # other literal keywords (ocorr_mode, bdfflags, asis ...)
    lineno: int

    @property
    def kind(self) -> str:
        """'interferometry' or 'total power'."""
        return RESTORE_TASKS[self.task]

    def option(self, name: str, default: object = None) -> object:
        return dict(self.options).get(name, default)

    def sessions(self) -> dict[str, str]:
        """EB uid -> session name (empty when the script names no sessions)."""
        return dict(zip(self.vis, self.session)) if self.session else {}


@dataclasses.dataclass(frozen=True)
class RestoreScript:
    """What a restore script asks for."""

    source: str
    calls: tuple[RestoreCall, ...]
    #: SACM/JAO pre-step: EBs imported with bdfflags=False before the restore
    presteps_import: tuple[str, ...] = ()
    #: EBs whose SYSCAL times ``fixsyscaltimes`` fixes before the restore
    presteps_fixsyscaltimes: tuple[str, ...] = ()

    @property
    def call(self) -> RestoreCall | None:
        return self.calls[0] if self.calls else None

    def sessions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for c in self.calls:
            out.update(c.sessions())
        return out

    @property
    def sacm(self) -> bool:
        """True for the Cycle 5-6 SACM/JAO form (import without BDF flags, fix SYSCAL times)."""
        return bool(self.presteps_import or self.presteps_fixsyscaltimes)


def _func_name(call: ast.Call) -> str:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _literal(node: ast.AST, where: str, name: str) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise RestoreScriptError(f"{where}: the value of {name!r} is not a literal "
                                 "(the restore script is read as data, never run)") from None


def _names(value: object, where: str, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RestoreScriptError(f"{where}: {name} must be a string or a list of strings; "
                                 f"got {value!r}")
    return tuple(value)


def _restore_call(call: ast.Call, filename: str) -> RestoreCall:
    task = _func_name(call)
    where = f"{filename}, line {call.lineno}"
    args: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise RestoreScriptError(f"{where}: '**' arguments in {task}(...) cannot be read")
        if kw.arg in ("vis", "session"):
            args[kw.arg] = _names(_literal(kw.value, where, kw.arg), where, kw.arg)
        else:
            try:
                args[kw.arg] = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                args[kw.arg] = ast.unparse(kw.value)   # an option we only report
    if call.args:   # hifa_restoredata(['uid...'], ['session_1'])
        pos = ("vis", "session")
        for i, node in enumerate(call.args[:2]):
            args[pos[i]] = _names(_literal(node, where, pos[i]), where, pos[i])
    vis = tuple(eb_name(v) for v in args.pop("vis", ()))
    session = tuple(args.pop("session", ()))
    if not vis:
        raise RestoreScriptError(f"{where}: {task}(...) names no EB (vis)")
    if session and len(session) != len(vis):
        raise RestoreScriptError(f"{where}: {task}(...) lists {len(vis)} EB(s) but "
                                 f"{len(session)} session(s); the lists must be parallel")
    return RestoreCall(task=task, vis=vis, session=session,
                       options=tuple(sorted(args.items())), lineno=call.lineno)


def parse_restore_script(text: str, filename: str = "<restore script>") -> RestoreScript:
    """Read the restore calls and SACM pre-steps of a restore script's text.

    Raises
    ------
    RestoreScriptError
        Not valid Python, too large, or a restore call whose EBs/sessions are
        not literal lists; the message names the file and line.
    """
    if len(text) > MAX_BYTES:
        raise RestoreScriptError(f"{filename}: {len(text)} bytes; a restore script is a few kB "
                                 f"(limit {MAX_BYTES})")
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise RestoreScriptError(f"{filename}, line {exc.lineno}: not valid Python "
                                 f"({exc.msg})") from None
    except (MemoryError, RecursionError, ValueError) as exc:
        raise RestoreScriptError(f"{filename}: cannot be parsed ({type(exc).__name__})") from None
    calls: list[RestoreCall] = []
    imported: list[str] = []
    fixed: list[str] = []
    for call in sorted(_calls(tree), key=lambda c: (c.lineno, c.col_offset)):
        name = _func_name(call)
        where = f"{filename}, line {call.lineno}"
        if name in RESTORE_TASKS:
            calls.append(_restore_call(call, filename))
        elif name in ("hifa_importdata", "hif_importdata", "h_importdata"):
            kw = {k.arg: k.value for k in call.keywords if k.arg}
            bdf = kw.get("bdfflags")
            if bdf is not None and _literal(bdf, where, "bdfflags") is False and "vis" in kw:
                imported += [eb_name(v) for v in _names(_literal(kw["vis"], where, "vis"),
                                                       where, "vis")]
        elif name == "fixsyscaltimes":
            kw = {k.arg: k.value for k in call.keywords if k.arg}
            node = kw.get("vis", call.args[0] if call.args else None)
            if node is None:
                raise RestoreScriptError(f"{where}: fixsyscaltimes(...) names no vis")
            if isinstance(node, ast.Constant) or isinstance(node, (ast.List, ast.Tuple)):
                fixed += [eb_name(v) for v in _names(_literal(node, where, "vis"), where, "vis")]
            else:   # fixsyscaltimes(vis=myvis) in a loop over the imported EBs
                fixed.append("*")
    if "*" in fixed:
        fixed = [f for f in fixed if f != "*"] + [u for u in imported if u not in fixed]
    return RestoreScript(source=filename, calls=tuple(calls),
                         presteps_import=tuple(dict.fromkeys(imported)),
                         presteps_fixsyscaltimes=tuple(dict.fromkeys(fixed)))


def read_restore_script(path: str | os.PathLike) -> RestoreScript:
    """Read and parse a restore script file."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    return parse_restore_script(data.decode("utf-8", errors="replace"), str(path))
