"""One planner per delivery kind, all producing the one plan format (:mod:`..plan`).

:func:`plan_member` picks the planner from the member model's kind.  A new
delivery kind adds a planner here, not an engine.
"""
from __future__ import annotations

from ...delivery.member import Member
from ..options import RestoreOptions
from ..plan import MemberPlan, PlanError, output_root
from .manual import plan_manual
from .pipeline import plan_pipeline

__all__ = ["plan_member", "plan_semipass", "plan_manual", "plan_pipeline"]


def plan_semipass(member: Member, opts: RestoreOptions) -> MemberPlan:
    """A semipass package (QA0 semi-pass data only): nothing to calibrate, say so."""
    calibrated = output_root(member.path, opts.outdir)
    raw = ", ".join(sorted(member.raw_asdms)) or "none downloaded"
    note = (f"semipass package: no calibration/ and no calibration scripts, only raw data "
            f"(ASDMs: {raw}); there is nothing to calibrate")
    return MemberPlan(member=member.path, mous=member.mous, mode="semipass",
                      calibrated=calibrated, working=calibrated, ebs=[],
                      semipass=sorted(member.raw_asdms), missing=[], steps=[], warnings=[note],
                      raw_bytes=sum(member.raw_sizes.values()), peak_bytes=0, final_bytes=0,
                      scriptforpi_bytes=None, route="none", options={},
                      delivery=member.summary(), check_bytes=0)


def plan_member(member: Member, opts: RestoreOptions, texts: dict[str, str],
                ephemerides: list[str], present_version: str) -> MemberPlan:
    """The plan of one member, by its kind.

    Raises
    ------
    PlanError
        A kind that cannot be restored natively (yet), or the planner's own
        refusals (missing ASDMs, calibration files, tarballs ...).  Pipeline
        total power goes to :func:`.tp.plan_total_power`; manual total power
        (per-EB ``scriptForSDCalibration.py``) to :func:`plan_manual`.
    """
    if member.kind == "semipass":
        return plan_semipass(member, opts)
    if member.kind == "manual":
        return plan_manual(member, opts, texts, ephemerides, present_version)
    if member.kind == "pipeline":
        if member.total_power:
            # the TP inputs (jyperk.csv, casa_commands.log, auxcalapply) are read here,
            # once, so a bad one stops the restore before any work
            from ..tpinputs import read_tp_inputs
            from .tp import plan_total_power
            return plan_total_power(member, opts, read_tp_inputs(member), texts, present_version)
        return plan_pipeline(member, opts, texts, present_version)
    raise PlanError(f"{member.path}/script: no calibration script found: no per-EB "
                    "*.ms.scriptForCalibration.py (manual), no PPR or casa_piperestorescript.py "
                    "(pipeline)")
