"""cont.dat parser: exact on real layouts, an error naming file and line for anything else."""
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from almaqa_casa.delivery.contdat import (
    ContDat,
    ContDatError,
    SpwContinuum,
    format_contdat,
    parse_contdat,
    read_contdat,
)

V2 = """Field: G327.29

SpectralWindow: 16
93.129107~93.177118GHz LSRK
93.2~93.3GHz LSRK

SpectralWindow: 18 X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES
Flags: ALLCONT
219.3452433728~219.8069245935GHz LSRK

SpectralWindow: 20
NONE

Field: "Other source"

SpectralWindow: 16
ALL
"""


def test_v2(tmp_path):
    p = tmp_path / "uid___A001_X1_X2.cont.dat"
    p.write_text(V2)
    c = read_contdat(p)
    f = c.fields["G327.29"]
    assert sorted(f) == [16, 18, 20]
    assert f[16].ranges == [(93.129107e9, 93.177118e9), (93.2e9, 93.3e9)]
    assert f[16].frame == "LSRK" and f[16].line == 3
    assert f[18].flags == ("ALLCONT",) and f[18].name.startswith("X1913589666")
    assert f[20].keyword == "NONE" and f[20].ranges == []
    assert c.for_field("Other source")[16].keyword == "ALL"


def test_v1_legacy():
    c = parse_contdat("NGC1234\n\nSPW5\n100.0~100.5GHz TOPO\n")
    assert c.fields["NGC1234"][5].ranges == [(100.0e9, 100.5e9)]
    # real v1 files: several bare field names, ranges without frame, ';' lists (TOPO)
    c = parse_contdat('"NGC 1234"\n\nSPW5\n100.0~100.5GHz;101.0~101.2GHz\n\nSPW7\n'
                      '98.1~98.2GHz\n\n3C279\n\nSPW5\n100.1~100.2GHz\n', "v1.dat")
    assert sorted(c.fields) == ["3C279", "NGC 1234"]
    s5 = c.fields["NGC 1234"][5]
    assert s5.ranges == [(100.0e9, 100.5e9), (101.0e9, 101.2e9)] and s5.frame == "TOPO"
    assert c.fields["NGC 1234"][7].ranges == [(98.1e9, 98.2e9)]
    assert c.fields["3C279"][5].ranges == [(100.1e9, 100.2e9)]


def test_synthetic_delivery_cont_dat_parses():
    """The generator's cont.dat (the v3 layout the pipeline writes) reads back."""
    from almaqa_casa.synth import spec as S
    from almaqa_casa.synth.pipeline_products import cont_dat, cont_ranges
    sp = S.SynthSpec()
    c = parse_contdat(cont_dat(sp), "cont.dat")
    (field,) = c.fields
    for k, rngs in cont_ranges(sp).items():
        got = c.fields[field][k]
        assert got.name == S.SPWS[k].name and got.frame == "TOPO"
        assert [(round(lo), round(hi)) for lo, hi in got.ranges] == [
            (round(lo * 1e9), round(hi * 1e9)) for lo, hi, _a, _b in rngs]


def test_garbage_line_is_an_error_naming_the_line():
    """The hostile case: one garbage line in a v2 file was taken for a field name and
    the real field lost its ranges (DOCONTSUB subtracted nothing)."""
    text = V2.replace("93.2~93.3GHz LSRK\n", "93.2~93.3GHz LSRK\nxq7#garbage\n")
    with pytest.raises(ContDatError, match=r"c\.dat, line 6: cannot read 'xq7#garbage'.*"
                                           r"only valid in a legacy v1 file"):
        parse_contdat(text, "c.dat")
    # and in a v1 file a bare name must be followed by SPW<id>
    with pytest.raises(ContDatError, match=r"c\.dat, line 4: cannot read 'oops'"):
        parse_contdat("NGC1\n\nSPW5\noops\n100~101GHz\n", "c.dat")


@pytest.mark.parametrize("line", ["93.2GHz LSRK", "93.2GHz", "93.2", "+93.2 GHz TOPO"])
def test_single_frequency_is_an_error_naming_its_own_line(line):
    text = f"Field: A\n\nSpectralWindow: 1\n{line}\n94~95GHz LSRK\n"
    with pytest.raises(ContDatError, match=r"c\.dat, line 4: '\+?93\.2.*' is a single frequency"):
        parse_contdat(text, "c.dat")


@pytest.mark.parametrize("text, line, why", [
    ("Field: A\nSpectralWindow: 1\n93~94GHz NOWHERE\n", 3, "unknown frequency frame"),
    ("93~94GHz LSRK\n", 1, "frequency range outside"),
    ("Field: A\nSpectralWindow: 1\n93~94THz LSRK\n", 3, "unknown frequency unit"),
    ("Field: A\nSpectralWindow: 1\n93~94GHz LSRK\n95~96GHz TOPO\n", 4, "mixed frames"),
    ("Field: A\nSpectralWindow: x\n", 2, "not a number"),
    ("Field: A\nSpectralWindow: 1\n\nSpectralWindow: 1\n", 4, "given twice"),
    ("Field: A\nSpectralWindow: 1\nNONE\n93~94GHz LSRK\n", 4, "marked NONE"),
    ("Field: A\nSpectralWindow: 1\n93~94GHz LSRK\nALL\n", 4, "already has ranges"),
    ("Field:   \n", 1, "without a field name"),
    ("Field: A\nFlags: ALLCONT\n", 2, "Flags line outside"),
    ("Field: A\nSpectralWindow: 1\n1e999~2e999GHz LSRK\n", 3, "out of range"),
    ("Field: A\nSpectralWindow: 1\na:b\n", 3, "cannot read"),
    ("SPW1\n", 1, "before any field"),
])
def test_errors_name_file_and_line(text, line, why):
    with pytest.raises(ContDatError, match=rf"c\.dat, line {line}: .*{why}"):
        parse_contdat(text, "c.dat")


def test_no_field_and_long_lines():
    with pytest.raises(ContDatError, match="no field"):
        parse_contdat("\n# x\n", "c.dat")
    with pytest.raises(ContDatError, match=r"c\.dat, line 2: line of 70000 characters"):
        parse_contdat("Field: A\n" + "x" * 70000, "c.dat")


def test_read_refuses_special_large_and_binary_files(tmp_path):
    fifo = tmp_path / "cont.dat"
    os.mkfifo(fifo)
    with pytest.raises(ContDatError, match=r"cont\.dat: is a FIFO"):
        read_contdat(fifo)
    big = tmp_path / "big.cont.dat"
    with open(big, "wb") as fh:
        fh.truncate(17 << 20)
    with pytest.raises(ContDatError, match=r"big\.cont\.dat: 17825792 bytes, larger than a cont\.dat"):
        read_contdat(big)
    bad = tmp_path / "bad.cont.dat"
    bad.write_bytes(b"Field: A\n\nSpectralWindow: 1\n93~94GHz \xff\n")
    with pytest.raises(ContDatError, match=r"bad\.cont\.dat, line 4: not utf-8 text"):
        read_contdat(bad)


# ---- properties ----------------------------------------------------------------------

_LINE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["Field: A", "SpectralWindow: 3", "SpectralWindow: 3 X1#BB_1", "SPW4",
                     "Flags: ALLCONT", "NONE", "ALL", "93.1~93.2GHz LSRK", "93.1GHz",
                     "1~2GHz;3~4GHz TOPO", "NGC1", "", "# c", "~", ":"]),
    st.from_regex(r"[0-9.eE+~; \t]{0,30}(GHz|MHz|Hz|THz)?( [A-Z]{0,5})?", fullmatch=True),
)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, max_size=25))
def test_any_text_parses_or_names_file_and_line(lines):
    text = "\n".join(lines)
    try:
        c = parse_contdat(text, "p.dat")
    except ContDatError as exc:
        assert str(exc).startswith("p.dat")
        return
    assert c.fields
    for spws in c.fields.values():
        for s in spws.values():
            assert all(math.isfinite(lo) and lo <= hi for lo, hi in s.ranges)


@pytest.mark.timeout(60)
def test_pathological_lines_do_not_hang():
    """No regular-expression blow-up on long whitespace runs (lines bounded by MAX_LINE)."""
    for line in ("1~2G" + " " * 60000 + "!", "1" + " " * 60000 + "!",
                 ";".join(["1~2GHz"] * 9000) + " L!", "1~" * 30000):
        with pytest.raises(ContDatError, match=r"p\.dat, line 3"):
            parse_contdat("Field: A\nSpectralWindow: 1\n" + line + "\n", "p.dat")


_NAME = st.from_regex(r"[A-Za-z0-9_+\-.][A-Za-z0-9_+\-. ]{0,20}[A-Za-z0-9_+\-.]", fullmatch=True)
_FREQ = st.integers(min_value=1, max_value=10 ** 13).map(lambda n: n * 100.0)   # 0.1 kHz grid


@st.composite
def _spw(draw, sid):
    kw = draw(st.sampled_from([None, None, "NONE", "ALL"]))
    ranges = [] if kw else draw(st.lists(st.tuples(_FREQ, _FREQ).map(sorted).map(tuple),
                                         max_size=4))
    return SpwContinuum(spw=sid, name=draw(st.sampled_from(["", "X1#ALMA_RB_03#BB_1#SW-01"])),
                        ranges=list(ranges), frame=draw(st.sampled_from(["LSRK", "TOPO", "SOURCE"])),
                        keyword=kw, flags=draw(st.sampled_from([(), ("ALLCONT",),
                                                                ("LOWBANDWIDTH", "LOWSPREAD")])))


@st.composite
def _contdat(draw):
    fields = {}
    for name in draw(st.lists(_NAME, min_size=1, max_size=3, unique=True)):
        ids = draw(st.lists(st.integers(0, 99), max_size=4, unique=True))
        fields[name] = {i: draw(_spw(i)) for i in ids}
    return ContDat(fields=fields)


@settings(max_examples=200, deadline=2000)
@given(_contdat())
def test_round_trip(cont):
    back = parse_contdat(format_contdat(cont), "rt.dat")
    assert list(back.fields) == list(cont.fields)
    for fname, spws in cont.fields.items():
        assert list(back.fields[fname]) == list(spws)
        for sid, s in spws.items():
            b = back.fields[fname][sid]
            assert (b.name, b.keyword, b.flags) == (s.name, s.keyword, s.flags)
            assert b.frame == (s.frame if s.ranges else "TOPO")
            assert len(b.ranges) == len(s.ranges)
            for (lo, hi), (blo, bhi) in zip(s.ranges, b.ranges):
                assert abs(blo - lo) <= 0.5 and abs(bhi - hi) <= 0.5
