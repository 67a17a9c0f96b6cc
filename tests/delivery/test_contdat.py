"""cont.dat parser."""
import pytest

from almaqa_casa.delivery.contdat import ContDatError, parse_contdat, read_contdat

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
    assert f[16].frame == "LSRK"
    assert f[18].flags == ("ALLCONT",) and f[18].name.startswith("X1913589666")
    assert f[20].keyword == "NONE" and f[20].ranges == []
    assert c.for_field("Other source")[16].keyword == "ALL"


def test_v1_legacy():
    c = parse_contdat("NGC1234\n\nSPW5\n100.0~100.5GHz TOPO\n")
    assert c.fields["NGC1234"][5].ranges == [(100.0e9, 100.5e9)]


def test_errors_name_line():
    with pytest.raises(ContDatError, match=r"c.dat, line 3"):
        parse_contdat("Field: A\nSpectralWindow: 1\n93~94GHz NOWHERE\n", "c.dat")
    with pytest.raises(ContDatError, match=r"line 1: frequency range outside"):
        parse_contdat("93~94GHz LSRK\n", "c.dat")
    with pytest.raises(ContDatError, match="no field"):
        parse_contdat("\n# x\n", "c.dat")
