"""Fixtures for the image tests: run CASA in a temporary cwd."""
from __future__ import annotations

import pytest

import almaqa_casa  # noqa: F401  (configures CASA offline before casatools is used)


@pytest.fixture(autouse=True)
def _casa_cwd(tmp_path, monkeypatch):
    """Every image test runs with cwd in its own temporary folder."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
