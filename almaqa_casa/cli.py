"""The ``almaqa`` command: every task from its XML, plus ``almaqa synth``.

Exit status: 0 the task succeeded, 1 the task failed, 2 bad arguments.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from typing import Any

import almaqa_casa
from almaqa_casa.taskdef import TaskParameterError
from almaqa_casa.taskdef.cli import arguments_from_cli, make_parser, normalise_argv

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _usage() -> str:
    lines = ["usage: almaqa <task> [--param value ...] [--json] [--logfile FILE]",
             "       almaqa <task> --help", "", "tasks:"]
    for name, task in almaqa_casa.TASKS.items():
        lines.append(f"  {name:16s} {task.spec.shortdescription}")
    lines.append(f"  {'synth':16s} build a synthetic ALMA delivery with CASA's simulator")
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool):
    """With --json, stdout carries the JSON alone: what CASA's C++ code (and
    worker processes) print while the task runs goes to stderr instead."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_task(task, argv: list[str]) -> int:
    """Run one task (an :class:`~almaqa_casa.taskdef.XMLTask`) from command-line words."""
    name = task.spec.name
    parser = make_parser(task.spec, prog=f"almaqa {name}")
    try:
        ns = parser.parse_args(normalise_argv(argv, task.spec))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        kwargs = arguments_from_cli(task.spec, ns)
    except TaskParameterError as exc:
        print(f"almaqa {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if ns.logfile:
        from casatasks import casalog
        casalog.setlogfile(ns.logfile)
    try:
        with _stdout_to_stderr(ns.json):
            result = task(**kwargs)
    except TaskParameterError as exc:
        print(f"almaqa {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(f"almaqa {name}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if ns.json:
        print(json.dumps(result, indent=2, default=_jsonable))
    elif result is not None:
        print(result)
    failed = isinstance(result, dict) and result.get("status") in ("failed", "error")
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    if name == "synth":
        from almaqa_casa.synth.cli import main as synth_main
        return synth_main(rest)
    if name not in almaqa_casa.TASKS:
        print(f"almaqa: unknown task {name!r}\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    return run_task(almaqa_casa.TASKS[name], rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
