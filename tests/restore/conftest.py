"""Fixtures for the restore tests.

The synthetic pipeline delivery comes from the shared session fixture
``pipeline_delivery`` (tests/conftest.py) when it exists; otherwise it is
built here with :func:`almaqa_casa.synth.build.generate` (cached under
``$ALMAQA_SYNTH_CACHE``).  Restores write to temporary folders (``outdir``)
or into *shadow* members whose raw/, calibration/, script/ and product/ are
links to the shared delivery, so the shared tree is never written to.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401  (configures CASA offline before casatools is used)

INPUT_FOLDERS = ("raw", "product", "calibration", "script")


def kill_once_recorded(cmd: list[str], record: Path, poll: float = 0.1) -> None:
    """Start ``cmd`` (a qa_restore CLI run) and SIGKILL its process group as soon as
    ``record`` (a step's completion record) exists, while the run is still going."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    t0 = time.time()
    while not record.exists() and p.poll() is None and time.time() - t0 < 300:
        time.sleep(poll)
    assert p.poll() is None, "restore finished before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def rerun_json(cmd: list[str]) -> dict:
    """Run ``cmd`` (with ``--json``) to the end; its result dict."""
    p2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p2.returncode == 0, p2.stderr[-2000:]
    return json.loads(p2.stdout)


@pytest.fixture(autouse=True)
def _casa_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _checksum(member: str | os.PathLike, folders=INPUT_FOLDERS) -> str:
    """sha256 over names, sizes, link targets and contents of the input folders."""
    h = hashlib.sha256()
    member = Path(member)
    for sub in folders:
        root = member / sub
        if not root.exists():
            continue
        root = root.resolve()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
                p = os.path.join(dirpath, name)
                rel = os.path.relpath(p, root)
                h.update(f"{sub}/{rel}\0".encode())
                if os.path.islink(p):
                    h.update(os.readlink(p).encode())
                    continue
                st = os.stat(p)
                h.update(f"{st.st_size}:{st.st_mode & 0o777}\0".encode())
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="session")
def restore_checksum(request):
    """The shared ``tree_checksum`` if offered, else a local one."""
    try:
        return request.getfixturevalue("tree_checksum")
    except pytest.FixtureLookupError:
        return _checksum


def _cache_dir() -> str:
    return os.environ.get("ALMAQA_SYNTH_CACHE") or "/tmp/synthcache"


@pytest.fixture(scope="session")
def restore_delivery(request):
    """The synthetic pipeline delivery dict (``member_dir``, ``truth`` ...)."""
    try:
        return request.getfixturevalue("pipeline_delivery")
    except pytest.FixtureLookupError:
        pass
    given = os.environ.get("ALMAQA_RESTORE_TRUTH")   # a prebuilt delivery's truth.json
    if given:
        truth = json.loads(Path(given).read_text())
        return {"member_dir": truth["member_dir"], "truth_path": given,
                "project_dir": truth["project_dir"], "truth": truth}
    from almaqa_casa.synth.build import generate
    out = os.path.join(_cache_dir(), "restore_tests_pipeline")
    marker = os.path.join(out, "generate.json")
    if os.path.isfile(marker):
        d = json.loads(Path(marker).read_text())
        d["truth"] = json.loads(Path(d["truth_path"]).read_text())
        return d
    if os.path.exists(out):
        shutil.rmtree(out)
    r = generate(out, calibration="pipeline", nebs=2)
    d = {"member_dir": r["member_dir"], "truth_path": r["truth_path"],
         "project_dir": r["project_dir"]}
    Path(marker).write_text(json.dumps(d))
    d["truth"] = r["truth"]
    return d


def make_shadow(member: str, where: Path, replace: dict | None = None) -> Path:
    """A member folder in ``where`` whose input folders link to ``member``'s.

    ``replace`` maps a folder name (e.g. 'calibration') to a function
    ``f(src_folder, dst_folder)`` that builds a modified real copy instead.
    """
    member = Path(member)
    shadow = where / member.name
    shadow.mkdir(parents=True)
    for sub in ("raw", "product", "calibration", "script", "qa", "log"):
        src = member / sub
        if not src.exists():
            continue
        if replace and sub in replace:
            (shadow / sub).mkdir()
            replace[sub](src, shadow / sub)
        else:
            os.symlink(src, shadow / sub)
    for f in member.iterdir():
        if f.is_file():
            os.symlink(f, shadow / f.name)
    return shadow


def link_all(src: Path, dst: Path, skip=()) -> None:
    for f in sorted(src.iterdir()):
        if f.name not in skip:
            os.symlink(f, dst / f.name)
