"""flux.csv parser."""
import pytest

from almaqa_casa.delivery.fluxcsv import FluxCsvError, parse_fluxcsv

TEXT = ('ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n'
        'uid___A002_Xca8fbf_X5733.ms,0,23,1.7632620185868495,0.0,0.0,0.0,-0.285,0.0,0.0,'
        '"# field=J1517-2422 intents=AMPLITUDE,BANDPASS origin=DB age=1.0 queried_at=2020"\n')


def test_parse():
    (e,) = parse_fluxcsv(TEXT)
    assert e.ms.endswith("X5733.ms") and e.spw == 23
    assert e.I == pytest.approx(1.7632620185868495) and e.spix == -0.285
    assert e.meta["field"] == "J1517-2422" and e.meta["origin"] == "DB"


def test_old_header_and_errors():
    (e,) = parse_fluxcsv("ms,field,spw,I,Q,U,V,spix,comment\na.ms,1,2,3.0,0,0,0,0.1,\n")
    assert e.uvmax == 0.0 and e.I == 3.0
    with pytest.raises(FluxCsvError, match="f.csv, line 2"):
        parse_fluxcsv("ms,field,spw,I,Q,U,V,spix\na.ms,1,x,3,0,0,0,0\n", "f.csv")
    with pytest.raises(FluxCsvError, match="header lacks"):
        parse_fluxcsv("a,b\n1,2\n", "f.csv")
