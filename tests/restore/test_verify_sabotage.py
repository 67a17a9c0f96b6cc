"""The verification catches what a restore that "finished" can hide (real CASA, real data).

Sabotaged copies of the synthetic pipeline delivery (shadow members whose
calibration/ is a modified real copy: the shared delivery is never
touched), restored with SPACESAVING=2 (the full MS deleted, the verification
works from the split and the restore's records):

* EB 1's calapply.txt without its TARGET line: the target is left
  uncalibrated; EB 2's amplitude caltable (gacal) with its gains scaled by
  10 %: every calibrated amplitude is off by 1/1.21;
* EB 1's flag version with rows removed: that EB cannot be restored.

Each fails with a message naming the EB, the check and the numbers; the
other EB of the same restore passes.  The clean restores are verified in
test_pipeline_restore.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .conftest import link_all, make_shadow

pytestmark = pytest.mark.slow


def _retar(folder: Path, tgz: Path, names: list[str]) -> None:
    """A flat tarball of ``names`` in ``folder`` (as the pipeline exports them)."""
    with tarfile.open(tgz, "w:gz") as tf:
        for n in names:
            tf.add(folder / n, arcname=n)


def _calibration(edit):
    def build(src: Path, dst: Path) -> None:
        link_all(src, dst, skip=edit(src, dst))
    return build


@pytest.fixture(scope="module")
def sabotaged_run(restore_delivery, tmp_path_factory):
    """EB 1 without its TARGET calapply line; EB 2's gacal gains x 1.1 (via the CLI)."""
    truth = restore_delivery["truth"]
    eb1, eb2 = truth["ebs"]
    gacal = next(t for t in truth["eb"][eb2]["caltables"] if t.endswith(".gacal.tbl"))
    work = tmp_path_factory.mktemp("sabotage")

    def edit(src: Path, dst: Path) -> set[str]:
        import casatools
        name = f"{eb1}.ms.calapply.txt"
        lines = (src / name).read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if "TARGET" not in ln]
        assert len(kept) == len(lines) - 1
        (dst / name).write_text("".join(kept))
        tgz = next(src.glob("*.caltables.tgz"))
        unpacked = work / "caltables"
        unpacked.mkdir()
        with tarfile.open(tgz) as tf:
            names = tf.getnames()
            tf.extractall(unpacked, filter="data")
        tb = casatools.table()
        tb.open(str(unpacked / gacal), nomodify=False)
        try:
            tb.putcol("CPARAM", tb.getcol("CPARAM") * 1.1)
        finally:
            tb.close()
        _retar(unpacked, dst / tgz.name, sorted({n.split("/")[0] for n in names}))
        return {name, tgz.name}

    shadow = make_shadow(restore_delivery["member_dir"], work / "in",
                         {"calibration": _calibration(edit)})
    out = work / "calibrated"
    cmd = [sys.executable, "-m", "almaqa_casa", "qa_restore", "--deliverydir", str(shadow),
           "--outdir", str(out), "--spacesaving", "2", "--dosplit", "true", "--nprocs", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=work)
    report = json.loads((out / "restore.json").read_text())
    return p, report, out, truth


def _check(report, eb, name):
    (c,) = [c for c in report["ebs"][eb]["verification"]["checks"] if c["check"] == name]
    return c


def test_target_left_uncalibrated_fails_loudly(sabotaged_run):
    p, report, out, truth = sabotaged_run
    eb1 = truth["ebs"][0]
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]
    assert report["status"] == "failed" and report["verification"]["status"] == "failed"
    c = _check(report, eb1, "coverage")
    assert c["status"] == "fail"
    m = re.search(rf"^{eb1}: coverage: (\d+) of (\d+) unflagged science/calibrator rows are "
                  r"selected by no calapply line and are left UNCALIBRATED \(the science target "
                  r"among them\)", c["message"])
    assert m, c["message"]
    unc = {(u["intent"], u["field"]): 0 for u in c["numbers"]["uncovered"]}
    for u in c["numbers"]["uncovered"]:
        unc[(u["intent"], u["field"])] += u["rows"]
    assert set(unc) == {("TARGET", truth["target"]), ("CHECK", "J1932-2553")}
    assert int(m.group(1)) == sum(unc.values())
    assert f"TARGET rows of field {truth['target']}" in c["message"]
    # the CLI summary says so: the EB, the check, the numbers
    assert f"FAIL: {eb1}: coverage: {m.group(1)} of {m.group(2)}" in p.stdout
    assert "verification: failed" in p.stdout
    # the other checks of that EB hold: the remaining lines select rows, the data are finite
    assert _check(report, eb1, "calapply")["status"] == "pass"
    assert _check(report, eb1, "data")["status"] == "pass"


def test_gains_scaled_by_ten_percent_fail_the_flux_check(sabotaged_run):
    p, report, out, truth = sabotaged_run
    eb2 = truth["ebs"][1]
    c = _check(report, eb2, "flux")
    assert c["status"] == "fail"
    assert c["message"].startswith(f"{eb2}: flux: flux calibrator J1924-2914 differs from "
                                   "flux.csv beyond the tolerance")
    for m in c["numbers"]["spws"]:
        assert m["ratio"] == pytest.approx(1 / 1.21, rel=2e-3), m
        assert m["tolerance"] < 0.03
        assert f"spw {m['spw']}: {m['measured']:.4g} Jy vs {m['expected']:.4g} Jy (-17." \
               in c["message"]
    others = {c["check"]: c["status"] for c in report["ebs"][eb2]["verification"]["checks"]}
    assert others == {"calapply": "pass", "coverage": "pass", "data": "pass", "flags": "pass",
                      "flux": "fail", "renorm": "pass"}
    html = (out / "restore.html").read_text()
    assert "checks failed" in html and f"{eb2}: flux: flux calibrator" in html


def test_verify_false_skips_the_verification(sabotaged_run):
    """The same (complete) restore again with verify=False: nothing to redo, nothing verified,
    the status is the restore's own."""
    p, report, out, truth = sabotaged_run
    from almaqa_casa import qa_restore
    shadow = Path(report["member"])
    r = qa_restore(deliverydir=str(shadow), outdir=str(out), spacesaving=2, dosplit=True,
                   nprocs=1, verify=False)
    assert all(s["skipped"] for s in r["steps"])
    assert r["status"] == "ok" and r["verification"] == {truth["mous"]: "skipped"}
    assert r["members"][0]["verification"]["note"] == "verify=False"
    assert json.loads((out / "restore.json").read_text())["verification"]["status"] == "skipped"


def test_flag_version_with_rows_removed(restore_delivery, tmp_path):
    import casatools
    truth = restore_delivery["truth"]
    eb1, eb2 = truth["ebs"]
    removed = 100

    def edit(src: Path, dst: Path) -> set[str]:
        name = f"{eb1}.ms.flagversions.tgz"
        unpacked = tmp_path / "fv"
        unpacked.mkdir()
        with tarfile.open(src / name) as tf:
            tf.extractall(unpacked, filter="data")
        pf = unpacked / f"{eb1}.ms.flagversions" / "flags.Pipeline_Final"
        tb = casatools.table()
        tb.open(str(pf))
        try:              # its storage managers cannot remove rows: copy the others
            n = tb.nrows()
            sub = tb.selectrows(list(range(n - removed)))
            sub.copy(str(tmp_path / "short"), deep=True, valuecopy=True).close()
            sub.close()
        finally:
            tb.close()
        shutil.rmtree(pf)
        os.replace(tmp_path / "short", pf)
        _retar(unpacked, dst / name, [f"{eb1}.ms.flagversions"])
        edit.nrows = n
        return {name}

    shadow = make_shadow(restore_delivery["member_dir"], tmp_path / "in",
                         {"calibration": _calibration(edit)})
    from almaqa_casa import qa_restore
    r = qa_restore(deliverydir=str(shadow), outdir=str(tmp_path / "o"), spacesaving=2,
                   dosplit=True, nprocs=1)
    n = edit.nrows
    assert r["status"] == "failed"
    v = r["members"][0]["verification"]
    assert v["status"] == "failed" and r["verification"] == {truth["mous"]: "failed"}
    (c,) = v["ebs"][eb1]["checks"]
    assert c["status"] == "fail" and c["message"].startswith(f"{eb1}: restore: the EB was not "
                                                             "restored")
    assert f"flag version Pipeline_Final has {n - removed} rows but the imported MS has {n}" \
        in c["message"]
    assert v["ebs"][eb2]["status"] == "passed"
    assert {c["check"] for c in v["ebs"][eb2]["checks"] if c["status"] == "pass"} == {
        "calapply", "coverage", "data", "flags", "flux", "renorm"}
    assert eb1 in r["error"] and str(n - removed) in r["error"]
    # the restored EB is in the report with its verification; the failed one with its error
    rep = json.loads((tmp_path / "o" / "restore.json").read_text())
    assert rep["ebs"][eb1]["status"] == "failed" and rep["ebs"][eb2]["status"] == "ok"
    assert np.isfinite(rep["ebs"][eb2]["seconds"])
