"""Read ``*pipeline_manifest.xml`` (pure).

Structure (``pipeline/h/tasks/common/manifest.py``): ``<piperesults>``,
``<ous name=...>`` with ``casaversion``, ``pipeline_version``,
``execution_environment/node``, ``piperequest``, ``pipescript``,
``restorescript``, ``aux_products_file``; per ``<session name=...>`` the
``<caltables name=...>`` tarball and per ``<asdm name=...>`` its
``<finalflags>``, ``<applycmds>`` and optional ``<hifa_renorm .../>``.
"""
from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import AlmaqaError

__all__ = ["AsdmEntry", "Manifest", "ManifestError", "parse_manifest", "read_manifest"]


class ManifestError(AlmaqaError, ValueError):
    """The manifest cannot be read; the message names the file."""


@dataclasses.dataclass
class AsdmEntry:
    """What the manifest records for one EB."""

    name: str
    session: str
    finalflags: str = ""
    applycmds: str = ""
    renorm: dict[str, str] | None = None


@dataclasses.dataclass
class Manifest:
    """The parts of a pipeline manifest a restore needs."""

    ous: str = ""
    casaversion: str = ""
    pipeline_version: str = ""
    num_mpi_servers: list[int] = dataclasses.field(default_factory=list)
    piperequest: str = ""
    pipescript: str = ""
    restorescript: str = ""
    aux_products_file: str = ""
    caltables: dict[str, str] = dataclasses.field(default_factory=dict)   # session -> tgz
    asdms: dict[str, AsdmEntry] = dataclasses.field(default_factory=dict)
    source: str = ""

    def session_of(self, asdm: str) -> str | None:
        e = self.asdms.get(_strip(asdm))
        return e.session if e else None


def _strip(uid: str) -> str:
    for suffix in (".ms", ".asdm.sdm"):
        if uid.endswith(suffix):
            uid = uid[: -len(suffix)]
    return uid


def _name(el) -> str:
    return "" if el is None else el.attrib.get("name", "")


def parse_manifest(text: str | bytes, filename: str = "<manifest>") -> Manifest:
    """Parse manifest XML text.  DTDs and entities are refused."""
    raw = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    if "<!DOCTYPE" in raw or "<!ENTITY" in raw:
        raise ManifestError(f"{filename}: DTD/entity declarations are not accepted")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ManifestError(f"{filename}: not well-formed XML ({exc})") from None
    ous = root if root.tag == "ous" else root.find("ous")
    if ous is None:
        raise ManifestError(f"{filename}: no <ous> element")
    m = Manifest(ous=_name(ous), source=filename)
    m.casaversion = _name(ous.find("casaversion"))
    m.pipeline_version = _name(ous.find("pipeline_version"))
    for node in ous.findall("./execution_environment/node"):
        try:
            m.num_mpi_servers.append(int(node.attrib.get("num_mpi_servers", "0")))
        except ValueError:
            pass
    m.piperequest = _name(ous.find("piperequest"))
    m.pipescript = _name(ous.find("pipescript"))
    m.restorescript = _name(ous.find("restorescript"))
    m.aux_products_file = _name(ous.find("aux_products_file"))
    for session in ous.iter("session"):
        sname = session.attrib.get("name", "")
        for ct in session.iter("caltables"):
            m.caltables[sname] = _name(ct)
        for asdm in session.iter("asdm"):
            name = _strip(asdm.attrib.get("name", ""))
            if not name:
                raise ManifestError(f"{filename}: <asdm> without a name in session {sname!r}")
            renorm = asdm.find("hifa_renorm")
            m.asdms[name] = AsdmEntry(
                name=name, session=sname, finalflags=_name(asdm.find("finalflags")),
                applycmds=_name(asdm.find("applycmds")),
                renorm=dict(renorm.attrib) if renorm is not None else None)
    return m


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and parse a pipeline manifest file."""
    path = Path(path)
    return parse_manifest(path.read_bytes(), str(path))
