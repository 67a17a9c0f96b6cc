"""Delivery validation (qa_validate): layout, naming, product sets, FITS, image figures.

``validate_delivery(path, ...)`` returns a :class:`~.run.Validation`
(findings with stable codes, members, products, image figures, thumbnails);
``write_reports`` writes ``validation.json`` and ``validation.html``.
"""
from .findings import CODES, Finding, summarize
from .run import CHECKS, Validation, parse_checks, validate_delivery, write_reports

__all__ = [
           "CHECKS",
           "CODES",
           "Finding",
           "Validation",
           "parse_checks",
           "summarize",
           "validate_delivery",
           "write_reports",
]
