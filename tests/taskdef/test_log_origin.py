"""Our messages carry our origin, even after a CASA task ran inside ours (issue 19:
lines were logged as ``applycal::qa_restore``); read from the CASA log file."""
import sys
from pathlib import Path

import pytest

from almaqa_casa.taskdef import build_task, read_task_xml

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def nested_task():
    sys.path.insert(0, str(HERE))
    try:
        yield build_task(read_task_xml(HERE / "data" / "qa_toytask.xml"), body_module="nested_body")
    finally:
        sys.path.remove(str(HERE))


def _lines(text: str) -> list[list[str]]:
    """CASA log lines as [time, priority, origin, message]."""
    return [line.split("\t", 3) for line in text.splitlines() if line.count("\t") >= 3]


def _origin_of(lines, message: str) -> str:
    found = [ln[2] for ln in lines if message in ln[3]]
    assert found, f"{message!r} not in the log"
    return found[0]


def test_origin_after_a_nested_casa_task(nested_task, infile, casalog_file):
    result = nested_task(infile=infile)
    assert result["shape"] == [8, 8, 1, 1]
    lines = _lines(casalog_file())
    # the nested task really ran and logged under its own name
    assert any(ln[2].startswith("imhead::") for ln in lines)
    for message in ("before the nested task", "after the nested task", "a warning of ours",
                    "##### End Task: qa_toytask"):
        origin = _origin_of(lines, message)
        assert origin.startswith("qa_toytask::"), (message, origin)
    assert _origin_of(lines, "a warning of ours") == "qa_toytask::::casa"
    assert [ln[1] for ln in lines if "a warning of ours" in ln[3]] == ["WARN"]
    assert not any(ln[2].startswith("imhead::qa_toytask") for ln in lines)


def test_failure_logged_with_our_origin_and_traceback(nested_task, infile, casalog_file):
    with pytest.raises(RuntimeError, match="failure after the nested task"):
        nested_task(infile=infile, fail=True)
    text = casalog_file()
    lines = _lines(text)
    severe = [ln for ln in lines if ln[1] == "SEVERE" and "RuntimeError" in ln[3]]
    assert severe and all(ln[2].startswith("qa_toytask::") for ln in severe)
    # the traceback is in the log (INFO: not echoed on the console), naming the body's line
    assert "Traceback (for the record)" in text and "nested_body.py" in text


def test_post_outside_a_task_uses_the_given_origin(casalog_file):
    from casatasks import casalog

    from almaqa_casa.log import post
    casalog.origin("applycal")             # what a CASA task leaves behind
    post("from a worker", "INFO", "qa_restore")
    assert _origin_of(_lines(casalog_file()), "from a worker") == "qa_restore::::casa"
