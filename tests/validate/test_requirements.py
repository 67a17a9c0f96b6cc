"""Requirements from the ASDM science goal (SBSummary.xml) and each product's verdict (pure)."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest

from almaqa_casa.delivery.sbsummary import (
    SBSummaryError,
    parse_sbsummary,
    parse_spectral_windows,
    to_unit,
)
from almaqa_casa.validate.requirements import Given, judge, product_bandwidth, resolve


def sbsummary(goals: list[str], num: int | None = None, quote: str = "&quot;") -> bytes:
    """An SBSummary.xml in the layout of real ALMA files (one row, quoted goal strings)."""
    items = " ".join(f"{quote}{g}{quote}" for g in goals)
    n = len(goals) if num is None else num
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<SBSummaryTable xmlns:sbsmmr="http://Alma/XASDM/SBSummaryTable" schemaVersion="4">\n'
        '<Entity entityId="uid://A002/Xab/X17" entityTypeName="SBSummaryTable"/>\n'
        "  <row>\n"
        "    <sBSummaryId> SBSummary_0 </sBSummaryId>\n"
        "    <frequency> 230.5 </frequency>\n"
        "    <frequencyBand>ALMA_RB_06</frequencyBand>\n"
        "    <sbType>OBSERVER</sbType>\n"
        f"    <numScienceGoal> {n} </numScienceGoal>\n"
        f"    <scienceGoal> 1 {len(goals)} {items}  </scienceGoal>\n"
        '    <numWeatherConstraint> 1 </numWeatherConstraint>\n'
        '    <weatherConstraint> 1 1 &quot;maxPWVC = 1.8 mm&quot;  </weatherConstraint>\n'
        "  </row>\n</SBSummaryTable>\n").encode("latin-1")


GOALS = ["representativeFrequency = 230.538 GHz", "minAcceptableAngResolution = 0.45 arcsec",
         "maxAcceptableAngResolution = 1200 mas", "dynamicRange = 120.5",
         "representativeBandwidth = 7.8125 MHz", "representativeSource = NGC 253",
         "sensitivityGoal = 850 uJy", "SBName = NGC253_a_06_TM1",
         "representativeWindow = X12#ALMA_RB_06#BB_1#SW-01#FULL_RES",
         "maxAllowedBeamAxialRatio = 999.999", "spectralDynamicRangeBandWidth = None"]


def test_real_layout_goals_in_si_units():
    (g,) = parse_sbsummary(sbsummary(GOALS), "raw/x.asdm.sdm/SBSummary.xml")
    assert g.line == 10 and g.file == "raw/x.asdm.sdm/SBSummary.xml"
    assert g.representative_frequency_hz == pytest.approx(230.538e9)
    assert (g.min_resolution_arcsec, g.max_resolution_arcsec) == pytest.approx((0.45, 1.2))
    assert g.representative_bandwidth_hz == pytest.approx(7.8125e6)
    assert g.sensitivity_goal_jy_per_beam == pytest.approx(850e-6)
    assert g.dynamic_range == pytest.approx(120.5)
    assert g.representative_source == "NGC 253" and g.sb_name == "NGC253_a_06_TM1"
    assert g.representative_window == "X12#ALMA_RB_06#BB_1#SW-01#FULL_RES"
    assert g.max_beam_axial_ratio is None          # 999.999: no limit
    assert g.spectral_dynamic_range_bandwidth_hz is None
    assert g.states_requirements
    # exportasdm writes plain double quotes: the same goals
    (g2,) = parse_sbsummary(sbsummary(GOALS, quote='"'), "f")
    assert g2.key() == g.key()


def test_placeholders_and_zeros_state_nothing():
    (g,) = parse_sbsummary(sbsummary(["science goal t.b.d."]), "f")
    assert not g.states_requirements and g.entries == ()
    (z,) = parse_sbsummary(sbsummary(["minAcceptableAngResolution = 0.0 arcsec",
                                      "maxAcceptableAngResolution = 0.0 arcsec",
                                      "sensitivityGoal = 0.0 mJy",
                                      "representativeBandwidth = 0.0 MHz"]), "f")
    assert (z.max_resolution_arcsec, z.sensitivity_goal_jy_per_beam,
            z.representative_bandwidth_hz) == (None, None, None)
    # PIPE-593: only a maximum given
    (m,) = parse_sbsummary(sbsummary(["minAcceptableAngResolution = 0.0 arcsec",
                                      "maxAcceptableAngResolution = 0.8 arcsec"]), "f")
    assert (m.min_resolution_arcsec, m.max_resolution_arcsec) == (0.0, 0.8)


@pytest.mark.parametrize("goals, num, match", [
    (["sensitivityGoal = lots mJy"], None, r"f\.xml, line 10 \(sensitivityGoal\).*'lots mJy'"),
    (["sensitivityGoal = 3 arcsec"], None, r"line 10 \(sensitivityGoal\).*no unit of Jy"),
    (["representativeFrequency = 230"], None, r"line 10 \(representativeFrequency\)"),
    (["minAcceptableAngResolution = 2 arcsec", "maxAcceptableAngResolution = 1 arcsec"], None,
     r"line 10: minAcceptableAngResolution 2.0 arcsec is larger"),
    (["dynamicRange = 10"], 3, r"line 10: numScienceGoal is 3 but scienceGoal lists 1"),
])
def test_unreadable_goal_names_file_and_line(goals, num, match):
    with pytest.raises(SBSummaryError, match=match):
        parse_sbsummary(sbsummary(goals, num), "f.xml")


def test_malformed_xml_and_dtd_are_refused_with_the_line():
    broken = sbsummary(GOALS).replace(b"</row>", b"</rwo>")
    with pytest.raises(SBSummaryError, match=r"f, line 13: not well-formed XML"):
        parse_sbsummary(broken, "f")
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa">]>\n'
            b"<SBSummaryTable><row/></SBSummaryTable>")
    with pytest.raises(SBSummaryError, match=r"f, line 2: DOCTYPE declarations are not accepted"):
        parse_sbsummary(bomb, "f")
    with pytest.raises(SBSummaryError, match=r"root element <Other>"):
        parse_sbsummary(b"<Other/>", "f")
    with pytest.raises(SBSummaryError, match=r"declares \[3\] values but holds 1"):
        parse_sbsummary(sbsummary(["a = 1"]).replace(b"1 1 &quot;a", b"1 3 &quot;a"), "f")


def test_units():
    assert to_unit("2167.5 MHz", "Hz", "w") == pytest.approx(2.1675e9)
    assert to_unit("250 mas", "arcsec", "w") == pytest.approx(0.25)
    assert to_unit("0.5 arcmin", "arcsec", "w") == pytest.approx(30.0)
    assert to_unit("5.5 mJy", "Jy", "w") == pytest.approx(5.5e-3)
    assert to_unit("40uJy/beam", "Jy", "w") == pytest.approx(4e-5)
    assert to_unit("47.99", "", "w") == pytest.approx(47.99)
    with pytest.raises(SBSummaryError, match="w: '3 furlongs' has no unit of arcsec"):
        to_unit("3 furlongs", "arcsec", "w")


def test_spectral_windows():
    xml = (b'<?xml version="1.0"?>\n<SpectralWindowTable>\n'
           b"<row> <spectralWindowId> SpectralWindow_16 </spectralWindowId> <numChan> 1920 "
           b"</numChan> <refFreq> 230.0E9 </refFreq> <totBandwidth> 1.875E9 </totBandwidth> "
           b"<name> X1#ALMA_RB_06#BB_1#SW-01#FULL_RES </name> </row>\n"
           b"<row> <spectralWindowId> SpectralWindow_0 </spectralWindowId> <numChan> 4 </numChan>"
           b" <refFreq> 183.3E9 </refFreq> <totBandwidth> 7.5E9 </totBandwidth> </row>\n"
           b"</SpectralWindowTable>\n")
    spws = parse_spectral_windows(xml, "SpectralWindow.xml")
    assert sorted(spws) == [0, 16]
    assert spws[16].bandwidth_hz == 1.875e9 and spws[16].nchan == 1920
    assert spws[16].name == "X1#ALMA_RB_06#BB_1#SW-01#FULL_RES"
    bad = xml.replace(b"SpectralWindow_0 ", b"Window0 ")
    with pytest.raises(SBSummaryError, match=r"SpectralWindow.xml, line 4: spectralWindowId"):
        parse_spectral_windows(bad, "SpectralWindow.xml")


def test_parser_imports_without_casa():
    code = ("import sys; import almaqa_casa.delivery.sbsummary, almaqa_casa.validate.requirements;"
            " assert 'casatools' not in sys.modules, 'CASA imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- decisions -------------------------------------------------------------------------

def _goal():
    (g,) = parse_sbsummary(sbsummary(GOALS), "SB.xml")
    return g


def test_parameters_override_item_by_item():
    r = resolve(Given(), _goal())
    assert r.source == "SBSummary.xml" and r.notes == []
    assert r.sources["sensitivity"] == "SBSummary.xml (SB.xml, line 10)"
    r2 = resolve(Given(sensitivity_jy_per_beam=2e-3, res_max_arcsec=1.0), _goal())
    assert r2.source == "SBSummary.xml and parameters"
    assert (r2.sensitivity_jy_per_beam, r2.bandwidth_hz) == (2e-3, pytest.approx(7.8125e6))
    assert (r2.res_min_arcsec, r2.res_max_arcsec) == (0.0, 1.0)
    assert r2.sources["resolution"] == "parameter req_resolution"
    assert r2.sources["bandwidth"].startswith("SBSummary.xml")
    r3 = resolve(Given(sensitivity_jy_per_beam=1e-3), None)
    assert r3.source == "parameters" and "not known (give req_bandwidth)" in r3.notes[0]
    assert resolve(Given(), None).source == "none"


def test_product_bandwidth_rules():
    spw = {16: 1.875e9, 18: 1.875e9}
    assert product_bandwidth("cube", 30, 1.95e6, None, [16], spw) == (
        1.95e6, "channel width (FITS CDELT of the frequency axis)")
    assert product_bandwidth("cube", 30, 1.95e6, 2.1e6, [16], spw)[0] == 2.1e6  # EFFBW first
    assert product_bandwidth("cont", 1, 14e9, None, [16, 18], spw) == (
        3.75e9, "sum of the bandwidths of spw 16, 18 (ASDM SpectralWindow.xml)")
    assert product_bandwidth("mfs", 1, 1.9e9, None, [20], spw) == (
        1.9e9, "width of the frequency axis (FITS CDELT)")
    bw, why = product_bandwidth("cont", 1, 14e9, None, [16, 20], spw)
    assert bw is None and "no ASDM listing spw 16, 20" in why


def test_sensitivity_scales_with_sqrt_bandwidth_and_per_channel():
    r = resolve(Given(), _goal())  # 0.85 mJy in 7.8125 MHz
    checks, _ = judge(r, bmaj=None, bmin=None, rms=2.0e-3, freq_hz=230e9, bandwidth_hz=1.953125e6,
                      bandwidth_source="channel", per_channel=True)
    (c,) = checks
    assert c["scale"] == pytest.approx(2.0) and c["required"] == pytest.approx(1.7e-3)
    assert c["limit"] == pytest.approx(1.87e-3) and c["pass"] is False and c["per_channel"]
    checks, _ = judge(r, bmaj=None, bmin=None, rms=2.0e-5, freq_hz=230e9, bandwidth_hz=7.5e9,
                      bandwidth_source="sum", per_channel=False)
    assert checks[0]["required"] == pytest.approx(0.85e-3 * math.sqrt(7.8125e6 / 7.5e9))
    assert checks[0]["pass"] is True
    # bandwidth of the product unknown: not judged, and said why
    checks, notes = judge(r, bmaj=None, bmin=None, rms=1e-3, freq_hz=None, bandwidth_hz=None,
                          bandwidth_source="aggregate bandwidth unknown", per_channel=False)
    assert checks == [] and notes == ["sensitivity not judged: aggregate bandwidth unknown"]
    # no bandwidth for the goal: one number for all, as typed
    flat = resolve(Given(sensitivity_jy_per_beam=1e-3), None)
    checks, _ = judge(flat, bmaj=None, bmin=None, rms=1.05e-3, freq_hz=None, bandwidth_hz=5e6,
                      bandwidth_source="x", per_channel=True)
    assert checks[0]["scale"] == 1.0 and checks[0]["pass"] is True


def test_resolution_range_scaled_to_the_product_frequency():
    r = resolve(Given(), _goal())  # 0.45-1.2 arcsec at 230.538 GHz
    ok, _ = judge(r, bmaj=1.3, bmin=0.9, rms=None, freq_hz=230.538e9, bandwidth_hz=None,
                  bandwidth_source="", per_channel=False)
    assert ok[0]["value"] == pytest.approx(math.sqrt(1.17)) and ok[0]["pass"]
    assert (ok[0]["lower_limit"], ok[0]["limit"]) == pytest.approx((0.405, 1.32))
    # the same beam at half the frequency: the range doubles (beam ~ 1/frequency)
    half, _ = judge(r, bmaj=0.3, bmin=0.3, rms=None, freq_hz=115.269e9, bandwidth_hz=None,
                    bandwidth_source="", per_channel=False)
    assert half[0]["scale"] == pytest.approx(2.0) and half[0]["min"] == pytest.approx(0.9)
    assert half[0]["pass"] is False  # 0.3" is finer than the 0.81" lower limit there
