"""The verification's rules (almaqa_casa.restore.verify_rules): numbers in, verdicts out.

Pure: the MS facts are given as they are read from real MSs (STATE obs modes,
HISTORY rows as CASA writes them, the restore's cal library text).  The same
rules run on real restores in test_pipeline_restore.py and
test_verify_sabotage.py.
"""
from __future__ import annotations

import math

import pytest

from almaqa_casa.delivery.calapply import parse_calapply
from almaqa_casa.restore import verify_rules as vr

MODES = ["CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE", "CALIBRATE_PHASE#ON_SOURCE",
         "OBSERVE_TARGET#ON_SOURCE", "OBSERVE_TARGET#ON_SOURCE", "OBSERVE_CHECK_SOURCE#ON_SOURCE",
         "CALIBRATE_ATMOSPHERE#OFF_SOURCE"]
FIELDS = ["J1924-2914", "J1937-2742", "J1932-2553", "Synth_Disk"]
ANTS = ["DA41", "DA42", "DA44", "DA45"]
CAL = """# Apply file
applycal(vis='/x/u.ms', field='J1924-2914', intent='AMPLITUDE,BANDPASS', spw='0,1,2,3', antenna='0~3', gaintable=['/x/b.tbl'], gainfield=[''], spwmap=[[]], interp=['linear,linear'], calwt=[False])
applycal(vis='/x/u.ms', field='J1932-2553,Synth_Disk', intent='CHECK,TARGET', spw='0~2', antenna='0~2', gaintable=['/x/b.tbl'], gainfield=[''], spwmap=[[]], interp=['linear,linear'], calwt=[False])
applycal(vis='/x/u.ms', field='J1937-2742', intent='PHASE', spw='0:10~20', antenna='DA41,DA42,DA44,DA45', gaintable=['/x/b.tbl'], gainfield=[''], spwmap=[[]], interp=['linear,linear'], calwt=[False])
applycal(vis='/x/u.ms', field='J19*', intent='PHASE', spw='0', antenna='', gaintable=['/x/b.tbl'], gainfield=[''], spwmap=[[]], interp=['linear,linear'], calwt=[False])
"""


def test_line_selection_maps_names_intents_spws_and_antennas_to_ids():
    apps = parse_calapply(CAL, "u.ms.calapply.txt")
    dd_spw = [0, 1, 2, 3]
    bp, tgt, ph, pattern = (vr.line_selection(a, FIELDS, MODES, dd_spw, ANTS) for a in apps)
    # AMPLITUDE,BANDPASS -> the state whose modes map to them; every antenna = no selection
    assert bp == vr.Selection(fields=(0,), states=(0,), ddids=(0, 1, 2, 3), antennas=None)
    # CHECK,TARGET -> both target states and the check state; a partial antenna range is kept
    assert tgt == vr.Selection(fields=(2, 3), states=(2, 3, 4), ddids=(0, 1, 2), antennas=(0, 1, 2))
    assert vr.selection_taql(tgt) == ("(FIELD_ID IN [2,3] && STATE_ID IN [2,3,4] && "
                                      "DATA_DESC_ID IN [0,1,2] && (ANTENNA1 IN [0,1,2] || "
                                      "ANTENNA2 IN [0,1,2]))")
    # channel ranges are ignored, antenna names that cover all antennas select all
    assert ph == vr.Selection(fields=(1,), states=(1,), ddids=(0,), antennas=None)
    # a field pattern is decided by CASA only: said, not guessed
    assert isinstance(pattern, str) and "J19*" in pattern
    # the ATMOSPHERE state is outside what the restore calibrates
    assert vr.scope_states(MODES) == [0, 1, 2, 3, 4]
    assert vr.obsmode_intents(MODES[0]) == {"BANDPASS", "AMPLITUDE"}


def test_calapply_rule_names_the_line_that_selects_nothing():
    lines = [{"source": "u.ms.calapply.txt:2", "field": "J1924-2914", "intent": "AMPLITUDE",
              "spw": "0", "rows": 280},
             {"source": "u.ms.calapply.txt:3", "field": "NoSuchField", "intent": "TARGET",
              "spw": "0", "rows": 0}]
    c = vr.calapply_rule("uid___A002_X1_X2", lines)
    assert c.status == "fail"
    assert c.message.startswith("uid___A002_X1_X2: calapply: 1 of 2 calapply line(s) select no row")
    assert "u.ms.calapply.txt:3" in c.message and "NoSuchField" in c.message
    ok = vr.calapply_rule("uid___A002_X1_X2", lines[:1])
    assert ok.status == "pass" and "280 rows" in ok.message


def test_coverage_rule_fails_loudly_on_an_uncalibrated_target():
    unc = [{"intent": "TARGET", "field": "Synth_Disk", "spw": s, "rows": 280} for s in (0, 1)]
    unc.append({"intent": "CHECK", "field": "J1932-2553", "spw": 0, "rows": 112})
    c = vr.coverage_rule("uid___A002_X1_X2", unc, in_scope=4872)
    assert c.status == "fail"
    assert "672 of 4872 unflagged science/calibrator rows" in c.message
    assert "UNCALIBRATED" in c.message and "science target" in c.message
    assert "TARGET rows of field Synth_Disk (spw 0,1): 560" in c.message
    assert vr.coverage_rule("u", [], 4872).status == "pass"


def test_data_rule():
    good = {"label": "line 2 spw 0", "rows": 16, "unflagged": 1920, "nonfinite": 0, "zero": 0,
            "unchanged": None}
    assert vr.data_rule("u", [good], "DATA").status == "pass"
    nan = dict(good, nonfinite=30)
    c = vr.data_rule("u", [good, nan], "DATA")
    assert c.status == "fail" and "30 non-finite and 0 zero of 1920 unflagged samples" in c.message
    same = dict(good, unchanged=1920)
    c = vr.data_rule("u", [same], "CORRECTED_DATA")
    assert c.status == "fail" and "calibration changed nothing" in c.message


def _grp(scan, intent, spw, rows, frows, samples, fs):
    return {"scan": scan, "intent": intent, "spw": spw, "rows": rows, "flagged_rows": frows,
            "samples": samples, "flagged_samples": fs}


def test_flags_rule_is_the_pipeline_regression_criterion():
    ref = [_grp(6, "TARGET", 1, 140, 35, 16800, 4200), _grp(6, "TARGET", 9, 140, 0, 560, 0),
           _grp(1, "AMPLITUDE,BANDPASS", 1, 280, 0, 33600, 0)]
    same = [dict(g) for g in ref if g["spw"] == 1]          # the split keeps spw 1 only
    assert vr.flags_rule("u", same, ref).status == "pass"
    lost = [_grp(6, "TARGET", 1, 140, 0, 16800, 0), ref[2]]
    c = vr.flags_rule("uid___A002_X1_X2", lost, ref)
    assert c.status == "fail"
    assert ("scan 6 TARGET spw 1: 0 flagged samples (0 rows fully flagged) of 16800, "
            "Pipeline_Final 4200 (35 rows)") in c.message
    assert c.message.startswith("uid___A002_X1_X2: flags: 1 of 2 scan/intent/spw groups differ")
    # one sample in 1e7 is the tolerance; one more flagged sample in 16800 is not
    more = [_grp(6, "TARGET", 1, 140, 35, 16800, 4201), ref[2]]
    assert vr.flags_rule("u", more, ref).status == "fail"
    fewer_rows = [_grp(6, "TARGET", 1, 120, 35, 14400, 4200), ref[2]]
    assert "120 rows, Pipeline_Final 140" in vr.flags_rule("u", fewer_rows, ref).message


def test_flux_tolerance_is_derived_from_spectral_index_uv_coverage_and_noise():
    freqs = [100.0e9 + k * 3.125e6 for k in range(60)]
    tol, parts = vr.flux_tolerance(-0.6, freqs, sem=0.001, mean=3.2, short_long=(3.2, 3.2))
    spectral = 0.6 * math.log(freqs[-1] / freqs[0]) / 2
    assert parts["spectral_index"] == pytest.approx(spectral)
    assert parts["uv_structure"] == 0.0
    assert parts["noise"] == pytest.approx(5 * 0.001 / 3.2)
    assert parts["calibration"] == vr.CALIBRATION_FLOOR == 0.02
    assert tol == pytest.approx(math.hypot(spectral, 5 * 0.001 / 3.2, 0.02))
    # a resolved source: the short baselines see more flux than the long ones
    tol2, parts2 = vr.flux_tolerance(-0.6, freqs, 0.001, 3.0, (3.3, 2.7))
    assert parts2["uv_structure"] == pytest.approx(0.1) and tol2 > 0.1
    # a steeper spectrum over a wider band allows more
    wide = [90e9, 110e9]
    assert vr.flux_tolerance(-2.0, wide, 0.0, 1.0, None)[1]["spectral_index"] == pytest.approx(
        2.0 * math.log(110 / 90) / 2)


def test_flux_rule_names_spw_numbers_and_tolerance():
    m = {"spw": 1, "expected": 3.1613, "measured": 3.1613 / 1.21, "tolerance": 0.0007,
         "parts": {}, "samples": 280}
    c = vr.flux_rule("uid___A002_X1_X2", "J1924-2914", [m])
    assert c.status == "fail"
    assert "uid___A002_X1_X2: flux: flux calibrator J1924-2914 differs from flux.csv" in c.message
    assert "spw 1: 2.613 Jy vs 3.161 Jy (-17.36 %, tolerance 0.07 %)" in c.message
    ok = dict(m, measured=3.1614)
    assert vr.flux_rule("u", "J1924-2914", [ok]).status == "pass"


# ---- renormalization ---------------------------------------------------------------------
def _applycal_rows(intent, spw, tables):
    return [("applycal", "taskname=applycal"), ("applycal", "version: 6.7.6-14 CASAtools:v1.0.0"),
            ("applycal", f'intent      = "{intent}"'), ("applycal", f'spw         = "{spw}"'),
            ("applycal", f"gaintable   = {tables!r}"), ("applycal", 'applymode   = "calflagstrict"')]


def test_applied_renorm_counts_from_history_and_cal_library():
    tmode = {"OBSERVE_TARGET#ON_SOURCE"}
    rows = (_applycal_rows("CALIBRATE_PHASE#ON_SOURCE", "0,1", ["/w/b.tbl", "/w/g.tbl"])
            + _applycal_rows("OBSERVE_TARGET#ON_SOURCE", "1", ["/w/b.tbl", "/w/u.ms.renorm.tbl"]))
    o, m = zip(*rows)
    assert vr.applied_renorm_counts(o, m, {}, tmode, [0, 1]) == {1: ["u.ms.renorm.tbl"]}
    lib = ("caltable='/w/u.ms.renorm.tbl' calwt=True field='Synth_Disk' "
           "intent='OBSERVE_TARGET#ON_SOURCE' spw='1' tinterp='nearest' finterp='linear'\n"
           "caltable='/w/u.ms.hifa_renorm.s16_1.renorm.tbl' calwt=True field='Synth_Disk' "
           "intent='OBSERVE_TARGET#ON_SOURCE' spw='1' tinterp='nearest'\n")
    rows2 = rows + [("mstransform", "taskname=mstransform"),
                    ("mstransform", "docallib    = True"),
                    ("mstransform", 'callib      = "/w/u.ms.callib.txt"')]
    o, m = zip(*rows2)
    got = vr.applied_renorm_counts(o, m, {"/w/u.ms.callib.txt": lib}, tmode, [0, 1])
    assert got == {1: ["u.ms.renorm.tbl", "u.ms.renorm.tbl", "u.ms.hifa_renorm.s16_1.renorm.tbl"]}


def test_renorm_rule():
    req = {"apply": True, "threshold": 1.02}
    rec = {"applied": True, "spws": [1], "caltable": "/w/u.ms.renorm.tbl",
           "max_scaling": {"Synth_Disk": {"0": 1.0002, "1": 1.0499}}, "warning": None}
    c = vr.renorm_rule("u", req, rec, {1: ["u.ms.renorm.tbl"]})
    assert c.status == "pass" and "applied once to spw [1]" in c.message
    assert "1.0499 (Synth_Disk spw 1)" in c.message
    twice = vr.renorm_rule("uid___A002_X1_X2", req, rec,
                           {1: ["u.ms.renorm.tbl", "u.ms.hifa_renorm.s16_1.renorm.tbl"]})
    assert twice.status == "fail" and "applied TWICE" in twice.message
    assert "spw 1: u.ms.renorm.tbl, u.ms.hifa_renorm.s16_1.renorm.tbl" in twice.message
    missing = vr.renorm_rule("u", req, rec, {})
    assert missing.status == "fail" and "no renormalization applied to spw [1]" in missing.message
    warned = dict(rec, applied=False, warning="u.ms: no autocorrelations; it is NOT applied")
    assert vr.renorm_rule("u", req, warned, {}).status == "fail"
    assert vr.renorm_rule("u", req, None, {}).status == "fail"
    below = dict(rec, applied=False, spws=[], max_scaling={"T": {"0": 1.004}})
    assert vr.renorm_rule("u", req, below, {}).status == "pass"
    assert vr.renorm_rule("u", None, None, {}).status == "pass"
    delivered = {"apply": False, "delivered_table": "u.ms.hifa_renorm.s16_1.renorm.tbl"}
    c = vr.renorm_rule("u", delivered, None, {1: ["u.ms.hifa_renorm.s16_1.renorm.tbl"]})
    assert c.status == "pass" and "delivered calibration" in c.message
    assert vr.eb_status([c, twice]) == "failed" and vr.eb_status([c]) == "passed"


def test_a_check_that_examined_nothing_does_not_pass():
    """0 lines, 0 rows in scope, no sample, no flag group: failed, saying so; a flux
    calibrator with nothing to measure warns; an EB whose checks all skipped fails."""
    c = vr.calapply_rule("u", [])
    assert c.status == "fail" and "no applycal line" in c.message
    c = vr.coverage_rule("u", [], 0, "autocorrelation")
    assert c.status == "fail" and "no unflagged autocorrelation row" in c.message
    c = vr.data_rule("u", [], "FLOAT_DATA")
    assert c.status == "fail" and c.message == ("u: data: no unflagged row to sample in "
                                                "FLOAT_DATA: no calibrated data examined")
    c = vr.flags_rule("u", [], [_grp(1, "TARGET", 0, 10, 0, 100, 0)])
    assert c.status == "fail" and "restored MS has 0, Pipeline_Final 1 groups" in c.message
    c = vr.flux_rule("u", "J1924-2914", [])     # flagged out: a warning, never a pass
    assert c.status == "warn" and "the flux scale is NOT verified" in c.message
    skips = [vr.skip("u", "calapply", "x"), vr.skip("u", "data", "y")]
    c = vr.nothing_examined("u", skips)
    assert c.status == "fail" and vr.eb_status(skips + [c]) == "failed"
    assert c.message == "u: verify: no check examined the restored data (calapply: skip; data: skip)"
    assert vr.nothing_examined("u", skips + [vr.data_rule("u", [], "DATA")]) is None
    assert vr.coverage_rule("u", [], 336, "autocorrelation").message == (
        "u: coverage: all 336 unflagged science/calibrator autocorrelation rows are selected by "
        "a calapply line")


def test_jyperk_rule():
    ref = {("PM01", 0, "XX"): 40.0, ("PM01", 0, "YY"): 40.35, ("PM02", 0, "XX"): 41.5}
    same = {k: v * (1 + 2e-7) for k, v in ref.items()}
    c = vr.jyperk_rule("u", "Jy", ref, same, "measured")
    assert c.status == "pass" and "3 Jy/K factor(s)" in c.message and "2.0e-07" in c.message
    scaled = {**same, ("PM02", 0, "XX"): 41.5 * 1.1}
    c = vr.jyperk_rule("u", "Jy", ref, scaled, "measured")
    assert c.status == "fail"
    assert c.message == ("u: jyperk: 1 difference(s) from the delivered Jy/K factors (measured): "
                         "PM02 spw 0 XX: 45.65 Jy/K applied, 41.5 delivered (ratio 1.1000)")
    assert vr.jyperk_rule("u", "K", ref, same, "m").status == "fail"           # not in Jy
    assert "none delivered" in vr.jyperk_rule("u", "Jy", dict(list(ref.items())[:2]), same,
                                              "m").message
    c = vr.jyperk_rule("u", "Jy", ref, {}, "nothing to compare")
    assert c.status == "fail" and "no Jy/K factor measured (nothing to compare)" in c.message
    partial = {k: v for k, v in same.items() if k[0] == "PM01"}              # PM02 flagged
    c = vr.jyperk_rule("u", "Jy", ref, partial, "m")
    assert c.status == "pass" and "not measured (flagged): PM02 spw 0 XX" in c.message
    assert vr.jyperk_rule("u", "K", {}, {}, "m").status == "skip"           # stays in K
    assert vr.jyperk_rule("u", "Jy", {}, {}, "m").status == "fail"


def test_selfcal_rule():
    def s(ms, spw, applied, unflagged, unchanged):
        return {"ms": ms, "field": "Synth_Disk", "spw": spw, "applied": applied,
                "unflagged": unflagged, "unchanged": unchanged}
    good = [s("u_targets.ms", 0, True, 4096, 0), s("u_targets.ms", 2, False, 4096, 4096)]
    c = vr.selfcal_rule("u", good)
    assert c.status == "pass" and "all 1 self-calibrated" in c.message and "the 1 others" in c.message
    c = vr.selfcal_rule("u", [s("u_targets.ms", 0, True, 4096, 4096), good[1]])
    assert c.status == "fail" and c.message == (
        "u: selfcal: u_targets.ms field Synth_Disk spw 0: all 4096 unflagged CORRECTED_DATA "
        "samples equal DATA: the self-calibration is NOT applied")
    c = vr.selfcal_rule("u", [good[0], s("u_targets.ms", 2, False, 4096, 96)])
    assert c.status == "fail" and "4000 of 4096 unflagged CORRECTED_DATA samples differ" in c.message
    assert vr.selfcal_rule("u", []).status == "fail"
    assert vr.selfcal_rule("u", [good[1]]).status == "fail"
