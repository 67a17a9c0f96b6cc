"""Build a command line for a task from its XML interface.

``almaqa <task> --<param> value ...``: values are parsed by the XML type
(bools as true/false, vectors as comma lists or JSON, records as JSON) and
then checked by the same code as Python calls.  Option names are
case-insensitive, so scriptForPI.py's ``--SPACESAVING 2`` works too; a
mistyped option gets the nearest names as suggestions.
"""
from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Iterable
from typing import Any

from .params import TaskParameterError
from .xmlspec import ParamSpec, TaskSpec

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class CLIArgumentError(TaskParameterError):
    """A command-line value cannot be read as the parameter's type."""


def _parse_scalar(text: str, typ: str) -> Any:
    base = typ.replace("Vec", "").replace("Array", "")
    if base in ("string", "path"):
        return text
    if base == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a bool (true/false)")
    if base == "int":
        return int(text)
    if base in ("double", "float"):
        return float(text)
    raise ValueError(f"cannot read type {typ}")


def parse_text(text: str, typ: str) -> Any:
    """Read command-line ``text`` as XML type ``typ`` (raises ValueError)."""
    if typ == "record":
        value = json.loads(text) if text.strip() else {}
        if not isinstance(value, dict):
            raise ValueError(f"{text!r} is not a JSON object")
        return value
    if typ.endswith("Vec") or typ.endswith("Array"):
        stripped = text.strip()
        if stripped.startswith("["):
            items = json.loads(stripped)
            return [_parse_scalar(str(i).lower() if isinstance(i, bool) else str(i), typ)
                    for i in items]
        return [_parse_scalar(t.strip(), typ) for t in stripped.split(",") if t.strip()]
    return _parse_scalar(text, typ)


def parse_param(p: ParamSpec, text: str) -> Any:
    """Read ``text`` for parameter ``p``, trying its types in XML order (string last).

    Where a string is also accepted, a list must be written as JSON (``'["0","1"]'``),
    so CASA selection strings such as ``--spw 0,1`` stay strings.
    """
    stringy = any(t in ("string", "path") for t in p.types)
    ordered = [t for t in p.types if t not in ("string", "path")] + \
              [t for t in p.types if t in ("string", "path")]
    for typ in ordered:
        is_vector = typ.endswith("Vec") or typ.endswith("Array")
        if is_vector and stringy and not text.strip().startswith("["):
            continue
        try:
            return parse_text(text, typ)
        except (ValueError, json.JSONDecodeError):
            continue
    raise CLIArgumentError(f"--{p.name}: cannot read {text!r} as {' or '.join(p.types)}")


#: Options every task has on the command line, besides its parameters.
COMMON_OPTIONS = ("help", "json", "logfile", "verbose")


def _verbose_flags(spec: TaskSpec) -> list[str]:
    """``-v`` always; ``--verbose`` too unless a task parameter has that name."""
    return ["-v"] if "verbose" in spec.names else ["-v", "--verbose"]


def make_parser(spec: TaskSpec, prog: str) -> argparse.ArgumentParser:
    """An argparse parser for ``spec`` whose help comes from the XML."""
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{spec.shortdescription}\n\n{spec.description}",
        epilog="Example:\n" + spec.example,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    for p in spec.params:
        extra = ""
        if p.allowed is not None:
            extra = " (allowed: " + ", ".join(map(repr, p.allowed)) + ")"
        if p.minimum is not None or p.maximum is not None:
            lo = "" if p.minimum is None else f"{p.minimum:g}"
            hi = "" if p.maximum is None else f"{p.maximum:g}"
            extra += f" (range: [{lo}, {hi}])"
        kwargs: dict[str, Any] = dict(dest=p.name, default=argparse.SUPPRESS, metavar=p.types[0].upper(),
                                      help=f"{p.shortdescription}{extra} [default: {p.default!r}]"
                                      .replace("%", "%%"))
        if "bool" in p.types:   # a bare --flag means true
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        parser.add_argument(f"--{p.name}", **kwargs)
    parser.add_argument("--json", action="store_true",
                        help="print the result dict as JSON on stdout, nothing else")
    parser.add_argument("--logfile", default=None,
                        help="write the CASA log to this file (default: a new file per run "
                             "in the per-user temporary folder, or $ALMAQA_CASALOG)")
    parser.add_argument(*_verbose_flags(spec), dest="almaqa_verbose", action="store_true",
                        help="print the details, and CASA's own console output as it comes")
    return parser


def normalise_argv(argv: list[str], spec: TaskSpec) -> list[str]:
    """Lower-case option names that match a parameter case-insensitively."""
    names = {n.lower(): n for n in spec.names}
    out = []
    for tok in argv:
        if tok.startswith("--"):
            key, sep, val = tok[2:].partition("=")
            if key.lower() in names:
                tok = f"--{names[key.lower()]}{sep}{val}"
        out.append(tok)
    return out


def suggest(word: str, choices: Iterable[str]) -> list[str]:
    """The choices closest to a mistyped ``word`` (case-insensitive), best first."""
    low = {c.lower(): c for c in choices}
    return [low[m] for m in difflib.get_close_matches(word.lower(), list(low), n=3, cutoff=0.6)]


def unknown_options(argv: list[str], spec: TaskSpec) -> list[str]:
    """One message per ``--option`` that is neither a parameter nor a common
    option, with the nearest names (``--spacesavng`` → did you mean --spacesaving?)."""
    known = {n.lower() for n in spec.names} | set(COMMON_OPTIONS)
    messages = []
    for tok in argv:
        if tok == "--":
            break
        if not tok.startswith("--") or len(tok) == 2:
            continue
        key = tok[2:].partition("=")[0]
        if key.lower() in known:
            continue
        near = suggest(key, [*spec.names, *COMMON_OPTIONS])
        hint = ("; did you mean " + " or ".join(f"--{n}" for n in near) + "?") if near else \
            f"; the parameters are: {', '.join('--' + n for n in spec.names)}"
        messages.append(f"unknown option --{key}{hint}")
    return messages


def arguments_from_cli(spec: TaskSpec, ns: argparse.Namespace) -> dict[str, Any]:
    """The task keyword arguments given on the command line, typed."""
    given = {}
    for p in spec.params:
        if hasattr(ns, p.name):
            given[p.name] = parse_param(p, getattr(ns, p.name))
    return given
