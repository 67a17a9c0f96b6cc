"""Build a command line for a task from its XML interface.

``almaqa <task> --<param> value ...``: values are parsed by the XML type
(bools as true/false, vectors as comma lists or JSON, records as JSON) and
then checked by the same code as Python calls.  Option names are
case-insensitive, so scriptForPI.py's ``--SPACESAVING 2`` works too.
"""
from __future__ import annotations

import argparse
import json
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


def make_parser(spec: TaskSpec, prog: str) -> argparse.ArgumentParser:
    """An argparse parser for ``spec`` whose help comes from the XML."""
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{spec.shortdescription}\n\n{spec.description}",
        epilog="Example:\n" + spec.example,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for p in spec.params:
        extra = ""
        if p.allowed is not None:
            extra = " (allowed: " + ", ".join(map(str, p.allowed)) + ")"
        kwargs: dict[str, Any] = dict(dest=p.name, default=argparse.SUPPRESS, metavar=p.types[0].upper(),
                                      help=f"{p.shortdescription}{extra} [default: {p.default!r}]"
                                      .replace("%", "%%"))
        if p.types == ("bool",):
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        parser.add_argument(f"--{p.name}", **kwargs)
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    parser.add_argument("--logfile", default=None, help="write the CASA log to this file")
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


def arguments_from_cli(spec: TaskSpec, ns: argparse.Namespace) -> dict[str, Any]:
    """The task keyword arguments given on the command line, typed."""
    given = {}
    for p in spec.params:
        if hasattr(ns, p.name):
            given[p.name] = parse_param(p, getattr(ns, p.name))
    return given
