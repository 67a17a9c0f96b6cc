"""Provenance of restored outputs (almaqa_casa.restore.provenance).

Pure parts (the version warning, the record, the HISTORY lines), then real
outputs: the HISTORY of a small simulated MS (written once, read back by the
renormalization's state reader) and the FITS HISTORY of an image recovered
with impbcor.  End-to-end HISTORY of restored MSs: test_pipeline_restore.py.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from astropy.io import fits

import almaqa_casa  # (also sets CASA up offline, before casatools is used)
from almaqa_casa.restore import provenance as pv

DELIVERED = {"casa": "6.6.6.5", "pipeline": "2025.1.0.40",
             "casa_source": "/d/member.x/script/member.x.hifa_calimage.pipeline_manifest.xml",
             "pipeline_source": ""}
PRESENT = {"almaqa_casa": "0.1.0", "casa": "6.7.6", "casatools": "6.7.6-14",
           "casatasks": "6.7.6.14", "python": "3.13.0"}


def test_major_version_difference_is_warned_with_both_versions():
    (w,) = pv.version_warnings(DELIVERED, PRESENT, "uid___A001_X1_X2: the delivery")
    assert w.startswith("uid___A001_X1_X2: the delivery was calibrated with CASA 6.6.6.5, "
                        "pipeline 2025.1.0.40 (read from member.x.hifa_calimage."
                        "pipeline_manifest.xml) and is restored with CASA 6.7.6")
    assert "different major version" in w
    assert pv.version_warnings(dict(DELIVERED, casa="6.7.1.12"), PRESENT) == []
    assert pv.version_warnings(dict(DELIVERED, casa=None), PRESENT) == []


def test_present_versions_are_the_installed_ones():
    import casatasks
    import casatools
    got = pv.present_versions()
    assert got["casatools"] == casatools.version_string()
    assert got["casatasks"] == casatasks.version_string()
    assert got["casa"] == ".".join(str(int(x)) for x in casatools.version()[:3])
    assert got["almaqa_casa"] == almaqa_casa.__version__


def test_record_and_history_lines():
    prov = pv.record("qa_restore", {"spacesaving": 2, "deliverydir": "/d/member.x"}, DELIVERED,
                     PRESENT, when=0)
    assert prov["major_difference"] is True and prov["time"] == "1970-01-01T00:00:00"
    assert list(prov["parameters"]) == ["deliverydir", "spacesaving"]
    rn = {"applied": True, "caltable": "/c/working/u.ms.renorm.tbl", "spws": [1],
          "max_scaling": {"T": {"1": 1.0499}}, "seconds": 0.6}
    lines = pv.history_lines(prov, "/d/member.x", "u", "calibrated", rn, "passed")
    assert lines[0] == "qa_restore (almaqa_casa 0.1.0) restored u of member.x; DATA holds " \
                       "calibrated data"
    assert "CASA 6.6.6.5, pipeline 2025.1.0.40; restored with CASA 6.7.6" in lines[1]
    assert lines[2] == "qa_restore(deliverydir='/d/member.x', spacesaving=2)"
    assert "u.ms.renorm.tbl" in lines[3] and lines[4] == "verification: passed"
    blob = json.loads(lines[-1][len(pv.PROVENANCE_PREFIX):])
    assert blob["renorm"] == {k: rn[k] for k in ("applied", "caltable", "spws", "max_scaling")}
    assert blob["data"] == "calibrated" and blob["delivery_versions"]["casa"] == "6.6.6.5"
    cards = pv.fits_history("qa_restore", {"pb": "x.pb.fits.gz"}, DELIVERED, PRESENT)
    assert cards == ["qa_restore by almaqa_casa 0.1.0", "CASA 6.7.6 (casatools 6.7.6-14)",
                     "delivery: CASA 6.6.6.5 pipeline 2025.1.0.40", "qa_restore pb='x.pb.fits.gz'"]


def test_ms_history_written_once_and_read_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "renorm"))
    import renorm_simms as sim

    from almaqa_casa.renorm.state import state_for
    vis = str(tmp_path / "u.ms.split.cal")
    sim.make_ms(vis, ntarget_scans=1)
    prov = pv.record("qa_restore", {"spacesaving": 2}, DELIVERED, pv.present_versions())
    rn = {"applied": True, "caltable": str(tmp_path / "gone.renorm.tbl"), "spws": [0],
          "max_scaling": {"TGT": {"0": 1.05}}}
    lines = pv.history_lines(prov, "/d/member.x", "u", "calibrated", rn, "passed")
    assert pv.write_ms_history(vis, lines) is True
    assert pv.write_ms_history(vis, lines) is False          # the same record: not again
    import casatools
    tb = casatools.table()
    tb.open(os.path.join(vis, "HISTORY"))
    try:
        msgs = list(tb.getcol("MESSAGE"))
        origins = set(tb.getcol("ORIGIN"))
        apps = set(tb.getcol("APPLICATION"))
    finally:
        tb.close()
    assert msgs[-len(lines):] == lines and len(msgs) - len(lines) == msgs.index(lines[0])
    assert "qa_restore" in origins and "almaqa_casa" in apps
    (rec,) = pv.read_ms_provenance(vis)
    assert rec["eb"] == "u" and rec["verification"] == "passed"
    # what qa_renormplots makes of this MS: corrected by qa_restore, table not at hand
    st = state_for(vis)
    assert st.corrected_by == "qa_restore" and st.data == "calibrated"
    assert st.analyse == "none" and "square" in st.note


def test_recovered_image_carries_the_provenance(tmp_path):
    from almaqa_casa.images.pbcor import recover_uncorrected
    from almaqa_casa.images.testdata import gaussian_pb, make_image, to_fits
    n = 32
    pb = gaussian_pb(n, n, fwhm_pix=30.0).astype(np.float32)
    cor = make_image(tmp_path / "cor.im", (n, n, 1, 1), stokes="I",
                     plane=lambda c, s: 0.01 / pb, beam=(1.0, 0.7, 20.0))
    pbim = make_image(tmp_path / "pb.im", (n, n, 1, 1), stokes="I", plane=lambda c, s: pb,
                      beam=(1.0, 0.7, 20.0), unit="")
    cards = pv.fits_history("qa_restore", {"pbcor": "x.pbcor.fits"}, DELIVERED)
    out = recover_uncorrected(to_fits(cor, tmp_path / "x.pbcor.fits"),
                              to_fits(pbim, tmp_path / "x.pb.fits"), str(tmp_path / "x.fits"),
                              history=cards)
    hist = [str(h) for h in fits.getheader(out)["HISTORY"]]
    text = "\n".join(hist)
    for c in cards:
        assert c in text, (c, hist)
    np.testing.assert_allclose(fits.getdata(out).squeeze().T, 0.01, rtol=1e-5)
