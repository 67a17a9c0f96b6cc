"""The restore imports without the BDF flags: Pipeline_Final replaces them anyway.

The ms step restores the delivered ``Pipeline_Final`` flag version right
after importasdm (flagmanager ``merge='replace'``), which overwrites FLAG
and FLAG_ROW of every row; reading the BDF flags at import is a pass over
the binary data whose result is thrown away.  These tests import one EB of
the synthetic delivery both ways and compare the flag columns after the
restore, cell by cell, and against the flag version table itself.
"""
from __future__ import annotations

import os
import tarfile

import numpy as np
import pytest

from almaqa_casa.delivery.member import read_member
from almaqa_casa.restore import casasteps as cs


def _flags(vis: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """FLAG and FLAG_ROW per data description (spws differ in channel counts, so
    the FLAG column has no fixed shape over the whole table)."""
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        out = {}
        for dd in sorted(set(int(d) for d in tb.getcol("DATA_DESC_ID"))):
            q = tb.query(f"DATA_DESC_ID=={dd}", columns="FLAG,FLAG_ROW")
            try:
                out[dd] = (q.getcol("FLAG"), q.getcol("FLAG_ROW"))
            finally:
                q.close()
        return out
    finally:
        tb.close()


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]) for k in a)


@pytest.fixture(scope="module")
def imported(restore_delivery, tmp_path_factory):
    """One EB imported lazily with and without BDF flags, flags before/after Pipeline_Final."""
    info = read_member(restore_delivery["member_dir"])
    uid = info.ppr.asdms[0]
    work = tmp_path_factory.mktemp("bdfflags")
    out: dict = {"uid": uid, "work": work, "flagversions": info.flagversions[uid]}
    for bdf in (True, False, "all"):
        vis = str(work / f"bdf{bdf}.ms")
        r = cs.import_asdm(os.path.abspath(info.raw_asdms[uid]), vis, lazy=True,
                           bdfflags=bdf is not False)
        assert r["lazy"], r
        if bdf == "all":   # the worst BDF flags could do: every visibility flagged
            from casatasks import flagdata
            flagdata(vis=vis, mode="manual", flagbackup=False)
        before = _flags(vis)
        cs.restore_flags(vis, info.flagversions[uid], data_bytes=info.raw_sizes.get(uid))
        out[bdf] = {"vis": vis, "before": before, "after": _flags(vis)}
    return out


def test_flags_after_pipeline_final_identical_with_and_without_bdfflags(imported):
    a, b = imported[True]["after"], imported[False]["after"]
    assert a and sum(f.size for f, _ in a.values()) > 0
    assert _equal(a, b), "FLAG/FLAG_ROW differ after restoring Pipeline_Final"


def test_flags_set_before_the_restore_do_not_survive_it(imported):
    """Whatever the import flagged (here: everything, more than any BDF flags can)
    is replaced: the synthetic BDFs carry no flags, so this is the case that can fail."""
    full = imported["all"]
    assert all(f.all() for f, _ in full["before"].values())
    assert _equal(full["after"], imported[False]["after"])


def test_restored_flags_are_the_flag_version(imported, tmp_path):
    """FLAG after the restore is the delivered Pipeline_Final table's, and the
    restore changed the imported flags (so the comparison above can fail)."""
    with tarfile.open(imported["flagversions"]) as tf:
        tf.extractall(tmp_path, filter="data")
    fv = next(p for p in tmp_path.iterdir() if p.name.endswith(".flagversions"))
    version = str(fv / "flags.Pipeline_Final")
    vis = imported[False]["vis"]
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        dd = tb.getcol("DATA_DESC_ID")
    finally:
        tb.close()
    tb.open(version)
    try:
        rows = {d: np.flatnonzero(dd == d) for d in np.unique(dd)}
        want = {}
        for d, r in rows.items():
            want[int(d)] = (np.stack([tb.getcell("FLAG", int(i)) for i in r], axis=-1),
                            tb.getcol("FLAG_ROW")[r])
    finally:
        tb.close()
    after = imported[False]["after"]
    assert _equal(after, want), "the restored flags are not Pipeline_Final's"
    assert any(f.any() for f, _ in want.values()), "Pipeline_Final flags nothing"
    assert not _equal(imported[False]["before"], after), \
        "restoring Pipeline_Final changed nothing: the comparison could not fail"


def test_restore_records_that_bdf_flags_were_not_read(restore_delivery, tmp_path):
    """The ms step says it did not read the BDF flags, and what the delivery asked."""
    from almaqa_casa import qa_restore
    r = qa_restore(deliverydir=restore_delivery["member_dir"], outdir=str(tmp_path / "o"),
                   spacesaving=2, dosplit=True, nprocs=1, dryrun=False)
    import json
    m = r["members"][0]
    recs = [json.loads(p.read_text()) for p in
            (tmp_path / "o").rglob(".qa_restore/*__ms.json")]
    assert len(recs) == len(m["ebs"]) and m["status"] == "ok"
    for rec in recs:
        assert rec["extra"]["bdfflags"] == {"delivery": True, "read": False}
        assert rec["extra"]["profile"]["importasdm"] > 0
