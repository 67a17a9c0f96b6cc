"""A non-editable ``pip install .`` gives a working package with its XML and task bodies."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install(tmp_path):
    # build from a copy: a stale build/ folder in the checkout must not hide a packaging error
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "demo", ".pytest_cache", ".hypothesis",
        "__pycache__", ".synthcache"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                        "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    pkg = target / "almaqa_casa"
    xmls = sorted(p.name for p in (pkg / "xml").glob("*.xml"))
    assert xmls == ["qa_polmaps.xml", "qa_renormplots.xml", "qa_restore.xml", "qa_validate.xml"]
    assert (pkg / "private" / "task_qa_restore.py").is_file()
    assert (target / "bin" / "almaqa").is_file()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    code = ("import almaqa_casa, almaqa_casa.private\n"
            "from almaqa_casa.taskdef import xml_dir\n"
            "print(almaqa_casa.__file__)\nprint(almaqa_casa.private.__file__)\nprint(xml_dir())\n"
            "print(','.join(almaqa_casa.__all__))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    init, tasks, xml, names = r.stdout.split()
    for path in (init, tasks, xml):
        assert Path(path).is_relative_to(target), path
    assert names == "qa_polmaps,qa_renormplots,qa_restore,qa_validate"
