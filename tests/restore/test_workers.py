"""The EB worker processes: separate interpreters, errors carried back, and
unguarded user scripts (as written for ``casa -c``) are never re-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from almaqa_casa.restore.workers import WorkerError, WorkerPool


def _casa_version() -> str:
    import casatools
    return casatools.version_string()


def _fail(msg: str) -> None:
    raise ValueError(msg)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_pool_runs_in_other_processes_with_casa_loaded_and_reports_errors():
    with WorkerPool(2) as pool:
        assert pool.size == 2
        pids = {pool.run(os.getpid) for _ in range(4)}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        import casatools
        assert pool.run(_casa_version) == casatools.version_string()
        with pytest.raises(WorkerError, match="ValueError: caltable x.tbl is missing"):
            pool.run(_fail, "caltable x.tbl is missing")
        assert pool.run(os.getpid) in pids   # the worker survives a failed call


def test_a_dying_worker_is_reported():
    with WorkerPool(1) as pool:
        with pytest.raises(WorkerError, match="died"):
            pool.run(_die)


def test_unguarded_script_is_not_rerun(tmp_path):
    marker = tmp_path / "ran.txt"
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(f"""
        # no `if __name__ == "__main__"` guard, as in scripts run with casa -c
        import os
        from almaqa_casa.restore.workers import WorkerPool
        with open({str(marker)!r}, "a") as fh:
            fh.write("x")
        with WorkerPool(1) as pool:
            assert pool.run(os.getpid) != os.getpid()
        print("done")
        """))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done" in r.stdout
    assert marker.read_text() == "x"


def _post(msg: str) -> str:
    from casatasks import casalog
    casalog.post(msg, "INFO", "qa_restore")
    return casalog.logfile()


def test_workers_log_to_the_callers_casa_log(tmp_path):
    from casatasks import casalog
    before = casalog.logfile()
    log = tmp_path / "mine.log"
    casalog.setlogfile(str(log))
    try:
        with WorkerPool(1) as pool:
            assert pool.run(_post, "hello from a worker") == str(log)
    finally:
        casalog.setlogfile(before)
    assert "hello from a worker" in log.read_text()


def test_workers_die_with_a_killed_caller(tmp_path):
    """A caller killed mid-restore (SIGKILL, no clean-up) leaves no worker behind
    that would go on writing an EB while a re-run restores it."""
    pidfile = tmp_path / "worker.pid"
    script = tmp_path / "caller.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from almaqa_casa.restore.workers import WorkerPool
        with WorkerPool(1) as pool:
            with open({str(pidfile)!r} + ".tmp", "w") as fh:
                fh.write(str(pool.run(os.getpid)))
            os.replace({str(pidfile)!r} + ".tmp", {str(pidfile)!r})
            pool.run(time.sleep, 600)
        """))
    p = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    import time
    t0 = time.time()
    while not pidfile.exists() and time.time() - t0 < 120:
        time.sleep(0.2)
    worker = int(pidfile.read_text())
    time.sleep(0.5)                      # the worker is now sleeping in the long call
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    t0 = time.time()
    while time.time() - t0 < 20:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        try:                             # reap it if it became our zombie
            os.waitpid(worker, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"worker {worker} outlived its killed caller")
