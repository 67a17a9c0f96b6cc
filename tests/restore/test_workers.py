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
