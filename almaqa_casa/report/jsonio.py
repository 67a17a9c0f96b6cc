"""Atomic JSON output with numpy/Path-aware conversion.

Reports are read by other tools and by people after interrupted runs, so a
JSON file is either complete or absent (``atomic_output``), and values that
``json`` cannot encode (numpy scalars and arrays, paths, sets, NaN) are
converted to plain JSON (NaN/inf → null) instead of failing at the end of a
long run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path, PurePath
from typing import Any

from ..atomic import atomic_output

__all__ = ["dumps", "read_json", "to_jsonable", "write_json"]


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` recursively into JSON-encodable plain Python data."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    try:  # numpy without importing it here
        import numpy as np
        if isinstance(obj, np.generic):
            return to_jsonable(obj.item())
        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    return str(obj)


def dumps(obj: Any, indent: int | None = 1) -> str:
    """JSON text of ``obj`` after ``to_jsonable`` (strict: no NaN tokens)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, sort_keys=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any, overwrite: bool = True, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns the path."""
    text = dumps(obj, indent=indent)
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
