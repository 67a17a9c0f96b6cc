"""The manual path end to end on the synthetic manual delivery (fixture ``manual_delivery``).

The delivered per-EB scripts really calibrate (importasdm, bandpass, gaincal,
applycal, split) and scriptForImagingPrep.py concatenates into calibrated.ms.
"""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.restore.options import RestoreOptions
from tests.restore.test_manual_support import (
    PRESENT,
    inputs_checksum,
    restore_manual_member,
    shadow_member,
)

pytestmark = pytest.mark.slow


def _visible(folder: Path) -> set:
    return {p.name for p in Path(folder).iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def restored(manual_delivery, tmp_path_factory, restore_checksum):
    member = manual_delivery["member_dir"]
    before = inputs_checksum(restore_checksum, member)
    cal = tmp_path_factory.mktemp("manual0") / "calibrated"
    res = restore_manual_member(member, cal, RestoreOptions(spacesaving=0))
    after = inputs_checksum(restore_checksum, member)
    return {"res": res, "cal": cal, "member": member, "before": before, "after": after}


def test_restores_split_cal_and_calibrated_ms_with_true_flux(restored, manual_delivery):
    from almaqa_casa.synth.build import measure_target
    res, cal = restored["res"], restored["cal"]
    truth, spec = manual_delivery["truth"], manual_delivery["spec"]
    assert res["status"] == "ok", json.dumps(res, indent=1, default=str)
    json.dumps(res)
    ebs = truth["ebs"]
    assert sorted(res["ebs"]) == sorted(ebs)
    for uid in ebs:
        vis = cal / f"{uid}.ms.split.cal"
        assert (vis / "table.dat").is_file()
        ratios = measure_target(str(vis), spec, "DATA")
        assert ratios and all(abs(r - 1) < 0.02 for r in ratios.values()), (uid, ratios)
    assert res["calibrated_ms"] == str(cal / "calibrated.ms")
    ratios = measure_target(str(cal / "calibrated.ms"), spec, "DATA")
    assert ratios and all(abs(r - 1) < 0.02 for r in ratios.values()), ratios
    # the same result as the generator's own run of the scripts
    ref = truth.get("calibrated_ms_target_ratio_per_spw")
    if ref:
        for k, r in ratios.items():
            assert abs(r - ref[str(k)] if str(k) in ref else r - ref[k]) < 1e-3


def test_verification_of_the_manual_path(restored, manual_delivery):
    """No calapply.txt, Pipeline_Final or manifest: every field of each split.cal is
    sampled (finite, non-zero calibrated data); the other checks say why they do not apply."""
    v = restored["res"]["verification"]
    assert v["status"] == "passed", v["failures"]
    for uid in manual_delivery["truth"]["ebs"]:
        e = v["ebs"][uid]
        assert e["ms"].endswith(f"{uid}.ms.split.cal") and e["column"] == "DATA"
        got = {c["check"]: c["status"] for c in e["checks"]}
        assert got == {"calapply": "skip", "coverage": "skip", "data": "pass", "flags": "skip",
                       "flux": "skip", "renorm": "skip"}
    assert (restored["cal"] / "restore.html").is_file()


def test_inputs_untouched(restored):
    assert restored["before"] == restored["after"]


def _level0_sets(cal: Path, ebs) -> tuple[set, dict]:
    return _visible(cal), {u: _visible(cal / f"{u}.calibration") for u in ebs}


def test_level0_layout_is_scriptforpi(restored, manual_delivery):
    cal, ebs = restored["cal"], manual_delivery["truth"]["ebs"]
    top, work = _level0_sets(cal, ebs)
    assert {f"{u}.ms.split.cal" for u in ebs} | {f"{u}.calibration" for u in ebs} | {
        "calibrated.ms"} <= top
    assert top - {f"{u}.ms.split.cal" for u in ebs} - {f"{u}.calibration" for u in ebs} - {
        "calibrated.ms"} <= {"calibrated.ms.listobs", "scriptForImagingPrep.log", "restore.json",
                         "restore.html"}
    for u in ebs:
        assert {u, f"{u}.ms", f"{u}.ms.split", f"{u}.scriptForCalibration.log"} <= work[u]
        assert f"{u}.ms.split.cal" not in work[u]
        assert os.path.realpath(cal / f"{u}.calibration" / u) == os.path.realpath(
            Path(restored["member"]) / "raw" / f"{u}.asdm.sdm")


@pytest.mark.parametrize("level", [1, 2, 3])
def test_spacesaving_deletes_what_scriptforpi_deletes(restored, manual_delivery, tmp_path, level):
    """Each level on the real outputs of the delivered scripts: a copy of the level-0
    restore is completed at ``level`` (EBs are done, so only the deletions run)."""
    ebs = manual_delivery["truth"]["ebs"]
    cal = tmp_path / "calibrated"
    shutil.copytree(restored["cal"], cal, symlinks=True)
    top0, work0 = _level0_sets(cal, ebs)
    res = restore_manual_member(restored["member"], cal, RestoreOptions(spacesaving=level))
    assert res["status"] == "ok"
    gone_work = {1: {"{u}.ms.split"}, 2: {"{u}.ms.split", "{u}.ms"},
                 3: {"{u}.ms.split", "{u}.ms"}}[level]
    gone_top = {f"{u}.ms.split.cal" for u in ebs} if level >= 3 else set()
    assert _visible(cal) == top0 - gone_top
    for u in ebs:
        assert _visible(cal / f"{u}.calibration") == work0[u] - {g.format(u=u) for g in gone_work}
    assert (cal / "calibrated.ms" / "table.dat").is_file()


def test_version_pinned_delivery(manual_delivery, tmp_path, restore_checksum):
    def pin(name, text):
        if name.endswith(".ms.scriptForCalibration.py"):
            text = re.sub(r"re\.search\('\^[^']*'", r"re.search('^5\\.1\\.1'", text)
            text = text.replace(f"GENERATING THE SCRIPT: {PRESENT}", "GENERATING THE SCRIPT: 5.1.1")
        return text
    member = shadow_member(manual_delivery["member_dir"], tmp_path / "d", pin)
    before = inputs_checksum(restore_checksum, member)
    cal = tmp_path / "calibrated"
    res = restore_manual_member(member, cal, RestoreOptions())
    assert res["status"] == "failed"
    assert "CASA 5.1.1" in res["error"] and f"this is CASA {PRESENT}" in res["error"]
    assert "ignoreversion=True" in res["error"]
    assert not cal.exists()
    assert inputs_checksum(restore_checksum, member) == before


def test_failing_script_fails_its_eb_only(restored, manual_delivery, tmp_path):
    order = restored["res"]["ebs"]
    bad, good = order[0], order[1:]

    def break_it(name, text):
        if name == f"{bad}.ms.scriptForCalibration.py":
            text = text.replace("\n# 0\n", "\nraise RuntimeError('deliberately broken script')\n# 0\n", 1)
        return text
    member = shadow_member(manual_delivery["member_dir"], tmp_path / "d", break_it)
    cal = tmp_path / "calibrated"
    cal.mkdir()
    for u in good:   # finished before (saves re-calibrating them here)
        shutil.copytree(restored["cal"] / f"{u}.ms.split.cal", cal / f"{u}.ms.split.cal")
    res = restore_manual_member(member, cal, RestoreOptions(spacesaving=2))
    r = res["eb_results"][bad]
    assert res["status"] == "failed"
    assert r["status"] == "failed" and "deliberately broken script" in r["error"]
    assert "RuntimeError" in r["traceback"]
    assert "deliberately broken script" in Path(r["log"]).read_text()
    assert not (cal / f"{bad}.ms.split.cal").exists()
    for u in good:
        assert res["eb_results"][u]["status"] == "skipped"
    assert all(p["status"] == "not run" for p in res["post"])
    assert not (cal / "calibrated.ms").exists()

