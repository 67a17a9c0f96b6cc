"""Small helpers for the synth tests (no dependency on other engineers' parsers)."""
from __future__ import annotations

import ast
import glob
import os
import re
import tarfile

CALAPPLY_RE = re.compile(
    r"^applycal\(vis='[^']+', field='[^']*', intent='[^']*', spw='[^']*', antenna='[^']*', "
    r"gaintable=\[.*\], gainfield=\[.*\], spwmap=\[.*\], interp=\[.*\], calwt=\[.*\]\)$")

KEYS = ["vis", "field", "intent", "spw", "antenna", "gaintable", "gainfield", "spwmap", "interp", "calwt"]


def parse_calapply(path: str):
    """Parse a calapply.txt without eval: literal keyword arguments only."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    assert lines[0].startswith("# Apply file for "), lines[0]
    out = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        assert CALAPPLY_RE.match(line), f"{path}:{n}: {line}"
        call = ast.parse(line, mode="eval").body
        assert isinstance(call, ast.Call) and call.func.id == "applycal" and not call.args
        kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        assert list(kw) == KEYS, list(kw)
        n_t = len(kw["gaintable"])
        for k in ("gainfield", "spwmap", "interp", "calwt"):
            assert len(kw[k]) == n_t, (k, kw)
        out.append(kw)
    return out


def parse_cont_dat(text: str):
    """{field: {spw: [(lo_ghz, hi_ghz, frame)]}} from a pipeline cont.dat."""
    out, field, spw = {}, None, None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("Field:"):
            field = line.split(":", 1)[1].strip()
            out[field] = {}
        elif line.startswith("SpectralWindow:"):
            spw = int(line.split(":", 1)[1].split()[0])
            out[field][spw] = []
        else:
            m = re.match(r"^([0-9.]+)~([0-9.]+)GHz (LSRK|TOPO|SOURCE)$", line)
            assert m, line
            out[field][spw].append((float(m.group(1)), float(m.group(2)), m.group(3)))
    return out


def tar_members(path: str):
    with tarfile.open(path) as tf:
        return tf.getnames()


def extract(path: str, dest: str):
    with tarfile.open(path) as tf:
        tf.extractall(dest, filter="data")


PRODUCT_RE = re.compile(
    r"^member\.(uid___A001_X[0-9a-f]+_X[0-9a-f]+)\.(?P<field>.+)_(?P<type>sci|bp|ph|chk|pol)"
    r"\.spw(?P<spws>\d+(?:_\d+)*)\.(?P<imtype>mfs|cont|cube)\.(?P<stokes>I|IQUV)"
    r"(?P<selfcal>\.selfcal)?\.(?P<layer>pbcor\.fits|pb\.fits\.gz|mask\.fits\.gz)$")


def products(member: str):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(member, "product", "*")))


def calls(text: str, filename: str = "<script>") -> list[tuple[str, dict]]:
    """(function name, literal keyword arguments) of every call in a script,
    in source order; read with ``ast`` (never executed)."""
    tree = ast.parse(text, filename)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            kw = {}
            for k in node.keywords:
                try:
                    kw[k.arg] = ast.literal_eval(k.value)
                except ValueError:
                    kw[k.arg] = None
            out.append((node.lineno, node.col_offset, node.func.id, kw))
    return [(name, kw) for _l, _c, name, kw in sorted(out)]


def ppr_sessions(path: str) -> dict[str, list[str]]:
    """``SESSION_<k>`` -> EB UIDs (``uid___A002_...``) of a PPR's ProcessingIntents."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    out = {}
    for req in root.iter("ProcessingRequest"):
        for intents in req.find("ProcessingIntents").iter("Intents"):
            key = intents.find("Keyword").text.strip()
            if key.startswith("SESSION_"):
                val = intents.find("Value").text.strip()
                out[key] = [v.strip().replace("uid://", "uid___").replace("/", "_") for v in val.split(" | ")]
    return out


def member_folder(result: dict) -> str:
    return result["member_dir"]


def assignments(text: str) -> dict:
    """Module-level ``name = <literal>`` assignments of a script (``ast``)."""
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def imaging_prep_inputs(text: str) -> list[str]:
    """The MSs a ``scriptForImagingPrep.py`` concatenates (literal or a named list)."""
    tree = ast.parse(text)
    names = assignments(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "concat":
            for k in node.keywords:
                if k.arg == "vis":
                    if isinstance(k.value, ast.Name):
                        return names[k.value.id]
                    return ast.literal_eval(k.value)
    raise AssertionError("no concat(vis=...) call")
