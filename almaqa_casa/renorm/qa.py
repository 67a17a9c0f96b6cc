"""Renormalization QA scores as the ALMA pipeline gives them (pure).

Reproduces the rules of ``pipeline/hifa/tasks/renorm/qa.py``
(``RenormQAHandler`` per MS, target and spw; ``RenormListQAHandler`` for
the whole run), so a user sees the colour the pipeline's weblog would show:

* a maximum scaling below 1.0, above 2.5 or NaN: score 0.0, "Erroneous or
  unrealistic scaling values" (the data or the fit are wrong);
* within the threshold: 1.0 .. 0.91 (linear from 1.0 to the threshold);
* above the threshold and corrected: 0.9 .. 0.67 (0.66 at 2.5 and above);
  above and not corrected: 0.66 .. 0.34 (0.33 at 2.5 and above);
* segments changed between scans/fields (above threshold, corrected): 0.9;
* an atmospheric feature above the threshold: 0.89 with the suggested
  channel exclusion when not corrected; when corrected, 0.85 if the user
  excluded channels, 0.89 with the automatic ATM exclusion, else 0.66;
* all spws TDM: no score ("No FDM spectral windows are present");
* FDM data in Band 9 or 10 (double sideband receivers): 0.9, a caution.

The pipeline's extra message about user ``excludechan`` spws without an
atmospheric feature is not reproduced.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

__all__ = ["LOW", "HIGH", "QAScore", "ms_scores", "spw_scores", "unrealistic", "worst"]

#: Scaling factors outside [LOW, HIGH] are unrealistic (pipeline qa.py).
LOW, HIGH = 1.0, 2.5


@dataclasses.dataclass(frozen=True)
class QAScore:
    """One score: value (None: not scored), short and long message, metric name."""

    score: float | None
    shortmsg: str
    longmsg: str
    metric: str = ""

    @property
    def colour(self) -> str:
        """The weblog's colour class: ok (>= 0.9), info (>= 0.67), warning (>= 0.34), error."""
        if self.score is None:
            return "info"
        return ("ok" if self.score >= 0.9 else "info" if self.score >= 0.67
                else "warning" if self.score >= 0.34 else "error")

    def as_dict(self) -> dict:
        return {"score": None if self.score is None else round(self.score, 4),
                "shortmsg": self.shortmsg, "longmsg": self.longmsg, "metric": self.metric,
                "colour": self.colour}


def _lin(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    """The pipeline's ``linScorer(x0, x1, y0, y1)(x)``."""
    return (y1 - y0) / (x1 - x0) * (x - x0) + y0


def unrealistic(max_rn: float | None) -> bool:
    """A maximum scaling below 1.0, above 2.5 or not a number."""
    return max_rn is None or not math.isfinite(max_rn) or max_rn < LOW or max_rn > HIGH


def spw_scores(vis: str, target: str, spw: int | str, max_rn: float | None, threshold: float,
               corrected: bool, seg_change: bool = False, atm_warning: bool | None = None,
               atm_exclude_cmd: str | None = None, excludechan: Mapping[str, str] | None = None,
               atm_auto_exclude: bool = False) -> list[QAScore]:
    """The scores of one MS, target and spw (``corrected``: the pipeline's
    ``createcaltable``, i.e. a correction is applied)."""
    where = f"EB {vis} source {target} spw {spw}"
    out: list[QAScore] = []
    v = float("nan") if max_rn is None else float(max_rn)
    if unrealistic(v):
        out.append(QAScore(0.0, "Unexpected values.",
                           f"{where}: Erroneous or unrealistic scaling values were found. Error "
                           f"calculating corrections. Maximum factor is {v}.", "MaxRenormFactor"))
    if LOW <= v <= threshold:
        out.append(QAScore(_lin(v, 1.0, threshold, 1.0, 0.91),
                           "Renormalization factor within threshold",
                           f"{where}: maximum renormalization factor of {v:.3f} is within "
                           f"threshold of {threshold - 1.0:.1%} and so was not applied",
                           "MaxRenormFactor"))
    elif v > threshold:
        if corrected:
            s = _lin(v, threshold, HIGH, 0.9, 0.67) if v < HIGH else 0.66
            out.append(QAScore(s, "Renormalization computed",
                               f"{where}: maximum renormalization factor of {v:.3f} is outside "
                               f"threshold of {threshold - 1.0:.1%} so corrections were applied.",
                               "MaxRenormFactor"))
        else:
            s = _lin(v, threshold, HIGH, 0.66, 0.34) if v < HIGH else 0.33
            out.append(QAScore(s, "Renormalization factor outside threshold",
                               f"{where}: maximum renormalization factor of {v:.3f} is outside "
                               f"threshold of {threshold - 1.0:.1%} but no corrections were "
                               "applied.", "MaxRenormFactor"))
    above = v > threshold
    if seg_change and above and corrected:
        out.append(QAScore(0.9, "Number of segments changed.",
                           f"{where}: The number of segments was changed throughout "
                           "renormalization analysis. Summary plot may show discontinuities due "
                           "to averaging over fields with different segment boundaries.",
                           "SegChange"))
    if atm_warning and above:
        cmd = atm_exclude_cmd or "(none computed)"
        spw_key = str(spw)
        if not corrected:
            out.append(QAScore(0.89, "Renormalization correction may be incorrect due to an "
                               "atmospheric feature",
                               f"Renormalization correction may be incorrect in SPW {spw} due to "
                               f"an atmospheric feature. Suggested channel exclusion: {cmd}",
                               "AtmFeature"))
        elif excludechan:
            if spw_key in excludechan:
                msg = (f"Channels {excludechan[spw_key]} are being excluded from renormalization "
                       f"correction to SPW {spw}. Auto-calculated channel exclusion: {cmd}")
            else:
                msg = (f"No channels are being excluded from renormalization correction to SPW "
                       f"{spw}. Auto-calculated channel exclusion: {cmd}")
            out.append(QAScore(0.85, "Channels are being excluded from renormalization "
                               "correction", msg, "AtmFeature"))
        elif atm_auto_exclude:
            out.append(QAScore(0.89, "Channels are being excluded from renormalization correction "
                               "due to an atmospheric feature",
                               f"Channels {cmd} are being excluded from renormalization correction "
                               f"to SPW {spw} due to an atmospheric feature.", "AtmFeature"))
        else:
            out.append(QAScore(0.66, "Renormalization correction may be incorrectly applied",
                               f"A renormalization correction may be incorrectly applied to SPW "
                               f"{spw} due to an atmospheric feature. Suggested channel "
                               f"exclusion: {cmd}", "AtmFeature"))
    return out


def ms_scores(alltdm: bool, bands_with_fdm: Sequence[int]) -> list[QAScore]:
    """Run-level scores: no score for TDM-only data; a caution for Band 9/10 FDM data."""
    if alltdm:
        return [QAScore(None, "No FDM spectral windows are present.",
                        "No FDM spectral windows are present, so the amplitude scale does not "
                        "need to be assessed for renormalization.", "TDM")]
    if any(b in (9, 10) for b in bands_with_fdm):
        return [QAScore(0.9, "Double Sideband Receivers using FDM mode.",
                        "Double Sideband Receivers using FDM mode; check results carefully.",
                        "DSB")]
    return []


def worst(scores: Sequence[QAScore | Mapping]) -> float | None:
    """The lowest score (the one the weblog shows); None when nothing is scored."""
    vals = [s.score if isinstance(s, QAScore) else s.get("score") for s in scores]
    vals = [v for v in vals if v is not None]
    return min(vals) if vals else None
