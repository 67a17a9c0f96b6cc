"""Resolution and sensitivity requirements: where they come from, and each product's verdict.

Pure decisions (no I/O, no CASA).  The requirements of a member are the
science goal its ASDMs state (``SBSummary.xml``, read by
:mod:`almaqa_casa.delivery.sbsummary`), each item overridden by the
``req_*`` parameters when given.  Every product is then judged as the
observatory states the goal:

* resolution: the geometric-mean beam ``sqrt(bmaj*bmin)`` must lie in the
  accepted range ``[min, max]`` (widened by the tolerance).  The range is
  stated at the representative frequency; a beam scales as 1/frequency, so
  for a product at frequency nu the range is multiplied by ``nu_rep / nu``.
* sensitivity: the goal is stated for the representative bandwidth; thermal
  noise scales as ``1/sqrt(bandwidth)``, so a product of bandwidth B is held
  to ``goal * sqrt(B_rep / B)`` (the ALMA pipeline's ``hifa_imageprecheck``
  scales its sensitivities the same way).  A cube is judged per channel
  (B = the channel's bandwidth, its rms the median over channels); a
  continuum image at its aggregate bandwidth.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from ..delivery.sbsummary import ScienceGoal

__all__ = ["Given", "Requirements", "judge", "product_bandwidth", "resolve"]

SBSUMMARY = "SBSummary.xml"


@dataclasses.dataclass(frozen=True)
class Given:
    """The ``req_*`` parameters, parsed (None: not given)."""

    res_min_arcsec: float | None = None
    res_max_arcsec: float | None = None
    sensitivity_jy_per_beam: float | None = None
    bandwidth_hz: float | None = None
    frequency_hz: float | None = None
    res_tolerance: float = 0.1
    sens_tolerance: float = 0.1


@dataclasses.dataclass
class Requirements:
    """What one member's products are held to, and where each number comes from."""

    res_min_arcsec: float | None = None
    res_max_arcsec: float | None = None
    sensitivity_jy_per_beam: float | None = None
    bandwidth_hz: float | None = None
    frequency_hz: float | None = None
    res_tolerance: float = 0.1
    sens_tolerance: float = 0.1
    sources: dict = dataclasses.field(default_factory=dict)  #: item -> where it comes from
    science_goal: dict | None = None                         #: the goal read from SBSummary.xml
    notes: list = dataclasses.field(default_factory=list)

    @property
    def source(self) -> str:
        """'SBSummary.xml', 'parameters', 'SBSummary.xml and parameters' or 'none'."""
        used = set(self.sources.values())
        sb = any(v.startswith(SBSUMMARY) for v in used)
        par = any(v.startswith("parameter") for v in used)
        return {(True, True): f"{SBSUMMARY} and parameters", (True, False): SBSUMMARY,
                (False, True): "parameters", (False, False): "none"}[(sb, par)]

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["source"] = self.source
        d["rules"] = {"resolution": resolution_rule(self), "sensitivity": sensitivity_rule(self)}
        return d


def _where(goal: ScienceGoal) -> str:
    return f"{SBSUMMARY} ({goal.file}, line {goal.line})"


def resolve(given: Given, goal: ScienceGoal | None) -> Requirements:
    """Each requirement from the parameters if given, else from the science goal."""
    r = Requirements(res_tolerance=given.res_tolerance, sens_tolerance=given.sens_tolerance)
    src = _where(goal) if goal is not None else ""
    if goal is not None:
        r.science_goal = goal.as_dict()
    if given.res_max_arcsec is not None:
        r.res_min_arcsec, r.res_max_arcsec = given.res_min_arcsec or 0.0, given.res_max_arcsec
        r.sources["resolution"] = "parameter req_resolution"
    elif goal is not None and goal.max_resolution_arcsec is not None:
        r.res_min_arcsec, r.res_max_arcsec = goal.min_resolution_arcsec, goal.max_resolution_arcsec
        r.sources["resolution"] = src
    for item, gv, sv, param in (
            ("sensitivity", given.sensitivity_jy_per_beam,
             goal.sensitivity_goal_jy_per_beam if goal else None, "req_sensitivity"),
            ("bandwidth", given.bandwidth_hz,
             goal.representative_bandwidth_hz if goal else None, "req_bandwidth"),
            ("frequency", given.frequency_hz,
             goal.representative_frequency_hz if goal else None, "req_frequency")):
        value = gv if gv is not None else sv
        if value is None:
            continue
        setattr(r, {"sensitivity": "sensitivity_jy_per_beam", "bandwidth": "bandwidth_hz",
                    "frequency": "frequency_hz"}[item], value)
        r.sources[item] = f"parameter {param}" if gv is not None else src
    if r.sensitivity_jy_per_beam is not None and r.bandwidth_hz is None:
        r.notes.append("the bandwidth of the sensitivity goal is not known (give req_bandwidth): "
                       "every product is held to the same number, whatever its bandwidth")
    if r.res_max_arcsec is not None and r.frequency_hz is None:
        r.notes.append("the frequency of the resolution goal is not known (give req_frequency): "
                       "the range is not scaled to each product's frequency")
    return r


def resolution_rule(r: Requirements) -> str:
    scale = (" scaled by nu_rep/nu to the product's frequency (beam ~ 1/frequency)"
             if r.frequency_hz else "")
    return (f"geometric-mean beam sqrt(bmaj*bmin) within [min*(1-tol), max*(1+tol)], the accepted "
            f"range{scale}; tol = {100 * r.res_tolerance:.0f}%")


def sensitivity_rule(r: Requirements) -> str:
    head = ("rms of the primary-beam uncorrected image outside the clean mask (Stokes I; cubes: "
            "median over channels)")
    if r.bandwidth_hz:
        scale = (f"goal * sqrt({r.bandwidth_hz / 1e6:.6g} MHz / product bandwidth), the product "
                 "bandwidth being a cube's channel width or a continuum image's aggregate bandwidth")
    else:
        scale = "goal (not scaled: its bandwidth is not known)"
    return f"{head} <= {scale} * (1 + tol); tol = {100 * r.sens_tolerance:.0f}%"


def product_bandwidth(imagetype: str | None, nchan: int, chan_width_hz: float | None,
                      effbw_hz: float | None, spws: Sequence[int],
                      spw_bandwidths: Mapping[int, float]) -> tuple[float | None, str]:
    """The bandwidth (Hz) one plane of a product stands for, and where it comes from.

    Cubes (more than one channel, or named cube/repBW): the channel's
    bandwidth, from the pipeline's ``EFFBW`` header keyword (effective
    bandwidth of a channel) or the channel width.  Continuum images:
    ``EFFBW`` (the pipeline's aggregate bandwidth), else the sum of the
    named spws' bandwidths from the ASDM (line channels excluded from a
    ``cont`` image are not subtracted, so its goal is a little strict), else
    the width of the frequency axis for a single-spw image.
    """
    cube = nchan > 1 or (imagetype or "") in ("cube", "repBW")
    if effbw_hz and effbw_hz > 0:
        return effbw_hz, "FITS keyword EFFBW" + (" (per channel)" if cube else "")
    if cube:
        if chan_width_hz:
            return abs(chan_width_hz), "channel width (FITS CDELT of the frequency axis)"
        return None, "channel width unknown (no frequency axis)"
    if spws and all(s in spw_bandwidths for s in spws):
        return (float(sum(spw_bandwidths[s] for s in spws)),
                f"sum of the bandwidths of spw {', '.join(map(str, spws))} (ASDM SpectralWindow.xml)")
    if len(spws) <= 1 and chan_width_hz:
        return abs(chan_width_hz), "width of the frequency axis (FITS CDELT)"
    return None, ("aggregate bandwidth unknown: no EFFBW keyword and no ASDM listing spw "
                  + ", ".join(map(str, spws)))


def judge(r: Requirements, *, bmaj: float | None, bmin: float | None, rms: float | None,
          freq_hz: float | None, bandwidth_hz: float | None, bandwidth_source: str,
          per_channel: bool) -> tuple[list[dict], list[str]]:
    """(checks, notes) for one product: a dict per requirement that could be judged."""
    checks: list[dict] = []
    notes: list[str] = []
    if r.res_max_arcsec is not None and bmaj and bmin:
        k = 1.0
        if r.frequency_hz and freq_hz:
            k = r.frequency_hz / freq_hz
        lo = (r.res_min_arcsec or 0.0) * k
        hi = r.res_max_arcsec * k
        value = math.sqrt(bmaj * bmin)
        lower, upper = lo * (1.0 - r.res_tolerance), hi * (1.0 + r.res_tolerance)
        checks.append({"what": "resolution", "value": value, "unit": "arcsec", "min": lo,
                       "max": hi, "required": hi, "lower_limit": lower, "limit": upper,
                       "tolerance": r.res_tolerance, "frequency_hz": freq_hz, "scale": k,
                       "source": r.sources.get("resolution"),
                       "pass": bool(lower <= value <= upper)})
    if r.sensitivity_jy_per_beam is not None and rms is not None and math.isfinite(rms):
        scale, bw_note = 1.0, "not scaled (bandwidth of the goal unknown)"
        if r.bandwidth_hz:
            if not bandwidth_hz:
                notes.append(f"sensitivity not judged: {bandwidth_source}")
                return checks, notes
            scale = math.sqrt(r.bandwidth_hz / bandwidth_hz)
            bw_note = f"sqrt({r.bandwidth_hz / 1e6:.6g} MHz / {bandwidth_hz / 1e6:.6g} MHz)"
        required = r.sensitivity_jy_per_beam * scale
        limit = required * (1.0 + r.sens_tolerance)
        checks.append({"what": "sensitivity", "value": rms, "unit": "Jy/beam",
                       "goal": r.sensitivity_jy_per_beam, "goal_bandwidth_hz": r.bandwidth_hz,
                       "bandwidth_hz": bandwidth_hz, "bandwidth_source": bandwidth_source,
                       "per_channel": per_channel, "scale": scale, "scaling": bw_note,
                       "required": required, "limit": limit, "tolerance": r.sens_tolerance,
                       "source": r.sources.get("sensitivity"), "pass": bool(rms <= limit)})
    return checks, notes
