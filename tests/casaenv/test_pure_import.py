"""``import almaqa_casa`` and the pure modules need no CASA (and no numpy);
the tasks are built on first use, with a clear error when CASA is missing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PURE = ("almaqa_casa", "almaqa_casa.errors", "almaqa_casa.log", "almaqa_casa.delivery.naming",
        "almaqa_casa.delivery.calapply", "almaqa_casa.delivery.contdat",
        "almaqa_casa.delivery.manifest", "almaqa_casa.delivery.ppr", "almaqa_casa.delivery.layout")

# A finder in front of sys.meta_path that makes the named packages "not installed".
BLOCK = """\
import sys
BLOCKED = {blocked!r}
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""

PROBE = """\
import importlib, sys
for name in {pure!r}:
    importlib.import_module(name)
import almaqa_casa
print('ALL', ','.join(almaqa_casa.__all__))
print('LOADED', ','.join(sorted(m for m in sys.modules
                                if m.split('.')[0] in ('casatools', 'casatasks', 'numpy'))))
import os
print('SITECONFIG', os.environ.get('CASASITECONFIG', ''))
"""


def _run(python: str, code: str, cwd: Path, extra_env: dict | None = None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CASASITECONFIG", "ALMAQA_CASALOG", "ALMAQA_RUNLOG")}
    env.update(extra_env or {})
    return subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _fields(stdout: str) -> dict:
    return dict(line.split(" ", 1) if " " in line else (line, "") for line in stdout.splitlines())


def test_pure_modules_import_without_casa_or_numpy(tmp_path):
    code = BLOCK.format(blocked=("casatools", "casatasks", "numpy")) + PROBE.format(pure=PURE)
    r = _run(sys.executable, code, tmp_path)
    assert r.returncode == 0, r.stderr
    out = _fields(r.stdout)
    assert out["ALL"] == "qa_polmaps,qa_renormplots,qa_restore,qa_validate"
    assert out["LOADED"] == ""
    # the offline bootstrap ran all the same: CASA imported later anywhere finds its data
    assert Path(out["SITECONFIG"]).is_file()
    assert "measurespath" in Path(out["SITECONFIG"]).read_text()


@pytest.mark.parametrize("blocked, named", [
    (("casatools", "casatasks"), "casatools"),
    (("casatasks",), "casatasks"),
])
def test_task_access_without_casa_names_the_package_and_the_fix(tmp_path, blocked, named):
    code = BLOCK.format(blocked=blocked) + (
        "import almaqa_casa\n"
        "try:\n"
        "    almaqa_casa.qa_restore\n"
        "except ImportError as exc:\n"
        "    from almaqa_casa.errors import AlmaqaError\n"
        "    print('ERROR', type(exc).__name__, isinstance(exc, AlmaqaError), exc)\n"
        "try:\n"
        "    from almaqa_casa import qa_validate\n"
        "except ImportError as exc:\n"
        "    print('FROM', type(exc).__name__)\n")
    r = _run(sys.executable, code, tmp_path)
    assert r.returncode == 0, r.stderr
    out = _fields(r.stdout)
    assert out["ERROR"].startswith("CASAMissingError True ")
    message = out["ERROR"]
    assert f"{named} (CASA 6)" in message and "is not installed" in message
    assert "pip install casatools casatasks" in message
    assert "casadata" not in message.replace('almaqa_casa[data]', '')
    assert out["FROM"] == "CASAMissingError"


def test_casa_imported_after_the_package_is_offline_safe(tmp_path):
    """Nothing of CASA at import, and a later casatools import finds casadata's measures."""
    home = tmp_path / "home"
    home.mkdir()
    code = ("import sys, almaqa_casa\nassert 'casatools' not in sys.modules\n"
            "import casatools\nfrom almaqa_casa.casaenv import casadata_path\n"
            "print('SAME', casatools.ctsys.measurespath().rstrip('/') == casadata_path().rstrip('/'))\n")
    r = _run(sys.executable, code, tmp_path, {"HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert _fields(r.stdout)["SAME"] == "True"
    assert not (home / ".casa").exists()


OTHER_PYTHON = "/root/.pyenv/versions/3.11.7/bin/python"


@pytest.mark.skipif(not os.path.exists(OTHER_PYTHON),
                    reason=f"{OTHER_PYTHON} (an interpreter without casatools) is not on this machine")
def test_pure_imports_in_an_interpreter_without_casatools(tmp_path):
    have = _run(OTHER_PYTHON, "import casatools", tmp_path)
    assert have.returncode != 0, "that interpreter was meant to have no casatools"
    code = PROBE.format(pure=PURE) + (
        "try:\n    almaqa_casa.qa_polmaps\nexcept ImportError as exc:\n    print('ERROR', exc)\n")
    r = _run(OTHER_PYTHON, code, tmp_path, {"PYTHONPATH": str(REPO), "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    out = _fields(r.stdout)
    assert out["ALL"] == "qa_polmaps,qa_renormplots,qa_restore,qa_validate"
    assert "casatools" not in out["LOADED"]
    assert "casatools (CASA 6)" in out["ERROR"] and f"{OTHER_PYTHON} -m pip install" in out["ERROR"]
