"""Fixtures for the framework tests: the test-only qa_toytask and a private casalog file."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401  (offline CASA before casatasks)
from almaqa_casa.taskdef import build_task, read_task_xml

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def toytask():
    sys.path.insert(0, str(HERE))
    try:
        spec = read_task_xml(HERE / "data" / "qa_toytask.xml")
        yield build_task(spec, body_module="toytask_body")
    finally:
        sys.path.remove(str(HERE))


@pytest.fixture
def infile(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    return str(path)


@pytest.fixture
def casalog_file(tmp_path):
    """Route casalog to a temporary file for one test; yields a reader."""
    from casatasks import casalog
    old = casalog.logfile()
    path = tmp_path / "test.log"
    casalog.setlogfile(str(path))
    try:
        yield lambda: path.read_text()
    finally:
        casalog.setlogfile(old)
