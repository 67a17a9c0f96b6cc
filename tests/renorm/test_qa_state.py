"""The pipeline's renormalization QA scores and the correction state of an MS (pure parts).

Scores: the numbers of pipeline/hifa/tasks/renorm/qa.py (linScorer
interpolation, fixed values).  State: HISTORY rows as CASA writes them
(applycal, mstransform parameters one per row) and the restore's records.
"""
from __future__ import annotations

import json

import pytest

from almaqa_casa.renorm import qa
from almaqa_casa.renorm.state import Evidence, decide, eb_of, parse_history
from almaqa_casa.restore.provenance import PROVENANCE_PREFIX


def _by_metric(scores):
    return {s.metric: s for s in scores}


def test_scores_within_and_above_threshold():
    s = qa.spw_scores("u.ms", "T", 17, 1.0, 1.02, corrected=False)
    assert [x.score for x in s] == [1.0]
    s = qa.spw_scores("u.ms", "T", 17, 1.01, 1.02, corrected=False)
    assert s[0].score == pytest.approx(0.955) and s[0].colour == "ok"
    assert "1.010 is within threshold of 2.0%" in s[0].longmsg
    # above and corrected: 0.9 at the threshold down to 0.67 at 2.5
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.0499, 1.02, corrected=True))
    assert s["MaxRenormFactor"].score == pytest.approx(0.9 - 0.23 * 0.0299 / 1.48)
    assert "so corrections were applied" in s["MaxRenormFactor"].longmsg
    # above and not corrected: 0.66 .. 0.34
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.0499, 1.02, corrected=False))
    assert s["MaxRenormFactor"].score == pytest.approx(0.66 - 0.32 * 0.0299 / 1.48)
    assert s["MaxRenormFactor"].colour == "warning"
    assert "but no corrections were applied" in s["MaxRenormFactor"].longmsg


def test_unrealistic_factors():
    for v in (0.95, 2.6, float("nan"), None):
        assert qa.unrealistic(v)
    s = qa.spw_scores("u.ms", "T", 17, 0.95, 1.02, corrected=False)
    assert [x.score for x in s] == [0.0] and "unrealistic" in s[0].longmsg
    s = qa.spw_scores("u.ms", "T", 17, 2.6, 1.02, corrected=True)
    assert [x.score for x in s] == [0.0, 0.66]      # the pipeline gives both
    s = qa.spw_scores("u.ms", "T", 17, 2.6, 1.02, corrected=False)
    assert [x.score for x in s] == [0.0, 0.33]
    assert not qa.unrealistic(1.0) and not qa.unrealistic(2.5)


def test_segments_and_atmospheric_features():
    cmd = 'excludechan={"17":"100~120"}'
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.1, 1.02, corrected=True, seg_change=True))
    assert s["SegChange"].score == 0.9
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.1, 1.02, corrected=False, atm_warning=True,
                                 atm_exclude_cmd=cmd))
    assert s["AtmFeature"].score == 0.89 and f"Suggested channel exclusion: {cmd}" in \
        s["AtmFeature"].longmsg
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.1, 1.02, corrected=True, atm_warning=True,
                                 atm_exclude_cmd=cmd, excludechan={"17": "90~130"}))
    assert s["AtmFeature"].score == 0.85 and "Channels 90~130 are being excluded" in \
        s["AtmFeature"].longmsg
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.1, 1.02, corrected=True, atm_warning=True,
                                 atm_exclude_cmd=cmd, atm_auto_exclude=True))
    assert s["AtmFeature"].score == 0.89
    s = _by_metric(qa.spw_scores("u.ms", "T", 17, 1.1, 1.02, corrected=True, atm_warning=True,
                                 atm_exclude_cmd=cmd))
    assert s["AtmFeature"].score == 0.66
    # below the threshold an ATM feature is no matter
    assert "AtmFeature" not in _by_metric(qa.spw_scores("u.ms", "T", 17, 1.01, 1.02, False,
                                                         atm_warning=True))


def test_run_level_tdm_and_double_sideband():
    tdm = qa.ms_scores(alltdm=True, bands_with_fdm=[])
    assert tdm[0].score is None and "No FDM" in tdm[0].shortmsg
    dsb = qa.ms_scores(alltdm=False, bands_with_fdm=[9])
    assert dsb[0].score == 0.9 and "Double Sideband" in dsb[0].shortmsg
    assert qa.ms_scores(False, [3]) == []
    assert qa.worst([*dsb, *qa.spw_scores("u", "T", 1, 1.05, 1.02, True)]) == pytest.approx(
        0.9 - 0.23 * 0.03 / 1.48)


# ---- the correction state ------------------------------------------------------------------
def _rows(task, **params):
    out = [(task, f"taskname={task}"), (task, "version: 6.7.6-14 CASAtools:v1.0.0")]
    for k, v in params.items():
        text = json.dumps(v) if isinstance(v, str) else repr(v)     # as CASA writes them
        out.append((task, f"{k:<11} = {text}"))
    return out


def test_history_of_a_split_of_a_renormalized_ms():
    full = (_rows("importasdm", vis="u.ms", lazy=True)
            + _rows("applycal", intent="OBSERVE_TARGET#ON_SOURCE", spw="1",
                    gaintable=["/w/u.ms.hifa_bandpass.bcal.tbl", "/w/u.ms.renorm.tbl"]))
    rows = full + _rows("mstransform", datacolumn="corrected", docallib=False, callib="")
    ev = parse_history(*zip(*rows))
    assert ev.data_calibrated and ev.renorm_tables == ["/w/u.ms.renorm.tbl"] and not ev.ms_edit
    st = decide("u.ms.split.cal", None, ev)
    assert st.corrected_by == "applycal" and st.data == "calibrated" and st.analyse == "none"
    assert "square" in st.note
    # the full MS of the same restore: DATA is uncorrected, analysed as it is
    ev2 = parse_history(*zip(*full))
    st2 = decide("u.ms", None, ev2)
    assert st2.corrected and st2.data == "uncalibrated" and st2.analyse == "data"
    # a plain import: nothing corrected
    st3 = decide("u.ms", None, parse_history(*zip(*_rows("importasdm", vis="u.ms"))))
    assert not st3.corrected and st3.analyse == "data"
    # the pipeline's pre-2024 in-place correction
    ev4 = parse_history(["ACreNorm"], ["ReNormalization correction applied to spw 17 scan 5"])
    assert decide("x.ms", None, ev4).corrected_by.startswith("the pipeline")


def test_decision_from_the_restore_record():
    rec = {"applied": True, "caltable": "/c/working/u.ms.renorm.tbl", "spws": [1],
           "max_scaling": {"Synth_Disk": {"0": 1.0002, "1": 1.0499}}}
    ev = Evidence(data_calibrated=True)
    st = decide("/c/u.ms.split.cal", rec, ev, "restore.json", table_exists=True)
    assert (st.corrected_by, st.analyse, st.spws) == ("qa_restore", "undo", [1])
    assert st.factors["Synth_Disk"]["1"] == 1.0499 and st.source == "restore.json"
    # the table is gone: no factor at all rather than a squared one
    assert decide("/c/u.ms.split.cal", rec, ev, "x", table_exists=False).analyse == "none"
    # below threshold: computed, nothing applied, nothing to undo
    st = decide("/c/u.ms.split.cal", {"applied": False, "max_scaling": {}}, ev)
    assert not st.corrected and st.analyse == "data"
    # the record can come from the MS's own HISTORY (qa_restore's provenance)
    blob = {"data": "calibrated", "renorm": rec}
    ev = parse_history(["qa_restore"], [PROVENANCE_PREFIX + json.dumps(blob)])
    st = decide("/elsewhere/u.ms.split.cal", None, ev, table_exists=True)
    assert st.corrected_by == "qa_restore" and st.analyse == "undo"
    assert eb_of("/c/uid___A002_X1_X2.ms.split.cal") == "uid___A002_X1_X2"
    assert eb_of("/c/working/uid___A002_X1_X2.ms") == "uid___A002_X1_X2"
    assert eb_of("uid___A002_X1_X2_targets_line.ms") == "uid___A002_X1_X2"
