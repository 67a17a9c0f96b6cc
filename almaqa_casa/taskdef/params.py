"""Check and coerce task arguments against a :class:`~.xmlspec.TaskSpec` (pure).

Errors name the parameter, the value given and what was expected, and are
:class:`TaskParameterError`, an ``AssertionError`` like CASA's own validator
raises (so ``except AssertionError`` in existing scripts keeps working) and a
``ValueError`` for Python callers.
"""
from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Mapping
from typing import Any

from ..errors import AlmaqaError
from .xmlspec import Constraint, ParamSpec, TaskSpec

_TYPE_WORDS = {
    "string": "a string", "path": "a path (string)", "int": "an integer",
    "double": "a number", "float": "a number", "bool": "a bool (True/False)",
    "record": "a dict", "intVec": "a list of integers", "doubleVec": "a list of numbers",
    "stringVec": "a list of strings", "boolVec": "a list of bools", "pathVec": "a list of paths",
}


class TaskParameterError(AlmaqaError, ValueError, AssertionError):
    """A task argument is of the wrong type, not allowed, out of range or missing."""


class _Mismatch(AlmaqaError):
    """Internal: a value does not fit one candidate type."""


def _is_bool(v: Any) -> bool:
    """A Python or numpy bool (numpy is looked up, never imported: this module is pure)."""
    if isinstance(v, bool):
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(v, np.bool_)


def _as_int(v: Any) -> int:
    # numpy integers register as numbers.Integral, numpy floats as numbers.Real
    if _is_bool(v) or not isinstance(v, numbers.Integral):
        raise _Mismatch
    return int(v)


def _as_float(v: Any) -> float:
    if _is_bool(v) or not isinstance(v, numbers.Real):
        raise _Mismatch
    return float(v)


def _as_bool(v: Any) -> bool:
    if not _is_bool(v):
        raise _Mismatch
    return bool(v)


def _as_str(v: Any) -> str:
    if not isinstance(v, str):   # numpy.str_ is a str
        raise _Mismatch
    return str(v)


def _as_path(v: Any) -> str:
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    return os.path.expanduser(_as_str(v))


_SCALAR = {"int": _as_int, "double": _as_float, "float": _as_float, "bool": _as_bool,
           "string": _as_str, "path": _as_path}


def _as_record(v: Any) -> dict:
    if not isinstance(v, Mapping):
        raise _Mismatch
    return dict(v)


def _as_vector(v: Any, base: str) -> list:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_SCALAR[base](x) for x in v]
    return [_SCALAR[base](v)]  # a scalar becomes a one-element list, as in CASA


def coerce_one(value: Any, typ: str) -> Any:
    """Coerce ``value`` to XML type ``typ`` or raise ``_Mismatch``."""
    if typ == "record":
        return _as_record(value)
    if typ.endswith("Vec") or typ.endswith("Array"):
        return _as_vector(value, typ[:-3] if typ.endswith("Vec") else typ[:-5])
    return _SCALAR[typ](value)


def _expected(p: ParamSpec) -> str:
    return " or ".join(_TYPE_WORDS.get(t, t) for t in p.types)


def check_param(p: ParamSpec, value: Any) -> Any:
    """Return ``value`` coerced for parameter ``p`` or raise :class:`TaskParameterError`."""
    for typ in p.types:
        try:
            out = coerce_one(value, typ)
            break
        except _Mismatch:
            continue
    else:
        raise TaskParameterError(
            f"parameter '{p.name}' must be {_expected(p)}; got {value!r} "
            f"({type(value).__name__})")
    if p.allowed is not None:
        out = _check_allowed(p, out)
    if p.minimum is not None or p.maximum is not None:
        values = out if isinstance(out, list) else [out]
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if (p.minimum is not None and v < p.minimum) or (p.maximum is not None and v > p.maximum):
                lo = "-inf" if p.minimum is None else f"{p.minimum:g}"
                hi = "inf" if p.maximum is None else f"{p.maximum:g}"
                raise TaskParameterError(
                    f"parameter '{p.name}' is out of range: {v!r} is not within [{lo}, {hi}]")
    if p.mustexist:
        paths = out if isinstance(out, list) else [out]
        for path in paths:
            if isinstance(path, str) and not os.path.exists(path):
                what = "an empty name" if path == "" else f"{path!r} does not exist"
                raise TaskParameterError(
                    f"parameter '{p.name}' must be a path that exists ({what})")
    return out


def _same(v: Any, a: Any, ignorecase: bool) -> bool:
    """``v`` equals the allowed value ``a`` of the same kind (True is not 1, '2' is not 2)."""
    if isinstance(v, str) or isinstance(a, str):
        if not (isinstance(v, str) and isinstance(a, str)):
            return False
        return v == a or (ignorecase and v.lower() == a.lower())
    if isinstance(v, bool) or isinstance(a, bool):
        return isinstance(v, bool) and isinstance(a, bool) and v == a
    return v == a


def _allowed_match(p: ParamSpec, v: Any) -> Any:
    """``(allowed value)`` that ``v`` stands for, or None when ``v`` is not allowed."""
    for a in p.allowed:
        if _same(v, a, p.ignorecase):
            return (a,)
    if isinstance(v, str):
        # a string spelling of a typed allowed value of a multi-type parameter: '2' → 2
        for a in p.allowed:
            if not isinstance(a, str) and v.strip().lower() == str(a).lower():
                return (a,)
    return None


def _check_allowed(p: ParamSpec, value: Any) -> Any:
    values = value if isinstance(value, list) else [value]
    fixed = []
    for v in values:
        match = _allowed_match(p, v)
        if match is None:
            raise TaskParameterError(
                f"parameter '{p.name}' does not allow {v!r}; allowed: "
                + ", ".join(repr(a) for a in p.allowed))
        fixed.append(match[0])
    return fixed if isinstance(value, list) else fixed[0]


def _constraint_applies(c: Constraint, value: Any) -> bool:
    same = value == c.equals or (isinstance(value, str) and isinstance(c.equals, str)
                                 and value.lower() == c.equals.lower())
    return not same if c.negate else same


def resolve_arguments(spec: TaskSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """All parameters of ``spec`` in XML order: given values checked, others defaulted.

    Sub-parameter defaults from ``<constraints>`` apply to parameters the
    caller did not give, based on the final value of the controlling parameter.
    """
    unknown = [k for k in given if k not in spec.names]
    if unknown:
        raise TaskParameterError(
            f"{spec.name}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"parameters are: {', '.join(spec.names)}")
    values: dict[str, Any] = {}
    for p in spec.params:
        if p.name in given:
            values[p.name] = check_param(p, given[p.name])
    for p in spec.params:
        if p.name in values:
            continue
        default = p.default
        for c in spec.constraints:
            if p.name in c.defaults and _constraint_applies(c, values.get(c.when, spec.param(c.when).default)):
                default = c.defaults[p.name]
        if p.mustexist and default in ("", []):
            raise TaskParameterError(
                f"parameter '{p.name}' is required: give {_expected(p)} that exists")
        values[p.name] = check_param(p, default)
    return {name: values[name] for name in spec.names}
