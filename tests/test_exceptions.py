"""Every exception class the package defines derives from its one base, AlmaqaError."""
from __future__ import annotations

import ast
from pathlib import Path

import almaqa_casa
from almaqa_casa.errors import AlmaqaError

ROOT = Path(almaqa_casa.__file__).parent


def _exception_classes():
    """(module, class name) of every class in the package's sources whose bases name an
    Exception/Error (read from the source, so modules that need CASA are covered too)."""
    out = []
    for path in sorted(list(ROOT.rglob("*.py")) + list((ROOT.parent / "tasks").glob("*.py"))):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = [ast.unparse(b) for b in node.bases]
                if any(n.endswith(("Error", "Exception", "Failed", "Mismatch", "Busy"))
                       or n in ("Exception", "ValueError", "RuntimeError") for n in names):
                    out.append((path, node.name))
    return out


def test_every_exception_class_derives_from_almaqa_error():
    import importlib
    found = _exception_classes()
    assert len(found) > 20
    bad = []
    for path, name in found:
        rel = path.relative_to(ROOT.parent).with_suffix("")
        mod = ".".join(rel.parts)
        if mod.startswith("tasks."):
            mod = "almaqa_casa.private." + mod.split(".", 1)[1]
        cls = getattr(importlib.import_module(mod), name)
        if not issubclass(cls, AlmaqaError):
            bad.append(f"{mod}.{name}")
    assert not bad, bad


def test_parameter_errors_are_what_casa_raises():
    from almaqa_casa.taskdef import TaskParameterError
    assert issubclass(TaskParameterError, (AssertionError)) and issubclass(TaskParameterError,
                                                                           ValueError)
