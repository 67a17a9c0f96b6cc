"""Options: one EB, self-calibrated products, archive tar files."""
from __future__ import annotations

import os
import tarfile

import pytest

from .helpers import PRODUCT_RE, products


@pytest.mark.slow
def test_selfcal_tars_one_eb(tmp_path):
    from almaqa_casa.synth import generate

    r = generate(str(tmp_path), nebs=1, selfcal=True, tars=True, seed=777)
    t = r["truth"]
    assert len(t["ebs"]) == 1
    names = products(r["member_dir"])
    sc = [n for n in names if ".selfcal." in n]
    m = t["mous"]
    assert f"member.{m}.{t['target']}_sci.spw0_1_2_3.cont.I.selfcal.pbcor.fits" in sc
    assert f"member.{m}.{t['target']}_sci.spw0.cube.I.selfcal.pbcor.fits" in sc
    for n in names:
        assert PRODUCT_RE.match(n), n
    tars = sorted(os.path.basename(p) for p in r["tars"])
    p, eb = t["project"], t["ebs"][0]
    assert tars == sorted([f"{p}_{m}_001_of_001.tar", f"{p}_{m}_auxiliary.tar",
                           f"member_{m}_README.txt.tar", f"{p}_{eb}_asdm.sdm.tar"])
    for path in r["tars"]:
        with tarfile.open(path) as tf:
            for ti in tf.getmembers():
                assert not ti.name.startswith("/") and ".." not in ti.name.split("/")
                assert ti.name.startswith(p + "/")
                assert not (ti.issym() or ti.islnk())
    with tarfile.open(os.path.join(os.path.dirname(r["tars"][0]), f"{p}_{eb}_asdm.sdm.tar")) as tf:
        assert any(n.endswith(f"raw/{eb}.asdm.sdm/ASDM.xml") for n in tf.getnames())
