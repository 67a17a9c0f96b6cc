"""Antenna selections that cover every antenna keep the cal-library route (real CASA).

Real calapply.txt files select ``antenna='0~41'`` on MSs of 40 or 42 antennas;
the cal library (SPACESAVING >= 2) has no antenna selection, so such a
selection must be read as "no selection" rather than forcing the applycal
fallback, and partial ones must still fall back (tested in
test_pipeline_restore.py).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from almaqa_casa.delivery.calapply import selects_every_antenna

from .conftest import link_all, make_shadow

pytestmark = pytest.mark.slow


def _ms(delivery) -> str:
    truth = delivery["truth"]
    return truth["eb"][truth["ebs"][0]]["reference_ms"]


def _names(vis) -> list[str]:
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "ANTENNA"))
    try:
        return [str(n) for n in tb.getcol("NAME")]
    finally:
        tb.close()


def test_pure_decision_agrees_with_casa_msselection(restore_delivery):
    """Wherever selects_every_antenna decides, CASA's own selection agrees."""
    from casatools import ms
    vis = _ms(restore_delivery)
    names = _names(vis)
    n = len(names)
    cases = [f"0~{n - 1}", "0~41", f"0~{n - 2}", ",".join(names), ",".join(names[1:]),
             f"0~2,{','.join(names[3:])}", "*", f"{n - 1},0~{n - 2}", names[0], "DA*", "!DA41"]
    tool = ms()
    decided = 0
    for sel in cases:
        got = selects_every_antenna(sel, names)
        sel_ids = set(int(i) for i in tool.msseltoindex(vis=vis, baseline=sel)["antenna1"])
        if got is not None:
            decided += 1
            assert got == (sel_ids == set(range(n))), sel
    assert decided == 9


def _cols(vis, taql):
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        q = tb.query(taql)
        try:
            return {c: q.getcol(c) for c in ("DATA", "FLAG")}
        finally:
            q.close()
    finally:
        tb.close()


def test_every_antenna_selections_keep_the_callib_route(restore_delivery, tmp_path):
    """TARGET lines select '0~41' (more ids than the MS has), calibrator lines list
    every antenna by name: SPACESAVING=2 uses the cal library with no fallback, and
    the split equals the applycal route's (SPACESAVING=0) bit for bit."""
    from almaqa_casa import qa_restore
    delivery = restore_delivery
    names = _names(_ms(delivery))
    nant = len(names)
    full = f"antenna='0~{nant - 1}'"

    def edit(text):
        assert text.count(full) >= 3
        out = []
        for ln in text.splitlines(keepends=True):
            if "TARGET" in ln:
                ln = ln.replace(full, "antenna='0~41'")
            else:
                ln = ln.replace(full, f"antenna={','.join(names)!r}")
            out.append(ln)
        return "".join(out)

    def calib(src, dst):
        done = set()
        for f in src.glob("*.calapply.txt"):
            (dst / f.name).write_text(edit(f.read_text()))
            done.add(f.name)
        link_all(src, dst, skip=done)
    shadow = make_shadow(delivery["member_dir"], tmp_path / "in", {"calibration": calib})
    a = qa_restore(deliverydir=str(shadow), outdir=str(tmp_path / "a"), spacesaving=0,
                   dosplit=True, nprocs=1)
    b = qa_restore(deliverydir=str(shadow), outdir=str(tmp_path / "b"), spacesaving=2,
                   dosplit=True, nprocs=1)
    assert a["status"] == b["status"] == "ok"
    assert b["members"][0]["route"] == "callib"
    assert not [w for w in b["warnings"] if "cal library not possible" in w], b["warnings"]
    for u in delivery["truth"]["ebs"]:
        callib = (tmp_path / "b" / "working" / f"{u}.ms.callib.txt").read_text()
        assert " antenna=" not in callib
        assert callib.count("caltable=") >= 3
        va, vb = tmp_path / "a" / f"{u}.ms.split.cal", tmp_path / "b" / f"{u}.ms.split.cal"
        from casatools import table
        tb = table()
        tb.open(str(va / "DATA_DESCRIPTION"))
        ndd = tb.nrows()
        tb.close()
        assert ndd >= 1
        for dd in range(ndd):
            ca, cb = _cols(str(va), f"DATA_DESC_ID=={dd}"), _cols(str(vb), f"DATA_DESC_ID=={dd}")
            assert np.array_equal(ca["FLAG"], cb["FLAG"])
            ok = ~ca["FLAG"]
            assert ok.any() and np.array_equal(ca["DATA"][ok], cb["DATA"][ok])
    shutil.rmtree(tmp_path / "a", ignore_errors=True)
    assert Path(delivery["member_dir"]).is_dir()
