"""qa_renormplots on small simulated MSs with a known injected scaling spectrum."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import almaqa_casa  # noqa: F401  (offline CASA set-up first)
from almaqa_casa import qa_renormplots

sys.path.insert(0, os.path.dirname(__file__))
import renorm_simms as sim


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("renorm_ms")
    old = os.getcwd()
    os.chdir(d)
    yield d
    os.chdir(old)


@pytest.fixture(scope="module")
def line_ms(workdir):
    path = str(workdir / "line.ms")
    truth = sim.make_ms(path, flag_ant_scan=(4, 5))
    return path, truth


@pytest.fixture(scope="module")
def line_run(line_ms, workdir):
    path, truth = line_ms
    res = qa_renormplots(vis=path, outdir=str(workdir / "out_line"))
    return res, truth


@pytest.fixture(scope="module")
def atm_ms(workdir):
    path = str(workdir / "atm.ms")
    truth = sim.make_ms(path, atm=True)
    return path, truth


def _spw(res, spw, target="TGT"):
    return res["ms"][0]["targets"][target][str(spw)]


def _digest(vis, col="DATA"):
    import casatools
    tb = casatools.table()
    tb.open(vis)
    try:
        return hashlib.sha1(tb.getcol(col).tobytes()).hexdigest()
    finally:
        tb.close()


def test_line_recovered_and_threshold(line_run):
    res, truth = line_run
    assert res["status"] == "ok", res
    inj = truth["injected"][0]
    r0 = _spw(res, 0)
    assert r0["exceeds"] is True
    assert abs(r0["max_rn"] - inj.max()) / inj.max() < 0.003
    assert abs(r0["peak_value"] - inj.max()) / inj.max() < 0.003
    assert r0["peak_channel"] == int(np.argmax(inj))
    assert r0["peak_freq_ghz"] == pytest.approx(truth["freqs"][0][np.argmax(inj)] * 1e-9, abs=1e-6)
    r1 = _spw(res, 1)
    assert r1["max_rn"] < 1.005 and r1["exceeds"] is False
    assert res["exceeds"] is True
    # antenna 4 has all its cross-correlations flagged in scan 5: set to 1.0, reported
    flagged = {s["scan"]: s["flagged_antennas"] for s in r0["scans"]}
    assert flagged[5] == [4] and flagged[3] == []
    assert set(r0["fields"]) == {"1"}
    assert r0["max_rn_field_name"] == "TGT"
    # one atmosphere evaluation per spw, not per scan
    assert res["ms"][0]["atm"]["tool_evaluations"] == 2
    with open(res["json"]) as fh:
        assert json.load(fh)["ms"][0]["targets"]["TGT"]["0"]["exceeds"] is True


def test_plots_are_images(line_run):
    import matplotlib.image as mpimg
    res, _ = line_run
    pngs = res["plots"]
    assert len(pngs) == 3                                 # 2 spws + summary
    for p in pngs:
        assert os.path.getsize(p) > 10_000
        im = mpimg.imread(p)
        h, w = im.shape[:2]
        assert w >= 600 and h >= 380
        rgb = im[..., :3]
        assert rgb.std() > 0.05                             # not blank
        assert (rgb.mean(axis=2) < 0.9).mean() > 0.01       # something drawn


def test_html_loads_in_chromium(line_run):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    from tests.browser import check_page
    res, _ = line_run
    page = check_page(res["html"])
    assert page.ok, page.explain()
    assert page.images_total == 3


def test_apply_caltable_restores_line_flux(line_ms, workdir):
    import casatools
    from casatasks import applycal
    src, truth = line_ms
    vis = str(workdir / "apply.ms")
    shutil.copytree(src, vis)
    before = _digest(vis)
    res = qa_renormplots(vis=vis, outdir=str(workdir / "out_apply"), apply=True)
    assert res["status"] == "ok"
    assert _digest(vis) == before                           # no data column touched
    ms = res["ms"][0]
    ct = ms["caltable"]
    assert ct == vis + ".renorm.tbl" and os.path.isdir(ct)
    assert _spw(res, 0)["corrected"] is True and _spw(res, 1)["corrected"] is False
    tb = casatools.table()
    tb.open(ct)
    assert tb.getkeyword("VisCal") == "B TSYS"
    spw_ids = set(tb.getcol("SPECTRAL_WINDOW_ID").tolist())
    tb.close()
    assert spw_ids == {0, 1}
    applycal(vis=vis, field="TGT", gaintable=[ct], interp=["nearest,linear"], calwt=[False],
             flagbackup=False)
    tb.open(vis)
    try:
        for d in (0, 1):
            q = tb.query(f"DATA_DESC_ID=={d} && ANTENNA1!=ANTENNA2 && FIELD_ID==1 && !all(FLAG)")
            cor = q.getcol("CORRECTED_DATA").real
            raw = q.getcol("DATA").real
            q.close()
            t = np.broadcast_to(sim.truth_xc(d), (cor.shape[1],))
            assert np.abs(cor.mean(axis=2) / t[None, :] - 1).max() < 0.01
            if d == 0:
                assert np.abs(raw.mean(axis=2) / t[None, :] - 1).max() > 0.04   # was under-scaled
    finally:
        tb.close()


def test_atmospheric_line_excluded(atm_ms, workdir):
    path, truth = atm_ms
    res = qa_renormplots(vis=path, outdir=str(workdir / "out_atm"))
    r1 = _spw(res, 1)
    f = truth["freqs"][1]
    ozone = int(np.argmin(np.abs(f - sim.ATM_RESIDUAL["center_hz"])))
    assert any(lo <= ozone <= hi for lo, hi in r1["atm_ranges"])
    assert any(lo <= ozone < hi for lo, hi in r1["excluded_ranges"])
    assert r1["exceeds"] is False and r1["max_rn"] < 1.005
    assert r1["atm_warning"] is True                        # the residual was above threshold
    assert _spw(res, 0)["exceeds"] is True
    atm = res["ms"][0]["atm"]
    assert atm["tool_evaluations"] == 2 and atm["elevation_bins"] <= 2 * 3
    # without the automatic exclusion the ATM residual triggers (falsely)
    res2 = qa_renormplots(vis=path, outdir=str(workdir / "out_atm2"), atm_auto_exclude=False)
    r1b = _spw(res2, 1)
    assert r1b["exceeds"] is True and r1b["atm_warning"] is True
    assert r1b["excluded_ranges"] == [] and "excludechan" in r1b["atm_exclude_cmd"]
    # a user exclusion in GHz does the same job
    lo, hi = f[ozone - 15] * 1e-9, f[ozone + 15] * 1e-9
    res3 = qa_renormplots(vis=path, outdir=str(workdir / "out_atm3"), atm_auto_exclude=False,
                          excludechan={"1": f"{lo:.6f}GHz~{hi:.6f}GHz"}, spw="1")
    r1c = _spw(res3, 1)
    assert r1c["exceeds"] is False and list(res3["ms"][0]["targets"]["TGT"]) == ["1"]


def test_restore_dict_cli_and_errors(line_ms, workdir):
    path, _ = line_ms
    fake_restore = {"status": "ok", "produced": {"uid___A002_X1_X2": [os.path.basename(path)]},
                    "members": [{"calibrated": os.path.dirname(path)}]}
    res = qa_renormplots(vis=fake_restore, outdir=str(workdir / "out_dict"), spw="0",
                         bwthreshspw={"0": 240e6})
    assert res["status"] == "ok" and _spw(res, 0)["nseg"] == [1]
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "almaqa"), "qa_renormplots",
                          "--vis", path, "--outdir", str(workdir / "out_cli"), "--spw", "1",
                          "--json"], capture_output=True, text=True, cwd=str(workdir), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    with pytest.raises(Exception, match="FDM"):
        qa_renormplots(vis=path, outdir=str(workdir / "out_bad"), spw="7")
    # an MS without autocorrelations: reported as failed, naming the MS
    from casatasks import split
    noac = str(workdir / "noac.ms")
    split(vis=path, outputvis=noac, datacolumn="data", antenna="*&")
    res = qa_renormplots(vis=noac, outdir=str(workdir / "out_noac"))
    assert res["status"] == "failed"
    assert "noac.ms" in res["ms"][0]["error"] and "autocorrelation" in res["ms"][0]["error"]


def test_mosaic_fields(workdir):
    import casatools
    from casatasks import applycal
    path = str(workdir / "mos.ms")
    sim.make_ms(path, mosaic=True)
    res = qa_renormplots(vis=path, outdir=str(workdir / "out_mos"), apply=True)
    r0 = _spw(res, 0)
    assert set(r0["fields"]) == {"1", "2"}
    assert all(v > 1.04 for v in r0["fields"].values())
    assert r0["max_rn_field"] in (1, 2)
    hint = res["ms"][0]["applycal"]
    applycal(vis=path, field="TGT", gaintable=[hint["gaintable"]], interp=[hint["interp"]],
             gainfield=[hint["gainfield"]], calwt=[False], flagbackup=False)
    tb = casatools.table()
    tb.open(path)
    try:
        for f in (1, 2):
            q = tb.query(f"DATA_DESC_ID==0 && ANTENNA1!=ANTENNA2 && FIELD_ID=={f}")
            cor = q.getcol("CORRECTED_DATA").real.mean(axis=2)
            q.close()
            assert np.abs(cor / sim.truth_xc(0)[None, :] - 1).max() < 0.01
    finally:
        tb.close()


def test_full_polarization(workdir):
    """XX XY YX YY data: parallel hands analysed, the table corrects all four."""
    import casatools
    from casatasks import applycal
    path = str(workdir / "fullpol.ms")
    truth = sim.make_ms(path, full_pol=True, ntarget_scans=2)
    res = qa_renormplots(vis=path, outdir=str(workdir / "out_fullpol"), apply=True, spw="0")
    r0 = _spw(res, 0)
    inj = truth["injected"][0]
    assert r0["exceeds"] and abs(r0["max_rn"] - inj.max()) / inj.max() < 0.003
    assert len(r0["scans"][0]["nmax"]) == 2
    ct = res["ms"][0]["caltable"]
    applycal(vis=path, field="TGT", spw="0", gaintable=[ct], interp=["nearest,linear"],
             gainfield=["nearest"], calwt=[False], flagbackup=False)
    tb = casatools.table()
    tb.open(path)
    try:
        q = tb.query("DATA_DESC_ID==0 && ANTENNA1!=ANTENNA2 && FIELD_ID==1")
        cor = q.getcol("CORRECTED_DATA").real.mean(axis=2)
        q.close()
    finally:
        tb.close()
    for c in (0, 3):
        assert np.abs(cor[c] / sim.truth_xc(0) - 1).max() < 0.01
    _sums_in_casacore_equal_rows_read_here(path)


def _sums_in_casacore_equal_rows_read_here(path):
    """The TaQL GROUPBY sums against the rows read and summed in numpy
    (parallel hands of XX XY YX YY, DATA and the CORRECTED_DATA just written)."""
    from almaqa_casa.renorm import reader
    from almaqa_casa.renorm.msinfo import read_msinfo
    from almaqa_casa.renorm.reader import read_auto_sums
    info = read_msinfo(path)
    si = info.spws[0]
    scans = sorted(set(info.target_scans) | set(info.bandpass_scans))
    assert list(si.corr_index) == [0, 3]
    for col in ("DATA", "CORRECTED_DATA"):
        args = (path, 0, si.ddids, scans, si.corr_index, si.nchan, info.nant, col)
        taql = read_auto_sums(*args)
        here = read_auto_sums(*args, in_casacore=False)
        assert (taql.route, here.route) == ("casacore", "numpy")
        assert taql.groups == here.groups and len(taql.groups) >= 3
        np.testing.assert_array_equal(taql.counts, here.counts)
        np.testing.assert_array_equal(taql.sums, here.sums)        # one chunk: same order
        chunked = read_auto_sums(*args, chunk_bytes=4 * si.nchan * 8 * 7, in_casacore=False)
        np.testing.assert_allclose(taql.sums, chunked.sums, rtol=1e-13, atol=0)
        old = reader.TAQL_BATCH_BYTES
        reader.TAQL_BATCH_BYTES = 1                                  # one scan per TaQL query
        try:
            batched = read_auto_sums(*args)
        finally:
            reader.TAQL_BATCH_BYTES = old
        assert batched.route == "casacore"
        np.testing.assert_array_equal(batched.sums, taql.sums)
        assert taql.sums[..., 0].max() > 0


def _table_rows(ct):
    import casatools
    tb = casatools.table()
    tb.open(ct)
    try:
        keys = list(zip(tb.getcol("SPECTRAL_WINDOW_ID"), tb.getcol("FIELD_ID"),
                        tb.getcol("SCAN_NUMBER"), tb.getcol("ANTENNA1")))
        vals = [tb.getcell("FPARAM", i) for i in range(tb.nrows())]
        return dict(zip(keys, vals)), tb.getkeyword("VisCal")
    finally:
        tb.close()


def test_one_table_writer_for_both_tasks(line_ms, workdir):
    """qa_renormplots(apply=True) and the restore's hifa_renorm write the same table."""
    from almaqa_casa.restore import renormstep as rs
    path, truth = line_ms
    a = str(workdir / "by_restore.tbl")
    rec = rs.compute(path, rs.RenormRequest(apply=True), a, lambda m, p: None)
    assert rec["applied"] and rec["spws"] == [0]
    assert rec["qa"]["spw"]["TGT"]["0"][0]["shortmsg"] == "Renormalization computed"
    res = qa_renormplots(vis=path, outdir=str(workdir / "out_writer"), apply=True,
                         caltable=str(workdir / "by_task.tbl"), atm_auto_exclude=False)
    ta, ka = _table_rows(a)
    tb_, kb = _table_rows(res["ms"][0]["caltable"])
    assert ka == kb == "B TSYS" and set(ta) == set(tb_)
    for k in ta:
        np.testing.assert_array_equal(ta[k], tb_[k])
    assert {k[0] for k in ta} == {0, 1}            # every spw of the MS has rows
    assert all(v.shape[0] == 2 for v in ta.values())


def test_corrected_data_never_give_a_squared_factor(line_ms, workdir):
    """applycal with the correction, then a split of CORRECTED (as a split.cal): the split
    is said to be corrected and no factor is reported; the MS itself (DATA uncorrected) is
    analysed as before, marked corrected; apply=True is refused on both."""
    from casatasks import applycal, mstransform

    from almaqa_casa.renorm.run import AlreadyCorrected
    src, truth = line_ms
    vis = str(workdir / "corr.ms")
    shutil.copytree(src, vis)
    res = qa_renormplots(vis=vis, outdir=str(workdir / "out_corr0"), apply=True)
    inj = truth["injected"][0].max()
    ct = res["ms"][0]["caltable"]
    applycal(vis=vis, field="TGT", gaintable=[ct], interp=["nearest,linear"],
             gainfield=["nearest"], calwt=[False], flagbackup=False)
    split = str(workdir / "corr.ms.split.cal")
    mstransform(vis=vis, outputvis=split, datacolumn="corrected")
    r = qa_renormplots(vis=split, outdir=str(workdir / "out_corr1"))
    ms = r["ms"][0]
    assert r["status"] == "ok" and ms["already_corrected"] and ms["targets"] == {}
    assert ms["correction"]["corrected_by"] == "applycal" and ms["correction"]["data"] == \
        "calibrated"
    assert "square" in ms["note"] and any("square" in w for w in r["warnings"])
    assert "already corrected" in open(r["html"]).read()
    r = qa_renormplots(vis=vis, outdir=str(workdir / "out_corr2"))
    d = _spw(r, 0)
    assert abs(d["max_rn"] - inj) / inj < 0.003            # DATA: the factor, not its square
    assert d["corrected"] is True and d["corrected_how"] == "by applycal"
    for v in (vis, split):
        with pytest.raises(AlreadyCorrected, match=r"apply=True refused: its data were already "
                                                   r"renormalized by applycal"):
            qa_renormplots(vis=v, outdir=str(workdir / "out_corr3"), apply=True)


def test_qa_scores_in_result_and_page(line_run):
    res, truth = line_run
    d0, d1 = _spw(res, 0), _spw(res, 1)
    assert d0["exceeds"] and not d0["corrected"]
    assert d0["qa"][0]["shortmsg"] == "Renormalization factor outside threshold"
    assert 0.34 <= d0["qa_score"] <= 0.66 and d0["unrealistic"] is False
    assert d1["qa_score"] >= 0.91
    html = open(res["html"]).read()
    assert "QA (pipeline score)" in html and "but no corrections were applied" in html


def _numbers(rr):
    return ([(r.target, r.spw, r.max_rn, r.max_rn_field, r.exceeds, r.exclusions, r.atm_ranges,
              r.atm_warning, [(e.scan, e.field, e.value, e.nmax, e.nseg) for e in r.entries])
             for r in rr.results], rr.excludechan_final)


def test_atmosphere_cache_gives_the_same_numbers_in_one_thread(atm_ms, monkeypatch):
    """A cold run against a warm cache; the tool runs in the calling thread only
    (CASA's atmosphere tool is not thread-safe: benchmarks/atm_threads.py)."""
    import threading

    from almaqa_casa.renorm import atm as atmmod
    from almaqa_casa.renorm import engine
    path, truth = atm_ms
    threads = []
    real = atmmod.opacity_spectrum

    def recorded(*args, **kw):
        threads.append(threading.get_ident())
        return real(*args, **kw)

    monkeypatch.setattr(atmmod, "opacity_spectrum", recorded)
    atmmod.clear_opacity_cache()
    cold = engine.run(path, engine.Options())
    assert (cold.atm.n_tool_calls, cold.atm.n_cache_hits) == (2, 0)
    assert threads == [threading.get_ident()] * 2
    ozone = int(np.argmin(np.abs(truth["freqs"][1] - sim.ATM_RESIDUAL["center_hz"])))
    assert any(lo <= ozone <= hi for r in cold.results if r.spw == 1 for lo, hi in r.atm_ranges)
    warm = engine.run(path, engine.Options())
    assert (warm.atm.n_tool_calls, warm.atm.n_cache_hits) == (2, 2)
    assert len(threads) == 2
    assert _numbers(warm) == _numbers(cold)
    for a, b in zip(cold.results, warm.results):
        np.testing.assert_array_equal(a.atm_transmission, b.atm_transmission)
        np.testing.assert_array_equal(a.summary, b.summary)
    for spw, (tau, tau_sb, freqs, _) in cold.atm.opacity.items():
        np.testing.assert_array_equal(warm.atm.opacity[spw][0], tau)


def test_opacity_cache_is_keyed_by_the_exact_inputs():
    from almaqa_casa.renorm import atm as atmmod
    f = 345.8e9 + np.arange(64) * 1.0e6
    atmmod.clear_opacity_cache()
    tau, _ = atmmod.opacity_spectrum(f, 560.0, 20.0, 270.0, 1.2)
    t1, _, hit1 = atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.2)
    t1[:] = -1.0                                   # the caller's copy, not the cache's
    t2, _, hit2 = atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.2)
    t3, _, hit3 = atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.3)
    assert (hit1, hit2, hit3) == (False, True, False)
    np.testing.assert_array_equal(t2, tau)
    assert t3.max() > tau.max()                    # more water, more opacity
    atmmod.clear_opacity_cache()
    assert atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.2)[2] is False


def test_opacity_cache_off_and_its_size_from_the_environment(monkeypatch):
    """ALMAQA_ATM_CACHE_SIZE=0 (benchmarks/restore.py --no-atm-cache): every call runs
    the tool, with the same numbers; a bad value keeps the default (it is a speed
    setting: a typo must not stop the renormalization)."""
    from almaqa_casa.renorm import atm as atmmod
    f = 345.8e9 + np.arange(64) * 1.0e6
    atmmod.clear_opacity_cache()
    tau, _, hit = atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.2)
    monkeypatch.setenv("ALMAQA_ATM_CACHE_SIZE", "0")
    t1, _, hit1 = atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.2)
    t2, _, hit2 = atmmod.cached_opacity(f, 560.0, 20.0, 270.0, 1.2)
    assert (hit, hit1, hit2) == (False, False, False)
    np.testing.assert_array_equal(t1, tau)
    np.testing.assert_array_equal(t2, tau)
    assert atmmod.opacity_cache_size() == 0
    assert atmmod.opacity_cache_size({}) == atmmod.OPACITY_CACHE_SIZE
    assert atmmod.opacity_cache_size({"ALMAQA_ATM_CACHE_SIZE": " 3 "}) == 3
    for bad in ("-1", "many"):
        assert atmmod.opacity_cache_size({"ALMAQA_ATM_CACHE_SIZE": bad}) == \
            atmmod.OPACITY_CACHE_SIZE
    atmmod.clear_opacity_cache()


def test_atmosphere_only_where_the_scaling_exceeds(line_ms, atm_ms):
    """The restore's check (atm_only_if_exceeding) against hifa_renorm's (every spw):
    same maxima, spectra and warnings; the tool runs only for exceeding spws."""
    from almaqa_casa.renorm import atm as atmmod
    from almaqa_casa.renorm import engine

    def numbers(rr, assessed):
        return [(r.target, r.spw, r.max_rn, r.exceeds, r.atm_warning,
                 r.atm_ranges if r.spw in assessed else None,
                 r.atm_exclude_cmd if r.spw in assessed else None,
                 [(e.scan, e.field, e.value, e.nmax) for e in r.entries])
                for r in rr.results]

    for (path, _), exceeding in ((line_ms, {0}), (atm_ms, {0, 1})):
        opt = dict(atm_auto_exclude=False, keep_spectra=True)
        atmmod.clear_opacity_cache()
        every = engine.run(path, engine.Options(**opt))
        atmmod.clear_opacity_cache()
        lazy = engine.run(path, engine.Options(atm_only_if_exceeding=True, **opt))
        assert {r.spw for r in every.results if r.exceeds} == exceeding
        assert every.atm.n_tool_calls == 2
        assert lazy.atm.n_tool_calls == len(exceeding)
        assert numbers(lazy, exceeding) == numbers(every, exceeding)
        for a, b in zip(every.results, lazy.results):
            assert a.spectra.keys() == b.spectra.keys()
            for kf in a.spectra:
                np.testing.assert_array_equal(a.spectra[kf], b.spectra[kf])
            if a.spw in exceeding:
                np.testing.assert_array_equal(a.atm_transmission, b.atm_transmission)
            else:
                assert a.atm_warning is False and b.atm_transmission is None
    # the ozone residual of atm.ms warns either way (a false positive)
    assert [r.atm_warning for r in lazy.results if r.spw == 1] == [True]
