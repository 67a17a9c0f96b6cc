"""The manually calibrated synthetic delivery."""
from __future__ import annotations

import os

import pytest

from .helpers import PRODUCT_RE, products


def test_manual_scripts(manual_delivery):
    t = manual_delivery["truth"]
    s = os.path.join(manual_delivery["member_dir"], "script")
    names = sorted(os.listdir(s))
    for eb in t["ebs"]:
        p = os.path.join(s, f"{eb}.ms.scriptForCalibration.py")
        text = open(p).read()
        compile(text, p, "exec")
        for token in ("thesteps", "step_title", "applyonly", "mysteps", f"importasdm('{eb}'",
                      f"'{eb}.ms.split'", f"'{eb}.ms.split.cal'", "bandpass(", "gaincal(", "applycal(",
                      "setjy(", "PLEASE USE THE SAME VERSION OF CASA"):
            assert token in text, (eb, token)
    m = t["mous"]
    assert f"member.{m}.scriptForImagingPrep.py" in names
    assert f"member.{m}.scriptForImaging.py" in names
    assert f"member.{m}.scriptForPI.py" in names
    assert not [n for n in names if "pprequest" in n or "piperestorescript" in n]
    prep = open(os.path.join(s, f"member.{m}.scriptForImagingPrep.py")).read()
    assert "concatvis='calibrated.ms'" in prep
    cal = os.listdir(os.path.join(manual_delivery["member_dir"], "calibration"))
    for eb in t["ebs"]:
        assert f"{eb}.calibration.tgz" in cal


def test_manual_calibration_truth(manual_delivery):
    t = manual_delivery["truth"]
    for eb in t["ebs"]:
        for k, r in t["eb"][eb]["calibrated_target_ratio_per_spw"].items():
            assert abs(r - 1) < 0.02, (eb, k, r)
    for k, r in t["calibrated_ms_target_ratio_per_spw"].items():
        assert abs(r - 1) < 0.02, (k, r)


def test_manual_products(manual_delivery):
    names = products(manual_delivery["member_dir"])
    assert names
    for n in names:
        m = PRODUCT_RE.match(n)
        assert m and m.group("type") == "sci", n


def test_version_guard(manual_delivery, tmp_path):
    """A version-pinned script stops with the observatory's message, before any work."""
    from almaqa_casa.synth import SynthSpec
    from almaqa_casa.synth.manual_scripts import calibration_script

    t = manual_delivery["truth"]
    eb = t["ebs"][0]
    info = {"bad": t["eb"][eb]["bad_data"]}
    spec = SynthSpec(calibration="manual", casa_version_pin="5.1.1", seed=t["spec"]["seed"])
    text = calibration_script(spec, eb, info)
    assert "re.search('^5.1.1'" in text
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(SystemExit) as exc:
            exec(compile(text, "pinned.py", "exec"), {"__name__": "__main__", "applyonly": True})
    finally:
        os.chdir(old)
    assert "SAME VERSION OF CASA" in str(exc.value) and "5.1.1" in str(exc.value)
    assert os.listdir(tmp_path) == []
