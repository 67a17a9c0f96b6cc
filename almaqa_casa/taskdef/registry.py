"""Find the task XML files and their bodies, and build the task callables.

Reading the XML is pure (no CASA); :func:`build_task` imports the body,
which imports CASA, so it runs only when a task is first used.
"""
from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path

from .wrapper import XMLTask
from .xmlspec import TaskSpec, read_task_xml


def xml_dir() -> Path:
    """The folder of the task XML files.

    Installed: ``almaqa_casa/xml`` (setup.cfg maps the source tree's ``xml/``
    there); in a source checkout or an editable install: ``<repo>/xml``.
    """
    package = Path(str(resources.files("almaqa_casa")))
    for candidate in (package / "xml", package.parent / "xml"):
        if any(candidate.glob("qa_*.xml")):
            return candidate
    raise FileNotFoundError(f"no task XML files in {package / 'xml'} or {package.parent / 'xml'}")


def task_specs(folder: Path | None = None) -> dict[str, TaskSpec]:
    """Every ``qa_*.xml`` interface in ``folder``, by task name."""
    folder = xml_dir() if folder is None else Path(folder)
    specs = {}
    for path in sorted(folder.glob("*.xml")):
        spec = read_task_xml(path)
        specs[spec.name] = spec
    return specs


def build_task(spec: TaskSpec, body_module: str | None = None) -> XMLTask:
    """Bind ``spec`` to the function of the same name in ``body_module``.

    The default module is ``almaqa_casa.private.task_<name>`` (the ``tasks/`` folder,
    installed where casatasks keeps its bodies, so xml-casa generated wrappers find it).
    """
    from ..casaenv import import_casatasks
    import_casatasks()   # a clear error (missing package, no measures data) before the body's import
    module = importlib.import_module(body_module or f"almaqa_casa.private.task_{spec.name}")
    try:
        body = getattr(module, spec.name)
    except AttributeError:
        raise ImportError(f"{module.__name__} defines no function {spec.name}() "
                          f"for the interface {spec.source}") from None
    return XMLTask(spec, body)


def task_names(folder: Path | None = None) -> list[str]:
    """The names of the package's tasks, from the XML files alone (pure), sorted."""
    return sorted(task_specs(folder))


def build_all() -> dict[str, XMLTask]:
    """All tasks of the package, in name order."""
    return {name: build_task(spec) for name, spec in task_specs().items()}
