"""Polarization arithmetic on numpy blocks: P, angle, debiasing, thresholds, masks, noise.

Pure functions (no I/O) used by :mod:`almaqa_casa.images.polmaps` on each
streamed block of Stokes Q and U (and I).  The formulas are CASA's
(reference images.md §1): ``P = sqrt(Q² + U²)`` as ``immath(mode='lpoli')``;
``A = 0.5·atan2(U, Q)`` in degrees in [-90, 90] as ``immath(mode='pola')``
(LEL ``pa(U, Q)``); debiased ``sqrt(Q² + U² - σ_P²)``, undefined (NaN) where
the argument is negative; ``polithresh`` masks where the *non-debiased* P is
below the threshold (``mask0 = P >= thresh`` in immath).  Masked pixels are
NaN, which is how exportfits writes masked pixels.

When Q and U have different noise, ``σ_P = sqrt((σ_Q² + σ_U²) / 2)`` (equal
to σ_Q when they agree, so immath's single-σ formula is the special case).
Beyond immath: a primary-beam mask (``pblimit``), and P/I only where Stokes
I is above a threshold and P/I <= 1; :func:`pol_block` counts the pixels
each mask removes so the result can say what was masked and why.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "MASK_REASONS",
    "RAD2HALFDEG",
    "Threshold",
    "parse_sigma",
    "parse_threshold",
    "pol_block",
    "robust_noise",
    "robust_sigma",
    "sigma_p",
]

#: Why a pixel of P, A or P/I is masked, in the order the reasons are tested
#: (a pixel counts under the first that applies).
MASK_REASONS = ("input", "pblimit", "polithresh", "debias", "stokes_i", "above_one")

#: atan2 radians → half-angle degrees.
RAD2HALFDEG = np.float32(90.0 / np.pi)

_SIGMA_RE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:sigma|σ)\s*$",
                       re.IGNORECASE)
_NUMBER_RE = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")


@dataclass(frozen=True)
class Threshold:
    """A parsed ``polithresh``: ``kind`` 'flux' (``value`` in ``unit``) or 'sigma' (multiple)."""

    kind: str
    value: float
    unit: str = ""
    text: str = ""


def _quantity(text: str) -> tuple[float, str]:
    """Split '30uJy/beam' into (30.0, 'uJy/beam') with casatools quanta (no I/O)."""
    from casatools import quanta

    qa = quanta()
    if not qa.isquantity(text):
        raise InputError(f"'{text}' is not a quantity")
    q = qa.quantity(text)
    return float(q["value"]), str(q["unit"])


def parse_threshold(text: str, param: str = "polithresh") -> Threshold | None:
    """Parse ``polithresh``: ``''`` → None, ``'5sigma'``, or a flux density with units.

    Raises
    ------
    ValueError
        For a number without units (immath crashes on that) or an unreadable
        value; the message says what to write instead.
    """
    if text is None or not str(text).strip():
        return None
    s = str(text).strip()
    m = _SIGMA_RE.match(s)
    if m:
        n = float(m.group(1))
        if not n > 0:
            raise InputError(f"{param}='{s}': the multiple of sigma must be positive")
        return Threshold("sigma", n, "", s)
    if _NUMBER_RE.match(s):
        raise InputError(
            f"{param}='{s}' has no unit: give a flux density per beam such as "
            f"'{s}Jy/beam' or '30uJy/beam', or a multiple of the Q/U noise such as '5sigma'")
    try:
        value, unit = _quantity(s)
    except ValueError:
        raise InputError(
            f"{param}='{s}' is not understood: use e.g. '30uJy/beam' or '5sigma'") from None
    if not unit:
        raise InputError(f"{param}='{s}' has no unit: use e.g. '30uJy/beam' or '5sigma'")
    if not value >= 0:
        raise InputError(f"{param}='{s}' must not be negative")
    return Threshold("flux", value, unit, s)


def parse_sigma(text: str) -> tuple[Threshold, Threshold] | None:
    """Parse the debiasing ``sigma``: (σ_Q, σ_U) from one value or two ('σ_Q,σ_U'); '' → None.

    Values are flux densities with units ('20uJy/beam', '0.56mJy/beam,1.51mJy/beam').
    """
    if text is None or not str(text).strip():
        return None
    parts = [x.strip() for x in str(text).split(",")]
    if len(parts) > 2 or not all(parts):
        raise InputError(f"sigma='{text}' must be one flux density or two ('sigma_Q,sigma_U'), "
                         "e.g. '20uJy/beam' or '0.56mJy/beam,1.51mJy/beam'")
    out = []
    for part in parts:
        t = parse_threshold(part, param="sigma")
        if t is None or t.kind != "flux":
            raise InputError(f"sigma='{text}' must be a flux density with units, e.g. '20uJy/beam'")
        out.append(t)
    return (out[0], out[-1])


def sigma_p(sigma_q, sigma_u):
    """Noise of P from those of Q and U: sqrt((σ_Q² + σ_U²) / 2) (scalars or arrays)."""
    return np.sqrt((np.square(sigma_q) + np.square(sigma_u)) / 2.0)


def to_unit(value: float, unit: str, target: str, what: str) -> float:
    """Convert ``value unit`` to ``target`` (the image brightness unit)."""
    from casatools import quanta

    qa = quanta()
    if not target:
        raise InputError(f"{what}: the image has no brightness unit to compare {unit} with; "
                         "use a multiple of sigma instead")
    q = qa.quantity(value, unit)
    if not qa.compare(q, qa.quantity(1.0, target)):
        raise InputError(f"{what}: units {unit} do not conform to the image unit {target}")
    return float(qa.convert(q, target)["value"])


def _mad_std(x: np.ndarray) -> tuple[float, float]:
    med = float(np.median(x))
    return med, 1.4826 * float(np.median(np.abs(x - med)))


def robust_noise(x: np.ndarray, clip: float = 5.0, iterations: int = 8, min_pixels: int = 50,
                 max_pixels: int = 65536) -> float:
    """Noise of one plane away from the source: MAD scatter, sigma-clipped about the median.

    NaNs are ignored; NaN when fewer than ``min_pixels`` remain.  Planes
    above ``max_pixels`` are subsampled on a regular grid.
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    step = max(1, -(-v.size // max_pixels))
    v = v[::step]
    v = v[np.isfinite(v)]
    sel = v
    s = float("nan")
    for _ in range(iterations):
        if sel.size < min_pixels:
            return float("nan")
        med, s_new = _mad_std(sel)
        if s_new == 0:
            return 0.0
        new_sel = v[np.abs(v - med) <= clip * s_new]
        s = s_new
        if new_sel.size == sel.size:
            break
        sel = new_sel
    return s


def robust_sigma(q: np.ndarray, u: np.ndarray, i: np.ndarray | None = None,
                 clip: float = 5.0, iterations: int = 5,
                 min_pixels: int = 50, max_pixels: int = 65536) -> tuple[float, float]:
    """Noise of Q and U away from the source: (sigma_Q, sigma_U).

    Pixels where Stokes I (if given) or P stands out above ``clip`` times its
    robust noise are removed first (the source); then each of Q and U is
    sigma-clipped around its median using the MAD (scaled to a Gaussian σ)
    until stable.  NaNs are ignored.  Returns NaN when too few pixels remain.
    Planes above ``max_pixels`` are subsampled on a regular grid (the
    estimate's own scatter, ~1/sqrt(2 N), stays near 0.3 %).
    """
    q = np.asarray(q, dtype=np.float64).ravel()
    u = np.asarray(u, dtype=np.float64).ravel()
    step = max(1, -(-q.size // max_pixels))
    if step > 1:
        q, u = q[::step], u[::step]
        if i is not None:
            i = np.asarray(i).ravel()[::step]
    good = np.isfinite(q) & np.isfinite(u)
    if i is not None:
        iv = np.asarray(i, dtype=np.float64).ravel()
        gi = good & np.isfinite(iv)
        if gi.sum() >= min_pixels:
            med, s = _mad_std(iv[gi])
            if s > 0:
                good &= ~(np.abs(iv - med) > clip * s)
    p = np.hypot(q, u)
    if good.sum() >= min_pixels:
        # P of pure noise is Rayleigh: median = 1.1774 σ; drop bright polarized pixels.
        s_p = float(np.median(p[good])) / 1.1774
        if s_p > 0:
            good &= p <= clip * s_p * 1.2
    out = []
    for x in (q, u):
        sel = good.copy()
        s = float("nan")
        for _ in range(iterations):
            if sel.sum() < min_pixels:
                return float("nan"), float("nan")
            med, s_new = _mad_std(x[sel])
            if s_new == 0:
                s = 0.0
                break
            new_sel = good & (np.abs(x - med) <= clip * s_new)
            s = s_new
            if np.array_equal(new_sel, sel):
                break
            sel = new_sel
        out.append(s)
    return out[0], out[1]


def _count(counts: dict, reason: str, mask: np.ndarray, done: np.ndarray) -> None:
    """Count pixels newly masked for ``reason`` (not masked by an earlier reason); mark them."""
    new = mask & ~done
    counts[reason] = counts.get(reason, 0) + int(new.sum())
    done |= new


def pol_block(q: np.ndarray, u: np.ndarray, i: np.ndarray | None = None, *,
              thresh=None, sigma=None, debias: bool = False, fractional: bool = False,
              maskpoli: bool = False, pbmask: np.ndarray | None = None, ithresh=None,
              max_fraction: float | None = 1.0) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """P, A (and P/I) of one block, float32, masked pixels NaN; and why pixels are masked.

    Parameters
    ----------
    q, u, i
        Stokes blocks of equal shape (``i`` only needed for ``fractional``).
    thresh
        Threshold on the non-debiased P in the image unit (scalar, or an
        array broadcasting over the block, e.g. per channel or per pixel);
        below it (or where P is undefined) A and P/I are NaN, and P too when
        ``maskpoli``.
    sigma
        σ_P for debiasing (``debias=True``), scalar or broadcasting.
    pbmask
        True where the primary beam is below the limit: P, A and P/I masked.
    ithresh
        Stokes I below which P/I is masked (broadcasting); I <= 0 is always
        masked.  P/I above ``max_fraction`` (noise: P > I) is masked too.
    Returns
    -------
    (dict, dict)
        ``'P'``, ``'A'`` (and ``'PF'``) arrays; per product, pixel counts by
        reason (:data:`MASK_REASONS`).
    """
    q = np.asarray(q, dtype=np.float32)
    u = np.asarray(u, dtype=np.float32)
    shape = q.shape
    counts: dict[str, dict] = {"P": {}, "A": {}}
    with np.errstate(invalid="ignore", divide="ignore"):
        p2 = q * q
        p2 += u * u
        p = np.sqrt(p2)
        a = np.arctan2(u, q)
        a *= RAD2HALFDEG
        bad_in = ~(np.isfinite(q) & np.isfinite(u))
        pbm = (np.broadcast_to(np.asarray(pbmask, dtype=bool), shape) if pbmask is not None
               else np.zeros(shape, dtype=bool))
        below = np.zeros(shape, dtype=bool)
        if thresh is not None:
            below = np.broadcast_to(~(p >= np.asarray(thresh, dtype=np.float32)), shape)
        done = np.zeros(shape, dtype=bool)
        for reason, m in (("input", bad_in), ("pblimit", pbm), ("polithresh", below)):
            _count(counts["A"], reason, m, done)
        a[done] = np.nan
        if debias:
            if sigma is None:
                raise ValueError("debiasing needs sigma")
            # a NaN sigma (no noise estimate, e.g. a blank channel) gives NaN
            p2 -= np.asarray(sigma, dtype=np.float32) ** 2
            undefined = ~(p2 >= 0)
            p2[undefined] = np.nan
            p_out = np.sqrt(p2, out=p2)
        else:
            undefined = np.zeros(shape, dtype=bool)
            p_out = p
        out = {"A": a}
        if fractional:
            if i is None:
                raise ValueError("fractional polarization needs Stokes I")
            iv = np.asarray(i, dtype=np.float32)
            pf = p_out / iv
            weak = ~(iv > 0)
            if ithresh is not None:
                weak |= np.broadcast_to(~(iv >= np.asarray(ithresh, dtype=np.float32)), shape)
            high = (pf > max_fraction) if max_fraction is not None else np.zeros(shape, bool)
            done = np.zeros(shape, dtype=bool)
            counts["PF"] = {}
            for reason, m in (("input", bad_in | ~np.isfinite(iv)), ("pblimit", pbm),
                              ("polithresh", below), ("debias", undefined), ("stokes_i", weak),
                              ("above_one", high)):
                _count(counts["PF"], reason, m, done)
            pf[done] = np.nan
            out["PF"] = pf
        done = np.zeros(shape, dtype=bool)
        for reason, m in (("input", bad_in), ("pblimit", pbm),
                          ("polithresh", below if maskpoli else np.zeros(shape, bool)),
                          ("debias", undefined)):
            _count(counts["P"], reason, m, done)
        p_out[done] = np.nan
        out["P"] = p_out
    return out, counts
