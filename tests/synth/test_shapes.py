"""Real delivery shapes built with CASA (issue 12): multi-session without a
manifest, s<k> tarballs, Cycle 4 and Cycle 7 layouts, ImagingPrep, semipass
and the SACM/JAO pre-step.  Each is built once (tests/conftest.py fixtures,
cached with ALMAQA_SYNTH_CACHE)."""
from __future__ import annotations

import csv
import glob
import gzip
import os
import shutil
import tarfile
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from .helpers import calls, extract, imaging_prep_inputs, parse_calapply, ppr_sessions, tar_members

pytestmark = pytest.mark.slow

PL2CASA = {"AMPLITUDE": "CALIBRATE_FLUX#ON_SOURCE", "BANDPASS": "CALIBRATE_BANDPASS#ON_SOURCE",
           "PHASE": "CALIBRATE_PHASE#ON_SOURCE", "CHECK": "OBSERVE_CHECK_SOURCE#ON_SOURCE",
           "TARGET": "OBSERVE_TARGET#ON_SOURCE"}


def _script(r, key):
    return os.path.join(r["member_dir"], "script", r["truth"]["shape"]["files"][key])


def _restore(r):
    text = open(_script(r, "restore")).read()
    found = [(n, kw) for n, kw in calls(text) if n.endswith("restoredata")]
    assert len(found) == 1
    return found[0], text


def _check_sessions(r):
    """Restore script, PPR, calapply lists and tarballs agree with the truth;
    each tarball holds exactly its own EBs' tables."""
    t, shape = r["truth"], r["truth"]["shape"]
    (task, kw), _ = _restore(r)
    assert task == shape["restore_task"] and kw["vis"] == t["ebs"] and kw["ocorr_mode"] == "ca"
    assert kw["session"] == [shape["eb_session"][eb] for eb in t["ebs"]]
    want: dict[str, list[str]] = {}
    for eb in t["ebs"]:
        want.setdefault(shape["ppr_session"][eb].upper(), []).append(eb)
    assert ppr_sessions(_script(r, "ppr")) == want
    cal = os.path.join(r["member_dir"], "calibration")
    assert sorted(f for f in os.listdir(cal) if f.endswith("caltables.tgz")) == \
        sorted(shape["session_caltables"].values())
    for eb in t["ebs"]:
        tarball = shape["eb_caltables"][eb]
        assert t["eb"][eb]["caltables_tarball"] == tarball
        top = {n.split("/")[0] for n in tar_members(os.path.join(cal, tarball))}
        named = {os.path.basename(g) for e in parse_calapply(os.path.join(cal, f"{eb}.ms.calapply.txt"))
                 for g in e["gaintable"]}
        assert named == set(t["eb"][eb]["caltables"]) and named <= top
        assert all(n.startswith(eb) for n in top if n in named)
        others = [tb_ for tb_ in shape["session_caltables"].values() if tb_ != tarball]
        for other in others:
            assert not named & {n.split("/")[0] for n in tar_members(os.path.join(cal, other))}


def test_sessions_without_manifest(sessions_delivery, tmp_path):
    """EBs in session_2 and session_4; no manifest: the map is in the
    restore script and the PPR only."""
    from almaqa_casa.synth._casa import casatools

    r = sessions_delivery
    t, shape = r["truth"], r["truth"]["shape"]
    assert [shape["eb_session"][eb] for eb in t["ebs"]] == ["session_2", "session_4"]
    assert not shape["manifest_present"] and shape["session_map_source"] == "restore_script"
    assert not glob.glob(os.path.join(r["member_dir"], "script", "*manifest*"))
    m = t["mous"]
    assert sorted(shape["session_caltables"].values()) == [f"{m}.session_2.caltables.tgz",
                                                           f"{m}.session_4.caltables.tgz"]
    _check_sessions(r)
    cal = os.path.join(r["member_dir"], "calibration")
    extract(os.path.join(cal, f"{m}.session_4.caltables.tgz"), tmp_path / "s4")
    tb = casatools.table()
    for name in t["eb"][t["ebs"][1]]["caltables"]:
        tb.open(str(tmp_path / "s4" / name))
        try:
            assert tb.getkeyword("VisCal") in ("B Jones", "G Jones") and tb.nrows() > 0
        finally:
            tb.close()
    assert not t["renorm"]["restore_applies"] and t["renorm"]["manifest_hifa_renorm"] == {}


def test_sessions_restore_by_hand(sessions_delivery, tmp_path):
    """The EB of session_4 calibrates from its own tarball alone: target flux
    within 2 % of the truth (what a correct restore must reach)."""
    from almaqa_casa.synth._casa import casatasks, casatools

    r = sessions_delivery
    t = r["truth"]
    eb = t["ebs"][1]
    cal = os.path.join(r["member_dir"], "calibration")
    vis = str(tmp_path / f"{eb}.ms")
    casatasks.importasdm(asdm=t["eb"][eb]["asdm"], vis=vis, lazy=True, ocorr_mode="ca", bdfflags=True,
                         process_caldevice=False)
    shutil.rmtree(vis + ".flagversions")
    extract(os.path.join(cal, f"{eb}.ms.flagversions.tgz"), tmp_path)
    casatasks.flagmanager(vis=vis, mode="restore", versionname="Pipeline_Final")
    extract(os.path.join(cal, t["shape"]["eb_caltables"][eb]), tmp_path)
    for e in parse_calapply(os.path.join(cal, f"{eb}.ms.calapply.txt")):
        casatasks.applycal(vis=vis, field=e["field"], spw=e["spw"], antenna=e["antenna"],
                           intent=",".join(PL2CASA[i] for i in e["intent"].split(",")),
                           gaintable=[str(tmp_path / os.path.basename(g)) for g in e["gaintable"]],
                           gainfield=e["gainfield"], spwmap=e["spwmap"], interp=e["interp"],
                           calwt=e["calwt"], applymode="calflagstrict", flagbackup=False)
    tb = casatools.table()
    tb.open(vis + "/FIELD")
    fid = list(tb.getcol("NAME")).index(t["target"])
    tb.close()
    tb.open(vis)
    try:
        for k in (0, 2, 3):
            q = tb.query(f"DATA_DESC_ID=={k} && ANTENNA1!=ANTENNA2 && FIELD_ID=={fid}")
            c, f = q.getcol("CORRECTED_DATA"), q.getcol("FLAG")
            q.close()
            got = np.ma.array(c, mask=f).mean().real
            want = t["sources"][t["target"]]["spw"][str(k)]["mean_I_jy"]
            assert abs(got / want - 1) < 0.02, (k, got, want)
    finally:
        tb.close()


def test_s_naming_cycle10(snaming_delivery):
    r = snaming_delivery
    t, shape = r["truth"], r["truth"]["shape"]
    m = t["mous"]
    assert t["project"].startswith("2023.1.")
    assert shape["session_caltables"] == {"session_1": f"{m}.s1.caltables.tgz",
                                          "session_2": f"{m}.s2.caltables.tgz"}
    _check_sessions(r)
    ous = ET.parse(_script(r, "manifest")).getroot().find("ous")
    assert ous.find("casaversion").attrib["name"] == shape["casa_version"] == "6.5.4-9"
    sessions = {s.attrib["name"]: s for s in ous.findall("session")}
    assert {n: s.find("caltables").attrib["name"] for n, s in sessions.items()} == shape["session_caltables"]
    for n, s in sessions.items():
        assert [a.attrib["name"] for a in s.findall("asdm")] == [eb for eb in t["ebs"]
                                                                if shape["eb_session"][eb] == n]
        assert all(a.find("hifa_renorm") is not None for a in s.findall("asdm"))
    assert t["renorm"]["restore_applies"]


def test_cycle4_layout(cycle4_delivery):
    r = cycle4_delivery
    t, shape, member = r["truth"], r["truth"]["shape"], r["member_dir"]
    m = t["mous"]
    assert t["project"].startswith("2016.1.") and shape["era"] == "cycle4"
    assert os.path.isfile(os.path.join(member, "README"))
    assert not glob.glob(os.path.join(member, "*README.txt"))
    readme = open(os.path.join(member, "README")).read()
    assert "CASA version: 4.7.0-1" in readme and "almaqa qa_restore --deliverydir" in readme
    cal = sorted(os.listdir(os.path.join(member, "calibration")))
    assert {"flux.csv", "antennapos.csv", f"{m}.cont.dat"} <= set(cal)
    assert not [f for f in cal if f.endswith("auxproducts.tgz")]
    for eb in t["ebs"]:
        assert {f"{eb}_flagtemplate.txt", f"{eb}_flagtargetstemplate.txt"} <= set(cal)
        tmpl = open(os.path.join(member, "calibration", f"{eb}_flagtemplate.txt")).read()
        assert f"antenna='{t['eb'][eb]['bad_data']['antenna']}'" in tmpl
    rows = list(csv.reader(open(os.path.join(member, "calibration", "flux.csv"))))
    assert rows[0] == ["ms", "field", "spw", "I", "Q", "U", "V", "spix", "comment"]
    assert {r_[0] for r_ in rows[1:]} == {f"{eb}.ms" for eb in t["ebs"]}
    script = sorted(os.listdir(os.path.join(member, "script")))
    assert script == sorted(["casa_piperestorescript.py", "casa_pipescript.py", shape["files"]["ppr"],
                             "scriptForImaging.py", "scriptForPI.py"])
    (task, _kw), text = _restore(r)
    assert task == "hifa_restoredata" and "fixsyscaltimes" not in text
    assert not [ln for ln in open(_script(r, "imaging")) if ln.strip() and not ln.startswith("#")]
    _check_sessions(r)
    assert os.listdir(os.path.join(member, "qa")) == [f"{m}.weblog.tgz"]
    logs = os.listdir(os.path.join(member, "log"))
    assert f"{m}.casa_commands.log" in logs and [x for x in logs if x.startswith("casa-")]


def test_cycle4_products(cycle4_delivery, tmp_path):
    """Bare uid prefix, .pb.fits not gzipped, no masks; the continuum as
    tt0/tt1 with pb.tt0, alpha, alpha.error; impbcor with pb.tt0 recovers both
    Taylor terms' uncorrected images."""
    from astropy.io import fits

    from almaqa_casa.synth._casa import casatasks, casatools

    r = cycle4_delivery
    t, member = r["truth"], r["member_dir"]
    prod = os.path.join(member, "product")
    names = sorted(os.listdir(prod))
    m = t["mous"]
    assert all(n.startswith(m + ".") for n in names)
    assert not [n for n in names if n.endswith(".gz") or "mask" in n]
    stem = f"{m}.{t['target']}_sci.spw0_1_2_3.cont.I"
    for suffix in (".tt0.pbcor.fits", ".tt1.pbcor.fits", ".pb.tt0.fits", ".alpha.fits", ".alpha.error.fits"):
        assert stem + suffix in names, suffix
    assert f"{m}.{t['target']}_sci.spw1.mfs.I.pb.fits" in names
    assert set(t["images"]) == {n for n in names if n.endswith(".pbcor.fits")}
    for term in ("tt0", "tt1"):
        info = t["images"][f"{stem}.{term}.pbcor.fits"]
        assert info["pb"] == stem + ".pb.tt0.fits" and info["taylor_term"] == int(term[-1])
        out = str(tmp_path / f"{term}.im")
        casatasks.impbcor(imagename=os.path.join(prod, f"{stem}.{term}.pbcor.fits"),
                          pbimage=os.path.join(prod, info["pb"]), mode="m", outfile=out)
        ia = casatools.image()
        ia.open(out)
        rec = ia.getchunk()
        ia.close()
        ref = fits.getdata(info["uncorrected_fits"]).T
        fin = np.isfinite(rec) & np.isfinite(ref)
        assert fin.sum() > 1000
        assert np.max(np.abs(rec[fin] - ref[fin])) <= 1e-5 * np.nanmax(np.abs(ref))
    alpha = fits.getdata(os.path.join(prod, stem + ".alpha.fits"))
    c = alpha.shape[-1] // 2
    assert abs(alpha[..., c, c].ravel()[0] - t["sources"][t["target"]]["spix"]) < 0.5


def test_cycle7_layout(cycle7_delivery):
    r = cycle7_delivery
    t, shape, member = r["truth"], r["truth"]["shape"], r["member_dir"]
    assert t["project"].startswith("2019.1.")
    assert "log" not in os.listdir(member)
    assert os.path.isfile(os.path.join(member, "script", shape["files"]["cmdlog"]))
    assert shape["files"]["cmdlog_dir"] == "script" and shape["manifest_present"]
    ous = ET.parse(_script(r, "manifest")).getroot().find("ous")
    assert ous.find("casaversion").attrib["name"] == "5.6.1-8"
    assert ous.find("casa_cmdlog").attrib["name"] == shape["files"]["cmdlog"]
    assert all(a.find("hifa_renorm") is None for a in ous.iter("asdm"))  # no renormalization before Cycle 10
    _check_sessions(r)


def test_imagingprep(imagingprep_delivery):
    """scriptForImagingPrep.py in the observatory's style; the truth says what
    calibrated.ms must hold after scriptForPI.py ran it."""
    r = imagingprep_delivery
    t, shape, member = r["truth"], r["truth"]["shape"], r["member_dir"]
    prep = open(_script(r, "scriptForImagingPrep")).read()
    assert imaging_prep_inputs(prep) == [f"{eb}.ms.split.cal" for eb in t["ebs"]]
    assert [n for n, _ in calls(prep)] == ["concat", "listobs"]
    assert [kw["concatvis"] for n, kw in calls(prep) if n == "concat"] == ["calibrated.ms"]
    ip = t["imaging_prep"]
    cms = ip["calibrated_ms"]
    assert ip["script"] == shape["files"]["scriptForImagingPrep"] and ip["runs_in"] == "calibrated"
    assert cms["nobservations"] == len(t["ebs"]) and cms["nspw"] == 4 and cms["nchan"] == [60, 60, 60, 128]
    assert sorted(cms["fields"]) == sorted(t["sources"])
    assert cms["nrows"] == sum(t["eb"][eb]["import_check"]["nrows"] for eb in t["ebs"])
    for k, ratio in cms["target_ratio_per_spw"].items():
        assert abs(ratio - 1) < 0.02, (k, ratio)
    assert shape["post_scripts_order"] == ["ImagingPrep"] and not shape["pipeline_imaged"]
    ppr = ET.parse(_script(r, "ppr")).getroot()
    assert ppr.find(".//ProcedureTitle").text == "hifa_cal"
    assert not [c for c in ppr.iter("Command") if c.text == "hif_makeimages"]
    imaging = open(_script(r, "imaging")).read()
    assert [n for n, _ in calls(imaging)].count("tclean") == len(t["images"])
    names = os.listdir(os.path.join(member, "product"))
    assert names and all(".manual." in n and t["target"] in n for n in names)


def test_semipass(semipass_delivery, tmp_path):
    """qa/, a small script/, raw/ only; the ASDMs import."""
    from almaqa_casa.synth._casa import casatasks, casatools

    r = semipass_delivery
    t, shape, member = r["truth"], r["truth"]["shape"], r["member_dir"]
    assert sorted(os.listdir(member)) == sorted(["qa", "raw", "script", shape["files"]["readme"]])
    assert os.listdir(os.path.join(member, "script")) == [shape["files"]["scriptforpi"]]
    assert "semipass" in open(os.path.join(member, shape["files"]["readme"])).read()
    assert "SEMIPASS" in open(os.path.join(member, "qa", shape["files"]["qa2"])).read()
    assert t["images"] == {} and shape["semipass"] and shape["session_caltables"] == {}
    eb = t["ebs"][0]
    vis = str(tmp_path / "sp.ms")
    casatasks.importasdm(asdm=t["eb"][eb]["asdm"], vis=vis, lazy=True, ocorr_mode="ca", process_caldevice=False)
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        assert len(msmd.scannumbers()) == len(t["eb"][eb]["scans"])
    finally:
        msmd.close()


def _syscal(vis):
    from almaqa_casa.synth._casa import casatools

    tb = casatools.table()
    tb.open(vis + "/SYSCAL")
    try:
        return {c: tb.getcol(c) for c in ("TIME", "INTERVAL", "SPECTRAL_WINDOW_ID", "ANTENNA_ID")}, \
            tb.getcell("TSYS_SPECTRUM", 0)
    finally:
        tb.close()


def test_sacm_restore_script(sacm_delivery):
    r = sacm_delivery
    t = r["truth"]
    (task, kw), text = _restore(r)
    seq = calls(text)
    names = [n for n, _ in seq]
    imp = [k for n, k in seq if n == "hifa_importdata"][0]
    assert imp["dbservice"] is False and imp["bdfflags"] is False
    assert [os.path.basename(v) for v in imp["vis"]] == t["ebs"]
    assert sorted(k["vis"] for n, k in seq if n == "fixsyscaltimes") == sorted(f"{eb}.ms" for eb in t["ebs"])
    assert names.index("hifa_importdata") < names.index("fixsyscaltimes") < names.index("hifa_restoredata")
    assert "from recipes.almahelpers import fixsyscaltimes" in text
    assert t["shape"]["sacm"] and set(t["sacm"]["ebs"]) == set(t["ebs"])
    _check_sessions(r)


@pytest.mark.parametrize("lazy", [True, False])
def test_sacm_syscal_fixed(sacm_delivery, tmp_path, monkeypatch, lazy):
    """The SACM ASDM imports (lazy or not) into an MS whose SYSCAL table has
    per-antenna TIMEs for one Tsys measurement; fixsyscaltimes (casarecipes)
    changes them exactly as the truth says, and a second run changes nothing."""
    from casarecipes.almahelpers import fixsyscaltimes

    monkeypatch.chdir(tmp_path)  # fixsyscaltimes leaves a 'byspw' table in the cwd

    from almaqa_casa.synth._casa import casatasks

    r = sacm_delivery
    t = r["truth"]
    eb = t["ebs"][0]
    st = t["sacm"]["ebs"][eb]
    vis = str(tmp_path / f"{eb}.ms")
    casatasks.importasdm(asdm=t["eb"][eb]["asdm"], vis=vis, lazy=lazy, ocorr_mode="ca", bdfflags=False,
                         process_caldevice=False)
    before, tsys = _syscal(vis)
    assert len(before["TIME"]) == st["rows"] == len(st["measurements"]) * st["antennas"] * len(st["spws"])
    assert sorted(np.unique(np.round(before["INTERVAL"], 3))) == st["intervals_s"]
    for spw in st["spws"]:
        sel = before["SPECTRAL_WINDOW_ID"] == spw
        assert len(np.unique(before["TIME"][sel])) == st["distinct_times_per_spw"]
    starts = before["TIME"] - before["INTERVAL"] / 2
    assert np.allclose(np.unique(np.round(starts, 3)), [m_["start_s"] for m_ in st["measurements"]],
                       rtol=0, atol=1e-3)
    a0 = before["ANTENNA_ID"][0]
    assert tsys.shape == (2, 60) and abs(np.mean(tsys[0]) - st["tsys_k"][a0][0]) < 0.01 * st["tsys_k"][a0][0]
    assert fixsyscaltimes(vis) is True
    after, _ = _syscal(vis)
    assert np.allclose(after["INTERVAL"], st["fixed_interval_s"])
    for spw in st["spws"]:
        sel = after["SPECTRAL_WINDOW_ID"] == spw
        assert np.allclose(np.unique(after["TIME"][sel]), [m_["fixed_time_s"] for m_ in st["measurements"]],
                           rtol=0, atol=1e-3)
    assert fixsyscaltimes(vis) is False  # nothing left to fix


def test_default_shape_unchanged(pipeline_delivery):
    """The default build keeps the modern shape: one session, manifest."""
    t = pipeline_delivery["truth"]
    shape = t["shape"]
    assert shape["default"] and shape["era"] == "cycle10+" and shape["manifest_present"]
    assert set(shape["eb_session"].values()) == {"session_1"}
    assert shape["session_caltables"] == {"session_1": f"{t['mous']}.session_1.caltables.tgz"}
    assert t["variant"] == "pipeline" and t["project"].startswith("2025.1.")
    with gzip.open(os.path.join(pipeline_delivery["member_dir"], "calibration",
                                f"{t['mous']}.hifa_calimage.auxproducts.tgz")) as fh:
        with tarfile.open(fileobj=fh) as tf:
            assert sorted(tf.getnames()) == ["antennapos.csv", "cont.dat", "flux.csv"]
