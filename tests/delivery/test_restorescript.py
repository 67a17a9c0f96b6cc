"""The restore script read as data (pure): sessions, tasks, SACM pre-steps, errors."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almaqa_casa.delivery.restorescript import RestoreScriptError, parse_restore_script

EBS = [f"uid___A002_Xc89480_X{k:x}" for k in (0x5f49, 0x6001, 0x6abc, 0x7002, 0x7fff,
                                               0x8123, 0x9000, 0x9abc)]
SESS = ["session_1", "session_2", "session_2", "session_3", "session_4", "session_5",
        "session_7", "session_8"]

PLAIN = f"""__rethrow_casa_exceptions = True
h_init()
try:
    hifa_restoredata (vis={EBS!r}, session={SESS!r}, ocorr_mode='ca')
finally:
    h_save()
"""

# the form of 13 of 89 real Cycle 5-6 scripts (public copies)
SACM = """from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes
__rethrow_casa_exceptions = True
h_init()
try:
    hifa_importdata (dbservice=False, bdfflags=False, vis=['../rawdata/uid___A002_Xc44eb5_X1139', '../rawdata/uid___A002_Xc483da_Xa88'], session=['session_1', 'session_2'], ocorr_mode='ca')
    fixsyscaltimes(vis = 'uid___A002_Xc483da_Xa88.ms')# SACM/JAO - Fixes
    fixsyscaltimes(vis = 'uid___A002_Xc44eb5_X1139.ms')# SACM/JAO - Fixes
    h_save() # SACM/JAO - Finish weblog after fixes
    h_init() # SACM/JAO - Restart weblog after fixes
    hif_restoredata (vis=['uid___A002_Xc44eb5_X1139', 'uid___A002_Xc483da_Xa88'], session=['session_1', 'session_2'], ocorr_mode='ca')
finally:
    h_save()
"""


def test_plain_multisession_with_gaps():
    rs = parse_restore_script(PLAIN, "x.casa_piperestorescript.py")
    assert rs.call.task == "hifa_restoredata" and rs.call.kind == "interferometry"
    assert rs.call.vis == tuple(EBS) and rs.call.option("ocorr_mode") == "ca"
    assert rs.sessions() == dict(zip(EBS, SESS))
    assert not rs.sacm and rs.call.lineno == 4


def test_total_power_and_old_generations():
    tp = parse_restore_script("h_init()\nhsd_restoredata(vis=['uid___A002_X1_X2.ms'], "
                              "session=['session_3'], ocorr_mode='ao')\nh_save()\n")
    assert tp.call.kind == "total power" and tp.call.option("ocorr_mode") == "ao"
    assert tp.sessions() == {"uid___A002_X1_X2": "session_3"}      # '.ms' stripped
    old = parse_restore_script("hif_restoredata(['uid___A002_X1_X2'], ['session_1'])\n")
    assert old.call.task == "hif_restoredata" and old.sessions() == {"uid___A002_X1_X2": "session_1"}


def test_sacm_presteps():
    rs = parse_restore_script(SACM, "s.py")
    assert rs.sacm
    assert rs.presteps_import == ("uid___A002_Xc44eb5_X1139", "uid___A002_Xc483da_Xa88")
    assert set(rs.presteps_fixsyscaltimes) == {"uid___A002_Xc44eb5_X1139",
                                               "uid___A002_Xc483da_Xa88"}
    assert rs.call.task == "hif_restoredata"
    assert rs.sessions() == {"uid___A002_Xc44eb5_X1139": "session_1",
                             "uid___A002_Xc483da_Xa88": "session_2"}


@pytest.mark.parametrize("text, match", [
    ("hifa_restoredata(vis=myvis, session=['session_1'])\n", r"x.py, line 1: the value of 'vis' is not a literal"),
    ("h_init()\n\nhifa_restoredata(vis=['a','b'], session=['session_1'])\n", r"x.py, line 3: .* 2 EB\(s\) but 1 session"),
    ("h_init()\nhifa_restoredata(vis=['a'] session=['s'])\n", r"x.py, line 2: not valid Python"),
    ("hifa_restoredata(**kw)\n", r"x.py, line 1: '\*\*' arguments"),
    ("hifa_restoredata(vis=[1, 2])\n", r"x.py, line 1: vis must be a string or a list of strings"),
])
def test_errors_name_file_and_line(text, match):
    with pytest.raises(RestoreScriptError, match=match):
        parse_restore_script(text, "x.py")


def test_deep_expression_is_an_error_not_a_crash():
    text = "hifa_restoredata(vis=" + "[" * 100_000 + "]" * 100_000 + ")\n"
    with pytest.raises(RestoreScriptError, match="x.py"):
        parse_restore_script(text, "x.py")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_only_the_parser_error(text):
    try:
        parse_restore_script(text, "x.py")
    except RestoreScriptError as exc:
        assert "x.py" in str(exc)
