"""Read a task interface from CASA's task XML schema into plain data.

The XML in ``xml/`` is the single source of truth for a task's parameters,
types, defaults, allowed values, sub-parameter defaults and help text; this
module turns one file into a :class:`TaskSpec` and decides nothing else.
"""
from __future__ import annotations

import dataclasses
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..errors import AlmaqaError

NS = "{http://casa.nrao.edu/schema/psetTypes.html}"

#: Parameter types this framework understands (CASA 6 task XML names).
SCALAR_TYPES = {"string", "int", "double", "float", "bool", "path", "record"}
VECTOR_TYPES = {"intVec", "doubleVec", "stringVec", "boolVec", "pathVec",
                "intArray", "doubleArray", "stringArray", "boolArray"}
VARIANT_TYPES = {"any", "variant"}


class TaskXMLError(AlmaqaError, ValueError):
    """A task XML file does not follow the schema this framework reads."""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One ``<param>`` of a task."""

    name: str
    type: str                      # the XML type attribute
    types: tuple[str, ...]         # accepted types (``<type>`` children, or (type,))
    default: Any
    shortdescription: str = ""
    description: str = ""
    allowed: tuple[Any, ...] | None = None   # enum values
    ignorecase: bool = False
    minimum: float | None = None
    maximum: float | None = None
    mustexist: bool = False
    subparam: bool = False


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``<when param=P><equals value=V><default param=Q>...``: Q's default when P == V."""

    when: str
    equals: Any
    defaults: dict[str, Any]
    negate: bool = False  # <notequals>


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A task interface read from XML."""

    name: str
    category: str
    shortdescription: str
    description: str
    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...]
    example: str
    source: str

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]


def _text(elem: ET.Element | None) -> str:
    if elem is None or elem.text is None:
        return ""
    return textwrap.dedent(elem.text).strip("\n")


def _scalar(text: str | None, typ: str) -> Any:
    """Convert the text of a ``<value>`` to a Python value of XML type ``typ``."""
    text = "" if text is None else text.strip()
    base = typ.replace("Vec", "").replace("Array", "")
    if base in ("string", "path"):
        return text
    if base == "bool":
        if text.lower() in ("true", "t", "1"):
            return True
        if text.lower() in ("false", "f", "0", ""):
            return False
        raise TaskXMLError(f"bad bool value {text!r}")
    if base == "int":
        return int(text)
    if base in ("double", "float"):
        return float(text)
    if base == "record":
        return {}
    raise TaskXMLError(f"unsupported type {typ!r}")


def _value(elem: ET.Element | None, typ: str) -> Any:
    """Default value from a ``<value>`` element (vectors hold ``<value>`` children)."""
    if elem is None:
        if typ in VECTOR_TYPES:
            return []
        return {} if typ == "record" else _scalar("", typ)
    vtype = elem.get("type") or typ
    if vtype in VARIANT_TYPES:
        vtype = "string"
    children = elem.findall(f"{NS}value")
    if vtype in VECTOR_TYPES or vtype == "vector":
        return [_scalar(c.text, vtype if vtype != "vector" else "string") for c in children]
    return _scalar(elem.text, vtype)


def _allowed_value(text: str | None, types: tuple[str, ...]) -> Any:
    """An enum ``<value>`` typed by the first of ``types`` that reads it exactly.

    A parameter of several types (``<type>int</type><type>string</type>``)
    lists its allowed values as text: ``2`` is the int 2, ``true`` the bool
    True, an empty value the empty string (CASA's "take the default").
    """
    if len(types) == 1:
        return _scalar(text, types[0])
    text = "" if text is None else text.strip()
    bases = [t.replace("Vec", "").replace("Array", "") for t in types]
    for base in bases:
        if base in ("string", "path"):
            continue
        if base == "bool" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if base == "int":
            try:
                return int(text)
            except ValueError:
                pass
        if base in ("double", "float"):
            try:
                return float(text)
            except ValueError:
                pass
    if "string" in bases or "path" in bases:
        return text
    raise TaskXMLError(f"allowed value {text!r} fits none of the types {', '.join(types)}")


def _param(elem: ET.Element) -> ParamSpec:
    name = elem.get("name") or ""
    typ = elem.get("type") or ""
    if not name or not typ:
        raise TaskXMLError("<param> needs name and type attributes")
    types = tuple(t.text.strip() for t in elem.findall(f"{NS}type") if t.text)
    if typ in VARIANT_TYPES and not types:
        types = ("string", "int", "double", "bool", "record", "intVec", "doubleVec",
                 "stringVec", "boolVec")
    if not types:
        types = (typ,)
    for t in types:
        if t not in SCALAR_TYPES | VECTOR_TYPES:
            raise TaskXMLError(f"parameter {name!r}: unsupported type {t!r}")
    vel = elem.find(f"{NS}value")
    default = _value(vel, typ if typ not in VARIANT_TYPES else (vel.get("type") if vel is not None and vel.get("type") else "string"))
    allowed = None
    minimum = maximum = None
    ignorecase = elem.get("ignorecase", "false").lower() == "true"
    al = elem.find(f"{NS}allowed")
    if al is not None:
        kind = al.get("kind", "enum")
        if kind == "enum":
            allowed = tuple(_allowed_value(v.text, types) for v in al.findall(f"{NS}value"))
            ignorecase = ignorecase or al.get("ignorecase", "false").lower() == "true"
        elif kind == "range":
            for v in al.findall(f"{NS}value"):
                if v.get("range") == "min":
                    minimum = float(v.text)
                elif v.get("range") == "max":
                    maximum = float(v.text)
        else:
            raise TaskXMLError(f"parameter {name!r}: unknown <allowed kind={kind!r}>")
    return ParamSpec(
        name=name, type=typ, types=types, default=default,
        shortdescription=_text(elem.find(f"{NS}shortdescription")).strip(),
        description=_text(elem.find(f"{NS}description")),
        allowed=allowed, ignorecase=ignorecase, minimum=minimum, maximum=maximum,
        mustexist=elem.get("mustexist", "false").lower() == "true",
        subparam=elem.get("subparam", "false").lower() == "true",
    )


def _constraints(inp: ET.Element, params: dict[str, ParamSpec]) -> tuple[Constraint, ...]:
    out: list[Constraint] = []
    for block in inp.findall(f"{NS}constraints"):
        for when in block.findall(f"{NS}when"):
            pname = when.get("param")
            if pname not in params:
                raise TaskXMLError(f"<when param={pname!r}> names no parameter")
            for tag, negate in (("equals", False), ("notequals", True)):
                for eq in when.findall(f"{NS}{tag}"):
                    ptype = eq.get("type") or params[pname].types[0]
                    value = _scalar(eq.get("value"), ptype)
                    defaults = {}
                    for d in eq.findall(f"{NS}default"):
                        dname = d.get("param")
                        if dname not in params:
                            raise TaskXMLError(f"<default param={dname!r}> names no parameter")
                        dv = d.find(f"{NS}value")
                        dtype = params[dname].type
                        if dtype in VARIANT_TYPES:
                            dtype = dv.get("type", "string") if dv is not None else "string"
                        defaults[dname] = _value(dv, dtype)
                    out.append(Constraint(pname, value, defaults, negate))
    return tuple(out)


def read_task_xml(path: str | Path) -> TaskSpec:
    """Parse one task XML file into a :class:`TaskSpec`."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise TaskXMLError(f"{path}: not well-formed XML: {exc}") from exc
    task = root.find(f"{NS}task")
    if root.tag != f"{NS}casaxml" or task is None:
        raise TaskXMLError(f"{path}: expected <casaxml> with a <task> in the CASA namespace")
    inp = task.find(f"{NS}input")
    params = [_param(p) for p in (inp.findall(f"{NS}param") if inp is not None else [])]
    byname = {p.name: p for p in params}
    if len(byname) != len(params):
        raise TaskXMLError(f"{path}: duplicate parameter names")
    return TaskSpec(
        name=task.get("name", ""),
        category=task.get("category", ""),
        shortdescription=_text(task.find(f"{NS}shortdescription")).strip(),
        description=_text(task.find(f"{NS}description")),
        params=tuple(params),
        constraints=_constraints(inp, byname) if inp is not None else (),
        example=_text(task.find(f"{NS}example")),
        source=str(path),
    )
