"""End-to-end restores of the synthetic pipeline delivery (real CASA, real data).

The expensive restores run once per module (fixtures below) and several
tests read their outputs.  Every restore writes to a temporary folder; the
delivery's input tree checksum is compared before and after.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from almaqa_casa.synth.spec import CHECK

from .conftest import kill_once_recorded, link_all, make_shadow, rerun_json

pytestmark = pytest.mark.slow

CHECK_NAME = CHECK.name   # the synthetic deliveries' check source


def _restore(**kw):
    from almaqa_casa import qa_restore
    return qa_restore(**kw)


def _tree(root: Path) -> set[str]:
    """Relative names of the top two levels below ``root`` (hidden records excluded)."""
    out = set()
    for p in root.iterdir():
        if p.name.startswith("."):
            continue
        out.add(p.name)
        if p.name == "working" and p.is_dir():
            out |= {f"working/{q.name}" for q in p.iterdir() if not q.name.startswith(".")}
    return out


def _cols(vis, cols, taql):
    """Columns of the rows selected by ``taql`` (one shape: select one DATA_DESC_ID)."""
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        q = tb.query(taql)
        try:
            return {c: q.getcol(c) for c in cols}
        finally:
            q.close()
    finally:
        tb.close()


def _ndd(vis):
    from casatools import table
    tb = table()
    tb.open(vis + "/DATA_DESCRIPTION")
    try:
        return tb.nrows()
    finally:
        tb.close()


def _same_calibrated(a_vis, b_vis, weights=True):
    """DATA and FLAG identical per data description; WEIGHT equal where data are unflagged."""
    assert _ndd(a_vis) == _ndd(b_vis)
    for dd in range(_ndd(a_vis)):
        a = _cols(a_vis, ["DATA", "FLAG", "WEIGHT"], f"DATA_DESC_ID=={dd}")
        b = _cols(b_vis, ["DATA", "FLAG", "WEIGHT"], f"DATA_DESC_ID=={dd}")
        assert np.array_equal(a["FLAG"], b["FLAG"]), (a_vis, dd)
        ok = ~a["FLAG"]
        assert np.array_equal(a["DATA"][ok], b["DATA"][ok]), (a_vis, dd)
        if weights:
            rows = ok.any(axis=(0, 1))
            np.testing.assert_allclose(a["WEIGHT"][:, rows], b["WEIGHT"][:, rows], rtol=1e-6)


def _renorm_tables(delivery, uid) -> set[str]:
    """The renormalization table the restore leaves in working/ (manifest hifa_renorm)."""
    applied = uid in (delivery["truth"]["renorm"].get("manifest_hifa_renorm") or {})
    return {f"working/{uid}.ms.renorm.tbl"} if applied else set()


def _line_over_continuum(delivery, vis_of):
    """Per EB: restored/true target spectrum of the renormalization spw, mean over
    the channels where the injected scaling is > 1 + 0.8 (max - 1), divided by
    its mean where the scaling is < 1.001 (1 when the renormalization is undone)."""
    truth = delivery["truth"]
    rn = truth["renorm"]
    spw = rn["spw"]
    sc = np.asarray(rn["scaling"])
    hi = sc > 1 + 0.8 * (sc.max() - 1)
    lo = sc < 1.001
    assert hi.sum() >= 1 and lo.sum() > 20
    out = {}
    for u in truth["ebs"]:
        fid = truth["eb"][u]["field_ids"][truth["target"]]
        sel = f"DATA_DESC_ID=={spw} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}"
        d = _cols(vis_of(u), ["DATA", "FLAG"], sel)
        t = _cols(truth["eb"][u]["reference_ms"], ["DATA"], sel)
        got = np.ma.array(np.real(d["DATA"]), mask=d["FLAG"]).mean(axis=(0, 2))
        ratio = np.asarray(got / np.real(t["DATA"]).mean(axis=(0, 2)))
        out[u] = float(ratio[hi].mean() / ratio[lo].mean())
    return out, float((1.0 / sc[hi]).mean())


@pytest.fixture(scope="module")
def delivery(restore_delivery, restore_checksum):
    d = restore_delivery
    before = restore_checksum(d["member_dir"])
    yield d
    assert restore_checksum(d["member_dir"]) == before, "the delivery's input tree changed"


@pytest.fixture(scope="module")
def full_run(delivery, tmp_path_factory):
    """SPACESAVING=0, DOSPLIT, DOCONTSUB, images: the applycal route, everything kept."""
    out = tmp_path_factory.mktemp("full") / "calibrated"
    r = _restore(deliverydir=delivery["member_dir"], outdir=str(out), spacesaving=0,
                 dosplit=True, docontsub=True, images=True)
    return out, r


@pytest.fixture(scope="module")
def lean_run(delivery, tmp_path_factory):
    """SPACESAVING=2 + DOSPLIT: on-the-fly calibration, the full MS deleted."""
    out = tmp_path_factory.mktemp("lean") / "calibrated"
    r = _restore(deliverydir=delivery["member_dir"], outdir=str(out), spacesaving=2,
                 dosplit=True, nprocs=2)
    return out, r


def test_full_run_layout(delivery, full_run):
    out, r = full_run
    ebs = delivery["truth"]["ebs"]
    assert r["status"] == "ok" and r["mode"] == "pipeline" and r["ebs"] == ebs
    expected = {"working", "rawdata", "products", "images", "restore.json", "restore.html"}
    for u in ebs:
        expected |= {f"{u}.ms.split.cal", f"{u}_targets.ms", f"{u}_targets_line.ms",
                     f"working/{u}.ms", f"working/{u}.ms.flagversions",
                     f"working/{u}_targets.ms", f"working/{u}_targets_line.ms"}
        expected |= {f"working/{t}" for t in delivery["truth"]["eb"][u]["caltables"]}
        expected |= _renorm_tables(delivery, u)
    assert _tree(out) == expected
    for u in ebs:
        assert os.path.islink(out / f"{u}_targets.ms") and os.path.islink(out / "rawdata" / u)
        assert set(r["produced"][u]) >= {str(out / f"{u}.ms.split.cal"),
                                          str(out / "working" / f"{u}.ms")}
    # the renormalization the manifest records is applied (and recorded), not warned about
    assert not any("renormalization" in w for w in r["warnings"])
    for u in ebs:
        rec = json.loads((out / ".qa_restore" / f"{u}__ms.json").read_text())["extra"]["renorm"]
        assert rec["applied"] is True and rec["warning"] is None
        assert rec["spws"] == [delivery["truth"]["renorm"]["spw"]]
        assert rec["caltable"] == str(out / "working" / f"{u}.ms.renorm.tbl")
    assert r["peak_disk_bytes"] > 0 and all("seconds" in s for s in r["steps"])
    # the disk estimate is an upper bound of what the run used
    assert r["peak_disk_bytes"] <= r["members"][0]["predicted_peak_bytes"]
    # each MS once, as the user sees it: the calibrated/ link, not also its working/ target
    for u in ebs:
        assert str(out / f"{u}_targets.ms") in r["produced"][u]
        assert str(out / "working" / f"{u}_targets.ms") not in r["produced"][u]
        assert len(r["produced"][u]) == len(set(map(os.path.realpath, r["produced"][u])))


def test_calibrated_visibilities_match_truth(delivery, full_run):
    """Mean ratio (restored / true) per spw on unflagged target data: within 1 %."""
    out, _ = full_run
    truth = delivery["truth"]
    tgt = truth["target"]
    for u in truth["ebs"]:
        ref = truth["eb"][u]["reference_ms"]
        fid = truth["eb"][u]["field_ids"][tgt]
        expect = truth["eb"][u]["calibrated_target_ratio_per_spw"]
        for spw in range(len(truth["spws"])):
            sel = f"DATA_DESC_ID=={spw} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}"
            a = _cols(str(out / "working" / f"{u}.ms"), ["CORRECTED_DATA", "FLAG"], sel)
            t = _cols(ref, ["DATA"], sel)
            ok = ~a["FLAG"]
            assert ok.mean() > 0.5
            ratio = np.real(a["CORRECTED_DATA"][ok]).mean() / np.real(t["DATA"][ok]).mean()
            assert ratio == pytest.approx(expect[str(spw)] if str(spw) in expect else expect[spw],
                                          rel=0.01), (u, spw)


def test_flags_match_pipeline_final(delivery, full_run):
    """Restored flags contain every Pipeline_Final flag; calflagstrict adds few."""
    out, _ = full_run
    from casatools import table
    ms_tb, fv_tb = table(), table()
    for u in delivery["truth"]["ebs"]:
        vis = str(out / "working" / f"{u}.ms")
        ms_tb.open(vis)
        fv_tb.open(str(out / "working" / f"{u}.ms.flagversions" / "flags.Pipeline_Final"))
        try:
            assert ms_tb.nrows() == fv_tb.nrows()
            dds = np.unique(ms_tb.getcol("DATA_DESC_ID"))
            for dd in dds:
                q = ms_tb.query(f"DATA_DESC_ID=={dd}")
                rows = q.rownumbers()
                ms = q.getcol("FLAG")
                q.close()
                sub = fv_tb.selectrows(rows)
                pf = sub.getcol("FLAG")
                sub.close()
                assert pf.shape == ms.shape
                # every Pipeline_Final flag is restored; calflagstrict may add flags
                # only where a calibration solution is flagged or missing
                assert not (pf & ~ms).any(), (u, dd)
                assert (ms & ~pf).mean() < 0.05, (u, dd)
                assert pf.any()
        finally:
            ms_tb.close()
            fv_tb.close()


def test_target_flux_in_split(delivery, full_run):
    """Restored target flux (split.cal DATA, unflagged) within 2 % of the true visibilities."""
    out, _ = full_run
    truth = delivery["truth"]
    tgt = truth["target"]
    for u in truth["ebs"]:
        fid = truth["eb"][u]["field_ids"][tgt]
        ref = truth["eb"][u]["reference_ms"]
        for spw in range(len(truth["spws"])):
            sel = f"DATA_DESC_ID=={spw} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}"
            d = _cols(str(out / f"{u}.ms.split.cal"), ["DATA", "FLAG"], sel)
            t = _cols(ref, ["DATA"], sel)
            ok = ~d["FLAG"]
            flux = np.real(d["DATA"][ok]).mean()
            true = np.real(t["DATA"][ok]).mean()
            assert flux == pytest.approx(true, rel=0.02), (u, spw)


def test_callib_route_identical_to_applycal(delivery, full_run, lean_run):
    """On-the-fly calibration (mstransform docallib) == applycal + split, bit for bit."""
    full, _ = full_run
    lean, r = lean_run
    assert r["members"][0]["route"] == "callib"
    for u in delivery["truth"]["ebs"]:
        _same_calibrated(str(full / f"{u}.ms.split.cal"), str(lean / f"{u}.ms.split.cal"))


def test_renormalization_against_truth(delivery, full_run, lean_run):
    """The manifest's hifa_renorm is applied: the target's spectrum in the
    renormalization spw is flat against the truth within 1 % (both routes)."""
    assert delivery["truth"]["renorm"]["exceeds_threshold"]
    for out in (full_run[0], lean_run[0]):
        stat, injected = _line_over_continuum(delivery, lambda u: str(out / f"{u}.ms.split.cal"))
        assert injected < 0.96
        for u, v in stat.items():
            assert v == pytest.approx(1.0, abs=0.01), (str(out), u, v, injected)


def test_without_renormalization_the_line_is_low(delivery, tmp_path, full_run):
    """A manifest without hifa_renorm: nothing computed, nothing said, and the
    target's line channels stay low by the injected scaling (the check above
    can fail).  Noise-free: with/without is the injected scaling per channel."""
    import re

    def script(src, dst):
        for f in sorted(src.iterdir()):
            if f.name.endswith("pipeline_manifest.xml"):
                text = f.read_text()
                new = re.sub(r"<hifa_renorm[^>]*/>", "", text)
                assert new != text
                (dst / f.name).write_text(new)
            else:
                os.symlink(f, dst / f.name)
    shadow = make_shadow(delivery["member_dir"], tmp_path, {"script": script})
    out = tmp_path / "o"
    r = _restore(deliverydir=str(shadow), outdir=str(out), spacesaving=2, dosplit=True)
    assert r["status"] == "ok" and not any("renormalization" in w for w in r["warnings"])
    assert not list((out / "working").glob("*.renorm.tbl"))
    stat, injected = _line_over_continuum(delivery, lambda u: str(out / f"{u}.ms.split.cal"))
    for u, v in stat.items():
        assert v == pytest.approx(injected, abs=0.01), (u, v, injected)
        assert v < 0.97
    truth = delivery["truth"]
    spw = truth["renorm"]["spw"]
    sc = np.asarray(truth["renorm"]["scaling"])
    for u in truth["ebs"]:
        fid = truth["eb"][u]["field_ids"][truth["target"]]
        sel = f"DATA_DESC_ID=={spw} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}"
        w = _cols(str(full_run[0] / f"{u}.ms.split.cal"), ["DATA", "FLAG"], sel)
        n = _cols(str(out / f"{u}.ms.split.cal"), ["DATA", "FLAG"], sel)
        ok = ~(w["FLAG"] | n["FLAG"]) & (n["DATA"] != 0)
        r = np.where(ok, np.abs(w["DATA"] / np.where(ok, n["DATA"], 1)), np.nan)
        applied = np.nanmedian(r, axis=(0, 2))
        np.testing.assert_allclose(applied, sc, rtol=1e-3, err_msg=u)


def test_lean_run_layout_and_disk(delivery, lean_run):
    out, r = lean_run
    ebs = delivery["truth"]["ebs"]
    expected = {"working", "rawdata", "products", "restore.json", "restore.html"}
    for u in ebs:
        expected |= {f"{u}.ms.split.cal", f"working/{u}.ms.flagversions",
                     f"working/{u}.ms.callib.txt"}
        expected |= {f"working/{t}" for t in delivery["truth"]["eb"][u]["caltables"]}
        expected |= _renorm_tables(delivery, u)
    assert _tree(out) == expected
    raw = r["members"][0]["raw_bytes"]
    peak = r["peak_disk_bytes"]
    # On this small synthetic delivery the split.cal files alone are ~1.1x the ASDMs
    # (MS overheads); the transient full MS (lazy import) adds ~0.15x per EB running.
    final = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out)
                for f in fs if not os.path.islink(os.path.join(dp, f)))
    assert peak <= final + 0.4 * raw, (peak / raw, final / raw)
    assert peak <= 1.5 * raw, peak / raw
    assert peak <= r["members"][0]["predicted_peak_bytes"]


def test_contsub_removes_continuum_keeps_line(delivery, full_run):
    """Line MS: continuum residual < 1 % of the continuum, line kept (vs targets.ms)."""
    out, _ = full_run
    truth = delivery["truth"]
    line = truth["line"]
    spw = line["spw"]
    lo, hi = line["channels"]
    from casatools import table
    for u in truth["ebs"]:
        spec = {}
        for name in (f"{u}_targets.ms", f"{u}_targets_line.ms"):
            vis = str(out / name)
            tb = table()
            tb.open(vis + "/DATA_DESCRIPTION")
            dd = int(np.flatnonzero(tb.getcol("SPECTRAL_WINDOW_ID") == spw)[0])
            tb.close()
            d = _cols(vis, ["DATA", "FLAG"], f"ANTENNA1!=ANTENNA2 && DATA_DESC_ID=={dd}")
            spec[name] = np.ma.array(np.real(d["DATA"]), mask=d["FLAG"]).mean(axis=(0, 2))
        t, l = spec[f"{u}_targets.ms"], spec[f"{u}_targets_line.ms"]
        off = np.r_[2:max(lo - 3, 3), min(hi + 4, t.size - 3):t.size - 2]
        cont = t[off].mean()
        assert cont > 0.05
        assert abs(l[off].mean()) < 0.01 * cont, (u, l[off].mean(), cont)
        peak = (t[lo:hi + 1] - cont).max()
        assert peak > 0.3 * line["peak_jy"]
        assert l[lo:hi + 1].max() == pytest.approx(peak, rel=0.1)


def test_contsub_fit_order_follows_the_cont_dat_flags(delivery, full_run):
    """hif_uvcontsub's rule: fit order 1, or 0 where hif_findcont flagged the ranges
    LOWBANDWIDTH or LOWSPREAD; the restore's contsub used order 1 (no flags here)."""
    from almaqa_casa.delivery.contdat import parse_contdat
    from almaqa_casa.restore.casasteps import contsub_spec, fit_order
    assert fit_order(()) == 1 and fit_order(["ALLCONT"]) == 1
    assert fit_order(["LowBandwidth"]) == 0 and fit_order(["ALLCONT", "LOWSPREAD"]) == 0
    out, _ = full_run
    truth = delivery["truth"]
    u, target = truth["ebs"][0], truth["target"]
    spw = truth["line"]["spw"]
    text = (f"Field: {target}\n\nSpectralWindow: {spw}\nFlags: LOWSPREAD\n"
            "100.20~100.26GHz TOPO\n\n"
            f"SpectralWindow: {spw + 1}\n101.95~102.00GHz TOPO\n")
    spec, _ = contsub_spec(str(out / f"{u}_targets.ms"), parse_contdat(text))
    (fs,) = [v for v in spec.values() if v != "NONE"]
    assert fs[str(spw)]["fitorder"] == 0 and fs[str(spw + 1)]["fitorder"] == 1


def test_image_recovery(delivery, full_run):
    """Recovered uncorrected images equal the generator's tclean images to 1e-6."""
    out, r = full_run
    from astropy.io import fits
    checked = 0
    for name, info in delivery["truth"]["images"].items():
        unc = info.get("uncorrected_fits")
        if not unc or not name.endswith(".pbcor.fits"):
            continue
        got = out / "images" / name.replace(".pbcor.fits", ".fits")
        assert got.is_file(), got
        a = fits.getdata(got)
        b = fits.getdata(unc)
        assert a.shape == b.shape
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        m = np.isfinite(b)
        assert np.abs(a[m] - b[m]).max() <= 1e-6 * np.abs(b[m]).max(), name
        checked += 1
    assert checked >= 3


def test_dryrun_changes_nothing(delivery, tmp_path, capsys):
    out = tmp_path / "cal"
    r = _restore(deliverydir=delivery["member_dir"], outdir=str(out), dryrun=True, spacesaving=2,
                 dosplit=True)
    assert r["status"] == "ok" and not out.exists()
    text = capsys.readouterr().out
    assert "predicted peak disk" in text and "split.cal" in text
    plan = r["members"][0]
    assert plan["route"] == "callib" and plan["predicted_peak_bytes"] > 0


def _no_extras(names):
    return {n for n in names if "targets" not in n and "images" not in n
            and "auxproducts" not in n and "callib" not in n}


def test_default_layout_with_globals(delivery, tmp_path, lean_run):
    """calibrated/ next to raw/ (shadow member); scriptForPI globals honoured.

    SPACESAVING=3 leaves what 2 leaves: the pipeline path has no calibrated.ms,
    so the split.cal files stay."""
    shadow = make_shadow(delivery["member_dir"], tmp_path)
    g = {"SPACESAVING": 3, "DOSPLIT": True, "__name__": "__main__"}
    exec("from almaqa_casa import qa_restore\nr = qa_restore(deliverydir=%r)" % str(shadow), g)
    r = g["r"]
    assert r["options"]["sources"] == {"spacesaving": "global", "dosplit": "global",
                                       "docontsub": "default"}
    assert (shadow / "calibrated" / f"{delivery['truth']['ebs'][0]}.ms.split.cal").is_dir()
    assert _tree(shadow / "calibrated") == _tree(lean_run[0])
    # a second run finds everything complete and skips it
    r2 = _restore(deliverydir=str(shadow), spacesaving=3, dosplit=True)
    assert all(s["skipped"] for s in r2["steps"])


# ---- faults ---------------------------------------------------------------------
def test_missing_asdm(delivery, tmp_path):
    ebs = delivery["truth"]["ebs"]

    def raw_one(src, dst):
        os.symlink(src / f"{ebs[0]}.asdm.sdm", dst / f"{ebs[0]}.asdm.sdm")
    shadow = make_shadow(delivery["member_dir"], tmp_path, {"raw": raw_one})
    with pytest.raises(Exception, match=rf"ASDM missing.*{ebs[1]}"):
        _restore(deliverydir=str(shadow), dosplit=True)
    assert not (shadow / "calibrated").exists()


def _calib_copy(mod):
    def build(src, dst):
        link_all(src, dst, skip=mod(src, dst))
    return build


def test_truncated_caltables_tarball(delivery, tmp_path):
    def mod(src, dst):
        tgz = next(src.glob("*.caltables.tgz"))
        data = tgz.read_bytes()
        (dst / tgz.name).write_bytes(data[: len(data) // 3])
        return {tgz.name}
    shadow = make_shadow(delivery["member_dir"], tmp_path, {"calibration": _calib_copy(mod)})
    r = _restore(deliverydir=str(shadow), outdir=str(tmp_path / "o"), dosplit=True, nprocs=1)
    assert r["status"] == "failed"
    assert re.search(r":caltables failed: .*caltables.tgz.*(truncated|corrupt)", r["error"]), r["error"]
    for uid, e in r["members"][0]["eb_results"].items():   # each EB fails at its first step
        assert e["status"] == "failed" and e["not_run"] and uid in e["error"]


def test_malformed_calapply(delivery, tmp_path):
    u = delivery["truth"]["ebs"][1]

    def mod(src, dst):
        name = f"{u}.ms.calapply.txt"
        lines = (src / name).read_text().splitlines()
        lines.insert(2, "applycal(vis='x', gaintable=[open('/etc/passwd').read()])")
        (dst / name).write_text("\n".join(lines) + "\n")
        return {name}
    shadow = make_shadow(delivery["member_dir"], tmp_path, {"calibration": _calib_copy(mod)})
    with pytest.raises(Exception, match=rf"{u}.ms.calapply.txt, line 3: the value of 'gaintable' is not a literal"):
        _restore(deliverydir=str(shadow), outdir=str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()     # refused before any work


def test_missing_caltable(delivery, tmp_path):
    u = delivery["truth"]["ebs"][0]

    def mod(src, dst):
        name = f"{u}.ms.calapply.txt"
        text = (src / name).read_text()
        t = delivery["truth"]["eb"][u]["caltables"][0]
        (dst / name).write_text(text.replace(t, "not_delivered.tbl"))
        return {name}
    shadow = make_shadow(delivery["member_dir"], tmp_path, {"calibration": _calib_copy(mod)})
    r = _restore(deliverydir=str(shadow), outdir=str(tmp_path / "o"), dosplit=True)
    assert r["status"] == "failed" and "not_delivered.tbl" in r["error"]
    res = r["members"][0]["eb_results"]
    other = delivery["truth"]["ebs"][1]
    assert res[u]["status"] == "failed" and "not_delivered.tbl" in res[u]["error"]
    assert res[other]["status"] == "ok"                  # the other EB is restored
    assert (tmp_path / "o" / f"{other}.ms.split.cal" / "table.dat").is_file()


def test_auto_nprocs_falls_back_to_one_eb_at_a_time_when_disk_is_short(delivery, tmp_path):
    """nprocs=0 (default): EBs in parallel need more disk at once; when only the
    one-at-a-time peak fits, that is what is planned, and the result says so."""
    from almaqa_casa.restore.engine import restore
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: nprocs=0 means one EB at a time anyway")
    params = {"outdir": str(tmp_path / "o"), "spacesaving": 2, "dosplit": True, "dryrun": True}
    key = "predicted_peak_bytes"
    par = restore(delivery["member_dir"], dict(params, nprocs=2))["members"][0][key]
    one = restore(delivery["member_dir"], dict(params, nprocs=1))["members"][0][key]
    assert one < par
    r = restore(delivery["member_dir"], dict(params, nprocs=0), free=lambda _: (one + par) // 2)
    assert r["members"][0][key] == one
    assert any("one EB at a time" in w for w in r["warnings"])
    r = restore(delivery["member_dir"], dict(params, nprocs=0), free=lambda _: 10 * par)
    assert r["members"][0][key] == par and not any("one EB" in w for w in r["warnings"])


def test_not_enough_disk_and_level_minus1(delivery, tmp_path, full_run):
    from almaqa_casa.restore.disk import DiskError
    from almaqa_casa.restore.engine import restore
    out = tmp_path / "o"
    with pytest.raises(DiskError, match=r"needs about .* are available.*spacesaving=2"):
        restore(delivery["member_dir"], {"outdir": str(out), "spacesaving": 0, "dosplit": True},
                free=lambda _: 1000)
    assert not out.exists()
    # SPACESAVING=-1: no disk check, and the files of SPACESAVING=0 are left
    r = restore(delivery["member_dir"], {"outdir": str(out), "spacesaving": -1, "dosplit": True},
                free=lambda _: 1000)
    assert r["status"] == "ok" and r["disk"]["checked"] is False
    assert _tree(out) == _no_extras(_tree(full_run[0]))


def test_killed_then_rerun(delivery, tmp_path, full_run):
    """Kill the CLI mid-way (after the first EB's MS is complete); a re-run completes
    with the same result (SPACESAVING=1: the files of level 0)."""
    out = tmp_path / "calibrated"
    ebs = delivery["truth"]["ebs"]
    cmd = [sys.executable, "-m", "almaqa_casa", "qa_restore", "--deliverydir",
           delivery["member_dir"], "--outdir", str(out), "--SPACESAVING", "1", "--dosplit", "true",
           "--nprocs", "1", "--json"]
    kill_once_recorded(cmd, out / ".qa_restore" / f"{ebs[0]}__ms.json", poll=0.2)
    assert not (out / f"{ebs[1]}.ms.split.cal").exists()
    r = rerun_json(cmd)
    skipped = {s["step"] for s in r["steps"] if s["skipped"]}
    assert f"{ebs[0]}:ms" in skipped and f"{ebs[0]}:caltables" in skipped
    assert not [p for p in (out / "working").iterdir() if ".partial-" in p.name]
    # same result as an uninterrupted run; SPACESAVING=1 leaves what 0 leaves
    full, _ = full_run
    assert _tree(out) == _no_extras(_tree(full))
    for u in ebs:
        _same_calibrated(str(full / f"{u}.ms.split.cal"), str(out / f"{u}.ms.split.cal"))


def test_cli_json_stdout_holds_the_json_alone(delivery, tmp_path):
    """With --json, stdout holds the JSON alone; what the task prints (here the dryrun
    plan) goes to the run's log."""
    cmd = [sys.executable, "-m", "almaqa_casa", "qa_restore", "--deliverydir",
           delivery["member_dir"], "--outdir", str(tmp_path / "o"), "--dryrun", "true", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["dryrun"] is True and r["ebs"] == delivery["truth"]["ebs"]
    assert "predicted peak disk" in Path(r["logfile"]).read_text()
    assert "predicted peak disk" not in p.stdout + p.stderr
    assert not (tmp_path / "o").exists()


def test_archive_tars_are_unpacked_safely(delivery, tmp_path):
    """A folder of archive tar files: extracted (merged) into it, then planned."""
    import tarfile
    member = Path(delivery["member_dir"])
    rel = member.relative_to(Path(delivery["project_dir"]).parent)
    parts = {"raw": "asdm", "calibration": "aux", "script": "aux", "product": "prod"}
    tars = tmp_path / "archive"
    tars.mkdir()
    for sub, kind in parts.items():
        with tarfile.open(tars / f"2025.1.x_{kind}_{sub}.tar", "w") as tf:
            tf.add(member / sub, arcname=str(rel / sub))
    from almaqa_casa.restore.engine import find_or_unpack
    found, notes = find_or_unpack(str(tars), dryrun=True)
    assert found == [] and "would be extracted" in notes[0]
    r = _restore(deliverydir=str(tars), dryrun=True)
    assert r["status"] == "ok" and not (tars / rel.parts[0]).exists()
    found, notes = find_or_unpack(str(tars), dryrun=False)
    assert [p.name for p in found] == [member.name]
    assert (found[0] / "raw").is_dir() and (found[0] / "calibration").is_dir()
    r = _restore(deliverydir=str(tars), dryrun=True, spacesaving=2, dosplit=True)
    assert r["members"][0]["ebs"] == delivery["truth"]["ebs"]


def test_usepipeline_without_pipeline(delivery, tmp_path):
    import importlib.util
    if importlib.util.find_spec("pipeline") is not None:
        pytest.skip("the ALMA pipeline is installed here")
    with pytest.raises(Exception, match="usepipeline=True needs the ALMA pipeline"):
        _restore(deliverydir=delivery["member_dir"], outdir=str(tmp_path / "o"), usepipeline=True)
    assert not (tmp_path / "o").exists()


def _both_routes(delivery, tmp_path, edit):
    """Restore a shadow delivery whose calapply.txt files went through ``edit``
    with the applycal route (SPACESAVING=0, into tmp_path/a) and the cal library
    route (SPACESAVING=2, into tmp_path/b)."""
    def mod(src, dst):
        names = {f.name for f in src.glob("*.calapply.txt")}
        for name in names:
            (dst / name).write_text(edit((src / name).read_text()))
        return names
    shadow = make_shadow(delivery["member_dir"], tmp_path / "in", {"calibration": _calib_copy(mod)})
    return tuple(_restore(deliverydir=str(shadow), outdir=str(tmp_path / k), spacesaving=level,
                          dosplit=True, nprocs=1) for k, level in (("a", 0), ("b", 2)))


def test_rows_no_calapply_line_covers_are_alike_in_both_routes(delivery, tmp_path):
    """Real deliveries have scans no calapply line selects (e.g. ATMOSPHERE in the
    science spws).  Here the CHECK source is left out of calapply.txt: the applycal
    route (SPACESAVING=0) leaves those rows uncalibrated and unflagged, and the
    on-the-fly cal library route (SPACESAVING=2) must give the same split."""
    def drop_check(text):
        assert "intent='CHECK,TARGET'" in text and f"field='{CHECK_NAME}," in text
        return text.replace(f"field='{CHECK_NAME},", "field='").replace(
            "intent='CHECK,TARGET'", "intent='TARGET'")
    a, b = _both_routes(delivery, tmp_path, drop_check)
    assert a["members"][0]["route"] == "applycal" and b["members"][0]["route"] == "callib"
    for u in delivery["truth"]["ebs"]:
        va, vb = str(tmp_path / "a" / f"{u}.ms.split.cal"), str(tmp_path / "b" / f"{u}.ms.split.cal")
        _same_calibrated(va, vb)
        # the CHECK rows are really uncalibrated: unflagged, DATA as imported
        fid = delivery["truth"]["eb"][u]["field_ids"][CHECK_NAME]
        sel = f"DATA_DESC_ID==0 && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}"
        chk = _cols(vb, ["DATA", "FLAG"], sel)
        raw = _cols(str(tmp_path / "a" / "working" / f"{u}.ms"), ["DATA"], sel)
        assert not chk["FLAG"].any()
        assert np.array_equal(chk["DATA"], raw["DATA"])


def test_partial_antenna_selection_falls_back_to_applycal_and_says_so(delivery, tmp_path):
    """A cal library cannot select antennas: with SPACESAVING=2 such a calapply line
    is applied into the MS instead (the split then takes CORRECTED), the result
    warns, and the split equals the applycal route's."""
    nant = len(delivery["truth"]["eb"][delivery["truth"]["ebs"][0]]["antennas"])
    partial = f"antenna='0~{nant - 2}'"

    def partial_target(text):
        lines = [ln.replace(f"antenna='0~{nant - 1}'", partial) if "TARGET" in ln else ln
                 for ln in text.splitlines(keepends=True)]
        assert any(partial in ln for ln in lines)
        return "".join(lines)
    a, b = _both_routes(delivery, tmp_path, partial_target)
    assert a["status"] == b["status"] == "ok"
    for u in delivery["truth"]["ebs"]:
        assert any(u in w and "cal library not possible" in w and "applycal route used" in w
                   for w in b["warnings"]), b["warnings"]
        _same_calibrated(str(tmp_path / "a" / f"{u}.ms.split.cal"),
                         str(tmp_path / "b" / f"{u}.ms.split.cal"))


def test_progress_bar_on_a_terminal(delivery, tmp_path):
    """On a terminal the CLI shows a progress bar over the member's steps, ending full."""
    import pty
    import select

    from almaqa_casa.restore.executor import progress_line
    assert progress_line(0, 4, "x") == "[--------------------] 0/4 x"
    assert progress_line(3, 12, "y", width=8) == "[##------]  3/12 y"
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "almaqa_casa", "qa_restore", "--deliverydir",
           delivery["member_dir"], "--outdir", str(tmp_path / "o"), "--SPACESAVING", "2",
           "--dosplit", "true", "--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
    os.close(slave)
    seen = b""
    while True:
        r, _, _ = select.select([master], [], [], 1.0)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:    # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        elif p.poll() is not None:
            break
    out, _ = p.communicate(timeout=600)
    os.close(master)
    assert p.returncode == 0
    assert json.loads(out)["status"] == "ok"
    text = seen.decode(errors="replace")
    total = len(json.loads(out)["steps"])
    import re
    assert re.search(r"\[-{20}\] +0/%d \[" % total, text), text[-500:]
    assert f"[{'#' * 20}] {total}/{total} [" in text
    assert "\r\033[K" in text


def test_rerun_adding_docontsub_after_spacesaving2(delivery, tmp_path, capsys):
    """A second run asking for more (DOCONTSUB, images) after a SPACESAVING=2 run
    re-creates the full MS it deleted, makes the new products and deletes it again."""
    out = tmp_path / "o"
    kw = dict(deliverydir=delivery["member_dir"], outdir=str(out), spacesaving=2, dosplit=True,
              nprocs=1)
    assert _restore(**kw)["status"] == "ok"
    ebs = delivery["truth"]["ebs"]
    assert not (out / "working" / f"{ebs[0]}.ms").exists()
    # a dry run of the same restore says everything is complete
    _restore(dryrun=True, **kw)
    assert "every step is complete: a re-run changes nothing" in capsys.readouterr().out
    r = _restore(docontsub=True, images=True, **kw)
    assert r["status"] == "ok", r.get("error")
    for u in ebs:
        assert (out / f"{u}_targets_line.ms" / "table.dat").is_file()
        assert not (out / "working" / f"{u}.ms").exists()          # deleted again (SS=2)
    assert any(p.name.endswith(".fits") for p in (out / "images").iterdir())
    ran = {s["step"].split(":")[-1] for s in r["steps"] if not s["skipped"]}
    assert {"ms", "targets", "contsub", "cleanup"} <= ran and "split" not in ran


def test_archive_tars_interrupted_extraction_resumes(delivery, tmp_path):
    """Archive tars of which only the first was extracted (a run killed during the
    extraction): the next restore extracts the rest and restores (dry run here)."""
    from almaqa_casa.delivery.archive import extract_archives
    member = Path(delivery["member_dir"])
    rel = member.relative_to(Path(delivery["project_dir"]).parent)
    tars = tmp_path / "archive"
    tars.mkdir()
    made = []
    for sub in ("script", "calibration", "raw"):
        made.append(tars / f"2025.1.x_{sub}.tar")
        with tarfile.open(made[-1], "w") as tf:
            tf.add(member / sub, arcname=str(rel / sub))
    extract_archives(made[:1], tars)             # as if killed after the first tar
    assert (tars / rel / "script").is_dir() and not (tars / rel / "raw").exists()
    r = _restore(deliverydir=str(tars), dosplit=True, spacesaving=2, dryrun=True)
    assert not (tars / rel / "raw").exists()     # a dry run extracts nothing
    r = _restore(deliverydir=str(tars), dosplit=True, spacesaving=2, outdir=str(tmp_path / "o"),
                 nprocs=1)
    assert r["status"] == "ok", r.get("error")
    assert (tars / rel / "raw").is_dir() and (tars / rel / "calibration").is_dir()
    assert r["ebs"] == delivery["truth"]["ebs"]


# ---- verification, provenance, report, chaining (issue 14) ----------------------------------
def test_every_verification_check_passes_on_both_routes(delivery, full_run, lean_run):
    """The restores above are right, and the verification says so, per EB and check."""
    mous = delivery["truth"]["mous"]
    for out, r in (full_run, lean_run):
        assert r["status"] == "ok" and r["verification"] == {mous: "passed"}, r.get("error")
        v = r["members"][0]["verification"]
        assert v["status"] == "passed" and v["failures"] == []
        for u in delivery["truth"]["ebs"]:
            e = v["ebs"][u]
            assert e["ms"] == str(out / f"{u}.ms.split.cal") and e["column"] == "DATA"
            assert {c["check"]: c["status"] for c in e["checks"]} == {
                "calapply": "pass", "coverage": "pass", "data": "pass", "flags": "pass",
                "flux": "pass", "renorm": "pass"}, e["checks"]
            flags = next(c for c in e["checks"] if c["check"] == "flags")
            # SPACESAVING=2 deleted the full MS: the restore's own record of Pipeline_Final
            assert ("Pipeline_Final" in flags["numbers"]["reference"])
            flux = next(c for c in e["checks"] if c["check"] == "flux")
            assert len(flux["numbers"]["spws"]) == len(delivery["truth"]["spws"])
            for m in flux["numbers"]["spws"]:
                # the restore reproduces flux.csv well inside the 2 % floor
                assert abs(m["ratio"] - 1) < 0.005 and m["tolerance"] < 0.025
        assert v["seconds"] < 60


def test_restore_report_renders_with_the_verification_table(delivery, lean_run):
    from tests.browser import check_page
    out, r = lean_run
    rep = r["members"][0]["report"]
    assert rep == {"json": str(out / "restore.json"), "html": str(out / "restore.html")}
    doc = json.loads(Path(rep["json"]).read_text())
    u = delivery["truth"]["ebs"][0]
    assert doc["status"] == "ok" and doc["verification"]["status"] == "passed"
    assert [s["step"] for s in doc["ebs"][u]["steps"]] == [f"{u}:caltables", f"{u}:ms",
                                                           f"{u}:split", f"{u}:links",
                                                           f"{u}:cleanup"]
    assert doc["ebs"][u]["renorm"]["applied"] is True
    assert doc["ebs"][u]["renorm"]["table_max"]["1"] > 1.04
    assert doc["disk"]["peak_bytes"] > 0 and doc["provenance"]["restoring_versions"]["casa"]
    page = check_page(rep["html"])
    assert page.ok, page.explain()
    html = Path(rep["html"]).read_text()
    assert "<h2>Verification</h2>" in html and html.count('class="badge pass"') >= 12
    assert f"{u}: flux: flux calibrator J1924-2914 agrees with flux.csv" in html
    assert "Flagged rows per scan and intent" in html


def test_provenance_in_every_output(delivery, full_run, lean_run):
    import casatools
    from astropy.io import fits
    shape = delivery["truth"]["shape"]
    for out, r in (full_run, lean_run):
        prov = r["provenance"]
        assert prov["delivery_versions"]["casa"] == shape["casa_version"]
        assert prov["restoring_versions"]["casatools"] == casatools.version_string()
        assert prov["parameters"]["spacesaving"] in (0, 2)
        if prov["major_difference"]:        # CASA 6.6 delivery restored with 6.7
            assert any(f"calibrated with CASA {shape['casa_version']}" in w
                       and "different major version" in w for w in r["warnings"])
        from almaqa_casa.restore.provenance import read_ms_provenance
        for u in delivery["truth"]["ebs"]:
            (rec,) = read_ms_provenance(str(out / f"{u}.ms.split.cal"))[-1:]
            assert rec["eb"] == u and rec["data"] == "calibrated"
            assert rec["verification"] == "passed" and rec["renorm"]["applied"] is True
            assert rec["delivery_versions"]["casa"] == shape["casa_version"]
    full, _ = full_run
    u = delivery["truth"]["ebs"][0]
    (rec,) = read_ms_provenance(str(full / "working" / f"{u}.ms"))[-1:]
    assert rec["data"].startswith("uncalibrated")
    images = list((full / "images").glob("*.fits"))
    assert images
    hist = "\n".join(str(h) for h in fits.getheader(images[0])["HISTORY"])
    assert "qa_restore by almaqa_casa" in hist and f"CASA {shape['casa_version']}" in hist


def test_chained_renormplots_reports_the_restore_correction(delivery, lean_run, full_run,
                                                            tmp_path):
    """qa_renormplots(vis=qa_restore(..., dosplit=True, spacesaving=2)): the spectra of the
    uncorrected data (the restore's table divided out of the split), 'corrected: yes (by
    qa_restore)', never the squared factor; apply=True refused."""
    from almaqa_casa import qa_renormplots
    from almaqa_casa.renorm.run import AlreadyCorrected
    from almaqa_casa.taskdef.summary import summarize
    truth = delivery["truth"]
    spw, target = str(truth["renorm"]["spw"]), truth["renorm"]["field"]
    inj = max(truth["renorm"]["scaling"])
    for (out, r), kind in ((lean_run, "undo"), (full_run, "data")):
        rn = qa_renormplots(vis=r, outdir=str(tmp_path / f"rn_{kind}"))
        assert rn["status"] == "ok"
        for ms in rn["ms"]:
            assert ms["correction"]["analyse"] == kind and ms["correction"]["corrected_by"] == \
                "qa_restore"
            d = ms["targets"][target][spw]
            assert abs(d["max_rn"] - inj) < 0.003, d["max_rn"]          # 1.05, not 1.10
            assert d["corrected"] is True and d["corrected_how"] == "by qa_restore"
            assert d["restore_factor"] == pytest.approx(d["max_rn"], abs=2e-4)
            assert d["qa_score"] == pytest.approx(0.9 - 0.23 * (d["max_rn"] - 1.02) / 1.48,
                                                  abs=1e-4)   # rounded to 4 decimals
            others = [x for s, x in ms["targets"][target].items() if s != spw]
            assert all(not x["corrected"] and x["max_rn"] < 1.005 for x in others)
        text = "\n".join(summarize("qa_renormplots", rn))
        assert re.search(rf"{target} spw {spw}: max scaling 1\.0(49|50)\d ABOVE threshold; "
                         r"corrected: yes \(by qa_restore\)", text), text
        assert "1.10" not in text
        with pytest.raises(AlreadyCorrected, match=r"apply=True refused: its data were already "
                                                   r"renormalized by qa_restore \(table .*"
                                                   r"renorm\.tbl, spw 1\)"):
            qa_renormplots(vis=r, outdir=str(tmp_path / f"rn_apply_{kind}"), apply=True)
    # the split.cal by its path: the records beside it say what it holds
    lean, _ = lean_run
    u = truth["ebs"][0]
    rn = qa_renormplots(vis=str(lean / f"{u}.ms.split.cal"), outdir=str(tmp_path / "rn_path"))
    assert abs(rn["ms"][0]["targets"][target][spw]["max_rn"] - inj) < 0.003
    # a copy elsewhere (no records beside it): its HISTORY names the restore's table
    import shutil
    copy = tmp_path / "elsewhere" / f"{u}.ms.split.cal"
    shutil.copytree(lean / f"{u}.ms.split.cal", copy)
    rn = qa_renormplots(vis=str(copy), outdir=str(tmp_path / "rn_copy"))
    ms = rn["ms"][0]
    assert ms["correction"]["source"] == "MS HISTORY (qa_restore provenance)"
    assert ms["correction"]["analyse"] == "undo"
    assert abs(ms["targets"][target][spw]["max_rn"] - inj) < 0.003
