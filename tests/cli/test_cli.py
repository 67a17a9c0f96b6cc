"""The ``almaqa`` command as a user meets it (real subprocesses, real CASA).

Exit status 2 with one line and no traceback for every user mistake; 1 with
"see the log" for a failure; one CASA log per run, named after the task and
the time, in the per-user temporary folder; ``--json`` alone on stdout.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ALMAQA = os.path.join(os.path.dirname(sys.executable), "almaqa")
LOG_DIR = Path(tempfile.gettempdir()) / f"almaqa_casa-{os.getuid()}"
LOG_NAME = re.compile(r"^(?P<task>qa_\w+)-(?P<stamp>\d{8}-\d{6})-(?P<pid>\d+)\.log$")


def almaqa(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("ALMAQA_CASALOG", "ALMAQA_RUNLOG")}
    e.update(env)
    return subprocess.run([ALMAQA, *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=600)


def _one_line_error(r: subprocess.CompletedProcess, task: str) -> str:
    """The stderr lines other than the log announcement: exactly one, no traceback."""
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and ": CASA log: " not in ln]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"almaqa {task}: ")
    return lines[0]


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


@pytest.fixture
def fits_file(tmp_path) -> Path:
    f = tmp_path / "x.IQUV.pbcor.fits"
    f.write_bytes(b"not a fits file")
    return f


BAD_VALUES = [
    ("qa_restore", ["--spacesaving", "two"], "spacesaving"),
    ("qa_restore", ["--spacesaving", "7"], "spacesaving"),
    ("qa_restore", ["--SPACESAVING", "-2"], "spacesaving"),
    ("qa_restore", ["--dosplit", "maybe"], "dosplit"),
    ("qa_restore", ["--docontsub", "2"], "docontsub"),
    ("qa_restore", ["--nprocs", "-1"], "nprocs"),
    ("qa_validate", ["--res_tolerance", "-1"], "res_tolerance"),
    ("qa_validate", ["--sens_tolerance", "-0.5"], "sens_tolerance"),
    ("qa_validate", ["--pbrecovery", "fast"], "pbrecovery"),
    ("qa_validate", ["--checks", "bogus"], "checks"),
    ("qa_validate", ["--checks", '["layout", "bogus"]'], "checks"),
    ("qa_validate", ["--req_resolution", "abc"], "req_resolution"),
    ("qa_validate", ["--req_resolution", "3mJy"], "req_resolution"),
    ("qa_validate", ["--req_sensitivity", "0.5arcsec"], "req_sensitivity"),
    ("qa_polmaps", ["--polithresh", "5"], "polithresh"),
    ("qa_polmaps", ["--debias", "--sigma", "20"], "sigma"),
    ("qa_renormplots", ["--threshold", "0.9"], "threshold"),
]


@pytest.mark.parametrize("task, args, param", BAD_VALUES,
                         ids=[f"{t}{''.join(a)}" for t, a, _ in BAD_VALUES])
def test_values_the_xml_rejects_exit_2(tmp_path, folder, fits_file, task, args, param):
    where = {"qa_polmaps": ["--imagename", str(fits_file)],
             "qa_renormplots": ["--vis", str(fits_file)]}.get(task, ["--deliverydir", str(folder)])
    r = almaqa([task, *where, *args], tmp_path)
    assert r.returncode == 2, r.stderr
    line = _one_line_error(r, task)
    assert f"'{param}'" in line


def test_mistyped_option_gets_a_suggestion(tmp_path, folder):
    r = almaqa(["qa_restore", "--deliverydir", str(folder), "--spacesavng", "2"], tmp_path)
    assert r.returncode == 2
    assert "unknown option --spacesavng; did you mean --spacesaving?" in _one_line_error(r, "qa_restore")
    r = almaqa(["qa_validate", "--deliverydir", str(folder), "--req_resolutoin=1arcsec"], tmp_path)
    assert r.returncode == 2 and "did you mean --req_resolution?" in r.stderr


def test_mistyped_task_gets_a_suggestion(tmp_path):
    r = almaqa(["qa_restor"], tmp_path)
    assert r.returncode == 2
    assert "unknown task 'qa_restor'; did you mean qa_restore" in r.stderr.splitlines()[0]
    assert "Traceback" not in r.stderr


def test_empty_folder_is_a_user_mistake(tmp_path, folder):
    r = almaqa(["qa_restore", "--deliverydir", str(folder)], tmp_path)
    line = _one_line_error(r, "qa_restore")
    assert "no member.uid___* folder found" in line
    assert r.returncode == 2


def test_empty_folder_says_one_line_without_traceback(tmp_path, folder):
    """What holds already: one line, no traceback, the log has the traceback."""
    r = almaqa(["qa_restore", "--deliverydir", str(folder)], tmp_path)
    assert r.returncode in (1, 2)
    line = _one_line_error(r, "qa_restore")
    assert "no member.uid___* folder found" in line
    log = Path(re.search(r"CASA log: (\S+)", r.stderr).group(1))
    assert "Traceback (for the record)" in log.read_text()


def test_not_fits_is_an_input_error_naming_the_log(tmp_path, fits_file):
    """A file that is not FITS given to qa_polmaps is the user's input (issue 19): exit 2,
    one line naming the file; the log holds the traceback."""
    r = almaqa(["qa_polmaps", "--imagename", str(fits_file)], tmp_path)
    assert r.returncode == 2
    line = _one_line_error(r, "qa_polmaps")
    assert f"{fits_file}: not a FITS file" in line
    log = Path(re.search(r"CASA log: (\S+)", r.stderr).group(1))
    text = log.read_text()
    assert "Traceback (for the record)" in text and "InputError" in text


def test_one_log_per_run_named_after_task_and_time(tmp_path, folder):
    logs = []
    for _ in range(2):
        r = almaqa(["qa_validate", "--deliverydir", str(folder), "--outdir", "report",
                    "--checks", "layout", "--thumbnails", "false", "--json"], tmp_path)
        assert r.returncode in (0, 1), r.stderr
        result = json.loads(r.stdout)            # stdout is the JSON alone
        announced = re.search(r"^almaqa qa_validate: CASA log: (\S+)$", r.stderr, re.M).group(1)
        assert result["logfile"] == announced
        path = Path(announced)
        assert path.parent == LOG_DIR
        m = LOG_NAME.match(path.name)
        assert m and m["task"] == "qa_validate"
        assert "##### Begin Task: qa_validate" in path.read_text()
        logs.append(path)
    assert logs[0] != logs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "report"]   # nothing else in cwd


def test_logfile_option_and_environment(tmp_path, folder):
    mine = tmp_path / "logs" / "mine.log"
    r = almaqa(["qa_validate", "--deliverydir", str(folder), "--outdir", "report", "--checks",
                "layout", "--logfile", str(mine), "--json"], tmp_path)
    assert json.loads(r.stdout)["logfile"] == str(mine)
    assert "Begin Task: qa_validate" in mine.read_text()
    env_log = tmp_path / "env.log"
    r = almaqa(["qa_validate", "--deliverydir", str(folder), "--outdir", "report", "--checks",
                "layout", "--json"], tmp_path, ALMAQA_CASALOG=str(env_log))
    assert json.loads(r.stdout)["logfile"] == str(env_log)
    assert "Begin Task: qa_validate" in env_log.read_text()


def test_python_session_keeps_one_log(tmp_path, folder):
    """Several tasks in one Python session share that session's log, named once."""
    code = ("from almaqa_casa import qa_validate\n"
            f"a = qa_validate(deliverydir={str(folder)!r}, outdir='r1', checks='layout')\n"
            f"b = qa_validate(deliverydir={str(folder)!r}, outdir='r2', checks='layout')\n"
            "print(a['logfile']); print(b['logfile'])\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALMAQA_CASALOG", "ALMAQA_RUNLOG", "CASASITECONFIG")}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.split()
    assert first == second
    assert Path(first).parent == LOG_DIR and Path(first).name.startswith("session-")
    assert r.stderr.count(f"almaqa_casa: CASA log: {first}") == 1
    assert Path(first).read_text().count("##### Begin Task: qa_validate") == 2


def test_help_and_usage(tmp_path):
    r = almaqa(["--help"], tmp_path)
    assert r.returncode == 0
    for name in ("qa_restore", "qa_validate", "qa_polmaps", "qa_renormplots", "synth"):
        assert name in r.stdout
    r = almaqa(["qa_restore", "--help"], tmp_path)
    assert r.returncode == 0
    assert "allowed: -1, 0, 1, 2, 3, ''" in " ".join(r.stdout.split())
    assert "--json" in r.stdout and "-v, --verbose" in r.stdout and "--logfile" in r.stdout
