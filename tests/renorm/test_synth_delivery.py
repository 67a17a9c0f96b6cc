"""qa_renormplots on the shared synthetic pipeline delivery (truth: almaqa_casa.synth).

The delivery injects a ~5 % renormalization scaling spectrum in one spw:
the target's autocorrelations multiplied by it, its cross-correlations
divided by it.  The raw ASDM of one EB is imported (autocorrelations kept)
and analysed; the correction table is applied to check that it restores
the cross-correlations.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa import qa_renormplots

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def delivery(request):
    try:
        return request.getfixturevalue("pipeline_delivery")
    except pytest.FixtureLookupError:
        pytest.skip("shared synthetic delivery fixture 'pipeline_delivery' not available")


@pytest.fixture(scope="module")
def imported(delivery, tmp_path_factory):
    from casatasks import importasdm
    truth = delivery["truth"]
    uid = sorted(truth["eb"])[0]
    d = tmp_path_factory.mktemp("renorm_synth")
    vis = str(d / f"{uid}.ms")
    old = os.getcwd()
    os.chdir(d)
    try:
        importasdm(asdm=truth["eb"][uid]["asdm"], vis=vis, ocorr_mode="ca", lazy=False,
                   process_caldevice=False, with_pointing_correction=False)
    finally:
        os.chdir(old)
    return vis, truth, d


def _spw_by_freq(vis, freqs_hz):
    import casatools
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        for s in range(msmd.nspw()):
            f = msmd.chanfreqs(s)
            if len(f) == len(freqs_hz) and np.allclose(f, freqs_hz, rtol=0, atol=1.0):
                return s
    finally:
        msmd.close()
    raise AssertionError("renorm spw of the truth not found in the MS")


def test_synth_scaling_recovered_and_applied(imported):
    import casatools
    from casatasks import applycal
    vis, truth, d = imported
    rn = truth["renorm"]
    freqs = np.asarray(rn["freqs_hz"])
    scaling = np.asarray(rn["scaling"])
    spw = _spw_by_freq(vis, freqs)
    res = qa_renormplots(vis=vis, outdir=str(d / "out"), apply=True)
    assert res["status"] == "ok", res
    targets = res["ms"][0]["targets"]
    r = targets[rn["field"]][str(spw)]
    inj = float(scaling.max())
    assert abs(r["peak_value"] - inj) / inj < 0.003, (r["peak_value"], inj)
    assert abs(r["max_rn"] - inj) / inj < 0.003
    width = abs(freqs[1] - freqs[0])
    assert abs(r["peak_freq_ghz"] * 1e9 - freqs[int(np.argmax(scaling))]) <= width
    assert r["exceeds"] is bool(rn["exceeds_threshold"])
    for s, other in targets[rn["field"]].items():
        if int(s) != spw:
            assert other["max_rn"] < 1.005 and other["exceeds"] is False
    assert len(res["plots"]) == len(targets[rn["field"]]) + 1
    # applying the table multiplies the target's cross-correlations by S again
    ct = res["ms"][0]["caltable"]
    applycal(vis=vis, field=rn["field"], spw=str(spw), gaintable=[ct],
             interp=["nearest,linear"], calwt=[False], flagbackup=False)
    tb = casatools.table()
    tb.open(vis)
    try:
        fid = [i for i, n in enumerate(casatools_fieldnames(vis)) if n == rn["field"]]
        q = tb.query(f"ANTENNA1!=ANTENNA2 && FIELD_ID IN {fid} && !all(FLAG) && "
                     f"DATA_DESC_ID IN {ddids(vis, spw)}")
        cor = q.getcol("CORRECTED_DATA")
        raw = q.getcol("DATA")
        q.close()
    finally:
        tb.close()
    par = [0, -1] if cor.shape[0] == 4 else list(range(cor.shape[0]))
    gain = np.abs(cor[par]).mean(axis=(0, 2)) / np.abs(raw[par]).mean(axis=(0, 2))
    assert np.abs(gain / scaling - 1).max() < 0.01


def casatools_fieldnames(vis):
    import casatools
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        return list(msmd.fieldnames())
    finally:
        msmd.close()


def ddids(vis, spw):
    import casatools
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        return [int(x) for x in msmd.datadescids(spw=spw)]
    finally:
        msmd.close()


def test_chain_after_qa_restore(delivery, tmp_path):
    """qa_restore's result dict goes straight into qa_renormplots; the restored
    MSs carry the pipeline's flags, so the bad antenna of the last target scan
    is excluded there."""
    from almaqa_casa import qa_restore
    truth = delivery["truth"]
    r = qa_restore(deliverydir=delivery["member_dir"], outdir=str(tmp_path / "restored"))
    assert r["status"] == "ok"
    rn = qa_renormplots(vis=r, outdir=str(tmp_path / "renorm"))
    assert rn["status"] == "ok" and len(rn["ms"]) == len(truth["eb"])
    spw = truth["renorm"]["spw"]
    for ms in rn["ms"]:
        uid = os.path.basename(ms["vis"]).replace(".ms", "")
        bad = truth["eb"][uid]["bad_data"]
        ant = truth["eb"][uid]["antennas"].index(bad["antenna"])
        res = ms["targets"][truth["renorm"]["field"]]
        assert res[str(spw)]["exceeds"] is True
        assert abs(res[str(spw)]["max_rn"] - max(truth["renorm"]["scaling"])) < 0.003
        flagged = {s["scan"]: s["flagged_antennas"] for s in res[str(spw)]["scans"]}
        assert ant in flagged[bad["scan"]]
