"""The ways users call the tasks: plain Python, ``casa -c script.py``, the CASA prompt."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from almaqa_casa.casaenv import casadata_path
from almaqa_casa.casaenv.offline import siteconfig_text

SCRIPT = """\
from almaqa_casa import qa_validate
try:
    qa_validate(deliverydir='/no/such/delivery')
except AssertionError as exc:
    print('REJECTED', exc)
print('TASK', qa_validate.__name__)
"""


def test_runpy_script_like_casa_c(tmp_path, capsys):
    """casashell's ``-c file.py`` runs the file with runpy.run_path(run_name='__main__')."""
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    runpy.run_path(str(script), init_globals={"casalog": None}, run_name="__main__")
    out = capsys.readouterr().out
    assert "REJECTED parameter 'deliverydir' must be a path that exists" in out
    assert "TASK qa_validate" in out


def _casashell(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    pytest.importorskip("casashell")
    site = tmp_path / "site.py"
    site.write_text(siteconfig_text(casadata_path(), "/dev/null") + "nologfile = True\n")
    env = {k: v for k, v in os.environ.items() if k != "ALMAQA_CASALOG"}
    env.update(HOME=str(tmp_path / "home"), CASASITECONFIG=str(site))
    return subprocess.run([sys.executable, "-m", "casashell", "--nogui", "--agg", "--nologger",
                           "--nologfile", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_casa_c_script(tmp_path):
    (tmp_path / "s.py").write_text(SCRIPT)
    r = _casashell(tmp_path, ["--nostartupfile", "-c", "s.py"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "REJECTED parameter 'deliverydir'" in r.stdout
    assert "TASK qa_validate" in r.stdout


def test_casa_c_reports_failure_as_exit_status(tmp_path):
    (tmp_path / "s.py").write_text("from almaqa_casa import qa_validate\n"
                                   "qa_validate(deliverydir='/no/such/delivery')\n")
    r = _casashell(tmp_path, ["--nostartupfile", "-c", "s.py"])
    assert r.returncode != 0


def test_prompt_startup_line_registers_tasks(tmp_path):
    """The README's one line in ~/.casa/startup.py puts the tasks in taskhelp()."""
    startup = tmp_path / "startup.py"
    startup.write_text("from almaqa_casa import *\n")
    (tmp_path / "s.py").write_text("print('HAVE', qa_restore.__name__)\ntaskhelp()\n")
    r = _casashell(tmp_path, ["--startupfile", str(startup), "-c", "s.py"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HAVE qa_restore" in r.stdout
    extra = r.stdout[r.stdout.index("Extra tasks"):]
    for name in ("qa_restore", "qa_validate", "qa_polmaps", "qa_renormplots"):
        assert name in extra
