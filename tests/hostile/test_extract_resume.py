"""Archive-tar extraction resumes after SIGKILL to the tree an uninterrupted run makes."""
from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from almaqa_casa.delivery.archive import STATE_DIR, ArchiveError, extract_archives

PROJECT = "2025.1.00002.S"
MOUS = "science_goal.uid___A001_X1_X1/group.uid___A001_X1_X2/member.uid___A001_X1_X3"


def _add(tar, name, data=None, link=None, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1_700_000_000
    ti.mode = mode
    if link is not None:
        ti.type, ti.linkname = tarfile.SYMTYPE, link
        tar.addfile(ti)
    elif data is None:
        ti.type = tarfile.DIRTYPE
        tar.addfile(ti)
    else:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))


def _archive_tars(folder: Path, nfiles: int = 800) -> list[str]:
    """Three archive tars of one delivery: overlapping folders (``shared/``, merged
    file by file), a later tar replacing an earlier file, a link, an executable."""
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{PROJECT}/{MOUS}"
    names = []
    for k, sub in enumerate(("raw", "calibration", "product"), start=1):
        p = folder / f"{PROJECT}_uid___A001_X1_X3_00{k}_of_003.tar"
        with tarfile.open(p, "w") as tar:
            _add(tar, PROJECT)
            _add(tar, f"{base}/{sub}")
            for i in range(nfiles):
                _add(tar, f"{base}/{sub}/d{i % 7}/f{i:05d}", (f"{sub}{i}" * 50).encode())
                _add(tar, f"{base}/shared/d{i % 7}/t{k}_{i:05d}", f"{k}.{i}".encode())
            _add(tar, f"{base}/README.txt", f"readme from tar {k}\n".encode())   # replaced
            _add(tar, f"{base}/script/s{k}.py", b"print(1)\n", mode=0o755)
        names.append(str(p))
    with tarfile.open(names[2], "a") as tar:
        _add(tar, f"{base}/product/latest", link="d0")
    return names


def _snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == STATE_DIR or rel.startswith(STATE_DIR + os.sep):
            continue
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            r = os.path.normpath(os.path.join(rel, n))
            if r == STATE_DIR:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[r] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[r] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[r] = ("file", p.read_bytes(), stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return out


@pytest.fixture(scope="module")
def tars(tmp_path_factory):
    return _archive_tars(tmp_path_factory.mktemp("tars"))


@pytest.fixture(scope="module")
def reference(tars, tmp_path_factory):
    dest = tmp_path_factory.mktemp("ref")
    r = extract_archives(tars, dest)
    assert r.extracted == tars and r.skipped == []
    return _snapshot(dest)


def test_reference_tree(reference):
    base = f"{PROJECT}/{MOUS}"
    assert reference[f"{base}/README.txt"][1] == b"readme from tar 3\n"      # the last wins
    assert reference[f"{base}/product/latest"] == ("link", "d0")
    assert reference[f"{base}/script/s2.py"][2] == 0o755
    assert sum(1 for k in reference if "/raw/d" in k and k.count("/") == 6) == 800
    assert sum(1 for k in reference if "/shared/d" in k and k.count("/") == 6) == 2400


def test_rerun_skips_completed(tars, tmp_path, reference):
    extract_archives(tars, tmp_path)
    r = extract_archives(tars, tmp_path)
    assert r.extracted == [] and r.skipped == tars
    assert _snapshot(tmp_path) == reference
    # a changed tar is redone, and so is every tar after it (order decides the last writer)
    os.utime(tars[1], ns=(1, 1))
    r = extract_archives(tars, tmp_path)
    assert r.skipped == tars[:1] and r.extracted == tars[1:]
    assert _snapshot(tmp_path) == reference
    # content removed by hand: redone
    import shutil
    shutil.rmtree(tmp_path / PROJECT)
    r = extract_archives(tars, tmp_path)
    assert r.extracted == tars and _snapshot(tmp_path) == reference


_CHILD = ("import sys; from almaqa_casa.delivery.archive import extract_archives; "
          "extract_archives(sys.argv[2:], sys.argv[1])")


def _kill_when(dest: Path, tars: list[str], ready) -> bool:
    """Run extract_archives in a child and SIGKILL it once ``ready(dest)``; True if killed."""
    p = subprocess.Popen([sys.executable, "-c", _CHILD, str(dest), *tars],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while p.poll() is None and time.monotonic() < deadline:
            if ready(dest):
                p.send_signal(signal.SIGKILL)
                p.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _tmp_files(dest: Path) -> int:
    state = dest / STATE_DIR
    if not state.is_dir():
        return 0
    n = 0
    for t in state.glob("tmp-*"):
        for _, _, files in os.walk(t):
            n += len(files)
    return n


def _records(dest: Path) -> int:
    return len(list((dest / STATE_DIR).glob("*.done.json"))) if (dest / STATE_DIR).is_dir() else 0


@pytest.mark.parametrize("when", [
    "writing the first tar",          # files in the private folder of tar 1
    "writing the second tar",         # tar 1 recorded, tar 2 half written
    "merging",                        # tar 2 written, being moved into place
])
def test_sigkill_then_rerun_equals_uninterrupted(tars, tmp_path, reference, when):
    dest = tmp_path / "dest"
    if when == "writing the first tar":
        def ready(d):
            return _tmp_files(d) > 300
    elif when == "writing the second tar":
        def ready(d):
            return _records(d) == 1 and _tmp_files(d) > 300
    else:
        def ready(d):
            shared = d / PROJECT / MOUS / "shared" / "d3"
            return _records(d) == 1 and shared.is_dir() and any(
                e.name.startswith("t2_") for e in os.scandir(shared))
    assert _kill_when(dest, tars, ready), "the child finished before it could be killed"
    killed_at = _records(dest)
    assert killed_at == (0 if when == "writing the first tar" else 1)
    assert _snapshot(dest) != reference                        # really interrupted
    r = extract_archives(tars, dest)
    assert r.skipped == tars[:killed_at] and r.extracted == tars[killed_at:]
    assert _snapshot(dest) == reference
    assert sorted(p.name for p in (dest / STATE_DIR).iterdir()) == sorted(
        [os.path.basename(t) + ".done.json" for t in tars] + ["lock"])    # no leftovers


def test_read_only_tar_folder_with_an_output_folder(tars, tmp_path, reference):
    folder = Path(tars[0]).parent
    mode = stat.S_IMODE(folder.stat().st_mode)
    folder.chmod(0o555)
    try:
        r = extract_archives(tars, tmp_path / "elsewhere")
    finally:
        folder.chmod(mode)
    assert r.extracted == tars
    assert _snapshot(tmp_path / "elsewhere") == reference
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(t) for t in tars)


def test_dot_folders_only(tars, tmp_path):
    """Nothing the extraction leaves beside the delivery content is a visible folder."""
    dest = tmp_path / "d"
    _kill_when(dest, tars, lambda d: _tmp_files(d) > 100)
    assert [p.name for p in dest.iterdir() if not p.name.startswith(".")] in ([], [PROJECT])


def test_same_name_twice_refused(tars, tmp_path):
    with pytest.raises(ArchiveError, match="same name given twice"):
        extract_archives([tars[0], tars[0]], tmp_path)
