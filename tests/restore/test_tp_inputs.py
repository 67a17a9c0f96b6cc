"""Reading a total power delivery's own inputs: jyperk.csv (both forms), the
recorded sdatmcor parameters, the baseline apply lists (pure; no CASA)."""
from __future__ import annotations

import pytest

from almaqa_casa.delivery.jyperk import (
    JyPerKError,
    coverage,
    factors_for_ms,
    ms_csv,
    parse_jyperk,
)
from almaqa_casa.errors import AlmaqaError
from almaqa_casa.restore.tpinputs import parse_calls

MS_BASED = """MS,Antenna,Spwid,Polarization,Factor
uid___A002_X1_X2.ms,PM01,17,XX,40.5
uid___A002_X1_X2.ms,PM01,17,YY,41.0
uid___A002_X1_X2.ms,PM02,17,I,43.25
uid___A002_X1_X3.ms,PM01,17,XX,50.0
"""

SESSION_BASED = """#OUSID=XXXXXX
#OBJECT=Uranus
#FLUXJY=yy,zz,aa
#FLUXFREQ=YY,ZZ,AA
#sessionID,ObservationStartDate(UTC),ObservationEndDate(UTC),Antenna,BandCenter(MHz),BandWidth(MHz),POL,Factor
1,2011-11-11 01:00:00,2011-11-11 01:30:00,CM02,86243.0,500.0,I,10.0
1,2011-11-11 01:00:00,2011-11-11 01:30:00,CM02,86243.0,1000.0,I,30.0
1,2011-11-11 01:00:00,2011-11-11 01:30:00,CM03,86243.0,500.0,I,50.0
1,2011-11-11 01:00:00,2011-11-11 01:30:00,ANONYMOUS,86243.0,500.0,I,30.0
2,2011-11-13 01:45:00,2011-11-13 02:15:00,PM04,86243.0,500.0,I,90.0
"""


def test_ms_based():
    jf = parse_jyperk(MS_BASED, "jyperk.csv")
    assert jf.kind == "ms" and jf.ms_names == ("uid___A002_X1_X2.ms", "uid___A002_X1_X3.ms")
    assert [f.source for f in jf.for_ms("uid___A002_X1_X3")] == ["jyperk.csv:5"]
    f = factors_for_ms(jf, "uid___A002_X1_X2.ms", ["PM01", "PM02", "PM03"], {17: (1e11, 1.01e11)},
                       ["XX", "YY"])
    assert f == {("PM01", 17, "XX"): 40.5, ("PM01", 17, "YY"): 41.0,
                 ("PM02", 17, "XX"): 43.25, ("PM02", 17, "YY"): 43.25}   # 'I' fills both
    text = ms_csv(f, ".x.ms.partial")
    assert text.splitlines()[0] == "MS,Antenna,Spwid,Polarization,Factor"
    assert ".x.ms.partial,PM02,17,YY,43.25" in text.splitlines()
    # no header line is fine, as for the pipeline's reader
    bare = parse_jyperk(MS_BASED.split("\n", 1)[1])
    assert [(f.ms, f.antenna, f.spw, f.pol, f.factor) for f in bare.factors] == \
        [(f.ms, f.antenna, f.spw, f.pol, f.factor) for f in jf.factors]


def test_own_polarization_row_wins_over_i():
    jf = parse_jyperk("a.ms,PM01,0,I,40\na.ms,PM01,0,YY,42\n")
    assert factors_for_ms(jf, "a.ms", ["PM01"], {0: (1, 2)}, ["XX", "YY"]) == {
        ("PM01", 0, "XX"): 40.0, ("PM01", 0, "YY"): 42.0}


def test_session_based_association():
    jf = parse_jyperk(SESSION_BASED, "jyperk.csv")
    assert jf.kind == "session" and dict(jf.meta)["OBJECT"] == "Uranus" and len(jf.session_rows) == 5
    spws = {3: (86.0e9, 86.48e9)}            # covered by the 500 MHz band; the 1 GHz one is too wide
    f = factors_for_ms(jf, "x.ms", ["CM02", "CM03", "PM04"], spws, ["XX", "YY"], session=1)
    assert f == {("CM02", 3, "XX"): 10.0, ("CM02", 3, "YY"): 10.0, ("CM03", 3, "XX"): 50.0,
                 ("CM03", 3, "YY"): 50.0, ("PM04", 3, "XX"): 30.0, ("PM04", 3, "YY"): 30.0}
    f2 = factors_for_ms(jf, "x.ms", ["PM04"], spws, ["XX", "YY"], session=2)
    assert f2 == {("PM04", 3, "XX"): 90.0, ("PM04", 3, "YY"): 90.0}
    assert coverage(1.0, 2.0, 0.96, 2.04) == 1.0 and coverage(1.0, 2.0, 0.9, 2.05) == 0.0 and coverage(1.0, 2.0, 0.0, 3.0) == 0.0


@pytest.mark.parametrize("text, msg", [
    ("MS,Antenna,Spwid,Polarization,Factor\na.ms,PM01,0,XX\n", r"jyperk\.csv, line 2: expected 5 columns"),
    ("a.ms,PM01,0,XX,40\na.ms,PM01,zero,XX,40\n", r"jyperk\.csv, line 2: spw 'zero' is not an integer"),
    ("a.ms,PM01,0,XX,nan\n", r"jyperk\.csv, line 1: factor 'nan' is not finite"),
    ("a.ms,PM01,0,XX,-3\n", r"jyperk\.csv, line 1: factor -3.0 is not positive"),
    ("MS,Antenna,Spwid,Polarization,Factor\n", r"jyperk\.csv: no Jy/K factor found"),
    ("", r"jyperk\.csv: empty file"),
    ("#OUSID=X\n1,2011-11-11,2011-11-11,CM02,86243.0,500.0,I,10.0\n",
     r"jyperk\.csv, line 2: data line before the '#sessionID,...' column header"),
    (SESSION_BASED.replace("500.0,I,50.0", "500.0,I"), r"jyperk\.csv, line 8: expected 8 columns"),
])
def test_unreadable_lines_name_file_and_line(text, msg):
    with pytest.raises(JyPerKError, match=msg):
        parse_jyperk(text, "jyperk.csv")
    assert issubclass(JyPerKError, ValueError) and issubclass(JyPerKError, AlmaqaError)


def test_recorded_calls_are_read_as_literals():
    log = ("importasdm(asdm='x', vis='uid___A002_X1_X2.ms')\n"
           "sdatmcor(infile='uid___A002_X1_X2.ms', datacolumn='corrected', atmtype=2, "
           "dtem_dh='-5.6K/km', h0='2.0km', gainfactor=my_table)\n")
    (line, kw), = parse_calls(log, "sdatmcor", "casa_commands.log")
    assert line == 2 and kw["atmtype"] == 2 and kw["dtem_dh"] == "-5.6K/km"
    assert kw["gainfactor"] is None         # not a literal: left out, never evaluated
    with pytest.raises(AlmaqaError, match=r"casa_commands\.log, line 1: not a readable sdatmcor"):
        parse_calls("sdatmcor(infile='a.ms', atmtype=\n", "sdatmcor", "casa_commands.log")
