"""The manual path on a tiny real delivery (tests.restore.test_manual_support.py):
per-EB scripts that run real CASA tasks, 2 EBs, PolCal/FluxCal/ImagingPrep.

The end-to-end test on the synthetic manual delivery is test_manual_synth.py.
"""
import os
import shutil
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.restore.disk import DiskError
from almaqa_casa.restore.options import RestoreOptions
from almaqa_casa.restore.plan import PlanError
from tests.restore.test_manual_support import (
    EB1,
    EB2,
    PRESENT,
    check_tree,
    inputs_checksum,
    make_tiny_delivery,
    restore_manual_member,
    simulate_template,
)


@pytest.fixture(scope="module")
def template_ms(tmp_path_factory):
    return simulate_template(tmp_path_factory.mktemp("tpl"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, template_ms):
    return make_tiny_delivery(tmp_path_factory.mktemp("tiny"), template_ms)


@pytest.fixture(autouse=True)
def _tiny_inputs_untouched(request, restore_checksum):
    """The shared tiny delivery's input folders are identical before and after every test."""
    if "tiny" not in request.fixturenames:
        yield
        return
    tiny = request.getfixturevalue("tiny")
    before = inputs_checksum(restore_checksum, tiny)
    yield
    assert inputs_checksum(restore_checksum, tiny) == before


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_spacesaving_levels_leave_scriptforpi_files(tiny, tmp_path, level, restore_checksum):
    before = inputs_checksum(restore_checksum, tiny)
    cal = tmp_path / "calibrated"
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=level))
    assert res["status"] == "ok", res
    assert res["ebs"] == [EB1, EB2]
    assert (cal / ".order.txt").read_text().split("\n")[:-1] == [
        f"{EB1} imported", f"{EB2} imported", "scriptForPolCalibration",
        "scriptForFluxCalibration", "scriptForImagingPrep"]
    check_tree(cal, level)
    for uid in (EB1, EB2):
        r = res["eb_results"][uid]
        assert r["status"] == "ok" and r["log"].endswith(f"{uid}.scriptForCalibration.log")
        assert "global variable mysteps not set." in Path(r["log"]).read_text()
    assert res["calibrated_ms"] == str(cal / "calibrated.ms")
    if level < 3:
        assert res["produced"] == {u: [str(cal / f"{u}.ms.split.cal")] for u in (EB1, EB2)}
    assert inputs_checksum(restore_checksum, tiny) == before


def test_default_output_is_member_calibrated(tmp_path, template_ms, restore_checksum):
    member = make_tiny_delivery(tmp_path / "d", template_ms, post=False)
    before = inputs_checksum(restore_checksum, member)
    res = restore_manual_member(member, opts=RestoreOptions(spacesaving=3))
    assert res["status"] == "ok"
    cal = member / "calibrated"
    assert res["calibrated"] == str(cal)
    check_tree(cal, 3, post=False)          # no calibrated.ms: the split.cal are kept
    assert any("calibrated.ms" in w for w in res["warnings"])
    # relative links, as scriptForPI.py makes them
    assert os.readlink(cal / f"{EB1}.calibration" / EB1) == f"../../raw/{EB1}.asdm.sdm"
    assert inputs_checksum(restore_checksum, member) == before


def test_failing_script_stops_only_its_eb_and_resume(tiny, tmp_path, monkeypatch,
                                                      restore_checksum):
    before = inputs_checksum(restore_checksum, tiny)
    cal = tmp_path / "calibrated"
    monkeypatch.setenv("QA_TEST_FAIL_EB", EB1)
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=1))
    assert res["status"] == "failed"
    r1, r2 = res["eb_results"][EB1], res["eb_results"][EB2]
    assert r1["status"] == "failed"
    assert "calibration of uid___A002_Xb0_X9 failed on purpose" in r1["error"]
    assert "RuntimeError" in r1["traceback"] and "scriptForCalibration.py" in r1["traceback"]
    assert "failed on purpose" in Path(r1["log"]).read_text()
    assert r2["status"] == "ok" and (cal / f"{EB2}.ms.split.cal").is_dir()
    assert all(p["status"] == "not run" for p in res["post"])
    assert not (cal / "calibrated.ms").exists()
    # re-run without the fault: EB2 skipped, EB1 redone from a clean folder, post scripts run
    monkeypatch.delenv("QA_TEST_FAIL_EB")
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=1))
    assert res["status"] == "ok", res
    assert res["eb_results"][EB2]["status"] == "skipped"
    assert res["eb_results"][EB1]["status"] == "ok"
    check_tree(cal, 1)
    # and once more: everything done, nothing run again
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=1))
    assert res["status"] == "ok"
    assert {r["status"] for r in res["eb_results"].values()} == {"skipped"}
    assert {p["status"] for p in res["post"]} == {"skipped"}
    check_tree(cal, 1)
    assert inputs_checksum(restore_checksum, tiny) == before


def test_interrupted_post_script_is_cleaned_and_rerun(tiny, tmp_path):
    cal = tmp_path / "calibrated"
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=0))
    assert res["status"] == "ok"
    # as if killed inside ImagingPrep: no completion record, a 'started' record, and a
    # half-made calibrated.ms
    import json
    (cal / ".qa_restore" / "post__scriptForImagingPrep.json").unlink()
    rec = cal / ".qa_restore" / "post__scriptForImagingPrep.started.json"
    before = sorted(e for e in os.listdir(cal) if not e.startswith(".")
                    and e not in ("calibrated.ms", "scriptForImagingPrep.log"))
    rec.write_text(json.dumps({"before": before}))
    shutil.rmtree(cal / "calibrated.ms")
    (cal / "calibrated.ms").mkdir()            # incomplete: no table.dat
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=0))
    assert res["status"] == "ok"
    assert [p["status"] for p in res["post"]] == ["skipped", "skipped", "ok"]
    assert (cal / "calibrated.ms" / "table.dat").is_file()
    check_tree(cal, 0)


def test_version_pinned_script(tmp_path, template_ms, restore_checksum):
    member = make_tiny_delivery(tmp_path / "d", template_ms, version="5.1.1")
    script = member / "script" / f"{EB1}.ms.scriptForCalibration.py"
    text = script.read_text()
    before = inputs_checksum(restore_checksum, member)
    cal = tmp_path / "calibrated"
    res = restore_manual_member(member, cal, RestoreOptions())
    assert res["status"] == "failed"
    err = res["error"]
    assert "5.1.1" in err and PRESENT in err and "ignoreversion=True" in err
    assert EB1 in err and EB2 in err
    assert not cal.exists()                    # stopped before any work
    assert {r["status"] for r in res["eb_results"].values()} == {"not run"}
    # dryrun shows it too
    res = restore_manual_member(member, cal, RestoreOptions(dryrun=True))
    assert res["status"] == "failed" and "5.1.1" in res["error"] and not cal.exists()
    # ignoreversion: a patched copy runs; the delivered script is untouched
    res = restore_manual_member(member, cal, RestoreOptions(ignoreversion=True))
    assert res["status"] == "ok", res
    ran = Path(res["eb_results"][EB1]["ran"])
    assert ran.parent == cal / f"{EB1}.calibration" and ran.name.endswith(".ignoreversion.py")
    assert "qa_restore ignoreversion" in ran.read_text()
    assert any("ignoreversion=True" in w for w in res["warnings"])
    assert (cal / "calibrated.ms").is_dir()
    assert script.read_text() == text
    assert inputs_checksum(restore_checksum, member) == before


def test_sys_exit_in_script_fails_that_eb(tmp_path, template_ms):
    member = make_tiny_delivery(tmp_path / "d", template_ms, post=False)
    s = member / "script" / f"{EB2}.ms.scriptForCalibration.py"
    s.write_text(s.read_text().replace("mystep = 1\n", "mystep = 1\nsys.exit('stop here')\n"))
    cal = tmp_path / "calibrated"
    res = restore_manual_member(member, cal, RestoreOptions())
    assert res["status"] == "failed"
    assert res["eb_results"][EB1]["status"] == "ok"
    assert res["eb_results"][EB2]["status"] == "failed"
    assert "sys.exit('stop here')" in res["eb_results"][EB2]["error"]


def test_usems_reuses_imported_ms(tiny, tmp_path, template_ms):
    cal = tmp_path / "calibrated"
    res = restore_manual_member(tiny, cal, RestoreOptions(usems=True))
    assert res["status"] == "failed"
    assert "usems=True: cannot find calibrated/" in res["eb_results"][EB1]["error"]
    shutil.rmtree(cal)
    for uid in (EB1, EB2):
        (cal / f"{uid}.calibration").mkdir(parents=True)
        shutil.copytree(template_ms, cal / f"{uid}.calibration" / f"{uid}.ms")
    res = restore_manual_member(tiny, cal, RestoreOptions(usems=True))
    assert res["status"] == "ok", res
    assert (cal / ".order.txt").read_text().startswith(f"{EB1} reused\n{EB2} reused\n")


def test_dryrun_changes_nothing(tiny, tmp_path, capsys, restore_checksum):
    before = inputs_checksum(restore_checksum, tiny)
    cal = tmp_path / "calibrated"
    res = restore_manual_member(tiny, cal, RestoreOptions(dryrun=True, spacesaving=3))
    assert res["status"] == "ok" and not cal.exists()
    out = capsys.readouterr().out
    assert out.index(EB1) < out.index(EB2)
    assert "scriptForImagingPrep.py" in out and "delete" in out
    assert [t["eb"] for t in res["plan"]["steps"] if t["kind"] == "manual-eb"] == [EB1, EB2]
    assert inputs_checksum(restore_checksum, tiny) == before


def test_semipass_missing_and_disk(tmp_path, template_ms):
    member = make_tiny_delivery(tmp_path / "d", template_ms, semipass=True, post=False)
    res = restore_manual_member(member, tmp_path / "c1", RestoreOptions(dryrun=True))
    assert res["semipass"] == ["uid___A002_Xb0_X200"] and res["ebs"] == [EB1, EB2]
    assert any("semipass" in w for w in res["warnings"])
    with pytest.raises(DiskError, match="SPACESAVING"):
        restore_manual_member(member, tmp_path / "c2", RestoreOptions(), free=lambda p: 10)
    assert not (tmp_path / "c2").exists()
    shutil.rmtree(member / "raw" / f"{EB2}.asdm.sdm")
    with pytest.raises(PlanError, match=f"{EB2}"):
        restore_manual_member(member, tmp_path / "c3", RestoreOptions())


def test_killed_run_resumes(tiny, tmp_path):
    """A restore killed (SIGKILL) inside EB2's script completes on re-run: EB1 is kept,
    EB2's half-made working folder is cleared and redone."""
    import signal
    import subprocess
    import sys
    import time
    cal = tmp_path / "calibrated"
    code = ("import almaqa_casa\n"
            "from almaqa_casa.restore.engine import restore_member\n"
            "from almaqa_casa.restore.options import RestoreOptions\n"
            f"restore_member({str(tiny)!r}, RestoreOptions(spacesaving=1, outdir={str(cal)!r}))\n")
    env = dict(os.environ, QA_TEST_HANG_EB=EB2)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hang = cal / f"{EB2}.calibration" / "hanging"
        t0 = time.time()
        while not hang.exists():
            assert proc.poll() is None, "the restore ended before it could be killed"
            assert time.time() - t0 < 300
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (cal / f"{EB1}.ms.split.cal").is_dir() and not (cal / f"{EB2}.ms.split.cal").exists()
    res = restore_manual_member(tiny, cal, RestoreOptions(spacesaving=1))
    assert res["status"] == "ok", res
    assert res["eb_results"][EB1]["status"] == "skipped"
    assert res["eb_results"][EB2]["status"] == "ok"
    assert not (cal / f"{EB2}.calibration" / "hanging").exists()
    check_tree(cal, 1)


def test_renormalization_keeps_the_ms(tmp_path, template_ms):
    """scriptForPI.py 2.5: a FluxCal script with ACreNorm caps SPACESAVING at 1."""
    member = make_tiny_delivery(tmp_path / "d", template_ms)
    flux = member / "script" / "member.uid___A001_X3621_X541.scriptForFluxCalibration.py"
    flux.write_text("# ACreNorm: amplitude renormalization (analysisUtils)\n" + flux.read_text())
    cal = tmp_path / "calibrated"
    res = restore_manual_member(member, cal, RestoreOptions(spacesaving=3))
    assert res["status"] == "ok"
    assert any("lowered to 1" in w for w in res["warnings"])
    check_tree(cal, 1)


def test_member_level_casa_work_holds_the_client_lock(tiny, tmp_path, monkeypatch):
    """The verification and the MS HISTORY run in this process.  With casampi servers the
    MOUSes run in threads (scale.map_members), and CASA's tools are not thread-safe, so
    that work holds scale.client_lock, as the member-level steps do."""
    from almaqa_casa import scale
    from almaqa_casa.restore import verify
    held = []
    real = verify.finish_member

    def recording(*args, **kw):
        held.append(scale.client_lock._is_owned())
        return real(*args, **kw)

    monkeypatch.setattr(verify, "finish_member", recording)
    res = restore_manual_member(tiny, tmp_path / "calibrated", RestoreOptions(spacesaving=1))
    assert res["status"] == "ok", res
    assert held == [True]
    assert not scale.client_lock._is_owned()
