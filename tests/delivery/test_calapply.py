"""calapply.txt parser: literal parsing only, errors name file and line."""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from almaqa_casa.delivery.calapply import (
    CalApplyError,
    caltables,
    casa_intents,
    parse_calapply,
    read_calapply,
    rebase_tables,
    restrict_intents,
    to_callib,
)

GOOD = """# Apply file for uid___A002_X1_X2.ms
applycal(vis='/lustre/x/uid___A002_X1_X2.ms', field='', intent='TARGET,PHASE', spw='0,1', antenna='', gaintable=['/lustre/x/uid___A002_X1_X2.ms.h_tsyscal.s6_1.tsyscal.tbl', '/lustre/x/b.bcal.tbl'], gainfield=['', 'J1924-2914'], spwmap=[[0, 1], []], interp=['linear,linear', 'linear,linear'], calwt=[True, False])
applycal(vis='/lustre/x/uid___A002_X1_X2.ms', field='2', intent='BANDPASS', spw='0', antenna='', gaintable='/x/g.gpcal.tbl', gainfield='', spwmap=[], interp='linear', calwt=True)
"""


def test_parse_good(tmp_path):
    f = tmp_path / "uid___A002_X1_X2.ms.calapply.txt"
    f.write_text(GOOD)
    apps = read_calapply(f)
    assert len(apps) == 2
    a, b = apps
    assert a.intent == "TARGET,PHASE" and a.spw == "0,1"
    assert a.gaintable[1] == "/lustre/x/b.bcal.tbl"
    assert a.spwmap == ((0, 1), ())
    assert a.calwt == (True, False)
    # scalars are wrapped in lists as the pipeline's from_export does
    assert b.gaintable == ("/x/g.gpcal.tbl",) and b.spwmap == ((),) and b.calwt == (True,)
    assert caltables(apps) == ["uid___A002_X1_X2.ms.h_tsyscal.s6_1.tsyscal.tbl", "b.bcal.tbl",
                               "g.gpcal.tbl"]
    rb = rebase_tables(apps, "/work/tables", "/work/uid.ms")
    assert rb[0].gaintable[0] == "/work/tables/uid___A002_X1_X2.ms.h_tsyscal.s6_1.tsyscal.tbl"
    assert rb[0].vis == "/work/uid.ms"


@pytest.mark.parametrize("line, why", [
    ("applycal(vis='a', gaintable=[__import__('os').system('true')])", "not a literal"),
    ("import os", "not a valid"),
    ("applycal(vis='a', gaintable=['t'], **{'x': 1})", "'**'"),
    ("applycal('a', gaintable=['t'])", "keyword arguments only"),
    ("applycal(vis='a', gaintable=['t'], bogus=1)", "unknown applycal argument"),
    ("applycal(vis='a', gaintable=['t']", "not a valid"),
    ("applycal(vis='a', field='')", "no 'gaintable'"),
    ("applycal(vis='a', gaintable=['t'], calwt=['yes'])", "calwt"),
    ("applycal(vis='a', gaintable=['t'], spwmap=[['x']])", "spwmap"),
    ("os.system('rm -rf /')", "expected a call"),
    ("applycal(vis='a', gaintable=['t'], interp=['a', 'b'])", "2 entries for 1"),
])
def test_malformed_names_file_and_line(line, why):
    text = "# Apply file\n" + GOOD.splitlines()[1] + "\n" + line + "\n"
    with pytest.raises(CalApplyError) as ei:
        parse_calapply(text, "x.ms.calapply.txt")
    msg = str(ei.value)
    assert "x.ms.calapply.txt, line 3" in msg and why in msg


def test_empty_file_is_error():
    with pytest.raises(CalApplyError, match="no applycal"):
        parse_calapply("# nothing\n\n", "e.txt")


def test_intents_and_callib():
    obsmodes = ["CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE",
                "CALIBRATE_PHASE#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE", "OBSERVE_TARGET#ON_SOURCE"]
    assert casa_intents("TARGET,PHASE", obsmodes) == "CALIBRATE_PHASE#ON_SOURCE,OBSERVE_TARGET#ON_SOURCE"
    assert casa_intents("AMPLITUDE", obsmodes) == "CALIBRATE_FLUX#ON_SOURCE"
    assert casa_intents("POLLEAKAGE", obsmodes) is None
    assert casa_intents("", obsmodes) == ""
    assert restrict_intents("TARGET,ATMOSPHERE") == "TARGET"
    assert restrict_intents("").startswith("TARGET,PHASE,BANDPASS")
    apps = rebase_tables(parse_calapply(GOOD), "/t", "/v.ms")
    text = to_callib(apps, {"TARGET,PHASE": "OBSERVE_TARGET#ON_SOURCE", "BANDPASS": None})
    lines = text.splitlines()
    assert len(lines) == 2   # the BANDPASS line selects nothing and is left out
    assert lines[0].startswith("caltable='/t/uid___A002_X1_X2.ms.h_tsyscal.s6_1.tsyscal.tbl' calwt=True")
    assert "spwmap=[0,1]" in lines[0] and "tinterp='linear' finterp='linear'" in lines[0]
    assert "fldmap='J1924-2914'" in lines[1] and "calwt=False" in lines[1]
    # CASA's own reader accepts what we write
    from casatasks.private.callibrary import callibrary
    c = callibrary()
    c.read(lines)
    assert set(c.cld) == {"/t/uid___A002_X1_X2.ms.h_tsyscal.s6_1.tsyscal.tbl", "/t/b.bcal.tbl"}


def test_callib_refuses_unsafe_values():
    apps = parse_calapply("applycal(vis='a', field='my field', intent='', spw='', antenna='', "
                          "gaintable=['t'], gainfield=[''], spwmap=[[]], interp=[''], calwt=[True])")
    with pytest.raises(CalApplyError, match="cal library"):
        to_callib(apps, {})


def test_full_antenna_selection_dropped():
    from almaqa_casa.delivery.calapply import antenna_ids, drop_full_antenna_selection
    assert antenna_ids("0~3,5") == {0, 1, 2, 3, 5} and antenna_ids("DA41") is None
    apps = parse_calapply(
        "applycal(vis='a', field='', intent='', spw='', antenna='0~7', gaintable=['t'])\n"
        "applycal(vis='a', field='', intent='', spw='', antenna='0~6', gaintable=['t'])\n")
    out = drop_full_antenna_selection(apps, 8)
    assert [a.antenna for a in out] == ["", "0~6"]
    assert to_callib(out[:1], {}).startswith("caltable='t'")
    with pytest.raises(CalApplyError, match="antenna selection '0~6'"):
        to_callib(out[1:], {})


# ---- hostile and bounded -------------------------------------------------------------

_HEAD = "applycal(vis='a', field='', intent='', spw='', antenna='', gaintable=['t'], "


@pytest.mark.timeout(120)
@pytest.mark.parametrize("tail, why", [
    ("scan=" + "+".join(["1"] * 100_000) + ")", "operator '\\+' is not allowed"),
    ("scan='' + " + " + ".join(["''"] * 100_000) + ")", "line of 500084 characters"),
    ("calwt=" + "[" * 100_000 + "]" * 100_000 + ")", "brackets nested deeper than 8"),
    ("calwt=[" + "- " * 100_000 + "1])", "'-' must precede a number"),
    ("scan=" + "a." * 100_000 + "b)", "operator '\\.' is not allowed"),
    ("scan='" + "x" * 300_000 + "')", "line of 300084 characters \\(longest accepted 262144\\)"),
    ("scan=not 1)", "the value of 'scan' is not a literal"),
    ("scan=lambda: 1)", "operator ':' is not allowed"),
    ("scan=f'{1}')", "FSTRING_START \"f'\" is not allowed|operator '{' is not allowed"),
    ("scan=(yield))", "the value of 'scan' is not a literal"),
])
def test_hostile_expressions_give_calapply_errors(tail, why):
    """A 100,000-term expression (or deep nesting) is refused before parsing: never a
    RecursionError or MemoryError, always the file and the line."""
    text = "# Apply file\n\n" + _HEAD + tail + "\n"
    with pytest.raises(CalApplyError, match=rf"h\.calapply\.txt, line 3: ({why})"):
        parse_calapply(text, "h.calapply.txt")


@pytest.mark.parametrize("table", ["/x/..", "..", ".", "/", "a/./", ""])
def test_gaintable_must_name_a_table(table):
    with pytest.raises(CalApplyError, match=r"c\.txt, line 1: gaintable .*(does not name|empty)"):
        parse_calapply(f"applycal(vis='a', gaintable=['t', {table!r}])", "c.txt")


def test_gaintable_paths_never_lead_outside():
    """Whatever a delivered path says, the table used is table_dir/<basename>."""
    apps = parse_calapply("applycal(vis='../../v.ms', gaintable=['../../../etc/passwd', "
                          "'/abs/x.tbl/', 'sub/../../y.tbl', '~root/z.tbl'])")
    rb = rebase_tables(apps, "/work/tables", "/work/v.ms")
    assert rb[0].gaintable == ("/work/tables/passwd", "/work/tables/x.tbl", "/work/tables/y.tbl",
                               "/work/tables/z.tbl")
    assert rb[0].vis == "/work/v.ms"
    assert caltables(apps) == ["passwd", "x.tbl", "y.tbl", "z.tbl"]


def test_read_refuses_special_large_and_binary_files(tmp_path):
    fifo = tmp_path / "u.ms.calapply.txt"
    os.mkfifo(fifo)
    with pytest.raises(CalApplyError, match=r"u\.ms\.calapply\.txt: is a FIFO"):
        read_calapply(fifo)
    big = tmp_path / "big.calapply.txt"
    with open(big, "wb") as fh:
        fh.truncate(17 << 20)
    with pytest.raises(CalApplyError, match=r"big\.calapply\.txt: 17825792 bytes"):
        read_calapply(big)
    bad = tmp_path / "bad.calapply.txt"
    bad.write_bytes(b"# x\n" + GOOD.encode().splitlines()[1] + b"\n\xfe\n")
    with pytest.raises(CalApplyError, match=r"bad\.calapply\.txt, line 3: not utf-8 text"):
        read_calapply(bad)


def test_line_numbers_count_newlines_only():
    """Form feeds and other Unicode line breaks inside a line do not shift the numbers."""
    text = "# a\x0cb\n" + GOOD.splitlines()[1] + "\nbogus\u2028x\n"
    with pytest.raises(CalApplyError, match=r"c\.txt, line 3"):
        parse_calapply(text, "c.txt")


# ---- antennas ------------------------------------------------------------------------

NAMES42 = [f"DA{41 + i}" for i in range(25)] + [f"DV{i + 1:02d}" for i in range(17)]


@pytest.mark.parametrize("sel, ants, want", [
    ("0~41", 42, True), ("0~41", 40, True), ("0~41", 43, False), ("0~40", 42, False),
    ("0~20,21~41", 42, True), ("41,0~40", 42, True), (" 0 ~ 41 ", 42, None),
    ("*", 42, True), ("0~41", NAMES42, True), ("0~40", NAMES42, False),
    (",".join(NAMES42), NAMES42, True), (",".join(NAMES42[:-1]), NAMES42, False),
    ("0~20," + ",".join(NAMES42[21:]), NAMES42, True),
    ("DA*", NAMES42, None), ("!DA41", NAMES42, None), ("0&1", 42, None), ("DA41", 42, None),
    ("0~3", ["1", "2", "3", "4"], None), ("5~2", 8, None), ("0~999999", 8, None),
])
def test_selects_every_antenna(sel, ants, want):
    from almaqa_casa.delivery.calapply import selects_every_antenna
    assert selects_every_antenna(sel, ants) is want


def test_drop_full_antenna_selection_with_names():
    from almaqa_casa.delivery.calapply import drop_full_antenna_selection
    lines = [f"applycal(vis='a', antenna={sel!r}, gaintable=['t'])"
             for sel in ("0~41", ",".join(NAMES42), "DA41,DA42", "0~40", "DA4*")]
    apps = parse_calapply("\n".join(lines))
    assert [a.antenna for a in drop_full_antenna_selection(apps, NAMES42)] == [
        "", "", "DA41,DA42", "0~40", "DA4*"]
    assert [a.antenna for a in drop_full_antenna_selection(apps, 40)][:1] == [""]
    assert [a.antenna for a in drop_full_antenna_selection(apps, 43)][0] == "0~41"


# ---- properties ----------------------------------------------------------------------

_REAL = GOOD.splitlines()[1]


@st.composite
def _mutated(draw):
    """A real line with a few characters inserted, deleted or replaced."""
    s = list(_REAL)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["ins", "del", "rep"]))
        ch = draw(st.sampled_from(list("()[],=-.'\"+*~:{}#\\ 0aT\x00\n\u2028")))
        if op == "ins":
            s.insert(i, ch)
        elif s and i < len(s):
            if op == "del":
                del s[i]
            else:
                s[i] = ch
    return "".join(s)


@settings(max_examples=400, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(max_size=80), _mutated(), st.just(_REAL)), max_size=6))
def test_any_text_parses_or_names_file_and_line(lines):
    try:
        apps = parse_calapply("\n".join(lines), "p.txt")
    except CalApplyError as exc:
        assert str(exc).startswith("p.txt")
        return
    for a in apps:
        assert len(a.gaintable) == len(a.gainfield) == len(a.interp) == len(a.calwt) \
            == len(a.spwmap) >= 1


_S = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def _app(draw):
    from almaqa_casa.delivery.calapply import CalApplication
    n = draw(st.integers(1, 4))
    tables = draw(st.lists(st.from_regex(r"(/[a-z]{1,5}){0,3}/?[A-Za-z0-9_.]{0,8}[A-Za-z0-9_]",
                                         fullmatch=True), min_size=n, max_size=n))
    return CalApplication(
        vis=draw(_S), field=draw(_S), intent=draw(_S), spw=draw(_S), antenna=draw(_S),
        gaintable=tuple(tables), gainfield=tuple(draw(st.lists(_S, min_size=n, max_size=n))),
        spwmap=tuple(tuple(m) for m in draw(st.lists(st.lists(st.integers(0, 99), max_size=5),
                                                     min_size=n, max_size=n))),
        interp=tuple(draw(st.lists(_S, min_size=n, max_size=n))),
        calwt=tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n))))


@settings(max_examples=200, deadline=3000)
@given(st.lists(_app(), min_size=1, max_size=4))
def test_round_trip(apps):
    import dataclasses

    from almaqa_casa.delivery.calapply import format_calapply
    text = format_calapply(apps, "uid___A002_X1_X2.ms")
    assert text.startswith("# Apply file for uid___A002_X1_X2.ms\n")
    back = parse_calapply(text, "rt.txt")
    assert [dataclasses.replace(b, source="") for b in back] == apps
    assert [b.source for b in back] == [f"rt.txt:{i + 2}" for i in range(len(apps))]
