"""Find a delivered script's demand for an exact CASA version, and lift it on request.

Manual calibration scripts re-solve the calibration, so they stop unless
run in the CASA that wrote them (restore.md §2.10)::

    if re.search('^5.1.1', casadef.casa_version) == None:
     sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 5.1.1')

    if re.search('^6.5.4', '.'.join([str(i) for i in casalith.version()[:-1]])) == None:
     sys.exit(...)

:func:`find_guards` (pure, reads no file, evaluates nothing) finds such
``if`` statements (a version source such as ``casadef.casa_version``,
``cu.version()``, ``casalith.version()`` or ``casa['build']['version']``,
a version literal, and a ``sys.exit``/``raise`` in one branch) and decides
whether each stops in the CASA at hand.  :func:`patch_text` returns the
script's text with the stopping test replaced by a constant that takes the
other branch, line numbers unchanged; the delivered script itself is never
edited (``ignoreversion=True`` runs the patched copy).
"""
from __future__ import annotations

import ast
import dataclasses
import re
import warnings

from ..errors import AlmaqaError

__all__ = [
    "Guard",
    "VersionMismatch",
    "blocking",
    "find_guards",
    "mismatch_message",
    "patch_text",
]

_SOURCES = ("casadef", "casa_version", "cu.version", "casalith", "casa['build']",
            'casa["build"]', "version_string", "casatools.version", "ctsys.version",
            "casatasks.version")
_VERSION_RE = re.compile(r"^\^?\d+(\\?\.\d+)*\$?$")
_STOPS = {"sys.exit", "exit", "quit", "os._exit", "os.abort"}


class VersionMismatch(AlmaqaError, RuntimeError):
    """A delivered script demands a CASA version other than the one at hand."""


@dataclasses.dataclass(frozen=True)
class Guard:
    """One version test of a script."""
    lineno: int
    end_lineno: int
    test: str                 # the test's source text
    versions: tuple[str, ...]  # literals as written, e.g. ('^5.1.1',)
    stop_in_body: bool        # the stop is in the ``if`` body (else: in ``else``)
    message: str              # the sys.exit text, if a literal

    @property
    def asked(self) -> str:
        """The version(s) asked for, readable: '5.1.1' or '4.2, 4.3 or 4.4'."""
        vs = [_plain(v) for v in self.versions]
        return vs[0] if len(vs) == 1 else ", ".join(vs[:-1]) + " or " + vs[-1]

    def satisfied_by(self, present: str) -> bool:
        """True when the test lets ``present`` (e.g. '6.7.6') go on."""
        hit = any(_matches(v, present) for v in self.versions)
        # 'if <no match>: stop' (stop in body) passes when a literal matches;
        # 'if <match>: ok else: stop' likewise.
        return hit


def _plain(literal: str) -> str:
    """'^5\\.1\\.1' -> '5.1.1'."""
    return literal.strip("^$").replace("\\", "")


def _names_version(src: str) -> bool:
    """The test reads a CASA version (a known source, or a name with 'version' in it)."""
    return any(s in src for s in _SOURCES) or re.search(r"version", src, re.I) is not None


def _matches(literal: str, present: str) -> bool:
    pat = literal if literal.startswith("^") else "^" + literal
    try:
        return re.search(pat, present) is not None
    except re.error:
        return present.startswith(_plain(literal))


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():     # old scripts: invalid escapes such as '^5\.1\.1'
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(text)


def _has_stop(nodes: list[ast.stmt]) -> tuple[bool, str]:
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Raise):
                return True, ""
            if isinstance(sub, ast.Call):
                name = ast.unparse(sub.func)
                if name in _STOPS:
                    msg = ""
                    if sub.args and isinstance(sub.args[0], ast.Constant) \
                            and isinstance(sub.args[0].value, str):
                        msg = sub.args[0].value
                    return True, msg
    return False, ""


def _version_literals(test: ast.expr) -> tuple[str, ...]:
    out = []
    for sub in ast.walk(test):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) \
                and _VERSION_RE.match(sub.value.strip()):
            out.append(sub.value.strip())
        elif isinstance(sub, (ast.List, ast.Tuple)) and sub.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, int)
                and not isinstance(e.value, bool) for e in sub.elts):
            out.append(".".join(str(e.value) for e in sub.elts))
    return tuple(out)


def find_guards(text: str) -> list[Guard]:
    """The exact-version tests of a script's text (empty if none or unparsable).

    Only ``if`` statements whose test names a CASA version source and a
    version literal, and one of whose branches stops the script, count.
    """
    try:
        tree = _parse(text)
    except SyntaxError:
        return _find_guards_lines(text)
    guards = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        src = ast.unparse(node.test)
        if not _names_version(src):
            continue
        versions = _version_literals(node.test)
        if not versions:
            continue
        in_body, msg = _has_stop(node.body)
        in_else, msg2 = _has_stop(node.orelse) if not in_body else (False, "")
        if not (in_body or in_else):
            continue
        guards.append(Guard(node.test.lineno, node.test.end_lineno or node.test.lineno, src,
                            versions, in_body, msg or msg2))
    return sorted(guards, key=lambda g: g.lineno)


_LINE_RE = re.compile(r"""^\s*if\s+.*re\.(search|match)\(\s*['"](\^?[\d.]+)['"]\s*,\s*"""
                      r"""casadef\.casa_version""")


def _find_guards_lines(text: str) -> list[Guard]:
    """Line-based fallback for scripts Python 3 cannot parse (CASA < 6, Python 2)."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _LINE_RE.match(line)
        if m and i + 1 < len(lines) and ("exit" in lines[i + 1] or "exit" in line):
            out.append(Guard(i + 1, i + 1, line.strip(), (m.group(2),), True, ""))
    return out


def blocking(guards: list[Guard], present: str) -> list[Guard]:
    """The guards that stop the script in CASA ``present`` ('6.7.6')."""
    return [g for g in guards if not g.satisfied_by(present)]


def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def patch_text(text: str, guards: list[Guard]) -> str:
    """``text`` with each guard's test replaced so that the non-stopping branch runs.

    Line numbers are kept (a multi-line test becomes ``(False`` + newlines +
    ``)``), and a note is appended at the end.

    Raises
    ------
    ValueError
        The script cannot be parsed as Python 3 (a guard cannot be lifted safely).
    """
    tree = _parse(text)   # raises SyntaxError for Python 2 scripts
    tests = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            tests[node.test.lineno, ast.unparse(node.test)] = node.test
    starts = _offsets(text)
    lines = text.splitlines(keepends=True)

    def pos(lineno: int, col: int) -> int:
        # ast offsets count UTF-8 bytes of the line
        return starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))

    edits = []
    for g in guards:
        node = tests.get((g.lineno, g.test))
        if node is None:
            raise ValueError(f"version test at line {g.lineno} not found")
        a = pos(node.lineno, node.col_offset)
        b = pos(node.end_lineno, node.end_col_offset)
        const = "False" if g.stop_in_body else "True"
        nl = node.end_lineno - node.lineno
        repl = const if nl == 0 else "(" + const + "\n" * nl + ")"
        edits.append((a, b, repl))
    out = text
    for a, b, repl in sorted(edits, reverse=True):
        out = out[:a] + repl + out[b:]
    if guards:
        if not out.endswith("\n"):
            out += "\n"
        out += "".join(f"# qa_restore ignoreversion: the CASA version test at line {g.lineno} "
                       f"(asks for {g.asked}) was disabled in this copy\n" for g in guards)
    return out


def mismatch_message(script: str | list[str], guards: list[Guard], present: str) -> str:
    """The error for script(s) stopped by a version test: asked, present, and the way on.

    ``script`` may be several scripts with the same demand (named once, by file name,
    in their common folder).
    """
    import os
    scripts = [script] if isinstance(script, str) else list(script)
    g = guards[0]
    where = ", ".join(f"line {x.lineno}" for x in guards)
    folder = os.path.dirname(scripts[0])
    same = all(os.path.dirname(s) == folder for s in scripts)
    names = ", ".join(os.path.basename(s) if same else s for s in scripts)
    inside = f" in {folder}" if same and folder else ""
    verb = "demands" if len(scripts) == 1 else "demand"
    return (f"{names}{inside} {verb} CASA {g.asked} ({where}: {g.test}), but this is CASA "
            f"{present}. Manually calibrated data are re-calibrated by "
            f"{'this script' if len(scripts) == 1 else 'these scripts'}, and results may differ "
            "in another CASA version; to run anyway with the version test disabled in a "
            "patched copy (the delivered script is not changed), set ignoreversion=True; "
            f"otherwise run scriptForPI.py in CASA {g.asked}.")
