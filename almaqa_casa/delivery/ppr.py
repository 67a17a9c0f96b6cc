"""Read the EB list (and recipe) of a pipeline processing request (pure).

scriptForPI.py takes the EBs from the PPR lines holding ``<AsdmDiskName>``,
the substring from ``uid`` up to ``</``.  Done here with an XML parser, with
the same line scan as fallback for PPRs that are not well-formed.
"""
from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import AlmaqaError

__all__ = ["PPR", "PPRError", "parse_ppr", "read_ppr"]


class PPRError(AlmaqaError, ValueError):
    """The PPR cannot be read; the message names the file."""


@dataclasses.dataclass
class PPR:
    asdms: list[str]
    #: EB uid -> session name (``ProcessingIntents`` ``SESSION_k``, else a
    #: ``SessionDefinition``).  The pipeline itself stops at the first missing
    #: ``SESSION_k`` and puts unlisted EBs in ``session_1``; here every
    #: ``SESSION_k`` is read and unlisted EBs stay unmapped.
    sessions: dict[str, str]
    recipe: str = ""
    tasks: list[str] = dataclasses.field(default_factory=list)
    source: str = ""


#: ``<Intents><Keyword>SESSION_2</Keyword><Value>uid://A002/X1/X2</Value></Intents>``
_SESSION_KEY = re.compile(r"SESSION_(\d+)", re.I)


def _session_uids(value: str) -> list[str]:
    """EB uids of a SESSION_k intent value: ``'uid://A002/X1/X2 | uid://A002/X1/X3'``.

    The pipeline (``executeppr._getSessions``) splits on ``' | '`` and turns
    ``:`` and ``/`` into ``_`` (``uid___A002_X1_X2``).
    """
    out = []
    for part in re.split(r"[|,\s]+", value):
        part = part.strip()
        if part.startswith("uid"):
            out.append(part.translate(str.maketrans(":/", "__")))
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _line_scan(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if "<AsdmDiskName>" in line:
            m = re.search(r"(uid[^<]*)</", line)
            if m:
                out.append(m.group(1).strip())
    return out


def parse_ppr(text: str | bytes, filename: str = "<PPR>") -> PPR:
    """EBs (``<AsdmDiskName>``), their sessions and the recipe of a PPR."""
    raw = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    if "<!ENTITY" in raw:
        raise PPRError(f"{filename}: entity declarations are not accepted")
    asdms: list[str] = []
    sessions: dict[str, str] = {}
    recipe = ""
    tasks: list[str] = []
    session_intents: dict[str, str] = {}
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        root = None
    if root is not None:
        for el in root.iter():
            tag = _local(el.tag)
            if tag == "ProcedureTitle" and el.text:
                recipe = el.text.strip()
            elif tag == "Command" and el.text:
                tasks.append(el.text.strip())
            elif tag in ("SessionDefinition", "Session"):
                sname = ""
                for sub in el.iter():
                    if _local(sub.tag) == "Parameter":
                        kv = {(_local(c.tag)): (c.text or "").strip() for c in sub}
                        if kv.get("Keyword") == "session":
                            sname = kv.get("Value", "")
                for sub in el.iter():
                    if _local(sub.tag) == "AsdmDiskName" and sub.text:
                        uid = sub.text.strip()
                        if sname:
                            sessions[uid] = sname
            elif tag == "Intents":
                kv = {_local(c.tag): (c.text or "").strip() for c in el}
                m = _SESSION_KEY.fullmatch(kv.get("Keyword", ""))
                if m:
                    for uid in _session_uids(kv.get("Value", "")):
                        session_intents.setdefault(uid, f"session_{int(m.group(1))}")
            if tag == "AsdmDiskName" and el.text and "uid" in el.text:
                uid = el.text.strip()
                uid = uid[uid.index("uid"):]
                if uid not in asdms:
                    asdms.append(uid)
    if not asdms:
        asdms = list(dict.fromkeys(_line_scan(raw)))
    if not asdms:
        raise PPRError(f"{filename}: no <AsdmDiskName> found")
    for uid, sess in session_intents.items():   # ProcessingIntents SESSION_k win
        sessions[uid] = sess
    return PPR(asdms=asdms, sessions=sessions, recipe=recipe, tasks=tasks, source=filename)


def read_ppr(path: str | os.PathLike) -> PPR:
    """Read and parse a PPR file."""
    path = Path(path)
    return parse_ppr(path.read_bytes(), str(path))
