"""One restore per member at a time, and read-only deliveries (skeleton deliveries)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.lock import Busy, FolderLock
from almaqa_casa.restore.engine import NotWritable

from .test_plan_shapes import EBS8, skeleton


def _qa_restore(**kw):
    from almaqa_casa import qa_restore
    return qa_restore(**kw)


def test_a_second_run_names_the_running_one_and_a_dead_ones_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom almaqa_casa.lock import FolderLock\n"
         f"l = FolderLock({str(out)!r}, 'qa_restore'); l.acquire()\n"
         "print('locked', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Busy) as ei:
            FolderLock(out, "qa_restore").acquire()
        msg = str(ei.value)
        assert f"process {holder.pid}" in msg and "qa_restore is already running" in msg
        assert str(out) in msg
    finally:
        holder.kill()
        holder.wait()
    # the holder died (SIGKILL): its lock is free again, the file is taken over
    with FolderLock(out, "qa_restore") as lock:
        assert lock.holder()["pid"] == os.getpid()


def test_restore_refuses_while_another_holds_the_member(tmp_path):
    m = skeleton(tmp_path, EBS8[:2], ["session_1", "session_1"])
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out, "qa_restore"):
        code = ("import almaqa_casa\nfrom almaqa_casa import qa_restore\n"
                f"qa_restore(deliverydir={str(m)!r}, outdir={str(out)!r})\n")
        t0 = time.time()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
        assert r.returncode != 0 and time.time() - t0 < 300
        assert "is already running there" in r.stderr and f"process {os.getpid()}" in r.stderr
    assert not any(p.name.endswith(".ms") for p in out.rglob("*"))   # nothing done


@pytest.fixture
def immutable():
    """``immutable(path)``: make a folder unwritable even for root (chattr +i)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed: cannot make a folder read-only for root")
    made = []

    def make(path):
        r = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"this filesystem does not support immutable folders: {r.stderr.strip()}")
        made.append(path)
    yield make
    for p in made:
        subprocess.run(["chattr", "-i", str(p)])


def test_read_only_delivery(tmp_path, immutable, capsys):
    m = skeleton(tmp_path, EBS8[:2], ["session_1", "session_1"])
    immutable(m)
    res = _qa_restore(deliverydir=str(m), dryrun=True)
    warn = [w for w in res["warnings"] if "not writable" in w]
    assert warn and "outdir=" in warn[0] and str(m / "calibrated") in warn[0]
    assert "not writable" in capsys.readouterr().out
    with pytest.raises(NotWritable, match=r"outdir="):
        _qa_restore(deliverydir=str(m))
    # an output folder elsewhere works (the planning reads the delivery only)
    res = _qa_restore(deliverydir=str(m), outdir=str(tmp_path / "elsewhere"), dryrun=True)
    assert not [w for w in res["warnings"] if "not writable" in w]
