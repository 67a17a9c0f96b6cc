"""Turn the task's parameters into plain values (pure; no CASA).

``vis`` may be an MS path, a list of paths, or the result dict of
``qa_restore`` (its ``produced`` map of EB -> outputs, or keys ``vis`` /
``mslist``), so the two tasks chain.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def ms_list(vis: Any) -> list[str]:
    """MS paths named by ``vis``; raises ``ValueError`` saying what was given."""
    if isinstance(vis, (str, os.PathLike)):
        v = str(vis).strip()
        if not v:
            raise ValueError("vis is empty: give an MS path or qa_restore's result dict")
        return [p.strip() for p in v.split(",") if p.strip()] if "," in v and not os.path.exists(v) else [v]
    if isinstance(vis, (list, tuple)):
        out: list[str] = []
        for v in vis:
            out += ms_list(v)
        return out
    if isinstance(vis, dict):
        for key in ("vis", "mslist", "ms"):
            if vis.get(key):
                return ms_list(vis[key])
        produced = vis.get("produced")
        if isinstance(produced, dict) and produced:
            bases = [m.get("calibrated") for m in vis.get("members", []) if isinstance(m, dict)]
            out = []
            for eb, outs in produced.items():
                outs = [outs] if isinstance(outs, str) else list(outs)
                # the full MS (working/<eb>.ms) holds the uncorrected DATA; a split.cal
                # holds calibrated (and maybe renormalized) data, analysed with the
                # restore's correction divided out (renorm.state)
                outs = [_resolve(str(o), bases) for o in outs]
                full = [o for o in outs if o.rstrip("/").endswith(".ms")]
                work = [o for o in full if "working" in o.replace("\\", "/").split("/")]
                ranked = work + [o for o in full if o not in work] + [o for o in outs
                                                                      if o not in full]
                there = [o for o in ranked if os.path.isdir(o)]
                out.append((there or ranked)[0])
            return out
        raise ValueError("vis dict has no 'vis', 'mslist' or 'produced' entry "
                         f"(keys: {sorted(vis)})")
    raise ValueError(f"vis must be an MS path, a list of paths or qa_restore's result dict, "
                     f"not {type(vis).__name__}")


def _resolve(path: str, bases: Sequence[str]) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    for b in bases:
        if b and os.path.exists(os.path.join(b, path)):
            return os.path.join(b, path)
    return path


def spw_list(spw: Any) -> list[int]:
    """'' -> [] (all); '17,19' / 17 / [17, 19] -> ints."""
    if spw is None or spw == "" or (isinstance(spw, (list, tuple)) and not spw):
        return []
    if isinstance(spw, (int,)) and not isinstance(spw, bool):
        return [int(spw)]
    if isinstance(spw, str):
        out = []
        for p in spw.replace(" ", "").split(","):
            if not p:
                continue
            if "~" in p:
                a, b = p.split("~")
                out += list(range(int(a), int(b) + 1))
            else:
                out.append(int(p))
        return out
    return [int(s) for s in spw]


def field_list(field: Any) -> list[str]:
    if not field:
        return []
    if isinstance(field, str):
        return [f.strip() for f in field.split(",") if f.strip()]
    return [str(f) for f in field]


def str_dict(d: Any, what: str, as_float: bool = False) -> dict[str, Any]:
    """Normalize excludechan / bwthreshspw: keys to str, values checked."""
    if not d:
        return {}
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a dict like {{'17': ...}}, not {d!r}")
    out = {}
    for k, v in d.items():
        key = str(int(k)) if str(k).strip().lstrip("-").isdigit() else None
        if key is None:
            raise ValueError(f"{what} key {k!r} is not a spw id")
        if as_float:
            try:
                out[key] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{what}['{key}']={v!r} is not a bandwidth in Hz") from None
        else:
            if not isinstance(v, str):
                raise ValueError(f"{what}['{key}']={v!r} must be a string like '100~150'")
            out[key] = v
    return out


def default_outdir(mslist: Sequence[str]) -> str:
    if len(mslist) == 1:
        return mslist[0].rstrip("/") + ".renorm"
    return os.path.join(os.path.dirname(os.path.abspath(mslist[0])) or ".", "renorm")


def caltable_name(vis: str, caltable: str, n_ms: int) -> str:
    """``<vis>.renorm.tbl`` by default; with several MSs a given name gets
    the MS name appended."""
    if not caltable:
        return vis.rstrip("/") + ".renorm.tbl"
    if n_ms == 1:
        return caltable
    base = os.path.basename(vis.rstrip("/"))
    root, ext = os.path.splitext(caltable)
    return f"{root}_{base}{ext or '.tbl'}"
