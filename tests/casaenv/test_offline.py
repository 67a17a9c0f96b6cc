"""Offline CASA bootstrap: fresh machine, empty HOME, no network, no ~/.casa."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from almaqa_casa.casaenv import casadata_path
from almaqa_casa.casaenv.offline import siteconfig_text


def _clean_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CASASITECONFIG", "ALMAQA_CASALOG")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def _python(code: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_fresh_home_imports_casa_offline(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    r = _python(
        "import almaqa_casa, casatools, casatasks\n"
        "from almaqa_casa.casaenv import state\n"
        "me = casatools.measures()\n"
        "print('EPOCH', me.epoch('utc', '2024/01/01/00:00:00')['m0']['value'])\n"
        "print('MEASURES', casatools.ctsys.measurespath())\n"
        "print('ACTION', state().action)\n"
        "print('LOG', casatasks.casalog.logfile())\n",
        work, _clean_env(home))
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert float(out["EPOCH"]) == pytest.approx(60310.0)
    assert out["ACTION"] == "site-config"
    assert Path(out["MEASURES"].rstrip("/")) == Path(casadata_path())
    assert not Path(out["LOG"]).is_relative_to(work)
    assert not (home / ".casa").exists(), "nothing may be written into ~/.casa"
    assert list(work.iterdir()) == [], "no casa-*.log (or anything) in the working directory"


def test_user_log_file_when_asked(tmp_path):
    log = tmp_path / "mine.log"
    r = _python("import almaqa_casa\nfrom casatasks import casalog\ncasalog.post('hello-log')",
                tmp_path, _clean_env(tmp_path, ALMAQA_CASALOG=str(log)))
    assert r.returncode == 0, r.stderr
    assert "hello-log" in log.read_text()


def test_running_casa_session_is_left_alone(tmp_path):
    site = tmp_path / "site.py"
    site.write_text(siteconfig_text(casadata_path(), str(tmp_path / "own.log")))
    r = _python("import casatools, os\nimport almaqa_casa\n"
                "from almaqa_casa.casaenv import state\n"
                "print(state().action, os.environ['CASASITECONFIG'])",
                tmp_path, _clean_env(tmp_path, CASASITECONFIG=str(site)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["casa-session", str(site)]


def test_existing_site_config_is_kept(tmp_path):
    site = tmp_path / "site.py"
    site.write_text(siteconfig_text(casadata_path(), str(tmp_path / "own.log")))
    r = _python("import almaqa_casa\nfrom almaqa_casa.casaenv import state\n"
                "from casatasks import casalog\nprint(state().action, casalog.logfile())",
                tmp_path, _clean_env(tmp_path, CASASITECONFIG=str(site)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["site-config-kept", str(tmp_path / "own.log")]


def test_no_measures_data_gives_a_clear_error(tmp_path):
    """The package imports without CASA; the first task names the fix."""
    home = tmp_path / "home"
    home.mkdir()
    r = _python("import sys\nsys.modules['casadata'] = None\nimport almaqa_casa\n"
                "assert 'casatools' not in sys.modules\nprint('IMPORTED')\n"
                "almaqa_casa.qa_validate",
                tmp_path, _clean_env(home))
    assert r.returncode != 0
    assert "IMPORTED" in r.stdout
    assert "MeasuresDataError" in r.stderr
    assert "pip install casadata" in r.stderr
