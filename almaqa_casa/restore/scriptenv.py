"""The CASA-6 namespace in which delivered ALMA scripts run (I/O: runs code).

Manually calibrated deliveries come with scripts written for the CASA of
their time (``scriptForCalibration.py`` per EB, ``scriptForFluxCalibration.py``,
``scriptForImagingPrep.py`` ...).  scriptForPI.py ``execfile``-s them in the
CASA shell's globals.  :func:`make_namespace` builds the equivalent of that
shell for one script: the casatasks tasks (``wvrgcal`` included), casatools
tool *instances* under the names old scripts use (``tb``, ``ms``, ``msmd``,
``ia``, ``cb``, ``qa``, ``me`` ...), the tool classes under their CASA-5
names (``tbtool``, ``msmdtool`` ...), ``casalog``, ``execfile``, ``T``/``F``,
``applyonly = True`` and the version helpers scripts test
(``casadef.casa_version``, ``casaVersion``, ``cu.version()``,
``casalith.version()``, ``casa['build']['version']``).  ``import casalith`` / ``import casadef``
inside a script give the same helpers, and ``from recipes.almahelpers import
fixsyscaltimes, tsysspwmap`` (CASA <= 5) finds CASA 6's ``casarecipes``
(the ``casarecipes`` package from PyPI, if installed).

:func:`run_script` executes one script in a fresh namespace, in the current
process, with the working folder as cwd (restored afterwards), the script's
printed output and CASA log messages captured in a log file beside it, and
any failure (an exception, ``sys.exit()``, a syntax error) turned into a
result with the message and traceback instead of an escape.

``mysteps``: CSG scripts run every step unless a global ``mysteps`` lists
some; the namespace is fresh for every script, so nothing set by the caller
leaks in and every step runs (as scriptForPI.py intends), unless ``steps`` is
given explicitly.
"""
from __future__ import annotations

import builtins
import contextlib
import os
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TOOL_CLASSES",
    "TOOL_INSTANCES",
    "ScriptResult",
    "casa_version",
    "close_tools",
    "make_namespace",
    "run_script",
]

#: instance name -> casatools class name (the CASA shell's tool instances)
TOOL_INSTANCES = {
    "tb": "table", "ms": "ms", "msmd": "msmetadata", "ia": "image", "cb": "calibrater",
    "qa": "quanta", "me": "measures", "im": "imager", "sm": "simulator", "af": "agentflagger",
    "cl": "componentlist", "rg": "regionmanager", "cs": "coordsys", "fn": "functional",
    "at": "atmosphere", "ca": "calanalysis", "vp": "vpmanager", "sl": "spectralline",
    "mt": "mstransformer", "po": "imagepol", "imd": "imagemetadata", "sdms": "singledishms",
    "cu": "utils",
}
#: CASA-5 tool class names -> casatools class name
TOOL_CLASSES = {
    "tbtool": "table", "mstool": "ms", "msmdtool": "msmetadata", "iatool": "image",
    "cbtool": "calibrater", "qatool": "quanta", "metool": "measures", "imtool": "imager",
    "smtool": "simulator", "aftool": "agentflagger", "cltool": "componentlist",
    "rgtool": "regionmanager", "cstool": "coordsys", "fntool": "functional",
    "attool": "atmosphere", "catool": "calanalysis", "vptool": "vpmanager",
    "sltool": "spectralline", "mttool": "mstransformer", "potool": "imagepol",
    "cutool": "utils",
}


def casa_version() -> tuple[list[int], str]:
    """([major, minor, patch, build], '6.7.6-14') of the running casatools."""
    import casatools
    v = [int(x) for x in casatools.version()]
    return v, casatools.version_string()


def _version_helpers() -> dict[str, Any]:
    """casadef, casalith and the ``casa`` dict, reporting the CASA at hand."""
    v, vs = casa_version()
    dotted = ".".join(str(x) for x in v[:3])
    casadef = types.ModuleType("casadef")
    casadef.casa_version = dotted
    casadef.subversion_revision = str(v[3]) if len(v) > 3 else ""
    casadef.build_time = ""
    casadef.python_library_directory = os.path.dirname(os.__file__)

    def _compare(comparitor: str, version: Iterable[int]) -> bool:
        import operator
        ops = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
               "<": operator.lt, "<=": operator.le}
        want = list(version)
        return ops[comparitor](v[:len(want)], want)

    casalith = types.ModuleType("casalith")
    casalith.version = lambda: list(v)
    casalith.version_string = lambda: vs
    casalith.compare_version = _compare
    casa = {"build": {"version": vs, "number": str(v[3]) if len(v) > 3 else "",
                      "time": "", "dist": ""},
            "source": {"url": "", "revision": ""},
            "dirs": {"root": "", "data": "", "rc": os.path.expanduser("~/.casa")},
            "flags": {}, "state": {"startup": False}, "files": {}}
    # casaVersion: the CASA 4.x/5.0 shell global tested by scripts of that time
    return {"casadef": casadef, "casalith": casalith, "casa": casa, "casaVersion": dotted}


def _tasks() -> dict[str, Any]:
    import casatasks
    names = getattr(casatasks, "__all__", None) or [n for n in dir(casatasks)
                                                     if not n.startswith("_")]
    out = {}
    for n in names:
        obj = getattr(casatasks, n, None)
        if obj is not None and not isinstance(obj, types.ModuleType):
            out[n] = obj
    return out


def _tool_class(casatools: Any, cls: str) -> Any:
    c = getattr(casatools, cls, None)
    if isinstance(c, types.ModuleType):       # casatools.utils is a module holding utils
        c = getattr(c, cls, None)
    return c if isinstance(c, type) else None


def _tools() -> dict[str, Any]:
    import casatools
    out: dict[str, Any] = {}
    for inst, cls in TOOL_INSTANCES.items():
        c = _tool_class(casatools, cls)
        if c is not None:
            try:
                out[inst] = c()
            except Exception:  # a tool that cannot be made here is simply absent
                pass
    for old, cls in TOOL_CLASSES.items():
        c = _tool_class(casatools, cls)
        if c is not None:
            out[old] = c
    for cls in set(TOOL_INSTANCES.values()) | set(TOOL_CLASSES.values()):
        c = _tool_class(casatools, cls)
        if c is not None and cls not in ("ms", "utils"):   # 'ms' is the instance name
            out.setdefault(cls, c)
    return out


def close_tools(ns: Mapping[str, Any]) -> None:
    """Close the tool instances of a namespace (tables and MSs left open by a script)."""
    for name in ("tb", "ms", "msmd", "ia", "cb", "im", "sm", "ca", "po", "imd", "sdms", "sl"):
        f = getattr(ns.get(name), "close", None)
        if callable(f):
            try:
                f()
            except Exception:
                pass


def make_namespace(script_path: str = "<script>", applyonly: bool = True,
                   steps: list[int] | None = None,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A fresh CASA-6 globals dict for one delivered script.

    Parameters
    ----------
    script_path
        Path of the script (``__file__``).
    applyonly
        The global scriptForPI.py sets: per-EB scripts skip analysisUtils
        diagnostics when True.
    steps
        If given, ``mysteps`` (CSG scripts run only these steps); by default
        ``mysteps`` is absent and every step runs.
    extra
        More globals (e.g. scriptForPI options such as ``SPACESAVING``).
    """
    import re

    import numpy
    from casatasks import casalog

    helpers = _version_helpers()
    ns: dict[str, Any] = {"__name__": "__main__", "__file__": str(script_path),
                          "__doc__": None}
    # builtins with an import hook for the CASA-5/monolithic modules scripts import
    bdict = dict(vars(builtins))
    real_import = builtins.__import__
    shims = {"casalith": helpers["casalith"], "casadef": helpers["casadef"]}

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name in shims:
            return shims[name]
        if level == 0 and (name == "recipes" or name.startswith("recipes.")):
            # CASA <= 5 'recipes' (fixsyscaltimes, tsysspwmap) is CASA 6's casarecipes
            try:
                return real_import("casa" + name, globals, locals, fromlist, level)
            except ImportError as exc:
                raise ImportError(f"{name}: CASA 6 has it as casa{name}, which is not "
                                  f"installed (pip install casarecipes): {exc}") from None
        return real_import(name, globals, locals, fromlist, level)

    bdict["__import__"] = _import
    ns["__builtins__"] = bdict
    ns.update(_tasks())
    ns.update(_tools())
    ns.update(helpers)

    def execfile(filename, globals=None, locals=None):
        """CASA 6's execfile: run ``filename`` in ``globals`` (default: this script's)."""
        g = ns if globals is None else globals
        g.setdefault("__builtins__", bdict)
        with open(filename) as fh:
            code = compile(fh.read(), str(filename), "exec")
        exec(code, g, g if locals is None else locals)

    ns.update({
        "casalog": casalog, "execfile": execfile, "applyonly": bool(applyonly),
        "T": True, "F": False, "true": True, "false": False,
        "os": os, "sys": sys, "re": re, "time": time, "np": numpy, "numpy": numpy,
    })
    if steps is not None:
        ns["mysteps"] = list(steps)
    if extra:
        ns.update(extra)
    return ns


class ScriptResult(dict):
    """Outcome of :func:`run_script`: status ('ok' | 'failed'), seconds, error, traceback, log."""


@contextlib.contextmanager
def _casalog_to(logfile: str | None):
    """Send CASA log messages to ``logfile`` for the duration, then back."""
    from casatasks import casalog
    orig = casalog.logfile()
    if logfile is None:
        yield
        return
    casalog.setlogfile(str(logfile))
    try:
        yield
    finally:
        casalog.setlogfile(orig)
        casalog.origin("qa_restore")


def run_script(script: str | os.PathLike, cwd: str | os.PathLike, logfile: str | os.PathLike,
               *, text: str | None = None, applyonly: bool = True,
               steps: list[int] | None = None, extra: Mapping[str, Any] | None = None,
               post: Callable[[str, str], None] | None = None) -> ScriptResult:
    """Run one delivered script in a fresh CASA-6 namespace, in ``cwd``.

    The script's ``print`` output, warnings and the CASA log messages it
    causes go to ``logfile`` (appended); a traceback, if any, too.  The
    current directory, ``sys.argv`` and stdout/stderr are restored
    afterwards, the namespace's tool instances closed.

    Parameters
    ----------
    script
        Path of the script (its name appears in tracebacks).
    text
        The code to run instead of the file's (a patched copy's text).
    post
        ``post(message, level)`` for progress messages to the main log.

    Returns
    -------
    ScriptResult
        ``status`` 'ok' or 'failed'; on failure ``error`` (one line) and
        ``traceback``.  ``KeyboardInterrupt`` is not caught.
    """
    script = str(script)
    logfile = str(logfile)
    res = ScriptResult(script=script, log=logfile, status="failed", error="", traceback="")
    t0 = time.perf_counter()
    if text is None:
        text = Path(script).read_text(errors="replace")
    here = os.getcwd()
    argv = list(sys.argv)
    ns: dict[str, Any] = {}
    with open(logfile, "a", buffering=1, errors="replace") as log:
        log.write(f"# qa_restore: running {script}\n# cwd: {os.path.abspath(cwd)}\n"
                  f"# started {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC\n")
        log.flush()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SyntaxWarning)
                code = compile(text, script, "exec")
            for w in caught:   # old scripts: invalid escapes ('^5\.1\.1') and the like
                log.write(f"# compile: {w.category.__name__}: {w.message} (line {w.lineno})\n")
        except SyntaxError as exc:
            hint = ""
            if "print" in (exc.text or "") or "Missing parentheses" in str(exc):
                hint = " (Python 2 code, written for CASA < 6)"
            res["error"] = f"{script}: cannot be compiled{hint}: {exc.msg} (line {exc.lineno})"
            res["traceback"] = "".join(traceback.format_exception_only(type(exc), exc))
            log.write(res["traceback"])
            res["seconds"] = time.perf_counter() - t0
            return res
        try:
            ns = make_namespace(script, applyonly=applyonly, steps=steps, extra=extra)
            os.chdir(cwd)
            sys.argv = [script]
            with _casalog_to(logfile), contextlib.redirect_stdout(log), \
                    contextlib.redirect_stderr(log):
                try:
                    exec(code, ns)
                finally:
                    close_tools(ns)
            res["status"] = "ok"
        except KeyboardInterrupt:
            raise
        except SystemExit as exc:
            msg = exc.code if exc.code is not None else 0
            res["error"] = f"{script} stopped with sys.exit({msg!r})"
            res["traceback"] = traceback.format_exc()
        except BaseException as exc:
            res["error"] = f"{script}: {type(exc).__name__}: {exc}"
            res["traceback"] = traceback.format_exc()
        finally:
            os.chdir(here)
            sys.argv = argv
            res["seconds"] = time.perf_counter() - t0
            if res["traceback"]:
                log.write("\n# qa_restore: the script failed\n" + res["traceback"])
            log.write(f"# qa_restore: {res['status']} after {res['seconds']:.1f} s\n")
    if post is not None:
        post(f"{os.path.basename(script)}: {res['status']} in {res['seconds']:.1f} s"
             + (f": {res['error']}" if res["error"] else ""),
             "INFO" if res["status"] == "ok" else "SEVERE")
    return res
