"""The XML-driven task wrapper: validation, defaults, logging, help, results."""
import inspect

import pytest

from almaqa_casa.taskdef import TaskParameterError, current_call


def test_defaults_applied(toytask, infile):
    from casatasks import casalog
    r = toytask(infile=infile)
    assert r.pop("logfile") == casalog.logfile()   # the CASA log the call was written to
    assert r == {"status": "ok", "infile": infile, "outfile": "out.txt", "mode": "fast",
                 "factor": 1.0, "niter": 10, "verbose": False, "spw": "",
                 "chans": [0, 1], "options": {}}


def test_subparameter_default_follows_constraint(toytask, infile):
    assert toytask(infile=infile, mode="slow")["factor"] == 2.5
    assert toytask(infile=infile, mode="fast")["factor"] == 1.0
    # an explicit value always wins over the constraint default
    assert toytask(infile=infile, mode="slow", factor=7)["factor"] == 7.0


def test_coercion(toytask, infile):
    r = toytask(infile=infile, factor=3, chans=(5, 6), spw=["0", "1"], mode="SLOW")
    assert r["factor"] == 3.0 and isinstance(r["factor"], float)
    assert r["chans"] == [5, 6]
    assert r["spw"] == ["0", "1"]
    assert r["mode"] == "slow"  # ignorecase maps to the allowed spelling
    assert toytask(infile=infile, chans=4)["chans"] == [4]


@pytest.mark.parametrize("kwargs, words", [
    ({"niter": 2.5}, ["niter", "integer"]),
    ({"niter": -1}, ["niter", "out of range", "[0, 100]"]),
    ({"niter": 101}, ["niter", "out of range"]),
    ({"verbose": "yes"}, ["verbose", "bool"]),
    ({"mode": "medium"}, ["mode", "'medium'", "allowed", "'fast'", "'slow'"]),
    ({"spw": 3}, ["spw", "string", "list of strings"]),
    ({"options": [1]}, ["options", "dict"]),
    ({"chans": ["a"]}, ["chans", "list of integers"]),
    ({"bogus": 1}, ["unknown parameter", "bogus"]),
])
def test_bad_arguments_name_the_parameter(toytask, infile, kwargs, words):
    with pytest.raises(TaskParameterError) as err:
        toytask(infile=infile, **kwargs)
    for w in words:
        assert w in str(err.value)
    assert isinstance(err.value, AssertionError)  # as CASA's own validator


def test_missing_input_path(toytask, tmp_path):
    with pytest.raises(TaskParameterError, match=r"'infile' must be a path that exists .*nope"):
        toytask(infile=str(tmp_path / "nope"))
    with pytest.raises(TaskParameterError, match="'infile' is required"):
        toytask()


def test_positional_arguments_follow_xml_order(toytask, infile):
    assert toytask(infile, "o.txt")["outfile"] == "o.txt"
    with pytest.raises(TypeError, match="multiple values"):
        toytask(infile, infile=infile)


def test_casalog_lines(toytask, infile, casalog_file):
    toytask(infile=infile, niter=3)
    log = casalog_file()
    lines = [line for line in log.splitlines() if "qa_toytask" in line]
    text = "\n".join(lines)
    assert "##### Begin Task: qa_toytask" in text
    assert f"qa_toytask( infile={infile!r}, outfile='out.txt', mode='fast', factor=1.0, niter=3" in text
    assert "toy body running" in text
    assert "##### End Task: qa_toytask" in text
    begin = text.index("Begin Task")
    assert begin < text.index("toy body running") < text.index("End Task")
    assert all("\tINFO" in line for line in lines)


def test_exception_logged_severe_and_reraised(toytask, infile, casalog_file):
    with pytest.raises(RuntimeError, match="toy failure requested"):
        toytask(infile=infile, fail=True)
    log = casalog_file()
    severe = [line for line in log.splitlines() if "SEVERE" in line]
    assert any("RuntimeError" in s and "toy failure requested" in s and "qa_toytask" in s
               for s in severe)
    assert "##### End Task: qa_toytask" in log


def test_validation_error_logged_severe(toytask, infile, casalog_file):
    with pytest.raises(TaskParameterError):
        toytask(infile=infile, niter=-5)
    assert any("SEVERE" in line and "niter" in line for line in casalog_file().splitlines())


def test_help_and_signature(toytask):
    doc = toytask.__doc__
    assert "A test-only task exercising every parameter kind" in doc
    assert "niter : int, default 10" in doc and "range: [0, 100]" in doc
    assert "allowed: 'fast', 'slow'" in doc
    assert "qa_toytask(infile='a.txt', mode='slow')" in doc
    sig = inspect.signature(toytask)
    assert list(sig.parameters)[:3] == ["infile", "outfile", "mode"]
    assert sig.parameters["niter"].default == 10


def test_call_context_visible_to_body(toytask, infile, monkeypatch):
    seen = {}

    def body(**kw):
        ctx = current_call()
        seen.update(given=ctx.given, g=ctx.caller_globals.get("MARKER"))
        return {"status": "ok"}

    monkeypatch.setattr(toytask, "body", body)
    MARKER = "here"  # noqa: F841  (a local is not a global: must not be seen)
    globals()["MARKER"] = "global-marker"
    try:
        toytask(infile=infile, niter=1)
    finally:
        del globals()["MARKER"]
    assert seen == {"given": frozenset({"infile", "niter"}), "g": "global-marker"}
    assert current_call() is None
