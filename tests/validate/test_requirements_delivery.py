"""qa_validate reads its requirements from the delivery's SBSummary.xml and judges each
product at its own bandwidth and frequency (real FITS made by CASA; text ASDM tables)."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from almaqa_casa.validate import validate_delivery, write_reports
from tests.validate.builders import BEAM, EB, MOUS, NOISE, build_pipeline_delivery, member_dir
from tests.validate.test_requirements import sbsummary

M = f"member.{MOUS}"
CONT = f"{M}.NGC_253_sci.spw16_18.cont.I.pbcor.fits"
CUBE = f"{M}.NGC_253_sci.spw16.cube.I.pbcor.fits"
GOAL_JY, GOAL_BW = 0.5e-3, 7.5e6            # 0.5 mJy in 7.5 MHz
SPW_BW = 1.875e9                             # spw 16 and 18 in the ASDM
CHAN_BW = 1.0e6                              # the builder's cubes: 1 MHz channels
FREQ = 230.0e9                               # the builder's images start at 230 GHz
GOALS = [f"representativeFrequency = {FREQ / 1e9} GHz", "minAcceptableAngResolution = 0.5 arcsec",
         "maxAcceptableAngResolution = 1.2 arcsec", "dynamicRange = 1.0",
         f"representativeBandwidth = {GOAL_BW / 1e6} MHz", "representativeSource = NGC_253",
         f"sensitivityGoal = {GOAL_JY * 1e3} mJy", "SBName = NGC_253_a_06_TM1",
         "representativeWindow = X1#ALMA_RB_06#BB_1#SW-01#FULL_RES",
         "maxAllowedBeamAxialRatio = 999.999", f"spectralDynamicRangeBandWidth = {GOAL_BW / 1e6} MHz"]


def spectral_window_xml(bandwidths: dict[int, float]) -> str:
    rows = "".join(f"<row> <spectralWindowId> SpectralWindow_{k} </spectralWindowId> <numChan> 1920 "
                   f"</numChan> <refFreq> 230.0E9 </refFreq> <totBandwidth> {bw!r} </totBandwidth> "
                   "</row>\n" for k, bw in bandwidths.items())
    return f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<SpectralWindowTable>\n{rows}</SpectralWindowTable>\n'


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_pipeline_delivery(tmp_path_factory.mktemp("delivery"))


@pytest.fixture
def delivery(base, tmp_path):
    """A copy with the ASDM's SBSummary.xml and SpectralWindow.xml, as an archive ASDM has them."""
    dst = tmp_path / "d"
    shutil.copytree(base["root"], dst, symlinks=True)
    asdm = member_dir(dst) / "raw" / f"{EB}.asdm.sdm"
    (asdm / "SBSummary.xml").write_bytes(sbsummary(GOALS))
    (asdm / "SpectralWindow.xml").write_text(
        spectral_window_xml({0: 7.5e9, 16: SPW_BW, 17: 2e9, 18: SPW_BW}))
    return dst


def _checks(v) -> dict:
    return {(os.path.basename(im["file"]), c["what"]): c for im in v.images for c in im["checks"]}


def test_requirements_come_from_sbsummary_and_scale_per_product(delivery, tmp_path):
    v = validate_delivery(delivery, checks="images")
    req = v.requirements["members"][MOUS]
    assert req["source"] == "SBSummary.xml"
    sb = f"raw/{EB}.asdm.sdm/SBSummary.xml"
    assert req["sources"]["sensitivity"] == f"SBSummary.xml ({sb}, line 10)"
    assert (req["sensitivity_jy_per_beam"], req["bandwidth_hz"]) == pytest.approx((GOAL_JY, GOAL_BW))
    assert (req["res_min_arcsec"], req["res_max_arcsec"]) == (0.5, 1.2)
    assert req["science_goal"]["sb_name"] == "NGC_253_a_06_TM1"
    (info,) = [f for f in v.findings if f.code == "I007"]
    assert "requirements (SBSummary.xml)" in info.message and "0.5 mJy/beam in 7.5 MHz" in info.message
    got = _checks(v)
    # the calibrator image is not a science target: not judged
    assert {k[0] for k in got} == {CONT, CUBE}
    # cube: per 1 MHz channel; continuum: spw 16 + 18 from the ASDM
    cube, cont = got[(CUBE, "sensitivity")], got[(CONT, "sensitivity")]
    assert cube["per_channel"] and cube["bandwidth_hz"] == CHAN_BW
    assert cube["required"] == pytest.approx(GOAL_JY * math.sqrt(GOAL_BW / CHAN_BW))
    assert cont["bandwidth_hz"] == 2 * SPW_BW and not cont["per_channel"]
    assert "SpectralWindow.xml" in cont["bandwidth_source"]
    assert cont["required"] == pytest.approx(GOAL_JY * math.sqrt(GOAL_BW / (2 * SPW_BW)))
    # the same noise (1 mJy/beam per plane) meets the goal per channel, not in 3.75 GHz
    assert cube["value"] == pytest.approx(NOISE, rel=0.1) and cube["pass"]
    assert cont["value"] == pytest.approx(NOISE, rel=0.1) and not cont["pass"]
    assert {f.code for f in v.findings if f.file.endswith(CONT)} >= {"I003", "I004"}
    (i003,) = [f for f in v.findings if f.code == "I003"]
    assert "at 3750 MHz" in i003.message and "goal 0.5 mJy/beam x sqrt(7.5 MHz / 3750 MHz)" \
        in i003.message
    # resolution: the beam (1.0" x 0.8") lies in 0.5-1.2 arcsec at 230 GHz
    res = got[(CUBE, "resolution")]
    assert res["value"] == pytest.approx(math.sqrt(BEAM[0] * BEAM[1]))
    assert res["scale"] == pytest.approx(1.0, abs=1e-4) and res["pass"]
    # the page states where the requirements come from, with units
    paths = write_reports(v, tmp_path / "out")
    html = Path(paths["html"]).read_text()
    assert "requirements from <b>SBSummary.xml</b>" in html
    assert "0.5 mJy/beam" in html and "7.5 MHz" in html and "0.5 – 1.2 arcsec" in html
    assert json.loads(Path(paths["json"]).read_text())["requirements"]["members"][MOUS][
        "source"] == "SBSummary.xml"


def test_parameters_override_the_delivery(delivery):
    v = validate_delivery(delivery, checks="images", req_sensitivity="40mJy/beam",
                          req_frequency="115GHz")
    req = v.requirements["members"][MOUS]
    assert req["source"] == "SBSummary.xml and parameters"
    assert req["sources"]["sensitivity"] == "parameter req_sensitivity"
    assert req["sources"]["bandwidth"].startswith("SBSummary.xml")
    got = _checks(v)
    assert got[(CONT, "sensitivity")]["required"] == pytest.approx(
        40e-3 * math.sqrt(GOAL_BW / (2 * SPW_BW)))
    assert got[(CONT, "sensitivity")]["pass"]
    # stated at 115 GHz, the range halves at 230 GHz: the 0.89" beam is now too coarse
    res = got[(CONT, "resolution")]
    assert res["scale"] == pytest.approx(0.5, rel=1e-4) and not res["pass"]
    # a range typed in replaces the delivery's
    v2 = validate_delivery(delivery, checks="images", req_resolution="0.1arcsec~0.2arcsec")
    assert v2.requirements["members"][MOUS]["res_max_arcsec"] == pytest.approx(0.2)
    assert not _checks(v2)[(CUBE, "resolution")]["pass"]


def test_without_asdm_tables_nothing_is_judged(base):
    v = validate_delivery(base["root"], checks="images")
    assert v.requirements["members"][MOUS]["source"] == "none"
    assert all(im["checks"] == [] for im in v.images)
    assert not [f for f in v.findings if f.code in ("I006", "I007")]


def test_unreadable_science_goal_is_an_error_naming_file_and_line(delivery):
    sb = member_dir(delivery) / "raw" / f"{EB}.asdm.sdm" / "SBSummary.xml"
    sb.write_bytes(sbsummary(["sensitivityGoal = lots mJy"]))
    v = validate_delivery(delivery, checks="images", thumbnails=False)
    (err,) = [f for f in v.findings if f.code == "I006"]
    assert err.severity == "error" and err.file == str(sb)
    assert f"{sb}, line 10 (sensitivityGoal)" in err.message
    assert v.requirements["members"][MOUS]["source"] == "none"


def test_fifo_named_like_the_table_is_never_opened(delivery):
    sb = member_dir(delivery) / "raw" / f"{EB}.asdm.sdm" / "SBSummary.xml"
    sb.unlink()
    os.mkfifo(sb)
    v = validate_delivery(delivery, thumbnails=False)  # would block forever if opened
    (err,) = [f for f in v.findings if f.code == "I006"]
    assert "not a regular file (special); not read" in err.message and str(sb) in err.file
