"""Manual path building blocks: the CASA-6 script namespace and the CASA version guard.

Real casatools/casatasks run inside the namespace; nothing is mocked.
"""
import os
import textwrap
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.delivery.member import uid_sort_key
from almaqa_casa.restore import versionguard as vg
from almaqa_casa.restore.scriptenv import casa_version, make_namespace, run_script

PRESENT = ".".join(str(x) for x in casa_version()[0][:3])


def _run(tmp_path, code, **kw):
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(code))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return run_script(script, work, tmp_path / "s.log", **kw), work


# ---------------------------------------------------------------- scriptenv

def test_namespace_has_what_old_scripts_use():
    ns = make_namespace()
    import casatasks
    import casatools
    for task in ("importasdm", "wvrgcal", "gencal", "applycal", "split", "concat", "setjy",
                 "flagdata", "flagmanager", "listobs", "fixplanets"):
        assert ns[task] is getattr(casatasks, task)
    assert isinstance(ns["tb"], casatools.table) and isinstance(ns["msmd"], casatools.msmetadata)
    assert isinstance(ns["ms"], casatools.ms) and isinstance(ns["ia"], casatools.image)
    assert isinstance(ns["cb"], casatools.calibrater) and isinstance(ns["qa"], casatools.quanta)
    assert ns["tbtool"] is casatools.table and ns["msmdtool"] is casatools.msmetadata
    assert ns["applyonly"] is True and "mysteps" not in ns
    assert ns["T"] is True and ns["F"] is False
    assert ns["casadef"].casa_version == PRESENT and ns["casaVersion"] == PRESENT
    assert ns["casa"]["build"]["version"] == casatools.version_string()
    assert list(ns["cu"].version())[:3] == [int(x) for x in PRESENT.split(".")]
    assert ns["casalith"].version()[:3] == [int(x) for x in PRESENT.split(".")]
    # a fresh namespace (and fresh tool instances) every time
    assert make_namespace()["tb"] is not ns["tb"]
    assert make_namespace(steps=[0, 2])["mysteps"] == [0, 2]


def test_script_sees_casa6_namespace_and_runs_real_casa(tmp_path):
    # version helpers as the CSG generators wrote them, import of casalith/casadef,
    # a quanta computation, execfile of a second file, printing into the log
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "inc.py").write_text("included = qa.convert('1deg', 'arcsec')['value']\n")
    res, work = _run(tmp_path, f"""
        import re, casalith, casadef
        if re.search('^{PRESENT}', casadef.casa_version) == None:
            sys.exit('wrong version')
        if re.search('^{PRESENT}', '.'.join([str(i) for i in cu.version().tolist()[:-1]])) == None:
            sys.exit('wrong version (cu)')
        if re.search('^{PRESENT}', '.'.join([str(i) for i in casalith.version()[:-1]])) == None:
            sys.exit('wrong version (casalith)')
        assert applyonly == True
        thesteps = []
        try:
            thesteps = mysteps
        except NameError:
            print('global variable mysteps not set.')
        execfile('inc.py', globals())
        assert included == 3600.0
        open('out.txt', 'w').write(str(os.getcwd()))
        print('HELLO-FROM-SCRIPT')
        casalog.post('CASALOG-FROM-SCRIPT', 'INFO')
    """)
    assert res["status"] == "ok", res
    assert Path(work, "out.txt").read_text() == str(work)
    log = Path(res["log"]).read_text()
    assert "HELLO-FROM-SCRIPT" in log and "mysteps not set" in log
    assert "CASALOG-FROM-SCRIPT" in log
    assert os.getcwd() == str(tmp_path)      # cwd restored (autouse fixture chdir'ed here)


def test_old_recipes_import_finds_casarecipes(tmp_path):
    pytest.importorskip("casarecipes")
    res, work = _run(tmp_path, """
        from recipes.almahelpers import fixsyscaltimes, tsysspwmap
        import recipes.almahelpers
        from casarecipes.almahelpers import tsysspwmap as t2
        assert tsysspwmap is t2 and recipes.almahelpers.tsysspwmap is t2
        assert callable(fixsyscaltimes)
    """)
    assert res["status"] == "ok", res


def test_script_failure_is_caught_with_traceback(tmp_path):
    res, _ = _run(tmp_path, """
        x = 1
        raise RuntimeError('boom in delivered script')
    """)
    assert res["status"] == "failed"
    assert "RuntimeError: boom in delivered script" in res["error"]
    assert "line 3" in res["traceback"]
    assert "boom in delivered script" in Path(res["log"]).read_text()
    assert os.getcwd() == str(tmp_path)


def test_sys_exit_is_a_failure_not_an_exit(tmp_path):
    res, _ = _run(tmp_path, """
        sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 5.1.1')
    """)
    assert res["status"] == "failed"
    assert "sys.exit" in res["error"] and "5.1.1" in res["error"]


def test_python2_script_reports_clearly(tmp_path):
    res, _ = _run(tmp_path, """
        print "# Flux calibration of the data."
    """)
    assert res["status"] == "failed" and "Python 2" in res["error"]


def test_real_task_in_namespace_failure_in_casa(tmp_path):
    # a real casatasks call that fails (missing MS) stops the script with its message
    res, _ = _run(tmp_path, """
        listobs(vis='nonexistent.ms')
    """)
    assert res["status"] == "failed"
    assert "nonexistent.ms" in res["error"] + res["traceback"]


# ---------------------------------------------------------------- ordering

def test_scriptforpi_chronological_order():
    uids = ["uid___A002_Xb_X1a", "uid___A002_Xb_X9", "uid___A002_Xa_X100"]
    assert sorted(uids) == ["uid___A002_Xa_X100", "uid___A002_Xb_X1a", "uid___A002_Xb_X9"]
    assert sorted(uids, key=uid_sort_key) == ["uid___A002_Xa_X100", "uid___A002_Xb_X9",
                                              "uid___A002_Xb_X1a"]


# ---------------------------------------------------------------- version guard

CSG5 = """\
import re

import os

if applyonly != True: es = aU.stuffForScienceDataReduction()


if re.search('^5.1.1', casadef.casa_version) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 5.1.1')

# Import of the ASDM
mystep = 0
done = 'imported'
"""

CSG50 = """\
import re

import os

import casadef

if applyonly != True: es = aU.stuffForScienceDataReduction()


if re.search('^4.7.2', casaVersion) is None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 4.7.2')
done = 1
"""

CSG6 = """\
import re
if re.search('^6.5.4', '.'.join([str(i) for i in cu.version().tolist()[:-1]])) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 6.5.4')
done = 1
"""

CASALITH = """\
import re
if re.search('^6.2.1', '.'.join([str(i) for i in casalith.version()[:-1]])) != None:
    pass
else:
    raise RuntimeError('use CASA 6.2.1')
done = 1
"""

MULTI = """\
import re

if (re.search('^4.2', casadef.casa_version) or re.search('^4.3', casadef.casa_version)
        or re.search('^4.4', casadef.casa_version))  == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 4.2, 4.3, or 4.4')

if casadef.casa_version < '4.5.0':
    removed_pointing = True
done = 1
"""


SYNTHSTYLE = """\
import re
try:
    import casalith
    casaversion = casalith.version_string()
except ImportError:
    import casatools as _ct
    casaversion = '.'.join(str(v) for v in _ct.utils.utils().version()[:3])

if re.search(r'^5\\.1\\.1', casaversion) == None:
    sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 5.1.1')
done = 1
"""


@pytest.mark.parametrize("text,asked,line", [(CSG5, "5.1.1", 8), (CSG6, "6.5.4", 2),
                                             (CSG50, "4.7.2", 10),
                                             (CASALITH, "6.2.1", 2),
                                             (MULTI, "4.2, 4.3 or 4.4", 3),
                                             (SYNTHSTYLE, "5.1.1", 9)])
def test_guards_found_and_blocking(text, asked, line):
    guards = vg.find_guards(text)
    assert len(guards) == 1                      # the '< 4.5.0' test has no stop: not a guard
    g = guards[0]
    assert g.asked == asked and g.lineno == line
    assert vg.blocking(guards, PRESENT) == guards
    # the version it asks for passes
    assert vg.blocking(guards, asked.split(",")[0].strip() + ".0") == []
    msg = vg.mismatch_message("x.ms.scriptForCalibration.py", guards, PRESENT)
    assert asked in msg and PRESENT in msg and "ignoreversion=True" in msg


@pytest.mark.parametrize("text", [CSG5, CSG50, CSG6, CASALITH, MULTI, SYNTHSTYLE])
def test_patched_copy_runs_and_keeps_lines(tmp_path, text):
    guards = vg.find_guards(text)
    patched = vg.patch_text(text, guards)
    n = len(text.splitlines())
    assert patched.splitlines()[:n] != text.splitlines()
    assert len(patched.splitlines()) == n + len(guards)       # one note line appended
    # every non-guard line is unchanged
    for i, (a, b) in enumerate(zip(text.splitlines(), patched.splitlines()), 1):
        if not any(g.lineno <= i <= g.end_lineno for g in guards):
            assert a == b
    # the original stops in this CASA, the patched copy runs to the end
    orig, _ = _run(tmp_path, text)
    assert orig["status"] == "failed"
    res, _ = _run(tmp_path, patched)
    assert res["status"] == "ok", res
    assert vg.find_guards(patched) == [] or vg.blocking(vg.find_guards(patched), PRESENT) == []


def test_guard_that_passes_is_not_blocking():
    text = f"import re\nif re.search('^{PRESENT}', casadef.casa_version) == None:\n sys.exit('x')\n"
    guards = vg.find_guards(text)
    assert len(guards) == 1 and vg.blocking(guards, PRESENT) == []


def test_python2_guard_found_by_lines():
    text = ("import re\n\nif re.search('^4.2.2', casadef.casa_version) == None:\n"
            " sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR "
            "GENERATING THE SCRIPT: 4.2.2')\nprint 'step 0'\n")
    guards = vg.find_guards(text)
    assert [g.asked for g in guards] == ["4.2.2"]
    with pytest.raises(SyntaxError):
        vg.patch_text(text, guards)


def test_no_guard_in_plain_script():
    assert vg.find_guards("x = 1\nif x == None:\n sys.exit('no')\n") == []
    assert vg.find_guards("import re\nv = re.search('^5.1.1', casadef.casa_version)\n") == []
