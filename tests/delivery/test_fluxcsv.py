"""flux.csv parser: every value checked, errors name file and line."""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from almaqa_casa.delivery.fluxcsv import (
    FluxCsvError,
    FluxEntry,
    format_fluxcsv,
    parse_fluxcsv,
    read_fluxcsv,
)

TEXT = ('ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n'
        'uid___A002_Xca8fbf_X5733.ms,0,23,1.7632620185868495,0.0,0.0,0.0,-0.285,0.0,0.0,'
        '"# field=J1517-2422 intents=AMPLITUDE,BANDPASS origin=DB age=1.0 queried_at=2020"\n')


def test_parse():
    (e,) = parse_fluxcsv(TEXT)
    assert e.ms.endswith("X5733.ms") and e.spw == 23 and e.line == 2
    assert e.I == pytest.approx(1.7632620185868495) and e.spix == -0.285
    assert e.meta["field"] == "J1517-2422" and e.meta["origin"] == "DB"


def test_old_header_and_errors():
    (e,) = parse_fluxcsv("ms,field,spw,I,Q,U,V,spix,comment\na.ms,1,2,3.0,0,0,0,0.1,\n")
    assert e.uvmax == 0.0 and e.I == 3.0
    with pytest.raises(FluxCsvError, match="f.csv, line 2"):
        parse_fluxcsv("ms,field,spw,I,Q,U,V,spix\na.ms,1,x,3,0,0,0,0\n", "f.csv")
    with pytest.raises(FluxCsvError, match="header lacks"):
        parse_fluxcsv("a,b\n1,2\n", "f.csv")


def test_synthetic_delivery_flux_csv_parses():
    from almaqa_casa.synth import spec as S
    from almaqa_casa.synth.pipeline_products import flux_csv
    sp = S.SynthSpec()
    ids = {eb: {s.name: i for i, s in enumerate(sp.sources)} for eb in sp.eb_uids}
    rows = parse_fluxcsv(flux_csv(sp, ids), "flux.csv")
    assert rows and all(r.ms.endswith(".ms") and r.I > 0 for r in rows)
    assert {r.meta["origin"] for r in rows} == {"DB"}


@pytest.mark.parametrize("row, why", [
    ("a.ms,1,2,nan,0,0,0,0,0,0,", "not a finite number"),
    ("a.ms,1,2,1e999,0,0,0,0,0,0,", "not a finite number"),
    ("a.ms,1,2,1_0,0,0,0,0,0,0,", "not a number"),
    ("a.ms,1,-2,1,0,0,0,0,0,0,", "not a spectral window id"),
    ("a.ms,1,2,,0,0,0,0,0,0,", "I '' is not a number"),
    ("a.ms,1,2,1,0,0,0,0,0,0,c,extra", "12 columns, expected 11"),
    ("a.ms,1,2,1,0", "5 columns"),
    ("..,1,2,1,0,0,0,0,0,0,", "does not name a MeasurementSet"),
    ('a.ms,1,2,1,0,0,0,0,0,0,"unterminated', "not CSV"),
    ('a.ms,"x"y,2,1,0,0,0,0,0,0,', "not CSV"),
])
def test_bad_rows_name_file_and_line(row, why):
    text = "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n\n" + row + "\n"
    with pytest.raises(FluxCsvError, match=rf"f\.csv, line 3: .*{why}"):
        parse_fluxcsv(text, "f.csv")


def test_paths_reduced_to_names_and_header_checks():
    (e,) = parse_fluxcsv("ms,field,spw,I,Q,U,V,spix\n/lustre/../../x/uid.ms/,f,1,2,0,0,0,0\n")
    assert e.ms == "uid.ms"
    with pytest.raises(FluxCsvError, match="header repeats I"):
        parse_fluxcsv("ms,field,spw,I,Q,U,V,spix,I\n", "f.csv")
    with pytest.raises(FluxCsvError, match="empty file"):
        parse_fluxcsv("\n\n", "f.csv")
    with pytest.raises(FluxCsvError, match=r"f\.csv, line 2: .*(cell longer|not CSV)"):
        parse_fluxcsv("ms,field,spw,I,Q,U,V,spix\na.ms," + "x" * 200_000 + ",1,1,0,0,0,0\n",
                      "f.csv")


def test_read_refuses_special_large_and_binary_files(tmp_path):
    fifo = tmp_path / "flux.csv"
    os.mkfifo(fifo)
    with pytest.raises(FluxCsvError, match=r"flux\.csv: is a FIFO"):
        read_fluxcsv(fifo)
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.truncate(17 << 20)
    with pytest.raises(FluxCsvError, match=r"big\.csv: 17825792 bytes"):
        read_fluxcsv(big)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(TEXT.encode() + b"a.ms,\xff,1,1,0,0,0,0,0,0,\n")
    with pytest.raises(FluxCsvError, match=r"bad\.csv, line 3: not utf-8 text"):
        read_fluxcsv(bad)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(max_size=60),
                          st.from_regex(r"[a-z.]{0,6}(,[-0-9.e\"# ]{0,6}){0,12}", fullmatch=True)),
                max_size=8))
def test_any_text_parses_or_names_file_and_line(lines):
    text = "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n" + "\n".join(lines)
    try:
        rows = parse_fluxcsv(text, "p.csv")
    except FluxCsvError as exc:
        assert str(exc).startswith("p.csv")
        return
    assert all(r.ms and r.line >= 2 for r in rows)


_TXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
               max_size=15).map(str.strip)
_F = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=2000)
@given(st.lists(st.builds(FluxEntry, ms=st.from_regex(r"uid___[A-Za-z0-9_]{1,12}\.ms", fullmatch=True),
                          field=_TXT, spw=st.integers(0, 999), I=_F, Q=_F, U=_F, V=_F, spix=_F,
                          uvmin=_F, uvmax=_F, comment=_TXT), max_size=5))
def test_round_trip(entries):
    back = parse_fluxcsv(format_fluxcsv(entries), "rt.csv")
    assert back == entries
