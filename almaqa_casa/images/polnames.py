"""Names for polarization products and their companions (pure string functions).

``...cont.IQUV.pbcor.fits`` → ``...cont.P.pbcor.fits`` / ``...cont.A.pbcor.fits``
(fractional: ``...cont.P.frac.pbcor.fits``).  Computed on the uncorrected
image (``pbcor=False``) the ``pbcor`` layer is dropped (``...cont.P.fits``),
as the pipeline does for its POLI/POLA products.  Names the delivery parser
does not understand fall back to replacing the ``IQUV`` token.
"""
from __future__ import annotations

import re
from dataclasses import replace

from ..delivery import products
from ..delivery.naming import format_name, parse_name
from ..delivery.products import classify_name
from .fitsio import strip_fits_suffix

__all__ = ["POL_INPUT_STOKES", "is_pbcor_name", "output_names", "pb_candidates"]

#: Stokes tokens of inputs that can give P and A.
POL_INPUT_STOKES = ("IQUV", "IQU", "QU")
_TOKEN = re.compile(r"(?<=\.)(IQUV|IQU|QU)(?=\.|$)")


def is_pbcor_name(name: str) -> bool:
    """True if the name says the image is primary-beam corrected."""
    base = name.rstrip("/").split("/")[-1]
    f = classify_name(base)
    if f is not None:
        return f.role == "pbcor"
    return bool(re.search(r"\.pbcorr?(\.|$)", strip_fits_suffix(base)))


def _drop_pbcor(tokens: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in tokens if t not in ("pbcor", "pbcorr"))


def output_names(input_name: str, pbcor_used: bool) -> dict[str, str]:
    """File names (no folder) of the P, A and P/I products made from ``input_name``."""
    base = input_name.rstrip("/").split("/")[-1]
    p = parse_name(base)
    if p is not None and p.stokes in POL_INPUT_STOKES:
        layer = p.layer if pbcor_used else _drop_pbcor(p.layer)
        common = dict(layer=layer, ext="fits")
        return {
            "P": format_name(replace(p, stokes="P", **common)),
            "A": format_name(replace(p, stokes="A", **common)),
            "PF": format_name(replace(p, stokes="P", cmt=tuple(p.cmt) + ("frac",), **common)),
        }
    stem = strip_fits_suffix(base)
    if not pbcor_used:
        stem = re.sub(r"\.pbcorr?(?=\.|$)", "", stem)
    if _TOKEN.search(stem):
        return {k: _TOKEN.sub(v, stem, count=1) + ".fits"
                for k, v in (("P", "P"), ("A", "A"), ("PF", "P.frac"))}
    return {"P": stem + ".P.fits", "A": stem + ".A.fits", "PF": stem + ".P.frac.fits"}


def pb_candidates(input_name: str) -> list[str]:
    """Possible primary-beam file names (no folder) for a pbcor image, most likely first.

    The pairing rule of :mod:`almaqa_casa.delivery.products` (``pb``,
    ``pb.tt0``, ``flux``; the Stokes-I image's pb for IQUV), for messages;
    :func:`almaqa_casa.delivery.products.pb_for` picks from a listing.
    """
    return products.pb_candidates(input_name.rstrip("/").split("/")[-1])
