"""The ``almaqa`` command: every task from its XML, plus ``almaqa synth``.

What a person at a terminal sees: one line naming the run's CASA log file,
the progress (qa_restore), then a short summary; CASA's own console output
(C++ warnings, prints of casatasks, worker processes) goes to that log file
and to the terminal only with ``-v``.  ``--json`` prints the result dict
alone on stdout.

The log: one new file per run, ``<tmp>/almaqa_casa-<uid>/<task>-<time>-<pid>.log``
(never in the working directory); ``--logfile F`` or ``$ALMAQA_CASALOG``
choose another.  Its path is also the result's ``logfile``.

Exit status: 0 the task succeeded; 1 the task failed (one line, "see the
log"); 2 a user mistake: an unknown option or task, a value the XML rejects,
input the task cannot use (an error that is both an ``AlmaqaError`` and a
``ValueError``), one line and no traceback (the traceback is in the log).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from almaqa_casa.casaenv.console import capture_console
from almaqa_casa.casaenv.offline import (
    RUNLOG_ENV,
    CASAMissingError,
    MeasuresDataError,
    new_logfile,
    user_logfile,
)
from almaqa_casa.errors import AlmaqaError
from almaqa_casa.log import announce_logfile
from almaqa_casa.taskdef.cli import arguments_from_cli, make_parser, normalise_argv, suggest, unknown_options
from almaqa_casa.taskdef.params import TaskParameterError, resolve_arguments
from almaqa_casa.taskdef.registry import task_specs
from almaqa_casa.taskdef.summary import summarize
from almaqa_casa.taskdef.xmlspec import TaskSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "is_user_error", "main", "run_task"]


def _usage() -> str:
    lines = ["usage: almaqa <task> [--param value ...] [--json] [-v] [--logfile FILE]",
             "       almaqa <task> --help", "", "tasks:"]
    for name, spec in task_specs().items():
        lines.append(f"  {name:16s} {spec.shortdescription}")
    lines.append(f"  {'synth':16s} build a synthetic ALMA delivery with CASA's simulator")
    lines += ["", "Without --json a short summary is printed; the CASA log of the run (one file "
              "per run) is named at the start.", "Exit status: 0 success, 1 the task failed, "
              "2 bad arguments or unusable input."]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    return str(obj)


def is_user_error(exc: BaseException) -> bool:
    """A mistake the user can fix from the message alone: a parameter the XML
    rejects, or input the task cannot use (an AlmaqaError that is a ValueError)."""
    return isinstance(exc, TaskParameterError) or (
        isinstance(exc, AlmaqaError) and isinstance(exc, ValueError))


def _err(name: str, text: str) -> None:
    """One line on stderr: ``almaqa <task>: <text>`` (a multi-line message is joined)."""
    print(f"almaqa {name}: " + " ".join(str(text).split()), file=sys.stderr, flush=True)


def _choose_logfile(given: str | None, name: str) -> str:
    """``--logfile``, else ``$ALMAQA_CASALOG``, else a new file for this run."""
    if given:
        return os.path.abspath(os.path.expanduser(given))
    return user_logfile() or new_logfile(name)


def _use_logfile(path: str | None, env: str | None = None) -> None:
    """Make ``path`` this process's CASA log (before or after CASA's import);
    ``env`` is the value ``$ALMAQA_RUNLOG`` gets (None: removed)."""
    if env is None:
        os.environ.pop(RUNLOG_ENV, None)
    else:
        os.environ[RUNLOG_ENV] = env       # read by our site config at casatools' import
    if path and "casatasks" in sys.modules:  # CASA already up (a session, or tests)
        from casatasks import casalog
        if casalog.logfile() != path:
            casalog.setlogfile(path)


def _current_casalog() -> str | None:
    if "casatasks" not in sys.modules:
        return None
    from casatasks import casalog
    return str(casalog.logfile() or "") or None


def _log_traceback(exc: BaseException) -> None:
    """The traceback of an error outside the task wrapper, into the CASA log."""
    import traceback

    from almaqa_casa.log import post
    post("Traceback (for the record):\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(), "INFO", "almaqa")


def _resolve_task(task_or_spec: Any) -> tuple[TaskSpec, Any]:
    """(spec, a function returning the callable task) for an XMLTask or a TaskSpec."""
    if isinstance(task_or_spec, TaskSpec):
        spec = task_or_spec

        def build():
            import almaqa_casa
            return getattr(almaqa_casa, spec.name)
        return spec, build
    return task_or_spec.spec, (lambda: task_or_spec)


def run_task(task: Any, argv: list[str]) -> int:
    """Run one task (an :class:`~almaqa_casa.taskdef.XMLTask` or its
    :class:`~almaqa_casa.taskdef.TaskSpec`) from command-line words."""
    spec, build = _resolve_task(task)
    name = spec.name
    problems = unknown_options(argv, spec)
    if problems:
        _err(name, "error: " + "; ".join(problems))
        return EXIT_USAGE
    parser = make_parser(spec, prog=f"almaqa {name}")
    try:
        ns = parser.parse_args(normalise_argv(argv, spec))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        kwargs = arguments_from_cli(spec, ns)
        resolve_arguments(spec, kwargs)     # types, enums, ranges, paths: before CASA starts
    except TaskParameterError as exc:
        _err(name, f"error: {exc}")
        return EXIT_USAGE
    verbose = bool(ns.almaqa_verbose)
    logfile = _choose_logfile(ns.logfile, name)
    try:
        os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
    except OSError as exc:
        _err(name, f"error: --logfile {logfile}: {exc}")
        return EXIT_USAGE
    # called from Python (tests, scripts): give the session its log back afterwards
    before, before_env = _current_casalog(), os.environ.get(RUNLOG_ENV)
    _use_logfile(logfile, logfile)
    announce_logfile(logfile, f"almaqa {name}")
    try:
        result = _run_captured(name, build, kwargs, logfile, verbose)
    finally:
        if before is not None:
            _use_logfile(before, before_env)
    if isinstance(result, _Failure):
        return result.code
    if ns.json:
        print(json.dumps(result, indent=2, default=_jsonable), flush=True)
    else:
        print("\n".join(summarize(name, result, verbose=verbose)), flush=True)
    failed = isinstance(result, dict) and result.get("status") in ("failed", "error")
    return EXIT_FAILED if failed else EXIT_OK


class _Failure:
    """The exit status of a run that raised (the one-line message is printed)."""

    def __init__(self, code: int):
        self.code = code


def _run_captured(name: str, build: Any, kwargs: dict, logfile: str, verbose: bool) -> Any:
    """The task's result, or a :class:`_Failure` after printing one line."""
    error: BaseException | None = None
    result: Any = None
    with capture_console(logfile, echo=verbose):
        try:
            callable_task = build()
            _use_logfile(logfile, logfile)  # a user config may name another log
            result = callable_task(**kwargs)
        except (CASAMissingError, MeasuresDataError) as exc:
            error = exc
        except Exception as exc:
            error = exc
            if not getattr(exc, "_almaqa_logged", False) and "casatasks" in sys.modules:
                _log_traceback(exc)   # the task wrapper logs those raised by the body
        except KeyboardInterrupt as exc:
            error = exc
    if error is None:
        return result
    if isinstance(error, KeyboardInterrupt):
        _err(name, f"interrupted; a re-run resumes where it stopped (see the log: {logfile})")
        return _Failure(130)
    if isinstance(error, (CASAMissingError, MeasuresDataError)):
        _err(name, f"error: {error}")
        return _Failure(EXIT_FAILED)
    if is_user_error(error):
        _err(name, f"error: {error}")
        return _Failure(EXIT_USAGE)
    _err(name, f"failed: {type(error).__name__}: {error} (see the log: {logfile})")
    return _Failure(EXIT_FAILED)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    if name == "synth":
        from almaqa_casa.synth.cli import main as synth_main
        return synth_main(rest)
    specs = task_specs()
    if name not in specs:
        near = suggest(name, [*specs, "synth"])
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        print(f"almaqa: unknown task {name!r}{hint}\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    return run_task(specs[name], rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
