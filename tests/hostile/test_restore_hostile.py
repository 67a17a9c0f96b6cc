"""Hostile deliveries through qa_restore itself (real CASA on the synthetic delivery)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.hostile.tarmakers import pathmax_chain_tar
from tests.restore.conftest import link_all, make_shadow

pytestmark = pytest.mark.slow


@pytest.fixture
def delivery(pipeline_delivery):
    return pipeline_delivery


def _calib_copy(mod):
    def build(src, dst):
        link_all(src, dst, skip=mod(src, dst))
    return build


def _flags(tmp_path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in tmp_path.rglob("flag") if p.is_file()}


def test_pathmax_chain_as_flagversions_tarball(delivery, tmp_path, monkeypatch):
    """The CVE-2025-4517 chain delivered as <ms>.flagversions.tgz: the restore stops
    naming the tarball; no file outside the extraction folder is written or changed."""
    from almaqa_casa import qa_restore
    monkeypatch.chdir(tmp_path)
    u = delivery["truth"]["ebs"][0]
    out = tmp_path / "o"
    (out / "working").mkdir(parents=True)
    for d in (tmp_path, out, out / "working"):
        (d / "flag").write_bytes(b"original")
    name = f"{u}.ms.flagversions.tgz"

    def mod(src, dst):
        root = str(out / "working" / ".fv-xxxxxxxx" / ".extract-xxxxxxxxxxxx.partial")
        pathmax_chain_tar(dst / name, root, up=3)
        return {name}
    shadow = make_shadow(delivery["member_dir"], tmp_path / "in", {"calibration": _calib_copy(mod)})
    before = _flags(tmp_path)
    r = qa_restore(deliverydir=str(shadow), outdir=str(out), dosplit=True, nprocs=1)
    assert r["status"] == "failed"          # that EB fails, naming the tarball and the member
    err = r["members"][0]["eb_results"][u]["error"]
    assert re.search(rf"{name}: member 'escape' is a link .* outside", err), err
    assert _flags(tmp_path) == before
    assert not list(tmp_path.rglob("newfile"))
    assert not list((out / "working").glob(".fv-*"))


def test_garbage_line_in_cont_dat_stops_docontsub(delivery, tmp_path, monkeypatch):
    """One garbage line in cont.dat: DOCONTSUB stops with an error naming cont.dat and
    the line, instead of a _targets_line.ms identical to _targets.ms."""
    from almaqa_casa import qa_restore
    from almaqa_casa.delivery.archive import extract
    monkeypatch.chdir(tmp_path)
    mous = Path(delivery["member_dir"]).name.split(".", 1)[1]
    name = f"{mous}.cont.dat"

    def mod(src, dst):
        aux = next(src.glob("*auxproducts.tgz"))
        got = extract(aux, tmp_path / "aux", select=lambda n: n.endswith("cont.dat"))
        text = next(p for g in got for p in ([g] if g.is_file() else g.rglob("*cont.dat"))
                    ).read_text().splitlines()
        i = next(k for k, ln in enumerate(text) if "~" in ln)
        text.insert(i + 1, "xq7#garbage")
        (dst / name).write_text("\n".join(text) + "\n")
        return {name}
    shadow = make_shadow(delivery["member_dir"], tmp_path / "in", {"calibration": _calib_copy(mod)})
    lines = (shadow / "calibration" / name).read_text().splitlines()
    lineno = lines.index("xq7#garbage") + 1
    out = tmp_path / "o"
    with pytest.raises(Exception, match=rf"{name}, line {lineno}: cannot read 'xq7#garbage'"):
        qa_restore(deliverydir=str(shadow), outdir=str(out), dosplit=True, docontsub=True,
                   spacesaving=1, nprocs=1)
    assert not out.exists()                  # refused when planning, before any work
    assert os.path.isdir(delivery["member_dir"])
