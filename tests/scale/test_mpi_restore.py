"""qa_restore inside an MPI job: every EB on a casampi server, outputs equal to the local route's.

A synthetic pipeline delivery of 3 EBs (5 antennas, to stay small) is
restored three ways: here without MPI (the local route, unchanged), under
``mpirun -n 3`` (one client, two servers), and under ``mpirun -n 3`` with a
server killed in the middle of an EB, then re-run.  The calibrated data of
every route must be the same: same rows, same per-spw statistics.
"""
from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import build_delivery
from tests.scale import mpihelp

pytestmark = [pytest.mark.slow, mpihelp.requires_mpi]


@pytest.fixture(scope="module")
def eb3(tmp_path_factory):
    return build_delivery("pipeline", tmp_path_factory, nebs=3, nant=5)


@pytest.fixture(scope="module")
def local_run(eb3, tmp_path_factory):
    """The local route, in this process (no MPI launcher): one EB after the other."""
    from almaqa_casa import qa_restore
    out = tmp_path_factory.mktemp("local") / "calibrated"
    r = qa_restore(deliverydir=eb3["member_dir"], outdir=str(out), dosplit=True, nprocs=1)
    return out, r


@pytest.fixture(scope="module")
def mpi_run(eb3, tmp_path_factory):
    work = tmp_path_factory.mktemp("mpi")
    out = work / "calibrated"
    r = mpihelp.run("restore.py", {"member": eb3["member_dir"], "outdir": str(out),
                                   "result": str(work / "result.json")}, work)
    return out, r, work / "casa.log"


def _spw_stats(vis: Path) -> dict:
    """Per data description: rows, flagged values, and mean/std of the unflagged data."""
    from casatools import table
    tb = table()
    tb.open(str(vis / "DATA_DESCRIPTION"))
    ndd = tb.nrows()
    tb.close()
    tb.open(str(vis))
    out = {}
    try:
        for dd in range(ndd):
            q = tb.query(f"DATA_DESC_ID=={dd}")
            try:
                d, f = q.getcol("DATA"), q.getcol("FLAG")
                good = d[~f]
                out[dd] = (q.nrows(), int(f.sum()), complex(good.mean()), float(good.std()))
            finally:
                q.close()
    finally:
        tb.close()
    return out


def _same_outputs(a_dir: Path, b_dir: Path, ebs: list[str]) -> None:
    for u in ebs:
        a, b = _spw_stats(a_dir / f"{u}.ms.split.cal"), _spw_stats(b_dir / f"{u}.ms.split.cal")
        assert a.keys() == b.keys() and len(a) >= 2, (u, a, b)
        for dd in a:
            assert a[dd][:2] == b[dd][:2], (u, dd, a[dd], b[dd])      # rows, flags
            np.testing.assert_allclose(a[dd][2:], b[dd][2:], rtol=1e-6, err_msg=f"{u} dd {dd}")


def test_without_mpi_the_local_route_is_unchanged(local_run, eb3):
    _, r = local_run
    assert r["status"] == "ok" and r["engine"] == "local", r.get("error")
    m = r["members"][0]
    assert m["engine"] == "local"
    assert {u: (e["status"], e["server"]) for u, e in m["eb_results"].items()} == {
        u: ("ok", 0) for u in eb3["truth"]["ebs"]}


def test_every_eb_is_restored_on_the_servers(mpi_run, eb3):
    out, r, log = mpi_run
    assert r["status"] == "ok" and r["engine"] == "casampi", r.get("error")
    m = r["members"][0]
    assert m["engine"] == "casampi"
    servers = {u: e["server"] for u, e in m["eb_results"].items()}
    assert set(servers) == set(eb3["truth"]["ebs"]) and len(servers) == 3
    assert all(e["status"] == "ok" for e in m["eb_results"].values())
    assert set(servers.values()) == {1, 2}, servers      # 3 EBs shared by both servers
    for u in servers:
        assert (out / f"{u}.ms.split.cal" / "table.dat").is_file()
    # the client's CASA log carries the servers' messages, with their rank
    text = log.read_text(errors="replace")
    for u, rank in servers.items():
        assert re.search(rf"qa_restore::::casa::MPIServer-{rank}\t.*{u}:ms: done", text), u
        assert f"{u}: sent to casampi server {rank} " in text


def test_outputs_equal_the_local_routes(mpi_run, local_run, eb3):
    mpi_out, r, _ = mpi_run
    local_out, rl = local_run
    ebs = eb3["truth"]["ebs"]

    def rel(res, root):
        return {u: sorted(str(Path(p).relative_to(root)) for p in ps)
                for u, ps in res["produced"].items()}
    assert rel(r, mpi_out) == rel(rl, local_out)
    _same_outputs(mpi_out, local_out, ebs)


def _wait_for(pattern: str, path: Path, p: subprocess.Popen, timeout: float = 600):
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = re.search(pattern, path.read_text(errors="replace")) if path.is_file() else None
        if m:
            return m
        assert p.poll() is None, f"the MPI job ended before {pattern!r}"
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout} s")


def test_a_server_killed_mid_eb_fails_that_eb_only_and_a_rerun_completes(eb3, local_run,
                                                                         tmp_path):
    out = tmp_path / "calibrated"
    cfg = {"member": eb3["member_dir"], "outdir": str(out), "result": str(tmp_path / "r1.json")}
    # --enable-recovery: Open MPI keeps the job alive when one process dies, so the client
    # learns it from casampi's heartbeat and goes on with the other server
    p, mpiout, log = mpihelp.start("restore.py", cfg, tmp_path / "run1",
                                   extra=("--enable-recovery",))
    try:
        pid = int(_wait_for(r"rank 2 on \S+ \(pid (\d+)\)", log, p).group(1))
        uid = _wait_for(r"(uid___\w+): sent to casampi server 2 ", log, p).group(1)
        rec = out / ".qa_restore"
        while not (rec / f"{uid}__caltables.json").is_file():   # its chain has started
            assert p.poll() is None, mpihelp.tail(mpiout)
            time.sleep(0.05)
        assert not (rec / f"{uid}__ms.json").is_file()           # ... and is not done
        import os
        os.kill(pid, signal.SIGKILL)
        p.wait(timeout=900)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = mpihelp.finished(p, mpiout, cfg)
    m = r["members"][0]
    er = m["eb_results"]
    assert r["status"] == "failed" and er[uid]["status"] == "failed" and er[uid]["server"] == 2
    assert "casampi server 2" in er[uid]["error"] and "stopped answering" in er[uid]["error"]
    assert f"step {uid}:ms failed" in er[uid]["error"]
    others = [u for u in er if u != uid]
    assert all(er[u]["status"] == "ok" and er[u]["server"] == 1 for u in others), er
    # a re-run completes what is left (on the servers), and gives the local route's data
    cfg2 = {**cfg, "result": str(tmp_path / "r2.json")}
    r2 = mpihelp.run("restore.py", cfg2, tmp_path / "run2")
    er2 = r2["members"][0]["eb_results"]
    assert r2["status"] == "ok", r2.get("error")
    assert er2[uid]["status"] == "ok" and er2[uid]["server"] >= 1
    assert all(er2[u]["status"] == "skipped" for u in others)
    _same_outputs(out, local_run[0], eb3["truth"]["ebs"])
