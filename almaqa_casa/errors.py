"""The package's one exception base (pure; importable without CASA).

Every exception class almaqa_casa defines derives from :class:`AlmaqaError`,
so callers can catch "anything this package raised on purpose" in one
clause.  Classes that describe bad input also derive from ``ValueError``
(CASA's convention for bad parameters and bad files); classes that describe
a failed operation also derive from ``RuntimeError``::

    class CalApplyError(AlmaqaError, ValueError): ...
    class StepFailed(AlmaqaError, RuntimeError): ...
"""
from __future__ import annotations

__all__ = ["AlmaqaError", "InputError", "OperationError"]


class AlmaqaError(Exception):
    """Base of every exception almaqa_casa raises on purpose."""


class InputError(AlmaqaError, ValueError):
    """Delivered or user-given input is wrong; the message names the file (and line)."""


class OperationError(AlmaqaError, RuntimeError):
    """An operation could not be completed; the message says which and why."""
