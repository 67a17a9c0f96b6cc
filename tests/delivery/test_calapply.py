"""calapply.txt parser: literal parsing only, errors name file and line."""
import pytest

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
